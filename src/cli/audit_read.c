/* talon audit query, tail and report: the subcommands that select and
 * summarize records without judging the trail's integrity (verify does). */
#include "cli/cli.h"
#include "cli/audit_cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/reader_internal.h"
#include "talon/audit_reader.h"

/* Options every reading subcommand accepts: filters and the output format. */
typedef struct read_opts {
    talon_audit_filter filter;
    bool table;
    bool json_summary;      /* report --format json */
    uint64_t tail_lines;
    bool follow;
} read_opts;

enum {
    OPT_TYPE = 1000, OPT_ACTOR, OPT_OUTCOME, OPT_SINCE, OPT_UNTIL, OPT_REQUEST_ID, OPT_TARGET,
    OPT_TARGET_TYPE, OPT_TARGET_ID, OPT_SOURCE_IP, OPT_LIMIT, OPT_ORDER, OPT_FORMAT,
};

static const struct option READ_OPTIONS[] = {
    { "type", required_argument, NULL, OPT_TYPE },
    { "actor", required_argument, NULL, OPT_ACTOR },
    { "outcome", required_argument, NULL, OPT_OUTCOME },
    { "since", required_argument, NULL, OPT_SINCE },
    { "until", required_argument, NULL, OPT_UNTIL },
    { "request-id", required_argument, NULL, OPT_REQUEST_ID },
    { "target", required_argument, NULL, OPT_TARGET },
    { "target-type", required_argument, NULL, OPT_TARGET_TYPE },
    { "target-id", required_argument, NULL, OPT_TARGET_ID },
    { "source-ip", required_argument, NULL, OPT_SOURCE_IP },
    { "limit", required_argument, NULL, OPT_LIMIT },
    { "order", required_argument, NULL, OPT_ORDER },
    { "format", required_argument, NULL, OPT_FORMAT },
    { "lines", required_argument, NULL, 'n' },
    { "follow", no_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static const char FILTER_HELP[] =
    "filters (all given must match):\n"
    "  --type TYPE          event type, exact, or a prefix ending in '*' (authn_*)\n"
    "  --actor ID           actor id (user id, \"anonymous\", \"system\")\n"
    "  --outcome O          success or failure\n"
    "  --since TIME         at or after TIME (RFC 3339, e.g. 2026-12-04T20:00:00Z or 2026-12-04)\n"
    "  --until TIME         before TIME\n"
    "  --request-id ID      request id\n"
    "  --target TYPE[:ID]   target resource type, and id\n"
    "  --target-type TYPE, --target-id ID\n"
    "  --source-ip IP       client address\n";

/* Parse the options; returns -1 to go on, or the exit code to return now. */
static int parse_read_opts(int argc, char **argv, read_opts *o, const char *cmd, const char *shortopts,
                           void (*usage)(FILE *))
{
    talon_audit_filter_init(&o->filter);
    o->tail_lines = 10;
    int c;
    char err[512];
    char command[32];
    snprintf(command, sizeof command, "audit %s", cmd);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, READ_OPTIONS, NULL)) != -1) {
        const char *name = NULL;
        switch (c) {
        case OPT_TYPE: name = "type"; break;
        case OPT_ACTOR: name = "actor"; break;
        case OPT_OUTCOME: name = "outcome"; break;
        case OPT_SINCE: name = "since"; break;
        case OPT_UNTIL: name = "until"; break;
        case OPT_REQUEST_ID: name = "request_id"; break;
        case OPT_TARGET: name = "target"; break;
        case OPT_TARGET_TYPE: name = "target_type"; break;
        case OPT_TARGET_ID: name = "target_id"; break;
        case OPT_SOURCE_IP: name = "source_ip"; break;
        case OPT_LIMIT: name = "limit"; break;
        case OPT_ORDER: name = "order"; break;
        case OPT_FORMAT:
            /* query and tail print table or json; report prints text or json. */
            if (strcmp(optarg, "table") == 0 || strcmp(optarg, "text") == 0) {
                o->table = true;
                o->json_summary = false;
            } else if (strcmp(optarg, "json") == 0) {
                o->table = false;
                o->json_summary = true;
            } else {
                cli_error("audit %s: invalid --format \"%s\": use %s", cmd, optarg,
                          strcmp(cmd, "report") == 0 ? "text or json" : "json or table");
                return CLI_USAGE;
            }
            break;
        case 'n': {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(optarg, &end, 10);
            if (errno || *end || optarg[0] == '-' || end == optarg) {
                cli_error("audit %s: invalid -n \"%s\": use a whole number of records", cmd, optarg);
                return CLI_USAGE;
            }
            o->tail_lines = n;
            break;
        }
        case 'f': o->follow = true; break;
        case 'h': usage(stdout); return CLI_OK;
        default: cli_option_error(command, c, argv, READ_OPTIONS); return CLI_USAGE;
        }
        if (name && talon_audit_filter_set(&o->filter, name, optarg, err, sizeof err) < 0) {
            cli_error("audit %s: %s", cmd, err);
            return CLI_USAGE;
        }
    }
    if (optind == argc) {
        cli_error("audit %s: no trail given; pass a trail directory or files", cmd);
        return CLI_USAGE;
    }
    return -1;
}

