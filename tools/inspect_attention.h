/*
 * inspect_attention.h - `kvq inspect FILE.kvqz --against ORIGINAL.kvt
 * --attention`: what a quantized cache changes in decode attention (S11). For
 * each query head, the attention output over the quantized cache (the
 * reference's kvq_attention_decode, what a conforming kernel computes) is
 * compared with the attention over the original keys and values, and the
 * attention weights of the two are compared token by token.
 *
 * Queries are given (a .kvt whose keys are the queries: n_layers as the
 * cache, n_heads = KV heads x query heads per KV head, one token per query
 * position, positions when present) or drawn (the original key of a random
 * token, scaled so that its scores spread with a standard deviation of 2: a
 * query that looks for tokens like one it has seen, as retrieval heads do).
 */
#ifndef KVQ_INSPECT_ATTENTION_H
#define KVQ_INSPECT_ATTENTION_H

#include "json_write.h"
#include "kvq/kvq.h"
#include "kvq/kvq_io.h"
#include "plot/figure.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct attn_queries {
    uint32_t n_layers, n_kv_heads, head_dim;
    uint32_t n_q;       /* query heads per KV head (GQA group) */
    uint32_t n_steps;   /* query positions */
    float *q;           /* [layer][kv head][step][n_q][head_dim], pre-RoPE */
    uint32_t *position; /* [n_steps] */
    char source[320];   /* where they came from, for the report */
} attn_queries;

/* The key positions of the original (its positions array, else 0 .. n-1). */
uint32_t attn_key_position(const kvq_kvfile *orig, uint32_t t);

/* Reads queries from a .kvt (see above); on failure returns the status and a message in why. */
kvq_status attn_queries_read(const char *path, const kvq_kvfile *orig, attn_queries *out, char *why, size_t why_size);
/* n_q drawn queries per KV head at the position after the last key, from seed (S14.1's generator). */
kvq_status attn_queries_draw(const kvq_kvfile *orig, uint32_t n_q, uint64_t seed, attn_queries *out, char *why,
                             size_t why_size);
void attn_queries_free(attn_queries *q);

/* One query head at one position. */
typedef struct attn_row {
    uint32_t layer, kv_head, q_head, step, position;
    double out_rel;      /* |o_quant - o_orig| / |o_orig| (Euclidean norms over head_dim) */
    double out_max;      /* max |o_quant - o_orig| */
    double tv;           /* total variation of the weights: sum |p_quant - p_orig| / 2, in [0, 1] */
    double dp_max;       /* max |p_quant - p_orig| over tokens */
    double w0_orig, w0_quant; /* weight on token 0 (where sinks are) */
    uint32_t top_orig, top_quant; /* the most-attended token */
    double check_ratio;  /* this tool's attention over the quantized cache against kvq_attention_decode, as a
                            fraction of S12.3's bound (at most 1: the tool computes what the spec says) */
} attn_row;

typedef struct attn_report {
    size_t n;
    attn_row *row;
} attn_report;

/* Every query head of every layer; rope[layer] is each layer's RoPE. */
kvq_status attn_measure(const kvq_qfile *qf, const kvq_kvfile *orig, const attn_queries *q, const kvq_rope *rope,
                        attn_report *out, char *why, size_t why_size);
/* The weights of one row over the original and the quantized cache, [n_tokens] each. */
kvq_status attn_weights(const kvq_qfile *qf, const kvq_kvfile *orig, const attn_queries *q, const kvq_rope *rope,
                        const attn_row *row, double *w_orig, double *w_quant, char *why, size_t why_size);
void attn_report_free(attn_report *r);

/* The table and summary (text), or the "attention" member (JSON, without the key). */
void attn_print_text(const attn_report *r, const attn_queries *q, const kvq_rope *rope, uint32_t n_tokens);
/* The report as member `key` of the JSON document w writes (tools/conform/json_write.h). */
void attn_print_json(json_writer *w, const char *key, const attn_report *r, const attn_queries *q,
                     const kvq_rope *rope);

/* A figure of two panels (output error, weight shift) against the query heads,
 * and one series of a report in it (several reports compare configurations). */
void attn_figure_init(figure *f, const attn_queries *q, const char *title);
void attn_figure_add(figure *f, const attn_report *r, const attn_queries *q, const char *series);

#endif /* KVQ_INSPECT_ATTENTION_H */
