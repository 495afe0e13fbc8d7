/*
 * run_attention.c - L4: decode attention (S11) over the reference's quantized
 * keys and values uploaded with tensor_upload, judged as class A (S12.3) at
 * the run's precision profile (S12.4): every element within
 * kvq_attention_error_bound_profile of the reference's output.
 */
#include "run.h"
#include "session.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *pairing_name(kvq_rope_pairing p)
{
    static const char *const names[] = {"NONE", "HALF", "INTERLEAVED"};
    return (unsigned)p < 3 ? names[p] : "?";
}

void attention_pairing_hint(const kvq_qtensor *keys, const kvq_qtensor *values, const uint32_t *positions,
                            const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                            kvq_attention_profile profile, const float *got, conform_diag *d)
{
    size_t count = (size_t)n_q * keys->head_dim;
    float *ref = malloc(count * sizeof *ref), *bound = malloc(count * sizeof *bound);
    for (int p = 0; ref != NULL && bound != NULL && p < 3; p++) {
        if (p == (int)rope->pairing) continue;
        kvq_rope other = {(kvq_rope_pairing)p, rope->base};
        if (kvq_attention_decode(keys, values, positions, &other, q, n_q, q_position, ref) != KVQ_OK ||
            kvq_attention_error_bound_profile(keys, values, positions, &other, q, n_q, q_position, profile, bound) !=
                KVQ_OK)
            continue;
        double ratio = bounded_worst_ratio(ref, got, bound, count);
        if (ratio <= 1.0) {
            diag_explain(d, "Hint: the output matches the reference computed with RoPE pairing %s instead of %s (worst "
                            "error %.3g of the bound): the backend seems to rotate the wrong channel pairs (S9.1).",
                         pairing_name((kvq_rope_pairing)p), pairing_name(rope->pairing), ratio);
            break;
        }
    }
    free(ref);
    free(bound);
}

static bool attention_allowed(conform_run *run, const attention_model *m, char *why, size_t size)
{
    return caps_allow_attention(&run->caps, m->rope.pairing, m->n_q, m->keys->head_dim, m->keys->n_tokens, why,
                                size) &&
           caps_allow_tensor(&run->caps, m->keys, why, size) && caps_allow_tensor(&run->caps, m->values, why, size);
}

static bool slots_present(const kvq_backend_api *api, bool batch, conform_diag *d)
{
    return session_slot_present(api->tensor_upload != NULL, "tensor_upload", "ATTENTION", d) &&
           session_slot_present(api->tensor_free != NULL, "tensor_free", "ATTENTION", d) &&
           (batch || session_slot_present(api->attention_decode != NULL, "attention_decode", "ATTENTION", d));
}

static bool upload_pair(conform_run *run, const attention_model *m, kvq_backend_tensor **kt, kvq_backend_tensor **vt,
                        conform_diag *d)
{
    *kt = *vt = NULL;
    if (!session_expect_ok(run, run->api->tensor_upload(run->ctx, m->keys, kt), "tensor_upload of the reference's keys",
                           d))
        return false;
    return session_expect_ok(run, run->api->tensor_upload(run->ctx, m->values, vt),
                             "tensor_upload of the reference's values", d);
}

static void free_pair(conform_run *run, kvq_backend_tensor *kt, kvq_backend_tensor *vt)
{
    if (kt != NULL) run->api->tensor_free(run->ctx, kt);
    if (vt != NULL) run->api->tensor_free(run->ctx, vt);
}

/* Judges one sequence's output; field names the output. */
static bool judge_output(const attention_model *m, const char *field, const float *out, double *worst, conform_diag *d)
{
    size_t count = (size_t)m->n_q * m->keys->head_dim;
    if (!guarded_tail_intact(out, count * sizeof *out)) {
        diag_at(d, field, (long long)count, "past the end of the output");
        diag_explain(d, "attention wrote beyond n_q * head_dim floats.");
        return false;
    }
    if (judge_bounded(field, m->expected, out, m->bound, count, m->keys->head_dim, "query head", "channel", worst, d))
        return true;
    attention_pairing_hint(m->keys, m->values, m->positions, &m->rope, m->q, m->n_q, m->q_position, m->profile, out,
                           d);
    return false;
}

