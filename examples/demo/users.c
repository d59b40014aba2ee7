/* talon-demo users: the user store with scrypt password hashes, and the
 * admin-only user administration routes (GET/POST /users,
 * PUT/DELETE /users/{name}, PUT /users/{name}/role).
 *
 * Changes made through the API live in memory only; the users file is
 * read once at start. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "talon/audit_http.h"
#include "talon/config.h"
#include "demo.h"
#include "demo_audit.h"

#define HASH_MAX 192
#define USERS_MAX 1024
#define PASSWORD_MIN DEMO_PASSWORD_MIN
#define PASSWORD_MAX DEMO_PASSWORD_MAX

/* scrypt cost: N = 2^14, r = 8, p = 1 needs 16 MiB (128 * r * N bytes) and
 * tens of milliseconds of CPU per hash, which bounds offline guessing while
 * keeping a login interactive. */
#define SCRYPT_LOG_N 14
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SALT_BYTES 16
#define KEY_BYTES 32

static const char *const roles[] = { "admin", "user", "auditor", NULL };

/* The demo users of docs/audit.md; DEMO ONLY, the passwords are public.
 * Used when no users file is configured and examples/demo/users.ini is not
 * in the working directory. The same users and hashes as users.ini. */
static const char builtin_users[] =
    "[user.alice]\n"
    "role = admin\n"
    "password_hash = $scrypt$ln=14,r=8,p=1$LUAXINNp55vPFHDPYzuukQ$2j3WIXIWfq4cmnWvJPEmM10KWRmcNIAgF34e/5M0ams\n"
    "[user.bob]\n"
    "role = user\n"
    "password_hash = $scrypt$ln=14,r=8,p=1$FiUb0Afwnl75sZADqMl+SA$l0n7DQ+f+WnJ2H1NWvSKrrvyuOyQrNuZBhrbpl1zzM0\n"
    "[user.carol]\n"
    "role = auditor\n"
    "password_hash = $scrypt$ln=14,r=8,p=1$x3a1b6T3LxsLB1L+TbXARw$kjifQfdvBJVPdEjy4GttP2LGCXTfaDyAb3xw7X3vDNw\n"
    "[user.dave]\n"
    "role = user\n"
    "password_hash = $scrypt$ln=14,r=8,p=1$OyLC5tlwq9XF2u+68OdONA$nrZcMHq2IzpMCpz6e2xZGL8A0CrE78z+WFaE8N95l/g\n";

typedef struct demo_user {
    char name[DEMO_NAME_MAX + 1];
    char role[DEMO_ROLE_MAX];
    char hash[HASH_MAX];
} demo_user;

static pthread_mutex_t users_lock = PTHREAD_MUTEX_INITIALIZER;
static demo_user *users;
static size_t nusers;

/* A hash of a random password, checked when the user does not exist so a
 * failed login takes about as long either way. */
static char dummy_hash[HASH_MAX];

bool demo_role_valid(const char *role)
{
    for (int i = 0; role != NULL && roles[i] != NULL; i++) {
        if (strcmp(role, roles[i]) == 0)
            return true;
    }
    return false;
}

bool demo_user_name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > DEMO_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- Password hashes ---- */

static size_t b64_encode(char *out, const unsigned char *in, size_t len)
{
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
    return (size_t)n;
}

/* Decode unpadded base64; returns the byte count or -1. */
static int b64_decode(unsigned char *out, size_t cap, const char *in, size_t len)
{
    char padded[128];
    size_t pad = (4 - len % 4) % 4;
    if (len + pad >= sizeof(padded) || pad == 3)
        return -1;
    memcpy(padded, in, len);
    memset(padded + len, '=', pad);
    unsigned char tmp[96];
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)padded, (int)(len + pad));
    if (n < 0)
        return -1;
    n -= (int)pad;
    if ((size_t)n > cap)
        return -1;
    memcpy(out, tmp, (size_t)n);
    return n;
}

