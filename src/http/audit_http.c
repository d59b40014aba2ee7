/* Audit trail, framework side: talon_audit() from responders, the audit
 * middleware that applies the policy, and the failure policy on the HTTP
 * side (503 under fail_closed, counted under fail_open).
 *
 * Sync records hold the response (talon_req_hold) before the record is
 * handed to the writer, and the writer's completion callback releases it:
 * resume-before-suspend would lose the hold, so the order matters. The
 * completion callback runs on the writer thread and only touches the held
 * request through talon_req_release(), which is thread-safe. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "talon/audit_http.h"
#include "talon/log.h"
#include "http/audit_policy.h"
#include "http/request.h"
#include "http/uri.h"

#define AUDIT_USERDATA_KEY "talon.audit"
#define AUDIT_CONTEXT_KEY "talon.audit"

#define UNAVAILABLE_DESCRIPTION \
    "The audit trail cannot record this request, so it was not completed or acknowledged. " \
    "Try again later."

/* App-wide state, stored as app userdata. */
typedef struct audit_state {
    talon_audit_trail *trail;
    talon_audit_policy *policy;
    talon_audit_policy *owned_policy; /* made here when the caller passed none */
    talon_logger *log;
    atomic_ullong records;
    atomic_ullong held;
    atomic_ullong rejected;
    atomic_ullong lost;
    talon_log_limit *error_limit;    /* log_failure(): one line a second; NULL: none */
} audit_state;

/* Per-request state, stored in the request context. */
typedef struct audit_req_state {
    bool matched;                 /* level and mode are set */
    talon_audit_level level;
    talon_audit_mode mode;
    const char *resource_name;    /* the routed resource's name, or NULL */
    bool failed;                  /* a record was rejected under fail_closed */
    bool response_pass_done;      /* the middleware's process_response has run */
    bool failure_recorded;        /* the app wrote a failure record for this request */
    bool abandon_watched;         /* on_sync_abandoned() is registered for the commit point */
    /* Sync records submitted before the response pass, queued there as one
     * group with the http_request record (talon_audit_submit_group), so
     * that a write-ahead record is never durable without the others. */
    talon_audit_record **pending; /* pending_inline, or allocated beyond it */
    size_t npending;
    size_t pending_cap;
    talon_audit_record *pending_inline[2]; /* write-ahead record and http_request */
} audit_req_state;

static audit_state *state_of(const talon_req *req)
{
    talon_app *app = talon_req_app(req);
    return app ? talon_app_userdata(app, AUDIT_USERDATA_KEY) : NULL;
}

static void req_state_free(void *p)
{
    audit_req_state *rs = p;

    /* The response pass queues or drops every pending record, so this
     * frees only the records of a request that never reached it. */
    for (size_t i = 0; i < rs->npending; i++)
        talon_audit_record_free(rs->pending[i]);
    if (rs->pending != rs->pending_inline)
        free(rs->pending);
    free(rs);
}

static audit_req_state *req_state(talon_req *req)
{
    audit_req_state *rs = talon_req_context_get(req, AUDIT_CONTEXT_KEY);
    if (rs != NULL)
        return rs;
    rs = calloc(1, sizeof(*rs));
    if (rs == NULL)
        return NULL;
    rs->pending = rs->pending_inline;
    rs->pending_cap = sizeof(rs->pending_inline) / sizeof(rs->pending_inline[0]);
    if (talon_req_context_set(req, AUDIT_CONTEXT_KEY, rs, req_state_free) < 0) {
        free(rs);
        return NULL;
    }
    return rs;
}

