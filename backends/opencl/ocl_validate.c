/*
 * ocl_validate.c - argument checks of the OpenCL backend. They follow the
 * reference's checks one for one and in the same order (S4.1 step 1, S4.4,
 * S13.4), so that every backend reports the same status for the same bad
 * input, and they run before anything is allocated or written (S13.3).
 */
#include "ocl_internal.h"

#include <math.h>

/* S1.3 */
static bool in_fp16_range(float x) { return x >= -65504.0f && x <= 65504.0f; }

kvq_status ocl_check_config_enums(kvq_backend_context *ctx, const kvq_head_config *config, const char *name)
{
    if (config == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "%s is NULL", name);
    if (config->role != KVQ_ROLE_KEYS && config->role != KVQ_ROLE_VALUES)
        return ocl_fail(ctx, KVQ_ERR_BAD_ENUM, "%s.role = %d is not a kvq_role", name, (int)config->role);
    if (config->role == KVQ_ROLE_KEYS && config->key_mode != KVQ_KEYS_PER_CHANNEL_CALIBRATED &&
        config->key_mode != KVQ_KEYS_PER_CHANNEL_ONLINE)
        return ocl_fail(ctx, KVQ_ERR_BAD_ENUM, "%s.key_mode = %d is not a kvq_key_mode", name,
                        (int)config->key_mode);
    if (config->role == KVQ_ROLE_KEYS && config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED &&
        config->beyond_range != KVQ_BEYOND_RANGE_OUTLIERS && config->beyond_range != KVQ_BEYOND_RANGE_CLAMP)
        return ocl_fail(ctx, KVQ_ERR_BAD_ENUM, "%s.beyond_range = %d is not a kvq_beyond_range", name,
                        (int)config->beyond_range);
    kvq_policy_rule rule = config->policy.rule;
    if (rule != KVQ_POLICY_QUANTIZE_ALL && rule != KVQ_POLICY_TEXT_CENTRIC && rule != KVQ_POLICY_IMAGE_CENTRIC)
        return ocl_fail(ctx, KVQ_ERR_BAD_ENUM, "%s.policy.rule = %d is not a kvq_policy_rule", name, (int)rule);
    kvq_scheme scheme = config->quantizer.scheme;
    if (scheme != KVQ_SCHEME_UNIFORM_ASYM && scheme != KVQ_SCHEME_UNIFORM_SYM && scheme != KVQ_SCHEME_NUQ)
        return ocl_fail(ctx, KVQ_ERR_BAD_ENUM, "%s.quantizer.scheme = %d is not a kvq_scheme", name, (int)scheme);
    return KVQ_OK;
}

/* S4.1 step 1, checks 2 and 4-9 (the caller did 1 and 3). */
kvq_status ocl_check_config(kvq_backend_context *ctx, const kvq_head_config *config, uint32_t head_dim,
                            const char *name)
{
    kvq_status st = ocl_check_config_enums(ctx, config, name);
    if (st != KVQ_OK) return st;
    bool keys = config->role == KVQ_ROLE_KEYS;
    st = kvq_quantizer_check(&config->quantizer); /* bits, then the codebook (S6.2) */
    if (st != KVQ_OK) return ocl_from_kvq(ctx, st);
    if (head_dim == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "head_dim is 0");
    if (!keys && config->group_size != 0 && (config->group_size > head_dim || head_dim % config->group_size != 0))
        return ocl_fail(ctx, KVQ_ERR_BAD_GROUP_SIZE, "%s.group_size = %u does not divide head_dim = %u", name,
                        config->group_size, head_dim);
    bool online = keys && config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    if (online && config->group_size == 0)
        return ocl_fail(ctx, KVQ_ERR_BAD_GROUP_SIZE,
                        "%s.group_size is 0 but online keys need blocks of >= 1 token", name);
    st = kvq_check_head_dim(head_dim, config->quantizer.bits);
    if (st != KVQ_OK) return ocl_from_kvq(ctx, st);
    if (config->policy.budget_ppm > 1000000u)
        return ocl_fail(ctx, KVQ_ERR_BUDGET_RANGE, "%s.policy.budget_ppm = %u exceeds 1000000 (100%%)", name,
                        config->policy.budget_ppm);
    bool calibrated = keys && !online;
    if (!calibrated && config->outlier_ppm > 1000000u)
        return ocl_fail(ctx, KVQ_ERR_BUDGET_RANGE, "%s.outlier_ppm = %u exceeds 1000000 (100%%)", name,
                        config->outlier_ppm);
    if (calibrated) {
        if (config->channel_range == NULL)
            return ocl_fail(ctx, KVQ_ERR_BAD_CALIBRATION, "%s.channel_range is NULL but keys are calibrated", name);
        if (config->n_channel_range != head_dim)
            return ocl_fail(ctx, KVQ_ERR_SIZE_MISMATCH,
                            "%s.n_channel_range = %u, but calibrated keys of head_dim %u need %u channel ranges", name,
                            config->n_channel_range, head_dim, head_dim);
        for (uint32_t c = 0; c < head_dim; c++) {
            kvq_channel_range r = config->channel_range[c];
            if (!in_fp16_range(r.lo) || !in_fp16_range(r.hi))
                return ocl_fail(ctx, KVQ_ERR_BAD_CALIBRATION,
                                "%s.channel_range[%u] = [%g, %g] has an end that is not finite within the fp16 "
                                "range",
                                name, c, (double)r.lo, (double)r.hi);
            if (r.lo > r.hi)
                return ocl_fail(ctx, KVQ_ERR_BAD_CALIBRATION, "%s.channel_range[%u] has lo = %g > hi = %g", name, c,
                                (double)r.lo, (double)r.hi);
        }
    }
    return KVQ_OK;
}

