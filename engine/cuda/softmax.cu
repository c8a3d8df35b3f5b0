/* softmax.cu — SOFTMAX over the last axis: y = softmax(x * scale + mask), causal keeping key j
 * for query i when j <= i + Tk - Tq. A warp or a block per row, three passes over the row (max,
 * sum, write) so any Tk works. As in the reference, a row whose maximum is not finite (nothing
 * visible) or whose sum is not positive comes out as zeros. Attention's cuBLAS path runs the
 * same kernel on f32 scores, a slice of rows at a time. */
#include "softmax.cuh"

// ----------------------------------------------------------------------------
// kernels

// x: [rows, Tk], rows row0 .. row0 + rows of a [..., Tq, Tk] problem (the mask's offsets md and
// the causal rule see those global rows). x is f32 or y's dtype; mask has y's dtype.
template <typename Tx, typename T>
__global__ void softmax_kernel(T *y, const Tx *x, const T *mask, cuda_dims4 md, int64_t row0,
                               int64_t rows, int64_t tq, int64_t tk, float scale, bool causal)
{
    __shared__ float shm[32];
    int64_t row = (int64_t)blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= rows)
        return; // only with a warp per row, where no barrier follows
    const Tx *xr = x + row * tk;
    T *yr = y + row * tk;
    const T *mr = mask ? mask + dims_offset(md, (row0 + row) * tk) : NULL;
    int64_t ms = md.st[3];
    int64_t last = causal ? (row0 + row) % tq + tk - tq : tk - 1; // last visible key

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
// launcher

setok_status cuda_softmax_rows(setok_cuda_state *st, setok_dtype xdtype, const void *x,
                               setok_dtype dtype, void *y, const void *mask,
                               const cuda_dims4 &md, int64_t row0, int64_t rows, int64_t tq,
                               int64_t tk, float scale, bool causal, setok_error *err)
{
    if (rows == 0)
        return SETOK_OK;
    if (rows > INT32_MAX)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: softmax: %lld rows is too many",
                          (long long)rows);
    dim3 grid, block;
    cuda_row_launch(rows, tk, &grid, &block);
#define SOFTMAX_LAUNCH(Tx)                                                                     \
    softmax_kernel<Tx, T><<<grid, block, 0, st->stream>>>(                                     \
        (T *)y, (const Tx *)x, (const T *)mask, md, row0, rows, tq, tk, scale, causal)
    CUDA_FLOAT_SWITCH(dtype, T,
        if (xdtype == SETOK_F32)
            SOFTMAX_LAUNCH(float);
        else
            SOFTMAX_LAUNCH(T));
#undef SOFTMAX_LAUNCH
    CUDA_CHECK_LAUNCH("softmax_kernel");
    return SETOK_OK;
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
    cuda_dims4 md = mask ? cuda_broadcast_dims(x, mask) : cuda_dims_of(x);
    return cuda_softmax_rows(st, x->dtype, x->data, x->dtype, d->dst->data,
                             mask ? mask->data : NULL, md, 0, rows, tq, tk, d->p.softmax.scale,
                             d->p.softmax.causal, err);
}
