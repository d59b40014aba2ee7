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

void audit_buf_append_slow(audit_buf *b, const void *p, size_t n)
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

void audit_buf_append_i64(audit_buf *b, int64_t v)
{
    if (v < 0) {
        audit_buf_append_lit(b, "-");
        audit_buf_append_u64(b, -(uint64_t)v); /* exact for INT64_MIN too */
        return;
    }
    audit_buf_append_u64(b, (uint64_t)v);
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

/* The keys of the record's own string fields, whose match against the word
 * list audit_redactor_init() works out once (the bits of r->fields). */
enum record_field {
    FIELD_ID, FIELD_ROLES, FIELD_IP, FIELD_USER_AGENT, FIELD_METHOD, FIELD_ROUTE, FIELD_PATH,
    FIELD_TYPE, FIELD_REASON, FIELD_COUNT
};

static const struct {
    const char *key;
    size_t len;
} record_fields[FIELD_COUNT] = {
    [FIELD_ID] = { "id", 2 },
    [FIELD_ROLES] = { "roles", 5 },
    [FIELD_IP] = { "ip", 2 },
    [FIELD_USER_AGENT] = { "user_agent", 10 },
    [FIELD_METHOD] = { "method", 6 },
    [FIELD_ROUTE] = { "route", 5 },
    [FIELD_PATH] = { "path", 4 },
    [FIELD_TYPE] = { "type", 4 },
    [FIELD_REASON] = { "reason", 6 },
};

int audit_redactor_init(audit_redactor *r, const char *const *words)
{
    size_t n = 0;

    memset(r, 0, sizeof(*r));
    if (words == NULL)
        words = talon_secret_words;
    while (words[n] != NULL)
        n++;
    r->words = calloc(n + 1, sizeof(char *));
    r->lens = calloc(n + 1, sizeof(size_t));
    if (r->words == NULL || r->lens == NULL) {
        audit_redactor_free(r);
        return -ENOMEM;
    }
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
        r->lens[r->nwords] = len;
        r->words[r->nwords++] = w;
    }
    for (unsigned f = 0; f < FIELD_COUNT; f++)
        if (audit_redactor_match(r, record_fields[f].key, record_fields[f].len))
            r->fields |= 1u << f;
    return 0;
}

void audit_redactor_free(audit_redactor *r)
{
    if (r->words != NULL) {
        for (size_t i = 0; i < r->nwords; i++)
            free(r->words[i]);
        free(r->words);
    }
    free(r->lens);
    memset(r, 0, sizeof(*r));
}

/* Case-insensitive substring search over len bytes (keys may contain NUL);
 * word is lowercase. */
static bool contains_word(const char *key, size_t len, const char *word, size_t wlen)
{
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
        if (contains_word(key, len, r->words[i], r->lens[i]))
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

/* The first 19 bytes ("YYYY-MM-DDTHH:MM:SS") of second sec, kept per thread
 * because a busy thread formats many records within one second. */
static const char *format_second(time_t sec)
{
    static __thread time_t cached_sec = (time_t)-1;
    static __thread char cached[20];
    char tmp[96];
    struct tm tm;

    if (sec == cached_sec && cached[0] != '\0')
        return cached;
    gmtime_r(&sec, &tm);
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(cached, tmp, 19); /* years 0..9999: always 19 bytes */
    cached[19] = '\0';
    cached_sec = sec;
    return cached;
}

void audit_format_time(char out[28], int64_t time_ns)
{
    time_t sec = (time_t)(time_ns / 1000000000);
    long usec = (long)(time_ns % 1000000000 / 1000);

    if (usec < 0) {
        sec -= 1;
        usec += 1000000;
    }
    memcpy(out, format_second(sec), 19);
    out[19] = '.';
    for (int i = 25; i >= 20; i--) {
        out[i] = (char)('0' + usec % 10);
        usec /= 10;
    }
    out[26] = 'Z';
    out[27] = '\0';
}

/* ---- serializer ---- */

static void append_redacted(audit_buf *b)
{
    audit_buf_append_lit(b, "\"[REDACTED]\"");
}

/* A string field of the record: null, [REDACTED] when its key is listed, or
 * the escaped value. */
static void append_field(audit_buf *b, const audit_redactor *r, enum record_field field,
                         const char *value)
{
    audit_buf_append_lit(b, "\"");
    audit_buf_append(b, record_fields[field].key, record_fields[field].len);
    audit_buf_append_lit(b, "\":");
    if (value == NULL)
        audit_buf_append_lit(b, "null");
    else if (r->fields & (1u << field))
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
        audit_buf_append_lit(b, "null");
        return;
    }
    n = snprintf(tmp, sizeof(tmp), "%.17g", d);
    audit_buf_append(b, tmp, (size_t)n);
}

