/* The HTTP engine: GNU libmicrohttpd behind talon's pipeline. This is the
 * only file that includes <microhttpd.h>; serve.c picks this engine when the
 * server options name "libmicrohttpd".
 *
 * Facts about libmicrohttpd 0.9.75 this file depends on:
 * - a response queued on the first access-handler call is sent with
 *   "Connection: close", so normal responses are queued on a later call;
 * - MHD_suspend_connection() works only from the access handler, but
 *   MHD_resume_connection() works from any thread. A resume before the
 *   suspend is silently lost, so hold.c suspends under the request lock;
 * - MHD_stop_daemon() aborts the process while a connection is suspended,
 *   so the drain waits for every held request before stopping;
 * - a client that disconnects while suspended never re-enters the handler:
 *   the completed callback comes instead, and it frees the request;
 * - the completed callback may run with MHD's internal lock held, so it
 *   must not call back into MHD;
 * - its own error responses after the URI callback (431 when the head does
 *   not fit the connection's memory pool, 400, 413) reach the completed
 *   callback without a handler call; MHD_CONNECTION_INFO_HTTP_STATUS then
 *   returns their status (take_engine_response);
 * - some of its own error paths close a connection without the completed
 *   callback, although the URI callback ran. This happens on a second error
 *   while the first error response is still queued, for example a Cookie
 *   header with more pairs than the connection's memory pool holds. The
 *   request is then released when the connection closes (release_orphan);
 * - it builds a table of the query arguments in the connection's memory
 *   pool, one 64-byte record per argument, and a query of a few thousand
 *   bytes with many short arguments exhausts the pool: no response is sent
 *   and the connection hangs. talon parses the query from the raw target
 *   itself, so on_uri hides the arguments from libmicrohttpd. */
#include "http/engine.h"
#include "http/framing.h"
#include "http/pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum engine_state {
    STATE_HEAD = 0, /* created by the URI callback; the first handler call comes next */
    STATE_BODY,     /* head read; body chunks arrive */
    STATE_HELD,     /* pipeline done, suspended until the last hold is released */
    STATE_QUEUED,   /* response queued */
    STATE_SENT      /* response written to the socket by talon (send_direct); closing */
};

/* One open connection, for the slow-client check (sweep_slow_heads). */
typedef struct engine_conn {
    struct engine_conn *prev, *next;
    int fd;
    atomic_llong head_since_ns; /* when the current head began; 0 while a request is served */
    bool cut;                   /* shut down by the sweep */
    bool over_limit;            /* accepted over connection_limit, so every request gets 503 */
    talon_req *req;             /* the request begun by on_uri and not yet completed */
    char peer_ip[TALON_IP_MAX]; /* formatted once: every request on it has this peer */
} engine_conn;

typedef struct talon_engine {
    talon_app *app;
    struct MHD_Daemon *daemon;
    int listen_fd;                /* accepted by talon, not libmicrohttpd: see hand_connection() */
    size_t max_header_size;
    atomic_long in_flight;        /* requests created and not yet completed */
    atomic_long orphans;          /* requests released at close, without the completed callback */
    bool hide_query;              /* libmicrohttpd's layout is known: see hide_query() */
    atomic_long admitted;         /* open connections accepted within connection_limit */
    atomic_long handed;           /* connections given to libmicrohttpd and not yet closed */
    unsigned hard_limit;          /* above it serve.c closes new connections */
    talon_log_limit *accept_limit; /* one "cannot accept" warning a second */
    size_t pool_size;             /* MHD_OPTION_CONNECTION_MEMORY_LIMIT */
    unsigned connection_limit;
    unsigned connection_timeout_s;
    pthread_mutex_t conns_lock;   /* guards the list of open connections */
    engine_conn *conns;
    pthread_mutex_t held_lock;    /* guards the list of suspended requests */
    talon_req *held;
    size_t nheld;
    talon_log_limit *warn_limit;  /* rate limit of warn_limited(); NULL: none */
} talon_engine;

#define MHD_LOG_PER_SECOND 20

/* libmicrohttpd 0.9.75 keeps the request head of each connection in a
 * memory pool of MHD_OPTION_CONNECTION_MEMORY_LIMIT bytes. The pool also
 * holds a POOL_RECORD_SIZE record per header field and per cookie, a copy
 * of the Cookie field and, once the response starts, the response head.
 * After every request libmicrohttpd zeroes the whole pool (MHD_pool_reset
 * in memorypool.c), so an idle keep-alive connection keeps all of it
 * resident and each request pays a memset of its size. The pool is
 * therefore only max_header_size plus HEAD_POOL_MARGIN, and
 * check_head_pool() rejects a head that would leave less than
 * RESPONSE_HEAD_RESERVE free. */
#define POOL_RECORD_SIZE 64         /* sizeof(struct MHD_HTTP_Header), 16-byte aligned */
/* NOTE: a response head larger than the reserve fits only if the request
 * head left room for it. Otherwise libmicrohttpd closes the connection
 * without a response ("failed to create response header"), and the access
 * log shows 499. Pipelined requests read with the head take room too. */
