/*
 * inspect_attention.c - attention over a quantized cache against attention
 * over the original (inspect_attention.h).
 *
 * The weights are not an output of the library (S11 defines the output
 * only), so this file computes them with S11.3's formula over both caches:
 * keys rotated with kvq_rope_apply (S9.4) at their positions, scores summed in
 * double in index order and scaled by 1/sqrt(d), the softmax in double. Its
 * own output over the quantized cache is checked against
 * kvq_attention_decode within kvq_attention_error_bound (check_ratio), so the
 * weights shown are the ones behind the reference's output.
 */
#include "inspect_attention.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static kvq_status fail(kvq_status st, char *why, size_t size, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(why, size, format, args);
    va_end(args);
    return st;
}

/* The spread of a drawn query's scores: large enough that attention picks tokens, small enough that
 * it does not put all its weight on one. Measured on a real model: the 72 query heads of Gemma 3
 * 270M at the last of 512 tokens of GPL-3 (python -m kvq eval --export) have score standard
 * deviations from 1.2 to 8.2, median 2.2. */
#define DRAWN_SCORE_STD 2.0

uint32_t attn_key_position(const kvq_kvfile *orig, uint32_t t) { return orig->positions ? orig->positions[t] : t; }

/* The position after the last key: where the next decode step's query stands. */
static uint32_t next_position(const kvq_kvfile *orig)
{
    uint32_t last = 0;
    for (uint32_t t = 0; t < orig->n_tokens; t++)
        if (attn_key_position(orig, t) > last) last = attn_key_position(orig, t);
    return last < KVQ_MAX_POSITION ? last + 1 : last;
}

static float *query(const attn_queries *q, uint32_t l, uint32_t h, uint32_t step, uint32_t j)
{
    return q->q + ((((size_t)l * q->n_kv_heads + h) * q->n_steps + step) * q->n_q + j) * q->head_dim;
}

static kvq_status alloc_queries(attn_queries *q, const kvq_kvfile *orig, uint32_t n_q, uint32_t n_steps, char *why,
                                size_t why_size)
{
    memset(q, 0, sizeof *q);
    q->n_layers = orig->n_layers;
    q->n_kv_heads = orig->n_heads;
    q->head_dim = orig->head_dim;
    q->n_q = n_q;
    q->n_steps = n_steps;
    size_t n = (size_t)q->n_layers * q->n_kv_heads * n_steps * n_q * q->head_dim;
    q->q = calloc(n ? n : 1, sizeof *q->q);
    q->position = calloc(n_steps ? n_steps : 1, sizeof *q->position);
    if (q->q == NULL || q->position == NULL) {
        attn_queries_free(q);
        return fail(KVQ_ERR_OUT_OF_MEMORY, why, why_size, "out of memory for %zu query elements", n);
    }
    return KVQ_OK;
}

kvq_status attn_queries_read(const char *path, const kvq_kvfile *orig, attn_queries *out, char *why, size_t why_size)
{
    kvq_kvfile *f = NULL;
    kvq_status st = kvq_kvfile_read(path, &f);
    if (st != KVQ_OK) return fail(st, why, why_size, "%s", kvq_last_error());
    if (f->keys == NULL) st = fail(KVQ_ERR_BAD_ARGUMENT, why, why_size, "%s holds no keys array (the queries)", path);
    else if (f->n_layers != orig->n_layers || f->head_dim != orig->head_dim || f->n_heads % orig->n_heads != 0)
        st = fail(KVQ_ERR_SIZE_MISMATCH, why, why_size,
                  "%s: %u layers x %u heads x %u channels; the cache has %u layers x %u KV heads x %u channels "
                  "(the queries need as many layers and channels, and a multiple of its heads)",
                  path, f->n_layers, f->n_heads, f->head_dim, orig->n_layers, orig->n_heads, orig->head_dim);
    if (st != KVQ_OK) {
        kvq_kvfile_free(f);
        return st;
    }
    uint32_t n_q = f->n_heads / orig->n_heads;
    st = alloc_queries(out, orig, n_q, f->n_tokens, why, why_size);
    if (st != KVQ_OK) {
        kvq_kvfile_free(f);
        return st;
    }
    uint32_t next = next_position(orig);
    for (uint32_t t = 0; t < f->n_tokens; t++) {
        uint64_t p = f->positions ? f->positions[t] : (uint64_t)next + t;
        out->position[t] = p > KVQ_MAX_POSITION ? KVQ_MAX_POSITION : (uint32_t)p;
    }
    /* query head g = h * n_q + j reads KV head h (grouped-query attention) */
    for (uint32_t l = 0; l < f->n_layers; l++)
        for (uint32_t g = 0; g < f->n_heads; g++) {
            const float *x = kvq_kvfile_slice(f, KVQ_ROLE_KEYS, l, g);
            for (uint32_t t = 0; t < f->n_tokens; t++)
                memcpy(query(out, l, g / n_q, t, g % n_q), x + (size_t)t * f->head_dim, f->head_dim * sizeof(float));
        }
    snprintf(out->source, sizeof out->source, "from %s (%u query head%s per KV head, %u position%s%s)", path, n_q,
             n_q == 1 ? "" : "s", f->n_tokens, f->n_tokens == 1 ? "" : "s",
             f->positions ? "" : ", after the cache's last token");
    kvq_kvfile_free(f);
    return KVQ_OK;
}

