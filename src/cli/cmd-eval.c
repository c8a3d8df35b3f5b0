/* cmd-eval.c — `setok eval`: the model measured on held-out scenes of the
 * synthetic world (setok/world.h), with the engine itself: question answering
 * by question type, how well the SeTok tokens follow the objects (mean best
 * IoU of each object with a token, and the rank correlation of tokens per
 * image with objects per image), the clustering ablation of the paper's
 * Table 5 (density peaks vs fixed k vs soft), and, for models that generate,
 * generation and editing scored by the world's image analyser (eval-gen.c,
 * eval-score.c). Prints a table; --json for machines; --plots DIR draws the
 * charts (eval-plots.c). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval.h"
#include "setok/chat.h"
#include "setok/clock.h"
#include "setok/tokens.h"
#include "setok/world.h"

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: setok eval [--model DIR] [--seed S] [--count N] [--json] [--plots DIR]\n\n"
           "Measures the model on N held-out scenes of the synthetic world (seeds S, S+1,\n"
           "...; the training data never uses seeds from 1000000 up):\n"
           "  question answering   exact-match accuracy, overall and per question type\n"
           "                       (colour, shape, size, count, exist, relation)\n"
           "  token alignment      mean over objects of the best IoU of the object's pixels\n"
           "                       with one token's pixels, with patch-shaped and with\n"
           "                       edge-refined masks; tokens per image vs objects per image\n"
           "                       (Spearman rank correlation)\n"
           "  ablation             the same alignment with fixed-k (k = the mean token count\n"
           "                       of density peaks) and soft clustering (paper Table 5)\n"
           "  generation           (models that generate) each scene's generation prompt\n"
           "                       drawn, then read by the world's own image analyser:\n"
           "                       the fraction of named objects found with their colour\n"
           "                       and shape, colour alone, shape alone, and of prompts\n"
           "                       with every object found\n"
           "  editing              one edit per scene (recolour, remove, add, move, resize in\n"
           "                       turn) in the object's region: success by kind against\n"
           "                       the exact target, and the mean |change| outside the\n"
           "                       region (0..255, expected 0)\n"
           "  reconstruction       (models that generate) each scene decoded from its own\n"
           "                       SeTok tokens, read like a generated image: a miss in\n"
           "                       generation says whether the decoder or the LLM is at fault\n"
           "  referring            (models with a segment token) each scene's referring\n"
           "                       expressions through the mask decoder: mean IoU with the\n"
           "                       object's exact mask, and the share with IoU >= 0.5\n\n"
           "  --model DIR     a SETOKIM bundle (default: the shipped setokim-tiny)\n"
           "  --seed S        the first scene (default 1000000)\n"
           "  --count N       scenes (default 200)\n"
           "  --questions Q   at most Q questions per scene (default: all)\n"
           "  --no-qa         skip question answering (token metrics only)\n"
           "  --answers F     every question, its expected and its given answer as JSON\n"
           "                  lines in F (to compare dtypes, weights or models)\n"
           "  --gen-count N   scenes to generate and edit (default: --count, at most 50;\n"
           "                  0: as --no-gen)\n"
           "  --gen-steps N   denoising steps (default 20)\n"
           "  --gen-guidance G  classifier-free guidance (default 3)\n"
           "  --no-gen        skip generation and editing\n"
           "  --plots DIR     write tokens-vs-objects.png, qa-by-type.png, ablation.png\n"
           "                  and generation.png\n"
           "  --json          the results as JSON on stdout\n"
           CLI_PLACEMENT_HELP);
}

/* Lower case, letters and digits only: "Red." and " red" are both "red". */
static void
normalize_answer (const char *in, char *out, size_t size)
{
  size_t n = 0;
  for (; *in && n + 1 < size; in++)
    {
      char c = *in;
      if (c >= 'A' && c <= 'Z')
        c = (char)(c - 'A' + 'a');
      if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        out[n++] = c;
    }
  out[n] = '\0';
}

static int
type_index (eval_results *r, const char *type)
{
  for (int i = 0; i < r->n_types; i++)
    if (!strcmp (r->types[i].name, type))
      return i;
  if (r->n_types == EVAL_MAX_TYPES)
    return -1;
  snprintf (r->types[r->n_types].name, sizeof r->types[0].name, "%s", type);
  return r->n_types++;
}

