/*
 * cuda_quantize_batch.c - S4.1 steps 4-7 (and optionally step 3) for many
 * head slices at once (a model layer: every KV head's keys and values) with
 * one host round trip and a number of launches that does not grow with the
 * number of slices.
 *
 * cuda_quantize_codes learns each slice's outlier count with a download and a
 * synchronisation, because the outlier arrays are sized by it, and launches
 * about eight kernels per slice; for a layer of 64 slices that is 64 round
 * trips and ~500 launches, and the layer is launch-bound. Here every job
 * becomes a descriptor (kvq_cuda_batch_job) written to page-locked memory and
 * uploaded with one copy, and each step is one launch over all jobs
 * (gridDim.y: the job) running the single-range kernels' device code, so the
 * bytes are the same. The per-token outlier counts of all jobs are
 * concatenated and scanned once; a job's offsets are the global scan less its
 * entry at the job's first token, its total the difference of two entries.
 * The totals come back in one copy and one synchronisation, and the outliers
 * are written after the capacity check.
 *
 * Enqueued per batch, whatever the number of jobs (each launch covers up to
 * 65535 jobs, gridDim.y's limit; more take a launch per 65535):
 *   upload of the descriptors, memset of the outlier marks,
 *   fp16 rows (only if a job asks for them),
 *   quantize: one launch per kind of job present (values, online keys,
 *   calibrated keys: their threads are laid out differently),
 *   pack, count, CUB's exclusive scan, totals, download of the totals;
 *   the one synchronisation; then fill outliers and outlier pointers.
 */
#include "cuda_internal.h"

#include <limits.h>
#include <stdlib.h>

/* The quantize step's kernels, by the layout of their threads. */
typedef enum job_kind { KIND_VALUES, KIND_KEYS_ONLINE, KIND_KEYS_CALIBRATED, KIND_COUNT } job_kind;

typedef cudaError_t (*batch_step)(const kvq_cuda_batch_job *jobs, const kvq_cuda_batch_job *jobs_host,
                                  uint32_t n_jobs, cudaStream_t stream);
static const batch_step quantize_step[KIND_COUNT] = {
    [KIND_VALUES] = kvq_cuda_batch_quantize_values,
    [KIND_KEYS_ONLINE] = kvq_cuda_batch_quantize_keys_online,
    [KIND_KEYS_CALIBRATED] = kvq_cuda_batch_quantize_keys_calibrated,
};

static job_kind kind_of(const kvq_head_config *cfg)
{
    if (cfg->role != KVQ_ROLE_KEYS) return KIND_VALUES;
    return cfg->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE ? KIND_KEYS_ONLINE : KIND_KEYS_CALIBRATED;
}

/* One batch on its way: descriptors grouped by kind (so that each quantize
 * launch takes a contiguous run of them), the scratch carved for them. */
typedef struct batch {
    uint32_t n_jobs;
    uint32_t *order;                /* order[k]: the job descriptor k describes */
    size_t *rows;                   /* bytes of descriptor k's codes_u8, and of its mask_u8 */
    uint32_t kind_first[KIND_COUNT], kind_count[KIND_COUNT];
    bool any_fp16;                  /* a job asked for its fp16 rows */
    kvq_cuda_batch_job *host;       /* page-locked: what is uploaded, and sizes the grids */
    uint32_t *host_totals;          /* page-locked, per descriptor */
    /* device scratch, one allocation */
    kvq_cuda_batch_job *dev;
    unsigned char *marks;           /* every job's mask_u8 rows: the one span zeroed */
    size_t marks_bytes;
    uint32_t n_counts;              /* the jobs' tokens in all */
    uint32_t *counts, *scan, *totals;
    void *cub;
    size_t cub_bytes;
} batch;

/* cub's temporary storage and the scans are happiest 256-byte aligned. */
static size_t round256(size_t x) { return (x + 255u) / 256u * 256u; }

static kvq_status check_jobs(kvq_backend_context *ctx, const cuda_quant_job *jobs, uint32_t n_jobs,
                             uint32_t *const *optr, uint16_t *const *ochan, uint16_t *const *oval,
                             const uint32_t *capacity)
{
    if (jobs == NULL || optr == NULL || ochan == NULL || oval == NULL || capacity == NULL)
        return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "quantize jobs: NULL array of jobs or outputs");
    uint64_t tokens = 0;
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
        if (job->fp16_slot != NULL && job->fp16_rows == NULL)
            return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "quantize jobs: job %u: fp16 slots but NULL rows", j);
        tokens += job->t_end - job->t_begin;
    }
    /* CUB scans an int count of items: the batch's tokens and the closing entry. */
    if (tokens >= (uint64_t)INT_MAX)
        return cuda_fail(ctx, KVQ_ERR_BAD_ARGUMENT,
                         "quantize jobs: %llu tokens in all, more than one batch can count (%d); split the batch",
                         (unsigned long long)tokens, INT_MAX - 1);
    return KVQ_OK;
}