int demo_password_hash(const char *password, char *out, size_t outlen)
{
    unsigned char salt[SALT_BYTES], key[KEY_BYTES];
    char salt64[32], key64[48];

    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return -EIO;
    if (EVP_PBE_scrypt(password, strlen(password), salt, sizeof(salt),
                       1ull << SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, 0, key, sizeof(key)) != 1)
        return -EIO;
    b64_encode(salt64, salt, sizeof(salt));
    b64_encode(key64, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    int n = snprintf(out, outlen, "$scrypt$ln=%d,r=%d,p=%d$%s$%s", SCRYPT_LOG_N, SCRYPT_R,
                     SCRYPT_P, salt64, key64);
    return n > 0 && (size_t)n < outlen ? 0 : -ENOSPC;
}

/* Split "$a$b$c$d" into its four fields (pointers into copy). */
static int split_hash(char *copy, char *fields[4])
{
    if (copy[0] != '$')
        return -EINVAL;
    char *p = copy + 1;
    for (int i = 0; i < 4; i++) {
        fields[i] = p;
        char *d = strchr(p, '$');
        if (i < 3) {
            if (d == NULL)
                return -EINVAL;
            *d = '\0';
            p = d + 1;
        } else if (d != NULL) {
            return -EINVAL;
        }
    }
    return 0;
}

int demo_password_verify(const char *password, const char *encoded)
{
    char copy[HASH_MAX];
    char *f[4];
    unsigned char salt[64], want[64], got[64];

    if (strlen(encoded) >= sizeof(copy))
        return -EINVAL;
    strcpy(copy, encoded);
    if (split_hash(copy, f) < 0)
        return -EINVAL;
    int salt_len = b64_decode(salt, sizeof(salt), f[2], strlen(f[2]));
    int key_len = b64_decode(want, sizeof(want), f[3], strlen(f[3]));
    if (salt_len <= 0 || key_len < 16)
        return -EINVAL;

    int ok;
    if (strcmp(f[0], "scrypt") == 0) {
        int ln, r, p;
        if (sscanf(f[1], "ln=%d,r=%d,p=%d", &ln, &r, &p) != 3 || ln < 1 || ln > 20 ||
            r < 1 || r > 32 || p < 1 || p > 16)
            return -EINVAL;
        ok = EVP_PBE_scrypt(password, strlen(password), salt, (size_t)salt_len,
                            1ull << ln, (uint64_t)r, (uint64_t)p, 256ull << 20, got,
                            (size_t)key_len);
    } else if (strcmp(f[0], "pbkdf2-sha256") == 0) {
        long iterations = strtol(f[1], NULL, 10);
        if (iterations < 1000 || iterations > 10000000)
            return -EINVAL;
        ok = PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, salt_len,
                               (int)iterations, EVP_sha256(), key_len, got);
    } else {
        return -EINVAL;
    }
    if (ok != 1)
        return -EIO;
    int match = CRYPTO_memcmp(got, want, (size_t)key_len) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return match;
}

/* ---- The store ---- */

static demo_user *find_locked(const char *name)
{
    for (size_t i = 0; i < nusers; i++) {
        if (strcmp(users[i].name, name) == 0)
            return &users[i];
    }
    return NULL;
}

