/*
 * cuda_attention.c - decode attention (S11) for one sequence or a batch:
 * argument checks in the reference's order (S11.1), one upload of everything
 * a call needs (descriptors, queries, positions, RoPE frequencies), the split
 * and combine kernels, one download of the results. No other host round trip.
 */
#include "cuda_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kernel-side limit of gridDim.z: sequences per launch. */
#define CUDA_MAX_SEQ_PER_LAUNCH 65535u

static size_t align_up(size_t x, size_t a) { return (x + a - 1u) / a * a; }

/* S11.1, in the reference's order, for one sequence; `which` names it in messages. */
static kvq_status check_sequence(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                 const kvq_backend_tensor *values, const uint32_t *key_positions,
                                 const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                                 const void *out, const char *which)
{
    if (keys == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "keys%s: NULL", which);
    if (values == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "values%s: NULL", which);
    if (key_positions == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "key_positions%s: NULL", which);
    if (q == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "q: NULL");
    if (out == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out: NULL");
    const kvq_qtensor *k = &keys->header, *v = &values->header;
    if (k->role != KVQ_ROLE_KEYS)
        return cuda_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "keys%s.role = %d is not KVQ_ROLE_KEYS", which, (int)k->role);
    if (v->role != KVQ_ROLE_VALUES)
        return cuda_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "values%s.role = %d is not KVQ_ROLE_VALUES", which, (int)v->role);
    if (n_q == 0) return cuda_fail(ctx, KVQ_ERR_ZERO_SIZE, "n_q: 0");
    if (k->n_tokens != v->n_tokens)
        return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "keys%s.n_tokens = %u but values.n_tokens = %u", which,
                         k->n_tokens, v->n_tokens);
    if (k->head_dim != v->head_dim)
        return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "keys%s.head_dim = %u but values.head_dim = %u", which,
                         k->head_dim, v->head_dim);
    if (rope != NULL) {
        kvq_status status = cuda_check_rope(ctx, rope, k->head_dim);
        if (status != KVQ_OK) return status;
    }
    if (q_position > KVQ_MAX_POSITION)
        return cuda_fail(ctx, KVQ_ERR_BAD_POSITION, "q_position%s = %u is above %u", which, q_position,
                         KVQ_MAX_POSITION);
    /* A branch-free pass (vectorized by the compiler) over what can be
     * millions of positions; the index is looked for only on failure. */
    uint32_t high = 0;
    for (uint32_t t = 0; t < k->n_tokens; t++) high |= key_positions[t];
    if (high > KVQ_MAX_POSITION)
        for (uint32_t t = 0; t < k->n_tokens; t++)
            if (key_positions[t] > KVQ_MAX_POSITION)
                return cuda_fail(ctx, KVQ_ERR_BAD_POSITION, "key_positions%s[%u] = %u is above %u", which, t,
                                 key_positions[t], KVQ_MAX_POSITION);
    return KVQ_OK;
}

/* Positions p0, p0 + 1, ...: the kernel computes them instead of reading them. */
static bool consecutive(const uint32_t *p, uint32_t n)
{
    uint32_t differ = 0;
    for (uint32_t t = 0; t < n; t++) differ |= p[t] ^ (p[0] + t);
    return differ == 0;
}

/* S12.4: the fp16 profile's domain for the queries, |q_a| + |q_b| <= 2^15 for every RoPE pair (any
 * element pair is checked, which covers both pairings and none). */
static bool queries_in_fp16_domain(const float *q, size_t n, uint32_t d)
{
    for (size_t row = 0; row < n / d; row++)
        for (uint32_t i = 0; i < d / 2u; i++) {
            const float *x = q + row * d;
            if (fabsf(x[i]) + fabsf(x[i + d / 2u]) > 32768.0f || fabsf(x[2u * i]) + fabsf(x[2u * i + 1u]) > 32768.0f)
                return false;
        }
    return true;
}

