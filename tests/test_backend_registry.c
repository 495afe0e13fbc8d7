/*
 * test_backend_registry.c - the backend ABI's host side: finding backends by
 * name, refusing what is not a backend, and the "ref" backend's tensor
 * round trip (quantize -> tensor_info -> kvq_qtensor_alloc -> tensor_read).
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, chdir, getcwd */
#include "check_main.h"
#include "kvq/kvq.h"
#include "kvq/kvq_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const kvq_backend_api *find_ref(void)
{
    const kvq_backend_api *api = NULL;
    char message[256] = "";
    ck_assert_int_eq(kvq_backend_find("ref", &api, message, sizeof message), KVQ_OK);
    ck_assert_ptr_nonnull(api);
    return api;
}

START_TEST(builtins_start_with_ref)
{
    const kvq_backend_api *const *b = kvq_backend_builtins();
    ck_assert_ptr_nonnull(b[0]);
    ck_assert_str_eq(b[0]->name, "ref");
    ck_assert_uint_eq(b[0]->abi_version, KVQ_BACKEND_ABI_VERSION);
    ck_assert_ptr_eq(find_ref(), b[0]);
}
END_TEST

START_TEST(unknown_name_lists_builtins)
{
    const kvq_backend_api *api = (const kvq_backend_api *)&api; /* sentinel: must stay untouched */
    const kvq_backend_api *before = api;
    char message[256] = "";
    ck_assert_int_eq(kvq_backend_find("no-such-backend", &api, message, sizeof message), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_ptr_eq(api, before);
    ck_assert_ptr_nonnull(strstr(message, "no-such-backend"));
    ck_assert_ptr_nonnull(strstr(message, "ref"));
}
END_TEST

START_TEST(missing_plugin_file_is_an_io_error)
{
    const kvq_backend_api *api = NULL;
    char message[512] = "";
    ck_assert_int_eq(kvq_backend_find("/nonexistent/libnothing.so", &api, message, sizeof message), KVQ_ERR_IO);
    ck_assert_ptr_null(api);
    ck_assert_ptr_nonnull(strstr(message, "/nonexistent/libnothing.so"));
}
END_TEST

#ifdef KVQ_TEST_PLUGIN_NO_ENTRY
START_TEST(library_without_entry_symbol_is_refused)
{
    const kvq_backend_api *api = NULL;
    char message[512] = "";
    kvq_status status = kvq_backend_find(KVQ_TEST_PLUGIN_NO_ENTRY, &api, message, sizeof message);
    ck_assert_int_eq(status, KVQ_ERR_BAD_ARGUMENT);
    ck_assert_ptr_null(api);
    ck_assert_ptr_nonnull(strstr(message, KVQ_BACKEND_ENTRY_SYMBOL));
}
END_TEST

/* Copies file `from` to `to` (a plugin under another name). */
static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    char buffer[65536];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, in)) > 0) ck_assert_uint_eq(fwrite(buffer, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
}

/* Issue 17, finding 8: a name with ".so" and no '/' is a file in the current directory. dlopen
 * looked such a name up in LD_LIBRARY_PATH and the system's directories instead, so
 * "libm.so.6" loaded the C library's libm, and a plugin in the current directory was not found. */
START_TEST(bare_library_name_is_a_file_in_the_current_directory)
{
    char dir[] = "/tmp/kvq-registry-XXXXXX", cwd[4096];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(dir), 0);
    copy_file(KVQ_TEST_PLUGIN_EXAMPLE, "libmine.so");
    const kvq_backend_api *api = NULL;
    char message[512] = "";
    kvq_status found = kvq_backend_find("libmine.so", &api, message, sizeof message);
    kvq_status system_libm = kvq_backend_find("libm.so.6", &api, message, sizeof message);
    ck_assert_int_eq(chdir(cwd), 0);
    remove("libmine.so"); /* in cwd only if something went wrong above */
    char path[128];
    snprintf(path, sizeof path, "%s/libmine.so", dir);
    remove(path);
    rmdir(dir);
    ck_assert_int_eq(found, KVQ_OK);
    ck_assert_ptr_nonnull(api);
    ck_assert_str_eq(api->name, "example");
    ck_assert_int_eq(system_libm, KVQ_ERR_IO); /* ./libm.so.6 does not exist */
    ck_assert_msg(strstr(message, "./libm.so.6") != NULL, "%s", message);
}
END_TEST

