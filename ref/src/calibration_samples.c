/*
 * calibration_samples.c - the normalized samples a head slice contributes to
 * NUQ codebook calibration (S6.6).
 *
 * k-means (kmeans.c) works in the codebook's domain [-1, 1]. Each dense,
 * quantized element is mapped there with its own group's centre and
 * half-range, exactly as quantization sees it; outliers and fp16 tokens are
 * never quantized with the codebook, so they contribute nothing.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* S4.4: the group parameters that element (t, c) of the qtensor was quantized with. */
static kvq_group_params group_params_of(const kvq_qtensor *qt, uint32_t t, uint32_t c)
{
    kvq_param_layout layout = kvq_param_layout_of(qt->role, qt->key_mode);
    return qt->params[kvq_param_index(layout, qt->group_size, qt->head_dim, t, c)];
}

/* S4.4: mark[t*head_dim + c] = 1 for every stored outlier. */
static void mark_outliers(const kvq_qtensor *qt, uint8_t *mark)
{
    uint32_t d = qt->head_dim;
    if (qt->role == KVQ_ROLE_VALUES) { /* CSR by token, index = channel */
        for (uint32_t t = 0; t < qt->n_tokens; t++)
            for (uint32_t k = qt->outlier_ptr[t]; k < qt->outlier_ptr[t + 1]; k++)
                mark[(size_t)t * d + qt->outlier_index[k]] = 1;
    } else { /* CSC by channel, index = token */
        for (uint32_t c = 0; c < d; c++)
            for (uint32_t k = qt->outlier_ptr[c]; k < qt->outlier_ptr[c + 1]; k++)
                mark[(size_t)qt->outlier_index[k] * d + c] = 1;
    }
}

/* S6.6 (samples) */
kvq_status kvq_calibration_samples(const kvq_head_config *config, const float *x, const float *fisher,
                                   uint32_t n_tokens, uint32_t head_dim, const uint8_t *modality, float *z,
                                   float *w_out, size_t *n_out)
{
    if (config == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "config is NULL");
    if (x == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "x is NULL");
    if (z == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "z is NULL");
    if (w_out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "w_out is NULL");
    if (n_out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "n_out is NULL");
    if (config->quantizer.scheme != KVQ_SCHEME_NUQ)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "config.quantizer.scheme = %d is not KVQ_SCHEME_NUQ",
                        (int)config->quantizer.scheme);

    /* The NUQ group parameters do not depend on the codebook (S6.3), so a
     * missing codebook is replaced by the NormalFloat table of the same width. */
    kvq_head_config cfg = *config;
    kvq_codebook nf;
    if (cfg.quantizer.codebook == NULL) {
        kvq_status st = kvq_codebook_normalfloat(cfg.quantizer.bits, &nf);
        if (st != KVQ_OK) return st;
        cfg.quantizer.codebook = &nf;
    }

    kvq_qtensor *qt = NULL;
    kvq_status st = kvq_quantize_head(&cfg, x, n_tokens, head_dim, modality, &qt);
    if (st != KVQ_OK) return st;

    size_t total = (size_t)n_tokens * head_dim;
    if (fisher != NULL) {
        for (size_t i = 0; i < total; i++) {
            if (!isfinite(fisher[i]) || fisher[i] < 0.0f) {
                kvq_qtensor_free(qt);
                return kvq_fail(isfinite(fisher[i]) ? KVQ_ERR_BAD_ARGUMENT : KVQ_ERR_NONFINITE_INPUT,
                                "fisher[%zu] = %g is not a finite number >= 0", i, (double)fisher[i]);
            }
        }
    }

    uint8_t *mark = calloc(total, 1);
    float *zl = malloc(total * sizeof *zl);
    float *wl = malloc(total * sizeof *wl);
    if (mark == NULL || zl == NULL || wl == NULL) {
        free(mark);
        free(zl);
        free(wl);
        kvq_qtensor_free(qt);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for %zu calibration samples", total);
    }
    mark_outliers(qt, mark);

    size_t m = 0;
    for (uint32_t t = 0; t < n_tokens; t++) {
        if (qt->precision[t] != KVQ_PREC_QUANTIZED) continue; /* fp16 tokens are not codebook-quantized */
        for (uint32_t c = 0; c < head_dim; c++) {
            size_t i = (size_t)t * head_dim + c;
            if (mark[i]) continue; /* outliers are stored in fp16 (S7) */
            kvq_group_params p = group_params_of(qt, t, c);
            double a = (double)kvq_fp32_from_fp16(p.a);
            double b = (double)kvq_fp32_from_fp16(p.b);
            if (!(b > 0.0)) continue; /* a zero-range group has no shape to learn */
            /* Two double roundings then one to fp32, in this order (S6.6). */
            float v = (float)(((double)x[i] - a) / b);
            zl[m] = fminf(1.0f, fmaxf(-1.0f, v));
            wl[m] = fisher != NULL ? fisher[i] : 1.0f;
            m++;
        }
    }
    kvq_qtensor_free(qt);
    free(mark);
    memcpy(z, zl, m * sizeof *zl);
    memcpy(w_out, wl, m * sizeof *wl);
    *n_out = m;
    free(zl);
    free(wl);
    return KVQ_OK;
}
