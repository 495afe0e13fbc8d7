/*
 * acc_metrics.c - the scores of `kvq accuracy` (accuracy.h).
 *
 * NMSE follows llama.cpp's test-backend-ops (the squared error over the
 * squared reference, summed over the tensor) with one difference: the sum in
 * the denominator is the reference's, not the tested output's, so that a
 * format that scales everything down cannot lower its own score. Max relative
 * error is per tensor, max |x - y| / max |y|, so that elements near zero do
 * not turn it into noise (an element-wise |x - y| / |y| is unbounded there).
 */
#include "accuracy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

const char *const acc_metric_names[ACC_METRICS] = {"keys", "values", "attention", "attention_arith"};
const char *const acc_metric_titles[ACC_METRICS] = {"keys", "values", "attention", "attn arith"};

void acc_metric_add(acc_metric *m, const float *got, const float *ref, size_t n)
{
    double err2 = 0.0, ref2 = 0.0, max_err = 0.0, max_ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)got[i] - (double)ref[i];
        err2 += e * e;
        ref2 += (double)ref[i] * ref[i];
        max_err = fmax(max_err, fabs(e)); /* fmax ignores a NaN: counted below */
        max_ref = fmax(max_ref, fabs((double)ref[i]));
        if (isnan(e)) max_err = INFINITY;
    }
    m->err2 += err2;
    m->ref2 += ref2;
    double rel = max_ref > 0.0 ? max_err / max_ref : (max_err > 0.0 ? INFINITY : 0.0);
    if (!m->has || rel > m->max_rel) m->max_rel = rel;
    m->has = true;
}

double acc_nmse(const acc_metric *m)
{
    if (!m->has) return NAN;
    if (m->ref2 == 0.0) return m->err2 == 0.0 ? 0.0 : INFINITY;
    return m->err2 / m->ref2;
}

bool acc_score_head(acc_score *s, const acc_inputs *in, uint32_t head, const float *keys, const float *values,
                    const float *out)
{
    const acc_point *p = in->point;
    size_t slice = (size_t)p->n_tokens * p->head_dim, qs = (size_t)p->n_q * p->head_dim;
    acc_metric_add(&s->m[ACC_KEYS], keys, in->keys + head * slice, slice);
    acc_metric_add(&s->m[ACC_VALUES], values, in->values + head * slice, slice);
    /* the same attention in double over the source's own values: its arithmetic's reference, and
     * what stands for its output when it has no attention kernel */
    float *own = malloc(qs * sizeof *own);
    bool ok = own != NULL && acc_attention(keys, values, p->n_tokens, p->head_dim, in->q + head * qs, p->n_q, own);
    if (ok) {
        acc_metric_add(&s->m[ACC_ATTENTION], out != NULL ? out : own, in->out + head * qs, qs);
        if (out != NULL) acc_metric_add(&s->m[ACC_ARITH], out, own, qs);
    }
    free(own);
    return ok;
}

bool acc_score_source(const acc_data *data, acc_head_fn fn, void *arg, acc_score *points, char *message,
                      size_t message_size)
{
    bool ok = true;
    for (size_t i = 0; i < data->n_points && ok; i++) {
        const acc_inputs *in = &data->points[i];
        const acc_point *p = in->point;
        size_t slice = (size_t)p->n_tokens * p->head_dim;
        float *k = malloc(slice * sizeof *k), *v = malloc(slice * sizeof *v);
        float *out = malloc((size_t)p->n_q * p->head_dim * sizeof *out);
        char why[400] = "out of memory";
        for (uint32_t h = 0; h < p->n_heads && ok; h++) {
            bool has_out = false;
            ok = k != NULL && v != NULL && out != NULL && fn(arg, in, h, k, v, out, &has_out, why, sizeof why);
            if (ok && !acc_score_head(&points[i], in, h, k, v, has_out ? out : NULL)) {
                snprintf(why, sizeof why, "out of memory scoring it");
                ok = false;
            }
            if (!ok) snprintf(message, message_size, "%s, head %u: %s", p->name, h, why);
        }
        free(k);
        free(v);
        free(out);
    }
    return ok;
}

void acc_score_worst(const acc_score *points, size_t n, acc_score *worst)
{
    for (int k = 0; k < ACC_METRICS; k++) {
        acc_metric w = {0.0, 0.0, 0.0, false};
        double worst_nmse = -1.0;
        for (size_t i = 0; i < n; i++) {
            const acc_metric *m = &points[i].m[k];
            if (!m->has) continue;
            double v = acc_nmse(m);
            if (!w.has || v > worst_nmse || isnan(v)) {
                w.err2 = m->err2;
                w.ref2 = m->ref2;
                worst_nmse = v;
            }
            w.max_rel = w.has ? fmax(w.max_rel, m->max_rel) : m->max_rel;
            w.has = true;
        }
        worst->m[k] = w;
    }
}