#define RESPONSE_HEAD_RESERVE 1024  /* pool bytes kept for the response head */
/* The records of 32 fields, the empty line ending the head, the reserve. */
#define HEAD_POOL_MARGIN (32 * POOL_RECORD_SIZE + 2 + RESPONSE_HEAD_RESERVE)
#define DIRECT_ANSWER_ROOM 512      /* below this, an error response skips the pool */

/* ---- libmicrohttpd callbacks ---- */

/* Log a warning to the "app" logger, at most MHD_LOG_PER_SECOND a second,
 * so that a flood of bad clients cannot flood the log. */
static void warn_limited(talon_engine *e, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        msg[--len] = '\0';

    /* The count of suppressed warnings is logged within about a second,
     * even when no later warning comes. */
    if (e->warn_limit != NULL)
        talon_log_limited(e->warn_limit, "%s", msg);
    else
        talon_log_warn(e->app->log, "%s", msg);
}

static void engine_warn(talon_engine *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void engine_warn(talon_engine *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    warn_limited(e, fmt, ap);
    va_end(ap);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    engine_warn(cls, "libmicrohttpd: %s", msg);
}

/* The connection's entry in the list of open connections, or NULL. */
static engine_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

static void release_orphan(talon_engine *e, engine_conn *ec);
static bool send_direct(int fd, const talon_req *req);

/* Apply connection_limit once per connection, when it is accepted, as
 * nginx's limit_conn does. A connection accepted within the limit is served
 * for its whole life. Every request on one accepted over it gets a 503 from
 * reject_by_limits(), where libmicrohttpd would close it silently. Each
 * connection is also listed for sweep_slow_heads(). libmicrohttpd notifies
 * the close before it closes the socket, so a listed fd is always open. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    talon_engine *e = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        engine_conn *ec = calloc(1, sizeof(*ec));
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ec == NULL || ci == NULL) {
            free(ec);
            return; /* rejected with 503 by reject_by_limits(); not swept */
        }
        ec->over_limit = !talon_admit_connection(&e->admitted, e->connection_limit);
        ec->fd = ci->connect_fd;
        atomic_init(&ec->head_since_ns, talon_now_ns());
        strcpy(ec->peer_ip, "-");
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci != NULL)
            talon_sockaddr_format(ci->client_addr, ec->peer_ip);
        pthread_mutex_lock(&e->conns_lock);
        ec->next = e->conns;
        if (e->conns != NULL)
            e->conns->prev = ec;
        e->conns = ec;
        pthread_mutex_unlock(&e->conns_lock);
        *socket_ctx = ec;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        engine_conn *ec = *socket_ctx;
        atomic_fetch_sub(&e->handed, 1);
        if (ec == NULL)
            return;
        if (!ec->over_limit)
            atomic_fetch_sub(&e->admitted, 1);
        if (ec->req != NULL)
            release_orphan(e, ec);
        pthread_mutex_lock(&e->conns_lock);
        if (ec->prev != NULL)
            ec->prev->next = ec->next;
        else
            e->conns = ec->next;
        if (ec->next != NULL)
            ec->next->prev = ec->prev;
        pthread_mutex_unlock(&e->conns_lock);
        free(ec);
        *socket_ctx = NULL;
    }
}

/* Mark the connection of c as serving a request (head complete), or as
 * waiting for the next head from now on. */
static void conn_set_waiting(struct MHD_Connection *c, bool waiting)
{
    engine_conn *ec = conn_of(c);
    if (ec != NULL)
        atomic_store(&ec->head_since_ns, waiting ? talon_now_ns() : 0);
}

/* Close connections whose request head is still incomplete a second after
 * connection_timeout_s: libmicrohttpd's timeout restarts at every byte, so
 * a client sending its head byte by byte (slowloris) would never time out.
 * The second of grace lets libmicrohttpd close the merely idle ones first.
 * shutdown() makes libmicrohttpd see the end of the stream and close. */
static void sweep_slow_heads(talon_engine *e)
{
    if (e->connection_timeout_s == 0)
        return;
    int64_t now = talon_now_ns();
    int64_t limit = ((int64_t)e->connection_timeout_s + 1) * 1000000000;
    unsigned cut = 0;
    pthread_mutex_lock(&e->conns_lock);
    for (engine_conn *ec = e->conns; ec != NULL; ec = ec->next) {
        int64_t since = atomic_load(&ec->head_since_ns);
        if (since != 0 && !ec->cut && now - since > limit) {
            shutdown(ec->fd, SHUT_RDWR);
            ec->cut = true;
            cut++;
        }
    }
    pthread_mutex_unlock(&e->conns_lock);
    if (cut > 0)
        engine_warn(e, "closed %u connections that sent no complete request head within %u s "
                    "(slow or stalled clients)", cut, e->connection_timeout_s);
}

