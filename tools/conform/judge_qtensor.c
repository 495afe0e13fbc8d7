/*
 * judge_qtensor.c - a backend's quantized head slice against the reference's,
 * field by field (S4.4): class E everywhere except the codes, which are class
 * B (S12.2). Each failure names the golden label of the field, the element
 * (token, channel) and the rule it breaks.
 */
#include "judge.h"
#include "kvq/kvq_rules.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void qt_labels_for(qt_labels *l, const char *prefix)
{
#define LABEL(member, name) snprintf(l->member, sizeof l->member, "%s_%s", prefix, name)
    LABEL(header, "header (tensor_info)");
    LABEL(precision, "precision");
    LABEL(fp16_slot, "fp16_slot");
    LABEL(fp16_rows, "fp16_rows");
    LABEL(params, "params");
    LABEL(codes, "codes");
    LABEL(outlier_ptr, "outlier_ptr");
    LABEL(outlier_index, "outlier_index");
    LABEL(outlier_value, "outlier_value");
    LABEL(dequantized, "dequantized");
#undef LABEL
}

void qt_labels_for_groups(qt_labels *l)
{
    snprintf(l->header, sizeof l->header, "header (tensor_info)");
    snprintf(l->precision, sizeof l->precision, "precision (all QUANTIZED)");
    snprintf(l->fp16_slot, sizeof l->fp16_slot, "fp16_slot");
    snprintf(l->fp16_rows, sizeof l->fp16_rows, "fp16_rows (none)");
    snprintf(l->params, sizeof l->params, "params");
    snprintf(l->codes, sizeof l->codes, "codes");
    snprintf(l->outlier_ptr, sizeof l->outlier_ptr, "outlier_ptr (none)");
    snprintf(l->outlier_index, sizeof l->outlier_index, "outlier_index (none)");
    snprintf(l->outlier_value, sizeof l->outlier_value, "outlier_value (none)");
    snprintf(l->dequantized, sizeof l->dequantized, "decoded");
}

size_t qt_param_index(const kvq_qtensor *qt, uint32_t t, uint32_t c)
{
    /* a backend's tensor with values' group_size 0 is judged as one group per row, not divided by */
    uint32_t g = qt->role == KVQ_ROLE_VALUES && qt->group_size == 0 ? qt->head_dim : qt->group_size;
    return kvq_param_index(kvq_param_layout_of(qt->role, qt->key_mode), g, qt->head_dim, t, c);
}

/* The group that params[i] belongs to, in words. */
static void describe_group(const kvq_qtensor *qt, size_t i, char *out, size_t size)
{
    if (qt->role == KVQ_ROLE_VALUES) {
        uint32_t g = qt->group_size ? qt->group_size : qt->head_dim;
        size_t per_token = qt->head_dim / g;
        size_t j = i % per_token;
        snprintf(out, size, "token %zu, channels %zu-%zu", i / per_token, j * g, j * g + g - 1);
    } else if (qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE) {
        size_t b = i / qt->head_dim;
        snprintf(out, size, "key block %zu (tokens %zu-%zu), channel %zu", b, b * qt->group_size,
                 (b + 1) * qt->group_size - 1, i % qt->head_dim);
    } else {
        snprintf(out, size, "channel %zu", i);
    }
}

static bool header_field(const qt_labels *l, const char *name, long long got, long long expected, conform_diag *d)
{
    if (got == expected) return true;
    diag_at(d, l->header, -1, "%s", name);
    diag_got(d, "%lld", got);
    diag_expected(d, "%lld", expected);
    diag_explain(d, "class E (S12.1, S4.4): the tensor's %s differs from the reference's.", name);
    return false;
}

