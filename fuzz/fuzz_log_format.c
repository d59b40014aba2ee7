/* Fuzz every log format (src/log/format.c, format_compile.c, escape.c).
 *
 * Input: a header (level, time, a byte of field types, a cap for the
 * truncated pass), then length-prefixed chunks: message, logger, a custom
 * format spec, one value per access-log field key, then extra fields with
 * arbitrary keys. Each chunk is one length byte (255: two more bytes of
 * length follow) and the bytes, so values may hold any byte.
 *
 * Invariants checked for "text", "json", "logfmt", "combined", "common",
 * "rfc5424" (syslog) and the custom spec (when it compiles):
 * - exactly one line: ends in '\n', no other '\n', no byte below 0x20 and
 *   no 0x7f anywhere else;
 * - valid UTF-8 (invalid input bytes are escaped);
 * - the length is the same whatever the buffer size, and nothing is
 *   written past the cap;
 * - json: jansson parses the line as an object, and "message" reads back
 *   as the original bytes when they were valid UTF-8;
 * - combined and common: the quotes are the format's own (6 and 2), so a
 *   parser such as GoAccess splits the fields right. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "fuzz_util.h"
#include "log/fields.h"
#include "talon/log.h"

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static bool take(reader *r, void *out, size_t n)
{
    if (r->n < n) {
        memset(out, 0, n);
        return false;
    }
    memcpy(out, r->p, n);
    r->p += n;
    r->n -= n;
    return true;
}

/* A length-prefixed chunk; NULL at the end of the input. */
static const char *chunk(reader *r, size_t *len)
{
    uint8_t b;
    if (!take(r, &b, 1))
        return NULL;
    size_t n = b;
    if (b == 255) {
        uint8_t ext[2];
        take(r, ext, 2);
        n = (size_t)ext[0] << 8 | ext[1];
    }
    if (n > r->n)
        n = r->n;
    const char *s = (const char *)r->p;
    r->p += n;
    r->n -= n;
    *len = n;
    return s;
}

static const char *const access_keys[] = {
    TALON_KEY_CLIENT_IP, TALON_KEY_USER_NAME, TALON_KEY_USER_ID, TALON_KEY_METHOD,
    TALON_KEY_URL_ORIGINAL, TALON_KEY_URL_PATH, TALON_KEY_HTTP_VERSION, TALON_KEY_STATUS,
    TALON_KEY_BODY_BYTES, TALON_KEY_RESPONSE_BYTES, TALON_KEY_DURATION, TALON_KEY_REFERRER,
    TALON_KEY_USER_AGENT, TALON_KEY_REQUEST_ID, TALON_KEY_TRACE_ID, TALON_KEY_ROUTE,
    TALON_KEY_OUTCOME,
};
#define NKEYS (sizeof(access_keys) / sizeof(access_keys[0]))
#define MAX_FIELDS 48

/* Give field f a value of a type picked by sel, from chunk bytes s. */
static void set_value(talon_field *f, unsigned sel, const char *s, size_t n)
{
    uint64_t bits = 0;
    memcpy(&bits, s, n < 8 ? n : 8);
    switch (sel % 8) {
    case 4: f->type = TALON_FIELD_INT; f->v.i = (int64_t)bits; break;
    case 5: f->type = TALON_FIELD_UINT; f->v.u = bits; break;
    case 6: f->type = TALON_FIELD_DOUBLE; memcpy(&f->v.d, &bits, 8); break;
    case 7: f->type = (bits & 1) ? TALON_FIELD_TIME : TALON_FIELD_BOOL;
            if (f->type == TALON_FIELD_TIME) f->v.i = (int64_t)bits; else f->v.b = bits & 2;
            break;
    default: f->type = TALON_FIELD_STR; f->len = n; f->v.str = s; break;
    }
}

FUZZ_NO_COVERAGE static int count_byte(const char *s, size_t n, char c)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

