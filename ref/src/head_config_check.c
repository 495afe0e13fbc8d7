/*
 * head_config_check.c - S4.1 step 1: the checks of a head configuration and
 * of a call to kvq_quantize_head, in the order S13.4 fixes. Exported
 * (kvq_rules.h) so that every backend refuses the same calls with the same
 * status and message.
 */
#include "quantize_internal.h"

#include <stdio.h>

/* S4.1 step 1, the enum checks of a configuration (S13.4: enums come before
 * sizes, so kvq_quantize_head runs these before it looks at n_tokens). */
kvq_status kvq_head_config_check_enums(const kvq_head_config *config, const char *name)
{
    if (config == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "%s is NULL", name);
    if (config->role != KVQ_ROLE_KEYS && config->role != KVQ_ROLE_VALUES)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "%s.role = %d is not a kvq_role", name, (int)config->role);
    if (config->role == KVQ_ROLE_KEYS && config->key_mode != KVQ_KEYS_PER_CHANNEL_CALIBRATED &&
        config->key_mode != KVQ_KEYS_PER_CHANNEL_ONLINE)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "%s.key_mode = %d is not a kvq_key_mode", name, (int)config->key_mode);
    /* S7.3: read by calibrated keys only, so only they are checked. */
    if (config->role == KVQ_ROLE_KEYS && config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED &&
        config->beyond_range != KVQ_BEYOND_RANGE_OUTLIERS && config->beyond_range != KVQ_BEYOND_RANGE_CLAMP)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "%s.beyond_range = %d is not a kvq_beyond_range", name,
                        (int)config->beyond_range);
    kvq_policy_rule rule = config->policy.rule;
    if (rule != KVQ_POLICY_QUANTIZE_ALL && rule != KVQ_POLICY_TEXT_CENTRIC && rule != KVQ_POLICY_IMAGE_CENTRIC)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "%s.policy.rule = %d is not a kvq_policy_rule", name, (int)rule);
    kvq_scheme scheme = config->quantizer.scheme;
    if (scheme != KVQ_SCHEME_UNIFORM_ASYM && scheme != KVQ_SCHEME_UNIFORM_SYM && scheme != KVQ_SCHEME_NUQ)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "%s.quantizer.scheme = %d is not a kvq_scheme", name, (int)scheme);
    return KVQ_OK;
}

/* S4.1 step 1: everything about a configuration that does not depend on the
 * input values. The order of checks follows S13.4. */
kvq_status kvq_head_config_check(const kvq_head_config *config, uint32_t head_dim, const char *name)
{
    kvq_status status = kvq_head_config_check_enums(config, name);
    if (status != KVQ_OK) return status;
    bool keys = config->role == KVQ_ROLE_KEYS;
    status = kvq_quantizer_check(&config->quantizer);
    if (status != KVQ_OK) return status;
    if (head_dim == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "head_dim is 0");
    /* S4.2 values: G channels per group, 0 meaning the whole row. */
    if (!keys && config->group_size != 0 &&
        (config->group_size > head_dim || head_dim % config->group_size != 0))
        return kvq_fail(KVQ_ERR_BAD_GROUP_SIZE, "%s.group_size = %u does not divide head_dim = %u", name,
                        config->group_size, head_dim);
    /* S4.3 online keys: blocks of G >= 1 tokens. */
    bool online = keys && config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    if (online && config->group_size == 0)
        return kvq_fail(KVQ_ERR_BAD_GROUP_SIZE, "%s.group_size is 0 but online keys need blocks of >= 1 token",
                        name);
    status = kvq_check_head_dim(head_dim, config->quantizer.bits);
    if (status != KVQ_OK) return status;
    char policy_name[96];
    snprintf(policy_name, sizeof policy_name, "%s.policy", name);
    status = kvq_policy_check(&config->policy, policy_name);
    if (status != KVQ_OK) return status;
    bool calibrated = keys && !online;
    if (!calibrated && config->outlier_ppm > 1000000u)
        return kvq_fail(KVQ_ERR_BUDGET_RANGE, "%s.outlier_ppm = %u exceeds 1000000 (100%%)", name,
                        config->outlier_ppm);
    if (calibrated) {
        /* S4.2: the ranges become group parameters, so they must be finite fp16-range numbers. */
        if (config->channel_range == NULL)
            return kvq_fail(KVQ_ERR_BAD_CALIBRATION, "%s.channel_range is NULL but keys are calibrated", name);
        /* The array's length is part of the configuration (issue 17): a calibration for
         * another head_dim is refused, never read past its end. */
        if (config->n_channel_range != head_dim)
            return kvq_fail(KVQ_ERR_SIZE_MISMATCH,
                            "%s.n_channel_range = %u, but calibrated keys of head_dim %u need %u channel ranges%s",
                            name, config->n_channel_range, head_dim, head_dim,
                            config->n_channel_range == 0 ? " (set it to the length of channel_range)" : "");
        for (uint32_t c = 0; c < head_dim; c++) {
            kvq_channel_range r = config->channel_range[c];
            if (!kvq_in_fp16_range(r.lo) || !kvq_in_fp16_range(r.hi))
                return kvq_fail(KVQ_ERR_BAD_CALIBRATION,
                                "%s.channel_range[%u] = [%g, %g] has an end that is not finite within the fp16 "
                                "range",
                                name, c, (double)r.lo, (double)r.hi);
            if (r.lo > r.hi)
                return kvq_fail(KVQ_ERR_BAD_CALIBRATION, "%s.channel_range[%u] has lo = %g > hi = %g", name, c,
                                (double)r.lo, (double)r.hi);
        }
    }
    return KVQ_OK;
}

