/* talon audit subcommands that read a trail (query, tail, report), and the
 * key check of verify. */
#ifndef TALON_CLI_AUDIT_CLI_H
#define TALON_CLI_AUDIT_CLI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "talon/audit_reader.h"

int cli_audit_keygen(int argc, char **argv);
int cli_audit_query(int argc, char **argv);
int cli_audit_tail(int argc, char **argv);
int cli_audit_report(int argc, char **argv);

/* Called with each complete line that tail -f reads, without its newline. */
typedef void (*cli_follow_line_fn)(void *ctx, const char *line, size_t len);

/* Follow the trail file `file` from byte off, like tail -F: with dir (the
 * trail directory) go on in file index + 1 when the trail rotates, and
 * reopen the file when its path names a new file. Runs until killed;
 * returns CLI_USAGE after an error, which it reports on stderr. */
int cli_audit_follow(const char *dir, uint64_t index, const char *file, off_t off, cli_follow_line_fn fn,
                     void *ctx);

/* Check the verification key of `talon audit verify` before the verifier
 * runs: one key line in a readable regular file, for the trail of the
 * reader's first record. Returns 0, or a negative errno with err naming the
 * key file and what to do. */
int cli_check_verify_key(const char *key_path, talon_audit_reader *reader, char *err, size_t errlen);

/* Parse the first line of file i of the reader into rec. Returns 1, 0 for
 * an empty file, or -1 when the first line is not a complete record. */
int cli_first_record(talon_audit_reader *reader, size_t i, talon_audit_record *rec);

/* One audit_recovered record that verify reported, with copies of its strings. */
typedef struct cli_recovery {
    char *file;
    uint64_t line, seq;
    char *cause;        /* "" when the record's data has none */
    char *torn_file;    /* NULL when none */
} cli_recovery;

/* The audit_recovered records of a trail, in trail order. */
typedef struct cli_recoveries {
    cli_recovery *items;
    size_t count, capacity;
    int err;            /* -ENOMEM when a record could not be kept */
} cli_recoveries;

/* Keep a copy of one recovery: the on_recovery callback of the verifier,
 * with a cli_recoveries as its context. */
void cli_recoveries_collect(void *ctx, const talon_audit_recovery *recovery);
void cli_recoveries_release(cli_recoveries *list);
/* The first recovery with cause modified (an edited record), or NULL. */
const cli_recovery *cli_recoveries_first_modified(const cli_recoveries *list);
/* Print one note line for each recovery, a WARNING line for cause modified. */
void cli_recoveries_print(const cli_recoveries *list, FILE *out);
/* An array of {file, line, seq, cause, torn_file} objects, or NULL when out of memory. */
json_t *cli_recoveries_json(const cli_recoveries *list);
/* Write the detail of a verify result for a recovery with cause modified. */
void cli_recoveries_describe_modified(const cli_recovery *item, char *out, size_t outlen);

#endif
