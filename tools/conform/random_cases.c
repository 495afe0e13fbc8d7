/*
 * random_cases.c - random cases drawn from one seed (random_cases.h). Only
 * integer arithmetic and S14's generator decide the parameters, so a seed
 * gives the same cases on every machine (no libm in the choices).
 */
#include "random_cases.h"

#include "inexact.h"

#include <stdlib.h>
#include <string.h>

enum { CALIBRATION_TOKENS = 256 }; /* held-out tokens for calibrated key ranges, as the golden set does */

static uint32_t below(kvq_rng *r, uint32_t n) { return n ? (uint32_t)(kvq_rng_next_u64(r) % n) : 0; }
static uint32_t between(kvq_rng *r, uint32_t lo, uint32_t hi) { return lo + below(r, hi - lo + 1); }
static bool chance(kvq_rng *r, uint32_t percent) { return below(r, 100) < percent; }
#define PICK(r, array) ((array)[below((r), (uint32_t)(sizeof(array) / sizeof((array)[0])))])

static int floor_log2(uint32_t v)
{
    int k = 0;
    while (v >>= 1) k++;
    return k;
}

/* A size in [lo, hi] with every power-of-two octave equally likely, so that
 * small and large sizes both appear. */
static uint32_t spread(kvq_rng *r, uint32_t lo, uint32_t hi)
{
    if (hi <= lo) return lo;
    int klo = floor_log2(lo ? lo : 1), khi = floor_log2(hi);
    int k = klo + (int)below(r, (uint32_t)(khi - klo + 1));
    uint32_t a = 1u << k, b = k < 31 ? (1u << (k + 1)) - 1u : hi;
    if (a < lo) a = lo;
    if (b > hi) b = hi;
    return between(r, a, b);
}

uint64_t random_case_seed(uint64_t seed, int level, uint32_t index, bool batch)
{
    kvq_rng r;
    kvq_rng_seed(&r, seed);
    uint64_t mixed = kvq_rng_next_u64(&r) ^ (0x9E3779B97F4A7C15ull * (uint64_t)(level + 1)) ^ ((uint64_t)index << 32) ^
                     (batch ? 0xB47C000000000000ull : 0u);
    kvq_rng_seed(&r, mixed);
    return kvq_rng_next_u64(&r);
}

static bool fail(char *error, size_t size, const char *what)
{
    snprintf(error, size, "%s: %s: %s", what, "libkvq refused the generated case", kvq_last_error());
    return false;
}

/* S6: a NormalFloat or a random codebook of `bits` bits. */
static bool random_codebook(kvq_rng *r, uint32_t bits, kvq_codebook *cb)
{
    if (chance(r, 50)) return kvq_codebook_normalfloat(bits, cb) == KVQ_OK;
    {
        /* any sorted signposts in [-1, 1], sometimes with the ends pinned or two equal */
        uint32_t levels = 1u << bits;
        float s[16];
        for (uint32_t i = 0; i < levels; i++) s[i] = 2.0f * kvq_rng_uniform(r) - 1.0f;
        for (uint32_t i = 1; i < levels; i++)
            for (uint32_t j = i; j > 0 && s[j] < s[j - 1]; j--) {
                float t = s[j];
                s[j] = s[j - 1];
                s[j - 1] = t;
            }
        if (chance(r, 50)) {
            s[0] = -1.0f;
            s[levels - 1] = 1.0f;
        }
        if (chance(r, 15)) s[1] = s[0];
        return kvq_codebook_from_signposts(bits, s, cb) == KVQ_OK;
    }
}

/* S3/S6: scheme and bits for a level; a NormalFloat or a random codebook for NUQ. */
static bool random_quantizer(kvq_rng *r, int level, kvq_quantizer *q, kvq_codebook *cb)
{
    static const uint32_t uniform_bits[] = {2, 3, 4, 8}, nuq_bits[] = {2, 3, 4};
    q->scheme = level == 1 ? (kvq_scheme)below(r, 2) : level == 2 ? KVQ_SCHEME_NUQ : (kvq_scheme)below(r, 3);
    q->bits = q->scheme == KVQ_SCHEME_NUQ ? PICK(r, nuq_bits) : PICK(r, uniform_bits);
    q->codebook = NULL;
    if (q->scheme != KVQ_SCHEME_NUQ) return true;
    if (!random_codebook(r, q->bits, cb)) return false;
    q->codebook = cb;
    return true;
}

