/* talon-demo logging: var/log/app.log (text, info) and var/log/access.log
 * (combined) by default, both created 0640. The INI file changes either with
 * "[log.app]", "[log.access]" (format, file, level, rotation, ...) and
 * "[access_log]" (skip_paths, skip_status, and the same sink keys). SIGHUP
 * reopens every log file, as logrotate expects (SIGUSR1 does too). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The sink keys of one [log.NAME] section of a configuration file. */
typedef struct log_keys_entry {
    char file[512];
    char name[64];
    char level[16];
    char format[64];
} log_keys_entry;

/* The sink keys of every [log.NAME] section, as the log core will apply
 * them over the defaults above. */
typedef struct log_keys {
    log_keys_entry *entry;
    size_t n;
    size_t cap;
} log_keys;

/* Return the slot of a logger's keys, adding one for a new name. Returns
 * SIZE_MAX when out of memory. */
static size_t log_keys_slot(log_keys *k, const char *name)
{
    for (size_t i = 0; i < k->n; i++) {
        if (strcmp(k->entry[i].name, name) == 0)
            return i;
    }
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 8;
        log_keys_entry *grown = realloc(k->entry, cap * sizeof(*grown));
        if (grown == NULL)
            return SIZE_MAX;
        k->entry = grown;
        k->cap = cap;
    }
    memset(&k->entry[k->n], 0, sizeof(k->entry[0]));
    snprintf(k->entry[k->n].name, sizeof(k->entry[0].name), "%s", name);
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
    if (i == SIZE_MAX)
        return 1;
    log_keys_entry *entry = &k->entry[i];
    if (strcmp(key, "file") == 0)
        snprintf(entry->file, sizeof(entry->file), "%s", value);
    else if (strcmp(key, "level") == 0)
        snprintf(entry->level, sizeof(entry->level), "%s", value);
    else if (strcmp(key, "format") == 0)
        snprintf(entry->format, sizeof(entry->format), "%s", value);
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
    log_keys k = { 0 };
    size_t app = log_keys_slot(&k, "app");
    size_t access = log_keys_slot(&k, access_opts.logger[0] ? access_opts.logger : "access");
    if (app == SIZE_MAX || access == SIZE_MAX) {
        free(k.entry);
        printf("  (out of memory listing the logs)\n");
        return;
    }
    if (config_path != NULL)
        ini_parse(config_path, log_keys_collect, &k);

    const log_keys_entry *app_keys = &k.entry[app];
    const log_keys_entry *access_keys = &k.entry[access];
    printf("  app log: %s, level %s\n", where(or(app_keys->file, "var/log/app.log")),
           or(app_keys->level, "info"));
    if (!access_opts.enabled)
        printf("  access log: off ([access_log] enabled = false)\n");
    else
        printf("  access log: %s, format %s\n",
               where(or(access_keys->file, strcmp(access_keys->name, "access") == 0 ? "var/log/access.log" : "none")),
               or(access_keys->format, "combined"));
    for (size_t i = 0; i < k.n; i++) {
        if (i != app && i != access && k.entry[i].file[0] != '\0')
            printf("  log %s: %s\n", k.entry[i].name, where(k.entry[i].file));
    }
    free(k.entry);
}

void demo_logging_stop(void)
{
    talon_log_info(talon_logger_get("app"), "talon-demo stopped");
    talon_access_log_free(access_log);
    access_log = NULL;
}
