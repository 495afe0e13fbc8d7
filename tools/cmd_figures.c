/*
 * cmd_figures.c - `kvq figures DIR`: draws the figures of docs/LEARN.md into
 * DIR from what the reference computes (tools/figures/). Deterministic: the
 * same build draws the same bytes, so tests/learn_test.sh can check that the
 * committed figures are current.
 */
#define _GNU_SOURCE
#include "cli_common.h"
#include "figures/figures.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CMD "figures"

static const struct {
    const char *name;
    bool (*draw)(const learn_ctx *c);
    const char *what;
} figures[] = {
    {"cache.svg", fig_cache_size, "KV cache bytes against context, LLaMA-7B and Gemma 3 270M"},
    {"uniform.svg", fig_uniform, "one token's values on the 2-bit and 4-bit uniform grid (S3)"},
    {"axes.svg", fig_axes, "key error maps, groups per token against per channel (S4)"},
    {"packing.svg", fig_packing, "4-bit and 3-bit codes in the bit stream (S5)"},
    {"nuq.svg", fig_nuq, "uniform, NormalFloat and k-means signposts over the data (S6)"},
    {"outliers.svg", fig_outliers, "error and storage against the outlier fraction (S7)"},
    {"sinks.svg", fig_sinks, "per-token error with and without a sink (S8)"},
    {"rope.svg", fig_rope, "pre-RoPE against post-RoPE keys (S9)"},
    {"policy.svg", fig_policy, "token precision under the three policy rules (S10)"},
    {"attention.svg", fig_attention, "attention output error and weight shift per format (S11)"},
};

void cli_usage_figures(FILE *out)
{
    fprintf(out,
            "usage: kvq figures DIR\n"
            "  Draws the figures of docs/LEARN.md into DIR (created if missing) from what the reference\n"
            "  computes on the page's synthetic prompt (kvq synth ... --seed 7, S14). The repository's\n"
            "  copies are docs/learn/*.svg: `kvq figures docs/learn` redraws them. Figures:\n");
    for (size_t i = 0; i < sizeof figures / sizeof *figures; i++)
        fprintf(out, "    %-14s %s\n", figures[i].name, figures[i].what);
}

int cmd_figures(int argc, char **argv)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = cli_getopt(CMD, argc, argv, ":h", options)) != -1) {
        if (c == -2) return CLI_USAGE;
        if (c == 'h') {
            cli_usage_figures(stdout);
            return CLI_OK;
        }
        return cli_usage_error(CMD, "unexpected option");
    }
    if (optind >= argc) return cli_usage_error(CMD, "missing DIR");
    if (optind + 1 < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    const char *dir = argv[optind];
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return cli_error(CMD, KVQ_ERR_IO, "%s: cannot create the directory: %s", dir, strerror(errno));
    learn_ctx ctx = {dir, learn_prompt(KVQ_SYNTH_REALISTIC), learn_prompt(KVQ_SYNTH_STRESS)};
    int rc = ctx.prompt != NULL && ctx.stress != NULL ? CLI_OK : CLI_FAILED;
    size_t written = 0;
    for (size_t i = 0; rc == CLI_OK && i < sizeof figures / sizeof *figures; i++) {
        if (!figures[i].draw(&ctx)) {
            fprintf(stderr, "kvq figures: error: %s/%s could not be drawn\n", dir, figures[i].name);
            rc = CLI_FAILED;
        } else {
            written++;
        }
    }
    kvq_kvfile_free(ctx.prompt);
    kvq_kvfile_free(ctx.stress);
    if (rc == CLI_OK) printf("figures: wrote %zu figures into %s\n", written, dir);
    return rc;
}
