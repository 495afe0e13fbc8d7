/*
 * cuda_internal.h - what the CUDA backend's host files share: the context,
 * tensor and cache objects, memory helpers, and the quantization steps used
 * by both quantize_head and the cache. The spec's host rules (checks, plan,
 * staging, the cache's bookkeeping, errors) are the shared host layer's
 * (backends/common, docs/PORTING.md), under the cuda_* names the host code
 * has always used. Not installed.
 *
 * Memory: tensors and caches live in device memory (caps.memory = DEVICE).
 * Every call enqueues its work on the context's stream and synchronises
 * before it returns, so a call is complete when it returns (ABI rule) and the
 * context's scratch buffers can be reused by the next call.
 */
#ifndef KVQ_CUDA_INTERNAL_H
#define KVQ_CUDA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "kvq/kvq.h"
#include "kvq/kvq_backend.h"
#include "kvq_cuda_kernels.cuh"

#include "host_cache.h"    /* backends/common: the host layer the backends share */
#include "host_slots.h"
#include "host_quantize.h"
#include "host_tensor.h"
#include "host_timer.h"

/* Device scratch buffers of a context, reused across calls and grown on demand. */
typedef enum cuda_scratch_id {
    CUDA_SCRATCH_INPUT,   /* fp32 rows uploaded for quantize_head */
    CUDA_SCRATCH_CODES,   /* one code per byte while quantizing */
    CUDA_SCRATCH_MASK,    /* outlier marks while quantizing */
    CUDA_SCRATCH_COUNTS,  /* outlier counts and their exclusive scan */
    CUDA_SCRATCH_CUB,     /* CUB's temporary storage */
    CUDA_SCRATCH_SMALL,   /* status words: first bad index, attention flags */
    CUDA_SCRATCH_UPLOAD,  /* per-call uploads: descriptors, queries, positions, RoPE table, ranges */
    CUDA_SCRATCH_PARTIAL, /* attention: partial results of the splits */
    CUDA_SCRATCH_OUTPUT,  /* results on their way back to the host */
    CUDA_SCRATCH_BATCH,   /* cuda_quantize_jobs: job descriptors, every job's codes and marks, the batch's
                             counts, scan, CUB storage and totals */
    CUDA_SCRATCH_COUNT
} cuda_scratch_id;

/* The profile (S12.4) a context's attention meets unless the caller asks
 * for another: the tensor-core path's. */
#define KVQ_CUDA_DEFAULT_PROFILE KVQ_PROFILE_FP16

struct kvq_backend_context {
    kvq_host_context host; /* first (host_context.h): last_error() and the device work the host layer asks for */
    int device;
    uint32_t profile; /* S12.4: fp32 runs only the exact kernels; fp16 lets the tensor-core path run */
    cudaStream_t stream;
    uint32_t sm_count;
    char name[320];
    void *scratch[CUDA_SCRATCH_COUNT];
    size_t scratch_bytes[CUDA_SCRATCH_COUNT];
    void *pinned; /* page-locked host staging for uploads and results */
    size_t pinned_bytes;
    /* RoPE inverse frequencies of the last (base, head_dim) asked for (S9.3). */
    float theta_base;
    uint32_t theta_dim;
    double theta[KVQ_MAX_HEAD_DIM / 2];
    /* Device copy of kvq_cuda_rope_step_table for (step_base, step_dim). */
    double *rope_step;
    float step_base;
    uint32_t step_dim;
    /* Device copy of kvq_cuda_rope_step32_table for (step32_base, step32_dim). */
    float *rope_step32;
    float step32_base;
    uint32_t step32_dim;
};

/* Device allocations a tensor may own. */
enum { CUDA_T_PRECISION, CUDA_T_SLOT, CUDA_T_ROWS, CUDA_T_CODES, CUDA_T_PARAMS, CUDA_T_OPTR, CUDA_T_OCHAN,
       CUDA_T_OVAL, CUDA_T_COUNT };

/* A quantized head slice in device memory. Its S4.4 contents are header (the
 * scalars, first as backends/common expects: kvq_host_header) plus view's arrays; outliers are kept by token for both roles
 * (kvq_cuda_kernels.cuh) and converted to S4.4's CSC for keys on read. */