kvq_status attn_queries_draw(const kvq_kvfile *orig, uint32_t n_q, uint64_t seed, attn_queries *out, char *why,
                             size_t why_size)
{
    kvq_status st = alloc_queries(out, orig, n_q, 1, why, why_size);
    if (st != KVQ_OK) return st;
    out->position[0] = next_position(orig);
    kvq_rng rng;
    kvq_rng_seed(&rng, seed);
    uint32_t d = orig->head_dim;
    for (uint32_t l = 0; l < orig->n_layers; l++)
        for (uint32_t h = 0; h < orig->n_heads; h++) {
            const float *k = kvq_kvfile_slice(orig, KVQ_ROLE_KEYS, l, h);
            for (uint32_t j = 0; j < n_q; j++) {
                uint32_t t = (uint32_t)(kvq_rng_next_u64(&rng) % orig->n_tokens);
                const float *row = k + (size_t)t * d;
                /* scale: the scores k_u . q / sqrt(d) of the unrotated keys get a standard deviation of
                 * DRAWN_SCORE_STD over the cache, a softmax neither uniform nor one-hot */
                double sum = 0.0, sum_sq = 0.0;
                for (uint32_t u = 0; u < orig->n_tokens; u++) {
                    double s = 0.0;
                    for (uint32_t c = 0; c < d; c++) s += (double)row[c] * k[(size_t)u * d + c];
                    s /= sqrt((double)d);
                    sum += s;
                    sum_sq += s * s;
                }
                double mean = sum / orig->n_tokens, var = sum_sq / orig->n_tokens - mean * mean;
                double scale = var > 0.0 ? DRAWN_SCORE_STD / sqrt(var) : 0.0;
                float *q = query(out, l, h, 0, j);
                for (uint32_t c = 0; c < d; c++) {
                    double v = row[c] * scale;
                    q[c] = (float)(v > 65504.0 ? 65504.0 : v < -65504.0 ? -65504.0 : v);
                }
            }
        }
    snprintf(out->source, sizeof out->source,
             "drawn (seed %llu): %u per KV head, each the original key of a random token, scaled to scores of "
             "standard deviation %g, at position %u",
             (unsigned long long)seed, n_q, DRAWN_SCORE_STD, out->position[0]);
    return KVQ_OK;
}

void attn_queries_free(attn_queries *q)
{
    free(q->q);
    free(q->position);
    q->q = NULL;
    q->position = NULL;
}

void attn_report_free(attn_report *r)
{
    free(r->row);
    r->row = NULL;
    r->n = 0;
}

/* S11.3-S11.4 in double over rotated keys kr[n][d] and values v[n][d]: weights p[n], output out[d]. */
static void attend(const float *kr, const float *v, uint32_t n, uint32_t d, const float *qr, double *p, double *out)
{
    double scale = 1.0 / sqrt((double)d), m = -INFINITY, sum = 0.0;
    for (uint32_t t = 0; t < n; t++) {
        double s = 0.0;
        for (uint32_t i = 0; i < d; i++) s += (double)qr[i] * (double)kr[(size_t)t * d + i];
        p[t] = s * scale;
        if (p[t] > m) m = p[t];
    }
    for (uint32_t t = 0; t < n; t++) {
        p[t] = exp(p[t] - m);
        sum += p[t];
    }
    for (uint32_t t = 0; t < n; t++) p[t] /= sum;
    for (uint32_t j = 0; j < d; j++) out[j] = 0.0;
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t j = 0; j < d; j++) out[j] += p[t] * (double)v[(size_t)t * d + j];
}

