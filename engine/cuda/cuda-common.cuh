/* cuda-common.cuh — what every CUDA op file shares: the backend state, the checks that turn a
 * CUDA or cuBLAS failure into a setok_error, dtype load/store helpers, warp reductions and
 * broadcast/stride descriptors passed to kernels by value.
 *
 * Rules: nothing here aborts; every runtime call and every kernel launch is checked and its
 * failure returns SETOK_ERR_DEVICE with __FILE__:__LINE__ in the message. Kernels accumulate
 * in f32 whatever the storage dtype. */
#ifndef SETOK_CUDA_COMMON_CUH
#define SETOK_CUDA_COMMON_CUH

#include <stdint.h>
#include <limits.h>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "setok-config.h"

extern "C" {
#include "backend-impl.h"
}

#include "cublas-api.cuh"

// ----------------------------------------------------------------------------
// checks

// A failed runtime call also leaves its error as the thread's "last error" (unless it is
// sticky); it is cleared here so that the next kernel launch check does not report it again.
#define CUDA_CHECK(call)                                                                       \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            cudaGetLastError();                                                                \
            return setok_fail(err, SETOK_ERR_DEVICE, "%s:%d: %s failed: %s", __FILE__,        \
                              __LINE__, #call, cudaGetErrorString(e_));                        \
        }                                                                                      \
    } while (0)

