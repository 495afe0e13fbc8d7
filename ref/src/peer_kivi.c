/*
 * peer_kivi.c - KIVI's layout and arithmetic (S17.4), as its repository
 * (jy-yuan/KIVI: quant/new_pack.py, models/llama_kivi.py) computes it on the
 * model's fp16 tensors.
 *
 * Keys are quantized per channel in groups of G tokens, in blocks of R
 * tokens: the newest n mod R keys wait in fp16 until R have gathered. Values
 * are quantized per token in groups of G channels, all but the newest R,
 * which stay in fp16. Every operation is one on fp16 tensors: PyTorch rounds
 * each result to fp16 (computed in fp32 and rounded once, which for +, -, *
 * and / of fp16 operands equals the correctly rounded fp16 result: fp32 has
 * 24 >= 2 * 11 + 2 significant bits), and torch.round ties to even.
 */
#include "peer_internal.h"

#include <math.h>

typedef struct kivi_layout {
    bool keys;
    uint32_t bits, per_word, top; /* top = 2^bits - 1 */
    uint32_t quantized, residual; /* tokens with codes, tokens in fp16 (the newest) */
    uint32_t lines;               /* keys: channels; values: quantized tokens */
    uint32_t words_per_line, groups_per_line, group_size;
    size_t scale_offset, min_offset, residual_offset, bytes;
} kivi_layout;

static kivi_layout layout_of(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    kivi_layout l;
    l.keys = c->role == KVQ_ROLE_KEYS;
    l.bits = c->bits;
    l.per_word = 32u / c->bits;
    l.top = (1u << c->bits) - 1u;
    l.group_size = c->group_size;
    if (l.keys) { /* llama_kivi.py: keys in blocks of R tokens; the rest in fp16 */
        l.quantized = n / c->residual * c->residual;
        l.lines = d;
        l.words_per_line = l.quantized / l.per_word;
        l.groups_per_line = l.quantized / c->group_size;
    } else { /* values: all but the newest R tokens */
        l.quantized = n > c->residual ? n - c->residual : 0;
        l.lines = l.quantized;
        l.words_per_line = d / l.per_word;
        l.groups_per_line = d / c->group_size;
    }
    l.residual = n - l.quantized;
    size_t groups = (size_t)l.lines * l.groups_per_line;
    l.scale_offset = (size_t)l.lines * l.words_per_line * 4u;
    l.min_offset = l.scale_offset + groups * 2u;
    l.residual_offset = l.min_offset + groups * 2u;
    l.bytes = l.residual_offset + (size_t)l.residual * d * 2u;
    return l;
}

static kvq_status kivi_check(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    (void)n;
    if (c->role != KVQ_ROLE_KEYS && c->role != KVQ_ROLE_VALUES)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "config.role = %d is not KVQ_ROLE_KEYS or KVQ_ROLE_VALUES", (int)c->role);
    if (c->bits != 2 && c->bits != 4 && c->bits != 8)
        return kvq_fail(KVQ_ERR_UNSUPPORTED_BITS, "config.bits = %u: KIVI packs 2, 4 or 8 bits (S17.4)", c->bits);
    if (c->scale != 0.0f) return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "config.scale must be 0 for KIVI (S17.4)");
    if (c->group_size == 0) return kvq_fail(KVQ_ERR_BAD_GROUP_SIZE, "config.group_size = 0 (S17.4)");
    if (c->residual == 0)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "config.residual = 0: KIVI keeps R >= 1 newest tokens in fp16 (S17.4)");
    if (d > KVQ_MAX_HEAD_DIM)
        return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u is above %u (S1.4)", d, KVQ_MAX_HEAD_DIM);
    uint32_t per_word = 32u / c->bits;
    if (c->role == KVQ_ROLE_KEYS) {
        if (c->residual % c->group_size != 0)
            return kvq_fail(KVQ_ERR_BAD_GROUP_SIZE,
                            "config.group_size = %u does not divide config.residual = %u (keys: blocks of R tokens "
                            "in groups of G, S17.4)",
                            c->group_size, c->residual);
        if (c->residual % per_word != 0)
            return kvq_fail(KVQ_ERR_BAD_GROUP_SIZE,
                            "config.residual = %u is not a multiple of %u: %u-bit key codes pack %u tokens per 32-bit "
                            "word (S17.4)",
                            c->residual, per_word, c->bits, per_word);
    } else {
        if (d % c->group_size != 0)
            return kvq_fail(KVQ_ERR_BAD_GROUP_SIZE, "config.group_size = %u does not divide head_dim = %u (S17.4)",
                            c->group_size, d);
        if (d % per_word != 0)
            return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING,
                            "head_dim = %u is not a multiple of %u: %u-bit value codes pack %u channels per word "
                            "(S17.4)",
                            d, per_word, c->bits, per_word);
    }
    return KVQ_OK;
}

