/* Access log: a completion callback that turns each finished request into one
 * record of the "access" logger, with Elastic Common Schema field names.
 *
 * The callback runs on an engine thread once the response is sent or the
 * client went away, so the record has the real bytes sent and duration, and
 * covers requests that never reached a responder (404, 405, 413, 400). It
 * formats nothing itself: the logger's sinks format the record and a writer
 * thread writes it, so the request path only copies pointers here.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log/fields.h"
#include "log/log_internal.h"
#include "talon/access_log.h"

/* nginx's status for a request whose client closed the connection before
 * the response was sent. */
#define STATUS_CLIENT_CLOSED 499

#define MAX_SKIP_PATHS 32
#define MAX_SKIP_STATUS 16

/* Counters are striped: one counter that every engine thread increments
 * moves its cache line between cores on each request, and with it the
 * read-mostly fields next to it. Each thread takes a stripe of its own
 * (threads beyond COUNTER_STRIPES share) on its own cache line. */
#define COUNTER_STRIPES 16
#define CACHE_LINE 64

typedef struct counter_stripe {
    _Alignas(CACHE_LINE) atomic_ullong records;
    atomic_ullong skipped;
} counter_stripe;

typedef struct skip_path {
    char *path;
    size_t len;
    bool prefix;
} skip_path;

typedef struct status_range {
    int lo, hi;
} status_range;

struct talon_access_log {
    talon_logger *logger;
    talon_log_level level;
    skip_path paths[MAX_SKIP_PATHS];
    size_t npaths;
    status_range statuses[MAX_SKIP_STATUS];
    size_t nstatuses;
    counter_stripe *counters; /* an array of COUNTER_STRIPES */
    bool redact;
    char *redact_words_text;  /* the configured words, split in place */
    const char **redact_words; /* talon_secret_words and those, NULL-terminated */
};

void talon_access_log_options_init(talon_access_log_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->enabled = true;
    snprintf(opts->logger, sizeof(opts->logger), "access");
    opts->level = TALON_LOG_INFO;
    opts->redact_query = true;
}

static int check_skip_list(bool paths, const char *value, char *err, size_t errlen);

static int copy_value(char *dst, size_t size, const char *key, const char *value,
                      char *err, size_t errlen)
{
    if (strlen(value) >= size) {
        snprintf(err, errlen, "%s: value is %zu bytes long; the maximum is %zu",
                 key, strlen(value), size - 1);
        return -EINVAL;
    }
    memcpy(dst, value, strlen(value) + 1);
    return 0;
}

int talon_access_log_config_set(talon_access_log_options *opts, const char *key,
                                const char *value, char *err, size_t errlen)
{
    if (strcmp(key, "enabled") == 0 || strcmp(key, "redact_query") == 0) {
        bool *slot = key[0] == 'e' ? &opts->enabled : &opts->redact_query;
        if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcmp(value, "1") ||
            !strcasecmp(value, "on")) {
            *slot = true;
        } else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") ||
                   !strcmp(value, "0") || !strcasecmp(value, "off")) {
            *slot = false;
        } else {
            snprintf(err, errlen, "%s: invalid value \"%s\"; accepted values are true "
                     "and false", key, value);
            return -EINVAL;
        }
        return 0;
    }
    if (strcmp(key, "redact_keys") == 0)
        return copy_value(opts->redact_keys, sizeof(opts->redact_keys), key, value, err, errlen);
    if (strcmp(key, "logger") == 0) {
        if (!value[0]) {
            snprintf(err, errlen, "logger: the logger name is empty");
            return -EINVAL;
        }
        return copy_value(opts->logger, sizeof(opts->logger), key, value, err, errlen);
    }
    if (strcmp(key, "skip_paths") == 0 || strcmp(key, "skip_status") == 0) {
        bool paths = key[5] == 'p';
        int rc = check_skip_list(paths, value, err, errlen);

        if (rc < 0)
            return rc;
        if (paths)
            return copy_value(opts->skip_paths, sizeof(opts->skip_paths), key, value, err, errlen);
        return copy_value(opts->skip_status, sizeof(opts->skip_status), key, value, err, errlen);
    }

    /* format, file, level, rotation...: settings of the access logger's sink. */
    char section[80];

    snprintf(section, sizeof(section), "log.%s", opts->logger);
    return talon_log_config_set(section, key, value, err, errlen);
}

