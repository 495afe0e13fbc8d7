/*
 * cmd_accuracy.c - `kvq accuracy`: scores a KV-cache format kvq does not know,
 * a backend's (loaded through the ABI) or one handed in as files, against the
 * original fp32 data, next to kvq's own and S17's formats at the same widths
 * (tools/accuracy/accuracy.h; docs/PLUGINS.md, "Formats kvq does not know").
 *
 * A subcommand of its own rather than an option of `kvq conform`: conform
 * gives a verdict (levels, PASS/FAIL, JUnit) on formats it knows exactly;
 * this gives scores, with a pass/fail only where the user names a threshold,
 * and none of conform's selection options apply. Exit status: 0 scored
 * (within the thresholds given), 1 a threshold exceeded, or the source failed
 * at a width or lacks one --bits asks for, 2 usage error or the backend could
 * not be loaded.
 */
#define _GNU_SOURCE /* getopt_long */
#include "accuracy/accuracy.h"
#include "cli_common.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CMD "accuracy"

enum { DEFAULT_TIMEOUT = 300 };

void cli_usage_accuracy(FILE *out)
{
    fprintf(out,
            "usage: kvq accuracy --backend ref|opencl|cuda|PATH.so [--bits LIST] [--max-nmse X] [--max-nmse-kv X]\n"
            "                    [--timeout S] [--json FILE]\n"
            "       kvq accuracy --write-inputs DIR\n"
            "       kvq accuracy --outputs DIR [--bits LIST] [--max-nmse X] [--max-nmse-kv X] [--json FILE]\n"
            "  Scores a KV-cache format against the original fp32 data: the dequantized keys and values and the\n"
            "  attention output over them, by NMSE and max relative error, at each bit width, beside kvq's own\n"
            "  format and S17's peer formats at the same width. An accuracy score, not conformance.\n"
            "  --backend B        a built-in backend or a plugin .so: quantize_head, dequantize and (if it has it)\n"
            "                     attention_decode without RoPE, at each width of caps.uniform_bits; a backend of\n"
            "                     another format reads only the config's role and quantizer.bits\n"
            "  --write-inputs DIR  write the data (DIR/inputs.json and f32 arrays) for a kernel that cannot be linked\n"
            "  --outputs DIR      score its files: <point>.b<BITS>.keys.bin, .values.bin and optionally .out.bin\n"
            "  --bits LIST        only these widths, e.g. 4,8 (default: every width the source has)\n"
            "  --max-nmse X       fail when the attention NMSE of a width exceeds X (no default: kvq derives none)\n"
            "  --max-nmse-kv X    fail when the keys' or values' NMSE of a width exceeds X\n"
            "  --timeout S        seconds a width may take in the backend before it is killed (default %d; 0: none)\n"
            "  --json FILE        also write the scores as JSON (schema %s)\n"
            "  exit status: 0 scored (within the thresholds given), 1 a threshold exceeded, or the source failed,\n"
            "  crashed or hung at a width, or lacks one --bits asks for, 2 usage error or the backend could not be\n"
            "  loaded\n",
            DEFAULT_TIMEOUT, ACC_SCHEMA);
}

typedef struct accuracy_options {
    const char *backend, *outputs, *write_inputs, *json;
    uint32_t n_bits, bits[16];
    double max_nmse, max_nmse_kv;
    uint32_t timeout;
} accuracy_options;

static bool parse_bits(const char *text, accuracy_options *o)
{
    char copy[128];
    if (strlen(text) >= sizeof copy) return false;
    strcpy(copy, text);
    o->n_bits = 0;
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        uint32_t b;
        if (!cli_parse_u32(CMD, "--bits", item, 1, 16, &b)) return false;
        bool seen = false;
        for (uint32_t i = 0; i < o->n_bits; i++) seen = seen || o->bits[i] == b;
        if (!seen) o->bits[o->n_bits++] = b;
    }
    return o->n_bits > 0;
}

static bool parse_threshold(const char *option, const char *text, double *out)
{
    float v;
    if (!cli_parse_float(CMD, option, text, 0.0f, 1e30f, &v)) return false;
    *out = (double)v;
    return true;
}

