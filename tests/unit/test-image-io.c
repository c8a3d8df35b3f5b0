/* test-image-io.c — image decoding, saving, HF image math and bad input.
 *
 * PNG variants are written with libpng directly (and JPEGs with libjpeg)
 * from known samples in a temporary folder, decoded with setok_image_load
 * and checked pixel by pixel against what the decoder promises: 8-bit RGB or
 * RGBA, palettes expanded, tRNS as alpha, 16-bit cut to the high byte. Bad
 * files must fail with SETOK_ERR_INPUT and a message naming the file. */
#include <limits.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "setok/image.h"

static int checks, failures;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        checks++;                                                                              \
        if (!(cond)) {                                                                         \
            failures++;                                                                        \
            fprintf(stderr, "%s:%d: FAIL %s: ", __FILE__, __LINE__, #cond);                    \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

// ---- temporary files -----------------------------------------------------------------------

static char tmp_dir[256];
static char tmp_files[64][320];
static int n_tmp_files;

static const char *tmp_path(const char *name)
{
    if (n_tmp_files == 64) {
        fprintf(stderr, "too many temporary files\n");
        exit(1);
    }
    char *p = tmp_files[n_tmp_files++];
    snprintf(p, sizeof tmp_files[0], "%s/%s", tmp_dir, name);
    return p;
}

static void write_bytes(const char *path, const void *bytes, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, size, f) != size || fclose(f) != 0) {
        fprintf(stderr, "%s: cannot write\n", path);
        exit(1);
    }
}

static uint8_t *read_bytes(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot read\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: cannot read\n", path);
        exit(1);
    }
    fclose(f);
    *size = (size_t)n;
    return b;
}

// ---- writing PNGs with libpng ----------------------------------------------------------------

/* One PNG variant: samples [h, w, file channels] at the file's bit depth. */
typedef struct png_case {
    const char *name;
    int color, depth, interlace;
    bool trns;
    int width, height;
} png_case;

typedef struct png_content {
    int channels;         /* samples per pixel in the file */
    uint16_t *samples;    /* [h, w, channels] */
    png_color palette[256];
    int palette_size;
    png_byte trans[256];
    int num_trans;
    png_color_16 key;     /* tRNS key for gray (.gray) and RGB */
} png_content;

static int file_channels(int color)
{
    switch (color) {
    case PNG_COLOR_TYPE_GRAY:
    case PNG_COLOR_TYPE_PALETTE:
        return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
        return 2;
    case PNG_COLOR_TYPE_RGB:
        return 3;
    default:
        return 4;
    }
}

static uint16_t sample_value(int x, int y, int c, int depth)
{
    uint32_t v = (uint32_t)(x * 2654435761u) ^ (uint32_t)(y * 40503u + 7) ^ (uint32_t)(c * 97);
    v ^= v >> 13;
    v *= 0x5bd1e995u;
    v ^= v >> 15;
    return (uint16_t)(v & ((1u << depth) - 1));
}

static void make_content(png_content *pc, const png_case *pcase)
{
    memset(pc, 0, sizeof *pc);
    pc->channels = file_channels(pcase->color);
    size_t n = (size_t)pcase->width * (size_t)pcase->height * (size_t)pc->channels;
    pc->samples = malloc(n * sizeof *pc->samples);
    if (pcase->color == PNG_COLOR_TYPE_PALETTE) {
        pc->palette_size = 1 << pcase->depth;
        if (pc->palette_size > 256) {
            pc->palette_size = 256;
        }
        for (int i = 0; i < pc->palette_size; i++) {
            pc->palette[i] = (png_color){(png_byte)(i * 37), (png_byte)(255 - i * 11),
                                         (png_byte)((i * 5) ^ 0x5a)};
            pc->trans[i] = (png_byte)(i * 13 + 1);
        }
        pc->num_trans = pcase->trns ? (pc->palette_size + 1) / 2 : 0;
    }
    for (int y = 0; y < pcase->height; y++) {
        for (int x = 0; x < pcase->width; x++) {
            for (int c = 0; c < pc->channels; c++) {
                size_t i = ((size_t)y * (size_t)pcase->width + (size_t)x) * (size_t)pc->channels;
                pc->samples[i + (size_t)c] = sample_value(x, y, c, pcase->depth);
            }
        }
    }
    if (pcase->trns && pcase->color != PNG_COLOR_TYPE_PALETTE) {
        // The key is the colour of pixel 1; a few more pixels are set to it.
        const uint16_t *s = pc->samples + pc->channels;
        pc->key = (png_color_16){.gray = s[0], .red = s[0],
                                 .green = pc->channels > 1 ? s[1] : 0,
                                 .blue = pc->channels > 2 ? s[2] : 0};
        for (int i = 5; i < pcase->width * pcase->height; i += 7) {
            memcpy(pc->samples + (size_t)i * (size_t)pc->channels, s,
                   (size_t)pc->channels * sizeof *s);
        }
    }
}

