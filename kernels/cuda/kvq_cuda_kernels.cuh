/*
 * kvq_cuda_kernels.cuh - the interface between the CUDA backend's host code
 * (C, in backends/cuda) and its kernels (CUDA C++, the .cu files here).
 *
 * Everything here is plain C so that the host side can stay C11: the structs
 * are what the kernels read, and every launcher is an extern "C" function that
 * enqueues work on `stream` and returns the launch's cudaError_t (execution
 * errors surface at the next synchronisation, which the host code checks).
 * No launcher synchronises, except kvq_cuda_count_outliers, which returns a
 * count to the host (it says so).
 */
#ifndef KVQ_CUDA_KERNELS_CUH
#define KVQ_CUDA_KERNELS_CUH

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* fp16_slot values of the device tensors. A token stored in fp16 has its row
 * in the permanent pool (rows) or, with this bit set, in the temporary pool
 * (temp_rows: a cache's window and residual tokens, which S15.3 lets change). */
#define KVQ_CUDA_TEMP_SLOT 0x80000000u
#define KVQ_CUDA_NO_SLOT 0xFFFFFFFFu

/* Where the group parameters of element (t, c) live (S4.5). */
typedef enum kvq_cuda_param_layout {
    KVQ_CUDA_PARAMS_VALUES = 0,     /* params[t * (d / G) + c / G] */
    KVQ_CUDA_PARAMS_KEYS_ONLINE = 1, /* params[(t / G) * d + c] */
    KVQ_CUDA_PARAMS_KEYS_CALIBRATED = 2 /* params[c] */
} kvq_cuda_param_layout;

/* One quantized head slice as every kernel sees it. The layout is S4.4's
 * except for two things the kernels need: outliers are always stored by token
 * (CSR: optr[n_tokens + 1], channel, value; for keys the host converts to and
 * from S4.4's CSC), and fp16 rows are found through `slot` (see above). Codes
 * are rows of row_words little-endian 32-bit words (S5.2, S5.3). Params are
 * kvq_group_params as one 32-bit word: a | b << 16. */
typedef struct kvq_cuda_view {
    const uint8_t *precision;   /* [n_tokens] kvq_precision */
    const uint32_t *slot;       /* [n_tokens] */
    const uint16_t *rows;       /* permanent fp16 rows [..][head_dim] */
    const uint16_t *temp_rows;  /* temporary fp16 rows [..][head_dim] (NULL unless a cache's) */
    const uint32_t *codes;      /* [n_tokens][row_words] (+16 bytes of slack for 16-byte loads) */
    const uint32_t *params;     /* see kvq_cuda_param_layout */
    const uint32_t *optr;       /* [n_tokens + 1] outliers by token */
    const uint16_t *ochan;      /* [n_outliers] channel */
    const uint16_t *oval;       /* [n_outliers] fp16 bits */
    uint32_t n_tokens, head_dim, row_words, bits;
    uint32_t n_outliers;        /* the tensor's outliers (S7), known on the host: 0 lets the launcher
                                   choose a kernel without outlier corrections in its fast path */
    uint32_t scheme;            /* kvq_scheme */
    uint32_t layout;            /* kvq_cuda_param_layout */
    uint32_t group_size;        /* values: G; online keys: block length; calibrated: unused */
    float signpost[16];         /* NUQ codebook (S6.5); zeros otherwise */
} kvq_cuda_view;

/* How a group of numbers becomes codes (S3, S6): what the quantize kernels need. */
typedef struct kvq_cuda_quantizer {
    uint32_t scheme, bits;
    float threshold[15];        /* NUQ tau_j (S6.2) */
    float signpost[16];         /* NUQ s_j */
} kvq_cuda_quantizer;

/* ---- quantize (quantize.cu) ---------------------------------------------- */

/* S1.3: the smallest index i < n with x[i] not finite within the fp16 range is
 * atomically min-ed into *first_bad (which the caller initialises to all ones). */
cudaError_t kvq_cuda_find_nonfinite(const float *x, size_t n, unsigned long long *first_bad, cudaStream_t stream);

/* S4.1 step 3: for tokens t in [t_begin, t_end) with slot[t] != NO_SLOT, the
 * row fp16(x[t - x_base][c]); temporary slots always, permanent ones only for
 * t >= perm_from (older permanent rows were written before). */
cudaError_t kvq_cuda_write_fp16_rows(const float *x, uint32_t x_base, uint32_t t_begin, uint32_t t_end,
                                     uint32_t perm_from, uint32_t head_dim, const uint32_t *slot, uint16_t *rows,
                                     uint16_t *temp_rows, cudaStream_t stream);

/* S4.2 values: for every QUANTIZED token in [t_begin, t_end) and group j,
 * outliers (S7.2), params (S3/S6) into params[t * (d / G) + j], codes and
 * outlier marks into codes_u8 / mask_u8 at row t - u_base. */
cudaError_t kvq_cuda_quantize_values(const float *x, uint32_t x_base, uint32_t t_begin, uint32_t t_end,
                                     uint32_t head_dim, uint32_t group_size, uint32_t outlier_ppm,
                                     const uint8_t *precision, const kvq_cuda_quantizer *q, uint32_t *params,
                                     uint8_t *codes_u8, uint8_t *mask_u8, uint32_t u_base, cudaStream_t stream);

/* S4.2 calibrated keys: params[c] fixed (computed by the caller); codes and the
 * strict outlier rule (S7.3) for every QUANTIZED token in [t_begin, t_end).
 * ranges holds lo, hi per channel; NULL for beyond_range CLAMP (no outliers). */
cudaError_t kvq_cuda_quantize_keys_calibrated(const float *x, uint32_t x_base, uint32_t t_begin, uint32_t t_end,
                                              uint32_t head_dim, const uint8_t *precision,
                                              const kvq_cuda_quantizer *q, const uint32_t *params,
                                              const float *ranges, uint8_t *codes_u8, uint8_t *mask_u8,
                                              uint32_t u_base, cudaStream_t stream);

/* S4.3 online keys: blocks [b_begin, b_end) of G tokens; per channel of each
 * block with a QUANTIZED token: outliers over the eligible tokens, params into
 * params[b * d + c], codes and marks at row t - u_base. Only eligible tokens'
 * inputs are read, so x may start at x_base > b_begin * G. */
cudaError_t kvq_cuda_quantize_keys_online(const float *x, uint32_t x_base, uint32_t b_begin, uint32_t b_end,
                                          uint32_t head_dim, uint32_t group_size, uint32_t outlier_ppm,
                                          const uint8_t *precision, const kvq_cuda_quantizer *q, uint32_t *params,
                                          uint8_t *codes_u8, uint8_t *mask_u8, uint32_t u_base, cudaStream_t stream);

/* S4.1 step 6: pack the rows of the QUANTIZED tokens in [t_begin, t_end) from
 * codes_u8 (row t - u_base) into codes (row t of row_words words). */
cudaError_t kvq_cuda_pack_token_rows(const uint8_t *codes_u8, uint32_t u_base, uint32_t t_begin, uint32_t t_end,
                                     uint32_t head_dim, uint32_t bits, const uint8_t *precision, uint32_t *codes,
                                     cudaStream_t stream);

/* S4.1 step 7, first half: counts[i] = outliers of token t_begin + i (from
 * mask_u8 row t - u_base) for i < n = t_end - t_begin, then an exclusive scan
 * into scan[0 .. n] using `temp` (temp_bytes, see kvq_cuda_scan_temp_bytes).
 * Synchronises the stream and returns the total in *total. */
cudaError_t kvq_cuda_count_outliers(const uint8_t *mask_u8, uint32_t u_base, uint32_t t_begin, uint32_t t_end,
                                    uint32_t head_dim, uint32_t *counts, uint32_t *scan, void *temp,
                                    size_t temp_bytes, uint32_t *total, cudaStream_t stream);
/* The same without synchronising: the total is left in the device word
 * *total_device (a copy of scan[n]; NULL: no copy, the total stays only in
 * scan[n]), so that many ranges can be counted before one download. */
cudaError_t kvq_cuda_count_outliers_async(const uint8_t *mask_u8, uint32_t u_base, uint32_t t_begin, uint32_t t_end,
                                          uint32_t head_dim, uint32_t *counts, uint32_t *scan, void *temp,
                                          size_t temp_bytes, uint32_t *total_device, cudaStream_t stream);
/* Scratch bytes kvq_cuda_count_outliers(_async) needs for n tokens. */
size_t kvq_cuda_scan_temp_bytes(uint32_t n);

/* S4.1 step 7, second half: optr[t] = base + scan[t - t_begin] for t in
 * [t_begin, t_end], then optr[t] = base + scan[n] for t in (t_end, ptr_end];
 * the outliers of each token in channel order at ochan/oval[optr[t] ..]. */
cudaError_t kvq_cuda_fill_outliers(const float *x, uint32_t x_base, const uint8_t *mask_u8, uint32_t u_base,
                                   uint32_t t_begin, uint32_t t_end, uint32_t ptr_end, uint32_t head_dim,
                                   const uint32_t *scan, uint32_t base, uint32_t *optr, uint16_t *ochan,
                                   uint16_t *oval, cudaStream_t stream);

/* ---- batched quantize (quantize.cu) --------------------------------------
 * Many token ranges ("jobs": a model layer's heads, keys and values) with one
 * launch per step for the whole batch instead of one per range: the jobs are
 * an array of descriptors in device memory (its host copy sizes the grids),
 * gridDim.y picks a job, and each job runs the same device code as the
 * single-range launcher of that step, so the bytes are the same. */
typedef struct kvq_cuda_batch_job {
    const float *x;              /* input rows, row 0 = token x_base */
    const uint8_t *precision;    /* [tensor tokens] */
    uint32_t *params;            /* values, online keys: written in the role's layout */
    const uint32_t *cal_params;  /* calibrated keys: params[d], read */
    const float *cal_ranges;     /* calibrated keys: lo, hi per channel; NULL: clamp (S7.3) */
    uint32_t *codes;             /* packed rows, row t */
    uint8_t *codes_u8, *mask_u8; /* scratch, row 0 = token u_base; mask_u8 zeroed */
    const uint32_t *slot;        /* fp16 rows (S4.1 step 3) of the range, or NULL: none written */
    uint16_t *rows, *temp_rows;  /* as kvq_cuda_write_fp16_rows with perm_from = t_begin */
    uint32_t *optr;              /* optr[t_begin .. t_end], from 0 */
    uint16_t *ochan, *oval;      /* the range's outliers from index 0 */
    uint32_t x_base, t_begin, t_end, u_base;
    uint32_t head_dim;
    uint32_t group_size;         /* values: G (never 0); online keys: block length */
    uint32_t outlier_ppm;
    uint32_t first_count;        /* this job's first entry in the batch's concatenated counts */
    kvq_cuda_quantizer q;
} kvq_cuda_batch_job;

/* Each launcher takes the device array `jobs` and its host copy `jobs_host`
 * (both [n_jobs]), and enqueues the step for every job. */
/* S4.1 step 3 for the jobs with a slot array. */
cudaError_t kvq_cuda_batch_write_fp16_rows(const kvq_cuda_batch_job *jobs, const kvq_cuda_batch_job *jobs_host,
                                           uint32_t n_jobs, cudaStream_t stream);
/* S4.1 steps 4-5 (kvq_cuda_quantize_values, _keys_online, _keys_calibrated),
 * every job of the array being of that kind. */
cudaError_t kvq_cuda_batch_quantize_values(const kvq_cuda_batch_job *jobs, const kvq_cuda_batch_job *jobs_host,
                                           uint32_t n_jobs, cudaStream_t stream);
cudaError_t kvq_cuda_batch_quantize_keys_online(const kvq_cuda_batch_job *jobs, const kvq_cuda_batch_job *jobs_host,
                                                uint32_t n_jobs, cudaStream_t stream);
cudaError_t kvq_cuda_batch_quantize_keys_calibrated(const kvq_cuda_batch_job *jobs,
                                                    const kvq_cuda_batch_job *jobs_host, uint32_t n_jobs,
                                                    cudaStream_t stream);
/* S4.1 step 6 (kvq_cuda_pack_token_rows). */
cudaError_t kvq_cuda_batch_pack_token_rows(const kvq_cuda_batch_job *jobs, const kvq_cuda_batch_job *jobs_host,
                                           uint32_t n_jobs, cudaStream_t stream);
/* S4.1 step 7, first half: every job's per-token counts into counts[
 * first_count ..] (n_counts = the jobs' tokens in all, each job's range at its
 * first_count), one exclusive scan of all of them into scan[0 .. n_counts]
 * (temp: kvq_cuda_scan_temp_bytes(n_counts)), and job k's total into the
 * device word totals[k]. Does not synchronise. */
cudaError_t kvq_cuda_batch_count_outliers(const kvq_cuda_batch_job *jobs, const kvq_cuda_batch_job *jobs_host,
                                          uint32_t n_jobs, uint32_t n_counts, uint32_t *counts, uint32_t *scan,
                                          void *temp, size_t temp_bytes, uint32_t *totals, cudaStream_t stream);
/* S4.1 step 7, second half, from that scan: each job's outliers at
 * ochan/oval[0 ..] and optr[t_begin .. t_end] (kvq_cuda_fill_outliers with
 * base 0 and ptr_end = t_end). */
cudaError_t kvq_cuda_batch_fill_outliers(const kvq_cuda_batch_job *jobs, const kvq_cuda_batch_job *jobs_host,
                                         uint32_t n_jobs, const uint32_t *scan, cudaStream_t stream);

/* ---- dequantize and packing (dequantize.cu, pack.cu) --------------------- */

/* cudaSuccess when this build holds code the current device can run (the
 * architectures chosen at build time, or PTX it can compile). */
cudaError_t kvq_cuda_probe(void);

/* S4.5: out[n_tokens][head_dim] = the exact values of view (outliers applied). */
cudaError_t kvq_cuda_dequantize(const kvq_cuda_view *view, float *out, cudaStream_t stream);

/* S5.2 for the ABI's L0 operations: n_rows rows of row_len codes (one per
 * byte) <-> packed rows of row_len * bits / 8 bytes. */
cudaError_t kvq_cuda_pack_rows(const uint8_t *codes, uint32_t n_rows, uint32_t row_len, uint32_t bits,
                               uint8_t *packed, cudaStream_t stream);
cudaError_t kvq_cuda_unpack_rows(const uint8_t *packed, uint32_t n_rows, uint32_t row_len, uint32_t bits,
                                 uint8_t *codes, cudaStream_t stream);

/* ---- decode attention (attention.cu) ------------------------------------- */

/* One sequence of a (batched) decode attention call (S11). */
typedef struct kvq_cuda_seq {
    kvq_cuda_view keys, values;
    const uint32_t *positions;  /* [n_tokens], or NULL: position of token t is pos0 + t */
    uint32_t pos0;
    uint32_t q_position;
    uint32_t n_tokens;
    uint32_t n_splits;          /* ceil(n_tokens / tokens_per_split), filled by the launcher's caller */
} kvq_cuda_seq;

/* Which split kernel kvq_cuda_attention runs (kvq_cuda_attention_args.kernel). */
typedef enum kvq_cuda_attention_kernel {
    KVQ_CUDA_KERNEL_AUTO = 0,    /* the fastest one measured for the format (see kvq_cuda_attention_kernel_for) */
    KVQ_CUDA_KERNEL_GENERAL = 1, /* attention.cu: every format, fp32 arithmetic (S12.3) */
    KVQ_CUDA_KERNEL_FAST = 2,    /* attention_fast.cu: head_dim 128, HALF RoPE, fp32 arithmetic */
    KVQ_CUDA_KERNEL_TC = 3       /* attention_tc.cu: tensor cores, the fp16 profile (S12.4) */
} kvq_cuda_attention_kernel;

typedef struct kvq_cuda_attention_args {
    const kvq_cuda_seq *seqs;   /* device [n_seq] */
    const float *q;             /* device [n_seq][n_q][head_dim], before RoPE */
    const double *theta;        /* device [head_dim / 2] RoPE inverse frequencies (S9.3), NULL: no rotation */
    const double *rope_step;    /* device kvq_cuda_rope_step_table (faster RoPE of consecutive positions), or NULL */
    const float *rope_step32;   /* device kvq_cuda_rope_step32_table (the fast kernel's RoPE), or NULL */
    const kvq_cuda_seq *seqs_host; /* host copy of seqs (lets the launcher pick the fast kernel), or NULL */
    uint32_t pairing;           /* kvq_rope_pairing (ignored when theta is NULL) */
    uint32_t n_seq, n_q, head_dim;
    uint32_t tokens_per_split;  /* a multiple of kvq_cuda_attention_tile(head_dim) */
    uint32_t max_splits;        /* largest n_splits */
    uint32_t max_key_words;     /* largest keys.row_words of the batch (sizes shared memory) */
    uint32_t max_value_words;   /* largest values.row_words */
    float score_scale;          /* fl32(log2(e) / sqrt(head_dim)): scores in the base-2 domain */
    float *partial_o;           /* device [n_seq][max_splits][n_q][head_dim] (unused if max_splits == 1) */
    float *partial_ml;          /* device [n_seq][max_splits][n_q][2] */
    float *out;                 /* device [n_seq][n_q][head_dim] */
    uint32_t *flags;            /* device word, bit 0: a dequantized key beyond the fp16 range; bit 1: an input
                                   outside the fp16 profile's domain (S12.4), rerun with allow_fp16 = 0 */
    uint32_t allow_fp16;        /* the caller's profile admits fp16 arithmetic (S12.4): the tensor-core path may run */
    uint32_t kernel;            /* kvq_cuda_attention_kernel the caller asks for (0: automatic) */
} kvq_cuda_attention_args;

/* Host: table[i][b] = (cos, sin) of b * theta[i] in double, b < 16, i <
 * head_dim / 2 (head_dim * 16 doubles): with it the kernel computes RoPE of
 * tiles at consecutive positions by angle addition (see attention.cu). */
void kvq_cuda_rope_step_table(const double *theta, uint32_t head_dim, double *table);

/* Host: table[i][o] = fp32 (cos, sin) of o * theta[i] (each rounded once
 * from double, S9.3), o < KVQ_CUDA_STEP32_OFFSETS, i < head_dim / 2: the fast
 * kernel's RoPE is one fp32 angle addition from a per-tile base (see
 * attention_fast.cu; S12.3 allows it). */
#define KVQ_CUDA_STEP32_OFFSETS 128u
void kvq_cuda_rope_step32_table(const double *theta, uint32_t head_dim, float *table);

/* Tokens per tile of the attention kernels for head_dim (128 at present):
 * tokens_per_split must be a multiple of it. */
uint32_t kvq_cuda_attention_tile(uint32_t head_dim);

/* tokens_per_split for a call (args->seqs_host, n_seq, n_q, head_dim and the
 * kernel request are read; its tokens_per_split is ignored) on sm_count SMs:
 * the shortest whole-tile splits that make every block of the call resident
 * at once (one wave) for the kernel kvq_cuda_attention_kernel_for picks. The
 * backend and the bench both split by it. */
uint32_t kvq_cuda_attention_tokens_per_split(const kvq_cuda_attention_args *args, uint32_t sm_count);

/* S11 with flash-decoding: one block per (split, group of query heads,
 * sequence), then a combine kernel when any sequence has several splits;
 * the split kernel is kvq_cuda_attention_kernel_for(args). */
cudaError_t kvq_cuda_attention(const kvq_cuda_attention_args *args, cudaStream_t stream);

/* Whether args are in the fast kernel's format (host, from args->seqs_host). */
int kvq_cuda_attention_fast_eligible(const kvq_cuda_attention_args *args);
/* Whether args are in the tensor-core kernel's format (attention_tc.cu, the
 * fp16 profile of S12.4): args->allow_fp16, head_dim 64/128/256, uniform
 * 2/4/8-bit keys and values of one width, values grouped per token, HALF RoPE
 * at computable positions or no RoPE. */
int kvq_cuda_attention_tc_eligible(const kvq_cuda_attention_args *args);
/* The kernel kvq_cuda_attention runs for args: args->kernel, or with
 * KVQ_CUDA_KERNEL_AUTO the environment's KVQ_CUDA_ATTENTION (general, fast,
 * tc) if set, else the fastest measured for the format; a kernel asked for
 * whose format does not fit falls back to the next (tc -> fast -> general). */
kvq_cuda_attention_kernel kvq_cuda_attention_kernel_for(const kvq_cuda_attention_args *args);
unsigned long long kvq_cuda_attention_tc_launches(void);
/* Blocks of that kernel resident per SM for the call args describes (args->seqs_host, n_seq,
 * n_q, head_dim: a call with outliers has their fp32 sums in shared memory, for min(8, n_q)
 * heads); cudaOccupancyMaxActiveBlocksPerMultiprocessor of the RoPE variant; -1 on error, 0
 * for a format without a table entry here. */
int kvq_cuda_attention_tc_blocks_per_sm(const kvq_cuda_attention_args *args);
/* Launches of the fast kernel in this process (lets tests show it ran). */
unsigned long long kvq_cuda_attention_fast_launches(void);

/* ---- the unquantized baseline (baseline.cu) ------------------------------ */

/* In place over scores[rows][n] (fp32): p = softmax(scale * s) per row,
 * written as fp16 into probs[rows][n]. */
cudaError_t kvq_cuda_softmax_rows(const float *scores, uint32_t rows, uint32_t n, float scale, uint16_t *probs,
                                  cudaStream_t stream);
/* fp32 -> fp16 (round to nearest even) of n elements. */
cudaError_t kvq_cuda_to_fp16(const float *in, size_t n, uint16_t *out, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif /* KVQ_CUDA_KERNELS_CUH */
