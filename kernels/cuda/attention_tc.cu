/*
 * attention_tc.cu - decode attention (S11) on the tensor cores, in the fp16
 * precision profile (S12.4): the path that makes a quantized cache faster to
 * decode than an fp16 one.
 *
 * Decode attention reads every cached byte once and does little arithmetic
 * per byte, so it should run at the memory bandwidth. What stands in the way
 * is the per-element work of a quantized, pre-RoPE cache: unpacking codes,
 * dequantizing, rotating keys. Here that work is a few fp16x2 instructions
 * per pair of elements and the dot products run on the tensor cores:
 *
 *  - Codes become fp16 by the magic-number trick: (code bits | 0x6400) is the
 *    fp16 number 1024 + code, so one mask-and-or makes two codes into a half2;
 *    subtracting 1024 (exact) and one fp16 fma with the group's parameters
 *    gives the dequantized value rounded once to fp16 (S12.4 (a)).
 *  - RoPE is split at sub-tile bases p0 (S12.4 (b)): once per 64 tokens the
 *    block rotates the query by q_position - p0 (in double, then rounds it
 *    to fp16 with log2(e)/sqrt(d) folded in); every key is rotated by its
 *    offset o = p_t - p0 < 64 with cos/sin(o theta) from a per-lane table
 *    made once per block (each warp always owns the same 16 offsets of a
 *    sub-tile), two fp16 roundings per element. No transcendental per
 *    element, and no angle addition either.
 *  - mma.sync m16n8k16 (fp16 in, fp32 accumulation) computes S^T = K Q^T and
 *    O^T += V^T P^T with the query heads of a GQA group in the N dimension
 *    (attention_tc_layout.cuh says which channel each register holds).
 *  - The softmax is online, in base 2, with integer shifts (every rescale is
 *    an exact power of two); the weights are rounded to fp16 for P.V and the
 *    row sum is taken from the unrounded ones (S12.4 (d)).
 *  - The cache is streamed through shared memory with cp.async in a ring of
 *    tile buffers, so that a whole tile per block is in flight whatever the
 *    register budget. A tile is 128 tokens up to head_dim 128, and each warp
 *    works on two 16-token m-tiles of it between two barriers, with one
 *    softmax update for both: what is paid per tile (the barrier, staging,
 *    the queries, the reductions and rescale) is paid per 32 tokens of a warp.
 *  - Work a block does not need is decided once per block: the fp16
 *    profile's domain check of the key parameters, and whether any token is
 *    stored in fp16 or any element is an outlier (if not, no tile stages or
 *    tests precisions and outlier pointers).
 *  - Tokens stored in fp16 (sinks, text tokens, windows) replace whole rows
 *    of the keys' registers and halves of the values' registers. Outliers
 *    (S7.4) are held as the dense decode of their (clamped) code inside the
 *    MMA, and the exact difference is added in fp32: to the score for keys
 *    (rotated by fp32 cos/sin), to a per-warp fp32 accumulator for values
 *    (S12.4 (a'), the outliers' allowance). Neither diverges the warp.
 *
 * The fp16 profile's domain (S12.4) is checked on the parameters: a key pair
 * whose decoded magnitudes could sum beyond 2^15 sets bit 1 of *flags, and
 * the host then reruns the call on the fp32 kernels. Formats this kernel does
 * not cover (3-bit codes, NUQ, interleaved RoPE, explicit positions with
 * RoPE, value groups smaller than a token) run on those kernels too.
 */
#include <cuda_fp16.h>
#include <math.h>

#include "attention_common.cuh"
#include "attention_tc_layout.cuh"
#include "fp16.cuh"
#include "kvq_cuda_kernels.cuh"
#include "rope.cuh"

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr uint32_t kHeads = 8;                 /* query heads per block: the MMA's N */
constexpr float kDomain = 32768.0f;            /* S12.4: |x_a| + |x_b| <= 2^15 in fp16 */

/* ---- small device helpers ------------------------------------------------ */

/* 2^(a - b) for integer-valued a <= b, bit for bit what kvq_att_pow2_difference gives (ldexpf,
 * exact; 0 when a is -inf or a - b < -149), from the exponent bits: the softmax asks for it
 * twice per tile, and ldexpf is about twenty instructions. */
__device__ __forceinline__ float pow2_difference(float a, float b)
{
    if (a == -INFINITY) return 0.0f;
    const int k = (int)fmaxf(a - b, -200.0f);
    if (k >= -126) return __int_as_float((k + 127) << 23);
    return k >= -149 ? __int_as_float(1 << (k + 149)) : 0.0f; /* subnormal */
}

/* A compile-time flag passed to a generic lambda: the m-tile body is instantiated twice, a lean
 * one for m-tiles of plain codes and a general one for fp16 rows and outliers (see the kernel). */
template <bool B>
struct Flag {
    static constexpr bool value = B;
};

/* Key params blocks (S4.3) of token t without a division where the block length is a power of
 * two (the usual 128): the tile loop asks for them on every tile. */
struct KeyBlocks {
    uint32_t size, shift;
    bool calibrated, pow2;
    __device__ __forceinline__ uint32_t of(uint32_t t) const
    {
        return calibrated ? 0u : pow2 ? t >> shift : t / size;
    }
};

__device__ __forceinline__ uint32_t h2u(__half2 h) { return *reinterpret_cast<uint32_t *>(&h); }
__device__ __forceinline__ __half2 u2h(uint32_t u) { return *reinterpret_cast<__half2 *>(&u); }

/* d += a . b on the tensor cores: A 16x16 (row), B 16x8 (col), fp16 in, fp32 out. */
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* 16 bytes global -> shared, asynchronously; src_bytes < 16 zero-fills the rest (0: reads nothing). */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, uint32_t src_bytes)
{
    const uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* The codes at position p of each 16-bit half of a word, as a half2 of code - offset (exact).
 * A code at bit b < 10 - BITS of a half is OR-ed into the mantissa of 2^(10 - b), whose ulp is
 * 2^-b, giving the fp16 number 2^(10 - b) + code with one mask-and-or and no shift; codes at
 * higher bits come from ws = w >> kvq_tc_code_shift(BITS) the same way (one shift per word).
 * Subtracting 2^(10 - b) + offset (offset: 0, or 2^(bits-1) for the symmetric scheme, S3.5) is
 * exact. attention_tc_layout.cuh has the same rule for the host tests. */
template <int BITS>
__device__ __forceinline__ __half2 code_pair(uint32_t w, uint32_t ws, uint32_t p, uint32_t sub)
{
    const uint32_t b = kvq_tc_code_bit(BITS, p);
    const uint32_t src = kvq_tc_code_from_shifted(BITS, p) ? ws : w;
    const uint32_t magic = kvq_tc_code_magic(b) * 0x00010001u;
    const uint32_t mask = (((1u << BITS) - 1u) << b) * 0x00010001u;
    uint32_t x; /* (src & mask) | magic in one instruction: the compiler otherwise emits two */
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(x) : "r"(src), "r"(mask), "r"(magic));
    return __hsub2(u2h(x), u2h(sub));
}

/* code_pair's subtrahends, 2^(10 - b) + offset for each position's bit b, made once per block
 * (fp16 conversions are inline assembly the compiler does not hoist out of the tile loop). */
template <int BITS>
__device__ __forceinline__ void code_subtrahends(float offset, uint32_t (&sub)[16 / BITS])
{
#pragma unroll
    for (uint32_t p = 0; p < 16u / BITS; p++)
        sub[p] = h2u(__float2half2_rn((float)(1u << (10u - kvq_tc_code_bit(BITS, p))) + offset));
}

/* Outlier e of an m-tile (S7.4): its token within the m-tile (from the staged pointers optr of
 * the m-tile's ntm tokens), its channel, exact value, and the (clamped) code the dense decode
 * used. The first n_ahead of the m-tile (from `first`) were fetched ahead into `prefetched`, one
 * a lane (channel | fp16 value << 16). */
struct Outlier {
    uint32_t tl, c, code;
    float y;
};
/* The token within the m-tile of outlier e: the last t < ntm with optr[t] <= e (optr does not
 * decrease and optr[0] <= e). Four halving steps for the m-tile's 16 tokens: a linear search
 * took up to 15 dependent shared-memory loads and was 30% of the instructions of a call with
 * 1% outliers (ncu, H200, 2026-12-03). */
__device__ __forceinline__ uint32_t outlier_token(uint32_t e, const uint32_t *optr, uint32_t ntm)
{
    uint32_t tl = 0;
#pragma unroll
    for (uint32_t step = 8u; step != 0u; step >>= 1)
        if (tl + step < ntm && optr[tl + step] <= e) tl += step;
    return tl;
}
template <int BITS>
__device__ __forceinline__ Outlier outlier_at(uint32_t e, uint32_t first, uint32_t n_ahead, uint32_t prefetched,
                                              const uint32_t *optr, uint32_t ntm, const kvq_cuda_view &t,
                                              const uint32_t *codes, uint32_t row_words)
{
    Outlier o;
    o.tl = outlier_token(e, optr, ntm);
    const uint32_t cv = e < first + n_ahead ? prefetched : (uint32_t)t.ochan[e] | (uint32_t)t.oval[e] << 16;
    o.c = cv & 0xFFFFu;
    o.y = kvq_dev_fp32((uint16_t)(cv >> 16));
    const uint32_t bit = o.c * BITS;
    o.code = (codes[o.tl * row_words + bit / 32u] >> (bit % 32u)) & ((1u << BITS) - 1u);
    return o;
}

/* Half `which` (0, 1) of word w into half `into` (0, 1) of word base. */
__device__ __forceinline__ uint32_t put_half(uint32_t base, uint32_t w, uint32_t which, uint32_t into)
{
    const uint32_t src = which ? 0x76u : 0x54u; /* bytes of w are 4..7 in byte_perm's numbering */
    const uint32_t keep = into ? 0x10u : 0x32u;
    return __byte_perm(base, w, into ? (src << 8) | keep : (keep << 8) | src);
}

