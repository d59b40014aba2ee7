/* Sync-mode audit throughput with group commit: records per second and
 * records per fdatasync with 1, 8 and 64 submitting threads. Each thread
 * waits for its record to be durable before submitting the next, as a held
 * HTTP response would. The same load in async mode follows for comparison.
 *
 * Build against a talon build directory and run (not part of ctest):
 *   cc -O2 -I include -I src bench/audit_group_commit.c BUILD/libtalon.a -lz \
 *      -linih -ljansson -lcrypto -lmicrohttpd -pthread -o /tmp/audit_group_commit
 *   /tmp/audit_group_commit DIR [seconds per round]
 * DIR must not exist; it is created with a fresh key pair and left behind,
 * so `talon audit verify --key DIR.key DIR/trail` can check the result.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "talon/audit.h"

static talon_audit_trail *trail;
static atomic_bool running;
static double round_seconds = 3.0;

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} waiter;

static void on_done(void *ctx, int status)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

typedef struct worker {
    talon_audit_mode mode;
    long records;
    long full;   /* async submissions rejected because the queue was full */
    long errors;
} worker;

static void *worker_main(void *arg)
{
    worker *wk = arg;
    const char *roles[] = { "user", NULL };
    json_t *data = json_pack("{s:s,s:i}", "note", "a short note body", "size", 17);
    talon_audit_event ev = {
        .type = "note_created", .outcome = TALON_AUDIT_SUCCESS, .actor_id = "alice",
        .actor_roles = roles, .source_ip = "192.0.2.10", .user_agent = "bench/1.0",
        .request_id = "4bf92f3577b34da6a3ce929d0e0e4736", .method = "POST", .route = "/notes",
        .path = "/notes", .target_type = "note", .target_id = "42", .data = data,
    };
    waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };

    while (atomic_load(&running)) {
        if (wk->mode == TALON_AUDIT_ASYNC) {
            int rc = talon_audit_submit(trail, &ev, TALON_AUDIT_ASYNC, NULL, NULL);
            if (rc == 0) {
                wk->records++;
            } else if (rc == -EAGAIN) {
                wk->full++; /* back-pressure: let the writer catch up */
                sched_yield();
            } else {
                wk->errors++;
            }
            continue;
        }
        w.done = false;
        if (talon_audit_submit(trail, &ev, TALON_AUDIT_SYNC, on_done, &w) != 0) {
            wk->errors++;
            continue;
        }
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        wk->records++;
    }
    json_decref(data);
    return NULL;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_round(int nthreads, talon_audit_mode mode)
{
    pthread_t *threads = calloc((size_t)nthreads, sizeof(*threads));
    worker *workers = calloc((size_t)nthreads, sizeof(*workers));
    talon_audit_stats before, after;
    long records = 0, full = 0, errors = 0;
    double start, elapsed;
    struct timespec pause = { (time_t)round_seconds, (long)((round_seconds - (time_t)round_seconds) * 1e9) };

    talon_audit_get_stats(trail, &before);
    atomic_store(&running, true);
    start = now_seconds();
    for (int i = 0; i < nthreads; i++) {
        workers[i].mode = mode;
        pthread_create(&threads[i], NULL, worker_main, &workers[i]);
    }
    nanosleep(&pause, NULL);
    atomic_store(&running, false);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
        records += workers[i].records;
        full += workers[i].full;
        errors += workers[i].errors;
    }
    /* Async records still queued count only once written: a sync record
     * queued last is durable after all of them. */
    if (mode == TALON_AUDIT_ASYNC) {
        waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
        talon_audit_event ev = { .type = "bench_round_end" };
        int rc;
        while ((rc = talon_audit_submit(trail, &ev, TALON_AUDIT_SYNC, on_done, &w)) == -EAGAIN)
            sched_yield();
        if (rc == 0) {
            pthread_mutex_lock(&w.mu);
            while (!w.done)
                pthread_cond_wait(&w.cv, &w.mu);
            pthread_mutex_unlock(&w.mu);
        }
    }
    elapsed = now_seconds() - start;
    talon_audit_get_stats(trail, &after);
    uint64_t fsyncs = after.fsyncs - before.fsyncs;
    printf("%-5s %3d threads: %9.0f records/s, %8llu fdatasync, %9.1f records per fdatasync, "
           "%ld queue-full retries, %ld errors\n",
           mode == TALON_AUDIT_SYNC ? "sync" : "async", nthreads, (double)records / elapsed,
           (unsigned long long)fsyncs, fsyncs ? (double)records / (double)fsyncs : 0.0, full,
           errors);
    free(threads);
    free(workers);
}

int main(int argc, char **argv)
{
    char trail_dir[512], state[600], key[600], err[512];
    talon_audit_options opts;
    int rc;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [seconds per round]\n", argv[0]);
        return 2;
    }
    if (argc > 2)
        round_seconds = atof(argv[2]);
    if (mkdir(argv[1], 0700) < 0) {
        fprintf(stderr, "cannot create %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    snprintf(trail_dir, sizeof(trail_dir), "%s/trail", argv[1]);
    snprintf(state, sizeof(state), "%s/key.state", argv[1]);
    snprintf(key, sizeof(key), "%s.key", argv[1]);
    rc = talon_audit_keygen(key, state, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "keygen: %s\n", err);
        return 1;
    }
    talon_audit_options_init(&opts);
    opts.dir = trail_dir;
    opts.state_file = state;
    opts.rotate_size = 0;
    rc = talon_audit_open(&trail, &opts, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }

    int counts[] = { 1, 8, 64 };
    for (int i = 0; i < 3; i++)
        run_round(counts[i], TALON_AUDIT_SYNC);
    for (int i = 0; i < 3; i++)
        run_round(counts[i], TALON_AUDIT_ASYNC);
    talon_audit_close(trail);
    return 0;
}
