/*
 * quantize_head.c - one head slice of keys or values to a kvq_qtensor (S4).
 *
 * The steps (S4.1): decide every token's precision (sinks, policy, recent
 * window, residual key blocks), then quantize each group of the QUANTIZED
 * tokens: choose outliers (S7), take the dense range, derive (a, b) (S3/S6),
 * encode every element, pack the codes per token row (S5). Tokens that are
 * not quantized are stored as fp16 rows.
 */
#include "quantize_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Array sizes are rounded up to one element so that every array member of a
 * qtensor is a valid pointer even when it holds nothing (S4.4). */
static size_t at_least_one(size_t n) { return n > 0 ? n : 1u; }

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

/* S10.4, S4.3: the final precision of every token from its policy decision. */
static void final_precision(const kvq_head_config *config, uint32_t n_tokens, const uint8_t *decided,
                            uint8_t *precision)
{
    /* S10.4: the newest recent_window tokens that would be quantized wait in fp16. */
    uint32_t window = config->policy.recent_window;
    uint32_t first_window = n_tokens > window ? n_tokens - window : 0u;
    for (uint32_t t = 0; t < n_tokens; t++) {
        uint8_t p = decided[t];
        if (p == KVQ_PREC_QUANTIZED && t >= first_window) p = KVQ_PREC_WINDOW;
        precision[t] = p;
    }
    if (config->role != KVQ_ROLE_KEYS || config->key_mode != KVQ_KEYS_PER_CHANNEL_ONLINE) return;
    /* S4.3: a key block is quantized only when it is complete and has left the
     * window, because its per-channel range must cover all of its tokens and
     * must never change afterwards. */
    uint64_t g = config->group_size;
    for (uint64_t start = 0; start < n_tokens; start += g) {
        uint64_t end = start + g < n_tokens ? start + g : n_tokens;
        bool quantized = start + g <= n_tokens;
        for (uint64_t t = start; t < end; t++)
            if (precision[t] == KVQ_PREC_WINDOW) quantized = false;
        if (quantized) continue;
        for (uint64_t t = start; t < end; t++)
            if (precision[t] == KVQ_PREC_QUANTIZED) precision[t] = KVQ_PREC_RESIDUAL;
    }
}

/* S7.3: min and max over the eligible elements that are not outliers; a
 * group without such elements uses 0 and 0 (S3.1). */
static void dense_range(const float *x, uint32_t n, size_t stride, const uint8_t *eligible,
                        const uint8_t *is_outlier, float *min_out, float *max_out)
{
    bool any = false;
    float min = 0.0f, max = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        if ((eligible != NULL && !eligible[i]) || is_outlier[i]) continue;
        float v = x[i * stride];
        if (!any || v < min) min = v;
        if (!any || v > max) max = v;
        any = true;
    }
    *min_out = min;
    *max_out = max;
}

/* S4.2/S4.3: quantize one group of n elements x[i*stride]: outliers (S7.2)
 * into group_mask, then params from the dense range, then a code for every
 * eligible element, outliers included (they get their clamped code, S7.4).
 * Codes and the outlier marks are written at the same stride into the
 * slice-shaped arrays `codes` and `mask`. */
static kvq_status quantize_group(const kvq_head_config *config, const float *x, uint32_t n, size_t stride,
                                 const uint8_t *eligible, uint8_t *group_mask, uint8_t *codes, uint8_t *mask,
                                 kvq_group_params *params)
{
    kvq_status status = kvq_select_outliers(x, n, stride, eligible, config->outlier_ppm, group_mask);
    if (status != KVQ_OK) return status;
    float min, max;
    dense_range(x, n, stride, eligible, group_mask, &min, &max);
    *params = kvq_group_params_from_range(&config->quantizer, min, max);
    for (uint32_t i = 0; i < n; i++) {
        if (eligible != NULL && !eligible[i]) continue;
        codes[i * stride] = (uint8_t)kvq_encode(&config->quantizer, *params, x[i * stride]);
        mask[i * stride] = group_mask[i];
    }
    return KVQ_OK;
}