static kvq_status attention_run_once(kvq_backend_context *ctx, const cuda_attention_seq *seqs, uint32_t n_seq,
                                     const kvq_rope *rope, const float *q_host, uint32_t n_q, bool allow_fp16,
                                     float *out_host, bool *outside_fp16_domain, kvq_host_timer *timer);

kvq_status cuda_attention_run(kvq_backend_context *ctx, const cuda_attention_seq *seqs, uint32_t n_seq,
                              const kvq_rope *rope, const float *q_host, uint32_t n_q, float *out_host)
{
    return cuda_attention_run_timed(ctx, seqs, n_seq, rope, q_host, n_q, out_host, NULL);
}

kvq_status cuda_attention_run_timed(kvq_backend_context *ctx, const cuda_attention_seq *seqs, uint32_t n_seq,
                                    const kvq_rope *rope, const float *q_host, uint32_t n_q, float *out_host,
                                    kvq_host_timer *timer)
{
    /* S12.4: the tensor-core path runs when the context's profile is fp16 and the inputs are in its
     * domain; a key outside it (found on the device) makes the call run again on the fp32 kernels. */
    const uint32_t d = seqs[0].keys->header.head_dim;
    bool allow_fp16 = ctx->profile == KVQ_PROFILE_FP16 &&
                      queries_in_fp16_domain(q_host, (size_t)n_seq * n_q * d, d);
    bool outside = false;
    kvq_status status =
        attention_run_once(ctx, seqs, n_seq, rope, q_host, n_q, allow_fp16, out_host, &outside, timer);
    if (status == KVQ_OK && outside) {
        if (timer != NULL) kvq_host_timer_reset(timer); /* the times are the fp32 kernels', which give the result */
        status = attention_run_once(ctx, seqs, n_seq, rope, q_host, n_q, false, out_host, &outside, timer);
    }
    return status;
}

static const char *kernel_words(kvq_cuda_attention_kernel k)
{
    return k == KVQ_CUDA_KERNEL_TC     ? "tensor-core (fp16 profile)"
           : k == KVQ_CUDA_KERNEL_FAST ? "fast (fp32)"
                                       : "general (fp32)";
}

/* The launches of one step: every group of CUDA_MAX_SEQ_PER_LAUNCH sequences, from one template. */
typedef struct attention_launches {
    kvq_cuda_attention_args args; /* for sequence 0; seqs, q, seqs_host, out and n_seq move per group */
    uint32_t n_seq;
} attention_launches;

static kvq_status launch_all(kvq_backend_context *ctx, void *user)
{
    const attention_launches *l = user;
    const kvq_cuda_attention_args *a = &l->args;
    const size_t per_seq = (size_t)a->n_q * a->head_dim;
    kvq_status status = KVQ_OK;
    for (uint32_t first = 0; status == KVQ_OK && first < l->n_seq; first += CUDA_MAX_SEQ_PER_LAUNCH) {
        kvq_cuda_attention_args g = *a;
        g.seqs = a->seqs + first;
        g.q = a->q + first * per_seq;
        g.seqs_host = a->seqs_host + first;
        g.out = a->out + first * per_seq;
        g.n_seq = l->n_seq - first < CUDA_MAX_SEQ_PER_LAUNCH ? l->n_seq - first : CUDA_MAX_SEQ_PER_LAUNCH;
        status = cuda_check(ctx, kvq_cuda_attention(&g, ctx->stream), "attention");
    }
    return status;
}

