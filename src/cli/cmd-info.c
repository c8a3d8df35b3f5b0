/* cmd-info.c — `setok info [--json] [--tensors] [--load] PATH`: describe a
 * safetensors file, a component folder (config.json + weights), a model bundle
 * (a folder of components, with or without a setokim.json manifest) or an
 * image file; for a model folder also what the engine makes of it (its kind
 * and capabilities, setok_model), and with --load the time and memory each
 * component takes to load.
 *
 * Everything is gathered into one cJSON report first; --json prints it and
 * the default prints it as a table, so both views always agree. Any file
 * that fails validation makes the whole command fail with its message. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "setok/bundle.h"
#include "setok/config.h"
#include "setok/image.h"
#include "setok/safetensors.h"
#include "setok/weights.h"

/* What makes a folder a component: a config.json or one of these. */
static const char *const weight_names[] = {
  "model.safetensors",
  "model.safetensors.index.json",
  "diffusion_pytorch_model.safetensors",
  "diffusion_pytorch_model.safetensors.index.json",
  "adapter_model.safetensors",
};
#define WEIGHT_NAME_COUNT (sizeof weight_names / sizeof weight_names[0])

static void
usage (FILE *out)
{
  fprintf (out, "Usage: setok info [--json] [--tensors] [--load] [PLACEMENT] PATH\n\n"
                "Describes PATH, which may be:\n"
                "  a .safetensors file (or a *.safetensors.index.json),\n"
                "  a component folder (config.json + model.safetensors, a sharded index, ...),\n"
                "  a model bundle (a folder of component folders, optionally with setokim.json),\n"
                "  a PNG or JPEG image.\n"
                "Every file is validated; the first invalid one is reported (exit 2).\n"
                "For a model folder it also says what kind of model it is and what it can do\n"
                "(tokens, chat, segmentation by points or by a phrase, generation, editing),\n"
                "and why not where it cannot.\n\n"
                "Options:\n"
                "  --json         print a JSON object instead of a table\n"
                "  --tensors      also list every tensor: name, dtype, shape\n"
                "  --load         load every component of the model and report the load time\n"
                "                 and the memory each takes (exit 2 if one fails to load)\n"
                "  -h, --help     show this help\n"
                "The placement (what --load uses, and the dtypes shown):\n" CLI_PLACEMENT_HELP);
}

// ----------------------------------------------------------------------------
// small helpers

static char *
join_path (const char *dir, const char *name)
{
  size_t n = strlen (dir) + strlen (name) + 2;
  char *p = malloc (n);
  if (p)
    {
      size_t d = strlen (dir);
      snprintf (p, n, "%s%s%s", dir, d > 0 && dir[d - 1] == '/' ? "" : "/", name);
    }
  return p;
}

static bool
path_is (const char *dir, const char *name, bool want_dir)
{
  char *p = join_path (dir, name);
  struct stat sb;
  bool yes = p && stat (p, &sb) == 0 && (want_dir ? S_ISDIR (sb.st_mode) : S_ISREG (sb.st_mode));
  free (p);
  return yes;
}

static bool
has_weights (const char *dir)
{
  for (size_t i = 0; i < WEIGHT_NAME_COUNT; i++)
    if (path_is (dir, weight_names[i], false))
      return true;
  return false;
}

static bool
is_component_dir (const char *dir)
{
  return path_is (dir, "config.json", false) || has_weights (dir);
}

static const char *
base_name (const char *path)
{
  size_t n = strlen (path);
  while (n > 1 && path[n - 1] == '/')
    n--;
  const char *p = path + n;
  while (p > path && p[-1] != '/')
    p--;
  return p;
}

static bool
ends_with (const char *s, const char *suffix)
{
  size_t n = strlen (s), m = strlen (suffix);
  return n >= m && strcmp (s + n - m, suffix) == 0;
}

/* A value from a file, for the table: control bytes become '?', long values
 * are cut to max bytes with "...". */
static const char *
shown (char *buf, size_t size, const char *s, size_t max)
{
  size_t n = 0, limit = max < size ? max : size - 1;
  for (; s[n] && n < limit; n++)
    buf[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7F) ? '?' : s[n];
  if (s[n] && n >= 3)
    {
      /* step back to a UTF-8 boundary before the ellipsis */
      n -= 3;
      while (n > 0 && ((unsigned char)buf[n] & 0xC0) == 0x80)
        n--;
      memcpy (buf + n, "...", 3);
      n += 3;
    }
  buf[n] = '\0';
  return buf;
}

/* "6.74 B", "124.4 M", "512" */
static const char *
format_count (double n, char *buf, size_t size)
{
  if (n >= 1e9)
    snprintf (buf, size, "%.2f B", n / 1e9);
  else if (n >= 1e6)
    snprintf (buf, size, "%.1f M", n / 1e6);
  else if (n >= 1e3)
    snprintf (buf, size, "%.1f K", n / 1e3);
  else
    snprintf (buf, size, "%.0f", n);
  return buf;
}

