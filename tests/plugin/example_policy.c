/*
 * example_policy.c - which tokens of a head slice stay in fp16, and why (S8, S10, S4.3).
 *
 * Precedence (S10.5): SINK > POLICY > WINDOW > RESIDUAL > QUANTIZED. The three
 * steps below apply them in that order, each one touching only tokens that
 * are still QUANTIZED.
 */
#include "example.h"

kvq_status ex_check_policy(ex_error *err, const kvq_token_policy *policy, const char *name)
{
    if (policy->rule != KVQ_POLICY_QUANTIZE_ALL && policy->rule != KVQ_POLICY_TEXT_CENTRIC &&
        policy->rule != KVQ_POLICY_IMAGE_CENTRIC)
        return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s.rule = %d is not a kvq_policy_rule", name, (int)policy->rule);
    if (policy->budget_ppm > 1000000u)
        return ex_fail(err, KVQ_ERR_BUDGET_RANGE, "%s.budget_ppm = %u exceeds 1000000 (100%%)", name,
                       policy->budget_ppm);
    return KVQ_OK;
}

/* S10.3: tokens n_before .. n_before + n_new - 1 of a sequence whose first
 * n_before tokens had hp_before POLICY decisions: sinks, then the preferred
 * modality while the budget of the whole sequence so far lasts, earliest
 * tokens first. modality[i] is token n_before + i's. */
void ex_decide(const kvq_token_policy *policy, const uint8_t *modality, uint32_t n_before, uint32_t hp_before,
               uint32_t n_new, uint8_t *decided)
{
    uint64_t budget = (uint64_t)policy->budget_ppm * ((uint64_t)n_before + n_new) / 1000000u; /* B, exact */
    uint64_t remaining = budget > hp_before ? budget - hp_before : 0u;
    int preferred = policy->rule == KVQ_POLICY_TEXT_CENTRIC    ? KVQ_MODALITY_TEXT
                    : policy->rule == KVQ_POLICY_IMAGE_CENTRIC ? KVQ_MODALITY_IMAGE
                                                               : -1;
    for (uint32_t i = 0; i < n_new; i++) {
        /* S10.1: without modality bytes every token is an image token. */
        int m = modality != NULL ? modality[i] : KVQ_MODALITY_IMAGE;
        if ((uint64_t)n_before + i < policy->n_sinks) {
#if KVQ_PLUGIN_BREAK == EX_BREAK_SINK
            /* BUG (kvq_plugin_broken_sink): the sink is recognised but then
             * quantized like any other token. S8.1: a sink is always fp16. */
            decided[i] = KVQ_PREC_QUANTIZED;
#else
            decided[i] = KVQ_PREC_SINK; /* S8: sinks do not use the budget */
#endif
        } else if (m == preferred && remaining > 0) {
            decided[i] = KVQ_PREC_POLICY;
            remaining--;
        } else {
            decided[i] = KVQ_PREC_QUANTIZED;
        }
    }
}

void ex_final_precision(const kvq_head_config *config, const uint8_t *decided, uint32_t n, uint8_t *precision)
{
    for (uint32_t t = 0; t < n; t++) precision[t] = decided[t];

    /* S10.4: of the newest recent_window tokens (by index, t >= n - window),
     * those that would be quantized wait in fp16. */
    uint32_t window = config->policy.recent_window;
    for (uint32_t t = n > window ? n - window : 0u; t < n; t++)
        if (precision[t] == KVQ_PREC_QUANTIZED) precision[t] = KVQ_PREC_WINDOW;

    /* S4.3: an online key block is quantized only when it is complete and none
     * of its tokens is in the window; otherwise its would-be quantized tokens
     * are RESIDUAL. */
    if (config->role != KVQ_ROLE_KEYS || config->key_mode != KVQ_KEYS_PER_CHANNEL_ONLINE) return;
    uint64_t g = config->group_size; /* 64 bits: start + g cannot wrap */
    for (uint64_t start = 0; start < n; start += g) {
        uint64_t end = start + g < n ? start + g : n;
        bool quantized = start + g <= n;
        for (uint64_t t = start; t < end; t++)
            if (precision[t] == KVQ_PREC_WINDOW) quantized = false;
        if (quantized) continue;
        for (uint64_t t = start; t < end; t++)
            if (precision[t] == KVQ_PREC_QUANTIZED) precision[t] = KVQ_PREC_RESIDUAL;
    }
}
