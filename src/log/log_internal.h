/* Internals shared by the logger registry, the sinks, the writer thread and
 * rotation. Nothing here is part of the public API.
 *
 * Threads: each caller appends whole lines to its own chunk of a sink
 * (sink.c). One writer thread per process collects the chunks, writes each
 * batch with writev(), and rotates and reopens files between batches. One
 * compressor thread gzips rotated files.
 */
#ifndef TALON_LOG_INTERNAL_H
#define TALON_LOG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "talon/log.h"

/* A formatted line longer than this is dropped and counted: a line of 1 MiB
 * already holds a 64 KiB header escaped as \u00XX several times over. */
#define LOG_MAX_LINE (1u << 20)
/* A printf-style message longer than this is cut to this length. */
#define LOG_MAX_MESSAGE (512u * 1024)

/* A block of whole lines waiting for the writer. */
typedef struct log_chunk {
    struct log_chunk *next;
    size_t len;
    size_t cap;
    uint64_t lines;
    char data[];
} log_chunk;

/* One thread's chunk of one sink. The owning thread appends to cur without
 * the sink's lock, with busy set around the append. Any other thread takes
 * cur only with the sink's lock held and after busy reads false (sink.c). */
typedef struct log_slot {
    _Atomic(log_chunk *) cur;
    atomic_bool busy;
    struct log_slot *next;   /* the sink's list, guarded by its lock */
    log_chunk *collected;    /* cur as a collection took it, guarded by the lock */
} __attribute__((aligned(64))) log_slot;

typedef enum { SINK_FILE, SINK_STDOUT, SINK_STDERR, SINK_SYSLOG } log_sink_kind;

typedef struct log_syslog log_syslog;

struct talon_sink {
    struct talon_sink *next; /* registry list; immutable once published */
    log_sink_kind kind;
    char *path;              /* file path, "stdout" / "stderr", or a syslog URL */
    talon_sink_options opts;

    size_t slot_chunk_size;  /* bytes of a thread's chunk: buffer_size, at most 64 KiB */

    /* Guarded by lock: the buffers and their accounting. */
    pthread_mutex_t lock;
    pthread_cond_t space;    /* broadcast when the writer frees buffer memory */
    pthread_cond_t written;  /* broadcast after each batch */
    log_slot *slots;         /* one per thread that logged to this sink */
    log_chunk *full_head;    /* chunks ready for the writer, oldest first */
    log_chunk *full_tail;
    log_chunk *exited;       /* chunks of exited threads, merged at the next collection */
    size_t full_bytes;       /* bytes of the full list since the writer last took it */
    log_chunk *free_chunks;  /* empty chunks kept for reuse, within max_buffered */
    size_t free_bytes;
    size_t mem;              /* bytes of chunks in the slots, the full list and the batch */
    uint64_t appended;       /* bytes moved to the full list since open */
    uint64_t settled;        /* bytes written, or given up at shutdown */
    bool flush_requested;    /* collect every slot at the writer's next pass */
    bool failing;            /* the last write failed and the batch is held */

    atomic_uint_fast64_t dropped; /* records lost to overflow or given up */
    atomic_int gzip_pending;      /* rotated files of this sink being compressed */

    /* Writer thread only (and the opener before the sink is published). */
    log_syslog *syslog;      /* SINK_SYSLOG: address and socket (syslog.c) */
    int fd;
    dev_t dev;
    ino_t ino;
    uint64_t file_size;
    log_chunk *held;         /* batch whose write failed, retried later */
    size_t held_off;         /* bytes of held already written */
    int64_t last_flush_ns;   /* last time the slots were collected */
    int64_t retry_at_ns;
    int64_t next_rotate_s;
    int last_errno;
    unsigned failed_writes;
    int64_t last_error_report_ns;
    int64_t last_deleted_check_ns; /* last failed reopen of a deleted file, or 0 */
    int64_t last_drop_report_ns;
    uint64_t dropped_reported;
    int64_t rotate_retry_ns;       /* no rotation before this after a failure, or 0 */
    int64_t rotate_report_ns;      /* last rotation failure logged */
    unsigned rotate_failures;      /* failed rotations in a row */
    unsigned rotate_unreported;    /* failures not logged since rotate_report_ns */
    int rotate_last_errno;
    int opened_partial;            /* end_partial_line() result, not yet reported */
};

/* Clock helpers. */
/* Return the length of the valid multi-byte UTF-8 sequence at s (2-4), or
 * 0 for ASCII and invalid bytes; avail is the number of bytes at s. */
size_t log_utf8_sequence_length(const unsigned char *s, size_t avail);

int64_t log_now_realtime_ns(void);
int64_t log_now_monotonic_ns(void);

/* Messages (message.c): vsnprintf() with the same output and return value,
 * faster for the conversions most messages use. */
