/* Trail verification: chain, sequence, epochs, seals and MACs, as the
 * Verification section of docs/audit-format.md lists them.
 *
 * Speed comes from two passes over each window of the trail. Hashing threads
 * (verify_pool.c) parse each line, compute h_i = SHA-256(P_i) and check the
 * MAC with per-epoch HMAC states computed once (HMAC over 32 bytes is then
 * two SHA-256 blocks); the calling thread walks the compact per-line results
 * in order and checks the links between records. Only a record that fails a
 * check, each seal and each audit_recovered record go through the careful
 * path, which re-reads the line, names the problem and reports the cause of
 * a recovery. tests/e2e/audit_ref.py follows the same rules in Python.
 */
#include "audit/verify_internal.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEAL_TYPE "audit_epoch_sealed"
#define RECOVERED_TYPE "audit_recovered"
#define LOOKAHEAD 64              /* records searched for a missing seq (reordered vs deleted) */
#define MAX_LATER_KEYS 100000ULL  /* later epochs tried for a "wrong epoch key" diagnosis */
/* A record line takes at least 414 bytes with its '\n' (every string empty),
 * so a window of N bytes has at most N / 400 records and needs no more epoch
 * keys than that, plus one. */
#define MIN_RECORD_BYTES 400

const char *talon_audit_verdict_name(talon_audit_verdict v)
{
    switch (v) {
    case TALON_AUDIT_INTACT: return "intact";
    case TALON_AUDIT_MODIFIED: return "modified";
    case TALON_AUDIT_DELETED: return "deleted";
    case TALON_AUDIT_INSERTED: return "inserted";
    case TALON_AUDIT_REORDERED: return "reordered";
    case TALON_AUDIT_TRUNCATED: return "truncated";
    case TALON_AUDIT_UNSEALED: return "unsealed";
    case TALON_AUDIT_WRONG_EPOCH_KEY: return "wrong epoch key";
    case TALON_AUDIT_SPLICED: return "spliced";
    case TALON_AUDIT_MALFORMED: return "malformed";
    case TALON_AUDIT_BAD_SEAL: return "bad seal";
    case TALON_AUDIT_INCOMPLETE: return "incomplete";
    }
    return "unknown";
}

void talon_audit_verify_options_init(talon_audit_verify_options *o)
{
    memset(o, 0, sizeof *o);
}

/* ---- Verification state ------------------------------------------------- */

typedef struct verifier {
    talon_audit_reader *reader;
    const talon_audit_verify_options *opts;
    talon_audit_verify_result *res;
    bool have_key;
    keyring keys;
    char trail_hex[33];
    bool trail_known;
    uint64_t max_epoch;    /* epoch of the last parseable record: bound for later keys */
    mac_key slow_mac;

    /* The last record that passed every check. */
    bool have_last;
    uint64_t last_seq, last_epoch;
    uint8_t last_h[32];
    bool last_is_seal;
    char last_cause[16];
    size_t last_file;
    uint64_t last_line;

    /* The current epoch's first record (not yet sealed). */
    bool epoch_open;
    uint64_t epoch_first;
    size_t epoch_first_file;
    uint64_t epoch_first_line;
    bool start_known;

    /* The file being walked. */
    size_t file;
    uint64_t lineno;
    uint64_t file_records;
    bool failed;
} verifier;

