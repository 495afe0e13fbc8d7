/*
 * cuda_quantize_batch.c - S4.1 steps 4-7 for many head slices at once (a
 * model layer: every KV head's keys and values) with one host round trip.
 *
 * cuda_quantize_codes learns each slice's outlier count with a download and a
 * synchronisation, because the outlier arrays are sized by it; for a layer of
 * 64 slices that is 64 round trips. Here every slice gets its own scratch
 * (carved from one allocation), all slices are quantized and counted into a
 * device array of totals, the totals come back in one copy and one
 * synchronisation, and the outliers are written after the capacity check.
 * The kernels and their order per slice are cuda_quantize_codes' and
 * cuda_quantize_outliers', so the bytes are the same.
 */
#include "cuda_internal.h"

#include <stdlib.h>

/* Where one job's scratch lives (offsets first, then device addresses). */
typedef struct job_scratch {
    size_t codes_u8, mask_u8, counts, cub; /* offsets in the batch allocation */
    size_t cub_bytes;
} job_scratch;

/* cub's temporary storage and the scans are happiest 256-byte aligned. */
static size_t round256(size_t x) { return (x + 255u) / 256u * 256u; }

/* Lays out every job's scratch in one allocation: first all codes_u8 and
 * mask_u8 rows (so that one memset zeroes them all), then counts and scans,
 * then CUB storage, then the device totals. Sets *rows_bytes (the span to
 * zero) and *totals_at; returns the allocation's size. Sets each u_base. */
static size_t plan(cuda_quant_job *jobs, uint32_t n_jobs, job_scratch *js, size_t *rows_bytes, size_t *totals_at)
{
    size_t at = 0;
    for (uint32_t j = 0; j < n_jobs; j++) {
        size_t rows = round256(cuda_quant_job_begin(&jobs[j]));
        js[j].codes_u8 = at;
        js[j].mask_u8 = at + rows;
        at += 2u * rows;
    }
    *rows_bytes = at;
    for (uint32_t j = 0; j < n_jobs; j++) {
        const uint32_t n = jobs[j].t_end - jobs[j].t_begin;
        js[j].counts = at; /* counts[n + 1], then scan[n + 1] */
        at += round256(((size_t)n + 1u) * 8u);
    }
    for (uint32_t j = 0; j < n_jobs; j++) {
        js[j].cub_bytes = kvq_cuda_scan_temp_bytes(jobs[j].t_end - jobs[j].t_begin);
        js[j].cub = at;
        at += round256(js[j].cub_bytes + 1u);
    }
    *totals_at = at;
    return at + (size_t)n_jobs * 4u;
}

static kvq_status check_jobs(kvq_backend_context *ctx, const cuda_quant_job *jobs, uint32_t n_jobs,
                             uint32_t *const *optr, uint16_t *const *ochan, uint16_t *const *oval,
                             const uint32_t *capacity)
{
    if (jobs == NULL || optr == NULL || ochan == NULL || oval == NULL || capacity == NULL)
        return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "quantize jobs: NULL array of jobs or outputs");
    for (uint32_t j = 0; j < n_jobs; j++) {
        const cuda_quant_job *job = &jobs[j];
        if (job->config == NULL || job->x == NULL || job->precision == NULL || job->params == NULL ||
            job->codes == NULL || optr[j] == NULL)
            return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "quantize jobs: job %u: NULL config, input or output", j);
        if (job->t_end < job->t_begin || job->t_begin < job->x_base)
            return cuda_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "quantize jobs: job %u: tokens [%u, %u) from input row %u", j,
                             job->t_begin, job->t_end, job->x_base);
        if (capacity[j] > 0 && (ochan[j] == NULL || oval[j] == NULL))
            return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "quantize jobs: job %u: room for %u outliers but NULL arrays",
                             j, capacity[j]);
    }
    return KVQ_OK;
}

/* Phase 1: every job's codes, params, packed rows and outlier count (into
 * totals[j]), all enqueued, nothing waited for. */
