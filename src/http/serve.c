/* talon_app_serve(): what both HTTP engines need before and after they
 * serve -- checked options, the listening socket, the stop pipe and the
 * signal handlers -- and the choice of engine. */
#include "http/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ACCEPT_BATCH 64      /* accepts per wake-up, so a stop is seen during a flood */
#define ACCEPT_PAUSE_MS 100  /* after EMFILE and the like, which a retry cannot fix at once */

static int signal_fd = -1; /* the serving app's stop pipe, for the signal handler */

static void on_stop_signal(int sig)
{
    int saved = errno;
    if (signal_fd >= 0) {
        char c = (char)sig;
        ssize_t n = write(signal_fd, &c, 1);
        (void)n;
    }
    errno = saved;
}

void talon_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Block up to timeout_ms for the stop pipe or, when listen_fd >= 0, a
 * pending connection. Returns true when a connection is pending; sets
 * app->stopping (and logs the signal) when the stop pipe was written. */
static bool wait_for_event(talon_app *app, int listen_fd, int timeout_ms)
{
    struct pollfd p[2] = { { .fd = app->stop_pipe[0], .events = POLLIN },
                           { .fd = listen_fd, .events = POLLIN } };
    int rc = poll(p, listen_fd >= 0 ? 2 : 1, timeout_ms);
    if (rc <= 0)
        return false;
    if (p[0].revents & POLLIN) {
        char buf[16];
        ssize_t n = read(app->stop_pipe[0], buf, sizeof(buf));
        if (n > 0 && buf[0] != 's')
            talon_log_info(app->log, "received %s", strsignal(buf[0]));
        atomic_store(&app->stopping, true);
    }
    return listen_fd >= 0 && (p[1].revents & POLLIN);
}

/* Whether accept() failed for the one connection only. Linux passes a
 * pending network error of the new connection on as accept()'s error, and
 * the accept(2) manual page tells to retry on these as on EAGAIN. */
static bool accept_error_is_transient(int err)
{
    switch (err) {
    case EINTR: case ECONNABORTED: case EPERM: case EPROTO: case ENOPROTOOPT:
    case ENETDOWN: case ENETUNREACH: case EHOSTDOWN: case EHOSTUNREACH: case ENONET:
    case EOPNOTSUPP:
        return true;
    default:
        return false;
    }
}

/* Accept the pending connections, at most ACCEPT_BATCH so that a stop is
 * seen during a flood. Returns false when accepting must pause because
 * descriptors or memory ran out; the pending connections then wait in the
 * kernel's listen queue. */
static bool accept_batch(talon_acceptor *a)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(a->listen_fd, (struct sockaddr *)&ss, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true;
            if (accept_error_is_transient(errno))
                continue;
            talon_log_limited(a->limit, "cannot accept a connection: %s; pausing accepts for "
                              "%d ms (raise the open file limit or lower connection_limit)",
                              strerror(errno), ACCEPT_PAUSE_MS);
            return false;
        }
        if (atomic_load(a->open) >= (long)a->hard_limit) {
            close(fd);
            talon_log_limited(a->limit, "closed a new connection without a response: %u "
                              "connections are open, the hard cap above connection_limit %u; "
                              "raise connection_limit if these clients are legitimate",
                              a->hard_limit, a->connection_limit);
            continue;
        }
        a->hand(a->engine, fd, &ss, len);
    }
    return true;
}

void talon_serve_until_stop(talon_acceptor *a)
{
    talon_app *app = a->app;
    int64_t next_tick = talon_now_ns() + 1000000000;
    bool paused = false;
    while (!atomic_load(&app->stopping)) {
        bool pending = wait_for_event(app, paused ? -1 : a->listen_fd,
                                      paused ? ACCEPT_PAUSE_MS : 1000);
        paused = false;
        if (pending && !atomic_load(&app->stopping))
            paused = !accept_batch(a);
        /* By the clock: under a steady stream of new connections poll()
         * never times out. */
        if (a->tick != NULL && talon_now_ns() >= next_tick) {
            a->tick(a->engine);
            next_tick = talon_now_ns() + 1000000000;
        }
    }
}

bool talon_admit_connection(atomic_long *admitted, unsigned limit)
{
    if (atomic_fetch_add(admitted, 1) < (long)limit)
        return true;
    atomic_fetch_sub(admitted, 1);
    return false;
}

bool talon_wait_zero(atomic_long *count, long timeout_ms)
{
    for (long waited = 0; atomic_load(count) > 0; waited += 10) {
        if (waited >= timeout_ms)
            return false;
        talon_sleep_ms(10);
    }
    return true;
}

unsigned talon_bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static unsigned default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* The engine named by opts->engine, else by TALON_ENGINE (for tests and
 * benchmarks), else the native one. */
static int pick_engine(const talon_server_options *o, bool *native, char *err, size_t errlen)
{
    const char *name = o->engine;
    if (name == NULL || name[0] == '\0')
        name = getenv("TALON_ENGINE");
    if (name == NULL || name[0] == '\0' || strcmp(name, "native") == 0) {
        *native = true;
        return 0;
    }
    if (strcmp(name, "libmicrohttpd") == 0) {
        *native = false;
        return 0;
    }
    snprintf(err, errlen, "invalid engine \"%.64s\": it must be native or libmicrohttpd", name);
    return -EINVAL;
}

