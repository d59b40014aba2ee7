/* printf-style messages: log_message_vformat() must give exactly what
 * vsnprintf() gives, return value and truncated bytes included, for the
 * conversions it writes itself and for those it passes on. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>

#include "log/log_internal.h"

/* Format with both functions into buffers of cap bytes (plus a guard) and
 * compare the return values, the bytes, and that nothing past cap changed. */
static void check_same(const char *label, size_t cap, const char *fmt, ...)
{
    char want[512], got[512];
    va_list ap;

    assert_true(cap + 8 <= sizeof(want));
    memset(want, 0x5a, sizeof(want));
    memset(got, 0x5a, sizeof(got));
    va_start(ap, fmt);
    int want_n = vsnprintf(cap ? want : NULL, cap, fmt, ap);
    va_end(ap);
    va_start(ap, fmt);
    int got_n = log_message_vformat(cap ? got : NULL, cap, fmt, ap);
    va_end(ap);

    if (got_n != want_n)
        fail_msg("%s: cap %zu, format \"%s\": returned %d, vsnprintf returned %d", label, cap,
                 fmt, got_n, want_n);
    if (memcmp(got, want, sizeof(want)) != 0)
        fail_msg("%s: cap %zu, format \"%s\": wrote \"%.*s\", vsnprintf wrote \"%.*s\"", label,
                 cap, fmt, (int)(cap ? cap : 1), got, (int)(cap ? cap : 1), want);
}

/* Every cap from 0 to past the length, so each truncation point is seen. */
#define CHECK_ALL_CAPS(label, fmt, ...)                                       \
    do {                                                                      \
        for (size_t cap_ = 0; cap_ < 96; cap_++)                              \
            check_same(label, cap_, fmt, __VA_ARGS__);                        \
    } while (0)

static void message_subset_matches_vsnprintf(void **state)
{
    CHECK_ALL_CAPS("two strings", "Request: %s %s", "GET", "/hello?x=1");
    CHECK_ALL_CAPS("int and string", "Response: %d %s", 200, "OK");
    CHECK_ALL_CAPS("null string", "user %s logged in", (const char *)NULL);
    CHECK_ALL_CAPS("percent", "100%% of %u%%", 7u);
    CHECK_ALL_CAPS("int extremes", "%d %d %i %u", INT_MIN, INT_MAX, -1, UINT_MAX);
    CHECK_ALL_CAPS("long", "%ld %li %lu", LONG_MIN, LONG_MAX, ULONG_MAX);
    CHECK_ALL_CAPS("long long", "%lld %lli %llu", LLONG_MIN, LLONG_MAX, ULLONG_MAX);
    CHECK_ALL_CAPS("size", "%zu %zd %zd", SIZE_MAX, (ssize_t)-5, (ssize_t)SSIZE_MAX);
    CHECK_ALL_CAPS("zero", "%d|%u|%zu", 0, 0u, (size_t)0);
    CHECK_ALL_CAPS("no conversion", "%s", "");
    CHECK_ALL_CAPS("literal only", "plain text, no conversion%s", "");
    CHECK_ALL_CAPS("utf8 and controls", "%s|%s", "caf\xc3\xa9", "a\nb\tc");
}

/* Conversions outside the subset go to vsnprintf, even after a
 * conversion of the subset consumed an argument. */
static void message_other_conversions_match(void **state)
{
    CHECK_ALL_CAPS("width", "%5d|%-4s|", 42, "ab");
    CHECK_ALL_CAPS("precision", "%.3s %.*s", "abcdef", 2, "xyz");
    CHECK_ALL_CAPS("hex after string", "%s %x %X %o", "id", 255u, 255u, 8u);
    CHECK_ALL_CAPS("double", "%s took %.3f s (%g)", "job", 1.23456, 1e-7);
    CHECK_ALL_CAPS("flags", "%+d % d %05d %#x", 5, 5, 5, 255u);
    CHECK_ALL_CAPS("char", "[%c]", 'q');
    CHECK_ALL_CAPS("short", "%hd %hhu", (int)-3, 300);
    CHECK_ALL_CAPS("intmax", "%jd %td", (intmax_t)-9, (ptrdiff_t)4);
    CHECK_ALL_CAPS("pointer", "%p", (void *)0x1234);
    CHECK_ALL_CAPS("trailing percent", "50%", 0);
}

/* A message longer than the buffer returns its full length, as the record
 * path needs to grow its buffer and format again. */
static void message_long_returns_length(void **state)
{
    char big[4000];

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    check_same("long string", 100, "<%s>", big);
    check_same("long string", 0, "<%s>", big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(message_subset_matches_vsnprintf),
        cmocka_unit_test(message_other_conversions_match),
        cmocka_unit_test(message_long_returns_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
