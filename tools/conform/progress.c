/*
 * progress.c - the progress line of long runs, and the name of the case a
 * crash happened in (progress.h).
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno, clock_gettime, sigaction */
#include "progress.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the case a fatal signal interrupts ------------------------------------
 * A backend that crashes takes the runner with it, and with --quiet nothing
 * would say where. The handler writes the running case's name (write(2) only,
 * async-signal-safe), puts the previous handler back and returns: a fault
 * then happens again under that handler (the default one, or a sanitizer's,
 * whose report stays intact), and abort() raises SIGABRT once more itself. */
enum { N_FATAL = 5 };
static const int fatal_signals[N_FATAL] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static struct sigaction previous_action[N_FATAL];
static char crash_line[320];
static volatile sig_atomic_t crash_length = 0;

static void on_fatal_signal(int sig)
{
    if (crash_length > 0) {
        ssize_t ignored = write(STDERR_FILENO, crash_line, (size_t)crash_length);
        (void)ignored;
    }
    for (int i = 0; i < N_FATAL; i++)
        if (fatal_signals[i] == sig) sigaction(sig, &previous_action[i], NULL);
}

static void install_crash_report(void)
{
    static bool installed = false;
    if (installed) return;
    installed = true;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_fatal_signal;
    sigemptyset(&action.sa_mask);
    for (int i = 0; i < N_FATAL; i++) sigaction(fatal_signals[i], &action, &previous_action[i]);
}

static void note_running(const char *name, int level)
{
    crash_length = 0; /* the handler never sees a half-written line */
    int n = snprintf(crash_line, sizeof crash_line, "\nkvq conform: fatal signal while running case L%d %s\n", level,
                     name);
    crash_length = n < 0 ? 0 : n >= (int)sizeof crash_line ? (int)sizeof crash_line - 1 : n;
}

void progress_forget_case(void) { crash_length = 0; }

void progress_start(progress *p, size_t total, bool quiet)
{
    p->enabled = !quiet;
    p->tty = isatty(fileno(stderr)) != 0;
    p->line_open = false;
    p->start = p->last = now();
    p->total = total;
    p->done = 0;
    p->failed = 0;
    install_crash_report();
}

void progress_case(progress *p, const char *name, int level, size_t failed)
{
    p->failed = failed;
    note_running(name, level);
    if (!p->enabled) {
        p->done++;
        return;
    }
    double t = now();
    if (p->tty) {
        /* \r and erase-to-end-of-line: one line, rewritten before every case */
        p->last = t;
        fprintf(stderr, "\r\033[K[%zu/%zu] L%d %s (%zu failed)", p->done + 1, p->total, level, name, failed);
        p->line_open = true;
        fflush(stderr);
    } else {
        /* one line per case, written before it runs, so a log names the case that hangs or crashes */
        fprintf(stderr, "kvq conform: [%zu/%zu] L%d %s (%zu failed, %.0f s)\n", p->done + 1, p->total, level, name,
                failed, t - p->start);
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
