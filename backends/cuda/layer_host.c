/*
 * layer_host.c - the device API's entry points (kvq/kvq_cuda.h): argument
 * checks, the per-sequence host bookkeeping, and the host half of an append,
 * in plain C; the device half is behind layer->ops (layer_internal.h).
 *
 * An append decides on the host what the validation backend's cache decides
 * there (backends/cuda/cuda_cache.c, plan_role): the S10.3 decisions of the
 * new tokens (libkvq's kvq_token_precision), the final precision of the
 * pending suffix and the new tokens (S10.4, S4.3), the tokens that became
 * final (S15.3) and the fp16 slots. These depend only on the policy, the
 * modality bytes and the lengths, never on a value, so no call needs to wait
 * for the device: the device half receives the plan and enqueues the rest.
 */
#include "layer_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];

kvq_status layer_fail(kvq_status status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(last_error, sizeof last_error, format, args);
    va_end(args);
    return status;
}

const char *kvq_cuda_last_error(void) { return last_error; }

kvq_head_config layer_head_config(const kvq_cuda_layer *layer, kvq_role role, uint32_t head)
{
    kvq_head_config c = layer->layout.role[role].config;
    if (layer->layout.role[role].calibrated) {
        c.channel_range = layer->key_ranges + (size_t)head * layer->config.head_dim;
        c.n_channel_range = layer->config.head_dim;
    }
    return c;
}

static const char *dtype_name(kvq_cuda_dtype dtype)
{
    switch (dtype) {
    case KVQ_CUDA_FP32: return "fp32";
    case KVQ_CUDA_FP16: return "fp16";
    case KVQ_CUDA_BF16: return "bf16";
    default: return "?";
    }
}

/* ---- create, destroy ------------------------------------------------------ */

static void free_host(kvq_cuda_layer *layer)
{
    if (layer->seqs != NULL)
        for (uint32_t s = 0; s < layer->config.max_seqs; s++) free(layer->seqs[s].decided);
    free(layer->seqs);
    free(layer->key_ranges);
    free(layer->plans);
    free(layer->plan_precision);
    free(layer->plan_slot);
    free(layer->plan_decided);
    free(layer->plan_lengths);
    free(layer->plan_outliers);
    free(layer->stamp);
    free(layer);
}

/* Tokens of one append's (sequence, role) ranges in all, at most (layer_layout.c sizes the same). */
static size_t plan_tokens(const kvq_cuda_layer_config *cfg, const layer_layout *L)
{
    size_t n = 0;
    for (int r = 0; r < 2; r++)
        n += (size_t)cfg->max_seqs * (L->role[r].pend_cap + L->role[r].block - 1u) + cfg->max_append_tokens;
    return n;
}

/* The host's checks of a layer's memory (create and move): present, large enough, aligned. */
/* A layer's memory holds at least its cache (cache_bytes); with total_bytes, its own work space
 * too, else the layer needs one from kvq_cuda_layer_set_work_space before it appends or attends. */
static kvq_status check_memory_args(const void *memory, size_t bytes, const layer_layout *L)
{
    if (memory == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "memory: NULL");
    if (bytes < L->cache_bytes)
        return layer_fail(KVQ_ERR_SIZE_MISMATCH,
                          "bytes = %zu, but this configuration's cache needs %zu bytes (kvq_cuda_layer_size: "
                          "cache_bytes; total_bytes = %zu with its own work space)",
                          bytes, L->cache_bytes, L->total_bytes);
    if ((uintptr_t)memory % KVQ_CUDA_MEMORY_ALIGNMENT != 0)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "memory = %p is not aligned to %u bytes", memory,
                          KVQ_CUDA_MEMORY_ALIGNMENT);
    return KVQ_OK;
}

/* The work space at the end of the layer's memory when that has total_bytes, else none. */
static void own_work_space(kvq_cuda_layer *layer)
{
    layer->work_own = layer->bytes >= layer->layout.total_bytes;
    layer->work = layer->work_own ? layer->memory + layer->layout.scratch : NULL;
}

