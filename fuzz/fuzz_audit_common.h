/* A real audit trail for the audit fuzz targets: made once per process by
 * the library's own writer (keygen, open, records, epoch seals, close), in
 * a private temporary directory. Targets write each input to a file there
 * and read it back through the public reader API. */
#ifndef TALON_FUZZ_AUDIT_COMMON_H
#define TALON_FUZZ_AUDIT_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "talon/audit.h"
#include "talon/audit_reader.h"
#include "talon/log.h"

static char fa_root[64];
static char fa_key[128];      /* the auditor's verification key */
static char fa_input[128];    /* where each input is written */
static int fa_input_fd = -1;  /* fa_input, open for the whole run */
static char fa_trail_file[160]; /* the trail the writer made */
static char fa_witness_file[128];
static char fa_trail_hex[33];
static char *fa_original;     /* bytes of the trail the writer made */
static size_t fa_original_len;
static talon_audit_witness *fa_witness; /* the heads the writer sent */
static talon_audit_reader *fa_trail_reader; /* the trail the writer made, open for the whole run */
static size_t fa_witnessed_end; /* end of the last witnessed record in fa_original */

static void fa_die(const char *step, const char *err)
{
    fprintf(stderr, "fuzz setup: %s: %s\n", step, err);
    abort();
}

static void fa_cleanup(void)
{
    talon_audit_reader_close(fa_trail_reader);
    if (fa_input_fd >= 0)
        close(fa_input_fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fa_root);
    if (fa_root[0] && system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", fa_root);
}

static void fa_submit(talon_audit_trail *t, const char *type, const char *actor, bool ok,
                      const char *data_json)
{
    static const char *const roles[] = { "admin", "auditor", NULL };
    json_t *data = json_loads(data_json, 0, NULL);
    talon_audit_event ev = {
        .type = type,
        .outcome = ok ? TALON_AUDIT_SUCCESS : TALON_AUDIT_FAILURE,
        .actor_id = actor,
        .actor_roles = actor ? roles : NULL,
        .source_ip = "192.0.2.10",
        .user_agent = "fuzz \"agent\"\n\x1b[0m \xff",
        .request_id = "4bf92f3577b34da6a3ce929d0e0e4736",
        .method = "POST",
        .route = "/users/{id}",
        .path = "/users/b%C3%A9a",
        .target_type = "user",
        .target_id = "bea",
        .reason = ok ? NULL : "wrong password",
        .data = data,
    };
    if (talon_audit_submit(t, &ev, TALON_AUDIT_SYNC, NULL, NULL) != 0)
        fa_die("submit", type);
    json_decref(data);
}

/* Make the trail: 3 epochs closed by seals, then the shutdown seal. */
static void fa_setup(void)
{
    char err[512] = "", dir[128], state[128], file[160];
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fa_root, sizeof(fa_root), "%s/talon-fuzz-XXXXXX", tmp);
    if (mkdtemp(fa_root) == NULL)
        fa_die("mkdtemp", fa_root);
    atexit(fa_cleanup);
    snprintf(dir, sizeof(dir), "%s/trail", fa_root);
    snprintf(state, sizeof(state), "%s/trail/key.state", fa_root);
    snprintf(fa_key, sizeof(fa_key), "%s/verify.key", fa_root);
    snprintf(fa_input, sizeof(fa_input), "%s/audit-00000001.jsonl", fa_root);
    if (mkdir(dir, 0700) != 0)
        fa_die("mkdir", dir);
    if (talon_audit_keygen(fa_key, state, err, sizeof(err)) != 0)
        fa_die("keygen", err);

    /* The witness logger writes to a file, as a syslog server would. */
    talon_sink *witness_sink;
    talon_sink_options so;
    talon_sink_options_init(&so);
    snprintf(fa_witness_file, sizeof(fa_witness_file), "%s/witness.log", fa_root);
    if (talon_sink_open_file(&witness_sink, fa_witness_file, &so, err, sizeof(err)) != 0 ||
        talon_logger_add_sink(talon_logger_get("audit.witness"), witness_sink, TALON_LOG_INFO,
                              NULL) != 0)
        fa_die("witness sink", err);

    talon_audit_options o;
    talon_audit_options_init(&o);
    o.dir = dir;
    o.state_file = state;
    o.host = "fuzz-host";
    o.epoch_seconds = 86400;
    talon_audit_trail *t;
    if (talon_audit_open(&t, &o, err, sizeof(err)) != 0)
        fa_die("open", err);
    fa_submit(t, "authn_login_success", "alice", true, "{\"password\":\"hunter2\",\"n\":1}");
    fa_submit(t, "authn_login_fail", NULL, false, "{\"user\":\"mallory\"}");
    if (talon_audit_seal(t) != 0)
        fa_die("seal", "epoch 0");
    fa_submit(t, "user_created", "alice", true, "{\"roles\":[\"auditor\"],\"x\":1.5}");
    fa_submit(t, "user_deleted", "alice", true, "{}");
    if (talon_audit_seal(t) != 0)
        fa_die("seal", "epoch 1");
    fa_submit(t, "audit_read", "carol", true, "{\"q\":{\"type\":\"authn_*\"}}");
    talon_audit_close(t);
    if (talon_sink_flush(witness_sink) != 0)
        fa_die("flush", fa_witness_file);
    if (talon_audit_witness_load(fa_witness_file, &fa_witness, err, sizeof(err)) != 0)
        fa_die("witness load", err);
    if (fa_witness->count == 0)
        fa_die("witness", "the writer sent no chain head");

    snprintf(file, sizeof(file), "%s/audit-00000001.jsonl", dir);
    snprintf(fa_trail_file, sizeof(fa_trail_file), "%s", file);
    int fd = open(file, O_RDONLY);
    if (fd < 0)
        fa_die("open trail file", file);
    fa_original = malloc(1 << 20);
    ssize_t n = read(fd, fa_original, 1 << 20);
    close(fd);
    if (n <= 0)
        fa_die("read", file);
    fa_original_len = (size_t)n;

    /* The trail id, and where the record of the highest witnessed seq ends. */
    const char *tr = strstr(fa_original, "\"trail\":\"");
    if (tr == NULL)
        fa_die("trail id", "no \"trail\" in the first record");
    memcpy(fa_trail_hex, tr + 9, 32);
    uint64_t max_seq = 0;
    for (size_t i = 0; i < fa_witness->count; i++)
        if (fa_witness->heads[i].seq > max_seq)
            max_seq = fa_witness->heads[i].seq;
    char want[48];
    snprintf(want, sizeof(want), "{\"v\":1,\"seq\":%llu,", (unsigned long long)max_seq);
    const char *rec = strstr(fa_original, want);
    if (rec == NULL)
        fa_die("witness", "the last witnessed record is not in the trail");
    fa_witnessed_end = (size_t)(strchr(rec, '\n') + 1 - fa_original);

    const char *trail[] = { fa_trail_file };
    if (talon_audit_reader_open(&fa_trail_reader, trail, 1, err, sizeof(err)) != 0)
        fa_die("open the trail", err);
    fa_input_fd = open(fa_input, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fa_input_fd < 0)
        fa_die("open the input file", fa_input);
}

