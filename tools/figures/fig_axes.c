/*
 * fig_axes.c - the figures about which numbers share a group: keys per channel
 * against per token (axes.svg, S4), before or after RoPE (rope.svg, S9), and
 * why the first token stays out of every group (sinks.svg, S8).
 */
#include "figures.h"

#include "plot/figure.h"
#include "plot/heatmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* |x - y| elementwise into e. */
static void abs_error(const float *x, const float *y, size_t n, float *e)
{
    for (size_t i = 0; i < n; i++) e[i] = fabsf(x[i] - y[i]);
}

bool fig_axes(const learn_ctx *c)
{
    const uint32_t n = LEARN_TOKENS, d = LEARN_DIM;
    size_t nd = (size_t)n * d;
    const float *k = kvq_kvfile_slice(c->prompt, KVQ_ROLE_KEYS, 0, 0);
    float *buf = malloc(4 * nd * sizeof *buf);
    heat_figure *f = malloc(sizeof *f);
    if (buf == NULL || f == NULL) {
        free(buf);
        free(f);
        return false;
    }
    float *mag = buf, *y = buf + nd, *e_token = buf + 2 * nd, *e_channel = buf + 3 * nd;
    for (size_t i = 0; i < nd; i++) mag[i] = fabsf(k[i]);
    /* 4-bit asymmetric, every token quantized, no outliers: only the grouping differs. Per token is
     * the values' rule applied to keys (a group of head_dim channels per token), which KIVI and
     * KVQuant measured to fail for keys. */
    kvq_head_config per_token = learn_config(KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, NULL, 0, 0,
                                             KVQ_POLICY_QUANTIZE_ALL);
    kvq_head_config per_channel = learn_config(KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 4, NULL, 0, 0,
                                               KVQ_POLICY_QUANTIZE_ALL);
    bool ok = learn_round_trip(&per_token, k, n, d, NULL, y, NULL);
    double rmse_token = ok ? learn_rmse(k, y, nd) : 0.0;
    if (ok) abs_error(k, y, nd, e_token);
    ok = ok && learn_round_trip(&per_channel, k, n, d, NULL, y, NULL);
    double rmse_channel = ok ? learn_rmse(k, y, nd) : 0.0;
    if (ok) abs_error(k, y, nd, e_channel);
    heat_init(f, 3, 3.0);
    snprintf(f->title, sizeof f->title, "Keys have outlier channels: group them per channel (S4, KIVI, KVQuant)");
    snprintf(f->subtitle, sizeof f->subtitle,
             "the prompt's layer 0 head 0 keys (realistic profile, S14.6), 4-bit asymmetric, no outliers, every token "
             "quantized; the two error maps share one colour scale");
    snprintf(f->x_label, sizeof f->x_label, "channel");
    snprintf(f->y_label, sizeof f->y_label, "token");
    f->n_panels = 3;
    const float *data[3] = {mag, e_token, e_channel};
    char titles[3][160];
    snprintf(titles[0], sizeof titles[0], "keys |x|");
    snprintf(titles[1], sizeof titles[1], "error, groups per token: rmse %.3f", rmse_token);
    snprintf(titles[2], sizeof titles[2], "error, groups per channel: rmse %.3f", rmse_channel);
    for (int p = 0; p < 3; p++) {
        snprintf(f->panel[p].title, sizeof f->panel[p].title, "%s", titles[p]);
        f->panel[p].rows = n;
        f->panel[p].cols = d;
        f->panel[p].v = data[p];
        f->panel[p].group = p == 0 ? 0 : 1;
    }
    snprintf(f->value_label[0], sizeof f->value_label[0], "|key| (log scale, 3 decades)");
    snprintf(f->value_label[1], sizeof f->value_label[1], "|error| (log scale, 3 decades)");
    char path[4096];
    learn_path(c, "axes.svg", path, sizeof path);
    ok = ok && heat_write(f, path);
    free(buf);
    free(f);
    return ok;
}

/* Mean over the complete blocks of `block` tokens of each channel's range (max - min) in the block:
 * what one per-channel group's levels must span (S4.3). */
