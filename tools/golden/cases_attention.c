/*
 * cases_attention.c - golden cases for RoPE (S9) and decode attention over
 * the mixed cache (S11), with the per-element error bound (S12.3).
 */
#include "golden.h"
#include "json_write.h"
#include "golden_qtensor.h"

#include "conform/inexact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const uint32_t[4]){__VA_ARGS__})

static const char *pairing_name(kvq_rope_pairing p)
{
    static const char *const names[] = {"none", "half", "interleaved"};
    return names[p];
}

/* S9: cos/sin of every pair and rotated vectors, at positions up to 10^7. */
static void rope_case(golden_writer *w, kvq_rope_pairing pairing, uint32_t d)
{
    enum { N_POS = 12 };
    static const uint32_t positions[N_POS] = {0, 1, 2, 100, 4095, 32768, 131071, 1000000, 4194305, 9999991,
                                              10000000, 2147483647u};
    static float cosines[N_POS * 128], sines[N_POS * 128], x[N_POS * 256], rotated[N_POS * 256];
    kvq_rope rope = {pairing, 10000.0f};
    kvq_rng rng;
    kvq_rng_seed(&rng, 91 + d);
    for (uint32_t i = 0; i < N_POS * d; i++) x[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(kvq_rng_normal(&rng)));
    for (uint32_t p = 0; p < N_POS; p++) {
        for (uint32_t i = 0; i < d / 2; i++)
            kvq_rope_angle(&rope, d, i, positions[p], &cosines[p * (d / 2) + i], &sines[p * (d / 2) + i]);
        GOLDEN_CHECK(w, kvq_rope_apply(&rope, d, positions[p], x + p * d, rotated + p * d));
    }
    char name[64];
    snprintf(name, sizeof name, "rope_%s_d%u", pairing_name(pairing), d);
    json_text params;
    json_writer *p = golden_params(&params);
    json_write_string(p, "pairing", pairing_name(pairing));
    json_write_u64(p, "base", 10000);
    json_write_u64(p, "head_dim", d);
    json_write_string(p, "tolerance",
                      "cos, sin: 3 ulps of the reference; rotated: (10u + p 2^-51)(|x_a| + |x_b|) (S12.3 step 1)");
    golden_begin_case(w, name, "S9", "rope", golden_params_text(&params));
    json_text_free(&params);
    golden_array(w, GOLDEN_INPUT, "positions", GOLDEN_U32, positions, SHAPE(N_POS));
    golden_array(w, GOLDEN_INPUT, "x", GOLDEN_F32, x, SHAPE(N_POS, d));
    golden_array(w, GOLDEN_BOUNDED, "cos", GOLDEN_F32, cosines, SHAPE(N_POS, d / 2));
    golden_array(w, GOLDEN_BOUNDED, "sin", GOLDEN_F32, sines, SHAPE(N_POS, d / 2));
    golden_array(w, GOLDEN_BOUNDED, "rotated", GOLDEN_F32, rotated, SHAPE(N_POS, d));
    golden_end_case(w);
}

typedef struct attention_case {
    const char *name;
    uint32_t n_tokens, head_dim, n_q;
    kvq_rope_pairing pairing;
    uint32_t first_position; /* key t sits at first_position + t; the query right after the last key */
    kvq_scheme key_scheme, value_scheme;
    uint32_t key_bits, value_bits;
    kvq_key_mode key_mode;
    uint32_t key_block;  /* online keys: tokens per block */
    uint32_t n_sinks;    /* the policy's attention sinks (S8) */
    uint32_t sink_token; /* kvq_synth_kv: token 0 of large norm (1) or not (0) */
    float q_scale;       /* q = fp16(q_scale * normal): small scales give nearly uniform weights */
    int inexact;         /* 1: keys and values moved off the fp16 grid (conform_inexact) */
    uint64_t seed;
} attention_case;

/* The production format (head_dim 128, HALF RoPE at consecutive positions, keys and values of one
 * code width, per-channel keys with key outliers, one value group per token) is what real models
 * and the CUDA fast kernel use; those cases are named attention_prod_*. */