/* ---- Skip lists ---- */

static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    return s;
}

static int parse_skip_paths(talon_access_log *log, const char *spec, char *err, size_t errlen)
{
    char *copy = strdup(spec), *save = NULL, *tok;
    int rc = 0;

    if (!copy)
        return -ENOMEM;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *p = trim(tok);
        size_t len = strlen(p);
        skip_path *sp;

        if (!len)
            continue;
        if (p[0] != '/') {
            snprintf(err, errlen, "skip_paths: \"%s\" does not start with '/'; write paths "
                     "such as /health or /static/*", p);
            rc = -EINVAL;
            break;
        }
        if (log->npaths == MAX_SKIP_PATHS) {
            snprintf(err, errlen, "skip_paths: more than %d paths; use a prefix such as "
                     "/static/*", MAX_SKIP_PATHS);
            rc = -EINVAL;
            break;
        }
        sp = &log->paths[log->npaths];
        sp->prefix = p[len - 1] == '*';
        if (sp->prefix)
            p[--len] = '\0';
        sp->path = strdup(p);
        if (!sp->path) {
            rc = -ENOMEM;
            break;
        }
        sp->len = len;
        log->npaths++;
    }
    free(copy);
    return rc;
}

static int parse_status(const char *s, const char *entry, int *out, char *err, size_t errlen)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end || v < 100 || v > 999) {
        snprintf(err, errlen, "skip_status: invalid status \"%s\"; write codes such as 204, "
                 "classes such as 2xx, or ranges such as 300-399", entry);
        return -EINVAL;
    }
    *out = (int)v;
    return 0;
}

static int parse_skip_status(talon_access_log *log, const char *spec, char *err, size_t errlen)
{
    char *copy = strdup(spec), *save = NULL, *tok;
    int rc = 0;

    if (!copy)
        return -ENOMEM;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *p = trim(tok), *dash;
        status_range r;

        if (!*p)
            continue;
        if (log->nstatuses == MAX_SKIP_STATUS) {
            snprintf(err, errlen, "skip_status: more than %d entries; use classes such as 2xx "
                     "or ranges such as 300-399", MAX_SKIP_STATUS);
            rc = -EINVAL;
            break;
        }
        if (strlen(p) == 3 && p[0] >= '1' && p[0] <= '5' && (p[1] == 'x' || p[1] == 'X') &&
            (p[2] == 'x' || p[2] == 'X')) {
            r.lo = (p[0] - '0') * 100;
            r.hi = r.lo + 99;
        } else if ((dash = strchr(p, '-'))) {
            char entry[64];

            snprintf(entry, sizeof(entry), "%s", p);
            *dash = '\0';
            rc = parse_status(p, entry, &r.lo, err, errlen);
            if (rc == 0)
                rc = parse_status(dash + 1, entry, &r.hi, err, errlen);
            if (rc == 0 && r.lo > r.hi) {
                snprintf(err, errlen, "skip_status: range \"%s\" ends before it starts", entry);
                rc = -EINVAL;
            }
            if (rc < 0)
                break;
        } else {
            rc = parse_status(p, p, &r.lo, err, errlen);
            if (rc < 0)
                break;
            r.hi = r.lo;
        }
        log->statuses[log->nstatuses++] = r;
    }
    free(copy);
    return rc;
}

/* Parse a skip list into a scratch access log, so that a configuration error
 * is reported with its file and line rather than at attach time. */
