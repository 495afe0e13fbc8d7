/*
 * rope.c - rotary position embedding (S9).
 *
 * kvq stores keys before RoPE (KVQuant's pre-RoPE key quantization: the
 * per-channel structure that makes keys easy to quantize is destroyed by the
 * rotation). RoPE is applied at attention time to dequantized keys and to the
 * query, so its cos/sin must be accurate at any position up to 2^31 - 1.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* 2*pi rounded to double (0x1.921fb54442d18p+2); the reduction error this
 * causes is below the angle's own error (S9.3). */
static const double two_pi = 6.283185307179586;

/* S9.1: elements (first, second) of pair i under the pairing. */
static void pair_elements(kvq_rope_pairing pairing, uint32_t head_dim, uint32_t i, uint32_t *first, uint32_t *second)
{
    if (pairing == KVQ_ROPE_INTERLEAVED) {
        *first = 2u * i;
        *second = 2u * i + 1u;
    } else { /* KVQ_ROPE_HALF */
        *first = i;
        *second = i + head_dim / 2u;
    }
}

/* S9.2, S9.3: theta_i = base^(-2i/d), angle = position * theta_i, both in
 * double; the angle is reduced modulo 2*pi (fmod is exact) and cos/sin are
 * taken in double and rounded once to fp32. Preconditions as kvq_rope_apply;
 * arguments it cannot use give the identity rotation (cos 1, sin 0). */
void kvq_rope_angle(const kvq_rope *rope, uint32_t head_dim, uint32_t pair, uint32_t position, float *cos_out,
                    float *sin_out)
{
    if (cos_out == NULL || sin_out == NULL) return;
    *cos_out = 1.0f;
    *sin_out = 0.0f;
    if (rope == NULL || head_dim == 0 || pair >= head_dim / 2u || !(rope->base > 1.0f)) return;
    double theta = pow((double)rope->base, -2.0 * (double)pair / (double)head_dim);
    double angle = fmod((double)position * theta, two_pi);
    *cos_out = (float)cos(angle);
    *sin_out = (float)sin(angle);
}

/* S9.1: the checks shared by every RoPE entry point (also used by S11). */
kvq_status kvq_rope_check(const kvq_rope *rope, uint32_t head_dim)
{
    if (rope->pairing != KVQ_ROPE_NONE && rope->pairing != KVQ_ROPE_HALF && rope->pairing != KVQ_ROPE_INTERLEAVED)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "rope.pairing = %d is not a kvq_rope_pairing", (int)rope->pairing);
    if (head_dim == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "head_dim is 0");
    if (head_dim > KVQ_MAX_HEAD_DIM)
        return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u is above the limit %u (S1.4)", head_dim,
                        KVQ_MAX_HEAD_DIM);
    if (rope->pairing != KVQ_ROPE_NONE && head_dim % 2u != 0)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "head_dim = %u is odd; RoPE rotates pairs of channels", head_dim);
    if (!isfinite(rope->base) || !(rope->base > 1.0f))
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "rope.base = %g must be a finite number above 1", (double)rope->base);
    return KVQ_OK;
}

/* S9.4: out_a = x_a cos - x_b sin, out_b = x_a sin + x_b cos. The products
 * of fp32 numbers are exact in double, so each output has one double rounding
 * in the sum and one rounding to fp32. */
kvq_status kvq_rope_apply(const kvq_rope *rope, uint32_t head_dim, uint32_t position, const float *in, float *out)
{
    if (rope == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "rope is NULL");
    if (in == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "in is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status st = kvq_rope_check(rope, head_dim);
    if (st != KVQ_OK) return st;
    if (position > KVQ_MAX_POSITION)
        return kvq_fail(KVQ_ERR_BAD_POSITION, "position = %u is above %u", position, KVQ_MAX_POSITION);
    st = kvq_check_finite(in, head_dim, "in");
    if (st != KVQ_OK) return st;
    kvq_rope_rotate(rope, head_dim, position, in, out);
    return KVQ_OK;
}

/* S9.4 without the checks of kvq_rope_apply (see internal.h). */
void kvq_rope_rotate(const kvq_rope *rope, uint32_t head_dim, uint32_t position, const float *in, float *out)
{
    if (rope->pairing == KVQ_ROPE_NONE) {
        memmove(out, in, (size_t)head_dim * sizeof *out);
        return;
    }
    for (uint32_t i = 0; i < head_dim / 2u; i++) {
        uint32_t ia, ib;
        pair_elements(rope->pairing, head_dim, i, &ia, &ib);
        float c, s;
        kvq_rope_angle(rope, head_dim, i, position, &c, &s);
        double xa = (double)in[ia], xb = (double)in[ib]; /* read both before writing: in may alias out */
        out[ia] = (float)(xa * (double)c - xb * (double)s);
        out[ib] = (float)(xa * (double)s + xb * (double)c);
    }
}
