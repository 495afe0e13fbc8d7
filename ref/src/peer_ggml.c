/*
 * peer_ggml.c - ggml's q8_0 and q4_0 blocks (S17.2, S17.3), as llama.cpp
 * stores K and V when the cache type is q8_0 or q4_0 (ggml-quants.c's
 * reference quantizers, which the CPU and CUDA copies into the cache follow).
 *
 * A block is 32 consecutive elements of one token along head_dim: an fp16
 * scale d, then the codes. The scale comes from a division in fp32 and the
 * codes from a multiplication by its fp32 reciprocal id = 1/d, not by the
 * stored fp16 d: a kernel that encodes with the rounded d is another format.
 */
#include "peer_internal.h"

#include <math.h>
#include <stdlib.h>

enum { BLOCK = 32, Q8_BYTES = 2 + BLOCK, Q4_BYTES = 2 + BLOCK / 2 };

static uint32_t blocks_per_row(uint32_t d) { return d / BLOCK; }

static kvq_status check_common(const kvq_peer_config *c, uint32_t d, uint32_t own_bits, const char *name)
{
    if (c->bits != 0 && c->bits != own_bits)
        return kvq_fail(KVQ_ERR_UNSUPPORTED_BITS, "config.bits = %u: %s has %u-bit codes (0 also means that)",
                        c->bits, name, own_bits);
    if (c->group_size != 0 || c->residual != 0 || c->scale != 0.0f)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT,
                        "config.group_size, residual and scale must be 0 for %s (its blocks are 32 elements of a "
                        "token, S17.2)",
                        name);
    if (d % BLOCK != 0 || d > KVQ_MAX_HEAD_DIM)
        return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING,
                        "head_dim = %u: %s needs a multiple of 32 up to %u (blocks of 32 along head_dim, S17.2)", d,
                        name, KVQ_MAX_HEAD_DIM);
    return KVQ_OK;
}

static kvq_status q8_check(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    (void)n;
    return check_common(c, d, 8, "q8_0");
}
static kvq_status q4_check(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    (void)n;
    return check_common(c, d, 4, "q4_0");
}
static size_t q8_bytes(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    (void)c;
    return (size_t)n * blocks_per_row(d) * Q8_BYTES;
}
static size_t q4_bytes(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    (void)c;
    return (size_t)n * blocks_per_row(d) * Q4_BYTES;
}

/* S17.2: amax = max |x| of the block. */
static float block_amax(const float *x)
{
    float amax = 0.0f;
    for (int j = 0; j < BLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
    return amax;
}

/* S17.3: the element of largest magnitude, the first one on a tie (ggml's strict `amax < |v|`). */
static float block_signed_max(const float *x)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < BLOCK; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

/* id = 1/d in fp32, 0 for d = 0 (S17.2). */
static float reciprocal(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

/* The domain: a block whose nonzero d has no finite fp32 reciprocal (|x| below 2^-121 or so) makes ggml's
 * x * id infinite or NaN, whose conversion to an integer C leaves undefined. */
static kvq_status check_reciprocal(const float *x, uint32_t n, uint32_t d, bool q4)
{
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t b = 0; b < blocks_per_row(d); b++) {
            const float *xb = x + (size_t)t * d + (size_t)b * BLOCK;
            float scale = q4 ? block_signed_max(xb) / -8.0f : block_amax(xb) / 127.0f;
            if (scale != 0.0f && isinf(reciprocal(scale)))
                return kvq_fail(KVQ_ERR_BAD_ARGUMENT,
                                "x: token %u, block %u: the scale d = %g has no finite fp32 reciprocal, where ggml's "
                                "codes are undefined (S17.2: the block's largest |x| must be at least 2^-121)",
                                t, b, (double)scale);
        }
    return KVQ_OK;
}
static kvq_status q8_check_input(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d)
{
    (void)c;
    return check_reciprocal(x, n, d, false);
}
static kvq_status q4_check_input(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d)
{
    (void)c;
    return check_reciprocal(x, n, d, true);
}

/* S17.2: q = roundf(x * id), half away from zero. */
static int8_t q8_code(float x, float id) { return (int8_t)roundf(x * id); }

/* S17.3: q = min(15, trunc(x * id + 8.5)), two fp32 roundings (the product, then the sum). */
static uint8_t q4_code(float x, float id)
{
    float shifted = x * id + 8.5f; /* -ffp-contract=off: two roundings, as ggml's C */
    int q = (int)shifted;          /* shifted >= 0: truncation is floor */
    return (uint8_t)(q < 15 ? q : 15);
}

static void q8_quantize(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, uint8_t *data)
{
    (void)c;
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t b = 0; b < blocks_per_row(d); b++) {
            const float *xb = x + (size_t)t * d + (size_t)b * BLOCK;
            uint8_t *out = data + ((size_t)t * blocks_per_row(d) + b) * Q8_BYTES;
            float scale = block_amax(xb) / 127.0f, id = reciprocal(scale);
            kvq_peer_put_u16(out, kvq_fp16_from_fp32(scale));
            for (int j = 0; j < BLOCK; j++) out[2 + j] = (uint8_t)q8_code(xb[j], id);
        }
}