typedef struct png_writer {
    png_structp png;
    png_infop info;
    png_bytep *rows;
} png_writer;

static bool write_png_run(png_writer *w, const char *path, const png_case *pcase,
                          const png_content *pc, FILE *f)
{
    if (setjmp(png_jmpbuf(w->png))) {
        fprintf(stderr, "%s: libpng failed to write\n", path);
        return false;
    }
    png_init_io(w->png, f);
    png_set_IHDR(w->png, w->info, (png_uint_32)pcase->width, (png_uint_32)pcase->height,
                 pcase->depth, pcase->color, pcase->interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pcase->color == PNG_COLOR_TYPE_PALETTE) {
        png_set_PLTE(w->png, w->info, pc->palette, pc->palette_size);
        if (pc->num_trans) {
            png_set_tRNS(w->png, w->info, pc->trans, pc->num_trans, NULL);
        }
    } else if (pcase->trns) {
        png_color_16 key = pc->key;
        png_set_tRNS(w->png, w->info, NULL, 0, &key);
    }
    png_write_info(w->png, w->info);
    if (pcase->depth < 8) {
        png_set_packing(w->png); // rows below hold one sample a byte
    }
    png_write_image(w->png, w->rows);
    png_write_end(w->png, NULL);
    return true;
}

static void write_png(const char *path, const png_case *pcase, const png_content *pc)
{
    int bytes = pcase->depth == 16 ? 2 : 1;
    size_t row = (size_t)pcase->width * (size_t)pc->channels * (size_t)bytes;
    uint8_t *data = malloc(row * (size_t)pcase->height);
    png_writer w = {0};
    w.rows = malloc((size_t)pcase->height * sizeof *w.rows);
    for (int y = 0; y < pcase->height; y++) {
        w.rows[y] = data + (size_t)y * row;
        for (size_t i = 0; i < (size_t)pcase->width * (size_t)pc->channels; i++) {
            uint16_t v = pc->samples[(size_t)y * (size_t)pcase->width * (size_t)pc->channels + i];
            if (bytes == 2) {
                w.rows[y][2 * i] = (uint8_t)(v >> 8); // PNG is big-endian
                w.rows[y][2 * i + 1] = (uint8_t)v;
            } else {
                w.rows[y][i] = (uint8_t)v;
            }
        }
    }
    FILE *f = fopen(path, "wb");
    w.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    w.info = w.png ? png_create_info_struct(w.png) : NULL;
    bool ok = f && w.info && write_png_run(&w, path, pcase, pc, f);
    png_destroy_write_struct(&w.png, &w.info);
    if (f) {
        fclose(f);
    }
    free(w.rows);
    free(data);
    if (!ok) {
        exit(1);
    }
}

/* What the decoder must return for one pixel: [4] with alpha, and whether
 * the image has alpha at all. */
