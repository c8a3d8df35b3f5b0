/* test-soak.c — one long SeTok Studio session under a display (Xvfb, cairo renderer) on the
 * shipped model: 200 overlay recomputes, 20 region edits each applied, undone and redone,
 * 50 chat turns, and 10 generations, each saved and its tab closed. The resident memory at
 * the end must be within 5 % of what it was after a warm-up round of each, and GLib must
 * log no warning or critical. Then a save that fails halfway (the file-size limit, which
 * is what a full disk does to write(2)), as PNG and as JPEG, must leave the file on disk
 * byte for byte, the document modified and an error toast; the next save succeeds.
 *
 * Usage: test-soak --model DIR --image FILE --out DIR
 * Exit 0 when every check passes, 1 otherwise. */
#include <adwaita.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "setok-application.h"
#include "setok-window-private.h"

#define WAIT_SECONDS 300
#define RECOMPUTES 200
#define EDITS 20
#define CHAT_TURNS 50
#define GENERATIONS 10
#define STEPS 4
#define GROWTH_LIMIT 0.05

static int failures;
static int log_problems;

static void
check (gboolean ok, const char *what, const char *detail)
{
  printf ("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, detail != NULL ? ": " : "",
          detail != NULL ? detail : "");
  if (!ok)
    failures++;
}

/* Every warning and critical GLib (and GTK) logs is counted, and still printed. */
static GLogWriterOutput
count_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  if (level & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR))
    log_problems++;
  return g_log_writer_default (level, fields, n_fields, data);
}

/* The resident size of what the process holds: free heap pages go back to the system
 * first, so that how many the allocator's per-thread arenas keep cached (which varies with
 * the machine's load) is not taken for growth. */
static long
resident_kib (void)
{
  long pages = 0, resident = 0;
  FILE *f;

  malloc_trim (0);
  f = fopen ("/proc/self/statm", "r");

  if (f != NULL && fscanf (f, "%ld %ld", &pages, &resident) != 2)
    resident = 0;
  if (f != NULL)
    fclose (f);
  return resident * (sysconf (_SC_PAGESIZE) / 1024);
}

typedef gboolean (*Predicate) (gpointer data);

static gboolean
wait_for (Predicate pred, gpointer data, double seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64)(seconds * G_USEC_PER_SEC);

  while (!pred (data))
    {
      if (g_get_monotonic_time () > end)
        return FALSE;
      g_main_context_iteration (NULL, FALSE);
      g_usleep (500);
    }
  return TRUE;
}

static void
spin (double seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64)(seconds * G_USEC_PER_SEC);

  while (g_get_monotonic_time () < end)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (500);
    }
}

static gboolean
model_settled (gpointer data)
{
  return !setok_engine_get_loading (data);
}

static gboolean
nothing_loading (gpointer data)
{
  return _setok_window_get_n_loading (data) == 0;
}

static gboolean
canvas_allocated (gpointer data)
{
  SetokCanvas *canvas = _setok_window_get_canvas (data);

  return canvas != NULL && gtk_widget_get_width (GTK_WIDGET (canvas)) > 0
         && gtk_widget_get_mapped (GTK_WIDGET (canvas));
}

static gboolean
has_token_map (gpointer data)
{
  SetokDocument *document = _setok_window_get_document (data);

  return document != NULL && setok_document_get_token_map (document) != NULL
         && !setok_document_get_computing (document);
}

static gboolean
chat_idle (gpointer data)
{
  return !setok_chat_view_get_busy (data);
}

static gboolean
edit_settled (gpointer data)
{
  return setok_document_get_edit_state (data) != SETOK_EDIT_RUNNING;
}

static gboolean
not_generating (gpointer data)
{
  return !_setok_window_get_generating (data);
}

static gboolean
one_document (gpointer data)
{
  return _setok_window_get_n_documents (data) == 1;
}

typedef struct
{
  GAsyncResult *result;
} Waiter;

static void
got_result (GObject *source, GAsyncResult *result, gpointer user_data)
{
  ((Waiter *)user_data)->result = g_object_ref (result);
}

static gboolean
has_result (gpointer data)
{
  return ((Waiter *)data)->result != NULL;
}

/* Saves document to path as Save As does; TRUE when it was saved. */
static gboolean
save_as (SetokDocument *document, const char *path, GError **error)
{
  g_autoptr (GFile) file = g_file_new_for_path (path);
  Waiter w = { NULL };
  gboolean saved;

  setok_document_save_async (document, file, NULL, got_result, &w);
  wait_for (has_result, &w, WAIT_SECONDS);
  saved = w.result != NULL && setok_document_save_finish (document, w.result, error);
  g_clear_object (&w.result);
  return saved;
}

