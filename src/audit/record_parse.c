/* Record parser: one trail line into a talon_audit_record, in place.
 *
 * The parser is strict because the verifier relies on it: every key in the
 * order docs/audit-format.md gives, no whitespace between tokens, no raw
 * control bytes, valid UTF-8, lowercase hex ids. It copies nothing; fields
 * point into the line.
 */
#include "audit/reader_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_DEPTH 512 /* JSON nesting accepted in data; the writer cuts data at 64 levels */

/* For the small steps of the record grammar: inlined, so that the scan
 * position stays in a register rather than going through memory at each
 * call. */
#define SCAN_STEP static inline __attribute__((always_inline))

/* ---- Scanning ----------------------------------------------------------- */

typedef struct scan {
    const char *p, *start, *end;
    const char *why;      /* what was expected where parsing stopped */
} scan;

SCAN_STEP bool fail(scan *s, const char *why)
{
    s->why = why;
    return false;
}

SCAN_STEP uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

SCAN_STEP uint32_t load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* memcmp(p, text, n) == 0 for a literal text: with n known after inlining,
 * this compiles to one to four compares of overlapping words, where GCC
 * would call memcmp for most lengths. */
SCAN_STEP bool bytes_equal(const char *p, const char *text, size_t n)
{
    if (n < 4) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != text[i])
                return false;
        return true;
    }
    if (n < 8)
        return ((load32(p) ^ load32(text)) | (load32(p + n - 4) ^ load32(text + n - 4))) == 0;
    uint64_t diff = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        diff |= load64(p + i) ^ load64(text + i);
    if (i < n)
        diff |= load64(p + n - 8) ^ load64(text + n - 8);
    return diff == 0;
}

SCAN_STEP bool lit(scan *s, const char *text, size_t n)
{
    if ((size_t)(s->end - s->p) < n || !bytes_equal(s->p, text, n))
        return fail(s, text);
    s->p += n;
    return true;
}
#define LIT(s, text) lit((s), (text), sizeof(text) - 1)

/* Skip bytes that need no attention inside a string: printable ASCII other
 * than '"' and '\\'. */
SCAN_STEP const char *skip_plain(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i del = _mm_set1_epi8(0x7f), space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* A signed compare below 0x20 also catches bytes >= 0x80 (negative). */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                 _mm_or_si128(_mm_cmpeq_epi8(v, del), _mm_cmplt_epi8(v, space)));
        int mask = _mm_movemask_epi8(m);
        if (mask)
            return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#endif
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f)
            break;
        p++;
    }
    return p;
}

size_t reader_utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c == 0xe0)
        n = 3, lo = 0xa0;
    else if (c == 0xed)
        n = 3, hi = 0x9f;
    else if (c >= 0xe1 && c <= 0xef)
        n = 3;
    else if (c == 0xf0)
        n = 4, lo = 0x90;
    else if (c >= 0xf1 && c <= 0xf3)
        n = 4;
    else if (c == 0xf4)
        n = 4, hi = 0x8f;
    else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if (p[k] < 0x80 || p[k] > 0xbf)
            return 0;
    return n;
}

static bool is_hex(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* The string that starts at begin, when it holds an escape or a byte that
 * is not printable ASCII: str's slow path. */
static bool str_rest(scan *s, const char *begin, talon_audit_str *out)
{
    const char *p = begin, *end = s->end;
    bool escaped = false;
    for (;;) {
        p = skip_plain(p, end);
        if (p >= end)
            return fail(s, "the end of a string");
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c == '\\') {
            escaped = true;
            if (p + 1 >= end)
                return fail(s, "an escape");
            char e = p[1];
            if (e == 'u') {
                if (end - p < 6 || !is_hex((unsigned char)p[2]) || !is_hex((unsigned char)p[3]) ||
                    !is_hex((unsigned char)p[4]) || !is_hex((unsigned char)p[5]))
                    return fail(s, "\\u and 4 hex digits");
                p += 6;
            } else if (strchr("\"\\/bfnrt", e) && e) {
                p += 2;
            } else {
                return fail(s, "a valid escape");
            }
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            s->p = p;
            return fail(s, "no raw control byte");
        }
        size_t n = reader_utf8_len((const unsigned char *)p, (const unsigned char *)end);
        if (n == 0) {
            s->p = p;
            return fail(s, "valid UTF-8");
        }
        p += n;
    }
    if (out) {
        out->p = begin;
        out->len = (size_t)(p - begin);
        out->null = false;
        out->escaped = escaped;
    }
    s->p = p + 1;
    return true;
}