/* S4.2 values: groups of G consecutive channels of each QUANTIZED token. */
static kvq_status quantize_values(const kvq_head_config *config, const float *x, uint32_t n_tokens,
                                  uint32_t head_dim, const uint8_t *precision, uint8_t *group_mask, uint8_t *codes,
                                  uint8_t *mask, kvq_group_params *params)
{
    uint32_t g = config->group_size == 0 ? head_dim : config->group_size;
    uint32_t groups = head_dim / g;
    for (uint32_t t = 0; t < n_tokens; t++) {
        if (precision[t] != KVQ_PREC_QUANTIZED) continue; /* fp16 tokens keep params {0, 0} */
        for (uint32_t j = 0; j < groups; j++) {
            size_t offset = (size_t)t * head_dim + (size_t)j * g;
            kvq_status status = quantize_group(config, x + offset, g, 1, NULL, group_mask, codes + offset,
                                               mask + offset, &params[(size_t)t * groups + j]);
            if (status != KVQ_OK) return status;
        }
    }
    return KVQ_OK;
}

/* S4.3 online keys: per channel over each quantized block of G tokens; only
 * the block's QUANTIZED tokens are eligible (sink and policy tokens inside a
 * block are stored in fp16 and must not stretch the range). */
static kvq_status quantize_keys_online(const kvq_head_config *config, const float *x, uint32_t n_tokens,
                                       uint32_t head_dim, const uint8_t *precision, uint8_t *eligible,
                                       uint8_t *group_mask, uint8_t *codes, uint8_t *mask, kvq_group_params *params)
{
    uint32_t g = config->group_size;
    /* Only complete blocks can hold QUANTIZED tokens (S4.3 made the others RESIDUAL). */
    for (uint64_t start = 0, b = 0; start + g <= n_tokens; start += g, b++) {
        uint32_t n_eligible = 0;
        for (uint32_t i = 0; i < g; i++) {
            eligible[i] = (uint8_t)(precision[start + i] == KVQ_PREC_QUANTIZED);
            n_eligible += eligible[i];
        }
        if (n_eligible == 0) continue; /* nothing to quantize: params stay {0, 0} */
        for (uint32_t c = 0; c < head_dim; c++) {
            size_t offset = (size_t)start * head_dim + c;
            kvq_status status = quantize_group(config, x + offset, g, head_dim, eligible, group_mask,
                                               codes + offset, mask + offset, &params[b * head_dim + c]);
            if (status != KVQ_OK) return status;
        }
    }
    return KVQ_OK;
}

/* S4.2 calibrated keys: one group per channel with the offline range
 * [lo_c, hi_c]; an element outside it (strictly) is an outlier, or, with
 * KVQ_BEYOND_RANGE_CLAMP, just gets the code the thresholds give it, which
 * clamps it to the range (S7.3). */
static void quantize_keys_calibrated(const kvq_head_config *config, const float *x, uint32_t n_tokens,
                                     uint32_t head_dim, const uint8_t *precision, uint8_t *codes, uint8_t *mask,
                                     kvq_group_params *params)
{
    for (uint32_t c = 0; c < head_dim; c++)
        params[c] = kvq_group_params_from_range(&config->quantizer, config->channel_range[c].lo,
                                                config->channel_range[c].hi);
    bool outliers = config->beyond_range == KVQ_BEYOND_RANGE_OUTLIERS;
    for (uint32_t t = 0; t < n_tokens; t++) {
        if (precision[t] != KVQ_PREC_QUANTIZED) continue;
        for (uint32_t c = 0; c < head_dim; c++) {
            size_t i = (size_t)t * head_dim + c;
            kvq_channel_range r = config->channel_range[c];
            codes[i] = (uint8_t)kvq_encode(&config->quantizer, params[c], x[i]);
            mask[i] = (uint8_t)(outliers && (x[i] < r.lo || x[i] > r.hi));
        }
    }
}

/* S4.4: the sparse outliers as CSR by token (values) or CSC by channel (keys),
 * indices ascending, values fp16(x). */
