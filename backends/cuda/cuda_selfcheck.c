/*
 * cuda_selfcheck.c - kvq_cuda_selfcheck: what only a check inside the CUDA
 * backend can see, for a machine with a GPU (cuda_selfcheck.h). Everything
 * the backend offers through the ABI is the conformance runner's to judge
 * (`kvq conform --backend cuda`, tools/run-conform.sh gpu); its speed is
 * kvq bench's (study (a)).
 *
 *   kvq_cuda_selfcheck            every check; exit 0 when all pass, 1 if any
 *                                 fails, 77 when there is no CUDA device, 2 for
 *                                 an unknown argument
 *   kvq_cuda_selfcheck --jobs-only  the batched quantization only
 *   kvq_cuda_selfcheck --attention-fast-only  the fast attention kernel's cases
 *                                 only (short enough for compute-sanitizer)
 *   kvq_cuda_selfcheck --attention-tc-only [--short]  the tensor-core kernel's
 *                                 cases only (fp16 profile, S12.4; --short for
 *                                 compute-sanitizer: tools/run-gpu.sh check,
 *                                 sanitize)
 *
 * Checked: the backend's batched quantization (cuda_quantize_jobs) against its
 * per-slice steps, byte for byte, and its capacity failure; the fast and the
 * tensor-core attention kernels ran for every case in their formats (launch
 * counters) and stayed within kvq_attention_error_bound_profile (S12.3,
 * S12.4); the cuBLAS fp16 baseline against softmax attention in double.
 */
#define _POSIX_C_SOURCE 200112L /* setenv under -std=c11 */
#include "cuda_selfcheck.h"

#include "cuda_backend.h"
#include "cuda_baseline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const kvq_backend_api *api;
kvq_backend_context *ctx;
kvq_backend_context *ctx16;
int failures, checks;
kvq_rng rng;
kvq_codebook codebooks[5];

uint32_t rnd(uint32_t n) { return (uint32_t)(kvq_rng_next_u64(&rng) % n); }

/* Inputs that stress ties, signed zeros and heavy tails, or realistic KV. */
void fill_input(float *x, size_t n, int kind)
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

void config_of(const qcase *c, kvq_head_config *cfg, kvq_channel_range *ranges, const float *x)
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

double compare_attention_at(kvq_attention_profile profile, const kvq_qtensor *k, const kvq_qtensor *v,
                            const uint32_t *pos, const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_pos,
                            const float *got, const char *what)
{
    size_t m = (size_t)n_q * k->head_dim;
    float *ref = malloc(m * 4u), *bound = malloc(m * 4u);
    CHECK(kvq_attention_decode(k, v, pos, rope, q, n_q, q_pos, ref) == KVQ_OK, "%s: reference", what);
    CHECK(kvq_attention_error_bound_profile(k, v, pos, rope, q, n_q, q_pos, profile, bound) == KVQ_OK, "%s: bound",
          what);
    size_t bad = 0, first = m;
    double worst = 0.0;
    for (size_t i = 0; i < m; i++) {
        double err = fabs((double)got[i] - (double)ref[i]);
        if (!(err <= bound[i]) && bad++ == 0) first = i;
        if (bound[i] > 0 && err / bound[i] > worst) worst = err / bound[i];
    }
    CHECK(bad == 0,
          "%s: %zu of %zu outputs outside the %s bound (worst error/bound %.3g), first out[%zu] (query %zu, channel "
          "%zu) = %.9g, reference %.9g, bound %.3g",
          what, bad, m, kvq_attention_profile_name(profile), worst, first, first / k->head_dim, first % k->head_dim,
          first < m ? (double)got[first] : 0.0, first < m ? (double)ref[first] : 0.0,
          first < m ? (double)bound[first] : 0.0);
    free(ref);
    free(bound);
    return worst;
}

/* ---- the cuBLAS fp16 baseline (cuda_baseline.h) ---- */
void check_baseline(void)
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

static int finish(void)
{
    api->close(ctx16);
    api->close(ctx);
    printf("%s: %d of %d checks failed\n", failures ? "FAILED" : "PASSED", failures, checks);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    bool jobs_only = strcmp(mode, "--jobs-only") == 0;
    bool fast_only = strcmp(mode, "--attention-fast-only") == 0;
    bool tc_only = strcmp(mode, "--attention-tc-only") == 0;
    bool tc_short = tc_only && argc > 2 && strcmp(argv[2], "--short") == 0;
    bool tc_tiny = tc_only && argc > 2 && strcmp(argv[2], "--tiny") == 0;
    if ((argc > 1 && !jobs_only && !fast_only && !tc_only) || argc > (tc_short || tc_tiny ? 3 : 2)) {
        fprintf(stderr, "usage: kvq_cuda_selfcheck [--jobs-only | --attention-fast-only | --attention-tc-only "
                        "[--short | --tiny]]\n  (the conformance runner judges the rest: kvq conform --backend cuda; timing "
                        "is kvq bench's)\n");
        return 2;
    }
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
    if (tc_only) {
        check_attention_tc(tc_tiny ? 12 : tc_short ? 40 : 90, tc_tiny ? 9u : tc_short ? 10u : 13u);
        return finish();
    }
    if (fast_only) {
        check_attention_fast(true);
        return finish();
    }
    check_quantize_jobs();
    if (jobs_only) return finish();
    check_attention_fast(false);
    check_attention_tc(90, 13u);
    check_baseline();
    return finish();
}
