/*
 * synth.c - realistic synthetic keys and values for one head (S14.3).
 *
 * The recipe uses only the S14 generator and IEEE fp32 +, -, *, one
 * correctly rounded fp32 division (the heavy tail), comparisons and the S2
 * conversion, so that every machine produces the same bits. Random numbers are
 * drawn in a fixed order that does not depend on which outputs are requested
 * or on tail_probability, so that changing one knob does not reshuffle the
 * rest of the data.
 */
#include "internal.h"

/* S14.3: the largest magnitude synth writes; below 65504 so that data stays
 * finite with room for arithmetic in later stages. */
#define SYNTH_CLAMP 60000.0f

/* S14.3 step 5: the heavy tail. u and w are always drawn; when u <
 * tail_probability the element is multiplied by fl32(1 / max(w, 1/64)),
 * a factor in (1, 64]. */
static float heavy_tail(kvq_rng *rng, float tail_probability, float x)
{
    float u = kvq_rng_uniform(rng);
    float w = kvq_rng_uniform(rng);
    if (!(u < tail_probability)) return x;
    float floor_w = w < 0x1p-6f ? 0x1p-6f : w;
    return x * (1.0f / floor_w);
}

/* S14.3 step 6: sink scale, clamp to [-60000, 60000], round to fp16. */
static float finish(float x, bool sink)
{
    if (sink) x = x * 8.0f;
    if (x > SYNTH_CLAMP) x = SYNTH_CLAMP;
    if (x < -SYNTH_CLAMP) x = -SYNTH_CLAMP;
    return kvq_fp32_from_fp16(kvq_fp16_from_fp32(x));
}

/* S14.4: TEXT for the first text_run tokens of every period of
 * text_run + image_run tokens, IMAGE for the rest. */
static uint8_t modality_of(const kvq_synth_params *p, uint32_t t)
{
    if (p->image_run == 0) return KVQ_MODALITY_TEXT;
    if (p->text_run == 0) return KVQ_MODALITY_IMAGE;
    uint64_t period = (uint64_t)p->text_run + p->image_run;
    return (uint64_t)t % period < p->text_run ? KVQ_MODALITY_TEXT : KVQ_MODALITY_IMAGE;
}

/* S14.6 step 3: a tail element's normal is replaced by one of 6 to 10 sigma, same sign. */
static float realistic_tail(kvq_rng *rng, float tail_probability, float z)
{
    float u = kvq_rng_uniform(rng);
    float w = kvq_rng_uniform(rng);
    if (!(u < tail_probability)) return z;
    float spread = 4.0f * w;
    float size = 6.0f + spread;
    return z < 0.0f ? -size : size;
}

/* S14.6 step 4: the first token's factor, clamp, fp16. */
static float finish_realistic(float x, bool sink, float sink_factor)
{
    if (sink) x = x * sink_factor;
    return finish(x, false);
}

/* S14.6: the realistic profile (validated by the caller). */
static void synth_realistic(const kvq_synth_params *p, float *keys, float *values, uint8_t *modality)
{
    const uint32_t d = p->head_dim, half = p->head_dim / 2u;
    float bias[KVQ_MAX_HEAD_DIM], scale[KVQ_MAX_HEAD_DIM];
    bool zero[KVQ_MAX_HEAD_DIM];
    kvq_rng rng;
    kvq_rng_seed(&rng, p->seed);

    /* Step 1: per-channel mean 0.75*z and spread 0.375 + 1.625*u; 1 channel in 64 is zero
     * (a key-norm weight of 0 in the model). */
    for (uint32_t c = 0; c < d; c++) {
        float z = kvq_rng_normal(&rng);
        float u = kvq_rng_uniform(&rng);
        float w = kvq_rng_uniform(&rng);
        bias[c] = 0.75f * z;
        float spread = 1.625f * u;
        scale[c] = 0.375f + spread;
        zero[c] = w < 0x1p-6f;
    }
    /* Step 2: outlier channels at the lowest-frequency rotate-half pairs (c, c + d/2), the
     * largest pair index first; mean 2 times the spread, spread factor 5 + 4*u. */
    for (uint32_t j = 0; j < p->n_outlier_channels; j++) {
        uint32_t c = half - 1u - j / 2u + (j % 2u ? half : 0u);
        float z = kvq_rng_normal(&rng);
        float u = kvq_rng_uniform(&rng);
        float growth = 4.0f * u;
        float factor = 5.0f + growth;
        float mean = 2.0f * factor;
        bias[c] = z < 0.0f ? -mean : mean;
        scale[c] = factor;
        zero[c] = false;
    }
    /* Steps 3-4, token by token: amplitudes, the key row, the value row. */
    for (uint32_t t = 0; t < p->n_tokens; t++) {
        bool sink = p->sink_token != 0 && t == 0;
        float u = kvq_rng_uniform(&rng);
        float spread = 0.5f * u;
        float amplitude = 0.75f + spread;
        float v = kvq_rng_uniform(&rng);
        float value_spread = 0.75f * v;
        float value_scale = 0.625f + value_spread;
        for (uint32_t c = 0; c < d; c++) {
            float z = realistic_tail(&rng, p->tail_probability, kvq_rng_normal(&rng));
            float x;
            if (zero[c]) {
                x = z * 0.0f; /* +0 or -0, the sign of z */
            } else {
                float varied = amplitude * z;
                float scaled = scale[c] * varied;
                x = bias[c] + scaled;
            }
            x = finish_realistic(x, sink, 0.84375f);
            if (keys != NULL) keys[(size_t)t * d + c] = x;
        }
        for (uint32_t c = 0; c < d; c++) {
            float z = realistic_tail(&rng, p->tail_probability, kvq_rng_normal(&rng));
            float y = value_scale * z;
            y = finish_realistic(y, sink, 0.265625f);
            if (values != NULL) values[(size_t)t * d + c] = y;
        }
        if (modality != NULL) modality[t] = modality_of(p, t);
    }
}

