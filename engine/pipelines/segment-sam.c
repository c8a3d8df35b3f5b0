/* segment-sam.c — segmentation on a SAM folder (segment.h): the image
 * embedding from the model's cache, the prompt scaled to the model's frame as
 * SamProcessor scales it, the prompt encoder and mask decoder, and the chosen
 * mask brought back to the image as SamImageProcessor.post_process_masks does. */
#include "segment-impl.h"

#include <stdlib.h>
#include <string.h>

#include "setok/models/sam_vision.h"

static setok_status check_prompt(const setok_image *image, const setok_segment_prompt *p,
                                 setok_error *err)
{
    if (p->n_points < 0 || (p->n_points > 0 && !p->points) || (p->n_points == 0 && !p->has_box))
        return setok_fail(err, SETOK_ERR_INPUT, "segment: give at least one point or a box");
    for (int i = 0; i < p->n_points; i++)
        if (p->points[i].x < 0 || p->points[i].y < 0 || p->points[i].x >= image->width ||
            p->points[i].y >= image->height)
            return setok_fail(err, SETOK_ERR_INPUT, "segment: point %d,%d is outside the %dx%d "
                              "image", p->points[i].x, p->points[i].y, image->width,
                              image->height);
    const int *b = p->box;
    if (p->has_box && !(b[0] >= 0 && b[1] >= 0 && b[0] < b[2] && b[1] < b[3] &&
                        b[2] <= image->width && b[3] <= image->height))
        return setok_fail(err, SETOK_ERR_INPUT, "segment: the box %d,%d,%d,%d is not x0,y0,x1,y1 "
                          "with x0 < x1 and y0 < y1 inside the %dx%d image", b[0], b[1], b[2],
                          b[3], image->width, image->height);
    return SETOK_OK;
}

/* The prompt's points, labels and box in the model's frame (host arrays, malloc'd). */
static setok_status frame_prompt(const setok_sam_preprocessor *pp, const setok_image *image,
                                 const setok_segment_prompt *p, float **points, int32_t **labels,
                                 float *box, setok_error *err)
{
    int n = p->n_points;
    *points = malloc((size_t)(2 * n + 2) * sizeof **points);
    *labels = malloc((size_t)(n + 1) * sizeof **labels);
    if (!*points || !*labels)
        return setok_fail(err, SETOK_ERR_NOMEM, "segment: out of memory");
    for (int i = 0; i < n; i++) {
        setok_sam_scale_point(pp, image->width, image->height, p->points[i].x, p->points[i].y,
                              &(*points)[2 * i], &(*points)[2 * i + 1]);
        (*labels)[i] = p->points[i].foreground ? SETOK_SAM_LABEL_FOREGROUND
                                               : SETOK_SAM_LABEL_BACKGROUND;
    }
    for (int c = 0; p->has_box && c < 2; c++)
        setok_sam_scale_point(pp, image->width, image->height, p->box[2 * c], p->box[2 * c + 1],
                              &box[2 * c], &box[2 * c + 1]);
    return SETOK_OK;
}

/* The decoder's masks [M, lh, lw] and scores -> r: the best (or the only) one as r->mask,
 * every one in r->masks when asked. */
