/*
 * cuda_validate.c - argument checks of the CUDA backend, the same checks in
 * the same order as libkvq (S13.4), so that a call fails with the reference's
 * status before anything reaches the device. Where libkvq exports the check
 * (kvq_quantizer_check, kvq_check_head_dim) it is called and its message kept.
 */
#include "cuda_internal.h"

#include <math.h>
#include <string.h>

static bool in_fp16_range(float x) { return isfinite(x) && fabsf(x) <= 65504.0f; }

kvq_status cuda_check_config_enums(kvq_backend_context *ctx, const kvq_head_config *config, const char *name)
{
    if (config == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "%s: NULL", name);
    if (config->role != KVQ_ROLE_KEYS && config->role != KVQ_ROLE_VALUES)
        return cuda_fail(ctx, KVQ_ERR_BAD_ENUM, "%s.role = %d is not a kvq_role", name, (int)config->role);
    if (config->role == KVQ_ROLE_KEYS && config->key_mode != KVQ_KEYS_PER_CHANNEL_CALIBRATED &&
        config->key_mode != KVQ_KEYS_PER_CHANNEL_ONLINE)
        return cuda_fail(ctx, KVQ_ERR_BAD_ENUM, "%s.key_mode = %d is not a kvq_key_mode", name,
                         (int)config->key_mode);
    if (config->role == KVQ_ROLE_KEYS && config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED &&
        config->beyond_range != KVQ_BEYOND_RANGE_OUTLIERS && config->beyond_range != KVQ_BEYOND_RANGE_CLAMP)
        return cuda_fail(ctx, KVQ_ERR_BAD_ENUM, "%s.beyond_range = %d is not a kvq_beyond_range", name,
                         (int)config->beyond_range);
    kvq_policy_rule rule = config->policy.rule;
    if (rule != KVQ_POLICY_QUANTIZE_ALL && rule != KVQ_POLICY_TEXT_CENTRIC && rule != KVQ_POLICY_IMAGE_CENTRIC)
        return cuda_fail(ctx, KVQ_ERR_BAD_ENUM, "%s.policy.rule = %d is not a kvq_policy_rule", name, (int)rule);
    kvq_scheme scheme = config->quantizer.scheme;
    if (scheme != KVQ_SCHEME_UNIFORM_ASYM && scheme != KVQ_SCHEME_UNIFORM_SYM && scheme != KVQ_SCHEME_NUQ)
        return cuda_fail(ctx, KVQ_ERR_BAD_ENUM, "%s.quantizer.scheme = %d is not a kvq_scheme", name, (int)scheme);
    return KVQ_OK;
}

/* S4.1 step 1 (checks 2, 4-9), as kvq_quantize_head and kvq_cache_create make them. */
kvq_status cuda_check_config(kvq_backend_context *ctx, const kvq_head_config *config, uint32_t head_dim,
                             const char *name)
{
    kvq_status status = cuda_check_config_enums(ctx, config, name);
    if (status != KVQ_OK) return status;
    bool keys = config->role == KVQ_ROLE_KEYS;
    bool online = keys && config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    bool calibrated = keys && !online;
    status = kvq_quantizer_check(&config->quantizer);
    if (status != KVQ_OK) return cuda_from_kvq(ctx, status);
    if (head_dim == 0) return cuda_fail(ctx, KVQ_ERR_ZERO_SIZE, "head_dim: 0");
    if (!keys && config->group_size != 0 && (config->group_size > head_dim || head_dim % config->group_size != 0))
        return cuda_fail(ctx, KVQ_ERR_BAD_GROUP_SIZE, "%s.group_size = %u does not divide head_dim = %u", name,
                         config->group_size, head_dim);
    if (online && config->group_size == 0)
        return cuda_fail(ctx, KVQ_ERR_BAD_GROUP_SIZE,
                         "%s.group_size is 0 but online keys need blocks of >= 1 token (S4.3)", name);
    status = kvq_check_head_dim(head_dim, config->quantizer.bits);
    if (status != KVQ_OK) return cuda_from_kvq(ctx, status);
    if (config->policy.budget_ppm > 1000000u)
        return cuda_fail(ctx, KVQ_ERR_BUDGET_RANGE, "%s.policy.budget_ppm = %u exceeds 1000000 (100%%)", name,
                         config->policy.budget_ppm);
    if (!calibrated && config->outlier_ppm > 1000000u)
        return cuda_fail(ctx, KVQ_ERR_BUDGET_RANGE, "%s.outlier_ppm = %u exceeds 1000000 (100%%)", name,
                         config->outlier_ppm);
    if (calibrated) {
        if (config->channel_range == NULL)
            return cuda_fail(ctx, KVQ_ERR_BAD_CALIBRATION, "%s.channel_range: NULL but keys are calibrated", name);
        for (uint32_t c = 0; c < head_dim; c++) {
            kvq_channel_range r = config->channel_range[c];
            if (!in_fp16_range(r.lo) || !in_fp16_range(r.hi))
                return cuda_fail(ctx, KVQ_ERR_BAD_CALIBRATION,
                                 "%s.channel_range[%u] = [%g, %g] has an end that is not finite within the fp16 range",
                                 name, c, (double)r.lo, (double)r.hi);
            if (r.lo > r.hi)
                return cuda_fail(ctx, KVQ_ERR_BAD_CALIBRATION, "%s.channel_range[%u] has lo = %g > hi = %g", name, c,
                                 (double)r.lo, (double)r.hi);
        }
    }
    return KVQ_OK;
}

