/* Logging core: whole lines from many threads into several sinks, the block
 * and drop overflow policies, write errors, file modes and level filters.
 * Every test writes real files through the real writer thread and reads
 * them back after talon_log_shutdown() or talon_sink_flush(). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "log/fields.h"
#include "log/log_internal.h"
#include "log_test_fixture.h"

#define THREADS 4
#define PER_THREAD 5000

static talon_log_format *compile(const char *spec)
{
    char err[256];
    talon_log_format *fmt = talon_log_format_compile(spec, err, sizeof(err));
    if (!fmt)
        fail_msg("format %s: %s", spec, err);
    return fmt;
}

static void run_threads(talon_logger *logger, int threads, int per_thread)
{
    pthread_t tid[REC_MAX_THREADS];
    writer_arg args[REC_MAX_THREADS];
    start_threads(tid, args, logger, threads, 0, per_thread);
    join_threads(tid, threads);
}

static int lazy_message_calls;

static void set_lazy_message(talon_log_record *rec, void *ctx)
{
    lazy_message_calls++;
    rec->message = ctx;
    rec->message_len = SIZE_MAX;
}

static void write_lazy_record(talon_logger *lg)
{
    talon_field f[] = {
        TALON_F_STR(LOG_KEY(METHOD), "GET"),
        TALON_F_STR(LOG_KEY(URL_ORIGINAL), "/lazy"),
        TALON_F_INT(LOG_KEY(STATUS), 204),
    };
    talon_log_record rec = { .time_ns = 1714557600000000000LL, .level = TALON_LOG_INFO,
                             .logger = "lazy", .fields = f, .nfields = 3 };
    log_write_lazy_message(lg, &rec, set_lazy_message, "the lazy message");
}

/* The message is built only while a format that writes it is attached. */
static void lazy_message_only_when_written(void **state)
{
    talon_logger *lg = talon_logger_get("lazy");
    talon_sink *combined = open_sink("combined.log", NULL);
    talon_sink *text = open_sink("text.log", NULL);
    talon_log_format *combined_fmt = compile("combined"), *text_fmt = compile("text");
    char path[4096];
    size_t len;

    lazy_message_calls = 0;
    assert_int_equal(talon_logger_add_sink(lg, combined, TALON_LOG_INFO, combined_fmt), 0);
    write_lazy_record(lg);
    assert_int_equal(lazy_message_calls, 0);

    assert_int_equal(talon_logger_add_sink(lg, text, TALON_LOG_INFO, text_fmt), 0);
    write_lazy_record(lg);
    assert_int_equal(lazy_message_calls, 1);

    assert_int_equal(talon_sink_flush(combined), 0);
    assert_int_equal(talon_sink_flush(text), 0);
    path_in_dir(path, sizeof(path), "combined.log");
    char *lines = read_file_all(path, &len);
    assert_non_null(strstr(lines, "\"GET /lazy\" 204 "));
    assert_null(strstr(lines, "the lazy message"));
    free(lines);
    path_in_dir(path, sizeof(path), "text.log");
    lines = read_file_all(path, &len);
    assert_non_null(strstr(lines, " INFO lazy the lazy message "));
    free(lines);
    talon_log_shutdown(); /* the loggers use the formats until then */
    talon_log_format_free(combined_fmt);
    talon_log_format_free(text_fmt);
}

/* N threads x M records: exactly N x M whole lines in a text and a JSON file. */
static void threads_exact_lines_in_every_sink(void **state)
{
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.buffer_size = 16 * 1024; /* many chunks and batches */
    talon_sink *text = open_sink("multi.log", &opts);
    talon_sink *json = open_sink("multi.json", &opts);
    talon_log_format *json_fmt = compile("json");
    talon_logger *lg = talon_logger_get("multi");
    assert_int_equal(talon_logger_add_sink(lg, text, TALON_LOG_INFO, NULL), 0);
    assert_int_equal(talon_logger_add_sink(lg, json, TALON_LOG_INFO, json_fmt), 0);

    run_threads(lg, THREADS, PER_THREAD);
    talon_log_shutdown();

    char path[4096];
    path_in_dir(path, sizeof(path), "multi.log");
    count_file(&counts, path, 0);
    assert_all_once("text sink", THREADS, PER_THREAD);

    memset(&counts, 0, sizeof(counts));
    path_in_dir(path, sizeof(path), "multi.json");
    count_file(&counts, path, 1);
    assert_all_once("json sink", THREADS, PER_THREAD);
    talon_log_format_free(json_fmt);
}