static int add_locked(const char *name, const char *role, const char *hash)
{
    if (find_locked(name) != NULL)
        return -EEXIST;
    if (nusers >= USERS_MAX)
        return -ENOSPC;
    demo_user *grown = realloc(users, (nusers + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    users = grown;
    demo_user *u = &users[nusers++];
    memset(u, 0, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", name);
    snprintf(u->role, sizeof(u->role), "%s", role);
    snprintf(u->hash, sizeof(u->hash), "%s", hash);
    return 0;
}

typedef struct load_state {
    char name[DEMO_NAME_MAX + 1];
    char role[DEMO_ROLE_MAX];
    char hash[HASH_MAX];
    char incomplete[DEMO_NAME_MAX + 1]; /* the first user without role or hash */
    const char *missing;                /* what it lacks */
} load_state;

/* Add the user of the section just read. A user without role or hash is
 * remembered and reported at the end, with the line of its section: at
 * this point the parser is already on the next section's line. */
static int finish_section(load_state *ls, char *err, size_t errlen)
{
    if (ls->name[0] == '\0')
        return 0;
    int rc = 0;
    if (ls->role[0] == '\0' || ls->hash[0] == '\0') {
        if (ls->incomplete[0] == '\0') {
            snprintf(ls->incomplete, sizeof(ls->incomplete), "%s", ls->name);
            ls->missing = ls->role[0] == '\0' && ls->hash[0] == '\0' ? "role and password_hash"
                          : ls->role[0] == '\0'                     ? "role"
                                                                    : "password_hash";
        }
    } else {
        rc = add_locked(ls->name, ls->role, ls->hash);
        if (rc == -EEXIST)
            snprintf(err, errlen, "user %s is defined twice", ls->name);
        else if (rc < 0)
            snprintf(err, errlen, "cannot add user %s: %s", ls->name, strerror(-rc));
    }
    OPENSSL_cleanse(ls->hash, sizeof(ls->hash));
    memset(ls->name, 0, sizeof(ls->name));
    memset(ls->role, 0, sizeof(ls->role));
    return rc;
}

/* The line of "[section]" in path, or 0. */
static int section_line(const char *path, const char *section)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char buf[512];
    int line = 0, found = 0;
    while (found == 0 && fgets(buf, sizeof(buf), f) != NULL) {
        line++;
        char *p = buf;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strlen(section);
        if (p[0] == '[' && strncmp(p + 1, section, n) == 0 && p[n + 1] == ']')
            found = line;
    }
    fclose(f);
    return found;
}

/* The error for the first incomplete user, if any. */
static int check_complete(const load_state *ls, const char *path, char *err, size_t errlen)
{
    if (ls->incomplete[0] == '\0')
        return 0;
    char section[DEMO_NAME_MAX + 8];
    snprintf(section, sizeof(section), "user.%s", ls->incomplete);
    const char *hint = strcmp(ls->missing, "role") == 0
                           ? "add role = admin, user or auditor"
                           : "add password_hash = ... (make one with talon-demo --hash-password)";
    snprintf(err, errlen, "%s:%d: [%s]: user %s has no %s; %s", path,
             section_line(path, section), section, ls->incomplete, ls->missing, hint);
    return -EINVAL;
}

static int users_key(void *ctx, const char *section, const char *key, const char *value,
                     char *err, size_t errlen)
{
    load_state *ls = ctx;

    if (strncmp(section, "user.", 5) != 0) {
        snprintf(err, errlen, "unexpected section; users are [user.NAME] sections");
        return -EINVAL;
    }
    const char *name = section + 5;
    if (strcmp(ls->name, name) != 0) {
        int rc = finish_section(ls, err, errlen);
        if (rc < 0)
            return rc;
        if (!demo_user_name_valid(name)) {
            snprintf(err, errlen, "invalid user name \"%s\"; use 1 to %d of a-z 0-9 . _ -",
                     name, DEMO_NAME_MAX);
            return -EINVAL;
        }
        snprintf(ls->name, sizeof(ls->name), "%s", name);
    }
    if (strcmp(key, "role") == 0) {
        if (!demo_role_valid(value)) {
            snprintf(err, errlen, "invalid role \"%s\"; expected admin, user or auditor", value);
            return -EINVAL;
        }
        snprintf(ls->role, sizeof(ls->role), "%s", value);
    } else if (strcmp(key, "password_hash") == 0) {
        if (demo_password_verify("", value) < 0) {
            snprintf(err, errlen, "invalid password_hash; make one with talon-demo --hash-password");
            return -EINVAL;
        }
        snprintf(ls->hash, sizeof(ls->hash), "%s", value);
    } else {
        snprintf(err, errlen, "unknown key \"%s\"; expected role or password_hash", key);
        return -EINVAL;
    }
    return 0;
}

/* ini_parse_string adapter for the built-in users. */
typedef struct builtin_ctx {
    load_state ls;
    char err[256];
    int rc;
} builtin_ctx;

static int builtin_key(void *ctx, const char *section, const char *key, const char *value)
{
    builtin_ctx *b = ctx;
    b->rc = users_key(&b->ls, section, key, value, b->err, sizeof(b->err));
    return b->rc == 0;
}

int demo_users_load(const char *path, char *err, size_t errlen)
{
    int rc;

    pthread_mutex_lock(&users_lock);
    if (path != NULL) {
        load_state ls = { 0 };
        rc = talon_config_load(path, users_key, &ls, err, errlen);
        if (rc == 0)
            rc = finish_section(&ls, err, errlen);
        if (rc == 0)
            rc = check_complete(&ls, path, err, errlen);
    } else {
        builtin_ctx b = { 0 };
        int line = ini_parse_string(builtin_users, builtin_key, &b);
        rc = line == 0 ? finish_section(&b.ls, b.err, sizeof(b.err)) : -EINVAL;
        if (rc == 0)
            rc = check_complete(&b.ls, "built-in users", b.err, sizeof(b.err));
        if (rc < 0)
            snprintf(err, errlen, "built-in users, line %d: %s", line, b.err);
    }
    pthread_mutex_unlock(&users_lock);
    if (rc < 0)
        return rc;

    char random_password[33];
    unsigned char bytes[16];
    RAND_bytes(bytes, sizeof(bytes));
    for (size_t i = 0; i < sizeof(bytes); i++)
        snprintf(random_password + 2 * i, 3, "%02x", bytes[i]);
    return demo_password_hash(random_password, dummy_hash, sizeof(dummy_hash));
}

void demo_users_free(void)
{
    pthread_mutex_lock(&users_lock);
    OPENSSL_cleanse(users, nusers * sizeof(*users));
    free(users);
    users = NULL;
    nusers = 0;
    pthread_mutex_unlock(&users_lock);
}

int demo_users_check(const char *name, const char *password, char role[DEMO_ROLE_MAX])
{
    char hash[HASH_MAX];
    bool found = false;

    pthread_mutex_lock(&users_lock);
    demo_user *u = find_locked(name);
    if (u != NULL) {
        found = true;
        snprintf(hash, sizeof(hash), "%s", u->hash);
        snprintf(role, DEMO_ROLE_MAX, "%s", u->role);
    } else {
        snprintf(hash, sizeof(hash), "%s", dummy_hash);
    }
    pthread_mutex_unlock(&users_lock);

    /* Hashing outside the lock: it takes tens of milliseconds. */
    int match = demo_password_verify(password, hash);
    if (!found)
        return -ENOENT;
    return match == 1 ? 0 : -EACCES;
}

int demo_users_role(const char *name, char role[DEMO_ROLE_MAX])
{
    pthread_mutex_lock(&users_lock);
    demo_user *u = find_locked(name);
    if (u != NULL)
        snprintf(role, DEMO_ROLE_MAX, "%s", u->role);
    pthread_mutex_unlock(&users_lock);
    return u != NULL ? 0 : -ENOENT;
}

int demo_users_create(const char *name, const char *hash, const char *role)
{
    pthread_mutex_lock(&users_lock);
    int rc = add_locked(name, role, hash);
    pthread_mutex_unlock(&users_lock);
    return rc;
}

/* True when u is the only admin. Caller holds users_lock. */
static bool last_admin_locked(const demo_user *u)
{
    if (strcmp(u->role, "admin") != 0)
        return false;
    for (size_t i = 0; i < nusers; i++) {
        if (&users[i] != u && strcmp(users[i].role, "admin") == 0)
            return false;
    }
    return true;
}

bool demo_users_is_last_admin(const char *name)
{
    pthread_mutex_lock(&users_lock);
    demo_user *u = find_locked(name);
    bool last = u != NULL && last_admin_locked(u);
    pthread_mutex_unlock(&users_lock);
    return last;
}

int demo_users_set_role(const char *name, const char *role, char old_role[DEMO_ROLE_MAX])
{
    int rc = -ENOENT;
    pthread_mutex_lock(&users_lock);
    demo_user *u = find_locked(name);
    if (u != NULL && strcmp(role, "admin") != 0 && last_admin_locked(u)) {
        rc = -EBUSY;
    } else if (u != NULL) {
        snprintf(old_role, DEMO_ROLE_MAX, "%s", u->role);
        snprintf(u->role, sizeof(u->role), "%s", role);
        rc = 0;
    }
    pthread_mutex_unlock(&users_lock);
    return rc;
}

int demo_users_set_password_hash(const char *name, const char *hash)
{
    pthread_mutex_lock(&users_lock);
    demo_user *u = find_locked(name);
    if (u != NULL)
        snprintf(u->hash, sizeof(u->hash), "%s", hash);
    pthread_mutex_unlock(&users_lock);
    return u != NULL ? 0 : -ENOENT;
}

int demo_users_delete(const char *name)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&users_lock);
    demo_user *u = find_locked(name);
    if (u != NULL && last_admin_locked(u)) {
        rc = -EBUSY;
    } else if (u != NULL) {
        size_t i = (size_t)(u - users);
        memmove(&users[i], &users[i + 1], (nusers - i - 1) * sizeof(*users));
        nusers--;
        rc = 0;
    }
    pthread_mutex_unlock(&users_lock);
    return rc;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(((const demo_user *)a)->name, ((const demo_user *)b)->name);
}

