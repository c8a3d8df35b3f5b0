/* cmd-tokens.c — `setok tokens`: an image cut into SeTok tokens, with the
 * count and timings on stdout, and optionally an overlay PNG, one mask PNG
 * per token, and a JSON description of every token. */
#include <errno.h>
#include <math.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "setok-config.h"
#include "setok/tokens.h"
#if SETOK_HAVE_CAIRO
#include "token-overlay.h"
#endif

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: setok tokens IMAGE [--model DIR | --vision DIR] [OPTIONS]\n\n"
           "Encodes IMAGE with the vision tower, groups its patches into semantic tokens\n"
           "and prints the token count and timings.\n\n"
           "  --model DIR        a SETOKIM bundle (vision tower + merger); default: the\n"
           "                     shipped setokim-tiny bundle\n"
           "  --vision DIR       a vision tower alone (CLIP, SigLIP or a LLaVA folder);\n"
           "                     tokens are cluster means\n"
           "  --mode MODE        dpc (default), soft or fixed\n"
           "  --threshold T      density-peak score threshold\n"
           "  --neighbours K     neighbours for the density estimate\n"
           "  --clusters N       fixed: the number of tokens; dpc/soft: at most N\n"
           "  --min-clusters N   at least N tokens\n"
           "  --layer L          vision feature layer (HF hidden_states index, -2 = penultimate)\n"
           "  --average          cluster means even when the model has a merger\n"
           "  --refine           masks that follow colour edges instead of patch shapes\n"
           "  --crop             the processor's centre crop instead of the whole image\n"
           "                     padded to a square\n"
           "  --overlay OUT.png  the image with tokens drawn over it: a light fill per token\n"
           "                     and its number on each piece\n"
           "  --outline          the overlay draws each token's outline instead of a fill\n"
           "  --masks DIR        one PNG mask per token (token-000.png, ...)\n"
           "  --json OUT.json    every token's area, centroid, box, score and features\n"
           "                     (- for stdout)\n"
           CLI_PLACEMENT_HELP);
}

