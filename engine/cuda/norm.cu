/* norm.cu — LAYERNORM and RMSNORM over the last axis (a warp or a block per row, two passes:
 * mean, then the biased variance of x - mean, as the reference does) and GROUPNORM (per-group
 * sums in f64 from many blocks, then an elementwise affine pass, indexed in 32 bits when the
 * tensor allows). */
#include "norm.cuh"

// ----------------------------------------------------------------------------
// kernels

// x: [rows, C] -> y; RMS skips the mean. weight / bias may be NULL.
template <typename T, bool RMS>
__global__ void norm_kernel(T *y, const T *x, const T *w, const T *b, int64_t rows, int64_t c,
                            float eps)
{
    __shared__ float shm[32];
    int64_t row = (int64_t)blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= rows)
        return; // only with a warp per row, where no barrier follows
    const T *xr = x + row * c;
    T *yr = y + row * c;

    float mean = 0.0f;
    if (!RMS) {
        float sum = 0.0f;
        for (int64_t i = threadIdx.x; i < c; i += blockDim.x)
            sum += to_f32(xr[i]);
        mean = row_reduce(sum, shm, false) / (float)c;
    }
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
        float t = to_f32(xr[i]) - mean;
        ss += t * t;
    }
    float inv = 1.0f / sqrtf(row_reduce(ss, shm, false) / (float)c + eps);
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
        float v = (to_f32(xr[i]) - mean) * inv;
        if (w)
            v *= to_f32(w[i]);
        if (b)
            v += to_f32(b[i]);
        yr[i] = from_f32<T>(v);
    }
}

__device__ __forceinline__ double warp_sum_f64(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Adds sum(x) and sum(x^2) over one slice of group blockIdx.x (len contiguous elements) into
// stats[2 g], stats[2 g + 1]. blockIdx.y picks the slice of `chunk` elements.
template <typename T>
__global__ void groupnorm_stats_kernel(double *stats, const T *x, int64_t len, int64_t chunk)
{
    __shared__ double shm[2][32];
    const T *xg = x + (int64_t)blockIdx.x * len;
    int64_t begin = (int64_t)blockIdx.y * chunk;
    int64_t end = begin + chunk < len ? begin + chunk : len;
    double s = 0.0, s2 = 0.0;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        double v = (double)to_f32(xg[i]);
        s += v;
        s2 += v * v;
    }
    s = warp_sum_f64(s);
    s2 = warp_sum_f64(s2);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) {
        shm[0][warp] = s;
        shm[1][warp] = s2;
    }
    __syncthreads();
    if (warp == 0) {
        int nwarps = blockDim.x / 32;
        s = warp_sum_f64(lane < nwarps ? shm[0][lane] : 0.0);
        s2 = warp_sum_f64(lane < nwarps ? shm[1][lane] : 0.0);
        if (lane == 0) {
            atomicAdd(&stats[2 * blockIdx.x], s);
            atomicAdd(&stats[2 * blockIdx.x + 1], s2);
        }
    }
}

// stats (f64 sums) -> mean_rstd[2 g] = mean, [2 g + 1] = 1 / sqrt(var + eps).
__global__ void groupnorm_finish_kernel(float *mean_rstd, const double *stats, int64_t groups,
                                        int64_t len, float eps)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += step) {
        double mean = stats[2 * g] / (double)len;
        double var = stats[2 * g + 1] / (double)len - mean * mean;
        var = var > 0.0 ? var : 0.0;
        mean_rstd[2 * g] = (float)mean;
        mean_rstd[2 * g + 1] = (float)(1.0 / sqrt(var + (double)eps));
    }
}

// x: [N, C, S] -> y, groups of len = (C / G) * S contiguous elements; I must hold n.
template <typename T, typename I>
__global__ void groupnorm_apply_kernel(T *y, const T *x, const T *w, const T *b,
                                       const float *mean_rstd, I n, I c, I s, I len)
{
    for (I i = grid_first<I>(); i < n; i += grid_step<I>()) {
        I g = i / len, ch = (i / s) % c;
        float v = (to_f32(x[i]) - mean_rstd[2 * g]) * mean_rstd[2 * g + 1];
        if (w)
            v *= to_f32(w[ch]);
        if (b)
            v += to_f32(b[ch]);
        y[i] = from_f32<T>(v);
    }
}

