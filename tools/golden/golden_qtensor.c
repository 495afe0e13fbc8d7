/*
 * golden_qtensor.c - a quantized head slice as golden arrays, one per field
 * of kvq_qtensor (S4.4), plus its exact dequantization (S4.5).
 */
#include "golden_qtensor.h"

#include <stdio.h>
#include <stdlib.h>

#define SHAPE(...) ((const uint32_t[4]){__VA_ARGS__})

void golden_qtensor_arrays(golden_writer *w, const char *prefix, const kvq_qtensor *qt)
{
    char label[96];
#define LABEL(field) (snprintf(label, sizeof label, "%s_%s", prefix, field), label)
    uint32_t n = qt->n_tokens, d = qt->head_dim;
    golden_array(w, GOLDEN_EXACT, LABEL("precision"), GOLDEN_U8, qt->precision, SHAPE(n));
    golden_array(w, GOLDEN_EXACT, LABEL("params"), GOLDEN_U16, qt->params, SHAPE(qt->n_params, 2));
    golden_array(w, GOLDEN_BOUNDARY, LABEL("codes"), GOLDEN_U8, qt->codes, SHAPE(n, (uint32_t)qt->row_bytes));
    golden_array(w, GOLDEN_EXACT, LABEL("fp16_rows"), GOLDEN_U16, qt->fp16_rows, SHAPE(qt->n_fp16_rows, d));
    uint32_t n_ptr = qt->role == KVQ_ROLE_VALUES ? n + 1 : d + 1;
    golden_array(w, GOLDEN_EXACT, LABEL("outlier_ptr"), GOLDEN_U32, qt->outlier_ptr, SHAPE(n_ptr));
    golden_array(w, GOLDEN_EXACT, LABEL("outlier_index"), GOLDEN_U32, qt->outlier_index, SHAPE(qt->n_outliers));
    golden_array(w, GOLDEN_EXACT, LABEL("outlier_value"), GOLDEN_U16, qt->outlier_value, SHAPE(qt->n_outliers));
    float *values = malloc((size_t)n * d * sizeof *values);
    if (values == NULL) {
        golden_fail(w, "malloc", KVQ_ERR_OUT_OF_MEMORY);
        return;
    }
    kvq_status st = kvq_dequantize_head(qt, values);
    if (st != KVQ_OK)
        golden_fail(w, "kvq_dequantize_head", st);
    else
        golden_array(w, GOLDEN_EXACT, LABEL("dequantized"), GOLDEN_F32, values, SHAPE(n, d));
    free(values);
#undef LABEL
}
