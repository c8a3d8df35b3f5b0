/* cmd-generate.c — `setok generate` and `setok edit`: text-to-image and
 * point-and-instruct region editing on a SETOKIM bundle or a Stable
 * Diffusion folder (setok/diffusion.h). The edit region is a mask file, or,
 * for a point, the SeTok token under it or the bundle's mask decoder's mask
 * (setok/segment.h). Each role (the folder that edits, the one that finds the
 * region) is a model folder of its own; one folder in two roles opens once. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "setok/clock.h"
#include "setok/bundle.h"
#include "setok/diffusion.h"
#include "setok/safetensors.h"
#include "setok/segment.h"
#include "setok/tokens.h"

typedef struct gen_args
{
  setok_diffusion_options o;
  const char *model, *out, *latents_in, *latents_out, *preview_dir;
  const char *mask_in, *mask_out;
  const char *edit_model, *segment_model; /* the roles' own folders, or NULL */
  cli_placement place;
  bool region_mask; /* --region mask: the mask decoder's mask for the point */
  int point_x, point_y;
  bool has_point, has_context, whole_image, json;
} gen_args;

static void
generate_usage (FILE *out)
{
  fprintf (out,
           "Usage: setok generate \"PROMPT\" -o OUT.png [--model DIR] [OPTIONS]\n\n"
           "Draws an image from a text prompt. With a SETOKIM bundle the language model\n"
           "emits the image's visual tokens, which the Q-Former, U-Net and VAE turn into\n"
           "pixels; a diffusers Stable Diffusion folder (text_encoder/ tokenizer/ unet/\n"
           "vae/ scheduler/) draws from the CLIP-encoded prompt (an inpainting U-Net\n"
           "with 9 input channels draws with an all-white mask).\n\n"
           "  -o, --output OUT.png    where the image goes\n"
           "  --model DIR             a SETOKIM bundle or a Stable Diffusion folder\n"
           "                          (default: the shipped setokim-tiny bundle)\n"
           "  --edit-model DIR        the folder that generates (default: --model)\n"
           "  --negative TEXT         what the image should not show (Stable Diffusion)\n"
           "  --steps N               denoising steps (default 25)\n"
           "  --guidance G            classifier-free guidance scale (default 7.5; <= 1: off)\n"
           "  --seed S                noise seed (default 0); the same seed gives the same image\n"
           "  --size WxH              image size (default: the model's, e.g. 512x512); a\n"
           "                          multiple of the model's size step\n"
           "  --scheduler NAME        ddim, euler, euler_a or dpm++2m (default: the folder's)\n"
           "  --preview-dir DIR       write a cheap preview PNG every --preview-every steps\n"
           "  --preview-every N       (default 5)\n"
           "  --latents IN.safetensors   start from these latents ('latents' [1, C, h, w],\n"
           "                          unit noise) instead of seeded noise\n"
           "  --latents-out OUT.safetensors   save the final latents\n"
           "  --json                  timings and settings as JSON on stdout\n"
           CLI_PLACEMENT_HELP);
}

