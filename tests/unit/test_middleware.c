/* The request pipeline without sockets: middleware order, short-circuits,
 * req_succeeded, 404/405/Allow, OPTIONS, HEAD and error bodies. */
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

/* Every hook appends "<event> " to the trace. */
static char trace[1024];
static bool succeeded_seen[8];
static const talon_resource *resource_seen[8];

static void note(const char *event)
{
    strcat(trace, event);
    strcat(trace, " ");
}

typedef struct mw_ctx {
    int index;
    int short_circuit_status;   /* process_request sets it when non-zero */
    bool short_with_error;      /* via talon_resp_error instead of a status */
    int resource_status;        /* process_resource sets it when non-zero */
} mw_ctx;

static void mw_request(talon_req *req, talon_resp *resp, void *ctx)
{
    mw_ctx *m = ctx;
    char ev[32];
    snprintf(ev, sizeof(ev), "req%d", m->index);
    note(ev);
    if (m->short_circuit_status && m->short_with_error)
        talon_resp_error(resp, m->short_circuit_status, NULL, "stopped by middleware");
    else if (m->short_circuit_status)
        talon_resp_set_status(resp, m->short_circuit_status);
}

static void mw_resource(talon_req *req, talon_resp *resp, const talon_resource *r, void *ctx)
{
    mw_ctx *m = ctx;
    char ev[32];
    snprintf(ev, sizeof(ev), "res%d", m->index);
    note(ev);
    if (m->resource_status)
        talon_resp_set_status(resp, m->resource_status);
}

static void mw_response(talon_req *req, talon_resp *resp, const talon_resource *r,
                        bool req_succeeded, void *ctx)
{
    mw_ctx *m = ctx;
    char ev[32];
    snprintf(ev, sizeof(ev), "resp%d", m->index);
    note(ev);
    succeeded_seen[m->index] = req_succeeded;
    resource_seen[m->index] = r;
}

static int responder_status = 200;

static void on_get(talon_req *req, talon_resp *resp, void *ctx)
{
    note(strcmp(talon_req_method(req), "HEAD") == 0 ? "get(head)" : "get");
    if (responder_status != 0)
        talon_resp_json(resp, responder_status, json_pack("{s:s}", "ok", "yes"));
}

static void on_post(talon_req *req, talon_resp *resp, void *ctx)
{
    note("post");
    json_t *doc = talon_req_json(req, resp);
    if (doc == NULL)
        return;
    talon_resp_json(resp, 201, doc);
}

static void on_delete_fails(talon_req *req, talon_resp *resp, void *ctx)
{
    note("delete");
    talon_resp_error(resp, 503, NULL, "storage offline");
}

static void on_put_no_status(talon_req *req, talon_resp *resp, void *ctx)
{
    note("put");
}

typedef struct fixture {
    talon_app *app;
    mw_ctx mw[4];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->app = talon_app_new();
    static const talon_resource notes = {
        .name = "notes", .on_get = on_get, .on_post = on_post,
        .on_delete = on_delete_fails, .on_put = on_put_no_status,
    };
    char err[256];
    assert_int_equal(talon_app_add_route(f->app, "/notes", &notes, err, sizeof(err)), 0);
    for (int i = 1; i <= 3; i++) {
        f->mw[i].index = i;
        talon_middleware mw = { mw_request, mw_resource, mw_response, &f->mw[i] };
        assert_int_equal(talon_app_add_middleware(f->app, &mw), 0);
    }
    trace[0] = '\0';
    memset(succeeded_seen, 0, sizeof(succeeded_seen));
    memset(resource_seen, 0, sizeof(resource_seen));
    responder_status = 200;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    talon_app_free(f->app);
    free(f);
    return 0;
}

/* Run a request; the caller frees it. */
static talon_req *run(fixture *f, const char *method, const char *target)
{
    talon_req *req = talon_pipeline_req_new(f->app, method, target);
    assert_non_null(req);
    talon_pipeline_req_run(req);
    return req;
}

