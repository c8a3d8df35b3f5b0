/* setok-window.c — the main window.
 *
 * Each open image is a tab holding a SetokCanvas; its chat panel lives in a
 * stack beside the tabs and follows the selected tab. The token controls
 * (mode, threshold, count) ask the current document for a new token map;
 * the document waits for the controls to settle before it asks the engine.
 * The edit bar under the canvas follows the current document's region edit;
 * the Generate popover runs the window's one generation at a time.
 * The window's other actions are in setok-window-actions.c, saving and the
 * questions before closing unsaved documents in setok-window-save.c. */
#include "setok-window.h"

#include <glib/gi18n.h>

#include "setok-canvas.h"
#include "setok-chat-view.h"
#include "setok-document.h"
#include "setok-window-private.h"

#define CHAT_VIEW_KEY "setok-chat-view"

struct _SetokWindow
{
  AdwApplicationWindow parent_instance;

  SetokEngine *engine;
  GSettings *settings;
  GSignalGroup *canvas_signals;
  GSignalGroup *document_signals;
  gboolean syncing_controls;
  gboolean was_loading;
  guint n_loading;
  guint n_errors;
  char *last_error;

  /* template */
  AdwWindowTitle *window_title;
  GtkSpinner *busy_spinner;
  GtkRevealer *banner_revealer;
  GtkLabel *banner_label;
  AdwToastOverlay *toast_overlay;
  GtkStack *main_stack;
  AdwTabView *tab_view;
  GtkDropDown *mode_dropdown;
  GtkSpinButton *threshold_spin;
  GtkSpinButton *count_spin;
  GtkScale *opacity_scale;
  GtkLabel *info_label;
  GtkStack *chat_stack;
  GtkWidget *chat_placeholder;
  GtkStack *edit_stack;
  GtkEntry *edit_entry;
  GtkSpinButton *edit_seed_spin;
  GtkSpinButton *edit_steps_spin;
  GtkSpinButton *edit_guidance_spin;
  GtkProgressBar *edit_progress;
  GtkToggleButton *original_toggle;
  GtkPopover *generate_popover;
  GtkStack *generate_stack;
  GtkEntry *generate_entry;
  GtkMenuButton *generate_menu_button;
  GtkButton *edit_button;
  GtkSpinButton *generate_seed_spin;
  GtkSpinButton *generate_steps_spin;
  GtkSpinButton *generate_guidance_spin;
  GtkPicture *generate_preview;
  GtkProgressBar *generate_progress;

  GCancellable *generate_cancellable; /* while generating */
  guint n_generated;
  gboolean syncing_toggle;
  gboolean close_confirmed; /* the user chose to close despite unsaved edits */
};

G_DEFINE_FINAL_TYPE (SetokWindow, setok_window, ADW_TYPE_APPLICATION_WINDOW)

static const char *const mode_names[] = { "dpc", "soft", "fixed" };

// ----------------------------------------------------------------------------
// current document

static SetokCanvas *
current_canvas (SetokWindow *self)
{
  AdwTabPage *page = adw_tab_view_get_selected_page (self->tab_view);

  return page != NULL ? SETOK_CANVAS (adw_tab_page_get_child (page)) : NULL;
}

static SetokDocument *
current_document (SetokWindow *self)
{
  SetokCanvas *canvas = current_canvas (self);

  return canvas != NULL ? setok_canvas_get_document (canvas) : NULL;
}

SetokDocument *
_setok_window_get_document (SetokWindow *self)
{
  return current_document (self);
}

GSettings *
_setok_window_get_settings (SetokWindow *self)
{
  return self->settings;
}

AdwTabView *
_setok_window_get_tab_view (SetokWindow *self)
{
  return self->tab_view;
}

void
_setok_window_add_toast (SetokWindow *self, AdwToast *toast)
{
  adw_toast_overlay_add_toast (self->toast_overlay, toast);
}

SetokCanvas *
_setok_window_get_canvas (SetokWindow *self)
{
  return current_canvas (self);
}

SetokChatView *
_setok_window_get_chat_view (SetokWindow *self)
{
  SetokCanvas *canvas = current_canvas (self);

  return canvas != NULL ? g_object_get_data (G_OBJECT (canvas), CHAT_VIEW_KEY) : NULL;
}

guint
_setok_window_get_n_documents (SetokWindow *self)
{
  return (guint)adw_tab_view_get_n_pages (self->tab_view);
}

guint
_setok_window_get_n_errors (SetokWindow *self)
{
  return self->n_errors;
}

const char *
_setok_window_get_last_error (SetokWindow *self)
{
  return self->last_error;
}

