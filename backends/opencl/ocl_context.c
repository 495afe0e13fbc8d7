/*
 * ocl_context.c - choosing and opening an OpenCL device, building the kvq
 * program (the .cl files of kernels/opencl, embedded at build time), capabilities.
 */
#include "ocl_internal.h"

#include "backend_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kernel names, indexed by ocl_kernel_id. */
static const char *const kernel_names[OCL_K_COUNT] = {
    [OCL_K_PACK_ROWS] = "kvq_pack_rows",
    [OCL_K_UNPACK_ROWS] = "kvq_unpack_rows",
    [OCL_K_SCAN_BLOCKS] = "kvq_scan_blocks",
    [OCL_K_SCAN_ADD] = "kvq_scan_add",
    [OCL_K_ADD_OFFSET] = "kvq_add_offset",
    [OCL_K_FP16_ROWS] = "kvq_fp16_rows",
    [OCL_K_QUANTIZE_GROUPS] = "kvq_quantize_groups",
    [OCL_K_CALIBRATED_PARAMS] = "kvq_calibrated_params",
    [OCL_K_CALIBRATED_ENCODE] = "kvq_calibrated_encode",
    [OCL_K_COUNT_ROWS] = "kvq_count_rows",
    [OCL_K_FILL_ROWS] = "kvq_fill_rows",
    [OCL_K_COUNT_COLS] = "kvq_count_cols",
    [OCL_K_FILL_COLS] = "kvq_fill_cols",
    [OCL_K_COL_PTR] = "kvq_col_ptr",
    [OCL_K_MERGE_CSC] = "kvq_merge_csc",
    [OCL_K_MERGE_CSC_PTR] = "kvq_merge_csc_ptr",
    [OCL_K_DEQUANTIZE] = "kvq_dequantize",
    [OCL_K_SCATTER_OUTLIERS] = "kvq_scatter_outliers",
    [OCL_K_ROPE_ROWS] = "kvq_rope_rows",
    [OCL_K_ATTENTION_PARTIAL_BATCH] = "kvq_attention_partial_batch",
    [OCL_K_ATTENTION_COMBINE_BATCH] = "kvq_attention_combine_batch",
    [OCL_K_SOFTMAX_ROWS] = "kvq_softmax_rows",
    [OCL_K_WIDEN_FP16] = "kvq_widen_fp16",
};

/* CL_PLATFORM_NOT_FOUND_KHR (cl_khr_icd): the ICD loader found no platform. */
#define OCL_PLATFORM_NOT_FOUND (-1001)

/* All platforms, malloc'd; *count 0 (and KVQ_OK) when there is no ICD. */
static kvq_status get_platforms(cl_platform_id **out, cl_uint *count, char *message, size_t message_size)
{
    *out = NULL;
    *count = 0;
    cl_uint n = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &n);
    if (err == OCL_PLATFORM_NOT_FOUND || n == 0) return KVQ_OK; /* no ICD installed: no devices */
    if (err != CL_SUCCESS) {
        kvq_host_say(message, message_size, "clGetPlatformIDs failed: %s", ocl_cl_error_name(err));
        return KVQ_ERR_IO;
    }
    cl_platform_id *platforms = malloc(n * sizeof *platforms);
    if (platforms == NULL) return KVQ_ERR_OUT_OF_MEMORY;
    err = clGetPlatformIDs(n, platforms, NULL);
    if (err != CL_SUCCESS) {
        free(platforms);
        kvq_host_say(message, message_size, "clGetPlatformIDs failed: %s", ocl_cl_error_name(err));
        return KVQ_ERR_IO;
    }
    *out = platforms;
    *count = n;
    return KVQ_OK;
}

/* The devices of one platform, malloc'd (none is not an error). */
static cl_device_id *get_devices(cl_platform_id platform, cl_uint *count)
{
    cl_uint n = 0;
    *count = 0;
    if (clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 0, NULL, &n) != CL_SUCCESS || n == 0) return NULL;
    cl_device_id *devices = malloc(n * sizeof *devices);
    if (devices == NULL) return NULL;
    if (clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, n, devices, NULL) != CL_SUCCESS) {
        free(devices);
        return NULL;
    }
    *count = n;
    return devices;
}

