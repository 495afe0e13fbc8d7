/*
 * ocl_util.c - errors, buffers, kernel launches, blocking transfers and the
 * prefix sum shared by the OpenCL backend's operations.
 */
#include "ocl_internal.h"

#include <stdio.h>
#include <string.h>

const char *ocl_cl_error_name(cl_int err)
{
    switch (err) {
    case CL_SUCCESS: return "CL_SUCCESS";
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE: return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_PLATFORM: return "CL_INVALID_PLATFORM";
    case CL_INVALID_DEVICE: return "CL_INVALID_DEVICE";
    case CL_INVALID_CONTEXT: return "CL_INVALID_CONTEXT";
    case CL_INVALID_COMMAND_QUEUE: return "CL_INVALID_COMMAND_QUEUE";
    case CL_INVALID_MEM_OBJECT: return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_PROGRAM_EXECUTABLE: return "CL_INVALID_PROGRAM_EXECUTABLE";
    case CL_INVALID_KERNEL_NAME: return "CL_INVALID_KERNEL_NAME";
    case CL_INVALID_KERNEL: return "CL_INVALID_KERNEL";
    case CL_INVALID_ARG_INDEX: return "CL_INVALID_ARG_INDEX";
    case CL_INVALID_ARG_VALUE: return "CL_INVALID_ARG_VALUE";
    case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_WORK_ITEM_SIZE: return "CL_INVALID_WORK_ITEM_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case CL_INVALID_EVENT_WAIT_LIST: return "CL_INVALID_EVENT_WAIT_LIST";
    case CL_INVALID_OPERATION: return "CL_INVALID_OPERATION";
    case CL_INVALID_BUILD_OPTIONS: return "CL_INVALID_BUILD_OPTIONS";
    case CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST: return "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST";
    default: return "an OpenCL error";
    }
}

kvq_status ocl_from_cl(kvq_backend_context *ctx, cl_int err, const char *what)
{
    bool memory = err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_HOST_MEMORY ||
                  err == CL_OUT_OF_RESOURCES || err == CL_INVALID_BUFFER_SIZE;
    char code[96];
    snprintf(code, sizeof code, "%s (%d)", ocl_cl_error_name(err), (int)err);
    return kvq_host_device_fail(&ctx->host.error, memory ? KVQ_ERR_OUT_OF_MEMORY : KVQ_ERR_IO, what, "OpenCL", code,
                                ctx->name, NULL);
}

kvq_status ocl_check_alloc(kvq_backend_context *ctx, size_t size, const char *what)
{
    if ((cl_ulong)size > ctx->max_alloc)
        return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "%s: %zu bytes exceed the device's largest buffer (%llu bytes)",
                        what, size, (unsigned long long)ctx->max_alloc);
    return KVQ_OK;
}

kvq_status ocl_buffer(kvq_backend_context *ctx, size_t bytes, const void *host, bool zero, cl_mem *out,
                      const char *what)
{
    size_t size = bytes > 0 ? bytes : 1u;
    if (ocl_check_alloc(ctx, size, what) != KVQ_OK) return KVQ_ERR_OUT_OF_MEMORY;
    cl_int err = CL_SUCCESS;
    cl_mem_flags flags = CL_MEM_READ_WRITE | (host != NULL && bytes > 0 ? CL_MEM_COPY_HOST_PTR : 0);
    cl_mem mem = clCreateBuffer(ctx->context, flags, size, host != NULL && bytes > 0 ? (void *)(uintptr_t)host : NULL,
                                &err);
    if (err != CL_SUCCESS) return ocl_from_cl(ctx, err, what);
    if (zero && (host == NULL || bytes == 0)) {
        cl_uchar pattern = 0;
        err = clEnqueueFillBuffer(ctx->queue, mem, &pattern, 1, 0, size, 0, NULL, NULL);
        if (err != CL_SUCCESS) {
            clReleaseMemObject(mem);
            return ocl_from_cl(ctx, err, what);
        }
    }
    *out = mem;
    return KVQ_OK;
}