/* Paths and query strings are decoded by talon (uri.c) from the raw target,
 * so libmicrohttpd's own unescaping is turned off. */
static size_t on_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

/* Keep libmicrohttpd from building its table of query arguments, which
 * talon does not use (uri.c parses the raw target) and which exhausts the
 * connection's memory pool when a query has many short arguments. In
 * 0.9.7x, uri points into the connection's read buffer and the argument
 * parser runs right after the URI callback, from the byte after the first
 * '?': ending the string there leaves it nothing to parse. */
static void hide_query(talon_engine *e, const char *uri)
{
    char *q = e->hide_query ? strchr(uri, '?') : NULL;
    if (q != NULL)
        q[1] = '\0';
}

/* Called once the request line is parsed: the request starts here, with the
 * raw target as the client sent it. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    talon_engine *e = cls;
    engine_conn *ec = conn_of(c);
    if (ec != NULL && ec->req != NULL)
        release_orphan(e, ec); /* the previous request never completed */
    talon_req *req = talon_req_create(e->app);
    if (req == NULL)
        return NULL;
    req->target = talon_arena_strdup(&req->arena, uri);
    if (req->target == NULL) {
        talon_req_unref(req);
        return NULL;
    }
    hide_query(e, uri);
    if (ec != NULL) {
        talon_req_set_peer_ip(req, ec->peer_ip);
    } else {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci != NULL)
            talon_req_set_peer(req, ci->client_addr);
    }
    atomic_fetch_add(&e->in_flight, 1);
    if (ec != NULL)
        ec->req = req;
    return req;
}

typedef struct head_copy {
    talon_req *req;
    size_t bytes;
    int rc;
    int status;          /* 400 when a field is malformed */
    const char *why;
    size_t cookie_len;   /* value length of the first Cookie field, which libmicrohttpd copies */
    bool has_cookie;
} head_copy;

/* libmicrohttpd 0.9.75 parses a field line in place: the colon becomes a
 * NUL and the value starts after the whitespace that follows it. For an
 * obs-fold (a line starting with SP or HTAB) it appends the continuation
 * to the field *name*, which leaves the name running past where its value
 * starts, or moved away from it. RFC 9112 section 5.2 asks a server to
 * reject or unfold an obs-fold; a field not laid out as parsed in place is
 * rejected. */
static bool field_in_place(const char *name, size_t name_len, const char *value)
{
    const char *p = name + name_len + 1;
    if (value < p || value - p > 65536)
        return false;
    for (; p < value; p++) {
        if (*p != ' ' && *p != '\t')
            return false;
    }
    return true;
}

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *name,
                                   size_t name_len, const char *value, size_t value_len)
{
    head_copy *h = cls;
    bool parsed = value != NULL;
    if (!parsed) {
        value = "";
        value_len = 0;
    }
    h->bytes += name_len + value_len + 4; /* ": " and CRLF */
    if (!h->has_cookie && strcasecmp(name, "Cookie") == 0) {
        h->has_cookie = true;
        h->cookie_len = value_len;
    }
    if (h->status == 0) {
        h->status = talon_framing_check_field(name, name_len, value, value_len, &h->why);
        if (h->status == 0 && parsed && !field_in_place(name, name_len, value)) {
            h->status = 400;
            h->why = "A header field is folded over several lines (obs-fold), which RFC 9112 "
                     "section 5.2 obsoletes; send each field on one line.";
        }
    }
    if (h->rc == 0)
        h->rc = talon_req_add_header(h->req, name, value);
    return MHD_YES;
}

static void held_list_add(talon_engine *e, talon_req *req)
{
    pthread_mutex_lock(&e->held_lock);
    req->held_prev = NULL;
    req->held_next = e->held;
    if (e->held != NULL)
        e->held->held_prev = req;
    e->held = req;
    e->nheld++;
    pthread_mutex_unlock(&e->held_lock);
}

static void held_list_remove(talon_engine *e, talon_req *req)
{
    pthread_mutex_lock(&e->held_lock);
    if (req->held_prev != NULL)
        req->held_prev->held_next = req->held_next;
    else
        e->held = req->held_next;
    if (req->held_next != NULL)
        req->held_next->held_prev = req->held_prev;
    req->held_prev = req->held_next = NULL;
    e->nheld--;
    pthread_mutex_unlock(&e->held_lock);
}

static void suspend_connection(void *conn)
{
    MHD_suspend_connection(conn);
}

static void resume_connection(void *conn)
{
    MHD_resume_connection(conn);
}

