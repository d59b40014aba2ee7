/* Routes for end-to-end tests only, added with --test-routes:
 *   GET /debug/hold?ms=N&holds=K&status=S
 * takes K holds (default 1) on the response and releases them from another
 * thread after N milliseconds (0: before the responder returns), the last
 * one with status S (default 0: keep the response). It exercises the
 * suspend/resume path that the audit trail's synchronous mode relies on. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "demo.h"

#define HOLD_MAX_MS 10000
#define HOLD_MAX_COUNT 16

typedef struct hold_job {
    talon_req *req;
    long ms;
    int status;
} hold_job;

static void *release_later(void *arg)
{
    hold_job *job = arg;
    struct timespec ts = { job->ms / 1000, (job->ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
    talon_req_release(job->req, job->status, job->status ? "released with an error" : NULL);
    free(job);
    return NULL;
}

static long query_long(talon_req *req, const char *key, long def, long min, long max)
{
    const char *v = talon_req_query(req, key);
    if (v == NULL || *v == '\0')
        return def;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end != '\0' || x < min || x > max)
        return min - 1;
    return x;
}

static void hold_get(talon_req *req, talon_resp *resp, void *ctx)
{
    long ms = query_long(req, "ms", 0, 0, HOLD_MAX_MS);
    long holds = query_long(req, "holds", 1, 1, HOLD_MAX_COUNT);
    long status = query_long(req, "status", 0, 0, 599);
    if (ms < 0 || holds < 1 || status < 0) {
        talon_resp_error(resp, 400, "Invalid query",
                         "ms must be 0..10000, holds 1..16 and status 0..599.");
        return;
    }
    demo_send_json(resp, 200, json_pack("{s:i,s:i}", "held_ms", (int)ms, "holds", (int)holds));
    for (long i = 0; i < holds; i++) {
        talon_req_hold(req);
        int last_status = i == holds - 1 ? (int)status : 0;
        if (ms == 0) {
            talon_req_release(req, last_status, last_status ? "released with an error" : NULL);
            continue;
        }
        hold_job *job = malloc(sizeof(*job));
        pthread_t t;
        if (job != NULL) {
            *job = (hold_job){ req, ms, last_status };
            if (pthread_create(&t, NULL, release_later, job) == 0) {
                pthread_detach(t);
                continue;
            }
            free(job);
        }
        talon_req_release(req, 503, "could not start the release thread");
    }
}

int demo_debug_routes(demo *d, char *err, size_t errlen)
{
    static const talon_resource hold = { .name = "debug_hold", .on_get = hold_get };
    return talon_app_add_route(d->app, "/debug/hold", &hold, err, errlen);
}
