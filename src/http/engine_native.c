/* talon's own HTTP/1.1 engine: an acceptor, a pool of worker threads with
 * one epoll instance each, and the request framing of h1.c.
 *
 * Why not libmicrohttpd (engine_mhd.c, still selectable): the profiles in
 * docs/benchmarks.md show it zeroing each connection's whole memory pool
 * after every request (MHD_pool_reset). That pool stays resident on idle
 * connections, 19 KiB each. Every response held until an audit record is
 * durable cost it an extra recv(), two epoll_ctl() and an eventfd write.
 * Here:
 * - an idle keep-alive connection owns no buffer. A worker reads into its
 *   own buffer and copies only a partial head, or pipelined bytes that
 *   wait behind a held request;
 * - connections are registered once, edge-triggered for reading and
 *   writing. A read shorter than the buffer means that the socket is
 *   drained, because EPOLLRDHUP reports a pending end of stream (nginx
 *   relies on the same rule);
 * - a held response is resumed by queueing its connection on its worker.
 *   The worker is woken only when that queue was empty, so one fdatasync
 *   that releases many requests costs one wake-up per worker.
 *
 * Threads: the serving thread accepts (serve.c) and hands each connection
 * to a worker. Everything else about a connection happens on its worker;
 * other threads reach it only through the worker's lock-protected queues
 * (incoming, resumed). */
#include "http/engine.h"
#include "http/framing.h"
#include "http/h1.h"
#include "http/pipeline.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum conn_state {
    CONN_HEAD = 0, /* waiting for or reading a request head */
    CONN_BODY,     /* reading the body of c->req */
    CONN_HELD,     /* pipeline done; waiting for the last hold to be released */
    CONN_WRITE,    /* response partly sent; waiting until the socket is writable */
    CONN_LINGER,   /* response sent and write side shut; dropping what the client still sends */
    CONN_DEAD      /* closed; freed by the worker once the current batch of events is handled */
};

typedef struct native_worker native_worker;

typedef struct native_conn {
    struct native_conn *prev, *next; /* the worker's list of connections */
    struct native_conn *queue_next;  /* the worker's incoming or resumed queue */
    struct native_conn *held_prev, *held_next; /* the worker's list of held connections */
    native_worker *w;
    int fd;
    enum conn_state state;
    bool readable;        /* the socket may have bytes to read (edge-triggered) */
    bool writable;
    bool eof;             /* the client shut its side: no request after the ones read */
    bool peer_shut;       /* EPOLLRDHUP or EPOLLHUP came: read until recv() returns 0 */
    bool over_limit;      /* accepted over connection_limit: every request gets 503 */
    bool keep_alive;      /* the current request allows another one after it */
    bool closing;         /* close once the current response is sent */
    bool chunked;
    talon_req *req;
    uint64_t body_left;   /* Content-Length bytes still to read */
    h1_chunked ck;
    int64_t active_ns;    /* last progress, for the timeouts (the worker's clock) */
    int64_t head_ns;      /* first byte of the current head; 0 while none arrived */
    size_t head_seen;     /* bytes of the partial head at in[0] already parsed as incomplete */
    char *in;             /* unconsumed bytes: a partial head, or requests behind a held one */
    size_t in_len;
    char *out;            /* the unsent rest of a response */
    size_t out_len, out_off;
    char peer_ip[TALON_IP_MAX];
} native_conn;

typedef struct native_engine native_engine;

struct native_worker {
    native_engine *e;
    pthread_t thread;
    int epfd;
    int wakefd;              /* eventfd: incoming, resumed, drain or stop */
    pthread_mutex_t lock;    /* guards incoming, resumed and woken */
    native_conn *incoming;
    native_conn *resumed;
    bool woken;              /* wakefd written and not yet read */
    native_conn *conns;      /* every connection of this worker */
    native_conn *held;       /* connections whose request is held */
    size_t nheld;
    bool drain_seen;         /* idle connections were closed for the drain */
    int64_t now_ns;          /* read once per wake-up */
    char *rbuf;              /* every read lands here first */
    size_t rbuf_size;
    char *head;              /* response heads are formatted here */
    size_t head_cap;
    time_t date_sec;         /* the second that date[] shows */
    char date[64];
    h1_head h;
};

struct native_engine {
    talon_app *app;
    const talon_server_options *opts;
    int listen_fd;
    native_worker *workers;
    unsigned nworkers;
    unsigned next_worker;
    size_t max_header_size;
    uint64_t discard_limit;   /* body bytes past max_body_size read and dropped before the 413 */
    unsigned connection_limit;
    unsigned hard_limit;      /* above it new connections are closed at once */
    int64_t timeout_ns;       /* connection_timeout_s; 0: none */
    atomic_long open;         /* connections accepted and not yet closed */
    atomic_long admitted;     /* of those, accepted within connection_limit */
    atomic_long in_flight;    /* requests created and not yet completed */
    atomic_long held;         /* requests held, over all workers */
    atomic_long drain_cut;    /* requests ended without a whole response during the drain */
    atomic_bool draining;     /* close idle connections; every response closes */
    atomic_bool abort_held;   /* send 503 to the held requests now */
    atomic_bool stop;         /* workers close everything and return */
    talon_log_limit *warn_limit;   /* engine warnings, 20 a second */
    talon_log_limit *accept_limit; /* accept warnings, one a second */
};

#define WARN_PER_SECOND 20
#define READ_BUFFER_MIN (64 * 1024)
#define LINGER_NS (2 * 1000000000LL) /* how long a closing connection's input is dropped */
#define LINGER_MAX_BYTES (1024 * 1024)
#define EVENTS_PER_WAIT 128

static void conn_input(native_conn *c);
static void send_response(native_conn *c);

/* ---- Warnings ---- */

/* Log a warning to the "app" logger, at most WARN_PER_SECOND a second, so
 * that a flood of bad clients cannot flood the log. */