static void append_json_value(audit_buf *b, const audit_redactor *r, const json_t *v, int depth)
{
    if (depth > AUDIT_MAX_DEPTH) {
        audit_buf_append_lit(b, "\"[TRUNCATED]\"");
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
        audit_buf_append_i64(b, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        append_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        audit_buf_append_lit(b, "true");
        break;
    case JSON_FALSE:
        audit_buf_append_lit(b, "false");
        break;
    case JSON_NULL:
    default:
        audit_buf_append_lit(b, "null");
        break;
    }
}

static void append_actor(audit_buf *b, const talon_audit_event *ev, const audit_redactor *r)
{
    bool redact_roles = r->fields & (1u << FIELD_ROLES);

    audit_buf_append_lit(b, "\"actor\":{");
    append_field(b, r, FIELD_ID, ev->actor_id != NULL ? ev->actor_id : "anonymous");
    audit_buf_append_lit(b, ",\"roles\":[");
    for (size_t i = 0; ev->actor_roles != NULL && ev->actor_roles[i] != NULL; i++) {
        if (i > 0)
            audit_buf_append(b, ",", 1);
        if (redact_roles)
            append_redacted(b);
        else
            audit_buf_append_json_string(b, ev->actor_roles[i], strlen(ev->actor_roles[i]));
    }
    audit_buf_append_lit(b, "]},");
}

/* An object of n string fields, or null when every value is NULL. */
static void append_object(audit_buf *b, const audit_redactor *r, const enum record_field *fields,
                          const char *const *values, size_t n)
{
    size_t present = 0;

    for (size_t i = 0; i < n; i++)
        present += values[i] != NULL;
    if (present == 0) {
        audit_buf_append_lit(b, "null");
        return;
    }
    audit_buf_append_lit(b, "{");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            audit_buf_append_lit(b, ",");
        append_field(b, r, fields[i], values[i]);
    }
    audit_buf_append_lit(b, "}");
}

static const enum record_field request_fields[] = {
    FIELD_ID, FIELD_METHOD, FIELD_ROUTE, FIELD_PATH,
};
static const enum record_field target_fields[] = { FIELD_TYPE, FIELD_ID };

int audit_serialize_middle(audit_buf *b, const talon_audit_event *ev, int64_t time_ns,
                           const audit_redactor *r, const char *host, const char *trail_hex)
{
    char when[28];

    if (ev == NULL || ev->type == NULL || ev->type[0] == '\0')
        return -EINVAL;
    if (ev->data != NULL && !json_is_object(ev->data))
        return -EINVAL;

    audit_format_time(when, time_ns);
    audit_buf_append_lit(b, "\"time\":\"");
    audit_buf_append(b, when, 27);
    audit_buf_append_lit(b, "\",\"type\":");
    audit_buf_append_json_string(b, ev->type, strlen(ev->type));
    if (ev->outcome == TALON_AUDIT_SUCCESS)
        audit_buf_append_lit(b, ",\"outcome\":\"success\",");
    else
        audit_buf_append_lit(b, ",\"outcome\":\"failure\",");
    append_actor(b, ev, r);

    audit_buf_append_lit(b, "\"source\":{");
    append_field(b, r, FIELD_IP, ev->source_ip);
    audit_buf_append_lit(b, ",");
    append_field(b, r, FIELD_USER_AGENT, ev->user_agent);
    audit_buf_append_lit(b, "},\"request\":");
    const char *request[] = { ev->request_id, ev->method, ev->route, ev->path };
    append_object(b, r, request_fields, request, 4);
    audit_buf_append_lit(b, ",\"target\":");
    const char *target[] = { ev->target_type, ev->target_id };
    append_object(b, r, target_fields, target, 2);
    audit_buf_append_lit(b, ",");
    append_field(b, r, FIELD_REASON, ev->reason);

    audit_buf_append_lit(b, ",\"data\":");
    if (ev->data == NULL)
        audit_buf_append_lit(b, "{}");
    else
        append_json_value(b, r, ev->data, 0);

    audit_buf_append_lit(b, ",\"host\":");
    audit_buf_append_json_string(b, host, strlen(host));
    audit_buf_append_lit(b, ",\"trail\":\"");
    audit_buf_append_str(b, trail_hex);
    audit_buf_append_lit(b, "\",");
    return b->failed ? -ENOMEM : 0;
}
