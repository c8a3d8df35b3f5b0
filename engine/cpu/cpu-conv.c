/* cpu-conv.c — CONV2D and CONV_TRANSPOSE2D on the CPU backend, as sgemm.
 *
 * CONV2D: im2col of a band of output rows into a scratch buffer, then
 * y[OC, band] = W [OC, C*KH*KW] @ cols (a 1x1, stride-1, unpadded conv
 * multiplies x directly). CONV_TRANSPOSE2D: cols [OC*KH*KW, band] = W^T @ x,
 * then a col2im scatter-add into y, threaded over output channels so no two
 * threads write one pixel. The scratch is malloc'ed once per call and capped
 * by banding; sgemm runs from this thread, im2col/col2im on the pool. f32 only. */
#include "setok-config.h"

#include <stdlib.h>
#include <string.h>

#include "cpu-impl.h"

// Scratch cap in floats (16 MiB); bands of rows shrink to fit.
enum { SCRATCH_FLOATS = 1 << 22, MIN_CHUNK_ELEMS = 16384 };

typedef struct conv_shape {
    int64_t c, h, w, oc, kh, kw, oh, ow;
    int64_t sh, sw, ph, pw;
} conv_shape;

static int64_t band_rows(int64_t per_row, int64_t total)
{
    int64_t rows = per_row > 0 ? SCRATCH_FLOATS / per_row : total;
    rows = rows < 1 ? 1 : rows;
    return rows < total ? rows : total;
}

// ----------------------------------------------------------------------------
// bias

typedef struct bias_planes {
    float *y;
    const float *bias;  // NULL: write zeros
    int64_t channels, plane;
} bias_planes;

static void set_bias_planes(void *ctx, int64_t begin, int64_t end)
{
    const bias_planes *t = ctx;
    for (int64_t p = begin; p < end; p++) {
        float *y = t->y + p * t->plane, v = t->bias != NULL ? t->bias[p % t->channels] : 0.0f;
        for (int64_t i = 0; i < t->plane; i++) y[i] = v;
    }
}

static void add_bias_planes(void *ctx, int64_t begin, int64_t end)
{
    const bias_planes *t = ctx;
    for (int64_t p = begin; p < end; p++) {
        float *y = t->y + p * t->plane, v = t->bias[p % t->channels];
        for (int64_t i = 0; i < t->plane; i++) y[i] += v;
    }
}

static int64_t min_planes(int64_t plane)
{
    return plane >= MIN_CHUNK_ELEMS ? 1 : MIN_CHUNK_ELEMS / (plane > 0 ? plane : 1);
}

// ----------------------------------------------------------------------------
// CONV2D

typedef struct im2col_job {
    float *cols;        // [C*KH*KW, rows * OW]
    const float *x;     // one image [C, H, W]
    conv_shape s;
    int64_t oh0, rows;  // the band of output rows
} im2col_job;

static void im2col_rows(void *ctx, int64_t begin, int64_t end)
{
    const im2col_job *t = ctx;
    const conv_shape *s = &t->s;
    int64_t ld = t->rows * s->ow;
    for (int64_t r = begin; r < end; r++) {
        int64_t kw = r % s->kw, kh = (r / s->kw) % s->kh, c = r / (s->kw * s->kh);
        const float *xc = t->x + c * s->h * s->w;
        float *col = t->cols + r * ld;
        for (int64_t o = 0; o < t->rows; o++) {
            int64_t ih = (t->oh0 + o) * s->sh - s->ph + kh;
            float *dst = col + o * s->ow;
            if (ih < 0 || ih >= s->h) {
                memset(dst, 0, (size_t)s->ow * sizeof(float));
                continue;
            }
            const float *xr = xc + ih * s->w;
            for (int64_t ow = 0; ow < s->ow; ow++) {
                int64_t iw = ow * s->sw - s->pw + kw;
                dst[ow] = iw >= 0 && iw < s->w ? xr[iw] : 0.0f;
            }
        }
    }
}