/* S4.4: the most outliers a slice can get under config: every eligible element of a group is an
 * outlier only up to S7.1's count per tail, every calibrated-key element beyond its range is one. */
static uint64_t most_outliers(const kvq_head_config *config, uint32_t n_tokens, uint32_t head_dim)
{
    if (config->role == KVQ_ROLE_VALUES) {
        uint32_t g = config->group_size == 0 ? head_dim : config->group_size;
        return (uint64_t)n_tokens * (head_dim / g) * kvq_outlier_count_for(g, config->outlier_ppm).total;
    }
    if (config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE) {
        /* only complete blocks are quantized (S4.3) */
        uint64_t blocks = n_tokens / config->group_size;
        if (blocks == 0) return 0;
        return blocks * head_dim * kvq_outlier_count_for(config->group_size, config->outlier_ppm).total;
    }
    return config->beyond_range == KVQ_BEYOND_RANGE_CLAMP ? 0u : (uint64_t)n_tokens * head_dim;
}

kvq_status kvq_head_config_check_counts(const kvq_head_config *config, uint32_t n_tokens, uint32_t head_dim)
{
    kvq_qtensor header;
    kvq_qtensor_header_for(config, 0, head_dim, &header);
    uint64_t params = kvq_param_count(kvq_param_layout_of(config->role, config->key_mode), header.group_size,
                                      n_tokens, head_dim);
    if (params > UINT32_MAX)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT,
                        "%u tokens x %u channels make %llu parameter pairs, more than the 2^32 - 1 a qtensor counts "
                        "(S4.4)",
                        n_tokens, head_dim, (unsigned long long)params);
    uint64_t outliers = most_outliers(config, n_tokens, head_dim);
    if (outliers > UINT32_MAX)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT,
                        "%u tokens x %u channels may hold %llu outliers, more than the 2^32 - 1 a qtensor counts "
                        "(S4.4)",
                        n_tokens, head_dim, (unsigned long long)outliers);
    return KVQ_OK;
}

kvq_status kvq_check_counts(const kvq_head_config *config, uint32_t n_tokens, uint32_t head_dim)
{
    kvq_status status = kvq_head_config_check(config, head_dim, "config");
    return status != KVQ_OK ? status : kvq_head_config_check_counts(config, n_tokens, head_dim);
}

/* S4.1 step 1, checks 1-10 (kvq_rules.h). */
kvq_status kvq_quantize_head_check(const kvq_head_config *config, const float *x, uint32_t n_tokens,
                                   uint32_t head_dim, const void *out)
{
    if (config == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "config is NULL");
    if (x == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "x is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status status = kvq_head_config_check_enums(config, "config");
    if (status != KVQ_OK) return status;
    if (n_tokens == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "n_tokens is 0");
    if (n_tokens > KVQ_MAX_TOKENS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "n_tokens = %u exceeds the limit of %u tokens (S1.4)", n_tokens,
                        KVQ_MAX_TOKENS);
    status = kvq_head_config_check(config, head_dim, "config");
    if (status != KVQ_OK) return status;
    return kvq_head_config_check_counts(config, n_tokens, head_dim);
}
