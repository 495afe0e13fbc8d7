/*
 * kvq.h - public C API of the kvq reference library.
 *
 * Every declaration names the section of spec/ that defines it (e.g. "S3.2"
 * means spec/03-uniform.md, section 3.2). The reference implementation in
 * ref/src/ follows those sections line for line; it is scalar C11 with no
 * SIMD, no threads and no fast-math.
 *
 * Conventions (S1):
 *  - A "head slice" is one layer's, one head's keys or values: a row-major
 *    [n_tokens][head_dim] array. Row t is token t, column c is channel c.
 *  - Inputs are fp32 arrays holding finite values with |x| <= 65504 (the fp16
 *    range); fp16 data is widened exactly with kvq_fp32_from_fp16 first.
 *  - Every function that can fail returns kvq_status. On failure no output
 *    buffer is written and kvq_last_error() says which argument was wrong.
 *  - Objects returned through a `T **out` argument are allocated by kvq and
 *    released with the matching *_free function; on failure *out is untouched.
 */
#ifndef KVQ_KVQ_H
#define KVQ_KVQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* S0: the version of the specification this library implements. */
#define KVQ_SPEC_VERSION_MAJOR 1
#define KVQ_SPEC_VERSION_MINOR 3
#define KVQ_SPEC_VERSION_PATCH 0
#define KVQ_SPEC_VERSION_STRING "1.3.0"

/* Limits (S1.4). */
#define KVQ_MAX_HEAD_DIM 1024u
#define KVQ_MAX_TOKENS 0x40000000u /* 2^30 tokens in one head slice */
#define KVQ_MAX_POSITION 0x7FFFFFFFu
#define KVQ_MAX_LEVELS 256u        /* 2^8: largest code alphabet */

/* ------------------------------------------------------------------ S13 -- */
/* Errors. Codes are stable across versions; new ones are only appended. */
typedef enum kvq_status {
    KVQ_OK = 0,
    KVQ_ERR_NULL_ARGUMENT = 1,    /* a required pointer is NULL */
    KVQ_ERR_ZERO_SIZE = 2,        /* a size that must be >= 1 is 0 */
    KVQ_ERR_SIZE_MISMATCH = 3,    /* two sizes that must agree do not */
    KVQ_ERR_UNSUPPORTED_BITS = 4, /* bit width not allowed for this scheme */
    KVQ_ERR_BAD_GROUP_SIZE = 5,   /* group size does not divide / out of range */
    KVQ_ERR_HEAD_DIM_PACKING = 6, /* head_dim*bits not a multiple of 32, or too large */
    KVQ_ERR_NONFINITE_INPUT = 7,  /* NaN, infinity, or |x| > 65504 in an input */
    KVQ_ERR_BUDGET_RANGE = 8,     /* budget or outlier fraction out of range */
    KVQ_ERR_BAD_ENUM = 9,         /* an enum argument has no such value */
    KVQ_ERR_BAD_MODALITY = 10,    /* a modality byte is not text/image/other */
    KVQ_ERR_BAD_POSITION = 11,    /* a position is out of range */
    KVQ_ERR_BAD_CODEBOOK = 12,    /* codebook missing, unsorted, or outside [-1,1] */
    KVQ_ERR_BAD_CALIBRATION = 13, /* calibration thresholds missing or lo > hi */
    KVQ_ERR_OUT_OF_MEMORY = 14,
    KVQ_ERR_IO = 15,              /* a file could not be opened, read or written */
    KVQ_ERR_FILE_TRUNCATED = 16,  /* a file ends before its header says it should */
    KVQ_ERR_FILE_CORRUPT = 17,    /* bad magic, inconsistent header, or checksum mismatch */
    KVQ_ERR_FILE_VERSION = 18,    /* file format version not supported */
    KVQ_ERR_BAD_ARGUMENT = 19,    /* any other out-of-range argument */
    KVQ_STATUS_COUNT
} kvq_status;

/* Stable upper-case name of a status, e.g. "KVQ_ERR_ZERO_SIZE". */
const char *kvq_status_name(kvq_status status);
/* Message of the most recent failure in the calling thread ("" if none). */
const char *kvq_last_error(void);

/* ------------------------------------------------------------------- S2 -- */
/* IEEE binary16 <-> binary32, without any compiler half type. */
uint16_t kvq_fp16_from_fp32(float x);       /* round to nearest, ties to even */
uint16_t kvq_fp16_round_down(float x);      /* largest fp16 <= x (toward -inf) */
uint16_t kvq_fp16_round_up(float x);        /* smallest fp16 >= x (toward +inf) */
float kvq_fp32_from_fp16(uint16_t h);       /* exact */