/* Head dims up to S1.4's 1024 (512 and 1024 in one case of ten: they are slow on small devices). */
static uint32_t pick_head_dim(kvq_rng *r, uint32_t bits_a, uint32_t bits_b)
{
    static const uint32_t dims[] = {32, 64, 80, 128, 256}, wide[] = {512, 1024};
    if (chance(r, 10)) return PICK(r, wide); /* every width fits: 512 * bits is a multiple of 32 */
    uint32_t ok[5], n = 0;
    for (size_t i = 0; i < 5; i++)
        if (dims[i] * bits_a % 32 == 0 && dims[i] * bits_b % 32 == 0) ok[n++] = dims[i];
    return ok[below(r, n)];
}

/* S4: axis, groups and outliers of one role (the quantizer is set already). */
static void random_axis(kvq_rng *r, int level, kvq_role role, uint32_t head_dim, kvq_head_config *c)
{
    static const uint32_t blocks[] = {1, 2, 3, 4, 8, 16, 32, 64};
    static const uint32_t groups[] = {4, 8, 16, 32, 64, 128};
    static const uint32_t ppms[] = {0, 0, 1000, 10000, 10000, 20000, 50000, 125000, 1000000};
    c->role = role;
    c->key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE;
    c->group_size = 0;
    c->beyond_range = KVQ_BEYOND_RANGE_OUTLIERS;
    if (role == KVQ_ROLE_KEYS) {
        if (level == 3 && chance(r, 40)) c->key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
        if (c->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE) c->group_size = PICK(r, blocks);
        else if (chance(r, 30)) c->beyond_range = KVQ_BEYOND_RANGE_CLAMP; /* S7.3 */
    } else if (chance(r, 50)) {
        uint32_t g = PICK(r, groups);
        if (g < head_dim && head_dim % g == 0) c->group_size = g;
    }
    c->outlier_ppm = level == 3 ? PICK(r, ppms) : 0;
}

static kvq_token_policy random_policy(kvq_rng *r, int level)
{
    static const uint32_t budgets[] = {0, 50000, 100000, 250000, 500000, 1000000};
    static const uint32_t sinks[] = {0, 1, 1, 2, 4};
    kvq_token_policy p = {KVQ_POLICY_QUANTIZE_ALL, 0, 0, 0};
    if (level < 3) return p;
    p.rule = (kvq_policy_rule)below(r, 3);
    p.budget_ppm = PICK(r, budgets);
    p.n_sinks = PICK(r, sinks);
    p.recent_window = chance(r, 50) ? 0 : between(r, 1, 8);
    return p;
}

/* Synthetic keys and values (S14.3) for n tokens plus `extra` held-out ones. */
typedef struct synth_data {
    float *keys, *values;
    uint8_t *modality;
    kvq_synth_params params;
    bool inexact; /* keys and values moved off the fp16 grid (inexact.h) */
} synth_data;