/* Finding 8: the loader names the mandatory slot a table lacks. */
START_TEST(missing_mandatory_slot_is_named)
{
    const kvq_backend_api *api = NULL;
    char message[512] = "";
    ck_assert_int_eq(kvq_backend_find(KVQ_TEST_PLUGIN_MISSING_SLOT, &api, message, sizeof message),
                     KVQ_ERR_NULL_ARGUMENT);
    ck_assert_ptr_null(api);
    ck_assert_msg(strstr(message, "has no last_error") != NULL, "%s", message);
}
END_TEST

/* Finding 8: open returning KVQ_OK without a context is an error of the backend, with a reason
 * (kvq conform used to report "no reason given (KVQ_OK)"). */
START_TEST(open_without_context_is_refused)
{
    const kvq_backend_api *api = NULL;
    char message[512] = "";
    ck_assert_int_eq(kvq_backend_find(KVQ_TEST_PLUGIN_NULL_CONTEXT, &api, message, sizeof message), KVQ_OK);
    kvq_backend_context *ctx = (kvq_backend_context *)&api; /* sentinel */
    kvq_backend_options options = {sizeof options, -1, -1, -1};
    ck_assert_int_eq(kvq_backend_open(api, &options, &ctx, message, sizeof message), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_ptr_eq(ctx, (kvq_backend_context *)&api);
    ck_assert_msg(strstr(message, "open returned KVQ_OK but no context") != NULL, "%s", message);
    /* a real failure passes the backend's status and message through; success writes ctx */
    const kvq_backend_api *ref = find_ref();
    kvq_backend_options far = {sizeof far, 0, 3, -1};
    ck_assert_int_eq(kvq_backend_open(ref, &far, &ctx, message, sizeof message), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_str_ne(message, "");
    ck_assert_ptr_eq(ctx, (kvq_backend_context *)&api);
    ck_assert_int_eq(kvq_backend_open(ref, NULL, &ctx, message, sizeof message), KVQ_OK);
    ck_assert_ptr_ne(ctx, (kvq_backend_context *)&api);
    ref->close(ctx);
}
END_TEST
#endif

/* A values head with outliers, a sink and the text-centric policy, so that
 * every array of the qtensor is non-trivial. */
static void quantize_example(const kvq_backend_api *api, kvq_backend_context *ctx, kvq_backend_tensor **out,
                             kvq_qtensor **reference)
{
    enum { N = 40, D = 64 };
    static float x[N * D];
    static uint8_t modality[N];
    kvq_synth_params sp = {.n_tokens = N, .head_dim = D, .seed = 7, .n_outlier_channels = 2,
                           .tail_probability = 0.01f, .sink_token = 1, .image_run = 8, .text_run = 3};
    static float keys[N * D];
    ck_assert_int_eq(kvq_synth_kv(&sp, keys, x, modality), KVQ_OK);
    kvq_head_config config = {.role = KVQ_ROLE_VALUES,
                              .quantizer = {KVQ_SCHEME_UNIFORM_ASYM, 3, NULL},
                              .group_size = 32,
                              .outlier_ppm = 50000,
                              .policy = kvq_token_policy_default()};
    ck_assert_int_eq(api->quantize_head(ctx, &config, x, N, D, modality, out), KVQ_OK);
    ck_assert_int_eq(kvq_quantize_head(&config, x, N, D, modality, reference), KVQ_OK);
}

static void assert_same_qtensor(const kvq_qtensor *a, const kvq_qtensor *b)
{
    ck_assert_uint_eq(a->n_tokens, b->n_tokens);
    ck_assert_uint_eq(a->n_outliers, b->n_outliers);
    ck_assert(a->n_outliers > 0);
    ck_assert(a->n_fp16_rows > 0);
    size_t n = a->n_tokens, d = a->head_dim;
    ck_assert_mem_eq(a->precision, b->precision, n);
    ck_assert_mem_eq(a->fp16_slot, b->fp16_slot, n * sizeof *a->fp16_slot);
    ck_assert_mem_eq(a->fp16_rows, b->fp16_rows, a->n_fp16_rows * d * sizeof *a->fp16_rows);
    ck_assert_mem_eq(a->codes, b->codes, n * a->row_bytes);
    ck_assert_mem_eq(a->params, b->params, a->n_params * sizeof *a->params);
    ck_assert_mem_eq(a->outlier_ptr, b->outlier_ptr, (n + 1) * sizeof *a->outlier_ptr);
    ck_assert_mem_eq(a->outlier_index, b->outlier_index, a->n_outliers * sizeof *a->outlier_index);
    ck_assert_mem_eq(a->outlier_value, b->outlier_value, a->n_outliers * sizeof *a->outlier_value);
}

START_TEST(ref_tensor_round_trip)
{
    const kvq_backend_api *api = find_ref();
    kvq_backend_context *ctx = NULL;
    char message[256] = "";
    kvq_backend_options options = {sizeof options, -1, -1, -1};
    ck_assert_int_eq(api->open(&options, &ctx, message, sizeof message), KVQ_OK);
    kvq_backend_caps caps = {.struct_size = sizeof caps};
    ck_assert_int_eq(api->get_caps(ctx, &caps), KVQ_OK);
    ck_assert(caps.ops & KVQ_BACKEND_OP_QUANTIZE);

    kvq_backend_tensor *t = NULL;
    kvq_qtensor *reference = NULL;
    quantize_example(api, ctx, &t, &reference);

    kvq_qtensor header;
    ck_assert_int_eq(api->tensor_info(ctx, t, &header), KVQ_OK);
    ck_assert_ptr_null(header.codes);
    kvq_qtensor *got = NULL;
    ck_assert_int_eq(kvq_qtensor_alloc(&header, &got), KVQ_OK);
    ck_assert_int_eq(api->tensor_read(ctx, t, got), KVQ_OK);
    assert_same_qtensor(got, reference);

    /* Upload the reference's tensor, read it back: the same bytes again. */
    kvq_backend_tensor *uploaded = NULL;
    ck_assert_int_eq(api->tensor_upload(ctx, reference, &uploaded), KVQ_OK);
    kvq_qtensor *again = NULL;
    ck_assert_int_eq(kvq_qtensor_copy(reference, &again), KVQ_OK);
    memset(again->codes, 0xAB, again->n_tokens * again->row_bytes);
    ck_assert_int_eq(api->tensor_read(ctx, uploaded, again), KVQ_OK);
    assert_same_qtensor(again, reference);

    /* A destination with other sizes is refused and left as it was. */
    got->n_outliers -= 1;
    memset(got->codes, 0x5A, got->n_tokens * got->row_bytes);
    ck_assert_int_eq(api->tensor_read(ctx, t, got), KVQ_ERR_SIZE_MISMATCH);
    ck_assert_str_ne(api->last_error(ctx), "");
    for (size_t i = 0; i < got->n_tokens * got->row_bytes; i++) ck_assert_uint_eq(got->codes[i], 0x5A);
    got->n_outliers += 1;

    kvq_qtensor_free(again);
    kvq_qtensor_free(got);
    kvq_qtensor_free(reference);
    api->tensor_free(ctx, uploaded);
    api->tensor_free(ctx, t);
    api->close(ctx);
}
END_TEST

START_TEST(ref_errors_come_back_with_messages)
{
    const kvq_backend_api *api = find_ref();
    kvq_backend_context *ctx = NULL;
    char message[256] = "";
    ck_assert_int_eq(api->open(NULL, &ctx, message, sizeof message), KVQ_OK);
    float x[32] = {0};
    kvq_head_config config = {.role = KVQ_ROLE_VALUES, .quantizer = {KVQ_SCHEME_UNIFORM_ASYM, 5, NULL},
                              .policy = kvq_token_policy_default()};
    kvq_backend_tensor *t = (kvq_backend_tensor *)&config; /* sentinel */
    kvq_backend_tensor *before = t;
    ck_assert_int_eq(api->quantize_head(ctx, &config, x, 1, 32, NULL, &t), KVQ_ERR_UNSUPPORTED_BITS);
    ck_assert_ptr_eq(t, before);
    ck_assert_str_ne(api->last_error(ctx), "");
    uint8_t codes[32] = {0}, packed[8];
    ck_assert_int_eq(api->pack_codes(ctx, codes, 1, 32, 7, packed), KVQ_ERR_UNSUPPORTED_BITS);
    codes[3] = 4; /* does not fit in 2 bits */
    memset(packed, 0xEE, sizeof packed);
    ck_assert_int_eq(api->pack_codes(ctx, codes, 1, 32, 2, packed), KVQ_ERR_BAD_ARGUMENT);
    for (size_t i = 0; i < sizeof packed; i++) ck_assert_uint_eq(packed[i], 0xEE);
    api->close(ctx);
    kvq_backend_options far = {sizeof far, 0, 3, -1};
    ctx = NULL;
    ck_assert_int_eq(api->open(&far, &ctx, message, sizeof message), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_ptr_null(ctx);
    ck_assert_str_ne(message, "");
}
END_TEST

START_TEST(qtensor_alloc_checks_its_header)
{
    kvq_qtensor header = {.role = KVQ_ROLE_VALUES, .bits = 4, .n_tokens = 2, .head_dim = 32, .row_bytes = 15};
    kvq_qtensor *qt = (kvq_qtensor *)&header; /* sentinel */
    KVQ_EXPECT_STATUS(kvq_qtensor_alloc(&header, &qt), KVQ_ERR_SIZE_MISMATCH);
    ck_assert_ptr_eq(qt, (kvq_qtensor *)&header);
    header.row_bytes = 16;
    header.n_fp16_rows = 3;
    KVQ_EXPECT_STATUS(kvq_qtensor_alloc(&header, &qt), KVQ_ERR_SIZE_MISMATCH);
    header.n_fp16_rows = 1;
    header.n_params = 2;
    KVQ_EXPECT_STATUS(kvq_qtensor_alloc(&header, &qt), KVQ_OK);
    ck_assert_uint_eq(qt->n_fp16_rows, 1);
    ck_assert_uint_eq(qt->outlier_ptr[2], 0);
    kvq_qtensor_free(qt);
    KVQ_EXPECT_STATUS(kvq_qtensor_alloc(NULL, &qt), KVQ_ERR_NULL_ARGUMENT);
}
END_TEST

static Suite *backend_registry_suite(void)
{
    Suite *s = suite_create("backend_registry");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, builtins_start_with_ref);
    tcase_add_test(tc, unknown_name_lists_builtins);
    tcase_add_test(tc, missing_plugin_file_is_an_io_error);
#ifdef KVQ_TEST_PLUGIN_NO_ENTRY
    tcase_add_test(tc, library_without_entry_symbol_is_refused);
    tcase_add_test(tc, bare_library_name_is_a_file_in_the_current_directory);
    tcase_add_test(tc, missing_mandatory_slot_is_named);
    tcase_add_test(tc, open_without_context_is_refused);
#endif
    tcase_add_test(tc, ref_tensor_round_trip);
    tcase_add_test(tc, ref_errors_come_back_with_messages);
    tcase_add_test(tc, qtensor_alloc_checks_its_header);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(backend_registry_suite)
