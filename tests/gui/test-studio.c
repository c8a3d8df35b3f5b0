/* test-studio.c — drives SeTok Studio under a display (Xvfb, cairo renderer):
 * starts on a model, opens an image, waits for the token overlay, renders the
 * canvas to PNG files and checks the overlay's pixels, hovers and click-selects
 * tokens, asks a question and receives streamed text, renders the window at
 * the widths people use (studio-layout.c), stops an answer, checks what
 * guides a person (studio-guidance.c), and opens a corrupt image, which must
 * give an error and leave the app running. Then the picture history (undo
 * restores the very pixels, redo reapplies), saving (PNG exact, JPEG), a
 * point-and-instruct edit of a clicked token (changes inside the region only;
 * preview, before/after like with like, Try Again, apply, undo, redo),
 * generation of a new document, and the questions before a modified tab or
 * the application closes (Ctrl+Q from inside a popover). A model without
 * generation components skips the edit and generation checks, saying why.
 * The overlay recompute, the first token and the longest main-loop iteration
 * of each job are reported.
 *
 * With --no-model the folder is missing on purpose: the app must still open
 * images, show why there is no model and turn off what needs one; with
 * --german it must speak German (LANGUAGE=de) from the build tree.
 *
 * Usage: test-studio --model DIR --image FILE --corrupt FILE --out DIR
 *                    [--screenshots DIR] [--no-model [--german]]
 * Exit 0 when every check passes, 1 otherwise. */
#include <adwaita.h>
#include <glib/gi18n.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>

#include "studio-test.h"

typedef struct
{
  guint pieces;
  gboolean while_busy;
  SetokChatView *chat;
} Stream;

static void
answer_notified (GObject *object, GParamSpec *pspec, Stream *stream)
{
  stream->pieces++;
  stream->while_busy |= setok_chat_view_get_busy (stream->chat);
}

static void
test_overlay (SetokWindow *window, const char *out)
{
  SetokCanvas *canvas = _setok_window_get_canvas (window);
  SetokDocument *document = setok_canvas_get_document (canvas);
  SetokTokenMap *map = setok_document_get_token_map (document);
  const setok_image *img = setok_picture_get_image (setok_document_get_picture (document));
  cairo_surface_t *with, *without, *selected, *hovered;
  gint64 total = 0, changed;
  g_autofree char *detail = NULL;
  int n = map->result.clusters.n_tokens;
  double x, y;
  GtkBitset *selection = setok_document_get_selection (document);

  detail = g_strdup_printf ("%d tokens on a %d × %d image in %.1f ms", n, img->width, img->height,
                            map->result.timings.total_ms);
  check (n >= 1, "token map", detail);

  with = render_widget (GTK_WIDGET (canvas));
  save_png (with, out, "studio-canvas-overlay.png");
  setok_canvas_set_show_overlay (canvas, FALSE);
  spin (0.05);
  without = render_widget (GTK_WIDGET (canvas));
  save_png (without, out, "studio-canvas-plain.png");
  setok_canvas_set_show_overlay (canvas, TRUE);
  changed = count_changed (canvas, with, without, img->width, img->height, 12, &total);
  g_free (detail);
  detail = g_strdup_printf ("%" G_GINT64_FORMAT " of %" G_GINT64_FORMAT
                            " image pixels changed by the overlay (%.1f %%)",
                            changed, total, total ? 100.0 * changed / total : 0.0);
  check (total > 0 && changed > total / 4, "overlay colours over the image", detail);

  /* hover: the token under the pointer is the one the map has there */
  widget_point_of_token (canvas, map, n - 1, &x, &y);
  setok_canvas_hover (canvas, x, y);
  g_free (detail);
  detail
    = g_strdup_printf ("hovered %d, expected %d", setok_canvas_get_hovered_token (canvas), n - 1);
  check (setok_canvas_get_hovered_token (canvas) == n - 1, "hover finds the token", detail);
  spin (0.05);
  hovered = render_widget (GTK_WIDGET (canvas));
  changed = count_changed (canvas, hovered, with, img->width, img->height, 12, &total);
  g_free (detail);
  detail = g_strdup_printf ("%" G_GINT64_FORMAT " pixels differ from the plain overlay", changed);
  check (changed > 0, "hovered token highlighted", detail);
  cairo_surface_destroy (hovered);
  setok_canvas_hover (canvas, -1, -1);

  /* click selects, shift-click adds, alt-click removes */
  widget_point_of_token (canvas, map, 0, &x, &y);
  setok_canvas_click (canvas, x, y, 0);
  check (gtk_bitset_get_size (selection) == 1 && gtk_bitset_contains (selection, 0),
         "click selects the token", NULL);
  if (n >= 2)
    {
      double x2, y2;

      widget_point_of_token (canvas, map, 1, &x2, &y2);
      setok_canvas_click (canvas, x2, y2, GDK_SHIFT_MASK);
      check (gtk_bitset_get_size (selection) == 2, "shift-click adds a token", NULL);
      setok_canvas_click (canvas, x, y, GDK_ALT_MASK);
      check (gtk_bitset_get_size (selection) == 1 && gtk_bitset_contains (selection, 1),
             "alt-click removes a token", NULL);
    }
  spin (0.05);
  selected = render_widget (GTK_WIDGET (canvas));
  save_png (selected, out, "studio-canvas-selection.png");
  changed = count_changed (canvas, selected, with, img->width, img->height, 12, &total);
  g_free (detail);
  detail = g_strdup_printf ("%" G_GINT64_FORMAT " pixels differ from the unselected view", changed);
  check (changed > 0, "selection drawn", detail);

  cairo_surface_destroy (with);
  cairo_surface_destroy (without);
  cairo_surface_destroy (selected);
}

