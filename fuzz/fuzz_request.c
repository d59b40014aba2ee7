/* Fuzz percent-decoding, query parsing and request-head handling
 * (src/http/uri.c, request.c, request_id.c, proxy.c) and the pipeline that
 * routes the request (src/http/pipeline.c), without the HTTP engine.
 *
 * Input: the first byte picks the peer address; then lines: method, target,
 * then header lines "Name: value".
 *
 * Invariants checked:
 * - talon_uri_decode never grows its input, NUL-terminates, flags %00, and
 *   decodes a byte-by-byte percent-encoding back to the original bytes;
 * - the decoded query pairs equal those of an independent decoder here,
 *   in order, repeated keys included;
 * - the request id is 1..64 printable bytes without space, quote or
 *   backslash; a trace id is 32 lowercase hex digits;
 * - the client address is the peer or a parseable IP address;
 * - the pipeline sets a status in 100..599, 405 carries Allow, and a
 *   target the parser flagged gets 400.
 * The access log then builds its record from the request (completion
 * callback, json and combined formats; the lines go to /dev/null, their
 * shape is fuzz_log_format's job). */
#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz_util.h"
#include "http/pipeline.h"
#include "http/uri.h"
#include "talon/access_log.h"

static talon_app *app;

static void note_get(talon_req *req, talon_resp *resp, void *ctx)
{
    int64_t id;
    if (talon_req_param(req, "id") != NULL && !talon_req_param_int(req, "id", &id))
        __builtin_trap(); /* {id:int} matched a value that is not an integer */
    talon_resp_set_status(resp, 200);
}

static void echo_post(talon_req *req, talon_resp *resp, void *ctx)
{
    json_t *v = talon_req_json(req, resp);
    if (v == NULL)
        return; /* 400 or 415 was set */
    talon_resp_json(resp, 201, v);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const talon_resource notes = { .name = "note", .on_get = note_get, .on_post = echo_post };
    static const talon_resource users = { .name = "user", .on_get = note_get };
    char err[512];
    app = talon_app_new();
    if (app == NULL ||
        talon_app_add_route(app, "/notes", &notes, err, sizeof(err)) < 0 ||
        talon_app_add_route(app, "/notes/{id:int}", &notes, err, sizeof(err)) < 0 ||
        talon_app_add_route(app, "/users/{user_id}/notes/{id:int}", &users, err, sizeof(err)) < 0 ||
        talon_app_add_route(app, "/files/{name}", &users, err, sizeof(err)) < 0 ||
        talon_proxies_parse("127.0.0.0/8, ::1, 10.0.0.0/8", &app->proxies, err, sizeof(err)) < 0)
        abort();

    talon_sink *sink;
    talon_sink_options so;
    talon_sink_options_init(&so);
    so.overflow = TALON_OVERFLOW_DROP; /* never wait for the writer thread */
    talon_logger *access = talon_logger_get("access");
    talon_log_format *json = talon_log_format_compile("json", err, sizeof(err));
    talon_log_format *combined = talon_log_format_compile("combined", err, sizeof(err));
    talon_access_log *log;
    if (talon_sink_open_file(&sink, "/dev/null", &so, err, sizeof(err)) < 0 || !json || !combined ||
        talon_logger_add_sink(access, sink, TALON_LOG_TRACE, json) < 0 ||
        talon_logger_add_sink(access, sink, TALON_LOG_TRACE, combined) < 0 ||
        talon_access_log_attach(app, NULL, &log, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz setup: access log: %s\n", err);
        abort();
    }
    return 0;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The reference decoder: "%XX" with two hex digits is a byte, anything else
 * is literal; '+' is a space in query strings. */
static size_t ref_decode(char *dst, const char *s, size_t n, bool plus, bool *nul)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n &&
            hexval((unsigned char)s[i + 1]) >= 0 && hexval((unsigned char)s[i + 2]) >= 0) {
            char c = (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
            if (c == '\0')
                *nul = true;
            dst[o++] = c;
            i += 2;
        } else if (plus && s[i] == '+') {
            dst[o++] = ' ';
        } else {
            dst[o++] = s[i];
        }
    }
    dst[o] = '\0';
    return o;
}