static bool random_synth(kvq_rng *r, uint32_t n, uint32_t extra, uint32_t head_dim, synth_data *s)
{
    static const float tails[] = {0.0f, 0.01f, 0.05f};
    memset(s, 0, sizeof *s);
    kvq_synth_params *p = &s->params;
    p->n_tokens = n + extra;
    p->head_dim = head_dim;
    p->seed = kvq_rng_next_u64(r);
    p->n_outlier_channels = below(r, 5);
    p->tail_probability = PICK(r, tails);
    p->sink_token = chance(r, 50) ? 1u : 0u;
    if (chance(r, 25)) {
        p->image_run = 0; /* all text */
        p->text_run = 1;
    } else {
        p->image_run = between(r, 1, 64);
        p->text_run = between(r, 0, 16);
    }
    size_t count = (size_t)p->n_tokens * head_dim;
    s->keys = malloc(count * sizeof *s->keys);
    s->values = malloc(count * sizeof *s->values);
    s->modality = malloc(p->n_tokens);
    /* Half the cases (by the seed's low bit, so no other draw moves) on the realistic profile
     * (S14.6: real statistics, signed-zero channels), half on the stress profile (S14.3). */
    kvq_synth_profile profile = (p->seed & 1u) ? KVQ_SYNTH_REALISTIC : KVQ_SYNTH_STRESS;
    if (!s->keys || !s->values || !s->modality ||
        kvq_synth_kv_profile(p, profile, s->keys, s->values, s->modality) != KVQ_OK)
        return false;
    /* Half the cases: inputs that are not fp16 numbers, so every fp16 row, outlier value and group
     * minimum needs its rounding (S2.2, S3.2); ranges calibrated on them are not fp16 numbers either. */
    s->inexact = chance(r, 50);
    if (s->inexact) {
        uint64_t seed = kvq_rng_next_u64(r);
        conform_inexact(s->keys, count, seed);
        conform_inexact(s->values, count, seed ^ 0x5bd1e995u);
    }
    return true;
}

static void synth_free(synth_data *s)
{
    free(s->keys);
    free(s->values);
    free(s->modality);
    memset(s, 0, sizeof *s);
}

/* S6.9 ranges from the held-out tokens [n, n + CALIBRATION_TOKENS) of the keys. */
static kvq_channel_range *random_ranges(kvq_rng *r, const float *keys, uint32_t n, uint32_t head_dim)
{
    static const uint32_t ppms[] = {0, 10000, 50000};
    kvq_channel_range *ranges = malloc(head_dim * sizeof *ranges);
    if (ranges == NULL) return NULL;
    if (kvq_calibrate_channel_ranges(keys + (size_t)n * head_dim, CALIBRATION_TOKENS, head_dim, PICK(r, ppms), ranges) !=
        KVQ_OK) {
        free(ranges);
        return NULL;
    }
    if (chance(r, 10)) { /* a zero-width channel: lo == hi is valid (S4.1 check 9) */
        uint32_t c = below(r, head_dim);
        ranges[c].hi = ranges[c].lo;
    }
    return ranges;
}

/* Rows with edge-case contents (S3.6 zero ranges, the whole fp16 range,
 * subnormals, a large offset). */
static void edge_rows(kvq_rng *r, float *x, uint32_t n, uint32_t head_dim)
{
    uint32_t rows = between(r, 1, n < 4 ? n : 4);
    for (uint32_t k = 0; k < rows; k++) {
        float *row = x + (size_t)below(r, n) * head_dim;
        uint32_t kind = below(r, 5);
        for (uint32_t c = 0; c < head_dim; c++) {
            switch (kind) {
            case 0: row[c] = 0.25f; break;
            case 1: row[c] = 0.0f; break;
            case 2: row[c] = (c % 2) ? 65504.0f : -65504.0f; break;
            case 3: row[c] = 1000.0f + 0.0625f * (float)(c % 5); break;
            default: row[c] = (float)(c % 7) * 0x1p-24f; break;
            }
        }
    }
}

/* Moves some dense elements of quantized tokens exactly onto decision
 * thresholds of their group (ties go up, S3.4) and re-quantizes; the
 * thresholds lie inside the group's range, so the parameters stay. */
