/* The rfc5424 syslog format: exact bytes of known records, the level to
 * severity mapping, header checks, and hostile bytes that must never end a
 * message or an SD-PARAM early. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "talon/log.h"

/* 2024-05-01T10:00:00.123456789Z */
#define T0 1714557600123456789LL

static talon_log_format *compile_demo(int facility)
{
    talon_rfc5424_options o;
    char err[256] = "";

    talon_rfc5424_options_init(&o);
    o.facility = facility;
    o.hostname = "web1";
    o.app_name = "talon-demo";
    o.procid = "4242";
    talon_log_format *fmt = talon_log_format_compile_rfc5424(&o, err, sizeof(err));
    if (!fmt)
        fail_msg("rfc5424 did not compile: %s", err);
    return fmt;
}

/* Format rec and return a NUL-terminated copy, checking the length pass. */
static char *format(const talon_log_format *fmt, const talon_log_record *rec)
{
    size_t need = talon_log_format_record(fmt, rec, NULL, 0);
    char *buf = malloc(need + 1);

    assert_non_null(buf);
    assert_int_equal(talon_log_format_record(fmt, rec, buf, need), need);
    buf[need] = '\0';
    return buf;
}

static void record_exact_bytes(void **state)
{
    (void)state;
    talon_log_format *fmt = compile_demo(16);
    talon_field f[] = {
        TALON_F_STR("client.ip", "192.0.2.7"),
        TALON_F_INT("http.response.status_code", 200),
        TALON_F_UINT("bytes", 18446744073709551615ULL),
        TALON_F_BOOL("ok", true),
        TALON_F_DOUBLE("ratio", 1.5),
        TALON_F_INT("neg", -3),
    };
    talon_log_record rec = {
        .time_ns = T0, .level = TALON_LOG_WARN, .logger = "access",
        .message = "GET /x HTTP/1.1", .message_len = SIZE_MAX, .fields = f, .nfields = 6,
    };
    char *line = format(fmt, &rec);

    assert_string_equal(line,
        "<132>1 2024-05-01T10:00:00.123456Z web1 talon-demo 4242 access "
        "[talon@32473 client.ip=\"192.0.2.7\" http.response.status_code=\"200\" "
        "bytes=\"18446744073709551615\" ok=\"true\" ratio=\"1.5\" neg=\"-3\"] GET /x HTTP/1.1\n");
    free(line);
    talon_log_format_free(fmt);
}

static void hostile_bytes_escaped(void **state)
{
    (void)state;
    talon_log_format *fmt = compile_demo(1);
    static const char hostile[] = "a\"b\\c]d\r\n\x1b\xff\xc0\xaf" "\xc3\xa9" "\x7f";
    talon_field f[] = { TALON_F_STRN("ua", hostile, sizeof(hostile) - 1) };
    talon_log_record rec = {
        .time_ns = T0, .level = TALON_LOG_INFO, .logger = "app",
        .message = hostile, .message_len = sizeof(hostile) - 1, .fields = f, .nfields = 1,
    };
    char *line = format(fmt, &rec);

    /* SD: RFC escapes for '"', '\' and ']'; \\xHH for the rest; é kept.
     * MSG: the text format's \xHH escapes. */
    assert_string_equal(line,
        "<14>1 2024-05-01T10:00:00.123456Z web1 talon-demo 4242 app "
        "[talon@32473 ua=\"a\\\"b\\\\c\\]d\\\\x0D\\\\x0A\\\\x1B\\\\xFF\\\\xC0\\\\xAF\xc3\xa9\\\\x7F\"] "
        "a\\x22b\\x5Cc]d\\x0D\\x0A\\x1B\\xFF\\xC0\\xAF\xc3\xa9\\x7F\n");
    /* One line, no raw control byte. */
    for (const char *p = line; *p; p++) {
        if (p[1])
            assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
    }
    free(line);
    talon_log_format_free(fmt);
}

