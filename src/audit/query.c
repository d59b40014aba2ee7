/* Trail queries: select records by type, actor, outcome, time, request,
 * target and source.
 *
 * A query first searches the mapped bytes with memmem for the most selective
 * filter as it must appear in a record (for example "actor":{"id":"alice",)
 * and parses only the lines that contain it; the parse then checks every
 * filter exactly, so a hit inside a data value costs time but never a wrong
 * match.
 */
#include "audit/reader_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define QUERY_CHUNK (4u << 20) /* bytes scanned at a time when walking a file backwards */

/* Name the month length in err for a time the parser rejected with
 * -ERANGE: its YYYY-MM-DD prefix is well formed, but the day does not exist
 * (2026-02-30). Returns -EINVAL. */
static int bad_date(const char *name, const char *value, char *err, size_t errlen)
{
    unsigned y = 0, m = 0;
    for (int i = 0; i < 4; i++)
        y = y * 10 + (unsigned)(value[i] - '0');
    m = (unsigned)(value[5] - '0') * 10 + (unsigned)(value[6] - '0');
    snprintf(err, errlen, "invalid %s time \"%s\": %04u-%02u has %u days", name, value, y, m,
             reader_days_in_month(y, m));
    return -EINVAL;
}

void talon_audit_filter_init(talon_audit_filter *f)
{
    memset(f, 0, sizeof *f);
    f->since_us = INT64_MIN;
    f->until_us = INT64_MAX;
}

void talon_audit_filter_release(talon_audit_filter *f)
{
    free(f->type);
    free(f->actor);
    free(f->outcome);
    free(f->request_id);
    free(f->target_type);
    free(f->target_id);
    free(f->source_ip);
    talon_audit_filter_init(f);
}

static int set_str(char **slot, const char *value, const char *name, char *err, size_t errlen)
{
    if (!*value) {
        snprintf(err, errlen, "empty value for filter %s", name);
        return -EINVAL;
    }
    char *copy = strdup(value);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

int talon_audit_filter_set(talon_audit_filter *f, const char *name_in, const char *value,
                           char *err, size_t errlen)
{
    char name[32];
    size_t n = strlen(name_in);
    if (n >= sizeof name) {
        snprintf(err, errlen, "unknown filter \"%s\"", name_in);
        return -ENOENT;
    }
    for (size_t i = 0; i <= n; i++)
        name[i] = name_in[i] == '-' ? '_' : name_in[i];

    if (strcmp(name, "type") == 0)
        return set_str(&f->type, value, name, err, errlen);
    if (strcmp(name, "actor") == 0)
        return set_str(&f->actor, value, name, err, errlen);
    if (strcmp(name, "request_id") == 0 || strcmp(name, "request") == 0)
        return set_str(&f->request_id, value, name, err, errlen);
    if (strcmp(name, "target_type") == 0)
        return set_str(&f->target_type, value, name, err, errlen);
    if (strcmp(name, "target_id") == 0)
        return set_str(&f->target_id, value, name, err, errlen);
    if (strcmp(name, "source_ip") == 0 || strcmp(name, "source") == 0 || strcmp(name, "ip") == 0) {
        unsigned char addr[sizeof(struct in6_addr)];
        if (inet_pton(AF_INET, value, addr) != 1 && inet_pton(AF_INET6, value, addr) != 1) {
            snprintf(err, errlen, "invalid source address \"%s\": use an IPv4 or IPv6 address "
                     "such as 10.1.2.3 or 2001:db8::1", value);
            return -EINVAL;
        }
        return set_str(&f->source_ip, value, name, err, errlen);
    }
    if (strcmp(name, "outcome") == 0) {
        if (strcmp(value, "success") != 0 && strcmp(value, "failure") != 0) {
            snprintf(err, errlen, "invalid outcome \"%s\": use success or failure", value);
            return -EINVAL;
        }
        return set_str(&f->outcome, value, name, err, errlen);
    }
    if (strcmp(name, "target") == 0) {
        /* TYPE:ID or TYPE */
        const char *colon = strchr(value, ':');
        if (!colon)
            return set_str(&f->target_type, value, name, err, errlen);
        char *type = strndup(value, (size_t)(colon - value));
        if (!type) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        int rc = *type ? set_str(&f->target_type, type, name, err, errlen) : 0;
        free(type);
        return rc < 0 ? rc : set_str(&f->target_id, colon + 1, name, err, errlen);
    }
    if (strcmp(name, "since") == 0 || strcmp(name, "until") == 0) {
        int64_t us;
        int rc = talon_audit_parse_time(value, strlen(value), &us);
        if (rc == -ERANGE)
            return bad_date(name, value, err, errlen);
        if (rc != 0) {
            snprintf(err, errlen, "invalid %s time \"%s\": use RFC 3339, e.g. 2026-12-04T20:38:53Z or 2026-12-04",
                     name, value);
            return -EINVAL;
        }
        if (name[0] == 's')
            f->since_us = us;
        else
            f->until_us = us;
        return 0;
    }
    if (strcmp(name, "limit") == 0) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || end == value || *end || value[0] == '-' || v == 0) {
            snprintf(err, errlen, "invalid limit \"%s\": use a whole number of 1 or more", value);
            return -EINVAL;
        }
        f->limit = v;
        return 0;
    }
    if (strcmp(name, "order") == 0) {
        if (strcmp(value, "asc") == 0)
            f->newest_first = false;
        else if (strcmp(value, "desc") == 0)
            f->newest_first = true;
        else {
            snprintf(err, errlen, "invalid order \"%s\": use asc or desc", value);
            return -EINVAL;
        }
        return 0;
    }
    snprintf(err, errlen, "unknown filter \"%s\" (known: type, actor, outcome, since, until, request_id, "
             "target, target_type, target_id, source_ip, limit, order)", name_in);
    return -ENOENT;
}

