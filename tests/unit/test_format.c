/* Log formats and escaping: exact outputs for known records, and hostile
 * inputs through every format, each of which must give exactly one line with
 * no raw control byte and only valid UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "log/fields.h"
#include "talon/log.h"

/* 2024-05-01T10:00:00.123456789Z */
#define T0 1714557600123456789LL

static const char *const all_formats[] = {
    "text", "json", "logfmt", "combined", "common",
    "$remote_addr $remote_user [$time_local] $time_iso8601 $msec \"$request\" $request_method "
    "$request_uri $uri $server_protocol $status $body_bytes_sent $bytes_sent $request_time "
    "$request_duration_us \"$http_referer\" \"$http_user_agent\" $request_id $trace_id $route "
    "$user_id $level $logger \"$message\" ${field:labels.hostile} $time_utc",
    "escape=json {\"ua\":\"$http_user_agent\",\"uri\":\"$request_uri\",\"m\":\"$message\","
    "\"h\":\"${field:labels.hostile}\"}",
};
#define NFORMATS (sizeof(all_formats) / sizeof(all_formats[0]))

static talon_log_format *compile_ok(const char *spec)
{
    char err[256] = "";
    talon_log_format *fmt = talon_log_format_compile(spec, err, sizeof(err));

    if (!fmt)
        fail_msg("format \"%s\" failed to compile: %s", spec, err);
    return fmt;
}

/* Format into a fresh heap buffer of exactly the needed size. */
static char *format_line(const talon_log_format *fmt, const talon_log_record *rec, size_t *len)
{
    size_t n = talon_log_format_record(fmt, rec, NULL, 0);
    char *buf = malloc(n + 1);

    assert_non_null(buf);
    assert_int_equal(talon_log_format_record(fmt, rec, buf, n), n);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* True when s[0..n) is well-formed UTF-8 (Unicode table 3-7), checked here
 * independently of escape.c. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i];
        size_t need;
        unsigned lo = 0x80, hi = 0xbf;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + need >= n)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if (s[i + k] < lo || s[i + k] > hi)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* The line invariant: ends in one '\n', no other byte below 0x20, no 0x7f,
 * and valid UTF-8 throughout. */
static void assert_one_clean_line(const char *line, size_t len, const char *spec)
{
    if (len == 0 || line[len - 1] != '\n')
        fail_msg("format \"%s\": line does not end in a newline", spec);
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if (c < 0x20 || c == 0x7f)
            fail_msg("format \"%s\": raw byte 0x%02x at offset %zu", spec, c, i);
    }
    if (!valid_utf8((const unsigned char *)line, len))
        fail_msg("format \"%s\": line is not valid UTF-8", spec);
}

/* A record with every access-log field set to the same value. */
typedef struct hostile_record {
    talon_field fields[20];
    talon_log_record rec;
} hostile_record;

static void hostile_init(hostile_record *h, const char *v, size_t n)
{
    size_t i = 0;

    h->fields[i++] = TALON_F_STRN(TALON_KEY_CLIENT_IP, v, n);
    h->fields[i++] = TALON_F_STRN(TALON_KEY_USER_ID, v, n);
    h->fields[i++] = TALON_F_STRN(TALON_KEY_METHOD, v, n);
    h->fields[i++] = TALON_F_STRN(TALON_KEY_URL_ORIGINAL, v, n);
    h->fields[i++] = TALON_F_STRN(TALON_KEY_URL_PATH, v, n);
    h->fields[i++] = TALON_F_STRN(TALON_KEY_HTTP_VERSION, v, n);
    h->fields[i++] = TALON_F_INT(TALON_KEY_STATUS, 400);
    h->fields[i++] = TALON_F_UINT(TALON_KEY_BODY_BYTES, 17);
    h->fields[i++] = TALON_F_INT(TALON_KEY_DURATION, 1234567);
    h->fields[i++] = TALON_F_STRN(TALON_KEY_REFERRER, v, n);
    h->fields[i++] = TALON_F_STRN(TALON_KEY_USER_AGENT, v, n);
    h->fields[i++] = TALON_F_STRN(TALON_KEY_REQUEST_ID, v, n);
    h->fields[i++] = TALON_F_STRN(TALON_KEY_TRACE_ID, v, n);
    h->fields[i++] = TALON_F_STRN(TALON_KEY_ROUTE, v, n);
    h->fields[i++] = TALON_F_STRN("labels.hostile", v, n);
    /* A hostile key as well: keys come from programs, but are escaped too. */
    h->fields[i++] = TALON_F_STRN("key\n\"=\x1b", v, n);
    h->rec = (talon_log_record){
        .time_ns = T0, .level = TALON_LOG_WARN, .logger = "access",
        .message = v, .message_len = n, .fields = h->fields, .nfields = i,
    };
}

