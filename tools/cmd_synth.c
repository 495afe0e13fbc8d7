/*
 * cmd_synth.c - `kvq synth`: write synthetic KV tensors (.kvt) made by
 * kvq_synth_kv (S14.3), one independent stream per (layer, head).
 *
 * Seeds: head h of layer l uses seed + 1000003 * (l * H + h) (mod 2^64),
 * where H is the number of heads. 1000003 is a prime larger than any
 * plausible layer*head count, so no two heads of one file share a stream and
 * a file with more layers or heads extends, rather than reshuffles, the one
 * with fewer layers (for the same H). The modality pattern depends only on
 * --image-run/--text-run, so every head gets the same one and the file stores
 * the modality of head (0, 0).
 */
#define _GNU_SOURCE
#include "cli_common.h"
#include "kvq/kvq_io.h"
#include "synth_build.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMD "synth"

void cli_usage_synth(FILE *out)
{
    fprintf(out,
            "usage: kvq synth -o OUT.kvt --layers L --heads H --tokens N --head-dim D --seed S\n"
            "                 [--outlier-channels K] [--tail-probability P] [--sink 0|1]\n"
            "                 [--image-run I --text-run T] [--dtype fp16|fp32] [--profile stress|realistic]\n"
            "  Writes L*H synthetic head slices of keys and values (kvq_synth_kv_profile, S14.3, S14.6).\n"
            "  Head h of layer l uses seed S + 1000003*(l*H + h).\n"
            "  --outlier-channels K  key channels with a large scale (default 2, at most D)\n"
            "  --tail-probability P  fraction of heavy-tailed elements, 0 .. 1 (default 0.01)\n"
            "  --sink 0|1            token 0 has a large norm (default 1)\n"
            "  --image-run I         image tokens per image (default 0: all text)\n"
            "  --text-run T          text tokens between images (default 0)\n"
            "  --dtype fp16|fp32     element type in the file (default fp16: values are rounded\n"
            "                        to fp16 with kvq_fp16_from_fp32)\n"
            "  --profile P           stress (S14.3, the default) or realistic (S14.6: a real model's\n"
            "                        statistics; use it with --outlier-channels 10 --tail-probability 0.000008)\n");
}

/* Fills every head slice of a new kvfile. The keys and values of one head are
 * made together by one kvq_synth_kv call. */
kvq_kvfile *cli_synth_build(const char *cmd, uint32_t layers, uint32_t heads, uint32_t tokens, uint32_t head_dim,
                            uint64_t seed, const kvq_synth_params *base, kvq_synth_profile profile, kvq_dtype dtype)
{
    kvq_kvfile *f = NULL;
    kvq_status st = kvq_kvfile_create(layers, heads, tokens, head_dim, dtype,
                                      KVQ_KVFILE_KEYS | KVQ_KVFILE_VALUES | KVQ_KVFILE_MODALITY |
                                          KVQ_KVFILE_POSITIONS,
                                      &f);
    if (st != KVQ_OK) {
        cli_fail(cmd, st);
        return NULL;
    }
    uint8_t *modality = cli_alloc(cmd, tokens, 1, "modality");
    if (modality == NULL) {
        kvq_kvfile_free(f);
        return NULL;
    }
    for (uint32_t l = 0; l < layers && st == KVQ_OK; l++) {
        for (uint32_t h = 0; h < heads && st == KVQ_OK; h++) {
            kvq_synth_params p = *base;
            p.n_tokens = tokens;
            p.head_dim = head_dim;
            /* Unsigned arithmetic wraps mod 2^64, as documented above. */
            p.seed = seed + UINT64_C(1000003) * ((uint64_t)l * heads + h);
            float *k = kvq_kvfile_slice(f, KVQ_ROLE_KEYS, l, h);
            float *v = kvq_kvfile_slice(f, KVQ_ROLE_VALUES, l, h);
            st = kvq_synth_kv_profile(&p, profile, k, v, modality);
            if (st != KVQ_OK) {
                cli_fail_at(cmd, st, "layer %u head %u: ", l, h);
                break;
            }
            if (l == 0 && h == 0) memcpy(f->modality, modality, tokens);
            if (dtype == KVQ_DTYPE_FP16) {
                /* The file stores fp16: round once to nearest (S2) so that the
                 * writer's exact-representability check holds. */
                size_t n = (size_t)tokens * head_dim;
                for (size_t i = 0; i < n; i++) {
                    k[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(k[i]));
                    v[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(v[i]));
                }
            }
        }
    }
    free(modality);
    if (st != KVQ_OK) {
        kvq_kvfile_free(f);
        return NULL;
    }
    return f;
}

/* `kvq synth`: the file above, written. */
static int synth_write(const char *path, uint32_t layers, uint32_t heads, uint32_t tokens, uint32_t head_dim,
                       uint64_t seed, const kvq_synth_params *base, kvq_synth_profile profile, kvq_dtype dtype)
{
    kvq_kvfile *f = cli_synth_build(CMD, layers, heads, tokens, head_dim, seed, base, profile, dtype);
    if (f == NULL) return CLI_FAILED;
    kvq_status st = kvq_kvfile_write(path, f);
    if (st != KVQ_OK) {
        kvq_kvfile_free(f);
        return cli_fail(CMD, st);
    }
    uint32_t n_image = 0;
    for (uint32_t t = 0; t < tokens; t++) n_image += f->modality[t] == KVQ_MODALITY_IMAGE;
    printf("synth: wrote %s: %u layers x %u heads x %u tokens x %u channels, %s, %u image / %u text tokens, "
           "seed %llu\n",
           path, layers, heads, tokens, head_dim, dtype == KVQ_DTYPE_FP16 ? "fp16" : "fp32", n_image,
           tokens - n_image, (unsigned long long)seed);
    kvq_kvfile_free(f);
    return CLI_OK;
}

