/* Field keys of access-log records, in Elastic Common Schema (ECS 8.x) names.
 *
 * The access-log middleware writes records with these keys, and the format
 * variables ($remote_addr, $status, ...) read them. JSON lines carry the keys
 * flat and dotted ("http.request.method"), which Filebeat and Elasticsearch
 * ingest as they are (ecs-logging writes them the same way).
 */
#ifndef TALON_LOG_FIELDS_H
#define TALON_LOG_FIELDS_H

#include <stdbool.h>
#include <stdint.h>

#define TALON_KEY_CLIENT_IP        "client.ip"                 /* $remote_addr */
#define TALON_KEY_USER_NAME        "user.name"                 /* $remote_user when set */
#define TALON_KEY_USER_ID          "user.id"                   /* $user_id; $remote_user falls back to it */
#define TALON_KEY_METHOD           "http.request.method"       /* $request_method */
#define TALON_KEY_URL_ORIGINAL     "url.original"              /* $request_uri: the target as sent */
#define TALON_KEY_URL_PATH         "url.path"                  /* $uri: the percent-decoded path */
#define TALON_KEY_HTTP_VERSION     "http.version"              /* "1.1"; $server_protocol adds "HTTP/" */
#define TALON_KEY_STATUS           "http.response.status_code" /* $status */
#define TALON_KEY_BODY_BYTES       "http.response.body.bytes"  /* $body_bytes_sent */
#define TALON_KEY_RESPONSE_BYTES   "http.response.bytes"       /* $bytes_sent, headers included */
#define TALON_KEY_DURATION         "event.duration"            /* nanoseconds; $request_time, $request_duration_us */
#define TALON_KEY_REFERRER         "http.request.referrer"     /* $http_referer */
#define TALON_KEY_USER_AGENT       "user_agent.original"       /* $http_user_agent */
#define TALON_KEY_REQUEST_ID       "http.request.id"           /* $request_id */
#define TALON_KEY_TRACE_ID         "trace.id"                  /* $trace_id */
/* ECS has no field for a route template; "http.route" is the OpenTelemetry
 * semantic-convention name for the same thing ("/notes/{id:int}"). */
#define TALON_KEY_ROUTE            "http.route"                /* $route */
#define TALON_KEY_OUTCOME          "event.outcome"             /* success, failure, unknown */

/* Interned keys: the same texts, stored once in log_keys (fields.c). A
 * record whose field keys are these pointers is searched by pointer
 * comparison alone; any other key pointer is compared by its text, so
 * records built with the string literals above format the same. */
typedef enum log_key_id {
    LOG_KEY_CLIENT_IP,
    LOG_KEY_USER_NAME,
    LOG_KEY_USER_ID,
    LOG_KEY_METHOD,
    LOG_KEY_URL_ORIGINAL,
    LOG_KEY_URL_PATH,
    LOG_KEY_HTTP_VERSION,
    LOG_KEY_STATUS,
    LOG_KEY_BODY_BYTES,
    LOG_KEY_RESPONSE_BYTES,
    LOG_KEY_DURATION,
    LOG_KEY_REFERRER,
    LOG_KEY_USER_AGENT,
    LOG_KEY_REQUEST_ID,
    LOG_KEY_TRACE_ID,
    LOG_KEY_ROUTE,
    LOG_KEY_OUTCOME,
    LOG_KEY_COUNT
} log_key_id;

/* Bytes per entry of log_keys: a power of two longer than every key. */
#define LOG_KEY_SIZE 32

extern const char log_keys[LOG_KEY_COUNT][LOG_KEY_SIZE];

/* The interned pointer of TALON_KEY_<name>, for example LOG_KEY(STATUS). */
#define LOG_KEY(name) (log_keys[LOG_KEY_##name])

/* True when key is the start of an entry of log_keys. */
static inline bool log_key_is_interned(const char *key)
{
    uintptr_t off = (uintptr_t)key - (uintptr_t)log_keys;

    return off < sizeof(log_keys) && off % LOG_KEY_SIZE == 0;
}

/* The interned pointer of a key with the same text, or NULL. */
const char *log_key_intern(const char *key);

#endif