setok_status setok_cpu_conv2d(setok_backend *backend, const setok_op_desc *d, setok_error *err)
{
    // x [N, C, H, W], w [OC, C, KH, KW], bias [OC]? -> y [N, OC, OH, OW]
    const setok_tensor *x = d->src[0], *w = d->src[1], *bias = d->src[2];
    setok_tensor *y = d->dst;
    if (x->dtype != SETOK_F32 || w->dtype != SETOK_F32 || y->dtype != SETOK_F32 ||
        (bias != NULL && bias->dtype != SETOK_F32) || x->ndim != 4 || w->ndim != 4 ||
        y->ndim != 4) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    conv_shape s = {
        .c = x->shape[1], .h = x->shape[2], .w = x->shape[3], .oc = w->shape[0],
        .kh = w->shape[2], .kw = w->shape[3], .oh = y->shape[2], .ow = y->shape[3],
        .sh = d->p.conv.stride_h, .sw = d->p.conv.stride_w,
        .ph = d->p.conv.pad_h, .pw = d->p.conv.pad_w,
    };
    int64_t n = x->shape[0], ckk = s.c * s.kh * s.kw, plane = s.oh * s.ow;
    if (setok_tensor_numel(y) == 0) {
        return SETOK_OK;
    }
    const float *xp = x->data, *wp = w->data;
    float *yp = y->data;
    if (s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0) {
        // y_i [OC, H*W] = w [OC, C] x_i [C, H*W]
        for (int64_t i = 0; i < n; i++) {
            setok_cpu_sgemm(backend, false, false, s.oc, plane, s.c, 1.0f, wp, s.c,
                            xp + i * s.c * s.h * s.w, plane, 0.0f, yp + i * s.oc * plane, plane);
        }
    } else {
        int64_t rows = band_rows(ckk * s.ow, s.oh);
        float *cols = malloc((size_t)(ckk * rows * s.ow) * sizeof(float) + 1);
        if (cols == NULL) {
            return setok_fail(err, SETOK_ERR_NOMEM, "conv2d: cannot allocate the %lld x %lld "
                              "im2col buffer", (long long)ckk, (long long)(rows * s.ow));
        }
        for (int64_t i = 0; i < n; i++) {
            for (int64_t oh0 = 0; oh0 < s.oh; oh0 += rows) {
                int64_t band = s.oh - oh0 < rows ? s.oh - oh0 : rows;
                im2col_job t = {.cols = cols, .x = xp + i * s.c * s.h * s.w, .s = s,
                                .oh0 = oh0, .rows = band};
                setok_cpu_parallel_for(backend, ckk, min_planes(band * s.ow), im2col_rows, &t);
                // y_i[:, band] [OC, band*OW] (row stride OH*OW) = w [OC, CKK] cols
                setok_cpu_sgemm(backend, false, false, s.oc, band * s.ow, ckk, 1.0f, wp, ckk,
                                cols, band * s.ow, 0.0f, yp + i * s.oc * plane + oh0 * s.ow,
                                plane);
            }
        }
        free(cols);
    }
    if (bias != NULL) {
        bias_planes t = {.y = yp, .bias = bias->data, .channels = s.oc, .plane = plane};
        setok_cpu_parallel_for(backend, n * s.oc, min_planes(plane), add_bias_planes, &t);
    }
    return SETOK_OK;
}

// ----------------------------------------------------------------------------
// CONV_TRANSPOSE2D

typedef struct col2im_job {
    float *y;             // one image [OC, OH, OW]
    const float *cols;    // [OC*KH*KW, rows * W]
    conv_shape s;
    int64_t ih0, rows;    // the band of input rows
} col2im_job;

