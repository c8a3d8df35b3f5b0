/* cmd-world.c — `setok world`: renders synthetic scenes (DESIGN §9) into a
 * folder: each scene's image and 8-bit label image, one annotation record
 * per line in annotations.jsonl, and optionally every edit's target image. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "setok/image.h"
#include "setok/world.h"

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: setok world --out DIR [--seed S] [--count N] [OPTIONS]\n\n"
           "Renders the synthetic scenes of seeds S..S+N-1 into DIR:\n"
           "  scene-SEED.png          the image\n"
           "  scene-SEED-labels.png   8-bit labels: 0 background, k the visible pixels of\n"
           "                          object id k\n"
           "  annotations.jsonl       one annotation record per line, in seed order\n"
           "  scene-SEED-edit-K.png   with --edits: the exact target of edit K\n\n"
           "  --out DIR             the output folder (created when missing)\n"
           "  --seed S              the first seed (default 0)\n"
           "  --count N             how many scenes (default 1)\n"
           "  --size WxH            scene size (default 128x128; %d..%d a side)\n"
           "  --objects MIN-MAX     objects per scene (default 1-6; at most %d)\n"
           "  --edits               also render the target of every edit\n"
           "  --json                print a JSON summary instead of a line\n",
           SETOK_WORLD_MIN_SIDE, SETOK_WORLD_MAX_SIDE, SETOK_WORLD_MAX_OBJECTS);
}

/* "A<sep>B" (written as form in messages) with both integers in lo..hi. */
static int
parse_pair (const char *opt, const char *form, const char *s, char sep, int lo, int hi, int *a,
            int *b)
{
  char *end;
  errno = 0;
  long x = strtol (s, &end, 10);
  if (!errno && end != s && *end == sep && x >= lo && x <= hi)
    {
      const char *t = end + 1;
      long y = strtol (t, &end, 10);
      if (!errno && end != t && !*end && y >= lo && y <= hi)
        {
          *a = (int)x;
          *b = (int)y;
          return 0;
        }
    }
  return cli_usage_error ("world", "%s needs %s with integers in %d..%d, got '%s'", opt, form, lo,
                          hi, s);
}

static int
parse_u64 (const char *opt, const char *s, uint64_t lo, uint64_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull (s, &end, 10);
  if (errno || end == s || *end || strchr (s, '-') || v < lo)
    return cli_usage_error ("world", "%s needs an integer >= %" PRIu64 ", got '%s'", opt, lo, s);
  *out = v;
  return 0;
}

/* mkdir -p */
static int
make_dirs (const char *dir)
{
  char path[4096];
  if (snprintf (path, sizeof path, "%s", dir) >= (int)sizeof path)
    {
      fprintf (stderr, "setok: %s: path too long\n", dir);
      return CLI_EXIT_FAILURE;
    }
  for (char *p = path + 1;; p++)
    {
      if (*p != '/' && *p)
        continue;
      char c = *p;
      *p = '\0';
      if (mkdir (path, 0777) != 0 && errno != EEXIST)
        {
          fprintf (stderr, "setok: %s: cannot create: %s\n", path, strerror (errno));
          return CLI_EXIT_FAILURE;
        }
      if (!c)
        return CLI_EXIT_OK;
      *p = c;
    }
}

/* Writes pixels [h * w * channels] as a PNG. */
static setok_status
save_png (const char *path, const uint8_t *pixels, int width, int height, int channels,
          setok_error *err)
{
  setok_image img = { .width = width, .height = height, .channels = channels };
  img.pixels = (uint8_t *)pixels;
  return setok_image_save_png (&img, path, err);
}

/* The image and labels of scene s, and with edits the target of each edit.
 * Adds the number of targets written to *n_edits. */
static int
write_scene (const char *dir, uint64_t seed, const setok_world_scene *s, bool edits, long *n_edits)
{
  setok_error err = { 0 };
  char path[4096];
  int w = setok_world_width (s), h = setok_world_height (s);
  snprintf (path, sizeof path, "%s/scene-%" PRIu64 ".png", dir, seed);
  if (save_png (path, setok_world_rgb (s), w, h, 3, &err) != SETOK_OK)
    return cli_report (&err);
  snprintf (path, sizeof path, "%s/scene-%" PRIu64 "-labels.png", dir, seed);
  if (save_png (path, setok_world_labels (s), w, h, 1, &err) != SETOK_OK)
    return cli_report (&err);
  for (int k = 0; edits && k < setok_world_edit_count (s); k++)
    {
      setok_world_scene *t = NULL;
      if (setok_world_apply_edit (&t, s, k, &err) != SETOK_OK)
        return cli_report (&err);
      snprintf (path, sizeof path, "%s/scene-%" PRIu64 "-edit-%d.png", dir, seed, k);
      setok_status st = save_png (path, setok_world_rgb (t), w, h, 3, &err);
      setok_world_free (t);
      if (st != SETOK_OK)
        return cli_report (&err);
      (*n_edits)++;
    }
  return CLI_EXIT_OK;
}

