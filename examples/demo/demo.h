/* talon-demo: the parts main.c wires together. Each area (resources,
 * configuration sections) lives in its own file and registers itself from
 * main.c with one call. */
#ifndef TALON_DEMO_H
#define TALON_DEMO_H

#include <stdbool.h>
#include <stddef.h>

#include "talon/app.h"

typedef struct demo {
    talon_app *app;
    talon_server_options server;
    char listen[256];
    char trusted_proxies[1024];
    char engine[32];             /* [server] engine, when set */
    bool strip_trailing_slash;
    bool test_routes;      /* --test-routes: add /debug/... for the e2e tests */
} demo;

/* basic.c: GET /health and GET /hello. */
int demo_basic_routes(demo *d, char *err, size_t errlen);
/* notes.c: the in-memory notes API. */
int demo_notes_routes(demo *d, char *err, size_t errlen);
void demo_notes_free(void);
/* debug.c: routes for tests only (GET /debug/hold). */
int demo_debug_routes(demo *d, char *err, size_t errlen);

/* A change to the demo's state and the audit record that describes it.
 * apply makes the change (it may still set the response); discard frees
 * ctx when the change must not happen. */
typedef void (*demo_change_fn)(talon_req *req, talon_resp *resp, void *ctx);
typedef struct demo_change {
    const char *type;          /* audit event type: "note_created", ... */
    const char *target_type;
    const char *target_id;
    json_t *data;              /* borrowed; NULL: {} */
    demo_change_fn apply;
    demo_change_fn discard;
    void *ctx;
} demo_change;
/* Write-ahead (audit_routes.c): apply the change only once its record is
 * durable, so that a 503 from the audit trail means nothing changed. When
 * the request is not audited (policy level none), apply it at once. */
void demo_commit_change(talon_req *req, talon_resp *resp, const demo_change *change);

/* Send a JSON object built with json_pack, or a 500 when packing failed. */
void demo_send_json(talon_resp *resp, int status, json_t *doc);

/* logging.c: var/log/app.log and var/log/access.log unless the INI file
 * says otherwise. Call demo_logging_defaults() before loading the INI file;
 * demo_logging_start() applies the log configuration and attaches the access
 * log, so call it right after talon_app_new(), before anything logs; call
 * demo_logging_stop() after talon_app_free() and before talon_log_shutdown(). */
int demo_logging_defaults(char *err, size_t errlen);
/* The "[access_log]" section: skip_paths, skip_status, and the keys of "[log.access]". */
int demo_access_log_config(demo *d, const char *section, const char *key, const char *value,
                           char *err, size_t errlen);
int demo_logging_start(demo *d, char *err, size_t errlen);
void demo_logging_stop(void);
/* Print where each log goes, from the configuration file (NULL: none) over
 * the defaults, for the startup banner. */
void demo_logging_print(const char *config_path);

#endif
