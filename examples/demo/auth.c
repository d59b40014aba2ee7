/* talon-demo authentication: POST /login and POST /logout with bearer
 * tokens, the auth middleware, role checks, login rate limiting and note
 * ownership.
 *
 * A token is 256 random bits sent to the client once; the server keeps
 * only its SHA-256, so a memory dump of the session table gives no usable
 * token. Lookups compare every stored hash with CRYPTO_memcmp. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "talon/audit_http.h"
#include "talon/config.h"
#include "talon/log.h"
#include "demo.h"
#include "demo_audit.h"

#define TOKEN_BYTES 32
#define SESSIONS_MAX 10000
#define LIMITER_MAX 4096 /* entries of the login limiter, at most */
#define OWNERS_MAX 100000
#define TOKEN_CONTEXT_KEY "demo.token_hash"

typedef struct session {
    unsigned char hash[SHA256_DIGEST_LENGTH];
    char user[DEMO_NAME_MAX + 1];
    char role[DEMO_ROLE_MAX];
    int64_t expires; /* CLOCK_MONOTONIC seconds */
    bool pending;    /* true until the login record is durable; the token is rejected meanwhile */
} session;

/* Failed logins of one source address ("ip:...") or user ("user:...") in
 * the current fixed window. */
typedef struct limiter_entry {
    char key[80];
    int64_t window_start;
    unsigned failures;
} limiter_entry;

typedef struct note_owner {
    int64_t id;
    char user[DEMO_NAME_MAX + 1];
} note_owner;

static struct {
    unsigned token_ttl;          /* seconds */
    unsigned max_failures;       /* failed logins per window before 429 */
    unsigned window;             /* seconds */
    unsigned limiter_entries;    /* sources and users tracked at once */
} auth_config = { .token_ttl = 900, .max_failures = 5, .window = 60,
                  .limiter_entries = LIMITER_MAX };

static pthread_mutex_t auth_lock = PTHREAD_MUTEX_INITIALIZER;
static session *sessions;
static size_t nsessions;
static limiter_entry limiter[LIMITER_MAX];
static size_t nlimiter;
static note_owner *owners;
static size_t nowners;

static int64_t now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

int demo_auth_config(const char *key, const char *value, char *err, size_t errlen)
{
    unsigned long long n;
    int rc;

    if (strcmp(key, "token_ttl") == 0 || strcmp(key, "login_window") == 0) {
        rc = talon_config_parse_seconds(value, &n, err, errlen);
        if (rc < 0)
            return rc;
        if (n == 0 || n > 7 * 86400) {
            snprintf(err, errlen, "invalid duration \"%s\"; expected 1s to 7d", value);
            return -EINVAL;
        }
        if (key[0] == 't')
            auth_config.token_ttl = (unsigned)n;
        else
            auth_config.window = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "login_max_failures") == 0) {
        char *end;
        n = strtoull(value, &end, 10);
        if (*value == '\0' || *end != '\0' || n == 0 || n > 1000) {
            snprintf(err, errlen, "invalid count \"%s\"; expected 1 to 1000", value);
            return -EINVAL;
        }
        auth_config.max_failures = (unsigned)n;
        return 0;
    }
    if (strcmp(key, "login_limiter_entries") == 0) {
        char *end;
        n = strtoull(value, &end, 10);
        if (*value == '\0' || *end != '\0' || n < 2 || n > LIMITER_MAX) {
            snprintf(err, errlen, "invalid count \"%s\"; expected 2 to %d", value, LIMITER_MAX);
            return -EINVAL;
        }
        auth_config.limiter_entries = (unsigned)n;
        return 0;
    }
    snprintf(err, errlen, "unknown key \"%s\"; expected users, token_ttl, login_max_failures, "
             "login_window or login_limiter_entries", key);
    return -EINVAL;
}

/* ---- Sessions ---- */

static void drop_expired_locked(int64_t now)
{
    size_t kept = 0;
    for (size_t i = 0; i < nsessions; i++) {
        if (sessions[i].expires > now)
            sessions[kept++] = sessions[i];
    }
    nsessions = kept;
}

/* Make a pending session for user: token_hex receives 64 hex digits and
 * hash their SHA-256. The token is accepted only after session_activate(). */