/* ---- the block's layout in shared memory ---------------------------------- */

/* A tile is what the block stages and works on between two barriers. Up to head_dim 128 it is
 * two 64-token sub-tiles and every warp takes one m-tile of each (rows 16 warp .. of both), so
 * that the barrier, the staging and the softmax's reductions and rescale are paid once per 32
 * tokens of a warp, not per 16; at head_dim 256 the registers hold one m-tile per warp. RoPE is
 * split at each sub-tile's base (S12.4 (b)): a lane's key offsets are 16 warp + g and + 8 in
 * both, so one per-lane cos/sin table serves every m-tile. */
template <int D>
struct Tiling {
    static constexpr uint32_t kSub = D <= 128 ? 2u : 1u;       /* m-tiles per warp and tile */
    static constexpr uint32_t kSubTokens = 16u * kWarps;       /* a sub-tile: 64 tokens */
    static constexpr uint32_t kTileTokens = kSubTokens * kSub;
    static_assert(KVQ_CUDA_STEP32_OFFSETS % kTileTokens == 0u, "splits are whole tiles");
};

template <int D, int BITS>
struct Geometry {
    static constexpr uint32_t kTileTokens = Tiling<D>::kTileTokens;
    static constexpr uint32_t kRowBytes = D * BITS / 8u;             /* a packed row */
    static constexpr uint32_t kRowWords = kRowBytes / 4u;
    static constexpr uint32_t kLaneWords = D * BITS / 256u;           /* a lane's words of one half of a row */
    static constexpr uint32_t kHalfWords = D * BITS / 64u;            /* words of one half (d/2 channels) */
    static constexpr uint32_t kSlots = D / 8u;                        /* key half2 registers per row */
    static constexpr uint32_t kPartSlots = D / 16u;
    static constexpr uint32_t kPairSteps = D / 32u;                   /* MMA k-step pairs (s, s + d/32) */
    static constexpr uint32_t kValueRegs = D / 8u;                    /* value half2 registers per token pair */
    static constexpr uint32_t kChannelTiles = D / 16u;                /* m-tiles of O^T */
    /* One stage: the tile's key rows, value rows, value params, precisions, outlier pointers. */
    static constexpr uint32_t kKeyCodes = 0;
    static constexpr uint32_t kValueCodes = kKeyCodes + kTileTokens * kRowBytes;
    static constexpr uint32_t kValueParams = kValueCodes + kTileTokens * kRowBytes;
    static constexpr uint32_t kKeyPrec = kValueParams + kTileTokens * 4u;
    static constexpr uint32_t kValuePrec = kKeyPrec + kTileTokens;
    static constexpr uint32_t kKeyOptr = kValuePrec + kTileTokens;
    static constexpr uint32_t kValueOptr = kKeyOptr + (kTileTokens + 4u) * 4u;
    /* The key params rows (S4.3 blocks of at least 16 tokens, or the calibrated row) the tile's tokens use. */
    static constexpr uint32_t kMaxParamRows = kTileTokens / 16u + 1u;
    static constexpr uint32_t kKeyParams = kValueOptr + (kTileTokens + 4u) * 4u;
    static constexpr uint32_t kStageBytes = kKeyParams + kMaxParamRows * D * 4u;
    /* Three stages (two tiles in flight while one is worked on) where they fit three blocks per
     * SM beside the rest; two otherwise, which still keeps a whole tile in flight. */
    static constexpr uint32_t kStages = kStageBytes * 3u <= 48u * 1024u ? 3u : 2u;
    static constexpr bool kRopeInRegisters = D <= 128;
    /* The warps' partial outputs meet in the stages' memory after the last tile. */
    static constexpr uint32_t kCombineBytes = kWarps * kHeads * D * 4u;
    static_assert(kStageBytes % 16u == 0u, "stages are 16-byte aligned");
    static_assert(kLaneWords >= 1u, "a lane owns whole words of codes");
    static_assert(kStages * kStageBytes >= kCombineBytes, "the combine fits the stages");
};

/* Shared memory besides the stages (dynamic, after them). Without RoPE (post-RoPE keys) there
 * are no cis tables and one query serves every tile: 10 KiB less at head_dim 128, so that four
 * blocks fit an SM (see tc_split_kernel). */
template <int D, int BITS, bool ROT>
struct Shared {
    using G = Geometry<D, BITS>;
    static constexpr uint32_t kSub = Tiling<D>::kSub;
    static constexpr uint32_t kPairs = ROT ? D / 2 : 1;
    kvq_cuda_seq sq;
    double2 base[kPairs];                         /* cis(p0 theta_i) of the current tile */
    double2 step[kPairs];                         /* cis(T theta_i), T the tile's tokens */
    double2 sub[kPairs];                          /* cis(64 theta_i): a sub-tile's base from the previous */
    double2 pq[kPairs];                           /* cis(q_position theta_i) */
    __half q[ROT ? 2 : 1][ROT ? kSub : 1][G::kSlots][32][2]; /* the tile's queries, one per sub-tile, in B operand
                                                     order: slot, lane (4 head + tig) */
    uint32_t kpar[kWarps][G::kSlots][4][2];       /* key params of the warp's block: slot, lane column, (a, b) half2 */
    uint32_t kpar_block[kWarps];                  /* which key block kpar holds */
    float ml[kWarps][kHeads][2];
    uint32_t rope_tab[G::kRopeInRegisters ? 1 : kWarps][G::kRopeInRegisters ? 1 : 2 * 2 * G::kPartSlots][32];
    uint32_t flag;
};

/* Shared memory only a launch with outliers has (after Shared): the fp32 corrections, for the
 * H = min(8, n_q) query heads a block holds (MHA: one). Sized for 8 heads, the 20 KiB cost MHA
 * a resident block per SM and a second, partial wave (ncu, H200, 2026-12-03); for H heads it is
 * (48 + d) H 16 bytes. The arrays follow each other: score corrections [warp][token of the
 * warp's two m-tiles][h], the m-tile's fp16 weights [warp][token][h] (for value outliers),
 * value corrections [warp][h][c]. */
template <int D>
struct OutlierShared {
    float *base;
    uint32_t H;
    __host__ __device__ static constexpr size_t bytes(uint32_t heads) { return (size_t)kWarps * heads * (48u + (uint32_t)D) * 4u; }
    /* t: 16 m + the token within m-tile m */
    __device__ __forceinline__ float &score(uint32_t warp, uint32_t t, uint32_t h) const { return base[(warp * 32u + t) * H + h]; }
    __device__ __forceinline__ float &weight(uint32_t warp, uint32_t t, uint32_t h) const
    {
        return base[kWarps * 32u * H + (warp * 16u + t) * H + h];
    }
    __device__ __forceinline__ float &out(uint32_t warp, uint32_t h, uint32_t c) const
    {
        return base[kWarps * 48u * H + (warp * H + h) * (uint32_t)D + c];
    }
};

/* The tile's bytes into stage buffer `stage` (all threads; one commit group). `plain`: the
 * block has no token stored in fp16 and no outlier, so precisions and outlier pointers are
 * not needed. */
template <int D, int BITS>
__device__ __forceinline__ void load_tile(unsigned char *stage, const kvq_cuda_seq &sq, const KeyBlocks &kb, uint32_t t0,
                                          uint32_t t_end, uint32_t tid, bool plain)
{
    using G = Geometry<D, BITS>;
    constexpr uint32_t kTileTokens = G::kTileTokens;
    const uint32_t ntok = min(kTileTokens, t_end - t0);
    /* The codes: the same whole number of 16-byte chunks per thread for every tile (rows are
     * multiples of 16 bytes); past the last token the chunks are zero-filled. */
    constexpr uint32_t kCodeBytes = kTileTokens * G::kRowBytes;
    static_assert(kCodeBytes % (16u * kThreads) == 0u && G::kRowBytes % 16u == 0u, "whole chunks per thread");
    const uint32_t code_valid = ntok * G::kRowBytes;
    const unsigned char *kc = reinterpret_cast<const unsigned char *>(sq.keys.codes + (size_t)t0 * G::kRowWords);
    const unsigned char *vc = reinterpret_cast<const unsigned char *>(sq.values.codes + (size_t)t0 * G::kRowWords);
    if (ntok == kTileTokens) { /* every tile but a split's last: no chunk to test */
#pragma unroll
        for (uint32_t k = 0; k < kCodeBytes / (16u * kThreads); k++) {
            const uint32_t at = (tid + k * kThreads) * 16u;
            cp_async16(stage + G::kKeyCodes + at, kc + at, 16u);
            cp_async16(stage + G::kValueCodes + at, vc + at, 16u);
        }
    } else {
#pragma unroll
        for (uint32_t k = 0; k < kCodeBytes / (16u * kThreads); k++) {
            const uint32_t at = (tid + k * kThreads) * 16u;
            const bool valid = at < code_valid;
            cp_async16(stage + G::kKeyCodes + at, valid ? kc + at : kc, valid ? 16u : 0u);
            cp_async16(stage + G::kValueCodes + at, valid ? vc + at : vc, valid ? 16u : 0u);
        }
    }
    /* The small per-token arrays, one chunk per thread: value params, then (unless plain)
     * precisions and outlier pointers (one past the tile). */
    constexpr uint32_t kParamChunks = kTileTokens * 4u / 16u, kPrecChunks = kTileTokens / 16u;
    constexpr uint32_t kOptrChunks = (kTileTokens + 4u) * 4u / 16u;
    constexpr uint32_t kSmallChunks = kParamChunks + 2u * kPrecChunks + 2u * kOptrChunks;
    static_assert(kSmallChunks <= kThreads, "one small chunk per thread");
    if (tid < (plain ? kParamChunks : kSmallChunks)) {
        uint32_t i = tid, offset, valid;
        const unsigned char *src;
        if (i < kParamChunks) {
            offset = G::kValueParams, valid = ntok * 4u, src = reinterpret_cast<const unsigned char *>(sq.values.params + t0);
        } else if ((i -= kParamChunks) < 2u * kPrecChunks) {
            const bool v = i >= kPrecChunks;
            i -= v ? kPrecChunks : 0u;
            offset = v ? G::kValuePrec : G::kKeyPrec, valid = ntok;
            src = v ? sq.values.precision + t0 : sq.keys.precision + t0;
        } else {
            i -= 2u * kPrecChunks;
            const bool v = i >= kOptrChunks;
            i -= v ? kOptrChunks : 0u;
            offset = v ? G::kValueOptr : G::kKeyOptr, valid = (ntok + 1u) * 4u;
            src = reinterpret_cast<const unsigned char *>(v ? sq.values.optr + t0 : sq.keys.optr + t0);
        }
        const uint32_t at = i * 16u, n = at >= valid ? 0u : min(16u, valid - at);
        cp_async16(stage + offset + at, n != 0u ? src + at : src, n);
    }
    /* Key params rows: the blocks of the tile's first and last token (calibrated keys: the one row). */
    const uint32_t first_blk = kb.of(t0);
    const uint32_t param_bytes = (kb.of(t0 + ntok - 1u) - first_blk + 1u) * D * 4u;
    const unsigned char *kp = reinterpret_cast<const unsigned char *>(sq.keys.params + (size_t)first_blk * D);
    for (uint32_t at = tid * 16u; at < param_bytes; at += kThreads * 16u)
        cp_async16(stage + G::kKeyParams + at, kp + at, 16u);
    cp_async_commit();
}

