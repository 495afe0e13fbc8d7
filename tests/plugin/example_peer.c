/*
 * example_peer.c - S17: other projects' KV-cache formats, implemented as a
 * third party with only the two headers would: ggml's q8_0 and q4_0 blocks,
 * KIVI's layout and fp16 arithmetic, fp8 e4m3 with a scale (vLLM, FlashInfer).
 * The byte layouts are S17's (little-endian); attention is the example's fp32
 * attention (example_attention.c) over the dequantized post-RoPE keys.
 *
 * The broken builds 19-24 plant the mistakes peer kernels make (issue 14):
 * codes from the rounded scale, the wrong nibble order, KIVI's range in fp32,
 * the values' residual rule for keys, PyTorch's NaN beyond 480, a forgotten
 * key scale.
 */
#include "example.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float h16(float x) { return ex_fp16_to_fp32(ex_fp16_nearest(x)); } /* one fp16 tensor operation */
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static bool fp16_finite(uint16_t h) { return (h & 0x7C00u) != 0x7C00u; }

/* ---- sizes and layouts ---------------------------------------------------- */

typedef struct kivi_shape {
    bool keys;
    uint32_t per_word, top, quantized, lines, words, groups; /* words and groups per line */
    size_t scale_at, min_at, residual_at, bytes;
} kivi_shape;

static kivi_shape kivi_of(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    kivi_shape s;
    s.keys = c->role == KVQ_ROLE_KEYS;
    s.per_word = 32u / c->bits;
    s.top = (1u << c->bits) - 1u;
    uint32_t newest = n < c->residual ? n : c->residual;
#if KVQ_PLUGIN_BREAK == EX_BREAK_KIVI_RESIDUAL
    /* BUG (kvq_plugin_broken_kivi_residual): the values' rule for keys too: the newest R tokens in
     * fp16. KIVI keeps n mod R keys in fp16 (it quantizes keys R at a time, S17.4). */
    s.quantized = n - newest;
#else
    s.quantized = s.keys ? n - n % c->residual : n - newest;
#endif
    s.lines = s.keys ? d : s.quantized;
    s.words = s.keys ? s.quantized / s.per_word : d / s.per_word;
    s.groups = s.keys ? s.quantized / c->group_size : d / c->group_size;
    s.scale_at = (size_t)s.lines * s.words * 4u;
    s.min_at = s.scale_at + (size_t)s.lines * s.groups * 2u;
    s.residual_at = s.min_at + (size_t)s.lines * s.groups * 2u;
    s.bytes = s.residual_at + (size_t)(n - s.quantized) * d * 2u;
    return s;
}

size_t ex_peer_bytes(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    switch (c->format) {
    case KVQ_PEER_Q8_0: return (size_t)n * (d / 32) * 34;
    case KVQ_PEER_Q4_0: return (size_t)n * (d / 32) * 18;
    case KVQ_PEER_KIVI: return kivi_of(c, n, d).bytes;
    default: return (size_t)n * d;
    }
}

/* ---- S17.1: checks, in the spec's order ----------------------------------- */

