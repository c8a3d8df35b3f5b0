/* reduce.cuh — ARGMAX and TOPK over the last axis. */
#ifndef SETOK_CUDA_REDUCE_CUH
#define SETOK_CUDA_REDUCE_CUH

#include "cuda-common.cuh"

#define TOPK_MAX_K 4096 // the candidates are sorted in shared memory

setok_status setok_cuda_argmax(setok_backend *backend, const setok_op_desc *d, setok_error *err);
setok_status setok_cuda_topk(setok_backend *backend, const setok_op_desc *d, setok_error *err);

#endif
