/*
 * run_quantize.c - L1-L3: quantize_head and dequantize.
 *
 * Part A (caps QUANTIZE): the backend quantizes x; its tensor, read back with
 * tensor_info/tensor_read, must equal the reference's field by field (class
 * E, codes class B). Its dequantization must then be exactly
 * kvq_dequantize_head of its own tensor (S4.5 is exact given the codes,
 * S12.2), and, when no code differed, the golden dequantized values.
 * Part B (caps DEQUANTIZE): the reference's tensor is uploaded; it must read
 * back identical and dequantize to exactly the golden values.
 */
#include "run.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>

/* The backend's dequantize of t into a guarded buffer, checked for overruns. */
static bool backend_dequantize(conform_run *run, const kvq_backend_tensor *t, size_t count, const char *field,
                               float **out, conform_diag *d)
{
    float *buffer = guarded_alloc(count * sizeof *buffer);
    if (buffer == NULL) {
        diag_at(d, "runner", -1, "memory");
        diag_explain(d, "out of memory");
        return false;
    }
    if (!session_expect_ok(run, run->api->dequantize(run->ctx, t, buffer), "dequantize", d)) {
        guarded_free(buffer);
        return false;
    }
    if (!guarded_tail_intact(buffer, count * sizeof *buffer)) {
        diag_at(d, field, (long long)count, "past the end of the output");
        diag_explain(d, "dequantize wrote beyond n_tokens * head_dim floats.");
        guarded_free(buffer);
        return false;
    }
    *out = buffer;
    return true;
}

/* Part A. Returns false after filling r->diag. */
static bool quantize_part(conform_run *run, const quantize_model *m, conform_result *r)
{
    const kvq_backend_api *api = run->api;
    size_t count = (size_t)m->n_tokens * m->head_dim;
    if (!session_slot_present(api->quantize_head != NULL, "quantize_head", "QUANTIZE", &r->diag) ||
        !session_slot_present(api->tensor_free != NULL, "tensor_free", "QUANTIZE", &r->diag))
        return false;
    kvq_backend_tensor *t = NULL;
    if (!session_expect_ok(run, api->quantize_head(run->ctx, &m->config, m->x, m->n_tokens, m->head_dim, m->modality, &t),
                           "quantize_head", &r->diag))
        return false;
    kvq_qtensor *got = NULL;
    float *own = NULL, *deq = NULL;
    bool ok = session_read_tensor(run, t, "the quantized tensor", &got, &r->diag);
    qt_judgement j = {0, false};
    ok = ok && judge_qtensor(&m->labels, m->expected, got, m->x, &j, &r->diag);
    r->boundary_accepted += j.boundary_accepted;
    if (ok) {
        /* S4.5 of the backend's own tensor: the exact values its codes stand for */
        own = malloc(count * sizeof *own);
        kvq_status st = own != NULL ? kvq_dequantize_head(got, own) : KVQ_ERR_OUT_OF_MEMORY;
        if (st != KVQ_OK) {
            ok = false;
            diag_at(&r->diag, m->labels.header, -1, "the whole tensor");
            diag_got(&r->diag, "%s", kvq_status_name(st));
            diag_expected(&r->diag, "a consistent qtensor");
            diag_explain(&r->diag, "kvq_dequantize_head rejects the tensor read back (S4.4): %s.", kvq_last_error());
        }
    }
    if (ok && (run->caps.ops & KVQ_BACKEND_OP_DEQUANTIZE) &&
        session_slot_present(api->dequantize != NULL, "dequantize", "DEQUANTIZE", &r->diag)) {
        char field[128];
        snprintf(field, sizeof field, "%s (dequantize of the backend's tensor)", m->labels.dequantized);
        ok = backend_dequantize(run, t, count, field, &deq, &r->diag);
        if (ok && !judge_floats_exact(field, own, deq, count, m->head_dim, "token", "channel", &r->diag)) {
            ok = false;
            diag_explain(&r->diag, "S4.5: dequantization is exact given the codes; the reference's value is "
                                   "kvq_dequantize_head of the backend's own tensor.");
        }
    } else if (ok && !(run->caps.ops & KVQ_BACKEND_OP_DEQUANTIZE)) {
        result_note(r, "dequantize not run (caps.ops lacks DEQUANTIZE)");
    } else if (ok) {
        ok = false; /* the slot check above filled the diagnostic */
    }
    if (ok && j.codes_differ) {
        result_note(r, "%u codes differ at decision boundaries (S12.2); dequantized values judged against the backend's "
                       "own codes",
                    j.boundary_accepted);
    } else if (ok) {
        ok = judge_floats_exact(m->labels.dequantized, m->expected_dequantized, deq != NULL ? deq : own, count,
                                m->head_dim, "token", "channel", &r->diag);
    }
    guarded_free(deq);
    free(own);
    kvq_qtensor_free(got);
    api->tensor_free(run->ctx, t);
    return ok;
}