/* ------------------------------------------------------------------- S3 -- */
typedef enum kvq_scheme {
    KVQ_SCHEME_UNIFORM_ASYM = 0, /* min/max: params a = minimum, b = step  (S3.2) */
    KVQ_SCHEME_UNIFORM_SYM = 1,  /* absmax:  params a = 0,       b = step  (S3.3) */
    KVQ_SCHEME_NUQ = 2           /* codebook: params a = centre, b = half-range (S6) */
} kvq_scheme;

/* The two fp16 numbers that every quantization group stores (S3.1). */
typedef struct kvq_group_params {
    uint16_t a; /* fp16 bits: minimum (asym), 0 (sym) or centre (NUQ) */
    uint16_t b; /* fp16 bits: step (asym, sym) or half-range (NUQ) */
} kvq_group_params;

/* S6: a non-uniform codebook of 2^bits sorted signposts in [-1, 1] and the
 * 2^bits - 1 decision thresholds between neighbours (S6.2). */
typedef struct kvq_codebook {
    uint32_t bits;                         /* 2, 3 or 4 */
    float signpost[16];                    /* ascending, first 2^bits used */
    float threshold[15];                   /* threshold[j] between signpost j and j+1 */
} kvq_codebook;

/* How one group of numbers becomes codes (S3, S6). */
typedef struct kvq_quantizer {
    kvq_scheme scheme;
    uint32_t bits;                /* uniform: 2, 3, 4, 8; NUQ: 2, 3, 4 */
    const kvq_codebook *codebook; /* NUQ only; NULL otherwise */
} kvq_quantizer;

kvq_status kvq_quantizer_check(const kvq_quantizer *q);
/* S3.2/S3.3/S6.3: group parameters from the dense elements' min and max. */
kvq_group_params kvq_group_params_from_range(const kvq_quantizer *q, float min, float max);
/* S3.4/S6.4: the code of x (0 .. 2^bits-1) under params p. */
uint32_t kvq_encode(const kvq_quantizer *q, kvq_group_params p, float x);
/* S3.5/S6.5: the exact fp32 value a code stands for. */
float kvq_decode(const kvq_quantizer *q, kvq_group_params p, uint32_t code);
/* S3.4: decision threshold k (1 <= k <= 2^bits-1) in the input domain:
 * x >= threshold(k) means code >= k. Used by conformance checkers (S12.2). */
float kvq_decision_threshold(const kvq_quantizer *q, kvq_group_params p, uint32_t k);

/* ------------------------------------------------------------------- S5 -- */
/* Bytes of one packed row of n codes of `bits` bits: n*bits/8 (S5.1). */
size_t kvq_packed_bytes(uint32_t n, uint32_t bits);
/* LSB-first little-endian bit stream (S5.2). n*bits must be a multiple of 8. */
void kvq_pack_codes(const uint8_t *codes, uint32_t n, uint32_t bits, uint8_t *packed);
void kvq_unpack_codes(const uint8_t *packed, uint32_t n, uint32_t bits, uint8_t *codes);
/* S5.3: head_dim fits the packing when head_dim*bits % 32 == 0 and
 * 1 <= head_dim <= KVQ_MAX_HEAD_DIM. */
kvq_status kvq_check_head_dim(uint32_t head_dim, uint32_t bits);

/* ------------------------------------------------------------------- S6 -- */
/* S6.1: the NormalFloat codebook for 2, 3 or 4 bits (tables in the spec). */
kvq_status kvq_codebook_normalfloat(uint32_t bits, kvq_codebook *out);
/* S6.2: a codebook from 2^bits signposts: checks they are finite, ascending
 * (equal neighbours allowed) and within [-1, 1]; computes the thresholds. */
kvq_status kvq_codebook_from_signposts(uint32_t bits, const float *signposts, kvq_codebook *out);

/* ------------------------------------------------------------------- S7 -- */
/* S7.1: how many outliers a vector of n elements has for a fraction given in
 * parts per million: each tail its own ceil(ppm * n / 2e6) (upper == lower);
 * total = min(upper + lower, n), the number of elements that are outliers. */
