/* A request's sync records are one group: the write-ahead record of a
 * change and the policy's http_request record become durable together or
 * fail together. The test makes the trail unwritable (RLIMIT_FSIZE in a
 * forked child, SIGXFSZ ignored) after the responder submitted the
 * change's record and before the response pass submits http_request. The
 * change's record must then be missing from the trail, the change
 * discarded and the response a 503. With the trail down, talon_audit()
 * must then still return the rejection at once. A second case checks the
 * group API of the trail alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "audit_test_util.h"
#include "audit/audit_internal.h"
#include "http/pipeline.h"
#include "talon/audit_http.h"

/* Long enough for the writer to make a record queued on its own durable,
 * even on a loaded machine. */
#define ALONE_DURABLE_WITHIN_MS 500
#define RESUMED_WITHIN_MS 5000

/* Exit codes of the child name the check that failed. */
enum child_result {
    CHILD_OK = 0, CHILD_SETUP = 10, CHILD_NOT_RESUMED, CHILD_STATUS, CHILD_APPLIED,
    CHILD_NOT_DISCARDED, CHILD_RECORD_IN_TRAIL, CHILD_NO_FILE, CHILD_STILL_HEALTHY,
    CHILD_DOWN_ACCEPTED,
};

static talon_audit_trail *trail;
static char trail_file[400];
static atomic_int applied, discarded, resumed;
static int retry_rc; /* talon_audit()'s result in POST /retry */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void note_apply(talon_req *req, talon_resp *resp, void *ctx)
{
    atomic_fetch_add(&applied, 1);
}

static void note_discard(talon_req *req, talon_resp *resp, void *ctx)
{
    atomic_fetch_add(&discarded, 1);
}

/* POST /notes: submit the change's record, give the writer the time to
 * make it durable on its own, then make every later write fail. */
static void notes_post(talon_req *req, talon_resp *resp, void *ctx)
{
    talon_audit_stats before, now;
    struct rlimit lim;

    talon_audit_get_stats(trail, &before);
    talon_audit(req, &(talon_audit_args){
        .type = "note_created", .target_type = "note", .target_id = "1",
        .on_durable = note_apply, .on_failed = note_discard });
    int64_t deadline = now_ms() + ALONE_DURABLE_WITHIN_MS;
    do {
        usleep(1000);
        talon_audit_get_stats(trail, &now);
    } while (now.records == before.records && now_ms() < deadline);

    getrlimit(RLIMIT_FSIZE, &lim);
    lim.rlim_cur = (rlim_t)file_size(trail_file);
    setrlimit(RLIMIT_FSIZE, &lim);
    talon_resp_set_status(resp, 201);
}

/* POST /retry: the same change while the trail is down. */
static void retry_post(talon_req *req, talon_resp *resp, void *ctx)
{
    retry_rc = talon_audit(req, &(talon_audit_args){
        .type = "note_created", .target_type = "note", .target_id = "2",
        .on_durable = note_apply, .on_failed = note_discard });
    talon_resp_set_status(resp, 201);
}

static void fake_suspend(void *conn)
{
}

static void fake_resume(void *conn)
{
    atomic_fetch_add(&resumed, 1);
}

static bool trail_contains(const char *needle)
{
    char *data = test_read_file(trail_file, NULL);
    bool found = data != NULL && strstr(data, needle) != NULL;
    free(data);
    return found;
}

/* Run POST path the way the engine does: pipeline, hold, wait for the last
 * release, apply the result. Returns NULL when no release came in time. */
static talon_req *run_post(talon_app *app, const char *path)
{
    atomic_store(&resumed, 0);
    talon_req *req = talon_pipeline_req_new(app, "POST", path);
    talon_req_prepare(req);
    talon_pipeline_run(req);
    if (talon_hold_pipeline_done(req, NULL, fake_suspend, fake_resume)) {
        int64_t deadline = now_ms() + RESUMED_WITHIN_MS;
        while (atomic_load(&resumed) == 0 && now_ms() < deadline)
            usleep(1000);
        if (atomic_load(&resumed) == 0)
            return NULL;
    }
    talon_hold_apply_result(req);
    return req;
}

/* Run POST /notes and check the outcome. */
static int group_child(const test_trail *tt)
{
    static const talon_resource notes = { .name = "notes", .on_post = notes_post };
    static const talon_resource retry = { .name = "retry", .on_post = retry_post };
    talon_audit_options o;
    char err[512];

    test_trail_options(tt, &o);
    if (talon_audit_open(&trail, &o, err, sizeof(err)) != 0)
        return CHILD_SETUP;
    snprintf(trail_file, sizeof(trail_file), "%s/audit-00000001.jsonl", tt->dir);
    if (file_size(trail_file) <= 0)
        return CHILD_NO_FILE;
    signal(SIGXFSZ, SIG_IGN);

    talon_app *app = talon_app_new();
    talon_audit_policy *policy = talon_audit_policy_new();
    if (app == NULL || policy == NULL ||
        talon_app_add_route(app, "/notes", &notes, err, sizeof(err)) != 0 ||
        talon_app_add_route(app, "/retry", &retry, err, sizeof(err)) != 0 ||
        talon_audit_policy_add_rule(policy, "POST /notes metadata sync", err, sizeof(err)) != 0 ||
        talon_audit_policy_add_rule(policy, "POST /retry none", err, sizeof(err)) != 0 ||
        talon_app_set_audit(app, trail, policy) != 0)
        return CHILD_SETUP;

    talon_req *req = run_post(app, "/notes");
    if (req == NULL)
        return CHILD_NOT_RESUMED;

    if (talon_resp_status(&req->resp) != 503)
        return CHILD_STATUS;
    if (atomic_load(&applied) != 0)
        return CHILD_APPLIED;
    if (atomic_load(&discarded) != 1)
        return CHILD_NOT_DISCARDED;
    if (trail_contains("\"note_created\""))
        return CHILD_RECORD_IN_TRAIL;
    talon_pipeline_req_free(req);

    /* While the trail is down, talon_audit() still reports the rejection
     * at once rather than at the response pass. */
    if (talon_audit_healthy(trail))
        return CHILD_STILL_HEALTHY;
    req = run_post(app, "/retry");
    if (req == NULL)
        return CHILD_NOT_RESUMED;
    if (retry_rc >= 0)
        return CHILD_DOWN_ACCEPTED;
    talon_pipeline_req_free(req);
    return CHILD_OK;
}

