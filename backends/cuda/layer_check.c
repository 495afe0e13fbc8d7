/*
 * layer_check.c - kvq_cuda_layer_check: the CUDA device API (kvq/kvq_cuda.h)
 * against the validation ABI (kvq/kvq_backend.h, backend "cuda"), on a GPU.
 *
 *   kvq_cuda_layer_check [--short]   exit 0 when everything matches, 1 when
 *                                    anything differs, 77 without a CUDA device
 *
 * For several layers (MHA and GQA; 2, 4 and 8 bits and NUQ; online and
 * calibrated keys; outliers, sinks, budgets, windows; fp16, bf16 and fp32
 * inputs; both precision profiles) a batch of two sequences gets a prompt in
 * prefill chunks and then decode steps, through the device API (device
 * inputs, one call for every sequence and head) and through the ABI (one
 * cache per sequence and head, fed the same values as fp32 from the host).
 * After the prompt and after every decode step:
 *   - every head slice the device API holds (kvq_cuda_layer_read) equals the
 *     ABI cache's view (tensor_info + tensor_read) field by field (S4.4);
 *   - kvq_cuda_layer_attend's outputs equal, bit for bit, those of the ABI's
 *     attention_decode_batch over the same tensors, positions and profile.
 * Then the deferred and checked error paths: a NaN key is reported by
 * kvq_cuda_layer_status naming its sequence, head, token and channel, and a
 * KVQ_CUDA_CHECKED append of it fails and changes nothing.
 */
#include "kvq/kvq.h"
#include "kvq/kvq_backend.h"
#include "kvq/kvq_cuda.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        checks++;                                                                                                      \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            if (failures <= 40) {                                                                                      \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                            \
                printf(__VA_ARGS__);                                                                                   \
                printf("\n");                                                                                          \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

#define CUDA_OK(call)                                                                                                  \
    do {                                                                                                               \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess) {                                                                                       \
            printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));                         \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

enum { SEQS = 2 };

/* One layer to check. */
typedef struct layer_case {
    const char *name;
    uint32_t head_dim, n_kv, n_q;
    kvq_key_mode key_mode;
    kvq_scheme key_scheme;
    uint32_t key_bits, value_bits;
    uint32_t key_group, value_group; /* online keys' block; values' group (0: head_dim) */
    uint32_t outlier_ppm;
    kvq_beyond_range beyond;
    kvq_policy_rule rule;
    uint32_t budget_ppm, n_sinks, window;
    kvq_rope_pairing pairing;
    kvq_attention_profile profile;
    kvq_cuda_dtype kv_dtype, q_dtype, out_dtype;
    bool tokens_outer; /* inputs as [seq][token][head][d] (transformers' layout) instead of [seq][head][token][d] */
} layer_case;

static const layer_case cases[] = {
    {"mha-int4-online-fp16", 128, 4, 4, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_UNIFORM_ASYM, 4, 4, 32, 0, 0,
     KVQ_BEYOND_RANGE_OUTLIERS, KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 0, KVQ_ROPE_HALF, KVQ_PROFILE_FP16, KVQ_CUDA_FP16,
     KVQ_CUDA_FP16, KVQ_CUDA_FP32, false},
    {"gqa-int2-window-fp16", 128, 2, 8, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_UNIFORM_ASYM, 2, 2, 16, 0, 0,
     KVQ_BEYOND_RANGE_OUTLIERS, KVQ_POLICY_TEXT_CENTRIC, 100000, 2, 20, KVQ_ROPE_HALF, KVQ_PROFILE_FP16, KVQ_CUDA_FP16,
     KVQ_CUDA_FP16, KVQ_CUDA_FP16, true},
    {"gqa-int8-outliers-fp32", 64, 2, 4, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_UNIFORM_SYM, 8, 8, 16, 32, 20000,
     KVQ_BEYOND_RANGE_OUTLIERS, KVQ_POLICY_IMAGE_CENTRIC, 250000, 3, 8, KVQ_ROPE_HALF, KVQ_PROFILE_FP32,
     KVQ_CUDA_FP32, KVQ_CUDA_FP32, KVQ_CUDA_FP32, false},
    {"gqa-int4-outliers-fp16", 128, 2, 8, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_UNIFORM_ASYM, 4, 4, 32, 0, 10000,
     KVQ_BEYOND_RANGE_OUTLIERS, KVQ_POLICY_QUANTIZE_ALL, 0, 1, 0, KVQ_ROPE_HALF, KVQ_PROFILE_FP16, KVQ_CUDA_FP16,
     KVQ_CUDA_FP16, KVQ_CUDA_FP32, true},
    {"mha-int4-calibrated-clamp-bf16", 128, 2, 2, KVQ_KEYS_PER_CHANNEL_CALIBRATED, KVQ_SCHEME_UNIFORM_ASYM, 4, 4, 0, 0,
     0, KVQ_BEYOND_RANGE_CLAMP, KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 0, KVQ_ROPE_HALF, KVQ_PROFILE_FP16, KVQ_CUDA_BF16,
     KVQ_CUDA_BF16, KVQ_CUDA_BF16, false},
    {"gqa-nuq3-calibrated-outliers", 128, 2, 4, KVQ_KEYS_PER_CHANNEL_CALIBRATED, KVQ_SCHEME_NUQ, 3, 4, 0, 0, 0,
     KVQ_BEYOND_RANGE_OUTLIERS, KVQ_POLICY_TEXT_CENTRIC, 100000, 1, 4, KVQ_ROPE_HALF, KVQ_PROFILE_FP32, KVQ_CUDA_FP16,
     KVQ_CUDA_FP16, KVQ_CUDA_FP32, false},
    {"mha-int4-norope-d256", 256, 2, 2, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_UNIFORM_ASYM, 4, 4, 64, 0, 0,
     KVQ_BEYOND_RANGE_OUTLIERS, KVQ_POLICY_QUANTIZE_ALL, 0, 0, 0, KVQ_ROPE_NONE, KVQ_PROFILE_FP16, KVQ_CUDA_FP16,
     KVQ_CUDA_FP16, KVQ_CUDA_FP32, false},
};