static bool judge_header(const qt_labels *l, const kvq_qtensor *e, const kvq_qtensor *g, conform_diag *d)
{
    if (!header_field(l, "role", g->role, e->role, d)) return false;
    if (e->role == KVQ_ROLE_KEYS && !header_field(l, "key_mode", g->key_mode, e->key_mode, d)) return false;
    if (!header_field(l, "scheme", g->scheme, e->scheme, d) || !header_field(l, "bits", g->bits, e->bits, d) ||
        !header_field(l, "n_tokens", g->n_tokens, e->n_tokens, d) ||
        !header_field(l, "head_dim", g->head_dim, e->head_dim, d) ||
        !header_field(l, "group_size", g->group_size, e->group_size, d) ||
        !header_field(l, "row_bytes", (long long)g->row_bytes, (long long)e->row_bytes, d) ||
        !header_field(l, "n_params", g->n_params, e->n_params, d))
        return false;
    if (!header_field(l, "codebook.bits", g->codebook.bits, e->codebook.bits, d)) return false;
    uint32_t levels = e->codebook.bits >= 2 && e->codebook.bits <= 4 ? 1u << e->codebook.bits : 0;
    for (uint32_t k = 0; k < levels; k++)
        if (memcmp(&g->codebook.signpost[k], &e->codebook.signpost[k], sizeof(float)) != 0) {
            diag_at(d, l->header, k, "codebook.signpost[%u]", k);
            diag_floats(d, g->codebook.signpost[k], e->codebook.signpost[k]);
            diag_explain(d, "S4.4: a NUQ tensor holds an exact copy of the config's codebook.");
            return false;
        }
    for (uint32_t k = 0; k + 1 < levels; k++)
        if (memcmp(&g->codebook.threshold[k], &e->codebook.threshold[k], sizeof(float)) != 0) {
            diag_at(d, l->header, k, "codebook.threshold[%u]", k);
            diag_floats(d, g->codebook.threshold[k], e->codebook.threshold[k]);
            diag_explain(d, "S4.4, S6.2: a NUQ tensor holds an exact copy of the config's codebook.");
            return false;
        }
    return true;
}

static const char *precision_rule(uint32_t expected)
{
    switch (expected) {
    case KVQ_PREC_SINK: return "S8: the first n_sinks tokens are attention sinks, always stored in fp16";
    case KVQ_PREC_POLICY: return "S10.3: the token policy keeps this token in fp16 within the budget";
    case KVQ_PREC_WINDOW: return "S10.4: the newest recent_window tokens stay in fp16";
    case KVQ_PREC_RESIDUAL: return "S4.3: tokens of an incomplete key block stay in fp16 as the residual";
    default: return "S4.1 step 2: the reference quantizes this token";
    }
}

static bool judge_precision(const qt_labels *l, const kvq_qtensor *e, const kvq_qtensor *g, conform_diag *d)
{
    uint32_t first = e->n_tokens, differing = 0;
    for (uint32_t t = 0; t < e->n_tokens; t++)
        if (g->precision[t] != e->precision[t]) {
            if (first == e->n_tokens) first = t;
            differing++;
        }
    if (differing == 0) return true;
    diag_at(d, l->precision, first, "token %u", first);
    diag_got(d, "%u (%s)", g->precision[first], precision_name(g->precision[first]));
    diag_expected(d, "%u (%s)", e->precision[first], precision_name(e->precision[first]));
    diag_explain(d, "%s (S10.5 precedence SINK > POLICY > WINDOW > RESIDUAL > QUANTIZED); %u of %u tokens differ.",
                 precision_rule(e->precision[first]), differing, e->n_tokens);
    return false;
}

static bool judge_fp16_rows(const qt_labels *l, const kvq_qtensor *e, const kvq_qtensor *g, conform_diag *d)
{
    for (uint32_t t = 0; t < e->n_tokens; t++)
        if (g->fp16_slot[t] != e->fp16_slot[t]) {
            diag_at(d, l->fp16_slot, t, "token %u", t);
            diag_got(d, "%u", g->fp16_slot[t]);
            diag_expected(d, "%u", e->fp16_slot[t]);
            diag_explain(d, "S4.4: fp16 rows are numbered 0, 1, ... in token order; UINT32_MAX for QUANTIZED tokens.");
            return false;
        }
    if (!header_field(l, "n_fp16_rows", g->n_fp16_rows, e->n_fp16_rows, d)) return false;
    size_t count = (size_t)e->n_fp16_rows * e->head_dim, differing = 0, first = count;
    for (size_t i = 0; i < count; i++)
        if (g->fp16_rows[i] != e->fp16_rows[i]) {
            if (first == count) first = i;
            differing++;
        }
    if (differing == 0) return true;
    size_t row = first / e->head_dim, c = first % e->head_dim;
    uint32_t token = 0;
    for (uint32_t t = 0; t < e->n_tokens; t++)
        if (e->fp16_slot[t] == row) token = t;
    diag_at(d, l->fp16_rows, (long long)first, "row %zu (token %u, %s), channel %zu", row, token,
            precision_name(e->precision[token]), c);
    format_fp16(d->got, sizeof d->got, g->fp16_rows[first]);
    format_fp16(d->expected, sizeof d->expected, e->fp16_rows[first]);
    diag_explain(d, "S4.1 step 3: an unquantized token is stored as fp16(x), rounded to nearest even (S2); %zu of %zu "
                    "elements differ.",
                 differing, count);
    return false;
}

