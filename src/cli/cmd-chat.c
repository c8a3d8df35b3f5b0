/* cmd-chat.c — `setok chat`: a conversation with a SETOKIM bundle or a LLaVA
 * model about an image, one line of stdin per turn. Plain lines are questions whose answers
 * stream to stdout, one answer per line ending; lines starting with '/' are
 * commands. Prompts and notes go to stderr (the prompt only on a terminal), so
 * piped output holds the answers alone. Follow-up questions extend the same
 * KV cache (chat.h). Ctrl-C stops the answer being written (the conversation goes
 * on); at the prompt it ends the conversation (exit 130). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "setok/chat.h"

static void
usage (FILE *out)
{
  fprintf (out, "Usage: setok chat [IMAGE] [--model DIR] [OPTIONS]\n\n"
                "Talks with a model (default: the shipped setokim-tiny bundle; or a LLaVA-1.5\n"
                "folder) about IMAGE (or about no image): each line read\n"
                "from stdin is a question, answered on stdout; the conversation is kept.\n\n"
                "Commands:\n"
                "  /image PATH              start over on a new image\n"
                "  /reset                   forget the conversation, keep the image\n"
                "  /tokens setok|patches    switch image tokens (starts over)\n"
                "  /help                    this list\n"
                "  /quit                    leave (as does end of input)\n"
                "Ctrl-C stops an answer; at the prompt it leaves (exit 130).\n\n"
                "Options: the same as 'setok ask' except --json (see 'setok ask --help'):\n"
                "  --model DIR, --adapter DIR, --tokens patches|setok, --crop, --max-tokens N,\n"
                "  --temperature T, --top-k K, --top-p P, --min-p P, --repetition-penalty R,\n"
                "  --stop TEXT, --seed S, --device DEV, --threads N, --dtype T, --weights Q\n"
                CLI_SYSTEM_HELP
                "Follow-up questions keep the format's separators (LLaVA v1: '</s>' after\n"
                "each answer; llava-hf: ' ').\n");
}

static void
print_commands (void)
{
  fputs ("/image PATH             start over on a new image\n"
         "/reset                  forget the conversation, keep the image\n"
         "/tokens setok|patches   switch image tokens (starts over)\n"
         "/help                   this list\n"
         "/quit                   leave\n",
         stdout);
  fflush (stdout);
}

typedef struct chat_session
{
  setok_chat *chat;
  setok_chat_options opts;
  setok_image image; /* the current image; data NULL when none */
  bool have_image;
} chat_session;

/* Starts a fresh conversation on the current image. */
static setok_status
session_restart (chat_session *s, setok_error *err)
{
  return setok_chat_start (s->chat, s->have_image ? &s->image : NULL, &s->opts, err);
}

static void
command_image (chat_session *s, const char *path)
{
  setok_error err;
  setok_image image = { 0 };
  if (!*path)
    {
      fputs ("setok: /image needs a PATH\n", stderr);
      return;
    }
  if (setok_image_load (&image, path, 0, &err) != SETOK_OK)
    {
      cli_report (&err);
      fputs ("setok: keeping the current conversation\n", stderr);
      return;
    }
  setok_image old = s->image;
  bool had = s->have_image;
  s->image = image;
  s->have_image = true;
  if (session_restart (s, &err) != SETOK_OK)
    {
      cli_report (&err);
      setok_image_free (&s->image);
      s->image = old;
      s->have_image = had;
      if (session_restart (s, &err) != SETOK_OK)
        cli_report (&err);
      return;
    }
  if (had)
    setok_image_free (&old);
  fprintf (stderr, "setok: new conversation about %s\n", path);
}

static void
command_tokens (chat_session *s, const char *mode)
{
  setok_error err;
  setok_chat_image_mode m;
  if (!strcmp (mode, "setok"))
    m = SETOK_CHAT_IMAGE_SETOK;
  else if (!strcmp (mode, "patches"))
    m = SETOK_CHAT_IMAGE_PATCHES;
  else
    {
      fprintf (stderr, "setok: /tokens is setok or patches, got '%s'\n", mode);
      return;
    }
  setok_chat_image_mode prev = s->opts.image_mode;
  s->opts.image_mode = m;
  if (session_restart (s, &err) != SETOK_OK)
    {
      cli_report (&err);
      s->opts.image_mode = prev;
      if (session_restart (s, &err) != SETOK_OK)
        cli_report (&err);
      return;
    }
  fprintf (stderr, "setok: image tokens: %s (new conversation)\n", mode);
}

