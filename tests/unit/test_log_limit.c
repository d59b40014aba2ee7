/* talon_log_limited(): per_second messages a second reach the logger and
 * the count of the others is logged without a later message, by the writer
 * thread within about a second, or at shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log_test_fixture.h"
#include "talon/log.h"

static talon_logger *logger_to_file(const char *name, char *path, size_t cap)
{
    char err[512] = "";
    talon_sink *sink = NULL;
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.flush_interval_ms = 100;
    snprintf(path, cap, "%s/%s.log", dir, name);
    if (talon_sink_open_file(&sink, path, &opts, err, sizeof(err)) < 0)
        fail_msg("talon_sink_open_file(%s): %s", path, err);
    talon_logger *lg = talon_logger_get(name);
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);
    return lg;
}

static int count_lines_with(const char *path, const char *needle)
{
    size_t len = 0;
    char *buf = read_file_all(path, &len);
    int n = 0;
    for (char *p = buf; p && (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(buf);
    return n;
}

/* The count comes without a later message, while the process runs. */
static void count_logged_without_later_message(void **state)
{
    char path[4096];
    talon_logger *lg = logger_to_file("limited", path, sizeof(path));
    talon_log_limit *limit = talon_log_limit_new(lg, TALON_LOG_WARN, 3, "test warnings");
    assert_non_null(limit);

    int logged = 0;
    for (int i = 0; i < 10; i++)
        logged += talon_log_limited(limit, "warning %d", i);
    assert_true(logged >= 3);
    int expected_count = 10 - logged;
    char needle[64];
    snprintf(needle, sizeof(needle), "%d more test warnings suppressed", expected_count);
    for (int i = 0; i < 100 && count_lines_with(path, needle) == 0; i++)
        usleep(50 * 1000);
    assert_int_equal(count_lines_with(path, needle), 1);
    assert_int_equal(count_lines_with(path, "WARN limited warning "), logged);
    talon_log_limit_free(limit);
}

/* A count still pending at shutdown is logged then. */
static void count_logged_at_shutdown(void **state)
{
    char path[4096];
    talon_logger *lg = logger_to_file("closing", path, sizeof(path));
    talon_log_limit *limit = talon_log_limit_new(lg, TALON_LOG_ERROR, 1, "closing errors");
    int logged = 0;
    for (int i = 0; i < 5; i++)
        logged += talon_log_limited(limit, "error %d", i);
    talon_log_limit_free(limit);
    talon_log_shutdown();
    char needle[64];
    snprintf(needle, sizeof(needle), "%d more closing errors suppressed", 5 - logged);
    assert_int_equal(count_lines_with(path, needle), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(count_logged_without_later_message, setup, teardown),
        cmocka_unit_test_setup_teardown(count_logged_at_shutdown, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