void run_attention(conform_run *run, const attention_model *m, conform_result *r)
{
    snprintf(r->what, sizeof r->what, "%.500s, RoPE %s, q_position %u", m->what, pairing_name(m->rope.pairing),
             m->q_position);
    if (m->golden_note[0] != '\0') result_note(r, "%s", m->golden_note);
    char why[256];
    if (!attention_allowed(run, m, why, sizeof why)) {
        result_skip(r, "%s", why);
        return;
    }
    if (!slots_present(run->api, false, &r->diag)) {
        result_fail(r);
        return;
    }
    kvq_backend_tensor *kt = NULL, *vt = NULL;
    size_t count = (size_t)m->n_q * m->keys->head_dim;
    float *out = guarded_alloc(count * sizeof *out);
    bool ok = out != NULL && upload_pair(run, m, &kt, &vt, &r->diag);
    ok = ok && session_expect_ok(run,
                                 run->api->attention_decode(run->ctx, kt, vt, m->positions, &m->rope, m->q, m->n_q,
                                                            m->q_position, out),
                                 "attention_decode", &r->diag);
    double worst = 0.0;
    ok = ok && judge_output(m, "out", out, &worst, &r->diag);
    r->attention_ratio = worst;
    if (!ok) result_fail(r);
    free_pair(run, kt, vt);
    guarded_free(out);
}

/* time_attention_decode_batch on the batch attention_decode_batch just computed as want[count]:
 * KVQ_OK, a finite time, and want's bits. */
static bool timed_batch_matches(conform_run *run, uint32_t n, const kvq_backend_tensor *const *keys,
                                const kvq_backend_tensor *const *values, const uint32_t *const *positions,
                                const kvq_rope *rope, const float *q, uint32_t n_q, const uint32_t *q_positions,
                                const float *want, size_t count, conform_diag *d)
{
    float *got = guarded_alloc(count * sizeof *got);
    double ms = -1.0;
    kvq_backend_timing timing = {.struct_size = sizeof timing, .warmup = 0, .runs = 1, .ms_host = &ms};
    bool ok = got != NULL;
    if (!ok) {
        diag_at(d, "runner", -1, "memory");
        diag_explain(d, "out of memory");
    }
    ok = ok && session_expect_ok(run,
                                 run->api->time_attention_decode_batch(run->ctx, n, keys, values, positions, rope, q,
                                                                       n_q, q_positions, got, &timing),
                                 "time_attention_decode_batch", d);
    if (ok && !(ms >= 0.0 && ms < 1e9)) {
        ok = false;
        diag_at(d, "timing.ms_host[0]", 0, "not a time");
        diag_explain(d, "time_attention_decode_batch returned KVQ_OK with %g ms.", ms);
    }
    if (ok && !guarded_tail_intact(got, count * sizeof *got)) {
        ok = false;
        diag_at(d, "out", (long long)count, "past the end of the output");
        diag_explain(d, "time_attention_decode_batch wrote beyond n_seq * n_q * head_dim floats.");
    }
    for (size_t i = 0; ok && i < count; i++)
        if (memcmp(&got[i], &want[i], sizeof got[i]) != 0) {
            ok = false;
            diag_at(d, "out (time_attention_decode_batch)", (long long)i, "other bits than attention_decode_batch");
            diag_floats(d, got[i], want[i]);
            diag_explain(d, "A timing slot must run attention_decode_batch's work on the same inputs, so it gives "
                            "the same bits (kvq_backend.h).");
        }
    guarded_free(got);
    return ok;
}

