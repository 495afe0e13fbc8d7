/*
 * run_peer.c - a backend on peer-format cases (S17) through the ABI's peer
 * slots (kvq_backend.h): L1 peer_quantize judged under S17.6 and
 * peer_dequantize exact (of its own tensor and of the reference's); L4
 * peer_attention_decode over the reference's tensors, class A at the run's
 * profile; and the ABI error checks of each format.
 */
#include "peer_models.h"
#include "run.h"
#include "session.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *op_name(uint32_t op)
{
    return op == KVQ_BACKEND_OP_QUANTIZE ? "QUANTIZE" : op == KVQ_BACKEND_OP_DEQUANTIZE ? "DEQUANTIZE" : "ATTENTION";
}

/* Whether the backend advertises format f for operation op; else the reason, naming the caps field. */
static bool peer_allowed(const conform_run *run, kvq_peer_format f, uint32_t op, char *why, size_t size)
{
    if (!KVQ_BACKEND_CAPS_HAS(&run->caps, peer_ops)) {
        snprintf(why, size, "caps end before peer_formats (a backend built before spec 1.3.0)");
        return false;
    }
    if (!(run->caps.peer_formats >> f & 1u)) {
        snprintf(why, size, "caps.peer_formats lacks %s", kvq_peer_format_name(f));
        return false;
    }
    if (!(run->caps.peer_ops & op)) {
        snprintf(why, size, "caps.peer_ops lacks %s", op_name(op));
        return false;
    }
    return true;
}

static bool sizes_allowed(const conform_run *run, uint32_t n, uint32_t d, char *why, size_t size)
{
    if (d > run->caps.max_head_dim) {
        snprintf(why, size, "head_dim above caps.max_head_dim %u", run->caps.max_head_dim);
        return false;
    }
    if (n > run->caps.max_tokens) {
        snprintf(why, size, "more tokens than caps.max_tokens %u", run->caps.max_tokens);
        return false;
    }
    return true;
}

#define SLOT(run, name) (KVQ_BACKEND_API_HAS((run)->api, name) ? (run)->api->name : NULL)

/* The ABI passes no tensor size: a backend with another layout (a size of its own) writes or reads past
 * the S17.1 layout. Room behind each tensor for a whole fp32 copy of it and as much again as its layout
 * (a KIVI tensor with every key in fp16 takes 2 n d bytes, above twice its own size) lets the runner judge
 * that instead of having its heap corrupted or read; a backend going even further crashes its case's
 * process (an ERROR naming the case). */
static size_t layout_slack(size_t bytes, uint32_t n, uint32_t d) { return bytes + (size_t)n * d * sizeof(float); }

/* The backend's peer_dequantize of data into a guarded buffer. */
static bool backend_dequantize(conform_run *run, const kvq_peer_config *c, const uint8_t *data, uint32_t n, uint32_t d,
                               const char *field, float **out, conform_diag *diag)
{
    size_t count = (size_t)n * d;
    float *buffer = guarded_alloc(count * sizeof *buffer);
    if (buffer == NULL) {
        diag_at(diag, "runner", -1, "memory");
        diag_explain(diag, "out of memory");
        return false;
    }
    if (!session_expect_ok(run, SLOT(run, peer_dequantize)(run->ctx, c, data, n, d, buffer), "peer_dequantize",
                           diag)) {
        guarded_free(buffer);
        return false;
    }
    if (!guarded_tail_intact(buffer, count * sizeof *buffer)) {
        diag_at(diag, field, (long long)count, "past the end of the output");
        diag_explain(diag, "peer_dequantize wrote beyond n_tokens * head_dim floats.");
        guarded_free(buffer);
        return false;
    }
    *out = buffer;
    return true;
}

