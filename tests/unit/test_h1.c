/* HTTP/1.1 request head parser and chunked decoder of src/http/h1.c:
 * valid heads, every rejection with its status, incremental input, and the
 * request smuggling shapes (whitespace before the colon, obs-fold, bare LF). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/h1.h"

static h1_head head;

/* Parse the len bytes of s. A rejection must come with a reason. */
static int parse_n(const char *s, size_t len)
{
    const char *why = NULL;
    int rc = h1_parse_head(s, len, &head, &why);
    if (rc < 0)
        assert_non_null(why);
    return rc;
}

static int parse(const char *s)
{
    return parse_n(s, strlen(s));
}

/* The status and the reason of a rejected head. */
static int reject(const char *s, size_t len, const char **why)
{
    *why = NULL;
    int rc = h1_parse_head(s, len, &head, why);
    assert_true(rc < 0);
    assert_non_null(*why);
    return rc;
}

static void assert_span(const char *p, size_t len, const char *expected)
{
    assert_int_equal(len, strlen(expected));
    assert_memory_equal(p, expected, len);
}

static void get_with_host(void **state)
{
    const char *s = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    assert_int_equal(parse(s), strlen(s));
    assert_span(head.method, head.method_len, "GET");
    assert_span(head.target, head.target_len, "/index.html?q=1");
    assert_int_equal(head.minor, 1);
    assert_int_equal(head.line_len, strlen("GET /index.html?q=1 HTTP/1.1"));
    assert_int_equal(head.nfields, 1);
    assert_span(head.fields[0].name, head.fields[0].name_len, "Host");
    assert_span(head.fields[0].value, head.fields[0].value_len, "example.com");
    assert_int_equal(head.head_len, strlen(s));
}

static void post_with_fields(void **state)
{
    const char *s = "POST /notes HTTP/1.1\r\n"
                    "Host: x\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: 2\r\n"
                    "X-Custom_1.a!#$%&'*+^`|~: v\r\n"
                    "\r\n"
                    "{}";
    size_t head_len = strlen(s) - 2;
    assert_int_equal(parse(s), head_len);
    assert_span(head.method, head.method_len, "POST");
    assert_int_equal(head.nfields, 4);
    assert_span(head.fields[1].name, head.fields[1].name_len, "Content-Type");
    assert_span(head.fields[1].value, head.fields[1].value_len, "application/json");
    assert_span(head.fields[2].value, head.fields[2].value_len, "2");
    assert_span(head.fields[3].name, head.fields[3].name_len, "X-Custom_1.a!#$%&'*+^`|~");
}

static void http_versions(void **state)
{
    assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n"), 18);
    assert_int_equal(head.minor, 0);
    assert_int_equal(head.nfields, 0);
    assert_int_equal(parse("GET / HTTP/1.9\r\n\r\n"), 18);
    assert_int_equal(head.minor, 1);
    assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n"), -505);
    assert_int_equal(parse("GET / HTTP/0.9\r\n\r\n"), -505);
    assert_int_equal(parse("GET / HTTP/9.1\r\n\r\n"), -505);
}

