/*
 * cmd_calibrate.c - `kvq calibrate`: a calibration file (.kvc, S16.4) from
 * sample KV tensors.
 *
 * Always: per (layer, head), the key channel ranges of S6.9 over all sample
 * tokens (kvq_calibrate_channel_ranges). With --codebook kmeans, per layer:
 *  - one key codebook from the keys of all heads of the layer, normalized the
 *    way calibrated NUQ keys will be quantized, i.e. under the ranges just
 *    computed (kvq_calibration_samples with a calibrated-keys NUQ config);
 *  - one value codebook from the values of all heads, normalized per token
 *    group (kvq_calibration_samples with a per-token NUQ values config);
 * each by Fisher-weighted k-means (kvq_calibrate_codebook, S6.6). Heads are
 * concatenated in head order, so the result does not depend on anything but
 * the inputs. --fisher gives one non-negative weight per element, in a .kvt
 * of the same shape (its keys weigh the keys, its values the values).
 */
#define _GNU_SOURCE
#include "cli_common.h"
#include "kvq/kvq_io.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMD "calibrate"

void cli_usage_calibrate(FILE *out)
{
    fprintf(out,
            "usage: kvq calibrate SAMPLES.kvt -o OUT.kvc [--outlier-ppm P | --outliers PERCENT]\n"
            "                     [--codebook none|kmeans [--bits B] [--fisher WEIGHTS.kvt]\n"
            "                      [--iterations N] [--q-norm]]\n"
            "  Key channel ranges per layer and head (S6.9): per channel, the outlier fraction of\n"
            "  the sample tokens lies outside [lo, hi] (default 10000 ppm = 1%%).\n"
            "  --codebook kmeans   also one key and one value NUQ codebook per layer (S6.6)\n"
            "  --bits B            codebook width 2, 3 or 4 (default 4); --key-bits/--value-bits too\n"
            "  --fisher FILE.kvt   per-element weights, same shape as SAMPLES.kvt (default all 1)\n"
            "  --iterations N      Lloyd iterations (default 25)\n"
            "  --q-norm            apply Q-Norm (S6.7) to the codebooks\n"
            "  Codebook samples follow the quantization options of `kvq quantize`\n"
            "  (--value-group, --policy, --budget, --sinks, --recent-window, --beyond-range): tokens\n"
            "  the policy keeps in fp16 and outliers are not codebook-quantized, so they are left out.\n");
}

enum { OPT_CODEBOOK = 1, OPT_FISHER, OPT_ITERATIONS, OPT_QNORM, OPT_HELP };

/* One codebook for `role` of layer l from the samples of all its heads. */
static kvq_status layer_codebook(const kvq_kvfile *kv, const kvq_kvfile *fisher, const kvq_calibration *cal,
                                 const cli_quant_options *q, const kvq_kmeans_params *km, kvq_role role,
                                 uint32_t l, float *z, float *w, kvq_codebook *out)
{
    size_t total = 0;
    for (uint32_t h = 0; h < kv->n_heads; h++) {
        /* NUQ config as quantize will use it; no codebook: the samples do not depend on it (S6.6). */
        kvq_head_config config = cli_head_config(q, role, NULL, kvq_calibration_ranges(cal, l, h), cal->head_dim);
        size_t n = 0;
        kvq_status st = kvq_calibration_samples(&config, kvq_kvfile_slice(kv, role, l, h),
                                                fisher ? kvq_kvfile_slice(fisher, role, l, h) : NULL, kv->n_tokens,
                                                kv->head_dim, kv->modality, z + total, w + total, &n);
        if (st != KVQ_OK) return st;
        total += n;
    }
    return kvq_calibrate_codebook(z, w, total, km, out);
}