/* A JSON string at s->p; out (may be NULL) gets the span without quotes. */
SCAN_STEP bool str(scan *s, talon_audit_str *out)
{
    const char *p = s->p;
    if (p >= s->end || *p != '"')
        return fail(s, "a string");
    /* Most strings are printable ASCII: their first stop is the closing quote. */
    const char *begin = p + 1, *q = skip_plain(begin, s->end);
    if (q < s->end && *q == '"') {
        if (out)
            *out = (talon_audit_str){ .p = begin, .len = (size_t)(q - begin), .null = false, .escaped = false };
        s->p = q + 1;
        return true;
    }
    return str_rest(s, begin, out);
}

SCAN_STEP bool str_or_null(scan *s, talon_audit_str *out)
{
    if (s->end - s->p >= 4 && memcmp(s->p, "null", 4) == 0) {
        s->p += 4;
        if (out)
            *out = (talon_audit_str){ .p = NULL, .len = 0, .null = true, .escaped = false };
        return true;
    }
    return str(s, out);
}

/* A non-negative decimal integer without leading zeros. */
SCAN_STEP bool scan_uint(scan *s, uint64_t *out)
{
    const char *p = s->p;
    uint64_t v = 0;
    if (p >= s->end || *p < '0' || *p > '9')
        return fail(s, "a number");
    if (*p == '0' && p + 1 < s->end && p[1] >= '0' && p[1] <= '9')
        return fail(s, "a number without leading zeros");
    while (p < s->end && *p >= '0' && *p <= '9') {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return fail(s, "a number below 2^64");
        v = v * 10 + d;
        p++;
    }
    s->p = p;
    *out = v;
    return true;
}

static const char *skip_number(const char *p, const char *end)
{
    if (p < end && *p == '-')
        p++;
    if (p >= end)
        return NULL;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    return p;
}

/* Skip the JSON value at p, which lies in the line that scan line covers
 * (no whitespace allowed between tokens). Returns the byte after it, or NULL
 * when it is not valid JSON. */
static const char *skip_value(const scan *line, const char *p, int depth)
{
    const char *end = line->end;
    if (p >= end || depth > MAX_DEPTH)
        return NULL;
    scan s = *line;
    s.p = p;
    switch (*p) {
    case '"':
        return str(&s, NULL) ? s.p : NULL;
    case '{':
        p++;
        if (p < end && *p == '}')
            return p + 1;
        for (;;) {
            s.p = p;
            if (!str(&s, NULL))
                return NULL;
            p = s.p;
            if (p >= end || *p != ':')
                return NULL;
            p = skip_value(line, p + 1, depth + 1);
            if (!p || p >= end)
                return NULL;
            if (*p == '}')
                return p + 1;
            if (*p != ',')
                return NULL;
            p++;
        }
    case '[':
        p++;
        if (p < end && *p == ']')
            return p + 1;
        for (;;) {
            p = skip_value(line, p, depth + 1);
            if (!p || p >= end)
                return NULL;
            if (*p == ']')
                return p + 1;
            if (*p != ',')
                return NULL;
            p++;
        }
    case 't':
        return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return skip_number(p, end);
    }
}

static bool value_of(scan *s, char open, const char **out, size_t *outlen, const char *what)
{
    if (s->p >= s->end || *s->p != open)
        return fail(s, what);
    const char *e = skip_value(s, s->p, 1);
    if (!e)
        return fail(s, what);
    *out = s->p;
    *outlen = (size_t)(e - s->p);
    s->p = e;
    return true;
}

/* An array of strings, e.g. the actor's roles. */
static bool str_array(scan *s, const char **out, size_t *outlen)
{
    const char *begin = s->p;
    if (!LIT(s, "["))
        return false;
    if (s->p < s->end && *s->p == ']') {
        s->p++;
    } else {
        for (;;) {
            if (!str(s, NULL))
                return false;
            if (s->p < s->end && *s->p == ']') {
                s->p++;
                break;
            }
            if (!LIT(s, ","))
                return false;
        }
    }
    *out = begin;
    *outlen = (size_t)(s->p - begin);
    return true;
}

