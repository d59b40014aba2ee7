/* talon audit: verify, and the table of audit subcommands. */
#include "cli/cli.h"
#include "cli/audit_cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "talon/audit.h"
#include "talon/audit_reader.h"

static int audit_verify(int argc, char **argv);

static const cli_command AUDIT_COMMANDS[] = {
    { "keygen", cli_audit_keygen, "create the verification key and the server's key state" },
    { "verify", audit_verify, "check a trail's chain, MACs and seals; name the first bad record" },
    { "query", cli_audit_query, "select records by type, actor, outcome, time, request, target" },
    { "tail", cli_audit_tail, "print the last records, and follow new ones with -f" },
    { "report", cli_audit_report, "summary: counts by type, actor, outcome; failed logins by source" },
};

static void audit_usage(FILE *out)
{
    fputs("usage: talon audit SUBCOMMAND [OPTIONS] [PATH...]\n\n"
          "Tools for talon audit trails (a directory of audit-NNNNNNNN.jsonl files).\n\nsubcommands:\n", out);
    for (size_t i = 0; i < sizeof AUDIT_COMMANDS / sizeof AUDIT_COMMANDS[0]; i++)
        fprintf(out, "  %-8s %s\n", AUDIT_COMMANDS[i].name, AUDIT_COMMANDS[i].summary);
    fputs("\nRun 'talon audit SUBCOMMAND --help' for its options. The format of the\n"
          "trail is specified in docs/audit-format.md.\n", out);
}

static void write_str(const char *s)
{
    ssize_t n = write(STDERR_FILENO, s, strlen(s));
    (void)n;
}

/* The readers map trail files. When another process cuts one shorter (crash
 * recovery at server start, or an operator), reading past its new end raises
 * SIGBUS: name the file and exit 2 instead of dying without a word. Only
 * async-signal-safe calls here. */