kvq_status cuda_check_finite(kvq_backend_context *ctx, const float *x, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!in_fp16_range(x[i]))
            return cuda_fail(ctx, KVQ_ERR_NONFINITE_INPUT,
                             "%s[%zu] = %g is not a finite number within the fp16 range (|x| <= 65504)", name, i,
                             (double)x[i]);
    return KVQ_OK;
}

kvq_status cuda_check_rope(kvq_backend_context *ctx, const kvq_rope *rope, uint32_t head_dim)
{
    if (rope->pairing != KVQ_ROPE_NONE && rope->pairing != KVQ_ROPE_HALF && rope->pairing != KVQ_ROPE_INTERLEAVED)
        return cuda_fail(ctx, KVQ_ERR_BAD_ENUM, "rope.pairing = %d is not a kvq_rope_pairing", (int)rope->pairing);
    if (head_dim == 0) return cuda_fail(ctx, KVQ_ERR_ZERO_SIZE, "head_dim: 0");
    if (head_dim > KVQ_MAX_HEAD_DIM)
        return cuda_fail(ctx, KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u is above the limit %u (S1.4)", head_dim,
                         KVQ_MAX_HEAD_DIM);
    if (rope->pairing != KVQ_ROPE_NONE && head_dim % 2u != 0)
        return cuda_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "head_dim = %u is odd; RoPE rotates pairs of channels", head_dim);
    if (!isfinite(rope->base) || !(rope->base > 1.0f))
        return cuda_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "rope.base = %g must be a finite number above 1",
                         (double)rope->base);
    return KVQ_OK;
}

/* What kvq_qtensor_alloc (behind the reference's tensor_upload) checks. */
static kvq_status check_header(kvq_backend_context *ctx, const kvq_qtensor *h)
{
    if (h->role != KVQ_ROLE_KEYS && h->role != KVQ_ROLE_VALUES)
        return cuda_fail(ctx, KVQ_ERR_BAD_ENUM, "qt->role: %d is not a kvq_role", (int)h->role);
    if (h->n_tokens == 0) return cuda_fail(ctx, KVQ_ERR_ZERO_SIZE, "qt->n_tokens: must be >= 1");
    if (h->n_tokens > KVQ_MAX_TOKENS)
        return cuda_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "qt->n_tokens: %u exceeds %u", h->n_tokens, KVQ_MAX_TOKENS);
    kvq_status status = kvq_check_head_dim(h->head_dim, h->bits);
    if (status != KVQ_OK) return cuda_from_kvq(ctx, status);
    if (h->row_bytes != kvq_packed_bytes(h->head_dim, h->bits))
        return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->row_bytes: %zu, but %u codes of %u bits need %zu",
                         h->row_bytes, h->head_dim, h->bits, kvq_packed_bytes(h->head_dim, h->bits));
    if (h->n_fp16_rows > h->n_tokens)
        return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->n_fp16_rows: %u exceeds n_tokens %u", h->n_fp16_rows,
                         h->n_tokens);
    if ((uint64_t)h->n_outliers > (uint64_t)h->n_tokens * h->head_dim)
        return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->n_outliers: %u exceeds n_tokens*head_dim", h->n_outliers);
    if ((uint64_t)h->n_params > (uint64_t)h->n_tokens * h->head_dim)
        return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->n_params: %u exceeds n_tokens*head_dim", h->n_params);
    return KVQ_OK;
}

