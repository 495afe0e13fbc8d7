/*
 * cuda_selfcheck.c - kvq_cuda_selfcheck: the CUDA backend against libkvq, for
 * a machine with a GPU (the conformance runner is the official check; this
 * one needs no golden files and covers the shapes the kernels branch on).
 *
 *   kvq_cuda_selfcheck            every check; exit 0 when all pass, 1 if any
 *                                 fails, 77 when there is no CUDA device
 *   kvq_cuda_selfcheck --bench    also time decode attention against the
 *                                 cuBLAS fp16 baseline (--bench-only: just that)
 *   kvq_cuda_selfcheck --jobs-only  packing, errors, quantize_head and the
 *                                 batched quantization (cuda_quantize_jobs) only
 *   kvq_cuda_selfcheck --attention-fast-only  the fast attention kernel's cases
 *                                 only (for compute-sanitizer)
 *   kvq_cuda_selfcheck --attention-tc-only  the tensor-core kernel's cases
 *                                 only (fp16 profile, S12.4; add --short for
 *                                 compute-sanitizer)
 *
 * Checked: packing (S5), quantize_head field by field (S4.4) and dequantize
 * bit for bit (S4.5) over roles, key modes, schemes, widths, groups,
 * outliers, sinks, policies, windows and shapes; tensor_upload; attention
 * (single, GQA, batch) within kvq_attention_error_bound (S12.3); the backend's
 * batched quantization (cuda_quantize_jobs) against its per-slice steps, byte
 * for byte; the cache
 * appended in pieces against kvq_cache after every append (S15); error codes.
 */
#define _POSIX_C_SOURCE 200112L /* clock_gettime, setenv under -std=c11 */
#include "cuda_backend.h"
#include "cuda_baseline.h"
#include "cuda_internal.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const kvq_backend_api *api;
static kvq_backend_context *ctx;    /* the fp32 profile: the exact kernels */
static kvq_backend_context *ctx16;  /* the fp16 profile (S12.4): the tensor-core kernel where it applies */
static int failures, checks;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        checks++;                                                                                                      \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            if (failures <= 60) {                                                                                      \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                            \
                printf(__VA_ARGS__);                                                                                   \
                printf("\n");                                                                                          \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

static kvq_rng rng;

static uint32_t rnd(uint32_t n) { return (uint32_t)(kvq_rng_next_u64(&rng) % n); }

/* Inputs that stress ties, signed zeros and heavy tails, or realistic KV. */
static void fill_input(float *x, size_t n, int kind)
{
    for (size_t i = 0; i < n; i++) {
        float v = kvq_rng_normal(&rng);
        switch (kind) {
        case 0: x[i] = v; break;
        case 1: x[i] = roundf(v * 4.0f) / 4.0f; break;       /* many exact ties */
        case 2: x[i] = (i % 7 == 0) ? -0.0f : (i % 5 == 0 ? 0.0f : v * 0.01f); break;
        default: x[i] = v * (rnd(50) == 0 ? 300.0f : 1.0f); break; /* heavy tail */
        }
    }
}

static void make_policy(kvq_token_policy *p, int variant)
{
    *p = kvq_token_policy_default();
    switch (variant % 5) {
    case 0: p->rule = KVQ_POLICY_QUANTIZE_ALL; p->n_sinks = 0; break;
    case 1: break; /* text-centric 10%, one sink */
    case 2: p->rule = KVQ_POLICY_IMAGE_CENTRIC; p->budget_ppm = 250000; p->n_sinks = 3; break;
    case 3: p->rule = KVQ_POLICY_TEXT_CENTRIC; p->budget_ppm = 300000; p->recent_window = 5; break;
    default: p->rule = KVQ_POLICY_QUANTIZE_ALL; p->n_sinks = 2; p->recent_window = 17; break;
    }
}

static bool same_qtensor(const kvq_qtensor *a, const kvq_qtensor *b, const char *what)
{
    bool ok = a->role == b->role && a->key_mode == b->key_mode && a->scheme == b->scheme && a->bits == b->bits &&
              a->n_tokens == b->n_tokens && a->head_dim == b->head_dim && a->group_size == b->group_size &&
              a->n_fp16_rows == b->n_fp16_rows && a->row_bytes == b->row_bytes && a->n_params == b->n_params &&
              a->n_outliers == b->n_outliers && memcmp(&a->codebook, &b->codebook, sizeof a->codebook) == 0;
    CHECK(ok, "%s: scalar fields differ (n_fp16_rows %u/%u, n_params %u/%u, n_outliers %u/%u)", what,
          a->n_fp16_rows, b->n_fp16_rows, a->n_params, b->n_params, a->n_outliers, b->n_outliers);
    if (!ok) return false;
    size_t n = a->n_tokens, d = a->head_dim, ptr = (a->role == KVQ_ROLE_KEYS ? d : n) + 1u;
    struct {
        const void *x, *y;
        size_t bytes;
        const char *name;
    } arrays[] = {
        {a->precision, b->precision, n, "precision"},
        {a->fp16_slot, b->fp16_slot, n * 4u, "fp16_slot"},
        {a->fp16_rows, b->fp16_rows, (size_t)a->n_fp16_rows * d * 2u, "fp16_rows"},
        {a->codes, b->codes, n * a->row_bytes, "codes"},
        {a->params, b->params, (size_t)a->n_params * 4u, "params"},
        {a->outlier_ptr, b->outlier_ptr, ptr * 4u, "outlier_ptr"},
        {a->outlier_index, b->outlier_index, (size_t)a->n_outliers * 4u, "outlier_index"},
        {a->outlier_value, b->outlier_value, (size_t)a->n_outliers * 2u, "outlier_value"},
    };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        bool same = memcmp(arrays[i].x, arrays[i].y, arrays[i].bytes) == 0;
        CHECK(same, "%s: %s differs", what, arrays[i].name);
        ok = ok && same;
    }
    return ok;
}

/* tensor_info + tensor_read into a fresh host qtensor. */
static kvq_qtensor *read_back(const kvq_backend_tensor *t)
{
    kvq_qtensor h, *qt = NULL;
    if (api->tensor_info(ctx, t, &h) != KVQ_OK) return NULL;
    if (kvq_qtensor_alloc(&h, &qt) != KVQ_OK) return NULL;
    if (api->tensor_read(ctx, t, qt) != KVQ_OK) {
        printf("tensor_read: %s\n", api->last_error(ctx));
        kvq_qtensor_free(qt);
        return NULL;
    }
    return qt;
}

static void compare_dequantized(const kvq_backend_tensor *t, const kvq_qtensor *ref, const char *what)
{
    size_t n = (size_t)ref->n_tokens * ref->head_dim;
    float *a = malloc(n * 4u), *b = malloc(n * 4u);
    CHECK(kvq_dequantize_head(ref, a) == KVQ_OK, "%s: reference dequantize", what);
    kvq_status st = api->dequantize(ctx, t, b);
    CHECK(st == KVQ_OK, "%s: dequantize: %s", what, api->last_error(ctx));
    if (st == KVQ_OK) {
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += memcmp(&a[i], &b[i], 4) != 0;
        CHECK(bad == 0, "%s: %zu dequantized values differ", what, bad);
    }
    free(a);
    free(b);
}

/* ---- packing ---- */
static void check_packing(void)
{
    const uint32_t widths[] = {2, 3, 4, 8};
    for (int w = 0; w < 4; w++) {
        uint32_t bits = widths[w], row_len = 96, rows = 37;
        size_t n = (size_t)rows * row_len, pb = (size_t)rows * kvq_packed_bytes(row_len, bits);
        uint8_t *codes = malloc(n), *packed = malloc(pb), *expect = malloc(pb), *back = malloc(n);
        for (size_t i = 0; i < n; i++) codes[i] = (uint8_t)rnd(1u << bits);
        for (uint32_t r = 0; r < rows; r++)
            kvq_pack_codes(codes + (size_t)r * row_len, row_len, bits, expect + r * kvq_packed_bytes(row_len, bits));
        CHECK(api->pack_codes(ctx, codes, rows, row_len, bits, packed) == KVQ_OK, "pack %u", bits);
        CHECK(memcmp(packed, expect, pb) == 0, "pack %u bits differs from kvq_pack_codes", bits);
        CHECK(api->unpack_codes(ctx, packed, rows, row_len, bits, back) == KVQ_OK, "unpack %u", bits);
        CHECK(memcmp(back, codes, n) == 0, "unpack %u bits differs", bits);
        free(codes);
        free(packed);
        free(expect);
        free(back);
    }
    uint8_t bad[32] = {9};
    uint8_t out[32];
    CHECK(api->pack_codes(ctx, bad, 1, 32, 3, out) == KVQ_ERR_BAD_ARGUMENT, "code 9 in 3 bits accepted");
    CHECK(api->pack_codes(ctx, bad, 1, 20, 3, out) == KVQ_ERR_HEAD_DIM_PACKING, "row_len 20 at 3 bits accepted");
}

/* ---- quantize_head and dequantize ---- */
typedef struct qcase {
    kvq_role role;
    kvq_key_mode mode;
    kvq_scheme scheme;
    uint32_t bits, group, ppm, d, n;
    int policy, input;
} qcase;

static kvq_codebook codebooks[5];

