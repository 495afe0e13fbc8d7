/*
 * cuda_selfcheck.h - what the parts of kvq_cuda_selfcheck share: the CUDA
 * contexts under test, the counter of checks, the generator of inputs and
 * the configurations the cases are made of.
 *
 * The selfcheck checks what only it can see from inside the backend (the
 * conformance runner, `kvq conform --backend cuda`, judges everything the
 * ABI offers): the batched quantization (cuda_quantize_jobs) byte for byte
 * against the per-slice steps, that the fast and tensor-core attention
 * kernels are the ones that ran for the shapes they are written for (launch
 * counters) within their bounds, and the cuBLAS fp16 baseline of the
 * benchmarks.
 */
#ifndef KVQ_CUDA_SELFCHECK_H
#define KVQ_CUDA_SELFCHECK_H

#include "cuda_internal.h"

#include <stdbool.h>
#include <stdio.h>

extern const kvq_backend_api *api;
extern kvq_backend_context *ctx;   /* the fp32 profile: the exact kernels */
extern kvq_backend_context *ctx16; /* the fp16 profile (S12.4): the tensor-core kernel where it applies */
extern int failures, checks;
extern kvq_rng rng;                /* seeded once in main: every run draws the same cases */
extern kvq_codebook codebooks[5];  /* NormalFloat, by bits */

/* Counts a check; prints the first 60 that fail with where they are. */
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

/* An integer in [0, n) from rng. */
uint32_t rnd(uint32_t n);
/* Inputs that stress ties, signed zeros and heavy tails (kind 1-3), or plain normals (0). */
void fill_input(float *x, size_t n, int kind);

/* One head slice's configuration. */
typedef struct qcase {
    kvq_role role;
    kvq_key_mode mode;
    kvq_scheme scheme;
    uint32_t bits, group, ppm, d, n;
    int policy, input;
} qcase;
/* The configuration of c; calibrated keys get ranges calibrated on x. */
void config_of(const qcase *c, kvq_head_config *cfg, kvq_channel_range *ranges, const float *x);

/* got within kvq_attention_error_bound_profile(profile) of the reference, the
 * first output outside it named; returns the worst error / bound. */
double compare_attention_at(kvq_attention_profile profile, const kvq_qtensor *k, const kvq_qtensor *v,
                            const uint32_t *pos, const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_pos,
                            const float *got, const char *what);

/* The checks (cuda_selfcheck_jobs.c, cuda_selfcheck_attention.c, cuda_selfcheck.c). */
void check_quantize_jobs(void);
void check_attention_fast(bool short_only);
/* `iterations` random cases, lengths from the first n_lengths of {1, 15, 16, 17, 63, 64, 65, 129, 300,
 * 1000, 4097, 20000, 70000}: 90 and 13 in the full run, 40 and 10 with --short (compute-sanitizer
 * memcheck), 12 and 9 with --tiny (racecheck, about a hundred times slower). */
void check_attention_tc(int iterations, uint32_t n_lengths);
void check_baseline(void);

#endif
