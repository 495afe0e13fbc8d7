/*
 * bench_cuda_attention.c - study (a): decode attention over a quantized cache
 * on CUDA for LLaMA-7B-like shapes, every format of bench_formats(), at
 * contexts from 1K tokens to the largest that fits (up to 1M), against fp16
 * decode attention through cuBLAS (cuda_baseline.h) and, where present,
 * PyTorch's scaled_dot_product_attention.
 *
 * Each format is quantized once per KV head at its largest context by the
 * backend (quantize_head); shorter contexts are prefixes of those tensors
 * (every array of a device view is token-major and online key blocks are 128
 * tokens, so a prefix of a multiple of 128 tokens is a valid view). The
 * backend's attention_decode uploads queries and downloads results on every
 * call; here the attention launcher (kvq_cuda_attention) is called directly
 * with everything resident, and CUDA events on the backend's stream time it.
 */
#include "bench_cuda.h"
#include "cuda_baseline.h"
#include "cuda_internal.h"

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
    int device = s->ctx->device;
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

typedef struct att_point {
    att_study *s;
    kvq_cuda_attention_args args;
} att_point;

static bool attention_step(void *user, cudaStream_t stream)
{
    att_point *p = user;
    return bench_cuda_ok(STUDY, kvq_cuda_attention(&p->args, stream), "kvq_cuda_attention");
}

/* Device buffers of one timed point, sized for the largest context. */
typedef struct att_buffers {
    kvq_cuda_seq *seqs; /* device [n_kv] */
    float *q, *out, *partial;
    double *theta;
    uint32_t *flags;
    size_t partial_floats;
} att_buffers;

static void buffers_free(att_buffers *b)
{
    cudaFree(b->seqs);
    cudaFree(b->q);
    cudaFree(b->out);
    cudaFree(b->partial);
    cudaFree(b->theta);
    cudaFree(b->flags);
    memset(b, 0, sizeof *b);
}

static bool buffers_make(att_study *s, const bench_shape *shape, uint32_t max_n, att_buffers *b)
{
    memset(b, 0, sizeof *b);
    uint32_t d = shape->head_dim, T = kvq_cuda_attention_tile(d);
    size_t q_count = (size_t)shape->n_kv * shape->n_q * d;
    /* At most ceil(max_n / T) splits per sequence (one tile per split). */
    size_t max_splits = (max_n + T - 1u) / T;
    b->partial_floats = (size_t)shape->n_kv * max_splits * shape->n_q * (d + 2u);
    float *q_host = malloc(q_count * sizeof *q_host);
    bool ok = q_host != NULL;
    if (!ok) fprintf(stderr, "kvq bench: " STUDY ": out of host memory\n");
    ok = ok && bench_cuda_ok(STUDY, cudaMalloc((void **)&b->seqs, shape->n_kv * sizeof *b->seqs), "descriptors") &&
         bench_cuda_ok(STUDY, cudaMalloc((void **)&b->q, q_count * sizeof(float)), "queries") &&
         bench_cuda_ok(STUDY, cudaMalloc((void **)&b->out, q_count * sizeof(float)), "output") &&
         bench_cuda_ok(STUDY, cudaMalloc((void **)&b->partial, b->partial_floats * sizeof(float)), "partials") &&
         bench_cuda_ok(STUDY, cudaMalloc((void **)&b->theta, d / 2u * sizeof(double)), "RoPE table") &&
         bench_cuda_ok(STUDY, cudaMalloc((void **)&b->flags, 16), "flags");
    if (ok) {
        bench_fill_random(q_host, q_count, 5u);
        ok = bench_cuda_ok(STUDY, cudaMemcpy(b->q, q_host, q_count * sizeof(float), cudaMemcpyHostToDevice),
                           "queries") &&
             bench_cuda_ok(STUDY,
                           cudaMemcpy(b->theta, cuda_rope_theta(s->ctx, 10000.0f, d), d / 2u * sizeof(double),
                                      cudaMemcpyHostToDevice),
                           "RoPE table") &&
             bench_cuda_ok(STUDY, cudaMemset(b->flags, 0, 16), "flags");
    }
    free(q_host);
    if (!ok) buffers_free(b);
    return ok;
}