#define engine_warn(e, ...) talon_log_limited((e)->warn_limit, __VA_ARGS__)

/* ---- Waking a worker ---- */

/* Only call with w->lock held. Returns true when the caller must write
 * the eventfd (after unlocking). */
static bool worker_mark_woken(native_worker *w)
{
    if (w->woken)
        return false;
    w->woken = true;
    return true;
}

static void worker_kick(native_worker *w);

/* Push c on one of w's queues (incoming or resumed) and wake w unless a
 * wake-up is already pending. From any thread. */
static void worker_queue(native_worker *w, native_conn **queue, native_conn *c)
{
    pthread_mutex_lock(&w->lock);
    c->queue_next = *queue;
    *queue = c;
    bool kick = worker_mark_woken(w);
    pthread_mutex_unlock(&w->lock);
    if (kick)
        worker_kick(w);
}

static void worker_kick(native_worker *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->wakefd, &one, sizeof(one));
    (void)n; /* EAGAIN: the counter is already non-zero, so the worker wakes anyway */
}

/* ---- Requests ---- */

static bool has_body(const talon_req *req)
{
    int s = req->resp.status;
    return strcmp(req->method, "HEAD") != 0 && s >= 200 && s != 204 && s != 304;
}

/* Run the completion callbacks (the access log) and drop the engine's
 * reference. ok is false when the client did not get the whole response. */
static void finish_request(native_engine *e, talon_req *req, bool ok)
{
    talon_completion done = {
        .bytes_sent = ok && has_body(req) ? req->resp.body_len : 0,
        .duration_ns = talon_now_ns() - req->start_ns,
        .client_aborted = !ok,
    };
    talon_app_run_completions(e->app, req, &done);
    talon_req_unref(req);
    if (!ok && atomic_load_explicit(&e->draining, memory_order_relaxed))
        atomic_fetch_add(&e->drain_cut, 1);
    atomic_fetch_sub(&e->in_flight, 1);
}

static talon_req *new_request(native_conn *c)
{
    native_engine *e = c->w->e;
    talon_req *req = talon_req_create(e->app);
    if (req == NULL) {
        engine_warn(e, "cannot create a request for a connection from %s: out of memory; "
                    "the connection is closed", c->peer_ip);
        return NULL;
    }
    /* The head may have arrived over several reads: the request began with
     * its first byte. */
    if (c->head_ns != 0 && c->head_ns < req->start_ns)
        req->start_ns = c->head_ns;
    talon_req_set_peer_ip(req, c->peer_ip);
    atomic_fetch_add(&e->in_flight, 1);
    c->req = req;
    return req;
}

/* ---- Connections ---- */

static void held_add(native_worker *w, native_conn *c)
{
    c->held_prev = NULL;
    c->held_next = w->held;
    if (w->held != NULL)
        w->held->held_prev = c;
    w->held = c;
    w->nheld++;
    atomic_fetch_add(&w->e->held, 1);
}

static void held_remove(native_worker *w, native_conn *c)
{
    if (c->held_prev != NULL)
        c->held_prev->held_next = c->held_next;
    else
        w->held = c->held_next;
    if (c->held_next != NULL)
        c->held_next->held_prev = c->held_prev;
    c->held_prev = c->held_next = NULL;
    w->nheld--;
    atomic_fetch_sub(&w->e->held, 1);
}

/* Close c. A request still in progress on it did not get its whole
 * response, so it is logged as aborted by the client. c stays allocated
 * until the worker frees it (conn_free) after the current batch of events,
 * which may still name it. Never call this for a held connection, because
 * a holder may still resume its request. */
static void conn_close(native_conn *c)
{
    native_worker *w = c->w;
    native_engine *e = w->e;
    if (c->state == CONN_DEAD)
        return;
    if (c->req != NULL) {
        talon_req *req = c->req;
        c->req = NULL;
        finish_request(e, req, false);
    }
    c->state = CONN_DEAD;
    close(c->fd);
    c->fd = -1;
    if (!c->over_limit)
        atomic_fetch_sub(&e->admitted, 1);
    atomic_fetch_sub(&e->open, 1);
}

/* Free c after conn_close(). Only from the worker's loop. */
static void conn_free(native_conn *c)
{
    native_worker *w = c->w;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c->in);
    free(c->out);
    free(c);
}

/* End a connection whose last response is sent: shut the write side so
 * the client sees the end, and drop its input for a while instead of
 * closing at once. A close with unread input makes the kernel send a
 * reset, which can destroy the response before the client reads it. */
static void conn_linger(native_conn *c)
{
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    if (c->eof) {
        conn_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGER;
    c->active_ns = c->w->now_ns;
    c->body_left = 0; /* bytes dropped so far */
}

static void linger_read(native_conn *c)
{
    native_worker *w = c->w;
    while (c->readable) {
        ssize_t n = recv(c->fd, w->rbuf, w->rbuf_size, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(c);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN)
                c->readable = false;
            continue;
        }
        c->body_left += (uint64_t)n;
        if (c->body_left > LINGER_MAX_BYTES) {
            conn_close(c);
            return;
        }
        if ((size_t)n < w->rbuf_size)
            c->readable = false;
    }
}

/* Keep buf[0..len) for later: a partial head, or bytes behind a request
 * that waits. Returns false when out of memory (the connection is closed). */
static bool conn_keep_input(native_conn *c, const char *buf, size_t len)
{
    char *in = malloc(len);
    if (in == NULL) {
        engine_warn(c->w->e, "cannot keep %zu bytes of input of a connection from %s: out of "
                    "memory; the connection is closed", len, c->peer_ip);
        conn_close(c);
        return false;
    }
    memcpy(in, buf, len);
    c->in = in;
    c->in_len = len;
    return true;
}

/* ---- Responses ---- */

typedef struct head_buf {
    native_worker *w;
    size_t len;
    bool ok;
} head_buf;

