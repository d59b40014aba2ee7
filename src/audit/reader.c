/* Trail reader: map trail files read-only (record_parse.c parses their
 * lines in place).
 */
#include "audit/reader_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define READAHEAD_MIN_BYTES (1 << 20) /* files from this size get MADV_WILLNEED */

/* ---- Opening ------------------------------------------------------------ */

static uint64_t name_index(const char *name)
{
    /* audit-NNNNNNNN.jsonl, exactly 8 digits */
    if (strlen(name) != 20 || memcmp(name, "audit-", 6) != 0 || strcmp(name + 14, ".jsonl") != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 6; i < 14; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    return v;
}

static int add_file(talon_audit_reader *r, const char *path, char *err, size_t errlen)
{
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer forever, before fstat could reject it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -EINVAL;
    }
    /* A file read twice would look like a gap or reordering to verify and
     * print its records twice in query, so name the real mistake. */
    for (size_t i = 0; i < r->nfiles; i++) {
        if (r->files[i].dev == st.st_dev && r->files[i].ino == st.st_ino) {
            snprintf(err, errlen, "%s: given twice (the same file as %s); give each trail file once", path,
                     r->files[i].path);
            close(fd);
            return -EINVAL;
        }
    }
    const char *data = NULL;
    if (st.st_size > 0) {
        /* A file cut shorter while mapped makes reads of whole pages past
         * its new end raise SIGBUS. The writer cuts the active file only at
         * startup (crash recovery) and right after a failed write. Readers
         * inside the server avoid it with talon_audit_pin_files(); the CLI
         * catches the signal and names the file with
         * talon_audit_reader_mapped_path(). */
        data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (data == MAP_FAILED) {
            int e = errno;
            snprintf(err, errlen, "%s: cannot map: %s", path, strerror(e));
            close(fd);
            return -e;
        }
        /* Read ahead a large file. For a small one the system call costs
         * more than it saves. One advice: the values are not flags that
         * combine, and adding MADV_SEQUENTIAL in a second call made no
         * measurable difference on a 1 GB trail in the page cache. */
        if (st.st_size >= READAHEAD_MIN_BYTES)
            madvise((void *)data, (size_t)st.st_size, MADV_WILLNEED);
    }
    close(fd);

    reader_file *grown = realloc(r->files, (r->nfiles + 1) * sizeof *grown);
    if (!grown)
        goto nomem;
    r->files = grown;
    reader_file *f = &r->files[r->nfiles];
    f->path = strdup(path);
    if (!f->path)
        goto nomem;
    const char *base = strrchr(path, '/');
    f->index = name_index(base ? base + 1 : path);
    f->data = data;
    f->size = (size_t)st.st_size;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    r->nfiles++;
    r->total += f->size;
    return 0;
nomem:
    if (data)
        munmap((void *)data, (size_t)st.st_size);
    snprintf(err, errlen, "%s: out of memory", path);
    return -ENOMEM;
}

/* ---- Open readers, for a SIGBUS handler -------------------------------- */

/* Every open reader, newest first. Opening and closing take the lock; a
 * signal handler walks the list without it, so a reader is linked only when
 * its files are all mapped and unlinked before they are unmapped. */
static _Atomic(talon_audit_reader *) open_readers;
static pthread_mutex_t open_readers_lock = PTHREAD_MUTEX_INITIALIZER;

static void link_reader(talon_audit_reader *r)
{
    pthread_mutex_lock(&open_readers_lock);
    atomic_store(&r->next, atomic_load(&open_readers));
    atomic_store(&open_readers, r);
    pthread_mutex_unlock(&open_readers_lock);
}

static void unlink_reader(talon_audit_reader *r)
{
    pthread_mutex_lock(&open_readers_lock);
    for (_Atomic(talon_audit_reader *) *link = &open_readers; atomic_load(link); link = &atomic_load(link)->next) {
        if (atomic_load(link) == r) {
            atomic_store(link, atomic_load(&r->next));
            break;
        }
    }
    pthread_mutex_unlock(&open_readers_lock);
}

