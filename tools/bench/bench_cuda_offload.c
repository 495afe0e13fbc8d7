/*
 * bench_cuda_offload.c - study (c): the CPU-GPU offload study of the
 * multimodal source paper. A LLaVA-like model (bench_cuda_model.h) serves
 * prompts of 1..8 images of 576 or 2880 image tokens plus 128 text tokens.
 * The KV cache gets a GPU memory budget; layers beyond it live in pinned host
 * memory and are streamed per layer over PCIe, overlapped with compute (a copy
 * stream and two staging buffers, bench_cuda_offload.h).
 *
 * Measured per (format, prompt): TTFT (prefill of every layer including
 * writing the cache out: the quantized formats append the model's K/V to
 * their layers through the public device API, kvq_cuda_layer_append on a
 * stream beside the model's, streamed layers copied to the host) and TPOT
 * (one decode step: every layer's GEMMs and attention over the whole cache,
 * kvq_cuda_layer_attend, streamed layers copied in and moved there with
 * kvq_cuda_layer_move). Formats: fp16, and the text-centric policy (S10: text
 * tokens and the sink in fp16 within a 10% budget, the rest 4-bit or 2-bit,
 * uniform or NUQ). Only the CUDA runtime, cuBLAS and kvq/kvq_cuda.h are used:
 * no backend's internals.
 */
#include "bench_cuda_offload.h"
#include "bench_results.h"

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
    size_t state_bytes;  /* one layer's cache: the fp16 blob, or the layer's sizes.cache_bytes */
    size_t device_bytes; /* one layer's device memory: the blob, or sizes.cache_bytes (the work space is shared) */
} point_result;

static bool measure(const bench_options *o, bench_model *m, const offload_format *f, const prompt *p, size_t budget,
                    point_result *res)
{
    uint32_t n = TEXT_TOKENS + p->images * p->tokens_per_image;
    uint8_t *modality = malloc(n);
    if (modality == NULL) {
        fprintf(stderr, "kvq bench: " STUDY ": out of host memory\n");
        return false;
    }
    /* LLaVA's layout: a text preamble, the images, the question. */
    for (uint32_t t = 0; t < n; t++)
        modality[t] = t < TEXT_TOKENS / 2u || t >= n - TEXT_TOKENS / 2u ? KVQ_MODALITY_TEXT : KVQ_MODALITY_IMAGE;
    kvq_codebook codebook; /* the NUQ configs point at it: kept while the layers live */
    kvq_head_config kc, vc;
    text_centric(f, &codebook, &kc, &vc);
    offload_cache c;
    offload_run r;
    bool ok = offload_cache_create(&c, f, &kc, &vc, m->layers, n, budget, m->stream);
    if (ok) {
        ok = offload_run_make(&r, m, &c, modality) &&
             bench_cuda_time(STUDY, m->stream, offload_prefill, &r, o, &res->ttft) &&
             bench_cuda_time(STUDY, m->stream, offload_decode, &r, o, &res->tpot) && offload_cache_check(&c, m->stream);
        res->resident = c.resident;
        res->state_bytes = c.state_bytes;
        res->device_bytes = c.device_bytes;
        offload_run_free(&r);
        offload_cache_free(&c);
    }
    free(modality);
    return ok;
}

/* --resume: the row the stopped run measured for (f, p), read back into *res; false when it has none.
 * The stopped study must have had this study's budget and prefill chunks (checked by the caller). */
static bool resumed_point(const json_value *stopped, const offload_format *f, const prompt *p, point_result *res)
{
    static const char *const keys[] = {"images", "tokens_per_image"};
    const uint64_t values[] = {p->images, p->tokens_per_image};
    const json_value *row = bench_results_row(stopped, f->name, keys, values, 2u);
    uint64_t state = 0, device = 0;
    uint32_t resident = 0;
    double v[8];
    static const char *const fields[] = {"ttft_ms.median", "ttft_ms.min", "ttft_ms.max", "ttft_ms.runs",
                                         "tpot_ms.median", "tpot_ms.min", "tpot_ms.max", "tpot_ms.runs"};
    for (size_t i = 0; i < 8u; i++)
        if (row == NULL || !bench_field_number(row, fields[i], &v[i])) return false;
    if (!json_u64(json_get(row, "layer_bytes"), &state) || !json_u64(json_get(row, "layer_device_bytes"), &device) ||
        !json_get_u32(row, "resident_layers", &resident))
        return false;
    res->ttft = (bench_stats){v[0], v[1], v[2], (uint32_t)v[3]};
    res->tpot = (bench_stats){v[4], v[5], v[6], (uint32_t)v[7]};
    res->resident = resident;
    res->state_bytes = (size_t)state;
    res->device_bytes = (size_t)device;
    return true;
}