static void head_put(head_buf *b, const char *s, size_t n)
{
    native_worker *w = b->w;
    if (!b->ok)
        return;
    if (b->len + n > w->head_cap) {
        size_t cap = w->head_cap * 2;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(w->head, cap);
        if (p == NULL) {
            b->ok = false;
            return;
        }
        w->head = p;
        w->head_cap = cap;
    }
    memcpy(w->head + b->len, s, n);
    b->len += n;
}

static void head_field(head_buf *b, const char *name, const char *value)
{
    head_put(b, name, strlen(name));
    head_put(b, ": ", 2);
    head_put(b, value, strlen(value));
    head_put(b, "\r\n", 2);
}

static void head_number(head_buf *b, uint64_t v)
{
    char digits[24];
    size_t i = sizeof(digits);
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    head_put(b, digits + i, sizeof(digits) - i);
}

/* The Date field of this second, formatted once a second per worker from
 * the wall clock that worker_main() reads once per pass. */
static void head_date(head_buf *b)
{
    native_worker *w = b->w;
    time_t now = (time_t)(talon_log_thread_time() / 1000000000);
    if (now != w->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof(w->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        w->date_sec = now;
    }
    head_put(b, w->date, strlen(w->date));
}

/* Format the response head of c->req into the worker's head buffer.
 * Returns its length, 0 when out of memory. */
static size_t format_head(native_conn *c)
{
    talon_req *req = c->req;
    talon_resp *resp = &req->resp;
    head_buf b = { .w = c->w, .ok = true };
    int s = resp->status;
    char line[13] = "HTTP/1.1 000 ";
    line[9] = (char)('0' + s / 100 % 10);
    line[10] = (char)('0' + s / 10 % 10);
    line[11] = (char)('0' + s % 10);
    head_put(&b, line, sizeof(line));
    const char *reason = talon_status_reason(resp->status);
    head_put(&b, reason, strlen(reason));
    head_put(&b, "\r\n", 2);

    bool have_date = false, have_id = false;
    for (size_t i = 0; i < resp->headers.n; i++) {
        const talon_kv *h = &resp->headers.items[i];
        if (strcasecmp(h->name, "Content-Length") == 0 ||
            strcasecmp(h->name, "Transfer-Encoding") == 0) {
            /* The engine frames the body itself. */
            engine_warn(c->w->e, "request %s: the response header %s set by the application "
                        "was not sent; the engine sets the body's length", req->id, h->name);
            continue;
        }
        if (strcasecmp(h->name, "Connection") == 0) {
            if (talon_http_list_has(h->value, "close"))
                c->closing = true;
            continue;
        }
        if (!have_date && strcasecmp(h->name, "Date") == 0)
            have_date = true;
        if (!have_id && strcasecmp(h->name, "X-Request-ID") == 0)
            have_id = true;
        head_field(&b, h->name, h->value);
    }
    if (!have_date)
        head_date(&b);
    if (!have_id)
        head_field(&b, "X-Request-ID", req->id);
    if (s >= 200 && s != 204 && s != 304) {
        head_put(&b, "Content-Length: ", 16);
        head_number(&b, resp->body_len);
        head_put(&b, "\r\n", 2);
    }
    if (c->closing)
        head_put(&b, "Connection: close\r\n", 19);
    else if (strcmp(req->protocol, "HTTP/1.0") == 0)
        head_put(&b, "Connection: keep-alive\r\n", 24);
    head_put(&b, "\r\n", 2);
    return b.ok ? b.len : 0;
}

/* The response of c->req is out: log it, then serve the next request or
 * close. */
static void response_done(native_conn *c, bool ok)
{
    native_engine *e = c->w->e;
    talon_req *req = c->req;
    c->req = NULL;
    finish_request(e, req, ok);
    c->head_ns = 0;
    c->active_ns = c->w->now_ns;
    if (!ok) {
        conn_close(c);
        return;
    }
    if (c->closing) {
        conn_linger(c);
        return;
    }
    c->state = CONN_HEAD;
}

/* Send what is left of c->out. Only in CONN_WRITE. */
static void flush_out(native_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                c->writable = false;
                return;
            }
            response_done(c, false);
            return;
        }
        c->out_off += (size_t)n;
        c->active_ns = c->w->now_ns;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    response_done(c, true);
}

/* Send the response of c->req. What the socket does not take at once is
 * copied to c->out and sent when it becomes writable. */
static void send_response(native_conn *c)
{
    talon_req *req = c->req;
    talon_resp *resp = &req->resp;
    native_engine *e = c->w->e;
    if (resp->status == 0)
        resp->status = 200;
    if (resp->status < 200 || resp->status > 599) {
        /* A 1xx is only an interim response (RFC 9110 section 15.2): sent as
         * the final one, the client would take the next response for it. */
        engine_warn(e, "request %s: the application set the status %d, which is not a final "
                    "response status (200 to 599); 500 sent instead", req->id, resp->status);
        talon_resp_error(resp, 500, NULL, NULL);
    }
    /* An end of stream from the client does not close here, because requests
     * it pipelined before that may still wait in the input kept behind a
     * held response. conn_input() closes the connection once it has served
     * that input. */
    if (!c->keep_alive || atomic_load_explicit(&e->draining, memory_order_relaxed))
        c->closing = true;
    size_t head_len = format_head(c);
    if (head_len == 0) {
        engine_warn(e, "request %s: no memory for the response head; the connection is "
                    "closed", req->id);
        conn_close(c);
        return;
    }
    size_t body_len = has_body(req) ? resp->body_len : 0;
    struct iovec iov[2] = { { c->w->head, head_len }, { resp->body, body_len } };
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = body_len > 0 ? 2 : 1 };
    ssize_t n;
    do {
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN) {
        response_done(c, false);
        return;
    }
    size_t sent = n > 0 ? (size_t)n : 0;
    if (sent == head_len + body_len) {
        response_done(c, true);
        return;
    }
    /* The socket's buffer is full: keep the rest. */
    size_t rest = head_len + body_len - sent;
    c->out = malloc(rest);
    if (c->out == NULL) {
        engine_warn(e, "request %s: no memory for %zu unsent response bytes; the connection "
                    "is closed", req->id, rest);
        response_done(c, false);
        return;
    }
    size_t off = 0;
    if (sent < head_len) {
        memcpy(c->out, c->w->head + sent, head_len - sent);
        off = head_len - sent;
        sent = 0;
    } else {
        sent -= head_len;
    }
    if (body_len > sent)
        memcpy(c->out + off, resp->body + sent, body_len - sent);
    c->out_len = rest;
    c->out_off = 0;
    c->state = CONN_WRITE;
    c->writable = false;
    c->active_ns = c->w->now_ns;
}