static double
json_number (const cJSON *obj, const char *key)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive (obj, key);
  return cJSON_IsNumber (item) ? item->valuedouble : 0.0;
}

static const char *
json_string (const cJSON *obj, const char *key)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive (obj, key);
  return cJSON_IsString (item) ? item->valuestring : NULL;
}

// ----------------------------------------------------------------------------
// gathering the report

static const char *const count_keys[3] = { "tensors", "parameters", "bytes" };

/* Gives obj {tensors, parameters, bytes} all 0. */
static bool
init_counts (cJSON *obj)
{
  for (int k = 0; k < 3; k++)
    if (!cJSON_AddNumberToObject (obj, count_keys[k], 0.0))
      return false;
  return true;
}

/* Adds one tensor to the counts made by init_counts. */
static void
add_counts (cJSON *obj, double numel, double nbytes)
{
  const double add[3] = { 1.0, numel, nbytes };
  for (int k = 0; k < 3; k++)
    {
      cJSON *item = cJSON_GetObjectItemCaseSensitive (obj, count_keys[k]);
      cJSON_SetNumberValue (item, item->valuedouble + add[k]);
    }
}

static cJSON *
tensor_json (const setok_st_tensor *t)
{
  cJSON *obj = cJSON_CreateObject ();
  cJSON *shape = cJSON_AddArrayToObject (obj, "shape");
  bool ok = obj && shape && cJSON_AddStringToObject (obj, "name", t->name)
            && cJSON_AddStringToObject (obj, "dtype", setok_st_dtype_name (t->dtype));
  for (int d = 0; ok && d < t->ndim; d++)
    ok = cJSON_AddItemToArray (shape, cJSON_CreateNumber ((double)t->shape[d]));
  if (!ok)
    {
      cJSON_Delete (obj);
      return NULL;
    }
  return obj;
}

/* Tensor, parameter and byte counts, the dtype histogram, the files and (for
 * a single file) its metadata. */
static bool
describe_weights (cJSON *comp, const setok_weights *w, bool list_tensors)
{
  cJSON *files = cJSON_AddArrayToObject (comp, "files");
  bool ok = files && init_counts (comp);
  for (size_t f = 0; ok && f < setok_weights_file_count (w); f++)
    ok = cJSON_AddItemToArray (
      files, cJSON_CreateString (setok_safetensors_path (setok_weights_file (w, f))));
  cJSON *dtypes = ok ? cJSON_AddObjectToObject (comp, "dtypes") : NULL;
  cJSON *list = ok && list_tensors ? cJSON_AddArrayToObject (comp, "tensor_list") : NULL;
  ok = dtypes && (list || !list_tensors);
  for (size_t i = 0; ok && i < setok_weights_count (w); i++)
    {
      const setok_st_tensor *t = setok_weights_at (w, i);
      double numel = 1.0;
      for (int d = 0; d < t->ndim; d++)
        numel *= (double)t->shape[d];
      const char *name = setok_st_dtype_name (t->dtype);
      cJSON *bucket = cJSON_GetObjectItemCaseSensitive (dtypes, name);
      if (!bucket)
        {
          bucket = cJSON_AddObjectToObject (dtypes, name);
          ok = bucket && init_counts (bucket);
        }
      if (ok)
        {
          add_counts (comp, numel, (double)t->nbytes);
          add_counts (bucket, numel, (double)t->nbytes);
        }
      if (ok && list)
        ok = cJSON_AddItemToArray (list, tensor_json (t));
    }
  if (ok && setok_weights_file_count (w) == 1)
    {
      const setok_safetensors *st = setok_weights_file (w, 0);
      cJSON *meta = cJSON_AddObjectToObject (comp, "metadata");
      ok = meta != NULL;
      for (size_t i = 0; ok && i < setok_safetensors_metadata_count (st); i++)
        {
          const char *key, *value;
          setok_safetensors_metadata_at (st, i, &key, &value);
          ok = cJSON_AddStringToObject (meta, key, value) != NULL;
        }
    }
  return ok;
}