static bool expected_pixel(uint8_t out[4], const png_case *pcase, const png_content *pc, int x,
                           int y)
{
    const uint16_t *s =
        pc->samples + ((size_t)y * (size_t)pcase->width + (size_t)x) * (size_t)pc->channels;
    int d = pcase->depth;
    // Gray below 8 bits is scaled to 0..255; 16 bits keep the high byte.
    uint8_t v[4];
    for (int c = 0; c < pc->channels; c++) {
        v[c] = d == 16 ? (uint8_t)(s[c] >> 8) : d == 8 ? (uint8_t)s[c]
                                                    : (uint8_t)(s[c] * 255 / ((1 << d) - 1));
    }
    out[3] = 255;
    switch (pcase->color) {
    case PNG_COLOR_TYPE_PALETTE:
        out[0] = pc->palette[s[0]].red;
        out[1] = pc->palette[s[0]].green;
        out[2] = pc->palette[s[0]].blue;
        out[3] = s[0] < pc->num_trans ? pc->trans[s[0]] : 255;
        return pc->num_trans > 0;
    case PNG_COLOR_TYPE_GRAY:
        out[0] = out[1] = out[2] = v[0];
        out[3] = pcase->trns && s[0] == pc->key.gray ? 0 : 255;
        return pcase->trns;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
        out[0] = out[1] = out[2] = v[0];
        out[3] = v[1];
        return true;
    case PNG_COLOR_TYPE_RGB:
        memcpy(out, v, 3);
        out[3] = pcase->trns && s[0] == pc->key.red && s[1] == pc->key.green &&
                         s[2] == pc->key.blue
                     ? 0
                     : 255;
        return pcase->trns;
    default:
        memcpy(out, v, 4);
        return true;
    }
}

