/* talon logging core: named loggers, structured records, buffered sinks.
 *
 * This header does not depend on the HTTP layer. A record is a time, a level,
 * a logger name, a message and typed key/value fields. Each logger writes to
 * one or more sinks; each attachment has its own minimum level and format.
 * Formatting happens on the calling thread; writing to the file happens on a
 * writer thread, so the request path waits on the disk only when the buffer
 * of a sink with TALON_OVERFLOW_BLOCK is full.
 */
#ifndef TALON_LOG_H
#define TALON_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum talon_log_level {
    TALON_LOG_TRACE = 0,
    TALON_LOG_DEBUG,
    TALON_LOG_INFO,
    TALON_LOG_WARN,
    TALON_LOG_ERROR,
    TALON_LOG_FATAL,
    TALON_LOG_OFF /* as a minimum level: write nothing */
} talon_log_level;

typedef enum talon_field_type {
    TALON_FIELD_STR = 0, /* .v.str with .len bytes (len SIZE_MAX: NUL-terminated) */
    TALON_FIELD_INT,     /* .v.i */
    TALON_FIELD_UINT,    /* .v.u */
    TALON_FIELD_DOUBLE,  /* .v.d */
    TALON_FIELD_BOOL,    /* .v.b */
    TALON_FIELD_TIME     /* .v.i: nanoseconds since the Unix epoch */
} talon_field_type;

/* A typed key/value pair of a record. Keys use Elastic Common Schema names
 * where one exists ("client.ip", "http.response.status_code"). */
typedef struct talon_field {
    const char *key;
    talon_field_type type;
    size_t len;
    union {
        const char *str;
        int64_t i;
        uint64_t u;
        double d;
        bool b;
    } v;
} talon_field;

#define TALON_F_STR(k, s)        ((talon_field){ .key = (k), .type = TALON_FIELD_STR, .len = SIZE_MAX, .v.str = (s) })
#define TALON_F_STRN(k, s, n)    ((talon_field){ .key = (k), .type = TALON_FIELD_STR, .len = (n), .v.str = (s) })
#define TALON_F_INT(k, x)        ((talon_field){ .key = (k), .type = TALON_FIELD_INT, .v.i = (x) })
#define TALON_F_UINT(k, x)       ((talon_field){ .key = (k), .type = TALON_FIELD_UINT, .v.u = (x) })
#define TALON_F_DOUBLE(k, x)     ((talon_field){ .key = (k), .type = TALON_FIELD_DOUBLE, .v.d = (x) })
#define TALON_F_BOOL(k, x)       ((talon_field){ .key = (k), .type = TALON_FIELD_BOOL, .v.b = (x) })

/* A record as the formatters see it. time_ns is CLOCK_REALTIME. */
typedef struct talon_log_record {
    int64_t time_ns;
    talon_log_level level;
    const char *logger;
    const char *message;
    size_t message_len;
    const talon_field *fields;
    size_t nfields;
} talon_log_record;

typedef struct talon_logger talon_logger;
typedef struct talon_sink talon_sink;
typedef struct talon_log_format talon_log_format;

/* What a sink does when its buffer is full. */
typedef enum talon_overflow_policy {
    /* The caller waits for the writer. Records are still dropped and counted
     * while the sink is failing to write, when logged from the writer thread,
     * and when memory for a buffer cannot be allocated. */
    TALON_OVERFLOW_BLOCK = 0,
    TALON_OVERFLOW_DROP       /* the record is dropped and counted */
} talon_overflow_policy;

typedef struct talon_sink_options {
    mode_t mode;                 /* file mode at creation; default 0640 (also when 0) */
    size_t buffer_size;          /* bytes buffered before a forced flush; default 256 KiB */
    size_t max_buffered;         /* memory bound before the overflow policy applies; default 8 MiB */
    unsigned flush_interval_ms;  /* default 1000 */
    talon_overflow_policy overflow;
    uint64_t rotate_size;        /* bytes; 0: no size rotation */
    unsigned rotate_interval_s;  /* seconds; 0: no time rotation */
    unsigned rotate_keep;        /* rotated files kept; default 7 */
    bool rotate_gzip;            /* gzip rotated files */
} talon_sink_options;

