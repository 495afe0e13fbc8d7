/*
 * cases_heads.c - golden cases for quantizing whole head slices: the axes
 * (S4), outliers (S7), sinks (S8) and the token policy (S10).
 */
#include "golden.h"
#include "json_write.h"
#include "golden_qtensor.h"

#include "conform/inexact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const uint32_t[4]){__VA_ARGS__})

typedef struct head_case {
    const char *name;
    const char *section;
    kvq_role role;
    kvq_scheme scheme;
    uint32_t bits;
    kvq_key_mode key_mode;
    uint32_t group_size;
    uint32_t outlier_ppm;
    kvq_policy_rule rule;
    uint32_t budget_ppm, n_sinks, recent_window;
    uint32_t n_tokens, head_dim;
    uint32_t image_run, text_run;
    uint64_t seed;
    int inexact;                   /* 1: inputs moved off the fp16 grid (conform_inexact) */
    kvq_beyond_range beyond_range; /* calibrated keys (S7.3) */
} head_case;

enum { CALIBRATION_SAMPLES = 256, CALIBRATION_PPM = 10000 };

/* The JSON object describing a head configuration and how its inputs were
 * made (the manifest's params, S16.7): everything needed to compute the
 * outputs from the input files, and to see where the inputs came from. */
static void config_json(json_writer *p, const kvq_head_config *c, const head_case *hc)
{
    bool calibrated = c->role == KVQ_ROLE_KEYS && c->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    const char *role = c->role == KVQ_ROLE_KEYS ? "keys" : "values";
    json_write_string(p, "role", role);
    json_write_string(p, "scheme", golden_scheme_name(c->quantizer.scheme));
    json_write_u64(p, "bits", c->quantizer.bits);
    json_write_string(p, "codebook", c->quantizer.scheme == KVQ_SCHEME_NUQ ? "normalfloat" : "none");
    json_write_string(p, "key_mode", c->role == KVQ_ROLE_VALUES ? "n/a" : calibrated ? "calibrated" : "online");
    json_write_string(p, "beyond_range",
                      calibrated ? (c->beyond_range == KVQ_BEYOND_RANGE_CLAMP ? "clamp" : "outliers") : "n/a");
    json_write_u64(p, "group_size", c->group_size);
    json_write_u64(p, "outlier_ppm", c->outlier_ppm);
    golden_policy_json(p, "policy", &c->policy);
    json_write_u64(p, "n_tokens", hc->n_tokens);
    json_write_u64(p, "head_dim", hc->head_dim);
    json_write_u64(p, "seed", hc->seed);
    json_write_object_inline(p, "inputs");
    json_write_stringf(p, "x",
                       "kvq_synth_kv(n_tokens, head_dim, seed, n_outlier_channels 4, tail_probability 0.01, "
                       "sink_token 1, image_run %u, text_run %u): its %s%s, then token 1 channels 0-5 set to 3 "
                       "(ranking ties, S7.2)",
                       hc->image_run, hc->text_run, role,
                       hc->inexact ? ", every element moved off the fp16 grid by conform_inexact(seed + 1000) "
                                     "(tools/conform/inexact.c)"
                                   : "");
    json_write_string(p, "modality", "the same call's");
    if (calibrated)
        json_write_stringf(p, "channel_range",
                           "kvq_calibrate_channel_ranges(%u ppm) of tokens %u .. %u of the same generator run made "
                           "%u tokens long",
                           CALIBRATION_PPM, hc->n_tokens, hc->n_tokens + CALIBRATION_SAMPLES - 1,
                           hc->n_tokens + CALIBRATION_SAMPLES);
    json_write_end(p);
}

