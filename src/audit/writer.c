/* The writer thread: group commit, seals, rotation and the failure policy.
 *
 * Submitters serialize their record and append it to the queue. The writer
 * takes everything queued at once, finishes each line (sequence number,
 * epoch, prev, MAC), writes the batch with one write() and, when the batch
 * contains a sync record, makes it durable with one fdatasync. Concurrent
 * sync submitters therefore share one fdatasync. A failed batch is cut off
 * the file again and its sequence numbers are reused, so the chain has no
 * hole and no half line stays behind. When even the cut fails, nothing more
 * is written until a retry has made it. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit_internal.h"

#define RETRY_INTERVAL_NS 1000000000LL
#define ASYNC_SYNC_INTERVAL_NS 1000000000LL

/* System records are not redacted: their fields are fixed by the format. */
static const audit_redactor no_redaction;

typedef struct chain_mark {
    uint64_t seq;
    unsigned char prev[AUDIT_HASH_LEN];
    uint64_t epoch_first_seq;
    uint64_t file_size;
} chain_mark;

static void chain_save(const talon_audit_trail *t, chain_mark *m)
{
    m->seq = t->seq;
    memcpy(m->prev, t->prev, AUDIT_HASH_LEN);
    m->epoch_first_seq = t->epoch_first_seq;
    m->file_size = t->file_size;
}

static void chain_restore(talon_audit_trail *t, const chain_mark *m)
{
    t->seq = m->seq;
    memcpy(t->prev, m->prev, AUDIT_HASH_LEN);
    t->epoch_first_seq = m->epoch_first_seq;
}

static int64_t timespec_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    audit_monotonic(&ts);
    return timespec_ns(&ts);
}

void audit_log_error(talon_audit_trail *t, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* At most one message a second; the log writer reports the count of the
     * others within about a second. */
    if (t->error_limit != NULL)
        talon_log_limited(t->error_limit, "%s", msg);
    else
        talon_log_error(t->log, "%s", msg);
}

/* ---- building lines ---- */

/* Append the finished line for middle to the batch buffer and advance the
 * chain. */
static int append_line(talon_audit_trail *t, const char *middle, size_t len)
{
    audit_buf *b = &t->batch;
    size_t start = b->len;
    unsigned char h[AUDIT_HASH_LEN], mac[AUDIT_HASH_LEN];
    uint64_t seq = t->seq + 1;

    audit_buf_append_lit(b, "{\"v\":1,\"seq\":");
    audit_buf_append_u64(b, seq);
    audit_buf_append_lit(b, ",\"epoch\":");
    audit_buf_append_u64(b, t->epoch);
    audit_buf_append(b, ",", 1);
    audit_buf_append(b, middle, len);
    audit_buf_append_lit(b, "\"prev\":\"");
    audit_buf_append_hex(b, t->prev, AUDIT_HASH_LEN);
    audit_buf_append_lit(b, "\",");
    if (b->failed)
        goto nomem;
    if (audit_crypto_hash(&t->crypto, b->data + start, b->len - start, h) < 0 ||
        audit_crypto_mac(&t->crypto, h, mac) < 0) {
        b->len = start;
        return -EIO;
    }
    audit_buf_append_lit(b, "\"mac\":\"");
    audit_buf_append_hex(b, mac, AUDIT_HASH_LEN);
    audit_buf_append_lit(b, "\"}\n");
    if (b->failed)
        goto nomem;

    t->seq = seq;
    memcpy(t->prev, h, AUDIT_HASH_LEN);
    if (t->epoch_first_seq == 0)
        t->epoch_first_seq = seq;
    return 0;

nomem:
    /* Keep the buffer usable for the next batch. */
    b->failed = false;
    b->len = start;
    return -ENOMEM;
}

/* Serialize and append a record written by talon itself (actor "system").
 * data is stolen. */