static kvq_rng rng;

/* ---- 16-bit and 32-bit elements ------------------------------------------------ */

static size_t elem_bytes(kvq_cuda_dtype t) { return t == KVQ_CUDA_FP32 ? 4u : 2u; }

static float bf16_to_fp32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* bf16 nearest, ties to even (finite inputs). */
static uint16_t bf16_from_fp32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

/* x rounded to dtype, then back: the value both paths see. */
static float representable(kvq_cuda_dtype t, float x)
{
    if (t == KVQ_CUDA_FP16) return kvq_fp32_from_fp16(kvq_fp16_from_fp32(x));
    if (t == KVQ_CUDA_BF16) return bf16_to_fp32(bf16_from_fp32(x));
    return x;
}

static void put(kvq_cuda_dtype t, void *base, size_t i, float x)
{
    if (t == KVQ_CUDA_FP32)
        ((float *)base)[i] = x;
    else
        ((uint16_t *)base)[i] = t == KVQ_CUDA_FP16 ? kvq_fp16_from_fp32(x) : bf16_from_fp32(x);
}

static float get(kvq_cuda_dtype t, const void *base, size_t i)
{
    if (t == KVQ_CUDA_FP32) return ((const float *)base)[i];
    const uint16_t b = ((const uint16_t *)base)[i];
    return t == KVQ_CUDA_FP16 ? kvq_fp32_from_fp16(b) : bf16_to_fp32(b);
}

/* ---- S4.4 field by field ---------------------------------------------------------- */

static bool same_qtensor(const kvq_qtensor *a, const kvq_qtensor *b, const char *what)
{
#define SAME(field)                                                                                                    \
    if (a->field != b->field) {                                                                                        \
        CHECK(false, "%s: " #field " = %llu, the ABI's %llu", what, (unsigned long long)a->field,                       \
              (unsigned long long)b->field);                                                                           \
        return false;                                                                                                  \
    }
    SAME(role)
    SAME(key_mode)
    SAME(scheme)
    SAME(bits)
    SAME(n_tokens)
    SAME(head_dim)
    SAME(group_size)
    SAME(n_fp16_rows)
    SAME(row_bytes)
    SAME(n_params)
    SAME(n_outliers)
#undef SAME
    const uint32_t n = a->n_tokens, d = a->head_dim;
    const size_t ptrs = a->role == KVQ_ROLE_KEYS ? d + 1u : n + 1u;
    struct {
        const char *name;
        const void *x, *y;
        size_t bytes;
    } arrays[] = {
        {"codebook", &a->codebook, &b->codebook, sizeof a->codebook},
        {"precision", a->precision, b->precision, n},
        {"fp16_slot", a->fp16_slot, b->fp16_slot, (size_t)n * 4u},
        {"fp16_rows", a->fp16_rows, b->fp16_rows, (size_t)a->n_fp16_rows * d * 2u},
        {"codes", a->codes, b->codes, (size_t)n * a->row_bytes},
        {"params", a->params, b->params, (size_t)a->n_params * 4u},
        {"outlier_ptr", a->outlier_ptr, b->outlier_ptr, ptrs * 4u},
        {"outlier_index", a->outlier_index, b->outlier_index, (size_t)a->n_outliers * 4u},
        {"outlier_value", a->outlier_value, b->outlier_value, (size_t)a->n_outliers * 2u},
    };
    for (size_t k = 0; k < sizeof arrays / sizeof arrays[0]; k++) {
        if (arrays[k].bytes == 0 || memcmp(arrays[k].x, arrays[k].y, arrays[k].bytes) == 0) continue;
        const unsigned char *x = arrays[k].x, *y = arrays[k].y;
        size_t at = 0;
        while (x[at] == y[at]) at++;
        CHECK(false, "%s: %s differs from byte %zu on (of %zu)", what, arrays[k].name, at, arrays[k].bytes);
        return false;
    }
    return true;
}

