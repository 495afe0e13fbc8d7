/*
 * bench_cuda_quantize.c - study (b): quantize/append throughput on CUDA for
 * prefill-sized blocks, for every format of bench_formats().
 *
 * Two measurements per (format, block):
 *  - "device": kvq_cuda_layer_append (the CUDA device API, kvq/kvq_cuda.h) of
 *    a block of n tokens to an empty sequence of a layer of 32 KV heads of
 *    head_dim 128 (one LLaMA-7B layer), keys and values already on the device
 *    (fp32, every head reading the same rows), as an engine's prefill appends
 *    them: the token policy, fp16 rows, codes, params and outliers of all 64
 *    slices; CUDA events on the caller's stream around the call, the slot
 *    emptied (kvq_cuda_layer_reset) outside them before each run.
 *  - "cache_append": the ABI's cache_append of the block into an empty cache
 *    for one KV head, host wall clock: host-to-device copies included.
 */
#include "bench_cuda.h"

#include "kvq/kvq_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUDY "quantize_cuda"
#define LAYER_HEADS 32u
#define HEAD_DIM 128u

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

static bool layer_ok(kvq_status st, const char *what)
{
    if (st == KVQ_OK) return true;
    fprintf(stderr, "kvq bench: " STUDY ": %s: %s: %s\n", what, kvq_status_name(st), kvq_cuda_last_error());
    return false;
}

/* One layer's block of n tokens appended through the device API, warmup + runs times. */
static bool time_device(const bench_options *o, const bench_format *f, const float *x_host, uint32_t n,
                        bench_json *w)
{
    kvq_codebook codebook;
    kvq_head_config kc, vc;
    bench_format_configs(f, &codebook, &kc, &vc);
    kvq_cuda_layer_config config = {.struct_size = sizeof config,
                                    .head_dim = HEAD_DIM,
                                    .n_kv_heads = LAYER_HEADS,
                                    .n_q_heads = LAYER_HEADS,
                                    .max_seqs = 1,
                                    .max_tokens = n,
                                    .max_append_tokens = n,
                                    .kv_dtype = KVQ_CUDA_FP32,
                                    .key_config = &kc,
                                    .value_config = &vc,
                                    .rope = {KVQ_ROPE_HALF, 10000.0f},
                                    .attention_profile = -1};
    kvq_cuda_layer_sizes sizes = {.struct_size = sizeof sizes};
    size_t elems = (size_t)n * HEAD_DIM;
    float *dx = NULL;
    void *memory = NULL;
    kvq_cuda_layer *layer = NULL;
    cudaStream_t stream = NULL;
    cudaEvent_t start = NULL, stop = NULL;
    double *samples = calloc(o->runs, sizeof *samples);
    bool ok = samples != NULL;
    if (!ok) fprintf(stderr, "kvq bench: " STUDY ": out of host memory\n");
    ok = ok && layer_ok(kvq_cuda_layer_size(&config, &sizes), "kvq_cuda_layer_size");
    ok = ok && bench_cuda_ok(STUDY, cudaSetDevice(o->device >= 0 ? o->device : 0), "cudaSetDevice") &&
         bench_cuda_ok(STUDY, cudaStreamCreate(&stream), "cudaStreamCreate") &&
         bench_cuda_ok(STUDY, cudaEventCreate(&start), "cudaEventCreate") &&
         bench_cuda_ok(STUDY, cudaEventCreate(&stop), "cudaEventCreate") &&
         bench_cuda_ok(STUDY, cudaMalloc(&memory, sizes.total_bytes), "the layer's memory") &&
         bench_cuda_ok(STUDY, cudaMalloc((void **)&dx, 2u * elems * sizeof(float)), "inputs") &&
         bench_cuda_ok(STUDY, cudaMemcpy(dx, x_host, 2u * elems * sizeof(float), cudaMemcpyHostToDevice), "inputs");
    ok = ok && layer_ok(kvq_cuda_layer_create(&config, memory, sizes.total_bytes, (kvq_cuda_stream)stream, &layer),
                        "kvq_cuda_layer_create");
    const uint32_t seq = 0;
    /* head_stride 0: every head reads the same rows (the values do not change the work) */
    kvq_cuda_append_args a = {.struct_size = sizeof a,
                              .n_seqs = 1,
                              .seq_ids = &seq,
                              .n_new = &n,
                              .keys = {dx, KVQ_CUDA_FP32, 0, 0, HEAD_DIM},
                              .values = {dx + elems, KVQ_CUDA_FP32, 0, 0, HEAD_DIM}};
    for (uint32_t r = 0; ok && r < o->warmup + o->runs; r++) {
        ok = layer_ok(kvq_cuda_layer_reset(layer, seq, (kvq_cuda_stream)stream), "kvq_cuda_layer_reset") &&
             bench_cuda_ok(STUDY, cudaEventRecord(start, stream), "cudaEventRecord") &&
             layer_ok(kvq_cuda_layer_append(layer, &a, (kvq_cuda_stream)stream), "kvq_cuda_layer_append") &&
             bench_cuda_ok(STUDY, cudaEventRecord(stop, stream), "cudaEventRecord") &&
             bench_cuda_ok(STUDY, cudaEventSynchronize(stop), "running the append");
        float t = 0.0f;
        ok = ok && bench_cuda_ok(STUDY, cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
        if (ok && r >= o->warmup) samples[r - o->warmup] = (double)t;
    }
    /* What only the device sees (a non-finite input, too many outliers) is reported here. */
    ok = ok && layer_ok(kvq_cuda_layer_status(layer, (kvq_cuda_stream)stream), "kvq_cuda_layer_status");
    if (ok) {
        bench_stats ms = bench_stats_of(samples, o->runs);
        write_row(w, f, "device", n, LAYER_HEADS, &ms);
    }
    if (layer != NULL) kvq_cuda_layer_destroy(layer);
    cudaFree(memory);
    cudaFree(dx);
    if (start != NULL) cudaEventDestroy(start);
    if (stop != NULL) cudaEventDestroy(stop);
    if (stream != NULL) cudaStreamDestroy(stream);
    free(samples);
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
    bench_cuda_describe(w, o->device >= 0 ? o->device : 0);
    bench_json_string(w, "timed",
                      "device: CUDA events on the caller's stream around kvq_cuda_layer_append (the device API) of "
                      "the block to an empty sequence of a layer of 32 KV heads of head_dim 128 (one LLaMA-7B "
                      "layer): the token policy, fp16 rows, codes, params, packing and outliers of the 64 slices, "
                      "fp32 inputs already on the device, every head reading the same rows, the slot emptied "
                      "outside the events before each run; cache_append: host wall clock of the ABI call for one "
                      "KV head into an empty cache, host-to-device copies included");
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
            ok = time_device(o, &formats[i], x, blocks[b], w) &&
                 time_append(o, api, ctx, &formats[i], x, blocks[b], w);
        }
    bench_json_end(w);
    bench_json_string(w, "status", ok ? "ok" : "failed");
    bench_json_end(w);
    free(x);
    api->close(ctx);
    return ok ? 0 : 1;
}
