/* sam-preprocess.c — SAM's image processor, mirroring transformers'
 * SamImageProcessor as its PIL backend runs it (image_processing_pil_sam.py:
 * convert to RGB, resize the longest side, rescale, normalize, pad bottom and
 * right with zeros) and SamProcessor's coordinate scaling, and its
 * post_process_masks (bilinear up to the padded frame, crop, bilinear to the
 * original size, > 0) with PyTorch's float32 interpolation arithmetic. The
 * resize and normalization are the vision tower's (vit-preprocess.c), which
 * match PIL. */
#include "setok/models/sam_vision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "setok/config.h"
#include "setok/models/vit.h"

#include "sam-impl.h"

void setok_sam_preprocessor_defaults(setok_sam_preprocessor *pp, int image_size)
{
    /* IMAGENET_DEFAULT_MEAN / _STD */
    *pp = (setok_sam_preprocessor){
        .do_convert_rgb = true,
        .do_resize = true,
        .do_rescale = true,
        .do_normalize = true,
        .do_pad = true,
        .longest_edge = image_size,
        .pad_width = image_size,
        .pad_height = image_size,
        .resample = SETOK_RESAMPLE_BILINEAR,
        .rescale_factor = 1.0 / 255.0,
        .mean = {0.485f, 0.456f, 0.406f},
        .std = {0.229f, 0.224f, 0.225f},
    };
}

/* prefix + key into buf. */
static const char *key_of(char *buf, size_t size, const char *prefix, const char *key)
{
    snprintf(buf, size, "%s%s", prefix, key);
    return buf;
}

static setok_status parse(setok_sam_preprocessor *pp, const setok_config *json, const char *px,
                          setok_error *err)
{
    const char *path = setok_config_path(json);
    char k[96];
    struct {
        const char *key;
        bool *value;
    } flags[] = {
        {"do_convert_rgb", &pp->do_convert_rgb}, {"do_resize", &pp->do_resize},
        {"do_rescale", &pp->do_rescale},         {"do_normalize", &pp->do_normalize},
        {"do_pad", &pp->do_pad},
    };
    setok_status st = SETOK_OK;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0] && st == SETOK_OK; i++)
        st = setok_config_bool_or(json, key_of(k, sizeof k, px, flags[i].key), *flags[i].value,
                                  flags[i].value, err);
    bool center_crop = false;
    if (st == SETOK_OK)
        st = setok_config_bool_or(json, key_of(k, sizeof k, px, "do_center_crop"), false,
                                  &center_crop, err);
    if (st == SETOK_OK && center_crop)
        st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: do_center_crop is not part of SAM's "
                        "image processor", path);
    int64_t resample = 2;
    if (st == SETOK_OK)
        st = setok_config_int_or(json, key_of(k, sizeof k, px, "resample"), 2, &resample, err);
    if (st == SETOK_OK) { /* PIL's Image.Resampling codes */
        if (resample == 0)
            pp->resample = SETOK_RESAMPLE_NEAREST;
        else if (resample == 2)
            pp->resample = SETOK_RESAMPLE_BILINEAR;
        else if (resample == 3)
            pp->resample = SETOK_RESAMPLE_BICUBIC;
        else
            st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: resample %lld is not NEAREST (0), "
                            "BILINEAR (2) or BICUBIC (3)", path, (long long)resample);
    }
    if (st == SETOK_OK && setok_config_has(json, key_of(k, sizeof k, px, "size")) &&
        !setok_config_has(json, key_of(k, sizeof k, px, "size.longest_edge")))
        st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s must be {\"longest_edge\": N}",
                        path, key_of(k, sizeof k, px, "size"));
    if (st == SETOK_OK)
        st = setok_config_int_in(json, key_of(k, sizeof k, px, "size.longest_edge"), false, 1,
                                 1 << 15, &pp->longest_edge, err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, key_of(k, sizeof k, px, "pad_size.height"), false, 1,
                                 1 << 15, &pp->pad_height, err);
    if (st == SETOK_OK)
        st = setok_config_int_in(json, key_of(k, sizeof k, px, "pad_size.width"), false, 1,
                                 1 << 15, &pp->pad_width, err);
    if (st == SETOK_OK)
        st = setok_config_double_or(json, key_of(k, sizeof k, px, "rescale_factor"),
                                    pp->rescale_factor, &pp->rescale_factor, err);
    if (st == SETOK_OK)
        st = setok_config_channels_or(json, key_of(k, sizeof k, px, "image_mean"), pp->mean, err);
    if (st == SETOK_OK)
        st = setok_config_channels_or(json, key_of(k, sizeof k, px, "image_std"), pp->std, err);
    for (int c = 0; c < 3 && st == SETOK_OK; c++)
        if (pp->do_normalize && !(pp->std[c] != 0.0f))
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: image_std[%d] is 0", path, c);
    if (st == SETOK_OK && pp->do_pad && pp->do_resize &&
        (pp->pad_width < pp->longest_edge || pp->pad_height < pp->longest_edge))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: pad_size %dx%d is smaller than "
                        "size.longest_edge %d", path, pp->pad_width, pp->pad_height,
                        pp->longest_edge);
    return st;
}

