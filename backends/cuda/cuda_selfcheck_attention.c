/*
 * cuda_selfcheck_attention.c - the two specialised attention kernels of the
 * CUDA backend on the shapes they are written for: each case must have run
 * the kernel (its launch counter, which no ABI call shows) and stay within
 * the bound of its profile (S12.3, S12.4). The general kernel and every other
 * shape are the conformance runner's (kvq conform --backend cuda).
 */
#define _POSIX_C_SOURCE 200112L /* setenv under -std=c11 */
#include "cuda_selfcheck.h"

#include <stdlib.h>
#include <string.h>

/* The tensor-core kernel's format (attention_tc.cu) on a context of the fp16 profile (S12.4):
 * head_dim 64/128/256, uniform 2/4/8-bit keys and values of one width (asym or sym each),
 * calibrated or online keys (blocks of 16k tokens), one value group per token, HALF RoPE at
 * consecutive positions or no RoPE at any positions; outliers, sinks and fp16 tokens; lengths
 * around its 16- and 64-token tiles up to many splits; MHA and GQA groups, single and batched. */
void check_attention_tc(int iterations, uint32_t n_lengths)
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
    for (int it = 0; it < iterations; it++) {
        const uint32_t d = (uint32_t[]){64, 128, 128, 256}[rnd(4)];
        const uint32_t bits = d >= 128u ? (uint32_t[]){2, 4, 4, 8}[rnd(4)] : (uint32_t[]){4, 8}[rnd(2)];
        static const uint32_t lengths[] = {1, 15, 16, 17, 63, 64, 65, 129, 300, 1000, 4097, 20000, 70000};
        const uint32_t n = lengths[rnd(n_lengths)];
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
 * fp16 policy tokens, lengths around its tiles, up to several splits
 * (short_cases: up to 4097 tokens, for compute-sanitizer). */
void check_attention_fast(bool short_cases)
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
            if (st == KVQ_OK) compare_attention_at(KVQ_PROFILE_FP32, rk, rv, pos, &rope, q, n_q, base + n, out, what);
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

