/* Requests: construction by the engine, accessors for responders and
 * middleware, per-request context, user and body parsing. */
#include "http/request.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/uri.h"

static const char *const no_roles[] = { NULL };

int64_t talon_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One freed request kept per thread for the next talon_req_create(). A
 * talon_req (about 2.5 KiB) is larger than glibc's per-thread cache serves,
 * so every malloc() of one went to the arena, which first merges its fast
 * bins (malloc_consolidate): about 1% of the server's CPU per GET under
 * load. The key's destructor frees the spare of a thread that exits. */
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static bool spare_ok;

/* GCC defines __SANITIZE_ADDRESS__; clang 14 only has __has_feature. */
#if defined(__SANITIZE_ADDRESS__)
#define REQ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REQ_ASAN 1
#endif
#endif

static void spare_init(void)
{
#ifdef REQ_ASAN
    spare_ok = false; /* so that AddressSanitizer detects a use after free */
#else
    spare_ok = pthread_key_create(&spare_key, free) == 0;
#endif
}

static talon_req *spare_take(void)
{
    pthread_once(&spare_once, spare_init);
    if (!spare_ok)
        return NULL;
    talon_req *req = pthread_getspecific(spare_key);
    if (req != NULL)
        pthread_setspecific(spare_key, NULL);
    return req;
}

/* Keep req as this thread's spare, or free it when the thread has one. */
static void spare_put(talon_req *req)
{
    pthread_once(&spare_once, spare_init);
    if (spare_ok && pthread_getspecific(spare_key) == NULL &&
        pthread_setspecific(spare_key, req) == 0)
        return;
    free(req);
}

talon_req *talon_req_create(talon_app *app)
{
    talon_req *req = spare_take();
    if (req == NULL)
        req = malloc(sizeof(*req));
    if (req == NULL)
        return NULL;
    /* The embedded arena block is large: clear only the fields. */
    memset(req, 0, offsetof(talon_req, arena_first));
    req->app = app;
    pthread_mutex_init(&req->lock, NULL);
    atomic_init(&req->refs, 1);
    talon_arena_init(&req->arena, req->arena_first, sizeof(req->arena_first));
    talon_resp_init(&req->resp, &req->arena);
    req->method = "GET";
    req->target = req->raw_path = req->path = "/";
    req->raw_path_len = 1;
    req->protocol = "HTTP/1.1";
    req->roles = (const char **)no_roles;
    strcpy(req->peer_ip, "-");
    strcpy(req->client_ip, "-");
    req->start_ns = talon_now_ns();
    return req;
}

void talon_req_ref(talon_req *req)
{
    atomic_fetch_add_explicit(&req->refs, 1, memory_order_relaxed);
}

static void req_free(talon_req *req)
{
    /* Changes of a request that never reached its commit point. */
    talon_req_run_commits(req, false);
    /* Free context values in reverse order of setting, as a stack unwinds. */
    talon_req_context *c = req->context;
    while (c != NULL) {
        if (c->free_fn != NULL && c->value != NULL)
            c->free_fn(c->value);
        c = c->next;
    }
    talon_resp_free(&req->resp);
    free(req->body);
    free(req->release_description);
    pthread_mutex_destroy(&req->lock);
    talon_arena_release(&req->arena);
    spare_put(req);
}

void talon_req_unref(talon_req *req)
{
    if (atomic_fetch_sub_explicit(&req->refs, 1, memory_order_acq_rel) == 1)
        req_free(req);
}

int talon_kv_add(talon_arena *arena, talon_kv_list *list, const char *name, size_t name_len,
                 const char *value, size_t value_len)
{
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 16;
        talon_kv *items = talon_arena_alloc(arena, cap * sizeof(*items));
        if (items == NULL)
            return -ENOMEM;
        if (list->n)
            memcpy(items, list->items, list->n * sizeof(*items));
        list->items = items;
        list->cap = cap;
    }
    const char *n = talon_arena_strndup(arena, name, name_len);
    const char *v = talon_arena_strndup(arena, value, value_len);
    if (n == NULL || v == NULL)
        return -ENOMEM;
    list->items[list->n].name = n;
    list->items[list->n].value = v;
    list->n++;
    return 0;
}

