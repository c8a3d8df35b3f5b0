/* studio-guidance.c — what a person meets in SeTok Studio besides the
 * pixels: example questions, copying and clearing answers (with undo),
 * conversations kept per picture, the banner for pictures unlike what the
 * model learned from, About This Model, the title, the plain-words subtitle,
 * the token controls' labels and steps, tabs in the order they were asked
 * for, shortcuts inside popovers, tokens of a whole non-square picture,
 * and colours that stay with their tokens. */
#include "studio-test.h"

#include <glib/gi18n.h>
#include <stdio.h>
#include <string.h>

#include "setok-conversation-store.h"

static gboolean
document_count_is (gpointer data)
{
  gpointer *d = data;

  return _setok_window_get_n_documents (d[0]) == GPOINTER_TO_UINT (d[1])
         && _setok_window_get_n_loading (d[0]) == 0;
}

static void
wait_documents (SetokWindow *window, guint n)
{
  gpointer d[2] = { window, GUINT_TO_POINTER (n) };

  wait_for (document_count_is, d, WAIT_SECONDS);
}

static void
select_page (SetokWindow *window, int i)
{
  AdwTabView *view = _setok_window_get_tab_view (window);

  adw_tab_view_set_selected_page (view, adw_tab_view_get_nth_page (view, i));
  spin (0.05);
}

/* A picture written to path: width x height pixels of smooth colour and noise, like a
 * photograph, or (photo FALSE) a sample scene's pixels repeated side by side. */
static gboolean
write_picture (const char *path, const setok_image *scene, int width, int height, gboolean photo)
{
  setok_image img = { 0 };
  setok_error err = { 0 };
  g_autoptr (SetokPicture) picture = NULL;
  g_autoptr (GError) error = NULL;
  GRand *rand = g_rand_new_with_seed (7);

  if (setok_image_alloc (&img, width, height, 3, &err) != SETOK_OK)
    return FALSE;
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      {
        guint8 *px = img.pixels + ((gsize)y * width + x) * 3;

        for (int c = 0; c < 3; c++)
          if (photo)
            px[c] = (guint8)CLAMP (128 + 90 * sin (0.03 * x * (c + 1) + 0.05 * y)
                                     + g_rand_int_range (rand, -30, 30),
                                   0, 255);
          else
            px[c] = scene->pixels[((gsize)(y % scene->height) * scene->width
                                   + (gsize)(x % scene->width))
                                    * scene->channels
                                  + c];
      }
  g_rand_free (rand);
  picture = setok_picture_new_take (&img);
  return setok_picture_save (picture, path, &error);
}

// ----------------------------------------------------------------------------

/* What the header says: the picture's name in the window's title, the device in plain
 * words. */
static void
test_titles (SetokWindow *window, SetokEngine *engine)
{
  SetokDocument *document = _setok_window_get_document (window);
  const char *title = gtk_window_get_title (GTK_WINDOW (window));
  const SetokModelCard *card = setok_engine_get_card (engine);

  check (title != NULL && strstr (title, setok_document_get_title (document)) != NULL,
         "the window's title names the picture", title);
  if (card != NULL)
    {
      const char *subtitle = window_subtitle (window);
      check (subtitle != NULL && strstr (subtitle, card->on_gpu ? "GPU" : "Running on the CPU")
               && strstr (subtitle, "BLAS") == NULL && strstr (subtitle, "thread") == NULL,
             "the subtitle says where the model runs in plain words", subtitle);
    }
}

/* The token controls: a count that is a cap says so, and a threshold step changes
 * something. */