/* Write the bytes as the whole input file. It is rewritten in place, which
 * takes two system calls where opening it anew took a path lookup too. No
 * reader of it may be open, because its mapping would shrink under it. */
static void fa_write_input(const void *data, size_t size)
{
    FUZZ_CHECK(size == 0 || pwrite(fa_input_fd, data, size, 0) == (ssize_t)size);
    FUZZ_CHECK(ftruncate(fa_input_fd, (off_t)size) == 0);
}

/* A reader of the input file, to pass to fa_verify and close after it. */
static talon_audit_reader *fa_open_input(void)
{
    const char *paths[] = { fa_input };
    talon_audit_reader *rd;
    char err[512];
    FUZZ_CHECK(talon_audit_reader_open(&rd, paths, 1, err, sizeof(err)) == 0);
    return rd;
}

static int fa_verify_witnessed(talon_audit_reader *rd, bool with_key, bool open_ok, bool partial,
                               const talon_audit_witness *witness,
                               talon_audit_verify_result *res);

/* Verify the input file that rd has open. Returns the verdict. */
static int fa_verify(talon_audit_reader *rd, bool with_key, bool open_ok, bool partial,
                     talon_audit_verify_result *res)
{
    return fa_verify_witnessed(rd, with_key, open_ok, partial, NULL, res);
}

/* The same, then the witness check when the trail passed on its own. */
static int fa_verify_witnessed(talon_audit_reader *rd, bool with_key, bool open_ok, bool partial,
                               const talon_audit_witness *witness,
                               talon_audit_verify_result *res)
{
    char err[512];
    talon_audit_verify_options vo;
    talon_audit_verify_options_init(&vo);
    vo.key_path = with_key ? fa_key : NULL;
    vo.no_key = !with_key;
    vo.open = open_ok;
    vo.partial = partial;
    /* The trail's epochs are 0 to 3. An input that starts at epoch 10^9
     * would take minutes of key derivation and then fail its MAC check;
     * the limit makes verify fail it at once (incomplete). */
    vo.max_start_epoch = 1 << 16;
    vo.threads = 1;
    memset(res, 0, sizeof(*res));
    int rc = talon_audit_verify(rd, &vo, res, err, sizeof(err));
    FUZZ_CHECK(rc == 0); /* the key file is there: the check must run */
    if (witness != NULL && res->verdict == TALON_AUDIT_INTACT) {
        talon_audit_witness_result wres;
        rc = talon_audit_witness_check(rd, witness, fa_trail_hex, res, &wres, err, sizeof(err));
        FUZZ_CHECK(rc == 0 || rc == -ENOENT);
    }
    FUZZ_CHECK(res->detail[sizeof(res->detail) - 1] == '\0' || res->detail[0] == '\0' ||
               memchr(res->detail, '\0', sizeof(res->detail)) != NULL);
    FUZZ_CHECK(talon_audit_verdict_name(res->verdict) != NULL);
    return (int)res->verdict;
}

#endif