static void test_png_variants(void)
{
    static const png_case cases[] = {
        {"gray8", PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE, false, 13, 7},
        {"gray16", PNG_COLOR_TYPE_GRAY, 16, PNG_INTERLACE_NONE, false, 13, 7},
        {"gray1", PNG_COLOR_TYPE_GRAY, 1, PNG_INTERLACE_NONE, false, 19, 5},
        {"gray2", PNG_COLOR_TYPE_GRAY, 2, PNG_INTERLACE_NONE, false, 11, 3},
        {"gray4", PNG_COLOR_TYPE_GRAY, 4, PNG_INTERLACE_NONE, false, 9, 4},
        {"gray8-trns", PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE, true, 13, 7},
        {"gray16-trns", PNG_COLOR_TYPE_GRAY, 16, PNG_INTERLACE_NONE, true, 13, 7},
        {"gray-alpha8", PNG_COLOR_TYPE_GRAY_ALPHA, 8, PNG_INTERLACE_NONE, false, 13, 7},
        {"gray-alpha16", PNG_COLOR_TYPE_GRAY_ALPHA, 16, PNG_INTERLACE_NONE, false, 13, 7},
        {"rgb8", PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_NONE, false, 17, 9},
        {"rgb16", PNG_COLOR_TYPE_RGB, 16, PNG_INTERLACE_NONE, false, 17, 9},
        {"rgb8-trns", PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_NONE, true, 17, 9},
        {"rgba8", PNG_COLOR_TYPE_RGBA, 8, PNG_INTERLACE_NONE, false, 17, 9},
        {"rgba16", PNG_COLOR_TYPE_RGBA, 16, PNG_INTERLACE_NONE, false, 17, 9},
        {"palette8", PNG_COLOR_TYPE_PALETTE, 8, PNG_INTERLACE_NONE, false, 21, 6},
        {"palette4", PNG_COLOR_TYPE_PALETTE, 4, PNG_INTERLACE_NONE, false, 21, 6},
        {"palette8-trns", PNG_COLOR_TYPE_PALETTE, 8, PNG_INTERLACE_NONE, true, 21, 6},
        {"palette2-trns", PNG_COLOR_TYPE_PALETTE, 2, PNG_INTERLACE_NONE, true, 21, 6},
        {"adam7-rgb8", PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7, false, 13, 11},
        {"adam7-rgba16", PNG_COLOR_TYPE_RGBA, 16, PNG_INTERLACE_ADAM7, false, 10, 9},
        {"adam7-gray1", PNG_COLOR_TYPE_GRAY, 1, PNG_INTERLACE_ADAM7, false, 3, 17},
        {"adam7-palette8-trns", PNG_COLOR_TYPE_PALETTE, 8, PNG_INTERLACE_ADAM7, true, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const png_case *pc_case = &cases[i];
        png_content pc;
        make_content(&pc, pc_case);
        char name[64];
        snprintf(name, sizeof name, "%s.png", pc_case->name);
        const char *path = tmp_path(name);
        write_png(path, pc_case, &pc);

        setok_image img;
        setok_error err = {0};
        setok_status st = setok_image_load(&img, path, 0, &err);
        CHECK(st == SETOK_OK, "%s: %s", pc_case->name, err.message);
        if (st == SETOK_OK) {
            uint8_t want[4];
            bool alpha = expected_pixel(want, pc_case, &pc, 0, 0);
            CHECK(img.width == pc_case->width && img.height == pc_case->height &&
                      img.channels == (alpha ? 4 : 3),
                  "%s: got %d x %d x %d", pc_case->name, img.width, img.height, img.channels);
            int bad = 0;
            for (int y = 0; y < img.height && img.channels == (alpha ? 4 : 3); y++) {
                for (int x = 0; x < img.width; x++) {
                    expected_pixel(want, pc_case, &pc, x, y);
                    size_t at = (size_t)y * (size_t)img.width + (size_t)x;
                    const uint8_t *got = img.pixels + at * (size_t)img.channels;
                    if (memcmp(got, want, (size_t)img.channels) != 0 && bad++ == 0) {
                        fprintf(stderr, "%s (%d, %d): got %d %d %d, want %d %d %d %d\n",
                                pc_case->name, x, y, got[0], got[1], got[2], want[0], want[1],
                                want[2], want[3]);
                    }
                }
            }
            CHECK(bad == 0, "%s: %d pixels differ", pc_case->name, bad);
        }
        setok_image_free(&img);
        free(pc.samples);
    }
}

// ---- saving ----------------------------------------------------------------------------------

static void fill_pattern(setok_image *img)
{
    size_t n = (size_t)img->width * (size_t)img->height * (size_t)img->channels;
    for (size_t i = 0; i < n; i++) {
        img->pixels[i] = (uint8_t)(i * 31 + i / 7);
    }
}

static void test_save_round_trip(void)
{
    for (int channels = 1; channels <= 4; channels++) {
        if (channels == 2) {
            continue;
        }
        setok_image img, back;
        setok_error err = {0};
        CHECK(setok_image_alloc(&img, 23, 11, channels, &err) == SETOK_OK, "%s", err.message);
        fill_pattern(&img);
        char name[32];
        snprintf(name, sizeof name, "saved-%d.png", channels);
        const char *path = tmp_path(name);
        CHECK(setok_image_save_png(&img, path, &err) == SETOK_OK, "%s", err.message);
        char tmp[400];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        CHECK(access(tmp, F_OK) != 0, "%s was left behind", tmp);
        CHECK(setok_image_load(&back, path, 0, &err) == SETOK_OK, "%s", err.message);
        CHECK(back.width == 23 && back.height == 11 && back.channels == (channels == 4 ? 4 : 3),
              "round trip %d channels: got %d x %d x %d", channels, back.width, back.height,
              back.channels);
        bool same = back.channels == (channels == 4 ? 4 : 3);
        for (size_t i = 0; same && i < 23 * 11; i++) {
            for (int c = 0; c < back.channels; c++) {
                int src_c = channels == 1 ? 0 : c;
                same = same && back.pixels[i * (size_t)back.channels + (size_t)c] ==
                                   img.pixels[i * (size_t)channels + (size_t)src_c];
            }
        }
        CHECK(same, "round trip %d channels: pixels differ", channels);
        setok_image_free(&img);
        setok_image_free(&back);
    }
    // A folder that does not exist: a runtime failure naming the path, no file left.
    setok_image img;
    setok_error err = {0};
    setok_image_alloc(&img, 2, 2, 3, &err);
    char path[400];
    snprintf(path, sizeof path, "%s/no-such-dir/out.png", tmp_dir);
    CHECK(setok_image_save_png(&img, path, &err) == SETOK_ERR_RUNTIME, "saved into a missing dir");
    CHECK(strstr(err.message, "no-such-dir/out.png") != NULL, "message: %s", err.message);
    setok_image bad = {.width = 2, .height = 2, .channels = 2, .pixels = img.pixels};
    CHECK(setok_image_save_png(&bad, tmp_path("two.png"), &err) == SETOK_ERR_INPUT,
          "saved a 2-channel image");
    setok_image_free(&img);
}

// ---- JPEG --------------------------------------------------------------------------------------

/* Writes a w x h JPEG (3 or 1 components) of a smooth pattern with libjpeg. */
static void write_jpeg(const char *path, int w, int h, int components)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "%s: cannot write\n", path);
        exit(1);
    }
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = components;
    cinfo.in_color_space = components == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 95, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    uint8_t *row = malloc((size_t)w * (size_t)components);
    while (cinfo.next_scanline < cinfo.image_height) {
        int y = (int)cinfo.next_scanline;
        for (int x = 0; x < w; x++) {
            for (int c = 0; c < components; c++) {
                row[x * components + c] = (uint8_t)(40 + x * 2 + y * 2 + c * 30);
            }
        }
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    fclose(f);
    free(row);
}

