/* conv.cuh — CONV2D and CONV_TRANSPOSE2D. */
#ifndef SETOK_CUDA_CONV_CUH
#define SETOK_CUDA_CONV_CUH

#include "cuda-common.cuh"

setok_status setok_cuda_conv2d(setok_backend *backend, const setok_op_desc *d, setok_error *err);
setok_status setok_cuda_conv_transpose2d(setok_backend *backend, const setok_op_desc *d,
                                         setok_error *err);

#endif
