/*
 * baseline.cu - the kernels of the unquantized fp16 baseline
 * (backends/cuda/cuda_baseline.h): query conversion and a row softmax.
 */
#include <cuda_fp16.h>
#include <math.h>

#include "kvq_cuda_kernels.cuh"

namespace {

constexpr int kThreads = 256;
constexpr unsigned kFull = 0xFFFFFFFFu;

__device__ float block_reduce(float v, bool is_max, float *shared)
{
    for (int off = 16; off > 0; off >>= 1) {
        float o = __shfl_xor_sync(kFull, v, off);
        v = is_max ? fmaxf(v, o) : v + o;
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads(); /* shared may still be read by a previous reduction */
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = shared[0];
    for (int w = 1; w < kThreads / 32; w++) v = is_max ? fmaxf(v, shared[w]) : v + shared[w];
    return v;
}

/* One block per row: p = exp(scale * s - max) / sum, as fp16. */
__global__ void softmax_rows_kernel(const float *scores, uint32_t n, float scale, __half *probs)
{
    __shared__ float shared[kThreads / 32];
    const float *s = scores + (size_t)blockIdx.x * n;
    __half *p = probs + (size_t)blockIdx.x * n;
    float m = -INFINITY;
    for (uint32_t i = threadIdx.x; i < n; i += kThreads) m = fmaxf(m, s[i] * scale);
    m = block_reduce(m, true, shared);
    float sum = 0.0f;
    for (uint32_t i = threadIdx.x; i < n; i += kThreads) sum += __expf(s[i] * scale - m);
    sum = block_reduce(sum, false, shared);
    const float inv = 1.0f / sum;
    for (uint32_t i = threadIdx.x; i < n; i += kThreads) p[i] = __float2half_rn(__expf(s[i] * scale - m) * inv);
}

__global__ void to_fp16_kernel(const float *in, size_t n, __half *out)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __float2half_rn(in[i]);
}

} // namespace

extern "C" cudaError_t kvq_cuda_softmax_rows(const float *scores, uint32_t rows, uint32_t n, float scale,
                                             uint16_t *probs, cudaStream_t stream)
{
    softmax_rows_kernel<<<rows, kThreads, 0, stream>>>(scores, n, scale, reinterpret_cast<__half *>(probs));
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_to_fp16(const float *in, size_t n, uint16_t *out, cudaStream_t stream)
{
    to_fp16_kernel<<<(unsigned)((n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(in, n,
                                                                                      reinterpret_cast<__half *>(out));
    return cudaGetLastError();
}
