/*
 * attention.cu - decode attention over the mixed cache (S11), flash-decoding
 * style, for a batch of sequences in one launch.
 *
 * Grid: (split, group of query heads, sequence). Each block of 128 threads
 * walks its split's tokens in tiles of T = 64 tokens. Per tile:
 *
 *   load    the packed key and value rows with 16-byte coalesced loads into
 *           shared memory (odd row stride in words: no bank conflicts when
 *           each thread reads its own token's row), plus each token's
 *           precision, fp16 slot, position and outlier range;
 *   phase 1 S = 4 threads per token (32 tokens per pass): dequantize the
 *           pre-RoPE key in registers with one fma per element
 *           (code -> exact fp32 value, S4.5; fp16 rows; outliers replace),
 *           rotate each pair in fp32 with cos/sin from double-precision
 *           angles (S9.3; see kRopeStep for consecutive positions), and
 *           accumulate the dot products with all NQ rotated queries (shared
 *           memory, broadcast): every key element is read once for all NQ
 *           query heads (GQA);
 *   phase 2 one warp per head: online softmax in the base-2 domain, shifted
 *           by an integer running maximum so that rescaling is exact;
 *   phase 3 threads own channels (and, for d < 128, a subset of the tile's
 *           tokens): dequantize the value element in registers, apply value
 *           outliers, accumulate p * v for all NQ heads.
 *
 * A split writes its unnormalised output with (m, l); a combine kernel merges
 * the splits of a sequence.
 *
 * Arithmetic is fp32 with the freedoms S12.3 lists (cos/sin within 2 ulps,
 * fp32 rotation, any summation order, fma, exp2 with log2(e) folded into the
 * score scale, shifts by any maximum, one division at the end);
 * dequantization is exactly the reference's (class E).
 *
 * Measured on an H100 (d 128, 8 query heads, 4-bit keys and values, 32768
 * tokens, one sequence): split kernel 75 us, combine 13 us. The cost is
 * instructions and latency (decode, RoPE, GQA dot products), not memory
 * traffic, which stays below 2% of the H100's bandwidth.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention_common.cuh"
#include "codes.cuh"
#include "fp16.cuh"
#include "kvq_cuda_kernels.cuh"
#include "quantizer.cuh"
#include "rope.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
/* Phase 1 gives each token kTokenThreads consecutive lanes (each takes every
 * kTokenThreads-th pair), so one pass of the block covers 32 tokens; a tile
 * is kTile tokens (two passes). Several threads per token keep the chains
 * short and the GPU full even for one sequence; 64-token tiles amortise what
 * a tile costs whatever its size (loads, softmax, barriers). */
constexpr uint32_t kTokenThreads = 4;
constexpr uint32_t kTile = 64;
constexpr uint32_t kPassTokens = kThreads / kTokenThreads;
static_assert(kTile % kPassTokens == 0, "a tile is whole passes");
constexpr unsigned kFull = 0xFFFFFFFFu;

/* Shared memory of one block, carved from the dynamic allocation in this
 * order (doubles first for alignment). */
struct Layout {
    uint32_t theta, rbase, qs, kpar, dec, sc, stats, meta, vpar, ktile, vtile, red, flag, total;
};

/* RoPE of consecutive positions: token j of a tile (position P0 + j) has the
 * angle (P0 + 16a) theta + b theta with j = 16a + b, so its cos/sin are one
 * double-precision angle addition from a per-tile base cis((P0 + 16a) theta)
 * (computed directly, 1/16 of the pairs) and a fixed step cis(b theta) (the
 * host's table, kvq_cuda_rope_step_table). */
constexpr uint32_t kRopeStep = 16;

/* Value parameters of a tile are staged in shared memory when a token has at
 * most this many groups (always for the default G = head_dim). */
constexpr uint32_t kStagedGroups = 16;

__host__ __device__ inline uint32_t align16(uint32_t x) { return (x + 15u) & ~15u; }

/* Row stride of a code tile in words: odd, so that threads reading the same
 * word of consecutive tokens' rows hit distinct banks. */
__host__ __device__ inline uint32_t tile_stride(uint32_t row_words) { return row_words | 1u; }

__host__ __device__ inline Layout make_layout(uint32_t d, uint32_t nq, uint32_t T, uint32_t kw, uint32_t vw,
                                              uint32_t R)
{
    Layout L;
    uint32_t o = 0;
    L.theta = o; o = align16(o + (d / 2u) * 8u);            /* double theta[d/2] */
    L.rbase = o; o = align16(o + ((T + kRopeStep - 1u) / kRopeStep) * (d / 2u) * 16u); /* double2 [T/16][d/2] */
    L.qs = o;    o = align16(o + nq * (d / 2u) * 8u);       /* float2 qs[d/2][nq]: heads of a pair together */
    L.kpar = o;  o = align16(o + d * 8u);                   /* float2 calibrated key (addend, b) [d] */
    L.dec = o;   o = align16(o + 2u * 256u * 4u);           /* float decode tables, keys and values [256] */
    L.sc = o;    o = align16(o + nq * T * 4u);              /* float scores / weights [T][nq] */
    L.stats = o; o = align16(o + 3u * nq * 4u);             /* m, l, alpha [nq] */
    L.meta = o;  o = align16(o + (6u * T + 2u) * 4u);       /* kprec|vprec, kslot, vslot, pos [T]; kop, vop [T+1] */
    L.vpar = o;  o = align16(o + T * kStagedGroups * 4u);   /* value params of the tile [T][groups] */
    L.ktile = o; o = align16(o + T * tile_stride(kw) * 4u);
    L.vtile = o; o = align16(o + T * tile_stride(vw) * 4u);
    L.red = o;   o = align16(o + (R > 1u ? R * nq * d * 4u : 0u));
    L.flag = o;  o = align16(o + 4u);                       /* also the word a code read may touch past vtile */
    L.total = o;
    return L;
}

