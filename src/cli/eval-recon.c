/* eval-recon.c — the reconstruction metric of `setok eval`: each held-out
 * scene is decoded from its own SeTok merger tokens (the mapper and U-Net
 * conditioned on them, the paper's Stage-I objective, no LLM involved) and
 * the image is read by the world's analyser like a generated one. A miss in
 * generation or editing then says which half is at fault: when the scene's
 * own tokens decode to its objects, the LLM's visual-token prediction is;
 * when they do not, the tokenizer and decoder are. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval.h"
#include "setok/clock.h"
#include "setok/diffusion.h"
#include "setok/tokens.h"

/* Peak signal-to-noise ratio of two RGB images of n pixels, in dB. */
static double
psnr (const uint8_t *a, const uint8_t *b, size_t n)
{
  double se = 0.0;
  for (size_t i = 0; i < n * 3; i++)
    se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  double mse = se / (double)(n * 3);
  return mse > 0 ? 10.0 * log10 (255.0 * 255.0 / mse) : 99.0;
}

/* Scene s decoded from its own tokens, scored into r. */
static setok_status
reconstruct_one (setok_tokenizer *t, setok_diffusion *d, const eval_gen_options *o,
                 const setok_world_scene *s, uint64_t seed, eval_recon_results *r,
                 setok_error *err)
{
  int w = setok_world_width (s), h = setok_world_height (s);
  size_t npx = (size_t)w * h;
  setok_image src = { 0 }, img = { 0 }, sized = { 0 };
  setok_tokens_result tr = { 0 };
  setok_world_reading reading = { 0 };
  cJSON *ann = cJSON_Parse (setok_world_json (s));
  setok_status st = ann ? setok_image_alloc (&src, w, h, 3, err)
                        : setok_fail (err, SETOK_ERR_RUNTIME, "eval: an annotation is not JSON");
  if (st == SETOK_OK)
    {
      memcpy (src.pixels, setok_world_rgb (s), npx * 3);
      setok_tokens_options to;
      setok_tokens_options_default (&to, t);
      st = setok_tokens_run (t, &src, &to, &tr, err);
    }
  double t0 = setok_clock_ms ();
  if (st == SETOK_OK)
    {
      setok_diffusion_options dopt;
      setok_diffusion_options_default (&dopt);
      dopt.condition_tokens = tr.features;
      dopt.condition_count = tr.clusters.n_tokens;
      dopt.steps = o->steps;
      dopt.guidance = (float)o->guidance;
      dopt.seed = seed;
      st = setok_diffusion_generate (d, &dopt, &img, err);
    }
  r->ms += setok_clock_ms () - t0;
  if (st == SETOK_OK && (img.width != w || img.height != h))
    st = setok_image_resize (&sized, &img, w, h, SETOK_RESAMPLE_BILINEAR, err);
  else if (st == SETOK_OK)
    {
      sized = img;
      img = (setok_image){ 0 };
    }
  if (st == SETOK_OK && sized.channels != 3)
    st = setok_fail (err, SETOK_ERR_RUNTIME, "eval: the decoder gave %d channels",
                     sized.channels);
  if (st == SETOK_OK)
    st = setok_world_analyse (&reading, sized.pixels, w, h, err);
  if (st == SETOK_OK)
    {
      eval_score_prompt (cJSON_GetObjectItemCaseSensitive (ann, "objects"), &reading,
                         &r->score);
      r->psnr_sum += psnr (sized.pixels, src.pixels, npx);
      r->scenes++;
    }
  setok_world_reading_free (&reading);
  setok_tokens_result_free (&tr);
  setok_image_free (&sized);
  setok_image_free (&img);
  setok_image_free (&src);
  cJSON_Delete (ann);
  return st;
}

setok_status
eval_reconstruction (const eval_gen_options *o, eval_recon_results *r, setok_error *err)
{
  memset (r, 0, sizeof *r);
  if (!eval_can_generate (o->model))
    return SETOK_OK;
  r->available = true;
  setok_tokenizer *t = NULL;
  setok_diffusion *d = NULL;
  setok_world_options wo;
  setok_world_options_default (&wo);
  setok_status st = setok_tokenizer_new (&t, o->model, err);
  if (st == SETOK_OK)
    st = setok_diffusion_new (&d, o->model, err);
  for (int i = 0; i < o->count && st == SETOK_OK; i++)
    {
      uint64_t seed = (uint64_t)(o->seed + i);
      setok_world_scene *s = NULL;
      st = setok_world_generate (&s, seed, &wo, err);
      if (st == SETOK_OK)
        st = reconstruct_one (t, d, o, s, seed, r, err);
      setok_world_free (s);
      if (o->progress)
        cli_progress ("eval (reconstruction)", i + 1, o->count);
    }
  r->ms = r->scenes ? r->ms / r->scenes : NAN;
  setok_diffusion_free (d);
  setok_tokenizer_free (t);
  return st;
}

static double
ratio (int num, int den)
{
  return den > 0 ? (double)num / den : NAN;
}

void
eval_recon_json (cJSON *j, const eval_recon_results *r)
{
  cJSON *rj = cJSON_AddObjectToObject (j, "reconstruction");
  cJSON_AddBoolToObject (rj, "available", r->available);
  if (!r->available)
    return;
  const eval_gen_results *g = &r->score;
  cJSON_AddNumberToObject (rj, "scenes", r->scenes);
  cJSON_AddNumberToObject (rj, "named_objects", g->named);
  cJSON_AddNumberToObject (rj, "attribute_accuracy", ratio (g->found, g->named));
  cJSON_AddNumberToObject (rj, "colour_found", ratio (g->colour_found, g->named));
  cJSON_AddNumberToObject (rj, "shape_found", ratio (g->shape_found, g->named));
  cJSON_AddNumberToObject (rj, "scenes_satisfied", ratio (g->satisfied, g->prompts));
  cJSON_AddNumberToObject (rj, "psnr_db", r->scenes ? r->psnr_sum / r->scenes : NAN);
  cJSON_AddNumberToObject (rj, "ms_per_image", r->ms);
}

void
eval_recon_print (const eval_recon_results *r)
{
  if (!r->available)
    return;
  const eval_gen_results *g = &r->score;
  printf ("reconstruction          %5.1f %%  of %d objects found with their colour and shape\n"
          "                                 in each scene decoded from its own tokens (colour\n"
          "                                 %.1f %%, shape %.1f %%); PSNR %.1f dB, %.0f ms each\n",
          100.0 * ratio (g->found, g->named), g->named, 100.0 * ratio (g->colour_found, g->named),
          100.0 * ratio (g->shape_found, g->named),
          r->scenes ? r->psnr_sum / r->scenes : NAN, r->ms);
}