static size_t kivi_bytes(const kvq_peer_config *c, uint32_t n, uint32_t d) { return layout_of(c, n, d).bytes; }

/* One fp16 tensor operation: the fp32 result rounded to fp16. */
static float h(float x) { return kvq_fp32_from_fp16(kvq_fp16_from_fp32(x)); }

/* Element i of group g of line l, as (token, channel). */
static void element_of(const kivi_layout *l, uint32_t line, uint32_t g, uint32_t i, uint32_t *t, uint32_t *ch)
{
    if (l->keys) {
        *t = g * l->group_size + i;
        *ch = line;
    } else {
        *t = line;
        *ch = g * l->group_size + i;
    }
}

/* quant/new_pack.py: mn, mx over the group, scale = (mx - mn) / (2^bits - 1), each an fp16 op. */
static void group_stats(const kivi_layout *l, const float *x, uint32_t d, uint32_t line, uint32_t g, float *mn,
                        float *range)
{
    float lo = INFINITY, hi = -INFINITY;
    for (uint32_t i = 0; i < l->group_size; i++) {
        uint32_t t, ch;
        element_of(l, line, g, i, &t, &ch);
        float v = h(x[(size_t)t * d + ch]);
        lo = fminf(lo, v);
        hi = fmaxf(hi, v);
    }
    *mn = lo;
    *range = h(hi - lo);
}

static kvq_status kivi_check_input(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d)
{
    kivi_layout l = layout_of(c, n, d);
    for (uint32_t line = 0; line < l.lines; line++)
        for (uint32_t g = 0; g < l.groups_per_line; g++) {
            float mn, range;
            group_stats(&l, x, d, line, g, &mn, &range);
            if (isinf(range))
                return kvq_fail(KVQ_ERR_BAD_ARGUMENT,
                                "x: %s %u, group %u: max - min overflows fp16, in which KIVI computes (S17.4); the "
                                "group's range must be at most 65504",
                                l.keys ? "channel" : "token", line, g);
        }
    return KVQ_OK;
}

static uint32_t round_half_even(float u) /* u >= 0, an fp16 value: exact arithmetic */
{
    float f = floorf(u), rest = u - f;
    uint32_t k = (uint32_t)f;
    if (rest > 0.5f || (rest == 0.5f && (k & 1u))) k++;
    return k;
}

/* The code of element value v in a group of (mn, scale), and u, the value rounded. */
static uint32_t encode(const kivi_layout *l, float v, float mn, float scale, float *u_out)
{
    float t = h(h(v) - mn);
    float u;
    if (scale == 0.0f) /* t / 0: +inf clamps to the top code; 0 / 0 (NaN) converts to code 0 on CUDA */
        u = t > 0.0f ? INFINITY : 0.0f;
    else
        u = h(t / scale);
    *u_out = u;
    if (!(u > 0.0f)) return 0; /* clamp_(0, top) */
    if (u >= (float)l->top) return l->top;
    return round_half_even(u);
}

static size_t group_index(const kivi_layout *l, uint32_t line, uint32_t g)
{
    return (size_t)line * l->groups_per_line + g;
}

static void put_code(const kivi_layout *l, uint8_t *data, uint32_t t, uint32_t ch, uint32_t code)
{
    uint32_t line = l->keys ? ch : t, pos = l->keys ? t : ch;
    uint8_t *word = data + ((size_t)line * l->words_per_line + pos / l->per_word) * 4u;
    uint32_t shift = (pos % l->per_word) * l->bits; /* _pack_along_last_dim: element i << (i * bits) */
    uint32_t value = (uint32_t)word[0] | (uint32_t)word[1] << 8 | (uint32_t)word[2] << 16 | (uint32_t)word[3] << 24;
    value |= code << shift;
    for (int b = 0; b < 4; b++) word[b] = (uint8_t)(value >> (8 * b));
}

