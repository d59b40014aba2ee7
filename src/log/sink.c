/* Sinks: bounded in-memory buffers of whole lines, drained by the writer.
 *
 * Buffering design. A caller formats a record straight into its own chunk
 * of the sink, its slot, without taking a lock (log_sink_append_record()).
 * When the logger has several sinks, or the line does not fit, it formats
 * into its thread-local buffer (logger.c) and copies the line into the
 * chunk (log_sink_append()). The owner marks the slot busy around the
 * formatting or the memcpy. Another thread takes a slot's chunk only under the sink's mutex
 * and once the slot is not busy (log_sink_collect_locked()). A full chunk
 * goes, under the mutex, on the list that the writer thread writes. The
 * writer wakes once buffer_size bytes are queued, and at every flush
 * interval it also collects the chunks that threads are still filling.
 * Collected chunks are merged into one by the time of each line (a mark
 * after the data of the chunk), so lines logged at a moderate rate reach
 * the file in time order. A thread's lines always keep their order. A
 * chunk that a thread fills is queued as it is. So under heavy load, lines
 * of different threads can be out of time order by up to the flush
 * interval, as in nginx's buffered access log written by several workers.
 *
 * The previous design copied every line into one shared chunk under the
 * sink's mutex. bench/log_buffering.c measured the difference at 63-67 ns
 * per line shared and 28-32 ns per thread with 4 threads (120-byte lines),
 * and no difference with one. The whole record path was measured too, as
 * the CPU time of the process per talon_log() of a short text record to a
 * file, in 6 runs each on 2 vCPUs shared with other work. Per-thread
 * chunks took 106-112 ns against 112-153 ns with 2 threads, and 106-126
 * ns against 142-287 ns with 4. In talon-bench-app under wrk -t2 -c64
 * (three lines per request) the difference was within the run-to-run
 * noise of about 0.2 µs per request.
 *
 * Memory: the chunks in use (one of buffer_size, at most 64 KiB, per thread
 * that logs), queued or kept empty for reuse take at most max_buffered
 * bytes per sink. Each line takes 16 bytes of its chunk for its mark.
 * Only a line longer than max_buffered gets a chunk past it, when nothing
 * else is buffered. A merge allocates the merged chunk before it frees the
 * collected ones, so for that moment memory can exceed max_buffered by up
 * to the collected bytes. When a line does not fit, the overflow
 * policy applies: block waits for the writer, drop counts the record. The
 * writer thread itself never blocks on a sink, and neither does a caller
 * while the sink's file is failing: waiting on a broken disk would stall
 * every request.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log/log_internal.h"

/* Bytes of a thread's chunk at most. Each thread that logs to a sink has
 * one, counted in max_buffered. */
#define SLOT_CHUNK_MAX (64 * 1024)

static pthread_mutex_t sinks_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(talon_sink *) sinks;

/* ---- The fence between an append and a collection ---- */

/* True once the process is registered for membarrier()'s private expedited
 * command. Then an owner's append needs no fence instruction of its own,
 * because the collector, which runs about once per flush interval, makes
 * every thread of the process execute a full barrier instead (the
 * asymmetric Dekker pattern of liburcu and folly::asymmetricHeavyBarrier).
 * perf annotate put about a quarter of log_sink_append()'s samples on the
 * owner's locked instruction in talon-bench-app. Set once, in the first
 * sink_new(), before any sink is published. ThreadSanitizer does not know
 * membarrier(), so its builds keep the fences. */
static bool light_fence;
static pthread_once_t light_fence_once = PTHREAD_ONCE_INIT;

#if defined(__SANITIZE_THREAD__)
#define LOG_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LOG_TSAN 1
#endif
#endif

static void light_fence_register(void)
{
#if !defined(LOG_TSAN) && defined(SYS_membarrier)
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
        light_fence = true;
#endif
}

/* The owner's side: order its store to busy before its load of cur. */
static inline void owner_fence(void)
{
    if (light_fence)
        atomic_signal_fence(memory_order_seq_cst);
    else
        atomic_thread_fence(memory_order_seq_cst);
}

