/* matmul.cuh — cuBLAS GEMM for MATMUL and for the ops built on it (conv2d). */
#ifndef SETOK_CUDA_MATMUL_CUH
#define SETOK_CUDA_MATMUL_CUH

#include "cuda-common.cuh"

// Row-major y[M, N] (row stride ldy) = alpha * op(a) op(b) + beta * y, for `batch` problems
// `stride_*` elements apart (0: shared). op(a) is [M, K], a is stored [M, K] or, when ta,
// [K, M] with row stride lda; likewise b. a and b are dtype, y is ydtype (dtype, or f32).
// f32 runs in plain f32 (no TF32); f16 and bf16 accumulate in f32.
setok_status cuda_gemm(setok_cuda_state *st, setok_dtype dtype, setok_dtype ydtype, bool ta,
                       bool tb, int64_t m, int64_t n, int64_t k, float alpha, const void *a,
                       int64_t lda, int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b,
                       float beta, void *y, int64_t ldy, int64_t stride_y, int64_t batch,
                       setok_error *err);

// y[i] = bias[(i / inner) % channels] for i < n, or 0 when bias is NULL: the starting value of
// a GEMM run with beta = 1, so that the bias is added before the single rounding to y's dtype.
setok_status cuda_fill_bias(setok_cuda_state *st, setok_dtype dtype, void *y, const void *bias,
                            int64_t n, int64_t channels, int64_t inner, setok_error *err);

setok_status setok_cuda_matmul(setok_backend *backend, const setok_op_desc *d, setok_error *err);

#endif