/* architectures, model_type and _class_name from a config.json. */
static setok_status
describe_config (cJSON *comp, const char *path, setok_error *err)
{
  setok_config *cfg;
  setok_status st = setok_config_load (&cfg, path, err);
  if (st != SETOK_OK)
    return st;
  cJSON_AddStringToObject (comp, "config", path);
  const cJSON *arch = cJSON_GetObjectItemCaseSensitive (setok_config_root (cfg), "architectures");
  if (arch && !cJSON_IsNull (arch))
    {
      bool strings = cJSON_IsArray (arch);
      for (const cJSON *a = strings ? arch->child : NULL; a; a = a->next)
        strings = strings && cJSON_IsString (a);
      if (!strings)
        {
          setok_config_free (cfg);
          return setok_fail (err, SETOK_ERR_INPUT,
                             "%s: key 'architectures' must be an array of strings", path);
        }
      cJSON_AddItemToObject (comp, "architectures", cJSON_Duplicate (arch, true));
    }
  static const char *const keys[] = { "model_type", "_class_name" };
  for (size_t k = 0; k < 2 && st == SETOK_OK; k++)
    {
      const char *value = NULL;
      st = setok_config_string_or (cfg, keys[k], NULL, &value, err);
      if (st == SETOK_OK && value)
        cJSON_AddStringToObject (comp, keys[k], value);
    }
  setok_config_free (cfg);
  return st;
}

static setok_status
oom (setok_error *err, const char *path)
{
  return setok_fail (err, SETOK_ERR_NOMEM, "%s: out of memory building the report", path);
}

/* One component: a folder (dir true) or a weights file; name NULL: the base name. */
static setok_status
add_component (cJSON *components, const char *name, const char *path, bool dir, bool list_tensors,
               setok_error *err)
{
  cJSON *comp = cJSON_CreateObject ();
  if (!comp || !cJSON_AddItemToArray (components, comp)
      || !cJSON_AddStringToObject (comp, "name", name ? name : base_name (path))
      || !cJSON_AddStringToObject (comp, "path", path))
    return oom (err, path);
  if (dir && path_is (path, "config.json", false))
    {
      char *config = join_path (path, "config.json");
      setok_status st = config ? describe_config (comp, config, err) : oom (err, path);
      free (config);
      if (st != SETOK_OK)
        return st;
    }
  if (dir && !has_weights (path))
    return SETOK_OK;
  setok_weights *w;
  setok_status st = setok_weights_open (&w, path, err);
  if (st != SETOK_OK)
    return st;
  bool ok = describe_weights (comp, w, list_tensors);
  setok_weights_close (w);
  return ok ? SETOK_OK : oom (err, path);
}