/* Warn about each file that ends with bytes after its last newline: the
 * readers leave such a torn line out, and without a word the output would
 * look complete. */
static void warn_torn_tails(talon_audit_reader *r, const char *cmd)
{
    for (size_t i = 0; i < talon_audit_reader_file_count(r); i++) {
        size_t size;
        const char *data = talon_audit_reader_file_data(r, i, &size);
        if (data == NULL || size == 0 || data[size - 1] == '\n')
            continue;
        const char *nl = memrchr(data, '\n', size);
        size_t offset = nl ? (size_t)(nl - data) + 1 : 0;
        fprintf(stderr, "talon: audit %s: warning: %s: %zu bytes at byte offset %zu have no final "
                "newline (a torn line left by a crash before recovery, or a record still being "
                "written); they are not a record and are left out\n", cmd,
                talon_audit_reader_file_path(r, i), size - offset, offset);
    }
}

static int open_reader(talon_audit_reader **r, int argc, char **argv, const char *cmd)
{
    char err[512];
    if (talon_audit_reader_open(r, (const char *const *)argv + optind, (size_t)(argc - optind), err,
                                sizeof err) < 0) {
        cli_error("audit %s: %s", cmd, err);
        return -1;
    }
    warn_torn_tails(*r, cmd);
    return 0;
}

static void warn_skip(void *ctx, const char *file, uint64_t line, const char *why)
{
    uint64_t *warned = ctx;
    if ((*warned)++ >= 5)
        return;
    if (isatty(STDERR_FILENO))
        fputs("\r\033[K", stderr); /* start on a clean line if a progress bar is drawn */
    fprintf(stderr, "talon: %s:%llu: skipped a line that is not a valid record: %s\n", file,
            (unsigned long long)line, why);
}

/* Run the query with at most five skip warnings and, on a terminal, a
 * progress bar labeled cmd. Returns what talon_audit_query_hooked() does. */
static int64_t run_query(talon_audit_reader *reader, const char *cmd, const talon_audit_filter *filter,
                         talon_audit_record_fn fn, void *ctx, uint64_t *skipped)
{
    uint64_t warned = 0;
    cli_progress progress;
    cli_progress_start(&progress, cmd, talon_audit_reader_total_bytes(reader));
    talon_audit_query_hooks hooks = { .skip = warn_skip, .skip_ctx = &warned };
    if (progress.on) {
        hooks.progress = cli_progress_update;
        hooks.progress_ctx = &progress;
    }
    int64_t n = talon_audit_query_hooked(reader, filter, fn, ctx, skipped, &hooks);
    cli_progress_end(&progress);
    return n;
}

/* ---- query -------------------------------------------------------------- */

static void query_usage(FILE *out)
{
    fprintf(out, "usage: talon audit query [FILTERS] [--format json|table] [--limit N] [--order asc|desc] PATH...\n\n"
            "Print the records that match every filter, oldest first: as JSON lines (the\n"
            "records' own bytes, default) or as an aligned table.\n\n%s"
            "\n  --limit N            stop after N records\n"
            "  --order desc         newest first (with --limit: the latest N)\n"
            "  -h, --help           show this help\n\n"
            "Exit status: 0 (also when nothing matches), 2 usage or I/O error. A torn\n"
            "last line (bytes without a final newline) is left out with a warning on\n"
            "stderr and does not change the exit status.\n"
            "Query does not check integrity: run 'talon audit verify' for that.\n", FILTER_HELP);
}

