/*
 * quantize.cu - S4.1 steps 3-7 on the device: fp16 rows, the groups of
 * values (S4.2), calibrated keys (S4.2) and online keys (S4.3) with their
 * outliers (S7), packing of the code rows (S5) and the sparse outliers by
 * token (S7.4). The host decides every token's precision first (S10, with
 * libkvq's kvq_token_precision) and passes it in `precision`.
 *
 * Work is always over a token range [t_begin, t_end) of a tensor whose input
 * rows start at token x_base, so that a cache (S15) can quantize only the
 * tokens that became final; scratch rows (codes_u8, mask_u8: one byte per
 * element) start at token u_base.
 *
 * Each step's per-thread work is one __device__ function, called by the
 * single-range kernel (one launch per range, for quantize_head and the cache)
 * and by the batched kernel (one launch for every range of a batch: blockIdx.y
 * picks the job, kvq_cuda_batch_job), so both produce the same bytes.
 */
#include <cub/device/device_scan.cuh>

#include "codes.cuh"
#include "fp16.cuh"
#include "kvq_cuda_kernels.cuh"
#include "quantizer.cuh"

namespace {

constexpr unsigned kFull = 0xFFFFFFFFu;
constexpr uint32_t kNone = 0xFFFFFFFFu;
constexpr int kBlock = 256;

unsigned grid_for(unsigned long long items, int block)
{
    unsigned long long g = (items + (unsigned long long)block - 1ull) / (unsigned long long)block;
    return g == 0 ? 1u : (unsigned)g;
}

/* S1.3 */
__global__ void find_nonfinite_kernel(const float *x, size_t n, unsigned long long *first_bad)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (!(fabsf(x[i]) <= 65504.0f)) { /* false for NaN and infinities too */
            atomicMin(first_bad, (unsigned long long)i);
            return; /* later indices of this thread cannot be smaller */
        }
    }
}