static json_t *body_json(talon_req *req)
{
    size_t len;
    const char *body = talon_resp_body(&req->resp, &len);
    assert_non_null(body);
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    if (doc == NULL)
        fail_msg("response body is not JSON: %.*s", (int)len, body);
    return doc;
}

static void assert_error_body(talon_req *req, const char *title, const char *description)
{
    json_t *doc = body_json(req);
    assert_string_equal(json_string_value(json_object_get(doc, "title")), title);
    if (description == NULL)
        assert_null(json_object_get(doc, "description"));
    else
        assert_string_equal(json_string_value(json_object_get(doc, "description")), description);
    assert_string_equal(talon_resp_header(&req->resp, "Content-Type"), "application/json");
    json_decref(doc);
}

static void middleware_order(void **state)
{
    fixture *f = *state;
    talon_req *req = run(f, "GET", "/notes");
    assert_string_equal(trace, "req1 req2 req3 res1 res2 res3 get resp3 resp2 resp1 ");
    assert_int_equal(talon_resp_status(&req->resp), 200);
    assert_true(succeeded_seen[1]);
    assert_non_null(resource_seen[1]);
    assert_string_equal(resource_seen[1]->name, "notes");
    assert_string_equal(talon_req_route(req), "/notes");
    talon_pipeline_req_free(req);
}

static void middleware_short_circuit_status(void **state)
{
    fixture *f = *state;
    f->mw[2].short_circuit_status = 204;
    talon_req *req = run(f, "GET", "/notes");
    /* req3, routing, process_resource and the responder are skipped; every
     * process_response still runs. */
    assert_string_equal(trace, "req1 req2 resp3 resp2 resp1 ");
    assert_int_equal(talon_resp_status(&req->resp), 204);
    assert_true(succeeded_seen[3]);
    assert_null(resource_seen[1]);
    talon_pipeline_req_free(req);
}

static void middleware_short_circuit_error(void **state)
{
    fixture *f = *state;
    f->mw[1].short_circuit_status = 401;
    f->mw[1].short_with_error = true;
    talon_req *req = run(f, "GET", "/notes");
    assert_string_equal(trace, "req1 resp3 resp2 resp1 ");
    assert_int_equal(talon_resp_status(&req->resp), 401);
    assert_false(succeeded_seen[1]);
    assert_false(succeeded_seen[3]);
    assert_error_body(req, "Unauthorized", "stopped by middleware");
    talon_pipeline_req_free(req);
}

static void middleware_resource_short_circuit(void **state)
{
    fixture *f = *state;
    f->mw[2].resource_status = 403;
    talon_req *req = run(f, "GET", "/notes");
    assert_string_equal(trace, "req1 req2 req3 res1 res2 resp3 resp2 resp1 ");
    assert_int_equal(talon_resp_status(&req->resp), 403);
    talon_pipeline_req_free(req);
}

static void pipeline_not_found(void **state)
{
    fixture *f = *state;
    talon_req *req = run(f, "GET", "/missing");
    assert_string_equal(trace, "req1 req2 req3 resp3 resp2 resp1 ");
    assert_int_equal(talon_resp_status(&req->resp), 404);
    assert_false(succeeded_seen[2]);
    assert_null(resource_seen[2]);
    assert_null(talon_req_route(req));
    assert_error_body(req, "Not Found", NULL);
    talon_pipeline_req_free(req);
}

static void pipeline_method_not_allowed(void **state)
{
    fixture *f = *state;
    static const char *methods[] = { "PATCH", "TRACE", "BREW" };
    for (size_t i = 0; i < 3; i++) {
        trace[0] = '\0';
        talon_req *req = run(f, methods[i], "/notes");
        assert_string_equal(trace, "req1 req2 req3 res1 res2 res3 resp3 resp2 resp1 ");
        assert_int_equal(talon_resp_status(&req->resp), 405);
        assert_string_equal(talon_resp_header(&req->resp, "Allow"),
                            "GET, HEAD, POST, PUT, DELETE, OPTIONS");
        assert_false(succeeded_seen[1]);
        assert_error_body(req, "Method Not Allowed", NULL);
        talon_pipeline_req_free(req);
    }
}