static bool judge_params(const qt_labels *l, const kvq_qtensor *e, const kvq_qtensor *g, conform_diag *d)
{
    size_t first = e->n_params, differing = 0;
    for (size_t i = 0; i < e->n_params; i++)
        if (g->params[i].a != e->params[i].a || g->params[i].b != e->params[i].b) {
            if (first == e->n_params) first = i;
            differing++;
        }
    if (differing == 0) return true;
    char where[128];
    describe_group(e, first, where, sizeof where);
    diag_at(d, l->params, (long long)first, "%s", where);
    char a[48], b[48];
    format_fp16(a, sizeof a, g->params[first].a);
    format_fp16(b, sizeof b, g->params[first].b);
    diag_got(d, "a=%s b=%s", a, b);
    format_fp16(a, sizeof a, e->params[first].a);
    format_fp16(b, sizeof b, e->params[first].b);
    diag_expected(d, "a=%s b=%s", a, b);
    bool a_wrong = g->params[first].a != e->params[first].a;
    diag_explain(d, "class E: group parameter %s differs (S3.2 asym a = fp16_down(min), b = fp16_up(...); S3.3 sym; "
                    "S6.3 NUQ; the dense range excludes outliers and fp16 tokens, S4.3, S7); %zu of %u groups differ.",
                 a_wrong ? "a" : "b", differing, e->n_params);
    return false;
}

/* The outliers as (token, channel, fp16) triples, checked for the S4.4
 * structure first so that a malformed CSR/CSC array is named as such. */
static bool outlier_structure(const qt_labels *l, const kvq_qtensor *g, conform_diag *d)
{
    bool keys = g->role == KVQ_ROLE_KEYS;
    uint32_t rows = keys ? g->head_dim : g->n_tokens, limit = keys ? g->n_tokens : g->head_dim;
    if (g->outlier_ptr[0] != 0 || g->outlier_ptr[rows] != g->n_outliers) {
        diag_at(d, l->outlier_ptr, g->outlier_ptr[0] != 0 ? 0 : rows, "%s", g->outlier_ptr[0] != 0 ? "first entry" : "last entry");
        diag_got(d, "%u", g->outlier_ptr[0] != 0 ? g->outlier_ptr[0] : g->outlier_ptr[rows]);
        diag_expected(d, "%u", g->outlier_ptr[0] != 0 ? 0u : g->n_outliers);
        diag_explain(d, "S4.4: outlier_ptr starts at 0 and ends at n_outliers.");
        return false;
    }
    for (uint32_t r = 0; r < rows; r++) {
        if (g->outlier_ptr[r + 1] < g->outlier_ptr[r]) {
            diag_at(d, l->outlier_ptr, r + 1, "%s %u", keys ? "channel" : "token", r);
            diag_got(d, "%u after %u", g->outlier_ptr[r + 1], g->outlier_ptr[r]);
            diag_expected(d, "non-decreasing");
            diag_explain(d, "S4.4: outlier_ptr is a CSR (values, by token) or CSC (keys, by channel) pointer array.");
            return false;
        }
        for (uint32_t k = g->outlier_ptr[r]; k < g->outlier_ptr[r + 1]; k++) {
            bool ascending = k == g->outlier_ptr[r] || g->outlier_index[k] > g->outlier_index[k - 1];
            if (g->outlier_index[k] >= limit || !ascending) {
                diag_at(d, l->outlier_index, k, "%s %u", keys ? "channel" : "token", r);
                diag_got(d, "%u", g->outlier_index[k]);
                diag_expected(d, "%s below %u, strictly ascending", keys ? "a token" : "a channel", limit);
                diag_explain(d, "S4.4: outlier indices are in range and ascending within their row/column.");
                return false;
            }
        }
    }
    return true;
}