kvq_status ocl_check_finite(kvq_backend_context *ctx, const float *x, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (!in_fp16_range(x[i]))
            return ocl_fail(ctx, KVQ_ERR_NONFINITE_INPUT,
                            "%s[%zu] = %g is not a finite number within the fp16 range (|x| <= 65504)", name, i,
                            (double)x[i]);
        /* A device that flushes subnormal operands cannot form the exact
         * group parameters (S3.2, S6.3) of groups whose range is this close
         * to zero; refuse rather than return wrong bytes. PoCL and NVIDIA
         * keep subnormals, so this never triggers there. */
        if (!ctx->denormals && x[i] != 0.0f && fabsf(x[i]) < 0x1p-100f)
            return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT,
                            "%s[%zu] = %g: %s flushes subnormals, so groups this close to 0 cannot be quantized "
                            "exactly",
                            name, i, (double)x[i], ctx->name);
    }
    return KVQ_OK;
}

/* S4.4: the number of group parameters of a qtensor's layout (0 on a bad group size). */
static uint64_t expected_params(const kvq_qtensor *qt)
{
    uint64_t n = qt->n_tokens, d = qt->head_dim;
    if (qt->role == KVQ_ROLE_VALUES) return n * (d / qt->group_size);
    if (qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE) return (n + qt->group_size - 1u) / qt->group_size * d;
    return d;
}

/* S4.4 / S4.5: the consistency check the reference makes before it
 * dequantizes; here it guards every kernel that reads an uploaded tensor. */
