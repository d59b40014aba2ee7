/* talon-bench-app: GET /hello with the classic Falcon logging recipe, in C.
 *
 * bench/run compiles this against the build's libtalon.a to measure talon
 * doing the same work per request as the Python peer (bench/falcon_app.py):
 * a middleware whose process_resource logs "Request: <method> <target>" and
 * whose process_response logs "Response: <status>" to the app log, plus the
 * access log. The INI file sets everything:
 *
 *   [server]      threads, connection_limit, connection_timeout
 *   [bench]       request_log = true|false  (the two app-log lines per request)
 *   [access_log]  enabled, ... (as talon-demo)
 *   [audit], [audit.policy]  the audit trail and its policy; when present,
 *                 POST /notes returns 201 and the policy decides what it records
 *   [log.app], [log.access]  sinks, levels and formats (docs/logging.md)
 *
 *   talon-bench-app --listen ADDR:PORT --port-file FILE --config FILE
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "talon/access_log.h"
#include "talon/app.h"
#include "talon/audit.h"
#include "talon/audit_http.h"
#include "talon/config.h"
#include "talon/log.h"

static const char hello_body[] = "{\"message\":\"hello, world\"}";

typedef struct bench_config {
    talon_server_options server;
    talon_access_log_options access;
    bool request_log;
    bool audit;                   /* an [audit] or [audit.policy] section was read */
    talon_audit_options audit_options;
    talon_audit_policy *policy;
} bench_config;

static talon_logger *app_log;

static void hello_get(talon_req *req, talon_resp *resp, void *ctx)
{
    talon_resp_set_status(resp, 200);
    talon_resp_set_header(resp, "Content-Type", "application/json");
    talon_resp_set_body(resp, hello_body, sizeof(hello_body) - 1);
}

/* POST /notes: a small 201 response, so that the audit record is the
 * only work that differs between the audit policies. */
static void notes_post(talon_req *req, talon_resp *resp, void *ctx)
{
    static const char created[] = "{\"id\":1}";
    talon_resp_set_status(resp, 201);
    talon_resp_set_header(resp, "Content-Type", "application/json");
    talon_resp_set_body(resp, created, sizeof(created) - 1);
}

static void log_request(talon_req *req, talon_resp *resp, const talon_resource *resource,
                        void *ctx)
{
    talon_log_info(app_log, "Request: %s %s", talon_req_method(req), talon_req_target(req));
}

static void log_response(talon_req *req, talon_resp *resp, const talon_resource *resource,
                         bool req_succeeded, void *ctx)
{
    int status = talon_resp_status(resp);
    talon_log_info(app_log, "Response: %d %s", status, talon_status_reason(status));
}

static int parse_unsigned(const char *value, unsigned *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v > 1000000) {
        snprintf(err, errlen, "invalid number '%s'; expected 0 to 1000000", value);
        return -EINVAL;
    }
    *out = (unsigned)v;
    return 0;
}

static int config_handler(void *ctx, const char *section, const char *key, const char *value,
                          char *err, size_t errlen)
{
    bench_config *c = ctx;
    if (strcmp(section, "server") == 0) {
        if (strcmp(key, "threads") == 0)
            return parse_unsigned(value, &c->server.threads, err, errlen);
        if (strcmp(key, "connection_limit") == 0)
            return parse_unsigned(value, &c->server.connection_limit, err, errlen);
        if (strcmp(key, "connection_timeout") == 0)
            return parse_unsigned(value, &c->server.connection_timeout_s, err, errlen);
        snprintf(err, errlen, "unknown key; expected threads, connection_limit, connection_timeout");
        return -EINVAL;
    }
    if (strcmp(section, "bench") == 0 && strcmp(key, "request_log") == 0) {
        int on;
        int rc = talon_config_parse_bool(value, &on, err, errlen);
        c->request_log = on;
        return rc;
    }
    if (strcmp(section, "access_log") == 0)
        return talon_access_log_config_set(&c->access, key, value, err, errlen);
    if (strcmp(section, "audit") == 0) {
        c->audit = true;
        return talon_audit_config_set(&c->audit_options, key, value, err, errlen);
    }
    if (strcmp(section, "audit.policy") == 0) {
        c->audit = true;
        return talon_audit_policy_config_set(c->policy, key, value, err, errlen);
    }
    snprintf(err, errlen, "unknown section or key; expected [server], [bench] request_log, "
             "[access_log] or [log.*]");
    return -EINVAL;
}

