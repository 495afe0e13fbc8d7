/*
 * quantizer.c - one group of numbers to codes and back (S3 uniform, S6.3-S6.5 NUQ).
 *
 * Every group stores two fp16 numbers (a, b). Codes are found by comparing x
 * with decision thresholds, never by dividing, so that every IEEE-754 machine
 * computes the same code (S3.4).
 */
#include "internal.h"

#include <math.h>

/* S3.2: R[bits] = fl32(1 / (2^bits - 1)), the asymmetric step per unit of range. */
static float asym_step_factor(uint32_t bits)
{
    switch (bits) {
    case 2: return 0x1.555556p-2f;  /* 1/3 */
    case 3: return 0x1.24924ap-3f;  /* 1/7 */
    case 4: return 0x1.111112p-4f;  /* 1/15 */
    default: return 0x1.010102p-8f; /* 1/255 */
    }
}

/* S3.3: RS[bits] = fl32(1 / (2^(bits-1) - 1)), the symmetric step per unit of absmax. */
static float sym_step_factor(uint32_t bits)
{
    switch (bits) {
    case 2: return 1.0f;            /* 1/1 */
    case 3: return 0x1.555556p-2f;  /* 1/3 */
    case 4: return 0x1.24924ap-3f;  /* 1/7 */
    default: return 0x1.020408p-7f; /* 1/127 */
    }
}

/* Codes of the symmetric scheme are stored with this offset: code k means k - 2^(bits-1). */
static float sym_offset(uint32_t bits) { return (float)(1u << (bits - 1u)); }

static kvq_status check_codebook(const kvq_codebook *cb, uint32_t bits)
{
    if (cb == NULL) return kvq_fail(KVQ_ERR_BAD_CODEBOOK, "quantizer.codebook is NULL but the scheme is NUQ");
    if (cb->bits != bits)
        return kvq_fail(KVQ_ERR_BAD_CODEBOOK, "quantizer.codebook has %u bits but quantizer.bits is %u", cb->bits,
                        bits);
    uint32_t levels = kvq_levels(bits);
    for (uint32_t j = 0; j < levels; j++) {
        float s = cb->signpost[j];
        if (!(s >= -1.0f && s <= 1.0f))
            return kvq_fail(KVQ_ERR_BAD_CODEBOOK, "codebook.signpost[%u] = %g is not within [-1, 1]", j, (double)s);
        if (j > 0 && s < cb->signpost[j - 1])
            return kvq_fail(KVQ_ERR_BAD_CODEBOOK, "codebook.signpost[%u] = %g is below signpost[%u] = %g", j,
                            (double)s, j - 1, (double)cb->signpost[j - 1]);
    }
    for (uint32_t j = 0; j + 1 < levels; j++) {
        /* S6.2: the threshold must be the one computed from the signposts, bit for bit. */
        float expected = (float)(0.5 * ((double)cb->signpost[j] + (double)cb->signpost[j + 1]));
        if (cb->threshold[j] != expected)
            return kvq_fail(KVQ_ERR_BAD_CODEBOOK, "codebook.threshold[%u] = %a, expected %a (S6.2)", j,
                            (double)cb->threshold[j], (double)expected);
    }
    return KVQ_OK;
}

/* S3.1, S6: the (scheme, bits) pairs kvq supports. */
kvq_status kvq_quantizer_check(const kvq_quantizer *q)
{
    if (q == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "quantizer is NULL");
    switch (q->scheme) {
    case KVQ_SCHEME_UNIFORM_ASYM:
    case KVQ_SCHEME_UNIFORM_SYM:
        if (q->bits != 2 && q->bits != 3 && q->bits != 4 && q->bits != 8)
            return kvq_fail(KVQ_ERR_UNSUPPORTED_BITS,
                            "quantizer.bits = %u is not supported by uniform quantization (use 2, 3, 4 or 8)",
                            q->bits);
        return KVQ_OK;
    case KVQ_SCHEME_NUQ:
        if (q->bits != 2 && q->bits != 3 && q->bits != 4)
            return kvq_fail(KVQ_ERR_UNSUPPORTED_BITS, "quantizer.bits = %u is not supported by NUQ (use 2, 3 or 4)",
                            q->bits);
        return check_codebook(q->codebook, q->bits);
    }
    return kvq_fail(KVQ_ERR_BAD_ENUM, "quantizer.scheme = %d is not a kvq_scheme", (int)q->scheme);
}

