/* bench-direct.h — the libraries' own GEMM, called directly, as the yardstick
 * `setok bench ops` compares the engine's matmul with. */
#ifndef SETOK_BENCH_DIRECT_H
#define SETOK_BENCH_DIRECT_H

#include <stdbool.h>
#include <stdint.h>

#include "setok/tensor.h"

/* Seconds per call of y[M, N] = x[M, K] w[N, K]^T; negative when unavailable. */
double bench_direct_cblas_sgemm (int64_t m, int64_t k, int64_t n, int min_reps, double min_time);
/* Same with cublasGemmEx on device 0 in dtype (f32 with f32 compute, f16/bf16
 * with f32 accumulate); negative when CUDA is not compiled in or fails. */
double bench_direct_cublas_gemm (int64_t m, int64_t k, int64_t n, setok_dtype dtype, int min_reps,
                                 double min_time);

/* Monotonic seconds. */
double bench_now (void);

#endif
