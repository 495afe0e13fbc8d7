/*
 * fig_memory.c - the figures about bytes: how large the cache grows
 * (cache.svg), how codes are laid into bytes (packing.svg, S5), and which
 * tokens a policy keeps in fp16 (policy.svg, S10).
 */
#include "figures.h"

#include "bench/bench.h"
#include "plot/figure.h"
#include "plot/svg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes per token and head of a format, measured on a quantized head of the stress prompt's
 * shape (4096 tokens): codes, params, fp16 rows, outliers, precision (bench_qtensor_bytes). */
static bool bytes_per_token(kvq_scheme scheme, uint32_t bits, uint32_t ppm, uint32_t d, double *out)
{
    const uint32_t n = 4096;
    float *k = malloc((size_t)n * d * sizeof *k), *v = malloc((size_t)n * d * sizeof *v);
    kvq_synth_params p = {n, d, 11, 2, 0.01f, 1, 0, 0};
    bool ok = k != NULL && v != NULL && kvq_synth_kv(&p, k, v, NULL) == KVQ_OK;
    kvq_codebook cb;
    if (scheme == KVQ_SCHEME_NUQ) kvq_codebook_normalfloat(bits, &cb);
    double total = 0.0;
    for (int r = 0; ok && r < 2; r++) {
        kvq_head_config c = learn_config((kvq_role)r, scheme, bits, scheme == KVQ_SCHEME_NUQ ? &cb : NULL, ppm, 1,
                                         KVQ_POLICY_QUANTIZE_ALL);
        kvq_qtensor *qt = NULL;
        ok = kvq_quantize_head(&c, r == 0 ? k : v, n, d, NULL, &qt) == KVQ_OK;
        if (ok) total += (double)bench_qtensor_bytes(qt);
        kvq_qtensor_free(qt);
    }
    free(k);
    free(v);
    if (!ok) fprintf(stderr, "kvq figures: cache.svg: quantizing a %u-bit head failed: %s\n", bits, kvq_last_error());
    *out = total / n;
    return ok;
}

bool fig_cache_size(const learn_ctx *c)
{
    /* LLaMA-7B: 32 layers x 32 heads of 128, 6.74e9 parameters; Gemma 3 270M: 18 layers x 1 KV head of 256 */
    static const struct {
        const char *name;
        uint32_t layers, heads, d;
        double weight_bytes;
        int max_log2_context; /* drawn up to 2^this tokens */
    } models[2] = {{"LLaMA-7B: 32 layers x 32 heads x 128", 32, 32, 128, 6.74e9 * 2.0, 20},
                   {"Gemma 3 270M: 18 x 1 KV head x 256, to 32K", 18, 1, 256, 2.7e8 * 2.0, 15}};
    static const struct {
        const char *name;
        kvq_scheme scheme;
        uint32_t bits, ppm;
    } formats[] = {{"fp16", KVQ_SCHEME_UNIFORM_ASYM, 16, 0},
                   {"kvq 8-bit", KVQ_SCHEME_UNIFORM_ASYM, 8, 0},
                   {"kvq 4-bit", KVQ_SCHEME_UNIFORM_ASYM, 4, 0},
                   {"kvq 4-bit + 1% outliers", KVQ_SCHEME_UNIFORM_ASYM, 4, 10000},
                   {"kvq 2-bit", KVQ_SCHEME_UNIFORM_ASYM, 2, 0}};
    figure *f = malloc(sizeof *f);
    if (f == NULL) return false;
    fig_init(f, 1, 2, PLOT_LOG2, PLOT_LOG10);
    snprintf(f->title, sizeof f->title, "The KV cache of one sequence outgrows the model");
    snprintf(f->subtitle, sizeof f->subtitle,
             "keys and values of every layer; kvq formats: keys per channel in blocks of 128, values per token, "
             "one fp16 sink, bytes as stored (S4.4)");
    snprintf(f->x_label, sizeof f->x_label, "context (tokens)");
    snprintf(f->y_label, sizeof f->y_label, "gigabytes");
    bool ok = true;
    for (size_t m = 0; m < 2 && ok; m++) {
        snprintf(f->panel[m].title, sizeof f->panel[m].title, "%s", models[m].name);
        for (size_t i = 0; i < sizeof formats / sizeof *formats && ok; i++) {
            double per_head = 0.0;
            if (formats[i].bits == 16)
                per_head = 2.0 * models[m].d * 2.0; /* keys and values, 2 bytes each */
            else
                ok = bytes_per_token(formats[i].scheme, formats[i].bits, formats[i].ppm, models[m].d, &per_head);
            size_t st = fig_style_of(f, formats[i].name, false);
            for (int e = 10; e <= models[m].max_log2_context; e++) {
                double tokens = ldexp(1.0, e);
                fig_add(f, m, st, tokens, per_head * models[m].layers * models[m].heads * tokens / 1e9);
            }
        }
        size_t w = fig_style_of(f, "the model's weights in fp16", true),
               g = fig_style_of(f, "one H100's memory (80 GB)", true);
        f->style[w].no_marker = f->style[g].no_marker = true;
        for (int e = 10; e <= models[m].max_log2_context; e += models[m].max_log2_context - 10) {
            fig_add(f, m, w, ldexp(1.0, e), models[m].weight_bytes / 1e9);
            fig_add(f, m, g, ldexp(1.0, e), 80.0);
        }
    }
    char path[4096];
    learn_path(c, "cache.svg", path, sizeof path);
    ok = ok && fig_write(f, path);
    fig_free(f);
    free(f);
    return ok;
}