enum { OPT_LAYERS = 1, OPT_HEADS, OPT_TOKENS, OPT_HEAD_DIM, OPT_SEED, OPT_OUTLIER_CHANNELS, OPT_TAIL, OPT_SINK,
       OPT_IMAGE_RUN, OPT_TEXT_RUN, OPT_DTYPE, OPT_PROFILE, OPT_HELP };

int cmd_synth(int argc, char **argv)
{
    static const struct option options[] = {
        {"output", required_argument, NULL, 'o'},
        {"layers", required_argument, NULL, OPT_LAYERS},
        {"heads", required_argument, NULL, OPT_HEADS},
        {"tokens", required_argument, NULL, OPT_TOKENS},
        {"head-dim", required_argument, NULL, OPT_HEAD_DIM},
        {"seed", required_argument, NULL, OPT_SEED},
        {"outlier-channels", required_argument, NULL, OPT_OUTLIER_CHANNELS},
        {"tail-probability", required_argument, NULL, OPT_TAIL},
        {"sink", required_argument, NULL, OPT_SINK},
        {"image-run", required_argument, NULL, OPT_IMAGE_RUN},
        {"text-run", required_argument, NULL, OPT_TEXT_RUN},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"profile", required_argument, NULL, OPT_PROFILE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL;
    uint32_t layers = 0, heads = 0, tokens = 0, head_dim = 0, dtype = 0, profile = 0;
    bool have_layers = false, have_heads = false, have_tokens = false, have_dim = false, have_seed = false;
    bool have_image = false, have_text = false;
    uint64_t seed = 0;
    kvq_synth_params p;
    memset(&p, 0, sizeof p);
    p.n_outlier_channels = 2;
    p.tail_probability = 0.01f;
    p.sink_token = 1;
    static const char *const dtypes[] = {"fp16", "fp32"};
    static const char *const profiles[] = {"stress", "realistic"}; /* kvq_synth_profile order */

    int c;
    optind = 1;
    while ((c = cli_getopt(CMD, argc, argv, ":o:h", options)) != -1) {
        bool ok = true;
        switch (c) {
        case -2: return CLI_USAGE;
        case 'h':
        case OPT_HELP: cli_usage_synth(stdout); return CLI_OK;
        case 'o': output = optarg; break;
        case OPT_LAYERS: ok = have_layers = cli_parse_u32(CMD, "--layers", optarg, 1, 65535, &layers); break;
        case OPT_HEADS: ok = have_heads = cli_parse_u32(CMD, "--heads", optarg, 1, 65535, &heads); break;
        case OPT_TOKENS: ok = have_tokens = cli_parse_u32(CMD, "--tokens", optarg, 1, KVQ_MAX_TOKENS, &tokens); break;
        case OPT_HEAD_DIM:
            ok = have_dim = cli_parse_u32(CMD, "--head-dim", optarg, 1, KVQ_MAX_HEAD_DIM, &head_dim);
            break;
        case OPT_SEED: ok = have_seed = cli_parse_u64(CMD, "--seed", optarg, &seed); break;
        case OPT_OUTLIER_CHANNELS:
            ok = cli_parse_u32(CMD, "--outlier-channels", optarg, 0, KVQ_MAX_HEAD_DIM, &p.n_outlier_channels);
            break;
        case OPT_TAIL: ok = cli_parse_float(CMD, "--tail-probability", optarg, 0.0f, 1.0f, &p.tail_probability); break;
        case OPT_SINK: ok = cli_parse_u32(CMD, "--sink", optarg, 0, 1, &p.sink_token); break;
        case OPT_IMAGE_RUN:
            ok = have_image = cli_parse_u32(CMD, "--image-run", optarg, 0, KVQ_MAX_TOKENS, &p.image_run);
            break;
        case OPT_TEXT_RUN:
            ok = have_text = cli_parse_u32(CMD, "--text-run", optarg, 0, KVQ_MAX_TOKENS, &p.text_run);
            break;
        case OPT_DTYPE: ok = cli_parse_choice(CMD, "--dtype", optarg, dtypes, 2, &dtype); break;
        case OPT_PROFILE: ok = cli_parse_choice(CMD, "--profile", optarg, profiles, 2, &profile); break;
        default: return cli_usage_error(CMD, "unexpected option");
        }
        if (!ok) return CLI_USAGE;
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (output == NULL) return cli_usage_error(CMD, "missing -o OUT.kvt");
    if (!have_layers) return cli_usage_error(CMD, "missing --layers");
    if (!have_heads) return cli_usage_error(CMD, "missing --heads");
    if (!have_tokens) return cli_usage_error(CMD, "missing --tokens");
    if (!have_dim) return cli_usage_error(CMD, "missing --head-dim");
    if (!have_seed) return cli_usage_error(CMD, "missing --seed");
    if (have_image != have_text) return cli_usage_error(CMD, "--image-run and --text-run go together");
    if (p.n_outlier_channels > head_dim)
        return cli_usage_error(CMD, "--outlier-channels %u is more than --head-dim %u", p.n_outlier_channels, head_dim);

    return synth_write(output, layers, heads, tokens, head_dim, seed, &p, (kvq_synth_profile)profile,
                       dtype == 0 ? KVQ_DTYPE_FP16 : KVQ_DTYPE_FP32);
}