/* Fixed mode with FIXED_TOKENS tokens: the map is recomputed in the background. */
#define FIXED_TOKENS 6

static gboolean
has_fixed_map (gpointer data)
{
  SetokCanvas *canvas = _setok_window_get_canvas (data);
  SetokTokenMap *map = setok_document_get_token_map (setok_canvas_get_document (canvas));

  return map != NULL && map->params.mode == SETOK_CLUSTER_FIXED
         && !setok_document_get_computing (setok_canvas_get_document (canvas));
}

static void
test_controls (SetokWindow *window)
{
  SetokDocument *document = setok_canvas_get_document (_setok_window_get_canvas (window));
  SetokTokenMap *map = setok_document_get_token_map (document);
  g_autofree char *detail = g_strdup_printf ("%d tokens by %s", map->result.clusters.n_tokens,
                                             setok_cluster_mode_name (map->params.mode));
  gboolean done;

  check (map->result.clusters.n_tokens >= 1, "first token map", detail);
  phase = phases[1];
  _setok_window_set_token_controls (window, SETOK_CLUSTER_FIXED, 0.55, FIXED_TOKENS);
  check (setok_document_get_token_map (document) == map, "controls wait before recomputing", NULL);
  done = wait_for (has_fixed_map, window, WAIT_SECONDS);
  map = setok_document_get_token_map (document);
  g_free (detail);
  detail = g_strdup_printf ("%d tokens in fixed mode, wanted %d", map->result.clusters.n_tokens,
                            MIN (FIXED_TOKENS, map->result.clusters.n_patches));
  check (done
           && map->result.clusters.n_tokens == MIN (FIXED_TOKENS, map->result.clusters.n_patches),
         "recomputed on a control change", detail);
  {
    /* the new overlay drawn for the first time: its textures and numbers */
    gint64 t0 = g_get_monotonic_time ();
    cairo_surface_t *shot = render_widget (GTK_WIDGET (_setok_window_get_canvas (window)));
    double draw_ms = (g_get_monotonic_time () - t0) / 1000.0;

    cairo_surface_destroy (shot);
    printf ("overlay recompute: %.1f ms in the engine (features cached: encode %.1f ms) + %.1f ms "
            "to draw = %.1f ms (target 50 ms)\n",
            map->result.timings.total_ms, map->result.timings.encode_ms, draw_ms,
            map->result.timings.total_ms + draw_ms);
  }
  phase = phases[3];
}

static void
test_chat (SetokWindow *window, SetokEngine *engine)
{
  SetokChatView *chat = _setok_window_get_chat_view (window);
  Stream stream = { 0, FALSE, chat };
  gulong handler;
  g_autofree char *detail = NULL;
  gboolean done;

  if (!setok_engine_get_has_chat (engine))
    {
      check (FALSE, "chat model loaded", setok_engine_get_model_error (engine));
      return;
    }
  handler = g_signal_connect (chat, "notify::answer", G_CALLBACK (answer_notified), &stream);
  phase = phases[2];
  check (setok_chat_view_ask (chat, "Describe the scene."), "question sent", NULL);
  done = wait_for (chat_idle, chat, WAIT_SECONDS);
  phase = phases[3];
  detail = g_strdup_printf (
    "%u pieces streamed, answer %s“%s”", stream.pieces, stream.while_busy ? "(while busy) " : "",
    setok_chat_view_get_last_answer (chat) != NULL ? setok_chat_view_get_last_answer (chat) : "");
  check (done && stream.pieces >= 2 && stream.while_busy, "answer streamed", detail);
  printf ("first token: %.1f ms (target 150 ms)\n", setok_chat_view_get_first_token_ms (chat));
  g_signal_handler_disconnect (chat, handler);
}

/* A follow-up, stopped at once: the view comes back idle and usable. */
static void
test_chat_stop (SetokWindow *window, SetokEngine *engine)
{
  SetokChatView *chat = _setok_window_get_chat_view (window);

  if (!setok_engine_get_has_chat (engine))
    return;
  check (setok_chat_view_ask (chat, "And on the right?"), "follow-up sent", NULL);
  setok_chat_view_stop (chat);
  check (wait_for (chat_idle, chat, WAIT_SECONDS), "stopped answer ends", NULL);
}

static gboolean
has_default_map (gpointer data)
{
  SetokCanvas *canvas = _setok_window_get_canvas (data);
  SetokTokenMap *map = setok_document_get_token_map (setok_canvas_get_document (canvas));

  return map != NULL && map->params.mode != SETOK_CLUSTER_FIXED
         && !setok_document_get_computing (setok_canvas_get_document (canvas));
}

/* Back to the model's own clustering, as a new user sees it. */
static void
reset_token_controls (SetokWindow *window, SetokEngine *engine)
{
  setok_cluster_params d = setok_engine_get_default_params (engine);

  _setok_window_set_token_controls (window, d.mode, d.threshold, d.max_clusters);
  check (wait_for (has_default_map, window, WAIT_SECONDS), "tokens with the model's defaults",
         NULL);
}

/* A scene from the world generator opens as a new tab. */
static void
test_new_scene (SetokWindow *window)
{
  guint docs = _setok_window_get_n_documents (window);

  gtk_widget_activate_action (GTK_WIDGET (window), "win.new-scene", NULL);
  check (_setok_window_get_n_documents (window) == docs + 1, "new sample scene opens a tab",
         _setok_window_get_last_error (window));
}

