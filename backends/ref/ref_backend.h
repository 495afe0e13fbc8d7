/*
 * ref_backend.h - the reference library (libkvq) seen through the backend ABI.
 */
#ifndef KVQ_REF_BACKEND_H
#define KVQ_REF_BACKEND_H

#include "kvq/kvq_backend.h"

/* The "ref" backend: every operation is the reference function of the spec
 * section it implements; tensors and caches live in host memory. */
const kvq_backend_api *kvq_backend_ref(void);

#endif /* KVQ_REF_BACKEND_H */