static kvq_status attention_run_once(kvq_backend_context *ctx, const cuda_attention_seq *seqs, uint32_t n_seq,
                                     const kvq_rope *rope, const float *q_host, uint32_t n_q, bool allow_fp16,
                                     float *out_host, bool *outside_fp16_domain, kvq_host_timer *timer)
{
    cudaSetDevice(ctx->device);
    *outside_fp16_domain = false;
    const uint32_t d = seqs[0].keys->header.head_dim;
    const bool rotate = rope != NULL && rope->pairing != KVQ_ROPE_NONE;

    uint32_t max_key_words = 1, max_value_words = 1;
    for (uint32_t s = 0; s < n_seq; s++) {
        if (seqs[s].keys->view.row_words > max_key_words) max_key_words = seqs[s].keys->view.row_words;
        if (seqs[s].values->view.row_words > max_value_words) max_value_words = seqs[s].values->view.row_words;
    }

    /* One upload: descriptors | RoPE table | queries | positions not computable on the device. */
    const size_t desc_bytes = align_up((size_t)n_seq * sizeof(kvq_cuda_seq), 16);
    const size_t theta_bytes = align_up((size_t)(d / 2u) * sizeof(double), 16);
    const size_t q_bytes = align_up((size_t)n_seq * n_q * d * sizeof(float), 16);
    size_t pos_bytes = 0;
    bool *upload_positions = calloc(n_seq, sizeof *upload_positions);
    if (upload_positions == NULL) return cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "attention: out of host memory");
    for (uint32_t s = 0; s < n_seq; s++) {
        uint32_t n = seqs[s].keys->header.n_tokens;
        if (seqs[s].positions_device == NULL && !consecutive(seqs[s].positions_host, n)) {
            upload_positions[s] = true;
            pos_bytes += align_up((size_t)n * 4u, 16);
        }
    }
    const size_t upload_bytes = desc_bytes + theta_bytes + q_bytes + pos_bytes;
    const size_t out_bytes = (size_t)n_seq * n_q * d * sizeof(float);

    void *dev_upload = NULL, *dev_partial = NULL, *dev_out = NULL, *dev_flags = NULL, *pinned = NULL;
    kvq_status status = cuda_scratch(ctx, CUDA_SCRATCH_UPLOAD, upload_bytes, &dev_upload);
    if (status == KVQ_OK) status = cuda_scratch(ctx, CUDA_SCRATCH_OUTPUT, out_bytes, &dev_out);
    if (status == KVQ_OK) status = cuda_scratch(ctx, CUDA_SCRATCH_SMALL, 64, &dev_flags);
    if (status == KVQ_OK) status = cuda_pinned(ctx, upload_bytes + out_bytes + 16u, &pinned);
    if (status != KVQ_OK) {
        free(upload_positions);
        return status;
    }

    unsigned char *host = pinned, *dev = dev_upload;
    kvq_cuda_seq *desc = (kvq_cuda_seq *)host;
    if (rotate) memcpy(host + desc_bytes, cuda_rope_theta(ctx, rope->base, d), (size_t)(d / 2u) * sizeof(double));
    memcpy(host + desc_bytes + theta_bytes, q_host, (size_t)n_seq * n_q * d * sizeof(float));
    size_t pos_offset = desc_bytes + theta_bytes + q_bytes;
    for (uint32_t s = 0; s < n_seq; s++) {
        const cuda_attention_seq *in = &seqs[s];
        uint32_t n = in->keys->header.n_tokens;
        kvq_cuda_seq *o = &desc[s];
        memset(o, 0, sizeof *o);
        o->keys = in->keys->view;
        o->values = in->values->view;
        o->q_position = in->q_position;
        o->n_tokens = n;
        if (in->positions_device != NULL) {
            o->positions = in->positions_device;
        } else if (upload_positions[s]) {
            memcpy(host + pos_offset, in->positions_host, (size_t)n * 4u);
            o->positions = (const uint32_t *)(dev + pos_offset);
            pos_offset += align_up((size_t)n * 4u, 16);
        } else {
            o->positions = NULL;
            o->pos0 = in->positions_host[0];
        }
    }
    free(upload_positions);

    /* Splits: whole tiles, one length for every sequence, as many blocks as are resident at
     * once (kvq_cuda_attention_tokens_per_split; the bench splits by the same rule). */
    const double *rope_step = rotate ? cuda_rope_step(ctx, rope->base, d) : NULL;
    const float *rope_step32 = rotate ? cuda_rope_step32(ctx, rope->base, d) : NULL;
    kvq_cuda_attention_args plan = {.theta = rotate ? (const double *)(dev + desc_bytes) : NULL,
                                    .rope_step = rope_step,
                                    .rope_step32 = rope_step32,
                                    .seqs_host = desc,
                                    .pairing = rotate ? (uint32_t)rope->pairing : 0u,
                                    .n_seq = n_seq,
                                    .n_q = n_q,
                                    .head_dim = d,
                                    .allow_fp16 = allow_fp16 ? 1u : 0u};
    const uint32_t tokens_per_split = kvq_cuda_attention_tokens_per_split(&plan, ctx->sm_count);
    uint32_t max_splits = 1;
    for (uint32_t s = 0; s < n_seq; s++) {
        desc[s].n_splits = (desc[s].n_tokens + tokens_per_split - 1u) / tokens_per_split;
        if (desc[s].n_splits > max_splits) max_splits = desc[s].n_splits;
    }
    const size_t partial_o = (size_t)n_seq * max_splits * n_q * d;
    const size_t partial_ml = (size_t)n_seq * max_splits * n_q * 2u;
    if (max_splits > 1)
        status = cuda_scratch(ctx, CUDA_SCRATCH_PARTIAL, (partial_o + partial_ml) * sizeof(float), &dev_partial);
    if (status != KVQ_OK) return status;

    status = cuda_upload(ctx, dev, host, upload_bytes, "attention");
    if (status == KVQ_OK) status = cuda_check(ctx, cudaMemsetAsync(dev_flags, 0, 4, ctx->stream), "attention");
    attention_launches launches = {
        .args =
            {
                .seqs = (const kvq_cuda_seq *)dev,
                .q = (const float *)(dev + desc_bytes + theta_bytes),
                .theta = rotate ? (const double *)(dev + desc_bytes) : NULL,
                .rope_step = rope_step,
                .rope_step32 = rope_step32,
                .seqs_host = desc,
                .pairing = rotate ? (uint32_t)rope->pairing : 0u,
                .n_seq = n_seq < CUDA_MAX_SEQ_PER_LAUNCH ? n_seq : CUDA_MAX_SEQ_PER_LAUNCH,
                .n_q = n_q,
                .head_dim = d,
                .tokens_per_split = tokens_per_split,
                .max_splits = max_splits,
                .max_key_words = max_key_words,
                .max_value_words = max_value_words,
                .score_scale = (float)(1.4426950408889634 / sqrt((double)d)), /* log2(e) / sqrt(d), S12.3 */
                .partial_o = dev_partial,
                .partial_ml = dev_partial != NULL ? (float *)dev_partial + partial_o : NULL,
                .out = (float *)dev_out,
                .flags = dev_flags,
                .allow_fp16 = allow_fp16 ? 1u : 0u,
            },
        .n_seq = n_seq};
    if (status == KVQ_OK) status = cuda_timed(ctx, timer, launch_all, &launches);
    if (status == KVQ_OK && timer != NULL) {
        /* The kernel, and for the tensor-core one its resident blocks per SM (occupancy explains much of
         * its speed, docs/PERFORMANCE-ANALYSIS.md). */
        const kvq_cuda_attention_kernel k = kvq_cuda_attention_kernel_for(&launches.args);
        if (k == KVQ_CUDA_KERNEL_TC)
            snprintf(timer->kernel, sizeof timer->kernel, "%s, %d blocks/SM", kernel_words(k),
                     kvq_cuda_attention_tc_blocks_per_sm(&launches.args));
        else
            snprintf(timer->kernel, sizeof timer->kernel, "%s", kernel_words(k));
    }
    unsigned char *result = host + align_up(upload_bytes, 16);
    if (status == KVQ_OK) status = cuda_download(ctx, result, dev_out, out_bytes, "attention");
    if (status == KVQ_OK) status = cuda_download(ctx, result + out_bytes, dev_flags, 4, "attention");
    if (status == KVQ_OK) status = cuda_sync(ctx, "attention");
    if (status != KVQ_OK) return status;
    uint32_t flags;
    memcpy(&flags, result + out_bytes, sizeof flags);
    if (allow_fp16 && (flags & 2u)) {
        *outside_fp16_domain = true; /* out_host untouched: the caller runs the fp32 kernels */
        return KVQ_OK;
    }
    if (flags & 1u)
        return cuda_fail(ctx, KVQ_ERR_NONFINITE_INPUT,
                         "a dequantized key lies outside the fp16 range (|x| <= 65504); the reference rejects it as "
                         "RoPE input (S9.1)");
    memcpy(out_host, result, out_bytes);
    return KVQ_OK;
}

