/* Log formats: a format is compiled once, then turns records into lines.
 *
 * "text", "json" and "logfmt" write every field of a record; "combined",
 * "common" and custom nginx-style strings ("$remote_addr [$time_local] ...")
 * are compiled into a list of operations, as nginx's log_format is. Each
 * record is formatted in a single pass that writes while the line fits and
 * only counts once it does not, so the common case reads every input byte
 * once. A length pass followed by a write pass measured about twice as slow
 * (docs/logging.md, "Cost").
 *
 * Every output is exactly one line: untrusted bytes go through
 * talon_escape_text() or talon_escape_json(), and literal text of a custom
 * format may not contain control bytes. Field values are not truncated; the
 * HTTP engine bounds the request head (max_header_size), which bounds an
 * access-log line.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/fields.h"
#include "log/format_internal.h"
#include "log/format_out.h"
#include "talon/log.h"

/* ---- Output: JSON escapes and numbers (the buffer is in log/format_out.h) ---- */

static void out_json(out *o, const char *s, size_t n)
{
    /* The bytes out_plain_short() copies are the ones talon_escape_json()
     * copies unchanged too. */
    if (out_plain_short(o, s, n))
        return;

    size_t room = out_room(o);

    o->len += talon_escape_json(room ? o->buf + o->len : NULL, room, s, n);
}

static void out_i64(out *o, int64_t v)
{
    if (v < 0) {
        out_char(o, '-');
        out_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        out_u64(o, (uint64_t)v);
    }
}