static void q4_quantize(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, uint8_t *data)
{
    (void)c;
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t b = 0; b < blocks_per_row(d); b++) {
            const float *xb = x + (size_t)t * d + (size_t)b * BLOCK;
            uint8_t *out = data + ((size_t)t * blocks_per_row(d) + b) * Q4_BYTES;
            float scale = block_signed_max(xb) / -8.0f, id = reciprocal(scale);
            kvq_peer_put_u16(out, kvq_fp16_from_fp32(scale));
            /* byte j: element j in the low nibble, element j + 16 in the high one */
            for (int j = 0; j < BLOCK / 2; j++)
                out[2 + j] = (uint8_t)(q4_code(xb[j], id) | q4_code(xb[j + BLOCK / 2], id) << 4);
        }
}

static kvq_status check_scales(const uint8_t *data, uint32_t n, uint32_t d, size_t block_bytes)
{
    size_t blocks = (size_t)n * blocks_per_row(d);
    for (size_t i = 0; i < blocks; i++) {
        uint16_t h = kvq_peer_u16(data + i * block_bytes);
        if ((h & 0x7C00u) == 0x7C00u)
            return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "data: block %zu (token %zu, block %zu) has the scale 0x%04X, "
                                                  "which is not finite",
                            i, i / blocks_per_row(d), i % blocks_per_row(d), h);
    }
    return KVQ_OK;
}
static kvq_status q8_check_data(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d)
{
    (void)c;
    return check_scales(data, n, d, Q8_BYTES);
}
static kvq_status q4_check_data(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d)
{
    (void)c;
    return check_scales(data, n, d, Q4_BYTES);
}

static void q8_dequantize(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, float *out)
{
    (void)c;
    for (size_t i = 0; i < (size_t)n * blocks_per_row(d); i++) {
        const uint8_t *block = data + i * Q8_BYTES;
        float scale = kvq_peer_fp16_value(block);
        for (int j = 0; j < BLOCK; j++) out[i * BLOCK + (size_t)j] = (float)(int8_t)block[2 + j] * scale; /* exact */
    }
}

static void q4_dequantize(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, float *out)
{
    (void)c;
    for (size_t i = 0; i < (size_t)n * blocks_per_row(d); i++) {
        const uint8_t *block = data + i * Q4_BYTES;
        float scale = kvq_peer_fp16_value(block);
        for (int j = 0; j < BLOCK / 2; j++) {
            out[i * BLOCK + (size_t)j] = (float)((block[2 + j] & 0x0F) - 8) * scale; /* exact */
            out[i * BLOCK + (size_t)j + BLOCK / 2] = (float)((block[2 + j] >> 4) - 8) * scale;
        }
    }
}

static uint32_t group_count(const kvq_peer_config *c, uint32_t n, uint32_t d)
{
    (void)c;
    return n * blocks_per_row(d);
}

static void group_at(const uint8_t *data, uint32_t d, uint32_t g, size_t block_bytes, kvq_peer_group *out)
{
    out->first_token = g / blocks_per_row(d);
    out->n_tokens = 1;
    out->first_channel = (g % blocks_per_row(d)) * BLOCK;
    out->n_channels = BLOCK;
    out->has_scale = 1;
    out->has_min = 0;
    out->scale = kvq_peer_u16(data + (size_t)g * block_bytes);
    out->min = 0;
}
static void q8_group_at(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, uint32_t g,
                        kvq_peer_group *out)
{
    (void)c, (void)n;
    group_at(data, d, g, Q8_BYTES, out);
}
static void q4_group_at(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, uint32_t g,
                        kvq_peer_group *out)
{
    (void)c, (void)n;
    group_at(data, d, g, Q4_BYTES, out);
}

