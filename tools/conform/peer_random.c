/*
 * peer_random.c - random peer-format cases (S17): shapes, KIVI widths, groups
 * and residuals, roles, fp8 scales (vLLM's amax / 448, smaller ones that
 * saturate, powers of two), inputs of both generator profiles on and off the
 * fp16 grid, groups rebuilt on code boundaries; expected results from libkvq
 * here. A case is a pure function of its seed, so `--seed S --case NAME`
 * replays it.
 */
#include "peer_models.h"

#include "peer_inputs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t pick(kvq_rng *rng, uint32_t n) { return (uint32_t)(kvq_rng_next_u64(rng) % n); }

static uint32_t pick_head_dim(kvq_rng *rng, bool small)
{
    static const uint32_t dims[] = {32, 64, 128, 256};
    if (!small && pick(rng, 10) == 0) return pick(rng, 2) ? 1024 : 512;
    return dims[pick(rng, 4)];
}

/* A KIVI configuration valid for head_dim d (S17.4): G | R, (32 / bits) | R for keys; G | d for values. */
static kvq_peer_config kivi_config(kvq_rng *rng, kvq_role role, uint32_t bits, uint32_t d)
{
    static const uint32_t groups[] = {8, 16, 32, 64, 128};
    kvq_peer_config c = {KVQ_PEER_KIVI, role, bits, 0, 0, 0.0f};
    uint32_t per_word = 32u / bits;
    do c.group_size = groups[pick(rng, 5)];
    while (role == KVQ_ROLE_VALUES && d % c.group_size != 0);
    uint32_t base = c.group_size > per_word ? c.group_size : per_word;
    c.residual = base * (1u << pick(rng, 3)); /* 1, 2 or 4 blocks of the larger of G and 32 / bits */
    return c;
}

static kvq_peer_config random_config(kvq_rng *rng, kvq_peer_format f, kvq_role role, uint32_t bits, uint32_t d)
{
    if (f == KVQ_PEER_KIVI) return kivi_config(rng, role, bits, d);
    kvq_peer_config c = {f, role, 0, 0, 0, 0.0f};
    return c;
}

/* fp8: vLLM's amax / 448, a smaller scale that saturates the largest elements, a larger one, or 2^k. */
static float random_scale(kvq_rng *rng, const float *x, size_t n)
{
    static const float headroom[] = {1.0f, 0.4f, 3.0f};
    uint32_t k = pick(rng, 4);
    if (k == 3) return ldexpf(1.0f, (int)pick(rng, 12) - 8);
    return peer_fp8_scale(x, n, headroom[k]);
}

static peer_inputs_spec random_inputs(kvq_rng *rng, uint32_t n, uint32_t d)
{
    peer_inputs_spec s = {n, d, kvq_rng_next_u64(rng), pick(rng, 2) ? KVQ_SYNTH_REALISTIC : KVQ_SYNTH_STRESS,
                          pick(rng, 2) == 1};
    return s;
}

static void describe_draw(char *what, size_t size, const peer_inputs_spec *s, uint32_t ties)
{
    size_t used = strlen(what);
    snprintf(what + used, size - used, "; inputs %s%s, %u groups on boundaries",
             s->profile == KVQ_SYNTH_REALISTIC ? "realistic" : "stress", s->inexact ? " off the fp16 grid" : "", ties);
}