static int
parse_int (const char *opt, const char *s, int lo, int hi, int *out)
{
  char *end;
  errno = 0;
  long v = strtol (s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return cli_usage_error ("tokens", "%s needs an integer in %d..%d, got '%s'", opt, lo, hi, s);
  *out = (int)v;
  return 0;
}

static cJSON *
token_json (const setok_tokens_result *r, int t)
{
  const setok_token_info *ti = &r->clusters.tokens[t];
  const setok_token_region *g = &r->regions[t];
  cJSON *o = cJSON_CreateObject ();
  cJSON_AddNumberToObject (o, "index", t);
  cJSON_AddNumberToObject (o, "centre_patch", ti->centre);
  cJSON_AddNumberToObject (o, "score", ti->score);
  cJSON_AddNumberToObject (o, "area_patches", ti->area);
  cJSON_AddNumberToObject (o, "area_pixels", (double)g->area);
  cJSON_AddNumberToObject (o, "area_fraction",
                           (double)g->area / ((double)r->width * (double)r->height));
  double c[2] = { g->cx, g->cy };
  cJSON_AddItemToObject (o, "centroid", cJSON_CreateDoubleArray (c, 2));
  int box[4] = { g->x0, g->y0, g->x1, g->y1 };
  cJSON_AddItemToObject (o, "bbox", cJSON_CreateIntArray (box, 4));
  int pbox[4] = { ti->x0, ti->y0, ti->x1, ti->y1 };
  cJSON_AddItemToObject (o, "bbox_patches", cJSON_CreateIntArray (pbox, 4));
  cJSON_AddItemToObject (o, "features",
                         cJSON_CreateFloatArray (r->features + (size_t)t * r->dim, r->dim));
  return o;
}

static int
write_json (const char *path, const char *image_path, const setok_model *m,
            const setok_tokenizer *tk, const setok_tokens_options *o,
            const setok_tokens_result *r)
{
  cJSON *root = cJSON_CreateObject ();
  cJSON_AddStringToObject (root, "image", image_path);
  cJSON_AddNumberToObject (root, "width", r->width);
  cJSON_AddNumberToObject (root, "height", r->height);
  cJSON_AddStringToObject (root, "device", setok_model_device (m));
  cJSON *p = cJSON_AddObjectToObject (root, "clustering");
  cJSON_AddStringToObject (p, "mode", setok_cluster_mode_name (o->cluster.mode));
  cJSON_AddNumberToObject (p, "neighbours", o->cluster.k);
  cJSON_AddNumberToObject (p, "threshold", o->cluster.threshold);
  cJSON_AddNumberToObject (p, "min_clusters", o->cluster.min_clusters);
  cJSON_AddNumberToObject (p, "max_clusters", o->cluster.max_clusters);
  if (o->cluster.mode == SETOK_CLUSTER_FIXED)
    cJSON_AddNumberToObject (p, "fixed_k", o->cluster.fixed_k);
  cJSON_AddStringToObject (root, "fit", setok_image_fit_name (o->fit));
  cJSON_AddStringToObject (root, "features",
                           setok_tokenizer_merger (tk) && !o->average ? "merger" : "average");
  cJSON *g = cJSON_AddObjectToObject (root, "grid");
  cJSON_AddNumberToObject (g, "width", r->map.grid_w);
  cJSON_AddNumberToObject (g, "height", r->map.grid_h);
  cJSON_AddNumberToObject (g, "patch", r->map.patch);
  cJSON_AddNumberToObject (root, "n_tokens", r->clusters.n_tokens);
  cJSON *tm = cJSON_AddObjectToObject (root, "timings_ms");
  cJSON_AddNumberToObject (tm, "encode", r->timings.encode_ms);
  cJSON_AddNumberToObject (tm, "cluster", r->timings.cluster_ms);
  cJSON_AddNumberToObject (tm, "merge", r->timings.merge_ms);
  cJSON_AddNumberToObject (tm, "masks", r->timings.masks_ms);
  cJSON_AddNumberToObject (tm, "total", r->timings.total_ms);
  cJSON *tokens = cJSON_AddArrayToObject (root, "tokens");
  for (int t = 0; t < r->clusters.n_tokens; t++)
    cJSON_AddItemToArray (tokens, token_json (r, t));
  if (!strcmp (path, "-"))
    return cli_print_json (root);
  char *text = cJSON_Print (root);
  cJSON_Delete (root);
  FILE *f = text ? fopen (path, "w") : NULL;
  int ok = f && fputs (text, f) >= 0 && fputc ('\n', f) != EOF;
  if (f && fclose (f) != 0)
    ok = 0;
  free (text);
  if (!ok)
    {
      fprintf (stderr, "setok: %s: cannot write: %s\n", path, strerror (errno));
      return CLI_EXIT_FAILURE;
    }
  return CLI_EXIT_OK;
}

static int
write_masks (const char *dir, const setok_tokens_result *r)
{
  if (mkdir (dir, 0777) != 0 && errno != EEXIST)
    {
      fprintf (stderr, "setok: %s: cannot create: %s\n", dir, strerror (errno));
      return CLI_EXIT_FAILURE;
    }
  setok_error err = { 0 };
  setok_image mask = { 0 };
  if (setok_image_alloc (&mask, r->width, r->height, 1, &err) != SETOK_OK)
    return cli_report (&err);
  int64_t n = (int64_t)r->width * r->height;
  int rc = CLI_EXIT_OK;
  for (int t = 0; t < r->clusters.n_tokens && rc == CLI_EXIT_OK; t++)
    {
      for (int64_t p = 0; p < n; p++)
        mask.pixels[p] = r->pixel_labels[p] == t ? 255 : 0;
      char path[4096];
      snprintf (path, sizeof path, "%s/token-%03d.png", dir, t);
      if (setok_image_save_png (&mask, path, &err) != SETOK_OK)
        rc = cli_report (&err);
    }
  setok_image_free (&mask);
  return rc;
}

int
cmd_tokens (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "model", required_argument, NULL, 'm' },
    { "vision", required_argument, NULL, 'v' },
    { "mode", required_argument, NULL, 'M' },
    { "threshold", required_argument, NULL, 't' },
    { "neighbours", required_argument, NULL, 'k' },
    { "neighbors", required_argument, NULL, 'k' },
    { "clusters", required_argument, NULL, 'c' },
    { "min-clusters", required_argument, NULL, 'n' },
    { "layer", required_argument, NULL, 'l' },
    { "average", no_argument, NULL, 'a' },
    { "refine", no_argument, NULL, 'R' },
    { "crop", no_argument, NULL, 'C' },
    { "overlay", required_argument, NULL, 'o' },
    { "outline", no_argument, NULL, 'O' },
    { "masks", required_argument, NULL, 'K' },
    { "json", required_argument, NULL, 'j' },
    CLI_PLACEMENT_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *model = NULL, *vision = NULL, *mode = NULL, *overlay = NULL, *masks = NULL;
  const char *json = NULL;
  cli_placement place;
  cli_placement_default (&place);
  int k = -1, clusters = -1, min_clusters = -1, layer = SETOK_TOKENS_DEFAULT_LAYER;
  double threshold = NAN;
  bool average = false, refine = false, crop = false, outline = false;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    {
      switch (c)
        {
          case 'm':
            model = optarg;
            break;
          case 'v':
            vision = optarg;
            break;
          case 'M':
            mode = optarg;
            break;
          case 't':
            {
              char *end;
              threshold = strtod (optarg, &end);
              if (end == optarg || *end || !isfinite (threshold))
                return cli_usage_error ("tokens", "--threshold needs a number, got '%s'", optarg);
              break;
            }
          case 'k':
            if (parse_int ("--neighbours", optarg, 1, 1 << 20, &k))
              return CLI_EXIT_USAGE;
            break;
          case 'c':
            if (parse_int ("--clusters", optarg, 1, 1 << 20, &clusters))
              return CLI_EXIT_USAGE;
            break;
          case 'n':
            if (parse_int ("--min-clusters", optarg, 1, 1 << 20, &min_clusters))
              return CLI_EXIT_USAGE;
            break;
          case 'l':
            if (parse_int ("--layer", optarg, -1000, 1000, &layer))
              return CLI_EXIT_USAGE;
            break;
          case 'a':
            average = true;
            break;
          case 'R':
            refine = true;
            break;
          case 'C':
            crop = true;
            break;
          case 'o':
            overlay = optarg;
            break;
          case 'O':
            outline = true;
            break;
          case 'K':
            masks = optarg;
            break;
          case 'j':
            json = optarg;
            break;
          case 'h':
            usage (stdout);
            return CLI_EXIT_OK;
          default:
            {
              int rc = cli_placement_option ("tokens", c, optarg, &place);
              if (rc < 0)
                return cli_usage_error ("tokens", "unknown or incomplete option '%s'",
                                        argv[optind - 1]);
              if (rc > 0)
                return rc;
            }
        }
    }
  if (optind != argc - 1)
    return cli_usage_error ("tokens", "expected one IMAGE");
  if (model && vision)
    return cli_usage_error ("tokens", "give --model DIR or --vision DIR, not both");
#if !SETOK_HAVE_CAIRO
  if (overlay)
    {
      fprintf (stderr, "setok: --overlay needs cairo, which this build lacks\n");
      return CLI_EXIT_FAILURE;
    }
#endif
  const char *image_path = argv[optind];

  setok_error err = { 0 };
  if (!vision && !(model = cli_model_path (model, &err)))
    return cli_report (&err);
  setok_image image = { 0 };
  if (setok_image_load (&image, image_path, 0, &err) != SETOK_OK)
    return cli_report (&err);
  setok_model *m = NULL;
  setok_tokenizer *tk = NULL;
  if (cli_open_model (&m, model ? model : vision, &place, NULL, &err) != SETOK_OK
      || setok_tokenizer_new (&tk, m, &err) != SETOK_OK)
    {
      setok_model_free (m);
      setok_image_free (&image);
      return cli_report (&err);
    }
  setok_tokens_options o;
  setok_tokens_options_default (&o, tk);
  o.cancel = cli_cancel_on_interrupt ();
  if (mode && (o.cluster.mode = setok_cluster_mode_from_name (mode)) == SETOK_CLUSTER_MODE_COUNT)
    {
      setok_tokenizer_free (tk);
      setok_model_free (m);
      setok_image_free (&image);
      return cli_usage_error ("tokens", "--mode must be dpc, soft or fixed, got '%s'", mode);
    }
  if (!isnan (threshold))
    o.cluster.threshold = (float)threshold;
  if (k > 0)
    o.cluster.k = k;
  if (min_clusters > 0)
    o.cluster.min_clusters = min_clusters;
  if (clusters > 0)
    {
      if (o.cluster.mode == SETOK_CLUSTER_FIXED)
        o.cluster.fixed_k = clusters;
      else
        o.cluster.max_clusters = clusters;
    }
  if (o.cluster.max_clusters && o.cluster.min_clusters > o.cluster.max_clusters)
    o.cluster.min_clusters = o.cluster.max_clusters;
  o.average = average;
  o.refine_masks = refine;
  o.fit = crop ? SETOK_IMAGE_FIT_CROP : SETOK_IMAGE_FIT_PAD;
  o.feature_layer = layer;

  setok_tokens_result r = { 0 };
  int rc = CLI_EXIT_OK;
  if (setok_tokens_run (tk, &image, &o, &r, &err) != SETOK_OK)
    rc = cli_report (&err);
  if (rc == CLI_EXIT_OK && (!json || strcmp (json, "-")))
    printf ("%d tokens from %d x %d patches (%s, %s) — encode %.1f ms, "
            "cluster %.1f ms, %s %.1f ms, masks %.1f ms, total %.1f ms\n",
            r.clusters.n_tokens, r.map.grid_w, r.map.grid_h,
            setok_cluster_mode_name (o.cluster.mode), setok_model_device (m),
            r.timings.encode_ms, r.timings.cluster_ms,
            setok_tokenizer_merger (tk) && !average ? "merger" : "average", r.timings.merge_ms,
            r.timings.masks_ms, r.timings.total_ms);
#if SETOK_HAVE_CAIRO
  if (rc == CLI_EXIT_OK && overlay
      && token_overlay_write_png (overlay, &image, r.pixel_labels, r.clusters.n_tokens, NULL,
                                  outline ? TOKEN_OVERLAY_OUTLINE : TOKEN_OVERLAY_FILL,
                                  TOKEN_OVERLAY_DEFAULT_ALPHA, &err)
           != SETOK_OK)
    rc = cli_report (&err);
#endif
  if (rc == CLI_EXIT_OK && masks)
    rc = write_masks (masks, &r);
  if (rc == CLI_EXIT_OK && json)
    rc = write_json (json, image_path, m, tk, &o, &r);
  setok_tokens_result_free (&r);
  setok_tokenizer_free (tk);
  setok_model_free (m);
  setok_image_free (&image);
  return rc;
}
