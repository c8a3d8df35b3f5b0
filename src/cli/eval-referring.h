/* eval-referring.h — referring segmentation on held-out scenes for `setok eval`:
 * each scene's referring expressions through the bundle's mask decoder
 * (setok_segmenter), scored against the world's exact object masks. */
#ifndef SETOK_CLI_EVAL_REFERRING_H
#define SETOK_CLI_EVAL_REFERRING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "setok/error.h"
#include "setok/model.h"
#include "setok/world.h"

typedef struct eval_referring_results
{
  bool available;    /* the model segments by phrase; else nothing below ran */
  int expressions;   /* referring expressions asked */
  double iou_sum;    /* sum of the IoU of each mask with its object's */
  int hits;          /* expressions whose mask has IoU >= 0.5 with the object */
  double segment_ms; /* per expression */
} eval_referring_results;

/* Runs scenes seed .. seed + count - 1 (world options wo) on model. A model
 * that cannot segment by phrase leaves r->available false and returns
 * SETOK_OK. on_scene (may be NULL) is called after each scene. */
setok_status eval_referring (setok_model *model, uint64_t seed, int count,
                             const setok_world_options *wo, const atomic_bool *cancel,
                             void (*on_scene) (int done, int total, void *user), void *user,
                             eval_referring_results *r, setok_error *err);

#endif
