/* INI configuration loading with libinih, and the value parsers.
 *
 * Debian's libinih 55 is built without INI_HANDLER_LINENO, so the handler
 * does not receive line numbers. The file is read through our own reader,
 * which counts the lines it hands to inih; inih calls the handler for a key
 * right after reading its line, so the count is the key's line. Keys of
 * "[log.*]" sections go to talon_log_config_set(), the others to the
 * caller's handler.
 *
 * inih lets a later duplicate win silently, so the loader rejects a
 * section header seen before and a key set twice in a section (a second
 * [user.x] with role = admin would otherwise make x an admin). Keys
 * declared repeatable, such as [audit.policy] rule, are passed on each
 * time. inih also reads an indented line after a key as a continuation of
 * that key's value; the loader rejects such lines, because an indented
 * "threads = 2" would otherwise become part of the previous value.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "talon/config.h"
#include "talon/log.h"

/* Maximum line length, large because custom log formats can be long. */
#define CONFIG_MAX_LINE 65536

/* Keys every load accepts more than once in their section. */
static const char *const builtin_repeatable[] = { "audit.policy.rule", NULL };

/* A section header or a key seen so far, for the duplicate checks. */
typedef struct config_seen {
    char *section;
    char *key;            /* NULL for a section header */
    int line;
} config_seen;

typedef struct config_load {
    FILE *file;
    const char *path;
    int line;             /* line being parsed, 1-based */
    bool at_line_start;
    size_t line_len;
    bool line_too_long;
    bool line_indented;   /* the line being parsed starts with a blank */
    bool key_since_header; /* a key was set since the last section header */
    talon_config_handler handler;
    void *ctx;
    const char *const *repeatable;
    config_seen *seen;
    size_t nseen;
    size_t seen_cap;
    int rc;
    char *err;
    size_t errlen;
} config_load;

static void config_fail(config_load *ld, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the first error; later ones are not reported. */
static void config_fail(config_load *ld, int rc, const char *fmt, ...)
{
    if (ld->rc < 0)
        return;
    ld->rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err, ld->errlen, fmt, ap);
    va_end(ap);
}

/* The earlier entry for section and key (NULL: the header), or NULL. */
static const config_seen *seen_find(const config_load *ld, const char *section, const char *key)
{
    for (size_t i = 0; i < ld->nseen; i++) {
        const config_seen *e = &ld->seen[i];
        if (strcmp(e->section, section) != 0)
            continue;
        if (key == NULL ? e->key == NULL : e->key != NULL && strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

static int seen_add(config_load *ld, const char *section, const char *key)
{
    if (ld->nseen == ld->seen_cap) {
        size_t cap = ld->seen_cap ? ld->seen_cap * 2 : 32;
        config_seen *v = realloc(ld->seen, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        ld->seen = v;
        ld->seen_cap = cap;
    }
    config_seen *e = &ld->seen[ld->nseen];
    e->section = strdup(section);
    e->key = key ? strdup(key) : NULL;
    e->line = ld->line;
    if (!e->section || (key && !e->key)) {
        free(e->section);
        free(e->key);
        return -ENOMEM;
    }
    ld->nseen++;
    return 0;
}

static bool key_repeatable(const config_load *ld, const char *section, const char *key)
{
    const char *const *lists[] = { builtin_repeatable, ld->repeatable };
    size_t slen = strlen(section);
    for (size_t l = 0; l < 2; l++) {
        for (const char *const *r = lists[l]; r && *r; r++) {
            if (strncmp(*r, section, slen) == 0 && (*r)[slen] == '.' && strcmp(*r + slen + 1, key) == 0)
                return true;
        }
    }
    return false;
}

/* Check a section header line the way inih reads it: after leading blanks
 * a '[' starts a header unless the line continues a value. */
static void check_header(config_load *ld, const char *text)
{
    const char *p = text;
    if (ld->line == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* UTF-8 byte order mark, skipped by inih too */
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '[' || (p > text && ld->key_since_header))
        return;
    const char *end = strchr(p + 1, ']');
    if (!end)
        return; /* inih reports the syntax error */
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
    ld->key_since_header = false;
    const config_seen *first = seen_find(ld, name, NULL);
    if (first) {
        config_fail(ld, -EINVAL, "%s:%d: [%s]: duplicate section; first at line %d. Merge the two "
                    "sections into one", ld->path, ld->line, name, first->line);
        return;
    }
    if (seen_add(ld, name, NULL) < 0)
        config_fail(ld, -ENOMEM, "%s: out of memory reading the configuration", ld->path);
}

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
    if (ld->line_len == 0) {
        ld->line_indented = str[0] == ' ' || str[0] == '\t';
        check_header(ld, str);
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
    if (ld->line_indented && ld->key_since_header) {
        config_fail(ld, -EINVAL, "%s:%d: [%s] %s: indented line continues the value of the key "
                    "above; remove the indentation, or write the value on one line",
                    ld->path, ld->line, section, key);
        return 1;
    }
    ld->key_since_header = true;
    if (!key_repeatable(ld, section, key)) {
        const config_seen *first = seen_find(ld, section, key);
        if (first) {
            config_fail(ld, -EINVAL, "%s:%d: [%s] %s: duplicate; first set at line %d. Keep one "
                        "of the two", ld->path, ld->line, section, key, first->line);
            return 1;
        }
        if (seen_add(ld, section, key) < 0) {
            config_fail(ld, -ENOMEM, "%s: out of memory reading the configuration", ld->path);
            return 1;
        }
    }
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
    return talon_config_load_repeatable(path, NULL, handler, ctx, err, errlen);
}

int talon_config_load_repeatable(const char *path, const char *const *repeatable,
                                 talon_config_handler handler, void *ctx, char *err, size_t errlen)
{
    config_load ld = {
        .path = path, .at_line_start = true, .handler = handler, .ctx = ctx,
        .repeatable = repeatable, .err = err, .errlen = errlen,
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
    for (size_t i = 0; i < ld.nseen; i++) {
        free(ld.seen[i].section);
        free(ld.seen[i].key);
    }
    free(ld.seen);
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
