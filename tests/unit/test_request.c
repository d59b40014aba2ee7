/* Request details: headers, request ids, traceparent, trusted proxies,
 * user and roles, per-request context. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/pipeline.h"

static talon_app *app;

static int setup(void **state)
{
    app = talon_app_new();
    return 0;
}

static int teardown(void **state)
{
    talon_app_free(app);
    return 0;
}

static void headers_case_insensitive(void **state)
{
    talon_req *req = talon_pipeline_req_new(app, "GET", "/");
    talon_req_add_header(req, "Content-Type", "text/plain");
    talon_req_add_header(req, "X-Dup", "1");
    talon_req_add_header(req, "x-dup", "2");
    assert_string_equal(talon_req_header(req, "content-type"), "text/plain");
    assert_string_equal(talon_req_header(req, "CONTENT-TYPE"), "text/plain");
    assert_string_equal(talon_req_header(req, "X-DUP"), "1");
    assert_null(talon_req_header(req, "Missing"));
    assert_int_equal(talon_req_header_count(req), 3);
    const char *name, *value;
    assert_true(talon_req_header_at(req, 2, &name, &value));
    assert_string_equal(name, "x-dup");
    assert_string_equal(value, "2");
    assert_false(talon_req_header_at(req, 3, &name, &value));
    talon_pipeline_req_free(req);
}

static const char *id_for(const char *incoming, char *buf)
{
    talon_request_id_init(buf, incoming);
    return buf;
}

static bool is_hex32(const char *s)
{
    if (strlen(s) != 32)
        return false;
    for (; *s; s++) {
        if (!strchr("0123456789abcdef", *s))
            return false;
    }
    return true;
}

static void request_id_kept_or_generated(void **state)
{
    char buf[TALON_REQ_ID_MAX + 1], other[TALON_REQ_ID_MAX + 1];
    assert_string_equal(id_for("abc-123", buf), "abc-123");
    char max[65];
    memset(max, 'x', 64);
    max[64] = '\0';
    assert_string_equal(id_for(max, buf), max);

    static const char *const rejected[] = {
        "", "has space", "quote\"d", "single'q", "back\\slash", "tab\there", "\x1b[31m",
        "caf\xc3\xa9", "x\x7f",
    };
    for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++) {
        if (!is_hex32(id_for(rejected[i], buf)))
            fail_msg("X-Request-ID \"%s\" was kept as \"%s\"", rejected[i], buf);
    }
    char too_long[66];
    memset(too_long, 'y', 65);
    too_long[65] = '\0';
    assert_true(is_hex32(id_for(too_long, buf)));
    assert_true(is_hex32(id_for(NULL, buf)));
    id_for(NULL, other);
    assert_string_not_equal(buf, other);
}

static void request_id_echo_source(void **state)
{
    talon_req *req = talon_pipeline_req_new(app, "GET", "/");
    talon_req_add_header(req, "x-request-id", "client-7");
    talon_pipeline_req_run(req);
    assert_string_equal(talon_req_id(req), "client-7");
    talon_pipeline_req_free(req);
}

static void traceparent_parsing(void **state)
{
    char trace[33], parent[17];
    assert_true(talon_traceparent_parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", trace, parent));
    assert_string_equal(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(parent, "00f067aa0ba902b7");

    static const char *const invalid[] = {
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* uppercase */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        if (talon_traceparent_parse(invalid[i], trace, parent))
            fail_msg("traceparent \"%s\" was accepted", invalid[i]);
    }

    talon_req *req = talon_pipeline_req_new(app, "GET", "/");
    talon_req_add_header(req, "Traceparent",
                         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    talon_pipeline_req_run(req);
    assert_string_equal(talon_req_trace_id(req), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(talon_req_parent_span_id(req), "00f067aa0ba902b7");
    talon_pipeline_req_free(req);

    req = talon_pipeline_req_new(app, "GET", "/");
    talon_pipeline_req_run(req);
    assert_null(talon_req_trace_id(req));
    talon_pipeline_req_free(req);
}

/* Client ip for a peer and X-Forwarded-For lines, with trusted proxies. */
static const char *client_ip(const char *trusted, const char *peer, const char *xff1,
                             const char *xff2, char *out)
{
    talon_proxies *p = NULL;
    char err[256];
    assert_int_equal(talon_proxies_parse(trusted, &p, err, sizeof(err)), 0);
    talon_req *req = talon_pipeline_req_new(app, "GET", "/");
    talon_req_set_peer_ip(req, peer);
    if (xff1)
        talon_req_add_header(req, "X-Forwarded-For", xff1);
    if (xff2)
        talon_req_add_header(req, "x-forwarded-for", xff2);
    talon_proxies_client_ip(p, req, out);
    talon_pipeline_req_free(req);
    talon_proxies_free(p);
    return out;
}

static void client_ip_trusted_proxies(void **state)
{
    char ip[TALON_IP_MAX];
    const char *trusted = "10.0.0.0/8, 127.0.0.1 ::1/128,fd00::/8";
    /* No trust configured: the peer, whatever the header says. */
    assert_string_equal(client_ip(NULL, "10.1.1.1", "1.2.3.4", NULL, ip), "10.1.1.1");
    /* Untrusted peer: the header is ignored. */
    assert_string_equal(client_ip(trusted, "8.8.8.8", "1.2.3.4", NULL, ip), "8.8.8.8");
    /* Trusted peer: the rightmost untrusted entry. */
    assert_string_equal(client_ip(trusted, "10.1.1.1", "1.2.3.4", NULL, ip), "1.2.3.4");
    assert_string_equal(client_ip(trusted, "10.1.1.1", "6.6.6.6, 1.2.3.4, 10.9.9.9", NULL, ip),
                        "1.2.3.4");
    /* Several header lines are one list. */
    assert_string_equal(client_ip(trusted, "127.0.0.1", "6.6.6.6, 1.2.3.4", "10.2.2.2", ip),
                        "1.2.3.4");
    /* Every hop trusted: the leftmost. */
    assert_string_equal(client_ip(trusted, "10.1.1.1", "10.5.5.5,10.6.6.6", NULL, ip),
                        "10.5.5.5");
    /* IPv6 peers and entries. */
    assert_string_equal(client_ip(trusted, "::1", "2001:db8::1", NULL, ip), "2001:db8::1");
    assert_string_equal(client_ip(trusted, "fd00::5", " 2001:db8::2 ", NULL, ip),
                        "2001:db8::2");
    /* Garbage stops the walk at the last accepted address. */
    assert_string_equal(client_ip(trusted, "10.1.1.1", "1.2.3.4, not-an-ip", NULL, ip),
                        "10.1.1.1");
    assert_string_equal(client_ip(trusted, "10.1.1.1", "evil\", 10.3.3.3", NULL, ip),
                        "10.3.3.3");
    /* A /8 does not trust its neighbour. */
    assert_string_equal(client_ip(trusted, "11.0.0.1", "1.2.3.4", NULL, ip), "11.0.0.1");
}

static void trusted_proxies_invalid(void **state)
{
    static const char *const bad[] = { "10.0.0.0/33", "::1/129", "10.0.0.0/", "example.com",
                                       "10.0.0.0/-1", "1.2.3.4/8x" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        talon_proxies *p = NULL;
        char err[256] = "";
        int rc = talon_proxies_parse(bad[i], &p, err, sizeof(err));
        if (rc != -EINVAL || strstr(err, "invalid trusted proxy") == NULL)
            fail_msg("\"%s\": rc %d, message \"%s\"", bad[i], rc, err);
        assert_null(p);
    }
}

static void user_and_roles(void **state)
{
    talon_req *req = talon_pipeline_req_new(app, "GET", "/");
    assert_null(talon_req_user(req));
    assert_non_null(talon_req_roles(req));
    assert_null(talon_req_roles(req)[0]);
    char user[] = "alice";
    const char *roles[] = { "editor", "auditor", NULL };
    talon_req_set_user(req, user, roles);
    user[0] = 'X'; /* the request keeps its own copy */
    assert_string_equal(talon_req_user(req), "alice");
    assert_true(talon_req_has_role(req, "auditor"));
    assert_false(talon_req_has_role(req, "admin"));
    talon_req_set_user(req, NULL, NULL);
    assert_null(talon_req_user(req));
    assert_false(talon_req_has_role(req, "editor"));
    talon_pipeline_req_free(req);
}

static int freed;

static void count_free(void *p)
{
    freed++;
    free(p);
}

static void context_values(void **state)
{
    freed = 0;
    talon_req *req = talon_pipeline_req_new(app, "GET", "/");
    assert_null(talon_req_context_get(req, "k"));
    assert_int_equal(talon_req_context_set(req, "k", strdup("one"), count_free), 0);
    assert_int_equal(talon_req_context_set(req, "n", (void *)42, NULL), 0);
    assert_string_equal(talon_req_context_get(req, "k"), "one");
    /* Replacing a value frees the old one. */
    assert_int_equal(talon_req_context_set(req, "k", strdup("two"), count_free), 0);
    assert_int_equal(freed, 1);
    assert_string_equal(talon_req_context_get(req, "k"), "two");
    assert_ptr_equal(talon_req_context_get(req, "n"), (void *)42);
    talon_pipeline_req_free(req);
    assert_int_equal(freed, 2);
}

static void body_limit(void **state)
{
    talon_app *small = talon_app_new();
    small->max_body_size = 10;
    talon_req *req = talon_pipeline_req_new(small, "POST", "/");
    assert_int_equal(talon_req_append_body(req, "12345", 5), 0);
    assert_int_equal(talon_req_append_body(req, "67890", 5), 0);
    assert_int_equal(talon_req_append_body(req, "x", 1), -EFBIG);
    size_t len;
    assert_string_equal(talon_req_body(req, &len), "1234567890");
    assert_int_equal(len, 10);
    talon_pipeline_req_free(req);
    talon_app_free(small);
}

static void client_ip_from_prepare(void **state)
{
    /* Without trusted proxies, prepare copies the peer and ignores the header. */
    talon_req *req = talon_pipeline_req_new(app, "GET", "/");
    talon_req_set_peer_ip(req, "192.0.2.7");
    talon_req_add_header(req, "X-Forwarded-For", "1.2.3.4");
    talon_pipeline_req_run(req);
    assert_string_equal(talon_req_client_ip(req), "192.0.2.7");
    talon_pipeline_req_free(req);

    /* With the peer trusted, prepare takes the header's address. */
    talon_app *proxied = talon_app_new();
    char err[256];
    assert_int_equal(talon_proxies_parse("192.0.2.0/24", &proxied->proxies, err, sizeof(err)), 0);
    req = talon_pipeline_req_new(proxied, "GET", "/");
    talon_req_set_peer_ip(req, "192.0.2.7");
    talon_req_add_header(req, "X-Forwarded-For", "1.2.3.4");
    talon_pipeline_req_run(req);
    assert_string_equal(talon_req_client_ip(req), "1.2.3.4");
    talon_pipeline_req_free(req);
    talon_app_free(proxied);
}

static void reused_request_starts_clean(void **state)
{
    talon_req *req = talon_pipeline_req_new(app, "POST", "/a?x=1");
    talon_req_add_header(req, "X-Request-ID", "first-request");
    assert_int_equal(talon_req_append_body(req, "abc", 3), 0);
    const char *roles[] = { "admin", NULL };
    talon_req_set_user(req, "alice", roles);
    assert_int_equal(talon_req_context_set(req, "k", strdup("v"), free), 0);
    talon_pipeline_req_run(req);
    talon_resp_set_header(&req->resp, "X-Old", "1");
    talon_pipeline_req_free(req);

    /* The next request on this thread may get the same memory back. */
    req = talon_req_create(app);
    assert_non_null(req);
    assert_string_equal(talon_req_method(req), "GET");
    assert_string_equal(talon_req_target(req), "/");
    assert_int_equal(talon_req_header_count(req), 0);
    assert_null(talon_req_query(req, "x"));
    size_t len = 99;
    assert_null(talon_req_body(req, &len));
    assert_int_equal(len, 0);
    assert_null(talon_req_user(req));
    assert_false(talon_req_has_role(req, "admin"));
    assert_null(talon_req_context_get(req, "k"));
    assert_int_equal(talon_resp_status(&req->resp), 0);
    assert_null(talon_resp_header(&req->resp, "X-Old"));
    assert_string_equal(talon_req_peer_ip(req), "-");
    assert_string_equal(talon_req_client_ip(req), "-");
    assert_string_equal(talon_req_id(req), "");
    talon_req_unref(req);
}

static void path_params(void **state)
{
    talon_app *a = talon_app_new();
    static const talon_resource r = { .name = "x" };
    char err[256];
    assert_int_equal(talon_app_add_route(a, "/u/{name}/n/{id:int}", &r, err, sizeof(err)), 0);
    talon_req *req = talon_pipeline_req_new(a, "GET", "/u/al%20ice/n/-12");
    talon_pipeline_req_run(req);
    assert_string_equal(talon_req_param(req, "name"), "al ice");
    int64_t id = 0;
    assert_true(talon_req_param_int(req, "id", &id));
    assert_int_equal(id, -12);
    assert_false(talon_req_param_int(req, "name", &id));
    assert_null(talon_req_param(req, "missing"));
    talon_pipeline_req_free(req);
    talon_app_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(headers_case_insensitive),
        cmocka_unit_test(request_id_kept_or_generated),
        cmocka_unit_test(request_id_echo_source),
        cmocka_unit_test(traceparent_parsing),
        cmocka_unit_test(client_ip_trusted_proxies),
        cmocka_unit_test(trusted_proxies_invalid),
        cmocka_unit_test(user_and_roles),
        cmocka_unit_test(context_values),
        cmocka_unit_test(body_limit),
        cmocka_unit_test(path_params),
        cmocka_unit_test(client_ip_from_prepare),
        cmocka_unit_test(reused_request_starts_clean),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
