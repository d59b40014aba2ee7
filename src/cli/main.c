/* talon: command-line tools for talon applications. Each subcommand lives in
 * its own file; this table is the only place that lists them. */
#include "cli/cli.h"

#include <stdarg.h>
#include <string.h>

static const cli_command COMMANDS[] = {
    { "audit", cli_audit, "audit trail tools: keygen, verify, query, tail, report" },
};

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("talon: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void usage(FILE *out)
{
    fputs("usage: talon COMMAND [ARGS...]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fputs("\nRun 'talon COMMAND --help' for the options of a command.\n", out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strcmp(argv[1], COMMANDS[i].name) == 0)
            return COMMANDS[i].run(argc - 1, argv + 1);
    cli_error("unknown command \"%s\"; run 'talon --help' for the list", argv[1]);
    return CLI_USAGE;
}
