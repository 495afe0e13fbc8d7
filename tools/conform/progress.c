/*
 * progress.c - the progress line of long runs (progress.h).
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno, clock_gettime */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(progress *p, size_t total, bool quiet)
{
    p->enabled = !quiet;
    p->tty = isatty(fileno(stderr)) != 0;
    p->line_open = false;
    p->start = p->last = now();
    p->total = total;
    p->done = 0;
    p->failed = 0;
}

void progress_case(progress *p, const char *name, int level, size_t failed)
{
    p->failed = failed;
    if (!p->enabled) {
        p->done++;
        return;
    }
    double t = now();
    if (p->tty && (!p->line_open || t - p->last >= 0.1)) {
        /* \r and erase-to-end-of-line: one line, rewritten (at most ten times a second) */
        p->last = t;
        fprintf(stderr, "\r\033[K[%zu/%zu] L%d %s (%zu failed)", p->done + 1, p->total, level, name, failed);
        p->line_open = true;
        fflush(stderr);
    } else if (!p->tty && t - p->last >= PROGRESS_INTERVAL) {
        fprintf(stderr, "kvq conform: %zu of %zu cases done after %.0f s (%zu failed); now L%d %s\n", p->done, p->total,
                t - p->start, failed, level, name);
        p->last = t;
    }
    p->done++;
}

void progress_end(progress *p)
{
    if (p->enabled && p->tty && p->line_open) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
    p->line_open = false;
}
