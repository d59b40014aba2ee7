/* HTTP/1.1 message framing for talon's own engine (RFC 9112): the request
 * head and the chunked transfer coding. No I/O and no allocation: the
 * parser points into the caller's buffer, and the engine copies what the
 * request keeps. Strict on purpose, so that talon and a proxy in front of
 * it never disagree on where a request ends. */
#ifndef TALON_HTTP_H1_H
#define TALON_HTTP_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H1_MAX_FIELDS 128 /* more header fields than this: 431 */

typedef struct h1_field {
    const char *name;
    size_t name_len;
    const char *value;     /* without leading and trailing SP or HTAB */
    size_t value_len;
} h1_field;

typedef struct h1_head {
    const char *method;
    size_t method_len;
    const char *target;    /* the request target as sent */
    size_t target_len;
    int minor;             /* HTTP/1.<minor>: 0, or 1 for 1.1 and later 1.x */
    const char *version;   /* the 8 bytes "HTTP/D.D" as sent */
    size_t line_len;       /* request line without its CRLF; 0 until it is parsed */
    h1_field fields[H1_MAX_FIELDS];
    size_t nfields;
    size_t head_len;       /* bytes of the head, leading empty lines and the final CRLF included */
} h1_head;

/* Parse the request head at buf[0..len). Returns head_len (> 0) when the
 * head is complete, 0 when more bytes are needed, or a negative status
 * (-400, -431 for more than H1_MAX_FIELDS fields, -505 for a version other
 * than HTTP/1.x) with *why set to a sentence for the client. Size limits
 * are the caller's: see h1_line_complete(). Whatever the result, a
 * non-zero line_len means that method, target and version are valid. So a
 * rejected request (505, a bare LF after the version) can be logged with
 * its request line. minor is valid only when the result is not -505. */
int h1_parse_head(const char *buf, size_t len, h1_head *h, const char **why);

/* Whether buf[0..len) contains a whole request line (leading empty lines
 * skipped), so that a head over the size limit gets 431 and a request line
 * over it 414. */
bool h1_line_complete(const char *buf, size_t len);

/* Incremental decoder of a chunked body (RFC 9112 section 7.1). */
typedef struct h1_chunked {
    int state;
    uint64_t left;         /* data bytes left in the current chunk */
    size_t line_len;       /* bytes of the current size, extension or trailer line */
    size_t trailer_len;    /* bytes of the trailer section so far */
    bool done;             /* the last chunk and the trailer section were read */
} h1_chunked;

void h1_chunked_init(h1_chunked *c);

/* Decode from in[0..len). Returns the number of bytes consumed (0 only
 * when len is 0 or the body is done), or -400 with *why set for a
 * malformed body. *data and *data_len give the chunk data found in the
 * consumed bytes (at most one span per call; *data_len 0 when none).
 * Call again with the rest until it consumes nothing. */
ssize_t h1_chunked_step(h1_chunked *c, const char *in, size_t len, const char **data,
                        size_t *data_len, const char **why);

#endif