static void q8_element_at(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, uint32_t t,
                          uint32_t ch, kvq_peer_element *out)
{
    (void)c, (void)n;
    uint32_t g = t * blocks_per_row(d) + ch / BLOCK;
    out->residual = 0;
    out->fp16 = 0;
    out->group = g;
    out->code = data[(size_t)g * Q8_BYTES + 2 + ch % BLOCK];
}
static void q4_element_at(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, uint32_t t,
                          uint32_t ch, kvq_peer_element *out)
{
    (void)c, (void)n;
    uint32_t g = t * blocks_per_row(d) + ch / BLOCK, j = ch % BLOCK;
    uint8_t byte = data[(size_t)g * Q4_BYTES + 2 + j % (BLOCK / 2)];
    out->residual = 0;
    out->fp16 = 0;
    out->group = g;
    out->code = j < BLOCK / 2 ? byte & 0x0Fu : byte >> 4;
}

/* S17.6: codes of neighbouring integers, the boundary at their midpoint in units of u = x * id. */
static void q8_check_code(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, const uint8_t *data,
                          uint32_t t, uint32_t ch, uint32_t got, kvq_peer_code_check *out)
{
    (void)c, (void)n, (void)data;
    const float *xb = x + (size_t)t * d + (ch / BLOCK) * BLOCK;
    float id = reciprocal(block_amax(xb) / 127.0f), u = x[(size_t)t * d + ch] * id;
    int reference = q8_code(x[(size_t)t * d + ch], id), got_value = (int8_t)(uint8_t)got;
    int low = reference < got_value ? reference : got_value;
    double m = low + 0.5;
    kvq_peer_code_verdict(out, (uint8_t)(int8_t)reference, got, got <= 0xFFu && abs(reference - got_value) == 1, u, m,
                          0x1p-20 * fmax(fabs(m), 1.0));
}

static void q4_check_code(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, const uint8_t *data,
                          uint32_t t, uint32_t ch, uint32_t got, kvq_peer_code_check *out)
{
    (void)c, (void)n, (void)data;
    const float *xb = x + (size_t)t * d + (ch / BLOCK) * BLOCK;
    float id = reciprocal(block_signed_max(xb) / -8.0f), u = x[(size_t)t * d + ch] * id;
    uint32_t reference = q4_code(x[(size_t)t * d + ch], id);
    uint32_t low = reference < got ? reference : got;
    double m = (double)low - 8.0 + 0.5; /* code k stands for k - 8; k and k + 1 meet where u + 8.5 = k + 1 */
    bool neighbours = got < 16 && (reference > got ? reference - got : got - reference) == 1;
    kvq_peer_code_verdict(out, reference, got, neighbours, u, m, 0x1p-17);
}

/* S17.6: d = fp16(fl32(amax / 127)); a kernel may divide otherwise (a reciprocal, fp16 arithmetic). */
static void q8_check_scale(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, uint32_t g, uint16_t got,
                           kvq_peer_scale_check *out)
{
    (void)c, (void)n;
    const float *xb = x + (size_t)(g / blocks_per_row(d)) * d + (size_t)(g % blocks_per_row(d)) * BLOCK;
    float amax = block_amax(xb);
    out->reference = kvq_fp16_from_fp32(amax / 127.0f);
    out->quotient = (double)amax / 127.0;
    out->boundary = NAN;
    out->window = 0.0;
    out->accepted = got == out->reference;
    if (!out->accepted && kvq_peer_fp16_neighbours(got, out->reference)) {
        out->boundary = kvq_peer_fp16_midpoint(got, out->reference);
        out->window = 0x1p-20 * out->boundary;
        out->accepted = fabs(out->quotient - out->boundary) <= out->window;
    }
}

/* S17.7: decoded y = q * d, one product (exact); no offset. */
static void ggml_magnitudes(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, const float *y,
                            double *ma, double *mb, bool *rounded)
{
    (void)c, (void)data;
    for (size_t i = 0; i < (size_t)n * d; i++) {
        ma[i] = 0.0;
        mb[i] = fabs((double)y[i]);
    }
    *rounded = false;
}

const peer_ops kvq_peer_q8_0_ops = {q8_check,      q8_bytes,     q8_check_input, q8_quantize,   q8_check_data,
                                    q8_dequantize, group_count,  q8_group_at,    q8_element_at, q8_check_code,
                                    q8_check_scale, ggml_magnitudes};
const peer_ops kvq_peer_q4_0_ops = {q4_check,      q4_bytes,    q4_check_input, q4_quantize,   q4_check_data,
                                    q4_dequantize, group_count, q4_group_at,    q4_element_at, q4_check_code,
                                    NULL,          ggml_magnitudes};
