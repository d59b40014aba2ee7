/* Invalid arguments to the app and response functions get -EINVAL at the
 * call, so that they are not stored to crash a request or reach a client.
 * Error bodies keep text that is not valid UTF-8. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/pipeline.h"

static void ignore_completion(const talon_req *req, const talon_resp *resp,
                              const talon_completion *done, void *ctx)
{
    (void)req;
    (void)resp;
    (void)done;
    (void)ctx;
}

static void on_get(talon_req *req, talon_resp *resp, void *ctx)
{
    (void)req;
    (void)ctx;
    talon_resp_set_status(resp, 200);
}

static void middleware_null_rejected(void **state)
{
    (void)state;
    talon_app *app = talon_app_new();
    assert_int_equal(talon_app_add_middleware(app, NULL), -EINVAL);

    /* The app still serves, so nothing was registered. */
    static const talon_resource notes = { .name = "notes", .on_get = on_get };
    char err[256];
    assert_int_equal(talon_app_add_route(app, "/notes", &notes, err, sizeof(err)), 0);
    talon_req *req = talon_pipeline_req_new(app, "GET", "/notes");
    assert_int_equal(talon_resp_status(talon_pipeline_req_run(req)), 200);
    talon_pipeline_req_free(req);
    talon_app_free(app);
}

static void completion_null_rejected(void **state)
{
    (void)state;
    talon_app *app = talon_app_new();
    int ctx = 0;
    assert_int_equal(talon_app_on_complete(app, NULL, &ctx), -EINVAL);
    assert_int_equal(talon_app_on_complete(app, ignore_completion, NULL), 0);
    talon_app_free(app);
}

static void header_control_rejected(void **state)
{
    (void)state;
    talon_app *app = talon_app_new();
    talon_req *req = talon_pipeline_req_new(app, "GET", "/");
    talon_resp *resp = &req->resp;

    /* RFC 9110 section 5.5 allows HTAB and no other control character. */
    static const char *const invalid[] = {
        "a\x01" "b", "\x1b[31mred", "a\x7f", "a\rb", "a\nb", "\x1f",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        assert_int_equal(talon_resp_set_header(resp, "X-Value", invalid[i]), -EINVAL);
        assert_int_equal(talon_resp_add_header(resp, "X-Value", invalid[i]), -EINVAL);
    }
    assert_int_equal(talon_resp_header_count(resp), 0);

    assert_int_equal(talon_resp_set_header(resp, "X-Tab", "a\tb"), 0);
    assert_int_equal(talon_resp_set_header(resp, "X-Utf8", "caf\xc3\xa9"), 0);
    assert_int_equal(talon_resp_set_header(resp, "X-Empty", ""), 0);
    assert_int_equal(talon_resp_header_count(resp), 3);
    talon_pipeline_req_free(req);
    talon_app_free(app);
}

static void error_body_invalid_utf8(void **state)
{
    (void)state;
    talon_app *app = talon_app_new();
    talon_req *req = talon_pipeline_req_new(app, "GET", "/");
    talon_resp *resp = &req->resp;

    /* A stray byte, an overlong '/', a surrogate and a truncated sequence
     * each become U+FFFD; the valid "é" is kept. */
    talon_resp_error(resp, 404, "caf\xc3\xa9 \xff", "a\xc0\xaf"
                                                  "b\xed\xa0\x80"
                                                  "c\xe2\x82");
    size_t len = 0;
    const char *body = talon_resp_body(resp, &len);
    assert_non_null(body);
    assert_string_equal(body, "{\"title\":\"caf\xc3\xa9 \xef\xbf\xbd\","
                              "\"description\":\"a\xef\xbf\xbd\xef\xbf\xbd"
                              "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                              "c\xef\xbf\xbd\xef\xbf\xbd\"}");
    assert_int_equal(talon_resp_status(resp), 404);
    talon_pipeline_req_free(req);
    talon_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(middleware_null_rejected),
        cmocka_unit_test(completion_null_rejected),
        cmocka_unit_test(header_control_rejected),
        cmocka_unit_test(error_body_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
