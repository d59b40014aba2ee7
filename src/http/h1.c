/* HTTP/1.1 request head parser and chunked body decoder (see h1.h).
 *
 * Both follow RFC 9112 strictly: every line ends with CRLF, a bare CR or LF
 * is an error, field names are tokens with the colon right after them, and
 * obs-fold is rejected. A lenient parser here would let a proxy and talon
 * split the same bytes into different requests (request smuggling). */
#include "http/h1.h"

#include <string.h>

#define H1_MAX_EMPTY_LINES 8     /* empty lines allowed before the request line */
#define H1_MAX_CHUNK_DIGITS 16   /* hex digits of a chunk size, so it fits in 64 bits */
#define H1_MAX_CHUNK_LINE 4096   /* chunk size and extensions, without the CRLF */
#define H1_MAX_TRAILER 16384     /* trailer section, its final CRLF included */

#define H1_STR(x) #x
#define H1_XSTR(x) H1_STR(x)

#define FAIL(status, message) \
    do {                      \
        *why = (message);     \
        return -(status);     \
    } while (0)

/* tchar of RFC 9110 section 5.6.2: "!#$%&'*+-.^_`|~", digits and letters. */
static const unsigned char tchar[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, /* 0x20  !"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, /* 0x30 0-9:;<=>? */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 @A-O */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, /* 0x50 P-Z[\]^_ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 `a-o */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, /* 0x70 p-z{|}~DEL */
    /* 0x80..0xff: 0 */
};

static inline bool is_tchar(unsigned char c)
{
    return tchar[c] != 0;
}

/* A field value byte: anything but NUL, CR and LF. RFC 9110 section 5.5
 * lets a recipient keep other control bytes "in a safe context". talon
 * keeps them, so the access log shows (escaped) what a hostile client
 * sent. CR, LF and NUL could split a line or a string, so they are
 * rejected. */
static inline bool is_value_byte(unsigned char c)
{
    return c != 0 && c != '\r' && c != '\n';
}

/* A byte of the method or the target: anything but NUL, CR, LF and SP,
 * which frame the request line. A method that is not a token is rejected
 * after the head is parsed (framing.c), so the request is logged with what
 * it sent. Control bytes in a target are escaped in the logs. */
static inline bool is_line_byte(unsigned char c)
{
    return c != 0 && c != '\r' && c != '\n' && c != ' ';
}

static inline bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static inline int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* ASCII lowercase */
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Word-at-a-time tests: x - n * ONES sets the high bit of some byte that
 * was clear in x exactly when a byte of x is below n (for n <= 128). The
 * bit may land on the wrong byte, so a hit only sends the scanners below
 * to look at single bytes. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline bool word_has_less(uint64_t x, unsigned n)
{
    return ((x - ONES * n) & ~x & HIGHS) != 0;
}

static inline bool word_has_byte(uint64_t x, unsigned c)
{
    return word_has_less(x ^ (ONES * c), 1);
}

/* First byte of p[0..end) that cannot be in a field value, or end. Values
 * (cookies, user agents) are usually most of a head, so 8 bytes go per step. */
static const char *scan_value(const char *p, const char *end)
{
    for (;;) {
        while (end - p >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            if (word_has_byte(x, 0) || word_has_byte(x, '\r') || word_has_byte(x, '\n'))
                break;
            p += 8;
        }
        /* The word may hold NUL, CR or LF (or a false hit). Look at its
         * bytes, then go back to words. */
        const char *stop = end - p > 8 ? p + 8 : end;
        for (; p < stop; p++) {
            if (!is_value_byte((unsigned char)*p))
                return p;
        }
        if (p == end)
            return p;
    }
}

/* First byte of p[0..end) that ends a method or a request target, or end. */
static const char *scan_line_word(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        if (word_has_less(x, 0x21))
            break; /* SP, CR, LF, NUL or another control byte: look closer */
        p += 8;
    }
    while (p < end && is_line_byte((unsigned char)*p))
        p++;
    return p;
}

static const char *scan_token(const char *p, const char *end)
{
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    return p;
}

/* The line end at p: returns the byte after CRLF, NULL when the buffer ends
 * before the LF, or sets *why for a bare CR. The caller has seen *p == '\r'. */
static const char *expect_lf(const char *p, const char *end, const char **why, bool *bad)
{
    if (p + 1 == end)
        return NULL;
    if (p[1] != '\n') {
        *why = "The request head contains a CR that is not followed by LF.";
        *bad = true;
        return NULL;
    }
    return p + 2;
}

/* Skip the empty lines that may precede the request line (RFC 9112
 * section 2.2). Returns the start of the request line, or NULL with *status
 * 0 (more bytes needed) or 400. */
