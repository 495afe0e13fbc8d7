/*
 * layer_layout.c - the device API's configuration checks and the layout of
 * the caller's memory (kvq_cuda_layer_size), in plain C so that both are
 * built and tested without CUDA (tests/test_cuda_layer.c re-derives every
 * size from S4.4 and S5).
 *
 * Per sequence slot the memory holds, for every KV head and role, the arrays
 * of the kernels' view of a head slice (kernels/cuda/kvq_cuda_kernels.cuh,
 * kvq_cuda_view: S4.4's arrays with outliers by token) sized for max_tokens
 * tokens, plus what an incremental cache (S15.3) keeps between appends: the
 * fp16 rows of temporary tokens and the inputs of the pending ones. The
 * precision and fp16 slot of a token depend only on the policy (S10) and the
 * role, never on the head, so each sequence keeps one array of each per role,
 * shared by its heads. docs/DEVICE-API.md draws the layout.
 */
#include "layer_internal.h"

#include <stdio.h>
#include <string.h>

size_t layer_dtype_bytes(kvq_cuda_dtype dtype)
{
    switch (dtype) {
    case KVQ_CUDA_FP32: return 4u;
    case KVQ_CUDA_FP16:
    case KVQ_CUDA_BF16: return 2u;
    default: return 0u;
    }
}

/* Sizes are computed in 64 bits; anything beyond SIZE_MAX (or 2^64) sets *overflow. */
typedef struct sizer {
    uint64_t at;
    bool overflow;
} sizer;

static uint64_t mul(sizer *s, uint64_t a, uint64_t b)
{
    if (a != 0 && b > UINT64_MAX / a) {
        s->overflow = true;
        return 0;
    }
    return a * b;
}

static uint64_t sum(sizer *s, uint64_t a, uint64_t b)
{
    if (b > UINT64_MAX - a) {
        s->overflow = true;
        return 0;
    }
    return a + b;
}

/* The offset of the next array of `bytes` bytes, aligned; advances past it. */
static size_t place(sizer *s, uint64_t bytes)
{
    uint64_t at = sum(s, s->at, LAYER_ALIGN - 1u) / LAYER_ALIGN * LAYER_ALIGN;
    s->at = sum(s, at, bytes);
    if (s->at > SIZE_MAX) s->overflow = true;
    return (size_t)at;
}

static uint64_t align_up(sizer *s, uint64_t x) { return sum(s, x, LAYER_ALIGN - 1u) / LAYER_ALIGN * LAYER_ALIGN; }

uint64_t layer_params_for(const layer_role *role, uint32_t head_dim, uint64_t n)
{
    const kvq_head_config *c = &role->config;
    if (c->role == KVQ_ROLE_VALUES) return n * (head_dim / (c->group_size == 0 ? head_dim : c->group_size));
    if (role->online) return (n + c->group_size - 1u) / c->group_size * head_dim;
    return head_dim; /* calibrated keys: one pair per channel (S4.2), kept once per head */
}

/* S7.1 and S4.3: the most outliers max_tokens tokens of a role can hold. */
static uint64_t most_outliers(const kvq_cuda_layer_config *cfg, const layer_role *role)
{
    const kvq_head_config *c = &role->config;
    const uint64_t n = cfg->max_tokens, d = cfg->head_dim;
    if (c->role == KVQ_ROLE_VALUES) {
        uint32_t g = c->group_size == 0 ? cfg->head_dim : c->group_size;
        return n * (d / g) * kvq_outlier_count_for(g, c->outlier_ppm).total;
    }
    if (role->online) return n / c->group_size * d * kvq_outlier_count_for(c->group_size, c->outlier_ppm).total;
    return c->beyond_range == KVQ_BEYOND_RANGE_CLAMP ? 0u : n * cfg->key_outliers_per_token;
}

