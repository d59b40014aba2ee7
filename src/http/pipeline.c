/* The request pipeline: middleware, routing and responders. */
#include "http/pipeline.h"

#include <string.h>

static void run_process_response(talon_req *req)
{
    talon_app *app = req->app;
    talon_resp *resp = &req->resp;
    bool succeeded = !resp->error && resp->status < 500;
    for (size_t i = app->nmiddleware; i-- > 0;) {
        const talon_middleware *mw = &app->middleware[i];
        if (mw->process_response != NULL)
            mw->process_response(req, resp, req->resource, succeeded, mw->ctx);
    }
}

static talon_responder responder_for(const talon_resource *r, const char *method)
{
    switch (method[0]) {
    case 'G':
        return strcmp(method, "GET") == 0 ? r->on_get : NULL;
    case 'H':
        return strcmp(method, "HEAD") == 0 ? r->on_get : NULL;
    case 'P':
        if (strcmp(method, "POST") == 0)
            return r->on_post;
        if (strcmp(method, "PUT") == 0)
            return r->on_put;
        if (strcmp(method, "PATCH") == 0)
            return r->on_patch;
        return NULL;
    case 'D':
        return strcmp(method, "DELETE") == 0 ? r->on_delete : NULL;
    default:
        return NULL;
    }
}

/* Route, run process_resource and the responder. */
static void route_and_respond(talon_req *req)
{
    talon_app *app = req->app;
    talon_resp *resp = &req->resp;
    talon_route_match m;

    /* "OPTIONS *" is about the server, not a resource (RFC 9110, section
     * 9.3.7), so Allow lists every method the framework dispatches. */
    if (req->raw_path_len == 1 && req->raw_path[0] == '*') {
        talon_resp_set_status(resp, 200);
        talon_resp_set_header(resp, "Allow", TALON_ROUTER_ALLOW_ALL);
        return;
    }
    int rc = talon_router_find(app->router, req->raw_path, req->raw_path_len,
                               app->strip_trailing_slash, &req->arena, &m);
    if (rc < 0) {
        talon_resp_error(resp, 500, NULL, "Out of memory while routing the request.");
        return;
    }
    if (rc == 0) {
        talon_resp_error(resp, 404, NULL, NULL);
        return;
    }
    req->resource = m.resource;
    req->route = m.template;
    req->allow = m.allow;
    for (size_t i = 0; i < m.nfields; i++) {
        if (talon_kv_add(&req->arena, &req->params, m.names[i], strlen(m.names[i]),
                         m.values[i], strlen(m.values[i])) < 0) {
            talon_resp_error(resp, 500, NULL, "Out of memory while routing the request.");
            return;
        }
    }

    for (size_t i = 0; i < app->nmiddleware; i++) {
        const talon_middleware *mw = &app->middleware[i];
        if (mw->process_resource == NULL)
            continue;
        mw->process_resource(req, resp, req->resource, mw->ctx);
        if (talon_resp_is_set(resp))
            return;
    }

    if (strcmp(req->method, "OPTIONS") == 0) {
        talon_resp_set_status(resp, 200);
        talon_resp_set_header(resp, "Allow", req->allow);
        return;
    }
    talon_responder fn = responder_for(req->resource, req->method);
    if (fn == NULL) {
        talon_resp_error(resp, 405, NULL, NULL);
        talon_resp_set_header(resp, "Allow", req->allow);
        return;
    }
    fn(req, resp, req->resource->ctx);
    if (!talon_resp_is_set(resp))
        talon_resp_set_status(resp, 200);
}

void talon_pipeline_run(talon_req *req)
{
    talon_app *app = req->app;
    talon_resp *resp = &req->resp;

    if (req->bad_request != 0) {
        talon_pipeline_run_error(req, req->bad_request, req->bad_request_description);
        return;
    }
    for (size_t i = 0; i < app->nmiddleware; i++) {
        const talon_middleware *mw = &app->middleware[i];
        if (mw->process_request == NULL)
            continue;
        mw->process_request(req, resp, mw->ctx);
        if (talon_resp_is_set(resp))
            break;
    }
    if (!talon_resp_is_set(resp))
        route_and_respond(req);
    run_process_response(req);
}

void talon_pipeline_run_error(talon_req *req, int status, const char *description)
{
    talon_resp_error(&req->resp, status, NULL, description);
    run_process_response(req);
}

/* ---- Synthetic requests ---- */

talon_req *talon_pipeline_req_new(talon_app *app, const char *method, const char *target)
{
    talon_req *req = talon_req_create(app);
    if (req == NULL)
        return NULL;
    if (talon_req_set_line(req, method, target, "HTTP/1.1") < 0) {
        talon_req_unref(req);
        return NULL;
    }
    talon_req_set_peer_ip(req, "127.0.0.1");
    return req;
}

talon_resp *talon_pipeline_req_run(talon_req *req)
{
    talon_req_prepare(req);
    talon_pipeline_run(req);
    pthread_mutex_lock(&req->lock);
    req->pipeline_done = true;
    pthread_mutex_unlock(&req->lock);
    return &req->resp;
}

void talon_pipeline_req_free(talon_req *req)
{
    talon_req_unref(req);
}
