/*
 * foreign_absmax.c - a plugin of a KV format kvq does not know, for `kvq accuracy`
 * (docs/PLUGINS.md, "Formats kvq does not know").
 *
 * The format: every token row of a head slice (keys and values alike) is one
 * group with an fp32 scale s = max_j |x_j| / Q, Q = 2^(bits-1) - 1, and signed
 * codes q_j = round(x_j / s) in [-Q, Q]; the value is q_j * s. This is the
 * plain per-token absmax int-b quantizer many first KV-cache kernels start
 * from: not kvq's format (fp16 parameters, per-channel keys, thresholds), not
 * ggml's (blocks of 32, fp16 scale), not KIVI's. kvq conform cannot judge it;
 * kvq accuracy scores it against the fp32 reference on the original data.
 *
 * The plugin uses the kvq ABI's slots with its own meaning, as a foreign
 * kernel would: quantize_head reads only config->role and config->quantizer.bits
 * (2, 4 or 8, caps.uniform_bits), dequantize returns its values, attention_decode
 * computes softmax(q k / sqrt(d)) v over them without RoPE (caps.rope_pairings
 * = NONE only). Its tensors have no kvq_qtensor layout, so tensor_info says so.
 *
 * FOREIGN_BREAK builds broken variants: 1, the scale from the row's mean |x|
 * instead of its maximum, so every element beyond Q times the mean is clipped
 * (a wrong scale: it runs and looks plausible, and is visibly less accurate);
 * 2, abort() in quantize_head at 2 bits (kvq accuracy reports that width as
 * crashed and scores the others).
 *
 * Built against kvq/kvq_backend.h and kvq/kvq.h alone, like every plugin in
 * tests/plugin (no libkvq).
 */
#include "kvq/kvq_backend.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FOREIGN_BREAK_SCALE 1
#define FOREIGN_BREAK_CRASH 2
#ifndef FOREIGN_BREAK
#define FOREIGN_BREAK 0
#endif

#define FOREIGN_DEVICE "host CPU (per-token absmax int codes, fp32 scale)"
#define FOREIGN_MAX_TOKENS (1u << 20)

struct kvq_backend_context {
    char message[256];
};

/* One head slice in the foreign format: per token an fp32 scale and head_dim int8 codes. */
struct kvq_backend_tensor {
    uint32_t n_tokens, head_dim, bits;
    float *scale;  /* [n_tokens] */
    int8_t *codes; /* [n_tokens][head_dim] */
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static kvq_status fail(kvq_backend_context *ctx, kvq_status status, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vsnprintf(ctx->message, sizeof ctx->message, format, ap);
    va_end(ap);
    return status;
}

static kvq_status fa_list_devices(kvq_backend_device_fn callback, void *user, char *message, size_t message_size)
{
    if (callback == NULL) {
        if (message != NULL && message_size > 0) snprintf(message, message_size, "callback is NULL");
        return KVQ_ERR_NULL_ARGUMENT;
    }
    callback(user, 0, 0, FOREIGN_DEVICE);
    return KVQ_OK;
}

static kvq_status fa_open(const kvq_backend_options *options, kvq_backend_context **ctx, char *message,
                          size_t message_size)
{
    (void)options; /* one device, fp32 arithmetic: every option is met */
    if (ctx == NULL) {
        if (message != NULL && message_size > 0) snprintf(message, message_size, "ctx is NULL");
        return KVQ_ERR_NULL_ARGUMENT;
    }
    kvq_backend_context *c = calloc(1, sizeof *c);
    if (c == NULL) {
        if (message != NULL && message_size > 0) snprintf(message, message_size, "out of memory");
        return KVQ_ERR_OUT_OF_MEMORY;
    }
    *ctx = c;
    return KVQ_OK;
}

static void fa_close(kvq_backend_context *ctx) { free(ctx); }

static kvq_status fa_get_caps(kvq_backend_context *ctx, kvq_backend_caps *caps)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    if (caps == NULL) return fail(ctx, KVQ_ERR_NULL_ARGUMENT, "caps is NULL");
    if (caps->struct_size < sizeof *caps)
        return fail(ctx, KVQ_ERR_SIZE_MISMATCH, "caps->struct_size = %u, this backend's caps need %zu",
                    caps->struct_size, sizeof *caps);
    kvq_backend_caps c = {
        .struct_size = sizeof c,
        .ops = KVQ_BACKEND_OP_QUANTIZE | KVQ_BACKEND_OP_DEQUANTIZE | KVQ_BACKEND_OP_ATTENTION,
        .uniform_bits = (1u << 2) | (1u << 4) | (1u << 8), /* the widths of its own format */
        .key_modes = 1u << KVQ_KEYS_PER_CHANNEL_ONLINE,
        .rope_pairings = 1u << KVQ_ROPE_NONE,
        .max_head_dim = KVQ_MAX_HEAD_DIM,
        .max_query_heads = UINT32_MAX,
        .max_tokens = FOREIGN_MAX_TOKENS,
        .memory = KVQ_BACKEND_MEMORY_HOST,
        .attention_profiles = 1u << KVQ_PROFILE_FP32,
        .attention_profile = KVQ_PROFILE_FP32,
    };
    *caps = c;
    return KVQ_OK;
}

