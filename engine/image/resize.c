/* resize.c — PIL's Image.resize for 8-bit images, reimplemented to match it.
 *
 * BILINEAR (triangle, support 1), BICUBIC (Keys, a = -0.5, support 2) and LANCZOS
 * (sinc windowed by sinc(x / 3), support 3) are separable convolutions whose support grows with the downscale factor, so
 * downscaling is antialiased. As in PIL: one coefficient window per output
 * pixel, normalised to sum 1, then fixed point with 22 fractional bits; the
 * first pass (horizontal, or vertical when the height shrinks much more, as
 * Pillow >= 13 chooses) is rounded and clamped to 8 bits before the second;
 * a pass whose size does not change is skipped.
 * RGBA is premultiplied (PIL's RGBA -> RGBa -> RGBA) around the passes.
 * NEAREST is PIL's affine scale: source index = int(scale * (x + 0.5)),
 * accumulated step by step in double exactly as PIL does. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image-impl.h"

#define PRECISION_BITS (32 - 8 - 2)

typedef struct resample_filter {
    double (*fn)(double x);
    double support;
} resample_filter;

static double filter_bilinear(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double filter_bicubic(double x)
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) {
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    }
    if (x < 2.0) {
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    }
    return 0.0;
}

static double sinc(double x)
{
    if (x == 0.0) {
        return 1.0;
    }
    x *= M_PI;
    return sin(x) / x;
}

static double filter_lanczos(double x)
{
    return x > -3.0 && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0;
}

/* The windows of one pass: output pixel i reads count[i] inputs from first[i]
 * with fixed-point weights k[i * ksize ...]. */
typedef struct resample_coeffs {
    int ksize;
    int *first, *count;
    int32_t *k;
} resample_coeffs;

static void coeffs_free(resample_coeffs *c)
{
    free(c->first);
    free(c->count);
    free(c->k);
    *c = (resample_coeffs){0};
}

/* PIL's precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size). */
static setok_status coeffs_init(resample_coeffs *c, int in_size, int out_size,
                                const resample_filter *filter, setok_error *err)
{
    *c = (resample_coeffs){0};
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filter->support * filterscale;
    if (support > (double)(1 << 28)) {
        return setok_fail(err, SETOK_ERR_INPUT, "resize %d -> %d: scale factor too large",
                          in_size, out_size);
    }
    int ksize = (int)ceil(support) * 2 + 1;
    double *w = malloc((size_t)ksize * sizeof *w);
    c->ksize = ksize;
    c->first = malloc((size_t)out_size * sizeof *c->first);
    c->count = malloc((size_t)out_size * sizeof *c->count);
    c->k = (size_t)out_size <= SIZE_MAX / sizeof *c->k / (size_t)ksize
               ? calloc((size_t)out_size * (size_t)ksize, sizeof *c->k)
               : NULL;
    if (!w || !c->first || !c->count || !c->k) {
        free(w);
        coeffs_free(c);
        return setok_fail(err, SETOK_ERR_NOMEM, "resize %d -> %d: out of memory for weights",
                          in_size, out_size);
    }
    for (int i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        double inv = 1.0 / filterscale;
        // PIL rounds both ends with (int)(v + 0.5), then clamps to the image.
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        lo = lo < 0 ? 0 : lo;
        hi = hi > in_size ? in_size : hi;
        int n = hi - lo;
        double sum = 0.0;
        for (int j = 0; j < n; j++) {
            w[j] = filter->fn((j + lo - center + 0.5) * inv);
            sum += w[j];
        }
        int32_t *k = c->k + (size_t)i * (size_t)ksize;
        for (int j = 0; j < n; j++) {
            double v = sum != 0.0 ? w[j] / sum : w[j];
            k[j] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                                   : 0.5 + v * (1 << PRECISION_BITS));
        }
        c->first[i] = lo;
        c->count[i] = n;
    }
    free(w);
    return SETOK_OK;
}

static uint8_t clip8(int32_t v)
{
    if (v >= (int32_t)(256u << PRECISION_BITS)) {
        return 255;
    }
    return v <= 0 ? 0 : (uint8_t)(v >> PRECISION_BITS);
}

