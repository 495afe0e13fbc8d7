/*
 * fuzz_kvc.c - the .kvc reader (S16.4) under fuzz_reader.h's promises; its
 * ranges and codebooks are then used to quantize, as kvq quantize would.
 */
#include "fuzz_reader.h"

#include "kvq/kvq_io.h"

#include <stdlib.h>
#include <string.h>

static kvq_status read_kvc(const char *path, void **out) { return kvq_calibration_read(path, (kvq_calibration **)out); }
static kvq_status write_kvc(const char *path, const void *c) { return kvq_calibration_write(path, c); }
static void free_kvc(void *c) { kvq_calibration_free(c); }

/* S16.4: the ranges of head (0, 0) calibrate keys, and every codebook is one NUQ accepts. */
static void use_kvc(const void *object)
{
    const kvq_calibration *cal = object;
    for (uint32_t l = 0; l < cal->n_layers; l++) {
        if (cal->key_codebook != NULL) {
            kvq_quantizer q = {KVQ_SCHEME_NUQ, cal->key_codebook[l].bits, &cal->key_codebook[l]};
            fuzz_require(kvq_quantizer_check(&q) == KVQ_OK, "key codebook %u: %s", l, kvq_last_error());
        }
        if (cal->value_codebook != NULL) {
            kvq_quantizer q = {KVQ_SCHEME_NUQ, cal->value_codebook[l].bits, &cal->value_codebook[l]};
            fuzz_require(kvq_quantizer_check(&q) == KVQ_OK, "value codebook %u: %s", l, kvq_last_error());
        }
    }
    const kvq_channel_range *ranges = kvq_calibration_ranges(cal, 0, 0);
    uint32_t d = cal->head_dim;
    if (ranges == NULL || d % 4 != 0) return;
    float *x = calloc((size_t)2 * d, sizeof *x);
    fuzz_require(x != NULL, "out of memory");
    for (uint32_t i = 0; i < 2 * d; i++) x[i] = (float)((int)(i % 7) - 3);
    kvq_head_config c;
    memset(&c, 0, sizeof c);
    c.role = KVQ_ROLE_KEYS;
    c.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    c.quantizer = (kvq_quantizer){KVQ_SCHEME_UNIFORM_ASYM, 8, NULL};
    c.channel_range = ranges;
    c.n_channel_range = d;
    c.policy = kvq_token_policy_default();
    kvq_qtensor *qt = NULL;
    kvq_status st = kvq_quantize_head(&c, x, 2, d, NULL, &qt);
    fuzz_require(st == KVQ_OK, "ranges the reader returned do not calibrate keys: %s", kvq_last_error());
    float *y = malloc((size_t)2 * d * sizeof *y);
    fuzz_require(y != NULL && kvq_dequantize_head(qt, y) == KVQ_OK, "%s", kvq_last_error());
    free(y);
    kvq_qtensor_free(qt);
    free(x);
}

static const fuzz_format kvc = {".kvc", 36, read_kvc, write_kvc, use_kvc, free_kvc};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader_run(&kvc, data, size);
    return 0;
}
