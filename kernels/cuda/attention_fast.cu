/*
 * attention_fast.cu - the fast decode attention kernel (S11) for the format
 * real models and the benchmarks use: head_dim 128, RoPE with HALF pairing at
 * consecutive positions, keys and values with the same code width of 2, 3,
 * 4 or 8 bits (uniform, or NUQ at 2, 3 and 4 bits), per-channel keys
 * (calibrated, or online with blocks of a multiple of 32 tokens) and one
 * value group per token. attention.cu's general kernel runs everything else; both write the
 * same partial results and share the combine kernel.
 *
 * Why a second kernel: decode attention over a quantized cache is bound by
 * instruction issue, not by memory, unless the work per element is a handful
 * of instructions. The general kernel spends ~60 per key element (code reads
 * from shared memory one by one, params re-read per element, RoPE cos/sin in
 * double per element). Here:
 *
 *  - Each block walks its split in tiles of 128 tokens; warp w owns tokens
 *    32w .. 32w + 31 of a tile and runs its own online softmax; the four warps
 *    are merged once, at the end of the split (exact power-of-two factors).
 *  - Scores: lane = token. A lane loads its key row (16-byte loads) into
 *    registers and walks the 64 pairs fully unrolled, so every code position
 *    is a compile-time constant: a code is one mask (shared by 4 codes), one
 *    byte permute into the bit pattern of 2^23 + k and one subtraction (k
 *    exactly, or k - 2^(bits-1)); 3-bit codes, which cross bytes and words,
 *    take a funnel shift and a mask-and-or; NUQ codes index a table. The
 *    key params of the warp's block sit in shared memory as one float4 per
 *    pair (broadcast reads). A pair holding a key outlier (S7.4) is zeroed
 *    in the loop (one bit test) and summed afterwards from its exact
 *    elements: fp32 sums in any order are what S12.3 allows.
 *  - Every load of a warp's 32 tokens (key rows, value codes, metadata) is
 *    issued before its arithmetic starts, so their latencies overlap; the next
 *    tile's RoPE bases are computed while the current tile is worked on.
 *  - RoPE: cos/sin of position P0 + o are one fp32 angle addition from the
 *    tile's base cis(P0 theta) (double, rounded once) and a host table
 *    cis(o theta) (double, rounded once), o < 128: within 2.5 u absolute of
 *    the exact values, which S12.3 allows (2^-22). No double arithmetic per
 *    element.
 *  - Keys stored in fp16 (sinks, text tokens) are rare: the warp computes
 *    them together afterwards, a token at a time, so the quantized lanes do
 *    not diverge.
 *  - Values: a half-warp per token (two tokens per step), a lane per 8
 *    channels: one 4-byte code word (4-bit) per lane per token, prefetched.
 *  - The S9.1 range check of dequantized keys is done on the params: fma is
 *    monotone in the code's value, so if no channel's extreme codes reach
 *    beyond 65504 no element can; only otherwise are the elements checked.
 *
 * Arithmetic follows S12.3 as in attention.cu: class-E dequantization
 * (fma(b, k, a) as kvq_decode), fp32 rotation with two roundings, fp32 dot
 * products and sums in any order, exp2 with log2(e) folded into the score
 * scale, integer running maxima so that every rescale is an exact power of two.
 */
#include <math.h>

#include "attention_common.cuh"
#include "fp16.cuh"
#include "kvq_cuda_kernels.cuh"
#include "rope.cuh"