typedef struct ready_ctx {
    const char *port_file;
} ready_ctx;

static void on_ready(talon_app *app, void *arg)
{
    ready_ctx *r = arg;
    if (r->port_file == NULL)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", r->port_file);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%u\n", talon_app_port(app)) < 0 || fclose(f) != 0 ||
        rename(tmp, r->port_file) < 0)
        talon_log_error(app_log, "cannot write the port file %s: %s", r->port_file, strerror(errno));
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        { "listen", required_argument, NULL, 'l' },
        { "port-file", required_argument, NULL, 'p' },
        { "config", required_argument, NULL, 'c' },
        { "threads", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 },
    };
    bench_config c = { .request_log = false };
    talon_server_options_init(&c.server);
    talon_access_log_options_init(&c.access);
    talon_audit_options_init(&c.audit_options);
    c.policy = talon_audit_policy_new();
    if (c.policy == NULL) {
        fprintf(stderr, "talon-bench-app: out of memory\n");
        return 1;
    }
    const char *listen = "127.0.0.1:0", *config = NULL, *threads = NULL;
    ready_ctx ready = { NULL };
    char err[1024] = "";
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'l': listen = optarg; break;
        case 'p': ready.port_file = optarg; break;
        case 'c': config = optarg; break;
        case 't': threads = optarg; break;
        default:
            fprintf(stderr, "usage: talon-bench-app [--listen ADDR:PORT] [--port-file FILE] "
                    "[--config FILE] [--threads N]\n");
            return 2;
        }
    }

    app_log = talon_logger_get("app");
    if (config != NULL && talon_config_load(config, config_handler, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, "talon-bench-app: %s\n", err);
        return 2;
    }
    if (threads != NULL && parse_unsigned(threads, &c.server.threads, err, sizeof(err)) < 0) {
        fprintf(stderr, "talon-bench-app: --threads: %s\n", err);
        return 2;
    }
    if (talon_log_config_apply(err, sizeof(err)) < 0) {
        fprintf(stderr, "talon-bench-app: %s\n", err);
        return 2;
    }

    int rc = 1;
    talon_access_log *access_log = NULL;
    talon_audit_trail *trail = NULL;
    talon_app *app = talon_app_new();
    static const talon_resource hello = { .name = "hello", .on_get = hello_get };
    static const talon_resource notes = { .name = "notes", .on_post = notes_post };
    const talon_middleware recipe = { .process_resource = log_request,
                                      .process_response = log_response };
    if (app == NULL || talon_app_add_route(app, "/hello", &hello, err, sizeof(err)) < 0)
        goto out;
    if (c.audit) {
        /* A fresh trail for each run: keys are made at first start. */
        char verify_key[4096];
        snprintf(verify_key, sizeof(verify_key), "%s.verify", c.audit_options.state_file);
        if (access(c.audit_options.state_file, F_OK) != 0 &&
            talon_audit_keygen(verify_key, c.audit_options.state_file, err, sizeof(err)) < 0)
            goto out;
        if (talon_audit_open(&trail, &c.audit_options, err, sizeof(err)) < 0)
            goto out;
        talon_audit_policy_set_failure(c.policy, c.audit_options.failure);
        if (talon_app_set_audit(app, trail, c.policy) < 0 ||
            talon_app_add_route(app, "/notes", &notes, err, sizeof(err)) < 0)
            goto out;
    }
    if (c.request_log && talon_app_add_middleware(app, &recipe) < 0)
        goto out;
    if (talon_access_log_attach(app, &c.access, &access_log, err, sizeof(err)) < 0)
        goto out;

    c.server.listen = listen;
    c.server.on_ready = on_ready;
    c.server.on_ready_ctx = &ready;
    if (talon_app_serve(app, &c.server, err, sizeof(err)) < 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "talon-bench-app: %s\n", err[0] ? err : "out of memory");
    if (trail != NULL) {
        talon_app_audit_detach(app);
        talon_audit_close(trail);
    }
    talon_audit_policy_free(c.policy);
    talon_audit_options_release(&c.audit_options);
    talon_app_free(app);
    talon_access_log_free(access_log);
    talon_log_shutdown();
    return rc;
}