static int check_skip_list(bool paths, const char *value, char *err, size_t errlen)
{
    talon_access_log scratch;
    int rc;

    memset(&scratch, 0, sizeof(scratch));
    rc = paths ? parse_skip_paths(&scratch, value, err, errlen)
               : parse_skip_status(&scratch, value, err, errlen);
    for (size_t i = 0; i < scratch.npaths; i++)
        free(scratch.paths[i].path);
    if (rc == -ENOMEM) {
        snprintf(err, errlen, "access log: out of memory");
    } else if (rc < 0) {
        /* The configuration loader names the key itself. */
        size_t prefix = strlen(paths ? "skip_paths: " : "skip_status: ");

        if (strlen(err) > prefix)
            memmove(err, err + prefix, strlen(err + prefix) + 1);
    }
    return rc;
}

static bool skip_request(const talon_access_log *log, const char *path, int status)
{
    for (size_t i = 0; i < log->nstatuses; i++)
        if (status >= log->statuses[i].lo && status <= log->statuses[i].hi)
            return true;
    if (!path)
        return false;
    for (size_t i = 0; i < log->npaths; i++) {
        const skip_path *sp = &log->paths[i];

        if (sp->prefix ? strncmp(path, sp->path, sp->len) == 0 : strcmp(path, sp->path) == 0)
            return true;
    }
    return false;
}

/* ---- Secrets in the target and the Referer ---- */

/* Build the word list: talon_secret_words, then the words of spec. */
static int parse_redact_words(talon_access_log *log, const char *spec)
{
    size_t ndefault = 0, nextra = 0;
    while (talon_secret_words[ndefault])
        ndefault++;
    log->redact_words_text = strdup(spec);
    if (!log->redact_words_text)
        return -ENOMEM;
    for (const char *p = spec; *p; p++)
        nextra += *p == ',';
    log->redact_words = calloc(ndefault + nextra + 2, sizeof(*log->redact_words));
    if (!log->redact_words)
        return -ENOMEM;
    size_t n = 0;
    for (; n < ndefault; n++)
        log->redact_words[n] = talon_secret_words[n];
    char *save = NULL;
    for (char *tok = strtok_r(log->redact_words_text, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *word = trim(tok);
        if (*word)
            log->redact_words[n++] = word;
    }
    return 0;
}

/* Return s, or a redacted copy in *copy (freed by the caller) when one of
 * its parameters is secret or it carries userinfo. */
static const char *redacted(const talon_access_log *log, const char *s, char **copy)
{
    bool found = false;
    if (!s || !log->redact || !strpbrk(s, "?#@"))
        return s;
    size_t len = strlen(s);
    size_t out_len = talon_redact_url(s, len, log->redact_words, NULL, &found);
    if (!found)
        return s;
    *copy = malloc(out_len + 1);
    if (!*copy)
        return "[REDACTED: out of memory]";
    talon_redact_url(s, len, log->redact_words, *copy, NULL);
    (*copy)[out_len] = '\0';
    return *copy;
}

/* ---- The completion callback ---- */

/* Find the Referer and User-Agent headers in one pass over the request
 * headers: the first of each name, compared case-insensitively, as
 * talon_req_header() finds them. */
static void find_log_headers(const talon_req *req, const char **referer, const char **user_agent)
{
    size_t count = talon_req_header_count(req);
    const char *name, *value;

    *referer = NULL;
    *user_agent = NULL;
    for (size_t i = 0; i < count && talon_req_header_at(req, i, &name, &value); i++) {
        char first = (char)(name[0] | 0x20);

        if (first == 'r' && !*referer && strcasecmp(name, "Referer") == 0)
            *referer = value;
        else if (first == 'u' && !*user_agent && strcasecmp(name, "User-Agent") == 0)
            *user_agent = value;
    }
}

/* Add a string field when the value is present. */
static void add_str(talon_field *fields, size_t *n, const char *key, const char *value)
{
    if (value)
        fields[(*n)++] = TALON_F_STR(key, value);
}

/* Append s (or "-" when NULL) to buf at *len, cut at size bytes. */
static void append_part(char *buf, size_t size, size_t *len, const char *s)
{
    size_t n;

    if (!s)
        s = "-";
    n = strlen(s);
    if (n > size - *len)
        n = size - *len;
    memcpy(buf + *len, s, n);
    *len += n;
}

/* Write "METHOD TARGET PROTOCOL" into buf, cut at size bytes. */
static size_t request_line(char *buf, size_t size, const char *method, const char *target,
                           const char *protocol)
{
    size_t len = 0;

    append_part(buf, size, &len, method);
    append_part(buf, size, &len, " ");
    append_part(buf, size, &len, target);
    append_part(buf, size, &len, " ");
    append_part(buf, size, &len, protocol);
    return len;
}

/* The parts of the request line, for the message of the text formats. */
typedef struct request_line_parts {
    const char *method, *target, *protocol;
    char *buf;
    size_t size;
} request_line_parts;

static void set_request_line(talon_log_record *rec, void *ctx)
{
    request_line_parts *p = ctx;

    rec->message = p->buf;
    rec->message_len = request_line(p->buf, p->size, p->method, p->target, p->protocol);
}

/* Return the calling thread's stripe, chosen at its first record. */
static counter_stripe *thread_stripe(const talon_access_log *log)
{
    static atomic_uint next_stripe;
    static _Thread_local unsigned stripe = UINT_MAX;

    if (stripe == UINT_MAX)
        stripe = atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) % COUNTER_STRIPES;
    return &log->counters[stripe];
}