static void pipeline_options(void **state)
{
    fixture *f = *state;
    talon_req *req = run(f, "OPTIONS", "/notes");
    assert_int_equal(talon_resp_status(&req->resp), 200);
    assert_string_equal(talon_resp_header(&req->resp, "Allow"),
                        "GET, HEAD, POST, PUT, DELETE, OPTIONS");
    assert_true(succeeded_seen[1]);
    assert_null(strstr(trace, "get"));
    talon_pipeline_req_free(req);
}

static void pipeline_head_runs_get(void **state)
{
    fixture *f = *state;
    talon_req *req = run(f, "HEAD", "/notes");
    assert_non_null(strstr(trace, "get(head)"));
    assert_int_equal(talon_resp_status(&req->resp), 200);
    talon_pipeline_req_free(req);
}

static void pipeline_responder_error_fails(void **state)
{
    fixture *f = *state;
    talon_req *req = run(f, "DELETE", "/notes");
    assert_int_equal(talon_resp_status(&req->resp), 503);
    assert_false(succeeded_seen[1]);
    assert_error_body(req, "Service Unavailable", "storage offline");
    talon_pipeline_req_free(req);
}

static void pipeline_status_500_fails(void **state)
{
    fixture *f = *state;
    responder_status = 500;
    talon_req *req = run(f, "GET", "/notes");
    assert_int_equal(talon_resp_status(&req->resp), 500);
    assert_false(succeeded_seen[1]);
    talon_pipeline_req_free(req);
}

static void pipeline_default_status_200(void **state)
{
    fixture *f = *state;
    talon_req *req = run(f, "PUT", "/notes");
    assert_int_equal(talon_resp_status(&req->resp), 200);
    assert_true(succeeded_seen[1]);
    talon_pipeline_req_free(req);
}

static talon_req *post_json(fixture *f, const char *content_type, const char *body)
{
    talon_req *req = talon_pipeline_req_new(f->app, "POST", "/notes");
    if (content_type != NULL)
        talon_req_add_header(req, "Content-Type", content_type);
    assert_int_equal(talon_req_append_body(req, body, strlen(body)), 0);
    talon_pipeline_req_run(req);
    return req;
}

static void pipeline_json_body(void **state)
{
    fixture *f = *state;
    talon_req *req = post_json(f, "application/json; charset=utf-8", "{\"a\": [1, 2]}");
    assert_int_equal(talon_resp_status(&req->resp), 201);
    assert_true(succeeded_seen[1]);
    json_t *doc = body_json(req);
    assert_int_equal(json_array_size(json_object_get(doc, "a")), 2);
    json_decref(doc);
    talon_pipeline_req_free(req);
}

static void pipeline_malformed_json(void **state)
{
    fixture *f = *state;
    talon_req *req = post_json(f, "application/json", "{\"a\": ");
    assert_int_equal(talon_resp_status(&req->resp), 400);
    assert_false(succeeded_seen[1]);
    json_t *doc = body_json(req);
    assert_string_equal(json_string_value(json_object_get(doc, "title")), "Invalid JSON");
    const char *desc = json_string_value(json_object_get(doc, "description"));
    assert_non_null(strstr(desc, "line 1, column"));
    json_decref(doc);
    talon_pipeline_req_free(req);

    req = post_json(f, "application/json", "{\"a\": 1, \"a\": 2}");
    assert_int_equal(talon_resp_status(&req->resp), 400);
    talon_pipeline_req_free(req);

    req = post_json(f, "application/json", "");
    assert_int_equal(talon_resp_status(&req->resp), 400);
    talon_pipeline_req_free(req);
}

