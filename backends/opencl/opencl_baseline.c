/*
 * opencl_baseline.c - unquantized fp32 / fp16-stored decode attention through
 * CLBlast (see opencl_baseline.h).
 */
#include "opencl_baseline.h"

#include "ocl_internal.h"

#include <clblast_c.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kvq_opencl_baseline {
    kvq_opencl_baseline_storage storage;
    uint32_t n_tokens, head_dim;
    cl_mem keys, values;     /* as stored: fp32 or fp16 bits */
    cl_mem keys32, values32; /* fp16 storage: fp32 scratch widened per call; else NULL */
};

void kvq_opencl_baseline_free(kvq_opencl_baseline *b)
{
    if (b == NULL) return;
    ocl_release(&b->keys);
    ocl_release(&b->values);
    ocl_release(&b->keys32);
    ocl_release(&b->values32);
    free(b);
}

size_t kvq_opencl_baseline_bytes(const kvq_opencl_baseline *b)
{
    if (b == NULL) return 0;
    size_t element = b->storage == KVQ_OPENCL_BASELINE_FP16 ? sizeof(uint16_t) : sizeof(float);
    return 2u * (size_t)b->n_tokens * b->head_dim * element;
}

/* One device copy of x in the chosen storage. */
static kvq_status store(kvq_backend_context *ctx, kvq_opencl_baseline_storage storage, const float *x, size_t count,
                        cl_mem *out, const char *what)
{
    if (storage == KVQ_OPENCL_BASELINE_FP32) return ocl_buffer(ctx, count * sizeof(float), x, false, out, what);
    uint16_t *h = malloc(count * sizeof *h);
    if (h == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    for (size_t i = 0; i < count; i++) h[i] = kvq_fp16_from_fp32(x[i]);
    kvq_status st = ocl_buffer(ctx, count * sizeof *h, h, false, out, what);
    free(h);
    return st;
}

kvq_status kvq_opencl_baseline_create(kvq_backend_context *ctx, kvq_opencl_baseline_storage storage,
                                      const float *keys_host, const float *values_host, uint32_t n_tokens,
                                      uint32_t head_dim, kvq_opencl_baseline **out)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    if (keys_host == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (values_host == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    if (out == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (storage != KVQ_OPENCL_BASELINE_FP32 && storage != KVQ_OPENCL_BASELINE_FP16)
        return ocl_fail(ctx, KVQ_ERR_BAD_ENUM, "storage = %d is not a kvq_opencl_baseline_storage", (int)storage);
    if (n_tokens == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "n_tokens is 0");
    if (head_dim == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "head_dim is 0");
    if (head_dim > KVQ_MAX_HEAD_DIM || n_tokens > KVQ_MAX_TOKENS)
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "%u tokens of head_dim %u exceed kvq's limits (S1.4)", n_tokens,
                        head_dim);
    size_t count = (size_t)n_tokens * head_dim;
    kvq_status st = ocl_check_finite(ctx, keys_host, count, "keys");
    if (st == KVQ_OK) st = ocl_check_finite(ctx, values_host, count, "values");
    if (st != KVQ_OK) return st;
    kvq_opencl_baseline *b = calloc(1, sizeof *b);
    if (b == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "baseline: out of memory");
    b->storage = storage;
    b->n_tokens = n_tokens;
    b->head_dim = head_dim;
    st = store(ctx, storage, keys_host, count, &b->keys, "baseline keys");
    if (st == KVQ_OK) st = store(ctx, storage, values_host, count, &b->values, "baseline values");
    if (st == KVQ_OK && storage == KVQ_OPENCL_BASELINE_FP16) {
        st = ocl_buffer(ctx, count * sizeof(float), NULL, false, &b->keys32, "baseline key scratch");
        if (st == KVQ_OK) st = ocl_buffer(ctx, count * sizeof(float), NULL, false, &b->values32, "baseline value scratch");
    }
    if (st == KVQ_OK) st = ocl_finish(ctx, "baseline upload");
    if (st != KVQ_OK) {
        kvq_opencl_baseline_free(b);
        return st;
    }
    *out = b;
    return KVQ_OK;
}

static kvq_status from_clblast(kvq_backend_context *ctx, CLBlastStatusCode code, const char *what)
{
    if (code == CLBlastSuccess) return KVQ_OK;
    if (code > -1000) return ocl_from_cl(ctx, (cl_int)code, what);
    return ocl_fail(ctx, KVQ_ERR_IO, "%s: CLBlast error %d", what, (int)code);
}

static kvq_status widen(kvq_backend_context *ctx, cl_mem src, size_t count, cl_mem dst)
{
    ocl_arg args[] = {OCL_MEM(src), OCL_U64(count), OCL_MEM(dst)};
    return ocl_launch(ctx, OCL_K_WIDEN_FP16, args, 3, count, 0, true);
}

/* One call's device buffers and the baseline they serve. */
typedef struct baseline_work {
    kvq_opencl_baseline *b;
    cl_mem q, scores, out;
    uint32_t n_q;
} baseline_work;

/* The device work of one call on staged queries: widen an fp16 store, scores, softmax, output. */
static kvq_status baseline_once(kvq_backend_context *ctx, void *user)
{
    const baseline_work *w = user;
    kvq_opencl_baseline *b = w->b;
    size_t n = b->n_tokens, d = b->head_dim;
    uint32_t n_q = w->n_q;
    cl_mem keys = b->keys, values = b->values;
    kvq_status st = KVQ_OK;
    if (b->storage == KVQ_OPENCL_BASELINE_FP16) {
        st = widen(ctx, b->keys, n * d, b->keys32);
        if (st == KVQ_OK) st = widen(ctx, b->values, n * d, b->values32);
        keys = b->keys32;
        values = b->values32;
    }
    float scale = (float)(1.0 / sqrt((double)d));
    if (st == KVQ_OK) {
        CLBlastStatusCode code =
            n_q == 1 ? CLBlastSgemv(CLBlastLayoutRowMajor, CLBlastTransposeNo, n, d, scale, keys, 0, d, w->q, 0, 1,
                                    0.0f, w->scores, 0, 1, &ctx->queue, NULL)
                     : CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, n_q, n, d, scale,
                                    w->q, 0, d, keys, 0, d, 0.0f, w->scores, 0, n, &ctx->queue, NULL);
        st = from_clblast(ctx, code, "baseline scores");
    }
    if (st == KVQ_OK) {
        ocl_arg args[] = {OCL_MEM(w->scores), OCL_U64(n)};
        st = ocl_launch(ctx, OCL_K_SOFTMAX_ROWS, args, 2, (size_t)n_q * OCL_SOFTMAX_WG, OCL_SOFTMAX_WG, false);
    }
    if (st == KVQ_OK) {
        CLBlastStatusCode code =
            n_q == 1 ? CLBlastSgemv(CLBlastLayoutRowMajor, CLBlastTransposeYes, n, d, 1.0f, values, 0, d, w->scores,
                                    0, 1, 0.0f, w->out, 0, 1, &ctx->queue, NULL)
                     : CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, n_q, d, n, 1.0f,
                                    w->scores, 0, n, values, 0, d, 0.0f, w->out, 0, d, &ctx->queue, NULL);
        st = from_clblast(ctx, code, "baseline output");
    }
    return st;
}

