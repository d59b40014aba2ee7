/* Audit writer wake-ups: the nap after a batch must only delay async
 * records, never strand them, and must not delay a sync record at all.
 * Each case brings the writer into one waiting state, checked through the
 * trail's internal fields, and submits a record. The record must then be
 * done or on disk long before another timer of the writer could end the
 * wait (the epoch ends after an hour). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <time.h>

#include "audit_test_util.h"
#include "audit/audit_internal.h"

/* Far above the nap (1 ms), so that a loaded machine does
 * not fail the test, and far below the epoch timer. */
#define DONE_WITHIN_MS 3000
/* The same for an async record, below the writer's fdatasync of written
 * async records (1 s), whose timer would end a nap that forgot its own. */
#define WRITTEN_WITHIN_MS 500
#define RETRIES 50

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until the writer sleeps in its wait, then return with t->mutex
 * held. Fails the test after DONE_WITHIN_MS. */
static void lock_waiting_writer(talon_audit_trail *t)
{
    int64_t deadline = now_ms() + DONE_WITHIN_MS;

    pthread_mutex_lock(&t->mutex);
    while (!t->writer_waiting) {
        pthread_mutex_unlock(&t->mutex);
        if (now_ms() > deadline)
            fail_msg("the audit writer did not wait for work within %d ms", DONE_WITHIN_MS);
        usleep(100);
        pthread_mutex_lock(&t->mutex);
    }
}

/* Wait for w with a deadline; returns false when it timed out. */
static bool waiter_wait_ms(waiter *w, int ms)
{
    struct timespec ts;
    bool done;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->done && pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0)
        ;
    done = w->done;
    pthread_mutex_unlock(&w->mu);
    return done;
}

static void waiter_init(waiter *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->done = false;
    w->status = 0;
}