/* Fill opts with the defaults above. */
void talon_sink_options_init(talon_sink_options *opts);

/* Open (create 0640 by default, append) a file sink, creating missing parent
 * directories. Returns 0 or a negative errno; err receives a message that
 * names the path. */
int talon_sink_open_file(talon_sink **out, const char *path,
                         const talon_sink_options *opts, char *err, size_t errlen);
/* Sinks for containers: stdout and stderr (still buffered by the writer). */
int talon_sink_open_stdout(talon_sink **out, const talon_sink_options *opts);
int talon_sink_open_stderr(talon_sink **out, const talon_sink_options *opts);
/* Open a syslog sink: records go to a syslog server as RFC 5424 messages,
 * written by the writer thread like every other sink. url is
 *   syslog:///dev/log              unix datagram socket (the local daemon)
 *   syslog://HOST[:PORT]           UDP, one message per datagram (RFC 5426)
 *   syslog+udp://HOST[:PORT]       the same
 *   syslog+tcp://HOST[:PORT]       TCP with octet-counting framing (RFC 6587)
 * HOST is a name, an IPv4 address or [IPv6]; PORT defaults to 514. The
 * sink is opened even when the server is not reachable yet: the writer
 * connects again with backoff, and buffered records wait within
 * max_buffered. Attach it with a format from
 * talon_log_format_compile_rfc5424() (the configuration does this): the
 * sink sends each line as it is. Returns 0 or a negative errno (bad URL,
 * unknown host) with err naming the URL. talon_sink_open_file() calls this
 * for such a path. */
int talon_sink_open_syslog(talon_sink **out, const char *url, const talon_sink_options *opts,
                           char *err, size_t errlen);
/* True when path names a syslog sink ("syslog:" or "syslog+tcp:" ...). */
bool talon_sink_path_is_syslog(const char *path);
/* Look up a sink by path ("-" or "stderr", "stdout"); NULL if not open. */
talon_sink *talon_sink_find(const char *path);
/* Records dropped by this sink's overflow policy or write errors, so far. */
uint64_t talon_sink_dropped(const talon_sink *sink);
/* Block until everything written to the sink so far is in the file. */
int talon_sink_flush(talon_sink *sink);

/* Formats. "text", "json" (Elastic Common Schema), "logfmt", "combined"
 * (Apache/nginx), or a custom nginx-style string such as
 * "$remote_addr [$time_local] \"$request\" $status". A format is compiled
 * once into operations. Returns NULL and fills err on an unknown name or
 * variable. */
talon_log_format *talon_log_format_compile(const char *spec, char *err, size_t errlen);
void talon_log_format_free(talon_log_format *fmt);

/* Header values of the "rfc5424" syslog format. */
typedef struct talon_rfc5424_options {
    int facility;           /* 0-23 (user = 1, local0 = 16); default 1 */
    const char *hostname;   /* NULL: gethostname() */
    const char *app_name;   /* NULL: the program name */
    const char *procid;     /* NULL: the process id when compiled */
    const char *sd_id;      /* SD-ID of the fields; NULL: "talon@32473" */
    /* NULL: MSG is the record's message and the fields are SD-PARAMs. A
     * format name or string ("combined", "json", ...): MSG is the line of
     * that format and STRUCTURED-DATA is "-", as nginx sends its access log
     * to syslog. */
    const char *msg_format;
} talon_rfc5424_options;