/* The sum of every stripe's records, or of its skipped ones. */
static unsigned long long counter_sum(const talon_access_log *log, bool skipped)
{
    unsigned long long sum = 0;

    for (size_t i = 0; i < COUNTER_STRIPES; i++) {
        const counter_stripe *c = &log->counters[i];

        sum += atomic_load_explicit(skipped ? &c->skipped : &c->records, memory_order_relaxed);
    }
    return sum;
}

static void on_complete(const talon_req *req, const talon_resp *resp,
                        const talon_completion *done, void *ctx)
{
    talon_access_log *log = ctx;
    const char *method, *target, *protocol, *version, *path, *referer, *user_agent;
    talon_field fields[20];
    size_t n = 0;
    int status;

    if (!talon_logger_enabled(log->logger, log->level))
        return;

    status = talon_resp_status(resp);
    if (done->client_aborted)
        status = STATUS_CLIENT_CLOSED;
    path = talon_req_path(req);
    if (skip_request(log, path, status)) {
        atomic_fetch_add_explicit(&thread_stripe(log)->skipped, 1, memory_order_relaxed);
        return;
    }

    char *target_copy = NULL, *referer_copy = NULL;
    method = talon_req_method(req);
    target = redacted(log, talon_req_target(req), &target_copy);
    protocol = talon_req_protocol(req);
    version = protocol;
    if (version && strncmp(version, "HTTP/", 5) == 0)
        version += 5;

    add_str(fields, &n, LOG_KEY(CLIENT_IP), talon_req_client_ip(req));
    add_str(fields, &n, LOG_KEY(USER_ID), talon_req_user(req));
    add_str(fields, &n, LOG_KEY(METHOD), method);
    add_str(fields, &n, LOG_KEY(URL_ORIGINAL), target);
    add_str(fields, &n, LOG_KEY(URL_PATH), path);
    add_str(fields, &n, LOG_KEY(HTTP_VERSION), version);
    fields[n++] = TALON_F_INT(LOG_KEY(STATUS), status);
    fields[n++] = TALON_F_UINT(LOG_KEY(BODY_BYTES), done->bytes_sent);
    fields[n++] = TALON_F_INT(LOG_KEY(DURATION), done->duration_ns);
    find_log_headers(req, &referer, &user_agent);
    add_str(fields, &n, LOG_KEY(REFERRER), redacted(log, referer, &referer_copy));
    add_str(fields, &n, LOG_KEY(USER_AGENT), user_agent);
    add_str(fields, &n, LOG_KEY(REQUEST_ID), talon_req_id(req));
    add_str(fields, &n, LOG_KEY(TRACE_ID), talon_req_trace_id(req));
    add_str(fields, &n, LOG_KEY(ROUTE), talon_req_route(req));
    add_str(fields, &n, LOG_KEY(OUTCOME),
            done->client_aborted || status >= 400 ? "failure" : "success");

    /* The message is the request line as sent, for the text formats. It is
     * built only when a format of the logger writes it, which "combined"
     * does not. NOTE: it is cut at 2 KiB; url.original always has the
     * whole target. */
    char line[2048];
    request_line_parts parts = { method, target, protocol, line, sizeof(line) };
    talon_log_record rec = {
        .time_ns = talon_log_thread_time(),
        .level = log->level,
        .logger = talon_logger_name(log->logger),
        .fields = fields,
        .nfields = n,
    };

    log_write_lazy_message(log->logger, &rec, set_request_line, &parts);
    atomic_fetch_add_explicit(&thread_stripe(log)->records, 1, memory_order_relaxed);
    free(target_copy);
    free(referer_copy);
}

