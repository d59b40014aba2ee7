/* Table output of trail records (talon audit query and tail --format
 * table): one aligned row per record. Widths count code points, and the
 * text of a cell is valid UTF-8 without control characters, so that
 * hostile values can neither break a row nor move the columns after it.
 * NOTE: terminals draw East Asian wide characters and most emoji in two
 * columns, so a row with them ends up wider than the header. */
#include "audit/reader_internal.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct column {
    const char *title;
    int width;          /* 0: the last column, not padded */
    bool right;
} column;

static const column COLUMNS[] = {
    { "TIME", 27, false }, { "SEQ", 9, true }, { "TYPE", 26, false }, { "OUTCOME", 7, false },
    { "ACTOR", 16, false }, { "SOURCE", 22, false }, { "TARGET", 24, false }, { "REQUEST", 0, false },
};

typedef struct out_buf {
    char *p;
    size_t len, cap;
} out_buf;

static void put(out_buf *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (o->len + 1 < o->cap)
            o->p[o->len] = s[i];
        o->len++;
    }
}

/* Byte offset of display column col in s (UTF-8 continuation bytes take no column). */
static size_t column_offset(const char *s, size_t n, size_t col)
{
    size_t cols = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xc0) == 0x80)
            continue;
        if (cols == col)
            return i;
        cols++;
    }
    return n;
}

/* Whether the valid UTF-8 character p[0..len) is U+061C, U+200E, U+200F,
 * U+2028-U+202E or U+2066-U+2069. */
static bool hides_layout(const unsigned char *p, size_t len)
{
    if (len == 2)
        return p[0] == 0xd8 && p[1] == 0x9c;
    if (len != 3 || p[0] != 0xe2)
        return false;
    if (p[1] == 0x80)
        return p[2] == 0x8e || p[2] == 0x8f || (p[2] >= 0xa8 && p[2] <= 0xae);
    return p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9;
}

/* Write the display form of the character at p into piece and return the
 * bytes of p it stands for. Control characters (C0, DEL, C1) become '?'. A
 * lone surrogate, which the decoder writes as three bytes that are not
 * UTF-8, is shown as its JSON escape \uXXXX, and any other byte that does
 * not start valid UTF-8 (a value cut inside a character) as \xNN. */
static size_t display_char(const unsigned char *p, const unsigned char *end, char piece[8], size_t *piece_len)
{
    size_t len = reader_utf8_len(p, end);

    if (*p < 0x80) {
        piece[0] = *p < 0x20 || *p == 0x7f ? '?' : (char)*p;
        *piece_len = 1;
        return 1;
    }
    if (len == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
        piece[0] = '?'; /* U+0080..U+009F, such as the 8-bit CSI U+009B */
        *piece_len = 1;
        return 2;
    }
    if (hides_layout(p, len)) {
        /* A line or paragraph separator, or a bidirectional mark or
         * override, which would split a row or reorder its text on screen. */
        unsigned cp = len == 2 ? (unsigned)(p[0] & 0x1f) << 6 | (p[1] & 0x3f)
                               : (unsigned)(p[0] & 0x0f) << 12 | (unsigned)(p[1] & 0x3f) << 6 |
                                 (p[2] & 0x3f);
        *piece_len = (size_t)snprintf(piece, 8, "\\u%04x", cp);
        return len;
    }
    if (len > 0) {
        memcpy(piece, p, len);
        *piece_len = len;
        return len;
    }
    if (end - p >= 3 && p[0] == 0xed && p[1] >= 0xa0 && p[1] <= 0xbf && (p[2] & 0xc0) == 0x80) {
        unsigned cp = 0xd000u | (unsigned)(p[1] & 0x3f) << 6 | (unsigned)(p[2] & 0x3f);
        *piece_len = (size_t)snprintf(piece, 8, "\\u%04x", cp);
        return 3;
    }
    *piece_len = (size_t)snprintf(piece, 8, "\\x%02x", *p);
    return 1;
}

