/* The verifier's keys and MACs: hex, the verification key file, epoch keys
 * evolved forward from K_0, and HMAC-SHA256 with precomputed pads. */
#include "audit/verify_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const char EVOLVE_LABEL[] = "talon-audit-evolve-v1";

/* ---- Hex ---------------------------------------------------------------- */

void verify_to_hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
}

/* Value + 1 of each hex digit, 0 for other bytes. */
static const uint8_t HEX_VALUE1[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/* Decode 2 * nbytes lowercase hex digits; false when one is not a digit. */
static bool from_hex(uint8_t *out, const char *hex, size_t nbytes)
{
    int bad = 0;
    for (size_t i = 0; i < nbytes; i++) {
        int hi = HEX_VALUE1[(unsigned char)hex[2 * i]] - 1, lo = HEX_VALUE1[(unsigned char)hex[2 * i + 1]] - 1;
        bad |= hi | lo;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return bad >= 0;
}

#ifdef __SSE2__
/* The 32 lowercase hex digits of the 16 bytes v, in two vectors. */
static void hex16(__m128i v, __m128i *first, __m128i *second)
{
    const __m128i low4 = _mm_set1_epi8(0x0f), nine = _mm_set1_epi8(9);
    const __m128i zero = _mm_set1_epi8('0'), letter = _mm_set1_epi8('a' - '0' - 10);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), low4), lo = _mm_and_si128(v, low4);
    /* Each nibble in its output position (high nibble first), then '0' +
     * nibble, plus the distance to 'a' where the nibble is above 9. */
    __m128i a = _mm_unpacklo_epi8(hi, lo), b = _mm_unpackhi_epi8(hi, lo);
    a = _mm_add_epi8(_mm_add_epi8(a, zero), _mm_and_si128(_mm_cmpgt_epi8(a, nine), letter));
    b = _mm_add_epi8(_mm_add_epi8(b, zero), _mm_and_si128(_mm_cmpgt_epi8(b, nine), letter));
    *first = a;
    *second = b;
}
#endif

bool verify_hex_equal(const uint8_t bin[32], const char *hex)
{
#ifdef __SSE2__
    __m128i diff = _mm_setzero_si128();
    for (int half = 0; half < 2; half++) {
        __m128i a, b;
        hex16(_mm_loadu_si128((const __m128i *)(const void *)(bin + 16 * half)), &a, &b);
        const char *h = hex + 32 * half;
        diff = _mm_or_si128(diff, _mm_xor_si128(a, _mm_loadu_si128((const __m128i *)(const void *)h)));
        diff = _mm_or_si128(diff, _mm_xor_si128(b, _mm_loadu_si128((const __m128i *)(const void *)(h + 16))));
    }
    return _mm_movemask_epi8(_mm_cmpeq_epi8(diff, _mm_setzero_si128())) == 0xffff;
#else
    char want[64];
    verify_to_hex(want, bin, 32);
    return memcmp(want, hex, 64) == 0;
#endif
}

/* ---- The verification key file ------------------------------------------ */

int talon_audit_key_load(const char *path, uint8_t trail[16], uint8_t key0[32], char *err, size_t errlen)
{
    /* open and read, not stdio: no FILE buffer to allocate, and nothing of
     * the key is left in one. O_NONBLOCK: a FIFO given by mistake reads as
     * empty (and is rejected below) instead of waiting for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot open the verification key: %s", path, strerror(e));
        return -e;
    }
    char line[256];
    size_t n = 0;
    while (n < sizeof line - 1) {
        ssize_t got = read(fd, line + n, sizeof line - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    line[n] = '\0';
    static const char head[] = "talon-audit-key v1 trail=";
    /* "talon-audit-key v1 trail=<32 hex> key0=<64 hex>\n" */
    if (n < sizeof head - 1 + 32 + 6 + 64 || memcmp(line, head, sizeof head - 1) != 0 ||
        memcmp(line + sizeof head - 1 + 32, " key0=", 6) != 0 ||
        !from_hex(trail, line + sizeof head - 1, 16) ||
        !from_hex(key0, line + sizeof head - 1 + 32 + 6, 32) ||
        (n > sizeof head - 1 + 32 + 6 + 64 && line[sizeof head - 1 + 32 + 6 + 64] != '\n')) {
        OPENSSL_cleanse(line, sizeof line);
        snprintf(err, errlen, "%s: not a talon verification key (expected one line "
                 "\"talon-audit-key v1 trail=<32 hex> key0=<64 hex>\", as written by talon audit keygen)",
                 path);
        return -EINVAL;
    }
    OPENSSL_cleanse(line, sizeof line);
    return 0;
}

/* ---- Epoch keys --------------------------------------------------------- */

static void evolve_key(uint8_t out[32], const uint8_t in[32])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, EVOLVE_LABEL, sizeof EVOLVE_LABEL - 1);
    SHA256_Update(&c, in, 32);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof c);
}

/* The latest known key at or below epoch is K_0, the window's last key or
 * the cursor. */