json_t *demo_users_list(void)
{
    json_t *list = json_array();
    pthread_mutex_lock(&users_lock);
    qsort(users, nusers, sizeof(*users), compare_names);
    for (size_t i = 0; i < nusers; i++)
        json_array_append_new(list, json_pack("{s:s,s:s}", "name", users[i].name,
                                              "role", users[i].role));
    pthread_mutex_unlock(&users_lock);
    return list;
}

/* ---- Routes ---- */

/* Audit a failed admin action and set the error response. */
static void admin_fail(talon_req *req, talon_resp *resp, const char *type, const char *name,
                       int status, const char *description)
{
    talon_audit(req, &(talon_audit_args){
        .type = type, .outcome = TALON_AUDIT_FAILURE, .target_type = "user",
        .target_id = name, .reason = description });
    talon_resp_error(resp, status, NULL, description);
}

static const char *json_str(json_t *body, const char *key)
{
    return json_string_value(json_object_get(body, key));
}

static bool password_acceptable(const char *password)
{
    size_t len = password ? strlen(password) : 0;
    return len >= PASSWORD_MIN && len <= PASSWORD_MAX;
}

static void users_on_get(talon_req *req, talon_resp *resp, void *ctx)
{
    if (!demo_require_role(req, resp, "admin", "user", NULL))
        return;
    talon_resp_json(resp, 200, json_pack("{s:o}", "users", demo_users_list()));
}

