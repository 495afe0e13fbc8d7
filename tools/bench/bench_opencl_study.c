/*
 * bench_opencl_study.c - study (d): decode attention on the OpenCL backend for
 * the shapes of study (a), quantized formats against the backend's fp16
 * baseline through CLBlast (opencl_baseline.h), timed with OpenCL profiling
 * events. On PoCL with --quick it is the test of the whole bench pipeline.
 */
#include "bench_opencl.h"
#include "opencl_backend.h"
#include "opencl_baseline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ocl_study {
    const bench_options *o;
    const kvq_backend_api *api;
    kvq_backend_context *ctx;
    bench_json *w;
    double copy_gbs; /* median device-to-device copy bandwidth */
} ocl_study;

static int fail(ocl_study *s, const char *what)
{
    fprintf(stderr, "kvq bench: opencl: %s: %s\n", what, s->api->last_error(s->ctx));
    return 1;
}

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
    uint64_t mem = bench_ocl_global_mem(s->ctx);
    for (uint64_t c = 1024u; c <= (1u << 20) && n < capacity; c *= 4u) {
        if (s->o->max_context != 0 && c > s->o->max_context) break;
        if (c < s->o->min_context) continue;
        uint64_t per_token = (uint64_t)shape->n_kv * shape->head_dim * (12u + 3u);
        if (c * per_token > mem / 2u || c * shape->head_dim * 4u > s->ctx->max_alloc) break;
        out[n++] = (uint32_t)c;
    }
    return n;
}

/* The fp16 baseline of every KV head, timed as one span of queue work per
 * step (its attend takes host queries: the span includes their upload and the
 * download of the output, between two markers). */
static int time_baseline(ocl_study *s, const bench_shape *shape, uint32_t n, const float *kv, bench_stats *ms,
                         uint64_t *bytes)
{
    kvq_opencl_baseline **b = calloc(shape->n_kv, sizeof *b);
    float *q = malloc((size_t)shape->n_q * shape->head_dim * sizeof *q);
    float *out = malloc((size_t)shape->n_q * shape->head_dim * sizeof *out);
    double *samples = calloc(s->o->runs, sizeof *samples);
    int rc = b == NULL || q == NULL || out == NULL || samples == NULL;
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
    for (uint32_t r = 0; !rc && r < s->o->warmup + s->o->runs; r++) {
        cl_event first = NULL, last = NULL;
        if (clEnqueueMarkerWithWaitList(s->ctx->queue, 0, NULL, &first) != CL_SUCCESS) rc = 1;
        for (uint32_t h = 0; !rc && h < shape->n_kv; h++)
            if (kvq_opencl_baseline_attend(s->ctx, b[h], q, shape->n_q, out) != KVQ_OK)
                rc = fail(s, "fp16 baseline attend");
        if (!rc && clEnqueueMarkerWithWaitList(s->ctx->queue, 0, NULL, &last) != CL_SUCCESS) rc = 1;
        double t = 0.0;
        if (!rc && bench_ocl_span_ms(s->ctx, first, last, false, &t) != KVQ_OK) rc = fail(s, "baseline timing");
        if (!rc && r >= s->o->warmup) samples[r - s->o->warmup] = t;
        if (first != NULL) clReleaseEvent(first);
        if (last != NULL) clReleaseEvent(last);
    }
    if (!rc) *ms = bench_stats_of(samples, s->o->runs);
    for (uint32_t h = 0; b != NULL && h < shape->n_kv; h++) kvq_opencl_baseline_free(b[h]);
    free(b);
    free(q);
    free(out);
    free(samples);
    return rc;
}

/* One format at one context: quantize every KV head's keys and values with the
 * backend, then time the fused kernels over all heads as one span per step. */