const char *talon_kv_find_case(const talon_kv_list *list, const char *name)
{
    for (size_t i = 0; i < list->n; i++) {
        if (strcasecmp(list->items[i].name, name) == 0)
            return list->items[i].value;
    }
    return NULL;
}

bool talon_kv_at(const talon_kv_list *list, size_t i, const char **name, const char **value)
{
    if (i >= list->n)
        return false;
    *name = list->items[i].name;
    *value = list->items[i].value;
    return true;
}

static void set_bad_request(talon_req *req, const char *description)
{
    if (req->bad_request == 0) {
        req->bad_request = 400;
        req->bad_request_description = description;
    }
}

/* Split "a=1&b=%20&a=2" into decoded pairs. Empty pairs ("a=1&&b") are
 * skipped; a key without '=' gets the empty value. */
static int parse_query(talon_req *req, const char *q, size_t len)
{
    const char *p = q;
    const char *end = q + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        if (pair_end > p) {
            const char *eq = memchr(p, '=', (size_t)(pair_end - p));
            const char *key_end = eq ? eq : pair_end;
            const char *val = eq ? eq + 1 : pair_end;
            bool nul = false;
            char *k = talon_uri_decode_dup(&req->arena, p, (size_t)(key_end - p), true, &nul);
            char *v = talon_uri_decode_dup(&req->arena, val, (size_t)(pair_end - val), true, &nul);
            if (k == NULL || v == NULL)
                return -ENOMEM;
            if (nul)
                set_bad_request(req, "The query string contains a percent-encoded NUL byte "
                                "(%00), which is not allowed.");
            int rc = talon_kv_add(&req->arena, &req->query, k, strlen(k), v, strlen(v));
            if (rc < 0)
                return rc;
        }
        p = pair_end + 1;
    }
    return 0;
}

int talon_req_set_line(talon_req *req, const char *method, const char *target,
                       const char *protocol)
{
    req->method = talon_arena_strdup(&req->arena, method);
    req->target = talon_arena_strdup(&req->arena, target);
    req->protocol = talon_arena_strdup(&req->arena, protocol ? protocol : "HTTP/1.1");
    if (req->method == NULL || req->target == NULL || req->protocol == NULL)
        return -ENOMEM;

    /* "OPTIONS *" and absolute-form targets have no origin path. */
    const char *t = req->target;
    if (t[0] != '/') {
        const char *scheme = strstr(t, "://");
        if (scheme != NULL && strchr(t, '/') == scheme + 1) {
            const char *slash = strchr(scheme + 3, '/');
            t = slash ? slash : "/";
        } else if (strcmp(t, "*") == 0) {
            if (strcmp(method, "OPTIONS") != 0)
                set_bad_request(req, "The request target '*' is only allowed with OPTIONS "
                                "(RFC 9112, section 3.2.4).");
        } else {
            set_bad_request(req, "The request target must start with '/'.");
        }
    }
    /* A fragment is never part of a request target (RFC 9112, section
     * 3.2), and the query parser and the access log's redactor would split
     * "/x#a?secret=v" differently, so a secret could reach the log. */
    if (strchr(req->target, '#') != NULL)
        set_bad_request(req, "The request target contains '#', which is not allowed: a "
                        "fragment is not sent to the server; percent-encode a literal '#' as %23.");
    const char *q = strchr(t, '?');
    size_t path_len = q ? (size_t)(q - t) : strlen(t);
    const char *frag = memchr(t, '#', path_len);
    if (frag != NULL)
        path_len = (size_t)(frag - t);
    req->raw_path = t;
    req->raw_path_len = path_len;
    bool nul = false;
    req->path = talon_uri_decode_dup(&req->arena, t, path_len, false, &nul);
    if (req->path == NULL)
        return -ENOMEM;
    if (nul)
        set_bad_request(req, "The path contains a percent-encoded NUL byte (%00), which is "
                        "not allowed.");
    if (q != NULL) {
        const char *qend = strchr(q + 1, '#');
        size_t qlen = qend ? (size_t)(qend - q - 1) : strlen(q + 1);
        return parse_query(req, q + 1, qlen);
    }
    return 0;
}

int talon_req_add_header(talon_req *req, const char *name, const char *value)
{
    return talon_kv_add(&req->arena, &req->headers, name, strlen(name), value, strlen(value));
}