/* ---- one layer ---------------------------------------------------------------------- */

typedef struct run {
    const layer_case *lc;
    kvq_head_config keys, values;
    kvq_codebook codebook;
    kvq_channel_range *ranges;     /* [n_kv][d] */
    uint32_t max_tokens, prompt[SEQS];
    float *k, *v;                  /* [seq][head][token][d], values as the dtype holds them */
    uint8_t *modality;             /* [seq][token] */
    /* the ABI */
    const kvq_backend_api *api;
    kvq_backend_context *ctx;
    kvq_backend_cache *cache[SEQS][8];
    /* the device API */
    kvq_cuda_layer *layer;
    void *memory;
    size_t cache_bytes, total_bytes;
    void *other, *host_copy;       /* kvq_cuda_layer_move: the next memory, and the host copy between them */
    void *work;                    /* every other case: a work space of its own allocation, the memories
                                      cache_bytes only (kvq_cuda_layer_set_work_space); else NULL */
    size_t memory_bytes, work_bytes; /* of memory and other; of work */
    int moves;
    cudaStream_t stream;
    void *d_in[2];                 /* keys, values of one call */
    void *d_q, *d_out;
    int identical_slices, identical_calls;
} run;

static size_t kv_at(const run *r, uint32_t s, uint32_t h, uint32_t t)
{
    return (((size_t)s * r->lc->n_kv + h) * r->max_tokens + t) * r->lc->head_dim;
}

static void make_configs(run *r)
{
    const layer_case *lc = r->lc;
    kvq_token_policy policy = {lc->rule, lc->budget_ppm, lc->n_sinks, lc->window};
    memset(&r->keys, 0, sizeof r->keys);
    r->keys.role = KVQ_ROLE_KEYS;
    r->keys.key_mode = lc->key_mode;
    r->keys.quantizer.scheme = lc->key_scheme;
    r->keys.quantizer.bits = lc->key_bits;
    if (lc->key_scheme == KVQ_SCHEME_NUQ) {
        kvq_codebook_normalfloat(lc->key_bits, &r->codebook);
        r->keys.quantizer.codebook = &r->codebook;
    }
    r->keys.group_size = lc->key_group;
    r->keys.outlier_ppm = lc->outlier_ppm;
    r->keys.beyond_range = lc->beyond;
    r->keys.policy = policy;
    r->values = r->keys;
    r->values.role = KVQ_ROLE_VALUES;
    r->values.key_mode = 0;
    r->values.quantizer = (kvq_quantizer){lc->key_scheme == KVQ_SCHEME_NUQ ? KVQ_SCHEME_UNIFORM_ASYM : lc->key_scheme,
                                          lc->value_bits, NULL};
    r->values.group_size = lc->value_group;
    r->values.beyond_range = KVQ_BEYOND_RANGE_OUTLIERS;
    const uint32_t d = lc->head_dim;
    r->ranges = malloc((size_t)lc->n_kv * d * sizeof *r->ranges);
    for (uint32_t i = 0; i < lc->n_kv * d; i++) {
        /* narrower than the data on some channels: outliers (or clamping) happen */
        float w = (i % 5 == 0) ? 1.0f : 3.0f;
        r->ranges[i] = (kvq_channel_range){-w, w * 1.25f};
    }
}

