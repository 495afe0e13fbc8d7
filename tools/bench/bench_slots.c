/*
 * bench_slots.c - the ABI's benchmarking slots as bench statistics (bench_slots.h).
 */
#include "bench_slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kvq_status bench_copy_bandwidth(const kvq_backend_api *api, kvq_backend_context *ctx, size_t bytes,
                                const bench_options *o, bench_stats *gbs)
{
    if (!KVQ_BACKEND_API_HAS(api, time_copy)) return KVQ_ERR_NULL_ARGUMENT;
    double *ms = calloc(o->runs, sizeof *ms);
    if (ms == NULL) return KVQ_ERR_OUT_OF_MEMORY;
    kvq_backend_timing timing = {.struct_size = sizeof timing, .warmup = o->warmup, .runs = o->runs, .ms_host = ms};
    kvq_status st = api->time_copy(ctx, bytes, &timing);
    if (st == KVQ_OK) {
        /* A run's bandwidth from its own time: the fastest run is the highest bandwidth. */
        for (uint32_t r = 0; r < o->runs; r++) ms[r] = ms[r] > 0.0 ? 2.0 * (double)bytes / (ms[r] * 1e6) : 0.0;
        *gbs = bench_stats_of(ms, o->runs);
    }
    free(ms);
    return st;
}

static int step_fail(const bench_abi_step *step, const char *study, const char *what)
{
    fprintf(stderr, "kvq bench: %s: %s (%s): %s\n", study, what, step->api->name, step->api->last_error(step->ctx));
    return 1;
}

void bench_abi_step_free(bench_abi_step *step)
{
    for (uint32_t i = 0; step->tensors != NULL && i < 2u * step->n_kv; i++)
        if (step->tensors[i] != NULL) step->api->tensor_free(step->ctx, step->tensors[i]);
    free(step->tensors);
    free(step->keys);
    free(step->values);
    free(step->positions);
    free(step->pos);
    free(step->q_positions);
    free(step->q);
    free(step->out);
    memset(step, 0, sizeof *step);
}

int bench_abi_step_make(const kvq_backend_api *api, kvq_backend_context *ctx, const bench_shape *shape,
                        const bench_format *f, uint32_t n, const float *keys, const float *values, const char *study,
                        bench_abi_step *step)
{
    memset(step, 0, sizeof *step);
    step->api = api;
    step->ctx = ctx;
    step->n_kv = shape->n_kv;
    step->n_q = shape->n_q;
    step->head_dim = shape->head_dim;
    step->n = n;
    kvq_codebook codebook;
    kvq_head_config kc, vc;
    bench_format_configs(f, &codebook, &kc, &vc);
    const uint32_t n_kv = shape->n_kv, d = shape->head_dim;
    const size_t q_count = (size_t)n_kv * shape->n_q * d;
    step->tensors = calloc(2u * n_kv, sizeof *step->tensors);
    step->keys = calloc(n_kv, sizeof *step->keys);
    step->values = calloc(n_kv, sizeof *step->values);
    step->positions = calloc(n_kv, sizeof *step->positions);
    step->pos = malloc((size_t)n * sizeof *step->pos);
    step->q_positions = malloc(n_kv * sizeof *step->q_positions);
    step->q = malloc(q_count * sizeof *step->q);
    step->out = malloc(q_count * sizeof *step->out);
    if (!step->tensors || !step->keys || !step->values || !step->positions || !step->pos || !step->q_positions ||
        !step->q || !step->out) {
        fprintf(stderr, "kvq bench: %s: out of host memory\n", study);
        bench_abi_step_free(step);
        return 1;
    }
    for (uint32_t i = 0; i < n; i++) step->pos[i] = i; /* consecutive positions, pre-RoPE keys (S9) */
    bench_fill_random(step->q, q_count, 7u);
    const float *k_in = keys, *v_in = values;
    int rc = 0;
    for (uint32_t h = 0; rc == 0 && h < n_kv; h++) {
        if (api->quantize_head(ctx, &kc, k_in, n, d, NULL, &step->tensors[2u * h]) != KVQ_OK ||
            api->quantize_head(ctx, &vc, v_in, n, d, NULL, &step->tensors[2u * h + 1u]) != KVQ_OK) {
            rc = step_fail(step, study, f->name);
            break;
        }
        for (uint32_t i = 0; rc == 0 && i < 2u; i++) {
            kvq_qtensor header;
            if (api->tensor_info(ctx, step->tensors[2u * h + i], &header) != KVQ_OK)
                rc = step_fail(step, study, "tensor_info");
            else
                step->bytes += bench_qtensor_bytes(&header);
        }
        step->keys[h] = step->tensors[2u * h];
        step->values[h] = step->tensors[2u * h + 1u];
        step->positions[h] = step->pos;
        step->q_positions[h] = n;
    }
    if (rc != 0) bench_abi_step_free(step);
    return rc;
}

int bench_abi_step_time(bench_abi_step *step, const kvq_rope *rope, const bench_options *o, const char *study,
                        bench_stats *ms, char *kernel, size_t kernel_size)
{
    const kvq_backend_api *api = step->api;
    double *samples = calloc(o->runs, sizeof *samples);
    if (samples == NULL) {
        fprintf(stderr, "kvq bench: %s: out of host memory\n", study);
        return 1;
    }
    int rc = 0;
    if (KVQ_BACKEND_API_HAS(api, time_attention_decode_batch)) {
        kvq_backend_timing timing = {.struct_size = sizeof timing, .warmup = o->warmup, .runs = o->runs,
                                     .ms_host = samples};
        if (api->time_attention_decode_batch(step->ctx, step->n_kv, step->keys, step->values, step->positions, rope,
                                             step->q, step->n_q, step->q_positions, step->out, &timing) != KVQ_OK)
            rc = step_fail(step, study, "time_attention_decode_batch");
        else
            snprintf(kernel, kernel_size, "%s", timing.kernel);
    } else {
        snprintf(kernel, kernel_size, "host clock around attention_decode_batch (the backend has no timing slot)");
        for (uint32_t r = 0; rc == 0 && r < o->warmup + o->runs; r++) {
            double t0 = bench_now_s();
            if (api->attention_decode_batch(step->ctx, step->n_kv, step->keys, step->values, step->positions, rope,
                                            step->q, step->n_q, step->q_positions, step->out) != KVQ_OK)
                rc = step_fail(step, study, "attention_decode_batch");
            double t1 = bench_now_s();
            if (rc == 0 && r >= o->warmup) samples[r - o->warmup] = (t1 - t0) * 1e3;
        }
    }
    if (rc == 0) *ms = bench_stats_of(samples, o->runs);
    free(samples);
    return rc;
}
