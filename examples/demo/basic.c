/* GET /health and GET /hello. /hello sends the fixed small JSON response
 * that the benchmarks request. */
#include "demo.h"

static void health_get(talon_req *req, talon_resp *resp, void *ctx)
{
    demo_send_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void hello_get(talon_req *req, talon_resp *resp, void *ctx)
{
    static const char body[] = "{\"message\":\"hello, world\"}";
    talon_resp_set_status(resp, 200);
    talon_resp_set_header(resp, "Content-Type", "application/json");
    talon_resp_set_body(resp, body, sizeof(body) - 1);
}

void demo_send_json(talon_resp *resp, int status, json_t *doc)
{
    if (doc == NULL) {
        talon_resp_error(resp, 500, NULL, "The response could not be built.");
        return;
    }
    talon_resp_json(resp, status, doc);
}

int demo_basic_routes(demo *d, char *err, size_t errlen)
{
    static const talon_resource health = { .name = "health", .on_get = health_get };
    static const talon_resource hello = { .name = "hello", .on_get = hello_get };
    int rc = talon_app_add_route(d->app, "/health", &health, err, errlen);
    if (rc == 0)
        rc = talon_app_add_route(d->app, "/hello", &hello, err, errlen);
    return rc;
}