/* An image on the clipboard opens as a new tab. */
static void
test_paste (SetokWindow *window, const char *image)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GdkTexture) texture = gdk_texture_new_from_filename (image, &error);
  guint docs = _setok_window_get_n_documents (window);
  gint64 end = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  check (texture != NULL, "sample read as a texture", error != NULL ? error->message : NULL);
  if (texture == NULL)
    return;
  gdk_clipboard_set_texture (gtk_widget_get_clipboard (GTK_WIDGET (window)), texture);
  setok_window_paste (window);
  while (_setok_window_get_n_documents (window) == docs && g_get_monotonic_time () < end)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
  check (_setok_window_get_n_documents (window) == docs + 1, "pasted image opens a tab",
         _setok_window_get_last_error (window));
}

static void
test_corrupt (SetokWindow *window, const char *corrupt)
{
  g_autoptr (GFile) file = g_file_new_for_path (corrupt);
  g_autofree char *name = g_path_get_basename (corrupt);
  guint errors = _setok_window_get_n_errors (window);
  guint docs = _setok_window_get_n_documents (window);
  const char *message;

  setok_window_open_file (window, file);
  check (wait_for (nothing_loading, window, WAIT_SECONDS), "corrupt image read", NULL);
  message = _setok_window_get_last_error (window);
  check (_setok_window_get_n_errors (window) == errors + 1 && message != NULL
           && strstr (message, name) != NULL,
         "corrupt image gives an error naming the file", message);
  check (_setok_window_get_n_documents (window) == docs, "no tab for the corrupt image", NULL);
  check (gtk_widget_get_visible (GTK_WIDGET (window)), "window still open", NULL);
}

static gboolean not_generating (gpointer data);
static gboolean is_cannot_generate (const char *message);
#define EDIT_STEPS 4

/* A missing model: the app still opens images and says why there is no model. */
static int
test_without_model (SetokWindow *window, SetokEngine *engine, const char *model, const char *image,
                    const char *corrupt, gboolean german)
{
  g_autoptr (GFile) file = g_file_new_for_path (image);
  const char *error = setok_engine_get_model_error (engine);
  const char *banner;

  check (!setok_engine_get_has_tokens (engine) && !setok_engine_get_has_chat (engine),
         "no model loaded", error);
  check (error != NULL && strstr (error, model) != NULL, "the reason names the folder", error);
  if (german)
    check (g_strcmp0 (window_subtitle (window), "Kein Modell") == 0,
           "run from the build tree, the app speaks German under LANGUAGE=de",
           window_subtitle (window));
  spin (0.3);
  banner = _setok_window_get_banner_text (window);
  check (banner != NULL && error != NULL && strstr (banner, error) != NULL, "banner shown", banner);
  setok_window_open_file (window, file);
  check (wait_for (nothing_loading, window, WAIT_SECONDS)
           && _setok_window_get_n_documents (window) == 1,
         "image opened without a model", _setok_window_get_last_error (window));
  check (_setok_window_get_n_errors (window) == 0, "no error toasts for the missing model",
         _setok_window_get_last_error (window));
  test_corrupt (window, corrupt);
  {
    SetokDiffusionRequest request = { EDIT_STEPS, 7.5, 1 };
    const char *why = setok_engine_get_unavailable_reason (engine, SETOK_CAP_GENERATE);
    const char *tooltip = _setok_window_get_generate_tooltip (window);

    _setok_window_set_generate_controls (window, "a red ball", &request);
    gtk_widget_activate_action (GTK_WIDGET (window), "win.generate", NULL);
    spin (0.2);
    check (!_setok_window_get_generating (window)
             && _setok_window_get_n_documents (window) == 1,
           "generation is off without a model", NULL);
    check (why != NULL && tooltip != NULL && strcmp (why, tooltip) == 0,
           "the generate button says why", tooltip);
  }
  {
    GtkWidget *controls = GTK_WIDGET (_setok_window_get_token_controls (window, FALSE));
    const char *why = setok_engine_get_unavailable_reason (engine, SETOK_CAP_TOKENS);
    const char *tooltip = gtk_widget_get_tooltip_text (controls);

    check (!gtk_widget_is_sensitive (controls) && why != NULL && g_strcmp0 (tooltip, why) == 0,
           "the token controls are off without a model, and say why", tooltip);
    why = setok_engine_get_unavailable_reason (engine, SETOK_CAP_SEGMENT_PHRASE);
    check (why != NULL && g_strcmp0 (_setok_window_get_find_tooltip (window), why) == 0,
           "Select by Name is off without a model, and says why",
           _setok_window_get_find_tooltip (window));
  }
  gtk_window_destroy (GTK_WINDOW (window));
  spin (0.1);
  printf ("%d failed\n", failures);
  return failures ? 1 : 0;
}

// ----------------------------------------------------------------------------
// history, saving, edits, generation, quitting

/* A copy of picture with every colour inverted: a stand-in for an edit. */
static SetokPicture *
inverted_copy (SetokPicture *picture)
{
  const setok_image *img = setok_picture_get_image (picture);
  setok_image copy = { 0 };
  setok_error err = { 0 };
  gsize n = (gsize)img->width * img->height * img->channels;

  if (setok_image_alloc (&copy, img->width, img->height, img->channels, &err) != SETOK_OK)
    return NULL;
  for (gsize i = 0; i < n; i++)
    copy.pixels[i] = 255 - img->pixels[i];
  return setok_picture_new_take (&copy);
}

static gboolean
title_marked (SetokWindow *window)
{
  SetokDocument *document = _setok_window_get_document (window);
  AdwTabPage *page = adw_tab_view_get_selected_page (_setok_window_get_tab_view (window));

  return document != NULL && strstr (adw_tab_page_get_title (page), "•") != NULL;
}

