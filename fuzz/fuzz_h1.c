/* Fuzz the HTTP/1.1 request head parser and the chunked body decoder of
 * src/http/h1.c.
 *
 * Input: the whole input is parsed as a request head. The chunked decoder
 * gets the input from byte 3 on. Bytes 0 and 1 choose where the body is
 * split in two, and byte 2 the piece size of a third decoding.
 *
 * Invariants checked:
 * - h1_parse_head returns 0, head_len (1..size) or -400, -431 or -505,
 *   with a reason for each rejection, and the same again on the same bytes;
 * - a complete head lies inside the buffer and ends with CRLF CRLF, and
 *   h1_line_complete agrees that its request line is whole;
 * - its field names are tokens, its method and target have no NUL, CR, LF
 *   or SP, and its values have no NUL, CR or LF and no leading or trailing
 *   SP or HTAB;
 * - a prefix of a complete head returns 0, and a prefix of a rejected input
 *   returns 0 or the same status;
 * - the chunked decoder yields the same data, error and done outcome
 *   whether the body comes whole, split in two or in small pieces, and the
 *   same consumed total when there is no error. */
#include <stdbool.h>
#include <string.h>

#include "fuzz_util.h"
#include "http/framing.h"
#include "http/h1.h"

FUZZ_NO_COVERAGE static bool inside(const char *buf, size_t size, const char *p, size_t len)
{
    return p >= buf && len <= size && p - buf <= (ptrdiff_t)(size - len);
}

FUZZ_NO_COVERAGE static void check_head(const char *buf, size_t size, const h1_head *h, int rc)
{
    size_t head_len = (size_t)rc;
    FUZZ_CHECK(head_len <= size && h->head_len == head_len);
    FUZZ_CHECK(head_len >= 4 && memcmp(buf + head_len - 4, "\r\n\r\n", 4) == 0);
    FUZZ_CHECK(inside(buf, head_len, h->method, h->method_len));
    FUZZ_CHECK(h->method_len > 0 && h->method[h->method_len] == ' ');
    for (size_t i = 0; i < h->method_len; i++) {
        unsigned char c = (unsigned char)h->method[i];
        FUZZ_CHECK(c != 0 && c != '\r' && c != '\n' && c != ' ');
    }
    FUZZ_CHECK(inside(buf, head_len, h->target, h->target_len) && h->target_len > 0);
    for (size_t i = 0; i < h->target_len; i++) {
        unsigned char c = (unsigned char)h->target[i];
        FUZZ_CHECK(c != 0 && c != '\r' && c != '\n' && c != ' ');
    }
    FUZZ_CHECK(h->minor == 0 || h->minor == 1);
    FUZZ_CHECK(inside(buf, head_len, h->method, h->line_len + 2));
    FUZZ_CHECK(memcmp(h->method + h->line_len - 9, " HTTP/1.", 8) == 0);
    FUZZ_CHECK(memcmp(h->method + h->line_len, "\r\n", 2) == 0);
    FUZZ_CHECK(h->nfields <= H1_MAX_FIELDS);

    const char *prev_end = h->method + h->line_len;
    for (size_t i = 0; i < h->nfields; i++) {
        const h1_field *f = &h->fields[i];
        FUZZ_CHECK(f->name > prev_end);
        FUZZ_CHECK(inside(buf, head_len, f->name, f->name_len + 1));
        FUZZ_CHECK(talon_http_is_token(f->name, f->name_len));
        FUZZ_CHECK(f->name[f->name_len] == ':');
        FUZZ_CHECK(inside(buf, head_len, f->value, f->value_len) && f->value > f->name);
        for (size_t k = 0; k < f->value_len; k++) {
            unsigned char c = (unsigned char)f->value[k];
            FUZZ_CHECK(c != 0 && c != '\r' && c != '\n');
        }
        if (f->value_len > 0) {
            FUZZ_CHECK(f->value[0] != ' ' && f->value[0] != '\t');
            FUZZ_CHECK(f->value[f->value_len - 1] != ' ' && f->value[f->value_len - 1] != '\t');
        }
        prev_end = f->value + f->value_len;
    }
    FUZZ_CHECK(h1_line_complete(buf, size));
}

FUZZ_NO_COVERAGE static bool same_head(const h1_head *a, const h1_head *b)
{
    if (a->method != b->method || a->method_len != b->method_len || a->target != b->target ||
        a->target_len != b->target_len || a->minor != b->minor || a->line_len != b->line_len ||
        a->nfields != b->nfields || a->head_len != b->head_len)
        return false;
    for (size_t i = 0; i < a->nfields; i++) {
        if (memcmp(&a->fields[i], &b->fields[i], sizeof(h1_field)) != 0)
            return false;
    }
    return true;
}

