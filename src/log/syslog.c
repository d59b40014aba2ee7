/* Syslog sinks: the transport under the "rfc5424" format.
 *
 * A syslog sink buffers lines like every other sink (sink.c) and the writer
 * thread sends them. Callers never touch the socket. Three transports:
 *   unix   datagram socket such as /dev/log, one message per datagram
 *   udp    one message per datagram (RFC 5426)
 *   tcp    a stream of "LENGTH SP MESSAGE" frames (RFC 6587 octet counting)
 * Datagram sinks keep each record's '\n' in the buffer as the separator and
 * send the lines without it, up to 64 per sendmmsg(). TCP sinks store the
 * frames themselves at append time (log_syslog_frame_prefix()), so the
 * buffer is the byte stream and a short write resumes where it stopped.
 *
 * Sends wait at most SEND_TIMEOUT_S for a slow receiver (SO_SNDTIMEO), then
 * the batch is held and retried by the writer like a failed file write, and
 * callers drop records once max_buffered is full instead of waiting. A
 * broken connection is closed and connected again with exponential backoff
 * (1 s doubling to 30 s); after a reconnect, TCP resumes at the start of the
 * frame that was cut, so the receiver never sees half a message.
 *
 * NOTE: TCP syslog has no acknowledgements: frames the kernel accepted just
 * before the connection broke can be lost without an error. RELP would
 * close that gap; talon does not speak it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "log/log_internal.h"

#define NS_PER_S 1000000000LL
#define SEND_TIMEOUT_S 1
#define BACKOFF_MIN_NS NS_PER_S
#define BACKOFF_MAX_NS (30 * NS_PER_S)
#define DEFAULT_PORT "514"
#define DATAGRAMS_PER_CALL 64

typedef enum { TRANSPORT_UNIX, TRANSPORT_UDP, TRANSPORT_TCP } syslog_transport;

struct log_syslog {
    syslog_transport transport;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char peer[300];              /* address as connected, for messages */

    /* Writer thread only (and the opener before the sink is published). */
    int fd;                      /* -1 while not connected */
    int64_t next_connect_ns;     /* CLOCK_MONOTONIC; no attempt before this */
    int64_t backoff_ns;
    unsigned connect_failures;
    int connect_errno;           /* error of the last failed attempt */
    uint64_t oversized;          /* datagrams dropped as too long */
    uint64_t oversized_reported;
    int64_t oversized_report_ns;
    size_t oversized_last_len;   /* length of the last datagram dropped as too long */
};

static const char *transport_name(syslog_transport t)
{
    if (t == TRANSPORT_TCP)
        return "tcp";
    if (t == TRANSPORT_UDP)
        return "udp";
    return "unix";
}

bool talon_sink_path_is_syslog(const char *path)
{
    return path && (strncmp(path, "syslog:", 7) == 0 || strncmp(path, "syslog+", 7) == 0);
}

/* ---- Parsing the URL ---- */

static int parse_unix(log_syslog *sl, const char *path, const char *url, char *err, size_t errlen)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&sl->addr;

    if (path[0] != '/' || strlen(path) >= sizeof(sun->sun_path)) {
        snprintf(err, errlen, "invalid syslog URL '%s': the socket path must be absolute and shorter "
                 "than %zu bytes, such as syslog:///dev/log", url, sizeof(sun->sun_path));
        return -EINVAL;
    }
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    sl->addrlen = sizeof(*sun);
    sl->transport = TRANSPORT_UNIX;
    snprintf(sl->peer, sizeof(sl->peer), "%s", path);
    return 0;
}

