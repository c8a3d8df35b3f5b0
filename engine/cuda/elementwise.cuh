/* elementwise.cuh — ADD, MUL, SCALE, the activations and the gated units. */
#ifndef SETOK_CUDA_ELEMENTWISE_CUH
#define SETOK_CUDA_ELEMENTWISE_CUH

#include "cuda-common.cuh"

setok_status setok_cuda_binary(setok_backend *backend, const setok_op_desc *d, setok_error *err);
setok_status setok_cuda_scale(setok_backend *backend, const setok_op_desc *d, setok_error *err);
setok_status setok_cuda_unary(setok_backend *backend, const setok_op_desc *d, setok_error *err);
setok_status setok_cuda_glu(setok_backend *backend, const setok_op_desc *d, setok_error *err);

#endif
