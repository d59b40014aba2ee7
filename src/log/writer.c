/* The writer thread: drains every sink's buffer to its file.
 *
 * It sleeps in poll() on an eventfd until callers have filled buffer_size
 * bytes of chunks or a flush or reopen is requested. It also wakes at least
 * once per flush interval, and then collects the chunks that threads are
 * still filling (sink.c). Each sink's pending chunks are written as one
 * batch with one writev() per 64 chunks. Rotation and reopening happen
 * between batches, so a batch (whole lines only) never straddles two
 * files. A failed batch is kept and retried once a second, and the failure
 * and the drops are reported at most once a second.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log/log_internal.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL
#define REPORT_INTERVAL_NS NS_PER_S
#define RETRY_INTERVAL_NS NS_PER_S

static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER; /* start and stop */
static pthread_t writer_thread;
static bool writer_running;
static atomic_int wake_fd = -1;     /* read from signal handlers: lock-free */
static atomic_bool wake_pending;
static atomic_bool reopen_requested;
static atomic_bool stop_requested;
static __thread bool in_writer;

bool log_in_writer_thread(void)
{
    return in_writer;
}

void log_writer_mark_thread(void)
{
    in_writer = true;
}

void log_writer_wake(void)
{
    if (atomic_exchange(&wake_pending, true))
        return;
    int fd = atomic_load(&wake_fd);
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is already non-zero, so the writer wakes. */
    }
}

/* Async-signal-safe: one atomic store and one write(). */
void talon_log_reopen(void)
{
    int saved = errno;
    atomic_store(&reopen_requested, true);
    int fd = atomic_load(&wake_fd);
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
        /* see log_writer_wake() */
    }
    errno = saved;
}

void log_report(talon_log_level level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (level >= TALON_LOG_ERROR) {
        char line[600];
        int n = snprintf(line, sizeof(line), "talon: %s\n", msg);
        if (n > 0 && write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0) {
            /* stderr is gone too: the app log below is all that is left */
        }
    }
    /* From the writer thread this never blocks: a full sink drops instead. */
    talon_log(talon_logger_get("app"), level, "%s", msg);
}

/* Give chunks back to the sink's memory budget and wake blocked callers. */
static void batch_release(talon_sink *s, log_chunk *batch, bool written)
{
    pthread_mutex_lock(&s->lock);
    while (batch) {
        log_chunk *c = batch;
        batch = c->next;
        s->settled += c->len;
        if (!written)
            atomic_fetch_add(&s->dropped, c->lines);
        log_sink_release_chunk_locked(s, c);
    }
    s->failing = false;
    pthread_cond_broadcast(&s->space);
    pthread_cond_broadcast(&s->written);
    pthread_mutex_unlock(&s->lock);
}

static size_t batch_length(const log_chunk *batch)
{
    size_t n = 0;
    for (; batch; batch = batch->next)
        n += batch->len;
    return n;
}

int log_batch_iov(const log_chunk *batch, size_t off, struct iovec *iov, int max)
{
    int n = 0;
    for (const log_chunk *c = batch; c && n < max; c = c->next) {
        if (off >= c->len) {
            off -= c->len;
            continue;
        }
        iov[n].iov_base = (char *)c->data + off;
        iov[n].iov_len = c->len - off;
        off = 0;
        n++;
    }
    return n;
}

/* Write batch from byte offset *off with as few writev() calls as the
 * kernel allows. Returns 0, or a negative errno with *off at the first byte
 * not written. */
