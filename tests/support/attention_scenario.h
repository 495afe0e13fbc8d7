/*
 * attention_scenario.h - realistic decode-attention inputs shared by the
 * tests of S11 (test_attention.c) and of S12.3/S12.4's bounds
 * (test_attention.c, test_profiles.c): one KV head of d = 128 with NQ query
 * heads, quantized by the reference, with its exact dequantized values, the
 * reference output and the fp32 bound.
 */
#ifndef KVQ_TESTS_ATTENTION_SCENARIO_H
#define KVQ_TESTS_ATTENTION_SCENARIO_H

#include <stdbool.h>
#include <stdint.h>

#include "kvq/kvq.h"

enum { SCENARIO_D = 128, SCENARIO_NQ = 4 };

/* How the keys are stored and how peaked attention is. */
typedef struct scenario_options {
    uint32_t n_sinks;      /* sinks of keys and values (S8) */
    bool uniform_keys;     /* online per-channel uniform 4-bit keys (blocks of 32, 1% outliers) instead of
                              calibrated NUQ4 keys with 1% outliers */
    double query_scale;    /* multiplies the queries: small values give near-uniform weights */
} scenario_options;

typedef struct scenario {
    uint32_t n, q_position;
    uint32_t *pos;
    float *keys, *values, q[SCENARIO_NQ * SCENARIO_D];
    kvq_channel_range range[SCENARIO_D];
    kvq_qtensor *k, *v;
    float ref[SCENARIO_NQ * SCENARIO_D], bound[SCENARIO_NQ * SCENARIO_D];
    float *kd, *vd; /* exact dequantized values (class E) */
} scenario;

extern const kvq_rope scenario_rope; /* HALF, base 10000 */

/* A head configuration with the QUANTIZE_ALL policy, n_sinks sinks, no window:
 * values one group per token, keys online with blocks of one token. */
kvq_head_config scenario_head_config(kvq_role role, kvq_scheme scheme, uint32_t bits, uint32_t n_sinks);

/* Keys: one outlier channel (x20), a large first token whose energy sits in
 * the slowest-rotating pairs, heavy tails; values uniform 4-bit per token with
 * 1% outliers. Positions first_position, first_position + 1, ...; the query
 * at first_position + n. Deterministic in seed. */
void make_scenario_with(scenario *s, uint32_t n, uint32_t first_position, uint64_t seed, const scenario_options *o);
/* Calibrated NUQ4 keys, one sink, queries of scale 1. */
void make_scenario(scenario *s, uint32_t n, uint32_t first_position, uint64_t seed, uint32_t n_sinks);
void free_scenario(scenario *s);

/* The tests' own generator (independent of S14's): uniform in (0, 1), normal. */
void scenario_rng_seed(uint64_t seed);
double scenario_uniform01(void);
double scenario_normal(void);

#endif
