/*
 * bench_cuda_quantize.c - study (b): quantize/append throughput on CUDA for
 * prefill-sized blocks, for every format of bench_formats().
 *
 * Two measurements per (format, block):
 *  - "device": the backend's quantization steps for the keys and values of
 *    the 32 KV heads of one LLaMA-7B layer on inputs already on the device:
 *    all 64 slices as one cuda_quantize_jobs batch (fp16 rows included), a
 *    fixed number of launches and one synchronisation per layer (to learn
 *    the outlier counts); timed with CUDA events on the backend's stream.
 *  - "cache_append": the ABI's cache_append of the block into an empty cache
 *    for one KV head, host wall clock: host-to-device copies included.
 */
#include "bench_cuda.h"
#include "cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUDY "quantize_cuda"
#define LAYER_HEADS 32u
#define HEAD_DIM 128u

typedef struct q_point {
    kvq_backend_context *ctx;
    const kvq_head_config *config[2];
    kvq_backend_tensor *t[2]; /* keys, values quantized once: their arrays are the outputs */
    const float *x[2];        /* device inputs */
    uint32_t n;
} q_point;

/* One layer: 32 heads x (keys, values) as one batch of the backend's
 * cuda_quantize_jobs, fp16 rows (S4.1 step 3) included. Every head reads the
 * same input and writes the same tensor (identical bytes), as the per-slice
 * version of this bench did. */
static bool quantize_step(void *user, cudaStream_t stream)
{
    (void)stream; /* the backend's functions enqueue on ctx->stream, which is this stream */
    q_point *p = user;
    enum { JOBS = 2u * LAYER_HEADS };
    cuda_quant_job jobs[JOBS];
    uint32_t *optr[JOBS], capacity[JOBS];
    uint16_t *ochan[JOBS], *oval[JOBS];
    for (uint32_t j = 0; j < JOBS; j++) {
        const int r = (int)(j % 2u);
        kvq_backend_tensor *t = p->t[r];
        jobs[j] = (cuda_quant_job){.config = p->config[r],
                                   .head_dim = HEAD_DIM,
                                   .x = p->x[r],
                                   .x_base = 0,
                                   .t_begin = 0,
                                   .t_end = p->n,
                                   .precision = t->view.precision,
                                   .params = t->owned[CUDA_T_PARAMS],
                                   .codes = t->owned[CUDA_T_CODES],
                                   .cal_params = NULL,
                                   .cal_ranges = NULL,
                                   .fp16_slot = t->owned[CUDA_T_SLOT],
                                   .fp16_rows = t->owned[CUDA_T_ROWS]};
        optr[j] = t->owned[CUDA_T_OPTR];
        ochan[j] = t->owned[CUDA_T_OCHAN];
        oval[j] = t->owned[CUDA_T_OVAL];
        capacity[j] = t->header.n_outliers; /* the tensor's arrays hold exactly the first run's outliers */
    }
    /* Steps 3-7 of all 64 slices: one synchronisation for the outlier counts. */
    kvq_status st = cuda_quantize_jobs(p->ctx, jobs, JOBS, optr, ochan, oval, capacity);
    for (uint32_t j = 0; j < JOBS && st == KVQ_OK; j++)
        if (jobs[j].n_outliers != capacity[j])
            st = cuda_fail(p->ctx, KVQ_ERR_IO, "outlier count changed between runs (%u, then %u)", capacity[j],
                           jobs[j].n_outliers);
    if (st != KVQ_OK) {
        fprintf(stderr, "kvq bench: " STUDY ": quantizing: %s\n", cuda_last_error(p->ctx));
        return false;
    }
    return true;
}

static void write_row(bench_json *w, const bench_format *f, const char *kind, uint32_t n, uint32_t heads,
                      const bench_stats *ms)
{
    char label[96];
    snprintf(label, sizeof label, "%.48s %.40s", f->name, kind);
    double tokens_s = ms->median > 0.0 ? (double)n / (ms->median * 1e-3) : 0.0;
    double input_bytes = 2.0 * heads * (double)n * HEAD_DIM * 4.0;
    bench_json_object(w, NULL);
    bench_json_string(w, "label", label);
    bench_json_string(w, "format", f->name);
    bench_json_string(w, "kind", kind);
    bench_json_u64(w, "block_tokens", n);
    bench_json_u64(w, "kv_heads", heads);
    bench_json_stats(w, "time_ms", ms);
    bench_json_number(w, "tokens_per_s", tokens_s);
    bench_json_number(w, "input_gbs", ms->median > 0.0 ? input_bytes / (ms->median * 1e6) : 0.0);
    bench_json_end(w);
    bench_checkpoint(w);
}

/* Device-side quantization of one layer's block of n tokens. */
static bool time_device(const bench_options *o, const kvq_backend_api *api, kvq_backend_context *ctx,
                        const bench_format *f, const float *x_host, uint32_t n, bench_json *w)
{
    kvq_codebook codebook;
    kvq_head_config kc, vc;
    bench_format_configs(f, &codebook, &kc, &vc);
    q_point p = {ctx, {&kc, &vc}, {NULL, NULL}, {NULL, NULL}, n};
    float *dx = NULL;
    size_t elems = (size_t)n * HEAD_DIM;
    bool ok = true;
    for (int r = 0; ok && r < 2; r++)
        if (api->quantize_head(ctx, p.config[r], x_host + (size_t)r * elems, n, HEAD_DIM, NULL, &p.t[r]) != KVQ_OK) {
            fprintf(stderr, "kvq bench: " STUDY ": %s: %s\n", f->name, api->last_error(ctx));
            ok = false;
        }
    ok = ok && bench_cuda_ok(STUDY, cudaMalloc((void **)&dx, 2u * elems * sizeof(float)), "inputs") &&
         bench_cuda_ok(STUDY, cudaMemcpy(dx, x_host, 2u * elems * sizeof(float), cudaMemcpyHostToDevice), "inputs");
    p.x[0] = dx;
    p.x[1] = dx + elems;
    bench_stats ms;
    ok = ok && bench_cuda_time(STUDY, ctx->stream, quantize_step, &p, o, &ms);
    if (ok) write_row(w, f, "device", n, LAYER_HEADS, &ms);
    for (int r = 0; r < 2; r++)
        if (p.t[r] != NULL) api->tensor_free(ctx, p.t[r]);
    cudaFree(dx);
    return ok;
}