typedef struct kvq_outlier_count {
    uint32_t total, upper, lower;
} kvq_outlier_count;
kvq_outlier_count kvq_outlier_count_for(uint32_t n, uint32_t outlier_ppm);
/* S7.2: mark outliers among n elements x[i*stride] (i < n) that are also
 * eligible[i] (NULL = all eligible); is_outlier[i] = 1 or 0. */
kvq_status kvq_select_outliers(const float *x, uint32_t n, size_t stride, const uint8_t *eligible,
                               uint32_t outlier_ppm, uint8_t *is_outlier);

/* ------------------------------------------------------------------ S10 -- */
typedef enum kvq_modality {
    KVQ_MODALITY_TEXT = 0,
    KVQ_MODALITY_IMAGE = 1,
    KVQ_MODALITY_OTHER = 2
} kvq_modality;

typedef enum kvq_policy_rule {
    KVQ_POLICY_QUANTIZE_ALL = 0,  /* only sinks (and the recent window) stay fp16 */
    KVQ_POLICY_TEXT_CENTRIC = 1,  /* text tokens fill the fp16 budget */
    KVQ_POLICY_IMAGE_CENTRIC = 2  /* the inverse rule: image tokens fill it */
} kvq_policy_rule;

typedef struct kvq_token_policy {
    kvq_policy_rule rule;
    uint32_t budget_ppm;    /* fp16 budget as parts per million of tokens; default 100000 (10%) */
    uint32_t n_sinks;       /* attention sinks: the first n_sinks tokens (S8); default 1 */
    uint32_t recent_window; /* the newest tokens kept in fp16 until they age out (S10.4); default 0 */
} kvq_token_policy;

/* Why a token is, or is not, stored in fp16 (S10.5). */
typedef enum kvq_precision {
    KVQ_PREC_QUANTIZED = 0,
    KVQ_PREC_SINK = 1,     /* S8 */
    KVQ_PREC_POLICY = 2,   /* S10.3: chosen by the modality rule within the budget */
    KVQ_PREC_WINDOW = 3,   /* S10.4: in the recent window (temporary) */
    KVQ_PREC_RESIDUAL = 4  /* S4.3: keys in an incomplete per-channel block (temporary) */
} kvq_precision;

kvq_token_policy kvq_token_policy_default(void);
/* S10: per-token precision for tokens [n_before, n_before + n_new) appended
 * to a sequence that already holds n_before tokens of which hp_before were
 * chosen by the budget (KVQ_PREC_POLICY). modality[i] is token n_before+i's.
 * For a whole prompt pass n_before = hp_before = 0. Writes precision[i] as
 * KVQ_PREC_QUANTIZED, KVQ_PREC_SINK or KVQ_PREC_POLICY (window is applied by
 * the cache, S10.4). */
kvq_status kvq_token_precision(const kvq_token_policy *policy, const uint8_t *modality,
                               uint32_t n_before, uint32_t hp_before, uint32_t n_new,
                               uint8_t *precision);

/* ------------------------------------------------------------------- S4 -- */
typedef enum kvq_role { KVQ_ROLE_KEYS = 0, KVQ_ROLE_VALUES = 1 } kvq_role;

typedef enum kvq_key_mode {
    KVQ_KEYS_PER_CHANNEL_CALIBRATED = 0, /* S4.2: offline per-channel thresholds */
    KVQ_KEYS_PER_CHANNEL_ONLINE = 1      /* S4.3: per-channel groups over blocks of tokens */
} kvq_key_mode;

/* S4.2: one channel's calibrated range; elements outside it are outliers
 * (or clamped, kvq_beyond_range). */
typedef struct kvq_channel_range {
    float lo, hi;
} kvq_channel_range;

/* S7.3: what calibrated keys do with an element strictly outside its
 * channel's range [lo_c, hi_c]. */
typedef enum kvq_beyond_range {
    KVQ_BEYOND_RANGE_OUTLIERS = 0, /* a sparse fp16 outlier, stored exactly (dense-and-sparse; the default) */
    KVQ_BEYOND_RANGE_CLAMP = 1     /* no outlier: its code, 0 or the top code, clamps it to the range
                                      (KVQuant without sparse storage) */
} kvq_beyond_range;

