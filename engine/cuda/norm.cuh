/* norm.cuh — LAYERNORM, RMSNORM and GROUPNORM. */
#ifndef SETOK_CUDA_NORM_CUH
#define SETOK_CUDA_NORM_CUH

#include "cuda-common.cuh"

// LAYERNORM and RMSNORM (d->op tells which).
setok_status setok_cuda_norm(setok_backend *backend, const setok_op_desc *d, setok_error *err);
setok_status setok_cuda_groupnorm(setok_backend *backend, const setok_op_desc *d,
                                  setok_error *err);

#endif
