/* Audit policy: ordered rules "METHODS ROUTE LEVEL [MODE]", first match
 * wins, as in the Kubernetes API server's audit policy. Rules are parsed
 * once at configuration time; matching is a short linear scan with
 * fnmatch(3) over the matched route template. */
#include <errno.h>
#include <stdbool.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "talon/audit_http.h"
#include "http/audit_policy.h"

#define POLICY_MAX_RULES 256

/* Methods as a bit set so matching does no string compares. */
static const char *const method_names[] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL
};
#define METHOD_ANY 0xffffffffu

static const char *const level_names[] = {
    "none", "metadata", "request", "request_response", NULL
};

typedef struct policy_rule {
    unsigned methods;   /* bit i: method_names[i]; METHOD_ANY for "*" */
    char *route;        /* fnmatch pattern, or NULL for "-" (no route) */
    talon_audit_level level;
    talon_audit_mode mode;
    bool mode_set;      /* false: the policy's default_mode, read at match time */
} policy_rule;

struct talon_audit_policy {
    policy_rule *rules;
    size_t nrules;
    talon_audit_level default_level;
    talon_audit_mode default_mode;
    talon_audit_failure failure;
    size_t max_body_size;
};

talon_audit_policy *talon_audit_policy_new(void)
{
    talon_audit_policy *policy = calloc(1, sizeof(*policy));
    if (policy == NULL)
        return NULL;
    policy->default_level = TALON_AUDIT_LEVEL_METADATA;
    policy->default_mode = TALON_AUDIT_ASYNC;
    policy->failure = TALON_AUDIT_FAIL_CLOSED;
    policy->max_body_size = 4096;
    return policy;
}

void talon_audit_policy_free(talon_audit_policy *policy)
{
    if (policy == NULL)
        return;
    for (size_t i = 0; i < policy->nrules; i++)
        free(policy->rules[i].route);
    free(policy->rules);
    free(policy);
}

const char *talon_audit_level_name(talon_audit_level level)
{
    if ((unsigned)level > TALON_AUDIT_LEVEL_REQUEST_RESPONSE)
        return "?";
    return level_names[level];
}

const char *talon_audit_mode_name(talon_audit_mode mode)
{
    return mode == TALON_AUDIT_SYNC ? "sync" : "async";
}

static int parse_level(const char *word, talon_audit_level *out, char *err, size_t errlen)
{
    for (int i = 0; level_names[i] != NULL; i++) {
        if (strcasecmp(word, level_names[i]) == 0) {
            *out = (talon_audit_level)i;
            return 0;
        }
    }
    snprintf(err, errlen, "invalid audit level \"%s\"; expected none, metadata, request "
             "or request_response", word);
    return -EINVAL;
}

static int parse_mode(const char *word, talon_audit_mode *out, char *err, size_t errlen)
{
    if (strcasecmp(word, "async") == 0) {
        *out = TALON_AUDIT_ASYNC;
        return 0;
    }
    if (strcasecmp(word, "sync") == 0) {
        *out = TALON_AUDIT_SYNC;
        return 0;
    }
    snprintf(err, errlen, "invalid durability mode \"%s\"; expected async or sync", word);
    return -EINVAL;
}

/* "GET,POST" or "*" into a bit set. */
static int parse_methods(char *word, unsigned *out, char *err, size_t errlen)
{
    if (strcmp(word, "*") == 0) {
        *out = METHOD_ANY;
        return 0;
    }
    unsigned set = 0;
    char *save = NULL;
    for (char *m = strtok_r(word, ",", &save); m != NULL; m = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int i = 0; method_names[i] != NULL; i++) {
            if (strcasecmp(m, method_names[i]) == 0)
                found = i;
        }
        if (found < 0) {
            snprintf(err, errlen, "invalid method \"%s\"; expected *, or a comma-separated "
                     "list of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", m);
            return -EINVAL;
        }
        set |= 1u << found;
    }
    if (set == 0) {
        snprintf(err, errlen, "missing method; expected * or a list such as GET,POST");
        return -EINVAL;
    }
    *out = set;
    return 0;
}