void talon_rfc5424_options_init(talon_rfc5424_options *opts);
/* Compile the "rfc5424" format with these header values: each record
 * becomes "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID k="v" ...]
 * MSG\n", with MSGID the logger name and one SD-PARAM per field.
 * talon_log_format_compile("rfc5424") uses the defaults. Returns NULL with
 * err set on a facility out of range or a header value that RFC 5424 does
 * not allow (empty, longer than its limit, or not printable ASCII). */
talon_log_format *talon_log_format_compile_rfc5424(const talon_rfc5424_options *opts,
                                                   char *err, size_t errlen);
/* Parse a facility name ("kern", "user", "daemon", "auth", "authpriv",
 * "local0".."local7", ...) or number 0-23. Returns 0 or -EINVAL. */
int talon_syslog_facility_parse(const char *name, int *out);
/* Format one record as exactly one line ending in '\n' into buf. Returns the
 * line length; when it exceeds cap, nothing past cap is written and the
 * caller retries with a larger buffer. */
size_t talon_log_format_record(const talon_log_format *fmt, const talon_log_record *rec,
                               char *buf, size_t cap);

/* Get the logger with this name, creating it on first use. Loggers live
 * until talon_log_shutdown(). Thread-safe. */
talon_logger *talon_logger_get(const char *name);
const char *talon_logger_name(const talon_logger *logger);
/* Attach a sink with its own minimum level and format. The logger keeps a
 * reference to the format; fmt NULL means "text". */
int talon_logger_add_sink(talon_logger *logger, talon_sink *sink,
                          talon_log_level min_level, const talon_log_format *fmt);
/* Remove all sinks of a logger (used when the configuration replaces them). */
void talon_logger_clear_sinks(talon_logger *logger);
/* True when at least one sink would take a record at this level. */
bool talon_logger_enabled(const talon_logger *logger, talon_log_level level);