static int parse_options(int argc, char **argv, accuracy_options *o)
{
    enum { OPT_BACKEND = 1, OPT_OUTPUTS, OPT_WRITE, OPT_BITS, OPT_MAX_NMSE, OPT_MAX_NMSE_KV, OPT_TIMEOUT, OPT_JSON,
           OPT_HELP };
    static const struct option options[] = {
        {"backend", required_argument, NULL, OPT_BACKEND},   {"outputs", required_argument, NULL, OPT_OUTPUTS},
        {"write-inputs", required_argument, NULL, OPT_WRITE}, {"bits", required_argument, NULL, OPT_BITS},
        {"max-nmse", required_argument, NULL, OPT_MAX_NMSE}, {"max-nmse-kv", required_argument, NULL, OPT_MAX_NMSE_KV},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},   {"json", required_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},               {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->max_nmse = o->max_nmse_kv = NAN;
    o->timeout = DEFAULT_TIMEOUT;
    int c;
    optind = 1;
    while ((c = cli_getopt(CMD, argc, argv, ":h", options)) != -1) {
        switch (c) {
        case -2: return CLI_USAGE;
        case 'h':
        case OPT_HELP: cli_usage_accuracy(stdout); return -1;
        case OPT_BACKEND: o->backend = optarg; break;
        case OPT_OUTPUTS: o->outputs = optarg; break;
        case OPT_WRITE: o->write_inputs = optarg; break;
        case OPT_JSON: o->json = optarg; break;
        case OPT_BITS:
            if (!parse_bits(optarg, o)) return cli_usage_error(CMD, "--bits '%s' is not a list of widths 1-16", optarg);
            break;
        case OPT_MAX_NMSE:
            if (!parse_threshold("--max-nmse", optarg, &o->max_nmse)) return CLI_USAGE;
            break;
        case OPT_MAX_NMSE_KV:
            if (!parse_threshold("--max-nmse-kv", optarg, &o->max_nmse_kv)) return CLI_USAGE;
            break;
        case OPT_TIMEOUT:
            if (!cli_parse_u32(CMD, "--timeout", optarg, 0, 86400, &o->timeout)) return CLI_USAGE;
            break;
        default: return cli_usage_error(CMD, "unexpected option");
        }
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    int sources = (o->backend != NULL) + (o->outputs != NULL) + (o->write_inputs != NULL);
    if (sources != 1)
        return cli_usage_error(CMD, "give exactly one of --backend NAME|PATH.so, --outputs DIR, --write-inputs DIR");
    if (o->write_inputs != NULL && (o->n_bits > 0 || o->json != NULL || !isnan(o->max_nmse) || !isnan(o->max_nmse_kv)))
        return cli_usage_error(CMD, "--write-inputs takes no other option");
    for (uint32_t i = 0; o->backend != NULL && i < o->n_bits; i++)
        if (o->bits[i] != 2 && o->bits[i] != 3 && o->bits[i] != 4 && o->bits[i] != 8)
            return cli_usage_error(CMD, "--bits %u: a backend's widths are those of caps.uniform_bits (2, 3, 4, 8)",
                                   o->bits[i]);
    return CLI_OK;
}

static bool is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Which widths are scored: --bits, else every width the source has. */
static int choose_bits(const accuracy_options *o, const acc_data *data, const acc_backend_info *info, acc_report *r)
{
    if (o->n_bits > 0) {
        r->n_bits = o->n_bits;
        memcpy(r->bits, o->bits, sizeof r->bits);
        return CLI_OK;
    }
    r->n_bits = 0;
    if (o->backend != NULL) {
        for (uint32_t b = 1; b <= 8; b++)
            if (info->uniform_bits & (1u << b)) r->bits[r->n_bits++] = b;
        return CLI_OK;
    }
    r->n_bits = acc_files_bits(data, o->outputs, r->bits);
    if (r->n_bits == 0) {
        const acc_point *p;
        acc_points(&p);
        fprintf(stderr,
                "kvq accuracy: error: %s holds no output files (e.g. %s.b4.keys.bin and %s.b4.values.bin; "
                "kvq accuracy --write-inputs DIR writes the inputs and inputs.json names them)\n",
                o->outputs, p[0].name, p[0].name);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cmd_accuracy(int argc, char **argv)
{
    accuracy_options o;
    int parsed = parse_options(argc, argv, &o);
    if (parsed != CLI_OK) return parsed < 0 ? CLI_OK : parsed;
    if (o.outputs != NULL && !is_directory(o.outputs))
        return cli_usage_error(CMD, "--outputs %s is not a directory", o.outputs);
    acc_data data;
    if (!acc_data_make(&data)) {
        fprintf(stderr, "kvq accuracy: error: KVQ_ERR_OUT_OF_MEMORY: cannot make the data\n");
        return CLI_FAILED;
    }
    if (o.write_inputs != NULL) {
        bool ok = acc_files_write_inputs(&data, o.write_inputs);
        if (ok) printf("kvq accuracy: wrote the inputs of %zu points into %s (described by %s/inputs.json)\n",
                       data.n_points, o.write_inputs, o.write_inputs);
        acc_data_free(&data);
        return ok ? CLI_OK : CLI_FAILED;
    }
    acc_report *r = calloc(1, sizeof *r);
    if (r == NULL) {
        acc_data_free(&data);
        fprintf(stderr, "kvq accuracy: error: KVQ_ERR_OUT_OF_MEMORY\n");
        return CLI_FAILED;
    }
    r->data = &data;
    r->max_nmse = o.max_nmse;
    r->max_nmse_kv = o.max_nmse_kv;
    r->from_files = o.outputs != NULL;
    snprintf(r->argument, sizeof r->argument, "%s", o.backend != NULL ? o.backend : o.outputs);
    acc_backend_info info;
    memset(&info, 0, sizeof info);
    int status = CLI_OK;
    if (o.backend != NULL) {
        if (!acc_backend_probe(o.backend, o.timeout, &info)) status = CLI_USAGE;
        snprintf(r->source, sizeof r->source, "backend %s (%s)", info.name, info.description);
        snprintf(r->device, sizeof r->device, "%s", info.device);
    } else {
        snprintf(r->source, sizeof r->source, "output files in %s", o.outputs);
    }
    if (status == CLI_OK) status = choose_bits(&o, &data, &info, r);
    if (status == CLI_OK) {
        for (uint32_t b = 0; b < r->n_bits; b++) {
            if (o.backend != NULL)
                acc_backend_row(r, o.backend, &info, r->bits[b], o.timeout);
            else
                acc_files_row(r, o.outputs, r->bits[b]);
            acc_reference_rows(r, r->bits[b]);
        }
        acc_report_text(stdout, r);
        char why[64];
        status = acc_report_failures(r, why, sizeof why) > 0 ? CLI_FAILED : CLI_OK;
        if (o.json != NULL && !acc_report_json(o.json, r)) status = CLI_USAGE;
    }
    free(r);
    acc_data_free(&data);
    return status;
}
