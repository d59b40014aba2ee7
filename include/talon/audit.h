/* talon audit trail: durable, tamper-evident, forward-secure records.
 *
 * This header does not depend on the HTTP layer (see talon/audit_http.h for
 * the framework side). The byte format is specified in docs/audit-format.md.
 */
#ifndef TALON_AUDIT_H
#define TALON_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct talon_audit_trail talon_audit_trail;

typedef enum talon_audit_mode {
    TALON_AUDIT_ASYNC = 0, /* queued; written by the writer thread */
    TALON_AUDIT_SYNC       /* the completion callback runs after fdatasync */
} talon_audit_mode;

typedef enum talon_audit_failure {
    TALON_AUDIT_FAIL_CLOSED = 0, /* submissions fail while the trail cannot be written */
    TALON_AUDIT_FAIL_OPEN        /* submissions succeed; lost records are counted and reported */
} talon_audit_failure;

typedef enum talon_audit_outcome {
    TALON_AUDIT_SUCCESS = 0,
    TALON_AUDIT_FAILURE
} talon_audit_outcome;

/* One audit event as the application describes it. Every string may be
 * NULL (written as null). data is borrowed and may be NULL. */
typedef struct talon_audit_event {
    const char *type;            /* OWASP vocabulary: "authn_login_success", ... */
    talon_audit_outcome outcome;
    const char *actor_id;        /* NULL: "anonymous" */
    const char *const *actor_roles; /* NULL-terminated; NULL: none */
    const char *source_ip;
    const char *user_agent;
    const char *request_id;
    const char *method;
    const char *route;
    const char *path;
    const char *target_type;
    const char *target_id;
    const char *reason;          /* why it failed, for failures */
    json_t *data;                /* application object; redacted before writing */
} talon_audit_event;

typedef struct talon_audit_options {
    const char *dir;             /* trail directory, e.g. "var/audit" */
    const char *state_file;      /* server key state, e.g. "var/audit/key.state" */
    const char *host;            /* instance name; NULL: gethostname() */
    unsigned epoch_seconds;      /* default 3600 */
    uint64_t rotate_size;        /* bytes; 0: none; default 64 MiB */
    unsigned rotate_interval_s;  /* 0: none */
    unsigned rotate_keep;        /* files kept; 0: keep all (default) */
    /* Bytes of the sync ring beside the trail (docs/audit.md, "Durability");
     * 0: none, sync batches fdatasync the trail file. talon_audit_options_init
     * sets 16 MiB. */
    uint64_t sync_ring_size;
    mode_t mode;                 /* trail file mode; default 0600 */
    size_t queue_capacity;       /* records queued before the failure policy; default 65536 */
    talon_audit_failure failure; /* default FAIL_CLOSED */
    const char *const *redact_keys; /* NULL-terminated; NULL: the default list */
    size_t max_body_size;        /* bytes of a request body kept at level "request"; default 4096 */
    /* Logger that receives a witness line for each seal, sys_startup and
     * sys_shutdown (docs/audit-format.md, "External witness"); point it at
     * a syslog sink on another host. NULL: "audit.witness"; "none": off. */
    const char *witness;
    void *owned;                 /* internal: strings copied by talon_audit_config_set */
} talon_audit_options;

void talon_audit_options_init(talon_audit_options *opts);

/* Completion callback: status is 0 when the record is durable (sync) or
 * written (async), or a negative errno when it could not be written. Runs on
 * the writer thread; keep it short. */
typedef void (*talon_audit_done_fn)(void *ctx, int status);

/* Create the key files: the auditor's verification key (keep it elsewhere)
 * and the server's key state file (0600). Fails with -EEXIST rather than
 * overwrite either. */
int talon_audit_keygen(const char *verify_key_path, const char *state_path,
                       char *err, size_t errlen);

/* Open the trail: recover a torn tail after a crash (writing an
 * audit_recovered record), start the writer thread, write sys_startup.
 * Returns 0 or a negative errno with err naming the file and what to do. */
