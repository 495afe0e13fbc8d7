/*
 * bench_cuda_offload.c - study (c): the CPU-GPU offload study of the
 * multimodal source paper. A LLaVA-like model (bench_cuda_model.h) serves
 * prompts of 1..8 images of 576 or 2880 image tokens plus 128 text tokens.
 * The KV cache gets a GPU memory budget; layers beyond it live in pinned host
 * memory and are streamed per layer over PCIe, overlapped with compute (a copy
 * stream and two staging buffers, bench_cuda_offload.h).
 *
 * Measured per (format, prompt): TTFT (prefill of every layer including
 * writing the cache out: quantizing it with the backend's batched steps
 * (cuda_quantize_jobs, one host synchronisation per layer), copying
 * streamed layers to the host) and TPOT (one decode step: every layer's
 * GEMMs and attention over the whole cache, streamed layers copied in).
 * Formats: fp16, and the text-centric policy (S10: text tokens and the
 * sink in fp16 within a 10% budget, the rest 4-bit or 2-bit, uniform or NUQ).
 */
#include "bench_cuda_model.h"
#include "bench_cuda_offload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUDY "offload_cuda"
#define TEXT_TOKENS 128u

static const offload_format formats[] = {{"fp16", false, KVQ_SCHEME_UNIFORM_ASYM, 16u},
                                         {"text-int4", true, KVQ_SCHEME_UNIFORM_ASYM, 4u},
                                         {"text-int2", true, KVQ_SCHEME_UNIFORM_ASYM, 2u},
                                         {"text-nuq4", true, KVQ_SCHEME_NUQ, 4u},
                                         {"text-nuq2", true, KVQ_SCHEME_NUQ, 2u}};
#define N_FORMATS (sizeof formats / sizeof formats[0])

typedef struct prompt {
    uint32_t images, tokens_per_image;
} prompt;

typedef struct run_state {
    const bench_options *o;
    kvq_backend_context *ctx;
    bench_model *m;
    offload_cache *c;
    const kvq_head_config *cfg[2];
    cudaStream_t copy;
    cudaEvent_t loaded[2], freed[2], written[2], copied[2], done;
    /* quantized decode attention */
    float *q32, *partial, *out;
    double *theta;
    uint32_t *flags;
    uint32_t tokens_per_split, splits;
} run_state;

/* ---- one decode step ------------------------------------------------------ */

static bool attention(run_state *s, uint32_t buffer, const unsigned char *blob)
{
    offload_cache *c = s->c;
    if (!c->format->quantized) return bench_model_decode_attention_fp16(s->m, c->n_tokens, (const uint16_t *)blob);
    uint32_t d = c->head_dim;
    kvq_cuda_attention_args a = {.seqs = offload_descriptors(c, buffer),
                                 .q = s->q32,
                                 .theta = s->theta,
                                 .rope_step = cuda_rope_step(s->ctx, 10000.0f, d),
                                 .rope_step32 = cuda_rope_step32(s->ctx, 10000.0f, d),
                                 .seqs_host = offload_descriptors_host(c, buffer),
                                 .pairing = KVQ_ROPE_HALF,
                                 .n_seq = c->heads,
                                 .n_q = 1u,
                                 .head_dim = d,
                                 .tokens_per_split = s->tokens_per_split,
                                 .max_splits = s->splits,
                                 .max_key_words = c->view[0].row_words,
                                 .max_value_words = c->view[1].row_words,
                                 .score_scale = (float)(1.4426950408889634 / sqrt((double)d)),
                                 .partial_o = s->splits > 1u ? s->partial : NULL,
                                 .partial_ml = s->splits > 1u ? s->partial + (size_t)c->heads * s->splits * d : NULL,
                                 .out = s->out,
                                 .flags = s->flags};
    return bench_cuda_ok(STUDY, kvq_cuda_attention(&a, s->m->stream), "kvq_cuda_attention");
}

/* Enqueues the copy of streamed layer i (layer resident + i) into staging i % 2. */
static bool enqueue_load(run_state *s, uint32_t i)
{
    offload_cache *c = s->c;
    uint32_t b = i % 2u;
    return bench_cuda_ok(STUDY, cudaStreamWaitEvent(s->copy, s->freed[b], 0), "cudaStreamWaitEvent") &&
           bench_cuda_ok(STUDY,
                         cudaMemcpyAsync(offload_staging(c, b), c->host + (size_t)i * c->layer_bytes, c->layer_bytes,
                                         cudaMemcpyHostToDevice, s->copy),
                         "host-to-device layer") &&
           bench_cuda_ok(STUDY, cudaEventRecord(s->loaded[b], s->copy), "cudaEventRecord");
}

