/* talon audit trail reader: open a trail read-only, verify its chain, MACs
 * and seals, and select records with filters.
 *
 * The byte format is specified in docs/audit-format.md. Nothing here depends
 * on the HTTP layer or on a running writer: a reader maps the files as they
 * are when it opens them (a live trail may grow afterwards; reopen to see
 * more).
 */
#ifndef TALON_AUDIT_READER_H
#define TALON_AUDIT_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Reader ------------------------------------------------------------ */

typedef struct talon_audit_reader talon_audit_reader;

/* Open a trail: each path is a trail directory (its audit-NNNNNNNN.jsonl
 * files are taken in index order) or a single trail file. Files are mapped
 * read-only. Returns 0, or a negative errno with err naming the path. */
int talon_audit_reader_open(talon_audit_reader **out, const char *const *paths,
                            size_t npaths, char *err, size_t errlen);
void talon_audit_reader_close(talon_audit_reader *reader);

size_t talon_audit_reader_file_count(const talon_audit_reader *reader);
const char *talon_audit_reader_file_path(const talon_audit_reader *reader, size_t i);
/* File index from the name audit-NNNNNNNN.jsonl, or 0 when the name has no index. */
uint64_t talon_audit_reader_file_index(const talon_audit_reader *reader, size_t i);
/* The mapped bytes of file i (NULL when the file is empty). */
const char *talon_audit_reader_file_data(const talon_audit_reader *reader, size_t i,
                                         size_t *size);
uint64_t talon_audit_reader_total_bytes(const talon_audit_reader *reader);

/* The path of the file of an open reader whose mapping contains addr, or
 * NULL. Async-signal-safe, for a SIGBUS handler: a mapped file cut shorter
 * by another process raises SIGBUS on reads past its new end. A reader
 * opened meanwhile is safe; one that another thread closes during the call
 * is not. */
const char *talon_audit_reader_mapped_path(const void *addr);

/* ---- Records ----------------------------------------------------------- */

/* A string field as it appears in the line: p/len span the JSON string
 * contents without the quotes and still escaped; escaped is true when the
 * span contains a backslash. null is true for a JSON null. */
typedef struct talon_audit_str {
    const char *p;
    size_t len;
    bool null;
    bool escaped;
} talon_audit_str;

/* One record, parsed in place: every field points into the mapped line. */
typedef struct talon_audit_record {
    const char *line;        /* the record's bytes, without the final '\n' */
    size_t len;
    const char *file;        /* path of the file that contains it */
    uint64_t lineno;         /* 1-based line number in that file */

    uint64_t seq;
    uint64_t epoch;
    int64_t time_us;         /* microseconds since the Unix epoch, UTC */
    talon_audit_str time, type, outcome, actor_id, source_ip, user_agent;
    talon_audit_str request_id, method, route, path, target_type, target_id;
    talon_audit_str reason, host, trail, prev, mac;
    const char *roles;       /* the actor's roles array as JSON text, e.g. ["admin"] */
    size_t roles_len;
    const char *data;        /* the data object as JSON text */
    size_t data_len;
    size_t prefix_len;       /* bytes of the line that are hashed (P_i) */
} talon_audit_record;

/* Parse one line (without '\n') strictly: all keys in the specified order,
 * valid JSON, no raw control bytes. Returns 0, or -EINVAL with err saying
 * what is wrong and at which byte. */
int talon_audit_record_parse(const char *line, size_t len, talon_audit_record *out,
                             char *err, size_t errlen);

/* Decode a string field into buf (NUL-terminated, truncated to buflen - 1).
 * Returns the decoded length before truncation; a null field gives 0. */
size_t talon_audit_str_decode(const talon_audit_str *s, char *buf, size_t buflen);

/* True when field s equals the plain (unescaped) string value. */
bool talon_audit_str_equals(const talon_audit_str *s, const char *value);

/* Parse RFC 3339 ("2026-12-04T20:38:53.123456Z", offsets and fewer
 * fractional digits accepted; a bare date means midnight UTC) into
 * microseconds since the Unix epoch. Returns 0, -EINVAL, or -ERANGE for a
 * well-formed date that does not exist (2026-02-30, 2025-02-29). */
int talon_audit_parse_time(const char *text, size_t len, int64_t *out_us);

/* ---- Verification ------------------------------------------------------ */