/* Phase-3 geometry: channels per thread span CW (a power of two >= d, at most
 * 128), and R = 128 / CW token subsets share a tile when d < 128. */
__host__ __device__ inline uint32_t channel_width(uint32_t d)
{
    uint32_t cw = 4;
    while (cw < d && cw < 128u) cw <<= 1;
    return cw;
}


/* Code c of a row in a shared-memory tile (S5.2) with one funnel shift: the
 * word after the code's first word is always readable (the next row, the
 * next region, or the flag word), and contributes only when a 3-bit code
 * straddles two words. */
__device__ __forceinline__ uint32_t tile_code(const uint32_t *row, uint32_t c, uint32_t bits, uint32_t mask)
{
    const uint32_t bit = c * bits;
    const uint32_t w = bit >> 5;
    return __funnelshift_r(row[w], row[w + 1u], bit & 31u) & mask;
}

/* S3.5, S6.5 in one form: y = fma(b, table[code], addend) with table[k] = k
 * (asymmetric: a + k b, the product exact), k - 2^(bits-1) (symmetric:
 * (k - 2^(bits-1)) b exact, addend -0 so that a zero product keeps its sign)
 * or signpost[k] (NUQ: fma(b, s_k, a)); the same bits as kvq_decode. */
__device__ __forceinline__ void fill_decode_table(float *table, uint32_t scheme, uint32_t bits,
                                                  const float *signpost, uint32_t k)
{
    if (k >= (1u << bits)) return;
    if (scheme == KVQ_SCHEME_NUQ)
        table[k] = signpost[k];
    else if (scheme == KVQ_SCHEME_UNIFORM_SYM)
        table[k] = (float)k - kvq_dev_sym_offset(bits);
    else
        table[k] = (float)k;
}


/* Walks a token's outliers (sorted by channel) alongside increasing channels. */
struct OutlierCursor {
    uint32_t k, end, chan;
    __device__ __forceinline__ void init(const uint16_t *ochan, uint32_t begin, uint32_t e)
    {
        k = begin;
        end = e;
        chan = k < end ? ochan[k] : 0xFFFFFFFFu;
    }
    /* Replaces *x by the outlier of channel c, if there is one. */
    __device__ __forceinline__ void apply(const uint16_t *ochan, const uint16_t *oval, uint32_t c, float *x)
    {
        while (chan < c) {
            k++;
            chan = k < end ? ochan[k] : 0xFFFFFFFFu;
        }
        if (chan == c) *x = kvq_dev_fp32(oval[k]);
    }
};

/* Loads the packed rows of ntile tokens (contiguous in global memory, tile
 * start 16-byte aligned) with 16-byte loads into rows of `stride` words. */
__device__ __forceinline__ void load_tile(uint32_t *dst, uint32_t stride, const uint32_t *src, uint32_t rw,
                                          uint32_t ntile)
{
    const uint32_t count = ntile * rw;
    const uint32_t chunks = (count + 3u) / 4u;
    const uint4 *src4 = reinterpret_cast<const uint4 *>(src);
    for (uint32_t k = threadIdx.x; k < chunks; k += kThreads) {
        uint4 v = __ldg(src4 + k); /* may read up to 12 bytes past the tile: allocations have 16 bytes of slack */
        uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int e = 0; e < 4; e++) {
            uint32_t L = 4u * k + (uint32_t)e;
            if (L >= count) break;
            uint32_t row = L / rw;
            dst[row * stride + (L - row * rw)] = w[e];
        }
    }
}


/* S9.1: the two channels of pair i. Without RoPE any pairing is fine. */
__device__ __forceinline__ void pair_channels(bool half, uint32_t d, uint32_t i, uint32_t *a, uint32_t *b)
{
    if (half) {
        *a = i;
        *b = i + d / 2u;
    } else {
        *a = 2u * i;
        *b = 2u * i + 1u;
    }
}