static bool decode_step(void *user, cudaStream_t stream)
{
    run_state *s = user;
    offload_cache *c = s->c;
    uint32_t streamed = c->layers - c->resident;
    bool ok = true;
    /* The compute stream's start is recorded before this: the copies start with it. */
    ok = bench_cuda_ok(STUDY, cudaEventRecord(s->done, stream), "cudaEventRecord") &&
         bench_cuda_ok(STUDY, cudaStreamWaitEvent(s->copy, s->done, 0), "cudaStreamWaitEvent");
    for (uint32_t i = 0; ok && i < streamed && i < 2u; i++) ok = enqueue_load(s, i);
    for (uint32_t l = 0; ok && l < c->layers; l++) {
        ok = bench_model_decode_pre(s->m);
        if (ok && l < c->resident) {
            ok = attention(s, l, offload_resident(c, l));
        } else if (ok) {
            uint32_t i = l - c->resident, b = i % 2u;
            ok = bench_cuda_ok(STUDY, cudaStreamWaitEvent(stream, s->loaded[b], 0), "cudaStreamWaitEvent") &&
                 attention(s, c->resident + b, offload_staging(c, b)) &&
                 bench_cuda_ok(STUDY, cudaEventRecord(s->freed[b], stream), "cudaEventRecord");
            if (ok && i + 2u < streamed) ok = enqueue_load(s, i + 2u);
        }
        ok = ok && bench_model_decode_post(s->m);
    }
    return ok && bench_model_lm_head(s->m);
}

/* ---- the prefill ---------------------------------------------------------- */

/* kvq's quantization of layer blob `base` from the model's fp32 K and V:
 * all heads x (keys, values), fp16 rows included, as one batch of
 * cuda_quantize_jobs (one launch per step, one host synchronisation per
 * layer for the outlier counts); the outliers are still in flight on the stream when it returns,
 * which orders the copy of the blob after them. */
static bool quantize_layer(run_state *s, unsigned char *base)
{
    offload_cache *c = s->c;
    uint32_t n = c->n_tokens, d = c->head_dim, n_jobs = 2u * c->heads;
    size_t half = (size_t)c->heads * n * d;
    cuda_quant_job *jobs = malloc(n_jobs * sizeof *jobs);
    uint32_t **optr = malloc(n_jobs * sizeof *optr), *capacity = malloc(n_jobs * sizeof *capacity);
    uint16_t **ochan = malloc(n_jobs * sizeof *ochan), **oval = malloc(n_jobs * sizeof *oval);
    kvq_status st = jobs && optr && capacity && ochan && oval
                        ? KVQ_OK
                        : cuda_fail(s->ctx, KVQ_ERR_OUT_OF_MEMORY, "out of host memory for %u jobs", n_jobs);
    for (uint32_t j = 0; j < n_jobs && st == KVQ_OK; j++) {
        const uint32_t h = j / 2u;
        const int r = (int)(j % 2u);
        const float *x = s->m->kv32 + (size_t)r * half + (size_t)h * n * d;
        /* The batch writes the fp16 rows (sinks, text) too: one launch per layer. */
        jobs[j] = (cuda_quant_job){.config = s->cfg[r],
                                   .head_dim = d,
                                   .x = x,
                                   .x_base = 0,
                                   .t_begin = 0,
                                   .t_end = n,
                                   .precision = offload_array(c, base, h, r, 0),
                                   .params = offload_array(c, base, h, r, 4),
                                   .codes = offload_array(c, base, h, r, 3),
                                   .cal_params = NULL,
                                   .cal_ranges = NULL,
                                   .fp16_slot = offload_array(c, base, h, r, 1),
                                   .fp16_rows = offload_array(c, base, h, r, 2),
                                   .fp16_temp_rows = NULL};
        optr[j] = offload_array(c, base, h, r, 5);
        ochan[j] = offload_array(c, base, h, r, 6);
        oval[j] = offload_array(c, base, h, r, 7);
        /* The blob has room for the template's outliers (and the 16 bytes of
         * slack); the model's data has its own count. */
        capacity[j] = (uint32_t)((c->bytes[r][6] + 16u) / 2u);
    }
    if (st == KVQ_OK) st = cuda_quantize_jobs(s->ctx, jobs, n_jobs, optr, ochan, oval, capacity);
    if (st != KVQ_OK)
        fprintf(stderr, "kvq bench: " STUDY ": quantizing the prefill's cache: %s\n", cuda_last_error(s->ctx));
    free(jobs);
    free(optr);
    free(capacity);
    free(ochan);
    free(oval);
    return st == KVQ_OK;
}

