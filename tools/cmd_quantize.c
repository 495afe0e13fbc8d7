/*
 * cmd_quantize.c - `kvq quantize`: every (layer, head) of a .kvt, keys and
 * values, through kvq_quantize_head (S4), into one .kvqz (S16.5).
 *
 * Keys are calibrated (S4.2) when a calibration file is given, online (S4.3)
 * otherwise, unless --key-mode says which. NUQ codebooks (S6) come from the
 * calibration file when it has them for the role, else NormalFloat (S6.1).
 */
#define _GNU_SOURCE
#include "cli_common.h"
#include "kvq/kvq_io.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CMD "quantize"

void cli_usage_quantize(FILE *out)
{
    fprintf(out,
            "usage: kvq quantize IN.kvt -o OUT.kvqz [options]\n"
            "  Quantizes the keys and values of every layer and head (kvq_quantize_head, S4).\n"
            "  --bits B               2, 3, 4 or 8 for keys and values (default 4; NUQ: 2, 3, 4)\n"
            "  --key-bits B           keys only (overrides --bits)\n"
            "  --value-bits B         values only (overrides --bits)\n"
            "  --scheme S             asym | sym | nuq (default asym)\n"
            "  --key-mode M           calibrated | online (default: calibrated with --calibration,\n"
            "                         else online)\n"
            "  --key-block G          online keys: tokens per block (default 128)\n"
            "  --value-group G        values: channels per group, 0 = head_dim (default 0)\n"
            "  --outlier-ppm P        outliers per group in parts per million (default 10000)\n"
            "  --outliers PERCENT     the same as a percentage (1 = 10000 ppm)\n"
            "  --policy R             quantize-all | text-centric | image-centric (default text-centric)\n"
            "  --budget PERCENT       fp16 token budget of the policy (default 10)\n"
            "  --sinks S              attention sinks kept in fp16 (default 1)\n"
            "  --recent-window W      newest tokens kept in fp16 (default 0)\n"
            "  --calibration FILE.kvc key channel ranges (calibrated keys) and NUQ codebooks\n"
            "  --beyond-range R       calibrated keys outside their channel range: outliers (stored\n"
            "                         exactly, the default) | clamp (no outliers, S7.3)\n"
            "  Prints one summary line: tokens, fp16 token rows, outliers, bytes, compression.\n");
}

enum { OPT_CALIBRATION = 1, OPT_HELP };

/* Shapes of the calibration must match the tensor file (S16.4). */
static int check_calibration(const kvq_calibration *cal, const kvq_kvfile *kv, const cli_quant_options *q)
{
    if (cal->n_layers != kv->n_layers || cal->n_heads != kv->n_heads || cal->head_dim != kv->head_dim)
        return cli_error(CMD, KVQ_ERR_SIZE_MISMATCH,
                         "calibration is for %u layers x %u heads x %u channels, the tensor file has %u x %u x %u",
                         cal->n_layers, cal->n_heads, cal->head_dim, kv->n_layers, kv->n_heads, kv->head_dim);
    if (q->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED && !(cal->flags & KVQ_CALIB_KEY_RANGES))
        return cli_error(CMD, KVQ_ERR_BAD_CALIBRATION, "the calibration file has no key channel ranges");
    if (q->scheme == KVQ_SCHEME_NUQ) {
        for (uint32_t l = 0; l < cal->n_layers; l++) {
            if ((cal->flags & KVQ_CALIB_KEY_CODEBOOKS) && cal->key_codebook[l].bits != q->key_bits)
                return cli_error(CMD, KVQ_ERR_BAD_CODEBOOK,
                                 "the calibration's layer %u key codebook has %u bits, --key-bits is %u", l,
                                 cal->key_codebook[l].bits, q->key_bits);
            if ((cal->flags & KVQ_CALIB_VALUE_CODEBOOKS) && cal->value_codebook[l].bits != q->value_bits)
                return cli_error(CMD, KVQ_ERR_BAD_CODEBOOK,
                                 "the calibration's layer %u value codebook has %u bits, --value-bits is %u", l,
                                 cal->value_codebook[l].bits, q->value_bits);
        }
    }
    return CLI_OK;
}

