/* talon-demo logging: var/log/app.log (text, info) and var/log/access.log
 * (combined) by default, both created 0640. The INI file changes either with
 * "[log.app]", "[log.access]" (format, file, level, rotation, ...) and
 * "[access_log]" (skip_paths, skip_status, and the same sink keys). SIGHUP
 * reopens every log file, as logrotate expects (SIGUSR1 does too). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "demo.h"
#include <ini.h>

#include "talon/access_log.h"
#include "talon/log.h"

static talon_access_log_options access_opts;
static talon_access_log *access_log;

static void on_sighup(int sig)
{
    talon_log_reopen();
}

int demo_logging_defaults(char *err, size_t errlen)
{
    static const char *const defaults[][3] = {
        { "log.app", "file", "var/log/app.log" },
        { "log.app", "level", "info" },
        { "log.app", "format", "text" },
        { "log.access", "file", "var/log/access.log" },
        { "log.access", "format", "combined" },
    };

    talon_access_log_options_init(&access_opts);
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        int rc = talon_log_config_set(defaults[i][0], defaults[i][1], defaults[i][2], err, errlen);

        if (rc < 0)
            return rc;
    }
    return 0;
}

int demo_access_log_config(demo *d, const char *section, const char *key, const char *value,
                           char *err, size_t errlen)
{
    return talon_access_log_config_set(&access_opts, key, value, err, errlen);
}

int demo_logging_start(demo *d, char *err, size_t errlen)
{
    struct sigaction sa = { .sa_handler = on_sighup };
    int rc;

    rc = talon_log_config_apply(err, errlen);
    if (rc < 0)
        return rc;
    rc = talon_access_log_attach(d->app, &access_opts, &access_log, err, errlen);
    if (rc < 0)
        return rc;

    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGHUP, &sa, NULL) < 0) {
        snprintf(err, errlen, "failed to install the SIGHUP handler: %s", strerror(errno));
        return -errno;
    }
    talon_log_info(talon_logger_get("app"), "talon-demo starting on %s (pid %ld)", d->listen,
                   (long)getpid());
    return 0;
}

/* The sink keys of the [log.NAME] sections of a configuration file, as
 * the log core will apply them over the defaults above. */
typedef struct log_keys {
    char file[8][512];
    char name[8][64];
    char level[8][16];
    char format[8][64];
    size_t n;
} log_keys;

static size_t log_keys_slot(log_keys *k, const char *name)
{
    for (size_t i = 0; i < k->n; i++) {
        if (strcmp(k->name[i], name) == 0)
            return i;
    }
    if (k->n == 8)
        return 8;
    snprintf(k->name[k->n], sizeof(k->name[0]), "%s", name);
    return k->n++;
}

static int log_keys_collect(void *ctx, const char *section, const char *key, const char *value)
{
    log_keys *k = ctx;
    const char *logger;
    if (strcmp(section, "access_log") == 0) /* its sink keys go to the access logger */
        logger = access_opts.logger[0] ? access_opts.logger : "access";
    else if (strncmp(section, "log.", 4) == 0)
        logger = section + 4;
    else
        return 1;
    size_t i = log_keys_slot(k, logger);
    if (i == 8)
        return 1;
    if (strcmp(key, "file") == 0)
        snprintf(k->file[i], sizeof(k->file[0]), "%s", value);
    else if (strcmp(key, "level") == 0)
        snprintf(k->level[i], sizeof(k->level[0]), "%s", value);
    else if (strcmp(key, "format") == 0)
        snprintf(k->format[i], sizeof(k->format[0]), "%s", value);
    return 1;
}

static const char *or(const char *value, const char *fallback)
{
    return value[0] != '\0' ? value : fallback;
}

static const char *where(const char *file)
{
    return strcmp(file, "-") == 0 ? "standard error" : file;
}

void demo_logging_print(const char *config_path)
{
    log_keys k = { .n = 0 };
    size_t app = log_keys_slot(&k, "app");
    size_t access = log_keys_slot(&k, access_opts.logger[0] ? access_opts.logger : "access");
    if (config_path != NULL)
        ini_parse(config_path, log_keys_collect, &k);
    printf("  app log: %s, level %s\n", where(or(k.file[app], "var/log/app.log")),
           or(k.level[app], "info"));
    if (!access_opts.enabled)
        printf("  access log: off ([access_log] enabled = false)\n");
    else
        printf("  access log: %s, format %s\n",
               where(or(k.file[access], strcmp(k.name[access], "access") == 0
                                            ? "var/log/access.log" : "none")),
               or(k.format[access], "combined"));
    for (size_t i = 0; i < k.n; i++) {
        if (i != app && i != access && k.file[i][0] != '\0')
            printf("  log %s: %s\n", k.name[i], where(k.file[i]));
    }
}

void demo_logging_stop(void)
{
    talon_log_info(talon_logger_get("app"), "talon-demo stopped");
    talon_access_log_free(access_log);
    access_log = NULL;
}
