/* cuda-backend.cu — the CUDA backend: device query, creation, memory, the scratch buffer,
 * supports_op and the op table.
 *
 * One stream per backend: every copy, kernel and cuBLAS call goes on it, so ops run in order and
 * asynchronously; download and synchronize wait for it. cuBLAS runs with CUBLAS_DEFAULT_MATH
 * (no TF32) and reductions in f32, so results stay close to the CPU's. cuBLAS is opened by the
 * first creation (cublas-api.cu), not linked. Memory is freed only after the stream has
 * drained. Without a driver, a device or cuBLAS, creation reports SETOK_ERR_UNSUPPORTED and the
 * query fills its error string; nothing aborts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.cuh"
#include "conv.cuh"
#include "copy.cuh"
#include "elementwise.cuh"
#include "gather.cuh"
#include "matmul.cuh"
#include "norm.cuh"
#include "reduce.cuh"
#include "rope.cuh"
#include "softmax.cuh"

// ----------------------------------------------------------------------------
// query

extern "C" void setok_cuda_backend_query(setok_cuda_info *info)
{
    memset(info, 0, sizeof *info);
    info->compiled = true;
    cudaRuntimeGetVersion(&info->runtime_version);
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError(); // clear it: the caller may still use the CPU
        snprintf(info->error, sizeof info->error, "%s", cudaGetErrorString(e));
        return;
    }
    info->device_count = count;
    if (count == 0) {
        snprintf(info->error, sizeof info->error, "no CUDA device found");
        return;
    }
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, 0);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(info->error, sizeof info->error, "device 0: %s", cudaGetErrorString(e));
        return;
    }
    snprintf(info->name, sizeof info->name, "%s", prop.name);
    info->total_memory = prop.totalGlobalMem;
    info->cc_major = prop.major;
    info->cc_minor = prop.minor;
    int prev = 0;
    if (cudaGetDevice(&prev) == cudaSuccess && cudaSetDevice(0) == cudaSuccess) {
        size_t free_bytes = 0, total = 0;
        if (cudaMemGetInfo(&free_bytes, &total) == cudaSuccess)
            info->free_memory = free_bytes;
        cudaSetDevice(prev);
    }
    cudaGetLastError();
}

// ----------------------------------------------------------------------------
// memory

static setok_status cuda_alloc(setok_backend *backend, size_t bytes, void **out,
                               setok_error *err)
{
    setok_cuda_state *st = NULL;
    *out = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        size_t free_bytes = 0, total = 0;
        cudaMemGetInfo(&free_bytes, &total);
        cudaGetLastError();
        return setok_fail(err, e == cudaErrorMemoryAllocation ? SETOK_ERR_NOMEM : SETOK_ERR_DEVICE,
                          "cuda: cannot allocate %.1f MiB on the device (%.1f MiB free): %s",
                          (double)bytes / (1 << 20), (double)free_bytes / (1 << 20),
                          cudaGetErrorString(e));
    }
    *out = p;
    return SETOK_OK;
}

static void cuda_release(setok_backend *backend, void *ptr)
{
    setok_cuda_state *st = (setok_cuda_state *)backend->impl;
    cudaSetDevice(st->device);
    // cudaFree of cudaMalloc memory is only documented as synchronous "for most use cases":
    // wait for the stream explicitly so that no queued kernel still reads or writes ptr.
    cudaStreamSynchronize(st->stream);
    cudaFree(ptr);
    cudaGetLastError();
}

static size_t cuda_memory_in_use(setok_backend *backend)
{
    setok_cuda_state *st = (setok_cuda_state *)backend->impl;
    size_t free_bytes = 0, total = 0;
    cudaSetDevice(st->device);
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return total - free_bytes;
}

static setok_status cuda_upload(setok_backend *backend, void *dst, const void *src, size_t bytes,
                                setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK || bytes == 0)
        return s;
    // Ordered after the ops already queued; waiting keeps the host buffer the caller's again.
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st->stream));
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
    return SETOK_OK;
}

static setok_status cuda_download(setok_backend *backend, void *dst, const void *src, size_t bytes,
                                  setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK || bytes == 0)
        return s;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st->stream));
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
    return SETOK_OK;
}

static setok_status cuda_synchronize(setok_backend *backend, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
    return SETOK_OK;
}

setok_status setok_cuda_scratch(setok_backend *backend, size_t bytes, void **out,
                                setok_error *err)
{
    setok_cuda_state *st = (setok_cuda_state *)backend->impl;
    if (bytes > st->scratch_bytes) {
        if (st->scratch) {
            // Kernels queued by earlier ops may still read or write the old buffer: wait for
            // them before freeing it (cudaFree alone is not guaranteed to synchronise).
            CUDA_CHECK(cudaStreamSynchronize(st->stream));
            cudaFree(st->scratch);
            st->scratch = NULL;
            st->scratch_bytes = 0;
        }
        // Half again as much, so a slowly growing workload reallocates rarely.
        size_t want = bytes + bytes / 2;
        void *p;
        setok_error ignored;
        if (cuda_alloc(backend, want, &p, &ignored) != SETOK_OK) {
            want = bytes;
            setok_status s = cuda_alloc(backend, want, &p, err);
            if (s != SETOK_OK)
                return s;
        }
        st->scratch = p;
        st->scratch_bytes = want;
    }
    *out = st->scratch;
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// supports_op

static bool is_float(const setok_tensor *t)
{
    return t->dtype == SETOK_F32 || t->dtype == SETOK_F16 || t->dtype == SETOK_BF16;
}

// Every present tensor among dst, src[first..3] is a float tensor of dst's dtype.
static bool same_float(const setok_op_desc *d, int first)
{
    if (!is_float(d->dst))
        return false;
    for (int i = first; i < 4; i++)
        if (d->src[i] && d->src[i]->dtype != d->dst->dtype)
            return false;
    return true;
}

static bool cuda_supports_op(const setok_backend *backend, const setok_op_desc *d)
{
    (void)backend;
    if (!d->dst || !d->src[0])
        return false;
    switch (d->op) {
    case SETOK_OP_ROPE: // positions I32, inv_freq f32
        return same_float(d, 3) && d->src[0]->dtype == d->dst->dtype && d->src[1] &&
               d->src[1]->dtype == SETOK_I32 && (!d->src[2] || d->src[2]->dtype == SETOK_F32) &&
               setok_cuda_rope_fits(d);
    case SETOK_OP_GET_ROWS:
        return is_float(d->dst) && is_float(d->src[0]) && d->src[1] &&
               d->src[1]->dtype == SETOK_I32;
    case SETOK_OP_ARGMAX:
        return is_float(d->src[0]) && d->dst->dtype == SETOK_I32;
    case SETOK_OP_TOPK:
        return is_float(d->src[0]) && d->dst->dtype == d->src[0]->dtype && d->dst2 &&
               d->dst2->dtype == SETOK_I32 && d->p.topk.k <= TOPK_MAX_K;
    case SETOK_OP_COPY:
        return (is_float(d->src[0]) && is_float(d->dst)) ||
               (d->src[0]->dtype == SETOK_I32 && d->dst->dtype == SETOK_I32);
    default:
        return same_float(d, 0);
    }
}

// ----------------------------------------------------------------------------
// create / destroy

static void cuda_destroy(setok_backend *backend)
{
    if (!backend)
        return;
    setok_cuda_state *st = (setok_cuda_state *)backend->impl;
    if (st) {
        cudaSetDevice(st->device);
        if (st->stream)
            cudaStreamSynchronize(st->stream);
        if (st->scratch)
            cudaFree(st->scratch);
        if (st->cublas)
            st->blas->destroy(st->cublas);
        if (st->stream)
            cudaStreamDestroy(st->stream);
        cudaGetLastError();
        free(st);
    }
    free(backend);
}

// C++ has no designated array initialisers, so the table is filled by index at load time.
static setok_backend_vtable cuda_make_vtable(void)
{
    setok_backend_vtable vt;
    memset(&vt, 0, sizeof vt);
    vt.name = "cuda";
    vt.is_host = false;
    vt.destroy = cuda_destroy;
    vt.alloc = cuda_alloc;
    vt.release = cuda_release;
    vt.memory_in_use = cuda_memory_in_use;
    vt.upload = cuda_upload;
    vt.download = cuda_download;
    vt.synchronize = cuda_synchronize;
    vt.supports_op = cuda_supports_op;
    vt.ops[SETOK_OP_MATMUL] = setok_cuda_matmul;
    vt.ops[SETOK_OP_ADD] = setok_cuda_binary;
    vt.ops[SETOK_OP_MUL] = setok_cuda_binary;
    vt.ops[SETOK_OP_SCALE] = setok_cuda_scale;
    vt.ops[SETOK_OP_LAYERNORM] = setok_cuda_norm;
    vt.ops[SETOK_OP_RMSNORM] = setok_cuda_norm;
    vt.ops[SETOK_OP_GROUPNORM] = setok_cuda_groupnorm;
    vt.ops[SETOK_OP_SOFTMAX] = setok_cuda_softmax;
    vt.ops[SETOK_OP_GELU] = setok_cuda_unary;
    vt.ops[SETOK_OP_GELU_TANH] = setok_cuda_unary;
    vt.ops[SETOK_OP_QUICK_GELU] = setok_cuda_unary;
    vt.ops[SETOK_OP_SILU] = setok_cuda_unary;
    vt.ops[SETOK_OP_RELU] = setok_cuda_unary;
    vt.ops[SETOK_OP_SWIGLU] = setok_cuda_glu;
    vt.ops[SETOK_OP_GEGLU] = setok_cuda_glu;
    vt.ops[SETOK_OP_ROPE] = setok_cuda_rope;
    vt.ops[SETOK_OP_ATTENTION] = setok_cuda_attention;
    vt.ops[SETOK_OP_CONV2D] = setok_cuda_conv2d;
    vt.ops[SETOK_OP_CONV_TRANSPOSE2D] = setok_cuda_conv_transpose2d;
    vt.ops[SETOK_OP_UPSAMPLE_NEAREST] = setok_cuda_upsample_nearest;
    vt.ops[SETOK_OP_GET_ROWS] = setok_cuda_get_rows;
    vt.ops[SETOK_OP_RESIZE_BICUBIC] = setok_cuda_resize_bicubic;
    vt.ops[SETOK_OP_ARGMAX] = setok_cuda_argmax;
    vt.ops[SETOK_OP_TOPK] = setok_cuda_topk;
    vt.ops[SETOK_OP_COPY] = setok_cuda_copy;
    return vt;
}

static const setok_backend_vtable cuda_vtable = cuda_make_vtable();

static setok_status cuda_init(setok_backend *backend, int device, setok_error *err)
{
    setok_cuda_state *st = (setok_cuda_state *)backend->impl;
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    CUDA_CHECK(cudaSetDevice(device));
    st->sm_count = prop.multiProcessorCount;
    CUDA_CHECK(cudaDeviceGetAttribute(&st->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                      device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking));
    setok_status s = setok_cuda_cublas_api(&st->blas, err);
    if (s != SETOK_OK)
        return s;
    CUBLAS_CHECK(st->blas->create(&st->cublas));
    CUBLAS_CHECK(st->blas->set_stream(st->cublas, st->stream));
    // No TF32, and split-K reductions of f16 / bf16 GEMMs stay in f32 rather than in the output
    // type (cuBLAS allows the latter by default), so every GEMM accumulates in f32.
    CUBLAS_CHECK(st->blas->set_math_mode(
        st->cublas,
        (cublasMath_t)(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    snprintf(backend->description, sizeof backend->description, "%.200s (%.1f GiB, sm_%d%d)",
             prop.name, (double)prop.totalGlobalMem / (double)(1ull << 30), prop.major,
             prop.minor);
    return SETOK_OK;
}

extern "C" setok_status setok_cuda_backend_create(setok_backend **out, int device,
                                                  setok_error *err)
{
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: no usable CUDA device: %s",
                          cudaGetErrorString(e));
    }
    if (count == 0)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: no CUDA device found");
    if (device < 0 || device >= count)
        return setok_fail(err, SETOK_ERR_INPUT, "cuda: device %d does not exist (%d found)",
                          device, count);

    setok_backend *backend = (setok_backend *)calloc(1, sizeof *backend);
    setok_cuda_state *st = (setok_cuda_state *)calloc(1, sizeof *st);
    if (!backend || !st) {
        free(backend);
        free(st);
        return setok_fail(err, SETOK_ERR_NOMEM, "cuda: out of memory");
    }
    st->device = device;
    backend->vt = &cuda_vtable;
    backend->impl = st;
    setok_status s = cuda_init(backend, device, err);
    if (s != SETOK_OK) {
        cuda_destroy(backend);
        return s;
    }
    *out = backend;
    return SETOK_OK;
}