static bool str_has_prefix(const talon_audit_str *s, const char *prefix, size_t plen)
{
    if (s->null || !s->p)
        return false;
    if (!s->escaped)
        return s->len >= plen && memcmp(s->p, prefix, plen) == 0;
    char buf[512];
    size_t n = talon_audit_str_decode(s, buf, sizeof buf);
    return n >= plen && plen < sizeof buf && memcmp(buf, prefix, plen) == 0;
}

static bool type_matches(const char *want, const talon_audit_str *type)
{
    size_t n = strlen(want);
    if (n > 0 && want[n - 1] == '*')
        return str_has_prefix(type, want, n - 1);
    return talon_audit_str_equals(type, want);
}

bool talon_audit_filter_match(const talon_audit_filter *f, const talon_audit_record *r)
{
    if (r->time_us < f->since_us || r->time_us >= f->until_us)
        return false;
    if (f->type && !type_matches(f->type, &r->type))
        return false;
    if (f->outcome && !talon_audit_str_equals(&r->outcome, f->outcome))
        return false;
    if (f->actor && !talon_audit_str_equals(&r->actor_id, f->actor))
        return false;
    if (f->request_id && !talon_audit_str_equals(&r->request_id, f->request_id))
        return false;
    if (f->target_type && !talon_audit_str_equals(&r->target_type, f->target_type))
        return false;
    if (f->target_id && !talon_audit_str_equals(&r->target_id, f->target_id))
        return false;
    if (f->source_ip && !talon_audit_str_equals(&r->source_ip, f->source_ip))
        return false;
    return true;
}

/* ---- The prefilter ------------------------------------------------------ */

/* True when value appears unchanged inside a JSON string (no byte the
 * writer escapes), so that a byte search can find it. */
static bool plain_json(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\' || *p >= 0x80)
            return false;
    return true;
}

/* Pick the most selective filter and write the bytes every matching line
 * contains. Returns the needle length, 0 when no filter can be searched. */