static int bad(verifier *v, talon_audit_verdict verdict, size_t file, uint64_t line, uint64_t seq,
               const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int bad(verifier *v, talon_audit_verdict verdict, size_t file, uint64_t line, uint64_t seq,
               const char *fmt, ...)
{
    talon_audit_verify_result *r = v->res;
    r->verdict = verdict;
    r->file = file < v->reader->nfiles ? v->reader->files[file].path : NULL;
    r->line = line;
    r->seq = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    v->failed = true;
    return 1;
}

/* ---- The careful path --------------------------------------------------- */

static bool line_at(const reader_file *f, size_t off, size_t len, talon_audit_record *rec, char *err, size_t errlen)
{
    return talon_audit_record_parse(f->data + off, len, rec, err, errlen) == 0;
}

static void record_hash(const talon_audit_record *rec, uint8_t h[32])
{
    verify_sha256(rec->line, rec->prefix_len, h);
}

static bool mac_ok_in_epoch(verifier *v, const talon_audit_record *rec, uint64_t epoch)
{
    uint8_t h[32], key[32];
    record_hash(rec, h);
    if (!v->slow_mac.ready || v->slow_mac.epoch != epoch) {
        keyring_derive(&v->keys, epoch, key);
        mac_key_set(&v->slow_mac, key, epoch);
        OPENSSL_cleanse(key, sizeof key);
    }
    return mac_matches(&v->slow_mac, h, rec->mac.p);
}

/* The next complete line of file f after offset off (NULL at the end). */
static const char *next_line(const reader_file *f, size_t *off, size_t *len)
{
    size_t start = *off + *len + 1;
    if (start >= f->size)
        return NULL;
    const char *nl = memchr(f->data + start, '\n', f->size - start);
    if (!nl)
        return NULL;
    *off = start;
    *len = (size_t)(nl - (f->data + start));
    return f->data + start;
}

static bool peek_next(const reader_file *f, size_t off, size_t len, talon_audit_record *next)
{
    return next_line(f, &off, &len) && line_at(f, off, len, next, NULL, 0);
}

/* A MAC that fails under its epoch's key: wrong epoch key when a later key
 * verifies it (someone who stole a later key rewrote the record). */
/* The last epoch after epoch whose key is worth trying for a "wrong epoch
 * key" diagnosis. The server's key state is one epoch ahead of the last
 * record after a seal, so a key stolen then is K_{max_epoch + 1}. */
static uint64_t later_key_bound(const verifier *v, uint64_t epoch)
{
    uint64_t bound = v->max_epoch + 1 > epoch + 1 ? v->max_epoch + 1 : epoch + 1;
    if (bound > epoch + MAX_LATER_KEYS)
        bound = epoch + MAX_LATER_KEYS;
    return bound;
}

static int bad_mac(verifier *v, const talon_audit_record *rec, uint64_t line, uint64_t epoch)
{
    uint64_t bound = later_key_bound(v, epoch);
    for (uint64_t e = epoch + 1; e <= bound; e++)
        if (mac_ok_in_epoch(v, rec, e))
            return bad(v, TALON_AUDIT_WRONG_EPOCH_KEY, v->file, line, rec->seq,
                       "MAC made with epoch %llu's key, but the record is in epoch %llu",
                       (unsigned long long)e, (unsigned long long)epoch);
    return bad(v, TALON_AUDIT_MODIFIED, v->file, line, rec->seq,
               "MAC does not match (epoch %llu key)", (unsigned long long)epoch);
}

/* Seal data, exactly {"epoch":E,"count":N,"first_seq":A,"last_seq":B,"head":"<hex>","cause":"..."}. */
typedef struct seal_data {
    uint64_t epoch, count, first, last;
    char head[65];
    char cause[16];
} seal_data;

static bool parse_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9'))
        return false;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > UINT64_MAX / 10 - 1)
            return false;
        v = v * 10 + (uint64_t)(*s++ - '0');
    }
    *p = s;
    *out = v;
    return true;
}

