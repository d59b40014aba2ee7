/* The verifier's hashing pool: threads parse each line of a chunk, compute
 * h_i = SHA-256(P_i), check prev against the line before it and the MAC with
 * the window's epoch keys, and leave compact per-line results that the
 * calling thread checks in order (verify.c).
 *
 * A window of up to POOL_MAX_CHUNKS chunks of about 1 MiB is published at a
 * time. Threads, the caller included, take chunks in file order, so a thread
 * that the scheduler holds up delays only its own chunk, and the caller
 * checks chunk k as soon as it is done while the others hash later ones.
 */
#include "audit/verify_internal.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_TYPE "audit_epoch_sealed"
#define RECOVERED_TYPE "audit_recovered"

/* ---- One chunk ---------------------------------------------------------- */

static void hash_line(const hash_pool *pool, line_result *lr, const char *line, size_t len,
                      const line_result *before, mac_key *mk)
{
    talon_audit_record rec;
    lr->off = (size_t)(line - pool->data);
    lr->len = len;
    lr->flags = 0;
    if (talon_audit_record_parse(line, len, &rec, NULL, 0) != 0)
        return;
    lr->flags = L_PARSED;
    lr->seq = rec.seq;
    lr->epoch = rec.epoch;
    lr->prev_off = (size_t)(rec.prev.p - pool->data);
    verify_sha256(line, rec.prefix_len, lr->h);
    if (before && (before->flags & L_PARSED) && verify_hex_equal(before->h, rec.prev.p))
        lr->flags |= L_LINKED;
    if (memcmp(rec.trail.p, pool->trail_hex, 32) == 0)
        lr->flags |= L_TRAIL_OK;
    /* An escaped type may decode to the seal's ("audit_epoch_seal\u0065d"),
     * so the careful path, which decodes it, decides. */
    if (rec.type.escaped ||
        (rec.type.len == sizeof SEAL_TYPE - 1 && memcmp(rec.type.p, SEAL_TYPE, rec.type.len) == 0))
        lr->flags |= L_SEAL;
    if (rec.type.len == sizeof RECOVERED_TYPE - 1 && memcmp(rec.type.p, RECOVERED_TYPE, rec.type.len) == 0)
        lr->flags |= L_RECOVERED;
    const keyring *kr = pool->keys;
    if (pool->check_macs && rec.epoch >= kr->base && rec.epoch - kr->base < kr->nkeys) {
        if (!mk->ready || mk->epoch != rec.epoch)
            mac_key_set(mk, kr->keys[rec.epoch - kr->base], rec.epoch);
        lr->flags |= L_MAC_CHECKED;
        if (mac_matches(mk, lr->h, rec.mac.p))
            lr->flags |= L_MAC_OK;
    }
}

/* Room for one more result; false when out of memory. */
static bool chunk_grow(hash_chunk *c)
{
    if (c->n < c->capacity)
        return true;
    size_t capacity = c->capacity ? c->capacity * 2 : (c->end - c->begin) / 512 + 16;
    line_result *grown = realloc(c->out, capacity * sizeof *grown);
    if (!grown) {
        c->err = -ENOMEM;
        return false;
    }
    c->out = grown;
    c->capacity = capacity;
    return true;
}

static void chunk_run(const hash_pool *pool, hash_chunk *c)
{
    mac_key mk = { .ready = false };
    const char *p = pool->data + c->begin, *end = pool->data + c->end;
    while (p < end && chunk_grow(c)) {
        line_result *lr = &c->out[c->n];
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            /* Only the end of the file can lack a newline: chunks end at line ends. */
            *lr = (line_result){ .off = (size_t)(p - pool->data), .len = (size_t)(end - p), .flags = L_TORN };
            c->n++;
            break;
        }
        hash_line(pool, lr, p, (size_t)(nl - p), c->n ? lr - 1 : NULL, &mk);
        c->n++;
        p = nl + 1;
    }
    OPENSSL_cleanse(&mk, sizeof mk);
}