static void config_of(const qcase *c, kvq_head_config *cfg, kvq_channel_range *ranges, const float *x)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->role = c->role;
    cfg->key_mode = c->mode;
    cfg->quantizer.scheme = c->scheme;
    cfg->quantizer.bits = c->bits;
    cfg->quantizer.codebook = c->scheme == KVQ_SCHEME_NUQ ? &codebooks[c->bits] : NULL;
    cfg->group_size = c->group;
    cfg->outlier_ppm = c->ppm;
    make_policy(&cfg->policy, c->policy);
    if (c->role == KVQ_ROLE_KEYS && c->mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED) {
        kvq_calibrate_channel_ranges(x, c->n, c->d, c->ppm, ranges);
        cfg->channel_range = ranges;
        cfg->n_channel_range = c->d; /* spec 1.3.0 (S4.1): the reference checks the array's length */
    }
}

static void run_qcase(const qcase *c)
{
    char what[160];
    snprintf(what, sizeof what, "quantize role %d mode %d scheme %d bits %u G %u ppm %u d %u n %u policy %d input %d",
             c->role, c->mode, c->scheme, c->bits, c->group, c->ppm, c->d, c->n, c->policy, c->input);
    size_t elems = (size_t)c->n * c->d;
    float *x = malloc(elems * 4u);
    uint8_t *modality = malloc(c->n);
    kvq_channel_range *ranges = malloc(c->d * sizeof *ranges);
    fill_input(x, elems, c->input);
    for (uint32_t t = 0; t < c->n; t++) modality[t] = (uint8_t)((t / 5u) % 3u == 0 ? 0 : rnd(3));
    kvq_head_config cfg;
    config_of(c, &cfg, ranges, x);
    kvq_qtensor *ref = NULL;
    kvq_status rs = kvq_quantize_head(&cfg, x, c->n, c->d, modality, &ref);
    kvq_backend_tensor *t = NULL;
    kvq_status cs = api->quantize_head(ctx, &cfg, x, c->n, c->d, modality, &t);
    CHECK(rs == cs, "%s: status %d vs reference %d (%s)", what, cs, rs, api->last_error(ctx));
    if (rs == KVQ_OK && cs == KVQ_OK) {
        kvq_qtensor *got = read_back(t);
        CHECK(got != NULL, "%s: read back", what);
        if (got != NULL) same_qtensor(got, ref, what);
        compare_dequantized(t, ref, what);
        kvq_qtensor_free(got);
        /* The same tensor through tensor_upload. */
        kvq_backend_tensor *u = NULL;
        CHECK(api->tensor_upload(ctx, ref, &u) == KVQ_OK, "%s: upload: %s", what, api->last_error(ctx));
        if (u != NULL) {
            kvq_qtensor *back = read_back(u);
            if (back != NULL) same_qtensor(back, ref, "upload round trip");
            kvq_qtensor_free(back);
            api->tensor_free(ctx, u);
        }
    }
    if (t != NULL) api->tensor_free(ctx, t);
    kvq_qtensor_free(ref);
    free(x);
    free(modality);
    free(ranges);
}

static void check_quantize(void)
{
    const uint32_t dims[] = {32, 64, 96, 128, 256, 1024};
    const uint32_t ns[] = {1, 2, 7, 64, 300};
    int count = 0;
    for (int role = 0; role < 3; role++)            /* values, calibrated keys, online keys */
        for (int scheme = 0; scheme < 3; scheme++)
            for (int bi = 0; bi < 4; bi++) {
                uint32_t bits = (uint32_t[]){2, 3, 4, 8}[bi];
                if (scheme == KVQ_SCHEME_NUQ && bits == 8) continue;
                for (int k = 0; k < 4; k++) {
                    qcase c;
                    memset(&c, 0, sizeof c);
                    c.role = role == 0 ? KVQ_ROLE_VALUES : KVQ_ROLE_KEYS;
                    c.mode = role == 2 ? KVQ_KEYS_PER_CHANNEL_ONLINE : KVQ_KEYS_PER_CHANNEL_CALIBRATED;
                    c.scheme = (kvq_scheme)scheme;
                    c.bits = bits;
                    do c.d = dims[rnd(6)];
                    while ((c.d * bits) % 32u != 0 || (c.d == 1024 && k != 0));
                    c.n = ns[rnd(5)];
                    if (c.d == 1024 && c.n > 64) c.n = 64;
                    c.ppm = (uint32_t[]){0, 10000, 60000, 1000000}[rnd(4)];
                    if (role == 0) c.group = (uint32_t[]){0, 8, 32, c.d}[rnd(4)] % (c.d + 1u);
                    if (role == 0 && c.group != 0 && c.d % c.group != 0) c.group = 0;
                    if (role == 2) c.group = (uint32_t[]){1, 3, 8, 64}[rnd(4)];
                    c.policy = (int)rnd(5);
                    c.input = (int)rnd(4);
                    run_qcase(&c);
                    count++;
                }
            }
    printf("quantize/dequantize/upload: %d cases\n", count);
}

/* ---- batched quantization (cuda_quantize_jobs, cuda_quantize_batch.c) ----
 * The same head slices quantized slice by slice (kvq_cuda_write_fp16_rows,
 * cuda_quantize_codes + cuda_quantize_outliers, as quantize_head and the
 * cache run them) and as one batch must give the same bytes in every output
 * array. */
typedef struct jobs_case {
    kvq_role role;
    kvq_key_mode mode;
    kvq_scheme scheme;
    uint32_t bits, group, d, n, t_begin, t_end;
    int input;
    bool fp16_rows; /* the batch writes the slice's fp16 rows too (cuda_quant_job.fp16_slot) */
} jobs_case;

enum { JA_PRECISION, JA_CODES, JA_PARAMS, JA_OPTR, JA_OCHAN, JA_OVAL, JA_ROWS, JA_COUNT };
static const char *const ja_names[JA_COUNT] = {"precision", "codes", "params", "optr", "ochan", "oval", "fp16 rows"};

typedef struct jobs_slice {
    jobs_case c;
    kvq_head_config cfg;
    kvq_channel_range *ranges;
    size_t bytes[JA_COUNT];
    void *dev[2][JA_COUNT]; /* per way: 0 slice by slice, 1 batched */
    float *dx, *dranges;
    uint32_t *dslot;        /* fp16 slots of the whole slice (S4.1 step 3) */
    uint32_t capacity;      /* outlier room: every element */
    cuda_quant_job job[2];
} jobs_slice;

static bool cuda_ok(cudaError_t err, const char *what)
{
    CHECK(err == cudaSuccess, "quantize jobs: %s: %s", what, cudaGetErrorString(err));
    return err == cudaSuccess;
}

static size_t jobs_param_count(const jobs_case *c)
{
    if (c->role == KVQ_ROLE_VALUES) return (size_t)c->n * (c->d / (c->group == 0 ? c->d : c->group));
    if (c->mode == KVQ_KEYS_PER_CHANNEL_ONLINE) return (size_t)((c->n + c->group - 1u) / c->group) * c->d;
    return c->d;
}

/* Inputs, precision and both ways' output arrays of one slice on the device. */
static bool jobs_slice_make(jobs_slice *s, const jobs_case *c)
{
    memset(s, 0, sizeof *s);
    s->c = *c;
    const uint32_t n = c->n, d = c->d;
    const size_t elems = (size_t)n * d;
    float *x = malloc(elems * 4u);
    uint8_t *modality = malloc(n), *decided = malloc(n), *precision = malloc(n);
    uint32_t *slot = malloc(((size_t)n + 1u) * sizeof *slot), n_rows = 0;
    s->ranges = malloc(d * sizeof *s->ranges);
    kvq_group_params *cal = malloc(d * sizeof *cal);
    bool ok = x && modality && decided && precision && slot && s->ranges && cal;
    if (ok) {
        fill_input(x, elems, c->input);
        for (uint32_t t = 0; t < n; t++) modality[t] = (uint8_t)rnd(3);
        qcase q = {c->role, c->mode, c->scheme, c->bits, c->group, 10000u, d, n, 1 /* text-centric, a sink */,
                   c->input};
        config_of(&q, &s->cfg, s->ranges, x);
        ok = kvq_token_precision(&s->cfg.policy, modality, 0, 0, n, decided) == KVQ_OK;
        CHECK(ok, "quantize jobs: kvq_token_precision: %s", kvq_last_error());
    }
    if (ok) cuda_final_precision(&s->cfg, n, decided, 0, precision);
    for (uint32_t t = 0; ok && t < n; t++) slot[t] = precision[t] == KVQ_PREC_QUANTIZED ? KVQ_CUDA_NO_SLOT : n_rows++;
    const bool calibrated = c->role == KVQ_ROLE_KEYS && c->mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    s->capacity = (uint32_t)elems;
    s->bytes[JA_PRECISION] = n;
    s->bytes[JA_CODES] = (size_t)n * kvq_packed_bytes(d, c->bits);
    s->bytes[JA_PARAMS] = jobs_param_count(c) * 4u;
    s->bytes[JA_OPTR] = ((size_t)n + 1u) * 4u;
    s->bytes[JA_OCHAN] = elems * 2u;
    s->bytes[JA_OVAL] = elems * 2u;
    s->bytes[JA_ROWS] = (size_t)n_rows * d * 2u;
    ok = ok && cuda_ok(cudaMalloc((void **)&s->dslot, (size_t)n * 4u + 4u), "slots") &&
         cuda_ok(cudaMemcpy(s->dslot, slot, (size_t)n * 4u, cudaMemcpyHostToDevice), "slots") &&
         cuda_ok(cudaMalloc((void **)&s->dx, elems * 4u + 4u), "input") &&
         cuda_ok(cudaMemcpy(s->dx, x, elems * 4u, cudaMemcpyHostToDevice), "input") &&
         cuda_ok(cudaMalloc((void **)&s->dranges, (size_t)d * 8u), "ranges") &&
         cuda_ok(cudaMemcpy(s->dranges, s->ranges, (size_t)d * 8u, cudaMemcpyHostToDevice), "ranges");
    for (uint32_t i = 0; calibrated && i < d; i++)
        cal[i] = kvq_group_params_from_range(&s->cfg.quantizer, s->ranges[i].lo, s->ranges[i].hi);
    for (int w = 0; ok && w < 2; w++) {
        for (int a = 0; ok && a < JA_COUNT; a++) {
            /* +16: the kernels' slack for 16-byte loads of the last row (cuda_alloc). */
            ok = cuda_ok(cudaMalloc(&s->dev[w][a], s->bytes[a] + 16u), "outputs") &&
                 cuda_ok(cudaMemset(s->dev[w][a], a < JA_OPTR ? 0 : 0xA5, s->bytes[a] + 16u), "outputs");
        }
        ok = ok && cuda_ok(cudaMemcpy(s->dev[w][JA_PRECISION], precision, n, cudaMemcpyHostToDevice), "precision");
        if (ok && calibrated)
            ok = cuda_ok(cudaMemcpy(s->dev[w][JA_PARAMS], cal, (size_t)d * 4u, cudaMemcpyHostToDevice), "params");
        s->job[w] = (cuda_quant_job){.config = &s->cfg,
                                     .head_dim = d,
                                     .x = s->dx + (size_t)c->t_begin * d,
                                     .x_base = c->t_begin,
                                     .t_begin = c->t_begin,
                                     .t_end = c->t_end,
                                     .precision = s->dev[w][JA_PRECISION],
                                     .params = s->dev[w][JA_PARAMS],
                                     .codes = s->dev[w][JA_CODES],
                                     .cal_params = s->dev[w][JA_PARAMS],
                                     .cal_ranges = s->dranges};
    }
    if (c->fp16_rows) {
        s->job[1].fp16_slot = s->dslot;
        s->job[1].fp16_rows = s->dev[1][JA_ROWS];
    }
    free(x);
    free(modality);
    free(decided);
    free(precision);
    free(slot);
    free(cal);
    return ok;
}

