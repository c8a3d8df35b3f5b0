/* copy.cuh — COPY: strided views with dtype conversion. */
#ifndef SETOK_CUDA_COPY_CUH
#define SETOK_CUDA_COPY_CUH

#include "cuda-common.cuh"

setok_status setok_cuda_copy(setok_backend *backend, const setok_op_desc *d, setok_error *err);

#endif
