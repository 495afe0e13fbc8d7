/*
 * peer_inputs.h - inputs of peer-format cases (S17), made the same way for
 * the golden set (tools/golden/cases_peer.c) and the random cases
 * (peer_random.c): keys and values of kvq_synth_kv_profile (S14.3, S14.6),
 * the keys rotated (HALF RoPE at positions 0 .. n-1: peers store keys after
 * RoPE, S17.1), optionally moved off the fp16 grid (inexact.h), and groups
 * rebuilt so that their elements sit exactly on the boundaries between codes
 * (S17.6), where implementations that compute differently disagree.
 */
#ifndef KVQ_CONFORM_PEER_INPUTS_H
#define KVQ_CONFORM_PEER_INPUTS_H

#include "kvq/kvq.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct peer_inputs_spec {
    uint32_t n_tokens, head_dim;
    uint64_t seed;
    kvq_synth_profile profile;
    bool inexact; /* conform_inexact(keys, seed + 1000), conform_inexact(values, seed + 2000) */
} peer_inputs_spec;

/* keys (rotated) and values, [n_tokens][head_dim] each; false when the generator refuses. */
bool peer_synth(const peer_inputs_spec *s, float *keys, float *values);
/* For params.inputs: how peer_synth made them. */
void peer_describe_synth(const peer_inputs_spec *s, char *out, size_t size);

/* Rebuilds up to `count` groups of x (for fp8: elements) so that their elements lie exactly on code
 * boundaries of the format under c (power-of-two scales). Returns how many it rebuilt. */
uint32_t peer_plant_ties(const kvq_peer_config *c, float *x, uint32_t n, uint32_t d, uint64_t seed, uint32_t count);

/* fl32(max |x| / (448 * headroom)): vLLM's scale for e4m3 when headroom is 1; below 1 the largest
 * elements saturate. */
float peer_fp8_scale(const float *x, size_t n, float headroom);

/* e.g. "kivi values 2-bit, groups of 32 channels, residual 128 tokens" */
void peer_describe_config(char *out, size_t size, const kvq_peer_config *c);
/* The manifest's object for a configuration: format, role, bits, group_size, residual, scale (as the
 * fp32 bits too, so that it is read back exactly). */
struct json_writer;
void peer_config_json(struct json_writer *w, const char *key, const kvq_peer_config *c);

#endif
