/*
 * judge_peer.c - a backend's peer tensor against the reference's (S17.6):
 * group by group (scales class B where they come from a division, KIVI's
 * minima exact), then element by element (fp16 residual exact, codes class B
 * under the tensor's own parameters), with the hints that name the usual
 * mistakes (codes from the rounded scale, nibble order, KIVI's fp16 range,
 * PyTorch's NaN beyond 480).
 */
#include "peer_models.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void describe_group(const kvq_peer_config *c, const kvq_peer_group *g, uint32_t index, char *out, size_t size)
{
    if (c->format == KVQ_PEER_KIVI && c->role == KVQ_ROLE_KEYS)
        snprintf(out, size, "channel %u, tokens %u-%u (group %u)", g->first_channel, g->first_token,
                 g->first_token + g->n_tokens - 1, index);
    else
        snprintf(out, size, "token %u, channels %u-%u (%s %u)", g->first_token, g->first_channel,
                 g->first_channel + g->n_channels - 1, c->format == KVQ_PEER_KIVI ? "group" : "block", index);
}

static void format_code(const kvq_peer_config *c, uint32_t code, char *out, size_t size)
{
    switch (c->format) {
    case KVQ_PEER_Q8_0: snprintf(out, size, "code %d", (int)(int8_t)(uint8_t)code); break;
    case KVQ_PEER_FP8_E4M3: {
        kvq_peer_config unit = *c;
        unit.scale = 1.0f;
        uint8_t byte = (uint8_t)code;
        float v = NAN;
        if ((byte & 0x7Fu) != 0x7Fu) kvq_peer_dequantize(&unit, &byte, 1, 1, &v);
        snprintf(out, size, "0x%02X (e4m3 %.9g)", byte, (double)v);
        break;
    }
    default: snprintf(out, size, "code %u", code);
    }
}

/* KIVI's group statistics from x (S17.4), for the hints on its scale. */
static void kivi_alternatives(const peer_quantize_model *m, const kvq_peer_group *g, uint16_t *fp32_range,
                              uint16_t *unrounded)
{
    float lo = INFINITY, hi = -INFINITY, lo32 = INFINITY, hi32 = -INFINITY;
    for (uint32_t t = g->first_token; t < g->first_token + g->n_tokens; t++)
        for (uint32_t ch = g->first_channel; ch < g->first_channel + g->n_channels; ch++) {
            float v = m->x[(size_t)t * m->head_dim + ch], h = kvq_fp32_from_fp16(kvq_fp16_from_fp32(v));
            lo = fminf(lo, h), hi = fmaxf(hi, h), lo32 = fminf(lo32, v), hi32 = fmaxf(hi32, v);
        }
    float top = (float)((1u << m->config.bits) - 1u);
    *fp32_range = kvq_fp16_from_fp32((hi - lo) / top); /* the range in fp32, not rounded to fp16 */
    *unrounded = kvq_fp16_from_fp32((hi32 - lo32) / top);
}