/* Whether the stopped study of --resume timed what this one does: the same budget and prefill
 * chunks (runs, warm-up and quick were checked for the whole document). */
static bool resumable(const json_value *stopped, size_t budget)
{
    uint64_t b = 0, chunk = 0;
    return stopped != NULL && json_u64(json_get(stopped, "budget_bytes"), &b) && b == budget &&
           json_u64(json_get(stopped, "prefill_chunk_tokens"), &chunk) && chunk == OFFLOAD_PREFILL_CHUNK;
}

static void write_row(bench_json *w, const offload_format *f, const prompt *p, uint32_t layers, const point_result *r,
                      const point_result *fp16, const char *resumed_from)
{
    uint32_t n = TEXT_TOKENS + p->images * p->tokens_per_image;
    bench_json_object(w, NULL);
    bench_json_string(w, "label", f->name);
    bench_json_string(w, "format", f->name);
    bench_json_u64(w, "images", p->images);
    bench_json_u64(w, "tokens_per_image", p->tokens_per_image);
    bench_json_u64(w, "context", n);
    bench_json_u64(w, "layer_bytes", r->state_bytes);
    bench_json_u64(w, "layer_device_bytes", r->device_bytes);
    bench_json_u64(w, "cache_bytes", (uint64_t)r->state_bytes * layers);
    bench_json_u64(w, "resident_layers", r->resident);
    bench_json_u64(w, "streamed_layers", layers - r->resident);
    bench_json_stats(w, "ttft_ms", &r->ttft);
    bench_json_stats(w, "tpot_ms", &r->tpot);
    bench_json_number(w, "ttft_ratio", r->ttft.median > 0.0 ? fp16->ttft.median / r->ttft.median : 0.0);
    bench_json_number(w, "tpot_ratio", r->tpot.median > 0.0 ? fp16->tpot.median / r->tpot.median : 0.0);
    /* A row kept by --resume says when it was measured (the stopped run's start). */
    if (resumed_from != NULL) bench_json_string(w, "resumed_from", resumed_from);
    bench_json_end(w);
    bench_checkpoint(w);
}

/* The CUDA runtime's device o->device (default 0) and a stream for the model:
 * the study needs no backend context. false, with the reason, when there is
 * no device (the study is then skipped). */
static bool open_device(const bench_options *o, int *device, cudaStream_t *stream, char *reason, size_t reason_size)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    *device = o->device >= 0 ? o->device : 0;
    if (err == cudaSuccess && count == 0) err = cudaErrorNoDevice;
    if (err != cudaSuccess) {
        cudaGetLastError();
        snprintf(reason, reason_size, "no CUDA device: %s", cudaGetErrorString(err));
    } else if (*device >= count) {
        snprintf(reason, reason_size, "--device %d is not below the %d CUDA device(s)", *device, count);
        err = cudaErrorInvalidDevice;
    } else {
        err = cudaSetDevice(*device);
        if (err == cudaSuccess) err = cudaStreamCreateWithFlags(stream, cudaStreamNonBlocking);
        if (err != cudaSuccess) {
            cudaGetLastError();
            snprintf(reason, reason_size, "CUDA device %d: %s", *device, cudaGetErrorString(err));
        }
    }
    if (err != cudaSuccess) fprintf(stderr, "kvq bench: " STUDY ": %s\n", reason);
    return err == cudaSuccess;
}

