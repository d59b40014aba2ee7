/* falcon-recipe: the classic Falcon logging recipe, step by step, in C.
 *
 * The Python recipe configures logging with a file and a level
 * (logging.basicConfig(filename="app.log", level=logging.INFO)), adds a
 * middleware that logs each request in process_resource and each response
 * in process_response, and keeps a separate "audit" logger for security
 * events such as a login. Each step below does the same with talon.
 *
 *   falcon-recipe [--listen ADDR] [--port-file PATH] [--log-dir DIR]
 *
 * app.log gets lines such as
 *   2024-05-01T10:00:00.123456Z INFO app Request: GET /things?limit=2
 *   2024-05-01T10:00:00.123789Z INFO app Response: 200 OK
 * and audit.log gets
 *   2024-05-01T10:00:01.000001Z INFO audit login user=alice outcome=success client.ip=127.0.0.1
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "talon/app.h"
#include "talon/log.h"

/* The one account of this example; the password never reaches a log. */
#define DEMO_USER "alice"
#define DEMO_PASSWORD "wonderland"

static talon_logger *app_log;
static talon_logger *audit_log;

/* Step 1: log to app.log at INFO, and audit events to their own file. */
static int setup_logging(const char *dir)
{
    char path[4096], err[512];
    talon_sink *sink;
    int rc;

    app_log = talon_logger_get("app");
    audit_log = talon_logger_get("audit");

    snprintf(path, sizeof(path), "%s/app.log", dir);
    rc = talon_sink_open_file(&sink, path, NULL, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "falcon-recipe: %s\n", err);
        return rc;
    }
    talon_logger_add_sink(app_log, sink, TALON_LOG_INFO, NULL);

    snprintf(path, sizeof(path), "%s/audit.log", dir);
    rc = talon_sink_open_file(&sink, path, NULL, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "falcon-recipe: %s\n", err);
        return rc;
    }
    talon_logger_add_sink(audit_log, sink, TALON_LOG_INFO, NULL);
    return 0;
}

/* Step 2: the logging middleware. process_resource runs once a route
 * matched; process_response runs for every request, 404s included. */
static void log_resource(talon_req *req, talon_resp *resp, const talon_resource *resource,
                         void *ctx)
{
    /* The relative URI with secret query values (?token=...) redacted. */
    const char *target = talon_req_target(req);
    size_t len = strlen(target);
    size_t out_len = talon_redact_url(target, len, talon_secret_words, NULL, NULL);
    char *uri = malloc(out_len + 1);

    if (!uri) {
        talon_log_error(app_log, "Request: %s (out of memory for the URI)", talon_req_method(req));
        return;
    }
    talon_redact_url(target, len, talon_secret_words, uri, NULL);
    uri[out_len] = '\0';
    talon_log_info(app_log, "Request: %s %s", talon_req_method(req), uri);
    free(uri);
}

static void log_response(talon_req *req, talon_resp *resp, const talon_resource *resource,
                         bool req_succeeded, void *ctx)
{
    int status = talon_resp_status(resp);

    /* Falcon's resp.status reads "200 OK". */
    talon_log_info(app_log, "Response: %d %s", status, talon_status_reason(status));
}

/* Step 3: the audit logger's log_audit_event(type, data). */
static void log_audit_event(const char *type, const talon_field *data, size_t ndata)
{
    talon_log_fields(audit_log, TALON_LOG_INFO, data, ndata, "%s", type);
}

/* GET /things: a small list, as in Falcon's tutorial. */
static void things_get(talon_req *req, talon_resp *resp, void *ctx)
{
    json_t *list = json_pack("[{s:i, s:s}, {s:i, s:s}]", "id", 1, "name", "kettle",
                             "id", 2, "name", "teapot");

    talon_resp_json(resp, 200, list);
}