size_t reader_display_text(const char *value, size_t n, char *out, size_t outlen)
{
    const unsigned char *p = (const unsigned char *)value, *end = p + n;
    size_t k = 0;

    while (p < end) {
        char piece[8];
        size_t piece_len;
        size_t used = display_char(p, end, piece, &piece_len);
        if (k + piece_len > outlen)
            break;
        memcpy(out + k, piece, piece_len);
        k += piece_len;
        p += used;
    }
    return k;
}

/* Write one cell in display form (see display_char), so that hostile
 * values can neither break the row nor shift the columns. A value wider
 * than the column is cut and ends with '~'. */
static void cell(out_buf *o, const column *c, const char *value, size_t n, bool last)
{
    char clean[1024]; /* values are at most 255 bytes, and a byte takes at most 4 here */
    size_t k = reader_display_text(value, n, clean, sizeof clean);
    size_t width = (size_t)c->width;
    size_t cols = 0;
    for (size_t i = 0; i < k; i++)
        cols += ((unsigned char)clean[i] & 0xc0) != 0x80;
    bool cut = width && cols > width;
    if (cut) {
        k = column_offset(clean, k, width - 1);
        cols = width;
    }
    size_t pad = width > cols ? width - cols : 0;
    if (c->right)
        for (size_t i = 0; i < pad; i++)
            put(o, " ", 1);
    put(o, clean, k);
    if (cut)
        put(o, "~", 1);
    if (!c->right && !last)
        for (size_t i = 0; i < pad; i++)
            put(o, " ", 1);
    if (!last)
        put(o, "  ", 2);
}

static size_t finish(out_buf *o)
{
    if (o->cap)
        o->p[o->len < o->cap ? o->len : o->cap - 1] = '\0';
    return o->len < o->cap ? o->len : (o->cap ? o->cap - 1 : 0);
}

size_t talon_audit_table_header(char *buf, size_t buflen)
{
    out_buf o = { buf, 0, buflen };
    size_t n = sizeof COLUMNS / sizeof COLUMNS[0];
    for (size_t i = 0; i < n; i++)
        cell(&o, &COLUMNS[i], COLUMNS[i].title, strlen(COLUMNS[i].title), i + 1 == n);
    return finish(&o);
}

static size_t decoded(const talon_audit_str *s, char *buf, size_t buflen, const char *if_null)
{
    if (s->null || !s->p)
        return (size_t)snprintf(buf, buflen, "%s", if_null);
    size_t n = talon_audit_str_decode(s, buf, buflen);
    return n < buflen ? n : buflen - 1;
}

size_t talon_audit_table_row(const talon_audit_record *r, char *buf, size_t buflen)
{
    out_buf o = { buf, 0, buflen };
    char v[256], w[256];
    size_t n;

    n = decoded(&r->time, v, sizeof v, "-");
    cell(&o, &COLUMNS[0], v, n, false);
    n = (size_t)snprintf(v, sizeof v, "%llu", (unsigned long long)r->seq);
    cell(&o, &COLUMNS[1], v, n, false);
    n = decoded(&r->type, v, sizeof v, "-");
    cell(&o, &COLUMNS[2], v, n, false);
    n = decoded(&r->outcome, v, sizeof v, "-");
    cell(&o, &COLUMNS[3], v, n, false);
    n = decoded(&r->actor_id, v, sizeof v, "-");
    cell(&o, &COLUMNS[4], v, n, false);
    n = decoded(&r->source_ip, v, sizeof v, "-");
    cell(&o, &COLUMNS[5], v, n, false);
    if (r->target_type.null && r->target_id.null) {
        n = (size_t)snprintf(v, sizeof v, "-");
    } else {
        decoded(&r->target_type, w, 120, "-");
        char id[120];
        decoded(&r->target_id, id, sizeof id, "-");
        n = (size_t)snprintf(v, sizeof v, "%s:%s", w, id);
        if (n >= sizeof v)
            n = sizeof v - 1;
    }
    cell(&o, &COLUMNS[6], v, n, false);
    n = decoded(&r->request_id, v, sizeof v, "-");
    cell(&o, &COLUMNS[7], v, n, true);
    return finish(&o);
}