struct kvq_backend_tensor {
    kvq_qtensor header;     /* scalar fields and codebook; every array pointer NULL */
    kvq_cuda_view view;     /* device arrays as the kernels see them */
    uint32_t n_perm_rows;   /* fp16 rows in view.rows */
    uint32_t n_temp_rows;   /* fp16 rows in view.temp_rows (a cache's window and residual tokens) */
    bool borrowed;          /* a cache's view: the cache owns the arrays */
    void *owned[CUDA_T_COUNT];
};
_Static_assert(offsetof(struct kvq_backend_tensor, header) == 0, "kvq_host_header reads it");

/* ---- errors (cuda_context.c, backends/common/host_error.h) --------------- */
/* Records a printf-style message in ctx's error and returns status. */
#define cuda_fail(ctx, status, ...) kvq_host_fail(&(ctx)->host.error, (status), __VA_ARGS__)
/* Records libkvq's kvq_last_error() for a failed libkvq call; passes status on. */
#define cuda_from_kvq(ctx, status) kvq_host_from_kvq(&(ctx)->host.error, (status))
/* KVQ_OK for cudaSuccess; allocation failures become KVQ_ERR_OUT_OF_MEMORY,
 * anything else KVQ_ERR_IO (the device failed), with CUDA's error string. */
kvq_status cuda_check(kvq_backend_context *ctx, cudaError_t err, const char *what);
/* Waits for the stream and reports anything that failed on it. */
kvq_status cuda_sync(kvq_backend_context *ctx, const char *what);

/* ---- memory (cuda_context.c) -------------------------------------------- */
/* A device allocation of at least `bytes` (never 0) plus 16 bytes of slack, so
 * that 16-byte loads of the last row stay inside; zero-filled when zero. */
kvq_status cuda_alloc(kvq_backend_context *ctx, size_t bytes, bool zero, void **out, const char *what);
void cuda_free(void *ptr);
/* Scratch buffer `id` of at least `bytes`; its old contents are lost when it grows. */
kvq_status cuda_scratch(kvq_backend_context *ctx, cuda_scratch_id id, size_t bytes, void **out);
/* Page-locked host staging of at least `bytes`; old contents lost when it grows. */
kvq_status cuda_pinned(kvq_backend_context *ctx, size_t bytes, void **out);
/* Asynchronous copies on the context's stream. */
kvq_status cuda_upload(kvq_backend_context *ctx, void *dst, const void *src, size_t bytes, const char *what);
kvq_status cuda_download(kvq_backend_context *ctx, void *dst, const void *src, size_t bytes, const char *what);
/* S9.3: theta_i = base^(-2i/d) in double for i < d/2, computed on the host
 * with the same expression as the reference and cached per (base, d). */
const double *cuda_rope_theta(kvq_backend_context *ctx, float base, uint32_t head_dim);
/* The device table kvq_cuda_rope_step_table for (base, head_dim), uploaded
 * once per (base, head_dim) (synchronously); NULL if it cannot be had, which
 * only makes attention compute every cos/sin directly. */
const double *cuda_rope_step(kvq_backend_context *ctx, float base, uint32_t head_dim);
/* The same for kvq_cuda_rope_step32_table (the fast attention kernel's). */
const float *cuda_rope_step32(kvq_backend_context *ctx, float base, uint32_t head_dim);

/* ---- validation: libkvq's rules through the host layer (backends/common) -- */
/* The names the CUDA host code has always used for them. */
#define cuda_check_config_enums(ctx, config, name)                                                          \
    kvq_host_from_kvq(&(ctx)->host.error, kvq_head_config_check_enums((config), (name)))
/* S4.1 step 1 checks 2 and 4-9 for head_dim. */
#define cuda_check_config(ctx, config, head_dim, name)                                                      \
    kvq_host_from_kvq(&(ctx)->host.error, kvq_head_config_check((config), (head_dim), (name)))