static bool take(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

static bool parse_seal(const talon_audit_record *rec, seal_data *sd)
{
    const char *p = rec->data, *end = rec->data + rec->data_len;
    if (!take(&p, end, "{\"epoch\":") || !parse_u64(&p, end, &sd->epoch) ||
        !take(&p, end, ",\"count\":") || !parse_u64(&p, end, &sd->count) ||
        !take(&p, end, ",\"first_seq\":") || !parse_u64(&p, end, &sd->first) ||
        !take(&p, end, ",\"last_seq\":") || !parse_u64(&p, end, &sd->last) ||
        !take(&p, end, ",\"head\":\"") || end - p < 64)
        return false;
    memcpy(sd->head, p, 64);
    sd->head[64] = '\0';
    p += 64;
    if (!take(&p, end, "\",\"cause\":\""))
        return false;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q || (size_t)(q - p) >= sizeof sd->cause || !take(&q, end, "\"}") || q != end)
        return false;
    memcpy(sd->cause, p, (size_t)(end - p - 2));
    sd->cause[end - p - 2] = '\0';
    return true;
}

static int check_seal(verifier *v, const talon_audit_record *rec, uint64_t line, seal_data *sd)
{
    if (!parse_seal(rec, sd))
        return bad(v, TALON_AUDIT_BAD_SEAL, v->file, line, rec->seq,
                   "seal data is not {\"epoch\",\"count\",\"first_seq\",\"last_seq\",\"head\",\"cause\"} in that order");
    if (sd->epoch != rec->epoch)
        return bad(v, TALON_AUDIT_BAD_SEAL, v->file, line, rec->seq, "seal of epoch %llu in epoch %llu",
                   (unsigned long long)sd->epoch, (unsigned long long)rec->epoch);
    if (strcmp(sd->cause, "interval") != 0 && strcmp(sd->cause, "rotation") != 0 &&
        strcmp(sd->cause, "shutdown") != 0)
        return bad(v, TALON_AUDIT_BAD_SEAL, v->file, line, rec->seq, "unknown seal cause \"%s\"", sd->cause);
    uint64_t count, first, last;
    if (!v->epoch_open) {
        count = 0, first = rec->seq, last = rec->seq;
    } else {
        count = rec->seq - v->epoch_first, first = v->epoch_first, last = rec->seq - 1;
    }
    bool ok = sd->last == last && memcmp(sd->head, rec->prev.p, 64) == 0;
    if (v->start_known)
        ok = ok && sd->count == count && sd->first == first;
    if (!ok)
        return bad(v, TALON_AUDIT_BAD_SEAL, v->file, line, rec->seq,
                   "seal says count %llu, seq %llu..%llu, head %.12s...; the records give count %llu, "
                   "seq %llu..%llu, head %.12s...",
                   (unsigned long long)sd->count, (unsigned long long)sd->first, (unsigned long long)sd->last,
                   sd->head, (unsigned long long)count, (unsigned long long)first,
                   (unsigned long long)last, rec->prev.p);
    return 0;
}