namespace {

constexpr int kThreads = 128;
constexpr uint32_t kWarps = kThreads / 32;
constexpr uint32_t kD = 128;                 /* head_dim of the fast path */
constexpr uint32_t kPairs = kD / 2u;         /* HALF pairing: pair i is (i, i + 64) */
constexpr uint32_t kSub = 32;                /* tokens per warp and tile */
constexpr uint32_t kTile = kWarps * kSub;    /* tokens per block and tile */
static_assert(kTile == KVQ_CUDA_STEP32_OFFSETS, "one step-table entry per token of a tile");

/* The bit pattern of the fp32 number 2^23 + code for the code at channel e of
 * a row of packed words (S5.2). 2, 4, 8 bits: mask the code's byte lane, then
 * move that byte under the exponent 0x4B; with e a compile-time constant the
 * shift and mask are shared by the codes of one byte position. 3 bits: codes
 * cross bytes and words, so a funnel shift brings the code to bit 0 (from
 * two words only when it crosses one), and one mask-and-or adds 0x4B000000. */
template <int BITS>
__device__ __forceinline__ uint32_t code_pattern(const uint32_t *w, uint32_t e)
{
    const uint32_t bit = e * (uint32_t)BITS;
    if (BITS == 3) {
        const uint32_t at = bit & 31u;
        const uint32_t x = at + 3u > 32u ? __funnelshift_r(w[bit >> 5], w[(bit >> 5) + 1u], at) : w[bit >> 5] >> at;
        return (x & 7u) | 0x4B000000u;
    }
    constexpr uint32_t mask = BITS == 8 ? 0xFFFFFFFFu : BITS == 4 ? 0x0F0F0F0Fu : 0x03030303u;
    const uint32_t x = (w[bit >> 5] >> (bit & 7u)) & mask;
    return __byte_perm(x, 0x4B000000u, 0x7540u | ((bit & 31u) >> 3));
}

/* The lane's 8 value codes (channels 8 c8 .. 8 c8 + 7) of a 3-bit row: 24
 * stream bits from bit 24 c8, brought to bit 0 of one word, which
 * code_pattern<3> then reads as codes 0..7. */
__device__ __forceinline__ uint32_t value_codes_3bit(const uint32_t *row, uint32_t c8)
{
    const uint32_t bit = 24u * c8, at = bit & 31u;
    const uint32_t lo = __ldg(row + (bit >> 5));
    const uint32_t hi = at > 8u ? __ldg(row + (bit >> 5) + 1u) : 0u; /* the 24 bits cross into the next word */
    return __funnelshift_r(lo, hi, at);
}

/* The decoded code (S3.5, S6.5): k, k - 2^(bits-1) or signpost[k], exactly
 * what attention.cu's table holds. */
template <int BITS, bool NUQ>
__device__ __forceinline__ float decode(uint32_t pattern, float bias, const float *table)
{
    if (NUQ) return table[pattern & 0xFFu];
    return __fsub_rn(__uint_as_float(pattern), bias); /* (2^23 + k) - (2^23 + offset), exact */
}

/* One key pair of the token at P0 + o into every head's dot product: cos/sin
 * by one fp32 angle addition of the tile base cis(P0 theta) and the step
 * cis(o theta) (S12.3), the fp32 rotation with two roundings (S9.4), then the
 * pair's two products per head (q holds the NQ rotated query pairs). */
template <int NQ>
__device__ __forceinline__ void rope_dot_pair(float ka, float kb, float2 base, float2 step, const float2 *q, float *dot)
{
    const float c = __fmaf_rn(base.x, step.x, -__fmul_rn(base.y, step.y));
    const float s = __fmaf_rn(base.y, step.x, __fmul_rn(base.x, step.y));
    const float ra = __fmaf_rn(ka, c, -__fmul_rn(kb, s));
    const float rb = __fmaf_rn(ka, s, __fmul_rn(kb, c));
#pragma unroll
    for (int h = 0; h < NQ; h++) {
        dot[h] = fmaf(q[h].x, ra, dot[h]);
        dot[h] = fmaf(q[h].y, rb, dot[h]);
    }
}

/* Every pair of a quantized key row (the lane's token), fully unrolled so that
 * each code position is a compile-time constant. With MASKED, the pairs whose
 * bit is set in the outlier masks (pairs 0..31, 32..63) contribute exactly
 * nothing here (the caller sums them from their exact elements); a warp whose
 * tokens hold no outlier runs the loop without the per-pair test. */
template <int NQ, int BITS, bool NUQ, bool MASKED>
__device__ __forceinline__ void score_quantized_row(const uint32_t *codes, const float4 *kpar, const float2 *base,
                                                    const float2 *step, const float2 *qs, const float *kdec,
                                                    float kbias, uint32_t omask_lo, uint32_t omask_hi, float *dot)
{
#pragma unroll
    for (uint32_t i = 0; i < kPairs; i++) {
        const float4 p = kpar[i];
        float ka = __fmaf_rn(p.y, decode<BITS, NUQ>(code_pattern<BITS>(codes, i), kbias, kdec), p.x);
        float kb = __fmaf_rn(p.w, decode<BITS, NUQ>(code_pattern<BITS>(codes, i + kPairs), kbias, kdec), p.z);
        if (MASKED && (((i < 32u ? omask_lo : omask_hi) >> (i % 32u)) & 1u)) {
            ka = 0.0f; /* contributes exactly nothing */
            kb = 0.0f;
        }
        rope_dot_pair<NQ>(ka, kb, base[i], __ldg(step + (size_t)i * KVQ_CUDA_STEP32_OFFSETS), qs + i * NQ, dot);
    }
}

/* Shared memory of a block. */
template <int NQ>
struct Shared {
    kvq_cuda_seq sq;
    double theta[kPairs];
    float2 qs[kPairs * NQ];            /* rotated queries: pair i of head h at [i * NQ + h] */
    float2 base[2][kPairs];            /* cis(P0 theta_i) of the current tile and the next */
    float kdec[16], vdec[16];          /* NUQ signposts */
    float4 kpar[kWarps][kPairs];       /* (addend_a, b_a, addend_b, b_b) of the warp's key block */
    float p[kWarps][kSub * NQ];        /* weights of the warp's tokens */
    uint32_t vword[kWarps][kSub];      /* value params a | b << 16 */
    uint32_t vprec[kWarps][kSub];
    uint32_t vslot[kWarps][kSub];
    uint32_t vop[kWarps][kSub + 1u];   /* value outlier pointers */
    float red[kWarps][NQ][kD];         /* the warps' outputs, merged at the end */
    float ml[kWarps][NQ][2];
    uint32_t flag;
};

/* Key params of block row `prow` (d words) into the warp's float4 table; true
 * when no dequantized key of these params can leave the fp16 range (S9.1). */
__device__ __forceinline__ bool load_key_params(float4 *kpar, const uint32_t *prow, uint32_t scheme, float dmin,
                                                float dmax, uint32_t lane)
{
    bool safe = true;
    for (uint32_t i = lane; i < kPairs; i += 32u) {
        float v[4];
        for (uint32_t side = 0; side < 2u; side++) {
            const uint32_t w = prow[i + side * kPairs];
            const float a = kvq_att_decode_addend(scheme, kvq_dev_fp32((uint16_t)(w & 0xFFFFu)));
            const float b = kvq_dev_fp32((uint16_t)(w >> 16));
            v[2u * side] = a;
            v[2u * side + 1u] = b;
            /* fma is monotone in the decoded code, so its extremes bound every element. */
            const float lo = fabsf(__fmaf_rn(b, dmin, a)), hi = fabsf(__fmaf_rn(b, dmax, a));
            safe = safe && lo <= 65504.0f && hi <= 65504.0f; /* false for NaN too */
        }
        kpar[i] = make_float4(v[0], v[1], v[2], v[3]);
    }
    return __all_sync(kAttFullMask, safe) != 0;
}

/* The rare exact check: whether any dequantized key of this lane's token
 * (outliers applied) lies beyond the fp16 range. It re-reads the packed row
 * from global memory, so that the caller's registers stay registers. */
template <int BITS, bool NUQ>
__device__ __noinline__ bool key_out_of_range(const uint32_t *row, const float4 *kpar, float kbias, const float *kdec,
                                              const uint16_t *ochan, const uint16_t *oval, uint32_t ob, uint32_t oe)
{
    bool bad = false;
    for (uint32_t c = 0; c < kD; c++) {
        const uint32_t code = code_pattern<BITS>(row, c) & 0xFFu;
        const float dec = NUQ ? kdec[code] : __fsub_rn(__uint_as_float(0x4B000000u | code), kbias);
        const float4 p = kpar[c % kPairs];
        float x = c < kPairs ? __fmaf_rn(p.y, dec, p.x) : __fmaf_rn(p.w, dec, p.z);
        for (uint32_t k = ob; k < oe; k++)
            if (ochan[k] == c) x = kvq_dev_fp32(oval[k]);
        bad = bad || !(fabsf(x) <= 65504.0f);
    }
    return bad;
}

template <int NQ, int BITS, bool NUQ>
__global__ void __launch_bounds__(kThreads, 4) fast_split_kernel(kvq_cuda_attention_args args)
{
    constexpr uint32_t W = kD * (uint32_t)BITS / 32u; /* words per packed row */
    __shared__ Shared<NQ> sh;
    const uint32_t split = blockIdx.x, hg = blockIdx.y, seq = blockIdx.z;
    const uint32_t n = args.seqs[seq].n_tokens;
    const uint32_t t_begin = split * args.tokens_per_split;
    if (t_begin >= n) return;
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5;
    {
        const uint32_t *src = reinterpret_cast<const uint32_t *>(&args.seqs[seq]);
        uint32_t *dst = reinterpret_cast<uint32_t *>(&sh.sq);
        for (uint32_t w = tid; w < sizeof(kvq_cuda_seq) / 4u; w += kThreads) dst[w] = src[w];
    }
    __syncthreads();
    const kvq_cuda_seq &sq = sh.sq;
    const kvq_cuda_view &K = sq.keys;
    const kvq_cuda_view &V = sq.values;
    const uint32_t t_end = min(n, t_begin + args.tokens_per_split);
    const uint32_t h0 = hg * NQ;
    const uint32_t nh = min((uint32_t)NQ, args.n_q - h0);
    const uint32_t kscheme = K.scheme, vscheme = V.scheme;
    const bool kcal = K.layout == KVQ_CUDA_PARAMS_KEYS_CALIBRATED;
    const float kbias = 8388608.0f + (kscheme == KVQ_SCHEME_UNIFORM_SYM ? (float)(1u << (BITS - 1)) : 0.0f);
    const float vbias = 8388608.0f + (vscheme == KVQ_SCHEME_UNIFORM_SYM ? (float)(1u << (BITS - 1)) : 0.0f);
    const float2 *step = reinterpret_cast<const float2 *>(args.rope_step32);

    /* ---- once per block: theta, NUQ tables, rotated queries ---- */
    for (uint32_t i = tid; i < kPairs; i += kThreads) sh.theta[i] = args.theta[i];
    if (tid < 16u) {
        sh.kdec[tid] = K.signpost[tid];
        sh.vdec[tid] = V.signpost[tid];
    }
    if (tid == 0) sh.flag = 0;
    __syncthreads();
    for (uint32_t i = tid; i < kPairs; i += kThreads) {
        float c, s;
        kvq_dev_rope_cos_sin(sq.q_position, sh.theta[i], &c, &s);
        sh.base[1][i] = make_float2(c, s);
    }
    __syncthreads();
    for (uint32_t e = tid; e < NQ * kPairs; e += kThreads) {
        const uint32_t h = e / kPairs, i = e % kPairs;
        float2 r = make_float2(0.0f, 0.0f); /* heads past n_q contribute nothing */
        if (h < nh) {
            const float *q = args.q + ((size_t)seq * args.n_q + h0 + h) * kD;
            const float2 cs = sh.base[1][i];
            kvq_dev_rope_rotate(q[i], q[i + kPairs], cs.x, cs.y, &r.x, &r.y); /* S11.2, as the reference */
        }
        sh.qs[i * NQ + h] = r;
    }
    /* Extreme decoded codes, for the params-based range check. */
    float kdmin, kdmax;
    if (NUQ) {
        kdmin = kdmax = K.signpost[0];
        for (uint32_t k = 1; k < (1u << BITS); k++) {
            kdmin = fminf(kdmin, K.signpost[k]);
            kdmax = fmaxf(kdmax, K.signpost[k]);
        }
    } else {
        kdmin = __fsub_rn(8388608.0f, kbias);
        kdmax = __fsub_rn(8388608.0f + (float)((1u << BITS) - 1u), kbias);
    }

    /* Per-warp running softmax state (the same in every lane) and outputs:
     * lane owns channels 8 (lane % 16) .. + 7 of the tokens of its half-warp. */
    float m_run[NQ], l_run[NQ], acc[NQ][8];
#pragma unroll
    for (int h = 0; h < NQ; h++) {
        m_run[h] = -INFINITY;
        l_run[h] = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++) acc[h][e] = 0.0f;
    }
    const uint32_t half_id = lane >> 4, c8 = lane & 15u;
    uint32_t kblock = 0xFFFFFFFFu; /* key block whose params the warp holds */
    bool kparams_safe = true;