static void
test_token_controls (SetokWindow *window)
{
  SetokTokenControls *controls = _setok_window_get_token_controls (window, FALSE);
  setok_cluster_mode mode = setok_token_controls_get_mode (controls);
  const char *label;
  g_autoptr (GtkAdjustment) threshold = NULL;

  setok_token_controls_set_mode (controls, SETOK_CLUSTER_DPC);
  label = setok_token_controls_get_count_label (controls);
  check (g_strcmp0 (label, "At most") == 0, "density peaks: the count is “At most”", label);
  setok_token_controls_set_mode (controls, SETOK_CLUSTER_FIXED);
  label = setok_token_controls_get_count_label (controls);
  check (g_strcmp0 (label, "Tokens") == 0, "fixed count: the count is “Tokens”", label);
  check (setok_token_controls_get_mode (_setok_window_get_token_controls (window, TRUE))
           == SETOK_CLUSTER_FIXED,
         "the row and the popover show the same mode", NULL);
  setok_token_controls_set_mode (controls, mode);
  g_object_get (controls, "threshold-adjustment", &threshold, NULL);
  {
    g_autofree char *detail = g_strdup_printf (
      "step %.2f over %.0f..%.0f", gtk_adjustment_get_step_increment (threshold),
      gtk_adjustment_get_lower (threshold), gtk_adjustment_get_upper (threshold));
    check (gtk_adjustment_get_step_increment (threshold) >= 0.1,
           "the threshold steps by at least 0.1", detail);
  }
}

/* Zoom controls show while the pointer moves over the picture, and go when it leaves. */
static void
test_zoom_controls (SetokWindow *window)
{
  _setok_window_pointer_motion (window, TRUE);
  check (_setok_window_get_zoom_controls_shown (window), "zoom controls show on motion", NULL);
  _setok_window_pointer_motion (window, FALSE);
  check (!_setok_window_get_zoom_controls_shown (window),
         "zoom controls go when the pointer leaves", NULL);
}

/* The hovered token is described at the pointer, its score explained, and nothing stays
 * once the pointer leaves. */
static void
test_hover_text (SetokWindow *window)
{
  SetokCanvas *canvas = _setok_window_get_canvas (window);
  SetokTokenMap *map = setok_document_get_token_map (setok_canvas_get_document (canvas));
  g_autofree char *text = NULL;
  double x, y;

  widget_point_of_token (canvas, map, 0, &x, &y);
  setok_canvas_hover (canvas, x, y);
  text = setok_canvas_describe_token (canvas, setok_canvas_get_hovered_token (canvas));
  check (text != NULL && strstr (text, "Token 0") != NULL && strstr (text, "stands out") != NULL,
         "the tooltip names the token and explains its score", text);
  setok_canvas_hover (canvas, -1, -1);
  check (setok_canvas_get_hovered_token (canvas) == -1, "hover cleared when the pointer leaves",
         NULL);
}

static void
test_popover_shortcuts (SetokWindow *window)
{
  GtkShortcut *quit = popover_shortcut (_setok_window_get_generate_popover (window), "<Control>q");
  const char *name = NULL;

  if (quit != NULL && GTK_IS_NAMED_ACTION (gtk_shortcut_get_action (quit)))
    name = gtk_named_action_get_action_name (GTK_NAMED_ACTION (gtk_shortcut_get_action (quit)));
  check (g_strcmp0 (name, "app.quit") == 0, "Ctrl+Q quits from inside the Generate popover", name);
}

/* Files asked for together open in the order asked, whatever each takes to load. */
static void
test_tab_order (SetokWindow *window, const setok_image *scene, const char *out)
{
  g_autofree char *big = g_build_filename (out, "order-1-big.png", NULL);
  g_autofree char *small = g_build_filename (out, "order-2-small.png", NULL);
  g_autofree char *smaller = g_build_filename (out, "order-3-smaller.png", NULL);
  const char *paths[] = { big, small, smaller };
  guint docs = _setok_window_get_n_documents (window);
  AdwTabView *view = _setok_window_get_tab_view (window);
  gboolean in_order = TRUE;
  GString *titles = g_string_new (NULL);

  if (!write_picture (big, scene, 1600, 1600, FALSE) || !write_picture (small, scene, 96, 96, FALSE)
      || !write_picture (smaller, scene, 64, 64, FALSE))
    {
      check (FALSE, "pictures for the tab order written", NULL);
      return;
    }
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      g_autoptr (GFile) file = g_file_new_for_path (paths[i]);
      setok_window_open_file (window, file);
    }
  wait_documents (window, docs + 3);
  for (guint i = 0; i < 3 && docs + i < (guint)adw_tab_view_get_n_pages (view); i++)
    {
      AdwTabPage *page = adw_tab_view_get_nth_page (view, (int)(docs + i));
      const char *title = adw_tab_page_get_title (page);
      g_autofree char *name = g_path_get_basename (paths[i]);

      g_string_append_printf (titles, "%s%s", i ? ", " : "", title);
      in_order &= strstr (title, name) != NULL;
    }
  check (_setok_window_get_n_documents (window) == docs + 3 && in_order,
         "tabs open in the order the files were given", titles->str);
  g_string_free (titles, TRUE);
  for (guint i = 0; i < 3 && _setok_window_get_n_documents (window) > docs; i++)
    {
      select_page (window, (int)docs);
      gtk_widget_activate_action (GTK_WIDGET (window), "win.close-document", NULL);
      spin (0.1);
    }
}

