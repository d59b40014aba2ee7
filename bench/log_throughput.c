/* Cost per record of the whole logging path (format on the caller's thread,
 * copy into the sink, writer thread writes the file), per format, and of a
 * record below the logger's level.
 *
 * Build against a talon build directory and run (not part of ctest):
 *   cc -O2 -I include bench/log_throughput.c BUILD/libtalon.a -lz -linih \
 *      -ljansson -lcrypto -lmicrohttpd -pthread -o /tmp/log_throughput
 *   /tmp/log_throughput DIR [threads] [records per thread]
 * It writes DIR/bench-<format>.log and removes them afterwards.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "talon/log.h"

static int nthreads = 4;
static long nrecords = 200000;
static talon_logger *logger;

static void *log_main(void *arg)
{
    long id = (long)arg;
    for (long i = 0; i < nrecords; i++) {
        talon_field f[] = {
            TALON_F_STR("client.ip", "192.0.2.10"),
            TALON_F_STR("http.request.method", "GET"),
            TALON_F_STR("url.original", "/notes/42?verbose=1"),
            TALON_F_INT("http.response.status_code", 200),
            TALON_F_UINT("event.duration", 123456),
        };
        talon_log_fields(logger, TALON_LOG_INFO, f, 5, "request done thread=%ld i=%ld", id, i);
    }
    return NULL;
}

static void *debug_main(void *arg)
{
    for (long i = 0; i < nrecords; i++)
        talon_log_debug(logger, "not written %ld", i);
    return arg;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double run(void *(*fn)(void *))
{
    pthread_t threads[64];
    double t0 = now_s();
    for (long i = 0; i < nthreads; i++)
        pthread_create(&threads[i], NULL, fn, (void *)i);
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [threads] [records per thread]\n", argv[0]);
        return 2;
    }
    if (argc > 2)
        nthreads = atoi(argv[2]);
    if (argc > 3)
        nrecords = atol(argv[3]);
    const char *formats[] = { "text", "json", "logfmt" };
    for (size_t f = 0; f < 3; f++) {
        char path[4096], err[256];
        snprintf(path, sizeof(path), "%s/bench-%s.log", argv[1], formats[f]);
        talon_sink *sink;
        if (talon_sink_open_file(&sink, path, NULL, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        talon_log_format *fmt = talon_log_format_compile(formats[f], err, sizeof(err));
        logger = talon_logger_get("bench");
        talon_logger_add_sink(logger, sink, TALON_LOG_INFO, fmt);

        double written = run(log_main);
        double skipped = run(debug_main);
        double t0 = now_s();
        talon_log_shutdown();
        double flush = now_s() - t0;
        talon_log_format_free(fmt);
        unlink(path);
        double all = (double)nthreads * nrecords;
        printf("%-7s %6.0f ns per record written, %4.1f ns per record below the level, "
               "final flush %.0f ms (%d threads x %ld records)\n",
               formats[f], written * 1e9 / all, skipped * 1e9 / all, flush * 1e3, nthreads, nrecords);
    }
    return 0;
}
