/* Restoring the active trail file and key.state after they were removed
 * or moved under the running server (rm -rf or mv of the trail directory,
 * or an unlink or mv of one file).
 *
 * The writer keeps both files open, so everything it wrote is still in the
 * open inodes. After each batch it checks that the configured path still
 * names each open file: st_nlink above 0, and stat(path) giving the
 * st_dev/st_ino of the descriptor. When a path lost its file, the batch is
 * cut back and fails under the failure policy, and the next retry puts the
 * files back at the configured paths. The active file is copied from its
 * descriptor to a new file of the same name, key.state is rewritten from
 * the key in memory, and the chain goes on after an audit_recovered record.
 * Older trail files, which the writer does not hold open, are not brought
 * back: removed ones are lost (only the external witness shows that they
 * existed), moved ones stay where they were moved to. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "audit/audit_internal.h"

#define COPY_BUFFER_SIZE (256 * 1024)

/* The identity and link count of fd's file (path NULL) or of path's, in
 * st_dev, st_ino and st_nlink of *st. Returns 0 or -1 with errno set.
 *
 * statx() is asked for no time stamp on purpose. Since Linux 6.13
 * (multigrain time stamps), a query of the times makes the file's next
 * write take a fine-grained time stamp, which dirties the inode. The next
 * fdatasync of the sync ring then writes the inode as well as the data:
 * measured on ext4 here, 2 disk writes instead of 1 per sync batch, and
 * 190 us instead of 135 per write and fdatasync. */
static int file_identity(int fd, const char *path, struct stat *st)
{
    struct statx sx;
    int rc = path ? statx(AT_FDCWD, path, 0, STATX_INO | STATX_NLINK, &sx)
                  : statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_NLINK, &sx);

    if (rc < 0 && errno == ENOSYS)
        return path ? stat(path, st) : fstat(fd, st);
    if (rc < 0)
        return -1;
    st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st->st_ino = sx.stx_ino;
    st->st_nlink = sx.stx_nlink;
    return 0;
}

/* True when path no longer names the file open as fd: the file was
 * removed, or moved away with its directory or alone, or another file took
 * its name. *moved is set when the open file still has a name elsewhere.
 * A stat error other than a missing name (EACCES, EIO) shows nothing about
 * a move, so the name counts as kept.
 * NOTE: when another file took the name (a copy put back with cp -a), the
 * restore fails with EEXIST at each retry until that file is moved away,
 * and the trail stays unhealthy meanwhile. */
bool audit_name_lost(int fd, const char *path, bool *moved)
{
    struct stat open_st, path_st;

    *moved = false;
    if (fd < 0 || file_identity(fd, NULL, &open_st) < 0)
        return false;
    if (open_st.st_nlink == 0)
        return true;
    if (file_identity(-1, path, &path_st) < 0) {
        *moved = errno == ENOENT || errno == ENOTDIR;
        return *moved;
    }
    *moved = path_st.st_dev != open_st.st_dev || path_st.st_ino != open_st.st_ino;
    return *moved;
}

/* Write the current path of the file open as fd into out, as Linux names
 * it in /proc/self/fd, or "an unknown path". */
static void open_file_path(int fd, char *out, size_t outlen)
{
    char link[64];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, out, outlen - 1);
    if (n < 0)
        snprintf(out, outlen, "an unknown path (%s)", strerror(errno));
    else
        out[n] = '\0';
}

/* Log where a moved file went, once per move: the writer's own error line
 * only states that the configured path lost it. */
static void log_moved(talon_audit_trail *t, const char *file_kind, const char *path, int fd)
{
    char now[4096];

    open_file_path(fd, now, sizeof(now));
    talon_log_error(t->log, "audit trail: %s %s was moved or replaced while open; the open file "
                    "is now %s. The trail goes on at the configured path %s; move the trail "
                    "directory with the server stopped", file_kind, path, now, path);
}