kvq_status cuda_attention_decode(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                 const kvq_backend_tensor *values, const uint32_t *key_positions_host,
                                 const kvq_rope *rope, const float *q_host, uint32_t n_q, uint32_t q_position,
                                 float *out_host)
{
    kvq_status status = check_sequence(ctx, keys, values, key_positions_host, rope, q_host, n_q, q_position,
                                       out_host, "");
    if (status == KVQ_OK) status = cuda_check_finite(ctx, q_host, (size_t)n_q * keys->header.head_dim, "q");
    if (status != KVQ_OK) return status;
    cuda_attention_seq seq = {keys, values, key_positions_host, NULL, q_position};
    return cuda_attention_run(ctx, &seq, 1, rope, q_host, n_q, out_host);
}

kvq_status cuda_attention_decode_batch(kvq_backend_context *ctx, uint32_t n_seq,
                                       const kvq_backend_tensor *const *keys,
                                       const kvq_backend_tensor *const *values,
                                       const uint32_t *const *key_positions_host, const kvq_rope *rope,
                                       const float *q_host, uint32_t n_q, const uint32_t *q_positions_host,
                                       float *out_host)
{
    return cuda_timed_batch(ctx, n_seq, keys, values, key_positions_host, rope, q_host, n_q, q_positions_host,
                            out_host, NULL);
}

