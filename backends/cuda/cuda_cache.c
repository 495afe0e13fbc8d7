/*
 * cuda_cache.c - a growing one-head KV cache on the device (S15), incremental.
 *
 * The reference re-quantizes the whole sequence after every append; S15.3
 * proves that a token's stored form never changes once it is final (QUANTIZED,
 * SINK, POLICY), and final tokens always form a prefix followed by a pending
 * suffix [pend, length) in which WINDOW and RESIDUAL tokens (and possibly final
 * fp16 tokens) live. So an append only:
 *   - decides the new tokens (S10.3, libkvq's kvq_token_precision, host);
 *   - recomputes the precision of [pend, length + n_new) (window, residual
 *     blocks: host, O(pending));
 *   - quantizes the tokens that became final, [pend, pend') (device);
 *   - appends their outliers to the by-token outlier arrays;
 *   - stores new SINK/POLICY tokens in the permanent fp16 pool and rewrites
 *     the small temporary pool of the new pending suffix's WINDOW/RESIDUAL
 *     tokens (the S4.4 slot numbering is rebuilt only when the cache is read).
 * The fp32 inputs of the pending suffix stay on the device for later.
 *
 * A failed append leaves the cache unchanged (S15.2): everything is validated
 * and allocated first; the only allocation that depends on the device's work
 * (the outlier arrays) is undone by zeroing what the kernels wrote.
 */
#include "cuda_internal.h"

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* One role's state: the arrays behind its view, its pending inputs, and host
 * mirrors of what the host decides (precision, fp16 slots). */
typedef struct cache_role {
    const kvq_head_config *config; /* the cache's own copy (its host half's) */
    kvq_backend_tensor view; /* borrowed; header and pointers refreshed after every append */
    uint32_t row_words;
    /* device arrays over the cache's token capacity */
    uint8_t *precision;
    uint32_t *slot;
    uint32_t *codes;
    uint32_t *params;
    uint32_t *optr; /* capacity + 1 */
    /* host mirrors, same capacity */
    uint8_t *host_precision;
    uint32_t *host_slot;
    /* fp16 rows: permanent (SINK, POLICY) and temporary (WINDOW, RESIDUAL) */
    uint16_t *rows, *temp_rows;
    uint32_t rows_cap, temp_cap, n_perm, n_temp;
    /* outliers by token */
    uint16_t *ochan, *oval;
    uint32_t out_cap, n_outliers;
    /* pending suffix: first non-final token, and the fp32 inputs from x_base on */
    uint32_t pend;
    float *x[2];
    size_t x_cap[2]; /* rows */
    int x_cur;
    uint32_t x_base;
    float *ranges; /* calibrated keys: device lo, hi per channel */
} cache_role;

struct kvq_backend_cache {
    kvq_host_cache host;    /* first (kvq_host_cache_create): configurations, decisions, positions, length */
    uint32_t capacity;      /* tokens the device arrays and host mirrors hold */
    uint32_t *d_positions;  /* device [capacity] */
    cache_role role[2];     /* [KVQ_ROLE_KEYS], [KVQ_ROLE_VALUES] */
};
_Static_assert(offsetof(struct kvq_backend_cache, host) == 0, "kvq_host_cache_create allocates the cache");

/* One append's plan for one role. */
typedef struct role_plan {
    uint32_t start, pend;   /* precision recomputed from start; new first non-final token */
    uint32_t new_perm, new_temp;
    uint8_t *prec;          /* host [n]: valid on [start, n) */
    uint32_t *slot;         /* host [n]: valid on [start, n) */
    float *x;               /* device rows of tokens [old pend, n) */
    int x_slot;
    uint16_t *temp_rows;    /* a bigger temporary pool, swapped in by finish_role */
    uint32_t temp_cap;
    cuda_quant_job job;
    bool ran;               /* kernels wrote codes/params/precision (undo on failure) */
} role_plan;

static bool online_keys(const kvq_head_config *c)
{
    return c->role == KVQ_ROLE_KEYS && c->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
}

static bool calibrated_keys(const kvq_head_config *c)
{
    return c->role == KVQ_ROLE_KEYS && c->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
}