static void device_string(cl_device_id device, cl_device_info what, char *buf, size_t size)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(device, what, size, buf, NULL) != CL_SUCCESS) buf[0] = '\0';
    buf[size - 1] = '\0';
}

static void platform_string(cl_platform_id platform, cl_platform_info what, char *buf, size_t size)
{
    buf[0] = '\0';
    if (clGetPlatformInfo(platform, what, size, buf, NULL) != CL_SUCCESS) buf[0] = '\0';
    buf[size - 1] = '\0';
}

/* "<device name> (<platform name>, <CL version>)" */
static void describe(cl_platform_id platform, cl_device_id device, char *out, size_t size)
{
    char device_name[160], platform_name[120], version[120];
    device_string(device, CL_DEVICE_NAME, device_name, sizeof device_name);
    platform_string(platform, CL_PLATFORM_NAME, platform_name, sizeof platform_name);
    device_string(device, CL_DEVICE_VERSION, version, sizeof version);
    snprintf(out, size, "%s (%s, %s)", device_name, platform_name, version);
}

kvq_status ocl_list_devices(kvq_backend_device_fn callback, void *user, char *message, size_t message_size)
{
    if (callback == NULL) {
        kvq_host_say(message, message_size, "callback: NULL");
        return KVQ_ERR_NULL_ARGUMENT;
    }
    cl_platform_id *platforms = NULL;
    cl_uint n_platforms = 0;
    kvq_status st = get_platforms(&platforms, &n_platforms, message, message_size);
    if (st != KVQ_OK) return st;
    for (cl_uint p = 0; p < n_platforms; p++) {
        cl_uint n_devices = 0;
        cl_device_id *devices = get_devices(platforms[p], &n_devices);
        for (cl_uint d = 0; d < n_devices; d++) {
            char name[384];
            describe(platforms[p], devices[d], name, sizeof name);
            callback(user, (int32_t)p, (int32_t)d, name);
        }
        free(devices);
    }
    free(platforms);
    return KVQ_OK;
}

/* An index from the environment, or -1 when unset; -2 when malformed. */
static int env_index(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') return -1;
    char *end = NULL;
    long i = strtol(v, &end, 10);
    if (*end != '\0' || i < 0 || i > 65535) return -2;
    return (int)i;
}

/* Resolves (platform, device): explicit options, then KVQ_OPENCL_PLATFORM /
 * KVQ_OPENCL_DEVICE, then the first GPU, then the first device. A device
 * index without a platform index means platform 0. */
