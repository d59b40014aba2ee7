/* talon audit subcommands that read a trail (query, tail, report). */
#ifndef TALON_CLI_AUDIT_CLI_H
#define TALON_CLI_AUDIT_CLI_H

int cli_audit_query(int argc, char **argv);
int cli_audit_tail(int argc, char **argv);
int cli_audit_report(int argc, char **argv);

#endif
