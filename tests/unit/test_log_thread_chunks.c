/* Per-thread sink chunks. The lines of threads that are still running reach
 * the file at the flush interval and on talon_sink_flush(), and the lines
 * of threads that exited are kept. Each thread's lines stay in order, and
 * the lines collected together are merged by time. Every test writes a
 * real file through the real writer thread. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log_test_fixture.h"

#define THREADS 4
#define PER_THREAD 3000

/* A thread that logs its records, then waits until the test releases it,
 * so that its chunk still belongs to a running thread. */
typedef struct parked_arg {
    writer_arg records;
    pthread_barrier_t *logged;
    pthread_barrier_t *release;
} parked_arg;

static void *log_then_park(void *p)
{
    parked_arg *a = p;
    write_records(&a->records);
    pthread_barrier_wait(a->logged);
    pthread_barrier_wait(a->release);
    return NULL;
}

typedef struct parked_threads {
    pthread_t tid[THREADS];
    parked_arg args[THREADS];
    pthread_barrier_t logged;
    pthread_barrier_t release;
} parked_threads;

/* Start THREADS threads that log per_thread records each, and return once
 * all of them have logged and are parked. */
static void park_threads(parked_threads *pt, talon_logger *lg, int per_thread)
{
    assert_int_equal(pthread_barrier_init(&pt->logged, NULL, THREADS + 1), 0);
    assert_int_equal(pthread_barrier_init(&pt->release, NULL, THREADS + 1), 0);
    for (int t = 0; t < THREADS; t++) {
        pt->args[t] = (parked_arg){
            .records = { .logger = lg, .thread = t, .first = 0, .records = per_thread },
            .logged = &pt->logged,
            .release = &pt->release,
        };
        assert_int_equal(pthread_create(&pt->tid[t], NULL, log_then_park, &pt->args[t]), 0);
    }
    pthread_barrier_wait(&pt->logged);
}

static void release_threads(parked_threads *pt)
{
    pthread_barrier_wait(&pt->release);
    join_threads(pt->tid, THREADS);
    pthread_barrier_destroy(&pt->logged);
    pthread_barrier_destroy(&pt->release);
}

/* Fail unless the records of each thread in the file at path are in the
 * order they were logged. */
static void assert_thread_order(const char *path)
{
    size_t len;
    char *buf = read_file_all(path, &len);
    int last[REC_MAX_THREADS];

    assert_non_null(buf);
    for (int t = 0; t < REC_MAX_THREADS; t++)
        last[t] = -1;
    for (char *line = buf; line < buf + len;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        assert_non_null(nl);
        *nl = '\0';
        const char *msg = strstr(line, " rec t=");
        int t, i;
        if (!msg || parse_rec(msg + 1, &t, &i) < 0)
            fail_msg("malformed line: %.200s", line);
        if (i <= last[t])
            fail_msg("thread %d: record %d written after record %d", t, i, last[t]);
        last[t] = i;
        line = nl + 1;
    }
    free(buf);
}

/* Fail unless the file in the test directory contains every record of
 * THREADS x per_thread once, each thread's in order. */
static void assert_file_complete(const char *file, const char *what, int per_thread)
{
    char path[4096];

    path_in_dir(path, sizeof(path), file);
    count_file(&counts, path, 0);
    assert_all_once(what, THREADS, per_thread);
    assert_thread_order(path);
}

static talon_logger *logger_with_sink(const char *file, unsigned flush_interval_ms,
                                      talon_sink **sink)
{
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.buffer_size = 16 * 1024; /* several chunks per thread */
    opts.flush_interval_ms = flush_interval_ms;
    *sink = open_sink(file, &opts);
    talon_logger *lg = talon_logger_get("chunks");
    assert_int_equal(talon_logger_add_sink(lg, *sink, TALON_LOG_INFO, NULL), 0);
    return lg;
}

/* With an interval of an hour, only talon_sink_flush() can write the lines
 * still in the chunks of running threads. */
static void flush_collects_running_threads(void **state)
{
    talon_sink *sink;
    talon_logger *lg = logger_with_sink("flush.log", 3600 * 1000, &sink);
    parked_threads pt;

    park_threads(&pt, lg, PER_THREAD);
    assert_int_equal(talon_sink_flush(sink), 0);
    assert_file_complete("flush.log", "flushed with the threads running", PER_THREAD);
    release_threads(&pt);
    assert_int_equal(talon_sink_dropped(sink), 0);
}

/* Without any flush, the writer collects the chunks of idle threads at
 * the flush interval. */