/* Check the links between the last good record and rec (not the first). */
static int check_link(verifier *v, const talon_audit_record *rec, const uint8_t h[32], size_t off,
                      uint64_t line)
{
    const reader_file *f = &v->reader->files[v->file];
    uint64_t seq = rec->seq, expect = v->last_seq + 1;
    talon_audit_record next;
    (void)h;

    if (seq > expect) {
        size_t o = off, l = rec->len;
        for (int k = 0; k < LOOKAHEAD && next_line(f, &o, &l); k++) {
            if (line_at(f, o, l, &next, NULL, 0) && next.seq == expect)
                return bad(v, TALON_AUDIT_REORDERED, v->file, line, seq, "seq %llu comes before seq %llu",
                           (unsigned long long)seq, (unsigned long long)expect);
        }
        return bad(v, TALON_AUDIT_DELETED, v->file, line, seq, "seq %llu..%llu missing (%llu record%s)",
                   (unsigned long long)expect, (unsigned long long)(seq - 1),
                   (unsigned long long)(seq - expect), seq - expect == 1 ? "" : "s");
    }
    char last_hex[64];
    verify_to_hex(last_hex, v->last_h, 32);
    if (seq < expect) {
        if (seq == v->last_seq)
            return bad(v, TALON_AUDIT_INSERTED, v->file, line, seq, "a second record with seq %llu",
                       (unsigned long long)seq);
        if (peek_next(f, off, rec->len, &next) && next.seq == expect && memcmp(next.prev.p, last_hex, 64) == 0)
            return bad(v, TALON_AUDIT_INSERTED, v->file, line, seq, "a copy of seq %llu between seq %llu and %llu",
                       (unsigned long long)seq, (unsigned long long)v->last_seq, (unsigned long long)expect);
        return bad(v, TALON_AUDIT_REORDERED, v->file, line, seq, "seq %llu after seq %llu",
                   (unsigned long long)seq, (unsigned long long)v->last_seq);
    }

    uint64_t want_epoch = v->last_is_seal ? v->last_epoch + 1 : v->last_epoch;
    bool prev_ok = memcmp(rec->prev.p, last_hex, 64) == 0;
    bool epoch_ok = rec->epoch == want_epoch;
    bool mac_ok = !v->have_key || (epoch_ok && mac_ok_in_epoch(v, rec, want_epoch));
    if (prev_ok && epoch_ok && mac_ok)
        return 0;

    if (peek_next(f, off, rec->len, &next) && next.seq == seq && memcmp(next.prev.p, last_hex, 64) == 0)
        return bad(v, TALON_AUDIT_INSERTED, v->file, line, seq,
                   "seq %llu is taken by the next record, which continues the chain", (unsigned long long)seq);
    if (!epoch_ok) {
        /* Only a later key worth trying: deriving the key of any epoch the
         * record claims would let one line cost up to 2^64 hashes. */
        if (v->have_key && rec->epoch > want_epoch && rec->epoch <= later_key_bound(v, want_epoch) &&
            mac_ok_in_epoch(v, rec, rec->epoch))
            return bad(v, TALON_AUDIT_WRONG_EPOCH_KEY, v->file, line, seq,
                       "record claims epoch %llu and is MACed with its key, but its place in the chain is "
                       "epoch %llu", (unsigned long long)rec->epoch, (unsigned long long)want_epoch);
        return bad(v, TALON_AUDIT_MODIFIED, v->file, line, seq, "epoch %llu, expected %llu",
                   (unsigned long long)rec->epoch, (unsigned long long)want_epoch);
    }
    if (!prev_ok) {
        if (line == 1)
            return bad(v, TALON_AUDIT_SPLICED, v->file, line, seq,
                       "first record of the file does not continue the chain of the previous file");
        if (!v->have_key)
            return bad(v, TALON_AUDIT_MODIFIED, v->last_file, v->last_line, v->last_seq,
                       "its hash does not match the prev of the next record (seq %llu)", (unsigned long long)seq);
        if (mac_ok_in_epoch(v, rec, want_epoch))
            return bad(v, TALON_AUDIT_MODIFIED, v->file, line, seq, "prev does not match the hash of seq %llu",
                       (unsigned long long)v->last_seq);
    }
    return bad_mac(v, rec, line, want_epoch);
}

/* Accept rec as the new last record. */
static void advance(verifier *v, const talon_audit_record *rec, const uint8_t h[32], bool is_seal,
                    const char *cause, uint64_t line)
{
    if (is_seal) {
        v->res->seals++;
        v->epoch_open = false;
        v->start_known = true;
        snprintf(v->last_cause, sizeof v->last_cause, "%s", cause);
    } else if (!v->epoch_open) {
        v->epoch_open = true;
        v->epoch_first = rec->seq;
        v->epoch_first_file = v->file;
        v->epoch_first_line = line;
    }
    if (!v->have_last) {
        v->res->first_seq = rec->seq;
        v->res->first_epoch = rec->epoch;
    }
    v->have_last = true;
    v->last_seq = rec->seq;
    v->last_epoch = rec->epoch;
    memcpy(v->last_h, h, 32);
    v->last_is_seal = is_seal;
    v->last_file = v->file;
    v->last_line = line;
    v->res->records++;
    v->file_records++;
}