kvq_status ex_peer_check(ex_error *err, const kvq_peer_config *c, uint32_t n, uint32_t d, const char *name)
{
    if (c == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "%s is NULL", name);
    if ((unsigned)c->format >= KVQ_PEER_FORMAT_COUNT)
        return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s.format = %d is not a peer format", name, (int)c->format);
    if (c->role != KVQ_ROLE_KEYS && c->role != KVQ_ROLE_VALUES)
        return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s.role = %d is not keys or values", name, (int)c->role);
    if (n == 0 || d == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "n_tokens and head_dim must be >= 1");
    if (n > KVQ_MAX_TOKENS) return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "n_tokens = %u is too large", n);
    switch (c->format) {
    case KVQ_PEER_Q8_0:
    case KVQ_PEER_Q4_0: {
        uint32_t own = c->format == KVQ_PEER_Q8_0 ? 8 : 4;
        if (c->bits != 0 && c->bits != own)
            return ex_fail(err, KVQ_ERR_UNSUPPORTED_BITS, "%s.bits = %u: this ggml type has %u-bit codes", name,
                           c->bits, own);
        if (c->group_size != 0 || c->residual != 0 || c->scale != 0.0f)
            return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "%s: group_size, residual and scale must be 0", name);
        if (d % 32 != 0 || d > KVQ_MAX_HEAD_DIM)
            return ex_fail(err, KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u: ggml blocks need a multiple of 32", d);
        return KVQ_OK;
    }
    case KVQ_PEER_KIVI:
        if (c->bits != 2 && c->bits != 4 && c->bits != 8)
            return ex_fail(err, KVQ_ERR_UNSUPPORTED_BITS, "%s.bits = %u: KIVI packs 2, 4 or 8 bits", name, c->bits);
        if (c->scale != 0.0f) return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "%s.scale must be 0 for KIVI", name);
        if (c->group_size == 0) return ex_fail(err, KVQ_ERR_BAD_GROUP_SIZE, "%s.group_size is 0", name);
        if (c->residual == 0) return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "%s.residual is 0", name);
        if (d > KVQ_MAX_HEAD_DIM) return ex_fail(err, KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u is too large", d);
        if (c->role == KVQ_ROLE_KEYS) {
            if (c->residual % c->group_size != 0 || c->residual % (32u / c->bits) != 0)
                return ex_fail(err, KVQ_ERR_BAD_GROUP_SIZE,
                               "%s: residual %u must be a multiple of group_size %u and of %u (codes per word)", name,
                               c->residual, c->group_size, 32u / c->bits);
        } else {
            if (d % c->group_size != 0)
                return ex_fail(err, KVQ_ERR_BAD_GROUP_SIZE, "%s.group_size = %u does not divide head_dim %u", name,
                               c->group_size, d);
            if (d % (32u / c->bits) != 0)
                return ex_fail(err, KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u does not fill whole words", d);
        }
        return KVQ_OK;
    default:
        if (c->bits != 0 && c->bits != 8)
            return ex_fail(err, KVQ_ERR_UNSUPPORTED_BITS, "%s.bits = %u: fp8 has 8 bits", name, c->bits);
        if (c->group_size != 0 || c->residual != 0)
            return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "%s: group_size and residual must be 0", name);
        if (!(c->scale >= 0x1p-126f && c->scale <= 3.4028235e38f))
            return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "%s.scale = %g: needs a positive normal fp32 number", name,
                           (double)c->scale);
        if (d > KVQ_MAX_HEAD_DIM) return ex_fail(err, KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u is too large", d);
        return KVQ_OK;
    }
}

/* ---- ggml blocks (S17.2, S17.3) -------------------------------------------- */

static float ggml_scale(bool q4, const float *x)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j]; /* the first of equal magnitudes stays */
    return q4 ? max / -8.0f : amax / 127.0f;
}