static const char *fa_device_name(kvq_backend_context *ctx)
{
    (void)ctx;
    return FOREIGN_DEVICE;
}

static const char *fa_last_error(kvq_backend_context *ctx) { return ctx != NULL ? ctx->message : ""; }

static void tensor_free(kvq_backend_tensor *t)
{
    if (t == NULL) return;
    free(t->scale);
    free(t->codes);
    free(t);
}

/* The row's scale: max |x| / Q (the broken build: mean |x| / Q). */
static float row_scale(const float *x, uint32_t d, int32_t top)
{
    float amax = 0.0f;
    double sum = 0.0;
    for (uint32_t j = 0; j < d; j++) {
        float a = fabsf(x[j]);
        if (a > amax) amax = a;
        sum += a;
    }
    float base = FOREIGN_BREAK == FOREIGN_BREAK_SCALE ? (float)(sum / d) : amax;
    return base / (float)top;
}

static kvq_status fa_quantize(kvq_backend_context *ctx, const kvq_head_config *config, const float *x_host,
                              uint32_t n_tokens, uint32_t head_dim, const uint8_t *modality_host,
                              kvq_backend_tensor **out)
{
    (void)modality_host; /* every token is quantized alike */
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    if (config == NULL) return fail(ctx, KVQ_ERR_NULL_ARGUMENT, "config is NULL");
    if (x_host == NULL) return fail(ctx, KVQ_ERR_NULL_ARGUMENT, "x_host is NULL");
    if (out == NULL) return fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    uint32_t bits = config->quantizer.bits;
    if (bits != 2u && bits != 4u && bits != 8u)
        return fail(ctx, KVQ_ERR_UNSUPPORTED_BITS, "config->quantizer.bits = %u: this format has 2, 4 or 8 bits",
                    bits);
    if (FOREIGN_BREAK == FOREIGN_BREAK_CRASH && bits == 2u) abort();
    if (n_tokens == 0 || head_dim == 0) return fail(ctx, KVQ_ERR_ZERO_SIZE, "n_tokens or head_dim is 0");
    if (n_tokens > FOREIGN_MAX_TOKENS || head_dim > KVQ_MAX_HEAD_DIM)
        return fail(ctx, KVQ_ERR_BAD_ARGUMENT, "%u x %u is larger than caps say", n_tokens, head_dim);
    size_t count = (size_t)n_tokens * head_dim;
    for (size_t i = 0; i < count; i++)
        if (!(fabsf(x_host[i]) <= 65504.0f))
            return fail(ctx, KVQ_ERR_NONFINITE_INPUT, "x_host[%zu] is not finite or beyond +-65504", i);
    kvq_backend_tensor *t = calloc(1, sizeof *t);
    if (t != NULL) {
        t->scale = malloc(n_tokens * sizeof *t->scale);
        t->codes = malloc(count);
    }
    if (t == NULL || t->scale == NULL || t->codes == NULL) {
        tensor_free(t);
        return fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "out of memory for a %u x %u tensor", n_tokens, head_dim);
    }
    t->n_tokens = n_tokens;
    t->head_dim = head_dim;
    t->bits = bits;
    int32_t top = (1 << (bits - 1u)) - 1;
    for (uint32_t i = 0; i < n_tokens; i++) {
        const float *row = x_host + (size_t)i * head_dim;
        float s = row_scale(row, head_dim, top);
        t->scale[i] = s;
        for (uint32_t j = 0; j < head_dim; j++) {
            float q = s > 0.0f ? roundf(row[j] / s) : 0.0f;
            if (q > (float)top) q = (float)top;
            if (q < (float)-top) q = (float)-top;
            t->codes[(size_t)i * head_dim + j] = (int8_t)q;
        }
    }
    *out = t;
    return KVQ_OK;
}

static kvq_status fa_tensor_info(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *header)
{
    (void)t;
    (void)header;
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return fail(ctx, KVQ_ERR_BAD_ARGUMENT,
                "this backend stores per-token absmax codes with an fp32 scale, not kvq's format: its tensors "
                "have no kvq_qtensor layout (score it with kvq accuracy)");
}

static void dequantize_into(const kvq_backend_tensor *t, float *out)
{
    for (uint32_t i = 0; i < t->n_tokens; i++)
        for (uint32_t j = 0; j < t->head_dim; j++) {
            size_t k = (size_t)i * t->head_dim + j;
            out[k] = (float)t->codes[k] * t->scale[i];
        }
}

