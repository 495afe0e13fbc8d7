/*
 * run_errors.c - error conformance through the ABI (S13): a bad call must
 * return the same kvq_status as the reference (S13.4 fixes which check
 * reports first), say why in last_error, and write nothing (S13.3: `*out`
 * untouched, output buffers untouched, a cache unchanged).
 */
#include "run.h"
#include "session.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum error_check {
    ERR_QUANTIZE_NULL_X,
    ERR_QUANTIZE_ZERO_TOKENS,
    ERR_QUANTIZE_BITS5,
    ERR_QUANTIZE_NAN,
    ERR_QUANTIZE_PACKING,
    ERR_QUANTIZE_BAD_ENUM,
    ERR_ATTENTION_NAN_Q,
    ERR_ATTENTION_BAD_POSITION,
    ERR_CACHE_ZERO_APPEND,
    ERR_CACHE_NAN_VALUE,
    ERR_COUNT
} error_check;

static const struct {
    const char *name;
    int level;
    const char *what;
} checks[ERR_COUNT] = {
    {"abi_error_quantize_null_x", 1, "quantize_head with x = NULL (S4.1 check 1)"},
    {"abi_error_quantize_zero_tokens", 1, "quantize_head with n_tokens = 0 (S4.1 check 3)"},
    {"abi_error_quantize_bits5", 1, "quantize_head with 5-bit uniform codes (S4.1 check 4)"},
    {"abi_error_quantize_nan", 1, "quantize_head with a NaN in x (S4.1 check 10)"},
    {"abi_error_quantize_packing", 1, "quantize_head with head_dim 80 at 3 bits (S4.1 check 7, S5.3)"},
    {"abi_error_quantize_bad_enum", 1, "quantize_head with scheme 7 (S4.1 check 2)"},
    {"abi_error_attention_nan_q", 4, "attention_decode with a NaN in q (S11.1)"},
    {"abi_error_attention_bad_position", 4, "attention_decode at q_position 2^31 (S11.1)"},
    {"abi_error_cache_zero_append", 5, "cache_append of 0 tokens (S15.2), then a valid append"},
    {"abi_error_cache_nan_value", 5, "cache_append with a NaN value after a valid append (S15.2: cache unchanged)"},
};

int abi_error_count(void) { return ERR_COUNT; }
const char *abi_error_name(int which) { return which >= 0 && which < ERR_COUNT ? checks[which].name : "?"; }
int abi_error_level(int which) { return which >= 0 && which < ERR_COUNT ? checks[which].level : 0; }

enum { N_TOKENS = 8, DIM = 64 };

/* Synthetic keys and values for the checks (S14.3). */
static bool make_inputs(float *keys, float *values, uint32_t n, uint32_t dim)
{
    kvq_synth_params sp = {n, dim, 77, 2, 0.01f, 0, 0, n};
    return kvq_synth_kv(&sp, keys, values, NULL) == KVQ_OK;
}

