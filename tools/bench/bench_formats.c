/*
 * bench_formats.c - the cache formats and model shapes the attention studies
 * sweep (issue 5 (a), (d)), their head configurations, deterministic input
 * data, and the bytes an attention pass has to read for a quantized slice.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

/* LLaMA-7B: 32 heads of 128 channels, one query head per KV head. The GQA
 * shape is LLaMA-2-70B's ratio at 7B's width: 8 KV heads, 4 query heads each. */
const bench_shape bench_shapes[BENCH_SHAPE_COUNT] = {
    {"llama7b-mha", 32u, 1u, 128u},
    {"gqa-8kv-4q", 8u, 4u, 128u},
    {"gqa-8kv-8q", 8u, 8u, 128u},
};

bool bench_selected(const char *list, const char *name)
{
    if (list == NULL) return true;
    size_t len = strlen(name);
    for (const char *p = list; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0) return true;
        if (end == NULL) break;
        p = end + 1;
    }
    return false;
}

const char *const bench_attention_columns[][2] = {
    {"shape", "shape"},
    {"format", "format"},
    {"kernel", "kvq kernel"},
    {"context", "tokens"},
    {"time_ms.median", "median ms"},
    {"time_ms.min", "min ms"},
    {"time_ms.max", "max ms"},
    {"bytes_read", "bytes read"},
    {"bandwidth_gbs", "GB/s"},
    {"copy_fraction", "of copy bw"},
    {"speedup_vs_fastest_fp16", "speedup vs fastest fp16"},
};
const size_t bench_attention_column_count = sizeof bench_attention_columns / sizeof bench_attention_columns[0];

static void add(bench_format *out, size_t capacity, size_t *n, kvq_scheme scheme, uint32_t bits, bool extras)
{
    if (*n >= capacity) return;
    bench_format *f = &out[(*n)++];
    memset(f, 0, sizeof *f);
    f->scheme = scheme;
    f->bits = bits;
    f->outlier_ppm = extras ? 10000u : 0u; /* 1% dense-and-sparse outliers (S7) */
    f->n_sinks = extras ? 1u : 0u;         /* one attention sink (S8) */
    snprintf(f->name, sizeof f->name, "%s%u%s", scheme == KVQ_SCHEME_NUQ ? "nuq" : "int", bits,
             extras ? "+outliers+sink" : "");
}

size_t bench_formats(bool quick, bench_format *out, size_t capacity)
{
    size_t n = 0;
    if (quick) {
        add(out, capacity, &n, KVQ_SCHEME_UNIFORM_ASYM, 2u, false);
        add(out, capacity, &n, KVQ_SCHEME_UNIFORM_ASYM, 4u, false);
        add(out, capacity, &n, KVQ_SCHEME_NUQ, 4u, true);
        return n;
    }
    static const uint32_t uniform_bits[] = {2u, 3u, 4u, 8u}, nuq_bits[] = {2u, 3u, 4u};
    for (int extras = 0; extras < 2; extras++) {
        for (size_t i = 0; i < sizeof uniform_bits / sizeof *uniform_bits; i++)
            add(out, capacity, &n, KVQ_SCHEME_UNIFORM_ASYM, uniform_bits[i], extras != 0);
        for (size_t i = 0; i < sizeof nuq_bits / sizeof *nuq_bits; i++)
            add(out, capacity, &n, KVQ_SCHEME_NUQ, nuq_bits[i], extras != 0);
    }
    return n;
}

size_t bench_formats_post_rope(bench_format *out, size_t n, size_t capacity)
{
    /* The same quantized tensors (RoPE is not part of quantization, S9): only attention differs. */
    const size_t given = n;
    for (size_t i = 0; i < given && n < capacity; i++) {
        const bench_format *f = &out[i];
        if (f->scheme != KVQ_SCHEME_UNIFORM_ASYM || f->outlier_ppm != 0u || f->n_sinks != 0u || f->post_rope) continue;
        char base[sizeof f->name];
        memcpy(base, f->name, sizeof base); /* out[i] and out[n] differ, but gcc's -Wrestrict cannot tell */
        out[n] = *f;
        out[n].post_rope = true;
        snprintf(out[n].name, sizeof out[n].name, "%.30s-post-rope", base);
        n++;
    }
    return n;
}

