/*
 * prng.c - the deterministic generator of conformance inputs (S14.1, S14.2).
 *
 * SplitMix64 needs only 64-bit integer adds, xors, shifts and multiplies, so
 * every C11 compiler on every machine produces the same stream. Floats are
 * made from the integers with exact operations only; no libm function (log,
 * cos, sqrt) is used because libm results differ in the last ulp between
 * platforms, and one ulp is enough to change a code or a checksum.
 */
#include "internal.h"

/* S14.1: the state is the seed itself. */
void kvq_rng_seed(kvq_rng *rng, uint64_t seed) { rng->state = seed; }

/* S14.1: SplitMix64. Unsigned arithmetic wraps modulo 2^64, as C guarantees. */
uint64_t kvq_rng_next_u64(kvq_rng *rng)
{
    rng->state += 0x9E3779B97F4A7C15u;
    uint64_t z = rng->state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* S14.2: the top 24 bits scaled by 2^-24. Both steps are exact in fp32: an
 * integer below 2^24 converts exactly and a power-of-two scale only moves the
 * exponent. */
float kvq_rng_uniform(kvq_rng *rng)
{
    uint32_t top = (uint32_t)(kvq_rng_next_u64(rng) >> 40);
    return (float)top * 0x1p-24f;
}

/* S14.2: Irwin-Hall with 12 terms. The sum of 12 uniforms on [0, 1) has mean
 * 6 and variance 1, so sum - 6 is close to N(0, 1) (it lies in [-6, 6)). The
 * sum is formed exactly in integers; the one rounding is the conversion of
 * the integer S - 6*2^24 (|.| < 2^27) to fp32, and the 2^-24 scale is exact. */
float kvq_rng_normal(kvq_rng *rng)
{
    uint64_t sum = 0;
    for (int i = 0; i < 12; i++) sum += kvq_rng_next_u64(rng) >> 40;
    int64_t centred = (int64_t)sum - (int64_t)6 * (int64_t)(1u << 24);
    return (float)centred * 0x1p-24f;
}