/* Everything that decides how one head slice is quantized (S4). */
typedef struct kvq_head_config {
    kvq_role role;
    kvq_quantizer quantizer;
    kvq_key_mode key_mode;      /* keys only */
    uint32_t group_size;        /* values: channels per group, 0 = head_dim;
                                   keys online: tokens per block (>= 1) */
    uint32_t outlier_ppm;       /* values and online keys: outlier fraction per group */
    const kvq_channel_range *channel_range; /* calibrated keys: [n_channel_range] */
    kvq_token_policy policy;
    /* Calibrated keys only (S7.3; since spec 1.2.0, appended so that the
     * fields above keep their offsets): outliers (0, what a zeroed config
     * means) or clamping. Ignored for values and online keys. */
    kvq_beyond_range beyond_range;
    /* Calibrated keys only (S4.2; since spec 1.3.0, appended after
     * beyond_range): how many entries channel_range holds. It must equal
     * head_dim, else the call fails with KVQ_ERR_SIZE_MISMATCH instead of
     * reading past the array. 0, what a zeroed config holds, is valid for
     * values and online keys (which ignore it); calibrated keys must set it. */
    uint32_t n_channel_range;
} kvq_head_config;

/* A quantized head slice (S4.4 describes every field). Transparent so that
 * teaching material and checkers can read it; build it only with kvq. */
typedef struct kvq_qtensor {
    kvq_role role;
    kvq_key_mode key_mode;
    kvq_scheme scheme;
    uint32_t bits;
    uint32_t n_tokens, head_dim;
    uint32_t group_size;        /* values: channels per group; keys online: tokens per block; calibrated keys: n/a (0) */
    kvq_codebook codebook;      /* NUQ only (bits == 0 otherwise) */
    uint8_t *precision;         /* [n_tokens] kvq_precision */
    uint32_t *fp16_slot;        /* [n_tokens] row of fp16_rows, or UINT32_MAX if quantized */
    uint32_t n_fp16_rows;
    uint16_t *fp16_rows;        /* [n_fp16_rows][head_dim] fp16 bits, in token order */
    size_t row_bytes;           /* packed bytes per token row */
    uint8_t *codes;             /* [n_tokens][row_bytes]; rows of fp16 tokens are zero */
    uint32_t n_params;
    kvq_group_params *params;   /* values: [n_tokens][head_dim/group_size];
                                   keys online: [n_blocks][head_dim]; calibrated: [head_dim] */
    uint32_t n_outliers;
    uint32_t *outlier_ptr;      /* values: [n_tokens+1] CSR by token; keys: [head_dim+1] CSC by channel */
    uint32_t *outlier_index;    /* values: channel; keys: token (ascending within a channel) */
    uint16_t *outlier_value;    /* fp16 bits */
} kvq_qtensor;

/* S4.4: a qtensor counts its parameter pairs and outliers in 32 bits. KVQ_OK
 * when a slice of n_tokens x head_dim under config cannot need more than
 * 2^32 - 1 of either; else KVQ_ERR_BAD_ARGUMENT. It depends on the sizes and
 * the configuration only, never on the values, so that every implementation
 * refuses the same calls (kvq_quantize_head and kvq_cache_append check it
 * after the configuration and before the input values). */
kvq_status kvq_check_counts(const kvq_head_config *config, uint32_t n_tokens, uint32_t head_dim);
/* S4: quantize one head slice x[n_tokens][head_dim] into a new qtensor.
 * modality may be NULL (all tokens KVQ_MODALITY_IMAGE... see S10.1). */
kvq_status kvq_quantize_head(const kvq_head_config *config, const float *x, uint32_t n_tokens,
                             uint32_t head_dim, const uint8_t *modality, kvq_qtensor **out);
/* S4.5: the exact fp32 values the qtensor stands for, [n_tokens][head_dim]. */
kvq_status kvq_dequantize_head(const kvq_qtensor *qt, float *out);
void kvq_qtensor_free(kvq_qtensor *qt);
/* S4.4: a new qtensor with header's scalar fields and codebook, and zeroed
 * arrays of the sizes they imply (precision, fp16_slot: n_tokens; fp16_rows:
 * n_fp16_rows*head_dim; codes: n_tokens*row_bytes; params: n_params;
 * outlier_ptr: n_tokens+1 for values, head_dim+1 for keys; outlier_index and
 * outlier_value: n_outliers). header's array pointers are ignored. Used to
 * receive a backend's tensor (kvq_backend.h, tensor_read). */
kvq_status kvq_qtensor_alloc(const kvq_qtensor *header, kvq_qtensor **out);
/* A deep copy of qt (same as kvq_qtensor_alloc + copying every array). */
kvq_status kvq_qtensor_copy(const kvq_qtensor *qt, kvq_qtensor **out);

