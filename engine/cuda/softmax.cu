/* softmax.cu — SOFTMAX over the last axis: y = softmax(x * scale + mask), causal keeping key j
 * for query i when j <= i + Tk - Tq. A warp or a block per row, three passes over the row (max,
 * sum, write) so any Tk works. As in the reference, a row whose maximum is not finite (nothing
 * visible) or whose sum is not positive comes out as zeros. */
#include "softmax.cuh"

// ----------------------------------------------------------------------------
// kernels

// x: [rows, Tk] (rows = [..., Tq] flattened), mask offsets from md (broadcast onto x).
template <typename T>
__global__ void softmax_kernel(T *y, const T *x, const T *mask, cuda_dims4 md, int64_t rows,
                               int64_t tq, int64_t tk, float scale, bool causal)
{
    __shared__ float shm[32];
    int64_t row = (int64_t)blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= rows)
        return; // only with a warp per row, where no barrier follows
    const T *xr = x + row * tk;
    T *yr = y + row * tk;
    const T *mr = mask ? mask + dims_offset(md, row * tk) : NULL;
    int64_t ms = md.st[3];
    int64_t last = causal ? row % tq + tk - tq : tk - 1; // last visible key

#define SOFTMAX_VALUE(j)                                                                       \
    ((j) > last ? -INFINITY : fmaf(to_f32(xr[j]), scale, mr ? to_f32(mr[(j) * ms]) : 0.0f))

    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < tk; j += blockDim.x)
        mx = fmaxf(mx, SOFTMAX_VALUE(j));
    mx = row_reduce(mx, shm, true);
    if (!isfinite(mx)) {
        for (int64_t j = threadIdx.x; j < tk; j += blockDim.x)
            yr[j] = from_f32<T>(0.0f);
        return; // the whole row group leaves together
    }
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < tk; j += blockDim.x)
        sum += expf(SOFTMAX_VALUE(j) - mx);
    sum = row_reduce(sum, shm, false);
    for (int64_t j = threadIdx.x; j < tk; j += blockDim.x)
        yr[j] = from_f32<T>(sum > 0.0f ? expf(SOFTMAX_VALUE(j) - mx) / sum : 0.0f);
#undef SOFTMAX_VALUE
}

// ----------------------------------------------------------------------------
// op

// x: [..., Tq, Tk], mask: broadcastable to x? -> y: [..., Tq, Tk]
setok_status setok_cuda_softmax(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0], *mask = d->src[1];
    int64_t tk = x->shape[x->ndim - 1], rows = cuda_rows(x, tk);
    int64_t tq = x->ndim >= 2 ? x->shape[x->ndim - 2] : 1;
    if (rows == 0)
        return SETOK_OK;
    if (rows > INT32_MAX)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: softmax: %lld rows is too many",
                          (long long)rows);
    cuda_dims4 md = mask ? cuda_broadcast_dims(x, mask) : cuda_dims_of(x);
    dim3 grid, block;
    cuda_row_launch(rows, tk, &grid, &block);
    CUDA_FLOAT_SWITCH(x->dtype, T,
        softmax_kernel<T><<<grid, block, 0, st->stream>>>(
            (T *)d->dst->data, (const T *)x->data, mask ? (const T *)mask->data : NULL, md, rows,
            tq, tk, d->p.softmax.scale, d->p.softmax.causal));
    CUDA_CHECK_LAUNCH("softmax_kernel");
    return SETOK_OK;
}
