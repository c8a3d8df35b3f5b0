/* gather.cu — ops that read scattered elements: GET_ROWS (embedding lookup, any float table to
 * any float output; an out-of-range id gives a zero row, where host backends report an error),
 * RESIZE_BICUBIC (PyTorch bicubic, A = -0.75, no antialias, f32 coordinates as PyTorch computes
 * them) and UPSAMPLE_NEAREST (integer factor). One thread per output element; get_rows and
 * upsample index in 32 bits when the sizes allow. */
#include "gather.cuh"

// ----------------------------------------------------------------------------
// kernels

// table: [V, D], ids: [n] -> y: [n, D]; I must hold V * D and n.
template <typename Ttab, typename Ty, typename I>
__global__ void get_rows_kernel(Ty *y, const Ttab *table, const int32_t *ids, I v, I dim, I n)
{
    for (I i = grid_first<I>(); i < n; i += grid_step<I>()) {
        I r = i / dim, c = i - r * dim;
        int32_t id = ids[r];
        y[i] = from_f32<Ty>(id >= 0 && (I)id < v ? to_f32(table[(I)id * dim + c]) : 0.0f);
    }
}

__device__ __forceinline__ float cubic_near(float x, float a) // |x| <= 1
{
    return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
}

__device__ __forceinline__ float cubic_far(float x, float a) // 1 < |x| < 2
{
    return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
}

// Source coordinate of output index o (PyTorch area_pixel_compute_source_index, cubic: no clamp).
__device__ __forceinline__ float resize_source(int64_t o, float scale, bool align_corners)
{
    return align_corners ? scale * (float)o : scale * ((float)o + 0.5f) - 0.5f;
}

__device__ __forceinline__ void cubic_coeffs(float c[4], float t)
{
    const float a = -0.75f;
    c[0] = cubic_far(t + 1.0f, a);
    c[1] = cubic_near(t, a);
    c[2] = cubic_near(1.0f - t, a);
    c[3] = cubic_far(2.0f - t, a);
}

// x: [P, H, W] -> y: [P, OH, OW] (P = N * C planes)
template <typename T>
__global__ void resize_bicubic_kernel(T *y, const T *x, int64_t h, int64_t w, int64_t oh,
                                      int64_t ow, float scale_h, float scale_w, bool align_corners,
                                      int64_t n)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        int64_t ox = i % ow, oy = (i / ow) % oh, plane = i / (ow * oh);
        const T *xp = x + plane * h * w;
        float sy = resize_source(oy, scale_h, align_corners);
        float sx = resize_source(ox, scale_w, align_corners);
        float fy = floorf(sy), fx = floorf(sx);
        float cy[4], cx[4];
        cubic_coeffs(cy, sy - fy);
        cubic_coeffs(cx, sx - fx);
        int64_t y0 = (int64_t)fy - 1, x0 = (int64_t)fx - 1;
        float s = 0.0f;
        for (int a = 0; a < 4; a++) {
            int64_t yy = min(max(y0 + a, (int64_t)0), h - 1);
            float r = 0.0f;
            for (int b = 0; b < 4; b++) {
                int64_t xx = min(max(x0 + b, (int64_t)0), w - 1);
                r += cx[b] * to_f32(xp[yy * w + xx]);
            }
            s += cy[a] * r;
        }
        y[i] = from_f32<T>(s);
    }
}

// x: [P, H, W] -> y: [P, H f, W f]; I must hold y's numel n.
template <typename T, typename I>
__global__ void upsample_nearest_kernel(T *y, const T *x, I h, I w, I f, I n)
{
    I ow = w * f, oh = h * f;
    for (I i = grid_first<I>(); i < n; i += grid_step<I>()) {
        I row = i / ow, ox = i - row * ow; // row = plane * oh + oy
        I plane = row / oh, oy = row - plane * oh;
        y[i] = x[(plane * h + oy / f) * w + ox / f];
    }
}

// ----------------------------------------------------------------------------
// ops

// table: [V, D], ids: I32 [...] -> y: [..., D] (table and y may differ in float dtype)
setok_status setok_cuda_get_rows(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *table = d->src[0], *ids = d->src[1];
    setok_tensor *y = d->dst;
    int64_t v = table->shape[0], dim = table->shape[1], n = setok_tensor_numel(y);
    if (n == 0)
        return SETOK_OK;
    unsigned grid = cuda_blocks(n, 256);
    bool fits = n <= INT32_MAX && v * dim <= INT32_MAX;
    CUDA_FLOAT_SWITCH(table->dtype, Ttab,
        CUDA_FLOAT_SWITCH(y->dtype, Ty,
            CUDA_INDEX_SWITCH(fits, I,
                get_rows_kernel<Ttab, Ty, I><<<grid, 256, 0, st->stream>>>(
                    (Ty *)y->data, (const Ttab *)table->data, (const int32_t *)ids->data, (I)v,
                    (I)dim, (I)n))));
    CUDA_CHECK_LAUNCH("get_rows_kernel");
    return SETOK_OK;
}

// x: [N, C, H, W] -> y: [N, C, OH, OW]
setok_status setok_cuda_resize_bicubic(setok_backend *backend, const setok_op_desc *d,
                                       setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0];
    setok_tensor *y = d->dst;
    int64_t h = x->shape[2], w = x->shape[3], oh = y->shape[2], ow = y->shape[3];
    int64_t n = setok_tensor_numel(y);
    if (n == 0)
        return SETOK_OK;
    bool ac = d->p.resize.align_corners;
    // PyTorch area_pixel_compute_scale, in f32
    float scale_h = ac ? (oh > 1 ? (float)(h - 1) / (float)(oh - 1) : 0.0f) : (float)h / (float)oh;
    float scale_w = ac ? (ow > 1 ? (float)(w - 1) / (float)(ow - 1) : 0.0f) : (float)w / (float)ow;
    CUDA_FLOAT_SWITCH(x->dtype, T,
        resize_bicubic_kernel<T><<<cuda_blocks(n, 256), 256, 0, st->stream>>>(
            (T *)y->data, (const T *)x->data, h, w, oh, ow, scale_h, scale_w, ac, n));
    CUDA_CHECK_LAUNCH("resize_bicubic_kernel");
    return SETOK_OK;
}

// x: [N, C, H, W] -> y: [N, C, H f, W f]
setok_status setok_cuda_upsample_nearest(setok_backend *backend, const setok_op_desc *d,
                                         setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0];
    int64_t n = setok_tensor_numel(d->dst);
    if (n == 0)
        return SETOK_OK;
    CUDA_FLOAT_SWITCH(x->dtype, T,
        CUDA_INDEX_SWITCH(n <= INT32_MAX, I,
            upsample_nearest_kernel<T, I><<<cuda_blocks(n, 256), 256, 0, st->stream>>>(
                (T *)d->dst->data, (const T *)x->data, (I)x->shape[2], (I)x->shape[3],
                (I)d->p.upsample.factor, (I)n)));
    CUDA_CHECK_LAUNCH("upsample_nearest_kernel");
    return SETOK_OK;
}
