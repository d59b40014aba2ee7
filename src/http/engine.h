/* The HTTP engines behind talon_app_serve() (serve.c), and what they share.
 * Two engines serve the same pipeline: talon's own (engine_native.c, the
 * default) and GNU libmicrohttpd (engine_mhd.c). Not a public API. */
#ifndef TALON_HTTP_ENGINE_H
#define TALON_HTTP_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

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

/* The accepting side of an engine. talon accepts connections itself, on
 * the serving thread, and hands each to the engine: see serve.c. */
typedef struct talon_acceptor {
    talon_app *app;
    int listen_fd;
    atomic_long *open;          /* the engine's count of open connections */
    unsigned hard_limit;        /* past it a new connection is closed at once */
    unsigned connection_limit;  /* named in the warning */
    talon_log_limit *limit;     /* accept warnings, one a second */
    /* Take a new non-blocking connection: count it in *open and serve it,
     * or close it. Only on the serving thread. */
    void (*hand)(void *engine, int fd, const struct sockaddr_storage *ss, socklen_t len);
    void *engine;
    void (*tick)(void *engine); /* once a second on the serving thread; may be NULL */
} talon_acceptor;

/* Accept and hand over connections until app->stopping; then return. */
void talon_serve_until_stop(talon_acceptor *a);

/* Take one of the limit slots counted in *admitted for a new connection;
 * false when all are taken. */
bool talon_admit_connection(atomic_long *admitted, unsigned limit);

/* Wait until *count is 0, up to timeout_ms. Returns false on timeout. */
bool talon_wait_zero(atomic_long *count, long timeout_ms);

/* The port a listening socket is bound to, 0 when unknown. */
unsigned talon_bound_port(int fd);

void talon_sleep_ms(long ms);

#endif
