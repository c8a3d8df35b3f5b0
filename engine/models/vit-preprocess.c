/* vit-preprocess.c — the vision tower's image preprocessing, mirroring
 * transformers' CLIPImageProcessor and SiglipImageProcessor as their PIL
 * backends run them (image_processing_pil_clip.py, image_processing_pil_siglip.py,
 * image_processing_backends.py PilBackend): convert to RGB, resize, center
 * crop, rescale, normalize, in that order. The image math is image.h's, which
 * matches PIL; the settings come from processor_config.json's image_processor
 * (how transformers 5 saves a processor) or preprocessor_config.json, in
 * transformers' order, and their keys follow HF's get_size_dict rules.
 * Before them, a non-square image may be padded to a square (setok_image_fit:
 * LLaVA-1.5's expand2square), so that no part of it is cropped away. */
#include "setok/models/vit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "setok/config.h"

void setok_vit_preprocessor_defaults(setok_vit_preprocessor *pp, setok_vit_arch arch)
{
    bool clip = arch == SETOK_VIT_CLIP;
    *pp = (setok_vit_preprocessor){
        .do_convert_rgb = true,
        .do_resize = true,
        .do_center_crop = clip,
        .do_rescale = true,
        .do_normalize = true,
        .shortest_edge = clip ? 224 : 0,
        .resize_width = clip ? 0 : 224,
        .resize_height = clip ? 0 : 224,
        .crop_width = clip ? 224 : 0,
        .crop_height = clip ? 224 : 0,
        .resample = SETOK_RESAMPLE_BICUBIC,
        .rescale_factor = 1.0 / 255.0,
    };
    /* OPENAI_CLIP_MEAN / _STD and IMAGENET_STANDARD_MEAN / _STD */
    static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    for (int c = 0; c < 3; c++) {
        pp->mean[c] = clip ? clip_mean[c] : 0.5f;
        pp->std[c] = clip ? clip_std[c] : 0.5f;
    }
}

/* Whether object item has key with a non-null value. */
static bool has_value(const cJSON *item, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, key);
    return v && !cJSON_IsNull(v);
}

/* "size" / "crop_size": an int (size: the shortest edge, as both classes have
 * default_to_square = False; crop_size: a square), {"shortest_edge"},
 * {"height", "width"} or [height, width]. Absent or null keeps the default. */
static setok_status read_size(const setok_config *json, const char *key, bool crop,
                              setok_vit_preprocessor *pp, setok_error *err)
{
    const char *path = setok_config_path(json);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(setok_config_root(json), key);
    int64_t h = 0, w = 0, edge = 0;
    setok_status st = SETOK_OK;
    if (!item || cJSON_IsNull(item))
        return SETOK_OK;
    if (cJSON_IsNumber(item)) {
        st = setok_config_int(json, key, crop ? &h : &edge, err);
        w = h;
    } else if (cJSON_IsArray(item)) {
        int64_t hw[2];
        size_t n = 0;
        st = setok_config_int_array(json, key, hw, 2, &n, err);
        if (st == SETOK_OK && n != 2)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: %s must list [height, width]", path, key);
        h = hw[0];
        w = hw[1];
    } else if (cJSON_IsObject(item)) {
        int keys = 0;
        for (const cJSON *e = item->child; e; e = e->next)
            keys += !cJSON_IsNull(e);
        char sub[64];
        if (!crop && keys == 1 && has_value(item, "shortest_edge")) {
            snprintf(sub, sizeof sub, "%s.shortest_edge", key);
            st = setok_config_int(json, sub, &edge, err);
        } else if (keys == 2 && has_value(item, "height") && has_value(item, "width")) {
            snprintf(sub, sizeof sub, "%s.height", key);
            st = setok_config_int(json, sub, &h, err);
            snprintf(sub, sizeof sub, "%s.width", key);
            if (st == SETOK_OK)
                st = setok_config_int(json, sub, &w, err);
        } else {
            return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s must be {\"height\", "
                              "\"width\"}%s", path, key, crop ? "" : " or {\"shortest_edge\"}");
        }
    } else {
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s must be a number, a list or an object",
                          path, key);
    }
    if (st != SETOK_OK)
        return st;
    const int64_t max = 1 << 15;
    bool ok = edge ? edge > 0 && edge <= max : h > 0 && w > 0 && h <= max && w <= max;
    if (!ok)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s must be positive and at most %lld", path,
                          key, (long long)max);
    if (crop) {
        pp->crop_width = (int)w;
        pp->crop_height = (int)h;
    } else {
        pp->shortest_edge = (int)edge;
        pp->resize_width = (int)w;
        pp->resize_height = (int)h;
    }
    return SETOK_OK;
}