/* A picture that is not square: its tokens cover all of it (padded, not cropped). */
static void
test_whole_picture (SetokWindow *window, const setok_image *scene, const char *out)
{
  g_autofree char *path = g_build_filename (out, "wide-scene.png", NULL);
  g_autoptr (GFile) file = g_file_new_for_path (path);
  guint docs = _setok_window_get_n_documents (window);
  SetokTokenMap *map;
  gint64 covered = 0;
  g_autofree char *detail = NULL;

  if (!write_picture (path, scene, 2 * scene->width, scene->height, FALSE))
    return;
  setok_window_open_file (window, file);
  wait_documents (window, docs + 1);
  if (!wait_for (has_token_map, window, WAIT_SECONDS))
    {
      check (FALSE, "tokens of a wide picture", _setok_window_get_last_error (window));
      return;
    }
  map = setok_document_get_token_map (_setok_window_get_document (window));
  for (int t = 0; t < map->result.clusters.n_tokens; t++)
    covered += map->result.regions[t].area;
  detail = g_strdup_printf ("%" G_GINT64_FORMAT " of %d × %d pixels in tokens", covered,
                            map->result.width, map->result.height);
  check (covered == (gint64)map->result.width * map->result.height,
         "a wide picture is tokenized whole", detail);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.close-document", NULL);
  spin (0.1);
}

/* A token keeps its colour when the map is recomputed with other settings: the largest
 * token's colour goes to the new token that overlaps it most. */
static void
test_stable_colours (SetokWindow *window, SetokEngine *engine)
{
  SetokDocument *document = _setok_window_get_document (window);
  SetokTokenMap *before = setok_token_map_ref (setok_document_get_token_map (document));
  g_autofree int *colours = NULL;
  setok_cluster_params d = setok_engine_get_default_params (engine);
  const setok_tokens_result *a = &before->result;
  SetokTokenMap *after;
  int largest = 0, follower = -1, n_a = a->clusters.n_tokens;
  g_autofree gint64 *overlap = NULL;
  g_autofree char *detail = NULL;

  colours = g_memdup2 (setok_document_get_token_colours (document), sizeof (int) * MAX (n_a, 1));
  for (int t = 1; t < n_a; t++)
    if (a->regions[t].area > a->regions[largest].area)
      largest = t;
  _setok_window_set_token_controls (window, SETOK_CLUSTER_FIXED, d.threshold, MAX (2, n_a - 1));
  spin (0.05);
  if (!wait_for (has_token_map, window, WAIT_SECONDS)
      || setok_document_get_token_map (document) == before)
    {
      spin (0.5);
      wait_for (has_token_map, window, WAIT_SECONDS);
    }
  after = setok_document_get_token_map (document);
  overlap = g_new0 (gint64, MAX (after->result.clusters.n_tokens, 1));
  for (gsize p = 0; p < (gsize)a->width * a->height; p++)
    if (a->pixel_labels[p] == largest && after->result.pixel_labels[p] >= 0)
      overlap[after->result.pixel_labels[p]]++;
  for (int t = 0; t < after->result.clusters.n_tokens; t++)
    if (follower < 0 || overlap[t] > overlap[follower])
      follower = t;
  detail = g_strdup_printf ("token %d (colour %d) became token %d (colour %d) of %d", largest,
                            colours[largest], follower,
                            follower >= 0 ? setok_document_get_token_colours (document)[follower]
                                          : -1,
                            after->result.clusters.n_tokens);
  check (after != before && follower >= 0
           && setok_document_get_token_colours (document)[follower] == colours[largest],
         "a token keeps its colour when the tokens are recomputed", detail);
  setok_token_map_unref (before);
  _setok_window_set_token_controls (window, d.mode, d.threshold, d.max_clusters);
  wait_for (has_token_map, window, WAIT_SECONDS);
}