    /* The tile bases cis(P0 theta_i) in double, rounded once (S9.3): the
     * first tile's now, each next one while the current tile is worked on. */
    __syncthreads(); /* the query rotation is done with base[1] */
    for (uint32_t i = tid; i < kPairs; i += kThreads) {
        float c, s;
        kvq_dev_rope_cos_sin(sq.pos0 + t_begin, sh.theta[i], &c, &s);
        sh.base[0][i] = make_float2(c, s);
    }
    uint32_t buf = 0;
    for (uint32_t tile0 = t_begin; tile0 < t_end; tile0 += kTile, buf ^= 1u) {
        __syncthreads(); /* base[buf] is complete; every warp is done with base[buf ^ 1] */
        if (tile0 + kTile < t_end)
            for (uint32_t i = tid; i < kPairs; i += kThreads) {
                float c, s;
                kvq_dev_rope_cos_sin(sq.pos0 + tile0 + kTile, sh.theta[i], &c, &s);
                sh.base[buf ^ 1u][i] = make_float2(c, s);
            }
        const float2 *base = sh.base[buf];
        const uint32_t w0 = tile0 + warp * kSub; /* the warp's first token */
        if (w0 >= t_end) continue;
        const uint32_t ntok = min(kSub, t_end - w0);
        const uint32_t t = w0 + lane;
        const bool valid = lane < ntok;

        /* Every load of the sub-tile is issued here, before any arithmetic,
         * so that their latencies overlap: the lane's key row, its token's
         * value metadata, and its 16 tokens' value codes (8 channels each). */
        const uint32_t kprec = valid ? K.precision[t] : 0xFFu;
        const bool kquant = kprec == KVQ_PREC_QUANTIZED;
        constexpr uint32_t VW = BITS == 8 ? 2u : 1u; /* words of 8 codes */
        uint32_t codes[W];
#pragma unroll
        for (uint32_t k = 0; k < W; k++) codes[k] = 0u;
        if (valid) {
            const uint4 *src = reinterpret_cast<const uint4 *>(K.codes + (size_t)t * W);
#pragma unroll
            for (uint32_t k = 0; k < W / 4u; k++) {
                const uint4 v = __ldg(src + k);
                codes[4u * k] = v.x;
                codes[4u * k + 1u] = v.y;
                codes[4u * k + 2u] = v.z;
                codes[4u * k + 3u] = v.w;
            }
        }
        const uint32_t ob = valid ? K.optr[t] : 0u, oe = valid ? K.optr[t + 1u] : 0u;
        uint32_t my_vprec = 0, my_vword = 0, my_vslot = 0, my_vop = 0, my_vop_end = 0;
        if (valid) {
            my_vprec = V.precision[t];
            my_vword = V.params[t];
            my_vslot = V.slot[t];
            my_vop = V.optr[t];
            my_vop_end = V.optr[t + 1u];
        }
        uint32_t vcodes[16][VW];
#pragma unroll
        for (uint32_t k = 0; k < 16u; k++) {
            const uint32_t tj = w0 + 2u * k + half_id;
            vcodes[k][0] = 0u;
            if (VW == 2u) vcodes[k][VW - 1u] = 0u;
            if (2u * k + half_id < ntok) {
                if (BITS == 8) {
                    const uint2 x = __ldg(reinterpret_cast<const uint2 *>(V.codes + (size_t)tj * W) + c8);
                    vcodes[k][0] = x.x;
                    vcodes[k][VW - 1u] = x.y;
                } else if (BITS == 4) {
                    vcodes[k][0] = __ldg(V.codes + (size_t)tj * W + c8);
                } else if (BITS == 3) {
                    vcodes[k][0] = value_codes_3bit(V.codes + (size_t)tj * W, c8);
                } else {
                    vcodes[k][0] = __ldg(reinterpret_cast<const uint16_t *>(V.codes + (size_t)tj * W) + c8);
                }
            }
        }

        /* The key params of the warp's block (the 32 tokens share one: the
         * block length is a multiple of 32 and tiles start at multiples of 128). */
        const uint32_t blk = kcal ? 0u : w0 / K.group_size;
        if (blk != kblock) {
            kparams_safe = load_key_params(sh.kpar[warp], kcal ? K.params : K.params + (size_t)blk * kD, kscheme,
                                           kdmin, kdmax, lane);
            kblock = blk;
        }
        __syncwarp();

        /* ---- scores: lane = token ---- */
        float dot[NQ];
#pragma unroll
        for (int h = 0; h < NQ; h++) dot[h] = 0.0f;
        /* Pairs holding an outlier (S7.4) are left out of the main loop and
         * summed below from the outlier values. */
        uint32_t omask_lo = 0, omask_hi = 0; /* pairs 0..31, 32..63 */
        if (kquant)
            for (uint32_t k = ob; k < oe; k++) {
                const uint32_t pair = K.ochan[k] % kPairs;
                if (pair < 32u) omask_lo |= 1u << pair;
                else omask_hi |= 1u << (pair - 32u);
            }
        const bool warp_has_outliers = __any_sync(kAttFullMask, (omask_lo | omask_hi) != 0u);
        if (kquant) {
            const float4 *kp = sh.kpar[warp];
            const float2 *st = step + warp * kSub + lane;
            if (warp_has_outliers)
                score_quantized_row<NQ, BITS, NUQ, true>(codes, kp, base, st, sh.qs, sh.kdec, kbias, omask_lo,
                                                         omask_hi, dot);
            else
                score_quantized_row<NQ, BITS, NUQ, false>(codes, kp, base, st, sh.qs, sh.kdec, kbias, 0u, 0u, dot);
            /* The pairs with an outlier, each with its exact elements. */
            for (uint32_t m = 0; m < 2u; m++) {
                uint32_t bits_left = m == 0u ? omask_lo : omask_hi;
                while (bits_left != 0u) {
                    const uint32_t i = 32u * m + (uint32_t)__ffs((int)bits_left) - 1u;
                    bits_left &= bits_left - 1u;
                    const uint32_t *row = K.codes + (size_t)t * W;
                    const float4 p = kp[i];
                    float ka = __fmaf_rn(p.y, decode<BITS, NUQ>(code_pattern<BITS>(row, i), kbias, sh.kdec), p.x);
                    float kb = __fmaf_rn(
                        p.w, decode<BITS, NUQ>(code_pattern<BITS>(row, i + kPairs), kbias, sh.kdec), p.z);
                    for (uint32_t k = ob; k < oe; k++) {
                        const uint32_t ch = K.ochan[k];
                        if (ch == i) ka = kvq_dev_fp32(K.oval[k]);
                        if (ch == i + kPairs) kb = kvq_dev_fp32(K.oval[k]);
                    }
                    rope_dot_pair<NQ>(ka, kb, base[i], __ldg(st + (size_t)i * KVQ_CUDA_STEP32_OFFSETS),
                                      sh.qs + i * NQ, dot);
                }
            }
            if (!kparams_safe &&
                key_out_of_range<BITS, NUQ>(K.codes + (size_t)t * W, kp, kbias, sh.kdec, K.ochan, K.oval, ob, oe))
                atomicOr(&sh.flag, 1u);
        }
        /* Keys stored in fp16: the whole warp, one token at a time. */
        unsigned pending = __ballot_sync(kAttFullMask, valid && !kquant);
        while (pending != 0u) {
            const uint32_t j = (uint32_t)__ffs((int)pending) - 1u;
            pending &= pending - 1u;
            const uint16_t *row = kvq_att_fp16_row(K, K.slot[w0 + j]);
            float part[NQ];
#pragma unroll
            for (int h = 0; h < NQ; h++) part[h] = 0.0f;
            for (uint32_t i = lane; i < kPairs; i += 32u) {
                const float ka = kvq_dev_fp32(row[i]), kb = kvq_dev_fp32(row[i + kPairs]);
                rope_dot_pair<NQ>(ka, kb, base[i], __ldg(step + (size_t)i * KVQ_CUDA_STEP32_OFFSETS + warp * kSub + j),
                                  sh.qs + i * NQ, part);
            }
#pragma unroll
            for (int h = 0; h < NQ; h++) {
#pragma unroll
                for (int off = 16; off > 0; off >>= 1) part[h] += __shfl_xor_sync(kAttFullMask, part[h], off);
                if (lane == j) dot[h] = part[h];
            }
        }

        /* ---- online softmax of the warp's tokens, base 2 ---- */
#pragma unroll
        for (int h = 0; h < NQ; h++) {
            const float sc = valid ? dot[h] * args.score_scale : -INFINITY;
            float mt = sc;
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) mt = fmaxf(mt, __shfl_xor_sync(kAttFullMask, mt, off));
            /* An integer shift at or above every score so far: weights in
             * (0, 1], and every rescale an exact power of two (attention.cu). */
            const float m_new = fmaxf(m_run[h], ceilf(mt));
            const float p = exp2f(sc - m_new);
            float sum = p;
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(kAttFullMask, sum, off);
            const float alpha = kvq_att_pow2_difference(m_run[h], m_new);
            l_run[h] = l_run[h] * alpha + sum;
            m_run[h] = m_new;
#pragma unroll
            for (int e = 0; e < 8; e++) acc[h][e] *= alpha;
            sh.p[warp][lane * NQ + h] = p;
        }
        /* What the value pass needs of each token, staged by its lane. */
        if (valid) {
            sh.vprec[warp][lane] = my_vprec;
            sh.vword[warp][lane] = my_vword;
            sh.vslot[warp][lane] = my_vslot;
            sh.vop[warp][lane] = my_vop;
            if (lane == ntok - 1u) sh.vop[warp][ntok] = my_vop_end;
        }
        __syncwarp();

