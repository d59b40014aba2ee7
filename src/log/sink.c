/* Sinks: bounded in-memory buffers of whole lines, drained by the writer.
 *
 * Buffering design. A caller formats a record into its thread-local buffer
 * (logger.c), then copies the line into the sink's current chunk under the
 * sink's mutex. The critical section is one memcpy. Full chunks go on a list
 * that the writer thread writes with one writev() per batch, on size (a full
 * chunk wakes the writer) and on the flush interval.
 *
 * The alternative, one buffer per thread per sink that the writer collects,
 * was measured with bench/log_buffering.c (120-byte lines, a writer thread
 * draining 256 KiB chunks to /dev/null; 2 vCPUs shared with other builds,
 * gcc 12 -O2; wall time divided by all lines):
 *   4 threads:  shared buffer + mutex 63-67 ns per line, per-thread 28-32 ns
 *   1 thread:   shared buffer + mutex 17.6 ns per line,  per-thread 16.9 ns
 * The gap only shows under contention and is small next to the whole record
 * path, 330-410 ns per record on one thread (bench/log_throughput.c, same
 * machine). The shared buffer keeps lines in the order they were
 * logged, bounds memory per sink rather than per thread, and keeps the block
 * policy and talon_sink_flush() simple, so it was chosen. The same program
 * shows why the sink list is read with one atomic load: an uncontended
 * rwlock read costs 24-28 ns per record with 4 threads, the load 0.5 ns.
 *
 * Memory: at most max_buffered bytes of chunks per sink (plus one spare
 * chunk). When a line does not fit, the overflow policy applies: block waits
 * for the writer, drop counts the record. The writer thread itself never
 * blocks on a sink, and neither does a caller while the sink's file is
 * failing: waiting on a broken disk would stall every request.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log_internal.h"

static pthread_mutex_t sinks_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(talon_sink *) sinks;

void talon_sink_options_init(talon_sink_options *opts)
{
    *opts = (talon_sink_options){
        .mode = 0640,
        .buffer_size = 256 * 1024,
        .max_buffered = 8 * 1024 * 1024,
        .flush_interval_ms = 1000,
        .overflow = TALON_OVERFLOW_BLOCK,
        .rotate_size = 0,
        .rotate_interval_s = 0,
        .rotate_keep = 7,
        .rotate_gzip = false,
    };
}

talon_sink *log_sink_list(void)
{
    return atomic_load_explicit(&sinks, memory_order_acquire);
}

/* Replace unset or inconsistent options by defaults. */
static void options_normalize(talon_sink_options *o)
{
    talon_sink_options d;
    talon_sink_options_init(&d);
    if (o->buffer_size < 4096)
        o->buffer_size = o->buffer_size ? 4096 : d.buffer_size;
    if (o->max_buffered < o->buffer_size)
        o->max_buffered = o->max_buffered ? o->buffer_size : (d.max_buffered > o->buffer_size ? d.max_buffered : o->buffer_size);
    if (o->flush_interval_ms == 0)
        o->flush_interval_ms = d.flush_interval_ms;
    if (o->overflow != TALON_OVERFLOW_DROP)
        o->overflow = TALON_OVERFLOW_BLOCK;
    /* A zeroed options struct means the defaults, not a mode-0000 file. */
    o->mode = o->mode ? o->mode & 0777 : d.mode;
}

/* Create the missing parent directories of path (mode 0750). */
static int make_parents(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return 0;
}

/* Open path for appending. A new file gets exactly mode, whatever the umask.
 * An existing regular file loses any permission bit beyond mode, unless it
 * belongs to another user: then the app log warns and writing goes on. */
