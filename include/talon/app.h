/* talon framework: an app, resources with per-method responders, URI
 * templates, middleware, requests and responses, in the shape of Python's
 * Falcon. The HTTP engines (talon's own, or GNU libmicrohttpd) stay behind
 * src/http/engine.h.
 */
#ifndef TALON_APP_H
#define TALON_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct talon_app talon_app;
typedef struct talon_req talon_req;
typedef struct talon_resp talon_resp;

/* A responder handles one method of one resource. ctx is the resource's ctx. */
typedef void (*talon_responder)(talon_req *req, talon_resp *resp, void *ctx);

/* A resource: one responder per method; NULL means "not allowed" (405).
 * HEAD runs on_get and the body is not sent. OPTIONS gets 200 with Allow. */
typedef struct talon_resource {
    const char *name; /* for logs and audit targets, e.g. "note"; may be NULL */
    talon_responder on_get;
    talon_responder on_post;
    talon_responder on_put;
    talon_responder on_patch;
    talon_responder on_delete;
    void *ctx;
} talon_resource;

/* Middleware with optional hooks, as in Falcon. process_request runs before
 * routing and may short-circuit by setting a status on resp: the remaining
 * process_request hooks, routing, process_resource and the responder are
 * skipped. process_resource runs after routing, only when a route matched
 * (405 and OPTIONS included); setting a status there skips the responder.
 * process_response always runs, for every middleware, in reverse
 * registration order, even after a short-circuit, 404 or 405.
 * req_succeeded is false when the response came from talon_resp_error() --
 * called by the framework (400, 404, 405, 413, 414, 415, 431, 501, 503,
 * 505) or by a hook or responder, as raising falcon.HTTPError does -- or
 * its status is >= 500. */
typedef struct talon_middleware {
    void (*process_request)(talon_req *req, talon_resp *resp, void *ctx);
    void (*process_resource)(talon_req *req, talon_resp *resp,
                             const talon_resource *resource, void *ctx);
    void (*process_response)(talon_req *req, talon_resp *resp,
                             const talon_resource *resource, bool req_succeeded, void *ctx);
    void *ctx;
} talon_middleware;

/* Facts about a finished response (sent or aborted), from the engine. */
typedef struct talon_completion {
    uint64_t bytes_sent;     /* body bytes sent to the client */
    int64_t duration_ns;     /* from the parsed request line to completion */
    bool client_aborted;     /* the connection ended before the response was sent */
} talon_completion;

/* Called once per request after the response is complete, on an engine
 * thread. The request is still readable; it is freed after the call. */
typedef void (*talon_completion_fn)(const talon_req *req, const talon_resp *resp,
                                    const talon_completion *done, void *ctx);

typedef struct talon_server_options {
    const char *listen;          /* "127.0.0.1:8080", "[::1]:8080", ":8080" */
    unsigned threads;            /* 0: number of cores */
    unsigned connection_timeout_s;  /* default 30 */
    unsigned connection_limit;      /* default 10000 */
    size_t max_header_size;      /* whole request head; default 16 KiB */
    size_t max_body_size;        /* default 1 MiB; larger gives 413 */
    const char *trusted_proxies; /* comma-separated addresses/CIDRs trusted for X-Forwarded-For */
    unsigned drain_timeout_s;    /* wait for in-flight requests on stop; default 30 */
    /* "native" (talon's own HTTP/1.1 engine, the default) or "libmicrohttpd".
     * NULL: the TALON_ENGINE environment variable, else native. */
    const char *engine;
    /* Called once on the serving thread when the server listens
     * (talon_app_port() is valid from then on); may be NULL. */
    void (*on_ready)(talon_app *app, void *ctx);
    void *on_ready_ctx;
} talon_server_options;

/* Ranges that talon_server_options_check() enforces. */
#define TALON_THREADS_MAX 1024
#define TALON_CONNECTION_LIMIT_MAX 1000000
#define TALON_MAX_HEADER_SIZE_MIN 1024
#define TALON_MAX_HEADER_SIZE_MAX (1024 * 1024)

void talon_server_options_init(talon_server_options *opts);
/* Check opts as talon_app_serve() will, without binding, so that a program
 * can reject them before it opens files such as an audit trail. field names
 * one talon_server_options field to check alone ("max_header_size"), for a
 * configuration parser that reports the line of each value; NULL checks
 * every field. An unset engine is checked against TALON_ENGINE. Returns 0,
 * or a negative errno (-EINVAL, -ENOMEM) with err naming the field, the
 * value and the accepted range. */