typedef struct print_ctx {
    bool table;
    bool write_error;
} print_ctx;

static int print_record(void *ctx, const talon_audit_record *rec)
{
    print_ctx *p = ctx;
    if (p->table) {
        char row[1024];
        size_t n = talon_audit_table_row(rec, row, sizeof row);
        row[n] = '\n';
        fwrite(row, 1, n + 1, stdout);
    } else {
        fwrite(rec->line, 1, rec->len, stdout);
        putchar('\n');
    }
    if (ferror(stdout)) {
        p->write_error = true;
        return 1;
    }
    return 0;
}

static void print_header(bool table)
{
    if (!table)
        return;
    char head[256];
    size_t n = talon_audit_table_header(head, sizeof head);
    head[n] = '\n';
    fwrite(head, 1, n + 1, stdout);
}

int cli_audit_query(int argc, char **argv)
{
    static char outbuf[1 << 20];
    read_opts o = { 0 };
    int rc = parse_read_opts(argc, argv, &o, "query", ":h", query_usage);
    if (rc >= 0)
        goto out;
    talon_audit_reader *reader;
    if (open_reader(&reader, argc, argv, "query") < 0) {
        rc = CLI_USAGE;
        goto out;
    }
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    print_ctx p = { .table = o.table };
    uint64_t skipped = 0;
    print_header(o.table);
    int64_t n = run_query(reader, "query", &o.filter, print_record, &p, &skipped);
    rc = CLI_OK;
    if (n < 0) {
        cli_error("audit query: %s", strerror((int)-n));
        rc = CLI_USAGE;
    }
    if (skipped > 5)
        cli_error("audit query: %llu lines skipped in all (not valid records)", (unsigned long long)skipped);
    if (fflush(stdout) != 0 || p.write_error) {
        cli_error("audit query: cannot write the output: %s", strerror(errno));
        rc = CLI_USAGE;
    }
    talon_audit_reader_close(reader);
out:
    talon_audit_filter_release(&o.filter);
    return rc;
}

/* ---- tail --------------------------------------------------------------- */

static void tail_usage(FILE *out)
{
    fprintf(out, "usage: talon audit tail [-n N] [-f] [FILTERS] [--format json|table] PATH\n\n"
            "Print the last N matching records of the trail (default 10). With -f, keep\n"
            "printing new records as they are written, and move on to the next file\n"
            "when the trail rotates (PATH must then be the trail directory). When the\n"
            "file is moved or removed and the server recreates it, go on in the new file.\n\n"
            "  -n, --lines N        records to print first (0: only new ones)\n"
            "  -f, --follow         follow the trail; stop with Ctrl-C\n%s"
            "  -h, --help           show this help\n\n"
            "A torn last line (bytes without a final newline) is left out with a warning\n"
            "on stderr, and the exit status stays 0; with -f it is printed once complete.\n",
            FILTER_HELP);
}

typedef struct collected_line {
    char *bytes;
    size_t len;
} collected_line;

/* Copies of the records tail prints, newest first. */
typedef struct collected {
    collected_line *lines;
    size_t n, cap;
} collected;

/* Keep a copy of rec's line. The array grows as records arrive (the query
 * stops after -n records), so a large -n costs memory only for the records
 * the trail has, as with tail(1). */
static int collect_line(void *ctx, const talon_audit_record *rec)
{
    collected *c = ctx;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof *c->lines)
            return -ENOMEM;
        collected_line *grown = realloc(c->lines, cap * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        c->lines = grown;
        c->cap = cap;
    }
    char *bytes = malloc(rec->len);
    if (!bytes)
        return -ENOMEM;
    memcpy(bytes, rec->line, rec->len);
    c->lines[c->n].bytes = bytes;
    c->lines[c->n++].len = rec->len;
    return 0;
}

