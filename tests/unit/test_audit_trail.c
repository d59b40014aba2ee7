/* Audit trail writer: exact record bytes on disk, group commit under
 * concurrent sync submitters, epochs and forward security, rotation with
 * retention, and recovery after a crash (torn tail, crash between a seal
 * and the key state update). Every trail is checked with the chain checker
 * of audit_test_util.h, written from the format spec alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "audit_test_util.h"
#include "audit/audit_internal.h"

/* Search the trail struct's bytes for a key while the writer thread sleeps
 * in its wait (it holds no field then, and cannot wake up without the lock
 * this thread holds). */
static bool trail_memory_holds(talon_audit_trail *t, const unsigned char key[32])
{
    pthread_mutex_lock(&t->mutex);
    while (!t->writer_waiting) {
        pthread_mutex_unlock(&t->mutex);
        usleep(1000);
        pthread_mutex_lock(&t->mutex);
    }
    bool found = memmem(t, sizeof(*t), key, 32) != NULL;
    pthread_mutex_unlock(&t->mutex);
    return found;
}

static const char *type_at(const test_chain *c, size_t i)
{
    return json_string_value(json_object_get(json_array_get(c->records, i), "type"));
}

/* ---- exact bytes ---- */

static void record_bytes_on_disk(void **state)
{
    test_trail tt;
    talon_audit_options o;
    const char *roles[] = { "admin", NULL };
    json_t *data = json_pack("{s:s,s:i}", "password", "hunter2", "n", 7);
    talon_audit_event ev = {
        .type = "user_deleted", .outcome = TALON_AUDIT_SUCCESS, .actor_id = "alice",
        .actor_roles = roles, .source_ip = "10.1.2.3", .user_agent = "curl/7.88.1",
        .request_id = "4bf9", .method = "DELETE", .route = "/users/{id}", .path = "/users/bob",
        .target_type = "user", .target_id = "bob", .data = data,
    };
    char path[400], expect[2048], hex[65], prev_hex[65];
    unsigned char h[32], mac[32], prev[32];
    unsigned maclen;
    size_t len = 0;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_sync(t, &ev), 0);
    json_decref(data);
    talon_audit_close(t);

    snprintf(path, sizeof(path), "%s/audit-00000001.jsonl", tt.dir);
    char *file = test_read_file(path, &len);
    assert_non_null(file);
    char *line1 = file, *line2 = strchr(file, '\n') + 1, *end2 = strchr(line2, '\n');

    /* Line 1 (sys_startup, seq 1): prev is 64 zeros; h_1 chains into line 2. */
    assert_int_equal(strncmp(line1, "{\"v\":1,\"seq\":1,\"epoch\":0,\"time\":\"", 33), 0);
    assert_non_null(strstr(line1, "\"type\":\"sys_startup\""));
    assert_non_null(strstr(line1, "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\","));
    SHA256((unsigned char *)line1, (size_t)(line2 - 1 - line1) - 73, prev);
    test_hex(prev_hex, prev, 32);

    /* Line 2: every byte but the time is known. */
    char when[28];
    memcpy(when, line2 + 33, 27);
    when[27] = '\0';
    snprintf(expect, sizeof(expect),
             "{\"v\":1,\"seq\":2,\"epoch\":0,\"time\":\"%s\",\"type\":\"user_deleted\","
             "\"outcome\":\"success\",\"actor\":{\"id\":\"alice\",\"roles\":[\"admin\"]},"
             "\"source\":{\"ip\":\"10.1.2.3\",\"user_agent\":\"curl/7.88.1\"},"
             "\"request\":{\"id\":\"4bf9\",\"method\":\"DELETE\",\"route\":\"/users/{id}\","
             "\"path\":\"/users/bob\"},\"target\":{\"type\":\"user\",\"id\":\"bob\"},"
             "\"reason\":null,\"data\":{\"password\":\"[REDACTED]\",\"n\":7},"
             "\"host\":\"test-host\",\"trail\":\"%s\",\"prev\":\"%s\",",
             when, tt.trail_hex, prev_hex);
    size_t plen = strlen(expect);
    assert_int_equal((size_t)(end2 - line2), plen + 73);
    assert_memory_equal(line2, expect, plen);
    SHA256((unsigned char *)expect, plen, h);
    HMAC(EVP_sha256(), tt.key0, 32, h, 32, mac, &maclen);
    test_hex(hex, mac, 32);
    snprintf(expect, sizeof(expect), "\"mac\":\"%s\"}\n", hex);
    assert_memory_equal(line2 + plen, expect, 74);
    assert_null(strstr(file, "hunter2"));
    free(file);

    /* The whole trail: startup, record, shutdown, shutdown seal. */
    test_chain c;
    assert_chain_valid(&tt, &c);
    assert_int_equal(json_array_size(c.records), 4);
    assert_string_equal(type_at(&c, 2), "sys_shutdown");
    assert_string_equal(type_at(&c, 3), "audit_epoch_sealed");
    json_t *seal = json_object_get(json_array_get(c.records, 3), "data");
    assert_string_equal(json_string_value(json_object_get(seal, "cause")), "shutdown");
    assert_int_equal(json_integer_value(json_object_get(seal, "count")), 3);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