static int batch_write(talon_sink *s, log_chunk *batch, size_t *off)
{
    if (s->kind == SINK_SYSLOG)
        return log_syslog_write(s, batch, off);
    for (;;) {
        struct iovec iov[64];
        int n = log_batch_iov(batch, *off, iov, 64);
        if (n == 0)
            return 0;
        ssize_t w = writev(s->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        *off += (size_t)w;
        s->file_size += (uint64_t)w;
    }
}

/* Report a write failure at most once a second. */
static void report_failure(talon_sink *s, int64_t now)
{
    if (now - s->last_error_report_ns < REPORT_INTERVAL_NS)
        return;
    s->last_error_report_ns = now;
    size_t held; /* buffer capacity, not the bytes of the lines in it */
    pthread_mutex_lock(&s->lock);
    held = s->mem;
    pthread_mutex_unlock(&s->lock);
    log_report(TALON_LOG_ERROR,
               "log sink %s: write failed: %s; %u attempts so far, %llu records dropped in total, "
               "%zu bytes of buffers held in memory, %s",
               s->path, strerror(s->last_errno), s->failed_writes,
               (unsigned long long)atomic_load(&s->dropped), held,
               s->kind == SINK_SYSLOG ? "reconnecting with backoff when the connection is lost"
                                      : "retrying every second");
}

/* Write the held batch, if any. Returns true when the sink may go on. */
static bool retry_held(talon_sink *s, int64_t now, bool stopping)
{
    if (!s->held)
        return true;
    if (now < s->retry_at_ns && !stopping)
        return false;
    /* NOTE: when a write failed midway through a line and the file is then
     * reopened (here or by talon_log_reopen()), the rest of that line starts
     * the new file; only a short write followed by an error causes it. */
    if (s->kind == SINK_FILE && (s->last_errno == EBADF || s->last_errno == ESTALE))
        log_reopen_sink(s);
    int rc = batch_write(s, s->held, &s->held_off);
    if (rc < 0) {
        s->last_errno = -rc;
        s->failed_writes++;
        s->retry_at_ns = now + RETRY_INTERVAL_NS;
        report_failure(s, now);
        return false;
    }
    log_report(TALON_LOG_WARN, "log sink %s: writing resumed after %u failed attempts", s->path,
               s->failed_writes);
    batch_release(s, s->held, true);
    s->held = NULL;
    s->held_off = 0;
    s->failed_writes = 0;
    return true;
}

/* Cut the batch after the chunks that still fit in the current file when
 * size rotation is on (at least one chunk), so rotation can happen between
 * chunks of a large batch. Returns the chunks after the cut. */
static log_chunk *segment_cut(talon_sink *s, log_chunk *batch)
{
    if (s->kind != SINK_FILE || s->opts.rotate_size == 0)
        return NULL;
    log_chunk *last = batch;
    uint64_t len = batch->len;
    while (last->next && s->file_size + len + last->next->len <= s->opts.rotate_size) {
        last = last->next;
        len += last->len;
    }
    log_chunk *after = last->next;
    last->next = NULL;
    return after;
}

static void segment_join(log_chunk *segment, log_chunk *after)
{
    while (segment->next)
        segment = segment->next;
    segment->next = after;
}

/* Keep a batch whose write failed for a retry in a second, and make
 * callers drop instead of waiting for it. */
static void hold_failed(talon_sink *s, log_chunk *batch, size_t off, int err, int64_t now)
{
    s->held = batch;
    s->held_off = off;
    s->last_errno = err;
    s->failed_writes = 1;
    s->retry_at_ns = now + RETRY_INTERVAL_NS;
    pthread_mutex_lock(&s->lock);
    s->failing = true;
    pthread_cond_broadcast(&s->space);   /* blocked callers now drop */
    pthread_cond_broadcast(&s->written); /* talon_sink_flush() returns -EIO */
    pthread_mutex_unlock(&s->lock);
    report_failure(s, now);
}

/* Reopen a file sink whose file was deleted while open (st_nlink is 0: the
 * file or its directory was removed), so that its lines do not go into an
 * unlinked inode until someone sends SIGHUP. A file renamed away without a
 * signal keeps receiving lines under its new name, where they are kept.
 * After a failed reopen, the next attempt waits a second. */
static void reopen_if_deleted(talon_sink *s, int64_t now)
{
    struct stat st;
    if (s->fd < 0 || fstat(s->fd, &st) < 0 || st.st_nlink > 0)
        return;
    if (s->last_deleted_check_ns != 0 && now - s->last_deleted_check_ns < REPORT_INTERVAL_NS)
        return;
    log_report(TALON_LOG_WARN, "log sink %s: the open file was deleted; reopening the path",
               s->path);
    log_reopen_sink(s);
    bool still_deleted = fstat(s->fd, &st) == 0 && st.st_nlink == 0;
    s->last_deleted_check_ns = still_deleted ? now : 0;
}

/* Nanoseconds from now until the sink's slots are due to be collected. */
static int64_t collect_due_in(const talon_sink *s, int64_t now)
{
    /* poll() may return a little early: an eighth of the interval early
     * counts as on time, so data does not wait a whole extra interval. */
    int64_t interval = (int64_t)s->opts.flush_interval_ms * NS_PER_MS;
    return s->last_flush_ns + interval - interval / 8 - now;
}

/* Report, once, how the sink's file ended when it was opened. This waits
 * for the first batch because the app log is attached after its sinks. */
static void report_partial_line(talon_sink *s)
{
    int rc = s->opened_partial;
    s->opened_partial = 0;
    if (rc > 0)
        log_report(TALON_LOG_WARN, "log file %s ended with an unfinished line (a write cut "
                   "short by an earlier error); a newline was added after it", s->path);
    else if (rc < 0)
        log_report(TALON_LOG_WARN, "log file %s ends with an unfinished line and adding a "
                   "newline failed: %s; add one by hand or the next line is joined to it",
                   s->path, strerror(-rc));
}

/* Write the sink's full chunks, and first collect the lines every thread
 * holds when the flush interval passed, a flush was requested or the
 * process is stopping. */
static void sink_service(talon_sink *s, int64_t now, bool stopping)
{
    if (!retry_held(s, now, stopping)) {
        s->last_flush_ns = now; /* no collecting before the retry */
        return;
    }

    pthread_mutex_lock(&s->lock);
    if (collect_due_in(s, now) <= 0 || s->flush_requested || stopping) {
        log_sink_collect_locked(s);
        s->flush_requested = false;
        s->last_flush_ns = now;
    }
    log_chunk *batch = s->full_head;
    s->full_head = s->full_tail = NULL;
    s->full_bytes = 0;
    pthread_mutex_unlock(&s->lock);
    if (!batch) {
        if (s->kind == SINK_FILE && log_rotate_due(s, 0, now))
            log_rotate(s, now);
        return;
    }

    if (s->kind == SINK_FILE) {
        report_partial_line(s);
        reopen_if_deleted(s, now);
    }
    int rc = 0;
    log_chunk *rest = batch;
    while (rest && rc == 0) {
        log_chunk *after = segment_cut(s, rest);
        if (s->kind == SINK_FILE && log_rotate_due(s, batch_length(rest), now))
            log_rotate(s, now);
        size_t off = 0;
        rc = batch_write(s, rest, &off);
        if (rc < 0) {
            segment_join(rest, after);
            hold_failed(s, rest, off, -rc, now);
            break;
        }
        batch_release(s, rest, true);
        rest = after;
    }
}

/* Report new overflow drops of each sink at most once a second, and at
 * shutdown whatever the last report. */
static void report_drops(talon_sink *s, int64_t now, bool stopping)
{
    if (!stopping && now - s->last_drop_report_ns < REPORT_INTERVAL_NS)
        return;
    uint64_t dropped = atomic_load(&s->dropped);
    if (dropped == s->dropped_reported)
        return;
    s->last_drop_report_ns = now;
    uint64_t fresh = dropped - s->dropped_reported;
    s->dropped_reported = dropped;
    log_report(TALON_LOG_WARN,
               "log sink %s: dropped %llu records since the last report (%llu in total); "
               "overflow=%s, max_buffered=%zu bytes",
               s->path, (unsigned long long)fresh, (unsigned long long)dropped,
               s->opts.overflow == TALON_OVERFLOW_DROP ? "drop" : "block", s->opts.max_buffered);
}

/* Milliseconds until the next sink's lines are due, at most a second (the
 * drop and failure reports), at least 1. */
static int poll_timeout_ms(int64_t now)
{
    int64_t ns = NS_PER_S;
    for (talon_sink *s = log_sink_list(); s; s = s->next) {
        int64_t due = collect_due_in(s, now);
        if (due < ns)
            ns = due;
    }
    return ns < NS_PER_MS ? 1 : (int)(ns / NS_PER_MS);
}

static bool all_settled(void)
{
    for (talon_sink *s = log_sink_list(); s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        log_sink_collect_locked(s);
        bool empty = s->settled == s->appended && !s->held;
        pthread_mutex_unlock(&s->lock);
        if (!empty)
            return false;
    }
    return true;
}

/* Count the lines of batch whose newline lies at or past byte offset off:
 * the records that a write which stopped at off did not complete. */
static uint64_t lines_unwritten(const log_chunk *batch, size_t off)
{
    uint64_t n = 0;
    for (const log_chunk *c = batch; c; c = c->next) {
        if (off >= c->len) {
            off -= c->len;
            continue;
        }
        for (const char *p = c->data + off, *end = c->data + c->len;
             (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
            n++;
        off = 0;
    }
    return n;
}

/* At shutdown, a batch that still cannot be written is given up, with the
 * lines queued behind it, so the process can exit. Every record not
 * written whole is counted as dropped. The start of a line that a short
 * write left in the file stays there, and the next start ends it with a
 * newline (end_partial_line() in sink.c). */
static void give_up_held(void)
{
    for (talon_sink *s = log_sink_list(); s; s = s->next) {
        if (!s->held)
            continue;
        log_chunk *batch = s->held;
        /* A file sink may have written part of the batch before it failed.
         * A TCP syslog buffer contains frames, not lines, so a syslog sink's
         * whole batch counts. */
        bool file = s->kind == SINK_FILE;
        if (file)
            atomic_fetch_add(&s->dropped, lines_unwritten(batch, s->held_off));
        s->held = NULL;
        s->held_off = 0;
        batch_release(s, batch, file);

        /* A failing sink is not collected (sink_service() returns before it),
         * so the lines queued behind the held batch and those still in the
         * threads' chunks are given up and counted here. */
        pthread_mutex_lock(&s->lock);
        log_sink_collect_locked(s);
        log_chunk *queued = s->full_head;
        s->full_head = s->full_tail = NULL;
        s->full_bytes = 0;
        pthread_mutex_unlock(&s->lock);
        batch_release(s, queued, false);

        char line[512];
        int n = snprintf(line, sizeof(line),
                         "talon: log sink %s: giving up at shutdown after write errors (%s); "
                         "%llu records dropped in total\n",
                         s->path, strerror(s->last_errno),
                         (unsigned long long)atomic_load(&s->dropped));
        if (n > 0 && write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0) {
            /* nothing left to report to */
        }
    }
}

static void *writer_main(void *arg)
{
    int efd = *(int *)arg;
    log_writer_mark_thread();
    for (;;) {
        struct pollfd pfd = { .fd = efd, .events = POLLIN };
        bool stopping = atomic_load(&stop_requested);
        if (!stopping && poll(&pfd, 1, poll_timeout_ms(log_now_monotonic_ns())) > 0) {
            uint64_t n;
            if (read(efd, &n, sizeof(n)) < 0) {
                /* EAGAIN: another wakeup consumed it */
            }
        }
        atomic_store(&wake_pending, false);
        stopping = atomic_load(&stop_requested);

        int64_t now = log_now_monotonic_ns();
        if (atomic_exchange(&reopen_requested, false)) {
            for (talon_sink *s = log_sink_list(); s; s = s->next) {
                if (s->kind == SINK_FILE)
                    log_reopen_sink(s);
            }
        }
        /* Before the sinks are served, so these counts are written now. */
        log_limit_report_pending(now, stopping);
        for (talon_sink *s = log_sink_list(); s; s = s->next)
            sink_service(s, now, stopping);
        for (talon_sink *s = log_sink_list(); s; s = s->next) {
            report_drops(s, now, stopping);
            if (s->kind == SINK_FILE)
                log_rotate_report_pending(s, stopping ? INT64_MAX : now);
            else if (s->kind == SINK_SYSLOG)
                log_syslog_report_pending(s);
        }

        if (stopping) {
            /* The reports above may have appended lines: drain them too.
             * Bounded, because a sink that keeps failing is given up. */
            for (int round = 0; round < 3 && !all_settled(); round++) {
                for (talon_sink *s = log_sink_list(); s; s = s->next)
                    sink_service(s, log_now_monotonic_ns(), true);
            }
            give_up_held();
            break;
        }
    }
    log_sink_forget_thread_slots();
    return NULL;
}

/* Start a thread with every signal blocked, so signals go to the
 * application's threads and a closed pipe gives EPIPE instead of SIGPIPE. */
int log_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int rc = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return -rc;
}

int log_writer_start(void)
{
    static int thread_fd;
    int rc = 0;
    pthread_mutex_lock(&writer_lock);
    if (writer_running)
        goto out;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        rc = -errno;
        goto out;
    }
    thread_fd = efd;
    atomic_store(&stop_requested, false);
    atomic_store(&wake_pending, false);
    atomic_store(&wake_fd, efd);
    rc = log_thread_create(&writer_thread, writer_main, &thread_fd);
    if (rc < 0) {
        atomic_store(&wake_fd, -1);
        close(efd);
        goto out;
    }
    writer_running = true;
out:
    pthread_mutex_unlock(&writer_lock);
    return rc;
}

void log_writer_stop(void)
{
    pthread_mutex_lock(&writer_lock);
    if (!writer_running)
        goto out;
    atomic_store(&stop_requested, true);
    int efd = atomic_load(&wake_fd);
    uint64_t one = 1;
    if (write(efd, &one, sizeof(one)) < 0) {
        /* the counter is already non-zero */
    }
    pthread_join(writer_thread, NULL);
    atomic_store(&wake_fd, -1);
    close(efd);
    writer_running = false;
out:
    pthread_mutex_unlock(&writer_lock);
}