#define CUBLAS_CHECK(call)                                                                     \
    do {                                                                                       \
        cublasStatus_t s_ = (call);                                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                       \
            return setok_fail(err, SETOK_ERR_DEVICE, "%s:%d: %s failed: %s", __FILE__,        \
                              __LINE__, #call, setok_cuda_cublas_status(s_));                  \
    } while (0)

// After every <<<...>>>: a bad configuration is reported by the launch itself.
#define CUDA_CHECK_LAUNCH(kernel)                                                              \
    do {                                                                                       \
        cudaError_t e_ = cudaGetLastError();                                                   \
        if (e_ != cudaSuccess)                                                                 \
            return setok_fail(err, SETOK_ERR_DEVICE, "%s:%d: %s launch failed: %s", __FILE__, \
                              __LINE__, kernel, cudaGetErrorString(e_));                       \
    } while (0)

// Runs `...` with I bound to uint32_t when fits32 (every index and offset the kernel forms is
// below 2^31), else to int64_t: per-element division and modulo are several times cheaper in 32
// bits.
#define CUDA_INDEX_SWITCH(fits32, I, ...)                                                     \
    do {                                                                                       \
        if (fits32) {                                                                          \
            typedef uint32_t I;                                                                \
            __VA_ARGS__;                                                                       \
        } else {                                                                               \
            typedef int64_t I;                                                                 \
            __VA_ARGS__;                                                                       \
        }                                                                                      \
    } while (0)

// Runs `...` with T bound to the storage type of a float dtype; other dtypes fail.
#define CUDA_FLOAT_SWITCH(dtype, T, ...)                                                       \
    switch (dtype) {                                                                           \
    case SETOK_F32: { typedef float T; __VA_ARGS__; } break;                                   \
    case SETOK_F16: { typedef __half T; __VA_ARGS__; } break;                                  \
    case SETOK_BF16: { typedef __nv_bfloat16 T; __VA_ARGS__; } break;                          \
    default:                                                                                   \
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: %s: dtype %s is not supported", \
                          __func__, setok_dtype_name(dtype));                                  \
    }

// ----------------------------------------------------------------------------
// backend state

typedef struct setok_cuda_state {
    int device;
    cudaStream_t stream;
    const setok_cublas_api *blas; // entry points of the cuBLAS opened at creation
    cublasHandle_t cublas;
    int sm_count;
    int smem_optin;      // largest dynamic shared memory a block may opt in to (bytes)
    void *scratch;       // grown on demand (im2col, attention scores), freed with the backend
    size_t scratch_bytes;
} setok_cuda_state;

// Makes the backend's device current on this thread (ops may run on another thread than the one
// that created the backend) and returns its state.
static inline setok_status cuda_enter(setok_backend *backend, setok_cuda_state **out,
                                      setok_error *err)
{
    setok_cuda_state *st = (setok_cuda_state *)backend->impl;
    CUDA_CHECK(cudaSetDevice(st->device));
    *out = st;
    return SETOK_OK;
}

// Device scratch of at least `bytes`, valid until the next call (stream-ordered reuse).
setok_status setok_cuda_scratch(setok_backend *backend, size_t bytes, void **out,
                                setok_error *err);

// A grid for a grid-stride loop over n items.
static inline unsigned cuda_blocks(int64_t n, int threads)
{
    int64_t blocks = (n + threads - 1) / threads;
    if (blocks < 1)
        blocks = 1;
    if (blocks > (1 << 20))
        blocks = 1 << 20;
    return (unsigned)blocks;
}

// Row-wise kernels (norms, softmax): a warp per row, 4 rows a block, up to 1024 columns; a block
// per row beyond. Kernels index the row as blockIdx.x * blockDim.y + threadIdx.y.
static inline void cuda_row_launch(int64_t rows, int64_t cols, dim3 *grid, dim3 *block)
{
    if (cols <= 1024) {
        *block = dim3(32, 4);
        *grid = dim3((unsigned)((rows + 3) / 4));
    } else {
        *block = dim3(cols <= 4096 ? 256 : cols <= 16384 ? 512 : 1024, 1);
        *grid = dim3((unsigned)rows);
    }
}

// Tensors padded on the left to 4 dims (shape 1, stride 0), so kernels index [i0][i1][i2][i3];
// I is the index type (cuda_dims4 on the host, narrowed by cuda_dims_as for 32-bit kernels).
template <typename I> struct cuda_dims {
    I ne[4];
    I st[4];
};
typedef cuda_dims<int64_t> cuda_dims4;

// Whether every flat index and element offset of d is below 2^31.
static inline bool cuda_dims_fit32(const cuda_dims4 &d)
{
    int64_t n = 1, last = 0;
    for (int i = 0; i < 4; i++) {
        n *= d.ne[i];
        last += (d.ne[i] > 0 ? d.ne[i] - 1 : 0) * d.st[i];
    }
    return n <= INT32_MAX && last <= INT32_MAX && last >= 0;
}

// d in a kernel's index type (narrowing only after cuda_dims_fit32).
template <typename I> inline cuda_dims<I> cuda_dims_as(const cuda_dims4 &d)
{
    cuda_dims<I> r;
    for (int i = 0; i < 4; i++) {
        r.ne[i] = (I)d.ne[i];
        r.st[i] = (I)d.st[i];
    }
    return r;
}

static inline cuda_dims4 cuda_dims_of(const setok_tensor *t)
{
    cuda_dims4 d;
    int pad = 4 - t->ndim;
    for (int i = 0; i < 4; i++) {
        d.ne[i] = i < pad ? 1 : t->shape[i - pad];
        d.st[i] = i < pad ? 0 : t->stride[i - pad];
    }
    return d;
}

// The strides (in elements, 4-dim left-padded like cuda_dims_of(a)) that map an index of a's
// shape onto b under NumPy broadcasting: 0 where b has no axis or extent 1.
static inline cuda_dims4 cuda_broadcast_dims(const setok_tensor *a, const setok_tensor *b)
{
    cuda_dims4 d = cuda_dims_of(a);
    for (int i = 0; i < 4; i++) {
        int ai = i - (4 - a->ndim);           // axis of a, < 0 for padding
        int bi = ai + (b->ndim - a->ndim);    // right-aligned axis of b
        d.st[i] = (ai < 0 || bi < 0 || b->shape[bi] == 1) ? 0 : b->stride[bi];
    }
    return d;
}

// Same rule against an explicit 4-dim target shape (attention's [B, Hq, Tq, Tk]).
static inline cuda_dims4 cuda_broadcast_to(const int64_t ne[4], const setok_tensor *b)
{
    cuda_dims4 d;
    for (int i = 0; i < 4; i++) {
        int bi = i - (4 - b->ndim);
        d.ne[i] = ne[i];
        d.st[i] = (bi < 0 || b->shape[bi] == 1) ? 0 : b->stride[bi];
    }
    return d;
}

static inline int64_t cuda_rows(const setok_tensor *t, int64_t row_len)
{
    return row_len > 0 ? setok_tensor_numel(t) / row_len : 0;
}

// ----------------------------------------------------------------------------
// device helpers

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v)
{
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

// Element offset of flat index i of a 4-dim shape under strides d.st.
template <typename I> __device__ __forceinline__ I dims_offset(const cuda_dims<I> &d, I i)
{
    I i3 = i % d.ne[3];
    i /= d.ne[3];
    I i2 = i % d.ne[2];
    i /= d.ne[2];
    I i1 = i % d.ne[1];
    I i0 = i / d.ne[1];
    return i0 * d.st[0] + i1 * d.st[1] + i2 * d.st[2] + i3 * d.st[3];
}

// This thread's first index and the stride of a grid-stride loop, in the kernel's index type.
template <typename I> __device__ __forceinline__ I grid_first()
{
    return (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
}
template <typename I> __device__ __forceinline__ I grid_step()
{
    return (I)gridDim.x * (I)blockDim.x;
}

// N elements of T moved by one load or store (16 bytes for the widest of an op's dtypes).
template <typename T, int N> struct alignas(sizeof(T) * N) cuda_pack {
    T v[N];
};

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum or max over the threads of one row group: the blockDim.x threads that share threadIdx.y.
// blockDim.x is 32 (a warp per row, no barrier) or a multiple of 32 with blockDim.y == 1.
// shm holds 32 floats; every thread of the block must call it.
__device__ __forceinline__ float row_reduce(float v, float *shm, bool is_max)
{
    v = is_max ? warp_max(v) : warp_sum(v);
    if (blockDim.x == 32)
        return v;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads(); // shm may still be read by a previous reduction
    if (lane == 0)
        shm[warp] = v;
    __syncthreads();
    int nwarps = blockDim.x / 32;
    v = lane < nwarps ? shm[lane] : (is_max ? -INFINITY : 0.0f);
    return is_max ? warp_max(v) : warp_sum(v);
}

#endif
