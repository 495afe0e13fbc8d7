/*
 * cases_numerics.c - golden cases for the element-level rules: fp16
 * conversion (S2), uniform groups (S3), packing (S5), NUQ groups and the
 * NormalFloat tables (S6.1-S6.5), and the generator (S14.1-S14.2).
 */
#include "golden.h"
#include "json_write.h"

#include "conform/inexact.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SHAPE(...) ((const uint32_t[4]){__VA_ARGS__})

static float fp16_exact(float x) { return kvq_fp32_from_fp16(kvq_fp16_from_fp32(x)); }

static float float_from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* S2: narrowing of chosen edge values and random fp32 patterns, and widening of every fp16. */
static void fp16_cases(golden_writer *w)
{
    enum { N_EDGE = 30, N_RANDOM = 1000, N = N_EDGE + N_RANDOM };
    static float x[N];
    static uint16_t nearest[N], down[N], up[N];
    /* S2.6's rows, then the neighbours S2.5 steps to: around +-0, +-65504 and +-infinity, and NaN */
    const float edge[N_EDGE] = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 0x1.ffdffap+15f, 65520.0f, -65520.0f,
                                0x1p-24f, 0x1p-25f, 0x1.8p-24f, 0x1.002p+0f, 0x1.006p+0f, 0x1.ffcp-15f, 0.1f,
                                -0.1f, 1e-8f, -1e-8f, 0x1p-14f, 0x1.ff8p-15f, INFINITY, -INFINITY, NAN, 1e30f,
                                -1e30f, -0x1p-25f, 0x1p-26f, -0x1p-26f, -0x1.ffdffap+15f, -65504.0f};
    memcpy(x, edge, sizeof edge);
    kvq_rng rng;
    kvq_rng_seed(&rng, 2);
    for (int i = N_EDGE; i < N; i++) {
        /* exponents from fp16-subnormal to overflow, both signs, random mantissas */
        uint64_t r = kvq_rng_next_u64(&rng);
        uint32_t exponent = 100u + (uint32_t)(r >> 40) % 45u;
        x[i] = float_from_bits((uint32_t)(r & 0x807FFFFFu) | exponent << 23);
    }
    for (int i = 0; i < N; i++) {
        nearest[i] = kvq_fp16_from_fp32(x[i]);
        down[i] = kvq_fp16_round_down(x[i]);
        up[i] = kvq_fp16_round_up(x[i]);
    }
    {
        json_text params;
        json_writer *p = golden_params(&params);
        json_write_array_inline(p, "rounding");
        json_write_string(p, NULL, "nearest_even");
        json_write_string(p, NULL, "down");
        json_write_string(p, NULL, "up");
        json_write_end(p);
        json_write_string(p, "inputs", "30 edge values (S2.6, S2.5's neighbours of +-0, +-65504, +-infinity, NaN), "
                                       "then 1000 random fp32 patterns");
        golden_begin_case(w, "fp16_narrow", "S2.2-S2.5", "fp16_from_fp32", golden_params_text(&params));
        json_text_free(&params);
    }
    golden_array(w, GOLDEN_INPUT, "x", GOLDEN_F32, x, SHAPE(N));
    golden_array(w, GOLDEN_EXACT, "nearest", GOLDEN_U16, nearest, SHAPE(N));
    golden_array(w, GOLDEN_EXACT, "down", GOLDEN_U16, down, SHAPE(N));
    golden_array(w, GOLDEN_EXACT, "up", GOLDEN_U16, up, SHAPE(N));
    golden_end_case(w);

    static uint16_t all[65536];
    static float widened[65536];
    for (uint32_t h = 0; h < 65536u; h++) {
        all[h] = (uint16_t)h;
        widened[h] = kvq_fp32_from_fp16((uint16_t)h);
    }
    {
        json_text params; /* no params: {} */
        golden_params(&params);
        golden_begin_case(w, "fp16_widen", "S2.1", "fp32_from_fp16", golden_params_text(&params));
        json_text_free(&params);
    }
    golden_array(w, GOLDEN_INPUT, "h", GOLDEN_U16, all, SHAPE(65536));
    golden_array(w, GOLDEN_EXACT, "x", GOLDEN_F32, widened, SHAPE(65536));
    golden_end_case(w);
}