/* Work buffers for one (layer, KV head). */
typedef struct slice_work {
    float *k_deq, *v_deq, *kr_orig, *kr_quant, *qr;
    uint32_t *pos;
    double *p_orig, *p_quant, *o_orig, *o_quant;
    float *ref_out, *bound;
} slice_work;

static void work_free(slice_work *w)
{
    free(w->k_deq);
    free(w->v_deq);
    free(w->kr_orig);
    free(w->kr_quant);
    free(w->qr);
    free(w->pos);
    free(w->p_orig);
    free(w->p_quant);
    free(w->o_orig);
    free(w->o_quant);
    free(w->ref_out);
    free(w->bound);
    memset(w, 0, sizeof *w);
}

static bool work_alloc(slice_work *w, uint32_t n, uint32_t d, uint32_t n_q)
{
    size_t nd = (size_t)n * d;
    memset(w, 0, sizeof *w);
    w->k_deq = malloc(nd * sizeof(float));
    w->v_deq = malloc(nd * sizeof(float));
    w->kr_orig = malloc(nd * sizeof(float));
    w->kr_quant = malloc(nd * sizeof(float));
    w->qr = malloc(d * sizeof(float));
    w->pos = malloc(n * sizeof(uint32_t));
    w->p_orig = malloc(n * sizeof(double));
    w->p_quant = malloc(n * sizeof(double));
    w->o_orig = malloc(d * sizeof(double));
    w->o_quant = malloc(d * sizeof(double));
    w->ref_out = malloc((size_t)n_q * d * sizeof(float));
    w->bound = malloc((size_t)n_q * d * sizeof(float));
    return w->k_deq && w->v_deq && w->kr_orig && w->kr_quant && w->qr && w->pos && w->p_orig && w->p_quant &&
           w->o_orig && w->o_quant && w->ref_out && w->bound;
}

/* Dequantizes slice (l, h) and rotates both caches' keys at their positions. */
static kvq_status prepare(const kvq_qfile *qf, const kvq_kvfile *orig, const kvq_rope *rope, uint32_t l, uint32_t h,
                          slice_work *w, char *why, size_t why_size)
{
    uint32_t n = orig->n_tokens, d = orig->head_dim;
    const kvq_qtensor *kq = *kvq_qfile_slot(qf, l, h, KVQ_ROLE_KEYS), *vq = *kvq_qfile_slot(qf, l, h, KVQ_ROLE_VALUES);
    kvq_status st = kvq_dequantize_head(kq, w->k_deq);
    if (st == KVQ_OK) st = kvq_dequantize_head(vq, w->v_deq);
    if (st != KVQ_OK) return fail(st, why, why_size, "layer %u head %u: %s", l, h, kvq_last_error());
    const float *k = kvq_kvfile_slice(orig, KVQ_ROLE_KEYS, l, h);
    for (uint32_t t = 0; t < n && st == KVQ_OK; t++) {
        w->pos[t] = attn_key_position(orig, t);
        st = kvq_rope_apply(rope, d, w->pos[t], k + (size_t)t * d, w->kr_orig + (size_t)t * d);
        if (st == KVQ_OK) st = kvq_rope_apply(rope, d, w->pos[t], w->k_deq + (size_t)t * d, w->kr_quant + (size_t)t * d);
    }
    if (st != KVQ_OK) return fail(st, why, why_size, "layer %u head %u: RoPE: %s", l, h, kvq_last_error());
    return KVQ_OK;
}

/* The weights and outputs of query j at step `step` over both caches (after prepare). */
static kvq_status attend_both(const kvq_kvfile *orig, const attn_queries *q, const kvq_rope *rope, uint32_t l,
                              uint32_t h, uint32_t step, uint32_t j, slice_work *w, char *why, size_t why_size)
{
    uint32_t n = orig->n_tokens, d = orig->head_dim;
    kvq_status st = kvq_rope_apply(rope, d, q->position[step], query(q, l, h, step, j), w->qr);
    if (st != KVQ_OK) return fail(st, why, why_size, "layer %u head %u query %u: %s", l, h, j, kvq_last_error());
    attend(w->kr_orig, kvq_kvfile_slice(orig, KVQ_ROLE_VALUES, l, h), n, d, w->qr, w->p_orig, w->o_orig);
    attend(w->kr_quant, w->v_deq, n, d, w->qr, w->p_quant, w->o_quant);
    return KVQ_OK;
}