/* Send an error response to c->req and close the connection after it,
 * because the rest of what the client sent cannot be trusted to frame a
 * request. */
static void reject(native_conn *c, int status, const char *why)
{
    c->closing = true;
    talon_pipeline_run_error(c->req, status, why);
    send_response(c);
}

/* Reject input that did not make a request head: a malformed head, or one
 * over the size limit. The request is logged with its request line when
 * that was parsed, else with method, target and protocol "-". */
static void reject_head(native_conn *c, h1_head *h, int status, const char *why)
{
    talon_req *req = new_request(c);
    if (req == NULL) {
        conn_close(c);
        return;
    }
    /* A request line over the limit is not kept: the log and the audit
     * trail would hold whatever a client sent, up to the read buffer. */
    if (h->line_len > 0 && h->line_len <= c->w->e->max_header_size) {
        char version[9];
        memcpy(version, h->version, 8);
        version[8] = '\0';
        ((char *)h->method)[h->method_len] = '\0';
        ((char *)h->target)[h->target_len] = '\0';
        talon_req_set_line(req, h->method, h->target, version);
    } else {
        talon_req_set_line(req, "-", "-", "-");
    }
    talon_req_prepare(req);
    if (status == 400 || status == 505)
        engine_warn(c->w->e, "request %s from %s rejected with %d: %s", req->id, c->peer_ip,
                    status, why);
    reject(c, status, why);
}

/* ---- Holding a response ---- */

/* Called by hold.c with the request lock held, on the worker. Nothing to
 * do: the worker stops reading the connection while it is held. */
static void suspend_conn(void *conn)
{
    (void)conn;
}

/* Called by hold.c from any thread, with the request lock held, when the
 * last hold is released: queue the connection on its worker. */
static void resume_conn(void *conn)
{
    native_conn *c = conn;
    worker_queue(c->w, &c->w->resumed, c);
}

/* Run the pipeline of a complete request and answer it, unless a hold
 * keeps the response until resume_conn(). */
static void run_request(native_conn *c)
{
    talon_req *req = c->req;
    talon_pipeline_run(req);
    if (talon_hold_pipeline_done(req, c, suspend_conn, resume_conn)) {
        c->state = CONN_HELD;
        held_add(c->w, c);
        return;
    }
    talon_hold_apply_result(req);
    send_response(c);
}

static void conn_resumed(native_conn *c)
{
    if (c->state != CONN_HELD)
        return;
    held_remove(c->w, c);
    talon_hold_apply_result(c->req);
    send_response(c);
    conn_input(c);
}

/* ---- Request bodies ---- */

static void body_done(native_conn *c)
{
    talon_req *req = c->req;
    native_engine *e = c->w->e;
    if (req->body_too_large) {
        char desc[128];
        snprintf(desc, sizeof(desc), "The request body is larger than the limit of %zu bytes.",
                 e->app->max_body_size);
        reject(c, 413, desc);
        return;
    }
    run_request(c);
}

/* Add body bytes to the request, or drop them past max_body_size. Returns
 * false when the connection was answered (too much to drop) or closed. */
static bool body_take(native_conn *c, const char *data, size_t len)
{
    talon_req *req = c->req;
    native_engine *e = c->w->e;
    if (!req->body_too_large) {
        int rc = talon_req_append_body(req, data, len);
        if (rc == 0)
            return true;
        if (rc != -EFBIG) {
            engine_warn(e, "request %s from %s: no memory for its body; the connection is "
                        "closed", req->id, c->peer_ip);
            conn_close(c);
            return false;
        }
        req->body_too_large = true;
    }
    req->body_discarded += len;
    if (req->body_discarded > e->discard_limit) {
        char desc[128];
        snprintf(desc, sizeof(desc), "The request body is larger than the limit of %zu bytes.",
                 e->app->max_body_size);
        reject(c, 413, desc);
        return false;
    }
    return true;
}

/* Read body bytes from buf[0..len). Returns the bytes consumed. */
static size_t conn_body(native_conn *c, const char *buf, size_t len)
{
    if (!c->chunked) {
        size_t n = len < c->body_left ? len : (size_t)c->body_left;
        if (n > 0 && !body_take(c, buf, n))
            return len;
        c->body_left -= n;
        if (c->body_left == 0)
            body_done(c);
        return n;
    }
    size_t off = 0;
    while (!c->ck.done && off < len) {
        const char *data, *why;
        size_t data_len;
        ssize_t n = h1_chunked_step(&c->ck, buf + off, len - off, &data, &data_len, &why);
        if (n < 0) {
            reject(c, 400, why);
            return len;
        }
        if (data_len > 0 && !body_take(c, data, data_len))
            return len;
        if (n == 0)
            break;
        off += (size_t)n;
    }
    if (c->ck.done)
        body_done(c);
    return off;
}

/* ---- Request heads ---- */

/* Content-Length as a number: 1 to 19 digits, nothing else. */
static bool parse_length(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;
    for (; s[n] >= '0' && s[n] <= '9'; n++)
        v = v * 10 + (uint64_t)(s[n] - '0');
    if (n == 0 || n > 19 || s[n] != '\0')
        return false;
    *out = v;
    return true;
}

