/* Logging configuration from "[log.<logger>]" INI sections.
 *
 * talon_log_config_set() checks and collects each key; talon_log_config_apply()
 * opens every sink first and attaches them only when all opened, so a bad
 * file path leaves the running configuration untouched.
 *
 * "[log.app]" is the first sink of logger "app", "[log.app.2]" a second
 * one. A logger name may contain dots ("[log.myapp.db]"); only a last part
 * made of digits is a sink number.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log_internal.h"
#include "talon/config.h"

typedef struct log_sink_spec {
    struct log_sink_spec *next;
    char *section;             /* "log.app.2" */
    char *logger;              /* "app" */
    char *file;                /* NULL until set */
    talon_log_level level;
    talon_log_format *fmt;     /* NULL until set */
    char *fmt_spec;
    talon_sink_options opts;
    /* Header values of the rfc5424 format; syslog_key names one that was set. */
    talon_rfc5424_options syslog;
    const char *syslog_key;
    char *app_name, *hostname, *sd_id;
} log_sink_spec;

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static log_sink_spec *specs;
/* Formats attached by talon_log_config_apply(); loggers reference them
 * until talon_log_shutdown(). */
static talon_log_format **applied_formats;
static size_t applied_count;

static void spec_free(log_sink_spec *s)
{
    free(s->section);
    free(s->logger);
    free(s->file);
    free(s->fmt_spec);
    free(s->app_name);
    free(s->hostname);
    free(s->sd_id);
    talon_log_format_free(s->fmt);
    free(s);
}

/* Split "log.app.2" into logger "app". Returns NULL on a bad name. */
static char *logger_of_section(const char *section)
{
    const char *name = section + 4; /* after "log." */
    size_t len = strlen(name);
    const char *dot = strrchr(name, '.');
    if (dot && dot[1] && strspn(dot + 1, "0123456789") == strlen(dot + 1))
        len = (size_t)(dot - name);
    if (len == 0)
        return NULL;
    return strndup(name, len);
}

/* Find or create the spec of section. Call with config_lock held. */
static log_sink_spec *spec_get(const char *section)
{
    log_sink_spec **tail = &specs;
    for (log_sink_spec *s = specs; s; s = s->next) {
        if (strcmp(s->section, section) == 0)
            return s;
        tail = &s->next;
    }
    log_sink_spec *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->section = strdup(section);
    s->logger = logger_of_section(section);
    if (!s->section || !s->logger) {
        spec_free(s);
        return NULL;
    }
    s->level = TALON_LOG_INFO;
    talon_sink_options_init(&s->opts);
    talon_rfc5424_options_init(&s->syslog);
    *tail = s; /* keep file order, so sinks attach in the order written */
    return s;
}

static int set_size(const char *value, size_t min, size_t *out, char *err, size_t errlen)
{
    unsigned long long v;
    int rc = talon_config_parse_size(value, &v, err, errlen);
    if (rc < 0)
        return rc;
    if (v < min || v > (1ULL << 40)) {
        snprintf(err, errlen, "invalid value '%s'; expected a size from %zu bytes to 1T", value, min);
        return -EINVAL;
    }
    *out = (size_t)v;
    return 0;
}

static int set_uint(const char *value, unsigned long long max, unsigned *out, const char *unit,
                    char *err, size_t errlen)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || end == value || *end || value[0] == '-' || v > max) {
        snprintf(err, errlen, "invalid value '%s'; expected %s from 0 to %llu", value, unit, max);
        return -EINVAL;
    }
    *out = (unsigned)v;
    return 0;
}

/* facility, app_name, hostname, sd_id: header values of the rfc5424
 * format, checked here so that errors carry the file and line. */
