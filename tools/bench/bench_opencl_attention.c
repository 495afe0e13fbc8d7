/*
 * bench_opencl_attention.c - the OpenCL backend's fused decode-attention
 * kernels (attention.cl kvq_attention_partial / kvq_attention_combine)
 * enqueued with events, so that study (d) times device work only. The
 * argument list and launch geometry are those of ocl_attention.c's
 * attention_fused; the inputs (positions, RoPE data, rotated queries) are
 * made once per point instead of once per call, as a decoder would.
 */
#include "bench_opencl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ocl_attention.c's fused_tile_tokens: about 16 KiB of local memory, <= 64 tokens. */
static uint32_t tile_tokens(const kvq_backend_context *ctx, uint32_t d)
{
    size_t budget = 16384u;
    if (ctx->local_mem > 0 && ctx->local_mem / 2u < budget) budget = ctx->local_mem / 2u;
    size_t tokens = budget / (sizeof(float) * (d + OCL_FUSED_MAX_Q));
    if (tokens > 64u) tokens = 64u;
    return tokens > 0 ? (uint32_t)tokens : 1u;
}

static size_t work_group(kvq_backend_context *ctx, ocl_kernel_id k, size_t wanted)
{
    size_t limit = 0;
    if (clGetKernelWorkGroupInfo(ctx->kernels[k], ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof limit, &limit, NULL) !=
            CL_SUCCESS ||
        limit == 0)
        limit = ctx->max_wg;
    return wanted < limit ? wanted : limit;
}

void bench_ocl_attention_release(bench_ocl_attention *a)
{
    ocl_release(&a->positions);
    ocl_release(&a->rope_data);
    ocl_release(&a->q);
    ocl_release(&a->out);
    ocl_release(&a->part_m);
    ocl_release(&a->part_l);
    ocl_release(&a->part_o);
}

/* S9.3 RoPE inputs as the backend makes them: theta in double on fp64 devices,
 * else a (cos, sin) table per (token, pair) from the reference. */
static kvq_status rope_data(kvq_backend_context *ctx, bench_ocl_attention *a, const uint32_t *positions)
{
    const kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    uint32_t half = a->head_dim / 2u;
    if (!a->use_table) {
        double theta[KVQ_MAX_HEAD_DIM / 2];
        for (uint32_t i = 0; i < half; i++) theta[i] = pow(10000.0, -2.0 * (double)i / (double)a->head_dim);
        return ocl_buffer(ctx, half * sizeof(double), theta, false, &a->rope_data, "rope frequencies");
    }
    size_t entries = (size_t)a->n_tokens * half;
    float *table = malloc(entries * 2u * sizeof *table);
    if (table == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "rope table: out of memory");
    for (uint32_t t = 0; t < a->n_tokens; t++)
        for (uint32_t i = 0; i < half; i++) {
            size_t e = ((size_t)t * half + i) * 2u;
            kvq_rope_angle(&rope, a->head_dim, i, positions[t], &table[e], &table[e + 1u]);
        }
    kvq_status st = ocl_buffer(ctx, entries * 2u * sizeof *table, table, false, &a->rope_data, "rope table");
    free(table);
    return st;
}

kvq_status bench_ocl_attention_init(kvq_backend_context *ctx, uint32_t n_tokens, uint32_t n_q, uint32_t head_dim,
                                    bench_ocl_attention *a)
{
    memset(a, 0, sizeof *a);
    if (n_q > OCL_FUSED_MAX_Q)
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "n_q = %u: the fused kernel takes at most %u query heads", n_q,
                        OCL_FUSED_MAX_Q);
    a->ctx = ctx;
    a->n_tokens = n_tokens;
    a->n_q = n_q;
    a->head_dim = head_dim;
    a->tile = tile_tokens(ctx, head_dim);
    a->n_tiles = (n_tokens + a->tile - 1u) / a->tile;
    a->wg = work_group(ctx, OCL_K_ATTENTION_PARTIAL, 128u);
    a->combine_local = ctx->max_wg < 128u ? ctx->max_wg : 128u;
    a->use_table = ctx->rope_host_table;
    uint32_t *positions = malloc((size_t)n_tokens * sizeof *positions);
    float *q = malloc((size_t)n_q * head_dim * sizeof *q);
    kvq_status st = KVQ_OK;
    if (positions == NULL || q == NULL) st = ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "attention inputs: out of memory");
    if (st == KVQ_OK) {
        for (uint32_t t = 0; t < n_tokens; t++) positions[t] = t;
        bench_fill_random(q, (size_t)n_q * head_dim, 7u);
        st = ocl_buffer(ctx, (size_t)n_tokens * sizeof *positions, positions, false, &a->positions, "key positions");
    }
    if (st == KVQ_OK) st = rope_data(ctx, a, positions);
    if (st == KVQ_OK) st = ocl_buffer(ctx, (size_t)n_q * head_dim * sizeof *q, q, false, &a->q, "queries");
    if (st == KVQ_OK) st = ocl_buffer(ctx, (size_t)n_q * head_dim * sizeof *q, NULL, false, &a->out, "output");
    if (st == KVQ_OK) st = ocl_buffer(ctx, a->n_tiles * n_q * sizeof(float), NULL, false, &a->part_m, "partial maxima");
    if (st == KVQ_OK) st = ocl_buffer(ctx, a->n_tiles * n_q * sizeof(float), NULL, false, &a->part_l, "partial sums");
    if (st == KVQ_OK)
        st = ocl_buffer(ctx, a->n_tiles * n_q * head_dim * sizeof(float), NULL, false, &a->part_o, "partial outputs");
    free(positions);
    free(q);
    if (st != KVQ_OK) bench_ocl_attention_release(a);
    return st;
}