/* The queries of a tile (S12.4 (b)), one per sub-tile: every head's pairs rotated by
 * q_position - p0 (p0 the sub-tile's first position), scaled by log2(e) / sqrt(d), rounded to
 * fp16, stored in key-slot order; without RoPE one, only scaled. One thread owns pair i's base
 * cis(p0 theta_i) (double, advanced by cis(T theta_i) when `advance`), so no barrier separates
 * the update from its use. The rotation itself is fp32 (S12.4 allows the query's rotation in
 * fp32 before its rounding to fp16). The fp32 query comes from global memory (L1): the block
 * reads it once per tile. */
template <int D, int BITS, bool ROT>
__device__ __forceinline__ void make_query(Shared<D, BITS, ROT> &sh, uint32_t buf, uint32_t nh, float scale,
                                           bool advance, uint32_t tid, const float *__restrict__ qg)
{
    /* (pair, sub-tile) items, D/2 x kSub of them, the same share for every warp before the next
     * barrier and every lane busy where there are enough. The lanes of one pair's sub-tiles (in
     * one warp) each advance the base the same way (the same double arithmetic, so the same
     * bits); the first writes it back. */
    constexpr uint32_t kSub = ROT ? Tiling<D>::kSub : 1u;
    constexpr uint32_t kItemsPerWarp = D / 2u * kSub / kWarps;
    static_assert(kItemsPerWarp <= 32u && kItemsPerWarp * kWarps == D / 2u * kSub, "a warp's items fit its lanes");
    if ((tid & 31u) < kItemsPerWarp) {
        const uint32_t item = (tid >> 5) * kItemsPerWarp + (tid & 31u);
        const uint32_t i = item / kSub, j = item % kSub; /* a pair's sub-tiles in neighbouring lanes */
        uint32_t tig, slot, half;
        kvq_tc_key_slot(D, BITS, i, &tig, &slot, &half);
        float c = 1.0f, s = 0.0f;
        if constexpr (ROT) {
            double2 b = sh.base[i];
            if (advance) {
                const double2 st = sh.step[i];
                b = make_double2(b.x * st.x - b.y * st.y, b.x * st.y + b.y * st.x);
            }
            if (kSub > 1u && j != 0u) { /* the second sub-tile's base */
                const double2 st = sh.sub[i];
                b = make_double2(b.x * st.x - b.y * st.y, b.x * st.y + b.y * st.x);
            }
            const double2 p = sh.pq[i];
            c = (float)(p.x * b.x + p.y * b.y); /* cis((q_position - p0) theta_i) */
            s = (float)(p.y * b.x - p.x * b.y);
            constexpr uint32_t kLanes = kItemsPerWarp == 32u ? 0xFFFFFFFFu : (1u << kItemsPerWarp) - 1u;
            __syncwarp(kLanes); /* base is read by both lanes of the pair before the first writes it */
            if (advance && j == 0u) sh.base[i] = b;
        }
        for (uint32_t h = 0; h < nh; h++) { /* heads past n_q stay the zeros written once per block */
            const float qa = __ldg(qg + h * D + i), qb = __ldg(qg + h * D + i + D / 2u);
            const float ra = __fmul_rn(__fmaf_rn(qa, c, -__fmul_rn(qb, s)), scale);
            const float rb = __fmul_rn(__fmaf_rn(qa, s, __fmul_rn(qb, c)), scale);
            sh.q[buf][j][slot][4u * h + tig][half] = __float2half_rn(ra);
            sh.q[buf][j][slot + D / 16u][4u * h + tig][half] = __float2half_rn(rb);
        }
    }
}

/* The key params row `prow` (in shared memory: the tile's staged rows) into the warp's
 * lane-column table (the fp16 profile's domain check of every row the block uses ran before
 * the tile loop). */
template <int D, int BITS, bool ROT>
__device__ __forceinline__ void load_key_params(Shared<D, BITS, ROT> &sh, const uint32_t *prow, bool sym, uint32_t warp,
                                                uint32_t lane, uint32_t blk)
{
    __half *kp = reinterpret_cast<__half *>(&sh.kpar[warp][0][0][0]);
    __syncwarp(); /* every lane is done with the table's previous block */
#pragma unroll
    for (uint32_t j = 0; j < (uint32_t)D / 32u; j++) {
        const uint32_t c = lane + 32u * j;
        const uint32_t w = prow[c];
        const uint16_t a = sym ? (uint16_t)0x8000u : (uint16_t)(w & 0xFFFFu); /* sym: the addend is -0 (S3.5) */
        const uint16_t b = (uint16_t)(w >> 16);
        uint32_t tig, slot, half;
        kvq_tc_key_slot(D, BITS, c, &tig, &slot, &half);
        kp[((slot * 4u + tig) * 2u + 0u) * 2u + half] = __ushort_as_half(a);
        kp[((slot * 4u + tig) * 2u + 1u) * 2u + half] = __ushort_as_half(b);
    }
    if (lane == 0) sh.kpar_block[warp] = blk;
    __syncwarp();
}

/* S12.4's domain over the key params rows the block's tokens use: a pair (i, i + d/2) whose
 * decoded magnitudes could sum beyond 2^15 is outside the fp16 profile. Returns whether every
 * pair is inside (all threads; one barrier). */
template <int D, int BITS>
__device__ __forceinline__ bool key_domain_ok(const kvq_cuda_view &K, const KeyBlocks &kb, uint32_t t_begin,
                                              uint32_t t_end, bool sym, uint32_t tid)
{
    const float lo_code = sym ? -(float)(1u << (BITS - 1)) : 0.0f;
    const float hi_code = lo_code + (float)((1u << BITS) - 1u);
    const uint32_t r0 = kb.of(t_begin), rows = kb.of(t_end - 1u) - r0 + 1u;
    bool ok = true;
#pragma unroll 4
    for (uint32_t e = tid; e < rows * ((uint32_t)D / 2u); e += kThreads) {
        const uint32_t *row = K.params + (size_t)(r0 + e / (D / 2u)) * D;
        const uint32_t i = e % (D / 2u);
        float dom = 0.0f;
#pragma unroll
        for (uint32_t part = 0; part < 2u; part++) {
            const uint32_t w = __ldg(row + i + part * (D / 2u));
            const float af = sym ? -0.0f : kvq_dev_fp32((uint16_t)(w & 0xFFFFu)), bf = kvq_dev_fp32((uint16_t)(w >> 16));
            dom += fmaxf(fabsf(__fmaf_rn(bf, lo_code, af)), fabsf(__fmaf_rn(bf, hi_code, af)));
        }
        ok = ok && dom <= kDomain; /* false for NaN */
    }
    return __syncthreads_and(ok) != 0;
}

/* Whether any token of [t_begin, t_end) is stored in fp16 (all threads; one barrier). */
__device__ __forceinline__ bool any_fp16_token(const kvq_cuda_view &K, const kvq_cuda_view &V, uint32_t t_begin,
                                               uint32_t t_end, uint32_t tid)
{
    static_assert(KVQ_PREC_QUANTIZED == 0, "a word of quantized tokens is zero");
    /* Whole words from t_begin (a multiple of 4: splits are whole tiles; the arrays are 16-byte
     * aligned), then the last bytes. */
    const uint32_t *kw = reinterpret_cast<const uint32_t *>(K.precision), *vw = reinterpret_cast<const uint32_t *>(V.precision);
    uint32_t x = 0;
#pragma unroll 4
    for (uint32_t w = t_begin / 4u + tid; w < t_end / 4u; w += kThreads) x |= __ldg(kw + w) | __ldg(vw + w);
    for (uint32_t t = (t_end & ~3u) + tid; t < t_end; t += kThreads) x |= (uint32_t)K.precision[t] | V.precision[t];
    return __syncthreads_or(x != 0u) != 0;
}

/* cos/sin of offset o for the two channels of each of a lane's first-half key slots, as half2,
 * from the fp32 table of kvq_cuda_rope_step32_table (each value rounded once from double, so
 * within u of the exact one: S12.4 (b) asks for 4u before the rounding to fp16). */
