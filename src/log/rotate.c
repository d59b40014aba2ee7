/* Rotation and reopening of file sinks, and gzip of rotated files.
 *
 * The writer thread rotates between two batches, so every line lands whole
 * in exactly one file. Names follow logrotate with delaycompress:
 * access.log is renamed access.log.1, which stays uncompressed for one
 * rotation (a reader may still hold it open); older files are access.log.2.gz
 * up to access.log.<keep>.gz, and the oldest is deleted. Compression runs on
 * a separate thread so the writer never waits for zlib; a rotation waits
 * (the current file keeps growing) while the previous rotated file of the
 * same sink is still being compressed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "log/log_internal.h"

#define NS_PER_S 1000000000LL

typedef struct gzip_job {
    struct gzip_job *next;
    talon_sink *sink;
    mode_t mode;
    char src[PATH_MAX];
    char dst[PATH_MAX];
} gzip_job;

static pthread_mutex_t gzip_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gzip_cond = PTHREAD_COND_INITIALIZER;
static gzip_job *gzip_head;
static gzip_job *gzip_tail;
static pthread_t gzip_thread;
static bool gzip_running;
static bool gzip_stopping;

void log_rotate_schedule(talon_sink *s, int64_t now_ns)
{
    unsigned interval = s->opts.rotate_interval_s;
    if (interval == 0) {
        s->next_rotate_s = 0;
        return;
    }
    /* Boundaries are multiples of the interval since the epoch (UTC), so a
     * daily rotation happens at midnight UTC. */
    int64_t now_s = now_ns / NS_PER_S;
    s->next_rotate_s = (now_s / interval + 1) * interval;
}

bool log_rotate_due(talon_sink *s, size_t incoming, int64_t now_mono_ns)
{
    (void)now_mono_ns;
    if (s->kind != SINK_FILE || s->fd < 0)
        return false;
    bool due = false;
    if (s->opts.rotate_size && s->file_size > 0 && s->file_size + incoming > s->opts.rotate_size)
        due = true;
    if (s->next_rotate_s) {
        int64_t now = log_now_realtime_ns();
        if (now / NS_PER_S >= s->next_rotate_s) {
            if (s->file_size == 0)
                log_rotate_schedule(s, now); /* nothing to rotate this time */
            else
                due = true;
        }
    }
    if (due && atomic_load(&s->gzip_pending) > 0)
        return false; /* retried after the compressor is done */
    if (due && s->rotate_retry_ns != 0 && log_now_monotonic_ns() < s->rotate_retry_ns)
        return false; /* a failed rotation is retried once a second */
    return due;
}

static void rotated_name(char *buf, size_t cap, const char *path, unsigned n, bool gz)
{
    snprintf(buf, cap, "%s.%u%s", path, n, gz ? ".gz" : "");
}

/* Rename from to to when from exists. Returns 0 or a negative errno. */
static int rename_if_exists(const char *from, const char *to)
{
    if (rename(from, to) == 0 || errno == ENOENT)
        return 0;
    return -errno;
}

static void gzip_enqueue(talon_sink *s, const char *src, const char *dst);

/* Shift path.N(.gz) to path.N+1(.gz), deleting the oldest beyond keep.
 * Each step is checked, and the first failure stops the shift, so a
 * failure costs at most the oldest file. */