static void jobs_slice_free(jobs_slice *s)
{
    for (int w = 0; w < 2; w++)
        for (int a = 0; a < JA_COUNT; a++) cudaFree(s->dev[w][a]);
    cudaFree(s->dx);
    cudaFree(s->dranges);
    cudaFree(s->dslot);
    free(s->ranges);
}

/* Every output array of both ways, byte for byte (slack excluded). */
static void jobs_compare(const jobs_slice *s, const char *what)
{
    CHECK(s->job[0].n_outliers == s->job[1].n_outliers, "%s: %u outliers slice by slice, %u batched", what,
          s->job[0].n_outliers, s->job[1].n_outliers);
    for (int a = 0; a < JA_COUNT; a++) {
        unsigned char *x = malloc(s->bytes[a] + 1u), *y = malloc(s->bytes[a] + 1u);
        bool ok = x && y && cuda_ok(cudaMemcpy(x, s->dev[0][a], s->bytes[a], cudaMemcpyDeviceToHost), "read back") &&
                  cuda_ok(cudaMemcpy(y, s->dev[1][a], s->bytes[a], cudaMemcpyDeviceToHost), "read back");
        size_t first = s->bytes[a];
        for (size_t i = 0; ok && i < s->bytes[a]; i++)
            if (x[i] != y[i]) {
                first = i;
                break;
            }
        CHECK(ok && first == s->bytes[a], "%s: %s differs from byte %zu of %zu (0x%02x slice by slice, 0x%02x batched)",
              what, ja_names[a], first, s->bytes[a], first < s->bytes[a] ? x[first] : 0u,
              first < s->bytes[a] ? y[first] : 0u);
        free(x);
        free(y);
    }
}

/* A job over its room: KVQ_ERR_SIZE_MISMATCH naming it, and no outlier
 * array of any job written. */
static void jobs_check_capacity(jobs_slice *s, uint32_t n_slices)
{
    uint32_t victim = n_slices;
    size_t ptr_bytes = 0, val_bytes = 0;
    for (uint32_t i = 0; i < n_slices; i++) {
        if (victim == n_slices && s[i].job[1].n_outliers > 0) victim = i;
        if (s[i].bytes[JA_OPTR] > ptr_bytes) ptr_bytes = s[i].bytes[JA_OPTR];
        if (s[i].bytes[JA_OCHAN] > val_bytes) val_bytes = s[i].bytes[JA_OCHAN];
    }
    CHECK(victim < n_slices, "quantize jobs: no slice has outliers");
    if (victim == n_slices) return;
    void *spare[3] = {NULL, NULL, NULL};
    size_t spare_bytes[3] = {ptr_bytes, val_bytes, val_bytes};
    bool ok = true;
    for (int a = 0; ok && a < 3; a++)
        ok = cuda_ok(cudaMalloc(&spare[a], spare_bytes[a]), "spare outputs") &&
             cuda_ok(cudaMemset(spare[a], 0x5A, spare_bytes[a]), "spare outputs");
    cuda_quant_job *jobs = malloc(n_slices * sizeof *jobs);
    uint32_t **optr = malloc(n_slices * sizeof *optr), *cap = malloc(n_slices * sizeof *cap);
    uint16_t **ochan = malloc(n_slices * sizeof *ochan), **oval = malloc(n_slices * sizeof *oval);
    ok = ok && jobs && optr && cap && ochan && oval;
    for (uint32_t i = 0; ok && i < n_slices; i++) {
        jobs[i] = s[i].job[1]; /* codes and params are rewritten with the same bytes */
        optr[i] = spare[0];
        ochan[i] = spare[1];
        oval[i] = spare[2];
        cap[i] = i == victim ? s[i].job[1].n_outliers - 1u : s[i].capacity;
    }
    if (ok) {
        kvq_status st = cuda_quantize_jobs(ctx, jobs, n_slices, optr, ochan, oval, cap);
        char expect[32];
        snprintf(expect, sizeof expect, "job %u ", victim);
        CHECK(st == KVQ_ERR_SIZE_MISMATCH && strstr(api->last_error(ctx), expect) != NULL,
              "quantize jobs over capacity: status %d, message \"%s\"", st, api->last_error(ctx));
        CHECK(cudaStreamSynchronize(ctx->stream) == cudaSuccess, "quantize jobs over capacity: device error");
        for (int a = 0; a < 3; a++) {
            unsigned char *h = malloc(spare_bytes[a]);
            bool same = h && cuda_ok(cudaMemcpy(h, spare[a], spare_bytes[a], cudaMemcpyDeviceToHost), "read back");
            for (size_t i = 0; same && i < spare_bytes[a]; i++) same = h[i] == 0x5A;
            CHECK(same, "quantize jobs over capacity: outlier array %d was written", a);
            free(h);
        }
    }
    for (int a = 0; a < 3; a++) cudaFree(spare[a]);
    free(jobs);
    free(optr);
    free(cap);
    free(ochan);
    free(oval);
}

/* The slice by itself, as quantize_head and the cache run it. */
static kvq_status jobs_one_by_one(jobs_slice *s)
{
    cuda_quant_job *job = &s->job[0];
    kvq_status st = KVQ_OK;
    if (s->c.fp16_rows)
        st = cuda_check(ctx,
                        kvq_cuda_write_fp16_rows(job->x, job->x_base, job->t_begin, job->t_end, job->t_begin,
                                                 job->head_dim, s->dslot, s->dev[0][JA_ROWS], NULL, ctx->stream),
                        "fp16 rows");
    if (st == KVQ_OK) st = cuda_quantize_codes(ctx, job);
    if (st == KVQ_OK && job->n_outliers > s->capacity) st = KVQ_ERR_SIZE_MISMATCH;
    if (st == KVQ_OK)
        st = cuda_quantize_outliers(ctx, job, s->c.t_end, 0, s->dev[0][JA_OPTR], s->dev[0][JA_OCHAN],
                                    s->dev[0][JA_OVAL]);
    if (st == KVQ_OK) st = cuda_sync(ctx, "slice by slice");
    return st;
}

/* n slices (cases in reverse order when `reverse`: the scratch is reused and
 * carved differently) slice by slice and as one batch, compared; then a batch
 * over capacity. Returns whether the batch ran. */
static bool jobs_round(const char *name, const jobs_case *cases, uint32_t n, bool reverse)
{
    jobs_slice *s = calloc(n, sizeof *s);
    cuda_quant_job *jobs = calloc(n, sizeof *jobs);
    uint32_t **optr = calloc(n, sizeof *optr), *cap = calloc(n, sizeof *cap);
    uint16_t **ochan = calloc(n, sizeof *ochan), **oval = calloc(n, sizeof *oval);
    bool ok = s && jobs && optr && cap && ochan && oval;
    CHECK(ok, "quantize jobs: out of host memory");
    uint32_t made = 0;
    for (; ok && made < n; made++) ok = jobs_slice_make(&s[made], &cases[reverse ? n - 1u - made : made]);
    for (uint32_t i = 0; ok && i < n; i++) {
        kvq_status st = jobs_one_by_one(&s[i]);
        CHECK(st == KVQ_OK, "quantize jobs %s: slice %u by itself: %s", name, i, api->last_error(ctx));
        ok = st == KVQ_OK;
        jobs[i] = s[i].job[1];
        optr[i] = s[i].dev[1][JA_OPTR];
        ochan[i] = s[i].dev[1][JA_OCHAN];
        oval[i] = s[i].dev[1][JA_OVAL];
        cap[i] = s[i].capacity;
    }
    if (ok) {
        kvq_status st = cuda_quantize_jobs(ctx, jobs, n, optr, ochan, oval, cap);
        if (st == KVQ_OK) st = cuda_sync(ctx, "batched");
        CHECK(st == KVQ_OK, "quantize jobs %s: batch: %s", name, api->last_error(ctx));
        ok = st == KVQ_OK;
    }
    for (uint32_t i = 0; ok && i < n; i++) {
        char what[200];
        const jobs_case *c = &s[i].c;
        snprintf(what, sizeof what,
                 "quantize jobs %s slice %u (role %d mode %d scheme %d bits %u G %u d %u tokens [%u, %u) of %u%s)",
                 name, i, c->role, c->mode, c->scheme, c->bits, c->group, c->d, c->t_begin, c->t_end, c->n,
                 c->fp16_rows ? ", fp16 rows" : "");
        s[i].job[1] = jobs[i];
        jobs_compare(&s[i], what);
    }
    if (ok) jobs_check_capacity(s, n);
    for (uint32_t i = 0; s != NULL && i < made; i++) jobs_slice_free(&s[i]);
    free(s);
    free(jobs);
    free(optr);
    free(cap);
    free(ochan);
    free(oval);
    return ok;
}