setok_status setok_sam_preprocessor_load(setok_sam_preprocessor *pp, const char *dir,
                                         int image_size, setok_error *err)
{
    static const struct {
        const char *file, *prefix;
    } sources[] = {
        {"preprocessor_config.json", ""},
        {"processor_config.json", "image_processor."},
    };
    setok_sam_preprocessor_defaults(pp, image_size);
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        setok_config *json = NULL;
        setok_status st = setok_config_load_in(&json, dir, sources[i].file, true, err);
        if (st == SETOK_OK && json && i == 1 && !setok_config_has(json, "image_processor")) {
            setok_config_free(json); /* a processor_config.json without image settings */
            continue;
        }
        if (st == SETOK_OK && json) {
            st = parse(pp, json, sources[i].prefix, err);
            snprintf(pp->source, sizeof pp->source, "%s", sources[i].file);
        }
        setok_config_free(json);
        if (st != SETOK_OK || pp->source[0])
            return st;
    }
    return SETOK_OK;
}

/* SamImageProcessor._get_preprocess_shape: the longest side becomes longest_edge. */
static void resized_size(const setok_sam_preprocessor *pp, int width, int height, int *w, int *h)
{
    if (!pp->do_resize) {
        *w = width;
        *h = height;
        return;
    }
    double scale = pp->longest_edge * 1.0 / (double)(width > height ? width : height);
    *w = (int)(width * scale + 0.5);
    *h = (int)(height * scale + 0.5);
}

void setok_sam_preprocess_size(const setok_sam_preprocessor *pp, int width, int height,
                               int *resized_w, int *resized_h, int *input_w, int *input_h)
{
    int w, h;
    resized_size(pp, width, height, &w, &h);
    *resized_w = w;
    *resized_h = h;
    *input_w = pp->do_pad ? pp->pad_width : w;
    *input_h = pp->do_pad ? pp->pad_height : h;
}

setok_status setok_sam_preprocess(const setok_sam_preprocessor *pp, float *out, size_t out_floats,
                                  const setok_image *img, setok_error *err)
{
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0)
        return setok_fail(err, SETOK_ERR_INPUT, "sam preprocess: empty image");
    int rw, rh, iw, ih;
    setok_sam_preprocess_size(pp, img->width, img->height, &rw, &rh, &iw, &ih);
    if (rw < 1 || rh < 1)
        return setok_fail(err, SETOK_ERR_INPUT, "sam preprocess: a %dx%d image resizes to "
                          "nothing", img->width, img->height);
    if (rw > iw || rh > ih)
        return setok_fail(err, SETOK_ERR_INPUT, "sam preprocess: the %dx%d image does not fit "
                          "the %dx%d padded input", rw, rh, iw, ih);
    if (out_floats < 3 * (size_t)iw * (size_t)ih)
        return setok_fail(err, SETOK_ERR_INPUT, "sam preprocess: output holds %zu floats, the "
                          "image needs 3 x %d x %d", out_floats, ih, iw);
    /* the same steps as CLIP's processor, without its crop, to an exact size */
    setok_vit_preprocessor vp;
    setok_vit_preprocessor_defaults(&vp, SETOK_VIT_CLIP);
    vp.do_convert_rgb = pp->do_convert_rgb;
    vp.do_resize = pp->do_resize;
    vp.do_center_crop = false;
    vp.do_rescale = pp->do_rescale;
    vp.do_normalize = pp->do_normalize;
    vp.shortest_edge = 0;
    vp.resize_width = rw;
    vp.resize_height = rh;
    vp.resample = pp->resample;
    vp.rescale_factor = pp->rescale_factor;
    memcpy(vp.mean, pp->mean, sizeof vp.mean);
    memcpy(vp.std, pp->std, sizeof vp.std);
    size_t plane = (size_t)rw * (size_t)rh;
    float *tmp = malloc(3 * plane * sizeof *tmp);
    if (!tmp)
        return setok_fail(err, SETOK_ERR_NOMEM, "sam preprocess: out of memory");
    setok_status st = setok_vit_preprocess(&vp, tmp, 3 * plane, img, err);
    for (int c = 0; st == SETOK_OK && c < 3; c++)
        for (int y = 0; y < ih; y++) {
            float *row = out + ((size_t)c * ih + (size_t)y) * (size_t)iw;
            size_t valid = y < rh ? (size_t)rw : 0;
            if (valid)
                memcpy(row, tmp + c * plane + (size_t)y * rw, valid * sizeof *row);
            memset(row + valid, 0, ((size_t)iw - valid) * sizeof *row);
        }
    free(tmp);
    return st;
}