/* HOST, HOST:PORT, [V6] or [V6]:PORT; resolved once, here. */
static int parse_inet(log_syslog *sl, const char *hostport, const char *url, char *err, size_t errlen)
{
    char host[256];
    const char *port = DEFAULT_PORT;
    const char *end;

    if (hostport[0] == '[') {
        end = strchr(hostport, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            goto bad;
        if ((size_t)(end - hostport - 1) >= sizeof(host))
            goto bad;
        memcpy(host, hostport + 1, (size_t)(end - hostport - 1));
        host[end - hostport - 1] = '\0';
        if (end[1] == ':')
            port = end + 2;
    } else {
        end = strchr(hostport, ':');
        size_t n = end ? (size_t)(end - hostport) : strlen(hostport);
        if (n >= sizeof(host) || (end && strchr(end + 1, ':')))
            goto bad;
        memcpy(host, hostport, n);
        host[n] = '\0';
        if (end)
            port = end + 1;
    }
    if (!host[0] || strchr(host, '/'))
        goto bad;
    char *pend;
    long p = strtol(port, &pend, 10);
    if (!*port || *pend || p < 1 || p > 65535)
        goto bad;

    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = sl->transport == TRANSPORT_TCP ? SOCK_STREAM : SOCK_DGRAM,
        .ai_flags = AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "syslog URL '%s': cannot resolve host '%s': %s", url, host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -EINVAL;
    }
    /* NOTE: the first address is used, and the name is not resolved again
     * on reconnect. */
    memcpy(&sl->addr, res->ai_addr, res->ai_addrlen);
    sl->addrlen = res->ai_addrlen;
    freeaddrinfo(res);

    char text[INET6_ADDRSTRLEN] = "?";
    if (sl->addr.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sl->addr)->sin6_addr, text, sizeof(text));
    else
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sl->addr)->sin_addr, text, sizeof(text));
    snprintf(sl->peer, sizeof(sl->peer), sl->addr.ss_family == AF_INET6 ? "[%s]:%ld" : "%s:%ld",
             text, p);
    return 0;

bad:
    snprintf(err, errlen, "invalid syslog URL '%s'; expected syslog:///PATH, syslog://HOST[:PORT], "
             "syslog+udp://HOST[:PORT] or syslog+tcp://HOST[:PORT] (IPv6 as [ADDR]; port 1-65535, "
             "default 514)", url);
    return -EINVAL;
}

int log_syslog_parse(const char *url, log_syslog **out, char *err, size_t errlen)
{
    static const struct {
        const char *scheme;
        syslog_transport transport;
    } schemes[] = {
        { "syslog+tcp://", TRANSPORT_TCP },
        { "syslog+udp://", TRANSPORT_UDP },
        { "syslog+unix://", TRANSPORT_UNIX },
        { "syslog://", TRANSPORT_UDP },
    };
    log_syslog *sl = calloc(1, sizeof(*sl));
    int rc = -EINVAL;
    bool matched = false;

    if (!sl) {
        snprintf(err, errlen, "out of memory opening syslog sink %s", url);
        return -ENOMEM;
    }
    sl->fd = -1;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !matched; i++) {
        size_t n = strlen(schemes[i].scheme);

        if (strncmp(url, schemes[i].scheme, n) != 0)
            continue;
        const char *rest = url + n;
        matched = true;
        sl->transport = schemes[i].transport;
        /* syslog:///dev/log: the bare scheme with a path is the local socket. */
        if (sl->transport == TRANSPORT_UNIX || (i == 3 && rest[0] == '/'))
            rc = parse_unix(sl, rest, url, err, errlen);
        else
            rc = parse_inet(sl, rest, url, err, errlen);
    }
    if (!matched)
        snprintf(err, errlen, "invalid syslog URL '%s'; expected syslog:///PATH, syslog://HOST[:PORT], "
                 "syslog+udp://HOST[:PORT] or syslog+tcp://HOST[:PORT]", url);
    if (rc < 0) {
        free(sl);
        return rc;
    }
    *out = sl;
    return 0;
}

void log_syslog_free(log_syslog *sl)
{
    if (!sl)
        return;
    if (sl->fd >= 0)
        close(sl->fd);
    free(sl);
}

/* ---- Connecting ---- */

static void disconnect(log_syslog *sl)
{
    if (sl->fd >= 0)
        close(sl->fd);
    sl->fd = -1;
}

static int connect_once(log_syslog *sl)
{
    int type = sl->transport == TRANSPORT_TCP ? SOCK_STREAM : SOCK_DGRAM;
    int fd = socket(sl->addr.ss_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Bounds both connect() and each send on Linux. */
    struct timeval tv = { .tv_sec = SEND_TIMEOUT_S };
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (struct sockaddr *)&sl->addr, sl->addrlen) < 0) {
        int e = errno == EINPROGRESS ? ETIMEDOUT : errno;
        close(fd);
        return -e;
    }
    sl->fd = fd;
    return 0;
}

