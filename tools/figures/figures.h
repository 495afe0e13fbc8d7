/*
 * figures.h - `kvq figures DIR`: the figures of docs/LEARN.md, drawn from what
 * the reference computes on the data the page's commands make (kvq synth's
 * generator, S14), so that they never drift from the code: the page says which
 * command reproduces each one's numbers, and tests/learn_test.sh checks that
 * the committed figures are what this command draws.
 *
 * One file per group of figures; each figure function writes DIR/<name>.svg
 * and returns true, or false after printing why.
 */
#ifndef KVQ_FIGURES_H
#define KVQ_FIGURES_H

#include "kvq/kvq.h"
#include "kvq/kvq_io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct learn_ctx {
    const char *dir;
    kvq_kvfile *prompt;    /* the realistic LLaVA-like prompt (learn_prompt) */
    kvq_kvfile *stress;    /* the same shape from the stress profile */
} learn_ctx;

/* The page's prompt: kvq synth --layers 2 --heads 4 --tokens 640 --head-dim 128 --seed 7
 * --image-run 576 --text-run 32 [--profile realistic --outlier-channels 10 --tail-probability 0.000008]. */
#define LEARN_LAYERS 2u
#define LEARN_HEADS 4u
#define LEARN_TOKENS 640u
#define LEARN_DIM 128u
#define LEARN_SEED 7u
kvq_kvfile *learn_prompt(kvq_synth_profile profile);

/* DIR/name into out. */
void learn_path(const learn_ctx *c, const char *name, char *out, size_t size);

/* A head config as `kvq quantize` makes it from its defaults (cli_quant_defaults)
 * with these choices: scheme, bits, keys online in blocks of 128 or calibrated,
 * outlier ppm, sinks, policy rule (budget 10%). */
kvq_head_config learn_config(kvq_role role, kvq_scheme scheme, uint32_t bits, const kvq_codebook *codebook,
                             uint32_t outlier_ppm, uint32_t sinks, kvq_policy_rule rule);
/* Quantizes x[n][d] and dequantizes it into y (false after printing why). */
bool learn_round_trip(const kvq_head_config *config, const float *x, uint32_t n, uint32_t d,
                      const uint8_t *modality, float *y, kvq_qtensor **keep);
/* sqrt(mean((x - y)^2)) */
double learn_rmse(const float *x, const float *y, size_t n);

/* The subcommand (tools/cmd_figures.c). */
int cmd_figures(int argc, char **argv);
void cli_usage_figures(FILE *out);

bool fig_cache_size(const learn_ctx *c);
bool fig_packing(const learn_ctx *c);
bool fig_policy(const learn_ctx *c);
bool fig_uniform(const learn_ctx *c);
bool fig_nuq(const learn_ctx *c);
bool fig_outliers(const learn_ctx *c);
bool fig_axes(const learn_ctx *c);
bool fig_rope(const learn_ctx *c);
bool fig_sinks(const learn_ctx *c);
bool fig_attention(const learn_ctx *c);

#endif /* KVQ_FIGURES_H */
