/*
 * ocl_attention.c - S11 decode attention on the device.
 *
 * Queries are rotated on the host with libkvq's kvq_rope_apply (n_q * d
 * numbers, the reference's exact values). Keys are rotated on the device
 * (S9.3: angles in double when the device has cl_khr_fp64, else a host
 * table of the reference's cos/sin). Two paths:
 *  - fused (up to OCL_FUSED_MAX_Q query heads per KV head: MHA and GQA groups
 *    of up to 8; it was the path of n_q == 1 only until the H200's study (d)
 *    of 2026-12-03, where GQA 8 x 4 took 31 ms on the GEMM path at 64K tokens,
 *    about 5x MHA's fused time for a quarter of its KV heads):
 *    kvq_attention_partial_batch dequantizes keys and values tile by tile in
 *    local memory and never writes them out, then kvq_attention_combine_batch
 *    merges the tiles (flash decoding). Both take a whole batch of sequences:
 *    attention_decode_batch runs every sequence of a step in one launch of
 *    each (more only when its tensors span more than KVQ_BATCH_SLABS slabs of
 *    the device arena, ocl_arena.c), and attention_decode is a batch of one,
 *    so the two give the same bits;
 *  - GEMM (n_q > OCL_FUSED_MAX_Q, or KVQ_OPENCL_ATTENTION=gemm): the keys
 *    (rotated) and values are dequantized once into
 *    fp32 scratch, shared by all query heads, and CLBlast's SGEMM computes the
 *    scores (n_q x n) and the output (n_q x d) around kvq_softmax_rows; a
 *    batch runs it sequence by sequence.
 * Both accumulate in fp32, which S12.3's bound allows.
 */
#include "ocl_internal.h"

#include "attention_batch.h" /* the descriptor layout the batched kernels read */

#include <clblast_c.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Device-side RoPE inputs: key positions and either theta_i in double
 * (device computes the angles) or the host's cos/sin table per token. */
typedef struct rope_inputs {
    int pairing;   /* KVQ_ROPE_NONE when there is no rotation */
    int use_table; /* rope_data is the float2 table */
    cl_mem positions;
    cl_mem rope_data;
} rope_inputs;

static void rope_inputs_release(rope_inputs *r)
{
    ocl_release(&r->positions);
    ocl_release(&r->rope_data);
}

static kvq_status rope_inputs_make(kvq_backend_context *ctx, const kvq_rope *rope, const uint32_t *positions,
                                   uint32_t n, uint32_t d, rope_inputs *r)
{
    memset(r, 0, sizeof *r);
    r->pairing = rope != NULL ? (int)rope->pairing : KVQ_ROPE_NONE;
    r->use_table = ctx->rope_host_table;
    kvq_status st = ocl_buffer(ctx, (size_t)n * sizeof(uint32_t), positions, false, &r->positions, "key positions");
    if (st != KVQ_OK || r->pairing == KVQ_ROPE_NONE) {
        if (st == KVQ_OK) st = ocl_buffer(ctx, sizeof(float), NULL, false, &r->rope_data, "rope data");
        return st;
    }
    uint32_t half = d / 2u;
    if (!r->use_table) {
        /* S9.3: theta_i = pow(base, -2i/d) in double, as the reference forms it. */
        double *theta = malloc(half * sizeof *theta);
        if (theta == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "rope frequencies: out of memory");
        for (uint32_t i = 0; i < half; i++) theta[i] = pow((double)rope->base, -2.0 * (double)i / (double)d);
        st = ocl_buffer(ctx, half * sizeof *theta, theta, false, &r->rope_data, "rope frequencies");
        free(theta);
        return st;
    }
    /* No fp64 on the device: the reference's own cos/sin (kvq_rope_angle), one pair per (token, i). */
    size_t entries = (size_t)n * half;
    float *table = malloc(entries * 2u * sizeof *table);
    if (table == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "rope table of %u tokens: out of memory", n);
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t i = 0; i < half; i++) {
            size_t e = ((size_t)t * half + i) * 2u;
            kvq_rope_angle(rope, d, i, positions[t], &table[e], &table[e + 1u]);
        }
    st = ocl_buffer(ctx, entries * 2u * sizeof *table, table, false, &r->rope_data, "rope table");
    free(table);
    return st;
}

