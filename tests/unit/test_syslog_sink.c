/* Syslog sinks against in-process loopback servers: TCP octet-counting
 * frames from many threads arrive exactly once, also across a connection
 * the server closes; UDP sends one message per datagram and drops (and
 * counts) a message too long for one; bad URLs are rejected. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "talon/log.h"

#define THREADS 4
#define PER_THREAD 2000
#define MAX_MESSAGES 20000

/* Messages received by a server thread. */
typedef struct server {
    int listen_fd;
    int type;                 /* SOCK_STREAM or SOCK_DGRAM */
    int port;
    pthread_t thread;
    pthread_mutex_t lock;
    char *messages[MAX_MESSAGES];
    size_t count;
    int bad_frames;           /* read after the server stopped or under lock */
    atomic_bool stop;
    atomic_bool close_now;    /* TCP: close the current connection */
    atomic_int connections;
} server;

static void server_add(server *s, const char *p, size_t n)
{
    pthread_mutex_lock(&s->lock);
    if (s->count < MAX_MESSAGES)
        s->messages[s->count++] = strndup(p, n);
    pthread_mutex_unlock(&s->lock);
}

/* Split buf[0..*len) into "LENGTH SP MESSAGE" frames; keep a partial tail. */
static void parse_frames(server *s, char *buf, size_t *len)
{
    size_t p = 0;

    for (;;) {
        size_t q = p, n = 0;
        while (q < *len && buf[q] >= '0' && buf[q] <= '9')
            n = n * 10 + (size_t)(buf[q++] - '0');
        if (q == *len)
            break;
        if (q == p || buf[q] != ' ') {
            pthread_mutex_lock(&s->lock);
            s->bad_frames++;
            pthread_mutex_unlock(&s->lock);
            *len = 0;
            return;
        }
        if (q + 1 + n > *len)
            break;
        server_add(s, buf + q + 1, n);
        p = q + 1 + n;
    }
    memmove(buf, buf + p, *len - p);
    *len -= p;
}

static void *serve_tcp(void *arg)
{
    server *s = arg;
    static char buf[1 << 20];

    while (!s->stop) {
        struct pollfd pfd = { .fd = s->listen_fd, .events = POLLIN };
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        s->connections++;
        size_t len = 0;
        while (!s->stop) {
            if (s->close_now) {
                s->close_now = false;
                break;
            }
            struct pollfd cp = { .fd = fd, .events = POLLIN };
            if (poll(&cp, 1, 50) <= 0)
                continue;
            ssize_t n = read(fd, buf + len, sizeof(buf) - len);
            if (n <= 0)
                break;
            len += (size_t)n;
            parse_frames(s, buf, &len);
        }
        close(fd);
    }
    return NULL;
}

static void *serve_udp(void *arg)
{
    server *s = arg;
    static char buf[70000];

    while (!s->stop) {
        struct pollfd pfd = { .fd = s->listen_fd, .events = POLLIN };
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t n = recv(s->listen_fd, buf, sizeof(buf), 0);
        if (n > 0)
            server_add(s, buf, (size_t)n);
    }
    return NULL;
}

