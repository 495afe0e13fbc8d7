/*
 * session.c - capabilities, status checks and reading tensors back from the
 * backend under test (kvq_backend.h).
 */
#include "session.h"

#include <stdlib.h>
#include <string.h>

/* Reasons name the capability, not the case's own numbers, so that the
 * summary groups the cases one missing capability skips. */
static bool deny(char *why, size_t size, const char *reason)
{
    snprintf(why, size, "%s", reason);
    return false;
}

bool caps_allow_op(const kvq_backend_caps *caps, uint32_t op, char *why, size_t size)
{
    static const char *const names[] = {"PACK", "QUANTIZE", "DEQUANTIZE", "ATTENTION", "CACHE"};
    if (caps->ops & op) return true;
    const char *name = "?";
    for (unsigned i = 0; i < 5; i++)
        if (op == 1u << i) name = names[i];
    snprintf(why, size, "caps.ops lacks %s", name);
    return false;
}

bool caps_allow_bits(const kvq_backend_caps *caps, kvq_scheme scheme, uint32_t bits, char *why, size_t size)
{
    uint32_t mask = scheme == KVQ_SCHEME_NUQ ? caps->nuq_bits : caps->uniform_bits;
    if (bits < 32 && (mask >> bits & 1u)) return true;
    snprintf(why, size, "caps.%s lacks %u-bit codes", scheme == KVQ_SCHEME_NUQ ? "nuq_bits" : "uniform_bits", bits);
    return false;
}

static bool allow_sizes(const kvq_backend_caps *caps, uint32_t n_tokens, uint32_t head_dim, char *why, size_t size)
{
    if (head_dim > caps->max_head_dim) {
        snprintf(why, size, "head_dim above caps.max_head_dim %u", caps->max_head_dim);
        return false;
    }
    if (n_tokens > caps->max_tokens) {
        snprintf(why, size, "more tokens than caps.max_tokens %u", caps->max_tokens);
        return false;
    }
    return true;
}

static bool allow_feature(const kvq_backend_caps *caps, uint32_t feature, const char *name, char *why, size_t size)
{
    if (caps->features & feature) return true;
    snprintf(why, size, "caps.features lacks %s", name);
    return false;
}

static bool allow_key_mode(const kvq_backend_caps *caps, kvq_key_mode mode, char *why, size_t size)
{
    if ((unsigned)mode < 32 && (caps->key_modes >> mode & 1u)) return true;
    return deny(why, size,
                mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED ? "caps.key_modes lacks calibrated keys"
                                                        : "caps.key_modes lacks online keys");
}

bool caps_allow_config(const kvq_backend_caps *caps, const kvq_head_config *c, uint32_t n_tokens, uint32_t head_dim,
                       char *why, size_t size)
{
    if (!caps_allow_bits(caps, c->quantizer.scheme, c->quantizer.bits, why, size)) return false;
    bool keys = c->role == KVQ_ROLE_KEYS;
    if (keys && !allow_key_mode(caps, c->key_mode, why, size)) return false;
    /* calibrated keys mark outliers by range (S7.3) whatever outlier_ppm says, unless they clamp */
    bool calibrated = keys && c->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    bool clamp = calibrated && c->beyond_range == KVQ_BEYOND_RANGE_CLAMP;
    if (clamp && !allow_feature(caps, KVQ_BACKEND_FEATURE_CLAMP, "CLAMP", why, size)) return false;
    bool outliers = (calibrated && !clamp) || (!calibrated && c->outlier_ppm > 0);
    if (outliers && !allow_feature(caps, KVQ_BACKEND_FEATURE_OUTLIERS, "OUTLIERS", why, size)) return false;
    if (c->policy.n_sinks > 0 && !allow_feature(caps, KVQ_BACKEND_FEATURE_SINKS, "SINKS", why, size)) return false;
    bool policy = c->policy.rule != KVQ_POLICY_QUANTIZE_ALL || c->policy.recent_window > 0;
    if (policy && !allow_feature(caps, KVQ_BACKEND_FEATURE_POLICY, "POLICY", why, size)) return false;
    bool groups = !keys && c->group_size != 0 && c->group_size != head_dim;
    if (groups && !allow_feature(caps, KVQ_BACKEND_FEATURE_GROUPS, "GROUPS", why, size)) return false;
    return allow_sizes(caps, n_tokens, head_dim, why, size);
}