static void check_all_formats(const char *v, size_t n)
{
    hostile_record h;

    hostile_init(&h, v, n);
    for (size_t i = 0; i < NFORMATS; i++) {
        talon_log_format *fmt = compile_ok(all_formats[i]);
        size_t len;
        char *line = format_line(fmt, &h.rec, &len);

        assert_one_clean_line(line, len, all_formats[i]);
        free(line);
        talon_log_format_free(fmt);
    }
}

/* ---- Escaping ---- */

typedef struct escape_case {
    const char *in;
    size_t len;
    const char *text;
    const char *json;
} escape_case;

#define CASE(in, text, json) { in, sizeof(in) - 1, text, json }

static const escape_case escape_cases[] = {
    CASE("plain ascii", "plain ascii", "plain ascii"),
    CASE("", "", ""),
    CASE("a\rb\nc", "a\\x0Db\\x0Ac", "a\\rb\\nc"),
    CASE("\t", "\\x09", "\\t"),
    CASE("\x1b[31mred", "\\x1B[31mred", "\\u001b[31mred"),
    CASE("nul\0byte", "nul\\x00byte", "nul\\u0000byte"),
    CASE("\x7f", "\\x7F", "\\u007f"),
    CASE("say \"hi\"", "say \\x22hi\\x22", "say \\\"hi\\\""),
    CASE("back\\slash", "back\\x5Cslash", "back\\\\slash"),
    /* valid UTF-8 passes: é (2 bytes), € (3), 😀 (4), U+FFFF, U+10FFFF */
    CASE("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
         "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
    CASE("\xef\xbf\xbf\xf4\x8f\xbf\xbf", "\xef\xbf\xbf\xf4\x8f\xbf\xbf", "\xef\xbf\xbf\xf4\x8f\xbf\xbf"),
    /* overlong '/' in 2, 3 and 4 bytes */
    CASE("\xc0\xaf", "\\xC0\\xAF", "\\u00c0\\u00af"),
    CASE("\xe0\x80\xaf", "\\xE0\\x80\\xAF", "\\u00e0\\u0080\\u00af"),
    CASE("\xf0\x80\x80\xaf", "\\xF0\\x80\\x80\\xAF", "\\u00f0\\u0080\\u0080\\u00af"),
    /* surrogate U+D800 and U+DFFF */
    CASE("\xed\xa0\x80", "\\xED\\xA0\\x80", "\\u00ed\\u00a0\\u0080"),
    CASE("\xed\xbf\xbf", "\\xED\\xBF\\xBF", "\\u00ed\\u00bf\\u00bf"),
    /* past U+10FFFF, and lead bytes that never start a sequence */
    CASE("\xf4\x90\x80\x80", "\\xF4\\x90\\x80\\x80", "\\u00f4\\u0090\\u0080\\u0080"),
    CASE("\xf5\xff\xfe", "\\xF5\\xFF\\xFE", "\\u00f5\\u00ff\\u00fe"),
    /* stray continuation byte, truncated sequence at the end and mid-string */
    CASE("a\x80z", "a\\x80z", "a\\u0080z"),
    CASE("end\xe2\x82", "end\\xE2\\x82", "end\\u00e2\\u0082"),
    CASE("\xe2\x82z\xc3\xa9", "\\xE2\\x82z\xc3\xa9", "\\u00e2\\u0082z\xc3\xa9"),
    /* code points that end a line for some readers or reorder it: C1 NEL and
     * CSI, U+2028, U+2029, U+061C, U+200E, U+202E, U+2066, U+2069 */
    CASE("a\xc2\x85" "b\xc2\x9b", "a\\xC2\\x85b\\xC2\\x9B", "a\\u0085b\\u009b"),
    CASE("\xe2\x80\xa8\xe2\x80\xa9", "\\xE2\\x80\\xA8\\xE2\\x80\\xA9", "\\u2028\\u2029"),
    CASE("\xd8\x9c\xe2\x80\x8e", "\\xD8\\x9C\\xE2\\x80\\x8E", "\\u061c\\u200e"),
    CASE("x\xe2\x80\xaey\xe2\x81\xa6\xe2\x81\xa9", "x\\xE2\\x80\\xAEy\\xE2\\x81\\xA6\\xE2\\x81\\xA9",
         "x\\u202ey\\u2066\\u2069"),
    /* their neighbours pass: U+00A0, U+200D, U+2027, U+202F, U+2065 */
    CASE("\xc2\xa0\xe2\x80\x8d\xe2\x80\xa7\xe2\x80\xaf\xe2\x81\xa5",
         "\xc2\xa0\xe2\x80\x8d\xe2\x80\xa7\xe2\x80\xaf\xe2\x81\xa5",
         "\xc2\xa0\xe2\x80\x8d\xe2\x80\xa7\xe2\x80\xaf\xe2\x81\xa5"),
};

static void escape_table(void **state)
{
    char buf[256];

    for (size_t i = 0; i < sizeof(escape_cases) / sizeof(escape_cases[0]); i++) {
        const escape_case *c = &escape_cases[i];
        size_t n;

        n = talon_escape_text(buf, sizeof(buf), c->in, c->len);
        assert_int_equal(n, strlen(c->text));
        assert_memory_equal(buf, c->text, n);
        assert_int_equal(talon_escape_text(NULL, 0, c->in, c->len), n);

        n = talon_escape_json(buf, sizeof(buf), c->in, c->len);
        assert_int_equal(n, strlen(c->json));
        assert_memory_equal(buf, c->json, n);
        assert_int_equal(talon_escape_json(NULL, 0, c->in, c->len), n);
    }
}

/* Every single byte, and every byte pair, escapes to clean UTF-8 text. */
static void escape_every_byte(void **state)
{
    char out[64];

    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            char in[2] = { (char)a, (char)b };
            size_t n = talon_escape_text(out, sizeof(out), in, 2);

            for (size_t i = 0; i < n; i++)
                assert_true((unsigned char)out[i] >= 0x20 && (unsigned char)out[i] != 0x7f);
            assert_true(valid_utf8((unsigned char *)out, n));
            n = talon_escape_json(out, sizeof(out), in, 2);
            for (size_t i = 0; i < n; i++)
                assert_true((unsigned char)out[i] >= 0x20 && (unsigned char)out[i] != 0x7f);
            assert_true(valid_utf8((unsigned char *)out, n));
        }
    }
}

