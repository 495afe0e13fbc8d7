/*
 * cuda_quantize.c - quantize_head on the device (S4), and the quantization
 * steps a cache reuses for the tokens that become final (S15.2).
 *
 * The per-token precision (S10.3 sinks and budget) is decided on the host
 * with libkvq's kvq_token_precision, then the recent window and the residual
 * key blocks (S10.4, S4.3) are applied on the host too: these are O(n) byte
 * decisions. Everything per element (outliers, ranges, codes, packing, fp16
 * rows, sparse outliers) runs on the device.
 */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>

size_t cuda_quant_job_begin(cuda_quant_job *job)
{
    const kvq_head_config *cfg = job->config;
    const bool online = cfg->role == KVQ_ROLE_KEYS && cfg->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    const uint32_t G = online ? cfg->group_size : 1u;
    /* Online keys work in whole blocks; the block holding t_begin may start
     * before it (its earlier tokens are final fp16 tokens, never read). */
    job->u_base = job->t_begin / G * G;
    job->n_outliers = 0;
    return ((size_t)(job->t_end - job->u_base) * job->head_dim) + 1u;
}

kvq_status cuda_quant_job_enqueue(kvq_backend_context *ctx, const cuda_quant_job *job, uint8_t *codes_u8,
                                  uint8_t *mask_u8)
{
    const kvq_head_config *cfg = job->config;
    const uint32_t d = job->head_dim;
    const bool keys = cfg->role == KVQ_ROLE_KEYS;
    const bool online = keys && cfg->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    const uint32_t G = online ? cfg->group_size : 1u;
    if (job->t_end == job->t_begin) return KVQ_OK;
    cudaStream_t s = ctx->stream;
    kvq_cuda_quantizer q = cuda_quantizer_of(&cfg->quantizer);
    cudaError_t err;
    if (!keys) {
        uint32_t g = cfg->group_size == 0 ? d : cfg->group_size;
        err = kvq_cuda_quantize_values(job->x, job->x_base, job->t_begin, job->t_end, d, g, cfg->outlier_ppm,
                                       job->precision, &q, job->params, codes_u8, mask_u8, job->u_base, s);
    } else if (online) {
        err = kvq_cuda_quantize_keys_online(job->x, job->x_base, job->t_begin / G, job->t_end / G, d, G,
                                            cfg->outlier_ppm, job->precision, &q, job->params, codes_u8, mask_u8,
                                            job->u_base, s);
    } else {
        /* S7.3: without ranges the kernel marks no outlier (beyond_range CLAMP). */
        const float *ranges = cfg->beyond_range == KVQ_BEYOND_RANGE_CLAMP ? NULL : job->cal_ranges;
        err = kvq_cuda_quantize_keys_calibrated(job->x, job->x_base, job->t_begin, job->t_end, d, job->precision, &q,
                                                job->cal_params, ranges, codes_u8, mask_u8, job->u_base, s);
    }
    if (err == cudaSuccess)
        err = kvq_cuda_pack_token_rows(codes_u8, job->u_base, job->t_begin, job->t_end, d, cfg->quantizer.bits,
                                       job->precision, job->codes, s);
    return cuda_check(ctx, err, "quantize");
}

kvq_status cuda_quantize_codes(kvq_backend_context *ctx, cuda_quant_job *job)
{
    const size_t scratch_bytes = cuda_quant_job_begin(job);
    const uint32_t n = job->t_end - job->t_begin;
    void *codes_u8 = NULL, *mask_u8 = NULL, *counts = NULL, *cub = NULL;
    const size_t cub_bytes = kvq_cuda_scan_temp_bytes(n);
    kvq_status status = cuda_scratch(ctx, CUDA_SCRATCH_CODES, scratch_bytes, &codes_u8);
    if (status == KVQ_OK) status = cuda_scratch(ctx, CUDA_SCRATCH_MASK, scratch_bytes, &mask_u8);
    if (status == KVQ_OK) status = cuda_scratch(ctx, CUDA_SCRATCH_COUNTS, ((size_t)n + 1u) * 8u, &counts);
    if (status == KVQ_OK) status = cuda_scratch(ctx, CUDA_SCRATCH_CUB, cub_bytes + 1u, &cub);
    if (status != KVQ_OK) return status;
    if (n == 0) return KVQ_OK;

    cudaStream_t s = ctx->stream;
    cudaError_t err = cudaMemsetAsync(codes_u8, 0, scratch_bytes, s);
    if (err == cudaSuccess) err = cudaMemsetAsync(mask_u8, 0, scratch_bytes, s);
    if (err != cudaSuccess) return cuda_check(ctx, err, "quantize");
    status = cuda_quant_job_enqueue(ctx, job, codes_u8, mask_u8);
    if (status != KVQ_OK) return status;
    uint32_t *c = counts;
    err = kvq_cuda_count_outliers(mask_u8, job->u_base, job->t_begin, job->t_end, job->head_dim, c, c + n + 1u, cub,
                                  cub_bytes, &job->n_outliers, s);
    return cuda_check(ctx, err, "quantize");
}

