/*
 * peer_golden.c - peer-format cases read from the golden set (S17.8; written
 * by tools/golden/cases_peer.c).
 */
#include "peer_models.h"

#include "golden_cases.h"
#include "peer_inputs.h"

#include <stdlib.h>
#include <string.h>

static bool problem(conform_diag *d, const manifest_case *c, const char *what)
{
    diag_at(d, "golden set", -1, "case %s", c->name);
    diag_explain(d, "%s (is --golden a complete golden set written by `kvq golden`?).", what);
    return false;
}

bool golden_peer_config(const json_value *o, kvq_peer_config *out)
{
    memset(out, 0, sizeof *out);
    const char *format = json_get_string(o, "format"), *role = json_get_string(o, "role");
    uint32_t scale_bits = 0;
    if (format == NULL || role == NULL || kvq_peer_format_from_name(format, &out->format) != KVQ_OK) return false;
    out->role = strcmp(role, "keys") == 0 ? KVQ_ROLE_KEYS : KVQ_ROLE_VALUES;
    if (!json_get_u32(o, "bits", &out->bits) || !json_get_u32(o, "group_size", &out->group_size) ||
        !json_get_u32(o, "residual", &out->residual) || !json_get_u32(o, "scale_bits", &scale_bits))
        return false;
    memcpy(&out->scale, &scale_bits, sizeof out->scale); /* the scale's exact bits */
    return true;
}

int golden_peer_format(const manifest_case *c)
{
    kvq_peer_config config;
    const json_value *o = strcmp(c->operation, "peer_quantize") == 0    ? json_get(c->params, "config")
                          : strcmp(c->operation, "peer_attention") == 0 ? json_get(c->params, "keys")
                                                                         : NULL;
    return o != NULL && golden_peer_config(o, &config) ? (int)config.format : -1;
}

static bool sizes(const manifest_case *c, uint32_t *n, uint32_t *d, conform_diag *diag)
{
    if (!json_get_u32(c->params, "n_tokens", n) || !json_get_u32(c->params, "head_dim", d) || *n == 0 || *d == 0)
        return problem(diag, c, "params lack n_tokens or head_dim");
    return true;
}

bool golden_peer_quantize_model(const char *dir, const manifest_case *c, peer_quantize_model *m, conform_diag *d)
{
    memset(m, 0, sizeof *m);
    if (!golden_peer_config(json_get(c->params, "config"), &m->config))
        return problem(d, c, "params.config is not a peer configuration");
    if (!sizes(c, &m->n_tokens, &m->head_dim, d)) return false;
    size_t count = (size_t)m->n_tokens * m->head_dim;
    char *note = m->golden_note;
    size_t note_size = sizeof m->golden_note;
    if (!golden_floats_load(dir, c, "x", count, &m->x, d, note, note_size)) return false;
    if (!peer_quantize_model_finish(m, d)) return false; /* the reference's own, to compare with the files */
    uint8_t *data = NULL;
    size_t bytes = 0;
    float *deq = NULL;
    if (!golden_bytes_load(dir, c, "data", &data, &bytes, d, note, note_size) ||
        !golden_floats_load(dir, c, "dequantized", count, &deq, d, note, note_size)) {
        free(data);
        return false;
    }
    bool same = bytes == m->bytes && memcmp(data, m->expected, bytes) == 0 &&
                memcmp(deq, m->expected_dequantized, count * sizeof *deq) == 0;
    if (!same && bytes != m->bytes) {
        free(data);
        free(deq);
        return problem(d, c, "the data file's size is not kvq_peer_bytes of the configuration");
    }
    if (!same) { /* the golden files are the expectation: a damaged copy shows as the backend's failure */
        free(m->expected);
        free(m->expected_dequantized);
        m->expected = data;
        m->expected_dequantized = deq;
        size_t used = strlen(note);
        snprintf(note + used, note_size - used, "%sthe golden data or dequantized differ from this build's reference",
                 used ? "; " : "");
        return true;
    }
    free(data);
    free(deq);
    return true;
}

bool golden_peer_attention_model(const char *dir, const manifest_case *c, kvq_attention_profile profile,
                                 peer_attention_model *m, conform_diag *d)
{
    memset(m, 0, sizeof *m);
    if (!golden_peer_config(json_get(c->params, "keys"), &m->key_config) ||
        !golden_peer_config(json_get(c->params, "values"), &m->value_config))
        return problem(d, c, "params.keys or params.values is not a peer configuration");
    if (!sizes(c, &m->n_tokens, &m->head_dim, d)) return false;
    if (!json_get_u32(c->params, "n_q", &m->n_q) || m->n_q == 0) return problem(d, c, "params lack n_q");
    m->profile = profile;
    size_t count = (size_t)m->n_tokens * m->head_dim, out_count = (size_t)m->n_q * m->head_dim;
    char *note = m->golden_note;
    size_t note_size = sizeof m->golden_note;
    static const char *const bound_labels[KVQ_PROFILE_COUNT] = {"bound", "bound_fp16", "bound_bf16"};
    size_t kb = 0, vb = 0;
    bool ok = golden_floats_load(dir, c, "keys", count, &m->keys, d, note, note_size) &&
              golden_floats_load(dir, c, "values", count, &m->values, d, note, note_size) &&
              golden_floats_load(dir, c, "q", out_count, &m->q, d, note, note_size) &&
              golden_bytes_load(dir, c, "k_data", &m->k_data, &kb, d, note, note_size) &&
              golden_bytes_load(dir, c, "v_data", &m->v_data, &vb, d, note, note_size) &&
              golden_floats_load(dir, c, "out", out_count, &m->expected, d, note, note_size) &&
              golden_floats_load(dir, c, bound_labels[profile], out_count, &m->bound, d, note, note_size);
    if (!ok) return false;
    if (!peer_attention_model_finish(m, d)) return false; /* sizes and what; keeps the files' arrays */
    if (kb != m->k_bytes || vb != m->v_bytes)
        return problem(d, c, "k_data or v_data has another size than kvq_peer_bytes of its configuration");
    return true;
}
