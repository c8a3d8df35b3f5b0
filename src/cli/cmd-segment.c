/* cmd-segment.c — `setok segment`: the object under one or more points (or in
 * a box), or named by a phrase, as a mask PNG: from the image's SeTok tokens,
 * from a bundle's mask decoder, or from a SAM folder (setok/segment.h). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "setok/clock.h"
#include "setok/segment.h"

#define MAX_POINTS 64

static void
usage (FILE *out)
{
  fprintf (out, "Usage: setok segment IMAGE (--point X,Y... | --box X0,Y0,X1,Y1 | --text PHRASE)\n"
                "                     -o MASK.png [OPTIONS]\n\n"
                "Writes the mask of the object under the points: the semantic tokens (SeTok\n"
                "clusters) that cover them, with edges refined to follow the image. With\n"
                "--text (or --decoder) the bundle's mask decoder draws the mask instead: the\n"
                "language model reads the image and the phrase (referring segmentation), and\n"
                "any points are further prompts; the score is the decoder's predicted IoU.\n"
                "With a SAM folder (transformers' SamModel layout, e.g. facebook/sam-vit-base)\n"
                "as --model, SAM segments the points and the box: its image encoder runs once\n"
                "per image, then the prompt encoder and mask decoder; the score is SAM's\n"
                "predicted IoU.\n\n"
                "  --point X,Y         a pixel on the object (repeat to add tokens or points)\n"
                "  --background X,Y    a pixel whose token (SAM: a point) is not the object\n"
                "  --box X0,Y0,X1,Y1   SAM: a box around the object\n"
                "  --multimask         SAM: its three masks, the one of best predicted IoU written\n"
                "  --all-masks         SAM: with --multimask, also MASK-1.png .. MASK-3.png\n"
                "  --text PHRASE       the object, in words (\"the red circle\")\n"
                "  --decoder           segment the points with the mask decoder, not tokens\n"
                "  -o, --output M.png  the mask (white = the object), the image's size\n"
                "  --model DIR         a SETOKIM bundle or a SAM folder (default: the shipped\n"
                "                      setokim-tiny)\n"
                "  --vision DIR        a vision tower alone (CLIP, SigLIP or a LLaVA folder)\n"
                "  --mode MODE         dpc (default), soft or fixed clustering\n"
                "  --threshold T       density-peak score threshold\n"
                "  --clusters N        fixed: the number of tokens; dpc/soft: at most N\n"
                "  --patch-masks       the tokens' patch-grid masks, without edge refinement\n"
                "  --crop              the processor's centre crop instead of the whole image\n"
                "                      padded to a square\n"
                "  --json              area, score, tokens and timings as JSON on stdout\n"
                CLI_PLACEMENT_HELP);
}

static int
parse_point (const char *s, setok_segment_point *p, bool fg)
{
  char *end;
  long x = strtol (s, &end, 10);
  if (end == s || *end != ',')
    return -1;
  const char *ys = end + 1;
  long y = strtol (ys, &end, 10);
  if (end == ys || *end || x < 0 || y < 0 || x > 1 << 24 || y > 1 << 24)
    return -1;
  *p = (setok_segment_point){ (int)x, (int)y, fg };
  return 0;
}

static int
parse_box (const char *s, int box[4])
{
  char extra;
  if (sscanf (s, "%d,%d,%d,%d%c", &box[0], &box[1], &box[2], &box[3], &extra) != 4)
    return -1;
  return box[0] >= 0 && box[1] >= 0 && box[0] < box[2] && box[1] < box[3] ? 0 : -1;
}

/* MASK.png -> MASK-k.png (k from 1, as SamModel numbers its multimask outputs). */
static void
candidate_path (char *buf, size_t size, const char *out, int k)
{
  const char *dot = strrchr (out, '.'), *slash = strrchr (out, '/');
  int stem = dot && (!slash || dot > slash) ? (int)(dot - out) : (int)strlen (out);
  snprintf (buf, size, "%.*s-%d%s", stem, out, k, dot && stem < (int)strlen (out) ? dot : "");
}

/* Writes the mask (and a prompt's candidate masks) and reports them (JSON or a line); text
 * NULL: the tokens' mask. */
