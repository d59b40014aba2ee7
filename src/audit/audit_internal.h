/* Internal interfaces of the audit trail writer (src/audit/). The byte
 * format is specified in docs/audit-format.md. */
#ifndef TALON_AUDIT_INTERNAL_H
#define TALON_AUDIT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "talon/audit.h"
#include "talon/log.h"

#define AUDIT_KEY_LEN 32
#define AUDIT_HASH_LEN 32
#define AUDIT_TRAIL_ID_LEN 16
#define AUDIT_HEX_HASH_LEN 64
#define AUDIT_HEX_TRAIL_LEN 32

/* The fixed-length key state line:
 * "talon-audit-state v1 trail=<32 hex> epoch=<20 digits> key=<64 hex>\n" */
#define AUDIT_STATE_LINE_LEN 156
#define AUDIT_EVOLVE_LABEL "talon-audit-evolve-v1"

/* The 73-byte suffix of a line after P_i: "mac":"<64 hex>"} (without \n). */
#define AUDIT_MAC_SUFFIX_LEN 73

/* ---- growable byte buffer (record.c) ---- */

typedef struct audit_buf {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; the contents are incomplete */
} audit_buf;

void audit_buf_init(audit_buf *b);
void audit_buf_free(audit_buf *b);
bool audit_buf_reserve(audit_buf *b, size_t extra);
void audit_buf_append_slow(audit_buf *b, const void *p, size_t n);
void audit_buf_append_str(audit_buf *b, const char *s);
void audit_buf_append_u64(audit_buf *b, uint64_t v);
void audit_buf_append_hex(audit_buf *b, const unsigned char *p, size_t n);
/* A JSON string with quotes, escaped as the format requires. */
void audit_buf_append_json_string(audit_buf *b, const char *s, size_t len);
/* A decimal integer, as printf's %lld writes it. */
void audit_buf_append_i64(audit_buf *b, int64_t v);

/* Append n bytes; the room for them is checked inline, because records are
 * built from many short pieces. */
static inline void audit_buf_append(audit_buf *b, const void *p, size_t n)
{
    /* reserve() keeps one byte spare after len, so the test is n < room. */
    if (!b->failed && n < b->cap - b->len) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return;
    }
    audit_buf_append_slow(b, p, n);
}

/* Append a string literal without measuring it at run time. */
#define audit_buf_append_lit(b, lit) audit_buf_append((b), "" lit, sizeof(lit) - 1)

/* ---- redaction and serialization (record.c) ---- */

typedef struct audit_redactor {
    char **words;  /* lowercase, NULL-terminated */
    size_t *lens;  /* strlen of each word */
    size_t nwords;
    unsigned fields; /* bit i set: the record's own field key i matches (record.c) */
} audit_redactor;

int audit_redactor_init(audit_redactor *r, const char *const *words);
void audit_redactor_free(audit_redactor *r);
bool audit_redactor_match(const audit_redactor *r, const char *key, size_t len);

/* Serialize the middle part of a record, from "time" up to and including the
 * comma after "trail", into b. The writer adds the head ({"v":1,"seq":..,
 * "epoch":..,) and the chain fields. Returns 0 or -EINVAL/-ENOMEM. */
int audit_serialize_middle(audit_buf *b, const talon_audit_event *ev, int64_t time_ns,
                           const audit_redactor *redact, const char *host,
                           const char *trail_hex);

/* RFC 3339 UTC with 6 fractional digits: 27 bytes plus NUL. */
void audit_format_time(char out[28], int64_t time_ns);
int64_t audit_now_ns(void);

/* ---- hashing, MAC, key evolution (chain.c) ---- */

typedef struct audit_crypto {
    EVP_MD *sha256;
    EVP_MD_CTX *hash;      /* reused for h_i */
    EVP_MD_CTX *mac_inner; /* SHA-256 state after (K xor ipad); secret */
    EVP_MD_CTX *mac_outer; /* SHA-256 state after (K xor opad); secret */
    EVP_MD_CTX *mac_work;
    bool keyed;
} audit_crypto;

