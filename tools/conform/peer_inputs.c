/*
 * peer_inputs.c - inputs of peer-format cases (peer_inputs.h).
 */
#include "peer_inputs.h"

#include "json_write.h"

#include "inexact.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

bool peer_synth(const peer_inputs_spec *s, float *keys, float *values)
{
    kvq_synth_params p = {s->n_tokens, s->head_dim, s->seed, 4, 0.01f, 1, 0, 0};
    if (s->profile == KVQ_SYNTH_REALISTIC) p.n_outlier_channels = 10, p.tail_probability = 0.000008f;
    if (kvq_synth_kv_profile(&p, s->profile, keys, values, NULL) != KVQ_OK) return false;
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    for (uint32_t t = 0; t < s->n_tokens; t++) {
        float *k = keys + (size_t)t * s->head_dim;
        if (kvq_rope_apply(&rope, s->head_dim, t, k, k) != KVQ_OK) return false;
        /* a rotation can leave the fp16 grid and, in principle, the fp16 range: clamp to it (S1.3) */
        for (uint32_t c = 0; c < s->head_dim; c++) k[c] = fmaxf(-65504.0f, fminf(65504.0f, k[c]));
    }
    if (s->inexact) {
        conform_inexact(values, (size_t)s->n_tokens * s->head_dim, s->seed + 2000u);
        /* conform_inexact wants fp16 numbers: the rotated keys are rounded to fp16 first */
        for (size_t i = 0; i < (size_t)s->n_tokens * s->head_dim; i++)
            keys[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(keys[i]));
        conform_inexact(keys, (size_t)s->n_tokens * s->head_dim, s->seed + 1000u);
    }
    return true;
}

void peer_describe_synth(const peer_inputs_spec *s, char *out, size_t size)
{
    snprintf(out, size,
             "kvq_synth_kv_profile(n_tokens, head_dim, seed %llu, %s, n_outlier_channels %u, tail_probability %s, "
             "sink_token 1, all text): values as made; keys rotated by HALF RoPE (base 10000) at position t "
             "(kvq_rope_apply) and clamped to +-65504%s",
             (unsigned long long)s->seed, s->profile == KVQ_SYNTH_REALISTIC ? "realistic" : "stress",
             s->profile == KVQ_SYNTH_REALISTIC ? 10u : 4u, s->profile == KVQ_SYNTH_REALISTIC ? "0.000008" : "0.01",
             s->inexact ? "; then the keys rounded to fp16 and moved off the fp16 grid by conform_inexact(seed + 1000), "
                          "the values by conform_inexact(seed + 2000) (tools/conform/inexact.c)"
                        : "");
}

static uint64_t step(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return *state >> 33;
}

/* A ggml block (token t, block b) rebuilt on a power-of-two scale 2^e: q8_0 amax = 127 * 2^e, the others
 * at (k + 1/2) 2^e; q4_0 max = -8 * 2^e, the others at (j - 8.5) 2^e, where u + 8.5 is an integer. */
static void ggml_block(bool q4, float *x, uint64_t *state)
{
    float unit = ldexpf(1.0f, (int)(step(state) % 9) - 6);
    for (int j = 0; j < 32; j++) {
        double k = q4 ? (double)(1 + step(state) % 15) - 8.5 : (double)((int)(step(state) % 254) - 127) + 0.5;
        x[j] = (float)k * unit;
    }
    int big = (int)(step(state) % 32);
    x[big] = q4 ? -8.0f * unit : (step(state) & 1 ? -127.0f : 127.0f) * unit;
}

/* A KIVI group on scale 2^e from mn = 0: mx = top 2^e, the others at (k + 1/2) 2^e. */
static void kivi_group(const kvq_peer_config *c, float *x, uint32_t d, uint32_t line, uint32_t g, uint64_t *state)
{
    uint32_t top = (1u << c->bits) - 1u;
    float unit = ldexpf(1.0f, (int)(step(state) % 5) - (c->bits == 8 ? 9 : 6));
    bool keys = c->role == KVQ_ROLE_KEYS;
    for (uint32_t i = 0; i < c->group_size; i++) {
        size_t at = keys ? (size_t)(g * c->group_size + i) * d + line : (size_t)line * d + g * c->group_size + i;
        x[at] = (float)((double)(step(state) % top) + 0.5) * unit;
        if (i == 0) x[at] = 0.0f;
        if (i == 1) x[at] = (float)top * unit;
    }
}

