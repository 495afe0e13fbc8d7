/*
 * ocl_arena.c - where tensors keep their arrays: sub-buffers of a few large
 * "slab" buffers per context.
 *
 * OpenCL 1.2 has no device pointers: a kernel reaches only the buffers passed
 * as its arguments. For attention_decode_batch to run every sequence of a step
 * in one launch, whatever tensors the caller passes, the arrays of all tensors
 * live in slabs, and a batched kernel takes the slabs (at most
 * KVQ_BATCH_SLABS of them, kernels/opencl/attention_batch.h) and finds each array by its byte offset. Every other
 * kernel keeps using the arrays as ordinary buffers (sub-buffers).
 *
 * Slabs are allocated on demand, each twice the size of the largest so far
 * (from OCL_FIRST_SLAB up to OCL_LARGEST_SLAB, or larger for one big array),
 * so that their number grows with the logarithm of the memory in use; free
 * ranges are kept sorted per slab and merged, and a slab is released when it
 * empties (unless it is the last one). KVQ_OPENCL_SLAB_BYTES=N (a test hook)
 * makes every slab N bytes, so that small tests spread a batch over many
 * slabs and launches. Frees are explicit (ocl_tensor_buffer_release) and take effect at
 * once: the queue is in order, so a later command that reuses a range runs
 * after every earlier command that used it.
 */
#include "ocl_internal.h"

#include <stdlib.h>
#include <string.h>

/* First slab, and the size that doubling stops at: NVIDIA's OpenCL backs a
 * whole buffer with device memory at its first use, so an oversized slab
 * would waste real memory. */
#define OCL_FIRST_SLAB ((size_t)16u << 20)
#define OCL_LARGEST_SLAB ((size_t)1u << 30)

static size_t round_up(size_t x, size_t to) { return (x + to - 1u) / to * to; }

/* The byte granule of ranges: sub-buffer origins must be multiples of
 * CL_DEVICE_MEM_BASE_ADDR_ALIGN; at least 128 bytes (vector loads). */
static size_t granule(kvq_backend_context *ctx)
{
    if (ctx->arena.granule == 0) {
        cl_uint bits = 0;
        clGetDeviceInfo(ctx->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof bits, &bits, NULL);
        size_t bytes = bits / 8u;
        ctx->arena.granule = bytes > 128u ? bytes : 128u;
    }
    return ctx->arena.granule;
}

static void slab_release(ocl_slab *s)
{
    if (s->buffer != NULL) clReleaseMemObject(s->buffer);
    free(s->free);
    memset(s, 0, sizeof *s);
}

/* Inserts the free range [offset, offset + size) into slab s, merging it with
 * its neighbours. */
static kvq_status slab_give(kvq_backend_context *ctx, ocl_slab *s, size_t offset, size_t size)
{
    size_t i = 0;
    while (i < s->n_free && s->free[i].offset < offset) i++;
    bool joins_left = i > 0 && s->free[i - 1u].offset + s->free[i - 1u].size == offset;
    bool joins_right = i < s->n_free && offset + size == s->free[i].offset;
    if (joins_left && joins_right) {
        s->free[i - 1u].size += size + s->free[i].size;
        memmove(&s->free[i], &s->free[i + 1u], (s->n_free - i - 1u) * sizeof *s->free);
        s->n_free--;
    } else if (joins_left) {
        s->free[i - 1u].size += size;
    } else if (joins_right) {
        s->free[i].offset = offset;
        s->free[i].size += size;
    } else {
        if (s->n_free == s->cap_free) {
            size_t cap = s->cap_free < 8u ? 8u : 2u * s->cap_free;
            ocl_range *grown = realloc(s->free, cap * sizeof *grown);
            if (grown == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "device arena: out of host memory");
            s->free = grown;
            s->cap_free = cap;
        }
        memmove(&s->free[i + 1u], &s->free[i], (s->n_free - i) * sizeof *s->free);
        s->free[i] = (ocl_range){offset, size};
        s->n_free++;
    }
    return KVQ_OK;
}

/* First fit in slab s; false when no free range is large enough. */
static bool slab_take(ocl_slab *s, size_t size, size_t *offset)
{
    for (size_t i = 0; i < s->n_free; i++) {
        if (s->free[i].size < size) continue;
        *offset = s->free[i].offset;
        s->free[i].offset += size;
        s->free[i].size -= size;
        if (s->free[i].size == 0) {
            memmove(&s->free[i], &s->free[i + 1u], (s->n_free - i - 1u) * sizeof *s->free);
            s->n_free--;
        }
        return true;
    }
    return false;
}

