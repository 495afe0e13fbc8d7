/*
 * bench_cuda_attention.c - study (a): decode attention over a quantized cache
 * on CUDA for LLaMA-7B-like shapes, every format of bench_formats() (and their
 * post-RoPE variants), at contexts from 1K tokens to the largest that fits (up
 * to 1M), against fp16 decode attention through cuBLAS (cuda_baseline.h),
 * PyTorch's scaled_dot_product_attention and, where asked for, FlashInfer.
 *
 * kvq is reached through the backend ABI alone (kvq_backend.h), as a plugin
 * would be: at each context every KV head's keys and values are quantized by
 * the backend (quantize_head), and one decode step over all heads is timed by
 * time_attention_decode_batch (its inputs staged once, CUDA events around the
 * attention launches; bench_slots.h). Beside the backend's own kernel choice
 * (the row "kvq") the other kernels that fit the format are timed through the
 * backend's test hook KVQ_CUDA_ATTENTION (fast, tc), set around the call
 * (rows "kvq-kernel").
 */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv: the backend's kernel hook */
#include "bench_cuda.h"
#include "bench_slots.h"
#include "cuda_baseline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUDY "attention_cuda"
#define MAX_CONTEXTS 16u

typedef struct att_study {
    const bench_options *o;
    const kvq_backend_api *api;
    kvq_backend_context *ctx;
    int device; /* the CUDA device of ctx (o->device, else the backend's default, 0) */
    bench_json *w;
    double copy_gbs;
    char torch_note[320]; /* why PyTorch was not measured, if it was not */
    char flashinfer_note[320]; /* why FlashInfer (or one of its formats) was not measured */
} att_study;

/* Contexts of a shape: 1K, 4K, 16K, 32K, 64K, 128K, 256K, 512K, 1M (quick: 1K,
 * 4K), those whose fp16 baseline fits in 70% of free memory (the quantized
 * formats are smaller, so they fit wherever the baseline does). */
static size_t contexts(const att_study *s, const bench_shape *shape, uint32_t *out)
{
    static const uint32_t all[] = {1024u, 4096u, 16384u, 32768u, 65536u, 131072u, 262144u, 524288u, 1048576u};
    size_t free_bytes = 0, total = 0, n = 0;
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) cudaGetLastError();
    for (size_t i = 0; i < sizeof all / sizeof *all && n < MAX_CONTEXTS; i++) {
        uint32_t c = all[i];
        if (s->o->quick && c > 4096u) break;
        if (s->o->max_context != 0 && c > s->o->max_context) break;
        if (c < s->o->min_context) continue;
        double fp16 = 4.0 * c * shape->n_kv * shape->head_dim + 8.0 * c * shape->n_kv * shape->n_q;
        if (fp16 > 0.7 * (double)free_bytes) break;
        out[n++] = c;
    }
    return n;
}

/* ---- the fp16 baselines --------------------------------------------------- */

/* cuBLAS fp16 decode attention of every KV head at n tokens; per-run samples
 * from kvq_cuda_baseline_time(1) (device events around one step each). */
static bool time_cublas(att_study *s, const bench_shape *shape, uint32_t n, const uint16_t *kv_fp16, bench_stats *ms)
{
    kvq_cuda_baseline_shape bs = {shape->n_kv, n, shape->head_dim, shape->n_q};
    kvq_cuda_baseline *b = NULL;
    char message[512] = "";
    int device = s->device;
    size_t q_count = (size_t)shape->n_kv * shape->n_q * shape->head_dim;
    float *q = malloc(q_count * sizeof *q), *out = malloc(q_count * sizeof *out);
    double *samples = calloc(s->o->runs, sizeof *samples);
    bool ok = q != NULL && out != NULL && samples != NULL;
    if (!ok) fprintf(stderr, "kvq bench: " STUDY ": out of host memory\n");
    if (ok && kvq_cuda_baseline_create(device, &bs, &b, message, sizeof message) != KVQ_OK) {
        fprintf(stderr, "kvq bench: " STUDY ": cuBLAS baseline at %u tokens: %s\n", n, message);
        ok = false;
    }
    if (ok) bench_fill_random(q, q_count, 3u);
    size_t half = (size_t)shape->n_kv * n * shape->head_dim;
    if (ok && (kvq_cuda_baseline_set_kv(b, kv_fp16, kv_fp16 + half) != KVQ_OK ||
               kvq_cuda_baseline_attend(b, q, out) != KVQ_OK)) {
        fprintf(stderr, "kvq bench: " STUDY ": cuBLAS baseline at %u tokens: %s\n", n, kvq_cuda_baseline_last_error(b));
        ok = false;
    }
    for (uint32_t r = 0; ok && r < s->o->runs; r++) {
        double t = 0.0;
        /* Each call runs one untimed step, then one timed step. */
        if (kvq_cuda_baseline_time(b, 1u, &t) != KVQ_OK) {
            fprintf(stderr, "kvq bench: " STUDY ": cuBLAS baseline timing: %s\n", kvq_cuda_baseline_last_error(b));
            ok = false;
        }
        samples[r] = t;
    }
    if (ok) *ms = bench_stats_of(samples, s->o->runs);
    kvq_cuda_baseline_free(b);
    free(q);
    free(out);
    free(samples);
    return ok;
}

