/* Query string and path decoding, including malformed percent escapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/pipeline.h"
#include "http/uri.h"

static talon_app *app;

static int setup(void **state)
{
    app = talon_app_new();
    return 0;
}

static int teardown(void **state)
{
    talon_app_free(app);
    return 0;
}

static talon_req *req_for(const char *target)
{
    talon_req *req = talon_pipeline_req_new(app, "GET", target);
    assert_non_null(req);
    return req;
}

static void decode_cases(void **state)
{
    static const struct {
        const char *in;
        bool plus;
        const char *out;
    } cases[] = {
        { "plain", false, "plain" },
        { "a%20b", false, "a b" },
        { "a+b", false, "a+b" },
        { "a+b", true, "a b" },
        { "%41%62%63", false, "Abc" },
        { "%e2%82%ac", false, "\xe2\x82\xac" },
        { "100%", false, "100%" },
        { "%4", false, "%4" },
        { "%zz", false, "%zz" },
        { "%g1x", false, "%g1x" },
        { "%%41", false, "%A" },
        { "", false, "" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[64];
        bool nul = false;
        size_t n = talon_uri_decode(out, cases[i].in, strlen(cases[i].in), cases[i].plus, &nul);
        assert_int_equal(n, strlen(cases[i].out));
        assert_string_equal(out, cases[i].out);
        assert_false(nul);
    }
    char out[8];
    bool nul = false;
    talon_uri_decode(out, "a%00b", 5, false, &nul);
    assert_true(nul);
}

static void query_basic_pairs(void **state)
{
    talon_req *req = req_for("/search?q=hello+world&lang=en&empty=&flag");
    assert_string_equal(talon_req_query(req, "q"), "hello world");
    assert_string_equal(talon_req_query(req, "lang"), "en");
    assert_string_equal(talon_req_query(req, "empty"), "");
    assert_string_equal(talon_req_query(req, "flag"), "");
    assert_null(talon_req_query(req, "missing"));
    assert_null(talon_req_query(req, "Q"));
    assert_string_equal(talon_req_path(req), "/search");
    assert_string_equal(talon_req_target(req), "/search?q=hello+world&lang=en&empty=&flag");
    talon_pipeline_req_free(req);
}

static void query_repeated_keys(void **state)
{
    talon_req *req = req_for("/x?tag=a&other=1&tag=b&tag=c%20d");
    assert_string_equal(talon_req_query(req, "tag"), "a");
    assert_string_equal(talon_req_query_at(req, "tag", 0), "a");
    assert_string_equal(talon_req_query_at(req, "tag", 1), "b");
    assert_string_equal(talon_req_query_at(req, "tag", 2), "c d");
    assert_null(talon_req_query_at(req, "tag", 3));
    talon_pipeline_req_free(req);
}

static void query_encoded_keys_and_separators(void **state)
{
    talon_req *req = req_for("/x?a%3Db=c%26d&&%20k=v=w");
    assert_string_equal(talon_req_query(req, "a=b"), "c&d");
    /* Only the first '=' separates key and value. */
    assert_string_equal(talon_req_query(req, " k"), "v=w");
    talon_pipeline_req_free(req);
}

static void query_malformed_escapes_kept(void **state)
{
    talon_req *req = req_for("/x?pct=100%&bad=%zz&short=%4&ok=%41");
    assert_string_equal(talon_req_query(req, "pct"), "100%");
    assert_string_equal(talon_req_query(req, "bad"), "%zz");
    assert_string_equal(talon_req_query(req, "short"), "%4");
    assert_string_equal(talon_req_query(req, "ok"), "A");
    assert_int_equal(req->bad_request, 0);
    talon_pipeline_req_free(req);
}

/* Run req through the pipeline and check that it is rejected with 400 and a
 * body that contains text. */
static void assert_rejected_400(talon_req *req, const char *text)
{
    assert_int_equal(req->bad_request, 400);
    talon_resp *resp = talon_pipeline_req_run(req);
    assert_int_equal(talon_resp_status(resp), 400);
    size_t len;
    const char *body = talon_resp_body(resp, &len);
    assert_non_null(body);
    assert_non_null(memmem(body, len, text, strlen(text)));
}

static void query_nul_rejected(void **state)
{
    talon_req *req = req_for("/x?name=a%00b");
    assert_rejected_400(req, "%00");
    talon_pipeline_req_free(req);
}

static void target_fragment_rejected(void **state)
{
    /* The query and path are still split as before, for the log line of
     * the 400. */
    talon_req *req = req_for("/x?a=1#frag");
    assert_string_equal(talon_req_query(req, "a"), "1");
    assert_string_equal(talon_req_path(req), "/x");
    assert_rejected_400(req, "%23");
    talon_pipeline_req_free(req);

    req = req_for("/x#a=b?secret=v");
    assert_int_equal(req->bad_request, 400);
    assert_string_equal(talon_req_query(req, "secret"), "v");
    talon_pipeline_req_free(req);
}

static void path_decoded_target_raw(void **state)
{
    talon_req *req = req_for("/notes/a%2Fb%20c?x=1");
    assert_string_equal(talon_req_path(req), "/notes/a/b c");
    assert_string_equal(talon_req_target(req), "/notes/a%2Fb%20c?x=1");
    talon_pipeline_req_free(req);
}

static void path_absolute_form(void **state)
{
    talon_req *req = req_for("http://example.com/notes?x=1");
    assert_string_equal(talon_req_path(req), "/notes");
    assert_string_equal(talon_req_query(req, "x"), "1");
    assert_int_equal(req->bad_request, 0);
    talon_pipeline_req_free(req);

    req = req_for("notes");
    assert_int_equal(req->bad_request, 400);
    talon_pipeline_req_free(req);
}

static void query_many_pairs(void **state)
{
    char target[8192] = "/x?";
    for (int i = 0; i < 500; i++) {
        char pair[32];
        snprintf(pair, sizeof(pair), "k%d=v%d&", i, i);
        strcat(target, pair);
    }
    talon_req *req = req_for(target);
    assert_string_equal(talon_req_query(req, "k0"), "v0");
    assert_string_equal(talon_req_query(req, "k499"), "v499");
    talon_pipeline_req_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_cases),
        cmocka_unit_test(query_basic_pairs),
        cmocka_unit_test(query_repeated_keys),
        cmocka_unit_test(query_encoded_keys_and_separators),
        cmocka_unit_test(query_malformed_escapes_kept),
        cmocka_unit_test(query_nul_rejected),
        cmocka_unit_test(target_fragment_rejected),
        cmocka_unit_test(path_decoded_target_raw),
        cmocka_unit_test(path_absolute_form),
        cmocka_unit_test(query_many_pairs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