/* With the smallest buffer, block makes callers wait and nothing is lost. */
static void block_tiny_buffer_loses_nothing(void **state)
{
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.buffer_size = 4096;
    opts.max_buffered = 4096;
    opts.overflow = TALON_OVERFLOW_BLOCK;
    talon_sink *sink = open_sink("block.log", &opts);
    talon_logger *lg = talon_logger_get("block");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);

    run_threads(lg, THREADS, PER_THREAD);
    assert_int_equal(talon_sink_flush(sink), 0);
    assert_int_equal(talon_sink_dropped(sink), 0);
    talon_log_shutdown();

    char path[4096];
    path_in_dir(path, sizeof(path), "block.log");
    count_file(&counts, path, 0);
    assert_all_once("block sink", THREADS, PER_THREAD);
}

typedef struct fifo_reader {
    int fd;
    char *buf;
    size_t len;
    size_t cap;
} fifo_reader;

static void *read_fifo(void *p)
{
    fifo_reader *r = p;
    for (;;) {
        if (r->cap - r->len < 65536) {
            r->cap = r->cap * 2 + 65536;
            r->buf = realloc(r->buf, r->cap + 1);
        }
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    r->buf[r->len] = '\0';
    return NULL;
}

/* Parse the total of the last drop report of sink_path in the app log. */
static unsigned long long last_reported_total(const char *app_log, const char *sink_path)
{
    size_t len;
    char *buf = read_file_all(app_log, &len);
    char needle[4200];
    snprintf(needle, sizeof(needle), "log sink %s: dropped ", sink_path);
    unsigned long long total = 0;
    for (char *p = buf ? strstr(buf, needle) : NULL; p; p = strstr(p + 1, needle)) {
        unsigned long long fresh;
        if (sscanf(p + strlen(needle), "%llu records since the last report (%llu in total)",
                   &fresh, &total) != 2)
            fail_msg("unexpected drop report: %.200s", p);
    }
    free(buf);
    return total;
}

/* A FIFO that is not read until all records are logged: the drop policy
 * drops, counts, and reports the count in the app log. */
static void drop_counts_and_reports(void **state)
{
    char fifo[4096], app_path[4096];
    path_in_dir(fifo, sizeof(fifo), "slow.fifo");
    path_in_dir(app_path, sizeof(app_path), "app.log");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    fifo_reader reader = { .fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC) };
    assert_true(reader.fd >= 0);

    talon_sink *app = open_sink("app.log", NULL);
    assert_int_equal(talon_logger_add_sink(talon_logger_get("app"), app, TALON_LOG_INFO, NULL), 0);

    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.buffer_size = 4096;
    opts.max_buffered = 8192;
    opts.overflow = TALON_OVERFLOW_DROP;
    talon_sink *slow = open_sink("slow.fifo", &opts);
    talon_logger *lg = talon_logger_get("slow");
    assert_int_equal(talon_logger_add_sink(lg, slow, TALON_LOG_INFO, NULL), 0);

    /* The pipe buffer is 64 KiB and the sink's 8 KiB, so most of 4 x 5000
     * lines of about 60 bytes cannot fit until the reader starts. */
    run_threads(lg, THREADS, PER_THREAD);
    uint64_t dropped = talon_sink_dropped(slow);
    assert_true(dropped > 0);

    int flags = fcntl(reader.fd, F_GETFL);
    fcntl(reader.fd, F_SETFL, flags & ~O_NONBLOCK);
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, read_fifo, &reader), 0);
    talon_log_shutdown(); /* the writer drains into the reader, then closes the FIFO */
    pthread_join(tid, NULL);
    close(reader.fd);

    count_text_lines(&counts, reader.buf, reader.len);
    free(reader.buf);
    if (counts.bad_lines)
        fail_msg("%zu malformed lines, first: %s", counts.bad_lines, counts.first_bad);
    size_t missing, duplicated;
    size_t once = count_exactly_once(&counts, THREADS, PER_THREAD, &missing, &duplicated);
    assert_int_equal(duplicated, 0);
    unsigned long long reported = last_reported_total(app_path, fifo);
    assert_int_equal(reported, missing);
    assert_int_equal(once + reported, THREADS * PER_THREAD);
    assert_true(reported >= dropped);
}

