/* Trusted proxies and the client address behind them.
 *
 * X-Forwarded-For is read only when the peer is a trusted proxy. Its
 * entries are walked from the right, skipping trusted hops, as nginx's
 * realip module does with real_ip_recursive on: the first untrusted
 * address is the client. An entry that is not an IP address stops the walk
 * and the last address accepted stays the client. When every hop is
 * trusted, the leftmost one is the client.
 * NOTE: the RFC 7239 Forwarded header is not read. */
#include "http/request.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct proxy_net {
    unsigned char addr[16];  /* IPv4 stored as IPv4-mapped IPv6 */
    unsigned prefix;         /* bits, out of 128 */
} proxy_net;

struct talon_proxies {
    proxy_net *nets;
    size_t n;
};

/* Parse an address into its IPv4-mapped IPv6 form; false if not an IP. */
static bool parse_ip(const char *s, unsigned char out[16], bool *is_v4)
{
    struct in_addr a4;
    if (inet_pton(AF_INET, s, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        *is_v4 = true;
        return true;
    }
    *is_v4 = false;
    return inet_pton(AF_INET6, s, out) == 1;
}

static bool net_contains(const proxy_net *net, const unsigned char ip[16])
{
    unsigned bits = net->prefix;
    size_t full = bits / 8;
    if (memcmp(net->addr, ip, full) != 0)
        return false;
    if (bits % 8 == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));
    return (net->addr[full] & mask) == (ip[full] & mask);
}

static bool is_trusted(const talon_proxies *p, const unsigned char ip[16])
{
    for (size_t i = 0; i < p->n; i++) {
        if (net_contains(&p->nets[i], ip))
            return true;
    }
    return false;
}

static int parse_entry(const char *entry, proxy_net *net, char *err, size_t errlen)
{
    char buf[64];
    if (strlen(entry) >= sizeof(buf))
        goto invalid;
    strcpy(buf, entry);
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash != NULL) {
        *slash = '\0';
        char *end;
        errno = 0;
        prefix = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || errno != 0 || prefix < 0)
            goto invalid;
    }
    bool v4;
    if (!parse_ip(buf, net->addr, &v4))
        goto invalid;
    long max = v4 ? 32 : 128;
    if (prefix > max)
        goto invalid;
    if (prefix < 0)
        prefix = max;
    net->prefix = (unsigned)(v4 ? prefix + 96 : prefix);
    return 0;
invalid:
    snprintf(err, errlen, "invalid trusted proxy \"%s\": expected an IPv4 or IPv6 address "
             "or CIDR such as 10.0.0.0/8 or ::1/128", entry);
    return -EINVAL;
}

int talon_proxies_parse(const char *spec, talon_proxies **out, char *err, size_t errlen)
{
    *out = NULL;
    if (spec == NULL)
        return 0;
    talon_proxies *p = calloc(1, sizeof(*p));
    char *copy = strdup(spec);
    if (p == NULL || copy == NULL) {
        free(p);
        free(copy);
        snprintf(err, errlen, "cannot parse trusted proxies: out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        proxy_net net;
        rc = parse_entry(tok, &net, err, errlen);
        if (rc < 0)
            break;
        proxy_net *grown = realloc(p->nets, (p->n + 1) * sizeof(*grown));
        if (grown == NULL) {
            rc = -ENOMEM;
            snprintf(err, errlen, "cannot parse trusted proxies: out of memory");
            break;
        }
        p->nets = grown;
        p->nets[p->n++] = net;
    }
    free(copy);
    if (rc < 0 || p->n == 0) {
        talon_proxies_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void talon_proxies_free(talon_proxies *p)
{
    if (p == NULL)
        return;
    free(p->nets);
    free(p);
}

/* Trim spaces and tabs around an X-Forwarded-For entry in place. */
static char *trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    return s;
}

void talon_proxies_client_ip(const talon_proxies *p, const talon_req *req,
                             char out[TALON_IP_MAX])
{
    snprintf(out, TALON_IP_MAX, "%s", req->peer_ip);
    unsigned char ip[16];
    bool v4;
    if (p == NULL || !parse_ip(req->peer_ip, ip, &v4) || !is_trusted(p, ip))
        return;

    /* Concatenate every X-Forwarded-For line in order: proxies may append
     * a new header line instead of extending the last one. */
    char xff[2048];
    size_t len = 0;
    for (size_t i = 0; i < req->headers.n; i++) {
        if (strcasecmp(req->headers.items[i].name, "X-Forwarded-For") != 0)
            continue;
        int n = snprintf(xff + len, sizeof(xff) - len, "%s%s", len ? "," : "",
                         req->headers.items[i].value);
        if (n < 0 || (size_t)n >= sizeof(xff) - len)
            return; /* longer than any honest proxy chain: keep the peer */
        len += (size_t)n;
    }
    char *end = xff + len;
    while (len > 0) {
        char *comma = end;
        while (comma > xff && comma[-1] != ',')
            comma--;
        char *entry = trim(comma, end);
        size_t elen = strlen(entry);
        if (elen >= TALON_IP_MAX || !parse_ip(entry, ip, &v4))
            return;
        memcpy(out, entry, elen + 1);
        if (!is_trusted(p, ip))
            return;
        if (comma == xff)
            return;
        end = comma - 1;
    }
}
