/* Named loggers and the record path.
 *
 * A logger holds an immutable array of attachments (sink, minimum level,
 * format). Changing the sinks builds a new array and publishes it with one
 * atomic store, so the record path reads it without a lock. Old arrays are
 * retired, not freed, until talon_log_shutdown(): sinks change only when the
 * configuration is applied, and a reader may still be walking an old array.
 *
 * Formatting happens on the calling thread into a thread-local buffer; the
 * line is then copied into the sink's buffer (see sink.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log/log_internal.h"

typedef struct log_attachment {
    talon_sink *sink;
    talon_log_level min_level;
    const talon_log_format *fmt;
} log_attachment;

typedef struct log_attachments {
    struct log_attachments *retired_next;
    size_t count;
    bool needs_message; /* some format writes the record's message */
    log_attachment items[];
} log_attachments;

struct talon_logger {
    struct talon_logger *next;
    _Atomic(log_attachments *) attachments;
    atomic_int min_level; /* lowest level any attachment takes; OFF when none */
    char name[];
};

/* Per-thread buffers of the record path, freed when the thread exits. */
typedef struct log_tls {
    char *message;
    size_t message_cap;
    char *line;
    size_t line_cap;
} log_tls;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static talon_logger *loggers;
static log_attachments *retired;
static talon_log_format *default_format;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static __thread log_tls *tls;

static const char *const level_names[] = {
    "trace", "debug", "info", "warn", "error", "fatal", "off",
};

int64_t log_now_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The time of this thread's records, set by an event loop; 0: read the clock. */
static __thread int64_t thread_wall_ns;

void talon_log_set_thread_time(int64_t wall_ns)
{
    thread_wall_ns = wall_ns;
}

int64_t talon_log_thread_time(void)
{
    return thread_wall_ns != 0 ? thread_wall_ns : log_now_realtime_ns();
}

