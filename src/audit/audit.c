/* The audit trail's public entry points: open, submit, seal, rotate, close.
 *
 * talon_audit_submit runs on the caller's thread: it serializes and redacts
 * the record, then queues it for the writer thread (writer.c). */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "audit/audit_internal.h"

#define SUBMIT_LOG_INTERVAL_NS 1000000000LL

int audit_make_dirs(const char *path, mode_t mode)
{
    char *copy = strdup(path);
    int rc = 0;

    if (copy == NULL)
        return -ENOMEM;
    for (char *p = copy + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, mode) < 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    free(copy);
    return rc;
}

static void free_items(audit_item *list)
{
    while (list != NULL) {
        audit_item *next = list->next;
        free(list);
        list = next;
    }
}

static void trail_free(talon_audit_trail *t)
{
    if (t == NULL)
        return;
    free_items(t->head);
    free_items(t->pool);
    audit_ring_close(t);
    if (t->fd >= 0) {
        audit_release_space(t);
        close(t->fd);
    }
    if (t->state_fd >= 0)
        close(t->state_fd);
    audit_crypto_free(&t->crypto);
    audit_redactor_free(&t->redact);
    json_decref(t->recovered_pending);
    talon_log_limit_free(t->error_limit);
    audit_buf_free(&t->batch);
    pthread_mutex_destroy(&t->mutex);
    pthread_mutex_destroy(&t->pool_lock);
    pthread_cond_destroy(&t->wake);
    pthread_cond_destroy(&t->control);
    pthread_rwlock_destroy(&t->pin);
    free(t->dir);
    free(t->state_path);
    free(t->host);
    OPENSSL_cleanse(t->key, sizeof(t->key));
    free(t);
}

static int init_sync(talon_audit_trail *t)
{
    pthread_condattr_t attr;

    if (pthread_mutex_init(&t->mutex, NULL) != 0 || pthread_mutex_init(&t->pool_lock, NULL) != 0)
        return -ENOMEM;
    if (pthread_rwlock_init(&t->pin, NULL) != 0)
        return -ENOMEM;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (pthread_cond_init(&t->wake, &attr) != 0 || pthread_cond_init(&t->control, NULL) != 0) {
        pthread_condattr_destroy(&attr);
        return -ENOMEM;
    }
    pthread_condattr_destroy(&attr);
    return 0;
}

static int copy_options(talon_audit_trail *t, const talon_audit_options *o)
{
    char hostname[256];

    t->dir = strdup(o->dir);
    t->state_path = strdup(o->state_file);
    if (o->host != NULL && o->host[0] != '\0') {
        t->host = strdup(o->host);
    } else {
        if (gethostname(hostname, sizeof(hostname)) < 0)
            snprintf(hostname, sizeof(hostname), "localhost");
        hostname[sizeof(hostname) - 1] = '\0';
        t->host = strdup(hostname);
    }
    if (t->dir == NULL || t->state_path == NULL || t->host == NULL)
        return -ENOMEM;
    t->epoch_seconds = o->epoch_seconds ? o->epoch_seconds : 3600;
    t->rotate_size = o->rotate_size;
    t->rotate_interval_s = o->rotate_interval_s;
    t->rotate_keep = o->rotate_keep;
    t->mode = o->mode ? o->mode : 0600;
    t->queue_capacity = o->queue_capacity ? o->queue_capacity : 65536;
    t->failure = o->failure;
    if (o->witness == NULL || strcmp(o->witness, "none") != 0)
        t->witness = talon_logger_get(o->witness != NULL ? o->witness : "audit.witness");
    return audit_redactor_init(&t->redact, o->redact_keys);
}

static int check_options(const talon_audit_options *o, char *err, size_t errlen)
{
    if (o == NULL || o->dir == NULL || o->dir[0] == '\0') {
        snprintf(err, errlen, "audit trail: no directory set (option dir)");
        return -EINVAL;
    }
    if (o->state_file == NULL || o->state_file[0] == '\0') {
        snprintf(err, errlen, "audit trail: no key state file set (option state_file)");
        return -EINVAL;
    }
    if (o->sync_ring_size != 0 &&
        (o->sync_ring_size < AUDIT_RING_MIN_SIZE || o->sync_ring_size > AUDIT_RING_MAX_SIZE)) {
        snprintf(err, errlen, "audit trail: sync_ring_size %llu is out of range; use 0 (no "
                 "ring) or 64 KiB to 1 GiB", (unsigned long long)o->sync_ring_size);
        return -EINVAL;
    }
    if ((o->mode & ~(mode_t)0640) != 0) {
        snprintf(err, errlen, "audit trail: file mode %04o gives more than owner read-write and "
                 "group read; use 0600 or 0640", (unsigned)o->mode);
        return -EINVAL;
    }
    return 0;
}