static const attention_case attention_cases[] = {
    {"attention_d128_n300_half_gqa4", 300, 128, 4, KVQ_ROPE_HALF, 0, KVQ_SCHEME_NUQ, KVQ_SCHEME_UNIFORM_ASYM, 4, 4,
     KVQ_KEYS_PER_CHANNEL_CALIBRATED, 32, 1, 1, 1.0f, 0, 301},
    {"attention_d64_n1", 1, 64, 1, KVQ_ROPE_HALF, 0, KVQ_SCHEME_UNIFORM_ASYM, KVQ_SCHEME_UNIFORM_ASYM, 4, 4,
     KVQ_KEYS_PER_CHANNEL_ONLINE, 32, 1, 1, 1.0f, 0, 302},
    {"attention_d64_n97_interleaved", 97, 64, 2, KVQ_ROPE_INTERLEAVED, 17, KVQ_SCHEME_UNIFORM_ASYM,
     KVQ_SCHEME_UNIFORM_ASYM, 2, 2, KVQ_KEYS_PER_CHANNEL_ONLINE, 32, 1, 1, 1.0f, 0, 303},
    {"attention_d256_n200_nuq3", 200, 256, 1, KVQ_ROPE_HALF, 0, KVQ_SCHEME_NUQ, KVQ_SCHEME_NUQ, 3, 3,
     KVQ_KEYS_PER_CHANNEL_CALIBRATED, 32, 1, 1, 1.0f, 0, 304},
    {"attention_d128_far_positions", 64, 128, 2, KVQ_ROPE_HALF, 9999936, KVQ_SCHEME_UNIFORM_ASYM,
     KVQ_SCHEME_UNIFORM_ASYM, 4, 4, KVQ_KEYS_PER_CHANNEL_ONLINE, 32, 1, 1, 1.0f, 0, 305},
    {"attention_d128_n129_norope_int8", 129, 128, 8, KVQ_ROPE_NONE, 0, KVQ_SCHEME_UNIFORM_SYM,
     KVQ_SCHEME_UNIFORM_SYM, 8, 8, KVQ_KEYS_PER_CHANNEL_ONLINE, 32, 1, 1, 1.0f, 0, 306},
    /* head_dim above 256 (S1.4 allows 1024) */
    {"attention_d512_n48_gqa2", 48, 512, 2, KVQ_ROPE_HALF, 0, KVQ_SCHEME_NUQ, KVQ_SCHEME_UNIFORM_ASYM, 4, 4,
     KVQ_KEYS_PER_CHANNEL_CALIBRATED, 32, 1, 1, 1.0f, 0, 307},
    {"attention_d1024_n24_interleaved", 24, 1024, 1, KVQ_ROPE_INTERLEAVED, 1000, KVQ_SCHEME_UNIFORM_ASYM,
     KVQ_SCHEME_UNIFORM_SYM, 4, 8, KVQ_KEYS_PER_CHANNEL_ONLINE, 8, 1, 1, 1.0f, 1, 308},
    /* the production format, with key outliers, n_q 1, 4 and 8, with and without a sink */
    {"attention_prod_calibrated_nuq4_nq1", 200, 128, 1, KVQ_ROPE_HALF, 0, KVQ_SCHEME_NUQ, KVQ_SCHEME_NUQ, 4, 4,
     KVQ_KEYS_PER_CHANNEL_CALIBRATED, 0, 1, 1, 1.0f, 1, 311},
    {"attention_prod_online_asym4_nq4", 257, 128, 4, KVQ_ROPE_HALF, 0, KVQ_SCHEME_UNIFORM_ASYM,
     KVQ_SCHEME_UNIFORM_ASYM, 4, 4, KVQ_KEYS_PER_CHANNEL_ONLINE, 32, 1, 1, 1.0f, 0, 312},
    {"attention_prod_calibrated_asym2_nq8_uniform", 130, 128, 8, KVQ_ROPE_HALF, 0, KVQ_SCHEME_UNIFORM_ASYM,
     KVQ_SCHEME_UNIFORM_ASYM, 2, 2, KVQ_KEYS_PER_CHANNEL_CALIBRATED, 0, 0, 0, 0.0625f, 1, 313},
    {"attention_prod_online_nuq3_nq1_uniform", 160, 128, 1, KVQ_ROPE_HALF, 0, KVQ_SCHEME_NUQ, KVQ_SCHEME_NUQ, 3, 3,
     KVQ_KEYS_PER_CHANNEL_ONLINE, 64, 0, 0, 0.125f, 0, 314},
    {"attention_prod_calibrated_asym8_nq4", 96, 128, 4, KVQ_ROPE_HALF, 5000, KVQ_SCHEME_UNIFORM_ASYM,
     KVQ_SCHEME_UNIFORM_ASYM, 8, 8, KVQ_KEYS_PER_CHANNEL_CALIBRATED, 0, 1, 1, 1.0f, 1, 315},
    /* few tokens with nearly uniform weights: every token's error shows, little averages out */
    {"attention_prod_calibrated_sym4_nq4_n24_uniform", 24, 128, 4, KVQ_ROPE_HALF, 0, KVQ_SCHEME_UNIFORM_SYM,
     KVQ_SCHEME_UNIFORM_SYM, 4, 4, KVQ_KEYS_PER_CHANNEL_CALIBRATED, 0, 0, 0, 0.0625f, 1, 316},
};