/* One strip of packed codes: bit cells in stream order, coloured by the code they belong to. */
static void packing_strip(svg *s, double x0, double y0, uint32_t bits, const uint8_t *codes, uint32_t n_codes)
{
    const double cell = 17.0;
    uint32_t n_bits = n_codes * bits;
    uint8_t packed[64];
    kvq_pack_codes(codes, n_codes, bits, packed);
    char label[64];
    snprintf(label, sizeof label, "%u-bit codes (S5.2: code k takes stream bits %u k .. %u k + %u)", bits, bits, bits,
             bits - 1);
    svg_text_styled(s, x0, y0 - 40.0, 13.0, "start", "#000000", "bold", label);
    for (uint32_t k = 0; k < n_codes; k++) {
        double xa = x0 + k * bits * cell, w = bits * cell;
        const char *colour = svg_colour(k % 2 == 0 ? 0 : 1);
        svg_rect(s, xa, y0 - 26.0, w, 16.0, k % 2 == 0 ? "#dbe8f5" : "#fde3cc", colour);
        svg_textf(s, xa + w / 2.0, y0 - 14.0, 10.5, "middle", 0.0, "c%u = %u", k, codes[k]);
    }
    for (uint32_t i = 0; i < n_bits; i++) {
        uint32_t k = i / bits, bit = (packed[i / 8] >> (i % 8)) & 1u;
        double x = x0 + i * cell;
        svg_rect(s, x, y0, cell, cell, k % 2 == 0 ? "#9ecae1" : "#fdae6b", "#ffffff");
        svg_textf(s, x + cell / 2.0, y0 + 12.5, 11.0, "middle", 0.0, "%u", bit);
        if (i % 8 == 0) svg_textf(s, x + 2.0, y0 + cell + 11.0, 8.5, "start", 0.0, "%u", i);
    }
    for (uint32_t b = 0; b * 8 < n_bits; b++) {
        double x = x0 + b * 8 * cell;
        svg_line(s, x, y0 - 2.0, x, y0 + cell + 26.0, "#000000", b % 4 == 0 ? 2.0 : 1.0, NULL);
        svg_textf(s, x + 4.0 * cell, y0 + cell + 24.0, 11.0, "middle", 0.0, "byte %u = 0x%02X", b, packed[b]);
        if (b % 4 == 0) svg_textf(s, x + 4.0, y0 + cell + 40.0, 11.0, "start", 0.0, "32-bit word %u begins", b / 4);
    }
    svg_line(s, x0 + n_bits * cell, y0 - 2.0, x0 + n_bits * cell, y0 + cell + 26.0, "#000000", 2.0, NULL);
}

bool fig_packing(const learn_ctx *c)
{
    /* The codes of the first image token's values (token 32 of layer 0 head 0), 4-bit and 3-bit. */
    const uint32_t t = 32, d = LEARN_DIM;
    const float *v = kvq_kvfile_slice(c->prompt, KVQ_ROLE_VALUES, 0, 0) + (size_t)t * d;
    uint8_t codes[2][LEARN_DIM];
    const uint32_t widths[2] = {4, 3};
    for (int w = 0; w < 2; w++) {
        kvq_quantizer q = {KVQ_SCHEME_UNIFORM_ASYM, widths[w], NULL};
        float lo = v[0], hi = v[0];
        for (uint32_t i = 1; i < d; i++) {
            lo = fminf(lo, v[i]);
            hi = fmaxf(hi, v[i]);
        }
        kvq_group_params p = kvq_group_params_from_range(&q, lo, hi);
        for (uint32_t i = 0; i < d; i++) codes[w][i] = (uint8_t)kvq_encode(&q, p, v[i]);
    }
    char path[4096];
    learn_path(c, "packing.svg", path, sizeof path);
    svg s;
    if (!svg_begin(&s, path, 900.0, 330.0)) return false;
    svg_text_styled(&s, 450.0, 26.0, 16.0, "middle", "#000000", "bold",
                    "Bit packing (S5): codes are written LSB first into a little-endian bit stream");
    svg_text(&s, 450.0, 45.0, 11.5, "middle", 0.0,
             "the first codes of token 32's values (kvq synth ... --seed 7, layer 0 head 0), stream bit i is bit "
             "i mod 8 of byte i / 8");
    packing_strip(&s, 30.0, 110.0, 4, codes[0], 12);
    packing_strip(&s, 30.0, 250.0, 3, codes[1], 16);
    return svg_end(&s);
}