// ----------------------------------------------------------------------------
// the operations, each once per call

static const setok_cluster_mode modes[] = { SETOK_CLUSTER_DPC, SETOK_CLUSTER_SOFT,
                                            SETOK_CLUSTER_FIXED };

/* A recompute with other controls: the map that comes back has them. */
static gboolean
recompute (SetokWindow *window, int i)
{
  setok_cluster_mode mode = modes[i % 3];
  double threshold = 0.3 + 0.05 * (i % 7);
  int count = 3 + i % 6;
  SetokTokenMap *map;

  _setok_window_set_token_controls (window, mode, threshold, count);
  _setok_window_recompute (window, _setok_window_get_canvas (window));
  if (!wait_for (has_token_map, window, WAIT_SECONDS))
    return FALSE;
  map = setok_document_get_token_map (_setok_window_get_document (window));
  return map->params.mode == mode && map->result.clusters.n_tokens >= 1;
}

/* Clicks the largest token, edits it, applies, undoes and redoes. */
static gboolean
edit (SetokWindow *window, int i)
{
  SetokCanvas *canvas = _setok_window_get_canvas (window);
  SetokDocument *document = setok_canvas_get_document (canvas);
  SetokTokenMap *map = setok_document_get_token_map (document);
  SetokDiffusionRequest request = { STEPS, 7.5, (guint64)i + 1 };
  const setok_tokens_result *r = &map->result;
  int target = 0, px = -1, py = -1;
  double x, y;

  for (int t = 1; t < r->clusters.n_tokens; t++)
    if (r->regions[t].area > r->regions[target].area)
      target = t;
  for (gsize k = 0; k < (gsize)r->width * r->height && px < 0; k++)
    if (r->pixel_labels[k] == target)
      px = (int)(k % r->width), py = (int)(k / r->width);
  setok_document_clear_selection (document);
  setok_canvas_image_to_widget (canvas, px + 0.5, py + 0.5, &x, &y);
  setok_canvas_click (canvas, x, y, 0);
  _setok_window_set_edit_controls (window, i % 2 ? "make it blue" : "make it red", &request);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.edit", NULL);
  wait_for (edit_settled, document, WAIT_SECONDS);
  if (setok_document_get_edit_state (document) != SETOK_EDIT_REVIEW)
    return FALSE;
  gtk_widget_activate_action (GTK_WIDGET (window), "win.apply-edit", NULL);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.undo", NULL);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.redo", NULL);
  return setok_document_get_can_undo (document) && !setok_document_get_can_redo (document)
         && wait_for (has_token_map, window, WAIT_SECONDS);
}

static gboolean
chat_turn (SetokWindow *window, int i)
{
  static const char *const questions[]
    = { "Describe the scene.", "How many shapes are there?", "What colour is the largest shape?",
        "Is there a circle?", "What is left of the square?" };
  SetokChatView *chat = _setok_window_get_chat_view (window);

  if (i % 10 == 9)
    setok_chat_view_clear (chat);
  if (!setok_chat_view_ask (chat, questions[i % G_N_ELEMENTS (questions)]))
    return FALSE;
  return wait_for (chat_idle, chat, WAIT_SECONDS);
}

/* Generates a picture into a new tab, saves it and closes the tab. */
static gboolean
generate (SetokWindow *window, const char *out, int i)
{
  SetokDiffusionRequest request = { STEPS, 7.5, (guint64)i + 1 };
  AdwTabView *view = _setok_window_get_tab_view (window);
  g_autofree char *path = g_strdup_printf ("%s/soak-generated.png", out);
  g_autoptr (GError) error = NULL;
  SetokDocument *document;
  gboolean saved;

  _setok_window_set_generate_controls (window, i % 2 ? "a red circle" : "a blue square",
                                       &request);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.generate", NULL);
  wait_for (not_generating, window, WAIT_SECONDS);
  if (_setok_window_get_n_documents (window) != 2)
    return FALSE;
  document = _setok_window_get_document (window);
  saved = save_as (document, path, &error);
  adw_tab_view_close_page (view, adw_tab_view_get_selected_page (view));
  return saved && wait_for (one_document, window, 30);
}

// ----------------------------------------------------------------------------
// the session

typedef struct
{
  const char *name;
  int total;
  double ms;
  int ok;
} Phase;