static int pending_add(audit_req_state *rs, talon_audit_record *rec)
{
    if (rs->npending == rs->pending_cap) {
        size_t cap = 2 * rs->pending_cap;
        bool inline_array = rs->pending == rs->pending_inline;
        talon_audit_record **p = realloc(inline_array ? NULL : rs->pending, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        if (inline_array)
            memcpy(p, rs->pending_inline, sizeof(rs->pending_inline));
        rs->pending = p;
        rs->pending_cap = cap;
    }
    rs->pending[rs->npending++] = rec;
    return 0;
}

/* Level and mode of req, matched once per request after routing (before
 * routing, or without a route, the match is redone on each call). */
static void match_policy(audit_state *st, talon_req *req, audit_req_state *rs)
{
    if (rs->matched)
        return;
    const char *route = talon_req_route(req);
    talon_audit_policy_match(st->policy, talon_req_method(req), route, &rs->level, &rs->mode);
    rs->matched = route != NULL;
}

#define FAILURE_MESSAGE \
    "audit trail failed to record request %s: %s; %s; free space in or repair the trail directory"

/* Log a write failure at most once a second; the log writer reports the
 * count of the others within about a second. Safe from any thread (the
 * writer calls it too). what: the cause, or NULL for strerror(-status). */
static void log_failure(audit_state *st, const char *request_id, int status, const char *what)
{
    bool closed = audit_policy_failure(st->policy) == TALON_AUDIT_FAIL_CLOSED;
    const char *id = request_id ? request_id : "-";
    const char *cause = what ? what : strerror(-status);
    const char *policy = closed
        ? "audited requests get 503 (failure policy fail_closed)"
        : "requests proceed and the record is lost (failure policy fail_open)";

    if (st->error_limit != NULL)
        talon_log_limited(st->error_limit, FAILURE_MESSAGE, id, cause, policy);
    else
        talon_log_error(st->log, FAILURE_MESSAGE, id, cause, policy);
}

/* Count a failed record; returns true when the response must become 503. */
static bool handle_failure(audit_state *st, const char *request_id, int status, const char *what)
{
    log_failure(st, request_id, status, what);
    if (audit_policy_failure(st->policy) == TALON_AUDIT_FAIL_OPEN) {
        atomic_fetch_add(&st->lost, 1);
        return false;
    }
    atomic_fetch_add(&st->rejected, 1);
    return true;
}

/* Writer thread: the sync record of the held request ctx is durable
 * (status 0) or failed. */
static void on_record_done(void *ctx, int status)
{
    talon_req *req = ctx;
    audit_state *st;

    if (status == 0) {
        talon_req_release(req, 0, NULL);
        return;
    }
    /* A request that a stopping engine gave up on can finish after
     * talon_app_audit_detach(); its client already got a 503. */
    st = state_of(req);
    if (st == NULL || handle_failure(st, talon_req_id(req), status, NULL))
        talon_req_release(req, 503, UNAVAILABLE_DESCRIPTION);
    else
        talon_req_release(req, 0, NULL);
}

/* Mark req as failed so the middleware sends 503. After the middleware's
 * response pass, a hold released with 503 does the same. */
static void fail_request(talon_req *req, audit_req_state *rs)
{
    if (rs == NULL || rs->response_pass_done) {
        talon_req_hold(req);
        talon_req_release(req, 503, UNAVAILABLE_DESCRIPTION);
        return;
    }
    rs->failed = true;
}

static void fill_event_from_request(talon_audit_event *ev, talon_req *req)
{
    ev->actor_id = talon_req_user(req);
    ev->actor_roles = talon_req_roles(req);
    ev->source_ip = talon_req_client_ip(req);
    ev->user_agent = talon_req_header(req, "User-Agent");
    ev->request_id = talon_req_id(req);
    ev->method = talon_req_method(req);
    ev->route = talon_req_route(req);
    ev->path = talon_req_path(req);
}

/* Commit point, aborted. When a stopping engine gave up waiting for the
 * request's sync records (the drain timeout), the client got 503 and no
 * change was applied. The records may still be written, because the
 * writer finishes its batch and the queue before the trail closes. A
 * record after them states this, for the auditor and for the client's
 * retry. */
static void on_sync_abandoned(talon_req *req, talon_resp *resp, void *ctx)
{
    audit_state *st = state_of(req);
    const char *id = talon_req_id(req) ? talon_req_id(req) : "-";
    talon_audit_event ev = { 0 };
    json_t *data;
    int rc;

    (void)resp;
    (void)ctx;
    if (st == NULL || !talon_hold_aborted(req))
        return;
    fill_event_from_request(&ev, req);
    ev.type = "http_request_abandoned";
    ev.outcome = TALON_AUDIT_FAILURE;
    ev.target_type = "http";
    ev.target_id = ev.path;
    ev.reason = "the server stopped before the sync audit records of this request were "
                "durable: the client got 503 and no change was applied, so the records of "
                "this request written before this one describe changes that were not made";
    data = json_pack("{s:i}", "status", 503);
    ev.data = data;
    rc = talon_audit_submit(st->trail, &ev, TALON_AUDIT_ASYNC, NULL, NULL);
    json_decref(data);
    if (rc < 0)
        talon_log_error(st->log, "audit: request %s got a 503 response at shutdown while its "
                        "sync records were queued, and the http_request_abandoned record "
                        "failed: %s; its records may describe changes that were not made",
                        id, strerror(-rc));
}

/* Register on_sync_abandoned() once per request, after its first sync
 * record was queued. */
static void watch_abandon(audit_state *st, talon_req *req, audit_req_state *rs)
{
    if (rs == NULL || rs->abandon_watched)
        return;
    if (talon_req_add_commit(req, NULL, on_sync_abandoned, NULL) < 0) {
        const char *id = talon_req_id(req) ? talon_req_id(req) : "-";

        talon_log_warn(st->log, "audit: request %s: out of memory; if the server stops before "
                       "its sync records are durable, no record will show that it was "
                       "abandoned", id);
        return;
    }
    rs->abandon_watched = true;
}

static int submit(audit_state *st, talon_req *req, audit_req_state *rs,
                  const talon_audit_event *ev, talon_audit_mode mode)
{
    int rc;

    atomic_fetch_add(&st->records, 1);
    if (mode == TALON_AUDIT_SYNC) {
        /* The hold comes first: the writer may finish before submit returns. */
        talon_req_hold(req);
        atomic_fetch_add(&st->held, 1);
        if (rs != NULL && !rs->response_pass_done && talon_audit_healthy(st->trail)) {
            /* Queued with the request's other sync records in the response
             * pass (submit_pending). A trail that is down already rejects
             * it below, so talon_audit() returns that error at once. */
            talon_audit_record *rec;
            rc = talon_audit_prepare(st->trail, ev, TALON_AUDIT_SYNC, on_record_done, req, &rec);
            if (rc == 0 && pending_add(rs, rec) < 0) {
                talon_audit_record_free(rec);
                rc = -ENOMEM;
            }
        } else {
            rc = talon_audit_submit(st->trail, ev, TALON_AUDIT_SYNC, on_record_done, req);
            if (rc == 0)
                watch_abandon(st, req, rs);
        }
        if (rc < 0) {
            bool closed = handle_failure(st, ev->request_id, rc, NULL);
            talon_req_release(req, closed ? 503 : 0, closed ? UNAVAILABLE_DESCRIPTION : NULL);
            return closed ? rc : 0;
        }
        return 0;
    }

    rc = talon_audit_submit(st->trail, ev, TALON_AUDIT_ASYNC, NULL, NULL);
    if (rc < 0) {
        if (!handle_failure(st, ev->request_id, rc, NULL))
            return 0;
        fail_request(req, rs);
    }
    return rc;
}

/* A write-ahead change whose record could not even be submitted. */
static int reject_change(talon_req *req, const talon_audit_args *args, int rc)
{
    if (args != NULL && args->on_failed != NULL)
        args->on_failed(req, &req->resp, args->ctx);
    return rc;
}

int talon_audit(talon_req *req, const talon_audit_args *args)
{
    audit_state *st = state_of(req);
    if (st == NULL)
        return reject_change(req, args, -ENODEV);
    if (args == NULL || args->type == NULL || args->type[0] == '\0')
        return reject_change(req, args, -EINVAL);
    bool write_ahead = args->on_durable != NULL || args->on_failed != NULL;
    /* Registered before the record is submitted: a failed submission
     * releases its hold with 503, which makes the commit point abort it. */
    if (write_ahead && talon_req_add_commit(req, args->on_durable, args->on_failed,
                                            args->ctx) < 0) {
        handle_failure(st, talon_req_id(req), -ENOMEM, NULL);
        fail_request(req, req_state(req));
        return reject_change(req, args, -ENOMEM);
    }

    audit_req_state *rs = req_state(req);
    talon_audit_event ev = { 0 };
    fill_event_from_request(&ev, req);
    ev.type = args->type;
    ev.outcome = args->outcome;
    if (args->actor_id != NULL) {
        ev.actor_id = args->actor_id;
        ev.actor_roles = args->actor_roles;
    } else if (args->actor_roles != NULL) {
        ev.actor_roles = args->actor_roles;
    }
    ev.target_type = args->target_type;
    ev.target_id = args->target_id;
    if (ev.target_type == NULL && ev.target_id == NULL) {
        ev.target_type = rs && rs->resource_name ? rs->resource_name : "http";
        ev.target_id = ev.path;
    }
    ev.reason = args->reason;
    ev.data = args->data;

    talon_audit_mode mode;
    switch (write_ahead ? TALON_AUDIT_DURABILITY_SYNC : args->durability) {
    case TALON_AUDIT_DURABILITY_SYNC:
        mode = TALON_AUDIT_SYNC;
        break;
    case TALON_AUDIT_DURABILITY_ASYNC:
        mode = TALON_AUDIT_ASYNC;
        break;
    default:
        if (rs != NULL) {
            match_policy(st, req, rs);
            mode = rs->mode;
        } else {
            talon_audit_level level;
            talon_audit_policy_match(st->policy, ev.method, ev.route, &level, &mode);
        }
        break;
    }
    if (rs != NULL && args->outcome == TALON_AUDIT_FAILURE)
        rs->failure_recorded = true;
    return submit(st, req, rs, &ev, mode);
}

talon_audit_level talon_req_audit_level(talon_req *req)
{
    audit_state *st = state_of(req);
    audit_req_state *rs = st ? req_state(req) : NULL;
    if (rs == NULL)
        return TALON_AUDIT_LEVEL_NONE;
    match_policy(st, req, rs);
    return rs->level;
}

bool talon_req_audit_failed(const talon_req *req)
{
    const audit_req_state *rs = talon_req_context_get(req, AUDIT_CONTEXT_KEY);
    return rs != NULL && rs->failed;
}

/* ---- Bodies: redacted, bounded ---- */

/* A JSON string of client bytes in any encoding, kept exactly. The record
 * serializer (talon_escape_json(), as for the User-Agent) writes each
 * invalid UTF-8 byte as \u00XX, so an invalid byte never reads as the text
 * "\xFF" (docs/audit-format.md). Record data only reaches that serializer:
 * json_dumps() would reject such a string. */
static json_t *string_from_bytes(const char *s, size_t len)
{
    json_t *v = json_stringn_nocheck(s, len);
    return v ? v : json_null();
}

/* Return true when the len bytes of key match the trail's redaction list.
 * The key may contain NUL and must have one at key[len]. No listed word
 * contains NUL, so a word matches the key exactly when it matches one
 * NUL-separated piece of it. */
static bool is_secret_key_bytes(const talon_audit_trail *trail, const char *key, size_t len)
{
    for (const char *p = key; p <= key + len; p += strlen(p) + 1)
        if (talon_audit_is_secret_key(trail, p))
            return true;
    return false;
}

static void redact(const talon_audit_trail *trail, json_t *value)
{
    const char *key;
    size_t key_len;
    json_t *child;
    size_t i;

    if (json_is_object(value)) {
        json_object_keylen_foreach(value, key, key_len, child) {
            if (is_secret_key_bytes(trail, key, key_len))
                json_object_setn_new_nocheck(value, key, key_len, json_string("[REDACTED]"));
            else
                redact(trail, child);
        }
    } else if (json_is_array(value)) {
        json_array_foreach(value, i, child)
            redact(trail, child);
    }
}

/* "a=1&b=2" as {"a":"1","b":"2"}; a repeated key keeps its first value.
 * Keys and values are kept whole, %00 included, because a record can carry
 * NUL (written \u0000), unlike the strings of the query API. */
static json_t *form_to_json(const char *s, size_t len)
{
    json_t *obj = json_object();
    char *copy = malloc(len + 1);
    if (obj == NULL || copy == NULL) {
        free(copy);
        return obj;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';

    char *p = copy, *end = copy + len;
    while (p < end) {
        char *amp = memchr(p, '&', (size_t)(end - p));
        char *pair_end = amp ? amp : end;
        char *eq = memchr(p, '=', (size_t)(pair_end - p));
        char *key_end = eq ? eq : pair_end;
        /* In place: the NUL each decode appends lands at the latest on the
         * '=', '&' or final NUL after it, which were already located. */
        size_t klen = talon_uri_decode(p, p, (size_t)(key_end - p), true, NULL);
        size_t vlen = 0;
        char *value = NULL;
        if (eq != NULL) {
            value = eq + 1;
            vlen = talon_uri_decode(value, value, (size_t)(pair_end - value), true, NULL);
        }
        if (klen > 0 && json_object_getn(obj, p, klen) == NULL)
            json_object_setn_new_nocheck(obj, p, klen, value ? string_from_bytes(value, vlen)
                                                             : json_null());
        p = pair_end + 1;
    }
    free(copy);
    return obj;
}

static bool content_type_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    return ct != NULL && strncasecmp(ct, type, n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* {"bytes":N, "body":...} for a JSON or form body within max bytes, after
 * redaction. Other bodies (free text may hold secrets that no key names)
 * and larger ones get their size only. A plain SHA-256 would let every
 * reader of the trail guess a short body, such as a password, offline.
 * An HMAC would need a key that those readers lack and that lasts as long
 * as the trail, and the trail has none: K_0 is the auditor's, and the
 * server's key changes every epoch. */
static json_t *body_to_json(const talon_audit_trail *trail, const char *content_type,
                            const char *body, size_t len, size_t max)
{
    json_t *obj = json_object();
    json_object_set_new(obj, "bytes", json_integer((json_int_t)len));
    if (body == NULL || len == 0)
        return obj;
    if (content_type != NULL)
        json_object_set_new(obj, "content_type", string_from_bytes(content_type, strlen(content_type)));
    if (len > max) {
        json_object_set_new(obj, "truncated", json_true());
        return obj;
    }

    json_t *parsed = NULL;
    if (content_type_is(content_type, "application/json"))
        parsed = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    else if (content_type_is(content_type, "application/x-www-form-urlencoded"))
        parsed = form_to_json(body, len);
    if (parsed == NULL)
        return obj;
    redact(trail, parsed);
    json_object_set_new(obj, "body", parsed);
    return obj;
}

/* Return the len bytes of value with the value of each secret "name=value"
 * pair between ';' replaced, as the access log does for servers that split
 * queries on ';' ("x=1;password=s" is one pair for talon). Returns NULL
 * when no pair is secret.
 * NOTE: src/log/redact.c splits the same pairs for the access log, but with
 * the log's word list; this one uses the trail's configurable redact_keys. */
static json_t *redact_semicolon_pairs(const talon_audit_trail *trail, const char *value,
                                      size_t len)
{
    const char *end = value + len;
    char *out = malloc(len + sizeof("[REDACTED]") * (len / 2 + 1));
    char *name = malloc(len + 1);
    size_t n = 0;
    bool found = false;
    json_t *redacted = NULL;

    if (out == NULL || name == NULL)
        goto out;
    for (const char *p = value; p < end;) {
        const char *semicolon = memchr(p, ';', (size_t)(end - p));
        size_t pair_len = semicolon ? (size_t)(semicolon - p) : (size_t)(end - p);
        const char *eq = memchr(p, '=', pair_len);
        size_t copy = pair_len;
        if (eq != NULL) {
            memcpy(name, p, (size_t)(eq - p));
            name[eq - p] = '\0';
            if (is_secret_key_bytes(trail, name, (size_t)(eq - p))) {
                copy = (size_t)(eq + 1 - p);
                found = true;
            }
        }
        memcpy(out + n, p, copy);
        n += copy;
        if (copy < pair_len) {
            memcpy(out + n, "[REDACTED]", sizeof("[REDACTED]") - 1);
            n += sizeof("[REDACTED]") - 1;
        }
        p += pair_len;
        if (p < end)
            out[n++] = *p++; /* the ';' */
    }
    if (found)
        redacted = string_from_bytes(out, n);
out:
    free(out);
    free(name);
    return redacted;
}

/* The query string of the raw target as a redacted object, or NULL. */
static json_t *query_to_json(const talon_audit_trail *trail, const talon_req *req)
{
    const char *target = talon_req_target(req);
    const char *q = target ? strchr(target, '?') : NULL;
    const char *key;
    size_t key_len;
    json_t *value;

    if (q == NULL || q[1] == '\0')
        return NULL;
    q++;
    const char *hash = strchr(q, '#');
    json_t *obj = form_to_json(q, hash ? (size_t)(hash - q) : strlen(q));
    redact(trail, obj);
    json_object_keylen_foreach(obj, key, key_len, value) {
        const char *s = json_string_value(value);
        size_t len = json_string_length(value);
        json_t *redacted = s && memchr(s, ';', len) ? redact_semicolon_pairs(trail, s, len)
                                                    : NULL;
        if (redacted != NULL)
            json_object_setn_new_nocheck(obj, key, key_len, redacted);
    }
    return obj;
}

/* ---- Middleware ---- */

static void audit_process_resource(talon_req *req, talon_resp *resp,
                                   const talon_resource *resource, void *ctx)
{
    audit_state *st = ctx;
    audit_req_state *rs = req_state(req);
    if (rs == NULL)
        return;
    rs->resource_name = resource ? resource->name : NULL;
    match_policy(st, req, rs);

    /* Under fail_closed an audited request that cannot be recorded is not
     * run at all, so no change happens without its record. */
    if (rs->level != TALON_AUDIT_LEVEL_NONE &&
        audit_policy_failure(st->policy) == TALON_AUDIT_FAIL_CLOSED &&
        !talon_audit_healthy(st->trail)) {
        handle_failure(st, talon_req_id(req), -EIO,
                       "the trail is not writable (see the audit trail's own error)");
        rs->failed = true;
        talon_resp_error(resp, 503, NULL, UNAVAILABLE_DESCRIPTION);
    }
}

static json_t *request_record_data(audit_state *st, talon_req *req, const talon_resp *resp,
                                   talon_audit_level level, int status)
{
    json_t *data = json_object();
    size_t max = audit_policy_max_body(st->policy);

    json_object_set_new(data, "status", json_integer(status));
    json_t *query = query_to_json(st->trail, req);
    if (query != NULL)
        json_object_set_new(data, "query", query);
    if (level >= TALON_AUDIT_LEVEL_REQUEST) {
        size_t len = 0;
        const char *body = talon_req_body(req, &len);
        json_object_set_new(data, "request",
                            body_to_json(st->trail, talon_req_header(req, "Content-Type"),
                                         body, body ? len : 0, max));
    }
    if (level >= TALON_AUDIT_LEVEL_REQUEST_RESPONSE) {
        size_t len = 0;
        const char *body = talon_resp_body(resp, &len);
        json_object_set_new(data, "response",
                            body_to_json(st->trail, talon_resp_header(resp, "Content-Type"),
                                         body, body ? len : 0, max));
    }
    return data;
}

/* Queue the request's pending sync records as one group: all of them
 * become durable in one fdatasync, or all fail. When the request already
 * failed (503), they describe nothing that happens and are dropped. */
static void submit_pending(audit_state *st, talon_req *req, audit_req_state *rs)
{
    size_t n = rs->npending;
    int rc;

    if (n == 0)
        return;
    rs->npending = 0;
    if (rs->failed) {
        for (size_t i = 0; i < n; i++) {
            talon_audit_record_free(rs->pending[i]);
            talon_req_release(req, 503, UNAVAILABLE_DESCRIPTION);
        }
        return;
    }
    rc = talon_audit_submit_group(st->trail, rs->pending, n);
    if (rc == 0) {
        watch_abandon(st, req, rs);
        return;
    }
    /* Nothing was queued: each record fails as a rejected submit() does. */
    for (size_t i = 0; i < n; i++) {
        bool closed = handle_failure(st, talon_req_id(req), rc, NULL);
        talon_req_release(req, closed ? 503 : 0, closed ? UNAVAILABLE_DESCRIPTION : NULL);
    }
}

static void record_response(audit_state *st, talon_req *req, audit_req_state *rs,
                            talon_resp *resp, const talon_resource *resource)
{
    if (resource != NULL && rs->resource_name == NULL)
        rs->resource_name = resource->name;
    match_policy(st, req, rs);

    if (rs->failed) {
        /* A record of this request was rejected: nothing is acknowledged. */
        talon_resp_error(resp, 503, NULL, UNAVAILABLE_DESCRIPTION);
        talon_resp_set_header(resp, "Retry-After", "1");
        return;
    }

    int status = talon_resp_status(resp);
    bool denied = status == 401 || status == 403;
    /* A 401/403 is an invalid access attempt: recorded as authz_fail even at
     * level none, unless the application already wrote a failure record. */
    bool authz_record = denied && !rs->failure_recorded;
    if (rs->level == TALON_AUDIT_LEVEL_NONE && !authz_record)
        return;

    talon_audit_level level = rs->level == TALON_AUDIT_LEVEL_NONE ? TALON_AUDIT_LEVEL_METADATA
                                                                  : rs->level;
    json_t *data = request_record_data(st, req, resp, level, status);
    char reason[96] = "";
    if (status >= 400)
        snprintf(reason, sizeof(reason), "HTTP %d %s", status, talon_status_reason(status));

    talon_audit_event ev = { 0 };
    fill_event_from_request(&ev, req);
    ev.type = authz_record ? "authz_fail" : "http_request";
    ev.outcome = status >= 400 ? TALON_AUDIT_FAILURE : TALON_AUDIT_SUCCESS;
    ev.target_type = rs->resource_name ? rs->resource_name : "http";
    ev.target_id = ev.path;
    ev.reason = status >= 400 ? reason : NULL;
    ev.data = data;

    int rc = submit(st, req, rs, &ev, rs->mode);
    json_decref(data);
    if (rc < 0 && rs->failed) {
        talon_resp_error(resp, 503, NULL, UNAVAILABLE_DESCRIPTION);
        talon_resp_set_header(resp, "Retry-After", "1");
    }
}

static void audit_process_response(talon_req *req, talon_resp *resp,
                                   const talon_resource *resource, bool req_succeeded,
                                   void *ctx)
{
    audit_state *st = ctx;
    audit_req_state *rs = req_state(req);
    if (rs == NULL)
        return;
    record_response(st, req, rs, resp, resource);
    /* Records submitted from here on (an on_durable callback, for one) are
     * queued at once. */
    rs->response_pass_done = true;
    submit_pending(st, req, rs);
    (void)req_succeeded;
}

int talon_app_set_audit(talon_app *app, talon_audit_trail *trail, talon_audit_policy *policy)
{
    if (app == NULL || trail == NULL)
        return -EINVAL;
    if (talon_app_userdata(app, AUDIT_USERDATA_KEY) != NULL)
        return -EEXIST;

    audit_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    st->trail = trail;
    st->policy = policy;
    if (policy == NULL) {
        st->owned_policy = talon_audit_policy_new();
        if (st->owned_policy == NULL) {
            free(st);
            return -ENOMEM;
        }
        st->policy = st->owned_policy;
    }
    st->log = talon_logger_get("app");
    st->error_limit = talon_log_limit_new(st->log, TALON_LOG_ERROR, 1,
                                          "audit trail failures to record a request");

    talon_middleware mw = {
        .process_resource = audit_process_resource,
        .process_response = audit_process_response,
        .ctx = st,
    };
    int rc = talon_app_add_middleware(app, &mw);
    if (rc < 0) {
        talon_audit_policy_free(st->owned_policy);
        talon_log_limit_free(st->error_limit);
        free(st);
        return rc;
    }
    talon_app_set_userdata(app, AUDIT_USERDATA_KEY, st);
    return 0;
}

void talon_app_audit_detach(talon_app *app)
{
    audit_state *st = talon_app_userdata(app, AUDIT_USERDATA_KEY);
    if (st == NULL)
        return;
    talon_app_set_userdata(app, AUDIT_USERDATA_KEY, NULL);
    talon_audit_policy_free(st->owned_policy);
    talon_log_limit_free(st->error_limit);
    /* NOTE: the middleware stays registered with a freed ctx, so detach
     * only once the app will serve no more requests. */
    free(st);
}

talon_audit_trail *talon_req_audit_trail(const talon_req *req)
{
    audit_state *st = state_of(req);
    return st ? st->trail : NULL;
}

void talon_app_audit_stats(const talon_app *app, talon_audit_http_stats *out)
{
    audit_state *st = talon_app_userdata(app, AUDIT_USERDATA_KEY);
    memset(out, 0, sizeof(*out));
    if (st == NULL)
        return;
    out->records = atomic_load(&st->records);
    out->held = atomic_load(&st->held);
    out->rejected = atomic_load(&st->rejected);
    out->lost = atomic_load(&st->lost);
}
