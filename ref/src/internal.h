/*
 * internal.h - helpers shared by the reference's source files; not installed.
 */
#ifndef KVQ_INTERNAL_H
#define KVQ_INTERNAL_H

#include "kvq/kvq.h"
#include "kvq/kvq_rules.h" /* the host rules this library exports */

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

/* Number of levels L = 2^bits. */
static inline uint32_t kvq_levels(uint32_t bits) { return 1u << bits; }

/* S9.4 for a rope kvq_rope_check accepted and a finite input: what kvq_rope_apply does after its
 * checks. Attention rotates dequantized keys with it: they are finite (S4.4) but may lie just
 * beyond 65504 (S3.2 rounds the step up), which S1.3's input check would refuse (S11.2). */
void kvq_rope_rotate(const kvq_rope *rope, uint32_t head_dim, uint32_t position, const float *in, float *out);

/* S11.1-S11.3: the exact quantities of decode attention, shared by
 * kvq_attention_decode and kvq_attention_error_bound (S12.3). */
typedef struct kvq_attention_work {
    uint32_t n_tokens, head_dim, n_q;
    float *key_raw;  /* [n_tokens][head_dim] dequantized keys, before RoPE */
    float *key;      /* [n_tokens][head_dim] keys after RoPE */
    float *value;    /* [n_tokens][head_dim] dequantized values */
    float *query;    /* [n_q][head_dim] queries after RoPE */
    double *score;   /* [n_q][n_tokens] scaled scores */
    double *weight;  /* [n_q][n_tokens] softmax weights */
} kvq_attention_work;
/* Validates everything (S11.1; `out` / `out_name` is the caller's output) and
 * fills *work; on failure nothing is allocated. */
kvq_status kvq_attention_prepare(const kvq_qtensor *keys, const kvq_qtensor *values, const uint32_t *key_positions,
                                 const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                                 const void *out, const char *out_name, kvq_attention_work *work);
void kvq_attention_work_free(kvq_attention_work *work);
/* S11.2-S11.3 from dequantized keys and values (arrays of n * d floats that
 * *work takes over, freed with it, also on failure); key_positions may be
 * NULL when rope is NULL or NONE (post-RoPE keys, S17.7). The arguments were
 * checked by the caller. */
kvq_status kvq_attention_prepare_dense(float *key_raw, float *value, uint32_t n_tokens, uint32_t head_dim,
                                       const uint32_t *key_positions, const kvq_rope *rope, const float *q,
                                       uint32_t n_q, uint32_t q_position, kvq_attention_work *work);
/* S11.4: out[n_q][d] = fl32(sum_t p_t v_t), in double. */
void kvq_attention_output(const kvq_attention_work *work, float *out);
/* S12.3 (fp32) or S12.4: the bound from the work and, for the 16-bit
 * profiles, the element magnitudes (ma arrays overwritten; unused at fp32). */
kvq_status kvq_attention_bound_dense(const kvq_attention_work *w, double *k_ma, const double *k_mb, bool k_nuq,
                                     double *v_ma, const double *v_mb, bool v_nuq, const uint32_t *key_positions,
                                     const kvq_rope *rope, const float *q, uint32_t q_position,
                                     kvq_attention_profile profile, float *bound);

/* S4.4: qt is consistent (every rule S4.5 lists, and the finite-values rule);
 * check_slots: also fp16_slot, which the .kvqz writer ignores (it is not
 * stored, S16.5). The one checker dequantization, attention and the .kvqz
 * reader and writer share. */
kvq_status kvq_qtensor_check(const kvq_qtensor *qt, bool check_slots);

/* S12.4: per element of a valid qtensor ([n_tokens][head_dim] each), ma =
 * |a_f| and mb = |b_f * dec(k)| for decoded elements; ma = -1 (mb = 0) for
 * elements stored in fp16. */
kvq_status kvq_dequantize_term_magnitudes(const kvq_qtensor *qt, double *ma, double *mb);

#endif /* KVQ_INTERNAL_H */