uint32_t peer_plant_ties(const kvq_peer_config *c, float *x, uint32_t n, uint32_t d, uint64_t seed, uint32_t count)
{
    uint64_t state = seed ^ 0x7469657300000000ull; /* "ties" */
    uint32_t planted = 0;
    switch (c->format) {
    case KVQ_PEER_Q8_0:
    case KVQ_PEER_Q4_0:
        for (; planted < count && planted < n * (d / 32); planted++) {
            uint32_t block = (uint32_t)(step(&state) % (n * (d / 32)));
            ggml_block(c->format == KVQ_PEER_Q4_0, x + (size_t)block * 32, &state);
        }
        break;
    case KVQ_PEER_KIVI: {
        bool keys = c->role == KVQ_ROLE_KEYS;
        uint32_t quantized = keys ? n / c->residual * c->residual : (n > c->residual ? n - c->residual : 0);
        uint32_t lines = keys ? d : quantized, per_line = keys ? quantized / c->group_size : d / c->group_size;
        for (; planted < count && lines > 0 && per_line > 0; planted++)
            kivi_group(c, x, d, (uint32_t)(step(&state) % lines), (uint32_t)(step(&state) % per_line), &state);
        break;
    }
    case KVQ_PEER_FP8_E4M3:
        /* elements at midpoints of neighbouring e4m3 values, times the scale */
        for (; planted < count && planted < n * d; planted++) {
            uint32_t m = (uint32_t)(1 + step(&state) % 0x7C), e = m >> 3, f = m & 7u, e1 = (m + 1) >> 3, f1 = (m + 1) & 7u;
            double a = e == 0 ? ldexp(f, -9) : ldexp(1.0 + f / 8.0, (int)e - 7);
            double b = e1 == 0 ? ldexp(f1, -9) : ldexp(1.0 + f1 / 8.0, (int)e1 - 7);
            double v = 0.5 * (a + b) * (double)c->scale * (step(&state) & 1 ? -1.0 : 1.0);
            x[step(&state) % ((uint64_t)n * d)] = (float)fmax(-65504.0, fmin(65504.0, v));
        }
        break;
    default: break;
    }
    return planted;
}

float peer_fp8_scale(const float *x, size_t n, float headroom)
{
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float scale = amax / (448.0f * headroom);
    return scale >= 0x1p-126f ? scale : 1.0f;
}

void peer_describe_config(char *out, size_t size, const kvq_peer_config *c)
{
    const char *role = c->role == KVQ_ROLE_KEYS ? "keys" : "values";
    switch (c->format) {
    case KVQ_PEER_KIVI:
        snprintf(out, size, "kivi %s %u-bit, groups of %u %s, residual %u tokens", role, c->bits, c->group_size,
                 c->role == KVQ_ROLE_KEYS ? "tokens" : "channels", c->residual);
        break;
    case KVQ_PEER_FP8_E4M3: snprintf(out, size, "fp8_e4m3 %s, scale %.9g", role, (double)c->scale); break;
    default: snprintf(out, size, "%s %s (blocks of 32 channels)", kvq_peer_format_name(c->format), role);
    }
}

void peer_config_json(json_writer *w, const char *key, const kvq_peer_config *c)
{
    uint32_t bits;
    memcpy(&bits, &c->scale, sizeof bits);
    json_write_object_inline(w, key);
    json_write_string(w, "format", kvq_peer_format_name(c->format));
    json_write_string(w, "role", c->role == KVQ_ROLE_KEYS ? "keys" : "values");
    json_write_u64(w, "bits", c->bits);
    json_write_u64(w, "group_size", c->group_size);
    json_write_u64(w, "residual", c->residual);
    json_write_fp32(w, "scale", c->scale);
    json_write_u64(w, "scale_bits", bits);
    json_write_end(w);
}
