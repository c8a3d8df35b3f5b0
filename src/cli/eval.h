/* eval.h — what `setok eval` (cmd-eval.c) measures, and its charts (eval-plots.c). */
#ifndef SETOK_CLI_EVAL_H
#define SETOK_CLI_EVAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "setok/error.h"
#include "setok/model.h"
#include "setok/world.h"

#include "eval-referring.h"

#define EVAL_MAX_TYPES 16
#define EVAL_PASSES 4 /* density peaks, fixed k, soft, density peaks with refined masks */
/* the world's edit kinds, in the order of the annotation's names */
enum
{
  EVAL_RECOLOUR,
  EVAL_REMOVE,
  EVAL_ADD,
  EVAL_MOVE,
  EVAL_RESIZE,
  EVAL_EDIT_KINDS
};

/* Generation and editing on held-out scenes (eval-gen.c), scored by the
 * world's own image analyser (setok_world_analyse), never by the model. */
typedef struct eval_gen_results
{
  bool available; /* the model has generation components; else nothing below ran */
  int steps;
  double guidance;
  /* generation: every object the scene's generation prompt names (its colour and shape) */
  int prompts, named;
  int found;          /* named objects matched by a component of that colour and shape */
  int colour_found;   /* ... matched on colour alone */
  int shape_found;    /* ... matched on shape alone */
  int satisfied;      /* prompts whose named objects were all found */
  double generate_ms; /* per image */
  /* editing: one edit per scene */
  int edits, edit_success;
  struct
  {
    int total, success;
  } kinds[EVAL_EDIT_KINDS];
  double outside_abs_sum; /* sum of |result - source| over channels outside the regions */
  long outside_values;    /* the channel values summed */
  double edit_ms;         /* per edit */
} eval_gen_results;

/* Each scene decoded from its own SeTok tokens (eval-recon.c), scored like a
 * generation of its prompt (score.prompts counts the scenes). */
typedef struct eval_recon_results
{
  bool available;
  int scenes;
  eval_gen_results score;
  double psnr_sum; /* dB, summed over scenes: the decoded image against the scene */
  double ms;       /* per image */
} eval_recon_results;

typedef struct eval_results
{
  int n_scenes;
  int qa_total, qa_correct;
  struct
  {
    char name[32];
    int total, correct;
  } types[EVAL_MAX_TYPES];
  int n_types;
  double *tokens, *objects; /* [n_scenes]: density-peak tokens and objects per image */
  double spearman, mean_tokens, mean_objects;
  double alignment[EVAL_PASSES]; /* mean best IoU per pass (EVAL_PASSES) */
  int fixed_k;
  double tokens_ms, qa_ms;
  eval_gen_results gen;
  eval_recon_results recon;
  eval_referring_results referring;
} eval_results;

/* Spearman's rank correlation of x and y; NaN when undefined. */
double eval_spearman (const double *x, const double *y, int n);

/* ---- scoring (eval-score.c): pure functions of scenes and images ---- */

extern const char *const eval_edit_kind_names[EVAL_EDIT_KINDS];

/* Counts toward g->named/found/colour_found/shape_found/satisfied (one more
 * prompt) for the reading r of an image generated from the prompt of the
 * scene whose annotation "objects" are objects. Multiset matches: each
 * component counts for at most one named object. A component has a shape
 * only when its fitted shape's IoU is at least EVAL_MIN_SHAPE_IOU (noise
 * blobs have none). */
#define EVAL_MIN_SHAPE_IOU 0.6
void eval_score_prompt (const cJSON *objects, const setok_world_reading *r, eval_gen_results *g);

/* The region of an edit of object id (0 for none) of src into target: the
 * object's pixels in either scene, dilated by EVAL_REGION_DILATE pixels
 * (Chebyshev). mask [h*w] gets 255 inside, 0 outside; returns its pixels. */
#define EVAL_REGION_DILATE 2
int eval_edit_region (const setok_world_scene *src, const setok_world_scene *target, int id,
                      uint8_t *mask);

/* Whether an edit of kind (EVAL_RECOLOUR...) on object id succeeded in the
 * result image rgb (the target's size), read by the analyser as r, against
 * the exact target scene; region is eval_edit_region's mask.
 *   recolour  the most frequent reading over the target object's pixels is the
 *             new colour (background counts as a reading)
 *   remove    at least EVAL_REMOVE_MIN_BACKGROUND of the region's pixels that are
 *             background in the target read as background: no object colour, and
 *             within EVAL_BACKGROUND_DISTANCE (RGB) of the target's pixel
 *   add, move, resize  a component with the target object's colour and shape
 *             (fitted with IoU >= EVAL_MIN_SHAPE_IOU; resize: and size class) has
 *             IoU >= EVAL_MIN_IOU with the target object's pixels */
#define EVAL_REMOVE_MIN_BACKGROUND 0.75
#define EVAL_BACKGROUND_DISTANCE 40
#define EVAL_MIN_IOU 0.5
bool eval_edit_success (int kind, int id, const setok_world_scene *target, const uint8_t *region,
                        const uint8_t *rgb, const setok_world_reading *r);

/* ---- generation and editing with the model (eval-gen.c) ---- */

typedef struct eval_gen_options
{
  setok_model *model;
  long seed;       /* the first scene */
  int count;       /* scenes: one generation and one edit each */
  int steps;       /* denoising steps */
  double guidance; /* classifier-free guidance */
  bool progress;   /* progress lines on a TTY */
  const atomic_bool *cancel;
} eval_gen_options;

/* Whether model is a SETOKIM bundle that generates (others are not measured). */
bool eval_can_generate (setok_model *model);
/* Fills g; g->available false (and SETOK_OK) when the model cannot generate. */
setok_status eval_generation (const eval_gen_options *o, eval_gen_results *g, setok_error *err);

/* ---- reconstruction from the scene's own tokens (eval-recon.c) ---- */

/* Fills r over o's scenes (o->count, steps, guidance); r->available false when the model
 * cannot generate. */
setok_status eval_reconstruction (const eval_gen_options *o, eval_recon_results *r,
                                  setok_error *err);
/* The "reconstruction" key of the JSON, and the table's line. */
void eval_recon_json (cJSON *j, const eval_recon_results *r);
void eval_recon_print (const eval_recon_results *r);

/* tokens-vs-objects.png, qa-by-type.png and ablation.png in dir (created if missing), and
 * generation.png when r->gen.available. */
setok_status eval_plots (const eval_results *r, const char *dir, setok_error *err);

#endif