int talon_audit_open(talon_audit_trail **out, const talon_audit_options *opts,
                     char *err, size_t errlen)
{
    talon_audit_trail *t;
    audit_keystate ks;
    char file[32];
    json_t *data;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    *out = NULL;
    rc = check_options(opts, err, errlen);
    if (rc < 0)
        return rc;

    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->fd = -1;
    t->state_fd = -1;
    t->ring_fd = -1;
    atomic_store(&t->healthy, true);
    t->log = talon_logger_get("app");
    t->error_limit = talon_log_limit_new(t->log, TALON_LOG_ERROR, 1, "audit trail errors");
    rc = init_sync(t);
    if (rc == 0)
        rc = copy_options(t, opts);
    if (rc == 0)
        rc = audit_crypto_init(&t->crypto);
    if (rc < 0) {
        snprintf(err, errlen, "audit trail: out of memory");
        goto fail;
    }

    rc = audit_make_dirs(t->dir, (t->mode & 0040) ? 0750 : 0700);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create the audit trail directory %s: %s", t->dir,
                 strerror(-rc));
        goto fail;
    }
    rc = audit_keystate_load(t->state_path, &t->state_fd, &ks, err, errlen);
    if (rc < 0)
        goto fail;
    /* One writer per trail: a second one would fork the chain. The lock
     * goes with the descriptor, so a killed server does not leave it. */
    if (flock(t->state_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        snprintf(err, errlen, "audit key state file %s is locked by another process: the "
                 "trail in %s is in use; stop the other server first", t->state_path, t->dir);
        OPENSSL_cleanse(&ks, sizeof(ks));
        goto fail;
    }
    rc = audit_ring_open(t, opts->sync_ring_size);
    if (rc < 0) {
        snprintf(err, errlen, "cannot open the sync ring %s: %s", t->ring_path ? t->ring_path : t->dir,
                 strerror(-rc));
        OPENSSL_cleanse(&ks, sizeof(ks));
        goto fail;
    }
    audit_hex(t->trail_hex, ks.trail_id, AUDIT_TRAIL_ID_LEN);
    t->trail_hex[AUDIT_HEX_TRAIL_LEN] = '\0';

    /* NOTE: an epoch continued after a crash counts its time from this
     * start, not from its first record, so it can last up to one
     * epoch_seconds longer than configured. */
    audit_monotonic(&t->epoch_started);
    rc = audit_recover(t, &ks, err, errlen);
    OPENSSL_cleanse(&ks, sizeof(ks));
    if (rc < 0)
        goto fail;
    audit_ring_prepare(t);
    atomic_store(&t->st_epoch, t->epoch);
    atomic_store(&t->st_last_seq, t->seq);
    /* Files beyond rotate_keep (a lowered setting, or a crash right after a
     * rotation) go once the active file has a record. */
    t->retention_pending = t->rotate_keep > 0;

    snprintf(file, sizeof(file), "audit-%08u.jsonl", t->file_index);
    data = json_pack("{s:I,s:s,s:s,s:I}", "pid", (json_int_t)getpid(), "version", "0.1.0",
                     "file", file, "epoch", (json_int_t)t->epoch);
    rc = audit_write_system_record(t, "sys_startup", TALON_AUDIT_SUCCESS, NULL, data);
    if (rc == 0)
        audit_witness_emit(t, "sys_startup", "startup");
    if (rc < 0) {
        if (t->failure == TALON_AUDIT_FAIL_CLOSED) {
            snprintf(err, errlen, "cannot write to the audit trail in %s: %s", t->dir,
                     strerror(-rc));
            goto fail;
        }
        atomic_fetch_add(&t->st_lost, 1);
        atomic_fetch_add(&t->lost_unreported, 1);
    }

    /* From here on the chain state belongs to the writer thread. */
    uint64_t seq = t->seq, epoch = t->epoch;
    rc = pthread_create(&t->writer, NULL, audit_writer_main, t);
    if (rc != 0) {
        rc = -rc;
        snprintf(err, errlen, "cannot start the audit writer thread: %s", strerror(-rc));
        goto fail;
    }
    t->writer_started = true;
    talon_log_info(t->log, "audit trail open: %s/%s, trail %s, seq %" PRIu64 ", epoch %" PRIu64
                   ", %s", t->dir, file, t->trail_hex, seq, epoch,
                   t->failure == TALON_AUDIT_FAIL_CLOSED ? "fail_closed" : "fail_open");
    *out = t;
    return 0;

fail:
    trail_free(t);
    return rc;
}

