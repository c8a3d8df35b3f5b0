/* studio-roles.c — a model folder for each role: a SAM folder segments, a Stable
 * Diffusion folder edits, beside the main model. Preferences and tooltips name
 * the folders; a folder that cannot serve a role is refused with a toast and the
 * role keeps its folder; clicks ask SAM for the object (shift adds a point,
 * alt takes away) and the mask is the edit's region. */
#include "studio-test.h"

#include <string.h>

#include "setok-preferences-window.h"

static gboolean
engine_idle (gpointer data)
{
  return setok_engine_get_queue_length (data) == 0 && !setok_engine_get_loading (data);
}

typedef struct
{
  SetokEngine *engine;
  SetokRole role;
  const char *path;
} RoleWait;

static gboolean
role_served (gpointer data)
{
  RoleWait *w = data;
  const char *path = setok_engine_get_role_path (w->engine, w->role);

  return engine_idle (w->engine) && setok_engine_get_role_own (w->engine, w->role)
         && g_strcmp0 (path, w->path) == 0;
}

/* Sets role's key to path as Preferences does and waits for the engine to answer. */
static void
set_role (SetokWindow *window, SetokEngine *engine, SetokRole role, const char *path)
{
  g_settings_set_string (_setok_window_get_settings (window), setok_application_role_key (role),
                         path);
  spin (0.05);
  wait_for (engine_idle, engine, WAIT_SECONDS);
  spin (0.05);
}

/* path is refused for role: a toast naming it, and the role and its setting keep kept. */
static void
check_refused (SetokWindow *window, SetokEngine *engine, SetokRole role, const char *path,
               const char *kept, const char *what)
{
  GSettings *settings = _setok_window_get_settings (window);
  guint toasts = _setok_window_get_n_toasts (window);
  g_autofree char *setting = NULL;
  const char *toast;
  g_autofree char *detail = NULL;

  set_role (window, engine, role, path);
  toast = _setok_window_get_last_toast (window);
  setting = g_settings_get_string (settings, setok_application_role_key (role));
  detail = g_strdup_printf ("toast \"%s\", role served by %s, setting %s", toast,
                            setok_engine_get_role_path (engine, role), setting);
  check (_setok_window_get_n_toasts (window) == toasts + 1 && toast != NULL
           && strstr (toast, path) != NULL
           && g_strcmp0 (setok_engine_get_role_path (engine, role), kept) == 0
           && g_str_equal (setting, kept),
         what, detail);
}

static gint64
mask_area (SetokPicture *mask)
{
  const setok_image *m = setok_picture_get_image (mask);
  gint64 n = 0;

  for (gsize i = 0; i < (gsize)m->width * m->height; i++)
    n += m->pixels[i * m->channels] > 127;
  return n;
}

static gboolean
not_segmenting (gpointer data)
{
  return !setok_document_get_segmenting (data);
}

/* A click at image point (fx, fy) (fractions of the picture) with state: SAM's mask after it
 * (a new reference, or NULL), and in *detail the points and the mask's area. */
static SetokPicture *
click (SetokCanvas *canvas, double fx, double fy, GdkModifierType state, char **detail)
{
  SetokDocument *document = setok_canvas_get_document (canvas);
  const setok_image *img = setok_picture_get_image (setok_document_get_picture (document));
  SetokPicture *mask;
  double x, y;

  setok_canvas_image_to_widget (canvas, fx * img->width, fy * img->height, &x, &y);
  setok_canvas_click (canvas, x, y, state);
  wait_for (not_segmenting, document, WAIT_SECONDS);
  mask = setok_document_get_point_mask (document);
  g_free (*detail);
  *detail = g_strdup_printf ("%u point(s), %" G_GINT64_FORMAT " pixels",
                             setok_document_get_n_points (document),
                             mask != NULL ? mask_area (mask) : 0);
  return mask != NULL ? setok_picture_ref (mask) : NULL;
}

/* The subtitle of the row titled title in the Preferences window. */
static const char *
row_subtitle (GtkWidget *root, const char *title)
{
  if (ADW_IS_ACTION_ROW (root)
      && g_strcmp0 (adw_preferences_row_get_title (ADW_PREFERENCES_ROW (root)), title) == 0)
    return adw_action_row_get_subtitle (ADW_ACTION_ROW (root));
  for (GtkWidget *c = gtk_widget_get_first_child (root); c != NULL;
       c = gtk_widget_get_next_sibling (c))
    {
      const char *s = row_subtitle (c, title);

      if (s != NULL)
        return s;
    }
  return NULL;
}

