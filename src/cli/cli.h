/* cli.h — the `setok` command line: one cmd_*() per subcommand, plus the
 * few helpers they share (error reporting, JSON output, progress). */
#ifndef SETOK_CLI_H
#define SETOK_CLI_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "setok/chat.h"
#include "setok/error.h"
#include "setok/model.h"

/* Exit codes (DESIGN §10). */
enum
{
  CLI_EXIT_OK = 0,
  CLI_EXIT_FAILURE = 1,
  CLI_EXIT_USAGE = 2,
  CLI_EXIT_INTERRUPTED = 130 /* 128 + SIGINT, as shells report it */
};

/* Each subcommand gets argv with argv[0] = its own name, parses its options
 * with getopt_long (--help prints usage to stdout and returns 0) and returns
 * an exit code. */
int cmd_info (int argc, char **argv);
int cmd_forward (int argc, char **argv);
int cmd_bench (int argc, char **argv);
int cmd_tokens (int argc, char **argv);
int cmd_ask (int argc, char **argv);
int cmd_chat (int argc, char **argv);
int cmd_world (int argc, char **argv);
int cmd_segment (int argc, char **argv);
int cmd_generate (int argc, char **argv);
int cmd_edit (int argc, char **argv);
int cmd_eval (int argc, char **argv);
int cmd_quantize (int argc, char **argv);

/* Where and how a command runs its model, the same options everywhere:
 * --device, --threads, --dtype, --weights (setok_model_options). */
typedef struct cli_placement
{
  const char *device;  /* "auto" */
  int threads;         /* 0: all cores */
  const char *dtype;   /* "auto" */
  const char *weights; /* NULL: none */
} cli_placement;

enum
{
  CLI_OPT_DEVICE = 0x100,
  CLI_OPT_THREADS,
  CLI_OPT_DTYPE,
  CLI_OPT_WEIGHTS
};

/* For a command's getopt_long table, and its --help. */
#define CLI_PLACEMENT_OPTIONS                                                                      \
  { "device", required_argument, NULL, CLI_OPT_DEVICE },                                           \
    { "threads", required_argument, NULL, CLI_OPT_THREADS },                                       \
    { "dtype", required_argument, NULL, CLI_OPT_DTYPE },                                           \
    { "weights", required_argument, NULL, CLI_OPT_WEIGHTS }
#define CLI_PLACEMENT_HELP                                                                         \
  "  --device DEV      cpu, cuda or auto (default)\n"                                              \
  "  --threads N       CPU threads (default: all)\n"                                               \
  "  --dtype T         the weights' dtype: auto (default: f32 on the CPU for models up to\n"       \
  "                    2 GiB, else as stored; f16 on a GPU), f32, f16 or bf16\n"                   \
  "  --weights Q       q8 or q4: the large weight matrices quantized (CPU)\n"

void cli_placement_default (cli_placement *p);
/* One of the CLI_OPT_* options into p: 0 when handled, -1 when c is not one of
 * them, else the exit code of a usage error (reported). */
int cli_placement_option (const char *subcommand, int c, const char *arg, cli_placement *p);

/* --system / --no-system, for the --help of `setok ask` and `setok chat`. */
#define CLI_SYSTEM_HELP                                                                            \
  "  --system TEXT            the conversation's system prompt (default: the model's: none\n"   \
  "                           with llava-hf's chat template; LLaVA's Vicuna prompt with a\n"    \
  "                           LLaVA v1 template, or when a LLaVA folder has no template the\n"  \
  "                           engine recognises; a bundle's system_prompt)\n"                   \
  "  --no-system              no system prompt\n"

/* The options `setok ask` and `setok chat` share (cmd-ask.c). */
typedef struct cli_chat_args
{
  setok_chat_options opts;
  const char *model;
  const char *adapter; /* a PEFT LoRA folder, or NULL */
  cli_placement place;
  bool json;
} cli_chat_args;

/* Fills a (defaults first) from argv; the positional arguments are left at
 * argv[optind..argc), and must number min_pos..max_pos. Returns 0, -1 after
 * --help (usage printed), or an exit code after a usage error. */
int cli_parse_chat_args (const char *subcommand, int argc, char **argv, int min_pos, int max_pos,
                         const char *positional, void (*usage) (FILE *out), cli_chat_args *a);

/* The model folder the commands use: model when given, else the shipped
 * setokim-tiny bundle, from the source tree when it is there (a build tree)
 * or else installed. NULL with err set (SETOK_ERR_INPUT) when neither exists. */
const char *cli_model_path (const char *model, setok_error *err);

/* Opens the model folder dir placed as p says, with an optional LoRA adapter folder, and
 * prints the model's notes (what it assumed where the folder says nothing) on stderr. */
setok_status cli_open_model (setok_model **out, const char *dir, const cli_placement *p,
                             const char *adapter, setok_error *err);
/* The same without printing the notes (`setok info` lists them). */
setok_status cli_open_model_quiet (setok_model **out, const char *dir, const cli_placement *p,
                                   const char *adapter, setok_error *err);

/* Ctrl-C for the long commands (tokens, ask, chat, segment, generate, edit, eval): from the
 * first call on, SIGINT and SIGTERM set the returned flag, which the command hands to the
 * engine as its cancel flag; the job stops within a step or a token, the command cleans up
 * and exits CLI_EXIT_INTERRUPTED (cli_report says so). A second signal ends the process at
 * once, as it would without the handler. Reads of stdin return EINTR rather than restart. */
const atomic_bool *cli_cancel_on_interrupt (void);
bool cli_interrupted (void);
/* Forgets a signal that was handled (chat goes on after a stopped answer). */
void cli_interrupt_clear (void);

/* "setok: MESSAGE" on stderr; returns the exit code for err's status
 * (CLI_EXIT_INTERRUPTED for a cancelled job). */
int cli_report (const setok_error *err);
/* "setok SUBCOMMAND: MESSAGE" + "Try 'setok SUBCOMMAND --help'." on stderr; returns 2. */
int cli_usage_error (const char *subcommand, const char *fmt, ...) SETOK_PRINTF (2, 3);
/* Prints json (pretty) to stdout and deletes it; returns 0, or 1 if printing fails. */
int cli_print_json (cJSON *json);
/* "1.5 GiB", "512 B"... */
const char *cli_format_bytes (double bytes, char *buf, size_t size);
/* Whether stderr is a terminal (progress lines are drawn only then). */
bool cli_stderr_is_tty (void);
/* Draws "label [=====>    ] 42%" on stderr when it is a TTY. done == total ends the line. */
/* A streaming callback: writes text to stdout at once; always continues. */
bool cli_print_piece (const char *text, void *user);
void cli_progress (const char *label, long done, long total);

#endif