/* ---- group commit ---- */

#define THREADS 8
#define PER_THREAD 2000

typedef struct submitter {
    talon_audit_trail *trail;
    int id;
    atomic_int *calls;   /* calls per record */
    atomic_int *bad_status;
    int submit_errors;
} submitter;

typedef struct record_ctx {
    atomic_int *slot;
    atomic_int *bad_status;
    waiter *w;
} record_ctx;

static void counted_done(void *ctx, int status)
{
    record_ctx *rc = ctx;
    atomic_fetch_add(rc->slot, 1);
    if (status != 0)
        atomic_fetch_add(rc->bad_status, 1);
    waiter_done(rc->w, status);
}

static void *submit_thread(void *arg)
{
    submitter *s = arg;
    json_t *data = json_object();
    talon_audit_event ev = { .type = "data_read", .actor_id = "load", .data = data };

    json_object_set_new(data, "thread", json_integer(s->id));
    for (int i = 0; i < PER_THREAD; i++) {
        waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 };
        record_ctx ctx = { &s->calls[s->id * PER_THREAD + i], s->bad_status, &w };
        json_object_set_new(data, "i", json_integer(i));
        if (talon_audit_submit(s->trail, &ev, TALON_AUDIT_SYNC, counted_done, &ctx) != 0) {
            s->submit_errors++;
            continue;
        }
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
    }
    json_decref(data);
    return NULL;
}

