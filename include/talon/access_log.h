/* talon access log: one record per request, written after the response
 * completed (sent or aborted), to the logger named "access".
 *
 * The access log only builds records; where they go and how they look is the
 * "access" logger's business: its sinks and formats come from the
 * "[log.access]" INI section (format = combined | common | json | logfmt |
 * text | a custom "$variable" string). The "[access_log]" section adds the
 * middleware's own keys and forwards every other key to "[log.access]".
 */
#ifndef TALON_ACCESS_LOG_H
#define TALON_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "talon/app.h"
#include "talon/log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct talon_access_log_options {
    bool enabled;               /* default true */
    char logger[64];            /* logger name; default "access" */
    talon_log_level level;      /* level of each record; default info */
    /* Comma-separated paths not logged: "/health" matches that decoded path
     * exactly; an entry ending in '*' matches every path starting with the
     * text before the '*'. */
    char skip_paths[1024];
    /* Comma-separated statuses not logged: "204", "2xx", "300-399". */
    char skip_status[256];
    /* Replace the values of secret query parameters in the target
     * (url.original, $request, $request_uri) and the Referer with
     * "[REDACTED]" (talon_redact_url()); default true. */
    bool redact_query;
    /* Comma-separated words added to talon_secret_words for that. */
    char redact_keys[256];
} talon_access_log_options;

typedef struct talon_access_log talon_access_log;

/* Fill opts with the defaults above. */
void talon_access_log_options_init(talon_access_log_options *opts);

/* Handle one key of the "[access_log]" INI section: enabled, logger,
 * skip_paths, skip_status, redact_query and redact_keys set opts; any other key (format, file, level,
 * rotate_size, ...) is passed to talon_log_config_set() for the section
 * "log.<logger>". Returns 0 or -EINVAL with err naming the key and the
 * accepted values. */
int talon_access_log_config_set(talon_access_log_options *opts, const char *key,
                                const char *value, char *err, size_t errlen);

/* Register the access log as a completion callback of app; opts NULL means
 * the defaults. The returned handle belongs to the caller, who frees it with
 * talon_access_log_free() after talon_app_serve() returned. Returns 0, or
 * -EINVAL (err names the bad skip_paths/skip_status entry) or -ENOMEM. */
int talon_access_log_attach(talon_app *app, const talon_access_log_options *opts,
                            talon_access_log **out, char *err, size_t errlen);
void talon_access_log_free(talon_access_log *log);

/* Requests logged and requests skipped by skip_paths/skip_status so far. */
unsigned long long talon_access_log_written(const talon_access_log *log);
unsigned long long talon_access_log_skipped(const talon_access_log *log);

#ifdef __cplusplus
}
#endif
#endif
