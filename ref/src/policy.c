/*
 * policy.c - which tokens stay in fp16: sinks (S8) and the modality rule with
 * its budget (S10).
 */
#include "quantize_internal.h"

/* S10.2: text-centric rule, 10% fp16 budget, one sink, no recent window. */
kvq_token_policy kvq_token_policy_default(void)
{
    kvq_token_policy policy;
    policy.rule = KVQ_POLICY_TEXT_CENTRIC;
    policy.budget_ppm = 100000u;
    policy.n_sinks = 1u;
    policy.recent_window = 0u;
    return policy;
}

/* S10.1 */
kvq_status kvq_policy_check(const kvq_token_policy *policy, const char *name)
{
    if (policy == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "%s is NULL", name);
    if (policy->rule != KVQ_POLICY_QUANTIZE_ALL && policy->rule != KVQ_POLICY_TEXT_CENTRIC &&
        policy->rule != KVQ_POLICY_IMAGE_CENTRIC)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "%s.rule = %d is not a kvq_policy_rule", name, (int)policy->rule);
    if (policy->budget_ppm > 1000000u)
        return kvq_fail(KVQ_ERR_BUDGET_RANGE, "%s.budget_ppm = %u exceeds 1000000 (100%%)", name,
                        policy->budget_ppm);
    return KVQ_OK;
}

/* S10.1: modality NULL means every token is an image token, so that a caller
 * with no modality information gets no text preference. */
static uint8_t modality_of(const uint8_t *modality, uint32_t i)
{
    return modality == NULL ? (uint8_t)KVQ_MODALITY_IMAGE : modality[i];
}

/* S10.3: the modality the rule prefers, or -1 for none. */
static int preferred_modality(kvq_policy_rule rule)
{
    switch (rule) {
    case KVQ_POLICY_TEXT_CENTRIC: return KVQ_MODALITY_TEXT;
    case KVQ_POLICY_IMAGE_CENTRIC: return KVQ_MODALITY_IMAGE;
    case KVQ_POLICY_QUANTIZE_ALL: break;
    }
    return -1;
}

/* S10.3 */
kvq_status kvq_token_precision(const kvq_token_policy *policy, const uint8_t *modality, uint32_t n_before,
                               uint32_t hp_before, uint32_t n_new, uint8_t *precision)
{
    /* S13.4 order: NULL pointers, enums, sizes, ranges, input values. */
    if (policy == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "policy is NULL");
    if (precision == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "precision is NULL");
    if (policy->rule != KVQ_POLICY_QUANTIZE_ALL && policy->rule != KVQ_POLICY_TEXT_CENTRIC &&
        policy->rule != KVQ_POLICY_IMAGE_CENTRIC)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "policy.rule = %d is not a kvq_policy_rule", (int)policy->rule);
    if (n_new == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "n_new is 0");
    if ((uint64_t)n_before + n_new > KVQ_MAX_TOKENS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "n_before + n_new = %llu exceeds the limit of %u tokens (S1.4)",
                        (unsigned long long)n_before + n_new, KVQ_MAX_TOKENS);
    if (hp_before > n_before)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "hp_before = %u exceeds n_before = %u", hp_before, n_before);
    kvq_status status = kvq_policy_check(policy, "policy");
    if (status != KVQ_OK) return status;
    for (uint32_t i = 0; i < n_new; i++) {
        uint8_t m = modality_of(modality, i);
        if (m > KVQ_MODALITY_OTHER)
            return kvq_fail(KVQ_ERR_BAD_MODALITY, "modality[%u] = %u is not 0 (text), 1 (image) or 2 (other)", i,
                            (unsigned)m);
    }

    /* S10.3: the allowance covers the whole sequence after this call; tokens
     * chosen earlier already used hp_before of it. Exact 64-bit integers. */
    uint64_t allowance = (uint64_t)policy->budget_ppm * ((uint64_t)n_before + n_new) / 1000000u;
    uint64_t remaining = allowance > hp_before ? allowance - hp_before : 0u;
    int preferred = preferred_modality(policy->rule);

    /* Earliest first: in LLaVA-style prompts the system prompt and the
     * instruction come before the image, and a token's decision never depends
     * on tokens after it beyond the allowance B. */
    for (uint32_t i = 0; i < n_new; i++) {
        uint64_t g = (uint64_t)n_before + i; /* sequence index */
        if (g < policy->n_sinks) {
            precision[i] = KVQ_PREC_SINK; /* S8: sinks never use the budget */
        } else if (preferred >= 0 && modality_of(modality, i) == (uint8_t)preferred && remaining > 0) {
            precision[i] = KVQ_PREC_POLICY;
            remaining--;
        } else {
            precision[i] = KVQ_PREC_QUANTIZED;
        }
    }
    return KVQ_OK;
}

/* S4.1 step 2 after the decisions (kvq_rules.h): S10.4's window, then S4.3's
 * residual blocks, for tokens [start, n_tokens). */
uint32_t kvq_final_precision(const kvq_head_config *config, uint32_t n_tokens, const uint8_t *decided,
                             uint32_t from, uint8_t *precision)
{
    bool online = config->role == KVQ_ROLE_KEYS && config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    uint64_t g = online ? config->group_size : 1u;
    uint32_t start = (uint32_t)(from / g * g);
    /* S10.4: the newest recent_window tokens that would be quantized wait in fp16. */
    uint32_t window = config->policy.recent_window;
    uint32_t first_window = n_tokens > window ? n_tokens - window : 0u;
    for (uint32_t t = start; t < n_tokens; t++) {
        uint8_t p = decided[t];
        if (p == KVQ_PREC_QUANTIZED && t >= first_window) p = KVQ_PREC_WINDOW;
        precision[t] = p;
    }
    if (!online) return start;
    /* S4.3: a key block is quantized only when it is complete and has left the
     * window, because its per-channel range must cover all of its tokens and
     * must never change afterwards. */
    for (uint64_t block = start; block < n_tokens; block += g) {
        uint64_t end = block + g < n_tokens ? block + g : n_tokens;
        bool quantized = block + g <= n_tokens;
        for (uint64_t t = block; t < end; t++)
            if (precision[t] == KVQ_PREC_WINDOW) quantized = false;
        if (quantized) continue;
        for (uint64_t t = block; t < end; t++)
            if (precision[t] == KVQ_PREC_QUANTIZED) precision[t] = KVQ_PREC_RESIDUAL;
    }
    return start;
}