static void check_quantize_jobs(void)
{
    /* Keys online and calibrated, values, in one batch; uniform 2/3/4/8-bit
     * and NUQ 2/3/4-bit; 1% outliers; the text-centric policy with a sink
     * (fp16 rows, written by the batch for some slices); whole slices,
     * sub-ranges (as a cache quantizes them), an empty range, online key
     * ranges that end inside a block, slices long enough for multi-tile
     * scans. */
    static const jobs_case mixed[] = {
        {KVQ_ROLE_VALUES, 0, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 128, 300, 0, 300, 3, true},
        {KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_UNIFORM_ASYM, 2, 16, 128, 300, 0, 300, 0, true},
        {KVQ_ROLE_VALUES, 0, KVQ_SCHEME_NUQ, 4, 32, 128, 257, 0, 257, 3, false},
        {KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_NUQ, 2, 64, 128, 500, 0, 500, 3, true},
        {KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_NUQ, 4, 8, 64, 200, 64, 200, 1, true},
        {KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_CALIBRATED, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 128, 300, 0, 300, 3, true},
        {KVQ_ROLE_VALUES, 0, KVQ_SCHEME_UNIFORM_SYM, 2, 8, 64, 123, 37, 123, 2, true},
        {KVQ_ROLE_VALUES, 0, KVQ_SCHEME_UNIFORM_ASYM, 2, 0, 128, 50, 50, 50, 0, true},
        {KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_UNIFORM_ASYM, 4, 128, 128, 3000, 0, 3000, 3, false},
        {KVQ_ROLE_VALUES, 0, KVQ_SCHEME_NUQ, 2, 0, 128, 3000, 0, 3000, 3, true},
        {KVQ_ROLE_VALUES, 0, KVQ_SCHEME_UNIFORM_ASYM, 3, 0, 128, 700, 0, 700, 3, true},
        {KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_UNIFORM_ASYM, 3, 128, 128, 700, 0, 700, 3, true},
        {KVQ_ROLE_VALUES, 0, KVQ_SCHEME_UNIFORM_ASYM, 8, 0, 128, 333, 0, 333, 1, true},
        {KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_UNIFORM_ASYM, 8, 32, 128, 333, 0, 333, 2, false},
        {KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_CALIBRATED, KVQ_SCHEME_NUQ, 3, 0, 64, 211, 11, 211, 0, true},
        {KVQ_ROLE_VALUES, 0, KVQ_SCHEME_NUQ, 3, 16, 96, 190, 0, 190, 3, true},
        {KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_CALIBRATED, KVQ_SCHEME_UNIFORM_ASYM, 8, 0, 128, 128, 64, 128, 3, true},
        {KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_SCHEME_UNIFORM_ASYM, 4, 16, 128, 200, 96, 96, 0, true},
    };
    const uint32_t n_mixed = sizeof mixed / sizeof mixed[0];
    int batches = 0;
    batches += jobs_round("mixed", mixed, n_mixed, false);
    batches += jobs_round("mixed reversed", mixed, n_mixed, true);

    /* A layer as the benchmarks quantize it: 32 heads x (online keys in
     * blocks of 128, values per token), 1% outliers, fp16 rows, one format
     * per head so that every width meets every other in the batch. */
    enum { LAYER_JOBS = 64 };
    static const kvq_scheme schemes[] = {KVQ_SCHEME_UNIFORM_ASYM, KVQ_SCHEME_UNIFORM_ASYM, KVQ_SCHEME_UNIFORM_ASYM,
                                         KVQ_SCHEME_UNIFORM_ASYM, KVQ_SCHEME_NUQ, KVQ_SCHEME_NUQ, KVQ_SCHEME_NUQ};
    static const uint32_t widths[] = {2, 3, 4, 8, 2, 3, 4};
    jobs_case layer[LAYER_JOBS];
    for (uint32_t j = 0; j < LAYER_JOBS; j++) {
        const uint32_t f = (j / 2u) % 7u;
        const bool keys = j % 2u == 0;
        layer[j] = (jobs_case){keys ? KVQ_ROLE_KEYS : KVQ_ROLE_VALUES, KVQ_KEYS_PER_CHANNEL_ONLINE, schemes[f],
                               widths[f], keys ? 128u : 0u, 128, 512, 0, 512, 3, true};
    }
    batches += jobs_round("layer", layer, LAYER_JOBS, false);
    printf("quantize jobs: %d of 3 batches (%u, %u and %d slices) ran, batched against slice by slice\n", batches,
           n_mixed, n_mixed, (int)LAYER_JOBS);
}

/* ---- attention ---- */

/* out within kvq_attention_error_bound_profile(profile) of the reference; returns the worst error/bound. */
static double compare_attention_at(kvq_attention_profile profile, const kvq_qtensor *k, const kvq_qtensor *v,
                                   const uint32_t *pos, const kvq_rope *rope, const float *q, uint32_t n_q,
                                   uint32_t q_pos, const float *got, const char *what)
{
    size_t m = (size_t)n_q * k->head_dim;
    float *ref = malloc(m * 4u), *bound = malloc(m * 4u);
    CHECK(kvq_attention_decode(k, v, pos, rope, q, n_q, q_pos, ref) == KVQ_OK, "%s: reference", what);
    CHECK(kvq_attention_error_bound_profile(k, v, pos, rope, q, n_q, q_pos, profile, bound) == KVQ_OK, "%s: bound",
          what);
    size_t bad = 0;
    double worst = 0.0;
    for (size_t i = 0; i < m; i++) {
        double err = fabs((double)got[i] - (double)ref[i]);
        if (!(err <= bound[i])) bad++;
        if (bound[i] > 0 && err / bound[i] > worst) worst = err / bound[i];
    }
    CHECK(bad == 0, "%s: %zu of %zu outputs outside the %s bound (worst error/bound %.3g)", what, bad, m,
          kvq_attention_profile_name(profile), worst);
    free(ref);
    free(bound);
    return worst;
}

/* out within S12.3's fp32 bound. */
static void compare_attention(const kvq_qtensor *k, const kvq_qtensor *v, const uint32_t *pos, const kvq_rope *rope,
                              const float *q, uint32_t n_q, uint32_t q_pos, const float *got, const char *what)
{
    compare_attention_at(KVQ_PROFILE_FP32, k, v, pos, rope, q, n_q, q_pos, got, what);
}

/* The tensor-core kernel's format (attention_tc.cu) on a context of the fp16 profile (S12.4):
 * head_dim 64/128/256, uniform 2/4/8-bit keys and values of one width (asym or sym each),
 * calibrated or online keys (blocks of 16k tokens), one value group per token, HALF RoPE at
 * consecutive positions or no RoPE at any positions; outliers, sinks and fp16 tokens; lengths
 * around its 16- and 64-token tiles up to many splits; MHA and GQA groups, single and batched. */