static int
finish (setok_status st, const setok_segment_result *r, const char *out, const char *text,
        const char *device, double load_ms, double segment_ms, bool json, setok_error *err)
{
  char path[4096];
  if (st == SETOK_OK)
    st = setok_image_save_png (&r->mask, out, err);
  for (int i = 0; st == SETOK_OK && i < r->n_masks; i++)
    {
      candidate_path (path, sizeof path, out, i + 1);
      st = setok_image_save_png (&r->masks[i], path, err);
    }
  if (st != SETOK_OK)
    return cli_report (err);
  bool tokens = device == NULL;
  if (!json)
    {
      if (tokens)
        printf ("%s: %lld pixels, %d of %d tokens, score %.3f, %.0f ms\n", out, (long long)r->area,
                r->n_tokens, r->tokens_result.clusters.n_tokens, r->score, segment_ms);
      else
        printf ("%s: %lld pixels, predicted IoU %.3f, %.0f ms\n", out, (long long)r->area, r->score,
                segment_ms);
      return CLI_EXIT_OK;
    }
  cJSON *j = cJSON_CreateObject ();
  cJSON_AddStringToObject (j, "output", out);
  if (text)
    cJSON_AddStringToObject (j, "text", text);
  cJSON_AddStringToObject (j, "method", tokens ? "tokens" : "mask_decoder");
  cJSON_AddNumberToObject (j, "area", (double)r->area);
  cJSON_AddNumberToObject (j, "score", r->score);
  if (tokens)
    {
      cJSON *toks = cJSON_AddArrayToObject (j, "tokens");
      for (int i = 0; i < r->n_tokens; i++)
        cJSON_AddItemToArray (toks, cJSON_CreateNumber (r->tokens[i]));
      cJSON_AddNumberToObject (j, "n_tokens_in_image", r->tokens_result.clusters.n_tokens);
    }
  else
    cJSON_AddStringToObject (j, "device", device);
  cJSON *cands = r->n_masks ? cJSON_AddArrayToObject (j, "masks") : NULL;
  for (int i = 0; i < r->n_masks; i++)
    {
      cJSON *c = cJSON_CreateObject ();
      candidate_path (path, sizeof path, out, i + 1);
      cJSON_AddStringToObject (c, "output", path);
      cJSON_AddNumberToObject (c, "score", r->scores[i]);
      cJSON_AddBoolToObject (c, "chosen", i == r->chosen);
      cJSON_AddItemToArray (cands, c);
    }
  cJSON_AddNumberToObject (j, "load_ms", load_ms);
  cJSON_AddNumberToObject (j, "segment_ms", segment_ms);
  return cli_print_json (j);
}

/* Whether dir is a SAM folder (the model decides; a folder it cannot open is not). */
static bool
is_sam_folder (const char *dir)
{
  setok_model_options o;
  setok_model_options_default (&o);
  o.device = "cpu";
  o.threads = 1;
  setok_model *m = NULL;
  if (setok_model_open (&m, dir, &o, NULL) != SETOK_OK)
    return false;
  bool sam = setok_model_kind_of (m) == SETOK_MODEL_SAM;
  setok_model_free (m);
  return sam;
}

/* A SAM folder without a processor config runs with SamImageProcessor's defaults: say so. */
static void
note_sam_processor (setok_model *m)
{
  setok_sam_vision *enc = NULL;
  if (setok_model_kind_of (m) != SETOK_MODEL_SAM || setok_model_sam_vision (m, &enc, NULL))
    return;
  const setok_sam_preprocessor *pp = setok_sam_vision_get_preprocessor (enc);
  if (!pp->source[0])
    fprintf (stderr, "setok: note: %s has no preprocessor_config.json or processor_config.json; "
                     "using SamImageProcessor's defaults (longest side %d, padded to %dx%d, "
                     "ImageNet mean and std)\n", setok_model_dir (m), pp->longest_edge,
             pp->pad_width, pp->pad_height);
}