static void ggml_block(bool q4, const float *x, uint8_t *out)
{
    float d = ggml_scale(q4, x);
    uint16_t stored = ex_fp16_nearest(d);
    float id = d != 0.0f ? 1.0f / d : 0.0f;
#if KVQ_PLUGIN_BREAK == EX_BREAK_Q8_0_SCALE
    /* BUG (kvq_plugin_broken_q8_0_scale): codes from the stored fp16 scale, not the fp32 one ggml
     * divides by (S17.2): another format wherever the two quotients straddle k + 1/2. */
    if (!q4) id = stored != 0 ? 1.0f / ex_fp16_to_fp32(stored) : 0.0f;
#endif
    put16(out, stored);
    if (!q4) {
        for (int j = 0; j < 32; j++) out[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
        return;
    }
    uint8_t q[32];
    for (int j = 0; j < 32; j++) {
        int v = (int)(x[j] * id + 8.5f);
        q[j] = (uint8_t)(v > 15 ? 15 : v);
    }
    for (int j = 0; j < 16; j++) {
#if KVQ_PLUGIN_BREAK == EX_BREAK_Q4_0_NIBBLES
        /* BUG (kvq_plugin_broken_q4_0_nibbles): neighbouring elements share a byte; ggml pairs element j
         * (low nibble) with j + 16 (high nibble) (S17.3). */
        out[2 + j] = (uint8_t)(q[2 * j] | q[2 * j + 1] << 4);
#else
        out[2 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
#endif
    }
}

static float ggml_element(bool q4, const uint8_t *block, int j)
{
    float d = ex_fp16_to_fp32(get16(block));
    if (!q4) return (float)(int8_t)block[2 + j] * d;
    uint8_t byte = block[2 + j % 16];
    int q = j < 16 ? byte & 0x0F : byte >> 4;
    return (float)(q - 8) * d;
}

/* ---- KIVI (S17.4) ----------------------------------------------------------- */

/* (token, channel) of element i of group g of line `line`. */
static size_t kivi_at(const kivi_shape *s, const kvq_peer_config *c, uint32_t d, uint32_t line, uint32_t g, uint32_t i)
{
    return s->keys ? (size_t)(g * c->group_size + i) * d + line : (size_t)line * d + g * c->group_size + i;
}

static void kivi_range(const kivi_shape *s, const kvq_peer_config *c, const float *x, uint32_t d, uint32_t line,
                       uint32_t g, float *mn, float *range)
{
    float lo = h16(x[kivi_at(s, c, d, line, g, 0)]), hi = lo;
    for (uint32_t i = 1; i < c->group_size; i++) {
        float v = h16(x[kivi_at(s, c, d, line, g, i)]);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *mn = lo;
#if KVQ_PLUGIN_BREAK == EX_BREAK_KIVI_SCALE
    /* BUG (kvq_plugin_broken_kivi_scale): the range kept in fp32, as numpy/HF quantizers do; KIVI's
     * tensors are fp16, so mx - mn is rounded to fp16 before the division (S17.4, S17.9 example 4). */
    *range = hi - lo;
#else
    *range = h16(hi - lo);
#endif
}

static uint32_t kivi_word_index(const kivi_shape *s, uint32_t t, uint32_t ch, uint32_t *shift, uint32_t bits)
{
    uint32_t line = s->keys ? ch : t, pos = s->keys ? t : ch;
    *shift = pos % s->per_word * bits;
    return line * s->words + pos / s->per_word;
}

static uint32_t word_at(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static kvq_status kivi_quantize(ex_error *err, const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d,
                                uint8_t *data)
{
    kivi_shape s = kivi_of(c, n, d);
    for (uint32_t line = 0; line < s.lines; line++)
        for (uint32_t g = 0; g < s.groups; g++) {
            float mn, range;
            kivi_range(&s, c, x, d, line, g, &mn, &range);
            if (isinf(range)) return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "x: a group's range overflows fp16");
        }
    memset(data, 0, s.bytes);
    for (uint32_t line = 0; line < s.lines; line++)
        for (uint32_t g = 0; g < s.groups; g++) {
            float mn, range;
            kivi_range(&s, c, x, d, line, g, &mn, &range);
            float scale = h16(range / (float)s.top);
            size_t gi = (size_t)line * s.groups + g;
            put16(data + s.scale_at + 2 * gi, ex_fp16_nearest(scale));
            put16(data + s.min_at + 2 * gi, ex_fp16_nearest(mn));
            for (uint32_t i = 0; i < c->group_size; i++) {
                size_t at = kivi_at(&s, c, d, line, g, i);
                float t = h16(h16(x[at]) - mn);
                float u = scale != 0.0f ? h16(t / scale) : (t > 0.0f ? INFINITY : 0.0f);
                uint32_t code = 0;
                if (u >= (float)s.top) {
                    code = s.top;
                } else if (u > 0.0f) { /* torch.round: half to even */
                    float f = floorf(u);
                    code = (uint32_t)f;
                    if (u - f > 0.5f || (u - f == 0.5f && (code & 1u))) code++;
                }
                uint32_t shift, w = kivi_word_index(&s, (uint32_t)(at / d), (uint32_t)(at % d), &shift, c->bits);
                uint8_t *word = data + (size_t)w * 4u;
                uint32_t value = word_at(word) | code << shift;
                for (int b = 0; b < 4; b++) word[b] = (uint8_t)(value >> (8 * b));
            }
        }
    for (size_t i = 0; i < (size_t)(n - s.quantized) * d; i++)
        put16(data + s.residual_at + 2 * i, ex_fp16_nearest(x[(size_t)s.quantized * d + i]));
    return KVQ_OK;
}

static void kivi_dequantize(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, float *out)
{
    kivi_shape s = kivi_of(c, n, d);
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t ch = 0; ch < d; ch++) {
            if (t >= s.quantized) {
                size_t r = (size_t)(t - s.quantized) * d + ch;
                out[(size_t)t * d + ch] = ex_fp16_to_fp32(get16(data + s.residual_at + 2 * r));
                continue;
            }
            size_t gi = s.keys ? (size_t)ch * s.groups + t / c->group_size : (size_t)t * s.groups + ch / c->group_size;
            uint32_t shift, w = kivi_word_index(&s, t, ch, &shift, c->bits);
            uint32_t code = word_at(data + (size_t)w * 4u) >> shift & s.top;
            float scale = ex_fp16_to_fp32(get16(data + s.scale_at + 2 * gi));
            out[(size_t)t * d + ch] = (float)code * scale + ex_fp16_to_fp32(get16(data + s.min_at + 2 * gi));
        }
}

/* ---- fp8 e4m3 (S17.5) ----------------------------------------------------- */

static uint8_t e4m3_of(float u)
{
    uint8_t sign = signbit(u) ? 0x80 : 0x00;
    float a = fabsf(u);
#if KVQ_PLUGIN_BREAK == EX_BREAK_FP8_NAN
    /* BUG (kvq_plugin_broken_fp8_nan): PyTorch's float8_e4m3fn conversion, NaN from 480 on; vLLM's
     * cache write saturates to +-448 (S17.5). */
    if (a >= 480.0f) return (uint8_t)(sign | 0x7F);
#endif
    if (a >= 448.0f) return (uint8_t)(sign | 0x7E); /* saturate (what rounds above 448 too) */
    int e;
    float m;
    if (a < 0x1p-6f) { /* subnormal: m * 2^-9 */
        e = -6;
        m = a * 512.0f; /* exact */
    } else {
        m = frexpf(a, &e) * 16.0f; /* a = m 2^(e-4), m in [8, 16) */
        e -= 1;
    }
    float f = floorf(m);
    uint32_t q = (uint32_t)f;
    if (m - f > 0.5f || (m - f == 0.5f && (q & 1u))) q++; /* to nearest, ties to even */
    if (a < 0x1p-6f) return (uint8_t)(sign | q);     /* q = 8 is the smallest normal, 0x08 */
    if (q == 16) e += 1, q = 8;
    uint32_t code = (uint32_t)(e + 7) << 3 | (q - 8);
    return (uint8_t)(sign | (code > 0x7E ? 0x7E : code));
}

static float e4m3_value(uint8_t b)
{
    int e = (b >> 3) & 15, m = b & 7;
    float v = e == 0 ? ldexpf((float)m, -9) : ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return b & 0x80 ? -v : v;
}

/* ---- the operations --------------------------------------------------------- */

kvq_status ex_peer_quantize(ex_error *err, const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d,
                            uint8_t *data)
{
    if (c == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "config is NULL");
    if (x == NULL || data == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "x or data is NULL");
    kvq_status st = ex_peer_check(err, c, n, d, "config");
    if (st == KVQ_OK) st = ex_check_finite(err, x, (size_t)n * d, "x");
    if (st != KVQ_OK) return st;
    size_t bytes = ex_peer_bytes(c, n, d);
    uint8_t *tmp = malloc(bytes > 0 ? bytes : 1); /* built aside: nothing written on failure */
    if (tmp == NULL) return ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "out of memory");
    if (c->format == KVQ_PEER_Q8_0 || c->format == KVQ_PEER_Q4_0) {
        bool q4 = c->format == KVQ_PEER_Q4_0;
        for (size_t b = 0; b < (size_t)n * (d / 32); b++) {
            float scale = ggml_scale(q4, x + 32 * b);
            if (scale != 0.0f && isinf(1.0f / scale)) {
                free(tmp);
                return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "x: block %zu's scale has no finite reciprocal", b);
            }
            ggml_block(q4, x + 32 * b, tmp + b * (q4 ? 18 : 34));
        }
    } else if (c->format == KVQ_PEER_KIVI) {
        st = kivi_quantize(err, c, x, n, d, tmp);
    } else {
        for (size_t i = 0; i < (size_t)n * d; i++) tmp[i] = e4m3_of(x[i] / c->scale);
    }
    if (st == KVQ_OK) memcpy(data, tmp, bytes);
    free(tmp);
    return st;
}