/* Append an item under the lock and wake the writer if this item ends its
 * wait (see wait_for_work() in writer.c). Each wait gets at most one
 * wake-up, so a burst of submitters does not make one futex call each. */
static void enqueue_locked(talon_audit_trail *t, audit_item *it)
{
    bool sync = it->kind == AUDIT_ITEM_RECORD && it->mode == TALON_AUDIT_SYNC;
    bool wake;

    it->next = NULL;
    if (t->tail != NULL)
        t->tail->next = it;
    else
        t->head = it;
    t->tail = it;
    if (it->kind != AUDIT_ITEM_RECORD) {
        t->wake_now = true;
    } else {
        size_t queued = atomic_fetch_add_explicit(&t->queued, 1, memory_order_relaxed) + 1;
        if (sync)
            t->queued_sync++;
        if (queued - t->queued_sync >= AUDIT_ASYNC_BATCH)
            t->wake_now = true;
    }
    wake = sync || !t->writer_napping;
    if (t->writer_waiting && (t->wake_now || wake)) {
        t->writer_waiting = false;
        pthread_cond_signal(&t->wake);
    }
}

/* Count a record that was not queued and log it at most once a second. */
static int reject(talon_audit_trail *t, int err, const char *why)
{
    int64_t now = audit_now_ns();
    int_fast64_t last = atomic_load(&t->submit_log_ns);

    if (t->failure == TALON_AUDIT_FAIL_CLOSED) {
        atomic_fetch_add(&t->st_rejected, 1);
        atomic_fetch_add(&t->rejected_during_outage, 1);
    } else {
        atomic_fetch_add(&t->st_lost, 1);
        atomic_fetch_add(&t->lost_unreported, 1);
    }
    if (now - last >= SUBMIT_LOG_INTERVAL_NS &&
        atomic_compare_exchange_strong(&t->submit_log_ns, &last, now)) {
        talon_log_error(t->log, "audit trail %s: record %s: %s (%" PRIu64 " rejected, %" PRIu64
                        " lost so far)", t->dir,
                        t->failure == TALON_AUDIT_FAIL_CLOSED ? "rejected" : "lost", why,
                        (uint64_t)atomic_load(&t->st_rejected), (uint64_t)atomic_load(&t->st_lost));
    }
    return -err;
}

static int reject_unhealthy(talon_audit_trail *t)
{
    int err = atomic_load(&t->error);

    if (err == 0)
        err = EIO;
    return reject(t, err, strerror(err));
}

void audit_items_recycle(talon_audit_trail *t, audit_item *list, size_t n)
{
    audit_item *drop = NULL;

    pthread_mutex_lock(&t->pool_lock);
    while (list != NULL && n-- > 0) {
        audit_item *next = list->next;
        bool keep = list->cap > 0 && list->cap <= AUDIT_ITEM_POOL_MAX_CAP &&
                    t->pool_len < AUDIT_ITEM_POOL_MAX;
        if (keep) {
            list->next = t->pool;
            t->pool = list;
            t->pool_len++;
        } else {
            list->next = drop;
            drop = list;
        }
        list = next;
    }
    pthread_mutex_unlock(&t->pool_lock);
    free_items(drop);
}

/* A record's memory from the pool, or NULL when it is empty. */
static audit_item *pool_take(talon_audit_trail *t)
{
    audit_item *it;

    pthread_mutex_lock(&t->pool_lock);
    it = t->pool;
    if (it != NULL) {
        t->pool = it->next;
        t->pool_len--;
    }
    pthread_mutex_unlock(&t->pool_lock);
    return it;
}