static void attention_case_run(golden_writer *w, const attention_case *ac)
{
    uint32_t n = ac->n_tokens, d = ac->head_dim;
    float *keys = malloc((size_t)n * d * sizeof *keys), *values = malloc((size_t)n * d * sizeof *values);
    float *samples = malloc(((size_t)n + 256) * d * sizeof *samples);
    float *q = malloc((size_t)ac->n_q * d * sizeof *q), *out = malloc((size_t)ac->n_q * d * sizeof *out);
    float *bound = malloc((size_t)KVQ_PROFILE_COUNT * ac->n_q * d * sizeof *bound); /* one per profile (S12.4) */
    uint8_t *modality = malloc(n);
    uint32_t *positions = malloc((size_t)n * sizeof *positions);
    kvq_channel_range *ranges = malloc(d * sizeof *ranges);
    kvq_qtensor *kq = NULL, *vq = NULL;
    if (!keys || !values || !samples || !q || !out || !bound || !modality || !positions || !ranges) {
        golden_fail(w, ac->name, KVQ_ERR_OUT_OF_MEMORY);
        goto done;
    }
    kvq_synth_params sp = {n, d, ac->seed, 4, 0.01f, ac->sink_token, 24, 6};
    GOLDEN_CHECK(w, kvq_synth_kv(&sp, keys, values, modality));
    /* Calibration samples: 256 held-out tokens of the same head (the generator is prefix-consistent, S14.3). */
    kvq_synth_params cal = {n + 256, d, ac->seed, 4, 0.01f, ac->sink_token, 24, 6};
    GOLDEN_CHECK(w, kvq_synth_kv(&cal, samples, NULL, NULL));
    GOLDEN_CHECK(w, kvq_calibrate_channel_ranges(samples + (size_t)n * d, 256, d, 10000, ranges));
    if (ac->inexact) {
        conform_inexact(keys, (size_t)n * d, ac->seed + 1000u);
        conform_inexact(values, (size_t)n * d, ac->seed + 2000u);
    }
    for (uint32_t t = 0; t < n; t++) positions[t] = ac->first_position + t;
    kvq_rng rng;
    kvq_rng_seed(&rng, ac->seed + 7u);
    for (uint32_t i = 0; i < ac->n_q * d; i++)
        q[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(ac->q_scale * kvq_rng_normal(&rng)));

    kvq_codebook key_cb, value_cb;
    kvq_head_config kc = {0}, vc = {0};
    kc.role = KVQ_ROLE_KEYS;
    kc.quantizer = (kvq_quantizer){ac->key_scheme, ac->key_bits, NULL};
    if (ac->key_scheme == KVQ_SCHEME_NUQ) {
        GOLDEN_CHECK(w, kvq_codebook_normalfloat(ac->key_bits, &key_cb));
        kc.quantizer.codebook = &key_cb;
    }
    kc.key_mode = ac->key_mode;
    kc.group_size = ac->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE ? ac->key_block : 0;
    kc.outlier_ppm = 10000;
    kc.channel_range = ranges;
    kc.n_channel_range = ranges != NULL ? d : 0u;
    kc.policy = kvq_token_policy_default();
    kc.policy.n_sinks = ac->n_sinks;
    vc.role = KVQ_ROLE_VALUES;
    vc.quantizer = (kvq_quantizer){ac->value_scheme, ac->value_bits, NULL};
    if (ac->value_scheme == KVQ_SCHEME_NUQ) {
        GOLDEN_CHECK(w, kvq_codebook_normalfloat(ac->value_bits, &value_cb));
        vc.quantizer.codebook = &value_cb;
    }
    vc.outlier_ppm = 10000;
    vc.policy = kc.policy;
    GOLDEN_CHECK(w, kvq_quantize_head(&kc, keys, n, d, modality, &kq));
    GOLDEN_CHECK(w, kvq_quantize_head(&vc, values, n, d, modality, &vq));
    if (kq == NULL || vq == NULL) goto done;
    kvq_rope rope = {ac->pairing, 10000.0f};
    uint32_t q_position = ac->first_position + n;
    GOLDEN_CHECK(w, kvq_attention_decode(kq, vq, positions, &rope, q, ac->n_q, q_position, out));
    float *const bounds[KVQ_PROFILE_COUNT] = {bound, bound + (size_t)ac->n_q * d, bound + 2 * (size_t)ac->n_q * d};
    golden_profile_bounds(w, kq, vq, positions, &rope, q, ac->n_q, q_position, bounds);

    bool calibrated = ac->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    json_text params;
    json_writer *p = golden_params(&params);
    json_write_u64(p, "n_tokens", n);
    json_write_u64(p, "head_dim", d);
    json_write_u64(p, "n_q", ac->n_q);
    json_write_object_inline(p, "rope");
    json_write_string(p, "pairing", pairing_name(ac->pairing));
    json_write_u64(p, "base", 10000);
    json_write_end(p);
    json_write_u64(p, "q_position", q_position);
    json_write_object_inline(p, "keys");
    json_write_string(p, "scheme", golden_scheme_name(ac->key_scheme));
    json_write_u64(p, "bits", ac->key_bits);
    json_write_string(p, "key_mode", calibrated ? "calibrated" : "online");
    json_write_string(p, "beyond_range", calibrated ? "outliers" : "n/a");
    json_write_u64(p, "group_size", kc.group_size);
    json_write_u64(p, "outlier_ppm", 10000);
    json_write_string(p, "codebook", ac->key_scheme == KVQ_SCHEME_NUQ ? "normalfloat" : "none");
    json_write_end(p);
    json_write_object_inline(p, "values");
    json_write_string(p, "scheme", golden_scheme_name(ac->value_scheme));
    json_write_u64(p, "bits", ac->value_bits);
    json_write_u64(p, "group_size", 0);
    json_write_u64(p, "outlier_ppm", 10000);
    json_write_string(p, "codebook", ac->value_scheme == KVQ_SCHEME_NUQ ? "normalfloat" : "none");
    json_write_end(p);
    golden_policy_json(p, "policy", &(kvq_token_policy){KVQ_POLICY_TEXT_CENTRIC, 100000, ac->n_sinks, 0});
    json_write_u64(p, "seed", ac->seed);
    json_write_object_inline(p, "inputs");
    json_write_stringf(p, "keys, values, modality",
                       "kvq_synth_kv(n_tokens, head_dim, seed, n_outlier_channels 4, tail_probability 0.01, "
                       "sink_token %u, image_run 24, text_run 6)%s",
                       ac->sink_token,
                       ac->inexact ? ", then keys and values moved off the fp16 grid by conform_inexact(seed + 1000) "
                                     "and conform_inexact(seed + 2000) (tools/conform/inexact.c)"
                                   : "");
    json_write_stringf(p, "positions", "%u + t", ac->first_position);
    json_write_stringf(p, "q", "fp16(%g * kvq_rng_normal) from a generator seeded with seed + 7",
                       (double)ac->q_scale);
    if (calibrated)
        json_write_string(p, "channel_range",
                          "kvq_calibrate_channel_ranges(10000 ppm) of tokens n_tokens .. n_tokens + 255 of the same "
                          "generator run made n_tokens + 256 tokens long");
    json_write_string(p, "k_*, v_*", "kvq_quantize_head of keys and values with the configs above");
    json_write_end(p);
    golden_begin_case(w, ac->name, "S9,S11,S12.3,S12.4", "attention_decode", golden_params_text(&params));
    json_text_free(&params);
    golden_array(w, GOLDEN_INPUT, "keys", GOLDEN_F32, keys, SHAPE(n, d));
    golden_array(w, GOLDEN_INPUT, "values", GOLDEN_F32, values, SHAPE(n, d));
    golden_array(w, GOLDEN_INPUT, "modality", GOLDEN_U8, modality, SHAPE(n));
    golden_array(w, GOLDEN_INPUT, "positions", GOLDEN_U32, positions, SHAPE(n));
    if (calibrated) golden_array(w, GOLDEN_INPUT, "channel_range", GOLDEN_F32, ranges, SHAPE(d, 2));
    golden_array(w, GOLDEN_INPUT, "q", GOLDEN_F32, q, SHAPE(ac->n_q, d));
    golden_qtensor_arrays(w, "k", kq);
    golden_qtensor_arrays(w, "v", vq);
    golden_array(w, GOLDEN_BOUNDED, "out", GOLDEN_F32, out, SHAPE(ac->n_q, d));
    golden_bound_arrays(w, (const float *const *)bounds, SHAPE(ac->n_q, d));
    golden_end_case(w);
done:
    kvq_qtensor_free(kq);
    kvq_qtensor_free(vq);
    free(keys);
    free(values);
    free(samples);
    free(q);
    free(out);
    free(bound);
    free(modality);
    free(positions);
    free(ranges);
}

void golden_cases_attention(golden_writer *w)
{
    rope_case(w, KVQ_ROPE_HALF, 64);
    rope_case(w, KVQ_ROPE_INTERLEAVED, 64);
    rope_case(w, KVQ_ROPE_HALF, 256);
    for (size_t i = 0; i < sizeof attention_cases / sizeof attention_cases[0]; i++)
        attention_case_run(w, &attention_cases[i]);
}