bool fig_policy(const learn_ctx *c)
{
    (void)c;
    /* Two prompts: the page's (64 text tokens of 640, as many as the 10% budget) and one with more
     * text than the budget (text runs of 128 between images of 256). */
    static const struct {
        const char *name;
        uint32_t n, image_run, text_run;
    } prompts[2] = {{"the page's prompt: 32 text, 576 image, 32 text tokens", 640, 576, 32},
                    {"more text than the budget: runs of 128 text and 256 image tokens", 768, 256, 128}};
    static const struct {
        const char *name;
        kvq_policy_rule rule;
    } rules[3] = {{"text-centric", KVQ_POLICY_TEXT_CENTRIC},
                  {"image-centric", KVQ_POLICY_IMAGE_CENTRIC},
                  {"quantize-all", KVQ_POLICY_QUANTIZE_ALL}};
    static const char *const precision_colour[3] = {"#d0d0d0", "#d62728", "#2ca02c"}; /* quantized, sink, policy */
    static const char *const modality_colour[2] = {"#1f77b4", "#ff7f0e"};             /* text, image */
    char path[4096];
    learn_path(c, "policy.svg", path, sizeof path);
    const double x0 = 130.0, width = 760.0, row = 18.0;
    svg s;
    if (!svg_begin(&s, path, 980.0, 420.0)) return false;
    svg_text_styled(&s, 490.0, 26.0, 16.0, "middle", "#000000", "bold",
                    "The token policy (S10): which tokens stay in fp16, one sink and a 10% budget");
    bool ok = true;
    for (int p = 0; p < 2 && ok; p++) {
        uint32_t n = prompts[p].n;
        double y = 70.0 + p * 170.0, w = width / n;
        uint8_t *modality = malloc(n), *precision = malloc(n);
        ok = modality != NULL && precision != NULL;
        for (uint32_t t = 0; ok && t < n; t++)
            modality[t] = t % (prompts[p].image_run + prompts[p].text_run) < prompts[p].text_run ? KVQ_MODALITY_TEXT
                                                                                                : KVQ_MODALITY_IMAGE;
        svg_text_styled(&s, x0, y - 8.0, 12.5, "start", "#000000", "bold", prompts[p].name);
        svg_text(&s, x0 - 8.0, y + 13.0, 11.0, "end", 0.0, "modality");
        for (uint32_t t = 0, end; ok && t < n; t = end) { /* one rectangle per run of equal tokens */
            for (end = t + 1; end < n && modality[end] == modality[t]; end++) {}
            svg_rect(&s, x0 + t * w, y, (end - t) * w, row, modality_colour[modality[t]], NULL);
        }
        for (int r = 0; r < 3 && ok; r++) {
            kvq_token_policy pol = kvq_token_policy_default();
            pol.rule = rules[r].rule;
            ok = kvq_token_precision(&pol, modality, 0, 0, n, precision) == KVQ_OK;
            double yr = y + (r + 1) * (row + 6.0);
            uint32_t fp16 = 0;
            for (uint32_t t = 0, end; ok && t < n; t = end) {
                for (end = t + 1; end < n && precision[end] == precision[t]; end++) {}
                svg_rect(&s, x0 + t * w, yr, (end - t) * w, row, precision_colour[precision[t]], NULL);
                if (precision[t] != KVQ_PREC_QUANTIZED) fp16 += end - t;
            }
            /* sinks again on top, at least 3 px wide: one token of 640 would not show */
            for (uint32_t t = 0; ok && t < n; t++)
                if (precision[t] == KVQ_PREC_SINK) svg_rect(&s, x0 + t * w, yr, fmax(w, 3.0), row, precision_colour[1], NULL);
            svg_text(&s, x0 - 8.0, yr + 13.0, 11.0, "end", 0.0, rules[r].name);
            svg_textf(&s, x0 + width + 6.0, yr + 13.0, 10.0, "start", 0.0, "%u fp16", fp16);
        }
        svg_textf(&s, x0, y + 4 * (row + 6.0) + 12.0, 10.0, "start", 0.0, "token 0");
        svg_textf(&s, x0 + width, y + 4 * (row + 6.0) + 12.0, 10.0, "end", 0.0, "token %u", n - 1);
        free(modality);
        free(precision);
    }
    /* legend */
    static const char *const names[5] = {"text token", "image token", "sink (S8)", "fp16 by the policy (S10.3)",
                                         "quantized"};
    const char *colours[5] = {modality_colour[0], modality_colour[1], precision_colour[1], precision_colour[2],
                              precision_colour[0]};
    for (int i = 0; i < 5; i++) {
        double x = x0 + i * 168.0;
        svg_rect(&s, x, 392.0, 12.0, 12.0, colours[i], "#000000");
        svg_text(&s, x + 17.0, 402.0, 11.0, "start", 0.0, names[i]);
    }
    if (!ok) {
        fprintf(stderr, "kvq figures: policy.svg: %s\n", kvq_last_error());
        svg_abort(&s);
        return false;
    }
    return svg_end(&s);
}
