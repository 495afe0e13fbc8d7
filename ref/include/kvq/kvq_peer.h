/*
 * kvq_peer.h - peer formats (S17): the KV-cache formats of other projects,
 * specified exactly as those projects compute them, so that their kernels get
 * kvq's conformance treatment (exact classes, a boundary rule where the
 * arithmetic divides, attention at a precision profile):
 *   q8_0, q4_0  ggml / llama.cpp blocks of 32 elements along head_dim, fp16 scale (S17.2, S17.3)
 *   kivi        KIVI: keys per channel in groups of G tokens, values per token,
 *               an fp16 residual of the newest tokens, fp16 arithmetic (S17.4)
 *   fp8_e4m3    vLLM / FlashInfer: fp8 e4m3 codes of x / scale, saturated,
 *               one fp32 scale per tensor or per head (S17.5)
 * A peer tensor is a byte string in the peer's own layout (S17.1); keys are
 * stored after RoPE, as all three projects store them, so peer attention has
 * no rotation. Included by kvq.h.
 */
#ifndef KVQ_KVQ_PEER_H
#define KVQ_KVQ_PEER_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kvq_peer_format {
    KVQ_PEER_Q8_0 = 0,     /* ggml block_q8_0 */
    KVQ_PEER_Q4_0 = 1,     /* ggml block_q4_0 */
    KVQ_PEER_KIVI = 2,     /* KIVI (Liu et al. 2024), its repository's arithmetic */
    KVQ_PEER_FP8_E4M3 = 3, /* vLLM's fp8 KV cache (kv_cache_dtype "fp8_e4m3"), FlashInfer's fp8 pages */
    KVQ_PEER_FORMAT_COUNT
} kvq_peer_format;

/* One head slice in a peer format. Fields a format does not use must be 0
 * (bits may also be the format's own width: 8 for q8_0, 4 for q4_0, 8 for fp8). */
typedef struct kvq_peer_config {
    kvq_peer_format format;
    kvq_role role;       /* KIVI: keys (groups along tokens) or values (along channels); others: either */
    uint32_t bits;       /* KIVI: 2, 4 or 8 */
    uint32_t group_size; /* KIVI: keys: tokens per group (divides residual); values: channels per group */
    uint32_t residual;   /* KIVI: R >= 1, the newest tokens kept in fp16 (keys: n mod R of them, S17.4) */
    float scale;         /* fp8: positive, finite, normal; x / scale is encoded */
} kvq_peer_config;

/* "q8_0", "q4_0", "kivi", "fp8_e4m3"; "?" otherwise. */
const char *kvq_peer_format_name(kvq_peer_format format);
kvq_status kvq_peer_format_from_name(const char *name, kvq_peer_format *out);

/* S17.1: the configuration for n_tokens x head_dim (S13.4 order). */
kvq_status kvq_peer_check(const kvq_peer_config *config, uint32_t n_tokens, uint32_t head_dim);
/* The size of the tensor in bytes. */
kvq_status kvq_peer_bytes(const kvq_peer_config *config, uint32_t n_tokens, uint32_t head_dim, size_t *bytes);
/* S17.2-S17.5: x[n_tokens][head_dim] into data[kvq_peer_bytes]. */
kvq_status kvq_peer_quantize(const kvq_peer_config *config, const float *x, uint32_t n_tokens, uint32_t head_dim,
                             uint8_t *data);
/* The exact fp32 values a tensor stands for (class E). Refuses a tensor whose
 * scales or fp16 residual are not finite, or an fp8 NaN code. */
kvq_status kvq_peer_dequantize(const kvq_peer_config *config, const uint8_t *data, uint32_t n_tokens,
                               uint32_t head_dim, float *out);

/* S17.6: the parts of a tensor, for checkers. A parameter group is a block
 * (q8_0, q4_0) or a KIVI group; fp8 has none (its scale is in the config). */