/* --text / --decoder, or a SAM folder: the mask decoder. */
static int
segment_by_decoder (const char *image_path, const char *model, const char *text,
                    const setok_segment_prompt *prompt, setok_image_fit fit, const char *out,
                    const cli_placement *place, bool json)
{
  setok_error err = { 0 };
  setok_image image = { 0 };
  setok_model *m = NULL;
  setok_segmenter *s = NULL;
  setok_segment_result r = { 0 };
  double t0 = setok_clock_ms (), t_load = t0;
  const char *path = cli_model_path (model, &err);
  setok_status st = path ? setok_image_load (&image, image_path, 0, &err) : err.status;
  if (st == SETOK_OK)
    st = cli_open_model (&m, path, place, NULL, &err);
  if (st == SETOK_OK && text)
    st = setok_model_require (m, SETOK_CAP_SEGMENT_PHRASE, &err);
  if (st == SETOK_OK)
    st = setok_segmenter_new (&s, m, &err);
  if (st == SETOK_OK)
    {
      setok_segmenter_set_image_fit (s, fit);
      note_sam_processor (m);
      t_load = setok_clock_ms ();
      st = text ? setok_segmenter_run (s, &image, text, prompt->points, prompt->n_points,
                                       cli_cancel_on_interrupt (), &r, &err)
                : setok_segmenter_run_prompt (s, &image, prompt, cli_cancel_on_interrupt (), &r,
                                              &err);
    }
  double t_done = setok_clock_ms ();
  int rc = finish (st, &r, out, text, m ? setok_model_device (m) : "", t_load - t0,
                   t_done - t_load, json, &err);
  setok_segment_result_free (&r);
  setok_segmenter_free (s);
  setok_model_free (m);
  setok_image_free (&image);
  return rc;
}

