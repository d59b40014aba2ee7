/* The request pipeline, independent of the HTTP engine: middleware,
 * routing, responders. The engine feeds it requests read from sockets; unit
 * tests feed it synthetic requests through the functions below.
 *
 * Order, as in Falcon:
 * 1. process_request of every middleware in registration order. A hook that
 *    sets a status (talon_resp_is_set) short-circuits: the remaining
 *    process_request hooks, routing, process_resource and the responder
 *    are skipped.
 * 2. Routing. No route: 404. A target the framework cannot parse: 400.
 * 3. process_resource in registration order, only when a route matched
 *    (including 405 and OPTIONS); a hook that sets a status skips the rest
 *    and the responder.
 * 4. The responder; HEAD runs on_get (the engine drops the body), OPTIONS
 *    gets 200 with Allow, a method without responder gets 405 with Allow.
 *    A responder that sets no status sends 200.
 * 5. process_response of every middleware in reverse registration order,
 *    always, even after a short-circuit or an error.
 *
 * req_succeeded is false when the response was produced by
 * talon_resp_error() -- by the framework (400, 404, 405, 413, 415, 431) or
 * by a hook or responder, the equivalent of raising falcon.HTTPError -- or
 * when the status is 500 or above. */
#ifndef TALON_HTTP_PIPELINE_H
#define TALON_HTTP_PIPELINE_H

#include "http/request.h"

/* Run the whole pipeline on a request whose head (and body) is complete. */
void talon_pipeline_run(talon_req *req);
/* Produce an error response without routing (413, 431 found by the engine)
 * and run process_response, so middleware sees every request. */
void talon_pipeline_run_error(talon_req *req, int status, const char *description);

/* ---- Synthetic requests for tests ---- */
/* A request as the engine would build it, from the peer 127.0.0.1. */
talon_req *talon_pipeline_req_new(talon_app *app, const char *method, const char *target);
/* Complete the head, run the pipeline, and return the response. Holds are
 * counted but nothing is suspended: see talon_hold_pipeline_done. */
talon_resp *talon_pipeline_req_run(talon_req *req);
/* Drop the caller's reference. */
void talon_pipeline_req_free(talon_req *req);

#endif
