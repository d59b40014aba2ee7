/* Helpers for the audit trail tests: temporary trails and a chain checker
 * written from docs/audit-format.md alone, with plain OpenSSL calls, so it
 * does not share code with the writer it checks. Include after cmocka.h. */
#ifndef AUDIT_TEST_UTIL_H
#define AUDIT_TEST_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "talon/audit.h"
#include "talon/audit_reader.h"

typedef struct test_trail {
    char root[256];       /* temporary directory of the test */
    char dir[300];        /* trail directory */
    char state[300];      /* key.state */
    char keyfile[300];    /* verification key */
    unsigned char key0[32];
    char trail_hex[33];
} test_trail;

static inline void test_hex(char *out, const unsigned char *p, size_t n)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static inline int test_unhex(unsigned char *out, const char *hex, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return 0;
}

/* K_{e+1} = SHA-256("talon-audit-evolve-v1" || K_e), computed independently. */
static inline void test_evolve(unsigned char key[32])
{
    unsigned char buf[21 + 32];
    memcpy(buf, "talon-audit-evolve-v1", 21);
    memcpy(buf + 21, key, 32);
    SHA256(buf, sizeof(buf), key);
}

static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n + 1);
    if (data != NULL && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    if (data != NULL) {
        data[n] = '\0';
        if (len != NULL)
            *len = (size_t)n;
    }
    return data;
}

/* Make a temporary directory with a fresh key pair in it. */
static inline void test_trail_make(test_trail *tt)
{
    char err[512] = "";
    char *line;

    snprintf(tt->root, sizeof(tt->root), "audit-test-XXXXXX");
    assert_non_null(mkdtemp(tt->root));
    snprintf(tt->dir, sizeof(tt->dir), "%s/trail", tt->root);
    snprintf(tt->state, sizeof(tt->state), "%s/trail/key.state", tt->root);
    snprintf(tt->keyfile, sizeof(tt->keyfile), "%s/verify.key", tt->root);
    int rc = talon_audit_keygen(tt->keyfile, tt->state, err, sizeof(err));
    if (rc != 0)
        fail_msg("keygen failed: %s", err);
    line = test_read_file(tt->keyfile, NULL);
    assert_non_null(line);
    assert_int_equal(strncmp(line, "talon-audit-key v1 trail=", 25), 0);
    memcpy(tt->trail_hex, line + 25, 32);
    tt->trail_hex[32] = '\0';
    assert_int_equal(strncmp(line + 57, " key0=", 6), 0);
    assert_int_equal(test_unhex(tt->key0, line + 63, 32), 0);
    free(line);
}

static inline void test_trail_options(const test_trail *tt, talon_audit_options *o)
{
    talon_audit_options_init(o);
    o->dir = tt->dir;
    o->state_file = tt->state;
    o->host = "test-host";
}

/* Open a trail with o; fails the test with the error when it cannot. */
static inline talon_audit_trail *test_trail_open(const talon_audit_options *o)
{
    talon_audit_trail *t = NULL;
    char err[512] = "";
    int rc = talon_audit_open(&t, o, err, sizeof(err));

    if (rc != 0)
        fail_msg("talon_audit_open: %d %s", rc, err);
    return t;
}

static inline void test_trail_remove(test_trail *tt)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tt->root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tt->root);
}

static inline unsigned test_list_files(const char *dir, unsigned *idx, unsigned max)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    unsigned n = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        unsigned v;
        char tail[16];
        if (strlen(de->d_name) == 20 && sscanf(de->d_name, "audit-%8u%15s", &v, tail) == 2 &&
            strcmp(tail, ".jsonl") == 0 && n < max)
            idx[n++] = v;
    }
    closedir(d);
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
            unsigned x = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = x;
        }
    return n;
}

static const char *const test_record_keys[] = {
    "v", "seq", "epoch", "time", "type", "outcome", "actor", "source", "request",
    "target", "reason", "data", "host", "trail", "prev", "mac", NULL,
};

/* The result of checking a trail: every record, in order. */
typedef struct test_chain {
    json_t *records;   /* array of parsed records */
    json_t *files;     /* array: file index of each record */
    char error[1024];  /* empty when the chain is valid */
    unsigned nfiles;
} test_chain;

static inline void test_chain_free(test_chain *c)
{
    json_decref(c->records);
    json_decref(c->files);
}

/* Check every rule of the Verification section; c->error names the first
 * violation. open_ok: the last file may end without a seal. */