/* The descriptor of one job (its scratch is carved later); returns the bytes
 * each of its codes_u8 and mask_u8 needs. Sets job->u_base. */
static size_t describe_job(cuda_quant_job *job, uint32_t *optr, uint16_t *ochan, uint16_t *oval,
                           kvq_cuda_batch_job *out)
{
    const kvq_head_config *cfg = job->config;
    const size_t rows = cuda_quant_job_begin(job);
    const job_kind kind = kind_of(cfg);
    uint32_t group_size = 0; /* calibrated keys have none */
    if (kind == KIND_VALUES) group_size = cfg->group_size == 0 ? job->head_dim : cfg->group_size;
    if (kind == KIND_KEYS_ONLINE) group_size = cfg->group_size;
    *out = (kvq_cuda_batch_job){
        .x = job->x,
        .precision = job->precision,
        .params = job->params,
        .cal_params = job->cal_params,
        /* S7.3: no ranges, no outliers (beyond_range CLAMP; only calibrated keys read it) */
        .cal_ranges = cfg->beyond_range == KVQ_BEYOND_RANGE_CLAMP ? NULL : job->cal_ranges,
        .codes = job->codes,
        .slot = job->fp16_slot,
        .rows = job->fp16_rows,
        .temp_rows = job->fp16_temp_rows,
        .optr = optr,
        .ochan = ochan,
        .oval = oval,
        .x_base = job->x_base,
        .t_begin = job->t_begin,
        .t_end = job->t_end,
        .u_base = job->u_base,
        .head_dim = job->head_dim,
        .group_size = group_size,
        .outlier_ppm = cfg->outlier_ppm,
        .q = cuda_quantizer_of(&cfg->quantizer),
    };
    return rows;
}

/* Descriptors into page-locked memory, grouped by kind in job order. */
static kvq_status describe_jobs(kvq_backend_context *ctx, cuda_quant_job *jobs, batch *b, uint32_t *const *optr,
                                uint16_t *const *ochan, uint16_t *const *oval)
{
    const size_t descs_bytes = (size_t)b->n_jobs * sizeof *b->host;
    void *pinned = NULL;
    kvq_status status = cuda_pinned(ctx, descs_bytes + (size_t)b->n_jobs * 4u, &pinned);
    if (status != KVQ_OK) return status;
    b->host = pinned;
    b->host_totals = (uint32_t *)(void *)((unsigned char *)pinned + descs_bytes);
    uint32_t k = 0;
    for (int kind = 0; kind < KIND_COUNT; kind++) {
        b->kind_first[kind] = k;
        for (uint32_t j = 0; j < b->n_jobs; j++) {
            if ((int)kind_of(jobs[j].config) != kind) continue;
            b->rows[k] = describe_job(&jobs[j], optr[j], ochan[j], oval[j], &b->host[k]);
            b->any_fp16 = b->any_fp16 || jobs[j].fp16_slot != NULL;
            b->order[k++] = j;
        }
        b->kind_count[kind] = k - b->kind_first[kind];
    }
    return KVQ_OK;
}

/* One device allocation: every mask_u8 (contiguous, zeroed by one memset),
 * every codes_u8, the concatenated counts and their scan, CUB's storage, the
 * descriptors, the totals. Points the descriptors at their scratch. */
static kvq_status carve_scratch(kvq_backend_context *ctx, batch *b)
{
    size_t rows_bytes = 0;
    uint64_t tokens = 0;
    for (uint32_t k = 0; k < b->n_jobs; k++) {
        rows_bytes += round256(b->rows[k]);
        tokens += b->host[k].t_end - b->host[k].t_begin;
    }
    b->n_counts = (uint32_t)tokens; /* below INT_MAX: check_jobs */
    b->marks_bytes = rows_bytes;
    b->cub_bytes = kvq_cuda_scan_temp_bytes(b->n_counts);
    const size_t scan_bytes = round256(((size_t)b->n_counts + 1u) * 4u);
    const size_t at_counts = 2u * rows_bytes, at_scan = at_counts + scan_bytes, at_cub = at_scan + scan_bytes;
    const size_t at_descs = at_cub + round256(b->cub_bytes + 1u);
    const size_t at_totals = at_descs + round256((size_t)b->n_jobs * sizeof *b->host);
    void *scratch = NULL;
    kvq_status status = cuda_scratch(ctx, CUDA_SCRATCH_BATCH, at_totals + (size_t)b->n_jobs * 4u, &scratch);
    if (status != KVQ_OK) return status;
    unsigned char *base = scratch;
    b->marks = base;
    b->counts = (uint32_t *)(void *)(base + at_counts);
    b->scan = (uint32_t *)(void *)(base + at_scan);
    b->cub = base + at_cub;
    b->dev = (kvq_cuda_batch_job *)(void *)(base + at_descs);
    b->totals = (uint32_t *)(void *)(base + at_totals);
    size_t at = 0;
    uint32_t first_count = 0;
    for (uint32_t k = 0; k < b->n_jobs; k++) {
        b->host[k].mask_u8 = base + at;
        b->host[k].codes_u8 = base + rows_bytes + at;
        b->host[k].first_count = first_count;
        at += round256(b->rows[k]);
        first_count += b->host[k].t_end - b->host[k].t_begin;
    }
    return KVQ_OK;
}

