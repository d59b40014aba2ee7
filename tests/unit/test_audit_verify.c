/* Unit tests of talon_audit_verify on trails the library's writer made:
 * thread counts, the start epoch limit, and records that claim absurd
 * epochs, which must fail at once instead of costing one hash per epoch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <time.h>

#include "audit_test_util.h"

/* Fail when a verify that must not derive keys takes this long. Deriving
 * the keys of the epochs these tests use would take days, so such a bug
 * shows as ctest's timeout. */
#define FAST_SECONDS 10.0

typedef struct fixture {
    test_trail tt;
    char *trail;          /* the bytes of the trail's only file */
    size_t len;
    char **lines;         /* pointers into trail, each line without its '\n' */
    size_t nlines;
    char cut[320];        /* a file that tests write edited trails to */
} fixture;

static void submit(talon_audit_trail *t, const char *type)
{
    talon_audit_event ev = { .type = type, .outcome = TALON_AUDIT_SUCCESS, .actor_id = "alice" };
    assert_int_equal(talon_audit_submit(t, &ev, TALON_AUDIT_SYNC, NULL, NULL), 0);
}

/* A trail of epochs 0 to 3: two records and a seal in each of the first
 * three, then the shutdown records. */
static int make_trail(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    test_trail_make(&fx->tt);
    talon_audit_options o;
    test_trail_options(&fx->tt, &o);
    o.epoch_seconds = 86400;
    talon_audit_trail *t = test_trail_open(&o);
    for (int epoch = 0; epoch < 3; epoch++) {
        submit(t, "user_created");
        submit(t, "user_deleted");
        assert_int_equal(talon_audit_seal(t), 0);
    }
    talon_audit_close(t);

    char path[400];
    snprintf(path, sizeof path, "%s/audit-00000001.jsonl", fx->tt.dir);
    fx->trail = test_read_file(path, &fx->len);
    assert_non_null(fx->trail);
    for (size_t i = 0; i < fx->len; i++)
        fx->nlines += fx->trail[i] == '\n';
    fx->lines = calloc(fx->nlines, sizeof *fx->lines);
    assert_non_null(fx->lines);
    char *p = fx->trail;
    for (size_t i = 0; i < fx->nlines; i++) {
        char *nl = strchr(p, '\n');
        *nl = '\0';
        fx->lines[i] = p;
        p = nl + 1;
    }
    snprintf(fx->cut, sizeof fx->cut, "%s/cut.jsonl", fx->tt.root);
    *state = fx;
    return 0;
}

static int remove_trail(void **state)
{
    fixture *fx = *state;
    test_trail_remove(&fx->tt);
    free(fx->lines);
    free(fx->trail);
    free(fx);
    return 0;
}

/* Write lines from..nlines - 1 to fx->cut, with line replace_at (when it
 * is in range) replaced by replacement. */
static void write_cut(const fixture *fx, size_t from, size_t replace_at, const char *replacement)
{
    FILE *f = fopen(fx->cut, "w");
    assert_non_null(f);
    for (size_t i = from; i < fx->nlines; i++)
        fprintf(f, "%s\n", i == replace_at ? replacement : fx->lines[i]);
    assert_int_equal(fclose(f), 0);
}

/* Line i with its head {"v":1,"seq":N,"epoch":E, replaced by one with seq
 * and epoch; the caller frees it. */
static char *with_head(const fixture *fx, size_t i, unsigned long long seq, unsigned long long epoch)
{
    const char *rest = strstr(fx->lines[i], ",\"time\":");
    assert_non_null(rest);
    char *line = NULL;
    assert_true(asprintf(&line, "{\"v\":1,\"seq\":%llu,\"epoch\":%llu%s", seq, epoch, rest) > 0);
    return line;
}