/* The stored numbers must be usable: finite scales, minima and residual; no fp8 NaN. */
static kvq_status check_data(ex_error *err, const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d,
                             const char *name)
{
    if (data == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "%s is NULL", name);
    if (c->format == KVQ_PEER_Q8_0 || c->format == KVQ_PEER_Q4_0) {
        size_t step = c->format == KVQ_PEER_Q8_0 ? 34 : 18;
        for (size_t b = 0; b < (size_t)n * (d / 32); b++)
            if (!fp16_finite(get16(data + b * step)))
                return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "%s: block %zu's scale is not finite", name, b);
    } else if (c->format == KVQ_PEER_KIVI) {
        kivi_shape s = kivi_of(c, n, d);
        for (size_t at = s.scale_at; at < s.bytes; at += 2)
            if (!fp16_finite(get16(data + at)))
                return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "%s: the fp16 number at byte %zu is not finite", name, at);
    } else {
        for (size_t i = 0; i < (size_t)n * d; i++)
            if ((data[i] & 0x7F) == 0x7F) return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "%s[%zu] is NaN", name, i);
    }
    return KVQ_OK;
}

static void dequantize(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, float scale, float *out)
{
    if (c->format == KVQ_PEER_KIVI) {
        kivi_dequantize(c, data, n, d, out);
        return;
    }
    for (size_t i = 0; i < (size_t)n * d; i++) {
        if (c->format == KVQ_PEER_FP8_E4M3)
            out[i] = e4m3_value(data[i]) * scale;
        else
            out[i] = ggml_element(c->format == KVQ_PEER_Q4_0, data + (i / 32) * (c->format == KVQ_PEER_Q8_0 ? 34 : 18),
                                  (int)(i % 32));
    }
}

