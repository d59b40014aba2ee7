/* Holding a response until work done elsewhere (an audit record made
 * durable) is finished.
 *
 * Protocol, all under req->lock:
 * - talon_req_hold() counts a hold and takes a reference, so the request
 *   outlives a client that disconnects while held;
 * - after the pipeline, the engine calls talon_hold_pipeline_done(): with
 *   holds pending it suspends the connection before unlocking, so a release
 *   can never resume a connection that is not yet suspended;
 * - the last talon_req_release() resumes a suspended connection; the engine
 *   then sends the response. When every hold was released before the
 *   pipeline ended, the response goes out at once and nothing is suspended;
 * - talon_hold_apply_result() is the request's commit point: the changes
 *   registered with talon_req_add_commit() (write-ahead audit records) are
 *   applied there, or dropped when a hold failed or the response is a 5xx. */
#include "http/request.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void talon_req_hold(talon_req *req)
{
    pthread_mutex_lock(&req->lock);
    req->holds++;
    talon_req_ref(req);
    pthread_mutex_unlock(&req->lock);
}

void talon_req_release(talon_req *req, int status, const char *description)
{
    pthread_mutex_lock(&req->lock);
    if (req->holds == 0) {
        /* A release without a hold is a caller bug; ignoring it keeps the
         * reference count right. */
        pthread_mutex_unlock(&req->lock);
        return;
    }
    if (status != 0 && req->release_status == 0) {
        req->release_status = status;
        req->release_description = description ? strdup(description) : NULL;
    }
    req->holds--;
    if (req->holds == 0 && req->suspended) {
        req->suspended = false;
        if (!req->aborted)
            req->resume_fn(req->conn);
    }
    pthread_mutex_unlock(&req->lock);
    talon_req_unref(req);
}

bool talon_hold_pipeline_done(talon_req *req, void *conn, talon_conn_fn suspend_fn,
                              talon_conn_fn resume_fn)
{
    bool wait = false;
    pthread_mutex_lock(&req->lock);
    req->pipeline_done = true;
    if (req->holds > 0) {
        req->conn = conn;
        req->suspend_fn = suspend_fn;
        req->resume_fn = resume_fn;
        suspend_fn(conn);
        req->suspended = true;
        wait = true;
    }
    pthread_mutex_unlock(&req->lock);
    return wait;
}

bool talon_hold_abort(talon_req *req)
{
    bool was_suspended = false;
    pthread_mutex_lock(&req->lock);
    if (req->suspended && !req->aborted) {
        req->aborted = true;
        was_suspended = true;
        req->resume_fn(req->conn);
    }
    pthread_mutex_unlock(&req->lock);
    return was_suspended;
}

bool talon_hold_aborted(talon_req *req)
{
    pthread_mutex_lock(&req->lock);
    bool aborted = req->aborted;
    pthread_mutex_unlock(&req->lock);
    return aborted;
}

void talon_hold_apply_result(talon_req *req)
{
    pthread_mutex_lock(&req->lock);
    int status = req->release_status;
    char *description = req->release_description;
    bool aborted = req->aborted;
    req->release_description = NULL;
    req->release_status = 0;
    pthread_mutex_unlock(&req->lock);

    if (aborted) {
        talon_resp_error(&req->resp, 503, NULL, "The server is shutting down and the held "
                         "work did not finish in time; retry the request.");
    } else if (status != 0) {
        talon_resp_error(&req->resp, status, NULL, description);
    }
    free(description);
    /* The commit point: a 5xx from any source means that nothing changed. */
    talon_req_run_commits(req, !aborted && status == 0 && req->resp.status < 500);
}

int talon_req_add_commit(talon_req *req, talon_commit_fn on_commit, talon_commit_fn on_abort,
                         void *ctx)
{
    talon_commit *c = malloc(sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    *c = (talon_commit){ on_commit, on_abort, ctx, NULL };
    if (req->commits_tail == NULL)
        req->commits_tail = &req->commits;
    *req->commits_tail = c;
    req->commits_tail = &c->next;
    return 0;
}

void talon_req_run_commits(talon_req *req, bool committed)
{
    talon_commit *c = req->commits;
    req->commits = NULL;
    req->commits_tail = NULL;
    while (c != NULL) {
        talon_commit *next = c->next;
        talon_commit_fn fn = committed ? c->on_commit : c->on_abort;
        if (fn != NULL)
            fn(req, &req->resp, c->ctx);
        free(c);
        c = next;
    }
}

unsigned talon_req_holds(const talon_req *req)
{
    talon_req *r = (talon_req *)req;
    pthread_mutex_lock(&r->lock);
    unsigned n = r->holds;
    pthread_mutex_unlock(&r->lock);
    return n;
}