/* Part A: the backend quantizes; its bytes are judged, then its dequantization of them. */
static bool quantize_part(conform_run *run, const peer_quantize_model *m, bool dequantize, conform_result *r)
{
    uint32_t n = m->n_tokens, d = m->head_dim;
    size_t count = (size_t)n * d;
    if (!session_slot_present(SLOT(run, peer_quantize) != NULL, "peer_quantize", "caps.peer_ops QUANTIZE",
                              &r->diag))
        return false;
    size_t slack = layout_slack(m->bytes, n, d);
    uint8_t *got = guarded_alloc(m->bytes + slack);
    if (got == NULL) return false;
    bool ok = session_expect_ok(run, SLOT(run, peer_quantize)(run->ctx, &m->config, m->x, n, d, got),
                                "peer_quantize", &r->diag);
    if (ok && !guarded_untouched(got + m->bytes, slack)) {
        ok = false;
        diag_at(&r->diag, "data", (long long)m->bytes, "past the end of the tensor");
        diag_got(&r->diag, "bytes written after byte %zu", m->bytes);
        diag_expected(&r->diag, "%zu bytes", m->bytes);
        diag_explain(&r->diag, "peer_quantize wrote beyond the %zu bytes of the format's layout (kvq_peer_bytes, "
                               "S17.1): another layout%s?",
                     m->bytes,
                     m->config.format == KVQ_PEER_KIVI ? " (S17.4: keys keep the newest n mod R tokens in fp16, "
                                                         "values the newest min(n, R))"
                                                       : "");
    }
    uint32_t accepted = 0;
    ok = ok && judge_peer_tensor(m, got, &accepted, &r->diag);
    r->boundary_accepted += accepted;
    float *own = NULL, *deq = NULL;
    if (ok && dequantize) {
        own = malloc(count * sizeof *own);
        kvq_status st = own != NULL ? kvq_peer_dequantize(&m->config, got, n, d, own) : KVQ_ERR_OUT_OF_MEMORY;
        if (st != KVQ_OK) {
            ok = false;
            diag_at(&r->diag, "data", -1, "the whole tensor");
            diag_got(&r->diag, "%s", kvq_status_name(st));
            diag_expected(&r->diag, "a tensor kvq_peer_dequantize reads");
            diag_explain(&r->diag, "%s", kvq_last_error());
        }
        ok = ok && backend_dequantize(run, &m->config, got, n, d, "dequantized (peer_dequantize of the backend's tensor)",
                                      &deq, &r->diag);
        if (ok && !judge_floats_exact("dequantized (peer_dequantize of the backend's tensor)", own, deq, count, d,
                                      "token", "channel", &r->diag)) {
            ok = false;
            diag_explain(&r->diag, "S17: dequantization is exact given the tensor's bytes.");
        }
    }
    if (ok && accepted > 0)
        result_note(r, "%u codes or scales differ at boundaries (S17.6); dequantization judged on the backend's own "
                       "bytes",
                    accepted);
    guarded_free(deq);
    free(own);
    guarded_free(got);
    return ok;
}

/* Part B: the reference's tensor dequantized by the backend. */
static bool dequantize_part(conform_run *run, const peer_quantize_model *m, conform_result *r)
{
    if (!session_slot_present(SLOT(run, peer_dequantize) != NULL, "peer_dequantize", "caps.peer_ops DEQUANTIZE",
                              &r->diag))
        return false;
    float *deq = NULL;
    const char *field = "dequantized (peer_dequantize of the reference's tensor)";
    uint8_t *data = guarded_copy(m->expected, m->bytes, layout_slack(m->bytes, m->n_tokens, m->head_dim));
    bool ok = data != NULL &&
              backend_dequantize(run, &m->config, data, m->n_tokens, m->head_dim, field, &deq, &r->diag) &&
              judge_floats_exact(field, m->expected_dequantized, deq, (size_t)m->n_tokens * m->head_dim, m->head_dim,
                                 "token", "channel", &r->diag);
    if (!ok && deq != NULL)
        diag_explain(&r->diag, "S17.2-S17.5 give each element's value with its roundings (q8_0, q4_0: q d exact; kivi: "
                               "code scale + mn, one rounding; fp8: value(code) scale, one rounding).");
    guarded_free(deq);
    guarded_free(data);
    return ok;
}

