/* The "rfc5424" format: one syslog message per record (RFC 5424).
 *
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID k="v" ...] MSG\n
 *
 * PRI is facility * 8 + the severity of the record's level. TIMESTAMP is UTC
 * with microseconds. HOSTNAME, APP-NAME and PROCID are fixed when the
 * format is compiled, and MSGID is the logger name. Each field of the record
 * becomes one SD-PARAM of a single SD-ELEMENT, so a receiver such as rsyslog
 * (mmpstrucdata) gets them as named properties. A record without fields
 * has the NILVALUE "-". MSG is the message, escaped as in the text format.
 *
 * With a msg_format ("combined", "json", ...), MSG is that format's line
 * and STRUCTURED-DATA is "-": the line already holds the fields.
 *
 * MSG is written without the UTF-8 BOM that RFC 5424 allows: many receivers
 * keep the BOM as part of the text, and an escaped message is already valid
 * UTF-8 (the RFC's MSG-ANY accepts it as it is).
 *
 * The final '\n' keeps the one-line contract of every format, so the same
 * format serves a file; a syslog sink strips it (or frames the message for
 * TCP). No input byte can end the message early: control bytes and invalid
 * UTF-8 are escaped in MSG and in every PARAM-VALUE, and header parts are
 * checked or replaced at compile time.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log/format_internal.h"
#include "log/format_out.h"

#define RFC5424_HOSTNAME_MAX 255
#define RFC5424_APP_NAME_MAX 48
#define RFC5424_PROCID_MAX 128
#define RFC5424_NAME_MAX 32     /* MSGID, SD-ID and PARAM-NAME */
#define RFC5424_DEFAULT_SD_ID "talon@32473"

/* ---- Header ---- */

/* Syslog severities (RFC 5424, table 2) of trace..fatal; trace shares
 * debug's, because syslog has nothing below debug. */
static const unsigned char level_severity[] = { 7, 7, 6, 4, 3, 2, 7 };

/* PRINTUSASCII, and for SD-NAMEs also not '=', ']' or '"'. */
static bool printusascii(unsigned char c)
{
    return c >= 33 && c <= 126;
}

static bool sd_name_char(unsigned char c)
{
    return printusascii(c) && c != '=' && c != ']' && c != '"';
}

/* Write s as a header token of at most max bytes: bytes a token cannot hold
 * become '_'. An empty value is the NILVALUE "-". */
static void out_token(out *o, const char *s, size_t max, bool (*allowed)(unsigned char))
{
    size_t n = 0;

    for (; s[n] && n < max; n++)
        out_char(o, allowed((unsigned char)s[n]) ? s[n] : '_');
    if (n == 0)
        out_char(o, '-');
}

typedef struct time_cache {
    int64_t sec;
    char text[32]; /* 2024-05-01T10:00:00 */
} time_cache;

static __thread time_cache cached_second = { .sec = INT64_MIN };

/* TIMESTAMP: 2024-05-01T10:00:00.123456Z. The date part is cached per
 * thread, because consecutive records nearly always share their second. */