/* Index of this thread along x over the whole grid. */
__device__ __forceinline__ unsigned long long thread_x()
{
    return (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
}

/* S4.1 step 3: element i of the range. */
__device__ __forceinline__ void fp16_rows_element(const float *x, uint32_t x_base, uint32_t t_begin, uint32_t t_end,
                                                  uint32_t perm_from, uint32_t d, const uint32_t *slot, uint16_t *rows,
                                                  uint16_t *temp_rows, unsigned long long i)
{
    unsigned long long total = (unsigned long long)(t_end - t_begin) * d;
    if (i >= total) return;
    uint32_t t = t_begin + (uint32_t)(i / d), c = (uint32_t)(i % d);
    uint32_t s = slot[t];
    if (s == KVQ_CUDA_NO_SLOT) return;
    uint16_t h = kvq_dev_fp16(x[(size_t)(t - x_base) * d + c]);
    if (s & KVQ_CUDA_TEMP_SLOT)
        temp_rows[(size_t)(s & ~KVQ_CUDA_TEMP_SLOT) * d + c] = h;
    else if (t >= perm_from)
        rows[(size_t)s * d + c] = h;
}

__global__ void fp16_rows_kernel(const float *x, uint32_t x_base, uint32_t t_begin, uint32_t t_end, uint32_t perm_from,
                                 uint32_t d, const uint32_t *slot, uint16_t *rows, uint16_t *temp_rows)
{
    fp16_rows_element(x, x_base, t_begin, t_end, perm_from, d, slot, rows, temp_rows, thread_x());
}

/* A candidate in a warp-wide selection: its value and index (kNone: none). */
struct Candidate {
    float v;
    uint32_t i;
};

template <bool Upper>
__device__ __forceinline__ bool better(Candidate a, Candidate b)
{
    if (a.i == kNone) return false;
    if (b.i == kNone) return true;
    return Upper ? kvq_dev_upper_before(a.v, a.i, b.v, b.i) : kvq_dev_lower_before(a.v, a.i, b.v, b.i);
}

/* Every lane ends with the best candidate of the warp (indices are unique, so
 * the order is total and the butterfly gives all lanes the same answer). */
template <bool Upper>
__device__ __forceinline__ Candidate warp_best(Candidate c)
{
    for (int off = 16; off > 0; off >>= 1) {
        Candidate o = {__shfl_xor_sync(kFull, c.v, off), __shfl_xor_sync(kFull, c.i, off)};
        if (better<Upper>(o, c)) c = o;
    }
    return c;
}

/* S4.2 values: one warp per (token, group), `warp` numbering them over the
 * range. Lane l holds the elements l, l + 32, ... of the group (G <= 1024, so
 * at most 32 per lane) in registers; bit m of `mark` says element l + 32m is
 * an outlier. */
__device__ __forceinline__ void quantize_values_warp(const float *x, uint32_t x_base, uint32_t t_begin, uint32_t t_end,
                                                     uint32_t d, uint32_t G, uint32_t ppm, const uint8_t *precision,
                                                     const kvq_cuda_quantizer &q, uint32_t *params, uint8_t *codes_u8,
                                                     uint8_t *mask_u8, uint32_t u_base, unsigned long long warp,
                                                     uint32_t lane)
{
    const uint32_t groups = d / G;
    if (warp >= (unsigned long long)(t_end - t_begin) * groups) return;
    const uint32_t t = t_begin + (uint32_t)(warp / groups), j = (uint32_t)(warp % groups);
    if (precision[t] != KVQ_PREC_QUANTIZED) return; /* fp16 tokens keep params {0, 0} */

    const float *xg = x + (size_t)(t - x_base) * d + (size_t)j * G;
    float v[32];
#pragma unroll
    for (int m = 0; m < 32; m++) {
        uint32_t e = lane + 32u * m;
        v[m] = e < G ? xg[e] : 0.0f;
    }

    /* S7.1, S7.2: every element is eligible. */
    uint32_t upper, lower;
    kvq_dev_outlier_count(G, ppm, &upper, &lower);
    uint32_t mark = 0;
    if ((unsigned long long)upper + lower >= G) {
#pragma unroll
        for (int m = 0; m < 32; m++)
            if (lane + 32u * m < G) mark |= 1u << m;
    } else {
        for (uint32_t pick = 0; pick < upper + lower; pick++) {
            const bool up = pick < upper; /* the upper tail chooses first (S7.2 step 3) */
            Candidate best = {0.0f, kNone};
#pragma unroll
            for (int m = 0; m < 32; m++) {
                uint32_t e = lane + 32u * m;
                if (e >= G || (mark >> m) & 1u) continue;
                Candidate c = {v[m], e};
                if (up ? better<true>(c, best) : better<false>(c, best)) best = c;
            }
            best = up ? warp_best<true>(best) : warp_best<false>(best);
            if (best.i % 32u == lane) mark |= 1u << (best.i / 32u);
        }
    }

    /* S7.3: the dense range. Among equal values the first index wins, as in
     * the reference's index-order scan (this decides the sign of a zero). */
    Candidate lo = {0.0f, kNone}, hi = {0.0f, kNone};
#pragma unroll
    for (int m = 0; m < 32; m++) {
        uint32_t e = lane + 32u * m;
        if (e >= G || (mark >> m) & 1u) continue;
        Candidate c = {v[m], e};
        if (better<false>(c, lo)) lo = c;
        if (better<true>(c, hi)) hi = c;
    }
    lo = warp_best<false>(lo);
    hi = warp_best<true>(hi);
    const float min = lo.i == kNone ? 0.0f : lo.v, max = hi.i == kNone ? 0.0f : hi.v;
    const uint32_t p = kvq_dev_params(q.scheme, q.bits, min, max);
    if (lane == 0) params[(size_t)t * groups + j] = p;

    /* S4.1 step 5: a code for every element, outliers included (S7.4). */
    uint8_t *cg = codes_u8 + (size_t)(t - u_base) * d + (size_t)j * G;
    uint8_t *mg = mask_u8 + (size_t)(t - u_base) * d + (size_t)j * G;
#pragma unroll
    for (int m = 0; m < 32; m++) {
        uint32_t e = lane + 32u * m;
        if (e >= G) continue;
        cg[e] = (uint8_t)kvq_dev_encode(q.scheme, q.bits, p, q.threshold, v[m]);
        mg[e] = (uint8_t)((mark >> m) & 1u);
    }
}

__global__ void quantize_values_kernel(const float *x, uint32_t x_base, uint32_t t_begin, uint32_t t_end, uint32_t d,
                                       uint32_t G, uint32_t ppm, const uint8_t *precision, kvq_cuda_quantizer q,
                                       uint32_t *params, uint8_t *codes_u8, uint8_t *mask_u8, uint32_t u_base)
{
    quantize_values_warp(x, x_base, t_begin, t_end, d, G, ppm, precision, q, params, codes_u8, mask_u8, u_base,
                         thread_x() / 32ull, threadIdx.x & 31u);
}

/* S4.2 calibrated keys: one thread per element, i numbering them over the range. */
__device__ __forceinline__ void quantize_keys_calibrated_element(const float *x, uint32_t x_base, uint32_t t_begin,
                                                                 uint32_t t_end, uint32_t d, const uint8_t *precision,
                                                                 const kvq_cuda_quantizer &q, const uint32_t *params,
                                                                 const float *ranges, uint8_t *codes_u8,
                                                                 uint8_t *mask_u8, uint32_t u_base,
                                                                 unsigned long long i)
{
    if (i >= (unsigned long long)(t_end - t_begin) * d) return;
    uint32_t t = t_begin + (uint32_t)(i / d), c = (uint32_t)(i % d);
    if (precision[t] != KVQ_PREC_QUANTIZED) return;
    float v = x[(size_t)(t - x_base) * d + c];
    size_t u = (size_t)(t - u_base) * d + c;
    codes_u8[u] = (uint8_t)kvq_dev_encode(q.scheme, q.bits, params[c], q.threshold, v);
    /* strict (S7.3); no ranges: beyond_range CLAMP, the code alone clamps */
    mask_u8[u] = (uint8_t)(ranges != nullptr && (v < ranges[2u * c] || v > ranges[2u * c + 1u]));
}

__global__ void quantize_keys_calibrated_kernel(const float *x, uint32_t x_base, uint32_t t_begin, uint32_t t_end,
                                                uint32_t d, const uint8_t *precision, kvq_cuda_quantizer q,
                                                const uint32_t *params, const float *ranges, uint8_t *codes_u8,
                                                uint8_t *mask_u8, uint32_t u_base)
{
    quantize_keys_calibrated_element(x, x_base, t_begin, t_end, d, precision, q, params, ranges, codes_u8, mask_u8,
                                     u_base, thread_x());
}

/* S4.3 online keys: one thread per (block b, channel c) walks the block's G
 * tokens in order; its outlier marks live in mask_u8. Threads of a warp take
 * consecutive channels, so every read of x is coalesced. */
__device__ __forceinline__ void quantize_keys_online_channel(const float *x, uint32_t x_base, uint32_t b, uint32_t c,
                                                             uint32_t d, uint32_t G, uint32_t ppm,
                                                             const uint8_t *precision, const kvq_cuda_quantizer &q,
                                                             uint32_t *params, uint8_t *codes_u8, uint8_t *mask_u8,
                                                             uint32_t u_base)
{
    if (c >= d) return;
    const uint32_t t0 = b * G;
    uint32_t n_e = 0;
    for (uint32_t i = 0; i < G; i++) n_e += precision[t0 + i] == KVQ_PREC_QUANTIZED;
    if (n_e == 0) return; /* nothing to quantize: params stay {0, 0} */

#define KVQ_X(t) x[(size_t)((t) - x_base) * d + c]
#define KVQ_MASK(t) mask_u8[(size_t)((t) - u_base) * d + c]
    uint32_t upper, lower;
    kvq_dev_outlier_count(n_e, ppm, &upper, &lower);
    if ((unsigned long long)upper + lower >= n_e) {
        for (uint32_t i = 0; i < G; i++)
            if (precision[t0 + i] == KVQ_PREC_QUANTIZED) KVQ_MASK(t0 + i) = 1;
    } else {
        for (uint32_t pick = 0; pick < upper + lower; pick++) {
            const bool up = pick < upper;
            uint32_t best = kNone;
            float best_v = 0.0f;
            for (uint32_t i = 0; i < G; i++) {
                uint32_t t = t0 + i;
                if (precision[t] != KVQ_PREC_QUANTIZED || KVQ_MASK(t)) continue;
                float v = KVQ_X(t);
                if (best == kNone || (up ? kvq_dev_upper_before(v, i, best_v, best)
                                         : kvq_dev_lower_before(v, i, best_v, best))) {
                    best = i;
                    best_v = v;
                }
            }
            KVQ_MASK(t0 + best) = 1; /* best exists: fewer picks than eligible elements */
        }
    }

    /* S7.3, in token order exactly as the reference scans. */
    bool any = false;
    float min = 0.0f, max = 0.0f;
    for (uint32_t i = 0; i < G; i++) {
        uint32_t t = t0 + i;
        if (precision[t] != KVQ_PREC_QUANTIZED || KVQ_MASK(t)) continue;
        float v = KVQ_X(t);
        if (!any || v < min) min = v;
        if (!any || v > max) max = v;
        any = true;
    }
    const uint32_t p = kvq_dev_params(q.scheme, q.bits, min, max);
    params[(size_t)b * d + c] = p;
    for (uint32_t i = 0; i < G; i++) {
        uint32_t t = t0 + i;
        if (precision[t] != KVQ_PREC_QUANTIZED) continue;
        codes_u8[(size_t)(t - u_base) * d + c] = (uint8_t)kvq_dev_encode(q.scheme, q.bits, p, q.threshold, KVQ_X(t));
    }
#undef KVQ_X
#undef KVQ_MASK
}

constexpr uint32_t kOnlineBlock = 128; /* threads (channels) per block of the online keys kernels */

__global__ void quantize_keys_online_kernel(const float *x, uint32_t x_base, uint32_t b_begin, uint32_t d, uint32_t G,
                                            uint32_t ppm, const uint8_t *precision, kvq_cuda_quantizer q,
                                            uint32_t *params, uint8_t *codes_u8, uint8_t *mask_u8, uint32_t u_base)
{
    quantize_keys_online_channel(x, x_base, b_begin + blockIdx.y, blockIdx.x * blockDim.x + threadIdx.x, d, G, ppm,
                                 precision, q, params, codes_u8, mask_u8, u_base);
}

/* S4.1 step 6: one thread per packed word of a QUANTIZED token, i numbering
 * the words of the range. */
__device__ __forceinline__ void pack_token_word(const uint8_t *codes_u8, uint32_t u_base, uint32_t t_begin,
                                                uint32_t t_end, uint32_t d, uint32_t bits, const uint8_t *precision,
                                                uint32_t *codes, unsigned long long i)
{
    const uint32_t rw = d * bits / 32u;
    if (i >= (unsigned long long)(t_end - t_begin) * rw) return;
    uint32_t t = t_begin + (uint32_t)(i / rw), w = (uint32_t)(i % rw);
    if (precision[t] != KVQ_PREC_QUANTIZED) return; /* rows of fp16 tokens stay zero (S5.1) */
    codes[(size_t)t * rw + w] = kvq_dev_pack_word(codes_u8 + (size_t)(t - u_base) * d, w, bits);
}

__global__ void pack_token_rows_kernel(const uint8_t *codes_u8, uint32_t u_base, uint32_t t_begin, uint32_t t_end,
                                       uint32_t d, uint32_t bits, const uint8_t *precision, uint32_t *codes)
{
    pack_token_word(codes_u8, u_base, t_begin, t_end, d, bits, precision, codes, thread_x());
}

/* S7.4: one warp per token counts its marks (warp < n: token t_begin + warp). */
__device__ __forceinline__ void count_outliers_warp(const uint8_t *mask_u8, uint32_t u_base, uint32_t t_begin,
                                                    uint32_t n, uint32_t d, uint32_t *counts, unsigned long long warp,
                                                    uint32_t lane)
{
    if (warp > n) return;
    if (warp == n) { /* the extra entry makes the exclusive scan's last element the total */
        if (lane == 0) counts[n] = 0;
        return;
    }
    const uint8_t *row = mask_u8 + (size_t)(t_begin + (uint32_t)warp - u_base) * d;
    uint32_t count = 0;
    for (uint32_t c = lane; c < d; c += 32u) count += row[c];
    for (int off = 16; off > 0; off >>= 1) count += __shfl_xor_sync(kFull, count, off);
    if (lane == 0) counts[warp] = count;
}

__global__ void count_outliers_kernel(const uint8_t *mask_u8, uint32_t u_base, uint32_t t_begin, uint32_t n,
                                      uint32_t d, uint32_t *counts)
{
    count_outliers_warp(mask_u8, u_base, t_begin, n, d, counts, thread_x() / 32ull, threadIdx.x & 31u);
}

/* S7.4: one warp per token (token t_begin + warp) writes its outliers in
 * channel order from ochan/oval[base + scan[warp]]. */
__device__ __forceinline__ void fill_outliers_warp(const float *x, uint32_t x_base, const uint8_t *mask_u8,
                                                   uint32_t u_base, uint32_t t_begin, uint32_t n, uint32_t d,
                                                   const uint32_t *scan, uint32_t base, uint16_t *ochan,
                                                   uint16_t *oval, unsigned long long warp, uint32_t lane)
{
    if (warp >= n) return;
    const uint32_t t = t_begin + (uint32_t)warp;
    const uint8_t *row = mask_u8 + (size_t)(t - u_base) * d;
    uint32_t out = base + scan[warp];
    for (uint32_t c0 = 0; c0 < d; c0 += 32u) {
        uint32_t c = c0 + lane;
        bool m = c < d && row[c] != 0;
        unsigned ballot = __ballot_sync(kFull, m);
        if (m) {
            uint32_t k = out + (uint32_t)__popc(ballot & ((1u << lane) - 1u));
            ochan[k] = (uint16_t)c;
            oval[k] = kvq_dev_fp16(x[(size_t)(t - x_base) * d + c]);
        }
        out += (uint32_t)__popc(ballot);
    }
}

__global__ void fill_outliers_kernel(const float *x, uint32_t x_base, const uint8_t *mask_u8, uint32_t u_base,
                                     uint32_t t_begin, uint32_t n, uint32_t d, const uint32_t *scan, uint32_t base,
                                     uint16_t *ochan, uint16_t *oval)
{
    fill_outliers_warp(x, x_base, mask_u8, u_base, t_begin, n, d, scan, base, ochan, oval, thread_x() / 32ull,
                       threadIdx.x & 31u);
}

/* S7.4: entry t_begin + i of optr (i <= ptr_end - t_begin). */
__device__ __forceinline__ void outlier_ptr_entry(const uint32_t *scan, uint32_t t_begin, uint32_t n, uint32_t ptr_end,
                                                  uint32_t base, uint32_t *optr, unsigned long long i)
{
    if (i > (unsigned long long)(ptr_end - t_begin)) return;
    optr[t_begin + (uint32_t)i] = base + scan[i <= n ? i : n];
}

__global__ void outlier_ptr_kernel(const uint32_t *scan, uint32_t t_begin, uint32_t n, uint32_t ptr_end, uint32_t base,
                                   uint32_t *optr)
{
    outlier_ptr_entry(scan, t_begin, n, ptr_end, base, optr, thread_x());
}

/* ---- batched steps: every job of a batch in one launch ------------------- */

constexpr uint32_t kMaxJobsPerLaunch = 65535u; /* gridDim.y */

/* The block's job (blockIdx.y), copied once into shared memory: the steps
 * read its fields, and NUQ thresholds at indices known only at run time, many
 * times. Every thread of the block calls it before any returns. */
__device__ __forceinline__ const kvq_cuda_batch_job &block_job(const kvq_cuda_batch_job *jobs)
{
    static_assert(sizeof(kvq_cuda_batch_job) % 4u == 0u, "the job is copied in 32-bit words");
    __shared__ kvq_cuda_batch_job job;
    const uint32_t *from = reinterpret_cast<const uint32_t *>(&jobs[blockIdx.y]);
    uint32_t *to = reinterpret_cast<uint32_t *>(&job);
    for (uint32_t i = threadIdx.x; i < sizeof job / 4u; i += blockDim.x) to[i] = from[i];
    __syncthreads();
    return job;
}

/* A job's own exclusive scan is the batch's from first_count on, less the
 * entry there. Unsigned arithmetic wraps, so base + own[i] with base =
 * 0 - own[0] is exactly the job's offset, as the single-range kernels compute
 * base + scan[i] with their own scan. */
__device__ __forceinline__ const uint32_t *own_scan(const kvq_cuda_batch_job &j, const uint32_t *scan)
{
    return scan + j.first_count;
}

__global__ void batch_fp16_rows_kernel(const kvq_cuda_batch_job *jobs)
{
    const kvq_cuda_batch_job &j = block_job(jobs);
    if (j.slot == nullptr) return;
    fp16_rows_element(j.x, j.x_base, j.t_begin, j.t_end, j.t_begin, j.head_dim, j.slot, j.rows, j.temp_rows,
                      thread_x());
}

__global__ void batch_quantize_values_kernel(const kvq_cuda_batch_job *jobs)
{
    const kvq_cuda_batch_job &j = block_job(jobs);
    quantize_values_warp(j.x, j.x_base, j.t_begin, j.t_end, j.head_dim, j.group_size, j.outlier_ppm, j.precision, j.q,
                         j.params, j.codes_u8, j.mask_u8, j.u_base, thread_x() / 32ull, threadIdx.x & 31u);
}

__global__ void batch_quantize_keys_calibrated_kernel(const kvq_cuda_batch_job *jobs)
{
    const kvq_cuda_batch_job &j = block_job(jobs);
    quantize_keys_calibrated_element(j.x, j.x_base, j.t_begin, j.t_end, j.head_dim, j.precision, j.q, j.cal_params,
                                     j.cal_ranges, j.codes_u8, j.mask_u8, j.u_base, thread_x());
}

/* blockIdx.x numbers (block of G tokens, chunk of kOnlineBlock channels),
 * channels fastest, from the job's first block t_begin / G. */
__global__ void batch_quantize_keys_online_kernel(const kvq_cuda_batch_job *jobs)
{
    const kvq_cuda_batch_job &j = block_job(jobs);
    const uint32_t G = j.group_size, chunks = (j.head_dim + kOnlineBlock - 1u) / kOnlineBlock;
    const uint32_t b = j.t_begin / G + blockIdx.x / chunks;
    if (b >= j.t_end / G) return;
    quantize_keys_online_channel(j.x, j.x_base, b, blockIdx.x % chunks * kOnlineBlock + threadIdx.x, j.head_dim, G,
                                 j.outlier_ppm, j.precision, j.q, j.params, j.codes_u8, j.mask_u8, j.u_base);
}

__global__ void batch_pack_token_rows_kernel(const kvq_cuda_batch_job *jobs)
{
    const kvq_cuda_batch_job &j = block_job(jobs);
    pack_token_word(j.codes_u8, j.u_base, j.t_begin, j.t_end, j.head_dim, j.q.bits, j.precision, j.codes, thread_x());
}

/* Counts of job j at counts[first_count ..]. The single-range kernel's
 * closing zero at counts[n] would land on the next job's first count, so
 * only the batch's one closing entry is written (*closing, when not NULL). */
__global__ void batch_count_outliers_kernel(const kvq_cuda_batch_job *jobs, uint32_t *counts, uint32_t *closing)
{
    const kvq_cuda_batch_job &j = block_job(jobs);
    if (closing != nullptr && blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) *closing = 0;
    const uint32_t n = j.t_end - j.t_begin;
    const unsigned long long warp = thread_x() / 32ull;
    if (warp < n)
        count_outliers_warp(j.mask_u8, j.u_base, j.t_begin, n, j.head_dim, counts + j.first_count, warp,
                            threadIdx.x & 31u);
}

/* One thread per job: its total is the difference of two scan entries. */
__global__ void batch_totals_kernel(const kvq_cuda_batch_job *jobs, uint32_t n_jobs, const uint32_t *scan,
                                    uint32_t *totals)
{
    const unsigned long long k = thread_x();
    if (k >= n_jobs) return;
    const uint32_t *own = own_scan(jobs[k], scan);
    totals[k] = own[jobs[k].t_end - jobs[k].t_begin] - own[0];
}

__global__ void batch_fill_outliers_kernel(const kvq_cuda_batch_job *jobs, const uint32_t *scan)
{
    const kvq_cuda_batch_job &j = block_job(jobs);
    const uint32_t *own = own_scan(j, scan);
    fill_outliers_warp(j.x, j.x_base, j.mask_u8, j.u_base, j.t_begin, j.t_end - j.t_begin, j.head_dim, own,
                       0u - own[0], j.ochan, j.oval, thread_x() / 32ull, threadIdx.x & 31u);
}

__global__ void batch_outlier_ptr_kernel(const kvq_cuda_batch_job *jobs, const uint32_t *scan)
{
    const kvq_cuda_batch_job &j = block_job(jobs);
    const uint32_t *own = own_scan(j, scan);
    outlier_ptr_entry(own, j.t_begin, j.t_end - j.t_begin, j.t_end, 0u - own[0], j.optr, thread_x());
}

/* Runs launch(grid, chunk, first) over the batch in chunks of at most
 * kMaxJobsPerLaunch jobs (gridDim.y: the job), gridDim.x sized by
 * blocks_of(host job) for the chunk's largest job (at least 1). */
template <typename BlocksOf, typename Launch>
cudaError_t over_jobs(const kvq_cuda_batch_job *jobs, const kvq_cuda_batch_job *jobs_host, uint32_t n_jobs,
                      BlocksOf blocks_of, Launch launch)
{
    for (uint32_t j0 = 0; j0 < n_jobs; j0 += kMaxJobsPerLaunch) {
        const uint32_t m = n_jobs - j0 < kMaxJobsPerLaunch ? n_jobs - j0 : kMaxJobsPerLaunch;
        unsigned grid_x = 1;
        for (uint32_t k = 0; k < m; k++) {
            const unsigned b = blocks_of(jobs_host[j0 + k]);
            if (b > grid_x) grid_x = b;
        }
        launch(dim3(grid_x, m), jobs + j0, j0);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
}

unsigned long long tokens_of(const kvq_cuda_batch_job &j) { return (unsigned long long)(j.t_end - j.t_begin); }

} // namespace

extern "C" cudaError_t kvq_cuda_find_nonfinite(const float *x, size_t n, unsigned long long *first_bad,
                                               cudaStream_t stream)
{
    unsigned long long blocks = ((unsigned long long)n + kBlock - 1) / kBlock;
    unsigned grid = blocks > 4096ull ? 4096u : (blocks == 0 ? 1u : (unsigned)blocks);
    find_nonfinite_kernel<<<grid, kBlock, 0, stream>>>(x, n, first_bad);
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_write_fp16_rows(const float *x, uint32_t x_base, uint32_t t_begin, uint32_t t_end,
                                                uint32_t perm_from, uint32_t head_dim, const uint32_t *slot,
                                                uint16_t *rows, uint16_t *temp_rows, cudaStream_t stream)
{
    if (t_end <= t_begin) return cudaSuccess;
    unsigned long long items = (unsigned long long)(t_end - t_begin) * head_dim;
    fp16_rows_kernel<<<grid_for(items, kBlock), kBlock, 0, stream>>>(x, x_base, t_begin, t_end, perm_from, head_dim,
                                                                      slot, rows, temp_rows);
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_quantize_values(const float *x, uint32_t x_base, uint32_t t_begin, uint32_t t_end,
                                                uint32_t head_dim, uint32_t group_size, uint32_t outlier_ppm,
                                                const uint8_t *precision, const kvq_cuda_quantizer *q,
                                                uint32_t *params, uint8_t *codes_u8, uint8_t *mask_u8,
                                                uint32_t u_base, cudaStream_t stream)
{
    if (t_end <= t_begin) return cudaSuccess;
    unsigned long long threads = (unsigned long long)(t_end - t_begin) * (head_dim / group_size) * 32ull;
    quantize_values_kernel<<<grid_for(threads, kBlock), kBlock, 0, stream>>>(
        x, x_base, t_begin, t_end, head_dim, group_size, outlier_ppm, precision, *q, params, codes_u8, mask_u8,
        u_base);
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_quantize_keys_calibrated(const float *x, uint32_t x_base, uint32_t t_begin,
                                                         uint32_t t_end, uint32_t head_dim, const uint8_t *precision,
                                                         const kvq_cuda_quantizer *q, const uint32_t *params,
                                                         const float *ranges, uint8_t *codes_u8, uint8_t *mask_u8,
                                                         uint32_t u_base, cudaStream_t stream)
{
    if (t_end <= t_begin) return cudaSuccess;
    unsigned long long items = (unsigned long long)(t_end - t_begin) * head_dim;
    quantize_keys_calibrated_kernel<<<grid_for(items, kBlock), kBlock, 0, stream>>>(
        x, x_base, t_begin, t_end, head_dim, precision, *q, params, ranges, codes_u8, mask_u8, u_base);
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_quantize_keys_online(const float *x, uint32_t x_base, uint32_t b_begin,
                                                     uint32_t b_end, uint32_t head_dim, uint32_t group_size,
                                                     uint32_t outlier_ppm, const uint8_t *precision,
                                                     const kvq_cuda_quantizer *q, uint32_t *params,
                                                     uint8_t *codes_u8, uint8_t *mask_u8, uint32_t u_base,
                                                     cudaStream_t stream)
{
    /* gridDim.y is limited to 65535 blocks of tokens per launch. */
    for (uint32_t b = b_begin; b < b_end;) {
        uint32_t chunk = b_end - b < 65535u ? b_end - b : 65535u;
        dim3 grid((head_dim + kOnlineBlock - 1u) / kOnlineBlock, chunk);
        quantize_keys_online_kernel<<<grid, kOnlineBlock, 0, stream>>>(x, x_base, b, head_dim, group_size, outlier_ppm,
                                                               precision, *q, params, codes_u8, mask_u8, u_base);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return err;
        b += chunk;
    }
    return cudaSuccess;
}

extern "C" cudaError_t kvq_cuda_pack_token_rows(const uint8_t *codes_u8, uint32_t u_base, uint32_t t_begin,
                                                uint32_t t_end, uint32_t head_dim, uint32_t bits,
                                                const uint8_t *precision, uint32_t *codes, cudaStream_t stream)
{
    if (t_end <= t_begin) return cudaSuccess;
    unsigned long long items = (unsigned long long)(t_end - t_begin) * (head_dim * bits / 32u);
    pack_token_rows_kernel<<<grid_for(items, kBlock), kBlock, 0, stream>>>(codes_u8, u_base, t_begin, t_end,
                                                                            head_dim, bits, precision, codes);
    return cudaGetLastError();
}

extern "C" size_t kvq_cuda_scan_temp_bytes(uint32_t n)
{
    size_t bytes = 0;
    cub::DeviceScan::ExclusiveSum(nullptr, bytes, (const uint32_t *)nullptr, (uint32_t *)nullptr, (int)n + 1);
    return bytes;
}

extern "C" cudaError_t kvq_cuda_count_outliers_async(const uint8_t *mask_u8, uint32_t u_base, uint32_t t_begin,
                                                     uint32_t t_end, uint32_t head_dim, uint32_t *counts,
                                                     uint32_t *scan, void *temp, size_t temp_bytes,
                                                     uint32_t *total_device, cudaStream_t stream)
{
    uint32_t n = t_end - t_begin;
    unsigned long long threads = ((unsigned long long)n + 1ull) * 32ull;
    count_outliers_kernel<<<grid_for(threads, kBlock), kBlock, 0, stream>>>(mask_u8, u_base, t_begin, n, head_dim,
                                                                             counts);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    err = cub::DeviceScan::ExclusiveSum(temp, temp_bytes, counts, scan, (int)n + 1, stream);
    if (err != cudaSuccess || total_device == NULL) return err;
    return cudaMemcpyAsync(total_device, scan + n, sizeof *total_device, cudaMemcpyDeviceToDevice, stream);
}

extern "C" cudaError_t kvq_cuda_count_outliers(const uint8_t *mask_u8, uint32_t u_base, uint32_t t_begin,
                                               uint32_t t_end, uint32_t head_dim, uint32_t *counts, uint32_t *scan,
                                               void *temp, size_t temp_bytes, uint32_t *total, cudaStream_t stream)
{
    /* The scan's last entry already is the total: no device copy of it needed. */
    cudaError_t err = kvq_cuda_count_outliers_async(mask_u8, u_base, t_begin, t_end, head_dim, counts, scan, temp,
                                                    temp_bytes, NULL, stream);
    if (err != cudaSuccess) return err;
    err = cudaMemcpyAsync(total, scan + (t_end - t_begin), sizeof *total, cudaMemcpyDeviceToHost, stream);
    if (err != cudaSuccess) return err;
    return cudaStreamSynchronize(stream);
}

extern "C" cudaError_t kvq_cuda_fill_outliers(const float *x, uint32_t x_base, const uint8_t *mask_u8,
                                              uint32_t u_base, uint32_t t_begin, uint32_t t_end, uint32_t ptr_end,
                                              uint32_t head_dim, const uint32_t *scan, uint32_t base, uint32_t *optr,
                                              uint16_t *ochan, uint16_t *oval, cudaStream_t stream)
{
    uint32_t n = t_end - t_begin;
    if (n > 0) {
        unsigned long long threads = (unsigned long long)n * 32ull;
        fill_outliers_kernel<<<grid_for(threads, kBlock), kBlock, 0, stream>>>(x, x_base, mask_u8, u_base, t_begin, n,
                                                                                head_dim, scan, base, ochan, oval);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return err;
    }
    unsigned long long entries = (unsigned long long)(ptr_end - t_begin) + 1ull;
    outlier_ptr_kernel<<<grid_for(entries, kBlock), kBlock, 0, stream>>>(scan, t_begin, n, ptr_end, base, optr);
    return cudaGetLastError();
}

/* ---- batched launchers ----------------------------------------------------- */

extern "C" cudaError_t kvq_cuda_batch_write_fp16_rows(const kvq_cuda_batch_job *jobs,
                                                      const kvq_cuda_batch_job *jobs_host, uint32_t n_jobs,
                                                      cudaStream_t stream)
{
    return over_jobs(
        jobs, jobs_host, n_jobs,
        [](const kvq_cuda_batch_job &j) { return j.slot == nullptr ? 1u : grid_for(tokens_of(j) * j.head_dim, kBlock); },
        [&](dim3 grid, const kvq_cuda_batch_job *chunk, uint32_t) {
            batch_fp16_rows_kernel<<<grid, kBlock, 0, stream>>>(chunk);
        });
}

extern "C" cudaError_t kvq_cuda_batch_quantize_values(const kvq_cuda_batch_job *jobs,
                                                      const kvq_cuda_batch_job *jobs_host, uint32_t n_jobs,
                                                      cudaStream_t stream)
{
    return over_jobs(
        jobs, jobs_host, n_jobs,
        [](const kvq_cuda_batch_job &j) {
            return grid_for(tokens_of(j) * (j.head_dim / j.group_size) * 32ull, kBlock);
        },
        [&](dim3 grid, const kvq_cuda_batch_job *chunk, uint32_t) {
            batch_quantize_values_kernel<<<grid, kBlock, 0, stream>>>(chunk);
        });
}

extern "C" cudaError_t kvq_cuda_batch_quantize_keys_calibrated(const kvq_cuda_batch_job *jobs,
                                                               const kvq_cuda_batch_job *jobs_host, uint32_t n_jobs,
                                                               cudaStream_t stream)
{
    return over_jobs(
        jobs, jobs_host, n_jobs, [](const kvq_cuda_batch_job &j) { return grid_for(tokens_of(j) * j.head_dim, kBlock); },
        [&](dim3 grid, const kvq_cuda_batch_job *chunk, uint32_t) {
            batch_quantize_keys_calibrated_kernel<<<grid, kBlock, 0, stream>>>(chunk);
        });
}

extern "C" cudaError_t kvq_cuda_batch_quantize_keys_online(const kvq_cuda_batch_job *jobs,
                                                           const kvq_cuda_batch_job *jobs_host, uint32_t n_jobs,
                                                           cudaStream_t stream)
{
    return over_jobs(
        jobs, jobs_host, n_jobs,
        [](const kvq_cuda_batch_job &j) {
            const unsigned long long token_blocks = j.t_end / j.group_size - j.t_begin / j.group_size;
            return grid_for(token_blocks * ((j.head_dim + kOnlineBlock - 1u) / kOnlineBlock), 1);
        },
        [&](dim3 grid, const kvq_cuda_batch_job *chunk, uint32_t) {
            batch_quantize_keys_online_kernel<<<grid, kOnlineBlock, 0, stream>>>(chunk);
        });
}

extern "C" cudaError_t kvq_cuda_batch_pack_token_rows(const kvq_cuda_batch_job *jobs,
                                                      const kvq_cuda_batch_job *jobs_host, uint32_t n_jobs,
                                                      cudaStream_t stream)
{
    return over_jobs(
        jobs, jobs_host, n_jobs,
        [](const kvq_cuda_batch_job &j) { return grid_for(tokens_of(j) * (j.head_dim * j.q.bits / 32u), kBlock); },
        [&](dim3 grid, const kvq_cuda_batch_job *chunk, uint32_t) {
            batch_pack_token_rows_kernel<<<grid, kBlock, 0, stream>>>(chunk);
        });
}

extern "C" cudaError_t kvq_cuda_batch_count_outliers(const kvq_cuda_batch_job *jobs,
                                                     const kvq_cuda_batch_job *jobs_host, uint32_t n_jobs,
                                                     uint32_t n_counts, uint32_t *counts, uint32_t *scan, void *temp,
                                                     size_t temp_bytes, uint32_t *totals, cudaStream_t stream)
{
    cudaError_t err = over_jobs(
        jobs, jobs_host, n_jobs, [](const kvq_cuda_batch_job &j) { return grid_for(tokens_of(j) * 32ull, kBlock); },
        [&](dim3 grid, const kvq_cuda_batch_job *chunk, uint32_t first) {
            batch_count_outliers_kernel<<<grid, kBlock, 0, stream>>>(chunk, counts,
                                                                      first == 0 ? counts + n_counts : nullptr);
        });
    if (err != cudaSuccess) return err;
    err = cub::DeviceScan::ExclusiveSum(temp, temp_bytes, counts, scan, (int)n_counts + 1, stream);
    if (err != cudaSuccess) return err;
    batch_totals_kernel<<<grid_for(n_jobs, kBlock), kBlock, 0, stream>>>(jobs, n_jobs, scan, totals);
    return cudaGetLastError();
}

extern "C" cudaError_t kvq_cuda_batch_fill_outliers(const kvq_cuda_batch_job *jobs,
                                                    const kvq_cuda_batch_job *jobs_host, uint32_t n_jobs,
                                                    const uint32_t *scan, cudaStream_t stream)
{
    cudaError_t err = over_jobs(
        jobs, jobs_host, n_jobs, [](const kvq_cuda_batch_job &j) { return grid_for(tokens_of(j) * 32ull, kBlock); },
        [&](dim3 grid, const kvq_cuda_batch_job *chunk, uint32_t) {
            batch_fill_outliers_kernel<<<grid, kBlock, 0, stream>>>(chunk, scan);
        });
    if (err != cudaSuccess) return err;
    return over_jobs(
        jobs, jobs_host, n_jobs, [](const kvq_cuda_batch_job &j) { return grid_for(tokens_of(j) + 1ull, kBlock); },
        [&](dim3 grid, const kvq_cuda_batch_job *chunk, uint32_t) {
            batch_outlier_ptr_kernel<<<grid, kBlock, 0, stream>>>(chunk, scan);
        });
}