/* Check the request's limits and framing, and set up reading its body.
 * Returns false when the request was answered or the connection closed. */
static bool start_body(native_conn *c, bool body_in_buffer)
{
    talon_req *req = c->req;
    native_engine *e = c->w->e;
    const char *why = NULL;
    int status = talon_framing_check_head(req, &why);
    if (status == 0 && strcmp(req->protocol, "HTTP/1.1") == 0 &&
        talon_req_header(req, "Host") == NULL) {
        status = 400;
        why = "An HTTP/1.1 request must have a Host header field (RFC 9112 section 3.2).";
    }
    const char *cl = talon_req_header(req, "Content-Length");
    uint64_t length = 0;
    if (status == 0 && cl != NULL && !parse_length(cl, &length)) {
        status = 400;
        why = "The Content-Length header field is not a decimal number of bytes.";
    }
    if (status != 0) {
        engine_warn(e, "request %s from %s rejected with %d: %s", req->id, c->peer_ip,
                    status, why);
        reject(c, status, why);
        return false;
    }

    c->chunked = talon_req_header(req, "Transfer-Encoding") != NULL;
    c->body_left = length;
    if (!c->chunked && length == 0)
        return true;
    const char *expect = talon_req_header(req, "Expect");
    bool wants_continue = expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
                          strcmp(req->protocol, "HTTP/1.1") == 0;
    if (length > e->app->max_body_size) {
        /* A client that waits for "100 Continue", or one that announced
         * more than is worth reading, gets the 413 at once. Others are
         * still sending and would not read a 413 sent now, so their body
         * is read and dropped, and the 413 comes at its end (as nginx). */
        if (wants_continue || length > e->discard_limit) {
            char desc[160];
            snprintf(desc, sizeof(desc), "The request body is %llu bytes; the limit is %zu "
                     "bytes.", (unsigned long long)length, e->app->max_body_size);
            reject(c, 413, desc);
            return false;
        }
        req->body_too_large = true;
    }
    if (c->chunked)
        h1_chunked_init(&c->ck);
    c->state = CONN_BODY;
    if (wants_continue && !body_in_buffer) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ssize_t n = send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n; /* a client that cannot take 25 bytes sends its body anyway after a while */
    }
    return true;
}

/* Whether the connection may serve another request after req (RFC 9112
 * section 9.3). "close" in any Connection field wins over "keep-alive";
 * HTTP/1.0 keeps the connection only when asked to. */
static bool keeps_alive(const talon_req *req, int minor)
{
    bool close = false, keep = false;
    const char *name, *value;
    for (size_t i = 0; talon_req_header_at(req, i, &name, &value); i++) {
        if (strcasecmp(name, "Connection") != 0)
            continue;
        close = close || talon_http_list_has(value, "close");
        keep = keep || talon_http_list_has(value, "keep-alive");
    }
    return !close && (minor > 0 || keep);
}

/* A complete head in h: make the request. Returns false when the request
 * was answered or the connection closed. */
static bool start_request(native_conn *c, h1_head *h, bool body_in_buffer)
{
    talon_req *req = new_request(c);
    if (req == NULL) {
        conn_close(c);
        return false;
    }
    /* The parser leaves a SP after the method and the target, and a CR or
     * whitespace after each value: they become the strings' ends. */
    ((char *)h->method)[h->method_len] = '\0';
    ((char *)h->target)[h->target_len] = '\0';
    int rc = talon_req_set_line(req, h->method, h->target, h->minor ? "HTTP/1.1" : "HTTP/1.0");
    for (size_t i = 0; rc == 0 && i < h->nfields; i++) {
        const h1_field *f = &h->fields[i];
        rc = talon_kv_add(&req->arena, &req->headers, f->name, f->name_len, f->value,
                          f->value_len);
    }
    if (rc < 0) {
        engine_warn(c->w->e, "request from %s: no memory for its head; the connection is "
                    "closed", c->peer_ip);
        conn_close(c);
        return false;
    }
    talon_req_prepare(req);

    c->keep_alive = keeps_alive(req, h->minor);
    c->closing = false;

    native_engine *e = c->w->e;
    if (c->over_limit) {
        engine_warn(e, "request %s from %s rejected with 503: its connection was accepted "
                    "over connection_limit %u", req->id, c->peer_ip, e->connection_limit);
        char desc[160];
        snprintf(desc, sizeof(desc), "The server has reached its limit of %u connections; "
                 "retry later.", e->connection_limit);
        c->closing = true;
        talon_pipeline_run_error(req, 503, desc);
        talon_resp_set_header(&req->resp, "Retry-After", "1");
        send_response(c);
        return false;
    }
    if (!start_body(c, body_in_buffer))
        return false;
    if (c->state == CONN_HEAD)
        run_request(c);
    return true;
}

/* Return true when p[0..n) contains CR, LF or NUL: a byte that ends a line
 * or is invalid anywhere in a head. */
static bool has_line_byte(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            return true;
    }
    return false;
}

/* Parse a head from buf[0..len). Returns the bytes consumed, 0 when the
 * head is incomplete (nothing consumed) or the connection was answered. */
