/* The hold protocol (talon_req_hold / talon_req_release) without sockets:
 * suspend only with holds pending, resume exactly once on the last release,
 * the request alive until its last release, release errors, drain abort. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/pipeline.h"

/* A fake connection: counts suspends and resumes. */
typedef struct fake_conn {
    atomic_int suspended;
    atomic_int resumed;
} fake_conn;

static void fake_suspend(void *conn)
{
    atomic_fetch_add(&((fake_conn *)conn)->suspended, 1);
}

static void fake_resume(void *conn)
{
    fake_conn *c = conn;
    /* Resume-before-suspend is the bug the protocol must rule out. */
    assert_int_equal(atomic_load(&c->suspended), 1);
    atomic_fetch_add(&c->resumed, 1);
}

static int holds_to_take;
static int release_inline; /* release this many holds inside the responder */

static void on_get(talon_req *req, talon_resp *resp, void *ctx)
{
    talon_resp_set_status(resp, 200);
    for (int i = 0; i < holds_to_take; i++)
        talon_req_hold(req);
    for (int i = 0; i < release_inline; i++)
        talon_req_release(req, 0, NULL);
}

static talon_app *app;

static int setup(void **state)
{
    app = talon_app_new();
    static const talon_resource r = { .name = "held", .on_get = on_get };
    char err[256];
    assert_int_equal(talon_app_add_route(app, "/held", &r, err, sizeof(err)), 0);
    return 0;
}

static int teardown(void **state)
{
    talon_app_free(app);
    return 0;
}

static bool freed_flag;

static void mark_freed(void *p)
{
    freed_flag = true;
}

/* Run the pipeline the way the engine does; returns true when suspended. */
static talon_req *run_held(int holds, int inline_releases, fake_conn *conn, bool *waiting)
{
    holds_to_take = holds;
    release_inline = inline_releases;
    talon_req *req = talon_pipeline_req_new(app, "GET", "/held");
    talon_req_prepare(req);
    talon_pipeline_run(req);
    *waiting = talon_hold_pipeline_done(req, conn, fake_suspend, fake_resume);
    return req;
}

static void hold_released_before_pipeline_end(void **state)
{
    fake_conn conn = { 0 };
    bool waiting;
    talon_req *req = run_held(2, 2, &conn, &waiting);
    assert_false(waiting);
    assert_int_equal(conn.suspended, 0);
    assert_int_equal(conn.resumed, 0);
    assert_int_equal(talon_req_holds(req), 0);
    talon_pipeline_req_free(req);
}

static void hold_suspends_then_resumes_once(void **state)
{
    fake_conn conn = { 0 };
    bool waiting;
    talon_req *req = run_held(3, 0, &conn, &waiting);
    assert_true(waiting);
    assert_int_equal(conn.suspended, 1);
    talon_req_release(req, 0, NULL);
    talon_req_release(req, 0, NULL);
    assert_int_equal(conn.resumed, 0);
    talon_req_release(req, 0, NULL);
    assert_int_equal(conn.resumed, 1);
    /* An extra release is ignored and does not resume again. */
    talon_req_release(req, 0, NULL);
    assert_int_equal(conn.resumed, 1);
    talon_hold_apply_result(req);
    assert_int_equal(talon_resp_status(&req->resp), 200);
    talon_pipeline_req_free(req);
}

static void hold_release_error_replaces_response(void **state)
{
    fake_conn conn = { 0 };
    bool waiting;
    talon_req *req = run_held(2, 0, &conn, &waiting);
    talon_req_release(req, 503, "audit trail unavailable");
    talon_req_release(req, 500, "second error is ignored");
    assert_int_equal(conn.resumed, 1);
    talon_hold_apply_result(req);
    assert_int_equal(talon_resp_status(&req->resp), 503);
    const char *body = talon_resp_body(&req->resp, NULL);
    assert_non_null(strstr(body, "audit trail unavailable"));
    assert_non_null(strstr(body, "\"title\":\"Service Unavailable\""));
    talon_pipeline_req_free(req);
}

static void hold_outlives_engine_reference(void **state)
{
    fake_conn conn = { 0 };
    bool waiting;
    freed_flag = false;
    talon_req *req = run_held(1, 0, &conn, &waiting);
    talon_req_context_set(req, "marker", (void *)1, mark_freed);
    /* The client left: the engine drops its reference first. */
    talon_pipeline_req_free(req);
    assert_false(freed_flag);
    assert_string_equal(talon_req_path(req), "/held");
    talon_req_release(req, 0, NULL);
    assert_true(freed_flag);
}

static void hold_abort_answers_503(void **state)
{
    fake_conn conn = { 0 };
    bool waiting;
    talon_req *req = run_held(1, 0, &conn, &waiting);
    assert_true(talon_hold_abort(req));
    assert_int_equal(conn.resumed, 1);
    assert_false(talon_hold_abort(req));
    talon_hold_apply_result(req);
    assert_int_equal(talon_resp_status(&req->resp), 503);
    talon_pipeline_req_free(req);
    /* The late release must not resume a connection that is gone. */
    talon_req_release(req, 0, NULL);
    assert_int_equal(conn.resumed, 1);
}

typedef struct release_job {
    talon_req *req;
    int count;
} release_job;

static void *release_thread(void *arg)
{
    release_job *job = arg;
    for (int i = 0; i < job->count; i++)
        talon_req_release(job->req, 0, NULL);
    return NULL;
}

static void hold_concurrent_releases(void **state)
{
    enum { ROUNDS = 300, THREADS = 4, PER_THREAD = 3 };
    for (int round = 0; round < ROUNDS; round++) {
        fake_conn conn = { 0 };
        holds_to_take = THREADS * PER_THREAD;
        release_inline = 0;
        talon_req *req = talon_pipeline_req_new(app, "GET", "/held");
        talon_req_prepare(req);
        talon_pipeline_run(req);
        /* Releases start while the pipeline is being finished. */
        pthread_t t[THREADS];
        release_job job = { req, PER_THREAD };
        for (int i = 0; i < THREADS; i++)
            pthread_create(&t[i], NULL, release_thread, &job);
        bool waiting = talon_hold_pipeline_done(req, &conn, fake_suspend, fake_resume);
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        if (waiting) {
            assert_int_equal(conn.suspended, 1);
            assert_int_equal(conn.resumed, 1);
        } else {
            assert_int_equal(conn.suspended, 0);
            assert_int_equal(conn.resumed, 0);
        }
        assert_int_equal(talon_req_holds(req), 0);
        talon_pipeline_req_free(req);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hold_released_before_pipeline_end),
        cmocka_unit_test(hold_suspends_then_resumes_once),
        cmocka_unit_test(hold_release_error_replaces_response),
        cmocka_unit_test(hold_outlives_engine_reference),
        cmocka_unit_test(hold_abort_answers_503),
        cmocka_unit_test(hold_concurrent_releases),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