static bool prefill_step(void *user, cudaStream_t stream)
{
    run_state *s = user;
    offload_cache *c = s->c;
    bool ok = true;
    for (uint32_t l = 0; ok && l < c->layers; l++) {
        bool streamed = l >= c->resident;
        uint32_t b = streamed ? (l - c->resident) % 2u : 0u;
        unsigned char *dest = streamed ? offload_staging(c, b) : offload_resident(c, l);
        /* Staging buffer b is free once its previous layer reached the host. */
        if (streamed) ok = bench_cuda_ok(STUDY, cudaStreamWaitEvent(stream, s->copied[b], 0), "cudaStreamWaitEvent");
        ok = ok && bench_model_prefill_layer(s->m, c->n_tokens, c->format->quantized ? NULL : (uint16_t *)dest);
        if (ok && c->format->quantized) ok = quantize_layer(s, dest);
        if (ok && streamed)
            ok = bench_cuda_ok(STUDY, cudaEventRecord(s->written[b], stream), "cudaEventRecord") &&
                 bench_cuda_ok(STUDY, cudaStreamWaitEvent(s->copy, s->written[b], 0), "cudaStreamWaitEvent") &&
                 bench_cuda_ok(STUDY,
                               cudaMemcpyAsync(c->host + (size_t)(l - c->resident) * c->layer_bytes, dest,
                                               c->layer_bytes, cudaMemcpyDeviceToHost, s->copy),
                               "device-to-host layer") &&
                 bench_cuda_ok(STUDY, cudaEventRecord(s->copied[b], s->copy), "cudaEventRecord");
    }
    /* The first token needs the vocabulary projection; TTFT ends when the cache is out too. */
    return ok && bench_model_lm_head(s->m) &&
           bench_cuda_ok(STUDY, cudaEventRecord(s->done, s->copy), "cudaEventRecord") &&
           bench_cuda_ok(STUDY, cudaStreamWaitEvent(stream, s->done, 0), "cudaStreamWaitEvent");
}

/* ---- set-up ---------------------------------------------------------------- */

static void state_free(run_state *s)
{
    for (int i = 0; i < 2; i++) {
        if (s->loaded[i]) cudaEventDestroy(s->loaded[i]);
        if (s->freed[i]) cudaEventDestroy(s->freed[i]);
        if (s->written[i]) cudaEventDestroy(s->written[i]);
        if (s->copied[i]) cudaEventDestroy(s->copied[i]);
    }
    if (s->done) cudaEventDestroy(s->done);
    if (s->copy) cudaStreamDestroy(s->copy);
    cudaFree(s->q32);
    cudaFree(s->partial);
    cudaFree(s->out);
    cudaFree(s->theta);
    cudaFree(s->flags);
}