static void
run_round (SetokWindow *window, const char *out, Phase *phases, gboolean warm_up)
{
  int counts[4];

  for (int p = 0; p < 4; p++)
    counts[p] = warm_up ? 2 : phases[p].total;
  for (int p = 0; p < 4; p++)
    {
      gint64 t0 = g_get_monotonic_time ();
      int ok = 0;

      for (int i = 0; i < counts[p]; i++)
        {
          gboolean done = p == 0   ? recompute (window, i)
                          : p == 1 ? edit (window, i)
                          : p == 2 ? chat_turn (window, i)
                                   : generate (window, out, i);
          ok += done;
          if (!done)
            printf ("  %s %d of %d did not complete: %s\n", phases[p].name, i + 1, counts[p],
                    _setok_window_get_last_error (window) != NULL
                      ? _setok_window_get_last_error (window)
                      : "(no error shown)");
        }
      if (!warm_up)
        {
          phases[p].ms = (g_get_monotonic_time () - t0) / 1000.0;
          phases[p].ok = ok;
        }
    }
}

static gboolean
file_equals (const char *path, const char *bytes, gsize n)
{
  g_autofree char *now = NULL;
  gsize len = 0;

  return g_file_get_contents (path, &now, &len, NULL) && len == n && memcmp (now, bytes, n) == 0;
}

/* A save (as name) that fails halfway leaves the file as it was, the document modified and
 * an error toast; the next one succeeds. */
static void
test_failed_save (SetokWindow *window, const char *out, const char *name)
{
  SetokDocument *document = _setok_window_get_document (window);
  g_autofree char *path = g_strdup_printf ("%s/%s", out, name);
  g_autofree char *prefix = g_strdup_printf (".%s.", name);
  g_autofree char *before = NULL;
  g_autoptr (GError) error = NULL;
  struct rlimit old, small;
  gsize n = 0;
  guint errors;
  const char *message;

  check (save_as (document, path, &error) && !setok_document_get_modified (document),
         "the document saved", error != NULL ? error->message : path);
  if (!g_file_get_contents (path, &before, &n, NULL))
    return;
  /* a new revision with more detail than the limit lets through */
  {
    const setok_image *img = setok_picture_get_image (setok_document_get_picture (document));
    setok_image noisy = { 0 };
    setok_error err = { 0 };

    if (setok_image_alloc (&noisy, img->width, img->height, img->channels, &err) != SETOK_OK)
      return;
    for (gsize i = 0; i < (gsize)img->width * img->height * img->channels; i++)
      noisy.pixels[i] = (guint8)g_random_int ();
    setok_document_push_picture (document, setok_picture_new_take (&noisy));
  }
  errors = _setok_window_get_n_errors (window);
  getrlimit (RLIMIT_FSIZE, &old);
  small = old;
  small.rlim_cur = n / 2;
  signal (SIGXFSZ, SIG_IGN);
  setrlimit (RLIMIT_FSIZE, &small);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.save", NULL);
  {
    gint64 end = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
    while (_setok_window_get_n_errors (window) == errors && g_get_monotonic_time () < end)
      {
        g_main_context_iteration (NULL, FALSE);
        g_usleep (500);
      }
  }
  setrlimit (RLIMIT_FSIZE, &old);
  signal (SIGXFSZ, SIG_DFL);
  message = _setok_window_get_last_error (window);
  check (_setok_window_get_n_errors (window) == errors + 1 && message != NULL
           && strstr (message, "unchanged") != NULL,
         "a save that fails halfway shows an error toast", message);
  check (file_equals (path, before, n), "the file on disk is byte for byte the one saved before",
         path);
  check (setok_document_get_modified (document), "the document is still modified", NULL);
  {
    g_autoptr (GDir) dir = g_dir_open (out, 0, NULL);
    const char *entry;
    int temporaries = 0;

    while (dir != NULL && (entry = g_dir_read_name (dir)) != NULL)
      temporaries += g_str_has_prefix (entry, prefix);
    check (temporaries == 0, "no temporary file is left beside it", NULL);
  }
  gtk_widget_activate_action (GTK_WIDGET (window), "win.save", NULL);
  {
    gint64 end = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
    while (setok_document_get_modified (document) && g_get_monotonic_time () < end)
      {
        g_main_context_iteration (NULL, FALSE);
        g_usleep (500);
      }
  }
  check (!setok_document_get_modified (document) && !file_equals (path, before, n),
         "the next save writes the file", NULL);
}