static void check_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *ref = malloc(n + 1), *enc = malloc(3 * n + 1);
    FUZZ_CHECK(out && ref && enc);
    for (int plus = 0; plus < 2; plus++) {
        bool nul = false, ref_nul = false;
        size_t len = talon_uri_decode(out, s, n, plus, &nul);
        size_t ref_len = ref_decode(ref, s, n, plus, &ref_nul);
        FUZZ_CHECK(len <= n);
        FUZZ_CHECK(out[len] == '\0');
        FUZZ_CHECK(len == ref_len && memcmp(out, ref, len) == 0);
        FUZZ_CHECK(nul == ref_nul);
    }
    /* Encode every byte, mixing hex case, and decode back. */
    static const char up[] = "0123456789ABCDEF", low[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        const char *hex = (i & 1) ? low : up;
        enc[3 * i] = '%';
        enc[3 * i + 1] = hex[(unsigned char)s[i] >> 4];
        enc[3 * i + 2] = hex[(unsigned char)s[i] & 15];
    }
    bool nul = false;
    size_t len = talon_uri_decode(out, enc, 3 * n, true, &nul);
    FUZZ_CHECK(len == n && memcmp(out, s, n) == 0);
    FUZZ_CHECK(nul == (memchr(s, '\0', n) != NULL));
    free(out);
    free(ref);
    free(enc);
}

/* Compare the request's query list with the reference decoder. */
static void check_query(const talon_req *req, const char *q, size_t qlen)
{
    const char *p = q, *end = q + qlen;
    char *k = malloc(qlen + 1), *v = malloc(qlen + 1);
    FUZZ_CHECK(k && v);
    size_t pairs = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        if (pair_end > p) {
            const char *eq = memchr(p, '=', (size_t)(pair_end - p));
            const char *key_end = eq ? eq : pair_end;
            const char *val = eq ? eq + 1 : pair_end;
            bool nul = false;
            ref_decode(k, p, (size_t)(key_end - p), true, &nul);
            ref_decode(v, val, (size_t)(pair_end - val), true, &nul);
            FUZZ_CHECK(pairs < req->query.n);
            FUZZ_CHECK(strcmp(req->query.items[pairs].name, k) == 0);
            FUZZ_CHECK(strcmp(req->query.items[pairs].value, v) == 0);
            /* talon_req_query_at finds the same value by key. */
            size_t nth = 0;
            for (size_t j = 0; j < pairs; j++)
                nth += strcmp(req->query.items[j].name, k) == 0;
            const char *got = talon_req_query_at(req, k, nth);
            FUZZ_CHECK(got != NULL && strcmp(got, v) == 0);
            pairs++;
        }
        if (amp == NULL)
            break;
        p = pair_end + 1;
    }
    FUZZ_CHECK(pairs == req->query.n);
    free(k);
    free(v);
}

/* The target as the access log writes it (talon_redact_url) must carry no
 * value that the request's own query parser files under a secret name:
 * parsed again, every such value is exactly "[REDACTED]". Names whose raw
 * text is longer than the redactor's name buffer (256 bytes) are skipped:
 * a documented limit of src/log/redact.c. */
static void check_redaction(const talon_req *req)
{
    const char *target = talon_req_target(req);
    size_t len = strlen(target);
    bool found = false;
    size_t n = talon_redact_url(target, len, talon_secret_words, NULL, NULL);
    char *red = malloc(n + 1);
    FUZZ_CHECK(red != NULL);
    FUZZ_CHECK(talon_redact_url(target, len, talon_secret_words, red, &found) == n);
    red[n] = '\0';
    if (strlen(red) != n) { /* a NUL byte cannot reach a request target */
        free(red);
        return;
    }
    talon_req *again = talon_req_create(app);
    FUZZ_CHECK(again != NULL);
    /* Also for a target rejected with 400, because its access-log line shows it too. */
    if (talon_req_set_line(again, "GET", red, "HTTP/1.1") == 0) {
        /* Items are taken from the logged target alone: redaction may
         * change how the parser splits it, so positions in req do not line
         * up with positions in again. */
        for (size_t i = 0; i < again->query.n; i++) {
            const char *name = again->query.items[i].name;
            if (again->query.items[i].value[0] == '\0')
                continue; /* "password" or "password=": nothing to hide */
            if (strlen(name) > 200 || !talon_secret_name(name, strlen(name), talon_secret_words))
                continue;
            if (strcmp(again->query.items[i].value, "[REDACTED]") != 0) {
                fprintf(stderr, "secret query value logged: %s=%s in %s\n", name,
                        again->query.items[i].value, red);
                __builtin_trap();
            }
        }
    }
    talon_req_unref(again);
    free(red);
}

