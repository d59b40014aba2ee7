/* Compiled log formats, shared by the compiler (format_compile.c) and the
 * formatter (format.c). */
#ifndef TALON_LOG_FORMAT_INTERNAL_H
#define TALON_LOG_FORMAT_INTERNAL_H

#include <stddef.h>

#include "talon/log.h"

/* The ECS version whose field names the "json" format follows. */
#define TALON_ECS_VERSION "8.11.0"

typedef enum format_kind {
    FORMAT_TEXT = 0, /* time LEVEL logger message key=value ... */
    FORMAT_JSON,     /* ECS JSON lines */
    FORMAT_LOGFMT,   /* time=... level=... logger=... msg=... key=value */
    FORMAT_OPS,      /* "combined", "common" and custom strings */
    FORMAT_RFC5424   /* syslog messages (format_rfc5424.c) */
} format_kind;

typedef enum op_kind {
    OP_LITERAL,      /* nothing but text: the literal text that ends a format */
    OP_FIELD,        /* the field named key, "-" when missing or empty */
    OP_FIELD_OR,     /* key, or key2 when key is missing or empty */
    OP_PROTOCOL,     /* "HTTP/" + http.version */
    OP_REQUEST,      /* method SP target SP protocol */
    OP_TIME_LOCAL,   /* 01/May/2024:12:00:00 +0200 */
    OP_TIME_ISO8601, /* 2024-05-01T12:00:00+02:00 */
    OP_TIME_UTC,     /* 2024-05-01T10:00:00.123456Z */
    OP_MSEC,         /* 1714557600.123 */
    OP_DURATION_S,   /* event.duration as seconds with milliseconds */
    OP_DURATION_US,  /* event.duration in microseconds */
    OP_LEVEL,
    OP_LOGGER,
    OP_MESSAGE,
} op_kind;

typedef struct format_op {
    op_kind kind;
    const char *text; /* literal text written before the operation, not NUL-terminated */
    size_t len;
    const char *key;  /* OP_FIELD, OP_FIELD_OR: NUL-terminated */
    const char *key2;
} format_op;

struct talon_log_format {
    format_kind kind;
    int escape;       /* escape_mode of format.c: 0 text (\xHH), 1 JSON */
    format_op *ops;
    size_t nops;
    char *spec;       /* owned copy; literals and keys point into it */
    /* FORMAT_RFC5424 only. */
    int facility;
    char *syslog_header; /* " HOSTNAME APP-NAME PROCID " after the timestamp */
    char *sd_id;
    talon_log_format *msg_format; /* owned; NULL: message and SD-PARAMs */
};

/* Format rec as one RFC 5424 message ending in '\n' (format_rfc5424.c);
 * same contract as talon_log_format_record(). */
size_t log_format_rfc5424(const talon_log_format *fmt, const talon_log_record *rec,
                          char *buf, size_t cap);

#endif