int talon_audit_open(talon_audit_trail **out, const talon_audit_options *opts,
                     char *err, size_t errlen);
/* Write sys_shutdown and a seal, flush, stop the writer, free. Call it once
 * every submitting thread is done: a submission that races with close may
 * use the freed trail. */
void talon_audit_close(talon_audit_trail *trail);

/* Queue a record. The event is serialized (and redacted) before return, so
 * the caller may free it right away. done (may be NULL) runs once the record
 * is written (async) or durable (sync). Returns 0, or -EIO/-ENOSPC/-EAGAIN
 * when the policy is fail_closed and the trail cannot take the record now
 * (done is then not called). Under fail_open the same negative values are
 * returned and done is not called either, but the record is counted in
 * stats.lost and reported in the trail by an audit_records_lost record; the
 * caller goes on. -EINVAL: no type, or data is not an object; -ESHUTDOWN:
 * the trail is closing. Do not call talon_audit_seal, _rotate or _close
 * from a done callback (it runs on the writer thread). */
int talon_audit_submit(talon_audit_trail *trail, const talon_audit_event *ev,
                       talon_audit_mode mode, talon_audit_done_fn done, void *ctx);

/* A record serialized by talon_audit_prepare() and not yet queued. */
typedef struct talon_audit_record talon_audit_record;

/* Serialize (and redact) a record without queueing it, as
 * talon_audit_submit() would. Returns 0 with *out set, -EINVAL or -ENOMEM.
 * Pass it to talon_audit_submit_group() or free it with
 * talon_audit_record_free(). */
int talon_audit_prepare(talon_audit_trail *trail, const talon_audit_event *ev,
                        talon_audit_mode mode, talon_audit_done_fn done, void *ctx,
                        talon_audit_record **out);
void talon_audit_record_free(talon_audit_record *rec);

/* Queue n prepared records as one group. The writer puts them in one batch,
 * written with one write() and, when one of them is sync, one fdatasync.
 * So either every record of the group is in the trail or none is, and each
 * done callback gets the same status. Takes the records in every case.
 * Returns 0, or the negative errno of talon_audit_submit() when the trail
 * cannot take the group now: nothing was queued and no done callback runs. */
int talon_audit_submit_group(talon_audit_trail *trail, talon_audit_record **recs, size_t n);

/* True while the trail is writable (under fail_closed, audited requests get
 * 503 otherwise). */
bool talon_audit_healthy(const talon_audit_trail *trail);

typedef struct talon_audit_stats {
    uint64_t records;        /* records written */
    uint64_t fsyncs;         /* fdatasync calls */
    uint64_t lost;           /* records lost under fail_open */
    uint64_t rejected;       /* submissions rejected under fail_closed */
    uint64_t last_seq;
    uint64_t epoch;
} talon_audit_stats;
void talon_audit_get_stats(const talon_audit_trail *trail, talon_audit_stats *out);

/* Close the current epoch now with a seal record and evolve the key. */
int talon_audit_seal(talon_audit_trail *trail);
/* Rotate to a new file now (seals the epoch first). */
int talon_audit_rotate(talon_audit_trail *trail);

/* Keep the writer from cutting the active file back (it does so after a
 * failed write) while this process reads the trail through
 * talon_audit_reader_open(), whose mapped pages past a cut would raise
 * SIGBUS. Pair each call with talon_audit_unpin_files(); keep the pin short. */
void talon_audit_pin_files(talon_audit_trail *trail);
void talon_audit_unpin_files(talon_audit_trail *trail);

/* True when a JSON key or field name is one the trail redacts. */
bool talon_audit_is_secret_key(const talon_audit_trail *trail, const char *key);

/* Parse the [audit] section of the INI file into opts (strings are copied
 * and owned by the library until talon_audit_options_release). */
int talon_audit_config_set(talon_audit_options *opts, const char *key, const char *value,
                           char *err, size_t errlen);
void talon_audit_options_release(talon_audit_options *opts);

#ifdef __cplusplus
}
#endif
#endif