static kvq_status choose_device(const kvq_backend_options *options, cl_platform_id *platform, cl_device_id *device,
                                char *message, size_t message_size)
{
    int want_p = kvq_backend_option_platform(options), want_d = kvq_backend_option_device(options);
    if (want_p < 0) want_p = env_index("KVQ_OPENCL_PLATFORM");
    if (want_d < 0) want_d = env_index("KVQ_OPENCL_DEVICE");
    if (want_p == -2 || want_d == -2) {
        kvq_host_say(message, message_size, "KVQ_OPENCL_PLATFORM / KVQ_OPENCL_DEVICE: not a non-negative integer");
        return KVQ_ERR_BAD_ARGUMENT;
    }
    if (want_p < 0 && want_d >= 0) want_p = 0;

    cl_platform_id *platforms = NULL;
    cl_uint n_platforms = 0;
    kvq_status st = get_platforms(&platforms, &n_platforms, message, message_size);
    if (st != KVQ_OK) return st;
    if (n_platforms == 0) {
        kvq_host_say(message, message_size, "no OpenCL platform found (is an ICD such as PoCL installed?)");
        return KVQ_ERR_BAD_ARGUMENT;
    }
    if (want_p >= (int)n_platforms) {
        free(platforms);
        kvq_host_say(message, message_size, "platform: index %d out of range (%u platforms)", want_p, n_platforms);
        return KVQ_ERR_BAD_ARGUMENT;
    }
    bool found = false;
    for (int pass = 0; pass < 2 && !found; pass++) { /* pass 0: a GPU; pass 1: any device */
        for (cl_uint p = 0; p < n_platforms && !found; p++) {
            if (want_p >= 0 && (int)p != want_p) continue;
            cl_uint n_devices = 0;
            cl_device_id *devices = get_devices(platforms[p], &n_devices);
            for (cl_uint d = 0; d < n_devices && !found; d++) {
                if (want_d >= 0 && (int)d != want_d) continue;
                cl_device_type type = 0;
                clGetDeviceInfo(devices[d], CL_DEVICE_TYPE, sizeof type, &type, NULL);
                if (want_d < 0 && pass == 0 && !(type & CL_DEVICE_TYPE_GPU)) continue;
                *platform = platforms[p];
                *device = devices[d];
                found = true;
            }
            free(devices);
        }
    }
    free(platforms);
    if (!found) {
        kvq_host_say(message, message_size, "device: %s",
                    want_d >= 0 ? "index out of range on the chosen platform" : "no OpenCL device found");
        return KVQ_ERR_BAD_ARGUMENT;
    }
    return KVQ_OK;
}

static bool has_extension(cl_device_id device, const char *extension)
{
    size_t size = 0;
    if (clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, 0, NULL, &size) != CL_SUCCESS || size == 0) return false;
    char *list = malloc(size + 1u);
    if (list == NULL) return false;
    bool found = false;
    if (clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, size, list, NULL) == CL_SUCCESS) {
        list[size] = '\0';
        size_t len = strlen(extension);
        for (const char *p = strstr(list, extension); p != NULL && !found; p = strstr(p + 1, extension))
            found = (p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0');
    }
    free(list);
    return found;
}

/* Builds the program; on failure the build log goes into message. No
 * -cl-mad-enable / -cl-fast-relaxed-math / -cl-denorms-are-zero: the spec's
 * exact results forbid them (S0, S12.1). */
static kvq_status build_program(kvq_backend_context *ctx, char *message, size_t message_size)
{
    cl_int err = CL_SUCCESS;
    ctx->program = clCreateProgramWithSource(ctx->context, (cl_uint)kvq_opencl_source_count,
                                             (const char **)kvq_opencl_sources, NULL, &err);
    if (err != CL_SUCCESS) {
        kvq_host_say(message, message_size, "clCreateProgramWithSource failed: %s", ocl_cl_error_name(err));
        return ocl_from_cl(ctx, err, "creating the program");
    }
    /* KVQ_OPENCL_BUILD_LOG=1 prints the compiler's log of a successful build to stderr, for porters
     * who want to see what their compiler made of the kernels; on NVIDIA's OpenCL it also asks for
     * -cl-nv-verbose, whose log has ptxas's registers, spills and shared memory per kernel (ncu
     * does not profile OpenCL launches, so this is what there is to learn occupancy from). */
    const bool show_log = getenv("KVQ_OPENCL_BUILD_LOG") != NULL && strcmp(getenv("KVQ_OPENCL_BUILD_LOG"), "1") == 0;
    char vendor[128] = "";
    clGetDeviceInfo(ctx->device, CL_DEVICE_VENDOR, sizeof vendor - 1u, vendor, NULL);
    const bool nvidia = strstr(vendor, "NVIDIA") != NULL;
    char options[160];
    snprintf(options, sizeof options, "-cl-std=CL1.2%s%s", ctx->fp64 ? " -DKVQ_HAVE_FP64=1" : "",
             show_log && nvidia ? " -cl-nv-verbose" : "");
    err = clBuildProgram(ctx->program, 1, &ctx->device, options, NULL, NULL);
    if (err != CL_SUCCESS || show_log) {
        size_t size = 0;
        clGetProgramBuildInfo(ctx->program, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &size);
        char *log = malloc(size + 1u);
        if (log != NULL) {
            log[0] = '\0';
            clGetProgramBuildInfo(ctx->program, ctx->device, CL_PROGRAM_BUILD_LOG, size, log, NULL);
            log[size] = '\0';
        }
        if (err == CL_SUCCESS) { /* show_log */
            fprintf(stderr, "kvq opencl: build log for %s (options: %s):\n%s\n", ctx->name, options,
                    log != NULL && log[0] != '\0' ? log : "(empty)");
            free(log);
        } else {
            ocl_fail(ctx, KVQ_ERR_IO, "building the kvq OpenCL program for %s failed (%s): %s", ctx->name,
                     ocl_cl_error_name(err), log != NULL ? log : "(no build log)");
            kvq_host_say(message, message_size, "%s", ctx->host.error.message);
            free(log);
            return KVQ_ERR_IO;
        }
    }
    for (int k = 0; k < OCL_K_COUNT; k++) {
        ctx->kernels[k] = clCreateKernel(ctx->program, kernel_names[k], &err);
        if (err != CL_SUCCESS) {
            kvq_host_say(message, message_size, "clCreateKernel(%s) failed: %s", kernel_names[k],
                        ocl_cl_error_name(err));
            return ocl_from_cl(ctx, err, kernel_names[k]);
        }
    }
    return KVQ_OK;
}