template <int D, int BITS>
__device__ __forceinline__ void rope_pair(const float2 *step32, uint32_t tig, uint32_t slot, uint32_t o, uint32_t &c2,
                                          uint32_t &s2)
{
    float2 cs[2];
#pragma unroll
    for (uint32_t half = 0; half < 2u; half++)
        cs[half] = __ldg(step32 + (size_t)kvq_tc_key_channel(D, BITS, tig, slot, half) * KVQ_CUDA_STEP32_OFFSETS + o);
    c2 = h2u(__floats2half2_rn(cs[0].x, cs[1].x));
    s2 = h2u(__floats2half2_rn(cs[0].y, cs[1].y));
}

/* Three resident blocks (12 warps) per SM up to head_dim 128: at most 168 registers per thread
 * (ptxas otherwise takes about 180, which leaves room for two). Without RoPE there is no cos/sin
 * table in registers and the shared memory is smaller, so four (128 registers). Larger heads
 * have the shared memory for two. `outlier_heads`: the H of the launch's OutlierShared, 0 when it has none (the
 * call's tensors hold no outliers). */
template <int D, int BITS, bool ROT>
__global__ void __launch_bounds__(kThreads, D <= 128 ? (ROT ? 3 : 4) : 2) tc_split_kernel(kvq_cuda_attention_args args,
                                                                           uint32_t outlier_heads)
{
    using G = Geometry<D, BITS>;
    constexpr uint32_t kSub = Tiling<D>::kSub, kTileTokens = G::kTileTokens;
    extern __shared__ __align__(16) unsigned char smem[];
    Shared<D, BITS, ROT> &sh = *reinterpret_cast<Shared<D, BITS, ROT> *>(smem + G::kStages * G::kStageBytes);
    const OutlierShared<D> os{reinterpret_cast<float *>(smem + G::kStages * G::kStageBytes + sizeof(Shared<D, BITS, ROT>)),
                              outlier_heads};
    const bool outliers = outlier_heads != 0u;
    const uint32_t split = blockIdx.x, hg = blockIdx.y, seq = blockIdx.z;
    const uint32_t n = args.seqs[seq].n_tokens;
    const uint32_t t_begin = split * args.tokens_per_split;
    if (t_begin >= n) return;
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5, g = lane >> 2, tig = lane & 3u;
    {
        const uint32_t *src = reinterpret_cast<const uint32_t *>(&args.seqs[seq]);
        uint32_t *dst = reinterpret_cast<uint32_t *>(&sh.sq);
        for (uint32_t w = tid; w < sizeof(kvq_cuda_seq) / 4u; w += kThreads) dst[w] = src[w];
    }
    __syncthreads();
    const kvq_cuda_seq &sq = sh.sq;
    const kvq_cuda_view &K = sq.keys, &V = sq.values;
    const uint32_t t_end = min(n, t_begin + args.tokens_per_split);
    const uint32_t n_tiles = (t_end - t_begin + kTileTokens - 1u) / kTileTokens;
    const uint32_t h0 = hg * kHeads, nh = min(kHeads, args.n_q - h0);
    const float *qg = args.q + ((size_t)seq * args.n_q + h0) * D;
    KeyBlocks kb;
    kb.size = K.group_size;
    kb.calibrated = K.layout == KVQ_CUDA_PARAMS_KEYS_CALIBRATED;
    kb.pow2 = kb.size != 0u && (kb.size & (kb.size - 1u)) == 0u;
    kb.shift = kb.pow2 ? (uint32_t)(__ffs((int)kb.size) - 1) : 0u;
    const bool ksym = K.scheme == KVQ_SCHEME_UNIFORM_SYM, vsym = V.scheme == KVQ_SCHEME_UNIFORM_SYM;
    bool any_kout = K.optr[t_end] != K.optr[t_begin], any_vout = V.optr[t_end] != V.optr[t_begin];
    /* Outliers in a launch without their shared memory (the host's hint said none): the block
     * cannot correct them, so it asks for the fp32 kernels' rerun (bit 1) and computes without. */
    const bool lost_outliers = (any_kout || any_vout) && !outliers;
    if (lost_outliers) any_kout = any_vout = false;
    /* Which blocks need the general m-tile body at all: none of their tokens in fp16 and no
     * outliers lets every tile skip the precisions and outlier pointers. */
    const bool fp16_tokens = any_fp16_token(K, V, t_begin, t_end, tid); /* a barrier */
    const bool plain = !any_kout && !any_vout && !fp16_tokens;

    /* The first tiles are requested before anything else is set up. */
    for (uint32_t k = 0; k + 1u < G::kStages; k++) {
        if (k < n_tiles) load_tile<D, BITS>(smem + k * G::kStageBytes, sq, kb, t_begin + k * kTileTokens, t_end, tid, plain);
        else cp_async_commit();
    }

    /* ---- once per block ---- */
    const bool domain_ok = key_domain_ok<D, BITS>(K, kb, t_begin, t_end, ksym, tid); /* a barrier */
    if (tid == 0) sh.flag = (domain_ok ? 0u : 2u) | (lost_outliers ? 2u : 0u);
    if (lane == 0) sh.kpar_block[warp] = 0xFFFFFFFFu;
    /* The four cis tables, one (table, pair) per thread at a time: the block's first queries wait
     * for them, so every thread takes a share. */
    if constexpr (ROT)
        for (uint32_t e = tid; e < 4u * ((uint32_t)D / 2u); e += kThreads) {
            const uint32_t i = e % (D / 2u), which = e / (D / 2u);
            const uint32_t position = which == 0u   ? sq.pos0 + t_begin
                                      : which == 1u ? kTileTokens
                                      : which == 2u ? Tiling<D>::kSubTokens
                                                    : sq.q_position;
            double c, s;
            kvq_dev_rope_cos_sin_double(position, args.theta[i], &c, &s);
            double2 *table = which == 0u ? sh.base : which == 1u ? sh.step : which == 2u ? sh.sub : sh.pq;
            table[i] = make_double2(c, s);
        }
    for (uint32_t i = tid; i < OutlierShared<D>::bytes(outlier_heads) / 4u; i += kThreads) os.base[i] = 0.0f;
    for (uint32_t i = tid; i < sizeof sh.q / 4u; i += kThreads) reinterpret_cast<uint32_t *>(&sh.q[0][0][0][0][0])[i] = 0u;
    __syncthreads();
    const float qscale = args.score_scale; /* fl32(log2(e) / sqrt(d)): scores in base 2 */
    make_query<D, BITS, ROT>(sh, 0, nh, qscale, false, tid, qg);

    const float2 *step32 = reinterpret_cast<const float2 *>(args.rope_step32);
    /* The warp's key offsets in every sub-tile are 16 warp + g and + 8: their cos/sin, once. */
    uint32_t rc[2][G::kRopeInRegisters ? G::kPartSlots : 1], rs[2][G::kRopeInRegisters ? G::kPartSlots : 1];
    if (ROT) {
#pragma unroll
        for (uint32_t row = 0; row < 2u; row++)
#pragma unroll
            for (uint32_t slot = 0; slot < G::kPartSlots; slot++) {
                uint32_t c2, s2;
                rope_pair<D, BITS>(step32, tig, slot, 16u * warp + g + 8u * row, c2, s2);
                if (G::kRopeInRegisters) {
                    rc[row][G::kRopeInRegisters ? slot : 0] = c2;
                    rs[row][G::kRopeInRegisters ? slot : 0] = s2;
                } else {
                    sh.rope_tab[G::kRopeInRegisters ? 0 : warp][G::kRopeInRegisters ? 0 : (row * G::kPartSlots + slot) * 2u][lane] = c2;
                    sh.rope_tab[G::kRopeInRegisters ? 0 : warp][G::kRopeInRegisters ? 0 : (row * G::kPartSlots + slot) * 2u + 1u][lane] = s2;
                }
            }
    }

    /* Per-lane softmax state for heads 2 tig, 2 tig + 1 (the same in every lane of a column) and
     * the O^T accumulators: m-tile mt holds channels (g d/8 + 2 mt, + 1) x heads (2 tig, 2 tig + 1). */
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
    float oacc[G::kChannelTiles][4];
#pragma unroll
    for (uint32_t mt = 0; mt < G::kChannelTiles; mt++)
#pragma unroll
        for (int e = 0; e < 4; e++) oacc[mt][e] = 0.0f;
    /* The codes' offsets (S3.5): 2^(bits-1) for the symmetric scheme. An outlier's dense value is
     * decoded for one element the same way, bit for bit: (code - offset) is exact. */
    const float koff = ksym ? (float)(1u << (BITS - 1)) : 0.0f, voff = vsym ? (float)(1u << (BITS - 1)) : 0.0f;
    uint32_t ksub[16 / BITS], vsub[16 / BITS];
    code_subtrahends<BITS>(koff, ksub);
    code_subtrahends<BITS>(voff, vsub);

    for (uint32_t k = 0; k < n_tiles; k++) {
        cp_async_wait<G::kStages - 2>();
        __syncthreads(); /* tile k has landed for everyone; every warp is done with tile k - 1 and its queries */
        {
            const uint32_t next = k + G::kStages - 1u;
            if (next < n_tiles)
                load_tile<D, BITS>(smem + (next % G::kStages) * G::kStageBytes, sq, kb, t_begin + next * kTileTokens,
                                   t_end, tid, plain);
            else
                cp_async_commit(); /* keep one group per iteration, so the wait count above holds */
        }
        const uint32_t buf = ROT ? k & 1u : 0u; /* without RoPE one query serves every tile */
        /* The next tile's queries, into the other buffer (nobody reads it until the next barrier). */
        if (ROT && k + 1u < n_tiles) make_query<D, BITS, ROT>(sh, buf ^ 1u, nh, qscale, true, tid, qg);
        const unsigned char *stage = smem + (k % G::kStages) * G::kStageBytes;
        const uint32_t t0 = t_begin + k * kTileTokens;
        if (t0 + 16u * warp >= t_end) continue; /* the warp's m-tiles lie past the split (its last tile) */
        const uint32_t first_blk = kb.of(t0);

        /* Per m-tile m of the warp: its first token, its length (0 past the split), where its rows sit. */
        uint32_t tm[kSub], ntm[kSub];
#pragma unroll
        for (uint32_t m = 0; m < kSub; m++) {
            tm[m] = t0 + Tiling<D>::kSubTokens * m + 16u * warp;
            ntm[m] = tm[m] < t_end ? min(16u, t_end - tm[m]) : 0u;
        }
        /* Keys stored in fp16 replace the row (S8, S10), values stored in fp16 their token's
         * halves; outliers need fp32 corrections. All are rare (sinks sit in the first tile), so
         * a tile without them takes a body compiled without their code: the general body's
         * branches, even untaken, cost the lean one a third of its issue slots. */
        bool krow16[kSub][2], any16 = false, anyv16 = false;
#pragma unroll
        for (uint32_t m = 0; m < kSub; m++) krow16[m][0] = krow16[m][1] = false;
        /* Only blocks with a token in fp16 scan the tile's precisions (about 200 instructions per
         * warp and tile: with outliers every block was scanned, ncu, H200, 2026-12-03). */
        if (fp16_tokens) {
#pragma unroll
            for (uint32_t m = 0; m < kSub; m++) {
                const uint32_t mo = Tiling<D>::kSubTokens * m + 16u * warp;
                const uint8_t *kprec = stage + G::kKeyPrec + mo, *vprec = stage + G::kValuePrec + mo;
                krow16[m][0] = g < ntm[m] && kprec[g] != KVQ_PREC_QUANTIZED;
                krow16[m][1] = g + 8u < ntm[m] && kprec[g + 8u] != KVQ_PREC_QUANTIZED;
                bool vrow16 = false;
#pragma unroll
                for (uint32_t t = 2u * tig; t < 16u; t += 8u)
                    vrow16 = vrow16 || (t < ntm[m] && vprec[t] != KVQ_PREC_QUANTIZED) ||
                             (t + 1u < ntm[m] && vprec[t + 1u] != KVQ_PREC_QUANTIZED);
                any16 = any16 || krow16[m][0] || krow16[m][1];
                anyv16 = anyv16 || vrow16;
            }
            any16 = __any_sync(kAttFullMask, any16);
            anyv16 = __any_sync(kAttFullMask, anyv16);
        }

        /* ROWS: the tile has tokens stored in fp16 (patched into the fragments); OUTL: the block has
         * outliers (fp32 corrections). Blocks with outliers but no fp16 token (all but the sink's)
         * take a body without the row patches, which also decodes paired m-tiles: with one general
         * body they cost twice the plain one (ncu, H200, 2026-12-03: 1,297 instructions per warp and
         * m-tile against 660, half of the difference the row tests and the unpaired decode). */
        auto tile_body = [&](auto rows, auto outl) {
            constexpr bool ROWS = decltype(rows)::value, OUTL = decltype(outl)::value;
            /* ---- scores S^T = K Q^T of each m-tile ---- */
            float sacc[kSub][4];
            /* RoPE of a dequantized key pair (ka: channel i, kb2: i + d/2) of row `row` at slot `slot`. */
            auto rotate_key = [&](__half2 &ka, __half2 &kb2, uint32_t row, uint32_t slot) {
                if (!ROT) return;
                uint32_t c2, s2;
                if (G::kRopeInRegisters) {
                    c2 = rc[row][G::kRopeInRegisters ? slot : 0];
                    s2 = rs[row][G::kRopeInRegisters ? slot : 0];
                } else {
                    c2 = sh.rope_tab[G::kRopeInRegisters ? 0 : warp][G::kRopeInRegisters ? 0 : (row * G::kPartSlots + slot) * 2u][lane];
                    s2 = sh.rope_tab[G::kRopeInRegisters ? 0 : warp][G::kRopeInRegisters ? 0 : (row * G::kPartSlots + slot) * 2u + 1u][lane];
                }
                /* S12.4 (b): fl(ka c - fl(kb s)), fl(ka s + fl(kb c)) */
                const __half2 c = u2h(c2), s = u2h(s2);
                const __half2 xa = __hfma2(ka, c, __hneg2(__hmul2(kb2, s)));
                const __half2 xb = __hfma2(ka, s, __hmul2(kb2, c));
                ka = xa;
                kb2 = xb;
            };
            /* Key outliers (S12.4 (a')): their dense decode goes through the MMA, and the rotated exact
             * difference is added to the score in fp32, a lane per outlier, for the mc m-tiles from
             * m0 (both of a paired tile, in one pass of 16 lanes each, or one with all 32). A lane's
             * first outlier is fetched before the decode, so that its latency hides behind the
             * MMAs; later ones are fetched when they are used. */
            auto ntm_of = [&](uint32_t m) { return kSub == 2u && m != 0u ? ntm[kSub - 1u] : ntm[0]; };
            auto key_outliers_ahead = [&](uint32_t m0, uint32_t mc) -> uint32_t { /* channel | fp16 value << 16 */
                const uint32_t lanes = 32u / mc, m = m0 + lane / lanes, li = lane % lanes;
                const uint32_t *koptr = reinterpret_cast<const uint32_t *>(stage + G::kKeyOptr) +
                                        Tiling<D>::kSubTokens * m + 16u * warp;
                const uint32_t nt = ntm_of(m);
                const uint32_t kob = nt != 0u ? koptr[0] : 0u, koe = nt != 0u ? koptr[nt] : 0u;
                return kob + li < koe ? (uint32_t)K.ochan[kob + li] | (uint32_t)K.oval[kob + li] << 16 : 0u;
            };
            auto key_corrections = [&](uint32_t m0, uint32_t mc, uint32_t ahead) {
                const uint32_t lanes = 32u / mc, m = m0 + lane / lanes, li = lane % lanes;
                const uint32_t mo = Tiling<D>::kSubTokens * m + 16u * warp, nt = ntm_of(m);
                const uint32_t *kcode = reinterpret_cast<const uint32_t *>(stage + G::kKeyCodes) + mo * G::kRowWords;
                const uint32_t *koptr = reinterpret_cast<const uint32_t *>(stage + G::kKeyOptr) + mo;
                const uint32_t kob = nt != 0u ? koptr[0] : 0u, koe = nt != 0u ? koptr[nt] : 0u;
                if (!__any_sync(kAttFullMask, koe != kob)) return;
                for (uint32_t e = kob + li; e < koe; e += lanes) {
                    const Outlier o = outlier_at<BITS>(e, kob, lanes, ahead, koptr, nt, K, kcode, G::kRowWords);
                    const uint32_t tl = o.tl, c = o.c, code = o.code;
                    const float y = o.y;
                    uint32_t ctig, cslot, chalf;
                    kvq_tc_key_slot(D, BITS, c, &ctig, &cslot, &chalf);
                    const __half a = reinterpret_cast<const __half *>(&sh.kpar[warp][cslot][ctig][0])[chalf];
                    const __half b = reinterpret_cast<const __half *>(&sh.kpar[warp][cslot][ctig][1])[chalf];
                    const __half dense = __hfma(b, __float2half_rn((float)code - koff), a);
                    const float delta = y - __half2float(dense); /* exact: two fp16 numbers */
                    if (fabsf(y) > kDomain / 2.0f) atomicOr(&sh.flag, 2u);
                    const uint32_t i = c % (D / 2u);
                    float da = delta, db = 0.0f;
                    if (ROT) {
                        const float2 cs = __ldg(step32 + (size_t)i * KVQ_CUDA_STEP32_OFFSETS + 16u * warp + tl);
                        da = c < D / 2u ? delta * cs.x : -delta * cs.y;
                        db = c < D / 2u ? delta * cs.y : delta * cs.x;
                    } else if (c >= D / 2u) {
                        da = 0.0f;
                        db = delta;
                    }
                    uint32_t atig, aslot, ahalf;
                    kvq_tc_key_slot(D, BITS, i, &atig, &aslot, &ahalf);
                    /* Only the block's nh real query heads: the padding heads' scores are never output
                     * (their queries are zero, so their corrections would be zero too). */
                    for (uint32_t h = 0; h < nh; h++) {
                        const float qa = __half2float(sh.q[buf][ROT ? m : 0][aslot][4u * h + atig][ahalf]);
                        const float qb = __half2float(sh.q[buf][ROT ? m : 0][aslot + G::kPartSlots][4u * h + atig][ahalf]);
                        atomicAdd(&os.score(warp, 16u * m + tl, h), __fmaf_rn(qa, da, __fmul_rn(qb, db)));
                    }
                }
                __syncwarp();
                /* Columns 2 tig, 2 tig + 1; those past the block's heads have no corrections (nh <= H). */
#pragma unroll
                for (uint32_t mm = 0; mm < kSub; mm++)
                    if (mm >= m0 && mm < m0 + mc)
#pragma unroll
                        for (uint32_t hh = 0; hh < 2u; hh++)
                            if (2u * tig + hh < nh) {
                                sacc[mm][hh] += os.score(warp, 16u * mm + g, 2u * tig + hh);
                                sacc[mm][2u + hh] += os.score(warp, 16u * mm + g + 8u, 2u * tig + hh);
                            }
                __syncwarp();
                for (uint32_t i = lane; i < 16u * mc * os.H; i += 32u) (&os.score(warp, 16u * m0, 0))[i] = 0.0f;
                __syncwarp();
            };
            /* Both m-tiles of a plain tile in one key block: decoded side by side, with one load of
             * each key parameter for both and two independent chains of MMAs (the warp's only
             * source of parallelism at three warps per scheduler). */
            bool paired = false;
            if constexpr (!ROWS && kSub == 2u) paired = ntm[1] != 0u && kb.of(tm[0]) == kb.of(tm[1]);
            if (paired) {
                const uint32_t blk = kb.of(tm[0]);
                if (sh.kpar_block[warp] != blk) {
                    const uint32_t *prow = reinterpret_cast<const uint32_t *>(stage + G::kKeyParams) + (blk - first_blk) * D;
                    load_key_params<D, BITS, ROT>(sh, prow, ksym, warp, lane, blk);
                }
                const uint32_t kahead = OUTL && any_kout ? key_outliers_ahead(0u, kSub) : 0u;
                uint32_t kw[kSub][2][2][G::kLaneWords], kws[kSub][2][2][G::kLaneWords]; /* [m][row][part][word] */
#pragma unroll
                for (uint32_t m = 0; m < kSub; m++) {
                    const uint32_t *kcode = reinterpret_cast<const uint32_t *>(stage + G::kKeyCodes) +
                                            (Tiling<D>::kSubTokens * m + 16u * warp) * G::kRowWords;
#pragma unroll
                    for (uint32_t row = 0; row < 2u; row++)
#pragma unroll
                        for (uint32_t part = 0; part < 2u; part++)
#pragma unroll
                            for (uint32_t w = 0; w < G::kLaneWords; w++) {
                                kw[m][row][part][w] = kcode[(g + 8u * row) * G::kRowWords + part * G::kHalfWords +
                                                            tig * G::kLaneWords + w];
                                kws[m][row][part][w] = kw[m][row][part][w] >> kvq_tc_code_shift(BITS);
                            }
                }
                float s_lo[kSub][4], s_hi[kSub][4];
#pragma unroll
                for (uint32_t m = 0; m < kSub; m++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s_lo[m][e] = s_hi[m][e] = 0.0f;
#pragma unroll
                for (uint32_t ps = 0; ps < G::kPairSteps; ps++) {
                    uint32_t ra[kSub][4], rb[kSub][4];
#pragma unroll
                    for (uint32_t j = 0; j < 2u; j++) {
                        const uint32_t slot = 2u * ps + j;
                        const uint2 par_a = *reinterpret_cast<const uint2 *>(&sh.kpar[warp][slot][tig][0]);
                        const uint2 par_b = *reinterpret_cast<const uint2 *>(&sh.kpar[warp][slot + G::kPartSlots][tig][0]);
                        const uint32_t word = slot / kvq_tc_cph(BITS), p = slot % kvq_tc_cph(BITS);
#pragma unroll
                        for (uint32_t m = 0; m < kSub; m++)
#pragma unroll
                            for (uint32_t row = 0; row < 2u; row++) {
                                __half2 ka = __hfma2(u2h(par_a.y), code_pair<BITS>(kw[m][row][0][word], kws[m][row][0][word], p, ksub[p]),
                                                     u2h(par_a.x));
                                __half2 kb2 = __hfma2(u2h(par_b.y), code_pair<BITS>(kw[m][row][1][word], kws[m][row][1][word], p, ksub[p]),
                                                      u2h(par_b.x));
                                rotate_key(ka, kb2, row, slot);
                                ra[m][2u * j + row] = h2u(ka);
                                rb[m][2u * j + row] = h2u(kb2);
                            }
                    }
#pragma unroll
                    for (uint32_t m = 0; m < kSub; m++) {
                        const uint32_t *qw = reinterpret_cast<const uint32_t *>(&sh.q[buf][ROT ? m : 0][0][lane][0]);
                        const uint32_t a_lo[4] = {ra[m][0], ra[m][1], ra[m][2], ra[m][3]};
                        const uint32_t a_hi[4] = {rb[m][0], rb[m][1], rb[m][2], rb[m][3]};
                        mma16816(s_lo[m], a_lo, qw[32u * (2u * ps)], qw[32u * (2u * ps + 1u)]);
                        mma16816(s_hi[m], a_hi, qw[32u * (G::kPartSlots + 2u * ps)], qw[32u * (G::kPartSlots + 2u * ps + 1u)]);
                    }
                }
#pragma unroll
                for (uint32_t m = 0; m < kSub; m++)
#pragma unroll
                    for (int e = 0; e < 4; e++) sacc[m][e] = s_lo[m][e] + s_hi[m][e];
                if (OUTL && any_kout) key_corrections(0u, kSub, kahead);
#pragma unroll
                for (uint32_t m = 0; m < kSub; m++) {
                    if (g >= ntm[m]) sacc[m][0] = sacc[m][1] = -INFINITY;
                    if (g + 8u >= ntm[m]) sacc[m][2] = sacc[m][3] = -INFINITY;
                }
            }
#pragma unroll
            for (uint32_t m = 0; m < kSub; m++) {
                if (paired) break;
#pragma unroll
                for (int e = 0; e < 4; e++) sacc[m][e] = -INFINITY;
                if (ntm[m] == 0u) continue;
                const uint32_t mo = Tiling<D>::kSubTokens * m + 16u * warp; /* m-tile offset in the tile */
                const uint32_t *kcode = reinterpret_cast<const uint32_t *>(stage + G::kKeyCodes) + mo * G::kRowWords;
                const uint32_t blk = kb.of(tm[m]);
                if (sh.kpar_block[warp] != blk) {
                    const uint32_t *prow = reinterpret_cast<const uint32_t *>(stage + G::kKeyParams) + (blk - first_blk) * D;
                    load_key_params<D, BITS, ROT>(sh, prow, ksym, warp, lane, blk);
                }
                const uint32_t *qw = reinterpret_cast<const uint32_t *>(&sh.q[buf][ROT ? m : 0][0][lane][0]); /* slot s: qw[32 s] */
                uint32_t kw[2][2][G::kLaneWords], kws[2][2][G::kLaneWords]; /* [row][part][word], and shifted */
#pragma unroll
                for (uint32_t row = 0; row < 2u; row++)
#pragma unroll
                    for (uint32_t part = 0; part < 2u; part++)
#pragma unroll
                        for (uint32_t w = 0; w < G::kLaneWords; w++) {
                            kw[row][part][w] = kcode[(g + 8u * row) * G::kRowWords + part * G::kHalfWords +
                                                     tig * G::kLaneWords + w];
                            kws[row][part][w] = kw[row][part][w] >> kvq_tc_code_shift(BITS);
                        }
                const uint32_t kahead = OUTL && any_kout ? key_outliers_ahead(m, 1u) : 0u;
                /* Two accumulators (first and second halves of the head) halve the chain of dependent MMAs. */
                float s_lo[4] = {0.0f, 0.0f, 0.0f, 0.0f}, s_hi[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                for (uint32_t ps = 0; ps < G::kPairSteps; ps++) {
                    uint32_t ra[4], rb[4];
#pragma unroll
                    for (uint32_t j = 0; j < 2u; j++) {
                        const uint32_t slot = 2u * ps + j;
                        const uint2 par_a = *reinterpret_cast<const uint2 *>(&sh.kpar[warp][slot][tig][0]);
                        const uint2 par_b = *reinterpret_cast<const uint2 *>(&sh.kpar[warp][slot + G::kPartSlots][tig][0]);
#pragma unroll
                        for (uint32_t row = 0; row < 2u; row++) {
                            const uint32_t word = slot / kvq_tc_cph(BITS), p = slot % kvq_tc_cph(BITS);
                            __half2 ka = __hfma2(u2h(par_a.y), code_pair<BITS>(kw[row][0][word], kws[row][0][word], p, ksub[p]),
                                                 u2h(par_a.x));
                            __half2 kb2 = __hfma2(u2h(par_b.y), code_pair<BITS>(kw[row][1][word], kws[row][1][word], p, ksub[p]),
                                                  u2h(par_b.x));
                            if (ROWS && any16 && krow16[m][row]) {
                                const uint32_t t = tm[m] + g + 8u * row;
                                const uint16_t *r16 = kvq_att_fp16_row(K, K.slot[t]);
                                __half ha[2], hb[2];
#pragma unroll
                                for (uint32_t half = 0; half < 2u; half++) {
                                    const uint32_t c = kvq_tc_key_channel(D, BITS, tig, slot, half);
                                    ha[half] = __ushort_as_half(r16[c]);
                                    hb[half] = __ushort_as_half(r16[c + D / 2u]);
                                    if (fabsf(__half2float(ha[half])) + fabsf(__half2float(hb[half])) > kDomain)
                                        atomicOr(&sh.flag, 2u);
                                }
                                ka = __halves2half2(ha[0], ha[1]);
                                kb2 = __halves2half2(hb[0], hb[1]);
                            }
                            rotate_key(ka, kb2, row, slot);
                            ra[2u * j + row] = h2u(ka); /* a0 a1 a2 a3 = (row g, slot 2s), (g + 8, 2s), (g, 2s + 1), (g + 8, 2s + 1) */
                            rb[2u * j + row] = h2u(kb2);
                        }
                    }
                    const uint32_t a_lo[4] = {ra[0], ra[1], ra[2], ra[3]}, a_hi[4] = {rb[0], rb[1], rb[2], rb[3]};
                    mma16816(s_lo, a_lo, qw[32u * (2u * ps)], qw[32u * (2u * ps + 1u)]);
                    mma16816(s_hi, a_hi, qw[32u * (G::kPartSlots + 2u * ps)], qw[32u * (G::kPartSlots + 2u * ps + 1u)]);
                }
#pragma unroll
                for (int e = 0; e < 4; e++) sacc[m][e] = s_lo[e] + s_hi[e];

                if (OUTL && any_kout) key_corrections(m, 1u, kahead);
                if (g >= ntm[m]) sacc[m][0] = sacc[m][1] = -INFINITY;
                if (g + 8u >= ntm[m]) sacc[m][2] = sacc[m][3] = -INFINITY;
            }

            /* ---- online softmax over the warp's m-tiles of the tile, base 2: tokens g, g + 8 of each;
             * heads 2 tig, 2 tig + 1 ---- */
            float alpha[2];
            bool changed = false;
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                float mt = -INFINITY;
#pragma unroll
                for (uint32_t m = 0; m < kSub; m++) mt = fmaxf(mt, fmaxf(sacc[m][hh], sacc[m][2 + hh]));
#pragma unroll
                for (int off = 4; off < 32; off <<= 1) mt = fmaxf(mt, __shfl_xor_sync(kAttFullMask, mt, off));
                const float m_new = fmaxf(m_run[hh], ceilf(mt)); /* an integer above every score: exact rescales */
                alpha[hh] = pow2_difference(m_run[hh], m_new);
                changed = changed || m_new != m_run[hh];
                m_run[hh] = m_new;
            }
            float p[kSub][4];
#pragma unroll
            for (uint32_t m = 0; m < kSub; m++)
#pragma unroll
                for (int e = 0; e < 4; e++) p[m][e] = exp2f(sacc[m][e] - m_run[e & 1]);
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                float add = 0.0f; /* the row sum from the unrounded weights */
#pragma unroll
                for (uint32_t m = 0; m < kSub; m++) add += p[m][hh] + p[m][2 + hh];
                l_run[hh] = l_run[hh] * alpha[hh] + add;
            }
            /* Rescales are exact powers of two and rare once the running maximum has settled: the
             * accumulators are touched only when some column's maximum moved. */
            if (__any_sync(kAttFullMask, changed)) {
#pragma unroll
                for (uint32_t mt = 0; mt < G::kChannelTiles; mt++) {
                    oacc[mt][0] *= alpha[0];
                    oacc[mt][1] *= alpha[1];
                    oacc[mt][2] *= alpha[0];
                    oacc[mt][3] *= alpha[1];
                }
                if (OUTL && any_vout) { /* the fp32 corrections follow the same scale */
                    __syncwarp();
                    /* nh * D is a multiple of 32: every lane runs as many iterations (the shuffle's mask) */
                    for (uint32_t i = lane; i < nh * (uint32_t)D; i += 32u) {
                        const uint32_t h = i / D;
                        const float a = __shfl_sync(kAttFullMask, (h & 1u) ? alpha[1] : alpha[0], (h >> 1), 32); /* from column h / 2 */
                        os.out(warp, h, i % D) *= a;
                    }
                    __syncwarp();
                }
            }

            /* ---- O^T += V^T P^T of each m-tile: tokens (2 tig, 2 tig + 1) and (2 tig + 8, 2 tig + 9),
             * channels g d/8 .. ---- */
#pragma unroll
            for (uint32_t m = 0; m < kSub; m++) {
                if (ntm[m] == 0u) continue;
                const uint32_t mo = Tiling<D>::kSubTokens * m + 16u * warp;
                const uint8_t *vprec = stage + G::kValuePrec + mo;
                const uint32_t *vcode = reinterpret_cast<const uint32_t *>(stage + G::kValueCodes) + mo * G::kRowWords;
                const uint32_t *vpar = reinterpret_cast<const uint32_t *>(stage + G::kValueParams) + mo;
                const uint32_t *voptr = reinterpret_cast<const uint32_t *>(stage + G::kValueOptr) + mo;
                /* The weights rounded to fp16 (S12.4 (d)), moved from the S^T layout (token g, heads
                 * 2 tig..) to the B operand of P.V (tokens 2 tig.., head g). */
                const __half2 h01 = __floats2half2_rn(p[m][0], p[m][1]), h23 = __floats2half2_rn(p[m][2], p[m][3]);
                const uint32_t src0 = 8u * tig + (g >> 1), src1 = src0 + 4u;
                const uint32_t x0 = __shfl_sync(kAttFullMask, h2u(h01), src0), x1 = __shfl_sync(kAttFullMask, h2u(h01), src1);
                const uint32_t y0 = __shfl_sync(kAttFullMask, h2u(h23), src0), y1 = __shfl_sync(kAttFullMask, h2u(h23), src1);
                const uint32_t sel = (g & 1u) ? 0x7632u : 0x5410u;
                const uint32_t pb0 = __byte_perm(x0, x1, sel), pb1 = __byte_perm(y0, y1, sel);
                uint32_t vob = 0, voe = 0, vout_pf = 0;
                if (OUTL && any_vout) {
                    vob = voptr[0], voe = voptr[ntm[m]];
                    if (vob + lane < voe) vout_pf = (uint32_t)V.ochan[vob + lane] | (uint32_t)V.oval[vob + lane] << 16;
                    const float2 f01 = __half22float2(h01), f23 = __half22float2(h23);
                    if (2u * tig < nh) {
                        os.weight(warp, g, 2u * tig) = f01.x;
                        os.weight(warp, g + 8u, 2u * tig) = f23.x;
                    }
                    if (2u * tig + 1u < nh) {
                        os.weight(warp, g, 2u * tig + 1u) = f01.y;
                        os.weight(warp, g + 8u, 2u * tig + 1u) = f23.y;
                    }
                }

                uint32_t vreg[2][G::kValueRegs];
#pragma unroll
                for (uint32_t pair = 0; pair < 2u; pair++) {
                    const uint32_t ta = 2u * tig + 8u * pair, tb = ta + 1u;
                    const uint32_t pw_a = vpar[ta], pw_b = vpar[tb];
                    const __half2 va = u2h(__byte_perm(pw_a, pw_b, 0x5410u)); /* (a_ta, a_tb) */
                    const __half2 vb = u2h(__byte_perm(pw_a, pw_b, 0x7632u)); /* (b_ta, b_tb) */
                    const __half2 vaddend = vsym ? __float2half2_rn(-0.0f) : va;
#pragma unroll
                    for (uint32_t w = 0; w < G::kLaneWords; w++) {
                        const uint32_t A = vcode[ta * G::kRowWords + g * G::kLaneWords + w];
                        const uint32_t B = vcode[tb * G::kRowWords + g * G::kLaneWords + w];
                        const uint32_t lo = __byte_perm(A, B, 0x5410u), hi = __byte_perm(A, B, 0x7632u);
                        const uint32_t los = lo >> kvq_tc_code_shift(BITS), his = hi >> kvq_tc_code_shift(BITS);
#pragma unroll
                        for (uint32_t p2 = 0; p2 < kvq_tc_cph(BITS); p2++) {
                            vreg[pair][w * kvq_tc_cpw(BITS) + p2] =
                                h2u(__hfma2(vb, code_pair<BITS>(lo, los, p2, vsub[p2]), vaddend));
                            vreg[pair][w * kvq_tc_cpw(BITS) + kvq_tc_cph(BITS) + p2] =
                                h2u(__hfma2(vb, code_pair<BITS>(hi, his, p2, vsub[p2]), vaddend));
                        }
                    }
                    /* Values stored in fp16 replace their token's halves. */
#pragma unroll
                    for (uint32_t half = 0; half < 2u; half++) {
                        const uint32_t t = ta + half;
                        if (ROWS && anyv16 && t < ntm[m] && vprec[t] != KVQ_PREC_QUANTIZED) {
                            const uint32_t *r32 = reinterpret_cast<const uint32_t *>(
                                kvq_att_fp16_row(V, V.slot[tm[m] + t]) + g * (D / 8u));
#pragma unroll
                            for (uint32_t r = 0; r < G::kValueRegs; r++)
                                vreg[pair][r] = put_half(vreg[pair][r], r32[r >> 1], r & 1u, half);
                        }
                    }
                }
#pragma unroll
                for (uint32_t mt = 0; mt < G::kChannelTiles; mt++) {
                    const uint32_t a[4] = {vreg[0][2u * mt], vreg[0][2u * mt + 1u], vreg[1][2u * mt], vreg[1][2u * mt + 1u]};
                    mma16816(oacc[mt], a, pb0, pb1);
                }

                /* Value outliers: the dense decode went through the MMA; add P~ (exact - dense) in fp32. */
                if (OUTL && any_vout && voe != vob) {
                    __syncwarp(); /* pw is written */
                    for (uint32_t e = vob + lane; e < voe; e += 32u) {
                        const Outlier o = outlier_at<BITS>(e, vob, 32u, vout_pf, voptr, ntm[m], V, vcode, G::kRowWords);
                        const uint32_t tl = o.tl, c = o.c, code = o.code;
                        const float y = o.y;
                        const uint32_t w = vpar[tl];
                        const __half a = vsym ? __float2half_rn(-0.0f) : __ushort_as_half((unsigned short)(w & 0xFFFFu));
                        const __half b = __ushort_as_half((unsigned short)(w >> 16));
                        const __half dense = __hfma(b, __float2half_rn((float)code - voff), a);
                        const float delta = y - __half2float(dense);
                        for (uint32_t h = 0; h < nh; h++) atomicAdd(&os.out(warp, h, c), os.weight(warp, tl, h) * delta);
                    }
                    __syncwarp();
                }
                if (OUTL && any_vout) __syncwarp(); /* pw is read before the next m-tile writes it */
            }
        };
        /* A block's outliers make every tile of it take a body with outliers (their fp32 sums follow
         * each rescale); only tiles with fp16 rows take the general one. */
        if (any16 || anyv16) tile_body(Flag<true>{}, Flag<true>{});
        else if (any_kout || any_vout) tile_body(Flag<false>{}, Flag<true>{});
        else tile_body(Flag<false>{}, Flag<false>{});
    }
    cp_async_wait<0>();

    /* ---- the warp's results: l over its lanes, O^T into the combine (added to its outlier sums) ---- */
#pragma unroll
    for (int hh = 0; hh < 2; hh++)
#pragma unroll
        for (int off = 4; off < 32; off <<= 1) l_run[hh] += __shfl_xor_sync(kAttFullMask, l_run[hh], off);
    /* The warps' outputs meet in the stages' memory, free once every warp is past its last tile,
     * each with its value-outlier corrections added (the block's nh heads). */
    float (*comb)[kHeads][D] = reinterpret_cast<float (*)[kHeads][D]>(smem);
    __syncthreads();
    const bool add0 = outliers && 2u * tig < nh, add1 = outliers && 2u * tig + 1u < nh;
#pragma unroll
    for (uint32_t mt = 0; mt < G::kChannelTiles; mt++) {
        const uint32_t c0 = kvq_tc_value_channel(D, g, 2u * mt), c1 = c0 + 1u;
        const float prev[4] = {add0 ? os.out(warp, 2u * tig, c0) : 0.0f, add1 ? os.out(warp, 2u * tig + 1u, c0) : 0.0f,
                               add0 ? os.out(warp, 2u * tig, c1) : 0.0f, add1 ? os.out(warp, 2u * tig + 1u, c1) : 0.0f};
        comb[warp][2u * tig][c0] = prev[0] + oacc[mt][0];
        comb[warp][2u * tig + 1u][c0] = prev[1] + oacc[mt][1];
        comb[warp][2u * tig][c1] = prev[2] + oacc[mt][2];
        comb[warp][2u * tig + 1u][c1] = prev[3] + oacc[mt][3];
    }
    if (g == 0)
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            sh.ml[warp][2u * tig + hh][0] = m_run[hh];
            sh.ml[warp][2u * tig + hh][1] = l_run[hh];
        }
    __syncthreads();
    if (tid == 0 && sh.flag) atomicOr(args.flags, sh.flag);
    const bool single = sq.n_splits == 1u;
    const size_t pbase = ((size_t)seq * args.max_splits + split) * args.n_q + h0;
    for (uint32_t e = tid; e < nh * (uint32_t)D; e += kThreads) {
        const uint32_t h = e / D, c = e % D;
        float M = sh.ml[0][h][0];
        for (int w = 1; w < kWarps; w++) M = fmaxf(M, sh.ml[w][h][0]);
        float o = 0.0f, l = 0.0f;
        for (int w = 0; w < kWarps; w++) {
            const float f = kvq_att_pow2_difference(sh.ml[w][h][0], M); /* exact; 0 for a warp with no token */
            o = fmaf(comb[w][h][c], f, o);
            l = fmaf(sh.ml[w][h][1], f, l);
        }
        if (single) {
            args.out[((size_t)seq * args.n_q + h0 + h) * D + c] = o / l;
        } else {
            args.partial_o[(pbase + h) * D + c] = o;
            if (c == 0) {
                args.partial_ml[(pbase + h) * 2u] = M;
                args.partial_ml[(pbase + h) * 2u + 1u] = l;
            }
        }
    }
}