static void out_timestamp(out *o, int64_t ns)
{
    int64_t sec = ns / 1000000000, frac = ns % 1000000000;

    if (frac < 0) {
        sec--;
        frac += 1000000000;
    }
    if (cached_second.sec != sec) {
        struct tm tm;
        time_t t = (time_t)sec;

        gmtime_r(&t, &tm);
        snprintf(cached_second.text, sizeof(cached_second.text), "%04d-%02d-%02dT%02d:%02d:%02d",
                 (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        cached_second.sec = sec;
    }
    out_put(o, cached_second.text, 19);
    char us[8] = { '.' };
    uint64_t v = (uint64_t)frac / 1000;
    for (int i = 6; i >= 1; i--) {
        us[i] = (char)('0' + v % 10);
        v /= 10;
    }
    us[7] = 'Z';
    out_put(o, us, sizeof(us));
}

/* ---- Structured data ---- */

static void out_sd_string(out *o, const char *s, size_t n)
{
    size_t room = out_room(o);

    o->len += talon_escape_sd_value(room ? o->buf + o->len : NULL, room, s, n);
}

static void out_sd_value(out *o, const talon_field *f)
{
    char tmp[64];
    int n = 0;

    switch (f->type) {
    case TALON_FIELD_STR:
        if (f->v.str)
            out_sd_string(o, f->v.str, f->len == SIZE_MAX ? strlen(f->v.str) : f->len);
        return;
    case TALON_FIELD_INT:
        n = snprintf(tmp, sizeof(tmp), "%" PRId64, f->v.i);
        break;
    case TALON_FIELD_UINT:
        out_u64(o, f->v.u);
        return;
    case TALON_FIELD_DOUBLE:
        /* The shortest of %.15g and %.17g that reads back as the same value. */
        n = snprintf(tmp, sizeof(tmp), "%.15g", f->v.d);
        if (isfinite(f->v.d) && strtod(tmp, NULL) != f->v.d)
            n = snprintf(tmp, sizeof(tmp), "%.17g", f->v.d);
        break;
    case TALON_FIELD_BOOL:
        n = snprintf(tmp, sizeof(tmp), "%s", f->v.b ? "true" : "false");
        break;
    case TALON_FIELD_TIME: {
        out_timestamp(o, f->v.i);
        return;
    }
    }
    if (n > 0)
        out_put(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* [SD-ID name="value" ...], or "-" for a record without fields.
 * NOTE: a field key longer than 32 bytes is cut to 32 (the PARAM-NAME
 * limit), so two long keys that share their first 32 bytes collide. */
static void out_structured_data(out *o, const talon_log_format *fmt, const talon_log_record *rec)
{
    if (rec->nfields == 0) {
        out_char(o, '-');
        return;
    }
    out_char(o, '[');
    out_put(o, fmt->sd_id, strlen(fmt->sd_id));
    for (size_t i = 0; i < rec->nfields; i++) {
        const talon_field *f = &rec->fields[i];

        out_char(o, ' ');
        out_token(o, f->key ? f->key : "", RFC5424_NAME_MAX, sd_name_char);
        out_put(o, "=\"", 2);
        out_sd_value(o, f);
        out_char(o, '"');
    }
    out_char(o, ']');
}

size_t log_format_rfc5424(const talon_log_format *fmt, const talon_log_record *rec, char *buf,
                          size_t cap)
{
    out o = { .buf = buf, .cap = buf ? cap : 0, .len = 0 };
    unsigned level = (unsigned)rec->level <= TALON_LOG_OFF ? (unsigned)rec->level : TALON_LOG_OFF;

    out_char(&o, '<');
    out_u64(&o, (uint64_t)fmt->facility * 8 + level_severity[level]);
    out_put(&o, ">1 ", 3);
    out_timestamp(&o, rec->time_ns);
    out_put(&o, fmt->syslog_header, strlen(fmt->syslog_header));
    out_token(&o, rec->logger ? rec->logger : "", RFC5424_NAME_MAX, printusascii);
    out_char(&o, ' ');
    if (fmt->msg_format) {
        /* Another format's line (one line, already escaped) without its '\n'. */
        out_put(&o, "- ", 2);
        size_t room = out_room(&o);
        size_t n = talon_log_format_record(fmt->msg_format, rec, room ? o.buf + o.len : NULL, room);
        o.len += n > 0 ? n - 1 : 0;
        out_char(&o, '\n');
        return o.len;
    }
    out_structured_data(&o, fmt, rec);

    size_t mlen = 0;
    if (rec->message)
        mlen = rec->message_len == SIZE_MAX ? strlen(rec->message) : rec->message_len;
    if (mlen > 0) {
        out_char(&o, ' ');
        out_text(&o, rec->message, mlen);
    }
    out_char(&o, '\n');
    return o.len;
}

/* ---- Compiling ---- */

static const struct {
    const char *name;
    int code;
} facilities[] = {
    { "kern", 0 },   { "user", 1 },    { "mail", 2 },    { "daemon", 3 },  { "auth", 4 },
    { "syslog", 5 }, { "lpr", 6 },     { "news", 7 },    { "uucp", 8 },    { "cron", 9 },
    { "authpriv", 10 }, { "ftp", 11 }, { "ntp", 12 },    { "security", 13 }, { "console", 14 },
    { "clock", 15 }, { "local0", 16 }, { "local1", 17 }, { "local2", 18 }, { "local3", 19 },
    { "local4", 20 }, { "local5", 21 }, { "local6", 22 }, { "local7", 23 },
};

int talon_syslog_facility_parse(const char *name, int *out)
{
    if (!name || !*name)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++) {
        if (strcmp(name, facilities[i].name) == 0) {
            *out = facilities[i].code;
            return 0;
        }
    }
    char *end;
    long v = strtol(name, &end, 10);
    if (*end || v < 0 || v > 23 || name[0] == '-' || name[0] == '+')
        return -EINVAL;
    *out = (int)v;
    return 0;
}

void talon_rfc5424_options_init(talon_rfc5424_options *opts)
{
    *opts = (talon_rfc5424_options){ .facility = 1 };
}

/* Check a header value the user gave: 1 to max bytes of PRINTUSASCII. */
static int check_token(const char *what, const char *value, size_t max, bool sd_name,
                       char *err, size_t errlen)
{
    size_t n = strlen(value);
    bool ok = n > 0 && n <= max;

    for (size_t i = 0; ok && i < n; i++)
        ok = sd_name ? sd_name_char((unsigned char)value[i]) : printusascii((unsigned char)value[i]);
    if (!ok) {
        snprintf(err, errlen, "invalid %s '%.64s'; expected 1 to %zu printable ASCII characters "
                 "without spaces%s", what, value, max, sd_name ? ", '=', ']' or '\"'" : "");
        return -EINVAL;
    }
    return 0;
}

static int check_sd_id(const char *sd_id, char *err, size_t errlen)
{
    int rc = check_token("sd_id", sd_id, RFC5424_NAME_MAX, true, err, errlen);
    if (rc < 0)
        return rc;
    /* Names without '@' are reserved for IANA (RFC 5424, section 7.2). */
    const char *at = strchr(sd_id, '@');
    if (!at || at == sd_id || !at[1] || strspn(at + 1, "0123456789.") != strlen(at + 1)) {
        snprintf(err, errlen, "invalid sd_id '%.64s'; expected NAME@NUMBER with your IANA private "
                 "enterprise number, such as talon@32473", sd_id);
        return -EINVAL;
    }
    return 0;
}

/* Build " HOSTNAME APP-NAME PROCID " from opts and the process. */
static char *build_header(const talon_rfc5424_options *o, char *err, size_t errlen)
{
    char host[RFC5424_HOSTNAME_MAX + 1] = "";
    char procid[32];
    const char *app = o->app_name ? o->app_name : program_invocation_short_name;

    if (o->hostname) {
        if (check_token("hostname", o->hostname, RFC5424_HOSTNAME_MAX, false, err, errlen) < 0)
            return NULL;
        snprintf(host, sizeof(host), "%s", o->hostname);
    } else if (gethostname(host, sizeof(host) - 1) < 0) {
        host[0] = '\0';
    }
    if (o->app_name && check_token("app_name", o->app_name, RFC5424_APP_NAME_MAX, false, err, errlen) < 0)
        return NULL;
    if (o->procid && check_token("procid", o->procid, RFC5424_PROCID_MAX, false, err, errlen) < 0)
        return NULL;
    /* NOTE: the default PROCID is the pid when the format was compiled; a
     * child after fork() keeps its parent's. */
    snprintf(procid, sizeof(procid), "%ld", (long)getpid());

    size_t cap = 4 + RFC5424_HOSTNAME_MAX + RFC5424_APP_NAME_MAX + RFC5424_PROCID_MAX + 1;
    char *header = malloc(cap);
    if (!header) {
        snprintf(err, errlen, "log format rfc5424: out of memory");
        return NULL;
    }
    out o2 = { .buf = header, .cap = cap - 1, .len = 0 };
    out_char(&o2, ' ');
    out_token(&o2, host, RFC5424_HOSTNAME_MAX, printusascii);
    out_char(&o2, ' ');
    out_token(&o2, app ? app : "", RFC5424_APP_NAME_MAX, printusascii);
    out_char(&o2, ' ');
    out_token(&o2, o->procid ? o->procid : procid, RFC5424_PROCID_MAX, printusascii);
    out_char(&o2, ' ');
    header[o2.len] = '\0';
    return header;
}

talon_log_format *talon_log_format_compile_rfc5424(const talon_rfc5424_options *opts, char *err,
                                                   size_t errlen)
{
    talon_rfc5424_options defaults;
    talon_log_format *fmt;

    if (!opts) {
        talon_rfc5424_options_init(&defaults);
        opts = &defaults;
    }
    if (opts->facility < 0 || opts->facility > 23) {
        snprintf(err, errlen, "invalid facility %d; expected 0 to 23 or a name such as user or local0",
                 opts->facility);
        return NULL;
    }
    const char *sd_id = opts->sd_id ? opts->sd_id : RFC5424_DEFAULT_SD_ID;
    if (check_sd_id(sd_id, err, errlen) < 0)
        return NULL;
    fmt = calloc(1, sizeof(*fmt));
    if (!fmt) {
        snprintf(err, errlen, "log format rfc5424: out of memory");
        return NULL;
    }
    fmt->kind = FORMAT_RFC5424;
    fmt->facility = opts->facility;
    fmt->syslog_header = build_header(opts, err, errlen);
    fmt->sd_id = strdup(sd_id);
    if (fmt->syslog_header && fmt->sd_id && opts->msg_format &&
        strcmp(opts->msg_format, "rfc5424") != 0) {
        char ierr[200];
        fmt->msg_format = talon_log_format_compile(opts->msg_format, ierr, sizeof(ierr));
        if (!fmt->msg_format) {
            snprintf(err, errlen, "%s", ierr);
            talon_log_format_free(fmt);
            return NULL;
        }
    }
    if (!fmt->syslog_header || !fmt->sd_id) {
        if (fmt->syslog_header)
            snprintf(err, errlen, "log format rfc5424: out of memory");
        talon_log_format_free(fmt);
        return NULL;
    }
    return fmt;
}
