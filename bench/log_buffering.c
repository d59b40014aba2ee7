/* Microbenchmark behind the buffering design of src/log/sink.c.
 *
 * Compares the cost per line of getting an already formatted line into a
 * sink buffer, with a writer thread draining full chunks to /dev/null:
 *   shared      one buffer per sink, a mutex around a memcpy (the design used)
 *   per-thread  one buffer per thread, a mutex per buffer that only the writer
 *               contends, full chunks handed over under a global lock
 * and the cost of reading a logger's sink list on the record path:
 *   rwlock      pthread_rwlock_rdlock/unlock around the read
 *   atomic      one acquire load of a copy-on-write array (the design used)
 *
 * Build and run (not part of ctest; a second or two per case):
 *   cc -O2 -pthread bench/log_buffering.c -o /tmp/log_buffering
 *   /tmp/log_buffering [threads] [lines per thread]
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)
#define LINE_LEN 120

typedef struct chunk {
    struct chunk *next;
    size_t len;
    char data[CHUNK];
} chunk;

/* Full chunks handed to the writer. */
static pthread_mutex_t full_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t full_cond = PTHREAD_COND_INITIALIZER;
static chunk *full_list;
static atomic_bool writer_stop;
static int devnull;

static void hand_over(chunk *c)
{
    pthread_mutex_lock(&full_lock);
    c->next = full_list;
    full_list = c;
    pthread_cond_signal(&full_cond);
    pthread_mutex_unlock(&full_lock);
}

static void *writer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&full_lock);
    while (!atomic_load(&writer_stop) || full_list) {
        if (!full_list) {
            pthread_cond_wait(&full_cond, &full_lock);
            continue;
        }
        chunk *c = full_list;
        full_list = NULL;
        pthread_mutex_unlock(&full_lock);
        while (c) {
            chunk *next = c->next;
            if (write(devnull, c->data, c->len) < 0)
                perror("write");
            free(c);
            c = next;
        }
        pthread_mutex_lock(&full_lock);
    }
    pthread_mutex_unlock(&full_lock);
    return NULL;
}

static chunk *chunk_new(void)
{
    chunk *c = malloc(sizeof(*c));
    c->len = 0;
    c->next = NULL;
    return c;
}

/* Append line to *cur, handing a full chunk to the writer. */
static void append(chunk **cur, const char *line, size_t len)
{
    if ((*cur)->len + len > CHUNK) {
        hand_over(*cur);
        *cur = chunk_new();
    }
    memcpy((*cur)->data + (*cur)->len, line, len);
    (*cur)->len += len;
}

static int nthreads = 4;
static long nlines = 2000000;

/* Strategy "shared": one buffer and one mutex for every thread. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static chunk *shared_cur;

static void *shared_main(void *arg)
{
    char line[LINE_LEN];
    memset(line, 'x', sizeof(line));
    line[LINE_LEN - 1] = '\n';
    for (long i = 0; i < nlines; i++) {
        pthread_mutex_lock(&shared_lock);
        append(&shared_cur, line, sizeof(line));
        pthread_mutex_unlock(&shared_lock);
    }
    return arg;
}

/* Strategy "per-thread": a buffer per thread; its mutex is contended only
 * when the writer takes the buffer on the flush interval. */
typedef struct thread_buffer {
    pthread_mutex_t lock;
    chunk *cur;
} thread_buffer;

static void *per_thread_main(void *arg)
{
    thread_buffer *tb = arg;
    char line[LINE_LEN];
    memset(line, 'x', sizeof(line));
    line[LINE_LEN - 1] = '\n';
    for (long i = 0; i < nlines; i++) {
        pthread_mutex_lock(&tb->lock);
        append(&tb->cur, line, sizeof(line));
        pthread_mutex_unlock(&tb->lock);
    }
    return NULL;
}

/* Sink-list reads on the record path. */
static pthread_rwlock_t list_rwlock = PTHREAD_RWLOCK_INITIALIZER;
static int list_value[4] = { 1, 2, 3, 4 };
static _Atomic(int *) list_ptr = list_value;
static atomic_long sink_sum;

static void *rwlock_main(void *arg)
{
    long sum = 0;
    for (long i = 0; i < nlines; i++) {
        pthread_rwlock_rdlock(&list_rwlock);
        sum += list_value[i & 3];
        pthread_rwlock_unlock(&list_rwlock);
    }
    atomic_fetch_add(&sink_sum, sum);
    return arg;
}

static void *atomic_main(void *arg)
{
    long sum = 0;
    for (long i = 0; i < nlines; i++) {
        int *list = atomic_load_explicit(&list_ptr, memory_order_acquire);
        sum += list[i & 3];
    }
    atomic_fetch_add(&sink_sum, sum);
    return arg;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run fn on nthreads threads (args[i] each) and print ns per line. */
static void run(const char *name, void *(*fn)(void *), void **args)
{
    pthread_t writer, threads[64];
    atomic_store(&writer_stop, false);
    pthread_create(&writer, NULL, writer_main, NULL);
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++)
        pthread_create(&threads[i], NULL, fn, args ? args[i] : NULL);
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    double elapsed = now_s() - t0;
    pthread_mutex_lock(&full_lock);
    atomic_store(&writer_stop, true);
    pthread_cond_signal(&full_cond);
    pthread_mutex_unlock(&full_lock);
    pthread_join(writer, NULL);
    printf("%-11s %6.1f ns per line (wall time / all lines), %d threads x %ld lines\n", name,
           elapsed * 1e9 / ((double)nthreads * nlines), nthreads, nlines);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        nthreads = atoi(argv[1]);
    if (argc > 2)
        nlines = atol(argv[2]);
    if (nthreads < 1 || nthreads > 64 || nlines < 1) {
        fprintf(stderr, "usage: %s [threads 1-64] [lines per thread]\n", argv[0]);
        return 2;
    }
    devnull = open("/dev/null", O_WRONLY);

    shared_cur = chunk_new();
    run("shared", shared_main, NULL);
    free(shared_cur);

    thread_buffer tbs[64];
    void *args[64];
    for (int i = 0; i < nthreads; i++) {
        pthread_mutex_init(&tbs[i].lock, NULL);
        tbs[i].cur = chunk_new();
        args[i] = &tbs[i];
    }
    run("per-thread", per_thread_main, args);
    for (int i = 0; i < nthreads; i++)
        free(tbs[i].cur);

    run("rwlock", rwlock_main, NULL);
    run("atomic", atomic_main, NULL);
    return atomic_load(&sink_sum) == 0;
}