/* S8, S10.3: sinks plus the budget's allowance for a full sequence (B never decreases). */
static uint32_t most_final_fp16(const kvq_cuda_layer_config *cfg, const kvq_token_policy *p)
{
    uint64_t n = cfg->max_tokens;
    uint64_t sinks = p->n_sinks < n ? p->n_sinks : n;
    uint64_t budget = p->rule == KVQ_POLICY_QUANTIZE_ALL ? 0u : (uint64_t)p->budget_ppm * n / 1000000u;
    return (uint32_t)(sinks + budget < n ? sinks + budget : n);
}

/* S10.4, S4.3: pending tokens are the recent window's, plus for online keys the block it starts in
 * (a block is quantized only when complete and out of the window); without a window, the
 * incomplete last block. */
static uint32_t most_pending(const kvq_cuda_layer_config *cfg, const layer_role *role)
{
    uint64_t w = role->config.policy.recent_window;
    uint64_t p = role->online ? w + role->block - 1u : w;
    return (uint32_t)(p < cfg->max_tokens ? p : cfg->max_tokens);
}

static void describe_role(const kvq_cuda_layer_config *cfg, const kvq_head_config *src, layer_role *role)
{
    memset(role, 0, sizeof *role);
    role->config = *src;
    role->config.channel_range = NULL;
    role->config.n_channel_range = 0;
    if (src->quantizer.scheme == KVQ_SCHEME_NUQ) role->codebook = *src->quantizer.codebook;
    role->config.quantizer.codebook = NULL; /* layer_fix_codebooks points it at role->codebook */
    const bool keys = src->role == KVQ_ROLE_KEYS;
    role->online = keys && src->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    role->calibrated = keys && !role->online;
    if (!role->calibrated) role->config.beyond_range = KVQ_BEYOND_RANGE_OUTLIERS; /* not read: S7.3 */
    role->block = role->online ? src->group_size : 1u;
    role->row_bytes = (uint32_t)kvq_packed_bytes(cfg->head_dim, src->quantizer.bits);
    role->pend_cap = most_pending(cfg, role);
    role->temp_cap = role->pend_cap;
    role->perm_cap = most_final_fp16(cfg, &src->policy);
    role->params_cap = layer_params_for(role, cfg->head_dim, cfg->max_tokens);
    role->outliers_cap = most_outliers(cfg, role);
    role->outliers = role->outliers_cap > 0;
}

void layer_fix_codebooks(layer_layout *layout)
{
    for (int r = 0; r < 2; r++)
        if (layout->role[r].config.quantizer.scheme == KVQ_SCHEME_NUQ)
            layout->role[r].config.quantizer.codebook = &layout->role[r].codebook;
}

/* One tensor (sequence, head, role): S4.4's arrays for max_tokens tokens (codes S5.1 with the
 * kernels' 16 bytes of slack, params, outliers by token), the fp16 pools, the pending inputs. */
static void place_tensor(sizer *s, const kvq_cuda_layer_config *cfg, layer_role *r)
{
    const uint64_t n = cfg->max_tokens, d = cfg->head_dim;
    const sizer start = *s;
    s->at = 0;
    r->codes = place(s, sum(s, mul(s, n, r->row_bytes), 16u));
    r->params = place(s, r->calibrated ? 0u : mul(s, r->params_cap, 4u));
    r->optr = place(s, mul(s, n + 1u, 4u));
    r->ochan = place(s, mul(s, r->outliers_cap, 2u));
    r->oval = place(s, mul(s, r->outliers_cap, 2u));
    r->rows = place(s, mul(s, mul(s, r->perm_cap, d), 2u));
    r->temp_rows = place(s, mul(s, mul(s, r->temp_cap, d), 2u));
    r->pending = place(s, mul(s, mul(s, r->pend_cap, d), layer_dtype_bytes(cfg->kv_dtype)));
    r->tensor_bytes = (size_t)align_up(s, s->at);
    s->at = start.at;
    s->overflow = s->overflow || start.overflow;
}

/* Per role: tokens of one append's (sequence, role) ranges in all, at most: the pending ones and
 * the block they start in, for every sequence, and the new ones. */
static uint64_t call_tokens(sizer *s, const kvq_cuda_layer_config *cfg, const layer_role *r)
{
    return sum(s, mul(s, cfg->max_seqs, (uint64_t)r->pend_cap + r->block - 1u), cfg->max_append_tokens);
}