/* Keys with a few large channels (outliers), values plainer, text then image then text tokens. */
static void make_inputs(run *r)
{
    const layer_case *lc = r->lc;
    const size_t n = (size_t)SEQS * lc->n_kv * r->max_tokens * lc->head_dim;
    r->k = malloc(n * sizeof *r->k);
    r->v = malloc(n * sizeof *r->v);
    r->modality = malloc((size_t)SEQS * r->max_tokens);
    for (size_t i = 0; i < n; i++) {
        const uint32_t c = (uint32_t)(i % lc->head_dim);
        r->k[i] = representable(lc->kv_dtype, kvq_rng_normal(&rng) * (c % 17 == 3 ? 6.0f : 1.5f));
        r->v[i] = representable(lc->kv_dtype, kvq_rng_normal(&rng));
    }
    for (uint32_t s = 0; s < SEQS; s++)
        for (uint32_t t = 0; t < r->max_tokens; t++)
            r->modality[(size_t)s * r->max_tokens + t] =
                (uint8_t)(t < 12 || (t > 200 && t < 220) ? KVQ_MODALITY_TEXT : KVQ_MODALITY_IMAGE);
}

static kvq_head_config head_keys(const run *r, uint32_t h)
{
    kvq_head_config k = r->keys;
    if (k.key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED) {
        k.channel_range = r->ranges + (size_t)h * r->lc->head_dim;
        k.n_channel_range = r->lc->head_dim;
    }
    return k;
}

static bool open_abi(run *r)
{
    char message[512] = "";
    if (kvq_backend_find("cuda", &r->api, message, sizeof message) != KVQ_OK) {
        printf("no cuda backend in this build: %s\n", message);
        return false;
    }
    kvq_backend_options options = {sizeof options, -1, -1, (int32_t)r->lc->profile};
    if (kvq_backend_open(r->api, &options, &r->ctx, message, sizeof message) != KVQ_OK) {
        printf("cannot open the cuda backend: %s\n", message);
        return false;
    }
    for (uint32_t s = 0; s < SEQS; s++)
        for (uint32_t h = 0; h < r->lc->n_kv; h++) {
            kvq_head_config k = head_keys(r, h);
            kvq_status st = r->api->cache_create(r->ctx, &k, &r->values, r->lc->head_dim, &r->cache[s][h]);
            CHECK(st == KVQ_OK, "%s: ABI cache_create: %s", r->lc->name, r->api->last_error(r->ctx));
        }
    return true;
}

static void create_layer(run *r, uint32_t max_append)
{
    const layer_case *lc = r->lc;
    kvq_cuda_layer_config config = {
        .struct_size = sizeof config,
        .head_dim = lc->head_dim,
        .n_kv_heads = lc->n_kv,
        .n_q_heads = lc->n_q,
        .max_seqs = SEQS,
        .max_tokens = r->max_tokens,
        .max_append_tokens = max_append,
        .kv_dtype = lc->kv_dtype,
        .key_config = &r->keys,
        .value_config = &r->values,
        .key_ranges = lc->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED ? r->ranges : NULL,
        .n_key_ranges = lc->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED ? lc->n_kv * lc->head_dim : 0u,
        .key_outliers_per_token = lc->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED && lc->beyond == KVQ_BEYOND_RANGE_OUTLIERS
                                      ? lc->head_dim / 2u
                                      : 0u,
        .rope = {lc->pairing, 10000.0f},
        .attention_profile = (int32_t)lc->profile,
    };
    kvq_cuda_layer_sizes sizes = {.struct_size = sizeof sizes};
    kvq_status st = kvq_cuda_layer_size(&config, &sizes);
    CHECK(st == KVQ_OK, "%s: kvq_cuda_layer_size: %s", lc->name, kvq_cuda_last_error());
    /* Every other case gives its layer a work space apart from the cache, as layers that share
     * one are made: the same bits are expected either way. */
    static unsigned opened;
    const bool shared_work = opened++ % 2u == 1u;
    r->memory_bytes = shared_work ? sizes.cache_bytes : sizes.total_bytes;
    CUDA_OK(cudaMalloc(&r->memory, r->memory_bytes));
    CUDA_OK(cudaMalloc(&r->other, r->memory_bytes));
    r->work_bytes = shared_work ? sizes.scratch_bytes : 0u;
    if (shared_work) CUDA_OK(cudaMalloc(&r->work, r->work_bytes));
    CUDA_OK(cudaMallocHost(&r->host_copy, sizes.cache_bytes));
    r->cache_bytes = sizes.cache_bytes;
    r->total_bytes = sizes.total_bytes;
    st = kvq_cuda_layer_create(&config, r->memory, r->memory_bytes, (kvq_cuda_stream)r->stream, &r->layer);
    CHECK(st == KVQ_OK, "%s: kvq_cuda_layer_create: %s", lc->name, kvq_cuda_last_error());
    if (shared_work) {
        st = kvq_cuda_layer_set_work_space(r->layer, r->work, sizes.scratch_bytes);
        CHECK(st == KVQ_OK, "%s: kvq_cuda_layer_set_work_space: %s", lc->name, kvq_cuda_last_error());
    }
    printf("  %s: %zu bytes of device memory (cache %zu, %zu per sequence; scratch %zu), %zu of host\n", lc->name,
           sizes.total_bytes, sizes.cache_bytes, sizes.sequence_bytes, sizes.scratch_bytes, sizes.host_bytes);
    const size_t big = (size_t)SEQS * lc->n_kv * max_append * lc->head_dim * 4u;
    CUDA_OK(cudaMalloc(&r->d_in[0], big));
    CUDA_OK(cudaMalloc(&r->d_in[1], big));
    CUDA_OK(cudaMalloc(&r->d_q, (size_t)SEQS * lc->n_q * lc->head_dim * 4u));
    CUDA_OK(cudaMalloc(&r->d_out, (size_t)SEQS * lc->n_q * lc->head_dim * 4u));
}

