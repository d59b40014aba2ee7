/* URI template router: compile templates into a trie, match raw paths. */
#include "http/router.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/uri.h"

typedef enum field_converter {
    CONVERTER_NONE = 0,
    CONVERTER_INT
} field_converter;

typedef struct router_node router_node;

struct router_node {
    char *literal;              /* this node's segment when it is a literal child */
    size_t literal_len;
    router_node **children;     /* literal children sorted by (len, bytes) */
    size_t nchildren;
    router_node *field;         /* the one field child */
    char *field_name;           /* set on a field node */
    field_converter converter;
    char *field_template;       /* first template that created this field node */
    talon_resource *resource;   /* set when a route ends here */
    char *template;
    char allow[64];
};

struct talon_router {
    router_node root;
};

/* A template segment after parsing. */
typedef struct template_segment {
    const char *text;
    size_t len;
    bool is_field;
    const char *name;
    size_t name_len;
    field_converter converter;
} template_segment;

talon_router *talon_router_new(void)
{
    return calloc(1, sizeof(talon_router));
}

static void node_free_children(router_node *node)
{
    for (size_t i = 0; i < node->nchildren; i++) {
        node_free_children(node->children[i]);
        free(node->children[i]);
    }
    free(node->children);
    if (node->field != NULL) {
        node_free_children(node->field);
        free(node->field);
    }
    free(node->literal);
    free(node->field_name);
    free(node->field_template);
    free(node->resource);
    free(node->template);
}

void talon_router_free(talon_router *router)
{
    if (router == NULL)
        return;
    node_free_children(&router->root);
    free(router);
}

void talon_router_allow(const talon_resource *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s%s%sOPTIONS",
             r->on_get ? "GET, HEAD, " : "",
             r->on_post ? "POST, " : "",
             r->on_put ? "PUT, " : "",
             r->on_patch ? "PATCH, " : "",
             r->on_delete ? "DELETE, " : "");
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* Parse one segment: a literal, or a field "{name}" / "{name:int}" that
 * spans the whole segment. */
static int parse_segment(const char *tmpl, const char *s, size_t len, template_segment *seg,
                         char *err, size_t errlen)
{
    memset(seg, 0, sizeof(*seg));
    seg->text = s;
    seg->len = len;
    const char *open = memchr(s, '{', len);
    const char *close = memchr(s, '}', len);
    if (open == NULL && close == NULL) {
        /* Literals are percent-decoded; a request path with %00 gets 400,
         * so a literal with it could never match (and is cut by strndup). */
        if (memmem(s, len, "%00", 3) != NULL) {
            snprintf(err, errlen, "invalid URI template \"%s\": segment \"%.*s\" contains "
                     "%%00 (a NUL byte), which no request path can match", tmpl, (int)len, s);
            return -EINVAL;
        }
        /* A request path ends at '?' and a target with '#' gets 400, so
         * a literal with either could never match. */
        const char *stop = memchr(s, '?', len);
        if (stop == NULL)
            stop = memchr(s, '#', len);
        if (stop != NULL) {
            snprintf(err, errlen, "invalid URI template \"%s\": segment \"%.*s\" contains "
                     "'%c', which no request path can match; a route matches the path only, "
                     "so read query parameters with talon_req_query()", tmpl, (int)len, s, *stop);
            return -EINVAL;
        }
        return 0;
    }
    if (open != s || close != s + len - 1) {
        snprintf(err, errlen, "invalid URI template \"%s\": a field must be a whole segment "
                 "such as {id} or {id:int}, got \"%.*s\"", tmpl, (int)len, s);
        return -EINVAL;
    }
    const char *name = s + 1;
    const char *end = s + len - 1;
    const char *colon = memchr(name, ':', (size_t)(end - name));
    const char *name_end = colon ? colon : end;
    if (name_end == name || !is_name_start(*name)) {
        snprintf(err, errlen, "invalid URI template \"%s\": field \"%.*s\" needs a name that "
                 "starts with a letter or '_'", tmpl, (int)len, s);
        return -EINVAL;
    }
    for (const char *p = name; p < name_end; p++) {
        if (!is_name_char(*p)) {
            snprintf(err, errlen, "invalid URI template \"%s\": field name in \"%.*s\" may "
                     "contain only letters, digits and '_'", tmpl, (int)len, s);
            return -EINVAL;
        }
    }
    seg->is_field = true;
    seg->name = name;
    seg->name_len = (size_t)(name_end - name);
    if (colon != NULL) {
        size_t clen = (size_t)(end - colon - 1);
        if (clen == 3 && memcmp(colon + 1, "int", 3) == 0) {
            seg->converter = CONVERTER_INT;
        } else {
            snprintf(err, errlen, "invalid URI template \"%s\": unknown converter \"%.*s\" in "
                     "\"%.*s\"; supported: int", tmpl, (int)clen, colon + 1, (int)len, s);
            return -EINVAL;
        }
    }
    return 0;
}

