/*
 * isolate.c - cases in child processes under a timeout (isolate.h).
 *
 * Messages travel through pipes as fixed-size structs (the runner, the worker
 * and the case children are one program, forked, never exec'ed): the worker's
 * hello after it opened the backend, one job per case, one conform_result per
 * case. A message that arrives incomplete means its writer died.
 */
#define _POSIX_C_SOURCE 200809L /* fork, pipe, poll, sigaction, clock_gettime, kill */
#include "isolate.h"

#include "execute.h"
#include "progress.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* LeakSanitizer, when the build has it (the asan preset): a case child exits
 * with _exit(), which skips the exit-time leak check, so it asks for one. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

enum {
    EXIT_LEAK = 23,          /* a case child's status when LeakSanitizer found a leak */
    WORKER_GRACE_SECONDS = 30 /* beyond --timeout, for a worker whose case child it is timing */
};

typedef struct worker_hello {
    int32_t ok;
    conform_backend_info backend;
    kvq_backend_caps caps;
    int32_t profile;
    int32_t mode; /* the resolved conform_isolation */
} worker_hello;

typedef struct worker_job {
    conform_unit unit;
    uint64_t seed; /* the run's seed, which a replayed random case may have set after the fork */
} worker_job;

bool conform_isolation_from_name(const char *name, conform_isolation *out)
{
    static const char *const names[] = {"auto", "case", "worker", "none"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (conform_isolation)i;
            return true;
        }
    return false;
}

const char *conform_isolation_name(conform_isolation mode)
{
    static const char *const names[] = {"auto", "case", "worker", "none"};
    return (unsigned)mode < 4 ? names[mode] : "?";
}

/* ---- SIGINT / SIGTERM: stop between cases, keep the reports ---------------- */
static volatile sig_atomic_t interrupted_by = 0;

static void on_interrupt(int sig) { interrupted_by = sig; }

static void install_interrupt_handlers(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_interrupt; /* no SA_RESTART: poll() returns EINTR */
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    /* a worker that died leaves a pipe without reader: write() then fails with EPIPE instead */
    signal(SIGPIPE, SIG_IGN);
}

/* A child that runs cases dies with the process that waits for it (Linux): a
 * runner killed by SIGKILL leaves no worker behind, spinning in a hung case. */
static void die_with_parent(void)
{
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
}

static void default_signals_in_child(void)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    progress_forget_case(); /* the runner reports a crash itself */
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- whole messages ------------------------------------------------------- */
static bool write_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        size -= (size_t)n;
    }
    return true;
}

typedef enum read_outcome { READ_COMPLETE, READ_EOF, READ_TIMEOUT, READ_INTERRUPTED } read_outcome;

/* Reads exactly size bytes before `deadline` (a now() value; <= 0: none).
 * interruptible: SIGINT/SIGTERM end the wait (the runner only). */
