/* Request framing checks of src/http/framing.c: header field names and
 * values, Host, Authorization and Content-Length duplicates and
 * Transfer-Encoding, as RFC 9112 asks of a server behind which nothing may
 * be smuggled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/framing.h"
#include "http/pipeline.h"
#include "http/request.h"

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

/* Build a request with the given protocol and NULL-terminated name/value
 * pairs and return the verdict of talon_framing_check_head. */
static int head(const char *method, const char *protocol, const char **fields)
{
    talon_req *req = talon_req_create(app);
    assert_non_null(req);
    assert_int_equal(talon_req_set_line(req, method, "/x", protocol), 0);
    for (size_t i = 0; fields[i] != NULL; i += 2)
        assert_int_equal(talon_req_add_header(req, fields[i], fields[i + 1]), 0);
    const char *why = NULL;
    int status = talon_framing_check_head(req, &why);
    if (status != 0)
        assert_non_null(why);
    talon_req_unref(req);
    return status;
}

#define HEAD(...) head("POST", "HTTP/1.1", (const char *[]){ __VA_ARGS__, NULL })

static void tokens(void **state)
{
    assert_true(talon_http_is_token("GET", 3));
    assert_true(talon_http_is_token("X-Custom_1.a!#$%&'*+^`|~", 24));
    assert_false(talon_http_is_token("", 0));
    assert_false(talon_http_is_token("G T", 3));
    assert_false(talon_http_is_token("G\x01T", 3));
    assert_false(talon_http_is_token("G\xc3\xa9T", 4));
    assert_false(talon_http_is_token("Host:", 5));
    assert_false(talon_http_is_token("a\"b", 3));
}

static void fields(void **state)
{
    const char *why = NULL;
    assert_int_equal(talon_framing_check_field("User-Agent", 10, "a \x01\x1b\x7f\xff", 6, &why), 0);
    assert_int_equal(talon_framing_check_field("User-Agent ", 11, "x", 1, &why), 400);
    assert_non_null(strstr(why, "not a token"));
    assert_int_equal(talon_framing_check_field("User-Agent\t", 11, "x", 1, &why), 400);
    assert_int_equal(talon_framing_check_field("X", 1, "a\rb", 3, &why), 400);
    assert_int_equal(talon_framing_check_field("X", 1, "a\nb", 3, &why), 400);
    assert_int_equal(talon_framing_check_field("X", 1, "a\0b", 3, &why), 400);
    assert_int_equal(talon_framing_check_field("X", 1, "", 0, &why), 0);
}

static void methods_and_hosts(void **state)
{
    assert_int_equal(head("GET", "HTTP/1.1", (const char *[]){ "Host", "x", NULL }), 0);
    assert_int_equal(head("G\x01T", "HTTP/1.1", (const char *[]){ "Host", "x", NULL }), 400);
    assert_int_equal(head("GET", "HTTP/1.1", (const char *[]){ "Host", "x", "host", "y", NULL }),
                     400);
    assert_int_equal(head("GET", "HTTP/1.1", (const char *[]){ "Host", "x", "Host", "x", NULL }),
                     400);
}

/* A Host value must be a host and an optional port (RFC 9112 section 3.2). */
static void host_values(void **state)
{
    static const char *valid[] = { "example.com", "example.com:8080", "127.0.0.1:80",
                                   "[::1]:8080", "", "xn--caf-dma.example", "a_b.local" };
    static const char *invalid[] = { "a b", "a/b@c", "a?b", "a#b", "caf\xc3\xa9.example",
                                     "a\tb", "\"a\"", "[::1", "[::1]x", "a[::1]", "[g::1]" };
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        assert_int_equal(head("GET", "HTTP/1.1", (const char *[]){ "Host", valid[i], NULL }), 0);
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        assert_int_equal(head("GET", "HTTP/1.1", (const char *[]){ "Host", invalid[i], NULL }),
                         400);
}

/* One set of credentials: two Authorization (or Proxy-Authorization)
 * fields are rejected, even with equal values, since an application and a
 * proxy may each read a different one. */
static void duplicate_credentials(void **state)
{
    assert_int_equal(HEAD("Authorization", "Bearer a"), 0);
    assert_int_equal(HEAD("Authorization", "Bearer a", "Proxy-Authorization", "Basic b"), 0);
    assert_int_equal(HEAD("Authorization", "Bearer a", "authorization", "Bearer b"), 400);
    assert_int_equal(HEAD("Authorization", "Bearer a", "Authorization", "Bearer a"), 400);
    assert_int_equal(HEAD("Proxy-Authorization", "Basic a", "Proxy-Authorization", "Basic b"),
                     400);
}

static void content_length(void **state)
{
    assert_int_equal(HEAD("Content-Length", "5"), 0);
    assert_int_equal(HEAD("Content-Length", "5", "content-length", "5"), 0);
    assert_int_equal(HEAD("Content-Length", "5", "Content-Length", "6"), 400);
    assert_int_equal(HEAD("Content-Length", "5", "Transfer-Encoding", "chunked"), 400);
    assert_int_equal(HEAD("Transfer-Encoding", "chunked", "Content-Length", "5"), 400);
}

static void transfer_encoding(void **state)
{
    assert_int_equal(HEAD("Transfer-Encoding", "chunked"), 0);
    assert_int_equal(HEAD("Transfer-Encoding", "CHUNKED"), 0);
    /* Not final: the length cannot be known (section 6.3, rule 4). */
    assert_int_equal(HEAD("Transfer-Encoding", "gzip"), 400);
    assert_int_equal(HEAD("Transfer-Encoding", "chunked, gzip"), 400);
    assert_int_equal(HEAD("Transfer-Encoding", "chunked", "Transfer-Encoding", "gzip"), 400);
    assert_int_equal(HEAD("Transfer-Encoding", ""), 400);
    assert_int_equal(HEAD("Transfer-Encoding", " , "), 400);
    /* chunked twice (section 6.1). */
    assert_int_equal(HEAD("Transfer-Encoding", "chunked, chunked"), 400);
    assert_int_equal(HEAD("Transfer-Encoding", "chunked", "Transfer-Encoding", "chunked"), 400);
    /* chunked last, after a coding talon does not decode: 501. */
    assert_int_equal(HEAD("Transfer-Encoding", "gzip, chunked"), 501);
    assert_int_equal(HEAD("Transfer-Encoding", "gzip", "Transfer-Encoding", "chunked"), 501);
    /* libmicrohttpd compares the whole value with "chunked". */
    assert_int_equal(HEAD("Transfer-Encoding", "chunked "), 501);
    /* HTTP/1.0 has no Transfer-Encoding (section 6.1). */
    assert_int_equal(head("POST", "HTTP/1.0",
                          (const char *[]){ "Transfer-Encoding", "chunked", NULL }), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokens),
        cmocka_unit_test(fields),
        cmocka_unit_test_setup_teardown(methods_and_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(host_values, setup, teardown),
        cmocka_unit_test_setup_teardown(duplicate_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(content_length, setup, teardown),
        cmocka_unit_test_setup_teardown(transfer_encoding, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