/* ---- Threads ------------------------------------------------------------ */

/* Take the next chunk no thread has started, run it and mark it done.
 * Called and returns with the lock held; false when there was none. */
static bool run_next(hash_pool *pool)
{
    if (pool->next == pool->nchunks)
        return false;
    hash_chunk *c = &pool->chunks[pool->next++];
    pthread_mutex_unlock(&pool->lock);
    chunk_run(pool, c);
    pthread_mutex_lock(&pool->lock);
    c->done = true;
    pthread_cond_signal(&pool->finished);
    return true;
}

static void *pool_thread(void *arg)
{
    hash_pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    while (!pool->stop) {
        if (!run_next(pool))
            pthread_cond_wait(&pool->wake, &pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int hash_pool_init(hash_pool *pool, unsigned threads)
{
    memset(pool, 0, sizeof *pool);
    pool->want_threads = threads;
    if (pool->want_threads < 1)
        pool->want_threads = 1;
    if (pool->want_threads > MAX_THREADS)
        pool->want_threads = MAX_THREADS;
    int rc = pthread_mutex_init(&pool->lock, NULL);
    if (rc)
        return -rc;
    rc = pthread_cond_init(&pool->wake, NULL);
    if (rc) {
        pthread_mutex_destroy(&pool->lock);
        return -rc;
    }
    rc = pthread_cond_init(&pool->finished, NULL);
    if (rc) {
        pthread_cond_destroy(&pool->wake);
        pthread_mutex_destroy(&pool->lock);
        return -rc;
    }
    return 0;
}

void hash_pool_release(hash_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    for (size_t i = 0; i < POOL_MAX_CHUNKS; i++)
        free(pool->chunks[i].out);
    pthread_cond_destroy(&pool->finished);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
}

/* Start the threads the first time a window has work for more than one.
 * A thread that cannot start leaves its share to the others. */
static void start_threads(hash_pool *pool)
{
    if (pool->nthreads || pool->want_threads < 2 || pool->nchunks < 2)
        return;
    while (pool->nthreads < pool->want_threads - 1 &&
           pthread_create(&pool->threads[pool->nthreads], NULL, pool_thread, pool) == 0)
        pool->nthreads++;
}

void hash_pool_start(hash_pool *pool, const char *data, size_t size, size_t *pos, const keyring *keys,
                     const char *trail_hex, bool check_macs)
{
    pthread_mutex_lock(&pool->lock);
    pool->data = data;
    pool->keys = keys;
    pool->trail_hex = trail_hex;
    pool->check_macs = check_macs;
    pool->nchunks = 0;
    pool->next = 0;
    while (pool->nchunks < POOL_MAX_CHUNKS && *pos < size) {
        hash_chunk *c = &pool->chunks[pool->nchunks++];
        size_t end = *pos + POOL_CHUNK_BYTES;
        if (end >= size) {
            end = size;
        } else {
            const char *nl = memchr(data + end, '\n', size - end);
            end = nl ? (size_t)(nl - data) + 1 : size;
        }
        c->begin = *pos;
        c->end = end;
        c->n = 0;
        c->err = 0;
        c->done = false;
        *pos = end;
    }
    start_threads(pool);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

const hash_chunk *hash_pool_wait(hash_pool *pool, size_t k)
{
    pthread_mutex_lock(&pool->lock);
    while (!pool->chunks[k].done) {
        if (!run_next(pool))
            pthread_cond_wait(&pool->finished, &pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return &pool->chunks[k];
}

void hash_pool_cancel(hash_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    for (size_t k = pool->next; k < pool->nchunks; k++)
        pool->chunks[k].done = true;
    pool->next = pool->nchunks;
    for (size_t k = 0; k < pool->nchunks; k++)
        while (!pool->chunks[k].done)
            pthread_cond_wait(&pool->finished, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}