static void concurrent_sync_submitters(void **state)
{
    test_trail tt;
    talon_audit_options o;
    pthread_t threads[THREADS];
    submitter subs[THREADS];
    static atomic_int calls[THREADS * PER_THREAD];
    atomic_int bad_status = 0;
    talon_audit_stats st;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    for (int i = 0; i < THREADS * PER_THREAD; i++)
        atomic_store(&calls[i], 0);
    for (int i = 0; i < THREADS; i++) {
        subs[i] = (submitter){ t, i, calls, &bad_status, 0 };
        assert_int_equal(pthread_create(&threads[i], NULL, submit_thread, &subs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(subs[i].submit_errors, 0);
    }
    talon_audit_get_stats(t, &st);
    talon_audit_close(t);

    for (int i = 0; i < THREADS * PER_THREAD; i++)
        if (atomic_load(&calls[i]) != 1)
            fail_msg("record %d: done called %d times", i, atomic_load(&calls[i]));
    assert_int_equal(atomic_load(&bad_status), 0);
    /* 1 sys_startup + the records. */
    assert_int_equal(st.records, 1 + THREADS * PER_THREAD);
    assert_true(st.fsyncs > 0);
    printf("# %d sync records from %d threads: %llu fdatasync calls, %.1f records each\n",
           THREADS * PER_THREAD, THREADS, (unsigned long long)st.fsyncs,
           (double)st.records / (double)st.fsyncs);
    assert_true(st.records > st.fsyncs); /* group commit: more than one record per fdatasync */

    test_chain c;
    assert_chain_valid(&tt, &c); /* seq total order, no gaps, every MAC */
    assert_int_equal(json_array_size(c.records), 1 + THREADS * PER_THREAD + 2);
    /* Each thread's records are in its own submission order. */
    int next[THREADS] = { 0 };
    for (size_t i = 0; i < json_array_size(c.records); i++) {
        json_t *r = json_array_get(c.records, i);
        if (strcmp(json_string_value(json_object_get(r, "type")), "data_read") != 0)
            continue;
        json_t *d = json_object_get(r, "data");
        int th = (int)json_integer_value(json_object_get(d, "thread"));
        assert_int_equal(json_integer_value(json_object_get(d, "i")), next[th]);
        next[th]++;
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(next[i], PER_THREAD);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

/* ---- epochs and keys ---- */

static void epoch_seal_forgets_old_key(void **state)
{
    test_trail tt;
    talon_audit_options o;
    unsigned char k1[32];
    char hex0[65], hex1[65];

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 3), 0);
    /* Before: the trail contains K_0. */
    assert_true(trail_memory_holds(t, tt.key0));

    assert_int_equal(talon_audit_seal(t), 0);
    talon_audit_stats st;
    talon_audit_get_stats(t, &st);
    assert_int_equal(st.epoch, 1);

    /* key.state contains K_1 and nothing of K_0. */
    memcpy(k1, tt.key0, 32);
    test_evolve(k1);
    test_hex(hex0, tt.key0, 32);
    test_hex(hex1, k1, 32);
    size_t len = 0;
    char *statefile = test_read_file(tt.state, &len);
    assert_int_equal(len, 156);
    assert_null(strstr(statefile, hex0));
    assert_null(memmem(statefile, len, tt.key0, 32));
    assert_non_null(strstr(statefile, hex1));
    assert_non_null(strstr(statefile, " epoch=00000000000000000001 "));
    free(statefile);
    /* The trail struct no longer contains K_0 (its HMAC states are freed). */
    assert_false(trail_memory_holds(t, tt.key0));
    assert_true(trail_memory_holds(t, k1));

    assert_int_equal(submit_n(t, 2), 0);
    talon_audit_close(t);

    test_chain c;
    assert_chain_valid(&tt, &c);
    json_t *seal = test_find_type(&c, "audit_epoch_sealed", 0);
    assert_non_null(seal);
    json_t *d = json_object_get(seal, "data");
    assert_int_equal(json_integer_value(json_object_get(d, "epoch")), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "first_seq")), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "last_seq")), 4);
    assert_int_equal(json_integer_value(json_object_get(d, "count")), 4);
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "interval");
    /* The record after the seal is in epoch 1 and MACed with K_1 (checked). */
    json_t *after = json_array_get(c.records, 5);
    assert_int_equal(json_integer_value(json_object_get(after, "epoch")), 1);
    test_chain_free(&c);

    /* K_1 used on an epoch-0 record fails: a later key cannot reseal. */
    char path[400];
    snprintf(path, sizeof(path), "%s/audit-00000001.jsonl", tt.dir);
    char *file = test_read_file(path, &len);
    char *nl = strchr(file, '\n');
    unsigned char h[32], mac[32];
    unsigned ml;
    char machex[65];
    SHA256((unsigned char *)file, (size_t)(nl - file) - 73, h);
    HMAC(EVP_sha256(), k1, 32, h, 32, mac, &ml);
    test_hex(machex, mac, 32);
    assert_int_not_equal(memcmp(nl - 66, machex, 64), 0);
    free(file);
    test_trail_remove(&tt);
}

static void epoch_ends_on_timer(void **state)
{
    test_trail tt;
    talon_audit_options o;
    talon_audit_stats st;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    o.epoch_seconds = 1;
    talon_audit_trail *t = test_trail_open(&o);
    /* No traffic: the writer's timed wait ends the epoch by itself. */
    for (int i = 0; i < 100; i++) {
        talon_audit_get_stats(t, &st);
        if (st.epoch >= 2)
            break;
        usleep(100 * 1000);
    }
    assert_true(st.epoch >= 2);
    talon_audit_close(t);

    test_chain c;
    assert_chain_valid(&tt, &c);
    json_t *seal = test_find_type(&c, "audit_epoch_sealed", 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(seal, "data"), "cause")),
                        "interval");
    /* The second seal closes an epoch with no records: count 0. */
    json_t *d = json_object_get(json_array_get(c.records, 2), "data");
    assert_string_equal(type_at(&c, 2), "audit_epoch_sealed");
    assert_int_equal(json_integer_value(json_object_get(d, "count")), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "first_seq")), 3);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

/* ---- rotation and retention ---- */

