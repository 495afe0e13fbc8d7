/*
 * bench_opencl_study.c - study (d): decode attention on the OpenCL backend for
 * the shapes of study (a), through the backend ABI only: every KV head of a
 * step in one attention_decode_batch, timed by the ABI's benchmarking slot
 * time_attention_decode_batch (inputs staged once, the device's clock), with
 * the device described by device_info and the bytes limit measured by
 * time_copy; against the backend's fp16 baseline through CLBlast
 * (opencl_baseline.h, timed the same way), and beside the CUDA backend's
 * attention_decode_batch (fp32 profile) through the same slot when this build
 * has it and a CUDA device opens. A backend without the slots is timed by the
 * host clock around attention_decode_batch, and the row says so. On PoCL with
 * --quick it is the test of the whole bench pipeline.
 */
#include "bench_slots.h"
#include "opencl_backend.h"
#include "opencl_baseline.h"

#include "kvq/kvq_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ocl_study {
    const bench_options *o;
    const kvq_backend_api *api;
    kvq_backend_context *ctx;
    bench_json *w;
    kvq_backend_device_info info; /* of the OpenCL device (device_info) */
    double copy_gbs; /* median device-to-device copy bandwidth */
    /* The CUDA backend through the ABI, when built and a device opens (else NULL, and why). */
    const kvq_backend_api *cuda;
    kvq_backend_context *cuda_ctx;
    bool cuda_same_device; /* the OpenCL device is the CUDA one: its copy bandwidth is CUDA's limit too */
    char cuda_note[600];
} ocl_study;

static int fail_with(const kvq_backend_api *api, kvq_backend_context *ctx, const char *what)
{
    fprintf(stderr, "kvq bench: opencl: %s (%s): %s\n", what, api->name, api->last_error(ctx));
    return 1;
}

static int fail(ocl_study *s, const char *what) { return fail_with(s->api, s->ctx, what); }

/* Contexts of the sweep: quick 256 and 1024; else 1K, 4K, ... while, per KV
 * head, the fp16 baseline (fp16 keys and values plus the fp32 scratch that
 * kvq_opencl_baseline keeps per baseline: 12 bytes per element) and an 8-bit
 * cache (about 3 bytes per element for keys and values) fit in half the
 * device memory, and one fp32 scratch buffer fits the largest allocation. */
static size_t contexts(const ocl_study *s, const bench_shape *shape, uint32_t *out, size_t capacity)
{
    size_t n = 0;
    if (s->o->quick) {
        out[n++] = 256u;
        out[n++] = 1024u;
        return n;
    }
    uint64_t mem = s->info.global_memory_bytes, max_alloc = s->info.max_allocation_bytes;
    for (uint64_t c = 1024u; c <= (1u << 20) && n < capacity; c *= 4u) {
        if (s->o->max_context != 0 && c > s->o->max_context) break;
        if (c < s->o->min_context) continue;
        uint64_t per_token = (uint64_t)shape->n_kv * shape->head_dim * (12u + 3u);
        if (c * per_token > mem / 2u || (max_alloc != 0 && c * shape->head_dim * 4u > max_alloc)) break;
        out[n++] = (uint32_t)c;
    }
    return n;
}

/* The fp16 baseline of every KV head: each head's device work timed on the device's clock with its
 * queries staged (kvq_opencl_baseline_time), a run's time the sum over the heads. */