template <int NQ, int CPL>
__global__ void __launch_bounds__(kThreads, 4) attention_split_kernel(kvq_cuda_attention_args args)
{
    constexpr uint32_t S = kTokenThreads; /* threads per token in phase 1 */
    constexpr uint32_t T = kTile;         /* tokens per tile */
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ kvq_cuda_seq sq; /* this block's sequence, read once from global memory */

    const uint32_t split = blockIdx.x, hg = blockIdx.y, seq = blockIdx.z;
    const uint32_t n = args.seqs[seq].n_tokens;
    const uint32_t t_begin = split * args.tokens_per_split;
    if (t_begin >= n) return;
    {
        static_assert(sizeof(kvq_cuda_seq) % 4 == 0, "descriptor copied as words");
        const uint32_t *src = reinterpret_cast<const uint32_t *>(&args.seqs[seq]);
        uint32_t *dst = reinterpret_cast<uint32_t *>(&sq);
        for (uint32_t w = threadIdx.x; w < sizeof(kvq_cuda_seq) / 4u; w += kThreads) dst[w] = src[w];
    }
    __syncthreads();
    const uint32_t t_end = min(n, t_begin + args.tokens_per_split);
    const uint32_t d = args.head_dim, np = d / 2u;
    const uint32_t h0 = hg * NQ;
    const uint32_t nh = min((uint32_t)NQ, args.n_q - h0);
    const kvq_cuda_view &K = sq.keys;
    const kvq_cuda_view &V = sq.values;
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5;
    const bool rope = args.theta != nullptr;
    const bool half = rope && args.pairing == KVQ_ROPE_HALF;
    /* Per-block constants in registers (the descriptor is in shared memory). */
    const uint32_t kbits = K.bits, vbits = V.bits;
    const uint32_t kmask = (1u << kbits) - 1u, vmask = (1u << vbits) - 1u;
    const uint32_t kscheme = K.scheme, vscheme = V.scheme;
    const bool kcal = K.layout == KVQ_CUDA_PARAMS_KEYS_CALIBRATED;
    const uint32_t kgroup = K.group_size;
    const uint32_t vgroups = d / V.group_size;
    const bool vstaged = vgroups <= kStagedGroups;

    const uint32_t CW = channel_width(d);
    const uint32_t R = d < 128u ? kThreads / CW : 1u;
    const uint32_t kstride = tile_stride(K.row_words), vstride = tile_stride(V.row_words);
    const Layout L = make_layout(d, NQ, T, K.row_words, V.row_words, R);
    double *theta_s = reinterpret_cast<double *>(smem + L.theta);
    double2 *rbase = reinterpret_cast<double2 *>(smem + L.rbase);
    float2 *qcs = reinterpret_cast<float2 *>(smem + L.rbase); /* before the first tile: cos/sin at q_position */
    const double2 *rstep = reinterpret_cast<const double2 *>(args.rope_step);
    float2 *qs = reinterpret_cast<float2 *>(smem + L.qs);
    float2 *kpar = reinterpret_cast<float2 *>(smem + L.kpar);
    float *kdec = reinterpret_cast<float *>(smem + L.dec);
    float *vdec = kdec + 256;
    float *sc = reinterpret_cast<float *>(smem + L.sc);
    float *m_s = reinterpret_cast<float *>(smem + L.stats);
    float *l_s = m_s + NQ;
    float *alpha_s = l_s + NQ;
    uint32_t *prec_s = reinterpret_cast<uint32_t *>(smem + L.meta); /* kprec | vprec << 8 */
    uint32_t *kslot_s = prec_s + T;
    uint32_t *vslot_s = kslot_s + T;
    uint32_t *pos_s = vslot_s + T;
    uint32_t *kop_s = pos_s + T; /* T + 1 entries */
    uint32_t *vop_s = kop_s + T + 1u;
    uint32_t *vpar_s = reinterpret_cast<uint32_t *>(smem + L.vpar);
    uint32_t *ktile = reinterpret_cast<uint32_t *>(smem + L.ktile);
    uint32_t *vtile = reinterpret_cast<uint32_t *>(smem + L.vtile);
    float *red = reinterpret_cast<float *>(smem + L.red);
    uint32_t *flag_s = reinterpret_cast<uint32_t *>(smem + L.flag);

    /* ---- once per block: theta, decode tables, calibrated key params, stats ---- */
    if (rope)
        for (uint32_t i = tid; i < np; i += kThreads) theta_s[i] = args.theta[i];
    for (uint32_t k = tid; k < 256u; k += kThreads) {
        fill_decode_table(kdec, kscheme, kbits, K.signpost, k);
        fill_decode_table(vdec, vscheme, vbits, V.signpost, k);
    }
    if (kcal)
        for (uint32_t c = tid; c < d; c += kThreads) {
            uint32_t p = K.params[c];
            const float a = kvq_dev_fp32((uint16_t)(p & 0xFFFFu)), b = kvq_dev_fp32((uint16_t)(p >> 16));
            kpar[c] = make_float2(kvq_att_decode_addend(kscheme, a), b);
        }
    if (tid < NQ) {
        m_s[tid] = -INFINITY;
        l_s[tid] = 0.0f;
        alpha_s[tid] = 0.0f;
    }
    if (tid == 0) {
        *flag_s = 0;
        flag_s[1] = 0; /* read (and discarded) by a code read at the end of vtile */
    }
    __syncthreads();

    /* S11.2: the rotated queries q'_h = rope(q_h, q_position), as pairs; the
     * cos/sin of a pair are the same for every head. */
    if (rope)
        for (uint32_t i = tid; i < np; i += kThreads) {
            float c, s;
            kvq_dev_rope_cos_sin(sq.q_position, theta_s[i], &c, &s);
            qcs[i] = make_float2(c, s);
        }
    __syncthreads();
    for (uint32_t e = tid; e < NQ * np; e += kThreads) {
        uint32_t h = e / np, i = e % np;
        float2 r = make_float2(0.0f, 0.0f); /* heads past n_q contribute nothing */
        if (h < nh) {
            const float *q = args.q + ((size_t)seq * args.n_q + h0 + h) * d;
            uint32_t a, b;
            pair_channels(half, d, i, &a, &b);
            r = make_float2(q[a], q[b]);
            if (rope) {
                const float2 cs = qcs[i];
                kvq_dev_rope_rotate(q[a], q[b], cs.x, cs.y, &r.x, &r.y);
            }
        }
        qs[i * NQ + h] = r;
    }

    /* Phase-3 accumulators: head h, channel c3 + 128 j. */
    const uint32_t c3 = d < 128u ? tid % CW : tid;
    const uint32_t r3 = d < 128u ? tid / CW : 0u;
    float acc[NQ][CPL];
#pragma unroll
    for (int h = 0; h < NQ; h++)
#pragma unroll
        for (int j = 0; j < CPL; j++) acc[h][j] = 0.0f;
    uint32_t vgroup[CPL]; /* value group of each owned channel (S4.2) */
#pragma unroll
    for (int j = 0; j < CPL; j++) {
        uint32_t c = c3 + 128u * j;
        vgroup[j] = c < d ? c / V.group_size : 0u;
    }
    float key_max = 0.0f; /* largest |dequantized key| seen */

    for (uint32_t tile0 = t_begin; tile0 < t_end; tile0 += T) {
        const uint32_t ntile = min(T, t_end - tile0);
        __syncthreads(); /* the previous tile is finished with shared memory */
        if (tid < ntile) {
            uint32_t t = tile0 + tid;
            prec_s[tid] = (uint32_t)K.precision[t] | ((uint32_t)V.precision[t] << 8);
            kslot_s[tid] = K.slot[t];
            vslot_s[tid] = V.slot[t];
            pos_s[tid] = sq.positions != nullptr ? sq.positions[t] : sq.pos0 + t;
            kop_s[tid] = K.optr[t];
            vop_s[tid] = V.optr[t];
            if (tid == ntile - 1u) {
                kop_s[ntile] = K.optr[t + 1u];
                vop_s[ntile] = V.optr[t + 1u];
            }
        }
        if (vstaged) /* the tile's value params are contiguous: [ntile][vgroups] */
            for (uint32_t w = tid; w < ntile * vgroups; w += kThreads)
                vpar_s[w] = V.params[(size_t)tile0 * vgroups + w];
        load_tile(ktile, kstride, K.codes + (size_t)tile0 * K.row_words, K.row_words, ntile);
        load_tile(vtile, vstride, V.codes + (size_t)tile0 * V.row_words, V.row_words, ntile);
        /* Consecutive positions P0, P0 + 1, ... in this tile: RoPE by angle
         * addition (see kRopeStep); otherwise cos/sin per element. */
        bool consecutive = false;
        if (rope && rstep != nullptr) {
            const uint32_t p0 = sq.positions != nullptr ? sq.positions[tile0] : sq.pos0 + tile0;
            const bool mine = tid >= ntile || sq.positions == nullptr || sq.positions[tile0 + tid] == p0 + tid;
            const uint32_t n_base = (ntile + kRopeStep - 1u) / kRopeStep;
            for (uint32_t e = tid; e < n_base * np; e += kThreads) {
                const uint32_t a = e / np, i = e % np;
                double cd, sd;
                kvq_dev_rope_cos_sin_double(p0 + kRopeStep * a, theta_s[i], &cd, &sd);
                rbase[a * np + i] = make_double2(cd, sd);
            }
            consecutive = __syncthreads_and(mine) != 0;
        } else {
            __syncthreads();
        }

        /* ---- phase 1: scores (S11.2, S11.3) ---- */
        for (uint32_t ts = tid / S; ts < T; ts += kPassTokens) {
            const uint32_t part = tid % S;
            float dot[NQ];
#pragma unroll
            for (int h = 0; h < NQ; h++) dot[h] = 0.0f;
            if (ts < ntile) {
                const uint32_t t = tile0 + ts;
                const bool quant = (prec_s[ts] & 0xFFu) == KVQ_PREC_QUANTIZED;
                const uint32_t *crow = ktile + ts * kstride;
                const uint32_t *prow = kcal ? K.params : K.params + (size_t)(t / kgroup) * d;
                const uint16_t *hrow = quant ? nullptr : kvq_att_fp16_row(K, kslot_s[ts]);
                const uint32_t pos = pos_s[ts];
                OutlierCursor ca, cb;
                ca.init(K.ochan, kop_s[ts], kop_s[ts + 1u]);
                cb = ca;
                for (uint32_t i = part; i < np; i += S) {
                    uint32_t a, b;
                    pair_channels(half, d, i, &a, &b);
                    float ka, kb;
                    if (quant) {
                        float2 pa, pb; /* (addend, step) of channels a and b */
                        if (kcal) {
                            pa = kpar[a];
                            pb = kpar[b];
                        } else {
                            const uint32_t wa = prow[a], wb = prow[b];
                            pa = make_float2(kvq_att_decode_addend(kscheme, kvq_dev_fp32((uint16_t)(wa & 0xFFFFu))),
                                             kvq_dev_fp32((uint16_t)(wa >> 16)));
                            pb = make_float2(kvq_att_decode_addend(kscheme, kvq_dev_fp32((uint16_t)(wb & 0xFFFFu))),
                                             kvq_dev_fp32((uint16_t)(wb >> 16)));
                        }
                        ka = __fmaf_rn(pa.y, kdec[tile_code(crow, a, kbits, kmask)], pa.x);
                        kb = __fmaf_rn(pb.y, kdec[tile_code(crow, b, kbits, kmask)], pb.x);
                        ca.apply(K.ochan, K.oval, a, &ka); /* S7.4: replace, not add */
                        cb.apply(K.ochan, K.oval, b, &kb);
                    } else {
                        ka = kvq_dev_fp32(hrow[a]);
                        kb = kvq_dev_fp32(hrow[b]);
                    }
                    key_max = fmaxf(key_max, fmaxf(fabsf(ka), fabsf(kb)));
                    if (rope) {
                        float c, s;
                        if (consecutive) {
                            const double2 base = rbase[(ts / kRopeStep) * np + i];
                            const double2 step = __ldg(rstep + (size_t)i * kRopeStep + ts % kRopeStep);
                            c = __double2float_rn(__fma_rn(base.x, step.x, -__dmul_rn(base.y, step.y)));
                            s = __double2float_rn(__fma_rn(base.y, step.x, __dmul_rn(base.x, step.y)));
                        } else {
                            kvq_dev_rope_cos_sin(pos, theta_s[i], &c, &s);
                        }
                        /* fp32 rotation, two roundings per element (S12.3). */
                        const float ra = __fmaf_rn(ka, c, -__fmul_rn(kb, s));
                        const float rb = __fmaf_rn(ka, s, __fmul_rn(kb, c));
                        ka = ra;
                        kb = rb;
                    }
                    const float2 *qi = qs + (size_t)i * NQ;
#pragma unroll
                    for (int h = 0; h < NQ; h++) {
                        const float2 q = qi[h];
                        dot[h] = fmaf(q.x, ka, dot[h]);
                        dot[h] = fmaf(q.y, kb, dot[h]);
                    }
                }
            }
#pragma unroll
            for (int h = 0; h < NQ; h++)
#pragma unroll
                for (uint32_t off = S / 2u; off > 0; off >>= 1) dot[h] += __shfl_xor_sync(kFull, dot[h], off);
            if (part == 0)
#pragma unroll
                for (int h = 0; h < NQ; h++) sc[ts * NQ + h] = ts < ntile ? dot[h] * args.score_scale : -INFINITY;
        }
        __syncthreads();

        /* ---- phase 2: online softmax, base 2 ---- */
        for (uint32_t h = warp; h < NQ; h += kWarps) {
            float mt = -INFINITY;
            for (uint32_t j = lane; j < T; j += 32u) mt = fmaxf(mt, sc[j * NQ + h]);
            for (int off = 16; off > 0; off >>= 1) mt = fmaxf(mt, __shfl_xor_sync(kFull, mt, off));
            /* The shift is an integer at or above every score so far: weights stay
             * in (0, 1], and every later rescaling is by an exact power of two.
             * Rescaling by exp2 of a fractional difference would compound one
             * rounding per tile in which the maximum grows, where S12.3 allows
             * one rescale factor per weight. */
            const float m_old = m_s[h];
            const float m_new = fmaxf(m_old, ceilf(mt)); /* finite: the tile has a token */
            float sum = 0.0f;
            for (uint32_t j = lane; j < T; j += 32u) {
                float p = exp2f(sc[j * NQ + h] - m_new); /* exp2(-inf) = 0 for missing tokens */
                sc[j * NQ + h] = p;
                sum += p;
            }
            for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(kFull, sum, off);
            __syncwarp(); /* every lane has read m_s[h] before lane 0 replaces it */
            if (lane == 0) {
                const float alpha = kvq_att_pow2_difference(m_old, m_new); /* 0 on the first tile */
                alpha_s[h] = alpha;
                l_s[h] = l_s[h] * alpha + sum;
                m_s[h] = m_new;
            }
        }
        __syncthreads();

        /* ---- phase 3: weighted values (S11.4) ---- */
#pragma unroll
        for (int h = 0; h < NQ; h++) {
            const float alpha = alpha_s[h];
#pragma unroll
            for (int j = 0; j < CPL; j++) acc[h][j] *= alpha;
        }
        for (uint32_t ts = r3; ts < ntile; ts += R) {
            const uint32_t t = tile0 + ts;
            float v[CPL];
            if (((prec_s[ts] >> 8) & 0xFFu) == KVQ_PREC_QUANTIZED) {
                const uint32_t *crow = vtile + ts * vstride;
                const uint32_t *prow = vstaged ? vpar_s + ts * vgroups : V.params + (size_t)t * vgroups;
#pragma unroll
                for (int j = 0; j < CPL; j++) {
                    const uint32_t c = c3 + 128u * j;
                    v[j] = 0.0f;
                    if (c < d) {
                        const uint32_t w = prow[vgroup[j]];
                        const float a = kvq_att_decode_addend(vscheme, kvq_dev_fp32((uint16_t)(w & 0xFFFFu)));
                        v[j] = __fmaf_rn(kvq_dev_fp32((uint16_t)(w >> 16)), vdec[tile_code(crow, c, vbits, vmask)], a);
                    }
                }
            } else {
                const uint16_t *hrow = kvq_att_fp16_row(V, vslot_s[ts]);
#pragma unroll
                for (int j = 0; j < CPL; j++) {
                    const uint32_t c = c3 + 128u * j;
                    v[j] = c < d ? kvq_dev_fp32(hrow[c]) : 0.0f;
                }
            }
            for (uint32_t k = vop_s[ts]; k < vop_s[ts + 1u]; k++) { /* S7.4 */
                const uint32_t ch = V.ochan[k];
#pragma unroll
                for (int j = 0; j < CPL; j++)
                    if (ch == c3 + 128u * j) v[j] = kvq_dev_fp32(V.oval[k]);
            }
            const float *p = sc + ts * NQ;
#pragma unroll
            for (int h = 0; h < NQ; h++) {
#pragma unroll
                for (int j = 0; j < CPL; j++) acc[h][j] = fmaf(p[h], v[j], acc[h][j]);
            }
        }
    }

    /* ---- end of the split ---- */
    /* The reference rejects a dequantized key beyond the fp16 range when it
     * applies RoPE (S9.1 input check). */
    if (!(key_max <= 65504.0f)) atomicOr(flag_s, 1u);
    if (R > 1u) {
        __syncthreads();
#pragma unroll
        for (int h = 0; h < NQ; h++)
            if (c3 < d) red[(r3 * NQ + h) * d + c3] = acc[h][0];
        __syncthreads();
        if (r3 == 0) {
#pragma unroll
            for (int h = 0; h < NQ; h++)
                for (uint32_t r = 1; r < R; r++) acc[h][0] += c3 < d ? red[(r * NQ + h) * d + c3] : 0.0f;
        }
    }
    __syncthreads();
    if (tid == 0 && *flag_s) atomicOr(args.flags, 1u);
    if (r3 != 0) return;
    /* Loops with compile-time bounds keep acc in registers. */
    if (sq.n_splits == 1) {
#pragma unroll
        for (int h = 0; h < NQ; h++) {
            if ((uint32_t)h >= nh) continue;
#pragma unroll
            for (int j = 0; j < CPL; j++) {
                const uint32_t c = c3 + 128u * j;
                if (c < d) args.out[((size_t)seq * args.n_q + h0 + h) * d + c] = acc[h][j] / l_s[h];
            }
        }
        return;
    }
    const size_t base = ((size_t)seq * args.max_splits + split) * args.n_q + h0;
#pragma unroll
    for (int h = 0; h < NQ; h++) {
        if ((uint32_t)h >= nh) continue;
#pragma unroll
        for (int j = 0; j < CPL; j++) {
            const uint32_t c = c3 + 128u * j;
            if (c < d) args.partial_o[(base + h) * d + c] = acc[h][j];
        }
        if (tid == 0) {
            args.partial_ml[(base + h) * 2u] = m_s[h];
            args.partial_ml[(base + h) * 2u + 1u] = l_s[h];
        }
    }
}