/* Spearman's rho: Pearson correlation of the ranks (ties get their mean rank). */
static void
ranks (const double *x, int n, double *out)
{
  for (int i = 0; i < n; i++)
    {
      int below = 0, equal = 0;
      for (int j = 0; j < n; j++)
        {
          below += x[j] < x[i];
          equal += x[j] == x[i];
        }
      out[i] = below + (equal + 1) / 2.0;
    }
}

double
eval_spearman (const double *x, const double *y, int n)
{
  if (n < 2)
    return NAN;
  double *rx = malloc ((size_t)n * sizeof *rx), *ry = malloc ((size_t)n * sizeof *ry);
  if (!rx || !ry)
    {
      free (rx);
      free (ry);
      return NAN;
    }
  ranks (x, n, rx);
  ranks (y, n, ry);
  double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
  for (int i = 0; i < n; i++)
    {
      mx += rx[i] / n;
      my += ry[i] / n;
    }
  for (int i = 0; i < n; i++)
    {
      sxy += (rx[i] - mx) * (ry[i] - my);
      sxx += (rx[i] - mx) * (rx[i] - mx);
      syy += (ry[i] - my) * (ry[i] - my);
    }
  free (rx);
  free (ry);
  return sxx > 0 && syy > 0 ? sxy / sqrt (sxx * syy) : NAN;
}

/* Mean over the scene's objects of the best IoU with one token; adds to *sum, *count. */
static void
alignment (const setok_tokens_result *tr, const uint8_t *labels, int n_objects, double *sum,
           int *count)
{
  int n_tok = tr->clusters.n_tokens;
  size_t npx = (size_t)tr->width * tr->height;
  int64_t *inter = calloc ((size_t)n_tok * (n_objects + 1), sizeof *inter);
  int64_t *tok_area = calloc ((size_t)n_tok + 1, sizeof *tok_area);
  int64_t *obj_area = calloc ((size_t)n_objects + 1, sizeof *obj_area);
  if (inter && tok_area && obj_area)
    {
      for (size_t p = 0; p < npx; p++)
        {
          int k = tr->pixel_labels[p], o = labels[p];
          if (o > n_objects)
            continue;
          obj_area[o]++;
          if (k >= 0 && k < n_tok)
            {
              tok_area[k]++;
              inter[(size_t)k * (n_objects + 1) + o]++;
            }
        }
      for (int o = 1; o <= n_objects; o++)
        {
          if (obj_area[o] == 0)
            continue;
          double best = 0.0;
          for (int k = 0; k < n_tok; k++)
            {
              int64_t i = inter[(size_t)k * (n_objects + 1) + o];
              double iou = (double)i / (double)(obj_area[o] + tok_area[k] - i);
              best = iou > best ? iou : best;
            }
          *sum += best;
          (*count)++;
        }
    }
  free (inter);
  free (tok_area);
  free (obj_area);
}

typedef struct eval_args
{
  const char *model, *plots, *answers;
  cli_placement place;
  long seed;
  int count, questions;
  int gen_count, gen_steps; /* gen_count -1: min (count, 50) */
  double gen_guidance;
  bool json, qa, gen;
  const atomic_bool *cancel; /* Ctrl-C */
} eval_args;

/* One scene's image and labels as a setok_image + its parsed annotation. */
static setok_status
scene_image (const setok_world_scene *s, setok_image *img, cJSON **ann, setok_error *err)
{
  int w = setok_world_width (s), h = setok_world_height (s);
  setok_status st = setok_image_alloc (img, w, h, 3, err);
  if (st == SETOK_OK)
    memcpy (img->pixels, setok_world_rgb (s), (size_t)w * h * 3);
  *ann = cJSON_Parse (setok_world_json (s));
  if (st == SETOK_OK && !*ann)
    st = setok_fail (err, SETOK_ERR_RUNTIME, "eval: a scene's annotation is not JSON");
  return st;
}

