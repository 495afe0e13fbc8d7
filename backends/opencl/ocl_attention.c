/*
 * ocl_attention.c - S11 decode attention on the device.
 *
 * Queries are rotated on the host with libkvq's kvq_rope_apply (n_q * d
 * numbers, the reference's exact values). Keys are rotated on the device
 * (S9.3: angles in double when the device has cl_khr_fp64, else a host
 * table of the reference's cos/sin). Two paths:
 *  - fused (n_q == 1): kvq_attention_partial dequantizes keys and values
 *    tile by tile in local memory and never writes them out, then
 *    kvq_attention_combine merges the tiles (flash decoding);
 *  - GQA (n_q >= 2): the keys (rotated) and values are dequantized once into
 *    fp32 scratch, shared by all query heads, and CLBlast's SGEMM computes the
 *    scores (n_q x n) and the output (n_q x d) around kvq_softmax_rows.
 * Both accumulate in fp32, which S12.3's bound allows.
 */
#include "ocl_internal.h"

#include <clblast_c.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* S9.1: the reference's RoPE checks (kvq_rope_check), in its order. */
static kvq_status check_rope(kvq_backend_context *ctx, const kvq_rope *rope, uint32_t head_dim)
{
    if (rope->pairing != KVQ_ROPE_NONE && rope->pairing != KVQ_ROPE_HALF && rope->pairing != KVQ_ROPE_INTERLEAVED)
        return ocl_fail(ctx, KVQ_ERR_BAD_ENUM, "rope.pairing = %d is not a kvq_rope_pairing", (int)rope->pairing);
    if (head_dim == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "head_dim is 0");
    if (head_dim > KVQ_MAX_HEAD_DIM)
        return ocl_fail(ctx, KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u is above the limit %u (S1.4)", head_dim,
                        KVQ_MAX_HEAD_DIM);
    if (rope->pairing != KVQ_ROPE_NONE && head_dim % 2u != 0)
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "head_dim = %u is odd; RoPE rotates pairs of channels", head_dim);
    if (!isfinite(rope->base) || !(rope->base > 1.0f))
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "rope.base = %g must be a finite number above 1",
                        (double)rope->base);
    return KVQ_OK;
}

/* S11.1, in S13.4 order. */
static kvq_status check_arguments(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                  const kvq_backend_tensor *values, const uint32_t *key_positions,
                                  const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                                  const float *out)
{
    if (keys == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (values == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    if (key_positions == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "key_positions is NULL");
    if (q == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "q is NULL");
    if (out == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    const kvq_qtensor *k = &keys->header, *v = &values->header;
    if (k->role != KVQ_ROLE_KEYS)
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "keys.role = %d is not KVQ_ROLE_KEYS", (int)k->role);
    if (v->role != KVQ_ROLE_VALUES)
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "values.role = %d is not KVQ_ROLE_VALUES", (int)v->role);
    if (n_q == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "n_q is 0");
    if (k->n_tokens == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "keys.n_tokens is 0 (nothing to attend to)");
    if (k->n_tokens != v->n_tokens)
        return ocl_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "keys.n_tokens = %u but values.n_tokens = %u", k->n_tokens,
                        v->n_tokens);
    if (k->head_dim != v->head_dim)
        return ocl_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "keys.head_dim = %u but values.head_dim = %u", k->head_dim,
                        v->head_dim);
    if (rope != NULL) {
        kvq_status st = check_rope(ctx, rope, k->head_dim);
        if (st != KVQ_OK) return st;
    }
    if (q_position > KVQ_MAX_POSITION)
        return ocl_fail(ctx, KVQ_ERR_BAD_POSITION, "q_position = %u is above %u", q_position, KVQ_MAX_POSITION);
    for (uint32_t t = 0; t < k->n_tokens; t++)
        if (key_positions[t] > KVQ_MAX_POSITION)
            return ocl_fail(ctx, KVQ_ERR_BAD_POSITION, "key_positions[%u] = %u is above %u", t, key_positions[t],
                            KVQ_MAX_POSITION);
    for (size_t i = 0; i < (size_t)n_q * k->head_dim; i++)
        if (!(q[i] >= -65504.0f && q[i] <= 65504.0f))
            return ocl_fail(ctx, KVQ_ERR_NONFINITE_INPUT,
                            "q[%zu] = %g is not a finite number within the fp16 range (|x| <= 65504)", i,
                            (double)q[i]);
    return KVQ_OK;
}