static inline bool test_check_chain(const test_trail *tt, test_chain *c)
{
    unsigned idx[1024];
    unsigned char key[32], prev[32];
    uint64_t key_epoch = 0, last_seq = 0, epoch = 0, epoch_first = 0;
    bool have_prev = false, prev_was_seal = false;
    char path[400];

    memset(c, 0, sizeof(*c));
    c->records = json_array();
    c->files = json_array();
    memcpy(key, tt->key0, 32);
    c->nfiles = test_list_files(tt->dir, idx, 1024);
    if (c->nfiles == 0) {
        snprintf(c->error, sizeof(c->error), "no trail file");
        return false;
    }
    for (unsigned f = 0; f < c->nfiles; f++) {
        size_t len;
        snprintf(path, sizeof(path), "%s/audit-%08u.jsonl", tt->dir, idx[f]);
        char *data = test_read_file(path, &len);
        size_t off = 0, lineno = 0;
        bool last_is_seal = false;
        if (data == NULL) {
            snprintf(c->error, sizeof(c->error), "%s: cannot read", path);
            return false;
        }
        while (off < len) {
            char *nl = memchr(data + off, '\n', len - off);
            const char *line = data + off;
            size_t n;
            json_error_t jerr;
            lineno++;
            if (nl == NULL) {
                snprintf(c->error, sizeof(c->error), "%s:%zu: no final newline", path, lineno);
                free(data);
                return false;
            }
            n = (size_t)(nl - line);
            off += n + 1;
            for (size_t i = 0; i < n; i++) {
                if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
                    snprintf(c->error, sizeof(c->error), "%s:%zu: raw control byte", path, lineno);
                    free(data);
                    return false;
                }
            }
            json_t *rec = json_loadb(line, n, JSON_ALLOW_NUL, &jerr);
            if (rec == NULL) {
                snprintf(c->error, sizeof(c->error), "%s:%zu: JSON: %s", path, lineno, jerr.text);
                free(data);
                return false;
            }
            /* Keys in the specified order. */
            const char *k;
            json_t *v;
            int ki = 0;
            bool order_ok = json_object_size(rec) == 16;
            json_object_foreach(rec, k, v) {
                if (test_record_keys[ki] == NULL || strcmp(k, test_record_keys[ki]) != 0)
                    order_ok = false;
                ki++;
            }
            uint64_t seq = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
            uint64_t ep = (uint64_t)json_integer_value(json_object_get(rec, "epoch"));
            const char *type = json_string_value(json_object_get(rec, "type"));
            const char *mac_hex = json_string_value(json_object_get(rec, "mac"));
            const char *prev_hex = json_string_value(json_object_get(rec, "prev"));
            const char *trail = json_string_value(json_object_get(rec, "trail"));
            const char *why = NULL;
            char hexbuf[65];
            unsigned char h[32], mac[32];
            unsigned maclen = 0;

            if (!order_ok || json_integer_value(json_object_get(rec, "v")) != 1 || type == NULL ||
                mac_hex == NULL || prev_hex == NULL || trail == NULL)
                why = "keys missing or out of order";
            else if (strcmp(trail, tt->trail_hex) != 0)
                why = "trail id differs";
            else if (have_prev && seq != last_seq + 1)
                why = "seq not previous + 1";
            if (why == NULL) {
                if (seq == 1)
                    memset(prev, 0, 32);
                test_hex(hexbuf, prev, 32);
                if ((have_prev || seq == 1) && strcmp(prev_hex, hexbuf) != 0)
                    why = "prev is not the hash of the previous record";
            }
            if (why == NULL && have_prev && !(ep == epoch || (prev_was_seal && ep == epoch + 1)))
                why = "epoch changes without a seal";
            if (why == NULL) {
                if (!have_prev || ep != epoch)
                    epoch_first = 0;
                /* P_i is the line without the 73-byte "mac":"..."} suffix. */
                SHA256((const unsigned char *)line, n - 73, h);
                while (key_epoch < ep) {
                    test_evolve(key);
                    key_epoch++;
                }
                HMAC(EVP_sha256(), key, 32, h, 32, mac, &maclen);
                test_hex(hexbuf, mac, 32);
                if (strcmp(hexbuf, mac_hex) != 0 || memcmp(line + n - 73, "\"mac\":\"", 7) != 0)
                    why = "MAC does not verify";
            }
            last_is_seal = type != NULL && strcmp(type, "audit_epoch_sealed") == 0;
            if (why == NULL && last_is_seal) {
                json_t *d = json_object_get(rec, "data");
                uint64_t first = epoch_first ? epoch_first : seq;
                uint64_t lastq = epoch_first ? seq - 1 : seq;
                test_hex(hexbuf, prev, 32);
                if ((uint64_t)json_integer_value(json_object_get(d, "epoch")) != ep ||
                    (uint64_t)json_integer_value(json_object_get(d, "first_seq")) != first ||
                    (uint64_t)json_integer_value(json_object_get(d, "last_seq")) != lastq ||
                    (uint64_t)json_integer_value(json_object_get(d, "count")) !=
                        (epoch_first ? seq - epoch_first : 0) ||
                    strcmp(json_string_value(json_object_get(d, "head")), hexbuf) != 0)
                    why = "seal data does not match its epoch";
            }
            if (why != NULL) {
                snprintf(c->error, sizeof(c->error), "%s:%zu (seq %llu): %s", path, lineno,
                         (unsigned long long)seq, why);
                json_decref(rec);
                free(data);
                return false;
            }
            if (epoch_first == 0 && !last_is_seal)
                epoch_first = seq;
            memcpy(prev, h, 32);
            have_prev = true;
            last_seq = seq;
            epoch = ep;
            prev_was_seal = last_is_seal;
            json_array_append_new(c->records, rec);
            json_array_append_new(c->files, json_integer(idx[f]));
        }
        free(data);
        if (f + 1 < c->nfiles && !last_is_seal) {
            snprintf(c->error, sizeof(c->error), "%s does not end with a seal", path);
            return false;
        }
    }
    return true;
}