static int time_format(ocl_study *s, const bench_shape *shape, const bench_format *f, uint32_t n, const float *kv,
                       bench_stats *ms, uint64_t *bytes)
{
    kvq_codebook codebook;
    kvq_head_config kc, vc;
    bench_format_configs(f, &codebook, &kc, &vc);
    kvq_backend_tensor **t = calloc(2u * shape->n_kv, sizeof *t);
    double *samples = calloc(s->o->runs, sizeof *samples);
    int rc = t == NULL || samples == NULL;
    if (rc) fprintf(stderr, "kvq bench: opencl: out of host memory\n");
    *bytes = 0;
    const float *keys = kv, *values = kv + (size_t)n * shape->head_dim;
    for (uint32_t h = 0; !rc && h < shape->n_kv; h++) {
        if (s->api->quantize_head(s->ctx, &kc, keys, n, shape->head_dim, NULL, &t[2u * h]) != KVQ_OK ||
            s->api->quantize_head(s->ctx, &vc, values, n, shape->head_dim, NULL, &t[2u * h + 1u]) != KVQ_OK) {
            rc = fail(s, f->name);
            break;
        }
        for (int i = 0; i < 2; i++) {
            kvq_qtensor header;
            if (s->api->tensor_info(s->ctx, t[2u * h + (uint32_t)i], &header) != KVQ_OK)
                rc = fail(s, "tensor_info");
            else
                *bytes += bench_qtensor_bytes(&header);
        }
    }
    bench_ocl_attention a;
    bool have_a = false;
    if (!rc) {
        if (bench_ocl_attention_init(s->ctx, n, shape->n_q, shape->head_dim, &a) != KVQ_OK)
            rc = fail(s, "attention inputs");
        else
            have_a = true;
    }
    for (uint32_t r = 0; !rc && r < s->o->warmup + s->o->runs; r++) {
        cl_event first = NULL, last = NULL;
        for (uint32_t h = 0; !rc && h < shape->n_kv; h++)
            if (bench_ocl_attention_enqueue(&a, t[2u * h], t[2u * h + 1u], h == 0 ? &first : NULL,
                                            h + 1u == shape->n_kv ? &last : NULL) != KVQ_OK)
                rc = fail(s, "attention kernels");
        double span = 0.0;
        if (!rc && bench_ocl_span_ms(s->ctx, first, last, true, &span) != KVQ_OK) rc = fail(s, "attention timing");
        if (!rc && r >= s->o->warmup) samples[r - s->o->warmup] = span;
        if (first != NULL) clReleaseEvent(first);
        if (last != NULL) clReleaseEvent(last);
    }
    if (!rc) *ms = bench_stats_of(samples, s->o->runs);
    if (have_a) bench_ocl_attention_release(&a);
    for (uint32_t i = 0; t != NULL && i < 2u * shape->n_kv; i++)
        if (t[i] != NULL) s->api->tensor_free(s->ctx, t[i]);
    free(t);
    free(samples);
    return rc;
}

static void write_row(ocl_study *s, const bench_shape *shape, const char *format, const bench_format *f,
                      const char *kind, uint32_t bits, uint32_t n, const bench_stats *ms, uint64_t bytes,
                      double baseline_ms)
{
    char label[96];
    snprintf(label, sizeof label, "%.40s %.50s", shape->name, format);
    bench_json *w = s->w;
    bench_json_object(w, NULL);
    bench_json_string(w, "label", label);
    bench_json_string(w, "shape", shape->name);
    bench_json_string(w, "format", format);
    bench_json_string(w, "kind", kind);
    bench_json_u64(w, "bits", bits);
    if (f != NULL) bench_json_format(w, f);
    bench_json_u64(w, "context", n);
    bench_json_stats(w, "time_ms", ms);
    bench_json_u64(w, "bytes_read", bytes);
    double gbs = ms->median > 0.0 ? (double)bytes / (ms->median * 1e6) : 0.0;
    bench_json_number(w, "bandwidth_gbs", gbs);
    bench_json_number(w, "copy_fraction", s->copy_gbs > 0.0 ? gbs / s->copy_gbs : 0.0);
    bench_json_number(w, "speedup_vs_fastest_fp16", ms->median > 0.0 ? baseline_ms / ms->median : 0.0);
    bench_json_end(w);
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
        bench_stats base;
        uint64_t base_bytes = 0;
        rc = time_baseline(s, shape, n, kv, &base, &base_bytes);
        if (rc == 0) write_row(s, shape, "fp16-clblast", NULL, "baseline", 16u, n, &base, base_bytes, base.median);
        for (size_t i = 0; i < n_formats && rc == 0; i++) {
            bench_stats ms;
            uint64_t bytes = 0;
            rc = time_format(s, shape, &formats[i], n, kv, &ms, &bytes);
            if (rc == 0)
                write_row(s, shape, formats[i].name, &formats[i], "kvq", formats[i].bits, n, &ms, bytes, base.median);
        }
        free(kv);
    }
    return rc;
}