/* S4.4: parameter words for n tokens. */
static size_t params_for(const cache_role *r, uint32_t d, uint64_t n)
{
    return (size_t)kvq_param_count(kvq_param_layout_of(r->view.header.role, r->view.header.key_mode),
                                   r->view.header.group_size, n, d);
}

/* A bigger device buffer holding the first `used` bytes of the old one. */
static kvq_status grow(kvq_backend_context *ctx, void **buf, size_t used, size_t bytes, bool zero)
{
    void *p = NULL;
    kvq_status status = cuda_alloc(ctx, bytes, zero, &p, "cache");
    if (status != KVQ_OK) return status;
    if (used > 0) {
        status = cuda_check(ctx, cudaMemcpyAsync(p, *buf, used, cudaMemcpyDeviceToDevice, ctx->stream), "cache");
        if (status == KVQ_OK) status = cuda_sync(ctx, "cache");
        if (status != KVQ_OK) {
            cuda_free(p);
            return status;
        }
    }
    cuda_free(*buf);
    *buf = p;
    return KVQ_OK;
}

static kvq_status grow_host(kvq_backend_context *ctx, void **buf, size_t bytes)
{
    void *p = realloc(*buf, bytes);
    if (p == NULL) return cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "cache: out of host memory for %zu bytes", bytes);
    *buf = p;
    return KVQ_OK;
}

/* Room for `needed` tokens in every token array. Growing changes no token. */
static kvq_status reserve(kvq_backend_context *ctx, kvq_backend_cache *c, uint32_t needed)
{
    if (needed <= c->capacity) return KVQ_OK;
    uint64_t cap = c->capacity < 16u ? 16u : (uint64_t)c->capacity * 2u;
    if (cap < needed) cap = needed;
    if (cap > KVQ_MAX_TOKENS) cap = KVQ_MAX_TOKENS;
    const uint32_t d = c->host.head_dim, n = c->host.length;
    kvq_status status = KVQ_OK; /* decisions and positions grow with the host half (kvq_host_cache_decide) */
    for (int r = 0; r < 2 && status == KVQ_OK; r++) {
        status = grow_host(ctx, (void **)&c->role[r].host_precision, cap);
        if (status == KVQ_OK) status = grow_host(ctx, (void **)&c->role[r].host_slot, cap * 4u);
    }
    if (status != KVQ_OK) return status;
    /* Device arrays: all new ones first, so that a failure changes nothing. */
    enum { PER_ROLE = 5 };
    void *fresh[2 * PER_ROLE + 1] = {NULL};
    size_t used[2 * PER_ROLE + 1], bytes[2 * PER_ROLE + 1];
    void **old[2 * PER_ROLE + 1];
    for (int r = 0; r < 2; r++) {
        cache_role *role = &c->role[r];
        void **o[PER_ROLE] = {(void **)&role->precision, (void **)&role->slot, (void **)&role->codes,
                              (void **)&role->params, (void **)&role->optr};
        size_t u[PER_ROLE] = {n, (size_t)n * 4u, (size_t)n * role->row_words * 4u, params_for(role, d, n) * 4u,
                              ((size_t)n + 1u) * 4u};
        size_t b[PER_ROLE] = {cap, cap * 4u, cap * role->row_words * 4u, params_for(role, d, cap) * 4u,
                              (cap + 1u) * 4u};
        for (int i = 0; i < PER_ROLE; i++) {
            old[r * PER_ROLE + i] = o[i];
            /* Calibrated key params exist before the first token (d words, never growing). */
            used[r * PER_ROLE + i] = *o[i] == NULL ? 0 : u[i];
            bytes[r * PER_ROLE + i] = b[i];
        }
    }
    old[2 * PER_ROLE] = (void **)&c->d_positions;
    used[2 * PER_ROLE] = (size_t)n * 4u;
    bytes[2 * PER_ROLE] = cap * 4u;
    for (int i = 0; i < 2 * PER_ROLE + 1 && status == KVQ_OK; i++)
        status = cuda_alloc(ctx, bytes[i], true, &fresh[i], "cache");
    for (int i = 0; i < 2 * PER_ROLE + 1 && status == KVQ_OK; i++)
        if (used[i] > 0)
            status = cuda_check(
                ctx, cudaMemcpyAsync(fresh[i], *old[i], used[i], cudaMemcpyDeviceToDevice, ctx->stream), "cache");
    if (status == KVQ_OK) status = cuda_sync(ctx, "cache");
    if (status != KVQ_OK) {
        for (int i = 0; i < 2 * PER_ROLE + 1; i++) cuda_free(fresh[i]);
        return status;
    }
    for (int i = 0; i < 2 * PER_ROLE + 1; i++) {
        cuda_free(*old[i]);
        *old[i] = fresh[i];
    }
    c->capacity = (uint32_t)cap;
    return KVQ_OK;
}