/* Connect unless connected or the backoff has not passed. Returns 0 or a
 * negative errno (the last attempt's error while waiting). */
static int ensure_connected(talon_sink *s, log_syslog *sl, bool opening)
{
    if (sl->fd >= 0)
        return 0;
    int64_t now = log_now_monotonic_ns();
    if (!opening && now < sl->next_connect_ns)
        return -(sl->connect_errno ? sl->connect_errno : ENOTCONN);
    int rc = connect_once(sl);
    if (rc < 0) {
        sl->connect_errno = -rc;
        sl->connect_failures++;
        sl->backoff_ns = sl->backoff_ns ? sl->backoff_ns * 2 : BACKOFF_MIN_NS;
        if (sl->backoff_ns > BACKOFF_MAX_NS)
            sl->backoff_ns = BACKOFF_MAX_NS;
        sl->next_connect_ns = now + sl->backoff_ns;
        log_report(opening ? TALON_LOG_WARN : TALON_LOG_ERROR,
                   "log sink %s: cannot connect to the syslog server at %s (%s): %s; "
                   "records stay buffered (up to max_buffered), next attempt in %llds",
                   s->path, sl->peer, transport_name(sl->transport), strerror(-rc),
                   (long long)(sl->backoff_ns / NS_PER_S));
        return rc;
    }
    if (sl->connect_failures)
        log_report(TALON_LOG_WARN, "log sink %s: connected to %s (%s) after %u failed attempts",
                   s->path, sl->peer, transport_name(sl->transport), sl->connect_failures);
    else if (opening)
        log_report(TALON_LOG_INFO, "log sink %s: connected to the syslog server at %s (%s)",
                   s->path, sl->peer, transport_name(sl->transport));
    else
        log_report(TALON_LOG_WARN, "log sink %s: reconnected to %s (%s)", s->path, sl->peer,
                   transport_name(sl->transport));
    sl->connect_failures = 0;
    sl->connect_errno = 0;
    sl->backoff_ns = 0;
    return 0;
}

void log_syslog_connect_at_open(talon_sink *s)
{
    (void)ensure_connected(s, s->syslog, true);
}

/* True when the TCP peer has closed its side or reset the connection, so
 * frames sent now would be lost. Costs one poll() per batch. */
static bool peer_closed(log_syslog *sl)
{
    struct pollfd pfd = { .fd = sl->fd, .events = POLLIN | POLLRDHUP };
    if (poll(&pfd, 1, 0) <= 0)
        return false;
    if (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))
        return true;
    char byte;
    ssize_t n = recv(sl->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* ---- Framing ---- */

size_t log_syslog_frame_prefix(const talon_sink *s, size_t len, char prefix[24], size_t *body)
{
    *body = len;
    if (s->syslog->transport != TRANSPORT_TCP || len == 0)
        return 0;
    /* The message without its '\n': octet counting needs no delimiter. */
    *body = len - 1;
    int n = snprintf(prefix, 24, "%zu ", *body);
    return n > 0 ? (size_t)n : 0;
}

/* Offset of the start of the frame that contains byte off of the batch:
 * chunks hold whole frames, each "LENGTH SP MESSAGE". */
static size_t frame_start(const log_chunk *batch, size_t off)
{
    size_t base = 0;

    for (const log_chunk *c = batch; c; base += c->len, c = c->next) {
        size_t p = 0;
        while (p < c->len) {
            size_t start = p, n = 0;
            while (p < c->len && c->data[p] >= '0' && c->data[p] <= '9')
                n = n * 10 + (size_t)(c->data[p++] - '0');
            size_t end = p + 1 + n;
            if (off < base + end)
                return base + start;
            p = end;
        }
    }
    return off;
}

/* ---- Sending ---- */

static int send_stream(talon_sink *s, log_syslog *sl, log_chunk *batch, size_t *off)
{
    for (;;) {
        struct iovec iov[64];
        int n = log_batch_iov(batch, *off, iov, 64);
        if (n == 0)
            return 0;
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(sl->fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e != EAGAIN && e != EWOULDBLOCK)
                disconnect(sl); /* the stream is broken: resend from a frame start */
            return -e;
        }
        *off += (size_t)w;
    }
}

