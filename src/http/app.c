/* The app: routes, middleware, completion callbacks and user data. */
#include "http/request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void talon_server_options_init(talon_server_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->listen = "127.0.0.1:8080";
    opts->threads = 0;
    opts->connection_timeout_s = 30;
    opts->connection_limit = 10000;
    opts->max_header_size = 16 * 1024;
    opts->max_body_size = 1024 * 1024;
    opts->trusted_proxies = NULL;
}

talon_app *talon_app_new(void)
{
    talon_app *app = calloc(1, sizeof(*app));
    if (app == NULL)
        return NULL;
    app->router = talon_router_new();
    if (app->router == NULL) {
        free(app);
        return NULL;
    }
    app->max_body_size = 1024 * 1024;
    app->log = talon_logger_get("app");
    app->stop_pipe[0] = app->stop_pipe[1] = -1;
    atomic_init(&app->stopping, false);
    atomic_init(&app->port, 0);
    return app;
}

void talon_app_free(talon_app *app)
{
    if (app == NULL)
        return;
    talon_router_free(app->router);
    free(app->middleware);
    free(app->completions);
    talon_userdata *u = app->userdata;
    while (u != NULL) {
        talon_userdata *next = u->next;
        free(u->key);
        free(u);
        u = next;
    }
    talon_proxies_free(app->proxies);
    free(app);
}

int talon_app_add_route(talon_app *app, const char *uri_template,
                        const talon_resource *resource, char *err, size_t errlen)
{
    if (uri_template == NULL || resource == NULL) {
        snprintf(err, errlen, "talon_app_add_route: the URI template and the resource are "
                 "required");
        return -EINVAL;
    }
    return talon_router_add(app->router, uri_template, resource, err, errlen);
}

int talon_app_add_middleware(talon_app *app, const talon_middleware *mw)
{
    if (mw == NULL)
        return -EINVAL;
    talon_middleware *grown = realloc(app->middleware, (app->nmiddleware + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    grown[app->nmiddleware++] = *mw;
    app->middleware = grown;
    return 0;
}

int talon_app_on_complete(talon_app *app, talon_completion_fn fn, void *ctx)
{
    /* A NULL callback would be called, and crash, on the first request. */
    if (fn == NULL)
        return -EINVAL;
    talon_completion_hook *grown =
        realloc(app->completions, (app->ncompletions + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    grown[app->ncompletions].fn = fn;
    grown[app->ncompletions].ctx = ctx;
    app->ncompletions++;
    app->completions = grown;
    return 0;
}

void talon_app_set_strip_trailing_slash(talon_app *app, bool strip)
{
    app->strip_trailing_slash = strip;
}

void talon_app_set_userdata(talon_app *app, const char *key, void *value)
{
    for (talon_userdata *u = app->userdata; u != NULL; u = u->next) {
        if (strcmp(u->key, key) == 0) {
            u->value = value;
            return;
        }
    }
    talon_userdata *u = malloc(sizeof(*u));
    if (u == NULL)
        return;
    u->key = strdup(key);
    if (u->key == NULL) {
        free(u);
        return;
    }
    u->value = value;
    u->next = app->userdata;
    app->userdata = u;
}

void *talon_app_userdata(const talon_app *app, const char *key)
{
    for (const talon_userdata *u = app->userdata; u != NULL; u = u->next) {
        if (strcmp(u->key, key) == 0)
            return u->value;
    }
    return NULL;
}

void talon_app_stop(talon_app *app)
{
    atomic_store(&app->stopping, true);
    int fd = app->stop_pipe[1];
    if (fd >= 0) {
        char c = 's';
        ssize_t n = write(fd, &c, 1);
        (void)n; /* a full pipe already holds a wake-up */
    }
}

bool talon_app_stopping(const talon_app *app)
{
    return atomic_load(&((talon_app *)app)->stopping);
}

unsigned talon_app_port(const talon_app *app)
{
    return atomic_load(&((talon_app *)app)->port);
}

/* Run every completion callback; the engine calls this once per request. */
void talon_app_run_completions(talon_app *app, const talon_req *req,
                               const talon_completion *done)
{
    for (size_t i = 0; i < app->ncompletions; i++)
        app->completions[i].fn(req, &req->resp, done, app->completions[i].ctx);
}
