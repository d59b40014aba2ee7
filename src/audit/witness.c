/* The external witness of an audit trail.
 *
 * Records after the last seal, and whole runs after an earlier shutdown
 * seal, can be cut from a trail by someone who holds the current key, and
 * no check on the trail alone can tell. So the writer sends the chain head
 * at each seal, sys_startup and sys_shutdown to a logger (normally a syslog
 * sink on another machine) as one line:
 *
 *   talon-audit-witness v1 trail=<32 hex> epoch=E last_seq=S head=<64 hex>
 *       record=<type> cause=<cause>
 *
 * and `talon audit verify --witness FILE` checks that the trail still holds
 * a record S whose hash is that head. A witness line can only add checks: a
 * forged one makes verification fail, never pass.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit/audit_internal.h"
#include "audit/reader_internal.h"

#define WITNESS_MARK "talon-audit-witness v1 "
#define RECORD_HEAD "{\"v\":1,\"seq\":"

/* ---- Writing (the trail's writer thread) ---- */

void audit_witness_emit(talon_audit_trail *t, const char *record_type, const char *cause)
{
    char head[AUDIT_HEX_HASH_LEN + 1];

    if (t->witness == NULL || !talon_logger_enabled(t->witness, TALON_LOG_INFO))
        return;
    audit_hex(head, t->prev, AUDIT_HASH_LEN);
    head[AUDIT_HEX_HASH_LEN] = '\0';
    /* The same values as fields, so a syslog receiver also gets them as
     * RFC 5424 structured data. */
    talon_field fields[] = {
        TALON_F_STR("audit.trail", t->trail_hex),
        TALON_F_UINT("audit.epoch", t->epoch),
        TALON_F_UINT("audit.last_seq", t->seq),
        TALON_F_STR("audit.head", head),
        TALON_F_STR("audit.record", record_type),
        TALON_F_STR("audit.cause", cause),
    };
    talon_log_fields(t->witness, TALON_LOG_INFO, fields, sizeof(fields) / sizeof(fields[0]),
                     WITNESS_MARK "trail=%s epoch=%" PRIu64 " last_seq=%" PRIu64 " head=%s "
                     "record=%s cause=%s", t->trail_hex, t->epoch, t->seq, head, record_type, cause);
}

/* ---- Reading a witness log ---- */

/* Copy the value of "key=" at *p (up to a space or the end) into out when
 * it is 1 to outlen - 1 bytes of the allowed set. */
static bool take_value(const char **p, const char *key, const char *allowed, char *out, size_t outlen)
{
    size_t klen = strlen(key);

    if (strncmp(*p, key, klen) != 0)
        return false;
    const char *v = *p + klen;
    size_t n = strspn(v, allowed);
    if (n == 0 || n >= outlen || (v[n] != ' ' && v[n] != '\0'))
        return false;
    memcpy(out, v, n);
    out[n] = '\0';
    *p = v + n + (v[n] == ' ');
    return true;
}

static bool take_u64(const char **p, const char *key, uint64_t *out)
{
    char digits[21];

    if (!take_value(p, key, "0123456789", digits, sizeof(digits)))
        return false;
    errno = 0;
    *out = strtoull(digits, NULL, 10);
    return errno == 0;
}

static bool parse_witness(const char *text, talon_audit_witness_head *h)
{
    static const char hex[] = "0123456789abcdef";
    static const char name[] = "abcdefghijklmnopqrstuvwxyz_";
    const char *p = text;

    return take_value(&p, "trail=", hex, h->trail, sizeof(h->trail)) && strlen(h->trail) == 32 &&
           take_u64(&p, "epoch=", &h->epoch) && take_u64(&p, "last_seq=", &h->seq) &&
           take_value(&p, "head=", hex, h->head, sizeof(h->head)) && strlen(h->head) == 64 &&
           take_value(&p, "record=", name, h->record, sizeof(h->record)) &&
           take_value(&p, "cause=", name, h->cause, sizeof(h->cause));
}

/* The record types the writer witnesses, each with the causes it sends. */
static const struct {
    const char *record;
    const char *causes[3]; /* NULL after the last */
    const char *listed;    /* the same, for messages */
} WITNESSED[] = {
    { "sys_startup", { "startup" }, "startup" },
    { "audit_epoch_sealed", { "interval", "rotation", "shutdown" }, "interval, rotation or shutdown" },
    { "sys_shutdown", { "shutdown" }, "shutdown" },
};

/* Check the values of a parsed line against each other. Record S is in an
 * epoch below S, because seq 1 is in epoch 0 and each later epoch starts
 * after a seal. Returns NULL, or why the line is impossible. */