static size_t conn_head(native_conn *c, char *buf, size_t len)
{
    native_worker *w = c->w;
    native_engine *e = w->e;
    if (c->head_ns == 0)
        c->head_ns = w->now_ns;
    /* The limit counts the head without its final empty line, as the sum
     * of its lines. */
    size_t max = e->max_header_size + 2;
    /* A head that arrives in pieces is parsed again only when a piece
     * brings CR, LF or NUL or passes the limit. A client that sends a byte
     * at a time then costs one parse per line, not one per byte. Another
     * error inside an unfinished line (two spaces after the method, say)
     * is found when the line ends, the limit is passed or the head times
     * out. The last byte seen is scanned again, so that a CR followed by
     * the next piece is checked. */
    if (c->head_seen > 0 && len > c->head_seen && len <= max &&
        !has_line_byte(buf + c->head_seen - 1, len - c->head_seen + 1)) {
        c->head_seen = len;
        return 0;
    }
    const char *why = NULL;
    int rc = h1_parse_head(buf, len, &w->h, &why);
    c->head_seen = 0;
    if (rc == 0 && len <= max) {
        c->head_seen = len;
        return 0;
    }
    if (rc == 0 || (rc > 0 && (size_t)rc > max)) {
        /* As nginx: a request line alone over the head limit is 414. */
        char desc[160];
        bool line = w->h.line_len == 0 || w->h.line_len > e->max_header_size;
        /* An incomplete line or head is at least as long as what came. */
        size_t got = len;
        bool exact = rc > 0;
        if (line && w->h.line_len > 0) {
            got = w->h.line_len;
            exact = true;
        } else if (!line && rc > 0) {
            got = (size_t)rc - 2;
        }
        snprintf(desc, sizeof(desc), "The request %s %s %zu bytes; the limit is %zu bytes.",
                 line ? "line" : "head", exact ? "is" : "is at least", got,
                 e->max_header_size);
        reject_head(c, &w->h, line ? 414 : 431, desc);
        return 0;
    }
    if (rc < 0) {
        reject_head(c, &w->h, -rc, why);
        return 0;
    }
    start_request(c, &w->h, (size_t)rc < len);
    return (size_t)rc;
}

/* Serve the requests in buf[0..len). Returns the bytes consumed; stops
 * when the connection needs more input, waits (held, or a response not yet
 * sent) or was answered for good. */
static size_t conn_process(native_conn *c, char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        if (c->state == CONN_HEAD) {
            size_t used = conn_head(c, buf + off, len - off);
            if (used == 0)
                break; /* incomplete, or rejected */
            off += used;
        } else if (c->state == CONN_BODY) {
            off += conn_body(c, buf + off, len - off);
            if (c->state == CONN_BODY)
                break; /* the rest of the body is still on its way */
        } else {
            break;
        }
    }
    return off;
}

/* Read into the worker's buffer after the kept input, if the socket may
 * have bytes. Returns the bytes now in the buffer. */
static size_t conn_read(native_conn *c)
{
    native_worker *w = c->w;
    size_t have = 0;
    if (c->in_len > 0) {
        memcpy(w->rbuf, c->in, c->in_len);
        have = c->in_len;
        free(c->in);
        c->in = NULL;
        c->in_len = 0;
    }
    while (c->readable && have < w->rbuf_size) {
        size_t room = w->rbuf_size - have;
        ssize_t n = recv(c->fd, w->rbuf + have, room, 0);
        if (n > 0) {
            /* A short read drained the socket; an end of stream still
             * pending would have come with EPOLLRDHUP. */
            if ((size_t)n < room && !c->peer_shut)
                c->readable = false;
            have += (size_t)n;
            c->active_ns = w->now_ns;
            break;
        }
        if (n < 0 && errno == EINTR)
            continue;
        c->readable = false;
        if (n == 0 || errno != EAGAIN)
            c->eof = true; /* end of stream, or a reset */
    }
    return have;
}

/* Read and serve until the socket is drained, or the connection waits or
 * is closed. */
static void conn_input(native_conn *c)
{
    for (;;) {
        if (c->state == CONN_LINGER) {
            linger_read(c);
            return;
        }
        if (c->state != CONN_HEAD && c->state != CONN_BODY)
            return;
        size_t have = conn_read(c);
        size_t used = have > 0 ? conn_process(c, c->w->rbuf, have) : 0;
        if (c->state == CONN_DEAD || c->state == CONN_LINGER)
            continue;
        if (used < have && !conn_keep_input(c, c->w->rbuf + used, have - used))
            return;
        if (c->state != CONN_HEAD && c->state != CONN_BODY)
            return; /* held, or the response waits for the socket */
        if (used > 0)
            continue; /* served a request: serve what follows it */
        if (c->eof) {
            conn_close(c); /* a partial request is logged as aborted */
            return;
        }
        if (!c->readable)
            return;
    }
}

static void conn_event(native_conn *c, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->readable = true;
    /* The end of stream may come with the last bytes: a short read then
     * does not mean that nothing is left, so conn_read() goes on to the 0. */
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->peer_shut = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        c->writable = true;
    if (c->state == CONN_WRITE) {
        if (!c->writable)
            return;
        flush_out(c);
    }
    conn_input(c);
}

/* ---- The worker ---- */

static void worker_add(native_worker *w, native_conn *c)
{
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    c->active_ns = w->now_ns;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                              .data.ptr = c };
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        engine_warn(w->e, "cannot watch a connection from %s: %s; it is closed", c->peer_ip,
                    strerror(errno));
        conn_close(c);
    }
}

/* Take the connections handed over by the acceptor and the resumed ones. */
static void worker_take_queues(native_worker *w)
{
    uint64_t count;
    ssize_t n = read(w->wakefd, &count, sizeof(count));
    (void)n;
    pthread_mutex_lock(&w->lock);
    native_conn *incoming = w->incoming, *resumed = w->resumed;
    w->incoming = w->resumed = NULL;
    w->woken = false;
    pthread_mutex_unlock(&w->lock);

    while (incoming != NULL) {
        native_conn *c = incoming;
        incoming = c->queue_next;
        worker_add(w, c);
    }
    /* The queue is a stack: answer in the order of release. */
    native_conn *fifo = NULL;
    while (resumed != NULL) {
        native_conn *c = resumed;
        resumed = c->queue_next;
        c->queue_next = fifo;
        fifo = c;
    }
    while (fifo != NULL) {
        native_conn *c = fifo;
        fifo = c->queue_next;
        conn_resumed(c);
    }
}

/* Answer a head still incomplete after connection_timeout with 408, so
 * that the access log shows the request line of a slow client. Without a
 * whole request line there is nothing to log: the connection is closed. */
