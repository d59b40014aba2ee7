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

void demo_logging_stop(void)
{
    talon_log_info(talon_logger_get("app"), "talon-demo stopped");
    talon_access_log_free(access_log);
    access_log = NULL;
}