/* Totals for the summary line. */
typedef struct totals {
    uint64_t token_rows, fp16_rows, elements, outliers;
} totals;

static void add_totals(totals *t, const kvq_qtensor *qt)
{
    t->token_rows += qt->n_tokens;
    t->fp16_rows += qt->n_fp16_rows;
    t->elements += (uint64_t)qt->n_tokens * qt->head_dim;
    t->outliers += qt->n_outliers;
}

/* Quantizes every slice into a new qfile; on failure prints and returns NULL. */
static kvq_qfile *quantize_all(const kvq_kvfile *kv, const cli_quant_options *q, const kvq_calibration *cal,
                               totals *t)
{
    kvq_qfile *qf = NULL;
    kvq_status st = kvq_qfile_create(kv->n_layers, kv->n_heads, kv->head_dim, kv->n_tokens, &qf);
    if (st != KVQ_OK) {
        cli_fail(CMD, st);
        return NULL;
    }
    kvq_codebook nf_keys, nf_values;
    memset(&nf_keys, 0, sizeof nf_keys);
    memset(&nf_values, 0, sizeof nf_values);
    if (q->scheme == KVQ_SCHEME_NUQ) {
        /* NormalFloat for a role the calibration file has no codebook for. */
        if ((st = kvq_codebook_normalfloat(q->key_bits, &nf_keys)) != KVQ_OK ||
            (st = kvq_codebook_normalfloat(q->value_bits, &nf_values)) != KVQ_OK) {
            cli_fail_at(CMD, st, "NUQ codebook: ");
            kvq_qfile_free(qf);
            return NULL;
        }
    }
    for (uint32_t l = 0; l < kv->n_layers; l++) {
        const kvq_codebook *kcb = &nf_keys, *vcb = &nf_values;
        if (cal != NULL && (cal->flags & KVQ_CALIB_KEY_CODEBOOKS)) kcb = &cal->key_codebook[l];
        if (cal != NULL && (cal->flags & KVQ_CALIB_VALUE_CODEBOOKS)) vcb = &cal->value_codebook[l];
        for (uint32_t h = 0; h < kv->n_heads; h++) {
            const kvq_channel_range *ranges = cal != NULL ? kvq_calibration_ranges(cal, l, h) : NULL;
            for (int r = 0; r < 2; r++) {
                kvq_role role = r == 0 ? KVQ_ROLE_KEYS : KVQ_ROLE_VALUES;
                kvq_head_config config = cli_head_config(q, role, role == KVQ_ROLE_KEYS ? kcb : vcb, ranges,
                                                         cal != NULL ? cal->head_dim : 0u);
                kvq_qtensor *qt = NULL;
                st = kvq_quantize_head(&config, kvq_kvfile_slice(kv, role, l, h), kv->n_tokens, kv->head_dim,
                                       kv->modality, &qt);
                if (st != KVQ_OK) {
                    cli_fail_at(CMD, st, "layer %u head %u %s: ", l, h, r == 0 ? "keys" : "values");
                    kvq_qfile_free(qf);
                    return NULL;
                }
                add_totals(t, qt);
                *kvq_qfile_slot(qf, l, h, role) = qt; /* the qfile owns it from here */
            }
        }
    }
    return qf;
}