/* Reads the device's properties into ctx. */
static void query_device(kvq_backend_context *ctx)
{
    cl_device_fp_config single = 0, dbl = 0;
    clGetDeviceInfo(ctx->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof single, &single, NULL);
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof dbl, &dbl, NULL) != CL_SUCCESS) dbl = 0;
    ctx->denormals = (single & CL_FP_DENORM) != 0;
    ctx->fp64 = dbl != 0 || has_extension(ctx->device, "cl_khr_fp64");
    size_t max_wg = 1;
    clGetDeviceInfo(ctx->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_wg, &max_wg, NULL);
    ctx->max_wg = max_wg > 0 ? max_wg : 1u;
    cl_ulong local = 0, alloc = 0;
    clGetDeviceInfo(ctx->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
    clGetDeviceInfo(ctx->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, NULL);
    ctx->local_mem = (size_t)local;
    ctx->max_alloc = alloc;
    cl_uint units = 1;
    clGetDeviceInfo(ctx->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL);
    ctx->compute_units = units > 0 ? units : 1u;
    /* Test hooks: force the host cos/sin table, or one attention path. */
    const char *table = getenv("KVQ_OPENCL_ROPE_TABLE");
    ctx->rope_host_table = !ctx->fp64 || (table != NULL && strcmp(table, "1") == 0);
    const char *path = getenv("KVQ_OPENCL_ATTENTION");
    ctx->path = OCL_PATH_AUTO;
    if (path != NULL && strcmp(path, "fused") == 0) ctx->path = OCL_PATH_FUSED;
    if (path != NULL && strcmp(path, "gemm") == 0) ctx->path = OCL_PATH_GEMM;
    /* ... or small slabs in the device arena, so that one batch spans several launches (ocl_arena.c). */
    const char *slab = getenv("KVQ_OPENCL_SLAB_BYTES");
    if (slab != NULL) {
        char *end = NULL;
        unsigned long long bytes = strtoull(slab, &end, 10);
        if (end != slab && *end == '\0' && bytes > 0 && bytes <= ctx->max_alloc) ctx->arena.fixed_slab = (size_t)bytes;
    }
}

