/* Escaping of untrusted bytes for log lines.
 *
 * Every byte that could break a line or fool a reader is escaped: bytes below
 * 0x20, 0x7f, '"', '\\', and each byte of an invalid UTF-8 sequence (stray
 * continuation bytes, overlong forms, surrogates, code points past U+10FFFF,
 * truncated sequences). Valid multi-byte UTF-8 passes through unchanged, so a
 * log line stays readable in any language and never contains a raw control
 * byte. The exceptions are the code points that end a line for some readers
 * or change how a line is shown. These are the C1 controls U+0080-U+009F
 * (NEL, CSI), the separators U+2028 and U+2029, and the bidirectional marks
 * and overrides (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069).
 * They are escaped as invalid bytes are, and as \uXXXX in JSON.
 *
 * Each escaper takes dst NULL with cap 0 to compute the length only.
 */
#include <stdint.h>
#include <string.h>

#include "talon/log.h"

/* Byte classes: SAFE bytes are copied, ESCAPE bytes are always escaped, the
 * rest start a multi-byte UTF-8 sequence of that many bytes (or, for 0x80-0xbf,
 * 0xc0, 0xc1 and 0xf5-0xff, can never start one and count as invalid). */
enum { SAFE = 0, ESCAPE = 1, LEAD2 = 2, LEAD3 = 3, LEAD4 = 4 };

static const uint8_t byte_class[256] = {
    /* 0x00-0x1f: control bytes; printable ASCII is SAFE (0) by default */
    [0x00 ... 0x1f] = ESCAPE,
    ['"'] = ESCAPE,
    ['\\'] = ESCAPE,
    [0x7f] = ESCAPE,
    /* continuation bytes alone, and 0xc0/0xc1 which only encode overlong forms */
    [0x80 ... 0xc1] = ESCAPE,
    [0xc2 ... 0xdf] = LEAD2,
    [0xe0 ... 0xef] = LEAD3,
    [0xf0 ... 0xf4] = LEAD4,
    [0xf5 ... 0xff] = ESCAPE,
};

static const char hex_digits[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

/* Return the length of the valid UTF-8 sequence at s (2-4), or 0 when the
 * bytes there are not one. Follows the well-formed byte sequences of
 * Unicode 15, table 3-7: the second-byte ranges after 0xe0, 0xed, 0xf0 and
 * 0xf4 exclude overlong forms, surrogates and code points past U+10FFFF. */
size_t log_utf8_sequence_length(const unsigned char *s, size_t avail)
{
    unsigned char lead = s[0];
    size_t need = byte_class[lead];
    unsigned char lo = 0x80, hi = 0xbf;

    if (need < LEAD2 || avail < need)
        return 0;
    if (lead == 0xe0)
        lo = 0xa0;
    else if (lead == 0xed)
        hi = 0x9f;
    else if (lead == 0xf0)
        lo = 0x90;
    else if (lead == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need;
}

/* Return the code point of the valid UTF-8 sequence s[0..seq) if it splits
 * or reorders a line (see the top of this file), else 0. */
static uint32_t hidden_code_point(const unsigned char *s, size_t seq)
{
    uint32_t cp;
    if (seq == 2) {
        cp = ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
        return (cp >= 0x80 && cp <= 0x9f) || cp == 0x61c ? cp : 0;
    }
    if (seq != 3 || s[0] != 0xe2)
        return 0; /* every other code point of the list starts with 0xe2 */
    cp = ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
    if (cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
        (cp >= 0x2066 && cp <= 0x2069))
        return cp;
    return 0;
}

/* Length of the run of SAFE bytes at s[0..len). Tests eight bytes at a time
 * with word arithmetic (a byte below 0x20, '"', '\\', 0x7f or one with the
 * high bit set stops the fast loop), then finishes byte by byte. */
static inline size_t safe_run(const unsigned char *s, size_t len)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w, quote, backslash, del;

        memcpy(&w, s + i, 8);
        quote = w ^ (ones * '"');
        backslash = w ^ (ones * '\\');
        del = w ^ (ones * 0x7f);
        /* When no byte of w has its high bit set, x - ones sets a high bit
         * exactly when some byte of x is zero. Likewise w - 0x20 per byte
         * does when some byte is below 0x20, so no unsafe byte slips by. */
        if (((w - ones * 0x20) | (quote - ones) | (backslash - ones) | (del - ones) | w) & highs)
            break;
    }
    while (i < len && byte_class[s[i]] == SAFE)
        i++;
    return i;
}

