/* INI configuration loading (libinih) shared by the log core, the audit
 * trail and applications. */
#ifndef TALON_CONFIG_H
#define TALON_CONFIG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Called for every key. Return 0, or a negative errno with err describing
 * what is wrong with the value and which values are accepted. */
typedef int (*talon_config_handler)(void *ctx, const char *section, const char *key,
                                    const char *value, char *err, size_t errlen);

/* Parse an INI file and call handler for every key. Returns 0, -ENOENT etc.
 * when the file cannot be read, or -EINVAL on the first syntax error or
 * handler error, with err as "FILE:LINE: [section] key: message". */
int talon_config_load(const char *path, talon_config_handler handler, void *ctx,
                      char *err, size_t errlen);

/* A section header that appears twice, and a key set twice in one section,
 * are errors ("FILE:LINE: [section] key: duplicate; first set at line N").
 * Keys named in repeatable, a NULL-terminated list of "section.key"
 * entries, may be set several times and reach handler each time, in file
 * order; "audit.policy.rule" always may. talon_config_load() is this with
 * repeatable NULL. */
int talon_config_load_repeatable(const char *path, const char *const *repeatable,
                                 talon_config_handler handler, void *ctx, char *err, size_t errlen);

/* Value parsers with messages that name the accepted values. */
int talon_config_parse_bool(const char *value, int *out, char *err, size_t errlen);
int talon_config_parse_size(const char *value, unsigned long long *out, char *err, size_t errlen); /* 10k, 64M, 1G */
int talon_config_parse_seconds(const char *value, unsigned long long *out, char *err, size_t errlen); /* 30, 30s, 5m, 1h, 1d */
int talon_config_parse_mode(const char *value, unsigned *out, char *err, size_t errlen); /* octal, 0640 */

#ifdef __cplusplus
}
#endif
#endif
