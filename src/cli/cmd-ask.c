/* cmd-ask.c — `setok ask`: one question about one image to a SETOKIM bundle
 * or a LLaVA model, the answer streamed to stdout, or {answer, token_ids,
 * timings} with --json. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "setok/chat.h"

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: setok ask IMAGE QUESTION [--model DIR] [OPTIONS]\n\n"
           "Asks a model a question about IMAGE and streams the answer.\n\n"
           "  --model DIR              a SETOKIM bundle (folder with setokim.json) or a\n"
           "                           LLaVA-1.5 folder (llava-hf layout); default: the\n"
           "                           shipped setokim-tiny bundle\n"
           "  --adapter DIR            a PEFT LoRA folder merged into the language model\n"
           "  --tokens patches|setok   image tokens; default: the model's own (bundle:\n"
           "                           SeTok merger tokens; LLaVA: every patch). setok on\n"
           "                           LLaVA: cluster means; patches on a bundle: every\n"
           "                           patch its own cluster\n"
           "  --crop                   the processor's centre crop instead of the whole\n"
           "                           image padded to a square\n"
           "  --max-tokens N           at most N new tokens (default 256)\n"
           "  --temperature T          0 = greedy (default)\n"
           "  --top-k K                sample from the K most likely tokens\n"
           "  --top-p P                sample from the smallest set with mass >= P\n"
           "  --min-p P                drop tokens below P times the most likely\n"
           "  --repetition-penalty R   HF's penalty on tokens already seen (default 1)\n"
           "  --stop TEXT              stop before TEXT (repeatable, up to %d)\n"
           "  --seed S                 sampling seed (default 0)\n"
           CLI_SYSTEM_HELP
           "  --json                   print {answer, token_ids, prompt_ids, tokens, timings}\n"
           "                           instead\n"
           CLI_PLACEMENT_HELP,
           SETOK_SAMPLING_MAX_STOPS);
}

static int
parse_long (const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
  char *end;
  errno = 0;
  long v = strtol (s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return cli_usage_error (cmd, "%s needs an integer in %ld..%ld, got '%s'", opt, lo, hi, s);
  *out = v;
  return 0;
}

static int
parse_float (const char *cmd, const char *opt, const char *s, float *out)
{
  char *end;
  double v = strtod (s, &end);
  if (end == s || *end || !isfinite (v))
    return cli_usage_error (cmd, "%s needs a number, got '%s'", opt, s);
  *out = (float)v;
  return 0;
}

static cJSON *
timings_json (const setok_chat_timings *t)
{
  cJSON *o = cJSON_CreateObject ();
  cJSON_AddNumberToObject (o, "encode_ms", t->encode_ms);
  cJSON_AddNumberToObject (o, "cluster_ms", t->cluster_ms);
  cJSON_AddNumberToObject (o, "project_ms", t->project_ms);
  cJSON_AddNumberToObject (o, "prefill_ms", t->prefill_ms);
  cJSON_AddNumberToObject (o, "first_token_ms", t->first_token_ms);
  cJSON_AddNumberToObject (o, "decode_ms", t->decode_ms);
  cJSON_AddNumberToObject (o, "decode_tokens_per_s", t->decode_tokens_per_s);
  return o;
}

int
cli_parse_chat_args (const char *subcommand, int argc, char **argv, int min_pos, int max_pos,
                     const char *positional, void (*print_usage) (FILE *out), cli_chat_args *a)
{
  static const struct option longopts[] = {
    { "model", required_argument, NULL, 'm' },
    { "adapter", required_argument, NULL, 'A' },
    { "tokens", required_argument, NULL, 'K' },
    { "crop", no_argument, NULL, 'C' },
    { "max-tokens", required_argument, NULL, 'n' },
    { "temperature", required_argument, NULL, 't' },
    { "top-k", required_argument, NULL, 'k' },
    { "top-p", required_argument, NULL, 'p' },
    { "min-p", required_argument, NULL, 'P' },
    { "repetition-penalty", required_argument, NULL, 'r' },
    { "stop", required_argument, NULL, 'S' },
    { "seed", required_argument, NULL, 's' },
    { "json", no_argument, NULL, 'j' },
    { "system", required_argument, NULL, 'y' },
    { "no-system", no_argument, NULL, 'Y' },
    CLI_PLACEMENT_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  memset (a, 0, sizeof *a);
  setok_chat_options_default (&a->opts);
  cli_placement_default (&a->place);
  setok_chat_options *o = &a->opts;
  setok_sampling_params *sp = &o->sampling;
  int n_stop = 0;
  long v = 0;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    {
      switch (c)
        {
          case 'm':
            a->model = optarg;
            break;
          case 'A':
            a->adapter = optarg;
            break;
          case 'K':
            if (!strcmp (optarg, "patches"))
              o->image_mode = SETOK_CHAT_IMAGE_PATCHES;
            else if (!strcmp (optarg, "setok"))
              o->image_mode = SETOK_CHAT_IMAGE_SETOK;
            else
              return cli_usage_error (subcommand, "--tokens is patches or setok, got '%s'", optarg);
            break;
          case 'C':
            o->fit = SETOK_IMAGE_FIT_CROP;
            break;
          case 'n':
            if (parse_long (subcommand, "--max-tokens", optarg, 0, 1 << 20, &v))
              return CLI_EXIT_USAGE;
            sp->max_new_tokens = (int)v;
            break;
          case 't':
            if (parse_float (subcommand, "--temperature", optarg, &sp->temperature))
              return CLI_EXIT_USAGE;
            break;
          case 'k':
            if (parse_long (subcommand, "--top-k", optarg, 0, 1 << 24, &v))
              return CLI_EXIT_USAGE;
            sp->top_k = (int)v;
            break;
          case 'p':
            if (parse_float (subcommand, "--top-p", optarg, &sp->top_p))
              return CLI_EXIT_USAGE;
            break;
          case 'P':
            if (parse_float (subcommand, "--min-p", optarg, &sp->min_p))
              return CLI_EXIT_USAGE;
            break;
          case 'r':
            if (parse_float (subcommand, "--repetition-penalty", optarg, &sp->repetition_penalty))
              return CLI_EXIT_USAGE;
            break;
          case 'S':
            if (n_stop == SETOK_SAMPLING_MAX_STOPS)
              return cli_usage_error (subcommand, "at most %d --stop strings",
                                      SETOK_SAMPLING_MAX_STOPS);
            sp->stop[n_stop++] = optarg;
            break;
          case 's':
            if (parse_long (subcommand, "--seed", optarg, 0, LONG_MAX, &v))
              return CLI_EXIT_USAGE;
            sp->seed = (uint64_t)v;
            break;
          case 'j':
            a->json = true;
            break;
          case 'y':
          case 'Y':
            if (o->system_prompt)
              return cli_usage_error (subcommand, "give --system or --no-system once");
            o->system_prompt = c == 'y' ? optarg : "";
            break;
          case 'h':
            print_usage (stdout);
            return -1;
          default:
            {
              int rc = cli_placement_option (subcommand, c, optarg, &a->place);
              if (rc < 0)
                return cli_usage_error (subcommand, "unknown or incomplete option '%s'",
                                        argv[optind - 1]);
              if (rc > 0)
                return rc;
            }
        }
    }
  if (argc - optind < min_pos || argc - optind > max_pos)
    return cli_usage_error (subcommand, "expected %s", positional);
  setok_error err;
  if (!(a->model = cli_model_path (a->model, &err)))
    return cli_report (&err);
  if (setok_sampling_params_check (sp, &err) != SETOK_OK)
    return cli_usage_error (subcommand, "%s", err.message);
  return 0;
}

int
cmd_ask (int argc, char **argv)
{
  cli_chat_args a;
  int rc = cli_parse_chat_args ("ask", argc, argv, 2, 2, "IMAGE and QUESTION", usage, &a);
  if (rc)
    return rc < 0 ? CLI_EXIT_OK : rc;
  setok_chat_options o = a.opts;
  o.cancel = cli_cancel_on_interrupt ();
  bool json = a.json;
  const char *image_path = argv[optind], *question = argv[optind + 1];

  setok_error err;
  setok_image image = { 0 };
  if (setok_image_load (&image, image_path, 0, &err) != SETOK_OK)
    {
      cli_report (&err);
      return CLI_EXIT_USAGE; /* a bad image is bad input, whatever the decoder says */
    }
  setok_chat *chat = NULL;
  setok_chat_result r = { 0 };
  if (!json)
    {
      o.on_text = cli_print_piece;
      o.user = NULL;
    }
  setok_model *model = NULL;
  setok_status st = cli_open_model (&model, a.model, &a.place, a.adapter, &err);
  if (st == SETOK_OK)
    st = setok_chat_new (&chat, model, 0, &err);
  if (st == SETOK_OK)
    st = setok_chat_start (chat, &image, &o, &err);
  if (st == SETOK_OK)
    st = setok_chat_ask (chat, question, &o, &r, &err);
  setok_image_free (&image);
  if (st != SETOK_OK)
    rc = cli_report (&err);
  else if (json)
    {
      cJSON *out = cJSON_CreateObject ();
      cJSON_AddStringToObject (out, "answer", r.text ? r.text : "");
      cJSON_AddItemToObject (out, "token_ids", cJSON_CreateIntArray (r.ids, r.n_ids));
      cJSON_AddItemToObject (out, "prompt_ids", cJSON_CreateIntArray (r.prompt_ids, r.n_prompt));
      cJSON_AddNumberToObject (out, "tokens", r.n_ids);
      cJSON_AddNumberToObject (out, "prompt_tokens", r.n_prompt);
      cJSON_AddNumberToObject (out, "image_tokens", r.n_image_tokens);
      cJSON_AddStringToObject (out, "stop_reason", r.stop_reason ? r.stop_reason : "");
      cJSON_AddItemToObject (out, "timings", timings_json (&r.timings));
      rc = cli_print_json (out);
    }
  else
    {
      fputc ('\n', stdout);
      rc = fflush (stdout) ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
    }
  setok_chat_result_free (&r);
  setok_chat_free (chat);
  setok_model_free (model);
  return rc;
}