/* Print a line that tail -f read when it is a record that matches the
 * filters: the cli_follow_line_fn of cli_audit_follow(). */
static void emit_line(void *ctx, const char *line, size_t len)
{
    const read_opts *o = ctx;
    talon_audit_record rec;
    if (talon_audit_record_parse(line, len, &rec, NULL, 0) != 0 || !talon_audit_filter_match(&o->filter, &rec))
        return;
    print_ctx p = { .table = o->table };
    print_record(&p, &rec);
}

int cli_audit_tail(int argc, char **argv)
{
    read_opts o = { 0 };
    int rc = parse_read_opts(argc, argv, &o, "tail", ":n:fh", tail_usage);
    if (rc >= 0)
        goto out;
    if (argc - optind != 1) {
        cli_error("audit tail: %d paths given; pass one trail directory or file", argc - optind);
        rc = CLI_USAGE;
        goto out;
    }
    const char *path = argv[optind];
    talon_audit_reader *reader;
    if (open_reader(&reader, argc, argv, "tail") < 0) {
        rc = CLI_USAGE;
        goto out;
    }
    size_t nfiles = talon_audit_reader_file_count(reader);
    collected c = { 0 };
    if (o.tail_lines > 0) {
        talon_audit_filter f = o.filter;
        f.newest_first = true;
        f.limit = o.tail_lines;
        int64_t n = talon_audit_query(reader, &f, collect_line, &c, NULL);
        if (n < 0) {
            cli_error("audit tail: %s after %zu records; use a smaller -n", strerror((int)-n), c.n);
            rc = CLI_USAGE;
            goto done;
        }
    }
    print_header(o.table);
    for (size_t i = c.n; i-- > 0;) {
        print_ctx p = { .table = o.table };
        talon_audit_record rec;
        if (talon_audit_record_parse(c.lines[i].bytes, c.lines[i].len, &rec, NULL, 0) == 0)
            print_record(&p, &rec);
    }
    fflush(stdout);
    rc = CLI_OK;
    if (o.follow && nfiles > 0) {
        struct stat st;
        bool is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        size_t size;
        const char *data = talon_audit_reader_file_data(reader, nfiles - 1, &size);
        size_t off = size;
        while (off > 0 && data[off - 1] != '\n')
            off--; /* a line still being written is printed once complete */
        char file[4096];
        snprintf(file, sizeof file, "%s", talon_audit_reader_file_path(reader, nfiles - 1));
        uint64_t index = talon_audit_reader_file_index(reader, nfiles - 1);
        talon_audit_reader_close(reader);
        reader = NULL;
        rc = cli_audit_follow(is_dir && index ? path : NULL, index, file, (off_t)off, emit_line, &o);
    }
done:
    for (size_t i = 0; i < c.n; i++)
        free(c.lines[i].bytes);
    free(c.lines);
    talon_audit_reader_close(reader);
out:
    talon_audit_filter_release(&o.filter);
    return rc;
}

/* ---- report ------------------------------------------------------------- */

static void report_usage(FILE *out)
{
    fprintf(out, "usage: talon audit report [FILTERS] [--format text|json] PATH...\n\n"
            "Summarize the trail, like aureport: time range and totals, counts by event\n"
            "type, actor and outcome, failures by type, and failed logins\n"
            "(authn_login_fail) by source address.\n\n%s"
            "  -h, --help           show this help\n\n"
            "A torn last line (bytes without a final newline) is left out of the counts\n"
            "with a warning on stderr, and the exit status stays 0.\n", FILTER_HELP);
}

typedef struct report {
    json_t *by_type, *by_actor, *by_outcome, *failures_by_type, *failed_logins_by_source;
    uint64_t records, seals;
    uint64_t recoveries;     /* audit_recovered: unclean restarts, files put back */
    uint64_t lost;           /* sum of audit_records_lost data.lost */
    int64_t first_us, last_us;
    char first[32], last[32];
} report;

/* Return the length of the longest prefix of key[0..n) that jansson takes
 * as an object key: valid UTF-8 without NUL. */