const char *
_setok_window_get_banner_text (SetokWindow *self)
{
  if (!gtk_revealer_get_reveal_child (self->banner_revealer))
    return NULL;
  return gtk_label_get_text (self->banner_label);
}

/* The generate button's tooltip: what it does, or why the model cannot. */
const char *
_setok_window_get_generate_tooltip (SetokWindow *self)
{
  return gtk_widget_get_tooltip_text (GTK_WIDGET (self->generate_menu_button));
}

guint
_setok_window_get_n_loading (SetokWindow *self)
{
  return self->n_loading;
}

// ----------------------------------------------------------------------------
// errors

void
setok_window_show_error (SetokWindow *self, const char *title, const GError *error)
{
  AdwToast *toast = adw_toast_new (title);

  self->n_errors++;
  g_free (self->last_error);
  self->last_error = g_strdup (error->message);
  adw_toast_set_button_label (toast, _ ("Details"));
  adw_toast_set_action_name (toast, "win.show-error-details");
  adw_toast_set_action_target_value (toast, g_variant_new_string (error->message));
  adw_toast_set_timeout (toast, 8);
  adw_toast_overlay_add_toast (self->toast_overlay, toast);
}

static void
document_failed (SetokDocument *document, GError *error, SetokWindow *self)
{
  g_autofree char *title
    = g_strdup_printf (_ ("No tokens for “%s”"), setok_document_get_title (document));

  setok_window_show_error (self, title, error);
}

/* Failures of generation and edits: a model without the components says so. */
static void
show_diffusion_error (SetokWindow *self, const char *title, const GError *error)
{
  if (g_error_matches (error, SETOK_ENGINE_ERROR, SETOK_ENGINE_ERROR_CANNOT_GENERATE))
    title = _ ("This model cannot generate images");
  setok_window_show_error (self, title, error);
}

static void
edit_failed (SetokDocument *document, GError *error, SetokWindow *self)
{
  show_diffusion_error (self, _ ("The edit failed"), error);
}

static void
chat_failed (SetokChatView *chat, GError *error, SetokWindow *self)
{
  setok_window_show_error (self, _ ("The answer failed"), error);
}

// ----------------------------------------------------------------------------
// token controls

static setok_cluster_params
current_params (SetokWindow *self)
{
  setok_cluster_params p = setok_engine_get_default_params (self->engine);
  guint mode = gtk_drop_down_get_selected (self->mode_dropdown);
  int count = gtk_spin_button_get_value_as_int (self->count_spin);

  p.mode = mode < SETOK_CLUSTER_MODE_COUNT ? (setok_cluster_mode)mode : SETOK_CLUSTER_DPC;
  p.threshold = (float)gtk_spin_button_get_value (self->threshold_spin);
  if (p.mode == SETOK_CLUSTER_FIXED)
    {
      if (count > 0)
        p.fixed_k = count;
    }
  else
    p.max_clusters = count;
  if (p.max_clusters > 0 && p.min_clusters > p.max_clusters)
    p.min_clusters = p.max_clusters;
  return p;
}

static void
request_tokens (SetokWindow *self, SetokDocument *document)
{
  setok_cluster_params p;

  if (document == NULL || !setok_engine_get_has_tokens (self->engine)
      || setok_engine_get_loading (self->engine))
    return;
  p = current_params (self);
  setok_document_request_tokens (document, &p);
}

/* The controls show the user's own values, else the model's defaults. */
static void
sync_controls (SetokWindow *self)
{
  setok_cluster_params d = setok_engine_get_default_params (self->engine);
  g_autoptr (GVariant) mode = g_settings_get_user_value (self->settings, "cluster-mode");
  g_autoptr (GVariant) threshold = g_settings_get_user_value (self->settings, "cluster-threshold");
  g_autoptr (GVariant) count = g_settings_get_user_value (self->settings, "cluster-count");
  setok_cluster_mode m = d.mode;

  self->syncing_controls = TRUE;
  if (mode != NULL)
    {
      setok_cluster_mode user = setok_cluster_mode_from_name (g_variant_get_string (mode, NULL));
      if (user != SETOK_CLUSTER_MODE_COUNT)
        m = user;
    }
  gtk_drop_down_set_selected (self->mode_dropdown, (guint)m);
  gtk_spin_button_set_value (self->threshold_spin,
                             threshold != NULL ? g_variant_get_double (threshold) : d.threshold);
  gtk_spin_button_set_value (self->count_spin, count != NULL ? g_variant_get_int32 (count)
                                               : m == SETOK_CLUSTER_FIXED ? d.fixed_k
                                                                          : d.max_clusters);
  gtk_widget_set_sensitive (GTK_WIDGET (self->threshold_spin), m != SETOK_CLUSTER_FIXED);
  self->syncing_controls = FALSE;
}