/* True when all n bytes are lowercase hex digits; n is a multiple of 16. */
SCAN_STEP bool lower_hex(const char *p, size_t n)
{
#ifdef __SSE2__
    const __m128i below0 = _mm_set1_epi8('0' - 1), above9 = _mm_set1_epi8('9' + 1);
    const __m128i belowa = _mm_set1_epi8('a' - 1), abovef = _mm_set1_epi8('f' + 1);
    for (size_t i = 0; i < n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        /* Bytes >= 0x80 are negative in a signed compare, so neither range takes them. */
        __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, below0), _mm_cmplt_epi8(v, above9));
        __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(v, belowa), _mm_cmplt_epi8(v, abovef));
        if (_mm_movemask_epi8(_mm_or_si128(digit, letter)) != 0xffff)
            return false;
    }
    return true;
#else
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
#endif
}

SCAN_STEP bool hex_field(const talon_audit_str *f, size_t n)
{
    return f->len == n && !f->escaped && lower_hex(f->p, n);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Days in month m (1 to 12) of year y, Gregorian. */
unsigned reader_days_in_month(unsigned y, unsigned m)
{
    static const unsigned days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Microseconds since the Unix epoch of a UTC date and time, after checking
 * the ranges RFC 3339 section 5.7 gives (second 60: a leap second).
 * Returns 0, -EINVAL for a field out of its range, or -ERANGE for a day
 * past the end of its month (2026-02-30). */
static int civil_us(unsigned Y, unsigned M, unsigned D, unsigned h, unsigned m, unsigned sec,
                    int64_t frac_us, int64_t *out_us)
{
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -EINVAL;
    if (D > reader_days_in_month(Y, M))
        return -ERANGE;
    int64_t days = days_from_civil((int64_t)Y, M, D);
    *out_us = (days * 86400 + h * 3600 + m * 60 + sec) * 1000000 + frac_us;
    return 0;
}

SCAN_STEP bool digits(const char *p, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return true;
}

int talon_audit_parse_time(const char *t, size_t len, int64_t *out_us)
{
    unsigned Y, M, D, h = 0, m = 0, sec = 0;
    int64_t frac_us = 0;
    if (len < 10 || !digits(t, 4, &Y) || t[4] != '-' || !digits(t + 5, 2, &M) || t[7] != '-' ||
        !digits(t + 8, 2, &D))
        return -EINVAL;
    size_t i = 10;
    int64_t offset_s = 0;
    if (len > 10) {
        if ((t[10] != 'T' && t[10] != 't' && t[10] != ' ') || len < 19 || !digits(t + 11, 2, &h) ||
            t[13] != ':' || !digits(t + 14, 2, &m) || t[16] != ':' || !digits(t + 17, 2, &sec))
            return -EINVAL;
        i = 19;
        if (i < len && t[i] == '.') {
            i++;
            int nd = 0;
            int64_t scale = 100000;
            while (i < len && t[i] >= '0' && t[i] <= '9') {
                if (nd < 6)
                    frac_us += (t[i] - '0') * scale, scale /= 10;
                nd++, i++;
            }
            if (nd == 0)
                return -EINVAL;
        }
        if (i == len)
            return -EINVAL; /* RFC 3339 needs a zone: Z or +hh:mm */
        if (t[i] == 'Z' || t[i] == 'z') {
            i++;
        } else if (t[i] == '+' || t[i] == '-') {
            unsigned oh, om;
            if (len - i != 6 || !digits(t + i + 1, 2, &oh) || t[i + 3] != ':' || !digits(t + i + 4, 2, &om))
                return -EINVAL;
            if (oh > 23 || om > 59)
                return -EINVAL; /* RFC 3339 section 5.6: time-numoffset */
            offset_s = (int64_t)(oh * 3600 + om * 60) * (t[i] == '+' ? 1 : -1);
            i += 6;
        }
        if (i != len)
            return -EINVAL;
    }
    int64_t us;
    int rc = civil_us(Y, M, D, h, m, sec, frac_us, &us);
    if (rc < 0)
        return rc;
    *out_us = us - offset_s * 1000000;
    return 0;
}

/* talon_audit_str_equals for a literal value, inlined for an unescaped field. */
SCAN_STEP bool literal_equals(const talon_audit_str *f, const char *value)
{
    size_t n = strlen(value);
    if (f->escaped)
        return talon_audit_str_equals(f, value);
    return f->len == n && bytes_equal(f->p, value, n);
}

/* The time field: exactly YYYY-MM-DDTHH:MM:SS.ffffffZ. */
static bool record_time(const talon_audit_str *f, int64_t *us)
{
    const char *t = f->p;
    unsigned Y, M, D, h, m, sec, frac;
    if (f->len != 27 || f->escaped || !digits(t, 4, &Y) || t[4] != '-' || !digits(t + 5, 2, &M) ||
        t[7] != '-' || !digits(t + 8, 2, &D) || t[10] != 'T' || !digits(t + 11, 2, &h) || t[13] != ':' ||
        !digits(t + 14, 2, &m) || t[16] != ':' || !digits(t + 17, 2, &sec) || t[19] != '.' ||
        !digits(t + 20, 6, &frac) || t[26] != 'Z')
        return false;
    return civil_us(Y, M, D, h, m, sec, frac, us) == 0;
}

int talon_audit_record_parse(const char *line, size_t len, talon_audit_record *r,
                             char *err, size_t errlen)
{
    static const talon_audit_str null_str = { .p = NULL, .len = 0, .null = true, .escaped = false };
    scan s = { .p = line, .start = line, .end = line + len, .why = NULL };
    /* Every other field is written below when the line parses, so the
     * record is zeroed only on failure: zeroing it first cost 7 % of the
     * parse time. */
    r->line = line;
    r->len = len;
    r->file = NULL;
    r->lineno = 0;
    uint64_t v;
    const char *what = NULL;

    if (!LIT(&s, "{\"v\":") || !scan_uint(&s, &v))
        goto bad;
    if (v != 1) {
        what = "format version 1";
        goto bad;
    }
    if (!LIT(&s, ",\"seq\":") || !scan_uint(&s, &r->seq) || !LIT(&s, ",\"epoch\":") ||
        !scan_uint(&s, &r->epoch) || !LIT(&s, ",\"time\":") || !str(&s, &r->time))
        goto bad;
    if (!record_time(&r->time, &r->time_us)) {
        what = "time as YYYY-MM-DDTHH:MM:SS.ffffffZ";
        goto bad;
    }
    if (!LIT(&s, ",\"type\":") || !str(&s, &r->type) || !LIT(&s, ",\"outcome\":") ||
        !str(&s, &r->outcome))
        goto bad;
    if (!literal_equals(&r->outcome, "success") && !literal_equals(&r->outcome, "failure")) {
        what = "outcome success or failure";
        goto bad;
    }
    if (!LIT(&s, ",\"actor\":{\"id\":") || !str(&s, &r->actor_id) || !LIT(&s, ",\"roles\":") ||
        !str_array(&s, &r->roles, &r->roles_len) || !LIT(&s, "},\"source\":{\"ip\":") ||
        !str_or_null(&s, &r->source_ip) || !LIT(&s, ",\"user_agent\":") ||
        !str_or_null(&s, &r->user_agent) || !LIT(&s, "},\"request\":"))
        goto bad;
    if (s.end - s.p >= 4 && memcmp(s.p, "null", 4) == 0) {
        s.p += 4;
        r->request_id = r->method = r->route = r->path = null_str;
    } else if (!LIT(&s, "{\"id\":") || !str_or_null(&s, &r->request_id) || !LIT(&s, ",\"method\":") ||
               !str_or_null(&s, &r->method) || !LIT(&s, ",\"route\":") || !str_or_null(&s, &r->route) ||
               !LIT(&s, ",\"path\":") || !str_or_null(&s, &r->path) || !LIT(&s, "}")) {
        goto bad;
    }
    if (!LIT(&s, ",\"target\":"))
        goto bad;
    if (s.end - s.p >= 4 && memcmp(s.p, "null", 4) == 0) {
        s.p += 4;
        r->target_type = r->target_id = null_str;
    } else if (!LIT(&s, "{\"type\":") || !str_or_null(&s, &r->target_type) || !LIT(&s, ",\"id\":") ||
               !str_or_null(&s, &r->target_id) || !LIT(&s, "}")) {
        goto bad;
    }
    if (!LIT(&s, ",\"reason\":") || !str_or_null(&s, &r->reason) || !LIT(&s, ",\"data\":") ||
        !value_of(&s, '{', &r->data, &r->data_len, "a data object") || !LIT(&s, ",\"host\":") ||
        !str(&s, &r->host) || !LIT(&s, ",\"trail\":") || !str(&s, &r->trail))
        goto bad;
    if (!hex_field(&r->trail, 32)) {
        what = "trail as 32 lowercase hex digits";
        goto bad;
    }
    if (!LIT(&s, ",\"prev\":") || !str(&s, &r->prev))
        goto bad;
    if (!hex_field(&r->prev, 64)) {
        what = "prev as 64 lowercase hex digits";
        goto bad;
    }
    if (!LIT(&s, ","))
        goto bad;
    r->prefix_len = (size_t)(s.p - line);
    if (!LIT(&s, "\"mac\":") || !str(&s, &r->mac))
        goto bad;
    if (!hex_field(&r->mac, 64)) {
        what = "mac as 64 lowercase hex digits";
        goto bad;
    }
    if (!LIT(&s, "}"))
        goto bad;
    if (s.p != s.end) {
        what = "the end of the line after the record";
        goto bad;
    }
    return 0;
bad:
    memset(r, 0, sizeof *r);
    r->line = line;
    r->len = len;
    if (!what)
        what = s.why ? s.why : "a valid record";
    if (err && errlen)
        snprintf(err, errlen, "at byte %zu: expected %s", (size_t)(s.p - line) + 1, what);
    return -EINVAL;
}

/* ---- Strings ------------------------------------------------------------ */

static unsigned hexval(char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

static size_t put_utf8(char *tmp, unsigned cp)
{
    if (cp < 0x80) {
        tmp[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        tmp[0] = (char)(0xc0 | (cp >> 6));
        tmp[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        tmp[0] = (char)(0xe0 | (cp >> 12));
        tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        tmp[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    tmp[0] = (char)(0xf0 | (cp >> 18));
    tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    tmp[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t talon_audit_str_decode(const talon_audit_str *f, char *buf, size_t buflen)
{
    size_t n = 0;
    if (f->null || !f->p) {
        if (buflen)
            buf[0] = '\0';
        return 0;
    }
    const char *p = f->p, *end = f->p + f->len;
    while (p < end) {
        char tmp[4];
        size_t k = 1;
        if (*p != '\\') {
            tmp[0] = *p++;
        } else {
            char e = p[1];
            p += 2;
            switch (e) {
            case 'n': tmp[0] = '\n'; break;
            case 'r': tmp[0] = '\r'; break;
            case 't': tmp[0] = '\t'; break;
            case 'b': tmp[0] = '\b'; break;
            case 'f': tmp[0] = '\f'; break;
            case 'u': {
                unsigned cp = hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]);
                p += 4;
                /* A surrogate pair joins into one code point; a lone surrogate stays as is. */
                if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                    unsigned lo = hexval(p[2]) << 12 | hexval(p[3]) << 8 | hexval(p[4]) << 4 | hexval(p[5]);
                    if (lo >= 0xdc00 && lo < 0xe000) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        p += 6;
                    }
                }
                k = put_utf8(tmp, cp);
                break;
            }
            default: tmp[0] = e; break; /* '"', '\\', '/' */
            }
        }
        for (size_t j = 0; j < k; j++, n++)
            if (n + 1 < buflen)
                buf[n] = tmp[j];
    }
    if (buflen)
        buf[n < buflen ? n : buflen - 1] = '\0';
    return n;
}

bool talon_audit_str_equals(const talon_audit_str *f, const char *value)
{
    if (f->null || !f->p)
        return false;
    size_t vlen = strlen(value);
    if (!f->escaped)
        return f->len == vlen && memcmp(f->p, value, vlen) == 0;
    char small[512];
    char *buf = f->len + 1 <= sizeof small ? small : malloc(f->len + 1);
    if (!buf)
        return false;
    size_t n = talon_audit_str_decode(f, buf, f->len + 1);
    bool eq = n == vlen && memcmp(buf, value, vlen) == 0;
    if (buf != small)
        free(buf);
    return eq;
}