int bench_study_cuda_offload(const bench_options *o, bench_json *w)
{
    int device = 0;
    cudaStream_t stream = NULL;
    char reason[600];
    if (!open_device(o, &device, &stream, reason, sizeof reason)) {
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
    bench_cuda_describe(w, device);
    char timed[1200];
    snprintf(timed, sizeof timed,
             "CUDA events on the model's (compute) stream around a whole prefill (TTFT: every layer's "
             "GEMMs; for text-* formats each layer's K/V appended to its kvq_cuda_layer through kvq/kvq_cuda.h "
             "(kvq_cuda_layer_reset, then kvq_cuda_layer_append in chunks of %u tokens, fp32 rows) on a "
             "quantize stream while the compute stream runs the layer's attention and MLP, no host "
             "synchronisation but the append's staging slots (at most %u appends of a layer in flight); "
             "streamed layers' states (sizes.cache_bytes) copied to pinned host memory on a copy stream; "
             "the vocabulary projection; joined with both streams) and a whole decode step (TPOT: every "
             "layer's GEMMs and kvq_cuda_layer_attend of the model's query over the cache, streamed layers' "
             "states copied in on the copy stream into two staging buffers and the layer moved there with "
             "kvq_cuda_layer_move before its attend)",
             OFFLOAD_PREFILL_CHUNK, KVQ_CUDA_STAGING_SLOTS);
    bench_json_string(w, "timed", timed);
    char notes[2048];
    snprintf(notes, sizeof notes,
             "LLaVA-1.5-7B-like: %u layers, 32 heads of 128, hidden 4096, MLP 11008, vocabulary 32000, one layer's "
             "random fp16 weights shared by all layers; prompts of %u text tokens plus images; KV cache GPU budget "
             "%zu MiB (staging buffers inside it); prefill attention is full (non-causal) batched GEMMs; the decode "
             "step does not append its own token to the cache (its attention reads the prompt's); text-* formats "
             "run through the public device API only (kvq/kvq_cuda.h: append, attend, reset, move): one "
             "kvq_cuda_layer per model layer, one sequence of exactly the prompt's tokens, RoPE rotate-half base "
             "10000, default (fp16) profile; a layer's device memory is its sizes.cache_bytes (layer_device_bytes), "
             "and one work space (sizes.scratch_bytes, for %u-token appends) shared by every layer through "
             "kvq_cuda_layer_set_work_space counts against the budget too; layer_bytes and the capacity are "
             "sizes.cache_bytes, which reserves fp16 "
             "rows for the whole 10%% budget; a streamed layer's prefill brings in only the state before its "
             "sequence slot (cache_bytes - sequence_bytes: tables and error record), reset clears the slot; "
             "text-centric policy, 10%% fp16 budget, one sink, keys per channel in blocks of 128 tokens, values per "
             "token, no outliers",
             layers, TEXT_TOKENS, budget >> 20, OFFLOAD_PREFILL_CHUNK);
    bench_json_string(w, "notes", notes);
    const bool resume = o->resume_study != NULL && resumable(o->resume_study, budget);
    if (o->resume_study != NULL && !resume)
        fprintf(stderr, "kvq bench: " STUDY ": --resume: the stopped study had another budget or prefill chunk; "
                        "every row is measured again\n");
    bench_json_u64(w, "budget_bytes", budget);
    bench_json_u64(w, "prefill_chunk_tokens", OFFLOAD_PREFILL_CHUNK);
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
    bool ok = bench_model_create(&m, layers, max_n, stream);
    point_result res[N_FORMATS][8];
    memset(res, 0, sizeof res);
    /* --resume: how many rows were kept, and the ones this run measured (for "resumed"). */
    size_t kept = 0, measured = 0;
    char measured_rows[600] = "";
    bench_json_array(w, "results");
    for (size_t p = 0; ok && p < n_prompts; p++)
        for (size_t f = 0; ok && f < N_FORMATS; f++) {
            if (resume && resumed_point(o->resume_study, &formats[f], &prompts[p], &res[f][p])) {
                fprintf(stderr, "kvq bench: " STUDY ": %s, %u x %u image tokens: kept from the stopped run\n",
                        formats[f].name, prompts[p].images, prompts[p].tokens_per_image);
                write_row(w, &formats[f], &prompts[p], layers, &res[f][p], &res[0][p], o->resume_date);
                kept++;
                continue;
            }
            fprintf(stderr, "kvq bench: " STUDY ": %s, %u x %u image tokens\n", formats[f].name, prompts[p].images,
                    prompts[p].tokens_per_image);
            ok = measure(o, &m, &formats[f], &prompts[p], budget, &res[f][p]);
            if (ok) write_row(w, &formats[f], &prompts[p], layers, &res[f][p], &res[0][p], NULL);
            if (ok && resume) {
                size_t used = strlen(measured_rows);
                snprintf(measured_rows + used, sizeof measured_rows - used, "%s%s at %u x %u", measured++ ? ", " : "",
                         formats[f].name, prompts[p].images, prompts[p].tokens_per_image);
            }
        }
    bench_json_end(w);
    if (resume) {
        char resumed[900];
        snprintf(resumed, sizeof resumed,
                 "%zu rows (\"resumed_from\") were measured by the run of %s, stopped before its end, and kept by "
                 "--resume; %zu measured by this run: %s (a prompt's ratios may join rows of both runs)",
                 kept, o->resume_date != NULL ? o->resume_date : "?", measured, measured ? measured_rows : "none");
        bench_json_string(w, "resumed", resumed);
    }
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
    /* Capacity: cache bytes per token from the largest prompt's layer (sized for exactly its tokens). */
    size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) cudaGetLastError();
    bench_json_array(w, "capacity");
    for (size_t f = 0; ok && f < N_FORMATS; f++) {
        size_t p = n_prompts - 1u;
        uint32_t n = TEXT_TOKENS + prompts[p].images * prompts[p].tokens_per_image;
        double per_token = (double)res[f][p].state_bytes * layers / n;
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
    cudaStreamDestroy(stream);
    return ok ? 0 : 1;
}