/* Pass an accepted audit_recovered record, with its data's cause and
 * torn_file, to the on_recovery callback. */
static void report_recovery(verifier *v, const talon_audit_record *rec, uint64_t line)
{
    json_t *data = json_loadb(rec->data, rec->data_len, 0, NULL);
    const char *cause = json_string_value(json_object_get(data, "cause"));
    talon_audit_recovery recovery = {
        .file = v->reader->files[v->file].path,
        .line = line,
        .seq = rec->seq,
        .cause = cause ? cause : "",
        .torn_file = json_string_value(json_object_get(data, "torn_file")),
    };

    v->opts->on_recovery(v->opts->recovery_ctx, &recovery);
    json_decref(data);
}

/* Every check on one record, re-reading its line. Returns 0 when it passes. */
static int check_careful(verifier *v, size_t off, size_t len, uint64_t line)
{
    const reader_file *f = &v->reader->files[v->file];
    talon_audit_record rec;
    char why[160];
    uint64_t expect = v->have_last ? v->last_seq + 1 : 1;
    if (!line_at(f, off, len, &rec, why, sizeof why))
        return bad(v, TALON_AUDIT_MALFORMED, v->file, line, expect, "record does not parse: %s", why);
    if (!v->trail_known) {
        memcpy(v->trail_hex, rec.trail.p, 32);
        v->trail_known = true;
    }
    if (memcmp(rec.trail.p, v->trail_hex, 32) != 0)
        return bad(v, TALON_AUDIT_SPLICED, v->file, line, rec.seq, "trail id %.32s, expected %.32s",
                   rec.trail.p, v->trail_hex);
    uint8_t h[32];
    record_hash(&rec, h);
    if (!v->have_last) {
        if (rec.seq != 1) {
            if (!v->opts->partial)
                return bad(v, TALON_AUDIT_INCOMPLETE, v->file, line, rec.seq,
                           "trail starts at seq %llu, not 1 (older files removed?); use --partial to "
                           "check what is there", (unsigned long long)rec.seq);
            v->start_known = false;
        } else {
            static const char zeros[64] = "0000000000000000000000000000000000000000000000000000000000000000";
            if (memcmp(rec.prev.p, zeros, 64) != 0 || rec.epoch != 0)
                return bad(v, TALON_AUDIT_MODIFIED, v->file, line, rec.seq,
                           "seq 1 must have epoch 0 and a zero prev");
        }
        /* Each epoch after 0 starts after a seal, so a genuine record's
         * epoch is below its seq. Checked before the MAC, whose key would
         * cost epoch hashes to derive. */
        if (rec.epoch >= rec.seq)
            return bad(v, TALON_AUDIT_MODIFIED, v->file, line, rec.seq,
                       "epoch %llu is not below seq %llu, which no trail can reach",
                       (unsigned long long)rec.epoch, (unsigned long long)rec.seq);
        if (v->have_key && v->opts->max_start_epoch && rec.epoch > v->opts->max_start_epoch)
            return bad(v, TALON_AUDIT_INCOMPLETE, v->file, line, rec.seq,
                       "trail starts at epoch %llu, past the limit of %llu for this check: deriving "
                       "its key takes that many hashes", (unsigned long long)rec.epoch,
                       (unsigned long long)v->opts->max_start_epoch);
        if (v->have_key && !mac_ok_in_epoch(v, &rec, rec.epoch))
            return bad_mac(v, &rec, line, rec.epoch);
    } else if (check_link(v, &rec, h, off, line) != 0) {
        return 1;
    }
    bool is_seal = talon_audit_str_equals(&rec.type, SEAL_TYPE);
    seal_data sd = { .cause = "" };
    if (is_seal && check_seal(v, &rec, line, &sd) != 0)
        return 1;
    advance(v, &rec, h, is_seal, sd.cause, line);
    if (v->opts->on_recovery && talon_audit_str_equals(&rec.type, RECOVERED_TYPE))
        report_recovery(v, &rec, line);
    return 0;
}