static uint32_t add_ties(kvq_rng *r, const kvq_head_config *config, float *x, uint32_t n, uint32_t head_dim,
                         const uint8_t *modality, kvq_qtensor **expected)
{
    const kvq_qtensor *qt = *expected;
    kvq_quantizer q = {qt->scheme, qt->bits, qt->scheme == KVQ_SCHEME_NUQ ? &qt->codebook : NULL};
    uint32_t levels = 1u << qt->bits, wanted = (uint32_t)((size_t)n * head_dim / 40 + 1), placed = 0;
    for (uint32_t attempt = 0; attempt < 4 * wanted && placed < wanted; attempt++) {
        uint32_t t = below(r, n), c = below(r, head_dim);
        if (qt->precision[t] != KVQ_PREC_QUANTIZED) continue;
        kvq_group_params p = qt->params[qt_param_index(qt, t, c)];
        float threshold = kvq_decision_threshold(&q, p, between(r, 1, levels - 1));
        if (!(threshold >= -65504.0f && threshold <= 65504.0f)) continue;
        if (config->role == KVQ_ROLE_KEYS && config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED &&
            (threshold < config->channel_range[c].lo || threshold > config->channel_range[c].hi))
            continue;
        x[(size_t)t * head_dim + c] = threshold;
        placed++;
    }
    kvq_qtensor *again = NULL;
    if (placed == 0 || kvq_quantize_head(config, x, n, head_dim, modality, &again) != KVQ_OK) return 0;
    kvq_qtensor_free(*expected);
    *expected = again;
    return placed;
}

bool random_pack(uint64_t case_seed, pack_model *m, char *error, size_t error_size)
{
    static const uint32_t all_bits[] = {2, 3, 4, 8};
    static const uint32_t lengths[] = {32, 64, 80, 96, 128, 160, 192, 256, 512, 1024};
    kvq_rng r;
    kvq_rng_seed(&r, case_seed);
    memset(m, 0, sizeof *m);
    m->bits = PICK(&r, all_bits);
    do m->row_len = PICK(&r, lengths);
    while (m->row_len * m->bits % 32 != 0);
    m->n_rows = spread(&r, 1, 64);
    size_t row_bytes = kvq_packed_bytes(m->row_len, m->bits);
    m->codes = malloc((size_t)m->n_rows * m->row_len);
    m->packed = malloc((size_t)m->n_rows * row_bytes);
    if (m->codes == NULL || m->packed == NULL) return fail(error, error_size, "out of memory");
    for (size_t i = 0; i < (size_t)m->n_rows * m->row_len; i++)
        m->codes[i] = (uint8_t)(kvq_rng_next_u64(&r) >> (64 - m->bits));
    for (uint32_t row = 0; row < m->n_rows; row++)
        kvq_pack_codes(m->codes + (size_t)row * m->row_len, m->row_len, m->bits, m->packed + row * row_bytes);
    return true;
}

bool random_quantize(uint64_t case_seed, int level, quantize_model *m, char *error, size_t error_size)
{
    kvq_rng r;
    kvq_rng_seed(&r, case_seed);
    memset(m, 0, sizeof *m);
    if (!random_quantizer(&r, level, &m->config.quantizer, &m->codebook))
        return fail(error, error_size, "random codebook");
    m->head_dim = pick_head_dim(&r, m->config.quantizer.bits, m->config.quantizer.bits);
    random_axis(&r, level, chance(&r, 50) ? KVQ_ROLE_KEYS : KVQ_ROLE_VALUES, m->head_dim, &m->config);
    m->config.policy = random_policy(&r, level);
    m->n_tokens = chance(&r, 30) ? between(&r, 1, 16) : between(&r, 17, level == 3 ? 600 : 300);
    synth_data s;
    if (!random_synth(&r, m->n_tokens, CALIBRATION_TOKENS, m->head_dim, &s)) {
        synth_free(&s);
        return fail(error, error_size, "synthetic inputs");
    }
    bool calibrated = m->config.role == KVQ_ROLE_KEYS && m->config.key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    if (calibrated) m->ranges = random_ranges(&r, s.keys, m->n_tokens, m->head_dim);
    size_t count = (size_t)m->n_tokens * m->head_dim;
    m->x = malloc(count * sizeof *m->x);
    bool with_modality = !chance(&r, 15);
    m->modality = with_modality ? malloc(m->n_tokens) : NULL;
    if (m->x == NULL || (with_modality && m->modality == NULL) || (calibrated && m->ranges == NULL)) {
        synth_free(&s);
        return fail(error, error_size, "out of memory");
    }
    memcpy(m->x, m->config.role == KVQ_ROLE_KEYS ? s.keys : s.values, count * sizeof *m->x);
    if (with_modality) memcpy(m->modality, s.modality, m->n_tokens);
    kvq_synth_params sp = s.params;
    bool inexact = s.inexact;
    synth_free(&s);
    if (level < 3 && chance(&r, 30)) edge_rows(&r, m->x, m->n_tokens, m->head_dim);
    quantize_model_link(m);
    if (kvq_quantize_head(&m->config, m->x, m->n_tokens, m->head_dim, m->modality, &m->expected) != KVQ_OK)
        return fail(error, error_size, "quantize_head");
    uint32_t ties = chance(&r, 60) ? add_ties(&r, &m->config, m->x, m->n_tokens, m->head_dim, m->modality, &m->expected)
                                   : 0;
    m->expected_dequantized = malloc(count * sizeof *m->expected_dequantized);
    if (m->expected_dequantized == NULL || kvq_dequantize_head(m->expected, m->expected_dequantized) != KVQ_OK)
        return fail(error, error_size, "dequantize_head");
    qt_labels_for(&m->labels, "q");
    char config[128], policy[128];
    describe_head_config(config, sizeof config, &m->config, m->head_dim);
    describe_token_policy(policy, sizeof policy, &m->config.policy);
    snprintf(m->what, sizeof m->what,
             "%s, head_dim %u, %u tokens, %s, modality %s (text %u / image %u runs), %u ties, inputs %s", config,
             m->head_dim, m->n_tokens, policy, with_modality ? "given" : "NULL", sp.text_run, sp.image_run, ties,
             inexact ? "not fp16-exact" : "fp16-exact");
    return true;
}