static void test_jpeg(void)
{
    for (int components = 1; components <= 3; components += 2) {
        const char *path = tmp_path(components == 3 ? "rgb.jpg" : "gray.jpg");
        write_jpeg(path, 40, 24, components);
        setok_image img;
        setok_error err = {0};
        CHECK(setok_image_load(&img, path, 0, &err) == SETOK_OK, "%s", err.message);
        CHECK(img.width == 40 && img.height == 24 && img.channels == 3, "got %d x %d x %d",
              img.width, img.height, img.channels);
        int worst = 0;
        bool gray_equal = true;
        for (int y = 0; y < img.height && img.pixels; y++) {
            for (int x = 0; x < img.width; x++) {
                const uint8_t *p = img.pixels + ((size_t)y * 40 + (size_t)x) * 3;
                for (int c = 0; c < 3; c++) {
                    int want = 40 + x * 2 + y * 2 + (components == 3 ? c * 30 : 0);
                    int d = abs(p[c] - want);
                    worst = d > worst ? d : worst;
                }
                gray_equal = gray_equal && (components == 3 || (p[0] == p[1] && p[1] == p[2]));
            }
        }
        // A smooth pattern at quality 95: a few levels of error at most.
        CHECK(worst <= 6, "%s: max abs diff %d", path, worst);
        CHECK(gray_equal, "%s: gray JPEG not replicated", path);
        setok_image_free(&img);
    }
}

// ---- bad input -------------------------------------------------------------------------------

static void expect_input_error(const char *path, size_t max_pixels, const char *fragment)
{
    setok_image img = {.width = 99};
    setok_error err = {0};
    setok_status st = setok_image_load(&img, path, max_pixels, &err);
    CHECK(st == SETOK_ERR_INPUT, "%s: status %d (%s)", path, (int)st, err.message);
    CHECK(strstr(err.message, path) != NULL, "%s: message does not name the file: %s", path,
          err.message);
    CHECK(!fragment || strstr(err.message, fragment) != NULL, "%s: expected \"%s\" in: %s", path,
          fragment, err.message);
    CHECK(img.pixels == NULL && img.width == 0, "%s: image not cleared on failure", path);
    printf("  %s\n", err.message);
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = crc & 1 ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
        }
    }
    return ~crc;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static size_t find_chunk(const uint8_t *b, size_t n, const char *type)
{
    for (size_t i = 8; i + 4 <= n; i++) {
        if (memcmp(b + i, type, 4) == 0) {
            return i;
        }
    }
    fprintf(stderr, "chunk %s not found\n", type);
    exit(1);
}