int talon_server_options_check(const talon_server_options *opts, const char *field, char *err,
                               size_t errlen);
/* Check a listen address ("127.0.0.1:8080") as talon_app_serve() will read
 * it, without binding, so that a program can reject it before it opens
 * files such as an audit trail. Returns 0 or -EINVAL with err set. */
int talon_listen_check(const char *spec, char *err, size_t errlen);

talon_app *talon_app_new(void);
/* Free the app and everything it owns. Only after talon_app_serve() returned. */
void talon_app_free(talon_app *app);

/* Routes, middleware and callbacks are added before talon_app_serve(): the
 * app is not locked while serving.
 * Add a route. Templates: "/notes", "/notes/{id}", "/notes/{id:int}",
 * "/users/{user_id}/notes/{note_id:int}". The resource is copied. Returns 0,
 * or -EINVAL with err naming the template (syntax) or both templates (conflict),
 * or saying that a NULL template or resource was passed. */
int talon_app_add_route(talon_app *app, const char *uri_template,
                        const talon_resource *resource, char *err, size_t errlen);
/* Add middleware (copied); hooks run in the order added (responses in
 * reverse). Returns 0, -EINVAL when mw is NULL, or -ENOMEM. */
int talon_app_add_middleware(talon_app *app, const talon_middleware *mw);
/* Register a completion callback (access log, metrics). Several allowed.
 * Returns 0, -EINVAL when fn is NULL, or -ENOMEM. */
int talon_app_on_complete(talon_app *app, talon_completion_fn fn, void *ctx);

/* Serve until SIGINT or SIGTERM, then stop accepting, finish in-flight
 * requests, and return 0; or a negative errno when the server cannot start
 * (err set, naming the address). */
int talon_app_serve(talon_app *app, const talon_server_options *opts, char *err, size_t errlen);
/* Ask a running talon_app_serve() to stop, as SIGTERM does. Thread-safe. */
void talon_app_stop(talon_app *app);
/* True once a stop was requested: the server drains. Middleware that starts
 * long work (a held response) may respond with 503 instead. */
bool talon_app_stopping(const talon_app *app);
/* A request for "/notes/" matches the route "/notes" when strip is true.
 * Default false, as Falcon's strip_url_path_trailing_slash. */
void talon_app_set_strip_trailing_slash(talon_app *app, bool strip);
/* The port actually bound (useful with port 0). 0 before serving. */
unsigned talon_app_port(const talon_app *app);

/* ---- Request ---- */
const char *talon_req_method(const talon_req *req);       /* "GET" */
const char *talon_req_path(const talon_req *req);         /* percent-decoded path */
const char *talon_req_target(const talon_req *req);       /* raw request target as sent */
const char *talon_req_protocol(const talon_req *req);     /* "HTTP/1.1" */
const char *talon_req_route(const talon_req *req);        /* matched template or NULL */
/* URI template field ("id" of "/notes/{id:int}"), or NULL. */
const char *talon_req_param(const talon_req *req, const char *name);
/* Integer field; returns false if absent or not an integer. */
bool talon_req_param_int(const talon_req *req, const char *name, int64_t *out);
/* First query value for key (decoded), or NULL. */
const char *talon_req_query(const talon_req *req, const char *key);
/* The i-th value of a repeated key, or NULL past the last one. */
const char *talon_req_query_at(const talon_req *req, const char *key, size_t i);
/* The i-th query parameter in arrival order, repeated keys included;
 * false past the last one. Use it to reject unknown parameters. */
bool talon_req_query_param_at(const talon_req *req, size_t i, const char **key,
                              const char **value);
/* Header value (case-insensitive name), or NULL. */
const char *talon_req_header(const talon_req *req, const char *name);
/* Every header in arrival order, repeated names included. */
size_t talon_req_header_count(const talon_req *req);
bool talon_req_header_at(const talon_req *req, size_t i, const char **name, const char **value);
/* Client address after trusted-proxy processing, and the peer address. */
const char *talon_req_client_ip(const talon_req *req);
const char *talon_req_peer_ip(const talon_req *req);
/* Body bytes (NUL-terminated copy) and their length; NULL when empty. */
const char *talon_req_body(const talon_req *req, size_t *len);
/* Parse the body as JSON (Content-Type must be application/json). On
 * failure sets a 400/415 error on resp with a clear description and returns
 * NULL. The caller owns the returned reference. */