/* The ABI's half of an append: count[s] tokens from first[s], per sequence and head, as fp32. */
static void abi_append(run *r, const uint32_t *first, const uint32_t *count)
{
    for (uint32_t s = 0; s < SEQS; s++)
        for (uint32_t h = 0; count[s] > 0 && h < r->lc->n_kv; h++) {
            kvq_status st = r->api->cache_append(r->ctx, r->cache[s][h], r->k + kv_at(r, s, h, first[s]),
                                                 r->v + kv_at(r, s, h, first[s]),
                                                 r->modality + (size_t)s * r->max_tokens + first[s], NULL, count[s]);
            CHECK(st == KVQ_OK, "%s: ABI cache_append: %s", r->lc->name, r->api->last_error(r->ctx));
        }
}

/* The device API's half: one call for every sequence with tokens, from device rows laid out as
 * [i][h][t][d], or [i][t][h][d] (tokens_outer). */
static kvq_status device_append(run *r, const uint32_t *first, const uint32_t *count, uint32_t flags)
{
    const layer_case *lc = r->lc;
    const uint32_t d = lc->head_dim, H = lc->n_kv;
    uint32_t most = 0, ids[SEQS], n_new[SEQS], n_seqs = 0;
    for (uint32_t s = 0; s < SEQS; s++) most = count[s] > most ? count[s] : most;
    const int64_t token_stride = lc->tokens_outer ? (int64_t)H * d : d;
    const int64_t head_stride = lc->tokens_outer ? d : (int64_t)most * d;
    const int64_t seq_stride = (int64_t)H * most * d;
    const size_t es = elem_bytes(lc->kv_dtype), n = (size_t)SEQS * H * most * d;
    unsigned char *host[2] = {calloc(n, es), calloc(n, es)};
    const uint8_t *modality[SEQS];
    for (uint32_t s = 0; s < SEQS; s++) {
        if (count[s] == 0) continue;
        const uint32_t i = n_seqs++;
        ids[i] = s;
        n_new[i] = count[s];
        modality[i] = r->modality + (size_t)s * r->max_tokens + first[s];
        for (uint32_t h = 0; h < H; h++)
            for (uint32_t t = 0; t < count[s]; t++)
                for (uint32_t c = 0; c < d; c++) {
                    const size_t to = (size_t)(i * seq_stride + h * head_stride + t * token_stride) + c;
                    put(lc->kv_dtype, host[0], to, r->k[kv_at(r, s, h, first[s] + t) + c]);
                    put(lc->kv_dtype, host[1], to, r->v[kv_at(r, s, h, first[s] + t) + c]);
                }
    }
    CUDA_OK(cudaMemcpy(r->d_in[0], host[0], n * es, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(r->d_in[1], host[1], n * es, cudaMemcpyHostToDevice));
    kvq_cuda_append_args a = {
        .struct_size = sizeof a,
        .flags = flags,
        .n_seqs = n_seqs,
        .seq_ids = ids,
        .n_new = n_new,
        .modality = modality,
        .keys = {r->d_in[0], lc->kv_dtype, seq_stride, head_stride, token_stride},
        .values = {r->d_in[1], lc->kv_dtype, seq_stride, head_stride, token_stride},
    };
    kvq_status st = kvq_cuda_layer_append(r->layer, &a, (kvq_cuda_stream)r->stream);
    free(host[0]);
    free(host[1]);
    return st;
}

static void append(run *r, const uint32_t *first, const uint32_t *count)
{
    abi_append(r, first, count);
    kvq_status st = device_append(r, first, count, 0);
    CHECK(st == KVQ_OK, "%s: kvq_cuda_layer_append: %s", r->lc->name, kvq_cuda_last_error());
}

/* Every head slice, device API against the ABI. */
static void compare_slices(run *r, const char *when)
{
    for (uint32_t s = 0; s < SEQS; s++)
        for (uint32_t h = 0; h < r->lc->n_kv; h++) {
            const kvq_backend_tensor *views[2];
            kvq_status st = r->api->cache_view(r->ctx, r->cache[s][h], &views[0], &views[1]);
            CHECK(st == KVQ_OK, "%s: ABI cache_view: %s", r->lc->name, r->api->last_error(r->ctx));
            if (st != KVQ_OK) continue;
            for (int role = 0; role < 2; role++) {
                kvq_qtensor header, *abi = NULL, *mine = NULL;
                st = r->api->tensor_info(r->ctx, views[role], &header);
                if (st == KVQ_OK) st = kvq_qtensor_alloc(&header, &abi);
                if (st == KVQ_OK) st = r->api->tensor_read(r->ctx, views[role], abi);
                CHECK(st == KVQ_OK, "%s: ABI tensor_read: %s", r->lc->name, r->api->last_error(r->ctx));
                st = kvq_cuda_layer_read(r->layer, s, h, (kvq_role)role, (kvq_cuda_stream)r->stream, &mine);
                CHECK(st == KVQ_OK, "%s: kvq_cuda_layer_read: %s", r->lc->name, kvq_cuda_last_error());
                char what[160];
                snprintf(what, sizeof what, "%s %s, sequence %u, head %u, %s", r->lc->name, when, s, h,
                         role == 0 ? "keys" : "values");
                if (abi != NULL && mine != NULL && same_qtensor(mine, abi, what)) r->identical_slices++;
                kvq_qtensor_free(abi);
                kvq_qtensor_free(mine);
            }
        }
}

/* One decode attention for every sequence, device API against the ABI. */
static void compare_attention(run *r, const char *when)
{
    const layer_case *lc = r->lc;
    const uint32_t d = lc->head_dim, H = lc->n_kv, g = lc->n_q / lc->n_kv, nq = lc->n_q;
    const size_t rows = (size_t)SEQS * nq * d;
    float *q = malloc(rows * sizeof *q), *abi_out = malloc(rows * sizeof *abi_out);
    unsigned char *q_dev = malloc(rows * 4u), *mine = malloc(rows * 4u);
    for (size_t i = 0; i < rows; i++) {
        q[i] = representable(lc->q_dtype, kvq_rng_normal(&rng) * 2.0f);
        put(lc->q_dtype, q_dev, i, q[i]);
    }
    const kvq_backend_tensor *keys[SEQS * 8], *values[SEQS * 8];
    const uint32_t *positions[SEQS * 8];
    uint32_t q_positions[SEQS * 8], lengths[SEQS], ids[SEQS];
    uint32_t *pos = malloc((size_t)r->max_tokens * 4u);
    for (uint32_t t = 0; t < r->max_tokens; t++) pos[t] = t;
    for (uint32_t s = 0; s < SEQS; s++) {
        ids[s] = s;
        kvq_cuda_layer_length(r->layer, s, &lengths[s]);
        for (uint32_t h = 0; h < H; h++) {
            r->api->cache_view(r->ctx, r->cache[s][h], &keys[s * H + h], &values[s * H + h]);
            positions[s * H + h] = pos;
            q_positions[s * H + h] = lengths[s] - 1u;
        }
    }
    kvq_rope rope = {lc->pairing, 10000.0f};
    kvq_status st = r->api->attention_decode_batch(r->ctx, SEQS * H, keys, values, positions, &rope, q, g, q_positions,
                                                   abi_out);
    CHECK(st == KVQ_OK, "%s: ABI attention_decode_batch: %s", lc->name, r->api->last_error(r->ctx));
    CUDA_OK(cudaMemcpy(r->d_q, q_dev, rows * elem_bytes(lc->q_dtype), cudaMemcpyHostToDevice));
    kvq_cuda_attend_args a = {
        .struct_size = sizeof a,
        .n_seqs = SEQS,
        .seq_ids = ids,
        .q = {r->d_q, lc->q_dtype, (int64_t)nq * d, d, 0},
        .out = {r->d_out, lc->out_dtype, (int64_t)nq * d, d},
    };
    st = kvq_cuda_layer_attend(r->layer, &a, (kvq_cuda_stream)r->stream);
    CHECK(st == KVQ_OK, "%s: kvq_cuda_layer_attend: %s", lc->name, kvq_cuda_last_error());
    CUDA_OK(cudaStreamSynchronize(r->stream));
    CUDA_OK(cudaMemcpy(mine, r->d_out, rows * elem_bytes(lc->out_dtype), cudaMemcpyDeviceToHost));
    size_t differ = 0, first = 0;
    for (size_t i = 0; i < rows; i++) {
        /* the ABI's fp32 result in the output's type: rounding once is what the device API does */
        float want = representable(lc->out_dtype, abi_out[i]), got = get(lc->out_dtype, mine, i);
        if (memcmp(&want, &got, 4) != 0 && differ++ == 0) first = i;
    }
    CHECK(differ == 0, "%s %s: attention differs in %zu of %zu outputs, first at %zu (%.9g, the ABI's %.9g)", lc->name,
          when, differ, rows, first, (double)get(lc->out_dtype, mine, first), (double)abi_out[first]);
    if (differ == 0) r->identical_calls++;
    free(q);
    free(abi_out);
    free(q_dev);
    free(mine);
    free(pos);
}

static void close_run(run *r)
{
    for (uint32_t s = 0; s < SEQS; s++)
        for (uint32_t h = 0; h < r->lc->n_kv; h++)
            if (r->cache[s][h] != NULL) r->api->cache_free(r->ctx, r->cache[s][h]);
    if (r->ctx != NULL) r->api->close(r->ctx);
    kvq_cuda_layer_destroy(r->layer);
    cudaFree(r->memory);
    cudaFree(r->other);
    cudaFree(r->work);
    cudaFreeHost(r->host_copy);
    for (int k = 0; k < 2; k++) cudaFree(r->d_in[k]);
    cudaFree(r->d_q);
    cudaFree(r->d_out);
    free(r->k);
    free(r->v);
    free(r->modality);
    free(r->ranges);
}

/* The layer's state to other memory through host memory, as CPU-GPU offload moves it
 * (kvq_cuda_layer_move): its first cache_bytes out to the host, in to the next buffer, the old
 * memory overwritten so that nothing can still read it. */
static void move_layer(run *r)
{
    CUDA_OK(cudaMemcpyAsync(r->host_copy, r->memory, r->cache_bytes, cudaMemcpyDeviceToHost, r->stream));
    CUDA_OK(cudaMemcpyAsync(r->other, r->host_copy, r->cache_bytes, cudaMemcpyHostToDevice, r->stream));
    kvq_status st = kvq_cuda_layer_move(r->layer, r->other, r->memory_bytes);
    CHECK(st == KVQ_OK, "%s: kvq_cuda_layer_move: %s", r->lc->name, kvq_cuda_last_error());
    CUDA_OK(cudaMemsetAsync(r->memory, 0xA5, r->memory_bytes, r->stream));
    /* a work space holds nothing between calls: overwritten too */
    if (r->work != NULL) CUDA_OK(cudaMemsetAsync(r->work, 0xA5, r->work_bytes, r->stream));
    void *old = r->memory;
    r->memory = r->other;
    r->other = old;
    r->moves++;
}

/* A prompt of 300 and one of 130 tokens in chunks, then decode steps, checked after each; every
 * third step the layer moves to other memory first (through the host). */
static bool check_case(const layer_case *lc, uint32_t steps)
{
    run r;
    memset(&r, 0, sizeof r);
    r.lc = lc;
    r.prompt[0] = 300;
    r.prompt[1] = 130;
    r.max_tokens = r.prompt[0] + steps + 4u;
    kvq_rng_seed(&rng, 0x5eed0000u + (uint64_t)(lc - cases));
    make_configs(&r);
    make_inputs(&r);
    CUDA_OK(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));
    if (!open_abi(&r)) {
        close_run(&r);
        return false;
    }
    create_layer(&r, 260);
    if (r.layer == NULL) {
        close_run(&r);
        return true;
    }
    /* prefill: 128 + 130 (one call, both sequences), 128, 44 */
    const uint32_t chunks[3][SEQS] = {{128, 130}, {128, 0}, {44, 0}};
    uint32_t at[SEQS] = {0, 0};
    for (int k = 0; k < 3; k++) {
        append(&r, at, chunks[k]);
        for (uint32_t s = 0; s < SEQS; s++) at[s] += chunks[k][s];
    }
    compare_slices(&r, "after the prompt");
    compare_attention(&r, "after the prompt");
    const uint32_t one[SEQS] = {1, 1};
    for (uint32_t step = 0; step < steps; step++) {
        if (step % 3u == 1u) move_layer(&r);
        append(&r, at, one);
        for (uint32_t s = 0; s < SEQS; s++) at[s]++;
        char when[48];
        snprintf(when, sizeof when, "after decode step %u", step + 1u);
        compare_attention(&r, when);
        if (step + 1u == steps || step % 4u == 0) compare_slices(&r, when);
    }
    kvq_status st = kvq_cuda_layer_status(r.layer, (kvq_cuda_stream)r.stream);
    CHECK(st == KVQ_OK, "%s: kvq_cuda_layer_status: %s", lc->name, kvq_cuda_last_error());
    printf("  %s: %d head slices and %d attention calls bit-identical to the validation ABI (the layer moved %d "
           "times through host memory)\n",
           lc->name, r.identical_slices, r.identical_calls, r.moves);
    close_run(&r);
    return true;
}

