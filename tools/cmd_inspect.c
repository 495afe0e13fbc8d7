/*
 * cmd_inspect.c - `kvq inspect`: what a kvq file holds, as text or JSON.
 *
 *  .kvt  (S16.3): shape, modality counts, per (layer, head) statistics of keys
 *        and values, a histogram of each, and per-channel key absmax with the
 *        outlier channels (absmax above 4 x the head's median channel absmax).
 *  .kvqz (S16.5): per slice the configuration, precision counts (S10.5),
 *        outliers (S7) and bytes; with --against ORIGINAL.kvt the error of the
 *        dequantized values, per quantization group, in absolute terms and in
 *        units of the group's step (uniform schemes), checked against the S3.8
 *        bound, and the overall RMSE.
 *  .kvc  (S16.4): ranges and codebooks.
 * The kind is told by the file's magic (S16.2); the matching reader then
 * validates the whole file, so a damaged file fails with the reader's status.
 */
#define _GNU_SOURCE
#include "cli_common.h"
#include "inspect_attention.h"
#include "inspect_maps.h"
#include "kvq/kvq_io.h"
#include "kvq/kvq_rules.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CMD "inspect"

void cli_usage_inspect(FILE *out)
{
    fprintf(out,
            "usage: kvq inspect FILE [--against ORIGINAL.kvt] [--json] [--bins N]\n"
            "       kvq inspect FILE.kvqz --against ORIGINAL.kvt [--attention [--queries Q.kvt | --query-heads N\n"
            "                   --seed S] [--rope half|interleaved|none] [--rope-base B[,B...]]]\n"
            "                   [--svg DIR [--layer L] [--head H]]\n"
            "  FILE.kvt:  shape, modality counts, min/max/mean/std per layer and head, histograms of\n"
            "             keys and values, per-channel key absmax and outlier channels.\n"
            "  FILE.kvqz: configuration, precision counts, outliers, bytes; with --against, the\n"
            "             error of the dequantized values per group (uniform: in steps, checked against\n"
            "             the S3.8 bound; NUQ: in half-ranges, against the codebook's widest cell) and\n"
            "             the overall RMSE.\n"
            "  FILE.kvc:  calibration ranges and codebooks.\n"
            "  --json     the same as one JSON object\n"
            "  --bins N   histogram bins (default 20)\n"
            "  --attention     decode attention (S11) over the quantized cache against the original, per query\n"
            "                  head: output error and attention-weight shift (total variation)\n"
            "  --queries Q.kvt the queries: a .kvt whose keys are [layer][query head][position][channel]\n"
            "                  (query heads a multiple of the KV heads; positions, if any, are theirs);\n"
            "                  default: drawn, --query-heads N per KV head (default 1) from --seed S (default 1)\n"
            "  --rope R        half (default), interleaved or none (S9.1)\n"
            "  --rope-base B   RoPE base (default 10000): one value, or one per layer separated by commas\n"
            "  --svg DIR       figures into DIR: errors-layerL-headH.svg (|x| and error maps of keys and\n"
            "                  values of --layer L --head H, default 0 0); with --attention, attention.svg\n"
            "                  (error and weight shift per query head) and attention-weights.svg (the weights\n"
            "                  of the query head whose weights moved most)\n");
}

/* What --attention and --svg ask for (a .kvqz against its original). */
typedef struct inspect_options {
    const char *against;
    bool json;
    bool attention;
    const char *queries;  /* NULL: drawn */
    uint32_t query_heads; /* drawn queries per KV head */
    uint64_t seed;
    kvq_rope_pairing pairing;
    const char *rope_base; /* "B" or "B0,B1,..." */
    const char *svg_dir;
    uint32_t layer, head; /* the slice of the maps */
} inspect_options;

/* ------------------------------------------------------------ helpers -- */

/* JSON goes through the tools' one writer (tools/conform/json_write.h); numbers
 * with 9 significant digits, which round-trip every fp32 value. */

static const char *role_name(int role) { return role == KVQ_ROLE_KEYS ? "keys" : "values"; }

typedef struct stats {
    double min, max, sum, sum_sq;
    uint64_t count;
} stats;

static void stats_init(stats *s)
{
    s->min = INFINITY;
    s->max = -INFINITY;
    s->sum = s->sum_sq = 0.0;
    s->count = 0;
}

static void stats_add(stats *s, double x)
{
    if (x < s->min) s->min = x;
    if (x > s->max) s->max = x;
    s->sum += x;
    s->sum_sq += x * x;
    s->count++;
}

static double stats_mean(const stats *s) { return s->count ? s->sum / (double)s->count : 0.0; }