/* S3.2, S3.3, S6.3. Requires min <= max, both within the fp16 range. */
kvq_group_params kvq_group_params_from_range(const kvq_quantizer *q, float min, float max)
{
    kvq_group_params p = {0, 0};
    switch (q->scheme) {
    case KVQ_SCHEME_UNIFORM_ASYM: {
        /* a rounds down and b rounds up, so [a, a + (L-1) b] covers [min, max] (S3.2). */
        p.a = kvq_fp16_round_down(min);
        float a = kvq_fp32_from_fp16(p.a);
        p.b = kvq_fp16_round_up((max - a) * asym_step_factor(q->bits));
        break;
    }
    case KVQ_SCHEME_UNIFORM_SYM: {
        float absmax = fmaxf(fabsf(min), fabsf(max));
        p.a = 0;
        p.b = kvq_fp16_round_up(absmax * sym_step_factor(q->bits));
        break;
    }
    case KVQ_SCHEME_NUQ: {
        /* The halvings are exact, so the centre is rounded once to fp32, then to fp16. */
        p.a = kvq_fp16_from_fp32(0.5f * max + 0.5f * min);
        float a = kvq_fp32_from_fp16(p.a);
        p.b = kvq_fp16_round_up(fmaxf(max - a, a - min));
        break;
    }
    }
    return p;
}

/* S3.4, S6.4: threshold k separates code k-1 from code k. */
float kvq_decision_threshold(const kvq_quantizer *q, kvq_group_params p, uint32_t k)
{
    float a = kvq_fp32_from_fp16(p.a);
    float b = kvq_fp32_from_fp16(p.b);
    switch (q->scheme) {
    case KVQ_SCHEME_UNIFORM_ASYM:
        return a + ((float)k - 0.5f) * b; /* the product is exact; one rounding in the sum */
    case KVQ_SCHEME_UNIFORM_SYM:
        return ((float)k - 0.5f - sym_offset(q->bits)) * b; /* exact */
    case KVQ_SCHEME_NUQ:
        return fmaf(b, q->codebook->threshold[k - 1u], a); /* one rounding */
    }
    return 0.0f;
}

/* S3.4, S6.4: the code is the number of thresholds at or below x. The
 * thresholds never decrease with k, so counting stops at the first one above x.
 * A tie (x equal to a threshold) counts, i.e. goes to the upper code. */
uint32_t kvq_encode(const kvq_quantizer *q, kvq_group_params p, float x)
{
    uint32_t levels = kvq_levels(q->bits);
    uint32_t code = 0;
    for (uint32_t k = 1; k < levels; k++) {
        if (x >= kvq_decision_threshold(q, p, k))
            code = k;
        else
            break;
    }
    return code;
}

/* S3.5, S6.5 */
float kvq_decode(const kvq_quantizer *q, kvq_group_params p, uint32_t code)
{
    float a = kvq_fp32_from_fp16(p.a);
    float b = kvq_fp32_from_fp16(p.b);
    switch (q->scheme) {
    case KVQ_SCHEME_UNIFORM_ASYM:
        return a + (float)code * b; /* code * b is exact (at most 8 + 11 significant bits) */
    case KVQ_SCHEME_UNIFORM_SYM:
        return ((float)code - sym_offset(q->bits)) * b; /* exact */
    case KVQ_SCHEME_NUQ:
        return fmaf(b, q->codebook->signpost[code], a);
    }
    return 0.0f;
}