static void server_start(server *s, int type)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->type = type;
    s->listen_fd = socket(AF_INET, type, 0);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t alen = sizeof(a);
    getsockname(s->listen_fd, (struct sockaddr *)&a, &alen);
    s->port = ntohs(a.sin_port);
    if (type == SOCK_STREAM)
        assert_int_equal(listen(s->listen_fd, 8), 0);
    else {
        int size = 4 << 20;
        setsockopt(s->listen_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    pthread_create(&s->thread, NULL, type == SOCK_STREAM ? serve_tcp : serve_udp, s);
}

static void server_stop(server *s)
{
    s->stop = true;
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    for (size_t i = 0; i < s->count; i++)
        free(s->messages[i]);
    pthread_mutex_destroy(&s->lock);
}

static int server_bad_frames(server *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->bad_frames;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static size_t server_count(server *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->count;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* Wait (up to 30 s) until the server holds want messages. A UDP test
 * sends fewer messages than the socket's receive buffer holds, so none is
 * lost while the server thread is not scheduled. */
static void wait_messages(server *s, size_t want)
{
    for (int i = 0; i < 3000 && server_count(s) < want; i++)
        usleep(10000);
    assert_int_equal(server_count(s), want);
}

/* The format syslog_logger attached; loggers only borrow it, so each test
 * frees it after talon_log_shutdown(). */
static talon_log_format *syslog_format;

static talon_logger *syslog_logger(const char *name, const char *url, talon_sink **sink)
{
    char err[512] = "";
    talon_sink_options opts;

    talon_sink_options_init(&opts);
    opts.buffer_size = 4096; /* many small batches */
    opts.flush_interval_ms = 20;
    if (talon_sink_open_syslog(sink, url, &opts, err, sizeof(err)) < 0)
        fail_msg("talon_sink_open_syslog(%s): %s", url, err);
    talon_log_format *fmt = talon_log_format_compile("rfc5424", err, sizeof(err));
    assert_non_null(fmt);
    syslog_format = fmt;
    talon_logger *logger = talon_logger_get(name);
    assert_int_equal(talon_logger_add_sink(logger, *sink, TALON_LOG_INFO, fmt), 0);
    return logger;
}

typedef struct writer_arg {
    talon_logger *logger;
    int thread;
    int first, count;
} writer_arg;

static void *write_records(void *p)
{
    writer_arg *w = p;
    for (int i = w->first; i < w->first + w->count; i++) {
        talon_field f[] = { TALON_F_INT("t", w->thread), TALON_F_INT("i", i) };
        talon_log_fields(w->logger, TALON_LOG_INFO, f, 2, "record t=%d i=%d", w->thread, i);
    }
    return NULL;
}

static void run_threads(talon_logger *logger, int first, int count)
{
    pthread_t th[THREADS];
    writer_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (writer_arg){ logger, t, first, count };
        pthread_create(&th[t], NULL, write_records, &args[t]);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
}

/* Every (t, i) with i in [0, upto) arrived exactly once, as a whole message. */
static void assert_exactly_once(server *s, int upto)
{
    static unsigned char seen[THREADS][3 * PER_THREAD];
    memset(seen, 0, sizeof(seen));
    for (size_t k = 0; k < s->count; k++) {
        const char *m = s->messages[k];
        int t, i;
        assert_memory_equal(m, "<14>1 ", 6);
        assert_null(strchr(m, '\n'));
        const char *r = strstr(m, "] record t=");
        assert_non_null(r);
        assert_int_equal(sscanf(r, "] record t=%d i=%d", &t, &i), 2);
        assert_true(t >= 0 && t < THREADS && i >= 0 && i < upto);
        seen[t][i]++;
    }
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < upto; i++)
            if (seen[t][i] != 1)
                fail_msg("record t=%d i=%d arrived %d times", t, i, seen[t][i]);
}

static void tcp_frames_exactly_once(void **state)
{
    (void)state;
    server s;
    char url[64];
    talon_sink *sink;

    server_start(&s, SOCK_STREAM);
    snprintf(url, sizeof(url), "syslog+tcp://127.0.0.1:%d", s.port);
    talon_logger *logger = syslog_logger("sys.tcp", url, &sink);

    run_threads(logger, 0, PER_THREAD);
    assert_int_equal(talon_sink_flush(sink), 0);
    wait_messages(&s, THREADS * PER_THREAD);
    assert_int_equal(server_bad_frames(&s), 0);

    /* The server closes the connection: the sink connects again and sends
     * the next records once each. */
    s.close_now = true;
    for (int i = 0; i < 200 && s.close_now; i++)
        usleep(10000);
    usleep(100000);
    run_threads(logger, PER_THREAD, PER_THREAD);
    talon_sink_flush(sink);
    wait_messages(&s, 2 * THREADS * PER_THREAD);
    assert_int_equal(server_bad_frames(&s), 0);
    assert_true(s.connections >= 2);
    assert_exactly_once(&s, 2 * PER_THREAD);
    assert_int_equal(talon_sink_dropped(sink), 0);

    talon_log_shutdown();
    talon_log_format_free(syslog_format);
    server_stop(&s);
}

static void udp_datagrams_and_oversized(void **state)
{
    (void)state;
    server s;
    char url[64];
    talon_sink *sink;

    server_start(&s, SOCK_DGRAM);
    snprintf(url, sizeof(url), "syslog://127.0.0.1:%d", s.port);
    talon_logger *logger = syslog_logger("sys.udp", url, &sink);

    for (int i = 0; i < 100; i++)
        talon_log_info(logger, "datagram %d", i);
    /* Longer than a UDP datagram can be: dropped and counted. */
    char *big = malloc(70000);
    memset(big, 'x', 69999);
    big[69999] = '\0';
    talon_log_info(logger, "%s", big);
    free(big);
    talon_log_info(logger, "after the long one");
    talon_sink_flush(sink);
    wait_messages(&s, 101);

    for (int i = 0; i < 100; i++) {
        char want[64];
        snprintf(want, sizeof(want), " sys.udp - datagram %d", i);
        assert_non_null(strstr(s.messages[i], want));
        assert_null(strchr(s.messages[i], '\n'));
    }
    assert_non_null(strstr(s.messages[100], "after the long one"));
    assert_int_equal(talon_sink_dropped(sink), 1);

    talon_log_shutdown();
    talon_log_format_free(syslog_format);
    server_stop(&s);
}

/* Drops that no later drop reports are still reported within about a
 * second: three long messages in a row give a line for the first and one
 * for the other two. */
static void oversized_count_reported_later(void **state)
{
    (void)state;
    server s;
    char url[64], app_path[] = "/tmp/talon-syslog-app-XXXXXX";
    char err[512] = "";
    talon_sink *sink, *app_sink = NULL;

    int fd = mkstemp(app_path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(talon_sink_open_file(&app_sink, app_path, NULL, err, sizeof(err)), 0);
    assert_int_equal(talon_logger_add_sink(talon_logger_get("app"), app_sink, TALON_LOG_INFO,
                                           NULL), 0);
    server_start(&s, SOCK_DGRAM);
    snprintf(url, sizeof(url), "syslog://127.0.0.1:%d", s.port);
    talon_logger *logger = syslog_logger("sys.later", url, &sink);

    char *big = malloc(70000);
    memset(big, 'x', 69999);
    big[69999] = '\0';
    for (int i = 0; i < 3; i++) {
        talon_log_info(logger, "%s", big);
        talon_sink_flush(sink);
    }
    free(big);
    assert_int_equal(talon_sink_dropped(sink), 3);

    bool found = false;
    for (int i = 0; i < 100 && !found; i++) {
        talon_sink_flush(app_sink);
        FILE *f = fopen(app_path, "r");
        char line[1024];
        while (f && fgets(line, sizeof(line), f))
            found = found || strstr(line, "dropped 2 messages too long") != NULL;
        if (f)
            fclose(f);
        if (!found)
            usleep(50 * 1000);
    }
    assert_true(found);

    talon_log_shutdown();
    talon_log_format_free(syslog_format);
    server_stop(&s);
    unlink(app_path);
}

static void bad_urls_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "syslog+tcp://127.0.0.1:0", "syslog+tcp://127.0.0.1:65536", "syslog://[::1",
        "syslog+tcp://", "syslog:relative", "syslog+unix://relative/path", "syslog+tcp://a:1:2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        talon_sink *sink = NULL;
        char err[512] = "";
        assert_int_equal(talon_sink_open_syslog(&sink, bad[i], NULL, err, sizeof(err)), -EINVAL);
        assert_null(sink);
        assert_non_null(strstr(err, bad[i]));
    }
    assert_true(talon_sink_path_is_syslog("syslog:///dev/log"));
    assert_true(talon_sink_path_is_syslog("syslog+tcp://h"));
    assert_false(talon_sink_path_is_syslog("var/log/syslog"));
    talon_log_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tcp_frames_exactly_once),
        cmocka_unit_test(udp_datagrams_and_oversized),
        cmocka_unit_test(oversized_count_reported_later),
        cmocka_unit_test(bad_urls_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