int audit_check_removed(talon_audit_trail *t)
{
    char path[4096];
    bool moved;

    if (!t->file_removed && audit_trail_file_path(t, t->file_index, path, sizeof(path)) == 0 &&
        audit_name_lost(t->fd, path, &moved)) {
        t->file_removed = true;
        if (moved)
            log_moved(t, "the active file", path, t->fd);
    }
    if (!t->state_removed && audit_name_lost(t->state_fd, t->state_path, &moved)) {
        t->state_removed = true;
        if (moved)
            log_moved(t, "the key state file", t->state_path, t->state_fd);
    }
    return t->file_removed || t->state_removed ? -ENOENT : 0;
}

/* True when fd's file still has a name somewhere: it was moved, not
 * removed. */
static bool still_linked(int fd)
{
    struct stat st;

    return fd >= 0 && file_identity(fd, NULL, &st) == 0 && st.st_nlink > 0;
}

/* Overwrite the key in a moved key.state, which the writer stops
 * updating: keys only move forward, and a copy left at this epoch would let
 * anyone who finds it forge the records of this epoch after the next seal. A
 * server started on the moved directory then fails on a damaged state file
 * instead of forking the chain. */
static void wipe_moved_state(talon_audit_trail *t)
{
    char blank[AUDIT_STATE_LINE_LEN];
    char now[4096];

    open_file_path(t->state_fd, now, sizeof(now));
    memset(blank, '0', sizeof(blank) - 1);
    blank[sizeof(blank) - 1] = '\n';
    if (pwrite(t->state_fd, blank, sizeof(blank), 0) != (ssize_t)sizeof(blank) ||
        fdatasync(t->state_fd) < 0) {
        talon_log_error(t->log, "audit trail: cannot overwrite the key in %s: %s; delete that "
                        "file, it holds the key of epoch %" PRIu64, now, strerror(errno),
                        t->epoch);
        return;
    }
    talon_log_warn(t->log, "audit trail: overwrote the key in %s with zeros, since the key state "
                   "now lives at %s", now, t->state_path);
}

/* Write key.state anew from the key in memory, lock it, and make it the
 * state file the writer updates. */
