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
 *  - RoPE is split at the tile base p0 (S12.4 (b)): once per tile of 64
 *    tokens the block rotates the query by q_position - p0 (in double, then
 *    rounds it to fp16 with log2(e)/sqrt(d) folded in); every key is rotated
 *    by its offset o = p_t - p0 < 64 with cos/sin(o theta) from a per-lane
 *    table made once per block (each warp always owns the same 16 offsets of
 *    a tile), two fp16 roundings per element. No transcendental per element,
 *    and no angle addition either.
 *  - mma.sync m16n8k16 (fp16 in, fp32 accumulation) computes S^T = K Q^T and
 *    O^T += V^T P^T with the query heads of a GQA group in the N dimension
 *    (attention_tc_layout.cuh says which channel each register holds).
 *  - The softmax is online, in base 2, with integer shifts (every rescale is
 *    an exact power of two); the weights are rounded to fp16 for P.V and the
 *    row sum is taken from the unrounded ones (S12.4 (d)).
 *  - The cache is streamed through shared memory with cp.async in a ring of
 *    tile buffers, so that several tiles per block are in flight whatever the
 *    register budget.
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
constexpr uint32_t kTileTokens = 16u * kWarps; /* a warp's m-tile is 16 tokens at a fixed offset */
constexpr uint32_t kHeads = 8;                 /* query heads per block: the MMA's N */
constexpr float kDomain = 32768.0f;            /* S12.4: |x_a| + |x_b| <= 2^15 in fp16 */
static_assert(kTileTokens <= KVQ_CUDA_STEP32_OFFSETS, "tile offsets index the fp32 step table");

/* ---- small device helpers ------------------------------------------------ */

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

/* Half `which` (0, 1) of word w into half `into` (0, 1) of word base. */
__device__ __forceinline__ uint32_t put_half(uint32_t base, uint32_t w, uint32_t which, uint32_t into)
{
    const uint32_t src = which ? 0x76u : 0x54u; /* bytes of w are 4..7 in byte_perm's numbering */
    const uint32_t keep = into ? 0x10u : 0x32u;
    return __byte_perm(base, w, into ? (src << 8) | keep : (keep << 8) | src);
}

/* ---- the block's layout in shared memory ---------------------------------- */

template <int D, int BITS>
struct Geometry {
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
    /* Three stages (two tiles in flight while one is worked on) keep three blocks of 128 threads
     * per SM inside its shared memory at head_dim 128; the largest rows get two. */
    static constexpr uint32_t kStages = kStageBytes * 3u <= 40u * 1024u ? 3u : 2u;
    static constexpr bool kRopeInRegisters = D <= 128;
    static_assert(kStageBytes % 16u == 0u, "stages are 16-byte aligned");
    static_assert(kLaneWords >= 1u, "a lane owns whole words of codes");
};

/* Shared memory besides the stages (dynamic, after them). */
template <int D, int BITS>
struct Shared {
    using G = Geometry<D, BITS>;
    kvq_cuda_seq sq;
    double2 base[D / 2];                          /* cis(p0 theta_i) of the current tile */
    double2 step[D / 2];                          /* cis(T theta_i) */
    double2 pq[D / 2];                            /* cis(q_position theta_i) */
    float qf[kHeads][D];                          /* the block's query heads, fp32 (S11.1) */
    __half q[2][G::kSlots][32][2];                /* the tile's query, B operand order: slot, lane (4 head + tig) */
    uint32_t kpar[kWarps][G::kSlots][4][2];       /* key params of the warp's block: slot, lane column, (a, b) half2 */
    uint32_t kpar_block[kWarps];                  /* which key block kpar holds */
    float scorr[kWarps][16][kHeads];              /* key-outlier score corrections of the m-tile */
    float pw[kWarps][16][kHeads];                 /* the m-tile's fp16 weights, for value outliers */
    float oacc[kWarps][kHeads][D];                /* value-outlier corrections, then the warps' outputs */
    float ml[kWarps][kHeads][2];
    uint32_t rope_tab[G::kRopeInRegisters ? 1 : kWarps][G::kRopeInRegisters ? 1 : 2 * 2 * G::kPartSlots][32];
    uint32_t flag;
};