enum { N_GROUPS = 48, GROUP = 32 };

/* Groups that exercise S3/S6: random groups of several scales and offsets,
 * groups whose inner elements sit exactly on decision thresholds (ties),
 * zero-range groups, and a group spanning the whole fp16 range. */
static void make_groups(const kvq_quantizer *q, kvq_rng *rng, float x[N_GROUPS][GROUP])
{
    for (int g = 0; g < N_GROUPS; g++) {
        float scale = ldexpf(1.0f, (int)(kvq_rng_next_u64(rng) >> 59) - 12); /* 2^-12 .. 2^19 */
        if (scale > 1024.0f) scale = 1024.0f;
        float offset = (g % 3 == 0) ? scale * 8.0f * kvq_rng_normal(rng) : 0.0f;
        for (int i = 0; i < GROUP; i++) x[g][i] = fp16_exact(offset + scale * kvq_rng_normal(rng));
        if (g % 4 == 1) {
            /* ties: put inner elements exactly on thresholds of this group's own parameters */
            float mn = x[g][0], mx = x[g][0];
            for (int i = 1; i < GROUP; i++) {
                mn = fminf(mn, x[g][i]);
                mx = fmaxf(mx, x[g][i]);
            }
            kvq_group_params p = kvq_group_params_from_range(q, mn, mx);
            uint32_t levels = 1u << q->bits;
            for (int i = 0; i < GROUP; i++) {
                if (x[g][i] == mn || x[g][i] == mx || i % 2 == 0) continue;
                uint32_t k = 1u + (uint32_t)(kvq_rng_next_u64(rng) % (levels - 1u));
                float t = kvq_decision_threshold(q, p, k);
                if (t > mn && t < mx) x[g][i] = t; /* stays inside, so the parameters do not change */
            }
        }
    }
    for (int i = 0; i < GROUP; i++) {
        x[N_GROUPS - 1][i] = 0.25f;                                  /* zero range */
        x[N_GROUPS - 2][i] = 0.0f;                                   /* all zero */
        x[N_GROUPS - 3][i] = (i % 2) ? 65504.0f : -65504.0f;         /* the whole range */
        x[N_GROUPS - 4][i] = 1000.0f + 0.0625f * (float)(i % 5);     /* large offset, small spread */
        x[N_GROUPS - 5][i] = ldexpf((float)(i % 7), -24);            /* fp16 subnormals */
        /* S3.7 example 5: max - a_f is not an fp32 number, so S3.2's two roundings matter */
        x[N_GROUPS - 6][i] = i == 0 ? -0x1p-23f : i == 1 ? 15.0f : (float)(i % 15);
    }
    /* Groups whose elements are not fp16 numbers (S2.2 ties among them): the
     * minimum then rounds down to a, not to nearest (S3.2). Every fourth
     * random group, chosen before the fixed ones above. */
    for (int g = 3; g < N_GROUPS - 6; g += 4) conform_inexact(x[g], GROUP, 1000u + (uint64_t)g);
}