static void place_scratch(sizer *s, const kvq_cuda_layer_config *cfg, layer_layout *L)
{
    const uint64_t S = cfg->max_seqs, H = cfg->n_kv_heads, d = cfg->head_dim, A = cfg->max_append_tokens;
    const uint64_t g = cfg->n_q_heads / cfg->n_kv_heads;
    /* append: descriptors and the precision/slot updates; fp32 rows of [pend, n) per job; one byte
     * per element from the first token of the block of pend, each job's span rounded to 16 */
    uint64_t updates = 0, rows = 0, bytes = 0;
    for (int r = 0; r < 2; r++) {
        const layer_role *role = &L->role[r];
        updates = sum(s, updates, sum(s, mul(s, call_tokens(s, cfg, role), 5u), mul(s, S, 32u)));
        rows = sum(s, rows, mul(s, H, sum(s, mul(s, S, role->pend_cap), A)));
        bytes = sum(s, bytes, mul(s, H, sum(s, mul(s, call_tokens(s, cfg, role), d), mul(s, S, 16u))));
    }
    const uint64_t append_upload = sum(s, mul(s, mul(s, S, H), 2u * LAYER_JOB_BYTES), updates);
    /* attend: descriptors, fp32 queries and outputs, the splits' partial results and maxima */
    L->max_splits = (cfg->max_tokens + LAYER_ATTENTION_TILE - 1u) / LAYER_ATTENTION_TILE;
    const uint64_t attend_upload = mul(s, mul(s, S, H), LAYER_SEQ_BYTES);
    const uint64_t qo = mul(s, mul(s, mul(s, S, cfg->n_q_heads), d), 4u);
    const uint64_t partial = mul(s, mul(s, mul(s, mul(s, S, H), L->max_splits), g), mul(s, d + 2u, 4u));

    sizer a = {0, false};
    L->append_upload = place(&a, append_upload);
    L->append_rows = place(&a, mul(&a, mul(&a, rows, d), 4u));
    L->append_codes = place(&a, bytes);
    L->append_marks = place(&a, bytes);
    sizer b = {0, false};
    L->attend_upload = place(&b, attend_upload);
    L->attend_q = place(&b, qo);
    L->attend_out = place(&b, qo);
    L->attend_partial = place(&b, partial);
    L->attend_flags = place(&b, 16u);
    s->overflow = s->overflow || a.overflow || b.overflow;
    /* append and attend never run at once on one layer: they share the space */
    L->scratch_bytes = (size_t)align_up(s, a.at > b.at ? a.at : b.at);
    L->plan_bytes = (size_t)align_up(s, append_upload > attend_upload ? append_upload : attend_upload);
    L->scratch = place(s, L->scratch_bytes);
}

