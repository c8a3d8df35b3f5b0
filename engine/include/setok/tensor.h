/* tensor.h — dtypes and tensors.
 *
 * A tensor is a small value: dtype, shape, strides (in elements, outermost
 * first as in PyTorch), a data pointer and the backend whose memory holds it.
 * It owns nothing; memory comes from setok_tensor_alloc, an arena or a
 * mmapped file. Views (reshape, permute, slice) share data with their base. */
#ifndef SETOK_TENSOR_H
#define SETOK_TENSOR_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum setok_dtype {
    SETOK_F32 = 0,
    SETOK_F16,
    SETOK_BF16,
    SETOK_I32,
    /* Block-quantized weights (quant.h has the layouts): blocks of 32 values along
     * the last axis, which must be a multiple of 32. Only matrix operands of
     * MATMUL (a linear layer's weight) take them. */
    SETOK_Q8,   /* 32 signed bytes and one f16 scale: 34 bytes a block */
    SETOK_Q4,   /* 32 nibbles, an f16 scale and an f16 minimum: 20 bytes a block */
    SETOK_DTYPE_COUNT,
} setok_dtype;

#define SETOK_MAX_DIMS 4

typedef struct setok_backend setok_backend;

typedef struct setok_tensor {
    setok_dtype dtype;
    int ndim;                        /* 0 (scalar) .. SETOK_MAX_DIMS */
    int64_t shape[SETOK_MAX_DIMS];   /* entries past ndim are 1 */
    int64_t stride[SETOK_MAX_DIMS];  /* in elements; entries past ndim are 1 */
    void *data;                      /* host or device address, per backend */
    setok_backend *backend;          /* where data lives */
    bool borrowed;                   /* data is someone else's (a mapped weight file):
                                        setok_tensor_free leaves it */
} setok_tensor;

/* Bytes of one element; 0 for the block-quantized dtypes (use setok_dtype_bytes). */
SETOK_API size_t setok_dtype_size(setok_dtype dtype);
/* Bytes of count consecutive elements (a multiple of the block for Q8 / Q4). */
SETOK_API size_t setok_dtype_bytes(setok_dtype dtype, int64_t count);
/* Elements a block holds: 32 for Q8 / Q4, else 1. */
SETOK_API int setok_dtype_block(setok_dtype dtype);
SETOK_API bool setok_dtype_is_quantized(setok_dtype dtype);
SETOK_API const char *setok_dtype_name(setok_dtype dtype);
/* f32, f16 or bf16. */
SETOK_API bool setok_dtype_is_float(setok_dtype dtype);
/* "f32", "f16", ... -> *out; false when unknown. */
SETOK_API bool setok_dtype_from_name(const char *name, setok_dtype *out);

/* A contiguous tensor over existing memory. ndim and shape are not checked
 * here; use setok_tensor_init when they come from outside. */
SETOK_API setok_tensor setok_tensor_make(void *data, setok_backend *backend, setok_dtype dtype, int ndim,
                               const int64_t *shape);

/* Like setok_tensor_make, but validates ndim (0..4) and each extent (>= 0,
 * numel * itemsize representable). */
SETOK_API setok_status setok_tensor_init(setok_tensor *t, void *data, setok_backend *backend,
                               setok_dtype dtype, int ndim, const int64_t *shape,
                               setok_error *err);

SETOK_API int64_t setok_tensor_numel(const setok_tensor *t);
SETOK_API size_t setok_tensor_nbytes(const setok_tensor *t);
SETOK_API bool setok_tensor_is_contiguous(const setok_tensor *t);
SETOK_API bool setok_tensor_same_shape(const setok_tensor *a, const setok_tensor *b);
/* "[2, 3, 4] f16" into buf; returns buf. */
SETOK_API const char *setok_tensor_describe(const setok_tensor *t, char *buf, size_t size);

/* Views. reshape needs a contiguous tensor with the same element count;
 * permute reorders axes (perm[i] = the source axis of output axis i);
 * slice keeps [start, start + len) of one axis. */
SETOK_API setok_status setok_view_reshape(setok_tensor *out, const setok_tensor *t, int ndim,
                                const int64_t *shape, setok_error *err);
SETOK_API setok_status setok_view_permute(setok_tensor *out, const setok_tensor *t, const int *perm,
                                setok_error *err);
SETOK_API setok_status setok_view_slice(setok_tensor *out, const setok_tensor *t, int axis, int64_t start,
                              int64_t len, setok_error *err);

/* IEEE half and bfloat16, round-to-nearest-even as PyTorch converts. */
SETOK_API float setok_f16_to_f32(uint16_t h);
SETOK_API uint16_t setok_f32_to_f16(float f);
SETOK_API float setok_bf16_to_f32(uint16_t b);
SETOK_API uint16_t setok_f32_to_bf16(float f);

/* Element i of a contiguous host buffer of a float dtype, as float, and back
 * (loading also decodes Q8 / Q4; storing into them is not supported). */
SETOK_API float setok_load_f32(const void *data, setok_dtype dtype, int64_t i);
SETOK_API void setok_store_f32(void *data, setok_dtype dtype, int64_t i, float v);

#ifdef __cplusplus
}
#endif
#endif