static int restore_key_state(talon_audit_trail *t)
{
    char *copy;
    int fd, rc;

    copy = strdup(t->state_path);
    if (copy == NULL)
        return -ENOMEM;
    rc = audit_make_dirs(dirname(copy), 0700);
    free(copy);
    if (rc < 0)
        return rc;
    fd = open(t->state_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (fchmod(fd, 0600) < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = -errno;
        goto fail;
    }
    rc = audit_keystate_store_trail(fd, t);
    if (rc < 0)
        goto fail;
    copy = strdup(t->state_path);
    if (copy == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = audit_fsync_dir(dirname(copy));
    free(copy);
    if (rc < 0)
        goto fail;
    if (still_linked(t->state_fd))
        wipe_moved_state(t);
    close(t->state_fd);
    t->state_fd = fd;
    t->state_dirty = false;
    return 0;

fail:
    close(fd);
    unlink(t->state_path);
    return rc;
}

/* Copy bytes [0, len) of from to to. */
static int copy_bytes(int from, int to, uint64_t len)
{
    char *buf = malloc(COPY_BUFFER_SIZE);
    uint64_t off = 0;
    int rc = 0;

    if (buf == NULL)
        return -ENOMEM;
    while (off < len) {
        size_t want = len - off < COPY_BUFFER_SIZE ? (size_t)(len - off) : COPY_BUFFER_SIZE;
        ssize_t n = pread(from, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(to, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = w < 0 ? -errno : -EIO;
                goto out;
            }
            done += w;
        }
        off += (uint64_t)n;
    }
out:
    free(buf);
    return rc;
}

/* Copy the complete records of the unlinked active file to a temporary
 * file, sync it, and link it under the active file's name. link() does not
 * replace a file that someone put there meanwhile. */
static int restore_active_file(talon_audit_trail *t)
{
    char path[4096], tmp[4200];
    int fd, rc;

    rc = audit_trail_file_path(t, t->file_index, path, sizeof(path));
    if (rc < 0)
        return rc;
    snprintf(tmp, sizeof(tmp), "%s/.audit-%08u.jsonl.restoring", t->dir, t->file_index);
    rc = audit_make_dirs(t->dir, (t->mode & 0040) ? 0750 : 0700);
    if (rc < 0)
        return rc;
    unlink(tmp); /* left by an earlier attempt that failed */
    fd = open(tmp, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, t->mode);
    if (fd < 0)
        return -errno;
    if (fchmod(fd, t->mode) < 0) {
        rc = -errno;
        goto fail;
    }
    rc = copy_bytes(t->fd, fd, t->file_size);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (rc == 0 && link(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        goto fail;
    unlink(tmp);
    rc = audit_fsync_dir(t->dir);
    if (rc < 0) {
        close(fd);
        return rc; /* the next attempt finds path taken: EEXIST */
    }
    close(t->fd);
    t->fd = fd;
    t->file_dirty = false;
    t->reserved_end = 0;
    return 0;

fail:
    close(fd);
    unlink(tmp);
    return rc;
}

int audit_restore_removed(talon_audit_trail *t, json_t **recovered)
{
    char file[32];
    bool file_moved = t->file_removed && still_linked(t->fd);
    bool state_moved = t->state_removed && still_linked(t->state_fd);
    const char *cause;
    int rc;

    snprintf(file, sizeof(file), "audit-%08u.jsonl", t->file_index);
    if (t->file_removed)
        cause = file_moved ? "file_moved" : "file_removed";
    else
        cause = state_moved ? "key_state_moved" : "key_state_removed";
    if (*recovered == NULL) {
        /* Filled step by step, so a retry after a partial restore still
         * reports every step in the one audit_recovered record. */
        *recovered = json_pack("{s:s,s:s,s:I,s:I,s:b}", "cause", cause, "file", file,
                               "restored_bytes", (json_int_t)0, "last_seq", (json_int_t)t->seq,
                               "key_state_recreated", 0);
        if (*recovered == NULL)
            return -ENOMEM;
    }
    /* The state first: a crash after the file came back but before the
     * state did would leave a trail that cannot be continued. */
    if (t->state_removed) {
        rc = restore_key_state(t);
        if (rc < 0) {
            audit_log_error(t, "audit trail: cannot recreate the %s key state file %s: %s",
                            state_moved ? "moved" : "removed", t->state_path, strerror(-rc));
            return rc;
        }
        t->state_removed = false;
        json_object_set_new(*recovered, "key_state_recreated", json_true());
        talon_log_warn(t->log, "audit trail: recreated the %s key state file %s at epoch %"
                       PRIu64, state_moved ? "moved" : "removed", t->state_path, t->epoch);
    }
    if (t->file_removed) {
        rc = restore_active_file(t);
        if (rc < 0) {
            audit_log_error(t, "audit trail: cannot restore the %s file %s in %s: %s%s",
                            file_moved ? "moved" : "removed", file, t->dir, strerror(-rc),
                            rc == -EEXIST ? " (another file has its name; move it away)" : "");
            return rc;
        }
        t->file_removed = false;
        json_object_set_new(*recovered, "restored_bytes", json_integer((json_int_t)t->file_size));
        talon_log_warn(t->log, "audit trail: restored the %s file %s/%s from the open "
                       "descriptor (%" PRIu64 " bytes, records up to seq %" PRIu64 "); %s",
                       file_moved ? "moved" : "removed", t->dir, file, t->file_size, t->seq,
                       file_moved ? "older trail files are where the trail directory was moved"
                                  : "older trail files removed with it are lost");
    }
    json_object_set_new(*recovered, "last_seq", json_integer((json_int_t)t->seq));
    return 0;
}