        /* ---- values: a half-warp per token, 8 channels per lane ---- */
#pragma unroll
        for (uint32_t kk = 0; kk < 16u; kk++) {
            const uint32_t j = 2u * kk + half_id;
            if (j >= ntok) continue;
            float v[8];
            if (sh.vprec[warp][j] == KVQ_PREC_QUANTIZED) {
                const uint32_t *words = vcodes[kk]; /* the lane's 8 codes, from channel 8 c8 */
                const uint32_t pw = sh.vword[warp][j];
                const float a = kvq_att_decode_addend(vscheme, kvq_dev_fp32((uint16_t)(pw & 0xFFFFu)));
                const float b = kvq_dev_fp32((uint16_t)(pw >> 16));
#pragma unroll
                for (uint32_t e = 0; e < 8u; e++)
                    v[e] = __fmaf_rn(b, decode<BITS, NUQ>(code_pattern<BITS>(words, e), vbias, sh.vdec), a);
            } else {
                const uint4 x = __ldg(reinterpret_cast<const uint4 *>(kvq_att_fp16_row(V, sh.vslot[warp][j])) + c8);
                const uint32_t h2[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
                for (uint32_t e = 0; e < 8u; e++)
                    v[e] = kvq_dev_fp32((uint16_t)(h2[e >> 1] >> (16u * (e & 1u))));
            }
            for (uint32_t k = sh.vop[warp][j]; k < sh.vop[warp][j + 1u]; k++) { /* S7.4 */
                const uint32_t ch = V.ochan[k];
                if ((ch >> 3) == c8) {
                    const float x = kvq_dev_fp32(V.oval[k]);
#pragma unroll
                    for (uint32_t e = 0; e < 8u; e++)
                        if ((ch & 7u) == e) v[e] = x;
                }
            }
#pragma unroll
            for (int h = 0; h < NQ; h++) {
                const float p = sh.p[warp][j * NQ + h];
#pragma unroll
                for (int e = 0; e < 8; e++) acc[h][e] = fmaf(p, v[e], acc[h][e]);
            }
        }
        __syncwarp(); /* the staged arrays are rewritten by the next tile */
    }