static int set_syslog_key(log_sink_spec *s, const char *key, const char *value, char *err,
                          size_t errlen)
{
    talon_rfc5424_options probe;
    char **slot = NULL;

    talon_rfc5424_options_init(&probe);
    if (strcmp(key, "facility") == 0) {
        if (talon_syslog_facility_parse(value, &s->syslog.facility) < 0) {
            snprintf(err, errlen, "invalid value '%s'; expected kern, user, mail, daemon, auth, "
                     "syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, security, console, "
                     "clock, local0 ... local7, or a number from 0 to 23", value);
            return -EINVAL;
        }
        s->syslog_key = "facility";
        return 0;
    }
    if (strcmp(key, "app_name") == 0) {
        probe.app_name = value;
        slot = &s->app_name;
    } else if (strcmp(key, "hostname") == 0) {
        probe.hostname = value;
        slot = &s->hostname;
    } else {
        probe.sd_id = value;
        slot = &s->sd_id;
    }
    char ferr[256];
    talon_log_format *fmt = talon_log_format_compile_rfc5424(&probe, ferr, sizeof(ferr));
    if (!fmt) {
        snprintf(err, errlen, "%s", ferr);
        return -EINVAL;
    }
    talon_log_format_free(fmt);
    free(*slot);
    *slot = strdup(value);
    if (!*slot)
        return -ENOMEM;
    s->syslog.app_name = s->app_name;
    s->syslog.hostname = s->hostname;
    s->syslog.sd_id = s->sd_id;
    if (strcmp(key, "app_name") == 0)
        s->syslog_key = "app_name";
    else if (strcmp(key, "hostname") == 0)
        s->syslog_key = "hostname";
    else
        s->syslog_key = "sd_id";
    return 0;
}

static int spec_set(log_sink_spec *s, const char *key, const char *value, char *err, size_t errlen)
{
    talon_sink_options *o = &s->opts;
    if (strcmp(key, "level") == 0) {
        if (talon_log_level_parse(value, &s->level) < 0) {
            snprintf(err, errlen, "invalid value '%s'; expected trace, debug, info, warn, error, fatal or off", value);
            return -EINVAL;
        }
        return 0;
    }
    if (strcmp(key, "format") == 0) {
        char ferr[256];
        talon_log_format *fmt = talon_log_format_compile(value, ferr, sizeof(ferr));
        if (!fmt) {
            snprintf(err, errlen, "invalid value '%s': %s; expected text, json, logfmt, combined, "
                     "rfc5424 or a format string with $variables", value, ferr);
            return -EINVAL;
        }
        talon_log_format_free(s->fmt);
        free(s->fmt_spec);
        s->fmt = fmt;
        s->fmt_spec = strdup(value);
        return 0;
    }
    if (strcmp(key, "facility") == 0 || strcmp(key, "app_name") == 0 ||
        strcmp(key, "hostname") == 0 || strcmp(key, "sd_id") == 0)
        return set_syslog_key(s, key, value, err, errlen);
    if (strcmp(key, "file") == 0) {
        if (!*value) {
            snprintf(err, errlen, "empty value; expected a file path, - (stderr), stdout or a "
                     "syslog URL (syslog:///dev/log, syslog://HOST:PORT, syslog+tcp://HOST:PORT)");
            return -EINVAL;
        }
        if (talon_sink_path_is_syslog(value)) {
            /* Parse now, so a bad URL is reported with its line. */
            char perr[512] = "";
            log_syslog *probe = NULL;
            int rc = log_syslog_parse(value, &probe, perr, sizeof(perr));
            if (rc < 0) {
                snprintf(err, errlen, "%s", perr);
                return rc;
            }
            log_syslog_free(probe);
        }
        free(s->file);
        s->file = strdup(value);
        return s->file ? 0 : -ENOMEM;
    }
    if (strcmp(key, "mode") == 0) {
        unsigned mode;
        int rc = talon_config_parse_mode(value, &mode, err, errlen);
        if (rc == 0 && !(mode & 0200)) {
            snprintf(err, errlen, "invalid value '%s'; expected a mode that lets the owner write, "
                     "such as 0640 or 0600", value);
            return -EINVAL;
        }
        if (rc == 0)
            o->mode = (mode_t)mode;
        return rc;
    }
    if (strcmp(key, "buffer_size") == 0)
        return set_size(value, 4096, &o->buffer_size, err, errlen);
    if (strcmp(key, "max_buffered") == 0)
        return set_size(value, 4096, &o->max_buffered, err, errlen);
    if (strcmp(key, "flush_interval_ms") == 0) {
        int rc = set_uint(value, 3600000, &o->flush_interval_ms, "milliseconds", err, errlen);
        if (rc == 0 && o->flush_interval_ms == 0) {
            snprintf(err, errlen, "invalid value '0'; expected milliseconds from 1 to 3600000");
            return -EINVAL;
        }
        return rc;
    }
    if (strcmp(key, "overflow") == 0) {
        if (strcmp(value, "block") == 0)
            o->overflow = TALON_OVERFLOW_BLOCK;
        else if (strcmp(value, "drop") == 0)
            o->overflow = TALON_OVERFLOW_DROP;
        else {
            snprintf(err, errlen, "invalid value '%s'; expected block or drop", value);
            return -EINVAL;
        }
        return 0;
    }
    if (strcmp(key, "rotate_size") == 0) {
        unsigned long long v;
        int rc = talon_config_parse_size(value, &v, err, errlen);
        if (rc == 0)
            o->rotate_size = v;
        return rc;
    }
    if (strcmp(key, "rotate_interval") == 0) {
        unsigned long long v;
        int rc = talon_config_parse_seconds(value, &v, err, errlen);
        if (rc == 0 && v > 366ULL * 86400) {
            snprintf(err, errlen, "invalid value '%s'; expected at most 366d", value);
            return -EINVAL;
        }
        if (rc == 0)
            o->rotate_interval_s = (unsigned)v;
        return rc;
    }
    if (strcmp(key, "rotate_keep") == 0)
        return set_uint(value, 1000, &o->rotate_keep, "a number of files", err, errlen);
    if (strcmp(key, "rotate_gzip") == 0) {
        int b;
        int rc = talon_config_parse_bool(value, &b, err, errlen);
        if (rc == 0)
            o->rotate_gzip = b;
        return rc;
    }
    snprintf(err, errlen, "unknown key; expected level, format, file, mode, buffer_size, "
             "max_buffered, flush_interval_ms, overflow, rotate_size, rotate_interval, "
             "rotate_keep, rotate_gzip, facility, app_name, hostname or sd_id");
    return -EINVAL;
}