int talon_audit_policy_add_rule(talon_audit_policy *policy, const char *rule,
                                char *err, size_t errlen)
{
    char buf[512];
    char *words[5];
    int nwords = 0;

    if (strlen(rule) >= sizeof(buf)) {
        snprintf(err, errlen, "audit rule longer than %zu bytes", sizeof(buf) - 1);
        return -EINVAL;
    }
    if (policy->nrules >= POLICY_MAX_RULES) {
        snprintf(err, errlen, "more than %d audit rules", POLICY_MAX_RULES);
        return -EINVAL;
    }
    strcpy(buf, rule);
    char *save = NULL;
    for (char *w = strtok_r(buf, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
        if (nwords == 5)
            break;
        words[nwords++] = w;
    }
    if (nwords < 3 || nwords > 4) {
        snprintf(err, errlen, "invalid audit rule \"%s\"; expected METHODS ROUTE LEVEL [MODE], "
                 "for example \"POST /notes* request sync\"", rule);
        return -EINVAL;
    }

    policy_rule r = { .mode = TALON_AUDIT_ASYNC };
    int rc = parse_methods(words[0], &r.methods, err, errlen);
    if (rc == 0 && words[1][0] != '/' && strcmp(words[1], "*") != 0 && strcmp(words[1], "-") != 0) {
        snprintf(err, errlen, "invalid route pattern \"%s\"; expected a route template glob "
                 "starting with / (such as /notes*), * for every route, or - for requests "
                 "that matched no route", words[1]);
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = parse_level(words[2], &r.level, err, errlen);
    if (rc == 0 && nwords == 4) {
        rc = parse_mode(words[3], &r.mode, err, errlen);
        r.mode_set = true;
    }
    if (rc < 0)
        return rc;

    if (strcmp(words[1], "-") != 0) {
        r.route = strdup(words[1]);
        if (r.route == NULL)
            return -ENOMEM;
    }
    policy_rule *grown = realloc(policy->rules, (policy->nrules + 1) * sizeof(*grown));
    if (grown == NULL) {
        free(r.route);
        return -ENOMEM;
    }
    policy->rules = grown;
    policy->rules[policy->nrules++] = r;
    return 0;
}

int talon_audit_policy_config_set(talon_audit_policy *policy, const char *key,
                                  const char *value, char *err, size_t errlen)
{
    if (strcmp(key, "rule") == 0)
        return talon_audit_policy_add_rule(policy, value, err, errlen);
    if (strcmp(key, "default_level") == 0)
        return parse_level(value, &policy->default_level, err, errlen);
    if (strcmp(key, "default_mode") == 0)
        return parse_mode(value, &policy->default_mode, err, errlen);
    snprintf(err, errlen, "unknown key \"%s\"; expected rule, default_level or default_mode "
             "(the body size limit is max_body_size in [audit])", key);
    return -EINVAL;
}

void talon_audit_policy_set_max_body_size(talon_audit_policy *policy, size_t max)
{
    policy->max_body_size = max;
}

void talon_audit_policy_set_failure(talon_audit_policy *policy, talon_audit_failure failure)
{
    policy->failure = failure;
}

static unsigned method_bit(const char *method)
{
    for (int i = 0; method_names[i] != NULL; i++) {
        if (strcmp(method, method_names[i]) == 0)
            return 1u << i;
    }
    return 0; /* an extension method matches only "*" */
}

void talon_audit_policy_match(const talon_audit_policy *policy, const char *method,
                              const char *route, talon_audit_level *level,
                              talon_audit_mode *mode)
{
    unsigned bit = method ? method_bit(method) : 0;

    for (size_t i = 0; i < policy->nrules; i++) {
        const policy_rule *r = &policy->rules[i];
        if (r->methods != METHOD_ANY && (r->methods & bit) == 0)
            continue;
        if (r->route == NULL) {
            if (route != NULL)
                continue;
        } else if (strcmp(r->route, "*") != 0) {
            if (route == NULL || fnmatch(r->route, route, 0) != 0)
                continue;
        }
        *level = r->level;
        *mode = r->mode_set ? r->mode : policy->default_mode;
        return;
    }
    *level = policy->default_level;
    *mode = policy->default_mode;
}

talon_audit_failure audit_policy_failure(const talon_audit_policy *policy)
{
    return policy->failure;
}

size_t audit_policy_max_body(const talon_audit_policy *policy)
{
    return policy->max_body_size;
}
