/* cli-common.c — helpers shared by the setok subcommands. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "shipped-model.h"

const char *
cli_model_path (const char *model, setok_error *err)
{
  if (model)
    return model;
  if (shipped_model_exists ())
    return shipped_model_path ();
  setok_fail (err, SETOK_ERR_INPUT,
              "no --model given and the default model is missing (looked for %s and %s)",
              shipped_model_source_path (), shipped_model_installed_path ());
  return NULL;
}

void
cli_placement_default (cli_placement *p)
{
  *p = (cli_placement){ .device = "auto", .dtype = "auto" };
}

int
cli_placement_option (const char *subcommand, int c, const char *arg, cli_placement *p)
{
  setok_dtype d;
  char *end;
  long v;
  switch (c)
    {
      case CLI_OPT_DEVICE:
        if (strcmp (arg, "cpu") && strcmp (arg, "cuda") && strcmp (arg, "auto"))
          return cli_usage_error (subcommand, "--device is cpu, cuda or auto, got '%s'", arg);
        p->device = arg;
        return 0;
      case CLI_OPT_THREADS:
        v = strtol (arg, &end, 10);
        if (end == arg || *end || v < 1 || v > 1024)
          return cli_usage_error (subcommand, "--threads must be 1..1024, got '%s'", arg);
        p->threads = (int)v;
        return 0;
      case CLI_OPT_DTYPE:
        if (strcmp (arg, "auto") && (!setok_dtype_from_name (arg, &d) || !setok_dtype_is_float (d)))
          return cli_usage_error (subcommand, "--dtype is auto, f32, f16 or bf16, got '%s'", arg);
        p->dtype = arg;
        return 0;
      case CLI_OPT_WEIGHTS:
        if (!setok_dtype_from_name (arg, &d) || !setok_dtype_is_quantized (d))
          return cli_usage_error (subcommand, "--weights is q8 or q4, got '%s'", arg);
        p->weights = arg;
        return 0;
      default:
        return -1;
    }
}

setok_status
cli_open_model_quiet (setok_model **out, const char *dir, const cli_placement *p,
                      const char *adapter, setok_error *err)
{
  setok_model_options o;
  setok_model_options_default (&o);
  o.device = p->device;
  o.threads = p->threads;
  o.dtype = p->dtype;
  o.weights = p->weights;
  o.adapter = adapter;
  return setok_model_open (out, dir, &o, err);
}

setok_status
cli_open_model (setok_model **out, const char *dir, const cli_placement *p, const char *adapter,
                setok_error *err)
{
  setok_status st = cli_open_model_quiet (out, dir, p, adapter, err);
  for (int i = 0; st == SETOK_OK && i < setok_model_note_count (*out); i++)
    fprintf (stderr, "setok: note: %s\n", setok_model_note (*out, i));
  return st;
}

static atomic_bool interrupt_flag;

static void
on_interrupt (int sig)
{
  /* the second signal: what it would have done without us */
  if (atomic_exchange (&interrupt_flag, true))
    {
      signal (sig, SIG_DFL);
      raise (sig);
    }
}

const atomic_bool *
cli_cancel_on_interrupt (void)
{
  static bool installed;
  if (!installed)
    {
      struct sigaction sa = { 0 };
      sa.sa_handler = on_interrupt;
      sigemptyset (&sa.sa_mask);
      sigaction (SIGINT, &sa, NULL);
      sigaction (SIGTERM, &sa, NULL);
      installed = true;
    }
  return &interrupt_flag;
}

bool
cli_interrupted (void)
{
  return atomic_load (&interrupt_flag);
}

void
cli_interrupt_clear (void)
{
  atomic_store (&interrupt_flag, false);
}

int
cli_report (const setok_error *err)
{
  if (err->status == SETOK_ERR_CANCELLED)
    {
      fprintf (stderr, "setok: interrupted (%s)\n", err->message);
      return CLI_EXIT_INTERRUPTED;
    }
  fprintf (stderr, "setok: %s\n", err->message[0] ? err->message : setok_status_name (err->status));
  return setok_status_exit_code (err->status == SETOK_OK ? SETOK_ERR_RUNTIME : err->status);
}

int
cli_usage_error (const char *subcommand, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "setok %s: ", subcommand);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, "\nTry 'setok %s --help'.\n", subcommand);
  return CLI_EXIT_USAGE;
}

int
cli_print_json (cJSON *json)
{
  char *text = json ? cJSON_Print (json) : NULL;
  cJSON_Delete (json);
  if (!text)
    {
      fprintf (stderr, "setok: out of memory while printing JSON\n");
      return CLI_EXIT_FAILURE;
    }
  int ok = puts (text) >= 0 && fflush (stdout) == 0;
  free (text);
  return ok ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

const char *
cli_format_bytes (double bytes, char *buf, size_t size)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  int u = 0;
  while (bytes >= 1024.0 && u < 4)
    {
      bytes /= 1024.0;
      u++;
    }
  snprintf (buf, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

bool
cli_stderr_is_tty (void)
{
  return isatty (STDERR_FILENO) == 1;
}

void
cli_progress (const char *label, long done, long total)
{
  if (!cli_stderr_is_tty () || total <= 0)
    return;
  enum
  {
    WIDTH = 30
  };
  long filled = done * WIDTH / total;
  char bar[WIDTH + 1];
  for (int i = 0; i < WIDTH; i++)
    bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
  bar[WIDTH] = '\0';
  fprintf (stderr, "\r%s [%s] %3ld%%", label, bar, done * 100 / total);
  if (done >= total)
    fputc ('\n', stderr);
  fflush (stderr);
}

bool
cli_print_piece (const char *text, void *user)
{
  (void)user;
  fputs (text, stdout);
  fflush (stdout);
  return true;
}