/* S4.4 view of a role: header scalars and device pointers. */
static void refresh_view(kvq_backend_cache *c, cache_role *r)
{
    kvq_backend_tensor *v = &r->view;
    kvq_qtensor *h = &v->header;
    kvq_qtensor_header_for(r->config, c->host.length, c->host.head_dim, h);
    h->n_fp16_rows = r->n_perm + r->n_temp;
    h->n_outliers = r->n_outliers;
    v->n_perm_rows = r->n_perm;
    v->n_temp_rows = r->n_temp;
    v->borrowed = true;
    v->view.precision = r->precision;
    v->view.slot = r->slot;
    v->view.rows = r->rows;
    v->view.temp_rows = r->temp_rows;
    v->view.codes = r->codes;
    v->view.params = r->params;
    v->view.optr = r->optr;
    v->view.ochan = r->ochan;
    v->view.oval = r->oval;
    cuda_tensor_set_view_scalars(v);
}

static void free_role(cache_role *r)
{
    cuda_free(r->precision);
    cuda_free(r->slot);
    cuda_free(r->codes);
    cuda_free(r->params);
    cuda_free(r->optr);
    cuda_free(r->rows);
    cuda_free(r->temp_rows);
    cuda_free(r->ochan);
    cuda_free(r->oval);
    cuda_free(r->x[0]);
    cuda_free(r->x[1]);
    cuda_free(r->ranges);
    free(r->host_precision);
    free(r->host_slot);
}

void cuda_cache_free(kvq_backend_context *ctx, kvq_backend_cache *cache)
{
    if (cache == NULL) return;
    cudaSetDevice(ctx->device);
    cudaStreamSynchronize(ctx->stream);
    for (int r = 0; r < 2; r++) free_role(&cache->role[r]);
    cuda_free(cache->d_positions);
    kvq_host_cache_destroy(&cache->host); /* the whole cache: kvq_host_cache_create made it */
}

/* S15.1 */
kvq_status cuda_cache_create(kvq_backend_context *ctx, const kvq_head_config *key_config,
                             const kvq_head_config *value_config, uint32_t head_dim, kvq_backend_cache **out)
{
    kvq_status status;
    kvq_backend_cache *c = kvq_host_cache_create(&ctx->host.error, key_config, value_config, head_dim, out,
                                                 sizeof(kvq_backend_cache), &status);
    if (c == NULL) return status;
    cudaSetDevice(ctx->device);
    for (int r = 0; r < 2; r++) {
        cache_role *role = &c->role[r];
        role->config = &c->host.configs.config[r];
        role->row_words = (uint32_t)(kvq_packed_bytes(head_dim, role->config->quantizer.bits) / 4u);
    }
    /* Calibrated keys: fixed params (S4.2) and ranges for the strict outlier rule. */
    cache_role *keys = &c->role[KVQ_ROLE_KEYS];
    if (calibrated_keys(key_config)) {
        kvq_group_params *params = malloc((size_t)head_dim * sizeof *params);
        if (params == NULL) status = cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "cache: out of host memory");
        if (status == KVQ_OK) kvq_host_calibrated_params(key_config, head_dim, params);
        if (status == KVQ_OK) status = cuda_alloc(ctx, (size_t)head_dim * 4u, false, (void **)&keys->params, "cache");
        if (status == KVQ_OK)
            status = cuda_alloc(ctx, (size_t)head_dim * 8u, false, (void **)&keys->ranges, "cache");
        if (status == KVQ_OK) status = cuda_upload(ctx, keys->params, params, (size_t)head_dim * 4u, "cache");
        if (status == KVQ_OK)
            status = cuda_upload(ctx, keys->ranges, key_config->channel_range, (size_t)head_dim * 8u, "cache");
        if (status == KVQ_OK) status = cuda_sync(ctx, "cache");
        free(params);
    }
    if (status != KVQ_OK) {
        cuda_cache_free(ctx, c);
        return status;
    }
    /* Calibrated key params never grow: reserve() copies d words of them. */
    for (int r = 0; r < 2; r++) refresh_view(c, &c->role[r]);
    *out = c;
    return KVQ_OK;
}