static enum MHD_Result queue_response(talon_engine *e, struct MHD_Connection *c, talon_req *req)
{
    talon_resp *resp = &req->resp;
    if (resp->status == 0)
        resp->status = 200;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        resp->body_len, resp->body ? resp->body : (char *)"", MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        talon_log_error(e->app->log, "cannot create a response for request %s: out of memory",
                        req->id);
        return MHD_NO;
    }
    for (size_t i = 0; i < resp->headers.n; i++) {
        const talon_kv *h = &resp->headers.items[i];
        if (MHD_add_response_header(r, h->name, h->value) != MHD_YES)
            talon_log_warn(e->app->log, "request %s: libmicrohttpd rejected the response "
                           "header %s; it was not sent", req->id, h->name);
    }
    if (talon_resp_header(resp, "X-Request-ID") == NULL)
        MHD_add_response_header(r, "X-Request-ID", req->id);
    /* While draining, every response closes its connection, so keep-alive
     * clients move to another server instead of holding the drain open. */
    if (atomic_load(&e->app->stopping))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    req->engine_state = STATE_QUEUED;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    if (ret != MHD_YES)
        talon_log_error(e->app->log, "request %s: libmicrohttpd did not accept the %d "
                        "response; the connection is closed", req->id, resp->status);
    return ret;
}

/* Bytes of the connection's memory pool that the parsed head of c takes in
 * libmicrohttpd 0.9.75. These are the head as received, a record per header
 * field and per cookie, and the copy of the first Cookie field that the
 * cookie parser splits. */
static size_t head_pool_bytes(struct MHD_Connection *c, const head_copy *h)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    size_t bytes = ci != NULL ? ci->header_size : h->bytes;
    int records = MHD_get_connection_values_n(
        c, MHD_HEADER_KIND | MHD_COOKIE_KIND | MHD_GET_ARGUMENT_KIND, NULL, NULL);
    if (records > 0)
        bytes += (size_t)records * POOL_RECORD_SIZE;
    if (h->has_cookie)
        bytes += (h->cookie_len + 1 + 15) & ~(size_t)15;
    return bytes;
}

/* Reject with 431 a head that fits max_header_size but leaves less than
 * RESPONSE_HEAD_RESERVE of the pool, because of many short fields or
 * cookies. Without room for the response head, libmicrohttpd would close
 * the connection after the responder ran. Returns false when it rejected. */
static bool check_head_pool(talon_engine *e, struct MHD_Connection *c, talon_req *req,
                            const head_copy *h)
{
    size_t used = head_pool_bytes(c, h);
    if (used + RESPONSE_HEAD_RESERVE <= e->pool_size)
        return true;
    char desc[256];
    snprintf(desc, sizeof(desc), "The request head takes %zu bytes of the server's %zu-byte "
             "buffer for request heads: each header field and cookie costs %d bytes more "
             "than its text, and the Cookie field counts twice. Send fewer or shorter fields "
             "or cookies.", used, e->pool_size - RESPONSE_HEAD_RESERVE, POOL_RECORD_SIZE);
    talon_pipeline_run_error(req, 431, desc);
    return false;
}

/* Send the error response of a head rejected on the first handler call.
 * When the head leaves less than DIRECT_ANSWER_ROOM of the pool,
 * libmicrohttpd cannot build the response head and would close the
 * connection without it. So talon then writes the response to the socket
 * itself and returns MHD_NO, on which libmicrohttpd closes the connection. */
static enum MHD_Result reject_head(talon_engine *e, struct MHD_Connection *c, talon_req *req,
                                   const head_copy *h)
{
    if (head_pool_bytes(c, h) + DIRECT_ANSWER_ROOM <= e->pool_size)
        return queue_response(e, c, req);
    engine_conn *ec = conn_of(c);
    if (ec != NULL && !ec->cut && send_direct(ec->fd, req))
        req->engine_state = STATE_SENT;
    engine_warn(e, "request %s from %s: the head left no room for a response in "
                "libmicrohttpd's memory pool; %s", req->id, req->peer_ip,
                req->engine_state == STATE_SENT ? "answered directly" : "closed unanswered");
    return MHD_NO;
}

/* Body bytes beyond the limit are read and dropped so that the 413 can be
 * sent at the end of the request. Past this many, the connection is closed. */
static uint64_t discard_limit(const talon_app *app)
{
    return (uint64_t)app->max_body_size * 4 + 1024 * 1024;
}

/* Check the connection limit, the head limits and the framing of req.
 * On a violation, run the error pipeline and return true. */
