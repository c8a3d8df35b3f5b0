/* image.c — image buffers, file loading, format dispatch and the HF image math.
 *
 * Decoders live in png.c and jpeg.c, resampling in resize.c. Every output
 * image is zeroed on entry, so on failure it holds nothing to free. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image-impl.h"

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* A file is read whole before decoding. The largest sensible file for n pixels
 * is an uncompressed 16-bit RGBA PNG (8 bytes a pixel); 64 MiB more leaves room
 * for metadata chunks. */
#define IMAGE_FILE_SLACK ((uint64_t)64 << 20)

static size_t effective_max_pixels(size_t max_pixels)
{
    return max_pixels ? max_pixels : (size_t)SETOK_IMAGE_DEFAULT_MAX_PIXELS;
}

setok_status setok_image_check_size(uint64_t width, uint64_t height, size_t max_pixels,
                                    const char *name, setok_error *err)
{
    max_pixels = effective_max_pixels(max_pixels);
    if (width == 0 || height == 0) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: image is %llu x %llu, an empty image", name,
                          (unsigned long long)width, (unsigned long long)height);
    }
    // Both come from 32-bit header fields at most, so the product fits in 64 bits.
    if (width > INT_MAX || height > INT_MAX || width * height > max_pixels) {
        return setok_fail(err, SETOK_ERR_INPUT,
                          "%s: image is %llu x %llu = %llu pixels, more than the limit of %zu",
                          name, (unsigned long long)width, (unsigned long long)height,
                          (unsigned long long)(width * height), max_pixels);
    }
    return SETOK_OK;
}

setok_status setok_image_alloc(setok_image *img, int width, int height, int channels,
                               setok_error *err)
{
    if (!img) {
        return setok_fail(err, SETOK_ERR_INPUT, "setok_image_alloc: image is NULL");
    }
    *img = (setok_image){0};
    if (width <= 0 || height <= 0) {
        return setok_fail(err, SETOK_ERR_INPUT, "image size %d x %d: sides must be positive",
                          width, height);
    }
    if (channels != 1 && channels != 3 && channels != 4) {
        return setok_fail(err, SETOK_ERR_INPUT, "image has %d channels, expected 1, 3 or 4",
                          channels);
    }
    // Objects beyond PTRDIFF_MAX bytes break pointer arithmetic, so that is the ceiling.
    size_t row = (size_t)width * (size_t)channels;
    if ((size_t)height > (size_t)PTRDIFF_MAX / row) {
        return setok_fail(err, SETOK_ERR_INPUT, "image size %d x %d x %d overflows", width,
                          height, channels);
    }
    uint8_t *pixels = calloc((size_t)height, row);
    if (!pixels) {
        return setok_fail(err, SETOK_ERR_NOMEM, "out of memory for a %d x %d x %d image", width,
                          height, channels);
    }
    *img = (setok_image){.width = width, .height = height, .channels = channels,
                         .pixels = pixels};
    return SETOK_OK;
}

void setok_image_free(setok_image *img)
{
    if (!img) {
        return;
    }
    free(img->pixels);
    *img = (setok_image){0};
}

/* The checks every function taking a source image makes. */
static setok_status check_image(const setok_image *img, const char *what, setok_error *err)
{
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0 ||
        (img->channels != 1 && img->channels != 3 && img->channels != 4)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: not a valid image (%d x %d x %d)", what,
                          img ? img->width : 0, img ? img->height : 0, img ? img->channels : 0);
    }
    return SETOK_OK;
}

setok_status setok_image_decode(setok_image *img, const void *bytes, size_t size,
                                const char *name, size_t max_pixels, setok_error *err)
{
    if (!name) {
        name = "<memory>";
    }
    if (!img) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: image is NULL", name);
    }
    *img = (setok_image){0};
    if (!bytes || size == 0) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: file is empty", name);
    }
    const uint8_t *b = bytes;
    if (size >= sizeof png_signature && memcmp(b, png_signature, sizeof png_signature) == 0) {
        return setok_image_decode_png(img, b, size, name, max_pixels, err);
    }
    // Only the SOI marker is required, so a damaged JPEG gets libjpeg's message.
    if (size >= 2 && b[0] == 0xFF && b[1] == 0xD8) {
        return setok_image_decode_jpeg(img, b, size, name, max_pixels, err);
    }
    return setok_fail(err, SETOK_ERR_INPUT, "%s: not a PNG or JPEG file", name);
}