static int shift_rotated(talon_sink *s)
{
    char from[PATH_MAX], to[PATH_MAX];
    unsigned keep = s->opts.rotate_keep;
    for (int gz = 0; gz <= 1; gz++) {
        rotated_name(to, sizeof(to), s->path, keep, gz);
        if (unlink(to) < 0 && errno != ENOENT)
            return -errno;
    }
    for (unsigned n = keep - 1; n >= 1; n--) {
        for (int gz = 0; gz <= 1; gz++) {
            rotated_name(from, sizeof(from), s->path, n, gz);
            rotated_name(to, sizeof(to), s->path, n + 1, gz);
            int rc = rename_if_exists(from, to);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Report a failed rotation at most once a second, with the failures held
 * back since the last line; log_rotate_report_pending() reports a count
 * that no later failure brought out. */
static void report_rotation_failure(talon_sink *s, int err)
{
    int64_t now = log_now_monotonic_ns();
    s->rotate_failures++;
    s->rotate_last_errno = err;
    if (s->rotate_report_ns != 0 && now - s->rotate_report_ns < NS_PER_S) {
        s->rotate_unreported++;
        return;
    }
    s->rotate_report_ns = now;
    char more[64] = "";
    if (s->rotate_unreported > 0)
        snprintf(more, sizeof(more), " (%u more since the last message)", s->rotate_unreported);
    s->rotate_unreported = 0;
    log_report(TALON_LOG_ERROR, "log sink %s: rotation failed: %s%s; still writing to the current "
               "file, retrying every second (%u failures in a row)",
               s->path, strerror(err), more, s->rotate_failures);
}

void log_rotate_report_pending(talon_sink *s, int64_t now_mono_ns)
{
    if (s->rotate_unreported == 0 || now_mono_ns - s->rotate_report_ns < NS_PER_S)
        return;
    s->rotate_report_ns = now_mono_ns;
    log_report(TALON_LOG_ERROR, "log sink %s: rotation failed %u more times in the last second "
               "(last error: %s)", s->path, s->rotate_unreported, strerror(s->rotate_last_errno));
    s->rotate_unreported = 0;
}

/* Open a fresh file at the sink's path and make it current. */
static int swap_in_new_file(talon_sink *s, bool *created)
{
    char err[512];
    dev_t dev;
    ino_t ino;
    uint64_t size;
    int fd = log_sink_open_fd(s->path, s->opts.mode, created, &dev, &ino, &size, err, sizeof(err));
    if (fd < 0) {
        log_report(TALON_LOG_ERROR, "log sink %s: %s; still writing to the previous file", s->path, err);
        return fd;
    }
    close(s->fd);
    s->fd = fd;
    s->dev = dev;
    s->ino = ino;
    s->file_size = size;
    return 0;
}

void log_rotate(talon_sink *s, int64_t now_mono_ns)
{
    (void)now_mono_ns;
    char first[PATH_MAX];
    int rc = 0;
    log_rotate_schedule(s, log_now_realtime_ns());

    /* Renaming the path moves whatever it names now. When the open file was
     * moved or removed (without SIGHUP), the path names another file or
     * none, and shifting the kept files would lose one per attempt. Whoever
     * moved the file rotated it: start a new file and leave the kept ones. */
    struct stat st;
    if (lstat(s->path, &st) < 0 || st.st_dev != s->dev || st.st_ino != s->ino) {
        bool created = false;
        if (swap_in_new_file(s, &created) == 0)
            log_report(TALON_LOG_WARN, "log sink %s: the open file was moved or removed, so it was "
                       "not rotated; writing to a new file, kept files unchanged", s->path);
        return;
    }

    if (s->opts.rotate_keep == 0) {
        if (unlink(s->path) < 0 && errno != ENOENT)
            rc = -errno;
    } else {
        rc = shift_rotated(s);
        if (rc == 0) {
            rotated_name(first, sizeof(first), s->path, 1, false);
            if (rename(s->path, first) < 0)
                rc = -errno;
        }
    }
    if (rc < 0) {
        s->rotate_retry_ns = log_now_monotonic_ns() + NS_PER_S;
        report_rotation_failure(s, -rc);
        return;
    }
    s->rotate_retry_ns = 0;
    s->rotate_failures = 0;
    bool created = false;
    if (swap_in_new_file(s, &created) < 0)
        return;
    log_report(TALON_LOG_INFO, "log sink %s: rotated, the previous file is %s", s->path,
               s->opts.rotate_keep ? first : "deleted (rotate_keep = 0)");

    if (s->opts.rotate_gzip && s->opts.rotate_keep >= 2) {
        char src[PATH_MAX], dst[PATH_MAX];
        rotated_name(src, sizeof(src), s->path, 2, false);
        rotated_name(dst, sizeof(dst), s->path, 2, true);
        if (access(src, F_OK) == 0)
            gzip_enqueue(s, src, dst);
    }
}

void log_reopen_sink(talon_sink *s)
{
    if (s->kind != SINK_FILE)
        return;
    struct stat st;
    bool moved = stat(s->path, &st) < 0 || st.st_dev != s->dev || st.st_ino != s->ino;
    bool created = false;
    if (swap_in_new_file(s, &created) < 0)
        return;
    if (created)
        log_report(TALON_LOG_INFO, "log sink %s: reopened; the file was missing, created it", s->path);
    else if (moved)
        log_report(TALON_LOG_INFO, "log sink %s: reopened; the path now names another file", s->path);
}

/* Compress src into dst (through dst.tmp, with the sink's mode) and remove
 * src. Returns 0 or a negative errno with err set. */
static int gzip_file(const char *src, const char *dst, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    /* No symbolic links on either side: a link planted in the log directory
     * must not copy another file into a log archive, or truncate one. */
    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0) {
        int e = errno;
        if (e == ELOOP)
            snprintf(err, errlen, "refusing to compress %s: it is a symbolic link", src);
        else
            snprintf(err, errlen, "cannot open %s: %s", src, strerror(e));
        return -e;
    }
    unlink(tmp); /* left by a compression that was interrupted */
    int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (out < 0 || fchmod(out, mode) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(e));
        if (out >= 0)
            close(out);
        close(in);
        return -e;
    }
    gzFile gz = gzdopen(out, "wb6");
    if (!gz) {
        snprintf(err, errlen, "cannot start zlib on %s", tmp);
        close(out);
        close(in);
        unlink(tmp);
        return -ENOMEM;
    }
    int rc = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot read %s: %s", src, strerror(-rc));
            break;
        }
        if (n == 0)
            break;
        if (gzwrite(gz, buf, (unsigned)n) != (int)n) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            rc = zerr == Z_ERRNO ? -errno : -EIO;
            snprintf(err, errlen, "cannot write %s: %s", tmp, zerr == Z_ERRNO ? strerror(-rc) : msg);
            break;
        }
    }
    close(in);
    if (gzclose(gz) != Z_OK && rc == 0) { /* closes out */
        rc = -EIO;
        snprintf(err, errlen, "cannot finish %s", tmp);
    }
    if (rc == 0 && rename(tmp, dst) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, dst, strerror(-rc));
    }
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    unlink(src);
    return 0;
}