void talon_sockaddr_format(const struct sockaddr *sa, char out[TALON_IP_MAX])
{
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, TALON_IP_MAX);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        /* Show IPv4 clients of a dual-stack socket as plain IPv4. */
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], out, TALON_IP_MAX);
        else
            inet_ntop(AF_INET6, a, out, TALON_IP_MAX);
    } else if (sa->sa_family == AF_UNIX) {
        strcpy(out, "unix");
    }
}

void talon_req_set_peer(talon_req *req, const struct sockaddr *sa)
{
    talon_sockaddr_format(sa, req->peer_ip);
}

void talon_req_set_peer_ip(talon_req *req, const char *ip)
{
    size_t len = strnlen(ip, sizeof(req->peer_ip) - 1);
    memcpy(req->peer_ip, ip, len);
    req->peer_ip[len] = '\0';
}

int talon_req_append_body(talon_req *req, const char *data, size_t len)
{
    size_t max = req->app->max_body_size;
    if (len > max || req->body_len > max - len)
        return -EFBIG;
    if (req->body_len + len + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 1024;
        while (cap < req->body_len + len + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *b = realloc(req->body, cap);
        if (b == NULL)
            return -ENOMEM;
        req->body = b;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return 0;
}

void talon_req_prepare(talon_req *req)
{
    /* Without trusted proxies the client is the peer. The copy skips the
     * snprintf() of talon_proxies_client_ip(), about 1% of the server's CPU
     * per GET under load. */
    if (req->app->proxies == NULL)
        memcpy(req->client_ip, req->peer_ip, sizeof(req->client_ip));
    else
        talon_proxies_client_ip(req->app->proxies, req, req->client_ip);
    talon_request_id_init(req->id, talon_req_header(req, "X-Request-ID"));
    const char *tp = talon_req_header(req, "traceparent");
    if (tp == NULL || !talon_traceparent_parse(tp, req->trace_id, req->parent_id)) {
        req->trace_id[0] = '\0';
        req->parent_id[0] = '\0';
    }
}

/* ---- Accessors ---- */

const char *talon_req_method(const talon_req *req) { return req->method; }
const char *talon_req_path(const talon_req *req) { return req->path; }
const char *talon_req_target(const talon_req *req) { return req->target; }
const char *talon_req_protocol(const talon_req *req) { return req->protocol; }
const char *talon_req_route(const talon_req *req) { return req->route; }
const char *talon_req_client_ip(const talon_req *req) { return req->client_ip; }
const char *talon_req_peer_ip(const talon_req *req) { return req->peer_ip; }
const char *talon_req_id(const talon_req *req) { return req->id; }
talon_app *talon_req_app(const talon_req *req) { return req->app; }

const char *talon_req_trace_id(const talon_req *req)
{
    return req->trace_id[0] ? req->trace_id : NULL;
}

const char *talon_req_parent_span_id(const talon_req *req)
{
    return req->parent_id[0] ? req->parent_id : NULL;
}

const char *talon_req_param(const talon_req *req, const char *name)
{
    for (size_t i = 0; i < req->params.n; i++) {
        if (strcmp(req->params.items[i].name, name) == 0)
            return req->params.items[i].value;
    }
    return NULL;
}

bool talon_req_param_int(const talon_req *req, const char *name, int64_t *out)
{
    const char *v = talon_req_param(req, name);
    if (v == NULL || *v == '\0')
        return false;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || v[0] == ' ' || v[0] == '+')
        return false;
    *out = x;
    return true;
}

const char *talon_req_query_at(const talon_req *req, const char *key, size_t i)
{
    for (size_t k = 0; k < req->query.n; k++) {
        if (strcmp(req->query.items[k].name, key) == 0 && i-- == 0)
            return req->query.items[k].value;
    }
    return NULL;
}

const char *talon_req_query(const talon_req *req, const char *key)
{
    return talon_req_query_at(req, key, 0);
}

const char *talon_req_header(const talon_req *req, const char *name)
{
    return talon_kv_find_case(&req->headers, name);
}

size_t talon_req_header_count(const talon_req *req)
{
    return req->headers.n;
}

bool talon_req_query_param_at(const talon_req *req, size_t i, const char **key,
                              const char **value)
{
    return talon_kv_at(&req->query, i, key, value);
}

bool talon_req_header_at(const talon_req *req, size_t i, const char **name, const char **value)
{
    return talon_kv_at(&req->headers, i, name, value);
}

const char *talon_req_body(const talon_req *req, size_t *len)
{
    if (len != NULL)
        *len = req->body_len;
    return req->body_len ? req->body : NULL;
}

int64_t talon_req_start_ns(const talon_req *req)
{
    return req->start_ns;
}

/* ---- Context ---- */

int talon_req_context_set(talon_req *req, const char *key, void *value, void (*free_fn)(void *))
{
    for (talon_req_context *c = req->context; c != NULL; c = c->next) {
        if (strcmp(c->key, key) == 0) {
            if (c->free_fn != NULL && c->value != NULL && c->value != value)
                c->free_fn(c->value);
            c->value = value;
            c->free_fn = free_fn;
            return 0;
        }
    }
    talon_req_context *c = talon_arena_alloc(&req->arena, sizeof(*c));
    const char *k = talon_arena_strdup(&req->arena, key);
    if (c == NULL || k == NULL)
        return -ENOMEM;
    c->key = k;
    c->value = value;
    c->free_fn = free_fn;
    c->next = req->context;
    req->context = c;
    return 0;
}

void *talon_req_context_get(const talon_req *req, const char *key)
{
    for (const talon_req_context *c = req->context; c != NULL; c = c->next) {
        if (strcmp(c->key, key) == 0)
            return c->value;
    }
    return NULL;
}

/* ---- User ---- */

void talon_req_set_user(talon_req *req, const char *user_id, const char *const *roles)
{
    if (user_id == NULL) {
        req->user = NULL;
        req->roles = (const char **)no_roles;
        return;
    }
    req->user = talon_arena_strdup(&req->arena, user_id);
    size_t n = 0;
    while (roles != NULL && roles[n] != NULL)
        n++;
    const char **copy = talon_arena_alloc(&req->arena, (n + 1) * sizeof(*copy));
    if (req->user == NULL || copy == NULL) {
        req->user = NULL;
        req->roles = (const char **)no_roles;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        copy[i] = talon_arena_strdup(&req->arena, roles[i]);
        if (copy[i] == NULL) {
            n = i;
            break;
        }
    }
    copy[n] = NULL;
    req->roles = copy;
}

const char *talon_req_user(const talon_req *req) { return req->user; }
const char *const *talon_req_roles(const talon_req *req) { return req->roles; }

bool talon_req_has_role(const talon_req *req, const char *role)
{
    for (const char *const *r = req->roles; *r != NULL; r++) {
        if (strcmp(*r, role) == 0)
            return true;
    }
    return false;
}

/* ---- JSON body ---- */

/* True for "application/json" with optional parameters, any case. */
static bool is_json_media_type(const char *ct)
{
    static const char json[] = "application/json";
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, json, sizeof(json) - 1) != 0)
        return false;
    char next = ct[sizeof(json) - 1];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

