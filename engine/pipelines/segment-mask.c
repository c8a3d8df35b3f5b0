/* segment-mask.c — segmentation by a SETOKIM bundle's mask decoder, prompted
 * by points and/or a referring phrase (see segment.h); on a SAM folder the
 * segmenter hands its prompts to segment-sam.c. */
#include "segment-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "setok/chat.h"
#include "setok/models/mask_decoder.h"

struct setok_segmenter {
    setok_model *model;
    setok_vit *vit;
    setok_mask_decoder *decoder;
    int feature_layer;
    setok_image_fit fit;        /* how images become the tower's input; pad by default */
    setok_chat *chat;           /* the phrase's LLM request; made on the first phrase */
    setok_arena arena;
    bool sam;                   /* a SAM folder: segment-sam.c, no vision tower */
};

setok_status setok_segmenter_new(setok_segmenter **out, setok_model *model, setok_error *err)
{
    *out = NULL;
    setok_segmenter *s = calloc(1, sizeof *s);
    if (!s)
        return setok_fail(err, SETOK_ERR_NOMEM, "segment: out of memory");
    s->model = model;
    s->sam = setok_model_kind_of(model) == SETOK_MODEL_SAM;
    /* a SAM folder: its image encoder and decoder, checked to fit each other */
    setok_status st = s->sam ? setok_model_require(model, SETOK_CAP_SEGMENT_POINTS, err)
                             : setok_model_vit(model, &s->vit, err);
    if (st == SETOK_OK)
        st = setok_model_mask_decoder(model, &s->decoder, err);
    if (st == SETOK_OK && !s->sam)
        st = setok_model_feature_layer(model, &s->feature_layer, err);
    if (st == SETOK_OK && !s->sam) {
        const setok_mask_decoder_config *mc = setok_mask_decoder_get_config(s->decoder);
        const setok_vit_config *vc = setok_vit_get_config(s->vit);
        setok_component_info info;
        setok_model_component_info(model, SETOK_COMPONENT_MASK_DECODER, &info);
        if (mc->hidden_size != vc->hidden_size)
            st = setok_fail(err, SETOK_ERR_INPUT, "%s/config.json: hidden_size %d is not the "
                            "vision tower's %d", info.path, mc->hidden_size, vc->hidden_size);
    }
    if (st != SETOK_OK) {
        setok_segmenter_free(s);
        return st;
    }
    *out = s;
    return SETOK_OK;
}

void setok_segmenter_free(setok_segmenter *s)
{
    if (!s)
        return;
    setok_arena_destroy(&s->arena);
    setok_chat_free(s->chat);
    free(s);
}

void setok_segmenter_set_image_fit(setok_segmenter *s, setok_image_fit fit)
{
    s->fit = (unsigned)fit < SETOK_IMAGE_FIT_COUNT ? fit : SETOK_IMAGE_FIT_PAD;
}

bool setok_segmenter_can_refer(const setok_segmenter *s)
{
    return setok_model_can(s->model, SETOK_CAP_SEGMENT_PHRASE);
}

/* expression's prompt embedding [C] for image (the LLM's <seg> state through projector_seg). */
static setok_status phrase_embedding(setok_segmenter *s, const setok_image *image,
                                     const char *expression, const atomic_bool *cancel,
                                     float *out, setok_error *err)
{
    setok_chat_options co;
    setok_chat_options_default(&co);
    co.cancel = cancel;
    co.fit = s->fit;
    setok_status st = setok_model_require(s->model, SETOK_CAP_SEGMENT_PHRASE, err);
    if (st == SETOK_OK && !s->chat)
        st = setok_chat_new(&s->chat, s->model, 0, err);
    if (st == SETOK_OK)
        st = setok_chat_start(s->chat, image, &co, err);
    if (st == SETOK_OK)
        st = setok_chat_segment_embedding(s->chat, expression, &co, out, err);
    return st;
}

/* logits [lh, lw] over the model input -> the mask of the image (bilinear, half-pixel
 * centres as F.interpolate(align_corners=False); 0 where the model never looked). */