static setok_status parse(setok_vit_preprocessor *pp, const setok_config *json,
                          setok_vit_arch arch, setok_error *err)
{
    const char *path = setok_config_path(json), *type = NULL, *legacy = NULL;
    setok_status st = setok_config_string_or(json, "image_processor_type", NULL, &type, err);
    if (st == SETOK_OK)
        st = setok_config_string_or(json, "feature_extractor_type", NULL, &legacy, err);
    if (st != SETOK_OK)
        return st;
    type = type ? type : legacy;
    if (type && !strncmp(type, "Siglip", 6))
        arch = SETOK_VIT_SIGLIP;
    else if (type && !strncmp(type, "CLIP", 4))
        arch = SETOK_VIT_CLIP;
    setok_vit_preprocessor_defaults(pp, arch);
    struct {
        const char *key;
        bool *value;
    } flags[] = {
        {"do_convert_rgb", &pp->do_convert_rgb}, {"do_resize", &pp->do_resize},
        {"do_center_crop", &pp->do_center_crop}, {"do_rescale", &pp->do_rescale},
        {"do_normalize", &pp->do_normalize},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0] && st == SETOK_OK; i++)
        st = setok_config_bool_or(json, flags[i].key, *flags[i].value, flags[i].value, err);
    int64_t resample = 3;
    if (st == SETOK_OK)
        st = setok_config_int_or(json, "resample", 3, &resample, err);
    if (st != SETOK_OK)
        return st;
    /* PIL's Image.Resampling codes */
    if (resample == 0)
        pp->resample = SETOK_RESAMPLE_NEAREST;
    else if (resample == 2)
        pp->resample = SETOK_RESAMPLE_BILINEAR;
    else if (resample == 3)
        pp->resample = SETOK_RESAMPLE_BICUBIC;
    else
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: resample %lld is not NEAREST (0), "
                          "BILINEAR (2) or BICUBIC (3)", path, (long long)resample);
    st = read_size(json, "size", false, pp, err);
    if (st == SETOK_OK)
        st = read_size(json, "crop_size", true, pp, err);
    if (st == SETOK_OK)
        st = setok_config_double_or(json, "rescale_factor", pp->rescale_factor,
                                    &pp->rescale_factor, err);
    if (st == SETOK_OK)
        st = setok_config_channels_or(json, "image_mean", pp->mean, err);
    if (st == SETOK_OK)
        st = setok_config_channels_or(json, "image_std", pp->std, err);
    for (int c = 0; c < 3 && st == SETOK_OK; c++)
        if (pp->do_normalize && !(pp->std[c] != 0.0f))
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: image_std[%d] is 0", path, c);
    if (st == SETOK_OK && pp->do_center_crop && pp->crop_width <= 0)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: do_center_crop is set but crop_size is not",
                        path);
    return st;
}

/* Whether dir/processor_config.json exists and holds an image_processor entry; a file that
 * is not JSON counts as holding one, so that loading it reports what is wrong. */
static bool processor_config_has_settings(const char *dir)
{
    setok_config *json = NULL;
    setok_error ignored = {0};
    setok_status st = setok_config_load_in(&json, dir, "processor_config.json", true, &ignored);
    bool yes = st != SETOK_OK ||
               (json && cJSON_GetObjectItemCaseSensitive(setok_config_root(json),
                                                         "image_processor"));
    setok_config_free(json);
    return yes;
}

const char *setok_vit_preprocessor_file(const char *dir)
{
    if (processor_config_has_settings(dir))
        return "processor_config.json";
    return setok_has_file(dir, "preprocessor_config.json") ? "preprocessor_config.json" : NULL;
}

/* processor_config.json's image_processor object as a config of its own, named
 * "DIR/processor_config.json (image_processor)" in its errors. */
