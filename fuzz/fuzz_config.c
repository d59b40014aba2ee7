/* Fuzz the INI configuration loader (src/log/config.c over libinih) and
 * the section handlers it feeds: [log.*] (src/log/log_config.c),
 * [access_log], [audit] and [audit.policy].
 *
 * Each input is written to a file and loaded with talon_config_load, as
 * talon-demo --config does. The first line may also be fed, as one value,
 * to every value parser.
 *
 * Invariants checked: no crash or sanitizer report; an error always comes
 * with a message that names the file; parsers accept or refuse with a
 * message, never half-way. The collected log sections are freed (not
 * applied: applying opens files) after each input. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "log/log_internal.h"
#include "talon/access_log.h"
#include "talon/audit.h"
#include "talon/audit_http.h"
#include "talon/config.h"

static char path[64];

typedef struct sections {
    talon_access_log_options access;
    talon_audit_options audit;
    talon_audit_policy *policy;
} sections;

static int handler(void *ctx, const char *section, const char *key, const char *value,
                   char *err, size_t errlen)
{
    sections *s = ctx;
    int rc;
    if (strcmp(section, "access_log") == 0)
        rc = talon_access_log_config_set(&s->access, key, value, err, errlen);
    else if (strcmp(section, "audit") == 0)
        rc = talon_audit_config_set(&s->audit, key, value, err, errlen);
    else if (strcmp(section, "audit.policy") == 0)
        rc = talon_audit_policy_config_set(s->policy, key, value, err, errlen);
    else
        return 0;
    if (rc < 0)
        FUZZ_CHECK(err[0] != '\0');
    return rc;
}

static void parse_value(const char *v)
{
    char err[256];
    int b;
    unsigned long long u;
    unsigned mode;
    talon_log_level level;
    err[0] = '\0';
    if (talon_config_parse_bool(v, &b, err, sizeof(err)) < 0)
        FUZZ_CHECK(err[0] != '\0');
    else
        FUZZ_CHECK(b == 0 || b == 1);
    err[0] = '\0';
    if (talon_config_parse_size(v, &u, err, sizeof(err)) < 0)
        FUZZ_CHECK(err[0] != '\0');
    err[0] = '\0';
    if (talon_config_parse_seconds(v, &u, err, sizeof(err)) < 0)
        FUZZ_CHECK(err[0] != '\0');
    err[0] = '\0';
    if (talon_config_parse_mode(v, &mode, err, sizeof(err)) < 0)
        FUZZ_CHECK(err[0] != '\0');
    else
        FUZZ_CHECK(mode <= 07777);
    talon_log_level_parse(v, &level);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof(path), "%s/talon-fuzz-config-%d.ini", tmp, (int)getpid());
    return 0;
}

static void remove_input(void)
{
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool registered;
    if (!registered) {
        atexit(remove_input);
        registered = true;
    }
    const char *nl = memchr(data, '\n', size);
    size_t first = nl ? (size_t)(nl - (const char *)data) : size;
    char *value = strndup((const char *)data, first);
    parse_value(value);
    free(value);

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
    close(fd);

    sections s;
    talon_access_log_options_init(&s.access);
    talon_audit_options_init(&s.audit);
    s.policy = talon_audit_policy_new();
    FUZZ_CHECK(s.policy != NULL);
    char err[1024] = "";
    int rc = talon_config_load(path, handler, &s, err, sizeof(err));
    if (rc < 0)
        FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0);
    talon_audit_policy_free(s.policy);
    talon_audit_options_release(&s.audit);
    log_config_free();
    return 0;
}
