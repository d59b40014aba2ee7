/* talon audit tail -f: follow the live trail like tail -F. It reads the
 * active file as it grows, continues in the next file when the trail
 * rotates, and reopens the file when its path names another file. The
 * server recreates the active file at the configured path after the trail
 * directory was moved or removed (audit_recovered, cause file_moved or
 * file_removed). */
#include "cli/cli.h"
#include "cli/audit_cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FOLLOW_INTERVAL_MS 200
/* Bytes before the read position compared to tell a copy of the followed
 * file from another file: they hold at least the last record's MAC. */
#define CONTINUATION_CHECK_BYTES 4096

typedef struct follower {
    const char *dir;        /* trail directory; NULL when following one file */
    uint64_t index;         /* index of the file followed in dir */
    char path[4096];
    int fd;
    off_t off;              /* bytes of the file read so far */
    char *pending;          /* bytes after the last newline read: a line still being written */
    size_t npending;
    bool path_missing;      /* the path named no file at the last check, and stderr reported it */
    cli_follow_line_fn fn;
    void *ctx;
} follower;

/* The highest file index in dir, 0 when none. */
static uint64_t last_index(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    uint64_t best = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned long long i;
        char tail[8];
        if (strlen(de->d_name) == 20 && sscanf(de->d_name, "audit-%8llu.%6s", &i, tail) == 2 &&
            strcmp(tail, "jsonl") == 0 && i > best)
            best = i;
    }
    closedir(d);
    return best;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Open a trail file for reading, or return -1 with errno set (EINVAL for a
 * FIFO, directory or device). O_NONBLOCK keeps the open of a FIFO from
 * waiting for a writer; it is cleared again for the reads. */
static int open_trail_file(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || fcntl(fd, F_SETFL, 0) != 0)
        goto err;
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        goto err;
    }
    return fd;

err:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

static void report_open_error(const char *path)
{
    if (errno == EINVAL)
        cli_error("audit tail: %s: not a regular file", path);
    else
        cli_error("audit tail: %s: cannot open: %s", path, strerror(errno));
}

/* Read what was appended to the followed file and pass on each complete
 * line. Returns 1 when bytes were read, 0 at the end of the file, -1 after
 * an error (reported). */
static int read_appended(follower *f)
{
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
        cli_error("audit tail: %s: %s", f->path, strerror(errno));
        return -1;
    }
    if (st.st_size < f->off) {
        /* Crash recovery cut a torn line, or the server cut back a batch
         * that failed: read on from the new end. */
        fprintf(stderr, "talon: %s: file shrank to %lld bytes; following from there\n", f->path,
                (long long)st.st_size);
        f->off = st.st_size;
        f->npending = 0;
    }
    if (st.st_size == f->off)
        return 0;

    size_t want = (size_t)(st.st_size - f->off);
    char *buf = realloc(f->pending, f->npending + want);
    if (!buf) {
        cli_error("audit tail: out of memory");
        return -1;
    }
    f->pending = buf;
    ssize_t got = pread(f->fd, f->pending + f->npending, want, f->off);
    if (got < 0) {
        cli_error("audit tail: %s: cannot read: %s", f->path, strerror(errno));
        return -1;
    }
    f->off += got;
    f->npending += (size_t)got;
    size_t start = 0;
    for (size_t i = 0; i < f->npending; i++) {
        if (f->pending[i] == '\n') {
            f->fn(f->ctx, f->pending + start, i - start);
            start = i + 1;
        }
    }
    memmove(f->pending, f->pending + start, f->npending - start);
    f->npending -= start;
    fflush(stdout);
    return got > 0;
}

/* Move to the next file of the trail once it exists. Returns 1 when
 * moved, 0 when there is no next file yet, -1 after an error (reported). */
