/* Audit trail files removed or moved under the running writer: the trail
 * directory (rm -rf, or mv trail trail.old, with key.state in it), key.state
 * alone, and the active file alone after a rotation. A moved file keeps its
 * links, so only a comparison of the configured path with the open
 * descriptor shows the move. The batch that finds the removal or move fails
 * under the failure policy, the files come back at the configured paths from
 * the open descriptors, and the chain goes on after an audit_recovered
 * record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "audit_test_util.h"

static void wait_healthy(talon_audit_trail *t)
{
    for (int i = 0; i < 100 && !talon_audit_healthy(t); i++)
        usleep(50 * 1000);
    assert_true(talon_audit_healthy(t));
}

static void remove_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static mode_t file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void directory_removed_fail_closed(void **state)
{
    (void)state;
    test_trail tt;
    talon_audit_options o;
    test_chain c;
    char path[400];

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 3), 0);

    remove_tree(tt.dir);
    json_t *data = json_pack("{s:i}", "n", 100);
    talon_audit_event ev = { .type = "note_created", .actor_id = "alice", .data = data };
    /* The batch written into the unlinked file is not acknowledged. */
    assert_int_equal(submit_sync(t, &ev), -ENOENT);
    wait_healthy(t);
    json_object_set_new(data, "n", json_integer(101));
    assert_int_equal(submit_sync(t, &ev), 0);
    talon_audit_stats st;
    talon_audit_get_stats(t, &st);
    assert_int_equal(st.rejected, 1);
    talon_audit_close(t);

    snprintf(path, sizeof(path), "%s/audit-00000001.jsonl", tt.dir);
    assert_int_equal(file_mode(path), 0600);
    assert_int_equal(file_mode(tt.state), 0600);
    assert_chain_valid(&tt, &c);
    /* 3 before, none for the rejected one, 1 after. */
    assert_int_equal(test_count_type(&c, "note_created"), 4);
    json_t *rec = test_find_type(&c, "audit_recovered", 0);
    assert_non_null(rec);
    json_t *d = json_object_get(rec, "data");
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "file_removed");
    assert_string_equal(json_string_value(json_object_get(d, "file")), "audit-00000001.jsonl");
    assert_true(json_is_true(json_object_get(d, "key_state_recreated")));
    assert_true(json_integer_value(json_object_get(d, "restored_bytes")) > 0);
    /* last_seq: sys_startup and the 3 records. */
    assert_int_equal(json_integer_value(json_object_get(d, "last_seq")), 4);
    assert_non_null(test_find_type(&c, "audit_resumed", 0));
    test_chain_free(&c);

    /* The recreated key.state continues the trail after a restart. */
    t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 1), 0);
    talon_audit_close(t);
    assert_chain_valid(&tt, &c);
    test_chain_free(&c);
    json_decref(data);
    test_trail_remove(&tt);
}

static void key_state_removed_fail_open(void **state)
{
    (void)state;
    test_trail tt;
    talon_audit_options o;
    test_chain c;

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    o.failure = TALON_AUDIT_FAIL_OPEN;
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 2), 0);

    assert_int_equal(unlink(tt.state), 0);
    assert_true(submit_n(t, 1) < 0);
    wait_healthy(t);
    assert_int_equal(submit_n(t, 1), 0);
    talon_audit_stats st;
    talon_audit_get_stats(t, &st);
    assert_int_equal(st.lost, 1);
    assert_int_equal(st.rejected, 0);
    talon_audit_close(t);

    assert_int_equal(file_mode(tt.state), 0600);
    assert_chain_valid(&tt, &c);
    json_t *rec = test_find_type(&c, "audit_recovered", 0);
    assert_non_null(rec);
    json_t *d = json_object_get(rec, "data");
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "key_state_removed");
    assert_int_equal(json_integer_value(json_object_get(d, "restored_bytes")), 0);
    assert_true(json_is_true(json_object_get(d, "key_state_recreated")));
    /* The lost record is reported in the trail. */
    assert_non_null(test_find_type(&c, "audit_records_lost", 0));
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void active_file_removed_after_rotation(void **state)
{
    (void)state;
    test_trail tt;
    talon_audit_options o;
    test_chain c;
    char path[400];

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 2), 0);
    assert_int_equal(talon_audit_rotate(t), 0);
    assert_int_equal(submit_n(t, 2), 0);

    snprintf(path, sizeof(path), "%s/audit-00000002.jsonl", tt.dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(submit_n(t, 1), -ENOENT);
    wait_healthy(t);
    assert_int_equal(submit_n(t, 1), 0);
    talon_audit_close(t);

    /* Nothing was lost, so the whole trail verifies, not only a part. */
    assert_chain_valid(&tt, &c);
    assert_int_equal(c.nfiles, 2);
    assert_int_equal(test_count_type(&c, "note_created"), 5);
    json_t *rec = test_find_type(&c, "audit_recovered", 0);
    assert_non_null(rec);
    json_t *d = json_object_get(rec, "data");
    assert_string_equal(json_string_value(json_object_get(d, "file")), "audit-00000002.jsonl");
    assert_false(json_is_true(json_object_get(d, "key_state_recreated")));
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static json_t *recovered_data(const test_chain *c)
{
    json_t *rec = test_find_type(c, "audit_recovered", 0);
    assert_non_null(rec);
    return json_object_get(rec, "data");
}

static void directory_moved_fail_closed(void **state)
{
    (void)state;
    test_trail tt;
    talon_audit_options o;
    test_chain c;
    char moved[400], moved_file[450], moved_state[450], path[400];

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 3), 0);

    snprintf(moved, sizeof(moved), "%s.old", tt.dir);
    assert_int_equal(rename(tt.dir, moved), 0);
    /* The batch written into the moved file is not acknowledged. */
    assert_int_equal(submit_n(t, 1), -ENOENT);
    wait_healthy(t);
    assert_int_equal(submit_n(t, 1), 0);
    talon_audit_stats st;
    talon_audit_get_stats(t, &st);
    assert_int_equal(st.rejected, 1);
    talon_audit_close(t);

    /* The trail goes on at the configured path and verifies from seq 1. */
    assert_chain_valid(&tt, &c);
    json_t *d = recovered_data(&c);
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "file_moved");
    assert_true(json_is_true(json_object_get(d, "key_state_recreated")));
    assert_int_equal(json_integer_value(json_object_get(d, "last_seq")), 4);
    size_t restored = (size_t)json_integer_value(json_object_get(d, "restored_bytes"));
    test_chain_free(&c);

    /* The moved file was cut back to the acknowledged records, which are
     * the start of the restored file. */
    snprintf(moved_file, sizeof(moved_file), "%s/audit-00000001.jsonl", moved);
    snprintf(path, sizeof(path), "%s/audit-00000001.jsonl", tt.dir);
    size_t moved_len = 0, len = 0;
    char *old_bytes = test_read_file(moved_file, &moved_len);
    char *new_bytes = test_read_file(path, &len);
    assert_non_null(old_bytes);
    assert_non_null(new_bytes);
    assert_int_equal(moved_len, restored);
    assert_true(len > moved_len);
    assert_memory_equal(old_bytes, new_bytes, moved_len);
    free(old_bytes);
    free(new_bytes);

    /* The moved key.state no longer contains a key. */
    snprintf(moved_state, sizeof(moved_state), "%s/key.state", moved);
    char *state_line = test_read_file(moved_state, &len);
    assert_non_null(state_line);
    assert_int_equal(len, 156);
    assert_null(strstr(state_line, "key="));
    free(state_line);

    /* The recreated key.state continues the trail after a restart. */
    t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 1), 0);
    talon_audit_close(t);
    assert_chain_valid(&tt, &c);
    test_chain_free(&c);

    char cmd[500];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", moved);
    assert_int_equal(system(cmd), 0);
    test_trail_remove(&tt);
}

