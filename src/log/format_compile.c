/* Compilation of a log format name or nginx-style format string into the
 * operations that format.c runs for each record.
 *
 * A custom string is literal text with variables: "$name", "${name}" (when a
 * letter follows) and "${field:some.key}" for any record field. It may start
 * with "escape=json " to escape variables for JSON ("\u00XX", "" when
 * missing) in place of the default "\xHH" and "-", as nginx's
 * log_format escape= parameter does. Unknown variables, control bytes in
 * the literal text and "escape=none" are compile errors.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/fields.h"
#include "log/format_internal.h"
#include "log/log_internal.h"
#include "talon/log.h"

#define FORMAT_COMBINED \
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent " \
    "\"$http_referer\" \"$http_user_agent\""
#define FORMAT_COMMON \
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent"

typedef struct variable {
    const char *name;
    op_kind kind;
    const char *key;
    const char *key2;
} variable;

static const variable variables[] = {
    { "remote_addr", OP_FIELD, LOG_KEY(CLIENT_IP), NULL },
    { "remote_user", OP_FIELD_OR, LOG_KEY(USER_NAME), LOG_KEY(USER_ID) },
    { "time_local", OP_TIME_LOCAL, NULL, NULL },
    { "time_iso8601", OP_TIME_ISO8601, NULL, NULL },
    { "time_utc", OP_TIME_UTC, NULL, NULL },
    { "msec", OP_MSEC, NULL, NULL },
    { "request", OP_REQUEST, NULL, NULL },
    { "request_method", OP_FIELD, LOG_KEY(METHOD), NULL },
    { "request_uri", OP_FIELD, LOG_KEY(URL_ORIGINAL), NULL },
    { "uri", OP_FIELD, LOG_KEY(URL_PATH), NULL },
    { "server_protocol", OP_PROTOCOL, NULL, NULL },
    { "status", OP_FIELD, LOG_KEY(STATUS), NULL },
    { "body_bytes_sent", OP_FIELD, LOG_KEY(BODY_BYTES), NULL },
    /* The engine reports body bytes only; $bytes_sent uses http.response.bytes
     * when a record carries it. */
    { "bytes_sent", OP_FIELD_OR, LOG_KEY(RESPONSE_BYTES), LOG_KEY(BODY_BYTES) },
    { "request_time", OP_DURATION_S, NULL, NULL },
    { "request_duration_us", OP_DURATION_US, NULL, NULL },
    { "http_referer", OP_FIELD, LOG_KEY(REFERRER), NULL },
    { "http_user_agent", OP_FIELD, LOG_KEY(USER_AGENT), NULL },
    { "request_id", OP_FIELD, LOG_KEY(REQUEST_ID), NULL },
    { "trace_id", OP_FIELD, LOG_KEY(TRACE_ID), NULL },
    { "route", OP_FIELD, LOG_KEY(ROUTE), NULL },
    { "user_id", OP_FIELD, LOG_KEY(USER_ID), NULL },
    { "outcome", OP_FIELD, LOG_KEY(OUTCOME), NULL },
    { "level", OP_LEVEL, NULL, NULL },
    { "logger", OP_LOGGER, NULL, NULL },
    { "message", OP_MESSAGE, NULL, NULL },
};

static void set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const variable *find_variable(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(variables) / sizeof(variables[0]); i++)
        if (strlen(variables[i].name) == len && memcmp(variables[i].name, name, len) == 0)
            return &variables[i];
    return NULL;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A field key in ${field:...}: printable ASCII without spaces, quotes,
 * backslashes or braces, so it can never need escaping. */
static bool is_key_char(char c)
{
    return c > ' ' && c < 0x7f && c != '"' && c != '\\' && c != '{' && c != '}';
}

static int add_op(talon_log_format *fmt, size_t *cap, format_op op)
{
    if (fmt->nops == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        format_op *ops = realloc(fmt->ops, ncap * sizeof(*ops));

        if (!ops)
            return -ENOMEM;
        fmt->ops = ops;
        *cap = ncap;
    }
    fmt->ops[fmt->nops++] = op;
    return 0;
}

/* Parse one variable starting at spec[*pos] == '$'; on success add its
 * operation and move *pos past it. s is the writable copy of the string. */
static int compile_variable(talon_log_format *fmt, size_t *cap, char *s, size_t *pos,
                            size_t base, char *err, size_t errlen)
{
    size_t start = *pos, i = start + 1, name_start, name_len;
    format_op op = { 0 };

    if (s[i] == '{') {
        char *close = strchr(s + i + 1, '}');

        if (!close) {
            set_error(err, errlen, "log format: unterminated \"${\" at offset %zu; "
                      "write ${name} or ${field:some.key}", base + start);
            return -EINVAL;
        }
        name_start = i + 1;
        name_len = (size_t)(close - (s + name_start));
        *pos = (size_t)(close - s) + 1;
        if (name_len >= 6 && memcmp(s + name_start, "field:", 6) == 0) {
            if (name_len == 6) {
                set_error(err, errlen, "log format: empty field key in \"${field:}\" at offset "
                          "%zu; write ${field:some.key}", base + start);
                return -EINVAL;
            }
            for (size_t k = name_start + 6; k < name_start + name_len; k++) {
                if (!is_key_char(s[k])) {
                    set_error(err, errlen, "log format: invalid character 0x%02x in field key "
                              "at offset %zu; keys are printable ASCII without spaces, quotes "
                              "or braces", (unsigned char)s[k], base + k);
                    return -EINVAL;
                }
            }
            *close = '\0';
            op.kind = OP_FIELD;
            op.key = log_key_intern(s + name_start + 6);
            if (!op.key)
                op.key = s + name_start + 6;
            return add_op(fmt, cap, op);
        }
    } else {
        name_start = i;
        while (is_name_char(s[i]))
            i++;
        name_len = i - name_start;
        *pos = i;
    }

    if (name_len == 0) {
        set_error(err, errlen, "log format: \"$\" at offset %zu is not followed by a variable "
                  "name", base + start);
        return -EINVAL;
    }
    const variable *v = find_variable(s + name_start, name_len);
    if (!v) {
        set_error(err, errlen, "log format: unknown variable \"$%.*s\" at offset %zu; "
                  "use ${field:key} for a record field (variables are listed in docs/logging.md)",
                  (int)(name_len > 64 ? 64 : name_len), s + name_start, base + start);
        return -EINVAL;
    }
    op.kind = v->kind;
    op.key = v->key;
    op.key2 = v->key2;
    return add_op(fmt, cap, op);
}