kvq_status ex_peer_dequantize(ex_error *err, const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d,
                              float *out)
{
    if (c == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "config is NULL");
    if (data == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "data is NULL");
    kvq_status st = ex_peer_check(err, c, n, d, "config");
    if (st == KVQ_OK) st = check_data(err, c, data, n, d, "data");
    if (st != KVQ_OK) return st;
    if (out == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    dequantize(c, data, n, d, c->scale, out);
    return KVQ_OK;
}

kvq_status ex_peer_attention(ex_error *err, const kvq_peer_config *kc, const uint8_t *keys, const kvq_peer_config *vc,
                             const uint8_t *values, uint32_t n, uint32_t d, const float *q, uint32_t n_q, float *out)
{
    if (kc == NULL || keys == NULL || vc == NULL || values == NULL || q == NULL || out == NULL)
        return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "a configuration, tensor, q or out is NULL");
    if (kc->role != KVQ_ROLE_KEYS || vc->role != KVQ_ROLE_VALUES)
        return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "key_config.role must be keys, value_config.role values");
    if (n_q == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "n_q is 0");
    kvq_status st = ex_peer_check(err, kc, n, d, "key_config");
    if (st == KVQ_OK) st = check_data(err, kc, keys, n, d, "keys");
    if (st == KVQ_OK) st = ex_peer_check(err, vc, n, d, "value_config");
    if (st == KVQ_OK) st = check_data(err, vc, values, n, d, "values");
    if (st == KVQ_OK) st = ex_check_finite(err, q, (size_t)n_q * d, "q");
    if (st != KVQ_OK) return st;
    float *k = malloc((size_t)n * d * sizeof *k), *v = malloc((size_t)n * d * sizeof *v);
    float *e = malloc((size_t)n * sizeof *e), *result = malloc((size_t)n_q * d * sizeof *result);
    if (!k || !v || !e || !result) {
        free(k), free(v), free(e), free(result);
        return ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "out of memory for attention over %u tokens", n);
    }
    float key_scale = kc->scale;
#if KVQ_PLUGIN_BREAK == EX_BREAK_FP8_K_SCALE
    /* BUG (kvq_plugin_broken_fp8_k_scale): the key scale is meant to be folded into the softmax scale
     * (as FlashInfer does) and never is: the scores are off by the factor k_scale (S17.5, S17.7). */
    key_scale = 1.0f;
#endif
    dequantize(kc, keys, n, d, key_scale, k);
    dequantize(vc, values, n, d, vc->scale, v);
    for (uint32_t h = 0; h < n_q; h++) /* keys are post-RoPE and q is rotated: no rotation here */
        ex_attend_one(k, v, n, d, q + (size_t)h * d, e, false, result + (size_t)h * d);
    memcpy(out, result, (size_t)n_q * d * sizeof *out);
    free(k), free(v), free(e), free(result);
    return KVQ_OK;
}