static setok_status
run_tokens (setok_tokenizer *t, const setok_image *img, setok_cluster_mode mode, int fixed_k,
            bool refine, const atomic_bool *cancel, setok_tokens_result *tr, setok_error *err)
{
  setok_tokens_options o;
  setok_tokens_options_default (&o, t);
  o.cancel = cancel;
  o.cluster.mode = mode;
  o.refine_masks = refine;
  if (mode == SETOK_CLUSTER_FIXED)
    o.cluster.fixed_k = fixed_k;
  return setok_tokens_run (t, img, &o, tr, err);
}

/* One line of --answers: {"scene", "type", "question", "expected", "answer"}. */
static void
write_answer (FILE *f, long scene, const char *type, const char *question, const char *expected,
              const char *answer)
{
  cJSON *o = cJSON_CreateObject ();
  cJSON_AddNumberToObject (o, "scene", (double)scene);
  cJSON_AddStringToObject (o, "type", type);
  cJSON_AddStringToObject (o, "question", question);
  cJSON_AddStringToObject (o, "expected", expected);
  cJSON_AddStringToObject (o, "answer", answer ? answer : "");
  char *line = cJSON_PrintUnformatted (o);
  if (line)
    fprintf (f, "%s\n", line);
  cJSON_free (line);
  cJSON_Delete (o);
}

