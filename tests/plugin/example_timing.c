/*
 * example_timing.c - the optional slots a backend offers to be benchmarked
 * the way kvq's own are (kvq_backend.h): attention_decode_batch, and the
 * benchmarking slots device_info, time_copy and time_attention_decode_batch.
 *
 * This plugin's device is the host CPU, so "the device's clock" is the host's
 * monotonic clock, and staging inputs costs nothing: the timed work is the
 * whole computation. A GPU backend stages queries and descriptors once and
 * records events around its launches instead (backends/opencl/ocl_timing.c,
 * backends/cuda/cuda_timing.c).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, sysconf */
#include "example.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

kvq_status ex_attention_batch(ex_error *err, uint32_t n_seq, const kvq_backend_tensor *const *keys,
                              const kvq_backend_tensor *const *values, const uint32_t *const *key_positions,
                              const kvq_rope *rope, const float *q, uint32_t n_q, const uint32_t *q_positions,
                              float *out)
{
    if (keys == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (values == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    if (key_positions == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "key_positions is NULL");
    if (q == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "q is NULL");
    if (q_positions == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "q_positions is NULL");
    if (out == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (n_seq == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "n_seq is 0");
    if (keys[0] == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "keys[0] is NULL");
    /* One batch shares head_dim: q and out are [n_seq][n_q][head_dim]. */
    const uint32_t d = keys[0]->qt.head_dim;
    for (uint32_t s = 1; s < n_seq; s++)
        if (keys[s] != NULL && keys[s]->qt.head_dim != d)
            return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "keys[%u].head_dim = %u, but keys[0].head_dim = %u", s,
                           keys[s]->qt.head_dim, d);
    const size_t per = (size_t)n_q * d;
    float *staging = malloc((n_seq * per > 0 ? n_seq * per : 1u) * sizeof *staging);
    if (staging == NULL) return ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "attention batch: out of memory");
    kvq_status st = KVQ_OK;
    for (uint32_t s = 0; s < n_seq && st == KVQ_OK; s++) {
        st = ex_attention(err, keys[s] != NULL ? &keys[s]->qt : NULL, values[s] != NULL ? &values[s]->qt : NULL,
                          key_positions[s], rope, q + s * per, n_q, q_positions[s], staging + s * per);
        if (st != KVQ_OK) {
            char inner[sizeof err->message];
            snprintf(inner, sizeof inner, "%s", err->message);
            ex_fail(err, st, "sequence %u: %.280s", s, inner);
        }
    }
    /* Nothing reaches the caller's buffer unless every sequence succeeded (S13.3). */
    if (st == KVQ_OK) memcpy(out, staging, n_seq * per * sizeof *out);
    free(staging);
    return st;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static kvq_status check_timing(ex_error *err, const kvq_backend_timing *timing)
{
    if (timing == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "timing is NULL");
    if (timing->struct_size < sizeof *timing)
        return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "timing->struct_size = %u, smaller than this plugin's %zu",
                       timing->struct_size, sizeof *timing);
    if (timing->runs == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "timing->runs is 0");
    if (timing->ms_host == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "timing->ms_host is NULL");
    return KVQ_OK;
}

kvq_status ex_device_info(ex_error *err, kvq_backend_device_info *info)
{
    if (info == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "info is NULL");
    if (info->struct_size < sizeof *info)
        return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "info->struct_size = %u, smaller than this plugin's %zu",
                       info->struct_size, sizeof *info);
    memset(info, 0, sizeof *info);
    info->struct_size = (uint32_t)sizeof *info;
    long pages = -1, page_size = sysconf(_SC_PAGESIZE), cpus = sysconf(_SC_NPROCESSORS_ONLN);
#ifdef _SC_PHYS_PAGES
    pages = sysconf(_SC_PHYS_PAGES);
#endif
    info->global_memory_bytes = pages > 0 && page_size > 0 ? (uint64_t)pages * (uint64_t)page_size : 0u; /* 0: unknown */
    info->max_allocation_bytes = 0;                                  /* malloc: no limit of its own */
    info->compute_units = cpus > 0 ? (uint32_t)cpus : 0u; /* this plugin uses one of them */
    snprintf(info->driver, sizeof info->driver, "example plugin, scalar C on the host, CLOCK_MONOTONIC");
    return KVQ_OK;
}