#define LAST_ADMIN "this is the last admin: make another user admin first, so that " \
                   "someone can still administer users"

/* A change to the users, applied once its record is durable (write-ahead):
 * a 503 from the audit trail then means that nothing changed. */
typedef enum user_op { USER_CREATE, USER_PASSWORD, USER_ROLE, USER_DELETE } user_op;

typedef struct user_change {
    user_op op;
    char name[DEMO_NAME_MAX + 1];
    char role[DEMO_ROLE_MAX];
    char hash[HASH_MAX];
} user_change;

static void discard_user_change(talon_req *req, talon_resp *resp, void *ctx)
{
    OPENSSL_cleanse(ctx, sizeof(user_change));
    free(ctx);
}

/* NOTE: the checks of the responder are repeated here, under the users
 * lock. A change that another request made impossible meanwhile (the user
 * was deleted, or created twice) gets 404 or 409, but its record was
 * written. */
static void apply_user_change(talon_req *req, talon_resp *resp, void *ctx)
{
    user_change *c = ctx;
    char old_role[DEMO_ROLE_MAX];
    int rc;
    switch (c->op) {
    case USER_CREATE:
        rc = demo_users_create(c->name, c->hash, c->role);
        break;
    case USER_PASSWORD:
        rc = demo_users_set_password_hash(c->name, c->hash);
        break;
    case USER_ROLE:
        rc = demo_users_set_role(c->name, c->role, old_role);
        break;
    default:
        rc = demo_users_delete(c->name);
        break;
    }
    if (rc == 0 && c->op != USER_CREATE)
        demo_auth_revoke_user(c->name); /* sessions carry the role and password they began with */
    else if (rc == -EEXIST)
        talon_resp_error(resp, 409, NULL, "a user with this name exists");
    else if (rc == -ENOENT)
        talon_resp_error(resp, 404, NULL, "no such user");
    else if (rc == -EBUSY)
        talon_resp_error(resp, 409, NULL, LAST_ADMIN);
    else if (rc < 0)
        talon_resp_error(resp, 500, NULL, strerror(-rc));
    discard_user_change(req, resp, ctx);
}