static void group_case(golden_writer *w, const kvq_quantizer *q, const char *name, const char *section,
                       uint64_t seed)
{
    static float x[N_GROUPS][GROUP], decoded[N_GROUPS][GROUP];
    static uint16_t params[N_GROUPS][2];
    static uint8_t codes[N_GROUPS][GROUP];
    kvq_rng rng;
    kvq_rng_seed(&rng, seed);
    make_groups(q, &rng, x);
    for (int g = 0; g < N_GROUPS; g++) {
        float mn = x[g][0], mx = x[g][0];
        for (int i = 1; i < GROUP; i++) {
            mn = fminf(mn, x[g][i]);
            mx = fmaxf(mx, x[g][i]);
        }
        kvq_group_params p = kvq_group_params_from_range(q, mn, mx);
        params[g][0] = p.a;
        params[g][1] = p.b;
        for (int i = 0; i < GROUP; i++) {
            codes[g][i] = (uint8_t)kvq_encode(q, p, x[g][i]);
            decoded[g][i] = kvq_decode(q, p, codes[g][i]);
        }
    }
    json_text case_params;
    json_writer *j = golden_params(&case_params);
    json_write_string(j, "scheme", golden_scheme_name(q->scheme));
    json_write_u64(j, "bits", q->bits);
    json_write_string(j, "codebook", q->scheme == KVQ_SCHEME_NUQ ? "normalfloat" : "none");
    json_write_i64(j, "group", GROUP);
    json_write_string(j, "layout", "each row of x is one group: min and max over the whole row (no outliers), then "
                                   "every element's code and decoded value");
    json_write_string(j, "inputs", "groups 3, 7, .., 39 not fp16-exact; 1, 5, .. with thresholds; 42 S3.7 example "
                                   "5; 43-47 fixed edges");
    golden_begin_case(w, name, section, "quantize_groups", golden_params_text(&case_params));
    json_text_free(&case_params);
    golden_array(w, GOLDEN_INPUT, "x", GOLDEN_F32, x, SHAPE(N_GROUPS, GROUP));
    golden_array(w, GOLDEN_EXACT, "params", GOLDEN_U16, params, SHAPE(N_GROUPS, 2));
    golden_array(w, GOLDEN_BOUNDARY, "codes", GOLDEN_U8, codes, SHAPE(N_GROUPS, GROUP));
    golden_array(w, GOLDEN_EXACT, "decoded", GOLDEN_F32, decoded, SHAPE(N_GROUPS, GROUP));
    golden_end_case(w);
}

static void quantizer_cases(golden_writer *w)
{
    static const uint32_t uniform_bits[4] = {2, 3, 4, 8};
    char name[64];
    for (int scheme = 0; scheme < 2; scheme++) {
        for (int b = 0; b < 4; b++) {
            kvq_quantizer q = {(kvq_scheme)scheme, uniform_bits[b], NULL};
            snprintf(name, sizeof name, "uniform_%s_%ubit", scheme == 0 ? "asym" : "sym", uniform_bits[b]);
            group_case(w, &q, name, scheme == 0 ? "S3.2,S3.4-S3.6" : "S3.3-S3.6", 100u + 10u * (uint64_t)scheme + b);
        }
    }
    for (uint32_t bits = 2; bits <= 4; bits++) {
        kvq_codebook cb;
        GOLDEN_CHECK(w, kvq_codebook_normalfloat(bits, &cb));
        kvq_quantizer q = {KVQ_SCHEME_NUQ, bits, &cb};
        snprintf(name, sizeof name, "nuq_normalfloat_%ubit", bits);
        group_case(w, &q, name, "S6.2-S6.5", 200u + bits);
    }

    static float signposts[3][16], thresholds[3][15];
    memset(signposts, 0, sizeof signposts);
    memset(thresholds, 0, sizeof thresholds);
    for (uint32_t bits = 2; bits <= 4; bits++) {
        kvq_codebook cb;
        GOLDEN_CHECK(w, kvq_codebook_normalfloat(bits, &cb));
        memcpy(signposts[bits - 2], cb.signpost, sizeof cb.signpost);
        memcpy(thresholds[bits - 2], cb.threshold, sizeof cb.threshold);
    }
    {
        json_text params;
        json_writer *p = golden_params(&params);
        json_write_u64_array(p, "rows", (const uint64_t[]){2u, 3u, 4u}, 3);
        json_write_u64(p, "unused_entries", 0u);
        golden_begin_case(w, "normalfloat_tables", "S6.1,S6.2", "codebook_normalfloat", golden_params_text(&params));
        json_text_free(&params);
    }
    golden_array(w, GOLDEN_EXACT, "signposts", GOLDEN_F32, signposts, SHAPE(3, 16));
    golden_array(w, GOLDEN_EXACT, "thresholds", GOLDEN_F32, thresholds, SHAPE(3, 15));
    golden_end_case(w);
}

