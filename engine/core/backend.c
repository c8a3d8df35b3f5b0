/* backend.c — the public backend API: dispatch onto a backend's vtable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-impl.h"
#include "setok-config.h"

void setok_backend_free(setok_backend *backend)
{
    if (backend && backend->vt->destroy)
        backend->vt->destroy(backend);
}

const char *setok_backend_name(const setok_backend *backend)
{
    return backend->vt->name;
}

const char *setok_backend_description(const setok_backend *backend)
{
    return backend->description;
}

bool setok_backend_is_host(const setok_backend *backend)
{
    return backend == NULL || backend->vt->is_host;
}

setok_status setok_backend_alloc(setok_backend *backend, size_t bytes, void **out,
                                 setok_error *err)
{
    return backend->vt->alloc(backend, bytes, out, err);
}

void setok_backend_release(setok_backend *backend, void *ptr)
{
    if (ptr)
        backend->vt->release(backend, ptr);
}

size_t setok_backend_memory_in_use(setok_backend *backend)
{
    return backend->vt->memory_in_use ? backend->vt->memory_in_use(backend) : backend->host_bytes;
}

setok_status setok_backend_upload(setok_backend *backend, void *dst, const void *src,
                                  size_t bytes, setok_error *err)
{
    return backend->vt->upload(backend, dst, src, bytes, err);
}

setok_status setok_backend_download(setok_backend *backend, void *dst, const void *src,
                                    size_t bytes, setok_error *err)
{
    return backend->vt->download(backend, dst, src, bytes, err);
}

setok_status setok_backend_synchronize(setok_backend *backend, setok_error *err)
{
    return backend->vt->synchronize(backend, err);
}

bool setok_backend_supports(const setok_backend *backend, const setok_op_desc *desc)
{
    if ((unsigned)desc->op >= SETOK_OP_COUNT || !backend->vt->ops[desc->op])
        return false;
    return backend->vt->supports_op ? backend->vt->supports_op(backend, desc) : true;
}

setok_status setok_backend_compute(setok_backend *backend, const setok_op_desc *desc,
                                   setok_error *err)
{
    setok_status st = setok_op_validate(desc, err);
    if (st != SETOK_OK)
        return st;
    /* every tensor must live on this backend (host tensors with backend NULL
     * are accepted by host backends) */
    const setok_tensor *all[6] = {desc->dst, desc->dst2, desc->src[0], desc->src[1],
                                  desc->src[2], desc->src[3]};
    for (int i = 0; i < 6; i++) {
        const setok_tensor *t = all[i];
        if (!t || t->backend == backend)
            continue;
        bool host_ok = backend->vt->is_host && setok_backend_is_host(t->backend);
        if (!host_ok)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: a tensor lives on backend '%s', not '%s'",
                              setok_op_name(desc->op),
                              t->backend ? setok_backend_name(t->backend) : "host",
                              setok_backend_name(backend));
    }
    if (!setok_backend_supports(backend, desc)) {
        char buf[96];
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: backend '%s' cannot run it on %s",
                          setok_op_name(desc->op), setok_backend_name(backend),
                          setok_tensor_describe(desc->src[0] ? desc->src[0] : desc->dst, buf,
                                                sizeof buf));
    }
    return backend->vt->ops[desc->op](backend, desc, err);
}

setok_status setok_tensor_alloc(setok_tensor *t, setok_backend *backend, setok_dtype dtype,
                                int ndim, const int64_t *shape, setok_error *err)
{
    setok_status st = setok_tensor_init(t, NULL, backend, dtype, ndim, shape, err);
    if (st != SETOK_OK)
        return st;
    size_t bytes = setok_tensor_nbytes(t);
    return setok_backend_alloc(backend, bytes ? bytes : 1, &t->data, err);
}

void setok_tensor_free(setok_tensor *t)
{
    if (t && t->data && t->backend && t->borrowed)
        setok_backend_unborrow(t->backend, setok_tensor_nbytes(t));
    else if (t && t->data && t->backend)
        setok_backend_release(t->backend, t->data);
    if (t) {
        t->data = NULL;
        t->borrowed = false;
    }
}

void setok_backend_borrow(setok_backend *backend, size_t bytes)
{
    backend->host_bytes += bytes;
}

void setok_backend_unborrow(setok_backend *backend, size_t bytes)
{
    backend->host_bytes -= bytes;
}

