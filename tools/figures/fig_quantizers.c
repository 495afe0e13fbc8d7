/*
 * fig_quantizers.c - the figures about one group of numbers: the uniform grid
 * (uniform.svg, S3), NUQ codebooks against the data's distribution (nuq.svg,
 * S6), and what outliers buy (outliers.svg, S7).
 */
#include "figures.h"

#include "bench/bench.h"
#include "cli_common.h"
#include "plot/figure.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first image token of the prompt (token 32 of layer 0, head 0), the group the figures follow. */
#define TOKEN 32u
#define SHOWN 32u /* channels drawn of the group */

bool fig_uniform(const learn_ctx *c)
{
    const uint32_t d = LEARN_DIM;
    const float *x = kvq_kvfile_slice(c->prompt, KVQ_ROLE_VALUES, 0, 0) + (size_t)TOKEN * d;
    figure *f = malloc(sizeof *f);
    if (f == NULL) return false;
    fig_init(f, 1, 2, PLOT_LINEAR, PLOT_LINEAR);
    f->x_integer = true;
    snprintf(f->title, sizeof f->title, "Uniform asymmetric quantization of one token's values (S3.2)");
    snprintf(f->subtitle, sizeof f->subtitle,
             "token %u of the prompt's layer 0 head 0: one group of %u channels, the first %u shown; dotted lines: "
             "the levels a + k b the codes stand for",
             TOKEN, d, SHOWN);
    snprintf(f->x_label, sizeof f->x_label, "channel");
    snprintf(f->y_label, sizeof f->y_label, "value");
    size_t so = fig_style_of(f, "original x", true), sq = fig_style_of(f, "dequantized y", false);
    f->style[so].no_line = f->style[sq].no_line = true;
    const uint32_t widths[2] = {2, 4};
    float lo = x[0], hi = x[0];
    for (uint32_t i = 1; i < d; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    for (int p = 0; p < 2; p++) {
        kvq_quantizer q = {KVQ_SCHEME_UNIFORM_ASYM, widths[p], NULL};
        kvq_group_params g = kvq_group_params_from_range(&q, lo, hi);
        float a = kvq_fp32_from_fp16(g.a), b = kvq_fp32_from_fp16(g.b);
        double worst = 0.0;
        for (uint32_t i = 0; i < d; i++) {
            float y = kvq_decode(&q, g, kvq_encode(&q, g, x[i]));
            worst = fmax(worst, fabs((double)x[i] - y));
            if (i >= SHOWN) continue;
            fig_add(f, (size_t)p, so, i, x[i]);
            fig_add(f, (size_t)p, sq, i, y);
        }
        for (uint32_t k = 0; k < (1u << widths[p]); k++) fig_hline(f, (size_t)p, kvq_decode(&q, g, k));
        snprintf(f->panel[p].title, sizeof f->panel[p].title,
                 "%u bits: a = %.4g, b = %.4g\nmax error (all %u channels) %.4g = %.3f b", widths[p], a, b,
                 d, worst, worst / b);
    }
    char path[4096];
    learn_path(c, "uniform.svg", path, sizeof path);
    bool ok = fig_write(f, path);
    fig_free(f);
    free(f);
    return ok;
}

/* The value codebook `kvq calibrate prompt.kvt -o cal.kvc --codebook kmeans --bits 4` fits for layer 0,
 * from the samples of all its heads (tools/cmd_calibrate.c, S6.6); the samples are kept in z. */
static bool kmeans_codebook(const learn_ctx *c, float *z, size_t *n_z, kvq_codebook *out)
{
    cli_quant_options q = cli_quant_defaults();
    q.scheme = KVQ_SCHEME_NUQ;
    q.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    size_t total = 0;
    float *w = malloc((size_t)LEARN_HEADS * LEARN_TOKENS * LEARN_DIM * sizeof *w);
    kvq_status st = w != NULL ? KVQ_OK : KVQ_ERR_OUT_OF_MEMORY;
    for (uint32_t h = 0; h < LEARN_HEADS && st == KVQ_OK; h++) {
        kvq_head_config config = cli_head_config(&q, KVQ_ROLE_VALUES, NULL, NULL, 0);
        size_t n = 0;
        st = kvq_calibration_samples(&config, kvq_kvfile_slice(c->prompt, KVQ_ROLE_VALUES, 0, h), NULL,
                                     LEARN_TOKENS, LEARN_DIM, c->prompt->modality, z + total, w + total, &n);
        total += n;
    }
    kvq_kmeans_params km = {4, 25, 0};
    if (st == KVQ_OK) st = kvq_calibrate_codebook(z, w, total, &km, out);
    free(w);
    *n_z = total;
    if (st != KVQ_OK) fprintf(stderr, "kvq figures: nuq.svg: %s: %s\n", kvq_status_name(st), kvq_last_error());
    return st == KVQ_OK;
}

bool fig_nuq(const learn_ctx *c)
{
    const uint32_t n = LEARN_TOKENS, d = LEARN_DIM;
    float *z = malloc((size_t)LEARN_HEADS * n * d * sizeof *z), *y = malloc((size_t)n * d * sizeof *y);
    figure *f = malloc(sizeof *f);
    kvq_codebook books[3];
    size_t n_z = 0;
    bool ok = z != NULL && y != NULL && f != NULL && kmeans_codebook(c, z, &n_z, &books[2]);
    ok = ok && kvq_codebook_normalfloat(4, &books[1]) == KVQ_OK;
    if (!ok) {
        free(z);
        free(y);
        free(f);
        return false;
    }
    fig_init(f, 1, 3, PLOT_LINEAR, PLOT_LINEAR);
    snprintf(f->title, sizeof f->title, "Where 4-bit codes sit: the uniform grid, NormalFloat and k-means (S6)");
    snprintf(f->subtitle, sizeof f->subtitle,
             "the prompt's layer 0 values, each token normalized to [-1, 1] by its centre and half-range (S6.3); "
             "dotted lines: the 16 signposts");
    snprintf(f->x_label, sizeof f->x_label, "normalized value (x - a) / b");
    snprintf(f->y_label, sizeof f->y_label, "density");
    /* the histogram of the normalized samples: 100 bins over [-1, 1] */
    enum { BINS = 100 };
    double hist[BINS] = {0};
    for (size_t i = 0; i < n_z; i++) {
        int b = (int)floor((z[i] + 1.0) / 2.0 * BINS);
        hist[b < 0 ? 0 : b >= BINS ? BINS - 1 : b] += 1.0;
    }
    size_t sh = fig_style_of(f, "normalized values (histogram)", false);
    f->style[sh].no_marker = true;
    static const char *const names[3] = {"uniform (S3.2)", "NormalFloat NF4 (S6.1)",
                                         "k-means on this prompt (S6.6)"};
    const float *v = kvq_kvfile_slice(c->prompt, KVQ_ROLE_VALUES, 0, 0);
    for (int p = 0; p < 3 && ok; p++) {
        for (int b = 0; b < BINS; b++)
            fig_add(f, (size_t)p, sh, -1.0 + (b + 0.5) * 2.0 / BINS, hist[b] / ((double)n_z * 2.0 / BINS));
        for (uint32_t k = 0; k < 16; k++)
            fig_vline(f, (size_t)p, p == 0 ? -1.0 + 2.0 * k / 15.0 : books[p].signpost[k]);
        /* the value error of head 0 with this codebook, as kvq quantize makes it (its defaults) */
        kvq_head_config cfg = learn_config(KVQ_ROLE_VALUES, p == 0 ? KVQ_SCHEME_UNIFORM_ASYM : KVQ_SCHEME_NUQ, 4,
                                           p == 0 ? NULL : &books[p], 10000, 1, KVQ_POLICY_TEXT_CENTRIC);
        ok = learn_round_trip(&cfg, v, n, d, c->prompt->modality, y, NULL);
        snprintf(f->panel[p].title, sizeof f->panel[p].title, "%s\nhead 0 values: rmse %.4f", names[p],
                 learn_rmse(v, y, (size_t)n * d));
    }
    char path[4096];
    learn_path(c, "nuq.svg", path, sizeof path);
    ok = ok && fig_write(f, path);
    fig_free(f);
    free(f);
    free(z);
    free(y);
    return ok;
}

bool fig_outliers(const learn_ctx *c)
{
    const uint32_t n = LEARN_TOKENS, d = LEARN_DIM;
    static const double percent[] = {0.0, 0.25, 0.5, 1.0, 2.0, 4.0};
    const uint32_t widths[3] = {2, 3, 4};
    figure *f = malloc(sizeof *f);
    float *y = malloc((size_t)n * d * sizeof *y);
    if (f == NULL || y == NULL) {
        free(f);
        free(y);
        return false;
    }
    fig_init(f, 1, 2, PLOT_LINEAR, PLOT_LOG10);
    snprintf(f->title, sizeof f->title, "Dense-and-sparse (S7): what a few exact outliers cost and buy");
    snprintf(f->subtitle, sizeof f->subtitle,
             "the prompt's layer 0 head 0, uniform asymmetric, every token quantized, no sink; along each line "
             "0, 0.25, 0.5, 1, 2 and 4%% outliers per group (half in each tail, S7.1)");
    snprintf(f->x_label, sizeof f->x_label, "stored bits per element (codes, group parameters, outliers at 6 bytes each)");
    snprintf(f->y_label, sizeof f->y_label, "quantization error (rmse)");
    snprintf(f->panel[0].title, sizeof f->panel[0].title, "keys\nper channel, blocks of 128 tokens");
    snprintf(f->panel[1].title, sizeof f->panel[1].title, "values\nper token");
    bool ok = true;
    for (int w = 0; w < 3 && ok; w++) {
        char name[32];
        snprintf(name, sizeof name, "%u-bit", widths[w]);
        size_t st = fig_style_of(f, name, false);
        for (size_t i = 0; i < sizeof percent / sizeof *percent && ok; i++)
            for (int r = 0; r < 2 && ok; r++) {
                const float *x = kvq_kvfile_slice(c->prompt, (kvq_role)r, 0, 0);
                kvq_head_config cfg = learn_config((kvq_role)r, KVQ_SCHEME_UNIFORM_ASYM, widths[w], NULL,
                                                   (uint32_t)lround(percent[i] * 1e4), 0, KVQ_POLICY_QUANTIZE_ALL);
                kvq_qtensor *qt = NULL;
                ok = learn_round_trip(&cfg, x, n, d, NULL, y, &qt);
                if (!ok) break;
                fig_add(f, (size_t)r, st, 8.0 * (double)bench_qtensor_bytes(qt) / ((double)n * d),
                        learn_rmse(x, y, (size_t)n * d));
                kvq_qtensor_free(qt);
            }
    }
    char path[4096];
    learn_path(c, "outliers.svg", path, sizeof path);
    ok = ok && fig_write(f, path);
    fig_free(f);
    free(f);
    free(y);
    return ok;
}
