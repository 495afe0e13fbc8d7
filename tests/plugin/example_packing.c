/*
 * example_packing.c - codes in an LSB-first little-endian bit stream (S5).
 *
 * Code i of a row occupies stream bits [i*bits, (i+1)*bits); stream bit j is
 * bit j%8 of byte j/8. A 64-bit accumulator makes this one loop for every
 * width, including 3-bit codes that straddle bytes.
 */
#include "example.h"

/* S5.3: whole 32-bit words per row, and 1 <= head_dim <= 1024. */
kvq_status ex_check_head_dim(ex_error *err, uint32_t head_dim, uint32_t bits)
{
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return ex_fail(err, KVQ_ERR_UNSUPPORTED_BITS, "bits = %u is not 2, 3, 4 or 8", bits);
    if (head_dim == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "head_dim is 0");
    if (head_dim > KVQ_MAX_HEAD_DIM)
        return ex_fail(err, KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u exceeds %u", head_dim, KVQ_MAX_HEAD_DIM);
    if ((head_dim * bits) % 32u != 0)
        return ex_fail(err, KVQ_ERR_HEAD_DIM_PACKING,
                       "head_dim = %u at %u bits gives %u bits per row, not a multiple of 32 (S5.3)", head_dim,
                       bits, head_dim * bits);
    return KVQ_OK;
}

/* S5.2. n * bits is a multiple of 8 (S5.3 guarantees 32), so no bits are left over. */
void ex_pack_row(const uint8_t *codes, uint32_t n, uint32_t bits, uint8_t *packed)
{
    uint64_t acc = 0;   /* pending stream bits, the oldest in bit 0 */
    uint32_t held = 0;  /* how many */
    uint32_t mask = (1u << bits) - 1u;
    size_t byte = 0;
    for (uint32_t i = 0; i < n; i++) {
        acc |= (uint64_t)(codes[i] & mask) << held;
        held += bits;
        for (; held >= 8u; held -= 8u, acc >>= 8) packed[byte++] = (uint8_t)acc;
    }
}

/* S5.2, the inverse. */
void ex_unpack_row(const uint8_t *packed, uint32_t n, uint32_t bits, uint8_t *codes)
{
    uint64_t acc = 0;
    uint32_t held = 0;
    uint32_t mask = (1u << bits) - 1u;
    size_t byte = 0;
    for (uint32_t i = 0; i < n; i++) {
        for (; held < bits; held += 8u) acc |= (uint64_t)packed[byte++] << held;
        codes[i] = (uint8_t)(acc & mask);
        acc >>= bits;
        held -= bits;
    }
}
