/* eval-gen.c — the generation and edit metrics of `setok eval`: on held-out
 * scenes the model draws each scene's generation prompt and carries out one
 * of its edits (setok/diffusion.h), and eval-score.c scores the images with
 * the world's analyser against the annotation and the exact edit target. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval.h"
#include "setok/clock.h"
#include "setok/diffusion.h"

static const char *
json_string (const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
  return cJSON_IsString (v) ? v->valuestring : NULL;
}

/* img as 3-channel RGB at width x height (bilinear when the size differs). */
static setok_status
rgb_at_size (const setok_image *img, int width, int height, setok_image *out, setok_error *err)
{
  setok_image rgb = { 0 };
  setok_status st = setok_image_to_rgb (&rgb, img, err);
  if (st == SETOK_OK && (rgb.width != width || rgb.height != height))
    {
      st = setok_image_resize (out, &rgb, width, height, SETOK_RESAMPLE_BILINEAR, err);
      setok_image_free (&rgb);
    }
  else
    *out = rgb;
  return st;
}

static void
diffusion_options (const eval_gen_options *o, const char *prompt, uint64_t seed,
                   setok_diffusion_options *d)
{
  setok_diffusion_options_default (d);
  d->prompt = prompt;
  d->steps = o->steps;
  d->guidance = (float)o->guidance;
  d->seed = seed;
  d->cancel = o->cancel;
}

/* Draws scene s's generation prompt and scores the image. */
static setok_status
generate_one (setok_diffusion *d, const eval_gen_options *o, const setok_world_scene *s,
              uint64_t seed, const cJSON *ann, eval_gen_results *g, setok_error *err)
{
  const char *prompt = json_string (ann, "generation_prompt");
  if (!prompt)
    return setok_fail (err, SETOK_ERR_RUNTIME, "eval: scene %llu has no generation prompt",
                       (unsigned long long)seed);
  setok_diffusion_options dopt;
  diffusion_options (o, prompt, seed, &dopt);
  setok_image img = { 0 }, sized = { 0 };
  setok_world_reading r = { 0 };
  double t0 = setok_clock_ms ();
  setok_status st = setok_diffusion_generate (d, &dopt, &img, err);
  g->generate_ms += setok_clock_ms () - t0;
  if (st == SETOK_OK)
    st = rgb_at_size (&img, setok_world_width (s), setok_world_height (s), &sized, err);
  if (st == SETOK_OK)
    st = setok_world_analyse (&r, sized.pixels, sized.width, sized.height, err);
  if (st == SETOK_OK)
    eval_score_prompt (cJSON_GetObjectItemCaseSensitive (ann, "objects"), &r, g);
  setok_world_reading_free (&r);
  setok_image_free (&sized);
  setok_image_free (&img);
  return st;
}

/* The scene's first edit of kind want, else of the kinds after it in turn;
 * -1 when it has none. */
static int
pick_edit (const cJSON *edits, int want, int *kind)
{
  for (int t = 0; t < EVAL_EDIT_KINDS; t++)
    {
      int k = (want + t) % EVAL_EDIT_KINDS, index = 0;
      const cJSON *e;
      cJSON_ArrayForEach (e, edits)
      {
        const char *name = json_string (e, "kind");
        if (name && !strcmp (name, eval_edit_kind_names[k]))
          {
            *kind = k;
            return index;
          }
        index++;
      }
    }
  return -1;
}