static void store_outliers(const float *x, uint32_t n_tokens, uint32_t head_dim, const uint8_t *mask,
                           kvq_qtensor *qt)
{
    uint32_t k = 0;
    if (qt->role == KVQ_ROLE_VALUES) {
        for (uint32_t t = 0; t < n_tokens; t++) {
            qt->outlier_ptr[t] = k;
            for (uint32_t c = 0; c < head_dim; c++) {
                size_t i = (size_t)t * head_dim + c;
                if (!mask[i]) continue;
                qt->outlier_index[k] = c;
                qt->outlier_value[k++] = kvq_fp16_from_fp32(x[i]);
            }
        }
        qt->outlier_ptr[n_tokens] = k;
    } else {
        for (uint32_t c = 0; c < head_dim; c++) {
            qt->outlier_ptr[c] = k;
            for (uint32_t t = 0; t < n_tokens; t++) {
                size_t i = (size_t)t * head_dim + c;
                if (!mask[i]) continue;
                qt->outlier_index[k] = t;
                qt->outlier_value[k++] = kvq_fp16_from_fp32(x[i]);
            }
        }
        qt->outlier_ptr[head_dim] = k;
    }
}

/* S4.4: the number of parameter pairs of each layout. */
static uint64_t param_count(const kvq_head_config *config, uint32_t n_tokens, uint32_t head_dim)
{
    if (config->role == KVQ_ROLE_VALUES) {
        uint32_t g = config->group_size == 0 ? head_dim : config->group_size;
        return (uint64_t)n_tokens * (head_dim / g);
    }
    if (config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE) {
        uint64_t blocks = ((uint64_t)n_tokens + config->group_size - 1u) / config->group_size;
        return blocks * head_dim;
    }
    return head_dim;
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
    uint64_t params = param_count(config, n_tokens, head_dim);
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

/* S4.1 steps 2-7 (see quantize_internal.h). */
kvq_status kvq_quantize_head_decided(const kvq_head_config *config, const float *x, uint32_t n_tokens,
                                     uint32_t head_dim, const uint8_t *decided, kvq_qtensor **out)
{
    const kvq_quantizer *q = &config->quantizer;
    bool keys = config->role == KVQ_ROLE_KEYS;
    bool online = keys && config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    size_t n_elements = (size_t)n_tokens * head_dim;
    size_t row_bytes = kvq_packed_bytes(head_dim, q->bits);
    size_t n_params = (size_t)param_count(config, n_tokens, head_dim); /* <= UINT32_MAX: kvq_check_counts */
    uint32_t block = online ? (config->group_size < n_tokens ? config->group_size : n_tokens) : 0u;
    size_t scratch = head_dim > block ? head_dim : block;

    /* Everything is built in fresh memory; *out is assigned only at the end. */
    kvq_qtensor *qt = calloc(1, sizeof *qt);
    uint8_t *codes = calloc(n_elements, 1);       /* unpacked codes, [n_tokens][head_dim] */
    uint8_t *mask = calloc(n_elements, 1);        /* outlier marks, [n_tokens][head_dim] */
    uint8_t *group_mask = malloc(scratch);
    uint8_t *eligible = malloc(scratch);
    if (qt == NULL || codes == NULL || mask == NULL || group_mask == NULL || eligible == NULL) goto oom;
    qt->precision = malloc(at_least_one(n_tokens));
    qt->fp16_slot = malloc(at_least_one(n_tokens) * sizeof *qt->fp16_slot);
    qt->codes = calloc(at_least_one(n_tokens * row_bytes), 1); /* rows of fp16 tokens stay zero */
    qt->params = calloc(at_least_one(n_params), sizeof *qt->params);
    qt->outlier_ptr = malloc(((size_t)(keys ? head_dim : n_tokens) + 1u) * sizeof *qt->outlier_ptr);
    if (qt->precision == NULL || qt->fp16_slot == NULL || qt->codes == NULL || qt->params == NULL ||
        qt->outlier_ptr == NULL)
        goto oom;

    qt->role = config->role;
    qt->key_mode = keys ? config->key_mode : KVQ_KEYS_PER_CHANNEL_CALIBRATED; /* values: not used, 0 */
    qt->scheme = q->scheme;
    qt->bits = q->bits;
    qt->n_tokens = n_tokens;
    qt->head_dim = head_dim;
    if (!keys)
        qt->group_size = config->group_size == 0 ? head_dim : config->group_size;
    else
        qt->group_size = online ? config->group_size : 0u;
    if (q->scheme == KVQ_SCHEME_NUQ) qt->codebook = *q->codebook; /* otherwise all zero, bits 0 */
    qt->row_bytes = row_bytes;
    qt->n_params = (uint32_t)n_params;

    /* Step 2: precision of every token (S8, S10, S4.3). */
    final_precision(config, n_tokens, decided, qt->precision);

    /* Step 3: fp16 rows of the tokens that are not quantized, in token order. */
    uint32_t n_rows = 0;
    for (uint32_t t = 0; t < n_tokens; t++)
        if (qt->precision[t] != KVQ_PREC_QUANTIZED) n_rows++;
    qt->fp16_rows = malloc(at_least_one((size_t)n_rows * head_dim) * sizeof *qt->fp16_rows);
    if (qt->fp16_rows == NULL) goto oom;
    qt->n_fp16_rows = n_rows;
    for (uint32_t t = 0, row = 0; t < n_tokens; t++) {
        if (qt->precision[t] == KVQ_PREC_QUANTIZED) {
            qt->fp16_slot[t] = UINT32_MAX;
            continue;
        }
        qt->fp16_slot[t] = row;
        for (uint32_t c = 0; c < head_dim; c++)
            qt->fp16_rows[(size_t)row * head_dim + c] = kvq_fp16_from_fp32(x[(size_t)t * head_dim + c]);
        row++;
    }

    /* Steps 4-5: groups, outliers, params, codes. Inputs were validated, so
     * the selection cannot fail; its status is still passed on. */
    kvq_status status = KVQ_OK;
    if (!keys)
        status = quantize_values(config, x, n_tokens, head_dim, qt->precision, group_mask, codes, mask, qt->params);
    else if (online)
        status = quantize_keys_online(config, x, n_tokens, head_dim, qt->precision, eligible, group_mask, codes,
                                      mask, qt->params);
    else
        quantize_keys_calibrated(config, x, n_tokens, head_dim, qt->precision, codes, mask, qt->params);
    if (status != KVQ_OK) goto fail;

    /* Step 6: pack each quantized token's codes (S5). */
    for (uint32_t t = 0; t < n_tokens; t++)
        if (qt->precision[t] == KVQ_PREC_QUANTIZED)
            kvq_pack_codes(codes + (size_t)t * head_dim, head_dim, q->bits, qt->codes + (size_t)t * row_bytes);

    /* Step 7: sparse outliers (S7.4). */
    size_t n_outliers = 0;
    for (size_t i = 0; i < n_elements; i++) n_outliers += mask[i];
    qt->outlier_index = malloc(at_least_one(n_outliers) * sizeof *qt->outlier_index);
    qt->outlier_value = malloc(at_least_one(n_outliers) * sizeof *qt->outlier_value);
    if (qt->outlier_index == NULL || qt->outlier_value == NULL) goto oom;
    qt->n_outliers = (uint32_t)n_outliers;
    store_outliers(x, n_tokens, head_dim, mask, qt);

    free(codes);
    free(mask);
    free(group_mask);
    free(eligible);
    *out = qt;
    return KVQ_OK;

oom:
    status = kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory quantizing a head slice of %u x %u", n_tokens,
                      head_dim);
fail:
    kvq_qtensor_free(qt);
    free(codes);
    free(mask);
    free(group_mask);
    free(eligible);
    return status;
}

/* S4.1 */
kvq_status kvq_quantize_head(const kvq_head_config *config, const float *x, uint32_t n_tokens, uint32_t head_dim,
                             const uint8_t *modality, kvq_qtensor **out)
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
    status = kvq_head_config_check_counts(config, n_tokens, head_dim);
    if (status != KVQ_OK) return status;
    status = kvq_check_finite(x, (size_t)n_tokens * head_dim, "x");
    if (status != KVQ_OK) return status;

    /* S10.3 over the whole slice: n_before = hp_before = 0. It also checks
     * the modality bytes. */
    uint8_t *decided = malloc(n_tokens);
    if (decided == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for %u token decisions", n_tokens);
    status = kvq_token_precision(&config->policy, modality, 0, 0, n_tokens, decided);
    if (status == KVQ_OK) status = kvq_quantize_head_decided(config, x, n_tokens, head_dim, decided, out);
    free(decided);
    return status;
}