/* Undo gives back the very pixels, redo the new ones; the tokens follow. */
static void
test_history (SetokWindow *window, SetokEngine *engine)
{
  SetokDocument *document = _setok_window_get_document (window);
  g_autoptr (SetokPicture) before = setok_picture_ref (setok_document_get_picture (document));
  g_autoptr (SetokPicture) after = inverted_copy (before);
  g_autoptr (SetokPicture) copy = inverted_copy (after);

  check (!setok_document_get_modified (document) && !setok_document_get_can_undo (document),
         "an opened image is unmodified, with nothing to undo", NULL);
  setok_document_push_picture (document, after);
  check (setok_document_get_modified (document) && title_marked (window),
         "a new revision marks the document modified", NULL);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.undo", NULL);
  check (same_pixels (setok_document_get_picture (document), before)
           && !setok_document_get_modified (document),
         "undo restores the original pixels exactly", NULL);
  check (setok_document_get_token_map (document) == NULL
           && (setok_document_get_computing (document) || !setok_engine_get_has_tokens (engine)),
         "undo drops the old tokens and recomputes them", NULL);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.redo", NULL);
  check (same_pixels (setok_document_get_picture (document), copy) == FALSE
           && same_pixels (setok_document_get_picture (document), after),
         "redo reapplies the revision", NULL);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.undo", NULL);
  check (wait_for (has_token_map, window, WAIT_SECONDS), "tokens recomputed after undo", NULL);
}

typedef struct
{
  GAsyncResult *result;
} Waiter;

static void
got_result (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Waiter *w = user_data;

  w->result = g_object_ref (result);
}

static gboolean
has_result (gpointer data)
{
  return ((Waiter *)data)->result != NULL;
}

/* Saves document to out/name the way Save does, and reads it back. */
static void
test_save_as (SetokDocument *document, const char *out, const char *name, gboolean exact)
{
  g_autofree char *path = g_build_filename (out, name, NULL);
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autoptr (GError) error = NULL;
  Waiter w = { NULL };
  setok_image back = { 0 };
  setok_error err = { 0 };
  const setok_image *img = setok_picture_get_image (setok_document_get_picture (document));
  gboolean saved;

  setok_document_save_async (document, file, NULL, got_result, &w);
  wait_for (has_result, &w, WAIT_SECONDS);
  saved = w.result != NULL && setok_document_save_finish (document, w.result, &error);
  g_clear_object (&w.result);
  check (saved && !setok_document_get_modified (document)
           && g_str_equal (setok_document_get_title (document), name),
         "saved: unmodified, named after the file", error != NULL ? error->message : path);
  if (!saved)
    return;
  if (setok_image_load (&back, path, 0, &err) != SETOK_OK)
    {
      check (FALSE, "saved file reads back", err.message);
      return;
    }
  check (
    back.width == img->width && back.height == img->height
      && (!exact
          || (back.channels == img->channels
              && memcmp (back.pixels, img->pixels, (gsize)img->width * img->height * img->channels)
                   == 0)),
    exact ? "PNG holds the exact pixels" : "JPEG reads back at the same size", path);
  setok_image_free (&back);
}

typedef struct
{
  guint progress;
  guint previews;
  SetokCanvas *canvas;
  const char *out;
} EditWatch;

static void
edit_progress_notified (GObject *object, GParamSpec *pspec, EditWatch *watch)
{
  watch->progress++;
}

/* The first live preview on the canvas, saved as it is drawn. */
static void
display_notified (GObject *object, GParamSpec *pspec, EditWatch *watch)
{
  SetokDocument *document = SETOK_DOCUMENT (object);

  if (setok_document_get_edit_state (document) != SETOK_EDIT_RUNNING
      || setok_document_get_display_picture (document) == setok_document_get_picture (document))
    return;
  if (watch->previews++ == 0)
    {
      gint64 t0 = g_get_monotonic_time ();
      cairo_surface_t *shot = draw_widget_now (GTK_WIDGET (watch->canvas));
      save_png (shot, watch->out, "studio-edit-preview.png");
      cairo_surface_destroy (shot);
      test_overhead_us += g_get_monotonic_time () - t0;
    }
}

static gboolean
is_cannot_generate (const char *message)
{
  return message != NULL && strstr (message, "cannot generate") != NULL;
}

/* Click a token, instruct, review before/after, apply, undo, redo. FALSE:
 * the model cannot generate (skipped). */
/* Canvas pixels that differ between a and b away from the mask's region (more than two
 * image pixels from it, past the region's outline). */
static gint64
changed_outside (SetokCanvas *canvas, cairo_surface_t *a, cairo_surface_t *b, SetokPicture *mask)
{
  const setok_image *m = setok_picture_get_image (mask);
  int w = cairo_image_surface_get_width (a), h = cairo_image_surface_get_height (a);
  gint64 changed = 0;

  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        double zoom = setok_canvas_get_zoom (canvas), ox, oy;
        gboolean near = FALSE;
        int ix, iy;

        setok_canvas_image_to_widget (canvas, 0, 0, &ox, &oy);
        ix = (int)floor ((x + 0.5 - ox) / zoom);
        iy = (int)floor ((y + 0.5 - oy) / zoom);
        for (int dy = -2; dy <= 2 && !near; dy++)
          for (int dx = -2; dx <= 2 && !near; dx++)
            {
              int xx = ix + dx, yy = iy + dy;
              near = xx >= 0 && yy >= 0 && xx < m->width && yy < m->height
                     && m->pixels[(gsize)yy * m->width + xx] != 0;
            }
        changed += !near && channel_diff (pixel_at (a, x, y), pixel_at (b, x, y)) > 0;
      }
  return changed;
}

