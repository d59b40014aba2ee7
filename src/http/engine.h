/* The HTTP engines behind talon_app_serve() (serve.c), and what they share.
 * Two engines serve the same pipeline: talon's own (engine_native.c, the
 * default) and GNU libmicrohttpd (engine_mhd.c). Not a public API. */
#ifndef TALON_HTTP_ENGINE_H
#define TALON_HTTP_ENGINE_H

#include <stdbool.h>

#include "http/request.h"

/* What talon_app_serve() prepared for an engine: a listening socket, which
 * the engine owns and closes, and the checked options. */
typedef struct talon_serve {
    talon_app *app;
    const talon_server_options *opts;
    int listen_fd;
    unsigned threads;
    unsigned drain_s;
} talon_serve;

/* Serve until app->stopping, then drain. Return 0, or a negative errno when
 * the engine cannot start (err set). Only from talon_app_serve(). */
int talon_engine_native_run(const talon_serve *s, char *err, size_t errlen);
int talon_engine_mhd_run(const talon_serve *s, char *err, size_t errlen);

/* Block up to timeout_ms for the stop pipe or, when listen_fd >= 0, a
 * pending connection. Returns 1 when a connection is pending, 0 otherwise;
 * sets app->stopping (and logs the signal) when the stop pipe was written. */
int talon_serve_wait(talon_app *app, int listen_fd, int timeout_ms);

/* Whether accept() failed for the one connection only: Linux passes a
 * pending network error of the new connection on as accept()'s error, and
 * accept(2) says to retry on these as on EAGAIN. */
bool talon_accept_error_is_transient(int err);

/* The port a listening socket is bound to, 0 when unknown. */
unsigned talon_bound_port(int fd);

void talon_sleep_ms(long ms);

#endif