static int time_baseline(ocl_study *s, const bench_shape *shape, uint32_t n, const float *kv, bench_stats *ms,
                         uint64_t *bytes)
{
    kvq_opencl_baseline **b = calloc(shape->n_kv, sizeof *b);
    float *q = malloc((size_t)shape->n_q * shape->head_dim * sizeof *q);
    float *out = malloc((size_t)shape->n_q * shape->head_dim * sizeof *out);
    double *samples = calloc(s->o->runs, sizeof *samples), *head_ms = calloc(s->o->runs, sizeof *head_ms);
    int rc = b == NULL || q == NULL || out == NULL || samples == NULL || head_ms == NULL;
    if (rc) fprintf(stderr, "kvq bench: opencl: baseline: out of host memory\n");
    if (!rc) bench_fill_random(q, (size_t)shape->n_q * shape->head_dim, 11u);
    *bytes = 0;
    for (uint32_t h = 0; !rc && h < shape->n_kv; h++) {
        if (kvq_opencl_baseline_create(s->ctx, KVQ_OPENCL_BASELINE_FP16, kv, kv + (size_t)n * shape->head_dim, n,
                                       shape->head_dim, &b[h]) != KVQ_OK)
            rc = fail(s, "fp16 baseline");
        else
            *bytes += kvq_opencl_baseline_bytes(b[h]);
    }
    for (uint32_t h = 0; !rc && h < shape->n_kv; h++) {
        kvq_backend_timing timing = {.struct_size = sizeof timing, .warmup = s->o->warmup, .runs = s->o->runs,
                                     .ms_host = head_ms};
        if (kvq_opencl_baseline_time(s->ctx, b[h], q, shape->n_q, out, &timing) != KVQ_OK)
            rc = fail(s, "fp16 baseline attend");
        for (uint32_t r = 0; !rc && r < s->o->runs; r++) samples[r] += head_ms[r];
    }
    if (!rc) *ms = bench_stats_of(samples, s->o->runs);
    for (uint32_t h = 0; b != NULL && h < shape->n_kv; h++) kvq_opencl_baseline_free(b[h]);
    free(b);
    free(q);
    free(out);
    free(samples);
    free(head_ms);
    return rc;
}

/* One format at one context on one backend: quantized by it, one step over every KV head timed
 * (bench_abi_step_time: the backend's timing slot, else the host clock). */
static int time_format(ocl_study *s, const kvq_backend_api *api, kvq_backend_context *ctx, const bench_shape *shape,
                       const bench_format *f, uint32_t n, const float *kv, bench_stats *ms, uint64_t *bytes,
                       char *kernel, size_t kernel_size)
{
    bench_abi_step step;
    if (bench_abi_step_make(api, ctx, shape, f, n, kv, kv + (size_t)n * shape->head_dim, "opencl", &step) != 0)
        return 1;
    const kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    int rc = bench_abi_step_time(&step, &rope, s->o, "opencl", ms, kernel, kernel_size);
    *bytes = step.bytes;
    bench_abi_step_free(&step);
    return rc;
}

/* One row of results. kind: "baseline" (fp16-clblast), "kvq" (the OpenCL backend) or "kvq-cuda"
 * (the CUDA backend beside it, kept out of the OpenCL targets); cuda_ms > 0 adds the OpenCL row's
 * time over CUDA's at the same point. */
typedef struct ocl_row {
    const char *format, *kind, *backend;
    char kernel[128];
    const bench_format *f;
    uint32_t bits, n;
    bench_stats ms;
    uint64_t bytes;
    double baseline_ms, cuda_ms;
    bool copy_limit_known;
} ocl_row;

static void write_row(ocl_study *s, const bench_shape *shape, const ocl_row *row)
{
    char label[128];
    snprintf(label, sizeof label, "%.40s %.50s%s", shape->name, row->format,
             strcmp(row->kind, "kvq-cuda") == 0 ? " (cuda)" : "");
    bench_json *w = s->w;
    const bench_stats *ms = &row->ms;
    bench_json_object(w, NULL);
    bench_json_string(w, "label", label);
    bench_json_string(w, "shape", shape->name);
    bench_json_string(w, "format", row->format);
    bench_json_string(w, "kind", row->kind);
    bench_json_string(w, "backend", row->backend);
    if (row->kernel[0] != '\0') bench_json_string(w, "kernel", row->kernel);
    bench_json_u64(w, "bits", row->bits);
    if (row->f != NULL) bench_json_format(w, row->f);
    bench_json_u64(w, "context", row->n);
    bench_json_stats(w, "time_ms", ms);
    bench_json_u64(w, "bytes_read", row->bytes);
    double gbs = ms->median > 0.0 ? (double)row->bytes / (ms->median * 1e6) : 0.0;
    bench_json_number(w, "bandwidth_gbs", gbs);
    /* The fraction of the bytes limit: bytes / time against the device's own copy bandwidth. */
    bench_json_number(w, "copy_fraction", row->copy_limit_known && s->copy_gbs > 0.0 ? gbs / s->copy_gbs : NAN);
    bench_json_number(w, "speedup_vs_fastest_fp16", ms->median > 0.0 ? row->baseline_ms / ms->median : 0.0);
    if (row->cuda_ms > 0.0) bench_json_number(w, "time_vs_cuda", ms->median / row->cuda_ms);
    bench_json_end(w);
    bench_checkpoint(w);
}

