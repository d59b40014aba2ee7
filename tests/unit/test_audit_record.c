/* Audit records: exact bytes of the serializer, escapes of hostile strings,
 * redaction at any depth, key evolution and the key files. Expected hashes
 * and MACs are computed here with plain OpenSSL calls from the format spec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "audit_test_util.h"
#include "audit/audit_internal.h"

/* 2024-05-01T10:00:00.123456789Z */
#define T0 1714557600123456789LL
#define TRAIL_HEX "9f86d081884c7d659a2feaa0c55ad015"

static audit_redactor default_redactor(void)
{
    audit_redactor r;
    assert_int_equal(audit_redactor_init(&r, NULL), 0);
    return r;
}

static char *serialize(const talon_audit_event *ev, const audit_redactor *r)
{
    audit_buf b;
    audit_buf_init(&b);
    assert_int_equal(audit_serialize_middle(&b, ev, T0, r, "demo-1", TRAIL_HEX), 0);
    audit_buf_append(&b, "", 1);
    return b.data;
}

static void serializer_exact_bytes(void **state)
{
    const char *roles[] = { "admin", "ops", NULL };
    json_t *data = json_pack("{s:i,s:f,s:b,s:n,s:[i,s,b],s:{s:i}}", "count", 3, "ratio", 0.1,
                             "ok", 1, "none", "list", 1, "two", 0, "nested", "a", -5);
    talon_audit_event ev = {
        .type = "user_deleted", .outcome = TALON_AUDIT_SUCCESS, .actor_id = "alice",
        .actor_roles = roles, .source_ip = "10.1.2.3", .user_agent = "curl/7.88.1",
        .request_id = "4bf9", .method = "DELETE", .route = "/users/{id}", .path = "/users/bob",
        .target_type = "user", .target_id = "bob", .data = data,
    };
    audit_redactor r = default_redactor();
    char *got = serialize(&ev, &r);

    assert_string_equal(got,
        "\"time\":\"2024-05-01T10:00:00.123456Z\",\"type\":\"user_deleted\",\"outcome\":\"success\","
        "\"actor\":{\"id\":\"alice\",\"roles\":[\"admin\",\"ops\"]},"
        "\"source\":{\"ip\":\"10.1.2.3\",\"user_agent\":\"curl/7.88.1\"},"
        "\"request\":{\"id\":\"4bf9\",\"method\":\"DELETE\",\"route\":\"/users/{id}\","
        "\"path\":\"/users/bob\"},\"target\":{\"type\":\"user\",\"id\":\"bob\"},\"reason\":null,"
        "\"data\":{\"count\":3,\"ratio\":0.10000000000000001,\"ok\":true,\"none\":null,"
        "\"list\":[1,\"two\",false],\"nested\":{\"a\":-5}},\"host\":\"demo-1\","
        "\"trail\":\"" TRAIL_HEX "\",");
    free(got);
    json_decref(data);
    audit_redactor_free(&r);
}

static void serializer_defaults_and_nulls(void **state)
{
    talon_audit_event ev = { .type = "authn_login_fail", .outcome = TALON_AUDIT_FAILURE,
                             .reason = "bad password", .method = "POST" };
    audit_redactor r = default_redactor();
    char *got = serialize(&ev, &r);

    assert_string_equal(got,
        "\"time\":\"2024-05-01T10:00:00.123456Z\",\"type\":\"authn_login_fail\","
        "\"outcome\":\"failure\",\"actor\":{\"id\":\"anonymous\",\"roles\":[]},"
        "\"source\":{\"ip\":null,\"user_agent\":null},"
        "\"request\":{\"id\":null,\"method\":\"POST\",\"route\":null,\"path\":null},"
        "\"target\":null,\"reason\":\"bad password\",\"data\":{},\"host\":\"demo-1\","
        "\"trail\":\"" TRAIL_HEX "\",");
    free(got);

    talon_audit_event bad = { .type = NULL };
    audit_buf b;
    audit_buf_init(&b);
    assert_int_equal(audit_serialize_middle(&b, &bad, T0, &r, "h", TRAIL_HEX), -EINVAL);
    json_t *arr = json_array();
    talon_audit_event not_object = { .type = "x", .data = arr };
    assert_int_equal(audit_serialize_middle(&b, &not_object, T0, &r, "h", TRAIL_HEX), -EINVAL);
    json_decref(arr);
    audit_buf_free(&b);
    audit_redactor_free(&r);
}

