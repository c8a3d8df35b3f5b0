/* jpeg.c — JPEG decoding from memory through libjpeg(-turbo).
 *
 * Output is 8-bit RGB, as PIL's Image.open(...).convert("RGB"): libjpeg's
 * defaults (islow IDCT, fancy upsampling) and its YCbCr -> RGB; gray is
 * replicated; CMYK and YCCK are read as Adobe-inverted CMYK (PIL's "CMYK;I",
 * which PIL assumes for every CMYK JPEG) and turned into RGB with PIL's
 * cmyk2rgb integer formula. The error manager copies libjpeg's message and
 * longjmps back, never exits; a premature end of data, which libjpeg only
 * warns about (and pads with grey), is an error here. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "image-impl.h"

/* A progressive JPEG can hold thousands of tiny scans that each cost a full
 * pass over the image; real encoders write about ten. */
#define JPEG_MAX_SCANS 1000

typedef struct jpeg_job {
    struct jpeg_error_mgr errmgr;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX + 64];
    struct jpeg_decompress_struct cinfo;
    setok_image image;
    uint8_t *row; /* one decoded row before conversion to RGB */
} jpeg_job;

static jpeg_job *job_of(j_common_ptr cinfo)
{
    return (jpeg_job *)((char *)cinfo->err - offsetof(jpeg_job, errmgr));
}

static void job_error_exit(j_common_ptr cinfo)
{
    jpeg_job *job = job_of(cinfo);
    cinfo->err->format_message(cinfo, job->message);
    longjmp(job->jump, 1);
}

static void job_emit_message(j_common_ptr cinfo, int level)
{
    if (level >= 0) {
        return; // trace messages
    }
    // Truncated data: libjpeg inserts a fake EOI and would return a grey tail.
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
        job_error_exit(cinfo);
    }
    cinfo->err->num_warnings++; // other corrupt-data warnings are tolerated, as by PIL
}

static void job_output_message(j_common_ptr cinfo)
{
    (void)cinfo; // never print
}

static void job_progress(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_job *job = job_of(cinfo);
        snprintf(job->message, sizeof job->message, "more than %d scans", JPEG_MAX_SCANS);
        longjmp(job->jump, 1);
    }
}

/* 255 * a * b / 255^2 rounded, as PIL's MULDIV255. */
static uint8_t muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

/* Converts one decoded row (gray, RGB or inverted CMYK) to RGB. */
static void row_to_rgb(uint8_t *rgb, const uint8_t *row, int width, int components)
{
    for (int x = 0; x < width; x++, rgb += 3) {
        if (components == 1) {
            rgb[0] = rgb[1] = rgb[2] = row[x];
        } else {
            // PIL: c = 255 - raw, nk = 255 - k = raw k, out = nk - c * nk / 255.
            const uint8_t *p = row + (size_t)x * 4;
            unsigned nk = p[3];
            for (int c = 0; c < 3; c++) {
                rgb[c] = (uint8_t)(nk - muldiv255(255u - p[c], nk));
            }
        }
    }
}

static setok_status decode_jpeg_run(jpeg_job *job, const uint8_t *bytes, size_t size,
                                    const char *name, size_t max_pixels, setok_error *err)
{
    if (setjmp(job->jump)) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: corrupt JPEG data: %s", name, job->message);
    }
    j_decompress_ptr cinfo = &job->cinfo;
    jpeg_create_decompress(cinfo);
    cinfo->progress = &job->progress;
    jpeg_mem_src(cinfo, bytes, (unsigned long)size);
    jpeg_read_header(cinfo, TRUE);
    setok_status status = setok_image_check_size(cinfo->image_width, cinfo->image_height,
                                                 max_pixels, name, err);
    if (status != SETOK_OK) {
        return status;
    }
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo->out_color_space = JCS_CMYK;
        break;
    default:
        cinfo->out_color_space = JCS_RGB;
        break;
    }
    jpeg_start_decompress(cinfo);
    int width = (int)cinfo->output_width;
    int components = cinfo->output_components;
    int expected = cinfo->out_color_space == JCS_GRAYSCALE ? 1
                   : cinfo->out_color_space == JCS_CMYK    ? 4
                                                           : 3;
    if (components != expected) {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: JPEG decodes to %d components, expected %d",
                          name, components, expected);
    }
    status = setok_image_alloc(&job->image, width, (int)cinfo->output_height, 3, err);
    if (status != SETOK_OK) {
        return setok_error_prefix(err, "%s", name);
    }
    if (components != 3) {
        job->row = malloc((size_t)width * (size_t)components);
        if (!job->row) {
            return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory for a JPEG row", name);
        }
    }
    while (cinfo->output_scanline < cinfo->output_height) {
        uint8_t *rgb = job->image.pixels + (size_t)cinfo->output_scanline * (size_t)width * 3;
        JSAMPROW row = components == 3 ? rgb : job->row;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
            return setok_fail(err, SETOK_ERR_INPUT, "%s: corrupt JPEG data: no scanline %u",
                              name, (unsigned)cinfo->output_scanline);
        }
        if (components != 3) {
            row_to_rgb(rgb, job->row, width, components);
        }
    }
    jpeg_finish_decompress(cinfo);
    return SETOK_OK;
}

setok_status setok_image_decode_jpeg(setok_image *img, const uint8_t *bytes, size_t size,
                                     const char *name, size_t max_pixels, setok_error *err)
{
    jpeg_job *job = calloc(1, sizeof *job);
    if (!job) {
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory for the JPEG decoder", name);
    }
    job->cinfo.err = jpeg_std_error(&job->errmgr);
    job->errmgr.error_exit = job_error_exit;
    job->errmgr.emit_message = job_emit_message;
    job->errmgr.output_message = job_output_message;
    job->progress.progress_monitor = job_progress;
    snprintf(job->message, sizeof job->message, "unknown error");

    setok_status status = decode_jpeg_run(job, bytes, size, name, max_pixels, err);
    jpeg_destroy_decompress(&job->cinfo); // safe after an error, and on a never-created struct
    free(job->row);
    if (status == SETOK_OK) {
        *img = job->image;
    } else {
        setok_image_free(&job->image);
    }
    free(job);
    return status;
}