/* Population standard deviation; clamped at 0 against cancellation. */
static double stats_std(const stats *s)
{
    if (s->count == 0) return 0.0;
    double m = stats_mean(s);
    double v = s->sum_sq / (double)s->count - m * m;
    return v > 0.0 ? sqrt(v) : 0.0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Reads the first 4 bytes; "" when the file has fewer (the reader then reports why). */
static void read_magic(const char *path, char magic[5])
{
    memset(magic, 0, 5);
    FILE *f = fopen(path, "rb");
    if (f == NULL) return;
    if (fread(magic, 1, 4, f) != 4) magic[0] = '\0';
    fclose(f);
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* ---------------------------------------------------------------- .kvt -- */

static int inspect_kvt(const char *path, bool json, uint32_t bins)
{
    kvq_kvfile *f = NULL;
    kvq_status st = kvq_kvfile_read(path, &f);
    if (st != KVQ_OK) return cli_fail(CMD, st);
    uint32_t L = f->n_layers, H = f->n_heads, N = f->n_tokens, D = f->head_dim;
    size_t n = (size_t)N * D;
    uint32_t modality_count[3] = {0, 0, 0};
    if (f->modality)
        for (uint32_t t = 0; t < N; t++) modality_count[f->modality[t] < 3 ? f->modality[t] : 2]++;

    stats *slice = cli_alloc(CMD, (size_t)L * H * 2, sizeof *slice, "statistics");
    double *absmax = cli_alloc(CMD, (size_t)L * H * D, sizeof *absmax, "channel absmax");
    double *sorted = cli_alloc(CMD, D, sizeof *sorted, "channel absmax");
    uint64_t *hist = cli_alloc(CMD, (size_t)2 * bins, sizeof *hist, "histogram");
    if (!slice || !absmax || !sorted || !hist) {
        free(slice);
        free(absmax);
        free(sorted);
        free(hist);
        kvq_kvfile_free(f);
        return CLI_FAILED;
    }
    /* Statistics per slice, and each role's overall range for the histogram. */
    stats all[2];
    for (int r = 0; r < 2; r++) {
        stats_init(&all[r]);
        for (uint32_t l = 0; l < L; l++)
            for (uint32_t h = 0; h < H; h++) {
                stats *s = &slice[((size_t)l * H + h) * 2 + r];
                stats_init(s);
                const float *x = kvq_kvfile_slice(f, (kvq_role)r, l, h);
                if (x == NULL) continue;
                for (size_t i = 0; i < n; i++) {
                    stats_add(s, x[i]);
                    stats_add(&all[r], x[i]);
                }
            }
        /* Histogram over [min, max] of the role in `bins` equal bins; max falls in the last. */
        double lo = all[r].min, hi = all[r].max, width = (hi - lo) / bins;
        for (uint32_t l = 0; l < L; l++)
            for (uint32_t h = 0; h < H; h++) {
                const float *x = kvq_kvfile_slice(f, (kvq_role)r, l, h);
                if (x == NULL) continue;
                for (size_t i = 0; i < n; i++) {
                    uint32_t b = width > 0.0 ? (uint32_t)((x[i] - lo) / width) : 0;
                    hist[(size_t)r * bins + (b < bins ? b : bins - 1)]++;
                }
            }
    }
    /* Per-channel key absmax per head. */
    if (f->keys)
        for (uint32_t l = 0; l < L; l++)
            for (uint32_t h = 0; h < H; h++) {
                const float *x = kvq_kvfile_slice(f, KVQ_ROLE_KEYS, l, h);
                double *a = &absmax[((size_t)l * H + h) * D];
                for (uint32_t t = 0; t < N; t++)
                    for (uint32_t c = 0; c < D; c++) a[c] = fmax(a[c], fabs((double)x[(size_t)t * D + c]));
            }

    const char *dtype = f->dtype == KVQ_DTYPE_FP16 ? "fp16" : "fp32";
    if (json) {
        json_writer jw, *w = &jw;
        json_writer_init(w, stdout);
        json_write_object_inline(w, NULL);
        json_write_string(w, "kind", "kvt");
        json_write_string(w, "path", path);
        char spec[48];
        snprintf(spec, sizeof spec, "%u.%u.%u", f->spec_major, f->spec_minor, f->spec_patch);
        json_write_string(w, "spec", spec);
        json_write_u64(w, "n_layers", L);
        json_write_u64(w, "n_heads", H);
        json_write_u64(w, "n_tokens", N);
        json_write_u64(w, "head_dim", D);
        json_write_string(w, "dtype", dtype);
        json_write_bool(w, "has_keys", f->keys != NULL);
        json_write_bool(w, "has_values", f->values != NULL);
        json_write_bool(w, "has_modality", f->modality != NULL);
        json_write_bool(w, "has_positions", f->positions != NULL);
        json_write_object_inline(w, "modality");
        json_write_u64(w, "text", modality_count[0]);
        json_write_u64(w, "image", modality_count[1]);
        json_write_u64(w, "other", modality_count[2]);
        json_write_end(w);
        json_write_array_inline(w, "heads");
        for (uint32_t l = 0; l < L; l++)
            for (uint32_t h = 0; h < H; h++) {
                json_write_space(w, "\n  ");
                json_write_object_inline(w, NULL);
                json_write_u64(w, "layer", l);
                json_write_u64(w, "head", h);
                for (int r = 0; r < 2; r++) {
                    const stats *s = &slice[((size_t)l * H + h) * 2 + r];
                    if (s->count == 0) continue;
                    json_write_object_inline(w, role_name(r));
                    json_write_fp32(w, "min", s->min);
                    json_write_fp32(w, "max", s->max);
                    json_write_fp32(w, "mean", stats_mean(s));
                    json_write_fp32(w, "std", stats_std(s));
                    json_write_end(w);
                }
                if (f->keys) {
                    const double *a = &absmax[((size_t)l * H + h) * D];
                    memcpy(sorted, a, D * sizeof *sorted);
                    qsort(sorted, D, sizeof *sorted, compare_doubles);
                    double median = sorted[D / 2];
                    json_write_array_inline(w, "key_channel_absmax");
                    for (uint32_t c = 0; c < D; c++) json_write_fp32(w, NULL, a[c]);
                    json_write_end(w);
                    json_write_array_inline(w, "key_outlier_channels");
                    for (uint32_t c = 0; c < D; c++)
                        if (a[c] > 4.0 * median) json_write_u64(w, NULL, c);
                    json_write_end(w);
                }
                json_write_end(w);
            }
        json_write_end(w);
        json_write_space(w, "\n ");
        json_write_object_inline(w, "histogram");
        for (int r = 0; r < 2; r++) {
            if (all[r].count == 0) continue;
            json_write_object_inline(w, role_name(r));
            json_write_fp32(w, "lo", all[r].min);
            json_write_fp32(w, "hi", all[r].max);
            json_write_array_inline(w, "counts");
            for (uint32_t b = 0; b < bins; b++) json_write_u64(w, NULL, hist[(size_t)r * bins + b]);
            json_write_end(w);
            json_write_end(w);
        }
        json_write_end(w);
        json_write_end(w);
    } else {
        printf("%s: KV tensor file (spec %u.%u.%u)\n", path, f->spec_major, f->spec_minor, f->spec_patch);
        printf("shape: %u layers x %u heads x %u tokens x %u channels, dtype %s, arrays:%s%s%s%s\n", L, H, N, D,
               dtype, f->keys ? " keys" : "", f->values ? " values" : "", f->modality ? " modality" : "",
               f->positions ? " positions" : "");
        if (f->modality)
            printf("modality: text %u, image %u, other %u\n", modality_count[0], modality_count[1],
                   modality_count[2]);
        printf("\nlayer head role          min          max         mean          std\n");
        for (uint32_t l = 0; l < L; l++)
            for (uint32_t h = 0; h < H; h++)
                for (int r = 0; r < 2; r++) {
                    const stats *s = &slice[((size_t)l * H + h) * 2 + r];
                    if (s->count == 0) continue;
                    printf("%5u %4u %-6s %12.5g %12.5g %12.5g %12.5g\n", l, h, role_name(r), s->min, s->max,
                           stats_mean(s), stats_std(s));
                }
        for (int r = 0; r < 2; r++) {
            if (all[r].count == 0) continue;
            uint64_t peak = 1;
            for (uint32_t b = 0; b < bins; b++)
                if (hist[(size_t)r * bins + b] > peak) peak = hist[(size_t)r * bins + b];
            double width = (all[r].max - all[r].min) / bins;
            printf("\n%s histogram (all layers and heads, %u bins):\n", role_name(r), bins);
            for (uint32_t b = 0; b < bins; b++) {
                uint64_t count = hist[(size_t)r * bins + b];
                int bar = (int)((50 * count + peak - 1) / peak); /* any non-empty bin shows */
                printf("  [%11.4g, %11.4g%c %10llu %.*s\n", all[r].min + b * width, all[r].min + (b + 1) * width,
                       b + 1 == bins ? ']' : ')', (unsigned long long)count, bar,
                       "##################################################");
            }
        }
        if (f->keys) {
            printf("\nkey channel absmax (outlier channels: absmax > 4 x the head's median channel absmax):\n");
            for (uint32_t l = 0; l < L; l++)
                for (uint32_t h = 0; h < H; h++) {
                    const double *a = &absmax[((size_t)l * H + h) * D];
                    memcpy(sorted, a, D * sizeof *sorted);
                    qsort(sorted, D, sizeof *sorted, compare_doubles);
                    double median = sorted[D / 2];
                    printf("  layer %u head %u: median %.4g, max %.4g; outlier channels:", l, h, median,
                           sorted[D - 1]);
                    uint32_t k = 0;
                    for (uint32_t c = 0; c < D; c++)
                        if (a[c] > 4.0 * median) {
                            printf(" %u (%.4g)", c, a[c]);
                            k++;
                        }
                    printf("%s\n", k ? "" : " none");
                }
        }
    }
    free(slice);
    free(absmax);
    free(sorted);
    free(hist);
    kvq_kvfile_free(f);
    return CLI_OK;
}

/* ------------------------------------------- --attention and --svg -- */

/* Each layer's RoPE from --rope and --rope-base (one base, or one per layer); an exit status. */
static int parse_ropes(const inspect_options *o, uint32_t n_layers, kvq_rope *rope)
{
    const char *text = o->rope_base != NULL ? o->rope_base : "10000";
    size_t len = strlen(text);
    char *copy = cli_alloc(CMD, len + 1, 1, "--rope-base");
    float *base = cli_alloc(CMD, n_layers, sizeof *base, "--rope-base");
    int rc = copy != NULL && base != NULL ? CLI_OK : CLI_FAILED;
    uint32_t n = 0;
    if (rc == CLI_OK) memcpy(copy, text, len + 1);
    for (char *save = NULL, *item = rc == CLI_OK ? strtok_r(copy, ",", &save) : NULL; item != NULL && rc == CLI_OK;
         item = strtok_r(NULL, ",", &save)) {
        float value;
        if (!cli_parse_float(CMD, "--rope-base", item, 1.0f, 1e30f, &value))
            rc = CLI_USAGE;
        else if (!(value > 1.0f))
            rc = cli_usage_error(CMD, "--rope-base %s must be greater than 1 (S9.1)", item);
        if (n < n_layers) base[n] = value; /* beyond n_layers only counted, for the message */
        n++;
    }
    if (rc == CLI_OK && n != 1 && n != n_layers)
        rc = cli_error(CMD, KVQ_ERR_SIZE_MISMATCH,
                       "--rope-base has %u values; the cache has %u layers (give one base for every layer, or one "
                       "per layer)", n, n_layers);
    for (uint32_t l = 0; rc == CLI_OK && l < n_layers; l++) {
        rope[l].pairing = o->pairing;
        rope[l].base = base[n == 1 ? 0 : l];
    }
    free(copy);
    free(base);
    return rc;
}

typedef struct attention_run {
    kvq_rope *rope;
    attn_queries queries;
    attn_report report;
} attention_run;

static void attention_free(attention_run *a)
{
    free(a->rope);
    attn_queries_free(&a->queries);
    attn_report_free(&a->report);
}

/* Everything --attention computes, before anything is printed. */
static int attention_prepare(const kvq_qfile *qf, const kvq_kvfile *orig, const inspect_options *o, attention_run *a)
{
    memset(a, 0, sizeof *a);
    a->rope = cli_alloc(CMD, orig->n_layers, sizeof *a->rope, "RoPE settings");
    if (a->rope == NULL) return CLI_FAILED;
    int rc = parse_ropes(o, orig->n_layers, a->rope);
    if (rc != CLI_OK) {
        attention_free(a);
        return rc;
    }
    char why[1024] = "";
    kvq_status st = o->queries != NULL ? attn_queries_read(o->queries, orig, &a->queries, why, sizeof why)
                                       : attn_queries_draw(orig, o->query_heads, o->seed, &a->queries, why, sizeof why);
    if (st == KVQ_OK) st = attn_measure(qf, orig, &a->queries, a->rope, &a->report, why, sizeof why);
    if (st != KVQ_OK) {
        attention_free(a);
        return cli_error(CMD, st, "--attention: %s", why);
    }
    return CLI_OK;
}

/* DIR/errors-layerL-headH.svg and, with --attention, DIR/attention.svg and DIR/attention-weights.svg. */
static int write_figures(const char *path, const kvq_qfile *qf, const kvq_kvfile *orig, const inspect_options *o,
                         const attention_run *a)
{
    uint32_t N = orig->n_tokens, D = orig->head_dim;
    if (o->layer >= orig->n_layers || o->head >= orig->n_heads)
        return cli_error(CMD, KVQ_ERR_BAD_ARGUMENT, "--layer %u --head %u: the file has %u layers x %u heads", o->layer,
                         o->head, orig->n_layers, orig->n_heads);
    if (mkdir(o->svg_dir, 0777) != 0 && errno != EEXIST)
        return cli_error(CMD, KVQ_ERR_IO, "--svg %s: cannot create the directory: %s", o->svg_dir, strerror(errno));
    float *kd = cli_alloc(CMD, (size_t)N * D, sizeof *kd, "dequantized keys");
    float *vd = cli_alloc(CMD, (size_t)N * D, sizeof *vd, "dequantized values");
    int rc = kd != NULL && vd != NULL ? CLI_OK : CLI_FAILED;
    kvq_status st = KVQ_OK;
    if (rc == CLI_OK) st = kvq_dequantize_head(*kvq_qfile_slot(qf, o->layer, o->head, KVQ_ROLE_KEYS), kd);
    if (rc == CLI_OK && st == KVQ_OK) st = kvq_dequantize_head(*kvq_qfile_slot(qf, o->layer, o->head, KVQ_ROLE_VALUES), vd);
    if (st != KVQ_OK) rc = cli_fail(CMD, st);
    char file[4300], title[256], subtitle[512];
    if (rc == CLI_OK) {
        const kvq_qtensor *kq = *kvq_qfile_slot(qf, o->layer, o->head, KVQ_ROLE_KEYS),
                          *vq = *kvq_qfile_slot(qf, o->layer, o->head, KVQ_ROLE_VALUES);
        snprintf(file, sizeof file, "%s/errors-layer%u-head%u.svg", o->svg_dir, o->layer, o->head);
        snprintf(title, sizeof title, "%s, layer %u head %u: magnitudes and quantization error", path, o->layer,
                 o->head);
        snprintf(subtitle, sizeof subtitle, "keys %s %u-bit %s, values %s %u-bit (group %u); %u tokens x %u channels",
                 cli_scheme_name(kq->scheme), kq->bits, cli_key_mode_name(kq->key_mode), cli_scheme_name(vq->scheme),
                 vq->bits, vq->group_size, N, D);
        if (!maps_write_slice(file, title, subtitle, kvq_kvfile_slice(orig, KVQ_ROLE_KEYS, o->layer, o->head), kd,
                              kvq_kvfile_slice(orig, KVQ_ROLE_VALUES, o->layer, o->head), vd, N, D))
            rc = CLI_FAILED;
    }
    if (rc == CLI_OK && a != NULL && a->report.n > 0) {
        figure *f = cli_alloc(CMD, 1, sizeof *f, "figure");
        double *wo = cli_alloc(CMD, N, sizeof *wo, "weights"), *wq = cli_alloc(CMD, N, sizeof *wq, "weights");
        rc = f != NULL && wo != NULL && wq != NULL ? CLI_OK : CLI_FAILED;
        if (rc == CLI_OK) {
            snprintf(title, sizeof title, "%s: what quantization changes in decode attention", path);
            attn_figure_init(f, &a->queries, title);
            const char *base = strrchr(path, '/');
            attn_figure_add(f, &a->report, &a->queries, base != NULL ? base + 1 : path);
            snprintf(file, sizeof file, "%s/attention.svg", o->svg_dir);
            if (!fig_write(f, file)) rc = CLI_FAILED;
            fig_free(f);
        }
        /* the weights of the query head whose weights moved most */
        const attn_row *worst = &a->report.row[0];
        for (size_t i = 1; i < a->report.n; i++)
            if (a->report.row[i].tv > worst->tv) worst = &a->report.row[i];
        char why[1024];
        if (rc == CLI_OK) {
            st = attn_weights(qf, orig, &a->queries, a->rope, worst, wo, wq, why, sizeof why);
            if (st != KVQ_OK) rc = cli_error(CMD, st, "%s", why);
        }
        if (rc == CLI_OK) {
            fig_init(f, 1, 1, PLOT_LINEAR, PLOT_LINEAR);
            snprintf(f->title, sizeof f->title, "%s: attention weights of layer %u query head %u (largest shift)", path,
                     worst->layer, worst->q_head);
            snprintf(f->subtitle, sizeof f->subtitle, "position %u; total variation %.4g; weight on token 0: %.4g "
                     "(original), %.4g (quantized)", worst->position, worst->tv, worst->w0_orig, worst->w0_quant);
            snprintf(f->x_label, sizeof f->x_label, "token");
            snprintf(f->y_label, sizeof f->y_label, "attention weight");
            f->panel_width = 720.0;
            /* the quantized cache first, so that the original's dashes stay visible on top */
            size_t sq = fig_style_of(f, "quantized cache", false), so = fig_style_of(f, "original cache", true);
            f->style[so].no_marker = f->style[sq].no_marker = true;
            for (uint32_t t = 0; t < N; t++) {
                fig_add(f, 0, so, t, wo[t]);
                fig_add(f, 0, sq, t, wq[t]);
            }
            snprintf(file, sizeof file, "%s/attention-weights.svg", o->svg_dir);
            if (!fig_write(f, file)) rc = CLI_FAILED;
            fig_free(f);
        }
        free(f);
        free(wo);
        free(wq);
    }
    free(kd);
    free(vd);
    return rc;
}

/* --------------------------------------------------------------- .kvqz -- */

/* S4.4: the index into qt->params of element (t, c)'s group. */
static size_t param_index(const kvq_qtensor *qt, uint32_t t, uint32_t c)
{
    return kvq_param_index(kvq_param_layout_of(qt->role, qt->key_mode), qt->group_size, qt->head_dim, t, c);
}

/* S4.4: mark[t * head_dim + c] = 1 for every stored outlier. */
static void mark_outliers(const kvq_qtensor *qt, uint8_t *mark)
{
    uint32_t d = qt->head_dim;
    if (qt->role == KVQ_ROLE_VALUES) {
        for (uint32_t t = 0; t < qt->n_tokens; t++)
            for (uint32_t k = qt->outlier_ptr[t]; k < qt->outlier_ptr[t + 1]; k++)
                mark[(size_t)t * d + qt->outlier_index[k]] = 1;
    } else {
        for (uint32_t c = 0; c < d; c++)
            for (uint32_t k = qt->outlier_ptr[c]; k < qt->outlier_ptr[c + 1]; k++)
                mark[(size_t)qt->outlier_index[k] * d + c] = 1;
    }
}

/* Bytes a qtensor's arrays take (S4.4): codes, group parameters, fp16 rows,
 * outliers with their index and pointer arrays, and one precision byte per token. */
static uint64_t payload_bytes(const kvq_qtensor *qt)
{
    uint64_t ptrs = qt->role == KVQ_ROLE_VALUES ? (uint64_t)qt->n_tokens + 1 : (uint64_t)qt->head_dim + 1;
    return (uint64_t)qt->n_tokens * qt->row_bytes + (uint64_t)qt->n_params * 4 +
           (uint64_t)qt->n_fp16_rows * qt->head_dim * 2 + (uint64_t)qt->n_outliers * 6 + ptrs * 4 + qt->n_tokens;
}

/* Error of one slice against its original. Dense elements are measured in
 * units of their group's b: the step of a uniform scheme (S3.8 bounds the
 * error by half of it), the half-range of NUQ (S6.3: the codebook's widest
 * cell bounds it, see codebook_allowance). */
typedef struct slice_error {
    uint64_t dense, fp16_stored, violations; /* violations: S3.8 (uniform) */
    uint64_t nuq_over;                       /* NUQ: dense elements above the codebook's bound */
    double sum_sq, max_abs, max_steps, fp16_max_abs;
    double max_half_ranges, allowance; /* NUQ: worst error / b, and the codebook's bound in units of b */
    size_t worst_group;
    bool uniform, nuq; /* which kinds of slices were measured (overall: any of them) */
    double *group_max_abs;   /* [n_params] */
    double *group_max_steps; /* [n_params]; error / b, in steps (uniform) or half-ranges (NUQ); -1 where b = 0 */
} slice_error;

/* S6.4/S6.5: a dense element of a NUQ group is normalized into [-1, 1] by the
 * group's centre a and half-range b and decodes to the nearest signpost, so
 * its error is at most b times the largest distance from a point of [-1, 1]
 * to its nearest signpost: half the widest gap between neighbours, or the
 * distance from an end of [-1, 1] to the outermost signpost (0 for
 * NormalFloat, whose signposts end at -1 and 1; not for every k-means codebook). */
static double codebook_allowance(const kvq_codebook *cb)
{
    uint32_t L = 1u << cb->bits;
    double worst = fmax(1.0 + cb->signpost[0], 1.0 - cb->signpost[L - 1]);
    for (uint32_t j = 0; j + 1 < L; j++)
        worst = fmax(worst, 0.5 * ((double)cb->signpost[j + 1] - (double)cb->signpost[j]));
    return worst;
}

/* The NUQ bound with S3.8's slack for the fp32 roundings of thresholds and decode:
 * |x - y| <= b * allowance * (1 + 2^-20) + ulp32(|x| + b). Informative (the spec
 * bounds uniform codes only, S3.8); clamped calibrated keys (S7.3) exceed it
 * beyond their channel's range, as they must. */
static bool within_codebook_bound(float x, float y, float b, double allowance)
{
    float v = fabsf(x) + b;
    double ulp = (double)nextafterf(v, INFINITY) - (double)v;
    return fabs((double)x - (double)y) <= (double)b * allowance * (1.0 + ldexp(1.0, -20)) + ulp;
}

/* S3.8: |x - y| <= b/2 (1 + 2^-20) + ulp32(|x| + b)/2, with ulp32(v) the gap above v. */
static bool within_step_bound(float x, float y, float b)
{
    float v = fabsf(x) + b;
    double ulp = (double)nextafterf(v, INFINITY) - (double)v;
    double bound = (double)b / 2.0 * (1.0 + ldexp(1.0, -20)) + ulp / 2.0;
    return fabs((double)x - (double)y) <= bound;
}

static void measure(const kvq_qtensor *qt, const float *x, const float *y, const uint8_t *mark, slice_error *e)
{
    uint32_t D = qt->head_dim;
    bool uniform = qt->scheme != KVQ_SCHEME_NUQ;
    e->uniform = uniform;
    e->nuq = !uniform;
    if (!uniform) e->allowance = codebook_allowance(&qt->codebook);
    for (uint32_t g = 0; g < qt->n_params; g++) {
        e->group_max_abs[g] = 0.0;
        e->group_max_steps[g] = -1.0;
    }
    for (uint32_t t = 0; t < qt->n_tokens; t++) {
        for (uint32_t c = 0; c < D; c++) {
            size_t i = (size_t)t * D + c;
            double err = fabs((double)x[i] - (double)y[i]);
            e->sum_sq += err * err;
            if (err > e->max_abs) e->max_abs = err;
            if (qt->precision[t] != KVQ_PREC_QUANTIZED || mark[i]) {
                /* Stored in fp16: the error is the one fp16 rounding of x. */
                e->fp16_stored++;
                if (err > e->fp16_max_abs) e->fp16_max_abs = err;
                continue;
            }
            e->dense++;
            size_t g = param_index(qt, t, c);
            if (err > e->group_max_abs[g]) e->group_max_abs[g] = err;
            float b = kvq_fp32_from_fp16(qt->params[g].b);
            if (!uniform) {
                if (!within_codebook_bound(x[i], y[i], b, e->allowance)) e->nuq_over++;
                if (b > 0.0f) {
                    double half_ranges = err / (double)b;
                    if (half_ranges > e->group_max_steps[g]) e->group_max_steps[g] = half_ranges;
                    if (half_ranges > e->max_half_ranges) {
                        e->max_half_ranges = half_ranges;
                        e->worst_group = g;
                    }
                }
                continue;
            }
            if (!within_step_bound(x[i], y[i], b)) e->violations++;
            if (b > 0.0f) {
                double steps = err / (double)b;
                if (steps > e->group_max_steps[g]) e->group_max_steps[g] = steps;
                if (steps > e->max_steps) {
                    e->max_steps = steps;
                    e->worst_group = g;
                }
            }
        }
    }
}

static void codebook_json(json_writer *w, const char *key, const kvq_codebook *cb)
{
    json_write_array_inline(w, key);
    for (uint32_t j = 0; j < (1u << cb->bits); j++) json_write_fp32(w, NULL, cb->signpost[j]);
    json_write_end(w);
}

/* {"quantized": n, "sink": n, ...}: token rows of each precision (S10.5). */
static void precision_json(json_writer *w, const uint64_t count[5])
{
    json_write_object_inline(w, "precision");
    for (int k = 0; k < 5; k++) json_write_u64(w, cli_precision_name((kvq_precision)k), count[k]);
    json_write_end(w);
}

static int inspect_kvqz(const char *path, const inspect_options *o)
{
    const char *against = o->against;
    bool json = o->json;
    kvq_qfile *qf = NULL;
    kvq_status st = kvq_qfile_read(path, &qf);
    if (st != KVQ_OK) return cli_fail(CMD, st);
    uint32_t L = qf->n_layers, H = qf->n_heads, N = qf->n_tokens, D = qf->head_dim;
    size_t n = (size_t)N * D;
    kvq_kvfile *orig = NULL;
    if (against != NULL) {
        st = kvq_kvfile_read(against, &orig);
        if (st != KVQ_OK) {
            kvq_qfile_free(qf);
            return cli_fail(CMD, st);
        }
        if (orig->n_layers != L || orig->n_heads != H || orig->n_tokens != N || orig->head_dim != D ||
            orig->keys == NULL || orig->values == NULL) {
            cli_error(CMD, KVQ_ERR_SIZE_MISMATCH,
                      "%s: shape %u x %u x %u x %u%s does not match %s's %u x %u x %u x %u", against,
                      orig->n_layers, orig->n_heads, orig->n_tokens, orig->head_dim,
                      orig->keys && orig->values ? "" : " (without keys or values)", path, L, H, N, D);
            kvq_kvfile_free(orig);
            kvq_qfile_free(qf);
            return CLI_FAILED;
        }
    }
    attention_run attention;
    memset(&attention, 0, sizeof attention);
    if (o->attention) { /* computed before anything is printed: a failure prints no report */
        int arc = attention_prepare(qf, orig, o, &attention);
        if (arc != CLI_OK) {
            kvq_kvfile_free(orig);
            kvq_qfile_free(qf);
            return arc;
        }
    }
    float *y = cli_alloc(CMD, n, sizeof *y, "dequantized slice");
    uint8_t *mark = cli_alloc(CMD, n, 1, "outlier marks");
    if (y == NULL || mark == NULL) {
        free(y);
        free(mark);
        attention_free(&attention);
        kvq_kvfile_free(orig);
        kvq_qfile_free(qf);
        return CLI_FAILED;
    }

    uint64_t prec_total[5] = {0, 0, 0, 0, 0}, outliers_total = 0, payload_total = 0;
    slice_error overall;
    memset(&overall, 0, sizeof overall);
    json_writer jw, *w = &jw;
    json_writer_init(w, stdout);
    if (json) {
        json_write_object_inline(w, NULL);
        json_write_string(w, "kind", "kvqz");
        json_write_string(w, "path", path);
        json_write_u64(w, "n_layers", L);
        json_write_u64(w, "n_heads", H);
        json_write_u64(w, "n_tokens", N);
        json_write_u64(w, "head_dim", D);
        json_write_array_inline(w, "slices");
    } else {
        printf("%s: quantized KV file\nshape: %u layers x %u heads x %u tokens x %u channels\n", path, L, H, N, D);
        printf("\nlayer head role   scheme bits keys-mode  group quantized sink policy window residual  "
               "outliers    rate   bytes\n");
    }
    int rc = CLI_OK;
    for (uint32_t l = 0; l < L && rc == CLI_OK; l++) {
        for (uint32_t h = 0; h < H && rc == CLI_OK; h++) {
            for (int r = 0; r < 2; r++) {
                const kvq_qtensor *qt = *kvq_qfile_slot(qf, l, h, (kvq_role)r);
                uint64_t prec[5] = {0, 0, 0, 0, 0};
                for (uint32_t t = 0; t < N; t++)
                    if (qt->precision[t] < 5) prec[qt->precision[t]]++;
                for (int k = 0; k < 5; k++) prec_total[k] += prec[k];
                outliers_total += qt->n_outliers;
                uint64_t bytes = payload_bytes(qt);
                payload_total += bytes;
                double rate = n ? (double)qt->n_outliers / (double)n : 0.0;
                const char *mode = r == KVQ_ROLE_KEYS ? cli_key_mode_name(qt->key_mode) : "-";

                slice_error e;
                memset(&e, 0, sizeof e);
                if (orig != NULL) {
                    e.group_max_abs = cli_alloc(CMD, qt->n_params, sizeof(double), "group errors");
                    e.group_max_steps = cli_alloc(CMD, qt->n_params, sizeof(double), "group errors");
                    st = e.group_max_abs && e.group_max_steps ? kvq_dequantize_head(qt, y) : KVQ_ERR_OUT_OF_MEMORY;
                    if (st != KVQ_OK) {
                        if (st != KVQ_ERR_OUT_OF_MEMORY)
                            cli_fail_at(CMD, st, "layer %u head %u %s: ", l, h, role_name(r));
                        free(e.group_max_abs);
                        free(e.group_max_steps);
                        rc = CLI_FAILED;
                        break;
                    }
                    memset(mark, 0, n);
                    mark_outliers(qt, mark);
                    measure(qt, kvq_kvfile_slice(orig, (kvq_role)r, l, h), y, mark, &e);
                    overall.dense += e.dense;
                    overall.fp16_stored += e.fp16_stored;
                    overall.violations += e.violations;
                    overall.sum_sq += e.sum_sq;
                    overall.max_abs = fmax(overall.max_abs, e.max_abs);
                    overall.max_steps = fmax(overall.max_steps, e.max_steps);
                    overall.max_half_ranges = fmax(overall.max_half_ranges, e.max_half_ranges);
                    overall.allowance = fmax(overall.allowance, e.allowance);
                    overall.nuq_over += e.nuq_over;
                    overall.uniform = overall.uniform || e.uniform;
                    overall.nuq = overall.nuq || e.nuq;
                    overall.fp16_max_abs = fmax(overall.fp16_max_abs, e.fp16_max_abs);
                }

                if (json) {
                    json_write_space(w, "\n  ");
                    json_write_object_inline(w, NULL);
                    json_write_u64(w, "layer", l);
                    json_write_u64(w, "head", h);
                    json_write_string(w, "role", role_name(r));
                    json_write_string(w, "scheme", cli_scheme_name(qt->scheme));
                    json_write_u64(w, "bits", qt->bits);
                    json_write_string(w, "key_mode", r == KVQ_ROLE_KEYS ? mode : NULL);
                    json_write_u64(w, "group_size", qt->group_size);
                    json_write_u64(w, "n_params", qt->n_params);
                    precision_json(w, prec);
                    json_write_u64(w, "fp16_rows", qt->n_fp16_rows);
                    json_write_u64(w, "outliers", qt->n_outliers);
                    json_write_fp32(w, "outlier_rate", rate);
                    json_write_u64(w, "payload_bytes", bytes);
                    if (qt->scheme == KVQ_SCHEME_NUQ) codebook_json(w, "codebook", &qt->codebook);
                    if (orig != NULL) {
                        json_write_object_inline(w, "error");
                        json_write_u64(w, "dense_elements", e.dense);
                        json_write_u64(w, "fp16_elements", e.fp16_stored);
                        json_write_fp32(w, "rmse", n ? sqrt(e.sum_sq / (double)n) : 0.0);
                        json_write_fp32(w, "max_abs", e.max_abs);
                        json_write_fp32(w, "fp16_max_abs", e.fp16_max_abs);
                        if (qt->scheme != KVQ_SCHEME_NUQ) {
                            json_write_fp32(w, "max_steps", e.max_steps);
                            json_write_u64(w, "worst_group", e.worst_group);
                            json_write_u64(w, "bound_violations", e.violations);
                        } else {
                            json_write_fp32(w, "max_half_ranges", e.max_half_ranges);
                            json_write_fp32(w, "codebook_allowance", e.allowance);
                            json_write_u64(w, "worst_group", e.worst_group);
                            json_write_u64(w, "above_codebook_bound", e.nuq_over);
                        }
                        json_write_array_inline(w, "group_max_abs");
                        for (uint32_t g = 0; g < qt->n_params; g++) json_write_fp32(w, NULL, e.group_max_abs[g]);
                        json_write_end(w);
                        /* a group with nothing dense to measure has no error in steps: null */
                        json_write_array_inline(w, qt->scheme != KVQ_SCHEME_NUQ ? "group_max_steps"
                                                                                : "group_max_half_ranges");
                        for (uint32_t g = 0; g < qt->n_params; g++) {
                            if (e.group_max_steps[g] < 0.0)
                                json_write_null(w, NULL);
                            else
                                json_write_fp32(w, NULL, e.group_max_steps[g]);
                        }
                        json_write_end(w);
                        json_write_end(w);
                    }
                    json_write_end(w);
                } else {
                    char group[16];
                    snprintf(group, sizeof group, "%u", qt->group_size);
                    printf("%5u %4u %-6s %-6s %4u %-10s %5s %9llu %4llu %6llu %6llu %8llu %9u %6.3f%% %7llu\n", l,
                           h, role_name(r), cli_scheme_name(qt->scheme), qt->bits, mode,
                           r == KVQ_ROLE_KEYS && qt->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED ? "-" : group,
                           (unsigned long long)prec[0], (unsigned long long)prec[1], (unsigned long long)prec[2],
                           (unsigned long long)prec[3], (unsigned long long)prec[4], qt->n_outliers, 100.0 * rate,
                           (unsigned long long)bytes);
                    if (qt->scheme == KVQ_SCHEME_NUQ) {
                        printf("      codebook:");
                        for (uint32_t j = 0; j < (1u << qt->codebook.bits); j++) printf(" %.6g", qt->codebook.signpost[j]);
                        printf("\n");
                    }
                    if (orig != NULL) {
                        printf("      error: %u groups, max abs %.6g", qt->n_params, e.max_abs);
                        if (qt->scheme != KVQ_SCHEME_NUQ)
                            printf(", max %.6f steps (group %zu), S3.8 bound violations %llu", e.max_steps,
                                   e.worst_group, (unsigned long long)e.violations);
                        else
                            printf(", max %.6f of the half-range b (group %zu; the codebook allows %.6f), above "
                                   "that bound %llu",
                                   e.max_half_ranges, e.worst_group, e.allowance, (unsigned long long)e.nuq_over);
                        printf(", fp16-stored max abs %.6g, rmse %.6g\n", e.fp16_max_abs,
                               n ? sqrt(e.sum_sq / (double)n) : 0.0);
                    }
                }
                free(e.group_max_abs);
                free(e.group_max_steps);
            }
        }
    }
    if (rc == CLI_OK) {
        uint64_t elements = (uint64_t)L * H * 2 * n, size = file_size(path);
        double rmse = elements ? sqrt(overall.sum_sq / (double)elements) : 0.0;
        if (json) {
            json_write_end(w); /* slices */
            json_write_space(w, "\n ");
            precision_json(w, prec_total);
            json_write_u64(w, "outliers", outliers_total);
            json_write_fp32(w, "outlier_rate", elements ? (double)outliers_total / (double)elements : 0.0);
            json_write_u64(w, "payload_bytes", payload_total);
            json_write_u64(w, "file_bytes", size);
            json_write_u64(w, "fp16_bytes", elements * 2);
            if (orig != NULL) {
                json_write_object_inline(w, "error");
                json_write_string(w, "against", against);
                json_write_fp32(w, "rmse", rmse);
                json_write_fp32(w, "max_abs", overall.max_abs);
                if (overall.uniform)
                    json_write_fp32(w, "max_steps", overall.max_steps);
                else
                    json_write_null(w, "max_steps");
                if (overall.nuq)
                    json_write_fp32(w, "max_half_ranges", overall.max_half_ranges);
                else
                    json_write_null(w, "max_half_ranges");
                json_write_u64(w, "above_codebook_bound", overall.nuq_over);
                json_write_fp32(w, "fp16_max_abs", overall.fp16_max_abs);
                json_write_u64(w, "bound_violations", overall.violations);
                json_write_end(w);
            }
            if (o->attention) {
                json_write_space(w, "\n ");
                attn_print_json(w, "attention", &attention.report, &attention.queries, attention.rope);
            }
            json_write_end(w);
        } else {
            printf("\ntotal: token rows quantized %llu, sink %llu, policy %llu, window %llu, residual %llu\n",
                   (unsigned long long)prec_total[0], (unsigned long long)prec_total[1],
                   (unsigned long long)prec_total[2], (unsigned long long)prec_total[3],
                   (unsigned long long)prec_total[4]);
            printf("outliers: %llu of %llu elements (%.4f%%)\n", (unsigned long long)outliers_total,
                   (unsigned long long)elements, elements ? 100.0 * (double)outliers_total / (double)elements : 0.0);
            printf("bytes: file %llu, payload %llu, fp16 equivalent %llu (ratio %.3fx)\n", (unsigned long long)size,
                   (unsigned long long)payload_total, (unsigned long long)(elements * 2),
                   size ? (double)(elements * 2) / (double)size : 0.0);
            if (orig != NULL) {
                /* Steps are the unit of uniform slices only; NUQ errors are in half-ranges (S6.3). */
                printf("overall: rmse %.6g, max abs error %.6g", rmse, overall.max_abs);
                if (overall.uniform) printf(", max error in steps %.6f", overall.max_steps);
                if (overall.nuq)
                    printf(", NUQ max error %.6f of the half-range (codebooks allow up to %.6f), above that bound "
                           "%llu",
                           overall.max_half_ranges, overall.allowance, (unsigned long long)overall.nuq_over);
                printf(", fp16-stored max abs error %.6g", overall.fp16_max_abs);
                if (overall.uniform) printf(", step bound violations %llu", (unsigned long long)overall.violations);
                printf("\n");
            }
            if (o->attention) attn_print_text(&attention.report, &attention.queries, attention.rope, N);
        }
    }
    if (rc == CLI_OK && o->svg_dir != NULL) rc = write_figures(path, qf, orig, o, o->attention ? &attention : NULL);
    attention_free(&attention);
    free(y);
    free(mark);
    kvq_kvfile_free(orig);
    kvq_qfile_free(qf);
    return rc;
}

/* ---------------------------------------------------------------- .kvc -- */

static int inspect_kvc(const char *path, bool json)
{
    kvq_calibration *c = NULL;
    kvq_status st = kvq_calibration_read(path, &c);
    if (st != KVQ_OK) return cli_fail(CMD, st);
    if (json) {
        json_writer jw, *w = &jw;
        json_writer_init(w, stdout);
        json_write_object_inline(w, NULL);
        json_write_string(w, "kind", "kvc");
        json_write_string(w, "path", path);
        json_write_u64(w, "n_layers", c->n_layers);
        json_write_u64(w, "n_heads", c->n_heads);
        json_write_u64(w, "head_dim", c->head_dim);
        json_write_u64(w, "outlier_ppm", c->outlier_ppm);
        json_write_array_inline(w, "layers");
        for (uint32_t l = 0; l < c->n_layers; l++) {
            json_write_space(w, "\n  ");
            json_write_object_inline(w, NULL);
            json_write_u64(w, "layer", l);
            if (c->key_range) {
                json_write_array_inline(w, "key_ranges");
                for (uint32_t h = 0; h < c->n_heads; h++) {
                    const kvq_channel_range *r = kvq_calibration_ranges(c, l, h);
                    json_write_array_inline(w, NULL);
                    for (uint32_t k = 0; k < c->head_dim; k++) {
                        json_write_array_inline(w, NULL);
                        json_write_fp32(w, NULL, r[k].lo);
                        json_write_fp32(w, NULL, r[k].hi);
                        json_write_end(w);
                    }
                    json_write_end(w);
                }
                json_write_end(w);
            }
            if (c->key_codebook) codebook_json(w, "key_codebook", &c->key_codebook[l]);
            if (c->value_codebook) codebook_json(w, "value_codebook", &c->value_codebook[l]);
            json_write_end(w);
        }
        json_write_end(w);
        json_write_end(w);
    } else {
        printf("%s: calibration file\nshape: %u layers x %u heads x %u channels, ranges for %u ppm outliers\n",
               path, c->n_layers, c->n_heads, c->head_dim, c->outlier_ppm);
        for (uint32_t l = 0; l < c->n_layers; l++) {
            if (c->key_range)
                for (uint32_t h = 0; h < c->n_heads; h++) {
                    const kvq_channel_range *r = kvq_calibration_ranges(c, l, h);
                    float lo = r[0].lo, hi = r[0].hi;
                    for (uint32_t k = 1; k < c->head_dim; k++) {
                        lo = fminf(lo, r[k].lo);
                        hi = fmaxf(hi, r[k].hi);
                    }
                    printf("  layer %u head %u: key ranges within [%.6g, %.6g]\n", l, h, lo, hi);
                }
            for (int r = 0; r < 2; r++) {
                const kvq_codebook *cb = r == 0 ? c->key_codebook : c->value_codebook;
                if (cb == NULL) continue;
                printf("  layer %u %s codebook (%u bits):", l, r == 0 ? "key" : "value", cb[l].bits);
                for (uint32_t j = 0; j < (1u << cb[l].bits); j++) printf(" %.6g", cb[l].signpost[j]);
                printf("\n");
            }
        }
    }
    kvq_calibration_free(c);
    return CLI_OK;
}

int cmd_inspect(int argc, char **argv)
{
    enum {
        OPT_AGAINST = 1,
        OPT_JSON,
        OPT_BINS,
        OPT_ATTENTION,
        OPT_QUERIES,
        OPT_QUERY_HEADS,
        OPT_SEED,
        OPT_ROPE,
        OPT_ROPE_BASE,
        OPT_SVG,
        OPT_LAYER,
        OPT_HEAD,
        OPT_HELP
    };
    static const struct option options[] = {
        {"against", required_argument, NULL, OPT_AGAINST},
        {"json", no_argument, NULL, OPT_JSON},
        {"bins", required_argument, NULL, OPT_BINS},
        {"attention", no_argument, NULL, OPT_ATTENTION},
        {"queries", required_argument, NULL, OPT_QUERIES},
        {"query-heads", required_argument, NULL, OPT_QUERY_HEADS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"rope", required_argument, NULL, OPT_ROPE},
        {"rope-base", required_argument, NULL, OPT_ROPE_BASE},
        {"svg", required_argument, NULL, OPT_SVG},
        {"layer", required_argument, NULL, OPT_LAYER},
        {"head", required_argument, NULL, OPT_HEAD},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    static const char *const pairings[] = {"none", "half", "interleaved"}; /* kvq_rope_pairing order */
    inspect_options o;
    memset(&o, 0, sizeof o);
    o.query_heads = 1;
    o.seed = 1;
    o.pairing = KVQ_ROPE_HALF;
    bool query_options = false, slice_options = false;
    uint32_t pairing = 0;
    uint32_t bins = 20;
    int c;
    optind = 1;
    while ((c = cli_getopt(CMD, argc, argv, ":h", options)) != -1) {
        switch (c) {
        case -2: return CLI_USAGE;
        case 'h':
        case OPT_HELP: cli_usage_inspect(stdout); return CLI_OK;
        case OPT_AGAINST: o.against = optarg; break;
        case OPT_JSON: o.json = true; break;
        case OPT_ATTENTION: o.attention = true; break;
        case OPT_QUERIES:
            o.queries = optarg;
            query_options = true;
            break;
        case OPT_QUERY_HEADS:
            if (!cli_parse_u32(CMD, "--query-heads", optarg, 1, 64, &o.query_heads)) return CLI_USAGE;
            query_options = true;
            break;
        case OPT_SEED:
            if (!cli_parse_u64(CMD, "--seed", optarg, &o.seed)) return CLI_USAGE;
            query_options = true;
            break;
        case OPT_ROPE:
            if (!cli_parse_choice(CMD, "--rope", optarg, pairings, 3, &pairing)) return CLI_USAGE;
            o.pairing = (kvq_rope_pairing)pairing;
            query_options = true;
            break;
        case OPT_ROPE_BASE:
            o.rope_base = optarg;
            query_options = true;
            break;
        case OPT_SVG: o.svg_dir = optarg; break;
        case OPT_LAYER:
            if (!cli_parse_u32(CMD, "--layer", optarg, 0, UINT32_MAX, &o.layer)) return CLI_USAGE;
            slice_options = true;
            break;
        case OPT_HEAD:
            if (!cli_parse_u32(CMD, "--head", optarg, 0, UINT32_MAX, &o.head)) return CLI_USAGE;
            slice_options = true;
            break;
        case OPT_BINS:
            if (!cli_parse_u32(CMD, "--bins", optarg, 1, 1000, &bins)) return CLI_USAGE;
            break;
        default: return cli_usage_error(CMD, "unexpected option");
        }
    }
    if (optind >= argc) return cli_usage_error(CMD, "missing FILE");
    if (optind + 1 < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    if (o.attention && o.against == NULL) return cli_usage_error(CMD, "--attention needs --against ORIGINAL.kvt");
    if (o.svg_dir != NULL && o.against == NULL) return cli_usage_error(CMD, "--svg needs --against ORIGINAL.kvt");
    if (query_options && !o.attention)
        return cli_usage_error(CMD, "--queries, --query-heads, --seed, --rope and --rope-base apply to --attention");
    if (o.queries != NULL && o.query_heads != 1)
        return cli_usage_error(CMD, "--query-heads applies to drawn queries; --queries gives its own heads");
    if (slice_options && o.svg_dir == NULL) return cli_usage_error(CMD, "--layer and --head apply to --svg");
    char magic[5];
    read_magic(path, magic);
    if (strcmp(magic, KVQ_QFILE_MAGIC) == 0) return inspect_kvqz(path, &o);
    if (o.against != NULL) return cli_usage_error(CMD, "--against applies to a .kvqz file only");
    if (strcmp(magic, KVQ_CALIBRATION_MAGIC) == 0) return inspect_kvc(path, o.json);
    if (strcmp(magic, KVQ_KVFILE_MAGIC) == 0 || magic[0] == '\0') /* the reader says what is wrong */
        return inspect_kvt(path, o.json, bins);
    return cli_error(CMD, KVQ_ERR_FILE_CORRUPT, "%s: magic '%.4s' is not %s, %s or %s", path, magic,
                     KVQ_KVFILE_MAGIC, KVQ_QFILE_MAGIC, KVQ_CALIBRATION_MAGIC);
}