static bool reject_by_limits(talon_engine *e, struct MHD_Connection *c, talon_req *req,
                             const head_copy *h, size_t line_bytes)
{
    engine_conn *ec = conn_of(c);
    if (ec == NULL || ec->over_limit) {
        engine_warn(e, "request %s from %s rejected with 503: %s %u", req->id, req->peer_ip,
                    ec == NULL ? "its connection is untracked (out of memory); connection_limit"
                               : "its connection was accepted over connection_limit",
                    e->connection_limit);
        char desc[160];
        snprintf(desc, sizeof(desc), "The server has reached its limit of %u connections; "
                 "retry later.", e->connection_limit);
        talon_pipeline_run_error(req, 503, desc);
        talon_resp_set_header(&req->resp, "Retry-After", "1");
        return true;
    }
    if (line_bytes > e->max_header_size) {
        /* As nginx does: a request line alone over the head limit is 414.
         * Past libmicrohttpd's pool, libmicrohttpd sends 414 itself. */
        char desc[160];
        snprintf(desc, sizeof(desc), "The request line is %zu bytes; the limit is %zu bytes.",
                 line_bytes, e->max_header_size);
        talon_pipeline_run_error(req, 414, desc);
        return true;
    }
    if (h->bytes > e->max_header_size) {
        char desc[160];
        snprintf(desc, sizeof(desc), "The request head is %zu bytes; the limit is %zu bytes.",
                 h->bytes, e->max_header_size);
        talon_pipeline_run_error(req, 431, desc);
        return true;
    }
    if (!check_head_pool(e, c, req, h))
        return true;
    const char *why = h->why;
    int status = h->status ? h->status : talon_framing_check_head(req, &why);
    if (status != 0) {
        engine_warn(e, "request %s from %s rejected with %d: %s", req->id, req->peer_ip,
                    status, why);
        talon_pipeline_run_error(req, status, why);
        return true;
    }
    return false;
}

/* First handler call: copy the head and check the limits that can be
 * checked before the body. Returns MHD_YES without a response in the
 * normal case (see the keep-alive note at the top). */
static enum MHD_Result handle_head(talon_engine *e, struct MHD_Connection *c, talon_req *req,
                                   const char *method, const char *version)
{
    const char *target = req->target;
    conn_set_waiting(c, false);
    if (talon_req_set_line(req, method, target, version) < 0)
        return MHD_NO;
    size_t line_bytes = strlen(method) + strlen(target) + strlen(version) + 4;
    head_copy h = { .req = req, .bytes = line_bytes };
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, copy_header, &h);
    if (h.rc < 0)
        return MHD_NO;
    talon_req_prepare(req);
    req->engine_state = STATE_BODY;

    /* These responses close the connection (first call), which is what a
     * client that sent too much should get. */
    if (reject_by_limits(e, c, req, &h, line_bytes))
        return reject_head(e, c, req, &h);
    const char *cl = talon_req_header(req, "Content-Length");
    if (cl != NULL) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && *end == '\0' && n > e->app->max_body_size) {
            /* A client that waits for "100 Continue", or one that announced
             * more than is worth reading, gets the 413 at once. Others are
             * still sending, and a close now would reset the connection
             * before they read the 413. So the body is read and dropped,
             * and the 413 is sent at its end, as nginx does. */
            const char *expect = talon_req_header(req, "Expect");
            if ((expect != NULL && strcasecmp(expect, "100-continue") == 0) ||
                n > discard_limit(e->app)) {
                char desc[160];
                snprintf(desc, sizeof(desc), "The request body is %llu bytes; the limit is "
                         "%zu bytes.", n, e->app->max_body_size);
                talon_pipeline_run_error(req, 413, desc);
                return reject_head(e, c, req, &h);
            }
            req->body_too_large = true;
        }
    }
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **req_cls)
{
    talon_engine *e = cls;
    talon_req *req = *req_cls;
    if (req == NULL) {
        /* The URI callback ran out of memory. */
        return MHD_NO;
    }

    switch (req->engine_state) {
    case STATE_HEAD:
        return handle_head(e, c, req, method, version);

    case STATE_BODY:
        if (*upload_data_size > 0) {
            if (!req->body_too_large &&
                talon_req_append_body(req, upload_data, *upload_data_size) == -EFBIG)
                req->body_too_large = true;
            if (req->body_too_large) {
                req->body_discarded += *upload_data_size;
                if (req->body_discarded > discard_limit(e->app)) {
                    talon_log_warn(e->app->log, "request %s from %s: body far beyond the "
                                   "%zu-byte limit; connection closed", req->id,
                                   req->peer_ip, e->app->max_body_size);
                    return MHD_NO;
                }
            }
            *upload_data_size = 0;
            return MHD_YES;
        }
        if (req->body_too_large) {
            char desc[128];
            snprintf(desc, sizeof(desc), "The request body is larger than the limit of %zu "
                     "bytes.", e->app->max_body_size);
            talon_pipeline_run_error(req, 413, desc);
            return queue_response(e, c, req);
        }
        talon_pipeline_run(req);
        if (talon_hold_pipeline_done(req, c, suspend_connection, resume_connection)) {
            req->engine_state = STATE_HELD;
            held_list_add(e, req);
            return MHD_YES;
        }
        talon_hold_apply_result(req);
        return queue_response(e, c, req);

    case STATE_HELD:
        /* Re-entered after the last release resumed the connection. */
        held_list_remove(e, req);
        talon_hold_apply_result(req);
        return queue_response(e, c, req);

    default:
        return MHD_YES;
    }
}

static bool has_body(const talon_req *req)
{
    int s = req->resp.status;
    return strcmp(req->method, "HEAD") != 0 && s >= 200 && s != 204 && s != 304;
}

