/* masks.h — token label maps between the patch grid and image pixels.
 *
 * A vision tower sees a transformed copy of the image (resized, maybe
 * center-cropped). A setok_grid_map records that transform so each patch can
 * be placed back on the original image, and setok_labels_upsample turns the
 * per-patch token ids into per-pixel ids: nearest (patch-shaped stairs), or
 * refined so that boundaries follow the image's own edges. */
#ifndef SETOK_MASKS_H
#define SETOK_MASKS_H

#include "export.h"

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_grid_map {
    int grid_w, grid_h;      /* patches */
    int patch;               /* pixels per patch side in the model input */
    double scale_x, scale_y; /* model-input pixels per original pixel */
    double crop_x, crop_y;   /* top-left of the model input in the scaled image */
} setok_grid_map;

/* The patch under original pixel (x, y), or -1 when the model never saw it
 * (outside a center crop). */
SETOK_API int setok_grid_patch_at(const setok_grid_map *map, double x, double y);

/* out [H * W] = the label of the patch under each pixel centre (-1 outside the
 * grid). With refine, pixels near a label boundary (within one patch) may take
 * the label of a neighbouring patch whose colour statistics fit them better,
 * followed by a 3x3 majority clean-up; interiors keep the nearest label. img
 * supplies the colours (RGB or RGBA). */
SETOK_API setok_status setok_labels_upsample(int32_t *out, const int32_t *labels, int n_labels,
                                   const setok_grid_map *map, const setok_image *img, bool refine,
                                   setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