kvq_status layer_create_with_ops(const kvq_cuda_layer_config *config, void *memory, size_t bytes,
                                 kvq_cuda_stream stream, const layer_device_ops *ops, kvq_cuda_layer **out)
{
    if (out == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "out: NULL");
    if (memory == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "memory: NULL");
    layer_layout L;
    kvq_status status = layer_layout_compute(config, &L);
    if (status == KVQ_OK) status = check_memory_args(memory, bytes, &L);
    if (status != KVQ_OK) return status;

    kvq_cuda_layer *layer = calloc(1, sizeof *layer);
    if (layer == NULL) return layer_fail(KVQ_ERR_OUT_OF_MEMORY, "layer: out of host memory");
    layer->config = *config;
    layer->config.struct_size = sizeof layer->config;
    layer->layout = L;
    layer_fix_codebooks(&layer->layout);
    layer->config.key_config = &layer->layout.role[KVQ_ROLE_KEYS].config;
    layer->config.value_config = &layer->layout.role[KVQ_ROLE_VALUES].config;
    layer->memory = memory;
    layer->bytes = bytes;
    own_work_space(layer);
    layer->profile = config->attention_profile < 0 ? (uint32_t)KVQ_PROFILE_FP16 : (uint32_t)config->attention_profile;
    layer->ops = ops;
    const uint32_t S = config->max_seqs;
    const size_t ranges = layer->layout.role[KVQ_ROLE_KEYS].calibrated ? config->n_key_ranges : 0u;
    layer->plan_tokens = plan_tokens(config, &L);
    layer->seqs = calloc(S, sizeof *layer->seqs);
    layer->key_ranges = malloc(ranges * sizeof *layer->key_ranges + 1u);
    layer->plans = calloc((size_t)S * 2u, sizeof *layer->plans);
    layer->plan_precision = malloc(layer->plan_tokens + 1u);
    layer->plan_slot = malloc(layer->plan_tokens * sizeof *layer->plan_slot + 1u);
    layer->plan_decided = malloc(config->max_append_tokens);
    layer->plan_lengths = malloc((size_t)S * sizeof *layer->plan_lengths);
    layer->plan_outliers = malloc((size_t)S * 2u * sizeof *layer->plan_outliers);
    layer->stamp = calloc(S, sizeof *layer->stamp);
    bool ok = layer->seqs && layer->key_ranges && layer->plans && layer->plan_precision && layer->plan_slot &&
              layer->plan_decided && layer->plan_lengths && layer->plan_outliers && layer->stamp;
    for (uint32_t s = 0; ok && s < S; s++) ok = (layer->seqs[s].decided = malloc(config->max_tokens)) != NULL;
    if (!ok) {
        free_host(layer);
        return layer_fail(KVQ_ERR_OUT_OF_MEMORY, "layer: out of host memory for its bookkeeping (%zu bytes)",
                          L.host_bytes);
    }
    if (ranges > 0) memcpy(layer->key_ranges, config->key_ranges, ranges * sizeof *layer->key_ranges);
    layer->config.key_ranges = ranges > 0 ? layer->key_ranges : NULL;
    status = ops->create(layer, stream);
    if (status != KVQ_OK) {
        free_host(layer);
        return status;
    }
    *out = layer;
    return KVQ_OK;
}

kvq_status kvq_cuda_layer_create(const kvq_cuda_layer_config *config, void *memory, size_t bytes,
                                 kvq_cuda_stream stream, kvq_cuda_layer **out)
{
    return layer_create_with_ops(config, memory, bytes, stream, layer_default_ops(), out);
}

void kvq_cuda_layer_destroy(kvq_cuda_layer *layer)
{
    if (layer == NULL) return;
    layer->ops->destroy(layer);
    free_host(layer);
}

/* ---- checks shared by the calls ------------------------------------------ */

/* Whether [a, a + a_bytes) and [b, b + b_bytes) share a byte (device addresses, compared as numbers). */
static bool overlaps(const void *a, size_t a_bytes, const void *b, size_t b_bytes)
{
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + b_bytes && y < x + a_bytes;
}