static const head_case head_cases[] = {
    /* values per token (S4.1), outliers 1% (S7), text-centric policy with a sink (S8, S10) */
    {"values_asym4_d128", "S4.1,S7,S8,S10", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 0, 10000,
     KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 0, 48, 128, 24, 6, 11, 0, 0},
    {"values_asym2_g32_d64", "S4.1,S7", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 2, 0, 32, 10000,
     KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 0, 40, 64, 24, 6, 12, 0, 0},
    {"values_sym8_d256", "S3.3,S4.1", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_SYM, 8, 0, 0, 0, KVQ_POLICY_QUANTIZE_ALL,
     0, 1, 0, 24, 256, 0, 24, 13, 0, 0},
    {"values_asym3_d32", "S4.1,S5.2", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 3, 0, 0, 50000,
     KVQ_POLICY_QUANTIZE_ALL, 0, 0, 0, 16, 32, 0, 16, 14, 0, 0},
    {"values_nuq4_d128", "S4.1,S6,S7", KVQ_ROLE_VALUES, KVQ_SCHEME_NUQ, 4, 0, 0, 10000, KVQ_POLICY_TEXT_CENTRIC,
     100000, 1, 4, 48, 128, 24, 6, 15, 0, 0},
    {"values_nuq3_g64_d128", "S4.1,S6", KVQ_ROLE_VALUES, KVQ_SCHEME_NUQ, 3, 0, 64, 20000, KVQ_POLICY_TEXT_CENTRIC,
     100000, 1, 0, 32, 128, 24, 6, 16, 0, 0},
    /* keys, calibrated per channel (S4.2) */
    {"keys_calibrated_asym4_d128", "S4.2,S7.3", KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 4,
     KVQ_KEYS_PER_CHANNEL_CALIBRATED, 0, 0, KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 0, 48, 128, 24, 6, 21, 0, 0},
    {"keys_calibrated_nuq3_d64", "S4.2,S6,S7.3", KVQ_ROLE_KEYS, KVQ_SCHEME_NUQ, 3, KVQ_KEYS_PER_CHANNEL_CALIBRATED,
     0, 0, KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 0, 40, 64, 24, 6, 22, 0, 0},
    {"keys_calibrated_nuq2_d256", "S4.2,S6", KVQ_ROLE_KEYS, KVQ_SCHEME_NUQ, 2, KVQ_KEYS_PER_CHANNEL_CALIBRATED, 0,
     0, KVQ_POLICY_IMAGE_CENTRIC, 100000, 1, 0, 24, 256, 24, 6, 23, 0, 0},
    /* keys, online per-channel blocks with an fp16 residual (S4.3) */
    {"keys_online_asym4_b16_d128", "S4.3,S7", KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 4, KVQ_KEYS_PER_CHANNEL_ONLINE,
     16, 10000, KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 0, 41, 128, 24, 6, 31, 0, 0},
    {"keys_online_asym2_b8_d64_window", "S4.3,S10.4", KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 2,
     KVQ_KEYS_PER_CHANNEL_ONLINE, 8, 0, KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 5, 37, 64, 24, 6, 32, 0, 0},
    {"keys_online_nuq4_b32_d256", "S4.3,S6", KVQ_ROLE_KEYS, KVQ_SCHEME_NUQ, 4, KVQ_KEYS_PER_CHANNEL_ONLINE, 32,
     10000, KVQ_POLICY_QUANTIZE_ALL, 0, 1, 0, 64, 256, 0, 64, 33, 0, 0},
    {"keys_online_asym3_b4_d32", "S4.3,S5.2", KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 3, KVQ_KEYS_PER_CHANNEL_ONLINE,
     4, 0, KVQ_POLICY_QUANTIZE_ALL, 0, 0, 0, 12, 32, 0, 12, 34, 0, 0},
    /* edges */
    {"edge_context1_sink", "S8,S4", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 0, 10000, KVQ_POLICY_TEXT_CENTRIC,
     100000, 1, 0, 1, 128, 0, 1, 41, 0, 0},
    {"edge_context1_nosink", "S4,S7", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 0, 10000,
     KVQ_POLICY_QUANTIZE_ALL, 0, 0, 0, 1, 128, 1, 0, 42, 0, 0},
    {"edge_all_outliers", "S7.1,S3.1", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 0, 1000000,
     KVQ_POLICY_QUANTIZE_ALL, 0, 0, 0, 4, 64, 0, 4, 43, 0, 0},
    {"edge_keys_all_outliers", "S7.1,S4.3", KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 2, KVQ_KEYS_PER_CHANNEL_ONLINE, 4,
     1000000, KVQ_POLICY_QUANTIZE_ALL, 0, 0, 0, 8, 64, 0, 8, 44, 0, 0},
    {"policy_text_exceeds_budget", "S10.3", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 0, 0,
     KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 0, 60, 64, 10, 20, 51, 0, 0},
    {"policy_image_centric", "S10.2", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 0, 0,
     KVQ_POLICY_IMAGE_CENTRIC, 250000, 2, 0, 60, 64, 10, 20, 52, 0, 0},
    {"policy_budget_zero_window", "S10.3,S10.4", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 0, 0,
     KVQ_POLICY_TEXT_CENTRIC, 0, 1, 6, 30, 64, 10, 5, 53, 0, 0},
    /* inputs that are not fp16 numbers (S2.2 ties among them): sink, policy, window and residual rows,
     * outlier values and group minima all need a rounding (S4.1 step 3, S7.4, S3.2) */
    {"values_asym4_d128_inexact", "S2.2,S3.2,S4.1,S7.4,S8,S10", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 0,
     10000, KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 4, 48, 128, 24, 6, 61, 1, 0},
    {"values_nuq4_g32_d128_inexact", "S2.2,S4.1,S6.3,S7.4,S10", KVQ_ROLE_VALUES, KVQ_SCHEME_NUQ, 4, 0, 32, 20000,
     KVQ_POLICY_IMAGE_CENTRIC, 250000, 2, 3, 40, 128, 12, 8, 62, 1, 0},
    {"keys_online_asym4_b16_d128_inexact", "S2.2,S3.2,S4.3,S7,S10.4", KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 4,
     KVQ_KEYS_PER_CHANNEL_ONLINE, 16, 10000, KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 5, 45, 128, 24, 6, 63, 1, 0},
    {"keys_calibrated_nuq4_d128_inexact", "S2.2,S4.2,S7.3,S7.4", KVQ_ROLE_KEYS, KVQ_SCHEME_NUQ, 4,
     KVQ_KEYS_PER_CHANNEL_CALIBRATED, 0, 0, KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 2, 48, 128, 24, 6, 64, 1, 0},
    /* S7.3 clamping: the inputs and ranges of keys_calibrated_asym4_d128, without outliers */
    {"keys_calibrated_clamp_asym4_d128", "S4.2,S7.3", KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 4,
     KVQ_KEYS_PER_CHANNEL_CALIBRATED, 0, 0, KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 0, 48, 128, 24, 6, 21, 0,
     KVQ_BEYOND_RANGE_CLAMP},
    /* online keys selecting some but not all elements of a block: blocks of 64 with 32 policy tokens, so
     * each tail is ceil(40000 * 32 / 2e6) = 1 of the 32 eligible elements (2 if counted over the block) */
    {"keys_online_partial_outliers_b64_d128", "S4.3,S7.1,S7.2", KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 4,
     KVQ_KEYS_PER_CHANNEL_ONLINE, 64, 40000, KVQ_POLICY_TEXT_CENTRIC, 500000, 1, 0, 202, 128, 16, 16, 65, 0, 0},
    /* head_dim above 256 (S1.4 allows 1024) */
    {"values_asym4_d512", "S4.1,S5.3,S7", KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 0, 10000,
     KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 0, 24, 512, 12, 4, 66, 0, 0},
    {"keys_online_asym3_b8_d1024_inexact", "S4.3,S5.2,S5.3,S7", KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 3,
     KVQ_KEYS_PER_CHANNEL_ONLINE, 8, 10000, KVQ_POLICY_QUANTIZE_ALL, 0, 1, 0, 20, 1024, 0, 20, 67, 1, 0},
};