static bool state_make(run_state *s)
{
    offload_cache *c = s->c;
    uint32_t d = c->head_dim, T = kvq_cuda_attention_tile(d), n = c->n_tokens;
    /* cuda_attention_run's split rule for one query head per sequence. */
    uint64_t tiles = (uint64_t)c->heads * ((n + T - 1u) / T), target = (uint64_t)s->ctx->sm_count * 4u;
    uint64_t per = (tiles + target - 1u) / target;
    s->tokens_per_split = (uint32_t)((per > 0 ? per : 1u) * T);
    s->splits = (n + s->tokens_per_split - 1u) / s->tokens_per_split;
    if (!offload_set_splits(c, s->splits)) return false;
    bool ok = bench_cuda_ok(STUDY, cudaStreamCreateWithFlags(&s->copy, cudaStreamNonBlocking), "copy stream") &&
              bench_cuda_ok(STUDY, cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming), "events");
    for (int i = 0; ok && i < 2; i++)
        ok = bench_cuda_ok(STUDY, cudaEventCreateWithFlags(&s->loaded[i], cudaEventDisableTiming), "events") &&
             bench_cuda_ok(STUDY, cudaEventCreateWithFlags(&s->freed[i], cudaEventDisableTiming), "events") &&
             bench_cuda_ok(STUDY, cudaEventCreateWithFlags(&s->written[i], cudaEventDisableTiming), "events") &&
             bench_cuda_ok(STUDY, cudaEventCreateWithFlags(&s->copied[i], cudaEventDisableTiming), "events");
    size_t q_bytes = (size_t)c->heads * d * sizeof(float);
    float *q = malloc(q_bytes);
    ok = ok && q != NULL && bench_cuda_ok(STUDY, cudaMalloc((void **)&s->q32, q_bytes), "queries") &&
         bench_cuda_ok(STUDY, cudaMalloc((void **)&s->out, q_bytes), "output") &&
         bench_cuda_ok(STUDY, cudaMalloc((void **)&s->partial, (size_t)c->heads * s->splits * (d + 2u) * sizeof(float)),
                       "partials") &&
         bench_cuda_ok(STUDY, cudaMalloc((void **)&s->theta, d / 2u * sizeof(double)), "RoPE table") &&
         bench_cuda_ok(STUDY, cudaMalloc((void **)&s->flags, 16), "flags") &&
         bench_cuda_ok(STUDY, cudaMemset(s->flags, 0, 16), "flags");
    if (ok) {
        bench_fill_random(q, (size_t)c->heads * d, 29u);
        ok = bench_cuda_ok(STUDY, cudaMemcpy(s->q32, q, q_bytes, cudaMemcpyHostToDevice), "queries") &&
             bench_cuda_ok(STUDY,
                           cudaMemcpy(s->theta, cuda_rope_theta(s->ctx, 10000.0f, d), d / 2u * sizeof(double),
                                      cudaMemcpyHostToDevice),
                           "RoPE table");
    }
    free(q);
    return ok;
}

/* The text-centric policy (S10.3): 10% fp16 budget filled by text tokens, one sink. */
static void text_centric(const offload_format *f, kvq_codebook *codebook, kvq_head_config *kc, kvq_head_config *vc)
{
    bench_format bf;
    memset(&bf, 0, sizeof bf);
    bf.scheme = f->scheme;
    bf.bits = f->bits;
    bench_format_configs(&bf, codebook, kc, vc);
    kvq_token_policy p = kvq_token_policy_default(); /* text-centric, 10%, one sink */
    kc->policy = p;
    vc->policy = p;
}

typedef struct point_result {
    bench_stats ttft, tpot;
    uint32_t resident;
    size_t layer_bytes;
} point_result;

static bool measure(const bench_options *o, const kvq_backend_api *api, kvq_backend_context *ctx, bench_model *m,
                    const offload_format *f, const prompt *p, size_t budget, point_result *res)
{
    uint32_t n = TEXT_TOKENS + p->images * p->tokens_per_image;
    uint8_t *modality = malloc(n);
    if (modality == NULL) return false;
    /* LLaVA's layout: a text preamble, the images, the question. */
    for (uint32_t t = 0; t < n; t++)
        modality[t] = t < TEXT_TOKENS / 2u || t >= n - TEXT_TOKENS / 2u ? KVQ_MODALITY_TEXT : KVQ_MODALITY_IMAGE;
    kvq_codebook codebook;
    kvq_head_config kc, vc;
    text_centric(f, &codebook, &kc, &vc);
    offload_cache c;
    run_state s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.ctx = ctx;
    s.m = m;
    s.c = &c;
    s.cfg[0] = &kc;
    s.cfg[1] = &vc;
    bool ok = offload_cache_create(&c, f, api, ctx, &kc, &vc, m->layers, n, modality, budget);
    free(modality);
    if (!ok) return false;
    ok = state_make(&s) && bench_cuda_time(STUDY, m->stream, prefill_step, &s, o, &res->ttft) &&
         bench_cuda_time(STUDY, m->stream, decode_step, &s, o, &res->tpot);
    res->resident = c.resident;
    res->layer_bytes = c.layer_bytes;
    state_free(&s);
    offload_cache_free(&c, api, ctx);
    return ok;
}

