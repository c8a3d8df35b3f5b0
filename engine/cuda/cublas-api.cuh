/* cublas-api.cuh — the cuBLAS entry points the CUDA backend calls, resolved at run time. */
#ifndef SETOK_CUDA_CUBLAS_API_CUH
#define SETOK_CUDA_CUBLAS_API_CUH

#include <cublas_v2.h>

#include "setok/error.h"

// The C entry point (C++ also sees an inline overload taking a cudaDataType compute type).
typedef cublasStatus_t (*setok_cublas_gemm_fn)(
    cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
    const void *, cudaDataType, int, long long, const void *, cudaDataType, int, long long,
    const void *, void *, cudaDataType, int, long long, int, cublasComputeType_t,
    cublasGemmAlgo_t);

// One table per process, filled by the first setok_cuda_cublas_api call. The types come from
// the header (decltype, static_cast: unevaluated, nothing is linked), so a signature change in
// a new toolkit fails to compile rather than to run.
typedef struct setok_cublas_api {
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetStream_v2) set_stream;
    decltype(&cublasSetMathMode) set_math_mode;
    decltype(static_cast<setok_cublas_gemm_fn>(&cublasGemmStridedBatchedEx))
        gemm_strided_batched_ex;
    decltype(&cublasGetStatusString) status_string;
} setok_cublas_api;

// Opens libcublas (SETOK_CUBLAS_LIBRARY by name, then from the toolkit the build used) once and
// resolves the table; SETOK_ERR_UNSUPPORTED, naming the library and the loader's message, when
// it is missing or lacks an entry point.
setok_status setok_cuda_cublas_api(const setok_cublas_api **out, setok_error *err);

// cuBLAS's name for a status once the library is open, else the number.
const char *setok_cuda_cublas_status(cublasStatus_t status);

#endif
