/*
 * attention_batch.h - the layout of a batched attention launch, written once
 * for both sides: the host (backends/opencl/ocl_attention.c includes it) and
 * the kernels (the first source of the OpenCL program, so attention.cl sees
 * it). Plain integer macros only: valid C11 and OpenCL C.
 *
 * The arrays of every tensor lie in the context's slabs (ocl_arena.c); a
 * launch takes up to KVQ_BATCH_SLABS of them as arguments, and an array's
 * location is slot << KVQ_SLOT_SHIFT | byte offset in that slab. Each sequence
 * has KVQ_SEQ_WORDS 64-bit words of descriptor: the locations of the nine
 * arrays of its keys, then of its values, in KVQ_ARRAY_* order, then the
 * scalars below.
 */
#ifndef KVQ_ATTENTION_BATCH_H
#define KVQ_ATTENTION_BATCH_H

/* Eighteen: the nine arrays of one sequence's keys and values always fit one launch. */
#define KVQ_BATCH_SLABS 18
#define KVQ_SLOT_SHIFT 56

/* The nine arrays of a tensor, in descriptor order. */
#define KVQ_ARRAY_PRECISION 0
#define KVQ_ARRAY_FP16_SLOT 1
#define KVQ_ARRAY_FP16_ROWS 2
#define KVQ_ARRAY_CODES 3
#define KVQ_ARRAY_PARAMS 4
#define KVQ_ARRAY_CODEBOOK 5
#define KVQ_ARRAY_OUTLIER_PTR 6
#define KVQ_ARRAY_OUTLIER_INDEX 7
#define KVQ_ARRAY_OUTLIER_VALUE 8
#define KVQ_TENSOR_ARRAYS 9

#define KVQ_SEQ_WORDS 32
#define KVQ_SEQ_KEYS 0
#define KVQ_SEQ_VALUES 9
#define KVQ_SEQ_N_TOKENS 18
#define KVQ_SEQ_K_SCHEME 19
#define KVQ_SEQ_K_BITS 20
#define KVQ_SEQ_K_LAYOUT 21
#define KVQ_SEQ_K_GROUP 22
#define KVQ_SEQ_V_SCHEME 23
#define KVQ_SEQ_V_BITS 24
#define KVQ_SEQ_V_GROUP 25
#define KVQ_SEQ_CONSECUTIVE 26 /* 1: key positions are pos0 + t */
#define KVQ_SEQ_POSITIONS 27   /* pos0, or the first of the sequence's entries in `positions` */
#define KVQ_SEQ_ROPE_ROW 28    /* the sequence's first row of the host cos/sin table */

/* Floats per row of the fused kernel's local key/value tile: head_dim + 1. The score loop's
 * work-item t reads row t; with rows of head_dim floats (a multiple of the 32 local-memory banks)
 * every work-item of a wavefront read the same bank. */
#define KVQ_TILE_STRIDE(d) ((d) + 1u)

/* Offsets of the fused kernel's RoPE step table (rope_data after theta: cis(o theta_i) in double for
 * o < KVQ_ROPE_STEP_OFFSETS, pair-major within an offset); a tile has at most this many tokens. */
#define KVQ_ROPE_STEP_OFFSETS 64u

#endif /* KVQ_ATTENTION_BATCH_H */
