/* Helpers for the logging tests: temporary directories, reading files
 * (gzip included) and checking that every numbered record appears exactly
 * once as a whole line. Records carry the message "rec t=<thread> i=<n> end". */
#ifndef TALON_LOG_TEST_LINES_H
#define TALON_LOG_TEST_LINES_H

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define REC_MAX_THREADS 16
#define REC_MAX_PER_THREAD 20000

/* How many times each record was seen, and how many lines were not records. */
typedef struct rec_count {
    unsigned char seen[REC_MAX_THREADS][REC_MAX_PER_THREAD];
    size_t lines;
    size_t bad_lines;
    char first_bad[256];
} rec_count;

static __attribute__((unused)) char *make_temp_dir(void)
{
    char tmpl[] = "/tmp/talon-log-test-XXXXXX";
    char *dir = mkdtemp(tmpl);
    return dir ? strdup(dir) : NULL;
}

static __attribute__((unused)) void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[4096 + 256];
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Read a whole file, gunzipping it when the name ends in ".gz". */
static __attribute__((unused)) char *read_file_all(const char *path, size_t *len)
{
    gzFile gz = gzopen(path, "rb"); /* reads plain files as they are */
    if (!gz)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        int r = gzread(gz, buf + n, (unsigned)(cap - n));
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    gzclose(gz);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Parse "rec t=T i=I end" ending exactly at the end of msg. */
static __attribute__((unused)) int parse_rec(const char *msg, int *t, int *i)
{
    int end = -1;
    if (sscanf(msg, "rec t=%d i=%d end%n", t, i, &end) != 2 || end < 0 || msg[end] != '\0')
        return -1;
    if (*t < 0 || *t >= REC_MAX_THREADS || *i < 0 || *i >= REC_MAX_PER_THREAD)
        return -1;
    return 0;
}

static __attribute__((unused)) void count_bad(rec_count *c, const char *line)
{
    if (c->bad_lines++ == 0)
        snprintf(c->first_bad, sizeof(c->first_bad), "%.200s", line);
}

/* Count the records of a text-format file: "<time> <LEVEL> <logger> rec ...". */
static __attribute__((unused)) void count_text_lines(rec_count *c, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            count_bad(c, "(last line has no newline)");
            return;
        }
        char line[512];
        size_t n = (size_t)(nl - p) < sizeof(line) - 1 ? (size_t)(nl - p) : sizeof(line) - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl + 1;
        c->lines++;
        const char *msg = strstr(line, " rec t=");
        int t, i;
        if (!msg || parse_rec(msg + 1, &t, &i) < 0) {
            count_bad(c, line);
            continue;
        }
        c->seen[t][i]++;
    }
}

/* Count the records of a JSON-lines file by their "message". */
static __attribute__((unused)) void count_json_lines(rec_count *c, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            count_bad(c, "(last line has no newline)");
            return;
        }
        json_error_t jerr;
        json_t *obj = json_loadb(p, (size_t)(nl - p), 0, &jerr);
        const char *msg = obj ? json_string_value(json_object_get(obj, "message")) : NULL;
        int t, i;
        c->lines++;
        if (!msg || parse_rec(msg, &t, &i) < 0) {
            char line[256];
            snprintf(line, sizeof(line), "%.*s", (int)(nl - p) < 200 ? (int)(nl - p) : 200, p);
            count_bad(c, line);
        } else {
            c->seen[t][i]++;
        }
        json_decref(obj);
        p = nl + 1;
    }
}

static __attribute__((unused)) void count_file(rec_count *c, const char *path, int json)
{
    size_t len = 0;
    char *buf = read_file_all(path, &len);
    if (!buf)
        return;
    if (json)
        count_json_lines(c, buf, len);
    else
        count_text_lines(c, buf, len);
    free(buf);
}

/* Number of records in [0,threads) x [0,per_thread) seen exactly once; the
 * others are reported through missing and duplicated. */
static __attribute__((unused)) size_t count_exactly_once(const rec_count *c, int threads, int per_thread,
                                 size_t *missing, size_t *duplicated)
{
    size_t once = 0;
    *missing = *duplicated = 0;
    for (int t = 0; t < threads; t++) {
        for (int i = 0; i < per_thread; i++) {
            if (c->seen[t][i] == 1)
                once++;
            else if (c->seen[t][i] == 0)
                (*missing)++;
            else
                (*duplicated)++;
        }
    }
    return once;
}

static __attribute__((unused)) mode_t file_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return (mode_t)-1;
    return st.st_mode & 07777;
}

static __attribute__((unused)) int file_contains(const char *path, const char *needle)
{
    size_t len;
    char *buf = read_file_all(path, &len);
    int found = buf && strstr(buf, needle) != NULL;
    free(buf);
    return found;
}

#endif
