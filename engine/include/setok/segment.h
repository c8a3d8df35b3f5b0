/* segment.h — the `segment` pipeline (DESIGN §8) by points: the object under
 * each foreground point is the SeTok token that covers it (paper §2.1: the
 * clusters are the image's semantic units), so a point selects that token's
 * pixels; background points remove theirs. The masks come from the tokens
 * pipeline (tokens.h), with its edge-aware refinement on by default so they
 * follow object boundaries rather than patch stairs. */
#ifndef SETOK_SEGMENT_H
#define SETOK_SEGMENT_H

#include "export.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "image.h"
#include "tokens.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_segment_point {
    int x, y;          /* pixels of the image */
    bool foreground;   /* false: a background point (its token is removed) */
} setok_segment_point;

/* What a SAM folder can be prompted with beyond points (setok_segmenter_run_prompt). */
typedef struct setok_segment_prompt {
    const setok_segment_point *points; /* [n_points]; may be NULL when n_points is 0 */
    int n_points;
    bool has_box;
    int box[4];        /* x0, y0, x1, y1: pixels of the image, x0 < x1, y0 < y1 */
    bool multimask;    /* the decoder's three masks, the one of best predicted IoU chosen */
    bool all_masks;    /* with multimask: every mask kept in the result, not just the best */
} setok_segment_prompt;

/* Zero-initialize; free with setok_segment_result_free. */
typedef struct setok_segment_result {
    setok_image mask;      /* one channel, the image's size: 255 = the object */
    int64_t area;          /* pixels in the mask */
    float score;           /* mean density-peak score (rho * delta) of the selected tokens */
    int n_tokens;          /* tokens selected */
    int32_t *tokens;       /* [n_tokens] their indices in the tokens result */
    setok_tokens_result tokens_result; /* the clustering the mask came from */
    /* a prompt's all_masks: each of the decoder's masks and its predicted IoU; mask is
     * masks[chosen] */
    int n_masks;
    setok_image *masks;
    float *scores;
    int chosen;
} setok_segment_result;

SETOK_API void setok_segment_result_free(setok_segment_result *r);

/* points[n] (at least one foreground point) on image -> r. opts: the tokens
 * options (NULL: setok_tokens_options_default with refine_masks on). A
 * point outside the image, or on no token, is SETOK_ERR_INPUT. */
SETOK_API setok_status setok_segment_points(setok_tokenizer *t, const setok_image *image,
                                  const setok_segment_point *points, int n,
                                  const setok_tokens_options *opts, setok_segment_result *r,
                                  setok_error *err);

/* Segmentation by the mask decoder of a SETOKIM bundle (mask_decoder/; the
 * layout is tools/setokim/segmentation.py's): SAM's prompt encoder and mask
 * decoder on the vision tower's patch features, prompted by points and/or,
 * on a bundle with segment_token and projector_seg, by the LLM's state after
 * "segment {expression}" (referring segmentation). The low-resolution mask
 * logits are sampled bilinearly at each image pixel (through the vision
 * processor's resize and crop); the mask is where they are > 0 and the score
 * is the decoder's predicted IoU. The result's token fields stay empty. */
typedef struct setok_segmenter setok_segmenter;

/* On a SAM folder (SETOK_MODEL_SAM: transformers' SamModel and its
 * SamProcessor) the segmenter runs SAM itself: the image embedding is
 * computed once per image (setok_model_sam_embed), and each prompt runs the
 * prompt encoder and mask decoder on it. Point and box coordinates are scaled
 * to the model's frame as SamProcessor scales them, and the low-resolution
 * mask is brought back to the image's size as post_process_masks does
 * (bilinear, > 0). A SAM folder cannot segment by a phrase. */

/* Over a model with a vision tower and a mask_decoder component (a SETOKIM
 * bundle), or a SAM folder; loads them the first time. The model must
 * outlive s. */
SETOK_API setok_status setok_segmenter_new(setok_segmenter **out, setok_model *model, setok_error *err);
SETOK_API void setok_segmenter_free(setok_segmenter *s);
/* How images become the vision tower's input (models/vit.h); pad by default. */
SETOK_API void setok_segmenter_set_image_fit(setok_segmenter *s, setok_image_fit fit);
/* Whether the model segments by a phrase (SETOK_CAP_SEGMENT_PHRASE). */
SETOK_API bool setok_segmenter_can_refer(const setok_segmenter *s);
/* image + expression (NULL: none) and/or points[n] -> r (at least one of them). */
SETOK_API setok_status setok_segmenter_run(setok_segmenter *s, const setok_image *image,
                                 const char *expression, const setok_segment_point *points, int n,
                                 const atomic_bool *cancel, setok_segment_result *r,
                                 setok_error *err);
/* image + points and/or a box, with one mask or SAM's three -> r. A box or
 * multimask needs a SAM folder (SETOK_ERR_INPUT on a bundle). */
SETOK_API setok_status setok_segmenter_run_prompt(setok_segmenter *s, const setok_image *image,
                                                  const setok_segment_prompt *prompt,
                                                  const atomic_bool *cancel,
                                                  setok_segment_result *r, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
