/*
 * peer_models.h - peer-format cases (S17) in memory, from the golden set
 * (peer_golden.c) or from a seed (peer_random.c), and the runners that judge
 * a backend on them (run_peer.c; judge_peer.c compares tensors under S17.6).
 */
#ifndef KVQ_CONFORM_PEER_MODELS_H
#define KVQ_CONFORM_PEER_MODELS_H

#include "manifest.h"
#include "models.h"

/* L1: quantize x into a peer tensor, dequantize it (S17.2-S17.5). */
typedef struct peer_quantize_model {
    kvq_peer_config config;
    uint32_t n_tokens, head_dim;
    float *x;                    /* [n_tokens][head_dim] */
    uint8_t *expected;           /* the reference's tensor, `bytes` long */
    size_t bytes;
    float *expected_dequantized; /* [n_tokens][head_dim] */
    char what[512];
    char golden_note[256];
} peer_quantize_model;

/* L4: attention over the reference's peer tensors (S17.7). */
typedef struct peer_attention_model {
    kvq_peer_config key_config, value_config;
    uint32_t n_tokens, head_dim, n_q;
    float *keys, *values;        /* the unquantized inputs (the accuracy mode's reference uses them) */
    uint8_t *k_data, *v_data;
    size_t k_bytes, v_bytes;
    float *q;                    /* [n_q][head_dim], rotated */
    float *expected, *bound;     /* [n_q][head_dim]; bound at `profile` */
    kvq_attention_profile profile;
    char what[512];
    char golden_note[256];
} peer_attention_model;

void peer_quantize_model_free(peer_quantize_model *m);
void peer_attention_model_free(peer_attention_model *m);

/* The reference's tensor, dequantized values (quantize model) or output and bound (attention model)
 * computed from the inputs already in m; false with d filled when the reference refuses them. */
bool peer_quantize_model_finish(peer_quantize_model *m, conform_diag *d);
bool peer_attention_model_finish(peer_attention_model *m, conform_diag *d);

/* Golden cases (operations peer_quantize, peer_attention; S17.8). */
bool golden_peer_quantize_model(const char *dir, const manifest_case *c, peer_quantize_model *m, conform_diag *d);
bool golden_peer_attention_model(const char *dir, const manifest_case *c, kvq_attention_profile profile,
                                 peer_attention_model *m, conform_diag *d);
/* The peer format a golden case is of (the keys' for attention); -1 when not a peer case. */
int golden_peer_format(const manifest_case *c);
/* A configuration from the manifest's object (peer_config_json's). */
bool golden_peer_config(const json_value *object, kvq_peer_config *out);

/* Random cases of `format` from one case seed (peer_random.c). */
bool random_peer_quantize(uint64_t case_seed, kvq_peer_format format, peer_quantize_model *m, char *error,
                          size_t error_size);
bool random_peer_attention(uint64_t case_seed, kvq_peer_format format, uint32_t max_context, bool force_max,
                           kvq_attention_profile profile, peer_attention_model *m, char *error, size_t error_size);

/* Judging (run_peer.c). */
void run_peer_quantize(conform_run *run, const peer_quantize_model *m, conform_result *r);
void run_peer_attention(conform_run *run, const peer_attention_model *m, conform_result *r);
/* ABI error checks of a peer format (S17.1 through the ABI). */
int peer_error_count(void);
const char *peer_error_suffix(int which); /* the case is abi_error_<format>_<suffix> */
int peer_error_level(int which);
void run_peer_error(conform_run *run, kvq_peer_format format, int which, conform_result *r);

/* judge_peer.c: got against the reference's tensor of m (S17.6: codes and scales class B under the
 * tensor's own parameters, mn and the fp16 residual exact), naming the part that differs;
 * *accepted counts codes and scales that differ and were accepted. */
bool judge_peer_tensor(const peer_quantize_model *m, const uint8_t *got, uint32_t *accepted, conform_diag *d);

#endif
