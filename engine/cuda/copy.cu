/* copy.cu — COPY between any two views (up to 4 dims, arbitrary strides) of one shape, with
 * conversion between float dtypes or I32 to I32: how permute, slice, concat, contiguous and
 * dtype casts run. Contiguous same-dtype copies are a plain cudaMemcpyAsync, contiguous
 * conversions the map kernel (16-byte accesses); strided copies index in 32 bits when both
 * views allow. */
#include "copy.cuh"
#include "elementwise.cuh"

// ----------------------------------------------------------------------------
// kernels

template <typename Ts, typename Td> struct convert {
    static __device__ __forceinline__ Td run(Ts v) { return from_f32<Td>(to_f32(v)); }
};
template <typename T> struct convert<T, T> {
    static __device__ __forceinline__ T run(T v) { return v; }
};

// x, y: views of one 4-dim (left-padded) shape.
template <typename Ts, typename Td, typename I>
__global__ void copy_kernel(Td *y, const Ts *x, cuda_dims<I> xd, cuda_dims<I> yd, I n)
{
    for (I i = grid_first<I>(); i < n; i += grid_step<I>())
        y[dims_offset(yd, i)] = convert<Ts, Td>::run(x[dims_offset(xd, i)]);
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
    if (contig) { // float conversions (I32 to I32 was the memcpy)
        CUDA_FLOAT_SWITCH(x->dtype, Ts,
            CUDA_FLOAT_SWITCH(y->dtype, Td,
                s = cuda_map(st, (Td *)y->data, (const Ts *)x->data, (const Ts *)NULL, n,
                             map_convert(), err)));
        return s;
    }
    cuda_dims4 xd = cuda_dims_of(x), yd = cuda_dims_of(y);
    bool fits = cuda_dims_fit32(xd) && cuda_dims_fit32(yd);
    unsigned grid = cuda_blocks(n, 256);

#define COPY_LAUNCH(Ts, Td)                                                                    \
    CUDA_INDEX_SWITCH(fits, I,                                                                 \
        copy_kernel<Ts, Td, I><<<grid, 256, 0, st->stream>>>(                                  \
            (Td *)y->data, (const Ts *)x->data, cuda_dims_as<I>(xd), cuda_dims_as<I>(yd), (I)n))
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