/* Report datagrams dropped as too long, at most once a second. */
static void report_oversized(talon_sink *s, log_syslog *sl, size_t len)
{
    int64_t now = log_now_monotonic_ns();
    sl->oversized_last_len = len;
    if (now - sl->oversized_report_ns < NS_PER_S || sl->oversized == sl->oversized_reported)
        return;
    sl->oversized_report_ns = now;
    uint64_t fresh = sl->oversized - sl->oversized_reported;
    log_report(TALON_LOG_ERROR, "log sink %s: dropped %llu message%s too long for one datagram "
               "(the last one %zu bytes); use syslog+tcp:// for long records",
               s->path, (unsigned long long)fresh, fresh == 1 ? "" : "s", len);
    sl->oversized_reported = sl->oversized;
}

void log_syslog_report_pending(talon_sink *s)
{
    if (s->syslog != NULL)
        report_oversized(s, s->syslog, s->syslog->oversized_last_len);
}

static int send_datagrams(talon_sink *s, log_syslog *sl, log_chunk *batch, size_t *off)
{
    struct mmsghdr msgs[DATAGRAMS_PER_CALL];
    struct iovec iov[DATAGRAMS_PER_CALL];
    size_t lens[DATAGRAMS_PER_CALL]; /* bytes of each line with its '\n' */

    for (;;) {
        unsigned n = 0;
        size_t skip = *off;
        for (log_chunk *c = batch; c && n < DATAGRAMS_PER_CALL; c = c->next) {
            if (skip >= c->len) {
                skip -= c->len;
                continue;
            }
            size_t p = skip;
            skip = 0;
            while (p < c->len && n < DATAGRAMS_PER_CALL) {
                const char *nl = memchr(c->data + p, '\n', c->len - p);
                size_t line = nl ? (size_t)(nl - (c->data + p)) : c->len - p;
                iov[n].iov_base = c->data + p;
                iov[n].iov_len = line;
                lens[n] = line + (nl ? 1 : 0);
                msgs[n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[n], .msg_iovlen = 1 } };
                p += lens[n];
                n++;
            }
        }
        if (n == 0)
            return 0;
        int sent = sendmmsg(sl->fd, msgs, n, MSG_NOSIGNAL);
        if (sent > 0) {
            for (int i = 0; i < sent; i++)
                *off += lens[i];
            continue;
        }
        int e = errno;
        if (sent == 0 || e == EINTR)
            continue;
        if (e == EMSGSIZE) {
            /* This message can never be sent: drop it, keep the rest. */
            *off += lens[0];
            sl->oversized++;
            log_sink_count_drop(s);
            report_oversized(s, sl, iov[0].iov_len);
            continue;
        }
        /* A restarted local daemon makes a new socket: connect again. A UDP
         * ECONNREFUSED only echoes an earlier datagram's ICMP error. */
        if (sl->transport == TRANSPORT_UNIX && e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS)
            disconnect(sl);
        return -e;
    }
}

int log_syslog_write(talon_sink *s, log_chunk *batch, size_t *off)
{
    log_syslog *sl = s->syslog;

    if (sl->transport == TRANSPORT_TCP && sl->fd >= 0 && peer_closed(sl)) {
        log_report(TALON_LOG_WARN, "log sink %s: the syslog server at %s closed the connection; "
                   "reconnecting", s->path, sl->peer);
        disconnect(sl);
        sl->next_connect_ns = 0;
    }
    if (sl->fd < 0) {
        int rc = ensure_connected(s, sl, false);
        if (rc < 0)
            return rc;
        if (sl->transport == TRANSPORT_TCP)
            *off = frame_start(batch, *off); /* a new stream starts at a frame */
    }
    if (sl->transport == TRANSPORT_TCP)
        return send_stream(s, sl, batch, off);
    return send_datagrams(s, sl, batch, off);
}
