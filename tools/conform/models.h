/*
 * models.h - one conformance case in memory: its inputs and the reference's
 * expected results, whether they come from the golden set (golden_cases.c)
 * or from libkvq on random inputs (random_cases.c). The runners (run_*.c)
 * and the file checker (check_outputs.c) only see these.
 */
#ifndef KVQ_CONFORM_MODELS_H
#define KVQ_CONFORM_MODELS_H

#include "judge.h"

/* L0: rows of one-byte codes and their packed form (S5). */
typedef struct pack_model {
    uint32_t bits, row_len, n_rows;
    uint8_t *codes;   /* [n_rows][row_len] */
    uint8_t *packed;  /* [n_rows][row_len * bits / 8] */
    char what[512];
} pack_model;

/* L1-L3: quantize_head of one head slice (S4). */
typedef struct quantize_model {
    kvq_head_config config;    /* pointers below are owned by the model */
    kvq_codebook codebook;
    kvq_channel_range *ranges; /* calibrated keys: [head_dim] */
    uint32_t n_tokens, head_dim;
    float *x;                  /* [n_tokens][head_dim] */
    uint8_t *modality;         /* [n_tokens] or NULL (S10.1: all image) */
    kvq_qtensor *expected;     /* the reference's result */
    float *expected_dequantized; /* [n_tokens][head_dim] (S4.5) */
    qt_labels labels;
    char what[512];
    char golden_note[256];     /* e.g. a golden file failing its checksum */
} quantize_model;

/* L4: decode attention over uploaded reference tensors (S11). */
typedef struct attention_model {
    kvq_qtensor *keys, *values;
    uint32_t *positions;       /* [n_tokens] */
    kvq_rope rope;
    float *q;                  /* [n_q][head_dim] */
    uint32_t n_q, q_position;
    float *expected, *bound;   /* [n_q][head_dim]; bound at `profile` */
    kvq_attention_profile profile; /* S12.4 */
    char what[512];
    char golden_note[256];
} attention_model;

/* L5: a cache driven through appends, attending after each (S15). */
typedef struct cache_model {
    kvq_head_config key_config, value_config;
    kvq_codebook key_codebook, value_codebook;
    kvq_channel_range *ranges;
    uint32_t head_dim, n_q, n_steps, n_total;
    uint32_t *append_sizes;    /* [n_steps] */
    float *keys, *values;      /* [n_total][head_dim] */
    uint8_t *modality;         /* [n_total] or NULL */
    uint32_t *positions;       /* [n_total] or NULL (default positions, S15.2) */
    uint8_t *explicit_positions; /* [n_steps]: 1 = append s passes its part of positions, 0 = NULL (the
                                    defaults); NULL = every append passes positions when they are set */
    float *queries;            /* [n_steps][n_q][head_dim] */
    kvq_rope rope;
    /* golden expectations, or NULL: computed with libkvq's cache as the run goes */
    float *expected_out, *bound; /* [n_steps][n_q][head_dim]; bound at `profile` */
    kvq_attention_profile profile; /* S12.4 */
    kvq_qtensor *final_keys, *final_values;
    float *final_keys_dequantized, *final_values_dequantized;
    char what[512];
    char golden_note[256];
} cache_model;

void pack_model_free(pack_model *m);
void quantize_model_free(quantize_model *m);
void attention_model_free(attention_model *m);
void cache_model_free(cache_model *m);

/* Sets model pointers that refer into the model itself (codebook, ranges)
 * after the model was filled or copied. */
void quantize_model_link(quantize_model *m);
void cache_model_link(cache_model *m);

/* A kvq_qtensor built from its arrays (fp16_slot derived from precision):
 * the golden files describe one this way. Takes ownership of nothing. */
typedef struct qtensor_parts {
    kvq_role role;
    kvq_key_mode key_mode;
    kvq_scheme scheme;
    uint32_t bits, n_tokens, head_dim, group_size;
    const kvq_codebook *codebook; /* NUQ, else NULL */
    const uint8_t *precision;
    const uint16_t *params;       /* [n_params][2] */
    uint32_t n_params;
    const uint8_t *codes;         /* [n_tokens][row_bytes] */
    const uint16_t *fp16_rows;    /* [n_fp16_rows][head_dim] */
    uint32_t n_fp16_rows;
    const uint32_t *outlier_ptr, *outlier_index;
    const uint16_t *outlier_value;
    uint32_t n_outliers;
} qtensor_parts;

kvq_status qtensor_from_parts(const qtensor_parts *parts, kvq_qtensor **out);

/* One line about a configuration, for the `what` of a case, e.g.
 * "values nuq 3-bit (codebook), group 64, outliers 20000 ppm". */
void describe_head_config(char *out, size_t size, const kvq_head_config *c, uint32_t head_dim);
/* e.g. "policy text_centric budget 100000 ppm, 1 sinks, window 0" */
void describe_token_policy(char *out, size_t size, const kvq_token_policy *p);
const char *describe_pairing(kvq_rope_pairing pairing); /* "none", "half", "interleaved" */

#endif