kvq_status attn_measure(const kvq_qfile *qf, const kvq_kvfile *orig, const attn_queries *q, const kvq_rope *rope,
                        attn_report *out, char *why, size_t why_size)
{
    uint32_t L = orig->n_layers, H = orig->n_heads, n = orig->n_tokens, d = orig->head_dim;
    memset(out, 0, sizeof *out);
    size_t rows = (size_t)L * H * q->n_steps * q->n_q;
    out->row = calloc(rows ? rows : 1, sizeof *out->row);
    slice_work w;
    if (out->row == NULL || !work_alloc(&w, n, d, q->n_q)) {
        if (out->row != NULL) work_free(&w);
        attn_report_free(out);
        return fail(KVQ_ERR_OUT_OF_MEMORY, why, why_size, "out of memory for attention over %u tokens", n);
    }
    kvq_status st = KVQ_OK;
    for (uint32_t l = 0; l < L && st == KVQ_OK; l++)
        for (uint32_t h = 0; h < H && st == KVQ_OK; h++) {
            st = prepare(qf, orig, &rope[l], l, h, &w, why, why_size);
            const kvq_qtensor *kq = *kvq_qfile_slot(qf, l, h, KVQ_ROLE_KEYS),
                              *vq = *kvq_qfile_slot(qf, l, h, KVQ_ROLE_VALUES);
            for (uint32_t step = 0; step < q->n_steps && st == KVQ_OK; step++) {
                const float *qs = query(q, l, h, step, 0);
                st = kvq_attention_decode(kq, vq, w.pos, &rope[l], qs, q->n_q, q->position[step], w.ref_out);
                if (st == KVQ_OK)
                    st = kvq_attention_error_bound(kq, vq, w.pos, &rope[l], qs, q->n_q, q->position[step], w.bound);
                if (st != KVQ_OK) {
                    fail(st, why, why_size, "layer %u head %u: kvq_attention_decode: %s", l, h, kvq_last_error());
                    break;
                }
                for (uint32_t j = 0; j < q->n_q && st == KVQ_OK; j++) {
                    st = attend_both(orig, q, &rope[l], l, h, step, j, &w, why, why_size);
                    if (st != KVQ_OK) break;
                    attn_row *r = &out->row[out->n++];
                    r->layer = l;
                    r->kv_head = h;
                    r->q_head = h * q->n_q + j;
                    r->step = step;
                    r->position = q->position[step];
                    const float *ref = w.ref_out + (size_t)j * d, *bound = w.bound + (size_t)j * d;
                    double num = 0.0, den = 0.0;
                    for (uint32_t c = 0; c < d; c++) {
                        double e = (double)ref[c] - w.o_orig[c];
                        num += e * e;
                        den += w.o_orig[c] * w.o_orig[c];
                        r->out_max = fmax(r->out_max, fabs(e));
                        double dev = fabs(w.o_quant[c] - (double)ref[c]);
                        r->check_ratio = fmax(r->check_ratio, bound[c] > 0.0f ? dev / bound[c] : dev > 0.0 ? INFINITY : 0.0);
                    }
                    r->out_rel = den > 0.0 ? sqrt(num / den) : sqrt(num);
                    double tv = 0.0;
                    for (uint32_t t = 0; t < n; t++) {
                        double dp = fabs(w.p_quant[t] - w.p_orig[t]);
                        tv += dp;
                        r->dp_max = fmax(r->dp_max, dp);
                        if (w.p_orig[t] > w.p_orig[r->top_orig]) r->top_orig = t;
                        if (w.p_quant[t] > w.p_quant[r->top_quant]) r->top_quant = t;
                    }
                    r->tv = tv / 2.0;
                    r->w0_orig = w.p_orig[0];
                    r->w0_quant = w.p_quant[0];
                }
            }
        }
    work_free(&w);
    if (st != KVQ_OK) attn_report_free(out);
    return st;
}

