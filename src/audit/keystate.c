/* Key files: the auditor's verification key and the server's key state.
 *
 *   talon-audit-key v1 trail=<32 hex> key0=<64 hex>\n
 *   talon-audit-state v1 trail=<32 hex> epoch=<20 digits> key=<64 hex>\n
 *
 * The state line has a fixed length, so advancing the epoch overwrites the
 * old key in place (pwrite at offset 0, then fdatasync) instead of leaving
 * it in a freed block of a rewritten file. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "audit/audit_internal.h"

#define KEY_FILE_LEN (sizeof("talon-audit-key v1 trail= key0=\n") - 1 + 32 + 64)

void audit_keystate_format(char line[AUDIT_STATE_LINE_LEN + 1], const audit_keystate *ks)
{
    char trail[AUDIT_HEX_TRAIL_LEN + 1];
    char key[AUDIT_HEX_HASH_LEN + 1];

    audit_hex(trail, ks->trail_id, AUDIT_TRAIL_ID_LEN);
    trail[AUDIT_HEX_TRAIL_LEN] = '\0';
    audit_hex(key, ks->key, AUDIT_KEY_LEN);
    key[AUDIT_HEX_HASH_LEN] = '\0';
    snprintf(line, AUDIT_STATE_LINE_LEN + 1, "talon-audit-state v1 trail=%s epoch=%020" PRIu64
             " key=%s\n", trail, ks->epoch, key);
    OPENSSL_cleanse(key, sizeof(key));
}

/* mkdir -p for the parent directory of path, mode 0700 for new levels. */
static int make_parent_dirs(const char *path)
{
    char *copy = strdup(path);
    char *slash;
    int rc = 0;

    if (copy == NULL)
        return -ENOMEM;
    slash = strrchr(copy, '/');
    if (slash == NULL || slash == copy) {
        free(copy); /* the parent is the working directory or the root */
        return 0;
    }
    *slash = '\0';
    rc = audit_make_dirs(copy, 0700);
    free(copy);
    return rc;
}

int audit_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

static int fsync_parent(const char *path)
{
    char *copy = strdup(path);
    int rc;

    if (copy == NULL)
        return -ENOMEM;
    rc = audit_fsync_dir(dirname(copy));
    free(copy);
    return rc;
}

/* Create path with O_EXCL, mode 0600 whatever the umask, write line, sync. */
static int write_new_secret_file(const char *path, const char *line, size_t len,
                                 char *err, size_t errlen)
{
    int fd, rc;

    rc = make_parent_dirs(path);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create the directory of %s: %s", path, strerror(-rc));
        return rc;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        if (rc == -EEXIST)
            snprintf(err, errlen, "%s already exists; refusing to overwrite a key "
                     "(remove it first only if its trail is no longer needed)", path);
        else
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(-rc));
        return rc;
    }
    if (fchmod(fd, 0600) < 0 || write(fd, line, len) != (ssize_t)len || fsync(fd) < 0) {
        rc = errno ? -errno : -EIO;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
        close(fd);
        unlink(path);
        return rc;
    }
    close(fd);
    fsync_parent(path);
    return 0;
}

int talon_audit_keygen(const char *verify_key_path, const char *state_path,
                       char *err, size_t errlen)
{
    audit_keystate ks;
    char trail[AUDIT_HEX_TRAIL_LEN + 1];
    char key[AUDIT_HEX_HASH_LEN + 1];
    char keyline[KEY_FILE_LEN + 1];
    char stateline[AUDIT_STATE_LINE_LEN + 1];
    struct stat st;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (verify_key_path == NULL || state_path == NULL) {
        snprintf(err, errlen, "keygen needs a verification key path and a state file path");
        return -EINVAL;
    }
    /* Check both first, so an existing state file never costs the auditor's key. */
    if (lstat(verify_key_path, &st) == 0 || lstat(state_path, &st) == 0) {
        const char *which = lstat(verify_key_path, &st) == 0 ? verify_key_path : state_path;
        if (S_ISLNK(st.st_mode))
            snprintf(err, errlen, "refusing to write key file %s: it is a symbolic link; "
                     "point the configuration at the real file", which);
        else
            snprintf(err, errlen, "%s already exists; refusing to overwrite a key "
                     "(remove it first only if its trail is no longer needed)", which);
        return -EEXIST;
    }

    memset(&ks, 0, sizeof(ks));
    if (RAND_bytes(ks.trail_id, sizeof(ks.trail_id)) != 1 ||
        RAND_bytes(ks.key, sizeof(ks.key)) != 1) {
        snprintf(err, errlen, "the OpenSSL random generator failed; no key was written");
        return -EIO;
    }
    audit_hex(trail, ks.trail_id, AUDIT_TRAIL_ID_LEN);
    trail[AUDIT_HEX_TRAIL_LEN] = '\0';
    audit_hex(key, ks.key, AUDIT_KEY_LEN);
    key[AUDIT_HEX_HASH_LEN] = '\0';
    snprintf(keyline, sizeof(keyline), "talon-audit-key v1 trail=%s key0=%s\n", trail, key);
    audit_keystate_format(stateline, &ks);

    rc = write_new_secret_file(verify_key_path, keyline, KEY_FILE_LEN, err, errlen);
    if (rc == 0) {
        rc = write_new_secret_file(state_path, stateline, AUDIT_STATE_LINE_LEN, err, errlen);
        if (rc < 0)
            unlink(verify_key_path); /* no half-made key pair */
    }
    OPENSSL_cleanse(&ks, sizeof(ks));
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(keyline, sizeof(keyline));
    OPENSSL_cleanse(stateline, sizeof(stateline));
    return rc;
}

