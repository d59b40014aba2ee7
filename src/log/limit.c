/* Rate-limited messages whose suppressed count is reported even when no
 * later message comes: every limit is listed here, and the writer thread
 * reports the counts of finished seconds on each pass (at least once a
 * second) and at shutdown. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log/log_internal.h"

#define NS_PER_S 1000000000LL

struct talon_log_limit {
    struct talon_log_limit *prev, *next; /* registry list, under registry_lock */
    talon_logger *logger;
    talon_log_level level;
    unsigned per_second;
    char what[96];
    pthread_mutex_t lock;       /* guards the fields below */
    int64_t second;             /* CLOCK_MONOTONIC second of the current window */
    unsigned logged;            /* messages logged in that second */
    unsigned long long suppressed; /* messages counted and not yet reported */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static talon_log_limit *registry;

talon_log_limit *talon_log_limit_new(talon_logger *logger, talon_log_level level,
                                     unsigned per_second, const char *what)
{
    talon_log_limit *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->logger = logger;
    l->level = level;
    l->per_second = per_second ? per_second : 1;
    snprintf(l->what, sizeof(l->what), "%s", what ? what : "messages");
    pthread_mutex_init(&l->lock, NULL);
    pthread_mutex_lock(&registry_lock);
    l->next = registry;
    if (registry)
        registry->prev = l;
    registry = l;
    pthread_mutex_unlock(&registry_lock);
    return l;
}

static void report(talon_log_limit *l, unsigned long long count)
{
    talon_log(l->logger, l->level, "%llu more %s suppressed (at most %u a second are logged)",
              count, l->what, l->per_second);
}

void talon_log_limit_free(talon_log_limit *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&registry_lock);
    if (l->prev)
        l->prev->next = l->next;
    else
        registry = l->next;
    if (l->next)
        l->next->prev = l->prev;
    pthread_mutex_unlock(&registry_lock);
    if (l->suppressed)
        report(l, l->suppressed);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

bool talon_log_limited(talon_log_limit *l, const char *fmt, ...)
{
    int64_t now = log_now_monotonic_ns() / NS_PER_S;
    unsigned long long pending = 0;
    bool emit;

    pthread_mutex_lock(&l->lock);
    if (now != l->second) {
        pending = l->suppressed;
        l->suppressed = 0;
        l->second = now;
        l->logged = 0;
    }
    emit = l->logged < l->per_second;
    if (emit)
        l->logged++;
    else
        l->suppressed++;
    pthread_mutex_unlock(&l->lock);

    if (pending)
        report(l, pending);
    if (emit) {
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        talon_log(l->logger, l->level, "%s", msg);
    }
    return emit;
}

void log_limit_report_pending(int64_t now_mono_ns, bool stopping)
{
    int64_t now = now_mono_ns / NS_PER_S;
    pthread_mutex_lock(&registry_lock);
    for (talon_log_limit *l = registry; l; l = l->next) {
        unsigned long long pending = 0;
        pthread_mutex_lock(&l->lock);
        if (l->suppressed && (stopping || now != l->second)) {
            pending = l->suppressed;
            l->suppressed = 0;
        }
        pthread_mutex_unlock(&l->lock);
        if (pending)
            report(l, pending);
    }
    pthread_mutex_unlock(&registry_lock);
}