static kvq_status fa_dequantize(kvq_backend_context *ctx, const kvq_backend_tensor *t, float *out_host)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    if (t == NULL) return fail(ctx, KVQ_ERR_NULL_ARGUMENT, "t is NULL");
    if (out_host == NULL) return fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out_host is NULL");
    dequantize_into(t, out_host);
    return KVQ_OK;
}

static void fa_tensor_free(kvq_backend_context *ctx, kvq_backend_tensor *t)
{
    (void)ctx;
    tensor_free(t);
}

/* softmax(q k / sqrt(d)) v over the dequantized values, fp32 products and double sums. */
static kvq_status fa_attention(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                               const kvq_backend_tensor *values, const uint32_t *key_positions_host,
                               const kvq_rope *rope, const float *q_host, uint32_t n_q, uint32_t q_position,
                               float *out_host)
{
    (void)key_positions_host; /* no RoPE: positions do not matter */
    (void)q_position;
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    if (keys == NULL || values == NULL) return fail(ctx, KVQ_ERR_NULL_ARGUMENT, "keys or values is NULL");
    if (rope == NULL || q_host == NULL || out_host == NULL)
        return fail(ctx, KVQ_ERR_NULL_ARGUMENT, "rope, q_host or out_host is NULL");
    if (rope->pairing != KVQ_ROPE_NONE)
        return fail(ctx, KVQ_ERR_BAD_ENUM, "rope->pairing: this backend attends without RoPE (caps.rope_pairings)");
    if (keys->n_tokens != values->n_tokens || keys->head_dim != values->head_dim)
        return fail(ctx, KVQ_ERR_SIZE_MISMATCH, "keys and values differ in shape");
    if (n_q == 0) return fail(ctx, KVQ_ERR_ZERO_SIZE, "n_q is 0");
    uint32_t n = keys->n_tokens, d = keys->head_dim;
    float *k = malloc((size_t)n * d * sizeof *k), *v = malloc((size_t)n * d * sizeof *v);
    double *w = malloc((size_t)n * sizeof *w), *acc = malloc((size_t)d * sizeof *acc);
    float *result = malloc((size_t)n_q * d * sizeof *result);
    if (k == NULL || v == NULL || w == NULL || acc == NULL || result == NULL) {
        free(k), free(v), free(w), free(acc), free(result);
        return fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "out of memory for attention over %u tokens", n);
    }
    dequantize_into(keys, k);
    dequantize_into(values, v);
    double inv = 1.0 / sqrt((double)d);
    for (uint32_t h = 0; h < n_q; h++) {
        const float *q = q_host + (size_t)h * d;
        double top = -INFINITY, sum = 0.0;
        for (uint32_t t = 0; t < n; t++) {
            float dot = 0.0f;
            for (uint32_t j = 0; j < d; j++) dot += q[j] * k[(size_t)t * d + j];
            w[t] = dot * inv;
            if (w[t] > top) top = w[t];
        }
        for (uint32_t j = 0; j < d; j++) acc[j] = 0.0;
        for (uint32_t t = 0; t < n; t++) {
            w[t] = exp(w[t] - top);
            sum += w[t];
            for (uint32_t j = 0; j < d; j++) acc[j] += w[t] * v[(size_t)t * d + j];
        }
        for (uint32_t j = 0; j < d; j++) result[(size_t)h * d + j] = (float)(acc[j] / sum);
    }
    memcpy(out_host, result, (size_t)n_q * d * sizeof *result);
    free(k), free(v), free(w), free(acc), free(result);
    return KVQ_OK;
}

static const kvq_backend_api foreign_api = {
    .abi_version = KVQ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(kvq_backend_api),
    .name = FOREIGN_BREAK == FOREIGN_BREAK_SCALE   ? "foreign-broken-scale"
            : FOREIGN_BREAK == FOREIGN_BREAK_CRASH ? "foreign-broken-crash"
                                                   : "foreign-absmax",
    .description = FOREIGN_BREAK == FOREIGN_BREAK_SCALE   ? "per-token absmax int codes, fp32 scale, with a wrong scale"
                   : FOREIGN_BREAK == FOREIGN_BREAK_CRASH ? "per-token absmax int codes, fp32 scale; aborts at 2 bits"
                                                          : "a foreign format: per-token absmax int codes, fp32 scale",
    .list_devices = fa_list_devices,
    .open = fa_open,
    .close = fa_close,
    .get_caps = fa_get_caps,
    .device_name = fa_device_name,
    .last_error = fa_last_error,
    .quantize_head = fa_quantize,
    .tensor_info = fa_tensor_info,
    .dequantize = fa_dequantize,
    .tensor_free = fa_tensor_free,
    .attention_decode = fa_attention,
};

__attribute__((visibility("default"))) const kvq_backend_api *kvq_backend_entry(uint32_t host_abi_version)
{
    return host_abi_version == KVQ_BACKEND_ABI_VERSION ? &foreign_api : NULL;
}