/* Run the completion callbacks and drop the engine's reference. */
static void finish_request(talon_engine *e, talon_req *req, bool ok)
{
    /* The body of libmicrohttpd's own response is not talon's resp.body. */
    bool own_body = ok && !req->engine_response && has_body(req);
    talon_completion done = {
        .bytes_sent = own_body ? req->resp.body_len : 0,
        .duration_ns = talon_now_ns() - req->start_ns,
        .client_aborted = !ok,
    };
    talon_app_run_completions(e->app, req, &done);
    talon_req_unref(req);
    atomic_fetch_sub(&e->in_flight, 1);
}

/* Give a request that never reached the handler the method and protocol
 * "-" and a request id, for the completion callbacks. */
static void complete_head(talon_req *req)
{
    talon_req_set_line(req, "-", req->target, "-");
    talon_req_prepare(req);
}

/* Take over the status of the error response that libmicrohttpd queued
 * itself for req (its 400, 413 or 431 after the request line), if it
 * queued one. Returns true when it did. */
static bool take_engine_response(struct MHD_Connection *c, talon_req *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
    if (ci == NULL || ci->http_status == 0)
        return false;
    req->resp.status = (int)ci->http_status;
    req->engine_response = true;
    return true;
}

/* Whether a request for which libmicrohttpd sent its own error response
 * ended without the client leaving first. libmicrohttpd 0.9.75 closes the connection after
 * its own error response and reports MHD_REQUEST_TERMINATED_WITH_ERROR,
 * both when the response was sent and when sending it failed.
 * NOTE: so a failed send of libmicrohttpd's own error response is logged
 * as sent; the response is one small write, so this needs a client that
 * resets the connection right after sending its head. */
static bool engine_response_sent(enum MHD_RequestTerminationCode toe)
{
    return toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ||
           toe == MHD_REQUEST_TERMINATED_WITH_ERROR;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    talon_engine *e = cls;
    talon_req *req = *req_cls;
    if (req == NULL)
        return;
    *req_cls = NULL;
    engine_conn *ec = conn_of(c);
    if (ec != NULL && ec->req == req)
        ec->req = NULL;

    if (req->engine_state == STATE_HEAD)
        complete_head(req);
    if (req->engine_state == STATE_HELD) {
        /* The client left while held: no re-entry will come. */
        held_list_remove(e, req);
        talon_hold_apply_result(req);
    }
    bool ok;
    if (req->engine_state == STATE_QUEUED) {
        ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    } else if (req->engine_state == STATE_SENT) {
        ok = true;
    } else {
        /* No response of talon's: libmicrohttpd rejected the head (431
         * when it does not fit the memory pool, 400 for a head it cannot
         * parse) or a chunked body, or the client left first (status 0,
         * client_aborted). */
        ok = take_engine_response(c, req) && engine_response_sent(toe);
    }
    finish_request(e, req, ok);
    conn_set_waiting(c, true);
}

/* Append the formatted text to buf at *len; false when it does not fit. */
static bool append_head(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool append_head(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - *len)
        return false;
    *len += (size_t)n;
    return true;
}

/* Send resp on fd as a whole HTTP/1.1 response that closes the connection,
 * without blocking and without libmicrohttpd's memory pool. The response
 * headers were checked by talon_resp_add_header(), so none can split the
 * head. Returns true when every byte was accepted. */
static bool send_direct(int fd, const talon_req *req)
{
    const talon_resp *resp = &req->resp;
    char head[2048];
    size_t len = 0;
    bool ok = append_head(head, sizeof(head), &len, "HTTP/1.1 %d %s\r\n", resp->status,
                          talon_status_reason(resp->status));
    for (size_t i = 0; ok && i < resp->headers.n; i++) {
        const talon_kv *h = &resp->headers.items[i];
        if (strcasecmp(h->name, "Connection") != 0)
            ok = append_head(head, sizeof(head), &len, "%s: %s\r\n", h->name, h->value);
    }
    if (ok && talon_resp_header(resp, "X-Request-ID") == NULL)
        ok = append_head(head, sizeof(head), &len, "X-Request-ID: %s\r\n", req->id);
    if (ok)
        ok = append_head(head, sizeof(head), &len, "Content-Length: %zu\r\n"
                         "Connection: close\r\n\r\n", resp->body_len);
    if (!ok)
        return false;
    struct iovec iov[2] = { { head, len }, { resp->body, resp->body_len } };
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = resp->body_len > 0 ? 2 : 1 };
    ssize_t sent = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    return sent == (ssize_t)(len + resp->body_len);
}

/* Release a request whose connection closes without the completed
 * callback (see the top of this file), so that it is neither leaked nor
 * counted in flight. A request that never reached the handler got no byte
 * on this path, and the socket is still open: talon sends it 431 itself,
 * since the only such path known is libmicrohttpd running out of its
 * memory pool while parsing the head. Runs in on_connection, which
 * libmicrohttpd calls before it closes the socket. */