/* Prepare a change of name; NULL (and a 500) when out of memory. */
static user_change *new_change(talon_resp *resp, user_op op, const char *name)
{
    user_change *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        talon_resp_error(resp, 500, NULL, "Out of memory.");
        return NULL;
    }
    c->op = op;
    snprintf(c->name, sizeof(c->name), "%s", name);
    return c;
}

/* Prepare a change that stores the hash of password. On failure the
 * change is recorded as failed with a 500, and NULL is returned. */
static user_change *new_password_change(talon_req *req, talon_resp *resp, user_op op,
                                        const char *type, const char *name,
                                        const char *password)
{
    user_change *c = new_change(resp, op, name);
    int rc = c ? demo_password_hash(password, c->hash, sizeof(c->hash)) : -ENOMEM;
    if (rc < 0) {
        if (c != NULL)
            discard_user_change(req, resp, c);
        admin_fail(req, resp, type, name, 500, strerror(-rc));
        return NULL;
    }
    return c;
}

static void commit_user_change(talon_req *req, talon_resp *resp, const char *type,
                               user_change *c, json_t *data)
{
    demo_commit_change(req, resp, &(demo_change){
        .type = type, .target_type = "user", .target_id = c->name, .data = data,
        .apply = apply_user_change, .discard = discard_user_change, .ctx = c });
    json_decref(data);
}

static void users_on_post(talon_req *req, talon_resp *resp, void *ctx)
{
    if (!demo_require_role(req, resp, "admin", "user", NULL))
        return;
    json_t *body = talon_req_json(req, resp);
    if (body == NULL)
        return;
    const char *name = json_str(body, "name");
    const char *password = json_str(body, "password");
    const char *role = json_str(body, "role");
    char existing[DEMO_ROLE_MAX];

    if (!demo_user_name_valid(name)) {
        admin_fail(req, resp, "user_created", name, 400,
                   "invalid \"name\": use 1 to 32 of a-z 0-9 . _ -");
    } else if (!demo_role_valid(role)) {
        admin_fail(req, resp, "user_created", name, 400,
                   "invalid \"role\": expected admin, user or auditor");
    } else if (!password_acceptable(password)) {
        admin_fail(req, resp, "user_created", name, 400,
                   "invalid \"password\": use 8 to 256 bytes");
    } else if (demo_users_role(name, existing) == 0) {
        admin_fail(req, resp, "user_created", name, 409, "a user with this name exists");
    } else {
        user_change *c = new_password_change(req, resp, USER_CREATE, "user_created", name,
                                             password);
        if (c != NULL) {
            snprintf(c->role, sizeof(c->role), "%s", role);
            talon_resp_json(resp, 201, json_pack("{s:s,s:s}", "name", name, "role", role));
            commit_user_change(req, resp, "user_created", c, json_pack("{s:s}", "role", role));
        }
    }
    json_decref(body);
}