static void
edit_usage (FILE *out)
{
  fprintf (out,
           "Usage: setok edit IMAGE (--point X,Y | --mask MASK.png) \"INSTRUCTION\" -o OUT.png\n"
           "                  [--model DIR] [OPTIONS]\n\n"
           "Changes one region of IMAGE as the instruction says; every pixel outside the\n"
           "region stays exactly as it was. With --point the region is the semantic token\n"
           "under the point (SeTok clusters of a vision model); with --mask it is the\n"
           "mask's white part. Images of any size are accepted (up to 89478485 pixels):\n"
           "the model edits a window around the region - its bounding box with --context\n"
           "pixels around it, grown to a square of at least the model's own size (512 px\n"
           "for SD-1.5) - scaled down to the model's size only when it is larger, and the\n"
           "result is pasted back at the image's full resolution. --whole-image edits the\n"
           "whole image at the model's size instead.\n"
           "A SETOKIM bundle's language model reads the image and the instruction and\n"
           "emits the edited image's visual tokens, which condition the repainting; a\n"
           "4-channel Stable Diffusion U-Net repaints the region from the instruction as a\n"
           "prompt; an InstructPix2Pix U-Net (8 channels) follows it as an instruction; an\n"
           "inpainting U-Net (9 channels) repaints the region from the prompt, given the\n"
           "mask and the image around it.\n\n"
           "Roles: the edit model is --edit-model, else --model, else the shipped bundle;\n"
           "the model that finds the region under --point is --segment-model, else --model\n"
           "when it can, else the shipped bundle. A folder named for a role it cannot\n"
           "serve is refused with the reason.\n\n"
           "  -o, --output OUT.png    the edited image\n"
           "  --model DIR             a SETOKIM bundle, or a Stable Diffusion (InstructPix2Pix,\n"
           "                          inpainting) folder (default: the shipped setokim-tiny\n"
           "                          bundle)\n"
           "  --edit-model DIR        the folder that edits (default: --model)\n"
           "  --segment-model DIR     the folder whose tokens (or mask decoder) pick the\n"
           "                          region under --point (default: --model when it has\n"
           "                          tokens, else the shipped bundle); --vision is the same\n"
           "  --point X,Y             pixel coordinates of the object to edit\n"
           "  --region token|mask     with --point: the token under it (default), or the\n"
           "                          mask the bundle's mask decoder draws for the point\n"
           "  --mask MASK.png         the region as a mask (white = edit) instead of a point\n"
           "  --mask-out MASK.png     write the region that was used\n"
           "  --context PX            pixels of the image around the region the model sees\n"
           "                          (default %d)\n"
           "  --whole-image           edit the whole image at the model's size\n"
           "  --strength S            how much of the region is redrawn, (0, 1] (default 0.8;\n"
           "                          InstructPix2Pix always starts from noise)\n"
           "  --image-guidance G      InstructPix2Pix image guidance (default 1.5)\n"
           "  --feather PX            the region's edge blends over PX pixels inside it\n"
           "                          (default 4; 0: hard edge)\n"
           "  --latents IN.safetensors   the initial noise ('latents' [1, C, h, w]: the\n"
           "                          window's model size over the VAE's downscale)\n"
           "  --latents-out OUT.safetensors   save the final latents\n"
           "  --json                  the roles' folders, the window, timings as JSON\n"
           "  --negative, --steps, --guidance, --seed, --scheduler, --preview-dir,\n"
           "  --preview-every, --device, --threads, --dtype, --weights   as for\n"
           "  `setok generate`\n",
           SETOK_DIFFUSION_DEFAULT_CONTEXT);
}

static int
parse_number (const char *cmd, const char *opt, const char *s, double lo, double hi, double *out)
{
  char *end;
  errno = 0;
  double v = strtod (s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi))
    return cli_usage_error (cmd, "%s needs a number in [%g, %g], got '%s'", opt, lo, hi, s);
  *out = v;
  return 0;
}

typedef struct progress_ctx
{
  const char *label, *preview_dir;
} progress_ctx;

static void
on_step (int step, int total, void *user)
{
  const progress_ctx *p = user;
  cli_progress (p->label, step, total);
}

static void
on_preview (const setok_image *preview, int step, void *user)
{
  const progress_ctx *p = user;
  char path[4096];
  setok_error err = { 0 };
  snprintf (path, sizeof path, "%s/preview-%03d.png", p->preview_dir, step);
  if (setok_image_save_png (preview, path, &err) != SETOK_OK)
    fprintf (stderr, "setok: preview not written: %s\n", err.message);
}