// ----------------------------------------------------------------------------
// ops

// x: [..., C], weight: [C]?, bias: [C]? (LAYERNORM only) -> y: [..., C]
setok_status setok_cuda_norm(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0], *w = d->src[1], *b = d->src[2];
    int64_t c = x->shape[x->ndim - 1], rows = cuda_rows(x, c);
    if (rows == 0)
        return SETOK_OK;
    if (rows > INT32_MAX)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: %s: %lld rows is too many",
                          setok_op_name(d->op), (long long)rows);
    dim3 grid, block;
    cuda_row_launch(rows, c, &grid, &block);
    bool rms = d->op == SETOK_OP_RMSNORM;
    float eps = d->p.norm.eps;

#define NORM_LAUNCH(T, RMS)                                                                    \
    norm_kernel<T, RMS><<<grid, block, 0, st->stream>>>(                                       \
        (T *)d->dst->data, (const T *)x->data, w ? (const T *)w->data : NULL,                  \
        (!RMS && b) ? (const T *)b->data : NULL, rows, c, eps)
    CUDA_FLOAT_SWITCH(x->dtype, T,
        if (rms)
            NORM_LAUNCH(T, true);
        else
            NORM_LAUNCH(T, false));
#undef NORM_LAUNCH
    CUDA_CHECK_LAUNCH("norm_kernel");
    return SETOK_OK;
}

// x: [N, C, *] (3 or 4 dims), weight: [C]?, bias: [C]? -> y: [N, C, *], statistics per
// (n, group) over C / groups channels and all spatial positions
setok_status setok_cuda_groupnorm(setok_backend *backend, const setok_op_desc *d,
                                  setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0], *w = d->src[1], *b = d->src[2];
    int64_t n = setok_tensor_numel(x);
    if (n == 0)
        return SETOK_OK;
    int64_t c = x->shape[1], groups = d->p.groupnorm.groups;
    int64_t spatial = n / (x->shape[0] * c), ngroups = x->shape[0] * groups;
    int64_t len = (c / groups) * spatial;
    if (ngroups > INT32_MAX)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "cuda: groupnorm: too many groups");

    // scratch: f64 sums [ngroups, 2], then f32 mean / rstd [ngroups, 2]
    void *scratch;
    s = setok_cuda_scratch(backend, (size_t)ngroups * 2 * (sizeof(double) + sizeof(float)),
                           &scratch, err);
    if (s != SETOK_OK)
        return s;
    double *stats = (double *)scratch;
    float *mean_rstd = (float *)(stats + 2 * ngroups);
    CUDA_CHECK(cudaMemsetAsync(stats, 0, (size_t)ngroups * 2 * sizeof(double), st->stream));

    const int threads = 256;
    int64_t chunk = 16 * threads; // elements per block: enough blocks to fill the GPU
    int64_t slices = (len + chunk - 1) / chunk;
    if (slices > 65535) {
        slices = 65535;
        chunk = (len + slices - 1) / slices;
    }
    dim3 grid((unsigned)ngroups, (unsigned)slices);
    CUDA_FLOAT_SWITCH(x->dtype, T,
        groupnorm_stats_kernel<T><<<grid, threads, 0, st->stream>>>(
            stats, (const T *)x->data, len, chunk));
    CUDA_CHECK_LAUNCH("groupnorm_stats_kernel");
    groupnorm_finish_kernel<<<cuda_blocks(ngroups, 128), 128, 0, st->stream>>>(
        mean_rstd, stats, ngroups, len, d->p.groupnorm.eps);
    CUDA_CHECK_LAUNCH("groupnorm_finish_kernel");
    CUDA_FLOAT_SWITCH(x->dtype, T,
        CUDA_INDEX_SWITCH(n <= INT32_MAX, I,
            groupnorm_apply_kernel<T, I><<<cuda_blocks(n, 256), 256, 0, st->stream>>>(
                (T *)d->dst->data, (const T *)x->data, w ? (const T *)w->data : NULL,
                b ? (const T *)b->data : NULL, mean_rstd, (I)n, (I)c, (I)spatial, (I)len)));
    CUDA_CHECK_LAUNCH("groupnorm_apply_kernel");
    return SETOK_OK;
}