static void serializer_escapes_hostile_strings(void **state)
{
    static const char hostile[] =
        "q\"b\\n\n r\r t\t c\x01 b\x08 f\x0c e\x1b d\x7f "
        "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
        "bad\xff over\xc0\xaf sur\xed\xa0\x80 big\xf4\x90\x80\x80 cont\x80 trunc\xe2\x82";
    static const char expected[] =
        "\"q\\\"b\\\\n\\n r\\r t\\t c\\u0001 b\\u0008 f\\u000c e\\u001b d\\u007f "
        "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
        "bad\\u00ff over\\u00c0\\u00af sur\\u00ed\\u00a0\\u0080 "
        "big\\u00f4\\u0090\\u0080\\u0080 cont\\u0080 trunc\\u00e2\\u0082\"";
    json_t *data = json_object();
    /* A key with a NUL and hostile bytes in it, and the same value. */
    json_object_setn_new_nocheck(data, "k\x1b\"", 3, json_stringn_nocheck(hostile, sizeof(hostile) - 1));
    talon_audit_event ev = { .type = "x\ny", .reason = hostile, .user_agent = hostile,
                             .data = data };
    audit_redactor r = default_redactor();
    char *got = serialize(&ev, &r);
    char needle[1024];

    snprintf(needle, sizeof(needle), "\"reason\":%s,", expected);
    assert_non_null(strstr(got, needle));
    snprintf(needle, sizeof(needle), "\"user_agent\":%s}", expected);
    assert_non_null(strstr(got, needle));
    snprintf(needle, sizeof(needle), "\"data\":{\"k\\u001b\\\"\":%s}", expected);
    assert_non_null(strstr(got, needle));
    assert_non_null(strstr(got, "\"type\":\"x\\ny\""));
    for (const char *p = got; *p; p++)
        assert_false((unsigned char)*p < 0x20 || *p == 0x7f);

    /* The whole record parses as one JSON object. */
    size_t n = strlen(got);
    char *obj = malloc(n + 2);
    obj[0] = '{';
    memcpy(obj + 1, got, n - 1); /* drop the trailing comma */
    obj[n] = '}';
    json_error_t jerr;
    json_t *parsed = json_loadb(obj, n + 1, JSON_ALLOW_NUL, &jerr);
    if (parsed == NULL)
        fail_msg("record does not parse: %s", jerr.text);
    json_decref(parsed);
    free(obj);
    free(got);
    json_decref(data);

    /* A NUL inside a key is escaped too (jansson cannot parse it back). */
    data = json_object();
    json_object_setn_new_nocheck(data, "a\0b", 3, json_true());
    talon_audit_event nul_key = { .type = "x", .data = data };
    got = serialize(&nul_key, &r);
    assert_non_null(strstr(got, "\"data\":{\"a\\u0000b\":true}"));
    free(got);
    json_decref(data);
    audit_redactor_free(&r);
}

static void serializer_reals_and_depth(void **state)
{
    json_t *data = json_pack("{s:f,s:f,s:f,s:I}", "third", 1.0 / 3.0, "big", 1e300, "one", 1.0,
                             "min", (json_int_t)INT64_MIN);
    json_t *deep = json_object();
    json_t *cur = deep;
    for (int i = 0; i < 100; i++) {
        json_t *next = json_object();
        json_object_set_new(cur, "d", next);
        cur = next;
    }
    json_object_set_new(data, "deep", deep);
    talon_audit_event ev = { .type = "x", .data = data };
    audit_redactor r = default_redactor();
    char *got = serialize(&ev, &r);

    assert_non_null(strstr(got, "\"third\":0.33333333333333331,\"big\":1.0000000000000001e+300,"
                                "\"one\":1,\"min\":-9223372036854775808,"));
    assert_non_null(strstr(got, "\"[TRUNCATED]\""));
    free(got);
    json_decref(data);
    audit_redactor_free(&r);
}

