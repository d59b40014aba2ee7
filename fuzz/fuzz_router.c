/* Fuzz URI template parsing and route matching (src/http/router.c).
 *
 * Input: lines. A line starting with '+' is a template to add (errors are
 * fine: syntax and conflicts are rejected with a message); any other line is
 * a raw path to match. The first byte's low bit turns on
 * strip_trailing_slash.
 *
 * Invariants checked:
 * - a rejected template leaves a message in err;
 * - a match names a template that was added, with at most MAX_FIELDS fields,
 *   each a non-NULL value;
 * - for every template added, a concrete path built from it (decoded
 *   literals percent-encoded byte by byte, "7" for {x:int}, "v" for {x}) matches some
 *   route: the trie's literal-first lookup must fall back to fields;
 * - matching is deterministic: the same path gives the same route. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz_util.h"
#include "http/router.h"
#include "http/uri.h"

#define MAX_TEMPLATES 32

static void get_responder(talon_req *req, talon_resp *resp, void *ctx)
{
}

/* Build the concrete path of a template that the router accepted. */
static size_t concrete_path(const char *tmpl, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    size_t len = strlen(tmpl);
    if (len > 1 && tmpl[len - 1] == '/')
        len--;
    if (len <= 1) {
        out[n++] = '/';
        return n;
    }
    const char *p = tmpl + 1, *end = tmpl + len;
    while (p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *seg_end = slash ? slash : end;
        size_t seg_len = (size_t)(seg_end - p);
        if (n + 1 + 3 * seg_len + 8 > cap)
            return 0;
        out[n++] = '/';
        if (seg_len >= 2 && p[0] == '{' && seg_end[-1] == '}') {
            bool is_int = seg_len > 6 && memcmp(seg_end - 5, ":int}", 5) == 0;
            out[n++] = is_int ? '7' : 'v';
        } else {
            /* Template literals are percent-decoded when added, and so are
             * request segments: encode the decoded literal. */
            char lit[seg_len + 1];
            bool nul = false;
            size_t lit_len = talon_uri_decode(lit, p, seg_len, false, &nul);
            for (size_t i = 0; i < lit_len; i++) {
                out[n++] = '%';
                out[n++] = hex[(unsigned char)lit[i] >> 4];
                out[n++] = hex[(unsigned char)lit[i] & 15];
            }
        }
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    return n;
}

static int find(const talon_router *r, const char *path, size_t len, bool strip,
                talon_route_match *m)
{
    char first[1024];
    talon_arena arena;
    talon_arena_init(&arena, first, sizeof(first));
    int rc = talon_router_find(r, path, len, strip, &arena, m);
    FUZZ_CHECK(rc == 0 || rc == 1);
    if (rc == 1) {
        FUZZ_CHECK(m->template != NULL && m->resource != NULL && m->allow != NULL);
        FUZZ_CHECK(m->nfields <= TALON_ROUTER_MAX_FIELDS);
        for (size_t i = 0; i < m->nfields; i++)
            FUZZ_CHECK(m->names[i] != NULL && m->values[i] != NULL);
    }
    /* The arena (and so the field values) ends here: callers keep only
     * the template pointer, which the router owns. */
    talon_arena_release(&arena);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    bool strip = data[0] & 1;
    fuzz_parts fp;
    fuzz_split(&fp, data + 1, size - 1, '\n');

    talon_router *r = talon_router_new();
    FUZZ_CHECK(r != NULL);
    talon_resource res = { .name = "fuzz", .on_get = get_responder };
    const char *added[MAX_TEMPLATES];
    size_t nadded = 0;

    for (size_t i = 0; i < fp.n; i++) {
        size_t len;
        const char *line = fuzz_part(&fp, i, &len);
        if (len > 0 && line[0] == '+' && nadded < MAX_TEMPLATES) {
            char err[512] = "";
            int rc = talon_router_add(r, line + 1, &res, err, sizeof(err));
            FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
            if (rc == 0)
                added[nadded++] = line + 1;
            else
                FUZZ_CHECK(err[0] != '\0');
        } else {
            talon_route_match m1, m2;
            int rc1 = find(r, line, len, strip, &m1);
            int rc2 = find(r, line, len, strip, &m2);
            FUZZ_CHECK(rc1 == rc2);
            if (rc1 == 1) {
                FUZZ_CHECK(m1.template == m2.template);
                bool known = false;
                for (size_t k = 0; k < nadded; k++)
                    known |= strcmp(m1.template, added[k]) == 0;
                FUZZ_CHECK(known);
            }
        }
    }

    for (size_t k = 0; k < nadded; k++) {
        char path[8192];
        size_t n = concrete_path(added[k], path, sizeof(path) - 2);
        if (n == 0)
            continue;
        talon_route_match m;
        FUZZ_CHECK(find(r, path, n, strip, &m) == 1);
        if (strip) {
            path[n] = '/';
            FUZZ_CHECK(find(r, path, n + 1, true, &m) == 1);
        }
    }

    talon_router_free(r);
    fuzz_parts_free(&fp);
    return 0;
}