static void write_row(att_study *s, const bench_shape *shape, const char *format, const bench_format *f,
                      const char *kind, uint32_t bits, uint32_t n, const bench_stats *ms, uint64_t bytes,
                      double fastest_fp16_ms, const char *kernel)
{
    char label[96];
    snprintf(label, sizeof label, "%.40s %.50s", shape->name, format);
    bench_json *w = s->w;
    bench_json_object(w, NULL);
    bench_json_string(w, "label", label);
    bench_json_string(w, "shape", shape->name);
    bench_json_string(w, "format", format);
    bench_json_string(w, "kind", kind);
    if (kernel != NULL) bench_json_string(w, "kernel", kernel); /* which kvq kernel ran: fast or general */
    bench_json_u64(w, "bits", bits);
    if (f != NULL) bench_json_format(w, f);
    bench_json_u64(w, "context", n);
    bench_json_stats(w, "time_ms", ms);
    bench_json_u64(w, "bytes_read", bytes);
    double gbs = ms->median > 0.0 ? (double)bytes / (ms->median * 1e6) : 0.0;
    bench_json_number(w, "bandwidth_gbs", gbs);
    bench_json_number(w, "copy_fraction", s->copy_gbs > 0.0 ? gbs / s->copy_gbs : 0.0);
    bench_json_number(w, "speedup_vs_fastest_fp16", ms->median > 0.0 ? fastest_fp16_ms / ms->median : 0.0);
    bench_json_end(w);
    bench_checkpoint(w);
}

/* ---- the quantized cache -------------------------------------------------- */

/* The kernels timed for a format: the backend's choice, then the others through its hook. */
typedef struct att_kernel {
    const char *hook;   /* KVQ_CUDA_ATTENTION's value, NULL: unset (the backend's choice) */
    const char *prefix; /* how the backend's words for that kernel start */
} att_kernel;
static const att_kernel att_kernels[] = {{NULL, ""}, {"fast", "fast"}, {"tc", "tensor-core"}};

/* Times the step with the hook set to `hook` (NULL: as the caller had it); the caller's value is
 * put back afterwards. */
static int time_with_hook(att_study *s, bench_abi_step *step, const kvq_rope *rope, const char *hook, bench_stats *ms,
                          char *kernel, size_t kernel_size)
{
    const char *had = getenv("KVQ_CUDA_ATTENTION");
    char saved[32] = "";
    if (had != NULL) snprintf(saved, sizeof saved, "%s", had);
    if (hook != NULL) setenv("KVQ_CUDA_ATTENTION", hook, 1);
    int rc = bench_abi_step_time(step, rope, s->o, STUDY, ms, kernel, kernel_size);
    if (hook != NULL) {
        if (had != NULL)
            setenv("KVQ_CUDA_ATTENTION", saved, 1);
        else
            unsetenv("KVQ_CUDA_ATTENTION");
    }
    return rc;
}

