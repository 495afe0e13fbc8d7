/*
 * attention_scenario.c - see attention_scenario.h.
 */
#include "attention_scenario.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { D = SCENARIO_D, NQ = SCENARIO_NQ };

const kvq_rope scenario_rope = {KVQ_ROPE_HALF, 10000.0f};

static uint64_t rng;
void scenario_rng_seed(uint64_t seed) { rng = seed; }
double scenario_uniform01(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) * 0x1p-53;
}
double scenario_normal(void)
{
    return sqrt(-2.0 * log(scenario_uniform01())) * cos(6.283185307179586 * scenario_uniform01());
}
/* Heavy tails: 3% of elements are scaled by up to 8x. */
static double heavy(void)
{
    return scenario_normal() * (scenario_uniform01() < 0.03 ? 1.0 + 7.0 * scenario_uniform01() : 1.0);
}

kvq_head_config scenario_head_config(kvq_role role, kvq_scheme scheme, uint32_t bits, uint32_t n_sinks)
{
    kvq_head_config c;
    memset(&c, 0, sizeof c);
    c.role = role;
    c.quantizer.scheme = scheme;
    c.quantizer.bits = bits;
    c.key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE;
    c.group_size = role == KVQ_ROLE_KEYS ? 1 : 0;
    c.policy = kvq_token_policy_default();
    c.policy.rule = KVQ_POLICY_QUANTIZE_ALL;
    c.policy.n_sinks = n_sinks;
    c.policy.recent_window = 0;
    return c;
}

void make_scenario_with(scenario *s, uint32_t n, uint32_t first_position, uint64_t seed, const scenario_options *o)
{
    memset(s, 0, sizeof *s);
    scenario_rng_seed(seed);
    s->n = n;
    s->pos = malloc(n * sizeof *s->pos);
    s->keys = malloc((size_t)n * D * sizeof(float));
    s->values = malloc((size_t)n * D * sizeof(float));
    s->kd = malloc((size_t)n * D * sizeof(float));
    s->vd = malloc((size_t)n * D * sizeof(float));
    ck_assert(s->pos && s->keys && s->values && s->kd && s->vd);
    for (uint32_t t = 0; t < n; t++) {
        s->pos[t] = first_position + t;
        for (uint32_t c = 0; c < D; c++) {
            double kscale = (c == 17 ? 20.0 : 1.0 + 0.5 * (double)(c % 7));
            double kx = heavy() * kscale, vx = heavy();
            if (t == 0) {
                bool slow = (c >= 56 && c < 64) || c >= 120;
                kx = slow ? 12.0 : kx;
                vx *= 30.0;
            }
            s->keys[(size_t)t * D + c] = (float)kx;
            s->values[(size_t)t * D + c] = (float)vx;
        }
    }
    for (uint32_t i = 0; i < NQ * D; i++) {
        uint32_t c = i % D;
        bool slow = (c >= 56 && c < 64) || c >= 120;
        s->q[i] = (float)((scenario_normal() * 0.7 + (slow ? 0.6 : 0.0)) * o->query_scale);
    }
    s->q_position = first_position + n;
    kvq_codebook nf4;
    ck_assert_int_eq(kvq_codebook_normalfloat(4, &nf4), KVQ_OK);
    kvq_head_config kc;
    if (o->uniform_keys) {
        kc = scenario_head_config(KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 4, o->n_sinks);
        kc.group_size = 32;
        kc.outlier_ppm = 10000;
    } else {
        /* Calibrate on the first 256 tokens (the "calibration set"). */
        ck_assert_int_eq(kvq_calibrate_channel_ranges(s->keys, n < 256 ? n : 256, D, 10000, s->range), KVQ_OK);
        kc = scenario_head_config(KVQ_ROLE_KEYS, KVQ_SCHEME_NUQ, 4, o->n_sinks);
        kc.quantizer.codebook = &nf4;
        kc.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
        kc.channel_range = s->range;
        kc.n_channel_range = D;
        kc.group_size = 0;
    }
    kvq_head_config vc = scenario_head_config(KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, o->n_sinks);
    vc.outlier_ppm = 10000;
    ck_assert_int_eq(kvq_quantize_head(&kc, s->keys, n, D, NULL, &s->k), KVQ_OK);
    ck_assert_int_eq(kvq_quantize_head(&vc, s->values, n, D, NULL, &s->v), KVQ_OK);
    ck_assert_int_eq(kvq_dequantize_head(s->k, s->kd), KVQ_OK);
    ck_assert_int_eq(kvq_dequantize_head(s->v, s->vd), KVQ_OK);
    ck_assert_int_eq(kvq_attention_decode(s->k, s->v, s->pos, &scenario_rope, s->q, NQ, s->q_position, s->ref),
                     KVQ_OK);
    ck_assert_int_eq(
        kvq_attention_error_bound(s->k, s->v, s->pos, &scenario_rope, s->q, NQ, s->q_position, s->bound), KVQ_OK);
}

void make_scenario(scenario *s, uint32_t n, uint32_t first_position, uint64_t seed, uint32_t n_sinks)
{
    scenario_options o = {n_sinks, false, 1.0};
    make_scenario_with(s, n, first_position, seed, &o);
}

void free_scenario(scenario *s)
{
    kvq_qtensor_free(s->k);
    kvq_qtensor_free(s->v);
    free(s->pos), free(s->keys), free(s->values), free(s->kd), free(s->vd);
}