/* A write error (here EFBIG from RLIMIT_FSIZE) is reported, the batch is
 * kept, and writing resumes with nothing lost once the limit is raised. */
static void write_error_reported_then_resumes(void **state)
{
    talon_sink *app = open_sink("app.log", NULL);
    assert_int_equal(talon_logger_add_sink(talon_logger_get("app"), app, TALON_LOG_INFO, NULL), 0);
    talon_sink *sink = open_sink("limited.log", NULL);
    talon_logger *lg = talon_logger_get("limited");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);

    struct rlimit saved, limit;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, SIG_IGN);
    limit = saved;
    limit.rlim_cur = 32 * 1024;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &limit), 0);

    run_threads(lg, 2, 1000); /* about 120 KiB */
    assert_int_equal(talon_sink_flush(sink), -EIO);

    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    int rc = -EIO;
    for (int i = 0; i < 100 && rc != 0; i++) { /* the writer retries once a second */
        usleep(100 * 1000);
        rc = talon_sink_flush(sink);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(talon_sink_dropped(sink), 0);
    talon_log_shutdown();

    char path[4096], app_path[4096];
    path_in_dir(path, sizeof(path), "limited.log");
    path_in_dir(app_path, sizeof(app_path), "app.log");
    count_file(&counts, path, 0);
    assert_all_once("sink after a write error", 2, 1000);
    assert_true(file_contains(app_path, "limited.log: write failed: File too large"));
    assert_true(file_contains(app_path, "limited.log: writing resumed after"));
}

/* The payload length of line i of lines_filling_chunks_kept_whole. */
static int pad_length(int i)
{
    return i * 997 % 3000 + 1;
}

/* Lines of 1 to 3000 bytes into 4 KiB chunks: the sink formats each line
 * straight into the chunk, and a line that does not fit the room left is
 * formatted again and goes to a fresh chunk. Each line is in the file
 * once, whole and in order. */
static void lines_filling_chunks_kept_whole(void **state)
{
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.buffer_size = 4096;
    talon_sink *sink = open_sink("pad.log", &opts);
    talon_logger *lg = talon_logger_get("pad");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);

    static char payload[3001];
    memset(payload, 'x', sizeof(payload) - 1);
    for (int i = 0; i < 1000; i++)
        talon_log_info(lg, "%d %.*s", i, pad_length(i), payload);
    assert_int_equal(talon_sink_dropped(sink), 0);
    talon_log_shutdown();

    char path[4096];
    path_in_dir(path, sizeof(path), "pad.log");
    size_t len;
    char *buf = read_file_all(path, &len);
    assert_non_null(buf);
    int lines = 0;
    for (char *line = buf; line < buf + len; lines++) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        assert_non_null(nl);
        *nl = '\0';
        const char *msg = strstr(line, " INFO pad ");
        int i, skip = 0;
        if (!msg || sscanf(msg + strlen(" INFO pad "), "%d %n", &i, &skip) != 1 || skip == 0)
            fail_msg("malformed line %d: %.200s", lines, line);
        assert_int_equal(i, lines);
        const char *x = msg + strlen(" INFO pad ") + skip;
        assert_int_equal(strspn(x, "x"), pad_length(i));
        assert_int_equal(x[pad_length(i)], '\0');
        line = nl + 1;
    }
    assert_int_equal(lines, 1000);
    free(buf);
}

