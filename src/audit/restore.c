/* Restoring the active trail file and key.state after they were removed
 * under the running server (rm -rf of the trail directory, or an unlink).
 *
 * The writer keeps both files open, so everything it wrote is still in the
 * unlinked inodes. After each batch it checks st_nlink. When a file has no
 * name left, the batch is cut back and fails under the failure policy, and
 * the next retry puts the files back. The active file is copied from its
 * descriptor to a new file of the same name, key.state is rewritten from
 * the key in memory, and the chain goes on after an audit_recovered record.
 * Older trail files, which the writer does not hold open, cannot be brought
 * back; only the external witness shows that they existed. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit_internal.h"

#define COPY_BUFFER_SIZE (256 * 1024)

static bool removed(int fd)
{
    struct stat st;

    return fd >= 0 && fstat(fd, &st) == 0 && st.st_nlink == 0;
}

int audit_check_removed(talon_audit_trail *t)
{
    if (removed(t->fd))
        t->file_removed = true;
    if (removed(t->state_fd))
        t->state_removed = true;
    return t->file_removed || t->state_removed ? -ENOENT : 0;
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
    return 0;

fail:
    close(fd);
    unlink(tmp);
    return rc;
}

int audit_restore_removed(talon_audit_trail *t, json_t **recovered)
{
    char file[32];
    int rc;

    snprintf(file, sizeof(file), "audit-%08u.jsonl", t->file_index);
    if (*recovered == NULL) {
        /* Filled step by step, so a retry after a partial restore still
         * reports every step in the one audit_recovered record. */
        *recovered = json_pack("{s:s,s:s,s:I,s:I,s:b}", "cause",
                               t->file_removed ? "file_removed" : "key_state_removed", "file",
                               file, "restored_bytes", (json_int_t)0, "last_seq",
                               (json_int_t)t->seq, "key_state_recreated", 0);
        if (*recovered == NULL)
            return -ENOMEM;
    }
    /* The state first: a crash after the file came back but before the
     * state did would leave a trail that cannot be continued. */
    if (t->state_removed) {
        rc = restore_key_state(t);
        if (rc < 0) {
            audit_log_error(t, "audit trail: cannot recreate the removed key state file %s: %s",
                            t->state_path, strerror(-rc));
            return rc;
        }
        t->state_removed = false;
        json_object_set_new(*recovered, "key_state_recreated", json_true());
        talon_log_warn(t->log, "audit trail: recreated the removed key state file %s at epoch %"
                       PRIu64, t->state_path, t->epoch);
    }
    if (t->file_removed) {
        rc = restore_active_file(t);
        if (rc < 0) {
            audit_log_error(t, "audit trail: cannot restore the removed file %s in %s: %s%s", file,
                            t->dir, strerror(-rc),
                            rc == -EEXIST ? " (another file has its name; move it away)" : "");
            return rc;
        }
        t->file_removed = false;
        json_object_set_new(*recovered, "restored_bytes", json_integer((json_int_t)t->file_size));
        talon_log_warn(t->log, "audit trail: restored the removed file %s/%s from the open "
                       "descriptor (%" PRIu64 " bytes, records up to seq %" PRIu64 "); older "
                       "trail files removed with it are lost", t->dir, file, t->file_size, t->seq);
    }
    json_object_set_new(*recovered, "last_seq", json_integer((json_int_t)t->seq));
    return 0;
}