int64_t log_now_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int talon_log_level_parse(const char *s, talon_log_level *out)
{
    for (int i = TALON_LOG_TRACE; i <= TALON_LOG_OFF; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (talon_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = TALON_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

const char *talon_log_level_name(talon_log_level level)
{
    if ((unsigned)level > TALON_LOG_OFF)
        return "unknown";
    return level_names[level];
}

static void tls_destroy(void *p)
{
    log_tls *t = p;
    free(t->message);
    free(t->line);
    free(t);
}

static void tls_key_create(void)
{
    pthread_key_create(&tls_key, tls_destroy);
}

static log_tls *tls_get(void)
{
    if (tls)
        return tls;
    pthread_once(&tls_once, tls_key_create);
    tls = calloc(1, sizeof(*tls));
    if (tls)
        pthread_setspecific(tls_key, tls);
    return tls;
}

/* Grow *buf to at least need bytes. Returns false when out of memory. */
static bool buffer_reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 512;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        return false;
    *buf = p;
    *cap = n;
    return true;
}

talon_logger *talon_logger_get(const char *name)
{
    if (!name || !*name)
        name = "app";
    pthread_mutex_lock(&registry_lock);
    talon_logger *lg;
    for (lg = loggers; lg; lg = lg->next) {
        if (strcmp(lg->name, name) == 0)
            goto out;
    }
    size_t len = strlen(name);
    lg = calloc(1, sizeof(*lg) + len + 1);
    if (!lg)
        goto out;
    memcpy(lg->name, name, len + 1);
    atomic_init(&lg->attachments, NULL);
    atomic_init(&lg->min_level, TALON_LOG_OFF);
    lg->next = loggers;
    loggers = lg;
out:
    pthread_mutex_unlock(&registry_lock);
    return lg;
}

const char *talon_logger_name(const talon_logger *logger)
{
    return logger ? logger->name : NULL;
}

/* Publish a new attachment array and retire the old one. Call with
 * registry_lock held. */
static void attachments_publish(talon_logger *lg, log_attachments *next)
{
    int min = TALON_LOG_OFF;
    for (size_t i = 0; next && i < next->count; i++) {
        if ((int)next->items[i].min_level < min)
            min = next->items[i].min_level;
        if (log_format_uses_message(next->items[i].fmt))
            next->needs_message = true;
    }
    log_attachments *old = atomic_exchange_explicit(&lg->attachments, next, memory_order_acq_rel);
    atomic_store_explicit(&lg->min_level, min, memory_order_release);
    if (old) {
        old->retired_next = retired;
        retired = old;
    }
}

int talon_logger_add_sink(talon_logger *logger, talon_sink *sink,
                          talon_log_level min_level, const talon_log_format *fmt)
{
    if (!logger || !sink || (unsigned)min_level > TALON_LOG_OFF)
        return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&registry_lock);
    if (!fmt) {
        if (!default_format) {
            char err[128];
            default_format = talon_log_format_compile("text", err, sizeof(err));
        }
        fmt = default_format;
        if (!fmt) {
            rc = -ENOMEM;
            goto out;
        }
    }
    log_attachments *old = atomic_load_explicit(&logger->attachments, memory_order_acquire);
    size_t count = old ? old->count : 0;
    log_attachments *next = malloc(sizeof(*next) + (count + 1) * sizeof(next->items[0]));
    if (!next) {
        rc = -ENOMEM;
        goto out;
    }
    next->retired_next = NULL;
    next->count = count + 1;
    next->needs_message = false;
    if (count)
        memcpy(next->items, old->items, count * sizeof(next->items[0]));
    next->items[count] = (log_attachment){ .sink = sink, .min_level = min_level, .fmt = fmt };
    attachments_publish(logger, next);
out:
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

void talon_logger_clear_sinks(talon_logger *logger)
{
    if (!logger)
        return;
    pthread_mutex_lock(&registry_lock);
    attachments_publish(logger, NULL);
    pthread_mutex_unlock(&registry_lock);
}

bool talon_logger_enabled(const talon_logger *logger, talon_log_level level)
{
    if (!logger)
        return false;
    talon_logger *lg = (talon_logger *)logger;
    return (int)level < TALON_LOG_OFF &&
           (int)level >= atomic_load_explicit(&lg->min_level, memory_order_relaxed);
}

/* Format rec with fmt into the thread's line buffer. Returns the length, or
 * 0 when the line is too long or memory ran out. */
static size_t format_line(log_tls *t, const talon_log_format *fmt, const talon_log_record *rec)
{
    if (!buffer_reserve(&t->line, &t->line_cap, 1024))
        return 0;
    size_t len = talon_log_format_record(fmt, rec, t->line, t->line_cap);
    if (len <= t->line_cap)
        return len;
    if (len > LOG_MAX_LINE || !buffer_reserve(&t->line, &t->line_cap, len))
        return 0;
    return talon_log_format_record(fmt, rec, t->line, t->line_cap);
}

/* Format rec for every attachment of atts that takes its level. */
static void write_attachments(const log_attachments *atts, const talon_log_record *rec)
{
    /* A single attachment, the usual case, shares its line with no other
     * sink, so its sink formats the line in place, saving a copy. */
    const log_attachment *only = atts->count == 1 ? &atts->items[0] : NULL;
    if (only && rec->level >= only->min_level && log_sink_append_record(only->sink, only->fmt, rec) > 0)
        goto out;

    log_tls *t = tls_get();
    if (!t)
        return;
    /* Attachments with the same format share one formatted line. */
    const talon_log_format *formatted = NULL;
    size_t len = 0;
    for (size_t i = 0; i < atts->count; i++) {
        const log_attachment *a = &atts->items[i];
        if (rec->level < a->min_level)
            continue;
        if (a->fmt != formatted) {
            len = format_line(t, a->fmt, rec);
            formatted = len ? a->fmt : NULL;
        }
        if (len)
            log_sink_append(a->sink, t->line, len, rec->time_ns);
        else
            log_sink_count_drop(a->sink);
    }

out:
    /* A fatal record is usually the last one: put it on disk before the
     * caller exits. The writer thread cannot wait for itself. */
    if (rec->level == TALON_LOG_FATAL && !log_in_writer_thread()) {
        for (size_t i = 0; i < atts->count; i++)
            talon_sink_flush(atts->items[i].sink);
    }
}

void talon_log_write(talon_logger *logger, const talon_log_record *rec)
{
    if (!logger)
        logger = talon_logger_get("app");
    if (!logger || !rec || !talon_logger_enabled(logger, rec->level))
        return;
    log_attachments *atts = atomic_load_explicit(&logger->attachments, memory_order_acquire);
    if (atts)
        write_attachments(atts, rec);
}

void log_write_lazy_message(talon_logger *logger, talon_log_record *rec,
                            void (*set_message)(talon_log_record *rec, void *ctx), void *ctx)
{
    if (!logger || !talon_logger_enabled(logger, rec->level))
        return;
    /* One load, so the formats that decide whether the message is needed
     * are the ones that format the record. */
    log_attachments *atts = atomic_load_explicit(&logger->attachments, memory_order_acquire);
    if (!atts)
        return;
    if (atts->needs_message)
        set_message(rec, ctx);
    write_attachments(atts, rec);
}

/* Format the message into the thread's buffer and write the record. */
static void log_message(talon_logger *logger, talon_log_level level, const talon_field *fields,
                        size_t nfields, const char *fmt, va_list ap)
{
    log_tls *t = tls_get();
    if (!t || !buffer_reserve(&t->message, &t->message_cap, 256))
        return;
    int n = log_message_vformat(t->message, t->message_cap, fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n >= t->message_cap) {
        size_t need = (size_t)n + 1 < LOG_MAX_MESSAGE ? (size_t)n + 1 : LOG_MAX_MESSAGE;
        if (buffer_reserve(&t->message, &t->message_cap, need))
            log_message_vformat(t->message, need, fmt, ap);
        else
            need = t->message_cap; /* keep what the first call wrote */
        n = (int)need - 1;
    }
    talon_log_record rec = {
        .time_ns = talon_log_thread_time(),
        .level = level,
        .logger = logger->name,
        .message = t->message,
        .message_len = (size_t)n,
        .fields = fields,
        .nfields = nfields,
    };
    talon_log_write(logger, &rec);
}

void talon_logv(talon_logger *logger, talon_log_level level, const char *fmt, va_list ap)
{
    if (!logger)
        logger = talon_logger_get("app");
    if (!talon_logger_enabled(logger, level))
        return;
    log_message(logger, level, NULL, 0, fmt, ap);
}

void talon_log(talon_logger *logger, talon_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    talon_logv(logger, level, fmt, ap);
    va_end(ap);
}

void talon_log_fields(talon_logger *logger, talon_log_level level, const talon_field *fields,
                      size_t nfields, const char *fmt, ...)
{
    if (!logger)
        logger = talon_logger_get("app");
    if (!talon_logger_enabled(logger, level))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_message(logger, level, fields, nfields, fmt, ap);
    va_end(ap);
}

/* Free every logger and attachment array. Call after the writer stopped. */
static void loggers_free(void)
{
    pthread_mutex_lock(&registry_lock);
    while (loggers) {
        talon_logger *lg = loggers;
        loggers = lg->next;
        free(atomic_load(&lg->attachments));
        free(lg);
    }
    while (retired) {
        log_attachments *a = retired;
        retired = a->retired_next;
        free(a);
    }
    talon_log_format_free(default_format);
    default_format = NULL;
    pthread_mutex_unlock(&registry_lock);
}

void talon_log_shutdown(void)
{
    log_writer_stop();   /* flushes every sink */
    log_gzip_stop();     /* finishes queued compression */
    log_sink_free_all();
    loggers_free();
    log_config_free();
}