static setok_status
evaluate (const eval_args *a, setok_model *model, eval_results *r, setok_error *err)
{
  setok_tokenizer *t = NULL;
  setok_chat *chat = NULL;
  setok_tokens_result tr = { 0 };
  setok_world_options wo;
  setok_world_options_default (&wo);
  setok_status st = setok_tokenizer_new (&t, model, err);
  if (st == SETOK_OK && a->qa)
    st = setok_chat_new (&chat, model, 0, err);
  FILE *answers = NULL;
  if (st == SETOK_OK && a->qa && a->answers && !(answers = fopen (a->answers, "w")))
    st = setok_fail (err, SETOK_ERR_INPUT, "%s: %s", a->answers, strerror (errno));
  r->tokens = calloc ((size_t)a->count, sizeof *r->tokens);
  r->objects = calloc ((size_t)a->count, sizeof *r->objects);
  if (st == SETOK_OK && (!r->tokens || !r->objects))
    st = setok_fail (err, SETOK_ERR_NOMEM, "eval: out of memory");
  double align_sum[EVAL_PASSES] = { 0 };
  int align_count[EVAL_PASSES] = { 0 };
  long total_tokens = 0;
  double t_tokens = 0, t_qa = 0;
  /* pass 0: density peaks (and questions); the mean token count sets fixed-k for pass 1;
   * pass 2: soft; pass 3: density peaks with edge-refined pixel masks */
  for (int pass = 0; pass < EVAL_PASSES && st == SETOK_OK; pass++)
    {
      int fixed_k = a->count > 0 ? (int)lround ((double)total_tokens / a->count) : 1;
      fixed_k = fixed_k < 1 ? 1 : fixed_k;
      setok_cluster_mode mode = pass == 1   ? SETOK_CLUSTER_FIXED
                                : pass == 2 ? SETOK_CLUSTER_SOFT
                                            : SETOK_CLUSTER_DPC;
      for (int i = 0; i < a->count && st == SETOK_OK; i++)
        {
          setok_world_scene *s = NULL;
          setok_image img = { 0 };
          cJSON *ann = NULL;
          st = setok_world_generate (&s, (uint64_t)(a->seed + i), &wo, err);
          if (st == SETOK_OK)
            st = scene_image (s, &img, &ann, err);
          int n_objects = cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (ann, "objects"));
          double t0 = setok_clock_ms ();
          if (st == SETOK_OK)
            st = run_tokens (t, &img, mode, fixed_k, pass == 3, a->cancel, &tr, err);
          t_tokens += setok_clock_ms () - t0;
          if (st == SETOK_OK)
            {
              alignment (&tr, setok_world_labels (s), n_objects, &align_sum[pass],
                         &align_count[pass]);
              if (pass == 0)
                {
                  r->tokens[i] = tr.clusters.n_tokens;
                  r->objects[i] = n_objects;
                  total_tokens += tr.clusters.n_tokens;
                }
            }
          const cJSON *qa = cJSON_GetObjectItemCaseSensitive (ann, "qa"), *item;
          int asked = 0;
          double t1 = setok_clock_ms ();
          cJSON_ArrayForEach (item, qa)
          {
            if (pass != 0 || !chat || st != SETOK_OK || (a->questions > 0 && asked >= a->questions))
              break;
            const cJSON *q = cJSON_GetObjectItemCaseSensitive (item, "question");
            const cJSON *ans = cJSON_GetObjectItemCaseSensitive (item, "answer");
            const cJSON *type = cJSON_GetObjectItemCaseSensitive (item, "type");
            if (!cJSON_IsString (q) || !cJSON_IsString (ans) || !cJSON_IsString (type))
              continue;
            setok_chat_options o;
            setok_chat_options_default (&o);
            o.sampling.max_new_tokens = 8;
            o.cancel = a->cancel;
            setok_chat_result res = { 0 };
            /* the image is encoded once per scene; each question is a new conversation */
            if (asked == 0)
              st = setok_chat_start (chat, &img, &o, err);
            else
              setok_chat_restart (chat, &o);
            if (st == SETOK_OK)
              st = setok_chat_ask (chat, q->valuestring, &o, &res, err);
            if (st == SETOK_OK)
              {
                char got[64], want[64];
                normalize_answer (res.text, got, sizeof got);
                normalize_answer (ans->valuestring, want, sizeof want);
                int k = type_index (r, type->valuestring);
                bool ok = !strcmp (got, want);
                if (answers)
                  write_answer (answers, a->seed + i, type->valuestring, q->valuestring,
                                ans->valuestring, res.text);
                r->qa_total++;
                r->qa_correct += ok;
                if (k >= 0)
                  {
                    r->types[k].total++;
                    r->types[k].correct += ok;
                  }
              }
            setok_chat_result_free (&res);
            asked++;
          }
          t_qa += setok_clock_ms () - t1;
          cJSON_Delete (ann);
          setok_image_free (&img);
          setok_world_free (s);
          if (!a->json)
            cli_progress (pass == 0   ? "eval (density peaks, QA)"
                          : pass == 1 ? "eval (fixed-k)"
                          : pass == 2 ? "eval (soft)"
                                      : "eval (refined masks)",
                          i + 1, a->count);
        }
      if (pass == 1)
        r->fixed_k = fixed_k;
    }
  for (int p = 0; p < EVAL_PASSES; p++)
    r->alignment[p] = align_count[p] ? align_sum[p] / align_count[p] : NAN;
  r->n_scenes = a->count;
  r->tokens_ms = t_tokens / ((double)EVAL_PASSES * (a->count > 0 ? a->count : 1));
  r->qa_ms = r->qa_total ? t_qa / r->qa_total : 0.0;
  r->spearman = eval_spearman (r->tokens, r->objects, a->count);
  double mt = 0, mo = 0;
  for (int i = 0; i < a->count; i++)
    {
      mt += r->tokens[i] / a->count;
      mo += r->objects[i] / a->count;
    }
  r->mean_tokens = mt;
  r->mean_objects = mo;
  setok_tokens_result_free (&tr);
  setok_chat_free (chat);
  setok_tokenizer_free (t);
  if (answers && fclose (answers) != 0 && st == SETOK_OK)
    st = setok_fail (err, SETOK_ERR_RUNTIME, "%s: write failed", a->answers);
  return st;
}

static double
ratio (int num, int den)
{
  return den > 0 ? (double)num / den : NAN;
}