/* Tokens per tile of the fused kernel: keep the key/value tile and the scores
 * within about 32 KiB of local memory (and half of what the device has), at
 * most 64 tokens. At 16 KiB a tile of head_dim 128 held 29 tokens, and what a
 * work-group pays per tile (its six barriers, the serial row reductions, the
 * partials the combine reads) was paid every 29 tokens; at 32 KiB, 58. */
static uint32_t fused_tile_tokens(const kvq_backend_context *ctx, uint32_t d)
{
    size_t budget = 32768u;
    if (ctx->local_mem > 0 && ctx->local_mem / 2u < budget) budget = ctx->local_mem / 2u;
    size_t tokens = budget / (sizeof(float) * ((size_t)KVQ_TILE_STRIDE(d) + OCL_FUSED_MAX_Q));
    if (tokens > KVQ_ROPE_STEP_OFFSETS) tokens = KVQ_ROPE_STEP_OFFSETS;
    return tokens > 0 ? (uint32_t)tokens : 1u;
}

/* A local array's bytes rounded up to 16, the alignment of the widest local type (double2). */
static size_t local_bytes(size_t bytes)
{
    return (bytes + 15u) & ~(size_t)15u;
}

static size_t kernel_work_group(kvq_backend_context *ctx, ocl_kernel_id k, size_t wanted)
{
    size_t limit = 0;
    if (clGetKernelWorkGroupInfo(ctx->kernels[k], ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof limit, &limit,
                                 NULL) != CL_SUCCESS || limit == 0)
        limit = ctx->max_wg;
    return wanted < limit ? wanted : limit;
}

static kvq_status from_clblast(kvq_backend_context *ctx, CLBlastStatusCode code, const char *what)
{
    if (code == CLBlastSuccess) return KVQ_OK;
    if (code > -1000) return ocl_from_cl(ctx, (cl_int)code, what); /* OpenCL error codes pass through */
    return ocl_fail(ctx, KVQ_ERR_IO, "%s: CLBlast error %d on %s", what, (int)code, ctx->name);
}

static kvq_status attention_gemm(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                 const kvq_backend_tensor *values, const rope_inputs *rope, cl_mem q, uint32_t n_q,
                                 float scale, cl_mem out)
{
    size_t n = keys->header.n_tokens;
    uint32_t d = keys->header.head_dim;
    cl_mem k32 = NULL, v32 = NULL, scores = NULL;
    kvq_status st = ocl_buffer(ctx, n * d * sizeof(float), NULL, false, &k32, "dequantized keys");
    if (st == KVQ_OK) st = ocl_buffer(ctx, n * d * sizeof(float), NULL, false, &v32, "dequantized values");
    if (st == KVQ_OK) st = ocl_buffer(ctx, (size_t)n_q * n * sizeof(float), NULL, false, &scores, "scores");
    /* S11.2: exact keys and values once for all query heads; keys rotated. */
    if (st == KVQ_OK) st = ocl_dequantize_device(ctx, keys, k32);
    if (st == KVQ_OK && rope->pairing != KVQ_ROPE_NONE) {
        ocl_arg args[] = {OCL_MEM(k32), OCL_MEM(rope->positions), OCL_U64(n), OCL_U32(d),
                          OCL_I32(rope->pairing), OCL_I32(rope->use_table), OCL_MEM(rope->rope_data)};
        st = ocl_launch(ctx, OCL_K_ROPE_ROWS, args, 7, n * (d / 2u), 0, true);
    }
    if (st == KVQ_OK) st = ocl_dequantize_device(ctx, values, v32);
    /* S11.3: scores[h][t] = scale * q'_h . k'_t, i.e. Q (n_q x d) times K^T. */
    if (st == KVQ_OK)
        st = from_clblast(ctx,
                          CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, n_q, n, d,
                                       scale, q, 0, d, k32, 0, d, 0.0f, scores, 0, n, &ctx->queue, NULL),
                          "CLBlastSgemm (scores)");
    if (st == KVQ_OK) {
        ocl_arg args[] = {OCL_MEM(scores), OCL_U64(n)};
        st = ocl_launch(ctx, OCL_K_SOFTMAX_ROWS, args, 2, (size_t)n_q * OCL_SOFTMAX_WG, OCL_SOFTMAX_WG, false);
    }
    /* S11.4: out = P (n_q x n) times V (n x d). */
    if (st == KVQ_OK)
        st = from_clblast(ctx,
                          CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, n_q, d, n, 1.0f,
                                       scores, 0, n, v32, 0, d, 0.0f, out, 0, d, &ctx->queue, NULL),
                          "CLBlastSgemm (output)");
    if (st == KVQ_OK) st = ocl_finish(ctx, "GQA attention");
    ocl_release(&k32);
    ocl_release(&v32);
    ocl_release(&scores);
    return st;
}

