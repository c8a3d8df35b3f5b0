/* cublas-api.cu — cuBLAS opened with dlopen when the first CUDA backend is created.
 *
 * Linking libcublas (and through it libcublasLt) maps about 200 MB into every process that
 * loads libsetok, with or without a GPU; opening it on demand keeps `setok --version` and CPU
 * work at the size of the CPU build. The library stays open for the life of the process. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "cublas-api.cuh"

#include "setok-config.h"

static setok_cublas_api cublas_api;
static bool cublas_loaded;
static char cublas_error[SETOK_ERROR_MAX];
static pthread_once_t cublas_once = PTHREAD_ONCE_INIT;

// Resolves one symbol into *slot; false (and the message) when it is missing.
template <typename F> static bool resolve(void *lib, const char *path, const char *name, F *slot)
{
    *slot = (F)dlsym(lib, name);
    if (!*slot)
        snprintf(cublas_error, sizeof cublas_error, "%.900s has no %s (cuBLAS too old?)",
                 path, name);
    return *slot != NULL;
}

static void cublas_load(void)
{
    const char *path = SETOK_CUBLAS_LIBRARY;
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    char first[256] = "", full[1024];
    if (!lib && SETOK_CUDA_LIBDIR[0]) {
        snprintf(first, sizeof first, "%s", dlerror());
        snprintf(full, sizeof full, "%s/%s", SETOK_CUDA_LIBDIR, SETOK_CUBLAS_LIBRARY);
        path = full;
        lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!lib) {
        snprintf(cublas_error, sizeof cublas_error, "cannot load cuBLAS: %s%s%s", dlerror(),
                 first[0] ? "; " : "", first);
        return;
    }
    setok_cublas_api *a = &cublas_api;
    cublas_loaded = resolve(lib, path, "cublasCreate_v2", &a->create) &&
                    resolve(lib, path, "cublasDestroy_v2", &a->destroy) &&
                    resolve(lib, path, "cublasSetStream_v2", &a->set_stream) &&
                    resolve(lib, path, "cublasSetMathMode", &a->set_math_mode) &&
                    resolve(lib, path, "cublasGemmStridedBatchedEx",
                            &a->gemm_strided_batched_ex) &&
                    resolve(lib, path, "cublasGetStatusString", &a->status_string);
}

setok_status setok_cuda_cublas_api(const setok_cublas_api **out, setok_error *err)
{
    *out = NULL;
    pthread_once(&cublas_once, cublas_load);
    if (!cublas_loaded)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: %s", cublas_error);
    *out = &cublas_api;
    return SETOK_OK;
}

const char *setok_cuda_cublas_status(cublasStatus_t status)
{
    static thread_local char number[32];
    if (cublas_loaded)
        return cublas_api.status_string(status);
    snprintf(number, sizeof number, "cuBLAS status %d", (int)status);
    return number;
}