/* Dynamic shared memory of one block: the stages, Shared, and OutlierShared for outlier_heads
 * heads (0: the launch has no outliers). */
template <int D, int BITS, bool ROT>
size_t smem_bytes(uint32_t outlier_heads)
{
    using G = Geometry<D, BITS>;
    return G::kStages * G::kStageBytes + sizeof(Shared<D, BITS, ROT>) + OutlierShared<D>::bytes(outlier_heads);
}

/* The kernel's attributes, set once per instantiation and process (for the largest launch, with
 * outliers for 8 heads, so that every launch fits). */
template <int D, int BITS, bool ROT>
cudaError_t launch_config()
{
    static bool configured = false;
    if (!configured) {
        cudaError_t err = cudaFuncSetAttribute(tc_split_kernel<D, BITS, ROT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)smem_bytes<D, BITS, ROT>(kHeads));
        /* All of the unified L1/shared memory as shared memory: without it the driver may pick a
         * carveout that holds one block per SM, and one block's four warps cannot hide latency. */
        if (err == cudaSuccess)
            err = cudaFuncSetAttribute(tc_split_kernel<D, BITS, ROT>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                       (int)cudaSharedmemCarveoutMaxShared);
        if (err != cudaSuccess) return err;
        configured = true;
    }
    return cudaSuccess;
}