bool ocl_attention_fused(const kvq_backend_context *ctx, uint32_t n_q)
{
    return !(ctx->path == OCL_PATH_GEMM || n_q > OCL_FUSED_MAX_Q);
}

/* S11.2: q'_h = rope(q_h, q_position) for the n_q heads of one sequence, the reference's own computation. */
static kvq_status rotate_queries(kvq_backend_context *ctx, const kvq_rope *rope, uint32_t d, uint32_t n_q,
                                 uint32_t q_position, const float *q, float *rotated)
{
    kvq_rope none = {KVQ_ROPE_NONE, 10000.0f};
    kvq_status st = KVQ_OK;
    for (uint32_t h = 0; h < n_q && st == KVQ_OK; h++)
        st = ocl_from_kvq(ctx, kvq_rope_apply(rope != NULL ? rope : &none, d, q_position, q + (size_t)h * d,
                                              rotated + (size_t)h * d));
    return st;
}

/* What the fused kernels need of a batch, staged on the host: descriptors, key positions (of the
 * sequences whose positions are not consecutive), RoPE data, rotated queries. */
typedef struct fused_batch {
    uint32_t n_seq, n_q, d, tile;
    size_t max_tiles;
    int pairing, use_table;
    cl_ulong *words;     /* [n_seq][KVQ_SEQ_WORDS] */
    uint32_t *positions; /* [n_positions] */
    size_t n_positions;
    void *rope;          /* theta [d/2] doubles, or the (cos, sin) table of every token */
    size_t rope_bytes;
    cl_mem slabs[KVQ_BATCH_SLABS];
    uint32_t n_slabs;
} fused_batch;

static void fused_batch_free(fused_batch *b)
{
    free(b->words);
    free(b->positions);
    free(b->rope);
}

/* The slot of slab `slab` among the batch's, added when new; false when all slots are taken. */
static bool slab_slot(fused_batch *b, cl_mem slab, uint32_t *slot)
{
    for (uint32_t i = 0; i < b->n_slabs; i++)
        if (b->slabs[i] == slab) {
            *slot = i;
            return true;
        }
    if (b->n_slabs == KVQ_BATCH_SLABS) return false;
    b->slabs[b->n_slabs] = slab;
    *slot = b->n_slabs++;
    return true;
}

/* Where the nine arrays of t lie, as slot << KVQ_SLOT_SHIFT | offset words; false when the batch has no slot
 * left for one of t's slabs (nothing is added then). */
static kvq_status tensor_words(kvq_backend_context *ctx, fused_batch *b, const kvq_backend_tensor *t,
                               cl_ulong *words, bool *fits)
{
    const cl_mem arrays[KVQ_TENSOR_ARRAYS] = {
        [KVQ_ARRAY_PRECISION] = t->precision,     [KVQ_ARRAY_FP16_SLOT] = t->fp16_slot,
        [KVQ_ARRAY_FP16_ROWS] = t->fp16_rows,     [KVQ_ARRAY_CODES] = t->codes,
        [KVQ_ARRAY_PARAMS] = t->params,           [KVQ_ARRAY_CODEBOOK] = t->codebook,
        [KVQ_ARRAY_OUTLIER_PTR] = t->outlier_ptr, [KVQ_ARRAY_OUTLIER_INDEX] = t->outlier_index,
        [KVQ_ARRAY_OUTLIER_VALUE] = t->outlier_value};
    uint32_t saved = b->n_slabs;
    *fits = true;
    for (int i = 0; i < KVQ_TENSOR_ARRAYS; i++) {
        cl_mem slab = NULL;
        size_t offset = 0;
        uint32_t slot = 0;
        /* A cache keeps no buffer for an array it has no entries in (fp16 rows, outliers); the
         * kernels never read such an array, so any address does. */
        if (arrays[i] == NULL) {
            words[i] = 0;
            continue;
        }
        kvq_status st = ocl_arena_locate(ctx, arrays[i], &slab, &offset);
        if (st != KVQ_OK) return st;
        if (!slab_slot(b, slab, &slot)) {
            b->n_slabs = saved;
            *fits = false;
            return KVQ_OK;
        }
        words[i] = ((cl_ulong)slot << KVQ_SLOT_SHIFT) | (cl_ulong)offset;
    }
    return KVQ_OK;
}

