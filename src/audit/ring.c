/* The sync ring: a file of fixed size beside the trail that makes a sync
 * batch durable without an fdatasync of the trail file.
 *
 * Why: after an append, fdatasync must also commit the file's new size,
 * which on ext4 costs a journal commit and a second cache flush. Writing
 * over blocks that already exist changes no metadata, so the fdatasync of
 * the ring writes the data and flushes once. PostgreSQL fills new WAL files
 * with zeros for the same reason (its wal_init_zero setting). On this
 * project's VM (docs/audit.md, "Durability"), a 12 KB append and fdatasync
 * took 147-205 us. The same append without a sync, plus the copy into the
 * ring and its fdatasync, took 99-121 us.
 *
 * The trail file is written as before and readers see no change. Each sync
 * batch becomes one entry of the ring: the bytes of the active file from
 * the last point known durable up to the batch's end. Entries go one after
 * the other from offset 0 and share a random generation. A reset makes the
 * trail file durable by its own fdatasync, erases the first entry's head
 * and draws a new generation. Resets happen at startup, when the ring is
 * full, at rotation and after a failed batch. Recovery applies the entries of the
 * generation found at offset 0, in order, and stops at the first head that
 * does not check out, so no entry from before a reset is ever applied.
 *
 * Only call these from the writer thread, or from open and close. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "audit/audit_internal.h"

#define RING_MAGIC 0x474e5254u /* "TRNG" */
#define RING_FILL_CHUNK (1u << 20)
/* Unsynced bytes of the trail file are pushed to the disk every so often,
 * so that the fdatasync of a reset has little left to write. */
#define RING_KICK_BYTES (1u << 20)

/* In host byte order: the ring never leaves the machine that wrote it. */
typedef struct ring_head {
    uint32_t magic;
    uint32_t len;        /* payload bytes after this head */
    uint64_t generation;
    uint64_t offset;     /* where the payload belongs in the trail file */
    uint32_t file_index; /* which trail file */
    uint32_t crc;        /* crc32 of the head (crc 0) and the payload */
} ring_head;

static uint32_t head_crc(const ring_head *h, const struct iovec *parts, int nparts)
{
    ring_head copy = *h;
    uLong crc;

    copy.crc = 0;
    crc = crc32(0L, (const Bytef *)&copy, sizeof(copy));
    /* Empty parts are skipped: crc32() of a NULL buffer restarts the sum. */
    for (int i = 0; i < nparts; i++)
        if (parts[i].iov_len > 0)
            crc = crc32(crc, parts[i].iov_base, (uInt)parts[i].iov_len);
    return (uint32_t)crc;
}

static uint64_t new_generation(void)
{
    uint64_t g;
    struct timespec ts;

    if (getrandom(&g, sizeof(g), GRND_NONBLOCK) == (ssize_t)sizeof(g))
        return g;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 16);
}

/* Keep the ring as it is for the next start, and let sync batches
 * fdatasync the trail file from now on. Call this when a trail fdatasync
 * failed while entries were in the ring. Linux reports a failed writeback
 * once and drops the pages, so a later fdatasync that succeeds does not
 * prove those bytes reached the disk (PostgreSQL wiki, "Fsync Errors"). */
static void ring_freeze(talon_audit_trail *t, int err)
{
    audit_log_error(t, "audit trail: fdatasync of file %u in %s failed: %s; the sync ring %s "
                    "is kept for the next start, which writes its records back, and sync "
                    "batches use an fdatasync of the trail file until then", t->file_index,
                    t->dir, strerror(err), t->ring_path);
    close(t->ring_fd);
    t->ring_fd = -1;
}

/* Stop using the ring; sync batches fdatasync the trail file from now on.
 * The file is removed, so that a later start cannot apply its entries.
 * Only call this when the trail file is durable. */
