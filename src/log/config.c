/* INI configuration loading with libinih, and the value parsers.
 *
 * Debian's libinih 55 is built without INI_HANDLER_LINENO, so the handler
 * does not receive line numbers. The file is read through our own reader,
 * which counts the lines it hands to inih; inih calls the handler for a key
 * right after reading its line, so the count is the key's line. Keys of
 * "[log.*]" sections go to talon_log_config_set(), the others to the
 * caller's handler.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "talon/config.h"
#include "talon/log.h"

/* Maximum line length, large because custom log formats can be long. */
#define CONFIG_MAX_LINE 65536

typedef struct config_load {
    FILE *file;
    const char *path;
    int line;             /* line being parsed, 1-based */
    bool at_line_start;
    size_t line_len;
    bool line_too_long;
    talon_config_handler handler;
    void *ctx;
    int rc;
    char *err;
    size_t errlen;
} config_load;

static char *config_read_line(char *str, int num, void *stream)
{
    config_load *ld = stream;
    if (!fgets(str, num, ld->file))
        return NULL;
    size_t n = strlen(str);
    if (ld->at_line_start) {
        ld->line++;
        ld->line_len = 0;
    }
    ld->line_len += n;
    ld->at_line_start = n > 0 && str[n - 1] == '\n';
    if (ld->line_len >= CONFIG_MAX_LINE - 2 && !ld->line_too_long && ld->rc == 0) {
        ld->line_too_long = true;
        ld->rc = -EINVAL;
        snprintf(ld->err, ld->errlen, "%s:%d: line too long; lines are limited to %d bytes",
                 ld->path, ld->line, CONFIG_MAX_LINE - 3);
    }
    return str;
}

static int config_handle(void *user, const char *section, const char *key, const char *value)
{
    config_load *ld = user;
    if (ld->rc < 0)
        return 1; /* report only the first error */
    char msg[512] = "";
    int rc = 0;
    if (strncmp(section, "log.", 4) == 0)
        rc = talon_log_config_set(section, key, value, msg, sizeof(msg));
    else if (ld->handler)
        rc = ld->handler(ld->ctx, section, key, value, msg, sizeof(msg));
    if (rc < 0) {
        ld->rc = rc;
        snprintf(ld->err, ld->errlen, "%s:%d: [%s] %s: %s", ld->path, ld->line, section, key,
                 msg[0] ? msg : "invalid value");
    }
    return 1;
}

int talon_config_load(const char *path, talon_config_handler handler, void *ctx,
                      char *err, size_t errlen)
{
    config_load ld = {
        .path = path, .at_line_start = true, .handler = handler, .ctx = ctx,
        .err = err, .errlen = errlen,
    };
    ld.file = fopen(path, "re");
    if (!ld.file) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot read the configuration: %s", path, strerror(e));
        return -e;
    }

    /* Debian's build exposes inih's compile-time options as variables: use
     * a growing heap line buffer so long format strings are not cut. */
    bool saved_stack = ini_use_stack, saved_realloc = ini_allow_realloc;
    int saved_max = ini_max_line;
    ini_use_stack = false;
    ini_allow_realloc = true;
    ini_max_line = CONFIG_MAX_LINE;
    int r = ini_parse_stream(config_read_line, &ld, config_handle, &ld);
    ini_use_stack = saved_stack;
    ini_allow_realloc = saved_realloc;
    ini_max_line = saved_max;

    int read_error = ferror(ld.file);
    fclose(ld.file);
    if (ld.rc < 0)
        return ld.rc;
    if (r == -2) {
        snprintf(err, errlen, "%s: out of memory reading the configuration", path);
        return -ENOMEM;
    }
    if (read_error) {
        snprintf(err, errlen, "%s: read error", path);
        return -EIO;
    }
    if (r > 0) {
        snprintf(err, errlen, "%s:%d: syntax error; expected [section], key = value or a ; comment",
                 path, r);
        return -EINVAL;
    }
    return 0;
}

int talon_config_parse_bool(const char *value, int *out, char *err, size_t errlen)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(value, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(value, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    snprintf(err, errlen, "invalid value '%s'; expected true or false (also yes/no, on/off, 1/0)", value);
    return -EINVAL;
}

/* Parse digits followed by an optional unit from units (each with its
 * multiplier). */
static int parse_scaled(const char *value, const char *units, const unsigned long long *mult,
                        unsigned long long *out)
{
    if (!isdigit((unsigned char)value[0]))
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno)
        return -EINVAL;
    unsigned long long m = 1;
    if (*end) {
        const char *u = strchr(units, *end);
        if (!u || end[1])
            return -EINVAL;
        m = mult[u - units];
    }
    if (v > ~0ULL / m)
        return -EINVAL;
    *out = v * m;
    return 0;
}

int talon_config_parse_size(const char *value, unsigned long long *out, char *err, size_t errlen)
{
    static const unsigned long long mult[] = {
        1ULL << 10, 1ULL << 10, 1ULL << 20, 1ULL << 20, 1ULL << 30, 1ULL << 30, 1ULL << 40, 1ULL << 40,
    };
    if (parse_scaled(value, "kKmMgGtT", mult, out) < 0) {
        snprintf(err, errlen, "invalid value '%s'; expected a size in bytes with an optional "
                 "k, M, G or T suffix (powers of 1024), such as 65536, 64k or 100M", value);
        return -EINVAL;
    }
    return 0;
}

int talon_config_parse_seconds(const char *value, unsigned long long *out, char *err, size_t errlen)
{
    static const unsigned long long mult[] = { 1, 60, 3600, 86400 };
    if (parse_scaled(value, "smhd", mult, out) < 0) {
        snprintf(err, errlen, "invalid value '%s'; expected seconds with an optional s, m, h "
                 "or d suffix, such as 30, 5m, 1h or 1d", value);
        return -EINVAL;
    }
    return 0;
}

int talon_config_parse_mode(const char *value, unsigned *out, char *err, size_t errlen)
{
    size_t len = strlen(value);
    if (len == 0 || len > 4 || strspn(value, "01234567") != len || strtoul(value, NULL, 8) > 0777) {
        snprintf(err, errlen, "invalid value '%s'; expected an octal file mode from 0000 to 0777, "
                 "such as 0640", value);
        return -EINVAL;
    }
    *out = (unsigned)strtoul(value, NULL, 8);
    return 0;
}
