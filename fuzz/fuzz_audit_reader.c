/* Fuzz the audit record reader (src/audit/reader.c, query.c, verify.c)
 * with arbitrary files.
 *
 * Each input is written as a trail file and read through the public API,
 * then read again as a witness log and checked against a real trail:
 * every line through talon_audit_record_parse (and each string field
 * decoded), a query with filters and the table view, and verify with and
 * without the key of a trail this process made (fuzz_audit_common.h).
 *
 * Invariants checked: no crash or sanitizer report; a parsed record's spans
 * lie inside its line; decoding never writes past the buffer; and verify
 * with the key never passes a file other than the trail the key belongs to
 * (the key is random per process, so nothing in the corpus can carry valid
 * MACs: a pass would be a forgery). */
#include "fuzz_audit_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fa_setup();
    return 0;
}

static bool inside(const talon_audit_record *r, const talon_audit_str *s)
{
    if (s->p == NULL)
        return s->len == 0;
    return s->p >= r->line && s->p + s->len <= r->line + r->len;
}

static void check_record(const char *line, size_t len)
{
    talon_audit_record r;
    char err[256];
    if (talon_audit_record_parse(line, len, &r, err, sizeof(err)) != 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        return;
    }
    FUZZ_CHECK(r.line == line && r.len == len);
    FUZZ_CHECK(r.prefix_len <= len);
    const talon_audit_str *fields[] = {
        &r.time, &r.type, &r.outcome, &r.actor_id, &r.source_ip, &r.user_agent,
        &r.request_id, &r.method, &r.route, &r.path, &r.target_type, &r.target_id,
        &r.reason, &r.host, &r.trail, &r.prev, &r.mac,
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        FUZZ_CHECK(inside(&r, fields[i]));
        char small[8];
        memset(small, 0x5a, sizeof(small));
        size_t need = talon_audit_str_decode(fields[i], small, 4);
        FUZZ_CHECK((unsigned char)small[4] == 0x5a);
        char *full = malloc(need + 1);
        FUZZ_CHECK(talon_audit_str_decode(fields[i], full, need + 1) == need);
        FUZZ_CHECK(full[need] == '\0');
        free(full);
        talon_audit_str_equals(fields[i], "alice");
    }
    if (r.roles != NULL)
        FUZZ_CHECK(r.roles >= line && r.roles + r.roles_len <= line + len);
    if (r.data != NULL)
        FUZZ_CHECK(r.data >= line && r.data + r.data_len <= line + len);
}

static int on_match(void *ctx, const talon_audit_record *rec)
{
    char row[512];
    size_t n = talon_audit_table_row(rec, row, sizeof(row));
    FUZZ_CHECK(n < sizeof(row) && row[n] == '\0');
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    for (size_t start = 0; start < size;) {
        const char *nl = memchr(s + start, '\n', size - start);
        size_t len = nl ? (size_t)(nl - (s + start)) : size - start;
        check_record(s + start, len);
        start += len + 1;
    }

    /* One reader of the input for the query and every verify: none of them
     * changes it. */
    fa_write_input(data, size);
    talon_audit_reader *rd = fa_open_input();
    char err[512];
    talon_audit_filter f;
    talon_audit_filter_init(&f);
    talon_audit_filter_set(&f, "type", size & 1 ? "authn_*" : "user_created", err, sizeof(err));
    if (size & 2)
        talon_audit_filter_set(&f, "since", "2020-01-01T00:00:00Z", err, sizeof(err));
    if (size & 4)
        talon_audit_filter_set(&f, "order", "desc", err, sizeof(err));
    uint64_t skipped = 0;
    talon_audit_query(rd, &f, on_match, NULL, &skipped);
    talon_audit_filter_release(&f);

    talon_audit_verify_result res;
    bool original = size == fa_original_len && memcmp(data, fa_original, size) == 0;
    /* Strict, and the most lenient mode (--open --partial). */
    for (int mode = 0; mode < 4; mode += 3) {
        int verdict = fa_verify(rd, true, mode & 1, mode & 2, &res);
        if (verdict == TALON_AUDIT_INTACT && res.records > 0)
            FUZZ_CHECK(original || mode != 0);
        if (verdict == TALON_AUDIT_INTACT && res.macs_checked && res.records > 0 && !original) {
            fprintf(stderr, "verify passed %llu records with MACs of an unknown key\n",
                    (unsigned long long)res.records);
            __builtin_trap();
        }
    }
    fa_verify(rd, false, size & 8, size & 16, &res);
    talon_audit_reader_close(rd);

    /* The input as a witness log (what a syslog server stored, which anyone
     * who can send it messages writes to), checked against the real trail. */
    talon_audit_witness *w;
    if (talon_audit_witness_load(fa_input, &w, err, sizeof(err)) == 0) {
        talon_audit_witness_result wres;
        memset(&res, 0, sizeof(res));
        int rc = talon_audit_witness_check(fa_trail_reader, w, fa_trail_hex, &res, &wres, err, sizeof(err));
        FUZZ_CHECK(rc == 0 || rc == -ENOENT);
        if (rc == 0 && res.verdict != TALON_AUDIT_INTACT)
            FUZZ_CHECK(res.detail[0] != '\0');
        talon_audit_witness_free(w);
    }
    return 0;
}
