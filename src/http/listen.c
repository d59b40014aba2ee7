/* Listening sockets for talon_app_serve. */
#include "http/request.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Split "host:port", "[v6]:port" or ":port" into host (maybe "") and port. */
static int split_listen(const char *spec, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    const char *h = spec;
    size_t hlen;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (close == NULL || close[1] != ':')
            return -EINVAL;
        h = spec + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL || memchr(spec, ':', (size_t)(colon - spec)) != NULL)
            return -EINVAL;
        hlen = (size_t)(colon - spec);
    }
    if (hlen >= hostlen || strlen(colon + 1) >= portlen || colon[1] == '\0')
        return -EINVAL;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
    }
    if (atoi(colon + 1) > 65535)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

/* Resolve spec into *res (freed by the caller with freeaddrinfo). */
static int resolve_listen(const char *spec, struct addrinfo **res, char *err, size_t errlen)
{
    char host[256], port[8];
    if (spec == NULL || split_listen(spec, host, sizeof(host), port, sizeof(port)) < 0) {
        snprintf(err, errlen, "invalid listen address \"%s\": expected HOST:PORT such as "
                 "127.0.0.1:8080, [::1]:8080 or :8080", spec ? spec : "(null)");
        return -EINVAL;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
    int gai = getaddrinfo(host[0] ? host : "0.0.0.0", port, &hints, res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot listen on %s: cannot resolve \"%s\": %s", spec, host,
                 gai_strerror(gai));
        return -EINVAL;
    }
    return 0;
}

int talon_listen_check(const char *spec, char *err, size_t errlen)
{
    struct addrinfo *res = NULL;
    int rc = resolve_listen(spec, &res, err, errlen);
    if (rc == 0)
        freeaddrinfo(res);
    return rc;
}

int talon_listen_open(const char *spec, char *err, size_t errlen)
{
    struct addrinfo *res = NULL;
    int rc = resolve_listen(spec, &res, err, errlen);
    if (rc < 0)
        return rc;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        freeaddrinfo(res);
        snprintf(err, errlen, "cannot listen on %s: socket failed: %s", spec, strerror(e));
        return -e;
    }
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
        int e = errno;
        freeaddrinfo(res);
        close(fd);
        snprintf(err, errlen, "cannot listen on %s: %s; stop the other server or choose "
                 "another address", spec, strerror(e));
        return -e;
    }
    freeaddrinfo(res);
    return fd;
}