static void compute(const kvq_cuda_layer_config *cfg, layer_layout *L, sizer *s)
{
    const uint64_t d = cfg->head_dim, H = cfg->n_kv_heads, n = cfg->max_tokens;
    L->status = place(s, 64u);
    const layer_role *keys = &L->role[KVQ_ROLE_KEYS];
    L->calibrated = place(s, 0u);
    if (keys->calibrated) {
        sizer one = {0, false};
        place(&one, mul(&one, d, 4u));
        place(&one, mul(&one, d, 8u));
        L->calibrated_stride = (size_t)align_up(&one, one.at);
        s->at = sum(s, L->calibrated, mul(s, H, L->calibrated_stride));
    }
    L->theta = place(s, mul(s, d / 2u, 8u));
    L->rope_step = place(s, mul(s, d / 2u, 16u * 2u * 8u));
    L->rope_step32 = place(s, mul(s, d / 2u, 128u * 2u * 4u));

    /* a sequence region: counters, the shared precision and slot arrays, then per head K and V */
    for (int r = 0; r < 2; r++) place_tensor(s, cfg, &L->role[r]);
    sizer q = {0, false};
    L->counters = place(&q, mul(&q, H, 2u * 4u));
    for (int r = 0; r < 2; r++) {
        L->role[r].precision = place(&q, n);
        L->role[r].slot = place(&q, mul(&q, n, 4u));
    }
    L->head_stride = L->role[0].tensor_bytes + L->role[1].tensor_bytes;
    L->tensors = place(&q, mul(&q, H, L->head_stride));
    L->seq_bytes = (size_t)align_up(&q, q.at);
    s->overflow = s->overflow || q.overflow;
    L->seqs = place(s, mul(s, cfg->max_seqs, L->seq_bytes));
    L->cache_bytes = (size_t)align_up(s, s->at);
    place_scratch(s, cfg, L);
    L->total_bytes = (size_t)align_up(s, s->at);

    /* host: the layer, the decisions of every token, the plans, and the staging slots */
    const uint64_t S = cfg->max_seqs, A = cfg->max_append_tokens;
    uint64_t plan_tokens = sum(s, call_tokens(s, cfg, &L->role[0]), call_tokens(s, cfg, &L->role[1]));
    uint64_t host = sizeof(kvq_cuda_layer) + mul(s, H, mul(s, d, sizeof(kvq_channel_range)));
    host = sum(s, host, mul(s, S, sum(s, sizeof(layer_seq), n)));
    host = sum(s, host, mul(s, S, 2u * sizeof(layer_role_plan) + 4u + 2u * sizeof(bool)));
    host = sum(s, host, sum(s, mul(s, plan_tokens, 5u), A));
    host = sum(s, host, mul(s, KVQ_CUDA_STAGING_SLOTS, L->plan_bytes));
    L->host_bytes = (size_t)host;
    if (host > SIZE_MAX) s->overflow = true;
}

/* config.<kvq's message>, for the reference's own checks. */
static kvq_status from_kvq(kvq_status status, const char *context)
{
    return layer_fail(status, "config.%s%s", kvq_last_error(), context);
}

/* S15.1 through the reference, for one KV head's configurations (kvq_cache_create checks both
 * configurations for head_dim and that their policies agree), then S4.4's counts. */
static kvq_status check_head(const kvq_cuda_layer_config *cfg, const kvq_head_config *keys, uint32_t head)
{
    char context[96] = "";
    if (keys->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED && keys->role == KVQ_ROLE_KEYS)
        snprintf(context, sizeof context, " (KV head %u: config.key_ranges[%u .. %u])", head, head * cfg->head_dim,
                 (head + 1u) * cfg->head_dim - 1u);
    kvq_cache *probe = NULL;
    kvq_status status = kvq_cache_create(keys, cfg->value_config, cfg->head_dim, &probe);
    kvq_cache_free(probe);
    if (status != KVQ_OK) return from_kvq(status, context);
    status = kvq_check_counts(keys, cfg->max_tokens, cfg->head_dim);
    if (status == KVQ_OK) status = kvq_check_counts(cfg->value_config, cfg->max_tokens, cfg->head_dim);
    return status == KVQ_OK ? KVQ_OK : from_kvq(status, context);
}

static kvq_status check_shape(const kvq_cuda_layer_config *cfg)
{
    if (cfg->n_kv_heads == 0) return layer_fail(KVQ_ERR_ZERO_SIZE, "config.n_kv_heads: 0");
    if (cfg->n_q_heads == 0) return layer_fail(KVQ_ERR_ZERO_SIZE, "config.n_q_heads: 0");
    if (cfg->n_q_heads % cfg->n_kv_heads != 0)
        return layer_fail(KVQ_ERR_SIZE_MISMATCH,
                          "config.n_q_heads = %u is not a multiple of config.n_kv_heads = %u (each KV head serves "
                          "the same number of query heads)",
                          cfg->n_q_heads, cfg->n_kv_heads);
    if (cfg->max_seqs == 0) return layer_fail(KVQ_ERR_ZERO_SIZE, "config.max_seqs: 0");
    if (cfg->max_tokens == 0) return layer_fail(KVQ_ERR_ZERO_SIZE, "config.max_tokens: 0");
    if (cfg->max_tokens > KVQ_MAX_TOKENS)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "config.max_tokens = %u exceeds the limit of %u tokens (S1.4)",
                          cfg->max_tokens, KVQ_MAX_TOKENS);
    if (cfg->max_append_tokens == 0) return layer_fail(KVQ_ERR_ZERO_SIZE, "config.max_append_tokens: 0");
    if (layer_dtype_bytes(cfg->kv_dtype) == 0)
        return layer_fail(KVQ_ERR_BAD_ENUM, "config.kv_dtype = %d is not a kvq_cuda_dtype", (int)cfg->kv_dtype);
    return KVQ_OK;
}