/* The collector's side, after it cleared the cur of slots and before it
 * reads their busy. Returns false when the barrier failed, and then no
 * owner's store to busy is known to be visible. NOTE: the collector then
 * leaves running threads' chunks until they fill, and talon_sink_flush()
 * returns without their lines. Linux documents no such failure for a
 * registered process, and a child after fork() stays registered. */
static bool collector_fence(void)
{
#if defined(SYS_membarrier)
    if (light_fence)
        return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
    return true; /* the owner's seq_cst fence pairs with the seq_cst exchange */
}

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

/* The time and end offset of a line in a thread's chunk. A chunk's marks
 * are stored backwards from the end of its data, so that the chunks of
 * several threads can be merged in the order their lines were logged. */
typedef struct log_mark {
    int64_t time_ns;
    size_t end;
} log_mark;

/* Round a chunk size up so that its marks are aligned. */
static size_t round_to_mark(size_t n)
{
    return (n + _Alignof(log_mark) - 1) / _Alignof(log_mark) * _Alignof(log_mark);
}

static void chunks_free(log_chunk *c)
{
    while (c) {
        log_chunk *next = c->next;
        free(c);
        c = next;
    }
}

static talon_sink *sink_new(log_sink_kind kind, const char *path, const talon_sink_options *opts)
{
    pthread_once(&light_fence_once, light_fence_register);
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
    s->slot_chunk_size = round_to_mark(s->opts.buffer_size < SLOT_CHUNK_MAX ? s->opts.buffer_size
                                                                            : SLOT_CHUNK_MAX);
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
    while (s->slots) {
        log_slot *slot = s->slots;
        s->slots = slot->next;
        free(atomic_load(&slot->cur));
        free(slot);
    }
    chunks_free(s->full_head);
    chunks_free(s->exited);
    chunks_free(s->held);
    chunks_free(s->free_chunks);
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

/* End the unfinished line that a write cut short by a full disk left at
 * the end of the file, so the first new line is not joined to it. Call
 * only at creation: on a reopen, a held batch may still complete the line.
 * Returns 1 when a newline was added, 0 when none was needed, or -errno. */
static int end_partial_line(talon_sink *s)
{
    if (s->file_size == 0)
        return 0;

    /* The sink's descriptor is write-only: read the last byte through a
     * second descriptor, checked to be the same file. */
    int rfd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (rfd < 0)
        return 0;
    struct stat st;
    bool same = fstat(rfd, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino;
    char last = '\n';
    if (!same || pread(rfd, &last, 1, (off_t)s->file_size - 1) != 1)
        last = '\n';
    close(rfd);
    if (last == '\n')
        return 0;

    if (write(s->fd, "\n", 1) != 1)
        return errno ? -errno : -EIO;
    s->file_size++;
    return 1;
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
    s->opened_partial = end_partial_line(s);
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

/* ---- Chunks ---- */

/* Take an empty chunk of at least need bytes, reusing a kept one when it
 * fits, and count it in mem. Call with the sink's lock held. */
static log_chunk *chunk_take(talon_sink *s, size_t need)
{
    need = round_to_mark(need);
    log_chunk *c = s->free_chunks;
    if (c && c->cap >= need) {
        s->free_chunks = c->next;
        s->free_bytes -= c->cap;
    } else {
        /* Kept chunks too small for this line make room for it. */
        while (s->free_chunks && s->mem + s->free_bytes + need > s->opts.max_buffered) {
            c = s->free_chunks;
            s->free_chunks = c->next;
            s->free_bytes -= c->cap;
            free(c);
        }
        c = malloc(sizeof(*c) + need);
        if (!c)
            return NULL;
        c->cap = need;
    }
    c->next = NULL;
    c->len = 0;
    c->lines = 0;
    s->mem += c->cap;
    return c;
}

void log_sink_release_chunk_locked(talon_sink *s, log_chunk *c)
{
    s->mem -= c->cap;
    /* Keeping chunks saves the page faults that perf showed when lines were
     * copied into freshly allocated ones. Kept and used chunks together
     * stay within max_buffered. */
    if (c->cap == s->slot_chunk_size && s->mem + s->free_bytes + c->cap <= s->opts.max_buffered) {
        c->next = s->free_chunks;
        s->free_chunks = c;
        s->free_bytes += c->cap;
    } else {
        free(c);
    }
}

/* Append a chunk to the full list, or give it back when it is empty. Call
 * with the lock held. Returns true when the writer should be woken. */
static bool chunk_queue_locked(talon_sink *s, log_chunk *c)
{
    if (c->len == 0) {
        log_sink_release_chunk_locked(s, c);
        return false;
    }
    c->next = NULL;
    if (s->full_tail)
        s->full_tail->next = c;
    else
        s->full_head = c;
    s->full_tail = c;
    s->appended += c->len;
    s->full_bytes += c->len;
    return s->full_bytes >= s->opts.buffer_size;
}

static inline log_mark *chunk_mark(const log_chunk *c, uint64_t line)
{
    return (log_mark *)(c->data + c->cap) - (line + 1);
}

/* True when a line of len bytes and its mark fit in c. */
static inline bool chunk_fits(const log_chunk *c, size_t len)
{
    return c->cap - c->len - c->lines * sizeof(log_mark) >= len + sizeof(log_mark);
}

static void chunk_put(log_chunk *c, const char *prefix, size_t plen, const char *line, size_t body,
                      int64_t time_ns)
{
    memcpy(c->data + c->len, prefix, plen);
    memcpy(c->data + c->len + plen, line, body);
    c->len += plen + body;
    *chunk_mark(c, c->lines) = (log_mark){ .time_ns = time_ns, .end = c->len };
    c->lines++;
}

/* Ask for the cache lines that the next line of c and its mark will be
 * written to. The writer thread on another CPU read them last, so a store
 * to them misses the cache, and the miss stalled the next locked
 * instruction of the request path: perf put about 100 ns per request on
 * talon_req_unref() in talon-bench-app, and about 15 ns with this prefetch
 * and without the owner's fence (one perf run each). Always inlined,
 * because gcc 12 deems a function of prefetches alone pure and drops the
 * call. */
static inline __attribute__((always_inline)) void chunk_prefetch(const log_chunk *c)
{
    const char *next = c->data + c->len;
    size_t room = c->cap - c->len - c->lines * sizeof(log_mark);

    for (size_t off = 0; off < 256 && off < room; off += 64)
        __builtin_prefetch(next + off, 1, 3);
    if (room >= sizeof(log_mark))
        __builtin_prefetch(chunk_mark(c, c->lines), 1, 3);
}

/* Queue the chunks src[0..n) of different threads as one chunk whose lines
 * are in time order, each chunk's lines staying in their own order. Call
 * with the lock held. Without memory for the merged chunk they are queued
 * as they are. */
static void chunks_merge_queue_locked(talon_sink *s, log_chunk **src, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += src[i]->len;
    log_chunk *m = n > 1 ? malloc(sizeof(*m) + total) : NULL;
    uint64_t *next = m ? calloc(n, sizeof(*next)) : NULL; /* each chunk's next line */
    if (!next) {
        free(m);
        for (size_t i = 0; i < n; i++)
            chunk_queue_locked(s, src[i]);
        return;
    }
    m->next = NULL;
    m->len = 0;
    m->cap = total;
    m->lines = 0;
    s->mem += total;

    for (;;) {
        /* The chunk whose next line is the oldest, and the oldest next
         * line of the other chunks. */
        size_t best = n;
        int64_t best_ns = 0, other_ns = INT64_MAX;
        for (size_t i = 0; i < n; i++) {
            if (next[i] == src[i]->lines)
                continue;
            int64_t t = chunk_mark(src[i], next[i])->time_ns;
            if (best == n || t < best_ns) {
                if (best != n && best_ns < other_ns)
                    other_ns = best_ns;
                best = i;
                best_ns = t;
            } else if (t < other_ns) {
                other_ns = t;
            }
        }
        if (best == n)
            break;
        /* Copy the run of its lines that come before any other chunk's. */
        log_chunk *c = src[best];
        uint64_t first = next[best], last = first + 1;
        while (last < c->lines && chunk_mark(c, last)->time_ns <= other_ns)
            last++;
        size_t start = first ? chunk_mark(c, first - 1)->end : 0;
        size_t end = chunk_mark(c, last - 1)->end;
        memcpy(m->data + m->len, c->data + start, end - start);
        m->len += end - start;
        m->lines += last - first;
        next[best] = last;
    }
    free(next);
    for (size_t i = 0; i < n; i++)
        log_sink_release_chunk_locked(s, src[i]);
    chunk_queue_locked(s, m);
}

/* ---- Slots: one chunk per thread and sink ---- */

/* The calling thread's slots, by sink. A table is stale once the sinks it
 * names were freed (log_sink_free_all() moves sinks_epoch on), and is then
 * emptied without reading them. */
typedef struct slot_ref {
    talon_sink *sink;
    log_slot *slot;
} slot_ref;

typedef struct slot_table {
    uint64_t epoch;
    size_t count;
    size_t cap;
    slot_ref *refs;
} slot_table;

static atomic_uint_fast64_t sinks_epoch;
static __thread slot_table *thread_slots;
static pthread_key_t slots_key;
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

/* Wait until the owner of slot is not appending. The owner's append is a
 * memcpy, so this returns at once unless the owner was preempted in it.
 * Returns false when it still is after a million polls (64 spinning, the
 * rest with sched_yield()). */
static bool slot_wait_idle(log_slot *slot)
{
    for (unsigned i = 0; i < 1000000; i++) {
        if (!atomic_load_explicit(&slot->busy, memory_order_seq_cst))
            return true;
        if (i >= 64)
            sched_yield();
    }
    return false;
}

/* Add c to the chunks that collection merges, growing the array from the
 * caller's stack array when needed. Without memory c is queued alone. */
static void merge_list_add(talon_sink *s, log_chunk ***list, size_t *count, size_t *cap,
                           log_chunk **stack, log_chunk *c)
{
    if (*count == *cap) {
        size_t ncap = *cap * 2;
        log_chunk **grown = malloc(ncap * sizeof(*grown));
        if (!grown) {
            chunk_queue_locked(s, c);
            return;
        }
        memcpy(grown, *list, *count * sizeof(*grown));
        if (*list != stack)
            free(*list);
        *list = grown;
        *cap = ncap;
    }
    (*list)[(*count)++] = c;
}

void log_sink_collect_locked(talon_sink *s)
{
    log_chunk *stack[16], **list = stack;
    size_t count = 0, cap = sizeof(stack) / sizeof(stack[0]);

    while (s->exited) {
        log_chunk *c = s->exited;
        s->exited = c->next;
        merge_list_add(s, &list, &count, &cap, stack, c);
    }
    /* Dekker-style with the owner (log_sink_append): the owner sets busy
     * and then reads cur, and this clears cur and then reads busy, with a
     * fence between on each side (owner_fence(), collector_fence()). So
     * either the owner reads NULL and takes the lock, or this reads busy as
     * true and waits for the append to end. Every slot is cleared first,
     * so that one collector fence serves them all. */
    bool any_collected = false;
    for (log_slot *slot = s->slots; slot; slot = slot->next) {
        slot->collected = NULL;
        if (!atomic_load_explicit(&slot->cur, memory_order_relaxed))
            continue;
        slot->collected = atomic_exchange_explicit(&slot->cur, NULL, memory_order_seq_cst);
        any_collected |= slot->collected != NULL;
    }
    bool fenced = any_collected && collector_fence();
    for (log_slot *slot = s->slots; slot; slot = slot->next) {
        log_chunk *c = slot->collected;
        if (!c)
            continue;
        slot->collected = NULL;
        if (!fenced || !slot_wait_idle(slot) || c->len == 0) {
            /* Only this thread, holding the lock, can change cur now. */
            atomic_store_explicit(&slot->cur, c, memory_order_release);
            continue;
        }
        merge_list_add(s, &list, &count, &cap, stack, c);
    }
    if (count)
        chunks_merge_queue_locked(s, list, count);
    if (list != stack)
        free(list);
}

/* At thread exit: hand the thread's chunks to their sinks and free its
 * slots, unless the sinks were freed since. */
static void slots_thread_exit(void *arg)
{
    slot_table *t = arg;
    pthread_mutex_lock(&sinks_lock);
    if (t->epoch == atomic_load(&sinks_epoch)) {
        for (size_t i = 0; i < t->count; i++) {
            talon_sink *s = t->refs[i].sink;
            log_slot *slot = t->refs[i].slot;
            pthread_mutex_lock(&s->lock);
            /* Merged with the other threads' lines at the next collection. */
            log_chunk *c = atomic_exchange(&slot->cur, NULL);
            if (c && c->len > 0) {
                c->next = s->exited;
                s->exited = c;
            } else if (c) {
                log_sink_release_chunk_locked(s, c);
            }
            for (log_slot **p = &s->slots; *p; p = &(*p)->next) {
                if (*p == slot) {
                    *p = slot->next;
                    break;
                }
            }
            pthread_mutex_unlock(&s->lock);
            free(slot);
        }
    }
    pthread_mutex_unlock(&sinks_lock);
    thread_slots = NULL;
    free(t->refs);
    free(t);
}

void log_sink_forget_thread_slots(void)
{
    slot_table *t = thread_slots;
    if (!t)
        return;
    pthread_setspecific(slots_key, NULL);
    thread_slots = NULL;
    free(t->refs);
    free(t);
}

static void slots_key_create(void)
{
    pthread_key_create(&slots_key, slots_thread_exit);
}

/* Create the calling thread's slot of s. Returns NULL when out of memory. */
static log_slot *slot_create(talon_sink *s)
{
    slot_table *t = thread_slots;
    if (!t) {
        pthread_once(&slots_once, slots_key_create);
        t = calloc(1, sizeof(*t));
        if (!t || pthread_setspecific(slots_key, t) != 0) {
            free(t);
            return NULL;
        }
        t->epoch = atomic_load(&sinks_epoch);
        thread_slots = t;
    }
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4;
        slot_ref *refs = realloc(t->refs, cap * sizeof(*refs));
        if (!refs)
            return NULL;
        t->refs = refs;
        t->cap = cap;
    }
    log_slot *slot = aligned_alloc(_Alignof(log_slot), sizeof(log_slot));
    if (!slot)
        return NULL;
    atomic_init(&slot->cur, NULL);
    atomic_init(&slot->busy, false);
    slot->collected = NULL;
    pthread_mutex_lock(&s->lock);
    slot->next = s->slots;
    s->slots = slot;
    pthread_mutex_unlock(&s->lock);
    t->refs[t->count++] = (slot_ref){ .sink = s, .slot = slot };
    return slot;
}

/* The calling thread's slot of s, created on first use. */
static inline log_slot *slot_get(talon_sink *s)
{
    slot_table *t = thread_slots;
    if (t) {
        if (t->epoch != atomic_load_explicit(&sinks_epoch, memory_order_relaxed)) {
            /* The sinks of these slots were freed, with the slots. */
            t->count = 0;
            t->epoch = atomic_load(&sinks_epoch);
        }
        for (size_t i = 0; i < t->count; i++) {
            if (t->refs[i].sink == s)
                return t->refs[i].slot;
        }
    }
    return slot_create(s);
}

/* ---- Appending ---- */

/* The slow path of log_sink_append(): the slot's chunk is missing or full.
 * Runs under the sink's lock, where no other thread touches the slot. */
static void append_locked(talon_sink *s, log_slot *slot, const char *prefix, size_t plen,
                          const char *line, size_t body, int64_t time_ns)
{
    size_t len = plen + body;
    bool wake = false;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        log_chunk *c = atomic_load_explicit(&slot->cur, memory_order_relaxed);
        if (c && chunk_fits(c, len)) {
            chunk_put(c, prefix, plen, line, body, time_ns);
            break;
        }
        if (c) {
            atomic_store_explicit(&slot->cur, NULL, memory_order_relaxed);
            wake |= chunk_queue_locked(s, c);
        }

        size_t need = len + sizeof(log_mark);
        if (need < s->slot_chunk_size)
            need = s->slot_chunk_size;
        if (s->mem == 0 || s->mem + need <= s->opts.max_buffered) {
            c = chunk_take(s, need);
            if (!c) {
                log_sink_count_drop(s);
                break;
            }
            atomic_store_explicit(&slot->cur, c, memory_order_release);
            continue;
        }

        /* Full: the overflow policy decides. Other threads' chunks may hold
         * part of max_buffered, so the writer is asked, once per pass, to
         * collect and write them. A failing sink has nothing to gain. */
        if (!s->failing && !s->flush_requested) {
            s->flush_requested = true;
            wake = true;
        }
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

void log_sink_append(talon_sink *s, const char *line, size_t len, int64_t time_ns)
{
    char prefix[24];
    size_t plen = 0, body = len;
    /* A TCP syslog sink stores each message as its frame. */
    if (s->kind == SINK_SYSLOG) {
        plen = log_syslog_frame_prefix(s, len, prefix, &body);
        len = plen + body;
    }
    log_slot *slot = slot_get(s);
    if (!slot) {
        log_sink_count_drop(s);
        return;
    }

    /* Fast path: no lock, see log_sink_collect_locked() for the protocol. */
    atomic_store_explicit(&slot->busy, true, memory_order_relaxed);
    owner_fence();
    log_chunk *c = atomic_load_explicit(&slot->cur, memory_order_acquire);
    if (c && chunk_fits(c, len)) {
        chunk_put(c, prefix, plen, line, body, time_ns);
        chunk_prefetch(c); /* before busy is cleared: then c may be collected and freed */
        atomic_store_explicit(&slot->busy, false, memory_order_release);
        return;
    }
    atomic_store_explicit(&slot->busy, false, memory_order_release);
    append_locked(s, slot, prefix, plen, line, body, time_ns);
}

size_t log_sink_append_record(talon_sink *s, const talon_log_format *fmt,
                              const talon_log_record *rec)
{
    if (s->kind == SINK_SYSLOG)
        return 0;
    log_slot *slot = slot_get(s);
    if (!slot)
        return 0;

    /* As the fast path of log_sink_append(), with the formatting inside
     * busy: a collector waits for it as for a memcpy. */
    size_t len = 0;
    atomic_store_explicit(&slot->busy, true, memory_order_relaxed);
    owner_fence();
    log_chunk *c = atomic_load_explicit(&slot->cur, memory_order_acquire);
    size_t room = c ? c->cap - c->len - c->lines * sizeof(log_mark) : 0;
    if (room > sizeof(log_mark)) {
        room -= sizeof(log_mark);
        len = talon_log_format_record(fmt, rec, c->data + c->len, room);
        if (len <= room) {
            c->len += len;
            *chunk_mark(c, c->lines) = (log_mark){ .time_ns = rec->time_ns, .end = c->len };
            c->lines++;
            chunk_prefetch(c);
        } else {
            len = 0; /* the bytes written past c->len are not part of c */
        }
    }
    atomic_store_explicit(&slot->busy, false, memory_order_release);
    return len;
}

int talon_sink_flush(talon_sink *s)
{
    if (!s)
        return -EINVAL;
    if (log_in_writer_thread())
        return -EDEADLK;
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    log_sink_collect_locked(s);
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
    /* Threads' slot tables name these sinks: make them stale first. */
    atomic_fetch_add_explicit(&sinks_epoch, 1, memory_order_release);
    talon_sink *s = atomic_exchange(&sinks, NULL);
    while (s) {
        talon_sink *next = s->next;
        sink_destroy(s);
        s = next;
    }
    pthread_mutex_unlock(&sinks_lock);
}
