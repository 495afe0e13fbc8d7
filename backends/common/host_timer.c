/*
 * host_timer.c - the timing slots' bookkeeping (host_timer.h).
 */
#include "host_timer.h"

#include "host_checks.h"
#include "host_context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kvq_status kvq_host_timer_make(kvq_host_error *e, const kvq_backend_timing *timing, kvq_host_timer *t)
{
    memset(t, 0, sizeof *t);
    kvq_status st = kvq_host_check_timing(e, timing);
    if (st != KVQ_OK) return st;
    t->ms = calloc(timing->runs, sizeof *t->ms);
    if (t->ms == NULL) return kvq_host_fail(e, KVQ_ERR_OUT_OF_MEMORY, "timing: %u runs: out of host memory", timing->runs);
    t->warmup = timing->warmup;
    t->runs = timing->runs;
    return KVQ_OK;
}

void kvq_host_timer_reset(kvq_host_timer *t)
{
    if (t->ms != NULL) memset(t->ms, 0, t->runs * sizeof *t->ms);
}

void kvq_host_timer_free(kvq_host_timer *t)
{
    free(t->ms);
    memset(t, 0, sizeof *t);
}

kvq_status kvq_host_timer_finish(kvq_host_timer *t, kvq_status status, kvq_backend_timing *timing)
{
    if (status == KVQ_OK) {
        memcpy(timing->ms_host, t->ms, t->runs * sizeof *t->ms);
        snprintf(timing->kernel, sizeof timing->kernel, "%s", t->kernel);
    }
    kvq_host_timer_free(t);
    return status;
}

kvq_status kvq_host_slot_time_copy(kvq_backend_context *ctx, uint64_t bytes, kvq_backend_timing *timing)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    kvq_host_context *h = kvq_host_context_of(ctx);
    kvq_host_timer t;
    kvq_status st = kvq_host_timer_make(&h->error, timing, &t);
    if (st == KVQ_OK && bytes == 0) st = kvq_host_fail(&h->error, KVQ_ERR_ZERO_SIZE, "bytes is 0");
    if (st == KVQ_OK && h->timed_copy == NULL)
        st = kvq_host_fail(&h->error, KVQ_ERR_BAD_ARGUMENT, "this backend's context has no timed copy");
    if (st == KVQ_OK) st = h->timed_copy(ctx, bytes, &t);
    return kvq_host_timer_finish(&t, st, timing);
}

kvq_status kvq_host_slot_time_attention_decode_batch(kvq_backend_context *ctx, uint32_t n_seq,
                                                     const kvq_backend_tensor *const *keys,
                                                     const kvq_backend_tensor *const *values,
                                                     const uint32_t *const *key_positions_host, const kvq_rope *rope,
                                                     const float *q_host, uint32_t n_q,
                                                     const uint32_t *q_positions_host, float *out_host,
                                                     kvq_backend_timing *timing)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    kvq_host_context *h = kvq_host_context_of(ctx);
    kvq_host_timer t;
    kvq_status st = kvq_host_timer_make(&h->error, timing, &t);
    if (st == KVQ_OK && h->timed_batch == NULL)
        st = kvq_host_fail(&h->error, KVQ_ERR_BAD_ARGUMENT, "this backend's context has no timed attention batch");
    if (st == KVQ_OK)
        st = h->timed_batch(ctx, n_seq, keys, values, key_positions_host, rope, q_host, n_q, q_positions_host,
                            out_host, &t);
    return kvq_host_timer_finish(&t, st, timing);
}
