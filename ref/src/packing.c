/*
 * packing.c - the byte layout of packed codes (S5).
 *
 * A row of n codes of b bits is one little-endian bit stream: code i occupies
 * stream bits [i*b, i*b + b), least significant bit first, and stream bit j is
 * bit (j % 8) of byte j / 8. Read as little-endian 32-bit words, 3-bit codes
 * therefore cross word boundaries exactly as they cross byte boundaries.
 */
#include "internal.h"

#include <string.h>

static bool bits_supported(uint32_t bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

/* S5.1 */
size_t kvq_packed_bytes(uint32_t n, uint32_t bits) { return ((size_t)n * bits + 7u) / 8u; }

/* S5.2 */
void kvq_pack_codes(const uint8_t *codes, uint32_t n, uint32_t bits, uint8_t *packed)
{
    memset(packed, 0, kvq_packed_bytes(n, bits));
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < bits; j++) {
            size_t stream_bit = (size_t)i * bits + j;
            uint8_t bit = (uint8_t)((codes[i] >> j) & 1u);
            packed[stream_bit / 8u] |= (uint8_t)(bit << (stream_bit % 8u));
        }
    }
}

/* S5.2 */
void kvq_unpack_codes(const uint8_t *packed, uint32_t n, uint32_t bits, uint8_t *codes)
{
    for (uint32_t i = 0; i < n; i++) {
        uint8_t code = 0;
        for (uint32_t j = 0; j < bits; j++) {
            size_t stream_bit = (size_t)i * bits + j;
            uint8_t bit = (uint8_t)((packed[stream_bit / 8u] >> (stream_bit % 8u)) & 1u);
            code |= (uint8_t)(bit << j);
        }
        codes[i] = code;
    }
}

/* S5.3: every packed row must be whole 32-bit words, so that a device can load
 * rows with aligned word (and, for head_dim >= 128 at 4 bits, 16-byte) loads. */
kvq_status kvq_check_head_dim(uint32_t head_dim, uint32_t bits)
{
    if (!bits_supported(bits))
        return kvq_fail(KVQ_ERR_UNSUPPORTED_BITS, "bits = %u is not supported (use 2, 3, 4 or 8)", bits);
    if (head_dim == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "head_dim is 0");
    if (head_dim > KVQ_MAX_HEAD_DIM)
        return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u exceeds the largest supported head_dim %u",
                        head_dim, KVQ_MAX_HEAD_DIM);
    if (((uint64_t)head_dim * bits) % 32u != 0)
        return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING,
                        "head_dim = %u at %u bits gives %u bits per row, not a multiple of 32 (S5.3)", head_dim,
                        bits, head_dim * bits);
    return KVQ_OK;
}
