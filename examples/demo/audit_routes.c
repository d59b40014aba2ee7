/* talon-demo audit setup: configuration, key generation at first start,
 * the trail and its policy, note events and ownership, GET /audit and
 * talon-demo --hash-password. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "talon/audit.h"
#include "talon/audit_http.h"
#include "talon/audit_reader.h"
#include "talon/log.h"
#include "demo.h"
#include "demo_audit.h"

#define AUDIT_LIMIT_DEFAULT "100"
#define AUDIT_LIMIT_MAX 1000
#define DEFAULT_USERS_FILE "examples/demo/users.ini"

/* The demo's policy when the configuration has no [audit.policy] rules.
 * Every change is recorded with its redacted request body and held until
 * durable. Reads are recorded as metadata without waiting, except the health
 * check and the greeting, which touch no data. */
static const char *const default_rules[] = {
    "GET,HEAD /health none",
    "GET,HEAD /hello none",
    "POST /login request_response sync",
    "POST /logout metadata sync",
    "GET /audit metadata sync",
    "* /users* request sync",
    "GET,HEAD,OPTIONS * metadata async",
    "* - metadata async",
    "* * request sync",
    NULL
};

static struct {
    bool options_ready;
    bool state_file_set;
    talon_audit_options options;
    talon_audit_policy *policy;
    bool policy_has_rules;
    char *users_file;
    char *verify_key;
    talon_audit_trail *trail;
    char trail_dir[512];
} demo_state;

static int init_config(void)
{
    if (demo_state.options_ready)
        return 0;
    talon_audit_options_init(&demo_state.options);
    demo_state.policy = talon_audit_policy_new();
    if (demo_state.policy == NULL)
        return -ENOMEM;
    demo_state.options_ready = true;
    return 0;
}