static bool judge_groups(const peer_quantize_model *m, const uint8_t *got, bool *own_params, uint32_t n_groups,
                         uint32_t *accepted, conform_diag *d)
{
    const kvq_peer_config *c = &m->config;
    uint32_t n = m->n_tokens, dim = m->head_dim;
    for (uint32_t g = 0; g < n_groups; g++) {
        kvq_peer_group ge, gg;
        kvq_peer_group_at(c, m->expected, n, dim, g, &ge);
        kvq_peer_group_at(c, got, n, dim, g, &gg);
        char where[128], gf[64], ef[64];
        describe_group(c, &ge, g, where, sizeof where);
        if (ge.has_scale && gg.scale != ge.scale) {
            kvq_peer_scale_check s;
            if (kvq_peer_check_scale(c, m->x, n, dim, g, gg.scale, &s) != KVQ_OK) {
                s.reference = ge.scale;
                s.quotient = s.boundary = NAN;
                s.window = 0.0;
                s.accepted = 0;
            }
            if (!s.accepted) {
                format_fp16(gf, sizeof gf, gg.scale);
                format_fp16(ef, sizeof ef, ge.scale);
                diag_at(d, "data.scale", g, "%s", where);
                diag_got(d, "%s", gf);
                diag_expected(d, "%s", ef);
                if (c->format == KVQ_PEER_Q4_0)
                    diag_explain(d, "class E (S17.3): d = fp16(max / -8) with max the first element of largest "
                                    "magnitude; the quotient %.9g is exact.",
                                 s.quotient);
                else if (!isnan(s.boundary))
                    diag_explain(d, "class B (S17.6): neighbouring fp16 scales, but the quotient %.9g is %.3g from "
                                    "their midpoint %.9g, beyond the window %.3g.",
                                 s.quotient, fabs(s.quotient - s.boundary), s.boundary, s.window);
                else
                    diag_explain(d, "class B (S17.6): the quotient %.9g rounds to %s; only its other fp16 neighbour "
                                    "is accepted, and only at the midpoint.",
                                 s.quotient, ef);
                if (c->format == KVQ_PEER_Q8_0)
                    diag_explain(d, "S17.2: d = fp16(fl32(amax / 127)) with amax the block's largest |x|.");
                if (c->format == KVQ_PEER_KIVI) {
                    uint16_t fp32_range, unrounded;
                    kivi_alternatives(m, &ge, &fp32_range, &unrounded);
                    diag_explain(d, "S17.4: scale = h(h(mx - mn) / %u), every step an fp16 operation.",
                                 (1u << c->bits) - 1u);
                    if (gg.scale == fp32_range)
                        diag_explain(d, "Hint: the scale equals fp16(fl32(mx - mn) / %u), the range subtracted in "
                                        "fp32: KIVI's tensors are fp16, so mx - mn is rounded to fp16 before the "
                                        "division (S17.9 example 4).",
                                     (1u << c->bits) - 1u);
                    else if (gg.scale == unrounded)
                        diag_explain(d, "Hint: the scale equals the range of the fp32 inputs over %u: KIVI rounds "
                                        "the inputs to fp16 first (x_h = fp16(x)).",
                                     (1u << c->bits) - 1u);
                }
                return false;
            }
            own_params[g] = true;
            (*accepted)++;
        }
        if (ge.has_min && gg.min != ge.min) {
            format_fp16(gf, sizeof gf, gg.min);
            format_fp16(ef, sizeof ef, ge.min);
            diag_at(d, "data.min", g, "%s", where);
            diag_got(d, "%s", gf);
            diag_expected(d, "%s", ef);
            diag_explain(d, "class E (S17.4): mn is the smallest fp16(x) of the group, exact.");
            return false;
        }
    }
    return true;
}

/* Hints for a rejected code. */
static void code_hints(const peer_quantize_model *m, const uint8_t *got, uint32_t t, uint32_t ch, uint32_t code,
                       conform_diag *d)
{
    const kvq_peer_config *c = &m->config;
    uint32_t n = m->n_tokens, dim = m->head_dim;
    float x = m->x[(size_t)t * dim + ch];
    if (c->format == KVQ_PEER_Q8_0) {
        kvq_peer_element e;
        kvq_peer_group g;
        kvq_peer_element_at(c, got, n, dim, t, ch, &e);
        kvq_peer_group_at(c, got, n, dim, e.group, &g);
        float stored = kvq_fp32_from_fp16(g.scale);
        if (stored != 0.0f && (int8_t)(uint8_t)code == (int)roundf(x / stored))
            diag_explain(d, "Hint: the code is x divided by the stored fp16 scale; ggml encodes with the fp32 "
                            "reciprocal id = 1 / fl32(amax / 127), before d is rounded to fp16 (S17.2).");
    }
    if (c->format == KVQ_PEER_Q4_0) {
        uint32_t j = ch % 32, base = ch - j;
        uint32_t swapped = base + (j < 16 ? 2 * j : 2 * (j - 16) + 1); /* bytes holding elements 2i and 2i + 1 */
        kvq_peer_element e;
        kvq_peer_element_at(c, m->expected, n, dim, t, swapped, &e);
        if (swapped != ch && e.code == code)
            diag_explain(d, "Hint: the code read here is the reference's code of channel %u: the nibbles seem to hold "
                            "elements 2i and 2i + 1 of byte i; ggml puts element j in the low nibble and j + 16 in "
                            "the high nibble of byte j (S17.3).",
                         swapped);
    }
    if (c->format == KVQ_PEER_FP8_E4M3 && (code & 0x7Fu) == 0x7Fu)
        diag_explain(d, "Hint: 0x%02X is NaN: PyTorch's .to(float8_e4m3fn) gives NaN from 480 on, vLLM's conversion "
                        "saturates to +-448 (S17.5).",
                     code);
    if (c->format == KVQ_PEER_KIVI) {
        uint32_t quantized = c->role == KVQ_ROLE_KEYS ? n / c->residual * c->residual
                                                      : (n > c->residual ? n - c->residual : 0);
        diag_explain(d, "S17.4 layout: %s of tokens 0-%u are quantized (%s), tokens %u-%u are the fp16 residual.",
                     c->role == KVQ_ROLE_KEYS ? "keys" : "values", quantized > 0 ? quantized - 1 : 0,
                     c->role == KVQ_ROLE_KEYS ? "R floor(n / R)" : "all but the newest R", quantized, n - 1);
    }
}

