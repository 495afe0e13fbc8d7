/*
 * qtensor_check.c - the consistency rules of a quantized head slice (S4.4),
 * in one place: dequantization and attention check them, and the .kvqz
 * writer and reader check them too (S16.5), so that a tensor the reader
 * returns is always one the library accepts (issue 17, finding 3).
 */
#include "internal.h"

#include <stdlib.h>

/* fp16 bits that are neither infinity nor NaN (exponent field below 31). */
static bool fp16_bits_finite(uint16_t h) { return (h & 0x7C00u) != 0x7C00u; }

/* S4.4: every size and index of a qtensor agrees with the others, so that
 * dequantization cannot read out of bounds even for a qtensor built by hand,
 * and every stored number is finite. */
kvq_status kvq_qtensor_check(const kvq_qtensor *qt, bool check_slots)
{
    if (qt->role != KVQ_ROLE_KEYS && qt->role != KVQ_ROLE_VALUES)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "qt->role = %d is not a kvq_role", (int)qt->role);
    bool keys = qt->role == KVQ_ROLE_KEYS;
    if (keys && qt->key_mode != KVQ_KEYS_PER_CHANNEL_CALIBRATED && qt->key_mode != KVQ_KEYS_PER_CHANNEL_ONLINE)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "qt->key_mode = %d is not a kvq_key_mode", (int)qt->key_mode);
    kvq_quantizer q = {qt->scheme, qt->bits, qt->scheme == KVQ_SCHEME_NUQ ? &qt->codebook : NULL};
    kvq_status status = kvq_quantizer_check(&q);
    if (status != KVQ_OK) return status;
    if (qt->n_tokens == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "qt->n_tokens is 0");
    if (qt->n_tokens > KVQ_MAX_TOKENS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "qt->n_tokens = %u exceeds %u", qt->n_tokens, KVQ_MAX_TOKENS);
    status = kvq_check_head_dim(qt->head_dim, qt->bits);
    if (status != KVQ_OK) return status;
    uint32_t n = qt->n_tokens, d = qt->head_dim;
    if (qt->precision == NULL || (check_slots && qt->fp16_slot == NULL) || qt->codes == NULL || qt->params == NULL ||
        qt->outlier_ptr == NULL || (qt->n_fp16_rows > 0 && qt->fp16_rows == NULL) ||
        (qt->n_outliers > 0 && (qt->outlier_index == NULL || qt->outlier_value == NULL)))
        return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "qt has a NULL array member");
    if (qt->row_bytes != kvq_packed_bytes(d, qt->bits))
        return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "qt->row_bytes = %zu, expected %zu for head_dim %u at %u bits",
                        qt->row_bytes, kvq_packed_bytes(d, qt->bits), d, qt->bits);

    /* Group layout and parameter count (S4.2, S4.3). */
    if (!keys && (qt->group_size == 0 || d % qt->group_size != 0))
        return kvq_fail(KVQ_ERR_BAD_GROUP_SIZE, "qt->group_size = %u does not divide head_dim = %u", qt->group_size,
                        d);
    if (keys && qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE && qt->group_size == 0)
        return kvq_fail(KVQ_ERR_BAD_GROUP_SIZE, "qt->group_size is 0 for online keys");
    uint64_t n_params = kvq_param_count(kvq_param_layout_of(qt->role, qt->key_mode), qt->group_size, n, d);
    if (qt->n_params != n_params)
        return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "qt->n_params = %u, expected %llu", qt->n_params,
                        (unsigned long long)n_params);

    /* Precision bytes and fp16 slots: fp16 tokens take rows 0, 1, ... in order. */
    uint32_t rows = 0;
    for (uint32_t t = 0; t < n; t++) {
        if (qt->precision[t] > KVQ_PREC_RESIDUAL)
            return kvq_fail(KVQ_ERR_BAD_ENUM, "qt->precision[%u] = %u is not a kvq_precision", t,
                            (unsigned)qt->precision[t]);
        uint32_t expected = qt->precision[t] == KVQ_PREC_QUANTIZED ? UINT32_MAX : rows++;
        if (check_slots && qt->fp16_slot[t] != expected)
            return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "qt->fp16_slot[%u] = %u, expected %u", t, qt->fp16_slot[t],
                            expected);
    }
    if (rows != qt->n_fp16_rows)
        return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "qt->n_fp16_rows = %u but %u tokens are not quantized",
                        qt->n_fp16_rows, rows);

    /* Outliers: pointers non-decreasing from 0 to n_outliers, indices in range,
     * ascending within a row (column), and only on quantized tokens. */
    uint32_t n_ptr = keys ? d : n;
    uint32_t index_limit = keys ? n : d;
    if (qt->outlier_ptr[0] != 0 || qt->outlier_ptr[n_ptr] != qt->n_outliers)
        return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "qt->outlier_ptr must start at 0 and end at n_outliers = %u",
                        qt->n_outliers);
    for (uint32_t r = 0; r < n_ptr; r++) {
        uint32_t begin = qt->outlier_ptr[r], end = qt->outlier_ptr[r + 1];
        if (begin > end || end > qt->n_outliers)
            return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "qt->outlier_ptr[%u..%u] = %u..%u is not a valid range", r,
                            r + 1, begin, end);
        for (uint32_t k = begin; k < end; k++) {
            uint32_t index = qt->outlier_index[k];
            if (index >= index_limit || (k > begin && index <= qt->outlier_index[k - 1]))
                return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "qt->outlier_index[%u] = %u is out of range or not ascending",
                                k, index);
            uint32_t t = keys ? index : r;
            if (qt->precision[t] != KVQ_PREC_QUANTIZED)
                return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "qt->outlier_index[%u] refers to token %u, which is in fp16",
                                k, t);
            if (!fp16_bits_finite(qt->outlier_value[k]))
                return kvq_fail(KVQ_ERR_NONFINITE_INPUT, "qt->outlier_value[%u] = 0x%04x is infinity or NaN", k,
                                qt->outlier_value[k]);
        }
    }

    /* Values (issue 17): everything decoded is finite, so that dequantization and attention never
     * return infinity or NaN with KVQ_OK. A parameter pair is finite with b >= +0 (S3.1: what
     * S3.2, S3.3 and S6.3 make); an fp16 row holds no infinity or NaN (S1.3). */
    for (uint32_t i = 0; i < qt->n_params; i++) {
        kvq_group_params g = qt->params[i];
        if (!fp16_bits_finite(g.a) || !fp16_bits_finite(g.b) || (g.b & 0x8000u) != 0)
            return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "qt->params[%u] = {0x%04x, 0x%04x} is not finite with b >= +0", i,
                            g.a, g.b);
    }
    for (size_t i = 0; i < (size_t)qt->n_fp16_rows * d; i++)
        if (!fp16_bits_finite(qt->fp16_rows[i]))
            return kvq_fail(KVQ_ERR_NONFINITE_INPUT, "qt->fp16_rows[%zu] = 0x%04x is infinity or NaN", i,
                            qt->fp16_rows[i]);
    return KVQ_OK;
}


/* S4.4 (kvq_rules.h): the whole check, fp16 slots included. */
kvq_status kvq_qtensor_validate(const kvq_qtensor *qt)
{
    if (qt == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "qt is NULL");
    return kvq_qtensor_check(qt, true);
}