static uint32_t get_code(const kivi_layout *l, const uint8_t *data, uint32_t t, uint32_t ch)
{
    uint32_t line = l->keys ? ch : t, pos = l->keys ? t : ch;
    const uint8_t *word = data + ((size_t)line * l->words_per_line + pos / l->per_word) * 4u;
    uint32_t value = (uint32_t)word[0] | (uint32_t)word[1] << 8 | (uint32_t)word[2] << 16 | (uint32_t)word[3] << 24;
    return value >> ((pos % l->per_word) * l->bits) & l->top;
}

static void kivi_quantize(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, uint8_t *data)
{
    kivi_layout l = layout_of(c, n, d);
    for (size_t i = 0; i < l.scale_offset; i++) data[i] = 0;
    for (uint32_t line = 0; line < l.lines; line++)
        for (uint32_t g = 0; g < l.groups_per_line; g++) {
            float mn, range;
            group_stats(&l, x, d, line, g, &mn, &range);
            float scale = h(range / (float)l.top);
            size_t gi = group_index(&l, line, g);
            kvq_peer_put_u16(data + l.scale_offset + 2 * gi, kvq_fp16_from_fp32(scale));
            kvq_peer_put_u16(data + l.min_offset + 2 * gi, kvq_fp16_from_fp32(mn));
            for (uint32_t i = 0; i < l.group_size; i++) {
                uint32_t t, ch;
                element_of(&l, line, g, i, &t, &ch);
                float u;
                put_code(&l, data, t, ch, encode(&l, x[(size_t)t * d + ch], mn, scale, &u));
            }
        }
    for (uint32_t r = 0; r < l.residual; r++) /* the newest tokens, as the model's fp16 */
        for (uint32_t ch = 0; ch < d; ch++)
            kvq_peer_put_u16(data + l.residual_offset + 2 * ((size_t)r * d + ch),
                             kvq_fp16_from_fp32(x[(size_t)(l.quantized + r) * d + ch]));
}

static kvq_status kivi_check_data(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d)
{
    kivi_layout l = layout_of(c, n, d);
    size_t groups = (size_t)l.lines * l.groups_per_line;
    for (size_t i = 0; i < 2 * groups + (size_t)l.residual * d; i++) {
        uint16_t v = kvq_peer_u16(data + l.scale_offset + 2 * i);
        if ((v & 0x7C00u) != 0x7C00u) continue;
        const char *what = i < groups ? "scale" : i < 2 * groups ? "min" : "fp16 residual";
        size_t index = i < groups ? i : i < 2 * groups ? i - groups : i - 2 * groups;
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "data: %s %zu is 0x%04X, which is not finite", what, index, v);
    }
    return KVQ_OK;
}

static void kivi_dequantize(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, float *out)
{
    kivi_layout l = layout_of(c, n, d);
    for (uint32_t line = 0; line < l.lines; line++)
        for (uint32_t g = 0; g < l.groups_per_line; g++) {
            size_t gi = group_index(&l, line, g);
            float scale = kvq_peer_fp16_value(data + l.scale_offset + 2 * gi);
            float mn = kvq_peer_fp16_value(data + l.min_offset + 2 * gi);
            for (uint32_t i = 0; i < l.group_size; i++) {
                uint32_t t, ch;
                element_of(&l, line, g, i, &t, &ch);
                /* the attention kernels' scale * code + mn in fp32: the product is exact, one rounding */
                out[(size_t)t * d + ch] = (float)get_code(&l, data, t, ch) * scale + mn;
            }
        }
    for (uint32_t r = 0; r < l.residual; r++)
        for (uint32_t ch = 0; ch < d; ch++)
            out[(size_t)(l.quantized + r) * d + ch] =
                kvq_peer_fp16_value(data + l.residual_offset + 2 * ((size_t)r * d + ch));
}

static uint32_t kivi_group_count(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    kivi_layout l = layout_of(c, n, d);
    return l.lines * l.groups_per_line;
}

static void kivi_group_at(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, uint32_t g,
                          kvq_peer_group *out)
{
    kivi_layout l = layout_of(c, n, d);
    uint32_t line = g / l.groups_per_line, j = g % l.groups_per_line;
    out->first_token = l.keys ? j * l.group_size : line;
    out->n_tokens = l.keys ? l.group_size : 1;
    out->first_channel = l.keys ? line : j * l.group_size;
    out->n_channels = l.keys ? 1 : l.group_size;
    out->has_scale = out->has_min = 1;
    out->scale = kvq_peer_u16(data + l.scale_offset + 2 * (size_t)g);
    out->min = kvq_peer_u16(data + l.min_offset + 2 * (size_t)g);
}

