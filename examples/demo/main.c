/* talon-demo: a small notes service built with talon.
 *
 * main() reads the flags, then the configuration file (one handler per
 * section below), registers the resources of each area, and serves until
 * SIGINT or SIGTERM. To add an area: write its file, add its routes call
 * to add_routes() and its configuration section to config_sections[]. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo.h"
#include "demo_audit.h"
#include "talon/config.h"
#include "talon/log.h"

static const char usage[] =
    "Usage: talon-demo [OPTIONS]\n"
    "       talon-demo --hash-password < PASSWORD\n"
    "Serve the talon demo: /health, /hello, the notes API (/notes, /notes/{id:int}),\n"
    "logins and users (/login, /logout, /users) and the audit trail (/audit).\n"
    "\n"
    "  --listen ADDR:PORT  address to listen on (default 127.0.0.1:8080; port 0 picks one)\n"
    "  --config FILE       INI configuration file; see examples/demo/talon-demo.ini\n"
    "  --threads N         HTTP worker threads (default: one per core)\n"
    "  --port-file FILE    write the bound port to FILE once listening\n"
    "  --test-routes       add the /debug/... routes used by the end-to-end tests\n"
    "  --hash-password     read a password of 8 to 256 bytes from standard input,\n"
    "                      print its scrypt hash for a users file, and exit\n"
    "  --help              show this help\n"
    "\n"
    "Configuration sections: [server] (docs/framework.md), [log.*] and [access_log]\n"
    "(docs/logging.md). Flags override the configuration file. SIGINT or SIGTERM\n"
    "stops the server after the requests in flight finish; SIGHUP or SIGUSR1\n"
    "reopens the log files.\n";

/* ---- Configuration ---- */

static int parse_uint(const char *value, unsigned min, unsigned max, unsigned *out, char *err,
                      size_t errlen)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || x < min || x > max || value[0] == '-') {
        snprintf(err, errlen, "invalid value \"%s\": expected a whole number from %u to %u",
                 value, min, max);
        return -EINVAL;
    }
    *out = (unsigned)x;
    return 0;
}

static int parse_seconds(const char *value, unsigned *out, char *err, size_t errlen)
{
    unsigned long long s;
    int rc = talon_config_parse_seconds(value, &s, err, errlen);
    if (rc == 0 && s > 86400) {
        snprintf(err, errlen, "invalid duration \"%s\": at most 1d", value);
        rc = -EINVAL;
    }
    if (rc == 0)
        *out = (unsigned)s;
    return rc;
}

static int parse_size(const char *value, size_t *out, char *err, size_t errlen)
{
    unsigned long long n;
    int rc = talon_config_parse_size(value, &n, err, errlen);
    if (rc == 0 && n > (1ULL << 40)) {
        snprintf(err, errlen, "invalid size \"%s\": at most 1T", value);
        rc = -EINVAL;
    }
    if (rc == 0)
        *out = (size_t)n;
    return rc;
}

/* Copy a string value, or reject one that does not fit in size. */
static int copy_value(char *out, size_t size, const char *value, char *err, size_t errlen)
{
    if (snprintf(out, size, "%s", value) >= (int)size) {
        snprintf(err, errlen, "invalid value: it is %zu bytes long, at most %zu are allowed",
                 strlen(value), size - 1);
        return -EINVAL;
    }
    return 0;
}

/* Parse one [server] key into d->server. *field is set to the
 * talon_server_options field to check, or NULL. */
