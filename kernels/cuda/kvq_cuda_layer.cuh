/*
 * kvq_cuda_layer.cuh - the kernels of the device API (kvq/kvq_cuda.h) that
 * the validation backend does not have: reading the caller's fp16/bf16/fp32
 * rows from device memory, keeping the fp16 rows and pending inputs of an
 * incremental layer cache, and appending outliers after a count kept in
 * device memory (the validation cache learns it on the host instead). The
 * quantization itself is quantize.cu's batched steps and attention is
 * kvq_cuda_attention, unchanged (kvq_cuda_kernels.cuh).
 *
 * Plain C structs and extern "C" launchers, as kvq_cuda_kernels.cuh; no
 * launcher synchronises.
 */
#ifndef KVQ_CUDA_LAYER_CUH
#define KVQ_CUDA_LAYER_CUH

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What only the device sees, recorded for kvq_cuda_layer_status (the first one wins). */
typedef enum kvq_cuda_layer_error {
    KVQ_CUDA_LAYER_ERROR_NONE = 0,
    KVQ_CUDA_LAYER_ERROR_KV_VALUE = 1,     /* a key or value not finite within the fp16 range (S1.3) */
    KVQ_CUDA_LAYER_ERROR_Q_VALUE = 2,      /* a query element not finite within the fp16 range */
    KVQ_CUDA_LAYER_ERROR_OUTLIER_ROOM = 3, /* more outliers than config.key_outliers_per_token allows */
    KVQ_CUDA_LAYER_ERROR_KEY_RANGE = 4,    /* a dequantized key beyond the fp16 range (S9.1, attention) */
    KVQ_CUDA_LAYER_ERROR_Q_DOMAIN = 5,     /* a query pair outside the fp16 profile's domain (S12.4) */
    KVQ_CUDA_LAYER_ERROR_K_DOMAIN = 6      /* a key group outside the fp16 profile's domain (S12.4) */
} kvq_cuda_layer_error;

typedef struct kvq_cuda_layer_record {
    uint32_t code;  /* kvq_cuda_layer_error; set once (atomicCAS), the fields after it by the winner */
    uint32_t call;  /* the layer's call that found it */
    uint32_t seq, head, role, token, channel;
    float value;
} kvq_cuda_layer_record;

/* Precision and fp16 slots of one (sequence, role) for tokens [first, first + count): copied from
 * the call's upload into the sequence's arrays. */
typedef struct kvq_cuda_layer_update {
    const uint8_t *src_precision;
    const uint32_t *src_slot;
    uint8_t *precision;         /* the sequence's array at token `first` */
    uint32_t *slot;
    uint32_t count;
} kvq_cuda_layer_update;

/* One (sequence, head, role) of an append. The tokens [x_base, n) are the
 * pending ones [x_base, n0) (inputs kept in `pending`) and the new ones
 * [n0, n) (the caller's rows); [t_begin, t_end) became final in this call;
 * [pend_new, n) stays pending. */
typedef struct kvq_cuda_layer_job {
    const void *input;          /* the caller's row of token n0 (of the layer's kv dtype) */
    int64_t token_stride;       /* elements between the caller's rows */
    void *pending;              /* [pend_cap][head_dim] inputs (kv dtype): token t at row t % pend_cap */
    float *x;                   /* scratch: token t at x + (t - x_base) * head_dim */
    const uint32_t *slot;       /* the sequence's fp16 slots of this role (kvq_cuda_view.slot) */
    uint16_t *rows, *temp_rows; /* the tensor's fp16 pools */
    const uint8_t *mask;        /* outlier marks of the quantize step: token t at row t - u_base */
    uint32_t *optr;             /* the tensor's outliers by token (kvq_cuda_view) */
    uint16_t *ochan, *oval;
    uint32_t *counter;          /* outliers stored so far in the tensor */
    uint32_t outlier_cap;       /* room of ochan/oval */
    uint32_t outliers;          /* 1: this role can have outliers (the outlier step runs) */
    uint32_t pend_cap;
    uint32_t x_base, n0, n, t_begin, t_end, pend_new, u_base;
    uint32_t seq, head, role;   /* for the record */
} kvq_cuda_layer_job;

/* Where a call's element errors go, and what it is. */
typedef struct kvq_cuda_layer_call {
    kvq_cuda_layer_record *record;
    uint32_t call;
    uint32_t head_dim;
    uint32_t dtype;             /* kvq_cuda_dtype of the caller's keys and values */
} kvq_cuda_layer_call;

cudaError_t kvq_cuda_layer_launch_update_rows(const kvq_cuda_layer_update *updates, const kvq_cuda_layer_update *host,
                                       uint32_t n, cudaStream_t stream);
/* fp32 rows [x_base, n) of every job into its x, with S1.3's check (KV_VALUE). */
cudaError_t kvq_cuda_layer_launch_gather(const kvq_cuda_layer_job *jobs, const kvq_cuda_layer_job *host, uint32_t n_jobs,
                                  kvq_cuda_layer_call call, cudaStream_t stream);
/* S4.1 step 3 from x: the fp16 rows of the temporary tokens of [x_base, n) and of the new final fp16
 * tokens (t >= n0), as kvq_cuda_write_fp16_rows(x, x_base, x_base, n, n0, ...) does; then the inputs of
 * [pend_new, n) into `pending` (narrowed back to the kv dtype, exactly). */
cudaError_t kvq_cuda_layer_launch_store(const kvq_cuda_layer_job *jobs, const kvq_cuda_layer_job *host, uint32_t n_jobs,
                                 kvq_cuda_layer_call call, cudaStream_t stream);
/* S7.4 for the jobs with outliers: the marked elements of [t_begin, t_end) in token and channel order
 * from ochan/oval[*counter], optr[t_begin .. n], *counter advanced: what kvq_cuda_count_outliers and
 * kvq_cuda_fill_outliers(..., ptr_end = n, base = *counter) write, with the base read on the device.
 * One block per job. A job whose outliers would exceed outlier_cap records OUTLIER_ROOM instead. */
cudaError_t kvq_cuda_layer_launch_outliers(const kvq_cuda_layer_job *jobs, uint32_t n_jobs, kvq_cuda_layer_call call,
                                    cudaStream_t stream);

/* Queries (seq_ids: the call's sequences, in device memory, for the record): element c of row (i, j) at q + i * seq_stride + j * head_stride + c -> q32[i][j][c], with
 * S1.3's check (Q_VALUE) and, when check_domain, the fp16 profile's domain |q_a| + |q_b| <= 2^15 over
 * both pairings (*domain_flag = 1 when outside; the ABI's queries_in_fp16_domain). */
cudaError_t kvq_cuda_layer_launch_queries(const void *q, uint32_t dtype, int64_t seq_stride, int64_t head_stride,
                                   uint32_t n_seqs, uint32_t n_heads, const uint32_t *seq_ids,
                                   float *q32, uint32_t check_domain, uint32_t *domain_flag, kvq_cuda_layer_call call,
                                   cudaStream_t stream);
/* out32[i][j][c] -> the caller's out (dtype, strides), rounded to nearest. When record_flags, a
 * set bit of *attention_flags (kvq_cuda_attention_args.flags) or *domain_flag is recorded first. */
cudaError_t kvq_cuda_layer_launch_outputs(const float *out32, void *out, uint32_t dtype, int64_t seq_stride,
                                   int64_t head_stride, uint32_t n_seqs, uint32_t n_heads,
                                   const uint32_t *attention_flags, const uint32_t *domain_flag,
                                   uint32_t record_flags, kvq_cuda_layer_call call, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif /* KVQ_CUDA_LAYER_CUH */