static void
gen_json (cJSON *j, const eval_gen_results *g)
{
  cJSON *gj = cJSON_AddObjectToObject (j, "generation");
  cJSON *ej = cJSON_AddObjectToObject (j, "edit");
  cJSON_AddBoolToObject (gj, "available", g->available);
  cJSON_AddBoolToObject (ej, "available", g->available);
  if (!g->available)
    return;
  cJSON_AddNumberToObject (gj, "prompts", g->prompts);
  cJSON_AddNumberToObject (gj, "named_objects", g->named);
  cJSON_AddNumberToObject (gj, "attribute_accuracy", ratio (g->found, g->named));
  cJSON_AddNumberToObject (gj, "colour_found", ratio (g->colour_found, g->named));
  cJSON_AddNumberToObject (gj, "shape_found", ratio (g->shape_found, g->named));
  cJSON_AddNumberToObject (gj, "prompts_satisfied", ratio (g->satisfied, g->prompts));
  cJSON_AddNumberToObject (gj, "steps", g->steps);
  cJSON_AddNumberToObject (gj, "guidance", g->guidance);
  cJSON_AddNumberToObject (gj, "ms_per_image", g->generate_ms);
  cJSON_AddNumberToObject (ej, "edits", g->edits);
  cJSON_AddNumberToObject (ej, "success", ratio (g->edit_success, g->edits));
  cJSON *by = cJSON_AddObjectToObject (ej, "by_kind");
  for (int k = 0; k < EVAL_EDIT_KINDS; k++)
    {
      if (g->kinds[k].total == 0)
        continue;
      cJSON *kj = cJSON_AddObjectToObject (by, eval_edit_kind_names[k]);
      cJSON_AddNumberToObject (kj, "edits", g->kinds[k].total);
      cJSON_AddNumberToObject (kj, "success", ratio (g->kinds[k].success, g->kinds[k].total));
    }
  cJSON_AddNumberToObject (ej, "mean_abs_diff_outside",
                           g->outside_values ? g->outside_abs_sum / g->outside_values : NAN);
  cJSON_AddNumberToObject (ej, "ms_per_edit", g->edit_ms);
}

static cJSON *
results_json (const eval_results *r, const char *model, bool gen)
{
  cJSON *j = cJSON_CreateObject ();
  cJSON_AddStringToObject (j, "model", model);
  cJSON_AddNumberToObject (j, "scenes", r->n_scenes);
  cJSON *qa = cJSON_AddObjectToObject (j, "qa");
  cJSON_AddNumberToObject (qa, "questions", r->qa_total);
  cJSON_AddNumberToObject (qa, "accuracy", r->qa_total ? (double)r->qa_correct / r->qa_total : 0);
  cJSON *by = cJSON_AddObjectToObject (qa, "by_type");
  for (int i = 0; i < r->n_types; i++)
    {
      cJSON *t = cJSON_AddObjectToObject (by, r->types[i].name);
      cJSON_AddNumberToObject (t, "questions", r->types[i].total);
      cJSON_AddNumberToObject (t, "accuracy", (double)r->types[i].correct / r->types[i].total);
    }
  cJSON_AddNumberToObject (qa, "ms_per_question", r->qa_ms);
  cJSON *tk = cJSON_AddObjectToObject (j, "tokens");
  cJSON_AddNumberToObject (tk, "alignment", r->alignment[0]);
  cJSON_AddNumberToObject (tk, "alignment_refined_masks", r->alignment[3]);
  cJSON_AddNumberToObject (tk, "spearman_tokens_objects", r->spearman);
  cJSON_AddNumberToObject (tk, "mean_tokens", r->mean_tokens);
  cJSON_AddNumberToObject (tk, "mean_objects", r->mean_objects);
  cJSON_AddNumberToObject (tk, "ms_per_image", r->tokens_ms);
  cJSON *ab = cJSON_AddObjectToObject (j, "ablation_alignment");
  cJSON_AddNumberToObject (ab, "dpc", r->alignment[0]);
  cJSON_AddNumberToObject (ab, "fixed_k", r->alignment[1]);
  cJSON_AddNumberToObject (ab, "k", r->fixed_k);
  cJSON_AddNumberToObject (ab, "soft", r->alignment[2]);
  if (gen)
    gen_json (j, &r->gen);
  if (gen)
    eval_recon_json (j, &r->recon);
  const eval_referring_results *rf = &r->referring;
  cJSON *rj = cJSON_AddObjectToObject (j, "referring");
  cJSON_AddBoolToObject (rj, "available", rf->available);
  if (rf->available)
    {
      cJSON_AddNumberToObject (rj, "expressions", rf->expressions);
      cJSON_AddNumberToObject (rj, "miou", rf->expressions ? rf->iou_sum / rf->expressions : NAN);
      cJSON_AddNumberToObject (rj, "hit_rate_iou50", ratio (rf->hits, rf->expressions));
      cJSON_AddNumberToObject (rj, "ms_per_expression", rf->segment_ms);
    }
  return j;
}

