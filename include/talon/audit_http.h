/* talon audit trail, framework side: attach a trail to an app, write
 * records from responders with the request's context filled in, and apply
 * an audit policy (level and durability per method and route template).
 *
 *     talon_app_set_audit(app, trail, policy);
 *     ...
 *     talon_audit(req, &(talon_audit_args){
 *         .type = "user_deleted", .target_type = "user", .target_id = name });
 *
 * The trail itself (talon/audit.h) does not depend on this layer.
 */
#ifndef TALON_AUDIT_HTTP_H
#define TALON_AUDIT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "talon/app.h"
#include "talon/audit.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the automatic per-request record ("http_request") contains. */
typedef enum talon_audit_level {
    TALON_AUDIT_LEVEL_NONE = 0,        /* no automatic record */
    TALON_AUDIT_LEVEL_METADATA,        /* who, what, where, status */
    TALON_AUDIT_LEVEL_REQUEST,         /* metadata + request body (redacted, bounded) */
    TALON_AUDIT_LEVEL_REQUEST_RESPONSE /* request + response body (redacted, bounded) */
} talon_audit_level;

/* The ordered rules of an [audit.policy] section; first match wins. */
typedef struct talon_audit_policy talon_audit_policy;

/* Create an empty policy: every request gets the default level and mode
 * (metadata, async) until rules are added. */
talon_audit_policy *talon_audit_policy_new(void);
void talon_audit_policy_free(talon_audit_policy *policy);

/* Append a rule "METHODS ROUTE LEVEL [MODE]", for example
 * "POST,PUT /notes* request sync". METHODS is "*" or a comma-separated list;
 * ROUTE is a glob (fnmatch(3), '*' crosses '/') over the matched route
 * template, or "-" for requests that matched no route. Returns 0 or -EINVAL
 * with err naming the bad word and the accepted values. */
int talon_audit_policy_add_rule(talon_audit_policy *policy, const char *rule,
                                char *err, size_t errlen);

/* Handle one key of the [audit.policy] section: "rule" (appended in file
 * order), "default_level", "default_mode". Suited to a talon_config_handler
 * that adds the file and line. */
int talon_audit_policy_config_set(talon_audit_policy *policy, const char *key,
                                  const char *value, char *err, size_t errlen);

/* The failure policy the framework applies to records the trail could not
 * write; set it to the trail's (talon_audit_options.failure). Default
 * TALON_AUDIT_FAIL_CLOSED. */
void talon_audit_policy_set_failure(talon_audit_policy *policy, talon_audit_failure failure);
/* Bytes of a request or response body kept at levels request and
 * request_response; set it to talon_audit_options.max_body_size. Default 4096. */
void talon_audit_policy_set_max_body_size(talon_audit_policy *policy, size_t max);

/* The level and mode of the first rule matching method and route (route
 * NULL: no route matched), or the defaults. */
void talon_audit_policy_match(const talon_audit_policy *policy, const char *method,
                              const char *route, talon_audit_level *level,
                              talon_audit_mode *mode);

const char *talon_audit_level_name(talon_audit_level level);
const char *talon_audit_mode_name(talon_audit_mode mode);

/* Attach a trail and a policy to an app and add the audit middleware. The
 * app does not own either; both must outlive talon_app_serve(). Call before
 * serving and before adding middleware that should see audited requests
 * (the audit middleware's process_response then runs last and reads the
 * final status). policy NULL: every request at the defaults. */
int talon_app_set_audit(talon_app *app, talon_audit_trail *trail,
                        talon_audit_policy *policy);
/* Detach the trail and free the framework's audit state. Only after
 * talon_app_serve() returned, before talon_audit_close(). */
void talon_app_audit_detach(talon_app *app);
/* The trail attached to the app of req, or NULL. */
talon_audit_trail *talon_req_audit_trail(const talon_req *req);