static void
test_folders (SetokWindow *window, SetokEngine *engine, const char *sam, const char *sd)
{
  RoleWait seg = { engine, SETOK_ROLE_SEGMENT, sam }, edit = { engine, SETOK_ROLE_EDIT, sd };
  g_autofree char *missing = g_build_filename (sd, "no-such-folder", NULL);
  g_autofree char *main_path = g_strdup (setok_engine_get_role_path (engine, SETOK_ROLE_MAIN));

  check (!setok_engine_get_role_own (engine, SETOK_ROLE_SEGMENT)
           && !setok_engine_get_role_own (engine, SETOK_ROLE_EDIT)
           && g_strcmp0 (setok_engine_get_role_path (engine, SETOK_ROLE_EDIT), main_path) == 0,
         "without role folders the main model serves every role", main_path);
  set_role (window, engine, SETOK_ROLE_SEGMENT, sam);
  check (wait_for (role_served, &seg, WAIT_SECONDS) && setok_engine_get_segments_clicks (engine),
         "a SAM folder serves segmentation, and clicks ask it",
         setok_engine_get_role_path (engine, SETOK_ROLE_SEGMENT));
  set_role (window, engine, SETOK_ROLE_EDIT, sd);
  check (wait_for (role_served, &edit, WAIT_SECONDS), "a Stable Diffusion folder serves editing",
         setok_engine_get_role_path (engine, SETOK_ROLE_EDIT));
  check (g_strcmp0 (setok_engine_get_role_path (engine, SETOK_ROLE_MAIN), main_path) == 0
           && setok_engine_get_has_tokens (engine),
         "the main model still serves tokens", NULL);
  {
    const char *tooltip = _setok_window_get_generate_tooltip (window);

    check (tooltip != NULL && strstr (tooltip, sd) != NULL && !strstr (tooltip, "cannot"),
           "the generate button names the folder that generates", tooltip);
    tooltip = _setok_window_get_find_tooltip (window);
    check (tooltip != NULL
             && g_strcmp0 (tooltip, setok_engine_get_unavailable_reason (
                                      engine, SETOK_CAP_SEGMENT_PHRASE))
                  == 0
             && strstr (tooltip, sam) != NULL,
           "Select by Name is off with SAM's reason", tooltip);
  }
  {
    GtkWindow *prefs = setok_preferences_window_new (_setok_window_get_settings (window),
                                                     GTK_WINDOW (window));
    const char *s = row_subtitle (GTK_WIDGET (prefs), "Segmentation");
    const char *e = row_subtitle (GTK_WIDGET (prefs), "Editing and Generation");
    g_autofree char *detail = g_strdup_printf ("%s / %s", s, e);

    check (g_strcmp0 (s, sam) == 0 && g_strcmp0 (e, sd) == 0,
           "Preferences show each role's folder", detail);
    gtk_window_destroy (prefs);
  }

  check_refused (window, engine, SETOK_ROLE_SEGMENT, sd, sam,
                 "a Stable Diffusion folder is refused for segmentation; SAM stays");
  check_refused (window, engine, SETOK_ROLE_EDIT, sam, sd,
                 "a SAM folder is refused for editing; Stable Diffusion stays");
  check_refused (window, engine, SETOK_ROLE_EDIT, missing, sd,
                 "a missing folder is refused for editing; Stable Diffusion stays");
}