/* Host side of an append for one role: precision of [start, n), the new
 * first pending token, and the fp16 slots. */
static kvq_status plan_role(kvq_backend_context *ctx, kvq_backend_cache *c, cache_role *r, uint32_t n,
                            role_plan *p)
{
    const uint32_t n0 = c->host.length;
    p->prec = malloc(n);
    p->slot = malloc((size_t)n * 4u);
    if (p->prec == NULL || p->slot == NULL) return cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "cache: out of host memory");
    /* From the block holding the first pending token (online keys), else from that token. */
    p->start = kvq_final_precision(r->config, n, c->host.decided, r->pend, p->prec);
    p->pend = n;
    for (uint32_t t = p->start; t < n; t++)
        if (p->prec[t] == KVQ_PREC_WINDOW || p->prec[t] == KVQ_PREC_RESIDUAL) {
            p->pend = t;
            break;
        }
    if (p->pend < r->pend) p->pend = r->pend; /* cannot happen (S15.3); keeps ranges well formed */
    uint32_t perm = r->n_perm, temp = 0;
    for (uint32_t t = p->start; t < n; t++) {
        uint8_t q = p->prec[t];
        if (q == KVQ_PREC_QUANTIZED)
            p->slot[t] = KVQ_CUDA_NO_SLOT;
        else if (q == KVQ_PREC_SINK || q == KVQ_PREC_POLICY)
            p->slot[t] = t < n0 ? r->host_slot[t] : perm++; /* final fp16 tokens keep their row */
        else
            p->slot[t] = KVQ_CUDA_TEMP_SLOT | temp++;
    }
    p->new_perm = perm - r->n_perm;
    p->new_temp = temp;
    return KVQ_OK;
}

/* Everything the append needs that depends only on the host plan: the new
 * pending input rows and the fp16 pools. Changes no visible state. */
static kvq_status prepare_role(kvq_backend_context *ctx, kvq_backend_cache *c, cache_role *r, uint32_t n,
                               const float *new_rows, role_plan *p)
{
    const uint32_t d = c->host.head_dim, n0 = c->host.length;
    const size_t rows = (size_t)(n - r->pend);
    p->x_slot = 1 - r->x_cur;
    kvq_status status = KVQ_OK;
    if (r->x_cap[p->x_slot] < rows) {
        size_t cap = rows + rows / 2u;
        void *buf = NULL;
        status = cuda_alloc(ctx, cap * d * 4u, false, &buf, "cache");
        if (status != KVQ_OK) return status;
        cuda_free(r->x[p->x_slot]);
        r->x[p->x_slot] = buf;
        r->x_cap[p->x_slot] = cap;
    }
    p->x = r->x[p->x_slot];
    size_t old_rows = (size_t)(n0 - r->pend);
    if (old_rows > 0)
        status = cuda_check(ctx,
                            cudaMemcpyAsync(p->x, r->x[r->x_cur] + (size_t)(r->pend - r->x_base) * d,
                                            old_rows * d * 4u, cudaMemcpyDeviceToDevice, ctx->stream),
                            "cache");
    if (status == KVQ_OK)
        status = cuda_check(ctx,
                            cudaMemcpyAsync(p->x + old_rows * d, new_rows, (size_t)(n - n0) * d * 4u,
                                            cudaMemcpyDeviceToDevice, ctx->stream),
                            "cache");
    if (status == KVQ_OK && r->n_perm + p->new_perm > r->rows_cap) {
        uint32_t cap = (r->n_perm + p->new_perm) * 2u;
        status = grow(ctx, (void **)&r->rows, (size_t)r->n_perm * d * 2u, (size_t)cap * d * 2u, false);
        if (status == KVQ_OK) r->rows_cap = cap;
    }
    /* The temporary pool is rewritten whole, but the old rows must survive a
     * failure of this append, so a bigger pool replaces it only at the end. */
    if (status == KVQ_OK && p->new_temp > r->temp_cap) {
        p->temp_cap = p->new_temp * 2u;
        status = cuda_alloc(ctx, (size_t)p->temp_cap * d * 2u, false, (void **)&p->temp_rows, "cache");
    }
    return status;
}