/* What an attention case draws before its data: shared by a batch's sequences. */
typedef struct attention_shape {
    uint32_t head_dim, n_q;
    kvq_head_config kc, vc;
    kvq_codebook kcb, vcb;
    kvq_rope rope;
    float q_scale;
    bool production; /* the production format (below): positions are consecutive */
} attention_shape;

/* The format real models and the CUDA fast kernel use: head_dim 128, HALF
 * RoPE at consecutive positions, keys and values of one scheme and code
 * width (NUQ codebooks may differ), per-channel keys that have outliers
 * (calibrated, or online in blocks of a multiple of 32 with outlier_ppm > 0),
 * one value group per token, n_q 1, 4 or 8. Draws the values' quantizer and
 * overrides what the caller drew for the rest. */
static bool production_format(kvq_rng *r, kvq_head_config *kc, kvq_head_config *vc, kvq_codebook *vcb,
                              uint32_t *head_dim, uint32_t *n_q, kvq_rope *rope)
{
    static const uint32_t blocks[] = {32, 64, 128}, key_ppms[] = {10000, 10000, 20000, 50000}, nqs[] = {1, 4, 8};
    *head_dim = 128;
    vc->quantizer = kc->quantizer;
    if (vc->quantizer.scheme == KVQ_SCHEME_NUQ) {
        if (!random_codebook(r, vc->quantizer.bits, vcb)) return false;
        vc->quantizer.codebook = vcb;
    }
    kc->key_mode = chance(r, 50) ? KVQ_KEYS_PER_CHANNEL_CALIBRATED : KVQ_KEYS_PER_CHANNEL_ONLINE;
    kc->beyond_range = KVQ_BEYOND_RANGE_OUTLIERS;
    kc->group_size = kc->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE ? PICK(r, blocks) : 0;
    kc->outlier_ppm = PICK(r, key_ppms);
    vc->group_size = 0;
    *n_q = PICK(r, nqs);
    rope->pairing = KVQ_ROPE_HALF;
    return true;
}