static kvq_status enqueue_counts(kvq_backend_context *ctx, const cuda_quant_job *jobs, uint32_t n_jobs,
                                 const job_scratch *js, unsigned char *base, size_t rows_bytes, uint32_t *totals)
{
    kvq_status status = cuda_check(ctx, cudaMemsetAsync(base, 0, rows_bytes, ctx->stream), "quantize jobs");
    for (uint32_t j = 0; j < n_jobs && status == KVQ_OK; j++) {
        const cuda_quant_job *job = &jobs[j];
        uint8_t *codes_u8 = base + js[j].codes_u8, *mask_u8 = base + js[j].mask_u8;
        uint32_t *counts = (uint32_t *)(void *)(base + js[j].counts);
        const uint32_t n = job->t_end - job->t_begin;
        status = cuda_quant_job_enqueue(ctx, job, codes_u8, mask_u8);
        /* An empty range is counted too: its scan becomes the single entry 0,
         * which phase 2 reads like any other. */
        if (status == KVQ_OK)
            status = cuda_check(ctx,
                                kvq_cuda_count_outliers_async(mask_u8, job->u_base, job->t_begin, job->t_end,
                                                              job->head_dim, counts, counts + n + 1u,
                                                              base + js[j].cub, js[j].cub_bytes, totals + j,
                                                              ctx->stream),
                                "quantize jobs");
    }
    return status;
}

/* Phase 2: every job's outliers at the start of its arrays. */
static kvq_status enqueue_outliers(kvq_backend_context *ctx, const cuda_quant_job *jobs, uint32_t n_jobs,
                                   const job_scratch *js, unsigned char *base, uint32_t *const *optr,
                                   uint16_t *const *ochan, uint16_t *const *oval)
{
    for (uint32_t j = 0; j < n_jobs; j++) {
        const cuda_quant_job *job = &jobs[j];
        const uint32_t n = job->t_end - job->t_begin;
        const uint32_t *scan = (const uint32_t *)(const void *)(base + js[j].counts) + n + 1u;
        cudaError_t err =
            kvq_cuda_fill_outliers(job->x, job->x_base, base + js[j].mask_u8, job->u_base, job->t_begin, job->t_end,
                                   job->t_end, job->head_dim, scan, 0u, optr[j], ochan[j], oval[j], ctx->stream);
        if (err != cudaSuccess) return cuda_check(ctx, err, "quantize jobs");
    }
    return KVQ_OK;
}

kvq_status cuda_quantize_jobs(kvq_backend_context *ctx, cuda_quant_job *jobs, uint32_t n_jobs,
                              uint32_t *const *optr, uint16_t *const *ochan, uint16_t *const *oval,
                              const uint32_t *capacity)
{
    if (n_jobs == 0) return KVQ_OK;
    kvq_status status = check_jobs(ctx, jobs, n_jobs, optr, ochan, oval, capacity);
    if (status != KVQ_OK) return status;
    job_scratch *js = malloc((size_t)n_jobs * sizeof *js);
    if (js == NULL) return cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "quantize jobs: out of host memory");

    size_t rows_bytes = 0, totals_at = 0;
    const size_t bytes = plan(jobs, n_jobs, js, &rows_bytes, &totals_at);
    void *scratch = NULL, *pinned = NULL;
    status = cuda_scratch(ctx, CUDA_SCRATCH_BATCH, bytes, &scratch);
    if (status == KVQ_OK) status = cuda_pinned(ctx, (size_t)n_jobs * 4u, &pinned);
    unsigned char *base = scratch;
    uint32_t *totals = (uint32_t *)(void *)(base + totals_at), *host_totals = pinned;
    if (status == KVQ_OK) status = enqueue_counts(ctx, jobs, n_jobs, js, base, rows_bytes, totals);
    /* The batch's one round trip: every count at once. */
    if (status == KVQ_OK)
        status = cuda_download(ctx, host_totals, totals, (size_t)n_jobs * 4u, "quantize jobs: outlier counts");
    if (status == KVQ_OK) status = cuda_sync(ctx, "quantize jobs");
    for (uint32_t j = 0; j < n_jobs && status == KVQ_OK; j++) {
        jobs[j].n_outliers = host_totals[j];
        if (host_totals[j] > capacity[j])
            status = cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH,
                               "quantize jobs: job %u (tokens [%u, %u)) has %u outliers, its arrays room for %u; no "
                               "outliers were written",
                               j, jobs[j].t_begin, jobs[j].t_end, host_totals[j], capacity[j]);
    }
    if (status == KVQ_OK) status = enqueue_outliers(ctx, jobs, n_jobs, js, base, optr, ochan, oval);
    free(js);
    return status;
}