setok_status setok_tensor_alloc_random(setok_tensor *t, setok_backend *backend, setok_dtype dtype,
                                       int ndim, const int64_t *shape, float offset, float bound,
                                       uint32_t *state, setok_error *err)
{
    setok_status st = setok_tensor_alloc(t, backend, dtype, ndim, shape, err);
    if (st != SETOK_OK)
        return st;
    int64_t n = setok_tensor_numel(t);
    void *host = malloc((size_t)(n ? n : 1) * setok_dtype_size(dtype));
    if (!host) {
        setok_tensor_free(t);
        return setok_fail(err, SETOK_ERR_NOMEM, "out of host memory for a random tensor");
    }
    for (int64_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        float u = (float)(*state >> 8) / 8388608.0f - 1.0f;
        setok_store_f32(host, dtype, i, offset + bound * u);
    }
    st = setok_tensor_upload(t, host, err);
    free(host);
    if (st != SETOK_OK)
        setok_tensor_free(t);
    return st;
}

setok_status setok_tensor_upload(setok_tensor *dst, const void *host, setok_error *err)
{
    if (!setok_tensor_is_contiguous(dst))
        return setok_fail(err, SETOK_ERR_INPUT, "upload needs a contiguous tensor");
    size_t bytes = setok_tensor_nbytes(dst);
    if (!dst->backend) {
        memcpy(dst->data, host, bytes);
        return SETOK_OK;
    }
    return setok_backend_upload(dst->backend, dst->data, host, bytes, err);
}

setok_status setok_tensor_download(void *host, const setok_tensor *src, setok_error *err)
{
    if (!setok_tensor_is_contiguous(src))
        return setok_fail(err, SETOK_ERR_INPUT, "download needs a contiguous tensor");
    size_t bytes = setok_tensor_nbytes(src);
    if (!src->backend) {
        memcpy(host, src->data, bytes);
        return SETOK_OK;
    }
    return setok_backend_download(src->backend, host, src->data, bytes, err);
}

setok_status setok_tensor_upload_f32(setok_tensor *dst, const float *host, setok_error *err)
{
    if (dst->dtype == SETOK_F32)
        return setok_tensor_upload(dst, host, err);
    if (!setok_dtype_is_float(dst->dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "upload: f32 values into a %s tensor",
                          setok_dtype_name(dst->dtype));
    int64_t n = setok_tensor_numel(dst);
    void *tmp = malloc((size_t)(n ? n : 1) * setok_dtype_size(dst->dtype));
    if (!tmp)
        return setok_fail(err, SETOK_ERR_NOMEM, "upload: out of memory");
    for (int64_t i = 0; i < n; i++)
        setok_store_f32(tmp, dst->dtype, i, host[i]);
    setok_status st = setok_tensor_upload(dst, tmp, err);
    free(tmp);
    return st;
}

setok_status setok_tensor_download_f32(float *host, const setok_tensor *src, setok_error *err)
{
    setok_status st = src->backend ? setok_backend_synchronize(src->backend, err) : SETOK_OK;
    if (st != SETOK_OK || src->dtype == SETOK_F32)
        return st == SETOK_OK ? setok_tensor_download(host, src, err) : st;
    if (!setok_dtype_is_float(src->dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "download: a %s tensor as f32 values",
                          setok_dtype_name(src->dtype));
    int64_t n = setok_tensor_numel(src);
    void *tmp = malloc((size_t)(n ? n : 1) * setok_dtype_size(src->dtype));
    if (!tmp)
        return setok_fail(err, SETOK_ERR_NOMEM, "download: out of memory");
    st = setok_tensor_download(tmp, src, err);
    for (int64_t i = 0; st == SETOK_OK && i < n; i++)
        host[i] = setok_load_f32(tmp, src->dtype, i);
    free(tmp);
    return st;
}

setok_status setok_backend_cuda_create(setok_backend **out, int device, setok_error *err)
{
#if SETOK_HAVE_CUDA
    return setok_cuda_backend_create(out, device, err);
#else
    (void)device;
    *out = NULL;
    return setok_fail(err, SETOK_ERR_UNSUPPORTED, "this build has no CUDA backend "
                      "(configure with -Dcuda=enabled)");
#endif
}

void setok_cuda_query(setok_cuda_info *info)
{
    memset(info, 0, sizeof *info);
#if SETOK_HAVE_CUDA
    setok_cuda_backend_query(info);
#else
    snprintf(info->error, sizeof info->error, "not compiled in");
#endif
}

setok_status setok_backend_create_by_name(setok_backend **out, const char *name, int n_threads,
                                          setok_error *err)
{
    if (!strcmp(name, "cpu"))
        return setok_backend_cpu_create(out, n_threads, err);
    if (!strcmp(name, "cpu-reference"))
        return setok_backend_cpu_reference_create(out, err);
    if (!strcmp(name, "cuda"))
        return setok_backend_cuda_create(out, 0, err);
    if (!strcmp(name, "auto")) {
        setok_error ignored;
        if (setok_backend_cuda_create(out, 0, &ignored) == SETOK_OK)
            return SETOK_OK;
        return setok_backend_cpu_create(out, n_threads, err);
    }
    return setok_fail(err, SETOK_ERR_INPUT, "unknown device '%s' (expected cpu, cuda or auto)",
                      name);
}