/* Write a record with a printf-style message. */
void talon_log(talon_logger *logger, talon_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void talon_logv(talon_logger *logger, talon_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Write a record with typed fields and a printf-style message. */
void talon_log_fields(talon_logger *logger, talon_log_level level,
                      const talon_field *fields, size_t nfields, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Write a prepared record to every sink of the logger that takes its level. */
void talon_log_write(talon_logger *logger, const talon_log_record *rec);

/* Give the records made on the calling thread the time wall_ns (CLOCK_REALTIME,
 * nanoseconds) instead of a clock read each, until the next call; 0 goes back
 * to reading the clock. An event loop sets it once per pass, as nginx caches
 * its time, so the records of one pass share a timestamp that is at most that
 * pass old. */
void talon_log_set_thread_time(int64_t wall_ns);
/* The calling thread's time set above, else the clock (CLOCK_REALTIME, ns). */
int64_t talon_log_thread_time(void);

#define talon_log_trace(lg, ...) talon_log((lg), TALON_LOG_TRACE, __VA_ARGS__)
#define talon_log_debug(lg, ...) talon_log((lg), TALON_LOG_DEBUG, __VA_ARGS__)
#define talon_log_info(lg, ...)  talon_log((lg), TALON_LOG_INFO, __VA_ARGS__)
#define talon_log_warn(lg, ...)  talon_log((lg), TALON_LOG_WARN, __VA_ARGS__)
#define talon_log_error(lg, ...) talon_log((lg), TALON_LOG_ERROR, __VA_ARGS__)
#define talon_log_fatal(lg, ...) talon_log((lg), TALON_LOG_FATAL, __VA_ARGS__)

/* Parse "trace".."fatal", "off". Returns 0 or -EINVAL. */
int talon_log_level_parse(const char *s, talon_log_level *out);
const char *talon_log_level_name(talon_log_level level);

/* Reopen every file sink (after logrotate moved the files): call from any
 * thread; the writer does the work. Safe to call from a signal handler. */
void talon_log_reopen(void);
/* Flush every sink, stop the writer thread, close sinks, free loggers. */
void talon_log_shutdown(void);

/* Configuration from an INI file section ("[log.app]", "[log.access]", ...).
 * Keys: level, format, file ("-" for stderr, "stdout"), mode, buffer_size,
 * max_buffered, flush_interval_ms, overflow (block|drop), rotate_size
 * (bytes, with k/M/G suffixes), rotate_interval (s, or 1h/1d), rotate_keep,
 * rotate_gzip (true|false). Several sinks per logger: "[log.app]" for the
 * first, "[log.app.2]" for more. Called by talon_config_load() for every
 * key of a "log." section; returns 0 or -EINVAL with err naming the key and
 * the accepted values (the caller adds the file and line). */
int talon_log_config_set(const char *section, const char *key, const char *value,
                         char *err, size_t errlen);
/* Apply every section collected by talon_log_config_set(): open the sinks
 * and attach them. Returns 0 or a negative errno with err set. */
int talon_log_config_apply(char *err, size_t errlen);

/* Escaping shared by every text format and by the audit serializer. Each
 * writes at most cap bytes and returns the length it needs. */
/* nginx style: bytes < 0x20, 0x7f, '"', '\\' and invalid UTF-8 become \xHH. */
size_t talon_escape_text(char *dst, size_t cap, const char *src, size_t len);
/* JSON string contents (no quotes): '"', '\\', bytes < 0x20 and 0x7f become
 * \" \\ \n \r \t or \u00XX; each byte of invalid UTF-8 becomes \u00XX. */
size_t talon_escape_json(char *dst, size_t cap, const char *src, size_t len);
/* RFC 5424 PARAM-VALUE contents (no quotes): '"', '\\' and ']' become \" \\
 * and \], as the RFC requires; bytes < 0x20, 0x7f and each byte of invalid
 * UTF-8 become the four characters \xHH, written with the backslash escaped
 * (\\xHH), so the value a receiver decodes reads \xHH. */
size_t talon_escape_sd_value(char *dst, size_t cap, const char *src, size_t len);

/* ---- Rate-limited messages ---- */

/* A rate limit for repeated messages, such as one error per bad client:
 * at most per_second messages a second reach the logger, and the others are
 * counted. The count is logged as "N more WHAT suppressed" by the next
 * message after the second ends, or by the log writer thread within about a
 * second when no message comes, and at talon_log_shutdown(). */
typedef struct talon_log_limit talon_log_limit;

/* what names the messages in the count, e.g. "HTTP engine warnings".
 * Returns NULL when out of memory. Free it before talon_log_shutdown(). */
talon_log_limit *talon_log_limit_new(talon_logger *logger, talon_log_level level,
                                     unsigned per_second, const char *what);
void talon_log_limit_free(talon_log_limit *limit);
/* Log the message unless this second's quota is used up; returns whether
 * it was logged. Safe from any thread. */
bool talon_log_limited(talon_log_limit *limit, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- Secrets in URLs ---- */

/* Words that mark a name as secret, NULL-terminated: password, passwd,
 * pass, pwd, secret, token, authorization, cookie, api_key, apikey,
 * private_key, session. A name is secret when, compared case-insensitively,
 * it contains one of them. The access log and the audit trail both start
 * from this list. */
extern const char *const talon_secret_words[];

/* True when name (len bytes) contains one of words, case-insensitively. */
bool talon_secret_name(const char *name, size_t len, const char *const *words);

/* Redact a URL or request target: the value of each query parameter, and
 * of each key=value pair in a fragment, whose percent-decoded name is
 * secret under words becomes "[REDACTED]", and so does the userinfo of an
 * absolute URL ("http://[REDACTED]@host/"). Returns the length of the
 * result and, unless out is NULL, writes it there (no NUL): call once with
 * out NULL to size the buffer. *found (may be NULL) is set to whether a
 * value was redacted. */
size_t talon_redact_url(const char *url, size_t len, const char *const *words, char *out,
                        bool *found);

#ifdef __cplusplus
}
#endif
#endif