int cmd_quantize(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_QUANT_LONG_OPTIONS,
        {"output", required_argument, NULL, 'o'},
        {"calibration", required_argument, NULL, OPT_CALIBRATION},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    cli_quant_options q = cli_quant_defaults();
    const char *output = NULL, *calibration = NULL;
    int c;
    optind = 1;
    while ((c = cli_getopt(CMD, argc, argv, ":o:h", options)) != -1) {
        if (c == -2) return CLI_USAGE;
        if (c == 'h' || c == OPT_HELP) {
            cli_usage_quantize(stdout);
            return CLI_OK;
        }
        if (c == 'o') {
            output = optarg;
        } else if (c == OPT_CALIBRATION) {
            calibration = optarg;
        } else if (c >= CLI_OPT_QUANT_FIRST && c <= CLI_OPT_QUANT_LAST) {
            if (!cli_quant_option(CMD, &q, c, optarg)) return CLI_USAGE;
        } else {
            return cli_usage_error(CMD, "unexpected option");
        }
    }
    if (optind >= argc) return cli_usage_error(CMD, "missing the input file IN.kvt");
    if (optind + 1 < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    if (output == NULL) return cli_usage_error(CMD, "missing -o OUT.kvqz");
    if (!q.key_mode_given)
        q.key_mode = calibration != NULL ? KVQ_KEYS_PER_CHANNEL_CALIBRATED : KVQ_KEYS_PER_CHANNEL_ONLINE;
    if (q.key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED && calibration == NULL)
        return cli_usage_error(CMD, "--key-mode calibrated needs --calibration FILE.kvc");
    if (q.beyond_range_given && q.key_mode != KVQ_KEYS_PER_CHANNEL_CALIBRATED)
        return cli_usage_error(CMD, "--beyond-range applies to calibrated keys (--calibration FILE.kvc) only");
    const char *input = argv[optind];

    kvq_kvfile *kv = NULL;
    kvq_status st = kvq_kvfile_read(input, &kv);
    if (st != KVQ_OK) return cli_fail(CMD, st);
    if (kv->keys == NULL || kv->values == NULL) {
        /* The message reads kv, so it is printed before kv is freed. */
        cli_error(CMD, KVQ_ERR_BAD_ARGUMENT, "%s: has no %s; quantize needs keys and values", input,
                  kv->keys == NULL ? "keys" : "values");
        kvq_kvfile_free(kv);
        return CLI_FAILED;
    }
    kvq_calibration *cal = NULL;
    if (calibration != NULL) {
        st = kvq_calibration_read(calibration, &cal);
        if (st != KVQ_OK) {
            kvq_kvfile_free(kv);
            return cli_fail(CMD, st);
        }
        if (check_calibration(cal, kv, &q) != CLI_OK) {
            kvq_calibration_free(cal);
            kvq_kvfile_free(kv);
            return CLI_FAILED;
        }
    }

    totals t;
    memset(&t, 0, sizeof t);
    kvq_qfile *qf = quantize_all(kv, &q, cal, &t);
    int rc = CLI_FAILED;
    if (qf != NULL) {
        st = kvq_qfile_write(output, qf);
        if (st != KVQ_OK) {
            cli_fail(CMD, st);
        } else {
            struct stat sb;
            uint64_t after = stat(output, &sb) == 0 ? (uint64_t)sb.st_size : 0;
            uint64_t before = t.elements * 2; /* the same KV in fp16 */
            bool clamp = q.key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED && q.beyond_range == KVQ_BEYOND_RANGE_CLAMP;
            printf("quantize: wrote %s: %u layers x %u heads x %u tokens x %u channels; keys %s %u-bit %s%s, "
                   "values %s %u-bit; fp16 token rows %llu of %llu (keys and values); outliers %llu of %llu elements (%.4f%%); "
                   "bytes %llu (fp16) -> %llu (kvqz), ratio %.3fx\n",
                   output, kv->n_layers, kv->n_heads, kv->n_tokens, kv->head_dim, cli_scheme_name(q.scheme),
                   q.key_bits, cli_key_mode_name(q.key_mode), clamp ? " (clamped)" : "", cli_scheme_name(q.scheme),
                   q.value_bits,
                   (unsigned long long)t.fp16_rows, (unsigned long long)t.token_rows,
                   (unsigned long long)t.outliers, (unsigned long long)t.elements,
                   t.elements ? 100.0 * (double)t.outliers / (double)t.elements : 0.0,
                   (unsigned long long)before, (unsigned long long)after,
                   after ? (double)before / (double)after : 0.0);
            rc = CLI_OK;
        }
        kvq_qfile_free(qf);
    }
    kvq_calibration_free(cal);
    kvq_kvfile_free(kv);
    return rc;
}