int bench_study_opencl(const bench_options *o, bench_json *w)
{
    const char *key = bench_study_key(BENCH_ATTENTION_OPENCL);
    ocl_study s = {o, kvq_backend_opencl(), NULL, w, 0.0};
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
    if (bench_ocl_enable_profiling(s.ctx) != KVQ_OK) rc = fail(&s, "profiling queue");
    char driver[640];
    bench_ocl_driver(s.ctx, driver, sizeof driver);
    bench_json_string(w, "device", s.api->device_name(s.ctx));
    bench_json_string(w, "driver", driver);
    bench_json_string(w, "timed",
                      "kvq: OpenCL profiling events from the start of the first head's kvq_attention_partial to the "
                      "end of the last head's kvq_attention_combine (the backend's fused path, RoPE rotate-half on "
                      "pre-RoPE keys, inputs resident on the device); fp16-clblast: the span between two markers "
                      "around kvq_opencl_baseline_attend for every KV head, which includes uploading the queries "
                      "and downloading the output");
    bench_json_string(w, "bytes_read",
                      "kvq: the S4.4 arrays attention reads (codes, params, precision, fp16 rows "
                      "and slots, outliers); fp16: kvq_opencl_baseline_bytes");
    bench_stats copy = {0, 0, 0, 0};
    size_t copy_bytes = o->quick ? ((size_t)16u << 20) : ((size_t)512u << 20);
    if (rc == 0 && bench_ocl_copy_bandwidth(s.ctx, copy_bytes, o->warmup, o->runs, &copy) != KVQ_OK)
        rc = fail(&s, "copy bandwidth");
    s.copy_gbs = copy.median;
    bench_json_object(w, "copy_bandwidth_gbs");
    bench_json_u64(w, "buffer_bytes", copy_bytes);
    bench_json_string(w, "counts", "bytes read + bytes written per clEnqueueCopyBuffer");
    bench_json_stats(w, "gbs", &copy);
    bench_json_end(w);
    bench_json_plot(w, "Decode attention on OpenCL", "context", "context (tokens)", "time_ms.median",
                    "time per decode step, all heads (ms)", true, true);
    bench_json_columns(w, bench_attention_columns, bench_attention_column_count);
    bench_format formats[BENCH_MAX_FORMATS];
    size_t n_formats = bench_formats(o->quick, formats, BENCH_MAX_FORMATS);
    bench_json_array(w, "shapes");
    for (size_t i = 0; i < 2; i++) {
        bench_json_object(w, NULL);
        bench_json_string(w, "name", bench_shapes[i].name);
        bench_json_u64(w, "kv_heads", bench_shapes[i].n_kv);
        bench_json_u64(w, "query_heads_per_kv_head", bench_shapes[i].n_q);
        bench_json_u64(w, "head_dim", bench_shapes[i].head_dim);
        bench_json_end(w);
    }
    bench_json_end(w);
    bench_json_array(w, "results");
    for (size_t i = 0; i < 2 && rc == 0; i++) rc = sweep_shape(&s, &bench_shapes[i], formats, n_formats);
    bench_json_end(w);
    bench_json_string(w, "status", rc == 0 ? "ok" : "failed");
    bench_json_end(w);
    s.api->close(s.ctx);
    return rc;
}