int audit_crypto_init(audit_crypto *c);
void audit_crypto_free(audit_crypto *c);
/* Precompute the HMAC-SHA256 inner and outer states for key. */
int audit_crypto_set_key(audit_crypto *c, const unsigned char key[AUDIT_KEY_LEN]);
/* Drop the precomputed states (they are as secret as the key). */
void audit_crypto_wipe_key(audit_crypto *c);
int audit_crypto_hash(audit_crypto *c, const void *p, size_t n, unsigned char out[AUDIT_HASH_LEN]);
int audit_crypto_mac(audit_crypto *c, const unsigned char h[AUDIT_HASH_LEN],
                     unsigned char out[AUDIT_HASH_LEN]);
/* K_{e+1} = SHA-256("talon-audit-evolve-v1" || K_e), in place; the old key
 * and every intermediate copy are cleansed. */
int audit_key_evolve(unsigned char key[AUDIT_KEY_LEN]);
void audit_hex(char *out, const unsigned char *p, size_t n);
int audit_unhex(unsigned char *out, const char *hex, size_t nbytes);

/* ---- key state file (keystate.c) ---- */

typedef struct audit_keystate {
    unsigned char trail_id[AUDIT_TRAIL_ID_LEN];
    uint64_t epoch;
    unsigned char key[AUDIT_KEY_LEN];
} audit_keystate;

/* Open and parse the state file; *fd_out stays open (read-write) for
 * audit_keystate_store. */
int audit_keystate_load(const char *path, int *fd_out, audit_keystate *ks,
                        char *err, size_t errlen);
/* Overwrite the state line in place (pwrite at 0) and fdatasync. */
int audit_keystate_store(int fd, const audit_keystate *ks);
/* Store t's trail id, current epoch and key with audit_keystate_store. */
int audit_keystate_store_trail(int fd, const talon_audit_trail *t);
void audit_keystate_format(char line[AUDIT_STATE_LINE_LEN + 1], const audit_keystate *ks);

/* ---- the trail ---- */

/* After a batch the writer naps this long before it takes queued async
 * records, so that those queued meanwhile share one write() and cost their
 * submitters no wake-up. A control item or AUDIT_ASYNC_BATCH records end
 * the nap early. While the writer has no other work, no async record waits
 * longer for its write(). */
#define AUDIT_WRITER_NAP_NS 1000000LL
/* Written records whose memory the trail keeps for the next submissions.
 * Without it, glibc's malloc trims the heap after the writer thread frees
 * a large batch, and the request threads fault the pages in again (about
 * 5 % of talon-bench-app's CPU with async records). */
#define AUDIT_ITEM_POOL_MAX 1024
/* Larger records are freed rather than kept. */
#define AUDIT_ITEM_POOL_MAX_CAP 4096

/* Async records queued that end the nap early (a burst's memory bound). */
#define AUDIT_ASYNC_BATCH 256

enum audit_item_kind {
    AUDIT_ITEM_RECORD = 0,
    AUDIT_ITEM_SEAL,    /* close the epoch now (talon_audit_seal) */
    AUDIT_ITEM_ROTATE,  /* seal and switch files (talon_audit_rotate) */
    AUDIT_ITEM_STOP     /* seal with cause shutdown and stop the writer */
};

/* A request to the writer: a pre-serialized record or a control command. */
typedef struct audit_item {
    struct audit_item *next;
    enum audit_item_kind kind;
    talon_audit_mode mode;
    talon_audit_done_fn done;
    void *ctx;
    int status;     /* set when this record alone (or its group) failed (-ENOMEM) */
    size_t group;   /* records of the group that this record starts (itself included); 0 or 1: none */
    bool witness;   /* sys_shutdown: send its head to the witness once written */
    size_t cap;     /* bytes allocated, header included; 0: not reusable */
    size_t len;     /* bytes of middle */
    char middle[];  /* "time":... up to the comma after "trail" */
} audit_item;

/* A thread waiting for a control item (seal, rotate, stop) to finish. */
typedef struct audit_control_wait {
    pthread_mutex_t *mutex;
    pthread_cond_t *cond;
    bool finished;
    int status;
} audit_control_wait;