static setok_status fill_result(const setok_sam_preprocessor *pp, const setok_image *image,
                                const float *logits, const float *iou, int M, int lh, int lw,
                                const setok_segment_prompt *p, setok_segment_result *r,
                                setok_error *err)
{
    int chosen = 0;
    for (int i = 1; i < M; i++)
        if (iou[i] > iou[chosen])
            chosen = i;
    r->chosen = chosen;
    r->score = iou[chosen];
    bool all = p->multimask && p->all_masks;
    setok_status st = SETOK_OK;
    if (all) {
        r->masks = calloc((size_t)M, sizeof *r->masks);
        r->scores = malloc((size_t)M * sizeof *r->scores);
        if (!r->masks || !r->scores)
            return setok_fail(err, SETOK_ERR_NOMEM, "segment: out of memory");
        r->n_masks = M;
        memcpy(r->scores, iou, (size_t)M * sizeof *iou);
    }
    for (int i = 0; i < M && st == SETOK_OK; i++) {
        if (!all && i != chosen)
            continue;
        setok_image *dst = all ? &r->masks[i] : &r->mask;
        int64_t area = 0;
        st = setok_image_alloc(dst, image->width, image->height, 1, err);
        if (st == SETOK_OK)
            st = setok_sam_postprocess_mask(pp, logits + (size_t)i * lh * lw, lh, lw,
                                            dst->pixels, image->width, image->height, &area,
                                            err);
        if (i == chosen)
            r->area = area;
    }
    if (st == SETOK_OK && all)
        st = setok_image_alloc(&r->mask, image->width, image->height, 1, err);
    if (st == SETOK_OK && all)
        memcpy(r->mask.pixels, r->masks[chosen].pixels,
               (size_t)image->width * (size_t)image->height);
    return st;
}

setok_status segment_sam_run(setok_model *model, setok_mask_decoder *dec, setok_arena *arena,
                             const setok_image *image, const setok_segment_prompt *prompt,
                             const atomic_bool *cancel, setok_segment_result *r,
                             setok_error *err)
{
    setok_status st = check_prompt(image, prompt, err);
    if (st != SETOK_OK)
        return st;
    setok_sam_vision *enc = NULL;
    setok_sam_embedding e;
    st = setok_model_sam_vision(model, &enc, err);
    if (st == SETOK_OK)
        st = setok_model_sam_embed(model, image, cancel, &e, err);
    if (st != SETOK_OK)
        return st;
    const setok_sam_preprocessor *pp = setok_sam_vision_get_preprocessor(enc);
    setok_dtype dtype = setok_model_dtype(model);
    /* iou: num_multimask_outputs is at most 64 (mask_decoder.c's config) */
    float *points = NULL, *logits = NULL, iou[64], box[4];
    int32_t *labels = NULL;
    int M = setok_mask_decoder_num_masks(dec, prompt->multimask), g = e.grid;
    st = frame_prompt(pp, image, prompt, &points, &labels, box, err);
    setok_sam_prompt sp = {.points = points, .labels = labels, .num_points = prompt->n_points,
                           .boxes = prompt->has_box ? box : NULL};
    size_t need = setok_mask_decoder_arena_bytes(dec, 1, g, g, &sp) +
                  (size_t)e.channels * g * g * setok_dtype_size(dtype) + 4096;
    if (st == SETOK_OK && arena->capacity < need) {
        setok_arena_destroy(arena);
        st = setok_arena_init(arena, setok_model_backend(model), need, err);
    }
    setok_tensor emb, masks, scores;
    if (st == SETOK_OK) {
        setok_arena_reset(arena, 0);
        st = setok_arena_tensor(arena, &emb, dtype, 4, (int64_t[]){1, e.channels, g, g}, err);
    }
    if (st == SETOK_OK)
        st = setok_tensor_upload_f32(&emb, e.data, err);
    if (st == SETOK_OK)
        st = setok_mask_decoder_forward(dec, arena, &masks, &scores, &emb, &sp,
                                        prompt->multimask, cancel, err);
    int lh = st == SETOK_OK ? (int)masks.shape[2] : 0, lw = st == SETOK_OK ? (int)masks.shape[3] : 0;
    if (st == SETOK_OK && !(logits = malloc((size_t)M * lh * lw * sizeof *logits)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "segment: out of memory");
    if (st == SETOK_OK)
        st = setok_tensor_download_f32(logits, &masks, err);
    if (st == SETOK_OK)
        st = setok_tensor_download_f32(iou, &scores, err);
    if (st == SETOK_OK)
        st = fill_result(pp, image, logits, iou, M, lh, lw, prompt, r, err);
    setok_arena_reset(arena, 0);
    free(points);
    free(labels);
    free(logits);
    return st;
}