/* Bytes attention reads for the first n tokens of a head slice (see
 * bench_qtensor_bytes): precision, codes, params, fp16 rows and slots,
 * outlier pointers, channels and values. `fp16_rows` and `outliers` count
 * the prefix's. */
static uint64_t view_bytes(const kvq_cuda_view *v, uint32_t n, uint64_t fp16_rows, uint64_t outliers)
{
    uint64_t params = v->layout == KVQ_CUDA_PARAMS_VALUES ? (uint64_t)n * (v->head_dim / v->group_size)
                      : v->layout == KVQ_CUDA_PARAMS_KEYS_ONLINE
                          ? (uint64_t)((n + v->group_size - 1u) / v->group_size) * v->head_dim
                          : v->head_dim;
    return (uint64_t)n + (uint64_t)n * v->row_words * 4u + params * 4u + fp16_rows * (v->head_dim * 2u + 4u) +
           ((uint64_t)n + 1u) * 4u + outliers * 4u;
}

/* fp16 rows and outliers among the first n tokens of t (downloaded from the device). */
static bool prefix_counts(const kvq_backend_tensor *t, uint32_t n, uint64_t *fp16_rows, uint64_t *outliers)
{
    uint8_t *precision = malloc(n > 0 ? n : 1u);
    uint32_t ptr[2] = {0, 0};
    bool ok =
        precision != NULL &&
        bench_cuda_ok(STUDY, cudaMemcpy(precision, t->view.precision, n, cudaMemcpyDeviceToHost), "precision") &&
        bench_cuda_ok(STUDY, cudaMemcpy(&ptr[0], t->view.optr, 4, cudaMemcpyDeviceToHost), "outlier pointers") &&
        bench_cuda_ok(STUDY, cudaMemcpy(&ptr[1], t->view.optr + n, 4, cudaMemcpyDeviceToHost), "outlier pointers");
    *fp16_rows = 0;
    for (uint32_t i = 0; ok && i < n; i++) *fp16_rows += precision[i] != KVQ_PREC_QUANTIZED;
    *outliers = ptr[1] - ptr[0];
    free(precision);
    return ok;
}

/* Times the first n tokens of every head's tensors (t[2h] keys, t[2h+1] values). */
static const char *kernel_name(kvq_cuda_attention_kernel k)
{
    return k == KVQ_CUDA_KERNEL_TC     ? "tensor-core (fp16 profile)"
           : k == KVQ_CUDA_KERNEL_FAST ? "fast (fp32)"
                                       : "general (fp32)";
}

/* Times the first n tokens with kernel `want` (automatic: the backend's choice); *kernel names
 * the one that ran, *ran its enum. A kernel asked for that does not fit the format, or that is
 * `already` (timed as the automatic choice), is not timed: *kernel stays NULL. */
