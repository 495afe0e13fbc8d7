/*
 * cases_peer.c - golden cases of the peer formats (S17): quantizing head
 * slices into ggml q8_0/q4_0 blocks, KIVI's layout and fp8 e4m3, with
 * elements on code boundaries and edge groups, and decode attention over peer
 * tensors with its bounds at every precision profile.
 */
#include "golden.h"
#include "json_write.h"

#include "conform/peer_inputs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const uint32_t[4]){__VA_ARGS__})

/* What a case edits after peer_synth and the tie planting. */
typedef enum peer_edit {
    EDIT_NONE,
    EDIT_GGML_EDGES, /* a zero block, a block of one value, +-max ties, a tiny and a 65504 block */
    EDIT_KIVI_EDGES, /* a constant group (scale 0) and one whose scale underflows to 0 */
    EDIT_FP8_EDGES   /* +-0, subnormals, values beyond 448 * scale */
} peer_edit;

typedef struct peer_quantize_case {
    const char *name;
    kvq_peer_config config; /* fp8: scale 0 means peer_fp8_scale(x, headroom) */
    float headroom;
    uint32_t n_tokens, head_dim;
    bool use_keys;          /* quantize the synthetic keys (rotated) or values */
    peer_inputs_spec inputs;
    uint32_t ties;
    peer_edit edit;
} peer_quantize_case;

#define SPEC(n, d, seed, profile, inexact) {n, d, seed, profile, inexact}
static const peer_quantize_case quantize_cases[] = {
    {"peer_q8_0_keys_d128_n48", {KVQ_PEER_Q8_0, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f}, 1.0f, 48, 128, true,
     SPEC(48, 128, 1701, KVQ_SYNTH_STRESS, false), 4, EDIT_NONE},
    {"peer_q8_0_values_d64_n16_inexact_edges", {KVQ_PEER_Q8_0, KVQ_ROLE_VALUES, 0, 0, 0, 0.0f}, 1.0f, 16, 64, false,
     SPEC(16, 64, 1702, KVQ_SYNTH_STRESS, true), 8, EDIT_GGML_EDGES},
    {"peer_q4_0_values_d128_n48", {KVQ_PEER_Q4_0, KVQ_ROLE_VALUES, 0, 0, 0, 0.0f}, 1.0f, 48, 128, false,
     SPEC(48, 128, 1703, KVQ_SYNTH_REALISTIC, false), 4, EDIT_NONE},
    {"peer_q4_0_keys_d64_n16_inexact_edges", {KVQ_PEER_Q4_0, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f}, 1.0f, 16, 64, true,
     SPEC(16, 64, 1704, KVQ_SYNTH_STRESS, true), 8, EDIT_GGML_EDGES},
    {"peer_kivi_keys_b2_g32_r128_d128_n300", {KVQ_PEER_KIVI, KVQ_ROLE_KEYS, 2, 32, 128, 0.0f}, 1.0f, 300, 128, true,
     SPEC(300, 128, 1705, KVQ_SYNTH_REALISTIC, false), 6, EDIT_NONE},
    {"peer_kivi_keys_b4_g32_r64_d64_n64_inexact", {KVQ_PEER_KIVI, KVQ_ROLE_KEYS, 4, 32, 64, 0.0f}, 1.0f, 64, 64, true,
     SPEC(64, 64, 1706, KVQ_SYNTH_STRESS, true), 6, EDIT_KIVI_EDGES},
    {"peer_kivi_keys_b8_g16_r32_d32_n20", {KVQ_PEER_KIVI, KVQ_ROLE_KEYS, 8, 16, 32, 0.0f}, 1.0f, 20, 32, true,
     SPEC(20, 32, 1707, KVQ_SYNTH_STRESS, true), 0, EDIT_NONE},
    {"peer_kivi_values_b2_g32_r128_d128_n300", {KVQ_PEER_KIVI, KVQ_ROLE_VALUES, 2, 32, 128, 0.0f}, 1.0f, 300, 128,
     false, SPEC(300, 128, 1708, KVQ_SYNTH_REALISTIC, false), 6, EDIT_NONE},
    {"peer_kivi_values_b4_g128_r32_d128_n100_inexact", {KVQ_PEER_KIVI, KVQ_ROLE_VALUES, 4, 128, 32, 0.0f}, 1.0f, 100,
     128, false, SPEC(100, 128, 1709, KVQ_SYNTH_STRESS, true), 6, EDIT_KIVI_EDGES},
    {"peer_kivi_values_b8_g32_r8_d64_n40", {KVQ_PEER_KIVI, KVQ_ROLE_VALUES, 8, 32, 8, 0.0f}, 1.0f, 40, 64, false,
     SPEC(40, 64, 1710, KVQ_SYNTH_STRESS, false), 4, EDIT_NONE},
    {"peer_fp8_e4m3_keys_d128_n48", {KVQ_PEER_FP8_E4M3, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f}, 1.0f, 48, 128, true,
     SPEC(48, 128, 1711, KVQ_SYNTH_STRESS, false), 64, EDIT_NONE},
    {"peer_fp8_e4m3_values_d64_n32_saturate", {KVQ_PEER_FP8_E4M3, KVQ_ROLE_VALUES, 0, 0, 0, 0.0f}, 0.45f, 32, 64,
     false, SPEC(32, 64, 1712, KVQ_SYNTH_STRESS, true), 32, EDIT_NONE},
    {"peer_fp8_e4m3_values_d32_n16_edges", {KVQ_PEER_FP8_E4M3, KVQ_ROLE_VALUES, 0, 0, 0, 0.25f}, 1.0f, 16, 32, false,
     SPEC(16, 32, 1713, KVQ_SYNTH_STRESS, false), 128, EDIT_FP8_EDGES},
};