/* Append and attend need a work space (kvq_cuda_layer_set_work_space). */
static kvq_status check_work_space(const kvq_cuda_layer *layer)
{
    if (layer->work != NULL) return KVQ_OK;
    return layer_fail(KVQ_ERR_BAD_ARGUMENT,
                      "layer: no work space (its memory has %zu bytes, fewer than total_bytes = %zu): give it one of "
                      "scratch_bytes = %zu with kvq_cuda_layer_set_work_space",
                      layer->bytes, layer->layout.total_bytes, layer->layout.scratch_bytes);
}

static kvq_status check_layer(const kvq_cuda_layer *layer)
{
    if (layer == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "layer: NULL");
    if (layer->broken)
        return layer_fail(KVQ_ERR_IO, "layer: unusable since a device failure (%s); destroy it", layer->broken_message);
    return KVQ_OK;
}

static kvq_status check_seq_id(const kvq_cuda_layer *layer, uint32_t seq_id, const char *name)
{
    if (seq_id >= layer->config.max_seqs)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "%s = %u, but the layer has sequence slots 0 .. %u (config.max_seqs)",
                          name, seq_id, layer->config.max_seqs - 1u);
    return KVQ_OK;
}

/* n_seqs, the seq_ids array and its entries (distinct when `distinct`). */
static kvq_status check_seq_list(kvq_cuda_layer *layer, uint32_t n_seqs, const uint32_t *seq_ids, bool distinct)
{
    if (n_seqs == 0) return layer_fail(KVQ_ERR_ZERO_SIZE, "args.n_seqs: 0");
    if (n_seqs > layer->config.max_seqs)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "args.n_seqs = %u exceeds config.max_seqs = %u", n_seqs,
                          layer->config.max_seqs);
    if (seq_ids == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "args.seq_ids: NULL");
    /* stamp[s] = 1 + the index that named s in this call (cleared again below) */
    kvq_status status = KVQ_OK;
    uint32_t i = 0;
    for (; i < n_seqs && status == KVQ_OK; i++) {
        char name[48];
        snprintf(name, sizeof name, "args.seq_ids[%u]", i);
        status = check_seq_id(layer, seq_ids[i], name);
        if (status == KVQ_OK && distinct && layer->stamp[seq_ids[i]] != 0)
            status = layer_fail(KVQ_ERR_BAD_ARGUMENT,
                                "args.seq_ids[%u] = %u repeats args.seq_ids[%u]: one call appends to a sequence once",
                                i, seq_ids[i], layer->stamp[seq_ids[i]] - 1u);
        if (status == KVQ_OK && distinct) layer->stamp[seq_ids[i]] = i + 1u;
    }
    for (uint32_t k = 0; distinct && k < i; k++)
        if (seq_ids[k] < layer->config.max_seqs) layer->stamp[seq_ids[k]] = 0;
    return status;
}

static kvq_status check_rows(const void *data, kvq_cuda_dtype dtype, const char *name)
{
    if (data == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "%s.data: NULL", name);
    const size_t size = layer_dtype_bytes(dtype);
    if (size == 0)
        return layer_fail(KVQ_ERR_BAD_ENUM, "%s.dtype = %d is not a kvq_cuda_dtype", name, (int)dtype);
    if ((uintptr_t)data % size != 0)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "%s.data = %p is not aligned to its %s elements (%zu bytes)", name,
                          data, dtype_name(dtype), size);
    return KVQ_OK;
}

/* ---- append ---------------------------------------------------------------- */

/* S10.4 and S4.3 over [start, n), start = from rounded down to its key block:
 * precision[t - start] for every t in [start, n), from the decisions of all n
 * tokens (the reference's final_precision over the whole sequence gives the
 * same there, S15.2). */