static int append_system_line(talon_audit_trail *t, const char *type, talon_audit_outcome outcome,
                              const char *reason, json_t *data)
{
    talon_audit_event ev = {
        .type = type, .outcome = outcome, .actor_id = "system", .reason = reason, .data = data,
    };
    audit_buf mid;
    int rc;

    audit_buf_init(&mid);
    rc = audit_serialize_middle(&mid, &ev, audit_now_ns(), &no_redaction, t->host, t->trail_hex);
    if (rc == 0)
        rc = append_line(t, mid.data, mid.len);
    audit_buf_free(&mid);
    json_decref(data);
    return rc;
}

/* ---- writing ---- */

static void mark_unhealthy(talon_audit_trail *t, int err)
{
    if (atomic_load(&t->healthy)) {
        t->down_since_ns = audit_now_ns();
        atomic_store(&t->rejected_during_outage, 0);
    }
    atomic_store(&t->error, err);
    atomic_store(&t->healthy, false);
    t->next_retry.tv_sec = 0;
    int64_t next = monotonic_ns() + RETRY_INTERVAL_NS;
    t->next_retry.tv_sec = next / 1000000000;
    t->next_retry.tv_nsec = next % 1000000000;
}

/* Cut the file back to the last complete record after a failed write. */
static int truncate_to_good(talon_audit_trail *t)
{
    int rc = 0;

    /* Wait for readers of this process that map the file: touching a page
     * past the new end would raise SIGBUS in them. */
    pthread_rwlock_wrlock(&t->pin);
    if (ftruncate(t->fd, (off_t)t->file_size) < 0)
        rc = -errno;
    pthread_rwlock_unlock(&t->pin);
    t->reserved_end = 0; /* the truncation freed the reserved blocks */
    return rc;
}

/* Write the batch buffer and, when durable, fdatasync it. On failure the
 * file is cut back and the chain rewound to mark. Returns 0 or -errno. */