int log_message_vformat(char *buf, size_t cap, const char *fmt, va_list ap);

/* Records (logger.c). */
/* talon_log_write() for a record whose message costs time to build: call
 * set_message(rec, ctx) only when a format attached to logger writes the
 * message. rec->message is left as it is otherwise. */
void log_write_lazy_message(talon_logger *logger, talon_log_record *rec,
                            void (*set_message)(talon_log_record *rec, void *ctx), void *ctx);

/* Formats (format_compile.c): false only for a format that never writes
 * the message of a record ("combined", "common", strings without
 * $message). */
bool log_format_uses_message(const talon_log_format *fmt);

/* Sinks (sink.c). */
talon_sink *log_sink_list(void);
/* Append a line logged at time_ns (CLOCK_REALTIME); the time orders the
 * lines of different threads that the writer collects together. */
void log_sink_append(talon_sink *sink, const char *line, size_t len, int64_t time_ns);
void log_sink_count_drop(talon_sink *sink);
/* Format rec with fmt straight into the calling thread's chunk of sink,
 * which saves a copy of the line. Returns the length of the line, or 0
 * when nothing was appended: the line does not fit in the chunk, the
 * thread has none yet, or sink is a syslog sink. Then format the line and
 * call log_sink_append(). */
size_t log_sink_append_record(talon_sink *sink, const talon_log_format *fmt,
                              const talon_log_record *rec);
/* Move the lines of every slot's chunk and of exited threads to the full
 * list, merged into one chunk in time order. Call with the sink's lock
 * held. */
void log_sink_collect_locked(talon_sink *sink);
/* Give back a chunk the writer is done with. Call with the lock held. */
void log_sink_release_chunk_locked(talon_sink *sink, log_chunk *chunk);
/* Free the calling thread's slot table without handing its chunks over,
 * and leave its slots to their sinks until these are freed. For the writer
 * thread, whose last pass collected its chunks. The hand-over at thread
 * exit takes the sink registry lock, and a sink being opened holds that
 * lock while log_writer_start() waits for the writer lock, which
 * log_writer_stop() holds while it joins the writer. */
void log_sink_forget_thread_slots(void);
int log_sink_open_fd(const char *path, mode_t mode, bool *created, dev_t *dev, ino_t *ino,
                     uint64_t *size, char *err, size_t errlen);
void log_sink_free_all(void);

/* Syslog transport (syslog.c). */
int log_syslog_parse(const char *url, log_syslog **out, char *err, size_t errlen);
void log_syslog_free(log_syslog *sl);
/* First connection attempt, before the sink is published; a failure is
 * logged and retried by the writer. */
void log_syslog_connect_at_open(talon_sink *s);
/* The bytes to store before a line of len bytes (its first *body bytes are
 * stored): "LENGTH " for TCP, nothing for datagrams. Returns the prefix
 * length. */
size_t log_syslog_frame_prefix(const talon_sink *s, size_t len, char prefix[24], size_t *body);
/* Send batch from byte *off; writer thread only. Same contract as a file
 * write: 0, or a negative errno with *off at the first byte not sent. */
int log_syslog_write(talon_sink *s, log_chunk *batch, size_t *off);
/* Report datagrams dropped as too long that no later drop reported, once
 * their second is over; writer thread only. */
void log_syslog_report_pending(talon_sink *s);

/* Writer thread (writer.c). */
struct iovec;
/* Fill up to max entries of iov with the bytes of batch from byte off on.
 * Returns the number filled, 0 when nothing is left. */
int log_batch_iov(const log_chunk *batch, size_t off, struct iovec *iov, int max);
int log_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg);
int log_writer_start(void);
void log_writer_wake(void);
void log_writer_stop(void);
bool log_in_writer_thread(void);
void log_writer_mark_thread(void);
/* Log a line about the logging system itself to the "app" logger and, for
 * errors, to stderr. On the writer and compressor threads a full sink drops
 * the line instead of blocking; for other callers the sink's overflow policy
 * applies as to any record. */
void log_report(talon_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rate limits (limit.c): report the suppressed counts of finished seconds,
 * or every count when stopping. Writer thread. */
void log_limit_report_pending(int64_t now_mono_ns, bool stopping);

/* Rotation (rotate.c). Writer thread only. */
bool log_rotate_due(talon_sink *sink, size_t incoming, int64_t now_ns);
void log_rotate(talon_sink *sink, int64_t now_ns);
void log_rotate_schedule(talon_sink *sink, int64_t now_ns);
void log_reopen_sink(talon_sink *sink);
/* Log the count of rotation failures held back by the rate limit, once
 * their second is over. */
void log_rotate_report_pending(talon_sink *sink, int64_t now_mono_ns);
void log_gzip_stop(void);

/* Configuration (log_config.c). */
void log_config_free(void);

#endif
