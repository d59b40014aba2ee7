/* Helpers shared by the libFuzzer targets (fuzz/fuzz_*.c).
 *
 * A target checks its own invariants and calls FUZZ_CHECK on each: a
 * violation traps, so libFuzzer saves the input as a crash file just as it
 * does for an ASan or UBSan report. */
#ifndef TALON_FUZZ_UTIL_H
#define TALON_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The checking code is not what is fuzzed: keep it out of the coverage
 * instrumentation, so its per-byte comparisons neither slow a run nor count
 * as new features. */
#define FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage")))

#define FUZZ_CHECK(cond)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, \
                    #cond);                                                       \
            __builtin_trap();                                                     \
        }                                                                         \
    } while (0)

/* Input split into parts at a separator byte. Parts point into a private
 * NUL-terminated copy, so each can be used as a C string. */
typedef struct fuzz_parts {
    char *copy;
    const char *p[64];
    size_t len[64];
    size_t n;
} fuzz_parts;

/* Split at sep (at most 64 parts; the last one keeps the rest). */
static inline void fuzz_split(fuzz_parts *fp, const uint8_t *data, size_t size, char sep)
{
    fp->copy = malloc(size + 1);
    if (fp->copy == NULL)
        abort();
    memcpy(fp->copy, data, size);
    fp->copy[size] = '\0';
    fp->n = 0;
    char *s = fp->copy, *end = fp->copy + size;
    while (fp->n < 64) {
        char *hit = fp->n == 63 ? NULL : memchr(s, sep, (size_t)(end - s));
        fp->p[fp->n] = s;
        fp->len[fp->n] = hit ? (size_t)(hit - s) : (size_t)(end - s);
        fp->n++;
        if (hit == NULL)
            break;
        *hit = '\0';
        s = hit + 1;
    }
}

static inline void fuzz_parts_free(fuzz_parts *fp)
{
    free(fp->copy);
}

/* The i-th part, or "" past the end. */
static inline const char *fuzz_part(const fuzz_parts *fp, size_t i, size_t *len)
{
    if (i >= fp->n) {
        if (len)
            *len = 0;
        return "";
    }
    if (len)
        *len = fp->len[i];
    return fp->p[i];
}

/* Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
FUZZ_NO_COVERAGE static inline int fuzz_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t need;
        unsigned min, cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            need = 1; min = 0x80; cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2; min = 0x800; cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3; min = 0x10000; cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + need >= n) /* the sequence runs past the end */
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

#endif