/* The heads of the call's OutlierShared: min(8, n_q) when any tensor of the call holds outliers
 * (the host's hint, kvq_cuda_view.n_outliers), else 0. */
uint32_t call_outlier_heads(const kvq_cuda_attention_args &a)
{
    for (uint32_t s = 0; s < a.n_seq; s++)
        if (a.seqs_host[s].keys.n_outliers != 0u || a.seqs_host[s].values.n_outliers != 0u)
            return a.n_q < kHeads ? a.n_q : kHeads;
    return 0u;
}

template <int D, int BITS, bool ROT>
cudaError_t launch(const kvq_cuda_attention_args &a, cudaStream_t stream)
{
    const uint32_t outlier_heads = call_outlier_heads(a);
    cudaError_t err = launch_config<D, BITS, ROT>();
    if (err != cudaSuccess) return err;
    dim3 grid(a.max_splits, (a.n_q + kHeads - 1u) / kHeads, a.n_seq);
    tc_split_kernel<D, BITS, ROT><<<grid, kThreads, smem_bytes<D, BITS, ROT>(outlier_heads), stream>>>(a, outlier_heads);
    return cudaGetLastError();
}

/* Resident blocks per SM of a launch whose OutlierShared has outlier_heads heads. */
template <int D, int BITS, bool ROT>
int occupancy(uint32_t outlier_heads)
{
    static int cached[kHeads + 1u] = {0}; /* the split rule asks on every call */
    if (outlier_heads > kHeads) return -1;
    if (cached[outlier_heads] > 0) return cached[outlier_heads];
    int blocks = 0;
    if (launch_config<D, BITS, ROT>() != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, tc_split_kernel<D, BITS, ROT>, kThreads,
                                                      smem_bytes<D, BITS, ROT>(outlier_heads)) != cudaSuccess)
        return -1;
    cached[outlier_heads] = blocks; /* per process: kvq's CUDA contexts in one process are assumed to share a GPU model */
    return blocks;
}