/* Makes the slice's input: keys or values from the synthetic generator (S14.3),
 * with a run of repeated values in token 1 so outlier ranking ties occur (S7.2). */
static int make_input(const head_case *hc, float *x, uint8_t *modality)
{
    kvq_synth_params sp = {hc->n_tokens, hc->head_dim, hc->seed, 4, 0.01f, 1, hc->image_run, hc->text_run};
    float *other = malloc((size_t)hc->n_tokens * hc->head_dim * sizeof *other);
    if (other == NULL) return -1;
    kvq_status st = hc->role == KVQ_ROLE_KEYS ? kvq_synth_kv(&sp, x, other, modality)
                                              : kvq_synth_kv(&sp, other, x, modality);
    free(other);
    if (st != KVQ_OK) return -1;
    if (hc->inexact) conform_inexact(x, (size_t)hc->n_tokens * hc->head_dim, hc->seed + 1000u);
    if (hc->n_tokens > 1) {
        float *row = x + hc->head_dim;
        for (uint32_t c = 0; c < 6 && c < hc->head_dim; c++) row[c] = 3.0f; /* equal largest values */
    }
    return 0;
}

static void head_case_run(golden_writer *w, const head_case *hc)
{
    size_t n = (size_t)hc->n_tokens * hc->head_dim;
    float *x = malloc(n * sizeof *x);
    uint8_t *modality = malloc(hc->n_tokens);
    kvq_channel_range *ranges = malloc(hc->head_dim * sizeof *ranges);
    if (x == NULL || modality == NULL || ranges == NULL || make_input(hc, x, modality) != 0) {
        golden_fail(w, hc->name, KVQ_ERR_OUT_OF_MEMORY);
        goto done;
    }
    kvq_codebook cb;
    kvq_head_config config = {0};
    config.role = hc->role;
    config.quantizer.scheme = hc->scheme;
    config.quantizer.bits = hc->bits;
    if (hc->scheme == KVQ_SCHEME_NUQ) {
        GOLDEN_CHECK(w, kvq_codebook_normalfloat(hc->bits, &cb));
        config.quantizer.codebook = &cb;
    }
    config.key_mode = hc->key_mode;
    config.group_size = hc->group_size;
    config.outlier_ppm = hc->outlier_ppm;
    config.policy.rule = hc->rule;
    config.policy.budget_ppm = hc->budget_ppm;
    config.policy.n_sinks = hc->n_sinks;
    config.policy.recent_window = hc->recent_window;
    bool calibrated = hc->role == KVQ_ROLE_KEYS && hc->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    if (calibrated) {
        /* Calibrate on held-out tokens of the same head: the generator is prefix-consistent (S14.3),
         * so tokens n_tokens .. n_tokens+255 of a longer run share this slice's channel statistics. */
        enum { SAMPLES = CALIBRATION_SAMPLES };
        size_t longer = (size_t)hc->n_tokens + SAMPLES;
        float *samples = malloc(longer * hc->head_dim * sizeof *samples);
        kvq_synth_params sp = {(uint32_t)longer, hc->head_dim, hc->seed, 4, 0.01f, 1, hc->image_run, hc->text_run};
        if (samples == NULL) {
            golden_fail(w, hc->name, KVQ_ERR_OUT_OF_MEMORY);
            goto done;
        }
        GOLDEN_CHECK(w, kvq_synth_kv(&sp, samples, NULL, NULL));
        GOLDEN_CHECK(w, kvq_calibrate_channel_ranges(samples + (size_t)hc->n_tokens * hc->head_dim, SAMPLES,
                                                     hc->head_dim, CALIBRATION_PPM, ranges));
        free(samples);
        config.channel_range = ranges;
        config.n_channel_range = hc->head_dim;
    }
    config.beyond_range = hc->beyond_range;
    json_text params;
    config_json(golden_params(&params), &config, hc);
    kvq_qtensor *qt = NULL;
    kvq_status st = kvq_quantize_head(&config, x, hc->n_tokens, hc->head_dim, modality, &qt);
    golden_begin_case(w, hc->name, hc->section, "quantize_head", golden_params_text(&params));
    json_text_free(&params);
    golden_array(w, GOLDEN_INPUT, "x", GOLDEN_F32, x, SHAPE(hc->n_tokens, hc->head_dim));
    golden_array(w, GOLDEN_INPUT, "modality", GOLDEN_U8, modality, SHAPE(hc->n_tokens));
    if (calibrated) golden_array(w, GOLDEN_INPUT, "channel_range", GOLDEN_F32, ranges, SHAPE(hc->head_dim, 2));
    if (st != KVQ_OK)
        golden_fail(w, hc->name, st);
    else
        golden_qtensor_arrays(w, "q", qt);
    golden_end_case(w);
    kvq_qtensor_free(qt);
done:
    free(x);
    free(modality);
    free(ranges);
}