kvq_status attn_weights(const kvq_qfile *qf, const kvq_kvfile *orig, const attn_queries *q, const kvq_rope *rope,
                        const attn_row *row, double *w_orig, double *w_quant, char *why, size_t why_size)
{
    slice_work w;
    if (!work_alloc(&w, orig->n_tokens, orig->head_dim, q->n_q)) {
        work_free(&w);
        return fail(KVQ_ERR_OUT_OF_MEMORY, why, why_size, "out of memory");
    }
    uint32_t j = row->q_head - row->kv_head * q->n_q;
    kvq_status st = prepare(qf, orig, &rope[row->layer], row->layer, row->kv_head, &w, why, why_size);
    if (st == KVQ_OK) st = attend_both(orig, q, &rope[row->layer], row->layer, row->kv_head, row->step, j, &w, why, why_size);
    if (st == KVQ_OK) {
        memcpy(w_orig, w.p_orig, orig->n_tokens * sizeof *w_orig);
        memcpy(w_quant, w.p_quant, orig->n_tokens * sizeof *w_quant);
    }
    work_free(&w);
    return st;
}

static const char *pairing_name(kvq_rope_pairing p)
{
    return p == KVQ_ROPE_HALF ? "half" : p == KVQ_ROPE_INTERLEAVED ? "interleaved" : "none";
}

/* "RoPE half, base 10000" or "RoPE half, base 10000 (layers 5, 11, 17: 1000000)". */
static void rope_text(const kvq_rope *rope, uint32_t n_layers, char *out, size_t size)
{
    int n = snprintf(out, size, "RoPE %s", pairing_name(rope[0].pairing));
    if (rope[0].pairing == KVQ_ROPE_NONE || n < 0 || (size_t)n >= size) return;
    n += snprintf(out + n, size - (size_t)n, ", base %.10g", (double)rope[0].base);
    bool first = true;
    for (uint32_t l = 1; l < n_layers && n >= 0 && (size_t)n < size; l++) {
        if (rope[l].base == rope[0].base) continue;
        n += snprintf(out + n, size - (size_t)n, "%s%u: %.10g", first ? " (layer " : ", ", l, (double)rope[l].base);
        first = false;
    }
    if (!first && n >= 0 && (size_t)n < size) snprintf(out + n, size - (size_t)n, ")");
}

typedef struct summary {
    double out_mean, out_max, tv_mean, tv_max, check_max;
    size_t worst_out, worst_tv, top_kept;
} summary;

static summary summarize(const attn_report *r)
{
    summary s;
    memset(&s, 0, sizeof s);
    for (size_t i = 0; i < r->n; i++) {
        const attn_row *a = &r->row[i];
        s.out_mean += a->out_rel / (double)r->n;
        s.tv_mean += a->tv / (double)r->n;
        if (a->out_rel > s.out_max) {
            s.out_max = a->out_rel;
            s.worst_out = i;
        }
        if (a->tv > s.tv_max) {
            s.tv_max = a->tv;
            s.worst_tv = i;
        }
        s.check_max = fmax(s.check_max, a->check_ratio);
        if (a->top_orig == a->top_quant) s.top_kept++;
    }
    return s;
}

void attn_print_text(const attn_report *r, const attn_queries *q, const kvq_rope *rope, uint32_t n_tokens)
{
    char rt[512];
    rope_text(rope, q->n_layers, rt, sizeof rt);
    printf("\nattention (S11): %zu query head%s over %u cached tokens, %s; queries %s\n", r->n, r->n == 1 ? "" : "s",
           n_tokens, rt, q->source);
    printf("layer kv-head q-head position  out rel.err  out max.err  weight shift (TV)  max |dp|  token-0 weight "
           "(orig -> quant)  top token (orig/quant)\n");
    for (size_t i = 0; i < r->n; i++) {
        const attn_row *a = &r->row[i];
        printf("%5u %7u %6u %8u %12.6g %12.6g %18.6g %9.4g %14.4g -> %-8.4g %11u / %u\n", a->layer, a->kv_head,
               a->q_head, a->position, a->out_rel, a->out_max, a->tv, a->dp_max, a->w0_orig, a->w0_quant, a->top_orig,
               a->top_quant);
    }
    if (r->n == 0) return;
    summary s = summarize(r);
    const attn_row *wo = &r->row[s.worst_out], *wt = &r->row[s.worst_tv];
    printf("attention summary: output error (relative) mean %.6g, max %.6g (layer %u q-head %u); weight shift (TV) "
           "mean %.6g, max %.6g (layer %u q-head %u); top token kept in %zu of %zu; weights checked: this tool's "
           "attention over the quantized cache is within %.3g of S12.3's bound of kvq_attention_decode\n",
           s.out_mean, s.out_max, wo->layer, wo->q_head, s.tv_mean, s.tv_max, wt->layer, wt->q_head, s.top_kept, r->n,
           s.check_max);
}