static void redaction_at_any_depth(void **state)
{
    json_t *data = json_pack(
        "{s:s,s:{s:s,s:{s:s,s:[{s:s},{s:s}]}},s:s,s:s,s:{s:s},s:s,s:s}",
        "Authorization", "Bearer abc.def", "user", "Password", "hunter2", "profile", "my_API_KEY",
        "key-123", "items", "sessionId", "sess-456", "name", "visible", "X-Cookie-Value",
        "c=secret-cookie", "refresh_token", "tok-789", "client_secret", "obj", "s3cr3t",
        "PrivateKey", "not-matched", "ok", "shown");
    const char *roles[] = { "admin", NULL };
    talon_audit_event ev = { .type = "authn_login_success", .actor_id = "alice",
                             .actor_roles = roles, .data = data };
    audit_redactor r = default_redactor();
    char *got = serialize(&ev, &r);

    for (const char *secret = "hunter2\0key-123\0sess-456\0Bearer abc.def\0c=secret-cookie\0"
                              "tok-789\0s3cr3t\0";
         *secret; secret += strlen(secret) + 1) {
        if (strstr(got, secret) != NULL)
            fail_msg("secret \"%s\" leaked: %s", secret, got);
    }
    assert_non_null(strstr(got, "\"Authorization\":\"[REDACTED]\""));
    assert_non_null(strstr(got, "\"Password\":\"[REDACTED]\""));
    assert_non_null(strstr(got, "[{\"sessionId\":\"[REDACTED]\"},{\"name\":\"visible\"}]"));
    assert_non_null(strstr(got, "\"client_secret\":\"[REDACTED]\""));
    /* "PrivateKey" does not contain "private_key": substring match, as specified. */
    assert_non_null(strstr(got, "\"PrivateKey\":\"not-matched\""));
    assert_non_null(strstr(got, "\"ok\":\"shown\""));
    free(got);
    audit_redactor_free(&r);

    /* A configured list redacts the record's own fields named like it. */
    const char *words[] = { "user_agent", "IP", "roles", "reason", "password", NULL };
    talon_audit_event ev2 = { .type = "x", .actor_id = "alice", .actor_roles = roles,
                              .source_ip = "10.9.9.9", .user_agent = "evil-agent",
                              .reason = "why", .data = data };
    assert_int_equal(audit_redactor_init(&r, words), 0);
    got = serialize(&ev2, &r);
    assert_non_null(strstr(got, "\"source\":{\"ip\":\"[REDACTED]\",\"user_agent\":\"[REDACTED]\"}"));
    assert_non_null(strstr(got, "\"roles\":[\"[REDACTED]\"]"));
    assert_non_null(strstr(got, "\"reason\":\"[REDACTED]\""));
    assert_null(strstr(got, "10.9.9.9"));
    assert_null(strstr(got, "evil-agent"));
    assert_null(strstr(got, "hunter2"));
    /* Not in this list: the token stays (the list replaced the default one). */
    assert_non_null(strstr(got, "tok-789"));
    free(got);
    audit_redactor_free(&r);
    json_decref(data);

    assert_true(talon_audit_is_secret_key(NULL, "X-Api_Key"));
    assert_true(talon_audit_is_secret_key(NULL, "COOKIE"));
    assert_false(talon_audit_is_secret_key(NULL, "user"));
}

static void key_evolution_vector(void **state)
{
    unsigned char k[32], expect[32], buf[21 + 32];

    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)i;
    memcpy(buf, "talon-audit-evolve-v1", 21);
    memcpy(buf + 21, k, 32);
    SHA256(buf, sizeof(buf), expect);
    assert_int_equal(audit_key_evolve(k), 0);
    assert_memory_equal(k, expect, 32);

    /* HMAC from the precomputed states equals one-shot HMAC-SHA256. */
    audit_crypto c;
    unsigned char h[32], mac[32], want[32];
    unsigned len = 0;
    assert_int_equal(audit_crypto_init(&c), 0);
    assert_int_equal(audit_crypto_set_key(&c, k), 0);
    for (int round = 0; round < 3; round++) {
        SHA256((const unsigned char *)"P_i bytes, 3 rounds", 9 + (size_t)round, h);
        assert_int_equal(audit_crypto_mac(&c, h, mac), 0);
        HMAC(EVP_sha256(), k, 32, h, 32, want, &len);
        assert_memory_equal(mac, want, 32);
    }
    audit_crypto_wipe_key(&c);
    assert_int_equal(audit_crypto_mac(&c, h, mac), -EINVAL);
    audit_crypto_free(&c);
}