static bool consecutive(const uint32_t *positions, uint32_t n)
{
    for (uint32_t t = 1; t < n; t++)
        if (positions[t] != positions[0] + t) return false;
    return true;
}

/* Stages sequences [first, first + *count) of the batch: as many as share KVQ_BATCH_SLABS slabs
 * (at least one: a sequence's 18 arrays always fit). */
static kvq_status fused_batch_stage(kvq_backend_context *ctx, const kvq_backend_tensor *const *keys,
                                    const kvq_backend_tensor *const *values, const uint32_t *const *positions,
                                    const kvq_rope *rope, uint32_t first, uint32_t available, fused_batch *b)
{
    uint32_t d = b->d, half = d / 2u;
    b->words = calloc((size_t)available * KVQ_SEQ_WORDS, sizeof *b->words);
    if (b->words == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "attention batch: out of host memory");
    size_t n_positions = 0, n_rows = 0;
    b->n_seq = 0;
    b->max_tiles = 0;
    for (uint32_t i = 0; i < available; i++) {
        const kvq_backend_tensor *k = keys[first + i], *v = values[first + i];
        cl_ulong *w = b->words + (size_t)i * KVQ_SEQ_WORDS;
        bool k_fits = false, v_fits = false;
        uint32_t before = b->n_slabs;
        kvq_status st = tensor_words(ctx, b, k, w + KVQ_SEQ_KEYS, &k_fits);
        if (st == KVQ_OK && k_fits) st = tensor_words(ctx, b, v, w + KVQ_SEQ_VALUES, &v_fits);
        if (st != KVQ_OK) return st;
        if (!k_fits || !v_fits) {
            b->n_slabs = before;
            break; /* the next launch takes it */
        }
        const kvq_qtensor *kh = &k->header, *vh = &v->header;
        uint32_t n = kh->n_tokens;
        const uint32_t *p = positions[first + i];
        w[KVQ_SEQ_N_TOKENS] = n;
        w[KVQ_SEQ_K_SCHEME] = (cl_ulong)kh->scheme;
        w[KVQ_SEQ_K_BITS] = kh->bits;
        w[KVQ_SEQ_K_LAYOUT] = (cl_ulong)ocl_param_layout(kh);
        w[KVQ_SEQ_K_GROUP] = kh->group_size > 0 ? kh->group_size : 1u;
        w[KVQ_SEQ_V_SCHEME] = (cl_ulong)vh->scheme;
        w[KVQ_SEQ_V_BITS] = vh->bits;
        w[KVQ_SEQ_V_GROUP] = vh->group_size;
        w[KVQ_SEQ_CONSECUTIVE] = consecutive(p, n);
        w[KVQ_SEQ_POSITIONS] = w[KVQ_SEQ_CONSECUTIVE] ? p[0] : n_positions;
        w[KVQ_SEQ_ROPE_ROW] = n_rows;
        if (!w[KVQ_SEQ_CONSECUTIVE]) n_positions += n;
        n_rows += n;
        size_t tiles = (n + b->tile - 1u) / b->tile;
        if (tiles > b->max_tiles) b->max_tiles = tiles;
        b->n_seq++;
    }
    b->n_positions = n_positions > 0 ? n_positions : 1u;
    b->positions = calloc(b->n_positions, sizeof *b->positions);
    if (b->positions == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "attention batch: out of host memory");
    for (uint32_t i = 0; i < b->n_seq; i++) {
        const cl_ulong *w = b->words + (size_t)i * KVQ_SEQ_WORDS;
        if (!w[KVQ_SEQ_CONSECUTIVE])
            memcpy(b->positions + w[KVQ_SEQ_POSITIONS], positions[first + i],
                   (size_t)w[KVQ_SEQ_N_TOKENS] * sizeof *b->positions);
    }
    if (b->pairing == KVQ_ROPE_NONE) {
        b->rope_bytes = sizeof(float);
        b->rope = calloc(1, b->rope_bytes);
    } else if (!b->use_table) {
        /* S9.3: theta_i = pow(base, -2i/d) in double, as the reference forms it; then the fused
         * kernel's step table, cis(o theta_i) for o < KVQ_ROPE_STEP_OFFSETS (attention_batch.h). */
        b->rope_bytes = ((size_t)half + 2u * KVQ_ROPE_STEP_OFFSETS * half) * sizeof(double);
        double *theta = malloc(b->rope_bytes);
        for (uint32_t i = 0; theta != NULL && i < half; i++)
            theta[i] = pow((double)rope->base, -2.0 * (double)i / (double)d);
        for (uint32_t o = 0; theta != NULL && o < KVQ_ROPE_STEP_OFFSETS; o++)
            for (uint32_t i = 0; i < half; i++) {
                double angle = fmod((double)o * theta[i], 6.283185307179586); /* as the kernel forms an angle */
                theta[half + 2u * ((size_t)o * half + i)] = cos(angle);
                theta[half + 2u * ((size_t)o * half + i) + 1u] = sin(angle);
            }
        b->rope = theta;
    } else {
        /* No fp64 on the device: the reference's own cos/sin (kvq_rope_angle), one pair per (token, i). */
        b->rope_bytes = n_rows * half * 2u * sizeof(float);
        float *table = malloc(b->rope_bytes > 0 ? b->rope_bytes : 1u);
        for (uint32_t i = 0; table != NULL && i < b->n_seq; i++) {
            const cl_ulong *w = b->words + (size_t)i * KVQ_SEQ_WORDS;
            for (uint32_t t = 0; t < (uint32_t)w[KVQ_SEQ_N_TOKENS]; t++)
                for (uint32_t j = 0; j < half; j++) {
                    size_t e = (((size_t)w[KVQ_SEQ_ROPE_ROW] + t) * half + j) * 2u;
                    kvq_rope_angle(rope, d, j, positions[first + i][t], &table[e], &table[e + 1u]);
                }
        }
        b->rope = table;
    }
    if (b->rope == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "attention batch: RoPE data: out of host memory");
    return KVQ_OK;
}

