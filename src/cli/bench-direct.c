/* bench-direct.c — direct cblas_sgemm and cublasGemmEx timings for
 * `setok bench ops`. Buffers are filled with small values; only speed is read. */
#include "bench-direct.h"

#include <stdlib.h>

#include "setok-config.h"
#include "setok/clock.h"

#if SETOK_HAVE_BLAS
#include <cblas.h>
#endif
#if SETOK_HAVE_CUDA
/* the CUDA headers test undefined macros; keep -Wundef for our own code */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wundef"
#include <cublas_v2.h>
#include <cuda_runtime.h>
#pragma GCC diagnostic pop
#include <dlfcn.h>
#endif

double
bench_now (void)
{
  return setok_clock_ms () * 1e-3;
}

double
bench_direct_cblas_sgemm (int64_t m, int64_t k, int64_t n, int min_reps, double min_time)
{
#if SETOK_HAVE_BLAS
  float *x = malloc ((size_t)(m * k) * sizeof *x), *w = malloc ((size_t)(n * k) * sizeof *w);
  float *y = malloc ((size_t)(m * n) * sizeof *y);
  double result = -1.0;
  if (x && w && y)
    {
      for (int64_t i = 0; i < m * k; i++)
        x[i] = (float)(i % 7) * 0.01f;
      for (int64_t i = 0; i < n * k; i++)
        w[i] = (float)(i % 5) * 0.01f;
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, x, (int)k,
                   w, (int)k, 0.0f, y, (int)n);
      for (int reps = min_reps > 0 ? min_reps : 1;; reps *= 2)
        {
          double t0 = bench_now ();
          for (int i = 0; i < reps; i++)
            cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, x,
                         (int)k, w, (int)k, 0.0f, y, (int)n);
          double t = bench_now () - t0;
          if (t >= min_time || reps >= (1 << 20))
            {
              result = t / reps;
              break;
            }
        }
    }
  free (x);
  free (w);
  free (y);
  return result;
#else
  (void)m, (void)k, (void)n, (void)min_reps, (void)min_time;
  return -1.0;
#endif
}

double
bench_direct_cublas_gemm (int64_t m, int64_t k, int64_t n, setok_dtype dtype, int min_reps,
                          double min_time)
{
#if SETOK_HAVE_CUDA
  /* cuBLAS is not linked: the CUDA backend that ran first has opened it (or this loads it) */
  void *lib = dlopen (SETOK_CUBLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  if (!lib && SETOK_CUDA_LIBDIR[0])
    lib = dlopen (SETOK_CUDA_LIBDIR "/" SETOK_CUBLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  if (!lib)
    return -1.0;
  __typeof__ (&cublasCreate_v2) create = (__typeof__ (create))dlsym (lib, "cublasCreate_v2");
  __typeof__ (&cublasDestroy_v2) destroy = (__typeof__ (destroy))dlsym (lib, "cublasDestroy_v2");
  __typeof__ (&cublasGemmEx) gemm_ex = (__typeof__ (gemm_ex))dlsym (lib, "cublasGemmEx");
  if (!create || !destroy || !gemm_ex)
    return -1.0;
  cudaDataType_t type = dtype == SETOK_F16    ? CUDA_R_16F
                        : dtype == SETOK_BF16 ? CUDA_R_16BF
                                              : CUDA_R_32F;
  size_t es = setok_dtype_size (dtype);
  void *x = NULL, *w = NULL, *y = NULL;
  cublasHandle_t h = NULL;
  double result = -1.0;
  if (cudaMalloc (&x, (size_t)(m * k) * es) != cudaSuccess
      || cudaMalloc (&w, (size_t)(n * k) * es) != cudaSuccess
      || cudaMalloc (&y, (size_t)(m * n) * es) != cudaSuccess || create (&h) != 0)
    goto out;
  cudaMemset (x, 0, (size_t)(m * k) * es);
  cudaMemset (w, 0, (size_t)(n * k) * es);
  float one = 1.0f, zero = 0.0f;
  /* row-major y = x w^T is column-major y^T = w x^T: op(A) = w^T of [K, N] col-major */
#define GEMM()                                                                                     \
  gemm_ex (h, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, w, type, (int)k, x,          \
           type, (int)k, &zero, y, type, (int)n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)
  if (GEMM () != CUBLAS_STATUS_SUCCESS || cudaDeviceSynchronize () != cudaSuccess)
    goto out;
  /* batches of calls, one synchronize per batch, doubling until min_time */
  for (int reps = min_reps > 0 ? min_reps : 1;; reps *= 2)
    {
      double t0 = bench_now ();
      for (int i = 0; i < reps; i++)
        GEMM ();
      if (cudaDeviceSynchronize () != cudaSuccess)
        goto out;
      double t = bench_now () - t0;
      if (t >= min_time || reps >= (1 << 20))
        {
          result = t / reps;
          break;
        }
    }
#undef GEMM
out:
  if (h)
    destroy (h);
  cudaFree (x);
  cudaFree (w);
  cudaFree (y);
  return result;
#else
  (void)m, (void)k, (void)n, (void)dtype, (void)min_reps, (void)min_time;
  return -1.0;
#endif
}