static const char *skip_empty_lines(const char *p, const char *end, int *status,
                                    const char **why)
{
    for (int lines = 0;; lines++) {
        if (p == end) {
            *status = 0;
            return NULL;
        }
        if (*p == '\n') {
            *why = "The request head must use CRLF line endings; a bare LF was found.";
            *status = 400;
            return NULL;
        }
        if (*p != '\r')
            return p;
        if (lines == H1_MAX_EMPTY_LINES) {
            *why = "More than " H1_XSTR(H1_MAX_EMPTY_LINES) " empty lines precede the request line.";
            *status = 400;
            return NULL;
        }
        bool bad = false;
        const char *next = expect_lf(p, end, why, &bad);
        if (next == NULL) {
            *status = bad ? 400 : 0;
            return NULL;
        }
        p = next;
    }
}

/* The request line "method SP target SP HTTP/D.D CRLF" at p. Returns the
 * byte after its CRLF, or NULL with *status 0 (more bytes needed), 400 or 505. */
static const char *parse_request_line(const char *p, const char *end, h1_head *h, int *status,
                                      const char **why)
{
    static const char version[] = "HTTP/1.1";
    const char *line = p;

    *status = 400;
    p = scan_line_word(p, end);
    if (p == end)
        goto more;
    if (p == line || *p != ' ') {
        *why = "The request line must start with a method such as GET, followed by one space.";
        return NULL;
    }
    h->method = line;
    h->method_len = (size_t)(p - line);

    const char *target = ++p;
    p = scan_line_word(p, end);
    if (p == end)
        goto more;
    if (p == target) {
        *why = "The request target is missing, or more than one space follows the method.";
        return NULL;
    }
    if (*p == '\r' || *p == '\n') {
        *why = "The request line has no HTTP version; send \"METHOD target HTTP/1.1\".";
        return NULL;
    }
    if (*p != ' ') {
        *why = "The request target contains a NUL byte, which must be percent-encoded.";
        return NULL;
    }
    h->target = target;
    h->target_len = (size_t)(p - target);

    /* "HTTP/" DIGIT "." DIGIT, checked byte by byte so that a bad prefix
     * fails before the rest arrives. */
    const char *v = ++p;
    for (size_t i = 0; i < sizeof(version) - 1; i++, p++) {
        if (p == end)
            goto more;
        unsigned char c = (unsigned char)*p;
        bool ok = (i == 5 || i == 7) ? (c >= '0' && c <= '9') : c == (unsigned char)version[i];
        if (!ok) {
            *why = "The request line must end with one space and a version of the form HTTP/1.1.";
            return NULL;
        }
    }
    h->version = v;
    if (v[5] != '1') {
        *why = "This server speaks HTTP/1.x only; send HTTP/1.1 in the request line.";
        *status = 505;
        h->line_len = (size_t)(p - line); /* so that the rejection is logged with it */
        return NULL;
    }
    h->minor = v[7] == '0' ? 0 : 1;

    if (p == end)
        goto more;
    if (*p == '\n') {
        *why = "The request line must end with CRLF; a bare LF was found.";
        h->line_len = (size_t)(p - line);
        return NULL;
    }
    if (*p != '\r') {
        *why = "The request line must end with CRLF right after the HTTP version.";
        return NULL;
    }
    h->line_len = (size_t)(p - line);
    bool bad = false;
    const char *next = expect_lf(p, end, why, &bad);
    if (next == NULL && !bad)
        goto more;
    return next;

more:
    *status = 0;
    return NULL;
}

/* One field line "name: value CRLF" at p, which is not the empty line.
 * Same returns as parse_request_line. */
static const char *parse_field(const char *p, const char *end, h1_field *f, int *status,
                               const char **why)
{
    const char *name = p;

    *status = 400;
    if (is_ows((unsigned char)*p)) {
        *why = "A header field line starts with whitespace (obs-fold), which RFC 9112 "
               "section 5.2 rejects; send each field on one line.";
        return NULL;
    }
    p = scan_token(p, end);
    if (p == end)
        goto more;
    if (*p != ':') {
        if (p == name && *p != '\r' && *p != '\n')
            *why = "A header field line must start with a field name (a token) and a colon.";
        else if (is_ows((unsigned char)*p))
            *why = "A header field name is followed by whitespace before the colon, which "
                   "RFC 9112 section 5.1 forbids.";
        else if (*p == '\r' || *p == '\n')
            *why = "A header field line has no colon after the field name.";
        else
            *why = "A header field name contains a byte that is not allowed in a token.";
        return NULL;
    }
    if (p == name) {
        *why = "A header field line has no name before the colon.";
        return NULL;
    }
    f->name = name;
    f->name_len = (size_t)(p - name);

    p++;
    while (p < end && is_ows((unsigned char)*p))
        p++;
    const char *value = p;
    p = scan_value(p, end);
    if (p == end)
        goto more;
    if (*p == '\n') {
        *why = "The request head must use CRLF line endings; a bare LF was found.";
        return NULL;
    }
    if (*p != '\r') {
        *why = "A header field value contains a NUL byte.";
        return NULL;
    }
    const char *value_end = p;
    while (value_end > value && is_ows((unsigned char)value_end[-1]))
        value_end--;
    f->value = value;
    f->value_len = (size_t)(value_end - value);

    bool bad = false;
    const char *next = expect_lf(p, end, why, &bad);
    if (next == NULL && !bad)
        goto more;
    return next;

more:
    *status = 0;
    return NULL;
}