/* Carries out one of scene s's edits (kind want first) in its region and scores the result. */
static setok_status
edit_one (setok_diffusion *d, const eval_gen_options *o, const setok_world_scene *s, uint64_t seed,
          const cJSON *ann, int want, eval_gen_results *g, setok_error *err)
{
  const cJSON *edits = cJSON_GetObjectItemCaseSensitive (ann, "edits");
  int kind = 0, index = pick_edit (edits, want, &kind);
  if (index < 0)
    return SETOK_OK; /* a scene without edits: nothing to measure */
  const cJSON *e = cJSON_GetArrayItem (edits, index);
  const cJSON *id = cJSON_GetObjectItemCaseSensitive (e, "object");
  const char *instruction = json_string (e, "instruction");
  if (!cJSON_IsNumber (id) || !instruction)
    return setok_fail (err, SETOK_ERR_RUNTIME, "eval: scene %llu: edit %d is incomplete",
                       (unsigned long long)seed, index);
  int w = setok_world_width (s), h = setok_world_height (s);
  size_t npx = (size_t)w * h;
  setok_world_scene *target = NULL;
  setok_image src = { 0 }, mask = { 0 }, out = { 0 };
  setok_world_reading r = { 0 };
  setok_status st = setok_world_apply_edit (&target, s, index, err);
  if (st == SETOK_OK)
    st = setok_image_alloc (&src, w, h, 3, err);
  if (st == SETOK_OK)
    st = setok_image_alloc (&mask, w, h, 1, err);
  if (st == SETOK_OK)
    {
      memcpy (src.pixels, setok_world_rgb (s), npx * 3);
      eval_edit_region (s, target, id->valueint, mask.pixels);
      setok_diffusion_options dopt;
      diffusion_options (o, instruction, seed, &dopt);
      /* the composite's ramp inside the region's dilation margin: every pixel of the object
       * itself is the model's, none half the old object's */
      dopt.feather = EVAL_REGION_DILATE;
      double t0 = setok_clock_ms ();
      st = setok_diffusion_edit (d, &src, &mask, &dopt, &out, err);
      g->edit_ms += setok_clock_ms () - t0;
    }
  if (st == SETOK_OK && (out.width != w || out.height != h || out.channels != 3))
    st = setok_fail (err, SETOK_ERR_RUNTIME, "eval: the edit gave a %dx%d %d-channel image",
                     out.width, out.height, out.channels);
  if (st == SETOK_OK)
    st = setok_world_analyse (&r, out.pixels, w, h, err);
  if (st == SETOK_OK)
    {
      for (size_t p = 0; p < npx; p++)
        if (!mask.pixels[p])
          for (int c = 0; c < 3; c++)
            g->outside_abs_sum += abs (out.pixels[p * 3 + c] - src.pixels[p * 3 + c]);
      for (size_t p = 0; p < npx; p++)
        g->outside_values += mask.pixels[p] ? 0 : 3;
      bool ok = eval_edit_success (kind, id->valueint, target, mask.pixels, out.pixels, &r);
      g->edits++;
      g->edit_success += ok;
      g->kinds[kind].total++;
      g->kinds[kind].success += ok;
    }
  setok_world_reading_free (&r);
  setok_image_free (&out);
  setok_image_free (&mask);
  setok_image_free (&src);
  setok_world_free (target);
  return st;
}

bool
eval_can_generate (setok_model *model)
{
  /* a model that cannot draw is not an error: it is not measured */
  return setok_model_kind_of (model) == SETOK_MODEL_SETOKIM
         && setok_model_can (model, SETOK_CAP_GENERATE);
}

setok_status
eval_generation (const eval_gen_options *o, eval_gen_results *g, setok_error *err)
{
  memset (g, 0, sizeof *g);
  g->steps = o->steps;
  g->guidance = o->guidance;
  if (!eval_can_generate (o->model))
    return SETOK_OK;
  g->available = true;
  setok_diffusion *d = NULL;
  setok_world_options wo;
  setok_world_options_default (&wo);
  setok_status st = setok_diffusion_new (&d, o->model, err);
  /* pass 0 generates, pass 1 edits; the kinds cycle over the scenes, recolour
   * and remove first since they need no free space */
  for (int pass = 0; pass < 2 && st == SETOK_OK; pass++)
    for (int i = 0; i < o->count && st == SETOK_OK; i++)
      {
        uint64_t seed = (uint64_t)(o->seed + i);
        setok_world_scene *s = NULL;
        cJSON *ann = NULL;
        st = setok_world_generate (&s, seed, &wo, err);
        if (st == SETOK_OK && !(ann = cJSON_Parse (setok_world_json (s))))
          st = setok_fail (err, SETOK_ERR_RUNTIME, "eval: a scene's annotation is not JSON");
        if (st == SETOK_OK && pass == 0)
          st = generate_one (d, o, s, seed, ann, g, err);
        else if (st == SETOK_OK)
          st = edit_one (d, o, s, seed, ann, i % EVAL_EDIT_KINDS, g, err);
        cJSON_Delete (ann);
        setok_world_free (s);
        if (o->progress)
          cli_progress (pass == 0 ? "eval (generation)" : "eval (editing)", i + 1, o->count);
      }
  g->generate_ms = g->prompts ? g->generate_ms / g->prompts : NAN;
  g->edit_ms = g->edits ? g->edit_ms / g->edits : NAN;
  setok_diffusion_free (d);
  return st;
}