static int
compare_names (const void *a, const void *b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

/* Every immediate subfolder that holds a config.json or weights, by name. */
static setok_status
add_bundle (cJSON *components, const char *dir, bool list_tensors, setok_error *err)
{
  DIR *d = opendir (dir);
  if (!d)
    return setok_fail (err, SETOK_ERR_INPUT, "%s: cannot list the folder: %s", dir,
                       strerror (errno));
  char **subdirs = NULL;
  size_t count = 0;
  setok_status st = SETOK_OK;
  for (struct dirent *e; st == SETOK_OK && (e = readdir (d));)
    {
      if (e->d_name[0] == '.')
        continue;
      char *sub = join_path (dir, e->d_name);
      struct stat sb;
      if (sub && stat (sub, &sb) == 0 && S_ISDIR (sb.st_mode) && is_component_dir (sub))
        {
          char **grown = realloc (subdirs, (count + 1) * sizeof *subdirs);
          if (grown)
            {
              subdirs = grown;
              subdirs[count++] = sub;
              sub = NULL;
            }
          else
            {
              st = oom (err, dir);
            }
        }
      else if (!sub)
        {
          st = oom (err, dir);
        }
      free (sub);
    }
  closedir (d);
  if (st == SETOK_OK && count > 0)
    qsort (subdirs, count, sizeof *subdirs, compare_names);
  for (size_t i = 0; i < count; i++)
    {
      if (st == SETOK_OK)
        st = add_component (components, NULL, subdirs[i], true, list_tensors, err);
      free (subdirs[i]);
    }
  free (subdirs);
  return st;
}

/* The manifest's optional training domain and model card, as the manifest has them. */
static bool
add_domain_and_card (cJSON *m, const setok_bundle *b)
{
  bool ok = true;
  if (b->domain_kind)
    {
      cJSON *d = cJSON_AddObjectToObject (m, "domain");
      ok = d && cJSON_AddStringToObject (d, "kind", b->domain_kind)
           && (!b->domain_description
               || cJSON_AddStringToObject (d, "description", b->domain_description))
           && (!b->domain_suggest || cJSON_AddStringToObject (d, "suggest", b->domain_suggest));
    }
  if (!ok || (!b->card_summary && !b->n_metrics && !b->n_questions))
    return ok;
  cJSON *card = cJSON_AddObjectToObject (m, "card");
  cJSON *metrics = card ? cJSON_AddArrayToObject (card, "metrics") : NULL;
  cJSON *questions = card ? cJSON_AddArrayToObject (card, "questions") : NULL;
  ok = metrics && questions
       && (!b->card_summary || cJSON_AddStringToObject (card, "summary", b->card_summary));
  for (int i = 0; ok && i < b->n_metrics; i++)
    {
      cJSON *o = cJSON_CreateObject ();
      ok = o && cJSON_AddItemToArray (metrics, o)
           && cJSON_AddStringToObject (o, "name", b->metrics[i].name)
           && cJSON_AddStringToObject (o, "label", b->metrics[i].label)
           && cJSON_AddNumberToObject (o, "value", b->metrics[i].value)
           && cJSON_AddStringToObject (o, "unit", b->metrics[i].unit);
    }
  for (int i = 0; ok && i < b->n_questions; i++)
    {
      cJSON *o = cJSON_CreateObject ();
      ok = o && cJSON_AddItemToArray (questions, o)
           && cJSON_AddStringToObject (o, "kind", b->questions[i].kind)
           && cJSON_AddStringToObject (o, "example", b->questions[i].example);
    }
  return ok;
}

/* A SETOKIM bundle: the manifest's settings, then the components it lists, in
 * its order, under their manifest names. */
static setok_status
add_manifest (cJSON *report, cJSON *components, const char *path, bool list_tensors,
              setok_error *err)
{
  setok_bundle b;
  setok_status st = setok_bundle_load (&b, path, err);
  cJSON *m = NULL, *special = NULL;
  if (st == SETOK_OK)
    {
      m = cJSON_AddObjectToObject (report, "setokim");
      special = m ? cJSON_AddObjectToObject (m, "special_tokens") : NULL;
      bool ok = special && cJSON_AddStringToObject (report, "manifest", b.manifest)
                && cJSON_AddNumberToObject (m, "version", b.version)
                && cJSON_AddNumberToObject (m, "image_size", b.image_size)
                && cJSON_AddNumberToObject (m, "vision_feature_layer", b.vision_feature_layer)
                && cJSON_AddStringToObject (m, "system_prompt", b.system_prompt)
                && cJSON_AddStringToObject (special, "image", b.image_token)
                && cJSON_AddStringToObject (special, "image_start", b.image_start)
                && cJSON_AddStringToObject (special, "image_end", b.image_end);
      cJSON *visual = ok ? cJSON_AddArrayToObject (m, "visual_tokens") : NULL;
      ok = ok && visual;
      for (int i = 0; ok && i < b.n_visual_tokens; i++)
        ok = cJSON_AddItemToArray (visual, cJSON_CreateString (b.visual_tokens[i]));
      if (ok && b.segment_token)
        ok = cJSON_AddStringToObject (m, "segment_token", b.segment_token) != NULL;
      if (ok)
        ok = add_domain_and_card (m, &b);
      if (!ok)
        st = oom (err, path);
    }
  for (int i = 0; st == SETOK_OK && i < SETOK_BUNDLE_COMPONENT_COUNT; i++)
    if (b.components[i])
      st = add_component (components, setok_bundle_component_name (i), b.components[i], true,
                          list_tensors, err);
  setok_bundle_free (&b);
  return st;
}

/* PNG or JPEG, by signature. */
static const char *
image_format (const char *path)
{
  unsigned char sig[8] = { 0 };
  FILE *f = fopen (path, "rb");
  if (!f)
    return NULL;
  size_t n = fread (sig, 1, sizeof sig, f);
  fclose (f);
  if (n == 8 && memcmp (sig, "\x89PNG\r\n\x1a\n", 8) == 0)
    return "PNG";
  if (n >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF)
    return "JPEG";
  return NULL;
}

static setok_status
describe_image (cJSON *report, const char *path, const char *format, setok_error *err)
{
  setok_image img = { 0 };
  setok_status st = setok_image_load (&img, path, 0, err);
  if (st != SETOK_OK)
    return st;
  bool ok = cJSON_AddStringToObject (report, "format", format)
            && cJSON_AddNumberToObject (report, "width", img.width)
            && cJSON_AddNumberToObject (report, "height", img.height)
            && cJSON_AddNumberToObject (report, "channels", img.channels);
  setok_image_free (&img);
  return ok ? SETOK_OK : oom (err, path);
}

static setok_status
gather (cJSON *report, const char *path, bool list_tensors, setok_error *err)
{
  struct stat sb;
  if (stat (path, &sb) != 0)
    return setok_fail (err, SETOK_ERR_INPUT, "%s: no such file or folder", path);
  if (!cJSON_AddStringToObject (report, "path", path))
    return oom (err, path);

  if (!S_ISDIR (sb.st_mode))
    {
      const char *format = S_ISREG (sb.st_mode) ? image_format (path) : NULL;
      if (format)
        {
          cJSON_AddStringToObject (report, "kind", "image");
          return describe_image (report, path, format, err);
        }
      cJSON_AddStringToObject (report, "kind",
                               ends_with (path, ".index.json") ? "index" : "safetensors");
      cJSON *components = cJSON_AddArrayToObject (report, "components");
      return components ? add_component (components, NULL, path, false, list_tensors, err)
                        : oom (err, path);
    }

  bool manifest = setok_bundle_is_bundle (path);
  bool bundle = manifest || !is_component_dir (path);
  cJSON_AddStringToObject (report, "kind", bundle ? "bundle" : "component");
  cJSON *components = cJSON_AddArrayToObject (report, "components");
  if (!components)
    return oom (err, path);
  if (!bundle)
    return add_component (components, NULL, path, true, list_tensors, err);
  if (manifest)
    return add_manifest (report, components, path, list_tensors, err);
  setok_status st = add_bundle (components, path, list_tensors, err);
  if (st == SETOK_OK && !manifest && cJSON_GetArraySize (components) == 0)
    st = setok_fail (err, SETOK_ERR_INPUT,
                     "%s: not a model: no config.json, setokim.json, weights (%s, %s, %s, "
                     "%s or %s), nor subfolders with them",
                     path, weight_names[0], weight_names[1], weight_names[2], weight_names[3],
                     weight_names[4]);
  return st;
}

/* What the engine makes of a model folder: its kind, what it can do and why not; with
 * load, every component loaded with its time and memory. A folder that is not a model
 * (a component alone) gets no "model" entry. */
static setok_status
add_model (cJSON *report, const char *path, bool load, const cli_placement *place,
           setok_error *err)
{
  setok_model *m = NULL;
  setok_error open_err = { 0 };
  setok_status st = cli_open_model_quiet (&m, path, place, NULL, &open_err);
  /* a folder that is no model (a component alone) is not an error here; a placement the
   * device cannot take is */
  if (st != SETOK_OK && (load || st == SETOK_ERR_UNSUPPORTED))
    {
      *err = open_err;
      return st;
    }
  if (st != SETOK_OK)
    return SETOK_OK;
  cJSON *j = cJSON_AddObjectToObject (report, "model");
  cJSON *caps = j ? cJSON_AddArrayToObject (j, "capabilities") : NULL;
  bool ok = caps && cJSON_AddStringToObject (j, "kind", setok_model_kind_name (setok_model_kind_of (m)))
            && cJSON_AddStringToObject (j, "device", setok_model_device (m))
            && cJSON_AddStringToObject (j, "dtype", setok_dtype_name (setok_model_dtype (m)))
            && cJSON_AddStringToObject (j, "weights",
                                        setok_dtype_name (setok_model_matrix_dtype (m)));
  const setok_prompt_format *pf = ok ? setok_model_prompt_format (m) : NULL;
  cJSON *prompt = pf ? cJSON_AddObjectToObject (j, "prompt") : NULL;
  if (pf)
    ok = prompt && cJSON_AddStringToObject (prompt, "format", pf->name)
         && (!pf->source || cJSON_AddStringToObject (prompt, "source", pf->source))
         && cJSON_AddStringToObject (prompt, "system", pf->system)
         && cJSON_AddStringToObject (prompt, "system_prefix", pf->system_prefix)
         && cJSON_AddStringToObject (prompt, "image", pf->image);
  cJSON *notes = ok ? cJSON_AddArrayToObject (j, "notes") : NULL;
  ok = ok && notes;
  for (int i = 0; ok && i < setok_model_note_count (m); i++)
    ok = cJSON_AddItemToArray (notes, cJSON_CreateString (setok_model_note (m, i)));
  if (ok && load)
    st = setok_model_load_all (m, err);
  for (int c = 0; ok && c < SETOK_CAP_COUNT; c++)
    {
      cJSON *cap = cJSON_CreateObject ();
      const char *why = setok_model_why_not (m, (setok_capability)c);
      ok = cap && cJSON_AddItemToArray (caps, cap)
           && cJSON_AddStringToObject (cap, "name", setok_capability_name ((setok_capability)c))
           && cJSON_AddBoolToObject (cap, "available", why == NULL)
           && (!why || cJSON_AddStringToObject (cap, "reason", why));
    }
  cJSON *loaded = ok && load ? cJSON_AddArrayToObject (j, "loaded") : NULL;
  double total = 0, total_ms = 0;
  for (int c = 0; loaded && ok && c < SETOK_COMPONENT_COUNT; c++)
    {
      setok_component_info info;
      setok_model_component_info (m, (setok_component)c, &info);
      if (!info.path)
        continue;
      cJSON *comp = cJSON_CreateObject ();
      ok = comp && cJSON_AddItemToArray (loaded, comp)
           && cJSON_AddStringToObject (comp, "component", setok_component_name ((setok_component)c))
           && cJSON_AddStringToObject (comp, "path", info.path)
           && cJSON_AddBoolToObject (comp, "loaded", info.loaded)
           && cJSON_AddNumberToObject (comp, "load_ms", info.load_ms)
           && cJSON_AddNumberToObject (comp, "bytes", (double)info.bytes)
           && (!info.error || cJSON_AddStringToObject (comp, "error", info.error));
      total += (double)info.bytes;
      total_ms += info.load_ms;
    }
  if (ok && loaded)
    ok = cJSON_AddNumberToObject (j, "loaded_bytes", total)
         && cJSON_AddNumberToObject (j, "load_ms", total_ms);
  setok_model_free (m);
  if (!ok)
    return oom (err, path);
  return st;
}

/* Bundle totals over the components. */
static bool
add_totals (cJSON *report)
{
  const cJSON *components = cJSON_GetObjectItemCaseSensitive (report, "components");
  if (!components)
    return true;
  double sums[3] = { 0, 0, 0 };
  for (const cJSON *c = components->child; c; c = c->next)
    for (int k = 0; k < 3; k++)
      sums[k] += json_number (c, count_keys[k]);
  for (int k = 0; k < 3; k++)
    if (!cJSON_AddNumberToObject (report, count_keys[k], sums[k]))
      return false;
  return true;
}

// ----------------------------------------------------------------------------
// the table

static void
print_row (const char *label, const char *value)
{
  printf ("  %-15s%s\n", label, value);
}

static void
print_component (const cJSON *c)
{
  char buf[256], num[32], bytes[32];
  printf ("%s  (%s)\n", shown (buf, sizeof buf, json_string (c, "name"), 60),
          json_string (c, "path"));
  const char *config = json_string (c, "config");
  if (config)
    print_row ("config", shown (buf, sizeof buf, base_name (config), 80));
  const cJSON *arch = cJSON_GetObjectItemCaseSensitive (c, "architectures");
  for (const cJSON *a = arch ? arch->child : NULL; a; a = a->next)
    print_row (a == arch->child ? "architectures" : "",
               shown (buf, sizeof buf, a->valuestring, 80));
  static const char *const keys[] = { "model_type", "_class_name" };
  for (size_t k = 0; k < 2; k++)
    if (json_string (c, keys[k]))
      print_row (keys[k], shown (buf, sizeof buf, json_string (c, keys[k]), 80));
  const cJSON *files = cJSON_GetObjectItemCaseSensitive (c, "files");
  if (!files)
    {
      print_row ("weights", "none");
      return;
    }
  for (const cJSON *f = files->child; f; f = f->next)
    print_row (f == files->child ? "files" : "", base_name (f->valuestring));
  double params = json_number (c, "parameters"), nbytes = json_number (c, "bytes");
  snprintf (buf, sizeof buf, "%.0f", json_number (c, "tensors"));
  print_row ("tensors", buf);
  snprintf (buf, sizeof buf, "%.0f", params);
  if (params >= 1000.0)
    snprintf (buf + strlen (buf), sizeof buf - strlen (buf), " (%s)",
              format_count (params, num, sizeof num));
  print_row ("parameters", buf);
  if (nbytes >= 1024.0)
    snprintf (buf, sizeof buf, "%s (%.0f bytes)", cli_format_bytes (nbytes, bytes, sizeof bytes),
              nbytes);
  else
    snprintf (buf, sizeof buf, "%.0f bytes", nbytes);
  print_row ("size", buf);

  const cJSON *dtypes = cJSON_GetObjectItemCaseSensitive (c, "dtypes");
  if (dtypes && dtypes->child)
    {
      printf ("  %-10s %10s %16s %12s\n", "dtype", "tensors", "parameters", "size");
      for (const cJSON *d = dtypes->child; d; d = d->next)
        printf ("  %-10s %10.0f %16.0f %12s\n", d->string, json_number (d, "tensors"),
                json_number (d, "parameters"),
                cli_format_bytes (json_number (d, "bytes"), bytes, sizeof bytes));
    }
  const cJSON *meta = cJSON_GetObjectItemCaseSensitive (c, "metadata");
  for (const cJSON *m = meta ? meta->child : NULL; m; m = m->next)
    {
      char key[64], line[160];
      snprintf (line, sizeof line, "%s = %s", shown (key, sizeof key, m->string, 40),
                shown (buf, sizeof buf, m->valuestring, 60));
      print_row (m == meta->child ? "metadata" : "", line);
    }
  const cJSON *list = cJSON_GetObjectItemCaseSensitive (c, "tensor_list");
  for (const cJSON *t = list ? list->child : NULL; t; t = t->next)
    {
      char shape[160] = "[";
      size_t n = 1;
      const cJSON *dims = cJSON_GetObjectItemCaseSensitive (t, "shape");
      for (const cJSON *d = dims ? dims->child : NULL; d && n < sizeof shape; d = d->next)
        n += (size_t)snprintf (shape + n, sizeof shape - n, "%s%.0f", d == dims->child ? "" : ", ",
                               d->valuedouble);
      if (n < sizeof shape)
        snprintf (shape + n, sizeof shape - n, "]");
      printf ("    %-60s %-8s %s\n", shown (buf, sizeof buf, json_string (t, "name"), 60),
              json_string (t, "dtype"), shape);
    }
}

/* The settings of a SETOKIM manifest. */
static void
print_manifest (const cJSON *m)
{
  char buf[256], a[64], b[64], c[64];
  const cJSON *special = cJSON_GetObjectItemCaseSensitive (m, "special_tokens");
  printf ("%s\n", SETOK_BUNDLE_MANIFEST);
  snprintf (buf, sizeof buf, "%.0f", json_number (m, "version"));
  print_row ("version", buf);
  if (json_number (m, "image_size") > 0)
    {
      snprintf (buf, sizeof buf, "%.0f px", json_number (m, "image_size"));
      print_row ("image size", buf);
    }
  snprintf (buf, sizeof buf, "%.0f", json_number (m, "vision_feature_layer"));
  print_row ("feature layer", buf);
  snprintf (buf, sizeof buf, "%s %s %s", shown (a, sizeof a, json_string (special, "image"), 40),
            shown (b, sizeof b, json_string (special, "image_start"), 40),
            shown (c, sizeof c, json_string (special, "image_end"), 40));
  print_row ("special tokens", buf);
  const cJSON *item;
  size_t n = 0;
  buf[0] = '\0';
  cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive (m, "visual_tokens"))
  {
    if (cJSON_IsString (item) && n + 64 < sizeof buf)
      n += (size_t)snprintf (buf + n, sizeof buf - n, "%s%s", n ? " " : "",
                             shown (a, sizeof a, item->valuestring, 40));
  }
  if (n)
    print_row ("visual tokens", buf);
  const char *seg = json_string (m, "segment_token");
  if (seg)
    print_row ("segment token", shown (buf, sizeof buf, seg, 40));
  const char *prompt = json_string (m, "system_prompt");
  print_row ("system prompt", prompt[0] ? shown (buf, sizeof buf, prompt, 80) : "(none)");
  const cJSON *domain = cJSON_GetObjectItemCaseSensitive (m, "domain");
  if (domain)
    print_row ("trained on", shown (buf, sizeof buf, json_string (domain, "kind"), 80));
  const cJSON *card = cJSON_GetObjectItemCaseSensitive (m, "card");
  n = 0;
  cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive (card, "metrics"))
  {
    const char *unit = json_string (item, "unit");
    double v = json_number (item, "value");
    if (!n++)
      print_row ("card", "");
    if (unit && !strcmp (unit, "fraction"))
      snprintf (a, sizeof a, "%.1f %%", 100.0 * v);
    else
      snprintf (a, sizeof a, "%g%s", v, unit && unit[0] ? " ms" : "");
    printf ("    %s: %s\n", shown (buf, sizeof buf, json_string (item, "label"), 80), a);
  }
  n = 0;
  buf[0] = '\0';
  cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive (card, "questions"))
  {
    if (n + 64 < sizeof buf)
      n += (size_t)snprintf (buf + n, sizeof buf - n, "%s%s", n ? ", " : "",
                             shown (a, sizeof a, json_string (item, "kind"), 40));
  }
  if (n)
    print_row ("question kinds", buf);
  printf ("\n");
}

