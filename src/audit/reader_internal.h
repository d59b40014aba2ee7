/* Internal declarations shared by the trail reader, verifier and query. */
#ifndef TALON_AUDIT_READER_INTERNAL_H
#define TALON_AUDIT_READER_INTERNAL_H

#include "talon/audit_reader.h"

#include <stdatomic.h>
#include <sys/types.h>

typedef struct reader_file {
    char *path;
    uint64_t index;      /* from audit-NNNNNNNN.jsonl; 0 when the name has none */
    const char *data;    /* read-only mapping, NULL for an empty file */
    size_t size;
    dev_t dev;           /* device number: with ino, the identity that rejects a file given twice */
    ino_t ino;
} reader_file;

struct talon_audit_reader {
    reader_file *files;
    size_t nfiles;
    uint64_t total;
    _Atomic(struct talon_audit_reader *) next; /* the list of open readers */
};

/* Length of the valid multi-byte UTF-8 sequence at p (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0; also 0 for
 * an ASCII byte. */
size_t reader_utf8_len(const unsigned char *p, const unsigned char *end);

/* Copy value (n bytes) into out (outlen bytes) in the display form of the
 * table format: valid UTF-8 without control characters, in which each code
 * point takes one column (see display_char in query_table.c). Stops before
 * a character that does not fit, and a character takes at most 4 bytes of
 * out per byte of value. Returns the bytes written, without a NUL. */
size_t reader_display_text(const char *value, size_t n, char *out, size_t outlen);

/* Days in month (1 to 12) of year, Gregorian. */
unsigned reader_days_in_month(unsigned year, unsigned month);

/* Bytes before the "mac" member in every well-formed record: the suffix is
 * "mac":"<64 hex>"} after P_i. */
#define READER_MAC_SUFFIX_LEN (7 + 64 + 2)

#endif
