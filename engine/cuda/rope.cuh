/* rope.cuh — ROPE, GPT-NeoX / HF LLaMA rotate_half layout. */
#ifndef SETOK_CUDA_ROPE_CUH
#define SETOK_CUDA_ROPE_CUH

#include "cuda-common.cuh"

// Whether the rotated channels fit the kernel's shared-memory table (rot_dims <= 12288).
bool setok_cuda_rope_fits(const setok_op_desc *d);
setok_status setok_cuda_rope(setok_backend *backend, const setok_op_desc *d, setok_error *err);

#endif