int log_sink_open_fd(const char *path, mode_t mode, bool *created, dev_t *dev, ino_t *ino,
                     uint64_t *size, char *err, size_t errlen)
{
    /* O_NONBLOCK only for open(): a FIFO without a reader fails with ENXIO
     * instead of hanging; writes block as usual once it is cleared. */
    int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    bool made = false;
    int fd = open(path, flags | O_CREAT | O_EXCL, mode);
    if (fd < 0 && errno == ENOENT) {
        int rc = make_parents(path);
        if (rc < 0) {
            snprintf(err, errlen, "cannot create the directory of log file %s: %s", path, strerror(-rc));
            return rc;
        }
        fd = open(path, flags | O_CREAT | O_EXCL, mode);
    }
    /* O_NOFOLLOW: a user who can write the log directory must not make the
     * server append to, and chmod, a file of their choice through a symbolic
     * link. O_CREAT | O_EXCL above already fails on any symbolic link. */
    if (fd >= 0)
        made = true;
    else if (errno == EEXIST)
        fd = open(path, flags | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        struct stat lst;
        if (e == ELOOP && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
            snprintf(err, errlen, "refusing to open log file %s: it is a symbolic link; point the "
                     "configuration at the real file (or use stdout or - for stderr)", path);
        else
            snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(e));
        return -e;
    }

    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot set log file %s to blocking mode: %s", path, strerror(e));
        close(fd);
        return -e;
    }

    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot stat log file %s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    /* Regular files, and character devices and FIFOs (/dev/null, a pipe to
     * a log shipper). Writing log lines over a disk device or into a socket
     * file is never what the configuration meant. */
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode)) {
        snprintf(err, errlen, "refusing to open log file %s: it is not a regular file, character "
                 "device or FIFO; point the configuration at a file", path);
        close(fd);
        return -EINVAL;
    }
    if (S_ISREG(st.st_mode)) {
        mode_t want = made ? mode : (st.st_mode & mode & 0777);
        if ((st.st_mode & 07777) != want && fchmod(fd, want) < 0) {
            int e = errno;
            if (made) {
                snprintf(err, errlen, "cannot set mode %04o on log file %s: %s", (unsigned)want, path, strerror(e));
                close(fd);
                unlink(path);
                return -e;
            }
            /* Another user's file that we may only write to: keep going. */
            log_report(TALON_LOG_WARN, "log file %s has mode %04o, more than the configured %04o, "
                       "and its mode cannot be changed: %s; fix it with chmod %04o",
                       path, (unsigned)(st.st_mode & 07777), (unsigned)mode, strerror(e), (unsigned)want);
        }
    }
    if (created)
        *created = made;
    if (dev)
        *dev = st.st_dev;
    if (ino)
        *ino = st.st_ino;
    if (size)
        *size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    return fd;
}

static talon_sink *sink_new(log_sink_kind kind, const char *path, const talon_sink_options *opts)
{
    talon_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->path = strdup(path);
    if (!s->path) {
        free(s);
        return NULL;
    }
    s->kind = kind;
    if (opts)
        s->opts = *opts;
    else
        talon_sink_options_init(&s->opts);
    options_normalize(&s->opts);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->space, NULL);
    pthread_cond_init(&s->written, NULL);
    atomic_init(&s->dropped, 0);
    atomic_init(&s->gzip_pending, 0);
    s->fd = -1;
    s->last_flush_ns = log_now_monotonic_ns();
    return s;
}

static void sink_destroy(talon_sink *s)
{
    if (s->kind == SINK_FILE && s->fd >= 0)
        close(s->fd);
    log_syslog_free(s->syslog);
    free(s->cur);
    free(s->spare);
    while (s->full_head) {
        log_chunk *c = s->full_head;
        s->full_head = c->next;
        free(c);
    }
    while (s->held) {
        log_chunk *c = s->held;
        s->held = c->next;
        free(c);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->space);
    pthread_cond_destroy(&s->written);
    free(s->path);
    free(s);
}

/* Find a sink by its path. Call with sinks_lock held. */
static talon_sink *sink_find_locked(const char *path)
{
    if (strcmp(path, "-") == 0)
        path = "stderr";
    for (talon_sink *s = atomic_load(&sinks); s; s = s->next) {
        if (strcmp(s->path, path) == 0)
            return s;
    }
    return NULL;
}