/* Device-side RoPE inputs: key positions and either theta_i in double
 * (device computes the angles) or the host's cos/sin table per token. */
typedef struct rope_inputs {
    int pairing;   /* KVQ_ROPE_NONE when there is no rotation */
    int use_table; /* rope_data is the float2 table */
    cl_mem positions;
    cl_mem rope_data;
} rope_inputs;

static void rope_inputs_release(rope_inputs *r)
{
    ocl_release(&r->positions);
    ocl_release(&r->rope_data);
}

static kvq_status rope_inputs_make(kvq_backend_context *ctx, const kvq_rope *rope, const uint32_t *positions,
                                   uint32_t n, uint32_t d, rope_inputs *r)
{
    memset(r, 0, sizeof *r);
    r->pairing = rope != NULL ? (int)rope->pairing : KVQ_ROPE_NONE;
    r->use_table = ctx->rope_host_table;
    kvq_status st = ocl_buffer(ctx, (size_t)n * sizeof(uint32_t), positions, false, &r->positions, "key positions");
    if (st != KVQ_OK || r->pairing == KVQ_ROPE_NONE) {
        if (st == KVQ_OK) st = ocl_buffer(ctx, sizeof(float), NULL, false, &r->rope_data, "rope data");
        return st;
    }
    uint32_t half = d / 2u;
    if (!r->use_table) {
        /* S9.3: theta_i = pow(base, -2i/d) in double, as the reference forms it. */
        double *theta = malloc(half * sizeof *theta);
        if (theta == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "rope frequencies: out of memory");
        for (uint32_t i = 0; i < half; i++) theta[i] = pow((double)rope->base, -2.0 * (double)i / (double)d);
        st = ocl_buffer(ctx, half * sizeof *theta, theta, false, &r->rope_data, "rope frequencies");
        free(theta);
        return st;
    }
    /* No fp64 on the device: the reference's own cos/sin (kvq_rope_angle), one pair per (token, i). */
    size_t entries = (size_t)n * half;
    float *table = malloc(entries * 2u * sizeof *table);
    if (table == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "rope table of %u tokens: out of memory", n);
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t i = 0; i < half; i++) {
            size_t e = ((size_t)t * half + i) * 2u;
            kvq_rope_angle(rope, d, i, positions[t], &table[e], &table[e + 1u]);
        }
    st = ocl_buffer(ctx, entries * 2u * sizeof *table, table, false, &r->rope_data, "rope table");
    free(table);
    return st;
}

/* Tokens per tile of the fused kernel: keep the key/value tile within about
 * 16 KiB of local memory (and what the device has), at most 64 tokens. */
static uint32_t fused_tile_tokens(const kvq_backend_context *ctx, uint32_t d)
{
    size_t budget = 16384u;
    if (ctx->local_mem > 0 && ctx->local_mem / 2u < budget) budget = ctx->local_mem / 2u;
    size_t tokens = budget / (sizeof(float) * (d + OCL_FUSED_MAX_Q));
    if (tokens > 64u) tokens = 64u;
    return tokens > 0 ? (uint32_t)tokens : 1u;
}

static size_t kernel_work_group(kvq_backend_context *ctx, ocl_kernel_id k, size_t wanted)
{
    size_t limit = 0;
    if (clGetKernelWorkGroupInfo(ctx->kernels[k], ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof limit, &limit,
                                 NULL) != CL_SUCCESS || limit == 0)
        limit = ctx->max_wg;
    return wanted < limit ? wanted : limit;
}