static void check_ids(const talon_req *req)
{
    const char *id = talon_req_id(req);
    size_t n = strlen(id);
    FUZZ_CHECK(n >= 1 && n <= TALON_REQ_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        FUZZ_CHECK(c > 0x20 && c < 0x7f && c != '"' && c != '\\');
    }
    const char *trace = talon_req_trace_id(req);
    if (trace != NULL) {
        FUZZ_CHECK(strlen(trace) == 32);
        for (size_t i = 0; i < 32; i++)
            FUZZ_CHECK((trace[i] >= '0' && trace[i] <= '9') || (trace[i] >= 'a' && trace[i] <= 'f'));
    }
    const char *ip = talon_req_client_ip(req);
    unsigned char buf[16];
    FUZZ_CHECK(strcmp(ip, talon_req_peer_ip(req)) == 0 || inet_pton(AF_INET, ip, buf) == 1 ||
               inet_pton(AF_INET6, ip, buf) == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const peers[] = { "127.0.0.1", "192.0.2.7", "::1", "10.1.2.3" };
    if (size == 0)
        return 0;
    check_decode((const char *)data + 1, size - 1);

    fuzz_parts fp;
    fuzz_split(&fp, data + 1, size - 1, '\n');
    const char *method = fuzz_part(&fp, 0, NULL);
    size_t target_len;
    const char *target = fuzz_part(&fp, 1, &target_len);
    talon_req *req = talon_req_create(app);
    FUZZ_CHECK(req != NULL);
    if (talon_req_set_line(req, method[0] ? method : "GET", target, "HTTP/1.1") < 0)
        goto out;
    talon_req_set_peer_ip(req, peers[data[0] & 3]);
    for (size_t i = 2; i < fp.n; i++) {
        char *line = (char *)fp.p[i];
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        const char *value = colon + 1;
        while (*value == ' ')
            value++;
        FUZZ_CHECK(talon_req_add_header(req, line, value) == 0);
    }
    if (data[0] & 4) {
        size_t blen;
        const char *body = fuzz_part(&fp, fp.n - 1, &blen);
        talon_req_append_body(req, body, blen);
    }

    /* The query list against the reference, unless a %00 made the parser
     * flag the request (C strings cannot carry the byte). */
    const char *t = strchr(target, '?');
    if (target[0] == '/' && t != NULL && req->bad_request == 0) {
        const char *frag = strchr(t + 1, '#');
        check_query(req, t + 1, frag ? (size_t)(frag - t - 1) : strlen(t + 1));
    }

    if (target[0] == '/' && req->bad_request == 0)
        check_redaction(req);

    bool flagged = req->bad_request != 0;
    talon_resp *resp = talon_pipeline_req_run(req);
    check_ids(req);
    int status = talon_resp_status(resp);
    FUZZ_CHECK(status >= 100 && status <= 599);
    if (flagged)
        FUZZ_CHECK(status == 400);
    if (status == 405)
        FUZZ_CHECK(talon_resp_header(resp, "Allow") != NULL);
    talon_completion done = {
        .bytes_sent = size, .duration_ns = (int64_t)size * 1000, .client_aborted = data[0] & 8,
    };
    talon_app_run_completions(app, req, &done);
out:
    talon_pipeline_req_free(req);
    fuzz_parts_free(&fp);
    return 0;
}
