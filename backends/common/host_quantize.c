/*
 * host_quantize.c - see host_quantize.h.
 */
#include "host_quantize.h"

#include <stdlib.h>
#include <string.h>

uint32_t kvq_host_fp16_slots(const uint8_t *precision, uint32_t n, uint32_t first_row, uint32_t *slot)
{
    uint32_t rows = 0;
    for (uint32_t i = 0; i < n; i++) slot[i] = precision[i] == KVQ_PREC_QUANTIZED ? UINT32_MAX : first_row + rows++;
    return rows;
}

void kvq_host_calibrated_params(const kvq_head_config *config, uint32_t head_dim, kvq_group_params *params)
{
    for (uint32_t c = 0; c < head_dim; c++)
        params[c] = kvq_group_params_from_range(&config->quantizer, config->channel_range[c].lo,
                                                config->channel_range[c].hi);
}

void kvq_host_plan_free(kvq_host_plan *plan)
{
    free(plan->precision);
    free(plan->fp16_slot);
    free(plan->calibrated);
    memset(plan, 0, sizeof *plan);
}

kvq_status kvq_host_plan_decided(kvq_host_error *e, const kvq_head_config *config, uint32_t n_tokens,
                                 uint32_t head_dim, const uint8_t *decided, kvq_host_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    bool calibrated = config->role == KVQ_ROLE_KEYS && config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    plan->precision = malloc(n_tokens);
    plan->fp16_slot = malloc((size_t)n_tokens * sizeof *plan->fp16_slot);
    if (calibrated) plan->calibrated = malloc((size_t)head_dim * sizeof *plan->calibrated);
    if (plan->precision == NULL || plan->fp16_slot == NULL || (calibrated && plan->calibrated == NULL)) {
        kvq_host_plan_free(plan);
        return kvq_host_fail(e, KVQ_ERR_OUT_OF_MEMORY, "out of host memory planning a head slice of %u x %u",
                             n_tokens, head_dim);
    }
    kvq_final_precision(config, n_tokens, decided, 0, plan->precision);
    kvq_qtensor_header_for(config, n_tokens, head_dim, &plan->header);
    plan->header.n_fp16_rows = kvq_host_fp16_slots(plan->precision, n_tokens, 0, plan->fp16_slot);
    if (calibrated) kvq_host_calibrated_params(config, head_dim, plan->calibrated);
    return KVQ_OK;
}

kvq_status kvq_host_plan_quantize(kvq_host_error *e, const kvq_head_config *config, uint32_t n_tokens,
                                  uint32_t head_dim, const uint8_t *modality, kvq_host_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    uint8_t *decided = malloc(n_tokens);
    if (decided == NULL)
        return kvq_host_fail(e, KVQ_ERR_OUT_OF_MEMORY, "out of host memory for %u token decisions", n_tokens);
    /* S10.3 over the whole slice: n_before = hp_before = 0; it also checks the modality bytes. */
    kvq_status status = kvq_host_from_kvq(e, kvq_token_precision(&config->policy, modality, 0, 0, n_tokens, decided));
    if (status == KVQ_OK) status = kvq_host_plan_decided(e, config, n_tokens, head_dim, decided, plan);
    free(decided);
    return status;
}