/* S5: random codes packed into rows of head_dim 32 (3-bit codes cross words), 64, 128 and 256. */
static void packing_cases(golden_writer *w)
{
    static const uint32_t all_bits[4] = {2, 3, 4, 8};
    static const uint32_t dims[4] = {32, 64, 128, 256};
    kvq_rng rng;
    kvq_rng_seed(&rng, 5);
    for (int b = 0; b < 4; b++) {
        for (int di = 0; di < 4; di++) {
            uint32_t bits = all_bits[b], d = dims[di];
            if (((uint64_t)d * bits) % 32 != 0) continue;
            enum { ROWS = 4 };
            static uint8_t codes[ROWS * 256], packed[ROWS * 256];
            size_t row_bytes = kvq_packed_bytes(d, bits);
            for (uint32_t i = 0; i < ROWS * d; i++) codes[i] = (uint8_t)(kvq_rng_next_u64(&rng) >> (64 - bits));
            for (uint32_t r = 0; r < ROWS; r++) kvq_pack_codes(codes + r * d, d, bits, packed + r * row_bytes);
            char name[64];
            snprintf(name, sizeof name, "pack_%ubit_d%u", bits, d);
            json_text params;
            json_writer *p = golden_params(&params);
            json_write_u64(p, "bits", bits);
            json_write_u64(p, "head_dim", d);
            json_write_i64(p, "rows", ROWS);
            golden_begin_case(w, name, "S5.1-S5.3", "pack_codes", golden_params_text(&params));
            json_text_free(&params);
            golden_array(w, GOLDEN_INPUT, "codes", GOLDEN_U8, codes, SHAPE(ROWS, d));
            golden_array(w, GOLDEN_EXACT, "packed", GOLDEN_U8, packed, SHAPE(ROWS, (uint32_t)row_bytes));
            golden_end_case(w);
        }
    }
}

/* S14.1-S14.2: the generator's first outputs for a few seeds. */
static void prng_cases(golden_writer *w)
{
    static const uint64_t seeds[4] = {0u, 1u, 42u, UINT64_MAX};
    enum { N = 32 };
    static uint64_t raw[4][N];
    static float uniform[4][N], normal[4][N];
    for (int s = 0; s < 4; s++) {
        kvq_rng rng;
        kvq_rng_seed(&rng, seeds[s]);
        for (int i = 0; i < N; i++) raw[s][i] = kvq_rng_next_u64(&rng);
        kvq_rng_seed(&rng, seeds[s]);
        for (int i = 0; i < N; i++) uniform[s][i] = kvq_rng_uniform(&rng);
        kvq_rng_seed(&rng, seeds[s]);
        for (int i = 0; i < N; i++) normal[s][i] = kvq_rng_normal(&rng);
    }
    {
        json_text params;
        json_writer *p = golden_params(&params);
        json_write_u64_array(p, "seeds", (const uint64_t[]){0u, 1u, 42u, 18446744073709551615ull}, 4);
        json_write_u64(p, "per_seed", 32u);
        json_write_string(p, "note", "each stream restarts from its seed");
        golden_begin_case(w, "prng", "S14.1,S14.2", "rng", golden_params_text(&params));
        json_text_free(&params);
    }
    golden_array(w, GOLDEN_EXACT, "next_u64", GOLDEN_U64, raw, SHAPE(4, N));
    golden_array(w, GOLDEN_EXACT, "uniform", GOLDEN_F32, uniform, SHAPE(4, N));
    golden_array(w, GOLDEN_EXACT, "normal", GOLDEN_F32, normal, SHAPE(4, N));
    golden_end_case(w);
}

void golden_cases_numerics(golden_writer *w)
{
    fp16_cases(w);
    quantizer_cases(w);
    packing_cases(w);
    prng_cases(w);
}
