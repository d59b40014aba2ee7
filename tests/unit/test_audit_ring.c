/* The sync ring (src/audit/ring.c). Records acknowledged through it come
 * back after a power loss, and zeros left in the file are written over. A
 * torn entry is not applied. Wraps and rotations keep every record. A
 * clean stop leaves nothing to apply, and a ring removed or moved under
 * the server is no longer used.
 *
 * A power loss is simulated: the writer is killed, then the trail file is
 * cut back to where its current ring generation starts, which is the most a
 * machine stop can take from it (everything before was fdatasync'ed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "audit_test_util.h"
#include "audit/audit_internal.h"

#define HEAD_LEN 32

typedef struct entry_head {
    uint32_t magic;
    uint32_t len;
    uint64_t generation;
    uint64_t offset;
    uint32_t file_index;
    uint32_t crc;
} entry_head;

/* What a crashed writer did: n sync records, then, when rotate is set, a
 * rotation and after more records. */
typedef struct ring_plan {
    int n;
    bool rotate;
    int after;
} ring_plan;

static int run_ring_plan(talon_audit_trail *t, const void *arg)
{
    const ring_plan *plan = arg;

    if (submit_n(t, plan->n) != 0)
        return -1;
    if (plan->rotate && (talon_audit_rotate(t) != 0 || submit_n(t, plan->after) != 0))
        return -1;
    return 0;
}

/* Run plan in a writer with a ring of ring_size bytes, then kill it with
 * the ring as it is. */
static void crash_writer(const test_trail *tt, uint64_t ring_size, int n, bool rotate, int after)
{
    talon_audit_options o;
    ring_plan plan = { .n = n, .rotate = rotate, .after = after };

    test_trail_options(tt, &o);
    o.sync_ring_size = ring_size;
    test_crash_after(&o, run_ring_plan, &plan);
}

static char *read_ring(const test_trail *tt, size_t *len)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/audit.ring", tt->dir);
    char *ring = test_read_file(path, len);
    assert_non_null(ring);
    return ring;
}

static entry_head head_at(const char *ring, size_t pos)
{
    entry_head h;
    memcpy(&h, ring + pos, sizeof(h));
    return h;
}

/* Cut trail file index back to the offset of the ring's first entry, as a
 * power loss could. Returns the file's length before the cut. */
static size_t lose_unsynced_tail(const test_trail *tt, unsigned index)
{
    char path[400];
    size_t ring_len, before;
    char *ring = read_ring(tt, &ring_len);
    entry_head first = head_at(ring, 0);

    assert_int_equal(first.len > 0, 1);
    assert_int_equal(first.file_index, index);
    snprintf(path, sizeof(path), "%s/audit-%08u.jsonl", tt->dir, index);
    free(test_read_file(path, &before));
    assert_true(first.offset < before);
    assert_int_equal(truncate(path, (off_t)first.offset), 0);
    free(ring);
    return before;
}

static void reopen_and_close(const test_trail *tt, uint64_t ring_size)
{
    talon_audit_options o;
    test_trail_options(tt, &o);
    o.sync_ring_size = ring_size;
    talon_audit_close(test_trail_open(&o));
}