kvq_status cuda_quantize_outliers(kvq_backend_context *ctx, const cuda_quant_job *job, uint32_t ptr_end,
                                  uint32_t base, uint32_t *optr, uint16_t *ochan, uint16_t *oval)
{
    const uint32_t n = job->t_end - job->t_begin;
    uint32_t *scan = (uint32_t *)ctx->scratch[CUDA_SCRATCH_COUNTS] + n + 1u;
    if (n == 0) {
        /* Nothing was counted: the scan is the single entry 0. */
        cudaError_t err = cudaMemsetAsync(scan, 0, sizeof *scan, ctx->stream);
        if (err != cudaSuccess) return cuda_check(ctx, err, "quantize");
    }
    cudaError_t err = kvq_cuda_fill_outliers(job->x, job->x_base, ctx->scratch[CUDA_SCRATCH_MASK], job->u_base,
                                             job->t_begin, job->t_end, ptr_end, job->head_dim, scan, base, optr,
                                             ochan, oval, ctx->stream);
    return cuda_check(ctx, err, "quantize");
}

/* The host layer's plan marks QUANTIZED tokens' slots with UINT32_MAX, which the kernels read as "no row". */
_Static_assert(KVQ_CUDA_NO_SLOT == UINT32_MAX, "fp16 slots of the plan are the kernels'");