static setok_status load_nested(setok_config **out, const char *dir, setok_error *err)
{
    setok_config *outer = NULL;
    *out = NULL;
    setok_status st = setok_config_load_in(&outer, dir, "processor_config.json", false, err);
    if (st != SETOK_OK)
        return st;
    const char *path = setok_config_path(outer);
    const cJSON *ip = cJSON_GetObjectItemCaseSensitive(setok_config_root(outer), "image_processor");
    char *text = cJSON_IsObject(ip) ? cJSON_PrintUnformatted(ip) : NULL;
    size_t n = strlen(path) + sizeof " (image_processor)";
    char *name = malloc(n);
    if (!cJSON_IsObject(ip))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: image_processor must be an object of image "
                        "processor settings, got %s", path,
                        cJSON_IsNull(ip) ? "null" : cJSON_IsString(ip) ? "a string"
                        : cJSON_IsArray(ip) ? "an array" : cJSON_IsBool(ip) ? "a boolean"
                        : "a number");
    else if (!text || !name)
        st = setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    if (st == SETOK_OK) {
        snprintf(name, n, "%s (image_processor)", path);
        st = setok_config_parse(out, text, name, err);
    }
    free(name);
    cJSON_free(text);
    setok_config_free(outer);
    return st;
}

setok_status setok_vit_preprocessor_load(setok_vit_preprocessor *pp, const char *dir,
                                         setok_vit_arch arch, setok_error *err)
{
    const char *file = setok_vit_preprocessor_file(dir);
    setok_config *json = NULL;
    setok_status st = SETOK_OK;
    if (!file)
        setok_vit_preprocessor_defaults(pp, arch);
    else if (!strcmp(file, "processor_config.json"))
        st = load_nested(&json, dir, err);
    else
        st = setok_config_load_in(&json, dir, file, false, err);
    if (st == SETOK_OK && json)
        st = parse(pp, json, arch, err);
    setok_config_free(json);
    return st;
}

/* The size resize() gives an image of width x height. */
static void resize_size(const setok_vit_preprocessor *pp, int width, int height, int *w, int *h)
{
    if (pp->shortest_edge > 0) {
        setok_image_shortest_edge_size(width, height, pp->shortest_edge, w, h);
    } else {
        *w = pp->resize_width;
        *h = pp->resize_height;
    }
}

void setok_vit_preprocess_size(const setok_vit_preprocessor *pp, int width, int height,
                               int *out_w, int *out_h)
{
    int w = width, h = height;
    if (pp->do_resize)
        resize_size(pp, width, height, &w, &h);
    if (pp->do_center_crop) {
        w = pp->crop_width;
        h = pp->crop_height;
    }
    *out_w = w;
    *out_h = h;
}

/* RGBA -> RGB over opaque white: PIL's Image.alpha_composite(white, img), whose 7-bit
 * fixed point reduces, for a background of alpha 255, to the rounding below. */
static setok_status composite_on_white(setok_image *dst, const setok_image *src,
                                       setok_error *err)
{
    setok_status st = setok_image_alloc(dst, src->width, src->height, 3, err);
    if (st != SETOK_OK)
        return st;
    size_t n = (size_t)src->width * (size_t)src->height;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = src->pixels + 4 * i;
        uint32_t a = s[3];
        for (int c = 0; c < 3; c++) {
            uint32_t v = 255;
            if (a) {
                uint32_t t = ((s[c] * a + 255u * (255u - a)) << 7) + (128u << 7);
                v = (((t >> 8) + t) >> 8) >> 7;
            }
            dst->pixels[3 * i + (size_t)c] = (uint8_t)v;
        }
    }
    return SETOK_OK;
}

setok_status setok_vit_preprocess(const setok_vit_preprocessor *pp, float *out, size_t out_floats,
                                  const setok_image *img, setok_error *err)
{
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0)
        return setok_fail(err, SETOK_ERR_INPUT, "vit preprocess: empty image");
    if (img->channels != 3 && !(pp->do_convert_rgb && (img->channels == 1 || img->channels == 4)))
        return setok_fail(err, SETOK_ERR_INPUT, "vit preprocess: image has %d channels and "
                          "do_convert_rgb is %s", img->channels,
                          pp->do_convert_rgb ? "set" : "off");
    setok_image rgb = {0}, resized = {0}, cropped = {0};
    const setok_image *cur = img;
    setok_status st = SETOK_OK;
    if (img->channels == 4)
        st = composite_on_white(&rgb, img, err);
    else if (img->channels == 1)
        st = setok_image_to_rgb(&rgb, img, err);
    cur = rgb.pixels ? &rgb : img;
    int w, h;
    setok_vit_preprocess_size(pp, img->width, img->height, &w, &h);
    if (st == SETOK_OK && pp->do_resize) {
        int rw, rh;
        resize_size(pp, cur->width, cur->height, &rw, &rh);
        st = setok_image_resize(&resized, cur, rw, rh, pp->resample, err);
        cur = &resized;
    }
    if (st == SETOK_OK && pp->do_center_crop) {
        st = setok_image_center_crop(&cropped, cur, pp->crop_width, pp->crop_height, err);
        cur = &cropped;
    }
    if (st == SETOK_OK && out_floats < 3 * (size_t)w * (size_t)h)
        st = setok_fail(err, SETOK_ERR_INPUT, "vit preprocess: output holds %zu floats, the "
                        "image needs 3 x %d x %d", out_floats, h, w);
    if (st == SETOK_OK) {
        static const float zero[3] = {0.0f, 0.0f, 0.0f}, one[3] = {1.0f, 1.0f, 1.0f};
        float scale = pp->do_rescale ? (float)pp->rescale_factor : 1.0f;
        st = setok_image_normalize(out, cur, scale, pp->do_normalize ? pp->mean : zero,
                                   pp->do_normalize ? pp->std : one, err);
    }
    setok_image_free(&rgb);
    setok_image_free(&resized);
    setok_image_free(&cropped);
    return st;
}

