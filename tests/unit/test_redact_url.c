/* talon_redact_url(): secret query parameters, fragment pairs and the
 * userinfo of an absolute URL become [REDACTED], everything else is kept
 * byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "talon/log.h"

static void expect_redacted(const char *in, const char *expected, bool expect_found)
{
    bool found = !expect_found;
    size_t len = talon_redact_url(in, strlen(in), talon_secret_words, NULL, &found);
    assert_int_equal(found, expect_found);
    char *out = malloc(len + 1);
    assert_non_null(out);
    assert_int_equal(talon_redact_url(in, strlen(in), talon_secret_words, out, NULL), len);
    out[len] = '\0';
    if (strcmp(out, expected) != 0)
        fail_msg("redact(%s)\n  got      %s\n  expected %s", in, out, expected);
    free(out);
}

static void targets_without_secrets_unchanged(void **state)
{
    (void)state;
    expect_redacted("/notes", "/notes", false);
    expect_redacted("/notes?", "/notes?", false);
    expect_redacted("/notes?q=x&limit=2", "/notes?q=x&limit=2", false);
    expect_redacted("/notes?password", "/notes?password", false); /* no value to hide */
    expect_redacted("/a/password/b", "/a/password/b", false);     /* paths are not matched */
    expect_redacted("", "", false);
}

static void secret_parameters_redacted(void **state)
{
    (void)state;
    expect_redacted("/login?user=bob&password=hunter2", "/login?user=bob&password=[REDACTED]", true);
    expect_redacted("/x?access_token=abc&q=1&API_KEY=k",
                    "/x?access_token=[REDACTED]&q=1&API_KEY=[REDACTED]", true);
    /* talon's query parser splits on '&' only: pass is "a;pwd=b;n=c". */
    expect_redacted("/x?pass=a;pwd=b;n=c", "/x?pass=[REDACTED]", true);
    expect_redacted("/x?n=c;pwd=b&q=1", "/x?n=c;pwd=[REDACTED]&q=1", true);
    expect_redacted("/x?a;password=x&q=1", "/x?a;password=[REDACTED]&q=1", true);
    expect_redacted("/x?cookie4;;;x=v&q=1", "/x?cookie4;;;x=[REDACTED]&q=1", true);
    expect_redacted("/x?session_id=", "/x?session_id=[REDACTED]", true);
    expect_redacted("/x?token=a=b&c=d", "/x?token=[REDACTED]&c=d", true);
    expect_redacted("/x?token=1&&token=2", "/x?token=[REDACTED]&&token=[REDACTED]", true);
}

static void encoded_names_decoded(void **state)
{
    (void)state;
    expect_redacted("/x?pass%77ord=s", "/x?pass%77ord=[REDACTED]", true);
    expect_redacted("/x?%54OKEN=s", "/x?%54OKEN=[REDACTED]", true);
    expect_redacted("/x?my+secret=s", "/x?my+secret=[REDACTED]", true);
    expect_redacted("/x?tok%=s&t%zzoken=s", "/x?tok%=s&t%zzoken=s", false);
}

static void referer_fragment_redacted(void **state)
{
    (void)state;
    expect_redacted("https://app.example/cb?state=1#access_token=abc&token_type=bearer",
                    "https://app.example/cb?state=1#access_token=[REDACTED]&token_type=[REDACTED]",
                    true);
    expect_redacted("https://a.example/#x?password=1", "https://a.example/#x?password=[REDACTED]",
                    true);
    expect_redacted("https://a.example/p#frag", "https://a.example/p#frag", false);
    /* A request target with '#' before '?' (rejected with 400): the query
     * parser takes the first '?', so the redactor does too. */
    expect_redacted("/x#a=b?secret=v", "/x#a=b?secret=[REDACTED]", true);
}

static void absolute_url_userinfo_redacted(void **state)
{
    (void)state;
    expect_redacted("http://u:hunter2@h/hello?x=1", "http://[REDACTED]@h/hello?x=1", true);
    expect_redacted("https://ghp_token@example.com/", "https://[REDACTED]@example.com/", true);
    expect_redacted("http://u:p@h", "http://[REDACTED]@h", true);
    /* The host ends at the last '@' of the authority, as browsers read it. */
    expect_redacted("http://a@b:c@h/p", "http://[REDACTED]@h/p", true);
    expect_redacted("http://u:p@h/x?token=t", "http://[REDACTED]@h/x?token=[REDACTED]", true);
    /* An '@' after the authority is not userinfo. */
    expect_redacted("http://h/users/@bob?x=a@b", "http://h/users/@bob?x=a@b", false);
    expect_redacted("http://h?x=a@b", "http://h?x=a@b", false);
    expect_redacted("/p@x", "/p@x", false);
    expect_redacted("http://@h/", "http://@h/", false);
    expect_redacted("1http://u:p@h/", "1http://u:p@h/", false);
}

static void extra_words_used(void **state)
{
    (void)state;
    const char *words[] = { "pin", NULL };
    char out[64];
    bool found = false;
    size_t len = talon_redact_url("/x?pin=1234&password=p", 22, words, out, &found);
    out[len] = '\0';
    assert_true(found);
    assert_string_equal(out, "/x?pin=[REDACTED]&password=p");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(targets_without_secrets_unchanged),
        cmocka_unit_test(secret_parameters_redacted),
        cmocka_unit_test(encoded_names_decoded),
        cmocka_unit_test(referer_fragment_redacted),
        cmocka_unit_test(absolute_url_userinfo_redacted),
        cmocka_unit_test(extra_words_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