static int parse_server_key(demo *d, const char *key, const char *value, const char **field,
                            char *err, size_t errlen)
{
    talon_server_options *o = &d->server;
    *field = key;
    if (strcmp(key, "listen") == 0) {
        o->listen = d->listen;
        return copy_value(d->listen, sizeof(d->listen), value, err, errlen);
    }
    if (strcmp(key, "threads") == 0)
        return parse_uint(value, 0, TALON_THREADS_MAX, &o->threads, err, errlen);
    if (strcmp(key, "connection_timeout") == 0) {
        *field = "connection_timeout_s";
        return parse_seconds(value, &o->connection_timeout_s, err, errlen);
    }
    if (strcmp(key, "drain_timeout") == 0) {
        *field = "drain_timeout_s";
        int rc = parse_seconds(value, &o->drain_timeout_s, err, errlen);
        /* Reject 0: in the C options it selects the 30 s default, which an
         * operator writing 0 would not expect. */
        if (rc == 0 && o->drain_timeout_s == 0) {
            snprintf(err, errlen, "invalid drain_timeout \"%s\": it must be between 1s and 1d; "
                     "leave the key out for the 30s default", value);
            rc = -EINVAL;
        }
        return rc;
    }
    if (strcmp(key, "connection_limit") == 0)
        return parse_uint(value, 1, TALON_CONNECTION_LIMIT_MAX, &o->connection_limit, err,
                          errlen);
    if (strcmp(key, "max_header_size") == 0)
        return parse_size(value, &o->max_header_size, err, errlen);
    if (strcmp(key, "max_body_size") == 0)
        return parse_size(value, &o->max_body_size, err, errlen);
    if (strcmp(key, "trusted_proxies") == 0) {
        o->trusted_proxies = d->trusted_proxies;
        return copy_value(d->trusted_proxies, sizeof(d->trusted_proxies), value, err, errlen);
    }
    if (strcmp(key, "engine") == 0) {
        o->engine = d->engine;
        return copy_value(d->engine, sizeof(d->engine), value, err, errlen);
    }
    *field = NULL;
    if (strcmp(key, "strip_trailing_slash") == 0) {
        int on;
        int rc = talon_config_parse_bool(value, &on, err, errlen);
        if (rc == 0)
            d->strip_trailing_slash = on;
        return rc;
    }
    snprintf(err, errlen, "unknown key; [server] accepts listen, threads, connection_timeout, "
             "drain_timeout, connection_limit, max_header_size, max_body_size, "
             "trusted_proxies, strip_trailing_slash, engine");
    return -EINVAL;
}

/* [server]: the HTTP engine's options. Each value is checked here with
 * talon_app_serve()'s own check, so that the error names its line and
 * comes before the logs, the audit trail or its keys are created. */
static int config_server(demo *d, const char *section, const char *key, const char *value,
                         char *err, size_t errlen)
{
    const char *field;
    int rc = parse_server_key(d, key, value, &field, err, errlen);
    if (rc == 0 && field != NULL)
        rc = talon_server_options_check(&d->server, field, err, errlen);
    return rc;
}

typedef int (*config_section_fn)(demo *d, const char *section, const char *key,
                                 const char *value, char *err, size_t errlen);

/* One row per section; "[log.*]" sections go to the log core directly
 * (talon_config_load). A name ending in '*' matches as a prefix. */
static const struct {
    const char *section;
    config_section_fn fn;
} config_sections[] = {
    { "server", config_server },
    { "audit", demo_config_audit },
    { "audit.policy", demo_config_audit },
    { "demo.auth", demo_config_audit },
    { "access_log", demo_access_log_config },
};

static int config_handler(void *ctx, const char *section, const char *key, const char *value,
                          char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof(config_sections) / sizeof(config_sections[0]); i++) {
        const char *name = config_sections[i].section;
        size_t len = strlen(name);
        bool prefix = len > 0 && name[len - 1] == '*';
        if (prefix ? strncmp(section, name, len - 1) == 0 : strcmp(section, name) == 0)
            return config_sections[i].fn(ctx, section, key, value, err, errlen);
    }
    snprintf(err, errlen, "unknown section [%s]", section);
    return -EINVAL;
}


/* ---- Serving ---- */

typedef struct ready_ctx {
    const char *port_file;
    const char *config_path;
    const char *listen;
} ready_ctx;

/* Write the port to a temporary file and rename it, so that a reader never
 * sees a partial number. The file is 0644 whatever the umask: anyone may read
 * the port, but no other user may change where a supervisor connects. */