void run_peer_quantize(conform_run *run, const peer_quantize_model *m, conform_result *r)
{
    snprintf(r->what, sizeof r->what, "%s", m->what);
    if (m->golden_note[0] != '\0') result_note(r, "%s", m->golden_note);
    char why_a[256] = "", why_b[256] = "";
    bool can_a = peer_allowed(run, m->config.format, KVQ_BACKEND_OP_QUANTIZE, why_a, sizeof why_a) &&
                 sizes_allowed(run, m->n_tokens, m->head_dim, why_a, sizeof why_a);
    bool can_b = peer_allowed(run, m->config.format, KVQ_BACKEND_OP_DEQUANTIZE, why_b, sizeof why_b) &&
                 sizes_allowed(run, m->n_tokens, m->head_dim, why_b, sizeof why_b);
    if (!can_a && !can_b) {
        result_skip(r, "%s", why_a);
        return;
    }
    if (!can_a) result_note(r, "peer_quantize not run (%s)", why_a);
    if (!can_b) result_note(r, "peer_dequantize not run (%s)", why_b);
    bool ok = (!can_a || quantize_part(run, m, can_b, r)) && (!can_b || dequantize_part(run, m, r));
    if (!ok) result_fail(r);
}

/* When an fp8 output fails: does it match attention with a scale left out (FlashInfer's k_scale, v_scale)? */
static void scale_hint(const peer_attention_model *m, const float *got, conform_diag *d)
{
    if (m->key_config.format != KVQ_PEER_FP8_E4M3 && m->value_config.format != KVQ_PEER_FP8_E4M3) return;
    size_t count = (size_t)m->n_q * m->head_dim;
    float *ref = malloc(count * sizeof *ref), *bound = malloc(count * sizeof *bound);
    for (int which = 0; ref != NULL && bound != NULL && which < 2; which++) {
        kvq_peer_config kc = m->key_config, vc = m->value_config;
        kvq_peer_config *c = which == 0 ? &kc : &vc;
        if (c->format != KVQ_PEER_FP8_E4M3 || c->scale == 1.0f) continue;
        c->scale = 1.0f;
        if (kvq_peer_attention_decode(&kc, m->k_data, &vc, m->v_data, m->n_tokens, m->head_dim, m->q, m->n_q, ref) !=
                KVQ_OK ||
            kvq_peer_attention_error_bound(&kc, m->k_data, &vc, m->v_data, m->n_tokens, m->head_dim, m->q, m->n_q,
                                           m->profile, bound) != KVQ_OK)
            continue;
        if (bounded_worst_ratio(ref, got, bound, count) <= 1.0)
            diag_explain(d, "Hint: the output matches attention with the %s scale left out (as 1): apply %s (S17.5).",
                         which == 0 ? "key" : "value",
                         which == 0 ? "k_scale to the scores" : "v_scale to the output");
    }
    free(ref);
    free(bound);
}

