/* The audit_recovered records of talon audit verify: collected by the
 * verifier's on_recovery callback during its one pass over the trail, then
 * printed as notes and warnings, or listed in the JSON result. */
#include "cli/audit_cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TAMPERING_ADVICE "treat this as tampering"

static char *copy_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void cli_recoveries_collect(void *ctx, const talon_audit_recovery *recovery)
{
    cli_recoveries *list = ctx;
    cli_recovery *item;

    if (list->err < 0)
        return;
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 8;
        cli_recovery *grown = realloc(list->items, capacity * sizeof(*grown));
        if (grown == NULL)
            goto oom;
        list->items = grown;
        list->capacity = capacity;
    }
    item = &list->items[list->count];
    item->file = strdup(recovery->file);
    item->cause = strdup(recovery->cause);
    item->torn_file = copy_or_null(recovery->torn_file);
    item->line = recovery->line;
    item->seq = recovery->seq;
    list->count++; /* counted before the check, so that release frees what was copied */
    if (item->file == NULL || item->cause == NULL || (recovery->torn_file && item->torn_file == NULL))
        goto oom;
    return;

oom:
    list->err = -ENOMEM;
}

void cli_recoveries_release(cli_recoveries *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].file);
        free(list->items[i].cause);
        free(list->items[i].torn_file);
    }
    free(list->items);
    memset(list, 0, sizeof(*list));
}

static bool is_modified(const cli_recovery *item)
{
    return strcmp(item->cause, "modified") == 0;
}

const cli_recovery *cli_recoveries_first_modified(const cli_recoveries *list)
{
    for (size_t i = 0; i < list->count; i++)
        if (is_modified(&list->items[i]))
            return &list->items[i];
    return NULL;
}

/* Describe a recovery cause for an auditor, with the causes that
 * docs/audit-format.md lists. */
static const char *cause_meaning(const char *cause)
{
    if (strcmp(cause, "modified") == 0)
        return "the server found a complete record with a wrong MAC at startup: the trail was "
               "modified after it was written; " TAMPERING_ADVICE;
    if (strcmp(cause, "torn") == 0 || strcmp(cause, "unclean_shutdown") == 0)
        return "the server restarted after a run that did not stop cleanly";
    if (strncmp(cause, "file_", 5) == 0 || strncmp(cause, "key_state_", 10) == 0)
        return "the server put back its active trail file or key state after it was removed or "
               "moved while the server ran";
    return "a cause this version of talon does not know";
}

/* Print s with control characters as '?': the cause comes from the trail
 * and goes to a terminal. */
static void print_printable(FILE *out, const char *s)
{
    for (; *s != '\0'; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

void cli_recoveries_print(const cli_recoveries *list, FILE *out)
{
    for (size_t i = 0; i < list->count; i++) {
        const cli_recovery *item = &list->items[i];
        fprintf(out, "  %s: seq %llu (%s:%llu): audit_recovered cause=", is_modified(item) ? "WARNING" : "note",
                (unsigned long long)item->seq, item->file, (unsigned long long)item->line);
        print_printable(out, item->cause[0] != '\0' ? item->cause : "(none)");
        fprintf(out, ": %s", cause_meaning(item->cause));
        if (is_modified(item)) {
            fputs(" (the edited bytes are in ", out);
            print_printable(out, item->torn_file ? item->torn_file : "the .torn-T file the record names");
            fputc(')', out);
        }
        fputc('\n', out);
    }
}

json_t *cli_recoveries_json(const cli_recoveries *list)
{
    json_t *array = json_array();

    for (size_t i = 0; array != NULL && i < list->count; i++) {
        const cli_recovery *item = &list->items[i];
        json_t *o = json_pack("{s:s,s:I,s:I,s:s,s:s?}", "file", item->file, "line", (json_int_t)item->line,
                              "seq", (json_int_t)item->seq, "cause", item->cause, "torn_file", item->torn_file);
        if (o == NULL || json_array_append_new(array, o) < 0) {
            json_decref(array);
            return NULL;
        }
    }
    return array;
}

void cli_recoveries_describe_modified(const cli_recovery *item, char *out, size_t outlen)
{
    snprintf(out, outlen, "audit_recovered record with cause modified: at startup the server found "
             "a complete record with a wrong MAC and moved it to %s, so the trail was modified "
             "after it was written; " TAMPERING_ADVICE,
             item->torn_file ? item->torn_file : "the .torn-T file the record names");
}