/* The tile's bytes into stage buffer `stage` (all threads; one commit group). */
template <int D, int BITS>
__device__ __forceinline__ void load_tile(unsigned char *stage, const kvq_cuda_seq &sq, const KeyBlocks &kb, uint32_t t0,
                                          uint32_t t_end, uint32_t tid)
{
    using G = Geometry<D, BITS>;
    const uint32_t ntok = min(kTileTokens, t_end - t0);
    /* The codes: the same whole number of 16-byte chunks per thread for every tile (rows are
     * multiples of 16 bytes); past the last token the chunks are zero-filled. */
    constexpr uint32_t kCodeBytes = kTileTokens * G::kRowBytes;
    static_assert(kCodeBytes % (16u * kThreads) == 0u && G::kRowBytes % 16u == 0u, "whole chunks per thread");
    const uint32_t code_valid = ntok * G::kRowBytes;
    const unsigned char *kc = reinterpret_cast<const unsigned char *>(sq.keys.codes + (size_t)t0 * G::kRowWords);
    const unsigned char *vc = reinterpret_cast<const unsigned char *>(sq.values.codes + (size_t)t0 * G::kRowWords);
#pragma unroll
    for (uint32_t k = 0; k < kCodeBytes / (16u * kThreads); k++) {
        const uint32_t at = (tid + k * kThreads) * 16u;
        const bool valid = at < code_valid;
        cp_async16(stage + G::kKeyCodes + at, valid ? kc + at : kc, valid ? 16u : 0u);
        cp_async16(stage + G::kValueCodes + at, valid ? vc + at : vc, valid ? 16u : 0u);
    }
    /* The small per-token arrays, one chunk per thread: value params (16 chunks), precisions
     * (4 + 4), outlier pointers (17 + 17, one past the tile). */
    constexpr uint32_t kParamChunks = kTileTokens * 4u / 16u, kPrecChunks = kTileTokens / 16u;
    constexpr uint32_t kOptrChunks = (kTileTokens + 4u) * 4u / 16u;
    constexpr uint32_t kSmallChunks = kParamChunks + 2u * kPrecChunks + 2u * kOptrChunks;
    static_assert(kSmallChunks <= kThreads, "one small chunk per thread");
    if (tid < kSmallChunks) {
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

/* The query of a tile (S12.4 (b)): every head's pairs rotated by q_position - p0, scaled by
 * log2(e) / sqrt(d), rounded to fp16, stored in key-slot order; without RoPE only scaled. One
 * thread owns pair i's base cis(p0 theta_i) (double, advanced by cis(T theta_i) when `advance`),
 * so no barrier separates the update from its use. The rotation itself is fp32 (S12.4 allows the
 * query's rotation in fp32 before its rounding to fp16). */
template <int D, int BITS, bool ROT>
__device__ __forceinline__ void make_query(Shared<D, BITS> &sh, uint32_t buf, uint32_t nh, float scale,
                                           bool advance, uint32_t tid)
{
    /* D/2 pairs, D/8 per warp: every warp does the same share before the next barrier (with
     * thread i owning pair i, two warps did it all and the other two waited for them). */
    constexpr uint32_t kPairsPerWarp = D / 8u;
    static_assert(kPairsPerWarp <= 32u && kPairsPerWarp * kWarps == D / 2u, "a warp's pairs fit its lanes");
    if ((tid & 31u) < kPairsPerWarp) {
        const uint32_t i = (tid >> 5) * kPairsPerWarp + (tid & 31u);
        float c = 1.0f, s = 0.0f;
        if (ROT) {
            double2 b = sh.base[i];
            if (advance) {
                const double2 st = sh.step[i];
                b = make_double2(b.x * st.x - b.y * st.y, b.x * st.y + b.y * st.x);
                sh.base[i] = b;
            }
            const double2 p = sh.pq[i];
            c = (float)(p.x * b.x + p.y * b.y); /* cis((q_position - p0) theta_i) */
            s = (float)(p.y * b.x - p.x * b.y);
        }
        uint32_t tig, slot, half;
        kvq_tc_key_slot(D, BITS, i, &tig, &slot, &half);
        for (uint32_t h = 0; h < nh; h++) { /* heads past n_q stay the zeros written once per block */
            const float qa = sh.qf[h][i], qb = sh.qf[h][i + D / 2u];
            const float ra = __fmul_rn(__fmaf_rn(qa, c, -__fmul_rn(qb, s)), scale);
            const float rb = __fmul_rn(__fmaf_rn(qa, s, __fmul_rn(qb, c)), scale);
            sh.q[buf][slot][4u * h + tig][half] = __float2half_rn(ra);
            sh.q[buf][slot + D / 16u][4u * h + tig][half] = __float2half_rn(rb);
        }
    }
}

/* The key params row `prow` (in shared memory: the tile's staged rows) into the warp's
 * lane-column table; the block's largest decoded magnitude per channel (for the domain check). */
template <int D, int BITS>
__device__ __forceinline__ void load_key_params(Shared<D, BITS> &sh, const uint32_t *prow, bool sym, uint32_t warp,
                                                uint32_t lane, uint32_t blk)
{
    const float lo_code = sym ? -(float)(1u << (BITS - 1)) : 0.0f;
    const float hi_code = lo_code + (float)((1u << BITS) - 1u);
    __half *kp = reinterpret_cast<__half *>(&sh.kpar[warp][0][0][0]);
    /* Channel c's RoPE partner c + d/2 is handled by the same lane (d/2 is a multiple of 32), so
     * the domain check needs no shared memory. */
    float dom[D / 32];
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
        const float af = kvq_dev_fp32(a), bf = kvq_dev_fp32(b);
        dom[j] = fmaxf(fabsf(__fmaf_rn(bf, lo_code, af)), fabsf(__fmaf_rn(bf, hi_code, af)));
    }
    bool ok = true;
#pragma unroll
    for (uint32_t j = 0; j < (uint32_t)D / 64u; j++) ok = ok && dom[j] + dom[j + D / 64u] <= kDomain; /* false for NaN */
    if (!__all_sync(kAttFullMask, ok) && lane == 0) atomicOr(&sh.flag, 2u);
    sh.kpar_block[warp] = blk;
    __syncwarp();
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
 * (ptxas otherwise takes about 180, which leaves room for two). Larger heads have the shared
 * memory for two. */
template <int D, int BITS, bool ROT>
__global__ void __launch_bounds__(kThreads, D <= 128 ? 3 : 2) tc_split_kernel(kvq_cuda_attention_args args)
{
    using G = Geometry<D, BITS>;
    extern __shared__ __align__(16) unsigned char smem[];
    Shared<D, BITS> &sh = *reinterpret_cast<Shared<D, BITS> *>(smem + G::kStages * G::kStageBytes);
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

    /* The first tiles are requested before anything else is set up. */
    for (uint32_t k = 0; k + 1u < G::kStages; k++) {
        if (k < n_tiles) load_tile<D, BITS>(smem + k * G::kStageBytes, sq, kb, t_begin + k * kTileTokens, t_end, tid);
        else cp_async_commit();
    }

    /* ---- once per block ---- */
    if (tid == 0) sh.flag = 0;
    if (lane == 0) sh.kpar_block[warp] = 0xFFFFFFFFu;
    for (uint32_t i = tid; i < (uint32_t)D / 2u; i += kThreads) {
        const double th = ROT ? args.theta[i] : 0.0;
        if (ROT) {
            double c, s;
            kvq_dev_rope_cos_sin_double(sq.pos0 + t_begin, th, &c, &s);
            sh.base[i] = make_double2(c, s);
            kvq_dev_rope_cos_sin_double(kTileTokens, th, &c, &s);
            sh.step[i] = make_double2(c, s);
            kvq_dev_rope_cos_sin_double(sq.q_position, th, &c, &s);
            sh.pq[i] = make_double2(c, s);
        }
    }
    for (uint32_t i = tid; i < kHeads * (uint32_t)D; i += kThreads)
        (&sh.qf[0][0])[i] = i / D < nh ? qg[i] : 0.0f; /* heads past n_q contribute nothing */
    for (uint32_t i = tid; i < kWarps * kHeads * (uint32_t)D; i += kThreads) (&sh.oacc[0][0][0])[i] = 0.0f;
    for (uint32_t i = tid; i < sizeof sh.q / 4u; i += kThreads) reinterpret_cast<uint32_t *>(&sh.q[0][0][0][0])[i] = 0u;
    for (uint32_t i = tid; i < kWarps * 16u * kHeads; i += kThreads) (&sh.scorr[0][0][0])[i] = 0.0f;
    __syncthreads();
    const float qscale = args.score_scale; /* fl32(log2(e) / sqrt(d)): scores in base 2 */
    make_query<D, BITS, ROT>(sh, 0, nh, qscale, false, tid);

    const float2 *step32 = reinterpret_cast<const float2 *>(args.rope_step32);
    /* The warp's key offsets in every tile are 16 warp + g and + 8: their cos/sin, once. */
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
    const bool ksym = K.scheme == KVQ_SCHEME_UNIFORM_SYM, vsym = V.scheme == KVQ_SCHEME_UNIFORM_SYM;
    /* The codes' offsets (S3.5): 2^(bits-1) for the symmetric scheme. An outlier's dense value is
     * decoded for one element the same way, bit for bit: (code - offset) is exact. */
    const float koff = ksym ? (float)(1u << (BITS - 1)) : 0.0f, voff = vsym ? (float)(1u << (BITS - 1)) : 0.0f;
    uint32_t ksub[16 / BITS], vsub[16 / BITS];
    code_subtrahends<BITS>(koff, ksub);
    code_subtrahends<BITS>(voff, vsub);
    const bool any_kout = K.optr[t_end] != K.optr[t_begin], any_vout = V.optr[t_end] != V.optr[t_begin];

    for (uint32_t k = 0; k < n_tiles; k++) {
        cp_async_wait<G::kStages - 2>();
        __syncthreads(); /* tile k has landed for everyone; every warp is done with tile k - 1 and query k - 1 */
        {
            const uint32_t next = k + G::kStages - 1u;
            if (next < n_tiles)
                load_tile<D, BITS>(smem + (next % G::kStages) * G::kStageBytes, sq, kb, t_begin + next * kTileTokens,
                                   t_end, tid);
            else
                cp_async_commit(); /* keep one group per iteration, so the wait count above holds */
        }
        const uint32_t buf = ROT ? k & 1u : 0u; /* without RoPE one query serves every tile */
        /* The next tile's query, into the other buffer (nobody reads it until the next barrier). */
        if (ROT && k + 1u < n_tiles) make_query<D, BITS, ROT>(sh, buf ^ 1u, nh, qscale, true, tid);
        const unsigned char *stage = smem + (k % G::kStages) * G::kStageBytes;
        const uint32_t t0 = t_begin + k * kTileTokens, tm = t0 + 16u * warp;
        if (tm < t_end) {
            const uint32_t ntm = min(16u, t_end - tm), mo = 16u * warp; /* m-tile offset in the tile */
            const uint8_t *kprec = stage + G::kKeyPrec + mo, *vprec = stage + G::kValuePrec + mo;
            const uint32_t *kcode = reinterpret_cast<const uint32_t *>(stage + G::kKeyCodes) + mo * G::kRowWords;
            const uint32_t *vcode = reinterpret_cast<const uint32_t *>(stage + G::kValueCodes) + mo * G::kRowWords;
            const uint32_t *vpar = reinterpret_cast<const uint32_t *>(stage + G::kValueParams) + mo;
            const uint32_t *koptr = reinterpret_cast<const uint32_t *>(stage + G::kKeyOptr) + mo;
            const uint32_t *voptr = reinterpret_cast<const uint32_t *>(stage + G::kValueOptr) + mo;
            const uint32_t blk = kb.of(tm);
            if (sh.kpar_block[warp] != blk) {
                const uint32_t first_blk = kb.of(t0);
                const uint32_t *prow = reinterpret_cast<const uint32_t *>(stage + G::kKeyParams) + (blk - first_blk) * D;
                load_key_params<D, BITS>(sh, prow, ksym, warp, lane, blk);
            }

            /* Keys stored in fp16 replace the row (S8, S10), values stored in fp16 their token's
             * halves; outliers need fp32 corrections. All are rare (sinks sit in the first tile), so
             * an m-tile without them takes a body compiled without their code: the general body's
             * branches, even untaken, cost the lean one a third of its issue slots. */
            const bool krow16[2] = {kprec[g] != KVQ_PREC_QUANTIZED && g < ntm,
                                    kprec[g + 8u] != KVQ_PREC_QUANTIZED && g + 8u < ntm};
            bool vrow16 = false;
#pragma unroll
            for (uint32_t t = 2u * tig; t < 16u; t += 8u)
                vrow16 = vrow16 || (t < ntm && vprec[t] != KVQ_PREC_QUANTIZED) ||
                         (t + 1u < ntm && vprec[t + 1u] != KVQ_PREC_QUANTIZED);
            const bool any16 = __any_sync(kAttFullMask, krow16[0] || krow16[1]);
            const bool anyv16 = __any_sync(kAttFullMask, vrow16);
            auto mtile = [&](auto general) {
            constexpr bool GEN = decltype(general)::value;
            /* ---- scores S^T = K Q^T ---- */
            const uint32_t *qw = reinterpret_cast<const uint32_t *>(&sh.q[buf][0][lane][0]); /* slot s: qw[32 s] */
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
            /* The m-tile's first 32 outliers of each role, fetched now so that their latency hides behind
             * the MMAs (a lane per outlier; more are fetched when they are used). */
            const uint32_t kob = koptr[0], koe = koptr[ntm], vob = voptr[0], voe = voptr[ntm];
            uint32_t kout_pf = 0, vout_pf = 0; /* channel | fp16 value << 16 */
            if (GEN && any_kout && kob + lane < koe) kout_pf = (uint32_t)K.ochan[kob + lane] | (uint32_t)K.oval[kob + lane] << 16;
            if (GEN && any_vout && vob + lane < voe) vout_pf = (uint32_t)V.ochan[vob + lane] | (uint32_t)V.oval[vob + lane] << 16;
            /* Two accumulators (first and second halves of the head) halve the chain of dependent MMAs. */
            float sacc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, sacc_hi[4] = {0.0f, 0.0f, 0.0f, 0.0f};
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
                        __half2 kb = __hfma2(u2h(par_b.y), code_pair<BITS>(kw[row][1][word], kws[row][1][word], p, ksub[p]),
                                             u2h(par_b.x));
                        if (GEN && any16 && krow16[row]) {
                            const uint32_t t = tm + g + 8u * row;
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
                            kb = __halves2half2(hb[0], hb[1]);
                        }
                        if (ROT) {
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
                            const __half2 xa = __hfma2(ka, c, __hneg2(__hmul2(kb, s)));
                            const __half2 xb = __hfma2(ka, s, __hmul2(kb, c));
                            ka = xa;
                            kb = xb;
                        }
                        ra[2u * j + row] = h2u(ka); /* a0 a1 a2 a3 = (row g, slot 2s), (g + 8, 2s), (g, 2s + 1), (g + 8, 2s + 1) */
                        rb[2u * j + row] = h2u(kb);
                    }
                }
                const uint32_t a_lo[4] = {ra[0], ra[1], ra[2], ra[3]}, a_hi[4] = {rb[0], rb[1], rb[2], rb[3]};
                mma16816(sacc, a_lo, qw[32u * (2u * ps)], qw[32u * (2u * ps + 1u)]);
                mma16816(sacc_hi, a_hi, qw[32u * (G::kPartSlots + 2u * ps)], qw[32u * (G::kPartSlots + 2u * ps + 1u)]);
            }
#pragma unroll
            for (int e = 0; e < 4; e++) sacc[e] += sacc_hi[e];

            /* Key outliers: their dense decode went through the MMA; add the rotated exact difference
             * to the score in fp32, a lane per outlier (S12.4 (a')). */
            if (GEN && any_kout && koe != kob) {
                for (uint32_t e = kob + lane; e < koe; e += 32u) {
                    uint32_t tl = 0;
                    while (tl + 1u < ntm && koptr[tl + 1u] <= e) tl++;
                    const uint32_t cv = e < kob + 32u ? kout_pf : (uint32_t)K.ochan[e] | (uint32_t)K.oval[e] << 16;
                    const uint32_t c = cv & 0xFFFFu;
                    const float y = kvq_dev_fp32((uint16_t)(cv >> 16));
                    const uint32_t bit = c * BITS;
                    const uint32_t code = (kcode[tl * G::kRowWords + bit / 32u] >> (bit % 32u)) & ((1u << BITS) - 1u);
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
                        const float2 cs = __ldg(step32 + (size_t)i * KVQ_CUDA_STEP32_OFFSETS + mo + tl);
                        da = c < D / 2u ? delta * cs.x : -delta * cs.y;
                        db = c < D / 2u ? delta * cs.y : delta * cs.x;
                    } else if (c >= D / 2u) {
                        da = 0.0f;
                        db = delta;
                    }
                    uint32_t atig, aslot, ahalf;
                    kvq_tc_key_slot(D, BITS, i, &atig, &aslot, &ahalf);
                    for (uint32_t h = 0; h < kHeads; h++) {
                        const float qa = __half2float(sh.q[buf][aslot][4u * h + atig][ahalf]);
                        const float qb = __half2float(sh.q[buf][aslot + G::kPartSlots][4u * h + atig][ahalf]);
                        atomicAdd(&sh.scorr[warp][tl][h], __fmaf_rn(qa, da, __fmul_rn(qb, db)));
                    }
                }
                __syncwarp();
                sacc[0] += sh.scorr[warp][g][2u * tig];
                sacc[1] += sh.scorr[warp][g][2u * tig + 1u];
                sacc[2] += sh.scorr[warp][g + 8u][2u * tig];
                sacc[3] += sh.scorr[warp][g + 8u][2u * tig + 1u];
                __syncwarp();
                for (uint32_t i = lane; i < 16u * kHeads; i += 32u) (&sh.scorr[warp][0][0])[i] = 0.0f;
                __syncwarp();
            }

            /* ---- online softmax, base 2: tokens g, g + 8; heads 2 tig, 2 tig + 1 ---- */
            if (g >= ntm) sacc[0] = sacc[1] = -INFINITY;
            if (g + 8u >= ntm) sacc[2] = sacc[3] = -INFINITY;
            float alpha[2];
            bool changed = false;
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                float mt = fmaxf(sacc[hh], sacc[2 + hh]);
#pragma unroll
                for (int off = 4; off < 32; off <<= 1) mt = fmaxf(mt, __shfl_xor_sync(kAttFullMask, mt, off));
                const float m_new = fmaxf(m_run[hh], ceilf(mt)); /* an integer above every score: exact rescales */
                alpha[hh] = kvq_att_pow2_difference(m_run[hh], m_new);
                changed = changed || m_new != m_run[hh];
                m_run[hh] = m_new;
            }
            float p[4];
#pragma unroll
            for (int e = 0; e < 4; e++) p[e] = exp2f(sacc[e] - m_run[e & 1]);
            l_run[0] = l_run[0] * alpha[0] + (p[0] + p[2]); /* the row sum from the unrounded weights */
            l_run[1] = l_run[1] * alpha[1] + (p[1] + p[3]);
#pragma unroll
            for (uint32_t mt = 0; mt < G::kChannelTiles; mt++) {
                oacc[mt][0] *= alpha[0];
                oacc[mt][1] *= alpha[1];
                oacc[mt][2] *= alpha[0];
                oacc[mt][3] *= alpha[1];
            }
            if (GEN && any_vout && __any_sync(kAttFullMask, changed)) { /* the fp32 corrections follow the same scale */
                __syncwarp();
                for (uint32_t i = lane; i < kHeads * (uint32_t)D; i += 32u) {
                    const uint32_t h = i / D;
                    const float a = __shfl_sync(kAttFullMask, alpha[h & 1u], (h >> 1), 32); /* from column h / 2 */
                    sh.oacc[warp][h][i % D] *= a;
                }
                __syncwarp();
            }
            /* The weights rounded to fp16 (S12.4 (d)), moved from the S^T layout (token g, heads 2 tig..)
             * to the B operand of P.V (tokens 2 tig.., head g). */
            const __half2 h01 = __floats2half2_rn(p[0], p[1]), h23 = __floats2half2_rn(p[2], p[3]);
            const uint32_t src0 = 8u * tig + (g >> 1), src1 = src0 + 4u;
            const uint32_t x0 = __shfl_sync(kAttFullMask, h2u(h01), src0), x1 = __shfl_sync(kAttFullMask, h2u(h01), src1);
            const uint32_t y0 = __shfl_sync(kAttFullMask, h2u(h23), src0), y1 = __shfl_sync(kAttFullMask, h2u(h23), src1);
            const uint32_t sel = (g & 1u) ? 0x7632u : 0x5410u;
            const uint32_t pb0 = __byte_perm(x0, x1, sel), pb1 = __byte_perm(y0, y1, sel);
            if (GEN && any_vout) {
                const float2 f01 = __half22float2(h01), f23 = __half22float2(h23);
                sh.pw[warp][g][2u * tig] = f01.x;
                sh.pw[warp][g][2u * tig + 1u] = f01.y;
                sh.pw[warp][g + 8u][2u * tig] = f23.x;
                sh.pw[warp][g + 8u][2u * tig + 1u] = f23.y;
            }

            /* ---- O^T += V^T P^T: tokens (2 tig, 2 tig + 1) and (2 tig + 8, 2 tig + 9), channels g d/8 .. ---- */
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
                    if (GEN && anyv16 && t < ntm && vprec[t] != KVQ_PREC_QUANTIZED) {
                        const uint32_t *r32 = reinterpret_cast<const uint32_t *>(
                            kvq_att_fp16_row(V, V.slot[tm + t]) + g * (D / 8u));
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
            if (GEN && any_vout && voe != vob) {
                __syncwarp(); /* pw is written */
                for (uint32_t e = vob + lane; e < voe; e += 32u) {
                    uint32_t tl = 0;
                    while (tl + 1u < ntm && voptr[tl + 1u] <= e) tl++;
                    const uint32_t cv = e < vob + 32u ? vout_pf : (uint32_t)V.ochan[e] | (uint32_t)V.oval[e] << 16;
                    const uint32_t c = cv & 0xFFFFu;
                    const float y = kvq_dev_fp32((uint16_t)(cv >> 16));
                    const uint32_t bit = c * BITS;
                    const uint32_t code = (vcode[tl * G::kRowWords + bit / 32u] >> (bit % 32u)) & ((1u << BITS) - 1u);
                    const uint32_t w = vpar[tl];
                    const __half a = vsym ? __float2half_rn(-0.0f) : __ushort_as_half((unsigned short)(w & 0xFFFFu));
                    const __half b = __ushort_as_half((unsigned short)(w >> 16));
                    const __half dense = __hfma(b, __float2half_rn((float)code - voff), a);
                    const float delta = y - __half2float(dense);
                    for (uint32_t h = 0; h < kHeads; h++) atomicAdd(&sh.oacc[warp][h][c], sh.pw[warp][tl][h] * delta);
                }
                __syncwarp();
            }
            };
            /* The block's outliers make every m-tile general: their fp32 sums follow each rescale. */
            if (any_kout || any_vout || any16 || anyv16) mtile(Flag<true>{});
            else mtile(Flag<false>{});
        }
    }
    cp_async_wait<0>();

    /* ---- the warp's results: l over its lanes, O^T into its oacc (added to its outlier sums) ---- */