static int set_string(char **slot, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return -ENOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

/* [audit] (the trail's options, plus verify_key: where the first start
 * writes the auditor's verification key), [audit.policy] (ordered rules,
 * first match wins) and [demo.auth] (users file, token lifetime, login
 * rate limit). */
int demo_config_audit(demo *d, const char *section, const char *key, const char *value,
                      char *err, size_t errlen)
{
    int rc = init_config();
    if (rc < 0)
        return rc;
    if (strcmp(section, "audit.policy") == 0) {
        rc = talon_audit_policy_config_set(demo_state.policy, key, value, err, errlen);
        if (rc == 0 && strcmp(key, "rule") == 0)
            demo_state.policy_has_rules = true;
        return rc;
    }
    if (strcmp(section, "demo.auth") == 0) {
        if (strcmp(key, "users") == 0)
            return set_string(&demo_state.users_file, value);
        return demo_auth_config(key, value, err, errlen);
    }
    if (strcmp(key, "verify_key") == 0)
        return set_string(&demo_state.verify_key, value);
    rc = talon_audit_config_set(&demo_state.options, key, value, err, errlen);
    if (rc == 0 && strcmp(key, "state_file") == 0)
        demo_state.state_file_set = true;
    return rc;
}

/* mkdir -p with mode for each missing component. */
static int make_dirs(const char *path, mode_t mode)
{
    char buf[512];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Count the trail files in dir into *count, with the reader's own rule for
 * their names. A missing directory has none. Returns 0 or a negative errno
 * with err set. */
static int count_trail_files(const char *dir, unsigned *count, char *err, size_t errlen)
{
    talon_audit_reader *reader;
    int rc = talon_audit_reader_open(&reader, &dir, 1, err, errlen);

    *count = 0;
    if (rc == -ENOENT)
        return 0; /* no directory, or no audit-NNNNNNNN.jsonl in it */
    if (rc < 0)
        return rc;
    *count = (unsigned)talon_audit_reader_file_count(reader);
    talon_audit_reader_close(reader);
    return 0;
}

/* Create the keys when the server's key state does not exist yet. A trail
 * without its key state cannot be continued, and new keys would not match
 * it, so that case is rejected before any key is written. */
static int ensure_keys(char *err, size_t errlen)
{
    struct stat st;
    if (stat(demo_state.options.state_file, &st) == 0)
        return 0;
    if (errno != ENOENT) {
        int rc = -errno;
        snprintf(err, errlen, "cannot read the audit key state %s: %s", demo_state.options.state_file,
                 strerror(-rc));
        return rc;
    }
    unsigned files;
    int rc = count_trail_files(demo_state.options.dir, &files, err, errlen);
    if (rc < 0)
        return rc;
    if (files > 0) {
        char also[600] = "";
        if (lstat(demo_state.verify_key, &st) == 0)
            snprintf(also, sizeof(also), " and its verification key %s", demo_state.verify_key);
        snprintf(err, errlen, "the audit key state %s is missing, but %s contains %u trail "
                 "file(s), which cannot be continued without it. Put the key state back, or "
                 "move %s%s aside to start a new trail (docs/audit.md, section Lost key "
                 "state). No key was created",
                 demo_state.options.state_file, demo_state.options.dir, files,
                 demo_state.options.dir, also);
        return -ENOENT;
    }
    rc = talon_audit_keygen(demo_state.verify_key, demo_state.options.state_file, err, errlen);
    if (rc < 0)
        return rc;
    fprintf(stderr,
            "talon-demo: created the audit trail keys at first start.\n"
            "  verification key: %s  (the auditor's copy: move it off this machine and\n"
            "                    verify with: talon audit verify --key FILE %s)\n"
            "  server key state: %s  (0600, evolves every epoch)\n",
            demo_state.verify_key, demo_state.options.dir, demo_state.options.state_file);
    return 0;
}

static int open_trail(char *err, size_t errlen)
{
    /* A trail in another directory keeps its key state there too, unless
     * state_file is set. */
    if (!demo_state.state_file_set && strcmp(demo_state.options.dir, "var/audit") != 0) {
        char path[600];
        snprintf(path, sizeof(path), "%s/key.state", demo_state.options.dir);
        int rc = talon_audit_config_set(&demo_state.options, "state_file", path, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (demo_state.verify_key == NULL && set_string(&demo_state.verify_key, "var/audit-verify.key") < 0)
        return -ENOMEM;
    snprintf(demo_state.trail_dir, sizeof(demo_state.trail_dir), "%s", demo_state.options.dir);

    int rc = make_dirs(demo_state.options.dir, 0700);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create the audit trail directory %s: %s",
                 demo_state.options.dir, strerror(-rc));
        return rc;
    }
    rc = ensure_keys(err, errlen);
    if (rc < 0)
        return rc;
    return talon_audit_open(&demo_state.trail, &demo_state.options, err, errlen);
}

static int load_users(char *err, size_t errlen)
{
    const char *path = demo_state.users_file;
    if (path == NULL && access(DEFAULT_USERS_FILE, R_OK) == 0)
        path = DEFAULT_USERS_FILE;
    int rc = demo_users_load(path, err, errlen);
    if (rc == 0)
        talon_log_info(talon_logger_get("app"), "users loaded from %s",
                       path ? path : "the built-in demo users");
    return rc;
}

/* ---- Notes: owners and object events ---- */

static bool is_note_resource(const talon_resource *resource)
{
    return resource != NULL && resource->name != NULL &&
           (strcmp(resource->name, "note") == 0 || strcmp(resource->name, "notes") == 0);
}

/* The id of a note route ("/notes/{id:int}") in canonical form, or NULL.
 * The route also matches "/notes/004", so the raw text is never used: an
 * owner lookup on "004" would miss the owner of note 4. */
static const char *note_id(const talon_req *req, char buf[DEMO_NOTE_ID_MAX])
{
    int64_t id;
    if (!talon_req_param_int(req, "id", &id))
        return NULL;
    return demo_note_id_format(id, buf);
}

/* Only the author of a note (or an admin) may change or delete it. Notes
 * created anonymously have no owner and stay open to everyone, as in the
 * base demo. */
static void notes_process_resource(talon_req *req, talon_resp *resp,
                                   const talon_resource *resource, void *ctx)
{
    if (!is_note_resource(resource))
        return;
    const char *method = talon_req_method(req);
    bool change = strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0 ||
                  strcmp(method, "DELETE") == 0;
    int64_t nid;
    char owner[DEMO_NAME_MAX + 1], id[DEMO_NOTE_ID_MAX];
    if (!change || !talon_req_param_int(req, "id", &nid) || !demo_note_owner(nid, owner))
        return;
    demo_note_id_format(nid, id);

    const char *user = talon_req_user(req);
    if (user == NULL)
        demo_deny(req, resp, 401, "login required: send Authorization: Bearer <token> from "
                  "POST /login", "note", id);
    else if (strcmp(user, owner) != 0 && !talon_req_has_role(req, "admin"))
        demo_deny(req, resp, 403, "only the note's author or an admin may change it", "note", id);
}

/* A failed note_created / note_updated / note_deleted once the status is
 * known. Successful changes are recorded by the responders themselves,
 * write-ahead (demo_commit_change). */
static void notes_process_response(talon_req *req, talon_resp *resp,
                                   const talon_resource *resource, bool req_succeeded, void *ctx)
{
    if (!is_note_resource(resource))
        return;
    const char *method = talon_req_method(req);
    int status = talon_resp_status(resp);
    const char *type = NULL;
    if (strcmp(method, "POST") == 0)
        type = "note_created";
    else if (strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0)
        type = "note_updated";
    else if (strcmp(method, "DELETE") == 0)
        type = "note_deleted";
    if (type == NULL || status < 400 || status == 401 || status == 403 ||
        talon_req_audit_failed(req) || talon_req_audit_level(req) == TALON_AUDIT_LEVEL_NONE)
        return;
    char idbuf[DEMO_NOTE_ID_MAX];
    const char *id = note_id(req, idbuf);
    talon_audit(req, &(talon_audit_args){
        .type = type, .outcome = TALON_AUDIT_FAILURE, .target_type = "note",
        .target_id = id ? id : talon_req_path(req), .reason = talon_status_reason(status) });
}

void demo_commit_change(talon_req *req, talon_resp *resp, const demo_change *change)
{
    if (talon_req_audit_trail(req) == NULL ||
        talon_req_audit_level(req) == TALON_AUDIT_LEVEL_NONE) {
        change->apply(req, resp, change->ctx);
        return;
    }
    talon_audit(req, &(talon_audit_args){
        .type = change->type, .target_type = change->target_type,
        .target_id = change->target_id, .data = change->data,
        .on_durable = change->apply, .on_failed = change->discard, .ctx = change->ctx });
}

/* ---- GET /audit ---- */

static const char *const filter_names[] = {
    "type", "actor", "outcome", "since", "until", "request_id", "target",
    "target_type", "target_id", "source_ip", "limit", "order", NULL
};

typedef struct audit_page {
    json_t *records;
    uint64_t unparsed;
} audit_page;

/* A record may hold "\u0000" (a client can send %00 in a query), which
 * jansson refuses without JSON_ALLOW_NUL; such a record must still be shown,
 * or a client could hide its own requests from the auditor. A record jansson
 * still cannot load is counted and reported in the response. */
static int collect_record(void *ctx, const talon_audit_record *rec)
{
    audit_page *page = ctx;
    json_error_t jerr;
    json_t *value = json_loadb(rec->line, rec->len, JSON_ALLOW_NUL, &jerr);
    if (value == NULL) {
        page->unparsed++;
        talon_log_error(talon_logger_get("app"), "GET /audit: record %s:%llu cannot be shown: "
                        "%s; read it with talon audit query", rec->file,
                        (unsigned long long)rec->lineno, jerr.text);
        return 0;
    }
    json_array_append_new(page->records, value);
    return 0;
}

static void audit_read_failed(talon_req *req, talon_resp *resp, int status, const char *reason,
                              json_t *filters)
{
    talon_audit(req, &(talon_audit_args){
        .type = "audit_read", .outcome = TALON_AUDIT_FAILURE, .target_type = "audit_trail",
        .target_id = demo_state.trail_dir, .reason = reason, .data = filters,
        .durability = TALON_AUDIT_DURABILITY_SYNC });
    talon_resp_error(resp, status, NULL, reason);
}

/* Check that every query parameter is a known filter given once, so that
 * a typo such as "actr=bob" does not return every record. Returns 0,
 * or -EINVAL with err set. */
static int check_filter_names(const talon_req *req, char *err, size_t errlen)
{
    const char *key, *value;
    for (size_t i = 0; talon_req_query_param_at(req, i, &key, &value); i++) {
        bool known = false;
        for (int k = 0; filter_names[k] != NULL && !known; k++)
            known = strcmp(key, filter_names[k]) == 0;
        if (!known) {
            snprintf(err, errlen, "unknown query parameter \"%.64s\"; expected type, actor, "
                     "outcome, since, until, request_id, target, target_type, target_id, "
                     "source_ip, limit or order", key);
            return -EINVAL;
        }
        if (talon_req_query_at(req, key, 1) != NULL) {
            snprintf(err, errlen, "query parameter \"%s\" is given more than once; give it "
                     "once", key);
            return -EINVAL;
        }
    }
    return 0;
}

static void audit_on_get(talon_req *req, talon_resp *resp, void *ctx)
{
    if (!demo_require_role(req, resp, "auditor", "audit_trail", demo_state.trail_dir))
        return;

    char err[512];
    talon_audit_filter filter;
    talon_audit_filter_init(&filter);
    talon_audit_filter_set(&filter, "order", "desc", err, sizeof(err));
    talon_audit_filter_set(&filter, "limit", AUDIT_LIMIT_DEFAULT, err, sizeof(err));
    json_t *filters = json_object();
    int rc = check_filter_names(req, err, sizeof(err));
    for (int i = 0; filter_names[i] != NULL && rc == 0; i++) {
        const char *value = talon_req_query(req, filter_names[i]);
        if (value == NULL)
            continue;
        json_t *shown = json_string(value);
        json_object_set_new(filters, filter_names[i], shown ? shown : json_null());
        rc = talon_audit_filter_set(&filter, filter_names[i], value, err, sizeof(err));
        if (rc < 0 && strcmp(filter_names[i], "limit") == 0)
            snprintf(err, sizeof(err), "invalid limit \"%.32s\"; expected 1 to %d", value,
                     AUDIT_LIMIT_MAX);
    }
    if (rc == 0 && (filter.limit == 0 || filter.limit > AUDIT_LIMIT_MAX)) {
        snprintf(err, sizeof(err), "invalid limit %llu; expected 1 to %d",
                 (unsigned long long)filter.limit, AUDIT_LIMIT_MAX);
        rc = -EINVAL;
    }
    if (rc < 0) {
        audit_read_failed(req, resp, 400, err, filters);
        goto out;
    }

    talon_audit_reader *reader = NULL;
    const char *paths[] = { demo_state.trail_dir };
    talon_audit_pin_files(demo_state.trail);
    rc = talon_audit_reader_open(&reader, paths, 1, err, sizeof(err));
    if (rc < 0) {
        talon_audit_unpin_files(demo_state.trail);
        talon_log_error(talon_logger_get("app"), "GET /audit: %s", err);
        audit_read_failed(req, resp, 500, "the audit trail cannot be read; see the server log",
                          filters);
        goto out;
    }
    audit_page page = { .records = json_array() };
    uint64_t skipped = 0;
    talon_audit_query(reader, &filter, collect_record, &page, &skipped);
    talon_audit_reader_close(reader);
    talon_audit_unpin_files(demo_state.trail);

    if (skipped > 0)
        talon_log_warn(talon_logger_get("app"), "GET /audit: %llu lines of %s are not audit "
                       "records and were skipped; check the trail with talon audit verify",
                       (unsigned long long)skipped, demo_state.trail_dir);

    json_t *data = json_pack("{s:O,s:I,s:I}", "filters", filters, "returned",
                             (json_int_t)json_array_size(page.records), "not_shown",
                             (json_int_t)page.unparsed);
    /* Sync: the read is on disk before the records are sent to the auditor. */
    talon_audit(req, &(talon_audit_args){
        .type = "audit_read", .target_type = "audit_trail", .target_id = demo_state.trail_dir,
        .data = data, .durability = TALON_AUDIT_DURABILITY_SYNC });
    json_decref(data);
    talon_resp_json(resp, 200, json_pack("{s:I,s:o,s:I,s:I}", "count",
                                         (json_int_t)json_array_size(page.records),
                                         "records", page.records,
                                         "not_shown", (json_int_t)page.unparsed,
                                         "skipped_lines", (json_int_t)skipped));
out:
    json_decref(filters);
    talon_audit_filter_release(&filter);
}

int demo_audit_routes(talon_app *app, const char *trail_dir, char *err, size_t errlen)
{
    talon_resource audit = { .name = "audit_trail", .on_get = audit_on_get };
    return talon_app_add_route(app, "/audit", &audit, err, errlen);
}

/* ---- Setup ---- */

int demo_audit_setup(talon_app *app, char *err, size_t errlen)
{
    int rc = init_config();
    if (rc < 0)
        return rc;
    if (!demo_state.policy_has_rules) {
        for (int i = 0; default_rules[i] != NULL && rc == 0; i++)
            rc = talon_audit_policy_add_rule(demo_state.policy, default_rules[i], err, errlen);
        if (rc < 0)
            return rc;
    }
    talon_audit_policy_set_failure(demo_state.policy, demo_state.options.failure);
    talon_audit_policy_set_max_body_size(demo_state.policy, demo_state.options.max_body_size);

    rc = load_users(err, errlen);
    if (rc < 0)
        return rc;
    rc = open_trail(err, errlen);
    if (rc < 0)
        return rc;
    rc = talon_app_set_audit(app, demo_state.trail, demo_state.policy);
    if (rc < 0) {
        snprintf(err, errlen, "cannot attach the audit trail: %s", strerror(-rc));
        return rc;
    }
    rc = demo_auth_setup(app, err, errlen);
    if (rc < 0)
        return rc;
    talon_middleware notes = {
        .process_resource = notes_process_resource,
        .process_response = notes_process_response,
    };
    rc = talon_app_add_middleware(app, &notes);
    if (rc == 0)
        rc = demo_users_routes(app, err, errlen);
    if (rc == 0)
        rc = demo_audit_routes(app, demo_state.trail_dir, err, errlen);
    return rc;
}

void demo_audit_teardown(talon_app *app)
{
    talon_app_audit_detach(app);
    if (demo_state.trail != NULL) {
        talon_audit_stats stats;
        talon_audit_get_stats(demo_state.trail, &stats);
        talon_log_info(talon_logger_get("app"),
                       "audit trail %s: %llu records, %llu fdatasync calls (%.1f records each), "
                       "%llu lost, %llu rejected, last seq %llu", demo_state.trail_dir,
                       (unsigned long long)stats.records, (unsigned long long)stats.fsyncs,
                       stats.fsyncs ? (double)stats.records / (double)stats.fsyncs : 0.0,
                       (unsigned long long)stats.lost, (unsigned long long)stats.rejected,
                       (unsigned long long)stats.last_seq);
        talon_audit_close(demo_state.trail);
    }
    demo_state.trail = NULL;
    demo_auth_teardown();
    demo_users_free();
    talon_audit_policy_free(demo_state.policy);
    demo_state.policy = NULL;
    if (demo_state.options_ready)
        talon_audit_options_release(&demo_state.options);
    demo_state.options_ready = false;
    free(demo_state.users_file);
    free(demo_state.verify_key);
    demo_state.users_file = demo_state.verify_key = NULL;
}

/* ---- talon-demo --hash-password ---- */

/* Read one line from stdin, without echo on a terminal. Returns 0, -EIO,
 * or -E2BIG when the line does not fit in buf (the rest is read and
 * dropped, so no shorter prefix is ever hashed). */
static int read_password(char *buf, size_t len)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fprintf(stderr, "Password: ");
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *line = fgets(buf, (int)len, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (line == NULL)
        return -EIO;
    if (strchr(buf, '\n') == NULL && !feof(stdin)) {
        int c;
        while ((c = getchar()) != EOF && c != '\n')
            ;
        OPENSSL_cleanse(buf, len);
        return -E2BIG;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int demo_audit_option(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--hash-password") != 0)
        return -1;
    char password[DEMO_PASSWORD_MAX + 3], hash[256]; /* the password, CR, LF, NUL */
    int rc = read_password(password, sizeof(password));
    size_t len = rc == 0 ? strlen(password) : 0;
    if (rc == -E2BIG || len > DEMO_PASSWORD_MAX) {
        OPENSSL_cleanse(password, sizeof(password));
        fprintf(stderr, "talon-demo: --hash-password: the password is longer than %d bytes; "
                "use %d to %d bytes, as POST /users and PUT /users/NAME require\n",
                DEMO_PASSWORD_MAX, DEMO_PASSWORD_MIN, DEMO_PASSWORD_MAX);
        return 2;
    }
    if (rc < 0 || len < DEMO_PASSWORD_MIN) {
        OPENSSL_cleanse(password, sizeof(password));
        fprintf(stderr, "talon-demo: --hash-password reads a password of at least %d bytes "
                "(and at most %d) from standard input\n", DEMO_PASSWORD_MIN, DEMO_PASSWORD_MAX);
        return 2;
    }
    rc = demo_password_hash(password, hash, sizeof(hash));
    OPENSSL_cleanse(password, sizeof(password));
    if (rc < 0) {
        fprintf(stderr, "talon-demo: hashing failed: %s\n", strerror(-rc));
        return 1;
    }
    printf("%s\n", hash);
    return 0;
}

const char demo_audit_usage[] =
    "\n"
    "Audit: the trail is written to var/audit/ ([audit] dir); the first start\n"
    "creates its keys and prints where the verification key went. Sections\n"
    "[audit], [audit.policy] and [demo.auth] are described in docs/audit.md.\n";