/* The first line of epoch e: the one after e seals. */
static size_t first_of_epoch(const fixture *fx, unsigned e)
{
    size_t i = 0;
    for (unsigned seals = 0; seals < e; i++)
        seals += strstr(fx->lines[i], "\"type\":\"audit_epoch_sealed\"") != NULL;
    return i;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Verify path with the trail's key; returns the verdict and fills res. */
static talon_audit_verdict verify_path(const fixture *fx, const char *path, bool partial,
                                       uint64_t max_start_epoch, unsigned threads,
                                       talon_audit_verify_result *res)
{
    const char *paths[] = { path };
    talon_audit_reader *rd = NULL;
    char err[512] = "";
    if (talon_audit_reader_open(&rd, paths, 1, err, sizeof err) != 0)
        fail_msg("cannot open %s: %s", path, err);
    talon_audit_verify_options vo;
    talon_audit_verify_options_init(&vo);
    vo.key_path = fx->tt.keyfile;
    vo.partial = partial;
    vo.max_start_epoch = max_start_epoch;
    vo.threads = threads;
    double start = now_seconds();
    int rc = talon_audit_verify(rd, &vo, res, err, sizeof err);
    double took = now_seconds() - start;
    talon_audit_reader_close(rd);
    if (rc != 0)
        fail_msg("verify of %s could not run: %s", path, err);
    if (took > FAST_SECONDS)
        fail_msg("verify of %s took %.1f s: %s", path, took, res->detail);
    return res->verdict;
}

static void verify_intact_with_threads(void **state)
{
    fixture *fx = *state;
    char path[400];
    snprintf(path, sizeof path, "%s/audit-00000001.jsonl", fx->tt.dir);
    talon_audit_verify_result res;
    for (unsigned threads = 1; threads <= 3; threads++) {
        if (verify_path(fx, path, false, 0, threads, &res) != TALON_AUDIT_INTACT)
            fail_msg("--threads %u: %s: %s", threads, talon_audit_verdict_name(res.verdict), res.detail);
        assert_int_equal(res.records, fx->nlines);
        assert_int_equal(res.last_epoch, 3);
    }
}

static void verify_start_epoch_limit(void **state)
{
    fixture *fx = *state;
    size_t from = first_of_epoch(fx, 2);
    write_cut(fx, from, SIZE_MAX, NULL);
    talon_audit_verify_result res;

    assert_int_equal(verify_path(fx, fx->cut, true, 0, 1, &res), TALON_AUDIT_INTACT);
    assert_int_equal(res.first_epoch, 2);
    assert_int_equal(verify_path(fx, fx->cut, true, 2, 1, &res), TALON_AUDIT_INTACT);

    assert_int_equal(verify_path(fx, fx->cut, true, 1, 1, &res), TALON_AUDIT_INCOMPLETE);
    assert_int_equal(res.line, 1);
    assert_non_null(strstr(res.detail, "trail starts at epoch 2, past the limit of 1"));
}

/* A first record whose epoch is not below its seq fails as modified. */
static void verify_first_epoch_not_below_seq(void **state)
{
    fixture *fx = *state;
    size_t from = first_of_epoch(fx, 1);
    char *line = with_head(fx, from, from + 1, 99999999999999ULL);
    write_cut(fx, from, from, line);
    free(line);
    talon_audit_verify_result res;

    assert_int_equal(verify_path(fx, fx->cut, true, 0, 1, &res), TALON_AUDIT_MODIFIED);
    assert_int_equal(res.line, 1);
    assert_non_null(strstr(res.detail, "epoch 99999999999999 is not below seq"));
}

/* A first record at a huge epoch below its huge seq: strict verify fails it
 * for its seq, --partial for the start epoch limit, neither derives keys. */
static void verify_huge_start_epoch_fails_fast(void **state)
{
    fixture *fx = *state;
    char *line = with_head(fx, 0, 99999999999999999ULL, 9999999999999999ULL);
    write_cut(fx, 0, 0, line);
    free(line);
    talon_audit_verify_result res;

    assert_int_equal(verify_path(fx, fx->cut, false, 0, 1, &res), TALON_AUDIT_INCOMPLETE);
    assert_non_null(strstr(res.detail, "trail starts at seq 99999999999999999"));
    assert_int_equal(verify_path(fx, fx->cut, true, 1000, 2, &res), TALON_AUDIT_INCOMPLETE);
    assert_non_null(strstr(res.detail, "past the limit of 1000"));
}

/* A record in the middle claiming a huge epoch fails as modified without
 * deriving that epoch's key for a "wrong epoch key" diagnosis. */
static void verify_huge_claimed_epoch_fails_fast(void **state)
{
    fixture *fx = *state;
    size_t at = first_of_epoch(fx, 1) + 1;
    char *line = with_head(fx, at, at + 1, 1000000000000000ULL);
    write_cut(fx, 0, at, line);
    free(line);
    talon_audit_verify_result res;

    assert_int_equal(verify_path(fx, fx->cut, false, 0, 1, &res), TALON_AUDIT_MODIFIED);
    assert_int_equal(res.line, at + 1);
    assert_non_null(strstr(res.detail, "epoch 1000000000000000, expected 1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(verify_intact_with_threads, make_trail, remove_trail),
        cmocka_unit_test_setup_teardown(verify_start_epoch_limit, make_trail, remove_trail),
        cmocka_unit_test_setup_teardown(verify_first_epoch_not_below_seq, make_trail, remove_trail),
        cmocka_unit_test_setup_teardown(verify_huge_start_epoch_fails_fast, make_trail, remove_trail),
        cmocka_unit_test_setup_teardown(verify_huge_claimed_epoch_fails_fast, make_trail, remove_trail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
