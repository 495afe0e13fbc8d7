/*
 * cmd_dequantize.c - `kvq dequantize`: a .kvqz back into a .kvt with
 * kvq_dequantize_head (S4.5).
 *
 * The dequantized values are exact fp32 numbers (S3.5, S6.5), so fp32 output
 * (the default) loses nothing; --dtype fp16 rounds each once to nearest with
 * kvq_fp16_from_fp32 (S2). A .kvqz holds neither modality nor positions, so
 * the output has keys and values only.
 */
#define _GNU_SOURCE
#include "cli_common.h"
#include "kvq/kvq_io.h"

#include <getopt.h>
#include <string.h>

#define CMD "dequantize"

void cli_usage_dequantize(FILE *out)
{
    fprintf(out,
            "usage: kvq dequantize IN.kvqz -o OUT.kvt [--dtype fp32|fp16]\n"
            "  Writes the exact fp32 values every quantized head slice stands for (S4.5).\n"
            "  --dtype fp32|fp16   element type of OUT.kvt (default fp32, exact; fp16 rounds to\n"
            "                      nearest, ties to even)\n");
}

enum { OPT_DTYPE = 1, OPT_HELP };

int cmd_dequantize(int argc, char **argv)
{
    static const struct option options[] = {
        {"output", required_argument, NULL, 'o'},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    static const char *const dtypes[] = {"fp32", "fp16"};
    const char *output = NULL;
    uint32_t dtype = 0;
    int c;
    optind = 1;
    while ((c = cli_getopt(CMD, argc, argv, ":o:h", options)) != -1) {
        switch (c) {
        case -2: return CLI_USAGE;
        case 'h':
        case OPT_HELP: cli_usage_dequantize(stdout); return CLI_OK;
        case 'o': output = optarg; break;
        case OPT_DTYPE:
            if (!cli_parse_choice(CMD, "--dtype", optarg, dtypes, 2, &dtype)) return CLI_USAGE;
            break;
        default: return cli_usage_error(CMD, "unexpected option");
        }
    }
    if (optind >= argc) return cli_usage_error(CMD, "missing the input file IN.kvqz");
    if (optind + 1 < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    if (output == NULL) return cli_usage_error(CMD, "missing -o OUT.kvt");
    const char *input = argv[optind];
    bool fp16 = dtype == 1;

    kvq_qfile *qf = NULL;
    kvq_status st = kvq_qfile_read(input, &qf);
    if (st != KVQ_OK) return cli_fail(CMD, st);
    kvq_kvfile *kv = NULL;
    st = kvq_kvfile_create(qf->n_layers, qf->n_heads, qf->n_tokens, qf->head_dim,
                           fp16 ? KVQ_DTYPE_FP16 : KVQ_DTYPE_FP32, KVQ_KVFILE_KEYS | KVQ_KVFILE_VALUES, &kv);
    if (st != KVQ_OK) {
        kvq_qfile_free(qf);
        return cli_fail(CMD, st);
    }
    size_t n = (size_t)qf->n_tokens * qf->head_dim;
    for (uint32_t l = 0; l < qf->n_layers && st == KVQ_OK; l++) {
        for (uint32_t h = 0; h < qf->n_heads && st == KVQ_OK; h++) {
            for (int r = 0; r < 2 && st == KVQ_OK; r++) {
                kvq_role role = r == 0 ? KVQ_ROLE_KEYS : KVQ_ROLE_VALUES;
                float *slice = kvq_kvfile_slice(kv, role, l, h);
                st = kvq_dequantize_head(*kvq_qfile_slot(qf, l, h, role), slice);
                if (st != KVQ_OK) {
                    cli_fail_at(CMD, st, "layer %u head %u %s: ", l, h, r == 0 ? "keys" : "values");
                    break;
                }
                if (fp16)
                    for (size_t i = 0; i < n; i++) slice[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(slice[i]));
            }
        }
    }
    int rc = CLI_FAILED;
    if (st == KVQ_OK) {
        st = kvq_kvfile_write(output, kv);
        if (st != KVQ_OK) {
            cli_fail(CMD, st);
        } else {
            printf("dequantize: wrote %s: %u layers x %u heads x %u tokens x %u channels, %s\n", output,
                   qf->n_layers, qf->n_heads, qf->n_tokens, qf->head_dim, fp16 ? "fp16" : "fp32");
            rc = CLI_OK;
        }
    }
    kvq_kvfile_free(kv);
    kvq_qfile_free(qf);
    return rc;
}