static void
print_gen_table (const eval_gen_results *g)
{
  printf (
    "generation              %5.1f %%  of %d named objects found with their colour and\n"
    "                                 shape (colour %.1f %%, shape %.1f %%); %.1f %% of %d\n"
    "                                 prompts satisfied (%d steps, guidance %g, %.0f ms each)\n",
    100.0 * ratio (g->found, g->named), g->named, 100.0 * ratio (g->colour_found, g->named),
    100.0 * ratio (g->shape_found, g->named), 100.0 * ratio (g->satisfied, g->prompts), g->prompts,
    g->steps, g->guidance, g->generate_ms);
  printf ("editing                 %5.1f %%  of %d edits succeeded (%.0f ms each)\n",
          100.0 * ratio (g->edit_success, g->edits), g->edits, g->edit_ms);
  for (int k = 0; k < EVAL_EDIT_KINDS; k++)
    if (g->kinds[k].total > 0)
      printf ("  %-20s  %5.1f %%  (%d)\n", eval_edit_kind_names[k],
              100.0 * ratio (g->kinds[k].success, g->kinds[k].total), g->kinds[k].total);
  printf ("  outside the region    mean |change| %.3f (0..255)\n",
          g->outside_values ? g->outside_abs_sum / g->outside_values : NAN);
}

static void
print_table (const eval_results *r, const char *model, bool gen)
{
  printf ("setok eval — %s, %d held-out scenes\n\n", model, r->n_scenes);
  if (r->qa_total)
    {
      printf ("question answering      %5.1f %%  (%d questions, %.0f ms each)\n",
              100.0 * r->qa_correct / r->qa_total, r->qa_total, r->qa_ms);
      for (int i = 0; i < r->n_types; i++)
        printf ("  %-20s  %5.1f %%  (%d)\n", r->types[i].name,
                100.0 * r->types[i].correct / r->types[i].total, r->types[i].total);
    }
  printf ("token alignment         %5.3f   (mean best IoU of each object with a token; %.3f\n"
          "                                 with the edge-refined masks)\n",
          r->alignment[0], r->alignment[3]);
  printf ("tokens vs objects       rho %.3f (Spearman), %.2f tokens and %.2f objects per image\n",
          r->spearman, r->mean_tokens, r->mean_objects);
  printf ("ablation (alignment)    density peaks %.3f, fixed k=%d %.3f, soft %.3f\n",
          r->alignment[0], r->fixed_k, r->alignment[1], r->alignment[2]);
  printf ("tokens per image        %.0f ms\n", r->tokens_ms);
  const eval_referring_results *rf = &r->referring;
  if (rf->available)
    printf ("referring segmentation  mIoU %.3f (%d expressions; %.1f %% with IoU >= 0.5; %.0f ms\n"
            "                                 each)\n",
            rf->expressions ? rf->iou_sum / rf->expressions : NAN, rf->expressions,
            100.0 * ratio (rf->hits, rf->expressions), rf->segment_ms);
  else
    printf ("referring segmentation: not in this model\n");
  if (gen && r->gen.available)
    print_gen_table (&r->gen);
  else if (gen)
    printf ("generation: not in this model\n");
  if (gen)
    eval_recon_print (&r->recon);
}

static void
referring_progress (int done, int total, void *user)
{
  (void)user;
  cli_progress ("eval (referring)", done, total);
}