static int check_max_header_size(const talon_server_options *o, char *err, size_t errlen)
{
    if (o->max_header_size < TALON_MAX_HEADER_SIZE_MIN ||
        o->max_header_size > TALON_MAX_HEADER_SIZE_MAX) {
        snprintf(err, errlen, "invalid max_header_size %zu: it must be between %d bytes and "
                 "1 MiB (%d bytes)", o->max_header_size, TALON_MAX_HEADER_SIZE_MIN,
                 TALON_MAX_HEADER_SIZE_MAX);
        return -EINVAL;
    }
    return 0;
}

static int check_connection_limit(const talon_server_options *o, char *err, size_t errlen)
{
    if (o->connection_limit < 1 || o->connection_limit > TALON_CONNECTION_LIMIT_MAX) {
        snprintf(err, errlen, "invalid connection_limit %u: it must be between 1 and %d",
                 o->connection_limit, TALON_CONNECTION_LIMIT_MAX);
        return -EINVAL;
    }
    return 0;
}

static int check_threads(const talon_server_options *o, char *err, size_t errlen)
{
    if (o->threads > TALON_THREADS_MAX) {
        snprintf(err, errlen, "invalid threads %u: it must be between 0 (one per core) and %d",
                 o->threads, TALON_THREADS_MAX);
        return -EINVAL;
    }
    return 0;
}

static int check_trusted_proxies(const talon_server_options *o, char *err, size_t errlen)
{
    talon_proxies *proxies = NULL;
    int rc = talon_proxies_parse(o->trusted_proxies, &proxies, err, errlen);
    talon_proxies_free(proxies);
    return rc;
}

static int check_engine(const talon_server_options *o, char *err, size_t errlen)
{
    bool native;
    return pick_engine(o, &native, err, errlen);
}

static int check_listen(const talon_server_options *o, char *err, size_t errlen)
{
    if (o->listen == NULL) {
        snprintf(err, errlen, "missing listen address: set listen, e.g. to 127.0.0.1:8080");
        return -EINVAL;
    }
    return talon_listen_check(o->listen, err, errlen);
}

/* One row per talon_server_options field. A field without a check accepts
 * every value. */
static const struct {
    const char *field;
    int (*check)(const talon_server_options *o, char *err, size_t errlen);
} option_checks[] = {
    { "listen", check_listen },
    { "threads", check_threads },
    { "connection_timeout_s", NULL },
    { "connection_limit", check_connection_limit },
    { "max_header_size", check_max_header_size },
    { "max_body_size", NULL },
    { "trusted_proxies", check_trusted_proxies },
    { "drain_timeout_s", NULL },
    { "engine", check_engine },
};

int talon_server_options_check(const talon_server_options *opts, const char *field, char *err,
                               size_t errlen)
{
    bool known = false;
    for (size_t i = 0; i < sizeof(option_checks) / sizeof(option_checks[0]); i++) {
        if (field != NULL && strcmp(field, option_checks[i].field) != 0)
            continue;
        known = true;
        if (option_checks[i].check == NULL)
            continue;
        int rc = option_checks[i].check(opts, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (!known) {
        snprintf(err, errlen, "unknown talon_server_options field \"%.64s\"", field);
        return -EINVAL;
    }
    return 0;
}

int talon_app_serve(talon_app *app, const talon_server_options *opts_in, char *err,
                    size_t errlen)
{
    talon_server_options defaults;
    talon_server_options_init(&defaults);
    const talon_server_options *opts = opts_in ? opts_in : &defaults;
    bool native = true;
    int rc = talon_server_options_check(opts, NULL, err, errlen);
    if (rc == 0)
        rc = pick_engine(opts, &native, err, errlen);
    if (rc < 0)
        return rc;
    talon_proxies_free(app->proxies);
    app->proxies = NULL;
    rc = talon_proxies_parse(opts->trusted_proxies, &app->proxies, err, errlen);
    if (rc < 0)
        return rc;
    app->max_body_size = opts->max_body_size;
    talon_serve s = {
        .app = app,
        .opts = opts,
        .threads = opts->threads ? opts->threads : default_threads(),
        .drain_s = opts->drain_timeout_s ? opts->drain_timeout_s : 30,
    };

    s.listen_fd = talon_listen_open(opts->listen, err, errlen);
    if (s.listen_fd < 0)
        return s.listen_fd;
    if (pipe2(app->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot create the stop pipe: %s", strerror(errno));
        close(s.listen_fd);
        return rc;
    }

    struct sigaction sa = { .sa_handler = on_stop_signal }, old_int, old_term, old_pipe;
    sigemptyset(&sa.sa_mask);
    signal_fd = app->stop_pipe[1];
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    struct sigaction ign = { .sa_handler = SIG_IGN };
    sigaction(SIGPIPE, &ign, &old_pipe);
    atomic_store(&app->stopping, false);

    rc = native ? talon_engine_native_run(&s, err, errlen) : talon_engine_mhd_run(&s, err, errlen);

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    signal_fd = -1;
    close(app->stop_pipe[0]);
    close(app->stop_pipe[1]);
    app->stop_pipe[0] = app->stop_pipe[1] = -1;
    return rc;
}