static read_outcome read_all(int fd, void *data, size_t size, double deadline, bool interruptible)
{
    char *p = data;
    while (size > 0) {
        int wait_ms = -1;
        if (deadline > 0) {
            double left = deadline - now();
            if (left <= 0) return READ_TIMEOUT;
            wait_ms = left > 1e6 ? 1000000000 : (int)(left * 1000.0) + 1;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int ready = poll(&pfd, 1, wait_ms);
        if (ready < 0 && errno == EINTR) {
            if (interruptible && interrupted_by != 0) return READ_INTERRUPTED;
            continue;
        }
        if (ready < 0) return READ_EOF;
        if (ready == 0) continue; /* the deadline is checked above */
        ssize_t n = read(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return READ_EOF;
        p += n;
        size -= (size_t)n;
    }
    return READ_COMPLETE;
}

static int wait_for(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return status;
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV, invalid memory access";
    case SIGBUS: return "SIGBUS, bus error";
    case SIGABRT: return "SIGABRT, abort(): an assertion, or the C library found its heap corrupted";
    case SIGFPE: return "SIGFPE, arithmetic exception";
    case SIGILL: return "SIGILL, illegal instruction";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGTRAP: return "SIGTRAP";
    case SIGPIPE: return "SIGPIPE";
    default: return "a fatal signal";
    }
}

/* The result of a case whose process did not deliver one (or did, then died). */
static void unfinished(conform_executor *e, const conform_unit *u, read_outcome got, int status, double seconds,
                       const char *process, conform_result *r)
{
    result_init(r, u->name, u->level);
    char what[160];
    if (got == READ_TIMEOUT) {
        snprintf(what, sizeof what, "no result within %g s", e->timeout);
        result_error(r, "timeout", what,
                     "The case ran longer than --timeout %g s; its %s was killed (SIGKILL) and the run went on. A hang, "
                     "or a case too slow for the limit: replay it alone (the command below) with a larger --timeout, or "
                     "under a debugger with --isolation none.",
                     e->timeout, process);
    } else if (status >= 0 && WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(what, sizeof what, "signal %d (%.100s)", sig, signal_name(sig));
        result_error(r, "crash", what,
                     "The %s died by signal %d (%s) while running this case; the run went on with the next case%s. "
                     "Replay it alone (the command below), under a debugger with --isolation none.",
                     process, sig, signal_name(sig),
                     e->mode == ISOLATION_WORKER ? ", in a new worker that opened the backend again" : "");
    } else if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == EXIT_LEAK) {
        snprintf(what, sizeof what, "a memory leak");
        result_error(r, "leak", what,
                     "The case finished, then LeakSanitizer found memory it allocated and never freed (its report is "
                     "on stderr).");
    } else {
        snprintf(what, sizeof what, "exit status %d without a result",
                 status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        result_error(r, "exit", what,
                     "The %s ended without sending the case's result (an exit() in the backend?); the run went on.",
                     process);
    }
    r->seconds = seconds;
    run_replay_command(e->run, u->name, u->source == SOURCE_RANDOM, r->replay, sizeof r->replay);
}

/* ---- one case in a child of the worker ------------------------------------ */
static void run_in_child(conform_executor *e, const conform_unit *u, conform_result *r)
{
    int fds[2];
    double start = now();
    if (pipe(fds) != 0) {
        execute_unit(e->run, u, r); /* no pipe: run it here rather than not at all */
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        execute_unit(e->run, u, r);
        return;
    }
    if (pid == 0) {
        die_with_parent();
        close(fds[0]);
        close(e->worker_in);
        close(e->worker_out);
        conform_result result;
        execute_unit(e->run, u, &result);
        bool sent = write_all(fds[1], &result, sizeof result);
        close(fds[1]);
        int status = sent ? 0 : 1;
        if (__lsan_do_recoverable_leak_check != NULL) {
            /* the run's state inherited from the worker is still referenced: only the case's own leaks show */
            if (__lsan_do_recoverable_leak_check() != 0) status = EXIT_LEAK;
        }
        fflush(NULL);
        _exit(status);
    }
    close(fds[1]);
    read_outcome got = read_all(fds[0], r, sizeof *r, e->timeout > 0 ? start + e->timeout : 0, false);
    if (got == READ_TIMEOUT) kill(pid, SIGKILL);
    close(fds[0]);
    int status = wait_for(pid);
    bool clean = status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (got != READ_COMPLETE || !clean) unfinished(e, u, got, status, now() - start, "case process", r);
}

/* ---- the worker ------------------------------------------------------------ */
static void worker_main(conform_executor *e, conform_isolation asked)
{
    conform_run *run = e->run;
    worker_hello hello;
    memset(&hello, 0, sizeof hello);
    hello.ok = e->open == NULL || e->open(run, e->options);
    hello.backend = run->backend;
    hello.caps = run->caps;
    hello.profile = (int32_t)run->profile;
    conform_isolation mode = asked;
    if (mode == ISOLATION_AUTO)
        mode = run->api == NULL || run->caps.memory == KVQ_BACKEND_MEMORY_HOST ? ISOLATION_CASE : ISOLATION_WORKER;
    e->mode = mode;
    hello.mode = (int32_t)mode;
    bool ok = write_all(e->worker_out, &hello, sizeof hello) && hello.ok;
    worker_job job;
    while (ok && read_all(e->worker_in, &job, sizeof job, 0, false) == READ_COMPLETE) {
        run->seed = job.seed;
        conform_result r;
        if (mode == ISOLATION_CASE)
            run_in_child(e, &job.unit, &r);
        else
            execute_unit(run, &job.unit, &r);
        ok = write_all(e->worker_out, &r, sizeof r);
    }
    if (run->api != NULL && run->ctx != NULL) run->api->close(run->ctx);
    fflush(NULL);
    _exit(0);
}

/* Forks a worker and reads its hello; false when it could not open the backend. */
static bool spawn_worker(conform_executor *e, conform_isolation asked, worker_hello *hello)
{
    int to[2], from[2];
    if (pipe(to) != 0) return false;
    if (pipe(from) != 0) {
        close(to[0]);
        close(to[1]);
        return false;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(to[0]), close(to[1]), close(from[0]), close(from[1]);
        return false;
    }
    if (pid == 0) {
        /* its own process group, so that killing the worker also kills a case child it is running */
        setpgid(0, 0);
        die_with_parent();
        default_signals_in_child();
        close(to[1]);
        close(from[0]);
        e->worker_in = to[0];
        e->worker_out = from[1];
        worker_main(e, asked);
    }
    close(to[0]);
    close(from[1]);
    setpgid(pid, pid); /* also here: whichever runs first */
    e->worker = pid;
    e->to_worker = to[1];
    e->from_worker = from[0];
    /* opening may build kernels or create a GPU context: no timeout, but Ctrl-C works */
    read_outcome got = read_all(e->from_worker, hello, sizeof *hello, 0, true);
    if (got != READ_COMPLETE || !hello->ok) {
        if (got != READ_COMPLETE) kill(-pid, SIGKILL);
        close(e->to_worker);
        close(e->from_worker);
        int status = wait_for(pid);
        if (got == READ_EOF && status >= 0 && WIFSIGNALED(status))
            fprintf(stderr, "kvq conform: error: the worker process died by signal %d (%s) while opening the backend\n",
                    WTERMSIG(status), signal_name(WTERMSIG(status)));
        e->worker = -1;
        return false;
    }
    return true;
}

bool executor_start(conform_executor *e, conform_run *run, conform_isolation asked, double timeout,
                    conform_open_fn open, const void *options)
{
    memset(e, 0, sizeof *e);
    e->run = run;
    e->timeout = timeout;
    e->open = open;
    e->options = options;
    e->worker = -1;
    e->to_worker = e->from_worker = e->worker_in = e->worker_out = -1;
    if (asked == ISOLATION_NONE) {
        e->mode = ISOLATION_NONE;
        return open == NULL || open(run, options);
    }
    install_interrupt_handlers();
    worker_hello hello;
    if (!spawn_worker(e, asked, &hello)) return false;
    run->backend = hello.backend;
    run->caps = hello.caps;
    run->profile = (kvq_attention_profile)hello.profile;
    e->mode = (conform_isolation)hello.mode;
    return true;
}

/* After a crash or hang of the worker: a new one, which opens the backend again. */
static void replace_worker(conform_executor *e)
{
    close(e->to_worker);
    close(e->from_worker);
    e->worker = -1;
    worker_hello hello;
    e->restarts++;
    if (!spawn_worker(e, e->mode, &hello)) e->backend_lost = true;
}

bool executor_run(conform_executor *e, const conform_unit *u, conform_result *r)
{
    if (e->mode == ISOLATION_NONE) {
        execute_unit(e->run, u, r);
        return true;
    }
    if (interrupted_by != 0) return false;
    if (e->backend_lost) {
        result_init(r, u->name, u->level);
        result_error(r, "backend", "not open",
                     "An earlier case crashed or hung the worker process, and a new worker could not open the backend "
                     "again (see stderr); no later case can run.");
        run_replay_command(e->run, u->name, u->source == SOURCE_RANDOM, r->replay, sizeof r->replay);
        return true;
    }
    worker_job job;
    memset(&job, 0, sizeof job);
    job.unit = *u;
    job.seed = e->run->seed;
    double start = now();
    read_outcome got = READ_EOF;
    if (write_all(e->to_worker, &job, sizeof job)) {
        double limit = e->timeout > 0 ? e->timeout + (e->mode == ISOLATION_CASE ? WORKER_GRACE_SECONDS : 0) : 0;
        got = read_all(e->from_worker, r, sizeof *r, limit > 0 ? start + limit : 0, true);
    }
    if (got == READ_COMPLETE) return true;
    if (got == READ_INTERRUPTED) return false;
    kill(-e->worker, SIGKILL); /* hung, or already dead: make sure (with a case child it runs), then collect it */
    int status = wait_for(e->worker);
    unfinished(e, u, got, status, now() - start, e->mode == ISOLATION_CASE ? "worker process" : "worker process (it "
                                                                                                "runs the cases)",
               r);
    replace_worker(e);
    return true;
}

void executor_stop(conform_executor *e)
{
    if (e->mode == ISOLATION_NONE) {
        if (e->run->api != NULL && e->run->ctx != NULL) e->run->api->close(e->run->ctx);
        e->run->ctx = NULL;
        return;
    }
    if (e->worker < 0) return;
    close(e->to_worker); /* end of jobs: the worker closes the backend and exits */
    close(e->from_worker);
    if (interrupted_by != 0) kill(-e->worker, SIGKILL);
    wait_for(e->worker);
    e->worker = -1;
}

bool executor_was_interrupted(void) { return interrupted_by != 0; }
