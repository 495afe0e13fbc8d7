/*
 * quantize_internal.h - functions shared by quantize_head.c, cache.c and
 * policy.c; not installed.
 */
#ifndef KVQ_QUANTIZE_INTERNAL_H
#define KVQ_QUANTIZE_INTERNAL_H

#include "internal.h"

/* S10.1: validate a token policy (NULL, rule enum, budget range). `name` is
 * the argument name used in messages, e.g. "policy" or "config.policy". */
kvq_status kvq_policy_check(const kvq_token_policy *policy, const char *name);

/* The checks of a head configuration (kvq_head_config_check_enums, _check,
 * _check_counts) are exported: kvq_rules.h. */

/* S4.1 steps 2-7: quantize x[n_tokens][head_dim] given each token's policy
 * decision decided[t] (KVQ_PREC_QUANTIZED, _SINK or _POLICY, from S10.3).
 * Applies the recent window (S10.4) and, for online keys, the residual rule
 * (S4.3) over the whole slice. The caller has validated every argument; the
 * only possible failure is KVQ_ERR_OUT_OF_MEMORY, and *out is then untouched. */
kvq_status kvq_quantize_head_decided(const kvq_head_config *config, const float *x, uint32_t n_tokens,
                                     uint32_t head_dim, const uint8_t *decided, kvq_qtensor **out);

#endif /* KVQ_QUANTIZE_INTERNAL_H */