/* ---- whole images: padding to a square ---------------------------------------------------- */

const char *setok_image_fit_name(setok_image_fit fit)
{
    switch (fit) {
    case SETOK_IMAGE_FIT_PAD:
        return "pad";
    case SETOK_IMAGE_FIT_CROP:
        return "crop";
    default:
        return "?";
    }
}

setok_image_fit setok_image_fit_from_name(const char *name)
{
    for (int f = 0; f < SETOK_IMAGE_FIT_COUNT; f++)
        if (name && !strcmp(name, setok_image_fit_name((setok_image_fit)f)))
            return (setok_image_fit)f;
    return SETOK_IMAGE_FIT_COUNT;
}

void setok_image_fit_square(int width, int height, int *side, int *off_x, int *off_y)
{
    *side = width > height ? width : height;
    *off_x = (*side - width) / 2;
    *off_y = (*side - height) / 2;
}

void setok_vit_preprocess_fit_size(const setok_vit_preprocessor *pp, setok_image_fit fit,
                                   int width, int height, int *out_w, int *out_h)
{
    if (fit == SETOK_IMAGE_FIT_PAD) {
        int side, ox, oy;
        setok_image_fit_square(width, height, &side, &ox, &oy);
        width = height = side;
    }
    setok_vit_preprocess_size(pp, width, height, out_w, out_h);
}

/* img as RGB on a square of the processor's mean colour, int(mean * 255) per
 * channel as LLaVA computes its background (truncated, not rounded). */
static setok_status pad_square(setok_image *dst, const setok_image *img,
                               const setok_vit_preprocessor *pp, setok_error *err)
{
    setok_image rgb = {0};
    setok_status st = SETOK_OK;
    if (img->channels == 4)
        st = composite_on_white(&rgb, img, err);
    else if (img->channels == 1)
        st = setok_image_to_rgb(&rgb, img, err);
    const setok_image *src = rgb.pixels ? &rgb : img;
    int side, ox, oy;
    setok_image_fit_square(src->width, src->height, &side, &ox, &oy);
    if (st == SETOK_OK)
        st = setok_image_alloc(dst, side, side, 3, err);
    if (st == SETOK_OK) {
        uint8_t fill[3];
        for (int c = 0; c < 3; c++) {
            float v = pp->mean[c] * 255.0f;
            fill[c] = (uint8_t)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)v);
        }
        for (size_t i = 0; i < (size_t)side * (size_t)side; i++)
            memcpy(dst->pixels + 3 * i, fill, 3);
        for (int y = 0; y < src->height; y++)
            memcpy(dst->pixels + ((size_t)(y + oy) * side + (size_t)ox) * 3,
                   src->pixels + (size_t)y * src->width * 3, (size_t)src->width * 3);
    }
    setok_image_free(&rgb);
    return st;
}

setok_status setok_vit_preprocess_fit(const setok_vit_preprocessor *pp, setok_image_fit fit,
                                      float *out, size_t out_floats, const setok_image *img,
                                      setok_error *err)
{
    if (fit != SETOK_IMAGE_FIT_PAD || !img || !img->pixels || img->width <= 0 ||
        img->height <= 0 || img->width == img->height)
        return setok_vit_preprocess(pp, out, out_floats, img, err);
    if (img->channels != 3 && !(pp->do_convert_rgb && (img->channels == 1 || img->channels == 4)))
        return setok_vit_preprocess(pp, out, out_floats, img, err); /* its error */
    setok_image square = {0};
    setok_status st = pad_square(&square, img, pp, err);
    if (st == SETOK_OK)
        st = setok_vit_preprocess(pp, out, out_floats, &square, err);
    setok_image_free(&square);
    return st;
}