static void power_loss_restored_from_ring(void **state)
{
    test_trail tt;
    char path[400];
    size_t before, after;
    char *old, *now;

    test_trail_make(&tt);
    crash_writer(&tt, 1 << 20, 50, false, 0);
    snprintf(path, sizeof(path), "%s/audit-00000001.jsonl", tt.dir);
    old = test_read_file(path, &before);
    assert_int_equal(lose_unsynced_tail(&tt, 1), before);

    reopen_and_close(&tt, 1 << 20);
    now = test_read_file(path, &after);
    /* The file starts with exactly the bytes the killed writer wrote. */
    assert_true(after > before);
    assert_memory_equal(now, old, before);
    free(old);
    free(now);

    test_chain c;
    assert_chain_valid(&tt, &c);
    assert_int_equal(test_count_type(&c, "note_created"), 50);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void torn_entry_not_applied(void **state)
{
    test_trail tt;
    size_t ring_len, pos = 0, last = 0, last_records = 0;
    char path[400];

    test_trail_make(&tt);
    crash_writer(&tt, 1 << 20, 20, false, 0);
    char *ring = read_ring(&tt, &ring_len);
    entry_head first = head_at(ring, 0);
    for (;;) {
        entry_head h = head_at(ring, pos);
        if (h.magic != first.magic || h.generation != first.generation)
            break;
        last = pos;
        pos += HEAD_LEN + h.len;
    }
    entry_head h = head_at(ring, last);
    assert_true(last > 0);
    for (uint32_t i = 0; i < h.len; i++)
        last_records += ring[last + HEAD_LEN + i] == '\n';
    assert_true(last_records > 0);

    /* A write of the last entry cut short by the power loss. */
    ring[last + HEAD_LEN + h.len / 2] ^= 0x20;
    snprintf(path, sizeof(path), "%s/audit.ring", tt.dir);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fwrite(ring, 1, ring_len, f), ring_len);
    fclose(f);
    free(ring);
    lose_unsynced_tail(&tt, 1);

    reopen_and_close(&tt, 1 << 20);
    test_chain c;
    assert_chain_valid(&tt, &c);
    assert_int_equal(test_count_type(&c, "note_created"), 20 - last_records);
    assert_int_equal(test_count_type(&c, "audit_recovered"), 1);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void zeroed_tail_written_back(void **state)
{
    test_trail tt;
    char path[400];
    size_t len = 0;

    test_trail_make(&tt);
    crash_writer(&tt, 1 << 20, 10, false, 0);
    /* Blocks that a power loss left unwritten read as zeros. */
    snprintf(path, sizeof(path), "%s/audit-00000001.jsonl", tt.dir);
    char *file = test_read_file(path, &len);
    assert_true(len > 600);
    memset(file + len - 600, 0, 500);
    FILE *f = fopen(path, "wb");
    assert_int_equal(fwrite(file, 1, len, f), len);
    fclose(f);
    free(file);

    reopen_and_close(&tt, 1 << 20);
    test_chain c;
    assert_chain_valid(&tt, &c);
    assert_int_equal(test_count_type(&c, "note_created"), 10);
    json_t *d = json_object_get(test_find_type(&c, "audit_recovered", 0), "data");
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "unclean_shutdown");
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void wraps_keep_every_record(void **state)
{
    test_trail tt;
    size_t ring_len;

    test_trail_make(&tt);
    /* One record per entry: 64 KiB fills up several times. */
    crash_writer(&tt, 64 * 1024, 600, false, 0);
    char *ring = read_ring(&tt, &ring_len);
    assert_int_equal(ring_len, 64 * 1024);
    assert_true(head_at(ring, 0).offset > 0); /* a wrap reset the ring */
    free(ring);
    lose_unsynced_tail(&tt, 1);

    reopen_and_close(&tt, 64 * 1024);
    test_chain c;
    assert_chain_valid(&tt, &c);
    assert_int_equal(test_count_type(&c, "note_created"), 600);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void rotation_keeps_every_record(void **state)
{
    test_trail tt;

    test_trail_make(&tt);
    crash_writer(&tt, 1 << 20, 10, true, 10);
    lose_unsynced_tail(&tt, 2); /* the first entry belongs to the new file */

    reopen_and_close(&tt, 1 << 20);
    test_chain c;
    assert_chain_valid(&tt, &c);
    assert_int_equal(test_count_type(&c, "note_created"), 20);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void ring_off_applies_then_removes(void **state)
{
    test_trail tt;
    char path[400];
    struct stat st;

    test_trail_make(&tt);
    crash_writer(&tt, 1 << 20, 30, false, 0);
    lose_unsynced_tail(&tt, 1);

    reopen_and_close(&tt, 0);
    snprintf(path, sizeof(path), "%s/audit.ring", tt.dir);
    assert_int_equal(stat(path, &st), -1);
    test_chain c;
    assert_chain_valid(&tt, &c);
    assert_int_equal(test_count_type(&c, "note_created"), 30);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void clean_close_leaves_nothing_to_apply(void **state)
{
    test_trail tt;
    talon_audit_options o;
    static const char zeros[HEAD_LEN];
    size_t ring_len;
    char path[400];
    struct stat st;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 5), 0);
    char *ring = read_ring(&tt, &ring_len);
    assert_int_equal(ring_len, o.sync_ring_size);
    assert_memory_not_equal(ring, zeros, HEAD_LEN);
    free(ring);
    talon_audit_close(t);

    ring = read_ring(&tt, &ring_len);
    assert_memory_equal(ring, zeros, HEAD_LEN);
    free(ring);
    snprintf(path, sizeof(path), "%s/audit.ring", tt.dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    test_trail_remove(&tt);
}

/* Remove or move the ring under an open trail: the next sync batch
 * notices and falls back to the trail file. */
static void check_lost_ring(bool move)
{
    test_trail tt;
    talon_audit_options o;
    char path[400], moved[420];

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 2), 0);
    snprintf(path, sizeof(path), "%s/audit.ring", tt.dir);
    snprintf(moved, sizeof(moved), "%s.old", path);
    if (move)
        assert_int_equal(rename(path, moved), 0);
    else
        assert_int_equal(unlink(path), 0);

    assert_int_equal(submit_n(t, 2), 0);
    assert_int_equal(t->ring_fd, -1);
    assert_int_equal(submit_n(t, 2), 0);
    talon_audit_close(t);

    test_chain c;
    assert_chain_valid(&tt, &c);
    assert_int_equal(test_count_type(&c, "note_created"), 6);
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void removed_ring_not_used(void **state)
{
    check_lost_ring(false);
}

static void moved_ring_not_used(void **state)
{
    check_lost_ring(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(power_loss_restored_from_ring),
        cmocka_unit_test(torn_entry_not_applied),
        cmocka_unit_test(zeroed_tail_written_back),
        cmocka_unit_test(wraps_keep_every_record),
        cmocka_unit_test(rotation_keeps_every_record),
        cmocka_unit_test(ring_off_applies_then_removes),
        cmocka_unit_test(clean_close_leaves_nothing_to_apply),
        cmocka_unit_test(removed_ring_not_used),
        cmocka_unit_test(moved_ring_not_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
