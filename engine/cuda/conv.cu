/* conv.cu — CONV2D as im2col + cuBLAS GEMM (1x1 stride-1 convolutions skip the im2col), and
 * CONV_TRANSPOSE2D as a direct gather kernel.
 *
 * The im2col buffer is the backend's scratch, capped at CONV_SCRATCH_BYTES: several images go
 * through one batched GEMM when they fit, otherwise one image is cut into column chunks. The
 * bias is written into y first and the GEMM adds onto it (beta = 1). */
#include <type_traits>

#include "conv.cuh"
#include "matmul.cuh"

#define CONV_SCRATCH_BYTES ((size_t)256 << 20)

typedef struct conv_geom {
    int64_t c, h, w;      // input channels and size
    int64_t kh, kw;       // kernel
    int64_t oh, ow;       // output size
    int sh, sw, ph, pw;   // stride, padding
} conv_geom;

// ----------------------------------------------------------------------------
// kernels

// x: [nb, C, H, W] -> col: [nb, C * KH * KW, pc], columns p0 .. p0 + pc of the OH * OW outputs.
// I (signed: padding makes input coordinates negative) must hold n and x's offsets.
template <typename T, typename I>
__global__ void im2col_kernel(T *col, const T *x, conv_geom g, I p0, I pc, I n)
{
    I c = (I)g.c, h = (I)g.h, w = (I)g.w, kh = (I)g.kh, kw = (I)g.kw, ow = (I)g.ow;
    I kdim = c * kh * kw;
    for (I i = grid_first<I>(); i < n; i += grid_step<I>()) {
        I r = i / pc, p = i - r * pc;
        I img = r / kdim, kk = r - img * kdim;
        I ci = kk / (kw * kh), kyx = kk - ci * kw * kh, ky = kyx / kw, kx = kyx - ky * kw;
        I o = p0 + p, oy = o / ow, ox = o - oy * ow;
        I iy = oy * g.sh - g.ph + ky, ix = ox * g.sw - g.pw + kx;
        bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
        col[i] = inside ? x[((img * c + ci) * h + iy) * w + ix] : from_f32<T>(0.0f);
    }
}

// x: [N, C, H, W], w: [C, OC, KH, KW], bias: [OC]? -> y: [N, OC, OH, OW]; output (oy, ox)
// gathers input (iy, ix) through tap ky = oy - iy * stride_h (likewise x).
template <typename T>
__global__ void conv_transpose2d_kernel(T *y, const T *x, const T *w, const T *bias, conv_geom g,
                                        int64_t oc, int64_t n)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh;
        int64_t o = (i / (g.ow * g.oh)) % oc, img = i / (g.ow * g.oh * oc);
        float s = bias ? to_f32(bias[o]) : 0.0f;
        for (int64_t ci = 0; ci < g.c; ci++) {
            const T *xc = x + (img * g.c + ci) * g.h * g.w;
            const T *wc = w + (ci * oc + o) * g.kh * g.kw;
            for (int64_t ky = oy % g.sh; ky < g.kh && ky <= oy; ky += g.sh) {
                int64_t iy = (oy - ky) / g.sh;
                if (iy >= g.h)
                    continue;
                for (int64_t kx = ox % g.sw; kx < g.kw && kx <= ox; kx += g.sw) {
                    int64_t ix = (ox - kx) / g.sw;
                    if (ix < g.w)
                        s = fmaf(to_f32(xc[iy * g.w + ix]), to_f32(wc[ky * g.kw + kx]), s);
                }
            }
        }
        y[i] = from_f32<T>(s);
    }
}

// ----------------------------------------------------------------------------
// launchers

