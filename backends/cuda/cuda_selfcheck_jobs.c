/*
 * cuda_selfcheck_jobs.c - the batched quantization (cuda_quantize_jobs,
 * cuda_quantize_batch.c) against the per-slice steps it replaces, byte for
 * byte: the part of kvq_cuda_selfcheck no test through the ABI can reach.
 */
#include "cuda_selfcheck.h"

#include <stdlib.h>
#include <string.h>

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

/* S4.4: the slice's parameter pairs (values' group 0 is the whole row). */
static size_t jobs_param_count(const jobs_case *c)
{
    uint32_t group = c->role == KVQ_ROLE_VALUES && c->group == 0 ? c->d : c->group;
    return (size_t)kvq_param_count(kvq_param_layout_of(c->role, c->mode), group, c->n, c->d);
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
    if (ok) kvq_final_precision(&s->cfg, n, decided, 0, precision);
    if (ok) n_rows = kvq_host_fp16_slots(precision, n, 0, slot); /* UINT32_MAX is KVQ_CUDA_NO_SLOT */
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
    if (ok && calibrated) kvq_host_calibrated_params(&s->cfg, d, cal);
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

void check_quantize_jobs(void)
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