/* Try Again: the same region and instruction with the next seed, which the edit bar
 * shows; the result is new. */
static void
test_try_again (SetokWindow *window, SetokDocument *document, SetokPicture *first)
{
  guint64 seed = setok_document_get_edit_seed (document);
  g_autofree char *want = g_strdup_printf ("%" G_GUINT64_FORMAT, seed + 1);
  const char *review;

  phase = phases[4];
  gtk_widget_activate_action (GTK_WIDGET (window), "win.try-again", NULL);
  check (setok_document_get_edit_state (document) == SETOK_EDIT_RUNNING,
         "Try Again repaints the region", NULL);
  wait_for (edit_settled, document, WAIT_SECONDS);
  phase = phases[3];
  review = _setok_window_get_review_text (window);
  check (setok_document_get_edit_state (document) == SETOK_EDIT_REVIEW
           && setok_document_get_edit_seed (document) == seed + 1
           && _setok_window_get_edit_seed (window) == seed + 1 && review != NULL
           && strstr (review, want) != NULL,
         "Try Again uses the next seed and shows it", review);
  check (setok_document_get_edit_result (document) != NULL
           && !same_pixels (setok_document_get_edit_result (document), first),
         "Try Again gives another result", NULL);
}

static gboolean
test_edit (SetokWindow *window, const char *out)
{
  SetokCanvas *canvas = _setok_window_get_canvas (window);
  SetokDocument *document = setok_canvas_get_document (canvas);
  SetokTokenMap *map = setok_document_get_token_map (document);
  g_autoptr (SetokPicture) before = setok_picture_ref (setok_document_get_picture (document));
  g_autoptr (SetokPicture) mask = NULL;
  g_autoptr (SetokPicture) result = NULL;
  const setok_image *src = setok_picture_get_image (before);
  SetokDiffusionRequest request = { EDIT_STEPS, 7.5, 3 };
  EditWatch watch = { 0, 0, canvas, out };
  gulong h1, h2;
  gint64 inside = 0, outside = 0;
  g_autofree char *detail = NULL;
  guint errors = _setok_window_get_n_errors (window);
  cairo_surface_t *after_shot, *before_shot;
  double x, y;
  int target = 0;

  /* the largest token: the clearest region to edit */
  for (int t = 1; t < map->result.clusters.n_tokens; t++)
    if (map->result.regions[t].area > map->result.regions[target].area)
      target = t;
  setok_document_clear_selection (document);
  _setok_window_set_edit_controls (window, "make it bright blue", &request);
  check (g_strcmp0 (_setok_window_get_edit_hint (window), "Click a token, then describe the change")
           == 0,
         "the edit bar says how editing starts", _setok_window_get_edit_hint (window));
  gtk_widget_activate_action (GTK_WIDGET (window), "win.edit", NULL);
  check (setok_document_get_edit_state (document) == SETOK_EDIT_IDLE, "no edit without a selection",
         NULL);
  widget_point_of_token (canvas, map, target, &x, &y);
  setok_canvas_click (canvas, x, y, 0);
  check (_setok_window_get_edit_hint (window) == NULL, "with a token selected, the instruction",
         NULL);
  mask = setok_document_get_selection_mask (document);
  check (mask != NULL && gtk_bitset_contains (setok_document_get_selection (document), target),
         "clicked token selected for the edit", NULL);
  if (mask == NULL)
    return TRUE;
  {
    /* what Export Selection Mask writes */
    g_autofree char *path = g_build_filename (out, "studio-selection-mask.png", NULL);
    g_autoptr (GError) error = NULL;
    setok_image back = { 0 };
    setok_error err = { 0 };
    const setok_image *m = setok_picture_get_image (mask);

    check (setok_picture_save (mask, path, &error)
             && setok_image_load (&back, path, 0, &err) == SETOK_OK && back.width == m->width
             && back.height == m->height,
           "selection mask exported as PNG", error != NULL ? error->message : path);
    setok_image_free (&back);
  }

  h1 = g_signal_connect (document, "notify::edit-progress", G_CALLBACK (edit_progress_notified),
                         &watch);
  h2
    = g_signal_connect (document, "notify::display-picture", G_CALLBACK (display_notified), &watch);
  phase = phases[4];
  gtk_widget_activate_action (GTK_WIDGET (window), "win.edit", NULL);
  check (setok_document_get_edit_state (document) == SETOK_EDIT_RUNNING, "edit started", NULL);
  wait_for (edit_settled, document, WAIT_SECONDS);
  phase = phases[3];
  g_signal_handler_disconnect (document, h1);
  g_signal_handler_disconnect (document, h2);
  if (setok_document_get_edit_state (document) != SETOK_EDIT_REVIEW)
    {
      const char *message = _setok_window_get_last_error (window);

      if (_setok_window_get_n_errors (window) > errors && is_cannot_generate (message))
        {
          printf ("skip edit: %s\n", message);
          check (TRUE, "a model without generation says so", message);
          return FALSE;
        }
      check (FALSE, "edit finished", message);
      return TRUE;
    }
  detail = g_strdup_printf ("%u progress notes, %u previews", watch.progress, watch.previews);
  check (watch.progress >= 1 && watch.previews >= 1, "edit progress and live previews", detail);

  result = setok_picture_ref (setok_document_get_edit_result (document));
  {
    const setok_image *dst = setok_picture_get_image (result);

    check (dst->width == src->width && dst->height == src->height && dst->channels == src->channels,
           "edit keeps the image size", NULL);
  }
  g_free (detail);
  detail = region_changes (before, result, mask, &inside, &outside);
  check (inside > 0, "edit changes pixels inside the region", detail);
  check (outside == 0, "edit keeps every pixel outside the region", detail);

  /* before/after */
  spin (0.1);
  after_shot = render_widget (GTK_WIDGET (canvas));
  save_png (after_shot, out, "studio-edit-after.png");
  setok_document_set_show_original (document, TRUE);
  check (setok_document_get_display_picture (document) == before, "show original", NULL);
  spin (0.1);
  before_shot = render_widget (GTK_WIDGET (canvas));
  save_png (before_shot, out, "studio-edit-before.png");
  {
    gint64 total = 0;
    gint64 changed
      = count_changed (canvas, after_shot, before_shot, src->width, src->height, 0, &total);
    g_free (detail);
    detail = g_strdup_printf ("%" G_GINT64_FORMAT " canvas pixels differ", changed);
    check (changed > 0, "before and after look different", detail);
    changed = changed_outside (canvas, after_shot, before_shot, mask);
    g_free (detail);
    detail = g_strdup_printf ("%" G_GINT64_FORMAT " canvas pixels outside the region differ",
                              changed);
    check (changed == 0, "Show Original compares like with like (no overlay on either)", detail);
  }
  cairo_surface_destroy (after_shot);
  cairo_surface_destroy (before_shot);
  setok_document_set_show_original (document, FALSE);
  {
    g_autofree char *review = g_build_filename (out, "studio-edit-review.png", NULL);
    save_window (window, review);
  }
  test_try_again (window, document, result);
  if (setok_document_get_edit_result (document) != NULL)
    {
      setok_picture_unref (result);
      result = setok_picture_ref (setok_document_get_edit_result (document));
    }

  gtk_widget_activate_action (GTK_WIDGET (window), "win.apply-edit", NULL);
  check (setok_document_get_edit_state (document) == SETOK_EDIT_IDLE
           && setok_document_get_picture (document) == result
           && setok_document_get_modified (document) && title_marked (window),
         "apply makes a modified revision", NULL);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.undo", NULL);
  check (same_pixels (setok_document_get_picture (document), before),
         "undo after the edit restores the original pixels exactly", NULL);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.redo", NULL);
  check (same_pixels (setok_document_get_picture (document), result), "redo reapplies the edit",
         NULL);
  check (wait_for (has_token_map, window, WAIT_SECONDS), "tokens recomputed after redo", NULL);
  return TRUE;
}

