/*
 * run_cache.c - L5: a backend cache driven through the case's appends (S15),
 * with libkvq's cache driven in step as the reference. After every append:
 * the cache's keys and values (cache_view + tensor_info/read) must equal the
 * reference cache's (class E, codes class B; S15.3 makes every state
 * defined), and cache_attend must be within the S12.3 bound (class A). The
 * final state is also compared with the golden files when the case has them.
 */
#include "run.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>

typedef struct cache_step_state {
    kvq_qtensor *keys, *values; /* the backend's view, read back (NULL when it cannot be read) */
    bool codes_differ;
} cache_step_state;

static void free_state(cache_step_state *s)
{
    kvq_qtensor_free(s->keys);
    kvq_qtensor_free(s->values);
    memset(s, 0, sizeof *s);
}

/* Reads the backend cache's views and judges them against the reference cache. */
static bool judge_views(conform_run *run, const cache_model *m, kvq_backend_cache *bc, const kvq_cache *ref,
                        uint32_t step, bool last, cache_step_state *state, conform_result *r)
{
    const kvq_backend_tensor *kv = NULL, *vv = NULL;
    if (!session_expect_ok(run, run->api->cache_view(run->ctx, bc, &kv, &vv), "cache_view", &r->diag)) return false;
    if (!session_read_tensor(run, kv, "the cache's keys", &state->keys, &r->diag) ||
        !session_read_tensor(run, vv, "the cache's values", &state->values, &r->diag))
        return false;
    qt_labels kl, vl;
    char prefix[48];
    snprintf(prefix, sizeof prefix, "step%u_k", step);
    qt_labels_for(&kl, prefix);
    snprintf(prefix, sizeof prefix, "step%u_v", step);
    qt_labels_for(&vl, prefix);
    qt_judgement jk = {0, false}, jv = {0, false};
    bool ok = judge_qtensor(&kl, kvq_cache_keys(ref), state->keys, m->keys, &jk, &r->diag) &&
              judge_qtensor(&vl, kvq_cache_values(ref), state->values, m->values, &jv, &r->diag);
    if (!ok) {
        diag_explain(&r->diag, "After append %u of %u (%u tokens in the cache); S15.2 defines the cache as "
                               "quantize_head of everything appended, with each token's policy decision fixed when it "
                               "was appended.",
                     step, m->n_steps, kvq_cache_length(ref));
        return false;
    }
    state->codes_differ = jk.codes_differ || jv.codes_differ;
    if (last) r->boundary_accepted += jk.boundary_accepted + jv.boundary_accepted;
    return true;
}

/* The final state against the golden files (class E, codes class B). */
static bool judge_final(const cache_model *m, const cache_step_state *state, conform_result *r)
{
    qt_labels kl, vl;
    qt_labels_for(&kl, "final_k");
    qt_labels_for(&vl, "final_v");
    qt_judgement jk = {0, false}, jv = {0, false};
    if (!judge_qtensor(&kl, m->final_keys, state->keys, m->keys, &jk, &r->diag) ||
        !judge_qtensor(&vl, m->final_values, state->values, m->values, &jv, &r->diag))
        return false;
    if (jk.codes_differ || jv.codes_differ) return true;
    size_t count = (size_t)m->n_total * m->head_dim;
    float *deq = malloc(count * sizeof *deq);
    bool ok = deq != NULL && kvq_dequantize_head(state->keys, deq) == KVQ_OK &&
              judge_floats_exact(kl.dequantized, m->final_keys_dequantized, deq, count, m->head_dim, "token", "channel",
                                 &r->diag) &&
              kvq_dequantize_head(state->values, deq) == KVQ_OK &&
              judge_floats_exact(vl.dequantized, m->final_values_dequantized, deq, count, m->head_dim, "token",
                                 "channel", &r->diag);
    free(deq);
    return ok;
}

/* The reference output and bound for step s: the golden ones while the
 * backend's tensors equal the reference's; otherwise (boundary codes, or a
 * random case) computed by libkvq on the tensors the backend actually holds. */
static bool expected_output(const cache_model *m, const kvq_cache *ref, const cache_step_state *state, uint32_t s,
                            uint32_t q_position, float *expected, float *bound)
{
    size_t per = (size_t)m->n_q * m->head_dim;
    const float *q = m->queries + s * per;
    if (m->expected_out != NULL && !state->codes_differ) {
        memcpy(expected, m->expected_out + s * per, per * sizeof *expected);
        memcpy(bound, m->bound + s * per, per * sizeof *bound);
        return true;
    }
    const kvq_qtensor *keys = state->codes_differ ? state->keys : kvq_cache_keys(ref);
    const kvq_qtensor *values = state->codes_differ ? state->values : kvq_cache_values(ref);
    const uint32_t *positions = kvq_cache_positions(ref);
    return kvq_attention_decode(keys, values, positions, &m->rope, q, m->n_q, q_position, expected) == KVQ_OK &&
           kvq_attention_error_bound_profile(keys, values, positions, &m->rope, q, m->n_q, q_position, m->profile,
                                             bound) == KVQ_OK;
}

static bool runner_problem(conform_result *r, const char *what)
{
    diag_at(&r->diag, "runner", -1, "reference cache");
    diag_explain(&r->diag, "%s (the runner's own check; libkvq says: \"%s\").", what, kvq_last_error());
    return false;
}