static void
controls_changed (SetokWindow *self)
{
  guint mode = gtk_drop_down_get_selected (self->mode_dropdown);

  gtk_widget_set_sensitive (GTK_WIDGET (self->threshold_spin), mode != SETOK_CLUSTER_FIXED);
  if (self->syncing_controls)
    return;
  if (mode < G_N_ELEMENTS (mode_names))
    g_settings_set_string (self->settings, "cluster-mode", mode_names[mode]);
  g_settings_set_double (self->settings, "cluster-threshold",
                         gtk_spin_button_get_value (self->threshold_spin));
  g_settings_set_int (self->settings, "cluster-count",
                      gtk_spin_button_get_value_as_int (self->count_spin));
  request_tokens (self, current_document (self));
}

void
_setok_window_set_token_controls (SetokWindow *self, setok_cluster_mode mode, double threshold,
                                  int count)
{
  gtk_drop_down_set_selected (self->mode_dropdown, (guint)mode);
  gtk_spin_button_set_value (self->threshold_spin, threshold);
  gtk_spin_button_set_value (self->count_spin, count);
}

// ----------------------------------------------------------------------------
// status

static void
update_info (SetokWindow *self)
{
  SetokCanvas *canvas = current_canvas (self);
  SetokDocument *document = current_document (self);
  SetokTokenMap *map = document != NULL ? setok_document_get_token_map (document) : NULL;
  int hovered = canvas != NULL ? setok_canvas_get_hovered_token (canvas) : -1;
  g_autofree char *text = NULL;

  if (document == NULL)
    text = g_strdup ("");
  else if (map != NULL && hovered >= 0 && hovered < map->result.clusters.n_tokens)
    {
      const setok_token_region *g = &map->result.regions[hovered];
      double total = (double)map->result.width * map->result.height;

      text = g_strdup_printf (_ ("Token %d · area %.1f %% (%.0f px) · score %.3f"), hovered,
                              100.0 * (double)g->area / total, (double)g->area,
                              map->result.clusters.tokens[hovered].score);
    }
  else if (setok_document_get_computing (document))
    text = g_strdup (_ ("Computing tokens…"));
  else if (map != NULL)
    {
      guint selected = (guint)gtk_bitset_get_size (setok_document_get_selection (document));

      text = g_strdup_printf (
        ngettext ("%d token · %.0f ms", "%d tokens · %.0f ms", map->result.clusters.n_tokens),
        map->result.clusters.n_tokens, map->result.timings.total_ms);
      if (selected > 0)
        {
          g_autofree char *more = g_strdup_printf (
            ngettext ("%s · %u selected", "%s · %u selected", selected), text, selected);
          g_free (g_steal_pointer (&text));
          text = g_steal_pointer (&more);
        }
    }
  else
    text = g_strdup ("");
  gtk_label_set_text (self->info_label, text);
  gtk_widget_set_visible (GTK_WIDGET (self->info_label), text[0] != '\0');
}

static void
update_actions (SetokWindow *self)
{
  SetokDocument *document = current_document (self);
  gboolean has_doc = document != NULL;
  gboolean has_map = has_doc && setok_document_get_token_map (document) != NULL;
  gboolean has_selection
    = has_map && !gtk_bitset_is_empty (setok_document_get_selection (document));
  SetokEditState state = has_doc ? setok_document_get_edit_state (document) : SETOK_EDIT_IDLE;
  /* an action the model cannot do is off, and its control says why */
  const char *no_edit = setok_engine_get_unavailable_reason (self->engine, SETOK_CAP_EDIT);
  const char *no_generate = setok_engine_get_unavailable_reason (self->engine, SETOK_CAP_GENERATE);

  gtk_widget_set_tooltip_text (GTK_WIDGET (self->edit_button),
                               no_edit != NULL ? no_edit
                                               : _ ("Repaint the selected tokens as described"));
  gtk_widget_set_sensitive (GTK_WIDGET (self->generate_menu_button), no_generate == NULL);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->generate_menu_button),
                               no_generate != NULL ? no_generate : _ ("Generate Image"));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.show-generate", no_generate == NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.export-overlay", has_map);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.close-document", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-in", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-out", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-fit", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-actual", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.clear-selection", has_map);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.recompute",
                                 has_doc && setok_engine_get_has_tokens (self->engine));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.save", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.save-as", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.export-mask", has_selection);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.undo",
                                 has_doc && setok_document_get_can_undo (document));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.redo",
                                 has_doc && setok_document_get_can_redo (document));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.edit",
                                 has_selection && state == SETOK_EDIT_IDLE && no_edit == NULL
                                   && !setok_engine_get_loading (self->engine));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.cancel-edit",
                                 has_doc && state == SETOK_EDIT_RUNNING);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.apply-edit",
                                 has_doc && state == SETOK_EDIT_REVIEW);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.discard-edit",
                                 has_doc && state == SETOK_EDIT_REVIEW);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.generate",
                                 self->generate_cancellable == NULL && no_generate == NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.cancel-generate",
                                 self->generate_cancellable != NULL);
}