int
cmd_world (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "out", required_argument, NULL, 'o' },
    { "seed", required_argument, NULL, 's' },
    { "count", required_argument, NULL, 'n' },
    { "size", required_argument, NULL, 'S' },
    { "objects", required_argument, NULL, 'O' },
    { "edits", no_argument, NULL, 'e' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *out = NULL;
  uint64_t seed = 0, count = 1;
  bool edits = false, json = false;
  setok_world_options o;
  setok_world_options_default (&o);
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    {
      switch (c)
        {
          case 'o':
            out = optarg;
            break;
          case 's':
            if (parse_u64 ("--seed", optarg, 0, &seed))
              return CLI_EXIT_USAGE;
            break;
          case 'n':
            if (parse_u64 ("--count", optarg, 1, &count))
              return CLI_EXIT_USAGE;
            if (count > 100000000)
              return cli_usage_error ("world", "--count is at most 100000000, got '%s'", optarg);
            break;
          case 'S':
            if (parse_pair ("--size", "WxH", optarg, 'x', SETOK_WORLD_MIN_SIDE,
                            SETOK_WORLD_MAX_SIDE, &o.width, &o.height))
              return CLI_EXIT_USAGE;
            break;
          case 'O':
            if (parse_pair ("--objects", "MIN-MAX", optarg, '-', 1, SETOK_WORLD_MAX_OBJECTS,
                            &o.min_objects, &o.max_objects))
              return CLI_EXIT_USAGE;
            if (o.min_objects > o.max_objects)
              return cli_usage_error ("world", "--objects needs MIN <= MAX, got '%s'", optarg);
            break;
          case 'e':
            edits = true;
            break;
          case 'j':
            json = true;
            break;
          case 'h':
            usage (stdout);
            return CLI_EXIT_OK;
          default:
            return cli_usage_error ("world", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
  if (optind != argc)
    return cli_usage_error ("world", "unexpected argument '%s'", argv[optind]);
  if (!out)
    return cli_usage_error ("world", "give --out DIR");
  if (count - 1 > UINT64_MAX - seed)
    return cli_usage_error ("world", "seeds %" PRIu64 " + %" PRIu64 " run past 2^64", seed, count);

  int rc = make_dirs (out);
  if (rc != CLI_EXIT_OK)
    return rc;
  char path[4096];
  snprintf (path, sizeof path, "%s/annotations.jsonl", out);
  FILE *f = fopen (path, "w");
  if (!f)
    {
      fprintf (stderr, "setok: %s: cannot write: %s\n", path, strerror (errno));
      return CLI_EXIT_FAILURE;
    }
  long n_edits = 0;
  for (uint64_t i = 0; i < count && rc == CLI_EXIT_OK; i++)
    {
      setok_error err = { 0 };
      setok_world_scene *s = NULL;
      if (setok_world_generate (&s, seed + i, &o, &err) != SETOK_OK)
        {
          rc = cli_report (&err);
          break;
        }
      if (fputs (setok_world_json (s), f) < 0 || fputc ('\n', f) == EOF)
        {
          fprintf (stderr, "setok: %s: cannot write: %s\n", path, strerror (errno));
          rc = CLI_EXIT_FAILURE;
        }
      if (rc == CLI_EXIT_OK)
        rc = write_scene (out, seed + i, s, edits, &n_edits);
      setok_world_free (s);
      cli_progress ("world", (long)(i + 1), (long)count);
    }
  if (fclose (f) != 0 && rc == CLI_EXIT_OK)
    {
      fprintf (stderr, "setok: %s: cannot write: %s\n", path, strerror (errno));
      rc = CLI_EXIT_FAILURE;
    }
  if (rc != CLI_EXIT_OK)
    return rc;
  if (json)
    {
      cJSON *root = cJSON_CreateObject ();
      cJSON_AddStringToObject (root, "out", out);
      char first[32];
      snprintf (first, sizeof first, "%" PRIu64, seed); /* exact beyond 2^53 */
      cJSON_AddRawToObject (root, "first_seed", first);
      cJSON_AddNumberToObject (root, "count", (double)count);
      cJSON_AddNumberToObject (root, "width", o.width);
      cJSON_AddNumberToObject (root, "height", o.height);
      cJSON_AddNumberToObject (root, "edit_targets", (double)n_edits);
      cJSON_AddStringToObject (root, "annotations", path);
      return cli_print_json (root);
    }
  printf ("%" PRIu64 " scene%s (%d x %d) and %ld edit target%s written to %s\n", count,
          count == 1 ? "" : "s", o.width, o.height, n_edits, n_edits == 1 ? "" : "s", out);
  return CLI_EXIT_OK;
}
