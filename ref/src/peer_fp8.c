/*
 * peer_fp8.c - fp8 e4m3 KV cache with a scale (S17.5), as vLLM writes it
 * (csrc/quantization/fp8/nvidia/quant_utils.cuh: __nv_cvt_float_to_fp8(x /
 * scale, __NV_SATFINITE, __NV_E4M3)) and FlashInfer reads it (the scale
 * applied to the logits and the output).
 *
 * e4m3 ("fn": finite, no infinity): sign, 4 exponent bits (bias 7), 3
 * mantissa bits; 0x7F and 0xFF are NaN; the largest finite value is 448;
 * subnormals are m * 2^-9. The conversion rounds to nearest, ties to even,
 * and saturates everything beyond 448 to +-448 (PyTorch's .to(float8_e4m3fn)
 * instead gives NaN from 480 on; the two agree below).
 */
#include "peer_internal.h"

#include <math.h>

static kvq_status fp8_check(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    (void)n;
    if (c->bits != 0 && c->bits != 8)
        return kvq_fail(KVQ_ERR_UNSUPPORTED_BITS, "config.bits = %u: fp8 codes have 8 bits (0 also means that)",
                        c->bits);
    if (c->group_size != 0 || c->residual != 0)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "config.group_size and residual must be 0 for fp8_e4m3 (S17.5)");
    if (!(isfinite(c->scale) && c->scale >= 0x1p-126f))
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT,
                        "config.scale = %g: fp8_e4m3 needs a positive, finite, normal fp32 scale (S17.5)",
                        (double)c->scale);
    if (d > KVQ_MAX_HEAD_DIM)
        return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u is above %u (S1.4)", d, KVQ_MAX_HEAD_DIM);
    return KVQ_OK;
}

static size_t fp8_bytes(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    (void)c;
    return (size_t)n * d;
}

/* The value of an e4m3 magnitude code 0..0x7E (no sign), exact in double. */
static double magnitude_value(uint32_t m)
{
    uint32_t e = m >> 3, f = m & 7u;
    return e == 0 ? ldexp((double)f, -9) : ldexp(1.0 + f / 8.0, (int)e - 7);
}

/* S17.5: round to nearest even, saturate to 448; the result's magnitude code (0..0x7E). */
static uint32_t magnitude_code(double a)
{
    if (a >= 448.0) return 0x7Eu;
    /* the largest code whose value is <= a, then the nearer of it and the next, ties to the even code */
    uint32_t lo = 0, hi = 0x7Eu;
    while (lo < hi) {
        uint32_t mid = (lo + hi + 1) / 2;
        if (magnitude_value(mid) <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (lo == 0x7Eu) return lo;
    double below = magnitude_value(lo), above = magnitude_value(lo + 1), dist_lo = a - below, dist_hi = above - a;
    if (dist_hi < dist_lo || (dist_hi == dist_lo && (lo & 1u))) return lo + 1;
    return lo;
}

static uint8_t encode(float x, float scale, float *u_out)
{
    float u = x / scale; /* one correctly rounded fp32 division */
    *u_out = u;
    uint8_t sign = signbit(u) ? 0x80u : 0x00u;
    return (uint8_t)(sign | magnitude_code(fabs((double)u)));
}

static float decode(uint8_t code) /* exact: e4m3 values are fp32 numbers */
{
    float v = (float)magnitude_value(code & 0x7Fu);
    return code & 0x80u ? -v : v;
}

static void fp8_quantize(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, uint8_t *data)
{
    float u;
    for (size_t i = 0; i < (size_t)n * d; i++) data[i] = encode(x[i], c->scale, &u);
}

static kvq_status fp8_check_data(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d)
{
    (void)c;
    for (size_t i = 0; i < (size_t)n * d; i++)
        if ((data[i] & 0x7Fu) == 0x7Fu)
            return kvq_fail(KVQ_ERR_BAD_ARGUMENT,
                            "data[%zu] (token %zu, channel %zu) = 0x%02X is NaN in e4m3, which the saturating "
                            "conversion never writes (S17.5)",
                            i, i / d, i % d, data[i]);
    return KVQ_OK;
}

static void fp8_dequantize(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, float *out)
{
    for (size_t i = 0; i < (size_t)n * d; i++) out[i] = decode(data[i]) * c->scale; /* one fp32 rounding */
}

static uint32_t fp8_group_count(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    (void)c, (void)n, (void)d;
    return 0; /* the scale is the configuration's */
}

static void fp8_group_at(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, uint32_t g,
                         kvq_peer_group *out)
{
    (void)c, (void)data, (void)n, (void)d, (void)g, (void)out; /* never called: no groups */
}

static void fp8_element_at(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, uint32_t t,
                           uint32_t ch, kvq_peer_element *out)
{
    (void)c, (void)n;
    out->residual = 0;
    out->fp16 = 0;
    out->group = UINT32_MAX;
    out->code = data[(size_t)t * d + ch];
}

/* S17.6: neighbouring e4m3 values of one sign meet at their midpoint, in units of u = x / scale. */
static void fp8_check_code(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, const uint8_t *data,
                           uint32_t t, uint32_t ch, uint32_t got, kvq_peer_code_check *out)
{
    (void)n, (void)data;
    float u;
    uint32_t reference = encode(x[(size_t)t * d + ch], c->scale, &u);
    bool same_sign = got <= 0xFFu && (got & 0x80u) == (reference & 0x80u);
    uint32_t gm = got & 0x7Fu, rm = reference & 0x7Fu;
    bool neighbours = same_sign && gm != 0x7Fu && (gm > rm ? gm - rm : rm - gm) == 1;
    double m = NAN;
    if (neighbours) {
        m = 0.5 * (magnitude_value(gm) + magnitude_value(rm));
        if (reference & 0x80u) m = -m;
    }
    kvq_peer_code_verdict(out, reference, got, neighbours, u, m, 0x1p-20 * fabs(m));
}

/* S17.7: y = code * scale, one product rounded to fp32 (the implementation may round it once more). */
static void fp8_magnitudes(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, const float *y,
                           double *ma, double *mb, bool *rounded)
{
    (void)c, (void)data;
    for (size_t i = 0; i < (size_t)n * d; i++) {
        ma[i] = 0.0;
        mb[i] = fabs((double)y[i]);
    }
    *rounded = false;
}

const peer_ops kvq_peer_fp8_ops = {fp8_check,       fp8_bytes,      NULL,           fp8_quantize,
                                   fp8_check_data,  fp8_dequantize, fp8_group_count, fp8_group_at,
                                   fp8_element_at,  fp8_check_code, NULL,           fp8_magnitudes};