static void check_attention_tc(bool short_only)
{
    /* Where the fast kernel fits too, the backend prefers it (it measured faster); these cases are
     * about the tensor-core kernel, so it is asked for (kvq_cuda_attention_kernel_for). */
    const char *was = getenv("KVQ_CUDA_ATTENTION");
    char saved[32] = "";
    if (was != NULL) snprintf(saved, sizeof saved, "%s", was);
    setenv("KVQ_CUDA_ATTENTION", "tc", 1);
    const unsigned long long launches0 = kvq_cuda_attention_tc_launches();
    int count = 0, batches = 0;
    double worst = 0.0;
    for (int it = 0; it < (short_only ? 40 : 90); it++) {
        const uint32_t d = (uint32_t[]){64, 128, 128, 256}[rnd(4)];
        const uint32_t bits = d >= 128u ? (uint32_t[]){2, 4, 4, 8}[rnd(4)] : (uint32_t[]){4, 8}[rnd(2)];
        static const uint32_t lengths[] = {1, 15, 16, 17, 63, 64, 65, 129, 300, 1000, 4097, 20000, 70000};
        const uint32_t n = lengths[rnd(short_only ? 10 : 13)];
        const uint32_t n_q = (uint32_t[]){1, 1, 2, 4, 8, 12, 16}[rnd(7)];
        const int rope_kind = (int)rnd(4); /* 0, 1: HALF; 2: NONE; 3: NULL */
        size_t elems = (size_t)n * d;
        float *keys = malloc(elems * 4u), *values = malloc(elems * 4u);
        uint8_t *modality = malloc(n);
        kvq_synth_params sp = {n, d, 7000u + (uint64_t)it, 2, 0.01f, 1, n > 64 ? 40 : 0, 8};
        kvq_synth_kv(&sp, keys, values, modality);
        kvq_channel_range *ranges = malloc(d * sizeof *ranges);
        kvq_head_config kc, vc;
        qcase k = {KVQ_ROLE_KEYS, rnd(3) ? KVQ_KEYS_PER_CHANNEL_ONLINE : KVQ_KEYS_PER_CHANNEL_CALIBRATED,
                   (kvq_scheme)rnd(2), bits, (uint32_t[]){16, 32, 64, 128, 48}[rnd(5)], rnd(3) ? 10000u : 0u, d, n,
                   (int)rnd(5), 0};
        qcase v = {KVQ_ROLE_VALUES, 0, (kvq_scheme)rnd(2), bits, 0, rnd(3) ? 10000u : 0u, d, n, k.policy, 0};
        config_of(&k, &kc, ranges, keys);
        config_of(&v, &vc, NULL, values);
        kvq_qtensor *rk = NULL, *rv = NULL;
        CHECK(kvq_quantize_head(&kc, keys, n, d, modality, &rk) == KVQ_OK, "tc setup keys");
        CHECK(kvq_quantize_head(&vc, values, n, d, modality, &rv) == KVQ_OK, "tc setup values");
        kvq_backend_tensor *tk = NULL, *tv = NULL;
        CHECK(api->tensor_upload(ctx16, rk, &tk) == KVQ_OK, "upload keys: %s", api->last_error(ctx16));
        CHECK(api->tensor_upload(ctx16, rv, &tv) == KVQ_OK, "upload values: %s", api->last_error(ctx16));
        uint32_t *pos = malloc(n * 4u);
        uint32_t base = (uint32_t[]){0, 5000000, 2147483647u - 70001u}[rnd(3)];
        const bool scattered = rope_kind >= 2 && rnd(2) == 0; /* no RoPE: positions play no part */
        for (uint32_t t = 0; t < n; t++) pos[t] = scattered ? rnd(1000000) : base + t;
        kvq_rope rope = {rope_kind == 2 ? KVQ_ROPE_NONE : KVQ_ROPE_HALF, rnd(2) ? 10000.0f : 500000.0f};
        const kvq_rope *rp = rope_kind == 3 ? NULL : &rope;
        float *q = malloc((size_t)n_q * d * 4u), *out = malloc((size_t)n_q * d * 4u);
        fill_input(q, (size_t)n_q * d, rnd(4) == 0 ? 3 : 0);
        const uint32_t q_pos = base + n;
        char what[240];
        snprintf(what, sizeof what,
                 "tc attention d %u n %u n_q %u bits %u k %s %s G %u ppm %u v %s ppm %u policy %d rope %d pos %u%s", d,
                 n, n_q, bits, k.scheme == KVQ_SCHEME_UNIFORM_SYM ? "sym" : "asym",
                 k.mode == KVQ_KEYS_PER_CHANNEL_ONLINE ? "online" : "calibrated", k.group, k.ppm,
                 v.scheme == KVQ_SCHEME_UNIFORM_SYM ? "sym" : "asym", v.ppm, k.policy, rope_kind, base,
                 scattered ? " scattered" : "");
        if (tk != NULL && tv != NULL) {
            kvq_status st = api->attention_decode(ctx16, tk, tv, pos, rp, q, n_q, q_pos, out);
            CHECK(st == KVQ_OK, "%s: %s", what, api->last_error(ctx16));
            if (st == KVQ_OK) {
                double r = compare_attention_at(KVQ_PROFILE_FP16, rk, rv, pos, rp, q, n_q, q_pos, out, what);
                if (r > worst) worst = r;
            }
            count++;
            if (n <= 20000u && rnd(3) == 0) { /* the same tensors three times in one batch, other queries */
                const kvq_backend_tensor *bk[3] = {tk, tk, tk}, *bv[3] = {tv, tv, tv};
                const uint32_t *bp[3] = {pos, pos, pos};
                uint32_t qp[3] = {q_pos, q_pos + 7u, q_pos + 1000u};
                size_t m = (size_t)n_q * d;
                float *bq = malloc(3 * m * 4u), *bo = malloc(3 * m * 4u);
                fill_input(bq, 3 * m, 0);
                st = api->attention_decode_batch(ctx16, 3, bk, bv, bp, rp, bq, n_q, qp, bo);
                CHECK(st == KVQ_OK, "%s batch: %s", what, api->last_error(ctx16));
                for (uint32_t s = 0; st == KVQ_OK && s < 3; s++) {
                    double r = compare_attention_at(KVQ_PROFILE_FP16, rk, rv, pos, rp, bq + s * m, n_q, qp[s],
                                                    bo + s * m, what);
                    if (r > worst) worst = r;
                }
                batches++;
                free(bq);
                free(bo);
            }
        }
        api->tensor_free(ctx16, tk);
        api->tensor_free(ctx16, tv);
        kvq_qtensor_free(rk);
        kvq_qtensor_free(rv);
        free(keys);
        free(values);
        free(modality);
        free(ranges);
        free(pos);
        free(q);
        free(out);
    }
    const unsigned long long tc = kvq_cuda_attention_tc_launches() - launches0;
    /* Every case is in the kernel's format; a case whose keys leave the fp16 domain runs twice. */
    CHECK(tc >= (unsigned long long)(count + batches), "the tensor-core kernel ran %llu times for %d cases in its "
          "format", tc, count + batches);
    printf("attention, tensor-core kernel (fp16 profile): %d cases + %d batches, %llu launches, worst error %.3g of "
           "the fp16 bound\n", count, batches, tc, worst);
    if (was != NULL)
        setenv("KVQ_CUDA_ATTENTION", saved, 1);
    else
        unsetenv("KVQ_CUDA_ATTENTION");
}

/* The fast kernel's format (attention_fast.cu): head_dim 128, HALF RoPE at
 * consecutive positions, equal 2/3/4/8-bit codes, one value group per token,
 * keys calibrated or online in blocks of 32k tokens; with outliers, sinks and
 * fp16 policy tokens, lengths around its tiles, up to several splits. */
static bool short_cases = false; /* --attention-fast-only: up to 4097 tokens */

static void check_attention_fast(void)
{
    const unsigned long long launches0 = kvq_cuda_attention_fast_launches();
    int count = 0;
    for (int it = 0; it < 48; it++) {
        const uint32_t d = 128;
        const uint32_t bits = (uint32_t[]){2, 3, 4, 8}[it % 4];
        const bool nuq = bits != 8 && rnd(3) == 0;
        const uint32_t n = (uint32_t[]){1, 31, 33, 128, 129, 300, 1000, 4097, 20000, 70000}[rnd(short_cases ? 8 : 10)];
        const uint32_t n_q = (uint32_t[]){1, 2, 3, 4, 8, 12}[rnd(6)];
        size_t elems = (size_t)n * d;
        float *keys = malloc(elems * 4u), *values = malloc(elems * 4u);
        uint8_t *modality = malloc(n);
        kvq_synth_params sp = {n, d, 5000u + (uint64_t)it, 2, 0.01f, 1, n > 64 ? 40 : 0, 8};
        kvq_synth_kv(&sp, keys, values, modality);
        kvq_channel_range *ranges = malloc(d * sizeof *ranges);
        kvq_head_config kc, vc;
        qcase k = {KVQ_ROLE_KEYS, rnd(3) ? KVQ_KEYS_PER_CHANNEL_ONLINE : KVQ_KEYS_PER_CHANNEL_CALIBRATED,
                   nuq ? KVQ_SCHEME_NUQ : (kvq_scheme)rnd(2), bits, rnd(2) ? 128u : 32u,
                   rnd(4) ? 10000u : 0u, d, n, (int)rnd(5), 0};
        qcase v = {KVQ_ROLE_VALUES, 0, nuq ? KVQ_SCHEME_NUQ : (kvq_scheme)rnd(2), bits, 0, k.ppm, d, n, k.policy, 0};
        config_of(&k, &kc, ranges, keys);
        config_of(&v, &vc, NULL, values);
        kvq_qtensor *rk = NULL, *rv = NULL;
        CHECK(kvq_quantize_head(&kc, keys, n, d, modality, &rk) == KVQ_OK, "fast setup keys");
        CHECK(kvq_quantize_head(&vc, values, n, d, modality, &rv) == KVQ_OK, "fast setup values");
        kvq_backend_tensor *tk = NULL, *tv = NULL;
        CHECK(api->tensor_upload(ctx, rk, &tk) == KVQ_OK, "upload keys: %s", api->last_error(ctx));
        CHECK(api->tensor_upload(ctx, rv, &tv) == KVQ_OK, "upload values: %s", api->last_error(ctx));
        uint32_t *pos = malloc(n * 4u);
        uint32_t base = (uint32_t[]){0, 5000000, 2147483647u - 70001u}[rnd(3)];
        for (uint32_t t = 0; t < n; t++) pos[t] = base + t;
        kvq_rope rope = {KVQ_ROPE_HALF, rnd(2) ? 10000.0f : 500000.0f};
        float *q = malloc((size_t)n_q * d * 4u), *out = malloc((size_t)n_q * d * 4u);
        fill_input(q, (size_t)n_q * d, 0);
        char what[200];
        snprintf(what, sizeof what, "fast attention n %u n_q %u bits %u %s keys %s G %u ppm %u policy %d pos %u", n,
                 n_q, bits, nuq ? "NUQ" : "uniform", k.mode == KVQ_KEYS_PER_CHANNEL_ONLINE ? "online" : "calibrated",
                 k.group, k.ppm, k.policy, base);
        if (tk != NULL && tv != NULL) {
            kvq_status st = api->attention_decode(ctx, tk, tv, pos, &rope, q, n_q, base + n, out);
            CHECK(st == KVQ_OK, "%s: %s", what, api->last_error(ctx));
            if (st == KVQ_OK) compare_attention(rk, rv, pos, &rope, q, n_q, base + n, out, what);
            count++;
        }
        api->tensor_free(ctx, tk);
        api->tensor_free(ctx, tv);
        kvq_qtensor_free(rk);
        kvq_qtensor_free(rv);
        free(keys);
        free(values);
        free(modality);
        free(ranges);
        free(pos);
        free(q);
        free(out);
    }
    const unsigned long long fast = kvq_cuda_attention_fast_launches() - launches0;
    /* The point of these cases is the fast kernel: each must have run it. */
    const char *forced = getenv("KVQ_CUDA_ATTENTION");
    if (forced == NULL || strcmp(forced, "general") != 0)
        CHECK(fast == (unsigned long long)count, "the fast kernel ran %llu times for %d cases in its format", fast,
              count);
    printf("attention, fast kernel: %d cases, %llu fast launches\n", count, fast);
}