static void col2im_channels(void *ctx, int64_t begin, int64_t end)
{
    const col2im_job *t = ctx;
    const conv_shape *s = &t->s;
    int64_t ld = t->rows * s->w;
    for (int64_t oc = begin; oc < end; oc++) {
        float *yc = t->y + oc * s->oh * s->ow;
        for (int64_t kh = 0; kh < s->kh; kh++) {
            for (int64_t kw = 0; kw < s->kw; kw++) {
                const float *col = t->cols + ((oc * s->kh + kh) * s->kw + kw) * ld;
                for (int64_t r = 0; r < t->rows; r++) {
                    float *yr = yc + ((t->ih0 + r) * s->sh + kh) * s->ow + kw;
                    const float *cr = col + r * s->w;
                    for (int64_t iw = 0; iw < s->w; iw++) {
                        yr[iw * s->sw] += cr[iw];
                    }
                }
            }
        }
    }
}

setok_status setok_cpu_conv_transpose2d(setok_backend *backend, const setok_op_desc *d,
                                        setok_error *err)
{
    // x [N, C, H, W], w [C, OC, KH, KW], bias [OC]? -> y [N, OC, (H-1)*sh+KH, (W-1)*sw+KW]
    const setok_tensor *x = d->src[0], *w = d->src[1], *bias = d->src[2];
    setok_tensor *y = d->dst;
    if (x->dtype != SETOK_F32 || w->dtype != SETOK_F32 || y->dtype != SETOK_F32 ||
        (bias != NULL && bias->dtype != SETOK_F32) || x->ndim != 4 || w->ndim != 4 ||
        y->ndim != 4 || d->p.conv.pad_h != 0 || d->p.conv.pad_w != 0) {
        return setok_ref_ops[d->op](backend, d, err);
    }
    conv_shape s = {
        .c = x->shape[1], .h = x->shape[2], .w = x->shape[3], .oc = w->shape[1],
        .kh = w->shape[2], .kw = w->shape[3], .oh = y->shape[2], .ow = y->shape[3],
        .sh = d->p.conv.stride_h, .sw = d->p.conv.stride_w,
    };
    int64_t n = x->shape[0], okk = s.oc * s.kh * s.kw, plane = s.oh * s.ow;
    if (setok_tensor_numel(y) == 0) {
        return SETOK_OK;
    }
    const float *xp = x->data, *wp = w->data;
    float *yp = y->data;
    bias_planes init = {.y = yp, .bias = bias != NULL ? bias->data : NULL, .channels = s.oc,
                        .plane = plane};
    setok_cpu_parallel_for(backend, n * s.oc, min_planes(plane), set_bias_planes, &init);
    if (s.c == 0 || s.h * s.w == 0) {
        return SETOK_OK;
    }
    int64_t rows = band_rows(okk * s.w, s.h);
    float *cols = malloc((size_t)(okk * rows * s.w) * sizeof(float) + 1);
    if (cols == NULL) {
        return setok_fail(err, SETOK_ERR_NOMEM, "conv_transpose2d: cannot allocate the %lld x "
                          "%lld column buffer", (long long)okk, (long long)(rows * s.w));
    }
    for (int64_t i = 0; i < n; i++) {
        const float *xi = xp + i * s.c * s.h * s.w;
        for (int64_t ih0 = 0; ih0 < s.h; ih0 += rows) {
            int64_t band = s.h - ih0 < rows ? s.h - ih0 : rows;
            // cols [OC*KH*KW, band*W] = w^T (w is [C, OC*KH*KW]) x_i[:, band] (row stride H*W)
            setok_cpu_sgemm(backend, true, false, okk, band * s.w, s.c, 1.0f, wp, okk,
                            xi + ih0 * s.w, s.h * s.w, 0.0f, cols, band * s.w);
            col2im_job t = {.y = yp + i * s.oc * plane, .cols = cols, .s = s, .ih0 = ih0,
                            .rows = band};
            int64_t per_channel = s.kh * s.kw * band * s.w;
            setok_cpu_parallel_for(backend, s.oc, min_planes(per_channel), col2im_channels, &t);
        }
    }
    free(cols);
    return SETOK_OK;
}