static void test_bad_input(void)
{
    printf("bad input messages:\n");
    size_t size;
    const char *good_png = tmp_path("good.png");
    {
        png_case pcase = {"good", PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_NONE, false, 64, 48};
        png_content pc;
        make_content(&pc, &pcase);
        write_png(good_png, &pcase, &pc);
        free(pc.samples);
    }
    uint8_t *png = read_bytes(good_png, &size);

    const char *truncated = tmp_path("truncated.png");
    write_bytes(truncated, png, size / 2);
    expect_input_error(truncated, 0, "corrupt PNG data");

    // A damaged CRC of IDAT: libpng's CRC check.
    size_t idat = find_chunk(png, size, "IDAT");
    uint32_t len = (uint32_t)png[idat - 4] << 24 | (uint32_t)png[idat - 3] << 16 |
                   (uint32_t)png[idat - 2] << 8 | png[idat - 1];
    png[idat + 4 + len] ^= 0x55;
    const char *bad_crc = tmp_path("bad-crc.png");
    write_bytes(bad_crc, png, size);
    expect_input_error(bad_crc, 0, "IDAT: CRC error");
    png[idat + 4 + len] ^= 0x55;

    // A flipped byte inside the IDAT data (the CRC no longer matches either).
    png[idat + 30] ^= 0x55;
    const char *bad_idat = tmp_path("bad-idat.png");
    write_bytes(bad_idat, png, size);
    expect_input_error(bad_idat, 0, "corrupt PNG data: IDAT");
    png[idat + 30] ^= 0x55;

    // The same damage with a matching CRC: zlib sees corrupt data.
    png[idat + 4] ^= 0x0f; // the zlib header
    put_be32(png + idat + 4 + len, crc32_of(png + idat, 4 + (size_t)len));
    const char *bad_zlib = tmp_path("bad-zlib.png");
    write_bytes(bad_zlib, png, size);
    expect_input_error(bad_zlib, 0, "corrupt PNG data");
    free(png);

    // An IHDR claiming 100000 x 100000: refused on the pixel guard before any decoding.
    {
        uint8_t huge[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                            'I', 'H', 'D', 'R'};
        put_be32(huge + 16, 100000);
        put_be32(huge + 20, 100000);
        huge[24] = 8; // depth
        huge[25] = 2; // RGB
        put_be32(huge + 29, crc32_of(huge + 12, 17));
        const char *path = tmp_path("huge.png");
        write_bytes(path, huge, sizeof huge);
        expect_input_error(path, 0,
                           "image is 100000 x 100000 = 10000000000 pixels, more than the limit "
                           "of 89478485");
    }
    // The caller's own limit.
    expect_input_error(good_png, 64 * 48 - 1, "more than the limit of 3071");
    {
        setok_image img;
        setok_error err = {0};
        CHECK(setok_image_load(&img, good_png, 64 * 48, &err) == SETOK_OK,
              "exactly at the limit: %s", err.message);
        setok_image_free(&img);
    }

    const char *good_jpg = tmp_path("good.jpg");
    write_jpeg(good_jpg, 64, 48, 3);
    uint8_t *jpg = read_bytes(good_jpg, &size);
    const char *truncated_jpg = tmp_path("truncated.jpg");
    write_bytes(truncated_jpg, jpg, size * 2 / 3);
    expect_input_error(truncated_jpg, 0, "Premature end of JPEG file");
    for (size_t i = 2; i < size; i++) {
        jpg[i] = (uint8_t)(i * 7 + 3); // garbage after the SOI marker
    }
    const char *garbage_jpg = tmp_path("garbage.jpg");
    write_bytes(garbage_jpg, jpg, size);
    expect_input_error(garbage_jpg, 0, "corrupt JPEG data");
    free(jpg);

    const char *empty = tmp_path("empty.png");
    write_bytes(empty, "", 0);
    expect_input_error(empty, 0, "file is empty");
    const char *text = tmp_path("notes.png");
    write_bytes(text, "just some text\n", 15);
    expect_input_error(text, 0, "not a PNG or JPEG file");
    expect_input_error(tmp_path("does-not-exist.png"), 0, "No such file");
    expect_input_error(tmp_dir, 0, "is a directory");

    setok_error err = {0};
    setok_image img;
    CHECK(setok_image_decode(&img, "\xff\xd8", 2, "two-bytes.jpg", 0, &err) == SETOK_ERR_INPUT &&
              strstr(err.message, "two-bytes.jpg") != NULL,
          "2-byte JPEG: %s", err.message);
}

// ---- HF image math ---------------------------------------------------------------------------

/* transformers' center_crop, step by step: pad to at least the crop with
 * ceil((new - old) / 2) zeros before, then crop at floor((padded - crop) / 2). */
static uint8_t hf_crop_pixel(const setok_image *src, int cw, int ch, int x, int y, int c)
{
    int top = (src->height - ch) >= 0 ? (src->height - ch) / 2 : -((ch - src->height + 1) / 2);
    int left = (src->width - cw) >= 0 ? (src->width - cw) / 2 : -((cw - src->width + 1) / 2);
    int nh = ch > src->height ? ch : src->height, nw = cw > src->width ? cw : src->width;
    int top_pad = (nh - src->height + 1) / 2, left_pad = (nw - src->width + 1) / 2;
    int py = y + top + top_pad, px = x + left + left_pad; // position in the padded image
    int sy = py - top_pad, sx = px - left_pad;
    if (sy < 0 || sy >= src->height || sx < 0 || sx >= src->width) {
        return 0;
    }
    return src->pixels[((size_t)sy * (size_t)src->width + (size_t)sx) * (size_t)src->channels +
                       (size_t)c];
}

