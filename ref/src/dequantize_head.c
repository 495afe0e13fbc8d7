/*
 * dequantize_head.c - the exact fp32 values a kvq_qtensor stands for (S4.5).
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

/* S4.5: the parameters of the group that holds element (t, c). */
static kvq_group_params params_of(const kvq_qtensor *qt, uint32_t t, uint32_t c)
{
    kvq_param_layout layout = kvq_param_layout_of(qt->role, qt->key_mode);
    return qt->params[kvq_param_index(layout, qt->group_size, qt->head_dim, t, c)];
}

/* S4.5 */
kvq_status kvq_dequantize_head(const kvq_qtensor *qt, float *out)
{
    if (qt == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "qt is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status status = kvq_qtensor_check(qt, true);
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
    kvq_status status = kvq_qtensor_check(qt, true);
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