static setok_status im2col(setok_cuda_state *st, setok_dtype dtype, void *col, const void *x,
                           const conv_geom &g, int64_t nb, int64_t p0, int64_t pc,
                           setok_error *err)
{
    int64_t n = nb * g.c * g.kh * g.kw * pc;
    bool fits = n <= INT32_MAX && nb * g.c * g.h * g.w <= INT32_MAX && p0 + pc <= INT32_MAX;
    CUDA_FLOAT_SWITCH(dtype, T,
        CUDA_INDEX_SWITCH(fits, I,
            im2col_kernel<T, typename std::make_signed<I>::type>
                <<<cuda_blocks(n, 256), 256, 0, st->stream>>>(
                    (T *)col, (const T *)x, g, p0, pc, n)));
    CUDA_CHECK_LAUNCH("im2col_kernel");
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// ops

// x: [N, C, H, W], w: [OC, C, KH, KW], bias: [OC]? -> y: [N, OC, OH, OW]
setok_status setok_cuda_conv2d(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0], *w = d->src[1], *bias = d->src[2];
    setok_tensor *y = d->dst;
    conv_geom g = {x->shape[1], x->shape[2], x->shape[3], w->shape[2], w->shape[3],
                   y->shape[2], y->shape[3], d->p.conv.stride_h, d->p.conv.stride_w,
                   d->p.conv.pad_h, d->p.conv.pad_w};
    int64_t nimg = x->shape[0], oc = w->shape[0];
    int64_t kdim = g.c * g.kh * g.kw, npix = g.oh * g.ow;
    setok_dtype dt = y->dtype;
    size_t esize = setok_dtype_size(dt);
    if (setok_tensor_numel(y) == 0)
        return SETOK_OK;
    if (bias || kdim == 0) {
        s = cuda_fill_bias(st, dt, y->data, bias ? bias->data : NULL, nimg * oc * npix, oc, npix,
                           err);
        if (s != SETOK_OK || kdim == 0)
            return s;
    }
    float beta = bias ? 1.0f : 0.0f;
    char *yb = (char *)y->data;
    const char *xb = (const char *)x->data;

    // 1x1, stride 1, no padding: x [C, H * W] already is the column matrix.
    if (g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0)
        return cuda_gemm(st, dt, dt, false, false, oc, npix, kdim, 1.0f, w->data, kdim, 0,
                         x->data, npix, kdim * npix, beta, y->data, npix, oc * npix, nimg, err);

    int64_t per_image = kdim * npix;
    int64_t limit = (int64_t)(CONV_SCRATCH_BYTES / esize);
    if (per_image <= limit) {
        int64_t nb = limit / per_image < nimg ? limit / per_image : nimg;
        void *col;
        s = setok_cuda_scratch(backend, (size_t)(nb * per_image) * esize, &col, err);
        for (int64_t n0 = 0; s == SETOK_OK && n0 < nimg; n0 += nb) {
            int64_t cnt = nimg - n0 < nb ? nimg - n0 : nb;
            s = im2col(st, dt, col, xb + (size_t)(n0 * g.c * g.h * g.w) * esize, g, cnt, 0, npix,
                       err);
            if (s == SETOK_OK)
                s = cuda_gemm(st, dt, dt, false, false, oc, npix, kdim, 1.0f, w->data, kdim, 0,
                              col, npix, per_image, beta, yb + (size_t)(n0 * oc * npix) * esize,
                              npix, oc * npix, cnt, err);
        }
        return s;
    }

    // One image at a time, pc output columns at a time.
    int64_t pc = limit / kdim > 0 ? limit / kdim : 1;
    void *col;
    s = setok_cuda_scratch(backend, (size_t)(kdim * pc) * esize, &col, err);
    for (int64_t n0 = 0; s == SETOK_OK && n0 < nimg; n0++)
        for (int64_t p0 = 0; s == SETOK_OK && p0 < npix; p0 += pc) {
            int64_t cnt = npix - p0 < pc ? npix - p0 : pc;
            s = im2col(st, dt, col, xb + (size_t)(n0 * g.c * g.h * g.w) * esize, g, 1, p0, cnt,
                       err);
            if (s == SETOK_OK)
                s = cuda_gemm(st, dt, dt, false, false, oc, cnt, kdim, 1.0f, w->data, kdim, 0,
                              col, cnt, 0, beta, yb + (size_t)((n0 * oc) * npix + p0) * esize,
                              npix, 0, 1, err);
        }
    return s;
}

// x: [N, C, H, W], w: [C, OC, KH, KW], bias: [OC]? -> y: [N, OC, (H-1) sh + KH, (W-1) sw + KW]
setok_status setok_cuda_conv_transpose2d(setok_backend *backend, const setok_op_desc *d,
                                         setok_error *err)
{
    setok_cuda_state *st = NULL;
    setok_status s = cuda_enter(backend, &st, err);
    if (s != SETOK_OK)
        return s;
    const setok_tensor *x = d->src[0], *w = d->src[1], *bias = d->src[2];
    setok_tensor *y = d->dst;
    conv_geom g = {x->shape[1], x->shape[2], x->shape[3], w->shape[2], w->shape[3],
                   y->shape[2], y->shape[3], d->p.conv.stride_h, d->p.conv.stride_w, 0, 0};
    int64_t oc = w->shape[1], n = setok_tensor_numel(y);
    if (n == 0)
        return SETOK_OK;
    CUDA_FLOAT_SWITCH(y->dtype, T,
        conv_transpose2d_kernel<T><<<cuda_blocks(n, 256), 256, 0, st->stream>>>(
            (T *)y->data, (const T *)x->data, (const T *)w->data,
            bias ? (const T *)bias->data : NULL, g, oc, n));
    CUDA_CHECK_LAUNCH("conv_transpose2d_kernel");
    return SETOK_OK;
}