static void test_center_crop(void)
{
    static const int sizes[][4] = {
        {5, 4, 3, 2}, {6, 5, 3, 2}, {6, 6, 4, 4}, {7, 5, 7, 5}, {3, 2, 6, 5},
        {4, 3, 7, 8}, {9, 3, 4, 6}, {3, 9, 6, 4}, {1, 1, 2, 3}, {8, 8, 1, 1},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        setok_image src, dst;
        setok_error err = {0};
        setok_image_alloc(&src, sizes[i][0], sizes[i][1], 3, &err);
        fill_pattern(&src);
        int cw = sizes[i][2], ch = sizes[i][3];
        CHECK(setok_image_center_crop(&dst, &src, cw, ch, &err) == SETOK_OK, "%s", err.message);
        int bad = 0;
        for (int y = 0; y < ch; y++) {
            for (int x = 0; x < cw; x++) {
                for (int c = 0; c < 3; c++) {
                    bad += dst.pixels[((size_t)y * (size_t)cw + (size_t)x) * 3 + (size_t)c] !=
                           hf_crop_pixel(&src, cw, ch, x, y, c);
                }
            }
        }
        CHECK(dst.width == cw && dst.height == ch && bad == 0, "crop %dx%d -> %dx%d: %d bad",
              sizes[i][0], sizes[i][1], cw, ch, bad);
        setok_image_free(&src);
        setok_image_free(&dst);
    }
    // Hand-checked: 3x2 padded into 6x5 sits at column 2 (ceil(3/2)), row 2 (ceil(3/2)).
    setok_image src, dst;
    setok_error err = {0};
    setok_image_alloc(&src, 3, 2, 1, &err);
    memset(src.pixels, 7, 6);
    setok_image_center_crop(&dst, &src, 6, 5, &err);
    CHECK(dst.pixels[0] == 0 && dst.pixels[2 * 6 + 2] == 7 && dst.pixels[3 * 6 + 4] == 7 &&
              dst.pixels[3 * 6 + 5] == 0 && dst.pixels[4 * 6 + 2] == 0 &&
              dst.pixels[1 * 6 + 2] == 0,
          "padding position");
    setok_image_free(&dst);
    CHECK(setok_image_center_crop(&dst, &src, 0, 5, &err) == SETOK_ERR_INPUT, "zero-width crop");
    setok_image_free(&src);
}

static void test_to_rgb_normalize(void)
{
    setok_image gray, rgba, rgb, out;
    setok_error err = {0};
    setok_image_alloc(&gray, 2, 1, 1, &err);
    gray.pixels[0] = 10;
    gray.pixels[1] = 200;
    CHECK(setok_image_to_rgb(&out, &gray, &err) == SETOK_OK && out.channels == 3 &&
              out.pixels[0] == 10 && out.pixels[2] == 10 && out.pixels[3] == 200 &&
              out.pixels[5] == 200,
          "gray -> rgb");
    setok_image_free(&out);
    setok_image_alloc(&rgba, 2, 1, 4, &err);
    const uint8_t px[8] = {1, 2, 3, 0, 250, 251, 252, 128};
    memcpy(rgba.pixels, px, 8);
    CHECK(setok_image_to_rgb(&out, &rgba, &err) == SETOK_OK && out.channels == 3 &&
              memcmp(out.pixels, "\x01\x02\x03\xfa\xfb\xfc", 6) == 0,
          "rgba -> rgb drops alpha");
    CHECK(setok_image_to_rgb(&rgb, &out, &err) == SETOK_OK &&
              memcmp(rgb.pixels, out.pixels, 6) == 0,
          "rgb -> rgb copies");
    CHECK(setok_image_to_rgb(&out, &out, &err) == SETOK_ERR_INPUT, "in place is refused");

    // out [3, H, W] = (p / 255 - mean) / std
    const float mean[3] = {0.5f, 0.25f, 0.0f}, std[3] = {0.5f, 0.25f, 2.0f};
    float norm[6];
    CHECK(setok_image_normalize(norm, &rgb, 1.0f / 255.0f, mean, std, &err) == SETOK_OK, "%s",
          err.message);
    const uint8_t *p = rgb.pixels;
    float worst = 0;
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < 2; i++) {
            float want = (p[i * 3 + c] / 255.0f - mean[c]) / std[c];
            worst = fmaxf(worst, fabsf(norm[c * 2 + i] - want));
        }
    }
    CHECK(worst < 1e-6f, "normalize: max abs diff %g", (double)worst);
    CHECK(setok_image_normalize(norm, &gray, 1.0f, mean, std, &err) == SETOK_ERR_INPUT,
          "normalize accepts only RGB");
    setok_image_free(&gray);
    setok_image_free(&rgba);
    setok_image_free(&rgb);
    setok_image_free(&out);
}