// src: [rows, in_w, ch] -> dst: [rows, out_w, ch]
static void resample_horizontal(uint8_t *dst, const uint8_t *src, const resample_coeffs *c,
                                int rows, int in_w, int out_w, int ch)
{
    for (int y = 0; y < rows; y++) {
        const uint8_t *s = src + (size_t)y * (size_t)in_w * (size_t)ch;
        uint8_t *d = dst + (size_t)y * (size_t)out_w * (size_t)ch;
        for (int x = 0; x < out_w; x++) {
            const int32_t *k = c->k + (size_t)x * (size_t)c->ksize;
            const uint8_t *p = s + (size_t)c->first[x] * (size_t)ch;
            for (int q = 0; q < ch; q++) {
                int32_t acc = 1 << (PRECISION_BITS - 1);
                for (int j = 0; j < c->count[x]; j++) {
                    acc += p[(size_t)j * (size_t)ch + (size_t)q] * k[j];
                }
                d[(size_t)x * (size_t)ch + (size_t)q] = clip8(acc);
            }
        }
    }
}

// src: [in_h, width, ch] -> dst: [out_h, width, ch]
static void resample_vertical(uint8_t *dst, const uint8_t *src, const resample_coeffs *c,
                              int out_h, int width, int ch)
{
    size_t row = (size_t)width * (size_t)ch;
    for (int y = 0; y < out_h; y++) {
        const int32_t *k = c->k + (size_t)y * (size_t)c->ksize;
        const uint8_t *s = src + (size_t)c->first[y] * row;
        uint8_t *d = dst + (size_t)y * row;
        for (size_t i = 0; i < row; i++) {
            int32_t acc = 1 << (PRECISION_BITS - 1);
            for (int j = 0; j < c->count[y]; j++) {
                acc += s[(size_t)j * row + i] * k[j];
            }
            d[i] = clip8(acc);
        }
    }
}

/* PIL's MULDIV255 (RGBA -> RGBa) and its truncating inverse (RGBa -> RGBA). */
static void premultiply(uint8_t *px, size_t n)
{
    for (size_t i = 0; i < n; i++, px += 4) {
        for (int c = 0; c < 3; c++) {
            unsigned t = (unsigned)px[c] * px[3] + 128;
            px[c] = (uint8_t)(((t >> 8) + t) >> 8);
        }
    }
}