static int session_create(const char *user, const char *role, char token_hex[2 * TOKEN_BYTES + 1],
                          unsigned char hash[SHA256_DIGEST_LENGTH])
{
    unsigned char token[TOKEN_BYTES];
    session s = { .pending = true };

    if (RAND_bytes(token, sizeof(token)) != 1)
        return -EIO;
    SHA256(token, sizeof(token), s.hash);
    memcpy(hash, s.hash, SHA256_DIGEST_LENGTH);
    for (size_t i = 0; i < sizeof(token); i++)
        snprintf(token_hex + 2 * i, 3, "%02x", token[i]);
    OPENSSL_cleanse(token, sizeof(token));
    snprintf(s.user, sizeof(s.user), "%s", user);
    snprintf(s.role, sizeof(s.role), "%s", role);

    int64_t now = now_seconds();
    s.expires = now + auth_config.token_ttl;
    pthread_mutex_lock(&auth_lock);
    drop_expired_locked(now);
    int rc = 0;
    if (nsessions >= SESSIONS_MAX) {
        rc = -ENOSPC;
    } else {
        sessions[nsessions++] = s;
    }
    pthread_mutex_unlock(&auth_lock);
    return rc;
}

/* Hash of a presented token; false when it is not 64 hex digits. */
static bool token_hash(const char *text, unsigned char hash[SHA256_DIGEST_LENGTH])
{
    unsigned char token[TOKEN_BYTES];
    if (strlen(text) != 2 * TOKEN_BYTES)
        return false;
    for (size_t i = 0; i < TOKEN_BYTES; i++) {
        int hi = OPENSSL_hexchar2int((unsigned char)text[2 * i]);
        int lo = OPENSSL_hexchar2int((unsigned char)text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        token[i] = (unsigned char)(hi * 16 + lo);
    }
    SHA256(token, sizeof(token), hash);
    OPENSSL_cleanse(token, sizeof(token));
    return true;
}

/* Find the live session of hash; every entry is compared in constant time
 * so the scan takes as long for a miss as for a hit. */
static bool session_find(const unsigned char hash[SHA256_DIGEST_LENGTH], session *out)
{
    bool found = false;
    int64_t now = now_seconds();

    pthread_mutex_lock(&auth_lock);
    for (size_t i = 0; i < nsessions; i++) {
        int same = CRYPTO_memcmp(sessions[i].hash, hash, SHA256_DIGEST_LENGTH) == 0;
        if (same && !sessions[i].pending && sessions[i].expires > now) {
            *out = sessions[i];
            found = true;
        }
    }
    pthread_mutex_unlock(&auth_lock);
    return found;
}

static void session_delete(const unsigned char hash[SHA256_DIGEST_LENGTH])
{
    pthread_mutex_lock(&auth_lock);
    for (size_t i = 0; i < nsessions; i++) {
        if (CRYPTO_memcmp(sessions[i].hash, hash, SHA256_DIGEST_LENGTH) == 0) {
            sessions[i] = sessions[--nsessions];
            break;
        }
    }
    pthread_mutex_unlock(&auth_lock);
}

/* Make the pending session of hash valid, with its lifetime starting now. */
static void session_activate(const unsigned char hash[SHA256_DIGEST_LENGTH])
{
    int64_t now = now_seconds();

    pthread_mutex_lock(&auth_lock);
    for (size_t i = 0; i < nsessions; i++) {
        if (CRYPTO_memcmp(sessions[i].hash, hash, SHA256_DIGEST_LENGTH) == 0) {
            sessions[i].pending = false;
            sessions[i].expires = now + auth_config.token_ttl;
            break;
        }
    }
    pthread_mutex_unlock(&auth_lock);
}

/* Write-ahead changes of the session table (demo_commit_change): a login
 * activates its session and a logout deletes one only once the record is
 * durable, so a 503 from the audit trail leaves the sessions as they were. */
typedef struct session_change {
    unsigned char hash[SHA256_DIGEST_LENGTH];
} session_change;

static session_change *session_change_new(const unsigned char hash[SHA256_DIGEST_LENGTH])
{
    session_change *c = malloc(sizeof(*c));
    if (c != NULL)
        memcpy(c->hash, hash, sizeof(c->hash));
    return c;
}

static void session_change_free(session_change *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

static void login_apply(talon_req *req, talon_resp *resp, void *ctx)
{
    session_activate(((session_change *)ctx)->hash);
    session_change_free(ctx);
}

static void login_discard(talon_req *req, talon_resp *resp, void *ctx)
{
    session_delete(((session_change *)ctx)->hash);
    session_change_free(ctx);
}

static void logout_apply(talon_req *req, talon_resp *resp, void *ctx)
{
    session_delete(((session_change *)ctx)->hash);
    session_change_free(ctx);
}

static void logout_discard(talon_req *req, talon_resp *resp, void *ctx)
{
    session_change_free(ctx);
}

void demo_auth_revoke_user(const char *name)
{
    pthread_mutex_lock(&auth_lock);
    size_t kept = 0;
    for (size_t i = 0; i < nsessions; i++) {
        if (strcmp(sessions[i].user, name) != 0)
            sessions[kept++] = sessions[i];
    }
    nsessions = kept;
    pthread_mutex_unlock(&auth_lock);
}

/* ---- Login rate limiting ---- */

static bool limiter_blocking(const limiter_entry *e, int64_t now)
{
    return now - e->window_start < auth_config.window && e->failures >= auth_config.max_failures;
}

static limiter_entry *limiter_find_locked(const char *key, int64_t now, bool create)
{
    limiter_entry *victim = NULL;
    bool victim_blocking = true;

    for (size_t i = 0; i < nlimiter; i++) {
        if (strcmp(limiter[i].key, key) == 0)
            return &limiter[i];

        /* Full table: reuse the oldest entry that blocks no one, so that an
         * attacker with many source addresses cannot push a limited user or
         * source out of the table and reset its limit. */
        bool blocking = limiter_blocking(&limiter[i], now);
        if (victim == NULL || (victim_blocking && !blocking) ||
            (blocking == victim_blocking && limiter[i].window_start < victim->window_start)) {
            victim = &limiter[i];
            victim_blocking = blocking;
        }
    }
    if (!create)
        return NULL;

    limiter_entry *e = nlimiter < auth_config.limiter_entries ? &limiter[nlimiter++] : victim;
    static int64_t warned_at = -1;
    if (e == victim && victim_blocking && warned_at != now) {
        warned_at = now; /* at most once a second; the caller holds auth_lock */
        talon_log_warn(talon_logger_get("app"),
                       "login limiter: all %u entries are blocking; dropping the limit of %s early",
                       auth_config.limiter_entries, victim->key);
    }
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->window_start = now;
    e->failures = 0;
    return e;
}

/* Seconds until key may try again, or 0 when it is not limited. */
static int64_t limiter_wait(const char *key)
{
    int64_t now = now_seconds(), wait = 0;
    pthread_mutex_lock(&auth_lock);
    limiter_entry *e = limiter_find_locked(key, now, false);
    if (e != NULL && limiter_blocking(e, now))
        wait = e->window_start + auth_config.window - now;
    pthread_mutex_unlock(&auth_lock);
    return wait;
}

static void limiter_fail(const char *key)
{
    int64_t now = now_seconds();
    pthread_mutex_lock(&auth_lock);
    limiter_entry *e = limiter_find_locked(key, now, true);
    if (now - e->window_start >= auth_config.window) {
        e->window_start = now;
        e->failures = 0;
    }
    e->failures++;
    pthread_mutex_unlock(&auth_lock);
}

static void limiter_clear(const char *key)
{
    pthread_mutex_lock(&auth_lock);
    limiter_entry *e = limiter_find_locked(key, now_seconds(), false);
    if (e != NULL)
        e->failures = 0;
    pthread_mutex_unlock(&auth_lock);
}

/* ---- Note ownership ---- */

void demo_note_set_owner(int64_t note_id, const char *user)
{
    pthread_mutex_lock(&auth_lock);
    if (nowners < OWNERS_MAX) {
        note_owner *grown = realloc(owners, (nowners + 1) * sizeof(*grown));
        if (grown != NULL) {
            owners = grown;
            owners[nowners].id = note_id;
            snprintf(owners[nowners].user, sizeof(owners[nowners].user), "%s", user);
            nowners++;
        }
    }
    pthread_mutex_unlock(&auth_lock);
}

bool demo_note_owner(int64_t note_id, char owner[DEMO_NAME_MAX + 1])
{
    bool found = false;
    pthread_mutex_lock(&auth_lock);
    for (size_t i = nowners; i-- > 0;) {
        if (owners[i].id == note_id) {
            snprintf(owner, DEMO_NAME_MAX + 1, "%s", owners[i].user);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&auth_lock);
    return found;
}

void demo_note_forget(int64_t note_id)
{
    pthread_mutex_lock(&auth_lock);
    for (size_t i = 0; i < nowners; i++) {
        if (owners[i].id == note_id) {
            owners[i] = owners[--nowners];
            break;
        }
    }
    pthread_mutex_unlock(&auth_lock);
}

/* ---- Role checks ---- */

void demo_deny(talon_req *req, talon_resp *resp, int status, const char *reason,
               const char *target_type, const char *target_id)
{
    talon_audit(req, &(talon_audit_args){
        .type = "authz_fail", .outcome = TALON_AUDIT_FAILURE, .target_type = target_type,
        .target_id = target_id ? target_id : talon_req_path(req), .reason = reason });
    talon_resp_error(resp, status, NULL, reason);
    if (status == 401)
        talon_resp_set_header(resp, "WWW-Authenticate", "Bearer realm=\"talon-demo\"");
}

bool demo_require_role(talon_req *req, talon_resp *resp, const char *role,
                       const char *target_type, const char *target_id)
{
    char reason[96];

    if (talon_req_user(req) == NULL) {
        demo_deny(req, resp, 401, "login required: send Authorization: Bearer <token> from POST /login",
             target_type, target_id);
        return false;
    }
    if (!talon_req_has_role(req, role)) {
        snprintf(reason, sizeof(reason), "role %s required", role);
        demo_deny(req, resp, 403, reason, target_type, target_id);
        return false;
    }
    return true;
}

/* ---- Middleware ---- */

static void auth_process_request(talon_req *req, talon_resp *resp, void *ctx)
{
    const char *header = talon_req_header(req, "Authorization");
    if (header == NULL)
        return;

    unsigned char hash[SHA256_DIGEST_LENGTH];
    session s;
    const char *reason = NULL;
    if (strncasecmp(header, "Bearer ", 7) != 0) {
        reason = "unsupported authorization scheme; send Authorization: Bearer <token>";
    } else {
        const char *token = header + 7;
        while (*token == ' ')
            token++;
        if (!token_hash(token, hash) || !session_find(hash, &s))
            reason = "invalid or expired token; log in again with POST /login";
    }
    if (reason != NULL) {
        demo_deny(req, resp, 401, reason, "session", NULL);
        return;
    }

    const char *roles[] = { s.role, NULL };
    talon_req_set_user(req, s.user, roles);
    unsigned char *copy = malloc(sizeof(hash));
    if (copy != NULL) {
        memcpy(copy, hash, sizeof(hash));
        if (talon_req_context_set(req, TOKEN_CONTEXT_KEY, copy, free) < 0)
            free(copy);
    }
}

/* ---- POST /login, POST /logout ---- */

static void rate_limited(talon_req *req, talon_resp *resp, const char *user, const char *which,
                         int64_t wait)
{
    char reason[160], retry[24];
    snprintf(reason, sizeof(reason), "%u failed logins within %u s for this %s; retry in %lld s",
             auth_config.max_failures, auth_config.window, which, (long long)wait);
    json_t *data = json_pack("{s:s,s:i,s:i}", "limited_by", which, "max_failures",
                             (int)auth_config.max_failures, "window_s", (int)auth_config.window);
    talon_audit(req, &(talon_audit_args){
        .type = "authn_login_fail_max", .outcome = TALON_AUDIT_FAILURE, .target_type = "user",
        .target_id = user, .reason = reason, .data = data });
    json_decref(data);
    talon_resp_error(resp, 429, NULL, reason);
    snprintf(retry, sizeof(retry), "%lld", (long long)wait);
    talon_resp_set_header(resp, "Retry-After", retry);
}

static void login_on_post(talon_req *req, talon_resp *resp, void *ctx)
{
    json_t *body = talon_req_json(req, resp);
    if (body == NULL) {
        talon_audit(req, &(talon_audit_args){
            .type = "authn_login_fail", .outcome = TALON_AUDIT_FAILURE, .target_type = "user",
            .reason = "request body is not a JSON object with user and password" });
        return;
    }
    const char *user = json_string_value(json_object_get(body, "user"));
    const char *password = json_string_value(json_object_get(body, "password"));
    if (user == NULL || password == NULL) {
        talon_audit(req, &(talon_audit_args){
            .type = "authn_login_fail", .outcome = TALON_AUDIT_FAILURE, .target_type = "user",
            .reason = "missing or invalid \"user\" or \"password\"" });
        talon_resp_error(resp, 400, NULL,
                         "expected a JSON object {\"user\": NAME, \"password\": PASSWORD}");
        json_decref(body);
        return;
    }
    if (!demo_user_name_valid(user)) {
        /* The name is left out of the record: it may be a password typed
         * into the wrong field. */
        talon_audit(req, &(talon_audit_args){
            .type = "authn_login_fail", .outcome = TALON_AUDIT_FAILURE, .target_type = "user",
            .reason = "invalid user name" });
        char desc[160];
        snprintf(desc, sizeof(desc), "invalid \"user\": a user name is 1 to %d of a-z 0-9 . _ - "
                 "(lower case, no spaces)", DEMO_NAME_MAX);
        talon_resp_error(resp, 400, NULL, desc);
        json_decref(body);
        return;
    }

    char ip_key[80], user_key[80];
    const char *ip = talon_req_client_ip(req);
    snprintf(ip_key, sizeof(ip_key), "ip:%s", ip ? ip : "-");
    snprintf(user_key, sizeof(user_key), "user:%s", user);
    int64_t wait = limiter_wait(ip_key);
    if (wait > 0) {
        rate_limited(req, resp, user, "source address", wait);
    } else if ((wait = limiter_wait(user_key)) > 0) {
        rate_limited(req, resp, user, "user", wait);
    } else {
        char role[DEMO_ROLE_MAX];
        int rc = demo_users_check(user, password, role);
        if (rc < 0) {
            /* Per-user entries only for existing users: made-up names are
             * limited by their source and cannot fill the table. */
            limiter_fail(ip_key);
            if (rc != -ENOENT)
                limiter_fail(user_key);
            talon_audit(req, &(talon_audit_args){
                .type = "authn_login_fail", .outcome = TALON_AUDIT_FAILURE,
                .target_type = "user", .target_id = user,
                .reason = rc == -ENOENT ? "unknown user" : "wrong password" });
            talon_resp_error(resp, 401, NULL, "invalid user or password");
        } else {
            char token[2 * TOKEN_BYTES + 1];
            unsigned char hash[SHA256_DIGEST_LENGTH];
            const char *roles[] = { role, NULL };
            session_change *change = NULL;
            rc = session_create(user, role, token, hash);
            if (rc == 0 && (change = session_change_new(hash)) == NULL) {
                session_delete(hash);
                rc = -ENOMEM;
            }
            if (rc < 0) {
                talon_resp_error(resp, 503, NULL, "too many sessions; try again later");
            } else {
                limiter_clear(user_key);
                talon_req_set_user(req, user, roles);
                talon_resp_json(resp, 200, json_pack("{s:s,s:s,s:i}", "token", token,
                                                     "token_type", "Bearer", "expires_in",
                                                     (int)auth_config.token_ttl));
                demo_commit_change(req, resp, &(demo_change){
                    .type = "authn_login_success", .target_type = "user", .target_id = user,
                    .apply = login_apply, .discard = login_discard, .ctx = change });
                OPENSSL_cleanse(token, sizeof(token));
            }
        }
    }
    json_decref(body);
}

static void logout_on_post(talon_req *req, talon_resp *resp, void *ctx)
{
    unsigned char *hash = talon_req_context_get(req, TOKEN_CONTEXT_KEY);
    if (talon_req_user(req) == NULL || hash == NULL) {
        demo_deny(req, resp, 401, "login required: send Authorization: Bearer <token> from POST /login",
             "session", NULL);
        return;
    }
    session_change *change = session_change_new(hash);
    if (change == NULL) {
        talon_resp_error(resp, 500, NULL, "Out of memory.");
        return;
    }
    talon_resp_set_status(resp, 204);
    json_t *data = json_pack("{s:s}", "cause", "logout");
    demo_commit_change(req, resp, &(demo_change){
        .type = "authn_token_revoked", .target_type = "user", .target_id = talon_req_user(req),
        .data = data, .apply = logout_apply, .discard = logout_discard, .ctx = change });
    json_decref(data);
}

int demo_auth_setup(talon_app *app, char *err, size_t errlen)
{
    sessions = calloc(SESSIONS_MAX, sizeof(*sessions));
    if (sessions == NULL)
        return -ENOMEM;
    talon_middleware mw = { .process_request = auth_process_request };
    int rc = talon_app_add_middleware(app, &mw);
    if (rc < 0) {
        snprintf(err, errlen, "cannot add the auth middleware: %s", strerror(-rc));
        return rc;
    }
    talon_resource login = { .name = "session", .on_post = login_on_post };
    talon_resource logout = { .name = "session", .on_post = logout_on_post };
    rc = talon_app_add_route(app, "/login", &login, err, errlen);
    if (rc == 0)
        rc = talon_app_add_route(app, "/logout", &logout, err, errlen);
    return rc;
}

void demo_auth_teardown(void)
{
    pthread_mutex_lock(&auth_lock);
    if (sessions != NULL) /* NULL when setup did not run or failed */
        OPENSSL_cleanse(sessions, SESSIONS_MAX * sizeof(*sessions));
    free(sessions);
    sessions = NULL;
    nsessions = 0;
    free(owners);
    owners = NULL;
    nowners = 0;
    pthread_mutex_unlock(&auth_lock);
}