kvq_status ocl_open(const kvq_backend_options *options, kvq_backend_context **out, char *message,
                    size_t message_size)
{
    if (out == NULL) {
        kvq_host_say(message, message_size, "ctx: NULL");
        return KVQ_ERR_NULL_ARGUMENT;
    }
    /* fp32 arithmetic meets every profile (S12.4). */
    uint32_t profile = KVQ_PROFILE_FP32;
    kvq_status st = kvq_backend_option_profile(options, KVQ_BACKEND_ALL_PROFILES, KVQ_PROFILE_FP32, &profile, message,
                                               message_size);
    if (st != KVQ_OK) return st;
    kvq_backend_context *ctx =
        kvq_host_context_new(sizeof *ctx, ocl_fill_staging, ocl_run_rows, message, message_size);
    if (ctx == NULL) return KVQ_ERR_OUT_OF_MEMORY;
    ctx->profile = profile;
    st = choose_device(options, &ctx->platform, &ctx->device, message, message_size);
    if (st != KVQ_OK) {
        free(ctx);
        return st;
    }
    describe(ctx->platform, ctx->device, ctx->name, sizeof ctx->name);
    query_device(ctx);
    cl_uint little = CL_TRUE;
    clGetDeviceInfo(ctx->device, CL_DEVICE_ENDIAN_LITTLE, sizeof little, &little, NULL);
    if (!little) {
        /* kvq_group_params and packed rows are read as little-endian words. */
        kvq_host_say(message, message_size, "%s is big-endian; kvq's device layouts assume little-endian", ctx->name);
        free(ctx);
        return KVQ_ERR_BAD_ARGUMENT;
    }
    cl_int err = CL_SUCCESS;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)ctx->platform, 0};
    ctx->context = clCreateContext(props, 1, &ctx->device, NULL, NULL, &err);
    /* A profiling queue where the device has one: the timing slots read its events' clocks (ocl_timing.c);
     * nothing else reads them. */
    cl_command_queue_properties queue_props = 0;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_QUEUE_PROPERTIES, sizeof queue_props, &queue_props, NULL) != CL_SUCCESS)
        queue_props = 0;
    ctx->profiling = (queue_props & CL_QUEUE_PROFILING_ENABLE) != 0;
    ctx->host.timed_copy = ocl_timed_copy; /* the benchmarking slots' device halves (ocl_timing.c) */
    ctx->host.timed_batch = ocl_timed_batch;
    if (err == CL_SUCCESS)
        ctx->queue = clCreateCommandQueue(ctx->context, ctx->device, ctx->profiling ? CL_QUEUE_PROFILING_ENABLE : 0,
                                          &err);
    if (err != CL_SUCCESS) {
        kvq_host_say(message, message_size, "creating an OpenCL context on %s failed: %s", ctx->name,
                    ocl_cl_error_name(err));
        ocl_close(ctx);
        return KVQ_ERR_IO;
    }
    st = build_program(ctx, message, message_size);
    if (st != KVQ_OK) {
        ocl_close(ctx);
        return st;
    }
    kvq_host_clear(&ctx->host.error);
    *out = ctx;
    return KVQ_OK;
}

void ocl_close(kvq_backend_context *ctx)
{
    if (ctx == NULL) return;
    for (int k = 0; k < OCL_K_COUNT; k++)
        if (ctx->kernels[k] != NULL) clReleaseKernel(ctx->kernels[k]);
    if (ctx->program != NULL) clReleaseProgram(ctx->program);
    if (ctx->queue != NULL) {
        clFinish(ctx->queue);
        clReleaseCommandQueue(ctx->queue);
    }
    ocl_arena_release(ctx);
    if (ctx->context != NULL) clReleaseContext(ctx->context);
    free(ctx);
}

kvq_status ocl_get_caps(kvq_backend_context *ctx, kvq_backend_caps *caps)
{
    kvq_backend_caps mine = kvq_host_caps_complete();
    mine.max_query_heads = 4096u; /* GEMM path: scores [n_q][n_tokens] in one buffer */
    mine.memory = KVQ_BACKEND_MEMORY_DEVICE;
    mine.attention_profile = ctx->profile; /* fp32 kernels: every profile */
    return kvq_host_get_caps(&ctx->host.error, caps, &mine);
}

const char *ocl_device_name(kvq_backend_context *ctx) { return ctx == NULL ? "" : ctx->name; }