/* The edit bar shows the current document's edit: instruction, progress or review. */
static void
sync_edit_bar (SetokWindow *self)
{
  static const char *const pages[] = { "instruct", "running", "review" };
  SetokDocument *document = current_document (self);
  SetokEditState state
    = document != NULL ? setok_document_get_edit_state (document) : SETOK_EDIT_IDLE;

  gtk_stack_set_visible_child_name (self->edit_stack, pages[state]);
  gtk_progress_bar_set_fraction (
    self->edit_progress, document != NULL ? setok_document_get_edit_progress (document) : 0);
  self->syncing_toggle = TRUE;
  gtk_toggle_button_set_active (self->original_toggle,
                                document != NULL && setok_document_get_show_original (document));
  self->syncing_toggle = FALSE;
}

static void
original_toggled (SetokWindow *self)
{
  SetokDocument *document = current_document (self);

  if (!self->syncing_toggle && document != NULL)
    setok_document_set_show_original (document,
                                      gtk_toggle_button_get_active (self->original_toggle));
}

/* The title of a document as tabs and the window show it: "• name" while modified. */
static char *
marked_title (SetokDocument *document)
{
  if (setok_document_get_modified (document))
    return g_strdup_printf ("• %s", setok_document_get_title (document));
  return g_strdup (setok_document_get_title (document));
}

static void
update_page_title (SetokDocument *document, GParamSpec *pspec, AdwTabPage *page)
{
  g_autofree char *title = marked_title (document);
  GFile *file = setok_document_get_file (document);

  adw_tab_page_set_title (page, title);
  if (file != NULL)
    {
      g_autofree char *where = g_file_get_parse_name (file);
      adw_tab_page_set_tooltip (page, where);
    }
}

static void
update_title (SetokWindow *self)
{
  SetokDocument *document = current_document (self);
  const char *name = setok_engine_get_model_name (self->engine);
  const char *device = setok_engine_get_device_name (self->engine);
  g_autofree char *subtitle = NULL;

  if (setok_engine_get_loading (self->engine))
    subtitle = g_strdup (_ ("Loading model…"));
  else if (name == NULL)
    subtitle = g_strdup (_ ("No model"));
  else if (device != NULL)
    subtitle = g_strdup_printf ("%s · %s", name, device);
  else
    subtitle = g_strdup (name);
  g_autofree char *title = document != NULL ? marked_title (document) : NULL;

  adw_window_title_set_title (self->window_title, title != NULL ? title : _ ("SeTok Studio"));
  adw_window_title_set_subtitle (self->window_title, subtitle);
}

static void
update_banner (SetokWindow *self)
{
  const char *error = setok_engine_get_model_error (self->engine);
  gboolean show = error != NULL && !setok_engine_get_loading (self->engine);

  if (show)
    {
      g_autofree char *text
        = setok_engine_get_has_tokens (self->engine) || setok_engine_get_has_chat (self->engine)
            ? g_strdup (error)
            : g_strdup_printf (_ ("No model is loaded. %s"), error);
      gtk_label_set_text (self->banner_label, text);
    }
  gtk_revealer_set_reveal_child (self->banner_revealer, show);
}

static void
for_each_canvas (SetokWindow *self, void (*func) (SetokWindow *self, SetokCanvas *canvas))
{
  int n = adw_tab_view_get_n_pages (self->tab_view);

  for (int i = 0; i < n; i++)
    func (self,
          SETOK_CANVAS (adw_tab_page_get_child (adw_tab_view_get_nth_page (self->tab_view, i))));
}

void
_setok_window_recompute (SetokWindow *self, SetokCanvas *canvas)
{
  SetokDocument *document = setok_canvas_get_document (canvas);

  if (!setok_engine_get_has_tokens (self->engine))
    return; /* the banner says why */
  request_tokens (self, document);
  setok_document_recompute (document);
}

static void
recompute_other_canvas (SetokWindow *self, SetokCanvas *canvas)
{
  if (canvas != current_canvas (self))
    _setok_window_recompute (self, canvas);
}