/* Each call parses from buf[0]. The native engine calls again for a head
 * that arrives in pieces only once a piece brings CR, LF or NUL, so a head
 * costs about one parse per line. */
int h1_parse_head(const char *buf, size_t len, h1_head *h, const char **why)
{
    const char *end = buf + len;
    int status;

    h->nfields = 0;
    h->head_len = 0;
    h->line_len = 0;
    const char *p = skip_empty_lines(buf, end, &status, why);
    if (p == NULL)
        return -status;
    p = parse_request_line(p, end, h, &status, why);
    if (p == NULL)
        return -status;

    for (;;) {
        if (p == end)
            return 0;
        if (*p == '\r') {
            bool bad = false;
            const char *next = expect_lf(p, end, why, &bad);
            if (next == NULL)
                return bad ? -400 : 0;
            h->head_len = (size_t)(next - buf);
            return (int)h->head_len;
        }
        if (*p == '\n')
            FAIL(400, "The request head must use CRLF line endings; a bare LF was found.");
        if (h->nfields == H1_MAX_FIELDS)
            FAIL(431, "The request has more than " H1_XSTR(H1_MAX_FIELDS) " header fields.");
        p = parse_field(p, end, &h->fields[h->nfields], &status, why);
        if (p == NULL)
            return -status;
        h->nfields++;
    }
}

bool h1_line_complete(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        p += 2;
    return p < end && memchr(p, '\n', (size_t)(end - p)) != NULL;
}

/* Decoder states: where the next byte belongs. */
enum {
    CH_SIZE,        /* hex digits of the chunk size */
    CH_SIZE_WS,     /* whitespace after the size, before ';' */
    CH_EXT,         /* chunk extensions, up to CR */
    CH_SIZE_LF,     /* LF after the size line */
    CH_DATA,        /* chunk data, c->left bytes to go */
    CH_DATA_CR,     /* CR after the data */
    CH_DATA_LF,     /* LF after the data */
    CH_TRAILER,     /* start of a trailer field line, or of the final CRLF */
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF,  /* LF after a trailer field line */
    CH_END_LF,      /* LF of the final CRLF */
    CH_DONE,
    CH_ERROR,       /* a call returned -400 */
};

void h1_chunked_init(h1_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE;
}

/* Feed one byte of a size line (states CH_SIZE to CH_SIZE_LF). Returns 0,
 * or -400 with *why set. */
static int chunk_size_byte(h1_chunked *c, unsigned char b, const char **why)
{
    if (c->state != CH_SIZE_LF && b != '\r' && ++c->line_len > H1_MAX_CHUNK_LINE)
        FAIL(400, "A chunk size line with its extensions is longer than "
                  H1_XSTR(H1_MAX_CHUNK_LINE) " bytes.");
    switch (c->state) {
    case CH_SIZE: {
        int v = hex_value(b);
        if (v >= 0) {
            if (c->line_len > H1_MAX_CHUNK_DIGITS)
                FAIL(400, "A chunk size has more than " H1_XSTR(H1_MAX_CHUNK_DIGITS)
                          " hexadecimal digits.");
            c->left = c->left << 4 | (uint64_t)v;
            return 0;
        }
        size_t digits = b == '\r' ? c->line_len : c->line_len - 1;
        if (digits == 0)
            FAIL(400, "A chunk size must start with a hexadecimal digit, without leading "
                      "whitespace or a 0x prefix.");
        if (b == '\r')
            c->state = CH_SIZE_LF;
        else if (b == ';')
            c->state = CH_EXT;
        else if (is_ows(b))
            c->state = CH_SIZE_WS;
        else
            FAIL(400, "A chunk size must be hexadecimal digits without a 0x prefix, followed "
                      "by CRLF or a chunk extension (;name=value).");
        return 0;
    }
    case CH_SIZE_WS:
        /* BWS before ';' (RFC 9112 section 7.1.1), but whitespace alone may not end the line. */
        if (b == ';')
            c->state = CH_EXT;
        else if (!is_ows(b))
            FAIL(400, "Whitespace after a chunk size may only precede a chunk extension (;name=value).");
        return 0;
    case CH_EXT:
        /* The extension's grammar is not checked: talon ignores extensions,
         * and no byte of a valid one is a CR, so the line ends at the first CR. */
        if (b == '\r')
            c->state = CH_SIZE_LF;
        else if (b == '\n')
            FAIL(400, "A chunk size line must end with CRLF; a bare LF was found.");
        else if (!is_value_byte(b))
            FAIL(400, "A chunk extension contains a NUL byte.");
        return 0;
    default: /* CH_SIZE_LF */
        if (b != '\n')
            FAIL(400, "A chunk size line contains a CR that is not followed by LF.");
        c->line_len = 0;
        c->state = c->left == 0 ? CH_TRAILER : CH_DATA;
        return 0;
    }
}