/* Parses the options both commands take; the rest stay in argv[optind..). */
static int
parse_args (const char *cmd, int argc, char **argv, void (*usage) (FILE *), gen_args *a)
{
  static const struct option longopts[] = {
    { "output", required_argument, NULL, 'o' },
    { "model", required_argument, NULL, 'm' },
    { "negative", required_argument, NULL, 'n' },
    { "steps", required_argument, NULL, 's' },
    { "guidance", required_argument, NULL, 'g' },
    { "seed", required_argument, NULL, 'S' },
    { "size", required_argument, NULL, 'z' },
    { "scheduler", required_argument, NULL, 'k' },
    { "preview-dir", required_argument, NULL, 'P' },
    { "preview-every", required_argument, NULL, 'E' },
    { "latents", required_argument, NULL, 'l' },
    { "latents-out", required_argument, NULL, 'L' },
    { "point", required_argument, NULL, 'p' },
    { "mask", required_argument, NULL, 'M' },
    { "mask-out", required_argument, NULL, 'O' },
    { "vision", required_argument, NULL, 'v' },
    { "segment-model", required_argument, NULL, 'v' },
    { "edit-model", required_argument, NULL, 'e' },
    { "context", required_argument, NULL, 'c' },
    { "whole-image", no_argument, NULL, 'W' },
    { "strength", required_argument, NULL, 'r' },
    { "region", required_argument, NULL, 'R' },
    { "image-guidance", required_argument, NULL, 'i' },
    { "feather", required_argument, NULL, 'f' },
    { "json", no_argument, NULL, 'j' },
    CLI_PLACEMENT_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool edit = !strcmp (cmd, "edit");
  memset (a, 0, sizeof *a);
  setok_diffusion_options_default (&a->o);
  a->o.cancel = cli_cancel_on_interrupt ();
  a->o.preview_every = 5;
  cli_placement_default (&a->place);
  optind = 1;
  opterr = 0;
  int c;
  double v = 0;
  int which = 0;
  while ((c = getopt_long (argc, argv, "o:h", longopts, &which)) != -1)
    {
      int rc = 0;
      bool edit_only = c == 'p' || c == 'M' || c == 'O' || c == 'v' || c == 'r' || c == 'i'
                       || c == 'f' || c == 'c' || c == 'W';
      bool generate_only = c == 'z';
      if ((edit_only && !edit) || (generate_only && edit))
        return cli_usage_error (cmd, "--%s is not an option of setok %s", longopts[which].name,
                                cmd);
      switch (c)
        {
          case 'o':
            a->out = optarg;
            break;
          case 'm':
            a->model = optarg;
            break;
          case 'n':
            a->o.negative_prompt = optarg;
            break;
          case 's':
            rc = parse_number (cmd, "--steps", optarg, 1, 1000, &v);
            a->o.steps = (int)v;
            break;
          case 'g':
            rc = parse_number (cmd, "--guidance", optarg, 0, 100, &v);
            a->o.guidance = (float)v;
            break;
          case 'S':
            rc = parse_number (cmd, "--seed", optarg, 0, 9007199254740992.0, &v);
            a->o.seed = (uint64_t)v;
            break;
          case 'z':
            if (sscanf (optarg, "%dx%d", &a->o.width, &a->o.height) != 2 || a->o.width < 1
                || a->o.height < 1)
              return cli_usage_error (cmd, "--size needs WxH, e.g. 512x512, got '%s'", optarg);
            break;
          case 'k':
            a->o.scheduler = setok_scheduler_kind_from_name (optarg);
            if (a->o.scheduler == SETOK_SCHEDULER_KIND_COUNT)
              return cli_usage_error (cmd,
                                      "unknown --scheduler '%s' (ddim, euler, euler_a, "
                                      "dpm++2m)",
                                      optarg);
            break;
          case 'P':
            a->preview_dir = optarg;
            break;
          case 'E':
            rc = parse_number (cmd, "--preview-every", optarg, 1, 1000, &v);
            a->o.preview_every = (int)v;
            break;
          case 'l':
            a->latents_in = optarg;
            break;
          case 'L':
            a->latents_out = optarg;
            break;
          case 'p':
            if (sscanf (optarg, "%d,%d", &a->point_x, &a->point_y) != 2 || a->point_x < 0
                || a->point_y < 0)
              return cli_usage_error (cmd, "--point needs X,Y pixel coordinates, got '%s'", optarg);
            a->has_point = true;
            break;
          case 'M':
            a->mask_in = optarg;
            break;
          case 'O':
            a->mask_out = optarg;
            break;
          case 'v':
            a->segment_model = optarg;
            break;
          case 'e':
            a->edit_model = optarg;
            break;
          case 'c':
            rc = parse_number (cmd, "--context", optarg, 0, 65536, &v);
            a->o.context = (int)v;
            a->has_context = true;
            break;
          case 'W':
            a->whole_image = true;
            break;
          case 'r':
            rc = parse_number (cmd, "--strength", optarg, 1e-3, 1, &v);
            a->o.strength = (float)v;
            break;
          case 'i':
            rc = parse_number (cmd, "--image-guidance", optarg, 0, 100, &v);
            a->o.image_guidance = (float)v;
            break;
          case 'f':
            rc = parse_number (cmd, "--feather", optarg, 0, 256, &v);
            a->o.feather = (int)v;
            break;
          case 'j':
            a->json = true;
            break;
          case 'R':
            if (strcmp (optarg, "token") && strcmp (optarg, "mask"))
              return cli_usage_error (cmd, "--region must be token or mask, got '%s'", optarg);
            a->region_mask = !strcmp (optarg, "mask");
            break;
          case 'h':
            usage (stdout);
            return -1;
          default:
            rc = cli_placement_option (cmd, c, optarg, &a->place);
            if (rc < 0)
              return cli_usage_error (cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
      if (rc)
        return rc;
    }
  if (!a->out)
    return cli_usage_error (cmd, "-o OUT.png is required");
  if (a->whole_image && a->has_context)
    return cli_usage_error (cmd, "--context and --whole-image exclude each other");
  if (a->whole_image)
    a->o.context = SETOK_DIFFUSION_WHOLE_IMAGE;
  return 0;
}

/* ---------------------------------------------------------------------------
 * roles */

/* The folders a command opened, each once, whatever roles it serves. */
typedef struct model_pool
{
  setok_model *models[3];
  char *keys[3]; /* each folder's real path */
  int n;
} model_pool;

static void
pool_free (model_pool *p)
{
  for (int i = 0; i < p->n; i++)
    {
      setok_model_free (p->models[i]);
      free (p->keys[i]);
    }
  p->n = 0;
}

static setok_status
pool_open (model_pool *p, const char *dir, const cli_placement *place, setok_model **out,
           setok_error *err)
{
  char *key = realpath (dir, NULL);
  if (!key && !(key = strdup (dir)))
    return setok_fail (err, SETOK_ERR_NOMEM, "out of memory");
  for (int i = 0; i < p->n; i++)
    if (!strcmp (p->keys[i], key))
      {
        free (key);
        *out = p->models[i];
        return SETOK_OK;
      }
  setok_status st = p->n < 3 ? cli_open_model (out, dir, place, NULL, err)
                             : setok_fail (err, SETOK_ERR_RUNTIME, "too many model folders");
  if (st != SETOK_OK)
    {
      free (key);
      return st;
    }
  p->models[p->n] = *out;
  p->keys[p->n++] = key;
  return SETOK_OK;
}

/* Why m cannot find the region under a point (NULL: it can). */
static const char *
segment_why_not (const setok_model *m, bool decoder)
{
  setok_component_info info;
  setok_model_component_info (m, SETOK_COMPONENT_MASK_DECODER, &info);
  if (!setok_model_can (m, SETOK_CAP_SEGMENT_POINTS))
    return setok_model_why_not (m, SETOK_CAP_SEGMENT_POINTS);
  if (decoder && !info.path)
    return "it has no mask decoder (--region mask)";
  return NULL;
}

/* Why m cannot serve role cap (NULL: it can). */
static const char *
role_why_not (const setok_model *m, setok_capability cap, bool decoder)
{
  return cap == SETOK_CAP_SEGMENT_POINTS ? segment_why_not (m, decoder)
                                         : setok_model_why_not (m, cap);
}

/* The model for a role: the role's own folder (flag; refused when it cannot serve cap), else
 * --model, else the shipped bundle. When fallback is set, a --model that cannot serve cap
 * gives way to the shipped bundle (said on stderr); else it is refused. */
static setok_status
open_role (model_pool *pool, const gen_args *a, const char *own, const char *flag,
           setok_capability cap, bool fallback, setok_model **out, setok_error *err)
{
  bool decoder = a->region_mask;
  const char *dir = own ? own : a->model ? a->model : cli_model_path (NULL, err);
  if (!dir)
    return err->status;
  setok_model *m = NULL;
  setok_status st = pool_open (pool, dir, &a->place, &m, err);
  const char *why = st == SETOK_OK ? role_why_not (m, cap, decoder) : NULL;
  if (st != SETOK_OK || !why)
    {
      *out = m;
      return st;
    }
  if (own || !a->model || !fallback)
    return setok_fail (err, SETOK_ERR_INPUT, "%s%s%s cannot %s: %s",
                       own ? flag : a->model ? "--model" : "", own || a->model ? " " : "", dir,
                       setok_capability_name (cap), why);
  const char *shipped = cli_model_path (NULL, err);
  if (!shipped)
    return setok_fail (err, SETOK_ERR_INPUT, "--model %s cannot %s (%s), and the shipped model is "
                       "missing", dir, setok_capability_name (cap), why);
  fprintf (stderr, "setok: --model %s cannot %s (%s); using %s for it\n", dir,
           setok_capability_name (cap), why, shipped);
  st = pool_open (pool, shipped, &a->place, &m, err);
  if (st == SETOK_OK && (why = role_why_not (m, cap, decoder)))
    st = setok_fail (err, SETOK_ERR_INPUT, "%s cannot %s: %s", shipped,
                     setok_capability_name (cap), why);
  *out = m;
  return st;
}

/* latents [1, C, h, w] from a safetensors file, checked against the size. */
static setok_status
read_latents (const char *path, size_t n, float **out, setok_error *err)
{
  setok_safetensors *st_file = NULL;
  setok_status st = setok_safetensors_open (&st_file, path, err);
  const setok_st_tensor *t = st == SETOK_OK ? setok_safetensors_find (st_file, "latents") : NULL;
  if (st == SETOK_OK && !t)
    st = setok_fail (err, SETOK_ERR_INPUT, "%s: no tensor named 'latents'", path);
  size_t numel = 1;
  for (int i = 0; t && i < t->ndim; i++)
    numel *= (size_t)t->shape[i];
  if (st == SETOK_OK && numel != n)
    st = setok_fail (err, SETOK_ERR_INPUT, "%s: latents have %zu values, this size needs %zu", path,
                     numel, n);
  if (st == SETOK_OK && !(*out = malloc (n * sizeof **out)))
    st = setok_fail (err, SETOK_ERR_NOMEM, "out of memory");
  for (size_t i = 0; st == SETOK_OK && i < n; i++)
    (*out)[i] = setok_st_tensor_float_at (t, (int64_t)i);
  setok_safetensors_close (st_file);
  return st;
}

static setok_status
write_latents (const char *path, const float *x, int64_t c, int64_t h, int64_t w, setok_error *err)
{
  int64_t shape[4] = { 1, c, h, w };
  setok_st_entry e = { "latents", SETOK_ST_F32, 4, shape, x };
  const char *meta[] = { "format", "pt", NULL };
  return setok_safetensors_write (path, &e, 1, meta, err);
}

int
cmd_generate (int argc, char **argv)
{
  gen_args a;
  int rc = parse_args ("generate", argc, argv, generate_usage, &a);
  if (rc)
    return rc < 0 ? CLI_EXIT_OK : rc;
  if (optind != argc - 1)
    return cli_usage_error ("generate", "give exactly one PROMPT");
  a.o.prompt = argv[optind];
  setok_error err = { 0 };
  model_pool pool = { 0 };
  setok_model *m = NULL;
  setok_diffusion *d = NULL;
  setok_image img = { 0 };
  float *latents = NULL, *final = NULL;
  progress_ctx pc = { "generate", a.preview_dir };
  double t0 = setok_clock_ms ();
  setok_status st
    = open_role (&pool, &a, a.edit_model, "--edit-model", SETOK_CAP_GENERATE, false, &m, &err);
  if (st == SETOK_OK)
    st = setok_diffusion_new (&d, m, &err);
  double t_load = setok_clock_ms ();
  int C = 0, h = 0, w = 0;
  if (st == SETOK_OK)
    setok_diffusion_latent_shape (d, a.o.width > 0 ? a.o.width : setok_diffusion_default_size (d),
                                  a.o.height > 0 ? a.o.height : setok_diffusion_default_size (d),
                                  &C, &h, &w);
  if (st == SETOK_OK && a.latents_in)
    st = read_latents (a.latents_in, (size_t)C * h * w, &latents, &err);
  if (st == SETOK_OK)
    {
      a.o.initial_latents = latents;
      a.o.final_latents = a.latents_out ? &final : NULL;
      a.o.on_step = on_step;
      a.o.on_preview = a.preview_dir ? on_preview : NULL;
      a.o.user = &pc;
      st = setok_diffusion_generate (d, &a.o, &img, &err);
    }
  double t_done = setok_clock_ms ();
  if (st == SETOK_OK)
    st = setok_image_save_png (&img, a.out, &err);
  if (st == SETOK_OK && final)
    st = write_latents (a.latents_out, final, C, h, w, &err);
  if (st == SETOK_OK && a.json)
    {
      cJSON *j = cJSON_CreateObject ();
      cJSON_AddStringToObject (j, "output", a.out);
      cJSON_AddStringToObject (j, "prompt", a.o.prompt);
      cJSON_AddStringToObject (j, "model", setok_model_dir (m));
      cJSON_AddNumberToObject (j, "width", img.width);
      cJSON_AddNumberToObject (j, "height", img.height);
      cJSON_AddNumberToObject (j, "steps", a.o.steps);
      cJSON_AddNumberToObject (j, "guidance", a.o.guidance);
      cJSON_AddNumberToObject (j, "seed", (double)a.o.seed);
      cJSON_AddStringToObject (j, "device", setok_model_device (m));
      cJSON_AddNumberToObject (j, "load_ms", t_load - t0);
      cJSON_AddNumberToObject (j, "generate_ms", t_done - t_load);
      cJSON_AddNumberToObject (j, "ms_per_step", (t_done - t_load) / a.o.steps);
      rc = cli_print_json (j);
    }
  else if (st == SETOK_OK)
    printf ("%s: %dx%d, %d steps in %.1f s\n", a.out, img.width, img.height, a.o.steps,
            (t_done - t_load) / 1e3);
  setok_image_free (&img);
  setok_diffusion_free (d);
  pool_free (&pool);
  free (latents);
  free (final);
  return st == SETOK_OK ? rc : cli_report (&err);
}

/* The region: the mask file's white part, or every pixel of the token (or the mask
 * decoder's object) under the point, found by model. */
static setok_status
edit_region (const gen_args *a, setok_model *model, const setok_image *image, setok_image *mask,
             setok_error *err)
{
  setok_status st;
  if (a->mask_in)
    {
      setok_image m = { 0 };
      st = setok_image_load (&m, a->mask_in, 0, err);
      if (st == SETOK_OK && (m.width != image->width || m.height != image->height))
        st = setok_fail (err, SETOK_ERR_INPUT, "%s: the mask is %dx%d, the image %dx%d", a->mask_in,
                         m.width, m.height, image->width, image->height);
      if (st == SETOK_OK)
        st = setok_image_alloc (mask, m.width, m.height, 1, err);
      for (size_t i = 0; st == SETOK_OK && i < (size_t)m.width * m.height; i++)
        mask->pixels[i] = m.pixels[i * m.channels] > 127 ? 255 : 0;
      setok_image_free (&m);
      return st;
    }
  if (a->point_x >= image->width || a->point_y >= image->height)
    return setok_fail (err, SETOK_ERR_INPUT, "--point %d,%d is outside the %dx%d image", a->point_x,
                       a->point_y, image->width, image->height);
  if (a->region_mask)
    {
      setok_segmenter *sg = NULL;
      setok_segment_result sr = { 0 };
      setok_segment_point p = { a->point_x, a->point_y, true };
      st = setok_segmenter_new (&sg, model, err);
      if (st == SETOK_OK)
        st = setok_segmenter_run (sg, image, NULL, &p, 1, a->o.cancel, &sr, err);
      if (st == SETOK_OK && sr.area == 0)
        st = setok_fail (err, SETOK_ERR_INPUT,
                         "--point %d,%d: the mask decoder found no object "
                         "there",
                         a->point_x, a->point_y);
      if (st == SETOK_OK)
        {
          *mask = sr.mask;
          sr.mask = (setok_image){ 0 };
        }
      setok_segment_result_free (&sr);
      setok_segmenter_free (sg);
      return st;
    }
  setok_tokenizer *t = NULL;
  setok_tokens_result r = { 0 };
  st = setok_tokenizer_new (&t, model, err);
  if (st == SETOK_OK)
    {
      setok_tokens_options to;
      setok_tokens_options_default (&to, t);
      to.cancel = a->o.cancel;
      to.refine_masks = true;
      st = setok_tokens_run (t, image, &to, &r, err);
    }
  int32_t label = -1;
  if (st == SETOK_OK)
    label = r.pixel_labels[(size_t)a->point_y * image->width + a->point_x];
  if (st == SETOK_OK && label < 0)
    st = setok_fail (err, SETOK_ERR_INPUT, "--point %d,%d: no token covers that pixel", a->point_x,
                     a->point_y);
  if (st == SETOK_OK)
    st = setok_image_alloc (mask, image->width, image->height, 1, err);
  for (size_t i = 0; st == SETOK_OK && i < (size_t)image->width * image->height; i++)
    mask->pixels[i] = r.pixel_labels[i] == label ? 255 : 0;
  setok_tokens_result_free (&r);
  setok_tokenizer_free (t);
  return st;
}

/* The JSON of a role: the folder that served it, or null. */
static void
add_role (cJSON *roles, const char *name, const setok_model *m)
{
  if (m)
    cJSON_AddStringToObject (roles, name, setok_model_dir (m));
  else
    cJSON_AddNullToObject (roles, name);
}

int
cmd_edit (int argc, char **argv)
{
  gen_args a;
  int rc = parse_args ("edit", argc, argv, edit_usage, &a);
  if (rc)
    return rc < 0 ? CLI_EXIT_OK : rc;
  if (optind != argc - 2)
    return cli_usage_error ("edit", "give IMAGE and one INSTRUCTION");
  if (!a.has_point == !a.mask_in)
    return cli_usage_error ("edit", "give one of --point X,Y and --mask MASK.png");
  a.o.prompt = argv[optind + 1];
  setok_error err = { 0 };
  model_pool pool = { 0 };
  setok_model *m = NULL, *finder = NULL;
  setok_diffusion *d = NULL;
  setok_diffusion_window win = { 0 };
  setok_image image = { 0 }, mask = { 0 }, out = { 0 };
  float *latents = NULL, *final = NULL;
  int C = 0, lh = 0, lw = 0;
  progress_ctx pc = { "edit", a.preview_dir };
  double t0 = setok_clock_ms ();
  setok_status st = setok_image_load (&image, argv[optind], 0, &err);
  if (st == SETOK_OK)
    st = open_role (&pool, &a, a.edit_model, "--edit-model", SETOK_CAP_EDIT, false, &m, &err);
  if (st == SETOK_OK && !a.mask_in)
    st = open_role (&pool, &a, a.segment_model, "--segment-model", SETOK_CAP_SEGMENT_POINTS,
                    true, &finder, &err);
  if (st == SETOK_OK)
    st = edit_region (&a, finder, &image, &mask, &err);
  if (st == SETOK_OK && a.mask_out)
    st = setok_image_save_png (&mask, a.mask_out, &err);
  double t_region = setok_clock_ms ();
  if (st == SETOK_OK)
    st = setok_diffusion_new (&d, m, &err);
  double t_load = setok_clock_ms ();
  if (st == SETOK_OK)
    st = setok_diffusion_edit_window (d, &mask, a.o.context, &win, &err);
  if (st == SETOK_OK)
    setok_diffusion_latent_shape (d, win.model_width, win.model_height, &C, &lh, &lw);
  if (st == SETOK_OK && a.latents_in)
    st = read_latents (a.latents_in, (size_t)C * lh * lw, &latents, &err);
  if (st == SETOK_OK)
    {
      a.o.initial_latents = latents;
      a.o.final_latents = a.latents_out ? &final : NULL;
      a.o.on_step = on_step;
      a.o.on_preview = a.preview_dir ? on_preview : NULL;
      a.o.user = &pc;
      st = setok_diffusion_edit (d, &image, &mask, &a.o, &out, &err);
    }
  double t_done = setok_clock_ms ();
  if (st == SETOK_OK)
    st = setok_image_save_png (&out, a.out, &err);
  if (st == SETOK_OK && final)
    st = write_latents (a.latents_out, final, C, lh, lw, &err);
  size_t region = 0;
  for (size_t i = 0; st == SETOK_OK && i < (size_t)mask.width * mask.height; i++)
    region += mask.pixels[i] > 127;
  if (st == SETOK_OK && a.json)
    {
      cJSON *j = cJSON_CreateObject ();
      cJSON_AddStringToObject (j, "output", a.out);
      cJSON_AddStringToObject (j, "instruction", a.o.prompt);
      cJSON *roles = cJSON_AddObjectToObject (j, "roles");
      add_role (roles, "edit", m);
      add_role (roles, "segment", finder);
      cJSON_AddNumberToObject (j, "models_opened", pool.n);
      cJSON_AddNumberToObject (j, "width", out.width);
      cJSON_AddNumberToObject (j, "height", out.height);
      cJSON_AddNumberToObject (j, "region_pixels", (double)region);
      cJSON *w = cJSON_AddObjectToObject (j, "window");
      cJSON_AddBoolToObject (w, "whole_image", a.o.context == SETOK_DIFFUSION_WHOLE_IMAGE);
      if (a.o.context != SETOK_DIFFUSION_WHOLE_IMAGE)
        cJSON_AddNumberToObject (w, "context", a.o.context);
      cJSON_AddNumberToObject (w, "x", win.x);
      cJSON_AddNumberToObject (w, "y", win.y);
      cJSON_AddNumberToObject (w, "width", win.width);
      cJSON_AddNumberToObject (w, "height", win.height);
      cJSON_AddNumberToObject (w, "model_width", win.model_width);
      cJSON_AddNumberToObject (w, "model_height", win.model_height);
      cJSON_AddBoolToObject (j, "instruct_unet", setok_diffusion_is_instruct (d));
      cJSON_AddBoolToObject (j, "inpaint_unet", setok_diffusion_is_inpaint (d));
      cJSON_AddNumberToObject (j, "steps", a.o.steps);
      cJSON_AddNumberToObject (j, "seed", (double)a.o.seed);
      cJSON_AddStringToObject (j, "device", setok_model_device (m));
      int encodes = 0;
      for (int i = 0; i < pool.n; i++)
        encodes += setok_model_encode_count (pool.models[i]);
      cJSON_AddNumberToObject (j, "image_encodes", encodes);
      cJSON_AddNumberToObject (j, "region_ms", t_region - t0);
      cJSON_AddNumberToObject (j, "load_ms", t_load - t_region);
      cJSON_AddNumberToObject (j, "edit_ms", t_done - t_load);
      rc = cli_print_json (j);
    }
  else if (st == SETOK_OK)
    printf ("%s: edited %zu pixels in a %dx%d window at %d,%d (at %dx%d) in %.1f s\n", a.out,
            region, win.width, win.height, win.x, win.y, win.model_width, win.model_height,
            (t_done - t_load) / 1e3);
  setok_image_free (&image);
  setok_image_free (&mask);
  setok_image_free (&out);
  setok_diffusion_free (d);
  pool_free (&pool);
  free (latents);
  free (final);
  return st == SETOK_OK ? rc : cli_report (&err);
}
