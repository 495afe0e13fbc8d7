/*
 * host_quantize.h - the host's half of quantize_head for a device backend
 * (S4.1): after the checks (kvq_host_check_quantize, then the input values),
 * the per-token work that is sequential and a few bytes per token is done
 * here once: the policy decisions (S10.3, which also checks the modality
 * bytes), the final precision (S10.4, S4.3), the fp16 slots, the header of
 * the result and calibrated keys' fixed parameters (S4.2). The device then
 * does everything per element from the plan.
 */
#ifndef KVQ_HOST_QUANTIZE_H
#define KVQ_HOST_QUANTIZE_H

#include "host_checks.h"

typedef struct kvq_host_plan {
    kvq_qtensor header;           /* S4.4 scalars of the result, n_fp16_rows set; the device counts n_outliers */
    uint8_t *precision;           /* [n_tokens] final precisions (S4.1 step 2) */
    uint32_t *fp16_slot;          /* [n_tokens] rows of the fp16 tokens in token order, UINT32_MAX otherwise */
    kvq_group_params *calibrated; /* calibrated keys: [head_dim] parameters from the channel ranges; else NULL */
} kvq_host_plan;

/* The plan of kvq_quantize_head(config, ., n_tokens, head_dim, modality) for a
 * call that passed its checks: fails with KVQ_ERR_BAD_MODALITY (S4.1 check
 * 12) or KVQ_ERR_OUT_OF_MEMORY, *plan then holding nothing. */
kvq_status kvq_host_plan_quantize(kvq_host_error *e, const kvq_head_config *config, uint32_t n_tokens,
                                  uint32_t head_dim, const uint8_t *modality, kvq_host_plan *plan);
/* The same from decisions already taken (decided[n_tokens], S10.3). */
kvq_status kvq_host_plan_decided(kvq_host_error *e, const kvq_head_config *config, uint32_t n_tokens,
                                 uint32_t head_dim, const uint8_t *decided, kvq_host_plan *plan);
void kvq_host_plan_free(kvq_host_plan *plan);

/* S4.1 step 3: slot[i] for tokens i < n of the given precisions, the fp16 ones
 * numbered first_row, first_row + 1, ... in token order, UINT32_MAX for
 * QUANTIZED ones; returns how many are fp16. */
uint32_t kvq_host_fp16_slots(const uint8_t *precision, uint32_t n, uint32_t first_row, uint32_t *slot);
/* S4.2: calibrated keys' fixed parameters params[head_dim], one pair per channel from its range. */
void kvq_host_calibrated_params(const kvq_head_config *config, uint32_t head_dim, kvq_group_params *params);

#endif