/* The engine's view of a model folder (add_model). */
static void
print_model (const cJSON *m)
{
  char buf[64];
  const cJSON *item;
  printf ("model\n");
  print_row ("kind", json_string (m, "kind"));
  print_row ("device", json_string (m, "device"));
  snprintf (buf, sizeof buf, "%s activations, %s weight matrices", json_string (m, "dtype"),
            json_string (m, "weights"));
  print_row ("dtypes", buf);
  cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive (m, "capabilities"))
  {
    const char *why = json_string (item, "reason");
    const char *name = json_string (item, "name");
    printf ("  %-20s%s%s\n", name ? name : "", why ? "no: " : "yes",
            why ? why : "");
  }
  const cJSON *prompt = cJSON_GetObjectItemCaseSensitive (m, "prompt");
  if (prompt)
    {
      char line[256], text[160];
      const char *source = json_string (prompt, "source");
      const char *system = json_string (prompt, "system");
      snprintf (line, sizeof line, "%s (%s)", json_string (prompt, "format"),
                source ? base_name (source) : "the engine's default");
      print_row ("prompt", line);
      print_row ("system prompt", system[0] ? shown (text, sizeof text, system, 80) : "(none)");
    }
  cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive (m, "notes"))
    printf ("  note: %s\n", item->valuestring);
  const cJSON *loaded = cJSON_GetObjectItemCaseSensitive (m, "loaded");
  if (loaded)
    {
      printf ("\n  %-16s %10s %12s\n", "component", "load", "memory");
      cJSON_ArrayForEach (item, loaded)
      {
        const char *error = json_string (item, "error");
        if (error)
          printf ("  %-16s failed: %s\n", json_string (item, "component"), error);
        else
          printf ("  %-16s %7.1f ms %12s\n", json_string (item, "component"),
                  json_number (item, "load_ms"),
                  cli_format_bytes (json_number (item, "bytes"), buf, sizeof buf));
      }
      printf ("  %-16s %7.1f ms %12s\n", "total", json_number (m, "load_ms"),
              cli_format_bytes (json_number (m, "loaded_bytes"), buf, sizeof buf));
    }
  printf ("\n");
}