kvq_status bench_ocl_attention_enqueue(bench_ocl_attention *a, const kvq_backend_tensor *keys,
                                       const kvq_backend_tensor *values, cl_event *first, cl_event *last)
{
    kvq_backend_context *ctx = a->ctx;
    const kvq_backend_tensor *K = keys, *V = values;
    const kvq_qtensor *kh = &K->header, *vh = &V->header;
    uint32_t d = a->head_dim, k_group = kh->group_size > 0 ? kh->group_size : 1u;
    float scale = (float)(1.0 / sqrt((double)d)); /* S12.3 */
    int pairing = KVQ_ROPE_HALF;
    ocl_arg args[] = {OCL_MEM(K->precision),
                      OCL_MEM(K->fp16_slot),
                      OCL_MEM(K->fp16_rows),
                      OCL_MEM(K->codes),
                      OCL_MEM(K->params),
                      OCL_MEM(K->codebook),
                      OCL_MEM(K->outlier_ptr),
                      OCL_MEM(K->outlier_index),
                      OCL_MEM(K->outlier_value),
                      OCL_I32(kh->scheme),
                      OCL_U32(kh->bits),
                      OCL_I32(ocl_param_layout(kh)),
                      OCL_U32(k_group),
                      OCL_MEM(V->precision),
                      OCL_MEM(V->fp16_slot),
                      OCL_MEM(V->fp16_rows),
                      OCL_MEM(V->codes),
                      OCL_MEM(V->params),
                      OCL_MEM(V->codebook),
                      OCL_MEM(V->outlier_ptr),
                      OCL_MEM(V->outlier_index),
                      OCL_MEM(V->outlier_value),
                      OCL_I32(vh->scheme),
                      OCL_U32(vh->bits),
                      OCL_U32(vh->group_size),
                      OCL_MEM(a->positions),
                      OCL_I32(pairing),
                      OCL_I32(a->use_table),
                      OCL_MEM(a->rope_data),
                      OCL_MEM(a->q),
                      OCL_U32(a->n_q),
                      OCL_F32(scale),
                      OCL_U64(kh->n_tokens),
                      OCL_U32(d),
                      OCL_U32(a->tile),
                      OCL_MEM(a->part_m),
                      OCL_MEM(a->part_l),
                      OCL_MEM(a->part_o),
                      OCL_LOCAL((size_t)a->tile * d * sizeof(float)),
                      OCL_LOCAL((size_t)OCL_FUSED_MAX_Q * a->tile * sizeof(float))};
    /* ocl_launch with 0 items only sets the arguments; the launch is ours, with an event. */
    kvq_status st = ocl_launch(ctx, OCL_K_ATTENTION_PARTIAL, args, sizeof args / sizeof *args, 0, a->wg, false);
    if (st != KVQ_OK) return st;
    size_t global = a->n_tiles * a->wg;
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, ctx->kernels[OCL_K_ATTENTION_PARTIAL], 1, NULL, &global, &a->wg, 0,
                                        NULL, first);
    if (err != CL_SUCCESS) return ocl_from_cl(ctx, err, "launching kvq_attention_partial");
    ocl_arg combine[] = {OCL_MEM(a->part_m), OCL_MEM(a->part_l), OCL_MEM(a->part_o), OCL_U64(a->n_tiles),
                         OCL_U32(a->n_q),    OCL_U32(d),         OCL_MEM(a->out)};
    st = ocl_launch(ctx, OCL_K_ATTENTION_COMBINE, combine, 7, 0, 0, true);
    if (st != KVQ_OK) return st;
    /* A grid-stride kernel: any whole number of groups covers the items. */
    size_t items = (size_t)a->n_q * d, local = a->combine_local;
    global = (items + local - 1u) / local * local;
    err = clEnqueueNDRangeKernel(ctx->queue, ctx->kernels[OCL_K_ATTENTION_COMBINE], 1, NULL, &global, &local, 0, NULL,
                                 last);
    if (err != CL_SUCCESS) return ocl_from_cl(ctx, err, "launching kvq_attention_combine");
    return KVQ_OK;
}