/* Merges the splits of one (sequence, head) for 32 channels (blockIdx.z):
 * out = sum_s 2^(m_s - M) o_s / L, where the m_s are integers, so the factors
 * are exact. The block's 32 warps share the splits: M and L by a block
 * reduction, then warp w sums splits w, w + 32, ... with lanes on channels
 * (coalesced rows), and the warps' sums are added in a fixed order. */
constexpr int kCombineThreads = 1024;
constexpr uint32_t kCombineWarps = kCombineThreads / 32;

__global__ void __launch_bounds__(kCombineThreads) attention_combine_kernel(kvq_cuda_attention_args args)
{
    __shared__ float red_m[kCombineWarps], red_l[kCombineWarps];
    __shared__ float part[kCombineWarps][32];
    const uint32_t h = blockIdx.x, seq = blockIdx.y, c = blockIdx.z * 32u + (threadIdx.x & 31u);
    const uint32_t ns = args.seqs[seq].n_splits;
    if (ns <= 1u) return; /* written by the split kernel */
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5;
    const size_t stride = (size_t)args.n_q; /* between the splits of one head */
    const size_t first = (size_t)seq * args.max_splits * args.n_q + h;
    const float *ml = args.partial_ml + first * 2u;

    float m = -INFINITY;
    for (uint32_t s = tid; s < ns; s += kCombineThreads) m = fmaxf(m, ml[s * stride * 2u]);
    for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(kFull, m, off));
    if (lane == 0) red_m[warp] = m;
    __syncthreads();
    float M = red_m[0];
    for (uint32_t w = 1; w < kCombineWarps; w++) M = fmaxf(M, red_m[w]);
    float l = 0.0f;
    for (uint32_t s = tid; s < ns; s += kCombineThreads)
        l = fmaf(ml[s * stride * 2u + 1u], kvq_att_pow2_difference(ml[s * stride * 2u], M), l);
    for (int off = 16; off > 0; off >>= 1) l += __shfl_xor_sync(kFull, l, off);
    if (lane == 0) red_l[warp] = l;

    const uint32_t d = args.head_dim;
    float a = 0.0f;
    if (c < d) {
        const float *o = args.partial_o + first * d + c;
#pragma unroll 4
        for (uint32_t s = warp; s < ns; s += kCombineWarps) /* unrolled: several splits' loads in flight */
            a = fmaf(kvq_att_pow2_difference(ml[s * stride * 2u], M), o[s * stride * d], a);
    }
    part[warp][lane] = a;
    __syncthreads();
    if (warp == 0 && c < d) {
        float total = 0.0f, sum = 0.0f;
        for (uint32_t w = 0; w < kCombineWarps; w++) {
            total += red_l[w];
            sum += part[w][lane];
        }
        args.out[((size_t)seq * args.n_q + h) * d + c] = sum / total;
    }
}