/* "00" to "99". */
static const char two_digits[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Zero-padded decimal of exactly width digits (at most 20), two digits per
 * division, written straight into the line when it fits. In a perf profile
 * of a microbenchmark, the former digit loop through a stack buffer took
 * about 20 ns per timestamp, most of it a store-forwarding stall on
 * reading the buffer back. */
static void out_padded(out *o, uint64_t v, int width)
{
    char tmp[20];
    bool direct = o->len + (size_t)width <= o->cap;
    char *d = direct ? o->buf + o->len : tmp;
    int i = width;

    while (i >= 2) {
        memcpy(d + i - 2, two_digits + v % 100 * 2, 2);
        v /= 100;
        i -= 2;
    }
    if (i == 1)
        d[0] = (char)('0' + v % 10);
    if (direct)
        o->len += (size_t)width;
    else
        out_put(o, tmp, (size_t)width);
}

/* Shortest "%g" form that reads back as the same double; non-finite values
 * are written as json_null (JSON has no NaN) or as "nan"/"inf". */
static void out_double(out *o, double d, const char *json_null)
{
    char tmp[40];
    int n;

    if (!isfinite(d)) {
        if (json_null)
            out_str(o, json_null);
        else if (isnan(d))
            out_str(o, "nan");
        else
            out_str(o, d > 0 ? "inf" : "-inf");
        return;
    }
    n = snprintf(tmp, sizeof(tmp), "%.15g", d);
    if (strtod(tmp, NULL) != d)
        n = snprintf(tmp, sizeof(tmp), "%.17g", d);
    out_put(o, tmp, (size_t)n);
}

/* ---- Time ---- */

/* Split nanoseconds since the epoch into whole seconds (floor) and the rest. */
static void split_time(int64_t ns, int64_t *sec, int64_t *frac_ns)
{
    *sec = ns / 1000000000;
    *frac_ns = ns % 1000000000;
    if (*frac_ns < 0) {
        *frac_ns += 1000000000;
        (*sec)--;
    }
}

/* Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil
 * inverse), so UTC formatting takes no lock and no time zone lookup. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;

    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Per-thread caches of the formatted current second: formatting threads see
 * the same second for many records in a row. */
typedef struct utc_cache {
    int64_t sec;
    bool valid;
    char text[19]; /* 2024-05-01T12:00:00 */
} utc_cache;

typedef struct local_cache {
    int64_t sec;
    bool valid;
    char clf[26];     /* 01/May/2024:12:00:00 +0200 */
    char iso8601[25]; /* 2024-05-01T12:00:00+02:00 */
} local_cache;

static __thread utc_cache utc_now;
static __thread local_cache local_now;

static const char *const month_abbr[12] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

static const char *utc_seconds(int64_t sec)
{
    if (!utc_now.valid || utc_now.sec != sec) {
        int64_t days = sec / 86400, rem = sec % 86400, y;
        unsigned m, d;
        char tmp[32];

        if (rem < 0) {
            rem += 86400;
            days--;
        }
        civil_from_days(days, &y, &m, &d);
        /* Years outside 0000-9999 do not fit RFC 3339; clamp. */
        if (y < 0)
            y = 0;
        if (y > 9999)
            y = 9999;
        snprintf(tmp, sizeof(tmp), "%04d-%02u-%02uT%02d:%02d:%02d", (int)y, m, d,
                 (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
        memcpy(utc_now.text, tmp, sizeof(utc_now.text));
        utc_now.sec = sec;
        utc_now.valid = true;
    }
    return utc_now.text;
}

static const local_cache *local_seconds(int64_t sec)
{
    if (!local_now.valid || local_now.sec != sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        char tmp[128];
        long off;
        int off_h, off_m;
        char sign;

        if (!localtime_r(&t, &tm))
            memset(&tm, 0, sizeof(tm));
        off = tm.tm_gmtoff / 60;
        sign = off < 0 ? '-' : '+';
        if (off < 0)
            off = -off;
        off_h = (int)(off / 60 % 100);
        off_m = (int)(off % 60);
        snprintf(tmp, sizeof(tmp), "%02d/%s/%04d:%02d:%02d:%02d %c%02d%02d",
                 tm.tm_mday, month_abbr[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off_h, off_m);
        memcpy(local_now.clf, tmp, sizeof(local_now.clf));
        snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d",
                 (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off_h, off_m);
        memcpy(local_now.iso8601, tmp, sizeof(local_now.iso8601));
        local_now.sec = sec;
        local_now.valid = true;
    }
    return &local_now;
}

/* RFC 3339 UTC with microseconds: 2024-05-01T12:00:00.123456Z */
static void out_rfc3339_us(out *o, int64_t ns)
{
    int64_t sec, frac;

    split_time(ns, &sec, &frac);
    out_put(o, utc_seconds(sec), sizeof(utc_now.text));
    out_char(o, '.');
    out_padded(o, (uint64_t)frac / 1000, 6);
    out_char(o, 'Z');
}

/* ---- Levels ---- */

static const char *const level_lower[] = {
    "trace", "debug", "info", "warn", "error", "fatal", "off",
};
static const char *const level_upper[] = {
    "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF",
};

static unsigned level_index(talon_log_level level)
{
    return (unsigned)level <= TALON_LOG_OFF ? (unsigned)level : TALON_LOG_OFF;
}

/* ---- Records ---- */

static size_t field_str_len(const talon_field *f)
{
    return f->len == SIZE_MAX ? strlen(f->v.str) : f->len;
}

static size_t message_len(const talon_log_record *rec)
{
    if (!rec->message)
        return 0;
    return rec->message_len == SIZE_MAX ? strlen(rec->message) : rec->message_len;
}

/* A record with its fields indexed by interned key (fields.h), built once
 * per line for the operations of a compiled format. The index is complete,
 * and used, only when every key is interned or NULL, as in the access log's
 * records. */
typedef struct record_view {
    const talon_log_record *rec;
    bool indexed;
    /* 1 + the index of the first field of each key, 0 when it has none:
     * bytes, so that clearing them costs a few stores. */
    uint8_t by_key[LOG_KEY_COUNT];
} record_view;

static void record_view_init(record_view *v, const talon_log_record *rec)
{
    v->rec = rec;
    v->indexed = rec->nfields < UINT8_MAX;
    memset(v->by_key, 0, sizeof(v->by_key));
    for (size_t i = rec->nfields; v->indexed && i-- > 0;) {
        const char *k = rec->fields[i].key;

        if (!k)
            continue;
        if (!log_key_is_interned(k))
            v->indexed = false;
        else
            v->by_key[((uintptr_t)k - (uintptr_t)log_keys) / LOG_KEY_SIZE] = (uint8_t)(i + 1);
    }
}

/* Find the first field whose key has the text of key. Two different
 * interned keys never have the same text, so when key is interned only
 * fields with other key pointers need a string comparison. */
static const talon_field *find_field(const record_view *v, const char *key)
{
    const talon_log_record *rec = v->rec;
    bool key_interned = log_key_is_interned(key);

    if (v->indexed && key_interned) {
        uint8_t pos = v->by_key[((uintptr_t)key - (uintptr_t)log_keys) / LOG_KEY_SIZE];

        return pos ? &rec->fields[pos - 1] : NULL;
    }
    for (size_t i = 0; i < rec->nfields; i++) {
        const char *k = rec->fields[i].key;

        if (k == key)
            return &rec->fields[i];
        if (!k || (key_interned && log_key_is_interned(k)))
            continue;
        if (k[0] == key[0] && strcmp(k, key) == 0)
            return &rec->fields[i];
    }
    return NULL;
}

/* A field's value as a number, for durations and sizes. */
static bool field_number(const talon_field *f, int64_t *out_value)
{
    if (!f)
        return false;
    switch (f->type) {
    case TALON_FIELD_INT:
    case TALON_FIELD_TIME:
        *out_value = f->v.i;
        return true;
    case TALON_FIELD_UINT:
        *out_value = f->v.u > INT64_MAX ? INT64_MAX : (int64_t)f->v.u;
        return true;
    case TALON_FIELD_DOUBLE:
        if (!isfinite(f->v.d))
            return false;
        /* Clamp: converting a double outside int64_t's range is undefined. */
        if (f->v.d >= 0x1p63)
            *out_value = INT64_MAX;
        else if (f->v.d < -0x1p63)
            *out_value = INT64_MIN;
        else
            *out_value = (int64_t)f->v.d;
        return true;
    default:
        return false;
    }
}

typedef enum escape_mode { ESCAPE_TEXT = 0, ESCAPE_JSON } escape_mode;

static void out_escaped(out *o, escape_mode mode, const char *s, size_t n)
{
    if (mode == ESCAPE_JSON)
        out_json(o, s, n);
    else
        out_text(o, s, n);
}

/* A field value without quotes: strings escaped, numbers as digits. */
static void out_field_value(out *o, const talon_field *f, escape_mode mode)
{
    switch (f->type) {
    case TALON_FIELD_STR:
        if (f->v.str)
            out_escaped(o, mode, f->v.str, field_str_len(f));
        break;
    case TALON_FIELD_INT:
        out_i64(o, f->v.i);
        break;
    case TALON_FIELD_UINT:
        out_u64(o, f->v.u);
        break;
    case TALON_FIELD_DOUBLE:
        out_double(o, f->v.d, NULL);
        break;
    case TALON_FIELD_BOOL:
        out_str(o, f->v.b ? "true" : "false");
        break;
    case TALON_FIELD_TIME:
        out_rfc3339_us(o, f->v.i);
        break;
    }
}

/* ---- "text": 2024-05-01T12:00:00.123456Z INFO app message key=value ---- */

/* True when a text or logfmt value must be quoted to read back as one token. */
static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c >= 0x7f)
            return true;
    }
    return false;
}

static void format_text(out *o, const talon_log_record *rec)
{
    size_t mlen = message_len(rec);

    out_rfc3339_us(o, rec->time_ns);
    out_char(o, ' ');
    out_str(o, level_upper[level_index(rec->level)]);
    out_char(o, ' ');
    if (rec->logger)
        out_text(o, rec->logger, strlen(rec->logger));
    else
        out_char(o, '-');
    if (mlen) {
        out_char(o, ' ');
        out_text(o, rec->message, mlen);
    }
    for (size_t i = 0; i < rec->nfields; i++) {
        const talon_field *f = &rec->fields[i];

        if (!f->key)
            continue;
        out_char(o, ' ');
        out_text(o, f->key, strlen(f->key));
        out_char(o, '=');
        if (f->type == TALON_FIELD_STR) {
            size_t n = f->v.str ? field_str_len(f) : 0;

            if (f->v.str && !needs_quotes(f->v.str, n)) {
                out_put(o, f->v.str, n);
            } else {
                out_char(o, '"');
                if (f->v.str)
                    out_text(o, f->v.str, n);
                out_char(o, '"');
            }
        } else {
            out_field_value(o, f, ESCAPE_TEXT);
        }
    }
    out_char(o, '\n');
}

/* ---- "json": one ECS object per line ---- */

static void out_json_value(out *o, const talon_field *f)
{
    switch (f->type) {
    case TALON_FIELD_STR:
        if (!f->v.str) {
            out_put(o, "null", 4);
            return;
        }
        out_char(o, '"');
        out_json(o, f->v.str, field_str_len(f));
        out_char(o, '"');
        break;
    case TALON_FIELD_DOUBLE:
        out_double(o, f->v.d, "null");
        break;
    case TALON_FIELD_TIME:
        out_char(o, '"');
        out_rfc3339_us(o, f->v.i);
        out_char(o, '"');
        break;
    default:
        out_field_value(o, f, ESCAPE_JSON);
        break;
    }
}

/* ,"key": for each interned key, so that a field of an access record costs
 * one copy of known length. The TALON_KEY_ names contain no byte that JSON
 * escapes (test_format checks each). */
typedef struct json_key {
    const char *text;
    size_t len;
} json_key;

#define JSON_KEY(name) \
    [LOG_KEY_##name] = { ",\"" TALON_KEY_##name "\":", sizeof(",\"" TALON_KEY_##name "\":") - 1 }

static const json_key json_keys[LOG_KEY_COUNT] = {
    JSON_KEY(CLIENT_IP),      JSON_KEY(USER_NAME),    JSON_KEY(USER_ID),
    JSON_KEY(METHOD),         JSON_KEY(URL_ORIGINAL), JSON_KEY(URL_PATH),
    JSON_KEY(HTTP_VERSION),   JSON_KEY(STATUS),       JSON_KEY(BODY_BYTES),
    JSON_KEY(RESPONSE_BYTES), JSON_KEY(DURATION),     JSON_KEY(REFERRER),
    JSON_KEY(USER_AGENT),     JSON_KEY(REQUEST_ID),   JSON_KEY(TRACE_ID),
    JSON_KEY(ROUTE),          JSON_KEY(OUTCOME),
};

/* Write ,"key": with key escaped, or from json_keys when it is interned. */
static void out_json_key(out *o, const char *key)
{
    if (log_key_is_interned(key)) {
        const json_key *k = &json_keys[((uintptr_t)key - (uintptr_t)log_keys) / LOG_KEY_SIZE];

        if (k->len) { /* 0 for a key added to fields.h but not to json_keys */
            out_put(o, k->text, k->len);
            return;
        }
    }
    out_put(o, ",\"", 2);
    out_json(o, key, strlen(key));
    out_put(o, "\":", 2);
}

static void format_json(out *o, const talon_log_record *rec)
{
    out_put(o, "{\"@timestamp\":\"", 15);
    out_rfc3339_us(o, rec->time_ns);
    out_put(o, "\",\"log.level\":\"", 15);
    out_str(o, level_lower[level_index(rec->level)]);
    out_put(o, "\",\"log.logger\":\"", 16);
    if (rec->logger)
        out_json(o, rec->logger, strlen(rec->logger));
    out_put(o, "\",\"message\":\"", 13);
    out_json(o, rec->message ? rec->message : "", message_len(rec));
    out_put(o, "\",\"ecs.version\":\"" TALON_ECS_VERSION "\"",
            sizeof("\",\"ecs.version\":\"" TALON_ECS_VERSION "\"") - 1);
    /* NOTE: a field named like a fixed key ("message") or twice in one
     * record gives a duplicate JSON key: jq keeps the last value, and a
     * strict reader may reject the line. */
    for (size_t i = 0; i < rec->nfields; i++) {
        const talon_field *f = &rec->fields[i];

        if (!f->key)
            continue;
        out_json_key(o, f->key);
        out_json_value(o, f);
    }
    out_put(o, "}\n", 2);
}

/* ---- "logfmt": time=... level=info logger=app msg="..." key=value ---- */

/* A logfmt value: bare when it is one safe token, otherwise quoted with
 * JSON-style escapes, which go-logfmt and most logfmt readers decode. */
static void out_logfmt_string(out *o, const char *s, size_t n)
{
    if (!needs_quotes(s, n)) {
        out_put(o, s, n);
        return;
    }
    out_char(o, '"');
    out_json(o, s, n);
    out_char(o, '"');
}

static void format_logfmt(out *o, const talon_log_record *rec)
{
    out_put(o, "time=", 5);
    out_rfc3339_us(o, rec->time_ns);
    out_put(o, " level=", 7);
    out_str(o, level_lower[level_index(rec->level)]);
    out_put(o, " logger=", 8);
    if (rec->logger)
        out_logfmt_string(o, rec->logger, strlen(rec->logger));
    else
        out_put(o, "\"\"", 2);
    out_put(o, " msg=", 5);
    out_logfmt_string(o, rec->message ? rec->message : "", message_len(rec));
    for (size_t i = 0; i < rec->nfields; i++) {
        const talon_field *f = &rec->fields[i];

        if (!f->key)
            continue;
        out_char(o, ' ');
        /* A key cannot be quoted in logfmt; escape what would break it. */
        out_text(o, f->key, strlen(f->key));
        out_char(o, '=');
        if (f->type == TALON_FIELD_STR)
            out_logfmt_string(o, f->v.str ? f->v.str : "", f->v.str ? field_str_len(f) : 0);
        else
            out_field_value(o, f, ESCAPE_JSON);
    }
    out_char(o, '\n');
}

/* ---- Compiled formats ---- */

static void out_missing(out *o, escape_mode mode)
{
    /* nginx writes "-" for an empty variable, and nothing with escape=json. */
    if (mode == ESCAPE_TEXT)
        out_char(o, '-');
}

static void out_field_or_dash(out *o, const talon_field *f, escape_mode mode)
{
    if (!f || (f->type == TALON_FIELD_STR && (!f->v.str || field_str_len(f) == 0)))
        out_missing(o, mode);
    else
        out_field_value(o, f, mode);
}

static const char *field_string(const talon_field *f, size_t *len)
{
    if (!f || f->type != TALON_FIELD_STR || !f->v.str)
        return NULL;
    *len = field_str_len(f);
    return *len ? f->v.str : NULL;
}

/* $server_protocol: "HTTP/1.1" from the ECS http.version "1.1". */
static void out_protocol(out *o, const talon_field *f, escape_mode mode)
{
    size_t n;
    const char *v = field_string(f, &n);

    if (!v) {
        out_missing(o, mode);
        return;
    }
    if (!(n >= 5 && memcmp(v, "HTTP/", 5) == 0))
        out_put(o, "HTTP/", 5);
    out_escaped(o, mode, v, n);
}

/* $request: the request line, method SP target SP protocol. */
static void out_request_line(out *o, const record_view *view, escape_mode mode)
{
    size_t mn = 0, tn = 0;
    const char *method = field_string(find_field(view, LOG_KEY(METHOD)), &mn);
    const char *target = field_string(find_field(view, LOG_KEY(URL_ORIGINAL)), &tn);
    const talon_field *version = find_field(view, LOG_KEY(HTTP_VERSION));

    if (!method && !target) {
        out_missing(o, mode);
        return;
    }
    if (method)
        out_escaped(o, mode, method, mn);
    else
        out_char(o, '-');
    out_char(o, ' ');
    if (target)
        out_escaped(o, mode, target, tn);
    else
        out_char(o, '-');
    if (version) {
        out_char(o, ' ');
        out_protocol(o, version, mode);
    }
}

static void run_op(out *o, const format_op *op, const record_view *view, escape_mode mode)
{
    const talon_log_record *rec = view->rec;
    const talon_field *f;
    int64_t v, sec, frac;

    if (op->len) /* out_put() of 0 bytes to a NULL buffer would be undefined */
        out_put(o, op->text, op->len);
    switch (op->kind) {
    case OP_LITERAL:
        break;
    case OP_FIELD:
        out_field_or_dash(o, find_field(view, op->key), mode);
        break;
    case OP_FIELD_OR:
        f = find_field(view, op->key);
        if (!f || !field_string(f, &(size_t){ 0 }))
            f = find_field(view, op->key2);
        out_field_or_dash(o, f, mode);
        break;
    case OP_PROTOCOL:
        out_protocol(o, find_field(view, LOG_KEY(HTTP_VERSION)), mode);
        break;
    case OP_REQUEST:
        out_request_line(o, view, mode);
        break;
    case OP_TIME_LOCAL:
        split_time(rec->time_ns, &sec, &frac);
        out_put(o, local_seconds(sec)->clf, sizeof(local_now.clf));
        break;
    case OP_TIME_ISO8601:
        split_time(rec->time_ns, &sec, &frac);
        out_put(o, local_seconds(sec)->iso8601, sizeof(local_now.iso8601));
        break;
    case OP_TIME_UTC:
        out_rfc3339_us(o, rec->time_ns);
        break;
    case OP_MSEC:
        split_time(rec->time_ns, &sec, &frac);
        out_i64(o, sec);
        out_char(o, '.');
        out_padded(o, (uint64_t)frac / 1000000, 3);
        break;
    case OP_DURATION_S:
        if (!field_number(find_field(view, LOG_KEY(DURATION)), &v) || v < 0) {
            out_missing(o, mode);
            break;
        }
        v /= 1000000; /* ms */
        out_i64(o, v / 1000);
        out_char(o, '.');
        out_padded(o, (uint64_t)(v % 1000), 3);
        break;
    case OP_DURATION_US:
        if (!field_number(find_field(view, LOG_KEY(DURATION)), &v)) {
            out_missing(o, mode);
            break;
        }
        out_i64(o, v / 1000);
        break;
    case OP_LEVEL:
        out_str(o, level_lower[level_index(rec->level)]);
        break;
    case OP_LOGGER:
        if (rec->logger && rec->logger[0])
            out_escaped(o, mode, rec->logger, strlen(rec->logger));
        else
            out_missing(o, mode);
        break;
    case OP_MESSAGE:
        if (message_len(rec))
            out_escaped(o, mode, rec->message, message_len(rec));
        else
            out_missing(o, mode);
        break;
    }
}

size_t talon_log_format_record(const talon_log_format *fmt, const talon_log_record *rec,
                               char *buf, size_t cap)
{
    out o = { .buf = buf, .cap = buf ? cap : 0, .len = 0 };
    record_view view;

    switch (fmt->kind) {
    case FORMAT_TEXT:
        format_text(&o, rec);
        break;
    case FORMAT_JSON:
        format_json(&o, rec);
        break;
    case FORMAT_LOGFMT:
        format_logfmt(&o, rec);
        break;
    case FORMAT_RFC5424:
        return log_format_rfc5424(fmt, rec, buf, cap);
    case FORMAT_OPS:
        record_view_init(&view, rec);
        for (size_t i = 0; i < fmt->nops; i++)
            run_op(&o, &fmt->ops[i], &view, fmt->escape);
        out_char(&o, '\n');
        break;
    }
    return o.len;
}