static void
engine_changed (SetokWindow *self)
{
  gboolean loading = setok_engine_get_loading (self->engine);

  gtk_spinner_set_spinning (self->busy_spinner,
                            loading || setok_engine_get_queue_length (self->engine) > 0);
  gtk_widget_set_visible (GTK_WIDGET (self->busy_spinner),
                          loading || setok_engine_get_queue_length (self->engine) > 0);
  if (self->was_loading && !loading)
    {
      /* a new model: new defaults, and every token map is out of date */
      sync_controls (self);
      if (current_canvas (self) != NULL)
        _setok_window_recompute (self, current_canvas (self));
      for_each_canvas (self, recompute_other_canvas);
    }
  self->was_loading = loading;
  update_title (self);
  update_banner (self);
  update_actions (self);
}

static void
apply_view_settings (SetokWindow *self, SetokCanvas *canvas)
{
  setok_canvas_set_overlay_opacity (canvas,
                                    g_settings_get_double (self->settings, "overlay-opacity"));
  setok_canvas_set_show_overlay (canvas, g_settings_get_boolean (self->settings, "show-overlay"));
  setok_canvas_set_show_grid (canvas, g_settings_get_boolean (self->settings, "show-grid"));
}

static void
settings_changed (SetokWindow *self, const char *key, GSettings *settings)
{
  if (g_str_equal (key, "overlay-opacity") || g_str_equal (key, "show-overlay")
      || g_str_equal (key, "show-grid"))
    for_each_canvas (self, apply_view_settings);
  else if (g_str_equal (key, "show-chat"))
    gtk_widget_set_visible (GTK_WIDGET (self->chat_stack),
                            g_settings_get_boolean (settings, "show-chat"));
}

static void
document_changed (SetokWindow *self)
{
  update_info (self);
  update_actions (self);
  update_title (self);
  sync_edit_bar (self);
}

static void
selected_page_changed (SetokWindow *self)
{
  SetokCanvas *canvas = current_canvas (self);
  SetokDocument *document = current_document (self);
  GtkWidget *chat = canvas != NULL ? g_object_get_data (G_OBJECT (canvas), CHAT_VIEW_KEY) : NULL;

  g_signal_group_set_target (self->canvas_signals, canvas);
  g_signal_group_set_target (self->document_signals, document);
  gtk_stack_set_visible_child (self->chat_stack, chat != NULL ? chat : self->chat_placeholder);
  gtk_stack_set_visible_child_name (self->main_stack, canvas != NULL ? "documents" : "empty");
  request_tokens (self, document);
  update_title (self);
  update_info (self);
  update_actions (self);
  sync_edit_bar (self);
}

// ----------------------------------------------------------------------------
// documents

SetokDocument *
_setok_window_add_document (SetokWindow *self, SetokPicture *picture, GFile *file,
                            const char *title)
{
  g_autoptr (SetokDocument) document = setok_document_new (self->engine, picture, file, title);
  GtkWidget *canvas = setok_canvas_new (document);
  GtkWidget *chat = setok_chat_view_new (self->engine, document, self->settings);
  AdwTabPage *page;

  apply_view_settings (self, SETOK_CANVAS (canvas));
  g_object_set_data (G_OBJECT (canvas), CHAT_VIEW_KEY, chat);
  gtk_stack_add_child (self->chat_stack, chat);
  g_signal_connect_object (document, "failed", G_CALLBACK (document_failed), self, 0);
  g_signal_connect_object (chat, "failed", G_CALLBACK (chat_failed), self, 0);
  g_signal_connect_object (document, "edit-failed", G_CALLBACK (edit_failed), self, 0);
  page = adw_tab_view_append (self->tab_view, canvas);
  update_page_title (document, NULL, page);
  g_signal_connect_object (document, "notify::title", G_CALLBACK (update_page_title), page, 0);
  g_signal_connect_object (document, "notify::modified", G_CALLBACK (update_page_title), page, 0);
  g_object_bind_property (document, "computing", page, "loading", G_BINDING_SYNC_CREATE);
  adw_tab_view_set_selected_page (self->tab_view, page);
  request_tokens (self, document);
  return document;
}

void
_setok_window_close_page_finish (SetokWindow *self, AdwTabPage *page, gboolean close)
{
  SetokCanvas *canvas = SETOK_CANVAS (adw_tab_page_get_child (page));
  GtkWidget *chat = g_object_get_data (G_OBJECT (canvas), CHAT_VIEW_KEY);

  if (close)
    {
      setok_document_cancel_edit (setok_canvas_get_document (canvas));
      if (chat != NULL)
        {
          setok_chat_view_stop (SETOK_CHAT_VIEW (chat));
          gtk_stack_remove (self->chat_stack, chat);
        }
    }
  adw_tab_view_close_page_finish (self->tab_view, page, close);
}

static gboolean
close_page (SetokWindow *self, AdwTabPage *page, AdwTabView *view)
{
  _setok_window_confirm_close_page (self, page);
  return GDK_EVENT_STOP;
}

