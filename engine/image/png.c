/* png.c — PNG decoding from memory and PNG writing (through setok_file_replace, so a failed
 * save leaves the file as it was), through libpng.
 *
 * Decoding gives 8-bit RGB or RGBA as PIL's convert("RGB"/"RGBA") would:
 * palettes expanded, tRNS turned into alpha, gray replicated, 16-bit samples
 * cut to their high byte, Adam7 deinterlaced. libpng reports errors through
 * an error function that copies its message and longjmps back; every setjmp
 * lives in a function whose state sits in a struct owned by its caller. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image-impl.h"
#include "setok/file.h"

/* the most a PNG metadata chunk may take once read (or inflated) */
#define PNG_CHUNK_BYTES_MAX (16u << 20)

typedef struct png_job {
    const uint8_t *bytes; /* decoding: the file */
    size_t size, pos;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    setok_image image;
    char message[256]; /* libpng's last error */
} png_job;

static void job_error(png_structp png, png_const_charp msg)
{
    png_job *job = png_get_error_ptr(png);
    snprintf(job->message, sizeof job->message, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void job_warning(png_structp png, png_const_charp msg)
{
    // Warnings (bad ancillary chunks, CRC errors in them) are ignored, as PIL does.
    (void)png;
    (void)msg;
}

static void job_read(png_structp png, png_bytep out, size_t n)
{
    png_job *job = png_get_io_ptr(png);
    if (n > job->size - job->pos) {
        png_error(png, "file is truncated");
    }
    memcpy(out, job->bytes + job->pos, n);
    job->pos += n;
}

static uint32_t read_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Runs libpng over job->bytes into job->image. */
static setok_status decode_png_run(png_job *job, const char *name, size_t max_pixels,
                                   setok_error *err)
{
    if (setjmp(png_jmpbuf(job->png))) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: corrupt PNG data: %s", name, job->message);
    }
    png_structp png = job->png;
    png_infop info = job->info;
    png_set_read_fn(png, job, job_read);
    // libpng's own guard, below its defaults: neither side can exceed the pixel limit.
    size_t limit = max_pixels ? max_pixels : (size_t)SETOK_IMAGE_DEFAULT_MAX_PIXELS;
    png_uint_32 side_max = limit < PNG_UINT_31_MAX ? (png_uint_32)limit : PNG_UINT_31_MAX;
    png_set_user_limits(png, side_max, side_max);
    // only the pixels matter (as to PIL's decoder): text, ICC profiles and unknown chunks are
    // skipped unread, so none that claims gigabytes or inflates to them is allocated; what
    // libpng still reads whole stops at PNG_CHUNK_BYTES_MAX
    static const png_byte skipped[] = "iCCP\0iTXt\0tEXt\0zTXt\0eXIf\0sPLT";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skipped, 6);
    png_set_chunk_malloc_max(png, PNG_CHUNK_BYTES_MAX);
    png_read_info(png, info);

    png_uint_32 width, height;
    int depth, color, interlace;
    png_get_IHDR(png, info, &width, &height, &depth, &color, &interlace, NULL, NULL);
    if (depth == 16) {
        png_set_strip_16(png); // keeps the high byte, as PIL's "RGB;16B" unpacking does
    }
    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_set_palette_to_rgb(png);
    }
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png);
    }
    if (png_get_valid(png, info, PNG_INFO_tRNS)) {
        png_set_tRNS_to_alpha(png);
    }
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) {
        png_set_gray_to_rgb(png);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    if ((channels != 3 && channels != 4) || png_get_bit_depth(png, info) != 8) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: unsupported PNG layout (%d channels, %d bits)",
                          name, channels, png_get_bit_depth(png, info));
    }
    setok_status status = setok_image_check_size(width, height, max_pixels, name, err);
    if (status != SETOK_OK) {
        return status;
    }
    status = setok_image_alloc(&job->image, (int)width, (int)height, channels, err);
    if (status != SETOK_OK) {
        return setok_error_prefix(err, "%s", name);
    }
    size_t stride = png_get_rowbytes(png, info);
    if (stride != (size_t)width * (size_t)channels) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: unexpected PNG row size %zu", name, stride);
    }
    job->rows = malloc((size_t)height * sizeof *job->rows);
    if (!job->rows) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory for %u row pointers", name,
                          (unsigned)height);
    }
    for (png_uint_32 y = 0; y < height; y++) {
        job->rows[y] = job->image.pixels + (size_t)y * stride;
    }
    png_read_image(png, job->rows);
    // The trailer is read too, so a file cut after its last IDAT is an error.
    png_read_end(png, NULL);
    return SETOK_OK;
}

