/* Secrets in URLs: the access log writes the request target and the
 * Referer with the values of secret query parameters and the userinfo of an
 * absolute URL replaced, as the audit trail does with secret keys in its
 * records.
 *
 * A URL is walked once to measure and once to write, so the caller sizes
 * its buffer exactly; a value that is redacted can grow the URL (a short
 * value becomes "[REDACTED]"). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "talon/log.h"

#define REDACTED "[REDACTED]"
#define NAME_MAX_DECODED 256

const char *const talon_secret_words[] = {
    "password", "passwd", "pass", "pwd", "secret", "token", "authorization", "cookie",
    "api_key", "apikey", "private_key", "session", NULL,
};

bool talon_secret_name(const char *name, size_t len, const char *const *words)
{
    for (const char *const *w = words; w && *w; w++) {
        size_t wlen = strlen(*w);
        for (size_t i = 0; wlen > 0 && i + wlen <= len; i++) {
            if (strncasecmp(name + i, *w, wlen) == 0)
                return true;
        }
    }
    return false;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode a parameter name ('+' is a space) into buf; a name longer
 * than the buffer is cut, which can only hide words past the cut. */
static size_t decode_name(const char *p, size_t len, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < cap; i++) {
        int hi, lo;
        if (p[i] == '%' && i + 2 < len && (hi = hex_value(p[i + 1])) >= 0 &&
            (lo = hex_value(p[i + 2])) >= 0) {
            buf[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            buf[n++] = p[i] == '+' ? ' ' : p[i];
        }
    }
    return n;
}

/* Append n bytes to out (when not NULL) at *len. */
static void put(char *out, size_t *len, const char *p, size_t n)
{
    if (out)
        memcpy(out + *len, p, n);
    *len += n;
}

/* Redact the name=value pairs of p (up to end) separated by sep. A pair
 * whose percent-decoded name is secret has its whole value replaced. */
static void redact_pairs(const char *p, const char *end, char sep, const char *const *words,
                         char *out, size_t *len, bool *found)
{
    while (p < end) {
        const char *next = memchr(p, sep, (size_t)(end - p));
        if (next == NULL)
            next = end;
        const char *eq = memchr(p, '=', (size_t)(next - p));
        char name[NAME_MAX_DECODED];
        size_t nlen = eq ? decode_name(p, (size_t)(eq - p), name, sizeof(name)) : 0;
        if (eq && talon_secret_name(name, nlen, words)) {
            put(out, len, p, (size_t)(eq + 1 - p));
            put(out, len, REDACTED, sizeof(REDACTED) - 1);
            *found = true;
        } else if (eq && sep == '&') {
            /* Pairs split on '&' as talon's query parser does, so a name or
             * value keeps any ';'. Other servers also split on ';' (a Referer
             * may come from one), so look for secret pairs in the value too. */
            put(out, len, p, (size_t)(eq + 1 - p));
            redact_pairs(eq + 1, next, ';', words, out, len, found);
        } else {
            put(out, len, p, (size_t)(next - p));
        }
        if (next < end)
            put(out, len, next, 1);
        p = next + 1;
    }
}

/* Find the userinfo of an absolute URL ("scheme://USERINFO@host/"), which
 * ends at the last '@' of the authority. Sets *start and *end around it and
 * returns true, or returns false for an origin-form target ("/path") and a
 * URL with no or empty userinfo. */
static bool find_userinfo(const char *url, size_t len, size_t *start, size_t *end)
{
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), RFC 3986 3.1 */
    size_t i = 0;
    if (len == 0 || !isalpha((unsigned char)url[0]))
        return false;
    while (i < len && (isalnum((unsigned char)url[i]) || url[i] == '+' || url[i] == '-' ||
                       url[i] == '.'))
        i++;
    if (len - i < 3 || memcmp(url + i, "://", 3) != 0)
        return false;
    i += 3;

    size_t at = 0;
    bool has_at = false;
    for (size_t j = i; j < len && url[j] != '/' && url[j] != '?' && url[j] != '#'; j++) {
        if (url[j] == '@') {
            at = j;
            has_at = true;
        }
    }
    if (!has_at || at == i)
        return false;
    *start = i;
    *end = at;
    return true;
}

size_t talon_redact_url(const char *url, size_t len, const char *const *words, char *out,
                        bool *found)
{
    size_t n = 0;
    bool any = false;

    /* RFC 7230 section 2.7.1 forbids a sender to put userinfo in an http
     * target or header value, so a client that sends one anyway is likely
     * sending a password or a token ("https://TOKEN@host/"). The whole
     * userinfo is replaced, user name included. */
    size_t user_start, user_end;
    if (find_userinfo(url, len, &user_start, &user_end)) {
        put(out, &n, url, user_start);
        put(out, &n, REDACTED, sizeof(REDACTED) - 1);
        any = true;
        url += user_end;
        len -= user_end;
    }

    const char *end = url + len;
    const char *q = memchr(url, '?', len);
    /* The query starts at the first '?' even after a '#', as the request
     * parser splits it: talon rejects such a target with 400, but its
     * access-log line must still hide the values the parser would see. */
    const char *hash = q ? memchr(q, '#', (size_t)(end - q)) : memchr(url, '#', len);

    const char *first = q ? q : hash;
    if (!first) {
        put(out, &n, url, len);
    } else {
        put(out, &n, url, (size_t)(first - url) + 1);
        if (q) {
            const char *qend = hash ? hash : end;
            redact_pairs(q + 1, qend, '&', words, out, &n, &any);
            if (hash)
                put(out, &n, hash, 1);
        }
        if (hash)
            redact_pairs(hash + 1, end, '&', words, out, &n, &any);
    }
    if (found)
        *found = any;
    return n;
}