static void rotation_keeps_chain_and_modes(void **state)
{
    test_trail tt;
    talon_audit_options o;
    struct stat st;
    unsigned idx[16];
    mode_t old = umask(0077);

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    o.rotate_keep = 2;
    o.mode = 0640;
    talon_audit_trail *t = test_trail_open(&o);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(submit_n(t, 5), 0);
        assert_int_equal(talon_audit_rotate(t), 0);
    }
    assert_int_equal(submit_n(t, 5), 0);
    talon_audit_close(t);
    umask(old);

    /* Files 3 and 4 remain; 1 and 2 were removed by retention. */
    assert_int_equal(test_list_files(tt.dir, idx, 16), 2);
    assert_int_equal(idx[0], 3);
    assert_int_equal(idx[1], 4);
    for (int i = 0; i < 2; i++) {
        char path[400];
        snprintf(path, sizeof(path), "%s/audit-%08u.jsonl", tt.dir, idx[i]);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0640);
    }

    test_chain c;
    assert_chain_valid(&tt, &c); /* includes: file 4's first prev == h of file 3's last */
    size_t i;
    for (i = 0; i < json_array_size(c.records); i++)
        if (json_integer_value(json_array_get(c.files, i)) == 4)
            break;
    json_t *last3 = json_array_get(c.records, i - 1);
    assert_string_equal(json_string_value(json_object_get(last3, "type")), "audit_epoch_sealed");
    assert_string_equal(json_string_value(json_object_get(json_object_get(last3, "data"), "cause")),
                        "rotation");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(c.records, i), "epoch")),
                     json_integer_value(json_object_get(last3, "epoch")) + 1);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void rotation_by_size(void **state)
{
    test_trail tt;
    talon_audit_options o;
    unsigned idx[64];

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    o.rotate_size = 4096;
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 60), 0);
    talon_audit_close(t);

    unsigned n = test_list_files(tt.dir, idx, 64);
    assert_true(n >= 4);
    test_chain c;
    assert_chain_valid(&tt, &c);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(c.records, 0), "seq")), 1);
    test_chain_free(&c);

    /* Reopen continues in the last file with the next seq. */
    t = test_trail_open(&o);
    talon_audit_close(t);
    assert_chain_valid(&tt, &c);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

/* ---- crash recovery ---- */

#define STEP_SEAL (-1)
#define STEP_ROTATE (-2)
#define STEP_END 0

/* Submit n sync records whose data carries a filler of pad bytes. */
static int submit_padded(talon_audit_trail *t, int n, size_t pad)
{
    char *filler = malloc(pad + 1);
    memset(filler, 'x', pad);
    filler[pad] = '\0';
    json_t *data = json_pack("{s:s}", "filler", filler);
    talon_audit_event ev = { .type = "note_created", .actor_id = "alice", .data = data };
    int rc = 0;

    for (int i = 0; i < n && rc == 0; i++)
        rc = submit_sync(t, &ev);
    json_decref(data);
    free(filler);
    return rc;
}

/* Bytes the file system allocated to trail file index, past its size. */
static long long blocks_beyond_size(const test_trail *tt, unsigned index)
{
    char path[400];
    struct stat st;

    snprintf(path, sizeof(path), "%s/audit-%08u.jsonl", tt->dir, index);
    assert_int_equal(stat(path, &st), 0);
    return (long long)st.st_blocks * 512 - (long long)st.st_size;
}

/* The active file gets its blocks allocated ahead of its records, and a
 * file that is rotated away or closed frees the unused ones. */
static void space_reserved_then_freed(void **state)
{
    test_trail tt;
    talon_audit_options o;
    unsigned idx[64];

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    o.rotate_size = 512 * 1024;
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 10), 0);
    assert_int_equal(test_list_files(tt.dir, idx, 64), 1);
    assert_true(blocks_beyond_size(&tt, idx[0]) >= 256 * 1024);

    /* About 600 KB of records: one rotation. */
    assert_int_equal(submit_padded(t, 150, 4000), 0);
    unsigned n = test_list_files(tt.dir, idx, 64);
    assert_int_equal(n, 2);
    assert_true(blocks_beyond_size(&tt, idx[0]) < 8192);
    assert_true(blocks_beyond_size(&tt, idx[1]) >= 64 * 1024);

    talon_audit_close(t);
    assert_true(blocks_beyond_size(&tt, idx[1]) < 8192);
    test_chain c;
    assert_chain_valid(&tt, &c);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

/* The steps of crash_after_steps(): a count of records (each padded with
 * pad bytes), STEP_SEAL or STEP_ROTATE, up to STEP_END. */
typedef struct step_plan {
    const int *steps;
    size_t pad;
} step_plan;

