/* The interned field keys of fields.h. */
#include <string.h>

#include "log/fields.h"

const char log_keys[LOG_KEY_COUNT][LOG_KEY_SIZE] = {
    [LOG_KEY_CLIENT_IP] = TALON_KEY_CLIENT_IP,
    [LOG_KEY_USER_NAME] = TALON_KEY_USER_NAME,
    [LOG_KEY_USER_ID] = TALON_KEY_USER_ID,
    [LOG_KEY_METHOD] = TALON_KEY_METHOD,
    [LOG_KEY_URL_ORIGINAL] = TALON_KEY_URL_ORIGINAL,
    [LOG_KEY_URL_PATH] = TALON_KEY_URL_PATH,
    [LOG_KEY_HTTP_VERSION] = TALON_KEY_HTTP_VERSION,
    [LOG_KEY_STATUS] = TALON_KEY_STATUS,
    [LOG_KEY_BODY_BYTES] = TALON_KEY_BODY_BYTES,
    [LOG_KEY_RESPONSE_BYTES] = TALON_KEY_RESPONSE_BYTES,
    [LOG_KEY_DURATION] = TALON_KEY_DURATION,
    [LOG_KEY_REFERRER] = TALON_KEY_REFERRER,
    [LOG_KEY_USER_AGENT] = TALON_KEY_USER_AGENT,
    [LOG_KEY_REQUEST_ID] = TALON_KEY_REQUEST_ID,
    [LOG_KEY_TRACE_ID] = TALON_KEY_TRACE_ID,
    [LOG_KEY_ROUTE] = TALON_KEY_ROUTE,
    [LOG_KEY_OUTCOME] = TALON_KEY_OUTCOME,
};

/* A key as long as an entry would lose its NUL: fail the build instead. */
#define KEY_FITS(k) (sizeof(k) <= LOG_KEY_SIZE)
_Static_assert(KEY_FITS(TALON_KEY_CLIENT_IP) &&
               KEY_FITS(TALON_KEY_USER_NAME) &&
               KEY_FITS(TALON_KEY_USER_ID) &&
               KEY_FITS(TALON_KEY_METHOD) &&
               KEY_FITS(TALON_KEY_URL_ORIGINAL) &&
               KEY_FITS(TALON_KEY_URL_PATH) &&
               KEY_FITS(TALON_KEY_HTTP_VERSION) &&
               KEY_FITS(TALON_KEY_STATUS) &&
               KEY_FITS(TALON_KEY_BODY_BYTES) &&
               KEY_FITS(TALON_KEY_RESPONSE_BYTES) &&
               KEY_FITS(TALON_KEY_DURATION) &&
               KEY_FITS(TALON_KEY_REFERRER) &&
               KEY_FITS(TALON_KEY_USER_AGENT) &&
               KEY_FITS(TALON_KEY_REQUEST_ID) &&
               KEY_FITS(TALON_KEY_TRACE_ID) &&
               KEY_FITS(TALON_KEY_ROUTE) &&
               KEY_FITS(TALON_KEY_OUTCOME),
               "a field key does not fit in LOG_KEY_SIZE bytes");

const char *log_key_intern(const char *key)
{
    for (int i = 0; i < LOG_KEY_COUNT; i++)
        if (strcmp(log_keys[i], key) == 0)
            return log_keys[i];
    return NULL;
}