/* S7.2: outlier selection on vectors built to have ties at the thresholds. */
static void outlier_selection_case(golden_writer *w)
{
    enum { ROWS = 6, N = 64 };
    static float x[ROWS][N];
    static uint8_t marks[ROWS][N];
    static const uint32_t ppm[ROWS] = {10000, 31250, 62500, 500000, 1000000, 0};
    kvq_rng rng;
    kvq_rng_seed(&rng, 7);
    for (int r = 0; r < ROWS; r++)
        for (int i = 0; i < N; i++)
            x[r][i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32((float)(int)(4.0f * kvq_rng_normal(&rng))));
    /* integer values: many ties, including at the largest and smallest */
    for (int r = 0; r < ROWS; r++) GOLDEN_CHECK(w, kvq_select_outliers(x[r], N, 1, NULL, ppm[r], marks[r]));
    {
        json_text params;
        json_writer *p = golden_params(&params);
        json_write_u64_array(p, "outlier_ppm_per_row", (const uint64_t[]){10000u, 31250u, 62500u, 500000u, 1000000u, 0u}, 6);
        json_write_u64(p, "stride", 1u);
        json_write_string(p, "is_outlier", "row r: kvq_select_outliers(x[r], 64, 1, NULL (all eligible), "
                                           "outlier_ppm_per_row[r])");
        json_write_object_inline(p, "inputs");
        json_write_string(p, "x", "fp16(trunc(4 * kvq_rng_normal)) from a generator seeded with 7, row by row: "
                                  "integers, many ties");
        json_write_end(p);
        golden_begin_case(w, "outlier_selection_ties", "S7.1,S7.2", "select_outliers", golden_params_text(&params));
        json_text_free(&params);
    }
    golden_array(w, GOLDEN_INPUT, "x", GOLDEN_F32, x, SHAPE(ROWS, N));
    golden_array(w, GOLDEN_EXACT, "is_outlier", GOLDEN_U8, marks, SHAPE(ROWS, N));
    golden_end_case(w);
}

