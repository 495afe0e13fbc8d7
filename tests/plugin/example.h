/*
 * example.h - private declarations of the example third-party backend.
 *
 * This plugin is teaching material: it shows how a backend is written when all
 * you have are the two public headers, kvq/kvq_backend.h (the ABI) and
 * kvq/kvq.h (the shared types and constants). It never calls a kvq_* function
 * and does not link libkvq: every rule of the spec it needs (fp16 rounding,
 * thresholds, packing, outliers, policy, RoPE, attention) is implemented here
 * again, as a porter to a new device would have to.
 *
 * Everything here has hidden visibility (the CMake target sets it), so the
 * only exported symbol of the shared library is kvq_backend_entry.
 */
#ifndef KVQ_PLUGIN_EXAMPLE_H
#define KVQ_PLUGIN_EXAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvq/kvq_backend.h"

/* ---- deliberately broken builds ------------------------------------------
 * The same sources build the correct plugin and variants with one realistic
 * bug each, so that tests/plugin_test.sh can show that the conformance runner
 * catches them. KVQ_PLUGIN_BREAK is set by CMake. Bugs 5-16 are those an
 * independent check found kvq conform blind to before spec 1.2.0 (issue 11);
 * 16-18 crash or hang, which the runner must survive and report (issue 14). */
#define EX_BREAK_NONE 0
#define EX_BREAK_TIES 1            /* decision points from parameters not yet rounded to fp16 (example_uniform.c) */
#define EX_BREAK_OUTLIER 2         /* the last outlier of each group is not stored (example_quantize.c) */
#define EX_BREAK_SINK 3            /* the sink tokens are quantized (example_policy.c) */
#define EX_BREAK_ROPE 4            /* RoPE rotates the other pairing (example_attention.c) */
#define EX_BREAK_FP16_ROWS 5       /* fp16 rows rounded toward zero (example_quantize.c) */
#define EX_BREAK_OUTLIER_VALUES 6  /* outlier values rounded toward zero (example_quantize.c) */
#define EX_BREAK_ASYM_MIN 7        /* the asymmetric minimum rounded to nearest, not down (example_uniform.c) */
#define EX_BREAK_ONE_ROUNDING 8    /* b from one rounding of (max - a) * R, not two (example_uniform.c) */
#define EX_BREAK_OUTLIER_COUNT 9   /* spec 1.1.0's count: the total rounded to nearest (example_outliers.c) */
#define EX_BREAK_BLOCK_COUNT 10    /* online key outliers counted over the whole block (example_outliers.c) */
#define EX_BREAK_CLAMP 11          /* calibrated keys ignore beyond_range CLAMP (example_quantize.c) */
#define EX_BREAK_KEY_OUTLIER 12    /* production-format attention drops key outliers (example_attention.c) */
#define EX_BREAK_WEIGHTS_FP16 13   /* production-format attention rounds weights to fp16 (example_attention.c) */
#define EX_BREAK_WIDE_ROPE 14      /* the RoPE pair index in 8 bits: head_dim above 512 (example_attention.c) */
#define EX_BREAK_POSITIONS 15      /* default positions after explicit ones (example_cache.c) */
#define EX_BREAK_CRASH 16          /* abort() on head_dim above 256 (example_quantize.c) */
#define EX_BREAK_HANG 17           /* attention over 97 tokens waits forever (example_attention.c) */
#define EX_BREAK_SEGV 18           /* cache_attend past 64 tokens reads through a NULL pointer (example_cache.c) */
/* peer formats (S17, example_peer.c) */
#define EX_BREAK_Q8_0_SCALE 19     /* q8_0 codes from the stored fp16 scale */
#define EX_BREAK_Q4_0_NIBBLES 20   /* q4_0 packs elements 2i, 2i+1 in byte i */
#define EX_BREAK_KIVI_SCALE 21     /* KIVI's range kept in fp32 */
#define EX_BREAK_KIVI_RESIDUAL 22  /* KIVI keys keep the newest R tokens in fp16, as values do */
#define EX_BREAK_FP8_NAN 23        /* fp8 NaN from 480 on (PyTorch's conversion), no saturation */
#define EX_BREAK_FP8_K_SCALE 24    /* fp8 attention forgets the key scale */
/* the benchmarking slots (example_timing.c) */
#define EX_BREAK_TIMED_WORK 25     /* time_attention_decode_batch times attention without RoPE */
#ifndef KVQ_PLUGIN_BREAK
#define KVQ_PLUGIN_BREAK EX_BREAK_NONE
#endif

/* caps.max_tokens: with head_dim <= 1024 a slice then has fewer than 2^32
 * elements, so every count of a qtensor (n_params, n_outliers, all 32-bit)
 * fits. Larger slices are refused with KVQ_ERR_BAD_ARGUMENT. */
