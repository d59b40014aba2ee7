/* printf-style messages of the record path.
 *
 * Most log messages use only %s, %d, %u and their l, ll and z forms
 * ("Request: %s %s", "Response: %d %s"). log_message_vformat() writes those
 * itself and hands every other format (flags, widths, precisions, %x, %f,
 * %p, ...) to vsnprintf(). tests/unit/test_log_message.c checks that both
 * kinds give vsnprintf()'s output and return value. For those two messages
 * it took 22-24 ns of CPU time per message against 51 ns for glibc 2.36's
 * vsnprintf() (4 million calls, gcc 12 -O2, on the 2-vCPU VM of
 * docs/benchmarks.md).
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "log/format_out.h"
#include "log/log_internal.h"

typedef struct msg_out {
    char *buf;
    size_t cap;
    size_t len; /* bytes of the whole message, written or not */
} msg_out;

/* Append n bytes, writing what fits before the terminating NUL's byte. */
static void msg_put(msg_out *o, const char *s, size_t n)
{
    if (o->len + 1 < o->cap) {
        size_t room = o->cap - 1 - o->len;

        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static inline void msg_char(msg_out *o, char c)
{
    if (o->len + 1 < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void msg_unsigned(msg_out *o, unsigned long long v, bool negative)
{
    char tmp[LOG_U64_DIGITS];
    size_t i = u64_digits(tmp, v);

    if (negative)
        msg_put(o, "-", 1);
    msg_put(o, tmp + i, LOG_U64_DIGITS - i);
}

static void msg_signed(msg_out *o, long long v)
{
    if (v < 0)
        msg_unsigned(o, 0ULL - (unsigned long long)v, true);
    else
        msg_unsigned(o, (unsigned long long)v, false);
}

_Static_assert(sizeof(unsigned long long) == sizeof(uint64_t), "u64_digits takes uint64_t");

/* Length modifiers of the subset: none, l, ll, z. */
typedef enum { MOD_NONE, MOD_L, MOD_LL, MOD_Z } length_mod;

/* Write fmt into o for the subset. Returns false at the first conversion
 * outside it; the arguments read so far are then lost, so ap must be a
 * copy. */
static bool msg_format_subset(msg_out *o, const char *fmt, va_list ap)
{
    const char *p = fmt;

    for (;;) {
        length_mod mod = MOD_NONE;

        /* Copy literal text byte by byte, because it is short and a
         * strchrnul() and memcpy() call per piece measured slower. */
        while (*p != '%') {
            if (*p == '\0')
                return true;
            msg_char(o, *p++);
        }
        p++;
        if (*p == 'l') {
            p++;
            mod = MOD_L;
            if (*p == 'l') {
                p++;
                mod = MOD_LL;
            }
        } else if (*p == 'z') {
            p++;
            mod = MOD_Z;
        }
        switch (*p++) {
        case 's': {
            if (mod != MOD_NONE)
                return false;
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)"; /* glibc's output for a null %s */
            msg_put(o, s, strlen(s));
            break;
        }
        case 'd':
        case 'i':
            if (mod == MOD_NONE)
                msg_signed(o, va_arg(ap, int));
            else if (mod == MOD_L)
                msg_signed(o, va_arg(ap, long));
            else if (mod == MOD_LL)
                msg_signed(o, va_arg(ap, long long));
            else
                msg_signed(o, va_arg(ap, ssize_t));
            break;
        case 'u':
            if (mod == MOD_NONE)
                msg_unsigned(o, va_arg(ap, unsigned), false);
            else if (mod == MOD_L)
                msg_unsigned(o, va_arg(ap, unsigned long), false);
            else if (mod == MOD_LL)
                msg_unsigned(o, va_arg(ap, unsigned long long), false);
            else
                msg_unsigned(o, va_arg(ap, size_t), false);
            break;
        case '%':
            if (mod != MOD_NONE)
                return false;
            msg_put(o, "%", 1);
            break;
        default:
            return false;
        }
    }
}

int log_message_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    msg_out o = { .buf = buf, .cap = cap, .len = 0 };
    va_list copy;

    va_copy(copy, ap);
    bool done = msg_format_subset(&o, fmt, copy);
    va_end(copy);
    if (!done || o.len > INT_MAX) {
        va_copy(copy, ap);
        int n = vsnprintf(buf, cap, fmt, copy);
        va_end(copy);
        return n;
    }
    if (cap > 0)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return (int)o.len;
}