bool judge_peer_tensor(const peer_quantize_model *m, const uint8_t *got, uint32_t *accepted, conform_diag *d)
{
    const kvq_peer_config *c = &m->config;
    uint32_t n = m->n_tokens, dim = m->head_dim, n_groups = 0;
    *accepted = 0;
    kvq_peer_group_count(c, n, dim, &n_groups);
    bool *own_params = calloc(n_groups > 0 ? n_groups : 1, sizeof *own_params);
    if (own_params == NULL) {
        diag_at(d, "runner", -1, "memory");
        diag_explain(d, "out of memory");
        return false;
    }
    bool ok = judge_groups(m, got, own_params, n_groups, accepted, d);
    uint32_t rejected = 0, residual_wrong = 0;
    for (uint32_t t = 0; ok && t < n; t++)
        for (uint32_t ch = 0; ch < dim; ch++) {
            kvq_peer_element ee, eg;
            kvq_peer_element_at(c, m->expected, n, dim, t, ch, &ee);
            kvq_peer_element_at(c, got, n, dim, t, ch, &eg);
            if (ee.residual) {
                if (eg.fp16 == ee.fp16) continue;
                if (residual_wrong++ + rejected > 0) continue;
                char gf[64], ef[64];
                format_fp16(gf, sizeof gf, eg.fp16);
                format_fp16(ef, sizeof ef, ee.fp16);
                diag_at(d, "data.residual", (long long)t * dim + ch, "token %u, channel %u", t, ch);
                diag_got(d, "%s", gf);
                diag_expected(d, "%s", ef);
                diag_explain(d, "class E (S17.4): the newest tokens are stored as fp16(x) = fp16(%.9g), rounded to "
                                "nearest even.",
                             (double)m->x[(size_t)t * dim + ch]);
                code_hints(m, got, t, ch, eg.code, d);
                continue;
            }
            bool own = ee.group != UINT32_MAX && own_params[ee.group];
            if (eg.code == ee.code && !own) continue;
            kvq_peer_code_check k;
            if (kvq_peer_check_code(c, m->x, n, dim, got, t, ch, eg.code, &k) != KVQ_OK) {
                k.reference = ee.code; /* the reference cannot say more: judged against its own code */
                k.scaled = k.boundary = NAN;
                k.window = 0.0;
                k.accepted = eg.code == ee.code && !own;
            }
            if (k.accepted) {
                *accepted += eg.code != ee.code;
                continue;
            }
            if (rejected++ + residual_wrong > 0) continue; /* the first is reported; the rest counted */
            char gc[64], ec[64];
            format_code(c, eg.code, gc, sizeof gc);
            format_code(c, k.reference, ec, sizeof ec);
            diag_at(d, "data.code", (long long)t * dim + ch, "token %u, channel %u", t, ch);
            diag_got(d, "%s", gc);
            diag_expected(d, "%s", ec);
            if (isnan(k.boundary))
                diag_explain(d, "class B (S17.6): x = %.9g, rounded as u = %.9g. The codes are not neighbours; S17.6 "
                                "accepts only a neighbouring code where u is at the boundary between them.",
                             (double)m->x[(size_t)t * dim + ch], k.scaled);
            else
                diag_explain(d, "class B (S17.6): x = %.9g, rounded as u = %.9g. Neighbouring codes, but u is %.3g "
                                "from their boundary %.9g, beyond the window %.3g.",
                             (double)m->x[(size_t)t * dim + ch], k.scaled, fabs(k.scaled - k.boundary), k.boundary,
                             k.window);
            if (own) diag_explain(d, "(The reference code is computed with the tensor's own scale and mn.)");
            code_hints(m, got, t, ch, eg.code, d);
        }
    if (ok && (rejected > 0 || residual_wrong > 0)) {
        diag_explain(d, "%u codes rejected, %u fp16 residual elements wrong, %u codes or scales accepted at "
                        "boundaries.",
                     rejected, residual_wrong, *accepted);
        ok = false;
    }
    free(own_params);
    return ok;
}