static int parse_state_line(const char *line, audit_keystate *ks)
{
    const char *p = line;
    uint64_t epoch = 0;

    if (strncmp(p, "talon-audit-state v1 trail=", 27) != 0)
        return -EINVAL;
    p += 27;
    if (audit_unhex(ks->trail_id, p, AUDIT_TRAIL_ID_LEN) < 0)
        return -EINVAL;
    p += AUDIT_HEX_TRAIL_LEN;
    if (strncmp(p, " epoch=", 7) != 0)
        return -EINVAL;
    p += 7;
    for (int i = 0; i < 20; i++, p++) {
        if (*p < '0' || *p > '9' || epoch > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        epoch = epoch * 10 + (uint64_t)(*p - '0');
    }
    ks->epoch = epoch;
    if (strncmp(p, " key=", 5) != 0)
        return -EINVAL;
    p += 5;
    if (audit_unhex(ks->key, p, AUDIT_KEY_LEN) < 0)
        return -EINVAL;
    p += AUDIT_HEX_HASH_LEN;
    return *p == '\n' ? 0 : -EINVAL;
}

int audit_keystate_load(const char *path, int *fd_out, audit_keystate *ks,
                        char *err, size_t errlen)
{
    char line[AUDIT_STATE_LINE_LEN + 1];
    struct stat st;
    ssize_t n;
    int fd, rc;

    fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        if (rc == -ENOENT)
            snprintf(err, errlen, "audit key state file %s not found; run `talon audit "
                     "keygen` to create the trail keys", path);
        else if (rc == -ELOOP)
            snprintf(err, errlen, "refusing to open audit key state file %s: it is a symbolic "
                     "link; point the configuration at the real file", path);
        else
            snprintf(err, errlen, "cannot open audit key state file %s: %s", path,
                     strerror(-rc));
        return rc;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "audit key state file %s is not a regular file", path);
        close(fd);
        return -EINVAL;
    }
    if ((st.st_mode & 077) != 0)
        fchmod(fd, 0600); /* the key must not stay readable by others */

    n = pread(fd, line, sizeof(line), 0);
    if (n != AUDIT_STATE_LINE_LEN) {
        snprintf(err, errlen, "audit key state file %s is damaged: expected one line of %d "
                 "bytes, read %zd", path, AUDIT_STATE_LINE_LEN, n);
        close(fd);
        OPENSSL_cleanse(line, sizeof(line));
        return -EINVAL;
    }
    line[AUDIT_STATE_LINE_LEN] = '\0';
    rc = parse_state_line(line, ks);
    OPENSSL_cleanse(line, sizeof(line));
    if (rc < 0) {
        snprintf(err, errlen, "audit key state file %s is damaged: not a "
                 "\"talon-audit-state v1\" line", path);
        OPENSSL_cleanse(ks, sizeof(*ks));
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

int audit_keystate_store(int fd, const audit_keystate *ks)
{
    char line[AUDIT_STATE_LINE_LEN + 1];
    ssize_t n;
    int rc = 0;

    audit_keystate_format(line, ks);
    n = pwrite(fd, line, AUDIT_STATE_LINE_LEN, 0);
    if (n != AUDIT_STATE_LINE_LEN)
        rc = n < 0 ? -errno : -EIO;
    else if (fdatasync(fd) < 0)
        rc = -errno;
    OPENSSL_cleanse(line, sizeof(line));
    return rc;
}

int audit_keystate_store_trail(int fd, const talon_audit_trail *t)
{
    audit_keystate ks;
    int rc;

    memset(&ks, 0, sizeof(ks));
    audit_unhex(ks.trail_id, t->trail_hex, AUDIT_TRAIL_ID_LEN);
    ks.epoch = t->epoch;
    memcpy(ks.key, t->key, AUDIT_KEY_LEN);
    rc = audit_keystate_store(fd, &ks);
    OPENSSL_cleanse(&ks, sizeof(ks));
    return rc;
}