typedef struct kvq_peer_group {
    uint32_t first_token, n_tokens, first_channel, n_channels; /* the elements it covers */
    int has_scale, has_min;
    uint16_t scale; /* fp16 bits: ggml's d, KIVI's scale */
    uint16_t min;   /* fp16 bits: KIVI's mn */
} kvq_peer_group;
typedef struct kvq_peer_element {
    int residual;   /* 1: stored in fp16 (KIVI's residual tokens); code and group are unused */
    uint16_t fp16;  /* a residual element's fp16 bits */
    uint32_t code;  /* as stored: q8_0 the int8 byte (0..255), q4_0 0..15, KIVI 0..2^bits-1, fp8 the byte */
    uint32_t group; /* its parameter group; UINT32_MAX for residual and fp8 elements */
} kvq_peer_element;
kvq_status kvq_peer_group_count(const kvq_peer_config *config, uint32_t n_tokens, uint32_t head_dim,
                                uint32_t *count);
kvq_status kvq_peer_group_at(const kvq_peer_config *config, const uint8_t *data, uint32_t n_tokens,
                             uint32_t head_dim, uint32_t group, kvq_peer_group *out);
kvq_status kvq_peer_element_at(const kvq_peer_config *config, const uint8_t *data, uint32_t n_tokens,
                               uint32_t head_dim, uint32_t token, uint32_t channel, kvq_peer_element *out);

/* S17.6 class B for peer codes: the code S17 gives element (token, channel)
 * of x under the parameters stored in `data` (an implementation's tensor
 * whose parameters passed kvq_peer_check_scale), and whether `got` stands in
 * for it: equal, or a neighbour with the scaled value within the window of
 * the boundary between them. data's other numbers are not checked (it may
 * hold NaN codes: they are simply not accepted). */
typedef struct kvq_peer_code_check {
    uint32_t reference; /* the code under data's parameters */
    double scaled;      /* u, the value the format rounds (x * id, (x - mn) / scale, x / scale) */
    double boundary;    /* m, the boundary between reference and got when they are neighbours; else NaN */
    double window;      /* the window at m; 0 when not neighbours */
    int accepted;
} kvq_peer_code_check;
kvq_status kvq_peer_check_code(const kvq_peer_config *config, const float *x, uint32_t n_tokens, uint32_t head_dim,
                               const uint8_t *data, uint32_t token, uint32_t channel, uint32_t got,
                               kvq_peer_code_check *out);
/* S17.6 for a group's stored scale, where it comes from a division (q8_0's
 * amax / 127, KIVI's range / (2^bits - 1)): got is accepted when equal, or the
 * other fp16 neighbour of a quotient within the window of their midpoint. */
typedef struct kvq_peer_scale_check {
    uint16_t reference;
    double quotient;  /* the exact quotient the scale rounds (q4_0: max / -8, exact) */
    double boundary;  /* the midpoint of reference and got when neighbours; else NaN */
    double window;
    int accepted;
} kvq_peer_scale_check;
kvq_status kvq_peer_check_scale(const kvq_peer_config *config, const float *x, uint32_t n_tokens, uint32_t head_dim,
                                uint32_t group, uint16_t got, kvq_peer_scale_check *out);

/* S17.7: decode attention over post-RoPE keys and values in peer formats
 * (they may differ), n_tokens each; q[n_q][head_dim] already rotated; out
 * [n_q][head_dim]. As S11.3-S11.4 in double. */
kvq_status kvq_peer_attention_decode(const kvq_peer_config *key_config, const uint8_t *keys,
                                     const kvq_peer_config *value_config, const uint8_t *values, uint32_t n_tokens,
                                     uint32_t head_dim, const float *q, uint32_t n_q, float *out);
/* S17.7: the class-A bound of an implementation of `profile` (S12.4). */
kvq_status kvq_peer_attention_error_bound(const kvq_peer_config *key_config, const uint8_t *keys,
                                          const kvq_peer_config *value_config, const uint8_t *values,
                                          uint32_t n_tokens, uint32_t head_dim, const float *q, uint32_t n_q,
                                          kvq_attention_profile profile, float *bound);

#ifdef __cplusplus
}
#endif
#endif /* KVQ_KVQ_PEER_H */
