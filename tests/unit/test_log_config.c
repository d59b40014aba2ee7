/* INI configuration: errors name file, line, section, key and the accepted
 * values; "[log.*]" sections configure loggers and sinks; value parsers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "log_test_fixture.h"
#include "talon/config.h"
#include "talon/log.h"

/* Write text to DIR/talon.ini and return its path in a static buffer. */
static const char *write_ini(const char *text)
{
    static char path[4096];
    snprintf(path, sizeof(path), "%s/talon.ini", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

typedef struct app_keys {
    int calls;
    char last[1024];
} app_keys;

static int app_handler(void *ctx, const char *section, const char *key, const char *value,
                       char *err, size_t errlen)
{
    app_keys *k = ctx;
    k->calls++;
    snprintf(k->last, sizeof(k->last), "[%s] %s=%s", section, key, value);
    if (strcmp(key, "port") == 0 && strcmp(value, "http") == 0) {
        snprintf(err, errlen, "invalid value 'http'; expected a port number");
        return -EINVAL;
    }
    return 0;
}

static void expect_error(const char *ini, const char *expected_suffix)
{
    const char *path = write_ini(ini);
    char err[1024] = "";
    app_keys keys = { 0 };
    assert_int_equal(talon_config_load(path, app_handler, &keys, err, sizeof(err)), -EINVAL);
    char expected[2048];
    snprintf(expected, sizeof(expected), "%s:%s", path, expected_suffix);
    assert_string_equal(err, expected);
}

/* Errors name file:line, the section, the key and what is accepted. */
static void errors_name_file_line_key(void **state)
{
    expect_error("; talon\n[server]\nport = 8080\n\n[log.access]\nfile = access.log\n"
                 "overflow = dorp\n",
                 "7: [log.access] overflow: invalid value 'dorp'; expected block or drop");
    expect_error("[log.app]\nlevel = loud\n",
                 "2: [log.app] level: invalid value 'loud'; expected trace, debug, info, warn, "
                 "error, fatal or off");
    expect_error("[log.app]\n\n\nrotate_size = 10q\n",
                 "4: [log.app] rotate_size: invalid value '10q'; expected a size in bytes with an "
                 "optional k, M, G or T suffix (powers of 1024), such as 65536, 64k or 100M");
    expect_error("[log.app]\nrotate_gzip = maybe\n",
                 "2: [log.app] rotate_gzip: invalid value 'maybe'; expected true or false "
                 "(also yes/no, on/off, 1/0)");
    expect_error("[log.app]\nmode = 0999\n",
                 "2: [log.app] mode: invalid value '0999'; expected an octal file mode from 0000 "
                 "to 0777, such as 0640");
    expect_error("[log.app]\nrotate_interval = weekly\n",
                 "2: [log.app] rotate_interval: invalid value 'weekly'; expected seconds with an "
                 "optional s, m, h or d suffix, such as 30, 5m, 1h or 1d");
    expect_error("[log.app]\ncolour = red\n",
                 "2: [log.app] colour: unknown key; expected level, format, file, mode, "
                 "buffer_size, max_buffered, flush_interval_ms, overflow, rotate_size, "
                 "rotate_interval, rotate_keep, rotate_gzip, facility, app_name, hostname or sd_id");
    expect_error("[server]\nport = http\n",
                 "2: [server] port: invalid value 'http'; expected a port number");
    expect_error("[log.app]\nfile = a.log\nthis line has no equals sign\n",
                 "3: syntax error; expected [section], key = value or a ; comment");
}

/* A repeated section or key is an error naming both lines; inih alone
 * would let the last one win. */
static void duplicates_are_rejected(void **state)
{
    expect_error("[user.x]\nrole = user\npassword_hash = h\n\n[user.x]\nrole = admin\n",
                 "5: [user.x]: duplicate section; first at line 1. Merge the two sections "
                 "into one");
    expect_error("[server]\nport = 80\n[server]\n",
                 "3: [server]: duplicate section; first at line 1. Merge the two sections into one");
    expect_error("[user.x]\nrole = user\n; comment\nrole = admin\n",
                 "4: [user.x] role: duplicate; first set at line 2. Keep one of the two");
    expect_error("[log.app]\nlevel = info\n[log.access]\nlevel = info\n[log.app.2]\nlevel = warn\n"
                 "level = error\n",
                 "7: [log.app.2] level: duplicate; first set at line 6. Keep one of the two");
}

/* An indented line after a key would become part of its value. */
static void indented_continuation_is_rejected(void **state)
{
    expect_error("[server]\nport = 80\n  threads = 2\n",
                 "3: [server] port: indented line continues the value of the key above; remove "
                 "the indentation, or write the value on one line");
    /* An indented first key and an indented header are fine. */
    const char *path = write_ini("  [server]\n  port = 80\n[other]\nport = 81\n");
    char err[1024] = "";
    app_keys keys = { 0 };
    assert_int_equal(talon_config_load(path, app_handler, &keys, err, sizeof(err)), 0);
    assert_int_equal(keys.calls, 2);
}

/* [audit.policy] rule repeats by design; a caller may declare more keys. */
static void repeatable_keys_are_passed_on(void **state)
{
    const char *path = write_ini("[audit.policy]\nrule = GET /a none\nrule = * * metadata\n"
                                 "[app]\nallow = a\nallow = b\n");
    char err[1024] = "";
    app_keys keys = { 0 };
    assert_int_equal(talon_config_load(path, app_handler, &keys, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, ":6: [app] allow: duplicate; first set at line 5"));
    assert_int_equal(keys.calls, 3);

    static const char *const repeatable[] = { "app.allow", NULL };
    memset(&keys, 0, sizeof(keys));
    assert_int_equal(talon_config_load_repeatable(path, repeatable, app_handler, &keys, err,
                                                  sizeof(err)), 0);
    assert_int_equal(keys.calls, 4);
    assert_string_equal(keys.last, "[app] allow=b");
}

/* An invalid format names the format compiler's complaint. */
static void invalid_format_is_rejected(void **state)
{
    const char *path = write_ini("[log.access]\nformat = $remote_addr $no_such_variable\n");
    char err[1024] = "";
    assert_int_equal(talon_config_load(path, NULL, NULL, err, sizeof(err)), -EINVAL);
    char prefix[4200];
    snprintf(prefix, sizeof(prefix), "%s:2: [log.access] format: invalid value '$remote_addr $no_such_variable': ", path);
    assert_memory_equal(err, prefix, strlen(prefix));
    assert_non_null(strstr(err, "expected text, json, logfmt, combined, rfc5424 or a format string"));
}

/* A missing file is reported with its path and errno. */
static void missing_file_is_reported(void **state)
{
    char path[4096], err[1024] = "";
    snprintf(path, sizeof(path), "%s/nope.ini", dir);
    assert_int_equal(talon_config_load(path, NULL, NULL, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "nope.ini: cannot read the configuration: No such file or directory"));
}

/* Sections configure sinks: [log.app] and [log.app.2] are two sinks of the
 * "app" logger with their own level, format and mode; other sections go to
 * the application's handler. Lines longer than inih's default 200 bytes
 * are read whole. */
static void sections_configure_sinks(void **state)
{
    char ini[4096];
    char pad[600];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    snprintf(ini, sizeof(ini),
             "[server]\nlisten = 127.0.0.1:8080\n\n"
             "[log.app]\nfile = %s/logs/app.log\nlevel = warn\nformat = text\n"
             "mode = 0600\nrotate_size = 1M\nrotate_keep = 3\nrotate_gzip = yes\n\n"
             "[log.app.2]\nfile = %s/logs/app.json\nlevel = debug\nformat = json\n"
             "overflow = drop\nmax_buffered = 64k\nbuffer_size = 16k\nflush_interval_ms = 200\n"
             "rotate_interval = 1d\n\n"
             "[other]\nlong = %s\n",
             dir, dir, pad);
    const char *path = write_ini(ini);
    char err[1024] = "";
    app_keys keys = { 0 };
    mode_t old_umask = umask(0);
    assert_int_equal(talon_config_load(path, app_handler, &keys, err, sizeof(err)), 0);
    assert_int_equal(keys.calls, 2);
    assert_int_equal(strlen(keys.last), strlen("[other] long=") + strlen(pad));
    assert_int_equal(talon_log_config_apply(err, sizeof(err)), 0);
    umask(old_umask);

    talon_logger *app = talon_logger_get("app");
    assert_true(talon_logger_enabled(app, TALON_LOG_DEBUG));
    assert_false(talon_logger_enabled(app, TALON_LOG_TRACE));
    talon_log_debug(app, "rec t=0 i=0 end");
    talon_log_warn(app, "rec t=0 i=1 end");
    talon_log_shutdown();

    char text_path[4096], json_path[4096];
    snprintf(text_path, sizeof(text_path), "%s/logs/app.log", dir);
    snprintf(json_path, sizeof(json_path), "%s/logs/app.json", dir);
    assert_int_equal(file_mode(text_path), 0600);
    assert_int_equal(file_mode(json_path), 0640);

    rec_count *c = calloc(1, sizeof(*c));
    count_file(c, text_path, 0);
    assert_int_equal(c->lines, 1);
    assert_int_equal(c->seen[0][1], 1);
    memset(c, 0, sizeof(*c));
    count_file(c, json_path, 1);
    assert_int_equal(c->bad_lines, 0);
    assert_int_equal(c->lines, 2);
    free(c);
}

/* A sink that cannot be opened fails the whole apply and leaves the
 * running configuration in place. */
static void apply_is_all_or_nothing(void **state)
{
    char ini[4096], err[1024] = "";
    snprintf(ini, sizeof(ini), "[log.app]\nfile = %s/first.log\n", dir);
    assert_int_equal(talon_config_load(write_ini(ini), NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(talon_log_config_apply(err, sizeof(err)), 0);

    snprintf(ini, sizeof(ini), "[log.app]\nfile = %s/second.log\n\n[log.app.2]\nfile = /proc/talon/forbidden.log\n", dir);
    assert_int_equal(talon_config_load(write_ini(ini), NULL, NULL, err, sizeof(err)), 0);
    assert_true(talon_log_config_apply(err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "[log.app.2] file: cannot "));
    assert_non_null(strstr(err, "/proc/talon/forbidden.log"));

    talon_log_info(talon_logger_get("app"), "rec t=0 i=0 end");
    talon_log_shutdown();
    char path[4096];
    snprintf(path, sizeof(path), "%s/first.log", dir);
    assert_true(file_contains(path, "rec t=0 i=0 end"));
}

/* A section without a file is reported at apply time. */
static void missing_file_key_is_reported(void **state)
{
    char err[1024] = "";
    assert_int_equal(talon_config_load(write_ini("[log.audit]\nlevel = info\n"), NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(talon_log_config_apply(err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "[log.audit] file: missing key; set file = PATH, - (stderr) or stdout");
}

static void value_parsers(void **state)
{
    char err[256];
    unsigned long long v;
    assert_int_equal(talon_config_parse_size("65536", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(talon_config_parse_size("64k", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(talon_config_parse_size("100M", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 100ULL << 20);
    assert_int_equal(talon_config_parse_size("2G", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 2ULL << 30);
    assert_int_equal(talon_config_parse_size("-1", &v, err, sizeof(err)), -EINVAL);
    assert_int_equal(talon_config_parse_size("1kk", &v, err, sizeof(err)), -EINVAL);
    assert_int_equal(talon_config_parse_size("99999999999999999999", &v, err, sizeof(err)), -EINVAL);
    assert_int_equal(talon_config_parse_size("", &v, err, sizeof(err)), -EINVAL);

    assert_int_equal(talon_config_parse_seconds("30", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 30);
    assert_int_equal(talon_config_parse_seconds("5m", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 300);
    assert_int_equal(talon_config_parse_seconds("1h", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 3600);
    assert_int_equal(talon_config_parse_seconds("1d", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 86400);
    assert_int_equal(talon_config_parse_seconds("1w", &v, err, sizeof(err)), -EINVAL);

    unsigned mode;
    assert_int_equal(talon_config_parse_mode("0640", &mode, err, sizeof(err)), 0);
    assert_int_equal(mode, 0640);
    assert_int_equal(talon_config_parse_mode("600", &mode, err, sizeof(err)), 0);
    assert_int_equal(mode, 0600);
    assert_int_equal(talon_config_parse_mode("4755", &mode, err, sizeof(err)), -EINVAL);
    assert_int_equal(talon_config_parse_mode("rw-r-----", &mode, err, sizeof(err)), -EINVAL);

    int b;
    assert_int_equal(talon_config_parse_bool("On", &b, err, sizeof(err)), 0);
    assert_int_equal(b, 1);
    assert_int_equal(talon_config_parse_bool("false", &b, err, sizeof(err)), 0);
    assert_int_equal(b, 0);
    assert_int_equal(talon_config_parse_bool("2", &b, err, sizeof(err)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(errors_name_file_line_key, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_format_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_file_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(sections_configure_sinks, setup, teardown),
        cmocka_unit_test_setup_teardown(apply_is_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_file_key_is_reported, setup, teardown),
        cmocka_unit_test(value_parsers),
        cmocka_unit_test_setup_teardown(duplicates_are_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(indented_continuation_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(repeatable_keys_are_passed_on, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