static int write_batch(talon_audit_trail *t, const chain_mark *mark, bool durable)
{
    audit_buf *b = &t->batch;
    size_t done = 0;
    int rc = 0;

    audit_reserve_space(t, b->len);
    while (done < b->len) {
        ssize_t n = write(t->fd, b->data + done, b->len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        done += (size_t)n;
    }
    /* Bytes in an unlinked file are not on record: fail the batch. This
     * comes before the sync, so that no ring entry describes a cut batch. */
    if (rc == 0)
        rc = audit_check_removed(t);
    if (rc == 0 && durable) {
        if (t->ring_fd >= 0)
            rc = audit_ring_commit(t, b->data, b->len);
        else if (fdatasync(t->fd) < 0)
            rc = -errno;
        if (rc == 0)
            atomic_fetch_add(&t->st_fsyncs, 1);
    }
    if (rc < 0) {
        char path[4096];
        int trc;
        audit_trail_file_path(t, t->file_index, path, sizeof(path));
        chain_restore(t, mark);
        trc = truncate_to_good(t);
        audit_ring_forget(t);
        mark_unhealthy(t, -rc);
        if (t->file_removed || t->state_removed) {
            /* Restore at once: the retry needs no free space to come back. */
            audit_monotonic(&t->next_retry);
            audit_log_error(t, "audit trail: %s%s%s %s removed while open; the %zu bytes just "
                            "written are not on record, so %s; restoring from the open "
                            "descriptors", t->file_removed ? path : "",
                            t->file_removed && t->state_removed ? " and " : "",
                            t->state_removed ? t->state_path : "",
                            t->file_removed && t->state_removed ? "were" : "was", b->len,
                            t->failure == TALON_AUDIT_FAIL_CLOSED
                                ? "their requests are rejected" : "their records are lost");
        } else {
            audit_log_error(t, "audit trail: cannot write %zu bytes to %s: %s%s; %s", b->len, path,
                            strerror(-rc), trc < 0 ? " (and cannot cut the partial write back)" : "",
                            t->failure == TALON_AUDIT_FAIL_CLOSED
                                ? "audited requests are rejected until a retry succeeds"
                                : "records are lost until a retry succeeds");
        }
        b->len = 0;
        return rc;
    }
    t->file_size += b->len;
    b->len = 0;
    if (durable) {
        t->file_dirty = false;
    } else if (done > 0 && !t->file_dirty) {
        t->file_dirty = true;
        audit_monotonic(&t->dirty_since);
    }
    atomic_store(&t->st_last_seq, t->seq);
    if (t->retention_pending && t->file_size > 0)
        audit_apply_retention(t);
    return 0;
}

int audit_write_system_record(talon_audit_trail *t, const char *type,
                              talon_audit_outcome outcome, const char *reason, json_t *data)
{
    chain_mark mark;
    int rc;

    chain_save(t, &mark);
    t->batch.len = 0;
    rc = append_system_line(t, type, outcome, reason, data);
    if (rc < 0) {
        chain_restore(t, &mark);
        return rc;
    }
    rc = write_batch(t, &mark, true);
    if (rc == 0)
        atomic_fetch_add(&t->st_records, 1);
    return rc;
}

/* ---- epochs ---- */

/* Write durably the seal of the current epoch, then evolve the key in
 * memory and in key.state. */
int audit_seal_epoch(talon_audit_trail *t, const char *cause)
{
    uint64_t seal_seq = t->seq + 1;
    uint64_t first = t->epoch_first_seq ? t->epoch_first_seq : seal_seq;
    uint64_t last = t->epoch_first_seq ? t->seq : seal_seq;
    uint64_t count = t->epoch_first_seq ? t->seq - t->epoch_first_seq + 1 : 0;
    char head[AUDIT_HEX_HASH_LEN + 1];
    json_t *data;
    int rc;

    audit_hex(head, t->prev, AUDIT_HASH_LEN);
    head[AUDIT_HEX_HASH_LEN] = '\0';
    data = json_object();
    if (data == NULL)
        return -ENOMEM;
    /* Key order as the format specifies. */
    json_object_set_new(data, "epoch", json_integer((json_int_t)t->epoch));
    json_object_set_new(data, "count", json_integer((json_int_t)count));
    json_object_set_new(data, "first_seq", json_integer((json_int_t)first));
    json_object_set_new(data, "last_seq", json_integer((json_int_t)last));
    json_object_set_new(data, "head", json_string(head));
    json_object_set_new(data, "cause", json_string(cause));
    rc = audit_write_system_record(t, "audit_epoch_sealed", TALON_AUDIT_SUCCESS, NULL, data);
    if (rc < 0)
        return rc;
    audit_witness_emit(t, "audit_epoch_sealed", cause);
    /* The seal's own hash, logged below: a copy kept off this machine (the
     * app log forwarded to syslog) witnesses that the trail reached it. */
    char seal_hash[AUDIT_HEX_HASH_LEN + 1];
    audit_hex(seal_hash, t->prev, AUDIT_HASH_LEN);
    seal_hash[AUDIT_HEX_HASH_LEN] = '\0';

    /* The seal is durable: move to the next key and forget this one. */
    rc = audit_key_evolve(t->key);
    if (rc < 0)
        return rc;
    t->epoch++;
    t->epoch_first_seq = 0;
    atomic_store(&t->st_epoch, t->epoch);
    audit_crypto_wipe_key(&t->crypto);
    rc = audit_crypto_set_key(&t->crypto, t->key);
    if (rc < 0)
        return rc;
    audit_monotonic(&t->epoch_started);

    rc = audit_keystate_store_trail(t->state_fd, t);
    if (rc < 0) {
        /* No record may use the new epoch before key.state has it, or a
         * crash would leave a trail that the state cannot continue. */
        t->state_dirty = true;
        mark_unhealthy(t, -rc);
        audit_log_error(t, "audit trail: cannot update the key state %s to epoch %" PRIu64 ": %s",
                        t->state_path, t->epoch, strerror(-rc));
        return rc;
    }
    talon_log_info(t->log, "audit trail: sealed epoch %" PRIu64 " (%s, %" PRIu64 " records) "
                   "with seq %" PRIu64 " hash %s, now in epoch %" PRIu64,
                   t->epoch - 1, cause, count, seal_seq, seal_hash, t->epoch);
    return 0;
}

static int store_pending_state(talon_audit_trail *t)
{
    int rc;

    if (!t->state_dirty)
        return 0;
    rc = audit_keystate_store_trail(t->state_fd, t);
    if (rc == 0)
        t->state_dirty = false;
    return rc;
}

/* Seal and move to the next file. When the new file cannot be created, the
 * trail goes on in the current one after its rotation seal (the format
 * allows that). The next attempt then waits a second, so a failing rotation
 * does not seal an epoch per batch. */
static int rotate(talon_audit_trail *t)
{
    int rc;

    if (t->rotate_retry_ns != 0 && monotonic_ns() < t->rotate_retry_ns)
        return -EAGAIN;
    rc = audit_seal_epoch(t, "rotation");
    if (rc == 0)
        rc = audit_rotate_file(t);
    t->rotate_retry_ns = rc < 0 ? monotonic_ns() + RETRY_INTERVAL_NS : 0;
    return rc;
}

/* ---- failure reporting and retry ---- */

/* Report lost records in the trail itself (before the batch). */
static int append_lost_report(talon_audit_trail *t, uint64_t *reported)
{
    uint64_t lost = atomic_exchange(&t->lost_unreported, 0);
    json_t *data;
    int rc;

    *reported = lost;
    if (lost == 0)
        return 0;
    data = json_pack("{s:I}", "lost", (json_int_t)lost);
    rc = append_system_line(t, "audit_records_lost", TALON_AUDIT_FAILURE,
                            "records were not written to the trail", data);
    if (rc < 0) {
        atomic_fetch_add(&t->lost_unreported, lost);
        *reported = 0;
    }
    return rc;
}

/* Try to make the trail writable again: rewrite key.state if pending, cut
 * any partial write, then write audit_resumed durably. */
static void try_resume(talon_audit_trail *t)
{
    char since[28];
    uint64_t reported = 0, rejected;
    chain_mark mark;
    json_t *data;
    int err = atomic_load(&t->error);
    size_t nrecords;
    int rc;

    if (t->file_removed || t->state_removed) {
        rc = audit_restore_removed(t, &t->recovered_pending);
        if (rc < 0) {
            mark_unhealthy(t, -rc); /* audit_restore_removed() logged it */
            return;
        }
    }
    rc = store_pending_state(t);
    if (rc == 0)
        rc = truncate_to_good(t);
    if (rc < 0) {
        mark_unhealthy(t, -rc);
        audit_log_error(t, "audit trail: retry failed: %s", strerror(-rc));
        return;
    }

    chain_save(t, &mark);
    t->batch.len = 0;
    nrecords = 1;
    rc = 0;
    if (t->recovered_pending != NULL) {
        rc = append_system_line(t, "audit_recovered", TALON_AUDIT_SUCCESS, NULL,
                                json_incref(t->recovered_pending));
        nrecords++;
    }
    audit_format_time(since, t->down_since_ns);
    rejected = atomic_load(&t->rejected_during_outage);
    data = json_pack("{s:s,s:s,s:I}", "since", since, "error", strerror(err), "rejected",
                     (json_int_t)rejected);
    if (rc == 0)
        rc = append_system_line(t, "audit_resumed", TALON_AUDIT_SUCCESS, NULL, data);
    else
        json_decref(data);
    if (rc == 0)
        rc = append_lost_report(t, &reported);
    if (rc < 0) {
        chain_restore(t, &mark);
        t->batch.len = 0;
        mark_unhealthy(t, -rc);
        return;
    }
    rc = write_batch(t, &mark, true);
    if (rc < 0) {
        if (reported > 0)
            atomic_fetch_add(&t->lost_unreported, reported);
        return; /* write_batch logged it and set the next retry */
    }
    atomic_fetch_add(&t->st_records, nrecords + (reported > 0 ? 1 : 0));
    json_decref(t->recovered_pending);
    t->recovered_pending = NULL;
    /* Rejections between the count above and this store are not reported
     * in the trail; they remain in the statistics. */
    atomic_fetch_sub(&t->rejected_during_outage, rejected);
    atomic_store(&t->healthy, true);
    talon_log_info(t->log, "audit trail: writable again in %s (down since %s, last error: %s, "
                   "%" PRIu64 " submissions rejected, %" PRIu64 " records lost)",
                   t->dir, since, strerror(err), rejected, reported);
}

/* ---- batches ---- */

static void finish_control(talon_audit_trail *t, audit_item *it, int status)
{
    audit_control_wait *w = it->ctx;

    pthread_mutex_lock(&t->mutex);
    w->status = status;
    w->finished = true;
    pthread_cond_broadcast(&t->control);
    pthread_mutex_unlock(&t->mutex);
}

/* Count the failures among records [from, to), then call their done
 * callbacks and free them. Counting comes first, so the statistics that a
 * callback's thread reads already include its record. */
static void complete_records(talon_audit_trail *t, audit_item *from, audit_item *to, int status)
{
    uint64_t lost = 0, rejected = 0;

    for (audit_item *it = from; it != to; it = it->next) {
        int st = it->status != 0 ? it->status : status;
        if (st == 0)
            continue;
        /* An async record under fail_closed was already accepted, so it is
         * lost like every record under fail_open. */
        if (t->failure == TALON_AUDIT_FAIL_OPEN || it->mode == TALON_AUDIT_ASYNC)
            lost++;
        else
            rejected++;
    }
    if (lost > 0) {
        atomic_fetch_add(&t->st_lost, lost);
        atomic_fetch_add(&t->lost_unreported, lost);
    }
    if (rejected > 0) {
        atomic_fetch_add(&t->st_rejected, rejected);
        atomic_fetch_add(&t->rejected_during_outage, rejected);
    }
    /* The callbacks resume held responses: run them all first, and the
     * memory bookkeeping after them. */
    size_t n = 0;
    for (audit_item *it = from; it != to; it = it->next, n++) {
        if (it->done != NULL)
            it->done(it->ctx, it->status != 0 ? it->status : status);
    }
    audit_items_recycle(t, from, n);
}

/* Write the records [from, to) that are already in the batch buffer. */
static int flush_segment(talon_audit_trail *t, const chain_mark *mark, audit_item *from,
                         audit_item *to, size_t nrecords, bool durable)
{
    int rc = 0;

    if (t->batch.len > 0) {
        rc = write_batch(t, mark, durable);
        if (rc == 0) {
            atomic_fetch_add(&t->st_records, nrecords);
            atomic_fetch_add(&t->st_batches, 1);
        }
    }
    complete_records(t, from, to, rc);
    return rc;
}

static int run_control(talon_audit_trail *t, audit_item *it)
{
    if (!atomic_load(&t->healthy)) {
        try_resume(t);
        if (!atomic_load(&t->healthy))
            return -atomic_load(&t->error);
    }
    switch (it->kind) {
    case AUDIT_ITEM_SEAL:
        return audit_seal_epoch(t, "interval"); /* the epoch ends early */
    case AUDIT_ITEM_ROTATE:
        t->rotate_retry_ns = 0; /* an explicit request does not wait */
        return rotate(t);
    case AUDIT_ITEM_STOP:
        return audit_seal_epoch(t, "shutdown");
    default:
        return -EINVAL;
    }
}

/* Append the lines of the n records from first (a group queued by
 * talon_audit_submit_group, or one record), all of them or none. When one
 * cannot be appended (out of memory), the lines of the others are taken
 * back and each of the n gets status -ENOMEM. The rest of the batch goes
 * on. Returns the record after them. */
static audit_item *append_records(talon_audit_trail *t, audit_item *first, size_t n)
{
    chain_mark mark;
    size_t batch_len = t->batch.len;
    audit_item *it = first;
    int rc = 0;

    chain_save(t, &mark);
    for (size_t i = 0; i < n && it != NULL; i++, it = it->next) {
        if (rc == 0)
            rc = append_line(t, it->middle, it->len);
    }
    if (rc < 0) {
        chain_restore(t, &mark);
        t->batch.len = batch_len;
        for (audit_item *r = first; r != it; r = r->next)
            r->status = -ENOMEM;
    }
    return it;
}

/* Process one batch taken from the queue. Returns true after a stop item. */
static bool process_batch(talon_audit_trail *t, audit_item *list)
{
    audit_item *seg = list, *it = list;
    chain_mark mark;
    size_t nrecords = 0;
    uint64_t reported = 0;
    bool durable = false, stop = false;
    bool witness_last = false; /* the last record appended is sys_shutdown */

    if (atomic_load(&t->healthy))
        (void)store_pending_state(t);
    chain_save(t, &mark);
    t->batch.len = 0;
    if (atomic_load(&t->healthy) && append_lost_report(t, &reported) == 0 && reported > 0)
        nrecords++;

    while (it != NULL) {
        audit_item *next = it->next;

        if (it->kind != AUDIT_ITEM_RECORD) {
            /* Everything queued before a control item is written first. */
            int rc = 0;
            it->next = NULL; /* detach, so the segment ends here */
            if (atomic_load(&t->healthy)) {
                rc = flush_segment(t, &mark, seg, it, nrecords, true);
                if (rc == 0 && witness_last)
                    audit_witness_emit(t, "sys_shutdown", "shutdown");
            } else {
                complete_records(t, seg, it, -atomic_load(&t->error));
            }
            witness_last = false;
            if (rc < 0 && reported > 0)
                atomic_fetch_add(&t->lost_unreported, reported);
            reported = 0;
            rc = run_control(t, it);
            if (it->kind == AUDIT_ITEM_STOP)
                stop = true;
            finish_control(t, it, rc);
            free(it);
            seg = next;
            nrecords = 0;
            durable = false;
            chain_save(t, &mark);
            t->batch.len = 0;
            it = next;
            continue;
        }

        if (!atomic_load(&t->healthy)) {
            it = next;
            continue;
        }
        size_t n = it->group > 1 ? it->group : 1;
        audit_item *after = append_records(t, it, n);
        if (it->status == 0) {
            nrecords += n;
            for (audit_item *r = it; r != after; r = r->next) {
                witness_last = r->witness;
                if (r->mode == TALON_AUDIT_SYNC)
                    durable = true;
            }
        }
        it = after;
    }

    if (seg != NULL || t->batch.len > 0) {
        int rc;
        if (atomic_load(&t->healthy)) {
            rc = flush_segment(t, &mark, seg, NULL, nrecords, durable);
            if (rc < 0 && reported > 0)
                atomic_fetch_add(&t->lost_unreported, reported);
        } else {
            complete_records(t, seg, NULL, -atomic_load(&t->error));
        }
    }
    return stop;
}

/* ---- timers ---- */

static int64_t epoch_deadline(const talon_audit_trail *t)
{
    return t->epoch_seconds ? timespec_ns(&t->epoch_started) + (int64_t)t->epoch_seconds * 1000000000
                            : INT64_MAX;
}

static int64_t rotate_deadline(const talon_audit_trail *t)
{
    return t->rotate_interval_s ? timespec_ns(&t->file_started) +
                                      (int64_t)t->rotate_interval_s * 1000000000
                                : INT64_MAX;
}

static int64_t next_deadline(const talon_audit_trail *t)
{
    int64_t d;

    if (!atomic_load(&t->healthy))
        return timespec_ns(&t->next_retry);
    d = epoch_deadline(t);
    if (rotate_deadline(t) < d)
        d = rotate_deadline(t);
    if (t->file_dirty && timespec_ns(&t->dirty_since) + ASYNC_SYNC_INTERVAL_NS < d)
        d = timespec_ns(&t->dirty_since) + ASYNC_SYNC_INTERVAL_NS;
    return d;
}

/* Work that is due without traffic: retries, epoch ends, rotation, and the
 * fdatasync of async records written more than a second ago. */
static void run_timers(talon_audit_trail *t)
{
    int64_t now = monotonic_ns();

    if (!atomic_load(&t->healthy)) {
        if (now >= timespec_ns(&t->next_retry))
            try_resume(t);
        if (!atomic_load(&t->healthy))
            return;
    }
    if (t->rotate_size > 0 && t->file_size >= t->rotate_size) {
        (void)rotate(t);
    } else if (now >= rotate_deadline(t) && t->file_size > 0) {
        (void)rotate(t);
    } else if (now >= rotate_deadline(t)) {
        audit_monotonic(&t->file_started); /* nothing to rotate yet */
    }
    if (atomic_load(&t->healthy) && monotonic_ns() >= epoch_deadline(t))
        (void)audit_seal_epoch(t, "interval");
    if (t->file_dirty && monotonic_ns() >= timespec_ns(&t->dirty_since) + ASYNC_SYNC_INTERVAL_NS) {
        if (fdatasync(t->fd) == 0) {
            audit_ring_file_synced(t);
            t->file_dirty = false;
            atomic_fetch_add(&t->st_fsyncs, 1);
        } else {
            int err = errno;
            audit_log_error(t, "audit trail: fdatasync of async records in %s failed: %s",
                            t->dir, strerror(err));
            audit_ring_file_sync_failed(t, err);
            audit_monotonic(&t->dirty_since);
        }
    }
}

/* Wait under t->mutex until there is work to take or a timer is due.
 * Queued async records wait until nap_end for more to join them. A sync
 * record, a control item or AUDIT_ASYNC_BATCH async records (wake_now) end
 * the wait at once, so the sync records queued during one fdatasync form
 * the next batch. Waiting up to 1 ms for the previous batch to come back
 * made larger batches but left the CPUs idle during each fdatasync: 64
 * clients on a 2-core VM got 12 to 18 % more requests/s without it. */
static void wait_for_work(talon_audit_trail *t, int64_t nap_end)
{
    for (;;) {
        int64_t now = monotonic_ns();
        int64_t deadline = next_deadline(t);
        size_t nsync = t->queued_sync;
        size_t nasync = atomic_load_explicit(&t->queued, memory_order_relaxed) - nsync;
        struct timespec ts;

        if (t->wake_now || nsync > 0 ||
            (nasync > 0 && now >= nap_end))
            return;
        if (now >= deadline)
            return;
        if (now < nap_end && nap_end < deadline)
            deadline = nap_end;
        ts.tv_sec = deadline / 1000000000;
        ts.tv_nsec = deadline % 1000000000;
        t->writer_waiting = true;
        t->writer_napping = now < nap_end;
        pthread_cond_timedwait(&t->wake, &t->mutex, &ts);
        t->writer_waiting = false;
    }
}

void *audit_writer_main(void *arg)
{
    talon_audit_trail *t = arg;
    int64_t nap_end = 0;
    bool stop = false;

    pthread_mutex_lock(&t->mutex);
    while (!stop) {
        wait_for_work(t, nap_end);
        audit_item *list = t->head;
        t->head = t->tail = NULL;
        t->wake_now = false;
        t->queued_sync = 0;
        atomic_store_explicit(&t->queued, 0, memory_order_relaxed);
        pthread_mutex_unlock(&t->mutex);

        if (list != NULL)
            stop = process_batch(t, list);
        if (!stop)
            run_timers(t);

        pthread_mutex_lock(&t->mutex);
        nap_end = list != NULL ? monotonic_ns() + AUDIT_WRITER_NAP_NS : 0;
    }
    pthread_mutex_unlock(&t->mutex);
    return NULL;
}