void keyring_derive(keyring *kr, uint64_t epoch, uint8_t out[32])
{
    if (epoch >= kr->base && epoch - kr->base < kr->nkeys) {
        memcpy(out, kr->keys[epoch - kr->base], 32);
        return;
    }
    uint64_t from = 0;
    const uint8_t *key = kr->key0;
    if (kr->nkeys && kr->base + kr->nkeys - 1 <= epoch) {
        from = kr->base + kr->nkeys - 1;
        key = kr->keys[kr->nkeys - 1];
    }
    if (kr->cursor_epoch >= from && kr->cursor_epoch <= epoch) {
        from = kr->cursor_epoch;
        key = kr->cursor;
    }
    uint8_t k[32];
    memcpy(k, key, 32);
    for (uint64_t e = from; e < epoch; e++)
        evolve_key(k, k);
    memcpy(kr->cursor, k, 32);
    kr->cursor_epoch = epoch;
    memcpy(out, k, 32);
    OPENSSL_cleanse(k, sizeof k);
}

/* Make room for n keys in the window, keeping the ones it has. */
static int keyring_reserve(keyring *kr, uint64_t n)
{
    if (n <= kr->capacity)
        return 0;
    uint64_t capacity = kr->capacity * 2 > n ? kr->capacity * 2 : n;
    if (capacity > WINDOW_KEYS)
        capacity = WINDOW_KEYS;
    uint8_t (*keys)[32] = malloc(capacity * sizeof *keys);
    if (!keys)
        return -ENOMEM;
    if (kr->nkeys)
        memcpy(keys, kr->keys, kr->nkeys * sizeof *keys);
    if (kr->keys) {
        OPENSSL_cleanse(kr->keys, kr->capacity * sizeof *kr->keys);
        free(kr->keys);
    }
    kr->keys = keys;
    kr->capacity = capacity;
    return 0;
}

int keyring_window(keyring *kr, uint64_t first, uint64_t n)
{
    if (n > WINDOW_KEYS)
        n = WINDOW_KEYS;
    if (n == 0)
        n = 1;
    if (kr->nkeys && first == kr->base && n <= kr->nkeys)
        return 0;
    int rc = keyring_reserve(kr, n);
    if (rc < 0)
        return rc;
    uint64_t keep = 0;
    if (kr->nkeys && first >= kr->base && first - kr->base < kr->nkeys) {
        keep = kr->nkeys - (first - kr->base);
        if (keep > n)
            keep = n;
        memmove(kr->keys, kr->keys[first - kr->base], keep * 32);
    } else {
        keyring_derive(kr, first, kr->keys[0]);
        keep = 1;
    }
    for (uint64_t i = keep; i < n; i++)
        evolve_key(kr->keys[i], kr->keys[i - 1]);
    kr->base = first;
    kr->nkeys = n;
    return 0;
}

void keyring_release(keyring *kr)
{
    if (kr->keys) {
        OPENSSL_cleanse(kr->keys, kr->capacity * sizeof *kr->keys);
        free(kr->keys);
    }
    OPENSSL_cleanse(kr, sizeof *kr);
}

/* ---- MACs --------------------------------------------------------------- */

void verify_sha256(const char *p, size_t n, uint8_t out[32])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, p, n);
    SHA256_Final(out, &c);
}

void mac_key_set(mac_key *m, const uint8_t key[32], uint64_t epoch)
{
    uint8_t pad[64];
    memset(pad, 0x36, sizeof pad);
    for (int i = 0; i < 32; i++)
        pad[i] ^= key[i];
    SHA256_Init(&m->inner);
    SHA256_Update(&m->inner, pad, 64);
    memset(pad, 0x5c, sizeof pad);
    for (int i = 0; i < 32; i++)
        pad[i] ^= key[i];
    SHA256_Init(&m->outer);
    SHA256_Update(&m->outer, pad, 64);
    OPENSSL_cleanse(pad, sizeof pad);
    m->epoch = epoch;
    m->ready = true;
}

/* The last SHA-256 block of HMAC's inner or outer hash, whose message is a
 * 32-byte digest after the 64-byte pad: the digest, 0x80, zeros and the
 * message length of 96 bytes in bits (768), big-endian. c is the state
 * after the pad, and the result goes to out. */
static void digest_block(SHA256_CTX *c, const uint8_t digest[32], uint8_t out[32])
{
    uint8_t block[64] = { 0 };
    memcpy(block, digest, 32);
    block[32] = 0x80;
    block[62] = 768 >> 8;
    block[63] = 768 & 0xff;
    SHA256_Transform(c, block);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

bool mac_matches(const mac_key *m, const uint8_t h[32], const char *mac_hex)
{
    /* One SHA256_Transform per hash: SHA256_Update and SHA256_Final would
     * copy, pad and wipe the same block. */
    SHA256_CTX c = m->inner;
    uint8_t inner[32], mac[32];
    digest_block(&c, h, inner);
    c = m->outer;
    digest_block(&c, inner, mac);
    /* A plain compare, not CRYPTO_memcmp: a verifier has no secret for
     * timing to leak (the key only checks MACs that the trail already
     * contains). */
    return verify_hex_equal(mac, mac_hex);
}