/* Compile a custom string into fmt->ops. base is the offset of s within the
 * string the caller passed, for error messages. */
static int compile_ops(talon_log_format *fmt, char *s, size_t base, char *err, size_t errlen)
{
    size_t cap = 0, pos = 0, lit = 0;
    int rc;

    while (s[pos]) {
        unsigned char c = (unsigned char)s[pos];

        if (c < 0x20 || c == 0x7f) {
            set_error(err, errlen, "log format: control byte 0x%02x at offset %zu; a format "
                      "must stay on one line, so remove it", c, base + pos);
            return -EINVAL;
        }
        if (c != '$') {
            pos++;
            continue;
        }
        /* The literal text before a variable becomes part of its
         * operation, which halves the operations "combined" dispatches. */
        size_t op = fmt->nops, dollar = pos;
        rc = compile_variable(fmt, &cap, s, &pos, base, err, errlen);
        if (rc < 0)
            return rc;
        fmt->ops[op].text = s + lit;
        fmt->ops[op].len = dollar - lit;
        lit = pos;
    }
    if (pos > lit)
        return add_op(fmt, &cap, (format_op){ .kind = OP_LITERAL, .text = s + lit,
                                              .len = pos - lit });
    return 0;
}

talon_log_format *talon_log_format_compile(const char *spec, char *err, size_t errlen)
{
    talon_log_format *fmt;
    const char *body;
    size_t skip = 0;
    int escape = 0, rc;

    if (!spec || !spec[0]) {
        set_error(err, errlen, "log format is empty; use text, json, logfmt, combined, "
                  "common, rfc5424 or a string with $variables");
        return NULL;
    }
    fmt = calloc(1, sizeof(*fmt));
    if (!fmt) {
        set_error(err, errlen, "log format: out of memory");
        return NULL;
    }

    if (strcmp(spec, "text") == 0) {
        fmt->kind = FORMAT_TEXT;
        return fmt;
    }
    if (strcmp(spec, "json") == 0) {
        fmt->kind = FORMAT_JSON;
        fmt->escape = 1;
        return fmt;
    }
    if (strcmp(spec, "logfmt") == 0) {
        fmt->kind = FORMAT_LOGFMT;
        return fmt;
    }
    if (strcmp(spec, "rfc5424") == 0) {
        free(fmt);
        return talon_log_format_compile_rfc5424(NULL, err, errlen);
    }

    fmt->kind = FORMAT_OPS;
    if (strcmp(spec, "combined") == 0) {
        body = FORMAT_COMBINED;
    } else if (strcmp(spec, "common") == 0) {
        body = FORMAT_COMMON;
    } else {
        if (strncmp(spec, "escape=", 7) == 0) {
            const char *mode = spec + 7;
            size_t n = strcspn(mode, " ");

            if (n == 4 && memcmp(mode, "json", 4) == 0) {
                escape = 1;
            } else if (n == 7 && memcmp(mode, "default", 7) == 0) {
                escape = 0;
            } else {
                set_error(err, errlen, "log format: invalid escape=%.*s; accepted values are "
                          "escape=default and escape=json (talon never writes bytes unescaped)",
                          (int)(n > 32 ? 32 : n), mode);
                goto err;
            }
            skip = 7 + n;
            while (spec[skip] == ' ')
                skip++;
        }
        if (!strchr(spec + skip, '$')) {
            set_error(err, errlen, "log format: unknown format name \"%.64s\"; use text, json, "
                      "logfmt, combined, common, rfc5424 or a string with $variables", spec);
            goto err;
        }
        body = spec + skip;
    }
    fmt->escape = escape;
    fmt->spec = strdup(body);
    if (!fmt->spec) {
        set_error(err, errlen, "log format: out of memory");
        goto err;
    }
    rc = compile_ops(fmt, fmt->spec, skip, err, errlen);
    if (rc == -ENOMEM)
        set_error(err, errlen, "log format: out of memory");
    if (rc < 0)
        goto err;
    return fmt;

err:
    talon_log_format_free(fmt);
    return NULL;
}

bool log_format_uses_message(const talon_log_format *fmt)
{
    if (fmt->kind != FORMAT_OPS)
        return true;
    for (size_t i = 0; i < fmt->nops; i++) {
        if (fmt->ops[i].kind == OP_MESSAGE)
            return true;
    }
    return false;
}

void talon_log_format_free(talon_log_format *fmt)
{
    if (!fmt)
        return;
    free(fmt->ops);
    free(fmt->spec);
    free(fmt->syslog_header);
    free(fmt->sd_id);
    talon_log_format_free(fmt->msg_format);
    free(fmt);
}