static void change_record_fails_with_http_record(void **state)
{
    test_trail tt;
    int status;
    pid_t pid;

    test_trail_make(&tt);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(group_child(&tt));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    switch (WEXITSTATUS(status)) {
    case CHILD_OK:
        break;
    case CHILD_RECORD_IN_TRAIL:
        fail_msg("the note_created record is in the trail although the request's "
                 "http_request record failed and the response was 503");
    case CHILD_DOWN_ACCEPTED:
        fail_msg("talon_audit() returned 0 for a sync record while the trail was down");
    default:
        fail_msg("child check %d failed (enum child_result)", WEXITSTATUS(status));
    }
    test_trail_remove(&tt);
}

/* POST /many: three sync records from the responder, which with the
 * policy's http_request record make a group of four. */
static void many_post(talon_req *req, talon_resp *resp, void *ctx)
{
    for (int i = 0; i < 3; i++) {
        talon_audit(req, &(talon_audit_args){
            .type = "note_read", .durability = TALON_AUDIT_DURABILITY_SYNC });
    }
    talon_resp_set_status(resp, 201);
}

/* More sync records than the request keeps inline are grouped too: all
 * durable in one batch, the response untouched. */
static void many_records_one_group(void **state)
{
    static const talon_resource many = { .name = "many", .on_post = many_post };
    test_trail tt;
    talon_audit_options o;
    char err[512];
    test_chain c;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    trail = test_trail_open(&o);
    talon_app *app = talon_app_new();
    talon_audit_policy *policy = talon_audit_policy_new();
    assert_int_equal(talon_app_add_route(app, "/many", &many, err, sizeof(err)), 0);
    assert_int_equal(talon_audit_policy_add_rule(policy, "POST /many metadata sync", err,
                                                 sizeof(err)), 0);
    assert_int_equal(talon_app_set_audit(app, trail, policy), 0);
    uint64_t batches = atomic_load(&trail->st_batches);

    talon_req *req = run_post(app, "/many");
    assert_non_null(req);
    assert_int_equal(talon_resp_status(&req->resp), 201);
    assert_int_equal(atomic_load(&trail->st_batches), batches + 1);
    talon_pipeline_req_free(req);

    talon_app_audit_detach(app);
    talon_app_free(app);
    talon_audit_policy_free(policy);
    talon_audit_close(trail);
    assert_chain_valid(&tt, &c);
    size_t reads = 0;
    for (size_t i = 0; i < json_array_size(c.records); i++) {
        json_t *type = json_object_get(json_array_get(c.records, i), "type");
        reads += strcmp(json_string_value(type), "note_read") == 0;
    }
    assert_int_equal(reads, 3);
    assert_non_null(test_find_type(&c, "http_request", 0));
    test_chain_free(&c);
    test_trail_remove(&tt);
}

/* The trail alone: a group of sync records is written in one batch, each
 * record's callback reports success, and the chain stays valid. */
static void group_written_in_one_batch(void **state)
{
    test_trail tt;
    talon_audit_options o;
    talon_audit_record *recs[3];
    waiter w[3];
    test_chain c;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    uint64_t batches = atomic_load(&t->st_batches);
    for (int i = 0; i < 3; i++) {
        talon_audit_event ev = { .type = "note_created", .actor_id = "group" };
        pthread_mutex_init(&w[i].mu, NULL);
        pthread_cond_init(&w[i].cv, NULL);
        w[i].done = false;
        w[i].status = -1;
        assert_int_equal(talon_audit_prepare(t, &ev, TALON_AUDIT_SYNC, waiter_done, &w[i],
                                             &recs[i]), 0);
    }
    assert_int_equal(talon_audit_submit_group(t, recs, 3), 0);
    for (int i = 0; i < 3; i++) {
        pthread_mutex_lock(&w[i].mu);
        while (!w[i].done)
            pthread_cond_wait(&w[i].cv, &w[i].mu);
        pthread_mutex_unlock(&w[i].mu);
        assert_int_equal(w[i].status, 0);
    }
    assert_int_equal(atomic_load(&t->st_batches), batches + 1);
    talon_audit_close(t);
    assert_chain_valid(&tt, &c);
    assert_non_null(test_find_type(&c, "note_created", 0));
    test_chain_free(&c);
    test_trail_remove(&tt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(change_record_fails_with_http_record),
        cmocka_unit_test(group_written_in_one_batch),
        cmocka_unit_test(many_records_one_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