/* Submit n sync records at once and wait for all of them. */
static void submit_sync_burst(talon_audit_trail *t, int n)
{
    talon_audit_event ev = { .type = "note_created", .actor_id = "alice" };
    waiter w[16];

    assert_true(n <= 16);
    for (int i = 0; i < n; i++) {
        waiter_init(&w[i]);
        assert_int_equal(talon_audit_submit(t, &ev, TALON_AUDIT_SYNC, waiter_done, &w[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        if (!waiter_wait_ms(&w[i], DONE_WITHIN_MS))
            fail_msg("sync record %d of a burst of %d not done within %d ms", i, n,
                     DONE_WITHIN_MS);
        assert_int_equal(w[i].status, 0);
    }
}

/* Submit one async record and wait until the writer has written it. */
static void submit_async_batch(talon_audit_trail *t)
{
    talon_audit_event ev = { .type = "note_read", .actor_id = "batch" };
    talon_audit_stats before, now;
    int64_t deadline = now_ms() + DONE_WITHIN_MS;

    talon_audit_get_stats(t, &before);
    assert_int_equal(talon_audit_submit(t, &ev, TALON_AUDIT_ASYNC, NULL, NULL), 0);
    do {
        if (now_ms() > deadline)
            fail_msg("an async record was not written within %d ms", DONE_WITHIN_MS);
        usleep(50);
        talon_audit_get_stats(t, &now);
    } while (now.records == before.records);
}

static bool file_contains(const test_trail *tt, const char *needle)
{
    char path[400];
    char *data;
    bool found;

    snprintf(path, sizeof(path), "%s/audit-00000001.jsonl", tt->dir);
    data = test_read_file(path, NULL);
    found = data != NULL && strstr(data, needle) != NULL;
    free(data);
    return found;
}

/* Close the trail and check its whole chain. */
static void close_and_check(talon_audit_trail *t, test_trail *tt)
{
    test_chain c;

    talon_audit_close(t);
    assert_chain_valid(tt, &c);
    test_chain_free(&c);
    test_trail_remove(tt);
}

/* Whether the last submission left the writer asleep: it is still in the
 * same wait, with the record queued. */
static bool writer_left_asleep(talon_audit_trail *t)
{
    bool asleep;

    pthread_mutex_lock(&t->mutex);
    asleep = t->writer_waiting && t->head != NULL;
    pthread_mutex_unlock(&t->mutex);
    return asleep;
}

/* An async record submitted while the writer naps after a batch does not
 * wake it; the end of the nap must still write it. */
static void async_record_written_after_nap(void **state)
{
    test_trail tt;
    talon_audit_options o;
    char actor[32];
    int64_t deadline;
    bool left_asleep = false;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);

    /* Each try: an async batch, then an async record within the nap after
     * it. */
    for (int i = 0; i < RETRIES && !left_asleep; i++) {
        talon_audit_event ev = { .type = "note_read", .actor_id = actor };
        bool napping;

        submit_async_batch(t);
        lock_waiting_writer(t);
        napping = t->writer_napping;
        pthread_mutex_unlock(&t->mutex);
        if (!napping)
            continue;
        snprintf(actor, sizeof(actor), "nap-marker-%d", i);
        assert_int_equal(talon_audit_submit(t, &ev, TALON_AUDIT_ASYNC, NULL, NULL), 0);
        left_asleep = writer_left_asleep(t);
    }
    if (!left_asleep)
        fail_msg("no async record was queued during a nap in %d tries", RETRIES);

    char needle[40];
    snprintf(needle, sizeof(needle), "\"%s\"", actor);
    deadline = now_ms() + WRITTEN_WITHIN_MS;
    while (!file_contains(&tt, needle)) {
        if (now_ms() > deadline)
            fail_msg("an async record queued during a nap was not written within %d ms",
                     WRITTEN_WITHIN_MS);
        usleep(1000);
    }
    close_and_check(t, &tt);
}

/* A sync record must end the nap after a batch at once: its submitter
 * waits for the fdatasync, and the nap only gathers async records. */
static void sync_record_ends_nap(void **state)
{
    test_trail tt;
    talon_audit_options o;
    talon_audit_event ev = { .type = "note_created", .actor_id = "during-nap" };
    bool tried = false;
    waiter w;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);

    for (int i = 0; i < RETRIES && !tried; i++) {
        bool napping;

        submit_async_batch(t);
        lock_waiting_writer(t);
        napping = t->writer_napping;
        pthread_mutex_unlock(&t->mutex);
        if (!napping)
            continue;
        tried = true;
        waiter_init(&w);
        assert_int_equal(talon_audit_submit(t, &ev, TALON_AUDIT_SYNC, waiter_done, &w), 0);
        if (writer_left_asleep(t))
            fail_msg("a sync record submitted during the nap after a batch did not wake the "
                     "writer");
        if (!waiter_wait_ms(&w, DONE_WITHIN_MS))
            fail_msg("a sync record submitted during a nap was not done within %d ms",
                     DONE_WITHIN_MS);
        assert_int_equal(w.status, 0);
    }
    if (!tried)
        fail_msg("the writer was never found napping after a batch in %d tries", RETRIES);
    close_and_check(t, &tt);
}

/* With nothing queued the writer sleeps until its next timer, an hour
 * away: a sync record must wake it. */
static void sync_record_wakes_idle_writer(void **state)
{
    test_trail tt;
    talon_audit_options o;
    talon_audit_event ev = { .type = "note_created", .actor_id = "idle" };
    waiter w;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);

    submit_sync_burst(t, 8);
    usleep(50 * 1000); /* the nap is over */
    lock_waiting_writer(t);
    assert_false(t->writer_napping);
    pthread_mutex_unlock(&t->mutex);

    waiter_init(&w);
    assert_int_equal(talon_audit_submit(t, &ev, TALON_AUDIT_SYNC, waiter_done, &w), 0);
    if (writer_left_asleep(t))
        fail_msg("a sync record did not wake the idle writer");
    if (!waiter_wait_ms(&w, DONE_WITHIN_MS))
        fail_msg("a sync record submitted to an idle writer was not done within %d ms",
                 DONE_WITHIN_MS);
    assert_int_equal(w.status, 0);
    close_and_check(t, &tt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(async_record_written_after_nap),
        cmocka_unit_test(sync_record_ends_nap),
        cmocka_unit_test(sync_record_wakes_idle_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