setok_status setok_image_decode_png(setok_image *img, const uint8_t *bytes, size_t size,
                                    const char *name, size_t max_pixels, setok_error *err)
{
    // IHDR must come first (PNG spec 5.6); its size is checked before libpng sees
    // anything, so an absurd header fails here with a clear message.
    if (size >= 33 && memcmp(bytes + 12, "IHDR", 4) == 0) {
        setok_status status = setok_image_check_size(read_be32(bytes + 16), read_be32(bytes + 20),
                                                     max_pixels, name, err);
        if (status != SETOK_OK) {
            return status;
        }
    }
    png_job job = {.bytes = bytes, .size = size, .message = "unknown error"};
    job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, job_error, job_warning);
    if (job.png) {
        job.info = png_create_info_struct(job.png);
    }
    if (!job.png || !job.info) {
        png_destroy_read_struct(job.png ? &job.png : NULL, NULL, NULL);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory for the PNG decoder", name);
    }
    setok_status status = decode_png_run(&job, name, max_pixels, err);
    png_destroy_read_struct(&job.png, &job.info, NULL);
    free(job.rows);
    if (status != SETOK_OK) {
        setok_image_free(&job.image);
        return status;
    }
    *img = job.image;
    return SETOK_OK;
}

/* Writes img to the open file f with libpng. */
static setok_status write_png_run(png_job *job, const setok_image *img, FILE *f,
                                  const char *path, setok_error *err)
{
    if (setjmp(png_jmpbuf(job->png))) {
        return setok_fail(err, SETOK_ERR_RUNTIME, "%s: cannot write PNG: %s", path,
                          job->message);
    }
    int color = img->channels == 1   ? PNG_COLOR_TYPE_GRAY
                : img->channels == 3 ? PNG_COLOR_TYPE_RGB
                                     : PNG_COLOR_TYPE_RGB_ALPHA;
    png_init_io(job->png, f);
    png_set_IHDR(job->png, job->info, (png_uint_32)img->width, (png_uint_32)img->height, 8, color,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(job->png, job->info);
    png_write_image(job->png, job->rows);
    png_write_end(job->png, NULL);
    return SETOK_OK;
}

typedef struct png_save {
    const setok_image *img;
    const char *path;
} png_save;

/* The setok_file_writer of setok_image_save_png. */
static setok_status write_png_file(FILE *f, void *user, setok_error *err)
{
    const png_save *save = user;
    const setok_image *img = save->img;
    png_job job = {.message = "unknown error"};
    job.rows = malloc((size_t)img->height * sizeof *job.rows);
    if (!job.rows) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", save->path);
    }
    size_t stride = (size_t)img->width * (size_t)img->channels;
    for (int y = 0; y < img->height; y++) {
        job.rows[y] = img->pixels + (size_t)y * stride;
    }
    setok_status status;
    job.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &job, job_error, job_warning);
    if (job.png) {
        job.info = png_create_info_struct(job.png);
    }
    if (!job.png || !job.info) {
        status = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory for the PNG encoder",
                            save->path);
    } else {
        status = write_png_run(&job, img, f, save->path, err);
    }
    png_destroy_write_struct(job.png ? &job.png : NULL, &job.info);
    free(job.rows);
    return status;
}

setok_status setok_image_save_png(const setok_image *img, const char *path, setok_error *err)
{
    if (!path) {
        return setok_fail(err, SETOK_ERR_INPUT, "setok_image_save_png: path is NULL");
    }
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0 ||
        (img->channels != 1 && img->channels != 3 && img->channels != 4)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: cannot save a %d x %d x %d image as PNG",
                          path, img ? img->width : 0, img ? img->height : 0,
                          img ? img->channels : 0);
    }
    // Written beside the target and renamed over it, so a failed save loses nothing.
    png_save save = {img, path};
    return setok_file_replace(path, write_png_file, &save, err);
}