static void on_sigbus(int sig, siginfo_t *info, void *uctx)
{
    (void)uctx;
    const char *path = talon_audit_reader_mapped_path(info->si_addr);
    if (!path) {
        /* Not a trail mapping: a real bug. Die by the signal as usual. */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    write_str("talon audit: ");
    write_str(path);
    write_str(" shrank while being read (truncated by another process?); run the command again\n");
    _exit(CLI_USAGE);
}

static void catch_sigbus(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

int cli_audit(int argc, char **argv)
{
    catch_sigbus();
    if (argc < 2) {
        audit_usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        audit_usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof AUDIT_COMMANDS / sizeof AUDIT_COMMANDS[0]; i++)
        if (strcmp(argv[1], AUDIT_COMMANDS[i].name) == 0)
            return AUDIT_COMMANDS[i].run(argc - 1, argv + 1);
    cli_error("unknown audit subcommand \"%s\"; run 'talon audit --help' for the list", argv[1]);
    return CLI_USAGE;
}

/* ---- verify ------------------------------------------------------------- */

static void verify_usage(FILE *out)
{
    fputs("usage: talon audit verify [--key FILE | --no-key] [--open] [--partial]\n"
          "                          [--witness FILE] [--format text|json] [--threads N] PATH...\n\n"
          "Check a trail: every record's hash chain link, sequence number, epoch and\n"
          "MAC, every seal, and the end of every file. PATH is a trail directory or\n"
          "trail files in order.\n\n"
          "  --key FILE     verification key from 'talon audit keygen' (required unless --no-key)\n"
          "  --no-key       check hashes, sequence numbers, epochs and seals only: without\n"
          "                 MACs, anyone can rewrite the trail and recompute the chain\n"
          "  --open         the trail is live: records after the last seal are allowed\n"
          "  --partial      the oldest files were removed by retention: accept a trail\n"
          "                 that does not start at seq 1\n"
          "  --witness FILE a log that holds the witness lines the server sent (for\n"
          "                 example a syslog server's file): every witnessed chain head\n"
          "                 must be in the trail, which detects a trail cut after its\n"
          "                 last seal\n"
          "  --format FMT   text (default) or json (one object)\n"
          "  --threads N    hashing threads (default: one per CPU)\n"
          "  -h, --help     show this help\n\n"
          "Exit status: 0 intact, 1 not intact (the first bad record is named as\n"
          "FILE:LINE, its seq and the reason) or an audit_recovered record with\n"
          "cause=modified (a record edited after it was written), 2 usage or I/O\n"
          "error, also for a key\n"
          "file that is not exactly one key line or is the key of another trail.\n", out);
}

/* Append to detail which files appear out of order when the first records
 * of the trail files do not ascend by seq. Rotated files that swapped names
 * otherwise show only as a sequence gap. Parses one line of each file. */
static void note_file_order(talon_audit_reader *reader, char *detail, size_t detaillen)
{
    talon_audit_record rec;
    uint64_t prev_seq = 0;
    size_t prev = 0;
    bool have_prev = false;

    for (size_t i = 0; i < talon_audit_reader_file_count(reader); i++) {
        if (cli_first_record(reader, i, &rec) <= 0)
            continue;
        if (have_prev && rec.seq < prev_seq) {
            size_t used = strlen(detail);
            snprintf(detail + used, detaillen - used, "; the files appear out of order: %s starts at seq "
                     "%llu but comes after %s, which starts at seq %llu (were rotated files renamed?)",
                     talon_audit_reader_file_path(reader, i), (unsigned long long)rec.seq,
                     talon_audit_reader_file_path(reader, prev), (unsigned long long)prev_seq);
            return;
        }
        prev = i;
        prev_seq = rec.seq;
        have_prev = true;
    }
}

/* Print the result as one JSON object. An audit_recovered record with cause
 * modified in an intact chain makes the result not intact, with verdict
 * modified at that record, so that scripts that test .intact see it. */
static void print_result_json(const talon_audit_verify_result *r, const talon_audit_witness *w,
                              const talon_audit_witness_result *wr, const cli_recoveries *recoveries)
{
    bool checks_passed = r->verdict == TALON_AUDIT_INTACT; /* the chain's and the witness's */
    const cli_recovery *tampered = checks_passed ? cli_recoveries_first_modified(recoveries) : NULL;
    const char *verdict = talon_audit_verdict_name(tampered ? TALON_AUDIT_MODIFIED : r->verdict);
    const char *file = tampered ? tampered->file : r->file;
    uint64_t line = tampered ? tampered->line : r->line, seq = tampered ? tampered->seq : r->seq;
    char detail[sizeof r->detail];

    if (tampered)
        cli_recoveries_describe_modified(tampered, detail, sizeof detail);
    else
        snprintf(detail, sizeof detail, "%s", r->detail);
    json_t *o = json_pack("{s:b,s:s,s:s?,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:s,s:s}",
                          "intact", checks_passed && !tampered, "verdict", verdict, "file", file,
                          "line", (json_int_t)line, "seq", (json_int_t)seq, "detail", detail,
                          "records", (json_int_t)r->records, "seals", (json_int_t)r->seals,
                          "files", (json_int_t)r->files, "bytes", (json_int_t)r->bytes,
                          "first_seq", (json_int_t)r->first_seq, "last_seq", (json_int_t)r->last_seq,
                          "first_epoch", (json_int_t)r->first_epoch, "last_epoch", (json_int_t)r->last_epoch,
                          "unsealed", (json_int_t)r->unsealed, "macs_checked", r->macs_checked,
                          "trail", r->trail, "head", r->head);
    if (!o) {
        cli_error("audit verify: cannot build the JSON result");
        return;
    }
    json_object_set_new(o, "torn_bytes", json_integer((json_int_t)r->torn_bytes));
    /* Listed only when every check passed: every audit_recovered record is then known. */
    if (checks_passed)
        json_object_set_new(o, "recoveries", cli_recoveries_json(recoveries));
    else
        json_object_set_new(o, "recoveries", json_array());
    if (w)
        json_object_set_new(o, "witness", json_pack("{s:s,s:I,s:I,s:I,s:I}", "file", w->path,
                                                     "checked", (json_int_t)wr->checked,
                                                     "other_trails", (json_int_t)wr->other_trails,
                                                     "before_start", (json_int_t)wr->before_start,
                                                     "last_seq", (json_int_t)wr->last_seq));
    json_dumpf(o, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(o);
}

static void print_result_text(const talon_audit_verify_result *r, const talon_audit_verify_options *o,
                              const talon_audit_witness *w, const talon_audit_witness_result *wr)
{
    if (r->verdict != TALON_AUDIT_INTACT) {
        printf("NOT INTACT: %s:%llu: seq %llu: %s: %s\n", r->file ? r->file : "(trail)",
               (unsigned long long)r->line, (unsigned long long)r->seq, talon_audit_verdict_name(r->verdict),
               r->detail);
        printf("  %llu record%s passed their own checks\n", (unsigned long long)r->records,
               r->records == 1 ? "" : "s");
        return;
    }
    printf("intact: %llu records (seq %llu..%llu) in %llu file%s, %llu seal%s, epochs %llu..%llu\n",
           (unsigned long long)r->records, (unsigned long long)r->first_seq, (unsigned long long)r->last_seq,
           (unsigned long long)r->files, r->files == 1 ? "" : "s", (unsigned long long)r->seals,
           r->seals == 1 ? "" : "s", (unsigned long long)r->first_epoch, (unsigned long long)r->last_epoch);
    if (r->macs_checked)
        printf("  MACs verified with %s\n", o->key_path);
    else
        printf("  chain only (--no-key): MACs not checked, so a rewrite with a recomputed chain would pass\n");
    if (r->first_seq != 1)
        printf("  the trail starts at seq %llu: earlier records were removed (--partial)\n",
               (unsigned long long)r->first_seq);
    if (r->unsealed)
        printf("  %llu records after the last seal are not sealed yet (--open)\n", (unsigned long long)r->unsealed);
    if (r->torn_bytes)
        printf("  %llu bytes after the last complete record (torn tail: the server recovers it at the next "
               "start)\n", (unsigned long long)r->torn_bytes);
    printf("  trail %s, head %s\n", r->trail, r->head);
    if (w)
        printf("  witness %s: %llu chain heads match (up to seq %llu)%s\n", w->path,
               (unsigned long long)wr->checked, (unsigned long long)wr->last_seq,
               wr->before_start ? ", older ones precede the trail's first record" : "");
}

/* Name the bytes crash recovery moved aside (audit-NNNNNNNN.jsonl.torn-T):
 * not part of the chain, but an auditor wants to know they exist. */
static void print_torn_files(char **paths, int n)
{
    for (int i = 0; i < n; i++) {
        DIR *d = opendir(paths[i]);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (strncmp(de->d_name, "audit-", 6) == 0 && strstr(de->d_name, ".jsonl.torn-"))
                printf("  note: %s/%s holds bytes cut from a torn last line by crash recovery "
                       "(not part of the chain)\n", paths[i], de->d_name);
        closedir(d);
    }
}

static int audit_verify(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "key", required_argument, NULL, 'k' },
        { "no-key", no_argument, NULL, 'n' },
        { "open", no_argument, NULL, 'o' },
        { "partial", no_argument, NULL, 'p' },
        { "format", required_argument, NULL, 'f' },
        { "threads", required_argument, NULL, 't' },
        { "witness", required_argument, NULL, 'w' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    talon_audit_verify_options opts;
    talon_audit_verify_options_init(&opts);
    bool json = false;
    const char *witness_path = NULL;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":k:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': opts.key_path = optarg; break;
        case 'n': opts.no_key = true; break;
        case 'o': opts.open = true; break;
        case 'p': opts.partial = true; break;
        case 'w': witness_path = optarg; break;
        case 'f':
            if (strcmp(optarg, "json") == 0)
                json = true;
            else if (strcmp(optarg, "text") != 0) {
                cli_error("audit verify: invalid --format \"%s\": use text or json", optarg);
                return CLI_USAGE;
            }
            break;
        case 't': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 64) {
                cli_error("audit verify: invalid --threads \"%s\": use a number from 1 to 64", optarg);
                return CLI_USAGE;
            }
            opts.threads = (unsigned)n;
            break;
        }
        case 'h': verify_usage(stdout); return CLI_OK;
        default: cli_option_error("audit verify", c, argv, longopts); return CLI_USAGE;
        }
    }
    if (optind == argc) {
        cli_error("audit verify: no trail given; pass a trail directory or files");
        return CLI_USAGE;
    }
    if (!opts.key_path && !opts.no_key) {
        cli_error("audit verify: no key given: pass --key FILE (the verification key from "
                  "'talon audit keygen'), or --no-key to check the chain only");
        return CLI_USAGE;
    }
    if (opts.key_path && opts.no_key) {
        cli_error("audit verify: --key and --no-key exclude each other");
        return CLI_USAGE;
    }

    char err[512];
    talon_audit_witness *witness = NULL;
    talon_audit_witness_result wres = { 0 };
    if (witness_path && talon_audit_witness_load(witness_path, &witness, err, sizeof err) < 0) {
        cli_error("audit verify: %s", err);
        return CLI_USAGE;
    }
    talon_audit_reader *reader;
    if (talon_audit_reader_open(&reader, (const char *const *)argv + optind, (size_t)(argc - optind), err,
                                sizeof err) < 0) {
        cli_error("audit verify: %s", err);
        talon_audit_witness_free(witness);
        return CLI_USAGE;
    }
    if (opts.key_path && cli_check_verify_key(opts.key_path, reader, err, sizeof err) < 0) {
        cli_error("audit verify: %s", err);
        talon_audit_reader_close(reader);
        talon_audit_witness_free(witness);
        return CLI_USAGE;
    }
    cli_progress progress;
    cli_progress_start(&progress, "verify", talon_audit_reader_total_bytes(reader));
    opts.progress = cli_progress_update;
    opts.progress_ctx = &progress;

    cli_recoveries recoveries = { 0 };
    opts.on_recovery = cli_recoveries_collect;
    opts.recovery_ctx = &recoveries;

    talon_audit_verify_result res;
    int rc = talon_audit_verify(reader, &opts, &res, err, sizeof err);
    cli_progress_end(&progress);
    if (rc == 0 && recoveries.err < 0) {
        rc = recoveries.err;
        snprintf(err, sizeof err, "out of memory while keeping the audit_recovered records");
    }
    if (rc == 0 && witness)
        rc = talon_audit_witness_check(reader, witness, res.trail, &res, &wres, err, sizeof err);
    if (rc < 0) {
        cli_error("audit verify: %s", err);
        cli_recoveries_release(&recoveries);
        talon_audit_reader_close(reader);
        talon_audit_witness_free(witness);
        return CLI_USAGE;
    }
    bool intact = res.verdict == TALON_AUDIT_INTACT;
    if (!intact)
        note_file_order(reader, res.detail, sizeof res.detail);
    if (json)
        print_result_json(&res, witness, &wres, &recoveries);
    else
        print_result_text(&res, &opts, witness, &wres);
    /* Only an intact chain shows every audit_recovered record. */
    if (intact)
        cli_recoveries_print(&recoveries, json ? stderr : stdout);
    if (!json)
        print_torn_files(argv + optind, argc - optind);
    /* NOTE: exit 1 for cause=modified although the chain verifies, because
     * an acknowledged record was edited and then cut by recovery. */
    bool tampered = intact && cli_recoveries_first_modified(&recoveries) != NULL;
    cli_recoveries_release(&recoveries);
    talon_audit_reader_close(reader);
    talon_audit_witness_free(witness);
    return intact && !tampered ? CLI_OK : CLI_NOT_OK;
}