/* Undoes the device writes of run_role (codes, params, precision, optr). */
static void undo_role(kvq_backend_context *ctx, kvq_backend_cache *c, cache_role *r, const role_plan *p)
{
    if (!p->ran) return;
    const uint32_t d = c->host.head_dim, n0 = c->host.length;
    cudaStream_t s = ctx->stream;
    if (p->pend > r->pend) {
        cudaMemsetAsync(r->codes + (size_t)r->pend * r->row_words, 0,
                        (size_t)(p->pend - r->pend) * r->row_words * 4u, s);
        if (r->config->role == KVQ_ROLE_VALUES) {
            size_t first = params_for(r, d, r->pend), last = params_for(r, d, p->pend);
            cudaMemsetAsync(r->params + first, 0, (last - first) * 4u, s);
        } else if (online_keys(r->config)) {
            size_t g = r->config->group_size;
            size_t first = r->pend / g * d, last = p->pend / g * d;
            if (last > first) cudaMemsetAsync(r->params + first, 0, (last - first) * 4u, s);
        }
    }
    if (n0 > p->start) cudaMemcpyAsync(r->precision + p->start, r->host_precision + p->start, n0 - p->start,
                                       cudaMemcpyHostToDevice, s);
    uint32_t *fill = malloc(((size_t)n0 - r->pend + 1u) * 4u);
    if (fill != NULL) {
        for (uint32_t t = r->pend; t <= n0; t++) fill[t - r->pend] = r->n_outliers;
        cudaMemcpyAsync(r->optr + r->pend, fill, ((size_t)n0 - r->pend + 1u) * 4u, cudaMemcpyHostToDevice, s);
    }
    cudaStreamSynchronize(s);
    free(fill);
}

/* The device work for the tokens that became final: precision, codes and
 * params, their outliers appended. */
static kvq_status run_role(kvq_backend_context *ctx, kvq_backend_cache *c, cache_role *r, uint32_t n, role_plan *p)
{
    const uint32_t d = c->host.head_dim;
    p->ran = true;
    kvq_status status = cuda_upload(ctx, r->precision + p->start, p->prec + p->start, n - p->start, "cache");
    p->job = (cuda_quant_job){
        .config = r->config,
        .head_dim = d,
        .x = p->x,
        .x_base = r->pend,
        .t_begin = r->pend,
        .t_end = p->pend,
        .precision = r->precision,
        .params = r->params,
        .codes = r->codes,
        .cal_params = r->params,
        .cal_ranges = r->ranges,
    };
    if (status == KVQ_OK) status = cuda_quantize_codes(ctx, &p->job); /* synchronises */
    if (status != KVQ_OK) return status;
    uint64_t needed = (uint64_t)r->n_outliers + p->job.n_outliers;
    if (needed > UINT32_MAX) return cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "cache: more than 2^32 outliers");
    if (needed > r->out_cap) {
        uint64_t cap = needed * 2u > UINT32_MAX ? UINT32_MAX : needed * 2u;
        void *ch = r->ochan, *val = r->oval;
        void *new_ch = NULL, *new_val = NULL;
        status = cuda_alloc(ctx, (size_t)cap * 2u, false, &new_ch, "cache");
        if (status == KVQ_OK) status = cuda_alloc(ctx, (size_t)cap * 2u, false, &new_val, "cache");
        size_t used = (size_t)r->n_outliers * 2u;
        if (status == KVQ_OK && used > 0)
            status = cuda_check(ctx, cudaMemcpyAsync(new_ch, ch, used, cudaMemcpyDeviceToDevice, ctx->stream), "cache");
        if (status == KVQ_OK && used > 0)
            status = cuda_check(ctx, cudaMemcpyAsync(new_val, val, used, cudaMemcpyDeviceToDevice, ctx->stream),
                                "cache");
        if (status == KVQ_OK) status = cuda_sync(ctx, "cache");
        if (status != KVQ_OK) {
            cuda_free(new_ch);
            cuda_free(new_val);
            return status;
        }
        cuda_free(ch);
        cuda_free(val);
        r->ochan = new_ch;
        r->oval = new_val;
        r->out_cap = (uint32_t)cap;
    }
    return cuda_quantize_outliers(ctx, &p->job, n, r->n_outliers, r->optr, r->ochan, r->oval);
}

