/*
 * peer_models.c - peer-format case models (peer_models.h): freeing them, and
 * the reference's results for the inputs a model holds.
 */
#include "peer_models.h"

#include "peer_inputs.h"

#include <stdlib.h>
#include <string.h>

void peer_quantize_model_free(peer_quantize_model *m)
{
    free(m->x);
    free(m->expected);
    free(m->expected_dequantized);
    memset(m, 0, sizeof *m);
}

void peer_attention_model_free(peer_attention_model *m)
{
    free(m->keys);
    free(m->values);
    free(m->k_data);
    free(m->v_data);
    free(m->q);
    free(m->expected);
    free(m->bound);
    memset(m, 0, sizeof *m);
}

static bool refused(conform_diag *d, const char *what, kvq_status st)
{
    diag_at(d, "reference", -1, "%s", what);
    diag_got(d, "%s", kvq_status_name(st));
    diag_expected(d, "KVQ_OK");
    diag_explain(d, "the reference refuses the case: %s (a bug of the case, not of the backend).", kvq_last_error());
    return false;
}

bool peer_quantize_model_finish(peer_quantize_model *m, conform_diag *d)
{
    size_t count = (size_t)m->n_tokens * m->head_dim;
    kvq_status st = kvq_peer_bytes(&m->config, m->n_tokens, m->head_dim, &m->bytes);
    if (st != KVQ_OK) return refused(d, "kvq_peer_bytes", st);
    m->expected = malloc(m->bytes > 0 ? m->bytes : 1);
    m->expected_dequantized = malloc(count * sizeof *m->expected_dequantized);
    if (m->expected == NULL || m->expected_dequantized == NULL) return refused(d, "memory", KVQ_ERR_OUT_OF_MEMORY);
    st = kvq_peer_quantize(&m->config, m->x, m->n_tokens, m->head_dim, m->expected);
    if (st == KVQ_OK) st = kvq_peer_dequantize(&m->config, m->expected, m->n_tokens, m->head_dim, m->expected_dequantized);
    if (st != KVQ_OK) return refused(d, "kvq_peer_quantize", st);
    char config[160];
    peer_describe_config(config, sizeof config, &m->config);
    snprintf(m->what, sizeof m->what, "%s, %u tokens x %u channels (S17)", config, m->n_tokens, m->head_dim);
    return true;
}

bool peer_attention_model_finish(peer_attention_model *m, conform_diag *d)
{
    uint32_t n = m->n_tokens, dim = m->head_dim;
    size_t out_count = (size_t)m->n_q * dim;
    kvq_status st = kvq_peer_bytes(&m->key_config, n, dim, &m->k_bytes);
    if (st == KVQ_OK) st = kvq_peer_bytes(&m->value_config, n, dim, &m->v_bytes);
    if (st != KVQ_OK) return refused(d, "kvq_peer_bytes", st);
    if (m->k_data == NULL) { /* random cases quantize here; golden ones read the tensors */
        m->k_data = malloc(m->k_bytes > 0 ? m->k_bytes : 1);
        m->v_data = malloc(m->v_bytes > 0 ? m->v_bytes : 1);
        if (m->k_data == NULL || m->v_data == NULL) return refused(d, "memory", KVQ_ERR_OUT_OF_MEMORY);
        st = kvq_peer_quantize(&m->key_config, m->keys, n, dim, m->k_data);
        if (st == KVQ_OK) st = kvq_peer_quantize(&m->value_config, m->values, n, dim, m->v_data);
        if (st != KVQ_OK) return refused(d, "kvq_peer_quantize", st);
    }
    if (m->expected == NULL) {
        m->expected = malloc(out_count * sizeof *m->expected);
        if (m->expected == NULL) return refused(d, "memory", KVQ_ERR_OUT_OF_MEMORY);
        st = kvq_peer_attention_decode(&m->key_config, m->k_data, &m->value_config, m->v_data, n, dim, m->q, m->n_q,
                                       m->expected);
        if (st != KVQ_OK) return refused(d, "kvq_peer_attention_decode", st);
    }
    if (m->bound == NULL) {
        m->bound = malloc(out_count * sizeof *m->bound);
        if (m->bound == NULL) return refused(d, "memory", KVQ_ERR_OUT_OF_MEMORY);
        st = kvq_peer_attention_error_bound(&m->key_config, m->k_data, &m->value_config, m->v_data, n, dim, m->q,
                                            m->n_q, m->profile, m->bound);
        if (st != KVQ_OK) return refused(d, "kvq_peer_attention_error_bound", st);
    }
    char kc[160], vc[160];
    peer_describe_config(kc, sizeof kc, &m->key_config);
    peer_describe_config(vc, sizeof vc, &m->value_config);
    snprintf(m->what, sizeof m->what, "attention over %u tokens, head_dim %u, %u query heads; %.150s; %.150s (S17.7)", n, dim,
             m->n_q, kc, vc);
    return true;
}
