/* Access-log configuration: the [access_log] keys, their errors, and the
 * keys passed on to the access logger's sink section. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "http/pipeline.h"
#include "http/request.h"
#include "log_test_fixture.h"
#include "talon/access_log.h"

static void options_defaults(void **state)
{
    talon_access_log_options o;

    talon_access_log_options_init(&o);
    assert_true(o.enabled);
    assert_string_equal(o.logger, "access");
    assert_int_equal(o.level, TALON_LOG_INFO);
    assert_string_equal(o.skip_paths, "");
    assert_string_equal(o.skip_status, "");
}

static void config_accepts_valid_keys(void **state)
{
    static const char *const cases[][2] = {
        { "enabled", "false" }, { "enabled", "yes" }, { "skip_paths", "/health, /static/*" },
        { "skip_paths", "" }, { "skip_status", "2xx,304, 500-599" }, { "skip_status", "" },
        { "logger", "web" }, { "format", "json" }, { "rotate_size", "10M" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        talon_access_log_options o;
        char err[256] = "";

        talon_access_log_options_init(&o);
        if (talon_access_log_config_set(&o, cases[i][0], cases[i][1], err, sizeof(err)) != 0)
            fail_msg("%s = %s rejected: %s", cases[i][0], cases[i][1], err);
    }
}

static void config_stores_values(void **state)
{
    talon_access_log_options o;
    char err[256] = "";

    talon_access_log_options_init(&o);
    assert_int_equal(talon_access_log_config_set(&o, "enabled", "off", err, sizeof(err)), 0);
    assert_false(o.enabled);
    assert_int_equal(talon_access_log_config_set(&o, "skip_paths", "/health", err, sizeof(err)), 0);
    assert_string_equal(o.skip_paths, "/health");
    assert_int_equal(talon_access_log_config_set(&o, "skip_status", "204", err, sizeof(err)), 0);
    assert_string_equal(o.skip_status, "204");
}

static void config_rejects_invalid_values(void **state)
{
    static const struct {
        const char *key, *value, *needle;
    } cases[] = {
        { "enabled", "maybe", "accepted values are true and false" },
        { "skip_paths", "health", "\"health\" does not start with '/'" },
        { "skip_status", "99", "invalid status \"99\"" },
        { "skip_status", "2xx, abc", "invalid status \"abc\"" },
        { "skip_status", "599-500", "ends before it starts" },
        { "skip_status", "6xx", "invalid status \"6xx\"" },
        { "logger", "", "empty" },
        /* Passed on to [log.access], whose messages name the accepted values. */
        { "format", "$nope", "unknown variable \"$nope\"" },
        { "colour", "red", "unknown key" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        talon_access_log_options o;
        char err[512] = "";
        int rc;

        talon_access_log_options_init(&o);
        rc = talon_access_log_config_set(&o, cases[i].key, cases[i].value, err, sizeof(err));
        if (rc != -EINVAL)
            fail_msg("%s = %s: returned %d, expected -EINVAL", cases[i].key, cases[i].value, rc);
        if (!strstr(err, cases[i].needle))
            fail_msg("%s = %s: error \"%s\" lacks \"%s\"", cases[i].key, cases[i].value, err,
                     cases[i].needle);
    }
}

static void config_rejects_long_lists(void **state)
{
    talon_access_log_options o;
    char value[2048], err[256] = "";
    size_t n = 0;

    talon_access_log_options_init(&o);
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(value + n, sizeof(value) - n, "/p%d,", i);
    assert_int_equal(talon_access_log_config_set(&o, "skip_paths", value, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "more than 32 paths"));
}

enum { COUNT_THREADS = 20, COUNT_REQUESTS = 500 };

typedef struct count_arg {
    talon_app *app;
    int thread;
} count_arg;

/* Complete COUNT_REQUESTS requests, every fifth to the skipped /health. */
static void *complete_requests(void *p)
{
    const count_arg *a = p;

    for (int i = 0; i < COUNT_REQUESTS; i++) {
        talon_req *req = talon_pipeline_req_new(a->app, "GET", i % 5 ? "/hello" : "/health");
        const talon_completion done = { .bytes_sent = 2, .duration_ns = 1000 };

        assert_non_null(req);
        talon_pipeline_req_run(req);
        talon_app_run_completions(a->app, req, &done);
        talon_pipeline_req_free(req);
    }
    return NULL;
}

/* The counters are kept per thread (more threads than stripes here): the
 * totals must still count every record and every skip once. */
static void counters_sum_threads(void **state)
{
    talon_access_log_options o;
    talon_access_log *log = NULL;
    talon_app *app = talon_app_new();
    char err[256] = "";
    pthread_t threads[COUNT_THREADS];
    count_arg args[COUNT_THREADS];

    assert_non_null(app);
    assert_int_equal(talon_logger_add_sink(talon_logger_get("access"), open_sink("access.log", NULL),
                                           TALON_LOG_INFO, NULL), 0);
    talon_access_log_options_init(&o);
    assert_int_equal(talon_access_log_config_set(&o, "skip_paths", "/health", err, sizeof(err)), 0);
    assert_int_equal(talon_access_log_attach(app, &o, &log, err, sizeof(err)), 0);
    assert_non_null(log);

    for (int t = 0; t < COUNT_THREADS; t++) {
        args[t] = (count_arg){ app, t };
        assert_int_equal(pthread_create(&threads[t], NULL, complete_requests, &args[t]), 0);
    }
    for (int t = 0; t < COUNT_THREADS; t++)
        pthread_join(threads[t], NULL);

    assert_int_equal(talon_access_log_written(log), COUNT_THREADS * COUNT_REQUESTS * 4 / 5);
    assert_int_equal(talon_access_log_skipped(log), COUNT_THREADS * COUNT_REQUESTS / 5);
    talon_app_free(app);
    talon_access_log_free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(options_defaults),
        cmocka_unit_test(config_accepts_valid_keys),
        cmocka_unit_test(config_stores_values),
        cmocka_unit_test(config_rejects_invalid_values),
        cmocka_unit_test(config_rejects_long_lists),
        cmocka_unit_test_setup_teardown(counters_sum_threads, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
