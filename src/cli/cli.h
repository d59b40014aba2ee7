/* The talon command: shared declarations of its subcommands. */
#ifndef TALON_CLI_H
#define TALON_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes of every subcommand. */
enum {
    CLI_OK = 0,        /* done; for verify: the trail is intact */
    CLI_NOT_OK = 1,    /* verify: the trail is not intact */
    CLI_USAGE = 2,     /* bad usage, unreadable input, I/O errors */
};

/* A subcommand: argv[0] is its own name. */
typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} cli_command;

int cli_audit(int argc, char **argv);

/* Print "talon: <message>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct option;

/* Report the option error that getopt_long() returned c for ('?' or ':';
 * run it with opterr = 0 and an optstring that starts with ':') in one
 * line: "talon: COMMAND: unknown option '--x'; run 'talon COMMAND --help'
 * for the options". COMMAND is like "audit query". */
void cli_option_error(const char *command, int c, char *const *argv, const struct option *longopts);

/* A progress bar on stderr, drawn only when stderr is a terminal and the
 * input is large enough to take a while. */
typedef struct cli_progress {
    bool on;
    const char *label;
    uint64_t total;
    double start, last_draw;
} cli_progress;

void cli_progress_start(cli_progress *p, const char *label, uint64_t total);
void cli_progress_update(void *ctx, uint64_t done, uint64_t total);
void cli_progress_end(cli_progress *p);

#endif