static gboolean
not_selecting (gpointer data)
{
  return !_setok_window_get_selecting_by_name (data);
}

/* Select by Name: the model's mask decoder finds what the words name and its tokens become the
 * selection (or a toast says it found nothing). */
static void
test_select_by_name (SetokWindow *window, SetokEngine *engine)
{
  SetokDocument *document = _setok_window_get_document (window);
  const char *why = setok_engine_get_unavailable_reason (engine, SETOK_CAP_SEGMENT_PHRASE);
  guint toasts = _setok_window_get_n_toasts (window);
  g_autofree char *detail = NULL;
  guint selected;

  if (why != NULL)
    {
      check (g_strcmp0 (_setok_window_get_find_tooltip (window), why) == 0,
             "Select by Name is off and says why", why);
      return;
    }
  setok_document_clear_selection (document);
  _setok_window_select_by_name (window, "the star");
  check (_setok_window_get_selecting_by_name (window), "Select by Name runs", NULL);
  wait_for (not_selecting, window, WAIT_SECONDS);
  selected = (guint)gtk_bitset_get_size (setok_document_get_selection (document));
  detail = g_strdup_printf ("%u tokens selected; %s", selected,
                            _setok_window_get_n_toasts (window) > toasts
                              ? _setok_window_get_last_toast (window)
                              : "no toast");
  check (selected >= 1
           || (_setok_window_get_n_toasts (window) > toasts
               && g_strcmp0 (_setok_window_get_last_toast (window),
                             "The model found nothing by that name")
                    == 0),
         "Select by Name selects what the model found, or says it found nothing", detail);
  setok_document_clear_selection (document);
}

static gboolean
file_gone (gpointer path)
{
  return !g_file_test (path, G_FILE_TEST_EXISTS);
}

static gboolean
file_there (gpointer path)
{
  return g_file_test (path, G_FILE_TEST_EXISTS);
}

/* Copy says so; Clear Conversation forgets the kept turns, and Undo brings them back. */
static void
test_copy_and_clear (SetokWindow *window, SetokChatView *chat)
{
  guint toasts = _setok_window_get_n_toasts (window);
  guint turns = setok_chat_view_get_n_turns (chat);
  const char *key = setok_document_get_content_key (_setok_window_get_document (window));
  g_autofree char *path = setok_conversation_path (key);

  setok_chat_view_copy_last_answer (chat);
  check (_setok_window_get_n_toasts (window) == toasts + 1
           && g_strcmp0 (_setok_window_get_last_toast (window), "Answer copied") == 0,
         "Copy says it copied", _setok_window_get_last_toast (window));
  setok_chat_view_clear (chat);
  wait_for (file_gone, path, 10);
  check (setok_chat_view_get_n_turns (chat) == 0 && !g_file_test (path, G_FILE_TEST_EXISTS)
           && g_strcmp0 (_setok_window_get_last_toast (window), "Conversation cleared") == 0,
         "Clear Conversation forgets the turns and offers to undo", path);
  setok_chat_view_undo_clear (chat);
  wait_for (file_there, path, 10);
  {
    g_autofree char *detail = g_strdup_printf ("%u of %u turns", setok_chat_view_get_n_turns (chat),
                                               turns);
    check (turns > 0 && setok_chat_view_get_n_turns (chat) == turns
             && g_file_test (path, G_FILE_TEST_EXISTS),
           "Undo brings the conversation back", detail);
  }
}