int cmd_calibrate(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_QUANT_LONG_OPTIONS,
        {"output", required_argument, NULL, 'o'},
        {"codebook", required_argument, NULL, OPT_CODEBOOK},
        {"fisher", required_argument, NULL, OPT_FISHER},
        {"iterations", required_argument, NULL, OPT_ITERATIONS},
        {"q-norm", no_argument, NULL, OPT_QNORM},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    static const char *const codebooks[] = {"none", "kmeans"};
    cli_quant_options q = cli_quant_defaults();
    const char *output = NULL, *fisher_path = NULL;
    uint32_t codebook = 0, iterations = 25;
    bool q_norm = false, iterations_given = false;
    int c;
    optind = 1;
    while ((c = cli_getopt(CMD, argc, argv, ":o:h", options)) != -1) {
        switch (c) {
        case -2: return CLI_USAGE;
        case 'h':
        case OPT_HELP: cli_usage_calibrate(stdout); return CLI_OK;
        case 'o': output = optarg; break;
        case OPT_CODEBOOK:
            if (!cli_parse_choice(CMD, "--codebook", optarg, codebooks, 2, &codebook)) return CLI_USAGE;
            break;
        case OPT_FISHER: fisher_path = optarg; break;
        case OPT_ITERATIONS:
            if (!cli_parse_u32(CMD, "--iterations", optarg, 0, 100000, &iterations)) return CLI_USAGE;
            iterations_given = true;
            break;
        case OPT_QNORM: q_norm = true; break;
        case CLI_OPT_SCHEME:
        case CLI_OPT_KEY_MODE:
        case CLI_OPT_KEY_BLOCK:
            /* Calibration is for calibrated NUQ keys by definition. */
            return cli_usage_error(CMD, "option %s is not used by calibrate (it calibrates NUQ keys per channel)",
                                   c == CLI_OPT_SCHEME ? "--scheme" : c == CLI_OPT_KEY_MODE ? "--key-mode" : "--key-block");
        default:
            if (c >= CLI_OPT_QUANT_FIRST && c <= CLI_OPT_QUANT_LAST) {
                if (!cli_quant_option(CMD, &q, c, optarg)) return CLI_USAGE;
                break;
            }
            return cli_usage_error(CMD, "unexpected option");
        }
    }
    if (optind >= argc) return cli_usage_error(CMD, "missing the input file SAMPLES.kvt");
    if (optind + 1 < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    if (output == NULL) return cli_usage_error(CMD, "missing -o OUT.kvc");
    bool kmeans = codebook == 1;
    if (!kmeans && (fisher_path || q_norm || iterations_given))
        return cli_usage_error(CMD, "%s needs --codebook kmeans",
                               fisher_path ? "--fisher" : q_norm ? "--q-norm" : "--iterations");
    if (kmeans && (q.key_bits > 4 || q.value_bits > 4))
        return cli_usage_error(CMD, "NUQ codebooks have 2, 3 or 4 bits, not %u",
                               q.key_bits > 4 ? q.key_bits : q.value_bits);
    q.scheme = KVQ_SCHEME_NUQ;
    q.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    const char *input = argv[optind];

    kvq_kvfile *kv = NULL, *fisher = NULL;
    kvq_calibration *cal = NULL;
    float *z = NULL, *w = NULL;
    int rc = CLI_FAILED;
    kvq_status st = kvq_kvfile_read(input, &kv);
    if (st != KVQ_OK) return cli_fail(CMD, st);
    if (kv->keys == NULL || (kmeans && kv->values == NULL)) {
        cli_error(CMD, KVQ_ERR_BAD_ARGUMENT, "%s: has no %s", input, kv->keys == NULL ? "keys" : "values");
        goto done;
    }
    if (fisher_path != NULL) {
        st = kvq_kvfile_read(fisher_path, &fisher);
        if (st != KVQ_OK) {
            cli_fail(CMD, st);
            goto done;
        }
        if (fisher->n_layers != kv->n_layers || fisher->n_heads != kv->n_heads ||
            fisher->n_tokens != kv->n_tokens || fisher->head_dim != kv->head_dim || fisher->keys == NULL ||
            fisher->values == NULL) {
            cli_error(CMD, KVQ_ERR_SIZE_MISMATCH,
                      "%s: Fisher weights must have keys and values of the samples' shape %u x %u x %u x %u",
                      fisher_path, kv->n_layers, kv->n_heads, kv->n_tokens, kv->head_dim);
            goto done;
        }
    }
    uint32_t flags = KVQ_CALIB_KEY_RANGES | (kmeans ? KVQ_CALIB_KEY_CODEBOOKS | KVQ_CALIB_VALUE_CODEBOOKS : 0u);
    st = kvq_calibration_create(kv->n_layers, kv->n_heads, kv->head_dim, flags, q.outlier_ppm, &cal);
    if (st != KVQ_OK) {
        cli_fail(CMD, st);
        goto done;
    }
    for (uint32_t l = 0; l < kv->n_layers; l++) {
        for (uint32_t h = 0; h < kv->n_heads; h++) {
            st = kvq_calibrate_channel_ranges(kvq_kvfile_slice(kv, KVQ_ROLE_KEYS, l, h), kv->n_tokens, kv->head_dim,
                                              q.outlier_ppm, kvq_calibration_ranges(cal, l, h));
            if (st != KVQ_OK) {
                cli_fail_at(CMD, st, "layer %u head %u key ranges: ", l, h);
                goto done;
            }
        }
    }
    if (kmeans) {
        size_t per_layer = (size_t)kv->n_heads * kv->n_tokens * kv->head_dim;
        z = cli_alloc(CMD, per_layer, sizeof *z, "codebook samples");
        w = z ? cli_alloc(CMD, per_layer, sizeof *w, "codebook weights") : NULL;
        if (w == NULL) goto done;
        for (uint32_t l = 0; l < kv->n_layers; l++) {
            kvq_kmeans_params km = {q.key_bits, iterations, q_norm ? 1u : 0u};
            st = layer_codebook(kv, fisher, cal, &q, &km, KVQ_ROLE_KEYS, l, z, w, &cal->key_codebook[l]);
            if (st != KVQ_OK) {
                cli_fail_at(CMD, st, "layer %u key codebook: ", l);
                goto done;
            }
            km.bits = q.value_bits;
            st = layer_codebook(kv, fisher, cal, &q, &km, KVQ_ROLE_VALUES, l, z, w, &cal->value_codebook[l]);
            if (st != KVQ_OK) {
                cli_fail_at(CMD, st, "layer %u value codebook: ", l);
                goto done;
            }
        }
    }
    st = kvq_calibration_write(output, cal);
    if (st != KVQ_OK) {
        cli_fail(CMD, st);
        goto done;
    }
    printf("calibrate: wrote %s: key ranges for %u layers x %u heads x %u channels (%u ppm outliers)", output,
           kv->n_layers, kv->n_heads, kv->head_dim, q.outlier_ppm);
    if (kmeans)
        printf("; %u-bit key and %u-bit value codebooks per layer (k-means, %u iterations%s%s)", q.key_bits,
               q.value_bits, iterations, fisher ? ", Fisher-weighted" : "", q_norm ? ", Q-Norm" : "");
    printf("\n");
    rc = CLI_OK;
done:
    free(z);
    free(w);
    kvq_calibration_free(cal);
    kvq_kvfile_free(fisher);
    kvq_kvfile_free(kv);
    return rc;
}
