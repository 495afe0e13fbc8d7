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

#include <stdlib.h>
#include <string.h>

/* Array sizes are rounded up to one element so that every array member of a
 * qtensor is a valid pointer even when it holds nothing (S4.4). */
static size_t at_least_one(size_t n) { return n > 0 ? n : 1u; }

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

/* S4.1 steps 2-7 (see quantize_internal.h). */
kvq_status kvq_quantize_head_decided(const kvq_head_config *config, const float *x, uint32_t n_tokens,
                                     uint32_t head_dim, const uint8_t *decided, kvq_qtensor **out)
{
    const kvq_quantizer *q = &config->quantizer;
    bool keys = config->role == KVQ_ROLE_KEYS;
    bool online = keys && config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    size_t n_elements = (size_t)n_tokens * head_dim;
    kvq_qtensor header; /* S4.4's scalars; n_params <= UINT32_MAX: kvq_check_counts */
    kvq_qtensor_header_for(config, n_tokens, head_dim, &header);
    size_t row_bytes = header.row_bytes;
    uint32_t block = online ? (config->group_size < n_tokens ? config->group_size : n_tokens) : 0u;
    size_t scratch = head_dim > block ? head_dim : block;

    /* Everything is built in fresh memory; *out is assigned only at the end. */
    kvq_qtensor *qt = calloc(1, sizeof *qt);
    uint8_t *codes = calloc(n_elements, 1);       /* unpacked codes, [n_tokens][head_dim] */
    uint8_t *mask = calloc(n_elements, 1);        /* outlier marks, [n_tokens][head_dim] */
    uint8_t *group_mask = malloc(scratch);
    uint8_t *eligible = malloc(scratch);
    if (qt == NULL || codes == NULL || mask == NULL || group_mask == NULL || eligible == NULL) goto oom;
    *qt = header;
    qt->precision = malloc(at_least_one(n_tokens));
    qt->fp16_slot = malloc(at_least_one(n_tokens) * sizeof *qt->fp16_slot);
    qt->codes = calloc(at_least_one(n_tokens * row_bytes), 1); /* rows of fp16 tokens stay zero */
    qt->params = calloc(at_least_one(header.n_params), sizeof *qt->params);
    qt->outlier_ptr = malloc(kvq_outlier_ptr_entries(qt->role, n_tokens, head_dim) * sizeof *qt->outlier_ptr);
    if (qt->precision == NULL || qt->fp16_slot == NULL || qt->codes == NULL || qt->params == NULL ||
        qt->outlier_ptr == NULL)
        goto oom;

    /* Step 2: precision of every token (S8, S10, S4.3). */
    kvq_final_precision(config, n_tokens, decided, 0, qt->precision);

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
    kvq_status status = kvq_quantize_head_check(config, x, n_tokens, head_dim, out);
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