void ocl_release(cl_mem *mem)
{
    if (*mem != NULL) clReleaseMemObject(*mem);
    *mem = NULL;
}

/* Grid-stride kernels loop over their items, so a bounded launch covers any
 * size: enough groups to fill the device several times over. */
static size_t grid_cap(const kvq_backend_context *ctx, size_t local)
{
    size_t groups = ctx->compute_units * 64u;
    if (groups < 64u) groups = 64u;
    return groups * local;
}

kvq_status ocl_launch(kvq_backend_context *ctx, ocl_kernel_id k, const ocl_arg *args, size_t n_args, size_t items,
                      size_t local, bool grid_stride)
{
    cl_kernel kernel = ctx->kernels[k];
    for (size_t i = 0; i < n_args; i++) {
        cl_int err = clSetKernelArg(kernel, (cl_uint)i, args[i].size, args[i].value);
        if (err != CL_SUCCESS) return ocl_from_cl(ctx, err, "setting a kernel argument");
    }
    if (items == 0) return KVQ_OK;
    if (local == 0) local = ctx->max_wg < 128u ? ctx->max_wg : 128u;
    size_t global = (items + local - 1u) / local * local;
    if (grid_stride && global > grid_cap(ctx, local)) global = grid_cap(ctx, local);
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, kernel, 1, NULL, &global, &local, 0, NULL, NULL);
    if (err != CL_SUCCESS) return ocl_from_cl(ctx, err, "launching a kernel");
    return KVQ_OK;
}

kvq_status ocl_scan(kvq_backend_context *ctx, cl_mem buf, size_t n)
{
    size_t blocks = (n + OCL_SCAN_BLOCK - 1u) / OCL_SCAN_BLOCK;
    cl_mem sums = NULL;
    kvq_status st = ocl_buffer(ctx, blocks * sizeof(cl_uint), NULL, false, &sums, "scan block totals");
    if (st != KVQ_OK) return st;
    ocl_arg args[] = {OCL_MEM(buf), OCL_MEM(buf), OCL_MEM(sums), OCL_U64(n)};
    st = ocl_launch(ctx, OCL_K_SCAN_BLOCKS, args, 4, blocks * OCL_SCAN_BLOCK, OCL_SCAN_BLOCK, false);
    /* More than one block: scan the block totals (recursively) and add them back. */
    if (st == KVQ_OK && blocks > 1u) st = ocl_scan(ctx, sums, blocks);
    if (st == KVQ_OK && blocks > 1u) {
        ocl_arg add[] = {OCL_MEM(buf), OCL_MEM(sums), OCL_U64(n)};
        st = ocl_launch(ctx, OCL_K_SCAN_ADD, add, 3, n, 0, true);
    }
    /* The queue is in order, so releasing now is safe: OpenCL keeps the
     * buffer alive until the commands that use it have finished. */
    ocl_release(&sums);
    return st;
}

kvq_status ocl_read(kvq_backend_context *ctx, cl_mem buf, size_t offset, size_t bytes, void *host, const char *what)
{
    if (bytes == 0) return KVQ_OK;
    cl_int err = clEnqueueReadBuffer(ctx->queue, buf, CL_TRUE, offset, bytes, host, 0, NULL, NULL);
    return err == CL_SUCCESS ? KVQ_OK : ocl_from_cl(ctx, err, what);
}

kvq_status ocl_write(kvq_backend_context *ctx, cl_mem buf, size_t offset, size_t bytes, const void *host,
                     const char *what)
{
    if (bytes == 0) return KVQ_OK;
    cl_int err = clEnqueueWriteBuffer(ctx->queue, buf, CL_TRUE, offset, bytes, host, 0, NULL, NULL);
    return err == CL_SUCCESS ? KVQ_OK : ocl_from_cl(ctx, err, what);
}

kvq_status ocl_finish(kvq_backend_context *ctx, const char *what)
{
    cl_int err = clFinish(ctx->queue);
    return err == CL_SUCCESS ? KVQ_OK : ocl_from_cl(ctx, err, what);
}