struct talon_audit_trail {
    /* Configuration, fixed after open. */
    char *dir;
    char *state_path;
    char *host;
    char trail_hex[AUDIT_HEX_TRAIL_LEN + 1];
    unsigned epoch_seconds;
    uint64_t rotate_size;
    unsigned rotate_interval_s;
    unsigned rotate_keep;
    mode_t mode;
    size_t queue_capacity;
    talon_audit_failure failure;
    audit_redactor redact;
    talon_logger *log;
    talon_logger *witness;    /* NULL: no witness lines */

    /* Queue: submitters append under mutex; the writer takes the whole list. */
    pthread_mutex_t mutex;
    pthread_cond_t wake;      /* CLOCK_MONOTONIC: work arrived or stop */
    pthread_cond_t control;   /* a control item finished */
    pthread_rwlock_t pin;     /* readers in this process hold it shared; a cut takes it exclusive */
    audit_item *head;
    audit_item *tail;
    atomic_size_t queued;     /* records in the queue; changed under mutex only */
    size_t queued_sync;       /* sync records among them */
    bool writer_waiting;      /* the writer sleeps in its wait and no wake-up was sent yet */
    bool writer_napping;      /* that wait is a nap after a batch: async records do not end it */
    bool wake_now;            /* the queue contains a control item or AUDIT_ASYNC_BATCH records */
    bool stopping;            /* no new submissions */
    pthread_t writer;
    bool writer_started;

    /* Reusable records (AUDIT_ITEM_POOL_MAX), linked by next. */
    pthread_mutex_t pool_lock;
    audit_item *pool;
    size_t pool_len;

    /* Chain state: owned by the writer thread (by open before it starts). */
    unsigned char key[AUDIT_KEY_LEN];
    uint64_t epoch;
    uint64_t seq;                         /* last written */
    unsigned char prev[AUDIT_HASH_LEN];   /* h of the last written record */
    uint64_t epoch_first_seq;             /* 0: no record in this epoch yet */
    audit_crypto crypto;
    int state_fd;
    bool state_dirty;                     /* key evolved but key.state not yet rewritten */

    /* Active file: owned by the writer thread. */
    int fd;
    unsigned file_index;
    uint64_t file_size;                   /* bytes of complete, written records */
    uint64_t reserved_end;                /* blocks allocated up to here, beyond file_size */
    bool file_dirty;                      /* written but not yet fdatasync'ed */
    bool retention_pending;
    int64_t rotate_retry_ns;              /* CLOCK_MONOTONIC; no rotation before this after a failure */
    struct timespec epoch_started;        /* CLOCK_MONOTONIC */
    struct timespec file_started;
    struct timespec dirty_since;
    audit_buf batch;

    /* Sync ring (ring.c): owned by the writer thread. */
    char *ring_path;
    int ring_fd;                          /* -1: sync batches fdatasync the trail file */
    uint64_t ring_size;                   /* 0: no ring */
    uint64_t ring_pos;                    /* where the next entry goes */
    uint64_t ring_generation;             /* of the entries since the last reset */
    uint64_t ring_covered;                /* bytes of the active file durable in it or the ring */
    uint64_t ring_kicked;                 /* writeback of the active file started up to here */
    bool ring_reset_needed;               /* the ring may hold bytes the file no longer has */
    audit_buf ring_scratch;               /* async bytes read back for an entry */

    /* Failure state: written by the writer, read by submitters. */
    atomic_bool healthy;
    atomic_int error;                     /* positive errno of the last failure */
    int64_t down_since_ns;
    struct timespec next_retry;
    talon_log_limit *error_limit;         /* audit_log_error(): one message a second */
    bool file_removed;                    /* the active file has no name left (st_nlink 0) */
    bool state_removed;                   /* key.state has no name left */
    json_t *recovered_pending;            /* audit_recovered data not yet written, or NULL */
    atomic_uint_fast64_t lost_unreported; /* lost records not yet reported in the trail */
    atomic_uint_fast64_t rejected_during_outage;
    atomic_int_fast64_t submit_log_ns;    /* last rejection logged by a submitter */