/* A short buffer gets nothing past cap, and the full length is returned. */
static void escape_respects_cap(void **state)
{
    const char in[] = "ab\"\n\xc3\xa9\xff";
    char buf[64];
    size_t full = talon_escape_json(NULL, 0, in, sizeof(in) - 1);

    for (size_t cap = 0; cap <= full; cap++) {
        memset(buf, '#', sizeof(buf));
        assert_int_equal(talon_escape_json(buf, cap, in, sizeof(in) - 1), full);
        for (size_t i = cap; i < sizeof(buf); i++)
            assert_int_equal(buf[i], '#');
        memset(buf, '#', sizeof(buf));
        assert_int_equal(talon_escape_text(buf, cap, in, sizeof(in) - 1),
                         talon_escape_text(NULL, 0, in, sizeof(in) - 1));
        for (size_t i = cap; i < sizeof(buf); i++)
            assert_int_equal(buf[i], '#');
    }
}

/* ---- Exact lines ---- */

static talon_field access_fields[] = {
    TALON_F_STR(TALON_KEY_CLIENT_IP, "192.0.2.7"),
    TALON_F_STR(TALON_KEY_METHOD, "GET"),
    TALON_F_STR(TALON_KEY_URL_ORIGINAL, "/notes/7?x=1"),
    TALON_F_STR(TALON_KEY_URL_PATH, "/notes/7"),
    TALON_F_STR(TALON_KEY_HTTP_VERSION, "1.1"),
    TALON_F_INT(TALON_KEY_STATUS, 200),
    TALON_F_UINT(TALON_KEY_BODY_BYTES, 1234),
    TALON_F_INT(TALON_KEY_DURATION, 1532000),
    TALON_F_STR(TALON_KEY_REFERRER, "http://example.com/"),
    TALON_F_STR(TALON_KEY_USER_AGENT, "curl/7.88.1"),
    TALON_F_STR(TALON_KEY_REQUEST_ID, "4bf92f3577b34da6a3ce929d0e0e4736"),
    TALON_F_STR(TALON_KEY_ROUTE, "/notes/{id:int}"),
    TALON_F_STR(TALON_KEY_USER_ID, "alice"),
};

static talon_log_record access_record(void)
{
    return (talon_log_record){
        .time_ns = T0, .level = TALON_LOG_INFO, .logger = "access",
        .message = "GET /notes/7?x=1 HTTP/1.1", .message_len = SIZE_MAX,
        .fields = access_fields, .nfields = sizeof(access_fields) / sizeof(access_fields[0]),
    };
}

typedef struct exact_case {
    const char *spec;
    const char *line;
} exact_case;