json_t *talon_req_json(talon_req *req, talon_resp *resp);
/* talon_req_json() with extra jansson decoding flags, for example
 * JSON_ALLOW_NUL from a responder that checks its strings for NUL itself
 * and names the field in its error. */
json_t *talon_req_json_flags(talon_req *req, talon_resp *resp, size_t flags);
/* The request id: the client's X-Request-ID if short and printable, else a
 * random 128-bit hex id. Echoed as X-Request-ID. */
const char *talon_req_id(const talon_req *req);
/* W3C trace id from a valid traceparent header, or NULL. */
const char *talon_req_trace_id(const talon_req *req);
/* The parent (span) id of that traceparent, 16 hex digits, or NULL. */
const char *talon_req_parent_span_id(const talon_req *req);

/* Per-request context (Falcon's req.context). free_fn may be NULL. */
int talon_req_context_set(talon_req *req, const char *key, void *value, void (*free_fn)(void *));
void *talon_req_context_get(const talon_req *req, const char *key);

/* The authenticated user, set by an auth middleware; read by the access log
 * and the audit trail. roles is a NULL-terminated array; both are copied. */
void talon_req_set_user(talon_req *req, const char *user_id, const char *const *roles);
const char *talon_req_user(const talon_req *req);             /* NULL if anonymous */
const char *const *talon_req_roles(const talon_req *req);     /* never NULL */
bool talon_req_has_role(const talon_req *req, const char *role);

/* Hold the response until every hold is released: the engine suspends the
 * connection once the pipeline has finished and sends the response on the
 * last release. The request stays valid until its last release, even if the
 * client disconnects. Only call from a responder or middleware hook. */
void talon_req_hold(talon_req *req);
/* Release one hold; safe from any thread. A non-zero status replaces the
 * response with talon_resp_error(status, NULL, description). */
void talon_req_release(talon_req *req, int status, const char *description);

/* The app a request belongs to, and app-wide user data (set before serving). */
talon_app *talon_req_app(const talon_req *req);
void talon_app_set_userdata(talon_app *app, const char *key, void *value);
void *talon_app_userdata(const talon_app *app, const char *key);

/* ---- Response ---- */
void talon_resp_set_status(talon_resp *resp, int status);
/* The status; 0 until one is set. A responder that sets none sends 200.
 * In a completion callback, 0 means the request ended before a response. */
int talon_resp_status(const talon_resp *resp);
/* Set (replace) a header. Returns -EINVAL and sets nothing for a NULL name
 * or value and for a name that is not an HTTP token. The same holds for a
 * value with a control character other than HTAB (CR, LF, ESC and DEL
 * included), which RFC 9110 section 5.5 does not allow. Content-Length and
 * Transfer-Encoding are rejected too, because the engine frames the body
 * itself. talon_resp_add_header() makes the same checks. */
int talon_resp_set_header(talon_resp *resp, const char *name, const char *value);
int talon_resp_add_header(talon_resp *resp, const char *name, const char *value);
const char *talon_resp_header(const talon_resp *resp, const char *name);
/* Every response header in the order set. */
size_t talon_resp_header_count(const talon_resp *resp);
bool talon_resp_header_at(const talon_resp *resp, size_t i, const char **name,
                          const char **value);
/* Set the body (copied). */
void talon_resp_set_body(talon_resp *resp, const void *data, size_t len);
const char *talon_resp_body(const talon_resp *resp, size_t *len);
/* Send a JSON value (the response steals the reference) with status and
 * Content-Type: application/json. A NULL value, as a failed json_pack()
 * returns, sends a 500 error instead. */
void talon_resp_json(talon_resp *resp, int status, json_t *value);
/* Falcon-style HTTP error: {"title": "...", "description": "..."}; title is
 * the status reason phrase when NULL. description may be NULL. Each byte of
 * invalid UTF-8 in either becomes U+FFFD. */
void talon_resp_error(talon_resp *resp, int status, const char *title, const char *description);
/* True once a status was set (process_request uses it to short-circuit). */
bool talon_resp_is_set(const talon_resp *resp);

/* Reason phrase of a status code ("Not Found"). */
const char *talon_status_reason(int status);

#ifdef __cplusplus
}
#endif
#endif