/* S1.3 on host memory: every x[i] finite within the fp16 range. */
#define cuda_check_finite(ctx, x, n, name) kvq_host_check_finite(&(ctx)->host.error, (x), (n), (name))
/* S9.1: the RoPE configuration for head_dim. */
#define cuda_check_rope(ctx, rope, head_dim) kvq_host_check_rope(&(ctx)->host.error, (rope), (head_dim))
/* S4.4: a host qtensor is consistent (kvq_qtensor_validate), so the device never reads out of bounds. */
#define cuda_check_qtensor(ctx, qt) kvq_host_from_kvq(&(ctx)->host.error, kvq_qtensor_validate(qt))
/* The quantizer of a valid configuration as the kernels take it. */
kvq_cuda_quantizer cuda_quantizer_of(const kvq_quantizer *q);

/* ---- tensors (cuda_tensor.c) -------------------------------------------- */
kvq_backend_tensor *cuda_tensor_new(void);
void cuda_tensor_destroy(kvq_backend_tensor *t);
/* Fills t->view's scalars from t->header. */
void cuda_tensor_set_view_scalars(kvq_backend_tensor *t);
/* Points t->view at the arrays t owns, and fills its scalars. */
void cuda_tensor_own_view(kvq_backend_tensor *t);
/* S10.4, S4.3: kvq_final_precision (kvq_rules.h), whose index contract this always had: precision[t]
 * for t from the start of the block holding `from` to n. */
#define cuda_final_precision(config, n, decided, from, precision)                                           \
    ((void)kvq_final_precision((config), (n), (decided), (from), (precision)))

/* ---- quantization steps (cuda_quantize.c) -------------------------------- */
/* S4.1 steps 4-7 for the QUANTIZED tokens of [t_begin, t_end). */
typedef struct cuda_quant_job {
    const kvq_head_config *config; /* role, quantizer, key mode, G, outlier_ppm */
    uint32_t head_dim;
    const float *x;                /* device input rows, row 0 = token x_base */
    uint32_t x_base;
    uint32_t t_begin, t_end;
    const uint8_t *precision;      /* device, the whole tensor's */
    uint32_t *params;              /* device, the whole tensor's layout */
    uint32_t *codes;               /* device packed rows, the whole tensor's */
    const uint32_t *cal_params;    /* calibrated keys: device params[d] */
    const float *cal_ranges;       /* calibrated keys: device lo, hi per channel */
    /* cuda_quantize_jobs only, optional: with fp16_slot set, the batch also
     * writes the range's fp16 rows (S4.1 step 3) as
     * kvq_cuda_write_fp16_rows(x, x_base, t_begin, t_end, t_begin, head_dim,
     * fp16_slot, fp16_rows, fp16_temp_rows) would, in the same launch for
     * every job instead of one launch per job. */
    const uint32_t *fp16_slot;
    uint16_t *fp16_rows, *fp16_temp_rows;
    /* set by cuda_quantize_codes and cuda_quantize_jobs */
    uint32_t u_base;               /* first token of the scratch rows */
    uint32_t n_outliers;           /* outliers of the range */
} cuda_quant_job;
/* Params, codes and packed rows of the range, then counts its outliers
 * (synchronises). The scratch buffers hold the job's state until
 * cuda_quantize_outliers. */
kvq_status cuda_quantize_codes(kvq_backend_context *ctx, cuda_quant_job *job);
/* The range's outliers at ochan/oval[base ..], optr[t_begin .. ptr_end]. */
kvq_status cuda_quantize_outliers(kvq_backend_context *ctx, const cuda_quant_job *job, uint32_t ptr_end,
                                  uint32_t base, uint32_t *optr, uint16_t *ochan, uint16_t *oval);

/* The two halves of cuda_quantize_codes, shared with cuda_quantize_jobs:
 * cuda_quant_job_begin sets job->u_base (n_outliers = 0) and returns the bytes
 * each of codes_u8 and mask_u8 needs; cuda_quant_job_enqueue enqueues S4.1
 * steps 4-6 (params, codes, marks, packed rows) into that zeroed scratch. */