static bool judge_outliers(const qt_labels *l, const kvq_qtensor *e, const kvq_qtensor *g, const float *x,
                           conform_diag *d)
{
    if (!outlier_structure(l, g, d)) return false;
    bool keys = e->role == KVQ_ROLE_KEYS;
    uint32_t rows = keys ? e->head_dim : e->n_tokens;
    size_t missing = 0, extra = 0, wrong_value = 0;
    bool found = false;
    uint32_t kind = 0, ft = 0, fc = 0;
    uint16_t fe = 0, fg = 0;
    long long fidx = -1;
    for (uint32_t r = 0; r < rows; r++) {
        uint32_t i = e->outlier_ptr[r], ie = e->outlier_ptr[r + 1];
        uint32_t j = g->outlier_ptr[r], je = g->outlier_ptr[r + 1];
        while (i < ie || j < je) {
            uint32_t which; /* 0 missing in got, 1 extra in got, 2 same place */
            if (j >= je || (i < ie && e->outlier_index[i] < g->outlier_index[j]))
                which = 0;
            else if (i >= ie || g->outlier_index[j] < e->outlier_index[i])
                which = 1;
            else
                which = 2;
            bool bad = which != 2 || e->outlier_value[i] != g->outlier_value[j];
            if (bad) {
                uint32_t index = which == 1 ? g->outlier_index[j] : e->outlier_index[i];
                if (which == 0) missing++;
                else if (which == 1) extra++;
                else wrong_value++;
                if (!found) {
                    found = true;
                    kind = which;
                    ft = keys ? index : r;
                    fc = keys ? r : index;
                    fe = which != 1 ? e->outlier_value[i] : 0;
                    fg = which != 0 ? g->outlier_value[j] : 0;
                    fidx = which == 1 ? j : i;
                }
            }
            if (which != 1) i++;
            if (which != 0) j++;
        }
    }
    if (!found) return true;
    char value[48], xs[64] = "";
    if (x != NULL) snprintf(xs, sizeof xs, " (x = %.9g)", (double)x[(size_t)ft * e->head_dim + fc]);
    const char *rule = keys && e->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED
                           ? "S7.3: a calibrated key outside its channel's [lo, hi] is an outlier, unless "
                             "beyond_range is CLAMP (then none is)"
                           : "S7.1, S7.2: per group each tail's ceil(ppm*n/2e6) most extreme eligible elements, ties to "
                             "the lower index";
    if (kind == 2) {
        diag_at(d, l->outlier_value, fidx, "token %u, channel %u", ft, fc);
        format_fp16(d->got, sizeof d->got, fg);
        format_fp16(d->expected, sizeof d->expected, fe);
        diag_explain(d, "class E: an outlier stores fp16(x) rounded to nearest even (S7.4)%s.", xs);
    } else if (kind == 0) {
        diag_at(d, l->outlier_index, fidx, "token %u, channel %u", ft, fc);
        diag_got(d, "not an outlier");
        format_fp16(value, sizeof value, fe);
        diag_expected(d, "outlier %s", value);
        diag_explain(d, "the reference keeps this element as a sparse fp16 outlier; the backend lost it%s (%s).", xs,
                     rule);
    } else {
        diag_at(d, l->outlier_index, fidx, "token %u, channel %u", ft, fc);
        format_fp16(value, sizeof value, fg);
        diag_got(d, "outlier %s", value);
        diag_expected(d, "not an outlier");
        diag_explain(d, "the backend stores an outlier the reference does not%s (%s).", xs, rule);
    }
    diag_explain(d, "Outliers: reference %u, backend %u; %zu missing, %zu extra, %zu with another value.", e->n_outliers,
                 g->n_outliers, missing, extra, wrong_value);
    return false;
}

/* Why code `got` may not stand in for `expected` at input x (S12.2). */
static void explain_code(conform_diag *d, const kvq_qtensor *e, kvq_group_params p, float x, uint32_t expected,
                         uint32_t got)
{
    kvq_quantizer q = {e->scheme, e->bits, e->scheme == KVQ_SCHEME_NUQ ? &e->codebook : NULL};
    char a[48], b[48];
    format_fp16(a, sizeof a, p.a);
    format_fp16(b, sizeof b, p.b);
    diag_explain(d, "x = %.9g, group a=%s b=%s.", (double)x, a, b);
    uint32_t levels = 1u << e->bits;
    uint32_t distance = got > expected ? got - expected : expected - got;
    if (distance >= 2) {
        diag_explain(d, "The codes are %u steps apart; S12.2 accepts only a neighbouring code at a decision boundary.",
                     distance);
    } else {
        uint32_t k = got > expected ? got : expected;
        double t = kvq_decision_threshold(&q, p, k);
        double window = ldexp(kvq_fp32_from_fp16(p.b), -12) + ldexp(fabs(t), -22);
        diag_explain(d, "Neighbouring codes, but x is not at their boundary: |x - T_%u| = %.6g with T_%u = %.9g exceeds "
                        "the S12.2 window 2^-12 b + 2^-22 |T| = %.6g.",
                     k, fabs((double)x - t), k, t, window);
    }
    if (expected >= 1 || expected + 1 < levels) {
        double lo = expected >= 1 ? kvq_decision_threshold(&q, p, expected) : -INFINITY;
        double hi = expected + 1 < levels ? kvq_decision_threshold(&q, p, expected + 1) : INFINITY;
        diag_explain(d, "Code %u covers [%.9g, %.9g) (S3.4/S6.4: a tie goes up).", expected, lo, hi);
    }
}

