/* eval-score.c — how `setok eval` scores generated and edited images: the
 * world's analyser (setok_world_analyse) reads the image, and the reading is
 * compared with the scene's annotation or with the exact edit target. Pure
 * functions of scenes and images, no model. */
#include <stdlib.h>
#include <string.h>

#include "eval.h"

const char *const eval_edit_kind_names[EVAL_EDIT_KINDS] = {
  "recolour", "remove", "add", "move", "resize",
};

static int
min_int (int a, int b)
{
  return a < b ? a : b;
}

static const char *
json_string (const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
  return cJSON_IsString (v) ? v->valuestring : NULL;
}

void
eval_score_prompt (const cJSON *objects, const setok_world_reading *r, eval_gen_results *g)
{
  enum
  {
    NC = SETOK_WORLD_N_COLOURS,
    NS = SETOK_WORLD_N_SHAPES
  };
  int named[NC][NS] = { { 0 } }, seen[NC][NS] = { { 0 } };
  int named_c[NC] = { 0 }, seen_c[NC] = { 0 }, named_s[NS] = { 0 }, seen_s[NS] = { 0 };
  int n = 0;
  const cJSON *o;
  cJSON_ArrayForEach (o, objects)
  {
    int c = setok_world_colour_index (json_string (o, "colour"));
    int s = setok_world_shape_index (json_string (o, "shape"));
    n++;
    if (c < 0 || s < 0)
      continue; /* a name the analyser cannot find: counts as not found */
    named[c][s]++;
    named_c[c]++;
    named_s[s]++;
  }
  for (int k = 0; k < r->n_components; k++)
    {
      const setok_world_component *c = &r->components[k];
      seen_c[c->colour]++;
      if (c->shape_iou < EVAL_MIN_SHAPE_IOU)
        continue; /* a blob that no shape fits has no shape */
      seen[c->colour][c->shape]++;
      seen_s[c->shape]++;
    }
  /* with equality as the only way to match, the largest multiset matching is
   * the sum over keys of the smaller count */
  int found = 0, found_c = 0, found_s = 0;
  for (int c = 0; c < NC; c++)
    {
      found_c += min_int (named_c[c], seen_c[c]);
      for (int s = 0; s < NS; s++)
        found += min_int (named[c][s], seen[c][s]);
    }
  for (int s = 0; s < NS; s++)
    found_s += min_int (named_s[s], seen_s[s]);
  g->prompts++;
  g->named += n;
  g->found += found;
  g->colour_found += found_c;
  g->shape_found += found_s;
  g->satisfied += found == n;
}

int
eval_edit_region (const setok_world_scene *src, const setok_world_scene *target, int id,
                  uint8_t *mask)
{
  int w = setok_world_width (src), h = setok_world_height (src), d = EVAL_REGION_DILATE;
  const uint8_t *a = setok_world_labels (src), *b = setok_world_labels (target);
  int area = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        bool in = false;
        for (int v = y - d; v <= y + d && !in; v++)
          for (int u = x - d; u <= x + d && !in; u++)
            {
              if (u < 0 || v < 0 || u >= w || v >= h)
                continue;
              size_t q = (size_t)v * w + u;
              in = id > 0 && (a[q] == id || b[q] == id);
            }
        mask[(size_t)y * w + x] = in ? 255 : 0;
        area += in;
      }
  return area;
}

/* The annotation entry of object id in scene s (parsed into *root), or NULL. */
static const cJSON *
object_entry (const setok_world_scene *s, int id, cJSON **root)
{
  *root = cJSON_Parse (setok_world_json (s));
  const cJSON *o;
  cJSON_ArrayForEach (o, cJSON_GetObjectItemCaseSensitive (*root, "objects"))
  {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, "id");
    if (cJSON_IsNumber (v) && v->valueint == id)
      return o;
  }
  return NULL;
}

static bool
recoloured (int colour, int id, const uint8_t *labels, size_t npx, const setok_world_reading *r)
{
  int votes[SETOK_WORLD_NOT_OBJECT + 1] = { 0 };
  for (size_t p = 0; p < npx; p++)
    if (labels[p] == id)
      votes[r->colours[p]]++;
  int best = 0;
  for (int c = 1; c <= SETOK_WORLD_NOT_OBJECT; c++)
    best = votes[c] > votes[best] ? c : best;
  return votes[best] > 0 && best == colour;
}

/* A pixel reads as background when the analyser finds no object colour in it
 * and it lies within EVAL_BACKGROUND_DISTANCE of the target's background pixel
 * (noise is not a removal). */
static bool
removed (const setok_world_scene *target, const uint8_t *rgb, const uint8_t *region,
         const setok_world_reading *r)
{
  const uint8_t *labels = setok_world_labels (target), *want = setok_world_rgb (target);
  size_t npx = (size_t)setok_world_width (target) * setok_world_height (target);
  long should = 0, is = 0;
  for (size_t p = 0; p < npx; p++)
    if (region[p] && labels[p] == 0)
      {
        int d2 = 0;
        for (int c = 0; c < 3; c++)
          d2 += (rgb[p * 3 + c] - want[p * 3 + c]) * (rgb[p * 3 + c] - want[p * 3 + c]);
        should++;
        is += r->colours[p] == SETOK_WORLD_NOT_OBJECT
              && d2 <= EVAL_BACKGROUND_DISTANCE * EVAL_BACKGROUND_DISTANCE;
      }
  return should > 0 && is >= EVAL_REMOVE_MIN_BACKGROUND * should;
}

static bool
placed (int colour, int shape, int size, int id, const uint8_t *labels, size_t npx,
        const setok_world_reading *r)
{
  int n = r->n_components;
  long *inter = calloc ((size_t)n + 1, sizeof *inter);
  long target = 0;
  bool ok = false;
  if (!inter)
    return false;
  for (size_t p = 0; p < npx; p++)
    if (labels[p] == id)
      {
        target++;
        inter[r->components_map[p]]++;
      }
  for (int k = 0; k < n && !ok; k++)
    {
      const setok_world_component *c = &r->components[k];
      if (c->colour != colour || c->shape != shape || c->shape_iou < EVAL_MIN_SHAPE_IOU
          || (size >= 0 && c->size != size))
        continue;
      long i = inter[k + 1];
      ok = i > 0 && (double)i / (double)(target + c->area - i) >= EVAL_MIN_IOU;
    }
  free (inter);
  return ok;
}

bool
eval_edit_success (int kind, int id, const setok_world_scene *target, const uint8_t *region,
                   const uint8_t *rgb, const setok_world_reading *r)
{
  const uint8_t *labels = setok_world_labels (target);
  size_t npx = (size_t)setok_world_width (target) * setok_world_height (target);
  if (kind == EVAL_REMOVE) /* the target has no object id */
    return removed (target, rgb, region, r);
  cJSON *root = NULL;
  const cJSON *o = object_entry (target, id, &root);
  int colour = setok_world_colour_index (json_string (o, "colour"));
  int shape = setok_world_shape_index (json_string (o, "shape"));
  int size = setok_world_size_index (json_string (o, "size"));
  bool ok = false;
  if (o && colour >= 0 && shape >= 0)
    ok = kind == EVAL_RECOLOUR
           ? recoloured (colour, id, labels, npx, r)
           : placed (colour, shape, kind == EVAL_RESIZE ? size : -1, id, labels, npx, r);
  cJSON_Delete (root);
  return ok;
}