bool random_peer_quantize(uint64_t case_seed, kvq_peer_format f, peer_quantize_model *m, char *error,
                          size_t error_size)
{
    memset(m, 0, sizeof *m);
    kvq_rng rng;
    kvq_rng_seed(&rng, case_seed);
    static const uint32_t kivi_bits[] = {2, 4, 8};
    uint32_t d = pick_head_dim(&rng, false), bits = kivi_bits[pick(&rng, 3)];
    kvq_role role = pick(&rng, 2) ? KVQ_ROLE_KEYS : KVQ_ROLE_VALUES;
    m->config = random_config(&rng, f, role, bits, d);
    uint32_t n = 1 + pick(&rng, 400);
    if (f == KVQ_PEER_KIVI && pick(&rng, 4) == 0) n = m->config.residual * (1 + pick(&rng, 3)); /* no key residual */
    if (d >= 512) n = 1 + n % 48;
    m->n_tokens = n, m->head_dim = d;
    size_t count = (size_t)n * d;
    float *keys = malloc(count * sizeof *keys), *values = malloc(count * sizeof *values);
    peer_inputs_spec s = random_inputs(&rng, n, d);
    if (keys == NULL || values == NULL || !peer_synth(&s, keys, values)) {
        free(keys), free(values);
        snprintf(error, error_size, "cannot make the inputs of %u x %u", n, d);
        return false;
    }
    m->x = role == KVQ_ROLE_KEYS ? keys : values;
    free(role == KVQ_ROLE_KEYS ? values : keys);
    if (f == KVQ_PEER_FP8_E4M3) m->config.scale = random_scale(&rng, m->x, count);
    uint32_t ties = peer_plant_ties(&m->config, m->x, n, d, kvq_rng_next_u64(&rng), pick(&rng, 9));
    conform_diag d_diag;
    diag_clear(&d_diag);
    if (!peer_quantize_model_finish(m, &d_diag)) {
        snprintf(error, error_size, "%s", d_diag.detail);
        return false;
    }
    describe_draw(m->what, sizeof m->what, &s, ties);
    return true;
}

bool random_peer_attention(uint64_t case_seed, kvq_peer_format f, uint32_t max_context, bool force_max,
                           kvq_attention_profile profile, peer_attention_model *m, char *error, size_t error_size)
{
    memset(m, 0, sizeof *m);
    kvq_rng rng;
    kvq_rng_seed(&rng, case_seed);
    static const uint32_t kivi_bits[] = {2, 4, 8};
    static const float q_scales[] = {1.0f, 0.25f, 0.0625f};
    uint32_t d = pick_head_dim(&rng, true), bits = kivi_bits[pick(&rng, 3)];
    uint32_t limit = max_context < 600 ? max_context : 600;
    uint32_t n = force_max ? max_context : 1 + pick(&rng, limit);
    m->key_config = random_config(&rng, f, KVQ_ROLE_KEYS, bits, d);
    m->value_config = random_config(&rng, f, KVQ_ROLE_VALUES, bits, d);
    m->n_tokens = n, m->head_dim = d, m->n_q = 1 + pick(&rng, 8), m->profile = profile;
    size_t count = (size_t)n * d, qd = (size_t)m->n_q * d;
    m->keys = malloc(count * sizeof *m->keys);
    m->values = malloc(count * sizeof *m->values);
    m->q = malloc(qd * sizeof *m->q);
    peer_inputs_spec s = random_inputs(&rng, n, d);
    if (m->keys == NULL || m->values == NULL || m->q == NULL || !peer_synth(&s, m->keys, m->values)) {
        snprintf(error, error_size, "cannot make the inputs of %u x %u", n, d);
        return false;
    }
    if (f == KVQ_PEER_FP8_E4M3) {
        m->key_config.scale = random_scale(&rng, m->keys, count);
        m->value_config.scale = random_scale(&rng, m->values, count);
    }
    float q_scale = q_scales[pick(&rng, 3)];
    for (size_t i = 0; i < qd; i++) m->q[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(q_scale * kvq_rng_normal(&rng)));
    conform_diag diag;
    diag_clear(&diag);
    if (!peer_attention_model_finish(m, &diag)) {
        snprintf(error, error_size, "%s", diag.detail);
        return false;
    }
    size_t used = strlen(m->what);
    snprintf(m->what + used, sizeof m->what - used, "; q = fp16(%g normal)", (double)q_scale);
    describe_draw(m->what, sizeof m->what, &s, 0);
    return true;
}