bool caps_allow_tensor(const kvq_backend_caps *caps, const kvq_qtensor *qt, char *why, size_t size)
{
    if (!caps_allow_bits(caps, qt->scheme, qt->bits, why, size)) return false;
    if (qt->role == KVQ_ROLE_KEYS && !allow_key_mode(caps, qt->key_mode, why, size)) return false;
    if (qt->n_outliers > 0 && !allow_feature(caps, KVQ_BACKEND_FEATURE_OUTLIERS, "OUTLIERS", why, size)) return false;
    bool sinks = false, policy = false;
    for (uint32_t t = 0; t < qt->n_tokens; t++) {
        sinks = sinks || qt->precision[t] == KVQ_PREC_SINK;
        policy = policy || qt->precision[t] == KVQ_PREC_POLICY || qt->precision[t] == KVQ_PREC_WINDOW;
    }
    if (sinks && !allow_feature(caps, KVQ_BACKEND_FEATURE_SINKS, "SINKS", why, size)) return false;
    if (policy && !allow_feature(caps, KVQ_BACKEND_FEATURE_POLICY, "POLICY", why, size)) return false;
    bool groups = qt->role == KVQ_ROLE_VALUES && qt->group_size != qt->head_dim;
    if (groups && !allow_feature(caps, KVQ_BACKEND_FEATURE_GROUPS, "GROUPS", why, size)) return false;
    return allow_sizes(caps, qt->n_tokens, qt->head_dim, why, size);
}

bool caps_allow_rope(const kvq_backend_caps *caps, kvq_rope_pairing pairing, uint32_t n_q, char *why, size_t size)
{
    static const char *const pairings[] = {"NONE", "HALF", "INTERLEAVED"};
    if ((unsigned)pairing >= 3 || !(caps->rope_pairings >> pairing & 1u)) {
        snprintf(why, size, "caps.rope_pairings lacks %s", (unsigned)pairing < 3 ? pairings[pairing] : "?");
        return false;
    }
    if (n_q > caps->max_query_heads) {
        snprintf(why, size, "more query heads than caps.max_query_heads %u", caps->max_query_heads);
        return false;
    }
    return true;
}

bool caps_allow_attention(const kvq_backend_caps *caps, kvq_rope_pairing pairing, uint32_t n_q, uint32_t head_dim,
                          uint32_t n_tokens, char *why, size_t size)
{
    return caps_allow_op(caps, KVQ_BACKEND_OP_ATTENTION, why, size) && caps_allow_rope(caps, pairing, n_q, why, size) &&
           allow_sizes(caps, n_tokens, head_dim, why, size);
}

static void append(char *out, size_t size, const char *text)
{
    size_t used = strlen(out);
    if (used + 1 < size) snprintf(out + used, size - used, "%s%s", used > 0 ? " " : "", text);
}

void caps_describe(const kvq_backend_caps *caps, char *out, size_t size)
{
    static const char *const ops[] = {"PACK", "QUANTIZE", "DEQUANTIZE", "ATTENTION", "CACHE"};
    static const char *const features[] = {"OUTLIERS", "SINKS", "POLICY", "GROUPS", "CLAMP"};
    static const char *const pairings[] = {"none", "half", "interleaved"};
    char part[160] = "";
    out[0] = '\0';
    append(out, size, "ops:");
    for (unsigned i = 0; i < 5; i++)
        if (caps->ops >> i & 1u) append(out, size, ops[i]);
    append(out, size, "| features:");
    for (unsigned i = 0; i < 5; i++)
        if (caps->features >> i & 1u) append(out, size, features[i]);
    append(out, size, "| uniform bits:");
    for (unsigned b = 2; b <= 8; b++)
        if (caps->uniform_bits >> b & 1u) {
            snprintf(part, sizeof part, "%u", b);
            append(out, size, part);
        }
    append(out, size, "| nuq bits:");
    for (unsigned b = 2; b <= 4; b++)
        if (caps->nuq_bits >> b & 1u) {
            snprintf(part, sizeof part, "%u", b);
            append(out, size, part);
        }
    append(out, size, "| key modes:");
    if (caps->key_modes & 1u) append(out, size, "calibrated");
    if (caps->key_modes & 2u) append(out, size, "online");
    append(out, size, "| rope:");
    for (unsigned i = 0; i < 3; i++)
        if (caps->rope_pairings >> i & 1u) append(out, size, pairings[i]);
    snprintf(part, sizeof part, "| max head_dim %u, max query heads %u, max tokens %u | memory %s", caps->max_head_dim,
             caps->max_query_heads, caps->max_tokens, caps->memory == KVQ_BACKEND_MEMORY_DEVICE ? "device" : "host");
    append(out, size, part);
    append(out, size, "| attention profiles:");
    for (int p = 0; p < KVQ_PROFILE_COUNT; p++)
        if (caps->attention_profiles >> p & 1u) append(out, size, kvq_attention_profile_name((kvq_attention_profile)p));
}

