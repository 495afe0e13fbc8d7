/*
 * layer.cu - the device API's own kernels (kvq_cuda_layer.cuh): the caller's
 * rows in and out, the incremental cache's fp16 rows and pending inputs, and
 * outliers appended after a count kept on the device.
 *
 * The per-element rules are the validation backend's: S1.3's check is
 * find_nonfinite_kernel's (|x| <= 65504, false for NaN), fp16 rows are
 * kvq_dev_fp16 of the fp32 input (fp16_rows_element), and outliers are
 * written in token order, channels ascending within a token, their values
 * kvq_dev_fp16 of the input (fill_outliers_warp), so the bytes are the same.
 * Widening fp16 and bf16 to fp32 is exact, and so is narrowing a widened
 * value back, which is how pending inputs are kept in the caller's type.
 */
#include <cub/block/block_scan.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "fp16.cuh"
#include "kvq/kvq_cuda.h"
#include "kvq_cuda_kernels.cuh"
#include "kvq_cuda_layer.cuh"

namespace {

constexpr int kBlock = 256;
constexpr unsigned kMaxChunks = 65535u; /* gridDim.y */

__device__ __forceinline__ float load(const void *p, int64_t i, uint32_t dtype)
{
    if (dtype == KVQ_CUDA_FP16) return __half2float(static_cast<const __half *>(p)[i]);
    if (dtype == KVQ_CUDA_BF16) return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    return static_cast<const float *>(p)[i];
}

__device__ __forceinline__ void store(void *p, int64_t i, uint32_t dtype, float v)
{
    if (dtype == KVQ_CUDA_FP16)
        static_cast<__half *>(p)[i] = __float2half_rn(v);
    else if (dtype == KVQ_CUDA_BF16)
        static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(v);
    else
        static_cast<float *>(p)[i] = v;
}

/* S1.3 */
__device__ __forceinline__ bool in_fp16_range(float v) { return fabsf(v) <= 65504.0f; }

__device__ void record(const kvq_cuda_layer_call &call, uint32_t code, uint32_t seq, uint32_t head, uint32_t role,
                       uint32_t token, uint32_t channel, float value)
{
    kvq_cuda_layer_record *r = call.record;
    if (atomicCAS(&r->code, 0u, code) != 0u) return;
    r->call = call.call;
    r->seq = seq;
    r->head = head;
    r->role = role;
    r->token = token;
    r->channel = channel;
    r->value = value;
}

unsigned chunks_for(unsigned long long items)
{
    unsigned long long c = (items + kBlock - 1ull) / kBlock;
    return c == 0 ? 1u : c > kMaxChunks ? kMaxChunks : (unsigned)c;
}

/* Elements [0, (n - x_base) * d) of a job, strided over the chunks of gridDim.y. */
#define KVQ_FOR_JOB_ELEMENTS(j, d, i)                                                                                 \
    for (unsigned long long i = (unsigned long long)blockIdx.y * blockDim.x + threadIdx.x,                           \
                            i##_end = (unsigned long long)((j).n - (j).x_base) * (d);                                \
         i < i##_end; i += (unsigned long long)gridDim.y * blockDim.x)

__global__ void update_kernel(const kvq_cuda_layer_update *updates)
{
    const kvq_cuda_layer_update &u = updates[blockIdx.x];
    for (uint32_t i = blockIdx.y * blockDim.x + threadIdx.x; i < u.count; i += gridDim.y * blockDim.x) {
        u.precision[i] = u.src_precision[i];
        u.slot[i] = u.src_slot[i];
    }
}

__global__ void gather_kernel(const kvq_cuda_layer_job *jobs, kvq_cuda_layer_call call)
{
    const kvq_cuda_layer_job &j = jobs[blockIdx.x];
    const uint32_t d = call.head_dim;
    KVQ_FOR_JOB_ELEMENTS(j, d, i)
    {
        const uint32_t t = j.x_base + (uint32_t)(i / d), c = (uint32_t)(i % d);
        const float v = t < j.n0 ? load(j.pending, (int64_t)(t % j.pend_cap) * d + c, call.dtype)
                                 : load(j.input, (int64_t)(t - j.n0) * j.token_stride + c, call.dtype);
        if (!in_fp16_range(v)) record(call, KVQ_CUDA_LAYER_ERROR_KV_VALUE, j.seq, j.head, j.role, t, c, v);
        j.x[i] = v;
    }
}

__global__ void store_kernel(const kvq_cuda_layer_job *jobs, kvq_cuda_layer_call call)
{
    const kvq_cuda_layer_job &j = jobs[blockIdx.x];
    const uint32_t d = call.head_dim;
    KVQ_FOR_JOB_ELEMENTS(j, d, i)
    {
        const uint32_t t = j.x_base + (uint32_t)(i / d), c = (uint32_t)(i % d);
        const float v = j.x[i];
        const uint32_t s = j.slot[t];
        if (s != KVQ_CUDA_NO_SLOT) {
            if (s & KVQ_CUDA_TEMP_SLOT)
                j.temp_rows[(size_t)(s & ~KVQ_CUDA_TEMP_SLOT) * d + c] = kvq_dev_fp16(v);
            else if (t >= j.n0) /* older final rows were written when their token arrived */
                j.rows[(size_t)s * d + c] = kvq_dev_fp16(v);
        }
        if (t >= j.pend_new && j.pend_cap > 0) store(j.pending, (int64_t)(t % j.pend_cap) * d + c, call.dtype, v);
    }
}

__device__ __forceinline__ uint32_t marks_of(const kvq_cuda_layer_job &j, uint32_t t, uint32_t d)
{
    const uint8_t *row = j.mask + (size_t)(t - j.u_base) * d;
    uint32_t count = 0;
    for (uint32_t c = 0; c < d; c++) count += row[c];
    return count;
}

__global__ void __launch_bounds__(kBlock) outliers_kernel(const kvq_cuda_layer_job *jobs, kvq_cuda_layer_call call)
{
    using Scan = cub::BlockScan<uint32_t, kBlock>;
    __shared__ typename Scan::TempStorage temp;
    const kvq_cuda_layer_job &j = jobs[blockIdx.x];
    if (!j.outliers) return;
    const uint32_t d = call.head_dim, n_range = j.t_end - j.t_begin, tid = threadIdx.x;
    const uint32_t base = *j.counter; /* read by every thread before thread 0 advances it at the end */

    uint32_t mine = 0, skip = 0, total = 0;
    for (uint32_t k = tid; k < n_range; k += kBlock) mine += marks_of(j, j.t_begin + k, d);
    Scan(temp).ExclusiveSum(mine, skip, total);
    __syncthreads();
    if ((unsigned long long)base + total > j.outlier_cap) {
        if (tid == 0) record(call, KVQ_CUDA_LAYER_ERROR_OUTLIER_ROOM, j.seq, j.head, j.role, j.t_begin, 0, (float)total);
        return;
    }
    uint32_t done = 0;
    for (uint32_t k0 = 0; k0 < n_range; k0 += kBlock) {
        const uint32_t k = k0 + tid, t = j.t_begin + k;
        const uint32_t count = k < n_range ? marks_of(j, t, d) : 0u;
        uint32_t before = 0, chunk = 0;
        Scan(temp).ExclusiveSum(count, before, chunk);
        __syncthreads();
        if (k < n_range) {
            uint32_t at = base + done + before;
            j.optr[t] = at;
            const uint8_t *row = j.mask + (size_t)(t - j.u_base) * d;
            for (uint32_t c = 0; c < d; c++)
                if (row[c] != 0) {
                    j.ochan[at] = (uint16_t)c;
                    j.oval[at] = kvq_dev_fp16(j.x[(size_t)(t - j.x_base) * d + c]);
                    at++;
                }
        }
        done += chunk;
    }
    for (uint32_t t = j.t_end + tid; t <= j.n; t += kBlock) j.optr[t] = base + total;
    __syncthreads();
    if (tid == 0) *j.counter = base + total;
}

__global__ void queries_kernel(const void *q, uint32_t dtype, int64_t seq_stride, int64_t head_stride, uint32_t n_heads,
                               const uint32_t *seq_ids, float *q32, uint32_t check_domain, uint32_t *domain_flag,
                               kvq_cuda_layer_call call)
{
    const uint32_t row = blockIdx.x, i = row / n_heads, h = row % n_heads, d = call.head_dim;
    const int64_t at = (int64_t)i * seq_stride + (int64_t)h * head_stride;
    for (uint32_t c = threadIdx.x; c < d; c += blockDim.x) {
        const float v = load(q, at + c, dtype);
        if (!in_fp16_range(v)) record(call, KVQ_CUDA_LAYER_ERROR_Q_VALUE, seq_ids[i], h, 0, 0, c, v);
        q32[(size_t)row * d + c] = v;
        /* S12.4 over both pairings (rotate-half and interleaved), as the ABI checks on the host */
        if (check_domain && c < d / 2u &&
            (fabsf(v) + fabsf(load(q, at + c + d / 2u, dtype)) > 32768.0f ||
             fabsf(load(q, at + 2u * c, dtype)) + fabsf(load(q, at + 2u * c + 1u, dtype)) > 32768.0f))
            *domain_flag = 1u;
    }
}

__global__ void outputs_kernel(const float *out32, void *out, uint32_t dtype, int64_t seq_stride, int64_t head_stride,
                               uint32_t n_heads, const uint32_t *attention_flags, const uint32_t *domain_flag,
                               uint32_t record_flags, kvq_cuda_layer_call call)
{
    const uint32_t row = blockIdx.x, i = row / n_heads, h = row % n_heads, d = call.head_dim;
    if (record_flags && row == 0 && threadIdx.x == 0) {
        const uint32_t f = *attention_flags;
        if (*domain_flag) record(call, KVQ_CUDA_LAYER_ERROR_Q_DOMAIN, i, h, 0, 0, 0, 0.0f);
        if (f & 2u) record(call, KVQ_CUDA_LAYER_ERROR_K_DOMAIN, 0, 0, 0, 0, 0, 0.0f);
        if (f & 1u) record(call, KVQ_CUDA_LAYER_ERROR_KEY_RANGE, 0, 0, 0, 0, 0, 0.0f);
    }
    const int64_t at = (int64_t)i * seq_stride + (int64_t)h * head_stride;
    for (uint32_t c = threadIdx.x; c < d; c += blockDim.x) store(out, at + c, dtype, out32[(size_t)row * d + c]);
}

/* The most elements of one job, for the grid. */
unsigned long long most_elements(const kvq_cuda_layer_job *host, uint32_t n_jobs, uint32_t d)
{
    unsigned long long most = 0;
    for (uint32_t k = 0; k < n_jobs; k++) {
        const unsigned long long e = (unsigned long long)(host[k].n - host[k].x_base) * d;
        if (e > most) most = e;
    }
    return most;
}

} // namespace

extern "C" cudaError_t kvq_cuda_layer_launch_update_rows(const kvq_cuda_layer_update *updates,
                                                  const kvq_cuda_layer_update *host, uint32_t n, cudaStream_t stream)
{
    if (n == 0) return cudaSuccess;
    uint32_t most = 0;
    for (uint32_t k = 0; k < n; k++) most = host[k].count > most ? host[k].count : most;
    update_kernel<<<dim3(n, chunks_for(most)), kBlock, 0, stream>>>(updates);
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_layer_launch_gather(const kvq_cuda_layer_job *jobs, const kvq_cuda_layer_job *host,
                                             uint32_t n_jobs, kvq_cuda_layer_call call, cudaStream_t stream)
{
    if (n_jobs == 0) return cudaSuccess;
    gather_kernel<<<dim3(n_jobs, chunks_for(most_elements(host, n_jobs, call.head_dim))), kBlock, 0, stream>>>(jobs,
                                                                                                                call);
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_layer_launch_store(const kvq_cuda_layer_job *jobs, const kvq_cuda_layer_job *host,
                                            uint32_t n_jobs, kvq_cuda_layer_call call, cudaStream_t stream)
{
    if (n_jobs == 0) return cudaSuccess;
    store_kernel<<<dim3(n_jobs, chunks_for(most_elements(host, n_jobs, call.head_dim))), kBlock, 0, stream>>>(jobs,
                                                                                                               call);
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_layer_launch_outliers(const kvq_cuda_layer_job *jobs, uint32_t n_jobs,
                                               kvq_cuda_layer_call call, cudaStream_t stream)
{
    if (n_jobs == 0) return cudaSuccess;
    outliers_kernel<<<n_jobs, kBlock, 0, stream>>>(jobs, call);
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_layer_launch_queries(const void *q, uint32_t dtype, int64_t seq_stride, int64_t head_stride,
                                              uint32_t n_seqs, uint32_t n_heads, const uint32_t *seq_ids, float *q32,
                                              uint32_t check_domain, uint32_t *domain_flag, kvq_cuda_layer_call call,
                                              cudaStream_t stream)
{
    const unsigned threads = call.head_dim < (uint32_t)kBlock ? (call.head_dim + 31u) / 32u * 32u : kBlock;
    queries_kernel<<<n_seqs * n_heads, threads, 0, stream>>>(q, dtype, seq_stride, head_stride, n_heads, seq_ids, q32,
                                                             check_domain, domain_flag, call);
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_layer_launch_outputs(const float *out32, void *out, uint32_t dtype, int64_t seq_stride,
                                              int64_t head_stride, uint32_t n_seqs, uint32_t n_heads,
                                              const uint32_t *attention_flags, const uint32_t *domain_flag,
                                              uint32_t record_flags, kvq_cuda_layer_call call, cudaStream_t stream)
{
    const unsigned threads = call.head_dim < (uint32_t)kBlock ? (call.head_dim + 31u) / 32u * 32u : kBlock;
    outputs_kernel<<<n_seqs * n_heads, threads, 0, stream>>>(out32, out, dtype, seq_stride, head_stride, n_heads,
                                                             attention_flags, domain_flag, record_flags, call);
    return cudaGetLastError();
}