int talon_access_log_attach(talon_app *app, const talon_access_log_options *opts,
                            talon_access_log **out, char *err, size_t errlen)
{
    talon_access_log_options defaults;
    talon_access_log *log;
    int rc;

    *out = NULL;
    if (!opts) {
        talon_access_log_options_init(&defaults);
        opts = &defaults;
    }
    if (!opts->enabled)
        return 0;

    log = calloc(1, sizeof(*log));
    if (!log)
        return -ENOMEM;
    log->counters = aligned_alloc(CACHE_LINE, COUNTER_STRIPES * sizeof(*log->counters));
    if (!log->counters) {
        rc = -ENOMEM;
        goto err;
    }
    memset(log->counters, 0, COUNTER_STRIPES * sizeof(*log->counters));
    log->logger = talon_logger_get(opts->logger[0] ? opts->logger : "access");
    log->level = opts->level;
    log->redact = opts->redact_query;
    if (!log->logger || parse_redact_words(log, opts->redact_keys) < 0) {
        rc = -ENOMEM;
        goto err;
    }
    rc = parse_skip_paths(log, opts->skip_paths, err, errlen);
    if (rc == 0)
        rc = parse_skip_status(log, opts->skip_status, err, errlen);
    if (rc == 0)
        rc = talon_app_on_complete(app, on_complete, log);
    if (rc < 0)
        goto err;
    if (!talon_logger_enabled(log->logger, log->level))
        talon_log_warn(talon_logger_get("app"), "access log: logger \"%s\" has no sink for %s "
                       "records yet, and requests are logged only once it has one; "
                       "configure [log.%s] (file, format) or attach a sink",
                       talon_logger_name(log->logger), talon_log_level_name(log->level),
                       talon_logger_name(log->logger));
    *out = log;
    return 0;

err:
    if (rc == -ENOMEM)
        snprintf(err, errlen, "access log: out of memory");
    talon_access_log_free(log);
    return rc;
}

void talon_access_log_free(talon_access_log *log)
{
    if (!log)
        return;
    for (size_t i = 0; i < log->npaths; i++)
        free(log->paths[i].path);
    free(log->redact_words);
    free(log->redact_words_text);
    free(log->counters);
    free(log);
}

unsigned long long talon_access_log_written(const talon_access_log *log)
{
    return log ? counter_sum(log, false) : 0;
}

unsigned long long talon_access_log_skipped(const talon_access_log *log)
{
    return log ? counter_sum(log, true) : 0;
}