typedef enum talon_audit_verdict {
    TALON_AUDIT_INTACT = 0,
    TALON_AUDIT_MODIFIED,        /* MAC mismatch, or the next record's prev does not match */
    TALON_AUDIT_DELETED,         /* sequence gap or missing file */
    TALON_AUDIT_INSERTED,        /* a record that does not belong between its neighbours */
    TALON_AUDIT_REORDERED,       /* records out of sequence order */
    TALON_AUDIT_TRUNCATED,       /* torn line, file without its seal, trail without a shutdown seal */
    TALON_AUDIT_UNSEALED,        /* records after the last seal (live trails pass with open) */
    TALON_AUDIT_WRONG_EPOCH_KEY, /* MAC made with a later epoch's key than the record's position */
    TALON_AUDIT_SPLICED,         /* records of another trail (trail id or chain break at a file) */
    TALON_AUDIT_MALFORMED,       /* the line does not parse as a version 1 record */
    TALON_AUDIT_BAD_SEAL,        /* a seal whose count, first/last seq or head do not match */
    TALON_AUDIT_INCOMPLETE       /* the trail does not start at seq 1 (retention); passes with partial */
} talon_audit_verdict;

/* Short name of a verdict: "intact", "modified", "wrong epoch key", ... */
const char *talon_audit_verdict_name(talon_audit_verdict verdict);

/* An audit_recovered record that passed every check: a start after a run
 * that did not stop cleanly, or a trail file or key state put back after
 * its removal (docs/audit-format.md). The strings are valid only during the
 * on_recovery call. */
typedef struct talon_audit_recovery {
    const char *file;        /* the trail file that contains the record */
    uint64_t line;
    uint64_t seq;
    const char *cause;       /* data.cause (torn, modified, unclean_shutdown, file_removed, ...); "" when missing */
    const char *torn_file;   /* data.torn_file: where recovery moved the bytes it cut; NULL when none */
} talon_audit_recovery;

typedef struct talon_audit_verify_options {
    const char *key_path;   /* verification key file; NULL with no_key */
    bool no_key;            /* chain-only: hashes, sequence, epochs and seals, no MACs */
    bool open;              /* live trail: records after the last seal are allowed */
    bool partial;           /* allow a trail whose first files were removed by retention */
    /* With the key: the highest epoch the first record may have. Deriving
     * K_E from K_0 takes E hashes, so a trail (--partial) that starts past
     * this epoch stops with TALON_AUDIT_INCOMPLETE before any key is
     * derived. 0: no limit. */
    uint64_t max_start_epoch;
    unsigned threads;       /* hashing threads; 0: one per CPU, at most 8 */
    /* Called now and then from the calling thread with bytes checked so far. */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
    /* Called from the calling thread for each audit_recovered record once it
     * passed every check, in trail order. A record after the first problem
     * is never reported, so only an intact verdict means that the calls saw
     * every audit_recovered record. */
    void (*on_recovery)(void *ctx, const talon_audit_recovery *recovery);
    void *recovery_ctx;
} talon_audit_verify_options;

void talon_audit_verify_options_init(talon_audit_verify_options *opts);

typedef struct talon_audit_verify_result {
    talon_audit_verdict verdict;
    /* Location of the first problem; file is NULL when the problem concerns
     * the trail as a whole. */
    const char *file;
    uint64_t line;
    uint64_t seq;
    char detail[512];        /* one sentence: what was found and what was expected */

    uint64_t records;        /* records checked */
    uint64_t seals;
    uint64_t files;
    uint64_t bytes;
    uint64_t first_seq, last_seq;
    uint64_t first_epoch, last_epoch;
    uint64_t unsealed;       /* records after the last seal */
    uint64_t torn_bytes;     /* open: bytes after the last complete record of the last file */
    bool macs_checked;       /* false in no_key mode */
    char trail[33];          /* trail id (hex) */
    char head[65];           /* hash of the last record checked (hex) */
} talon_audit_verify_result;

/* Verify the whole trail. Returns 0 when the check ran (the verdict is in
 * result, TALON_AUDIT_INTACT or the first problem), or a negative errno
 * when it could not run (unreadable key file, ...), with err saying why. */
int talon_audit_verify(talon_audit_reader *reader, const talon_audit_verify_options *opts,
                       talon_audit_verify_result *result, char *err, size_t errlen);

/* Read a verification key file ("talon-audit-key v1 trail=<32 hex> key0=<64 hex>"). */
int talon_audit_key_load(const char *path, uint8_t trail[16], uint8_t key0[32],
                         char *err, size_t errlen);

/* ---- External witness -------------------------------------------------- */

/* One chain head that the server sent to its witness logger, read back from
 * a witness log (docs/audit-format.md, "External witness"). */
typedef struct talon_audit_witness_head {
    char trail[33];          /* trail id, 32 hex digits */
    uint64_t epoch;
    uint64_t seq;            /* last_seq: the witnessed record's seq */
    char head[65];           /* hex SHA-256 of that record's P_i */
    char record[32];         /* audit_epoch_sealed, sys_startup or sys_shutdown */
    char cause[16];          /* interval, rotation, shutdown or startup */
    uint64_t line;           /* line of the witness log */
} talon_audit_witness_head;

