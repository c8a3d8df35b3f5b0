/* backend-impl.h — the private backend vtable.
 *
 * A backend fills one function per op (NULL where it has none) plus memory
 * entries. setok_backend_compute validates the desc, asks supports_op, then
 * calls ops[desc->op]. Op functions may assume a desc that passed
 * setok_op_validate. */
#ifndef SETOK_BACKEND_IMPL_H
#define SETOK_BACKEND_IMPL_H

#include "setok-config.h"
#include "setok/backend.h"
#include "setok/ops.h"

typedef setok_status (*setok_op_fn)(setok_backend *backend, const setok_op_desc *desc,
                                    setok_error *err);

typedef struct setok_backend_vtable {
    const char *name;
    bool is_host;
    void (*destroy)(setok_backend *backend);
    setok_status (*alloc)(setok_backend *backend, size_t bytes, void **out, setok_error *err);
    void (*release)(setok_backend *backend, void *ptr);
    setok_status (*upload)(setok_backend *backend, void *dst, const void *src, size_t bytes,
                           setok_error *err);
    setok_status (*download)(setok_backend *backend, void *dst, const void *src, size_t bytes,
                             setok_error *err);
    setok_status (*synchronize)(setok_backend *backend, setok_error *err);
    /* Bytes of memory in use on the device (NULL: the host allocations counted in
     * setok_backend.host_bytes). */
    size_t (*memory_in_use)(setok_backend *backend);
    /* Optional finer check (dtypes, sizes); NULL means "every op in ops[]". */
    bool (*supports_op)(const setok_backend *backend, const setok_op_desc *desc);
    setok_op_fn ops[SETOK_OP_COUNT];
} setok_backend_vtable;

struct setok_backend {
    const setok_backend_vtable *vt;
    char description[256];
    void *impl;        /* backend-private state */
    size_t host_bytes; /* what setok_host_alloc handed out and is not released yet */
};

/* Memory a host backend uses without allocating it (tensors over a mapped weight
 * file): counted in host_bytes while the tensors live. */
void setok_backend_borrow(setok_backend *backend, size_t bytes);
void setok_backend_unborrow(setok_backend *backend, size_t bytes);

/* Host allocation helpers shared by the CPU backends: 64-byte aligned. */
setok_status setok_host_alloc(setok_backend *backend, size_t bytes, void **out, setok_error *err);
void setok_host_release(setok_backend *backend, void *ptr);
setok_status setok_host_copy(setok_backend *backend, void *dst, const void *src, size_t bytes,
                             setok_error *err);
setok_status setok_host_synchronize(setok_backend *backend, setok_error *err);

/* The reference op table (cpu/ref-ops.c): plain loops in double precision
 * over any dtype. The CPU backend falls back to these. */
extern const setok_op_fn setok_ref_ops[SETOK_OP_COUNT];

/* Broadcast helper: strides of b (in elements) that map an index of a's
 * shape onto b under NumPy broadcasting (0 on broadcast axes), aligned to
 * a's SETOK_MAX_DIMS-padded shape. */
void setok_broadcast_strides(const setok_tensor *a, const setok_tensor *b,
                             int64_t out_stride[SETOK_MAX_DIMS]);

#if SETOK_HAVE_CUDA
setok_status setok_cuda_backend_create(setok_backend **out, int device, setok_error *err);
void setok_cuda_backend_query(setok_cuda_info *info);
#endif

#endif