static void pipeline_wrong_content_type(void **state)
{
    fixture *f = *state;
    talon_req *req = post_json(f, "text/plain", "{}");
    assert_int_equal(talon_resp_status(&req->resp), 415);
    assert_false(succeeded_seen[1]);
    assert_error_body(req, "Unsupported Media Type",
                      "text/plain is an unsupported media type; send the body as "
                      "application/json.");
    talon_pipeline_req_free(req);

    req = post_json(f, NULL, "{}");
    assert_int_equal(talon_resp_status(&req->resp), 415);
    talon_pipeline_req_free(req);

    req = post_json(f, "application/jsonp", "{}");
    assert_int_equal(talon_resp_status(&req->resp), 415);
    talon_pipeline_req_free(req);
}

static void pipeline_nul_in_path(void **state)
{
    fixture *f = *state;
    talon_req *req = run(f, "GET", "/notes%00");
    assert_int_equal(talon_resp_status(&req->resp), 400);
    /* Rejected before the middleware saw the request; process_response runs. */
    assert_string_equal(trace, "resp3 resp2 resp1 ");
    assert_false(succeeded_seen[1]);
    talon_pipeline_req_free(req);
}

static void pipeline_run_error(void **state)
{
    fixture *f = *state;
    talon_req *req = talon_pipeline_req_new(f->app, "POST", "/notes");
    talon_pipeline_run_error(req, 413, "too big");
    assert_string_equal(trace, "resp3 resp2 resp1 ");
    assert_int_equal(talon_resp_status(&req->resp), 413);
    assert_error_body(req, "Content Too Large", "too big");
    talon_pipeline_req_free(req);
}

static void response_headers(void **state)
{
    fixture *f = *state;
    talon_req *req = talon_pipeline_req_new(f->app, "GET", "/notes");
    talon_resp *resp = &req->resp;
    assert_int_equal(talon_resp_set_header(resp, "X-A", "1"), 0);
    assert_int_equal(talon_resp_add_header(resp, "x-a", "2"), 0);
    assert_int_equal(talon_resp_header_count(resp), 2);
    assert_int_equal(talon_resp_set_header(resp, "X-A", "3"), 0);
    assert_int_equal(talon_resp_header_count(resp), 1);
    assert_string_equal(talon_resp_header(resp, "x-a"), "3");
    assert_int_equal(talon_resp_set_header(resp, "X-Bad", "a\r\nSet-Cookie: x=1"), -EINVAL);
    assert_int_equal(talon_resp_set_header(resp, "X-Bad", "a\nb"), -EINVAL);
    assert_int_equal(talon_resp_set_header(resp, "X Bad", "a"), -EINVAL);
    assert_int_equal(talon_resp_set_header(resp, "X-Bad:", "a"), -EINVAL);
    assert_int_equal(talon_resp_set_header(resp, "", "a"), -EINVAL);
    assert_int_equal(talon_resp_set_header(resp, "Content-Length", "5"), -EINVAL);
    assert_int_equal(talon_resp_header_count(resp), 1);
    talon_pipeline_req_free(req);
}

static void response_error_titles(void **state)
{
    fixture *f = *state;
    talon_req *req = talon_pipeline_req_new(f->app, "GET", "/notes");
    talon_resp_error(&req->resp, 422, "Invalid note", "\"text\" is required");
    assert_error_body(req, "Invalid note", "\"text\" is required");
    talon_resp_error(&req->resp, 418, NULL, NULL);
    assert_error_body(req, "Client Error", NULL);
    assert_string_equal(talon_status_reason(404), "Not Found");
    assert_string_equal(talon_status_reason(599), "Server Error");
    talon_pipeline_req_free(req);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(middleware_order),
        T(middleware_short_circuit_status),
        T(middleware_short_circuit_error),
        T(middleware_resource_short_circuit),
        T(pipeline_not_found),
        T(pipeline_method_not_allowed),
        T(pipeline_options),
        T(pipeline_head_runs_get),
        T(pipeline_responder_error_fails),
        T(pipeline_status_500_fails),
        T(pipeline_default_status_200),
        T(pipeline_json_body),
        T(pipeline_malformed_json),
        T(pipeline_wrong_content_type),
        T(pipeline_nul_in_path),
        T(pipeline_run_error),
        T(response_headers),
        T(response_error_titles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
