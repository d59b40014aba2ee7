/* The verification key of talon audit verify: checked as a file, and
 * matched with the trail it is to verify, before the verifier runs. A key
 * file that is damaged or belongs to another trail is then a usage error
 * (exit 2) that names the key, and not a "spliced" finding against the
 * trail (exit 1). */
#include "cli/audit_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "talon/audit_reader.h"

/* "talon-audit-key v1 trail=<32 hex> key0=<64 hex>", without its '\n'. */
#define KEY_LINE_LEN (sizeof("talon-audit-key v1 trail= key0=") - 1 + 32 + 64)
#define KEY_READ_MAX 4096

/* The shape of a key file: the length of its first line, and the bytes
 * after that line and its '\n'. */
typedef struct key_file_shape {
    size_t line_len;
    unsigned long long extra;
    bool crlf;          /* the first line ends with a CR byte */
} key_file_shape;

static int describe_open_error(const char *path, int rc, char *err, size_t errlen)
{
    if (rc == -ENOENT)
        snprintf(err, errlen, "verification key %s not found; pass the key file that "
                 "'talon audit keygen' wrote", path);
    else if (rc == -EACCES)
        snprintf(err, errlen, "cannot read the verification key %s: %s; run talon audit as a "
                 "user who may read it", path, strerror(-rc));
    else
        snprintf(err, errlen, "cannot read the verification key %s: %s", path, strerror(-rc));
    return rc;
}

/* Check that path is a non-empty regular file we can read, and measure its
 * first line. The bytes read are cleansed: they are the key. */
static int measure_key_file(const char *path, key_file_shape *shape, char *err, size_t errlen)
{
    char buf[KEY_READ_MAX];
    struct stat st;
    ssize_t n;
    int fd, rc = 0;

    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return describe_open_error(path, -errno, err, errlen);
    if (fstat(fd, &st) < 0) {
        rc = describe_open_error(path, -errno, err, errlen);
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "verification key %s is a directory; pass the key file itself, "
                 "the one line that 'talon audit keygen' wrote", path);
        rc = -EISDIR;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "verification key %s is not a regular file; pass the key file "
                 "that 'talon audit keygen' wrote", path);
        rc = -EINVAL;
        goto out;
    }
    if (st.st_size == 0) {
        snprintf(err, errlen, "verification key %s is empty; copy the key file again from "
                 "where 'talon audit keygen' wrote it", path);
        rc = -EINVAL;
        goto out;
    }
    n = pread(fd, buf, sizeof(buf), 0);
    if (n < 0) {
        rc = describe_open_error(path, -errno, err, errlen);
        goto out;
    }
    const char *nl = memchr(buf, '\n', (size_t)n);
    shape->line_len = nl ? (size_t)(nl - buf) : (size_t)n;
    shape->extra = nl ? (unsigned long long)st.st_size - shape->line_len - 1 : 0;
    shape->crlf = shape->line_len > 0 && buf[shape->line_len - 1] == '\r';
    OPENSSL_cleanse(buf, sizeof(buf));

out:
    close(fd);
    return rc;
}

int cli_first_record(talon_audit_reader *reader, size_t i, talon_audit_record *rec)
{
    size_t size;
    const char *data = talon_audit_reader_file_data(reader, i, &size);
    if (data == NULL || size == 0)
        return 0;
    const char *nl = memchr(data, '\n', size);
    if (nl == NULL || talon_audit_record_parse(data, (size_t)(nl - data), rec, NULL, 0) < 0)
        return -1;
    return 1;
}

/* Decode the trail id of the first record into out. Returns false when the
 * first line of the first non-empty file is not a complete record: the
 * verifier then names that line. */
static bool first_record_trail(talon_audit_reader *reader, char out[33], const char **file)
{
    for (size_t i = 0; i < talon_audit_reader_file_count(reader); i++) {
        talon_audit_record rec;
        int rc = cli_first_record(reader, i, &rec);
        if (rc == 0)
            continue;
        if (rc < 0 || talon_audit_str_decode(&rec.trail, out, 33) != 32)
            return false;
        *file = talon_audit_reader_file_path(reader, i);
        return true;
    }
    return false;
}

/* Append to err, which says that the key line did not load, what is wrong
 * with the line's length or line end. A key line whose only fault is a CRLF
 * line end (Windows editors and transfers write them) gets a message of its
 * own, because a byte count does not show the CR. */
static void describe_key_line(const char *key_path, const key_file_shape *shape, char *err, size_t errlen)
{
    size_t used = strlen(err);

    if (shape->crlf && shape->line_len - 1 == KEY_LINE_LEN) {
        snprintf(err, errlen, "verification key %s has CRLF line ends (a CR byte before its "
                 "newline); a key file has LF line ends: remove the CR, for example with "
                 "sed -i 's/\\r$//' %s", key_path, key_path);
        return;
    }
    if (used >= errlen)
        return;
    if (shape->crlf)
        snprintf(err + used, errlen - used, "; its first line has %zu bytes before its CRLF line "
                 "end, a key line has %zu", shape->line_len - 1, KEY_LINE_LEN);
    else if (shape->line_len != KEY_LINE_LEN)
        snprintf(err + used, errlen - used, "; its first line has %zu bytes, a key line has %zu",
                 shape->line_len, KEY_LINE_LEN);
}

int cli_check_verify_key(const char *key_path, talon_audit_reader *reader, char *err, size_t errlen)
{
    static const char hex[] = "0123456789abcdef";
    key_file_shape shape;
    uint8_t trail[16], key0[32];
    char key_trail[33], record_trail[33];
    const char *file;
    int rc;

    rc = measure_key_file(key_path, &shape, err, errlen);
    if (rc < 0)
        return rc;
    rc = talon_audit_key_load(key_path, trail, key0, err, errlen);
    OPENSSL_cleanse(key0, sizeof(key0));
    if (rc < 0) {
        describe_key_line(key_path, &shape, err, errlen);
        return rc;
    }
    if (shape.extra > 0) {
        snprintf(err, errlen, "verification key %s has %llu bytes after its key line (a second "
                 "line or trailing bytes); a key file is the one line that 'talon audit keygen' "
                 "wrote: remove the rest", key_path, shape.extra);
        return -EINVAL;
    }

    for (int i = 0; i < 16; i++) {
        key_trail[2 * i] = hex[trail[i] >> 4];
        key_trail[2 * i + 1] = hex[trail[i] & 15];
    }
    key_trail[32] = '\0';
    if (first_record_trail(reader, record_trail, &file) && strcmp(record_trail, key_trail) != 0) {
        snprintf(err, errlen, "key %s is for trail %s but the trail is %s (first record of %s); "
                 "pass the key file of this trail; if %s is this trail's key, its records were "
                 "replaced by those of another trail", key_path, key_trail, record_trail, file,
                 key_path);
        return -EINVAL;
    }
    return 0;
}
