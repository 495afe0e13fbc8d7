/*
 * cases_calibration.c - golden cases for calibration: per-channel key ranges
 * (S6.9) and Fisher-weighted k-means codebooks with optional Q-Norm (S6.6, S6.7).
 */
#include "golden.h"
#include "json_write.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const uint32_t[4]){__VA_ARGS__})

static void channel_range_case(golden_writer *w)
{
    enum { SAMPLES = 200, D = 64, ROWS = 3 };
    static float keys[SAMPLES * D], ranges[ROWS][D][2];
    static const uint32_t ppm[ROWS] = {10000, 0, 1000000};
    kvq_synth_params sp = {SAMPLES, D, 61, 4, 0.02f, 1, 0, SAMPLES};
    GOLDEN_CHECK(w, kvq_synth_kv(&sp, keys, NULL, NULL));
    for (int r = 0; r < ROWS; r++) {
        kvq_channel_range out[D];
        GOLDEN_CHECK(w, kvq_calibrate_channel_ranges(keys, SAMPLES, D, ppm[r], out));
        for (int c = 0; c < D; c++) {
            ranges[r][c][0] = out[c].lo;
            ranges[r][c][1] = out[c].hi;
        }
    }
    {
        json_text params;
        json_writer *p = golden_params(&params);
        json_write_u64_array(p, "outlier_ppm_per_row", (const uint64_t[]){10000u, 0u, 1000000u}, 3);
        json_write_string(p, "layout", "[row][channel][lo, hi]");
        json_write_u64(p, "n_samples", 200u);
        json_write_u64(p, "head_dim", 64u);
        json_write_object_inline(p, "inputs");
        json_write_string(p, "samples", "the keys of kvq_synth_kv(200, 64, seed 61, n_outlier_channels 4, "
                                        "tail_probability 0.02, sink_token 1, image_run 0, text_run 200)");
        json_write_end(p);
        json_write_string(p, "ranges", "row r: kvq_calibrate_channel_ranges(samples, 200, 64, outlier_ppm_per_row[r])");
        golden_begin_case(w, "calibrate_channel_ranges", "S6.9,S7.1", "calibrate_channel_ranges", golden_params_text(&params));
        json_text_free(&params);
    }
    golden_array(w, GOLDEN_INPUT, "samples", GOLDEN_F32, keys, SHAPE(SAMPLES, D));
    golden_array(w, GOLDEN_EXACT, "ranges", GOLDEN_F32, ranges, SHAPE(ROWS, D, 2));
    golden_end_case(w);
}

/* S6.6: the normalized samples of a synthetic value slice, Fisher weights from
 * the generator, and the codebooks k-means makes of them. */
static void kmeans_case(golden_writer *w, uint32_t bits, uint32_t q_norm, int weighted)
{
    enum { N_TOKENS = 64, D = 64 };
    static float values[N_TOKENS * D], fisher[N_TOKENS * D], z[N_TOKENS * D], weights[N_TOKENS * D];
    kvq_synth_params sp = {N_TOKENS, D, 71 + bits, 2, 0.02f, 1, 0, N_TOKENS};
    GOLDEN_CHECK(w, kvq_synth_kv(&sp, NULL, values, NULL));
    kvq_rng rng;
    kvq_rng_seed(&rng, 81 + bits);
    for (int i = 0; i < N_TOKENS * D; i++) {
        float g = kvq_rng_normal(&rng);
        fisher[i] = g * g; /* squared gradients are what a Fisher diagonal estimates */
    }
    kvq_head_config config = {0};
    config.role = KVQ_ROLE_VALUES;
    config.quantizer.scheme = KVQ_SCHEME_NUQ;
    config.quantizer.bits = bits;
    config.outlier_ppm = 10000;
    config.policy.rule = KVQ_POLICY_QUANTIZE_ALL;
    size_t n = 0;
    GOLDEN_CHECK(w, kvq_calibration_samples(&config, values, weighted ? fisher : NULL, N_TOKENS, D, NULL, z, weights, &n));
    kvq_kmeans_params kp = {bits, 25, q_norm};
    kvq_codebook cb;
    memset(&cb, 0, sizeof cb);
    GOLDEN_CHECK(w, kvq_calibrate_codebook(z, weights, n, &kp, &cb));
    char name[64];
    snprintf(name, sizeof name, "kmeans_%ubit%s%s", bits, weighted ? "_fisher" : "", q_norm ? "_qnorm" : "");
    json_text params;
    json_writer *p = golden_params(&params);
    json_write_u64(p, "bits", bits);
    json_write_u64(p, "iterations", 25);
    json_write_u64(p, "q_norm", q_norm);
    json_write_string(p, "weights", weighted ? "fisher" : "ones");
    json_write_u64(p, "outlier_ppm", 10000);
    json_write_stringf(p, "samples",
                       "kvq_calibration_samples(config, values, %s, %u tokens, head_dim %u, modality NULL) with "
                       "config = values, NUQ %u-bit (no codebook: NormalFloat), group_size 0 (one group per token), "
                       "outlier_ppm 10000, policy quantize_all with no sinks and no window",
                       weighted ? "fisher" : "NULL (weights 1)", N_TOKENS, D, bits);
    json_write_string(p, "codebook", "kvq_calibrate_codebook(samples, sample_weights, {bits, 25, q_norm})");
    json_write_object_inline(p, "inputs");
    json_write_stringf(p, "values",
                       "the values of kvq_synth_kv(%u, %u, seed %u, n_outlier_channels 2, tail_probability 0.02, "
                       "sink_token 1, image_run 0, text_run %u)",
                       N_TOKENS, D, 71u + bits, N_TOKENS);
    if (weighted)
        json_write_string(p, "fisher",
                          "g * g for g = kvq_rng_normal from a generator seeded with 81 + bits, in element order");
    json_write_end(p);
    golden_begin_case(w, name, q_norm ? "S6.6,S6.7" : "S6.6", "calibrate_codebook", golden_params_text(&params));
    json_text_free(&params);
    golden_array(w, GOLDEN_INPUT, "values", GOLDEN_F32, values, SHAPE(N_TOKENS, D));
    if (weighted) golden_array(w, GOLDEN_INPUT, "fisher", GOLDEN_F32, fisher, SHAPE(N_TOKENS, D));
    golden_array(w, GOLDEN_EXACT, "samples", GOLDEN_F32, z, SHAPE((uint32_t)n));
    golden_array(w, GOLDEN_EXACT, "sample_weights", GOLDEN_F32, weights, SHAPE((uint32_t)n));
    golden_array(w, GOLDEN_EXACT, "signposts", GOLDEN_F32, cb.signpost, SHAPE(1u << bits));
    golden_array(w, GOLDEN_EXACT, "thresholds", GOLDEN_F32, cb.threshold, SHAPE((1u << bits) - 1u));
    golden_end_case(w);
}

void golden_cases_calibration(golden_writer *w)
{
    channel_range_case(w);
    for (uint32_t bits = 2; bits <= 4; bits++) kmeans_case(w, bits, 0, 1);
    kmeans_case(w, 3, 0, 0);
    kmeans_case(w, 3, 1, 1);
    kmeans_case(w, 4, 1, 0);
}