template <int NQ, int CPL>
cudaError_t launch_split(const kvq_cuda_attention_args &args, uint32_t n_groups, uint32_t smem, cudaStream_t stream)
{
    /* Opt in to more than 48 KiB of shared memory when a layout comes near it:
     * the limit counts the static descriptor too (per device, so not cached). */
    if (smem > 40u * 1024u) {
        cudaError_t err = cudaFuncSetAttribute(attention_split_kernel<NQ, CPL>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (err != cudaSuccess) return err;
    }
    dim3 grid(args.max_splits, n_groups, args.n_seq);
    attention_split_kernel<NQ, CPL><<<grid, kThreads, smem, stream>>>(args);
    return cudaGetLastError();
}

template <int NQ>
cudaError_t launch_nq(const kvq_cuda_attention_args &args, uint32_t cpl, uint32_t n_groups, uint32_t smem,
                      cudaStream_t stream)
{
    switch (cpl) {
    case 1: return launch_split<NQ, 1>(args, n_groups, smem, stream);
    case 2: return launch_split<NQ, 2>(args, n_groups, smem, stream);
    case 4: return launch_split<NQ, 4>(args, n_groups, smem, stream);
    default: return launch_split<NQ, 8>(args, n_groups, smem, stream);
    }
}

/* Channels per thread in phase 3 = threads per token in phase 1. */
uint32_t cpl_for(uint32_t d) { return d <= 128u ? 1u : d <= 256u ? 2u : d <= 512u ? 4u : 8u; }

} // namespace