static void edit_inputs(const peer_quantize_case *pc, const kvq_peer_config *c, float *x)
{
    uint32_t d = pc->head_dim;
    switch (pc->edit) {
    case EDIT_GGML_EDGES:
        for (int j = 0; j < 32; j++) {
            x[j] = 0.0f;                               /* token 0, block 0: zeros (d = 0, id = 0) */
            x[32 + j] = 1.25f;                         /* block 1: one value */
            x[d + j] = j == 3 ? 2.0f : j == 9 ? -2.0f : (float)j / 32.0f; /* +2 and -2: the first wins (q4_0) */
            x[d + 32 + j] = j == 7 ? 1e-30f : 0.0f;    /* a tiny block: d far below fp16, codes still defined */
            x[2 * d + j] = j % 2 ? 65504.0f : -65504.0f; /* the range's ends */
        }
        break;
    case EDIT_KIVI_EDGES: {
        /* the first group: all equal (scale 0); the second: mx - mn the smallest fp16 step (scale underflows) */
        bool keys = c->role == KVQ_ROLE_KEYS;
        for (uint32_t i = 0; i < c->group_size; i++) {
            size_t a = keys ? (size_t)i * d : i, b = keys ? (size_t)(c->group_size + i) * d : c->group_size + i;
            if (!keys && c->group_size == d) b = d + i; /* values with one group per token: the next token */
            x[a] = -0.75f;
            x[b] = i % 3 == 0 ? 0x1p-24f : 0.0f;
        }
        break;
    }
    case EDIT_FP8_EDGES:
        x[0] = 0.0f, x[1] = -0.0f, x[2] = 0x1p-11f, x[3] = -0x1p-11f, x[4] = 0x1p-12f; /* u: 2^-9 (the smallest
            subnormal), its negative, and 2^-10: a tie between 0 and 2^-9 that goes to the even 0 */
        x[5] = 449.0f * c->scale, x[6] = -10000.0f * c->scale, x[7] = 464.0f * c->scale; /* saturation */
        x[8] = 0.0001f, x[9] = -0.0001f; /* round to +-0 */
        break;
    default: break;
    }
}