void
_setok_window_set_close_confirmed (SetokWindow *self)
{
  self->close_confirmed = TRUE;
}

static gboolean
setok_window_close_request (GtkWindow *window)
{
  SetokWindow *self = SETOK_WINDOW (window);

  if (!self->close_confirmed && _setok_window_confirm_close (self))
    return TRUE; /* the question decides */
  return GTK_WINDOW_CLASS (setok_window_parent_class)->close_request (window);
}

// ----------------------------------------------------------------------------
// generate and edit

static SetokDiffusionRequest
request_from (GtkSpinButton *seed, GtkSpinButton *steps, GtkSpinButton *guidance)
{
  SetokDiffusionRequest r;

  r.seed = (guint64)gtk_spin_button_get_value (seed);
  r.steps = gtk_spin_button_get_value_as_int (steps);
  r.guidance = gtk_spin_button_get_value (guidance);
  return r;
}

static void
generate_progress (int step, int total, SetokPicture *preview, gpointer user_data)
{
  SetokWindow *self = user_data;

  if (self->generate_cancellable == NULL)
    return; /* the window is going away */
  gtk_progress_bar_set_fraction (self->generate_progress,
                                 total > 0 ? CLAMP ((double)step / total, 0.0, 1.0) : 0.0);
  if (preview != NULL)
    gtk_picture_set_paintable (self->generate_preview,
                               GDK_PAINTABLE (setok_picture_get_texture (preview)));
}

static void
generate_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (SetokWindow) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (SetokPicture) picture
    = setok_engine_generate_finish (SETOK_ENGINE (source), result, &error);

  if (self->generate_cancellable == NULL)
    return; /* disposed */
  g_clear_object (&self->generate_cancellable);
  gtk_stack_set_visible_child_name (self->generate_stack, "form");
  gtk_picture_set_paintable (self->generate_preview, NULL);
  update_actions (self);
  if (picture == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_diffusion_error (self, _ ("Could not generate the image"), error);
      return;
    }
  gtk_popover_popdown (self->generate_popover);
  {
    g_autofree char *title = self->n_generated++ == 0
                               ? g_strdup (_ ("Untitled Image"))
                               : g_strdup_printf (_ ("Untitled Image %u"), self->n_generated);
    SetokDocument *document = _setok_window_add_document (self, picture, NULL, title);

    setok_document_set_unsaved (document);
  }
}

static void
action_generate (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);
  const char *prompt = gtk_editable_get_text (GTK_EDITABLE (self->generate_entry));
  SetokDiffusionRequest request = request_from (self->generate_seed_spin, self->generate_steps_spin,
                                                self->generate_guidance_spin);

  if (self->generate_cancellable != NULL)
    return;
  if (prompt[0] == '\0')
    {
      gtk_popover_popup (self->generate_popover);
      gtk_widget_grab_focus (GTK_WIDGET (self->generate_entry));
      _setok_window_add_toast (self, adw_toast_new (_ ("Describe the picture to generate")));
      return;
    }
  self->generate_cancellable = g_cancellable_new ();
  gtk_progress_bar_set_fraction (self->generate_progress, 0);
  gtk_stack_set_visible_child_name (self->generate_stack, "running");
  update_actions (self);
  setok_engine_generate_async (self->engine, prompt, &request, generate_progress, self,
                               self->generate_cancellable, generate_done, g_object_ref (self));
}

static void
action_cancel_generate (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);

  if (self->generate_cancellable != NULL)
    g_cancellable_cancel (self->generate_cancellable);
}

static void
action_show_generate (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);

  gtk_popover_popup (self->generate_popover);
  if (self->generate_cancellable == NULL)
    gtk_widget_grab_focus (GTK_WIDGET (self->generate_entry));
}

static void
action_edit (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);
  SetokDocument *document = current_document (self);
  const char *instruction = gtk_editable_get_text (GTK_EDITABLE (self->edit_entry));
  SetokDiffusionRequest request
    = request_from (self->edit_seed_spin, self->edit_steps_spin, self->edit_guidance_spin);

  if (document == NULL)
    return;
  if (instruction[0] == '\0')
    {
      gtk_widget_grab_focus (GTK_WIDGET (self->edit_entry));
      _setok_window_add_toast (self, adw_toast_new (_ ("Describe the change first")));
      return;
    }
  if (!setok_document_edit (document, instruction, &request))
    _setok_window_add_toast (self, adw_toast_new (_ ("Select the tokens to change first")));
}

