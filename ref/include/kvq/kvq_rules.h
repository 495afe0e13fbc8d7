/*
 * kvq_rules.h - the spec's host-side rules, exported once from libkvq.
 *
 * Every implementation of kvq applies the same argument checks in the same
 * order (S13.4), decides the same final precision of every token (S4.1 step
 * 2) and lays a quantized slice out the same way (S4.4). The reference's own
 * functions are built on what this header declares, the built-in backends use
 * it through backends/common/, and a backend of your own that links libkvq
 * can call it instead of writing the rules again (docs/PORTING.md).
 *
 * A failing check returns its kvq_status and records the reference's message
 * (kvq_last_error(), naming the argument and what is wrong), exactly as the
 * reference function that makes the check would. `name` arguments are how the
 * message calls the argument, e.g. "config" or "key_config". Nothing here
 * allocates memory for the caller except kvq_cache_configs_make.
 */
#ifndef KVQ_KVQ_RULES_H
#define KVQ_KVQ_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "kvq/kvq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- checks -- */
/* S1.3: every x[i] (i < n) finite with |x| <= 65504, in index order; the
 * message names `name` and the first bad index. */
kvq_status kvq_check_finite(const float *x, size_t n, const char *name);

/* S4.1 step 1, check 2: the enum fields of a configuration (role, key mode,
 * beyond_range of calibrated keys, policy rule, scheme); config NULL fails
 * with KVQ_ERR_NULL_ARGUMENT. */
kvq_status kvq_head_config_check_enums(const kvq_head_config *config, const char *name);
/* S4.1 step 1, checks 2 and 4-9 for head_dim: everything about a
 * configuration that depends neither on n_tokens nor on the input values. */
kvq_status kvq_head_config_check(const kvq_head_config *config, uint32_t head_dim, const char *name);
/* S4.1 step 1, check 10, for a configuration kvq_head_config_check accepted
 * (kvq_check_counts is this after the configuration checks). */
kvq_status kvq_head_config_check_counts(const kvq_head_config *config, uint32_t n_tokens, uint32_t head_dim);
/* S4.1 step 1, checks 1-10 of kvq_quantize_head(config, x, n_tokens,
 * head_dim, modality, out) in their order: everything but the input values
 * (check 11, kvq_check_finite(x, n_tokens * head_dim, "x")) and the modality
 * bytes (check 12, made by kvq_token_precision), which an implementation may
 * check where its data is, as long as it reports 11 before 12. */
kvq_status kvq_quantize_head_check(const kvq_head_config *config, const float *x, uint32_t n_tokens,
                                   uint32_t head_dim, const void *out);

/* S9.1: a RoPE configuration for head_dim (pairing, head_dim, base). */
kvq_status kvq_rope_check(const kvq_rope *rope, uint32_t head_dim);
/* S11.1, every check of kvq_attention_decode in its order, on the scalar
 * fields of keys and values (role, n_tokens, head_dim; their arrays are not
 * read, so a backend passes the header of its own tensors), then the
 * positions and the queries' values. keys or values NULL fail as NULL
 * arguments. */
kvq_status kvq_attention_check(const kvq_qtensor *keys, const kvq_qtensor *values, const uint32_t *key_positions,
                               const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                               const void *out);

/* ----------------------------------------------------- token precision -- */
/* S4.1 step 2 after the policy decisions: the recent window (S10.4), then for
 * online keys the residual rule (S4.3), with S10.5's precedence. One index
 * contract for every caller: decided[0 .. n_tokens) are the S10.3 decisions
 * of the whole sequence and precision has n_tokens entries too; the function
 * writes precision[t] for every t in [start, n_tokens) and returns start,
 * which is `from`, or for online keys the first token of the block holding
 * `from` (a block is decided by all of its tokens). Tokens before start are
 * neither read nor written, so a cache passes its first token that is not
 * final (S15.3). config must be one kvq_head_config_check accepted. */
uint32_t kvq_final_precision(const kvq_head_config *config, uint32_t n_tokens, const uint8_t *decided,
                             uint32_t from, uint8_t *precision);

/* ------------------------------------------------------- S4.4 layout -- */
/* Where the group parameters of element (t, c) are (S4.2, S4.3). The values
 * are part of the device layouts of the backends (kernels/opencl take them
 * as they are here). */
typedef enum kvq_param_layout {
    KVQ_PARAMS_VALUES = 0,         /* [n_tokens][head_dim / group_size]: groups of group_size channels */
    KVQ_PARAMS_KEYS_ONLINE = 1,    /* [ceil(n_tokens / group_size)][head_dim]: blocks of group_size tokens */
    KVQ_PARAMS_KEYS_CALIBRATED = 2 /* [head_dim]: one fixed pair per channel */
} kvq_param_layout;