static void check_attention(void)
{
    int count = 0;
    for (int it = 0; it < 60; it++) {
        uint32_t d = (uint32_t[]){32, 64, 128, 256, 80, 512, 1024}[rnd(7)];
        uint32_t kbits = (d * 3u) % 32u == 0 && rnd(4) == 0 ? 3u : (uint32_t[]){2, 4, 8}[rnd(3)];
        uint32_t vbits = (uint32_t[]){2, 4, 8}[rnd(3)];
        if ((d * kbits) % 32u != 0) kbits = 8;
        if ((d * vbits) % 32u != 0) vbits = 8;
        uint32_t n = (uint32_t[]){1, 2, 7, 129, 300, 1500, 5000}[rnd(7)];
        if (d >= 512 && n > 1500) n = 1500;
        uint32_t n_q = (uint32_t[]){1, 2, 4, 5, 8, 12}[rnd(6)];
        size_t elems = (size_t)n * d;
        float *keys = malloc(elems * 4u), *values = malloc(elems * 4u);
        uint8_t *modality = malloc(n);
        kvq_synth_params sp = {n, d, 1000u + (uint64_t)it, 2, 0.01f, 1, n > 64 ? 40 : 0, 8};
        kvq_synth_kv(&sp, keys, values, modality);
        kvq_channel_range *ranges = malloc(d * sizeof *ranges);
        kvq_head_config kc, vc;
        qcase k = {KVQ_ROLE_KEYS, rnd(2) ? KVQ_KEYS_PER_CHANNEL_ONLINE : KVQ_KEYS_PER_CHANNEL_CALIBRATED,
                   kbits == 8 ? KVQ_SCHEME_UNIFORM_ASYM : (kvq_scheme)rnd(3), kbits, 16, 10000, d, n, (int)rnd(5), 0};
        qcase v = {KVQ_ROLE_VALUES, 0, vbits == 8 ? KVQ_SCHEME_UNIFORM_SYM : (kvq_scheme)rnd(3), vbits,
                   rnd(2) ? 0 : 16, 10000, d, n, k.policy, 0};
        if (d % 16u != 0) v.group = 0;
        config_of(&k, &kc, ranges, keys);
        config_of(&v, &vc, NULL, values);
        kvq_qtensor *rk = NULL, *rv = NULL;
        CHECK(kvq_quantize_head(&kc, keys, n, d, modality, &rk) == KVQ_OK, "attention setup keys");
        CHECK(kvq_quantize_head(&vc, values, n, d, modality, &rv) == KVQ_OK, "attention setup values");
        kvq_backend_tensor *tk = NULL, *tv = NULL;
        CHECK(api->quantize_head(ctx, &kc, keys, n, d, modality, &tk) == KVQ_OK, "quantize keys: %s",
              api->last_error(ctx));
        CHECK(api->quantize_head(ctx, &vc, values, n, d, modality, &tv) == KVQ_OK, "quantize values: %s",
              api->last_error(ctx));
        uint32_t *pos = malloc(n * 4u);
        uint32_t base = (uint32_t[]){0, 5000000, 2147483647u - 6000u}[rnd(3)];
        bool shuffled = rnd(3) == 0;
        for (uint32_t t = 0; t < n; t++) pos[t] = shuffled ? base + rnd(6000) : base + t;
        uint32_t q_pos = base + n;
        kvq_rope rope = {(kvq_rope_pairing)rnd(3), rnd(2) ? 10000.0f : 500000.0f};
        const kvq_rope *rp = rnd(5) == 0 ? NULL : &rope;
        float *q = malloc((size_t)n_q * d * 4u), *out = malloc((size_t)n_q * d * 4u);
        fill_input(q, (size_t)n_q * d, 0);
        char what[160];
        snprintf(what, sizeof what, "attention d %u n %u n_q %u kbits %u vbits %u pairing %d pos %u%s", d, n, n_q,
                 kbits, vbits, rp ? (int)rp->pairing : -1, base, shuffled ? " shuffled" : "");
        if (tk != NULL && tv != NULL) {
            kvq_status st = api->attention_decode(ctx, tk, tv, pos, rp, q, n_q, q_pos, out);
            CHECK(st == KVQ_OK, "%s: %s", what, api->last_error(ctx));
            if (st == KVQ_OK) compare_attention(rk, rv, pos, rp, q, n_q, q_pos, out, what);
            /* The batch slot on three sequences (this one twice, one shorter). */
            if (n > 3) {
                const kvq_backend_tensor *bk[3] = {tk, tk, tk}, *bv[3] = {tv, tv, tv};
                kvq_qtensor *sk = NULL, *sv = NULL;
                kvq_backend_tensor *uk = NULL, *uv = NULL;
                uint32_t n2 = n / 3u;
                kvq_quantize_head(&kc, keys, n2, d, modality, &sk);
                kvq_quantize_head(&vc, values, n2, d, modality, &sv);
                api->tensor_upload(ctx, sk, &uk);
                api->tensor_upload(ctx, sv, &uv);
                bk[1] = uk;
                bv[1] = uv;
                const uint32_t *bp[3] = {pos, pos, pos};
                uint32_t qp[3] = {q_pos, q_pos + 7u, q_pos};
                float *bq = malloc((size_t)3 * n_q * d * 4u), *bout = malloc((size_t)3 * n_q * d * 4u);
                fill_input(bq, (size_t)3 * n_q * d, 0);
                st = api->attention_decode_batch(ctx, 3, bk, bv, bp, rp, bq, n_q, qp, bout);
                CHECK(st == KVQ_OK, "batch %s: %s", what, api->last_error(ctx));
                if (st == KVQ_OK) {
                    size_t m = (size_t)n_q * d;
                    compare_attention(rk, rv, pos, rp, bq, n_q, qp[0], bout, "batch seq 0");
                    compare_attention(sk, sv, pos, rp, bq + m, n_q, qp[1], bout + m, "batch seq 1");
                    compare_attention(rk, rv, pos, rp, bq + 2 * m, n_q, qp[2], bout + 2 * m, "batch seq 2");
                }
                api->tensor_free(ctx, uk);
                api->tensor_free(ctx, uv);
                kvq_qtensor_free(sk);
                kvq_qtensor_free(sv);
                free(bq);
                free(bout);
            }
            count++;
        }
        api->tensor_free(ctx, tk);
        api->tensor_free(ctx, tv);
        kvq_qtensor_free(rk);
        kvq_qtensor_free(rv);
        free(keys);
        free(values);
        free(modality);
        free(ranges);
        free(pos);
        free(q);
        free(out);
    }
    printf("attention: %d cases (each also as a batch of 3)\n", count);
}