static void quantize_case_run(golden_writer *w, const peer_quantize_case *pc)
{
    uint32_t n = pc->n_tokens, d = pc->head_dim;
    size_t count = (size_t)n * d;
    float *keys = malloc(count * sizeof *keys), *values = malloc(count * sizeof *values);
    float *y = malloc(count * sizeof *y);
    uint8_t *data = NULL;
    if (!keys || !values || !y) {
        golden_fail(w, pc->name, KVQ_ERR_OUT_OF_MEMORY);
        goto done;
    }
    if (!peer_synth(&pc->inputs, keys, values)) {
        golden_fail(w, pc->name, KVQ_ERR_BAD_ARGUMENT);
        goto done;
    }
    float *x = pc->use_keys ? keys : values;
    kvq_peer_config c = pc->config;
    if (c.format == KVQ_PEER_FP8_E4M3 && c.scale == 0.0f) c.scale = peer_fp8_scale(x, count, pc->headroom);
    uint32_t planted = peer_plant_ties(&c, x, n, d, pc->inputs.seed, pc->ties);
    edit_inputs(pc, &c, x);
    size_t bytes = 0;
    GOLDEN_CHECK(w, kvq_peer_bytes(&c, n, d, &bytes));
    data = malloc(bytes > 0 ? bytes : 1);
    if (data == NULL) {
        golden_fail(w, pc->name, KVQ_ERR_OUT_OF_MEMORY);
        goto done;
    }
    GOLDEN_CHECK(w, kvq_peer_quantize(&c, x, n, d, data));
    GOLDEN_CHECK(w, kvq_peer_dequantize(&c, data, n, d, y));

    char synth[1024];
    peer_describe_synth(&pc->inputs, synth, sizeof synth);
    static const char *const edits[] = {
        "",
        "; token 0 block 0 set to zeros, block 1 to 1.25 everywhere, token 1 block 0 to j/32 with +2 at 3 and -2 at "
        "9, token 1 block 1 to zeros with 1e-30 at 7, token 2 block 0 to -65504, +65504 alternately",
        "; the first group set to -0.75 everywhere, the second to 2^-24 at every third element and 0 elsewhere",
        "; x[0..9] set to 0, -0, 2^-11, -2^-11, 2^-12, 449 scale, -10000 scale, 464 scale, 0.0001, -0.0001"};
    json_text params;
    json_writer *p = golden_params(&params);
    peer_config_json(p, "config", &c);
    json_write_u64(p, "n_tokens", n);
    json_write_u64(p, "head_dim", d);
    json_write_object_inline(p, "inputs");
    json_write_stringf(p, "x",
                       "the %s of %s; then %u groups rebuilt on code boundaries by peer_plant_ties(seed) "
                       "(tools/conform/peer_inputs.c)%s",
                       pc->use_keys ? "keys" : "values", synth, planted, edits[pc->edit]);
    if (c.format == KVQ_PEER_FP8_E4M3 && pc->config.scale == 0.0f)
        json_write_string(p, "scale", "fl32(max |x| / (448 * headroom)) of x before the ties were planted");
    json_write_end(p);
    golden_begin_case(w, pc->name, "S17", "peer_quantize", golden_params_text(&params));
    json_text_free(&params);
    golden_array(w, GOLDEN_INPUT, "x", GOLDEN_F32, x, SHAPE(n, d));
    golden_array(w, GOLDEN_BOUNDARY, "data", GOLDEN_U8, data, SHAPE((uint32_t)bytes));
    golden_array(w, GOLDEN_EXACT, "dequantized", GOLDEN_F32, y, SHAPE(n, d));
    golden_end_case(w);
done:
    free(keys);
    free(values);
    free(y);
    free(data);
}

typedef struct peer_attention_case {
    const char *name;
    kvq_peer_config keys, values; /* fp8 scale 0: peer_fp8_scale of that tensor */
    uint32_t n_tokens, head_dim, n_q;
    float q_scale;
    peer_inputs_spec inputs;
} peer_attention_case;