static kvq_head_config plain_config(kvq_role role)
{
    kvq_head_config c;
    memset(&c, 0, sizeof c);
    c.role = role;
    c.quantizer = (kvq_quantizer){KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
    c.key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE;
    c.group_size = role == KVQ_ROLE_KEYS ? 4 : 0;
    c.policy = (kvq_token_policy){KVQ_POLICY_QUANTIZE_ALL, 0, 0, 0};
    return c;
}

bool run_judge_error_status(const conform_run *run, const char *operation, kvq_status got, kvq_status expected,
                         const char *reference_message, conform_diag *d)
{
    if (got != expected) {
        diag_at(d, "status", -1, "%s", operation);
        diag_got(d, "%s", kvq_status_name(got));
        diag_expected(d, "%s", kvq_status_name(expected));
        diag_explain(d, "S13.4 fixes which check reports first; the reference says \"%s\"; the backend says \"%s\".",
                     reference_message, run_backend_error(run));
        return false;
    }
    if (run_backend_error(run)[0] == '\0') {
        diag_at(d, "last_error", -1, "%s", operation);
        diag_got(d, "\"\"");
        diag_expected(d, "a message naming the argument");
        diag_explain(d, "kvq_backend.h: after a failure last_error(ctx) names the argument that was wrong (the "
                        "reference says \"%s\").",
                     reference_message);
        return false;
    }
    return true;
}

static char sentinel_object;
#define SENTINEL_TENSOR ((kvq_backend_tensor *)(void *)&sentinel_object)

static bool quantize_check(conform_run *run, error_check which, conform_result *r)
{
    uint32_t n = N_TOKENS, dim = which == ERR_QUANTIZE_PACKING ? 80 : DIM;
    kvq_head_config config = plain_config(KVQ_ROLE_VALUES);
    if (which == ERR_QUANTIZE_PACKING) config.quantizer.bits = 3;
    char why[256];
    if (!caps_allow_op(&run->caps, KVQ_BACKEND_OP_QUANTIZE, why, sizeof why) ||
        !caps_allow_bits(&run->caps, config.quantizer.scheme, config.quantizer.bits, why, sizeof why)) {
        result_skip(r, "%s", why);
        return true;
    }
    if (dim > run->caps.max_head_dim) {
        result_skip(r, "head_dim above caps.max_head_dim %u", run->caps.max_head_dim);
        return true;
    }
    if (!session_slot_present(run->api->quantize_head != NULL, "quantize_head", "QUANTIZE", &r->diag)) return false;
    float *x = malloc((size_t)n * dim * sizeof *x), *other = malloc((size_t)n * dim * sizeof *other);
    if (x == NULL || other == NULL || !make_inputs(other, x, n, dim)) {
        free(x);
        free(other);
        diag_at(&r->diag, "runner", -1, "inputs");
        diag_explain(&r->diag, "cannot make the inputs");
        return false;
    }
    const float *input = x;
    switch (which) {
    case ERR_QUANTIZE_NULL_X: input = NULL; break;
    case ERR_QUANTIZE_ZERO_TOKENS: n = 0; break;
    case ERR_QUANTIZE_BITS5: config.quantizer.bits = 5; break;
    case ERR_QUANTIZE_NAN: x[1 * dim + 37] = NAN; break;
    case ERR_QUANTIZE_BAD_ENUM: config.quantizer.scheme = (kvq_scheme)7; break;
    default: break;
    }
    kvq_qtensor *ref_out = (kvq_qtensor *)(void *)&sentinel_object;
    kvq_status expected = kvq_quantize_head(&config, input, n, dim, NULL, &ref_out);
    char message[512];
    snprintf(message, sizeof message, "%s", kvq_last_error());
    kvq_backend_tensor *out = SENTINEL_TENSOR;
    kvq_status got = run->api->quantize_head(run->ctx, &config, input, n, dim, NULL, &out);
    bool ok = run_judge_error_status(run, "quantize_head", got, expected, message, &r->diag);
    if (ok && out != SENTINEL_TENSOR) {
        ok = false;
        diag_at(&r->diag, "out", -1, "*out after the failed call");
        diag_got(&r->diag, "changed");
        diag_expected(&r->diag, "untouched");
        diag_explain(&r->diag, "S13.3: a failed call leaves T **out arguments as they were.");
    }
    if (got == KVQ_OK && out != SENTINEL_TENSOR && out != NULL && run->api->tensor_free != NULL)
        run->api->tensor_free(run->ctx, out);
    free(x);
    free(other);
    return ok;
}

static bool attention_check(conform_run *run, error_check which, conform_result *r)
{
    kvq_head_config kc = plain_config(KVQ_ROLE_KEYS), vc = plain_config(KVQ_ROLE_VALUES);
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    char why[256];
    if (!caps_allow_attention(&run->caps, rope.pairing, 1, DIM, N_TOKENS, why, sizeof why) ||
        !caps_allow_bits(&run->caps, KVQ_SCHEME_UNIFORM_ASYM, 4, why, sizeof why) ||
        !(run->caps.key_modes >> KVQ_KEYS_PER_CHANNEL_ONLINE & 1u)) {
        result_skip(r, "%s", why[0] ? why : "caps.key_modes lacks online keys");
        return true;
    }
    if (!session_slot_present(run->api->tensor_upload != NULL, "tensor_upload", "ATTENTION", &r->diag) ||
        !session_slot_present(run->api->attention_decode != NULL, "attention_decode", "ATTENTION", &r->diag))
        return false;
    float keys[N_TOKENS * DIM], values[N_TOKENS * DIM], q[DIM], ref_out[DIM];
    uint32_t positions[N_TOKENS];
    for (uint32_t t = 0; t < N_TOKENS; t++) positions[t] = t;
    kvq_qtensor *kq = NULL, *vq = NULL;
    bool ok = make_inputs(keys, values, N_TOKENS, DIM) && kvq_quantize_head(&kc, keys, N_TOKENS, DIM, NULL, &kq) == KVQ_OK &&
              kvq_quantize_head(&vc, values, N_TOKENS, DIM, NULL, &vq) == KVQ_OK;
    if (!ok) {
        diag_at(&r->diag, "runner", -1, "inputs");
        diag_explain(&r->diag, "cannot make the inputs: %s", kvq_last_error());
    }
    for (uint32_t i = 0; i < DIM; i++) q[i] = 0.25f * (float)(i % 7) - 0.5f;
    uint32_t q_position = N_TOKENS;
    if (which == ERR_ATTENTION_NAN_Q) q[5] = NAN;
    if (which == ERR_ATTENTION_BAD_POSITION) q_position = 0x80000000u;
    kvq_backend_tensor *kt = NULL, *vt = NULL;
    ok = ok && session_expect_ok(run, run->api->tensor_upload(run->ctx, kq, &kt), "tensor_upload of keys", &r->diag) &&
         session_expect_ok(run, run->api->tensor_upload(run->ctx, vq, &vt), "tensor_upload of values", &r->diag);
    float *out = guarded_alloc(sizeof q);
    if (ok && out != NULL) {
        kvq_status expected = kvq_attention_decode(kq, vq, positions, &rope, q, 1, q_position, ref_out);
        char message[512];
        snprintf(message, sizeof message, "%s", kvq_last_error());
        kvq_status got = run->api->attention_decode(run->ctx, kt, vt, positions, &rope, q, 1, q_position, out);
        ok = run_judge_error_status(run, "attention_decode", got, expected, message, &r->diag);
        if (ok && !guarded_untouched(out, sizeof q)) {
            ok = false;
            diag_at(&r->diag, "out", -1, "output buffer after the failed call");
            diag_got(&r->diag, "written");
            diag_expected(&r->diag, "untouched");
            diag_explain(&r->diag, "S13.3: a failed call writes no output.");
        }
    }
    if (kt != NULL) run->api->tensor_free(run->ctx, kt);
    if (vt != NULL) run->api->tensor_free(run->ctx, vt);
    guarded_free(out);
    kvq_qtensor_free(kq);
    kvq_qtensor_free(vq);
    return ok;
}

/* The backend cache's contents against the reference cache's (class E). */
static bool same_cache(conform_run *run, kvq_backend_cache *bc, const kvq_cache *ref, const float *keys,
                       const float *values, conform_result *r)
{
    const kvq_backend_api *api = run->api;
    if (api->tensor_info == NULL || api->tensor_read == NULL) return true;
    const kvq_backend_tensor *kv = NULL, *vv = NULL;
    kvq_qtensor *k = NULL, *v = NULL;
    qt_labels kl, vl;
    qt_labels_for(&kl, "cache_k");
    qt_labels_for(&vl, "cache_v");
    qt_judgement j;
    bool ok = session_expect_ok(run, api->cache_view(run->ctx, bc, &kv, &vv), "cache_view", &r->diag) &&
              session_read_tensor(run, kv, "the cache's keys", &k, &r->diag) &&
              session_read_tensor(run, vv, "the cache's values", &v, &r->diag) &&
              judge_qtensor(&kl, kvq_cache_keys(ref), k, keys, &j, &r->diag) &&
              judge_qtensor(&vl, kvq_cache_values(ref), v, values, &j, &r->diag);
    if (!ok) diag_explain(&r->diag, "S15.2: a failed append leaves the cache unchanged.");
    kvq_qtensor_free(k);
    kvq_qtensor_free(v);
    return ok;
}

static bool cache_check(conform_run *run, error_check which, conform_result *r)
{
    const kvq_backend_api *api = run->api;
    kvq_head_config kc = plain_config(KVQ_ROLE_KEYS), vc = plain_config(KVQ_ROLE_VALUES);
    char why[256];
    if (!caps_allow_op(&run->caps, KVQ_BACKEND_OP_CACHE, why, sizeof why) ||
        !caps_allow_config(&run->caps, &kc, N_TOKENS, DIM, why, sizeof why) ||
        !caps_allow_config(&run->caps, &vc, N_TOKENS, DIM, why, sizeof why)) {
        result_skip(r, "%s", why);
        return true;
    }
    if (!session_slot_present(api->cache_create != NULL, "cache_create", "CACHE", &r->diag) ||
        !session_slot_present(api->cache_append != NULL, "cache_append", "CACHE", &r->diag) ||
        !session_slot_present(api->cache_view != NULL, "cache_view", "CACHE", &r->diag) ||
        !session_slot_present(api->cache_free != NULL, "cache_free", "CACHE", &r->diag))
        return false;
    float keys[N_TOKENS * DIM], values[N_TOKENS * DIM], bad[N_TOKENS * DIM];
    kvq_cache *ref = NULL;
    kvq_backend_cache *bc = NULL;
    bool ok = make_inputs(keys, values, N_TOKENS, DIM) && kvq_cache_create(&kc, &vc, DIM, &ref) == KVQ_OK;
    if (!ok) {
        diag_at(&r->diag, "runner", -1, "inputs");
        diag_explain(&r->diag, "cannot make the reference cache: %s", kvq_last_error());
    }
    ok = ok && session_expect_ok(run, api->cache_create(run->ctx, &kc, &vc, DIM, &bc), "cache_create", &r->diag);
    uint32_t first = which == ERR_CACHE_ZERO_APPEND ? 0 : 6;
    if (ok && first > 0) {
        ok = session_expect_ok(run, api->cache_append(run->ctx, bc, keys, values, NULL, NULL, first), "cache_append",
                               &r->diag) &&
             kvq_cache_append(ref, keys, values, NULL, NULL, first) == KVQ_OK;
    }
    if (ok) {
        uint32_t n_new = which == ERR_CACHE_ZERO_APPEND ? 0 : 2;
        memcpy(bad, values + first * DIM, (size_t)2 * DIM * sizeof *bad);
        if (which == ERR_CACHE_NAN_VALUE) bad[1 * DIM + 2] = NAN;
        const float *k = keys + first * DIM;
        kvq_status expected = kvq_cache_append(ref, k, bad, NULL, NULL, n_new);
        char message[512];
        snprintf(message, sizeof message, "%s", kvq_last_error());
        kvq_status got = api->cache_append(run->ctx, bc, k, bad, NULL, NULL, n_new);
        ok = run_judge_error_status(run, "cache_append", got, expected, message, &r->diag);
    }
    if (ok && which == ERR_CACHE_ZERO_APPEND) {
        /* the failed append must not have changed the (empty) cache: a valid one now gives the reference state */
        ok = session_expect_ok(run, api->cache_append(run->ctx, bc, keys, values, NULL, NULL, 6), "cache_append",
                               &r->diag) &&
             kvq_cache_append(ref, keys, values, NULL, NULL, 6) == KVQ_OK;
    }
    ok = ok && same_cache(run, bc, ref, keys, values, r);
    if (bc != NULL) api->cache_free(run->ctx, bc);
    kvq_cache_free(ref);
    return ok;
}

void run_abi_error(conform_run *run, int which, conform_result *r)
{
    if (which < 0 || which >= ERR_COUNT) return;
    snprintf(r->what, sizeof r->what, "%s", checks[which].what);
    bool ok;
    if (which <= ERR_QUANTIZE_BAD_ENUM)
        ok = quantize_check(run, (error_check)which, r);
    else if (which <= ERR_ATTENTION_BAD_POSITION)
        ok = attention_check(run, (error_check)which, r);
    else
        ok = cache_check(run, (error_check)which, r);
    if (!ok) result_fail(r);
}
