/* eval-referring.c — referring segmentation of `setok eval` (eval-referring.h). */
#include "eval-referring.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "setok/clock.h"
#include "setok/segment.h"

/* The IoU of mask (255 = in) with the pixels labelled id. */
static double
mask_iou (const setok_image *mask, const uint8_t *labels, int id)
{
  long inter = 0, uni = 0;
  for (size_t i = 0; i < (size_t)mask->width * mask->height; i++)
    {
      bool a = mask->pixels[i] > 127, b = labels[i] == id;
      inter += a && b;
      uni += a || b;
    }
  return uni ? (double)inter / (double)uni : 0.0;
}

/* One scene: every referring expression of its annotation. */
static setok_status
eval_scene (setok_segmenter *sg, const setok_world_scene *s, const atomic_bool *cancel,
            eval_referring_results *r, setok_error *err)
{
  cJSON *ann = cJSON_Parse (setok_world_json (s));
  if (!ann)
    return setok_fail (err, SETOK_ERR_INPUT, "eval: a scene's annotation is not JSON");
  int w = setok_world_width (s), h = setok_world_height (s);
  setok_image image
    = { .width = w, .height = h, .channels = 3, .pixels = (uint8_t *)setok_world_rgb (s) };
  const cJSON *item;
  setok_status st = SETOK_OK;
  cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive (ann, "referring"))
  {
    const cJSON *text = cJSON_GetObjectItemCaseSensitive (item, "text");
    const cJSON *object = cJSON_GetObjectItemCaseSensitive (item, "object");
    if (!cJSON_IsString (text) || !cJSON_IsNumber (object))
      continue;
    setok_segment_result res = { 0 };
    double t0 = setok_clock_ms ();
    st = setok_segmenter_run (sg, &image, text->valuestring, NULL, 0, cancel, &res, err);
    if (st != SETOK_OK)
      break;
    r->segment_ms += setok_clock_ms () - t0;
    double iou = mask_iou (&res.mask, setok_world_labels (s), object->valueint);
    r->expressions++;
    r->iou_sum += iou;
    r->hits += iou >= 0.5;
    setok_segment_result_free (&res);
  }
  cJSON_Delete (ann);
  return st;
}

setok_status
eval_referring (setok_model *model, uint64_t seed, int count, const setok_world_options *wo,
                const atomic_bool *cancel,
                void (*on_scene) (int done, int total, void *user), void *user,
                eval_referring_results *r, setok_error *err)
{
  memset (r, 0, sizeof *r);
  if (!setok_model_can (model, SETOK_CAP_SEGMENT_PHRASE))
    return SETOK_OK;
  setok_segmenter *sg = NULL;
  setok_status st = setok_segmenter_new (&sg, model, err);
  r->available = st == SETOK_OK;
  for (int i = 0; st == SETOK_OK && i < count; i++)
    {
      setok_world_scene *s = NULL;
      st = setok_world_generate (&s, seed + (uint64_t)i, wo, err);
      if (st == SETOK_OK)
        st = eval_scene (sg, s, cancel, r, err);
      setok_world_free (s);
      if (st == SETOK_OK && on_scene)
        on_scene (i + 1, count, user);
    }
  if (r->expressions)
    r->segment_ms /= r->expressions;
  setok_segmenter_free (sg);
  return st;
}
