/* Audit policy rules: parsing, errors that name the bad word, and
 * first-match-wins matching over method and route template. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "talon/audit_http.h"

static talon_audit_policy *policy_of(const char *const *rules)
{
    char err[256];
    talon_audit_policy *p = talon_audit_policy_new();
    assert_non_null(p);
    for (size_t i = 0; rules[i] != NULL; i++) {
        int rc = talon_audit_policy_add_rule(p, rules[i], err, sizeof(err));
        if (rc != 0)
            fail_msg("rule \"%s\": %s", rules[i], err);
    }
    return p;
}

static void expect_match(const talon_audit_policy *p, const char *method, const char *route,
                         talon_audit_level level, talon_audit_mode mode)
{
    talon_audit_level got_level;
    talon_audit_mode got_mode;
    talon_audit_policy_match(p, method, route, &got_level, &got_mode);
    if (got_level != level || got_mode != mode)
        fail_msg("%s %s: expected %s %s, got %s %s", method, route ? route : "(no route)",
                 talon_audit_level_name(level), talon_audit_mode_name(mode),
                 talon_audit_level_name(got_level), talon_audit_mode_name(got_mode));
}

static void test_first_match_wins(void **state)
{
    static const char *const rules[] = {
        "POST /login request_response sync",
        "GET,HEAD /notes* metadata",
        "* /notes* request sync",
        "* - none",
        "* * metadata async",
        NULL,
    };
    talon_audit_policy *p = policy_of(rules);

    expect_match(p, "POST", "/login", TALON_AUDIT_LEVEL_REQUEST_RESPONSE, TALON_AUDIT_SYNC);
    expect_match(p, "GET", "/login", TALON_AUDIT_LEVEL_METADATA, TALON_AUDIT_ASYNC);
    expect_match(p, "GET", "/notes/{id:int}", TALON_AUDIT_LEVEL_METADATA, TALON_AUDIT_ASYNC);
    expect_match(p, "HEAD", "/notes", TALON_AUDIT_LEVEL_METADATA, TALON_AUDIT_ASYNC);
    expect_match(p, "DELETE", "/notes/{id:int}", TALON_AUDIT_LEVEL_REQUEST, TALON_AUDIT_SYNC);
    expect_match(p, "GET", NULL, TALON_AUDIT_LEVEL_NONE, TALON_AUDIT_ASYNC);
    expect_match(p, "BREW", "/coffee", TALON_AUDIT_LEVEL_METADATA, TALON_AUDIT_ASYNC);
    talon_audit_policy_free(p);
}

static void test_defaults_without_rules(void **state)
{
    char err[256];
    talon_audit_policy *p = talon_audit_policy_new();
    expect_match(p, "GET", "/x", TALON_AUDIT_LEVEL_METADATA, TALON_AUDIT_ASYNC);

    assert_int_equal(talon_audit_policy_config_set(p, "default_level", "request", err,
                                                   sizeof(err)), 0);
    assert_int_equal(talon_audit_policy_config_set(p, "default_mode", "sync", err,
                                                   sizeof(err)), 0);
    expect_match(p, "GET", "/x", TALON_AUDIT_LEVEL_REQUEST, TALON_AUDIT_SYNC);
    expect_match(p, "GET", NULL, TALON_AUDIT_LEVEL_REQUEST, TALON_AUDIT_SYNC);
    talon_audit_policy_free(p);
}

/* A rule without a mode takes default_mode, even when default_mode comes
 * later in the file. */
static void test_rule_mode_defaults_late(void **state)
{
    char err[256];
    talon_audit_policy *p = talon_audit_policy_new();
    assert_int_equal(talon_audit_policy_config_set(p, "rule", "POST /a request", err,
                                                   sizeof(err)), 0);
    assert_int_equal(talon_audit_policy_config_set(p, "default_mode", "sync", err,
                                                   sizeof(err)), 0);
    expect_match(p, "POST", "/a", TALON_AUDIT_LEVEL_REQUEST, TALON_AUDIT_SYNC);
    talon_audit_policy_free(p);
}

static void test_route_without_route_rule(void **state)
{
    static const char *const rules[] = { "* /x none", NULL };
    talon_audit_policy *p = policy_of(rules);
    /* A glob never matches an unrouted request; only "-" and "*" rules do. */
    expect_match(p, "GET", NULL, TALON_AUDIT_LEVEL_METADATA, TALON_AUDIT_ASYNC);
    talon_audit_policy_free(p);
}

static void test_invalid_rules(void **state)
{
    static const struct {
        const char *rule;
        const char *message_part;
    } cases[] = {
        { "POST /x", "expected METHODS ROUTE LEVEL [MODE]" },
        { "POST /x request sync extra", "expected METHODS ROUTE LEVEL [MODE]" },
        { "FETCH /x request", "invalid method \"FETCH\"" },
        { "POST notes request", "invalid route pattern \"notes\"" },
        { "POST /x everything", "invalid audit level \"everything\"" },
        { "POST /x request later", "invalid durability mode \"later\"" },
        { ",, /x request", "missing method" },
    };
    char err[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        talon_audit_policy *p = talon_audit_policy_new();
        err[0] = '\0';
        int rc = talon_audit_policy_add_rule(p, cases[i].rule, err, sizeof(err));
        if (rc != -EINVAL)
            fail_msg("rule \"%s\": expected -EINVAL, got %d", cases[i].rule, rc);
        if (strstr(err, cases[i].message_part) == NULL)
            fail_msg("rule \"%s\": message \"%s\" lacks \"%s\"", cases[i].rule, err,
                     cases[i].message_part);
        expect_match(p, "POST", "/x", TALON_AUDIT_LEVEL_METADATA, TALON_AUDIT_ASYNC);
        talon_audit_policy_free(p);
    }
}

static void test_unknown_key(void **state)
{
    char err[256];
    talon_audit_policy *p = talon_audit_policy_new();
    assert_int_equal(talon_audit_policy_config_set(p, "rules", "* * none", err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "unknown key \"rules\""));
    assert_int_equal(talon_audit_policy_config_set(p, "default_level", "all", err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "invalid audit level \"all\""));
    talon_audit_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_defaults_without_rules),
        cmocka_unit_test(test_rule_mode_defaults_late),
        cmocka_unit_test(test_route_without_route_rule),
        cmocka_unit_test(test_invalid_rules),
        cmocka_unit_test(test_unknown_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
