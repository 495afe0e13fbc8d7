/*
 * codes.cuh - reading one code out of a packed row (S5.2) on the device.
 */
#ifndef KVQ_CUDA_CODES_CUH
#define KVQ_CUDA_CODES_CUH

#include <stdint.h>

/* Code c of a row of little-endian 32-bit words: stream bits c*bits .. c*bits +
 * bits - 1, LSB first. Only 3-bit codes can continue into the next word
 * (S5.2: code 10 uses bits 30, 31 of W_0 and bit 0 of W_1). */
__device__ __forceinline__ uint32_t kvq_dev_code_at(const uint32_t *row, uint32_t c, uint32_t bits)
{
    uint32_t bit = c * bits;
    uint32_t w = bit >> 5, shift = bit & 31u;
    uint32_t v = row[w] >> shift;
    if (shift + bits > 32u) v |= row[w + 1u] << (32u - shift);
    return v & ((1u << bits) - 1u);
}

/* Word w of a packed row, composed from one code per byte (S5.2): the codes
 * whose stream bits overlap bits 32w .. 32w + 31. */
__device__ __forceinline__ uint32_t kvq_dev_pack_word(const uint8_t *codes, uint32_t w, uint32_t bits)
{
    uint32_t first_bit = 32u * w;
    uint32_t first = first_bit / bits, last = (first_bit + 31u) / bits;
    uint32_t word = 0;
    for (uint32_t i = first; i <= last; i++) {
        int offset = (int)(i * bits) - (int)first_bit; /* -2 .. 31: a 3-bit code may start in the previous word */
        uint32_t code = codes[i];
        word |= offset >= 0 ? code << offset : code >> (-offset);
    }
    return word;
}

#endif /* KVQ_CUDA_CODES_CUH */
