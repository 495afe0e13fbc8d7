/*
 * fuzz_kvqz.c - the .kvqz reader (S16.5) under fuzz_reader.h's promises, and
 * S16.5's own: every tensor it returns dequantizes and is attended to with
 * KVQ_OK and finite results (issue 17, finding 3).
 */
#include "fuzz_reader.h"

#include "kvq/kvq_io.h"

#include <math.h>
#include <stdlib.h>

static kvq_status read_kvqz(const char *path, void **out) { return kvq_qfile_read(path, (kvq_qfile **)out); }
static kvq_status write_kvqz(const char *path, const void *f) { return kvq_qfile_write(path, f); }
static void free_kvqz(void *f) { kvq_qfile_free(f); }

static void require_finite(const float *x, size_t n, const char *what, uint32_t l, uint32_t h)
{
    for (size_t i = 0; i < n; i++)
        fuzz_require(isfinite(x[i]), "layer %u head %u: %s[%zu] = %g is not finite", l, h, what, i, (double)x[i]);
}

static void use_kvqz(const void *object)
{
    const kvq_qfile *f = object;
    size_t n = (size_t)f->n_tokens * f->head_dim;
    float *y = malloc(n * sizeof *y), *q = malloc((size_t)f->head_dim * sizeof *q),
          *out = malloc((size_t)f->head_dim * sizeof *out), *bound = malloc((size_t)f->head_dim * sizeof *bound);
    uint32_t *positions = malloc((size_t)f->n_tokens * sizeof *positions);
    fuzz_require(y && q && out && bound && positions, "out of memory");
    for (uint32_t i = 0; i < f->head_dim; i++) q[i] = (float)((int)(i % 5) - 2) * 0.25f;
    for (uint32_t t = 0; t < f->n_tokens; t++) positions[t] = t;
    for (uint32_t l = 0; l < f->n_layers; l++)
        for (uint32_t h = 0; h < f->n_heads; h++) {
            const kvq_qtensor *k = *kvq_qfile_slot(f, l, h, KVQ_ROLE_KEYS), *v = *kvq_qfile_slot(f, l, h, KVQ_ROLE_VALUES);
            for (int r = 0; r < 2; r++) {
                kvq_status st = kvq_dequantize_head(r == 0 ? k : v, y);
                fuzz_require(st == KVQ_OK, "layer %u head %u %s: the reader returned a tensor that does not dequantize: %s",
                             l, h, r == 0 ? "keys" : "values", kvq_last_error());
                require_finite(y, n, r == 0 ? "dequantized keys" : "dequantized values", l, h);
            }
            kvq_rope none = {KVQ_ROPE_NONE, 10000.0f};
            kvq_status st = kvq_attention_decode(k, v, positions, &none, q, 1, f->n_tokens, out);
            fuzz_require(st == KVQ_OK, "layer %u head %u: attention over what the reader returned: %s", l, h,
                         kvq_last_error());
            require_finite(out, f->head_dim, "attention", l, h);
            st = kvq_attention_error_bound(k, v, positions, &none, q, 1, f->n_tokens, bound);
            fuzz_require(st == KVQ_OK, "layer %u head %u: the attention bound: %s", l, h, kvq_last_error());
        }
    free(y), free(q), free(out), free(bound), free(positions);
}

static const fuzz_format kvqz = {".kvqz", 32, read_kvqz, write_kvqz, use_kvqz, free_kvqz};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader_run(&kvqz, data, size);
    return 0;
}