/* A new slab that holds at least `size` bytes; its index in *index. */
static kvq_status slab_add(kvq_backend_context *ctx, size_t size, const char *what, size_t *index)
{
    ocl_arena *a = &ctx->arena;
    size_t slot = OCL_MAX_SLABS;
    size_t largest = 0;
    for (size_t i = 0; i < OCL_MAX_SLABS; i++) {
        if (a->slabs[i].buffer == NULL && slot == OCL_MAX_SLABS) slot = i;
        if (a->slabs[i].size > largest) largest = a->slabs[i].size;
    }
    if (slot == OCL_MAX_SLABS)
        return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "%s: the device arena has its %u slabs in use", what,
                        (unsigned)OCL_MAX_SLABS);
    size_t want = largest == 0 ? OCL_FIRST_SLAB : 2u * largest;
    if (want > OCL_LARGEST_SLAB) want = OCL_LARGEST_SLAB;
    if (a->fixed_slab > 0) want = a->fixed_slab;
    if (want > ctx->max_alloc) want = (size_t)ctx->max_alloc / granule(ctx) * granule(ctx);
    if (want < size) want = size;
    cl_int err = CL_SUCCESS;
    cl_mem buffer = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, want, NULL, &err);
    if (err != CL_SUCCESS && want > size) { /* the speculative size did not fit: the exact one may */
        want = size;
        buffer = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, want, NULL, &err);
    }
    if (err != CL_SUCCESS) return ocl_from_cl(ctx, err, what);
    ocl_slab *s = &a->slabs[slot];
    memset(s, 0, sizeof *s);
    s->buffer = buffer;
    s->size = want;
    kvq_status st = slab_give(ctx, s, 0, want);
    if (st != KVQ_OK) {
        slab_release(s);
        return st;
    }
    *index = slot;
    return KVQ_OK;
}

kvq_status ocl_tensor_buffer(kvq_backend_context *ctx, size_t bytes, const void *host, bool zero, cl_mem *out,
                             const char *what)
{
    size_t size = bytes > 0 ? bytes : 1u;
    if (ocl_check_alloc(ctx, size, what) != KVQ_OK) return KVQ_ERR_OUT_OF_MEMORY;
    ocl_arena *a = &ctx->arena;
    size_t reserved = round_up(size, granule(ctx)), slab = OCL_MAX_SLABS, offset = 0;
    for (size_t i = 0; i < OCL_MAX_SLABS && slab == OCL_MAX_SLABS; i++)
        if (a->slabs[i].buffer != NULL && slab_take(&a->slabs[i], reserved, &offset)) slab = i;
    if (slab == OCL_MAX_SLABS) {
        kvq_status st = slab_add(ctx, reserved, what, &slab);
        if (st != KVQ_OK) return st;
        slab_take(&a->slabs[slab], reserved, &offset);
    }
    ocl_slab *s = &a->slabs[slab];
    cl_buffer_region region = {offset, size};
    cl_int err = CL_SUCCESS;
    cl_mem mem = clCreateSubBuffer(s->buffer, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
    if (err == CL_SUCCESS && host != NULL && bytes > 0)
        err = clEnqueueWriteBuffer(ctx->queue, mem, CL_TRUE, 0, bytes, host, 0, NULL, NULL);
    if (err == CL_SUCCESS && zero && (host == NULL || bytes == 0)) {
        cl_uchar pattern = 0;
        err = clEnqueueFillBuffer(ctx->queue, mem, &pattern, 1, 0, size, 0, NULL, NULL);
    }
    if (err != CL_SUCCESS) {
        if (mem != NULL) clReleaseMemObject(mem);
        slab_give(ctx, s, offset, reserved);
        return ocl_from_cl(ctx, err, what);
    }
    s->live++;
    *out = mem;
    return KVQ_OK;
}

/* The slab holding sub-buffer mem, and mem's offset in it; false for a buffer
 * that is not the arena's. */
static bool locate(kvq_backend_context *ctx, cl_mem mem, size_t *slab, size_t *offset, size_t *size)
{
    cl_mem parent = NULL;
    size_t at = 0, bytes = 0;
    if (clGetMemObjectInfo(mem, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof parent, &parent, NULL) != CL_SUCCESS ||
        clGetMemObjectInfo(mem, CL_MEM_OFFSET, sizeof at, &at, NULL) != CL_SUCCESS ||
        clGetMemObjectInfo(mem, CL_MEM_SIZE, sizeof bytes, &bytes, NULL) != CL_SUCCESS || parent == NULL)
        return false;
    for (size_t i = 0; i < OCL_MAX_SLABS; i++)
        if (ctx->arena.slabs[i].buffer == parent) {
            *slab = i;
            *offset = at;
            *size = bytes;
            return true;
        }
    return false;
}

void ocl_tensor_buffer_release(kvq_backend_context *ctx, cl_mem *mem)
{
    if (*mem == NULL) return;
    size_t slab = 0, offset = 0, size = 0;
    bool ours = locate(ctx, *mem, &slab, &offset, &size);
    clReleaseMemObject(*mem);
    *mem = NULL;
    if (!ours) return;
    ocl_slab *s = &ctx->arena.slabs[slab];
    /* A failed merge (no host memory for the list) only loses the range until the slab empties. */
    slab_give(ctx, s, offset, round_up(size, granule(ctx)));
    if (--s->live > 0) return;
    /* An empty slab goes back to the device unless it is the only one (kept for the next tensor). */
    for (size_t i = 0; i < OCL_MAX_SLABS; i++)
        if (i != slab && ctx->arena.slabs[i].buffer != NULL) {
            slab_release(s);
            return;
        }
}

kvq_status ocl_arena_locate(kvq_backend_context *ctx, cl_mem mem, cl_mem *slab, size_t *offset)
{
    size_t index = 0, size = 0;
    if (mem == NULL || !locate(ctx, mem, &index, offset, &size))
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "a tensor array is not in this context's device arena "
                                                   "(was the tensor made by another context?)");
    *slab = ctx->arena.slabs[index].buffer;
    return KVQ_OK;
}

void ocl_arena_release(kvq_backend_context *ctx)
{
    for (size_t i = 0; i < OCL_MAX_SLABS; i++) slab_release(&ctx->arena.slabs[i]);
}