static void active_file_moved_after_rotation(void **state)
{
    (void)state;
    test_trail tt;
    talon_audit_options o;
    test_chain c;
    char path[400], aside[450];

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 2), 0);
    assert_int_equal(talon_audit_rotate(t), 0);
    assert_int_equal(submit_n(t, 2), 0);

    snprintf(path, sizeof(path), "%s/audit-00000002.jsonl", tt.dir);
    snprintf(aside, sizeof(aside), "%s.aside", path);
    assert_int_equal(rename(path, aside), 0);
    assert_int_equal(submit_n(t, 1), -ENOENT);
    wait_healthy(t);
    assert_int_equal(submit_n(t, 1), 0);
    talon_audit_close(t);
    assert_int_equal(unlink(aside), 0);

    assert_chain_valid(&tt, &c);
    assert_int_equal(c.nfiles, 2);
    json_t *d = recovered_data(&c);
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "file_moved");
    assert_string_equal(json_string_value(json_object_get(d, "file")), "audit-00000002.jsonl");
    assert_false(json_is_true(json_object_get(d, "key_state_recreated")));
    test_chain_free(&c);
    test_trail_remove(&tt);
}

static void key_state_replaced_fail_open(void **state)
{
    (void)state;
    test_trail tt;
    talon_audit_options o;
    test_chain c;
    char kept[400];

    test_trail_make(&tt);
    test_trail_options(&tt, &o);
    o.failure = TALON_AUDIT_FAIL_OPEN;
    talon_audit_trail *t = test_trail_open(&o);
    assert_int_equal(submit_n(t, 2), 0);

    /* A hard link keeps the old inode alive, so its link count stays 1
     * after the configured name is gone. */
    snprintf(kept, sizeof(kept), "%s/key.state.kept", tt.root);
    assert_int_equal(link(tt.state, kept), 0);
    assert_int_equal(unlink(tt.state), 0);
    assert_true(submit_n(t, 1) < 0);
    wait_healthy(t);
    assert_int_equal(submit_n(t, 1), 0);
    talon_audit_stats st;
    talon_audit_get_stats(t, &st);
    assert_int_equal(st.lost, 1);
    talon_audit_close(t);

    assert_chain_valid(&tt, &c);
    json_t *d = recovered_data(&c);
    assert_string_equal(json_string_value(json_object_get(d, "cause")), "key_state_moved");
    assert_int_equal(json_integer_value(json_object_get(d, "restored_bytes")), 0);
    assert_true(json_is_true(json_object_get(d, "key_state_recreated")));
    test_chain_free(&c);
    test_trail_remove(&tt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(directory_removed_fail_closed),
        cmocka_unit_test(key_state_removed_fail_open),
        cmocka_unit_test(active_file_removed_after_rotation),
        cmocka_unit_test(directory_moved_fail_closed),
        cmocka_unit_test(active_file_moved_after_rotation),
        cmocka_unit_test(key_state_replaced_fail_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