static void write_port_file(const char *path, unsigned port, talon_logger *log)
{
    char tmp[4096], text[16];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int len = snprintf(text, sizeof(text), "%u\n", port);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    bool ok = fd >= 0 && fchmod(fd, 0644) == 0 && write(fd, text, (size_t)len) == len;
    int saved = errno;
    if (fd >= 0 && close(fd) < 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (ok && rename(tmp, path) < 0) {
        ok = false;
        saved = errno;
    }
    if (!ok)
        talon_log_error(log, "cannot write the port file %s: %s", path, strerror(saved));
}

static void on_ready(talon_app *app, void *arg)
{
    ready_ctx *r = arg;
    printf("talon-demo: serving on %s (port %u)\n", r->listen, talon_app_port(app));
    demo_logging_print(r->config_path);
    fflush(stdout);
    if (r->port_file != NULL)
        write_port_file(r->port_file, talon_app_port(app), talon_logger_get("app"));
}

static void on_reopen_signal(int sig)
{
    talon_log_reopen();
}

/* Print an error that stops the start, and log it to the app log, which
 * already has the "starting" line. */
static void report_start_error(const char *err)
{
    fprintf(stderr, "talon-demo: %s\n", err);
    talon_log_error(talon_logger_get("app"), "talon-demo cannot start: %s", err);
}

static int add_routes(demo *d, char *err, size_t errlen)
{
    int rc = demo_basic_routes(d, err, errlen);
    if (rc == 0)
        rc = demo_notes_routes(d, err, errlen);
    if (rc == 0 && d->test_routes)
        rc = demo_debug_routes(d, err, errlen);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "config", required_argument, NULL, 'c' },
        { "threads", required_argument, NULL, 't' },
        { "port-file", required_argument, NULL, 'p' },
        { "test-routes", no_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int option_rc = demo_audit_option(argc, argv);
    if (option_rc >= 0)
        return option_rc;
    const char *listen_flag = NULL, *config_path = NULL, *threads_flag = NULL;
    const char *port_file = NULL;
    bool test_routes = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l': listen_flag = optarg; break;
        case 'c': config_path = optarg; break;
        case 't': threads_flag = optarg; break;
        case 'p': port_file = optarg; break;
        case 'T': test_routes = true; break;
        case 'h': fputs(usage, stdout); fputs(demo_audit_usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "talon-demo: unexpected argument \"%s\"\n%s", argv[optind], usage);
        return 2;
    }

    demo d = { .test_routes = test_routes };
    talon_server_options_init(&d.server);
    snprintf(d.listen, sizeof(d.listen), "%s", d.server.listen);
    char err[1024] = "";
    if (demo_logging_defaults(err, sizeof(err)) < 0) {
        fprintf(stderr, "talon-demo: %s\n", err);
        return 2;
    }
    if (config_path != NULL && talon_config_load(config_path, config_handler, &d, err,
                                                 sizeof(err)) < 0) {
        fprintf(stderr, "talon-demo: %s\n", err);
        return 2;
    }
    if (listen_flag != NULL)
        snprintf(d.listen, sizeof(d.listen), "%s", listen_flag);
    if (threads_flag != NULL && parse_uint(threads_flag, 0, TALON_THREADS_MAX,
                                           &d.server.threads, err, sizeof(err)) < 0) {
        fprintf(stderr, "talon-demo: --threads: %s\n", err);
        return 2;
    }
    d.server.listen = d.listen;
    d.server.trusted_proxies = d.trusted_proxies[0] ? d.trusted_proxies : NULL;
    if (talon_server_options_check(&d.server, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "talon-demo: %s\n", err);
        return 2;
    }

    int rc = 1;
    d.app = talon_app_new();
    if (d.app == NULL) {
        fprintf(stderr, "talon-demo: out of memory\n");
        goto out;
    }
    talon_app_set_strip_trailing_slash(d.app, d.strip_trailing_slash);
    if (demo_logging_start(&d, err, sizeof(err)) < 0) {
        fprintf(stderr, "talon-demo: %s\n", err);
        goto out;
    }
    if (demo_audit_setup(d.app, err, sizeof(err)) < 0 || add_routes(&d, err, sizeof(err)) < 0) {
        report_start_error(err);
        goto out;
    }

    struct sigaction sa = { .sa_handler = on_reopen_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);

    ready_ctx ready = { port_file, config_path, d.listen };
    d.server.on_ready = on_ready;
    d.server.on_ready_ctx = &ready;
    int serve_rc = talon_app_serve(d.app, &d.server, err, sizeof(err));
    if (serve_rc < 0) {
        report_start_error(err);
        goto out;
    }
    rc = 0;
out:
    if (d.app != NULL)
        demo_audit_teardown(d.app);
    talon_app_free(d.app);
    demo_notes_free();
    demo_logging_stop();
    talon_log_shutdown();
    return rc;
}
