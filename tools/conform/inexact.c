/*
 * inexact.c - inputs moved off the fp16 grid (inexact.h).
 */
#include "inexact.h"

#include "kvq/kvq.h"

/* The fp16 neighbour of pattern h towards +infinity (up) or -infinity. */
static uint16_t neighbour(uint16_t h, int up)
{
    if (up) return h == 0x8000u ? 0x0001u : (h & 0x8000u) ? (uint16_t)(h - 1u) : (uint16_t)(h + 1u);
    return h == 0x0000u ? 0x8001u : (h & 0x8000u) ? (uint16_t)(h + 1u) : (uint16_t)(h - 1u);
}

static int finite16(uint16_t h) { return (h & 0x7C00u) != 0x7C00u; }

void conform_inexact(float *x, size_t n, uint64_t seed)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = kvq_rng_next_u64(&rng);
        uint16_t h = kvq_fp16_from_fp32(x[i]);
        int up = (int)(r & 1u);
        uint16_t other = neighbour(h, up);
        if (!finite16(other)) other = neighbour(h, !up); /* 65504 moves down, -65504 up */
        /* k / 4096 of the gap: half of it for a quarter of the elements, else any other fraction */
        uint32_t k = (r >> 1 & 3u) == 0 ? 2048u : 1u + (uint32_t)((r >> 8) % 4094u);
        if (k >= 2048u && (r >> 1 & 3u) != 0) k++; /* 1 .. 2047, 2049 .. 4095 */
        /* Both ends are fp16 (11 significant bits); the point k/4096 of the way
         * needs at most 23, so the double below is exact and so is its fp32. */
        double a = (double)kvq_fp32_from_fp16(h), b = (double)kvq_fp32_from_fp16(other);
        x[i] = (float)(a + (b - a) * ((double)k / 4096.0));
    }
}