static const peer_attention_case attention_cases[] = {
    {"peer_attention_q8_0_d128_n200_gqa4", {KVQ_PEER_Q8_0, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f},
     {KVQ_PEER_Q8_0, KVQ_ROLE_VALUES, 0, 0, 0, 0.0f}, 200, 128, 4, 1.0f, SPEC(200, 128, 1801, KVQ_SYNTH_STRESS, true)},
    {"peer_attention_q4_0_d128_n300", {KVQ_PEER_Q4_0, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f},
     {KVQ_PEER_Q4_0, KVQ_ROLE_VALUES, 0, 0, 0, 0.0f}, 300, 128, 1, 1.0f,
     SPEC(300, 128, 1802, KVQ_SYNTH_REALISTIC, false)},
    {"peer_attention_kivi_b2_d128_n300", {KVQ_PEER_KIVI, KVQ_ROLE_KEYS, 2, 32, 128, 0.0f},
     {KVQ_PEER_KIVI, KVQ_ROLE_VALUES, 2, 32, 128, 0.0f}, 300, 128, 1, 1.0f,
     SPEC(300, 128, 1803, KVQ_SYNTH_REALISTIC, false)},
    {"peer_attention_kivi_b4_d64_n100_gqa2", {KVQ_PEER_KIVI, KVQ_ROLE_KEYS, 4, 32, 64, 0.0f},
     {KVQ_PEER_KIVI, KVQ_ROLE_VALUES, 4, 32, 64, 0.0f}, 100, 64, 2, 1.0f, SPEC(100, 64, 1804, KVQ_SYNTH_STRESS, true)},
    {"peer_attention_fp8_e4m3_d128_n257", {KVQ_PEER_FP8_E4M3, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f},
     {KVQ_PEER_FP8_E4M3, KVQ_ROLE_VALUES, 0, 0, 0, 0.0f}, 257, 128, 1, 1.0f,
     SPEC(257, 128, 1805, KVQ_SYNTH_STRESS, false)},
    {"peer_attention_fp8_e4m3_d256_n64_gqa8_uniform", {KVQ_PEER_FP8_E4M3, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f},
     {KVQ_PEER_FP8_E4M3, KVQ_ROLE_VALUES, 0, 0, 0, 0.0f}, 64, 256, 8, 0.0625f,
     SPEC(64, 256, 1806, KVQ_SYNTH_REALISTIC, true)},
};

