/* URI template router: parsing, matching, typed fields, trailing slashes,
 * percent-encoded segments and conflicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/router.h"

static void on_any(talon_req *req, talon_resp *resp, void *ctx) {}

static talon_resource res_named(const char *name)
{
    return (talon_resource){ .name = name, .on_get = on_any };
}

typedef struct fixture {
    talon_router *router;
    talon_arena arena;
    max_align_t first[512];
    char err[512];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->router = talon_router_new();
    talon_arena_init(&f->arena, f->first, sizeof(f->first));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    talon_router_free(f->router);
    talon_arena_release(&f->arena);
    free(f);
    return 0;
}

static void add_ok(fixture *f, const char *tmpl, const char *name)
{
    talon_resource r = res_named(name);
    int rc = talon_router_add(f->router, tmpl, &r, f->err, sizeof(f->err));
    if (rc != 0)
        fail_msg("adding %s failed: %s", tmpl, f->err);
}

/* Match path; returns the resource name or NULL. */
static const char *find(fixture *f, const char *path, bool strip, talon_route_match *m)
{
    talon_route_match local;
    if (m == NULL)
        m = &local;
    int rc = talon_router_find(f->router, path, strlen(path), strip, &f->arena, m);
    assert_true(rc >= 0);
    return rc == 1 ? m->resource->name : NULL;
}

static void router_literal_and_root(void **state)
{
    fixture *f = *state;
    add_ok(f, "/", "root");
    add_ok(f, "/notes", "notes");
    add_ok(f, "/notes/archive", "archive");
    assert_string_equal(find(f, "/", false, NULL), "root");
    assert_string_equal(find(f, "/notes", false, NULL), "notes");
    assert_string_equal(find(f, "/notes/archive", false, NULL), "archive");
    assert_null(find(f, "/note", false, NULL));
    assert_null(find(f, "/notes/other", false, NULL));
    assert_null(find(f, "", false, NULL));
    assert_null(find(f, "notes", false, NULL));
}

static void router_fields(void **state)
{
    fixture *f = *state;
    add_ok(f, "/users/{user_id}/notes/{note_id:int}", "user_note");
    talon_route_match m;
    assert_string_equal(find(f, "/users/alice/notes/42", false, &m), "user_note");
    assert_int_equal(m.nfields, 2);
    assert_string_equal(m.names[0], "user_id");
    assert_string_equal(m.values[0], "alice");
    assert_string_equal(m.names[1], "note_id");
    assert_string_equal(m.values[1], "42");
    assert_string_equal(m.template, "/users/{user_id}/notes/{note_id:int}");
}

static void router_int_converter(void **state)
{
    fixture *f = *state;
    add_ok(f, "/notes/{id:int}", "note");
    assert_string_equal(find(f, "/notes/7", false, NULL), "note");
    assert_string_equal(find(f, "/notes/-7", false, NULL), "note");
    assert_string_equal(find(f, "/notes/9223372036854775807", false, NULL), "note");
    assert_null(find(f, "/notes/9223372036854775808", false, NULL));
    assert_null(find(f, "/notes/abc", false, NULL));
    assert_null(find(f, "/notes/7x", false, NULL));
    assert_null(find(f, "/notes/%207", false, NULL));
    assert_null(find(f, "/notes/-", false, NULL));
    assert_null(find(f, "/notes/+7", false, NULL));
    assert_null(find(f, "/notes/", false, NULL));
}

static void router_trailing_slash(void **state)
{
    fixture *f = *state;
    add_ok(f, "/notes/", "notes");
    /* The template's trailing slash is dropped. */
    assert_string_equal(find(f, "/notes", false, NULL), "notes");
    /* A request's trailing slash matters unless stripping is on. */
    assert_null(find(f, "/notes/", false, NULL));
    assert_string_equal(find(f, "/notes/", true, NULL), "notes");
    assert_string_equal(find(f, "/notes///", true, NULL), "notes");
    /* Adding "/notes" again is the same route. */
    talon_resource r = res_named("again");
    assert_int_equal(talon_router_add(f->router, "/notes", &r, f->err, sizeof(f->err)), -EINVAL);
}

static void router_percent_encoded_segments(void **state)
{
    fixture *f = *state;
    add_ok(f, "/files/{name}", "file");
    add_ok(f, "/notes", "notes");
    talon_route_match m;
    /* %2F stays inside its segment. */
    assert_string_equal(find(f, "/files/a%2Fb", false, &m), "file");
    assert_string_equal(m.values[0], "a/b");
    assert_string_equal(find(f, "/files/hello%20world", false, &m), "file");
    assert_string_equal(m.values[0], "hello world");
    /* Encoded literal characters match the literal. */
    assert_string_equal(find(f, "/n%6Ftes", false, NULL), "notes");
    /* A malformed escape is kept literally. */
    assert_string_equal(find(f, "/files/100%zz", false, &m), "file");
    assert_string_equal(m.values[0], "100%zz");
    assert_null(find(f, "/files/a/b", false, NULL));
}

static void router_literal_before_field(void **state)
{
    fixture *f = *state;
    add_ok(f, "/users/me", "me");
    add_ok(f, "/users/{id}", "user");
    add_ok(f, "/users/{id}/avatar", "avatar");
    talon_route_match m;
    assert_string_equal(find(f, "/users/me", false, NULL), "me");
    assert_string_equal(find(f, "/users/bob", false, &m), "user");
    assert_string_equal(m.values[0], "bob");
    /* The literal branch has no /avatar: fall back to the field branch. */
    assert_string_equal(find(f, "/users/me/avatar", false, &m), "avatar");
    assert_string_equal(m.values[0], "me");
    /* An empty segment never matches a field. */
    assert_null(find(f, "/users/", false, NULL));
    assert_null(find(f, "/users//avatar", false, NULL));
}