extern "C" uint32_t kvq_cuda_attention_tile(uint32_t head_dim)
{
    (void)head_dim; /* the same for every head_dim: the fast kernel's tile, a multiple of kTile */
    static_assert(KVQ_CUDA_STEP32_OFFSETS % kTile == 0, "splits are whole tiles of both kernels");
    return KVQ_CUDA_STEP32_OFFSETS;
}

static unsigned long long fast_launches = 0;

extern "C" unsigned long long kvq_cuda_attention_fast_launches(void) { return fast_launches; }

extern "C" int kvq_cuda_attention_fast_eligible(const kvq_cuda_attention_args *a)
{
    if (a->seqs_host == nullptr || a->n_seq == 0 || a->theta == nullptr ||
        a->rope_step32 == nullptr || a->pairing != KVQ_ROPE_HALF || a->head_dim != 128u ||
        a->tokens_per_split % KVQ_CUDA_STEP32_OFFSETS != 0u)
        return 0;
    for (uint32_t s = 0; s < a->n_seq; s++)
        if (!kvq_cuda_attention_fast_seq_ok(&a->seqs_host[s], &a->seqs_host[0])) return 0;
    return 1;
}

extern "C" void kvq_cuda_rope_step_table(const double *theta, uint32_t head_dim, double *table)
{
    /* S9.3 for positions 0 .. 15: the reference's expression. */
    for (uint32_t i = 0; i < head_dim / 2u; i++)
        for (uint32_t b = 0; b < kRopeStep; b++) {
            double angle = fmod((double)b * theta[i], KVQ_DEV_TWO_PI);
            table[2u * (i * kRopeStep + b)] = cos(angle);
            table[2u * (i * kRopeStep + b) + 1u] = sin(angle);
        }
}