static bool random_attention_shape(kvq_rng *r, attention_shape *a)
{
    static const float bases[] = {10000.0f, 10000.0f, 500000.0f};
    memset(a, 0, sizeof *a);
    if (!random_quantizer(r, 3, &a->kc.quantizer, &a->kcb) || !random_quantizer(r, 3, &a->vc.quantizer, &a->vcb))
        return false;
    a->head_dim = pick_head_dim(r, a->kc.quantizer.bits, a->vc.quantizer.bits);
    random_axis(r, 3, KVQ_ROLE_KEYS, a->head_dim, &a->kc);
    random_axis(r, 3, KVQ_ROLE_VALUES, a->head_dim, &a->vc);
    a->kc.policy = a->vc.policy = random_policy(r, 3);
    /* n_q = 1 (plain multi-head attention) in a third of the cases, 2 .. 8 otherwise */
    a->n_q = chance(r, 33) ? 1 : between(r, 2, 8);
    a->rope.pairing = (kvq_rope_pairing)below(r, 3);
    a->rope.base = PICK(r, bases);
    /* small queries make the weights nearly uniform, so no single token (a sink) hides the others' errors */
    uint32_t q = below(r, 10);
    a->q_scale = q < 3 ? 3.0f : q < 5 ? 0.0625f : 1.0f;
    a->production = chance(r, 35);
    return !a->production || production_format(r, &a->kc, &a->vc, &a->vcb, &a->head_dim, &a->n_q, &a->rope);
}

/* One sequence of n tokens under shape a: inputs, quantized tensors, positions, output and bound. */
static bool random_sequence(kvq_rng *r, attention_shape *a, uint32_t n, kvq_attention_profile profile,
                            attention_model *m, char *error, size_t error_size)
{
    memset(m, 0, sizeof *m);
    m->profile = profile;
    synth_data s;
    kvq_channel_range *ranges = NULL;
    bool ok = random_synth(r, n, CALIBRATION_TOKENS, a->head_dim, &s);
    kvq_head_config kc = a->kc, vc = a->vc;
    kc.quantizer.codebook = kc.quantizer.scheme == KVQ_SCHEME_NUQ ? &a->kcb : NULL;
    vc.quantizer.codebook = vc.quantizer.scheme == KVQ_SCHEME_NUQ ? &a->vcb : NULL;
    if (ok && kc.key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED) {
        ranges = random_ranges(r, s.keys, n, a->head_dim);
        ok = ranges != NULL;
        kc.channel_range = ranges;
        kc.n_channel_range = a->head_dim;
    }
    const uint8_t *modality = ok ? s.modality : NULL;
    bool s_inexact = s.inexact;
    ok = ok && kvq_quantize_head(&kc, s.keys, n, a->head_dim, modality, &m->keys) == KVQ_OK &&
         kvq_quantize_head(&vc, s.values, n, a->head_dim, modality, &m->values) == KVQ_OK;
    free(ranges);
    synth_free(&s);
    if (!ok) return fail(error, error_size, "quantize_head of the keys or values");

    /* S11: positions from 0, from anywhere up to 10^7, or scattered (they need not increase, S15.2) */
    const uint32_t far = 10000000u;
    m->positions = malloc((size_t)n * sizeof *m->positions);
    size_t count = (size_t)a->n_q * a->head_dim;
    m->q = malloc(count * sizeof *m->q);
    m->expected = malloc(count * sizeof *m->expected);
    m->bound = malloc(count * sizeof *m->bound);
    if (!m->positions || !m->q || !m->expected || !m->bound) return fail(error, error_size, "out of memory");
    uint32_t style = a->production ? 0 : below(r, 100), first = style < 50 || n >= far ? 0 : between(r, 0, far - n);
    uint32_t last = 0;
    for (uint32_t t = 0; t < n; t++) {
        m->positions[t] = style < 85 ? first + t : between(r, 0, far);
        if (m->positions[t] > last) last = m->positions[t];
    }
    m->q_position = last + 1;
    m->n_q = a->n_q;
    m->rope = a->rope;
    for (size_t i = 0; i < count; i++)
        m->q[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(a->q_scale * kvq_rng_normal(r)));
    if (kvq_attention_decode(m->keys, m->values, m->positions, &m->rope, m->q, m->n_q, m->q_position, m->expected) !=
            KVQ_OK ||
        kvq_attention_error_bound_profile(m->keys, m->values, m->positions, &m->rope, m->q, m->n_q, m->q_position,
                                          profile, m->bound) != KVQ_OK)
        return fail(error, error_size, "attention_decode");
    char kd[128], vd[128], pd[128];
    describe_head_config(kd, sizeof kd, &kc, a->head_dim);
    describe_head_config(vd, sizeof vd, &vc, a->head_dim);
    describe_token_policy(pd, sizeof pd, &kc.policy);
    /* the descriptions are far shorter than their buffers; the result says if the line was cut */
    int length = snprintf(m->what, sizeof m->what,
             "%s%u tokens, head_dim %u, %u query heads, %s; %s; %s; positions %s %u..%u, base %g, q scale %g, inputs %s",
             a->production ? "production format: " : "", n, a->head_dim, a->n_q, kd, vd, pd,
             style < 85 ? "consecutive from" : "scattered in", style < 85 ? first : 0, last, (double)a->rope.base,
             (double)a->q_scale, s_inexact ? "not fp16-exact" : "fp16-exact");
    if (length >= (int)sizeof m->what) memcpy(m->what + sizeof m->what - 4, "...", 4);
    return true;
}