kvq_status ocl_check_qtensor(kvq_backend_context *ctx, const kvq_qtensor *qt)
{
    if (qt->role != KVQ_ROLE_KEYS && qt->role != KVQ_ROLE_VALUES)
        return ocl_fail(ctx, KVQ_ERR_BAD_ENUM, "qt->role = %d is not a kvq_role", (int)qt->role);
    bool keys = qt->role == KVQ_ROLE_KEYS;
    if (keys && qt->key_mode != KVQ_KEYS_PER_CHANNEL_CALIBRATED && qt->key_mode != KVQ_KEYS_PER_CHANNEL_ONLINE)
        return ocl_fail(ctx, KVQ_ERR_BAD_ENUM, "qt->key_mode = %d is not a kvq_key_mode", (int)qt->key_mode);
    kvq_quantizer q = {qt->scheme, qt->bits, qt->scheme == KVQ_SCHEME_NUQ ? &qt->codebook : NULL};
    kvq_status st = kvq_quantizer_check(&q);
    if (st != KVQ_OK) return ocl_from_kvq(ctx, st);
    if (qt->n_tokens == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "qt->n_tokens is 0");
    if (qt->n_tokens > KVQ_MAX_TOKENS)
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "qt->n_tokens = %u exceeds %u", qt->n_tokens, KVQ_MAX_TOKENS);
    st = kvq_check_head_dim(qt->head_dim, qt->bits);
    if (st != KVQ_OK) return ocl_from_kvq(ctx, st);
    uint32_t n = qt->n_tokens, d = qt->head_dim;
    if (qt->precision == NULL || qt->fp16_slot == NULL || qt->codes == NULL || qt->params == NULL ||
        qt->outlier_ptr == NULL || (qt->n_fp16_rows > 0 && qt->fp16_rows == NULL) ||
        (qt->n_outliers > 0 && (qt->outlier_index == NULL || qt->outlier_value == NULL)))
        return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "qt has a NULL array member");
    if (qt->row_bytes != kvq_packed_bytes(d, qt->bits))
        return ocl_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->row_bytes = %zu, expected %zu for head_dim %u at %u bits",
                        qt->row_bytes, kvq_packed_bytes(d, qt->bits), d, qt->bits);
    if (!keys && (qt->group_size == 0 || d % qt->group_size != 0))
        return ocl_fail(ctx, KVQ_ERR_BAD_GROUP_SIZE, "qt->group_size = %u does not divide head_dim = %u",
                        qt->group_size, d);
    if (keys && qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE && qt->group_size == 0)
        return ocl_fail(ctx, KVQ_ERR_BAD_GROUP_SIZE, "qt->group_size is 0 for online keys");
    uint64_t n_params = expected_params(qt);
    if (qt->n_params != n_params)
        return ocl_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->n_params = %u, expected %llu", qt->n_params,
                        (unsigned long long)n_params);
    uint32_t rows = 0;
    for (uint32_t t = 0; t < n; t++) {
        if (qt->precision[t] > KVQ_PREC_RESIDUAL)
            return ocl_fail(ctx, KVQ_ERR_BAD_ENUM, "qt->precision[%u] = %u is not a kvq_precision", t,
                            (unsigned)qt->precision[t]);
        uint32_t expected = qt->precision[t] == KVQ_PREC_QUANTIZED ? UINT32_MAX : rows++;
        if (qt->fp16_slot[t] != expected)
            return ocl_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->fp16_slot[%u] = %u, expected %u", t, qt->fp16_slot[t],
                            expected);
    }
    if (rows != qt->n_fp16_rows)
        return ocl_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->n_fp16_rows = %u but %u tokens are not quantized",
                        qt->n_fp16_rows, rows);
    uint32_t n_ptr = keys ? d : n;
    uint32_t index_limit = keys ? n : d;
    if (qt->outlier_ptr[0] != 0 || qt->outlier_ptr[n_ptr] != qt->n_outliers)
        return ocl_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->outlier_ptr must start at 0 and end at n_outliers = %u",
                        qt->n_outliers);
    for (uint32_t r = 0; r < n_ptr; r++) {
        uint32_t begin = qt->outlier_ptr[r], end = qt->outlier_ptr[r + 1];
        if (begin > end || end > qt->n_outliers)
            return ocl_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "qt->outlier_ptr[%u..%u] = %u..%u is not a valid range", r,
                            r + 1, begin, end);
        for (uint32_t k = begin; k < end; k++) {
            uint32_t index = qt->outlier_index[k];
            if (index >= index_limit || (k > begin && index <= qt->outlier_index[k - 1]))
                return ocl_fail(ctx, KVQ_ERR_SIZE_MISMATCH,
                                "qt->outlier_index[%u] = %u is out of range or not ascending", k, index);
            uint32_t t = keys ? index : r;
            if (qt->precision[t] != KVQ_PREC_QUANTIZED)
                return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT,
                                "qt->outlier_index[%u] refers to token %u, which is in fp16", k, t);
            if ((qt->outlier_value[k] & 0x7C00u) == 0x7C00u)
                return ocl_fail(ctx, KVQ_ERR_NONFINITE_INPUT, "qt->outlier_value[%u] = 0x%04x is infinity or NaN", k,
                                qt->outlier_value[k]);
        }
    }
    /* S4.4 (spec 1.3.0): every stored number is finite and b >= +0, so that nothing decodes to
     * infinity or NaN. */
    for (uint32_t i = 0; i < qt->n_params; i++) {
        kvq_group_params g = qt->params[i];
        if ((g.a & 0x7C00u) == 0x7C00u || (g.b & 0x7C00u) == 0x7C00u || (g.b & 0x8000u) != 0)
            return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "qt->params[%u] = {0x%04x, 0x%04x} is not finite with b >= +0",
                            i, g.a, g.b);
    }
    for (size_t i = 0; i < (size_t)qt->n_fp16_rows * d; i++)
        if ((qt->fp16_rows[i] & 0x7C00u) == 0x7C00u)
            return ocl_fail(ctx, KVQ_ERR_NONFINITE_INPUT, "qt->fp16_rows[%zu] = 0x%04x is infinity or NaN", i,
                            qt->fp16_rows[i]);
    return KVQ_OK;
}
