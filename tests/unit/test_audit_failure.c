/* Audit trail failure policy: an unwritable trail (RLIMIT_FSIZE in a forked
 * child, with SIGXFSZ ignored, so writes fail with EFBIG even for root)
 * under fail_closed and fail_open, a full queue, and the chain checker's
 * own ability to fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "audit_test_util.h"

#define MAX_TRIES 64

/* Exit codes of the child name the check that failed. */
enum child_result {
    CHILD_OK = 0, CHILD_OPEN = 10, CHILD_FIRST_WRITES, CHILD_NEVER_FAILED, CHILD_WRONG_STATUS,
    CHILD_STILL_HEALTHY, CHILD_SUBMIT_ACCEPTED, CHILD_HALF_LINE, CHILD_NOT_RESUMED,
    CHILD_WRITE_AFTER_RESUME, CHILD_COUNTERS, CHILD_RESULT_FILE,
};

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static bool ends_with_newline(const char *path)
{
    size_t len = 0;
    char *data = test_read_file(path, &len);
    bool ok = data != NULL && (len == 0 || data[len - 1] == '\n');
    free(data);
    return ok;
}

/* The child: write until the file size limit stops the trail, check the
 * policy, lift the limit, check that writing resumes. acked[i] is 1 for
 * each record i whose done callback reported 0. */
static int unwritable_child(const test_trail *tt, talon_audit_failure failure, const char *result)
{
    talon_audit_options o;
    talon_audit_trail *t = NULL;
    talon_audit_stats st;
    char err[512], path[400];
    int acked[MAX_TRIES] = { 0 };
    int failed_at = -1, status = 0;
    json_t *data = json_object();
    talon_audit_event ev = { .type = "note_created", .actor_id = "alice", .data = data };
    struct rlimit lim;

    test_trail_options(tt, &o);
    o.failure = failure;
    if (talon_audit_open(&t, &o, err, sizeof(err)) != 0)
        return CHILD_OPEN;
    snprintf(path, sizeof(path), "%s/audit-00000001.jsonl", tt->dir);

    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &lim);
    lim.rlim_cur = (rlim_t)file_size(path) + 1500;
    setrlimit(RLIMIT_FSIZE, &lim);

    for (int i = 0; i < MAX_TRIES; i++) {
        json_object_set_new(data, "n", json_integer(i));
        status = submit_sync(t, &ev);
        if (status != 0) {
            failed_at = i;
            break;
        }
        acked[i] = 1;
    }
    if (failed_at < 0)
        return CHILD_NEVER_FAILED;
    if (failed_at == 0)
        return CHILD_FIRST_WRITES;
    if (status != -EFBIG)
        return CHILD_WRONG_STATUS;
    if (talon_audit_healthy(t))
        return CHILD_STILL_HEALTHY;
    /* Nothing is accepted while the trail cannot be written. */
    json_object_set_new(data, "n", json_integer(1000));
    if (talon_audit_submit(t, &ev, TALON_AUDIT_SYNC, NULL, NULL) != -EFBIG ||
        talon_audit_submit(t, &ev, TALON_AUDIT_ASYNC, NULL, NULL) != -EFBIG)
        return CHILD_SUBMIT_ACCEPTED;
    /* The failed batch left no partial line behind. */
    if (!ends_with_newline(path) || file_size(path) > (off_t)lim.rlim_cur)
        return CHILD_HALF_LINE;

    talon_audit_get_stats(t, &st);
    if (failure == TALON_AUDIT_FAIL_CLOSED ? st.rejected != 3 || st.lost != 0
                                           : st.lost != 3 || st.rejected != 0)
    {
        return CHILD_COUNTERS;
    }

    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_FSIZE, &lim);
    for (int i = 0; i < 100 && !talon_audit_healthy(t); i++)
        usleep(100 * 1000); /* the writer retries every second */
    if (!talon_audit_healthy(t))
        return CHILD_NOT_RESUMED;
    json_object_set_new(data, "n", json_integer(2000));
    if (submit_sync(t, &ev) != 0)
        return CHILD_WRITE_AFTER_RESUME;
    json_decref(data);
    talon_audit_close(t);

    FILE *f = fopen(result, "w");
    if (f == NULL)
        return CHILD_RESULT_FILE;
    fprintf(f, "%d\n", failed_at);
    for (int i = 0; i < failed_at; i++)
        fprintf(f, "%d\n", acked[i]);
    fclose(f);
    return CHILD_OK;
}

static void run_unwritable(talon_audit_failure failure)
{
    test_trail tt;
    char result[400];
    int status, failed_at = -1;
    pid_t pid;

    test_trail_make(&tt);
    snprintf(result, sizeof(result), "%s/result", tt.root);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(unwritable_child(&tt, failure, result));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), CHILD_OK);

    FILE *f = fopen(result, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &failed_at), 1);
    for (int i = 0; i < failed_at; i++) {
        int acked = 0;
        assert_int_equal(fscanf(f, "%d", &acked), 1);
        assert_int_equal(acked, 1);
    }
    fclose(f);

    test_chain c;
    assert_chain_valid(&tt, &c);
    /* Every acknowledged record is there, the failed one is not. */
    int seen[MAX_TRIES] = { 0 };
    bool seen_rejected = false, seen_after = false;
    for (size_t i = 0; i < json_array_size(c.records); i++) {
        json_t *r = json_array_get(c.records, i);
        if (strcmp(json_string_value(json_object_get(r, "type")), "note_created") != 0)
            continue;
        int n = (int)json_integer_value(json_object_get(json_object_get(r, "data"), "n"));
        if (n < MAX_TRIES)
            seen[n]++;
        seen_rejected |= n == 1000;
        seen_after |= n == 2000;
    }
    for (int i = 0; i < failed_at; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(seen[failed_at], 0);
    assert_false(seen_rejected);
    assert_true(seen_after);

    /* The outage is in the trail. */
    json_t *resumed = test_find_type(&c, "audit_resumed", 0);
    assert_non_null(resumed);
    json_t *d = json_object_get(resumed, "data");
    assert_string_equal(json_string_value(json_object_get(d, "error")), strerror(EFBIG));
    json_t *lost = test_find_type(&c, "audit_records_lost", 0);
    if (failure == TALON_AUDIT_FAIL_CLOSED) {
        assert_int_equal(json_integer_value(json_object_get(d, "rejected")), 3);
        assert_null(lost);
    } else {
        assert_non_null(lost);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(lost, "data"), "lost")), 3);
        assert_string_equal(json_string_value(json_object_get(lost, "outcome")), "failure");
    }
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void fail_closed_rejects_until_writable(void **state)
{
    run_unwritable(TALON_AUDIT_FAIL_CLOSED);
}