/* The fast path: links checked on the thread's results; anything unusual
 * goes to check_careful. */
static int check_result(verifier *v, const line_result *lr, uint64_t line)
{
    if (lr->flags & L_TORN)
        return -1; /* handled at the end of the file */
    /* Every line before this one passed (verification stops at the first
     * that does not), so a line linked to the one before it in its chunk
     * continues the chain. */
    const char *data = v->reader->files[v->file].data;
    bool fast = v->have_last && (lr->flags & L_PARSED) && (lr->flags & L_TRAIL_OK) &&
                !(lr->flags & (L_SEAL | L_RECOVERED)) &&
                lr->seq == v->last_seq + 1 &&
                ((lr->flags & L_LINKED) || verify_hex_equal(v->last_h, data + lr->prev_off)) &&
                lr->epoch == (v->last_is_seal ? v->last_epoch + 1 : v->last_epoch) &&
                (!v->have_key || (lr->flags & L_MAC_OK));
    if (!fast)
        return check_careful(v, lr->off, lr->len, line);
    if (!v->epoch_open) {
        v->epoch_open = true;
        v->epoch_first = lr->seq;
        v->epoch_first_file = v->file;
        v->epoch_first_line = line;
    }
    v->last_seq = lr->seq;
    v->last_epoch = lr->epoch;
    memcpy(v->last_h, lr->h, 32);
    v->last_is_seal = false;
    v->last_file = v->file;
    v->last_line = line;
    v->res->records++;
    v->file_records++;
    return 0;
}

/* ---- Driving the passes ------------------------------------------------- */

static unsigned thread_count(const talon_audit_verify_options *o)
{
    unsigned n = o->threads;
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)c : 1;
    }
    return n > MAX_THREADS ? MAX_THREADS : n;
}

/* The epoch of the last complete, parseable record of the last file. */
static uint64_t last_epoch_bound(const talon_audit_reader *r)
{
    if (r->nfiles == 0)
        return 0;
    const reader_file *f = &r->files[r->nfiles - 1]; /* only the last file counts */
    /* From the last '\n' backwards, so a torn tail is left out. */
    const char *nl = f->size ? memrchr(f->data, '\n', f->size) : NULL;
    while (nl) {
        const char *before = nl > f->data ? memrchr(f->data, '\n', (size_t)(nl - f->data)) : NULL;
        const char *line = before ? before + 1 : f->data;
        talon_audit_record rec;
        if (talon_audit_record_parse(line, (size_t)(nl - line), &rec, NULL, 0) == 0)
            return rec.epoch;
        nl = before;
    }
    return 0;
}

/* The trail id of the first parseable record (chain-only mode). */
static bool first_trail(const talon_audit_reader *r, char out[33])
{
    for (size_t fi = 0; fi < r->nfiles; fi++) {
        const reader_file *f = &r->files[fi];
        const char *nl = f->size ? memchr(f->data, '\n', f->size) : NULL;
        talon_audit_record rec;
        if (nl && talon_audit_record_parse(f->data, (size_t)(nl - f->data), &rec, NULL, 0) == 0) {
            memcpy(out, rec.trail.p, 32);
            out[32] = '\0';
            return true;
        }
        if (f->size)
            return false;
    }
    return false;
}

/* Move the key window to the epoch where hashing resumes at offset pos of
 * f: the last checked record's epoch, or the next record's when none was
 * checked yet. The window ends one epoch after the trail's last record, and
 * has no more keys than the records of a window need. Only a first record
 * that check_careful may accept moves the window past epoch 0, because
 * deriving the key of epoch E takes E hashes. */