/* Calibrated keys (S4.2, S7.3): the ranges array must be as long as the layer says before the
 * reference reads it; the room for outliers after the reference's checks. */
static kvq_status check_key_ranges(const kvq_cuda_layer_config *cfg)
{
    const uint64_t want = (uint64_t)cfg->n_kv_heads * cfg->head_dim;
    if (cfg->key_ranges != NULL && cfg->n_key_ranges != want)
        return layer_fail(KVQ_ERR_SIZE_MISMATCH,
                          "config.n_key_ranges = %u, but calibrated keys need n_kv_heads * head_dim = %llu ranges",
                          cfg->n_key_ranges, (unsigned long long)want);
    return KVQ_OK;
}

static kvq_status check_key_room(const kvq_cuda_layer_config *cfg)
{
    if (cfg->key_config->beyond_range == KVQ_BEYOND_RANGE_OUTLIERS &&
        (cfg->key_outliers_per_token == 0 || cfg->key_outliers_per_token > cfg->head_dim))
        return layer_fail(KVQ_ERR_BAD_ARGUMENT,
                          "config.key_outliers_per_token = %u: calibrated keys with beyond_range OUTLIERS need room "
                          "for 1 .. head_dim = %u outliers per token (e.g. head_dim / 16)",
                          cfg->key_outliers_per_token, cfg->head_dim);
    return KVQ_OK;
}

kvq_status layer_layout_compute(const kvq_cuda_layer_config *cfg, layer_layout *layout)
{
    if (cfg == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "config: NULL");
    if (cfg->struct_size < sizeof(kvq_cuda_layer_config))
        return layer_fail(KVQ_ERR_SIZE_MISMATCH,
                          "config.struct_size = %u, but kvq_cuda_layer_config of API version %u has %zu bytes (set it "
                          "to sizeof(kvq_cuda_layer_config))",
                          cfg->struct_size, KVQ_CUDA_API_VERSION, sizeof(kvq_cuda_layer_config));
    if (cfg->key_config == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "config.key_config: NULL");
    if (cfg->value_config == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "config.value_config: NULL");
    kvq_status status = check_shape(cfg);
    if (status != KVQ_OK) return status;
    /* Calibrated keys: every head's ranges; otherwise one head stands for all. */
    const bool calibrated = cfg->key_config->role == KVQ_ROLE_KEYS &&
                            cfg->key_config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    if (calibrated) status = check_key_ranges(cfg);
    for (uint32_t h = 0; status == KVQ_OK && h < (calibrated ? cfg->n_kv_heads : 1u); h++) {
        kvq_head_config keys = *cfg->key_config;
        keys.channel_range = calibrated && cfg->key_ranges != NULL ? cfg->key_ranges + (size_t)h * cfg->head_dim : NULL;
        keys.n_channel_range = keys.channel_range != NULL ? cfg->head_dim : 0u;
        status = check_head(cfg, &keys, h);
        if (status == KVQ_ERR_BAD_CALIBRATION && calibrated && cfg->key_ranges == NULL)
            return layer_fail(status, "config.key_ranges: NULL but keys are calibrated (S4.2)");
    }
    if (status == KVQ_OK && calibrated) status = check_key_room(cfg);
    if (status != KVQ_OK) return status;
    static const float zeros[KVQ_MAX_HEAD_DIM];
    float rotated[KVQ_MAX_HEAD_DIM];
    status = kvq_rope_apply(&cfg->rope, cfg->head_dim, 0, zeros, rotated);
    if (status != KVQ_OK) return from_kvq(status, "");
    if (cfg->attention_profile < -1 || cfg->attention_profile >= (int32_t)KVQ_PROFILE_COUNT)
        return layer_fail(KVQ_ERR_BAD_ENUM,
                          "config.attention_profile = %d is not a kvq_attention_profile (0 fp32, 1 fp16, 2 bf16) or "
                          "-1 (the default, fp16)",
                          (int)cfg->attention_profile);

    layer_layout L;
    memset(&L, 0, sizeof L);
    describe_role(cfg, cfg->key_config, &L.role[KVQ_ROLE_KEYS]);
    describe_role(cfg, cfg->value_config, &L.role[KVQ_ROLE_VALUES]);
    if (L.role[KVQ_ROLE_KEYS].outliers_cap > UINT32_MAX)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT,
                          "config.key_outliers_per_token = %u: %u tokens would hold %llu outliers, more than the "
                          "2^32 - 1 a qtensor counts (S4.4)",
                          cfg->key_outliers_per_token, cfg->max_tokens,
                          (unsigned long long)L.role[KVQ_ROLE_KEYS].outliers_cap);
    sizer s = {0, false};
    compute(cfg, &L, &s);
    if (s.overflow)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT,
                          "config: %u sequences of %u tokens (%u KV heads of %u channels, %u new tokens per append) "
                          "need more memory than this machine can address",
                          cfg->max_seqs, cfg->max_tokens, cfg->n_kv_heads, cfg->head_dim, cfg->max_append_tokens);
    *layout = L;
    layer_fix_codebooks(layout);
    return KVQ_OK;
}