int
cmd_eval (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "model", required_argument, NULL, 'm' },
    { "seed", required_argument, NULL, 's' },
    { "count", required_argument, NULL, 'n' },
    { "questions", required_argument, NULL, 'q' },
    { "no-qa", no_argument, NULL, 'Q' },
    { "answers", required_argument, NULL, 'A' },
    { "gen-count", required_argument, NULL, 'G' },
    { "gen-steps", required_argument, NULL, 'S' },
    { "gen-guidance", required_argument, NULL, 'g' },
    { "no-gen", no_argument, NULL, 'N' },
    { "plots", required_argument, NULL, 'p' },
    { "json", no_argument, NULL, 'j' },
    CLI_PLACEMENT_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  eval_args a = { .seed = 1000000,
                  .count = 200,
                  .qa = true,
                  .gen = true,
                  .gen_count = -1,
                  .gen_steps = 20,
                  .gen_guidance = 3.0 };
  cli_placement_default (&a.place);
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    {
      char *end = NULL;
      long v = 0;
      if (c == 's' || c == 'n' || c == 'q' || c == 'G' || c == 'S')
        {
          v = strtol (optarg, &end, 10);
          if (end == optarg || *end || v < 0 || v > 1000000000L)
            return cli_usage_error ("eval", "'%s' needs a non-negative integer, got '%s'",
                                    argv[optind - 1], optarg);
        }
      switch (c)
        {
          case 'm':
            a.model = optarg;
            break;
          case 's':
            a.seed = v;
            break;
          case 'n':
            if (v < 1 || v > 100000)
              return cli_usage_error ("eval", "--count must be 1..100000");
            a.count = (int)v;
            break;
          case 'q':
            a.questions = (int)v;
            break;
          case 'Q':
            a.qa = false;
            break;
          case 'A':
            a.answers = optarg;
            break;
          case 'G':
            a.gen_count = (int)(v < 100000 ? v : 100000);
            a.gen = a.gen && v > 0; /* 0: no generation, as --no-gen */
            break;
          case 'S':
            if (v < 1 || v > 1000)
              return cli_usage_error ("eval", "--gen-steps must be 1..1000");
            a.gen_steps = (int)v;
            break;
          case 'g':
            {
              double gd = strtod (optarg, &end);
              if (end == optarg || *end || !(gd >= 0.0 && gd <= 100.0))
                return cli_usage_error (
                  "eval", "--gen-guidance must be a number in [0, 100], got '%s'", optarg);
              a.gen_guidance = gd;
            }
            break;
          case 'N':
            a.gen = false;
            break;
          case 'p':
            a.plots = optarg;
            break;
          case 'j':
            a.json = true;
            break;
          case 'h':
            usage (stdout);
            return CLI_EXIT_OK;
          default:
            {
              int rc = cli_placement_option ("eval", c, optarg, &a.place);
              if (rc < 0)
                return cli_usage_error ("eval", "unknown or incomplete option '%s'",
                                        argv[optind - 1]);
              if (rc > 0)
                return rc;
            }
        }
    }
  if (optind != argc)
    return cli_usage_error ("eval", "unexpected argument '%s'", argv[optind]);
  setok_error err = { 0 };
  const char *path = cli_model_path (a.model, &err);
  setok_model *model = NULL;
  if (!path || cli_open_model (&model, path, &a.place, NULL, &err) != SETOK_OK)
    return cli_report (&err);
  eval_results r = { 0 };
  a.cancel = cli_cancel_on_interrupt ();
  setok_status st = evaluate (&a, model, &r, &err);
  if (st == SETOK_OK)
    {
      setok_world_options wo;
      setok_world_options_default (&wo);
      st = eval_referring (model, (uint64_t)a.seed, a.count, &wo, a.cancel,
                           a.json ? NULL : referring_progress, NULL, &r.referring, &err);
    }
  if (st == SETOK_OK && a.gen)
    {
      eval_gen_options go = {
        .model = model,
        .seed = a.seed,
        .count = a.gen_count >= 0 ? a.gen_count : (a.count < 50 ? a.count : 50),
        .steps = a.gen_steps,
        .guidance = a.gen_guidance,
        .progress = !a.json,
        .cancel = a.cancel,
      };
      st = eval_generation (&go, &r.gen, &err);
      if (st == SETOK_OK)
        st = eval_reconstruction (&go, &r.recon, &err);
    }
  if (st == SETOK_OK && a.plots)
    st = eval_plots (&r, a.plots, &err);
  int rc = CLI_EXIT_OK;
  if (st == SETOK_OK && a.json)
    rc = cli_print_json (results_json (&r, path, a.gen));
  else if (st == SETOK_OK)
    print_table (&r, path, a.gen);
  free (r.tokens);
  free (r.objects);
  setok_model_free (model);
  return st == SETOK_OK ? rc : cli_report (&err);
}