static const exact_case exact_cases[] = {
    { "combined",
      "192.0.2.7 - alice [01/May/2024:10:00:00 +0000] \"GET /notes/7?x=1 HTTP/1.1\" 200 1234 "
      "\"http://example.com/\" \"curl/7.88.1\"\n" },
    { "common",
      "192.0.2.7 - alice [01/May/2024:10:00:00 +0000] \"GET /notes/7?x=1 HTTP/1.1\" 200 1234\n" },
    { "$request_time $request_duration_us $msec $time_iso8601 $time_utc",
      "0.001 1532 1714557600.123 2024-05-01T10:00:00+00:00 2024-05-01T10:00:00.123456Z\n" },
    { "$request_method|$request_uri|$uri|$server_protocol|$status|$body_bytes_sent|$bytes_sent",
      "GET|/notes/7?x=1|/notes/7|HTTP/1.1|200|1234|1234\n" },
    { "$request_id $trace_id $route $user_id $level $logger ${field:missing} ${status}s",
      "4bf92f3577b34da6a3ce929d0e0e4736 - /notes/{id:int} alice info access - 200s\n" },
    { "escape=json {\"t\":\"$trace_id\",\"s\":$status}",
      "{\"t\":\"\",\"s\":200}\n" },
    { "text",
      "2024-05-01T10:00:00.123456Z INFO access GET /notes/7?x=1 HTTP/1.1 client.ip=192.0.2.7 "
      "http.request.method=GET url.original=\"/notes/7?x=1\" url.path=/notes/7 http.version=1.1 "
      "http.response.status_code=200 http.response.body.bytes=1234 event.duration=1532000 "
      "http.request.referrer=http://example.com/ user_agent.original=curl/7.88.1 "
      "http.request.id=4bf92f3577b34da6a3ce929d0e0e4736 http.route=/notes/{id:int} "
      "user.id=alice\n" },
    { "json",
      "{\"@timestamp\":\"2024-05-01T10:00:00.123456Z\",\"log.level\":\"info\","
      "\"log.logger\":\"access\",\"message\":\"GET /notes/7?x=1 HTTP/1.1\","
      "\"ecs.version\":\"8.11.0\",\"client.ip\":\"192.0.2.7\",\"http.request.method\":\"GET\","
      "\"url.original\":\"/notes/7?x=1\",\"url.path\":\"/notes/7\",\"http.version\":\"1.1\","
      "\"http.response.status_code\":200,\"http.response.body.bytes\":1234,"
      "\"event.duration\":1532000,\"http.request.referrer\":\"http://example.com/\","
      "\"user_agent.original\":\"curl/7.88.1\","
      "\"http.request.id\":\"4bf92f3577b34da6a3ce929d0e0e4736\","
      "\"http.route\":\"/notes/{id:int}\",\"user.id\":\"alice\"}\n" },
    { "logfmt",
      "time=2024-05-01T10:00:00.123456Z level=info logger=access msg=\"GET /notes/7?x=1 HTTP/1.1\" "
      "client.ip=192.0.2.7 http.request.method=GET url.original=\"/notes/7?x=1\" url.path=/notes/7 "
      "http.version=1.1 http.response.status_code=200 http.response.body.bytes=1234 "
      "event.duration=1532000 http.request.referrer=http://example.com/ "
      "user_agent.original=curl/7.88.1 http.request.id=4bf92f3577b34da6a3ce929d0e0e4736 "
      "http.route=/notes/{id:int} user.id=alice\n" },
};

/* Fractions of seconds keep their leading and trailing zeros, in the
 * counting pass (no buffer) and in the writing pass alike. */
static void format_pads_time_fractions(void **state)
{
    static const struct {
        int64_t time_ns, duration_ns;
        const char *line;
    } cases[] = {
        { 1714557600000007000LL, 1005000000, "2024-05-01T10:00:00.000007Z 1714557600.000 1.005\n" },
        { 1714557600999999999LL, 60000000, "2024-05-01T10:00:00.999999Z 1714557600.999 0.060\n" },
        { 1714557600100000000LL, 0, "2024-05-01T10:00:00.100000Z 1714557600.100 0.000\n" },
        { 1714557600012345678LL, 10999999999LL, "2024-05-01T10:00:00.012345Z 1714557600.012 10.999\n" },
    };
    talon_log_format *fmt = compile_ok("$time_utc $msec $request_time");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        talon_field f = TALON_F_INT(TALON_KEY_DURATION, cases[i].duration_ns);
        talon_log_record rec = { .time_ns = cases[i].time_ns, .level = TALON_LOG_INFO,
                                 .fields = &f, .nfields = 1 };
        size_t len;
        char *line = format_line(fmt, &rec, &len);

        assert_string_equal(line, cases[i].line);
        free(line);
    }
    talon_log_format_free(fmt);
}

static void format_exact_lines(void **state)
{
    talon_log_record rec = access_record();

    for (size_t i = 0; i < sizeof(exact_cases) / sizeof(exact_cases[0]); i++) {
        talon_log_format *fmt = compile_ok(exact_cases[i].spec);
        size_t len;
        char *line = format_line(fmt, &rec, &len);

        if (strcmp(line, exact_cases[i].line) != 0)
            fail_msg("format \"%s\"\n  got:      %s  expected: %s", exact_cases[i].spec, line,
                     exact_cases[i].line);
        free(line);
        talon_log_format_free(fmt);
    }
}