void setok_sam_scale_point(const setok_sam_preprocessor *pp, int width, int height, double x,
                           double y, float *fx, float *fy)
{
    int w, h;
    resized_size(pp, width, height, &w, &h);
    *fx = (float)(x * ((double)w / width));
    *fy = (float)(y * ((double)h / height));
}

/* ---------------------------------------------------------------------------
 * post_process_masks */

void sam_lerp_axis(sam_lerp *out, int n_out, int n_in)
{
    float scale = (float)n_in / (float)n_out;
    for (int i = 0; i < n_out; i++) {
        float src = scale * ((float)i + 0.5f) - 0.5f;
        src = src < 0.0f ? 0.0f : src;
        int i0 = (int)src;
        i0 = i0 < n_in - 1 ? i0 : n_in - 1;
        float l1 = src - (float)i0;
        l1 = l1 < 0.0f ? 0.0f : l1 > 1.0f ? 1.0f : l1;
        out[i] = (sam_lerp){i0, i0 + (i0 < n_in - 1 ? 1 : 0), 1.0f - l1, l1};
    }
}

/* src [sh, sw] -> the top-left [oh, ow] of its bilinear resize to [full_h, full_w]. */
static void resize_bilinear(float *dst, int oh, int ow, int full_h, int full_w, const float *src,
                            int sh, int sw, sam_lerp *ly, sam_lerp *lx)
{
    sam_lerp_axis(ly, full_h, sh);
    sam_lerp_axis(lx, full_w, sw);
    for (int y = 0; y < oh; y++) {
        const float *r0 = src + (size_t)ly[y].i0 * sw, *r1 = src + (size_t)ly[y].i1 * sw;
        float h0 = ly[y].w0, h1 = ly[y].w1;
        for (int x = 0; x < ow; x++) {
            const sam_lerp *c = &lx[x];
            dst[(size_t)y * ow + x] = h0 * (c->w0 * r0[c->i0] + c->w1 * r0[c->i1]) +
                                      h1 * (c->w0 * r1[c->i0] + c->w1 * r1[c->i1]);
        }
    }
}

setok_status setok_sam_postprocess_mask(const setok_sam_preprocessor *pp, const float *logits,
                                        int lh, int lw, uint8_t *mask, int width, int height,
                                        int64_t *area, setok_error *err)
{
    int rw, rh, iw, ih;
    setok_sam_preprocess_size(pp, width, height, &rw, &rh, &iw, &ih);
    rw = rw < iw ? rw : iw;
    rh = rh < ih ? rh : ih;
    int most = iw > ih ? iw : ih;
    most = most > width ? most : width;
    most = most > height ? most : height;
    float *frame = malloc((size_t)rw * (size_t)rh * sizeof *frame);
    sam_lerp *ly = malloc((size_t)most * sizeof *ly), *lx = malloc((size_t)most * sizeof *lx);
    *area = 0;
    if (!frame || !ly || !lx) {
        free(frame);
        free(ly);
        free(lx);
        return setok_fail(err, SETOK_ERR_NOMEM, "sam mask: out of memory");
    }
    /* the padded frame's valid region, then that region to the image's size */
    resize_bilinear(frame, rh, rw, ih, iw, logits, lh, lw, ly, lx);
    sam_lerp_axis(ly, height, rh);
    sam_lerp_axis(lx, width, rw);
    for (int y = 0; y < height; y++) {
        const float *r0 = frame + (size_t)ly[y].i0 * rw, *r1 = frame + (size_t)ly[y].i1 * rw;
        float h0 = ly[y].w0, h1 = ly[y].w1;
        uint8_t *out = mask + (size_t)y * width;
        for (int x = 0; x < width; x++) {
            const sam_lerp *c = &lx[x];
            float v = h0 * (c->w0 * r0[c->i0] + c->w1 * r0[c->i1]) +
                      h1 * (c->w0 * r1[c->i0] + c->w1 * r1[c->i1]);
            out[x] = v > 0.0f ? 255 : 0;
            *area += v > 0.0f;
        }
    }
    free(frame);
    free(ly);
    free(lx);
    return SETOK_OK;
}
