/* tokens.h — the `tokens` pipeline (DESIGN §8): image -> vision tower ->
 * patch features -> SeTok clusters -> tokens, with masks on the original image
 * and timings. What `setok tokens` and the app's token view call. */
#ifndef SETOK_TOKENS_H
#define SETOK_TOKENS_H

#include "export.h"

#include <stdatomic.h>
#include <stdbool.h>

#include "backend.h"
#include "error.h"
#include "image.h"
#include "masks.h"
#include "model.h"
#include "models/setok.h"
#include "models/vit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_tokenizer setok_tokenizer;

/* The tokens pipeline over a model with SETOK_CAP_TOKENS (model.h): a SETOKIM
 * bundle (its vision tower and merger), or a LLaVA folder or a vision tower
 * alone, whose tokens are cluster averages (paper Table 9). Loads the
 * components the first time; the model must outlive t. */
SETOK_API setok_status setok_tokenizer_new(setok_tokenizer **out, setok_model *model, setok_error *err);
SETOK_API void setok_tokenizer_free(setok_tokenizer *t);

SETOK_API const setok_vit *setok_tokenizer_vit(const setok_tokenizer *t);
/* NULL when the tokens are cluster averages. */
SETOK_API const setok_merger *setok_tokenizer_merger(const setok_tokenizer *t);
/* The clustering defaults: the merger's config when there is one, else
 * setok_cluster_params_default(). */
SETOK_API setok_cluster_params setok_tokenizer_default_params(const setok_tokenizer *t);

typedef struct setok_tokens_options {
    setok_cluster_params cluster; /* k and fixed_k past the image's patch count: every patch,
                                     as chat.h clusters (a small tower's grid can be smaller
                                     than the default 64 neighbours) */
    bool average;          /* cluster means even when a merger is loaded */
    bool refine_masks;     /* edge-aware pixel labels instead of patch stairs (default off) */
    int feature_layer;     /* as setok_vit_forward; SETOK_TOKENS_DEFAULT_LAYER: the
                              folder's own (a bundle's or LLaVA's vision_feature_layer),
                              else the last */
    setok_image_fit fit;   /* the whole image padded to a square (default), or the
                              processor's centre crop */
    const atomic_bool *cancel;
} setok_tokens_options;

#define SETOK_TOKENS_DEFAULT_LAYER (-0x7fffffff)

SETOK_API void setok_tokens_options_default(setok_tokens_options *o, const setok_tokenizer *t);

/* Per-token geometry on the original image, in pixels. */
typedef struct setok_token_region {
    int64_t area;            /* pixels labelled with the token */
    double cx, cy;           /* centroid; -1 when area is 0 */
    int x0, y0, x1, y1;      /* bounding box, x1 / y1 exclusive */
} setok_token_region;

typedef struct setok_tokens_timings {
    double encode_ms;  /* preprocessing and the vision tower; 0 when the model had the
                          image's features already */
    double cluster_ms, merge_ms, masks_ms, total_ms;
} setok_tokens_timings;

/* Zero-initialize; setok_tokens_run reuses the memory; free with
 * setok_tokens_result_free. */
/* Where fit and pp's resize and crop put the model input of a width x height
 * image (a grid_w x grid_h grid of patch-pixel patches). */
SETOK_API void setok_grid_map_for(setok_grid_map *m, const setok_vit_preprocessor *pp,
                                  setok_image_fit fit, int width, int height, int grid_w,
                                  int grid_h, int patch);

typedef struct setok_tokens_result {
    setok_clusters clusters;         /* patch-level: labels, per-token patch info */
    setok_grid_map map;              /* where the grid lies on the image */
    int width, height;               /* the original image */
    int32_t *pixel_labels;           /* [height * width]; -1 where no patch lies */
    setok_token_region *regions;     /* [n_tokens] */
    float *features;                 /* [n_tokens, dim] host f32 */
    int dim;
    setok_tokens_timings timings;
} setok_tokens_result;

SETOK_API setok_status setok_tokens_run(setok_tokenizer *t, const setok_image *image,
                              const setok_tokens_options *opts, setok_tokens_result *result,
                              setok_error *err);
SETOK_API void setok_tokens_result_free(setok_tokens_result *r);

#ifdef __cplusplus
}
#endif
#endif