/* Clicks make SAM's mask; shift and alt change it; an edit of it keeps the outside. */
static void
test_clicks_and_edit (SetokWindow *window)
{
  SetokCanvas *canvas = _setok_window_get_canvas (window);
  SetokDocument *document = setok_canvas_get_document (canvas);
  g_autoptr (SetokPicture) first = NULL, added = NULL, removed = NULL, region = NULL;
  g_autoptr (SetokPicture) before = setok_picture_ref (setok_document_get_picture (document));
  SetokDiffusionRequest request = { 2, 1.0, 5 };
  g_autofree char *detail = NULL;
  const double spots[][2] = { { 0.5, 0.5 }, { 0.25, 0.25 }, { 0.75, 0.3 }, { 0.3, 0.75 } };
  guint errors = _setok_window_get_n_errors (window);
  guint first_spot = 0;

  /* a random SAM's mask may be empty at a given point: the first spot that gives one */
  for (guint i = 0; i < G_N_ELEMENTS (spots) && first == NULL; i++)
    {
      first = click (canvas, spots[i][0], spots[i][1], 0, &detail);
      first_spot = i;
    }
  check (first != NULL && mask_area (first) > 0 && setok_document_get_n_points (document) == 1
           && _setok_window_get_n_errors (window) == errors,
         "a click gives SAM's mask", detail);
  if (first == NULL)
    return;
  check (setok_document_get_has_selection (document)
           && gtk_bitset_is_empty (setok_document_get_selection (document))
           && _setok_window_get_edit_hint (window) == NULL,
         "the mask is the selection (no tokens)", NULL);
  {
    g_autoptr (SetokPicture) selection = setok_document_get_selection_mask (document);

    check (selection != NULL && same_pixels (selection, first), "the selection mask is SAM's",
           NULL);
  }

  added = click (canvas, 0.8, 0.8, GDK_SHIFT_MASK, &detail);
  check (setok_document_get_n_points (document) == 2 && added != NULL
           && !same_pixels (added, first),
         "shift-click adds a point and the mask changes", detail);
  removed = click (canvas, 0.2, 0.6, GDK_ALT_MASK, &detail);
  check (setok_document_get_n_points (document) == 3
           && (removed == NULL || added == NULL || !same_pixels (removed, added)),
         "alt-click adds a background point and the mask changes", detail);
  if (removed == NULL)
    {
      /* the background point took everything: start again from the first spot */
      g_autoptr (SetokPicture) again
        = click (canvas, spots[first_spot][0], spots[first_spot][1], 0, &detail);
    }
  region = setok_document_get_selection_mask (document);
  if (region == NULL)
    {
      check (FALSE, "a region to edit", NULL);
      return;
    }

  _setok_window_set_edit_controls (window, "make it bright blue", &request);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.edit", NULL);
  check (setok_document_get_edit_state (document) == SETOK_EDIT_RUNNING,
         "the edit of SAM's region starts", NULL);
  wait_for (edit_settled, document, WAIT_SECONDS);
  if (setok_document_get_edit_state (document) != SETOK_EDIT_REVIEW)
    {
      check (FALSE, "the edit by the Stable Diffusion folder finished",
             _setok_window_get_last_error (window));
      return;
    }
  {
    gint64 inside = 0, outside = 0;

    g_free (detail);
    detail = region_changes (before, setok_document_get_edit_result (document), region, &inside,
                             &outside);
    check (inside > 0 && outside == 0,
           "the edit changes SAM's region and keeps every pixel outside it", detail);
  }
  gtk_widget_activate_action (GTK_WIDGET (window), "win.discard-edit", NULL);
}

/* The main menu's Models > Main Model for Every Role: both role settings back to "" and
 * every role served by the main model. */
static void
test_reset_roles (SetokWindow *window, SetokEngine *engine)
{
  GSettings *settings = _setok_window_get_settings (window);
  g_autofree char *segment = NULL, *edit = NULL, *detail = NULL;

  gtk_widget_activate_action (GTK_WIDGET (window), "win.reset-roles", NULL);
  spin (0.05);
  wait_for (engine_idle, engine, WAIT_SECONDS);
  spin (0.05);
  segment = g_settings_get_string (settings, "segment-model-path");
  edit = g_settings_get_string (settings, "edit-model-path");
  detail = g_strdup_printf ("settings '%s' and '%s'", segment, edit);
  check (segment[0] == '\0' && edit[0] == '\0'
             && !setok_engine_get_role_own (engine, SETOK_ROLE_SEGMENT)
             && !setok_engine_get_role_own (engine, SETOK_ROLE_EDIT),
         "Models > Main Model for Every Role gives both roles back to the main model", detail);
}

void
test_roles (SetokWindow *window, SetokEngine *engine, const char *sam, const char *sd)
{
  test_folders (window, engine, sam, sd);
  if (setok_engine_get_segments_clicks (engine) && _setok_window_get_canvas (window) != NULL)
    test_clicks_and_edit (window);
  test_reset_roles (window, engine);
}