/* The conversation is kept: the same picture opened again shows it. */
static void
test_conversation_kept (SetokWindow *window, const char *image, SetokChatView *chat)
{
  g_autoptr (GFile) file = g_file_new_for_path (image);
  guint docs = _setok_window_get_n_documents (window);
  guint turns = setok_chat_view_get_n_turns (chat);
  g_autofree char *detail = NULL;

  setok_window_open_file (window, file);
  wait_documents (window, docs + 1);
  detail = g_strdup_printf ("%u turns, %u before",
                            setok_chat_view_get_n_turns (_setok_window_get_chat_view (window)),
                            turns);
  check (turns > 0 && setok_chat_view_get_n_turns (_setok_window_get_chat_view (window)) == turns,
         "the same picture opened again brings its conversation back", detail);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.close-document", NULL);
  spin (0.1);
}

/* Before the first question: the bundle's example questions, which ask when clicked. */
static void
test_examples (SetokWindow *window, SetokEngine *engine)
{
  SetokChatView *chat;
  const SetokModelCard *card = setok_engine_get_card (engine);
  guint n;
  gboolean answered;
  g_autofree char *detail = NULL;

  if (!setok_engine_get_has_chat (engine) || card == NULL)
    return;
  gtk_widget_activate_action (GTK_WIDGET (window), "win.new-scene", NULL);
  _setok_window_set_chat_revealed (window, TRUE);
  spin (0.3);
  chat = _setok_window_get_chat_view (window);
  n = setok_chat_view_get_n_examples (chat);
  detail = g_strdup_printf ("%u examples, the card lists %u", n, card->questions->len);
  check (n >= 1 && (card->questions->len == 0 || n == card->questions->len),
         "the chat offers example questions", detail);
  check (setok_chat_view_ask_example (chat, 0), "an example question asks when clicked", NULL);
  answered = wait_for (chat_idle, chat, WAIT_SECONDS);
  check (answered && setok_chat_view_get_n_turns (chat) == 1, "the example is answered",
         setok_chat_view_get_last_answer (chat));
  /* a greeting, outside what the card lists: whatever the model answers, the bubble shows it,
   * or "No answer" when it wrote nothing */
  check (setok_chat_view_ask (chat, "hello"), "a greeting is sent", NULL);
  if (wait_for (chat_idle, chat, WAIT_SECONDS))
    {
      g_autofree char *words = g_strstrip (g_strdup (setok_chat_view_get_last_answer (chat)));
      const char *shown = setok_chat_view_get_shown_answer (chat);
      g_autofree char *seen = g_strdup_printf ("answer “%s”, shown “%s”", words, shown);
      check (g_strcmp0 (shown, words[0] != '\0' ? setok_chat_view_get_last_answer (chat)
                                                 : _ ("No answer"))
                 == 0,
             "an answer is shown as written, or as “No answer” when it has no words", seen);
    }
  gtk_widget_activate_action (GTK_WIDGET (window), "win.close-document", NULL);
  spin (0.1);
}

/* A model that says what it learned from: a photograph gets the banner, a scene of its
 * world does not; the banner can be dismissed. */
static void
test_domain_banner (SetokWindow *window, SetokEngine *engine, const setok_image *scene,
                    const char *out)
{
  const SetokModelCard *card = setok_engine_get_card (engine);
  g_autofree char *path = g_build_filename (out, "photo-like.png", NULL);
  g_autoptr (GFile) file = g_file_new_for_path (path);
  guint docs = _setok_window_get_n_documents (window);
  const char *text;

  if (card == NULL || card->domain_kind == NULL)
    {
      printf ("skip domain banner: the model does not say what it was trained on\n");
      return;
    }
  check (_setok_window_get_domain_text (window) == NULL, "no banner on a scene of its world",
         _setok_window_get_domain_text (window));
  if (!write_picture (path, scene, 320, 240, TRUE))
    return;
  setok_window_open_file (window, file);
  wait_documents (window, docs + 1);
  spin (0.3);
  text = _setok_window_get_domain_text (window);
  check (text != NULL && (card->domain_suggest == NULL || strstr (text, card->domain_suggest)),
         "a photograph gets a banner that says what to load instead", text);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.dismiss-domain", NULL);
  spin (0.3);
  check (_setok_window_get_domain_text (window) == NULL, "the banner can be dismissed", NULL);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.close-document", NULL);
  spin (0.1);
}