static bool judge_codes(const qt_labels *l, const kvq_qtensor *e, const kvq_qtensor *g, const float *x,
                        qt_judgement *judgement, conform_diag *d)
{
    uint32_t n = e->n_tokens, dim = e->head_dim;
    uint8_t *ce = malloc(dim), *cg = malloc(dim);
    if (ce == NULL || cg == NULL) {
        free(ce);
        free(cg);
        diag_at(d, l->codes, -1, "all");
        diag_explain(d, "the runner ran out of memory");
        return false;
    }
    kvq_quantizer q = {e->scheme, e->bits, e->scheme == KVQ_SCHEME_NUQ ? &e->codebook : NULL};
    bool ok = true, found = false;
    size_t bad = 0;
    uint32_t ft = 0, fc = 0, fe = 0, fgc = 0;
    for (uint32_t t = 0; t < n; t++) {
        const uint8_t *re = e->codes + (size_t)t * e->row_bytes, *rg = g->codes + (size_t)t * e->row_bytes;
        if (e->precision[t] != KVQ_PREC_QUANTIZED) {
            for (size_t k = 0; k < e->row_bytes; k++)
                if (rg[k] != re[k]) {
                    diag_at(d, l->codes, (long long)((size_t)t * e->row_bytes + k), "token %u (%s), byte %zu", t,
                            precision_name(e->precision[t]), k);
                    diag_got(d, "0x%02X", rg[k]);
                    diag_expected(d, "0x%02X", re[k]);
                    diag_explain(d, "S4.1 step 3: the packed row of a token stored in fp16 is all zero bytes.");
                    free(ce);
                    free(cg);
                    return false;
                }
            continue;
        }
        if (memcmp(re, rg, e->row_bytes) == 0) continue;
        kvq_unpack_codes(re, dim, e->bits, ce);
        kvq_unpack_codes(rg, dim, e->bits, cg);
        for (uint32_t c = 0; c < dim; c++) {
            if (ce[c] == cg[c]) continue;
            kvq_group_params p = e->params[qt_param_index(e, t, c)];
            if (x != NULL && kvq_code_accepted(&q, p, x[(size_t)t * dim + c], ce[c], cg[c])) {
                judgement->boundary_accepted++;
                judgement->codes_differ = true;
                continue;
            }
            bad++;
            if (!found) {
                found = true;
                ft = t;
                fc = c;
                fe = ce[c];
                fgc = cg[c];
            }
        }
    }
    if (found) {
        ok = false;
        diag_at(d, l->codes, (long long)ft * dim + fc, "token %u, channel %u", ft, fc);
        diag_got(d, "code %u", fgc);
        diag_expected(d, "code %u", fe);
        if (x != NULL) {
            diag_explain(d, "class B (S12.2):");
            explain_code(d, e, e->params[qt_param_index(e, ft, fc)], x[(size_t)ft * dim + fc], fe, fgc);
        } else {
            diag_explain(d, "class E: this tensor was uploaded, its codes must come back identical.");
        }
        diag_explain(d, "%zu codes rejected, %u accepted at boundaries.", bad, judgement->boundary_accepted);
    }
    free(ce);
    free(cg);
    return ok;
}

bool judge_qtensor(const qt_labels *l, const kvq_qtensor *e, const kvq_qtensor *g, const float *x,
                   qt_judgement *judgement, conform_diag *d)
{
    judgement->boundary_accepted = 0;
    judgement->codes_differ = false;
    if (!judge_header(l, e, g, d) || !judge_precision(l, e, g, d) || !judge_fp16_rows(l, e, g, d) ||
        !judge_params(l, e, g, d))
        return false;
    if (!header_field(l, "n_outliers", g->n_outliers, e->n_outliers, d)) {
        /* a count mismatch is better explained by the set difference */
        conform_diag counted = *d;
        if (!judge_outliers(l, e, g, x, d)) return false;
        *d = counted;
        return false;
    }
    return judge_outliers(l, e, g, x, d) && judge_codes(l, e, g, x, judgement, d);
}