static void write_row(bench_json *w, const offload_format *f, const prompt *p, uint32_t layers, const point_result *r,
                      const point_result *fp16)
{
    uint32_t n = TEXT_TOKENS + p->images * p->tokens_per_image;
    bench_json_object(w, NULL);
    bench_json_string(w, "label", f->name);
    bench_json_string(w, "format", f->name);
    bench_json_u64(w, "images", p->images);
    bench_json_u64(w, "tokens_per_image", p->tokens_per_image);
    bench_json_u64(w, "context", n);
    bench_json_u64(w, "layer_bytes", r->layer_bytes);
    bench_json_u64(w, "cache_bytes", (uint64_t)r->layer_bytes * layers);
    bench_json_u64(w, "resident_layers", r->resident);
    bench_json_u64(w, "streamed_layers", layers - r->resident);
    bench_json_stats(w, "ttft_ms", &r->ttft);
    bench_json_stats(w, "tpot_ms", &r->tpot);
    bench_json_number(w, "ttft_ratio", r->ttft.median > 0.0 ? fp16->ttft.median / r->ttft.median : 0.0);
    bench_json_number(w, "tpot_ratio", r->tpot.median > 0.0 ? fp16->tpot.median / r->tpot.median : 0.0);
    bench_json_end(w);
    bench_checkpoint(w);
}

