/* Client address formatting: talon_sockaddr_format(), which the engine
 * runs once per connection, and talon_req_set_peer_ip(), which copies the
 * result into each request. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>
#include <cmocka.h>

#include "http/pipeline.h"

static void format_ipv4(void **state)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(80) };
    inet_pton(AF_INET, "203.0.113.7", &sin.sin_addr);
    char out[TALON_IP_MAX] = "-";
    talon_sockaddr_format((struct sockaddr *)&sin, out);
    assert_string_equal(out, "203.0.113.7");
}

static void format_ipv6(void **state)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
    char out[TALON_IP_MAX] = "-";
    talon_sockaddr_format((struct sockaddr *)&sin6, out);
    assert_string_equal(out, "2001:db8::1");
}

static void format_ipv6_longest(void **state)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", &sin6.sin6_addr);
    char out[TALON_IP_MAX];
    talon_sockaddr_format((struct sockaddr *)&sin6, out);
    assert_string_equal(out, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}

static void format_v4_mapped_as_ipv4(void **state)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, "::ffff:192.0.2.1", &sin6.sin6_addr);
    char out[TALON_IP_MAX] = "-";
    talon_sockaddr_format((struct sockaddr *)&sin6, out);
    assert_string_equal(out, "192.0.2.1");
}

static void format_unix_and_unknown(void **state)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    char out[TALON_IP_MAX] = "-";
    talon_sockaddr_format((struct sockaddr *)&sun, out);
    assert_string_equal(out, "unix");

    struct sockaddr other = { .sa_family = AF_UNSPEC };
    char kept[TALON_IP_MAX] = "-";
    talon_sockaddr_format(&other, kept);
    assert_string_equal(kept, "-");
    talon_sockaddr_format(NULL, kept);
    assert_string_equal(kept, "-");
}

/* The cached string reaches the request unchanged, and the client address
 * is still derived from it (no trusted proxies: the peer itself). */
static void set_peer_ip_copies_cached_address(void **state)
{
    talon_app *app = talon_app_new();
    talon_req *req = talon_pipeline_req_new(app, "GET", "/");
    talon_req_set_peer_ip(req, "2001:db8::1");
    talon_req_prepare(req);
    assert_string_equal(talon_req_peer_ip(req), "2001:db8::1");
    assert_string_equal(talon_req_client_ip(req), "2001:db8::1");

    char longer[2 * TALON_IP_MAX];
    memset(longer, '7', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    talon_req_set_peer_ip(req, longer);
    assert_int_equal(strlen(talon_req_peer_ip(req)), TALON_IP_MAX - 1);

    talon_req_unref(req);
    talon_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_ipv4),
        cmocka_unit_test(format_ipv6),
        cmocka_unit_test(format_ipv6_longest),
        cmocka_unit_test(format_v4_mapped_as_ipv4),
        cmocka_unit_test(format_unix_and_unknown),
        cmocka_unit_test(set_peer_ip_copies_cached_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
