/* Internal layout of talon_app, talon_req and talon_resp, and the functions
 * the engine and the pipeline use to build a request. Not a public API. */
#ifndef TALON_HTTP_REQUEST_H
#define TALON_HTTP_REQUEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "talon/app.h"
#include "talon/log.h"
#include "http/arena.h"
#include "http/router.h"

/* A name/value pair of a header, query or route field list. */
typedef struct talon_kv {
    const char *name;
    const char *value;
} talon_kv;

typedef struct talon_kv_list {
    talon_kv *items;
    size_t n;
    size_t cap;
} talon_kv_list;

typedef struct talon_proxies talon_proxies;
typedef struct talon_engine talon_engine;

typedef struct talon_userdata {
    char *key;
    void *value;
    struct talon_userdata *next;
} talon_userdata;

typedef struct talon_completion_hook {
    talon_completion_fn fn;
    void *ctx;
} talon_completion_hook;

struct talon_app {
    talon_router *router;
    talon_middleware *middleware;
    size_t nmiddleware;
    talon_completion_hook *completions;
    size_t ncompletions;
    talon_userdata *userdata;
    bool strip_trailing_slash;
    size_t max_body_size;      /* copied from the server options at serve */
    talon_proxies *proxies;    /* parsed trusted_proxies; NULL: trust no peer */
    talon_logger *log;         /* the "app" logger */
    void *engine;              /* the running engine (engine.h), set while serving */
    atomic_bool stopping;      /* a stop was requested: drain and return */
    atomic_uint port;
    int stop_pipe[2];          /* written by signal handlers and talon_app_stop */
};

struct talon_resp {
    int status;                /* 0 until set */
    bool error;                /* talon_resp_error() produced this response */
    talon_kv_list headers;
    char *body;                /* malloc'd, NUL-terminated */
    size_t body_len;
    talon_arena *arena;        /* the owning request's arena */
};

typedef struct talon_req_context {
    const char *key;
    void *value;
    void (*free_fn)(void *);
    struct talon_req_context *next;
} talon_req_context;

/* Called by the hold protocol with the request lock held. */
typedef void (*talon_conn_fn)(void *conn);

/* A change waiting for its request to commit (hold.c). */
typedef void (*talon_commit_fn)(talon_req *req, talon_resp *resp, void *ctx);
typedef struct talon_commit {
    talon_commit_fn on_commit;
    talon_commit_fn on_abort;
    void *ctx;
    struct talon_commit *next;
} talon_commit;

#define TALON_IP_MAX 46 /* INET6_ADDRSTRLEN */
#define TALON_REQ_ID_MAX 64

struct talon_req {
    talon_app *app;

    /* Hold protocol (hold.c). holds, suspended and pipeline_done are
     * guarded by lock; refs counts the engine's reference plus one per hold. */
    pthread_mutex_t lock;
    atomic_uint refs;
    unsigned holds;
    bool pipeline_done;
    bool suspended;
    bool aborted;                 /* the drain gave up waiting for the holds */
    int release_status;           /* first non-zero release status */
    char *release_description;    /* malloc'd: releases come from any thread */
    void *conn;                   /* engine connection while suspended */
    talon_conn_fn suspend_fn;
    talon_conn_fn resume_fn;
    /* Changes applied when the request commits, in registration order.
     * Added during the pipeline, run after it: no lock needed. */
    talon_commit *commits;
    talon_commit **commits_tail;

    /* Request line and head. */
    const char *method;
    const char *target;           /* raw request target */
    const char *raw_path;         /* target up to '?', still encoded */
    size_t raw_path_len;
    const char *path;             /* percent-decoded */
    const char *protocol;
    const char *route;            /* matched template */
    const talon_resource *resource;
    const char *allow;            /* Allow header of the matched route */
    talon_kv_list headers;
    talon_kv_list query;
    talon_kv_list params;
    int bad_request;              /* 400 found while parsing the target */
    const char *bad_request_description;
    char peer_ip[TALON_IP_MAX];
    char client_ip[TALON_IP_MAX];
    char id[TALON_REQ_ID_MAX + 1];
    char trace_id[33];
    char parent_id[17];

    /* Body, malloc'd and bounded by app->max_body_size. */
    char *body;
    size_t body_len;
    size_t body_cap;

    talon_req_context *context;
    const char *user;
    const char **roles;
    int64_t start_ns;             /* CLOCK_MONOTONIC */

    /* Engine state (engine.c). */
    int engine_state;
    bool engine_response;         /* the engine sent its own error response: no middleware or responder ran */
    bool body_too_large;
    uint64_t body_discarded;
    struct talon_req *held_prev;  /* list of suspended requests, engine lock */
    struct talon_req *held_next;

    talon_resp resp;
    talon_arena arena;
    max_align_t arena_first[2048 / sizeof(max_align_t)];
};

/* ---- request.c ---- */
/* Allocate a request with one reference (the engine's). NULL on ENOMEM. */
talon_req *talon_req_create(talon_app *app);
void talon_req_ref(talon_req *req);
/* Drop a reference; the last one frees the request and its context. */
void talon_req_unref(talon_req *req);
/* Set the request line; splits the raw target into path and query and
 * decodes both. Returns 0 or -ENOMEM. A malformed target sets bad_request. */