extern "C" kvq_cuda_attention_kernel kvq_cuda_attention_kernel_for(const kvq_cuda_attention_args *a)
{
    uint32_t want = a->kernel;
    if (want == KVQ_CUDA_KERNEL_AUTO) {
        const char *e = getenv("KVQ_CUDA_ATTENTION"); /* for comparisons and tests of one kernel */
        if (e != nullptr && strcmp(e, "general") == 0) want = KVQ_CUDA_KERNEL_GENERAL;
        if (e != nullptr && strcmp(e, "fast") == 0) want = KVQ_CUDA_KERNEL_FAST;
        if (e != nullptr && strcmp(e, "tc") == 0) want = KVQ_CUDA_KERNEL_TC;
    }
    const bool fast = kvq_cuda_attention_fast_eligible(a) != 0, tc = kvq_cuda_attention_tc_eligible(a) != 0;
    switch (want) {
    case KVQ_CUDA_KERNEL_GENERAL: return KVQ_CUDA_KERNEL_GENERAL;
    case KVQ_CUDA_KERNEL_FAST: return fast ? KVQ_CUDA_KERNEL_FAST : KVQ_CUDA_KERNEL_GENERAL;
    case KVQ_CUDA_KERNEL_TC: return tc ? KVQ_CUDA_KERNEL_TC : fast ? KVQ_CUDA_KERNEL_FAST : KVQ_CUDA_KERNEL_GENERAL;
    default: {
        /* Measured on the H200 (docs/PERFORMANCE-ANALYSIS.md): without outliers the tensor-core
         * kernel is the faster one wherever it fits (int4, 32 heads, 32K: 0.113 ms against the fp32
         * fast kernel's 0.212, 2026-12-03). With 1% outliers and a sink it is faster for one query
         * head per KV head (MHA: 0.330 against 0.404 ms at 32K, 1.20 against 1.55 at 128K) and not
         * for GQA groups (4 heads: 0.150 against 0.130 ms at 32K; 8: 0.282 against 0.207), whose
         * corrections are an atomic per head and outlier. */
        bool outliers = false;
        for (uint32_t s = 0; s < a->n_seq; s++)
            outliers = outliers || a->seqs_host[s].keys.n_outliers != 0u || a->seqs_host[s].values.n_outliers != 0u;
        if (tc && (!outliers || !fast || a->n_q == 1u)) return KVQ_CUDA_KERNEL_TC;
        return fast ? KVQ_CUDA_KERNEL_FAST : KVQ_CUDA_KERNEL_GENERAL;
    }
    }
}