static int slide_keys(verifier *v, const reader_file *f, size_t pos)
{
    uint64_t first = v->last_epoch;
    if (!v->have_last) {
        const char *nl = memchr(f->data + pos, '\n', f->size - pos);
        talon_audit_record rec;
        first = 0;
        if (v->opts->partial && nl &&
            talon_audit_record_parse(f->data + pos, (size_t)(nl - f->data - pos), &rec, NULL, 0) == 0 &&
            rec.epoch < rec.seq && (!v->opts->max_start_epoch || rec.epoch <= v->opts->max_start_epoch))
            first = rec.epoch;
    }
    uint64_t n = v->max_epoch >= first ? v->max_epoch - first + 2 : 1;
    uint64_t window = (uint64_t)POOL_MAX_CHUNKS * POOL_CHUNK_BYTES;
    if (window > f->size - pos)
        window = f->size - pos;
    if (n > window / MIN_RECORD_BYTES + 2)
        n = window / MIN_RECORD_BYTES + 2;
    return keyring_window(&v->keys, first, n);
}

static bool seal_closes_file(const verifier *v)
{
    return v->last_is_seal && (strcmp(v->last_cause, "rotation") == 0 || strcmp(v->last_cause, "shutdown") == 0);
}

/* Check the results of one chunk in order. */
static void check_chunk(verifier *v, const hash_chunk *c, bool *torn, uint64_t *torn_line, uint64_t *torn_bytes)
{
    for (size_t k = 0; k < c->n && !v->failed; k++) {
        const line_result *lr = &c->out[k];
        v->lineno++;
        if (lr->flags & L_TORN) {
            *torn = true;
            *torn_line = v->lineno;
            *torn_bytes = lr->len;
            continue;
        }
        /* A record whose epoch the threads had no key for is not
         * L_MAC_OK, so check_result sends it down the careful path. */
        check_result(v, lr, v->lineno);
    }
}

static int verify_file(verifier *v, hash_pool *pool, uint64_t *done)
{
    const reader_file *f = &v->reader->files[v->file];
    bool is_last = v->file + 1 == v->reader->nfiles;
    size_t pos = 0;
    v->lineno = 0;
    v->file_records = 0;
    bool torn = false;
    uint64_t torn_line = 0, torn_bytes = 0;

    while (pos < f->size && !v->failed) {
        if (v->have_key) {
            int rc = slide_keys(v, f, pos);
            if (rc < 0)
                return rc;
        }
        size_t begin = pos;
        hash_pool_start(pool, f->data, f->size, &pos, &v->keys, v->trail_hex, v->have_key);
        for (size_t k = 0; k < pool->nchunks && !v->failed; k++) {
            const hash_chunk *c = hash_pool_wait(pool, k);
            if (c->err < 0) {
                hash_pool_cancel(pool);
                return c->err;
            }
            check_chunk(v, c, &torn, &torn_line, &torn_bytes);
        }
        if (v->failed)
            hash_pool_cancel(pool); /* the chunks after the failing one */
        *done += pos - begin;
        if (v->opts->progress)
            v->opts->progress(v->opts->progress_ctx, *done, v->reader->total);
    }
    if (v->failed)
        return 0;
    if (torn && !(is_last && v->opts->open))
        return bad(v, TALON_AUDIT_TRUNCATED, v->file, torn_line, v->have_last ? v->last_seq + 1 : 1,
                   "line %llu has no final newline (torn write or truncation)", (unsigned long long)torn_line);
    if (torn)
        v->res->torn_bytes = torn_bytes;
    if (!is_last) {
        if (v->file_records == 0)
            return bad(v, TALON_AUDIT_TRUNCATED, v->file, 1, v->have_last ? v->last_seq + 1 : 1,
                       "file has no records");
        if (!seal_closes_file(v))
            return bad(v, TALON_AUDIT_TRUNCATED, v->last_file, v->last_line, v->last_seq,
                       "file does not end with a rotation or shutdown seal");
    }
    return 0;
}