/* fp16 rows and slots, then the host state: cannot fail but for the device. */
static kvq_status finish_role(kvq_backend_context *ctx, kvq_backend_cache *c, cache_role *r, uint32_t n,
                              role_plan *p)
{
    const uint32_t d = c->host.head_dim, n0 = c->host.length;
    if (p->temp_rows != NULL) {
        cuda_free(r->temp_rows);
        r->temp_rows = p->temp_rows;
        r->temp_cap = p->temp_cap;
        p->temp_rows = NULL;
    }
    kvq_status status = cuda_upload(ctx, r->slot + p->start, p->slot + p->start, (size_t)(n - p->start) * 4u, "cache");
    uint32_t from = p->pend < n0 ? p->pend : n0;
    if (status == KVQ_OK)
        status = cuda_check(ctx,
                            kvq_cuda_write_fp16_rows(p->x, r->pend, from, n, n0, d, r->slot, r->rows, r->temp_rows,
                                                     ctx->stream),
                            "cache");
    if (status != KVQ_OK) return status;
    memcpy(r->host_precision + p->start, p->prec + p->start, n - p->start);
    memcpy(r->host_slot + p->start, p->slot + p->start, (size_t)(n - p->start) * 4u);
    r->n_perm += p->new_perm;
    r->n_temp = p->new_temp;
    r->n_outliers += p->job.n_outliers;
    r->x_base = r->pend;
    r->x_cur = p->x_slot;
    r->pend = p->pend;
    return KVQ_OK;
}