static int open_next_file(follower *f)
{
    if (!f->dir || f->npending != 0 || last_index(f->dir) <= f->index)
        return 0;
    char next[4096];
    snprintf(next, sizeof next, "%s/audit-%08llu.jsonl", f->dir, (unsigned long long)(f->index + 1));
    int nfd = open_trail_file(next);
    if (nfd < 0 && errno == EINVAL) {
        report_open_error(next);
        return -1;
    }
    if (nfd < 0)
        return 0;
    close(f->fd);
    f->fd = nfd;
    f->index++;
    snprintf(f->path, sizeof f->path, "%s", next);
    f->off = 0;
    return 1;
}

/* True when the file open as `to` has the same bytes as `from` just
 * before offset end: it is a copy of from's first end bytes, maybe with
 * more after them. */
static bool continues_file(int from, int to, off_t end)
{
    char a[CONTINUATION_CHECK_BYTES], b[CONTINUATION_CHECK_BYTES];
    size_t n = end < (off_t)sizeof a ? (size_t)end : sizeof a;

    if (n == 0)
        return true;
    return pread(from, a, n, end - (off_t)n) == (ssize_t)n && pread(to, b, n, end - (off_t)n) == (ssize_t)n &&
           memcmp(a, b, n) == 0;
}

/* Reopen the followed path when it names another file than the one open:
 * the file or its directory was moved or removed, and a file took the
 * name again. The old file is read to its end first. A copy of it (what
 * the server restores) is read on after the lines already passed on;
 * another file is read from its start. Returns 1 when reopened, 0 when
 * the path still names the open file or names nothing, -1 after an error
 * (reported). */
static int reopen_replaced(follower *f)
{
    struct stat open_st, path_st;
    int rc;

    if (stat(f->path, &path_st) != 0) {
        /* Gone: the server recreates it at its next write. Say so once. */
        if (!f->path_missing)
            fprintf(stderr, "talon: audit tail: %s is gone (moved or removed); waiting for the "
                    "server to recreate it\n", f->path);
        f->path_missing = true;
        return 0;
    }
    f->path_missing = false;
    if (fstat(f->fd, &open_st) != 0) {
        cli_error("audit tail: %s: %s", f->path, strerror(errno));
        return -1;
    }
    if (path_st.st_dev == open_st.st_dev && path_st.st_ino == open_st.st_ino)
        return 0;

    while ((rc = read_appended(f)) > 0)
        ;
    if (rc < 0)
        return -1;
    int nfd = open_trail_file(f->path);
    if (nfd < 0 && errno == ENOENT)
        return 0;
    if (nfd < 0) {
        report_open_error(f->path);
        return -1;
    }
    /* Bytes after the last newline were a line still being written, and a
     * copy made by the server contains complete records only. */
    off_t done = f->off - (off_t)f->npending;
    bool copy = continues_file(f->fd, nfd, done);
    close(f->fd);
    f->fd = nfd;
    f->npending = 0;
    f->off = copy ? done : 0;
    if (copy)
        fprintf(stderr, "talon: audit tail: %s was replaced by a copy (the trail was moved or removed, and "
                "the server recreated it); following the new file after byte %lld\n", f->path,
                (long long)done);
    else
        fprintf(stderr, "talon: audit tail: %s was replaced by another file; following the new file "
                "from its start\n", f->path);
    return 1;
}

int cli_audit_follow(const char *dir, uint64_t index, const char *file, off_t off, cli_follow_line_fn fn,
                     void *ctx)
{
    follower f = { .dir = dir, .index = index, .off = off, .fn = fn, .ctx = ctx };
    snprintf(f.path, sizeof f.path, "%s", file);
    f.fd = open_trail_file(f.path);
    if (f.fd < 0) {
        report_open_error(f.path);
        return CLI_USAGE;
    }
    for (;;) {
        int rc = read_appended(&f);
        if (rc == 0)
            rc = reopen_replaced(&f);
        if (rc == 0)
            rc = open_next_file(&f);
        if (rc < 0)
            break;
        if (rc == 0)
            sleep_ms(FOLLOW_INTERVAL_MS);
    }
    free(f.pending);
    close(f.fd);
    return CLI_USAGE;
}
