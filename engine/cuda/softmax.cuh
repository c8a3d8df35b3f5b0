/* softmax.cuh — SOFTMAX over the last axis with scale, additive mask and the causal rule. */
#ifndef SETOK_CUDA_SOFTMAX_CUH
#define SETOK_CUDA_SOFTMAX_CUH

#include "cuda-common.cuh"

setok_status setok_cuda_softmax(setok_backend *backend, const setok_op_desc *d, setok_error *err);

#endif