static int sweep_shape(ocl_study *s, const bench_shape *shape, const bench_format *formats, size_t n_formats)
{
    uint32_t ctxs[16];
    size_t n_ctx = contexts(s, shape, ctxs, 16);
    int rc = 0;
    for (size_t c = 0; c < n_ctx && rc == 0; c++) {
        uint32_t n = ctxs[c];
        float *kv = malloc((size_t)2u * n * shape->head_dim * sizeof *kv);
        if (kv == NULL) {
            fprintf(stderr, "kvq bench: opencl: %u tokens: out of host memory\n", n);
            return 1;
        }
        bench_fill_random(kv, (size_t)2u * n * shape->head_dim, n);
        fprintf(stderr, "kvq bench: opencl: %s, %u tokens\n", shape->name, n);
        ocl_row base = {"fp16-clblast", "baseline", "opencl", "", NULL, 16u, n, {0, 0, 0, 0}, 0, 0.0, 0.0, true};
        rc = time_baseline(s, shape, n, kv, &base.ms, &base.bytes);
        base.baseline_ms = base.ms.median;
        if (rc == 0) write_row(s, shape, &base);
        for (size_t i = 0; i < n_formats && rc == 0; i++) {
            const bench_format *f = &formats[i];
            ocl_row cuda = {f->name, "kvq-cuda", "cuda", "", f, f->bits, n, {0, 0, 0, 0}, 0, base.ms.median, 0.0,
                            s->cuda_same_device};
            if (s->cuda != NULL)
                rc = time_format(s, s->cuda, s->cuda_ctx, shape, f, n, kv, &cuda.ms, &cuda.bytes, cuda.kernel,
                                 sizeof cuda.kernel);
            ocl_row row = {f->name, "kvq", "opencl", "", f, f->bits, n, {0, 0, 0, 0}, 0, base.ms.median,
                           s->cuda != NULL ? cuda.ms.median : 0.0, true};
            if (rc == 0)
                rc = time_format(s, s->api, s->ctx, shape, f, n, kv, &row.ms, &row.bytes, row.kernel, sizeof row.kernel);
            if (rc == 0) write_row(s, shape, &row);
            if (rc == 0 && s->cuda != NULL) write_row(s, shape, &cuda);
        }
        free(kv);
    }
    return rc;
}

/* The CUDA backend beside OpenCL, through the ABI only, judged at the fp32 profile (S12.4). */
static void open_cuda(ocl_study *s)
{
    char message[512] = "";
    const kvq_backend_api *api = NULL;
    if (kvq_backend_find("cuda", &api, message, sizeof message) != KVQ_OK) {
        snprintf(s->cuda_note, sizeof s->cuda_note, "CUDA not measured: %s", message);
        return;
    }
    kvq_backend_options opts = {sizeof opts, -1, -1, KVQ_PROFILE_FP32};
    if (api->open(&opts, &s->cuda_ctx, message, sizeof message) != KVQ_OK) {
        snprintf(s->cuda_note, sizeof s->cuda_note, "CUDA not measured: no device (%s)", message);
        s->cuda_ctx = NULL;
        return;
    }
    s->cuda = api;
    /* Both names start with the device's own ("NVIDIA H200 (...)"). */
    const char *a = api->device_name(s->cuda_ctx), *b = s->api->device_name(s->ctx);
    const char *end = strstr(a, " (");
    size_t len = end != NULL ? (size_t)(end - a) : strlen(a);
    s->cuda_same_device = len > 0 && strncmp(a, b, len) == 0 && (b[len] == ' ' || b[len] == '\0');
    snprintf(s->cuda_note, sizeof s->cuda_note,
             "rows of kind kvq-cuda: the CUDA backend on %.200s through the same ABI slot, timed the same way%s", a,
             s->cuda_same_device ? "" : "; not the OpenCL device, so their copy_fraction is not given");
}