/* Reads a regular file whole into a malloc'd buffer of at most limit bytes. */
static setok_status read_file(uint8_t **out, size_t *out_size, const char *path, uint64_t limit,
                              setok_error *err)
{
    *out = NULL;
    *out_size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    setok_status status = SETOK_OK;
    if (fstat(fileno(f), &st) != 0) {
        status = setok_fail(err, SETOK_ERR_INPUT, "%s: %s", path, strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        status = setok_fail(err, SETOK_ERR_INPUT, "%s: is a directory", path);
    } else if (!S_ISREG(st.st_mode)) {
        status = setok_fail(err, SETOK_ERR_INPUT, "%s: not a regular file", path);
    } else if (st.st_size == 0) {
        status = setok_fail(err, SETOK_ERR_INPUT, "%s: file is empty", path);
    } else if ((uint64_t)st.st_size > limit || (uint64_t)st.st_size > SIZE_MAX) {
        status = setok_fail(err, SETOK_ERR_INPUT,
                            "%s: file is %llu bytes, more than the limit of %llu", path,
                            (unsigned long long)st.st_size, (unsigned long long)limit);
    }
    if (status != SETOK_OK) {
        fclose(f);
        return status;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size);
    if (!buf) {
        fclose(f);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory for %zu bytes", path, size);
    }
    size_t got = fread(buf, 1, size, f);
    if (got != size) {
        status = ferror(f) ? setok_fail(err, SETOK_ERR_RUNTIME, "%s: read error: %s", path,
                                        strerror(errno))
                           : setok_fail(err, SETOK_ERR_RUNTIME,
                                        "%s: file shrank while reading (%zu of %zu bytes)", path,
                                        got, size);
        free(buf);
        fclose(f);
        return status;
    }
    fclose(f);
    *out = buf;
    *out_size = size;
    return SETOK_OK;
}

setok_status setok_image_load(setok_image *img, const char *path, size_t max_pixels,
                              setok_error *err)
{
    if (!img || !path) {
        return setok_fail(err, SETOK_ERR_INPUT, "setok_image_load: %s is NULL",
                          img ? "path" : "image");
    }
    *img = (setok_image){0};
    uint64_t pixels = effective_max_pixels(max_pixels);
    uint64_t limit = pixels > (UINT64_MAX - IMAGE_FILE_SLACK) / 8
                         ? UINT64_MAX
                         : pixels * 8 + IMAGE_FILE_SLACK;
    uint8_t *bytes;
    size_t size;
    setok_status status = read_file(&bytes, &size, path, limit, err);
    if (status != SETOK_OK) {
        return status;
    }
    status = setok_image_decode(img, bytes, size, path, max_pixels, err);
    free(bytes);
    return status;
}

setok_status setok_image_to_rgb(setok_image *dst, const setok_image *src, setok_error *err)
{
    if (!dst || dst == src) {
        return setok_fail(err, SETOK_ERR_INPUT, "setok_image_to_rgb: dst must be a new image");
    }
    *dst = (setok_image){0};
    setok_status status = check_image(src, "setok_image_to_rgb", err);
    if (status != SETOK_OK) {
        return status;
    }
    status = setok_image_alloc(dst, src->width, src->height, 3, err);
    if (status != SETOK_OK) {
        return status;
    }
    size_t n = (size_t)src->width * (size_t)src->height;
    int c = src->channels;
    // Gray is replicated; alpha is dropped without compositing, as PIL's convert("RGB").
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = src->pixels + i * (size_t)c;
        uint8_t *d = dst->pixels + i * 3;
        d[0] = s[0];
        d[1] = s[c == 1 ? 0 : 1];
        d[2] = s[c == 1 ? 0 : 2];
    }
    return SETOK_OK;
}

/* Python's a // 2 (rounds toward minus infinity). */
static int floor_half(int a)
{
    return a >= 0 ? a / 2 : -((1 - a) / 2);
}

setok_status setok_image_center_crop(setok_image *dst, const setok_image *src, int width,
                                     int height, setok_error *err)
{
    if (!dst || dst == src) {
        return setok_fail(err, SETOK_ERR_INPUT,
                          "setok_image_center_crop: dst must be a new image");
    }
    *dst = (setok_image){0};
    setok_status status = check_image(src, "setok_image_center_crop", err);
    if (status != SETOK_OK) {
        return status;
    }
    status = setok_image_alloc(dst, width, height, src->channels, err);
    if (status != SETOK_OK) {
        return status;
    }
    // HF pads a smaller image with ceil((h - H) / 2) zero rows on top, which
    // is the same as reading row y + floor((H - h) / 2) of the source.
    int top = floor_half(src->height - height);
    int left = floor_half(src->width - width);
    int x0 = left < 0 ? -left : 0;
    int x1 = src->width - left < width ? src->width - left : width;
    size_t c = (size_t)src->channels;
    for (int y = 0; y < height && x1 > x0; y++) {
        int sy = y + top;
        if (sy < 0 || sy >= src->height) {
            continue;
        }
        size_t s_off = (size_t)sy * (size_t)src->width + (size_t)(x0 + left);
        size_t d_off = (size_t)y * (size_t)width + (size_t)x0;
        memcpy(dst->pixels + d_off * c, src->pixels + s_off * c, (size_t)(x1 - x0) * c);
    }
    return SETOK_OK;
}

void setok_image_shortest_edge_size(int width, int height, int size, int *out_w, int *out_h)
{
    if (width <= 0 || height <= 0 || size <= 0) {
        *out_w = *out_h = 0;
        return;
    }
    int short_side = width <= height ? width : height;
    int long_side = width <= height ? height : width;
    // Python's int(size * long / short): an exact product, one rounded division.
    double scaled = (double)((int64_t)size * long_side) / (double)short_side;
    int new_long = scaled >= (double)INT_MAX ? INT_MAX : (int)scaled;
    *out_w = width <= height ? size : new_long;
    *out_h = width <= height ? new_long : size;
}

setok_status setok_image_normalize(float *out, const setok_image *rgb, float rescale,
                                   const float mean[3], const float std[3], setok_error *err)
{
    setok_status status = check_image(rgb, "setok_image_normalize", err);
    if (status != SETOK_OK) {
        return status;
    }
    if (rgb->channels != 3) {
        return setok_fail(err, SETOK_ERR_INPUT,
                          "setok_image_normalize: image has %d channels, expected RGB (3)",
                          rgb->channels);
    }
    if (!out || !mean || !std) {
        return setok_fail(err, SETOK_ERR_INPUT, "setok_image_normalize: NULL argument");
    }
    size_t n = (size_t)rgb->width * (size_t)rgb->height;
    // out: [3, H, W]. HF rescales in float64, casts to float32, then normalizes in float32.
    for (int c = 0; c < 3; c++) {
        float *o = out + (size_t)c * n;
        for (size_t i = 0; i < n; i++) {
            float v = (float)((double)rgb->pixels[i * 3 + (size_t)c] * (double)rescale);
            o[i] = (v - mean[c]) / std[c];
        }
    }
    return SETOK_OK;
}