/* What kvq_dequantize_head checks (S4.4 consistency). */
static kvq_status check_consistent(kvq_backend_context *ctx, const kvq_qtensor *qt)
{
    bool keys = qt->role == KVQ_ROLE_KEYS;
    if (keys && qt->key_mode != KVQ_KEYS_PER_CHANNEL_CALIBRATED && qt->key_mode != KVQ_KEYS_PER_CHANNEL_ONLINE)
        return cuda_fail(ctx, KVQ_ERR_BAD_ENUM, "qt->key_mode = %d is not a kvq_key_mode", (int)qt->key_mode);
    kvq_quantizer q = {qt->scheme, qt->bits, qt->scheme == KVQ_SCHEME_NUQ ? &qt->codebook : NULL};
    kvq_status status = kvq_quantizer_check(&q);
    if (status != KVQ_OK) return cuda_from_kvq(ctx, status);
    uint32_t n = qt->n_tokens, d = qt->head_dim;
    if (qt->precision == NULL || qt->fp16_slot == NULL || qt->codes == NULL || qt->params == NULL ||
        qt->outlier_ptr == NULL || (qt->n_fp16_rows > 0 && qt->fp16_rows == NULL) ||
        (qt->n_outliers > 0 && (qt->outlier_index == NULL || qt->outlier_value == NULL)))
        return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "qt has a NULL array member");

    uint64_t n_params;
    if (!keys) {
        if (qt->group_size == 0 || d % qt->group_size != 0)
            return cuda_fail(ctx, KVQ_ERR_BAD_GROUP_SIZE, "qt->group_size = %u does not divide head_dim = %u",
                             qt->group_size, d);
        n_params = (uint64_t)n * (d / qt->group_size);
    } else if (qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE) {
        if (qt->group_size == 0)
            return cuda_fail(ctx, KVQ_ERR_BAD_GROUP_SIZE, "qt->group_size is 0 for online keys");
        n_params = ((uint64_t)n + qt->group_size - 1u) / qt->group_size * d;
    } else {
        n_params = d;
    }
    if (qt->n_params != n_params)
        return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->n_params = %u, expected %llu", qt->n_params,
                         (unsigned long long)n_params);

    uint32_t rows = 0;
    for (uint32_t t = 0; t < n; t++) {
        if (qt->precision[t] > KVQ_PREC_RESIDUAL)
            return cuda_fail(ctx, KVQ_ERR_BAD_ENUM, "qt->precision[%u] = %u is not a kvq_precision", t,
                             (unsigned)qt->precision[t]);
        uint32_t expected = qt->precision[t] == KVQ_PREC_QUANTIZED ? UINT32_MAX : rows++;
        if (qt->fp16_slot[t] != expected)
            return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->fp16_slot[%u] = %u, expected %u", t, qt->fp16_slot[t],
                             expected);
    }
    if (rows != qt->n_fp16_rows)
        return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->n_fp16_rows = %u but %u tokens are not quantized",
                         qt->n_fp16_rows, rows);

    uint32_t n_ptr = keys ? d : n;
    uint32_t index_limit = keys ? n : d;
    if (qt->outlier_ptr[0] != 0 || qt->outlier_ptr[n_ptr] != qt->n_outliers)
        return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->outlier_ptr must start at 0 and end at n_outliers = %u",
                         qt->n_outliers);
    for (uint32_t r = 0; r < n_ptr; r++) {
        uint32_t begin = qt->outlier_ptr[r], end = qt->outlier_ptr[r + 1u];
        if (begin > end || end > qt->n_outliers)
            return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->outlier_ptr[%u..%u] = %u..%u is not a valid range", r,
                             r + 1u, begin, end);
        for (uint32_t k = begin; k < end; k++) {
            uint32_t index = qt->outlier_index[k];
            if (index >= index_limit || (k > begin && index <= qt->outlier_index[k - 1u]))
                return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH,
                                 "qt->outlier_index[%u] = %u is out of range or not ascending", k, index);
            uint32_t t = keys ? index : r;
            if (qt->precision[t] != KVQ_PREC_QUANTIZED)
                return cuda_fail(ctx, KVQ_ERR_BAD_ARGUMENT,
                                 "qt->outlier_index[%u] refers to token %u, which is in fp16", k, t);
        }
    }
    return KVQ_OK;
}

kvq_status cuda_check_qtensor(kvq_backend_context *ctx, const kvq_qtensor *qt)
{
    if (qt == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "qt: NULL");
    kvq_status status = check_header(ctx, qt);
    if (status != KVQ_OK) return status;
    return check_consistent(ctx, qt);
}

kvq_cuda_quantizer cuda_quantizer_of(const kvq_quantizer *q)
{
    kvq_cuda_quantizer out;
    memset(&out, 0, sizeof out);
    out.scheme = (uint32_t)q->scheme;
    out.bits = q->bits;
    if (q->scheme == KVQ_SCHEME_NUQ && q->codebook != NULL) {
        memcpy(out.threshold, q->codebook->threshold, sizeof out.threshold);
        memcpy(out.signpost, q->codebook->signpost, sizeof out.signpost);
    }
    return out;
}