/* POST /login {"username": ..., "password": ...} */
static void login_post(talon_req *req, talon_resp *resp, void *ctx)
{
    json_t *body = talon_req_json(req, resp);
    const char *user = NULL, *password = NULL;
    bool ok;

    if (!body)
        return;
    json_unpack(body, "{s?s, s?s}", "username", &user, "password", &password);
    if (!user || !password) {
        talon_resp_error(resp, 400, NULL, "send {\"username\": ..., \"password\": ...}");
        json_decref(body);
        return;
    }
    ok = strcmp(user, DEMO_USER) == 0 && strcmp(password, DEMO_PASSWORD) == 0;

    talon_field data[] = {
        TALON_F_STR("user", user),
        TALON_F_STR("outcome", ok ? "success" : "failure"),
        TALON_F_STR("client.ip", talon_req_client_ip(req)),
    };
    log_audit_event("login", data, sizeof(data) / sizeof(data[0]));

    if (ok)
        talon_resp_json(resp, 200, json_pack("{s:s}", "user", user));
    else
        talon_resp_error(resp, 401, NULL, "wrong username or password");
    json_decref(body);
}

/* The port is known only once talon_app_serve() has bound it: poll for it
 * and write it for test harnesses (written to a temporary name first, so a
 * reader never sees half a number). */
typedef struct port_writer {
    talon_app *app;
    const char *path;
    atomic_bool serve_returned;
} port_writer;

static void *write_port_file(void *arg)
{
    port_writer *pw = arg;
    char tmp[4200];
    unsigned port = 0;

    for (int i = 0; i < 2000 && !(port = talon_app_port(pw->app)); i++) {
        if (atomic_load(&pw->serve_returned))
            return NULL;
        usleep(5000);
    }
    if (!port) {
        talon_log_error(app_log, "no port bound after 10 s; %s not written", pw->path);
        return NULL;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", pw->path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, pw->path) != 0)
        talon_log_error(app_log, "failed to write port file %s: %s", pw->path, strerror(errno));
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: falcon-recipe [--listen ADDR] [--port-file PATH] [--log-dir DIR]\n"
                 "  --listen ADDR     address to serve on (default 127.0.0.1:8000; port 0 picks one)\n"
                 "  --port-file PATH  write the bound port to PATH once listening\n"
                 "  --log-dir DIR     directory of app.log and audit.log (default .)\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        { "listen", required_argument, NULL, 'l' },
        { "port-file", required_argument, NULL, 'p' },
        { "log-dir", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *listen = "127.0.0.1:8000", *port_file = NULL, *log_dir = ".";
    talon_server_options server;
    pthread_t port_thread;
    port_writer pw;
    char err[512];
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'l': listen = optarg; break;
        case 'p': port_file = optarg; break;
        case 'd': log_dir = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }

    if (setup_logging(log_dir) < 0)
        return 1;

    talon_app *app = talon_app_new();
    talon_middleware logging_mw = { .process_resource = log_resource,
                                    .process_response = log_response };
    talon_resource things = { .name = "things", .on_get = things_get };
    talon_resource login = { .name = "login", .on_post = login_post };

    if (!app || talon_app_add_middleware(app, &logging_mw) < 0 ||
        talon_app_add_route(app, "/things", &things, err, sizeof(err)) < 0 ||
        talon_app_add_route(app, "/login", &login, err, sizeof(err)) < 0) {
        fprintf(stderr, "falcon-recipe: failed to set up the app: %s\n", err);
        return 1;
    }

    talon_server_options_init(&server);
    server.listen = listen;
    pw.app = app;
    pw.path = port_file;
    atomic_init(&pw.serve_returned, false);
    if (port_file) {
        pthread_create(&port_thread, NULL, write_port_file, &pw);
    }
    talon_log_info(app_log, "falcon-recipe starting on %s", listen);
    rc = talon_app_serve(app, &server, err, sizeof(err));
    atomic_store(&pw.serve_returned, true);
    if (rc < 0) {
        talon_log_error(app_log, "failed to serve: %s", err);
        fprintf(stderr, "falcon-recipe: %s\n", err);
    } else {
        talon_log_info(app_log, "falcon-recipe stopped");
    }
    if (port_file)
        pthread_join(port_thread, NULL);
    talon_app_free(app);
    talon_log_shutdown();
    return rc < 0 ? 1 : 0;
}