static GtkWindow *
new_toplevel (GtkWindow *except, guint before)
{
  GListModel *toplevels = gtk_window_get_toplevels ();

  for (guint i = before; i < g_list_model_get_n_items (toplevels); i++)
    {
      g_autoptr (GtkWindow) w = g_list_model_get_item (toplevels, i);
      if (w != except && gtk_widget_get_visible (GTK_WIDGET (w)))
        return w;
    }
  for (guint i = 0; i < g_list_model_get_n_items (toplevels); i++)
    {
      g_autoptr (GtkWindow) w = g_list_model_get_item (toplevels, i);
      if (w != except && gtk_widget_get_visible (GTK_WIDGET (w)))
        return w;
    }
  return NULL;
}

/* Preferences, About This Model, About and Keyboard Shortcuts open, and no label in
 * them is cut short. */
void
test_dialogs (SetokWindow *window)
{
  const char *actions[]
    = { "app.preferences", "win.about-model", "app.about", "win.show-help-overlay" };

  for (guint i = 0; i < G_N_ELEMENTS (actions); i++)
    {
      guint before = g_list_model_get_n_items (gtk_window_get_toplevels ());
      GtkWindow *dialog;

      gtk_widget_activate_action (GTK_WIDGET (window), actions[i], NULL);
      spin (0.5);
      dialog = new_toplevel (GTK_WINDOW (window), before);
      check (dialog != NULL, "window opens", actions[i]);
      if (dialog != NULL && i < 2)
        {
          int checked = 0;
          g_autofree char *problems = layout_problems (GTK_WIDGET (dialog), NULL, 0, &checked);
          g_autofree char *what = g_strdup_printf ("%s: nothing cut short (%d widgets)",
                                                   actions[i], checked);
          check (problems[0] == '\0', what, problems[0] != '\0' ? problems : NULL);
        }
      if (dialog != NULL)
        gtk_window_destroy (dialog);
      spin (0.1);
    }
}

/* Where Save As and the exports start: a file's own folder, else Pictures (else home). */
static void
test_default_folder (SetokWindow *window)
{
  SetokDocument *document = _setok_window_get_document (window);
  g_autoptr (GFile) folder = _setok_window_default_folder (document);
  g_autoptr (GFile) parent = setok_document_get_file (document) != NULL
                               ? g_file_get_parent (setok_document_get_file (document))
                               : NULL;
  g_autoptr (GFile) none = _setok_window_default_folder (NULL);
  const char *pictures = g_get_user_special_dir (G_USER_DIRECTORY_PICTURES);
  g_autofree char *where = g_file_get_path (none);

  check (parent != NULL && g_file_equal (folder, parent), "an opened picture saves beside itself",
         NULL);
  check (where != NULL
           && (g_strcmp0 (where, pictures) == 0
               || (!g_file_test (pictures != NULL ? pictures : "", G_FILE_TEST_IS_DIR)
                   && g_strcmp0 (where, g_get_home_dir ()) == 0)),
         "a new picture saves in Pictures", where);
}

void
test_guidance (SetokWindow *window, SetokEngine *engine, const char *image, const char *out)
{
  SetokDocument *first = _setok_window_get_document (window);
  const setok_image *scene = setok_picture_get_image (setok_document_get_picture (first));
  SetokChatView *chat = _setok_window_get_chat_view (window);

  test_titles (window, engine);
  test_token_controls (window);
  test_zoom_controls (window);
  test_hover_text (window);
  test_popover_shortcuts (window);
  test_select_by_name (window, engine);
  test_default_folder (window);
  test_stable_colours (window, engine);
  if (setok_engine_get_has_chat (engine))
    {
      test_copy_and_clear (window, chat);
      test_conversation_kept (window, image, chat);
      test_examples (window, engine);
    }
  test_domain_banner (window, engine, scene, out);
  test_whole_picture (window, scene, out);
  test_tab_order (window, scene, out);
  select_page (window, 0);
}
