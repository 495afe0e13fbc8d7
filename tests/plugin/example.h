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
 * The same sources build the correct plugin and four variants with one
 * realistic bug each, so that tests/plugin_test.sh can show that the
 * conformance runner catches them. KVQ_PLUGIN_BREAK is set by CMake. */
#define EX_BREAK_NONE 0
#define EX_BREAK_TIES 1    /* decision points from parameters not yet rounded to fp16 (example_uniform.c) */
#define EX_BREAK_OUTLIER 2 /* the last outlier of each group is not stored (example_quantize.c) */
#define EX_BREAK_SINK 3    /* the sink tokens are quantized (example_policy.c) */
#define EX_BREAK_ROPE 4    /* RoPE rotates the other pairing (example_attention.c) */
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
/* Final precision of every token of a head slice (sinks, policy, window, residual). */
void ex_token_precision(const kvq_head_config *config, const uint8_t *modality, uint32_t n_tokens,
                        uint8_t *precision);

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
/* S4.1 */
kvq_status ex_quantize_head(ex_error *err, const kvq_head_config *config, const float *x, uint32_t n_tokens,
                            uint32_t head_dim, const uint8_t *modality, kvq_backend_tensor **out);
/* A deep copy of a consistent host qtensor. */
kvq_status ex_tensor_copy(ex_error *err, const kvq_qtensor *src, kvq_backend_tensor **out);
/* S4.5: exact fp32 values; the tensor is consistent by construction. */
void ex_dequantize(const kvq_qtensor *qt, float *out);

/* ---- S9, S11: attention ------------------------------------------------- */
kvq_status ex_attention(ex_error *err, const kvq_qtensor *keys, const kvq_qtensor *values,
                        const uint32_t *key_positions, const kvq_rope *rope, const float *q, uint32_t n_q,
                        uint32_t q_position, float *out);

#endif /* KVQ_PLUGIN_EXAMPLE_H */
