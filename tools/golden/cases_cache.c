/*
 * cases_cache.c - golden case for a cache driven through appends and
 * attention steps (S15): a prompt, then decode steps of one token, then a
 * second image, attending after every append.
 */
#include "golden.h"
#include "golden_qtensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const uint32_t[4]){__VA_ARGS__})

enum { D = 64, N_Q = 2, STEPS = 10 };
static const uint32_t append_sizes[STEPS] = {40, 1, 1, 1, 13, 1, 16, 1, 1, 7};

void golden_cases_cache(golden_writer *w)
{
    uint32_t total = 0;
    for (int s = 0; s < STEPS; s++) total += append_sizes[s];
    float *keys = malloc((size_t)total * D * sizeof *keys), *values = malloc((size_t)total * D * sizeof *values);
    uint8_t *modality = malloc(total);
    static float queries[STEPS][N_Q][D], outputs[STEPS][N_Q][D], bounds[KVQ_PROFILE_COUNT][STEPS][N_Q][D];
    kvq_cache *cache = NULL;
    if (!keys || !values || !modality) {
        golden_fail(w, "cache", KVQ_ERR_OUT_OF_MEMORY);
        goto done;
    }
    kvq_synth_params sp = {total, D, 401, 3, 0.01f, 1, 20, 8};
    GOLDEN_CHECK(w, kvq_synth_kv(&sp, keys, values, modality));
    kvq_rng rng;
    kvq_rng_seed(&rng, 402);
    for (int s = 0; s < STEPS; s++)
        for (int h = 0; h < N_Q; h++)
            for (int i = 0; i < D; i++)
                queries[s][h][i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(kvq_rng_normal(&rng)));

    kvq_head_config kc = {0}, vc = {0};
    kc.role = KVQ_ROLE_KEYS;
    kc.quantizer = (kvq_quantizer){KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
    kc.key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE;
    kc.group_size = 8;
    kc.outlier_ppm = 20000;
    kc.policy = (kvq_token_policy){KVQ_POLICY_TEXT_CENTRIC, 150000, 1, 4};
    vc.role = KVQ_ROLE_VALUES;
    vc.quantizer = (kvq_quantizer){KVQ_SCHEME_UNIFORM_ASYM, 2, NULL};
    vc.group_size = 32;
    vc.outlier_ppm = 20000;
    vc.policy = kc.policy;
    GOLDEN_CHECK(w, kvq_cache_create(&kc, &vc, D, &cache));
    if (cache == NULL) goto done;
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    uint32_t done_tokens = 0;
    for (int s = 0; s < STEPS; s++) {
        uint32_t m = append_sizes[s];
        GOLDEN_CHECK(w, kvq_cache_append(cache, keys + (size_t)done_tokens * D, values + (size_t)done_tokens * D,
                                         modality + done_tokens, NULL, m));
        done_tokens += m;
        uint32_t q_position = kvq_cache_positions(cache)[kvq_cache_length(cache) - 1] + 1;
        GOLDEN_CHECK(w, kvq_attention_decode(kvq_cache_keys(cache), kvq_cache_values(cache),
                                             kvq_cache_positions(cache), &rope, &queries[s][0][0], N_Q, q_position,
                                             &outputs[s][0][0]));
        float *const step_bounds[KVQ_PROFILE_COUNT] = {&bounds[0][s][0][0], &bounds[1][s][0][0], &bounds[2][s][0][0]};
        golden_profile_bounds(w, kvq_cache_keys(cache), kvq_cache_values(cache), kvq_cache_positions(cache), &rope,
                              &queries[s][0][0], N_Q, q_position, step_bounds);
    }
    golden_begin_case(w, "cache_append_attend", "S15,S10.4,S4.3,S11,S12.4", "cache",
                      "{\"head_dim\": 64, \"n_q\": 2, \"append_sizes\": [40, 1, 1, 1, 13, 1, 16, 1, 1, 7], "
                      "\"positions\": \"default (0, 1, 2, ...)\", \"q_position\": \"last key position + 1\", "
                      "\"rope\": {\"pairing\": \"half\", \"base\": 10000}, "
                      "\"keys\": {\"scheme\": \"asym\", \"bits\": 4, \"key_mode\": \"online\", \"group_size\": 8, "
                      "\"outlier_ppm\": 20000}, \"values\": {\"scheme\": \"asym\", \"bits\": 2, \"group_size\": 32, "
                      "\"outlier_ppm\": 20000}, \"policy\": {\"rule\": \"text_centric\", \"budget_ppm\": 150000, "
                      "\"n_sinks\": 1, \"recent_window\": 4}, \"seed\": 401}");
    golden_array(w, GOLDEN_INPUT, "keys", GOLDEN_F32, keys, SHAPE(total, D));
    golden_array(w, GOLDEN_INPUT, "values", GOLDEN_F32, values, SHAPE(total, D));
    golden_array(w, GOLDEN_INPUT, "modality", GOLDEN_U8, modality, SHAPE(total));
    golden_array(w, GOLDEN_INPUT, "queries", GOLDEN_F32, queries, SHAPE(STEPS, N_Q, D));
    golden_qtensor_arrays(w, "final_k", kvq_cache_keys(cache));
    golden_qtensor_arrays(w, "final_v", kvq_cache_values(cache));
    golden_array(w, GOLDEN_BOUNDED, "out", GOLDEN_F32, outputs, SHAPE(STEPS, N_Q, D));
    const float *const all_bounds[KVQ_PROFILE_COUNT] = {&bounds[0][0][0][0], &bounds[1][0][0][0], &bounds[2][0][0][0]};
    golden_bound_arrays(w, all_bounds, SHAPE(STEPS, N_Q, D));
    golden_end_case(w);
done:
    kvq_cache_free(cache);
    free(keys);
    free(values);
    free(modality);
}