static void keygen_files_and_modes(void **state)
{
    test_trail tt;
    struct stat st;
    char err[512];
    mode_t old = umask(0);

    test_trail_make(&tt);
    umask(old);
    assert_int_equal(stat(tt.keyfile, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 25 + 32 + 6 + 64 + 1);
    assert_int_equal(stat(tt.state, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 156);

    char *state_line = test_read_file(tt.state, NULL);
    char expect[200], key_hex[65];
    test_hex(key_hex, tt.key0, 32);
    snprintf(expect, sizeof(expect), "talon-audit-state v1 trail=%s epoch=00000000000000000000 "
             "key=%s\n", tt.trail_hex, key_hex);
    assert_string_equal(state_line, expect);
    free(state_line);

    /* Never overwrite either file. */
    assert_int_equal(talon_audit_keygen(tt.keyfile, "elsewhere.state", err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, tt.keyfile));
    assert_int_equal(access("elsewhere.state", F_OK), -1);
    char other[400];
    snprintf(other, sizeof(other), "%s/other.key", tt.root);
    assert_int_equal(talon_audit_keygen(other, tt.state, err, sizeof(err)), -EEXIST);
    assert_int_equal(access(other, F_OK), -1);
    test_trail_remove(&tt);
}

static void config_keys_and_errors(void **state)
{
    talon_audit_options o;
    char err[512];

    talon_audit_options_init(&o);
    assert_int_equal(o.epoch_seconds, 3600);
    assert_int_equal(o.mode, 0600);
    assert_int_equal(talon_audit_config_set(&o, "dir", "var/x", err, sizeof(err)), 0);
    assert_string_equal(o.dir, "var/x");
    assert_int_equal(talon_audit_config_set(&o, "epoch_interval", "5m", err, sizeof(err)), 0);
    assert_int_equal(o.epoch_seconds, 300);
    assert_int_equal(talon_audit_config_set(&o, "rotate_size", "10M", err, sizeof(err)), 0);
    assert_int_equal(o.rotate_size, 10u << 20);
    assert_int_equal(talon_audit_config_set(&o, "mode", "0640", err, sizeof(err)), 0);
    assert_int_equal(o.mode, 0640);
    assert_int_equal(talon_audit_config_set(&o, "mode", "0644", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "0600 or 0640"));
    assert_int_equal(talon_audit_config_set(&o, "failure", "fail_open", err, sizeof(err)), 0);
    assert_int_equal(o.failure, TALON_AUDIT_FAIL_OPEN);
    assert_int_equal(talon_audit_config_set(&o, "failure", "maybe", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "fail_closed"));
    /* A configured list adds to the default words. */
    assert_int_equal(talon_audit_config_set(&o, "redact_keys", "ssn ,card", err, sizeof(err)), 0);
    int n = 0;
    while (o.redact_keys[n] != NULL)
        n++;
    assert_int_equal(n, 14);
    assert_string_equal(o.redact_keys[0], "password");
    assert_string_equal(o.redact_keys[2], "pass");
    assert_string_equal(o.redact_keys[3], "pwd");
    assert_string_equal(o.redact_keys[12], "ssn");
    assert_string_equal(o.redact_keys[13], "card");
    assert_int_equal(talon_audit_config_set(&o, "redact_keys", "default", err, sizeof(err)), 0);
    n = 0;
    while (o.redact_keys[n] != NULL)
        n++;
    assert_int_equal(n, 12);
    assert_int_equal(talon_audit_config_set(&o, "redact_keys", " , ", err, sizeof(err)), -EINVAL);
    assert_int_equal(talon_audit_config_set(&o, "queue_capacity", "0", err, sizeof(err)), -EINVAL);
    assert_int_equal(talon_audit_config_set(&o, "colour", "red", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "colour"));
    assert_non_null(strstr(err, "rotate_keep"));
    talon_audit_options_release(&o);
    assert_null(o.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(serializer_exact_bytes),
        cmocka_unit_test(serializer_defaults_and_nulls),
        cmocka_unit_test(serializer_escapes_hostile_strings),
        cmocka_unit_test(serializer_reals_and_depth),
        cmocka_unit_test(redaction_at_any_depth),
        cmocka_unit_test(key_evolution_vector),
        cmocka_unit_test(keygen_files_and_modes),
        cmocka_unit_test(config_keys_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