kvq_status ex_time_copy(ex_error *err, uint64_t bytes, kvq_backend_timing *timing)
{
    kvq_status st = check_timing(err, timing);
    if (st != KVQ_OK) return st;
    if (bytes == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "bytes is 0");
    if (bytes > SIZE_MAX) return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "bytes = %llu does not fit in memory",
                                         (unsigned long long)bytes);
    unsigned char *src = calloc((size_t)bytes, 1), *dst = malloc((size_t)bytes);
    double *ms = calloc(timing->runs, sizeof *ms);
    if (src == NULL || dst == NULL || ms == NULL) st = ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "copy buffers: out of memory");
    for (uint32_t r = 0; st == KVQ_OK && r < timing->warmup + timing->runs; r++) {
        double t0 = now_ms();
        memcpy(dst, src, (size_t)bytes);
        double t1 = now_ms();
        src[r % bytes] = dst[(r + 1u) % bytes]; /* the copies feed each other: none can be left out */
        if (r >= timing->warmup) ms[r - timing->warmup] = t1 - t0;
    }
    if (st == KVQ_OK) {
        memcpy(timing->ms_host, ms, timing->runs * sizeof *ms);
        snprintf(timing->kernel, sizeof timing->kernel, "memcpy");
    }
    free(src);
    free(dst);
    free(ms);
    return st;
}

kvq_status ex_time_attention_batch(ex_error *err, uint32_t n_seq, const kvq_backend_tensor *const *keys,
                                   const kvq_backend_tensor *const *values, const uint32_t *const *key_positions,
                                   const kvq_rope *rope, const float *q, uint32_t n_q, const uint32_t *q_positions,
                                   float *out, kvq_backend_timing *timing)
{
    kvq_status st = check_timing(err, timing);
    if (st != KVQ_OK) return st;
    /* Every run writes into staging; out gets the last run's output only when all succeeded. Without
     * keys[0] the count is 0 and the first call fails its checks before writing anything. */
    size_t count = keys != NULL && keys[0] != NULL ? (size_t)n_seq * n_q * keys[0]->qt.head_dim : 0u;
    double *ms = calloc(timing->runs, sizeof *ms);
    float *staging = malloc((count > 0 ? count : 1u) * sizeof *staging);
    if (ms == NULL || staging == NULL) {
        free(ms);
        free(staging);
        return ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "timing: out of memory");
    }
    const kvq_rope *timed_rope = rope;
#if KVQ_PLUGIN_BREAK == EX_BREAK_TIMED_WORK
    /* BUG (kvq_plugin_broken_timed_work): the timed runs leave RoPE out, so the benchmark times cheaper
     * work than attention_decode_batch does, and its output is that work's. */
    static const kvq_rope no_rope = {KVQ_ROPE_NONE, 10000.0f};
    timed_rope = &no_rope;
#endif
    for (uint32_t r = 0; st == KVQ_OK && r < timing->warmup + timing->runs; r++) {
        double t0 = now_ms();
        st = ex_attention_batch(err, n_seq, keys, values, key_positions, timed_rope, q, n_q, q_positions,
                                count > 0 ? staging : out);
        double t1 = now_ms();
        if (r >= timing->warmup) ms[r - timing->warmup] = t1 - t0;
    }
    if (st == KVQ_OK) {
        memcpy(out, staging, count * sizeof *out);
        memcpy(timing->ms_host, ms, timing->runs * sizeof *ms);
        snprintf(timing->kernel, sizeof timing->kernel, "scalar C, one sequence after another");
    }
    free(ms);
    free(staging);
    return st;
}