int
cmd_segment (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "point", required_argument, NULL, 'p' },
    { "background", required_argument, NULL, 'b' },
    { "output", required_argument, NULL, 'o' },
    { "model", required_argument, NULL, 'm' },
    { "vision", required_argument, NULL, 'v' },
    { "mode", required_argument, NULL, 'M' },
    { "threshold", required_argument, NULL, 'T' },
    { "clusters", required_argument, NULL, 'c' },
    { "patch-masks", no_argument, NULL, 'P' },
    { "crop", no_argument, NULL, 'C' },
    { "json", no_argument, NULL, 'j' },
    CLI_PLACEMENT_OPTIONS,
    { "text", required_argument, NULL, 'x' },
    { "decoder", no_argument, NULL, 'D' },
    { "box", required_argument, NULL, 'B' },
    { "multimask", no_argument, NULL, 'U' },
    { "all-masks", no_argument, NULL, 'A' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  setok_segment_point points[MAX_POINTS];
  int n_points = 0, clusters = -1;
  const char *out = NULL, *model = NULL, *vision = NULL, *mode = NULL;
  cli_placement place;
  cli_placement_default (&place);
  const char *text = NULL;
  double threshold = -1.0;
  bool json = false, patch_masks = false, decoder = false;
  setok_image_fit fit = SETOK_IMAGE_FIT_PAD;
  setok_segment_prompt prompt = { .points = points };
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long (argc, argv, "o:h", longopts, NULL)) != -1)
    {
      char *end;
      switch (c)
        {
          case 'p':
          case 'b':
            if (n_points == MAX_POINTS)
              return cli_usage_error ("segment", "at most %d points", MAX_POINTS);
            if (parse_point (optarg, &points[n_points], c == 'p'))
              return cli_usage_error ("segment", "%s needs X,Y pixel coordinates, got '%s'",
                                      c == 'p' ? "--point" : "--background", optarg);
            n_points++;
            break;
          case 'o':
            out = optarg;
            break;
          case 'm':
            model = optarg;
            break;
          case 'v':
            vision = optarg;
            break;
          case 'M':
            mode = optarg;
            break;
          case 'T':
            threshold = strtod (optarg, &end);
            if (end == optarg || *end || !(threshold >= 0.0))
              return cli_usage_error ("segment", "--threshold needs a number >= 0, got '%s'",
                                      optarg);
            break;
          case 'c':
            clusters = (int)strtol (optarg, &end, 10);
            if (end == optarg || *end || clusters < 1 || clusters > 100000)
              return cli_usage_error ("segment", "--clusters needs a count >= 1, got '%s'", optarg);
            break;
          case 'P':
            patch_masks = true;
            break;
          case 'C':
            fit = SETOK_IMAGE_FIT_CROP;
            break;
          case 'j':
            json = true;
            break;
          case 'x':
            text = optarg;
            break;
          case 'D':
            decoder = true;
            break;
          case 'B':
            if (parse_box (optarg, prompt.box))
              return cli_usage_error ("segment", "--box needs X0,Y0,X1,Y1 pixels with X0 < X1 "
                                                 "and Y0 < Y1, got '%s'", optarg);
            prompt.has_box = true;
            break;
          case 'U':
            prompt.multimask = true;
            break;
          case 'A':
            prompt.multimask = prompt.all_masks = true;
            break;
          case 'h':
            usage (stdout);
            return CLI_EXIT_OK;
          default:
            {
              int rc = cli_placement_option ("segment", c, optarg, &place);
              if (rc < 0)
                return cli_usage_error ("segment", "unknown or incomplete option '%s'",
                                        argv[optind - 1]);
              if (rc > 0)
                return rc;
            }
        }
    }
  if (optind != argc - 1)
    return cli_usage_error ("segment", "give exactly one IMAGE");
  if (!out)
    return cli_usage_error ("segment", "-o MASK.png is required");
  if (n_points == 0 && !text && !prompt.has_box)
    return cli_usage_error ("segment", "give at least one --point X,Y, a --box, or --text "
                                       "PHRASE");
  if (model && vision)
    return cli_usage_error ("segment", "give --model or --vision, not both");
  bool sam_only = prompt.has_box || prompt.multimask;
  if (sam_only && (vision || text))
    return cli_usage_error ("segment", "--box, --multimask and --all-masks need a SAM folder as "
                                       "--model, without --text");
  prompt.n_points = n_points;
  if (text || decoder || sam_only || (model && is_sam_folder (model)))
    {
      if (vision)
        return cli_usage_error ("segment", "--text and --decoder need a bundle (--model), not "
                                           "--vision");
      return segment_by_decoder (argv[optind], model, text, &prompt, fit, out, &place, json);
    }
  setok_cluster_mode cmode = SETOK_CLUSTER_DPC;
  if (mode && !strcmp (mode, "soft"))
    cmode = SETOK_CLUSTER_SOFT;
  else if (mode && !strcmp (mode, "fixed"))
    cmode = SETOK_CLUSTER_FIXED;
  else if (mode && strcmp (mode, "dpc"))
    return cli_usage_error ("segment", "--mode must be dpc, soft or fixed, got '%s'", mode);

  setok_error err = { 0 };
  setok_image image = { 0 };
  setok_model *m = NULL;
  setok_tokenizer *t = NULL;
  setok_segment_result r = { 0 };
  double t0 = setok_clock_ms (), t_load = t0;
  const char *path = vision ? vision : cli_model_path (model, &err);
  setok_status st = path ? setok_image_load (&image, argv[optind], 0, &err) : err.status;
  if (st == SETOK_OK)
    st = cli_open_model (&m, path, &place, NULL, &err);
  if (st == SETOK_OK)
    st = setok_tokenizer_new (&t, m, &err);
  if (st == SETOK_OK)
    {
      setok_tokens_options o;
      setok_tokens_options_default (&o, t);
      o.cancel = cli_cancel_on_interrupt ();
      o.refine_masks = !patch_masks;
      o.fit = fit;
      if (mode)
        o.cluster.mode = cmode;
      if (threshold >= 0.0)
        o.cluster.threshold = (float)threshold;
      if (clusters > 0 && cmode == SETOK_CLUSTER_FIXED)
        o.cluster.fixed_k = clusters;
      else if (clusters > 0)
        o.cluster.max_clusters = clusters;
      t_load = setok_clock_ms ();
      st = setok_segment_points (t, &image, points, n_points, &o, &r, &err);
    }
  double t_done = setok_clock_ms ();
  int rc = finish (st, &r, out, NULL, NULL, t_load - t0, t_done - t_load, json, &err);
  setok_segment_result_free (&r);
  setok_tokenizer_free (t);
  setok_model_free (m);
  setok_image_free (&image);
  return rc;
}
