/* fuzz-image.h — what the image harnesses do: decode the bytes (PNG or JPEG, by signature)
 * under a pixel limit that keeps each run short, then resize, crop and convert what decoded,
 * as the processors do. */
#ifndef SETOK_FUZZ_IMAGE_H
#define SETOK_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>

void fuzz_decode_image(const uint8_t *data, size_t size, const char *name);

#endif