/* Missing values are "-" as nginx writes them; a record without request
 * fields still gives a whole combined line. */
static void combined_missing_fields(void **state)
{
    talon_log_record rec = { .time_ns = T0, .level = TALON_LOG_INFO, .logger = "access" };
    talon_log_format *fmt = compile_ok("combined");
    size_t len;
    char *line = format_line(fmt, &rec, &len);

    assert_string_equal(line, "- - - [01/May/2024:10:00:00 +0000] \"-\" - - \"-\" \"-\"\n");
    free(line);
    talon_log_format_free(fmt);
}

static void json_types(void **state)
{
    talon_field f[] = {
        TALON_F_INT("i", -42), TALON_F_UINT("u", UINT64_MAX), TALON_F_DOUBLE("d", 0.1),
        TALON_F_DOUBLE("nan", 0.0 / 0.0), TALON_F_BOOL("b", false),
        TALON_F_STR("nil", NULL), { .key = "t", .type = TALON_FIELD_TIME, .v.i = T0 },
    };
    talon_log_record rec = {
        .time_ns = T0, .level = TALON_LOG_ERROR, .logger = "app", .message = "m",
        .message_len = 1, .fields = f, .nfields = sizeof(f) / sizeof(f[0]),
    };
    talon_log_format *fmt = compile_ok("json");
    size_t len;
    char *line = format_line(fmt, &rec, &len);

    assert_non_null(strstr(line, ",\"i\":-42,\"u\":18446744073709551615,\"d\":0.1,"
                                 "\"nan\":null,\"b\":false,\"nil\":null,"
                                 "\"t\":\"2024-05-01T10:00:00.123456Z\"}\n"));
    assert_non_null(strstr(line, "\"log.level\":\"error\""));
    free(line);
    talon_log_format_free(fmt);
}

/* ---- Hostile inputs through every format ---- */

static void hostile_every_format(void **state)
{
    static const struct { const char *s; size_t n; } inputs[] = {
#define IN(x) { x, sizeof(x) - 1 }
        IN("CR\rLF\nCRLF\r\n"), IN("\x1b]0;title\x07\x1b[2J"), IN("nul\0after"),
        IN("\"quoted\" \\back\\"), IN("\xc0\xaf\xe0\x80\xaf\xed\xa0\x80\xf4\x90\x80\x80"),
        IN("\xff\xfe\x80"), IN("trunc\xe2\x82"), IN(""), IN("="), IN(" a=b c=\"d\" "),
        IN("\x7f\x01\x1f"), IN("$remote_addr ${field:x}"), IN("caf\xc3\xa9 \xf0\x9f\x98\x80"),
#undef IN
    };

    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
        check_all_formats(inputs[i].s, inputs[i].n);
}

/* Every byte value alone, and pseudo-random byte strings (fixed seed). */
static void hostile_random_bytes(void **state)
{
    char v[64];
    unsigned seed = 12345;

    for (unsigned b = 0; b < 256; b++) {
        v[0] = (char)b;
        check_all_formats(v, 1);
    }
    for (int round = 0; round < 300; round++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof(v));

        for (size_t i = 0; i < n; i++)
            v[i] = (char)(rand_r(&seed) & 0xff);
        check_all_formats(v, n);
    }
}

/* A 64 KiB user agent is kept whole: no per-field cap. */
static void hostile_64k_user_agent(void **state)
{
    size_t n = 64 * 1024;
    char *ua = malloc(n);
    talon_field f[] = { TALON_F_STRN(TALON_KEY_USER_AGENT, ua, n) };
    talon_log_record rec = { .time_ns = T0, .level = TALON_LOG_INFO, .logger = "access",
                             .fields = f, .nfields = 1 };

    assert_non_null(ua);
    for (size_t i = 0; i < n; i++)
        ua[i] = "Mozilla/5.0 \n\"\x1b\xff"[i % 17];
    check_all_formats(ua, n);

    talon_log_format *fmt = compile_ok("$http_user_agent");
    size_t len;
    char *line = format_line(fmt, &rec, &len);

    assert_int_equal(len, talon_escape_text(NULL, 0, ua, n) + 1);
    assert_true(len > n);
    free(line);
    talon_log_format_free(fmt);
    free(ua);
}

/* JSON lines read back (jansson) to the original bytes where they are valid
 * UTF-8, including NUL, quotes and control bytes. */
