/* Unit tests of the audit trail reader: record parsing, filters, queries
 * over a trail file and table output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "talon/audit_reader.h"

#define HEX32 "0123456789abcdef0123456789abcdef"
#define HEX64 HEX32 HEX32

/* A syntactically valid record (its prev and mac are not a real chain). */
static char *make_line(unsigned seq, const char *time, const char *type, const char *outcome,
                       const char *actor, const char *ip, const char *request, const char *target,
                       const char *data)
{
    char *line = NULL;
    int n = asprintf(&line,
                     "{\"v\":1,\"seq\":%u,\"epoch\":0,\"time\":\"%s\",\"type\":\"%s\",\"outcome\":\"%s\","
                     "\"actor\":{\"id\":\"%s\",\"roles\":[\"user\"]},\"source\":{\"ip\":%s,\"user_agent\":null},"
                     "\"request\":%s,\"target\":%s,\"reason\":null,\"data\":%s,\"host\":\"h\","
                     "\"trail\":\"" HEX32 "\",\"prev\":\"" HEX64 "\",\"mac\":\"" HEX64 "\"}",
                     seq, time, type, outcome, actor, ip, request, target, data);
    assert_true(n > 0);
    return line;
}

static char *simple_line(unsigned seq)
{
    return make_line(seq, "2026-12-04T20:38:53.123456Z", "authn_login_success", "success", "alice",
                     "\"10.1.2.3\"", "{\"id\":\"r1\",\"method\":\"POST\",\"route\":\"/login\",\"path\":\"/login\"}",
                     "{\"type\":\"user\",\"id\":\"alice\"}", "{}");
}

static void parse_valid_record(void **state)
{
    (void)state;
    char *line = simple_line(42);
    talon_audit_record r;
    char err[160];
    assert_int_equal(talon_audit_record_parse(line, strlen(line), &r, err, sizeof err), 0);
    assert_int_equal(r.seq, 42);
    assert_int_equal(r.epoch, 0);
    assert_true(talon_audit_str_equals(&r.type, "authn_login_success"));
    assert_true(talon_audit_str_equals(&r.actor_id, "alice"));
    assert_true(talon_audit_str_equals(&r.source_ip, "10.1.2.3"));
    assert_true(r.user_agent.null);
    assert_true(talon_audit_str_equals(&r.request_id, "r1"));
    assert_true(talon_audit_str_equals(&r.target_id, "alice"));
    assert_int_equal(r.time_us, 1796416733123456LL);
    /* P_i ends with the comma after prev. */
    assert_memory_equal(line + r.prefix_len - 2, "\",", 2);
    assert_memory_equal(line + r.prefix_len, "\"mac\":", 6);
    free(line);
}

static void expect_invalid(const char *line, const char *why)
{
    talon_audit_record r;
    char err[160] = "";
    int rc = talon_audit_record_parse(line, strlen(line), &r, err, sizeof err);
    if (rc != -EINVAL)
        fail_msg("accepted a record with %s: %s", why, line);
    assert_non_null(strstr(err, "at byte "));
}

__attribute__((noinline)) static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    if (!at)
        fail_msg("\"%s\" not found in the test record", from);
    size_t off = (size_t)(at - s);
    char *out = malloc(strlen(s) + strlen(to) + 1);
    assert_non_null(out);
    memcpy(out, s, off);
    strcpy(out + off, to);
    strcat(out, s + off + strlen(from));
    return out;
}