static void nil_values(void **state)
{
    (void)state;
    talon_log_format *fmt = compile_demo(1);
    talon_log_record rec = { .time_ns = T0, .level = TALON_LOG_ERROR, .logger = "" };
    char *line = format(fmt, &rec);

    /* No fields: SD is "-"; no message: no SP after it; empty logger: "-". */
    assert_string_equal(line, "<11>1 2024-05-01T10:00:00.123456Z web1 talon-demo 4242 - -\n");
    free(line);
    talon_log_format_free(fmt);
}

static void level_to_severity(void **state)
{
    (void)state;
    talon_log_format *fmt = compile_demo(0);
    static const struct {
        talon_log_level level;
        const char *pri;
    } cases[] = {
        { TALON_LOG_TRACE, "<7>" }, { TALON_LOG_DEBUG, "<7>" }, { TALON_LOG_INFO, "<6>" },
        { TALON_LOG_WARN, "<4>" }, { TALON_LOG_ERROR, "<3>" }, { TALON_LOG_FATAL, "<2>" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        talon_log_record rec = { .time_ns = T0, .level = cases[i].level, .logger = "app",
                                 .message = "m", .message_len = SIZE_MAX };
        char *line = format(fmt, &rec);
        assert_memory_equal(line, cases[i].pri, strlen(cases[i].pri));
        free(line);
    }
    talon_log_format_free(fmt);
}

static void names_made_valid(void **state)
{
    (void)state;
    talon_log_format *fmt = compile_demo(1);
    talon_field f[] = {
        TALON_F_STR("a b=c]d\"e", "v"),
        TALON_F_STR("k.0123456789012345678901234567890123456789", "long"),
        TALON_F_STR("", "empty"),
    };
    talon_log_record rec = {
        .time_ns = T0, .level = TALON_LOG_INFO,
        .logger = "a logger name that is longer than thirty-two bytes",
        .message = "m", .message_len = SIZE_MAX, .fields = f, .nfields = 3,
    };
    char *line = format(fmt, &rec);

    assert_string_equal(line,
        "<14>1 2024-05-01T10:00:00.123456Z web1 talon-demo 4242 a_logger_name_that_is_longer_tha "
        "[talon@32473 a_b_c_d_e=\"v\" k.012345678901234567890123456789=\"long\" -=\"empty\"] m\n");
    free(line);
    talon_log_format_free(fmt);
}

static void time_field_and_cap(void **state)
{
    (void)state;
    talon_log_format *fmt = compile_demo(1);
    talon_field f[] = { { .key = "event.start", .type = TALON_FIELD_TIME, .v.i = 0 } };
    talon_log_record rec = { .time_ns = T0, .level = TALON_LOG_INFO, .logger = "app",
                             .message = "m", .message_len = SIZE_MAX, .fields = f, .nfields = 1 };
    char *line = format(fmt, &rec);

    assert_string_equal(line, "<14>1 2024-05-01T10:00:00.123456Z web1 talon-demo 4242 app "
                              "[talon@32473 event.start=\"1970-01-01T00:00:00.000000Z\"] m\n");

    /* A short buffer gets nothing past its cap and the full length back. */
    char small[40];
    memset(small, '#', sizeof(small));
    assert_int_equal(talon_log_format_record(fmt, &rec, small, 20), strlen(line));
    for (size_t i = 20; i < sizeof(small); i++)
        assert_int_equal(small[i], '#');
    free(line);
    talon_log_format_free(fmt);
}

static void defaults_by_name(void **state)
{
    (void)state;
    char err[256] = "";
    talon_log_format *fmt = talon_log_format_compile("rfc5424", err, sizeof(err));
    assert_non_null(fmt);
    talon_log_record rec = { .time_ns = T0, .level = TALON_LOG_INFO, .logger = "app",
                             .message = "hello", .message_len = SIZE_MAX };
    char *line = format(fmt, &rec);

    /* Facility user, the program name and pid, the machine's host name. */
    char pid[32];
    snprintf(pid, sizeof(pid), " %ld app - hello\n", (long)getpid());
    assert_memory_equal(line, "<14>1 2024-05-01T10:00:00.123456Z ", 34);
    assert_non_null(strstr(line, " test_rfc5424 "));
    assert_non_null(strstr(line, pid));
    free(line);
    talon_log_format_free(fmt);
}

static void other_format_as_msg(void **state)
{
    (void)state;
    talon_rfc5424_options o;
    char err[256] = "";

    talon_rfc5424_options_init(&o);
    o.facility = 16;
    o.hostname = "web1";
    o.app_name = "talon-demo";
    o.procid = "4242";
    o.msg_format = "$request_method \"$request_uri\" $status";
    talon_log_format *fmt = talon_log_format_compile_rfc5424(&o, err, sizeof(err));
    assert_non_null(fmt);
    talon_field f[] = {
        TALON_F_STR("http.request.method", "GET"),
        TALON_F_STR("url.original", "/a\"b\n"),
        TALON_F_INT("http.response.status_code", 404),
    };
    talon_log_record rec = { .time_ns = T0, .level = TALON_LOG_INFO, .logger = "access",
                             .message = "ignored", .message_len = SIZE_MAX, .fields = f, .nfields = 3 };
    char *line = format(fmt, &rec);

    /* MSG is the other format's line; the fields are in it, so SD is "-". */
    assert_string_equal(line, "<134>1 2024-05-01T10:00:00.123456Z web1 talon-demo 4242 access - "
                              "GET \"/a\\x22b\\x0A\" 404\n");
    free(line);
    talon_log_format_free(fmt);

    o.msg_format = "$no_such_variable";
    assert_null(talon_log_format_compile_rfc5424(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "no_such_variable"));
}

static void compile_errors(void **state)
{
    (void)state;
    talon_rfc5424_options o;
    char err[256];

    talon_rfc5424_options_init(&o);
    o.facility = 24;
    assert_null(talon_log_format_compile_rfc5424(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "facility 24"));

    talon_rfc5424_options_init(&o);
    o.app_name = "my app";
    assert_null(talon_log_format_compile_rfc5424(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "app_name 'my app'"));

    talon_rfc5424_options_init(&o);
    o.app_name = "0123456789012345678901234567890123456789012345678"; /* 49 bytes */
    assert_null(talon_log_format_compile_rfc5424(&o, err, sizeof(err)));

    talon_rfc5424_options_init(&o);
    o.sd_id = "fields";
    assert_null(talon_log_format_compile_rfc5424(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "NAME@NUMBER"));

    talon_rfc5424_options_init(&o);
    o.sd_id = "app@12345";
    o.hostname = "host\n";
    assert_null(talon_log_format_compile_rfc5424(&o, err, sizeof(err)));
}

static void facility_names(void **state)
{
    (void)state;
    int f = -1;

    assert_int_equal(talon_syslog_facility_parse("local0", &f), 0);
    assert_int_equal(f, 16);
    assert_int_equal(talon_syslog_facility_parse("authpriv", &f), 0);
    assert_int_equal(f, 10);
    assert_int_equal(talon_syslog_facility_parse("23", &f), 0);
    assert_int_equal(f, 23);
    assert_int_equal(talon_syslog_facility_parse("24", &f), -EINVAL);
    assert_int_equal(talon_syslog_facility_parse("local8", &f), -EINVAL);
    assert_int_equal(talon_syslog_facility_parse("", &f), -EINVAL);
}

static void sd_value_escape(void **state)
{
    (void)state;
    char out[64];
    size_t n = talon_escape_sd_value(out, sizeof(out), "]\"\\\t", 4);

    assert_int_equal(n, 11);
    assert_memory_equal(out, "\\]\\\"\\\\\\\\x09", 11);
    /* Length only. */
    assert_int_equal(talon_escape_sd_value(NULL, 0, "]\"\\\t", 4), 11);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(record_exact_bytes),
        cmocka_unit_test(hostile_bytes_escaped),
        cmocka_unit_test(nil_values),
        cmocka_unit_test(level_to_severity),
        cmocka_unit_test(names_made_valid),
        cmocka_unit_test(time_field_and_cap),
        cmocka_unit_test(defaults_by_name),
        cmocka_unit_test(other_format_as_msg),
        cmocka_unit_test(compile_errors),
        cmocka_unit_test(facility_names),
        cmocka_unit_test(sd_value_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