static size_t make_needle(const talon_audit_filter *f, char *out, size_t outlen)
{
    struct { const char *value; const char *before; const char *after; } c[] = {
        { f->request_id, "\"request\":{\"id\":\"", "\"," },
        { f->target_id, ",\"id\":\"", "\"},\"reason\":" },
        { f->actor, "\"actor\":{\"id\":\"", "\"," },
        { f->source_ip, "\"source\":{\"ip\":\"", "\"," },
        { f->type, ",\"type\":\"", "\",\"outcome\":" },
        { f->target_type, "\"target\":{\"type\":\"", "\"," },
        { f->outcome, "\"outcome\":\"", "\"," },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        if (!c[i].value || !plain_json(c[i].value))
            continue;
        size_t vlen = strlen(c[i].value);
        const char *after = c[i].after;
        if (c[i].value == f->type && vlen > 0 && c[i].value[vlen - 1] == '*') {
            vlen--;
            after = "";
        }
        int n = snprintf(out, outlen, "%s%.*s%s", c[i].before, (int)vlen, c[i].value, after);
        if (n > 0 && (size_t)n < outlen)
            return (size_t)n;
    }
    return 0;
}

static size_t count_newlines(const char *p, const char *end)
{
    size_t n = 0;
#ifdef __SSE2__
    const __m128i nl = _mm_set1_epi8('\n');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        n += (size_t)__builtin_popcount((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)));
        p += 16;
    }
#endif
    for (; p < end; p++)
        n += *p == '\n';
    return n;
}

/* ---- Running a query ---------------------------------------------------- */

typedef struct query_run {
    const talon_audit_filter *filter;
    talon_audit_record_fn fn;
    void *ctx;
    uint64_t matches;
    uint64_t skipped;
    int stop;           /* the callback's nonzero return */
    const talon_audit_query_hooks *hooks;
    /* newest_first: matching line offsets of the current file */
    size_t *offs;
    uint64_t *lines;
    size_t noffs, capoffs;
} query_run;

static bool limit_reached(const query_run *q)
{
    return q->stop || (q->filter->limit && q->matches >= q->filter->limit);
}

/* Parse and match one line; emit it now, or remember it for newest_first. */
static void consider(query_run *q, const reader_file *f, const char *line, size_t len, uint64_t lineno)
{
    talon_audit_record rec;
    char why[160];
    if (talon_audit_record_parse(line, len, &rec, why, sizeof why) != 0) {
        q->skipped++;
        if (q->hooks && q->hooks->skip)
            q->hooks->skip(q->hooks->skip_ctx, f->path, lineno, why);
        return;
    }
    if (!talon_audit_filter_match(q->filter, &rec))
        return;
    if (q->filter->newest_first) {
        if (q->noffs == q->capoffs) {
            size_t cap = q->capoffs ? q->capoffs * 2 : 256;
            size_t *o = realloc(q->offs, cap * sizeof *o);
            uint64_t *l = o ? realloc(q->lines, cap * sizeof *l) : NULL;
            if (o)
                q->offs = o;
            if (!o || !l) {
                q->stop = -ENOMEM;
                return;
            }
            q->lines = l;
            q->capoffs = cap;
        }
        q->offs[q->noffs] = (size_t)(line - f->data);
        q->lines[q->noffs++] = lineno;
        return;
    }
    rec.file = f->path;
    rec.lineno = lineno;
    q->matches++;
    q->stop = q->fn(q->ctx, &rec);
}

/* Scan the complete lines in [begin, end) of f, begin being the start of
 * line first_line. Returns the number of the line that starts at end when
 * count_all is set (it costs a pass over the bytes without a match). */
static uint64_t scan_range(query_run *q, const reader_file *f, size_t begin, size_t end, uint64_t first_line,
                           const char *needle, size_t nlen, bool count_all)
{
    const char *p = f->data + begin, *stop = f->data + end;
    const char *counted = p; /* newlines before here are in lineno */
    uint64_t lineno = first_line;
    while (p < stop && (q->filter->newest_first || !limit_reached(q))) {
        const char *line = p;
        if (nlen) {
            const char *hit = memmem(p, (size_t)(stop - p), needle, nlen);
            if (!hit)
                break;
            line = hit;
            while (line > p && line[-1] != '\n')
                line--;
        }
        const char *nl = memchr(line, '\n', (size_t)(stop - line));
        if (!nl)
            break; /* a torn last line is not a record */
        lineno += count_newlines(counted, line);
        counted = line;
        consider(q, f, line, (size_t)(nl - line), lineno);
        if (q->stop)
            break;
        p = nl + 1;
    }
    return count_all ? lineno + count_newlines(counted, stop) : 0;
}

