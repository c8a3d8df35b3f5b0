/* image.h — image files and the image math of Hugging Face processors.
 *
 * Decoding: PNG (libpng: 8/16-bit, gray, gray+alpha, RGB, RGBA, palette,
 * interlaced; 16-bit keeps the high byte, as PIL does) and JPEG (libjpeg;
 * gray, RGB, CMYK). Pixels come back 8-bit interleaved with 3 channels
 * (RGB) or 4 (RGBA, when the file has alpha or a tRNS chunk). The pixel
 * count is checked from the header before any pixel is decoded.
 *
 * Resizing matches PIL's Image.resize (separable filters whose support
 * grows with the downscale factor, i.e. antialiased; 8-bit rounding between
 * the two passes, vertical first when the height shrinks much more, as
 * Pillow >= 13 orders them; RGBA premultiplied), which is what HF image
 * processors call. dst and src must be different images. */
#ifndef SETOK_IMAGE_H
#define SETOK_IMAGE_H

#include "export.h"

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SETOK_IMAGE_DEFAULT_MAX_PIXELS (89478485) /* PIL's MAX_IMAGE_PIXELS */

typedef struct setok_image {
    int width, height;
    int channels;        /* 1, 3 or 4 (decoding gives 3 or 4) */
    uint8_t *pixels;     /* height * width * channels, row-major, malloc'd */
} setok_image;

/* max_pixels 0 means SETOK_IMAGE_DEFAULT_MAX_PIXELS. Errors name the path. */
SETOK_API setok_status setok_image_load(setok_image *img, const char *path, size_t max_pixels,
                              setok_error *err);
/* Decodes PNG or JPEG bytes (by signature); name is used in messages. */
SETOK_API setok_status setok_image_decode(setok_image *img, const void *bytes, size_t size,
                                const char *name, size_t max_pixels, setok_error *err);
/* Writes 8-bit gray, RGB or RGBA PNG. */
SETOK_API setok_status setok_image_save_png(const setok_image *img, const char *path, setok_error *err);
SETOK_API void setok_image_free(setok_image *img);
SETOK_API setok_status setok_image_alloc(setok_image *img, int width, int height, int channels,
                               setok_error *err);

typedef enum setok_resample {
    SETOK_RESAMPLE_NEAREST = 0,
    SETOK_RESAMPLE_BILINEAR,
    SETOK_RESAMPLE_BICUBIC,
    SETOK_RESAMPLE_LANCZOS, /* diffusers' VaeImageProcessor resizes with it */
} setok_resample;

/* PIL Image.resize((width, height), resample); dst is allocated. */
SETOK_API setok_status setok_image_resize(setok_image *dst, const setok_image *src, int width, int height,
                                setok_resample filter, setok_error *err);
/* HF center_crop: top = (H - h) / 2, left = (W - w) / 2 (floor); when the
 * image is smaller the result is zero padded, as HF pads. */
SETOK_API setok_status setok_image_center_crop(setok_image *dst, const setok_image *src, int width,
                                     int height, setok_error *err);
/* Drops alpha (PIL convert("RGB")) or expands gray; dst is allocated. */
SETOK_API setok_status setok_image_to_rgb(setok_image *dst, const setok_image *src, setok_error *err);
/* HF "shortest_edge" output size: the short side becomes size, the long side
 * int(size * long / short) (the aspect ratio kept, truncated). */
SETOK_API void setok_image_shortest_edge_size(int width, int height, int size, int *out_w, int *out_h);
/* out [3, H, W] float32 = (pixel * rescale - mean[c]) / std[c] for an RGB image. */
SETOK_API setok_status setok_image_normalize(float *out, const setok_image *rgb, float rescale,
                                   const float mean[3], const float std[3], setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