/* Phase 1: every job's fp16 rows (if asked), codes, params, packed rows and
 * outlier total, and the download of the totals; nothing waited for. */
static kvq_status enqueue_counts(kvq_backend_context *ctx, const batch *b)
{
    cudaStream_t s = ctx->stream;
    const kvq_cuda_batch_job *dev = b->dev, *host = b->host;
    const uint32_t n = b->n_jobs;
    cudaError_t err = cudaMemcpyAsync(b->dev, host, (size_t)n * sizeof *host, cudaMemcpyHostToDevice, s);
    if (err == cudaSuccess) err = cudaMemsetAsync(b->marks, 0, b->marks_bytes, s);
    if (err == cudaSuccess && b->any_fp16) err = kvq_cuda_batch_write_fp16_rows(dev, host, n, s);
    for (int kind = 0; kind < KIND_COUNT && err == cudaSuccess; kind++)
        if (b->kind_count[kind] > 0)
            err = quantize_step[kind](dev + b->kind_first[kind], host + b->kind_first[kind], b->kind_count[kind], s);
    if (err == cudaSuccess) err = kvq_cuda_batch_pack_token_rows(dev, host, n, s);
    if (err == cudaSuccess)
        err = kvq_cuda_batch_count_outliers(dev, host, n, b->n_counts, b->counts, b->scan, b->cub, b->cub_bytes,
                                            b->totals, s);
    if (err == cudaSuccess)
        err = cudaMemcpyAsync(b->host_totals, b->totals, (size_t)n * 4u, cudaMemcpyDeviceToHost, s);
    return cuda_check(ctx, err, "quantize jobs");
}

/* Every job's outlier count, then the first job (in the caller's order) that
 * has more than its room. */
static kvq_status check_capacity(kvq_backend_context *ctx, cuda_quant_job *jobs, const batch *b,
                                 const uint32_t *capacity)
{
    for (uint32_t k = 0; k < b->n_jobs; k++) jobs[b->order[k]].n_outliers = b->host_totals[k];
    for (uint32_t j = 0; j < b->n_jobs; j++)
        if (jobs[j].n_outliers > capacity[j])
            return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH,
                             "quantize jobs: job %u (tokens [%u, %u)) has %u outliers, its arrays room for %u; no "
                             "outliers were written",
                             j, jobs[j].t_begin, jobs[j].t_end, jobs[j].n_outliers, capacity[j]);
    return KVQ_OK;
}

kvq_status cuda_quantize_jobs(kvq_backend_context *ctx, cuda_quant_job *jobs, uint32_t n_jobs,
                              uint32_t *const *optr, uint16_t *const *ochan, uint16_t *const *oval,
                              const uint32_t *capacity)
{
    if (n_jobs == 0) return KVQ_OK;
    kvq_status status = check_jobs(ctx, jobs, n_jobs, optr, ochan, oval, capacity);
    if (status != KVQ_OK) return status;
    batch b = {.n_jobs = n_jobs};
    b.order = malloc((size_t)n_jobs * sizeof *b.order);
    b.rows = malloc((size_t)n_jobs * sizeof *b.rows);
    if (b.order == NULL || b.rows == NULL)
        status = cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "quantize jobs: out of host memory");
    if (status == KVQ_OK) status = describe_jobs(ctx, jobs, &b, optr, ochan, oval);
    if (status == KVQ_OK) status = carve_scratch(ctx, &b);
    if (status == KVQ_OK) status = enqueue_counts(ctx, &b);
    /* The batch's one round trip: every total at once. */
    if (status == KVQ_OK) status = cuda_sync(ctx, "quantize jobs");
    if (status == KVQ_OK) status = check_capacity(ctx, jobs, &b, capacity);
    if (status == KVQ_OK)
        status = cuda_check(ctx, kvq_cuda_batch_fill_outliers(b.dev, b.host, n_jobs, b.scan, ctx->stream),
                            "quantize jobs");
    free(b.order);
    free(b.rows);
    return status;
}