bool session_expect_ok(const conform_run *run, kvq_status st, const char *operation, conform_diag *d)
{
    if (st == KVQ_OK) return true;
    diag_at(d, "status", -1, "%s", operation);
    diag_got(d, "%s", kvq_status_name(st));
    diag_expected(d, "KVQ_OK");
    diag_explain(d, "%s failed on a valid input; backend says: \"%s\".", operation, run_backend_error(run));
    return false;
}

bool session_slot_present(bool present, const char *slot_name, const char *cap_name, conform_diag *d)
{
    if (present) return true;
    diag_at(d, slot_name, -1, "backend table");
    diag_got(d, "NULL");
    diag_expected(d, "a function");
    diag_explain(d, "caps advertise %s but the %s slot is NULL (kvq_backend.h: an operation a backend does not "
                    "implement is a NULL slot with its capability clear).",
                 cap_name, slot_name);
    return false;
}

bool session_read_tensor(const conform_run *run, const kvq_backend_tensor *t, const char *what, kvq_qtensor **out,
                         conform_diag *d)
{
    const kvq_backend_api *api = run->api;
    if (!session_slot_present(api->tensor_info != NULL, "tensor_info", "QUANTIZE/CACHE", d) ||
        !session_slot_present(api->tensor_read != NULL, "tensor_read", "QUANTIZE/CACHE", d))
        return false;
    kvq_qtensor header;
    memset(&header, 0, sizeof header);
    char operation[128];
    snprintf(operation, sizeof operation, "tensor_info(%s)", what);
    if (!session_expect_ok(run, api->tensor_info(run->ctx, t, &header), operation, d)) return false;
    kvq_qtensor *qt = NULL;
    kvq_status st = kvq_qtensor_alloc(&header, &qt);
    if (st != KVQ_OK) {
        diag_at(d, "tensor_info", -1, "%s", what);
        diag_got(d, "an inconsistent header");
        diag_expected(d, "scalar fields of a valid qtensor (S4.4)");
        diag_explain(d, "kvq_qtensor_alloc refuses the header tensor_info returned: %s: %s.", kvq_status_name(st),
                     kvq_last_error());
        return false;
    }
    snprintf(operation, sizeof operation, "tensor_read(%s)", what);
    if (!session_expect_ok(run, api->tensor_read(run->ctx, t, qt), operation, d)) {
        kvq_qtensor_free(qt);
        return false;
    }
    *out = qt;
    return true;
}

enum { GUARD_BYTES = 64, GUARD_PATTERN = 0xA5 };

void *guarded_alloc(size_t bytes)
{
    unsigned char *p = malloc(bytes + GUARD_BYTES);
    if (p != NULL) memset(p, GUARD_PATTERN, bytes + GUARD_BYTES);
    return p;
}

bool guarded_tail_intact(const void *buffer, size_t bytes)
{
    const unsigned char *p = (const unsigned char *)buffer + bytes;
    for (size_t i = 0; i < GUARD_BYTES; i++)
        if (p[i] != GUARD_PATTERN) return false;
    return true;
}

bool guarded_untouched(const void *buffer, size_t bytes)
{
    const unsigned char *p = buffer;
    for (size_t i = 0; i < bytes; i++)
        if (p[i] != GUARD_PATTERN) return false;
    return guarded_tail_intact(buffer, bytes);
}

void *guarded_copy(const void *src, size_t bytes, size_t slack)
{
    unsigned char *p = guarded_alloc(bytes + slack);
    if (p != NULL && bytes > 0) memcpy(p, src, bytes);
    return p;
}

void guarded_free(void *buffer) { free(buffer); }
