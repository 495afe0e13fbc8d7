/*
 * backend_main.c - a program built against an installed kvq that uses the backend ABI
 * (kvq/kvq_backend.h) the way an application or a third party's runner would: it finds the
 * built-in "ref" backend with kvq_backend_find, opens it, and quantizes and dequantizes one head
 * slice through the table. The reference backend is libkvq behind the ABI, so its results must
 * equal libkvq's own calls bit for bit. Exit status 0 means every check passed.
 */
#include <kvq/kvq.h>
#include <kvq/kvq_backend.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_TOKENS = 40, HEAD_DIM = 64 };

static int failures = 0;

static void expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "backend consumer: %s\n", what);
        failures++;
    }
}

/* Whether the NULL-terminated list of built-in backends names `name`. */
static int listed(const char *name)
{
    for (const kvq_backend_api *const *b = kvq_backend_builtins(); *b != NULL; b++)
        if (strcmp((*b)->name, name) == 0) return 1;
    return 0;
}

static void quantize_through_the_abi(const kvq_backend_api *api, kvq_backend_context *ctx)
{
    static float keys[N_TOKENS * HEAD_DIM], values[N_TOKENS * HEAD_DIM];
    static float got[N_TOKENS * HEAD_DIM], want[N_TOKENS * HEAD_DIM];
    kvq_synth_params p = {N_TOKENS, HEAD_DIM, 7u, 2u, 0.01f, 1u, 0u, 0u};
    expect(kvq_synth_kv(&p, keys, values, NULL) == KVQ_OK, "kvq_synth_kv failed");

    kvq_head_config config;
    memset(&config, 0, sizeof config);
    config.role = KVQ_ROLE_VALUES;
    config.quantizer.scheme = KVQ_SCHEME_UNIFORM_ASYM;
    config.quantizer.bits = 4;
    config.outlier_ppm = 20000;
    config.policy = kvq_token_policy_default();

    kvq_backend_tensor *t = NULL;
    kvq_status st = api->quantize_head(ctx, &config, values, N_TOKENS, HEAD_DIM, NULL, &t);
    if (st != KVQ_OK) {
        fprintf(stderr, "backend consumer: quantize_head: %s (%s)\n", kvq_status_name(st), api->last_error(ctx));
        failures++;
        return;
    }
    kvq_qtensor *qt = NULL;
    expect(kvq_quantize_head(&config, values, N_TOKENS, HEAD_DIM, NULL, &qt) == KVQ_OK, "kvq_quantize_head failed");
    kvq_qtensor header;
    expect(api->tensor_info(ctx, t, &header) == KVQ_OK, "tensor_info failed");
    if (qt != NULL && failures == 0) {
        expect(header.n_tokens == qt->n_tokens && header.head_dim == qt->head_dim && header.n_params == qt->n_params &&
                   header.n_outliers == qt->n_outliers && header.n_fp16_rows == qt->n_fp16_rows,
               "tensor_info differs from kvq_quantize_head's header");
        expect(qt->n_outliers > 0, "the slice has no outliers: the check would not exercise them");
    }
    expect(api->dequantize(ctx, t, got) == KVQ_OK, "dequantize failed");
    if (qt != NULL) expect(kvq_dequantize_head(qt, want) == KVQ_OK, "kvq_dequantize_head failed");
    expect(memcmp(got, want, sizeof got) == 0, "the backend's dequantized slice differs from libkvq's");
    kvq_qtensor_free(qt);
    api->tensor_free(ctx, t);
}

int main(void)
{
    expect(listed("ref"), "kvq_backend_builtins() does not list \"ref\"");
    const kvq_backend_api *api = NULL;
    char message[512] = "";
    kvq_status st = kvq_backend_find("ref", &api, message, sizeof message);
    if (st != KVQ_OK) {
        fprintf(stderr, "backend consumer: kvq_backend_find(\"ref\"): %s (%s)\n", kvq_status_name(st), message);
        return 1;
    }
    kvq_backend_options options = {sizeof options, -1, -1, -1};
    kvq_backend_context *ctx = NULL;
    st = api->open(&options, &ctx, message, sizeof message);
    if (st != KVQ_OK) {
        fprintf(stderr, "backend consumer: open: %s (%s)\n", kvq_status_name(st), message);
        return 1;
    }
    kvq_backend_caps caps;
    memset(&caps, 0, sizeof caps);
    caps.struct_size = sizeof caps;
    expect(api->get_caps(ctx, &caps) == KVQ_OK, "get_caps failed");
    expect((caps.ops & KVQ_BACKEND_OP_QUANTIZE) != 0 && (caps.ops & KVQ_BACKEND_OP_DEQUANTIZE) != 0,
           "ref does not advertise quantize and dequantize");
    quantize_through_the_abi(api, ctx);
    api->close(ctx);
    if (failures == 0) printf("backend consumer: all checks passed (backend %s, ABI %u)\n", api->name,
                              KVQ_BACKEND_ABI_VERSION);
    return failures == 0 ? 0 : 1;
}