int
main (int argc, char *argv[])
{
  g_autofree char *model = NULL, *image = NULL, *out = NULL;
  GOptionEntry entries[] = {
    { "model", 0, 0, G_OPTION_ARG_FILENAME, &model, "model folder", "DIR" },
    { "image", 0, 0, G_OPTION_ARG_FILENAME, &image, "image to open", "FILE" },
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "where files go", "DIR" },
    { NULL },
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- SeTok Studio soak test");
  g_autoptr (GError) error = NULL;
  g_autoptr (SetokApplication) app = NULL;
  g_autoptr (GFile) file = NULL;
  Phase phases[4] = { { "overlay recompute", RECOMPUTES, 0, 0 },
                      { "edit with undo and redo", EDITS, 0, 0 },
                      { "chat turn", CHAT_TURNS, 0, 0 },
                      { "generation", GENERATIONS, 0, 0 } };
  SetokEngine *engine;
  SetokWindow *window;
  long rss_start, rss_end;

  setvbuf (stdout, NULL, _IOLBF, 0);
  g_log_set_writer_func (count_writer, NULL, NULL);
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || model == NULL || image == NULL
      || out == NULL)
    {
      fprintf (stderr, "test-soak: %s\n",
               error != NULL ? error->message : "--model, --image and --out are needed");
      return 2;
    }
  g_mkdir_with_parents (out, 0755);

  app = setok_application_new ();
  g_application_set_flags (G_APPLICATION (app),
                           G_APPLICATION_NON_UNIQUE | G_APPLICATION_HANDLES_OPEN);
  setok_application_set_model_override (app, model);
  if (!g_application_register (G_APPLICATION (app), NULL, &error))
    {
      fprintf (stderr, "test-soak: cannot register: %s\n", error->message);
      return 1;
    }
  g_settings_set_int (setok_application_get_settings (app), "max-new-tokens", 24);
  g_application_activate (G_APPLICATION (app));
  engine = setok_application_get_engine (app);
  window = SETOK_WINDOW (gtk_application_get_active_window (GTK_APPLICATION (app)));
  if (window == NULL)
    return 1;
  gtk_window_set_default_size (GTK_WINDOW (window), 1100, 720);
  check (wait_for (model_settled, engine, WAIT_SECONDS) && setok_engine_get_has_chat (engine),
         "model loaded", setok_engine_get_model_error (engine));
  file = g_file_new_for_path (image);
  setok_window_open_file (window, file);
  check (wait_for (nothing_loading, window, WAIT_SECONDS)
           && _setok_window_get_n_documents (window) == 1 && wait_for (canvas_allocated, window, 30)
           && wait_for (has_token_map, window, WAIT_SECONDS),
         "image opened with its tokens", _setok_window_get_last_error (window));
  if (failures)
    return 1;
  {
    /* the document gets a file of its own in out/, so Save never writes the sample */
    g_autofree char *copy = g_strdup_printf ("%s/soak-start.png", out);
    g_autoptr (GError) save_error = NULL;
    check (save_as (_setok_window_get_document (window), copy, &save_error), "saved a copy",
           save_error != NULL ? save_error->message : NULL);
  }

  run_round (window, out, phases, TRUE);
  spin (0.5);
  rss_start = resident_kib ();
  printf ("resident memory after the warm-up round: %ld KiB\n", rss_start);
  run_round (window, out, phases, FALSE);
  spin (0.5);
  rss_end = resident_kib ();
  for (int p = 0; p < 4; p++)
    {
      g_autofree char *detail
        = g_strdup_printf ("%d of %d in %.1f s (%.0f ms each)", phases[p].ok, phases[p].total,
                           phases[p].ms / 1000.0, phases[p].ms / MAX (phases[p].total, 1));
      check (phases[p].ok == phases[p].total, phases[p].name, detail);
    }
  {
    double growth = (double)(rss_end - rss_start) / (double)rss_start;
    g_autofree char *detail = g_strdup_printf ("%ld -> %ld KiB (%+.2f %%, limit +%.0f %%)",
                                               rss_start, rss_end, growth * 100,
                                               GROWTH_LIMIT * 100);
    check (growth <= GROWTH_LIMIT, "resident memory stays flat over the session", detail);
  }
  test_failed_save (window, out, "soak-saved.png");
  test_failed_save (window, out, "soak-saved.jpg");
  {
    g_autofree char *detail = g_strdup_printf ("%d logged", log_problems);
    check (log_problems == 0, "no GLib warning or critical", detail);
  }
  _setok_window_set_close_confirmed (window);
  gtk_window_destroy (GTK_WINDOW (window));
  spin (0.1);
  printf ("%d failed\n", failures);
  return failures ? 1 : 0;
}