/* Serialize ev into a record item that is not queued yet. */
static int prepare_item(talon_audit_trail *trail, const talon_audit_event *ev,
                        talon_audit_mode mode, talon_audit_done_fn done, void *ctx,
                        audit_item **out)
{
    const size_t head = offsetof(audit_item, middle);
    audit_buf b;
    audit_item *it;
    int rc;

    /* Serialize straight behind the item header, into a written record's
     * memory when the pool has one. */
    audit_buf_init(&b);
    it = pool_take(trail);
    if (it != NULL) {
        b.data = (char *)it;
        b.cap = it->cap;
    } else if (!audit_buf_reserve(&b, head + 1024)) {
        return -ENOMEM;
    }
    b.len = head;
    rc = audit_serialize_middle(&b, ev, audit_now_ns(), &trail->redact, trail->host,
                                trail->trail_hex);
    if (rc < 0) {
        audit_buf_free(&b);
        return rc;
    }
    it = (audit_item *)b.data;
    memset(it, 0, head);
    it->cap = b.cap;
    it->kind = AUDIT_ITEM_RECORD;
    it->mode = mode;
    it->done = done;
    it->ctx = ctx;
    it->len = b.len - head;
    *out = it;
    return 0;
}

static void free_item_array(audit_item **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
}

/* Queue items[0..n) together under one lock, so that the writer takes them
 * in one batch. The first one is marked as the start of a group of n. On
 * rejection the items are freed and, like every rejected record, counted
 * (each of them). */
static int queue_items(talon_audit_trail *trail, audit_item **items, size_t n)
{
    int rc = 0;

    pthread_mutex_lock(&trail->mutex);
    if (trail->stopping)
        rc = -ESHUTDOWN;
    else if (!atomic_load(&trail->healthy))
        rc = -EIO;
    else if (atomic_load_explicit(&trail->queued, memory_order_relaxed) + n >
             trail->queue_capacity)
        rc = -EAGAIN;
    if (rc == 0) {
        items[0]->group = n;
        for (size_t i = 0; i < n; i++)
            enqueue_locked(trail, items[i]);
    }
    pthread_mutex_unlock(&trail->mutex);
    if (rc == 0)
        return 0;
    free_item_array(items, n);
    if (rc == -ESHUTDOWN)
        return rc;
    /* Each record of a rejected group is counted; reject() rate-limits the
     * log line. The result is that of the first record. */
    bool unhealthy = rc == -EIO;
    for (size_t i = 0; i < n; i++) {
        int r = unhealthy ? reject_unhealthy(trail)
                          : reject(trail, EAGAIN, "the queue is full (queue_capacity)");
        if (i == 0)
            rc = r;
    }
    return rc;
}

int talon_audit_submit(talon_audit_trail *trail, const talon_audit_event *ev,
                       talon_audit_mode mode, talon_audit_done_fn done, void *ctx)
{
    audit_item *it;
    int rc;

    if (trail == NULL || ev == NULL)
        return -EINVAL;
    if (!atomic_load(&trail->healthy))
        return reject_unhealthy(trail);
    /* A full queue is checked again under the lock; this early look only
     * saves serializing a record that would be rejected. */
    if (atomic_load_explicit(&trail->queued, memory_order_relaxed) >= trail->queue_capacity)
        return reject(trail, EAGAIN, "the queue is full (queue_capacity)");
    rc = prepare_item(trail, ev, mode, done, ctx, &it);
    if (rc < 0)
        return rc;
    return queue_items(trail, &it, 1);
}

int talon_audit_prepare(talon_audit_trail *trail, const talon_audit_event *ev,
                        talon_audit_mode mode, talon_audit_done_fn done, void *ctx,
                        talon_audit_record **out)
{
    audit_item *it;
    int rc;

    *out = NULL;
    if (trail == NULL || ev == NULL)
        return -EINVAL;
    rc = prepare_item(trail, ev, mode, done, ctx, &it);
    if (rc == 0)
        *out = (talon_audit_record *)it;
    return rc;
}

void talon_audit_record_free(talon_audit_record *rec)
{
    free(rec);
}

int talon_audit_submit_group(talon_audit_trail *trail, talon_audit_record **recs, size_t n)
{
    if (n == 0)
        return 0;
    if (trail == NULL) {
        free_item_array((audit_item **)recs, n);
        return -EINVAL;
    }
    return queue_items(trail, (audit_item **)recs, n);
}