FUZZ_NO_COVERAGE static void check_line(const talon_log_format *fmt, const talon_log_record *rec, size_t small_cap,
                       const char *name, bool utf8_literals)
{
    static char buf[1 << 20];
    size_t n = talon_log_format_record(fmt, rec, buf, sizeof(buf));
    if (n > sizeof(buf))
        return; /* a line over 1 MiB: the caller would retry larger */
    FUZZ_CHECK(n >= 1 && buf[n - 1] == '\n');
    for (size_t i = 0; i + 1 < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        FUZZ_CHECK(c >= 0x20 && c != 0x7f);
    }
    if (utf8_literals)
        FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)buf, n));

    /* A short buffer: same length, nothing written past the cap. */
    static char small[4096 + 64];
    if (small_cap > 4096)
        small_cap = 4096;
    memset(small, 0xa5, sizeof(small));
    size_t m = talon_log_format_record(fmt, rec, small, small_cap);
    FUZZ_CHECK(m == n);
    for (size_t i = small_cap; i < sizeof(small); i++)
        FUZZ_CHECK((unsigned char)small[i] == 0xa5);
    if (n <= small_cap)
        FUZZ_CHECK(memcmp(small, buf, n) == 0);

    if (strcmp(name, "json") == 0) {
        json_error_t jerr;
        /* A UINT field over INT64_MAX is a valid JSON integer that jansson
         * reads only as a real. */
        json_t *obj = json_loadb(buf, n - 1, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
        if (obj == NULL)
            fprintf(stderr, "jansson: %s at %d: %.*s\n", jerr.text, jerr.position, (int)n, buf);
        FUZZ_CHECK(obj != NULL && json_is_object(obj));
        /* A field named "message" duplicates the key (a documented NOTE in
         * format.c); jansson keeps the last one. */
        bool dup = false;
        for (size_t i = 0; i < rec->nfields; i++)
            dup |= strcmp(rec->fields[i].key, "message") == 0;
        if (!dup && fuzz_utf8_valid((const unsigned char *)rec->message, rec->message_len)) {
            json_t *msg = json_object_get(obj, "message");
            FUZZ_CHECK(json_is_string(msg));
            FUZZ_CHECK(json_string_length(msg) == rec->message_len &&
                       memcmp(json_string_value(msg), rec->message, rec->message_len) == 0);
        }
        json_decref(obj);
    } else if (strcmp(name, "combined") == 0) {
        FUZZ_CHECK(count_byte(buf, n, '"') == 6);
    } else if (strcmp(name, "common") == 0) {
        FUZZ_CHECK(count_byte(buf, n, '"') == 2);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = { data, size };
    uint8_t level, types[8], capb[2];
    int64_t time_ns;
    take(&r, &level, 1);
    take(&r, &time_ns, 8);
    take(&r, types, sizeof(types));
    take(&r, capb, 2);

    size_t msg_len = 0, logger_len = 0, spec_len = 0;
    const char *msg = chunk(&r, &msg_len);
    const char *logger = chunk(&r, &logger_len);
    const char *spec = chunk(&r, &spec_len);
    char *logger_z = strndup(logger ? logger : "", logger_len);
    char *spec_z = strndup(spec ? spec : "", spec_len);

    talon_field fields[MAX_FIELDS];
    char *keys[MAX_FIELDS];
    size_t nfields = 0, nkeys = 0;
    for (size_t k = 0; k < NKEYS; k++) {
        size_t len;
        const char *v = chunk(&r, &len);
        if (v == NULL)
            break;
        if (len == 0 && (types[k % 8] & 0x80))
            continue; /* the field is missing */
        fields[nfields] = (talon_field){ .key = access_keys[k] };
        set_value(&fields[nfields], types[k % 8] >> (k % 3), v, len);
        nfields++;
    }
    while (nfields < MAX_FIELDS) {
        size_t klen, vlen;
        const char *key = chunk(&r, &klen);
        const char *v = chunk(&r, &vlen);
        if (key == NULL || v == NULL)
            break;
        keys[nkeys] = strndup(key, klen);
        fields[nfields] = (talon_field){ .key = keys[nkeys++] };
        set_value(&fields[nfields], (unsigned)klen + (unsigned)vlen, v, vlen);
        nfields++;
    }

    talon_log_record rec = {
        .time_ns = time_ns,
        .level = (talon_log_level)(level % TALON_LOG_OFF),
        .logger = logger_z,
        .message = msg ? msg : "",
        .message_len = msg_len,
        .fields = fields,
        .nfields = nfields,
    };
    size_t small_cap = (size_t)capb[0] << 8 | capb[1];

    static const char *const names[] = { "text", "json", "logfmt", "combined", "common",
                                         "rfc5424" };
    static talon_log_format *builtin[6];
    for (size_t i = 0; i < 6; i++) {
        if (builtin[i] == NULL) {
            char err[256];
            builtin[i] = talon_log_format_compile(names[i], err, sizeof(err));
            FUZZ_CHECK(builtin[i] != NULL);
        }
        check_line(builtin[i], &rec, small_cap, names[i], true);
    }

    char err[512] = "";
    talon_log_format *custom = talon_log_format_compile(spec_z, err, sizeof(err));
    if (custom != NULL) {
        check_line(custom, &rec, small_cap, "custom",
                   fuzz_utf8_valid((const unsigned char *)spec_z, strlen(spec_z)));
        talon_log_format_free(custom);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }

    for (size_t i = 0; i < nkeys; i++)
        free(keys[i]);
    free(logger_z);
    free(spec_z);
    return 0;
}