int talon_req_set_line(talon_req *req, const char *method, const char *target,
                       const char *protocol);
int talon_req_add_header(talon_req *req, const char *name, const char *value);
/* Format the IP address of sa as the access log shows it: IPv4-mapped IPv6
 * addresses as plain IPv4, "unix" for a Unix socket. Leaves out unchanged
 * when sa is NULL or of another family. */
void talon_sockaddr_format(const struct sockaddr *sa, char out[TALON_IP_MAX]);
/* Set the peer from a socket address (NULL: "-"). */
void talon_req_set_peer(talon_req *req, const struct sockaddr *sa);
/* Set the peer from an address formatted by talon_sockaddr_format(),
 * truncated to TALON_IP_MAX - 1 bytes. */
void talon_req_set_peer_ip(talon_req *req, const char *ip);
/* Append body bytes. Returns 0, or -EFBIG past app->max_body_size. */
int talon_req_append_body(talon_req *req, const char *data, size_t len);
/* Compute client ip, request id and trace id once the head is complete. */
void talon_req_prepare(talon_req *req);
int talon_kv_add(talon_arena *arena, talon_kv_list *list, const char *name, size_t name_len,
                 const char *value, size_t value_len);
/* The value of the first item whose name matches case-insensitively, as
 * header names do; NULL when there is none. */
const char *talon_kv_find_case(const talon_kv_list *list, const char *name);
/* Set *name and *value to item i; false when i is past the end. */
bool talon_kv_at(const talon_kv_list *list, size_t i, const char **name, const char **value);
int64_t talon_now_ns(void);

/* ---- request_id.c ---- */
/* Keep a client's X-Request-ID when it is 1..64 printable ASCII characters
 * without space, quotes or backslash; else generate 32 random hex digits. */
void talon_request_id_init(char out[TALON_REQ_ID_MAX + 1], const char *incoming);
/* Parse a W3C traceparent (version 00). Returns true and fills both ids. */
bool talon_traceparent_parse(const char *value, char trace_id[33], char parent_id[17]);

/* ---- proxy.c ---- */
/* Parse "10.0.0.0/8, 127.0.0.1, ::1". Returns 0 or -EINVAL naming the entry. */
int talon_proxies_parse(const char *spec, talon_proxies **out, char *err, size_t errlen);
void talon_proxies_free(talon_proxies *proxies);
/* The client address: the peer unless it is trusted, else the rightmost
 * untrusted address of X-Forwarded-For. */
void talon_proxies_client_ip(const talon_proxies *proxies, const talon_req *req,
                             char out[TALON_IP_MAX]);

/* ---- hold.c ---- */
/* Run by the engine after the pipeline. With holds pending, calls
 * suspend_fn(conn) under the request lock and returns true: the engine
 * waits for resume_fn. Returns false when the response can go now. */
bool talon_hold_pipeline_done(talon_req *req, void *conn, talon_conn_fn suspend_fn,
                              talon_conn_fn resume_fn);
/* Resume a suspended request whose holders did not release in time; the
 * response becomes a 503. Returns true when the request was suspended. */
bool talon_hold_abort(talon_req *req);
/* True when talon_hold_abort() gave up waiting for req's holds. */
bool talon_hold_aborted(talon_req *req);
/* Apply a release status (talon_req_release with status != 0) or an abort
 * to the response. Only after the last hold was released. */
void talon_hold_apply_result(talon_req *req);
/* Register a change to apply when req commits: once the pipeline is done,
 * every hold is released without an error status, and the response is not
 * a server error (5xx). on_commit then runs from talon_hold_apply_result(),
 * before the response is sent; otherwise on_abort runs (either may be NULL).
 * Exactly one of them runs, at the latest when the request is freed.
 * Only from the pipeline of req. Returns 0 or -ENOMEM (nothing registered). */
int talon_req_add_commit(talon_req *req, talon_commit_fn on_commit, talon_commit_fn on_abort,
                         void *ctx);
/* Run every registered change: on_commit when committed, else on_abort. */
void talon_req_run_commits(talon_req *req, bool committed);

/* The number of holds not yet released (tests and the engine). */
unsigned talon_req_holds(const talon_req *req);

/* ---- app.c ---- */
/* Run every completion callback; the engine calls this once per request. */
void talon_app_run_completions(talon_app *app, const talon_req *req,
                               const talon_completion *done);

/* ---- listen.c ---- */
/* Open a listening TCP socket for "127.0.0.1:8080", "[::1]:8080", ":8080"
 * (all IPv4 addresses) or "localhost:8080". Returns the socket, or a
 * negative errno with err naming the address. */
int talon_listen_open(const char *spec, char *err, size_t errlen);

/* ---- response.c ---- */
void talon_resp_init(talon_resp *resp, talon_arena *arena);
void talon_resp_free(talon_resp *resp);

#endif