int bench_study_cuda_offload(const bench_options *o, bench_json *w)
{
    const kvq_backend_api *api = NULL;
    kvq_backend_context *ctx = NULL;
    char reason[600];
    if (!bench_cuda_open(STUDY, o, &api, &ctx, reason, sizeof reason)) {
        bench_json_skipped(w, STUDY, reason);
        return 0;
    }
    static const prompt full[] = {{1u, 576u}, {1u, 2880u}, {2u, 2880u}, {4u, 2880u}, {8u, 2880u}};
    static const prompt quick[] = {{1u, 576u}};
    const prompt *prompts = o->quick ? quick : full;
    size_t n_prompts = o->quick ? 1u : sizeof full / sizeof full[0];
    /* --max-context bounds this study's prompts too (they are in increasing length). */
    while (o->max_context != 0 && n_prompts > 1u &&
           TEXT_TOKENS + prompts[n_prompts - 1u].images * prompts[n_prompts - 1u].tokens_per_image > o->max_context)
        n_prompts--;
    uint32_t layers = o->quick ? 2u : 32u, max_n = 0;
    for (size_t i = 0; i < n_prompts; i++)
        if (TEXT_TOKENS + prompts[i].images * prompts[i].tokens_per_image > max_n)
            max_n = TEXT_TOKENS + prompts[i].images * prompts[i].tokens_per_image;
    /* The cache's GPU budget: 4 GiB, about a third of the largest prompt's fp16
     * cache; quick: 12 MiB, less than two layers, so that every format streams. */
    size_t budget = o->quick ? ((size_t)12u << 20) : ((size_t)4u << 30);
    bench_json_object(w, STUDY);
    bench_cuda_describe(w, ctx->device);
    bench_json_string(w, "timed",
                      "CUDA events on the compute stream (the backend's stream) around a whole prefill "
                      "(TTFT: every layer, the cache quantized (one cuda_quantize_jobs batch of 32 heads x keys/"
                      "values per layer: one launch per step, one host synchronisation) and streamed layers copied to pinned host "
                      "memory, the vocabulary projection, joined with the copy stream) and a whole decode "
                      "step (TPOT: every layer's GEMMs and attention over the cache, streamed layers "
                      "copied in on a second stream into two staging buffers)");
    char notes[1024];
    snprintf(notes, sizeof notes,
             "LLaVA-1.5-7B-like: %u layers, 32 heads of 128, hidden 4096, MLP 11008, vocabulary 32000, one layer's "
             "random fp16 weights shared by all layers; prompts of %u text tokens plus images; KV cache GPU budget "
             "%zu MiB (staging buffers inside it); prefill attention is full (non-causal) batched GEMMs; the decode "
             "step does not append its own token to the cache; the backend quantizes each layer's 64 slices as one "
             "batch (cuda_quantize_jobs, one launch per step) that synchronises once per layer to learn the outlier counts, which the "
             "TTFT includes; text-* formats: text-centric policy, 10%% fp16 budget, "
             "one sink, keys per channel in blocks of 128 tokens, values per token, no outliers",
             layers, TEXT_TOKENS, budget >> 20);
    bench_json_string(w, "notes", notes);
    bench_json_u64(w, "budget_bytes", budget);
    bench_json_plot(w, "CPU-GPU offload: time per output token", "context", "prompt (tokens)", "tpot_ms.median",
                    "TPOT (ms)", false, false);
    static const char *const columns[][2] = {{"format", "format"},
                                             {"images", "images"},
                                             {"tokens_per_image", "tokens/image"},
                                             {"context", "tokens"},
                                             {"cache_bytes", "cache bytes"},
                                             {"resident_layers", "resident layers"},
                                             {"ttft_ms.median", "TTFT ms"},
                                             {"tpot_ms.median", "TPOT ms"},
                                             {"tpot_ms.min", "TPOT min"},
                                             {"tpot_ms.max", "TPOT max"},
                                             {"ttft_ratio", "TTFT fp16/this"},
                                             {"tpot_ratio", "TPOT fp16/this"}};
    bench_json_columns(w, columns, sizeof columns / sizeof columns[0]);
    bench_model m;
    bool ok = bench_model_create(&m, layers, max_n, ctx->stream);
    point_result res[N_FORMATS][8];
    memset(res, 0, sizeof res);
    bench_json_array(w, "results");
    for (size_t p = 0; ok && p < n_prompts; p++)
        for (size_t f = 0; ok && f < N_FORMATS; f++) {
            fprintf(stderr, "kvq bench: " STUDY ": %s, %u x %u image tokens\n", formats[f].name, prompts[p].images,
                    prompts[p].tokens_per_image);
            ok = measure(o, api, ctx, &m, &formats[f], &prompts[p], budget, &res[f][p]);
            if (ok) write_row(w, &formats[f], &prompts[p], layers, &res[f][p], &res[0][p]);
        }
    bench_json_end(w);
    /* The targets: ratios at the largest prompt. */
    bench_json_array(w, "ratios");
    for (size_t f = 1; ok && f < N_FORMATS; f++) {
        size_t p = n_prompts - 1u;
        bench_json_object(w, NULL);
        bench_json_string(w, "format", formats[f].name);
        bench_json_u64(w, "images", prompts[p].images);
        bench_json_u64(w, "tokens_per_image", prompts[p].tokens_per_image);
        bench_json_number(w, "ttft_ratio",
                          res[f][p].ttft.median > 0 ? res[0][p].ttft.median / res[f][p].ttft.median : 0.0);
        bench_json_number(w, "tpot_ratio",
                          res[f][p].tpot.median > 0 ? res[0][p].tpot.median / res[f][p].tpot.median : 0.0);
        bench_json_end(w);
    }
    bench_json_end(w);
    /* Capacity: cache bytes per token from the largest prompt's layer blob. */
    size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) cudaGetLastError();
    bench_json_array(w, "capacity");
    for (size_t f = 0; ok && f < N_FORMATS; f++) {
        size_t p = n_prompts - 1u;
        uint32_t n = TEXT_TOKENS + prompts[p].images * prompts[p].tokens_per_image;
        double per_token = (double)res[f][p].layer_bytes * layers / n;
        double in_budget = per_token > 0 ? (double)budget / per_token : 0.0;
        double on_device = per_token > 0 ? (double)free_bytes / per_token : 0.0;
        bench_json_object(w, NULL);
        bench_json_string(w, "format", formats[f].name);
        bench_json_number(w, "cache_bytes_per_token", per_token);
        bench_json_number(w, "longest_context_in_budget", floor(in_budget));
        bench_json_number(w, "images_2880_in_budget",
                          in_budget > TEXT_TOKENS ? floor((in_budget - TEXT_TOKENS) / 2880.0) : 0.0);
        bench_json_number(w, "longest_context_in_free_device_memory", floor(on_device));
        bench_json_number(w, "images_2880_in_free_device_memory",
                          on_device > TEXT_TOKENS ? floor((on_device - TEXT_TOKENS) / 2880.0) : 0.0);
        bench_json_end(w);
    }
    bench_json_end(w);
    bench_json_u64(w, "free_device_bytes_after_model", free_bytes);
    bench_json_string(w, "status", ok ? "ok" : "failed");
    bench_json_end(w);
    if (m.blas != NULL) bench_model_free(&m);
    api->close(ctx);
    return ok ? 0 : 1;
}