/* One format at every context: quantized by the backend at each, every kernel that fits timed. */
static bool sweep_format(att_study *s, const bench_shape *shape, const bench_format *f, const uint32_t *ctxs,
                         size_t n_ctx, const float *kv, uint32_t max_n, const double *fastest)
{
    const kvq_rope rope = {f->post_rope ? KVQ_ROPE_NONE : KVQ_ROPE_HALF, 10000.0f};
    const float *keys = kv, *values = kv + (size_t)max_n * shape->head_dim;
    bool ok = true;
    for (size_t c = 0; ok && c < n_ctx; c++) {
        fprintf(stderr, "kvq bench: " STUDY ": %s %s: quantizing %u heads of %u tokens\n", shape->name, f->name,
                shape->n_kv, ctxs[c]);
        bench_abi_step step;
        ok = bench_abi_step_make(s->api, s->ctx, shape, f, ctxs[c], keys, values, STUDY, &step) == 0;
        char chosen[128] = "";
        for (size_t k = 0; ok && k < sizeof att_kernels / sizeof *att_kernels; k++) {
            bench_stats ms;
            char kernel[128] = "";
            ok = time_with_hook(s, &step, &rope, att_kernels[k].hook, &ms, kernel, sizeof kernel) == 0;
            if (!ok) break;
            if (k == 0) {
                snprintf(chosen, sizeof chosen, "%s", kernel);
            } else if (strncmp(kernel, att_kernels[k].prefix, strlen(att_kernels[k].prefix)) != 0 ||
                       strncmp(kernel, chosen, strlen(att_kernels[k].prefix)) == 0) {
                continue; /* the kernel does not fit the format (the backend fell back), or it is its choice */
            }
            write_row(s, shape, f->name, f, k == 0 ? "kvq" : "kvq-kernel", f->bits, ctxs[c], &ms, step.bytes,
                      fastest[c], kernel);
        }
        if (step.tensors != NULL) bench_abi_step_free(&step);
    }
    return ok;
}

static bool sweep_shape(att_study *s, const bench_shape *shape)
{
    uint32_t ctxs[MAX_CONTEXTS];
    size_t n_ctx = contexts(s, shape, ctxs);
    if (n_ctx == 0) {
        fprintf(stderr, "kvq bench: " STUDY ": %s: not even 1024 tokens fit in device memory\n", shape->name);
        return false;
    }
    uint32_t max_n = ctxs[n_ctx - 1u], d = shape->head_dim;
    /* Host inputs: fp32 keys and values of one head (every head quantizes the
     * same rows), and fp16 keys and values of all heads for the baseline, made
     * by repeating one random block (the values do not change the work). */
    size_t head = (size_t)max_n * d, all = head * shape->n_kv;
    float *kv = malloc(2u * head * sizeof *kv);
    uint16_t *kv16 = malloc(2u * all * sizeof *kv16);
    bool ok = kv != NULL && kv16 != NULL;
    if (!ok) fprintf(stderr, "kvq bench: " STUDY ": %s: out of host memory for %u tokens\n", shape->name, max_n);
    if (ok) {
        bench_fill_random(kv, 2u * head, 1u);
        size_t block = 2u * head < ((size_t)1 << 20) ? 2u * head : ((size_t)1 << 20);
        for (size_t i = 0; i < block; i++) kv16[i] = kvq_fp16_from_fp32(kv[i]);
        for (size_t i = block; i < 2u * all; i += block)
            memcpy(kv16 + i, kv16, (2u * all - i < block ? 2u * all - i : block) * 2u);
    }
    double fastest[MAX_CONTEXTS];
    for (size_t c = 0; ok && c < n_ctx; c++) {
        bench_stats cublas, torch;
        fprintf(stderr, "kvq bench: " STUDY ": %s fp16 baselines at %u tokens\n", shape->name, ctxs[c]);
        ok = time_cublas(s, shape, ctxs[c], kv16, &cublas);
        if (!ok) break;
        write_row(s, shape, "fp16-cublas", NULL, "baseline", 16u, ctxs[c], &cublas, 4ull * ctxs[c] * shape->n_kv * d,
                  cublas.median, NULL);
        fastest[c] = cublas.median;
        char why[320];
        if (bench_torch_baseline(s->o, shape, ctxs[c], &torch, why, sizeof why)) {
            if (torch.median < fastest[c]) fastest[c] = torch.median;
            write_row(s, shape, "fp16-torch-sdpa", NULL, "baseline", 16u, ctxs[c], &torch,
                      4ull * ctxs[c] * shape->n_kv * d, fastest[c], NULL);
        } else if (s->torch_note[0] == '\0') {
            snprintf(s->torch_note, sizeof s->torch_note, "%s", why);
        }
        bench_baseline fi[2];
        size_t n_fi = bench_flashinfer_baselines(s->o, shape, ctxs[c], fi, 2, why, sizeof why);
        if (why[0] != '\0' && s->flashinfer_note[0] == '\0')
            snprintf(s->flashinfer_note, sizeof s->flashinfer_note, "%s", why);
        for (size_t i = 0; i < n_fi; i++) {
            bool fp16 = strncmp(fi[i].format, "fp16", 4) == 0;
            if (fp16 && fi[i].ms.median < fastest[c]) fastest[c] = fi[i].ms.median;
            write_row(s, shape, fi[i].format, NULL, "baseline", fp16 ? 16u : 8u, ctxs[c], &fi[i].ms, fi[i].bytes_read,
                      fastest[c], NULL);
        }
    }
    free(kv16);
    bench_format formats[BENCH_MAX_FORMATS];
    size_t n_formats = bench_formats(s->o->quick, formats, BENCH_MAX_FORMATS);
    n_formats = bench_formats_post_rope(formats, n_formats, BENCH_MAX_FORMATS);
    for (size_t i = 0; ok && i < n_formats; i++)
        if (bench_selected(s->o->formats, formats[i].name))
            ok = sweep_format(s, shape, &formats[i], ctxs, n_ctx, kv, max_n, fastest);
    free(kv);
    return ok;
}

