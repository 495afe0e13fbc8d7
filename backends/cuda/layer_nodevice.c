/*
 * layer_nodevice.c - the device half of the device API (layer_internal.h) in
 * a build without CUDA: the checks and sizes of kvq/kvq_cuda.h work, and
 * kvq_cuda_layer_create says why there is no layer.
 */
#include "layer_internal.h"

static kvq_status no_cuda(kvq_cuda_layer *layer, kvq_cuda_stream stream)
{
    (void)layer;
    (void)stream;
    return layer_fail(KVQ_ERR_IO, "this build of kvq has no CUDA backend (configure with -DKVQ_ENABLE_CUDA=ON)");
}

static void nothing(kvq_cuda_layer *layer) { (void)layer; }

/* A layer cannot exist here, so the other slots are never called. */
static const layer_device_ops none = {.create = no_cuda, .destroy = nothing};

const layer_device_ops *layer_default_ops(void) { return &none; }