static void head_timed_out(native_conn *c)
{
    native_worker *w = c->w;
    const char *why;
    w->h.line_len = 0;
    if (c->in_len > 0)
        h1_parse_head(c->in, c->in_len, &w->h, &why);
    if (w->h.line_len == 0) {
        conn_close(c);
        return;
    }
    char desc[128];
    snprintf(desc, sizeof(desc), "The request head was not complete within %u s.",
             w->e->opts->connection_timeout_s);
    reject_head(c, &w->h, 408, desc);
}

/* Close connections past their timeout. A head is timed from its first
 * byte, not its last, so a client sending a byte at a time (slowloris)
 * cannot hold a connection. */
static void worker_sweep(native_worker *w)
{
    native_engine *e = w->e;
    int64_t now = w->now_ns;
    unsigned slow = 0;
    for (native_conn *c = w->conns; c != NULL; c = c->next) {
        switch (c->state) {
        case CONN_HEAD:
            if (e->timeout_ns == 0)
                break;
            if (c->head_ns != 0 && now - c->head_ns > e->timeout_ns) {
                slow++;
                head_timed_out(c);
            } else if (c->head_ns == 0 && now - c->active_ns > e->timeout_ns) {
                conn_close(c); /* idle keep-alive connection */
            }
            break;
        case CONN_BODY:
        case CONN_WRITE:
            if (e->timeout_ns != 0 && now - c->active_ns > e->timeout_ns)
                conn_close(c);
            break;
        case CONN_LINGER:
            if (now - c->active_ns > LINGER_NS)
                conn_close(c);
            break;
        default:
            break;
        }
    }
    if (slow > 0)
        engine_warn(e, "closed %u connections that sent no complete request head within %u s "
                    "(slow or stalled clients)", slow, e->opts->connection_timeout_s);
}

/* For the drain: close the connections that have no request in flight. */
static void worker_close_idle(native_worker *w)
{
    for (native_conn *c = w->conns; c != NULL; c = c->next) {
        if (c->state == CONN_HEAD)
            conn_close(c);
    }
}

static void worker_abort_held(native_worker *w)
{
    for (native_conn *c = w->held; c != NULL; c = c->held_next)
        talon_hold_abort(c->req);
}

static void worker_free_dead(native_worker *w)
{
    native_conn *c = w->conns;
    while (c != NULL) {
        native_conn *next = c->next;
        if (c->state == CONN_DEAD)
            conn_free(c);
        c = next;
    }
}

/* At the end of the drain: close what is left. A held connection cannot
 * be freed (its holder may still resume it) and is left allocated. */
static size_t worker_close_all(native_worker *w)
{
    size_t held = 0;
    for (native_conn *c = w->conns; c != NULL; c = c->next) {
        if (c->state == CONN_HELD)
            held++;
        else
            conn_close(c);
    }
    worker_free_dead(w);
    return held;
}

static void *worker_main(void *arg)
{
    native_worker *w = arg;
    native_engine *e = w->e;
    struct epoll_event ev[EVENTS_PER_WAIT];
    int64_t next_sweep = 0;
    bool aborted = false;
    size_t dead_events = 0;

    while (!atomic_load(&e->stop)) {
        int n = epoll_wait(w->epfd, ev, EVENTS_PER_WAIT, 1000);
        w->now_ns = talon_now_ns();
        /* One wall-clock read per pass for every log record of the pass
         * (about three per request), as nginx does. */
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        talon_log_set_thread_time((int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec);
        for (int i = 0; i < n; i++) {
            native_conn *c = ev[i].data.ptr;
            if (c == NULL) {
                worker_take_queues(w);
            } else if (c->state != CONN_DEAD) {
                conn_event(c, ev[i].events);
                dead_events += c->state == CONN_DEAD;
            }
        }
        if (atomic_load(&e->draining) && !w->drain_seen) {
            w->drain_seen = true;
            worker_close_idle(w);
            dead_events++;
        }
        if (atomic_load(&e->abort_held) && !aborted) {
            aborted = true;
            worker_abort_held(w);
        }
        if (w->now_ns >= next_sweep) {
            worker_sweep(w);
            next_sweep = w->now_ns + 1000000000;
            dead_events++;
        }
        /* Freed only here: a batch of events may name a connection that an
         * earlier event of the same batch closed. */
        if (dead_events > 0) {
            worker_free_dead(w);
            dead_events = 0;
        }
    }
    return NULL;
}

/* ---- The acceptor, on the serving thread ---- */

/* Hand a new connection to the next worker in turn. */
static void hand_over(void *engine, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
    native_engine *e = engine;
    (void)len;
    native_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        talon_log_limited(e->accept_limit, "closed a new connection: out of memory");
        return;
    }
    c->fd = fd;
    c->state = CONN_HEAD;
    strcpy(c->peer_ip, "-");
    talon_sockaddr_format((const struct sockaddr *)ss, c->peer_ip);
    if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6) {
        /* Responses go out in one write; a second one (a large body) must
         * not wait for the client's delayed ACK. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    c->over_limit = !talon_admit_connection(&e->admitted, e->connection_limit);
    atomic_fetch_add(&e->open, 1);
    native_worker *w = &e->workers[e->next_worker++ % e->nworkers];
    c->w = w;
    worker_queue(w, &w->incoming, c);
}

/* ---- Start and stop ---- */

static void wake_all(native_engine *e)
{
    for (unsigned i = 0; i < e->nworkers; i++)
        worker_kick(&e->workers[i]);
}

/* Stop accepting, let in-flight requests finish (held ones included), then
 * stop the workers. Returns the number of requests cut: still in flight
 * when the workers stopped, their connections closed without a complete
 * response. */
static long drain(native_engine *e, unsigned timeout_s)
{
    talon_app *app = e->app;
    close(e->listen_fd);
    e->listen_fd = -1;
    talon_log_info(app->log, "stopping: no longer accepting connections; waiting up to %us "
                   "for %ld in-flight requests", timeout_s, atomic_load(&e->in_flight));
    atomic_store(&e->draining, true);
    wake_all(e);

    if (!talon_wait_zero(&e->in_flight, (long)timeout_s * 1000)) {
        long left = atomic_load(&e->in_flight), held = atomic_load(&e->held);
        atomic_store(&e->abort_held, true);
        wake_all(e);
        talon_log_error(app->log, "stopping: %ld requests still in flight after %us; %ld of "
                        "them held, answered 503; the others get 5 s more", left, timeout_s,
                        held);
        talon_wait_zero(&e->in_flight, 5000);
    }
    /* Requests cut now, and those that ended without a whole response
     * during the drain (a client gone, a body timed out). */
    long cut = atomic_load(&e->in_flight) + atomic_load(&e->drain_cut);
    atomic_store(&e->stop, true);
    wake_all(e);
    return cut;
}

static void destroy_workers(native_engine *e, unsigned started)
{
    size_t held = 0;
    for (unsigned i = 0; i < started; i++)
        pthread_join(e->workers[i].thread, NULL);
    for (unsigned i = 0; i < e->nworkers; i++) {
        native_worker *w = &e->workers[i];
        if (i < started)
            held += worker_close_all(w);
        if (w->epfd >= 0)
            close(w->epfd);
        if (w->wakefd >= 0)
            close(w->wakefd);
        pthread_mutex_destroy(&w->lock);
        free(w->rbuf);
        free(w->head);
    }
    if (held > 0)
        talon_log_error(e->app->log, "stopped with %zu requests still held; their connections "
                        "stay open until the process exits", held);
}

static int init_worker(native_engine *e, native_worker *w, char *err, size_t errlen)
{
    w->e = e;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->rbuf_size = e->max_header_size + READ_BUFFER_MIN;
    w->rbuf = malloc(w->rbuf_size);
    w->head_cap = 4096;
    w->head = malloc(w->head_cap);
    if (w->epfd < 0 || w->wakefd < 0 || w->rbuf == NULL || w->head == NULL) {
        int rc = errno ? -errno : -ENOMEM;
        snprintf(err, errlen, "cannot start an HTTP worker: %s", strerror(-rc));
        return rc;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev) < 0) {
        int rc = -errno;
        snprintf(err, errlen, "cannot start an HTTP worker: %s", strerror(errno));
        return rc;
    }
    return 0;
}