static void final_precision(const layer_role *role, uint32_t n, const uint8_t *decided, uint32_t from,
                           uint8_t *precision)
{
    const uint32_t g = role->block, start = from / g * g, window = role->config.policy.recent_window;
    const uint32_t first_window = n > window ? n - window : 0u;
    for (uint32_t t = start; t < n; t++) {
        uint8_t p = decided[t];
        if (p == KVQ_PREC_QUANTIZED && t >= first_window) p = KVQ_PREC_WINDOW;
        precision[t - start] = p;
    }
    if (!role->online) return;
    /* S4.3: a block is quantized only when it is complete and holds no WINDOW token */
    for (uint64_t b0 = start; b0 < n; b0 += g) {
        const uint64_t end = b0 + g < n ? b0 + g : n;
        bool quantized = b0 + g <= n;
        for (uint64_t t = b0; t < end; t++) quantized = quantized && precision[t - start] != KVQ_PREC_WINDOW;
        if (quantized) continue;
        for (uint64_t t = b0; t < end; t++)
            if (precision[t - start] == KVQ_PREC_QUANTIZED) precision[t - start] = KVQ_PREC_RESIDUAL;
    }
}

static bool is_final_fp16(uint8_t p) { return p == KVQ_PREC_SINK || p == KVQ_PREC_POLICY; }

/* One (sequence, role) of an append whose decisions are already in seq->decided[0 .. n). fp16 slots:
 * final fp16 tokens (SINK, POLICY) are numbered in token order for good (their rows never move),
 * temporary ones (WINDOW, RESIDUAL) from 0 again at every append (their pool is rewritten). */
static void plan_role(const layer_role *role, const layer_seq *seq, kvq_role r, uint32_t n, layer_role_plan *p)
{
    const layer_seq_role *sr = &seq->role[r];
    const uint32_t n0 = seq->length, start = sr->pend / role->block * role->block;
    p->start = start;
    p->pend_old = sr->pend;
    p->n0 = n0;
    p->n = n;
    final_precision(role, n, seq->decided, sr->pend, p->precision);
    p->pend_new = n;
    for (uint32_t t = start; t < n; t++)
        if (p->precision[t - start] == KVQ_PREC_WINDOW || p->precision[t - start] == KVQ_PREC_RESIDUAL) {
            p->pend_new = t;
            break;
        }
    if (p->pend_new < sr->pend) p->pend_new = sr->pend; /* cannot happen (S15.3) */
    uint32_t perm = seq->n_perm, temp = 0;
    for (uint32_t t = start; t < n0; t++) perm -= is_final_fp16(seq->decided[t]);
    p->quantized = sr->quantized;
    for (uint32_t t = start; t < n; t++) {
        const uint8_t q = p->precision[t - start];
        if (q == KVQ_PREC_QUANTIZED) {
            p->slot[t - start] = LAYER_NO_SLOT;
            p->quantized = p->quantized || t >= sr->pend;
        } else if (is_final_fp16(q)) {
            p->slot[t - start] = perm++;
        } else {
            p->slot[t - start] = LAYER_TEMP_SLOT | temp++;
        }
    }
    p->n_temp = temp;
}

/* Everything about args but the modality bytes, in S15.2's order. */
static kvq_status check_append(kvq_cuda_layer *layer, const kvq_cuda_append_args *args, uint32_t *total)
{
    const kvq_cuda_layer_config *cfg = &layer->config;
    if (args->flags & ~(uint32_t)KVQ_CUDA_CHECKED)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "args.flags = 0x%x has bits that are not KVQ_CUDA_CHECKED",
                          args->flags);
    kvq_status status = check_seq_list(layer, args->n_seqs, args->seq_ids, true);
    if (status == KVQ_OK) status = check_rows(args->keys.data, args->keys.dtype, "args.keys");
    if (status == KVQ_OK) status = check_rows(args->values.data, args->values.dtype, "args.values");
    if (status != KVQ_OK) return status;
    const kvq_cuda_rows *rows[2] = {&args->keys, &args->values};
    for (int r = 0; r < 2; r++)
        if (rows[r]->dtype != cfg->kv_dtype)
            return layer_fail(KVQ_ERR_BAD_ARGUMENT, "args.%s.dtype = %s, but the layer takes %s keys and values "
                              "(config.kv_dtype)", r == 0 ? "keys" : "values", dtype_name(rows[r]->dtype),
                              dtype_name(cfg->kv_dtype));
    uint64_t sum = 0;
    for (uint32_t i = 0; i < args->n_seqs; i++) {
        const uint32_t k = args->n_new == NULL ? 1u : args->n_new[i];
        if (k == 0) return layer_fail(KVQ_ERR_ZERO_SIZE, "args.n_new[%u]: 0", i);
        const layer_seq *seq = &layer->seqs[args->seq_ids[i]];
        if ((uint64_t)seq->length + k > cfg->max_tokens)
            return layer_fail(KVQ_ERR_BAD_ARGUMENT,
                              "args.n_new[%u] = %u: sequence %u holds %u tokens, and config.max_tokens is %u", i, k,
                              args->seq_ids[i], seq->length, cfg->max_tokens);
        sum += k;
    }
    if (sum > cfg->max_append_tokens)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "args.n_new: %llu new tokens in all, more than config.max_append_tokens "
                          "= %u", (unsigned long long)sum, cfg->max_append_tokens);
    *total = (uint32_t)sum;
    return KVQ_OK;
}