/* The device buffers of one staged batch and the batch itself: what its two launches read. */
typedef struct fused_launch {
    const fused_batch *b;
    cl_mem seqs, positions, rope, q, out, part_m, part_l, part_o;
} fused_launch;

/* kvq_attention_partial_batch, then kvq_attention_combine_batch, on the staged buffers. */
static kvq_status fused_batch_launch(kvq_backend_context *ctx, void *user)
{
    fused_launch *l = user;
    const fused_batch *b = l->b;
    uint32_t d = b->d, n_q = b->n_q;
    float scale = (float)(1.0 / sqrt((double)d)); /* S12.3 allows scaling by fl32(1/sqrt(d)) */
    ocl_arg args[KVQ_BATCH_SLABS + 18];
    size_t n_args = 0;
    /* Unused slab arguments repeat slab 0: every argument is a valid buffer. */
    for (uint32_t i = 0; i < KVQ_BATCH_SLABS; i++) args[n_args++] = OCL_MEM(b->slabs[i < b->n_slabs ? i : 0]);
    args[n_args++] = OCL_MEM(l->seqs);
    args[n_args++] = OCL_MEM(l->positions);
    args[n_args++] = OCL_I32(b->pairing);
    args[n_args++] = OCL_I32(b->use_table);
    args[n_args++] = OCL_MEM(l->rope);
    args[n_args++] = OCL_MEM(l->q);
    args[n_args++] = OCL_U32(n_q);
    args[n_args++] = OCL_F32(scale);
    args[n_args++] = OCL_U32(d);
    args[n_args++] = OCL_U32(b->tile);
    args[n_args++] = OCL_U64(b->max_tiles);
    args[n_args++] = OCL_MEM(l->part_m);
    args[n_args++] = OCL_MEM(l->part_l);
    args[n_args++] = OCL_MEM(l->part_o);
    /* Local arrays in multiples of 16 bytes: a runtime that lays them out one after another (as
     * NVIDIA's does) then starts the double2 RoPE base on a 16-byte boundary; the H200 faulted
     * (CL_INVALID_COMMAND_QUEUE) when a tile of 59 rows of 129 floats left it at 12 mod 16. */
    args[n_args++] = OCL_LOCAL(local_bytes((size_t)b->tile * (size_t)KVQ_TILE_STRIDE(d) * sizeof(float)));
    args[n_args++] = OCL_LOCAL(local_bytes((size_t)OCL_FUSED_MAX_Q * b->tile * sizeof(float)));
    /* the tile's base cis(p0 theta_i), d/2 double pairs, where the device has fp64 (kvq_rope_base_t) */
    args[n_args++] = OCL_LOCAL(local_bytes(ctx->fp64 ? (size_t)(d / 2u) * 2u * sizeof(double) : 2u * sizeof(float)));
    /* ocl_launch with 0 items only sets the arguments: the grid is two-dimensional. */
    kvq_status st = ocl_launch(ctx, OCL_K_ATTENTION_PARTIAL_BATCH, args, n_args, 0, 0, false);
    size_t wg = kernel_work_group(ctx, OCL_K_ATTENTION_PARTIAL_BATCH, 128u);
    size_t global[2] = {b->max_tiles * wg, b->n_seq}, local[2] = {wg, 1};
    cl_int err = st == KVQ_OK ? clEnqueueNDRangeKernel(ctx->queue, ctx->kernels[OCL_K_ATTENTION_PARTIAL_BATCH], 2,
                                                        NULL, global, local, 0, NULL, NULL)
                              : CL_SUCCESS;
    if (err != CL_SUCCESS) st = ocl_from_cl(ctx, err, "launching kvq_attention_partial_batch");
    if (st == KVQ_OK) {
        ocl_arg combine[] = {OCL_MEM(l->seqs),  OCL_MEM(l->part_m),    OCL_MEM(l->part_l), OCL_MEM(l->part_o),
                             OCL_U64(b->n_seq), OCL_U64(b->max_tiles), OCL_U32(b->tile),   OCL_U32(n_q),
                             OCL_U32(d),        OCL_MEM(l->out)};
        st = ocl_launch(ctx, OCL_K_ATTENTION_COMBINE_BATCH, combine, sizeof combine / sizeof *combine,
                        (size_t)b->n_seq * n_q * d, 0, true);
    }
    return st;
}