static bool drive(conform_run *run, const cache_model *m, kvq_backend_cache *bc, kvq_cache *ref, bool views,
                  conform_result *r)
{
    const kvq_backend_api *api = run->api;
    size_t per = (size_t)m->n_q * m->head_dim;
    float *out = guarded_alloc(per * sizeof *out), *expected = malloc(per * sizeof *expected);
    float *bound = malloc(per * sizeof *bound);
    bool ok = out != NULL && expected != NULL && bound != NULL;
    if (!ok) runner_problem(r, "out of memory");
    double worst = 0.0;
    uint32_t done = 0;
    for (uint32_t s = 0; ok && s < m->n_steps; s++) {
        uint32_t n_new = m->append_sizes[s];
        size_t at = (size_t)done * m->head_dim;
        const uint8_t *modality = m->modality != NULL ? m->modality + done : NULL;
        bool given = m->positions != NULL && (m->explicit_positions == NULL || m->explicit_positions[s]);
        const uint32_t *positions = given ? m->positions + done : NULL;
        char operation[64];
        snprintf(operation, sizeof operation, "cache_append (append %u of %u, %u tokens)", s, m->n_steps, n_new);
        ok = session_expect_ok(run, api->cache_append(run->ctx, bc, m->keys + at, m->values + at, modality, positions,
                                                      n_new),
                               operation, &r->diag);
        if (ok && kvq_cache_append(ref, m->keys + at, m->values + at, modality, positions, n_new) != KVQ_OK)
            ok = runner_problem(r, "the reference cache refused an append of the case");
        done += n_new;
        cache_step_state state = {NULL, NULL, false};
        bool last = s + 1 == m->n_steps;
        if (ok && views) ok = judge_views(run, m, bc, ref, s, last, &state, r);
        if (ok && last && views && m->final_keys != NULL) ok = judge_final(m, &state, r);
        uint32_t length = kvq_cache_length(ref);
        uint32_t q_position = ok ? kvq_cache_positions(ref)[length - 1] + 1 : 0;
        if (ok && !expected_output(m, ref, &state, s, q_position, expected, bound))
            ok = runner_problem(r, "the reference attention failed");
        snprintf(operation, sizeof operation, "cache_attend (after append %u)", s);
        ok = ok && session_expect_ok(run, api->cache_attend(run->ctx, bc, &m->rope, m->queries + s * per, m->n_q,
                                                            q_position, out),
                                     operation, &r->diag);
        char field[64];
        snprintf(field, sizeof field, "out[step %u]", s);
        if (ok && !guarded_tail_intact(out, per * sizeof *out)) {
            ok = false;
            diag_at(&r->diag, field, (long long)per, "past the end of the output");
            diag_explain(&r->diag, "cache_attend wrote beyond n_q * head_dim floats.");
        }
        if (ok && !judge_bounded(field, expected, out, bound, per, m->head_dim, "query head", "channel", &worst,
                                 &r->diag)) {
            ok = false;
            diag_explain(&r->diag, "After append %u of %u: %u tokens, q_position %u.", s, m->n_steps, length,
                         q_position);
            attention_pairing_hint(kvq_cache_keys(ref), kvq_cache_values(ref), kvq_cache_positions(ref), &m->rope,
                                   m->queries + s * per, m->n_q, q_position, m->profile, out, &r->diag);
        }
        free_state(&state);
    }
    r->attention_ratio = worst;
    guarded_free(out);
    free(expected);
    free(bound);
    return ok;
}

void run_cache(conform_run *run, const cache_model *m, conform_result *r)
{
    const kvq_backend_api *api = run->api;
    snprintf(r->what, sizeof r->what, "%s", m->what);
    if (m->golden_note[0] != '\0') result_note(r, "%s", m->golden_note);
    char why[256];
    if (!caps_allow_op(&run->caps, KVQ_BACKEND_OP_CACHE, why, sizeof why) ||
        !caps_allow_config(&run->caps, &m->key_config, m->n_total, m->head_dim, why, sizeof why) ||
        !caps_allow_config(&run->caps, &m->value_config, m->n_total, m->head_dim, why, sizeof why) ||
        !caps_allow_rope(&run->caps, m->rope.pairing, m->n_q, why, sizeof why)) {
        result_skip(r, "%s", why);
        return;
    }
    if (!session_slot_present(api->cache_create != NULL, "cache_create", "CACHE", &r->diag) ||
        !session_slot_present(api->cache_append != NULL, "cache_append", "CACHE", &r->diag) ||
        !session_slot_present(api->cache_attend != NULL, "cache_attend", "CACHE", &r->diag) ||
        !session_slot_present(api->cache_view != NULL, "cache_view", "CACHE", &r->diag) ||
        !session_slot_present(api->cache_free != NULL, "cache_free", "CACHE", &r->diag)) {
        result_fail(r);
        return;
    }
    bool views = api->tensor_info != NULL && api->tensor_read != NULL;
    if (!views) result_note(r, "cache contents not compared (tensor_info/tensor_read are NULL)");
    kvq_cache *ref = NULL;
    kvq_backend_cache *bc = NULL;
    bool ok = true;
    if (kvq_cache_create(&m->key_config, &m->value_config, m->head_dim, &ref) != KVQ_OK)
        ok = runner_problem(r, "the reference refused the case's configs");
    ok = ok && session_expect_ok(run, api->cache_create(run->ctx, &m->key_config, &m->value_config, m->head_dim, &bc),
                                 "cache_create", &r->diag);
    ok = ok && drive(run, m, bc, ref, views, r);
    if (!ok) result_fail(r);
    if (bc != NULL) api->cache_free(run->ctx, bc);
    kvq_cache_free(ref);
}
