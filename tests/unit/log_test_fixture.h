/* Fixture of the logging tests: a fresh temporary directory per test, file
 * sinks inside it, and threads that log numbered records. Include it after
 * <cmocka.h>; each test file gets its own copy of dir and counts. */
#ifndef TALON_LOG_TEST_FIXTURE_H
#define TALON_LOG_TEST_FIXTURE_H

#include <pthread.h>

#include "log_test_lines.h"
#include "talon/log.h"

/* The test's temporary directory, and the records counted in its files. */
static char *dir;
static __attribute__((unused)) rec_count counts;

static int setup(void **state)
{
    dir = make_temp_dir();
    memset(&counts, 0, sizeof(counts));
    return dir ? 0 : -1;
}

static int teardown(void **state)
{
    talon_log_shutdown();
    remove_tree(dir);
    free(dir);
    return 0;
}

static __attribute__((unused)) void path_in_dir(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static __attribute__((unused)) talon_sink *open_sink(const char *name,
                                                     const talon_sink_options *opts)
{
    char path[4096], err[512] = "";
    talon_sink *sink = NULL;
    path_in_dir(path, sizeof(path), name);
    if (talon_sink_open_file(&sink, path, opts, err, sizeof(err)) < 0)
        fail_msg("talon_sink_open_file(%s): %s", path, err);
    return sink;
}

typedef struct writer_arg {
    talon_logger *logger;
    int thread;
    int first;
    int records;
} writer_arg;

/* Log "rec t=<thread> i=<n> end" for n in [first, first + records). */
static __attribute__((unused)) void *write_records(void *p)
{
    writer_arg *a = p;
    for (int i = a->first; i < a->first + a->records; i++)
        talon_log_info(a->logger, "rec t=%d i=%d end", a->thread, i);
    return NULL;
}

static __attribute__((unused)) void start_threads(pthread_t *tid, writer_arg *args, talon_logger *lg,
                                                  int threads, int first, int records)
{
    for (int t = 0; t < threads; t++) {
        args[t] = (writer_arg){ .logger = lg, .thread = t, .first = first, .records = records };
        assert_int_equal(pthread_create(&tid[t], NULL, write_records, &args[t]), 0);
    }
}

static __attribute__((unused)) void join_threads(pthread_t *tid, int threads)
{
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
}

/* Fail unless counts contains every record of threads x per_thread exactly
 * once and nothing else. what names the files in the failure message. */
static __attribute__((unused)) void assert_all_once(const char *what, int threads, int per_thread)
{
    size_t missing, duplicated;
    size_t once = count_exactly_once(&counts, threads, per_thread, &missing, &duplicated);
    if (counts.bad_lines)
        fail_msg("%s: %zu malformed lines, first: %s", what, counts.bad_lines, counts.first_bad);
    if (missing || duplicated)
        fail_msg("%s: %zu records missing, %zu duplicated", what, missing, duplicated);
    assert_int_equal(once, (size_t)threads * per_thread);
    assert_int_equal(counts.lines, (size_t)threads * per_thread);
}

#endif
