/* cmd-quantize.c — `setok quantize IN OUT --weights q8|q4`: a copy of a model
 * folder whose linear-layer matrices are stored block-quantized
 * (setok_model_quantize), so that it loads without quantizing and reads a
 * quarter (q8) or an eighth (q4) of the f32 bytes. */
#include <ftw.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "setok/clock.h"

static void
usage (FILE *out)
{
  fprintf (out, "Usage: setok quantize IN OUT --weights q8|q4 [--threads N] [--json]\n\n"
                "Copies the model folder IN to OUT (a new folder, not inside IN) with the\n"
                "matrices of the linear layers (the LLM, the vision tower, the Q-Former, the\n"
                "text encoder, the U-Net's transformers) stored block-quantized; every other\n"
                "file is copied as it is. Any setok command opens OUT as it opens IN, and\n"
                "loads it without quantizing again; only this engine reads such folders.\n\n"
                "  --weights Q   q8 (8-bit blocks, near-lossless) or q4 (4-bit blocks)\n"
                "  --threads N   CPU threads for the quantization (default: all)\n"
                "  --json        a JSON report on stdout\n"
                "  -h, --help    show this help\n");
}

static void
on_folder (const char *folder, int done, int total, void *user)
{
  (void)user;
  if (folder && !cli_stderr_is_tty ())
    fprintf (stderr, "quantize: %s (%d of %d)\n", folder, done + 1, total);
  cli_progress ("quantize", done, total);
}

static double walked_bytes;

static int
add_file (const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
  (void)path;
  (void)ftw;
  if (type == FTW_F && S_ISREG (sb->st_mode))
    walked_bytes += (double)sb->st_size;
  return 0;
}

/* The bytes of the regular files under dir, links followed. */
static double
folder_bytes (const char *dir)
{
  walked_bytes = 0;
  nftw (dir, add_file, 16, 0);
  return walked_bytes;
}

int
cmd_quantize (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "weights", required_argument, NULL, 'w' },
    { "threads", required_argument, NULL, 't' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *weights = NULL;
  int threads = 0;
  bool json = false;
  int c;
  optind = 1;
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'w':
        weights = optarg;
        break;
      case 't':
        {
          char *end;
          long n = strtol (optarg, &end, 10);
          if (end == optarg || *end || n < 1 || n > 1024)
            return cli_usage_error ("quantize", "--threads needs 1..1024, got '%s'", optarg);
          threads = (int)n;
        }
        break;
      case 'j':
        json = true;
        break;
      case 'h':
        usage (stdout);
        return CLI_EXIT_OK;
      default:
        return cli_usage_error ("quantize", "unknown or incomplete option '%s'",
                                argv[optind - 1]);
      }
  if (argc - optind != 2)
    return cli_usage_error ("quantize", "expected IN and OUT folders");
  if (!weights || (strcmp (weights, "q8") && strcmp (weights, "q4")))
    return cli_usage_error ("quantize", "--weights must be q8 or q4%s%s%s",
                            weights ? ", got '" : "", weights ? weights : "",
                            weights ? "'" : "");
  const char *in = argv[optind], *out = argv[optind + 1];
  setok_error err = { 0 };
  double t0 = setok_clock_ms ();
  if (setok_model_quantize (in, out, weights, threads, on_folder, NULL, &err) != SETOK_OK)
    return cli_report (&err);
  double ms = setok_clock_ms () - t0, in_bytes = folder_bytes (in), out_bytes = folder_bytes (out);
  if (json)
    {
      cJSON *o = cJSON_CreateObject ();
      cJSON_AddStringToObject (o, "input", in);
      cJSON_AddStringToObject (o, "output", out);
      cJSON_AddStringToObject (o, "weights", weights);
      cJSON_AddNumberToObject (o, "input_bytes", in_bytes);
      cJSON_AddNumberToObject (o, "output_bytes", out_bytes);
      cJSON_AddNumberToObject (o, "ms", ms);
      return cli_print_json (o);
    }
  char a[32], b[32];
  printf ("%s: %s (%s) -> %s (%s) in %.1f s\n", weights, in,
          cli_format_bytes (in_bytes, a, sizeof a), out, cli_format_bytes (out_bytes, b, sizeof b),
          ms / 1000);
  return CLI_EXIT_OK;
}