/* ---------------------------------------------------------- S6.9, S6.6 -- */
/* S6.9: per-channel thresholds from calibration samples x[n_samples][head_dim]:
 * per channel, the outlier_ppm fraction (each tail's count as S7.1) lies
 * outside [lo, hi]. */
kvq_status kvq_calibrate_channel_ranges(const float *x, uint32_t n_samples, uint32_t head_dim,
                                        uint32_t outlier_ppm, kvq_channel_range *out);

/* S6.6: Fisher-weighted k-means over normalized samples z[i] in [-1, 1] with
 * weights w[i] >= 0 (NULL = all 1). Deterministic: initialised from the
 * NormalFloat codebook, `iterations` Lloyd steps in double, fixed order. */
typedef struct kvq_kmeans_params {
    uint32_t bits;        /* 2, 3 or 4 */
    uint32_t iterations;  /* default 25; stops early when no assignment changes */
    uint32_t q_norm;      /* 1: apply Q-Norm (S6.7) to the result */
} kvq_kmeans_params;
kvq_status kvq_calibrate_codebook(const float *z, const float *weights, size_t n,
                                  const kvq_kmeans_params *params, kvq_codebook *out);
/* S6.6: the normalized samples (and their weights) that a head slice
 * contributes to codebook calibration under `config` (a NUQ config; its
 * codebook may be NULL). z and w_out must hold n_tokens*head_dim entries;
 * *n_out receives how many were written (dense, quantized elements only). */
kvq_status kvq_calibration_samples(const kvq_head_config *config, const float *x,
                                   const float *fisher, uint32_t n_tokens, uint32_t head_dim,
                                   const uint8_t *modality, float *z, float *w_out, size_t *n_out);

/* ------------------------------------------------------------------- S9 -- */
typedef enum kvq_rope_pairing {
    KVQ_ROPE_NONE = 0,
    KVQ_ROPE_HALF = 1,        /* rotate-half (LLaMA / GPT-NeoX): pairs (i, i + d/2) */
    KVQ_ROPE_INTERLEAVED = 2  /* GPT-J: pairs (2i, 2i + 1) */
} kvq_rope_pairing;

typedef struct kvq_rope {
    kvq_rope_pairing pairing;
    float base; /* default 10000 */
} kvq_rope;

/* S9.2: cos and sin of pair i's angle at `position`, correctly rounded fp32
 * of the exact real values (computed in double, S9.3). */
void kvq_rope_angle(const kvq_rope *rope, uint32_t head_dim, uint32_t pair, uint32_t position,
                    float *cos_out, float *sin_out);
/* S9.4: rotate one vector; in and out may alias. */
kvq_status kvq_rope_apply(const kvq_rope *rope, uint32_t head_dim, uint32_t position,
                          const float *in, float *out);

/* ------------------------------------------------------------------ S11 -- */
/* Decode attention for n_q query heads sharing one KV head (GQA; n_q = 1 is
 * plain MHA). q: [n_q][head_dim] pre-RoPE at q_position; keys and values
 * over the same n_tokens; key_positions: [n_tokens]. out: [n_q][head_dim].
 * Accumulates in double (S11.3). */
kvq_status kvq_attention_decode(const kvq_qtensor *keys, const kvq_qtensor *values,
                                const uint32_t *key_positions, const kvq_rope *rope,
                                const float *q, uint32_t n_q, uint32_t q_position, float *out);
/* S12.2: true when `got` may stand in for the reference code `expected` of x
 * (|got - expected| == 1 and x lies within the boundary window of the
 * threshold between them); also true when got == expected. */
int kvq_code_accepted(const kvq_quantizer *q, kvq_group_params p, float x, uint32_t expected, uint32_t got);
/* S12.3: the per-element bound |got - reference| <= bound[i] that an fp32
 * implementation of the same attention must meet. */
kvq_status kvq_attention_error_bound(const kvq_qtensor *keys, const kvq_qtensor *values,
                                     const uint32_t *key_positions, const kvq_rope *rope,
                                     const float *q, uint32_t n_q, uint32_t q_position,
                                     float *bound);

/* S12.4: precision profiles, the arithmetic an implementation of decode
 * attention may use. fp32 is S12.3; fp16 and bf16 let dequantized keys and
 * values, rotated keys and queries and the softmax weights be rounded to that
 * format (tensor-core kernels), with products and sums in fp32. */