/* The two launches for the staged sequences (as timer says: once, or repeated and timed);
 * result[n_seq][n_q][d] on the host. */
static kvq_status fused_batch_run(kvq_backend_context *ctx, const fused_batch *b, const float *rotated,
                                  float *result, kvq_host_timer *timer)
{
    uint32_t d = b->d, n_q = b->n_q;
    size_t q_bytes = (size_t)b->n_seq * n_q * d * sizeof(float);
    size_t parts = b->max_tiles * b->n_seq * n_q;
    fused_launch l;
    memset(&l, 0, sizeof l);
    l.b = b;
    kvq_status st = ocl_buffer(ctx, (size_t)b->n_seq * KVQ_SEQ_WORDS * sizeof(cl_ulong), b->words, false, &l.seqs,
                               "attention descriptors");
    if (st == KVQ_OK)
        st = ocl_buffer(ctx, b->n_positions * sizeof(uint32_t), b->positions, false, &l.positions, "key positions");
    if (st == KVQ_OK) st = ocl_buffer(ctx, b->rope_bytes, b->rope, false, &l.rope, "rope data");
    if (st == KVQ_OK) st = ocl_buffer(ctx, q_bytes, rotated, false, &l.q, "queries");
    if (st == KVQ_OK) st = ocl_buffer(ctx, q_bytes, NULL, false, &l.out, "attention output");
    if (st == KVQ_OK) st = ocl_buffer(ctx, parts * sizeof(float), NULL, false, &l.part_m, "partial maxima");
    if (st == KVQ_OK) st = ocl_buffer(ctx, parts * sizeof(float), NULL, false, &l.part_l, "partial sums");
    if (st == KVQ_OK) st = ocl_buffer(ctx, parts * d * sizeof(float), NULL, false, &l.part_o, "partial outputs");
    if (st == KVQ_OK) st = ocl_timed(ctx, timer, fused_batch_launch, &l);
    if (st == KVQ_OK) st = ocl_read(ctx, l.out, 0, q_bytes, result, "reading the output");
    if (st != KVQ_OK) ocl_finish(ctx, "fused attention"); /* nothing still runs on what is released below */
    ocl_release(&l.seqs);
    ocl_release(&l.positions);
    ocl_release(&l.rope);
    ocl_release(&l.q);
    ocl_release(&l.out);
    ocl_release(&l.part_m);
    ocl_release(&l.part_l);
    ocl_release(&l.part_o);
    return st;
}