/* Split a template into segments. A trailing '/' is ignored, so "/notes/"
 * compiles as "/notes"; "/" has no segments. */
static int parse_template(const char *tmpl, template_segment *segs, size_t *nsegs,
                          char *err, size_t errlen)
{
    size_t len = strlen(tmpl);
    if (len == 0 || tmpl[0] != '/') {
        snprintf(err, errlen, "invalid URI template \"%s\": it must start with '/'", tmpl);
        return -EINVAL;
    }
    if (len > 1 && tmpl[len - 1] == '/')
        len--;
    size_t n = 0;
    size_t nfields = 0;
    const char *p = tmpl + 1;
    const char *end = tmpl + len;
    while (len > 1) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *seg_end = slash ? slash : end;
        if (seg_end == p) {
            snprintf(err, errlen, "invalid URI template \"%s\": empty segment (\"//\")", tmpl);
            return -EINVAL;
        }
        if (n == TALON_ROUTER_MAX_SEGMENTS) {
            snprintf(err, errlen, "invalid URI template \"%s\": more than %d segments", tmpl,
                     TALON_ROUTER_MAX_SEGMENTS);
            return -EINVAL;
        }
        int rc = parse_segment(tmpl, p, (size_t)(seg_end - p), &segs[n], err, errlen);
        if (rc < 0)
            return rc;
        if (segs[n].is_field) {
            for (size_t i = 0; i < n; i++) {
                if (segs[i].is_field && segs[i].name_len == segs[n].name_len &&
                    memcmp(segs[i].name, segs[n].name, segs[n].name_len) == 0) {
                    snprintf(err, errlen, "invalid URI template \"%s\": field \"%.*s\" appears "
                             "twice", tmpl, (int)segs[n].name_len, segs[n].name);
                    return -EINVAL;
                }
            }
            if (++nfields > TALON_ROUTER_MAX_FIELDS) {
                snprintf(err, errlen, "invalid URI template \"%s\": more than %d fields", tmpl,
                         TALON_ROUTER_MAX_FIELDS);
                return -EINVAL;
            }
        }
        n++;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    *nsegs = n;
    return 0;
}

static int literal_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

/* Binary search for a literal child; *pos receives the insertion point. */
static router_node *find_literal(const router_node *node, const char *s, size_t len, size_t *pos)
{
    size_t lo = 0, hi = node->nchildren;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const router_node *c = node->children[mid];
        int cmp = literal_cmp(s, len, c->literal, c->literal_len);
        if (cmp == 0) {
            if (pos)
                *pos = mid;
            return node->children[mid];
        }
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (pos)
        *pos = lo;
    return NULL;
}

static router_node *add_literal(router_node *node, const char *s, size_t len)
{
    size_t pos;
    router_node *child = find_literal(node, s, len, &pos);
    if (child != NULL)
        return child;
    child = calloc(1, sizeof(*child));
    router_node **grown = realloc(node->children, (node->nchildren + 1) * sizeof(*grown));
    if (child == NULL || grown == NULL) {
        free(child);
        if (grown != NULL)
            node->children = grown;
        return NULL;
    }
    node->children = grown;
    child->literal = strndup(s, len);
    if (child->literal == NULL) {
        free(child);
        return NULL;
    }
    child->literal_len = len;
    memmove(&grown[pos + 1], &grown[pos], (node->nchildren - pos) * sizeof(*grown));
    grown[pos] = child;
    node->nchildren++;
    return child;
}

static const char *converter_suffix(field_converter c)
{
    return c == CONVERTER_INT ? ":int" : "";
}