typedef enum kvq_attention_profile {
    KVQ_PROFILE_FP32 = 0,
    KVQ_PROFILE_FP16 = 1,
    KVQ_PROFILE_BF16 = 2,
    KVQ_PROFILE_COUNT
} kvq_attention_profile;
/* "fp32", "fp16", "bf16"; "?" for anything else. */
const char *kvq_attention_profile_name(kvq_attention_profile profile);
/* The profile named `name` ("fp32", "fp16", "bf16"); KVQ_ERR_BAD_ENUM otherwise. */
kvq_status kvq_attention_profile_from_name(const char *name, kvq_attention_profile *out);
/* S12.4: the bound an implementation of `profile` must meet; for
 * KVQ_PROFILE_FP32 it equals kvq_attention_error_bound bit for bit. Checks
 * are S11.1's, then `profile` (KVQ_ERR_BAD_ENUM). */
kvq_status kvq_attention_error_bound_profile(const kvq_qtensor *keys, const kvq_qtensor *values,
                                             const uint32_t *key_positions, const kvq_rope *rope,
                                             const float *q, uint32_t n_q, uint32_t q_position,
                                             kvq_attention_profile profile, float *bound);

/* ------------------------------------------------------------------ S15 -- */
/* A growing KV cache for one head: append tokens, attend (S15). */
typedef struct kvq_cache kvq_cache;
kvq_status kvq_cache_create(const kvq_head_config *key_config, const kvq_head_config *value_config,
                            uint32_t head_dim, kvq_cache **out);
kvq_status kvq_cache_append(kvq_cache *cache, const float *keys, const float *values,
                            const uint8_t *modality, const uint32_t *positions, uint32_t n_new);
/* Read-only views of the cache's current keys and values (valid until the next append). */
const kvq_qtensor *kvq_cache_keys(const kvq_cache *cache);
const kvq_qtensor *kvq_cache_values(const kvq_cache *cache);
const uint32_t *kvq_cache_positions(const kvq_cache *cache);
uint32_t kvq_cache_length(const kvq_cache *cache);
void kvq_cache_free(kvq_cache *cache);

/* ------------------------------------------------------------------ S14 -- */
/* The deterministic generator of conformance inputs. */
typedef struct kvq_rng {
    uint64_t state;
} kvq_rng;
void kvq_rng_seed(kvq_rng *rng, uint64_t seed);
uint64_t kvq_rng_next_u64(kvq_rng *rng);
float kvq_rng_uniform(kvq_rng *rng);  /* [0, 1), multiples of 2^-24 */
float kvq_rng_normal(kvq_rng *rng);   /* approximately N(0,1), S14.2 */

/* S14.3, S14.6: which recipe kvq_synth_kv follows. */
typedef enum kvq_synth_profile {
    KVQ_SYNTH_STRESS = 0,    /* S14.3: exaggerated outlier channels, heavy tails, a sink 8x as large */
    KVQ_SYNTH_REALISTIC = 1  /* S14.6: calibrated to a real model's keys and values */
} kvq_synth_profile;

/* S14.3: synthetic KV for one layer and head. */
typedef struct kvq_synth_params {
    uint32_t n_tokens, head_dim;
    uint64_t seed;
    uint32_t n_outlier_channels; /* key channels with a large scale (S14.6: at the lowest-frequency RoPE pairs) */
    float tail_probability;      /* fraction of heavy-tailed elements */
    uint32_t sink_token;         /* 1: token 0 is scaled (stress: 8x; realistic: a smaller norm, S14.6) */
    uint32_t image_run;          /* image tokens per image (e.g. 576); 0 = all text */
    uint32_t text_run;           /* text tokens between images */
} kvq_synth_params;
/* S14.3: the stress profile, as kvq_synth_kv_profile(p, KVQ_SYNTH_STRESS, ...). */
kvq_status kvq_synth_kv(const kvq_synth_params *p, float *keys, float *values, uint8_t *modality);
/* S14.3 (stress) or S14.6 (realistic): the same parameters read by the profile's recipe. */
kvq_status kvq_synth_kv_profile(const kvq_synth_params *p, kvq_synth_profile profile, float *keys, float *values,
                                uint8_t *modality);

#ifdef __cplusplus
}
#endif

/* S17: the formats of other projects (ggml q8_0/q4_0, KIVI, fp8 e4m3). */
#include "kvq/kvq_peer.h"

#endif /* KVQ_KVQ_H */