static int64_t paint_mask(setok_image *mask, const float *logits, int lh, int lw,
                          const setok_grid_map *map)
{
    double fx = (double)lw / (map->grid_w * map->patch), fy = (double)lh / (map->grid_h * map->patch);
    int64_t area = 0;
    for (int y = 0; y < mask->height; y++)
        for (int x = 0; x < mask->width; x++) {
            double mx = (x + 0.5) * map->scale_x - map->crop_x;
            double my = (y + 0.5) * map->scale_y - map->crop_y;
            bool on = false;
            if (mx >= 0 && my >= 0 && mx < map->grid_w * map->patch &&
                my < map->grid_h * map->patch) {
                double lx = mx * fx - 0.5, ly = my * fy - 0.5;
                lx = lx < 0 ? 0 : lx > lw - 1 ? lw - 1 : lx;
                ly = ly < 0 ? 0 : ly > lh - 1 ? lh - 1 : ly;
                int x0 = (int)lx, y0 = (int)ly;
                int x1 = x0 + 1 < lw ? x0 + 1 : x0, y1 = y0 + 1 < lh ? y0 + 1 : y0;
                double ax = lx - x0, ay = ly - y0;
                double v = (1 - ay) * ((1 - ax) * logits[y0 * lw + x0] + ax * logits[y0 * lw + x1]) +
                           ay * ((1 - ax) * logits[y1 * lw + x0] + ax * logits[y1 * lw + x1]);
                on = v > 0.0;
            }
            mask->pixels[(size_t)y * mask->width + x] = on ? 255 : 0;
            area += on;
        }
    return area;
}

