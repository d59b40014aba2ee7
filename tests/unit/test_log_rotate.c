/* Rotation and reopening: by size while threads write, by time, after an
 * external rename (logrotate with a SIGHUP), after the directory vanished.
 * Every line must land whole in exactly one file; gzip files are read back
 * with zlib. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "log_test_fixture.h"

#define THREADS 4
#define PER_THREAD 5000

/* Count the records of name, name.1, name.2(.gz) ... and return how many
 * rotated files there were. */
static int count_rotated(const char *name, int *gz_files)
{
    char path[4096];
    path_in_dir(path, sizeof(path), name);
    count_file(&counts, path, 0);
    int files = 0;
    *gz_files = 0;
    for (int n = 1; n < 1000; n++) {
        char plain[4200], gz[4200];
        snprintf(plain, sizeof(plain), "%s.%d", path, n);
        snprintf(gz, sizeof(gz), "%s.%d.gz", path, n);
        int has_plain = access(plain, F_OK) == 0, has_gz = access(gz, F_OK) == 0;
        if (!has_plain && !has_gz)
            break;
        assert_false(has_plain && has_gz);
        if (has_gz) {
            assert_int_equal(file_mode(gz), 0640);
            count_file(&counts, gz, 0);
            (*gz_files)++;
        } else {
            assert_int_equal(file_mode(plain), 0640);
            count_file(&counts, plain, 0);
        }
        files++;
    }
    return files;
}

/* Size rotation with gzip while 4 threads write: no line lost or split. */
static void size_rotation_under_load(void **state)
{
    mode_t old_umask = umask(0);
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.buffer_size = 8 * 1024;
    opts.rotate_size = 64 * 1024;
    opts.rotate_keep = 999;
    opts.rotate_gzip = true;
    talon_sink *sink = open_sink("rot.log", &opts);
    talon_logger *lg = talon_logger_get("rot");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);

    pthread_t tid[THREADS];
    writer_arg args[THREADS];
    start_threads(tid, args, lg, THREADS, 0, PER_THREAD);
    join_threads(tid, THREADS);
    talon_log_shutdown(); /* also waits for the compressor */
    umask(old_umask);

    int gz_files;
    int files = count_rotated("rot.log", &gz_files);
    /* About 1.2 MB in 64 KiB files. The first two rotations always happen;
     * later ones wait while the previous file is being compressed, so their
     * number depends on the compressor's speed. */
    assert_true(files >= 2);
    assert_true(gz_files >= 1);
    char first[4096];
    path_in_dir(first, sizeof(first), "rot.log.1");
    assert_int_equal(access(first, F_OK), 0); /* delaycompress: .1 stays plain */
    assert_all_once("rotated files", THREADS, PER_THREAD);
}

/* keep limits the rotated files; the oldest are deleted. */
static void rotation_keeps_n_files(void **state)
{
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.buffer_size = 4096;
    opts.rotate_size = 8 * 1024;
    opts.rotate_keep = 3;
    talon_sink *sink = open_sink("keep.log", &opts);
    talon_logger *lg = talon_logger_get("keep");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);
    for (int i = 0; i < 2000; i++)
        talon_log_info(lg, "rec t=0 i=%d end", i);
    talon_log_shutdown();

    char path[4096];
    for (int n = 1; n <= 4; n++) {
        char name[64];
        snprintf(name, sizeof(name), "keep.log.%d", n);
        path_in_dir(path, sizeof(path), name);
        assert_int_equal(access(path, F_OK) == 0, n <= 3);
    }
    int gz_files;
    assert_int_equal(count_rotated("keep.log", &gz_files), 3);
    assert_int_equal(gz_files, 0);
    assert_int_equal(counts.bad_lines, 0);
    /* The newest records are all kept, in the current file and the last three. */
    assert_int_equal(counts.seen[0][1999], 1);
}

static void on_sighup(int sig)
{
    talon_log_reopen();
}

/* logrotate's way: rename the file, then signal the process to reopen. The
 * old and the new file together hold every line exactly once. */
static void reopen_after_rename(void **state)
{
    talon_sink *app = open_sink("app.log", NULL);
    assert_int_equal(talon_logger_add_sink(talon_logger_get("app"), app, TALON_LOG_INFO, NULL), 0);
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.buffer_size = 8 * 1024;
    talon_sink *sink = open_sink("access.log", &opts);
    talon_logger *lg = talon_logger_get("access");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);

    pthread_t tid[THREADS];
    writer_arg args[THREADS];
    start_threads(tid, args, lg, THREADS, 0, PER_THREAD / 2);
    talon_log_info(lg, "rec t=%d i=0 end", THREADS); /* the old file gets at least this line */
    assert_int_equal(talon_sink_flush(sink), 0);

    char path[4096], moved[4096];
    path_in_dir(path, sizeof(path), "access.log");
    path_in_dir(moved, sizeof(moved), "access.log.moved");
    assert_int_equal(rename(path, moved), 0);
    signal(SIGHUP, on_sighup); /* as a server would */
    raise(SIGHUP);
    signal(SIGHUP, SIG_DFL);
    join_threads(tid, THREADS);

    /* Two flushes: the second is served after the reopen, so these lines
     * go to the new file. */
    assert_int_equal(talon_sink_flush(sink), 0);
    assert_int_equal(talon_sink_flush(sink), 0);
    start_threads(tid, args, lg, THREADS, PER_THREAD / 2, PER_THREAD / 2);
    join_threads(tid, THREADS);
    talon_log_shutdown();

    rec_count *c = &counts;
    count_file(c, moved, 0);
    size_t old_lines = c->lines;
    count_file(c, path, 0);
    assert_true(old_lines > 0);
    assert_true(c->lines - old_lines >= (size_t)THREADS * PER_THREAD / 2);
    assert_int_equal(file_mode(path), 0640);
    assert_int_equal(c->seen[THREADS][0], 1);
    c->seen[THREADS][0] = 0;
    c->lines--;
    assert_all_once("old and new file", THREADS, PER_THREAD);
}