int bench_study_opencl(const bench_options *o, bench_json *w)
{
    const char *key = bench_study_key(BENCH_ATTENTION_OPENCL);
    ocl_study s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.api = kvq_backend_opencl();
    s.w = w;
    char message[512] = "";
    kvq_backend_options opts = {sizeof opts, o->platform, o->device, -1};
    if (s.api->open(&opts, &s.ctx, message, sizeof message) != KVQ_OK) {
        fprintf(stderr, "kvq bench: opencl: no device: %s\n", message);
        char reason[600];
        snprintf(reason, sizeof reason, "no OpenCL device: %s", message);
        bench_json_skipped(w, key, reason);
        return 0;
    }
    int rc = 0;
    bench_json_object(w, key);
    s.info.struct_size = sizeof s.info;
    if (!KVQ_BACKEND_API_HAS(s.api, device_info) || !KVQ_BACKEND_API_HAS(s.api, time_copy)) {
        fprintf(stderr, "kvq bench: opencl: the backend has no device_info / time_copy slots\n");
        rc = 1;
    } else if (s.api->device_info(s.ctx, &s.info) != KVQ_OK) {
        rc = fail(&s, "device_info");
    }
    bench_json_string(w, "device", s.api->device_name(s.ctx));
    bench_json_string(w, "driver", s.info.driver);
    bench_json_string(w, "timed",
                      "the device's clock, through the ABI's benchmarking slots. kvq: "
                      "time_attention_decode_batch, one attention_decode_batch step for every KV head with its "
                      "inputs staged once (queries rotated and uploaded, descriptors, RoPE data; RoPE rotate-half "
                      "on pre-RoPE keys at consecutive positions) and only its device work repeated and timed; "
                      "fp16-clblast: kvq_opencl_baseline_time for every KV head, each with its queries staged, "
                      "a step's time the sum over the heads");
    bench_json_string(w, "bytes_read",
                      "kvq: the S4.4 arrays attention reads (codes, params, precision, fp16 rows "
                      "and slots, outliers); fp16: kvq_opencl_baseline_bytes");
    bench_stats copy = {0, 0, 0, 0};
    size_t copy_bytes = o->quick ? ((size_t)16u << 20) : ((size_t)512u << 20);
    if (s.info.max_allocation_bytes != 0 && copy_bytes > s.info.max_allocation_bytes)
        copy_bytes = (size_t)s.info.max_allocation_bytes;
    if (rc == 0 && bench_copy_bandwidth(s.api, s.ctx, copy_bytes, o, &copy) != KVQ_OK)
        rc = fail(&s, "time_copy");
    s.copy_gbs = copy.median;
    bench_json_object(w, "copy_bandwidth_gbs");
    bench_json_u64(w, "buffer_bytes", copy_bytes);
    bench_json_string(w, "counts", "bytes read + bytes written per copy (time_copy: clEnqueueCopyBuffer)");
    bench_json_stats(w, "gbs", &copy);
    bench_json_end(w);
    open_cuda(&s);
    bench_json_string(w, "notes", s.cuda_note);
    bench_json_plot(w, "Decode attention on OpenCL", "context", "context (tokens)", "time_ms.median",
                    "time per decode step, all heads (ms)", true, true);
    static const char *const columns[][2] = {
        {"shape", "shape"},
        {"format", "format"},
        {"backend", "backend"},
        {"kernel", "kvq kernel"},
        {"context", "tokens"},
        {"time_ms.median", "median ms"},
        {"time_ms.min", "min ms"},
        {"time_ms.max", "max ms"},
        {"bytes_read", "bytes read"},
        {"bandwidth_gbs", "GB/s"},
        {"copy_fraction", "of copy bw"},
        {"speedup_vs_fastest_fp16", "speedup vs fp16-clblast"},
        {"time_vs_cuda", "time / CUDA's"},
    };
    bench_json_columns(w, columns, sizeof columns / sizeof *columns);
    /* --formats and --shapes choose among the study's formats and its two shapes, as in study (a). */
    bench_format all[BENCH_MAX_FORMATS], formats[BENCH_MAX_FORMATS];
    size_t n_all = bench_formats(o->quick, all, BENCH_MAX_FORMATS), n_formats = 0;
    for (size_t i = 0; i < n_all; i++)
        if (bench_selected(o->formats, all[i].name)) formats[n_formats++] = all[i];
    bench_json_array(w, "shapes");
    for (size_t i = 0; i < 2; i++) {
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
    for (size_t i = 0; i < 2 && rc == 0; i++)
        if (bench_selected(o->shapes, bench_shapes[i].name)) rc = sweep_shape(&s, &bench_shapes[i], formats, n_formats);
    bench_json_end(w);
    bench_json_string(w, "status", rc == 0 ? "ok" : "failed");
    bench_json_end(w);
    if (s.cuda != NULL) s.cuda->close(s.cuda_ctx);
    s.api->close(s.ctx);
    return rc;
}