static void unpremultiply(uint8_t *px, size_t n)
{
    for (size_t i = 0; i < n; i++, px += 4) {
        unsigned a = px[3];
        if (a == 0 || a == 255) {
            continue;
        }
        for (int c = 0; c < 3; c++) {
            unsigned v = 255u * px[c] / a;
            px[c] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
}

static setok_status resize_nearest(setok_image *dst, const setok_image *src, setok_error *err)
{
    size_t ch = (size_t)src->channels;
    int *xin = malloc((size_t)dst->width * sizeof *xin);
    if (!xin) {
        setok_image_free(dst);
        return setok_fail(err, SETOK_ERR_NOMEM, "setok_image_resize: out of memory");
    }
    double ax = (double)src->width / dst->width, ay = (double)src->height / dst->height;
    // PIL accumulates the source coordinate (xo += a) rather than multiplying.
    double xo = ax * 0.5;
    for (int x = 0; x < dst->width; x++, xo += ax) {
        int v = xo < 0.0 ? 0 : (int)xo;
        xin[x] = v < src->width ? v : src->width - 1;
    }
    double yo = ay * 0.5;
    for (int y = 0; y < dst->height; y++, yo += ay) {
        int sy = yo < 0.0 ? 0 : (int)yo;
        sy = sy < src->height ? sy : src->height - 1;
        const uint8_t *s = src->pixels + (size_t)sy * (size_t)src->width * ch;
        uint8_t *d = dst->pixels + (size_t)y * (size_t)dst->width * ch;
        for (int x = 0; x < dst->width; x++) {
            memcpy(d + (size_t)x * ch, s + (size_t)xin[x] * ch, ch);
        }
    }
    free(xin);
    return SETOK_OK;
}

setok_status setok_image_resize(setok_image *dst, const setok_image *src, int width, int height,
                                setok_resample filter, setok_error *err)
{
    if (!dst || dst == src) {
        return setok_fail(err, SETOK_ERR_INPUT, "setok_image_resize: dst must be a new image");
    }
    *dst = (setok_image){0};
    if (!src || !src->pixels || src->width <= 0 || src->height <= 0 ||
        (src->channels != 1 && src->channels != 3 && src->channels != 4)) {
        return setok_fail(err, SETOK_ERR_INPUT, "setok_image_resize: not a valid source image");
    }
    static const resample_filter filters[] = {
        [SETOK_RESAMPLE_BILINEAR] = {filter_bilinear, 1.0},
        [SETOK_RESAMPLE_BICUBIC] = {filter_bicubic, 2.0},
        [SETOK_RESAMPLE_LANCZOS] = {filter_lanczos, 3.0},
    };
    if ((unsigned)filter > SETOK_RESAMPLE_LANCZOS) {
        return setok_fail(err, SETOK_ERR_INPUT, "setok_image_resize: unknown filter %d",
                          (int)filter);
    }
    int ch = src->channels;
    setok_status status = setok_image_alloc(dst, width, height, ch, err);
    if (status != SETOK_OK) {
        return setok_error_prefix(err, "setok_image_resize");
    }
    size_t src_bytes = (size_t)src->width * (size_t)src->height * (size_t)ch;
    if (width == src->width && height == src->height) {
        memcpy(dst->pixels, src->pixels, src_bytes); // PIL returns a copy, even for RGBA
        return SETOK_OK;
    }
    if (filter == SETOK_RESAMPLE_NEAREST) {
        return resize_nearest(dst, src, err);
    }

    const resample_filter *f = &filters[filter];
    resample_coeffs horiz = {0}, vert = {0};
    uint8_t *premul = NULL, *tmp = NULL;
    const uint8_t *in = src->pixels;
    if (ch == 4) {
        premul = malloc(src_bytes);
        if (!premul) {
            goto nomem;
        }
        memcpy(premul, src->pixels, src_bytes);
        premultiply(premul, (size_t)src->width * (size_t)src->height);
        in = premul;
    }
    bool need_h = width != src->width, need_v = height != src->height;
    if (need_h) {
        status = coeffs_init(&horiz, src->width, width, f, err);
    }
    if (status == SETOK_OK && need_v) {
        status = coeffs_init(&vert, src->height, height, f, err);
    }
    if (status != SETOK_OK) {
        goto fail;
    }
    if (need_h && need_v) {
        // Pillow >= 13 runs the vertical pass first when the height shrinks by more than
        // twice as many pixels as the width does; older Pillow always goes horizontal first.
        bool vertical_first = height < src->height &&
                              (int64_t)src->height - height > 2 * ((int64_t)src->width - width);
        tmp = vertical_first ? malloc((size_t)height * (size_t)src->width * (size_t)ch)
                             : malloc((size_t)src->height * (size_t)width * (size_t)ch);
        if (!tmp) {
            goto nomem;
        }
        if (vertical_first) {
            resample_vertical(tmp, in, &vert, height, src->width, ch);
            resample_horizontal(dst->pixels, tmp, &horiz, height, src->width, width, ch);
        } else {
            resample_horizontal(tmp, in, &horiz, src->height, src->width, width, ch);
            resample_vertical(dst->pixels, tmp, &vert, height, width, ch);
        }
    } else if (need_h) {
        resample_horizontal(dst->pixels, in, &horiz, src->height, src->width, width, ch);
    } else {
        resample_vertical(dst->pixels, in, &vert, height, width, ch);
    }
    if (ch == 4) {
        unpremultiply(dst->pixels, (size_t)width * (size_t)height);
    }
    coeffs_free(&horiz);
    coeffs_free(&vert);
    free(premul);
    free(tmp);
    return SETOK_OK;

nomem:
    status = setok_fail(err, SETOK_ERR_NOMEM, "setok_image_resize: out of memory for %d x %d",
                        width, height);
fail:
    coeffs_free(&horiz);
    coeffs_free(&vert);
    free(premul);
    free(tmp);
    setok_image_free(dst);
    return status;
}