/* Files are created 0640 (or the configured mode) whatever the umask, and
 * an existing file loses bits beyond the configured mode. */
static void file_modes_ignore_umask(void **state)
{
    mode_t old_umask = umask(0);
    char path[4096];

    open_sink("default.log", NULL);
    path_in_dir(path, sizeof(path), "default.log");
    assert_int_equal(file_mode(path), 0640);

    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.mode = 0600;
    open_sink("private.log", &opts);
    path_in_dir(path, sizeof(path), "private.log");
    assert_int_equal(file_mode(path), 0600);

    path_in_dir(path, sizeof(path), "sub/dir/nested.log");
    open_sink("sub/dir/nested.log", NULL);
    assert_int_equal(file_mode(path), 0640);

    path_in_dir(path, sizeof(path), "open.log");
    int fd = open(path, O_CREAT | O_WRONLY, 0666);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(file_mode(path), 0666);
    open_sink("open.log", NULL);
    assert_int_equal(file_mode(path), 0640);
    umask(old_umask);
}

/* Each attachment filters by its own level; talon_logger_enabled() follows
 * the lowest one. */
static void levels_filter_per_sink(void **state)
{
    talon_sink *warn_sink = open_sink("warn.log", NULL);
    talon_sink *debug_sink = open_sink("debug.log", NULL);
    talon_logger *lg = talon_logger_get("levels");
    assert_false(talon_logger_enabled(lg, TALON_LOG_FATAL));
    assert_int_equal(talon_logger_add_sink(lg, warn_sink, TALON_LOG_WARN, NULL), 0);
    assert_false(talon_logger_enabled(lg, TALON_LOG_INFO));
    assert_true(talon_logger_enabled(lg, TALON_LOG_WARN));
    assert_int_equal(talon_logger_add_sink(lg, debug_sink, TALON_LOG_DEBUG, NULL), 0);
    assert_true(talon_logger_enabled(lg, TALON_LOG_DEBUG));
    assert_false(talon_logger_enabled(lg, TALON_LOG_TRACE));

    talon_log_trace(lg, "rec t=0 i=0 end");
    talon_log_debug(lg, "rec t=0 i=1 end");
    talon_log_info(lg, "rec t=0 i=2 end");
    talon_log_warn(lg, "rec t=0 i=3 end");
    talon_log_error(lg, "rec t=0 i=4 end");
    talon_log_fatal(lg, "rec t=0 i=5 end"); /* flushes synchronously */

    char path[4096];
    path_in_dir(path, sizeof(path), "warn.log");
    count_file(&counts, path, 0);
    assert_int_equal(counts.lines, 3);
    for (int i = 0; i < 6; i++)
        assert_int_equal(counts.seen[0][i], i >= 3);

    memset(&counts, 0, sizeof(counts));
    path_in_dir(path, sizeof(path), "debug.log");
    count_file(&counts, path, 0);
    assert_int_equal(counts.lines, 5);
    for (int i = 0; i < 6; i++)
        assert_int_equal(counts.seen[0][i], i >= 1);

    talon_logger_clear_sinks(lg);
    assert_false(talon_logger_enabled(lg, TALON_LOG_FATAL));
    assert_true(file_contains(path, " FATAL levels rec t=0 i=5 end"));
}

/* A thread time set by an event loop stamps that thread's records; 0 goes
 * back to the clock. */
static void thread_time_stamps_records(void **state)
{
    talon_sink *sink = open_sink("time.log", NULL);
    talon_logger *lg = talon_logger_get("clock");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);

    talon_log_set_thread_time(1000000000LL * 1000000000LL); /* 2001-09-09T01:46:40Z */
    assert_int_equal(talon_log_thread_time(), 1000000000LL * 1000000000LL);
    talon_log_info(lg, "rec t=0 i=0 end");
    talon_log_set_thread_time(0);
    assert_true(talon_log_thread_time() > 1700000000LL * 1000000000LL);
    talon_log_info(lg, "rec t=0 i=1 end");
    assert_int_equal(talon_sink_flush(sink), 0);

    char path[4096];
    path_in_dir(path, sizeof(path), "time.log");
    assert_true(file_contains(path, "2001-09-09T01:46:40"));
    count_file(&counts, path, 0);
    assert_int_equal(counts.lines, 2);
    assert_false(file_contains(path, "2001-09-09T01:46:40.00Z INFO clock rec t=0 i=1"));
}