static void router_conflicting_field_names(void **state)
{
    fixture *f = *state;
    add_ok(f, "/notes/{id}", "note");
    talon_resource r = res_named("other");
    int rc = talon_router_add(f->router, "/notes/{note_id}/tags", &r, f->err, sizeof(f->err));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(f->err, "\"/notes/{note_id}/tags\""));
    assert_non_null(strstr(f->err, "\"/notes/{id}\""));
    /* The rejected template left nothing behind. */
    assert_null(find(f, "/notes/1/tags", false, NULL));
}

static void router_conflicting_converters(void **state)
{
    fixture *f = *state;
    add_ok(f, "/notes/{id:int}", "note");
    talon_resource r = res_named("other");
    int rc = talon_router_add(f->router, "/notes/{id}", &r, f->err, sizeof(f->err));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(f->err, "/notes/{id:int}"));
    assert_non_null(strstr(f->err, "conflicts"));
}

static void router_duplicate_template(void **state)
{
    fixture *f = *state;
    add_ok(f, "/a/{x}", "first");
    talon_resource r = res_named("second");
    assert_int_equal(talon_router_add(f->router, "/a/{x}", &r, f->err, sizeof(f->err)), -EINVAL);
    assert_non_null(strstr(f->err, "both match the same paths"));
    assert_string_equal(find(f, "/a/1", false, NULL), "first");
}

static void router_syntax_errors(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *tmpl;
        const char *message;
    } cases[] = {
        { "notes", "must start with '/'" },
        { "", "must start with '/'" },
        { "/notes/{id", "whole segment" },
        { "/notes/id}", "whole segment" },
        { "/files/{name}.txt", "whole segment" },
        { "/notes/{}", "needs a name" },
        { "/notes/{1d}", "needs a name" },
        { "/notes/{i-d}", "only letters" },
        { "/notes/{id:uuid}", "unknown converter \"uuid\"" },
        { "/a/{x}/b/{x}", "appears twice" },
        { "/a//b", "empty segment" },
        { "/a?x=1", "contains '?'" },
        { "/notes/{id}/edit?", "contains '?'" },
        { "/page#top", "contains '#'" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        talon_resource r = res_named("bad");
        f->err[0] = '\0';
        int rc = talon_router_add(f->router, cases[i].tmpl, &r, f->err, sizeof(f->err));
        if (rc != -EINVAL || strstr(f->err, cases[i].message) == NULL)
            fail_msg("template \"%s\": rc %d, message \"%s\", expected \"%s\"", cases[i].tmpl,
                     rc, f->err, cases[i].message);
    }
}

static void router_allow_header(void **state)
{
    char allow[64];
    talon_resource r = { .on_get = on_any, .on_delete = on_any };
    talon_router_allow(&r, allow, sizeof(allow));
    assert_string_equal(allow, "GET, HEAD, DELETE, OPTIONS");
    talon_resource all = { .on_get = on_any, .on_post = on_any, .on_put = on_any,
                           .on_patch = on_any, .on_delete = on_any };
    talon_router_allow(&all, allow, sizeof(allow));
    assert_string_equal(allow, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    talon_resource none = { 0 };
    talon_router_allow(&none, allow, sizeof(allow));
    assert_string_equal(allow, "OPTIONS");
}

static void router_many_routes(void **state)
{
    fixture *f = *state;
    char tmpl[64], path[64], name[2000][16];
    for (int i = 0; i < 2000; i++) {
        snprintf(tmpl, sizeof(tmpl), "/r%d/{id:int}/leaf%d", i, i % 7);
        snprintf(name[i], sizeof(name[i]), "r%d", i);
        add_ok(f, tmpl, name[i]);
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(path, sizeof(path), "/r%d/%d/leaf%d", i, i * 3, i % 7);
        const char *got = find(f, path, false, NULL);
        assert_non_null(got);
        assert_string_equal(got, name[i]);
    }
    assert_null(find(f, "/r5/1/leaf6", false, NULL));
}

static void router_too_deep_path(void **state)
{
    fixture *f = *state;
    add_ok(f, "/{a}", "one");
    char path[512] = "";
    for (int i = 0; i < 100; i++)
        strcat(path, "/x");
    assert_null(find(f, path, false, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(router_literal_and_root, setup, teardown),
        cmocka_unit_test_setup_teardown(router_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(router_int_converter, setup, teardown),
        cmocka_unit_test_setup_teardown(router_trailing_slash, setup, teardown),
        cmocka_unit_test_setup_teardown(router_percent_encoded_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(router_literal_before_field, setup, teardown),
        cmocka_unit_test_setup_teardown(router_conflicting_field_names, setup, teardown),
        cmocka_unit_test_setup_teardown(router_conflicting_converters, setup, teardown),
        cmocka_unit_test_setup_teardown(router_duplicate_template, setup, teardown),
        cmocka_unit_test_setup_teardown(router_syntax_errors, setup, teardown),
        cmocka_unit_test(router_allow_header),
        cmocka_unit_test_setup_teardown(router_many_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(router_too_deep_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
