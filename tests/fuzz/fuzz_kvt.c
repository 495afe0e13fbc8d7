/*
 * fuzz_kvt.c - the .kvt reader (S16.3) under fuzz_reader.h's promises; a
 * file's slices are then quantized (what kvq quantize does with them).
 */
#include "fuzz_reader.h"

#include "kvq/kvq_io.h"

#include <string.h>

static kvq_status read_kvt(const char *path, void **out) { return kvq_kvfile_read(path, (kvq_kvfile **)out); }
static kvq_status write_kvt(const char *path, const void *f) { return kvq_kvfile_write(path, f); }
static void free_kvt(void *f) { kvq_kvfile_free(f); }

/* Every value a reader returns is a valid input (S1.3, S10.1): the first slice of each role
 * quantizes, at 8 bits when head_dim allows the packing (S5.3). */
static void use_kvt(const void *object)
{
    const kvq_kvfile *f = object;
    if (f->head_dim % 4 != 0) return;
    for (int r = 0; r < 2; r++) {
        const float *x = kvq_kvfile_slice(f, (kvq_role)r, 0, 0);
        if (x == NULL) continue;
        kvq_head_config c;
        memset(&c, 0, sizeof c);
        c.role = KVQ_ROLE_VALUES;
        c.quantizer = (kvq_quantizer){KVQ_SCHEME_UNIFORM_ASYM, 8, NULL};
        c.outlier_ppm = 10000;
        c.policy = kvq_token_policy_default();
        kvq_qtensor *qt = NULL;
        kvq_status st = kvq_quantize_head(&c, x, f->n_tokens, f->head_dim, f->modality, &qt);
        fuzz_require(st == KVQ_OK || st == KVQ_ERR_OUT_OF_MEMORY, "a slice the reader returned does not quantize: %s",
                     kvq_last_error());
        kvq_qtensor_free(qt);
    }
}

static const fuzz_format kvt = {".kvt", 36, read_kvt, write_kvt, use_kvt, free_kvt};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader_run(&kvt, data, size);
    return 0;
}
