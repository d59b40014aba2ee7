/* Internal declarations of the trail verifier: epoch keys and MACs
 * (verify_keys.c), the hashing pool (verify_pool.c) and the checks that use
 * them (verify.c). */
#ifndef TALON_AUDIT_VERIFY_INTERNAL_H
#define TALON_AUDIT_VERIFY_INTERNAL_H

#define OPENSSL_SUPPRESS_DEPRECATED 1 /* SHA256_Transform & co: faster than EVP per record */
#include "audit/reader_internal.h"

#include <openssl/sha.h>
#include <pthread.h>

#define MAX_THREADS 8
#define WINDOW_KEYS (1u << 16)    /* max epoch keys kept for the hashing threads (2 MiB) */

/* ---- Hex ---------------------------------------------------------------- */

void verify_to_hex(char *out, const uint8_t *p, size_t n);
/* True when hex is the 64 lowercase hex digits of the 32 bytes bin. */
bool verify_hex_equal(const uint8_t bin[32], const char *hex);

/* ---- Epoch keys --------------------------------------------------------- */

/* Epoch keys, derived forward from K_0 by K_{e+1} = SHA-256(label || K_e).
 * keys[i] is K_{base + i}: a window that slides forward with the verifier, so
 * memory does not grow with the epoch number. cursor is the last key derived
 * outside the window, so stepping through later epochs one by one (the
 * "wrong epoch key" search) costs one hash per step.
 * NOTE: K_e costs e hashes from K_0; a --partial trail that starts at epoch
 * 2^32 takes minutes to reach its first key. */
typedef struct keyring {
    uint8_t key0[32];
    uint64_t base;
    uint8_t (*keys)[32];
    uint64_t nkeys;
    uint64_t capacity;     /* keys allocated, at most WINDOW_KEYS */
    uint64_t cursor_epoch;
    uint8_t cursor[32];
} keyring;

/* Write K_epoch into out, evolved from the latest known key at or below it. */
void keyring_derive(keyring *kr, uint64_t epoch, uint8_t out[32]);
/* Make the window hold K_first .. K_{first + n - 1}, n <= WINDOW_KEYS.
 * Returns 0 or -ENOMEM. */
int keyring_window(keyring *kr, uint64_t first, uint64_t n);
/* Wipe and free the keys. */
void keyring_release(keyring *kr);

/* HMAC-SHA256 states with the key's inner and outer pad already absorbed, so
 * that the MAC of a 32-byte hash costs two SHA-256 blocks (RFC 2104). */
typedef struct mac_key {
    uint64_t epoch;
    bool ready;
    SHA256_CTX inner, outer;
} mac_key;

/* SHA-256 of n bytes. Not OpenSSL's one-shot SHA256(): OpenSSL 3.0 runs it
 * through EVP_Q_digest, which fetches the algorithm (locks, allocations) on
 * each call, and verify took 45 % more CPU time with it (OpenSSL 3.0.19,
 * the trail of bench/gen_trail.py). */
void verify_sha256(const char *p, size_t n, uint8_t out[32]);

void mac_key_set(mac_key *m, const uint8_t key[32], uint64_t epoch);
/* True when mac_hex is the hex of HMAC-SHA256(key, h). */
bool mac_matches(const mac_key *m, const uint8_t h[32], const char *mac_hex);

/* ---- Hashing pool ------------------------------------------------------- */

enum {
    L_PARSED = 1 << 0,
    L_TORN = 1 << 1,      /* the last bytes of a file, without '\n' */
    L_SEAL = 1 << 2,      /* a seal, or an escaped type that may decode to one */
    L_MAC_CHECKED = 1 << 3,
    L_MAC_OK = 1 << 4,
    L_TRAIL_OK = 1 << 5,
    L_LINKED = 1 << 6,    /* prev is the hash of the line before it in the same chunk */
    L_RECOVERED = 1 << 7, /* an audit_recovered record: the careful path reports its cause */
};

/* What a hashing thread learned about one line. */
typedef struct line_result {
    uint64_t seq, epoch;
    size_t off, len;      /* the line in its file, without '\n' */
    size_t prev_off;      /* the 64 hex digits of prev in the file (L_PARSED) */
    unsigned flags;
    uint8_t h[32];
} line_result;

/* A run of whole lines that one thread hashes. */
typedef struct hash_chunk {
    size_t begin, end;    /* byte range of the file, starting at a line start */
    line_result *out;
    size_t n, capacity;
    int err;              /* 0 or -ENOMEM */
    bool done;            /* under the pool's lock */
} hash_chunk;

#define POOL_CHUNK_BYTES (1u << 20) /* bytes per chunk: small, so that threads share a window evenly */
#define POOL_MAX_CHUNKS 64          /* chunks per window: the keys stay fixed while they run */

/* Hashing threads and the chunks of the current window. The calling thread
 * hashes chunks too; threads start only when a window has two chunks or
 * more. */
typedef struct hash_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* threads: a window was published, or stop */
    pthread_cond_t finished;  /* caller: a chunk is done */
    pthread_t threads[MAX_THREADS];
    unsigned nthreads, want_threads;
    bool stop;

    /* The window: read-only for the threads while its chunks run. */
    const char *data;         /* the file's mapping */
    const keyring *keys;
    const char *trail_hex;    /* expected trail id, 32 hex digits */
    bool check_macs;
    hash_chunk chunks[POOL_MAX_CHUNKS];
    size_t nchunks;
    size_t next;              /* the first chunk no thread has taken */
} hash_pool;

/* Prepare a pool that uses up to threads threads in all (the caller's
 * included). Returns 0 or a negative errno. */
int hash_pool_init(hash_pool *pool, unsigned threads);
void hash_pool_release(hash_pool *pool);
/* Split [*pos, size) of the mapping data into up to POOL_MAX_CHUNKS chunks
 * of whole lines and let the threads start on them; *pos moves past them.
 * The caller must have waited for every chunk of the previous window. */
void hash_pool_start(hash_pool *pool, const char *data, size_t size, size_t *pos, const keyring *keys,
                     const char *trail_hex, bool check_macs);
/* Wait for chunk k of the window, hashing other chunks meanwhile. Returns
 * the chunk (its err set on failure). */
const hash_chunk *hash_pool_wait(hash_pool *pool, size_t k);
/* Take back the chunks no thread has started and wait for the others. */
void hash_pool_cancel(hash_pool *pool);

#endif