static void json_round_trip(void **state)
{
    static const struct { const char *s; size_t n; } inputs[] = {
#define IN(x) { x, sizeof(x) - 1 }
        IN("CR\rLF\n\t\x1b[31m"), IN("nul\0after"), IN("\"q\" \\b\\ /"), IN("\x7f\x01"),
        IN("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), IN(""),
#undef IN
    };
    talon_log_format *fmt = compile_ok("json");

    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        hostile_record h;
        size_t len;
        char *line;
        json_error_t jerr;
        json_t *obj;

        hostile_init(&h, inputs[i].s, inputs[i].n);
        line = format_line(fmt, &h.rec, &len);
        obj = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
        if (!obj)
            fail_msg("jansson rejected line %zu: %s: %s", i, jerr.text, line);
        json_t *ua = json_object_get(obj, TALON_KEY_USER_AGENT);
        json_t *msg = json_object_get(obj, "message");

        assert_non_null(ua);
        assert_int_equal(json_string_length(ua), inputs[i].n);
        assert_memory_equal(json_string_value(ua), inputs[i].s, inputs[i].n);
        assert_int_equal(json_string_length(msg), inputs[i].n);
        assert_memory_equal(json_string_value(msg), inputs[i].s, inputs[i].n);
        assert_non_null(json_object_get(obj, "key\n\"=\x1b"));
        json_decref(obj);
        free(line);
    }
    talon_log_format_free(fmt);
}

/* A short buffer: same length returned, nothing written past cap. */
static void format_respects_cap(void **state)
{
    talon_log_record rec = access_record();

    for (size_t i = 0; i < NFORMATS; i++) {
        talon_log_format *fmt = compile_ok(all_formats[i]);
        size_t full = talon_log_format_record(fmt, &rec, NULL, 0);
        char *buf = malloc(full + 16);

        assert_non_null(buf);
        for (size_t cap = 0; cap <= full; cap += 7) {
            memset(buf, '#', full + 16);
            assert_int_equal(talon_log_format_record(fmt, &rec, buf, cap), full);
            for (size_t k = cap; k < full + 16; k++)
                assert_int_equal(buf[k], '#');
        }
        free(buf);
        talon_log_format_free(fmt);
    }
}

/* ---- Compile errors ---- */

