/*
 * dequantize_head.c - the exact fp32 values a kvq_qtensor stands for (S4.5).
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

/* S4.4: every size and index of a qtensor agrees with the others, so that
 * dequantization cannot read out of bounds even for a qtensor built by hand. */
static kvq_status check_qtensor(const kvq_qtensor *qt)
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
    if (qt->precision == NULL || qt->fp16_slot == NULL || qt->codes == NULL || qt->params == NULL ||
        qt->outlier_ptr == NULL || (qt->n_fp16_rows > 0 && qt->fp16_rows == NULL) ||
        (qt->n_outliers > 0 && (qt->outlier_index == NULL || qt->outlier_value == NULL)))
        return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "qt has a NULL array member");
    if (qt->row_bytes != kvq_packed_bytes(d, qt->bits))
        return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "qt->row_bytes = %zu, expected %zu for head_dim %u at %u bits",
                        qt->row_bytes, kvq_packed_bytes(d, qt->bits), d, qt->bits);

    /* Group layout and parameter count (S4.2, S4.3). */
    uint64_t n_params;
    if (!keys) {
        if (qt->group_size == 0 || d % qt->group_size != 0)
            return kvq_fail(KVQ_ERR_BAD_GROUP_SIZE, "qt->group_size = %u does not divide head_dim = %u",
                            qt->group_size, d);
        n_params = (uint64_t)n * (d / qt->group_size);
    } else if (qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE) {
        if (qt->group_size == 0) return kvq_fail(KVQ_ERR_BAD_GROUP_SIZE, "qt->group_size is 0 for online keys");
        n_params = ((uint64_t)n + qt->group_size - 1u) / qt->group_size * d;
    } else {
        n_params = d;
    }
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
        if (qt->fp16_slot[t] != expected)
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
        }
    }
    return KVQ_OK;
}

/* S4.5: the parameters of the group that holds element (t, c). */
static kvq_group_params params_of(const kvq_qtensor *qt, uint32_t t, uint32_t c)
{
    if (qt->role == KVQ_ROLE_VALUES) {
        uint32_t groups = qt->head_dim / qt->group_size;
        return qt->params[(size_t)t * groups + c / qt->group_size];
    }
    if (qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE)
        return qt->params[(size_t)(t / qt->group_size) * qt->head_dim + c];
    return qt->params[c];
}

/* S4.5 */
kvq_status kvq_dequantize_head(const kvq_qtensor *qt, float *out)
{
    if (qt == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "qt is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status status = check_qtensor(qt);
    if (status != KVQ_OK) return status;

    uint32_t n = qt->n_tokens, d = qt->head_dim;
    kvq_quantizer q = {qt->scheme, qt->bits, qt->scheme == KVQ_SCHEME_NUQ ? &qt->codebook : NULL};
    uint8_t *codes = malloc(d);
    if (codes == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for one row of %u codes", d);
    for (uint32_t t = 0; t < n; t++) {
        float *row = out + (size_t)t * d;
        if (qt->precision[t] != KVQ_PREC_QUANTIZED) {
            /* fp16 tokens widen exactly (S2.1). */
            const uint16_t *h = qt->fp16_rows + (size_t)qt->fp16_slot[t] * d;
            for (uint32_t c = 0; c < d; c++) row[c] = kvq_fp32_from_fp16(h[c]);
            continue;
        }
        kvq_unpack_codes(qt->codes + (size_t)t * qt->row_bytes, d, qt->bits, codes);
        for (uint32_t c = 0; c < d; c++) row[c] = kvq_decode(&q, params_of(qt, t, c), codes[c]);
    }
    free(codes);

    /* S7.4: outliers replace (not add to) their element's decoded value. */
    bool keys = qt->role == KVQ_ROLE_KEYS;
    uint32_t n_ptr = keys ? d : n;
    for (uint32_t r = 0; r < n_ptr; r++) {
        for (uint32_t k = qt->outlier_ptr[r]; k < qt->outlier_ptr[r + 1]; k++) {
            uint32_t t = keys ? qt->outlier_index[k] : r;
            uint32_t c = keys ? r : qt->outlier_index[k];
            out[(size_t)t * d + c] = kvq_fp32_from_fp16(qt->outlier_value[k]);
        }
    }
    return KVQ_OK;
}

/* S12.4: the magnitudes of the two terms every decoded element is made of,
 * ma = |a_f| and mb = |b_f * dec(k)| (dec(k) = k, k - 2^(bits-1) or
 * signpost[k]): they bound what rounding the parameters or signposts to a
 * narrower format can do to it. ma = -1 marks elements stored in fp16 (fp16
 * rows and outliers). */
kvq_status kvq_dequantize_term_magnitudes(const kvq_qtensor *qt, double *ma, double *mb)
{
    kvq_status status = check_qtensor(qt);
    if (status != KVQ_OK) return status;
    uint32_t n = qt->n_tokens, d = qt->head_dim;
    uint8_t *codes = malloc(d);
    if (codes == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for one row of %u codes", d);
    double offset = qt->scheme == KVQ_SCHEME_UNIFORM_SYM ? (double)(1u << (qt->bits - 1u)) : 0.0;
    for (uint32_t t = 0; t < n; t++) {
        size_t row = (size_t)t * d;
        if (qt->precision[t] != KVQ_PREC_QUANTIZED) {
            for (uint32_t c = 0; c < d; c++) ma[row + c] = -1.0, mb[row + c] = 0.0;
            continue;
        }
        kvq_unpack_codes(qt->codes + (size_t)t * qt->row_bytes, d, qt->bits, codes);
        for (uint32_t c = 0; c < d; c++) {
            kvq_group_params p = params_of(qt, t, c);
            double a = qt->scheme == KVQ_SCHEME_UNIFORM_SYM ? 0.0 : (double)kvq_fp32_from_fp16(p.a);
            double b = (double)kvq_fp32_from_fp16(p.b);
            double dec = qt->scheme == KVQ_SCHEME_NUQ ? (double)qt->codebook.signpost[codes[c]]
                                                      : (double)codes[c] - offset;
            ma[row + c] = fabs(a);
            mb[row + c] = fabs(b * dec);
        }
    }
    free(codes);
    bool keys = qt->role == KVQ_ROLE_KEYS;
    for (uint32_t r = 0; r < (keys ? d : n); r++)
        for (uint32_t k = qt->outlier_ptr[r]; k < qt->outlier_ptr[r + 1]; k++) {
            uint32_t t = keys ? qt->outlier_index[k] : r;
            uint32_t c = keys ? r : qt->outlier_index[k];
            ma[(size_t)t * d + c] = -1.0;
            mb[(size_t)t * d + c] = 0.0;
        }
    return KVQ_OK;
}