/* S10: token precision decisions for prompts and appended batches. */
static void policy_case(golden_writer *w)
{
    enum { N = 200 };
    static uint8_t modality[N], precision[6][N];
    for (int t = 0; t < N; t++) modality[t] = (t < 12) ? 0 : (t < 150) ? 1 : (t < 170 ? 0 : (t % 7 == 0 ? 2 : 1));
    const kvq_token_policy policies[3] = {{KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 0},
                                          {KVQ_POLICY_IMAGE_CENTRIC, 500000, 4, 0},
                                          {KVQ_POLICY_QUANTIZE_ALL, 100000, 2, 0}};
    for (int p = 0; p < 3; p++) {
        GOLDEN_CHECK(w, kvq_token_precision(&policies[p], modality, 0, 0, N, precision[p]));
        /* the same prompt appended as 150 tokens, then 50 (S10.3's running budget) */
        GOLDEN_CHECK(w, kvq_token_precision(&policies[p], modality, 0, 0, 150, precision[3 + p]));
        uint32_t hp = 0;
        for (int t = 0; t < 150; t++) hp += precision[3 + p][t] == KVQ_PREC_POLICY;
        GOLDEN_CHECK(w, kvq_token_precision(&policies[p], modality + 150, 150, hp, 50, precision[3 + p] + 150));
    }
    {
        json_text params;
        json_writer *p = golden_params(&params);
        json_write_array_inline(p, "rows");
        json_write_string(p, NULL, "text_centric 10% sinks 1");
        json_write_string(p, NULL, "image_centric 50% sinks 4");
        json_write_string(p, NULL, "quantize_all sinks 2");
        json_write_string(p, NULL, "same, appended as 150 then 50 tokens");
        json_write_end(p);
        json_write_array_inline(p, "policies");
        json_write_object_inline(p, NULL);
        json_write_string(p, "rule", "text_centric");
        json_write_u64(p, "budget_ppm", 100000u);
        json_write_u64(p, "n_sinks", 1u);
        json_write_end(p);
        json_write_object_inline(p, NULL);
        json_write_string(p, "rule", "image_centric");
        json_write_u64(p, "budget_ppm", 500000u);
        json_write_u64(p, "n_sinks", 4u);
        json_write_end(p);
        json_write_object_inline(p, NULL);
        json_write_string(p, "rule", "quantize_all");
        json_write_u64(p, "budget_ppm", 100000u);
        json_write_u64(p, "n_sinks", 2u);
        json_write_end(p);
        json_write_end(p);
        json_write_u64(p, "recent_window", 0u);
        json_write_string(p, "row_p", "kvq_token_precision(policies[p], modality, 0, 0, 200)");
        json_write_string(p, "row_3_plus_p", "kvq_token_precision(policies[p], modality, 0, 0, 150) for tokens "
                                             "0-149, then kvq_token_precision(policies[p], modality + 150, 150, hp, "
                                             "50) for tokens 150-199, hp = the number of POLICY decisions among the "
                                             "first 150");
        golden_begin_case(w, "token_policy", "S8,S10.1-S10.3", "token_precision", golden_params_text(&params));
        json_text_free(&params);
    }
    golden_array(w, GOLDEN_INPUT, "modality", GOLDEN_U8, modality, SHAPE(N));
    golden_array(w, GOLDEN_EXACT, "precision", GOLDEN_U8, precision, SHAPE(6, N));
    golden_end_case(w);
}

void golden_cases_heads(golden_writer *w)
{
    for (size_t i = 0; i < sizeof head_cases / sizeof head_cases[0]; i++) head_case_run(w, &head_cases[i]);
    outlier_selection_case(w);
    policy_case(w);
}