/* A FIFO without a reader is an error at open, not a hang. */
static void fifo_without_reader_fails(void **state)
{
    char fifo[4096], err[512] = "";
    path_in_dir(fifo, sizeof(fifo), "lonely.fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    talon_sink *sink = NULL;
    assert_int_equal(talon_sink_open_file(&sink, fifo, NULL, err, sizeof(err)), -ENXIO);
    assert_null(sink);
    assert_non_null(strstr(err, "lonely.fifo"));
}

/* Read the whole small file at path into buf. */
static void read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, len - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    close(fd);
}

/* A symbolic link at the log path, live or dangling, is rejected with a
 * clear error: the file it names is neither written nor chmod-ed. */
static void symlink_sink_rejected(void **state)
{
    char victim[4096], link[4096], dangling[4096], err[512] = "", text[64];
    path_in_dir(victim, sizeof(victim), "victim.txt");
    path_in_dir(link, sizeof(link), "app.log");
    path_in_dir(dangling, sizeof(dangling), "dangling.log");
    int fd = open(victim, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "root:x:0:0\n", 11), 11);
    close(fd);
    assert_int_equal(chmod(victim, 0644), 0);
    assert_int_equal(symlink(victim, link), 0);
    assert_int_equal(symlink("nowhere/missing.log", dangling), 0);

    talon_sink *sink = NULL;
    assert_int_equal(talon_sink_open_file(&sink, link, NULL, err, sizeof(err)), -ELOOP);
    assert_null(sink);
    assert_non_null(strstr(err, "refusing to open log file"));
    assert_non_null(strstr(err, "app.log: it is a symbolic link"));
    assert_int_equal(file_mode(victim), 0644);
    read_small(victim, text, sizeof(text));
    assert_string_equal(text, "root:x:0:0\n");

    err[0] = '\0';
    assert_int_equal(talon_sink_open_file(&sink, dangling, NULL, err, sizeof(err)), -ELOOP);
    assert_null(sink);
    assert_non_null(strstr(err, "dangling.log: it is a symbolic link"));
    assert_null(strstr(err, "No such file"));
    char missing[4096];
    path_in_dir(missing, sizeof(missing), "nowhere/missing.log");
    assert_int_equal(access(missing, F_OK), -1);
}

/* Character devices stay valid log files: /dev/null is opened and written. */
static void char_device_sink_accepted(void **state)
{
    char err[512] = "";
    talon_sink *sink = NULL;
    assert_int_equal(talon_sink_open_file(&sink, "/dev/null", NULL, err, sizeof(err)), 0);
    assert_non_null(sink);
    talon_logger *lg = talon_logger_get("null");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);
    talon_log_info(lg, "into the void");
    assert_int_equal(talon_sink_flush(sink), 0);
}

/* The stdout sink writes to whatever file descriptor 1 is, through the
 * same buffer and writer; "-" finds the stderr sink. */
static void stdout_sink_writes_fd_1(void **state)
{
    char path[4096];
    path_in_dir(path, sizeof(path), "stdout.txt");
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    close(fd);

    talon_sink *out = NULL, *err_sink = NULL;
    assert_int_equal(talon_sink_open_stdout(&out, NULL), 0);
    assert_int_equal(talon_sink_open_stderr(&err_sink, NULL), 0);
    assert_ptr_equal(talon_sink_find("stdout"), out);
    assert_ptr_equal(talon_sink_find("-"), err_sink);
    talon_logger *lg = talon_logger_get("container");
    assert_int_equal(talon_logger_add_sink(lg, out, TALON_LOG_INFO, NULL), 0);
    for (int i = 0; i < 3; i++)
        talon_log_info(lg, "rec t=0 i=%d end", i);
    assert_int_equal(talon_sink_flush(out), 0);

    assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
    close(saved);
    count_file(&counts, path, 0);
    assert_int_equal(counts.bad_lines, 0);
    assert_int_equal(counts.lines, 3);
}