static void attention_case_run(golden_writer *w, const peer_attention_case *ac)
{
    uint32_t n = ac->n_tokens, d = ac->head_dim, n_q = ac->n_q;
    size_t count = (size_t)n * d, qd = (size_t)n_q * d;
    float *keys = malloc(count * sizeof *keys), *values = malloc(count * sizeof *values);
    float *q = malloc(qd * sizeof *q), *out = malloc(qd * sizeof *out);
    float *bound = malloc(KVQ_PROFILE_COUNT * qd * sizeof *bound);
    uint8_t *kd = NULL, *vd = NULL;
    if (!keys || !values || !q || !out || !bound) {
        golden_fail(w, ac->name, KVQ_ERR_OUT_OF_MEMORY);
        goto done;
    }
    if (!peer_synth(&ac->inputs, keys, values)) {
        golden_fail(w, ac->name, KVQ_ERR_BAD_ARGUMENT);
        goto done;
    }
    kvq_peer_config kc = ac->keys, vc = ac->values;
    if (kc.format == KVQ_PEER_FP8_E4M3) kc.scale = peer_fp8_scale(keys, count, 1.0f); /* per head (S17.5) */
    if (vc.format == KVQ_PEER_FP8_E4M3) vc.scale = peer_fp8_scale(values, count, 1.0f);
    /* the query: fp16(q_scale * normal), rotated like the keys, at position n */
    kvq_rng rng;
    kvq_rng_seed(&rng, ac->inputs.seed + 7u);
    for (size_t i = 0; i < qd; i++) q[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(ac->q_scale * kvq_rng_normal(&rng)));
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    for (uint32_t h = 0; h < n_q; h++) GOLDEN_CHECK(w, kvq_rope_apply(&rope, d, n, q + (size_t)h * d, q + (size_t)h * d));
    size_t kb = 0, vb = 0;
    GOLDEN_CHECK(w, kvq_peer_bytes(&kc, n, d, &kb));
    GOLDEN_CHECK(w, kvq_peer_bytes(&vc, n, d, &vb));
    kd = malloc(kb > 0 ? kb : 1), vd = malloc(vb > 0 ? vb : 1);
    if (kd == NULL || vd == NULL) {
        golden_fail(w, ac->name, KVQ_ERR_OUT_OF_MEMORY);
        goto done;
    }
    GOLDEN_CHECK(w, kvq_peer_quantize(&kc, keys, n, d, kd));
    GOLDEN_CHECK(w, kvq_peer_quantize(&vc, values, n, d, vd));
    GOLDEN_CHECK(w, kvq_peer_attention_decode(&kc, kd, &vc, vd, n, d, q, n_q, out));
    float *const bounds[KVQ_PROFILE_COUNT] = {bound, bound + qd, bound + 2 * qd};
    for (int p = 0; p < KVQ_PROFILE_COUNT; p++)
        GOLDEN_CHECK(w, kvq_peer_attention_error_bound(&kc, kd, &vc, vd, n, d, q, n_q, (kvq_attention_profile)p,
                                                       bounds[p]));

    char synth[1024];
    peer_describe_synth(&ac->inputs, synth, sizeof synth);
    json_text params;
    json_writer *p = golden_params(&params);
    peer_config_json(p, "keys", &kc);
    peer_config_json(p, "values", &vc);
    json_write_u64(p, "n_tokens", n);
    json_write_u64(p, "head_dim", d);
    json_write_u64(p, "n_q", n_q);
    json_write_object_inline(p, "inputs");
    json_write_string(p, "keys, values", synth);
    json_write_stringf(p, "q",
                       "fp16(%g * kvq_rng_normal) from a generator seeded with seed + 7, then rotated by HALF RoPE at "
                       "position n_tokens",
                       (double)ac->q_scale);
    json_write_stringf(p, "k_data, v_data", "kvq_peer_quantize of keys and values with the configurations above%s",
                       kc.format == KVQ_PEER_FP8_E4M3 ? " (each scale fl32(max |x| / 448) of its tensor)" : "");
    json_write_end(p);
    golden_begin_case(w, ac->name, "S17.7,S12.3,S12.4", "peer_attention", golden_params_text(&params));
    json_text_free(&params);
    golden_array(w, GOLDEN_INPUT, "keys", GOLDEN_F32, keys, SHAPE(n, d));
    golden_array(w, GOLDEN_INPUT, "values", GOLDEN_F32, values, SHAPE(n, d));
    golden_array(w, GOLDEN_INPUT, "q", GOLDEN_F32, q, SHAPE(n_q, d));
    golden_array(w, GOLDEN_INPUT, "k_data", GOLDEN_U8, kd, SHAPE((uint32_t)kb));
    golden_array(w, GOLDEN_INPUT, "v_data", GOLDEN_U8, vd, SHAPE((uint32_t)vb));
    golden_array(w, GOLDEN_BOUNDED, "out", GOLDEN_F32, out, SHAPE(n_q, d));
    golden_bound_arrays(w, (const float *const *)bounds, SHAPE(n_q, d));
    golden_end_case(w);
done:
    free(keys);
    free(values);
    free(q);
    free(out);
    free(bound);
    free(kd);
    free(vd);
}

void golden_cases_peer(golden_writer *w)
{
    for (size_t i = 0; i < sizeof quantize_cases / sizeof quantize_cases[0]; i++)
        quantize_case_run(w, &quantize_cases[i]);
    for (size_t i = 0; i < sizeof attention_cases / sizeof attention_cases[0]; i++)
        attention_case_run(w, &attention_cases[i]);
}