static void
print_table (const cJSON *report)
{
  const char *kind = json_string (report, "kind");
  if (!strcmp (kind, "image"))
    {
      printf ("%s\n", json_string (report, "path"));
      print_row ("format", json_string (report, "format"));
      printf ("  %-15s%.0f x %.0f\n", "size", json_number (report, "width"),
              json_number (report, "height"));
      printf ("  %-15s%.0f\n", "channels", json_number (report, "channels"));
      return;
    }
  const cJSON *components = cJSON_GetObjectItemCaseSensitive (report, "components");
  int n = cJSON_GetArraySize (components);
  if (!strcmp (kind, "bundle"))
    {
      const char *manifest = json_string (report, "manifest");
      printf ("%s  (bundle, %d component%s%s%s)\n\n", json_string (report, "path"), n,
              n == 1 ? "" : "s", manifest ? ", manifest " : "",
              manifest ? base_name (manifest) : "");
    }
  const cJSON *m = cJSON_GetObjectItemCaseSensitive (report, "setokim");
  if (m)
    print_manifest (m);
  const cJSON *model = cJSON_GetObjectItemCaseSensitive (report, "model");
  if (model)
    print_model (model);
  for (const cJSON *c = components->child; c; c = c->next)
    {
      print_component (c);
      if (c->next)
        printf ("\n");
    }
  if (!strcmp (kind, "bundle") && n > 1)
    {
      char num[32], bytes[32];
      double params = json_number (report, "parameters");
      printf ("\ntotal: %.0f tensors, %.0f parameters (%s), %s\n", json_number (report, "tensors"),
              params, format_count (params, num, sizeof num),
              cli_format_bytes (json_number (report, "bytes"), bytes, sizeof bytes));
    }
}

