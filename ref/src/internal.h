/*
 * internal.h - helpers shared by the reference's source files; not installed.
 */
#ifndef KVQ_INTERNAL_H
#define KVQ_INTERNAL_H

#include "kvq/kvq.h"

#include <stdbool.h>

/* Record `status` with a printf-style message naming the argument and what is
 * wrong with it (S13.2), and return `status`. Use as `return kvq_fail(...)`. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
kvq_status kvq_fail(kvq_status status, const char *format, ...);

/* Clear the calling thread's last error message (on success paths that want it). */
void kvq_clear_error(void);

/* S1.3: true when x is finite and |x| <= 65504. */
bool kvq_in_fp16_range(float x);

/* S1.3: check n floats; on failure record KVQ_ERR_NONFINITE_INPUT naming
 * `argument` and the first bad index. */
kvq_status kvq_check_finite(const float *x, size_t n, const char *argument);

/* Number of levels L = 2^bits. */
static inline uint32_t kvq_levels(uint32_t bits) { return 1u << bits; }

#endif /* KVQ_INTERNAL_H */