/* Queue a control item and wait until the writer has run it. */
static int run_control(talon_audit_trail *t, enum audit_item_kind kind, audit_item *before)
{
    audit_control_wait w = { .mutex = &t->mutex, .cond = &t->control };
    audit_item *it = calloc(1, sizeof(*it));
    int rc;

    if (it == NULL) {
        free(before);
        return -ENOMEM;
    }
    it->kind = kind;
    it->ctx = &w;
    pthread_mutex_lock(&t->mutex);
    if (t->stopping && kind != AUDIT_ITEM_STOP) {
        pthread_mutex_unlock(&t->mutex);
        free(it);
        free(before);
        return -ESHUTDOWN;
    }
    if (kind == AUDIT_ITEM_STOP)
        t->stopping = true;
    if (before != NULL)
        enqueue_locked(t, before);
    enqueue_locked(t, it);
    pthread_cond_signal(&t->wake);
    while (!w.finished)
        pthread_cond_wait(&t->control, &t->mutex);
    rc = w.status;
    pthread_mutex_unlock(&t->mutex);
    return rc;
}

int talon_audit_seal(talon_audit_trail *trail)
{
    return trail != NULL ? run_control(trail, AUDIT_ITEM_SEAL, NULL) : -EINVAL;
}

int talon_audit_rotate(talon_audit_trail *trail)
{
    return trail != NULL ? run_control(trail, AUDIT_ITEM_ROTATE, NULL) : -EINVAL;
}

/* The sys_shutdown record, serialized here and queued before the stop. */
static audit_item *shutdown_item(talon_audit_trail *t)
{
    const size_t head = offsetof(audit_item, middle);
    static const audit_redactor none;
    talon_audit_event ev = { .type = "sys_shutdown", .actor_id = "system" };
    audit_buf b;
    audit_item *it;

    ev.data = json_pack("{s:I,s:I,s:I}", "records", (json_int_t)atomic_load(&t->st_records),
                        "lost", (json_int_t)atomic_load(&t->st_lost), "rejected",
                        (json_int_t)atomic_load(&t->st_rejected));
    audit_buf_init(&b);
    if (!audit_buf_reserve(&b, head + 512)) {
        json_decref(ev.data);
        return NULL;
    }
    b.len = head;
    if (audit_serialize_middle(&b, &ev, audit_now_ns(), &none, t->host, t->trail_hex) < 0) {
        json_decref(ev.data);
        audit_buf_free(&b);
        return NULL;
    }
    json_decref(ev.data);
    it = (audit_item *)b.data;
    memset(it, 0, head);
    it->kind = AUDIT_ITEM_RECORD;
    it->mode = TALON_AUDIT_SYNC;
    it->witness = true;
    it->len = b.len - head;
    return it;
}

void talon_audit_close(talon_audit_trail *trail)
{
    int rc;

    if (trail == NULL)
        return;
    if (trail->writer_started) {
        rc = run_control(trail, AUDIT_ITEM_STOP, shutdown_item(trail));
        pthread_join(trail->writer, NULL);
        if (rc < 0)
            talon_log_error(trail->log, "audit trail %s closed without its shutdown seal: %s; "
                            "the next start continues the chain", trail->dir, strerror(-rc));
        else
            talon_log_info(trail->log, "audit trail %s closed at seq %" PRIu64 ", epoch %" PRIu64,
                           trail->dir, trail->seq, trail->epoch);
    }
    trail_free(trail);
}

bool talon_audit_healthy(const talon_audit_trail *trail)
{
    return trail != NULL && atomic_load(&((talon_audit_trail *)trail)->healthy);
}

void talon_audit_get_stats(const talon_audit_trail *trail, talon_audit_stats *out)
{
    talon_audit_trail *t = (talon_audit_trail *)trail;

    memset(out, 0, sizeof(*out));
    if (t == NULL)
        return;
    out->records = atomic_load(&t->st_records);
    out->fsyncs = atomic_load(&t->st_fsyncs);
    out->lost = atomic_load(&t->st_lost);
    out->rejected = atomic_load(&t->st_rejected);
    out->last_seq = atomic_load(&t->st_last_seq);
    out->epoch = atomic_load(&t->st_epoch);
}

void talon_audit_pin_files(talon_audit_trail *trail)
{
    pthread_rwlock_rdlock(&trail->pin);
}

void talon_audit_unpin_files(talon_audit_trail *trail)
{
    pthread_rwlock_unlock(&trail->pin);
}