static void compile_errors(void **state)
{
    static const struct { const char *spec; const char *needle; } cases[] = {
        { "", "empty" },
        { "nginx", "unknown format name \"nginx\"" },
        { "$remote_addr $nope", "unknown variable \"$nope\" at offset 13" },
        { "x ${field:}", "empty field key" },
        { "${status", "unterminated \"${\" at offset 0" },
        { "a $", "not followed by a variable name" },
        { "$status\t$uri", "control byte 0x09 at offset 7" },
        { "escape=none $status", "invalid escape=none" },
        { "escape=json $nope", "unknown variable \"$nope\" at offset 12" },
        { "${field:a b}", "invalid character 0x20" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        talon_log_format *fmt = talon_log_format_compile(cases[i].spec, err, sizeof(err));

        if (fmt)
            fail_msg("format \"%s\" compiled but should fail", cases[i].spec);
        if (!strstr(err, cases[i].needle))
            fail_msg("format \"%s\": error \"%s\" lacks \"%s\"", cases[i].spec, err,
                     cases[i].needle);
    }
}

/* ---- Interned keys ----
 *
 * A record built with the interned keys of fields.h, as the access log
 * builds it, formats exactly like the same record built with keys in other
 * memory. The first field with a key's text wins, whichever kind of pointer
 * it has. */

/* The fields of an access record without referrer and user, as the access
 * log writes it for a plain GET, with the key of field i at keys[i]. */
#define NKEY_FIELDS 12
static void fill_access_fields(talon_field *f, const char *const keys[NKEY_FIELDS])
{
    f[0] = TALON_F_STR(keys[0], "192.0.2.7");
    f[1] = TALON_F_STR(keys[1], "GET");
    f[2] = TALON_F_STR(keys[2], "/notes/7?x=1");
    f[3] = TALON_F_STR(keys[3], "/notes/7");
    f[4] = TALON_F_STR(keys[4], "1.1");
    f[5] = TALON_F_INT(keys[5], 200);
    f[6] = TALON_F_UINT(keys[6], 1234);
    f[7] = TALON_F_INT(keys[7], 1532000);
    f[8] = TALON_F_STR(keys[8], "curl/7.88.1");
    f[9] = TALON_F_STR(keys[9], "0123456789abcdef0123456789abcdef");
    f[10] = TALON_F_STR(keys[10], "/notes/{id:int}");
    f[11] = TALON_F_STR(keys[11], "tenant-a");
}

static const char *const interned_keys[NKEY_FIELDS] = {
    LOG_KEY(CLIENT_IP), LOG_KEY(METHOD), LOG_KEY(URL_ORIGINAL), LOG_KEY(URL_PATH),
    LOG_KEY(HTTP_VERSION), LOG_KEY(STATUS), LOG_KEY(BODY_BYTES), LOG_KEY(DURATION),
    LOG_KEY(USER_AGENT), LOG_KEY(REQUEST_ID), LOG_KEY(ROUTE), "labels.tenant",
};

static void interned_keys_format_like_copies(void **state)
{
    talon_field by_pointer[NKEY_FIELDS], by_text[NKEY_FIELDS];
    char *copies[NKEY_FIELDS];
    size_t len;

    for (size_t i = 0; i < NKEY_FIELDS; i++) {
        copies[i] = strdup(interned_keys[i]);
        assert_non_null(copies[i]);
        assert_ptr_not_equal(copies[i], interned_keys[i]);
    }
    fill_access_fields(by_pointer, interned_keys);
    fill_access_fields(by_text, (const char *const *)copies);
    talon_log_record rec = {
        .time_ns = T0, .level = TALON_LOG_INFO, .logger = "access",
        .message = "GET /notes/7?x=1 HTTP/1.1", .message_len = SIZE_MAX,
        .nfields = NKEY_FIELDS,
    };

    for (size_t i = 0; i < NFORMATS; i++) {
        talon_log_format *fmt = compile_ok(all_formats[i]);

        rec.fields = by_pointer;
        char *interned = format_line(fmt, &rec, &len);
        rec.fields = by_text;
        char *copied = format_line(fmt, &rec, &len);
        if (strcmp(interned, copied) != 0)
            fail_msg("format \"%s\": interned keys give\n%s and copied keys give\n%s",
                     all_formats[i], interned, copied);
        free(interned);
        free(copied);
        talon_log_format_free(fmt);
    }
    for (size_t i = 0; i < NKEY_FIELDS; i++)
        free(copies[i]);
}

/* Spot values, so that the comparison above cannot pass with two equally
 * wrong lines. */
static void interned_keys_found(void **state)
{
    talon_field f[NKEY_FIELDS];
    size_t len;
    talon_log_format *fmt = compile_ok("$remote_addr $status $route ${field:http.route} "
                                       "\"$http_referer\" $remote_user ${field:labels.tenant}");

    fill_access_fields(f, interned_keys);
    talon_log_record rec = { .time_ns = T0, .fields = f, .nfields = NKEY_FIELDS };
    char *line = format_line(fmt, &rec, &len);
    assert_string_equal(line, "192.0.2.7 200 /notes/{id:int} /notes/{id:int} \"-\" - tenant-a\n");
    free(line);
    talon_log_format_free(fmt);
}

/* With the same key twice, the first field wins, interned or not. */
static void duplicate_key_first_wins(void **state)
{
    char *copy = strdup(TALON_KEY_CLIENT_IP);
    talon_log_format *fmt = compile_ok("$remote_addr");
    size_t len;

    assert_non_null(copy);
    talon_field text_first[] = {
        TALON_F_STR(copy, "198.51.100.1"),
        TALON_F_STR(LOG_KEY(CLIENT_IP), "192.0.2.7"),
    };
    talon_field interned_first[] = {
        TALON_F_STR(LOG_KEY(CLIENT_IP), "192.0.2.7"),
        TALON_F_STR(copy, "198.51.100.1"),
    };
    talon_log_record rec = { .time_ns = T0, .fields = text_first, .nfields = 2 };
    char *line = format_line(fmt, &rec, &len);
    assert_string_equal(line, "198.51.100.1\n");
    free(line);

    rec.fields = interned_first;
    line = format_line(fmt, &rec, &len);
    assert_string_equal(line, "192.0.2.7\n");
    free(line);

    talon_field both_interned[] = {
        TALON_F_STR(LOG_KEY(CLIENT_IP), "192.0.2.7"),
        TALON_F_STR(LOG_KEY(CLIENT_IP), "198.51.100.1"),
    };
    rec.fields = both_interned;
    line = format_line(fmt, &rec, &len);
    assert_string_equal(line, "192.0.2.7\n");
    free(line);
    talon_log_format_free(fmt);
    free(copy);
}

static void intern_known_keys_only(void **state)
{
    char key[] = TALON_KEY_USER_AGENT;

    assert_ptr_equal(log_key_intern(key), LOG_KEY(USER_AGENT));
    assert_true(log_key_is_interned(LOG_KEY(OUTCOME)));
    assert_false(log_key_is_interned(key));
    assert_false(log_key_is_interned(LOG_KEY(OUTCOME) + 1));
    assert_null(log_key_intern("labels.tenant"));
    assert_null(log_key_intern("client"));
}

typedef size_t (*escaper_fn)(char *dst, size_t cap, const char *src, size_t len);

/* Format with spec a User-Agent that ends in each byte value, at lengths
 * around the 16-byte limit of the copy without the escaper. Each line must
 * be prefix, escape()'s output, then suffix. */
static void check_short_values(const char *spec, escaper_fn escape, const char *prefix,
                               const char *suffix)
{
    talon_log_format *fmt = compile_ok(spec);
    static const size_t lengths[] = { 1, 2, 15, 16, 17, 40 };

    for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
        for (int b = 0; b < 256; b++) {
            char value[64], want[512];
            size_t n = lengths[li], len, want_len = strlen(prefix);

            memset(value, 'a', n - 1);
            value[n - 1] = (char)b;
            memcpy(want, prefix, want_len);
            want_len += escape(want + want_len, sizeof(want) - want_len, value, n);
            snprintf(want + want_len, sizeof(want) - want_len, "%s", suffix);
            want_len += strlen(suffix);
            talon_field f = TALON_F_STRN(LOG_KEY(USER_AGENT), value, n);
            talon_log_record rec = { .time_ns = T0, .fields = &f, .nfields = 1 };
            char *line = format_line(fmt, &rec, &len);
            if (len != want_len || memcmp(line, want, len) != 0)
                fail_msg("%s: byte 0x%02x at the end of %zu bytes: \"%s\", the escaper gives "
                         "\"%s\"", spec, b, n, line, want);
            free(line);
        }
    }
    talon_log_format_free(fmt);
}