/* S10.3 for every sequence of args into layer->plan_decided (also the modality check). */
static kvq_status decide(kvq_cuda_layer *layer, const kvq_cuda_append_args *args)
{
    const kvq_token_policy *policy = &layer->layout.role[KVQ_ROLE_KEYS].config.policy;
    uint8_t *out = layer->plan_decided;
    for (uint32_t i = 0; i < args->n_seqs; i++) {
        const layer_seq *seq = &layer->seqs[args->seq_ids[i]];
        const uint32_t k = args->n_new == NULL ? 1u : args->n_new[i];
        const uint8_t *modality = args->modality == NULL ? NULL : args->modality[i];
        kvq_status status = kvq_token_precision(policy, modality, seq->length, seq->n_policy, k, out);
        if (status != KVQ_OK) return layer_fail(status, "args.modality[%u]: %s", i, kvq_last_error());
        out += k;
    }
    return KVQ_OK;
}

kvq_status kvq_cuda_layer_append(kvq_cuda_layer *layer, const kvq_cuda_append_args *args, kvq_cuda_stream stream)
{
    kvq_status status = check_layer(layer);
    if (status == KVQ_OK) status = check_work_space(layer);
    if (status != KVQ_OK) return status;
    if (args == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "args: NULL");
    if (args->struct_size < sizeof(kvq_cuda_append_args))
        return layer_fail(KVQ_ERR_SIZE_MISMATCH,
                          "args.struct_size = %u, but kvq_cuda_append_args of API version %u has %zu bytes",
                          args->struct_size, KVQ_CUDA_API_VERSION, sizeof(kvq_cuda_append_args));
    uint32_t total = 0;
    status = check_append(layer, args, &total);
    if (status == KVQ_OK) status = decide(layer, args);
    if (status != KVQ_OK) return status;

    /* The plan: the new decisions go past each sequence's length (not part of it until the end). */
    uint32_t *n_new = layer->plan_lengths;
    const uint8_t *decided = layer->plan_decided;
    uint8_t *precision = layer->plan_precision;
    uint32_t *slot = layer->plan_slot;
    for (uint32_t i = 0; i < args->n_seqs; i++) {
        layer_seq *seq = &layer->seqs[args->seq_ids[i]];
        n_new[i] = args->n_new == NULL ? 1u : args->n_new[i];
        memcpy(seq->decided + seq->length, decided, n_new[i]);
        decided += n_new[i];
        for (int r = 0; r < 2; r++) {
            layer_role_plan *p = &layer->plans[2u * i + (uint32_t)r];
            p->precision = precision;
            p->slot = slot;
            plan_role(&layer->layout.role[r], seq, (kvq_role)r, seq->length + n_new[i], p);
            precision += p->n - p->start;
            slot += p->n - p->start;
        }
    }
    layer_append_plan plan = {
        .call = ++layer->calls,
        .flags = args->flags,
        .n_seqs = args->n_seqs,
        .seq_ids = args->seq_ids,
        .n_new = n_new,
        .keys = args->keys,
        .values = args->values,
        .roles = layer->plans,
        .decided = layer->plan_decided,
    };
    status = layer->ops->append(layer, &plan, stream);
    if (status != KVQ_OK) return status;
    decided = layer->plan_decided;
    for (uint32_t i = 0; i < args->n_seqs; i++) {
        layer_seq *seq = &layer->seqs[args->seq_ids[i]];
        for (uint32_t t = 0; t < n_new[i]; t++) {
            seq->n_policy += decided[t] == KVQ_PREC_POLICY;
            seq->n_perm += is_final_fp16(decided[t]);
        }
        decided += n_new[i];
        for (int r = 0; r < 2; r++) {
            const layer_role_plan *p = &layer->plans[2u * i + (uint32_t)r];
            seq->role[r].pend = p->pend_new;
            seq->role[r].n_temp = p->n_temp;
            seq->role[r].quantized = p->quantized;
        }
        seq->length += n_new[i];
    }
    return KVQ_OK;
}