static bool time_prefix(att_study *s, const bench_shape *shape, const bench_format *f, kvq_backend_tensor **t,
                        uint32_t n, att_buffers *b, kvq_cuda_attention_kernel want, kvq_cuda_attention_kernel already, bench_stats *ms,
                        uint64_t *bytes, const char **kernel, kvq_cuda_attention_kernel *ran)
{
    uint32_t d = shape->head_dim, n_kv = shape->n_kv, n_q = shape->n_q;
    const kvq_rope_pairing pairing = f->post_rope ? KVQ_ROPE_NONE : KVQ_ROPE_HALF;
    kvq_cuda_seq *desc = calloc(n_kv, sizeof *desc);
    if (desc == NULL) {
        fprintf(stderr, "kvq bench: " STUDY ": out of host memory\n");
        return false;
    }
    uint64_t rows_k = 0, rows_v = 0, out_k = 0, out_v = 0;
    bool ok = prefix_counts(t[0], n, &rows_k, &out_k) && prefix_counts(t[1], n, &rows_v, &out_v);
    uint32_t max_kw = 1, max_vw = 1;
    for (uint32_t h = 0; ok && h < n_kv; h++) {
        desc[h].keys = t[2u * h]->view;
        desc[h].values = t[2u * h + 1u]->view;
        desc[h].keys.n_tokens = desc[h].values.n_tokens = n;
        desc[h].positions = NULL; /* positions 0 .. n-1, computed on the device */
        desc[h].pos0 = 0;
        desc[h].q_position = n;
        desc[h].n_tokens = n;
        if (desc[h].keys.row_words > max_kw) max_kw = desc[h].keys.row_words;
        if (desc[h].values.row_words > max_vw) max_vw = desc[h].values.row_words;
    }
    /* The backend's split rule (kvq_cuda_attention_tokens_per_split), for the kernel asked for. */
    kvq_cuda_attention_args plan = {.theta = b->theta,
                                    .rope_step32 = cuda_rope_step32(s->ctx, 10000.0f, d),
                                    .seqs_host = desc,
                                    .pairing = pairing,
                                    .n_seq = n_kv,
                                    .n_q = n_q,
                                    .head_dim = d,
                                    .allow_fp16 = s->ctx->profile == KVQ_PROFILE_FP16 ? 1u : 0u,
                                    .kernel = (uint32_t)want};
    const uint32_t tps = kvq_cuda_attention_tokens_per_split(&plan, s->ctx->sm_count), splits = (n + tps - 1u) / tps;
    for (uint32_t h = 0; h < n_kv; h++) desc[h].n_splits = splits;
    /* Every head holds the same data (same input), so the counts of head 0 serve all. */
    *bytes = (uint64_t)n_kv * (view_bytes(&t[0]->view, n, rows_k, out_k) + view_bytes(&t[1]->view, n, rows_v, out_v));
    ok = ok &&
         bench_cuda_ok(STUDY, cudaMemcpy(b->seqs, desc, n_kv * sizeof *desc, cudaMemcpyHostToDevice), "descriptors");
    size_t partial_o = (size_t)n_kv * splits * n_q * d;
    att_point p = {s,
                   {.seqs = b->seqs,
                    .q = b->q,
                    .theta = b->theta,
                    .rope_step = cuda_rope_step(s->ctx, 10000.0f, d),
                    .rope_step32 = cuda_rope_step32(s->ctx, 10000.0f, d),
                    .seqs_host = desc,
                    .pairing = pairing,
                    .n_seq = n_kv,
                    .n_q = n_q,
                    .head_dim = d,
                    .tokens_per_split = tps,
                    .max_splits = splits,
                    .max_key_words = max_kw,
                    .max_value_words = max_vw,
                    .score_scale = (float)(1.4426950408889634 / sqrt((double)d)),
                    .partial_o = splits > 1u ? b->partial : NULL,
                    .partial_ml = splits > 1u ? b->partial + partial_o : NULL,
                    .out = b->out,
                    .flags = b->flags,
                    /* the backend's default profile decides which kernels may run (S12.4) */
                    .allow_fp16 = s->ctx->profile == KVQ_PROFILE_FP16 ? 1u : 0u,
                    .kernel = (uint32_t)want}};
    *ran = kvq_cuda_attention_kernel_for(&p.args);
    *kernel = NULL;
    bool wanted = want == KVQ_CUDA_KERNEL_AUTO || (*ran == want && *ran != already);
    ok = ok && (!wanted || bench_cuda_time(STUDY, s->ctx->stream, attention_step, &p, s->o, ms));
    if (ok && wanted) *kernel = kernel_name(*ran);
    free(desc);
    return ok;
}

