/* fuzz-image.c — decoding and processing an image from fuzzed bytes (fuzz-image.h). */
#include "fuzz-image.h"

#include "setok/image.h"

/* small enough that a progressive image of many scans decodes in milliseconds */
#define FUZZ_MAX_PIXELS (1u << 16)

void fuzz_decode_image(const uint8_t *data, size_t size, const char *name)
{
    setok_error err;
    setok_image img = {0};
    if (setok_image_decode(&img, data, size, name, FUZZ_MAX_PIXELS, &err) != SETOK_OK)
        return;
    if (img.width <= 0 || img.height <= 0 || (size_t)img.width * img.height > FUZZ_MAX_PIXELS ||
        (img.channels != 3 && img.channels != 4))
        __builtin_trap(); /* what decoding promises */
    setok_image small = {0}, rgb = {0}, crop = {0};
    if (setok_image_resize(&small, &img, 5, 3, SETOK_RESAMPLE_BICUBIC, &err) == SETOK_OK)
        setok_image_free(&small);
    if (setok_image_to_rgb(&rgb, &img, &err) == SETOK_OK)
        setok_image_free(&rgb);
    if (setok_image_center_crop(&crop, &img, 4, 4, &err) == SETOK_OK)
        setok_image_free(&crop);
    setok_image_free(&img);
}