setok_status setok_segmenter_run(setok_segmenter *s, const setok_image *image,
                                 const char *expression, const setok_segment_point *points, int n,
                                 const atomic_bool *cancel, setok_segment_result *r,
                                 setok_error *err)
{
    memset(r, 0, sizeof *r);
    if (!image || (!expression && n < 1))
        return setok_fail(err, SETOK_ERR_INPUT, "segment: give an image and a phrase or points");
    if (s->sam && expression)
        return setok_fail(err, SETOK_ERR_INPUT, "segment: %s is a SAM folder: it segments by "
                          "points and boxes, not by a phrase", setok_model_dir(s->model));
    if (s->sam) {
        setok_segment_prompt p = {.points = points, .n_points = n};
        return setok_segmenter_run_prompt(s, image, &p, cancel, r, err);
    }
    if (expression && !setok_segmenter_can_refer(s))
        return setok_fail(err, SETOK_ERR_INPUT, "segment: this model has no segment token "
                          "(setokim.json segment_token and projector_seg): it cannot segment by "
                          "a phrase");
    for (int i = 0; i < n; i++)
        if (points[i].x < 0 || points[i].y < 0 || points[i].x >= image->width ||
            points[i].y >= image->height)
            return setok_fail(err, SETOK_ERR_INPUT, "segment: point %d,%d is outside the %dx%d "
                              "image", points[i].x, points[i].y, image->width, image->height);
    const setok_mask_decoder_config *mc = setok_mask_decoder_get_config(s->decoder);
    setok_dtype dtype = setok_model_dtype(s->model);
    int64_t C = mc->hidden_size;
    float *extra_host = NULL, *emb_host = NULL, *pts = NULL, *logits = NULL;
    int32_t *labels = NULL;
    setok_image_features f;
    setok_status st = setok_model_encode_image(s->model, image, s->feature_layer, s->fit, cancel,
                                               &f, err);
    int gh = f.grid_h, gw = f.grid_w, dim = f.dim;
    if (st == SETOK_OK && expression) {
        if (!(extra_host = malloc((size_t)C * sizeof *extra_host)))
            st = setok_fail(err, SETOK_ERR_NOMEM, "segment: out of memory");
        else
            st = phrase_embedding(s, image, expression, cancel, extra_host, err);
    }
    /* the phrase's request may have used the model's feature cache: ask again (a hit) */
    if (st == SETOK_OK)
        st = setok_model_encode_image(s->model, image, s->feature_layer, s->fit, cancel, &f, err);
    const float *feat = f.rows + (f.has_cls ? dim : 0);
    setok_grid_map map;
    setok_grid_map_for(&map, setok_vit_get_preprocessor(s->vit), s->fit, image->width,
                       image->height, gw, gh, setok_vit_get_config(s->vit)->patch_size);
    /* the prompt encoder's frame is image_size; the model input is grid * patch pixels */
    double to_frame = (double)mc->image_size / (gw * map.patch);
    if (st == SETOK_OK && n > 0) {
        pts = malloc((size_t)n * 2 * sizeof *pts);
        labels = malloc((size_t)n * sizeof *labels);
        if (!pts || !labels)
            st = setok_fail(err, SETOK_ERR_NOMEM, "segment: out of memory");
        for (int i = 0; st == SETOK_OK && i < n; i++) {
            /* the pixel's centre, less the 0.5 the prompt encoder adds back */
            pts[2 * i] = (float)(((points[i].x + 0.5) * map.scale_x - map.crop_x) * to_frame - 0.5);
            pts[2 * i + 1] =
                (float)(((points[i].y + 0.5) * map.scale_y - map.crop_y) * to_frame - 0.5);
            labels[i] = points[i].foreground ? SETOK_SAM_LABEL_FOREGROUND
                                             : SETOK_SAM_LABEL_BACKGROUND;
        }
    }
    if (st == SETOK_OK && !(emb_host = malloc((size_t)gh * gw * dim * sizeof *emb_host)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "segment: out of memory");
    for (int64_t p = 0; st == SETOK_OK && p < (int64_t)gh * gw; p++) /* [N, C] -> [C, h, w] */
        for (int64_t k = 0; k < dim; k++)
            emb_host[k * gh * gw + p] = feat[p * dim + k];
    /* extra: the phrase's one token [1, 1, C], sized here for the arena, filled below */
    setok_tensor emb = {0}, extra = {.ndim = 3, .shape = {1, 1, C}}, masks = {0}, iou = {0};
    setok_sam_prompt prompt = {.points = pts, .labels = labels, .num_points = n};
    if (st == SETOK_OK) {
        if (expression)
            prompt.extra = &extra;
        size_t need = setok_mask_decoder_arena_bytes(s->decoder, 1, gh, gw, &prompt) +
                      (size_t)(C * gh * gw + C) * setok_dtype_size(dtype) + 8 * 4096;
        if (s->arena.capacity < need) {
            setok_arena_destroy(&s->arena);
            st = setok_arena_init(&s->arena, setok_model_backend(s->model), need, err);
        }
        setok_arena_reset(&s->arena, 0);
    }
    if (st == SETOK_OK)
        st = setok_arena_tensor(&s->arena, &emb, dtype, 4, (int64_t[]){1, C, gh, gw}, err);
    if (st == SETOK_OK)
        st = setok_tensor_upload_f32(&emb, emb_host, err);
    if (st == SETOK_OK && expression)
        st = setok_arena_tensor(&s->arena, &extra, dtype, 3, (int64_t[]){1, 1, C}, err);
    if (st == SETOK_OK && expression)
        st = setok_tensor_upload_f32(&extra, extra_host, err);
    if (st == SETOK_OK)
        st = setok_mask_decoder_forward(s->decoder, &s->arena, &masks, &iou, &emb, &prompt, false,
                                        cancel, err);
    int lh = (int)masks.shape[2], lw = (int)masks.shape[3]; /* 0 when it did not run */
    if (st == SETOK_OK && !(logits = malloc((size_t)(lh * lw + 1) * sizeof *logits)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "segment: out of memory");
    if (st == SETOK_OK)
        st = setok_tensor_download_f32(logits, &masks, err);
    if (st == SETOK_OK) {
        float score = 0.0f;
        st = setok_tensor_download_f32(&score, &iou, err);
        r->score = score;
    }
    if (st == SETOK_OK)
        st = setok_image_alloc(&r->mask, image->width, image->height, 1, err);
    if (st == SETOK_OK)
        r->area = paint_mask(&r->mask, logits, lh, lw, &map);
    if (st != SETOK_OK)
        setok_segment_result_free(r);
    free(extra_host);
    free(emb_host);
    free(pts);
    free(labels);
    free(logits);
    return st;
}

setok_status setok_segmenter_run_prompt(setok_segmenter *s, const setok_image *image,
                                        const setok_segment_prompt *prompt,
                                        const atomic_bool *cancel, setok_segment_result *r,
                                        setok_error *err)
{
    memset(r, 0, sizeof *r);
    if (!image || !prompt)
        return setok_fail(err, SETOK_ERR_INPUT, "segment: give an image and a prompt");
    if (!s->sam && (prompt->has_box || prompt->multimask))
        return setok_fail(err, SETOK_ERR_INPUT, "segment: boxes and multimask output need "
                          "a SAM folder; %s is a %s model", setok_model_dir(s->model),
                          setok_model_kind_name(setok_model_kind_of(s->model)));
    if (!s->sam)
        return setok_segmenter_run(s, image, NULL, prompt->points, prompt->n_points, cancel, r,
                                   err);
    setok_status st = segment_sam_run(s->model, s->decoder, &s->arena, image, prompt, cancel, r,
                                      err);
    if (st != SETOK_OK)
        setok_segment_result_free(r);
    return st;
}