/* S15.2 */
kvq_status cuda_cache_append(kvq_backend_context *ctx, kvq_backend_cache *cache, const float *keys_host,
                             const float *values_host, const uint8_t *modality_host, const uint32_t *positions_host,
                             uint32_t n_new)
{
    if (cache == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "cache is NULL");
    kvq_status status =
        kvq_host_cache_check_append(&ctx->host.error, &cache->host, keys_host, values_host, positions_host, n_new);
    if (status != KVQ_OK) return status;
    cudaSetDevice(ctx->device);
    const uint32_t n0 = cache->host.length, d = cache->host.head_dim;
    const uint32_t n = n0 + n_new;
    const size_t elems = (size_t)n_new * d;

    /* Upload keys and values and check them (S1.3) on the device. */
    void *d_in = NULL, *small = NULL, *host = NULL;
    status = cuda_scratch(ctx, CUDA_SCRATCH_INPUT, elems * 8u, &d_in);
    if (status == KVQ_OK) status = cuda_scratch(ctx, CUDA_SCRATCH_SMALL, 64, &small);
    if (status == KVQ_OK) status = cuda_pinned(ctx, 64, &host);
    float *d_keys = d_in, *d_values = (float *)d_in + elems;
    unsigned long long *bad = small, *host_bad = host;
    if (status == KVQ_OK) status = cuda_upload(ctx, d_keys, keys_host, elems * 4u, "cache_append: keys");
    if (status == KVQ_OK) status = cuda_upload(ctx, d_values, values_host, elems * 4u, "cache_append: values");
    if (status == KVQ_OK) status = cuda_check(ctx, cudaMemsetAsync(bad, 0xFF, 16, ctx->stream), "cache_append");
    if (status == KVQ_OK) status = cuda_check(ctx, kvq_cuda_find_nonfinite(d_keys, elems, bad, ctx->stream), "cache");
    if (status == KVQ_OK)
        status = cuda_check(ctx, kvq_cuda_find_nonfinite(d_values, elems, bad + 1, ctx->stream), "cache");
    if (status == KVQ_OK) status = cuda_download(ctx, host_bad, bad, 16, "cache_append");
    if (status == KVQ_OK) status = cuda_sync(ctx, "cache_append");
    /* The device found the first bad value; the host's check words the message as the reference does. */
    if (status == KVQ_OK && host_bad[0] != ~0ull) status = cuda_check_finite(ctx, keys_host, elems, "keys");
    if (status == KVQ_OK && host_bad[1] != ~0ull) status = cuda_check_finite(ctx, values_host, elems, "values");
    /* S10.3: the new tokens' decisions, taken once (the modality check), beyond `length`. */
    if (status == KVQ_OK) status = kvq_host_cache_decide(&ctx->host.error, &cache->host, modality_host, positions_host, n_new);
    if (status == KVQ_OK) status = reserve(ctx, cache, n);
    if (status != KVQ_OK) {
        for (int r = 0; r < 2; r++) refresh_view(cache, &cache->role[r]);
        return status;
    }

    role_plan plan[2];
    memset(plan, 0, sizeof plan);
    const float *new_rows[2] = {d_keys, d_values};
    for (int r = 0; r < 2 && status == KVQ_OK; r++) status = plan_role(ctx, cache, &cache->role[r], n, &plan[r]);
    for (int r = 0; r < 2 && status == KVQ_OK; r++)
        status = prepare_role(ctx, cache, &cache->role[r], n, new_rows[r], &plan[r]);
    for (int r = 0; r < 2 && status == KVQ_OK; r++) status = run_role(ctx, cache, &cache->role[r], n, &plan[r]);
    if (status != KVQ_OK) {
        for (int r = 0; r < 2; r++) undo_role(ctx, cache, &cache->role[r], &plan[r]);
    } else {
        for (int r = 0; r < 2 && status == KVQ_OK; r++) status = finish_role(ctx, cache, &cache->role[r], n, &plan[r]);
        const uint32_t *pos = cache->host.positions + n0; /* kvq_host_cache_decide's */
        if (status == KVQ_OK) status = cuda_upload(ctx, cache->d_positions + n0, pos, (size_t)n_new * 4u, "cache");
        if (status == KVQ_OK) status = cuda_sync(ctx, "cache_append");
        if (status == KVQ_OK) kvq_host_cache_commit(&cache->host);
    }
    /* Also after a failure: arrays may have moved while growing (same contents). */
    for (int r = 0; r < 2; r++) refresh_view(cache, &cache->role[r]);
    for (int r = 0; r < 2; r++) {
        free(plan[r].prec);
        free(plan[r].slot);
        cuda_free(plan[r].temp_rows); /* only when this append failed */
    }
    return status;
}

kvq_status cuda_cache_attend(kvq_backend_context *ctx, kvq_backend_cache *cache, const kvq_rope *rope,
                             const float *q_host, uint32_t n_q, uint32_t q_position, float *out_host)
{
    if (cache == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "cache is NULL");
    /* S11.1 for what the caller passes; the cache's own tensors and positions are valid. */
    kvq_status status = kvq_host_check_queries(&ctx->host.error, cache->host.length, cache->host.head_dim, rope, q_host,
                                               n_q, q_position, out_host);
    if (status != KVQ_OK) return status;
    cuda_attention_seq seq = {&cache->role[KVQ_ROLE_KEYS].view, &cache->role[KVQ_ROLE_VALUES].view, NULL,
                              cache->d_positions, q_position};
    return cuda_attention_run(ctx, &seq, 1, rope, q_host, n_q, out_host);
}

kvq_status cuda_cache_view(kvq_backend_context *ctx, const kvq_backend_cache *cache, const kvq_backend_tensor **keys,
                           const kvq_backend_tensor **values)
{
    kvq_status status = kvq_host_check_view(&ctx->host.error, cache, keys, values);
    if (status == KVQ_OK) status = kvq_host_check_length(&ctx->host.error, cache->host.length);
    if (status != KVQ_OK) return status;
    *keys = &cache->role[KVQ_ROLE_KEYS].view;
    *values = &cache->role[KVQ_ROLE_VALUES].view;
    return KVQ_OK;
}