/* The first record of this type at or after index from, or NULL. */
static inline json_t *test_find_type(const test_chain *c, const char *type, size_t from)
{
    for (size_t i = from; i < json_array_size(c->records); i++) {
        json_t *r = json_array_get(c->records, i);
        if (strcmp(json_string_value(json_object_get(r, "type")), type) == 0)
            return r;
    }
    return NULL;
}

/* The number of records of this type in the chain. */
static inline size_t test_count_type(const test_chain *c, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(c->records); i++) {
        json_t *r = json_array_get(c->records, i);
        if (strcmp(json_string_value(json_object_get(r, "type")), type) == 0)
            n++;
    }
    return n;
}

/* A sync record's completion, waited for by the submitting thread. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status;
} waiter;

static inline void waiter_done(void *ctx, int status)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Submit in sync mode and wait: returns the submit error or the status. */
static inline int submit_sync(talon_audit_trail *t, const talon_audit_event *ev)
{
    waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 };
    int rc = talon_audit_submit(t, ev, TALON_AUDIT_SYNC, waiter_done, &w);

    if (rc < 0)
        return rc;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    return w.status;
}

static inline int submit_n(talon_audit_trail *t, int n)
{
    json_t *data = json_object();
    talon_audit_event ev = { .type = "note_created", .actor_id = "alice", .data = data };

    for (int i = 0; i < n; i++) {
        json_object_set_new(data, "n", json_integer(i));
        int rc = submit_sync(t, &ev);
        if (rc != 0) {
            json_decref(data);
            return rc;
        }
    }
    json_decref(data);
    return 0;
}

/* Crash a writer: open a trail with o in a child, run steps(t, arg), then
 * SIGKILL it. Fails the test when the open or a step failed. */
static inline void test_crash_after(const talon_audit_options *o,
                                    int (*steps)(talon_audit_trail *t, const void *arg),
                                    const void *arg)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        talon_audit_trail *t = NULL;
        char err[512];
        if (talon_audit_open(&t, o, err, sizeof(err)) != 0)
            _exit(2);
        if (steps(t, arg) != 0)
            _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}

/* Run talon's own verifier (src/audit/verify.c) on a closed trail as a
 * second, independent opinion. */
static inline void test_verify_with_library(const test_trail *tt, bool partial)
{
    const char *paths[] = { tt->dir };
    talon_audit_reader *reader = NULL;
    talon_audit_verify_options vo;
    talon_audit_verify_result res;
    char err[512] = "";

    if (talon_audit_reader_open(&reader, paths, 1, err, sizeof(err)) != 0)
        fail_msg("talon_audit_reader_open: %s", err);
    talon_audit_verify_options_init(&vo);
    vo.key_path = tt->keyfile;
    vo.partial = partial;
    vo.threads = 1;
    if (talon_audit_verify(reader, &vo, &res, err, sizeof(err)) != 0)
        fail_msg("talon_audit_verify: %s", err);
    if (res.verdict != TALON_AUDIT_INTACT)
        fail_msg("talon_audit_verify: %s at %s:%llu seq %llu: %s",
                 talon_audit_verdict_name(res.verdict), res.file ? res.file : "(trail)",
                 (unsigned long long)res.line, (unsigned long long)res.seq, res.detail);
    talon_audit_reader_close(reader);
}

#define assert_chain_valid(tt, c)                                                 \
    do {                                                                          \
        if (!test_check_chain((tt), (c)))                                         \
            fail_msg("audit chain invalid: %s", (c)->error);                      \
        test_verify_with_library((tt), json_integer_value(json_object_get(        \
            json_array_get((c)->records, 0), "seq")) != 1);                       \
    } while (0)

#endif