void run_attention_batch(conform_run *run, const attention_model *const *models, uint32_t n, conform_result *r)
{
    const attention_model *first = models[0];
    uint32_t tokens = 0;
    for (uint32_t s = 0; s < n; s++) tokens += models[s]->keys->n_tokens;
    snprintf(r->what, sizeof r->what, "attention_decode_batch of %u sequences (%u tokens in all), head_dim %u, %u query "
                                      "heads, RoPE %s",
             n, tokens, first->keys->head_dim, first->n_q, pairing_name(first->rope.pairing));
    char why[256];
    for (uint32_t s = 0; s < n; s++)
        if (!attention_allowed(run, models[s], why, sizeof why)) {
            result_skip(r, "%s", why);
            return;
        }
    if (!slots_present(run->api, true, &r->diag)) {
        result_fail(r);
        return;
    }
    const kvq_backend_tensor **keys = calloc(n, sizeof *keys), **values = calloc(n, sizeof *values);
    kvq_backend_tensor **owned = calloc(2 * (size_t)n, sizeof *owned);
    const uint32_t **positions = calloc(n, sizeof *positions);
    uint32_t *q_positions = calloc(n, sizeof *q_positions);
    size_t per = (size_t)first->n_q * first->keys->head_dim;
    float *q = malloc((size_t)n * per * sizeof *q), *out = guarded_alloc((size_t)n * per * sizeof *out);
    bool ok = keys && values && owned && positions && q_positions && q && out;
    if (!ok) {
        diag_at(&r->diag, "runner", -1, "memory");
        diag_explain(&r->diag, "out of memory");
    }
    for (uint32_t s = 0; ok && s < n; s++) {
        ok = upload_pair(run, models[s], &owned[2 * s], &owned[2 * s + 1], &r->diag);
        keys[s] = owned[2 * s];
        values[s] = owned[2 * s + 1];
        positions[s] = models[s]->positions;
        q_positions[s] = models[s]->q_position;
        memcpy(q + s * per, models[s]->q, per * sizeof *q);
    }
    ok = ok && session_expect_ok(run,
                                 run->api->attention_decode_batch(run->ctx, n, keys, values, positions, &first->rope,
                                                                  q, first->n_q, q_positions, out),
                                 "attention_decode_batch", &r->diag);
    if (ok && !guarded_tail_intact(out, (size_t)n * per * sizeof *out)) {
        ok = false;
        diag_at(&r->diag, "out", (long long)(n * per), "past the end of the output");
        diag_explain(&r->diag, "attention_decode_batch wrote beyond n_seq * n_q * head_dim floats.");
    }
    double worst = 0.0;
    for (uint32_t s = 0; ok && s < n; s++) {
        char field[64];
        snprintf(field, sizeof field, "out[sequence %u]", s);
        const attention_model *m = models[s];
        if (!judge_bounded(field, m->expected, out + s * per, m->bound, per, m->keys->head_dim, "query head",
                           "channel", &worst, &r->diag)) {
            ok = false;
            diag_explain(&r->diag, "Sequence %u has %u tokens at positions from %u, q_position %u.", s,
                         m->keys->n_tokens, m->positions[0], m->q_position);
            attention_pairing_hint(m->keys, m->values, m->positions, &m->rope, m->q, m->n_q, m->q_position,
                                   m->profile, out + s * per, &r->diag);
        }
    }
    /* A benchmarking slot must time the work it claims to: the same launches on the same inputs give
     * the same bits as attention_decode_batch (kvq_backend.h). */
    if (ok && KVQ_BACKEND_API_HAS(run->api, time_attention_decode_batch))
        ok = timed_batch_matches(run, n, keys, values, positions, &first->rope, q, first->n_q, q_positions, out,
                                 (size_t)n * per, &r->diag);
    if (ok && KVQ_BACKEND_API_HAS(run->api, time_attention_decode_batch))
        result_note(r, "time_attention_decode_batch: the same bits");
    r->attention_ratio = worst;
    if (!ok) result_fail(r);
    for (uint32_t s = 0; owned != NULL && s < 2 * n; s++)
        if (owned[s] != NULL) run->api->tensor_free(run->ctx, owned[s]);
    free(keys);
    free(values);
    free(owned);
    free(positions);
    free(q_positions);
    free(q);
    guarded_free(out);
}