/* The formats the kernel is instantiated for, in one table: f.template run<D, BITS>() for
 * (head_dim, bits), `none` for any other. */
template <typename F, typename R>
R for_format(uint32_t head_dim, uint32_t bits, const F &f, R none)
{
    switch (head_dim * 16u + bits) {
    case 64u * 16u + 4u: return f.template run<64, 4>();
    case 64u * 16u + 8u: return f.template run<64, 8>();
    case 128u * 16u + 2u: return f.template run<128, 2>();
    case 128u * 16u + 4u: return f.template run<128, 4>();
    case 128u * 16u + 8u: return f.template run<128, 8>();
    case 256u * 16u + 2u: return f.template run<256, 2>();
    case 256u * 16u + 4u: return f.template run<256, 4>();
    case 256u * 16u + 8u: return f.template run<256, 8>();
    default: return none;
    }
}

struct Launch {
    const kvq_cuda_attention_args &a;
    cudaStream_t stream;
    bool rotate;
    template <int D, int BITS>
    cudaError_t run() const
    {
        return rotate ? launch<D, BITS, true>(a, stream) : launch<D, BITS, false>(a, stream);
    }
};
struct Occupancy {
    uint32_t outlier_heads;
    bool rotate;
    template <int D, int BITS>
    int run() const { return rotate ? occupancy<D, BITS, true>(outlier_heads) : occupancy<D, BITS, false>(outlier_heads); }
};

bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0u; }

/* One sequence in the format of this kernel (host). */
bool seq_ok(const kvq_cuda_seq &s, const kvq_cuda_seq &first, bool rotate)
{
    const kvq_cuda_view &k = s.keys, &v = s.values;
    const uint32_t d = k.head_dim, bits = k.bits;
    const bool bits_ok = bits == 4u || bits == 8u || (bits == 2u && d >= 128u);
    return (d == 64u || d == 128u || d == 256u) && bits_ok && v.bits == bits && v.head_dim == d &&
           bits == first.keys.bits && d == first.keys.head_dim && k.scheme != KVQ_SCHEME_NUQ &&
           v.scheme != KVQ_SCHEME_NUQ && k.row_words == d * bits / 32u && v.row_words == k.row_words &&
           (k.layout == KVQ_CUDA_PARAMS_KEYS_CALIBRATED ||
            (k.layout == KVQ_CUDA_PARAMS_KEYS_ONLINE && k.group_size % 16u == 0u)) &&
           v.layout == KVQ_CUDA_PARAMS_VALUES && v.group_size == d && (!rotate || s.positions == nullptr) &&
           aligned16(k.codes) && aligned16(v.codes) && aligned16(v.params) && aligned16(k.precision) &&
           aligned16(v.precision) && aligned16(k.optr) && aligned16(v.optr);
}

unsigned long long tc_launches = 0;

} // namespace

extern "C" int kvq_cuda_attention_tc_eligible(const kvq_cuda_attention_args *a)
{
    if (!a->allow_fp16 || a->seqs_host == nullptr || a->n_seq == 0) return 0;
    const bool rotate = a->theta != nullptr && a->pairing != KVQ_ROPE_NONE;
    if (rotate && (a->pairing != KVQ_ROPE_HALF || a->rope_step32 == nullptr)) return 0;
    /* Splits start on tile boundaries (every tile size divides the step table's 128 offsets). */
    if (a->tokens_per_split % KVQ_CUDA_STEP32_OFFSETS != 0u) return 0;
    for (uint32_t s = 0; s < a->n_seq; s++)
        if (!seq_ok(a->seqs_host[s], a->seqs_host[0], rotate)) return 0;
    return 1;
}

extern "C" cudaError_t kvq_cuda_attention_tc_split(const kvq_cuda_attention_args *a, cudaStream_t stream)
{
    const bool rotate = a->theta != nullptr && a->pairing != KVQ_ROPE_NONE;
    tc_launches++;
    return for_format(a->head_dim, a->seqs_host[0].keys.bits, Launch{*a, stream, rotate}, cudaErrorInvalidValue);
}

extern "C" unsigned long long kvq_cuda_attention_tc_launches(void) { return tc_launches; }

extern "C" int kvq_cuda_attention_tc_blocks_per_sm(const kvq_cuda_attention_args *a)
{
    if (a->seqs_host == nullptr || a->n_seq == 0) return 0;
    const bool rotate = a->theta != nullptr && a->pairing != KVQ_ROPE_NONE;
    return for_format(a->head_dim, a->seqs_host[0].keys.bits, Occupancy{call_outlier_heads(*a), rotate}, 0);
}