/* Blocks per (split, sequence) of the kernel `k`: its query-head groups. */
static uint32_t head_groups(kvq_cuda_attention_kernel k, uint32_t n_q)
{
    const uint32_t nq = k == KVQ_CUDA_KERNEL_TC ? 8u : n_q >= 8u ? 8u : n_q >= 4u ? 4u : n_q >= 2u ? 2u : 1u;
    return (n_q + nq - 1u) / nq;
}

/* Blocks of a call whose splits are `tiles_per_split` tiles long. */
static uint64_t call_blocks(const kvq_cuda_attention_args *a, uint64_t groups, uint64_t tiles_per_split)
{
    const uint32_t T = kvq_cuda_attention_tile(a->head_dim);
    uint64_t blocks = 0;
    for (uint32_t s = 0; s < a->n_seq; s++) {
        const uint64_t tiles = ((uint64_t)a->seqs_host[s].n_tokens + T - 1u) / T;
        blocks += groups * (tiles == 0u ? 1u : (tiles + tiles_per_split - 1u) / tiles_per_split);
    }
    return blocks;
}

extern "C" uint32_t kvq_cuda_attention_tokens_per_split(const kvq_cuda_attention_args *args, uint32_t sm_count)
{
    const uint32_t T = kvq_cuda_attention_tile(args->head_dim);
    kvq_cuda_attention_args a = *args;
    a.tokens_per_split = T; /* any multiple of the tile: what the choice of kernel asks of it */
    const kvq_cuda_attention_kernel k = kvq_cuda_attention_kernel_for(&a);
    /* Resident blocks per SM: measured for the tensor-core kernel, 4 for the fp32 kernels
     * (their register budget of 128 threads x 127 registers, docs/PERFORMANCE-ANALYSIS.md). */
    int per_sm = 4;
    if (k == KVQ_CUDA_KERNEL_TC) {
        per_sm = kvq_cuda_attention_tc_blocks_per_sm(args);
        if (per_sm < 1) per_sm = 1;
    }
    const uint64_t slots = (uint64_t)(sm_count == 0u ? 1u : sm_count) * (uint64_t)per_sm;
    const uint64_t groups = head_groups(k, args->n_q);
    uint64_t max_tiles = 1, total_tiles = 0;
    for (uint32_t s = 0; s < args->n_seq; s++) {
        const uint64_t tiles = ((uint64_t)args->seqs_host[s].n_tokens + T - 1u) / T;
        if (tiles > max_tiles) max_tiles = tiles;
        total_tiles += tiles;
    }
    /* One wave: the shortest splits with which every block of the call is resident at once.
     * Blocks of a split kernel do equal work, so a second, partial wave (e.g. 512 blocks on
     * 396 slots) costs as much as a whole one. When even one split per sequence is more
     * than a wave, about four waves of blocks keep the SMs busy to the end instead. */
    uint64_t tps;
    if (call_blocks(&a, groups, max_tiles) <= slots) {
        uint64_t lo = 1, hi = max_tiles; /* call_blocks(hi) <= slots; it only falls as tps grows */
        while (lo < hi) {
            const uint64_t mid = lo + (hi - lo) / 2u;
            if (call_blocks(&a, groups, mid) <= slots) hi = mid;
            else lo = mid + 1u;
        }
        tps = lo;
    } else {
        tps = (total_tiles * groups + 4u * slots - 1u) / (4u * slots);
        if (tps == 0u) tps = 1u;
    }
    const uint64_t tokens = tps * T;
    return tokens > KVQ_MAX_TOKENS ? (KVQ_MAX_TOKENS / T) * T : (uint32_t)tokens;
}

extern "C" cudaError_t kvq_cuda_attention(const kvq_cuda_attention_args *args, cudaStream_t stream)
{
    const uint32_t d = args->head_dim;
    const uint32_t nq = args->n_q >= 8u ? 8u : args->n_q >= 4u ? 4u : args->n_q >= 2u ? 2u : 1u;
    const uint32_t n_groups = (args->n_q + nq - 1u) / nq;
    const uint32_t cpl = cpl_for(d);
    const uint32_t T = kTile;
    const uint32_t CW = channel_width(d);
    const uint32_t R = d < 128u ? kThreads / CW : 1u;
    cudaError_t err;
    /* Sequences share head_dim but not necessarily bit widths: the shared
     * memory is sized for the widest rows, and each block lays out its own. */
    const Layout L = make_layout(d, nq, T, args->max_key_words, args->max_value_words, R);
    const kvq_cuda_attention_kernel kernel = kvq_cuda_attention_kernel_for(args);
    if (kernel == KVQ_CUDA_KERNEL_TC) {
        err = kvq_cuda_attention_tc_split(args, stream);
    } else if (kernel == KVQ_CUDA_KERNEL_FAST) {
        err = kvq_cuda_attention_fast_split(args, stream);
        fast_launches++;
    } else
        switch (nq) {
        case 1: err = launch_nq<1>(*args, cpl, n_groups, L.total, stream); break;
        case 2: err = launch_nq<2>(*args, cpl, n_groups, L.total, stream); break;
        case 4: err = launch_nq<4>(*args, cpl, n_groups, L.total, stream); break;
        default: err = launch_nq<8>(*args, cpl, n_groups, L.total, stream); break;
        }
    if (err != cudaSuccess || args->max_splits <= 1u) return err;
    dim3 grid(args->n_q, args->n_seq, (d + 31u) / 32u);
    attention_combine_kernel<<<grid, kCombineThreads, 0, stream>>>(*args);
    return cudaGetLastError();
}