static void block_ranges(const float *x, uint32_t n, uint32_t d, uint32_t block, double *out)
{
    for (uint32_t ch = 0; ch < d; ch++) {
        double sum = 0.0;
        uint32_t blocks = 0;
        for (uint32_t b = 0; (b + 1) * block <= n; b++, blocks++) {
            float lo = x[(size_t)b * block * d + ch], hi = lo;
            for (uint32_t t = b * block; t < (b + 1) * block; t++) {
                lo = fminf(lo, x[(size_t)t * d + ch]);
                hi = fmaxf(hi, x[(size_t)t * d + ch]);
            }
            sum += (double)hi - lo;
        }
        out[ch] = blocks ? sum / blocks : 0.0;
    }
}

/* The rotate-half pair (i, i + d/2) whose mean stands out most from its spread, among the pairs that
 * turn at least once over n positions: where pre-RoPE keys sit still and post-RoPE keys circle. */
static uint32_t telling_pair(const float *k, uint32_t n, uint32_t d, float base)
{
    uint32_t best = 0;
    double best_ratio = -1.0;
    for (uint32_t i = 0; i < d / 2; i++) {
        if (pow((double)base, -2.0 * i / d) * (n - 1) < 2.0 * 3.14159265358979323846) continue;
        double m[2] = {0, 0}, v[2] = {0, 0};
        for (int e = 0; e < 2; e++) {
            uint32_t ch = i + (uint32_t)e * (d / 2);
            for (uint32_t t = 0; t < n; t++) m[e] += k[(size_t)t * d + ch] / n;
            for (uint32_t t = 0; t < n; t++) v[e] += (k[(size_t)t * d + ch] - m[e]) * (k[(size_t)t * d + ch] - m[e]) / n;
        }
        double ratio = sqrt(m[0] * m[0] + m[1] * m[1]) / sqrt(v[0] + v[1] + 1e-30);
        if (ratio > best_ratio) {
            best_ratio = ratio;
            best = i;
        }
    }
    return best;
}

bool fig_rope(const learn_ctx *c)
{
    const uint32_t n = LEARN_TOKENS, d = LEARN_DIM;
    size_t nd = (size_t)n * d;
    const float *k = kvq_kvfile_slice(c->prompt, KVQ_ROLE_KEYS, 0, 0);
    const kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    float *post = malloc(nd * sizeof *post), *y = malloc(nd * sizeof *y), *read = malloc(nd * sizeof *read);
    double *range = malloc(d * sizeof *range);
    figure *f = malloc(sizeof *f);
    bool ok = post != NULL && y != NULL && read != NULL && range != NULL && f != NULL;
    for (uint32_t t = 0; ok && t < n; t++)
        ok = kvq_rope_apply(&rope, d, t, k + (size_t)t * d, post + (size_t)t * d) == KVQ_OK;
    /* the error of what attention reads, 4-bit per channel in blocks of 128: quantized before RoPE
     * and rotated after (kvq, S9, S11.2), or rotated first and quantized */
    kvq_head_config cfg = learn_config(KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 4, NULL, 0, 0, KVQ_POLICY_QUANTIZE_ALL);
    ok = ok && learn_round_trip(&cfg, k, n, d, NULL, y, NULL);
    for (uint32_t t = 0; ok && t < n; t++)
        ok = kvq_rope_apply(&rope, d, t, y + (size_t)t * d, read + (size_t)t * d) == KVQ_OK;
    double e_pre = ok ? learn_rmse(post, read, nd) : 0.0;
    ok = ok && learn_round_trip(&cfg, post, n, d, NULL, y, NULL);
    double e_post = ok ? learn_rmse(post, y, nd) : 0.0;
    if (ok) {
        fig_init(f, 1, 2, PLOT_LINEAR, PLOT_LINEAR);
        f->independent = true;
        snprintf(f->title, sizeof f->title, "Quantize keys before RoPE (S9, KVQuant): the rotation mixes channel pairs");
        snprintf(f->subtitle, sizeof f->subtitle,
                 "the prompt's layer 0 head 0 keys, rotate-half RoPE (base 10000) at positions 0-639; 4-bit per "
                 "channel in blocks of 128: rmse of the keys attention reads %.4f pre-RoPE, %.4f post-RoPE",
                 e_pre, e_post);
        uint32_t i = telling_pair(k, n, d, rope.base);
        snprintf(f->panel[0].title, sizeof f->panel[0].title, "pair %u: channels %u and %u, every second token\n"
                 "pre-RoPE a cluster, post-RoPE a circle", i, i, i + d / 2);
        snprintf(f->panel[0].x_label, sizeof f->panel[0].x_label, "channel %u", i);
        snprintf(f->panel[0].y_label, sizeof f->panel[0].y_label, "channel %u", i + d / 2);
        snprintf(f->panel[1].title, sizeof f->panel[1].title,
                 "range within each block of 128 tokens\n(what one group's levels must span, S4.3)");
        snprintf(f->panel[1].x_label, sizeof f->panel[1].x_label, "channel");
        snprintf(f->panel[1].y_label, sizeof f->panel[1].y_label, "mean of max - min per block");
        f->panel[1].own_scales = true;
        f->panel[1].x_scale = PLOT_LINEAR;
        f->panel[1].y_scale = PLOT_LOG10;
        size_t spre = fig_style_of(f, "pre-RoPE (what kvq stores)", false), spost = fig_style_of(f, "post-RoPE", false);
        for (uint32_t t = 0; t < n; t += 2) {
            fig_add(f, 0, spre, k[(size_t)t * d + i], k[(size_t)t * d + i + d / 2]);
            fig_add(f, 0, spost, post[(size_t)t * d + i], post[(size_t)t * d + i + d / 2]);
        }
        block_ranges(k, n, d, 128, range);
        for (uint32_t ch = 0; ch < d; ch++) fig_add(f, 1, spre, ch, range[ch]);
        block_ranges(post, n, d, 128, range);
        for (uint32_t ch = 0; ch < d; ch++) fig_add(f, 1, spost, ch, range[ch]);
        f->style[spre].no_line = f->style[spost].no_line = true;
    }
    char path[4096];
    learn_path(c, "rope.svg", path, sizeof path);
    ok = ok && fig_write(f, path);
    if (f != NULL) fig_free(f);
    free(f);
    free(post);
    free(y);
    free(read);
    free(range);
    return ok;
}