/* The fused path over n_seq checked sequences that share n_q, head_dim and rope: rotated queries
 * [n_seq][n_q][d] in, result [n_seq][n_q][d] out (host). */
static kvq_status attention_fused(kvq_backend_context *ctx, uint32_t n_seq, const kvq_backend_tensor *const *keys,
                                  const kvq_backend_tensor *const *values, const uint32_t *const *positions,
                                  const kvq_rope *rope, const float *rotated, uint32_t n_q, float *result,
                                  kvq_host_timer *timer)
{
    uint32_t d = keys[0]->header.head_dim;
    size_t per_seq = (size_t)n_q * d;
    kvq_status st = KVQ_OK;
    for (uint32_t first = 0; first < n_seq && st == KVQ_OK;) {
        fused_batch b;
        memset(&b, 0, sizeof b);
        b.n_q = n_q;
        b.d = d;
        b.tile = fused_tile_tokens(ctx, d);
        b.pairing = rope != NULL ? (int)rope->pairing : KVQ_ROPE_NONE;
        b.use_table = ctx->rope_host_table;
        st = fused_batch_stage(ctx, keys, values, positions, rope, first, n_seq - first, &b);
        if (st == KVQ_OK) st = fused_batch_run(ctx, &b, rotated + first * per_seq, result + first * per_seq, timer);
        first += b.n_seq;
        fused_batch_free(&b);
    }
    return st;
}

/* The CLBlast path's device work for one sequence on its staged inputs. */
typedef struct gemm_work {
    const kvq_backend_tensor *keys, *values;
    const rope_inputs *rope;
    cl_mem q, out;
    uint32_t n_q;
    float scale;
} gemm_work;

static kvq_status gemm_once(kvq_backend_context *ctx, void *user)
{
    const gemm_work *g = user;
    return attention_gemm(ctx, g->keys, g->values, g->rope, g->q, g->n_q, g->scale, g->out);
}

/* One sequence, checked, its device work as timer says (once, or repeated and timed). */
static kvq_status attention_one(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                const kvq_backend_tensor *values, const uint32_t *key_positions, const kvq_rope *rope,
                                const float *q, uint32_t n_q, uint32_t q_position, float *out, kvq_host_timer *timer)
{
    /* S11.1 in S13.4 order on the host (backends/common); keys/values may be a cache's tensors. */
    kvq_status st =
        kvq_host_check_attention(&ctx->host.error, keys, values, key_positions, rope, q, n_q, q_position, out);
    if (st != KVQ_OK) return st;
    uint32_t n = keys->header.n_tokens, d = keys->header.head_dim;
    size_t q_count = (size_t)n_q * d;
    float *rotated = malloc(q_count * sizeof *rotated), *result = malloc(q_count * sizeof *result);
    if (rotated == NULL || result == NULL) st = ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "queries: out of memory");
    if (st == KVQ_OK) st = rotate_queries(ctx, rope, d, n_q, q_position, q, rotated);
    if (st == KVQ_OK && ocl_attention_fused(ctx, n_q)) {
        st = attention_fused(ctx, 1, &keys, &values, &key_positions, rope, rotated, n_q, result, timer);
    } else if (st == KVQ_OK) {
        rope_inputs r = {0, 0, NULL, NULL};
        /* S12.3 allows scaling by fl32(1/sqrt(d)). */
        gemm_work g = {keys, values, &r, NULL, NULL, n_q, (float)(1.0 / sqrt((double)d))};
        st = rope_inputs_make(ctx, rope, key_positions, n, d, &r);
        if (st == KVQ_OK) st = ocl_buffer(ctx, q_count * sizeof(float), rotated, false, &g.q, "queries");
        if (st == KVQ_OK) st = ocl_buffer(ctx, q_count * sizeof(float), NULL, false, &g.out, "attention output");
        if (st == KVQ_OK) st = ocl_timed(ctx, timer, gemm_once, &g);
        if (st == KVQ_OK) st = ocl_read(ctx, g.out, 0, q_count * sizeof(float), result, "reading the output");
        rope_inputs_release(&r);
        ocl_release(&g.q);
        ocl_release(&g.out);
    }
    /* The result reaches the caller's buffer only when everything succeeded (S13.3). */
    if (st == KVQ_OK) memcpy(out, result, q_count * sizeof(float));
    free(rotated);
    free(result);
    return st;
}

