/*
 * test_rng.h - random test inputs from the project's own generator (S14.1), not libc rand():
 * rand() differs between C libraries (and is shared state), so a case that fails on one machine
 * could not be replayed on another. With kvq_rng every platform runs the same inputs.
 */
#ifndef KVQ_TESTS_TEST_RNG_H
#define KVQ_TESTS_TEST_RNG_H

#include "kvq/kvq.h"

#include <stdint.h>

/* An integer in [0, n), n > 0. The modulo bias is below n / 2^64: nothing a test can see. */
static inline uint32_t test_rng_below(kvq_rng *rng, uint32_t n) { return (uint32_t)(kvq_rng_next_u64(rng) % n); }

/* A float in [lo, hi) (S14.2's uniform, scaled). */
static inline float test_rng_between(kvq_rng *rng, float lo, float hi)
{
    return lo + (hi - lo) * kvq_rng_uniform(rng);
}

#endif
