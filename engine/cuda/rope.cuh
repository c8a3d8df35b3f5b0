/* rope.cuh — ROPE, GPT-NeoX / HF LLaMA rotate_half layout. */
#ifndef SETOK_CUDA_ROPE_CUH
#define SETOK_CUDA_ROPE_CUH

#include "cuda-common.cuh"

setok_status setok_cuda_rope(setok_backend *backend, const setok_op_desc *d, setok_error *err);

#endif