/* Reopen recreates a deleted directory and reports it in the app log. */
static void reopen_recreates_missing_directory(void **state)
{
    char app_path[4096], path[4096], subdir[4096], moved[4096];
    path_in_dir(app_path, sizeof(app_path), "app.log");
    path_in_dir(path, sizeof(path), "logs/gone.log");
    path_in_dir(subdir, sizeof(subdir), "logs");
    path_in_dir(moved, sizeof(moved), "logs.old");
    talon_sink *app = open_sink("app.log", NULL);
    assert_int_equal(talon_logger_add_sink(talon_logger_get("app"), app, TALON_LOG_INFO, NULL), 0);
    talon_sink *sink = open_sink("logs/gone.log", NULL);
    talon_logger *lg = talon_logger_get("gone");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);

    talon_log_info(lg, "rec t=0 i=0 end");
    assert_int_equal(talon_sink_flush(sink), 0);
    assert_int_equal(rename(subdir, moved), 0);
    talon_log_reopen();
    assert_int_equal(talon_sink_flush(sink), 0);
    talon_log_info(lg, "rec t=0 i=1 end");
    talon_log_shutdown();

    count_file(&counts, path, 0);
    assert_int_equal(counts.lines, 1);
    assert_int_equal(counts.seen[0][1], 1);
    assert_int_equal(file_mode(path), 0640);
    assert_true(file_contains(app_path, "gone.log: reopened; the file was missing, created it"));
}

/* The log path replaced by a symbolic link: reopen rejects it with a
 * clear error in the app log and keeps writing to the open file, and the
 * link's target is neither written nor chmod-ed. */
static void reopen_rejects_symlink(void **state)
{
    char app_path[4096], path[4096], moved[4096], victim[4096];
    path_in_dir(app_path, sizeof(app_path), "app.log");
    path_in_dir(path, sizeof(path), "linked.log");
    path_in_dir(moved, sizeof(moved), "linked.log.old");
    path_in_dir(victim, sizeof(victim), "victim.txt");
    talon_sink *app = open_sink("app.log", NULL);
    assert_int_equal(talon_logger_add_sink(talon_logger_get("app"), app, TALON_LOG_INFO, NULL), 0);
    talon_sink *sink = open_sink("linked.log", NULL);
    talon_logger *lg = talon_logger_get("linked");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);
    int fd = open(victim, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(victim, 0644), 0);

    talon_log_info(lg, "rec t=0 i=0 end");
    assert_int_equal(talon_sink_flush(sink), 0);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(symlink(victim, path), 0);
    talon_log_reopen();
    assert_int_equal(talon_sink_flush(sink), 0);
    talon_log_info(lg, "rec t=0 i=1 end");
    talon_log_shutdown();

    struct stat st;
    assert_int_equal(stat(victim, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    count_file(&counts, moved, 0);
    assert_int_equal(counts.lines, 2);
    assert_true(file_contains(app_path, "refusing to open log file"));
    assert_true(file_contains(app_path, "linked.log: it is a symbolic link"));
}

static ino_t inode_of(const char *name)
{
    char path[4096];
    struct stat st;
    path_in_dir(path, sizeof(path), name);
    if (stat(path, &st) < 0)
        fail_msg("%s: %s", path, strerror(errno));
    return st.st_ino;
}

static int count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* The active file moved away without SIGHUP, then a size rotation: the
 * kept files stay as they are and the sink starts a new file. */
static void moved_file_keeps_rotated_files(void **state)
{
    char app_path[4096], path[4096], moved[4096];
    path_in_dir(app_path, sizeof(app_path), "app.log");
    path_in_dir(path, sizeof(path), "keep.log");
    path_in_dir(moved, sizeof(moved), "moved.log");
    talon_sink *app = open_sink("app.log", NULL);
    assert_int_equal(talon_logger_add_sink(talon_logger_get("app"), app, TALON_LOG_INFO, NULL), 0);
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.buffer_size = 4096;
    opts.rotate_size = 8 * 1024;
    opts.rotate_keep = 3;
    talon_sink *sink = open_sink("keep.log", &opts);
    talon_logger *lg = talon_logger_get("keep");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);
    int i = 0;
    for (; i < 2000; i++)
        talon_log_info(lg, "rec t=0 i=%d end", i);
    assert_int_equal(talon_sink_flush(sink), 0);
    /* Fill the current file to at least half of rotate_size, so that the
     * lines below reach rotate_size before a second rotation could. */
    struct stat st;
    for (; stat(path, &st) == 0 && st.st_size < 4096; i++) {
        talon_log_info(lg, "rec t=0 i=%d end", i);
        assert_int_equal(talon_sink_flush(sink), 0);
    }
    ino_t kept[3] = { inode_of("keep.log.1"), inode_of("keep.log.2"), inode_of("keep.log.3") };

    assert_int_equal(rename(path, moved), 0);
    /* One line per batch until the size rotation of the moved file is due. */
    int sent = 0;
    while (access(path, F_OK) != 0 && sent < 1000) {
        talon_log_info(lg, "rec t=1 i=%d end", sent++);
        assert_int_equal(talon_sink_flush(sink), 0);
    }
    talon_log_shutdown();

    assert_int_equal(inode_of("keep.log.1"), kept[0]);
    assert_int_equal(inode_of("keep.log.2"), kept[1]);
    assert_int_equal(inode_of("keep.log.3"), kept[2]);
    count_file(&counts, moved, 0);
    count_file(&counts, path, 0);
    assert_int_equal(counts.bad_lines, 0);
    assert_true(sent < 1000);
    for (int n = 0; n < sent; n++)
        assert_int_equal(counts.seen[1][n], 1);
    assert_int_equal(file_mode(path), 0640);
    assert_true(file_contains(app_path, "keep.log: the open file was moved or removed"));
    assert_int_equal(count_in_file(app_path, "rotation failed"), 0);
}