// ----------------------------------------------------------------------------

int
cmd_info (int argc, char **argv)
{
  static const struct option options[] = {
    { "json", no_argument, NULL, 'j' },
    { "tensors", no_argument, NULL, 't' },
    { "load", no_argument, NULL, 'l' },
    CLI_PLACEMENT_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool json = false, list_tensors = false, load = false;
  cli_placement place;
  cli_placement_default (&place);
  optind = 1;
  opterr = 0;
  for (int c; (c = getopt_long (argc, argv, "h", options, NULL)) != -1;)
    {
      switch (c)
        {
          case 'j':
            json = true;
            break;
          case 't':
            list_tensors = true;
            break;
          case 'l':
            load = true;
            break;
          case 'h':
            usage (stdout);
            return CLI_EXIT_OK;
          default:
            {
              int rc = cli_placement_option ("info", c, optarg, &place);
              if (rc > 0)
                return rc;
              if (rc < 0 && optopt)
                return cli_usage_error ("info", "unknown option '-%c'", optopt);
              if (rc < 0)
                return cli_usage_error ("info", "unknown option '%s'", argv[optind - 1]);
            }
        }
    }
  if (optind >= argc)
    return cli_usage_error ("info", "missing PATH");
  if (argc - optind > 1)
    return cli_usage_error ("info", "expected one PATH, got %d", argc - optind);

  setok_error err;
  setok_error_clear (&err);
  cJSON *report = cJSON_CreateObject ();
  setok_status st
    = report ? gather (report, argv[optind], list_tensors, &err) : oom (&err, argv[optind]);
  if (st == SETOK_OK && !add_totals (report))
    st = oom (&err, argv[optind]);
  struct stat sb;
  if (st == SETOK_OK && stat (argv[optind], &sb) == 0 && S_ISDIR (sb.st_mode))
    st = add_model (report, argv[optind], load, &place, &err);
  else if (st == SETOK_OK && load)
    st = setok_fail (&err, SETOK_ERR_INPUT, "%s: --load needs a model folder", argv[optind]);
  if (st != SETOK_OK)
    {
      cJSON_Delete (report);
      return cli_report (&err);
    }
  if (json)
    return cli_print_json (report);
  print_table (report);
  cJSON_Delete (report);
  return fflush (stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}