const char *talon_audit_reader_mapped_path(const void *addr)
{
    const char *a = addr;
    for (talon_audit_reader *r = atomic_load(&open_readers); r; r = atomic_load(&r->next))
        for (size_t i = 0; i < r->nfiles; i++)
            if (r->files[i].data && a >= r->files[i].data && a < r->files[i].data + r->files[i].size)
                return r->files[i].path;
    return NULL;
}

/* Test hook: with TALON_TEST_PAUSE_AFTER_MAP=<FIFO path>, a reader opens
 * that FIFO after mapping its files, before anything reads them, and waits
 * until the writer closes it. A test opens the FIFO for writing (which
 * returns once the files are mapped), shrinks a file, and closes it. */
static void test_pause_after_map(void)
{
    const char *fifo = getenv("TALON_TEST_PAUSE_AFTER_MAP");
    if (!fifo || !*fifo)
        return;
    int fd = open(fifo, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
}

static int cmp_index(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int add_dir(talon_audit_reader *r, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot open directory: %s", dir, strerror(e));
        return -e;
    }
    uint64_t *idx = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t i = name_index(de->d_name);
        if (i == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *g = realloc(idx, cap * sizeof *g);
            if (!g) {
                rc = -ENOMEM;
                snprintf(err, errlen, "%s: out of memory", dir);
                goto out;
            }
            idx = g;
        }
        idx[n++] = i;
    }
    if (n == 0) {
        rc = -ENOENT;
        snprintf(err, errlen, "%s: no audit-NNNNNNNN.jsonl files in this directory", dir);
        goto out;
    }
    qsort(idx, n, sizeof *idx, cmp_index);
    for (size_t k = 0; k < n && rc == 0; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/audit-%08llu.jsonl", dir, (unsigned long long)idx[k]);
        rc = add_file(r, path, err, errlen);
    }
out:
    free(idx);
    closedir(d);
    return rc;
}

int talon_audit_reader_open(talon_audit_reader **out, const char *const *paths, size_t npaths,
                            char *err, size_t errlen)
{
    *out = NULL;
    talon_audit_reader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < npaths; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            int e = errno;
            snprintf(err, errlen, "%s: %s", paths[i], strerror(e));
            talon_audit_reader_close(r);
            return -e;
        }
        int rc = S_ISDIR(st.st_mode) ? add_dir(r, paths[i], err, errlen)
                                     : add_file(r, paths[i], err, errlen);
        if (rc < 0) {
            talon_audit_reader_close(r);
            return rc;
        }
    }
    link_reader(r);
    test_pause_after_map();
    *out = r;
    return 0;
}

void talon_audit_reader_close(talon_audit_reader *r)
{
    if (!r)
        return;
    unlink_reader(r);
    for (size_t i = 0; i < r->nfiles; i++) {
        if (r->files[i].data)
            munmap((void *)r->files[i].data, r->files[i].size);
        free(r->files[i].path);
    }
    free(r->files);
    free(r);
}

size_t talon_audit_reader_file_count(const talon_audit_reader *r) { return r->nfiles; }

const char *talon_audit_reader_file_path(const talon_audit_reader *r, size_t i)
{
    return i < r->nfiles ? r->files[i].path : NULL;
}

uint64_t talon_audit_reader_file_index(const talon_audit_reader *r, size_t i)
{
    return i < r->nfiles ? r->files[i].index : 0;
}

const char *talon_audit_reader_file_data(const talon_audit_reader *r, size_t i, size_t *size)
{
    if (i >= r->nfiles) {
        *size = 0;
        return NULL;
    }
    *size = r->files[i].size;
    return r->files[i].data;
}

uint64_t talon_audit_reader_total_bytes(const talon_audit_reader *r) { return r->total; }