static size_t key_prefix(const char *key, size_t n)
{
    const unsigned char *p = (const unsigned char *)key, *end = p + n;
    size_t i = 0;

    while (i < n) {
        if (p[i] == 0)
            break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = reader_utf8_len(p + i, end);
        if (k == 0)
            break;
        i += k;
    }
    return i;
}

/* Count one more record under the value of s. A value longer than the key
 * buffer is cut after its last whole character. jansson rejects a key with
 * a NUL or with bytes that are not UTF-8, and a lone surrogate escape
 * decodes to such bytes. Such a value is counted under its text as the
 * trail writes it, escapes included ("x\ud800y"), not left out.
 * NOTE: that text is also the key of a value whose decoded form is that
 * text, so the two share a count. */
static void count(json_t *map, const talon_audit_str *s)
{
    char key[256];
    size_t full, n, keep;

    if (s->null) {
        snprintf(key, sizeof key, "-");
        full = 1;
    } else {
        full = talon_audit_str_decode(s, key, sizeof key);
    }
    n = full < sizeof key - 1 ? full : sizeof key - 1;
    keep = key_prefix(key, n);

    /* Bytes left over that are not one character cut by the buffer: use
     * the written text. */
    bool cut = full > n && n - keep < 4 && (unsigned char)key[keep] >= 0xc2;
    if (keep < n && !cut) {
        n = s->len < sizeof key - 1 ? s->len : sizeof key - 1;
        memcpy(key, s->p, n);
        keep = key_prefix(key, n);
    }
    key[keep] = '\0';

    json_t *v = json_object_get(map, key);
    if (v)
        json_integer_set(v, json_integer_value(v) + 1);
    else
        json_object_set_new(map, key, json_integer(1));
}

static int report_record(void *ctx, const talon_audit_record *rec)
{
    report *r = ctx;
    r->records++;
    if (talon_audit_str_equals(&rec->type, "audit_epoch_sealed"))
        r->seals++;
    if (talon_audit_str_equals(&rec->type, "audit_recovered"))
        r->recoveries++;
    if (talon_audit_str_equals(&rec->type, "audit_records_lost")) {
        json_t *data = json_loadb(rec->data, rec->data_len, 0, NULL);
        json_t *lost = json_object_get(data, "lost");
        if (json_is_integer(lost) && json_integer_value(lost) > 0)
            r->lost += (uint64_t)json_integer_value(lost);
        json_decref(data);
    }
    if (r->records == 1 || rec->time_us < r->first_us) {
        r->first_us = rec->time_us;
        talon_audit_str_decode(&rec->time, r->first, sizeof r->first);
    }
    if (r->records == 1 || rec->time_us > r->last_us) {
        r->last_us = rec->time_us;
        talon_audit_str_decode(&rec->time, r->last, sizeof r->last);
    }
    count(r->by_type, &rec->type);
    count(r->by_actor, &rec->actor_id);
    count(r->by_outcome, &rec->outcome);
    if (talon_audit_str_equals(&rec->outcome, "failure"))
        count(r->failures_by_type, &rec->type);
    if (talon_audit_str_equals(&rec->type, "authn_login_fail"))
        count(r->failed_logins_by_source, &rec->source_ip);
    return 0;
}

typedef struct entry {
    const char *key;
    json_int_t n;
} entry;

static int by_count(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? 1 : -1;
    return strcmp(x->key, y->key);
}

/* Print s as the table format shows a value (reader_display_text), so that
 * no trail value can send control characters, bidi overrides or line
 * separators to the terminal. */
static void print_display(const char *s)
{
    /* Keys and times come from buffers of at most 256 bytes, and a byte
     * takes at most 4 bytes in display form, so none of them is cut. */
    char clean[1024];
    size_t n = strlen(s);

    fwrite(clean, 1, reader_display_text(s, n, clean, sizeof clean), stdout);
}

static void print_table(const char *title, const char *what, json_t *map)
{
    size_t n = json_object_size(map);
    printf("\n%s\n", title);
    if (n == 0) {
        printf("  (none)\n");
        return;
    }
    entry *e = malloc(n * sizeof *e);
    if (!e)
        return;
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        e[i].key = key;
        e[i++].n = json_integer_value(v);
    }
    qsort(e, n, sizeof *e, by_count);
    printf("  %10s  %s\n", "count", what);
    for (i = 0; i < n; i++) {
        printf("  %10lld  ", (long long)e[i].n);
        print_display(e[i].key);
        putchar('\n');
    }
    free(e);
}