static int run_steps(talon_audit_trail *t, const void *arg)
{
    const step_plan *plan = arg;

    for (const int *s = plan->steps; *s != STEP_END; s++) {
        int rc = *s == STEP_SEAL     ? talon_audit_seal(t)
                 : *s == STEP_ROTATE ? talon_audit_rotate(t)
                                     : submit_padded(t, *s, plan->pad);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void crash_after_steps(const test_trail *tt, unsigned rotate_keep, size_t pad,
                              const int *steps)
{
    talon_audit_options o;
    step_plan plan = { .steps = steps, .pad = pad };

    test_trail_options(tt, &o);
    o.rotate_keep = rotate_keep;
    test_crash_after(&o, run_steps, &plan);
}

static void crash_after(const test_trail *tt, int n, bool seal_before_crash)
{
    int steps[] = { n, seal_before_crash ? STEP_SEAL : STEP_END, STEP_END };
    crash_after_steps(tt, 0, 0, steps);
}

static void recovery_from_torn_tail(void **state)
{
    test_trail tt;
    talon_audit_options o;
    char path[400];
    static const char torn[] = "{\"v\":1,\"seq\":7,\"epoch\":0,\"time\":\"2026-";

    test_trail_make(&tt);
    crash_after(&tt, 5, false);
    snprintf(path, sizeof(path), "%s/audit-00000001.jsonl", tt.dir);
    size_t before;
    free(test_read_file(path, &before));
    FILE *f = fopen(path, "ab");
    fwrite(torn, 1, sizeof(torn) - 1, f);
    fclose(f);

    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 2), 0);
    talon_audit_close(t);

    test_chain c;
    assert_chain_valid(&tt, &c);
    /* startup, 5 records, then audit_recovered continues at seq 7. */
    json_t *rec = json_array_get(c.records, 6);
    assert_string_equal(json_string_value(json_object_get(rec, "type")), "audit_recovered");
    assert_int_equal(json_integer_value(json_object_get(rec, "seq")), 7);
    json_t *d = json_object_get(rec, "data");
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "torn");
    assert_int_equal(json_integer_value(json_object_get(d, "torn_bytes")), sizeof(torn) - 1);
    assert_int_equal(json_integer_value(json_object_get(d, "last_seq")), 6);
    assert_null(json_object_get(d, "modified_lines"));
    const char *torn_file = json_string_value(json_object_get(d, "torn_file"));
    assert_non_null(torn_file);
    assert_int_equal(strncmp(torn_file, "audit-00000001.jsonl.torn-", 26), 0);
    assert_string_equal(type_at(&c, 7), "sys_startup");

    /* The torn bytes were moved aside intact, mode 0600. */
    char tpath[500];
    struct stat st;
    size_t tlen;
    snprintf(tpath, sizeof(tpath), "%s/%s", tt.dir, torn_file);
    char *moved = test_read_file(tpath, &tlen);
    assert_non_null(moved);
    assert_int_equal(tlen, sizeof(torn) - 1);
    assert_memory_equal(moved, torn, tlen);
    free(moved);
    assert_int_equal(stat(tpath, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

/* Overwrite the first "alice" of the last line of file 1 with replacement
 * (up to 5 bytes), so its MAC fails. Stores the line's offset and length. */
static void damage_last_line(const test_trail *tt, const char *replacement, size_t replacement_len,
                             size_t *line_offset, size_t *line_len)
{
    char path[400];
    size_t len = 0;

    snprintf(path, sizeof(path), "%s/audit-00000001.jsonl", tt->dir);
    char *file = test_read_file(path, &len);
    char *last = file + len - 2;
    while (last > file && last[-1] != '\n')
        last--;
    char *actor = strstr(last, "alice");
    assert_non_null(actor);
    memcpy(actor, replacement, replacement_len);
    FILE *f = fopen(path, "wb");
    fwrite(file, 1, len, f);
    fclose(f);
    *line_offset = (size_t)(last - file);
    *line_len = (size_t)(file + len - last);
    free(file);
}

static void recovery_from_bad_mac_line(void **state)
{
    test_trail tt;
    talon_audit_options o;
    size_t bad_offset, bad_len;

    test_trail_make(&tt);
    crash_after(&tt, 3, false);
    /* Flip one byte inside the last complete line: its MAC fails. The sync
     * ring contains the original line but does not overwrite a changed byte. */
    damage_last_line(&tt, "A", 1, &bad_offset, &bad_len);

    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    talon_audit_close(t);
    test_chain c;
    assert_chain_valid(&tt, &c);
    json_t *rec = test_find_type(&c, "audit_recovered", 0);
    assert_non_null(rec);
    json_t *d = json_object_get(rec, "data");
    /* A complete line that parses cannot come from a crash: it was edited. */
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "modified");
    assert_int_equal(json_integer_value(json_object_get(d, "torn_bytes")), bad_len);
    assert_int_equal(json_integer_value(json_object_get(d, "last_seq")), 3);
    assert_int_equal(json_integer_value(json_object_get(d, "modified_lines")), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "first_modified_seq")), 4);
    assert_int_equal(json_integer_value(json_object_get(d, "first_modified_offset")), bad_offset);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void recovery_zeroed_line_is_torn(void **state)
{
    test_trail tt;
    talon_audit_options o;
    size_t offset, len;

    test_trail_make(&tt);
    crash_after(&tt, 3, false);
    /* Zero bytes inside the last line, as a page never written before a
     * crash leaves them: the MAC fails, but the line does not parse. */
    damage_last_line(&tt, "\0\0\0\0\0", 5, &offset, &len);
    /* Without the sync ring, which would write the line back (see
     * test_audit_ring.c). */
    char ring[400];
    snprintf(ring, sizeof(ring), "%s/audit.ring", tt.dir);
    assert_int_equal(unlink(ring), 0);

    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    talon_audit_close(t);
    test_chain c;
    assert_chain_valid(&tt, &c);
    json_t *d = json_object_get(test_find_type(&c, "audit_recovered", 0), "data");
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "torn");
    assert_null(json_object_get(d, "modified_lines"));
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void restart_after_clean_stop(void **state)
{
    test_trail tt;
    talon_audit_options o;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 2), 0);
    talon_audit_close(t);
    t = test_trail_open(&o);
    talon_audit_close(t);

    /* The first run ended with its shutdown seal: no recovery to record. */
    test_chain c;
    assert_chain_valid(&tt, &c);
    assert_null(test_find_type(&c, "audit_recovered", 0));
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void recovery_between_seal_and_state(void **state)
{
    test_trail tt;
    talon_audit_options o;
    unsigned char k1[32];
    char hex1[65];
    size_t len = 0;

    test_trail_make(&tt);
    char *state0 = test_read_file(tt.state, &len);
    assert_int_equal(len, 156);
    /* The child seals epoch 0 (key.state moves to epoch 1) and is killed. */
    crash_after(&tt, 3, true);
    /* Put back the epoch-0 state: as if the crash fell before step 2. */
    FILE *f = fopen(tt.state, "r+b");
    fwrite(state0, 1, len, f);
    fclose(f);
    free(state0);

    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 1), 0);
    talon_audit_stats st;
    talon_audit_get_stats(t, &st);
    assert_int_equal(st.epoch, 1);
    talon_audit_close(t);

    /* Recovery advanced key.state past the sealed epoch... */
    memcpy(k1, tt.key0, 32);
    test_evolve(k1);
    test_evolve(k1); /* the shutdown seal advanced it once more */
    test_hex(hex1, k1, 32);
    char *statefile = test_read_file(tt.state, &len);
    assert_non_null(strstr(statefile, hex1));
    assert_non_null(strstr(statefile, " epoch=00000000000000000002 "));
    free(statefile);

    /* ...and the chain continues in epoch 1 right after the seal. */
    test_chain c;
    assert_chain_valid(&tt, &c);
    assert_string_equal(type_at(&c, 4), "audit_epoch_sealed");
    /* Nothing was torn, but the run ended without its shutdown seal. */
    json_t *next = json_array_get(c.records, 5);
    assert_string_equal(json_string_value(json_object_get(next, "type")), "audit_recovered");
    assert_int_equal(json_integer_value(json_object_get(next, "epoch")), 1);
    json_t *d = json_object_get(next, "data");
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "unclean_shutdown");
    assert_int_equal(json_integer_value(json_object_get(d, "torn_bytes")), 0);
    assert_true(json_is_null(json_object_get(d, "torn_file")));
    assert_int_equal(json_integer_value(json_object_get(d, "last_seq")), 5);
    assert_string_equal(type_at(&c, 6), "sys_startup");
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void recovery_after_seal_and_state(void **state)
{
    test_trail tt;
    talon_audit_options o;

    test_trail_make(&tt);
    crash_after(&tt, 2, true); /* both steps done, then killed */
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 1), 0);
    talon_audit_close(t);
    test_chain c;
    assert_chain_valid(&tt, &c);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void recovery_finds_epoch_start(void **state)
{
    test_trail tt;
    talon_audit_options o;
    /* Three epochs in one file of about 600 KB, larger than the recovery
     * window, so the search for the current epoch's first record reads
     * the file at several places. */
    int steps[] = { 200, STEP_SEAL, 300, STEP_SEAL, 50, STEP_END };

    test_trail_make(&tt);
    crash_after_steps(&tt, 0, 1000, steps);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    talon_audit_close(t);

    /* The shutdown seal counts the epoch from its first record, which the
     * crashed run wrote: startup (1), 200, seal (202), 300, seal (503). */
    test_chain c;
    assert_chain_valid(&tt, &c);
    size_t n = json_array_size(c.records);
    json_t *seal = json_array_get(c.records, n - 1);
    json_t *d = json_object_get(seal, "data");
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "shutdown");
    assert_int_equal(json_integer_value(json_object_get(d, "epoch")), 2);
    assert_int_equal(json_integer_value(json_object_get(d, "first_seq")), 504);
    /* + audit_recovered (unclean shutdown), startup, shutdown */
    assert_int_equal(json_integer_value(json_object_get(d, "count")), 50 + 3);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void recovery_after_rotation_crash(void **state)
{
    test_trail tt;
    talon_audit_options o;
    unsigned idx[8];
    /* Killed right after a rotation: the new file is still empty. */
    int steps[] = { 3, STEP_ROTATE, STEP_END };

    test_trail_make(&tt);
    crash_after_steps(&tt, 1, 0, steps);
    assert_int_equal(test_list_files(tt.dir, idx, 8), 2); /* retention waited */

    test_trail_options(&tt, &o);
    o.rotate_keep = 1;
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 1), 0);
    talon_audit_close(t);

    /* The chain was continued from file 1's seal; then retention removed it. */
    assert_int_equal(test_list_files(tt.dir, idx, 8), 1);
    assert_int_equal(idx[0], 2);
    test_chain c;
    assert_chain_valid(&tt, &c); /* partial: starts after the removed file */
    json_t *first = json_array_get(c.records, 0);
    assert_string_equal(json_string_value(json_object_get(first, "type")), "audit_recovered");
    assert_int_equal(json_integer_value(json_object_get(first, "seq")), 6);
    assert_int_equal(json_integer_value(json_object_get(first, "epoch")), 1);
    json_t *d = json_object_get(first, "data");
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "unclean_shutdown");
    assert_int_equal(json_integer_value(json_object_get(d, "last_seq")), 5);
    assert_string_equal(type_at(&c, 1), "sys_startup");
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void rotation_by_interval(void **state)
{
    test_trail tt;
    talon_audit_options o;
    unsigned idx[8];
    unsigned n = 0;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    o.rotate_interval_s = 1;
    talon_audit_trail *t = test_trail_open(&o);
    /* The writer rotates on its own once the interval is over. */
    for (int i = 0; i < 100 && n < 2; i++) {
        usleep(100 * 1000);
        n = test_list_files(tt.dir, idx, 8);
    }
    assert_true(n >= 2);
    talon_audit_close(t);
    test_chain c;
    assert_chain_valid(&tt, &c);
    json_t *seal = test_find_type(&c, "audit_epoch_sealed", 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(seal, "data"), "cause")),
                        "rotation");
    test_chain_free(&c);
    test_trail_remove(&tt);
}