static void *gzip_main(void *arg)
{
    (void)arg;
    log_writer_mark_thread(); /* its reports must never block on a sink */
    pthread_mutex_lock(&gzip_lock);
    for (;;) {
        while (!gzip_head && !gzip_stopping)
            pthread_cond_wait(&gzip_cond, &gzip_lock);
        gzip_job *job = gzip_head;
        if (!job)
            break; /* stopping and the queue is empty */
        gzip_head = job->next;
        if (!gzip_head)
            gzip_tail = NULL;
        pthread_mutex_unlock(&gzip_lock);

        char err[PATH_MAX + 128];
        if (gzip_file(job->src, job->dst, job->mode, err, sizeof(err)) < 0)
            log_report(TALON_LOG_ERROR, "log sink %s: gzip of a rotated file failed: %s; it stays uncompressed",
                       job->sink->path, err);
        atomic_fetch_sub(&job->sink->gzip_pending, 1);
        free(job);
        pthread_mutex_lock(&gzip_lock);
    }
    pthread_mutex_unlock(&gzip_lock);
    return NULL;
}

static void gzip_enqueue(talon_sink *s, const char *src, const char *dst)
{
    gzip_job *job = calloc(1, sizeof(*job));
    if (!job) {
        log_report(TALON_LOG_ERROR, "log sink %s: out of memory; %s stays uncompressed", s->path, src);
        return;
    }
    job->sink = s;
    job->mode = s->opts.mode;
    snprintf(job->src, sizeof(job->src), "%s", src);
    snprintf(job->dst, sizeof(job->dst), "%s", dst);

    pthread_mutex_lock(&gzip_lock);
    if (!gzip_running) {
        gzip_stopping = false;
        int rc = log_thread_create(&gzip_thread, gzip_main, NULL);
        if (rc < 0) {
            pthread_mutex_unlock(&gzip_lock);
            log_report(TALON_LOG_ERROR, "log sink %s: cannot start the gzip thread: %s; %s stays uncompressed",
                       s->path, strerror(-rc), src);
            free(job);
            return;
        }
        gzip_running = true;
    }
    atomic_fetch_add(&s->gzip_pending, 1);
    if (gzip_tail)
        gzip_tail->next = job;
    else
        gzip_head = job;
    gzip_tail = job;
    pthread_cond_signal(&gzip_cond);
    pthread_mutex_unlock(&gzip_lock);
}

void log_gzip_stop(void)
{
    pthread_mutex_lock(&gzip_lock);
    if (!gzip_running) {
        pthread_mutex_unlock(&gzip_lock);
        return;
    }
    gzip_stopping = true;
    pthread_cond_signal(&gzip_cond);
    pthread_mutex_unlock(&gzip_lock);
    pthread_join(gzip_thread, NULL);
    pthread_mutex_lock(&gzip_lock);
    gzip_running = false;
    pthread_mutex_unlock(&gzip_lock);
}