/* Short values are copied without the escaper when they need no escape:
 * every byte value must still give exactly the escaper's output. */
static void short_values_escaped_as_escaper(void **state)
{
    check_short_values("$http_user_agent", talon_escape_text, "", "\n");
    check_short_values("escape=json $http_user_agent", talon_escape_json, "", "\n");
    check_short_values("json", talon_escape_json,
                       "{\"@timestamp\":\"2024-05-01T10:00:00.123456Z\",\"log.level\":\"trace\","
                       "\"log.logger\":\"\",\"message\":\"\",\"ecs.version\":\"8.11.0\","
                       "\"" TALON_KEY_USER_AGENT "\":\"",
                       "\"}\n");
}

/* The "json" format copies interned keys without the escaper. */
static void interned_keys_need_no_escape(void **state)
{
    for (size_t i = 0; i < LOG_KEY_COUNT; i++) {
        char buf[LOG_KEY_SIZE * 6];
        size_t n = strlen(log_keys[i]);

        assert_int_equal(talon_escape_json(buf, sizeof(buf), log_keys[i], n), n);
        assert_memory_equal(buf, log_keys[i], n);
    }
}

/* The "json" format writes each interned key from a table of its own: every
 * one must come out with its text and its own value. */
static void json_writes_every_interned_key(void **state)
{
    talon_log_format *fmt = compile_ok("json");
    talon_field fields[LOG_KEY_COUNT];
    char values[LOG_KEY_COUNT][16];
    size_t len;

    for (size_t i = 0; i < LOG_KEY_COUNT; i++) {
        snprintf(values[i], sizeof(values[i]), "value %zu", i);
        fields[i] = (talon_field)TALON_F_STR(log_keys[i], values[i]);
    }
    talon_log_record rec = { .time_ns = T0, .fields = fields, .nfields = LOG_KEY_COUNT };
    char *line = format_line(fmt, &rec, &len);
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, 0, &jerr);

    if (!obj)
        fail_msg("invalid JSON (%s): %s", jerr.text, line);
    assert_int_equal(json_object_size(obj), 5 + LOG_KEY_COUNT);
    for (size_t i = 0; i < LOG_KEY_COUNT; i++) {
        json_t *v = json_object_get(obj, log_keys[i]);

        if (!v)
            fail_msg("key \"%s\" missing from %s", log_keys[i], line);
        assert_string_equal(json_string_value(v), values[i]);
    }
    json_decref(obj);
    free(line);
    talon_log_format_free(fmt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(escape_table),
        cmocka_unit_test(escape_every_byte),
        cmocka_unit_test(escape_respects_cap),
        cmocka_unit_test(format_exact_lines),
        cmocka_unit_test(format_pads_time_fractions),
        cmocka_unit_test(combined_missing_fields),
        cmocka_unit_test(json_types),
        cmocka_unit_test(hostile_every_format),
        cmocka_unit_test(hostile_random_bytes),
        cmocka_unit_test(hostile_64k_user_agent),
        cmocka_unit_test(json_round_trip),
        cmocka_unit_test(format_respects_cap),
        cmocka_unit_test(compile_errors),
        cmocka_unit_test(interned_keys_format_like_copies),
        cmocka_unit_test(interned_keys_found),
        cmocka_unit_test(duplicate_key_first_wins),
        cmocka_unit_test(intern_known_keys_only),
        cmocka_unit_test(short_values_escaped_as_escaper),
        cmocka_unit_test(interned_keys_need_no_escape),
        cmocka_unit_test(json_writes_every_interned_key),
    };

    /* $time_local and $time_iso8601 are local time: pin the zone. */
    setenv("TZ", "UTC", 1);
    tzset();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