static void
action_edit_step (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokDocument *document = current_document (SETOK_WINDOW (widget));

  if (document == NULL)
    return;
  if (g_str_equal (action_name, "win.cancel-edit"))
    setok_document_cancel_edit (document);
  else if (g_str_equal (action_name, "win.apply-edit"))
    setok_document_apply_edit (document);
  else
    setok_document_discard_edit (document);
}

static void
activate_action_named (GtkWidget *widget, const char *action)
{
  gtk_widget_activate_action (widget, action, NULL);
}

static void
edit_entry_activated (SetokWindow *self)
{
  activate_action_named (GTK_WIDGET (self), "win.edit");
}

static void
generate_entry_activated (SetokWindow *self)
{
  activate_action_named (GTK_WIDGET (self), "win.generate");
}

void
_setok_window_set_edit_controls (SetokWindow *self, const char *instruction,
                                 const SetokDiffusionRequest *request)
{
  gtk_editable_set_text (GTK_EDITABLE (self->edit_entry), instruction);
  gtk_spin_button_set_value (self->edit_seed_spin, (double)request->seed);
  gtk_spin_button_set_value (self->edit_steps_spin, request->steps);
  gtk_spin_button_set_value (self->edit_guidance_spin, request->guidance);
}

void
_setok_window_set_generate_controls (SetokWindow *self, const char *prompt,
                                     const SetokDiffusionRequest *request)
{
  gtk_editable_set_text (GTK_EDITABLE (self->generate_entry), prompt);
  gtk_spin_button_set_value (self->generate_seed_spin, (double)request->seed);
  gtk_spin_button_set_value (self->generate_steps_spin, request->steps);
  gtk_spin_button_set_value (self->generate_guidance_spin, request->guidance);
}

gboolean
_setok_window_get_generating (SetokWindow *self)
{
  return self->generate_cancellable != NULL;
}

typedef struct
{
  SetokWindow *self;
  GFile *file;
} OpenData;

static void
file_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  OpenData *d = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (SetokPicture) picture = setok_picture_load_finish (result, &error);
  g_autofree char *name = g_file_get_basename (d->file);

  d->self->n_loading--;
  if (picture == NULL)
    {
      g_autofree char *title = g_strdup_printf (_ ("Could not open “%s”"), name);
      setok_window_show_error (d->self, title, error);
    }
  else
    _setok_window_add_document (d->self, picture, d->file, name);
  g_object_unref (d->self);
  g_object_unref (d->file);
  g_free (d);
}

void
setok_window_open_file (SetokWindow *self, GFile *file)
{
  OpenData *d = g_new0 (OpenData, 1);

  g_return_if_fail (SETOK_IS_WINDOW (self));
  d->self = g_object_ref (self);
  d->file = g_object_ref (file);
  self->n_loading++;
  setok_picture_load_async (file, NULL, file_loaded, d);
}

// ----------------------------------------------------------------------------
// the object

static void
setok_window_dispose (GObject *object)
{
  SetokWindow *self = SETOK_WINDOW (object);

  if (self->engine != NULL)
    g_signal_handlers_disconnect_by_data (self->engine, self);
  if (self->generate_cancellable != NULL)
    g_cancellable_cancel (self->generate_cancellable);
  g_clear_object (&self->generate_cancellable);
  gtk_widget_dispose_template (GTK_WIDGET (self), SETOK_TYPE_WINDOW);
  G_OBJECT_CLASS (setok_window_parent_class)->dispose (object);
}

static void
setok_window_finalize (GObject *object)
{
  SetokWindow *self = SETOK_WINDOW (object);

  g_clear_object (&self->canvas_signals);
  g_clear_object (&self->document_signals);
  g_clear_object (&self->engine);
  g_clear_object (&self->settings);
  g_free (self->last_error);
  G_OBJECT_CLASS (setok_window_parent_class)->finalize (object);
}

static void
setok_window_class_init (SetokWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = setok_window_dispose;
  object_class->finalize = setok_window_finalize;
  GTK_WINDOW_CLASS (klass)->close_request = setok_window_close_request;

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/setokstudio/Studio/setok-window.ui");
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, window_title);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, busy_spinner);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, banner_revealer);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, banner_label);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, main_stack);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, tab_view);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, mode_dropdown);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, threshold_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, count_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, opacity_scale);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, info_label);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, chat_stack);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, chat_placeholder);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_stack);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_entry);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_seed_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_steps_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_guidance_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_progress);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, original_toggle);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_popover);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_stack);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_entry);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_menu_button);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_button);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_seed_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_steps_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_guidance_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_preview);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_progress);

  gtk_widget_class_install_action (widget_class, "win.generate", NULL, action_generate);
  gtk_widget_class_install_action (widget_class, "win.cancel-generate", NULL,
                                   action_cancel_generate);
  gtk_widget_class_install_action (widget_class, "win.show-generate", NULL, action_show_generate);
  gtk_widget_class_install_action (widget_class, "win.edit", NULL, action_edit);
  gtk_widget_class_install_action (widget_class, "win.cancel-edit", NULL, action_edit_step);
  gtk_widget_class_install_action (widget_class, "win.apply-edit", NULL, action_edit_step);
  gtk_widget_class_install_action (widget_class, "win.discard-edit", NULL, action_edit_step);

  _setok_window_class_add_actions (widget_class);
}