size_t layer_seq_offset(const layer_layout *layout, uint32_t seq_id)
{
    return layout->seqs + (size_t)seq_id * layout->seq_bytes;
}

size_t layer_tensor_offset(const layer_layout *layout, uint32_t seq_id, uint32_t head, kvq_role role)
{
    return layer_seq_offset(layout, seq_id) + layout->tensors + (size_t)head * layout->head_stride +
           (role == KVQ_ROLE_VALUES ? layout->role[KVQ_ROLE_KEYS].tensor_bytes : 0u);
}

kvq_status kvq_cuda_layer_size(const kvq_cuda_layer_config *config, kvq_cuda_layer_sizes *sizes)
{
    if (sizes == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "sizes: NULL");
    if (sizes->struct_size < sizeof(kvq_cuda_layer_sizes))
        return layer_fail(KVQ_ERR_SIZE_MISMATCH,
                          "sizes->struct_size = %u, but kvq_cuda_layer_sizes of API version %u has %zu bytes",
                          sizes->struct_size, KVQ_CUDA_API_VERSION, sizeof(kvq_cuda_layer_sizes));
    layer_layout L;
    kvq_status status = layer_layout_compute(config, &L);
    if (status != KVQ_OK) return status;
    sizes->total_bytes = L.total_bytes;
    sizes->cache_bytes = L.cache_bytes;
    sizes->scratch_bytes = L.scratch_bytes;
    sizes->sequence_bytes = L.seq_bytes;
    sizes->host_bytes = L.host_bytes;
    return KVQ_OK;
}

size_t kvq_cuda_struct_size(const char *name)
{
    static const struct {
        const char *name;
        size_t size;
    } table[] = {
        {"kvq_cuda_layer_config", sizeof(kvq_cuda_layer_config)},
        {"kvq_cuda_layer_sizes", sizeof(kvq_cuda_layer_sizes)},
        {"kvq_cuda_rows", sizeof(kvq_cuda_rows)},
        {"kvq_cuda_out_rows", sizeof(kvq_cuda_out_rows)},
        {"kvq_cuda_append_args", sizeof(kvq_cuda_append_args)},
        {"kvq_cuda_attend_args", sizeof(kvq_cuda_attend_args)},
        {"kvq_head_config", sizeof(kvq_head_config)},
    };
    if (name == NULL) return 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0) return table[i].size;
    return 0;
}
