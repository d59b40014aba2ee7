/* talon-demo: users, authentication and the audit trail.
 *
 * main.c calls, in this order:
 *   demo_audit_option(argc, argv)       before anything else (--hash-password)
 *   demo_config_audit, ...              from its config_sections table
 *   demo_audit_setup(app, ...)          after talon_app_new, before other middleware
 *   demo_audit_teardown(app)            after talon_app_serve returned
 */
#ifndef TALON_DEMO_AUDIT_H
#define TALON_DEMO_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "talon/app.h"

/* ---- Entry points for main.c ---- */

/* Handle a command-line option that replaces serving (--hash-password).
 * Returns -1 when argv has none, else the process exit status. */
int demo_audit_option(int argc, char **argv);
/* Configuration sections [audit], [audit.policy] and [demo.auth]: returns 0
 * or -EINVAL with err naming the key and the accepted values. */
struct demo;
int demo_config_audit(struct demo *d, const char *section, const char *key, const char *value,
                      char *err, size_t errlen);
/* Load the users, open (and at first start, key) the trail, attach it to
 * the app with its policy, add the auth middleware and the /login, /logout,
 * /users and /audit routes. Returns 0 or a negative errno with err set. */
int demo_audit_setup(talon_app *app, char *err, size_t errlen);
/* Detach the trail, close it (sys_shutdown and a seal) and free the users. */
void demo_audit_teardown(talon_app *app);
/* Lines for --help. */
extern const char demo_audit_usage[];

/* ---- Users (users.c) ---- */

#define DEMO_NAME_MAX 32
#define DEMO_ROLE_MAX 16
/* Password length in bytes, for the API and --hash-password alike. */
#define DEMO_PASSWORD_MIN 8
#define DEMO_PASSWORD_MAX 256

/* Roles a user may have. */
bool demo_role_valid(const char *role);
/* A valid user name: 1..32 of [a-z0-9._-]. */
bool demo_user_name_valid(const char *name);

/* Load users from an INI file ([user.NAME] sections with role and
 * password_hash), or the built-in demo users when path is NULL. */
int demo_users_load(const char *path, char *err, size_t errlen);
void demo_users_free(void);
/* Check a password in about the same time whether or not the user exists.
 * Returns 0 (role copied out), -ENOENT (no such user) or -EACCES. */
int demo_users_check(const char *name, const char *password, char role[DEMO_ROLE_MAX]);
/* Current role of a user; -ENOENT when the user does not exist. */
int demo_users_role(const char *name, char role[DEMO_ROLE_MAX]);
/* Add a user with a hash from demo_password_hash(); -EEXIST when taken. */
int demo_users_create(const char *name, const char *hash, const char *role);
/* -EBUSY, nothing changed, when name is the last admin and role is not admin. */
int demo_users_set_role(const char *name, const char *role, char old_role[DEMO_ROLE_MAX]);
int demo_users_set_password_hash(const char *name, const char *hash);
/* -EBUSY, nothing deleted, when name is the last admin. */
int demo_users_delete(const char *name);
/* True when name is an admin and no other user is. */
bool demo_users_is_last_admin(const char *name);
/* [{"name":..,"role":..}, ...] sorted by name. */
json_t *demo_users_list(void);

/* Password hashes: "$scrypt$ln=14,r=8,p=1$<salt>$<hash>" (base64 without
 * padding) or "$pbkdf2-sha256$<iterations>$<salt>$<hash>". */
int demo_password_hash(const char *password, char *out, size_t outlen);
/* 1 when password matches, 0 when not, -EINVAL for an unknown format. */
int demo_password_verify(const char *password, const char *encoded);

/* ---- Authentication (auth.c) ---- */

int demo_auth_setup(talon_app *app, char *err, size_t errlen);
void demo_auth_teardown(void);
int demo_auth_config(const char *key, const char *value, char *err, size_t errlen);
/* End every session of a user (deleted, or role changed). */
void demo_auth_revoke_user(const char *name);
/* 401 or 403 (recorded as authz_fail) unless the request's user has role.
 * Returns true when the responder may go on. */
bool demo_require_role(talon_req *req, talon_resp *resp, const char *role,
                       const char *target_type, const char *target_id);
/* Send 401 or 403 with reason, recorded as authz_fail on the target
 * (target_id NULL: the request path). */
void demo_deny(talon_req *req, talon_resp *resp, int status, const char *reason,
               const char *target_type, const char *target_id);
/* Remember or look up who created a note (notes without an owner: NULL).
 * Keyed by the parsed id: "/notes/004" is note 4. */
void demo_note_set_owner(int64_t note_id, const char *user);
bool demo_note_owner(int64_t note_id, char owner[DEMO_NAME_MAX + 1]);
void demo_note_forget(int64_t note_id);
/* The canonical text of a note id ("4" for "/notes/004"), for audit
 * targets; returns buf. */
#define DEMO_NOTE_ID_MAX 24
const char *demo_note_id_format(int64_t note_id, char buf[DEMO_NOTE_ID_MAX]);

/* ---- Routes (users.c, audit_routes.c) ---- */

int demo_users_routes(talon_app *app, char *err, size_t errlen);
int demo_audit_routes(talon_app *app, const char *trail_dir, char *err, size_t errlen);

#endif