static void test_shortest_edge(void)
{
    static const int cases[][5] = {
        {640, 480, 336, 448, 336}, {480, 640, 336, 336, 448}, {333, 517, 224, 224, 347},
        {336, 336, 336, 336, 336}, {1000, 3, 10, 3333, 10},   {4032, 3024, 224, 298, 224},
        {1, 1, 7, 7, 7},           {0, 5, 7, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int w, h;
        setok_image_shortest_edge_size(cases[i][0], cases[i][1], cases[i][2], &w, &h);
        CHECK(w == cases[i][3] && h == cases[i][4], "%d x %d, %d: got %d x %d", cases[i][0],
              cases[i][1], cases[i][2], w, h);
    }
}

/* Invariants of the resampler (its exact values are checked against PIL in
 * tests/reference): a flat image stays flat, sizes and channels are right,
 * for every filter, channel count and pass combination. */
static void test_resize_invariants(void)
{
    static const int sizes[][4] = {
        {37, 23, 11, 7}, {37, 23, 80, 50}, {37, 23, 37, 5}, {37, 23, 3, 23},
        {37, 23, 40, 2}, {5, 90, 4, 9},    {1, 1, 6, 4},    {37, 23, 1, 1},
    };
    for (int f = SETOK_RESAMPLE_NEAREST; f <= SETOK_RESAMPLE_LANCZOS; f++) {
        for (int channels = 1; channels <= 4; channels++) {
            if (channels == 2) {
                continue;
            }
            for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
                setok_image src, dst;
                setok_error err = {0};
                setok_image_alloc(&src, sizes[i][0], sizes[i][1], channels, &err);
                const uint8_t colour[4] = {200, 17, 99, 255};
                for (size_t p = 0; p < (size_t)src.width * (size_t)src.height; p++) {
                    memcpy(src.pixels + p * (size_t)channels, colour, (size_t)channels);
                }
                setok_status st = setok_image_resize(&dst, &src, sizes[i][2], sizes[i][3],
                                                     (setok_resample)f, &err);
                bool flat = st == SETOK_OK && dst.width == sizes[i][2] &&
                            dst.height == sizes[i][3] && dst.channels == channels;
                for (size_t p = 0; flat && p < (size_t)dst.width * (size_t)dst.height; p++) {
                    flat = memcmp(dst.pixels + p * (size_t)channels, colour, (size_t)channels) == 0;
                }
                CHECK(flat, "filter %d, %d channels, %dx%d -> %dx%d: %s", f, channels,
                      sizes[i][0], sizes[i][1], sizes[i][2], sizes[i][3], err.message);
                setok_image_free(&src);
                setok_image_free(&dst);
            }
        }
    }
    setok_image src, dst;
    setok_error err = {0};
    setok_image_alloc(&src, 4, 4, 3, &err);
    CHECK(setok_image_resize(&dst, &src, 0, 4, SETOK_RESAMPLE_BILINEAR, &err) == SETOK_ERR_INPUT,
          "zero width");
    CHECK(setok_image_resize(&dst, &src, 4, 4, (setok_resample)9, &err) == SETOK_ERR_INPUT,
          "unknown filter");
    CHECK(setok_image_alloc(&dst, INT_MAX, INT_MAX, 4, &err) == SETOK_ERR_INPUT, "huge alloc");
    CHECK(setok_image_alloc(&dst, 4, 4, 2, &err) == SETOK_ERR_INPUT, "2 channels");
    setok_image_free(&src);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/setok-test-image-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror(tmp_dir);
        return 1;
    }
    test_png_variants();
    test_save_round_trip();
    test_jpeg();
    test_bad_input();
    test_center_crop();
    test_to_rgb_normalize();
    test_shortest_edge();
    test_resize_invariants();

    for (int i = 0; i < n_tmp_files; i++) {
        remove(tmp_files[i]);
    }
    rmdir(tmp_dir);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
