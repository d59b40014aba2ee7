/* Option errors of the talon subcommands, in talon's own words: getopt's
 * messages lack the "talon: COMMAND:" prefix and the pointer to --help. */
#include "cli/cli.h"

#include <getopt.h>
#include <string.h>

/* The long option that name (len bytes, without "--") spells out or
 * abbreviates, NULL when none. *ambiguous is set when it abbreviates
 * several. */
static const struct option *find_long_option(const struct option *longopts, const char *name, size_t len,
                                             bool *ambiguous)
{
    const struct option *found = NULL;
    size_t matches = 0;

    *ambiguous = false;
    for (const struct option *o = longopts; o && o->name; o++) {
        if (strncmp(o->name, name, len) != 0)
            continue;
        if (strlen(o->name) == len)
            return o;
        found = o;
        matches++;
    }
    *ambiguous = matches > 1;
    return matches == 1 ? found : NULL;
}

void cli_option_error(const char *command, int c, char *const *argv, const struct option *longopts)
{
    /* After a long option, getopt has moved optind past its element. A short
     * option in the middle of a group ("-zq") leaves optind on the group, so
     * the element before it counts only if it spells the option in optopt. */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    bool after_long = strncmp(arg, "--", 2) == 0;
    const char *name = after_long ? arg + 2 : "";
    size_t len = strcspn(name, "=");
    bool ambiguous = false;
    const struct option *o = after_long ? find_long_option(longopts, name, len, &ambiguous) : NULL;
    bool is_long = after_long && (optopt == 0 || (o && o->val == optopt));
    char shown[128];

    if (is_long)
        snprintf(shown, sizeof shown, "'--%.*s'", (int)(len < 100 ? len : 100), name);
    else
        snprintf(shown, sizeof shown, "'-%c'", optopt > 0x20 && optopt < 0x7f ? optopt : '?');

    if (c == ':')
        cli_error("%s: option %s needs a value; run 'talon %s --help' for the options", command, shown, command);
    else if (is_long && ambiguous)
        cli_error("%s: ambiguous option %s (it abbreviates several options); run 'talon %s --help' for the "
                  "options", command, shown, command);
    else if (is_long && o)
        cli_error("%s: option %s takes no value; run 'talon %s --help' for the options", command, shown, command);
    else
        cli_error("%s: unknown option %s; run 'talon %s --help' for the options", command, shown, command);
}