/* Part B. */
static bool upload_part(conform_run *run, const quantize_model *m, conform_result *r)
{
    const kvq_backend_api *api = run->api;
    size_t count = (size_t)m->n_tokens * m->head_dim;
    if (!session_slot_present(api->tensor_upload != NULL, "tensor_upload", "DEQUANTIZE", &r->diag) ||
        !session_slot_present(api->dequantize != NULL, "dequantize", "DEQUANTIZE", &r->diag) ||
        !session_slot_present(api->tensor_free != NULL, "tensor_free", "DEQUANTIZE", &r->diag))
        return false;
    kvq_backend_tensor *t = NULL;
    if (!session_expect_ok(run, api->tensor_upload(run->ctx, m->expected, &t), "tensor_upload of the reference's tensor",
                           &r->diag))
        return false;
    float *deq = NULL;
    char field[128];
    snprintf(field, sizeof field, "%s (dequantize of the uploaded reference tensor)", m->labels.dequantized);
    bool ok = backend_dequantize(run, t, count, field, &deq, &r->diag);
    if (ok && !judge_floats_exact(field, m->expected_dequantized, deq, count, m->head_dim, "token", "channel",
                                  &r->diag)) {
        ok = false;
        diag_explain(&r->diag, "S4.5: fp16 tokens widen exactly, codes decode with one specified operation (S3.5, "
                               "S6.5), outliers replace their element (S7.4).");
    }
    if (ok && api->tensor_info != NULL && api->tensor_read != NULL) {
        /* the round trip upload -> read must be the identity */
        kvq_qtensor *back = NULL;
        qt_labels labels = m->labels;
        snprintf(labels.header, sizeof labels.header, "%.40s (uploaded, read back)", m->labels.header);
        qt_judgement j = {0, false};
        ok = session_read_tensor(run, t, "the uploaded tensor", &back, &r->diag) &&
             judge_qtensor(&labels, m->expected, back, NULL, &j, &r->diag);
        kvq_qtensor_free(back);
    }
    guarded_free(deq);
    api->tensor_free(run->ctx, t);
    return ok;
}

void run_quantize(conform_run *run, const quantize_model *m, conform_result *r)
{
    snprintf(r->what, sizeof r->what, "%s", m->what);
    if (m->golden_note[0] != '\0') result_note(r, "%s", m->golden_note);
    char why_a[256] = "", why_b[256] = "";
    bool can_a = caps_allow_op(&run->caps, KVQ_BACKEND_OP_QUANTIZE, why_a, sizeof why_a) &&
                 caps_allow_config(&run->caps, &m->config, m->n_tokens, m->head_dim, why_a, sizeof why_a);
    bool can_b = caps_allow_op(&run->caps, KVQ_BACKEND_OP_DEQUANTIZE, why_b, sizeof why_b) &&
                 caps_allow_tensor(&run->caps, m->expected, why_b, sizeof why_b);
    if (!can_a && !can_b) {
        /* one reason, so that the summary groups skips; the other goes to the notes */
        result_skip(r, "%s", why_a);
        if (strcmp(why_a, why_b) != 0) result_note(r, "upload + dequantize: %s", why_b);
        return;
    }
    if (!can_a) result_note(r, "quantize not run (%s)", why_a);
    if (!can_b) result_note(r, "upload + dequantize not run (%s)", why_b);
    bool ok = (!can_a || quantize_part(run, m, r)) && (!can_b || upload_part(run, m, r));
    if (!ok) result_fail(r);
}
