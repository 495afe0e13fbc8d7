/*
 * cases_cache.c - golden cases for a cache driven through appends and
 * attention steps (S15): a prompt, then decode steps of one token, then more
 * tokens, attending after every append. One case follows S15.5's positions
 * example (default positions after explicit ones); the cache_prod_* cases
 * use the production format (head_dim 128, HALF RoPE, keys and values of one
 * width, per-channel keys with outliers) with inputs that are not fp16
 * numbers, so the fp16 rows of sinks, policy, window and residual tokens all
 * need a rounding (S4.1 step 3).
 */
#include "golden.h"
#include "json_write.h"
#include "golden_qtensor.h"

#include "conform/inexact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const uint32_t[4]){__VA_ARGS__})

enum { MAX_STEPS = 16, CALIBRATION_SAMPLES = 256 };

typedef struct cache_case {
    const char *name;
    uint32_t head_dim, n_q, n_steps;
    uint32_t append_sizes[MAX_STEPS];
    uint8_t explicit_positions[MAX_STEPS]; /* 1: the append passes positions (the next of `given`), 0: NULL */
    uint32_t given[8];                     /* the explicit positions, in token order */
    kvq_rope_pairing pairing;
    kvq_scheme key_scheme, value_scheme;
    uint32_t key_bits, value_bits;
    kvq_key_mode key_mode;
    uint32_t key_block, key_ppm, value_group, value_ppm;
    kvq_token_policy policy;
    kvq_synth_params synth; /* n_tokens is set to the total */
    float q_scale;
    int inexact;
    uint64_t query_seed;
} cache_case;

static const cache_case cache_cases[] = {
    {"cache_append_attend", 64, 2, 10, {40, 1, 1, 1, 13, 1, 16, 1, 1, 7}, {0}, {0}, KVQ_ROPE_HALF,
     KVQ_SCHEME_UNIFORM_ASYM, KVQ_SCHEME_UNIFORM_ASYM, 4, 2, KVQ_KEYS_PER_CHANNEL_ONLINE, 8, 20000, 32, 20000,
     {KVQ_POLICY_TEXT_CENTRIC, 150000, 1, 4}, {0, 64, 401, 3, 0.01f, 1, 20, 8}, 1.0f, 0, 402},
    /* S15.5: 2 tokens with default positions, 2 at [100, 50], 1 default: positions [0, 1, 100, 50, 51] */
    {"cache_positions_s15_5", 64, 1, 3, {2, 2, 1}, {0, 1, 0}, {100, 50}, KVQ_ROPE_HALF, KVQ_SCHEME_UNIFORM_ASYM,
     KVQ_SCHEME_UNIFORM_ASYM, 4, 4, KVQ_KEYS_PER_CHANNEL_ONLINE, 2, 0, 0, 0, {KVQ_POLICY_QUANTIZE_ALL, 0, 0, 0},
     {0, 64, 410, 2, 0.0f, 0, 0, 1}, 1.0f, 0, 411},
    {"cache_prod_calibrated_nuq4_nq4_inexact", 128, 4, 10, {150, 1, 1, 1, 1, 20, 1, 1, 13, 1}, {0}, {0},
     KVQ_ROPE_HALF, KVQ_SCHEME_NUQ, KVQ_SCHEME_NUQ, 4, 4, KVQ_KEYS_PER_CHANNEL_CALIBRATED, 0, 0, 0, 10000,
     {KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 4}, {0, 128, 420, 4, 0.01f, 1, 24, 6}, 1.0f, 1, 421},
    {"cache_prod_online_asym4_nq8_uniform_inexact", 128, 8, 9, {70, 1, 1, 1, 1, 1, 32, 1, 1}, {0}, {0},
     KVQ_ROPE_HALF, KVQ_SCHEME_UNIFORM_ASYM, KVQ_SCHEME_UNIFORM_ASYM, 4, 4, KVQ_KEYS_PER_CHANNEL_ONLINE, 32, 10000,
     0, 10000, {KVQ_POLICY_TEXT_CENTRIC, 100000, 0, 3}, {0, 128, 430, 4, 0.01f, 0, 24, 6}, 0.0625f, 1, 431},
    {"cache_prod_online_asym2_nq1", 128, 1, 11, {40, 1, 1, 1, 1, 1, 1, 1, 1, 40, 1}, {0}, {0}, KVQ_ROPE_HALF,
     KVQ_SCHEME_UNIFORM_ASYM, KVQ_SCHEME_UNIFORM_ASYM, 2, 2, KVQ_KEYS_PER_CHANNEL_ONLINE, 32, 10000, 0, 10000,
     {KVQ_POLICY_IMAGE_CENTRIC, 200000, 2, 0}, {0, 128, 440, 4, 0.01f, 1, 24, 6}, 1.0f, 0, 441},
};