/* Parse the prefix of k bytes from an exact-size copy, so that ASan reports
 * a read past its end. */
static int parse_prefix(const char *buf, size_t k, h1_head *h)
{
    char *copy = malloc(k ? k : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, buf, k);
    const char *why = NULL;
    int rc = h1_parse_head(copy, k, h, &why);
    free(copy);
    return rc;
}

static void fuzz_head(const char *buf, size_t size)
{
    static h1_head h, again;
    const char *why = NULL;
    int rc = h1_parse_head(buf, size, &h, &why);
    FUZZ_CHECK(rc >= 0 || rc == -400 || rc == -431 || rc == -505);
    FUZZ_CHECK(rc <= 0 || (size_t)rc <= size);
    if (rc < 0)
        FUZZ_CHECK(why != NULL && why[0] != '\0');
    if (rc > 0)
        check_head(buf, size, &h, rc);

    const char *why2 = NULL;
    FUZZ_CHECK(h1_parse_head(buf, size, &again, &why2) == rc);
    if (rc > 0)
        FUZZ_CHECK(same_head(&h, &again));
    if (rc < 0)
        FUZZ_CHECK(why2 == why);

    /* Prefixes: all of them for a short input, else about 256 spread out
     * and the last 16 (the re-parse on every read would be quadratic). */
    size_t end = rc > 0 ? (size_t)rc : size;
    size_t step = end / 256 + 1;
    for (size_t k = 0; k < end; k += (k + 16 >= end ? 1 : step)) {
        int prc = parse_prefix(buf, k, &again);
        if (rc > 0)
            FUZZ_CHECK(prc == 0);
        else
            FUZZ_CHECK(prc == 0 || prc == rc);
    }
}

typedef struct decoding {
    char *data;
    size_t data_len;
    size_t consumed;
    ssize_t error;
    bool done;
} decoding;

/* Decode body[0..size) in pieces of at most piece bytes, except that the
 * piece boundaries include split. */
static void decode(const char *body, size_t size, size_t split, size_t piece, decoding *out)
{
    h1_chunked c;
    h1_chunked_init(&c);
    out->data = malloc(size ? size : 1);
    FUZZ_CHECK(out->data != NULL);
    out->data_len = 0;
    out->error = 0;
    size_t off = 0;
    while (off < size) {
        size_t stop = off < split ? split : size;
        if (stop - off > piece)
            stop = off + piece;
        /* Call until this piece is consumed or the decoder stops. */
        size_t before = off;
        while (off < stop) {
            const char *data = NULL, *why = NULL;
            size_t data_len = 0;
            ssize_t n = h1_chunked_step(&c, body + off, stop - off, &data, &data_len, &why);
            if (n < 0) {
                FUZZ_CHECK(n == -400 && why != NULL && data_len == 0);
                out->error = n;
                goto out;
            }
            FUZZ_CHECK((size_t)n <= stop - off);
            if (n == 0) {
                FUZZ_CHECK(c.done && data_len == 0);
                goto out;
            }
            if (data_len > 0) {
                FUZZ_CHECK(data >= body + off && data + data_len <= body + off + n);
                memcpy(out->data + out->data_len, data, data_len);
                out->data_len += data_len;
            }
            off += (size_t)n;
        }
        FUZZ_CHECK(off > before);
        if (c.done)
            break;
    }
out:
    out->consumed = off;
    out->done = c.done;
    if (c.done) {
        const char *data, *why;
        size_t data_len;
        FUZZ_CHECK(h1_chunked_step(&c, "0\r\n\r\n", 5, &data, &data_len, &why) == 0);
    }
}

FUZZ_NO_COVERAGE static void same_decoding(const decoding *a, const decoding *b)
{
    FUZZ_CHECK(a->error == b->error);
    FUZZ_CHECK(a->done == b->done);
    if (a->error == 0)
        FUZZ_CHECK(a->consumed == b->consumed);
    FUZZ_CHECK(a->data_len == b->data_len);
    FUZZ_CHECK(memcmp(a->data, b->data, a->data_len) == 0);
}

static void fuzz_chunked(const uint8_t *data, size_t size)
{
    if (size < 3)
        return;
    const char *body = (const char *)data + 3;
    size_t len = size - 3;
    size_t split = ((size_t)data[0] << 8 | data[1]) % (len + 1);
    size_t piece = (size_t)(data[2] % 16) + 1;

    decoding whole, two, small;
    decode(body, len, len, SIZE_MAX, &whole);
    decode(body, len, split, SIZE_MAX, &two);
    decode(body, len, len, piece, &small);
    same_decoding(&whole, &two);
    same_decoding(&whole, &small);
    free(whole.data);
    free(two.data);
    free(small.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_head((const char *)data, size);
    fuzz_chunked(data, size);
    return 0;
}