static void interval_collects_idle_threads(void **state)
{
    talon_sink *sink;
    talon_logger *lg = logger_with_sink("interval.log", 50, &sink);
    parked_threads pt;
    char path[4096];
    struct timespec start, now;

    park_threads(&pt, lg, 10);
    path_in_dir(path, sizeof(path), "interval.log");
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < 200; i++) { /* at most 10 s */
        memset(&counts, 0, sizeof(counts));
        count_file(&counts, path, 0);
        if (counts.lines == THREADS * 10)
            break;
        usleep(50 * 1000);
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    assert_all_once("written at the interval", THREADS, 10);
    double waited = (double)(now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
    if (waited > 2.0)
        fail_msg("the lines of idle threads took %.2f s to be written with a 50 ms interval",
                 waited);
    release_threads(&pt);
}

/* A thread that exits hands its chunk to the sink: nothing is lost, even
 * though its last chunk was never full. */
static void exited_threads_lines_kept(void **state)
{
    talon_sink *sink;
    talon_logger *lg = logger_with_sink("exited.log", 3600 * 1000, &sink);
    pthread_t tid[THREADS];
    writer_arg args[THREADS];

    start_threads(tid, args, lg, THREADS, 0, PER_THREAD);
    join_threads(tid, THREADS);
    assert_int_equal(talon_sink_flush(sink), 0);
    assert_file_complete("exited.log", "after the threads exited", PER_THREAD);
}

/* Flushes from another thread while the threads log: no line is lost,
 * split or written twice, and each thread's order holds. */
static void flush_during_logging_keeps_lines(void **state)
{
    talon_sink *sink;
    talon_logger *lg = logger_with_sink("busy.log", 3600 * 1000, &sink);
    pthread_t tid[THREADS];
    writer_arg args[THREADS];

    start_threads(tid, args, lg, THREADS, 0, PER_THREAD);
    for (int i = 0; i < 50; i++)
        assert_int_equal(talon_sink_flush(sink), 0);
    join_threads(tid, THREADS);
    talon_log_shutdown();
    assert_file_complete("busy.log", "flushed while logging", PER_THREAD);
}

/* Log one record at a given time, with its thread and number in the
 * message. */
static void log_at(talon_logger *lg, int thread, int i, int64_t time_ns)
{
    char msg[64];
    int n = snprintf(msg, sizeof(msg), "rec t=%d i=%d end", thread, i);
    talon_log_record rec = {
        .time_ns = time_ns, .level = TALON_LOG_INFO, .logger = "chunks",
        .message = msg, .message_len = (size_t)n,
    };
    talon_log_write(lg, &rec);
}

typedef struct turn_arg {
    talon_logger *logger;
    pthread_barrier_t *turn;
} turn_arg;

/* Thread 1 of lines_merged_by_time: logs at 2 s and 4 s, each after the
 * main thread's record before it. */
static void *log_even_seconds(void *p)
{
    turn_arg *a = p;
    pthread_barrier_wait(a->turn);
    log_at(a->logger, 1, 0, 2000000000);
    pthread_barrier_wait(a->turn);
    pthread_barrier_wait(a->turn);
    log_at(a->logger, 1, 1, 4000000000);
    pthread_barrier_wait(a->turn);
    return NULL;
}

/* Two threads take turns: their lines, collected together, are written in
 * time order, not one thread's after the other's. A record that goes back
 * in time stays after the earlier records of its thread. */
static void lines_merged_by_time(void **state)
{
    talon_sink *sink;
    talon_logger *lg = logger_with_sink("merged.log", 3600 * 1000, &sink);
    talon_log_format *fmt;
    char err[128], path[4096];
    pthread_barrier_t turn;
    pthread_t tid;

    fmt = talon_log_format_compile("$msec $message", err, sizeof(err));
    assert_non_null(fmt);
    talon_logger_clear_sinks(lg);
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, fmt), 0);
    assert_int_equal(pthread_barrier_init(&turn, NULL, 2), 0);
    turn_arg arg = { .logger = lg, .turn = &turn };
    assert_int_equal(pthread_create(&tid, NULL, log_even_seconds, &arg), 0);

    log_at(lg, 0, 0, 1000000000);
    pthread_barrier_wait(&turn); /* thread 1 logs 2 s */
    pthread_barrier_wait(&turn);
    log_at(lg, 0, 1, 3000000000);
    log_at(lg, 0, 2, 500000000); /* back in time: stays after 3 s */
    pthread_barrier_wait(&turn); /* thread 1 logs 4 s */
    pthread_barrier_wait(&turn);
    assert_int_equal(talon_sink_flush(sink), 0);

    path_in_dir(path, sizeof(path), "merged.log");
    size_t len;
    char *text = read_file_all(path, &len);
    assert_non_null(text);
    assert_string_equal(text, "1.000 rec t=0 i=0 end\n"
                              "2.000 rec t=1 i=0 end\n"
                              "3.000 rec t=0 i=1 end\n"
                              "0.500 rec t=0 i=2 end\n"
                              "4.000 rec t=1 i=1 end\n");
    free(text);
    pthread_join(tid, NULL);
    pthread_barrier_destroy(&turn);
    talon_log_shutdown();
    talon_log_format_free(fmt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(flush_collects_running_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(interval_collects_idle_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(exited_threads_lines_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(flush_during_logging_keeps_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(lines_merged_by_time, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
