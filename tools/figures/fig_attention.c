/*
 * fig_attention.c - what the formats change in decode attention
 * (attention.svg, S11): kvq inspect --attention's measurement over the
 * prompt quantized with several formats, side by side.
 */
#include "figures.h"

#include "cli_common.h"
#include "inspect_attention.h"
#include "plot/figure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The prompt quantized as `kvq quantize prompt.kvt -o q.kvqz --scheme S --bits B --outliers P --sinks K`
 * (its other defaults: keys online in blocks of 128, text-centric policy with a 10% budget). */
static kvq_qfile *quantize_prompt(const kvq_kvfile *kv, kvq_scheme scheme, uint32_t bits, uint32_t ppm, uint32_t sinks)
{
    kvq_qfile *qf = NULL;
    kvq_codebook cb;
    kvq_status st = kvq_qfile_create(kv->n_layers, kv->n_heads, kv->head_dim, kv->n_tokens, &qf);
    if (st == KVQ_OK && scheme == KVQ_SCHEME_NUQ) st = kvq_codebook_normalfloat(bits, &cb);
    for (uint32_t l = 0; st == KVQ_OK && l < kv->n_layers; l++)
        for (uint32_t h = 0; st == KVQ_OK && h < kv->n_heads; h++)
            for (int r = 0; st == KVQ_OK && r < 2; r++) {
                kvq_head_config cfg = learn_config((kvq_role)r, scheme, bits, scheme == KVQ_SCHEME_NUQ ? &cb : NULL,
                                                   ppm, sinks, KVQ_POLICY_TEXT_CENTRIC);
                st = kvq_quantize_head(&cfg, kvq_kvfile_slice(kv, (kvq_role)r, l, h), kv->n_tokens, kv->head_dim,
                                       kv->modality, kvq_qfile_slot(qf, l, h, (kvq_role)r));
            }
    if (st != KVQ_OK) {
        cli_fail("figures", st);
        kvq_qfile_free(qf);
        return NULL;
    }
    return qf;
}

bool fig_attention(const learn_ctx *c)
{
    static const struct {
        const char *name;
        kvq_scheme scheme;
        uint32_t bits, ppm, sinks;
    } formats[] = {{"int4: --bits 4 --outliers 0 --sinks 0", KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 0},
                   {"nuq4: --scheme nuq --bits 4 (1% outliers, 1 sink)", KVQ_SCHEME_NUQ, 4, 10000, 1},
                   {"int2: --bits 2 --outliers 0 --sinks 0", KVQ_SCHEME_UNIFORM_ASYM, 2, 0, 0},
                   {"nuq2: --scheme nuq --bits 2 (1% outliers, 1 sink)", KVQ_SCHEME_NUQ, 2, 10000, 1}};
    attn_queries q;
    char why[1024];
    kvq_status st = attn_queries_draw(c->prompt, 4, 1, &q, why, sizeof why);
    if (st != KVQ_OK) {
        fprintf(stderr, "kvq figures: attention.svg: %s\n", why);
        return false;
    }
    kvq_rope rope[LEARN_LAYERS];
    for (uint32_t l = 0; l < LEARN_LAYERS; l++) rope[l] = (kvq_rope){KVQ_ROPE_HALF, 10000.0f};
    figure *f = malloc(sizeof *f);
    bool ok = f != NULL;
    if (ok) {
        attn_figure_init(f, &q, "Decode attention over the quantized prompt, per query head (S11)");
        snprintf(f->subtitle, sizeof f->subtitle,
                 "kvq inspect q.kvqz --against prompt.kvt --attention --query-heads 4 (queries drawn from seed 1: "
                 "original keys scaled to a score spread of 2), RoPE half");
    }
    for (size_t i = 0; ok && i < sizeof formats / sizeof *formats; i++) {
        kvq_qfile *qf = quantize_prompt(c->prompt, formats[i].scheme, formats[i].bits, formats[i].ppm,
                                        formats[i].sinks);
        attn_report r;
        ok = qf != NULL;
        if (ok) {
            st = attn_measure(qf, c->prompt, &q, rope, &r, why, sizeof why);
            ok = st == KVQ_OK;
            if (!ok) fprintf(stderr, "kvq figures: attention.svg: %s\n", why);
        }
        if (ok) {
            attn_figure_add(f, &r, &q, formats[i].name);
            attn_report_free(&r);
        }
        kvq_qfile_free(qf);
    }
    char path[4096];
    learn_path(c, "attention.svg", path, sizeof path);
    ok = ok && fig_write(f, path);
    if (f != NULL) fig_free(f);
    free(f);
    attn_queries_free(&q);
    return ok;
}