/* ---- kill -9 under sync load ---- */

#define KILL_THREADS 4

typedef struct ack_writer {
    talon_audit_trail *trail;
    int id;
    int pipe_fd;
} ack_writer;

static void *ack_thread(void *arg)
{
    ack_writer *a = arg;
    json_t *data = json_object();
    talon_audit_event ev = { .type = "note_created", .actor_id = "load", .data = data };

    json_object_set_new(data, "t", json_integer(a->id));
    for (int i = 0; i < 100000; i++) {
        json_object_set_new(data, "i", json_integer(i));
        if (submit_sync(a->trail, &ev) != 0)
            _exit(3);
        int ack[2] = { a->id, i }; /* acknowledged: the response would be sent now */
        if (write(a->pipe_fd, ack, sizeof(ack)) != sizeof(ack))
            _exit(4);
    }
    return NULL;
}

static void acked_records_survive_kill(void **state)
{
    test_trail tt;
    talon_audit_options o;
    int fds[2];
    static unsigned char acked[KILL_THREADS][100000];
    long nacked = 0;
    int status;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        talon_audit_trail *t = NULL;
        char err[512];
        pthread_t th[KILL_THREADS];
        ack_writer aw[KILL_THREADS];
        close(fds[0]);
        if (talon_audit_open(&t, &o, err, sizeof(err)) != 0)
            _exit(2);
        for (int i = 0; i < KILL_THREADS; i++) {
            aw[i] = (ack_writer){ t, i, fds[1] };
            pthread_create(&th[i], NULL, ack_thread, &aw[i]);
        }
        for (int i = 0; i < KILL_THREADS; i++)
            pthread_join(th[i], NULL);
        _exit(0);
    }
    close(fds[1]);
    memset(acked, 0, sizeof(acked));
    int ack[2];
    while (nacked < 400 && read(fds[0], ack, sizeof(ack)) == sizeof(ack)) {
        acked[ack[0]][ack[1]] = 1;
        nacked++;
    }
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    /* Acks sent before the kill are acknowledged too. */
    while (read(fds[0], ack, sizeof(ack)) == sizeof(ack)) {
        acked[ack[0]][ack[1]] = 1;
        nacked++;
    }
    close(fds[0]);
    assert_true(nacked >= 400);

    talon_audit_trail *t = test_trail_open(&o);
    talon_audit_close(t);
    test_chain c;
    assert_chain_valid(&tt, &c);
    for (size_t i = 0; i < json_array_size(c.records); i++) {
        json_t *d = json_object_get(json_array_get(c.records, i), "data");
        json_t *th = json_object_get(d, "t"), *n = json_object_get(d, "i");
        if (th != NULL && n != NULL)
            acked[json_integer_value(th)][json_integer_value(n)] = 0;
    }
    for (int th = 0; th < KILL_THREADS; th++)
        for (int i = 0; i < 100000; i++)
            if (acked[th][i])
                fail_msg("acknowledged record thread %d #%d is missing after kill -9", th, i);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void open_errors_are_clear(void **state)
{
    test_trail tt;
    talon_audit_options o;
    talon_audit_trail *t = NULL;
    char err[512];
    char other_state[400], other_key[400];

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    o.state_file = "no-such-dir/key.state";
    assert_int_equal(talon_audit_open(&t, &o, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "talon audit keygen"));
    assert_null(t);

    /* A state file of another trail is not accepted for this directory. */
    test_trail_options(&tt, &o);
    t = test_trail_open(&o);
    talon_audit_close(t);
    snprintf(other_state, sizeof(other_state), "%s/other.state", tt.root);
    snprintf(other_key, sizeof(other_key), "%s/other.key", tt.root);
    assert_int_equal(talon_audit_keygen(other_key, other_state, err, sizeof(err)), 0);
    o.state_file = other_state;
    assert_int_equal(talon_audit_open(&t, &o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "trail"));
    assert_null(t);

    /* One writer per trail. */
    o.state_file = tt.state;
    talon_audit_trail *first = test_trail_open(&o);
    assert_int_equal(talon_audit_open(&t, &o, err, sizeof(err)), -EBUSY);
    assert_non_null(strstr(err, "in use"));
    assert_null(t);
    talon_audit_close(first);

    o.mode = 0644;
    assert_int_equal(talon_audit_open(&t, &o, err, sizeof(err)), -EINVAL);
    test_trail_remove(&tt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(record_bytes_on_disk),
        cmocka_unit_test(concurrent_sync_submitters),
        cmocka_unit_test(epoch_seal_forgets_old_key),
        cmocka_unit_test(epoch_ends_on_timer),
        cmocka_unit_test(rotation_keeps_chain_and_modes),
        cmocka_unit_test(rotation_by_size),
        cmocka_unit_test(space_reserved_then_freed),
        cmocka_unit_test(recovery_from_torn_tail),
        cmocka_unit_test(recovery_from_bad_mac_line),
        cmocka_unit_test(recovery_zeroed_line_is_torn),
        cmocka_unit_test(restart_after_clean_stop),
        cmocka_unit_test(recovery_between_seal_and_state),
        cmocka_unit_test(recovery_after_seal_and_state),
        cmocka_unit_test(recovery_finds_epoch_start),
        cmocka_unit_test(recovery_after_rotation_crash),
        cmocka_unit_test(rotation_by_interval),
        cmocka_unit_test(acked_records_survive_kill),
        cmocka_unit_test(open_errors_are_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
