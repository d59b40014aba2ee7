/* talon audit keygen: create the auditor's verification key and the
 * server's key state, both as new files. */
#include "cli/cli.h"
#include "cli/audit_cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "talon/audit.h"

#define KEY_NAME "audit-verify.key"
#define STATE_NAME "key.state"
#define DEFAULT_KEY KEY_NAME
#define DEFAULT_STATE "var/audit/" STATE_NAME

static void keygen_usage(FILE *out)
{
    fputs("usage: talon audit keygen [--key FILE] [--state FILE]\n\n"
          "Create a new trail key: K0 and a random trail id.\n\n"
          "  --key FILE    the auditor's verification key (default " DEFAULT_KEY ").\n"
          "                Move it off the server: whoever holds it can forge records.\n"
          "  --state FILE  the server's key state, mode 0600 (default " DEFAULT_STATE ");\n"
          "                the server overwrites it with each new epoch's key.\n"
          "  -h, --help    show this help\n\n"
          "Neither file is overwritten if it exists.\n", out);
}

/* Directories that keygen created, removed again when keygen fails. */
typedef struct created_dirs {
    char **paths;
    size_t count;
} created_dirs;

static int remember_dir(created_dirs *created, const char *path)
{
    char **paths = realloc(created->paths, (created->count + 1) * sizeof *paths);
    if (!paths)
        return -ENOMEM;
    created->paths = paths;
    paths[created->count] = strdup(path);
    if (!paths[created->count])
        return -ENOMEM;
    created->count++;
    return 0;
}

/* Remove the directories in created, deepest first, when remove is set
 * (rmdir leaves a directory that is no longer empty), and free the list. */
static void release_dirs(created_dirs *created, bool remove)
{
    for (size_t i = created->count; i-- > 0;) {
        if (remove)
            rmdir(created->paths[i]);
        free(created->paths[i]);
    }
    free(created->paths);
    created->paths = NULL;
    created->count = 0;
}

/* mkdir -p for the directory part of path, mode 0700; adds each directory
 * it creates to created. */
static int make_parent_dirs(const char *path, created_dirs *created)
{
    char buf[4096];
    if (strlen(path) >= sizeof buf)
        return -ENAMETOOLONG;
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) == 0) {
            int rc = remember_dir(created, buf);
            if (rc < 0)
                return rc;
        } else if (errno != EEXIST) {
            return -errno;
        }
        *p = '/';
    }
    return 0;
}

/* Check that nothing has the name path yet, since keygen writes only new
 * files. Returns 0, or a negative errno after an error message that names
 * what is there and what to pass with option instead. A path that cannot
 * be looked up passes: creating it reports why. */
static int check_new_path(const char *option, const char *path, const char *file_name)
{
    struct stat st;

    if (lstat(path, &st) != 0)
        return 0;
    if (S_ISDIR(st.st_mode)) {
        size_t len = strlen(path);
        while (len > 1 && path[len - 1] == '/')
            len--;
        cli_error("audit keygen: %s %s is a directory; pass %s the path of a new file, for "
                  "example %.*s/%s", option, path, option, (int)len, path, file_name);
        return -EISDIR;
    }
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n < 0 ? 0 : n] = '\0';
        cli_error("audit keygen: %s %s is a symbolic link to %s, and keygen does not write "
                  "through links; pass %s the path of a new file (the link's target, if that "
                  "is where the file belongs)", option, path, n < 0 ? "an unreadable target" : target,
                  option);
        return -ELOOP;
    }
    cli_error("audit keygen: %s already exists, and keygen never overwrites a key; pass %s the "
              "path of a new file, or remove %s first only if its trail is no longer needed",
              path, option, path);
    return -EEXIST;
}

/* Create the missing parent directories of the state file and the key. */
static int make_key_dirs(const char *state, const char *key, created_dirs *created)
{
    const char *paths[] = { state, key };
    for (size_t i = 0; i < 2; i++) {
        int rc = make_parent_dirs(paths[i], created);
        if (rc < 0) {
            cli_error("audit keygen: cannot create the directory of %s: %s", paths[i], strerror(-rc));
            return rc;
        }
    }
    return 0;
}

int cli_audit_keygen(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "key", required_argument, NULL, 'k' },
        { "state", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *key = DEFAULT_KEY, *state = DEFAULT_STATE;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:s:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': key = optarg; break;
        case 's': state = optarg; break;
        case 'h': keygen_usage(stdout); return CLI_OK;
        default: cli_option_error("audit keygen", c, argv, longopts); return CLI_USAGE;
        }
    }
    if (optind != argc) {
        cli_error("audit keygen: unexpected argument \"%s\"; keygen takes only --key and "
                  "--state (see 'talon audit keygen --help')", argv[optind]);
        return CLI_USAGE;
    }
    if (check_new_path("--key", key, KEY_NAME) < 0 || check_new_path("--state", state, STATE_NAME) < 0)
        return CLI_USAGE;

    created_dirs created = { 0 };
    char err[512];
    if (make_key_dirs(state, key, &created) < 0)
        goto err;
    if (talon_audit_keygen(key, state, err, sizeof err) < 0) {
        cli_error("audit keygen: %s", err);
        goto err;
    }
    release_dirs(&created, false);
    printf("server key state:  %s (0600; the server evolves it each epoch)\n"
           "verification key:  %s\n\n"
           "Move the verification key off this machine now and keep it with the auditor:\n"
           "it is K0, and whoever holds it can write records that verify. Verify with\n"
           "  talon audit verify --key %s TRAIL_DIR\n", state, key, key);
    return CLI_OK;

err:
    release_dirs(&created, true);
    return CLI_USAGE;
}
