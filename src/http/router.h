/* URI template router: a trie of compiled segments. Each node has literal
 * children (sorted, found by binary search) and at most one field child, so
 * a lookup costs one step per path segment whatever the number of routes.
 *
 * Matching rules, as in Falcon's CompiledRouter:
 * - the raw path is split on '/' first, then each segment is
 *   percent-decoded, so "%2F" stays inside its segment;
 * - a literal child is tried before the field child of the same node, and a
 *   failed literal branch falls back to the field branch;
 * - {name:int} matches an optional '-' and 1..19 digits that fit int64,
 *   anything else does not match (404);
 * - a trailing slash in a template is ignored ("/notes/" is "/notes"), but a
 *   request for "/notes/" does not match "/notes" unless strip_trailing_slash
 *   is set (Falcon's strip_url_path_trailing_slash, off by default);
 * - an empty segment ("/notes//1") never matches a field. */
#ifndef TALON_HTTP_ROUTER_H
#define TALON_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "talon/app.h"
#include "http/arena.h"

#define TALON_ROUTER_MAX_SEGMENTS 64
#define TALON_ROUTER_MAX_FIELDS 16

typedef struct talon_router talon_router;

typedef struct talon_route_match {
    const talon_resource *resource;
    const char *template;   /* as given to talon_router_add */
    const char *allow;      /* "GET, HEAD, POST, OPTIONS" */
    size_t nfields;
    const char *names[TALON_ROUTER_MAX_FIELDS];
    const char *values[TALON_ROUTER_MAX_FIELDS]; /* decoded, in the arena */
} talon_route_match;

talon_router *talon_router_new(void);
void talon_router_free(talon_router *router);
/* Compile a template and add it. Returns 0, -ENOMEM, or -EINVAL with err
 * naming the template (syntax) or both templates (conflict). */
int talon_router_add(talon_router *router, const char *uri_template,
                     const talon_resource *resource, char *err, size_t errlen);
/* Match a raw (still percent-encoded) path. Returns 1 and fills out, 0 when
 * no route matches, -ENOMEM. */
int talon_router_find(const talon_router *router, const char *raw_path, size_t len,
                      bool strip_trailing_slash, talon_arena *arena, talon_route_match *out);
/* The Allow header value for a resource. */
void talon_router_allow(const talon_resource *resource, char *out, size_t cap);

/* The Allow value of a resource with every responder, and of "OPTIONS *". */
#define TALON_ROUTER_ALLOW_ALL "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

#endif