/* A NaN key: recorded and reported by kvq_cuda_layer_status (deferred), or refused by a checked append. */
static void check_errors(void)
{
    const layer_case *lc = &cases[0];
    run r;
    memset(&r, 0, sizeof r);
    r.lc = lc;
    r.max_tokens = 64;
    kvq_rng_seed(&rng, 99);
    make_configs(&r);
    make_inputs(&r);
    CUDA_OK(cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));
    if (!open_abi(&r)) {
        close_run(&r);
        return;
    }
    create_layer(&r, 16);
    if (r.layer == NULL) {
        close_run(&r);
        return;
    }
    r.k[kv_at(&r, 1, 2, 3) + 5] = NAN; /* sequence 1, head 2, token 3, channel 5 */
    const uint32_t first[SEQS] = {0, 0}, count[SEQS] = {4, 4};
    kvq_status st = device_append(&r, first, count, 0); /* enqueued: only the device sees the NaN */
    CHECK(st == KVQ_OK, "an unchecked append of a NaN: %s (%s)", kvq_status_name(st), kvq_cuda_last_error());
    st = kvq_cuda_layer_status(r.layer, (kvq_cuda_stream)r.stream);
    CHECK(st == KVQ_ERR_NONFINITE_INPUT && strstr(kvq_cuda_last_error(), "sequence 1, KV head 2, token 3, channel 5"),
          "deferred NaN: %s (%s)", kvq_status_name(st), kvq_cuda_last_error());
    st = kvq_cuda_layer_status(r.layer, (kvq_cuda_stream)r.stream);
    CHECK(st == KVQ_OK, "the deferred error is reported once: %s", kvq_cuda_last_error());
    /* checked: refused before anything changes */
    for (uint32_t s = 0; s < SEQS; s++) kvq_cuda_layer_reset(r.layer, s, (kvq_cuda_stream)r.stream);
    const uint32_t only_second[SEQS] = {0, 4};
    st = device_append(&r, first, only_second, KVQ_CUDA_CHECKED);
    uint32_t n = 99;
    kvq_cuda_layer_length(r.layer, 1, &n);
    CHECK(st == KVQ_ERR_NONFINITE_INPUT && n == 0, "checked NaN append: %s, length %u (%s)", kvq_status_name(st), n,
          kvq_cuda_last_error());
    st = kvq_cuda_layer_status(r.layer, (kvq_cuda_stream)r.stream);
    CHECK(st == KVQ_OK, "a checked call's error is not also deferred: %s", kvq_cuda_last_error());
    printf("  errors: a NaN key is reported by kvq_cuda_layer_status (\"%s\")\n", "sequence 1, KV head 2, token 3, ...");
    close_run(&r);
}

int main(int argc, char **argv)
{
    const bool short_run = argc > 1 && strcmp(argv[1], "--short") == 0;
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        printf("kvq_cuda_layer_check: no CUDA device (skipped)\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    printf("kvq_cuda_layer_check on %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
    const uint32_t steps = short_run ? 4u : 24u;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        if (!check_case(&cases[c], steps)) return 77;
    check_errors();
    printf("kvq_cuda_layer_check: %s (%d checks, %d failed)\n", failures == 0 ? "PASSED" : "FAILED", checks, failures);
    return failures == 0 ? 0 : 1;
}