static uint32_t random_context(kvq_rng *r, uint32_t max_context)
{
    return chance(r, 20) ? between(r, 1, max_context < 8 ? max_context : 8) : spread(r, 1, max_context);
}

bool random_attention(uint64_t case_seed, uint32_t max_context, bool force_max, kvq_attention_profile profile,
                      attention_model *m, char *error, size_t error_size)
{
    kvq_rng r;
    kvq_rng_seed(&r, case_seed);
    memset(m, 0, sizeof *m);
    attention_shape a;
    if (!random_attention_shape(&r, &a)) return fail(error, error_size, "random codebook");
    uint32_t n = random_context(&r, max_context);
    if (force_max) n = max_context;
    return random_sequence(&r, &a, n, profile, m, error, error_size);
}

bool random_attention_batch(uint64_t case_seed, uint32_t max_context, kvq_attention_profile profile,
                            attention_model **models, uint32_t *n_seq, char *error, size_t error_size)
{
    kvq_rng r;
    kvq_rng_seed(&r, case_seed);
    attention_shape a;
    if (!random_attention_shape(&r, &a)) return fail(error, error_size, "random codebook");
    uint32_t n = between(&r, 2, 5);
    attention_model *list = calloc(n, sizeof *list);
    if (list == NULL) return fail(error, error_size, "out of memory");
    *models = list;
    *n_seq = n;
    for (uint32_t s = 0; s < n; s++)
        if (!random_sequence(&r, &a, random_context(&r, max_context), profile, &list[s], error, error_size))
            return false;
    return true;
}