#define EX_MAX_TOKENS (1u << 21)

/* ---- errors (S13) ----------------------------------------------------------
 * Every failing call records a message naming the argument; the context's
 * last_error returns it. */
typedef struct ex_error {
    char message[320];
} ex_error;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
kvq_status ex_fail(ex_error *err, kvq_status status, const char *format, ...);

/* S1.3: finite and |x| <= 65504. */
bool ex_in_fp16_range(float x);
/* S1.3: the first element of x[0..n) that is not, reported as NONFINITE_INPUT. */
kvq_status ex_check_finite(ex_error *err, const float *x, size_t n, const char *name);

/* ---- S2: fp16 ----------------------------------------------------------- */
uint16_t ex_fp16_nearest(float x); /* round to nearest, ties to even */
uint16_t ex_fp16_down(float x);    /* largest fp16 <= x */
uint16_t ex_fp16_up(float x);      /* smallest fp16 >= x */
#if KVQ_PLUGIN_BREAK == EX_BREAK_FP16_ROWS || KVQ_PLUGIN_BREAK == EX_BREAK_OUTLIER_VALUES
uint16_t ex_fp16_toward_zero(float x); /* only the broken builds round this way */
#endif
float ex_fp16_to_fp32(uint16_t h); /* exact */

/* ---- S3: uniform quantization of one group ------------------------------ */
/* The (scheme, bits) pairs this backend supports: uniform asym/sym at 2, 3, 4, 8. */
kvq_status ex_check_quantizer(ex_error *err, const kvq_quantizer *q, const char *name);
/* S3.2-S3.4: the parameters of a group whose dense elements span [min, max],
 * and the code of every element x[i*stride] with eligible[i] (NULL = all),
 * written to codes[i*stride]. */
kvq_group_params ex_quantize_group(const kvq_quantizer *q, float min, float max, const float *x, uint32_t n,
                                   size_t stride, const uint8_t *eligible, uint8_t *codes);
/* S3.5: the exact value of a code. */
float ex_decode(const kvq_quantizer *q, kvq_group_params p, uint32_t code);

/* ---- S5: packing -------------------------------------------------------- */
kvq_status ex_check_head_dim(ex_error *err, uint32_t head_dim, uint32_t bits);
void ex_pack_row(const uint8_t *codes, uint32_t n, uint32_t bits, uint8_t *packed);
void ex_unpack_row(const uint8_t *packed, uint32_t n, uint32_t bits, uint8_t *codes);

/* ---- S7: outliers ------------------------------------------------------- */
/* Marks in is_outlier[0..n) the outliers among x[i*stride] with eligible[i]
 * (NULL = all eligible). Needs scratch for 2n (value, index) pairs. Returns
 * false only when scratch cannot be allocated. */
bool ex_select_outliers(const float *x, uint32_t n, size_t stride, const uint8_t *eligible, uint32_t ppm,
                        uint8_t *is_outlier);

/* ---- S8, S10, S4.3: token precision ------------------------------------- */
kvq_status ex_check_policy(ex_error *err, const kvq_token_policy *policy, const char *name);
/* S10.3: decisions (SINK, POLICY or QUANTIZED) of tokens n_before .. n_before + n_new - 1,
 * hp_before of the earlier ones POLICY; modality[i] is token n_before + i's (NULL: all image). */
void ex_decide(const kvq_token_policy *policy, const uint8_t *modality, uint32_t n_before, uint32_t hp_before,
               uint32_t n_new, uint8_t *decided);
/* S10.4, S4.3: the final precision of every token of a slice from its decisions (window, residual). */
void ex_final_precision(const kvq_head_config *config, const uint8_t *decided, uint32_t n, uint8_t *precision);

/* ---- S4: head slices ---------------------------------------------------- */
/* A backend tensor is a kvq_qtensor whose arrays this plugin allocated. */
struct kvq_backend_tensor {
    kvq_qtensor qt;
};

void ex_tensor_free(kvq_backend_tensor *t);
/* S4.4: sizes of the arrays of a qtensor with these scalar fields. */
size_t ex_outlier_ptr_count(const kvq_qtensor *qt);
/* S4.4/S4.5: a host qtensor is consistent (used by tensor_upload). */
kvq_status ex_check_qtensor(ex_error *err, const kvq_qtensor *qt, const char *name);
/* S4.1 checks 2 and 4-9 of a configuration (`name` as in messages, e.g. "key_config"). */
kvq_status ex_check_config(ex_error *err, const kvq_head_config *config, uint32_t head_dim, const char *name);
/* S4.1 check 11 (NULL modality: nothing to check). */
kvq_status ex_check_modality(ex_error *err, const uint8_t *modality, uint32_t n, const char *name);
/* S4.1 */
kvq_status ex_quantize_head(ex_error *err, const kvq_head_config *config, const float *x, uint32_t n_tokens,
                            uint32_t head_dim, const uint8_t *modality, kvq_backend_tensor **out);