void bench_format_configs(const bench_format *f, kvq_codebook *codebook, kvq_head_config *keys, kvq_head_config *values)
{
    memset(keys, 0, sizeof *keys);
    memset(values, 0, sizeof *values);
    if (f->scheme == KVQ_SCHEME_NUQ) kvq_codebook_normalfloat(f->bits, codebook);
    kvq_token_policy policy = kvq_token_policy_default();
    policy.rule = KVQ_POLICY_QUANTIZE_ALL; /* only the sink stays fp16 */
    policy.budget_ppm = 0u;
    policy.n_sinks = f->n_sinks;
    policy.recent_window = 0u;
    keys->role = KVQ_ROLE_KEYS;
    keys->quantizer.scheme = f->scheme;
    keys->quantizer.bits = f->bits;
    keys->quantizer.codebook = f->scheme == KVQ_SCHEME_NUQ ? codebook : NULL;
    keys->key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE; /* S4.3: no calibration data needed */
    keys->group_size = 128u;
    keys->outlier_ppm = f->outlier_ppm;
    keys->policy = policy;
    *values = *keys;
    values->role = KVQ_ROLE_VALUES;
    values->group_size = 0u; /* one group per token (S4.1) */
}

void bench_json_format(bench_json *w, const bench_format *f)
{
    bench_json_string(w, "scheme", f->scheme == KVQ_SCHEME_NUQ ? "nuq (NormalFloat codebook)" : "uniform asym");
    bench_json_u64(w, "outlier_ppm", f->outlier_ppm);
    bench_json_u64(w, "n_sinks", f->n_sinks);
    bench_json_string(w, "keys", f->post_rope ? "per channel, online, blocks of 128 tokens (S4.3), post-RoPE (no "
                                                "rotation at attention)"
                                              : "per channel, online, blocks of 128 tokens (S4.3), pre-RoPE "
                                                "(rotate-half at attention)");
    bench_json_string(w, "values", "per token, one group of head_dim (S4.1)");
}

void bench_fill_random(float *x, size_t n, uint64_t seed)
{
    /* xorshift64*: the data's distribution does not change the work done, only
     * which codes come out; the sum of four uniforms is roughly bell-shaped. */
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1u;
    for (size_t i = 0; i < n; i++) {
        float sum = 0.0f;
        for (int k = 0; k < 4; k++) {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            sum += (float)((s * 0x2545F4914F6CDD1Dull) >> 40) * (1.0f / 16777216.0f);
        }
        x[i] = (sum - 2.0f) * 1.7f;
    }
}

uint64_t bench_qtensor_bytes(const kvq_qtensor *h)
{
    /* What attention must read: precision, codes, group params, the fp16 rows
     * and their slots, and the outliers (pointers, indices, values). */
    uint64_t n = h->n_tokens, d = h->head_dim;
    uint64_t ptr = h->role == KVQ_ROLE_VALUES ? n + 1u : d + 1u;
    return n + n * (uint64_t)h->row_bytes + (uint64_t)h->n_params * 4u + (uint64_t)h->n_fp16_rows * (d * 2u + 4u) +
           ptr * 4u + (uint64_t)h->n_outliers * 6u;
}

const char *bench_study_key(bench_study s)
{
    static const char *const keys[BENCH_STUDY_COUNT] = {"attention_cuda", "quantize_cuda", "offload_cuda",
                                                        "attention_opencl", "backend_abi"};
    return (unsigned)s < BENCH_STUDY_COUNT ? keys[s] : "?";
}
