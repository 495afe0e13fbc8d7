/*
 * attention_tc_layout.cuh - which channel every register of the tensor-core
 * decode kernel (attention_tc.cu) holds.
 *
 * The kernel feeds mma.sync.m16n8k16 (fp16 operands, fp32 accumulation) in
 * the "swapped" orientation of small-batch decode kernels: scores are
 * S^T[16 tokens][8 heads] = K[16 tokens][d] . Q^T[d][8 heads], outputs are
 * O^T[16 channels][8 heads] = V^T[16 channels][16 tokens] . P^T[16 tokens][8
 * heads], so the query heads of a GQA group (or the one head of MHA) sit in
 * the MMA's N dimension. A dot product does not care in which order its terms
 * are summed, so each operand's k-columns may hold any permutation of the
 * channels, as long as both operands use the same one. The permutation below
 * is chosen so that a lane decodes its codes with a handful of integer
 * instructions and holds both channels of every RoPE pair (i, i + d/2):
 *
 *   Keys. Lane (g, tig) (g = lane / 4, tig = lane % 4) holds token rows g and
 *   g + 8 of its 16-token m-tile. Per row it owns the d/8 channels
 *   [tig d/8, (tig + 1) d/8) of the first half and their RoPE partners in the
 *   second half. A packed word holds CPW = 32 / bits codes; the codes of its
 *   low 16 bits (CPH = 16 / bits) and of its high 16 bits are paired: half2
 *   register p of a word holds channels (p, CPH + p) of it, so that one mask
 *   and one OR with the fp16 magic number 0x6400 (1024) turns two codes into
 *   two fp16 numbers 1024 + k. "Slots" 0 .. d/16 - 1 are the first half's
 *   registers, slots d/16 .. d/8 - 1 their partners' (slot + d/16 holds
 *   channel + d/2 of slot). K-step s < d/32 of the MMA takes slots 2s, 2s + 1;
 *   k-step s + d/32 takes slots d/16 + 2s, d/16 + 2s + 1.
 *
 *   Values. Lane (g, tig) holds tokens 2tig, 2tig + 1, 2tig + 8, 2tig + 9 and
 *   the d/8 contiguous channels [g d/8, (g + 1) d/8); one half2 register holds
 *   one channel of two consecutive tokens (the MMA's k-columns are tokens).
 *   Register r of a token pair holds local channel r; m-tile mt of the output
 *   takes registers 2 mt (its row g) and 2 mt + 1 (row g + 8).
 *
 * These functions are __host__ __device__ so that the host-side tests
 * (kvq_cuda_selfcheck) can check them too.
 */
#ifndef KVQ_CUDA_ATTENTION_TC_LAYOUT_CUH
#define KVQ_CUDA_ATTENTION_TC_LAYOUT_CUH

#include <stdint.h>

#if defined(__CUDACC__)
#define KVQ_TC_HD __host__ __device__ __forceinline__
#else
#define KVQ_TC_HD static inline
#endif

/* Codes per 32-bit word and per 16-bit half-word. */
KVQ_TC_HD uint32_t kvq_tc_cpw(uint32_t bits) { return 32u / bits; }
KVQ_TC_HD uint32_t kvq_tc_cph(uint32_t bits) { return 16u / bits; }

/* The decode of position p (p < CPH) of a 16-bit half: its code sits at bit
 * kvq_tc_code_bit of the word itself, or of the word shifted right by
 * kvq_tc_code_shift when kvq_tc_code_from_shifted; the fp16 number with
 * biased exponent 25 - bit and a zero mantissa (kvq_tc_code_magic) is
 * 2^(10 - bit), whose mantissa holds the code at that bit exactly. */
KVQ_TC_HD uint32_t kvq_tc_code_shift(uint32_t bits) { return bits == 2u ? 10u : 8u; }
KVQ_TC_HD uint32_t kvq_tc_code_from_shifted(uint32_t bits, uint32_t p) { return p * bits + bits > 10u; }
KVQ_TC_HD uint32_t kvq_tc_code_bit(uint32_t bits, uint32_t p)
{
    return kvq_tc_code_from_shifted(bits, p) ? p * bits - kvq_tc_code_shift(bits) : p * bits;
}
KVQ_TC_HD uint32_t kvq_tc_code_magic(uint32_t bit) { return (25u - bit) << 10; }

/* Keys: the channel held by half `half` (0 low, 1 high) of slot `slot` of lane column tig. */
KVQ_TC_HD uint32_t kvq_tc_key_channel(uint32_t d, uint32_t bits, uint32_t tig, uint32_t slot, uint32_t half)
{
    const uint32_t per_half = d / 16u; /* slots of one half of the head */
    const uint32_t part = slot / per_half, s = slot % per_half;
    const uint32_t cph = kvq_tc_cph(bits);
    const uint32_t word = s / cph, p = s % cph;
    return part * (d / 2u) + tig * (d / 8u) + word * kvq_tc_cpw(bits) + half * cph + p;
}

/* Keys: the inverse: lane column, slot and half of channel c. */
KVQ_TC_HD void kvq_tc_key_slot(uint32_t d, uint32_t bits, uint32_t c, uint32_t *tig, uint32_t *slot, uint32_t *half)
{
    const uint32_t part = c / (d / 2u), local = c % (d / 2u);
    const uint32_t cpw = kvq_tc_cpw(bits), cph = kvq_tc_cph(bits);
    const uint32_t in_lane = local % (d / 8u);
    *tig = local / (d / 8u);
    const uint32_t word = in_lane / cpw, j = in_lane % cpw;
    *half = j / cph;
    *slot = part * (d / 16u) + word * cph + j % cph;
}

/* Values: the channel of register r of lane row g. */
KVQ_TC_HD uint32_t kvq_tc_value_channel(uint32_t d, uint32_t g, uint32_t r) { return g * (d / 8u) + r; }

/* Values: the token (within the m-tile) in half `half` of the register set `pair` (0: tokens 2tig,
 * 2tig + 1; 1: tokens 2tig + 8, 2tig + 9). */
KVQ_TC_HD uint32_t kvq_tc_value_token(uint32_t tig, uint32_t pair, uint32_t half) { return 2u * tig + 8u * pair + half; }

#endif /* KVQ_CUDA_ATTENTION_TC_LAYOUT_CUH */