static kvq_status attention_fused(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                  const kvq_backend_tensor *values, const rope_inputs *rope, cl_mem q, uint32_t n_q,
                                  float scale, cl_mem out)
{
    const kvq_backend_tensor *K = keys, *V = values;
    const kvq_qtensor *kh = &K->header, *vh = &V->header;
    size_t n = kh->n_tokens;
    uint32_t d = kh->head_dim;
    uint32_t tile = fused_tile_tokens(ctx, d);
    size_t n_tiles = (n + tile - 1u) / tile;
    cl_mem part_m = NULL, part_l = NULL, part_o = NULL;
    kvq_status st = ocl_buffer(ctx, n_tiles * n_q * sizeof(float), NULL, false, &part_m, "partial maxima");
    if (st == KVQ_OK) st = ocl_buffer(ctx, n_tiles * n_q * sizeof(float), NULL, false, &part_l, "partial sums");
    if (st == KVQ_OK)
        st = ocl_buffer(ctx, n_tiles * n_q * d * sizeof(float), NULL, false, &part_o, "partial outputs");
    if (st == KVQ_OK) {
        uint32_t k_group = kh->group_size > 0 ? kh->group_size : 1u;
        ocl_arg args[] = {
            OCL_MEM(K->precision),     OCL_MEM(K->fp16_slot),   OCL_MEM(K->fp16_rows),
            OCL_MEM(K->codes),         OCL_MEM(K->params),      OCL_MEM(K->codebook),
            OCL_MEM(K->outlier_ptr),   OCL_MEM(K->outlier_index), OCL_MEM(K->outlier_value),
            OCL_I32(kh->scheme),       OCL_U32(kh->bits),       OCL_I32(ocl_param_layout(kh)),
            OCL_U32(k_group),          OCL_MEM(V->precision),   OCL_MEM(V->fp16_slot),
            OCL_MEM(V->fp16_rows),     OCL_MEM(V->codes),       OCL_MEM(V->params),
            OCL_MEM(V->codebook),      OCL_MEM(V->outlier_ptr), OCL_MEM(V->outlier_index),
            OCL_MEM(V->outlier_value), OCL_I32(vh->scheme),     OCL_U32(vh->bits),
            OCL_U32(vh->group_size),   OCL_MEM(rope->positions), OCL_I32(rope->pairing),
            OCL_I32(rope->use_table),  OCL_MEM(rope->rope_data), OCL_MEM(q),
            OCL_U32(n_q),              OCL_F32(scale),          OCL_U64(n),
            OCL_U32(d),                OCL_U32(tile),           OCL_MEM(part_m),
            OCL_MEM(part_l),           OCL_MEM(part_o),         OCL_LOCAL((size_t)tile * d * sizeof(float)),
            OCL_LOCAL((size_t)OCL_FUSED_MAX_Q * tile * sizeof(float))};
        size_t wg = kernel_work_group(ctx, OCL_K_ATTENTION_PARTIAL, 128u);
        st = ocl_launch(ctx, OCL_K_ATTENTION_PARTIAL, args, sizeof args / sizeof *args, n_tiles * wg, wg, false);
    }
    if (st == KVQ_OK) {
        ocl_arg args[] = {OCL_MEM(part_m), OCL_MEM(part_l), OCL_MEM(part_o), OCL_U64(n_tiles),
                          OCL_U32(n_q),    OCL_U32(d),      OCL_MEM(out)};
        st = ocl_launch(ctx, OCL_K_ATTENTION_COMBINE, args, 7, (size_t)n_q * d, 0, true);
    }
    if (st == KVQ_OK) st = ocl_finish(ctx, "fused attention");
    ocl_release(&part_m);
    ocl_release(&part_l);
    ocl_release(&part_o);
    return st;
}

static kvq_status from_clblast(kvq_backend_context *ctx, CLBlastStatusCode code, const char *what)
{
    if (code == CLBlastSuccess) return KVQ_OK;
    if (code > -1000) return ocl_from_cl(ctx, (cl_int)code, what); /* OpenCL error codes pass through */
    return ocl_fail(ctx, KVQ_ERR_IO, "%s: CLBlast error %d on %s", what, (int)code, ctx->name);
}

