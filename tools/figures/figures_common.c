/*
 * figures_common.c - the data and configurations the figures of docs/LEARN.md share.
 */
#include "figures.h"

#include "cli_common.h"
#include "synth_build.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kvq_kvfile *learn_prompt(kvq_synth_profile profile)
{
    kvq_synth_params p;
    memset(&p, 0, sizeof p);
    /* kvq synth's defaults, or the realistic profile's recommended settings (docs/CLI.md) */
    p.n_outlier_channels = profile == KVQ_SYNTH_REALISTIC ? 10u : 2u;
    p.tail_probability = profile == KVQ_SYNTH_REALISTIC ? 0.000008f : 0.01f;
    p.sink_token = 1;
    p.image_run = 576;
    p.text_run = 32;
    return cli_synth_build("figures", LEARN_LAYERS, LEARN_HEADS, LEARN_TOKENS, LEARN_DIM, LEARN_SEED, &p, profile,
                           KVQ_DTYPE_FP16);
}

void learn_path(const learn_ctx *c, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", c->dir, name);
}

kvq_head_config learn_config(kvq_role role, kvq_scheme scheme, uint32_t bits, const kvq_codebook *codebook,
                             uint32_t outlier_ppm, uint32_t sinks, kvq_policy_rule rule)
{
    cli_quant_options q = cli_quant_defaults();
    q.scheme = scheme;
    q.key_bits = q.value_bits = bits;
    q.key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE;
    q.outlier_ppm = outlier_ppm;
    q.policy.n_sinks = sinks;
    q.policy.rule = rule;
    return cli_head_config(&q, role, codebook, NULL, 0);
}

bool learn_round_trip(const kvq_head_config *config, const float *x, uint32_t n, uint32_t d,
                      const uint8_t *modality, float *y, kvq_qtensor **keep)
{
    kvq_qtensor *qt = NULL;
    kvq_status st = kvq_quantize_head(config, x, n, d, modality, &qt);
    if (st == KVQ_OK) st = kvq_dequantize_head(qt, y);
    if (st != KVQ_OK) {
        cli_fail("figures", st);
        kvq_qtensor_free(qt);
        return false;
    }
    if (keep != NULL)
        *keep = qt;
    else
        kvq_qtensor_free(qt);
    return true;
}

double learn_rmse(const float *x, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return n ? sqrt(s / (double)n) : 0.0;
}
