/* A one-line progress bar on stderr for long reads of a trail. */
#include "cli/cli.h"

#include <time.h>
#include <unistd.h>

#define PROGRESS_MIN_BYTES (256ull << 20) /* smaller inputs finish before a bar helps */
#define BAR_WIDTH 30

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void cli_progress_start(cli_progress *p, const char *label, uint64_t total)
{
    p->on = total >= PROGRESS_MIN_BYTES && isatty(STDERR_FILENO);
    p->label = label;
    p->total = total;
    p->start = now_s();
    p->last_draw = 0;
}

void cli_progress_update(void *ctx, uint64_t done, uint64_t total)
{
    cli_progress *p = ctx;
    if (!p->on || total == 0)
        return;
    double t = now_s();
    if (t - p->last_draw < 0.1 && done < total)
        return;
    p->last_draw = t;
    int filled = (int)(BAR_WIDTH * (double)done / (double)total);
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    double elapsed = t - p->start;
    fprintf(stderr, "\r%s [%s] %3d%%  %.0f/%.0f MB  %.0f MB/s ", p->label, bar,
            (int)(100.0 * (double)done / (double)total), done / 1e6, total / 1e6,
            elapsed > 0 ? done / 1e6 / elapsed : 0.0);
}

void cli_progress_end(cli_progress *p)
{
    if (p->on)
        fputs("\r\033[K", stderr); /* erase the bar line */
}