/* S4.1 steps 2-7 for checked arguments, with the tokens' S10.3 decisions given (the cache's). */
kvq_status ex_quantize_decided(ex_error *err, const kvq_head_config *config, const float *x, uint32_t n_tokens,
                               uint32_t head_dim, const uint8_t *decided, kvq_backend_tensor **out);
/* A deep copy of a consistent host qtensor. */
kvq_status ex_tensor_copy(ex_error *err, const kvq_qtensor *src, kvq_backend_tensor **out);
/* S4.5: exact fp32 values; the tensor is consistent by construction. */
void ex_dequantize(const kvq_qtensor *qt, float *out);

/* ---- S15: the cache ------------------------------------------------------ */
kvq_status ex_cache_create(ex_error *err, const kvq_head_config *key_config, const kvq_head_config *value_config,
                           uint32_t head_dim, kvq_backend_cache **out);
kvq_status ex_cache_append(ex_error *err, kvq_backend_cache *cache, const float *keys, const float *values,
                           const uint8_t *modality, const uint32_t *positions, uint32_t n_new);
kvq_status ex_cache_attend(ex_error *err, kvq_backend_cache *cache, const kvq_rope *rope, const float *q,
                           uint32_t n_q, uint32_t q_position, float *out);
kvq_status ex_cache_view(ex_error *err, const kvq_backend_cache *cache, const kvq_backend_tensor **keys,
                         const kvq_backend_tensor **values);
void ex_cache_free(kvq_backend_cache *cache);

/* ---- S9, S11: attention ------------------------------------------------- */
/* S11.3-S11.4 in fp32 for one rotated query qr[d] over rotated keys k[n][d]
 * and values v[n][d]; e: scratch for n weights; o[d]. fp16_weights: the bug
 * of kvq_plugin_broken_weights_fp16 (false in every other build). */
void ex_attend_one(const float *k, const float *v, size_t n, size_t d, const float *qr, float *e, bool fp16_weights,
                   float *o);
kvq_status ex_attention(ex_error *err, const kvq_qtensor *keys, const kvq_qtensor *values,
                        const uint32_t *key_positions, const kvq_rope *rope, const float *q, uint32_t n_q,
                        uint32_t q_position, float *out);

/* ---- the optional slots (example_timing.c) -------------------------------- */
/* attention_decode_batch: every sequence as ex_attention, "sequence <s>: " before a failure's message. */
kvq_status ex_attention_batch(ex_error *err, uint32_t n_seq, const kvq_backend_tensor *const *keys,
                              const kvq_backend_tensor *const *values, const uint32_t *const *key_positions,
                              const kvq_rope *rope, const float *q, uint32_t n_q, const uint32_t *q_positions,
                              float *out);
kvq_status ex_device_info(ex_error *err, kvq_backend_device_info *info);
kvq_status ex_time_copy(ex_error *err, uint64_t bytes, kvq_backend_timing *timing);
kvq_status ex_time_attention_batch(ex_error *err, uint32_t n_seq, const kvq_backend_tensor *const *keys,
                                   const kvq_backend_tensor *const *values, const uint32_t *const *key_positions,
                                   const kvq_rope *rope, const float *q, uint32_t n_q, const uint32_t *q_positions,
                                   float *out, kvq_backend_timing *timing);

/* ---- S17: peer formats -------------------------------------------------- */
/* S17.1 checks of a configuration for n x d (`name` in messages). */
kvq_status ex_peer_check(ex_error *err, const kvq_peer_config *config, uint32_t n, uint32_t d, const char *name);
size_t ex_peer_bytes(const kvq_peer_config *config, uint32_t n, uint32_t d);
kvq_status ex_peer_quantize(ex_error *err, const kvq_peer_config *config, const float *x, uint32_t n, uint32_t d,
                            uint8_t *data);
kvq_status ex_peer_dequantize(ex_error *err, const kvq_peer_config *config, const uint8_t *data, uint32_t n,
                              uint32_t d, float *out);
kvq_status ex_peer_attention(ex_error *err, const kvq_peer_config *key_config, const uint8_t *keys,
                             const kvq_peer_config *value_config, const uint8_t *values, uint32_t n, uint32_t d,
                             const float *q, uint32_t n_q, float *out);

#endif /* KVQ_PLUGIN_EXAMPLE_H */
