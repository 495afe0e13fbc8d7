/*
 * progress.h - a progress line on stderr for long runs: rewritten in place
 * when stderr is a terminal, otherwise one line every PROGRESS_INTERVAL
 * seconds (so CI logs show the run is alive without flooding them).
 */
#ifndef KVQ_CONFORM_PROGRESS_H
#define KVQ_CONFORM_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

#define PROGRESS_INTERVAL 10.0

typedef struct progress {
    bool enabled, tty, line_open;
    double start, last;
    size_t total, done, failed;
} progress;

void progress_start(progress *p, size_t total, bool quiet);
/* Before a case starts (name and level shown); failed counts failures so far. */
void progress_case(progress *p, const char *name, int level, size_t failed);
/* Clears the terminal line; prints nothing else. */
void progress_end(progress *p);

#endif