/* Feed one byte of the trailer section (states CH_TRAILER to CH_END_LF).
 * Every trailer line must be a field line as in the head. */
static int chunk_trailer_byte(h1_chunked *c, unsigned char b, const char **why)
{
    if (++c->trailer_len > H1_MAX_TRAILER)
        FAIL(400, "The trailer section of the chunked body is longer than "
                  H1_XSTR(H1_MAX_TRAILER) " bytes.");
    switch (c->state) {
    case CH_TRAILER:
        if (b == '\r') {
            c->state = CH_END_LF;
        } else if (b == '\n') {
            FAIL(400, "The trailer section must use CRLF line endings; a bare LF was found.");
        } else if (is_ows(b)) {
            FAIL(400, "A trailer field line starts with whitespace (obs-fold), which RFC 9112 "
                      "section 5.2 rejects.");
        } else if (is_tchar(b)) {
            c->state = CH_TRAILER_NAME;
        } else {
            FAIL(400, "A trailer field line must start with a field name (a token) and a colon.");
        }
        return 0;
    case CH_TRAILER_NAME:
        if (b == ':')
            c->state = CH_TRAILER_VALUE;
        else if (is_ows(b))
            FAIL(400, "A trailer field name is followed by whitespace before the colon, which "
                      "RFC 9112 section 5.1 forbids.");
        else if (!is_tchar(b))
            FAIL(400, "A trailer field name contains a byte that is not allowed in a token, or "
                      "the line has no colon.");
        return 0;
    case CH_TRAILER_VALUE:
        if (b == '\r')
            c->state = CH_TRAILER_LF;
        else if (b == '\n')
            FAIL(400, "The trailer section must use CRLF line endings; a bare LF was found.");
        else if (!is_value_byte(b))
            FAIL(400, "A trailer field value contains a NUL byte.");
        return 0;
    case CH_TRAILER_LF:
        if (b != '\n')
            FAIL(400, "A trailer field line contains a CR that is not followed by LF.");
        c->state = CH_TRAILER;
        return 0;
    default: /* CH_END_LF */
        if (b != '\n')
            FAIL(400, "The chunked body must end with CRLF after the trailer section.");
        c->state = CH_DONE;
        c->done = true;
        return 0;
    }
}

ssize_t h1_chunked_step(h1_chunked *c, const char *in, size_t len, const char **data,
                        size_t *data_len, const char **why)
{
    size_t i = 0;

    *data = NULL;
    *data_len = 0;
    if (c->state == CH_ERROR)
        FAIL(400, "The chunked body was already rejected; close the connection.");
    while (i < len && c->state != CH_DONE) {
        unsigned char b = (unsigned char)in[i];
        int rc = 0;
        switch (c->state) {
        case CH_DATA: {
            /* The call ends with the span, so data is never returned
             * together with an error found after it. */
            size_t n = len - i;
            if (n > c->left)
                n = (size_t)c->left;
            *data = in + i;
            *data_len = n;
            c->left -= n;
            if (c->left == 0)
                c->state = CH_DATA_CR;
            return (ssize_t)(i + n);
        }
        case CH_DATA_CR:
        case CH_DATA_LF:
            if (b != (c->state == CH_DATA_CR ? '\r' : '\n')) {
                *why = "The chunk data must be followed by CRLF; the data is longer than its "
                       "chunk size, or the CRLF is missing.";
                rc = -400;
            }
            c->state = c->state == CH_DATA_CR ? CH_DATA_LF : CH_SIZE;
            break;
        case CH_SIZE:
        case CH_SIZE_WS:
        case CH_EXT:
        case CH_SIZE_LF:
            rc = chunk_size_byte(c, b, why);
            break;
        default:
            rc = chunk_trailer_byte(c, b, why);
            break;
        }
        if (rc < 0) {
            c->state = CH_ERROR;
            return rc;
        }
        i++;
    }
    return (ssize_t)i;
}