/* Oldest first: the whole file at once, or in steps with progress reports. */
static void scan_file_forwards(query_run *q, const reader_file *f, const char *needle, size_t nlen,
                               uint64_t *done, uint64_t total)
{
    if (!q->hooks || !q->hooks->progress) {
        scan_range(q, f, 0, f->size, 1, needle, nlen, false);
        return;
    }
    size_t begin = 0;
    uint64_t line = 1;
    while (begin < f->size && !limit_reached(q)) {
        size_t end = begin + QUERY_CHUNK * 4 < f->size ? begin + QUERY_CHUNK * 4 : f->size;
        const char *nl = end < f->size ? memchr(f->data + end, '\n', f->size - end) : NULL;
        end = nl ? (size_t)(nl - f->data) + 1 : f->size;
        line = scan_range(q, f, begin, end, line, needle, nlen, true);
        q->hooks->progress(q->hooks->progress_ctx, *done + end, total);
        begin = end;
    }
}

/* Emit the matches remembered by a newest_first scan, the last one first. */
static void emit_backwards(query_run *q, const reader_file *f)
{
    for (size_t m = q->noffs; m-- > 0 && !limit_reached(q);) {
        const char *line = f->data + q->offs[m];
        const char *nl = memchr(line, '\n', f->size - q->offs[m]);
        talon_audit_record rec;
        if (talon_audit_record_parse(line, (size_t)(nl - line), &rec, NULL, 0) != 0)
            continue;
        rec.file = f->path;
        rec.lineno = q->lines[m];
        q->matches++;
        q->stop = q->fn(q->ctx, &rec);
    }
    q->noffs = 0;
}

/* newest_first: scan the file in chunks from its end, so that a query with
 * a limit (tail -n, GET /audit) reads only the end of a large file. */
static void scan_file_backwards(query_run *q, const reader_file *f, const char *needle, size_t nlen)
{
    size_t end = f->size;
    while (end > 0 && f->data[end - 1] != '\n')
        end--; /* a torn last line is not a record */
    uint64_t line_after = count_newlines(f->data, f->data + end) + 1; /* the line number at end */
    while (end > 0 && !limit_reached(q)) {
        size_t start = end > QUERY_CHUNK ? end - QUERY_CHUNK : 0;
        if (start > 0) {
            /* Move start back to a line start; a line longer than a chunk is taken whole. */
            const char *nl = memrchr(f->data, '\n', start);
            start = nl ? (size_t)(nl - f->data) + 1 : 0;
        }
        uint64_t first_line = line_after - count_newlines(f->data + start, f->data + end);
        q->noffs = 0;
        scan_range(q, f, start, end, first_line, needle, nlen, false);
        emit_backwards(q, f);
        end = start;
        line_after = first_line;
    }
}

int64_t talon_audit_query(talon_audit_reader *reader, const talon_audit_filter *filter,
                          talon_audit_record_fn fn, void *ctx, uint64_t *skipped)
{
    return talon_audit_query_hooked(reader, filter, fn, ctx, skipped, NULL);
}

int64_t talon_audit_query_hooked(talon_audit_reader *reader, const talon_audit_filter *filter,
                                 talon_audit_record_fn fn, void *ctx, uint64_t *skipped,
                                 const talon_audit_query_hooks *hooks)
{
    query_run q = { .filter = filter, .fn = fn, .ctx = ctx, .hooks = hooks };
    char needle[1024];
    size_t nlen = make_needle(filter, needle, sizeof needle);
    uint64_t done = 0;

    for (size_t k = 0; k < reader->nfiles && !limit_reached(&q); k++) {
        size_t i = filter->newest_first ? reader->nfiles - 1 - k : k;
        const reader_file *f = &reader->files[i];
        if (!f->data)
            continue;
        if (filter->newest_first)
            scan_file_backwards(&q, f, needle, nlen);
        else
            scan_file_forwards(&q, f, needle, nlen, &done, reader->total);
        done += f->size;
    }
    free(q.offs);
    free(q.lines);
    if (skipped)
        *skipped = q.skipped;
    if (q.stop < 0)
        return q.stop;
    return (int64_t)q.matches;
}