int talon_router_add(talon_router *router, const char *tmpl, const talon_resource *resource,
                     char *err, size_t errlen)
{
    template_segment segs[TALON_ROUTER_MAX_SEGMENTS];
    size_t nsegs = 0;
    int rc = parse_template(tmpl, segs, &nsegs, err, errlen);
    if (rc < 0)
        return rc;

    /* Check for conflicts before changing the trie, so that a rejected
     * template leaves no half-added nodes behind. */
    router_node *node = &router->root;
    size_t i;
    for (i = 0; i < nsegs && node != NULL; i++) {
        const template_segment *seg = &segs[i];
        if (!seg->is_field) {
            char lit[seg->len + 1];
            bool nul = false;
            size_t n = talon_uri_decode(lit, seg->text, seg->len, false, &nul);
            node = find_literal(node, lit, n, NULL);
            continue;
        }
        router_node *f = node->field;
        if (f != NULL && (strlen(f->field_name) != seg->name_len ||
                          memcmp(f->field_name, seg->name, seg->name_len) != 0 ||
                          f->converter != seg->converter)) {
            snprintf(err, errlen, "URI template \"%s\" conflicts with \"%s\": field {%.*s%s} "
                     "and field {%s%s} are at the same position; use one field name and "
                     "converter for both", tmpl, f->field_template, (int)seg->name_len,
                     seg->name, converter_suffix(seg->converter), f->field_name,
                     converter_suffix(f->converter));
            return -EINVAL;
        }
        node = f;
    }
    if (node != NULL && i == nsegs && node->resource != NULL) {
        snprintf(err, errlen, "URI template \"%s\" conflicts with \"%s\": both match the same "
                 "paths", tmpl, node->template);
        return -EINVAL;
    }

    node = &router->root;
    for (i = 0; i < nsegs; i++) {
        const template_segment *seg = &segs[i];
        if (!seg->is_field) {
            /* Literals are compared with decoded request segments. */
            char lit[seg->len + 1];
            bool nul = false;
            size_t n = talon_uri_decode(lit, seg->text, seg->len, false, &nul);
            node = add_literal(node, lit, n);
            if (node == NULL)
                goto enomem;
            continue;
        }
        if (node->field == NULL) {
            router_node *f = calloc(1, sizeof(*f));
            if (f == NULL)
                goto enomem;
            f->field_name = strndup(seg->name, seg->name_len);
            f->field_template = strdup(tmpl);
            f->converter = seg->converter;
            if (f->field_name == NULL || f->field_template == NULL) {
                free(f->field_name);
                free(f->field_template);
                free(f);
                goto enomem;
            }
            node->field = f;
        }
        node = node->field;
    }
    node->resource = malloc(sizeof(*node->resource));
    node->template = strdup(tmpl);
    if (node->resource == NULL || node->template == NULL) {
        free(node->resource);
        free(node->template);
        node->resource = NULL;
        node->template = NULL;
        goto enomem;
    }
    *node->resource = *resource;
    talon_router_allow(resource, node->allow, sizeof(node->allow));
    return 0;

enomem:
    snprintf(err, errlen, "cannot add URI template \"%s\": out of memory", tmpl);
    return -ENOMEM;
}

/* Falcon's IntConverter accepts what int() accepts without surrounding
 * space; here: an optional '-' and 1..19 digits within int64. */
static bool is_int64(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p == '\0')
        return false;
    for (const char *q = p; *q; q++) {
        if (*q < '0' || *q > '9')
            return false;
    }
    char *end;
    errno = 0;
    (void)strtoll(s, &end, 10);
    return errno == 0 && *end == '\0';
}

typedef struct match_state {
    const char **segments;
    size_t nsegments;
    talon_route_match *out;
} match_state;

static const router_node *match_node(const router_node *node, size_t depth, size_t nfields,
                                     match_state *st)
{
    if (depth == st->nsegments) {
        if (node->resource == NULL)
            return NULL;
        st->out->nfields = nfields;
        return node;
    }
    const char *seg = st->segments[depth];
    size_t len = strlen(seg);
    const router_node *child = find_literal(node, seg, len, NULL);
    if (child != NULL) {
        const router_node *found = match_node(child, depth + 1, nfields, st);
        if (found != NULL)
            return found;
    }
    const router_node *f = node->field;
    if (f == NULL || len == 0)
        return NULL;
    if (f->converter == CONVERTER_INT && !is_int64(seg))
        return NULL;
    st->out->names[nfields] = f->field_name;
    st->out->values[nfields] = seg;
    return match_node(f, depth + 1, nfields + 1, st);
}

int talon_router_find(const talon_router *router, const char *raw_path, size_t len,
                      bool strip_trailing_slash, talon_arena *arena, talon_route_match *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0 || raw_path[0] != '/')
        return 0;
    if (strip_trailing_slash) {
        while (len > 1 && raw_path[len - 1] == '/')
            len--;
    }
    const char *segments[TALON_ROUTER_MAX_SEGMENTS];
    size_t n = 0;
    if (len > 1) {
        const char *p = raw_path + 1;
        const char *end = raw_path + len;
        for (;;) {
            const char *slash = memchr(p, '/', (size_t)(end - p));
            const char *seg_end = slash ? slash : end;
            if (n == TALON_ROUTER_MAX_SEGMENTS)
                return 0; /* deeper than any template can be */
            bool nul = false;
            char *seg = talon_uri_decode_dup(arena, p, (size_t)(seg_end - p), false, &nul);
            if (seg == NULL)
                return -ENOMEM;
            segments[n++] = seg;
            if (slash == NULL)
                break;
            p = slash + 1;
        }
    }
    match_state st = { segments, n, out };
    const router_node *found = match_node(&router->root, 0, 0, &st);
    if (found == NULL) {
        out->nfields = 0;
        return 0;
    }
    out->resource = found->resource;
    out->template = found->template;
    out->allow = found->allow;
    return 1;
}
