/*
 * pack.cu - the ABI's L0 operations (S5.2): rows of one code per byte to
 * packed little-endian bit streams and back, one thread per output byte or
 * code. Row lengths are checked by the host (S5.3), so every packed row is
 * whole 32-bit words.
 */
#include "codes.cuh"
#include "kvq_cuda_kernels.cuh"

namespace {

constexpr int kBlock = 256;

/* Byte j of a row covers stream bits 8j .. 8j + 7: the codes that overlap them. */
__global__ void pack_rows_kernel(const uint8_t *codes, uint32_t n_rows, uint32_t row_len, uint32_t bits,
                                 uint8_t *packed)
{
    const uint32_t row_bytes = row_len * bits / 8u;
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (unsigned long long)n_rows * row_bytes) return;
    uint32_t r = (uint32_t)(i / row_bytes), j = (uint32_t)(i % row_bytes);
    const uint8_t *row = codes + (size_t)r * row_len;
    uint32_t first = 8u * j / bits, last = (8u * j + 7u) / bits;
    uint32_t byte = 0;
    for (uint32_t k = first; k <= last; k++) {
        int offset = (int)(k * bits) - (int)(8u * j);
        byte |= offset >= 0 ? (uint32_t)row[k] << offset : (uint32_t)row[k] >> (-offset);
    }
    packed[i] = (uint8_t)byte;
}

__global__ void unpack_rows_kernel(const uint8_t *packed, uint32_t n_rows, uint32_t row_len, uint32_t bits,
                                   uint8_t *codes)
{
    const uint32_t row_words = row_len * bits / 32u;
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (unsigned long long)n_rows * row_len) return;
    uint32_t r = (uint32_t)(i / row_len), c = (uint32_t)(i % row_len);
    codes[i] = (uint8_t)kvq_dev_code_at((const uint32_t *)packed + (size_t)r * row_words, c, bits);
}

} // namespace

extern "C" cudaError_t kvq_cuda_pack_rows(const uint8_t *codes, uint32_t n_rows, uint32_t row_len, uint32_t bits,
                                          uint8_t *packed, cudaStream_t stream)
{
    unsigned long long items = (unsigned long long)n_rows * (row_len * bits / 8u);
    pack_rows_kernel<<<(unsigned)((items + kBlock - 1) / kBlock), kBlock, 0, stream>>>(codes, n_rows, row_len, bits,
                                                                                     packed);
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_unpack_rows(const uint8_t *packed, uint32_t n_rows, uint32_t row_len, uint32_t bits,
                                            uint8_t *codes, cudaStream_t stream)
{
    unsigned long long items = (unsigned long long)n_rows * row_len;
    unpack_rows_kernel<<<(unsigned)((items + kBlock - 1) / kBlock), kBlock, 0, stream>>>(packed, n_rows, row_len, bits,
                                                                                       codes);
    return cudaGetLastError();
}