static void fail_open_counts_lost_records(void **state)
{
    run_unwritable(TALON_AUDIT_FAIL_OPEN);
}

/* ---- full queue ---- */

typedef struct blocker {
    sem_t entered;
    sem_t release;
} blocker;

static void block_writer(void *ctx, int status)
{
    blocker *b = ctx;
    sem_post(&b->entered);
    sem_wait(&b->release); /* holds the writer thread inside this callback */
}

static void run_queue_full(talon_audit_failure failure)
{
    test_trail tt;
    talon_audit_options o;
    talon_audit_trail *t = NULL;
    talon_audit_stats st;
    blocker b;
    char err[512];
    talon_audit_event ev = { .type = "data_read", .actor_id = "bob" };

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    o.queue_capacity = 4;
    o.failure = failure;
    assert_int_equal(talon_audit_open(&t, &o, err, sizeof(err)), 0);
    sem_init(&b.entered, 0, 0);
    sem_init(&b.release, 0, 0);
    assert_int_equal(talon_audit_submit(t, &ev, TALON_AUDIT_ASYNC, block_writer, &b), 0);
    sem_wait(&b.entered);
    for (int i = 0; i < 4; i++)
        assert_int_equal(talon_audit_submit(t, &ev, TALON_AUDIT_ASYNC, NULL, NULL), 0);
    assert_int_equal(talon_audit_submit(t, &ev, TALON_AUDIT_ASYNC, NULL, NULL), -EAGAIN);
    talon_audit_get_stats(t, &st);
    assert_int_equal(failure == TALON_AUDIT_FAIL_CLOSED ? st.rejected : st.lost, 1);
    assert_true(talon_audit_healthy(t)); /* a full queue is not a broken trail */
    sem_post(&b.release);
    talon_audit_close(t);

    test_chain c;
    assert_chain_valid(&tt, &c);
    json_t *lost = test_find_type(&c, "audit_records_lost", 0);
    if (failure == TALON_AUDIT_FAIL_OPEN) {
        assert_non_null(lost);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(lost, "data"), "lost")), 1);
    } else {
        assert_null(lost);
    }
    size_t reads = 0;
    for (size_t i = 0; i < json_array_size(c.records); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(c.records, i), "type")),
                   "data_read") == 0)
            reads++;
    assert_int_equal(reads, 5);
    test_chain_free(&c);
    sem_destroy(&b.entered);
    sem_destroy(&b.release);
    test_trail_remove(&tt);
}

static void queue_full_fail_closed(void **state)
{
    run_queue_full(TALON_AUDIT_FAIL_CLOSED);
}

static void queue_full_fail_open(void **state)
{
    run_queue_full(TALON_AUDIT_FAIL_OPEN);
}

/* ---- the checker itself ---- */

static void checker_detects_tampering(void **state)
{
    test_trail tt;
    talon_audit_options o;
    talon_audit_trail *t = NULL;
    char err[512], path[400];
    size_t len = 0;
    test_chain c;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    assert_int_equal(talon_audit_open(&t, &o, err, sizeof(err)), 0);
    assert_int_equal(submit_n(t, 4), 0);
    talon_audit_close(t);
    snprintf(path, sizeof(path), "%s/audit-00000001.jsonl", tt.dir);
    char *orig = test_read_file(path, &len);

    /* Modified byte. */
    char *copy = malloc(len + 1);
    memcpy(copy, orig, len);
    copy[len] = '\0'; /* strstr needs the terminator */
    *strstr(copy, "alice") = 'A';
    FILE *f = fopen(path, "wb");
    fwrite(copy, 1, len, f);
    fclose(f);
    assert_false(test_check_chain(&tt, &c));
    assert_non_null(strstr(c.error, "MAC"));
    test_chain_free(&c);

    /* Deleted record (the third line). */
    char *l2 = strchr(orig, '\n') + 1, *l3 = strchr(l2, '\n') + 1, *l4 = strchr(l3, '\n') + 1;
    f = fopen(path, "wb");
    fwrite(orig, 1, (size_t)(l3 - orig), f);
    fwrite(l4, 1, len - (size_t)(l4 - orig), f);
    fclose(f);
    assert_false(test_check_chain(&tt, &c));
    assert_non_null(strstr(c.error, "seq"));
    test_chain_free(&c);

    f = fopen(path, "wb");
    fwrite(orig, 1, len, f);
    fclose(f);
    assert_true(test_check_chain(&tt, &c));
    test_chain_free(&c);
    free(copy);
    free(orig);
    test_trail_remove(&tt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fail_closed_rejects_until_writable),
        cmocka_unit_test(fail_open_counts_lost_records),
        cmocka_unit_test(queue_full_fail_closed),
        cmocka_unit_test(queue_full_fail_open),
        cmocka_unit_test(checker_detects_tampering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