void run_peer_attention(conform_run *run, const peer_attention_model *m, conform_result *r)
{
    snprintf(r->what, sizeof r->what, "%s", m->what);
    if (m->golden_note[0] != '\0') result_note(r, "%s", m->golden_note);
    char why[256];
    if (!peer_allowed(run, m->key_config.format, KVQ_BACKEND_OP_ATTENTION, why, sizeof why) ||
        !peer_allowed(run, m->value_config.format, KVQ_BACKEND_OP_ATTENTION, why, sizeof why) ||
        !sizes_allowed(run, m->n_tokens, m->head_dim, why, sizeof why)) {
        result_skip(r, "%s", why);
        return;
    }
    if (m->n_q > run->caps.max_query_heads) {
        result_skip(r, "more query heads than caps.max_query_heads %u", run->caps.max_query_heads);
        return;
    }
    if (!session_slot_present(SLOT(run, peer_attention_decode) != NULL, "peer_attention_decode",
                              "caps.peer_ops ATTENTION", &r->diag)) {
        result_fail(r);
        return;
    }
    size_t count = (size_t)m->n_q * m->head_dim;
    float *out = guarded_alloc(count * sizeof *out);
    uint8_t *keys = guarded_copy(m->k_data, m->k_bytes, layout_slack(m->k_bytes, m->n_tokens, m->head_dim));
    uint8_t *values = guarded_copy(m->v_data, m->v_bytes, layout_slack(m->v_bytes, m->n_tokens, m->head_dim));
    bool ok = out != NULL && keys != NULL && values != NULL &&
              session_expect_ok(run,
                                SLOT(run, peer_attention_decode)(run->ctx, &m->key_config, keys, &m->value_config,
                                                                 values, m->n_tokens, m->head_dim, m->q, m->n_q, out),
                                "peer_attention_decode", &r->diag);
    if (ok && !guarded_tail_intact(out, count * sizeof *out)) {
        ok = false;
        diag_at(&r->diag, "out", (long long)count, "past the end of the output");
        diag_explain(&r->diag, "peer_attention_decode wrote beyond n_q * head_dim floats.");
    }
    double worst = 0.0;
    if (ok && !judge_bounded("out", m->expected, out, m->bound, count, m->head_dim, "query head", "channel", &worst,
                             &r->diag)) {
        ok = false;
        scale_hint(m, out, &r->diag);
    }
    r->attention_ratio = worst;
    if (!ok) result_fail(r);
    guarded_free(out);
    guarded_free(keys);
    guarded_free(values);
}

/* ---- ABI error checks (S17.1 through the ABI) ----------------------------- */

typedef enum peer_error { PEER_ERR_NAN, PEER_ERR_CONFIG, PEER_ERR_ATTENTION_NAN_Q, PEER_ERR_COUNT } peer_error;

static const struct {
    const char *suffix;
    int level;
} peer_errors[PEER_ERR_COUNT] = {{"quantize_nan", 1}, {"quantize_bad_config", 1}, {"attention_nan_q", 4}};

int peer_error_count(void) { return PEER_ERR_COUNT; }
const char *peer_error_suffix(int which) { return which >= 0 && which < PEER_ERR_COUNT ? peer_errors[which].suffix : "?"; }
int peer_error_level(int which) { return which >= 0 && which < PEER_ERR_COUNT ? peer_errors[which].level : 0; }

/* A valid configuration of format f for the checks, and one the format refuses. */
static kvq_peer_config valid_config(kvq_peer_format f, kvq_role role)
{
    kvq_peer_config c = {f, role, 0, 0, 0, 0.0f};
    if (f == KVQ_PEER_KIVI) c.bits = 4, c.group_size = 8, c.residual = 8;
    if (f == KVQ_PEER_FP8_E4M3) c.scale = 0.5f;
    return c;
}

static const char *broken_config(kvq_peer_config *c)
{
    switch (c->format) {
    case KVQ_PEER_KIVI: c->group_size = 3; return "group_size 3, which does not divide residual 8";
    case KVQ_PEER_FP8_E4M3: c->scale = 0.0f; return "scale 0";
    default: c->bits = 2; return "bits 2";
    }
}

enum { ERR_TOKENS = 16, ERR_DIM = 64 };