json_t *talon_req_json(talon_req *req, talon_resp *resp)
{
    return talon_req_json_flags(req, resp, 0);
}

json_t *talon_req_json_flags(talon_req *req, talon_resp *resp, size_t flags)
{
    const char *ct = talon_req_header(req, "Content-Type");
    if (ct == NULL || !is_json_media_type(ct)) {
        char desc[256];
        if (ct == NULL)
            snprintf(desc, sizeof(desc), "The request has no Content-Type; send the body as "
                     "application/json.");
        else
            snprintf(desc, sizeof(desc), "%.120s is an unsupported media type; send the body "
                     "as application/json.", ct);
        talon_resp_error(resp, 415, NULL, desc);
        return NULL;
    }
    if (req->body_len == 0) {
        talon_resp_error(resp, 400, "Invalid JSON", "Could not parse JSON body - the body "
                         "is empty.");
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(req->body, req->body_len,
                             JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | flags, &jerr);
    if (doc == NULL) {
        char desc[256 + JSON_ERROR_TEXT_LENGTH];
        /* jansson names its own flag; a client needs the rule instead. */
        const char *why = json_error_code(&jerr) == json_error_null_character
                              ? "a string contains \\u0000 (NUL), which is not accepted"
                              : jerr.text;
        snprintf(desc, sizeof(desc), "Could not parse JSON body - line %d, column %d: %s",
                 jerr.line, jerr.column, why);
        talon_resp_error(resp, 400, "Invalid JSON", desc);
        return NULL;
    }
    return doc;
}