static kvq_status attention_gemm(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                 const kvq_backend_tensor *values, const rope_inputs *rope, cl_mem q, uint32_t n_q,
                                 float scale, cl_mem out)
{
    size_t n = keys->header.n_tokens;
    uint32_t d = keys->header.head_dim;
    cl_mem k32 = NULL, v32 = NULL, scores = NULL;
    kvq_status st = ocl_buffer(ctx, n * d * sizeof(float), NULL, false, &k32, "dequantized keys");
    if (st == KVQ_OK) st = ocl_buffer(ctx, n * d * sizeof(float), NULL, false, &v32, "dequantized values");
    if (st == KVQ_OK) st = ocl_buffer(ctx, (size_t)n_q * n * sizeof(float), NULL, false, &scores, "scores");
    /* S11.2: exact keys and values once for all query heads; keys rotated. */
    if (st == KVQ_OK) st = ocl_dequantize_device(ctx, keys, k32);
    if (st == KVQ_OK && rope->pairing != KVQ_ROPE_NONE) {
        ocl_arg args[] = {OCL_MEM(k32), OCL_MEM(rope->positions), OCL_U64(n), OCL_U32(d),
                          OCL_I32(rope->pairing), OCL_I32(rope->use_table), OCL_MEM(rope->rope_data)};
        st = ocl_launch(ctx, OCL_K_ROPE_ROWS, args, 7, n * (d / 2u), 0, true);
    }
    if (st == KVQ_OK) st = ocl_dequantize_device(ctx, values, v32);
    /* S11.3: scores[h][t] = scale * q'_h . k'_t, i.e. Q (n_q x d) times K^T. */
    if (st == KVQ_OK)
        st = from_clblast(ctx,
                          CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, n_q, n, d,
                                       scale, q, 0, d, k32, 0, d, 0.0f, scores, 0, n, &ctx->queue, NULL),
                          "CLBlastSgemm (scores)");
    if (st == KVQ_OK) {
        ocl_arg args[] = {OCL_MEM(scores), OCL_U64(n)};
        st = ocl_launch(ctx, OCL_K_SOFTMAX_ROWS, args, 2, (size_t)n_q * OCL_SOFTMAX_WG, OCL_SOFTMAX_WG, false);
    }
    /* S11.4: out = P (n_q x n) times V (n x d). */
    if (st == KVQ_OK)
        st = from_clblast(ctx,
                          CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, n_q, d, n, 1.0f,
                                       scores, 0, n, v32, 0, d, 0.0f, out, 0, d, &ctx->queue, NULL),
                          "CLBlastSgemm (output)");
    if (st == KVQ_OK) st = ocl_finish(ctx, "GQA attention");
    ocl_release(&k32);
    ocl_release(&v32);
    ocl_release(&scores);
    return st;
}

kvq_status ocl_attention(kvq_backend_context *ctx, const kvq_backend_tensor *keys, const kvq_backend_tensor *values,
                         const uint32_t *key_positions, const kvq_rope *rope, const float *q, uint32_t n_q,
                         uint32_t q_position, float *out)
{
    kvq_status st = check_arguments(ctx, keys, values, key_positions, rope, q, n_q, q_position, out);
    if (st != KVQ_OK) return st;
    uint32_t n = keys->header.n_tokens, d = keys->header.head_dim;
    size_t q_count = (size_t)n_q * d;
    float *rotated = malloc(q_count * sizeof *rotated);
    if (rotated == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "queries: out of memory");
    /* S11.2: q'_h = rope(q_h, q_position), the reference's own computation. */
    kvq_rope none = {KVQ_ROPE_NONE, 10000.0f};
    for (uint32_t h = 0; h < n_q && st == KVQ_OK; h++)
        st = ocl_from_kvq(ctx, kvq_rope_apply(rope != NULL ? rope : &none, d, q_position, q + (size_t)h * d,
                                              rotated + (size_t)h * d));
    rope_inputs r = {0, 0, NULL, NULL};
    cl_mem q_dev = NULL, out_dev = NULL;
    if (st == KVQ_OK) st = rope_inputs_make(ctx, rope, key_positions, n, d, &r);
    if (st == KVQ_OK) st = ocl_buffer(ctx, q_count * sizeof(float), rotated, false, &q_dev, "queries");
    if (st == KVQ_OK) st = ocl_buffer(ctx, q_count * sizeof(float), NULL, false, &out_dev, "attention output");
    /* S12.3 allows scaling by fl32(1/sqrt(d)). */
    float scale = (float)(1.0 / sqrt((double)d));
    bool gemm = ctx->path == OCL_PATH_GEMM || n_q > OCL_FUSED_MAX_Q || (ctx->path == OCL_PATH_AUTO && n_q >= 2u);
    if (st == KVQ_OK)
        st = gemm ? attention_gemm(ctx, keys, values, &r, q_dev, n_q, scale, out_dev)
                  : attention_fused(ctx, keys, values, &r, q_dev, n_q, scale, out_dev);
    /* The result reaches the caller's buffer only when everything succeeded (S13.3). */
    if (st == KVQ_OK) st = ocl_read(ctx, out_dev, 0, q_count * sizeof(float), rotated, "reading the output");
    if (st == KVQ_OK) memcpy(out, rotated, q_count * sizeof(float));
    rope_inputs_release(&r);
    ocl_release(&q_dev);
    ocl_release(&out_dev);
    free(rotated);
    return st;
}

kvq_status ocl_attention_decode(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                const kvq_backend_tensor *values, const uint32_t *key_positions_host,
                                const kvq_rope *rope, const float *q_host, uint32_t n_q, uint32_t q_position,
                                float *out_host)
{
    return ocl_attention(ctx, keys, values, key_positions_host, rope, q_host, n_q, q_position, out_host);
}
