/*
 * progress.h - the case being run, on stderr, before it runs: one line
 * rewritten in place when stderr is a terminal, otherwise one line per case
 * (so a log names the case that hangs or crashes). With --quiet nothing is
 * written, except that a fatal signal (a backend crashing) still names the
 * case it happened in.
 */
#ifndef KVQ_CONFORM_PROGRESS_H
#define KVQ_CONFORM_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct progress {
    bool enabled, tty, line_open;
    double start, last;
    size_t total, done, failed;
} progress;

/* Also installs the fatal-signal report (once per process). */
void progress_start(progress *p, size_t total, bool quiet);
/* Before a case starts (name and level shown, and remembered for a crash);
 * failed counts failures so far. */
void progress_case(progress *p, const char *name, int level, size_t failed);
/* In a child process that runs cases for the runner: the fatal-signal line
 * is the runner's to report, so the child's handler stays silent. */
void progress_forget_case(void);
/* Clears the terminal line; prints nothing else. */
void progress_end(progress *p);

#endif