/* One format: quantize every head at max_n tokens, time every context. */
static bool sweep_format(att_study *s, const bench_shape *shape, const bench_format *f, const uint32_t *ctxs,
                         size_t n_ctx, const float *kv, const double *fastest, att_buffers *b)
{
    uint32_t max_n = ctxs[n_ctx - 1u], d = shape->head_dim;
    kvq_codebook codebook;
    kvq_head_config kc, vc;
    bench_format_configs(f, &codebook, &kc, &vc);
    kvq_backend_tensor **t = calloc(2u * shape->n_kv, sizeof *t);
    bool ok = t != NULL;
    fprintf(stderr, "kvq bench: " STUDY ": %s %s: quantizing %u heads of %u tokens\n", shape->name, f->name,
            shape->n_kv, max_n);
    for (uint32_t h = 0; ok && h < shape->n_kv; h++) {
        if (s->api->quantize_head(s->ctx, &kc, kv, max_n, d, NULL, &t[2u * h]) != KVQ_OK ||
            s->api->quantize_head(s->ctx, &vc, kv + (size_t)max_n * d, max_n, d, NULL, &t[2u * h + 1u]) != KVQ_OK) {
            fprintf(stderr, "kvq bench: " STUDY ": quantizing %s: %s\n", f->name, s->api->last_error(s->ctx));
            ok = false;
        }
    }
    /* Every kernel that fits the format, the backend's automatic choice first (its row is "kvq"). */
    static const kvq_cuda_attention_kernel kernels[] = {KVQ_CUDA_KERNEL_AUTO, KVQ_CUDA_KERNEL_FAST, KVQ_CUDA_KERNEL_TC};
    for (size_t c = 0; ok && c < n_ctx; c++) {
        kvq_cuda_attention_kernel auto_ran = KVQ_CUDA_KERNEL_AUTO;
        for (size_t k = 0; ok && k < sizeof kernels / sizeof *kernels; k++) {
            bench_stats ms;
            uint64_t bytes = 0;
            const char *kernel = NULL;
            kvq_cuda_attention_kernel ran;
            ok = time_prefix(s, shape, f, t, ctxs[c], b, kernels[k], auto_ran, &ms, &bytes, &kernel, &ran);
            if (!ok || kernel == NULL) continue; /* did not fit, or already timed */
            if (k == 0) auto_ran = ran;
            write_row(s, shape, f->name, f, k == 0 ? "kvq" : "kvq-kernel", f->bits, ctxs[c], &ms, bytes, fastest[c],
                      kernel);
        }
    }
    for (uint32_t i = 0; t != NULL && i < 2u * shape->n_kv; i++)
        if (t[i] != NULL) s->api->tensor_free(s->ctx, t[i]);
    free(t);
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
    att_buffers b;
    memset(&b, 0, sizeof b);
    ok = ok && buffers_make(s, shape, max_n, &b);
    bench_format formats[BENCH_MAX_FORMATS];
    size_t n_formats = bench_formats(s->o->quick, formats, BENCH_MAX_FORMATS);
    n_formats = bench_formats_post_rope(formats, n_formats, BENCH_MAX_FORMATS);
    for (size_t i = 0; ok && i < n_formats; i++)
        if (bench_selected(s->o->formats, formats[i].name))
            ok = sweep_format(s, shape, &formats[i], ctxs, n_ctx, kv, fastest, &b);
    buffers_free(&b);
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
    bench_json_object(w, STUDY);
    bench_cuda_describe(w, s.ctx->device);
    bench_json_string(w, "timed",
                      "kvq: CUDA events on the backend's stream around kvq_cuda_attention (split and combine "
                      "kernels) for all KV heads in one launch, RoPE rotate-half applied to pre-RoPE keys (none to the *-post-rope formats' keys), queries "
                      "and tensors resident on the device (no host copies); fp16-cublas: kvq_cuda_baseline_time, "
                      "CUDA events around one step (two cuBLAS strided-batched GEMMs and a softmax kernel); "
                      "fp16-torch-sdpa: CUDA events around F.scaled_dot_product_attention");
    bench_json_string(w, "bytes_read",
                      "kvq: what the kernel reads for the context (codes, params, precision, fp16 "
                      "rows and slots, outlier pointers, channels, values) over all KV heads; fp16: "
                      "keys and values of all KV heads");
    size_t copy_bytes = o->quick ? ((size_t)64u << 20) : ((size_t)1u << 30);
    bench_stats copy = {0, 0, 0, 0};
    int rc = bench_cuda_copy_bandwidth(STUDY, s.ctx->device, copy_bytes, o, &copy) ? 0 : 1;
    s.copy_gbs = copy.median;
    bench_cuda_write_copy(w, copy_bytes, &copy);
    /* Resident blocks per SM of the tensor-core kernel at head_dim 128 (occupancy explains much of its speed). */
    bench_json_object(w, "tensor_core_blocks_per_sm");
    static const uint32_t tc_bits[] = {2u, 4u, 8u};
    for (size_t i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "d128_%ubit", tc_bits[i]);
        bench_json_number(w, key, (double)kvq_cuda_attention_tc_blocks_per_sm(128u, tc_bits[i]));
    }
    bench_json_end(w);
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