int talon_engine_native_run(const talon_serve *s, char *err, size_t errlen)
{
    talon_app *app = s->app;
    const talon_server_options *opts = s->opts;
    int rc = 0;
    unsigned started = 0;
    native_engine *e = calloc(1, sizeof(*e));
    native_worker *workers = calloc(s->threads, sizeof(*workers));
    if (e == NULL || workers == NULL) {
        snprintf(err, errlen, "cannot start serving %s: out of memory", opts->listen);
        free(e);
        free(workers);
        close(s->listen_fd);
        return -ENOMEM;
    }
    e->app = app;
    e->opts = opts;
    e->listen_fd = s->listen_fd;
    e->workers = workers;
    e->nworkers = s->threads;
    e->max_header_size = opts->max_header_size;
    e->discard_limit = (uint64_t)opts->max_body_size * 4 + 1024 * 1024;
    e->connection_limit = opts->connection_limit;
    e->hard_limit = opts->connection_limit + opts->connection_limit / 8 + 16;
    e->timeout_ns = (int64_t)opts->connection_timeout_s * 1000000000;
    e->warn_limit = talon_log_limit_new(app->log, TALON_LOG_WARN, WARN_PER_SECOND,
                                        "HTTP engine warnings");
    e->accept_limit = talon_log_limit_new(app->log, TALON_LOG_WARN, 1, "accept warnings");
    for (unsigned i = 0; i < e->nworkers; i++) {
        workers[i].epfd = workers[i].wakefd = -1;
        pthread_mutex_init(&workers[i].lock, NULL);
    }

    if (e->warn_limit == NULL || e->accept_limit == NULL) {
        snprintf(err, errlen, "cannot start serving %s: out of memory", opts->listen);
        rc = -ENOMEM;
    }
    for (unsigned i = 0; i < e->nworkers && rc == 0; i++)
        rc = init_worker(e, &workers[i], err, errlen);
    for (; rc == 0 && started < e->nworkers; started++) {
        rc = -pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]);
        if (rc < 0)
            snprintf(err, errlen, "cannot start an HTTP worker thread: %s", strerror(-rc));
    }
    if (rc < 0) {
        atomic_store(&e->stop, true);
        wake_all(e);
        close(e->listen_fd);
        goto out;
    }

    app->engine = e;
    atomic_store(&app->port, talon_bound_port(e->listen_fd));
    talon_log_info(app->log, "listening on %s (port %u, %u threads, max body %zu bytes, "
                   "max head %zu bytes, engine native)", opts->listen, talon_app_port(app),
                   e->nworkers, opts->max_body_size, opts->max_header_size);
    if (opts->on_ready != NULL)
        opts->on_ready(app, opts->on_ready_ctx);

    talon_acceptor acceptor = {
        .app = app, .listen_fd = e->listen_fd, .open = &e->open, .hard_limit = e->hard_limit,
        .connection_limit = e->connection_limit, .limit = e->accept_limit,
        .hand = hand_over, .engine = e,
    };
    talon_serve_until_stop(&acceptor);
    long cut = drain(e, s->drain_s);
    app->engine = NULL;
    if (cut == 0)
        talon_log_info(app->log, "stopped: every in-flight request finished");
    else
        talon_log_error(app->log, "stopped: %ld requests were still in flight and their "
                        "connections were closed without a complete response", cut);

out:
    destroy_workers(e, started);
    talon_log_limit_free(e->warn_limit);
    talon_log_limit_free(e->accept_limit);
    free(workers);
    free(e);
    return rc;
}
