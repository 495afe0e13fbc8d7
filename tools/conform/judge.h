/*
 * judge.h - the tolerance classes of S12 as functions that compare a result
 * with the reference's and describe the first difference:
 *   class E (S12.1) byte for byte, class B (S12.2) codes one step away within
 *   the decision boundary window, class A (S12.3) within a per-element bound.
 */
#ifndef KVQ_CONFORM_JUDGE_H
#define KVQ_CONFORM_JUDGE_H

#include "conform.h"

/* The names of a quantized head slice's fields in diagnostics: the golden
 * labels (S16.7), e.g. "q_params", "k_codes", "final_v_outlier_index". */
typedef struct qt_labels {
    char header[64];
    char precision[64];
    char fp16_slot[64];
    char fp16_rows[64];
    char params[64];
    char codes[64];
    char outlier_ptr[64];
    char outlier_index[64];
    char outlier_value[64];
    char dequantized[64];
} qt_labels;

/* "<prefix>_precision", ... */
void qt_labels_for(qt_labels *labels, const char *prefix);
/* The quantize_groups cases (uniform_*, nuq_normalfloat_*): "params", "codes", "decoded". */
void qt_labels_for_groups(qt_labels *labels);

typedef struct qt_judgement {
    uint32_t boundary_accepted; /* codes != reference's, accepted by S12.2 */
    bool codes_differ;          /* any accepted difference: dequantized values then differ too */
} qt_judgement;

/* Compares got with expected field by field (S4.4): the scalar fields, then
 * precision, fp16 slots and rows, group parameters, the outlier sets (class
 * E) and the codes (class B: x[n_tokens][head_dim] are the inputs; with x
 * NULL codes must be identical). Returns false at the first failure. */
bool judge_qtensor(const qt_labels *labels, const kvq_qtensor *expected, const kvq_qtensor *got, const float *x,
                   qt_judgement *judgement, conform_diag *d);

/* Class E for arrays of count elements laid out as rows of row_length
 * (where = "<row_word> r, <col_word> c"). */
bool judge_floats_exact(const char *field, const float *expected, const float *got, size_t count,
                        uint32_t row_length, const char *row_word, const char *col_word, conform_diag *d);
bool judge_bytes_exact(const char *field, const uint8_t *expected, const uint8_t *got, size_t count,
                       uint32_t row_length, const char *row_word, const char *col_word, conform_diag *d);

/* Class A: |got - expected| <= bound per element (NaN fails). worst_ratio
 * receives max |got - expected| / bound (updated, never lowered). */
bool judge_bounded(const char *field, const float *expected, const float *got, const float *bound, size_t count,
                   uint32_t row_length, const char *row_word, const char *col_word, double *worst_ratio,
                   conform_diag *d);
/* The worst ratio alone (for hints: does another computation fit?). */
double bounded_worst_ratio(const float *expected, const float *got, const float *bound, size_t count);

/* Index of the group parameters that element (t, c) uses (S4.5 step 2). */
size_t qt_param_index(const kvq_qtensor *qt, uint32_t t, uint32_t c);

#endif