int talon_log_config_set(const char *section, const char *key, const char *value,
                         char *err, size_t errlen)
{
    if (!section || strncmp(section, "log.", 4) != 0 || !key || !value) {
        snprintf(err, errlen, "not a logging section; expected [log.<logger>] or [log.<logger>.<n>]");
        return -EINVAL;
    }
    pthread_mutex_lock(&config_lock);
    int rc;
    log_sink_spec *s = spec_get(section);
    if (!s) {
        snprintf(err, errlen, "invalid section name; expected [log.<logger>] or [log.<logger>.<n>]");
        rc = -EINVAL;
    } else {
        rc = spec_set(s, key, value, err, errlen);
    }
    pthread_mutex_unlock(&config_lock);
    return rc;
}

/* Default format of a logger: the access log reads like Apache's. */
static const char *default_format_name(const char *logger)
{
    return strcmp(logger, "access") == 0 ? "combined" : "text";
}

/* A syslog sink always writes RFC 5424 messages: with format rfc5424 (the
 * default there) MSG is the message and the fields are SD-PARAMs, with any
 * other format MSG is that format's line. The rfc5424 keys need one of the
 * two; compile the format with the section's header values. */
static int syslog_spec_check(log_sink_spec *s, char *err, size_t errlen)
{
    bool to_syslog = talon_sink_path_is_syslog(s->file);
    bool rfc5424 = to_syslog || (s->fmt_spec && strcmp(s->fmt_spec, "rfc5424") == 0);

    if (s->syslog_key && !rfc5424) {
        snprintf(err, errlen, "[%s] %s: applies to the rfc5424 format only; set file to a syslog "
                 "URL or format = rfc5424", s->section, s->syslog_key);
        return -EINVAL;
    }
    if (to_syslog && (s->opts.rotate_size || s->opts.rotate_interval_s)) {
        snprintf(err, errlen, "[%s] %s: a syslog sink does not rotate; remove the key",
                 s->section, s->opts.rotate_size ? "rotate_size" : "rotate_interval");
        return -EINVAL;
    }
    if (!rfc5424)
        return 0;
    /* A syslog sink wraps any other format's line in an RFC 5424 header. */
    s->syslog.msg_format = to_syslog ? s->fmt_spec : NULL;
    char ferr[256];
    talon_log_format *fmt = talon_log_format_compile_rfc5424(&s->syslog, ferr, sizeof(ferr));
    if (!fmt) {
        snprintf(err, errlen, "[%s] format: %s", s->section, ferr);
        return -EINVAL;
    }
    talon_log_format_free(s->fmt);
    s->fmt = fmt;
    return 0;
}

