/*
 * tolerance.c - class B of the tolerance classes (S12.2): when a code that
 * differs from the reference's is still acceptable.
 */
#include "internal.h"

#include <math.h>

/* S12.2: an implementation that divides instead of comparing with thresholds
 * may land one code away, but only when x is within a few roundings of the
 * threshold T between the two codes: |x - T| <= 2^-12 b + 2^-22 |T|. */
int kvq_code_accepted(const kvq_quantizer *q, kvq_group_params p, float x, uint32_t expected, uint32_t got)
{
    if (got == expected) return 1;
    uint32_t upper = got > expected ? got : expected;
    uint32_t lower = got > expected ? expected : got;
    if (upper - lower != 1) return 0;
    double threshold = kvq_decision_threshold(q, p, upper);
    double step = kvq_fp32_from_fp16(p.b);
    double window = ldexp(step, -12) + ldexp(fabs(threshold), -22);
    return fabs((double)x - threshold) <= window;
}
