/* backend.h — compute backends: where tensors live and ops run.
 *
 * Three backends share one interface:
 *   cpu-reference  plain loops in double precision, any dtype; the test oracle
 *   cpu            float32 fast paths (BLAS sgemm, pthreads), reference fallback
 *   cuda           cuBLAS GEMM and CUDA kernels; f32, f16 and bf16
 * A backend is an opaque handle; its vtable is private (backend-impl.h). */
#ifndef SETOK_BACKEND_H
#define SETOK_BACKEND_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct setok_op_desc;

/* n_threads <= 0 picks the number of online processors. */
SETOK_API setok_status setok_backend_cpu_create(setok_backend **out, int n_threads, setok_error *err);
SETOK_API setok_status setok_backend_cpu_reference_create(setok_backend **out, setok_error *err);
/* SETOK_ERR_UNSUPPORTED when CUDA is not compiled in or no GPU is present. */
SETOK_API setok_status setok_backend_cuda_create(setok_backend **out, int device, setok_error *err);
/* "cpu", "cuda" or "auto" (cuda when available, else cpu). */
SETOK_API setok_status setok_backend_create_by_name(setok_backend **out, const char *name, int n_threads,
                                          setok_error *err);
SETOK_API void setok_backend_free(setok_backend *backend);

SETOK_API const char *setok_backend_name(const setok_backend *backend);
/* A human description: "CPU, 16 threads, OpenBLAS" or "NVIDIA H100 (79.1 GiB)". */
SETOK_API const char *setok_backend_description(const setok_backend *backend);
/* True when the backend's memory is ordinary host memory. */
SETOK_API bool setok_backend_is_host(const setok_backend *backend);

SETOK_API setok_status setok_backend_alloc(setok_backend *backend, size_t bytes, void **out,
                                 setok_error *err);
SETOK_API void setok_backend_release(setok_backend *backend, void *ptr);
/* Bytes of the backend's memory in use: what it allocated and has not
 * released (host backends), or the device's used memory (CUDA). */
SETOK_API size_t setok_backend_memory_in_use(setok_backend *backend);
/* Copies between host memory and backend memory (plain memcpy for host backends). */
SETOK_API setok_status setok_backend_upload(setok_backend *backend, void *dst, const void *src,
                                  size_t bytes, setok_error *err);
SETOK_API setok_status setok_backend_download(setok_backend *backend, void *dst, const void *src,
                                    size_t bytes, setok_error *err);
SETOK_API setok_status setok_backend_synchronize(setok_backend *backend, setok_error *err);

/* Whether the backend can run this (already validated) op. */
SETOK_API bool setok_backend_supports(const setok_backend *backend, const struct setok_op_desc *desc);
/* Validates desc (setok_op_validate) and runs it. Ops may run asynchronously
 * on device backends; synchronize before reading results on the host. */
SETOK_API setok_status setok_backend_compute(setok_backend *backend, const struct setok_op_desc *desc,
                                   setok_error *err);

/* Tensors with their own allocation on a backend. */
SETOK_API setok_status setok_tensor_alloc(setok_tensor *t, setok_backend *backend, setok_dtype dtype,
                                int ndim, const int64_t *shape, setok_error *err);
SETOK_API void setok_tensor_free(setok_tensor *t);
/* A new tensor filled with offset + bound * u, u uniform in [-1, 1) from the
 * 32-bit LCG stream *state (advanced): the same values for the same seed on
 * every backend. For benchmarks and models with generated weights. */
SETOK_API setok_status setok_tensor_alloc_random(setok_tensor *t, setok_backend *backend, setok_dtype dtype,
                                       int ndim, const int64_t *shape, float offset, float bound,
                                       uint32_t *state, setok_error *err);
/* Whole-tensor copies between a contiguous tensor and host memory of the same dtype. */
SETOK_API setok_status setok_tensor_upload(setok_tensor *dst, const void *host, setok_error *err);
SETOK_API setok_status setok_tensor_download(void *host, const setok_tensor *src, setok_error *err);
/* The same from / to host f32, converting to / from the tensor's float dtype
 * on the way; the download waits for the backend's queued work first. */
SETOK_API setok_status setok_tensor_upload_f32(setok_tensor *dst, const float *host, setok_error *err);
SETOK_API setok_status setok_tensor_download_f32(float *host, const setok_tensor *src, setok_error *err);

/* What the CUDA runtime sees; compiled is false in builds without CUDA. */
typedef struct setok_cuda_info {
    bool compiled;
    int runtime_version;      /* e.g. 13000 */
    int device_count;
    char name[256];           /* of device 0 */
    size_t total_memory;
    size_t free_memory;
    int cc_major, cc_minor;
    char error[256];          /* why device_count is 0, if it is */
} setok_cuda_info;

SETOK_API void setok_cuda_query(setok_cuda_info *info);

/* Name of the CPU BLAS compiled in ("OpenBLAS 0.3.21") or "none". */
SETOK_API const char *setok_blas_name(void);

#ifdef __cplusplus
}
#endif
#endif