talon_sink *talon_sink_find(const char *path)
{
    if (!path)
        return NULL;
    pthread_mutex_lock(&sinks_lock);
    talon_sink *s = sink_find_locked(path);
    pthread_mutex_unlock(&sinks_lock);
    return s;
}

/* Start the writer if needed and publish s. Call with sinks_lock held. On
 * failure err (which may be NULL with errlen 0) receives the cause. */
static int sink_publish(talon_sink *s, char *err, size_t errlen)
{
    int rc = log_writer_start();
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the log writer thread: %s", strerror(-rc));
        return rc;
    }
    s->next = atomic_load(&sinks);
    atomic_store_explicit(&sinks, s, memory_order_release);
    return 0;
}

int talon_sink_open_file(talon_sink **out, const char *path, const talon_sink_options *opts,
                         char *err, size_t errlen)
{
    if (!out || !path || !*path) {
        snprintf(err, errlen, "log file path is empty");
        return -EINVAL;
    }
    if (strcmp(path, "-") == 0 || strcmp(path, "stderr") == 0)
        return talon_sink_open_stderr(out, opts);
    if (strcmp(path, "stdout") == 0)
        return talon_sink_open_stdout(out, opts);
    if (talon_sink_path_is_syslog(path))
        return talon_sink_open_syslog(out, path, opts, err, errlen);

    int rc = 0;
    pthread_mutex_lock(&sinks_lock);
    talon_sink *s = sink_find_locked(path);
    if (s)
        goto out; /* one sink per file, so rotation has a single owner */

    s = sink_new(SINK_FILE, path, opts);
    if (!s) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory opening log file %s", path);
        goto out;
    }
    rc = log_sink_open_fd(path, s->opts.mode, NULL, &s->dev, &s->ino, &s->file_size, err, errlen);
    if (rc < 0)
        goto fail;
    s->fd = rc;
    log_rotate_schedule(s, log_now_realtime_ns());
    rc = sink_publish(s, err, errlen);
    if (rc < 0)
        goto fail;
    goto out;
fail:
    sink_destroy(s);
    s = NULL;
out:
    pthread_mutex_unlock(&sinks_lock);
    *out = s;
    return s ? 0 : (rc ? rc : -ENOMEM);
}

int talon_sink_open_syslog(talon_sink **out, const char *url, const talon_sink_options *opts,
                           char *err, size_t errlen)
{
    if (!out || !url) {
        snprintf(err, errlen, "syslog URL is empty");
        return -EINVAL;
    }
    int rc = 0;
    pthread_mutex_lock(&sinks_lock);
    talon_sink *s = sink_find_locked(url);
    if (s)
        goto out;
    s = sink_new(SINK_SYSLOG, url, opts);
    if (!s) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory opening syslog sink %s", url);
        goto out;
    }
    rc = log_syslog_parse(url, &s->syslog, err, errlen);
    if (rc < 0)
        goto fail;
    log_syslog_connect_at_open(s);
    rc = sink_publish(s, err, errlen);
    if (rc < 0)
        goto fail;
    goto out;
fail:
    sink_destroy(s);
    s = NULL;
out:
    pthread_mutex_unlock(&sinks_lock);
    *out = s;
    return s ? 0 : (rc ? rc : -ENOMEM);
}

static int sink_open_std(talon_sink **out, log_sink_kind kind, const char *name, int fd,
                         const talon_sink_options *opts)
{
    int rc = 0;
    pthread_mutex_lock(&sinks_lock);
    talon_sink *s = sink_find_locked(name);
    if (s)
        goto out;
    s = sink_new(kind, name, opts);
    if (!s) {
        rc = -ENOMEM;
        goto out;
    }
    s->fd = fd;
    rc = sink_publish(s, NULL, 0);
    if (rc < 0) {
        sink_destroy(s);
        s = NULL;
    }
out:
    pthread_mutex_unlock(&sinks_lock);
    if (out)
        *out = s;
    return s ? 0 : (rc ? rc : -ENOMEM);
}

