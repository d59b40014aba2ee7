/* Trail files: naming, the active file, crash recovery at startup,
 * rotation and retention.
 *
 * Recovery reads only the end of the active file (plus a binary search for
 * the first record of the current epoch), so startup time does not grow
 * with the size of the trail. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "audit/audit_internal.h"
#include "talon/audit_reader.h"

/* Damaged lines at the end of the active file beyond which recovery stops
 * with an error for the operator: a crash tears at most the last batch, so
 * many more bad lines mean the file was damaged some other way. */
#define RECOVER_MAX_TORN_LINES 4096
#define RECOVER_WINDOW_START (256 * 1024)

/* The most bytes that one fallocate call allocates ahead of the records. */
#define RESERVE_CHUNK (1024 * 1024)

int audit_trail_file_path(const talon_audit_trail *t, unsigned index, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/audit-%08u.jsonl", t->dir, index);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* Index of "audit-NNNNNNNN.jsonl", or 0 when name is not a trail file. */
static unsigned parse_trail_name(const char *name)
{
    unsigned index = 0;

    if (strlen(name) != 20 || strncmp(name, "audit-", 6) != 0 || strcmp(name + 14, ".jsonl") != 0)
        return 0;
    for (int i = 6; i < 14; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        index = index * 10 + (unsigned)(name[i] - '0');
    }
    return index;
}

static int compare_unsigned(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

/* Sorted indexes of the trail files in dir; *count may be 0. */
static int list_trail_files(const char *dir, unsigned **out, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    unsigned *v = NULL;
    size_t n = 0, cap = 0;

    if (d == NULL)
        return -errno;
    while ((de = readdir(d)) != NULL) {
        unsigned index = parse_trail_name(de->d_name);
        if (index == 0)
            continue;
        if (n == cap) {
            unsigned *nv = realloc(v, (cap ? cap * 2 : 16) * sizeof(*v));
            if (nv == NULL) {
                free(v);
                closedir(d);
                return -ENOMEM;
            }
            v = nv;
            cap = cap ? cap * 2 : 16;
        }
        v[n++] = index;
    }
    closedir(d);
    if (n > 0)  /* qsort(NULL, 0, ...) is undefined behaviour */
        qsort(v, n, sizeof(*v), compare_unsigned);
    *out = v;
    *count = n;
    return 0;
}

/* Describe a failed open of a trail file. O_NOFOLLOW fails with ELOOP on a
 * symbolic link, and strerror's "Too many levels of symbolic links" would
 * not tell the operator what to fix. */
static void trail_open_error(char *err, size_t errlen, const char *path, int rc)
{
    if (rc == -ELOOP)
        snprintf(err, errlen, "refusing to open audit trail file %s: it is a symbolic link; "
                 "point the configuration at the real trail directory", path);
    else if (rc == -EINVAL)
        snprintf(err, errlen, "cannot open audit trail file %s: it is not a regular file", path);
    else
        snprintf(err, errlen, "cannot open audit trail file %s: %s", path, strerror(-rc));
}

int audit_open_active_file(talon_audit_trail *t, unsigned index, bool create_new)
{
    char path[4096];
    struct stat st;
    /* Readable too: a removed file is restored from this descriptor. */
    int flags = O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
    int fd, rc;

    rc = audit_trail_file_path(t, index, path, sizeof(path));
    if (rc < 0)
        return rc;
    if (create_new)
        flags |= O_EXCL;
    fd = open(path, flags, t->mode);
    if (fd < 0)
        return -errno;
    /* A FIFO or device at the path: its mode is not ours to change. */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = S_ISREG(st.st_mode) ? -errno : -EINVAL;
        close(fd);
        return rc;
    }
    /* The umask may have removed bits, or an old file may have others. */
    if (fchmod(fd, t->mode) < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    /* The new file's directory entry must be durable before records in it
     * are acknowledged. Opening an existing file costs one more fsync, at
     * startup only. */
    rc = audit_fsync_dir(t->dir);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if (t->fd >= 0) {
        audit_release_space(t);
        close(t->fd);
    }
    t->fd = fd;
    t->file_index = index;
    t->file_size = (uint64_t)st.st_size;
    t->reserved_end = 0;
    t->file_dirty = false;
    audit_ring_file_switched(t);
    audit_monotonic(&t->file_started);
    return 0;
}

/* Allocate the blocks of the next len bytes ahead, a chunk at a time, so an
 * fdatasync does not also write the block bitmap that the append changed
 * (measured on ext4: about 17 % less system time per fdatasync).
 * The file's size stays the same, and the write that follows reports a
 * full disk. Only call this from the writer thread. */
void audit_reserve_space(talon_audit_trail *t, size_t len)
{
    uint64_t want = RESERVE_CHUNK;

    if (t->file_size + len <= t->reserved_end)
        return;
    /* Past the rotation size the blocks would be freed again at once. */
    if (t->rotate_size > 0) {
        uint64_t left = t->file_size < t->rotate_size ? t->rotate_size - t->file_size : 0;
        if (left < want)
            want = left;
    }
    if (want < len)
        want = len;
    /* On failure, wait for the next chunk before trying again, so that a
     * full disk costs one call per chunk and not one per batch. */
    (void)fallocate(t->fd, FALLOC_FL_KEEP_SIZE, (off_t)t->file_size, (off_t)want);
    t->reserved_end = t->file_size + want;
}

/* Free the unused reserved blocks of a file that takes no more records.
 * Truncating to the current size changes no byte of the file. */
void audit_release_space(talon_audit_trail *t)
{
    struct stat st;

    if (t->reserved_end <= t->file_size || fstat(t->fd, &st) < 0)
        return;
    if (ftruncate(t->fd, st.st_size) < 0)
        talon_log_warn(t->log, "audit trail: failed to free the space reserved beyond the end "
                       "of file %u in %s: %s; it is freed when the file is removed",
                       t->file_index, t->dir, strerror(errno));
    t->reserved_end = 0;
}

/* ---- reading records back ---- */

int audit_read_full(int fd, void *buf, size_t len, off_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO; /* the file shrank under us */
        done += (size_t)n;
    }
    return 0;
}

/* The head of every record: {"v":1,"seq":N,"epoch":E, */
static bool parse_record_head(const char *p, size_t len, uint64_t *seq, uint64_t *epoch)
{
    static const char v1[] = "{\"v\":1,\"seq\":";
    static const char ep[] = ",\"epoch\":";
    size_t i = sizeof(v1) - 1;
    uint64_t s = 0, e = 0;

    if (len < i || memcmp(p, v1, i) != 0)
        return false;
    if (i >= len || p[i] < '0' || p[i] > '9')
        return false;
    while (i < len && p[i] >= '0' && p[i] <= '9' && s <= UINT64_MAX / 10)
        s = s * 10 + (uint64_t)(p[i++] - '0');
    if (len - i < sizeof(ep) - 1 || memcmp(p + i, ep, sizeof(ep) - 1) != 0)
        return false;
    i += sizeof(ep) - 1;
    if (i >= len || p[i] < '0' || p[i] > '9')
        return false;
    while (i < len && p[i] >= '0' && p[i] <= '9' && e <= UINT64_MAX / 10)
        e = e * 10 + (uint64_t)(p[i++] - '0');
    if (i >= len || p[i] != ',')
        return false;
    *seq = s;
    *epoch = e;
    return true;
}

typedef struct last_record {
    uint64_t seq;
    uint64_t epoch;
    bool is_seal;
    bool is_shutdown_seal; /* a seal with "cause":"shutdown" */
    unsigned char h[AUDIT_HASH_LEN];
    off_t start;  /* offset of the line in its file */
} last_record;

/* LINE_TORN: incomplete or unparseable, as a crash leaves it. LINE_MODIFIED:
 * a complete record that parses but fails its MAC, which no crash makes. */
enum line_verdict { LINE_GOOD, LINE_TORN, LINE_MODIFIED, LINE_FOREIGN };

/* The damaged end of the active file that recovery moved aside. */
typedef struct damaged_tail {
    uint64_t bytes;              /* bytes moved to the .torn-T file */
    char file[64];               /* name of that file */
    unsigned modified_lines;     /* complete lines that parse but fail their MAC */
    uint64_t first_modified_seq; /* seq and offset of the first of them */
    off_t first_modified_offset;
} damaged_tail;

/* Check one complete line (without its \n) against the key state: it must
 * have the record layout, belong to this trail, and carry a valid MAC when
 * its epoch's key is the state's key. A seal of the epoch just before the
 * state's epoch is accepted without a MAC check (that key is gone by
 * design). The line is not handed to a JSON parser: the MAC proves that
 * the writer made it, and jansson cannot parse keys that contain \u0000. */
static enum line_verdict check_line(talon_audit_trail *t, const audit_keystate *ks,
                                    const char *line, size_t len, last_record *rec,
                                    char *why, size_t whylen)
{
    /* P_i ends with: "trail":"<32 hex>","prev":"<64 hex>", */
    static const char trail_key[] = "\"trail\":\"";
    static const char prev_key[] = "\",\"prev\":\"";
    const size_t tail_len = sizeof(trail_key) - 1 + AUDIT_HEX_TRAIL_LEN + sizeof(prev_key) - 1 +
                            AUDIT_HEX_HASH_LEN + 2;
    static const char seal_type[] = "\",\"type\":\"audit_epoch_sealed\",";
    static const char shutdown_cause[] = "\"cause\":\"shutdown\"},\"host\":\"";
    unsigned char mac[AUDIT_HASH_LEN], want[AUDIT_HASH_LEN];
    const char *tail, *time_end;
    size_t plen;

    if (len <= AUDIT_MAC_SUFFIX_LEN + tail_len ||
        memcmp(line + len - AUDIT_MAC_SUFFIX_LEN, "\"mac\":\"", 7) != 0 ||
        memcmp(line + len - 2, "\"}", 2) != 0 || audit_unhex(want, line + len - 66, AUDIT_HASH_LEN) < 0) {
        snprintf(why, whylen, "the line does not end with a \"mac\" field");
        return LINE_TORN;
    }
    plen = len - AUDIT_MAC_SUFFIX_LEN;
    tail = line + plen - tail_len;
    if (memcmp(tail, trail_key, sizeof(trail_key) - 1) != 0 ||
        memcmp(tail + sizeof(trail_key) - 1 + AUDIT_HEX_TRAIL_LEN, prev_key,
               sizeof(prev_key) - 1) != 0 || memcmp(line + plen - 2, "\",", 2) != 0) {
        snprintf(why, whylen, "the line does not have the \"trail\" and \"prev\" fields before \"mac\"");
        return LINE_TORN;
    }
    if (!parse_record_head(line, len, &rec->seq, &rec->epoch)) {
        snprintf(why, whylen, "the line does not start with {\"v\":1,\"seq\":N,\"epoch\":E,");
        return LINE_TORN;
    }
    time_end = memmem(line, plen, "Z\",\"type\":\"", 11);
    rec->is_seal = time_end != NULL && (size_t)(line + plen - time_end) > sizeof(seal_type) &&
                   memcmp(time_end + 1, seal_type, sizeof(seal_type) - 1) == 0;
    /* Seal data is talon's own and ends with its cause, right before "host". */
    rec->is_shutdown_seal = rec->is_seal &&
                            memmem(line, plen, shutdown_cause, sizeof(shutdown_cause) - 1) != NULL;
    if (memcmp(tail + sizeof(trail_key) - 1, t->trail_hex, AUDIT_HEX_TRAIL_LEN) != 0) {
        snprintf(why, whylen, "the record belongs to trail %.32s, the key state to trail %s",
                 tail + sizeof(trail_key) - 1, t->trail_hex);
        return LINE_FOREIGN;
    }
    if (audit_crypto_hash(&t->crypto, line, plen, rec->h) < 0) {
        snprintf(why, whylen, "SHA-256 failed");
        return LINE_TORN;
    }
    if (rec->epoch == ks->epoch) {
        if (audit_crypto_mac(&t->crypto, rec->h, mac) < 0 || CRYPTO_memcmp(mac, want, sizeof(mac)) != 0) {
            talon_audit_record parsed;
            char perr[128];
            /* A crash leaves a prefix of a line, or blocks of zeros, and
             * neither parses. A complete record with a wrong MAC was edited. */
            bool parses = talon_audit_record_parse(line, len, &parsed, perr, sizeof(perr)) == 0;
            snprintf(why, whylen, "the MAC does not verify with the epoch %" PRIu64 " key%s",
                     rec->epoch, parses ? "" : " and the line does not parse");
            return parses ? LINE_MODIFIED : LINE_TORN;
        }
        return LINE_GOOD;
    }
    if (rec->is_seal && rec->epoch + 1 == ks->epoch)
        return LINE_GOOD;
    snprintf(why, whylen, "the record is in epoch %" PRIu64 " but the key state is at epoch "
             "%" PRIu64, rec->epoch, ks->epoch);
    return LINE_FOREIGN;
}

/* Move bytes [from, size) of the file to its .torn-T file, durably, then
 * truncate the file at from. */
static int move_torn_bytes(talon_audit_trail *t, int fd, unsigned index, off_t from, off_t size,
                           char *torn_name, size_t torn_len)
{
    char path[4096];
    char *bytes = NULL;
    size_t n = (size_t)(size - from);
    int tfd = -1, rc;

    snprintf(torn_name, torn_len, "audit-%08u.jsonl.torn-%lld", index, (long long)time(NULL));
    if (snprintf(path, sizeof(path), "%s/%s", t->dir, torn_name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    bytes = malloc(n ? n : 1);
    if (bytes == NULL)
        return -ENOMEM;
    rc = audit_read_full(fd, bytes, n, from);
    if (rc < 0)
        goto out;
    /* Append when a recovery in the same second already made this file. */
    tfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, t->mode);
    if (tfd < 0 || fchmod(tfd, t->mode) < 0 || write(tfd, bytes, n) != (ssize_t)n || fsync(tfd) < 0) {
        rc = errno ? -errno : -EIO;
        goto out;
    }
    rc = audit_fsync_dir(t->dir);
    if (rc < 0)
        goto out;
    if (ftruncate(fd, from) < 0 || fsync(fd) < 0)
        rc = -errno;

out:
    if (tfd >= 0)
        close(tfd);
    free(bytes);
    return rc;
}

/* Log a complete record that parses but fails its MAC. Recovery still
 * moves it aside: stopping the start instead would let anyone with write
 * access to the trail stop the service. */
static void log_modified_line(talon_audit_trail *t, const char *path, const last_record *rec,
                              off_t start, const char *why)
{
    talon_log_error(t->log, "audit recovery: %s byte %lld: seq %" PRIu64 ": %s, but the line is "
                    "complete and parses, which a crash cannot produce: the trail was modified "
                    "after it was written. Moving the line aside so the server can start; the "
                    "audit_recovered record names it with cause \"modified\"", path,
                    (long long)start, rec->seq, why);
}

/* Find the last good record of file index, moving a damaged tail aside
 * when allow_torn. Returns 1 with *rec filled, 0 when the file has no good
 * record, or a negative errno with err set. */
static int find_last_record(talon_audit_trail *t, const audit_keystate *ks, unsigned index,
                            bool allow_torn, last_record *rec, off_t *good_end,
                            damaged_tail *damaged, char *err, size_t errlen)
{
    char path[4096], why[256];
    struct stat st;
    char *win = NULL;
    size_t winlen = RECOVER_WINDOW_START;
    off_t winoff, end;
    int fd, rc = 0, bad = 0;

    audit_trail_file_path(t, index, path, sizeof(path));
    fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        trail_open_error(err, errlen, path, rc);
        goto out;
    }
    end = st.st_size;

reread:
    free(win);
    winoff = st.st_size > (off_t)winlen ? st.st_size - (off_t)winlen : 0;
    win = malloc((size_t)(st.st_size - winoff) + 1);
    if (win == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = audit_read_full(fd, win, (size_t)(st.st_size - winoff), winoff);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read audit trail file %s: %s", path, strerror(-rc));
        goto out;
    }

    while (end > 0) {
        /* The line ending at end: complete if the byte before end is \n. */
        bool complete = win[end - 1 - winoff] == '\n';
        off_t line_end = complete ? end - 1 : end;
        off_t start = line_end;
        while (start > winoff && win[start - 1 - winoff] != '\n')
            start--;
        if (start == winoff && winoff > 0) {
            winlen *= 2; /* the line starts before the window */
            goto reread;
        }
        if (complete) {
            enum line_verdict v = check_line(t, ks, win + (start - winoff),
                                             (size_t)(line_end - start), rec, why, sizeof(why));
            if (v == LINE_GOOD) {
                rec->start = start;
                rc = 1;
                break;
            }
            if (v == LINE_FOREIGN) {
                snprintf(err, errlen, "%s: the record at byte %lld does not match the key state "
                         "%s (%s); is it the state file of this trail?", path,
                         (long long)start, t->state_path, why);
                rc = -EINVAL;
                goto out;
            }
            if (v == LINE_MODIFIED) {
                log_modified_line(t, path, rec, start, why);
                damaged->modified_lines++;
                damaged->first_modified_seq = rec->seq;
                damaged->first_modified_offset = start;
            } else {
                talon_log_warn(t->log, "audit recovery: %s byte %lld: %s", path, (long long)start, why);
            }
        } else {
            talon_log_warn(t->log, "audit recovery: %s ends with an incomplete line of %lld bytes",
                           path, (long long)(end - start));
        }
        if (!allow_torn || ++bad > RECOVER_MAX_TORN_LINES) {
            snprintf(err, errlen, "%s: %s at byte %lld; recovery stops here, restore the file "
                     "from a copy or move the damaged part aside by hand", path,
                     allow_torn ? "too many damaged lines" : "damaged record", (long long)start);
            rc = -EINVAL;
            goto out;
        }
        end = start;
    }
    if (end == 0)
        rc = 0;
    *good_end = end;
    damaged->bytes = (uint64_t)(st.st_size - end);
    if (damaged->bytes > 0) {
        int mrc = move_torn_bytes(t, fd, index, end, st.st_size, damaged->file, sizeof(damaged->file));
        if (mrc < 0) {
            if (mrc == -ELOOP)
                snprintf(err, errlen, "cannot move the torn end of %s aside: refusing to open %s/%s: "
                         "it is a symbolic link; remove it", path, t->dir, damaged->file);
            else
                snprintf(err, errlen, "cannot move the torn end of %s aside: %s", path,
                         strerror(-mrc));
            rc = mrc;
            goto out;
        }
        /* A modified record was already logged at ERROR: do not call it torn here. */
        if (damaged->modified_lines > 0)
            talon_log_warn(t->log, "audit recovery: moved %" PRIu64 " bytes of %s, with %u "
                           "modified record(s), to %s", damaged->bytes, path,
                           (unsigned)damaged->modified_lines, damaged->file);
        else
            talon_log_warn(t->log, "audit recovery: moved %" PRIu64 " torn bytes of %s to %s",
                           damaged->bytes, path, damaged->file);
    }

out:
    free(win);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* seq and epoch of the first line that starts at or after off. */
static int head_at_or_after(int fd, off_t off, off_t limit, uint64_t *seq, uint64_t *epoch)
{
    char buf[4096];
    off_t pos = off > 0 ? off - 1 : 0;
    int rc;

    if (off > 0) {
        for (;;) {
            size_t want = sizeof(buf);
            if (pos >= limit)
                return -EIO;
            if ((off_t)want > limit - pos)
                want = (size_t)(limit - pos);
            rc = audit_read_full(fd, buf, want, pos);
            if (rc < 0)
                return rc;
            char *nl = memchr(buf, '\n', want);
            if (nl != NULL) {
                pos += nl - buf + 1;
                break;
            }
            pos += (off_t)want;
        }
    }
    size_t want = 128;
    if ((off_t)want > limit - pos)
        want = (size_t)(limit - pos);
    rc = audit_read_full(fd, buf, want, pos);
    if (rc < 0)
        return rc;
    return parse_record_head(buf, want, seq, epoch) ? 0 : -EINVAL;
}

/* The seq of the first record of epoch in file index, whose records up to
 * byte last_start are good. Epochs never decrease along a file, so a
 * binary search over byte offsets finds it in O(log size) reads. */
static int find_epoch_start(talon_audit_trail *t, unsigned index, off_t last_start,
                            off_t good_end, uint64_t epoch, uint64_t *first_seq)
{
    char path[4096];
    off_t lo = 0, hi = last_start;
    uint64_t seq, e;
    int fd, rc = 0;

    audit_trail_file_path(t, index, path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    while (lo < hi) {
        off_t mid = lo + (hi - lo) / 2;
        rc = head_at_or_after(fd, mid, good_end, &seq, &e);
        if (rc < 0)
            goto out;
        if (e >= epoch)
            hi = mid;
        else
            lo = mid + 1;
    }
    rc = head_at_or_after(fd, lo, good_end, &seq, &e);
    if (rc == 0)
        *first_seq = seq;

out:
    close(fd);
    return rc;
}

static int restore_fresh(talon_audit_trail *t, const audit_keystate *ks, char *err, size_t errlen)
{
    if (ks->epoch > 0) {
        snprintf(err, errlen, "no audit-*.jsonl file in %s but the key state %s is at epoch %"
                 PRIu64 ": the trail was removed. Restore it, or start a new trail with "
                 "`talon audit keygen` and new key files", t->dir, t->state_path, ks->epoch);
        return -ENOENT;
    }
    t->seq = 0;
    memset(t->prev, 0, sizeof(t->prev));
    t->epoch_first_seq = 0;
    return audit_open_active_file(t, 1, false);
}

/* Write the audit_recovered record of a start after a crash. Its cause is
 * "modified" when a complete record failed its MAC, "torn" when only torn
 * bytes were moved aside, and "unclean_shutdown" otherwise. */
static int write_recovered_record(talon_audit_trail *t, const damaged_tail *damaged, char *err,
                                  size_t errlen)
{
    const char *cause = damaged->modified_lines > 0 ? "modified"
                        : damaged->bytes > 0      ? "torn"
                                                  : "unclean_shutdown";
    json_t *data = json_pack("{s:s,s:I,s:s?,s:I}", "cause", cause,
                             "torn_bytes", (json_int_t)damaged->bytes,
                             "torn_file", damaged->bytes > 0 ? damaged->file : NULL,
                             "last_seq", (json_int_t)t->seq);
    int rc;

    if (data == NULL)
        return -ENOMEM;
    if (damaged->modified_lines > 0) {
        json_object_set_new(data, "modified_lines", json_integer(damaged->modified_lines));
        json_object_set_new(data, "first_modified_seq",
                            json_integer((json_int_t)damaged->first_modified_seq));
        json_object_set_new(data, "first_modified_offset",
                            json_integer((json_int_t)damaged->first_modified_offset));
    }
    rc = audit_write_system_record(t, "audit_recovered", TALON_AUDIT_SUCCESS, NULL, data);
    if (rc < 0)
        snprintf(err, errlen, "cannot write the audit_recovered record to %s: %s", t->dir,
                 strerror(-rc));
    return rc;
}

int audit_recover(talon_audit_trail *t, const audit_keystate *ks, char *err, size_t errlen)
{
    unsigned *files = NULL;
    size_t nfiles = 0;
    unsigned active;
    last_record rec;
    off_t good_end = 0;
    unsigned rec_file;
    damaged_tail damaged = { 0 };
    bool clean_stop = false;
    int rc;

    memcpy(t->key, ks->key, AUDIT_KEY_LEN);
    t->epoch = ks->epoch;
    rc = audit_crypto_set_key(&t->crypto, t->key);
    if (rc < 0)
        return rc;

    rc = list_trail_files(t->dir, &files, &nfiles);
    if (rc < 0) {
        snprintf(err, errlen, "cannot list the audit trail directory %s: %s", t->dir, strerror(-rc));
        return rc;
    }
    /* Records acknowledged through the ring go back first, so that the
     * search for the last record finds them. */
    rc = audit_ring_replay(t, nfiles > 0 ? files[nfiles - 1] : 0, err, errlen);
    if (rc < 0) {
        free(files);
        return rc;
    }
    if (nfiles == 0) {
        free(files);
        return restore_fresh(t, ks, err, errlen);
    }
    active = files[nfiles - 1];
    rec_file = active;
    rc = find_last_record(t, ks, active, true, &rec, &good_end, &damaged, err, errlen);
    if (rc == 0 && nfiles > 1) {
        /* The active file is empty: a rotation made it just before a
         * crash. The chain head is the last record of the file before it. */
        off_t prev_end;
        damaged_tail ignored = { 0 };
        rec_file = files[nfiles - 2];
        rc = find_last_record(t, ks, rec_file, false, &rec, &prev_end, &ignored, err, errlen);
        good_end = prev_end;
    }
    free(files);
    if (rc < 0)
        return rc;

    if (rc == 0) {
        /* No record at all: a fresh trail whose first write was torn. */
        rc = restore_fresh(t, ks, err, errlen);
    } else {
        /* A clean stop ends with the shutdown seal and the key evolved past it. */
        clean_stop = rec.is_shutdown_seal && rec.epoch + 1 == ks->epoch;
        t->seq = rec.seq;
        memcpy(t->prev, rec.h, AUDIT_HASH_LEN);
        t->epoch_first_seq = 0;
        if (rec.is_seal && rec.epoch == ks->epoch) {
            /* The crash fell between writing the seal and updating key.state:
             * finish the epoch change now. */
            audit_keystate next = *ks;
            rc = audit_key_evolve(next.key);
            if (rc == 0) {
                next.epoch++;
                rc = audit_keystate_store(t->state_fd, &next);
            }
            if (rc < 0) {
                snprintf(err, errlen, "cannot advance the key state %s after the last seal: %s",
                         t->state_path, strerror(-rc));
                OPENSSL_cleanse(&next, sizeof(next));
                return rc;
            }
            memcpy(t->key, next.key, AUDIT_KEY_LEN);
            t->epoch = next.epoch;
            OPENSSL_cleanse(&next, sizeof(next));
            rc = audit_crypto_set_key(&t->crypto, t->key);
            if (rc < 0)
                return rc;
            talon_log_warn(t->log, "audit recovery: the last record (seq %" PRIu64 ") seals epoch "
                           "%" PRIu64 " but key.state was not advanced; advanced it to epoch %"
                           PRIu64, rec.seq, rec.epoch, t->epoch);
        } else if (!rec.is_seal) {
            rc = find_epoch_start(t, rec_file, rec.start, good_end, rec.epoch, &t->epoch_first_seq);
            if (rc < 0) {
                snprintf(err, errlen, "cannot find the first record of epoch %" PRIu64
                         " in file %u of %s: %s", rec.epoch, rec_file, t->dir, strerror(-rc));
                return rc;
            }
        }
        rc = audit_open_active_file(t, active, false);
    }
    if (rc < 0) {
        char path[4096];
        audit_trail_file_path(t, active, path, sizeof(path));
        trail_open_error(err, errlen, path, rc);
        return rc;
    }

    if (damaged.bytes > 0 || (t->seq > 0 && !clean_stop))
        return write_recovered_record(t, &damaged, err, errlen);
    return 0;
}

int audit_rotate_file(talon_audit_trail *t)
{
    /* The ring contains bytes of one file only, so the old file must be
     * durable without it. */
    int rc = audit_ring_settle(t);

    if (rc < 0) {
        audit_log_error(t, "audit trail: cannot rotate: fdatasync of file %u in %s failed: %s",
                        t->file_index, t->dir, strerror(-rc));
        return rc;
    }
    rc = audit_open_active_file(t, t->file_index + 1, true);
    if (rc < 0) {
        char path[4096], why[4300];
        audit_trail_file_path(t, t->file_index + 1, path, sizeof(path));
        trail_open_error(why, sizeof(why), path, rc);
        audit_log_error(t, "audit trail: cannot create file %u in %s: %s", t->file_index + 1,
                        t->dir, why);
        return rc;
    }
    talon_log_info(t->log, "audit trail: rotated to %s/audit-%08u.jsonl", t->dir, t->file_index);
    /* Retention waits for the first record in the new file, so a crash right
     * after rotation still finds the chain head in the previous file. */
    t->retention_pending = t->rotate_keep > 0;
    return 0;
}

void audit_apply_retention(talon_audit_trail *t)
{
    unsigned *files = NULL;
    size_t n = 0;
    bool removed = false;

    t->retention_pending = false;
    if (t->rotate_keep == 0 || list_trail_files(t->dir, &files, &n) < 0)
        return;
    for (size_t i = 0; i + t->rotate_keep < n; i++) {
        char path[4096];
        if (files[i] >= t->file_index)
            break; /* never the active file */
        audit_trail_file_path(t, files[i], path, sizeof(path));
        if (unlink(path) < 0) {
            audit_log_error(t, "audit retention: cannot remove %s: %s", path, strerror(errno));
            continue;
        }
        removed = true;
        talon_log_info(t->log, "audit retention: removed %s (rotate_keep %u)", path, t->rotate_keep);
    }
    free(files);
    if (removed)
        audit_fsync_dir(t->dir);
}
