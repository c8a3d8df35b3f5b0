/* attention.cuh — fused scaled dot-product attention (ATTENTION). */
#ifndef SETOK_CUDA_ATTENTION_CUH
#define SETOK_CUDA_ATTENTION_CUH

#include "cuda-common.cuh"

// Whether the head dims are within the kernel's limit (D, Dv <= 256).
bool setok_cuda_attention_fits(const setok_op_desc *d);
setok_status setok_cuda_attention(setok_backend *backend, const setok_op_desc *d,
                                  setok_error *err);

#endif
