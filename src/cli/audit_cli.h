/* talon audit subcommands that read a trail (query, tail, report), and the
 * key check of verify. */
#ifndef TALON_CLI_AUDIT_CLI_H
#define TALON_CLI_AUDIT_CLI_H

#include <stddef.h>

#include "talon/audit_reader.h"

int cli_audit_query(int argc, char **argv);
int cli_audit_tail(int argc, char **argv);
int cli_audit_report(int argc, char **argv);

/* Check the verification key of `talon audit verify` before the verifier
 * runs: one key line in a readable regular file, for the trail of the
 * reader's first record. Returns 0, or a negative errno with err naming the
 * key file and what to do. */
int cli_check_verify_key(const char *key_path, talon_audit_reader *reader, char *err, size_t errlen);

#endif