static uint32_t group_of(const kivi_layout *l, uint32_t t, uint32_t ch)
{
    return l->keys ? ch * l->groups_per_line + t / l->group_size : t * l->groups_per_line + ch / l->group_size;
}

static void kivi_element_at(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, uint32_t t,
                            uint32_t ch, kvq_peer_element *out)
{
    kivi_layout l = layout_of(c, n, d);
    out->residual = t >= l.quantized;
    out->fp16 = 0;
    out->code = 0;
    out->group = UINT32_MAX;
    if (out->residual) {
        out->fp16 = kvq_peer_u16(data + l.residual_offset + 2 * ((size_t)(t - l.quantized) * d + ch));
        return;
    }
    out->group = group_of(&l, t, ch);
    out->code = get_code(&l, data, t, ch);
}

/* S17.6: u = fp16(t / scale) with the tensor's own (scale, mn); neighbouring codes meet at k + 1/2. */
static void kivi_check_code(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, const uint8_t *data,
                            uint32_t t, uint32_t ch, uint32_t got, kvq_peer_code_check *out)
{
    kivi_layout l = layout_of(c, n, d);
    uint32_t g = group_of(&l, t, ch);
    float scale = kvq_peer_fp16_value(data + l.scale_offset + 2 * (size_t)g);
    float mn = kvq_peer_fp16_value(data + l.min_offset + 2 * (size_t)g);
    float u;
    uint32_t reference = encode(&l, x[(size_t)t * d + ch], mn, scale, &u);
    uint32_t low = reference < got ? reference : got;
    double m = (double)low + 0.5;
    /* one fp16 ulp at m: an implementation that keeps x - mn or the quotient in fp32 rounds differently */
    double window = ldexp(1.0, (int)floor(log2(m)) - 10);
    bool neighbours = got <= l.top && (reference > got ? reference - got : got - reference) == 1;
    kvq_peer_code_verdict(out, reference, got, neighbours, u, m, window);
}

static void kivi_check_scale(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, uint32_t g,
                             uint16_t got, kvq_peer_scale_check *out)
{
    kivi_layout l = layout_of(c, n, d);
    float mn, range;
    group_stats(&l, x, d, g / l.groups_per_line, g % l.groups_per_line, &mn, &range);
    out->reference = kvq_fp16_from_fp32(range / (float)l.top);
    out->quotient = (double)range / (double)l.top;
    out->boundary = NAN;
    out->window = 0.0;
    out->accepted = got == out->reference;
    if (!out->accepted && kvq_peer_fp16_neighbours(got, out->reference)) {
        out->boundary = kvq_peer_fp16_midpoint(got, out->reference);
        out->window = 0x1p-20 * out->boundary;
        out->accepted = fabs(out->quotient - out->boundary) <= out->window;
    }
}

/* S17.7: y = code * scale + mn: an offset |mn| and a product |code * scale| that the repository's own
 * dequantization (unpack_and_dequant_*) rounds to fp16 before adding mn; the residual is stored. */
static void kivi_magnitudes(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, const float *y,
                            double *ma, double *mb, bool *rounded)
{
    (void)y;
    kivi_layout l = layout_of(c, n, d);
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t ch = 0; ch < d; ch++) {
            size_t i = (size_t)t * d + ch;
            if (t >= l.quantized) {
                ma[i] = -1.0;
                mb[i] = 0.0;
                continue;
            }
            uint32_t g = group_of(&l, t, ch);
            float scale = kvq_peer_fp16_value(data + l.scale_offset + 2 * (size_t)g);
            ma[i] = fabs((double)kvq_peer_fp16_value(data + l.min_offset + 2 * (size_t)g));
            mb[i] = fabs((double)get_code(&l, data, t, ch) * (double)scale);
        }
    *rounded = true;
}

const peer_ops kvq_peer_kivi_ops = {kivi_check,       kivi_bytes,       kivi_check_input, kivi_quantize,
                                    kivi_check_data,  kivi_dequantize,  kivi_group_count, kivi_group_at,
                                    kivi_element_at,  kivi_check_code,  kivi_check_scale, kivi_magnitudes};