static void parse_rejects_invalid_records(void **state)
{
    (void)state;
    char *line = simple_line(1);
    struct { const char *from, *to, *why; } cases[] = {
        { "\"seq\":1,", "\"seq\": 1,", "whitespace" },
        { "{\"v\":1,", "{\"v\":2,", "version 2" },
        { "\"seq\":1,\"epoch\":0,", "\"epoch\":0,\"seq\":1,", "keys out of order" },
        { "\"seq\":1,", "\"seq\":01,", "a leading zero" },
        { "20:38:53.123456Z", "20:38:53Z", "a time without microseconds" },
        { "\"outcome\":\"success\"", "\"outcome\":\"ok\"", "an unknown outcome" },
        { "\"trail\":\"0123456789abcdef", "\"trail\":\"0123456789ABCDEF", "uppercase hex" },
        { "\"data\":{}", "\"data\":[]", "data that is not an object" },
        { "\"data\":{}", "\"data\":{\"a\":tru}", "invalid JSON in data" },
        { "\"host\":\"h\"", "\"host\":\"h\x01\"", "a raw control byte" },
        { "\"host\":\"h\"", "\"host\":\"h\xc3\x28\"", "invalid UTF-8" },
        { "\"host\":\"h\"", "\"host\":\"h\\x\"", "an invalid escape" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *bad = replace(line, cases[i].from, cases[i].to);
        expect_invalid(bad, cases[i].why);
        free(bad);
    }
    char *trailing = malloc(strlen(line) + 2);
    sprintf(trailing, "%s ", line);
    expect_invalid(trailing, "trailing bytes");
    free(trailing);
    free(line);
}

static void decode_escapes(void **state)
{
    (void)state;
    const char raw[] = "a\\\"b\\\\c\\n\\u0001\\u00e9\\ud83d\\ude00";
    talon_audit_str s = { .p = raw, .len = sizeof raw - 1, .null = false, .escaped = true };
    char buf[64];
    size_t n = talon_audit_str_decode(&s, buf, sizeof buf);
    assert_int_equal(n, 13);
    assert_memory_equal(buf, "a\"b\\c\n\x01\xc3\xa9\xf0\x9f\x98\x80", 13);
    assert_true(talon_audit_str_equals(&s, "a\"b\\c\n\x01\xc3\xa9\xf0\x9f\x98\x80"));
    /* Truncation keeps the decoded length and terminates the buffer. */
    assert_int_equal(talon_audit_str_decode(&s, buf, 4), 13);
    assert_string_equal(buf, "a\"b");
}

static void parse_times(void **state)
{
    (void)state;
    int64_t us;
    assert_int_equal(talon_audit_parse_time("1970-01-01T00:00:00Z", 20, &us), 0);
    assert_int_equal(us, 0);
    assert_int_equal(talon_audit_parse_time("2026-12-04", 10, &us), 0);
    assert_int_equal(us, 1796342400LL * 1000000);
    assert_int_equal(talon_audit_parse_time("2026-12-04T21:38:53.5+01:00", 27, &us), 0);
    assert_int_equal(us, 1796416733500000LL);
    assert_int_equal(talon_audit_parse_time("2026-12-04T20:38:53", 19, &us), -EINVAL);
    assert_int_equal(talon_audit_parse_time("2026-13-04", 10, &us), -EINVAL);
    assert_int_equal(talon_audit_parse_time("yesterday", 9, &us), -EINVAL);
    assert_int_equal(talon_audit_parse_time("2026-12-04T21:38:53-23:59", 25, &us), 0);
    assert_int_equal(talon_audit_parse_time("2026-12-04T21:38:53+99:00", 25, &us), -EINVAL);
    assert_int_equal(talon_audit_parse_time("2026-12-04T21:38:53+24:00", 25, &us), -EINVAL);
    assert_int_equal(talon_audit_parse_time("2026-12-04T21:38:53+23:60", 25, &us), -EINVAL);
}

/* Days past the end of their month: -ERANGE from the time parser, and a
 * record whose time has one does not parse. */
static void parse_rejects_impossible_dates(void **state)
{
    (void)state;
    static const struct {
        const char *time;
        int rc;
        int64_t unix_s;
    } cases[] = {
        { "2024-02-29", 0, 1709164800 },                 /* leap year */
        { "2000-02-29T00:00:00Z", 0, 951782400 },        /* divisible by 400: leap */
        { "2026-12-31T23:59:60Z", 0, 1798761600 },       /* leap second */
        { "2026-04-30", 0, 1777507200 },
        { "2026-02-29", -ERANGE, 0 },
        { "2100-02-29T00:00:00Z", -ERANGE, 0 },          /* divisible by 100: common year */
        { "2026-02-31T12:00:00Z", -ERANGE, 0 },
        { "2026-04-31", -ERANGE, 0 },
        { "2026-06-31T00:00:00.5+02:00", -ERANGE, 0 },
        { "2026-09-31", -ERANGE, 0 },
        { "2026-11-31", -ERANGE, 0 },
        { "2026-01-32", -EINVAL, 0 },
        { "2026-01-00", -EINVAL, 0 },
        { "2026-00-10", -EINVAL, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t us = -1;
        int rc = talon_audit_parse_time(cases[i].time, strlen(cases[i].time), &us);
        if (rc != cases[i].rc)
            fail_msg("%s: parse_time returned %d, expected %d", cases[i].time, rc, cases[i].rc);
        if (rc == 0 && us != cases[i].unix_s * 1000000)
            fail_msg("%s: %lld us, expected %lld s", cases[i].time, (long long)us, (long long)cases[i].unix_s);
    }

    char *line = make_line(1, "2026-02-31T20:38:53.123456Z", "t", "success", "alice", "null", "null", "null",
                           "{}");
    talon_audit_record r;
    char err[160] = "";
    assert_int_equal(talon_audit_record_parse(line, strlen(line), &r, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "expected time as YYYY-MM-DDTHH:MM:SS.ffffffZ"));
    free(line);
    line = make_line(1, "2028-02-29T20:38:53.123456Z", "t", "success", "alice", "null", "null", "null", "{}");
    assert_int_equal(talon_audit_record_parse(line, strlen(line), &r, err, sizeof err), 0);
    assert_int_equal(r.time_us, 1835469533123456LL);
    free(line);
}

static void filter_set_names_and_errors(void **state)
{
    (void)state;
    talon_audit_filter f;
    char err[256];
    talon_audit_filter_init(&f);
    assert_int_equal(talon_audit_filter_set(&f, "type", "authn_*", err, sizeof err), 0);
    assert_int_equal(talon_audit_filter_set(&f, "request-id", "r1", err, sizeof err), 0);
    assert_string_equal(f.request_id, "r1");
    assert_int_equal(talon_audit_filter_set(&f, "target", "user:alice", err, sizeof err), 0);
    assert_string_equal(f.target_type, "user");
    assert_string_equal(f.target_id, "alice");
    assert_int_equal(talon_audit_filter_set(&f, "limit", "5", err, sizeof err), 0);
    assert_int_equal(f.limit, 5);
    assert_int_equal(talon_audit_filter_set(&f, "order", "desc", err, sizeof err), 0);
    assert_true(f.newest_first);
    assert_int_equal(talon_audit_filter_set(&f, "since", "2026-12-04", err, sizeof err), 0);
    assert_int_equal(f.since_us, 1796342400LL * 1000000);

    assert_int_equal(talon_audit_filter_set(&f, "outcome", "maybe", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "maybe"));
    assert_int_equal(talon_audit_filter_set(&f, "until", "noon", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "RFC 3339"));
    assert_int_equal(talon_audit_filter_set(&f, "since", "2026-02-30", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "invalid since time \"2026-02-30\": 2026-02 has 28 days"));
    assert_int_equal(f.since_us, 1796342400LL * 1000000);
    assert_int_equal(talon_audit_filter_set(&f, "until", "2026-04-31T00:00:00Z", err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "2026-04 has 30 days"));
    assert_int_equal(talon_audit_filter_set(&f, "until", "2025-02-29", err, sizeof err), -EINVAL);
    assert_int_equal(talon_audit_filter_set(&f, "until", "2100-02-29", err, sizeof err), -EINVAL);
    assert_int_equal(talon_audit_filter_set(&f, "until", "2028-02-29", err, sizeof err), 0);
    assert_int_equal(talon_audit_filter_set(&f, "until", "2000-02-29T23:59:59Z", err, sizeof err),
                     0);
    assert_int_equal(talon_audit_filter_set(&f, "until", "2026-12-31", err, sizeof err), 0);
    assert_int_equal(talon_audit_filter_set(&f, "limit", "-1", err, sizeof err), -EINVAL);
    assert_int_equal(talon_audit_filter_set(&f, "limit", "0", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "invalid limit \"0\""));
    assert_int_equal(talon_audit_filter_set(&f, "source_ip", "notanip", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "invalid source address \"notanip\""));
    assert_int_equal(talon_audit_filter_set(&f, "source_ip", "10.1.2.3", err, sizeof err), 0);
    assert_int_equal(talon_audit_filter_set(&f, "source_ip", "2001:db8::1", err, sizeof err), 0);
    assert_int_equal(talon_audit_filter_set(&f, "colour", "red", err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "colour"));
    assert_int_equal(talon_audit_filter_set(&f, "actor", "", err, sizeof err), -EINVAL);
    talon_audit_filter_release(&f);
    assert_null(f.type);
}

static void filter_match_each_field(void **state)
{
    (void)state;
    char *line = make_line(7, "2026-12-04T20:38:53.123456Z", "authn_login_fail", "failure", "we\\\"ird",
                           "\"10.0.0.9\"", "null", "{\"type\":\"user\",\"id\":\"bob\"}", "{}");
    talon_audit_record r;
    assert_int_equal(talon_audit_record_parse(line, strlen(line), &r, NULL, 0), 0);
    talon_audit_filter f;
    char err[256];
    struct { const char *name, *yes, *no; } cases[] = {
        { "type", "authn_login_fail", "authn_login" },
        { "type", "authn_*", "authz_*" },
        { "type", "*", "x*" },
        { "outcome", "failure", "success" },
        { "actor", "we\"ird", "weird" },
        { "source_ip", "10.0.0.9", "10.0.0.1" },
        { "target", "user:bob", "user:alice" },
        { "target_type", "user", "note" },
        { "since", "2026-12-04T20:38:53.123456Z", "2026-12-04T20:38:53.123457Z" },
        { "until", "2026-12-04T20:38:53.123457Z", "2026-12-04T20:38:53.123456Z" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        talon_audit_filter_init(&f);
        assert_int_equal(talon_audit_filter_set(&f, cases[i].name, cases[i].yes, err, sizeof err), 0);
        if (!talon_audit_filter_match(&f, &r))
            fail_msg("%s=%s does not match", cases[i].name, cases[i].yes);
        talon_audit_filter_release(&f);
        talon_audit_filter_init(&f);
        assert_int_equal(talon_audit_filter_set(&f, cases[i].name, cases[i].no, err, sizeof err), 0);
        if (talon_audit_filter_match(&f, &r))
            fail_msg("%s=%s matches", cases[i].name, cases[i].no);
        talon_audit_filter_release(&f);
    }
    /* A request filter never matches a record without a request. */
    talon_audit_filter_init(&f);
    assert_int_equal(talon_audit_filter_set(&f, "request_id", "r1", err, sizeof err), 0);
    assert_false(talon_audit_filter_match(&f, &r));
    talon_audit_filter_release(&f);
    free(line);
}

/* ---- Queries over a file -------------------------------------------------- */

typedef struct seen {
    uint64_t seqs[16];
    uint64_t lines[16];
    size_t n;
} seen;

static int remember(void *ctx, const talon_audit_record *rec)
{
    seen *s = ctx;
    if (s->n < 16) {
        s->seqs[s->n] = rec->seq;
        s->lines[s->n++] = rec->lineno;
    }
    return 0;
}

static char *write_trail(void)
{
    char *path = strdup("/tmp/talon-test-filter-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    const char *req = "{\"id\":\"r%u\",\"method\":\"GET\",\"route\":\"/n\",\"path\":\"/n\"}";
    for (unsigned i = 1; i <= 6; i++) {
        char r[128];
        snprintf(r, sizeof r, req, i);
        /* Record 3 is bob's, but its data contains alice's actor bytes. */
        const char *actor = i == 3 || i == 5 ? "bob" : "alice";
        const char *data = i == 3 ? "{\"actor\":{\"id\":\"alice\",\"x\":1}}" : "{}";
        char *line = make_line(i, "2026-12-04T20:38:53.123456Z", i % 2 ? "note_read" : "authn_login_fail",
                               i % 2 ? "success" : "failure", actor, "\"10.0.0.1\"", r, "null", data);
        fprintf(f, "%s\n", line);
        free(line);
        if (i == 4)
            fputs("not a record\n", f);
    }
    fputs("{\"v\":1,\"seq\":7", f); /* a torn last line */
    fclose(f);
    return path;
}

static void skip_counter(void *ctx, const char *file, uint64_t line, const char *why)
{
    (void)file;
    (void)why;
    *(uint64_t *)ctx = line;
}

static void query_prefilter_and_order(void **state)
{
    (void)state;
    char *path = write_trail();
    const char *paths[] = { path };
    talon_audit_reader *reader;
    char err[256];
    assert_int_equal(talon_audit_reader_open(&reader, paths, 1, err, sizeof err), 0);

    talon_audit_filter f;
    seen s = { .n = 0 };
    uint64_t skipped = 0;
    talon_audit_filter_init(&f);
    assert_int_equal(talon_audit_filter_set(&f, "actor", "alice", err, sizeof err), 0);
    assert_int_equal(talon_audit_query(reader, &f, remember, &s, &skipped), 4);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.seqs[0], 1);
    assert_int_equal(s.seqs[1], 2);
    assert_int_equal(s.seqs[2], 4);
    assert_int_equal(s.seqs[3], 6);
    assert_int_equal(s.lines[3], 7); /* after the line that is not a record */
    talon_audit_filter_release(&f);

    /* No filter: every record, and the bad line is reported with its number. */
    s.n = 0;
    uint64_t bad_line = 0;
    talon_audit_filter_init(&f);
    talon_audit_query_hooks hooks = { .skip = skip_counter, .skip_ctx = &bad_line };
    assert_int_equal(talon_audit_query_hooked(reader, &f, remember, &s, &skipped, &hooks), 6);
    assert_int_equal(skipped, 1);
    assert_int_equal(bad_line, 5);

    /* Newest first with a limit: the latest two failures. */
    s.n = 0;
    assert_int_equal(talon_audit_filter_set(&f, "outcome", "failure", err, sizeof err), 0);
    assert_int_equal(talon_audit_filter_set(&f, "order", "desc", err, sizeof err), 0);
    assert_int_equal(talon_audit_filter_set(&f, "limit", "2", err, sizeof err), 0);
    assert_int_equal(talon_audit_query(reader, &f, remember, &s, NULL), 2);
    assert_int_equal(s.seqs[0], 6);
    assert_int_equal(s.seqs[1], 4);
    assert_int_equal(s.lines[0], 7);
    assert_int_equal(s.lines[1], 4);
    talon_audit_filter_release(&f);

    talon_audit_reader_close(reader);
    unlink(path);
    free(path);
}

static void reader_open_errors_name_the_path(void **state)
{
    (void)state;
    const char *paths[] = { "/nonexistent/talon-trail" };
    talon_audit_reader *reader;
    char err[256];
    assert_int_equal(talon_audit_reader_open(&reader, paths, 1, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/talon-trail"));
    char dir[] = "/tmp/talon-test-empty-XXXXXX";
    assert_non_null(mkdtemp(dir));
    paths[0] = dir;
    assert_int_equal(talon_audit_reader_open(&reader, paths, 1, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "no audit-NNNNNNNN.jsonl files"));
    rmdir(dir);
}

/* ---- Table output ----------------------------------------------------------- */

static void table_rows_align_and_sanitize(void **state)
{
    (void)state;
    char head[512], row[1024];
    size_t hn = talon_audit_table_header(head, sizeof head);
    assert_int_equal(hn, strlen(head));
    assert_non_null(strstr(head, "TIME"));

    char *line = make_line(12345, "2026-12-04T20:38:53.123456Z",
                           "a_very_long_event_type_name_that_will_not_fit", "success", "ev\\u001bil\\nname",
                           "null", "null", "{\"type\":\"note\",\"id\":\"7\"}", "{}");
    talon_audit_record r;
    assert_int_equal(talon_audit_record_parse(line, strlen(line), &r, NULL, 0), 0);
    size_t n = talon_audit_table_row(&r, row, sizeof row);
    assert_int_equal(n, strlen(row));
    assert_null(strchr(row, '\n'));
    assert_null(strchr(row, '\x1b'));
    assert_non_null(strstr(row, "ev?il?name"));
    assert_non_null(strstr(row, "~"));          /* the cut type */
    assert_non_null(strstr(row, "note:7"));
    /* Columns line up with the header: OUTCOME and ACTOR start at the same offsets. */
    size_t outcome_col = (size_t)(strstr(head, "OUTCOME") - head);
    assert_memory_equal(row + outcome_col, "success", 7);
    size_t actor_col = (size_t)(strstr(head, "ACTOR") - head);
    assert_memory_equal(row + actor_col, "ev?il", 5);
    size_t seq_end = (size_t)(strstr(head, "SEQ") - head) + 3;
    assert_memory_equal(row + seq_end - 5, "12345", 5); /* right-aligned */
    size_t source_col = (size_t)(strstr(head, "SOURCE") - head);
    assert_memory_equal(row + source_col, "- ", 2);   /* null source */

    /* A small buffer truncates and terminates. */
    assert_true(talon_audit_table_row(&r, row, 10) == 9);
    assert_int_equal(strlen(row), 9);
    free(line);
}

/* Code points of the valid UTF-8 in s[0, n), or -1 at an invalid byte. */
static long utf8_code_points(const char *s, size_t n)
{
    long count = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = 0;
        if (c < 0x80)
            len = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4;
        if (len == 0 || i + len > n)
            return -1;
        for (size_t k = 1; k < len; k++)
            if (((unsigned char)s[i + k] & 0xc0) != 0x80)
                return -1;
        if (c == 0xed && (unsigned char)s[i + 1] >= 0xa0)
            return -1; /* a surrogate */
        i += len;
        count++;
    }
    return count;
}

/* Each actor value (as JSON string content) and the cell text the table
 * shows for it. Every row must be valid UTF-8, and the SOURCE column must
 * start at the same code point as in the header. */
static void table_columns_count_code_points(void **state)
{
    (void)state;
    static const struct {
        const char *actor, *shown;
    } cases[] = {
        { "j\u00fcrgen", "j\xc3\xbcrgen" },                  /* escaped 2-byte code point */
        { "j\xc3\xbcrgen-\xc3\xb1", "j\xc3\xbcrgen-\xc3\xb1" }, /* raw 2-byte UTF-8 */
        { "\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac" }, /* 3 bytes each */
        { "\xf0\x9f\x98\x80x", "\xf0\x9f\x98\x80x" },        /* 4 bytes */
        { "a\\ud800b", "a\\ud800b" },                        /* lone surrogate: printed escaped */
        { "a\\udfffb", "a\\udfffb" },
        { "c1\\u009b[31m", "c1?[31m" },                     /* C1 control (CSI) */
        { "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
          "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
          "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
          "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9~" },  /* 17 code points: 15 and '~' fill the 16 columns */
        { "x\\ud83d\\ude00y", "x\xf0\x9f\x98\x80y" },       /* surrogate pair: one code point */
    };
    char head[512], row[1024];
    talon_audit_table_header(head, sizeof head);
    long actor_col = (long)(strstr(head, "ACTOR") - head);
    long source_col = (long)(strstr(head, "SOURCE") - head);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *line = make_line(1, "2026-12-04T20:38:53.123456Z", "t", "success", cases[i].actor,
                               "\"10.1.2.3\"", "null", "null", "{}");
        talon_audit_record r;
        assert_int_equal(talon_audit_record_parse(line, strlen(line), &r, NULL, 0), 0);
        size_t n = talon_audit_table_row(&r, row, sizeof row);
        print_message("case %zu: %s\n", i, row);
        assert_true(utf8_code_points(row, n) >= 0);
        const char *source = strstr(row, "10.1.2.3");
        assert_non_null(source);
        assert_int_equal(utf8_code_points(row, (size_t)(source - row)), source_col);
        assert_int_equal(utf8_code_points(row, (size_t)actor_col), actor_col); /* ASCII up to ACTOR */
        assert_memory_equal(row + actor_col, cases[i].shown, strlen(cases[i].shown));
        free(line);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_valid_record),
        cmocka_unit_test(parse_rejects_invalid_records),
        cmocka_unit_test(decode_escapes),
        cmocka_unit_test(parse_times),
        cmocka_unit_test(parse_rejects_impossible_dates),
        cmocka_unit_test(filter_set_names_and_errors),
        cmocka_unit_test(filter_match_each_field),
        cmocka_unit_test(query_prefilter_and_order),
        cmocka_unit_test(reader_open_errors_name_the_path),
        cmocka_unit_test(table_rows_align_and_sanitize),
        cmocka_unit_test(table_columns_count_code_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
