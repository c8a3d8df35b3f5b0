/* setok-cli.c — `setok`: the command-line face of every pipeline.
 * Dispatches to one cmd_*() per subcommand (DESIGN §10). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "setok-config.h"
#include "setok/backend.h"

typedef struct command
{
  const char *name;
  int (*run) (int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
  { "info", cmd_info, "describe a model folder, a safetensors file or an image" },
  { "tokens", cmd_tokens, "cut an image into SeTok semantic tokens (overlay, masks, JSON)" },
  { "ask", cmd_ask, "ask a question about an image (SETOKIM or LLaVA; streamed answer)" },
  { "chat", cmd_chat, "talk about an image (SETOKIM or LLaVA), one line of stdin per turn" },
  { "segment", cmd_segment, "the mask of the object under points or named by a phrase" },
  { "generate", cmd_generate, "draw an image from a prompt (SETOKIM bundle or Stable Diffusion)" },
  { "edit", cmd_edit, "change the region under a point as instructed; the rest stays exact" },
  { "quantize", cmd_quantize, "copy a model folder with its weight matrices stored as q8 or q4" },
  { "eval", cmd_eval, "measure the model on held-out synthetic scenes" },
  { "forward", cmd_forward, "run one op or component on named tensors (reference tests)" },
  { "bench", cmd_bench, "measure speed: ops, vision, clustering, LLM, U-Net" },
  { "world", cmd_world, "render synthetic scenes with masks, annotations and edit targets" },
};

static void
print_usage (FILE *out)
{
  fprintf (out, "Usage: setok COMMAND [OPTIONS]\n"
                "       setok --version | --help\n\n"
                "Commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf (out, "  %-9s %s\n", commands[i].name, commands[i].summary);
  fprintf (out, "\nRun 'setok COMMAND --help' for a command's options.\n"
                "Exit status: 0 success, 1 runtime failure, 2 bad input or usage,\n"
                "130 interrupted (Ctrl-C stops tokens, ask, chat, segment, generate, edit and\n"
                "eval within a step or a token).\n");
}

static int
print_version (void)
{
  char mem[32], free_mem[32];
  setok_cuda_info cuda;
  setok_cuda_query (&cuda);
  printf ("setok %s\n", SETOK_VERSION);
  printf ("backends: cpu%s\n", cuda.compiled ? ", cuda" : "");
  printf ("blas: %s\n", setok_blas_name ());
  if (!cuda.compiled)
    {
      printf ("cuda: not compiled in\n");
    }
  else if (cuda.device_count <= 0)
    {
      printf ("cuda: compiled (runtime %d.%d), no GPU found%s%s\n", cuda.runtime_version / 1000,
              cuda.runtime_version % 1000 / 10, cuda.error[0] ? ": " : "", cuda.error);
    }
  else
    {
      printf ("cuda: runtime %d.%d, %d GPU%s; %s, sm_%d%d, %s total, %s free\n",
              cuda.runtime_version / 1000, cuda.runtime_version % 1000 / 10, cuda.device_count,
              cuda.device_count == 1 ? "" : "s", cuda.name, cuda.cc_major, cuda.cc_minor,
              cli_format_bytes ((double)cuda.total_memory, mem, sizeof mem),
              cli_format_bytes ((double)cuda.free_memory, free_mem, sizeof free_mem));
    }
  return CLI_EXIT_OK;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    {
      print_usage (stderr);
      return CLI_EXIT_USAGE;
    }
  const char *name = argv[1];
  if (!strcmp (name, "--version") || !strcmp (name, "-V"))
    return print_version ();
  if (!strcmp (name, "--help") || !strcmp (name, "-h") || !strcmp (name, "help"))
    {
      print_usage (stdout);
      return CLI_EXIT_OK;
    }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp (name, commands[i].name))
      return commands[i].run (argc - 1, argv + 1);
  fprintf (stderr, "setok: unknown command '%s'\n\n", name);
  print_usage (stderr);
  return CLI_EXIT_USAGE;
}
