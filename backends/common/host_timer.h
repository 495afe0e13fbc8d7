/*
 * host_timer.h - the bookkeeping of the ABI's timing slots (kvq_backend.h:
 * time_copy, time_attention_decode_batch), written once: the checked
 * repetitions, the per-run times the backend's clock adds up, the words for
 * what ran, and the all-or-nothing hand-over to the caller's kvq_backend_timing.
 * A backend keeps only its clock (OpenCL markers, CUDA events).
 */
#ifndef KVQ_HOST_TIMER_H
#define KVQ_HOST_TIMER_H

#include "host_error.h"
#include "kvq/kvq_backend.h"

typedef struct kvq_host_timer {
    uint32_t warmup, runs; /* the work runs warmup + runs times; the last runs are timed */
    double *ms;            /* [runs]: each timed run adds its time on the device's clock (ms) */
    char kernel[128];      /* what ran, in words ("" until the work says) */
} kvq_host_timer;

/* kvq_host_check_timing, then the zeroed times; on failure *t holds nothing to free. */
kvq_status kvq_host_timer_make(kvq_host_error *e, const kvq_backend_timing *timing, kvq_host_timer *t);
/* Zeroes the times: a rerun whose times replace the first attempt's. */
void kvq_host_timer_reset(kvq_host_timer *t);
/* Whether timed run r (0 .. warmup + runs - 1) is one whose time counts; its slot in ms is r - warmup. */
static inline int kvq_host_timer_counts(const kvq_host_timer *t, uint32_t r) { return r >= t->warmup; }
/* Frees the times (for a failure before any work ran). */
void kvq_host_timer_free(kvq_host_timer *t);
/* With status KVQ_OK the times and the words go to timing (nothing is written otherwise); frees the
 * timer; returns status. */
kvq_status kvq_host_timer_finish(kvq_host_timer *t, kvq_status status, kvq_backend_timing *timing);

/* The device halves of the timing slots, which a backend sets in its context at open
 * (kvq_host_context.timed_copy, .timed_batch; host_context.h): the work of time_copy and of
 * time_attention_decode_batch with its repetitions as `timer` says, each run's time added to
 * timer->ms and what ran written to timer->kernel; failures recorded in the context's error. The
 * host layer checks timing, makes the timer, and hands the times over all or nothing. */
typedef kvq_status (*kvq_host_timed_copy_fn)(kvq_backend_context *ctx, uint64_t bytes, kvq_host_timer *timer);
typedef kvq_status (*kvq_host_timed_batch_fn)(kvq_backend_context *ctx, uint32_t n_seq,
                                              const kvq_backend_tensor *const *keys,
                                              const kvq_backend_tensor *const *values,
                                              const uint32_t *const *key_positions, const kvq_rope *rope,
                                              const float *q, uint32_t n_q, const uint32_t *q_positions, float *out,
                                              kvq_host_timer *timer);

#endif /* KVQ_HOST_TIMER_H */