void attn_print_json(json_writer *w, const char *key, const attn_report *r, const attn_queries *q,
                     const kvq_rope *rope)
{
    char rt[512];
    rope_text(rope, q->n_layers, rt, sizeof rt);
    summary s = summarize(r);
    json_write_object_inline(w, key);
    json_write_string(w, "queries", q->source);
    json_write_string(w, "rope", rt);
    json_write_u64(w, "query_heads_per_kv_head", q->n_q);
    json_write_fp32(w, "output_error_mean", s.out_mean);
    json_write_fp32(w, "output_error_max", s.out_max);
    json_write_fp32(w, "weight_shift_mean", s.tv_mean);
    json_write_fp32(w, "weight_shift_max", s.tv_max);
    json_write_u64(w, "top_token_kept", s.top_kept);
    json_write_fp32(w, "check_ratio_max", s.check_max);
    json_write_array_inline(w, "heads");
    for (size_t i = 0; i < r->n; i++) {
        const attn_row *a = &r->row[i];
        json_write_space(w, "\n  ");
        json_write_object_inline(w, NULL);
        json_write_u64(w, "layer", a->layer);
        json_write_u64(w, "kv_head", a->kv_head);
        json_write_u64(w, "q_head", a->q_head);
        json_write_u64(w, "step", a->step);
        json_write_u64(w, "position", a->position);
        json_write_fp32(w, "output_error", a->out_rel);
        json_write_fp32(w, "output_max_abs", a->out_max);
        json_write_fp32(w, "weight_shift", a->tv);
        json_write_fp32(w, "weight_max_abs", a->dp_max);
        json_write_array_inline(w, "token0_weight");
        json_write_fp32(w, NULL, a->w0_orig);
        json_write_fp32(w, NULL, a->w0_quant);
        json_write_end(w);
        json_write_array_inline(w, "top_token");
        json_write_u64(w, NULL, a->top_orig);
        json_write_u64(w, NULL, a->top_quant);
        json_write_end(w);
        json_write_fp32(w, "check_ratio", a->check_ratio);
        json_write_end(w);
    }
    json_write_end(w);
    json_write_end(w);
}

/* x of a query head: its layer, the layer's query heads side by side (or the head with one layer). */
static double head_x(const attn_queries *q, const attn_row *a)
{
    double per_layer = (double)q->n_kv_heads * q->n_q;
    if (q->n_layers == 1) return (double)a->q_head;
    return a->layer + (a->q_head + 0.5) / per_layer - 0.5;
}

void attn_figure_init(figure *f, const attn_queries *q, const char *title)
{
    fig_init(f, 1, 2, PLOT_LINEAR, PLOT_LOG10);
    f->x_integer = true;
    snprintf(f->title, sizeof f->title, "%s", title);
    snprintf(f->subtitle, sizeof f->subtitle, "queries %.280s", q->source);
    snprintf(f->x_label, sizeof f->x_label, "%s",
             q->n_layers == 1 ? "query head" : "layer (its query heads side by side)");
    snprintf(f->y_label, sizeof f->y_label, "error (log scale)");
    snprintf(f->panel[0].title, sizeof f->panel[0].title, "attention output\n|o' - o| / |o|");
    snprintf(f->panel[1].title, sizeof f->panel[1].title, "attention weights\ntotal variation  sum |p' - p| / 2");
}

void attn_figure_add(figure *f, const attn_report *r, const attn_queries *q, const char *series)
{
    size_t st = fig_style_of(f, series, false);
    if (st < FIG_MAX_STYLES) f->style[st].no_line = true;
    for (size_t i = 0; i < r->n; i++) {
        fig_add(f, 0, st, head_x(q, &r->row[i]), r->row[i].out_rel);
        fig_add(f, 1, st, head_x(q, &r->row[i]), r->row[i].tv);
    }
}