/* ---- attend ---------------------------------------------------------------- */

kvq_status kvq_cuda_layer_attend(kvq_cuda_layer *layer, const kvq_cuda_attend_args *args, kvq_cuda_stream stream)
{
    kvq_status status = check_layer(layer);
    if (status == KVQ_OK) status = check_work_space(layer);
    if (status != KVQ_OK) return status;
    if (args == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "args: NULL");
    if (args->struct_size < sizeof(kvq_cuda_attend_args))
        return layer_fail(KVQ_ERR_SIZE_MISMATCH,
                          "args.struct_size = %u, but kvq_cuda_attend_args of API version %u has %zu bytes",
                          args->struct_size, KVQ_CUDA_API_VERSION, sizeof(kvq_cuda_attend_args));
    if (args->flags & ~(uint32_t)KVQ_CUDA_CHECKED)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "args.flags = 0x%x has bits that are not KVQ_CUDA_CHECKED",
                          args->flags);
    status = check_seq_list(layer, args->n_seqs, args->seq_ids, false);
    if (status == KVQ_OK) status = check_rows(args->q.data, args->q.dtype, "args.q");
    if (status == KVQ_OK) status = check_rows(args->out.data, args->out.dtype, "args.out");
    if (status != KVQ_OK) return status;
    bool *outliers[2] = {layer->plan_outliers, layer->plan_outliers + layer->config.max_seqs};
    for (uint32_t i = 0; i < args->n_seqs; i++) {
        const layer_seq *seq = &layer->seqs[args->seq_ids[i]];
        if (seq->length == 0)
            return layer_fail(KVQ_ERR_ZERO_SIZE, "args.seq_ids[%u]: sequence %u is empty (append its tokens first)", i,
                              args->seq_ids[i]);
        layer->plan_lengths[i] = seq->length;
        for (int r = 0; r < 2; r++) outliers[r][i] = layer->layout.role[r].outliers && seq->role[r].quantized;
    }
    layer_attend_plan plan = {
        .call = ++layer->calls,
        .flags = args->flags,
        .n_seqs = args->n_seqs,
        .seq_ids = args->seq_ids,
        .lengths = layer->plan_lengths,
        .outliers = {outliers[0], outliers[1]},
        .q = args->q,
        .out = args->out,
    };
    return layer->ops->attend(layer, &plan, stream);
}

/* ---- the rest --------------------------------------------------------------- */

kvq_status kvq_cuda_layer_reset(kvq_cuda_layer *layer, uint32_t seq_id, kvq_cuda_stream stream)
{
    kvq_status status = check_layer(layer);
    if (status == KVQ_OK) status = check_seq_id(layer, seq_id, "seq_id");
    if (status == KVQ_OK) status = layer->ops->reset(layer, seq_id, stream);
    if (status != KVQ_OK) return status;
    layer_seq *seq = &layer->seqs[seq_id];
    uint8_t *decided = seq->decided;
    memset(seq, 0, sizeof *seq);
    seq->decided = decided;
    return KVQ_OK;
}

