/*
 * peer_internal.h - what each peer format (S17) provides to peer.c, which
 * checks arguments in S13.4's order and dispatches. Every function below
 * runs only after peer.c validated the configuration, sizes and pointers.
 */
#ifndef KVQ_PEER_INTERNAL_H
#define KVQ_PEER_INTERNAL_H

#include "internal.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct peer_ops {
    /* format-specific configuration fields and sizes (S17.1) */
    kvq_status (*check)(const kvq_peer_config *c, uint32_t n, uint32_t d);
    size_t (*bytes)(const kvq_peer_config *c, uint32_t n, uint32_t d);
    /* the input's domain beyond S1.3's finiteness (NULL: nothing more) */
    kvq_status (*check_input)(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d);
    void (*quantize)(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, uint8_t *data);
    /* a tensor's stored numbers are usable (finite scales, no NaN code) */
    kvq_status (*check_data)(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d);
    void (*dequantize)(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, float *out);
    uint32_t (*group_count)(const kvq_peer_config *c, uint32_t n, uint32_t d);
    void (*group_at)(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, uint32_t g,
                     kvq_peer_group *out);
    void (*element_at)(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, uint32_t t,
                       uint32_t ch, kvq_peer_element *out);
    /* S17.6: the reference code of (t, ch) under data's parameters, u, and the neighbours' boundary */
    void (*check_code)(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, const uint8_t *data,
                       uint32_t t, uint32_t ch, uint32_t got, kvq_peer_code_check *out);
    /* S17.6 for scales; NULL when the scale is exact (class E) */
    void (*check_scale)(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, uint32_t g, uint16_t got,
                        kvq_peer_scale_check *out);
    /* S17.7: per element, as kvq_dequantize_term_magnitudes: ma = |offset| (-1: stored in fp16),
     * mb = |scale * code term| (y: the dequantized values); *rounded_product: the format may round
     * that product to h before adding the offset (S12.4 (a), NUQ's term) */
    void (*magnitudes)(const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d, const float *y,
                       double *ma, double *mb, bool *rounded_product);
} peer_ops;

extern const peer_ops kvq_peer_q8_0_ops, kvq_peer_q4_0_ops, kvq_peer_kivi_ops, kvq_peer_fp8_ops;

/* Helpers shared by the formats. */
static inline float kvq_peer_fp16_value(const uint8_t *p) /* little-endian fp16 bits at p, widened */
{
    return kvq_fp32_from_fp16((uint16_t)(p[0] | (uint16_t)p[1] << 8));
}
static inline uint16_t kvq_peer_u16(const uint8_t *p) { return (uint16_t)(p[0] | (uint16_t)p[1] << 8); }
static inline void kvq_peer_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}
/* The fp16 neighbour check of S17.6: a and b positive finite fp16 one step apart. */
bool kvq_peer_fp16_neighbours(uint16_t a, uint16_t b);
/* Midpoint of two fp16 values, exact in double. */
double kvq_peer_fp16_midpoint(uint16_t a, uint16_t b);
/* Fills a code check for `got` against `reference`, with u, boundary m and window w when neighbours. */
void kvq_peer_code_verdict(kvq_peer_code_check *out, uint32_t reference, uint32_t got, bool neighbours, double u,
                           double m, double w);

#endif