int bench_study_cuda_attention(const bench_options *o, bench_json *w)
{
    att_study s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.w = w;
    char reason[600];
    if (!bench_cuda_open(STUDY, o, &s.api, &s.ctx, reason, sizeof reason)) {
        bench_json_skipped(w, STUDY, reason);
        return 0;
    }
    s.device = o->device >= 0 ? o->device : 0; /* the CUDA backend opens device 0 by default */
    bench_json_object(w, STUDY);
    bench_cuda_describe(w, s.device);
    bench_json_string(w, "timed",
                      "kvq: through the backend ABI, time_attention_decode_batch: one attention_decode_batch step "
                      "of every KV head with its inputs staged once (queries, descriptors, RoPE tables on the "
                      "device) and only its launches (split and combine kernels, all KV heads in one launch) "
                      "repeated, each between CUDA events on the backend's stream; RoPE rotate-half on pre-RoPE "
                      "keys (none on the *-post-rope formats' keys); the tensors quantized by the backend at each "
                      "context (quantize_head); kvq-kernel rows: the other kernels that fit, through the backend's "
                      "hook KVQ_CUDA_ATTENTION; fp16-cublas: kvq_cuda_baseline_time, CUDA events around one step "
                      "(two cuBLAS strided-batched GEMMs and a softmax kernel); fp16-torch-sdpa: CUDA events around "
                      "F.scaled_dot_product_attention");
    bench_json_string(w, "bytes_read",
                      "kvq: the S4.4 arrays of every KV head's keys and values that attention reads (codes, params, "
                      "precision, fp16 rows and slots, outliers; tensor_info, bench_qtensor_bytes); fp16: keys and "
                      "values of all KV heads");
    size_t copy_bytes = o->quick ? ((size_t)64u << 20) : ((size_t)1u << 30);
    bench_stats copy = {0, 0, 0, 0};
    int rc = 0;
    if (bench_copy_bandwidth(s.api, s.ctx, copy_bytes, o, &copy) != KVQ_OK) {
        fprintf(stderr, "kvq bench: " STUDY ": time_copy: %s\n", s.api->last_error(s.ctx));
        rc = 1;
    }
    s.copy_gbs = copy.median;
    bench_cuda_write_copy(w, copy_bytes, &copy);
    bench_json_plot(w, "Decode attention on CUDA", "context", "context (tokens)", "time_ms.median",
                    "time per decode step, all heads (ms)", true, true);
    bench_json_columns(w, bench_attention_columns, bench_attention_column_count);
    bench_json_array(w, "shapes");
    for (size_t i = 0; i < BENCH_SHAPE_COUNT; i++) {
        if (!bench_selected(o->shapes, bench_shapes[i].name)) continue;
        bench_json_object(w, NULL);
        bench_json_string(w, "name", bench_shapes[i].name);
        bench_json_u64(w, "kv_heads", bench_shapes[i].n_kv);
        bench_json_u64(w, "query_heads_per_kv_head", bench_shapes[i].n_q);
        bench_json_u64(w, "head_dim", bench_shapes[i].head_dim);
        bench_json_end(w);
    }
    bench_json_end(w);
    bench_json_array(w, "results");
    for (size_t i = 0; i < BENCH_SHAPE_COUNT && rc == 0; i++)
        if (bench_selected(o->shapes, bench_shapes[i].name)) rc = sweep_shape(&s, &bench_shapes[i]) ? 0 : 1;
    bench_json_end(w);
    bench_json_string(w, "pytorch", s.torch_note[0] != '\0' ? s.torch_note : "measured (rows fp16-torch-sdpa)");
    bench_json_string(w, "flashinfer",
                      s.flashinfer_note[0] != '\0' ? s.flashinfer_note
                                                   : "measured (rows fp16-flashinfer, fp8-e4m3-flashinfer)");
    bench_json_string(w, "status", rc == 0 ? "ok" : "failed");
    bench_json_end(w);
    s.api->close(s.ctx);
    return rc;
}