int cli_audit_report(int argc, char **argv)
{
    read_opts o = { 0 };
    int rc = parse_read_opts(argc, argv, &o, "report", ":h", report_usage);
    if (rc >= 0)
        goto out;
    talon_audit_reader *reader;
    if (open_reader(&reader, argc, argv, "report") < 0) {
        rc = CLI_USAGE;
        goto out;
    }
    report r = { .by_type = json_object(), .by_actor = json_object(), .by_outcome = json_object(),
                 .failures_by_type = json_object(), .failed_logins_by_source = json_object() };
    uint64_t skipped = 0;
    int64_t n = run_query(reader, "report", &o.filter, report_record, &r, &skipped);
    rc = n < 0 ? CLI_USAGE : CLI_OK;
    if (o.json_summary) {
        json_t *out = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:s?,s:s?,s:O,s:O,s:O,s:O,s:O}",
                                "files", (json_int_t)talon_audit_reader_file_count(reader),
                                "bytes", (json_int_t)talon_audit_reader_total_bytes(reader),
                                "records", (json_int_t)r.records, "skipped_lines", (json_int_t)skipped,
                                "recoveries", (json_int_t)r.recoveries, "lost_records", (json_int_t)r.lost,
                                "first_time", r.records ? r.first : NULL, "last_time", r.records ? r.last : NULL,
                                "by_type", r.by_type, "by_actor", r.by_actor, "by_outcome", r.by_outcome,
                                "failures_by_type", r.failures_by_type,
                                "failed_logins_by_source", r.failed_logins_by_source);
        /* ASCII only: a value's bidi overrides and line separators are
         * then \uXXXX escapes, as print_display() shows them in the table. */
        json_dumpf(out, stdout, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
        putchar('\n');
        json_decref(out);
    } else {
        printf("Audit trail report\n==================\n");
        printf("Files:           %zu (%llu bytes)\n", talon_audit_reader_file_count(reader),
               (unsigned long long)talon_audit_reader_total_bytes(reader));
        printf("Time range:      ");
        print_display(r.records ? r.first : "-");
        printf(" .. ");
        print_display(r.records ? r.last : "-");
        putchar('\n');
        printf("Records:         %llu (%llu seal%s)\n", (unsigned long long)r.records, (unsigned long long)r.seals,
               r.seals == 1 ? "" : "s");
        json_t *s = json_object_get(r.by_outcome, "success"), *f = json_object_get(r.by_outcome, "failure");
        printf("Success/failure: %lld / %lld\n", (long long)(s ? json_integer_value(s) : 0),
               (long long)(f ? json_integer_value(f) : 0));
        if (skipped)
            printf("Skipped lines:   %llu (not valid records)\n", (unsigned long long)skipped);
        printf("Recoveries:      %llu (audit_recovered: restarts after an unclean stop, and files put back after removal)\n", (unsigned long long)r.recoveries);
        printf("Lost records:    %llu (audit_records_lost: acknowledged but not written; async records under "
               "fail_closed or fail_open, sync records under fail_open)\n", (unsigned long long)r.lost);
        print_table("Events by type", "type", r.by_type);
        print_table("Events by actor", "actor", r.by_actor);
        print_table("Events by outcome", "outcome", r.by_outcome);
        print_table("Failures by type", "type", r.failures_by_type);
        print_table("Failed logins by source", "source ip", r.failed_logins_by_source);
    }
    json_decref(r.by_type);
    json_decref(r.by_actor);
    json_decref(r.by_outcome);
    json_decref(r.failures_by_type);
    json_decref(r.failed_logins_by_source);
    if (fflush(stdout) != 0) {
        cli_error("audit report: cannot write the output: %s", strerror(errno));
        rc = CLI_USAGE;
    }
    talon_audit_reader_close(reader);
out:
    talon_audit_filter_release(&o.filter);
    return rc;
}