/* ---- the cache ---- */
static void check_cache(void)
{
    int count = 0;
    for (int it = 0; it < 16; it++) {
        uint32_t d = (uint32_t[]){32, 64, 128}[rnd(3)];
        uint32_t total = 150;
        float *keys = malloc((size_t)total * d * 4u), *values = malloc((size_t)total * d * 4u);
        uint8_t *modality = malloc(total);
        kvq_synth_params sp = {total, d, 77u + (uint64_t)it, 2, 0.01f, 1, 20, 6};
        kvq_synth_kv(&sp, keys, values, modality);
        kvq_channel_range *ranges = malloc(d * sizeof *ranges);
        qcase k = {KVQ_ROLE_KEYS, it % 2 ? KVQ_KEYS_PER_CHANNEL_ONLINE : KVQ_KEYS_PER_CHANNEL_CALIBRATED,
                   (kvq_scheme)rnd(3), 4, 8, 20000, d, total, it % 5, 0};
        qcase v = {KVQ_ROLE_VALUES, 0, (kvq_scheme)rnd(3), (uint32_t[]){2, 4}[rnd(2)], it % 3 ? 0 : 16, 30000, d, total,
                   it % 5, 0};
        kvq_head_config kc, vc;
        config_of(&k, &kc, ranges, keys);
        config_of(&v, &vc, NULL, values);
        kvq_cache *ref = NULL;
        kvq_backend_cache *cache = NULL;
        CHECK(kvq_cache_create(&kc, &vc, d, &ref) == KVQ_OK, "reference cache");
        kvq_status st = api->cache_create(ctx, &kc, &vc, d, &cache);
        CHECK(st == KVQ_OK, "cache_create: %s", api->last_error(ctx));
        if (st != KVQ_OK) continue;
        char what[128];
        for (uint32_t done = 0; done < total;) {
            uint32_t piece = 1 + rnd(21);
            if (piece > total - done) piece = total - done;
            bool own_pos = rnd(4) == 0;
            uint32_t pos[32];
            for (uint32_t i = 0; i < piece; i++) pos[i] = 1000u + done * 3u + i;
            kvq_status rs = kvq_cache_append(ref, keys + (size_t)done * d, values + (size_t)done * d, modality + done,
                                             own_pos ? pos : NULL, piece);
            st = api->cache_append(ctx, cache, keys + (size_t)done * d, values + (size_t)done * d, modality + done,
                                   own_pos ? pos : NULL, piece);
            snprintf(what, sizeof what, "cache %d (key mode %d) after %u tokens", it, k.mode, done + piece);
            CHECK(rs == KVQ_OK && st == KVQ_OK, "%s: append %d/%d: %s", what, st, rs, api->last_error(ctx));
            done += piece;
            const kvq_backend_tensor *vk = NULL, *vv = NULL;
            CHECK(api->cache_view(ctx, cache, &vk, &vv) == KVQ_OK, "%s: view", what);
            kvq_qtensor *gk = read_back(vk), *gv = read_back(vv);
            CHECK(gk && gv, "%s: read views", what);
            if (gk) same_qtensor(gk, kvq_cache_keys(ref), what);
            if (gv) same_qtensor(gv, kvq_cache_values(ref), what);
            kvq_qtensor_free(gk);
            kvq_qtensor_free(gv);
            if (rnd(3) == 0 || done == total) {
                uint32_t n_q = 4;
                float q[4 * 128], out[4 * 128];
                fill_input(q, (size_t)n_q * d, 0);
                kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
                uint32_t qp = kvq_cache_positions(ref)[done - 1] + 1u;
                st = api->cache_attend(ctx, cache, &rope, q, n_q, qp, out);
                CHECK(st == KVQ_OK, "%s: attend: %s", what, api->last_error(ctx));
                if (st == KVQ_OK)
                    compare_attention(kvq_cache_keys(ref), kvq_cache_values(ref), kvq_cache_positions(ref), &rope, q,
                                      n_q, qp, out, what);
            }
        }
        /* A failed append changes nothing. */
        float nan_row[128];
        for (uint32_t c = 0; c < d; c++) nan_row[c] = c == 3 ? NAN : 1.0f;
        st = api->cache_append(ctx, cache, nan_row, nan_row, NULL, NULL, 1);
        CHECK(st == KVQ_ERR_NONFINITE_INPUT, "cache append of NaN gave %d", st);
        const kvq_backend_tensor *vk = NULL, *vv = NULL;
        api->cache_view(ctx, cache, &vk, &vv);
        kvq_qtensor *gk = read_back(vk);
        if (gk) same_qtensor(gk, kvq_cache_keys(ref), "after a failed append");
        kvq_qtensor_free(gk);
        api->cache_free(ctx, cache);
        kvq_cache_free(ref);
        free(keys);
        free(values);
        free(modality);
        free(ranges);
        count++;
    }
    printf("cache: %d caches of 150 tokens appended in pieces\n", count);
}

/* ---- error codes ---- */
static void check_errors(void)
{
    float x[64 * 4];
    fill_input(x, 64 * 4, 0);
    kvq_head_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.role = KVQ_ROLE_VALUES;
    cfg.quantizer.scheme = KVQ_SCHEME_UNIFORM_ASYM;
    cfg.quantizer.bits = 4;
    cfg.policy = kvq_token_policy_default();
    kvq_backend_tensor *t = (kvq_backend_tensor *)(void *)&cfg; /* a sentinel that must stay */
    kvq_backend_tensor *orig = t;
    CHECK(api->quantize_head(ctx, NULL, x, 4, 64, NULL, &t) == KVQ_ERR_NULL_ARGUMENT && t == orig, "NULL config");
    cfg.quantizer.bits = 5;
    CHECK(api->quantize_head(ctx, &cfg, x, 4, 64, NULL, &t) == KVQ_ERR_UNSUPPORTED_BITS, "5 bits");
    cfg.quantizer.bits = 3;
    CHECK(api->quantize_head(ctx, &cfg, x, 4, 80, NULL, &t) == KVQ_ERR_HEAD_DIM_PACKING, "80 x 3 bits");
    cfg.quantizer.bits = 4;
    cfg.group_size = 5;
    CHECK(api->quantize_head(ctx, &cfg, x, 4, 64, NULL, &t) == KVQ_ERR_BAD_GROUP_SIZE, "group 5");
    cfg.group_size = 0;
    x[77] = INFINITY;
    uint8_t modality[4] = {0, 9, 0, 0};
    CHECK(api->quantize_head(ctx, &cfg, x, 4, 64, modality, &t) == KVQ_ERR_NONFINITE_INPUT && t == orig,
          "infinite input before a bad modality");
    x[77] = 1.0f;
    CHECK(api->quantize_head(ctx, &cfg, x, 4, 64, modality, &t) == KVQ_ERR_BAD_MODALITY && t == orig,
          "bad modality");
    cfg.policy.rule = (kvq_policy_rule)7;
    CHECK(api->quantize_head(ctx, &cfg, x, 4, 64, NULL, &t) == KVQ_ERR_BAD_ENUM, "policy rule 7");
    /* S11.1 checks in the reference's order, and a dequantized key beyond the
     * fp16 range (65536 = -65504 + 15 * 8736), which the reference rejects as
     * RoPE input. */
    kvq_channel_range wide[32];
    for (int c = 0; c < 32; c++) wide[c] = (kvq_channel_range){-65504.0f, 65504.0f};
    kvq_head_config kc;
    memset(&kc, 0, sizeof kc);
    kc.role = KVQ_ROLE_KEYS;
    kc.quantizer = (kvq_quantizer){KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
    kc.channel_range = wide;
    kc.policy.rule = KVQ_POLICY_QUANTIZE_ALL;
    cfg.policy = kc.policy;
    cfg.group_size = 0;
    float kx[2 * 32], vx[2 * 32], q[2 * 32], out[2 * 32], ref_out[2 * 32];
    fill_input(kx, 64, 0);
    fill_input(vx, 64, 0);
    fill_input(q, 64, 0);
    kx[5] = 65504.0f;
    kvq_qtensor *rk = NULL, *rv = NULL;
    kvq_backend_tensor *tk = NULL, *tv = NULL;
    kvq_quantize_head(&kc, kx, 2, 32, NULL, &rk);
    kvq_quantize_head(&cfg, vx, 2, 32, NULL, &rv);
    api->tensor_upload(ctx, rk, &tk);
    api->tensor_upload(ctx, rv, &tv);
    uint32_t pos[2] = {0, 1}, bad_pos[2] = {0, 0x80000000u};
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f}, bad_rope = {KVQ_ROPE_HALF, 1.0f};
    struct {
        const uint32_t *pos;
        const kvq_rope *rope;
        uint32_t n_q, q_pos;
    } calls[] = {{pos, &rope, 1, 2}, {pos, &rope, 0, 2}, {bad_pos, &rope, 1, 2}, {pos, &bad_rope, 1, 2},
                 {pos, &rope, 1, 0x80000000u}, {NULL, &rope, 1, 2}};
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        memcpy(out, q, sizeof out);
        kvq_status rs = kvq_attention_decode(rk, rv, calls[i].pos, calls[i].rope, q, calls[i].n_q, calls[i].q_pos,
                                             ref_out);
        kvq_status cs = api->attention_decode(ctx, tk, tv, calls[i].pos, calls[i].rope, q, calls[i].n_q,
                                              calls[i].q_pos, out);
        CHECK(rs == cs, "attention call %zu: status %d, reference %d (%s)", i, cs, rs, api->last_error(ctx));
        CHECK(cs == KVQ_OK || memcmp(out, q, sizeof out) == 0, "attention call %zu wrote its output on failure", i);
    }
    CHECK(kvq_attention_decode(rk, rv, pos, NULL, q, 1, 2, ref_out) == KVQ_ERR_NONFINITE_INPUT,
          "the reference accepts a key of 65536");
    api->tensor_free(ctx, tk);
    api->tensor_free(ctx, tv);
    kvq_qtensor_free(rk);
    kvq_qtensor_free(rv);
    printf("error codes: checked\n");
}