static void release_orphan(talon_engine *e, engine_conn *ec)
{
    talon_req *req = ec->req;
    ec->req = NULL;
    bool answered = false;
    if (req->engine_state == STATE_HEAD) {
        complete_head(req);
        talon_resp_error(&req->resp, 431, NULL, "The request head has more header fields, "
                         "cookies or parameters than the server can parse; send fewer.");
        answered = !ec->cut && send_direct(ec->fd, req);
        if (answered)
            req->engine_state = STATE_SENT;
    } else if (req->engine_state == STATE_HELD) {
        held_list_remove(e, req);
        talon_hold_apply_result(req);
    }
    atomic_fetch_add(&e->orphans, 1);
    engine_warn(e, "request %s from %s: libmicrohttpd closed the connection without "
                "completing the request; %s", req->id, req->peer_ip,
                answered ? "answered 431 (head too large to parse)" : "released");
    finish_request(e, req, answered);
}

/* ---- Serving, signals and the drain ---- */

/* Resume every held request with a 503. The resumes happen outside
 * held_lock: MHD_resume_connection() takes libmicrohttpd's lock, which a
 * completed callback waiting for held_lock may hold. */
static size_t abort_held(talon_engine *e)
{
    pthread_mutex_lock(&e->held_lock);
    size_t n = e->nheld;
    talon_req **reqs = calloc(n ? n : 1, sizeof(*reqs));
    size_t count = 0;
    for (talon_req *r = e->held; r != NULL && reqs != NULL; r = r->held_next) {
        talon_req_ref(r);
        reqs[count++] = r;
    }
    pthread_mutex_unlock(&e->held_lock);

    size_t aborted = 0;
    for (size_t i = 0; i < count; i++) {
        aborted += talon_hold_abort(reqs[i]);
        talon_req_unref(reqs[i]);
    }
    free(reqs);
    return aborted;
}

/* Stop accepting, let in-flight requests finish (held ones included), and
 * stop the daemon. Returns false when a held request could not be ended, in
 * which case the daemon is left running: stopping it would abort the process.
 * *cut is the number of requests still in flight when the daemon stopped:
 * their connections were closed without a complete response. */
static bool drain(talon_engine *e, unsigned timeout_s, long *cut)
{
    talon_app *app = e->app;
    /* Only talon's serving thread accepts, and it has returned from
     * wait_for_stop(), so closing the socket cannot race with an accept. */
    close(e->listen_fd);
    e->listen_fd = -1;
    talon_log_info(app->log, "stopping: no longer accepting connections; waiting up to %us "
                   "for %ld in-flight requests", timeout_s, atomic_load(&e->in_flight));

    if (!talon_wait_zero(&e->in_flight, (long)timeout_s * 1000)) {
        size_t aborted = abort_held(e);
        talon_log_error(app->log, "stopping: %ld requests still in flight after %us; %zu "
                        "held requests answered 503", atomic_load(&e->in_flight), timeout_s,
                        aborted);
        talon_wait_zero(&e->in_flight, 5000);
    }
    pthread_mutex_lock(&e->held_lock);
    size_t held = e->nheld;
    pthread_mutex_unlock(&e->held_lock);
    if (held > 0) {
        talon_log_error(app->log, "stopping: %zu requests are still suspended; the HTTP engine "
                        "cannot be stopped safely and is left running", held);
        *cut = atomic_load(&e->in_flight);
        return false;
    }
    *cut = atomic_load(&e->in_flight);
    MHD_stop_daemon(e->daemon);
    e->daemon = NULL;
    return true;
}

static int start_daemon(talon_engine *e, const talon_server_options *opts, unsigned threads,
                        char *err, size_t errlen)
{
    size_t pool = e->pool_size;
    /* talon accepts (accept_connections), so libmicrohttpd gets no listening
     * socket. MHD_ALLOW_SUSPEND_RESUME implies the inter-thread channel that
     * MHD_add_connection() needs to hand a connection to a worker thread. */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET;
    struct MHD_OptionItem ops[16];
    size_t n = 0;
    /* The logger must come first, or libmicrohttpd warns about earlier options. */
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, e };
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, e };
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, e };
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)on_unescape, e };
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)pool, NULL };
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, e };
    /* The hard cap above connection_limit (past which talon sends 503) is
     * applied by serve.c. libmicrohttpd 0.9.75 splits its own
     * limit evenly over the workers and, when a worker reaches its share for
     * a connection from MHD_add_connection(), returns without unlocking a
     * mutex, so every worker deadlocks. Its limit is set where no worker
     * can reach it. */
    unsigned mhd_limit = e->hard_limit <= UINT_MAX / threads ? e->hard_limit * threads : UINT_MAX;
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, mhd_limit, NULL };
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
                                        (intptr_t)opts->connection_timeout_s, NULL };
    /* Stricter request parsing against request smuggling.
     * NOTE: libmicrohttpd 0.9.75 still accepts a space between a header name
     * and its colon, which RFC 9112 says a server must reject. */
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL };
    if (threads > 1)
        ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, threads, NULL };
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

    /* hide_query() depends on the request-line parser of 0.9.7x. */
    e->hide_query = strncmp(MHD_get_version(), "0.9.7", 5) == 0;
    e->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_access, e, MHD_OPTION_ARRAY, ops,
                                 MHD_OPTION_END);
    if (e->daemon == NULL) {
        snprintf(err, errlen, "cannot start the HTTP engine on %s; see the messages of "
                 "libmicrohttpd in the app log", opts->listen);
        return -EIO;
    }
    return 0;
}