/* Copy n bytes to dst at *pos when they fit in cap; always advance *pos so the
 * caller learns the full length. Nothing is written past cap. */
static inline void emit(char *dst, size_t cap, size_t *pos, const void *src, size_t n)
{
    if (n != 0 && *pos + n <= cap) /* dst is NULL when cap is 0 */
        memcpy(dst + *pos, src, n);
    *pos += n;
}

/* Copy the bytes from s[i] on that need no escape (SAFE runs and valid UTF-8
 * sequences) and return the index of the first byte that does, or len. */
static inline size_t copy_unescaped(char *dst, size_t cap, size_t *pos, const unsigned char *s,
                                    size_t i, size_t len)
{
    while (i < len) {
        size_t run = i + safe_run(s + i, len - i);
        if (run > i) {
            emit(dst, cap, pos, s + i, run - i);
            i = run;
            if (i == len)
                break;
        }

        size_t seq = log_utf8_sequence_length(s + i, len - i);
        if (seq == 0 || hidden_code_point(s + i, seq) != 0)
            break;
        emit(dst, cap, pos, s + i, seq);
        i += seq;
    }
    return i;
}

size_t talon_escape_text(char *dst, size_t cap, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t pos = 0, i = 0;

    while ((i = copy_unescaped(dst, cap, &pos, s, i, len)) < len) {
        char esc[4] = { '\\', 'x', hex_digits[s[i] >> 4], hex_digits[s[i] & 0xf] };

        emit(dst, cap, &pos, esc, sizeof(esc));
        i++;
    }
    return pos;
}

size_t talon_escape_json(char *dst, size_t cap, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t pos = 0, i = 0;

    while ((i = copy_unescaped(dst, cap, &pos, s, i, len)) < len) {
        size_t seq = log_utf8_sequence_length(s + i, len - i);
        uint32_t cp = seq != 0 ? hidden_code_point(s + i, seq) : 0;
        char esc[6];

        if (cp != 0) {
            /* A JSON reader gets the character back; the file keeps one line. */
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = hex_lower[cp >> 12];
            esc[3] = hex_lower[(cp >> 8) & 0xf];
            esc[4] = hex_lower[(cp >> 4) & 0xf];
            esc[5] = hex_lower[cp & 0xf];
            emit(dst, cap, &pos, esc, sizeof(esc));
            i += seq;
            continue;
        }
        unsigned char c = s[i++];

        switch (c) {
        case '"':  emit(dst, cap, &pos, "\\\"", 2); break;
        case '\\': emit(dst, cap, &pos, "\\\\", 2); break;
        case '\n': emit(dst, cap, &pos, "\\n", 2); break;
        case '\r': emit(dst, cap, &pos, "\\r", 2); break;
        case '\t': emit(dst, cap, &pos, "\\t", 2); break;
        default:
            /* Control bytes, DEL, and each byte of invalid UTF-8 as the code
             * point of the same value, so the line stays valid JSON. */
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex_lower[c >> 4];
            esc[5] = hex_lower[c & 0xf];
            emit(dst, cap, &pos, esc, sizeof(esc));
            break;
        }
    }
    return pos;
}

size_t talon_escape_sd_value(char *dst, size_t cap, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t pos = 0, i = 0;

    while (i < len) {
        size_t run = i + safe_run(s + i, len - i);

        /* safe_run() lets ']' through: it ends a PARAM-VALUE's SD-ELEMENT. */
        while (i < run) {
            const unsigned char *bracket = memchr(s + i, ']', run - i);
            size_t end = bracket ? (size_t)(bracket - s) : run;

            emit(dst, cap, &pos, s + i, end - i);
            i = end;
            if (bracket) {
                emit(dst, cap, &pos, "\\]", 2);
                i++;
            }
        }
        if (i == len)
            break;

        size_t seq = log_utf8_sequence_length(s + i, len - i);
        if (seq && hidden_code_point(s + i, seq) == 0) {
            emit(dst, cap, &pos, s + i, seq);
            i += seq;
            continue;
        }

        unsigned char c = s[i++];
        if (c == '"') {
            emit(dst, cap, &pos, "\\\"", 2);
        } else if (c == '\\') {
            emit(dst, cap, &pos, "\\\\", 2);
        } else {
            char esc[5] = { '\\', '\\', 'x', hex_digits[c >> 4], hex_digits[c & 0xf] };

            emit(dst, cap, &pos, esc, sizeof(esc));
        }
    }
    return pos;
}