static gboolean
not_generating (gpointer data)
{
  return !_setok_window_get_generating (data);
}

/* Generate Image…: a new, modified, untitled document. FALSE: skipped. */
static gboolean
test_generate (SetokWindow *window, const char *out)
{
  SetokDiffusionRequest request = { EDIT_STEPS, 7.5, 1 };
  guint docs = _setok_window_get_n_documents (window);
  guint errors = _setok_window_get_n_errors (window);
  SetokDocument *document;
  const setok_image *img;
  g_autofree char *detail = NULL;
  g_autofree char *shot = NULL;

  _setok_window_set_generate_controls (window, "a red ball on green grass", &request);
  phase = phases[5];
  gtk_widget_activate_action (GTK_WIDGET (window), "win.generate", NULL);
  check (_setok_window_get_generating (window), "generation started", NULL);
  wait_for (not_generating, window, WAIT_SECONDS);
  phase = phases[3];
  if (_setok_window_get_n_documents (window) == docs)
    {
      const char *message = _setok_window_get_last_error (window);

      if (_setok_window_get_n_errors (window) > errors && is_cannot_generate (message))
        {
          printf ("skip generation: %s\n", message);
          check (TRUE, "generation without components says so", message);
          return FALSE;
        }
      check (FALSE, "generation made a document", message);
      return TRUE;
    }
  document = _setok_window_get_document (window);
  img = setok_picture_get_image (setok_document_get_picture (document));
  detail = g_strdup_printf ("“%s”, %d × %d", setok_document_get_title (document), img->width,
                            img->height);
  check (img->width > 0 && img->height > 0 && setok_document_get_file (document) == NULL
           && setok_document_get_modified (document) && title_marked (window),
         "generated image opens as a new, untitled, modified document", detail);
  shot = g_build_filename (out, "studio-generated.png", NULL);
  save_window (window, shot);
  return TRUE;
}