static void
ask (chat_session *s, const char *question)
{
  setok_error err;
  setok_chat_result r = { 0 };
  setok_status st = setok_chat_ask (s->chat, question, &s->opts, &r, &err);
  fputc ('\n', stdout);
  fflush (stdout);
  if (st == SETOK_ERR_CANCELLED)
    {
      /* the answer ends where it was; the conversation goes on */
      fputs ("setok: stopped\n", stderr);
      cli_interrupt_clear ();
    }
  else if (st != SETOK_OK)
    cli_report (&err);
  else if (r.stop_reason && !strcmp (r.stop_reason, "context"))
    fputs ("setok: the context is full; /reset to start over\n", stderr);
  setok_chat_result_free (&r);
}

/* Handles one line (newline stripped); returns false on /quit. */
static bool
handle_line (chat_session *s, char *line)
{
  while (isspace ((unsigned char)*line))
    line++;
  size_t n = strlen (line);
  while (n && isspace ((unsigned char)line[n - 1]))
    line[--n] = '\0';
  if (!n)
    return true;
  if (line[0] != '/')
    {
      ask (s, line);
      return true;
    }
  char *arg = line + strcspn (line, " \t");
  if (*arg)
    {
      *arg++ = '\0';
      while (isspace ((unsigned char)*arg))
        arg++;
    }
  if (!strcmp (line, "/quit") || !strcmp (line, "/exit"))
    return false;
  if (!strcmp (line, "/help"))
    print_commands ();
  else if (!strcmp (line, "/image"))
    command_image (s, arg);
  else if (!strcmp (line, "/tokens"))
    command_tokens (s, arg);
  else if (!strcmp (line, "/reset"))
    {
      setok_error err;
      if (session_restart (s, &err) != SETOK_OK)
        cli_report (&err);
      else
        fputs ("setok: new conversation\n", stderr);
    }
  else
    fprintf (stderr, "setok: unknown command '%s' (try /help)\n", line);
  return true;
}

int
cmd_chat (int argc, char **argv)
{
  cli_chat_args a;
  int rc = cli_parse_chat_args ("chat", argc, argv, 0, 1, "at most one IMAGE", usage, &a);
  if (rc)
    return rc < 0 ? CLI_EXIT_OK : rc;
  if (a.json)
    return cli_usage_error ("chat", "--json is for 'setok ask'; chat streams text");

  chat_session s = { 0 };
  s.opts = a.opts;
  s.opts.on_text = cli_print_piece;
  s.opts.user = NULL;
  s.opts.cancel = cli_cancel_on_interrupt ();
  setok_error err;
  if (optind < argc)
    {
      if (setok_image_load (&s.image, argv[optind], 0, &err) != SETOK_OK)
        {
          cli_report (&err);
          return CLI_EXIT_USAGE;
        }
      s.have_image = true;
    }
  setok_model *model = NULL;
  setok_status st = cli_open_model (&model, a.model, &a.place, a.adapter, &err);
  if (st == SETOK_OK)
    st = setok_chat_new (&s.chat, model, 0, &err);
  if (st == SETOK_OK)
    st = session_restart (&s, &err);
  if (st != SETOK_OK)
    {
      rc = cli_report (&err);
      goto out;
    }

  bool tty = isatty (STDIN_FILENO);
  if (tty)
    fputs ("setok chat: type a question, or /help\n", stderr);
  char *line = NULL;
  size_t cap = 0;
  for (;;)
    {
      if (tty)
        {
          fputs ("> ", stderr);
          fflush (stderr);
        }
      if (cli_interrupted () || getline (&line, &cap, stdin) < 0)
        break;
      if (!handle_line (&s, line))
        break;
    }
  free (line);
  rc = fflush (stdout) || ferror (stdout) ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
  if (cli_interrupted ())
    {
      fputs ("setok: interrupted\n", stderr);
      rc = CLI_EXIT_INTERRUPTED;
    }

out:
  setok_chat_free (s.chat);
  setok_model_free (model);
  if (s.have_image)
    setok_image_free (&s.image);
  return rc;
}
