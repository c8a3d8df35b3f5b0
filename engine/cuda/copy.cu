/* copy.cu — COPY between any two views (up to 4 dims, arbitrary strides) of one shape, with
 * conversion between float dtypes or I32 to I32: how permute, slice, concat, contiguous and
 * dtype casts run. Contiguous same-dtype copies are a plain cudaMemcpyAsync. */
#include "copy.cuh"

// ----------------------------------------------------------------------------
// kernels

template <typename Ts, typename Td> struct convert {
    static __device__ __forceinline__ Td run(Ts v) { return from_f32<Td>(to_f32(v)); }
};
template <typename T> struct convert<T, T> {
    static __device__ __forceinline__ T run(T v) { return v; }
};

// x, y: views of one 4-dim (left-padded) shape; CONTIG: both contiguous.
template <typename Ts, typename Td, bool CONTIG>
__global__ void copy_kernel(Td *y, const Ts *x, cuda_dims4 xd, cuda_dims4 yd, int64_t n)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        int64_t xo = CONTIG ? i : dims_offset(xd, i), yo = CONTIG ? i : dims_offset(yd, i);
        y[yo] = convert<Ts, Td>::run(x[xo]);
    }
}

// ----------------------------------------------------------------------------
// op

// src: view [...] -> dst: view of the same shape
setok_status setok_cuda_copy(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0];
    setok_tensor *y = d->dst;
    int64_t n = setok_tensor_numel(x);
    if (n == 0)
        return SETOK_OK;
    bool contig = setok_tensor_is_contiguous(x) && setok_tensor_is_contiguous(y);
    if (contig && x->dtype == y->dtype) {
        CUDA_CHECK(cudaMemcpyAsync(y->data, x->data, setok_tensor_nbytes(x),
                                   cudaMemcpyDeviceToDevice, st->stream));
        return SETOK_OK;
    }
    cuda_dims4 xd = cuda_dims_of(x), yd = cuda_dims_of(y);
    unsigned grid = cuda_blocks(n, 256);

#define COPY_LAUNCH(Ts, Td)                                                                    \
    (contig ? copy_kernel<Ts, Td, true><<<grid, 256, 0, st->stream>>>(                         \
                  (Td *)y->data, (const Ts *)x->data, xd, yd, n)                               \
            : copy_kernel<Ts, Td, false><<<grid, 256, 0, st->stream>>>(                        \
                  (Td *)y->data, (const Ts *)x->data, xd, yd, n))
    if (x->dtype == SETOK_I32 && y->dtype == SETOK_I32) {
        COPY_LAUNCH(int32_t, int32_t);
    } else {
        CUDA_FLOAT_SWITCH(x->dtype, Ts,
            CUDA_FLOAT_SWITCH(y->dtype, Td,
                COPY_LAUNCH(Ts, Td)));
    }
#undef COPY_LAUNCH
    CUDA_CHECK_LAUNCH("copy_kernel");
    return SETOK_OK;
}
