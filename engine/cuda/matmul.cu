/* matmul.cu — MATMUL on cuBLAS (cublasGemmStridedBatchedEx), plus the bias fill that lets the
 * GEMM add the bias with beta = 1.
 *
 * Row-major tensors are handed to column-major cuBLAS by computing y^T = op(b)^T op(a)^T: the
 * operands swap places and no data moves. */
#include <limits.h>

#include "matmul.cuh"

// ----------------------------------------------------------------------------
// kernels

template <typename T, typename I>
__global__ void fill_bias_kernel(T *y, const T *bias, I n, I channels, I inner)
{
    for (I i = grid_first<I>(); i < n; i += grid_step<I>())
        y[i] = bias[(i / inner) % channels];
}

// ----------------------------------------------------------------------------
// launchers

static cudaDataType_t cuda_data_type(setok_dtype dtype)
{
    switch (dtype) {
    case SETOK_F16:
        return CUDA_R_16F;
    case SETOK_BF16:
        return CUDA_R_16BF;
    default:
        return CUDA_R_32F;
    }
}

setok_status cuda_fill_bias(setok_cuda_state *st, setok_dtype dtype, void *y, const void *bias,
                            int64_t n, int64_t channels, int64_t inner, setok_error *err)
{
    if (n <= 0)
        return SETOK_OK;
    if (!bias) {
        CUDA_CHECK(cudaMemsetAsync(y, 0, (size_t)n * setok_dtype_size(dtype), st->stream));
        return SETOK_OK;
    }
    CUDA_FLOAT_SWITCH(dtype, T,
        CUDA_INDEX_SWITCH(n <= INT32_MAX, I,
            fill_bias_kernel<T, I><<<cuda_blocks(n, 256), 256, 0, st->stream>>>(
                (T *)y, (const T *)bias, (I)n, (I)channels, (I)inner)));
    CUDA_CHECK_LAUNCH("fill_bias_kernel");
    return SETOK_OK;
}

setok_status cuda_gemm(setok_cuda_state *st, setok_dtype dtype, setok_dtype ydtype, bool ta,
                       bool tb, int64_t m, int64_t n, int64_t k, float alpha, const void *a,
                       int64_t lda, int64_t stride_a, const void *b, int64_t ldb, int64_t stride_b,
                       float beta, void *y, int64_t ldy, int64_t stride_y, int64_t batch,
                       setok_error *err)
{
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
        ldy > INT_MAX || batch > INT_MAX)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED,
                          "cuda: gemm of %lld x %lld x %lld (batch %lld) exceeds cuBLAS's int "
                          "sizes", (long long)m, (long long)n, (long long)k, (long long)batch);
    cudaDataType_t dt = cuda_data_type(dtype), yt = cuda_data_type(ydtype);
    // Column-major view: y^T [N, M] = op(b)^T [N, K] @ op(a)^T [K, M].
    CUBLAS_CHECK(st->blas->gemm_strided_batched_ex(
        st->cublas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
        (int)k, &alpha, b, dt, (int)ldb, stride_b, a, dt, (int)lda, stride_a, &beta, y, yt,
        (int)ldy, stride_y, (int)batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// op

// a: [B?, M, K] ([B?, K, M] if trans_a), b: [B?, K, N] ([B?, N, K] if trans_b; 2-D b is shared),
// bias: [N]? -> y: [B?, M, N] = alpha * op(a) @ op(b) + bias
setok_status setok_cuda_matmul(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *a = d->src[0], *b = d->src[1], *bias = d->src[2];
    setok_tensor *y = d->dst;
    bool ta = d->p.matmul.trans_a, tb = d->p.matmul.trans_b;
    int64_t m = y->shape[y->ndim - 2], n = y->shape[y->ndim - 1];
    int64_t k = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    int64_t batch = a->ndim == 3 ? a->shape[0] : 1;
    if (m == 0 || n == 0 || batch == 0)
        return SETOK_OK;

    if (bias || k == 0) {
        s = cuda_fill_bias(st, y->dtype, y->data, bias ? bias->data : NULL, batch * m * n, n, 1,
                           err);
        if (s != SETOK_OK || k == 0)
            return s; // an empty inner dimension leaves y = bias
    }
    int64_t stride_b = b->ndim == 3 ? k * n : 0;
    return cuda_gemm(st, y->dtype, y->dtype, ta, tb, m, n, k, d->p.matmul.alpha, a->data,
                     ta ? m : k, m * k, b->data, tb ? k : n, stride_b, bias ? 1.0f : 0.0f,
                     y->data, n, m * n, batch, err);
}