kvq_status kvq_cuda_layer_move(kvq_cuda_layer *layer, void *memory, size_t bytes)
{
    kvq_status status = check_layer(layer);
    if (status != KVQ_OK) return status;
    status = check_memory_args(memory, bytes, &layer->layout);
    const bool shared = layer->work != NULL && !layer->work_own;
    if (status == KVQ_OK && shared && overlaps(memory, layer->layout.cache_bytes, layer->work, layer->layout.scratch_bytes))
        status = layer_fail(KVQ_ERR_BAD_ARGUMENT, "memory = %p: its first %zu bytes (the cache) overlap the layer's "
                            "work space at %p", memory, layer->layout.cache_bytes, (void *)layer->work);
    if (status == KVQ_OK) status = layer->ops->check_memory(layer, memory);
    if (status != KVQ_OK) return status;
    /* Every device address of a call is made from layer->memory and layer->work when the call is
     * planned (the layout holds offsets only), so this is the whole move. A shared work space
     * stays; the layer's own follows it into memory of total_bytes, and is gone otherwise. */
    layer->memory = memory;
    layer->bytes = bytes;
    if (!shared) {
        own_work_space(layer);
    }
    return KVQ_OK;
}

kvq_status kvq_cuda_layer_set_work_space(kvq_cuda_layer *layer, void *work, size_t bytes)
{
    kvq_status status = check_layer(layer);
    if (status != KVQ_OK) return status;
    const layer_layout *L = &layer->layout;
    if (work == NULL) {
        if (bytes != 0)
            return layer_fail(KVQ_ERR_BAD_ARGUMENT, "work = NULL with bytes = %zu (NULL returns the layer to the work "
                              "space at the end of its own memory, and takes bytes = 0)", bytes);
        own_work_space(layer);
        return KVQ_OK;
    }
    if (bytes < L->scratch_bytes)
        return layer_fail(KVQ_ERR_SIZE_MISMATCH,
                          "bytes = %zu, but this configuration's work space needs %zu bytes (kvq_cuda_layer_size: "
                          "scratch_bytes)", bytes, L->scratch_bytes);
    if ((uintptr_t)work % KVQ_CUDA_MEMORY_ALIGNMENT != 0)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "work = %p is not aligned to %u bytes", work, KVQ_CUDA_MEMORY_ALIGNMENT);
    if (overlaps(work, L->scratch_bytes, layer->memory, L->cache_bytes))
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "work = %p overlaps the layer's cache (%zu bytes at %p)", work,
                          L->cache_bytes, (void *)layer->memory);
    status = layer->ops->check_memory(layer, work);
    if (status != KVQ_OK) return status;
    layer->work = work;
    layer->work_own = false;
    return KVQ_OK;
}

kvq_status kvq_cuda_layer_length(const kvq_cuda_layer *layer, uint32_t seq_id, uint32_t *length)
{
    if (layer == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "layer: NULL");
    if (length == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "length: NULL");
    kvq_status status = check_seq_id(layer, seq_id, "seq_id");
    if (status != KVQ_OK) return status;
    *length = layer->seqs[seq_id].length;
    return KVQ_OK;
}

kvq_status kvq_cuda_layer_status(kvq_cuda_layer *layer, kvq_cuda_stream stream)
{
    kvq_status status = check_layer(layer);
    return status != KVQ_OK ? status : layer->ops->status(layer, stream);
}

kvq_status kvq_cuda_layer_read(kvq_cuda_layer *layer, uint32_t seq_id, uint32_t head, kvq_role role,
                               kvq_cuda_stream stream, kvq_qtensor **out)
{
    kvq_status status = check_layer(layer);
    if (status != KVQ_OK) return status;
    if (out == NULL) return layer_fail(KVQ_ERR_NULL_ARGUMENT, "out: NULL");
    status = check_seq_id(layer, seq_id, "seq_id");
    if (status != KVQ_OK) return status;
    if (head >= layer->config.n_kv_heads)
        return layer_fail(KVQ_ERR_BAD_ARGUMENT, "head = %u, but the layer has KV heads 0 .. %u (config.n_kv_heads)",
                          head, layer->config.n_kv_heads - 1u);
    if (role != KVQ_ROLE_KEYS && role != KVQ_ROLE_VALUES)
        return layer_fail(KVQ_ERR_BAD_ENUM, "role = %d is not a kvq_role", (int)role);
    if (layer->seqs[seq_id].length == 0)
        return layer_fail(KVQ_ERR_ZERO_SIZE, "seq_id: sequence %u is empty (append its tokens first)", seq_id);
    return layer->ops->read(layer, seq_id, head, role, stream, out);
}
