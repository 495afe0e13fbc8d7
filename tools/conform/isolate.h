/*
 * isolate.h - running the cases in child processes, so that a backend that
 * crashes, hangs or corrupts its heap costs one case and not the run.
 *
 * The runner itself never loads the backend. It forks a worker process that
 * opens the backend (a GPU context, an OpenCL context, a plugin's state) and
 * tells the runner what it opened; the runner then hands it one case at a
 * time and waits for the result under --timeout:
 *   - ISOLATION_CASE: the worker forks a child per case, which inherits the
 *     open backend, runs the case, sends its result and exits. A crash or a
 *     hang ends that child only. Used for backends whose memory is the host's
 *     (the reference, CPU plugins) and for --check-outputs.
 *   - ISOLATION_WORKER: the worker runs the cases itself. A GPU context (CUDA,
 *     OpenCL) does not survive fork(), so a device backend cannot give each
 *     case a fresh process cheaply; when the worker crashes or hangs, the
 *     runner kills it, reports that case, and starts a new worker, which opens
 *     the backend again, for the next one.
 *   - ISOLATION_NONE: everything in the runner's process (for a debugger);
 *     a crash ends the run, naming the case (progress.h).
 * ISOLATION_AUTO picks CASE or WORKER from caps.memory. A case that did not
 * finish is CONFORM_ERROR with the signal or the timeout in its diagnostic.
 */
#ifndef KVQ_CONFORM_ISOLATE_H
#define KVQ_CONFORM_ISOLATE_H

#include "units.h"

typedef enum conform_isolation {
    ISOLATION_AUTO,
    ISOLATION_CASE,
    ISOLATION_WORKER,
    ISOLATION_NONE
} conform_isolation;

/* "auto", "case", "worker", "none" */
bool conform_isolation_from_name(const char *name, conform_isolation *out);
const char *conform_isolation_name(conform_isolation mode);

/* Opens run's backend (run->api, ctx, caps, profile and run->backend) with
 * `options`; prints why not and returns false. */
typedef bool (*conform_open_fn)(conform_run *run, const void *options);

typedef struct conform_executor {
    conform_run *run;
    conform_isolation mode;   /* resolved: CASE, WORKER or NONE */
    double timeout;           /* seconds per case; 0 = none */
    conform_open_fn open;     /* NULL: nothing to open (--check-outputs) */
    const void *options;
    int worker;               /* the worker's process id, or -1 */
    int to_worker, from_worker;
    int worker_in, worker_out; /* in the worker: its ends of the pipes (closed in case children) */
    unsigned restarts;        /* workers started again after a crash or hang */
    bool backend_lost;        /* a new worker could not open the backend again */
} conform_executor;

/* Opens the backend (in a worker, or here with ISOLATION_NONE). Returns false
 * when it cannot be opened (the reason is printed). `asked` may be AUTO. */
bool executor_start(conform_executor *e, conform_run *run, conform_isolation asked, double timeout,
                    conform_open_fn open, const void *options);
/* Runs one unit and fills r: the case's own result, or CONFORM_ERROR when its
 * process died or hung. Returns false, with r unset, when SIGINT or SIGTERM
 * interrupted the run. */
bool executor_run(conform_executor *e, const conform_unit *u, conform_result *r);
/* Stops the worker (or closes the backend opened here). */
void executor_stop(conform_executor *e);
/* Whether SIGINT or SIGTERM arrived during the run. */
bool executor_was_interrupted(void);

#endif