/* S4.1 */
kvq_status cuda_quantize_head(kvq_backend_context *ctx, const kvq_head_config *config, const float *x_host,
                              uint32_t n_tokens, uint32_t head_dim, const uint8_t *modality_host,
                              kvq_backend_tensor **out)
{
    /* Step 1, checks 1-10 on the host; 11 runs on the device below, while the input is uploaded anyway. */
    kvq_status status = kvq_host_check_quantize(&ctx->host.error, config, x_host, n_tokens, head_dim, out);
    if (status != KVQ_OK) return status;
    cudaSetDevice(ctx->device);

    const uint32_t n = n_tokens, d = head_dim;
    const size_t elems = (size_t)n * d;
    const bool calibrated = config->role == KVQ_ROLE_KEYS && config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    /* Steps 2-3 on the host (backends/common). The plan's S10.3 decisions check the modality bytes, which
     * S4.1 reports only after the input values (check 12 after 11): its failure waits for the device. */
    kvq_host_plan plan;
    kvq_host_error plan_error;
    kvq_status plan_status = kvq_host_plan_quantize(&plan_error, config, n, d, modality_host, &plan);
    kvq_backend_tensor *t = cuda_tensor_new();
    if (t == NULL) {
        status = cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "quantize_head: out of host memory for %u tokens", n);
        goto done;
    }

    /* S1.3 on the device. */
    void *d_x = NULL, *small = NULL, *host = NULL;
    status = cuda_scratch(ctx, CUDA_SCRATCH_INPUT, elems * 4u, &d_x);
    if (status == KVQ_OK) status = cuda_scratch(ctx, CUDA_SCRATCH_SMALL, 64, &small);
    if (status == KVQ_OK) status = cuda_pinned(ctx, 64, &host);
    if (status == KVQ_OK) status = cuda_upload(ctx, d_x, x_host, elems * 4u, "quantize_head: x");
    if (status == KVQ_OK)
        status = cuda_check(ctx, cudaMemsetAsync(small, 0xFF, 8, ctx->stream), "quantize_head");
    if (status == KVQ_OK)
        status = cuda_check(ctx, kvq_cuda_find_nonfinite(d_x, elems, small, ctx->stream), "quantize_head");
    if (status == KVQ_OK) status = cuda_download(ctx, host, small, 8, "quantize_head");
    if (status != KVQ_OK) goto done;
    unsigned long long *first_bad = host;
    if (plan_status != KVQ_OK) {
        status = cuda_sync(ctx, "quantize_head");
        if (status == KVQ_OK && *first_bad != ~0ull) status = cuda_check_finite(ctx, x_host, elems, "x");
        if (status == KVQ_OK) status = kvq_host_fail(&ctx->host.error, plan_status, "%s", plan_error.message);
        goto done;
    }

    t->header = plan.header;
    t->n_perm_rows = plan.header.n_fp16_rows;
    const size_t sizes[CUDA_T_OCHAN] = {
        [CUDA_T_PRECISION] = n,
        [CUDA_T_SLOT] = (size_t)n * 4u,
        [CUDA_T_ROWS] = (size_t)plan.header.n_fp16_rows * d * 2u,
        [CUDA_T_CODES] = (size_t)n * t->header.row_bytes,
        [CUDA_T_PARAMS] = (size_t)t->header.n_params * 4u,
        [CUDA_T_OPTR] = ((size_t)n + 1u) * 4u,
    };
    for (int i = 0; i < CUDA_T_OCHAN && status == KVQ_OK; i++)
        status = cuda_alloc(ctx, sizes[i], i == CUDA_T_CODES || i == CUDA_T_PARAMS, &t->owned[i], "quantize_head");
    if (status == KVQ_OK)
        status = cuda_upload(ctx, t->owned[CUDA_T_PRECISION], plan.precision, n, "quantize_head");
    if (status == KVQ_OK)
        status = cuda_upload(ctx, t->owned[CUDA_T_SLOT], plan.fp16_slot, (size_t)n * 4u, "quantize_head");
    void *ranges = NULL;
    if (status == KVQ_OK && calibrated) {
        /* S4.2: fixed per-channel params (the plan's, by libkvq's own function) and the ranges. */
        status = cuda_upload(ctx, t->owned[CUDA_T_PARAMS], plan.calibrated, (size_t)d * 4u, "quantize_head");
        if (status == KVQ_OK) status = cuda_scratch(ctx, CUDA_SCRATCH_UPLOAD, (size_t)d * 8u, &ranges);
        if (status == KVQ_OK)
            status = cuda_upload(ctx, ranges, config->channel_range, (size_t)d * 8u, "quantize_head");
    }
    if (status == KVQ_OK)
        status = cuda_check(ctx,
                            kvq_cuda_write_fp16_rows(d_x, 0, 0, n, 0, d, t->owned[CUDA_T_SLOT], t->owned[CUDA_T_ROWS],
                                                     NULL, ctx->stream),
                            "quantize_head");
    cuda_quant_job job = {
        .config = config,
        .head_dim = d,
        .x = d_x,
        .x_base = 0,
        .t_begin = 0,
        .t_end = n,
        .precision = t->owned[CUDA_T_PRECISION],
        .params = t->owned[CUDA_T_PARAMS],
        .codes = t->owned[CUDA_T_CODES],
        .cal_params = t->owned[CUDA_T_PARAMS],
        .cal_ranges = ranges,
    };
    if (status == KVQ_OK) status = cuda_quantize_codes(ctx, &job); /* synchronises */
    if (status == KVQ_OK && *first_bad != ~0ull) status = cuda_check_finite(ctx, x_host, elems, "x");
    if (status == KVQ_OK)
        status = cuda_alloc(ctx, (size_t)job.n_outliers * 2u, false, &t->owned[CUDA_T_OCHAN], "quantize_head");
    if (status == KVQ_OK)
        status = cuda_alloc(ctx, (size_t)job.n_outliers * 2u, false, &t->owned[CUDA_T_OVAL], "quantize_head");
    if (status == KVQ_OK)
        status = cuda_quantize_outliers(ctx, &job, n, 0, t->owned[CUDA_T_OPTR], t->owned[CUDA_T_OCHAN],
                                        t->owned[CUDA_T_OVAL]);
    if (status == KVQ_OK) status = cuda_sync(ctx, "quantize_head");
    if (status != KVQ_OK) goto done;

    t->header.n_outliers = job.n_outliers;
    cuda_tensor_own_view(t);
    *out = t;
    t = NULL;
done:
    cuda_tensor_destroy(t);
    kvq_host_plan_free(&plan); /* empty when planning failed */
    return status;
}
