/* image-impl.h — private pieces shared by the image files.
 *
 * The decoders return 8-bit RGB or RGBA; both check the pixel count from the
 * file header (setok_image_check_size) before they allocate the pixels. */
#ifndef SETOK_IMAGE_IMPL_H
#define SETOK_IMAGE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "setok/image.h"

/* Fails with "NAME: image is W x H = N pixels, more than the limit of M"
 * (and on a zero side). max_pixels 0 means the default. setok_image_alloc
 * then refuses what does not fit in memory arithmetic. */
setok_status setok_image_check_size(uint64_t width, uint64_t height, size_t max_pixels,
                                    const char *name, setok_error *err);

setok_status setok_image_decode_png(setok_image *img, const uint8_t *bytes, size_t size,
                                    const char *name, size_t max_pixels, setok_error *err);
setok_status setok_image_decode_jpeg(setok_image *img, const uint8_t *bytes, size_t size,
                                     const char *name, size_t max_pixels, setok_error *err);

#endif