static const char *impossible_values(const talon_audit_witness_head *h, char *why, size_t whylen)
{
    if (h->seq == 0)
        return "last_seq=0, but the first record of a trail has seq 1";
    if (h->epoch >= h->seq) {
        snprintf(why, whylen, "epoch=%" PRIu64 " at last_seq=%" PRIu64 ", but record %" PRIu64
                 " is at most in epoch %" PRIu64 " because every epoch ends with a seal record",
                 h->epoch, h->seq, h->seq, h->seq - 1);
        return why;
    }
    for (size_t i = 0; i < sizeof(WITNESSED) / sizeof(WITNESSED[0]); i++) {
        if (strcmp(h->record, WITNESSED[i].record) != 0)
            continue;
        for (size_t c = 0; c < 3 && WITNESSED[i].causes[c] != NULL; c++)
            if (strcmp(h->cause, WITNESSED[i].causes[c]) == 0)
                return NULL;
        snprintf(why, whylen, "record=%s with cause=%s, but the writer sends %s only with cause "
                 "%s", h->record, h->cause, h->record, WITNESSED[i].listed);
        return why;
    }
    snprintf(why, whylen, "record=%s, but the writer sends only sys_startup, audit_epoch_sealed "
             "and sys_shutdown", h->record);
    return why;
}

/* True when a line with NUL bytes contains the witness mark once they are
 * removed, and so was a witness line before a crash or a bad copy put NUL
 * bytes into it. *nuls is set to the count of NUL bytes. */
static bool witness_line_with_nuls(const char *line, size_t len, size_t *nuls)
{
    char *without_nuls = malloc(len + 1);
    size_t n = 0;
    bool found;

    *nuls = 0;
    if (without_nuls == NULL)
        return true; /* reported as damaged: out of memory cannot make a line pass */
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '\0')
            (*nuls)++;
        else
            without_nuls[n++] = line[i];
    }
    found = memmem(without_nuls, n, WITNESS_MARK, sizeof(WITNESS_MARK) - 1) != NULL;
    free(without_nuls);
    return found;
}

/* Open path for reading and check that it is not a directory, which fopen
 * accepts on Linux and which then fails on the first read. */
static FILE *open_witness_log(const char *path, char *err, size_t errlen)
{
    struct stat st;
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        snprintf(err, errlen, "cannot read witness log %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "witness log %s is a directory; pass the log file that receives the "
                 "lines of the audit.witness logger (for example a syslog server's file)", path);
        fclose(f);
        errno = EISDIR;
        return NULL;
    }
    return f;
}

void talon_audit_witness_free(talon_audit_witness *w)
{
    if (w == NULL)
        return;
    free(w->path);
    free(w->heads);
    free(w);
}