/* "key": [a, b, c] of n numbers. */
static void json_list(json_writer *p, const char *key, const uint32_t *v, uint32_t n)
{
    json_write_array_inline(p, key);
    for (uint32_t i = 0; i < n; i++) json_write_u64(p, NULL, v[i]);
    json_write_end(p);
}

/* "a, b, c" of n numbers, for prose. */
static void text_list(char *out, size_t size, const uint32_t *v, uint32_t n)
{
    size_t used = (size_t)snprintf(out, size, "[");
    for (uint32_t i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%u", i ? ", " : "", v[i]);
    if (used < size) snprintf(out + used, size - used, "]");
}

static void params_json(json_writer *p, const cache_case *cc, bool any_explicit)
{
    uint32_t f[MAX_STEPS], n_given = 0;
    for (uint32_t s = 0; s < cc->n_steps; s++) {
        f[s] = cc->explicit_positions[s];
        if (f[s]) n_given += cc->append_sizes[s];
    }
    bool calibrated = cc->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    const kvq_synth_params *sp = &cc->synth;
    json_write_u64(p, "head_dim", cc->head_dim);
    json_write_u64(p, "n_q", cc->n_q);
    json_list(p, "append_sizes", cc->append_sizes, cc->n_steps);
    if (any_explicit) {
        char given[160];
        text_list(given, sizeof given, cc->given, n_given);
        json_list(p, "explicit_positions", f, cc->n_steps);
        json_write_stringf(p, "positions",
                           "append s passes the entries of the positions file for its tokens when "
                           "explicit_positions[s] is 1 (%s), NULL otherwise (S15.2 defaults: last position + 1, 0 "
                           "for the first token)",
                           given);
    } else {
        json_write_string(p, "positions", "default (0, 1, 2, ...): every append passes NULL");
    }
    json_write_string(p, "q_position", "last key position + 1");
    json_write_object_inline(p, "rope");
    json_write_string(p, "pairing", cc->pairing == KVQ_ROPE_HALF ? "half" : "interleaved");
    json_write_u64(p, "base", 10000);
    json_write_end(p);
    json_write_object_inline(p, "keys");
    json_write_string(p, "scheme", golden_scheme_name(cc->key_scheme));
    json_write_u64(p, "bits", cc->key_bits);
    json_write_string(p, "key_mode", calibrated ? "calibrated" : "online");
    json_write_string(p, "beyond_range", calibrated ? "outliers" : "n/a");
    json_write_u64(p, "group_size", calibrated ? 0u : cc->key_block);
    json_write_u64(p, "outlier_ppm", cc->key_ppm);
    json_write_string(p, "codebook", cc->key_scheme == KVQ_SCHEME_NUQ ? "normalfloat" : "none");
    json_write_end(p);
    json_write_object_inline(p, "values");
    json_write_string(p, "scheme", golden_scheme_name(cc->value_scheme));
    json_write_u64(p, "bits", cc->value_bits);
    json_write_u64(p, "group_size", cc->value_group);
    json_write_u64(p, "outlier_ppm", cc->value_ppm);
    json_write_string(p, "codebook", cc->value_scheme == KVQ_SCHEME_NUQ ? "normalfloat" : "none");
    json_write_end(p);
    golden_policy_json(p, "policy", &cc->policy);
    json_write_u64(p, "seed", sp->seed);
    json_write_object_inline(p, "inputs");
    json_write_stringf(p, "keys, values, modality",
                       "kvq_synth_kv(total tokens, head_dim, seed, n_outlier_channels %u, tail_probability %g, "
                       "sink_token %u, image_run %u, text_run %u)%s",
                       sp->n_outlier_channels, (double)sp->tail_probability, sp->sink_token, sp->image_run,
                       sp->text_run,
                       cc->inexact ? ", then keys and values moved off the fp16 grid by conform_inexact(seed + 1000) "
                                     "and conform_inexact(seed + 2000) (tools/conform/inexact.c)"
                                   : "");
    json_write_stringf(p, "queries",
                       "fp16(%g * kvq_rng_normal) from a generator seeded with %llu, one [n_q][head_dim] per append",
                       (double)cc->q_scale, (unsigned long long)cc->query_seed);
    if (calibrated)
        json_write_string(p, "channel_range",
                          "kvq_calibrate_channel_ranges(10000 ppm) of the 256 tokens after the case's tokens in the "
                          "same generator run");
    json_write_end(p);
    json_write_string(p, "attend", "after every append, over everything appended so far");
}

static void cache_case_run(golden_writer *w, const cache_case *cc)
{
    uint32_t total = 0, d = cc->head_dim, n_given = 0;
    bool any_explicit = false;
    for (uint32_t s = 0; s < cc->n_steps; s++) {
        total += cc->append_sizes[s];
        any_explicit = any_explicit || cc->explicit_positions[s];
    }
    size_t count = (size_t)total * d, steps = (size_t)cc->n_steps * cc->n_q * d;
    float *keys = malloc((size_t)(total + CALIBRATION_SAMPLES) * d * sizeof *keys);
    float *values = malloc((size_t)(total + CALIBRATION_SAMPLES) * d * sizeof *values);
    float *queries = malloc(steps * sizeof *queries), *outputs = malloc(steps * sizeof *outputs);
    float *bounds = malloc((size_t)KVQ_PROFILE_COUNT * steps * sizeof *bounds); /* one set per profile (S12.4) */
    uint8_t *modality = malloc(total + CALIBRATION_SAMPLES), flags[MAX_STEPS];
    uint32_t *positions = calloc(total, sizeof *positions);
    kvq_channel_range *ranges = malloc(d * sizeof *ranges);
    kvq_cache *cache = NULL;
    if (!keys || !values || !queries || !outputs || !bounds || !modality || !positions || !ranges) {
        golden_fail(w, cc->name, KVQ_ERR_OUT_OF_MEMORY);
        goto done;
    }
    /* The case's tokens and, after them, held-out calibration tokens (the generator is prefix-consistent). */
    kvq_synth_params sp = cc->synth;
    sp.n_tokens = total + CALIBRATION_SAMPLES;
    GOLDEN_CHECK(w, kvq_synth_kv(&sp, keys, values, modality));
    GOLDEN_CHECK(w, kvq_calibrate_channel_ranges(keys + count, CALIBRATION_SAMPLES, d, 10000, ranges));
    if (cc->inexact) {
        conform_inexact(keys, count, sp.seed + 1000u);
        conform_inexact(values, count, sp.seed + 2000u);
    }
    for (uint32_t s = 0, t = 0; s < cc->n_steps; s++) {
        flags[s] = cc->explicit_positions[s];
        for (uint32_t i = 0; i < cc->append_sizes[s]; i++, t++)
            if (flags[s]) positions[t] = cc->given[n_given++];
    }
    kvq_rng rng;
    kvq_rng_seed(&rng, cc->query_seed);
    for (size_t i = 0; i < steps; i++)
        queries[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(cc->q_scale * kvq_rng_normal(&rng)));

    kvq_codebook kcb, vcb;
    kvq_head_config kc = {0}, vc = {0};
    kc.role = KVQ_ROLE_KEYS;
    kc.quantizer = (kvq_quantizer){cc->key_scheme, cc->key_bits, NULL};
    if (cc->key_scheme == KVQ_SCHEME_NUQ) {
        GOLDEN_CHECK(w, kvq_codebook_normalfloat(cc->key_bits, &kcb));
        kc.quantizer.codebook = &kcb;
    }
    kc.key_mode = cc->key_mode;
    kc.group_size = cc->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE ? cc->key_block : 0;
    kc.outlier_ppm = cc->key_ppm;
    kc.channel_range = ranges;
    kc.n_channel_range = ranges != NULL ? d : 0u;
    kc.policy = cc->policy;
    vc.role = KVQ_ROLE_VALUES;
    vc.quantizer = (kvq_quantizer){cc->value_scheme, cc->value_bits, NULL};
    if (cc->value_scheme == KVQ_SCHEME_NUQ) {
        GOLDEN_CHECK(w, kvq_codebook_normalfloat(cc->value_bits, &vcb));
        vc.quantizer.codebook = &vcb;
    }
    vc.group_size = cc->value_group;
    vc.outlier_ppm = cc->value_ppm;
    vc.policy = kc.policy;
    GOLDEN_CHECK(w, kvq_cache_create(&kc, &vc, d, &cache));
    if (cache == NULL) goto done;
    kvq_rope rope = {cc->pairing, 10000.0f};
    size_t per = (size_t)cc->n_q * d;
    for (uint32_t s = 0, done_tokens = 0; s < cc->n_steps; s++) {
        uint32_t m = cc->append_sizes[s];
        GOLDEN_CHECK(w, kvq_cache_append(cache, keys + (size_t)done_tokens * d, values + (size_t)done_tokens * d,
                                         modality + done_tokens, flags[s] ? positions + done_tokens : NULL, m));
        done_tokens += m;
        uint32_t q_position = kvq_cache_positions(cache)[kvq_cache_length(cache) - 1] + 1;
        GOLDEN_CHECK(w, kvq_attention_decode(kvq_cache_keys(cache), kvq_cache_values(cache),
                                             kvq_cache_positions(cache), &rope, queries + s * per, cc->n_q, q_position,
                                             outputs + s * per));
        float *const step_bounds[KVQ_PROFILE_COUNT] = {bounds + s * per, bounds + steps + s * per,
                                                       bounds + 2 * steps + s * per};
        golden_profile_bounds(w, kvq_cache_keys(cache), kvq_cache_values(cache), kvq_cache_positions(cache), &rope,
                              queries + s * per, cc->n_q, q_position, step_bounds);
    }
    if (kvq_cache_length(cache) != total) goto done;
    json_text params;
    params_json(golden_params(&params), cc, any_explicit);
    golden_begin_case(w, cc->name, any_explicit ? "S15.2,S15.5,S9,S11,S12.4" : "S15,S10.4,S4.3,S11,S12.4", "cache",
                      golden_params_text(&params));
    json_text_free(&params);
    golden_array(w, GOLDEN_INPUT, "keys", GOLDEN_F32, keys, SHAPE(total, d));
    golden_array(w, GOLDEN_INPUT, "values", GOLDEN_F32, values, SHAPE(total, d));
    golden_array(w, GOLDEN_INPUT, "modality", GOLDEN_U8, modality, SHAPE(total));
    if (cc->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED)
        golden_array(w, GOLDEN_INPUT, "channel_range", GOLDEN_F32, ranges, SHAPE(d, 2));
    if (any_explicit) {
        golden_array(w, GOLDEN_INPUT, "explicit_positions", GOLDEN_U8, flags, SHAPE(cc->n_steps));
        golden_array(w, GOLDEN_INPUT, "positions", GOLDEN_U32, positions, SHAPE(total));
    }
    golden_array(w, GOLDEN_INPUT, "queries", GOLDEN_F32, queries, SHAPE(cc->n_steps, cc->n_q, d));
    golden_array(w, GOLDEN_REFERENCE, "final_positions", GOLDEN_U32, kvq_cache_positions(cache), SHAPE(total));
    golden_qtensor_arrays(w, "final_k", kvq_cache_keys(cache));
    golden_qtensor_arrays(w, "final_v", kvq_cache_values(cache));
    golden_array(w, GOLDEN_BOUNDED, "out", GOLDEN_F32, outputs, SHAPE(cc->n_steps, cc->n_q, d));
    const float *const all_bounds[KVQ_PROFILE_COUNT] = {bounds, bounds + steps, bounds + 2 * steps};
    golden_bound_arrays(w, all_bounds, SHAPE(cc->n_steps, cc->n_q, d));
    golden_end_case(w);
done:
    kvq_cache_free(cache);
    free(keys);
    free(values);
    free(queries);
    free(outputs);
    free(bounds);
    free(modality);
    free(positions);
    free(ranges);
}

void golden_cases_cache(golden_writer *w)
{
    for (size_t i = 0; i < sizeof cache_cases / sizeof cache_cases[0]; i++) cache_case_run(w, &cache_cases[i]);
}