typedef struct talon_audit_witness {
    char *path;
    talon_audit_witness_head *heads;
    size_t count;
} talon_audit_witness;

/* Read every witness line of a log file: a line counts when it contains
 * "talon-audit-witness v1 ", anywhere, so a syslog server's file with RFC
 * 5424 headers or a talon text log both work. Returns 0, or a negative
 * errno with err naming the file (and line, for a malformed witness line). */
int talon_audit_witness_load(const char *path, talon_audit_witness **out, char *err, size_t errlen);
void talon_audit_witness_free(talon_audit_witness *witness);

typedef struct talon_audit_witness_result {
    uint64_t checked;        /* heads of this trail found in it with the same hash */
    uint64_t other_trails;   /* witness lines of other trails, ignored */
    uint64_t before_start;   /* heads older than the trail's first record (retention) */
    uint64_t last_seq;       /* highest witnessed seq of this trail */
} talon_audit_witness_result;

/* Check every witnessed head of trail_hex against the trail: the record
 * with that seq must exist and hash to the witnessed head. A head past the
 * trail's last record means the trail was cut ("truncated after the last
 * seal"). Only when result->verdict is still TALON_AUDIT_INTACT is the
 * first problem written to it (verdict, file, line, seq, detail). Returns 0
 * when the check ran, -ENOENT when the witness has no line for this trail,
 * or another negative errno; err says why. */
int talon_audit_witness_check(talon_audit_reader *reader, const talon_audit_witness *witness,
                              const char *trail_hex, talon_audit_verify_result *result,
                              talon_audit_witness_result *wres, char *err, size_t errlen);

/* ---- Query ------------------------------------------------------------- */

/* Record selection. Every set field must match (AND). Strings are compared
 * exactly after JSON unescaping; type may end with '*' for a prefix. */
typedef struct talon_audit_filter {
    char *type;
    char *actor;
    char *outcome;          /* "success" or "failure" */
    char *request_id;
    char *target_type;
    char *target_id;
    char *source_ip;
    int64_t since_us;       /* inclusive; INT64_MIN: no bound */
    int64_t until_us;       /* exclusive; INT64_MAX: no bound */
    uint64_t limit;         /* stop after this many matches; 0: no limit */
    bool newest_first;      /* walk the trail backwards (with limit: the latest matches) */
} talon_audit_filter;

void talon_audit_filter_init(talon_audit_filter *filter);
void talon_audit_filter_release(talon_audit_filter *filter);

/* Set one filter by name, as the CLI options and GET /audit query parameters
 * spell them: type, actor, outcome, since, until, request_id, target_type,
 * target_id, source_ip, limit, order ("asc" or "desc"). "target" accepts
 * "TYPE:ID" or "TYPE". Returns 0, -ENOENT for an unknown name or -EINVAL
 * for an invalid value, with err saying which. */
int talon_audit_filter_set(talon_audit_filter *filter, const char *name, const char *value,
                           char *err, size_t errlen);

/* True when the parsed record matches every filter. */
bool talon_audit_filter_match(const talon_audit_filter *filter, const talon_audit_record *rec);

/* Called for every matching record; return nonzero to stop the query. */
typedef int (*talon_audit_record_fn)(void *ctx, const talon_audit_record *rec);

/* Called for a line the query had to parse but could not (why says what is
 * wrong); lines without the searched bytes are not parsed and not reported. */
typedef void (*talon_audit_skip_fn)(void *ctx, const char *file, uint64_t line, const char *why);

/* Run a query over the reader's files. Lines that do not parse are skipped
 * and counted in *skipped (may be NULL). Returns the number of matches
 * (>= 0), or a negative errno when fn asked to stop with a negative value. */
int64_t talon_audit_query(talon_audit_reader *reader, const talon_audit_filter *filter,
                          talon_audit_record_fn fn, void *ctx, uint64_t *skipped);
/* Optional callbacks of a query; any may be NULL. */
typedef struct talon_audit_query_hooks {
    talon_audit_skip_fn skip;    /* each line that had to be parsed and could not */
    void *skip_ctx;
    /* Bytes of the trail scanned so far, now and then (oldest-first queries only). */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
} talon_audit_query_hooks;

/* talon_audit_query with hooks (may be NULL). */
int64_t talon_audit_query_hooked(talon_audit_reader *reader, const talon_audit_filter *filter,
                                 talon_audit_record_fn fn, void *ctx, uint64_t *skipped,
                                 const talon_audit_query_hooks *hooks);

/* Write a record as one aligned table row (time, seq, type, outcome, actor,
 * source, target, request id) into buf; returns the length written
 * (truncated to buflen - 1). talon_audit_table_header does the same for the
 * column titles. */
size_t talon_audit_table_row(const talon_audit_record *rec, char *buf, size_t buflen);
size_t talon_audit_table_header(char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif
#endif