bool fig_sinks(const learn_ctx *c)
{
    const uint32_t n = LEARN_TOKENS, d = LEARN_DIM, shown = 256;
    size_t nd = (size_t)n * d;
    float *y = malloc(nd * sizeof *y);
    figure *f = malloc(sizeof *f);
    if (y == NULL || f == NULL) {
        free(y);
        free(f);
        return false;
    }
    fig_init(f, 1, 2, PLOT_LINEAR, PLOT_LOG10);
    snprintf(f->title, sizeof f->title, "A sink in fp16 (S8, StreamingLLM): the first token stays out of every range");
    snprintf(f->subtitle, sizeof f->subtitle,
             "the stress profile's layer 0 head 0 (S14.3: token 0 eight times as large), 4-bit asymmetric, keys per "
             "channel in blocks of 128, no outliers; tokens 0-%u", shown - 1);
    snprintf(f->x_label, sizeof f->x_label, "token");
    snprintf(f->y_label, sizeof f->y_label, "RMS error of the token");
    snprintf(f->panel[0].title, sizeof f->panel[0].title, "keys\n(token 0 shares the range of block 0)");
    snprintf(f->panel[1].title, sizeof f->panel[1].title, "values\n(one group per token)");
    fig_vline(f, 0, 128.0); /* where key block 1 starts */
    bool ok = true;
    for (uint32_t sinks = 0; sinks <= 1 && ok; sinks++) {
        size_t st = fig_style_of(f, sinks ? "1 sink: token 0 in fp16" : "no sink", sinks == 0);
        f->style[st].no_marker = true;
        for (int r = 0; r < 2 && ok; r++) {
            const float *x = kvq_kvfile_slice(c->stress, (kvq_role)r, 0, 0);
            kvq_head_config cfg = learn_config((kvq_role)r, KVQ_SCHEME_UNIFORM_ASYM, 4, NULL, 0, sinks,
                                               KVQ_POLICY_QUANTIZE_ALL);
            ok = learn_round_trip(&cfg, x, n, d, NULL, y, NULL);
            for (uint32_t t = 0; ok && t < shown; t++) {
                double e = learn_rmse(x + (size_t)t * d, y + (size_t)t * d, d);
                /* an exact token (the sink) has no error to draw on a log scale: drawn at the axis floor
                 * would be a lie, so it is left out (the line starts at token 1) */
                if (e > 0.0) fig_add(f, (size_t)r, st, t, e);
            }
        }
    }
    char path[4096];
    learn_path(c, "sinks.svg", path, sizeof path);
    ok = ok && fig_write(f, path);
    fig_free(f);
    free(f);
    free(y);
    return ok;
}