/* A line larger than the whole buffer is still written whole, a message
 * past 512 KiB is cut, and a line past 1 MiB is dropped and counted. */
static void oversized_lines(void **state)
{
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.buffer_size = 4096;
    opts.max_buffered = 4096;
    talon_sink *sink = open_sink("big.log", &opts);
    talon_logger *lg = talon_logger_get("big");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);

    size_t big = 100 * 1024;
    char *payload = malloc(2 << 20);
    assert_non_null(payload);
    memset(payload, 'a', 2 << 20);
    payload[big] = '\0';
    talon_log_info(lg, "rec t=0 i=0 end");
    talon_log_info(lg, "%s", payload);
    talon_log_info(lg, "rec t=0 i=1 end");
    assert_int_equal(talon_sink_dropped(sink), 0);
    payload[big] = 'a';
    payload[(2 << 20) - 1] = '\0';
    talon_log_info(lg, "%s", payload); /* cut to 512 KiB */
    assert_int_equal(talon_sink_dropped(sink), 0);
    talon_log_record rec = {
        .time_ns = 0, .level = TALON_LOG_INFO, .logger = "big",
        .message = payload, .message_len = (2 << 20) - 1,
    };
    talon_log_write(lg, &rec);
    assert_int_equal(talon_sink_dropped(sink), 1);
    talon_log_info(lg, "rec t=0 i=2 end");
    free(payload);
    talon_log_shutdown();

    char path[4096];
    path_in_dir(path, sizeof(path), "big.log");
    size_t len;
    char *buf = read_file_all(path, &len);
    assert_non_null(buf);
    count_text_lines(&counts, buf, len);
    assert_int_equal(counts.lines, 5);
    assert_int_equal(counts.bad_lines, 2); /* the 100 KiB and the 512 KiB line */
    for (int i = 0; i < 3; i++)
        assert_int_equal(counts.seen[0][i], 1);
    char *line = strstr(buf, " INFO big aaaa");
    assert_non_null(line);
    assert_int_equal(strspn(line + strlen(" INFO big "), "a"), big);
    assert_int_equal(line[strlen(" INFO big ") + big], '\n');
    line = strstr(line + 1, " INFO big aaaa");
    assert_non_null(line);
    assert_int_equal(strspn(line + strlen(" INFO big "), "a"), 512 * 1024 - 1);
    free(buf);
}

/* Level names parse both ways. */
static void level_names_round_trip(void **state)
{
    for (int l = TALON_LOG_TRACE; l <= TALON_LOG_OFF; l++) {
        talon_log_level parsed;
        assert_int_equal(talon_log_level_parse(talon_log_level_name((talon_log_level)l), &parsed), 0);
        assert_int_equal(parsed, l);
    }
    talon_log_level parsed;
    assert_int_equal(talon_log_level_parse("WARNING", &parsed), 0);
    assert_int_equal(parsed, TALON_LOG_WARN);
    assert_int_equal(talon_log_level_parse("verbose", &parsed), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(threads_exact_lines_in_every_sink, setup, teardown),
        cmocka_unit_test_setup_teardown(block_tiny_buffer_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(drop_counts_and_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(write_error_reported_then_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(lines_filling_chunks_kept_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(file_modes_ignore_umask, setup, teardown),
        cmocka_unit_test_setup_teardown(levels_filter_per_sink, setup, teardown),
        cmocka_unit_test_setup_teardown(fifo_without_reader_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(symlink_sink_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(char_device_sink_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(stdout_sink_writes_fd_1, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(lazy_message_only_when_written, setup, teardown),
        cmocka_unit_test_setup_teardown(thread_time_stamps_records, setup, teardown),
        cmocka_unit_test(level_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