int talon_audit_verify(talon_audit_reader *reader, const talon_audit_verify_options *opts,
                       talon_audit_verify_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    verifier v = { .reader = reader, .opts = opts, .res = res, .start_known = true };
    int rc = 0;
    uint8_t trail[16];
    hash_pool pool;
    bool pool_ready = false;

    if (!opts->no_key) {
        if (!opts->key_path) {
            snprintf(err, errlen, "no verification key given: pass --key FILE, or --no-key for chain checks only");
            return -EINVAL;
        }
        rc = talon_audit_key_load(opts->key_path, trail, v.keys.key0, err, errlen);
        if (rc < 0)
            goto out;
        memcpy(v.keys.cursor, v.keys.key0, 32);
        verify_to_hex(v.trail_hex, trail, 16);
        v.trail_known = true;
        v.have_key = true;
        v.max_epoch = last_epoch_bound(reader);
    } else {
        v.trail_known = first_trail(reader, v.trail_hex);
    }
    res->macs_checked = v.have_key;

    rc = hash_pool_init(&pool, thread_count(opts));
    if (rc < 0) {
        snprintf(err, errlen, "cannot set up the hashing threads: %s", strerror(-rc));
        goto out;
    }
    pool_ready = true;
    uint64_t done = 0;
    uint64_t prev_index = 0;

    if (reader->nfiles == 0) {
        bad(&v, TALON_AUDIT_TRUNCATED, SIZE_MAX, 0, 0, "no trail files");
        goto done;
    }
    for (v.file = 0; v.file < reader->nfiles && !v.failed; v.file++) {
        const reader_file *f = &reader->files[v.file];
        if (v.file > 0 && f->index && prev_index && f->index != prev_index + 1) {
            bad(&v, TALON_AUDIT_DELETED, v.file, 1, v.have_last ? v.last_seq + 1 : 1,
                "file audit-%08llu.jsonl is missing", (unsigned long long)(prev_index + 1));
            break;
        }
        prev_index = f->index;
        rc = verify_file(&v, &pool, &done);
        if (rc < 0) {
            snprintf(err, errlen, "%s: out of memory while verifying", f->path);
            goto out;
        }
        res->files++;
    }
    rc = 0;
    if (v.failed)
        goto done;
    v.file = reader->nfiles - 1;
    if (!v.have_last) {
        bad(&v, TALON_AUDIT_TRUNCATED, v.file, 1, 0, "no records");
        goto done;
    }
    if (v.epoch_open)
        res->unsealed = v.last_seq - v.epoch_first + 1;
    if (!opts->open) {
        if (!v.last_is_seal) {
            bad(&v, TALON_AUDIT_UNSEALED, v.epoch_first_file, v.epoch_first_line, v.epoch_first,
                "%llu records after the last seal (seq %llu..%llu) may have been truncated; use --open "
                "for a live trail", (unsigned long long)res->unsealed, (unsigned long long)v.epoch_first,
                (unsigned long long)v.last_seq);
        } else if (strcmp(v.last_cause, "shutdown") != 0) {
            bad(&v, TALON_AUDIT_TRUNCATED, v.last_file, v.last_line, v.last_seq,
                "trail ends with a seal of cause %s, not shutdown: later records may have been removed; "
                "use --open for a live trail", v.last_cause);
        }
    }
done:
    res->bytes = reader->total;
    res->last_seq = v.last_seq;
    res->last_epoch = v.last_epoch;
    memcpy(res->trail, v.trail_hex, 32);
    res->trail[32] = '\0';
    verify_to_hex(res->head, v.last_h, 32);
    res->head[64] = '\0';
    if (!v.failed)
        res->verdict = TALON_AUDIT_INTACT;
out:
    if (pool_ready)
        hash_pool_release(&pool);
    keyring_release(&v.keys);
    OPENSSL_cleanse(&v.slow_mac, sizeof v.slow_mac);
    return rc;
}