int talon_audit_witness_load(const char *path, talon_audit_witness **out, char *err, size_t errlen)
{
    talon_audit_witness *w = calloc(1, sizeof(*w));
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0, alloc = 0;
    uint64_t lineno = 0;
    uint64_t nul_lines = 0, first_nul_line = 0;
    size_t first_nuls = 0;
    int rc = 0;

    if (w == NULL || (w->path = strdup(path)) == NULL) {
        rc = -ENOMEM;
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    f = open_witness_log(path, err, errlen);
    if (f == NULL) {
        rc = -errno;
        goto fail;
    }
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        size_t nuls;
        if (memchr(line, '\0', (size_t)n) != NULL) {
            /* The C string functions below would stop at the first NUL,
             * so such lines are counted here and reported after the loop. */
            if (witness_line_with_nuls(line, (size_t)n, &nuls) && nul_lines++ == 0) {
                first_nul_line = lineno;
                first_nuls = nuls;
            }
            continue;
        }
        const char *mark = strstr(line, WITNESS_MARK);
        if (mark == NULL)
            continue;
        if (w->count == alloc) {
            size_t more = alloc ? alloc * 2 : 64;
            talon_audit_witness_head *heads = realloc(w->heads, more * sizeof(*heads));
            if (heads == NULL) {
                rc = -ENOMEM;
                snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            w->heads = heads;
            alloc = more;
        }
        talon_audit_witness_head *h = &w->heads[w->count];
        memset(h, 0, sizeof(*h));
        if (!parse_witness(mark + strlen(WITNESS_MARK), h)) {
            rc = -EINVAL;
            snprintf(err, errlen, "%s:%" PRIu64 ": malformed witness line; expected "
                     WITNESS_MARK "trail=<32 hex> epoch=N last_seq=N head=<64 hex> record=TYPE "
                     "cause=CAUSE", path, lineno);
            goto fail;
        }
        char why[256];
        const char *impossible = impossible_values(h, why, sizeof(why));
        if (impossible != NULL) {
            rc = -EINVAL;
            snprintf(err, errlen, "%s:%" PRIu64 ": invalid witness line: %s; the line was "
                     "damaged or not written by talon", path, lineno, impossible);
            goto fail;
        }
        h->line = lineno;
        w->count++;
    }
    if (ferror(f)) {
        rc = -EIO;
        snprintf(err, errlen, "cannot read witness log %s: %s", path, strerror(errno));
        goto fail;
    }
    if (nul_lines > 0) {
        rc = -EINVAL;
        snprintf(err, errlen, "%s:%" PRIu64 ": invalid witness line: it contains %zu NUL bytes, as "
                 "a log file does where a crash cut a write short (%" PRIu64 " witness line%s of the "
                 "file %s NUL bytes); remove them, for example with tr -d '\\000' < %s > CLEANED, "
                 "and verify with the cleaned file", path, first_nul_line, first_nuls, nul_lines,
                 nul_lines == 1 ? "" : "s", nul_lines == 1 ? "contains" : "contain", path);
        goto fail;
    }
    fclose(f);
    free(line);
    *out = w;
    return 0;

fail:
    if (f != NULL)
        fclose(f);
    free(line);
    talon_audit_witness_free(w);
    return rc;
}

/* ---- Checking a trail against it ---- */

static int by_seq(const void *a, const void *b)
{
    const talon_audit_witness_head *x = *(const talon_audit_witness_head *const *)a;
    const talon_audit_witness_head *y = *(const talon_audit_witness_head *const *)b;

    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The seq of a record line, from its fixed head; false for other lines. */
static bool line_seq(const char *p, size_t len, uint64_t *seq)
{
    size_t k = sizeof(RECORD_HEAD) - 1;
    uint64_t v = 0;
    size_t digits = 0;

    if (len <= k || memcmp(p, RECORD_HEAD, k) != 0)
        return false;
    while (k < len && p[k] >= '0' && p[k] <= '9' && digits < 20) {
        v = v * 10 + (uint64_t)(p[k++] - '0');
        digits++;
    }
    *seq = v;
    return digits > 0 && k < len && p[k] == ',';
}

static void report(talon_audit_verify_result *res, talon_audit_verdict verdict, const char *file,
                   uint64_t line, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void report(talon_audit_verify_result *res, talon_audit_verdict verdict, const char *file,
                   uint64_t line, uint64_t seq, const char *fmt, ...)
{
    va_list ap;

    if (res->verdict != TALON_AUDIT_INTACT)
        return; /* the first problem is already named */
    res->verdict = verdict;
    res->file = file;
    res->line = line;
    res->seq = seq;
    va_start(ap, fmt);
    vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
    va_end(ap);
}

/* Copy the cause of a seal record, the last member of its data, into out.
 * out is empty for other records and for a seal whose cause is unreadable. */
static void seal_cause(const talon_audit_record *rec, char *out, size_t outlen)
{
    static const char key[] = ",\"cause\":\"";

    out[0] = '\0';
    if (!talon_audit_str_equals(&rec->type, "audit_epoch_sealed"))
        return;
    const char *p = memmem(rec->data, rec->data_len, key, sizeof(key) - 1);
    if (p == NULL)
        return;
    p += sizeof(key) - 1;
    const char *end = memchr(p, '"', (size_t)(rec->data + rec->data_len - p));
    if (end == NULL || (size_t)(end - p) >= outlen)
        return;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
}

/* Compare one witnessed head with the record line that has its seq: its
 * hash and epoch, then its type and, for a seal, its cause. */
static void check_head(const talon_audit_witness *w, const talon_audit_witness_head *h,
                       const reader_file *f, const char *p, size_t len, uint64_t lineno,
                       talon_audit_verify_result *res, talon_audit_witness_result *wres)
{
    talon_audit_record rec;
    unsigned char hash[32];
    char hex[65];
    static const char digits[] = "0123456789abcdef";

    if (talon_audit_record_parse(p, len, &rec, NULL, 0) < 0) {
        report(res, TALON_AUDIT_MODIFIED, f->path, lineno, h->seq,
               "record seq %" PRIu64 " does not parse, but the witness (%s:%" PRIu64 ") saw it",
               h->seq, w->path, h->line);
        return;
    }
    EVP_Digest(rec.line, rec.prefix_len, hash, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[hash[i] >> 4];
        hex[2 * i + 1] = digits[hash[i] & 15];
    }
    hex[64] = '\0';
    char type[32], cause[16];
    talon_audit_str_decode(&rec.type, type, sizeof(type));
    for (char *c = type; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?'; /* the detail goes to a terminal */
    seal_cause(&rec, cause, sizeof(cause));
    if (strcmp(hex, h->head) != 0 || rec.epoch != h->epoch) {
        report(res, TALON_AUDIT_MODIFIED, f->path, lineno, h->seq,
               "record seq %" PRIu64 " (%s, epoch %" PRIu64 ", hash %.16s...) differs from the head "
               "the witness saw at %s:%" PRIu64 " (%s, epoch %" PRIu64 ", head %.16s...): the record "
               "was rewritten after it was witnessed",
               h->seq, type, rec.epoch, hex, w->path, h->line, h->record, h->epoch, h->head);
        return;
    }
    bool is_seal = strcmp(type, "audit_epoch_sealed") == 0;
    if (strcmp(type, h->record) != 0 || (is_seal && strcmp(cause, h->cause) != 0)) {
        report(res, TALON_AUDIT_MODIFIED, f->path, lineno, h->seq,
               "the witness line %s:%" PRIu64 " names record=%s cause=%s for seq %" PRIu64
               ", but that record is %s%s%s with the witnessed head: the witness line does not "
               "describe the record it witnessed; check the witness log",
               w->path, h->line, h->record, h->cause, h->seq, type, is_seal ? " with cause " : "",
               is_seal ? cause : "");
        return;
    }
    wres->checked++;
}

int talon_audit_witness_check(talon_audit_reader *reader, const talon_audit_witness *w,
                              const char *trail_hex, talon_audit_verify_result *res,
                              talon_audit_witness_result *wres, char *err, size_t errlen)
{
    const talon_audit_witness_head **mine;
    size_t n = 0, next = 0;
    uint64_t first_seq = 0, last_seq = 0;
    const char *last_file = NULL;
    uint64_t last_line = 0;
    bool any = false;

    memset(wres, 0, sizeof(*wres));
    mine = calloc(w->count ? w->count : 1, sizeof(*mine));
    if (mine == NULL) {
        snprintf(err, errlen, "out of memory checking the witness %s", w->path);
        return -ENOMEM;
    }
    for (size_t i = 0; i < w->count; i++) {
        if (strcmp(w->heads[i].trail, trail_hex) != 0) {
            wres->other_trails++;
            continue;
        }
        mine[n++] = &w->heads[i];
        if (w->heads[i].seq > wres->last_seq)
            wres->last_seq = w->heads[i].seq;
    }
    if (n == 0) {
        free(mine);
        snprintf(err, errlen, "witness log %s has no line for trail %s (%" PRIu64 " lines of other "
                 "trails); check the [audit] witness logger and where its sink sends the lines",
                 w->path, trail_hex, wres->other_trails);
        return -ENOENT;
    }
    qsort(mine, n, sizeof(*mine), by_seq);

    /* One pass over the trail in order; only lines with a witnessed seq are
     * parsed and hashed. */
    for (size_t fi = 0; fi < reader->nfiles && next < n; fi++) {
        const reader_file *f = &reader->files[fi];
        size_t off = 0;
        uint64_t lineno = 0;

        while (off < f->size && next < n) {
            const char *p = f->data + off;
            const char *nl = memchr(p, '\n', f->size - off);
            if (nl == NULL)
                break; /* a torn last line is not a record */
            size_t len = (size_t)(nl - p);
            uint64_t seq;
            off += len + 1;
            lineno++;
            if (!line_seq(p, len, &seq))
                continue;
            if (!any)
                first_seq = seq;
            any = true;
            last_seq = seq;
            last_file = f->path;
            last_line = lineno;
            while (next < n && mine[next]->seq < seq) {
                const talon_audit_witness_head *h = mine[next++];
                if (h->seq < first_seq) {
                    wres->before_start++; /* removed by retention before the trail we have */
                    continue;
                }
                report(res, TALON_AUDIT_DELETED, f->path, lineno, h->seq,
                       "seq %" PRIu64 " (%s, witnessed at %s:%" PRIu64 ") is missing from the trail",
                       h->seq, h->record, w->path, h->line);
            }
            while (next < n && mine[next]->seq == seq)
                check_head(w, mine[next++], f, p, len, lineno, res, wres);
        }
    }
    if (next < n) {
        const talon_audit_witness_head *h = mine[n - 1];
        report(res, TALON_AUDIT_TRUNCATED, last_file, last_line, last_seq,
               "truncated after the last seal: the witness (%s:%" PRIu64 ") saw seq %" PRIu64
               " (%s, cause %s, epoch %" PRIu64 "), but the trail ends at seq %" PRIu64
               "; %zu witnessed heads are past its end",
               w->path, h->line, h->seq, h->record, h->cause, h->epoch, last_seq, n - next);
    }
    free(mine);
    return 0;
}