kvq_status kvq_synth_kv(const kvq_synth_params *p, float *keys, float *values, uint8_t *modality)
{
    return kvq_synth_kv_profile(p, KVQ_SYNTH_STRESS, keys, values, modality);
}

/* S14.3: validation, then the recipe's steps 1-6 (S14.6 for the realistic profile). */
kvq_status kvq_synth_kv_profile(const kvq_synth_params *p, kvq_synth_profile profile, float *keys, float *values,
                                uint8_t *modality)
{
    if (p == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "p is NULL");
    if (keys == NULL && values == NULL && modality == NULL)
        return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "keys, values and modality are all NULL (nothing to generate)");
    if (p->n_tokens == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "p->n_tokens is 0");
    if (p->head_dim == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "p->head_dim is 0");
    if (p->head_dim > KVQ_MAX_HEAD_DIM)
        return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING, "p->head_dim = %u exceeds the largest supported head_dim %u",
                        p->head_dim, KVQ_MAX_HEAD_DIM);
    if (p->n_tokens > KVQ_MAX_TOKENS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "p->n_tokens = %u exceeds the limit of %u tokens (S1.4)",
                        p->n_tokens, KVQ_MAX_TOKENS);
    if (p->n_outlier_channels > p->head_dim)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "p->n_outlier_channels = %u exceeds p->head_dim = %u",
                        p->n_outlier_channels, p->head_dim);
    /* Written so that NaN fails too. */
    if (!(p->tail_probability >= 0.0f && p->tail_probability <= 1.0f))
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "p->tail_probability = %g is not within [0, 1]",
                        (double)p->tail_probability);
    if (p->sink_token > 1)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "p->sink_token = %u is not 0 or 1", p->sink_token);
    if ((unsigned)profile > KVQ_SYNTH_REALISTIC)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "profile = %u is not KVQ_SYNTH_STRESS (0) or KVQ_SYNTH_REALISTIC (1)",
                        (unsigned)profile);
    if (profile == KVQ_SYNTH_REALISTIC) {
        if (p->n_outlier_channels > 2u * (p->head_dim / 2u))
            return kvq_fail(KVQ_ERR_BAD_ARGUMENT,
                            "p->n_outlier_channels = %u exceeds the %u channels of head_dim = %u's RoPE pairs (S14.6)",
                            p->n_outlier_channels, 2u * (p->head_dim / 2u), p->head_dim);
        synth_realistic(p, keys, values, modality);
        return KVQ_OK;
    }

    const uint32_t d = p->head_dim;
    float bias[KVQ_MAX_HEAD_DIM], scale[KVQ_MAX_HEAD_DIM];
    uint32_t perm[KVQ_MAX_HEAD_DIM];
    kvq_rng rng;
    kvq_rng_seed(&rng, p->seed);

    /* Step 1: per-channel key bias 2*z and scale 0.5 + 1.5*u, channel by channel. */
    for (uint32_t c = 0; c < d; c++) {
        float z = kvq_rng_normal(&rng);
        float u = kvq_rng_uniform(&rng);
        bias[c] = 2.0f * z;
        float spread = 1.5f * u;
        scale[c] = 0.5f + spread;
    }

    /* Step 2: outlier channels without repetition by a partial Fisher-Yates
     * shuffle; the i-th chosen channel's scale grows by 8 + 12*u (in [8, 20)). */
    for (uint32_t c = 0; c < d; c++) perm[c] = c;
    for (uint32_t i = 0; i < p->n_outlier_channels; i++) {
        uint32_t j = i + (uint32_t)(kvq_rng_next_u64(&rng) % (uint64_t)(d - i));
        uint32_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
        float u = kvq_rng_uniform(&rng);
        float growth = 12.0f * u;
        float factor = 8.0f + growth;
        scale[perm[i]] = scale[perm[i]] * factor;
    }

    /* Steps 3-6, token by token: the value scale, then the key row, then the
     * value row. Every number is drawn even when its output is not wanted. */
    for (uint32_t t = 0; t < p->n_tokens; t++) {
        bool sink = p->sink_token != 0 && t == 0;
        float u = kvq_rng_uniform(&rng);
        float spread = 1.75f * u;
        float value_scale = 0.25f + spread;
        for (uint32_t c = 0; c < d; c++) {
            float z = kvq_rng_normal(&rng);
            float scaled = scale[c] * z;
            float x = bias[c] + scaled;
            x = finish(heavy_tail(&rng, p->tail_probability, x), sink);
            if (keys != NULL) keys[(size_t)t * d + c] = x;
        }
        for (uint32_t c = 0; c < d; c++) {
            float z = kvq_rng_normal(&rng);
            float y = value_scale * z;
            y = finish(heavy_tail(&rng, p->tail_probability, y), sink);
            if (values != NULL) values[(size_t)t * d + c] = y;
        }
        if (modality != NULL) modality[t] = modality_of(p, t);
    }
    return KVQ_OK;
}