int talon_sink_open_stdout(talon_sink **out, const talon_sink_options *opts)
{
    return sink_open_std(out, SINK_STDOUT, "stdout", STDOUT_FILENO, opts);
}

int talon_sink_open_stderr(talon_sink **out, const talon_sink_options *opts)
{
    return sink_open_std(out, SINK_STDERR, "stderr", STDERR_FILENO, opts);
}

uint64_t talon_sink_dropped(const talon_sink *sink)
{
    return sink ? atomic_load(&((talon_sink *)sink)->dropped) : 0;
}

void log_sink_count_drop(talon_sink *sink)
{
    atomic_fetch_add_explicit(&sink->dropped, 1, memory_order_relaxed);
}

/* Take a chunk of at least need bytes, from the spare when it fits. Call
 * with the sink's lock held. */
static log_chunk *chunk_take(talon_sink *s, size_t need)
{
    log_chunk *c = s->spare;
    if (c && c->cap >= need) {
        s->spare = NULL;
    } else {
        c = malloc(sizeof(*c) + need);
        if (!c)
            return NULL;
        c->cap = need;
    }
    c->next = NULL;
    c->len = 0;
    c->lines = 0;
    return c;
}

/* Move the current chunk to the list the writer drains. Call with the lock
 * held. Returns true when the writer should be woken. */
static bool chunk_seal(talon_sink *s)
{
    log_chunk *c = s->cur;
    if (!c)
        return false;
    s->cur = NULL;
    if (c->len == 0) {
        s->mem -= c->cap;
        if (!s->spare)
            s->spare = c;
        else
            free(c);
        return false;
    }
    if (s->full_tail)
        s->full_tail->next = c;
    else
        s->full_head = c;
    s->full_tail = c;
    return true;
}

void log_sink_append(talon_sink *s, const char *line, size_t len)
{
    bool wake = false;
    char prefix[24];
    size_t plen = 0, body = len;
    /* A TCP syslog sink stores each message as its frame. */
    if (s->kind == SINK_SYSLOG) {
        plen = log_syslog_frame_prefix(s, len, prefix, &body);
        len = plen + body;
    }
    pthread_mutex_lock(&s->lock);
    for (;;) {
        log_chunk *c = s->cur;
        if (c && c->cap - c->len >= len) {
            memcpy(c->data + c->len, prefix, plen);
            memcpy(c->data + c->len + plen, line, body);
            c->len += len;
            c->lines++;
            s->appended += len;
            break;
        }
        wake |= chunk_seal(s);

        size_t need = len > s->opts.buffer_size ? len : s->opts.buffer_size;
        if (s->mem == 0 || s->mem + need <= s->opts.max_buffered) {
            s->cur = chunk_take(s, need);
            if (!s->cur) {
                log_sink_count_drop(s);
                break;
            }
            s->mem += s->cur->cap;
            continue;
        }

        /* Full: the overflow policy decides. */
        if (s->opts.overflow == TALON_OVERFLOW_DROP || s->failing || log_in_writer_thread()) {
            log_sink_count_drop(s);
            break;
        }
        if (wake) {
            log_writer_wake();
            wake = false;
        }
        pthread_cond_wait(&s->space, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    if (wake)
        log_writer_wake();
}

int talon_sink_flush(talon_sink *s)
{
    if (!s)
        return -EINVAL;
    if (log_in_writer_thread())
        return -EDEADLK;
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    uint64_t target = s->appended;
    while (s->settled < target) {
        if (s->failing) {
            rc = -EIO;
            break;
        }
        s->flush_requested = true;
        pthread_mutex_unlock(&s->lock);
        log_writer_wake();
        pthread_mutex_lock(&s->lock);
        if (s->settled < target && !s->failing)
            pthread_cond_wait(&s->written, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void log_sink_free_all(void)
{
    pthread_mutex_lock(&sinks_lock);
    talon_sink *s = atomic_exchange(&sinks, NULL);
    while (s) {
        talon_sink *next = s->next;
        sink_destroy(s);
        s = next;
    }
    pthread_mutex_unlock(&sinks_lock);
}