/* attend, its device work as timer says (once, or repeated and timed). */
static kvq_status attend(kvq_backend_context *ctx, kvq_opencl_baseline *b, const float *q_host, uint32_t n_q,
                         float *out_host, kvq_host_timer *timer)
{
    if (b == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "baseline is NULL");
    if (q_host == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "q is NULL");
    if (out_host == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (n_q == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "n_q is 0");
    size_t n = b->n_tokens, d = b->head_dim, q_count = (size_t)n_q * d;
    kvq_status st = ocl_check_finite(ctx, q_host, q_count, "q");
    if (st != KVQ_OK) return st;
    float *staging = malloc(q_count * sizeof *staging);
    if (staging == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "output staging: out of memory");
    baseline_work w = {b, NULL, NULL, NULL, n_q};
    st = ocl_buffer(ctx, q_count * sizeof(float), q_host, false, &w.q, "queries");
    if (st == KVQ_OK) st = ocl_buffer(ctx, (size_t)n_q * n * sizeof(float), NULL, false, &w.scores, "scores");
    if (st == KVQ_OK) st = ocl_buffer(ctx, q_count * sizeof(float), NULL, false, &w.out, "output");
    if (st == KVQ_OK) st = ocl_timed(ctx, timer, baseline_once, &w);
    if (st == KVQ_OK) st = ocl_read(ctx, w.out, 0, q_count * sizeof(float), staging, "reading the baseline output");
    if (st != KVQ_OK) ocl_finish(ctx, "baseline"); /* nothing still runs on what is released below */
    if (st == KVQ_OK) memcpy(out_host, staging, q_count * sizeof(float));
    ocl_release(&w.q);
    ocl_release(&w.scores);
    ocl_release(&w.out);
    free(staging);
    return st;
}

kvq_status kvq_opencl_baseline_attend(kvq_backend_context *ctx, kvq_opencl_baseline *b, const float *q_host,
                                      uint32_t n_q, float *out_host)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return attend(ctx, b, q_host, n_q, out_host, NULL);
}

kvq_status kvq_opencl_baseline_time(kvq_backend_context *ctx, kvq_opencl_baseline *b, const float *q_host,
                                    uint32_t n_q, float *out_host, kvq_backend_timing *timing)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    kvq_host_timer timer;
    kvq_status st = kvq_host_timer_make(&ctx->host.error, timing, &timer);
    if (st == KVQ_OK) st = attend(ctx, b, q_host, n_q, out_host, &timer);
    snprintf(timer.kernel, sizeof timer.kernel, "%s", n_q == 1 ? "CLBlast SGEMV" : "CLBlast SGEMM");
    return kvq_host_timer_finish(&timer, st, timing);
}