#pragma unroll
    for (int hh = 0; hh < 2; hh++)
#pragma unroll
        for (int off = 4; off < 32; off <<= 1) l_run[hh] += __shfl_xor_sync(kAttFullMask, l_run[hh], off);
    __syncwarp();
#pragma unroll
    for (uint32_t mt = 0; mt < G::kChannelTiles; mt++) {
        const uint32_t c0 = kvq_tc_value_channel(D, g, 2u * mt), c1 = c0 + 1u;
        sh.oacc[warp][2u * tig][c0] += oacc[mt][0];
        sh.oacc[warp][2u * tig + 1u][c0] += oacc[mt][1];
        sh.oacc[warp][2u * tig][c1] += oacc[mt][2];
        sh.oacc[warp][2u * tig + 1u][c1] += oacc[mt][3];
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
            o = fmaf(sh.oacc[w][h][c], f, o);
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

template <int D, int BITS>
size_t smem_bytes();

/* The kernel's attributes, set once per instantiation and process. */
template <int D, int BITS, bool ROT>
cudaError_t launch_config()
{
    const size_t bytes = smem_bytes<D, BITS>();
    static bool configured = false;
    if (!configured) {
        cudaError_t err = cudaFuncSetAttribute(tc_split_kernel<D, BITS, ROT>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
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

template <int D, int BITS, bool ROT>
cudaError_t launch(const kvq_cuda_attention_args &a, cudaStream_t stream)
{
    const size_t bytes = smem_bytes<D, BITS>();
    cudaError_t err = launch_config<D, BITS, ROT>();
    if (err != cudaSuccess) return err;
    dim3 grid(a.max_splits, (a.n_q + kHeads - 1u) / kHeads, a.n_seq);
    tc_split_kernel<D, BITS, ROT><<<grid, kThreads, bytes, stream>>>(a);
    return cudaGetLastError();
}

template <int D, int BITS>
size_t smem_bytes()
{
    return Geometry<D, BITS>::kStages * Geometry<D, BITS>::kStageBytes + sizeof(Shared<D, BITS>);
}

template <int D, bool ROT>
cudaError_t launch_bits(const kvq_cuda_attention_args &a, cudaStream_t stream)
{
    switch (a.seqs_host[0].keys.bits) {
    case 2:
        if constexpr (D >= 128) return launch<D, 2, ROT>(a, stream);
        return cudaErrorInvalidValue;
    case 4: return launch<D, 4, ROT>(a, stream);
    default: return launch<D, 8, ROT>(a, stream);
    }
}

template <bool ROT>
cudaError_t launch_dim(const kvq_cuda_attention_args &a, cudaStream_t stream)
{
    switch (a.head_dim) {
    case 64: return launch_bits<64, ROT>(a, stream);
    case 128: return launch_bits<128, ROT>(a, stream);
    default: return launch_bits<256, ROT>(a, stream);
    }
}

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
    if (a->tokens_per_split % kTileTokens != 0u) return 0;
    for (uint32_t s = 0; s < a->n_seq; s++)
        if (!seq_ok(a->seqs_host[s], a->seqs_host[0], rotate)) return 0;
    return 1;
}

extern "C" cudaError_t kvq_cuda_attention_tc_split(const kvq_cuda_attention_args *a, cudaStream_t stream)
{
    const bool rotate = a->theta != nullptr && a->pairing != KVQ_ROPE_NONE;
    tc_launches++;
    return rotate ? launch_dim<true>(*a, stream) : launch_dim<false>(*a, stream);
}

extern "C" unsigned long long kvq_cuda_attention_tc_launches(void) { return tc_launches; }

template <int D, int BITS>
int occupancy()
{
    static int cached = 0; /* the split rule asks on every call */
    if (cached > 0) return cached;
    int blocks = 0;
    if (launch_config<D, BITS, true>() != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, tc_split_kernel<D, BITS, true>, kThreads,
                                                      smem_bytes<D, BITS>()) != cudaSuccess)
        return -1;
    cached = blocks; /* per process: kvq's CUDA contexts in one process are assumed to share a GPU model */
    return blocks;
}

extern "C" int kvq_cuda_attention_tc_blocks_per_sm(uint32_t head_dim, uint32_t bits)
{
    switch (head_dim * 16u + bits) {
    case 64u * 16u + 4u: return occupancy<64, 4>();
    case 64u * 16u + 8u: return occupancy<64, 8>();
    case 128u * 16u + 2u: return occupancy<128, 2>();
    case 128u * 16u + 4u: return occupancy<128, 4>();
    case 128u * 16u + 8u: return occupancy<128, 8>();
    case 256u * 16u + 2u: return occupancy<256, 2>();
    case 256u * 16u + 4u: return occupancy<256, 4>();
    case 256u * 16u + 8u: return occupancy<256, 8>();
    default: return 0;
    }
}

extern "C" size_t kvq_cuda_attention_tc_smem_bytes(uint32_t head_dim, uint32_t bits)
{
    switch (head_dim * 16u + bits) {
    case 64u * 16u + 4u: return smem_bytes<64, 4>();
    case 64u * 16u + 8u: return smem_bytes<64, 8>();
    case 128u * 16u + 2u: return smem_bytes<128, 2>();
    case 128u * 16u + 4u: return smem_bytes<128, 4>();
    case 128u * 16u + 8u: return smem_bytes<128, 8>();
    case 256u * 16u + 2u: return smem_bytes<256, 2>();
    case 256u * 16u + 4u: return smem_bytes<256, 4>();
    case 256u * 16u + 8u: return smem_bytes<256, 8>();
    default: return 0;
    }
}
