/* Audit trail options: defaults and the [audit] section of the INI file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit_internal.h"
#include "talon/config.h"

/* Strings copied by talon_audit_config_set, freed by
 * talon_audit_options_release. */
typedef struct owned_strings {
    char *dir;
    char *state_file;
    char *host;
    char *witness;
    char **redact_keys; /* NULL-terminated */
} owned_strings;


static const char accepted_keys[] =
    "dir, state_file, host, epoch_seconds (or epoch_interval), rotate_size, rotate_interval, "
    "rotate_keep, sync_ring_size, mode (or file_mode), queue_capacity, failure, redact_keys, max_body_size, witness";

void talon_audit_options_init(talon_audit_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->dir = "var/audit";
    opts->state_file = "var/audit/key.state";
    opts->epoch_seconds = 3600;
    opts->rotate_size = 64ull << 20;
    opts->sync_ring_size = 16ull << 20;
    opts->mode = 0600;
    opts->queue_capacity = 65536;
    opts->failure = TALON_AUDIT_FAIL_CLOSED;
    opts->max_body_size = 4096;
}

static owned_strings *owned_of(talon_audit_options *opts)
{
    if (opts->owned == NULL)
        opts->owned = calloc(1, sizeof(owned_strings));
    return opts->owned;
}

static void free_words(char **words)
{
    if (words == NULL)
        return;
    for (size_t i = 0; words[i] != NULL; i++)
        free(words[i]);
    free(words);
}

static int set_string(char **slot, const char **field, const char *value)
{
    char *copy = strdup(value);

    if (copy == NULL)
        return -ENOMEM;
    free(*slot);
    *slot = copy;
    *field = copy;
    return 0;
}

static int append_word(char ***words, size_t *n, const char *word, size_t len)
{
    char **grown = realloc(*words, (*n + 2) * sizeof(char *));

    if (grown == NULL)
        return -ENOMEM;
    *words = grown;
    grown[*n] = strndup(word, len);
    if (grown[*n] == NULL)
        return -ENOMEM;
    grown[++*n] = NULL;
    return 0;
}

/* "ssn, card_number" -> the default words plus these. A configured list
 * extends the default one, so adding a word never drops password or token
 * redaction; the word "default" is accepted and adds nothing. */
static int parse_redact_keys(const char *value, char ***out, char *err, size_t errlen)
{
    char **words = NULL;
    size_t n = 0, added = 0;
    const char *p = value;
    int rc = 0;

    for (size_t i = 0; talon_secret_words[i] != NULL && rc == 0; i++)
        rc = append_word(&words, &n, talon_secret_words[i], strlen(talon_secret_words[i]));
    while (*p != '\0' && rc == 0) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p != '\0' && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end == start)
            continue;
        added++;
        if ((size_t)(end - start) == 7 && strncmp(start, "default", 7) == 0)
            continue;
        rc = append_word(&words, &n, start, (size_t)(end - start));
    }
    if (rc == 0 && added == 0) {
        snprintf(err, errlen, "invalid value '%s'; expected a comma-separated list of key "
                 "words to redact besides the default ones, such as \"ssn, card_number\"", value);
        rc = -EINVAL;
    }
    if (rc < 0) {
        free_words(words);
        return rc;
    }
    *out = words;
    return 0;
}

