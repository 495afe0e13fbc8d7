/*
 * dequantize.cu - S4.5 on the device: the exact fp32 values of a quantized
 * head slice. Dense elements first (fp16 rows widen exactly, codes decode with
 * one specified fp32 operation), then every outlier replaces its element.
 */
#include "codes.cuh"
#include "fp16.cuh"
#include "kvq_cuda_kernels.cuh"
#include "quantizer.cuh"

namespace {

constexpr int kBlock = 256;

__global__ void dequantize_dense_kernel(kvq_cuda_view v, float *out)
{
    const uint32_t d = v.head_dim;
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (unsigned long long)v.n_tokens * d) return;
    uint32_t t = (uint32_t)(i / d), c = (uint32_t)(i % d);
    if (v.precision[t] != KVQ_PREC_QUANTIZED) {
        uint32_t s = v.slot[t];
        const uint16_t *row = (s & KVQ_CUDA_TEMP_SLOT) ? v.temp_rows + (size_t)(s & ~KVQ_CUDA_TEMP_SLOT) * d
                                                       : v.rows + (size_t)s * d;
        out[i] = kvq_dev_fp32(row[c]);
        return;
    }
    uint32_t code = kvq_dev_code_at(v.codes + (size_t)t * v.row_words, c, v.bits);
    size_t p;
    if (v.layout == KVQ_CUDA_PARAMS_VALUES)
        p = (size_t)t * (d / v.group_size) + c / v.group_size;
    else if (v.layout == KVQ_CUDA_PARAMS_KEYS_ONLINE)
        p = (size_t)(t / v.group_size) * d + c;
    else
        p = c;
    out[i] = kvq_dev_decode_word(v.scheme, v.bits, v.params[p], v.signpost, code);
}

/* S7.4: outliers replace (not add to) their element; one thread per token. */
__global__ void dequantize_outliers_kernel(kvq_cuda_view v, float *out)
{
    uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= v.n_tokens) return;
    for (uint32_t k = v.optr[t]; k < v.optr[t + 1u]; k++)
        out[(size_t)t * v.head_dim + v.ochan[k]] = kvq_dev_fp32(v.oval[k]);
}

} // namespace

extern "C" cudaError_t kvq_cuda_probe(void)
{
    cudaFuncAttributes attributes;
    return cudaFuncGetAttributes(&attributes, dequantize_outliers_kernel);
}

extern "C" cudaError_t kvq_cuda_dequantize(const kvq_cuda_view *view, float *out, cudaStream_t stream)
{
    unsigned long long items = (unsigned long long)view->n_tokens * view->head_dim;
    dequantize_dense_kernel<<<(unsigned)((items + kBlock - 1) / kBlock), kBlock, 0, stream>>>(*view, out);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    dequantize_outliers_kernel<<<(view->n_tokens + kBlock - 1) / kBlock, kBlock, 0, stream>>>(*view, out);
    return cudaGetLastError();
}