static void ring_disable(talon_audit_trail *t, const char *action, int err)
{
    audit_log_error(t, "audit trail: cannot %s the sync ring %s: %s; sync batches use an "
                    "fdatasync of the trail file until the next start (sync_ring_size = 0 "
                    "turns the ring off)", action, t->ring_path, strerror(err));
    if (t->ring_fd >= 0)
        close(t->ring_fd);
    t->ring_fd = -1;
    if (unlink(t->ring_path) < 0 && errno != ENOENT)
        audit_log_error(t, "audit trail: cannot remove the sync ring %s: %s; remove it by hand "
                        "before the next start", t->ring_path, strerror(errno));
    else
        (void)audit_fsync_dir(t->dir);
}

int audit_ring_open(talon_audit_trail *t, uint64_t size)
{
    size_t n = strlen(t->dir) + sizeof("/audit.ring");

    t->ring_fd = -1;
    t->ring_size = size;
    t->ring_path = malloc(n);
    if (t->ring_path == NULL)
        return -ENOMEM;
    snprintf(t->ring_path, n, "%s/audit.ring", t->dir);
    /* Records written by recovery wait for audit_ring_prepare(). */
    t->ring_reset_needed = true;

    /* An existing ring is opened even when the ring is off now: it may
     * hold records that the last run acknowledged. */
    t->ring_fd = open(t->ring_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (t->ring_fd < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

static int write_all(int fd, const char *buf, size_t len, off_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pwrite(fd, buf + done, len - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    return 0;
}

/* Erase the first head, so that no entry before it is applied again. */
static int erase_head(talon_audit_trail *t)
{
    static const ring_head erased;
    int rc = write_all(t->ring_fd, (const char *)&erased, sizeof(erased), 0);

    if (rc == 0 && fdatasync(t->ring_fd) < 0)
        rc = -errno;
    return rc;
}

/* The part of an entry that the file already holds must match it, except
 * where the file reads zeros: blocks that a power loss left unwritten.
 * Other bytes were changed after the write, and the file is not touched
 * there, so that recovery reports the change. Returns -EEXIST then. */
static int check_overlap(talon_audit_trail *t, int fd, const ring_head *h, const char *payload,
                         uint64_t file_size, unsigned active, uint64_t *repaired)
{
    uint64_t n = file_size > h->offset ? file_size - h->offset : 0;
    char *on_disk;
    int rc;

    if (n > h->len)
        n = h->len;
    if (n == 0)
        return 0;
    on_disk = malloc((size_t)n);
    if (on_disk == NULL)
        return -ENOMEM;
    rc = audit_read_full(fd, on_disk, (size_t)n, (off_t)h->offset);
    if (rc == 0 && memcmp(on_disk, payload, (size_t)n) == 0)
        n = 0; /* the usual case after a kill: the file has it all */
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        if (on_disk[i] == payload[i])
            continue;
        if (on_disk[i] == '\0') {
            (*repaired)++;
            continue;
        }
        talon_log_warn(t->log, "audit recovery: file %u differs from the sync ring %s at byte "
                       "%" PRIu64 "; the ring is not applied from there, and the records "
                       "are checked as they are", active, t->ring_path, h->offset + i);
        rc = -EEXIST;
    }
    free(on_disk);
    return rc;
}

/* Apply the entries in ring[0..size) to the trail file fd of index
 * active. Returns the bytes added past the file's end, or -errno. */
static int64_t apply_entries(talon_audit_trail *t, const char *ring, size_t size, int fd,
                             unsigned active, uint64_t *file_size, uint64_t *repaired)
{
    uint64_t generation = 0, start = *file_size;
    size_t pos = 0;

    while (size - pos >= sizeof(ring_head)) {
        ring_head h;
        struct iovec payload;
        int rc;

        memcpy(&h, ring + pos, sizeof(h));
        if (h.magic != RING_MAGIC || h.len > size - pos - sizeof(h))
            break;
        payload.iov_base = (void *)(ring + pos + sizeof(h));
        payload.iov_len = h.len;
        if (head_crc(&h, &payload, 1) != h.crc)
            break; /* torn: its batch was never acknowledged */
        if (pos == 0)
            generation = h.generation;
        else if (h.generation != generation)
            break; /* left over from before the last reset */
        /* Entries of an older file: a rotation made that file durable. */
        if (h.file_index != active)
            break;
        if (h.offset > *file_size) {
            talon_log_warn(t->log, "audit recovery: the sync ring %s continues file %u at byte "
                           "%" PRIu64 " but the file ends at %" PRIu64 "; the ring is not "
                           "applied past that point", t->ring_path, active, h.offset, *file_size);
            break;
        }
        rc = check_overlap(t, fd, &h, payload.iov_base, *file_size, active, repaired);
        if (rc == 0)
            rc = write_all(fd, payload.iov_base, h.len, (off_t)h.offset);
        if (rc == -EEXIST)
            break;
        if (rc < 0)
            return rc;
        if (h.offset + h.len > *file_size)
            *file_size = h.offset + h.len;
        pos += sizeof(h) + h.len;
    }
    return (int64_t)(*file_size - start);
}

int audit_ring_replay(talon_audit_trail *t, unsigned active, char *err, size_t errlen)
{
    char path[4096];
    struct stat st;
    char *ring = NULL;
    size_t ring_len;
    int fd = -1, rc;
    int64_t added;
    uint64_t file_size, repaired = 0;

    if (t->ring_fd < 0)
        return 0;
    if (active == 0) {
        /* No trail file: the ring's entries belong to a removed trail, and
         * must not reach the file that this start creates. */
        rc = erase_head(t);
        if (rc < 0)
            snprintf(err, errlen, "cannot erase the sync ring %s of a removed trail: %s; "
                     "remove it", t->ring_path, strerror(-rc));
        return rc;
    }
    if (fstat(t->ring_fd, &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot read the sync ring %s: %s", t->ring_path, strerror(-rc));
        return rc;
    }
    if (st.st_size < (off_t)sizeof(ring_head))
        return 0;
    ring_len = (size_t)st.st_size;
    ring = malloc(ring_len);
    if (ring == NULL) {
        snprintf(err, errlen, "no memory to read the sync ring %s (%lld bytes)", t->ring_path,
                 (long long)st.st_size);
        return -ENOMEM;
    }
    rc = audit_read_full(t->ring_fd, ring, ring_len, 0);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read the sync ring %s: %s", t->ring_path, strerror(-rc));
        goto out;
    }
    rc = audit_trail_file_path(t, active, path, sizeof(path));
    if (rc < 0)
        goto out;
    fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        /* Reported by the search for the last record, which opens it too. */
        rc = 0;
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open %s to apply the sync ring %s: %s", path,
                 t->ring_path, strerror(-rc));
        goto out;
    }
    file_size = (uint64_t)st.st_size;
    added = apply_entries(t, ring, ring_len, fd, active, &file_size, &repaired);
    if (added < 0 || fdatasync(fd) < 0) {
        rc = added < 0 ? (int)added : -errno;
        snprintf(err, errlen, "cannot write the records of the sync ring %s back to %s: %s",
                 t->ring_path, path, strerror(-rc));
        goto out;
    }
    if (added > 0 || repaired > 0)
        talon_log_warn(t->log, "audit recovery: %" PRIu64 " bytes of acknowledged records were in "
                       "the sync ring %s but not in %s (the machine stopped before they reached "
                       "it): %" PRId64 " past its end, %" PRIu64 " where it read zeros; they "
                       "were written back", (uint64_t)added + repaired, t->ring_path, path, added,
                       repaired);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(ring);
    return rc;
}

/* Write size bytes of zeros: blocks that exist, so that writes over them
 * change no metadata. fallocate would leave unwritten extents, which the
 * first write converts through the journal. */
static int fill_ring(int fd, uint64_t size)
{
    char *zeros = calloc(1, RING_FILL_CHUNK);
    int rc = 0;

    if (zeros == NULL)
        return -ENOMEM;
    if (ftruncate(fd, 0) < 0)
        rc = -errno;
    for (uint64_t off = 0; rc == 0 && off < size; off += RING_FILL_CHUNK) {
        size_t n = size - off < RING_FILL_CHUNK ? (size_t)(size - off) : RING_FILL_CHUNK;
        rc = write_all(fd, zeros, n, (off_t)off);
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    free(zeros);
    return rc;
}

/* Start a new generation: the trail file, written up to end, durable on
 * its own, the first head erased, then the ring empty. */
static int ring_reset(talon_audit_trail *t, uint64_t end)
{
    int rc;

    if (fdatasync(t->fd) < 0) {
        rc = -errno;
        if (t->ring_pos > 0)
            ring_freeze(t, -rc);
        return rc;
    }
    t->ring_covered = end;
    t->ring_kicked = end;
    rc = erase_head(t);
    if (rc < 0) {
        ring_disable(t, "erase", -rc);
        return 0; /* the trail file itself is durable */
    }
    t->ring_generation = new_generation();
    t->ring_pos = 0;
    t->ring_reset_needed = false;
    return 0;
}

int audit_ring_prepare(talon_audit_trail *t)
{
    struct stat st;
    int rc;

    if (t->ring_size == 0) {
        if (t->ring_fd >= 0) {
            /* Its records were applied by recovery and the file is durable. */
            close(t->ring_fd);
            t->ring_fd = -1;
            if (fdatasync(t->fd) == 0 && unlink(t->ring_path) == 0) {
                (void)audit_fsync_dir(t->dir);
                talon_log_info(t->log, "audit trail: sync_ring_size is 0; removed the sync "
                               "ring %s", t->ring_path);
            }
        }
        return 0;
    }
    if (t->ring_fd < 0) {
        t->ring_fd = open(t->ring_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, t->mode);
        if (t->ring_fd < 0) {
            ring_disable(t, "create", errno);
            return 0;
        }
    }
    if (fchmod(t->ring_fd, t->mode) < 0 || fstat(t->ring_fd, &st) < 0) {
        ring_disable(t, "open", errno);
        return 0;
    }
    if ((uint64_t)st.st_size != t->ring_size) {
        /* The file's old entries were applied by recovery; make that
         * durable before they are overwritten. */
        rc = fdatasync(t->fd) < 0 ? -errno : fill_ring(t->ring_fd, t->ring_size);
        if (rc == 0)
            rc = audit_fsync_dir(t->dir);
        if (rc < 0) {
            ring_disable(t, "fill", -rc);
            return 0;
        }
    }
    /* On failure the first commit tries again. */
    (void)ring_reset(t, t->file_size);
    return 0;
}

/* Push written bytes of the trail file to the disk without waiting. */
static void kick_writeback(talon_audit_trail *t, uint64_t end)
{
    if (end - t->ring_kicked < RING_KICK_BYTES)
        return;
    (void)sync_file_range(t->fd, (off_t)t->ring_kicked, (off_t)(end - t->ring_kicked),
                          SYNC_FILE_RANGE_WRITE);
    t->ring_kicked = end;
}

int audit_ring_commit(talon_audit_trail *t, const char *data, size_t len)
{
    uint64_t unsynced = t->file_size - t->ring_covered;
    struct iovec iov[3];
    ring_head h;
    size_t need;
    int rc;

    if (t->ring_covered > t->file_size)
        t->ring_reset_needed = true;
    need = sizeof(h) + (size_t)unsynced + len;
    if (t->ring_reset_needed || need > t->ring_size - t->ring_pos ||
        unsynced > t->ring_size / 4) {
        /* Full, or the ring may hold bytes that the file no longer has. */
        return ring_reset(t, t->file_size + len);
    }

    /* Async records written since the last durable point go first. */
    if (unsynced > 0) {
        if (!audit_buf_reserve(&t->ring_scratch, (size_t)unsynced))
            return -ENOMEM;
        rc = audit_read_full(t->fd, t->ring_scratch.data, (size_t)unsynced, (off_t)t->ring_covered);
        if (rc < 0)
            return rc;
    }
    h = (ring_head){ .magic = RING_MAGIC, .len = (uint32_t)(unsynced + len),
                     .generation = t->ring_generation, .offset = t->ring_covered,
                     .file_index = t->file_index };
    iov[0] = (struct iovec){ .iov_base = &h, .iov_len = sizeof(h) };
    iov[1] = (struct iovec){ .iov_base = t->ring_scratch.data, .iov_len = (size_t)unsynced };
    iov[2] = (struct iovec){ .iov_base = (void *)data, .iov_len = len };
    h.crc = head_crc(&h, iov + 1, 2);

    /* The ring's blocks exist, so only an I/O error can cut this short. */
    ssize_t n = pwritev(t->ring_fd, iov, 3, (off_t)t->ring_pos);
    if (n != (ssize_t)need || fdatasync(t->ring_fd) < 0) {
        rc = n < 0 || n == (ssize_t)need ? errno : EIO;
        /* The bytes are in the trail file: make them durable there first,
         * because the ring may hold the only durable copy of earlier ones. */
        if (fdatasync(t->fd) < 0) {
            rc = -errno;
            ring_freeze(t, -rc);
            return rc;
        }
        ring_disable(t, "write", rc);
        return 0;
    }
    /* A ring removed or moved under the server is not found by the next
     * start, so the entries written to it would not survive a power loss. */
    bool moved;
    if (audit_name_lost(t->ring_fd, t->ring_path, &moved)) {
        if (fdatasync(t->fd) < 0) {
            rc = -errno;
            ring_freeze(t, -rc);
            return rc;
        }
        ring_disable(t, moved ? "find" : "keep using", ENOENT);
        return 0;
    }
    t->ring_pos += need;
    t->ring_covered = t->file_size + len;
    kick_writeback(t, t->ring_covered);
    return 0;
}

void audit_ring_file_sync_failed(talon_audit_trail *t, int err)
{
    if (t->ring_fd >= 0 && t->ring_pos > 0)
        ring_freeze(t, err);
}

void audit_ring_file_synced(talon_audit_trail *t)
{
    if (t->ring_covered < t->file_size)
        t->ring_covered = t->file_size;
}

void audit_ring_forget(talon_audit_trail *t)
{
    t->ring_reset_needed = true;
}

int audit_ring_settle(talon_audit_trail *t)
{
    int rc;

    if (t->ring_fd < 0 || t->ring_pos == 0)
        return 0;
    if (fdatasync(t->fd) < 0) {
        rc = -errno;
        ring_freeze(t, -rc);
        return rc;
    }
    t->ring_reset_needed = true;
    return 0;
}

void audit_ring_file_switched(talon_audit_trail *t)
{
    t->ring_covered = 0;
    t->ring_kicked = 0;
    t->ring_reset_needed = true;
}

void audit_ring_close(talon_audit_trail *t)
{
    if (t->ring_fd >= 0) {
        /* Leave a trail file that needs no ring, and a ring with nothing
         * to apply. */
        if (t->fd >= 0 && t->ring_pos > 0 && ring_reset(t, t->file_size) < 0)
            talon_log_error(t->log, "audit trail: fdatasync of file %u in %s failed at the "
                            "close; the sync ring %s is kept for the next start",
                            t->file_index, t->dir, t->ring_path);
        if (t->ring_fd >= 0)
            close(t->ring_fd);
    }
    t->ring_fd = -1;
    free(t->ring_path);
    t->ring_path = NULL;
    audit_buf_free(&t->ring_scratch);
}