/* Hand a connection accepted by talon (serve.c) to libmicrohttpd. Given
 * the listening socket, every worker thread of libmicrohttpd 0.9.75 polls
 * it and accepts in a loop, so one worker often took a whole burst and
 * served it alone while the other idled (16 of 16 connections in
 * tests/e2e/test_worker_balance.py). MHD_add_connection() gives a
 * connection to worker number fd mod threads, so consecutive descriptors
 * alternate between workers. */
static void hand_connection(void *engine, int fd, const struct sockaddr_storage *ss,
                            socklen_t len)
{
    talon_engine *e = engine;
    /* NOTIFY_CLOSED gives the slot back. A connection that a worker
     * fails to start (out of memory) is closed without it, so its slot
     * stays taken: rare, and it only lowers the cap. */
    atomic_fetch_add(&e->handed, 1);
    /* On failure libmicrohttpd closes fd and logs why through on_mhd_log. */
    if (MHD_add_connection(e->daemon, fd, (const struct sockaddr *)ss, len) != MHD_YES)
        atomic_fetch_sub(&e->handed, 1);
}

static void tick(void *engine)
{
    sweep_slow_heads(engine);
}

int talon_engine_mhd_run(const talon_serve *s, char *err, size_t errlen)
{
    talon_app *app = s->app;
    const talon_server_options *opts = s->opts;
    int fd = s->listen_fd;
    int rc;
    talon_engine *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "cannot start serving %s: out of memory", opts->listen);
        close(fd);
        return -ENOMEM;
    }
    e->app = app;
    e->listen_fd = fd;
    e->max_header_size = opts->max_header_size;
    e->pool_size = opts->max_header_size + HEAD_POOL_MARGIN;
    e->connection_limit = opts->connection_limit;
    e->connection_timeout_s = opts->connection_timeout_s;
    pthread_mutex_init(&e->conns_lock, NULL);
    atomic_init(&e->admitted, 0);
    atomic_init(&e->handed, 0);
    e->hard_limit = opts->connection_limit + opts->connection_limit / 8 + 16;
    atomic_init(&e->in_flight, 0);
    pthread_mutex_init(&e->held_lock, NULL);
    e->warn_limit = talon_log_limit_new(app->log, TALON_LOG_WARN, MHD_LOG_PER_SECOND,
                                        "HTTP engine warnings");
    /* One a second: out of descriptors, accepting pauses 10 times a second. */
    e->accept_limit = talon_log_limit_new(app->log, TALON_LOG_WARN, 1, "accept warnings");

    rc = start_daemon(e, opts, s->threads, err, errlen);
    if (rc < 0) {
        close(fd);
        goto out;
    }
    app->engine = e;
    atomic_store(&app->port, talon_bound_port(fd));
    talon_log_info(app->log, "listening on %s (port %u, %u threads, max body %zu bytes, "
                   "max head %zu bytes, engine libmicrohttpd %s)", opts->listen,
                   talon_app_port(app), s->threads, opts->max_body_size, opts->max_header_size,
                   MHD_get_version());
    if (opts->on_ready != NULL)
        opts->on_ready(app, opts->on_ready_ctx);

    talon_acceptor acceptor = {
        .app = app, .listen_fd = fd, .open = &e->handed, .hard_limit = e->hard_limit,
        .connection_limit = e->connection_limit, .limit = e->accept_limit,
        .hand = hand_connection, .engine = e, .tick = tick,
    };
    talon_serve_until_stop(&acceptor);
    long cut = 0;
    bool stopped = drain(e, s->drain_s, &cut);
    app->engine = NULL;
    long orphans = atomic_load(&e->orphans);
    if (orphans > 0)
        talon_log_warn(app->log, "%ld requests were closed by libmicrohttpd without completing "
                       "and were released by talon (see the earlier warnings)", orphans);
    if (stopped && cut == 0)
        talon_log_info(app->log, "stopped: every in-flight request finished");
    else if (stopped)
        talon_log_error(app->log, "stopped: %ld requests were still in flight and their "
                        "connections were closed without a complete response", cut);
    rc = 0;

out:
    if (e->daemon == NULL) {
        pthread_mutex_destroy(&e->held_lock);
        talon_log_limit_free(e->warn_limit);
        talon_log_limit_free(e->accept_limit);
        pthread_mutex_destroy(&e->conns_lock);
        free(e);
    }
    /* NOTE: when the drain gave up, the engine and its threads are leaked
     * on purpose: they still reference the suspended requests. */
    return rc;
}