kvq_status ocl_attention(kvq_backend_context *ctx, const kvq_backend_tensor *keys, const kvq_backend_tensor *values,
                         const uint32_t *key_positions, const kvq_rope *rope, const float *q, uint32_t n_q,
                         uint32_t q_position, float *out)
{
    return attention_one(ctx, keys, values, key_positions, rope, q, n_q, q_position, out, NULL);
}

kvq_status ocl_attention_decode(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                const kvq_backend_tensor *values, const uint32_t *key_positions_host,
                                const kvq_rope *rope, const float *q_host, uint32_t n_q, uint32_t q_position,
                                float *out_host)
{
    return ocl_attention(ctx, keys, values, key_positions_host, rope, q_host, n_q, q_position, out_host);
}

/* attention_decode_batch, its device work as timer says (NULL: once; else repeated and timed, each
 * run's time the sum of the spans of its launch groups, the fused path's one per group of sequences
 * that share the arena's slabs, the CLBlast path's one per sequence): time_attention_decode_batch's
 * device half (host_timer.h). */
kvq_status ocl_timed_batch(kvq_backend_context *ctx, uint32_t n_seq, const kvq_backend_tensor *const *keys,
                           const kvq_backend_tensor *const *values, const uint32_t *const *key_positions_host,
                           const kvq_rope *rope, const float *q_host, uint32_t n_q, const uint32_t *q_positions_host,
                           float *out_host, kvq_host_timer *timer)
{
    /* Each sequence as attention_decode checks it, in order; q and out are [n_seq][n_q][head_dim]. */
    kvq_status st = kvq_host_check_attention_batch(&ctx->host.error, n_seq, keys, values, key_positions_host, rope, q_host,
                                                   n_q, q_positions_host, out_host);
    if (st != KVQ_OK) return st;
    uint32_t d = keys[0]->header.head_dim;
    size_t per_seq = (size_t)n_q * d, count = (size_t)n_seq * per_seq;
    float *rotated = malloc(count * sizeof *rotated), *result = malloc(count * sizeof *result);
    if (rotated == NULL || result == NULL)
        st = ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "attention batch: out of host memory");
    if (st == KVQ_OK && ocl_attention_fused(ctx, n_q)) {
        for (uint32_t s = 0; s < n_seq && st == KVQ_OK; s++)
            st = rotate_queries(ctx, rope, d, n_q, q_positions_host[s], q_host + s * per_seq, rotated + s * per_seq);
        if (st == KVQ_OK)
            st = attention_fused(ctx, n_seq, keys, values, key_positions_host, rope, rotated, n_q, result, timer);
    } else {
        /* The CLBlast path, one sequence at a time, exactly as attention_decode runs it. */
        for (uint32_t s = 0; s < n_seq && st == KVQ_OK; s++) {
            st = attention_one(ctx, keys[s], values[s], key_positions_host[s], rope, q_host + s * per_seq, n_q,
                               q_positions_host[s], result + s * per_seq, timer);
            if (st != KVQ_OK) st = kvq_host_within(&ctx->host.error, st, "sequence %u: ", s);
        }
    }
    if (st == KVQ_OK) memcpy(out_host, result, count * sizeof(float));
    if (timer != NULL)
        snprintf(timer->kernel, sizeof timer->kernel, "%s",
                 ocl_attention_fused(ctx, n_q) ? "fused, one launch pair per step"
                                               : "CLBlast GEMMs, one sequence after another");
    free(rotated);
    free(result);
    return st;
}

kvq_status ocl_attention_decode_batch(kvq_backend_context *ctx, uint32_t n_seq, const kvq_backend_tensor *const *keys,
                                      const kvq_backend_tensor *const *values,
                                      const uint32_t *const *key_positions_host, const kvq_rope *rope,
                                      const float *q_host, uint32_t n_q, const uint32_t *q_positions_host,
                                      float *out_host)
{
    return ocl_timed_batch(ctx, n_seq, keys, values, key_positions_host, rope, q_host, n_q, q_positions_host, out_host,
                           NULL);
}