/* attention_decode_batch with its launches as timer says (NULL: once): time_attention_decode_batch's
 * device half (host_timer.h). */
kvq_status cuda_timed_batch(kvq_backend_context *ctx, uint32_t n_seq, const kvq_backend_tensor *const *keys,
                            const kvq_backend_tensor *const *values, const uint32_t *const *key_positions_host,
                            const kvq_rope *rope, const float *q_host, uint32_t n_q, const uint32_t *q_positions_host,
                            float *out_host, kvq_host_timer *timer)
{
    if (keys == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "keys: NULL");
    if (values == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "values: NULL");
    if (key_positions_host == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "key_positions: NULL");
    if (q_host == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "q: NULL");
    if (q_positions_host == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "q_positions: NULL");
    if (out_host == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out: NULL");
    if (n_seq == 0) return cuda_fail(ctx, KVQ_ERR_ZERO_SIZE, "n_seq: 0");
    cuda_attention_seq *seqs = malloc((size_t)n_seq * sizeof *seqs);
    if (seqs == NULL) return cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "attention: out of host memory");
    kvq_status status = KVQ_OK;
    uint32_t d = 0;
    /* Each sequence as attention_decode would check it, in sequence order. */
    for (uint32_t s = 0; s < n_seq && status == KVQ_OK; s++) {
        char which[32];
        snprintf(which, sizeof which, "[%u]", s);
        status = check_sequence(ctx, keys[s], values[s], key_positions_host[s], rope, q_host, n_q,
                                q_positions_host[s], out_host, which);
        if (status != KVQ_OK) break;
        if (s == 0) d = keys[0]->header.head_dim;
        if (keys[s]->header.head_dim != d)
            status = cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "keys[%u].head_dim = %u but keys[0].head_dim = %u: one batch "
                               "shares head_dim (q is [n_seq][n_q][head_dim])", s, keys[s]->header.head_dim, d);
        else
            status = cuda_check_finite(ctx, q_host + (size_t)s * n_q * d, (size_t)n_q * d, "q");
        seqs[s] = (cuda_attention_seq){keys[s], values[s], key_positions_host[s], NULL, q_positions_host[s]};
    }
    if (status == KVQ_OK) status = cuda_attention_run_timed(ctx, seqs, n_seq, rope, q_host, n_q, out_host, timer);
    free(seqs);
    return status;
}
