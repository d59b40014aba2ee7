/* Fuzz `verify` against tampering (src/audit/verify.c, reader.c).
 *
 * The process writes one real trail with the library's writer (see
 * fuzz_audit_common.h). Each input is a mode byte and a script of edits --
 * flip, overwrite, insert or delete bytes, truncate, and duplicate, swap or
 * delete whole lines -- applied to a copy of that trail, which is then
 * verified with the auditor's key.
 *
 * Invariant: verify passes only on what the format cannot tell from the
 * original:
 * - strict (no --open, no --partial): the bytes equal the original;
 * - --open: a prefix of the original cut at a line end (records after the
 *   last seal are not protected: docs/security.md), plus any bytes without
 *   a final '\n' (a write in progress, which verify skips);
 * - --partial: a suffix that starts at a line start (retention);
 * - both: a line-aligned piece of the original.
 * With the witness lines the writer sent (mode bit 8), a prefix or piece
 * must also reach the last witnessed record: cutting the trail back before
 * a witnessed head is what the witness is for.
 * Without the key (chain only), anyone can rebuild a chain, so there only
 * crashes and sanitizer reports count. */
#include "fuzz_audit_common.h"

static bool at_line_start(size_t off)
{
    return off == 0 || fa_original[off - 1] == '\n';
}

/* Is [data, size) a piece of the original that verify may accept? With the
 * witness, a piece must still reach the last witnessed record. */
static bool acceptable(const char *data, size_t size, bool open_ok, bool partial,
                       bool witnessed)
{
    if (size == fa_original_len && memcmp(data, fa_original, size) == 0)
        return true;
    if (!open_ok && !partial)
        return false;
    /* --open reads a live trail: a last line without its '\n' may be a
     * write in progress and is not a record; verify skips it. */
    if (open_ok) {
        while (size > 0 && data[size - 1] != '\n')
            size--;
    }
    for (size_t start = 0; start + size <= fa_original_len; start++) {
        if (start > 0 && !partial)
            break;
        if (!at_line_start(start) || !at_line_start(start + size))
            continue;
        if (!open_ok && start + size != fa_original_len)
            continue;
        if (witnessed && start + size < fa_witnessed_end)
            continue;
        if (memcmp(fa_original + start, data, size) == 0)
            return true;
    }
    return false;
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void buf_splice(buf *b, size_t off, size_t del, const char *ins, size_t ins_len)
{
    if (off > b->len)
        off = b->len;
    if (del > b->len - off)
        del = b->len - off;
    if (b->len - del + ins_len > b->cap)
        return; /* keep inputs bounded */
    memmove(b->p + off + ins_len, b->p + off + del, b->len - off - del);
    if (ins_len > 0)
        memcpy(b->p + off, ins, ins_len);
    b->len = b->len - del + ins_len;
}

/* Offset and length of line i (modulo the number of lines). The lines are
 * counted with memchr: this harness is instrumented for coverage too, and a
 * byte loop here took a tenth of each run. */
static bool line_span(const buf *b, size_t i, size_t *off, size_t *len)
{
    size_t lines = 0;
    for (const char *p = b->p, *end = b->p + b->len; p < end; lines++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    if (lines == 0)
        return false;
    i %= lines;
    size_t start = 0;
    for (size_t k = 0; k < i; k++)
        start = (size_t)((char *)memchr(b->p + start, '\n', b->len - start) - b->p) + 1;
    char *nl = memchr(b->p + start, '\n', b->len - start);
    *off = start;
    *len = nl ? (size_t)(nl - (b->p + start)) + 1 : b->len - start;
    return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fa_setup();
    /* The untouched trail passes in every mode. */
    talon_audit_verify_result res;
    fa_write_input(fa_original, fa_original_len);
    talon_audit_reader *rd = fa_open_input();
    for (int mode = 0; mode < 4; mode++) {
        if (fa_verify(rd, true, mode & 1, mode & 2, &res) != TALON_AUDIT_INTACT)
            fa_die("the writer's own trail does not verify", res.detail);
        if (fa_verify_witnessed(rd, true, mode & 1, mode & 2, fa_witness, &res) != TALON_AUDIT_INTACT)
            fa_die("the writer's own trail does not match its witness", res.detail);
    }
    talon_audit_reader_close(rd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    buf b = { malloc(fa_original_len * 2 + 4096), fa_original_len, fa_original_len * 2 + 4096 };
    FUZZ_CHECK(b.p != NULL);
    memcpy(b.p, fa_original, fa_original_len);

    for (int ops = 0; ops < 8 && end - p >= 3; ops++) {
        uint8_t op = *p++;
        size_t off = ((size_t)p[0] << 8 | p[1]) % (b.len + 1);
        p += 2;
        size_t n = p < end ? *p++ : 0;
        size_t a_off, a_len, c_off, c_len;
        switch (op % 8) {
        case 0: /* flip bits of one byte */
            if (off < b.len)
                b.p[off] ^= (char)(n ? n : 1);
            break;
        case 1: /* delete bytes */
            buf_splice(&b, off, n, NULL, 0);
            break;
        case 2: /* insert bytes from the input */
        case 7: { /* overwrite bytes from the input */
            size_t avail = (size_t)(end - p);
            if (n > avail)
                n = avail;
            buf_splice(&b, off, op % 8 == 7 ? n : 0, (const char *)p, n);
            p += n;
            break;
        }
        case 3: /* truncate */
            b.len = off;
            break;
        case 4: /* duplicate line n before line off */
            if (line_span(&b, n, &a_off, &a_len) && line_span(&b, off, &c_off, &c_len)) {
                char *copy = malloc(a_len);
                memcpy(copy, b.p + a_off, a_len);
                buf_splice(&b, c_off, 0, copy, a_len);
                free(copy);
            }
            break;
        case 5: /* swap lines n and off */
            if (line_span(&b, n, &a_off, &a_len) && line_span(&b, off, &c_off, &c_len) &&
                a_off != c_off) {
                if (a_off > c_off) {
                    size_t t = a_off; a_off = c_off; c_off = t;
                    t = a_len; a_len = c_len; c_len = t;
                }
                char *a = malloc(a_len), *c = malloc(c_len);
                memcpy(a, b.p + a_off, a_len);
                memcpy(c, b.p + c_off, c_len);
                buf_splice(&b, c_off, c_len, a, a_len);
                buf_splice(&b, a_off, a_len, c, c_len);
                free(a);
                free(c);
            }
            break;
        case 6: /* delete line n */
            if (line_span(&b, n, &a_off, &a_len))
                buf_splice(&b, a_off, a_len, NULL, 0);
            break;
        }
    }

    fa_write_input(b.p, b.len);
    talon_audit_reader *rd = fa_open_input();
    bool open_ok = mode & 1, partial = mode & 2, witnessed = mode & 8;
    talon_audit_verify_result res;
    int verdict = fa_verify_witnessed(rd, true, open_ok, partial, witnessed ? fa_witness : NULL, &res);
    if (verdict == TALON_AUDIT_INTACT && !acceptable(b.p, b.len, open_ok, partial, witnessed)) {
        fprintf(stderr, "verify passed a tampered trail (open=%d partial=%d witness=%d): "
                "%zu bytes, %llu records\n", open_ok, partial, witnessed, b.len,
                (unsigned long long)res.records);
        __builtin_trap();
    }
    if (verdict != TALON_AUDIT_INTACT)
        FUZZ_CHECK(res.detail[0] != '\0');
    if (mode & 4)
        fa_verify(rd, false, open_ok, partial, &res);
    talon_audit_reader_close(rd);
    free(b.p);
    return 0;
}
