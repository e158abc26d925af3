/*
 * Progress bar for transfers and archive work in the CLI (see progress.h).
 *
 * Why throttled: archive and download loops call it for every 128 KiB
 * chunk; redrawing that often would cost more terminal time than work.
 */
#include "snapshot/progress.h"

#include <stdio.h>
#include <time.h>

#define BAR_WIDTH 30

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void draw(struct sr_progress *p, uint64_t done)
{
    char bar[BAR_WIDTH + 1];
    double mb = 1024.0 * 1024.0;
    if (p->total) {
        uint64_t d = done > p->total ? p->total : done;
        int fill = (int)((d * BAR_WIDTH) / p->total);
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < fill ? '#' : ' ';
        bar[BAR_WIDTH] = '\0';
        fprintf(stderr, "\r%-12s [%s] %.1f/%.1f MB", p->label, bar, (double)d / mb,
                (double)p->total / mb);
    } else {
        fprintf(stderr, "\r%-12s %.1f MB", p->label, (double)done / mb);
    }
    fflush(stderr);
    p->drawn = true;
}

void sr_progress_begin(struct sr_progress *p, bool on, const char *label, uint64_t total)
{
    p->on = on;
    p->drawn = false;
    p->label = label;
    p->total = total;
    p->last_ms = 0;
    if (on)
        draw(p, 0);
}

void sr_progress_update(struct sr_progress *p, uint64_t done)
{
    if (!p->on)
        return;
    int64_t t = now_ms();
    if (t - p->last_ms < 100)
        return;
    p->last_ms = t;
    draw(p, done);
}

void sr_progress_end(struct sr_progress *p, uint64_t done)
{
    if (!p->on)
        return;
    draw(p, done);
    fputc('\n', stderr);
    p->on = false;
}
