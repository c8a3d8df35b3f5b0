/* softmax.cuh — SOFTMAX over the last axis with scale, additive mask and the causal rule. */
#ifndef SETOK_CUDA_SOFTMAX_CUH
#define SETOK_CUDA_SOFTMAX_CUH

#include "cuda-common.cuh"

setok_status setok_cuda_softmax(setok_backend *backend, const setok_op_desc *d, setok_error *err);

// y [rows, Tk] (dtype) = softmax(x [rows, Tk] * scale + mask) for the rows row0 .. row0 + rows
// of a [..., Tq, Tk] problem: mask (dtype, offsets md over that problem) and the causal rule
// index by those rows. x is f32 (attention scores from cuBLAS) or dtype.
setok_status cuda_softmax_rows(setok_cuda_state *st, setok_dtype xdtype, const void *x,
                               setok_dtype dtype, void *y, const void *mask,
                               const cuda_dims4 &md, int64_t row0, int64_t rows, int64_t tq,
                               int64_t tk, float scale, bool causal, setok_error *err);

#endif