static int parse_uint(const char *value, unsigned long long max, unsigned long long *out,
                      char *err, size_t errlen)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || value[0] == '-' || v > max) {
        snprintf(err, errlen, "invalid value '%s'; expected a whole number from 0 to %llu",
                 value, max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int talon_audit_config_set(talon_audit_options *opts, const char *key, const char *value,
                           char *err, size_t errlen)
{
    owned_strings *own = owned_of(opts);
    unsigned long long n;
    unsigned mode;
    int rc;

    if (own == NULL)
        return -ENOMEM;
    if (strcmp(key, "dir") == 0)
        return set_string(&own->dir, &opts->dir, value);
    if (strcmp(key, "state_file") == 0)
        return set_string(&own->state_file, &opts->state_file, value);
    if (strcmp(key, "host") == 0)
        return set_string(&own->host, &opts->host, value);
    if (strcmp(key, "witness") == 0) {
        if (value[0] == '\0' || strchr(value, ' ') != NULL) {
            snprintf(err, errlen, "invalid value '%s'; expected a logger name such as "
                     "audit.witness, or none", value);
            return -EINVAL;
        }
        return set_string(&own->witness, &opts->witness, value);
    }

    if (strcmp(key, "epoch_seconds") == 0 || strcmp(key, "epoch_interval") == 0) {
        rc = talon_config_parse_seconds(value, &n, err, errlen);
        if (rc == 0 && (n == 0 || n > 30 * 86400ull)) {
            snprintf(err, errlen, "invalid value '%s'; the epoch must last from 1 s to 30 days "
                     "(default 1h)", value);
            rc = -EINVAL;
        }
        if (rc == 0)
            opts->epoch_seconds = (unsigned)n;
        return rc;
    }
    if (strcmp(key, "rotate_size") == 0) {
        rc = talon_config_parse_size(value, &n, err, errlen);
        if (rc == 0)
            opts->rotate_size = n;
        return rc;
    }
    if (strcmp(key, "sync_ring_size") == 0) {
        rc = talon_config_parse_size(value, &n, err, errlen);
        if (rc == 0 && n != 0 && (n < AUDIT_RING_MIN_SIZE || n > AUDIT_RING_MAX_SIZE)) {
            snprintf(err, errlen, "invalid value '%s'; the sync ring must be 0 (none) or from "
                     "64K to 1G (default 16M)", value);
            rc = -EINVAL;
        }
        if (rc == 0)
            opts->sync_ring_size = n;
        return rc;
    }
    if (strcmp(key, "rotate_interval") == 0) {
        rc = talon_config_parse_seconds(value, &n, err, errlen);
        if (rc == 0 && n > 366 * 86400ull) {
            snprintf(err, errlen, "invalid value '%s'; expected at most 366d, or 0 for no "
                     "time-based rotation", value);
            rc = -EINVAL;
        }
        if (rc == 0)
            opts->rotate_interval_s = (unsigned)n;
        return rc;
    }
    if (strcmp(key, "rotate_keep") == 0) {
        rc = parse_uint(value, 1000000, &n, err, errlen);
        if (rc == 0)
            opts->rotate_keep = (unsigned)n;
        return rc;
    }
    if (strcmp(key, "mode") == 0 || strcmp(key, "file_mode") == 0) {
        if (strcmp(value, "sync") == 0 || strcmp(value, "async") == 0) {
            snprintf(err, errlen, "invalid value '%s'; %s is the trail file mode (0600 or 0640); "
                     "set the durability mode with default_mode or a rule", value, key);
            return -EINVAL;
        }
        rc = talon_config_parse_mode(value, &mode, err, errlen);
        if (rc == 0 && (mode & ~0640u) != 0) {
            snprintf(err, errlen, "invalid value '%s'; audit files must be 0600 or 0640 "
                     "(no write or execute for the group, nothing for others)", value);
            rc = -EINVAL;
        }
        if (rc == 0)
            opts->mode = (mode_t)mode;
        return rc;
    }
    if (strcmp(key, "queue_capacity") == 0) {
        rc = parse_uint(value, 16777216, &n, err, errlen);
        if (rc == 0 && n == 0) {
            snprintf(err, errlen, "invalid value '0'; expected at least 1 queued record");
            rc = -EINVAL;
        }
        if (rc == 0)
            opts->queue_capacity = (size_t)n;
        return rc;
    }
    if (strcmp(key, "failure") == 0) {
        if (strcmp(value, "fail_closed") == 0 || strcmp(value, "closed") == 0) {
            opts->failure = TALON_AUDIT_FAIL_CLOSED;
            return 0;
        }
        if (strcmp(value, "fail_open") == 0 || strcmp(value, "open") == 0) {
            opts->failure = TALON_AUDIT_FAIL_OPEN;
            return 0;
        }
        snprintf(err, errlen, "invalid value '%s'; expected fail_closed (reject audited requests "
                 "while the trail cannot be written) or fail_open (count lost records)", value);
        return -EINVAL;
    }
    if (strcmp(key, "redact_keys") == 0) {
        char **words;
        rc = parse_redact_keys(value, &words, err, errlen);
        if (rc < 0)
            return rc;
        free_words(own->redact_keys);
        own->redact_keys = words;
        opts->redact_keys = (const char *const *)words;
        return 0;
    }
    if (strcmp(key, "max_body_size") == 0) {
        rc = talon_config_parse_size(value, &n, err, errlen);
        if (rc == 0)
            opts->max_body_size = (size_t)n;
        return rc;
    }

    snprintf(err, errlen, "unknown key \"%s\"; expected %s", key, accepted_keys);
    return -EINVAL;
}

void talon_audit_options_release(talon_audit_options *opts)
{
    owned_strings *own;

    if (opts == NULL || opts->owned == NULL)
        return;
    own = opts->owned;
    if (opts->dir == own->dir)
        opts->dir = NULL;
    if (opts->state_file == own->state_file)
        opts->state_file = NULL;
    if (opts->host == own->host)
        opts->host = NULL;
    if (opts->witness == own->witness)
        opts->witness = NULL;
    if (opts->redact_keys == (const char *const *)own->redact_keys)
        opts->redact_keys = NULL;
    free(own->dir);
    free(own->state_file);
    free(own->host);
    free(own->witness);
    free_words(own->redact_keys);
    free(own);
    opts->owned = NULL;
}