size_t cuda_quant_job_begin(cuda_quant_job *job);
kvq_status cuda_quant_job_enqueue(kvq_backend_context *ctx, const cuda_quant_job *job, uint8_t *codes_u8,
                                  uint8_t *mask_u8);

/* S4.1 steps 4-7 for n_jobs jobs (cuda_quantize_batch.c) with ONE host
 * synchronisation in all, for callers that quantize many slices at once (a
 * model layer's heads), and a number of launches that does not grow with
 * n_jobs: every job's codes, params and packed rows (and fp16 rows, see
 * fp16_slot) and its outlier count are enqueued, the counts are downloaded
 * together, then every job's outliers are enqueued at ochan/oval[j][0 ..] and
 * optr[j][t_begin .. t_end] (base 0). The bytes are those of
 * cuda_quantize_codes + cuda_quantize_outliers per job. Jobs may differ in
 * role, key mode, scheme, bits, head_dim and range. Sets each job's u_base
 * and n_outliers. If a job has more
 * outliers than capacity[j], fails with KVQ_ERR_SIZE_MISMATCH naming it and
 * writes no outliers of any job (codes and params are written by then).
 * Returns with the outlier work still in flight on ctx->stream: later work
 * on that stream sees it, the host must synchronise before reading it. */
kvq_status cuda_quantize_jobs(kvq_backend_context *ctx, cuda_quant_job *jobs, uint32_t n_jobs,
                              uint32_t *const *optr, uint16_t *const *ochan, uint16_t *const *oval,
                              const uint32_t *capacity);

/* ---- attention (cuda_attention.c) --------------------------------------- */
/* One sequence for cuda_attention_run; keys/values validated by the caller. */
typedef struct cuda_attention_seq {
    const kvq_backend_tensor *keys, *values;
    const uint32_t *positions_host;   /* or NULL with positions_device */
    const uint32_t *positions_device; /* a cache's positions */
    uint32_t q_position;
} cuda_attention_seq;
/* S11 for n_seq sequences sharing head_dim: q_host[n_seq][n_q][d] ->
 * out_host[n_seq][n_q][d]; out_host is written only on success. */
kvq_status cuda_attention_run(kvq_backend_context *ctx, const cuda_attention_seq *seqs, uint32_t n_seq,
                              const kvq_rope *rope, const float *q_host, uint32_t n_q, float *out_host);

/* ---- timing on the device's clock (cuda_timing.c) ----------------------- */
/* Runs work(ctx, user) once (timer NULL: untimed) or warmup + runs times (backends/common/
 * host_timer.h), each run between two events on ctx->stream, adding its time to timer->ms. */
typedef kvq_status (*cuda_work_fn)(kvq_backend_context *ctx, void *user);
kvq_status cuda_timed(kvq_backend_context *ctx, kvq_host_timer *timer, cuda_work_fn work, void *user);
/* cuda_attention_run with its launches as timer says (cuda_attention.c). */
kvq_status cuda_attention_run_timed(kvq_backend_context *ctx, const cuda_attention_seq *seqs, uint32_t n_seq,
                                    const kvq_rope *rope, const float *q_host, uint32_t n_q, float *out_host,
                                    kvq_host_timer *timer);

/* ---- the API table's slots, by file (backends/common/host_slots.h) ------ */
KVQ_HOST_DECLARE_SLOTS(cuda);
KVQ_HOST_DECLARE_TIMING_SLOTS(cuda);
/* The device halves of tensor_read and of packing (cuda_tensor.c), for the host layer. */
kvq_status cuda_fill_staging(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *staging);
kvq_status cuda_run_rows(kvq_backend_context *ctx, const kvq_host_rows *rows);
/* The slots the host layer implements, under the names the CUDA host code has used. */
#define cuda_last_error kvq_host_slot_last_error
#define cuda_tensor_info kvq_host_slot_tensor_info
#define cuda_tensor_read kvq_host_slot_tensor_read
#define cuda_pack_codes kvq_host_slot_pack_codes
#define cuda_unpack_codes kvq_host_slot_unpack_codes

#endif /* KVQ_CUDA_INTERNAL_H */