bool random_cache(uint64_t case_seed, kvq_attention_profile profile, cache_model *m, char *error, size_t error_size)
{
    kvq_rng r;
    kvq_rng_seed(&r, case_seed);
    memset(m, 0, sizeof *m);
    m->profile = profile;
    if (!random_quantizer(&r, 3, &m->key_config.quantizer, &m->key_codebook) ||
        !random_quantizer(&r, 3, &m->value_config.quantizer, &m->value_codebook))
        return fail(error, error_size, "random codebook");
    m->head_dim = pick_head_dim(&r, m->key_config.quantizer.bits, m->value_config.quantizer.bits);
    random_axis(&r, 3, KVQ_ROLE_KEYS, m->head_dim, &m->key_config);
    random_axis(&r, 3, KVQ_ROLE_VALUES, m->head_dim, &m->value_config);
    if (m->key_config.group_size > 16) m->key_config.group_size = 16; /* blocks that complete within the case */
    m->key_config.policy = m->value_config.policy = random_policy(&r, 3);
    m->n_q = chance(&r, 33) ? 1 : between(&r, 2, 4);
    m->rope.pairing = (kvq_rope_pairing)below(&r, 3);
    m->rope.base = 10000.0f;
    bool production = chance(&r, 30);
    if (production && !production_format(&r, &m->key_config, &m->value_config, &m->value_codebook, &m->head_dim,
                                         &m->n_q, &m->rope))
        return fail(error, error_size, "random codebook");
    if (m->key_config.group_size > 64) m->key_config.group_size = 32; /* blocks that complete within the case */
    float q_scale = chance(&r, 20) ? 0.0625f : 1.0f;
    m->n_steps = between(&r, 3, 12);
    m->append_sizes = malloc(m->n_steps * sizeof *m->append_sizes);
    if (m->append_sizes == NULL) return fail(error, error_size, "out of memory");
    for (uint32_t s = 0; s < m->n_steps; s++) {
        m->append_sizes[s] = s == 0 ? between(&r, 1, 120) : chance(&r, 70) ? 1 : between(&r, 2, 24);
        m->n_total += m->append_sizes[s];
    }
    synth_data s;
    if (!random_synth(&r, m->n_total, CALIBRATION_TOKENS, m->head_dim, &s)) {
        synth_free(&s);
        return fail(error, error_size, "synthetic inputs");
    }
    if (m->key_config.key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED)
        m->ranges = random_ranges(&r, s.keys, m->n_total, m->head_dim);
    size_t count = (size_t)m->n_total * m->head_dim;
    m->keys = malloc(count * sizeof *m->keys);
    m->values = malloc(count * sizeof *m->values);
    bool with_modality = !chance(&r, 15), with_positions = chance(&r, 30);
    m->modality = with_modality ? malloc(m->n_total) : NULL;
    m->positions = with_positions ? malloc(m->n_total * sizeof *m->positions) : NULL;
    m->explicit_positions = with_positions ? malloc(m->n_steps) : NULL;
    size_t steps = (size_t)m->n_steps * m->n_q * m->head_dim;
    m->queries = malloc(steps * sizeof *m->queries);
    bool ok = m->keys && m->values && (!with_modality || m->modality) &&
              (!with_positions || (m->positions && m->explicit_positions)) && m->queries &&
              (m->key_config.key_mode != KVQ_KEYS_PER_CHANNEL_CALIBRATED || m->ranges);
    if (ok) {
        memcpy(m->keys, s.keys, count * sizeof *m->keys);
        memcpy(m->values, s.values, count * sizeof *m->values);
        if (with_modality) memcpy(m->modality, s.modality, m->n_total);
    }
    bool inexact = s.inexact;
    synth_free(&s);
    if (!ok) return fail(error, error_size, "out of memory");
    uint32_t n_explicit = 0;
    if (with_positions) {
        /* explicit positions: runs from anywhere below 10^6, with occasional jumps back or forward; each
         * append passes them or NULL (S15.2: defaults continue from the last position, given or not) */
        uint32_t p = between(&r, 0, 1000000);
        for (uint32_t t = 0; t < m->n_total; t++) {
            if (t > 0 && chance(&r, 5)) p = between(&r, 0, 1000000);
            m->positions[t] = p++;
        }
        for (uint32_t s = 0; s < m->n_steps; s++) n_explicit += m->explicit_positions[s] = chance(&r, 60);
    }
    for (size_t i = 0; i < steps; i++)
        m->queries[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(q_scale * kvq_rng_normal(&r)));
    cache_model_link(m);
    kvq_cache *check = NULL;
    if (kvq_cache_create(&m->key_config, &m->value_config, m->head_dim, &check) != KVQ_OK)
        return fail(error, error_size, "cache_create");
    kvq_cache_free(check);
    char kd[128], vd[128], pd[128];
    describe_head_config(kd, sizeof kd, &m->key_config, m->head_dim);
    describe_head_config(vd, sizeof vd, &m->value_config, m->head_dim);
    describe_token_policy(pd, sizeof pd, &m->key_config.policy);
    int length = snprintf(m->what, sizeof m->what,
             "%scache head_dim %u, %u appends (%u tokens, first %u), %u query heads, RoPE %s; %s; %s; %s; positions "
             "%s (%u of %u appends explicit), q scale %g, inputs %s",
             production ? "production format: " : "", m->head_dim, m->n_steps, m->n_total, m->append_sizes[0], m->n_q,
             describe_pairing(m->rope.pairing), kd, vd, pd, with_positions ? "mixed" : "default", n_explicit,
             m->n_steps, (double)q_scale, inexact ? "not fp16-exact" : "fp16-exact");
    if (length >= (int)sizeof m->what) memcpy(m->what + sizeof m->what - 4, "...", 4);
    return true;
}
