/* Record serializer and redaction: the bytes of the middle of an audit
 * record, from "time" to "trail", exactly as docs/audit-format.md specifies
 * (key order, escapes, numbers). Runs on the submitting thread, so the
 * writer thread only adds the sequence number, epoch and chain fields. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit_internal.h"

/* Values nested deeper than this in data are written as "[TRUNCATED]", so a
 * hostile object cannot exhaust the submitting thread's stack. */
#define AUDIT_MAX_DEPTH 64


/* ---- buffer ---- */

void audit_buf_init(audit_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void audit_buf_free(audit_buf *b)
{
    free(b->data);
    audit_buf_init(b);
}

bool audit_buf_reserve(audit_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (b->failed)
        return false;
    if (extra > SIZE_MAX - b->len - 1)
        goto fail;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        goto fail;
    b->data = p;
    b->cap = cap;
    return true;

fail:
    b->failed = true;
    return false;
}

void audit_buf_append(audit_buf *b, const void *p, size_t n)
{
    if (!audit_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void audit_buf_append_str(audit_buf *b, const char *s)
{
    audit_buf_append(b, s, strlen(s));
}

void audit_buf_append_u64(audit_buf *b, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    audit_buf_append(b, tmp + sizeof(tmp) - n, n);
}

void audit_buf_append_hex(audit_buf *b, const unsigned char *p, size_t n)
{
    if (!audit_buf_reserve(b, 2 * n))
        return;
    audit_hex(b->data + b->len, p, n);
    b->len += 2 * n;
}

void audit_buf_append_json_string(audit_buf *b, const char *s, size_t len)
{
    size_t n;

    /* Each input byte becomes at most 6 output bytes (\u00XX). */
    if (len > (SIZE_MAX - 2) / 6 || !audit_buf_reserve(b, len * 6 + 2)) {
        b->failed = true;
        return;
    }
    b->data[b->len++] = '"';
    n = talon_escape_json(b->data + b->len, b->cap - b->len, s, len);
    b->len += n;
    b->data[b->len++] = '"';
}

/* ---- redaction ---- */

int audit_redactor_init(audit_redactor *r, const char *const *words)
{
    size_t n = 0;

    memset(r, 0, sizeof(*r));
    if (words == NULL)
        words = talon_secret_words;
    while (words[n] != NULL)
        n++;
    r->words = calloc(n + 1, sizeof(char *));
    if (r->words == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(words[i]);
        if (len == 0)
            continue; /* an empty word would match every key */
        char *w = malloc(len + 1);
        if (w == NULL) {
            audit_redactor_free(r);
            return -ENOMEM;
        }
        for (size_t j = 0; j <= len; j++)
            w[j] = (char)tolower((unsigned char)words[i][j]);
        r->words[r->nwords++] = w;
    }
    return 0;
}

void audit_redactor_free(audit_redactor *r)
{
    if (r->words != NULL) {
        for (size_t i = 0; i < r->nwords; i++)
            free(r->words[i]);
        free(r->words);
    }
    memset(r, 0, sizeof(*r));
}

/* Case-insensitive substring search over len bytes (keys may contain NUL). */
static bool contains_word(const char *key, size_t len, const char *word)
{
    size_t wlen = strlen(word);

    if (wlen > len)
        return false;
    for (size_t i = 0; i + wlen <= len; i++) {
        size_t j = 0;
        while (j < wlen && tolower((unsigned char)key[i + j]) == (unsigned char)word[j])
            j++;
        if (j == wlen)
            return true;
    }
    return false;
}

bool audit_redactor_match(const audit_redactor *r, const char *key, size_t len)
{
    for (size_t i = 0; i < r->nwords; i++)
        if (contains_word(key, len, r->words[i]))
            return true;
    return false;
}

static audit_redactor default_redactor;
static pthread_once_t default_redactor_once = PTHREAD_ONCE_INIT;

static void init_default_redactor(void)
{
    audit_redactor_init(&default_redactor, NULL);
}

bool talon_audit_is_secret_key(const talon_audit_trail *trail, const char *key)
{
    if (key == NULL)
        return false;
    if (trail != NULL)
        return audit_redactor_match(&trail->redact, key, strlen(key));

    /* No trail (yet): the default list. */
    pthread_once(&default_redactor_once, init_default_redactor);
    return audit_redactor_match(&default_redactor, key, strlen(key));
}

/* ---- time ---- */

int64_t audit_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void audit_format_time(char out[28], int64_t time_ns)
{
    time_t sec = (time_t)(time_ns / 1000000000);
    long usec = (long)(time_ns % 1000000000 / 1000);
    struct tm tm;

    if (usec < 0) {
        sec -= 1;
        usec += 1000000;
    }
    char tmp[96];

    gmtime_r(&sec, &tm);
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
    memcpy(out, tmp, 27); /* years 0..9999: always 27 bytes */
    out[27] = '\0';
}

/* ---- serializer ---- */

static void append_redacted(audit_buf *b)
{
    audit_buf_append_str(b, "\"[REDACTED]\"");
}

/* A string field of the record: null, [REDACTED] when its key is listed, or
 * the escaped value. */
static void append_field(audit_buf *b, const audit_redactor *r, const char *key,
                         const char *value)
{
    audit_buf_append(b, "\"", 1);
    audit_buf_append_str(b, key);
    audit_buf_append(b, "\":", 2);
    if (value == NULL)
        audit_buf_append_str(b, "null");
    else if (audit_redactor_match(r, key, strlen(key)))
        append_redacted(b);
    else
        audit_buf_append_json_string(b, value, strlen(value));
}

static void append_json_value(audit_buf *b, const audit_redactor *r, const json_t *v, int depth);

static void append_json_object(audit_buf *b, const audit_redactor *r, const json_t *obj, int depth)
{
    const char *key;
    size_t key_len;
    json_t *value;
    bool first = true;

    audit_buf_append(b, "{", 1);
    json_object_keylen_foreach((json_t *)obj, key, key_len, value) {
        if (!first)
            audit_buf_append(b, ",", 1);
        first = false;
        audit_buf_append_json_string(b, key, key_len);
        audit_buf_append(b, ":", 1);
        if (audit_redactor_match(r, key, key_len))
            append_redacted(b);
        else
            append_json_value(b, r, value, depth + 1);
    }
    audit_buf_append(b, "}", 1);
}

static void append_real(audit_buf *b, double d)
{
    char tmp[32];
    int n;

    /* JSON has no NaN or infinity; jansson refuses to make them, but a
     * value can still arrive through json_real_set on some versions. */
    if (!isfinite(d)) {
        audit_buf_append_str(b, "null");
        return;
    }
    n = snprintf(tmp, sizeof(tmp), "%.17g", d);
    audit_buf_append(b, tmp, (size_t)n);
}

static void append_json_value(audit_buf *b, const audit_redactor *r, const json_t *v, int depth)
{
    char tmp[24];
    int n;

    if (depth > AUDIT_MAX_DEPTH) {
        audit_buf_append_str(b, "\"[TRUNCATED]\"");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        append_json_object(b, r, v, depth);
        break;
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        audit_buf_append(b, "[", 1);
        json_array_foreach((json_t *)v, i, item) {
            if (i > 0)
                audit_buf_append(b, ",", 1);
            append_json_value(b, r, item, depth + 1);
        }
        audit_buf_append(b, "]", 1);
        break;
    }
    case JSON_STRING:
        audit_buf_append_json_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        n = snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        audit_buf_append(b, tmp, (size_t)n);
        break;
    case JSON_REAL:
        append_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        audit_buf_append_str(b, "true");
        break;
    case JSON_FALSE:
        audit_buf_append_str(b, "false");
        break;
    case JSON_NULL:
    default:
        audit_buf_append_str(b, "null");
        break;
    }
}

static void append_actor(audit_buf *b, const talon_audit_event *ev, const audit_redactor *r)
{
    bool redact_roles = audit_redactor_match(r, "roles", 5);

    audit_buf_append_str(b, "\"actor\":{");
    append_field(b, r, "id", ev->actor_id != NULL ? ev->actor_id : "anonymous");
    audit_buf_append_str(b, ",\"roles\":[");
    for (size_t i = 0; ev->actor_roles != NULL && ev->actor_roles[i] != NULL; i++) {
        if (i > 0)
            audit_buf_append(b, ",", 1);
        if (redact_roles)
            append_redacted(b);
        else
            audit_buf_append_json_string(b, ev->actor_roles[i], strlen(ev->actor_roles[i]));
    }
    audit_buf_append_str(b, "]},");
}

int audit_serialize_middle(audit_buf *b, const talon_audit_event *ev, int64_t time_ns,
                           const audit_redactor *r, const char *host, const char *trail_hex)
{
    char when[28];

    if (ev == NULL || ev->type == NULL || ev->type[0] == '\0')
        return -EINVAL;
    if (ev->data != NULL && !json_is_object(ev->data))
        return -EINVAL;

    audit_format_time(when, time_ns);
    audit_buf_append_str(b, "\"time\":\"");
    audit_buf_append_str(b, when);
    audit_buf_append_str(b, "\",\"type\":");
    audit_buf_append_json_string(b, ev->type, strlen(ev->type));
    audit_buf_append_str(b, ev->outcome == TALON_AUDIT_SUCCESS ? ",\"outcome\":\"success\","
                                                                : ",\"outcome\":\"failure\",");
    append_actor(b, ev, r);

    audit_buf_append_str(b, "\"source\":{");
    append_field(b, r, "ip", ev->source_ip);
    audit_buf_append(b, ",", 1);
    append_field(b, r, "user_agent", ev->user_agent);
    audit_buf_append_str(b, "},\"request\":");
    if (ev->request_id == NULL && ev->method == NULL && ev->route == NULL && ev->path == NULL) {
        audit_buf_append_str(b, "null");
    } else {
        audit_buf_append(b, "{", 1);
        append_field(b, r, "id", ev->request_id);
        audit_buf_append(b, ",", 1);
        append_field(b, r, "method", ev->method);
        audit_buf_append(b, ",", 1);
        append_field(b, r, "route", ev->route);
        audit_buf_append(b, ",", 1);
        append_field(b, r, "path", ev->path);
        audit_buf_append(b, "}", 1);
    }

    audit_buf_append_str(b, ",\"target\":");
    if (ev->target_type == NULL && ev->target_id == NULL) {
        audit_buf_append_str(b, "null");
    } else {
        audit_buf_append(b, "{", 1);
        append_field(b, r, "type", ev->target_type);
        audit_buf_append(b, ",", 1);
        append_field(b, r, "id", ev->target_id);
        audit_buf_append(b, "}", 1);
    }
    audit_buf_append(b, ",", 1);
    append_field(b, r, "reason", ev->reason);

    audit_buf_append_str(b, ",\"data\":");
    if (ev->data == NULL)
        audit_buf_append_str(b, "{}");
    else
        append_json_value(b, r, ev->data, 0);

    audit_buf_append_str(b, ",\"host\":");
    audit_buf_append_json_string(b, host, strlen(host));
    audit_buf_append_str(b, ",\"trail\":\"");
    audit_buf_append_str(b, trail_hex);
    audit_buf_append_str(b, "\",");
    return b->failed ? -ENOMEM : 0;
}