/* A phrase through the model's mask decoder: a mask of the picture's size. */
static void
test_segment (SetokEngine *engine, SetokDocument *document)
{
  const char *why = setok_engine_get_unavailable_reason (engine, SETOK_CAP_SEGMENT_PHRASE);
  SetokPicture *picture = setok_document_get_picture (document);
  const setok_image *img = setok_picture_get_image (picture);
  Waiter w = { NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (SetokPicture) mask = NULL;
  g_autofree char *detail = NULL;
  gsize on = 0;

  if (why != NULL)
    {
      printf ("skip segmentation by phrase: %s\n", why);
      return;
    }
  setok_engine_segment_async (engine, picture, "the star", NULL, 0, NULL, got_result, &w);
  wait_for (has_result, &w, WAIT_SECONDS);
  if (w.result == NULL)
    {
      check (FALSE, "segmentation by phrase answers", NULL);
      return;
    }
  mask = setok_engine_segment_finish (engine, w.result, &error);
  g_object_unref (w.result);
  if (mask != NULL)
    {
      const setok_image *m = setok_picture_get_image (mask);
      for (gsize i = 0; i < (gsize)m->width * m->height; i++)
        on += m->pixels[i] > 127;
      detail = g_strdup_printf ("%d × %d, %zu pixels on", m->width, m->height, on);
      check (m->width == img->width && m->height == img->height && m->channels == 1,
             "segmentation by phrase gives a mask of the picture's size", detail);
    }
  else
    check (FALSE, "segmentation by phrase", error->message);
}

/* After tokens, answers, an edit, a generation and a segmentation: each component of the
 * model was loaded once, by the one model every pipeline shares. */
static void
test_loaded_once (SetokEngine *engine)
{
  GString *loads = g_string_new (NULL);
  gboolean once = TRUE, vision = FALSE;
  g_autofree char *status = NULL;
  char *line;

  for (int c = 0; c < SETOK_COMPONENT_COUNT; c++)
    {
      int n = setok_engine_get_component_loads (engine, c);
      if (n == 0)
        continue;
      g_string_append_printf (loads, "%s%s %d", loads->len ? ", " : "", setok_component_name (c),
                              n);
      once &= n == 1;
      vision |= c == SETOK_COMPONENT_VISION;
    }
  check (once && vision, "every component loaded exactly once", loads->str);
  g_string_free (loads, TRUE);
  if (g_file_get_contents ("/proc/self/status", &status, NULL, NULL)
      && (line = strstr (status, "VmHWM:")) != NULL)
    printf ("peak resident memory (%.*s)\n", (int)strcspn (line, "\n"), line);
}

static gboolean
window_gone (gpointer data)
{
  GtkApplication *app = data;

  return gtk_application_get_windows (app) == NULL;
}

/* Closing a modified tab, then quitting, asks first; Cancel keeps the tab,
 * Discard quits. */
static void
test_quit (SetokWindow *window, GtkApplication *app, const char *out)
{
  SetokDocument *document = _setok_window_get_document (window);
  guint docs = _setok_window_get_n_documents (window);
  AdwMessageDialog *dialog;

  if (!setok_document_get_modified (document))
    {
      g_autoptr (SetokPicture) edited = inverted_copy (setok_document_get_picture (document));
      setok_document_push_picture (document, edited);
    }
  gtk_widget_activate_action (GTK_WIDGET (window), "win.close-document", NULL);
  spin (0.2);
  dialog = _setok_window_get_close_dialog (window);
  check (dialog != NULL && gtk_widget_get_visible (GTK_WIDGET (dialog)),
         "closing a modified image asks first", NULL);
  if (dialog != NULL)
    adw_message_dialog_response (dialog, "cancel");
  spin (0.2);
  check (_setok_window_get_n_documents (window) == docs
           && _setok_window_get_close_dialog (window) == NULL,
         "Cancel keeps the image", NULL);

  {
    /* Ctrl+Q with the Generate popover open, where keys go to the popover */
    GtkPopover *popover = _setok_window_get_generate_popover (window);
    GtkShortcut *quit = popover_shortcut (popover, "<Control>q");

    gtk_popover_popup (popover);
    spin (0.2);
    check (quit != NULL
             && gtk_shortcut_action_activate (gtk_shortcut_get_action (quit),
                                              GTK_SHORTCUT_ACTION_EXCLUSIVE, GTK_WIDGET (popover),
                                              NULL),
           "Ctrl+Q works with the Generate popover open", NULL);
  }
  spin (0.3);
  dialog = _setok_window_get_close_dialog (window);
  check (dialog != NULL && gtk_widget_get_visible (GTK_WIDGET (dialog))
           && gtk_widget_get_visible (GTK_WIDGET (window)),
         "quitting with unsaved edits asks first", NULL);
  if (dialog == NULL)
    return;
  {
    cairo_surface_t *shot = render_widget (GTK_WIDGET (dialog));
    save_png (shot, out, "studio-quit-dialog.png");
    cairo_surface_destroy (shot);
  }
  adw_message_dialog_response (dialog, "discard");
  check (wait_for (window_gone, app, 10), "Discard quits", NULL);
}

static void
queue_changed (GObject *engine, GParamSpec *pspec, guint *notes)
{
  (*notes)++;
}

int
main (int argc, char *argv[])
{
  g_autofree char *model = NULL, *image = NULL, *corrupt = NULL, *out = NULL;
  g_autofree char *screenshots = NULL, *sam = NULL, *sd = NULL;
  gboolean no_model = FALSE, german = FALSE;
  GOptionEntry entries[] = {
    { "model", 0, 0, G_OPTION_ARG_FILENAME, &model, "model folder", "DIR" },
    { "image", 0, 0, G_OPTION_ARG_FILENAME, &image, "image to open", "FILE" },
    { "corrupt", 0, 0, G_OPTION_ARG_FILENAME, &corrupt, "a corrupt image", "FILE" },
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "where snapshots go", "DIR" },
    { "screenshots", 0, 0, G_OPTION_ARG_FILENAME, &screenshots, "360/1200 px window PNGs",
      "DIR" },
    { "sam", 0, 0, G_OPTION_ARG_FILENAME, &sam, "a SAM folder for the segmentation role", "DIR" },
    { "edit-model", 0, 0, G_OPTION_ARG_FILENAME, &sd, "a folder for the editing role", "DIR" },
    { "no-model", 0, 0, G_OPTION_ARG_NONE, &no_model, "the model folder is missing", NULL },
    { "german", 0, 0, G_OPTION_ARG_NONE, &german, "LANGUAGE=de: expect German", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- SeTok Studio GUI test");
  g_autoptr (GError) error = NULL;
  g_autoptr (SetokApplication) app = NULL;
  g_autoptr (GFile) file = NULL;
  SetokEngine *engine;
  SetokWindow *window;
  guint queue_notes = 0;

  setvbuf (stdout, NULL, _IOLBF, 0);
  /* as main.c does: the translations of the build tree */
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, setok_application_locale_dir ());
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || model == NULL || image == NULL
      || corrupt == NULL || out == NULL)
    {
      fprintf (stderr, "test-studio: %s\n",
               error != NULL ? error->message : "--model, --image, --corrupt and --out are needed");
      return 2;
    }
  g_mkdir_with_parents (out, 0755);

  app = setok_application_new ();
  g_application_set_flags (G_APPLICATION (app),
                           G_APPLICATION_NON_UNIQUE | G_APPLICATION_HANDLES_OPEN);
  setok_application_set_model_override (app, model);
  if (!g_application_register (G_APPLICATION (app), NULL, &error))
    {
      fprintf (stderr, "test-studio: cannot register: %s\n", error->message);
      return 1;
    }
  /* the window's buttons as GNOME places them, not X11's fallback (minimize, maximize, close) */
  g_object_set (gtk_settings_get_default (), "gtk-decoration-layout", "appmenu:close", NULL);
  /* short answers keep the test quick; the screenshots show a whole one */
  if (screenshots == NULL)
    g_settings_set_int (setok_application_get_settings (app), "max-new-tokens", 24);
  g_application_activate (G_APPLICATION (app));
  engine = setok_application_get_engine (app);
  g_signal_connect (engine, "notify::queue-length", G_CALLBACK (queue_changed), &queue_notes);
  window = SETOK_WINDOW (gtk_application_get_active_window (GTK_APPLICATION (app)));
  check (window != NULL, "window", NULL);
  if (window == NULL)
    return 1;
  gtk_window_set_default_size (GTK_WINDOW (window), 1100, 720);

  check (wait_for (model_settled, engine, WAIT_SECONDS), "model loaded in time", NULL);
  phase = phases[3];
  if (no_model)
    return test_without_model (window, engine, model, image, corrupt, german);
  check (setok_engine_get_has_tokens (engine), "token model",
         setok_engine_get_model_error (engine) != NULL ? setok_engine_get_model_error (engine)
                                                       : setok_engine_get_device_name (engine));

  file = g_file_new_for_path (image);
  setok_window_open_file (window, file);
  check (wait_for (nothing_loading, window, WAIT_SECONDS)
           && _setok_window_get_n_documents (window) == 1,
         "image opened", _setok_window_get_last_error (window));
  if (sam != NULL && sd != NULL)
    {
      check (wait_for (canvas_allocated, window, 30), "canvas shown", NULL);
      test_roles (window, engine, sam, sd);
      gtk_window_destroy (GTK_WINDOW (window));
      spin (0.1);
      printf ("%d failed\n", failures);
      return failures ? 1 : 0;
    }
  if (_setok_window_get_n_documents (window) == 1 && setok_engine_get_has_tokens (engine))
    {
      check (wait_for (canvas_allocated, window, 30), "canvas shown", NULL);
      if (wait_for (has_token_map, window, WAIT_SECONDS))
        {
          test_controls (window);
          spin (0.2);
          test_overlay (window, out);
        }
      else
        check (FALSE, "token map in time", _setok_window_get_last_error (window));
      test_chat (window, engine);
      if (setok_document_get_token_map (_setok_window_get_document (window)) != NULL)
        {
          reset_token_controls (window, engine);
          test_layouts (window, out, screenshots);
          gtk_window_set_default_size (GTK_WINDOW (window), 1100, 720);
          spin (0.5);
        }
      test_chat_stop (window, engine);
    }
  {
    g_autofree char *detail = g_strdup_printf ("%u changes, %u jobs left", queue_notes,
                                               setok_engine_get_queue_length (engine));
    check (queue_notes >= 4 && setok_engine_get_queue_length (engine) == 0,
           "engine queue observed and drained", detail);
  }
  test_dialogs (window);
  if (_setok_window_get_document (window) != NULL
      && setok_document_get_token_map (_setok_window_get_document (window)) != NULL)
    test_guidance (window, engine, image, out);
  test_new_scene (window);
  test_paste (window, image);
  test_corrupt (window, corrupt);

  if (_setok_window_get_n_documents (window) >= 1)
    {
      AdwTabView *view = _setok_window_get_tab_view (window);
      SetokDocument *first;

      adw_tab_view_set_selected_page (view, adw_tab_view_get_nth_page (view, 0));
      first = _setok_window_get_document (window);
      test_history (window, engine);
      if (setok_engine_get_has_tokens (engine) && setok_document_get_token_map (first) != NULL)
        test_edit (window, out);
      else
        printf ("skip edit: no token map to select from\n");
      /* copies in the out folder: the sample itself is never written */
      test_save_as (first, out, "studio-saved.png", TRUE);
      test_save_as (first, out, "studio-saved.jpg", FALSE);
      test_generate (window, out);
      test_segment (engine, first);
      test_loaded_once (engine);
      test_quit (window, GTK_APPLICATION (app), out);
    }
  if (gtk_application_get_windows (GTK_APPLICATION (app)) != NULL)
    gtk_window_destroy (GTK_WINDOW (window));
  spin (0.1);
  for (int i = 0; i < N_PHASES; i++)
    printf ("main loop: longest iteration during %s: %.1f ms\n", phases[i], longest_us[i] / 1000.0);
  printf ("%d failed\n", failures);
  return failures ? 1 : 0;
}