    /* ---- merge the half-warps, then the warps (exact factors 2^(m_w - M)) ---- */
#pragma unroll
    for (int h = 0; h < NQ; h++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[h][e] += __shfl_xor_sync(kAttFullMask, acc[h][e], 16);
    if (half_id == 0)
#pragma unroll
        for (int h = 0; h < NQ; h++)
#pragma unroll
            for (int e = 0; e < 8; e++) sh.red[warp][h][8u * c8 + e] = acc[h][e];
    if (lane == 0)
#pragma unroll
        for (int h = 0; h < NQ; h++) {
            sh.ml[warp][h][0] = m_run[h];
            sh.ml[warp][h][1] = l_run[h];
        }
    __syncthreads();
    if (tid == 0 && sh.flag) atomicOr(args.flags, 1u);
    const uint32_t c = tid; /* kThreads == kD: a thread per channel */
    const bool single = sq.n_splits == 1u;
    const size_t base = ((size_t)seq * args.max_splits + split) * args.n_q + h0;
    for (uint32_t h = 0; h < nh; h++) {
        float M = sh.ml[0][h][0];
        for (uint32_t w = 1; w < kWarps; w++) M = fmaxf(M, sh.ml[w][h][0]);
        float o = 0.0f, l = 0.0f;
        for (uint32_t w = 0; w < kWarps; w++) {
            const float f = kvq_att_pow2_difference(sh.ml[w][h][0], M);
            o = fmaf(sh.red[w][h][c], f, o);
            l = fmaf(sh.ml[w][h][1], f, l);
        }
        if (single) {
            args.out[((size_t)seq * args.n_q + h0 + h) * kD + c] = o / l;
        } else {
            args.partial_o[(base + h) * kD + c] = o;
            if (c == 0) {
                args.partial_ml[(base + h) * 2u] = M;
                args.partial_ml[(base + h) * 2u + 1u] = l;
            }
        }
    }
}

template <int NQ, int BITS, bool NUQ>
cudaError_t launch(const kvq_cuda_attention_args &a, cudaStream_t stream)
{
    dim3 grid(a.max_splits, (a.n_q + NQ - 1u) / NQ, a.n_seq);
    fast_split_kernel<NQ, BITS, NUQ><<<grid, kThreads, 0, stream>>>(a);
    return cudaGetLastError();
}

template <int NQ>
cudaError_t launch_format(const kvq_cuda_attention_args &a, cudaStream_t stream)
{
    const kvq_cuda_view &k = a.seqs_host[0].keys;
    const bool nuq = k.scheme == KVQ_SCHEME_NUQ;
    switch (k.bits) {
    case 2: return nuq ? launch<NQ, 2, true>(a, stream) : launch<NQ, 2, false>(a, stream);
    case 3: return nuq ? launch<NQ, 3, true>(a, stream) : launch<NQ, 3, false>(a, stream);
    case 4: return nuq ? launch<NQ, 4, true>(a, stream) : launch<NQ, 4, false>(a, stream);
    default: return launch<NQ, 8, false>(a, stream);
    }
}

bool bits_ok(const kvq_cuda_view &v)
{
    return v.bits == 2u || v.bits == 3u || v.bits == 4u || (v.bits == 8u && v.scheme != KVQ_SCHEME_NUQ);
}

} // namespace

