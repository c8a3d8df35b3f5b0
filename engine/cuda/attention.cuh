/* attention.cuh — scaled dot-product attention (ATTENTION), any head dims, k / v views. */
#ifndef SETOK_CUDA_ATTENTION_CUH
#define SETOK_CUDA_ATTENTION_CUH

#include "cuda-common.cuh"

setok_status setok_cuda_attention(setok_backend *backend, const setok_op_desc *d,
                                  setok_error *err);

#endif