static void
setok_window_init (SetokWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  _setok_window_add_drop_target (self);

  self->canvas_signals = g_signal_group_new (SETOK_TYPE_CANVAS);
  g_signal_group_connect_swapped (self->canvas_signals, "notify::hovered-token",
                                  G_CALLBACK (update_info), self);
  self->document_signals = g_signal_group_new (SETOK_TYPE_DOCUMENT);
  g_signal_group_connect_swapped (self->document_signals, "notify::token-map",
                                  G_CALLBACK (document_changed), self);
  g_signal_group_connect_swapped (self->document_signals, "notify::computing",
                                  G_CALLBACK (document_changed), self);
  g_signal_group_connect_swapped (self->document_signals, "selection-changed",
                                  G_CALLBACK (document_changed), self);
  g_signal_group_connect_swapped (self->document_signals, "notify::modified",
                                  G_CALLBACK (document_changed), self);
  g_signal_group_connect_swapped (self->document_signals, "notify::title",
                                  G_CALLBACK (document_changed), self);
  g_signal_group_connect_swapped (self->document_signals, "notify::can-undo",
                                  G_CALLBACK (document_changed), self);
  g_signal_group_connect_swapped (self->document_signals, "notify::can-redo",
                                  G_CALLBACK (document_changed), self);
  g_signal_group_connect_swapped (self->document_signals, "notify::edit-state",
                                  G_CALLBACK (document_changed), self);
  g_signal_group_connect_swapped (self->document_signals, "notify::edit-progress",
                                  G_CALLBACK (document_changed), self);
  g_signal_group_connect_swapped (self->document_signals, "notify::show-original",
                                  G_CALLBACK (document_changed), self);
  g_signal_connect_swapped (self->original_toggle, "toggled", G_CALLBACK (original_toggled), self);
  g_signal_connect_swapped (self->edit_entry, "activate", G_CALLBACK (edit_entry_activated), self);
  g_signal_connect_swapped (self->generate_entry, "activate", G_CALLBACK (generate_entry_activated),
                            self);

  g_signal_connect_swapped (self->tab_view, "notify::selected-page",
                            G_CALLBACK (selected_page_changed), self);
  g_signal_connect_swapped (self->tab_view, "close-page", G_CALLBACK (close_page), self);
  g_signal_connect_swapped (self->mode_dropdown, "notify::selected", G_CALLBACK (controls_changed),
                            self);
  g_signal_connect_swapped (self->threshold_spin, "value-changed", G_CALLBACK (controls_changed),
                            self);
  g_signal_connect_swapped (self->count_spin, "value-changed", G_CALLBACK (controls_changed), self);
}

GtkWindow *
setok_window_new (GtkApplication *application, SetokEngine *engine, GSettings *settings)
{
  SetokWindow *self = g_object_new (SETOK_TYPE_WINDOW, "application", application, NULL);
  const char *stateful[] = { "show-chat", "show-grid", "show-overlay" };

  self->engine = g_object_ref (engine);
  self->settings = g_object_ref (settings);
  for (guint i = 0; i < G_N_ELEMENTS (stateful); i++)
    {
      g_autoptr (GAction) action = g_settings_create_action (settings, stateful[i]);
      g_action_map_add_action (G_ACTION_MAP (self), action);
    }
  g_settings_bind (settings, "window-width", self, "default-width", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (settings, "window-height", self, "default-height", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (settings, "window-maximized", self, "maximized", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (settings, "overlay-opacity",
                   gtk_range_get_adjustment (GTK_RANGE (self->opacity_scale)), "value",
                   G_SETTINGS_BIND_DEFAULT);
  g_signal_connect_object (settings, "changed", G_CALLBACK (settings_changed), self,
                           G_CONNECT_SWAPPED);
  gtk_widget_set_visible (GTK_WIDGET (self->chat_stack),
                          g_settings_get_boolean (settings, "show-chat"));
  g_signal_connect_object (engine, "notify", G_CALLBACK (engine_changed), self, G_CONNECT_SWAPPED);
  self->was_loading = setok_engine_get_loading (engine);
  sync_controls (self);
  engine_changed (self);
  selected_page_changed (self);
  return GTK_WINDOW (self);
}