bool kvq_cuda_attention_fast_seq_ok(const kvq_cuda_seq *s, const kvq_cuda_seq *first)
{
    const kvq_cuda_view &k = s->keys, &v = s->values;
    const bool k_nuq = k.scheme == KVQ_SCHEME_NUQ, v_nuq = v.scheme == KVQ_SCHEME_NUQ;
    return s->positions == nullptr && k.head_dim == kD && bits_ok(k) && v.bits == k.bits && k_nuq == v_nuq &&
           k.bits == first->keys.bits && k_nuq == (first->keys.scheme == KVQ_SCHEME_NUQ) &&
           k.row_words == kD * k.bits / 32u && v.row_words == k.row_words &&
           (k.layout == KVQ_CUDA_PARAMS_KEYS_CALIBRATED ||
            (k.layout == KVQ_CUDA_PARAMS_KEYS_ONLINE && k.group_size % kSub == 0u)) &&
           v.layout == KVQ_CUDA_PARAMS_VALUES && v.group_size == kD &&
           /* 16-byte key rows, the loads' alignment */
           ((uintptr_t)k.codes & 15u) == 0u && ((uintptr_t)v.codes & 15u) == 0u;
}

cudaError_t kvq_cuda_attention_fast_split(const kvq_cuda_attention_args *a, cudaStream_t stream)
{
    const uint32_t nq = a->n_q >= 8u ? 8u : a->n_q >= 4u ? 4u : a->n_q >= 2u ? 2u : 1u;
    switch (nq) {
    case 1: return launch_format<1>(*a, stream);
    case 2: return launch_format<2>(*a, stream);
    case 4: return launch_format<4>(*a, stream);
    default: return launch_format<8>(*a, stream);
    }
}

extern "C" void kvq_cuda_rope_step32_table(const double *theta, uint32_t head_dim, float *table)
{
    /* S9.3 for positions 0 .. 127, each value rounded once to fp32. */
    for (uint32_t i = 0; i < head_dim / 2u; i++)
        for (uint32_t o = 0; o < KVQ_CUDA_STEP32_OFFSETS; o++) {
            const double angle = fmod((double)o * theta[i], KVQ_DEV_TWO_PI);
            table[2u * (i * KVQ_CUDA_STEP32_OFFSETS + o)] = (float)cos(angle);
            table[2u * (i * KVQ_CUDA_STEP32_OFFSETS + o) + 1u] = (float)sin(angle);
        }
}