static int keep_format(talon_log_format *fmt)
{
    talon_log_format **p = realloc(applied_formats, (applied_count + 1) * sizeof(*p));
    if (!p)
        return -ENOMEM;
    applied_formats = p;
    applied_formats[applied_count++] = fmt;
    return 0;
}

int talon_log_config_apply(char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&config_lock);

    size_t n = 0;
    for (log_sink_spec *s = specs; s; s = s->next)
        n++;
    talon_sink **opened = calloc(n ? n : 1, sizeof(*opened));
    if (!opened) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory applying the logging configuration");
        goto out;
    }

    /* Check everything and open every sink before touching any logger. */
    size_t i = 0;
    for (log_sink_spec *s = specs; s; s = s->next, i++) {
        if (!s->file) {
            snprintf(err, errlen, "[%s] file: missing key; set file = PATH, - (stderr) or stdout", s->section);
            rc = -EINVAL;
            goto out;
        }
        if (s->opts.max_buffered < s->opts.buffer_size) {
            snprintf(err, errlen, "[%s] max_buffered: %zu is less than buffer_size %zu; "
                     "expected max_buffered >= buffer_size", s->section, s->opts.max_buffered,
                     s->opts.buffer_size);
            rc = -EINVAL;
            goto out;
        }
        rc = syslog_spec_check(s, err, errlen);
        if (rc < 0)
            goto out;
        if (!s->fmt) {
            char ferr[256];
            s->fmt = talon_log_format_compile(default_format_name(s->logger), ferr, sizeof(ferr));
            if (!s->fmt) {
                snprintf(err, errlen, "[%s] format: %s", s->section, ferr);
                rc = -EINVAL;
                goto out;
            }
        }
        char serr[512];
        talon_sink *existing = talon_sink_find(s->file);
        rc = talon_sink_open_file(&opened[i], s->file, &s->opts, serr, sizeof(serr));
        if (rc < 0) {
            snprintf(err, errlen, "[%s] file: %s", s->section, serr);
            goto out;
        }
        if (existing)
            log_report(TALON_LOG_INFO, "[%s]: log file %s is already open; it keeps its first "
                       "sink options (mode, buffers, rotation)", s->section, s->file);
    }

    /* Replace the sinks of every configured logger.
     * NOTE: a record logged between the clear and the add is not written;
     * applying at startup, before requests arrive, avoids the gap. */
    for (log_sink_spec *s = specs; s; s = s->next)
        talon_logger_clear_sinks(talon_logger_get(s->logger));
    i = 0;
    for (log_sink_spec *s = specs; s; s = s->next, i++) {
        rc = keep_format(s->fmt);
        if (rc < 0) {
            snprintf(err, errlen, "out of memory applying the logging configuration");
            goto out;
        }
        talon_log_format *fmt = s->fmt;
        s->fmt = NULL; /* owned by applied_formats now */
        rc = talon_logger_add_sink(talon_logger_get(s->logger), opened[i], s->level, fmt);
        if (rc < 0) {
            snprintf(err, errlen, "[%s]: cannot attach the sink: %s", s->section, strerror(-rc));
            goto out;
        }
    }

out:
    /* Applied or not, the next load starts from an empty configuration. */
    while (specs) {
        log_sink_spec *s = specs;
        specs = s->next;
        spec_free(s);
    }
    free(opened);
    pthread_mutex_unlock(&config_lock);
    return rc;
}

void log_config_free(void)
{
    pthread_mutex_lock(&config_lock);
    while (specs) {
        log_sink_spec *s = specs;
        specs = s->next;
        spec_free(s);
    }
    for (size_t i = 0; i < applied_count; i++)
        talon_log_format_free(applied_formats[i]);
    free(applied_formats);
    applied_formats = NULL;
    applied_count = 0;
    pthread_mutex_unlock(&config_lock);
}