/* ---- the cuBLAS fp16 baseline (cuda_baseline.h) ---- */
static void check_baseline(void)
{
    const uint32_t n_seq = 3, n = 300, d = 128, n_q = 4;
    const size_t kv = (size_t)n_seq * n * d, qn = (size_t)n_seq * n_q * d;
    uint16_t *k16 = malloc(kv * 2u), *v16 = malloc(kv * 2u);
    float *q = malloc(qn * 4u), *out = malloc(qn * 4u);
    for (size_t i = 0; i < kv; i++) {
        k16[i] = kvq_fp16_from_fp32(kvq_rng_normal(&rng));
        v16[i] = kvq_fp16_from_fp32(kvq_rng_normal(&rng));
    }
    fill_input(q, qn, 0);
    kvq_cuda_baseline_shape shape = {n_seq, n, d, n_q};
    kvq_cuda_baseline *b = NULL;
    char msg[256];
    kvq_status st = kvq_cuda_baseline_create(0, &shape, &b, msg, sizeof msg);
    CHECK(st == KVQ_OK, "baseline create: %s", msg);
    if (st == KVQ_OK) {
        st = kvq_cuda_baseline_set_kv(b, k16, v16);
        if (st == KVQ_OK) st = kvq_cuda_baseline_attend(b, q, out);
        CHECK(st == KVQ_OK, "baseline attend: %s", kvq_cuda_baseline_last_error(b));
        /* Softmax attention in double over the same fp16 keys, values and
         * queries; the baseline rounds q and the weights to fp16. */
        double worst = 0.0;
        double *w = malloc(n * sizeof *w);
        for (uint32_t s = 0; st == KVQ_OK && s < n_seq; s++)
            for (uint32_t h = 0; h < n_q; h++) {
                const float *qh = q + ((size_t)s * n_q + h) * d;
                double m = -INFINITY, sum = 0.0;
                for (uint32_t t = 0; t < n; t++) {
                    double dot = 0.0;
                    for (uint32_t i = 0; i < d; i++)
                        dot += (double)kvq_fp32_from_fp16(kvq_fp16_from_fp32(qh[i])) *
                               kvq_fp32_from_fp16(k16[((size_t)s * n + t) * d + i]);
                    w[t] = dot / sqrt((double)d);
                    if (w[t] > m) m = w[t];
                }
                for (uint32_t t = 0; t < n; t++) sum += (w[t] = exp(w[t] - m));
                for (uint32_t j = 0; j < d; j++) {
                    double o = 0.0;
                    for (uint32_t t = 0; t < n; t++) o += w[t] / sum * kvq_fp32_from_fp16(v16[((size_t)s * n + t) * d + j]);
                    double err = fabs(o - out[((size_t)s * n_q + h) * d + j]);
                    if (err > worst) worst = err;
                }
            }
        CHECK(worst < 2e-3, "baseline differs from softmax attention by %g", worst);
        free(w);
        kvq_cuda_baseline_free(b);
    }
    free(k16);
    free(v16);
    free(q);
    free(out);
    printf("cuBLAS fp16 baseline: checked\n");
}

/* ---- timing ---- */
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void bench(void)
{
    const uint32_t d = 128, n_q = 8;
    const uint32_t lengths[] = {4096, 32768, 131072};
    for (int li = 0; li < 3; li++) {
        uint32_t n = lengths[li];
        size_t elems = (size_t)n * d;
        float *keys = malloc(elems * 4u), *values = malloc(elems * 4u);
        uint8_t *modality = malloc(n);
        kvq_synth_params sp = {n, d, 5, 2, 0.01f, 1, 576, 32};
        kvq_synth_kv(&sp, keys, values, modality);
        kvq_channel_range ranges[128];
        kvq_calibrate_channel_ranges(keys, n, d, 10000, ranges);
        kvq_head_config kc, vc;
        memset(&kc, 0, sizeof kc);
        memset(&vc, 0, sizeof vc);
        kc.role = KVQ_ROLE_KEYS;
        kc.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
        kc.quantizer = (kvq_quantizer){KVQ_SCHEME_NUQ, 4, &codebooks[4]};
        kc.channel_range = ranges;
        kc.policy = kvq_token_policy_default();
        vc.role = KVQ_ROLE_VALUES;
        vc.quantizer = (kvq_quantizer){KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
        vc.outlier_ppm = 10000;
        vc.policy = kc.policy;
        kvq_backend_tensor *tk = NULL, *tv = NULL;
        double t0 = now_ms();
        api->quantize_head(ctx, &kc, keys, n, d, modality, &tk);
        api->quantize_head(ctx, &vc, values, n, d, modality, &tv);
        double tq = now_ms() - t0;
        uint32_t *pos = malloc(n * 4u);
        for (uint32_t t = 0; t < n; t++) pos[t] = t;
        float q[8 * 128], out[8 * 128];
        fill_input(q, (size_t)n_q * d, 0);
        kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
        api->attention_decode(ctx, tk, tv, pos, &rope, q, n_q, n, out);
        const int reps = 50;
        t0 = now_ms();
        for (int r = 0; r < reps; r++) api->attention_decode(ctx, tk, tv, pos, &rope, q, n_q, n, out);
        double ta = (now_ms() - t0) / reps;
        /* The same without RoPE, to see what the double-precision angles cost. */
        t0 = now_ms();
        for (int r = 0; r < reps; r++) api->attention_decode(ctx, tk, tv, pos, NULL, q, n_q, n, out);
        double tn = (now_ms() - t0) / reps;
        /* A batch of 16 sequences of this length. */
        const kvq_backend_tensor *bk[16], *bv[16];
        const uint32_t *bp[16];
        uint32_t qp[16];
        float *bq = malloc((size_t)16 * n_q * d * 4u), *bo = malloc((size_t)16 * n_q * d * 4u);
        for (int s = 0; s < 16; s++) {
            bk[s] = tk;
            bv[s] = tv;
            bp[s] = pos;
            qp[s] = n;
        }
        fill_input(bq, (size_t)16 * n_q * d, 0);
        api->attention_decode_batch(ctx, 16, bk, bv, bp, &rope, bq, n_q, qp, bo);
        t0 = now_ms();
        for (int r = 0; r < 10; r++) api->attention_decode_batch(ctx, 16, bk, bv, bp, &rope, bq, n_q, qp, bo);
        double tb = (now_ms() - t0) / 10;

        kvq_cuda_baseline_shape shape = {1, n, d, n_q};
        kvq_cuda_baseline *b = NULL;
        char msg[256];
        double base_wall = -1, base_dev = -1;
        if (kvq_cuda_baseline_create(0, &shape, &b, msg, sizeof msg) == KVQ_OK) {
            uint16_t *kh = malloc(elems * 2u), *vh = malloc(elems * 2u);
            for (size_t i = 0; i < elems; i++) {
                kh[i] = kvq_fp16_from_fp32(keys[i]);
                vh[i] = kvq_fp16_from_fp32(values[i]);
            }
            kvq_cuda_baseline_set_kv(b, kh, vh);
            kvq_cuda_baseline_attend(b, q, out);
            t0 = now_ms();
            for (int r = 0; r < reps; r++) kvq_cuda_baseline_attend(b, q, out);
            base_wall = (now_ms() - t0) / reps;
            kvq_cuda_baseline_time(b, 50, &base_dev);
            kvq_cuda_baseline_free(b);
            free(kh);
            free(vh);
        }
        printf("bench n %6u d %u n_q %u: quantize K+V %.2f ms; attention %.3f ms (no RoPE %.3f ms); batch of 16 "
               "%.3f ms; fp16 cuBLAS baseline %.3f ms (device only %.3f ms)\n",
               n, d, n_q, tq, ta, tn, tb, base_wall, base_dev);
        api->tensor_free(ctx, tk);
        api->tensor_free(ctx, tv);
        free(keys);
        free(values);
        free(modality);
        free(pos);
        free(bq);
        free(bo);
    }
}

int main(int argc, char **argv)
{
    bool do_bench = argc > 1 && strcmp(argv[1], "--bench") == 0;
    bool bench_only = argc > 1 && strcmp(argv[1], "--bench-only") == 0;
    bool jobs_only = argc > 1 && strcmp(argv[1], "--jobs-only") == 0;
    /* Only the fast attention kernel's cases (short enough for compute-sanitizer). */
    bool fast_only = argc > 1 && strcmp(argv[1], "--attention-fast-only") == 0;
    bool tc_only = argc > 1 && strcmp(argv[1], "--attention-tc-only") == 0;
    bool tc_short = argc > 2 && strcmp(argv[2], "--short") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress is visible when redirected to a file */
    api = kvq_backend_cuda();
    char message[256];
    kvq_backend_options fp32 = {sizeof fp32, -1, -1, KVQ_PROFILE_FP32}, fp16 = {sizeof fp16, -1, -1, KVQ_PROFILE_FP16};
    kvq_status st = api->open(&fp32, &ctx, message, sizeof message);
    if (st != KVQ_OK) {
        printf("SKIP: %s\n", message);
        return 77;
    }
    st = api->open(&fp16, &ctx16, message, sizeof message);
    if (st != KVQ_OK) {
        printf("FAIL: cannot open an fp16-profile context: %s\n", message);
        return 1;
    }
    printf("device: %s\n", api->device_name(ctx));
    kvq_rng_seed(&rng, 20251123u);
    for (uint32_t b = 2; b <= 4; b++) kvq_codebook_normalfloat(b, &codebooks[b]);
    if (bench_only) {
        bench();
        api->close(ctx16);
        api->close(ctx);
        return 0;
    }
    if (tc_only) {
        check_attention_tc(tc_short);
        api->close(ctx16);
        api->close(ctx);
        printf("%s: %d of %d checks failed\n", failures ? "FAILED" : "PASSED", failures, checks);
        return failures ? 1 : 0;
    }
    if (fast_only) {
        short_cases = true;
        check_attention_fast();
        api->close(ctx16);
        api->close(ctx);
        printf("%s: %d of %d checks failed\n", failures ? "FAILED" : "PASSED", failures, checks);
        return failures ? 1 : 0;
    }
    check_packing();
    check_errors();
    check_quantize();
    check_quantize_jobs();
    if (jobs_only) {
        api->close(ctx16);
        api->close(ctx);
        printf("%s: %d of %d checks failed\n", failures ? "FAILED" : "PASSED", failures, checks);
        return failures ? 1 : 0;
    }
    check_attention_fast();
    check_attention_tc(false);
    check_attention();
    check_cache();
    check_baseline();
    if (do_bench) bench();
    api->close(ctx16);
    api->close(ctx);
    printf("%s: %d of %d checks failed\n", failures ? "FAILED" : "PASSED", failures, checks);
    return failures ? 1 : 0;
}