static void leading_empty_lines(void **state)
{
    assert_int_equal(parse("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 22);
    assert_int_equal(head.line_len, 14);
    assert_span(head.method, head.method_len, "GET");

    char buf[256];
    size_t n = 0;
    for (int i = 0; i < 8; i++)
        n += (size_t)sprintf(buf + n, "\r\n");
    n += (size_t)sprintf(buf + n, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(parse_n(buf, n), n);

    const char *why;
    memmove(buf + 2, buf, n);
    assert_int_equal(reject(buf, n + 2, &why), -400);
    assert_non_null(strstr(why, "empty lines"));
}

static void field_values(void **state)
{
    const char *s = "GET / HTTP/1.1\r\n"
                    "Empty:\r\n"
                    "Blank: \t \r\n"
                    "Inner:  a  b\tc \t\r\n"
                    "Obs-Text: caf\xc3\xa9 \x80\xff\r\n"
                    "\r\n";
    assert_int_equal(parse(s), strlen(s));
    assert_int_equal(head.nfields, 4);
    assert_int_equal(head.fields[0].value_len, 0);
    assert_int_equal(head.fields[1].value_len, 0);
    assert_span(head.fields[2].value, head.fields[2].value_len, "a  b\tc");
    assert_span(head.fields[3].value, head.fields[3].value_len, "caf\xc3\xa9 \x80\xff");
}

static void long_values(void **state)
{
    /* Lengths around the 8-byte steps of the value and target scanners. */
    for (size_t n = 0; n < 40; n++) {
        char buf[256], value[64], target[64];
        memset(value, 'v', n);
        value[n] = '\0';
        if (n > 3)
            value[n / 2] = '\t';
        memset(target, 't', n + 1);
        target[0] = '/';
        target[n + 1] = '\0';
        int len = snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nA: %s\r\n\r\n", target, value);
        assert_int_equal(parse_n(buf, (size_t)len), len);
        assert_span(head.target, head.target_len, target);
        assert_span(head.fields[0].value, head.fields[0].value_len, value);

        /* The same value with a NUL at every position. */
        for (size_t i = 0; i < n; i++) {
            const char *why;
            char bad[256];
            memcpy(bad, buf, (size_t)len);
            bad[len - 4 - n + i] = '\0';
            assert_int_equal(reject(bad, (size_t)len, &why), -400);
            assert_non_null(strstr(why, "NUL"));
        }
    }
}

typedef struct rejection {
    const char *head;
    int status;
    const char *why; /* a part of the reason */
} rejection;

static void check_rejections(const rejection *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *why;
        size_t len = strlen(cases[i].head);
        int rc = reject(cases[i].head, len, &why);
        if (rc != cases[i].status || strstr(why, cases[i].why) == NULL)
            fail_msg("case %zu %s: got %d \"%s\", expected %d \"%s\"", i, cases[i].head, rc, why,
                     cases[i].status, cases[i].why);
        /* A prefix is incomplete or already rejected the same way. */
        for (size_t k = 0; k < len; k++) {
            int prc = parse_n(cases[i].head, k);
            if (prc != 0 && prc != rc)
                fail_msg("case %zu, prefix of %zu bytes: got %d, expected 0 or %d", i, k, prc, rc);
        }
    }
}

static void request_line_rejections(void **state)
{
    static const rejection cases[] = {
        { "GET / HTTP/1.1\n\r\n", -400, "bare LF" },
        { "GET / HTTP/1.1\r\r\n", -400, "CR that is not followed by LF" },
        { "\nGET / HTTP/1.1\r\n\r\n", -400, "bare LF" },
        { "\rGET / HTTP/1.1\r\n\r\n", -400, "CR that is not followed by LF" },
        { " GET / HTTP/1.1\r\n\r\n", -400, "method" },
        { "GET  / HTTP/1.1\r\n\r\n", -400, "target is missing" },
        { "GET\t/ HTTP/1.1\r\n\r\n", -400, "no HTTP version" },
        { "GET / HTTP/1.1 \r\n\r\n", -400, "CRLF right after" },
        { "GET /  HTTP/1.1\r\n\r\n", -400, "version" },
        { "GET /\r\n\r\n", -400, "no HTTP version" },
        { "GET / http/1.1\r\n\r\n", -400, "version" },
        { "GET / HTTP/1.10\r\n\r\n", -400, "CRLF right after" },
        { "GET / HTTP/11\r\n\r\n", -400, "version" },
        { "GET / HTTP/1.x\r\n\r\n", -400, "version" },
        { "GET / HTTP/x.1\r\n\r\n", -400, "version" },
    };
    check_rejections(cases, sizeof(cases) / sizeof(cases[0]));

    const char *why;
    assert_int_equal(reject("GET /\0 HTTP/1.1\r\n\r\n", 20, &why), -400);
    assert_non_null(strstr(why, "NUL"));
    assert_int_equal(reject("GET / HTTP/2.0\r\n\r\n", 18, &why), -505);
    assert_non_null(strstr(why, "HTTP/1.1"));
    /* The rejected line stays readable for the log. */
    assert_int_equal(head.line_len, 14);
    assert_memory_equal(head.version, "HTTP/2.0", 8);
    assert_span(head.target, head.target_len, "/");
    assert_int_equal(reject("GET /x HTTP/1.1\nHost: x\r\n\r\n", 28, &why), -400);
    assert_int_equal(head.line_len, 15);
}

/* Control bytes other than NUL, CR and LF pass the parser: the method is
 * checked as a token later (framing.c) so that the request is logged, and
 * the logs escape what a hostile client sent. */
static void hostile_bytes_kept(void **state)
{
    (void)state;
    static const char text[] = "G(\x1bT /\tx\x7f\x01 HTTP/1.1\r\nA: \x1b[0m\x7f\x01\r\n\r\n";
    size_t len = sizeof(text) - 1;
    assert_int_equal(parse_n(text, len), (int)len);
    assert_span(head.method, head.method_len, "G(\x1bT");
    assert_span(head.target, head.target_len, "/\tx\x7f\x01");
    assert_span(head.fields[0].value, head.fields[0].value_len, "\x1b[0m\x7f\x01");
}

static void field_rejections(void **state)
{
    static const rejection cases[] = {
        /* Whitespace before the colon: a proxy may read another name. */
        { "GET / HTTP/1.1\r\nHost : x\r\n\r\n", -400, "RFC 9112 section 5.1" },
        { "GET / HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n", -400, "before the colon" },
        /* obs-fold, also as the first line after the request line. */
        { "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", -400, "obs-fold" },
        { "GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", -400, "RFC 9112 section 5.2" },
        { "GET / HTTP/1.1\r\n Host: x\r\n\r\n", -400, "obs-fold" },
        /* Bare LF and bare CR in fields. */
        { "GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n", -400, "bare LF" },
        { "GET / HTTP/1.1\r\nA: b\r\n\n", -400, "bare LF" },
        { "GET / HTTP/1.1\r\nA: b\rC: d\r\n\r\n", -400, "CR that is not followed by LF" },
        { "GET / HTTP/1.1\r\nA: b\r\n\rX", -400, "CR that is not followed by LF" },
        { "GET / HTTP/1.1\r\nA\n: b\r\n\r\n", -400, "no colon" },
        /* Names. */
        { "GET / HTTP/1.1\r\n: b\r\n\r\n", -400, "no name" },
        { "GET / HTTP/1.1\r\nA\r\n\r\n", -400, "no colon" },
        { "GET / HTTP/1.1\r\nA(b): c\r\n\r\n", -400, "not allowed in a token" },
        { "GET / HTTP/1.1\r\n\xc3\xa9: c\r\n\r\n", -400, "field name" },
        { "GET / HTTP/1.1\r\n\"A\": c\r\n\r\n", -400, "field name" },
    };
    check_rejections(cases, sizeof(cases) / sizeof(cases[0]));

    const char *why;
    assert_int_equal(reject("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", 27, &why), -400);
    assert_non_null(strstr(why, "NUL"));
}

/* A head with n fields "F<i>: <i>". */
static size_t fields_head(char *buf, size_t size, size_t n)
{
    size_t len = (size_t)snprintf(buf, size, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, size - len, "F%zu: %zu\r\n", i, i);
    len += (size_t)snprintf(buf + len, size - len, "\r\n");
    assert_true(len < size);
    return len;
}

static void max_fields(void **state)
{
    char buf[8192];
    size_t len = fields_head(buf, sizeof(buf), H1_MAX_FIELDS);
    assert_int_equal(parse_n(buf, len), len);
    assert_int_equal(head.nfields, H1_MAX_FIELDS);
    assert_span(head.fields[H1_MAX_FIELDS - 1].value, head.fields[H1_MAX_FIELDS - 1].value_len,
                "127");

    const char *why;
    len = fields_head(buf, sizeof(buf), H1_MAX_FIELDS + 1);
    assert_int_equal(reject(buf, len, &why), -431);
    assert_non_null(strstr(why, "128 header fields"));
}

static void every_prefix_incomplete(void **state)
{
    static const char *const heads[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "\r\n\r\nPOST /a?b=c HTTP/1.0\r\nHost: x\r\nEmpty:\r\nA:  b c \t\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        size_t len = strlen(heads[i]);
        for (size_t k = 0; k < len; k++) {
            if (parse_n(heads[i], k) != 0)
                fail_msg("head %zu, prefix of %zu bytes: not 0", i, k);
        }
        assert_int_equal(parse_n(heads[i], len), len);
        /* Parsing again gives the same head. */
        assert_int_equal(parse_n(heads[i], len), len);
    }
}

static void line_complete(void **state)
{
    assert_false(h1_line_complete("", 0));
    assert_false(h1_line_complete("GET / HTTP/1.1\r", 15));
    assert_true(h1_line_complete("GET / HTTP/1.1\r\n", 16));
    assert_false(h1_line_complete("\r\n\r\n", 4));
    assert_false(h1_line_complete("\r\n\r\nGET /", 9));
    assert_true(h1_line_complete("\r\n\r\nGET /\r\n", 11));
    assert_true(h1_line_complete("GET /\n", 6));
}

/* The outcome of decoding a chunked body fed in pieces. */
typedef struct decoded {
    char data[32768];
    size_t data_len;
    size_t consumed;
    int error; /* 0 or -400 */
    bool done;
} decoded;

/* Feed in[0..len) to a fresh decoder, in pieces that end at the offsets in
 * cuts (ascending, then len). */
static void decode_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                        decoded *out)
{
    h1_chunked c;
    h1_chunked_init(&c);
    memset(out, 0, sizeof(*out));
    size_t off = 0;
    for (size_t i = 0; i <= ncuts && out->error == 0; i++) {
        size_t stop = i < ncuts ? cuts[i] : len;
        while (off < stop) {
            const char *data, *why = NULL;
            size_t data_len;
            ssize_t n = h1_chunked_step(&c, in + off, stop - off, &data, &data_len, &why);
            if (n < 0) {
                assert_int_equal(n, -400);
                assert_non_null(why);
                out->error = (int)n;
                break;
            }
            if (n == 0)
                break;
            assert_true((size_t)n <= stop - off);
            if (data_len > 0) {
                assert_true(data >= in + off && data + data_len <= in + off + n);
                assert_true(out->data_len + data_len <= sizeof(out->data));
                memcpy(out->data + out->data_len, data, data_len);
                out->data_len += data_len;
            }
            off += (size_t)n;
        }
        if (c.done)
            break;
    }
    out->consumed = off;
    out->done = c.done;
}

static void decode(const char *in, size_t len, decoded *out)
{
    decode_cuts(in, len, NULL, 0, out);
}

/* The bytes consumed before an error depend on where the calls began, so
 * they are compared only for a body without error. The data are the same
 * either way, because a call that returns data returns no error. */
static void assert_same_decoding(const decoded *a, const decoded *b)
{
    assert_int_equal(a->error, b->error);
    assert_int_equal(a->done, b->done);
    if (a->error == 0)
        assert_int_equal(a->consumed, b->consumed);
    assert_int_equal(a->data_len, b->data_len);
    assert_memory_equal(a->data, b->data, a->data_len);
}

static void chunked_valid(void **state)
{
    static const struct {
        const char *body;
        const char *data;
        size_t consumed; /* 0: the whole body */
    } cases[] = {
        { "5\r\nhello\r\n0\r\n\r\n", "hello", 0 },
        { "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0 },
        { "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", 0 },
        { "0000000000000003\r\nabc\r\n0\r\n\r\n", "abc", 0 },
        { "3;name=value;x;q=\"a b\\\"\"\r\nabc\r\n0;last\r\n\r\n", "abc", 0 },
        { "3 ;a\r\nabc\r\n0\t;b\r\n\r\n", "abc", 0 },
        { "3;a=\tb\x80\r\nabc\r\n0\r\n\r\n", "abc", 0 },
        { "3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum:\r\nE: caf\xc3\xa9 \r\n\r\n", "abc", 0 },
        { "0\r\n\r\n", "", 0 },
        { "000\r\n\r\n", "", 0 },
        /* The next request is not consumed. */
        { "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", "hi", 12 },
        { "4\r\n\r\n\x01\xff\r\n0\r\n\r\n", "\r\n\x01\xff", 0 }, /* data of any bytes */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *body = cases[i].body;
        size_t len = strlen(body);
        decoded whole;
        decode(body, len, &whole);
        if (whole.error != 0 || !whole.done)
            fail_msg("case %zu: error %d, done %d", i, whole.error, whole.done);
        assert_int_equal(whole.consumed, cases[i].consumed ? cases[i].consumed : len);
        assert_span(whole.data, whole.data_len, cases[i].data);

        /* A done decoder consumes nothing more. */
        h1_chunked c;
        h1_chunked_init(&c);
        const char *data, *why;
        size_t data_len, off = 0;
        ssize_t n;
        while ((n = h1_chunked_step(&c, body + off, len - off, &data, &data_len, &why)) > 0)
            off += (size_t)n;
        assert_int_equal(n, 0);
        assert_true(c.done);
        assert_int_equal(h1_chunked_step(&c, "5\r\n", 3, &data, &data_len, &why), 0);
    }
}

/* Decode body whole, split at every byte position, and one byte per call:
 * all must agree. */
static void check_every_split(const char *body, size_t len)
{
    decoded whole, split;
    decode(body, len, &whole);
    for (size_t k = 0; k <= len; k++) {
        decode_cuts(body, len, &k, 1, &split);
        assert_same_decoding(&whole, &split);
    }
    size_t cuts[512];
    assert_true(len <= 512);
    for (size_t k = 0; k < len; k++)
        cuts[k] = k + 1;
    decode_cuts(body, len, cuts, len, &split);
    assert_same_decoding(&whole, &split);
}

static void chunked_every_split(void **state)
{
    static const char *const bodies[] = {
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "3;name=value;x;q=\"a b\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0;z\r\nA: b\r\nC:d \r\n\r\nGET",
        "5\r\nhello\r\n6\r\n worldX\r\n0\r\n\r\n",
        "5\r\nhello\r\n0\r\nBad : x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        check_every_split(bodies[i], strlen(bodies[i]));
}

static void chunked_rejections(void **state)
{
    static const struct {
        const char *body;
        const char *why;
    } cases[] = {
        { "g\r\nabc\r\n0\r\n\r\n", "hexadecimal digit" },
        { "\r\nabc\r\n0\r\n\r\n", "hexadecimal digit" },
        { " 3\r\nabc\r\n0\r\n\r\n", "leading" },
        { "0x3\r\nabc\r\n0\r\n\r\n", "0x" },
        { "+3\r\nabc\r\n0\r\n\r\n", "hexadecimal digit" },
        { "3g\r\nabc\r\n0\r\n\r\n", "followed by CRLF" },
        { "3 \r\nabc\r\n0\r\n\r\n", "Whitespace" },
        { "00000000000000003\r\nabc\r\n0\r\n\r\n", "more than 16" },
        { "3\nabc\r\n0\r\n\r\n", "followed by CRLF" },
        { "3;a\nabc\r\n0\r\n\r\n", "bare LF" },
        { "3\rabc\r\n0\r\n\r\n", "CR that is not followed by LF" },
        /* The data is longer than its size, or its CRLF is missing. */
        { "3\r\nabcd\r\n0\r\n\r\n", "followed by CRLF" },
        { "3\r\nabc\n0\r\n\r\n", "followed by CRLF" },
        { "3\r\nabc\r0\r\n\r\n", "followed by CRLF" },
        { "3\r\nabc0\r\n\r\n", "followed by CRLF" },
        /* Trailer fields. */
        { "0\r\nA : b\r\n\r\n", "RFC 9112 section 5.1" },
        { "0\r\nA: b\r\n c\r\n\r\n", "obs-fold" },
        { "0\r\n\tc: d\r\n\r\n", "obs-fold" },
        { "0\r\nA: b\n\r\n", "bare LF" },
        { "0\r\nA: b\r\n\n", "bare LF" },
        { "0\r\nA\r\n\r\n", "no colon" },
        { "0\r\n: b\r\n\r\n", "field name" },
        { "0\r\nA: b\rc\r\n\r\n", "CR that is not followed by LF" },
        { "0\r\n\rx", "end with CRLF" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h1_chunked c;
        h1_chunked_init(&c);
        const char *body = cases[i].body, *data, *why = NULL;
        size_t len = strlen(body), data_len, off = 0;
        ssize_t n;
        while ((n = h1_chunked_step(&c, body + off, len - off, &data, &data_len, &why)) > 0)
            off += (size_t)n;
        if (n != -400 || strstr(why, cases[i].why) == NULL)
            fail_msg("case %zu: got %zd \"%s\", expected -400 \"%s\"", i, n, why ? why : "",
                     cases[i].why);
        assert_false(c.done);
        /* The decoder stays failed. */
        assert_int_equal(h1_chunked_step(&c, "0\r\n\r\n", 5, &data, &data_len, &why), -400);
        check_every_split(body, len);
    }
}

static void chunked_limits(void **state)
{
    static char body[40000];
    decoded out;

    /* A size line of 4096 bytes passes, one more byte fails. */
    size_t len = (size_t)sprintf(body, "3;");
    memset(body + len, 'e', 4096 - len);
    len = 4096;
    len += (size_t)sprintf(body + len, "\r\nabc\r\n0\r\n\r\n");
    decode(body, len, &out);
    assert_int_equal(out.error, 0);
    assert_true(out.done);
    memmove(body + 3, body + 2, len - 2);
    body[2] = 'e';
    decode(body, len + 1, &out);
    assert_int_equal(out.error, -400);
    assert_int_equal(out.data_len, 0);

    /* A trailer section of 16384 bytes, its final CRLF included, passes. */
    len = (size_t)sprintf(body, "0\r\n");
    size_t start = len;
    while (len - start < 16384 - 2 - 100)
        len += (size_t)sprintf(body + len, "Trailer-Field: %090d\r\n", 0);
    size_t pad = 16384 - 2 - (len - start) - 5; /* "X: " and CRLF */
    len += (size_t)sprintf(body + len, "X: ");
    memset(body + len, 'v', pad);
    len += pad;
    len += (size_t)sprintf(body + len, "\r\n\r\n");
    assert_int_equal(len - start, 16384);
    decode(body, len, &out);
    assert_int_equal(out.error, 0);
    assert_true(out.done);
    memmove(body + len - 4, body + len - 5, 5);
    decode(body, len + 1, &out);
    assert_int_equal(out.error, -400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_with_host),
        cmocka_unit_test(post_with_fields),
        cmocka_unit_test(http_versions),
        cmocka_unit_test(leading_empty_lines),
        cmocka_unit_test(field_values),
        cmocka_unit_test(long_values),
        cmocka_unit_test(request_line_rejections),
        cmocka_unit_test(field_rejections),
        cmocka_unit_test(hostile_bytes_kept),
        cmocka_unit_test(max_fields),
        cmocka_unit_test(every_prefix_incomplete),
        cmocka_unit_test(line_complete),
        cmocka_unit_test(chunked_valid),
        cmocka_unit_test(chunked_every_split),
        cmocka_unit_test(chunked_rejections),
        cmocka_unit_test(chunked_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