/* The ABI's cache_append of n tokens into an empty cache (one KV head). */
static bool time_append(const bench_options *o, const kvq_backend_api *api, kvq_backend_context *ctx,
                        const bench_format *f, const float *x_host, uint32_t n, bench_json *w)
{
    kvq_codebook codebook;
    kvq_head_config kc, vc;
    bench_format_configs(f, &codebook, &kc, &vc);
    double *samples = calloc(o->runs, sizeof *samples);
    bool ok = samples != NULL;
    for (uint32_t r = 0; ok && r < o->warmup + o->runs; r++) {
        kvq_backend_cache *cache = NULL;
        if (api->cache_create(ctx, &kc, &vc, HEAD_DIM, &cache) != KVQ_OK) {
            fprintf(stderr, "kvq bench: " STUDY ": cache_create %s: %s\n", f->name, api->last_error(ctx));
            ok = false;
            break;
        }
        double t0 = bench_now_s();
        if (api->cache_append(ctx, cache, x_host, x_host + (size_t)n * HEAD_DIM, NULL, NULL, n) != KVQ_OK) {
            fprintf(stderr, "kvq bench: " STUDY ": cache_append %s: %s\n", f->name, api->last_error(ctx));
            ok = false;
        }
        double t1 = bench_now_s();
        api->cache_free(ctx, cache);
        if (ok && r >= o->warmup) samples[r - o->warmup] = (t1 - t0) * 1e3;
    }
    if (ok) {
        bench_stats ms = bench_stats_of(samples, o->runs);
        write_row(w, f, "cache_append", n, 1u, &ms);
    }
    free(samples);
    return ok;
}

int bench_study_cuda_quantize(const bench_options *o, bench_json *w)
{
    const kvq_backend_api *api = NULL;
    kvq_backend_context *ctx = NULL;
    char reason[600];
    if (!bench_cuda_open(STUDY, o, &api, &ctx, reason, sizeof reason)) {
        bench_json_skipped(w, STUDY, reason);
        return 0;
    }
    static const uint32_t blocks_full[] = {512u, 2048u, 8192u, 32768u}, blocks_quick[] = {512u, 2048u};
    const uint32_t *blocks = o->quick ? blocks_quick : blocks_full;
    size_t n_blocks = o->quick ? 2u : 4u;
    uint32_t max_n = blocks[n_blocks - 1u];
    bench_json_object(w, STUDY);
    bench_cuda_describe(w, ctx->device);
    bench_json_string(w, "timed",
                      "device: CUDA events around one layer's quantization, keys and values of 32 KV heads of "
                      "head_dim 128 (one LLaMA-7B layer) as one batch: cuda_quantize_jobs over the 64 slices "
                      "(fp16 rows, codes, params, packing and outlier counts of all slices in one launch per "
                      "step, one download of the counts and one synchronisation per layer, then the outliers), "
                      "inputs already on the device, every head reading the same input slice; cache_append: host "
                      "wall clock of the ABI call for one KV head into an empty cache, host-to-device copies "
                      "included");
    bench_json_string(w, "notes",
                      "tokens_per_s counts the block's tokens (for device: per layer of 32 heads); "
                      "input_gbs counts the fp32 keys and values read");
    bench_json_plot(w, "Quantize / append throughput on CUDA", "block_tokens", "block (tokens)", "tokens_per_s",
                    "tokens per second", true, true);
    static const char *const columns[][2] = {{"format", "format"},
                                             {"kind", "measured"},
                                             {"block_tokens", "tokens"},
                                             {"kv_heads", "KV heads"},
                                             {"time_ms.median", "median ms"},
                                             {"time_ms.min", "min ms"},
                                             {"time_ms.max", "max ms"},
                                             {"tokens_per_s", "tokens/s"},
                                             {"input_gbs", "input GB/s"}};
    bench_json_columns(w, columns, sizeof columns / sizeof columns[0]);
    float *x = malloc((size_t)2u * max_n * HEAD_DIM * sizeof *x);
    bool ok = x != NULL;
    if (!ok) fprintf(stderr, "kvq bench: " STUDY ": out of host memory\n");
    if (ok) bench_fill_random(x, (size_t)2u * max_n * HEAD_DIM, 9u);
    bench_format formats[BENCH_MAX_FORMATS];
    size_t n_formats = bench_formats(o->quick, formats, BENCH_MAX_FORMATS);
    bench_json_array(w, "results");
    for (size_t i = 0; ok && i < n_formats; i++)
        for (size_t b = 0; ok && b < n_blocks; b++) {
            fprintf(stderr, "kvq bench: " STUDY ": %s, %u tokens\n", formats[i].name, blocks[b]);
            ok = time_device(o, api, ctx, &formats[i], x, blocks[b], w) &&
                 time_append(o, api, ctx, &formats[i], x, blocks[b], w);
        }
    bench_json_end(w);
    bench_json_string(w, "status", ok ? "ok" : "failed");
    bench_json_end(w);
    free(x);
    api->close(ctx);
    return ok ? 0 : 1;
}