/* Durability of one talon_audit() call. */
typedef enum talon_audit_durability {
    TALON_AUDIT_DURABILITY_POLICY = 0, /* the mode of the route's policy rule */
    TALON_AUDIT_DURABILITY_ASYNC,
    TALON_AUDIT_DURABILITY_SYNC
} talon_audit_durability;

/* One application event. Zero-initialised fields take their defaults. */
typedef struct talon_audit_args {
    const char *type;            /* required: "user_deleted", "authn_login_fail", ... */
    talon_audit_outcome outcome; /* default TALON_AUDIT_SUCCESS */
    const char *target_type;     /* affected resource; NULL: the route's resource name */
    const char *target_id;       /* NULL: the request path */
    const char *reason;          /* why it failed */
    json_t *data;                /* borrowed; redacted before writing; NULL: {} */
    const char *actor_id;        /* NULL: talon_req_user(req) or "anonymous" */
    const char *const *actor_roles; /* NULL: talon_req_roles(req) */
    talon_audit_durability durability;
    /* Write-ahead (docs/audit.md): prepare the change in the responder and
     * apply it in on_durable, so that no change exists without its record.
     * on_durable runs once this record and every other sync record of the
     * request are durable, after the last middleware, before the response
     * is sent, on the thread that sends it; it may still change the
     * response. on_failed runs instead when the change must not happen:
     * the record was rejected or could not be written, the request's
     * response is a server error (5xx, such as the 503 of fail_closed), or
     * the server stopped before the record was durable. Exactly one of the
     * two runs, also when talon_audit() returns an error; free ctx there.
     * Setting either makes the record sync. Under fail_open a lost record
     * does not stop the change: on_durable runs and the loss is counted. */
    void (*on_durable)(talon_req *req, talon_resp *resp, void *ctx);
    void (*on_failed)(talon_req *req, talon_resp *resp, void *ctx);
    void *ctx;
} talon_audit_args;

/* Write an audit record for req. Actor (the request's user and roles, or
 * "anonymous"), source address, user agent, request id, method, route
 * template and path come from the request.
 *
 * Async: the record is queued and the call returns. Sync: the response is
 * held until the record is durable (fdatasync, shared with concurrent
 * records); if it cannot be written the response becomes 503.
 * Under fail_closed, a record the trail rejects also turns the response
 * into 503 (the audit middleware does it once the responder returns), and
 * an error is logged at most once a second.
 *
 * With on_durable or on_failed set, the change is applied only once the
 * record is durable; see talon_audit_args.
 *
 * Returns 0, -ENODEV when the app has no trail, -EINVAL without a type, or
 * under fail_closed the negative errno of talon_audit_submit() (under
 * fail_open a lost record is counted and 0 returned). A sync record
 * written before the audit middleware's response pass is queued there,
 * together with the request's other sync records, so that they become
 * durable in one batch or fail together. A rejection at that point (a
 * full queue, a trail that failed meanwhile) is not returned here, but
 * the response still becomes 503. Only call from a responder or
 * middleware hook of req. */
int talon_audit(talon_req *req, const talon_audit_args *args);

/* The policy level of req's method and route (TALON_AUDIT_LEVEL_NONE
 * when the app has no trail). Applications that write their own records
 * for routine events may skip them at level none. */
talon_audit_level talon_req_audit_level(talon_req *req);

/* True once talon_audit() or the middleware failed to write a record for
 * req under fail_closed; the response will be 503. */
bool talon_req_audit_failed(const talon_req *req);

/* Counters of the framework side (the trail has its own, talon_audit_get_stats). */
typedef struct talon_audit_http_stats {
    unsigned long long records;   /* records submitted */
    unsigned long long held;      /* responses held for a sync record */
    unsigned long long rejected;  /* records rejected (503 under fail_closed) */
    unsigned long long lost;      /* records lost under fail_open */
} talon_audit_http_stats;
void talon_app_audit_stats(const talon_app *app, talon_audit_http_stats *out);

#ifdef __cplusplus
}
#endif
#endif