void run_peer_error(conform_run *run, kvq_peer_format f, int which, conform_result *r)
{
    snprintf(r->what, sizeof r->what, "%s: ", kvq_peer_format_name(f));
    char why[256];
    uint32_t op = which == PEER_ERR_ATTENTION_NAN_Q ? KVQ_BACKEND_OP_ATTENTION : KVQ_BACKEND_OP_QUANTIZE;
    if (!peer_allowed(run, f, op, why, sizeof why)) {
        result_skip(r, "%s", why);
        return;
    }
    float x[ERR_TOKENS * ERR_DIM], q[ERR_DIM];
    kvq_synth_params sp = {ERR_TOKENS, ERR_DIM, 78, 2, 0.01f, 0, 0, 0};
    kvq_synth_kv(&sp, x, NULL, NULL);
    for (int i = 0; i < ERR_DIM; i++) q[i] = x[i];
    kvq_peer_config kc = valid_config(f, KVQ_ROLE_KEYS), vc = valid_config(f, KVQ_ROLE_VALUES);
    size_t bytes = 0;
    kvq_peer_bytes(&kc, ERR_TOKENS, ERR_DIM, &bytes);
    size_t out_bytes = which == PEER_ERR_ATTENTION_NAN_Q ? ERR_DIM * sizeof(float) : bytes;
    size_t in_bytes = bytes + layout_slack(bytes, ERR_TOKENS, ERR_DIM);
    uint8_t *out = guarded_alloc(out_bytes), *kd = guarded_alloc(in_bytes), *vd = guarded_alloc(in_bytes);
    bool ok = out != NULL && kd != NULL && vd != NULL;
    kvq_status expected = KVQ_OK, got = KVQ_OK;
    const char *operation = "peer_quantize";
    if (ok && which == PEER_ERR_NAN) {
        snprintf(r->what + strlen(r->what), sizeof r->what - strlen(r->what), "peer_quantize with a NaN in x (S17.1)");
        x[37] = NAN;
        expected = kvq_peer_quantize(&kc, x, ERR_TOKENS, ERR_DIM, kd);
        ok = session_slot_present(SLOT(run, peer_quantize) != NULL, "peer_quantize", "caps.peer_ops QUANTIZE",
                                  &r->diag);
        if (ok) got = SLOT(run, peer_quantize)(run->ctx, &kc, x, ERR_TOKENS, ERR_DIM, out);
    } else if (ok && which == PEER_ERR_CONFIG) {
        kvq_peer_config bad = kc;
        const char *what = broken_config(&bad);
        snprintf(r->what + strlen(r->what), sizeof r->what - strlen(r->what), "peer_quantize with %s (S17.1)", what);
        expected = kvq_peer_quantize(&bad, x, ERR_TOKENS, ERR_DIM, kd);
        ok = session_slot_present(SLOT(run, peer_quantize) != NULL, "peer_quantize", "caps.peer_ops QUANTIZE",
                                  &r->diag);
        if (ok) got = SLOT(run, peer_quantize)(run->ctx, &bad, x, ERR_TOKENS, ERR_DIM, out);
    } else if (ok) {
        operation = "peer_attention_decode";
        snprintf(r->what + strlen(r->what), sizeof r->what - strlen(r->what),
                 "peer_attention_decode with a NaN in q (S17.7)");
        kvq_peer_quantize(&kc, x, ERR_TOKENS, ERR_DIM, kd);
        kvq_peer_quantize(&vc, x, ERR_TOKENS, ERR_DIM, vd);
        q[5] = NAN;
        float ref_out[ERR_DIM];
        expected = kvq_peer_attention_decode(&kc, kd, &vc, vd, ERR_TOKENS, ERR_DIM, q, 1, ref_out);
        ok = session_slot_present(SLOT(run, peer_attention_decode) != NULL, "peer_attention_decode",
                                  "caps.peer_ops ATTENTION", &r->diag);
        if (ok)
            got = SLOT(run, peer_attention_decode)(run->ctx, &kc, kd, &vc, vd, ERR_TOKENS, ERR_DIM, q, 1,
                                                   (float *)(void *)out);
    }
    char reference_message[512];
    snprintf(reference_message, sizeof reference_message, "%s", kvq_last_error());
    ok = ok && run_judge_error_status(run, operation, got, expected, reference_message, &r->diag);
    if (ok && !guarded_untouched(out, out_bytes)) {
        ok = false;
        diag_at(&r->diag, "output", -1, "the caller's buffer");
        diag_got(&r->diag, "written");
        diag_expected(&r->diag, "untouched");
        diag_explain(&r->diag, "S13.3: a failed call writes nothing.");
    }
    if (!ok) result_fail(r);
    guarded_free(out);
    guarded_free(kd);
    guarded_free(vd);
}