    /* Statistics. */
    atomic_uint_fast64_t st_records;
    atomic_uint_fast64_t st_fsyncs;
    atomic_uint_fast64_t st_lost;
    atomic_uint_fast64_t st_rejected;
    atomic_uint_fast64_t st_last_seq;
    atomic_uint_fast64_t st_epoch;
    atomic_uint_fast64_t st_batches;
};

/* trail.c */
int audit_trail_file_path(const talon_audit_trail *t, unsigned index, char *out, size_t outlen);
int audit_open_active_file(talon_audit_trail *t, unsigned index, bool create_new);
int audit_recover(talon_audit_trail *t, const audit_keystate *ks, char *err, size_t errlen);
int audit_rotate_file(talon_audit_trail *t);
/* Allocate the active file's blocks ahead of len more bytes; see trail.c. */
void audit_reserve_space(talon_audit_trail *t, size_t len);
/* Free the blocks allocated beyond the active file's end. */
void audit_release_space(talon_audit_trail *t);
/* Read exactly len bytes at off; -EIO when the file ends first. */
int audit_read_full(int fd, void *buf, size_t len, off_t off);
void audit_apply_retention(talon_audit_trail *t);
int audit_fsync_dir(const char *dir);

/* ring.c: the sync ring beside the trail. Writer thread, or open and close. */
#define AUDIT_RING_MIN_SIZE (64ull * 1024)
#define AUDIT_RING_MAX_SIZE (1ull << 30)
/* Open the ring file if one exists; size is the configured size (0: off). */
int audit_ring_open(talon_audit_trail *t, uint64_t size);
/* Write the ring's records back to trail file active (0: there is none). */
int audit_ring_replay(talon_audit_trail *t, unsigned active, char *err, size_t errlen);
/* After recovery: create or resize the ring and start a generation. */
int audit_ring_prepare(talon_audit_trail *t);
/* Make the len bytes just written at file_size durable, and everything
 * before them. Returns 0 or -errno. */
int audit_ring_commit(talon_audit_trail *t, const char *data, size_t len);
/* An fdatasync of the active file failed with err. */
void audit_ring_file_sync_failed(talon_audit_trail *t, int err);
/* The active file was fdatasync'ed up to file_size. */
void audit_ring_file_synced(talon_audit_trail *t);
/* A batch failed: the ring may hold bytes the file no longer has. */
void audit_ring_forget(talon_audit_trail *t);
/* Before a rotation: make the active file durable without the ring. */
int audit_ring_settle(talon_audit_trail *t);
/* After a rotation: entries now go to the new active file. */
void audit_ring_file_switched(talon_audit_trail *t);
void audit_ring_close(talon_audit_trail *t);

/* restore.c: put back the active file and key.state after their removal
 * under the running server. Writer thread only. */
/* Return -ENOENT, and flag what is gone, when the active file or key.state
 * was unlinked (st_nlink 0), else 0. */
int audit_check_removed(talon_audit_trail *t);
/* Tell whether the file open as fd no longer has the name path: removed
 * (st_nlink 0), or moved (*moved set). */
bool audit_name_lost(int fd, const char *path, bool *moved);
/* Recreate what audit_check_removed() flagged; *recovered collects the
 * data of the audit_recovered record to write next. */
int audit_restore_removed(talon_audit_trail *t, json_t **recovered);

/* audit.c: mkdir -p with mode for each level created. */
int audit_make_dirs(const char *path, mode_t mode);

/* witness.c: send the head of the record just written (t->seq, t->prev)
 * to the witness logger. Writer thread or open/close only. */
void audit_witness_emit(talon_audit_trail *t, const char *record_type, const char *cause);

/* audit.c: return the written records of list (linked by next, count n)
 * for reuse, or free them. */
void audit_items_recycle(talon_audit_trail *t, audit_item *list, size_t n);

/* writer.c */
void *audit_writer_main(void *arg);
/* Write a system record (actor "system") now, durably; writer thread or
 * open/close only. data is stolen. */
int audit_write_system_record(talon_audit_trail *t, const char *type,
                              talon_audit_outcome outcome, const char *reason, json_t *data);
int audit_seal_epoch(talon_audit_trail *t, const char *cause);
void audit_log_error(talon_audit_trail *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void audit_monotonic(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

#endif