/* A rotation that keeps failing (a directory where keep.log.1 should go)
 * is retried and reported at most once a second, and the last held-back
 * failures are reported without a later failure. */
static void rotation_failures_rate_limited(void **state)
{
    char app_path[4096], blocker[4096], inner[4200];
    path_in_dir(app_path, sizeof(app_path), "app.log");
    path_in_dir(blocker, sizeof(blocker), "fail.log.1");
    snprintf(inner, sizeof(inner), "%s/x", blocker);
    assert_int_equal(mkdir(blocker, 0700), 0);
    assert_int_equal(mkdir(inner, 0700), 0); /* not empty: unlink and rename fail */
    talon_sink *app = open_sink("app.log", NULL);
    assert_int_equal(talon_logger_add_sink(talon_logger_get("app"), app, TALON_LOG_INFO, NULL), 0);
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.buffer_size = 4096;
    opts.rotate_size = 4096;
    opts.rotate_keep = 1;
    talon_sink *sink = open_sink("fail.log", &opts);
    talon_logger *lg = talon_logger_get("fail");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < 1500; i++) {
        talon_log_info(lg, "rec t=0 i=%d end", i);
        if (i % 100 == 99) {
            assert_int_equal(talon_sink_flush(sink), 0);
            usleep(100 * 1000);
        }
    }
    talon_log_shutdown();
    clock_gettime(CLOCK_MONOTONIC, &end);

    /* Every line is in fail.log: nothing was lost to the failed rotations. */
    char path[4096];
    path_in_dir(path, sizeof(path), "fail.log");
    count_file(&counts, path, 0);
    assert_int_equal(counts.lines, 1500);
    int errors = count_in_file(app_path, "rotation failed");
    long seconds = (long)(end.tv_sec - start.tv_sec) + 1;
    assert_true(errors >= 1);
    if (errors > seconds + 1)
        fail_msg("%d rotation errors logged in about %ld s", errors, seconds);
}

/* Time rotation: with a 1 s interval the file is rotated at the next
 * second boundary. Waits at most 10 s for the rotated file. */
static void time_rotation_at_interval(void **state)
{
    talon_sink_options opts;
    talon_sink_options_init(&opts);
    opts.rotate_interval_s = 1;
    opts.flush_interval_ms = 100;
    talon_sink *sink = open_sink("hourly.log", &opts);
    talon_logger *lg = talon_logger_get("hourly");
    assert_int_equal(talon_logger_add_sink(lg, sink, TALON_LOG_INFO, NULL), 0);

    char rotated[4096];
    path_in_dir(rotated, sizeof(rotated), "hourly.log.1");
    int i = 0;
    for (; i < 100 && access(rotated, F_OK) != 0; i++) {
        talon_log_info(lg, "rec t=0 i=%d end", i);
        assert_int_equal(talon_sink_flush(sink), 0);
        usleep(100 * 1000);
    }
    assert_int_equal(access(rotated, F_OK), 0);
    talon_log_shutdown();

    int gz_files;
    assert_true(count_rotated("hourly.log", &gz_files) >= 1);
    assert_all_once("time-rotated files", 1, i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(size_rotation_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(rotation_keeps_n_files, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_after_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_rejects_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_recreates_missing_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(time_rotation_at_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(moved_file_keeps_rotated_files, setup, teardown),
        cmocka_unit_test_setup_teardown(rotation_failures_rate_limited, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