/* PUT /users/{name}: change the password; admins for anyone, users for themselves. */
static void user_on_put(talon_req *req, talon_resp *resp, void *ctx)
{
    const char *name = talon_req_param(req, "name");
    const char *self = talon_req_user(req);
    bool own = self != NULL && strcmp(self, name) == 0;
    if (!own && !demo_require_role(req, resp, "admin", "user", name))
        return;
    json_t *body = talon_req_json(req, resp);
    if (body == NULL)
        return;
    const char *password = json_str(body, "password");
    char role[DEMO_ROLE_MAX];
    if (!password_acceptable(password)) {
        admin_fail(req, resp, "user_updated", name, 400,
                   "invalid \"password\": use 8 to 256 bytes");
    } else if (demo_users_role(name, role) < 0) {
        admin_fail(req, resp, "user_updated", name, 404, "no such user");
    } else {
        user_change *c = new_password_change(req, resp, USER_PASSWORD, "user_updated", name,
                                             password);
        if (c != NULL) {
            talon_resp_set_status(resp, 204);
            commit_user_change(req, resp, "user_updated", c,
                               json_pack("{s:[s]}", "fields", "password"));
        }
    }
    json_decref(body);
}

static void user_on_delete(talon_req *req, talon_resp *resp, void *ctx)
{
    const char *name = talon_req_param(req, "name");
    if (!demo_require_role(req, resp, "admin", "user", name))
        return;
    if (strcmp(name, talon_req_user(req)) == 0) {
        admin_fail(req, resp, "user_deleted", name, 409, "an admin cannot delete their own account");
        return;
    }
    char role[DEMO_ROLE_MAX] = "";
    if (demo_users_role(name, role) < 0) {
        admin_fail(req, resp, "user_deleted", name, 404, "no such user");
        return;
    }
    if (demo_users_is_last_admin(name)) {
        admin_fail(req, resp, "user_deleted", name, 409, LAST_ADMIN);
        return;
    }
    user_change *c = new_change(resp, USER_DELETE, name);
    if (c == NULL)
        return;
    talon_resp_set_status(resp, 204);
    commit_user_change(req, resp, "user_deleted", c, json_pack("{s:s}", "role", role));
}

static void role_on_put(talon_req *req, talon_resp *resp, void *ctx)
{
    const char *name = talon_req_param(req, "name");
    if (!demo_require_role(req, resp, "admin", "user", name))
        return;
    json_t *body = talon_req_json(req, resp);
    if (body == NULL)
        return;
    const char *role = json_str(body, "role");
    char old_role[DEMO_ROLE_MAX] = "";

    if (!demo_role_valid(role)) {
        admin_fail(req, resp, "privilege_permissions_changed", name, 400,
                   "invalid \"role\": expected admin, user or auditor");
    } else if (demo_users_role(name, old_role) < 0) {
        admin_fail(req, resp, "privilege_permissions_changed", name, 404, "no such user");
    } else if (strcmp(role, "admin") != 0 && demo_users_is_last_admin(name)) {
        admin_fail(req, resp, "privilege_permissions_changed", name, 409, LAST_ADMIN);
    } else {
        user_change *c = new_change(resp, USER_ROLE, name);
        if (c != NULL) {
            snprintf(c->role, sizeof(c->role), "%s", role);
            talon_resp_json(resp, 200, json_pack("{s:s,s:s}", "name", name, "role", role));
            commit_user_change(req, resp, "privilege_permissions_changed", c,
                               json_pack("{s:s,s:s}", "from", old_role, "to", role));
        }
    }
    json_decref(body);
}

int demo_users_routes(talon_app *app, char *err, size_t errlen)
{
    talon_resource users_res = { .name = "user", .on_get = users_on_get, .on_post = users_on_post };
    talon_resource user_res = { .name = "user", .on_put = user_on_put, .on_delete = user_on_delete };
    talon_resource role_res = { .name = "user", .on_put = role_on_put };
    int rc = talon_app_add_route(app, "/users", &users_res, err, errlen);
    if (rc == 0)
        rc = talon_app_add_route(app, "/users/{name}", &user_res, err, errlen);
    if (rc == 0)
        rc = talon_app_add_route(app, "/users/{name}/role", &role_res, err, errlen);
    return rc;
}