/* The layout of a slice of `role` (key_mode is read for keys only). */
kvq_param_layout kvq_param_layout_of(kvq_role role, kvq_key_mode key_mode);
/* The number of parameter pairs of n_tokens tokens in `layout`; group_size is
 * the qtensor's (values: channels per group, online keys: tokens per block,
 * both >= 1; calibrated keys: ignored). */
uint64_t kvq_param_count(kvq_param_layout layout, uint32_t group_size, uint64_t n_tokens, uint32_t head_dim);
/* The index into params of element (token, channel). */
static inline size_t kvq_param_index(kvq_param_layout layout, uint32_t group_size, uint32_t head_dim, size_t token,
                                     uint32_t channel)
{
    if (layout == KVQ_PARAMS_VALUES) return token * (size_t)(head_dim / group_size) + channel / group_size;
    if (layout == KVQ_PARAMS_KEYS_ONLINE) return token / group_size * (size_t)head_dim + channel;
    return channel;
}
/* Entries of outlier_ptr: one per token (values, CSR) or per channel (keys,
 * CSC), plus one. */
size_t kvq_outlier_ptr_entries(kvq_role role, uint32_t n_tokens, uint32_t head_dim);
/* The scalar fields of a slice of n_tokens x head_dim quantized under config
 * (role, key_mode, scheme, bits, sizes, group_size as S4.4 stores it,
 * codebook, row_bytes, n_params); n_fp16_rows and n_outliers are 0 and every
 * array pointer NULL, for the caller to fill. config must be one
 * kvq_head_config_check accepted for head_dim. */
void kvq_qtensor_header_for(const kvq_head_config *config, uint32_t n_tokens, uint32_t head_dim, kvq_qtensor *header);
/* S4.4: a qtensor is consistent (the rules S4.5 lists and the finite-values
 * rule), so that nothing reading it can go out of bounds or decode infinity:
 * what kvq_dequantize_head checks first. A backend checks a tensor it is
 * given (tensor_upload) with it once, and then trusts it. */
kvq_status kvq_qtensor_validate(const kvq_qtensor *qt);

/* ------------------------------------------------------------ S15 cache -- */
/* S15.1, every check of kvq_cache_create in its order: NULL arguments (out is
 * only compared with NULL), the roles, both configurations for head_dim, and
 * one policy for keys and values. */
kvq_status kvq_cache_check_configs(const kvq_head_config *key_config, const kvq_head_config *value_config,
                                   uint32_t head_dim, const void *out);
/* A cache's own copy of its two configurations (S15.1: the caller's may go
 * away): NUQ codebooks and calibrated keys' channel ranges belong to it.
 * config[r] points into the struct itself, so it must not be moved or copied
 * once made. */
typedef struct kvq_cache_configs {
    kvq_head_config config[2];        /* [KVQ_ROLE_KEYS], [KVQ_ROLE_VALUES] */
    kvq_codebook codebook[2];         /* what config[r].quantizer.codebook points to (NUQ) */
    kvq_channel_range *channel_range; /* calibrated keys: [head_dim]; else NULL */
} kvq_cache_configs;
/* Fills *out for configurations kvq_cache_check_configs accepted; fails only
 * with KVQ_ERR_OUT_OF_MEMORY (*out then holds nothing to release). */
kvq_status kvq_cache_configs_make(const kvq_head_config *key_config, const kvq_head_config *value_config,
                                  uint32_t head_dim, kvq_cache_configs *out);
void kvq_cache_configs_release(kvq_cache_configs *configs);

/* What S15.2's checks read of a cache before an append. */
typedef struct kvq_cache_state {
    const kvq_cache_configs *configs;
    uint32_t head_dim;
    uint32_t length;        /* tokens appended so far */
    uint32_t last_position; /* position of token length - 1; read only when length > 0 */
} kvq_cache_state;
/* S15.2, the checks of kvq_cache_append before the input values, in its
 * order: keys or values NULL, n_new 0, the token limit, the counts of the
 * whole sequence (S4.4; keys, then values), every new position (given, or by
 * kvq_cache_position). Then come kvq_check_finite of keys and of values, and
 * the modality bytes (kvq_token_precision). */
kvq_status kvq_cache_append_check(const kvq_cache_state *cache, const float *keys, const float *values,
                                  const uint32_t *positions, uint32_t n_new);
/* S15.2: the position of new token i: positions[i], or when positions is NULL
 * the previous last position + 1 + i (from 0 in an empty cache). */
uint32_t kvq_cache_position(const kvq_cache_state *cache, const uint32_t *positions, uint32_t i);

#ifdef __cplusplus
}
#endif
#endif /* KVQ_KVQ_RULES_H */
