/* setok-window.c — the main window.
 *
 * Each open image is a tab holding a SetokCanvas; its chat panel lives in a
 * stack in the window's flap and follows the selected tab. The flap sits
 * beside the image while both fit and slides over it in narrow windows, where
 * the header also drops what the main menu offers. The token controls
 * (mode, threshold, count, opacity) appear in a row under the image when they
 * fit, else behind a button; both sets share one set of adjustments, and ask
 * the current document for a new token map, which waits for them to settle.
 * The edit bar under the canvas follows the current document's region edit;
 * the Generate popover runs the window's one generation at a time. The
 * window's other actions are in setok-window-actions.c, saving and the
 * questions before closing unsaved documents in setok-window-save.c. */
#include "setok-window.h"

#include <glib/gi18n.h>

#include "image-domain.h"
#include "setok-canvas.h"
#include "setok-chat-view.h"
#include "setok-diffusion-settings.h"
#include "setok-document.h"
#include "setok-token-controls.h"
#include "setok-window-private.h"

#define CHAT_VIEW_KEY "setok-chat-view"
#define OPEN_ORDER_KEY "setok-open-order"
#define ZOOM_CONTROLS_SECONDS 2

struct _SetokWindow
{
  AdwApplicationWindow parent_instance;

  SetokEngine *engine;
  GSettings *settings;
  GSignalGroup *document_signals;
  gboolean syncing_controls;
  gboolean was_loading;
  guint n_loading;
  guint n_errors;
  char *last_error;
  char *last_toast;
  guint n_toasts;
  guint open_requests; /* files asked for so far, to keep their tabs in that order */
  guint zoom_timeout;
  gboolean domain_dismissed;

  /* template */
  AdwWindowTitle *window_title;
  GtkWidget *history_box;
  GtkSpinner *busy_spinner;
  GtkRevealer *banner_revealer;
  GtkLabel *banner_label;
  GtkRevealer *domain_revealer;
  GtkLabel *domain_label;
  AdwToastOverlay *toast_overlay;
  AdwFlap *flap;
  GtkStack *main_stack;
  GtkOverlay *canvas_overlay;
  AdwTabView *tab_view;
  GtkRevealer *zoom_revealer;
  GtkLabel *info_label;
  GtkWidget *token_bar;
  SetokTokenControls *inline_controls;
  SetokTokenControls *compact_controls;
  GtkWidget *controls_squeezer;
  GtkMenuButton *controls_button;
  GtkPopover *controls_popover;
  GtkAdjustment *threshold_adjustment;
  GtkAdjustment *count_adjustment;
  GtkAdjustment *opacity_adjustment;
  GtkStack *chat_stack;
  GtkWidget *chat_placeholder;
  GtkStack *edit_stack;
  GtkStack *edit_entry_stack;
  GtkWidget *edit_hint;
  GtkEntry *edit_entry;
  SetokDiffusionSettings *edit_settings;
  GtkPopover *edit_settings_popover;
  GtkProgressBar *edit_progress;
  GtkLabel *review_label;
  GtkPopover *generate_popover;
  GtkStack *generate_stack;
  GtkEntry *generate_entry;
  GtkMenuButton *generate_menu_button;
  GtkMenuButton *find_button;
  GtkPopover *find_popover;
  GtkEntry *find_entry;
  GtkButton *edit_button;
  SetokDiffusionSettings *generate_settings;
  GtkPicture *generate_preview;
  GtkProgressBar *generate_progress;

  GCancellable *generate_cancellable; /* while generating */
  GCancellable *find_cancellable;     /* while selecting by name */
  guint n_generated;
  gboolean close_confirmed; /* the user chose to close despite unsaved edits */
};

G_DEFINE_FINAL_TYPE (SetokWindow, setok_window, ADW_TYPE_APPLICATION_WINDOW)

static const char *const mode_names[] = { "dpc", "soft", "fixed" };

static void update_actions (SetokWindow *self);

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

SetokEngine *
_setok_window_get_engine (SetokWindow *self)
{
  return self->engine;
}

AdwTabView *
_setok_window_get_tab_view (SetokWindow *self)
{
  return self->tab_view;
}

void
_setok_window_add_toast (SetokWindow *self, AdwToast *toast)
{
  self->n_toasts++;
  g_free (self->last_toast);
  self->last_toast = g_strdup (adw_toast_get_title (toast));
  adw_toast_overlay_add_toast (self->toast_overlay, toast);
}

guint
_setok_window_get_n_toasts (SetokWindow *self)
{
  return self->n_toasts;
}

const char *
_setok_window_get_last_toast (SetokWindow *self)
{
  return self->last_toast;
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

static const char *
revealed_text (GtkRevealer *revealer, GtkLabel *label)
{
  if (!gtk_revealer_get_reveal_child (revealer))
    return NULL;
  return gtk_label_get_text (label);
}

const char *
_setok_window_get_banner_text (SetokWindow *self)
{
  return revealed_text (self->banner_revealer, self->banner_label);
}

const char *
_setok_window_get_domain_text (SetokWindow *self)
{
  return revealed_text (self->domain_revealer, self->domain_label);
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

SetokTokenControls *
_setok_window_get_token_controls (SetokWindow *self, gboolean compact)
{
  return compact ? self->compact_controls : self->inline_controls;
}

GtkWidget *
_setok_window_get_token_bar (SetokWindow *self)
{
  return self->token_bar;
}

gboolean
_setok_window_get_folded (SetokWindow *self)
{
  return adw_flap_get_folded (self->flap);
}

gboolean
_setok_window_get_chat_revealed (SetokWindow *self)
{
  return adw_flap_get_reveal_flap (self->flap);
}

const char *
_setok_window_get_edit_hint (SetokWindow *self)
{
  if (gtk_stack_get_visible_child (self->edit_entry_stack) != self->edit_hint)
    return NULL;
  return gtk_label_get_text (GTK_LABEL (self->edit_hint));
}

const char *
_setok_window_get_review_text (SetokWindow *self)
{
  return gtk_label_get_text (self->review_label);
}

GtkPopover *
_setok_window_get_generate_popover (SetokWindow *self)
{
  return self->generate_popover;
}

gboolean
_setok_window_get_zoom_controls_shown (SetokWindow *self)
{
  return gtk_revealer_get_reveal_child (self->zoom_revealer);
}

// ----------------------------------------------------------------------------
// errors and toasts

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
  _setok_window_add_toast (self, toast);
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

static void
chat_toast (SetokChatView *chat, AdwToast *toast, SetokWindow *self)
{
  _setok_window_add_toast (self, g_object_ref (toast));
}

// ----------------------------------------------------------------------------
// token controls

static setok_cluster_params
current_params (SetokWindow *self)
{
  setok_cluster_params p = setok_engine_get_default_params (self->engine);
  int count = (int)gtk_adjustment_get_value (self->count_adjustment);

  p.mode = setok_token_controls_get_mode (self->inline_controls);
  p.threshold = (float)gtk_adjustment_get_value (self->threshold_adjustment);
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
  setok_token_controls_set_mode (self->inline_controls, m);
  gtk_adjustment_set_value (self->threshold_adjustment,
                            threshold != NULL ? g_variant_get_double (threshold) : d.threshold);
  gtk_adjustment_set_value (self->count_adjustment, count != NULL ? g_variant_get_int32 (count)
                                                    : m == SETOK_CLUSTER_FIXED ? d.fixed_k
                                                                               : d.max_clusters);
  self->syncing_controls = FALSE;
}

static void
controls_changed (SetokWindow *self)
{
  setok_cluster_mode mode = setok_token_controls_get_mode (self->inline_controls);

  if (self->syncing_controls)
    return;
  g_settings_set_string (self->settings, "cluster-mode", mode_names[mode]);
  g_settings_set_double (self->settings, "cluster-threshold",
                         gtk_adjustment_get_value (self->threshold_adjustment));
  g_settings_set_int (self->settings, "cluster-count",
                      (int)gtk_adjustment_get_value (self->count_adjustment));
  request_tokens (self, current_document (self));
}

void
_setok_window_set_token_controls (SetokWindow *self, setok_cluster_mode mode, double threshold,
                                  int count)
{
  setok_token_controls_set_mode (self->inline_controls, mode);
  gtk_adjustment_set_value (self->threshold_adjustment, threshold);
  gtk_adjustment_set_value (self->count_adjustment, count);
}

// ----------------------------------------------------------------------------
// status

static void
update_info (SetokWindow *self)
{
  SetokDocument *document = current_document (self);
  SetokTokenMap *map = document != NULL ? setok_document_get_token_map (document) : NULL;
  g_autofree char *text = NULL;

  if (document == NULL)
    text = g_strdup ("");
  else if (setok_document_get_computing (document))
    text = g_strdup (_ ("Computing tokens…"));
  else if (map != NULL)
    {
      guint selected = (guint)gtk_bitset_get_size (setok_document_get_selection (document));
      int shown = setok_token_map_count_shown (map);

      text = g_strdup_printf (ngettext ("%d token · %.0f ms", "%d tokens · %.0f ms", shown), shown,
                              map->result.timings.total_ms);
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
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->info_label), text[0] != '\0' ? text : NULL);
}

/* Sets an action's control off with the reason as its tooltip, or on with its own tooltip. */
static void
explain (GtkWidget *control, const char *why, const char *what)
{
  gtk_widget_set_tooltip_text (control, why != NULL ? why : what);
}

static void
update_actions (SetokWindow *self)
{
  SetokDocument *document = current_document (self);
  gboolean has_doc = document != NULL;
  gboolean has_map = has_doc && setok_document_get_token_map (document) != NULL;
  gboolean has_selection = has_doc && setok_document_get_has_selection (document);
  SetokEditState state = has_doc ? setok_document_get_edit_state (document) : SETOK_EDIT_IDLE;
  /* an action the model cannot do is off, and its control says why */
  const char *no_edit = setok_engine_get_unavailable_reason (self->engine, SETOK_CAP_EDIT);
  const char *no_generate = setok_engine_get_unavailable_reason (self->engine, SETOK_CAP_GENERATE);
  const char *no_tokens = setok_engine_get_unavailable_reason (self->engine, SETOK_CAP_TOKENS);
  const char *no_find
    = setok_engine_get_unavailable_reason (self->engine, SETOK_CAP_SEGMENT_PHRASE);
  gboolean loading = setok_engine_get_loading (self->engine);
  /* the actions of the other roles name the folder that does them */
  g_autofree char *edit_what
    = _setok_window_role_tooltip (self, SETOK_ROLE_EDIT, _ ("Repaint the selection as described"));
  g_autofree char *generate_what
    = _setok_window_role_tooltip (self, SETOK_ROLE_EDIT, _ ("Generate Image"));
  g_autofree char *find_what
    = _setok_window_role_tooltip (self, SETOK_ROLE_SEGMENT, _ ("Select by Name"));

  explain (GTK_WIDGET (self->edit_button), no_edit, edit_what);
  gtk_widget_set_sensitive (GTK_WIDGET (self->edit_entry), no_edit == NULL);
  gtk_widget_set_sensitive (GTK_WIDGET (self->generate_menu_button), no_generate == NULL);
  explain (GTK_WIDGET (self->generate_menu_button), no_generate, generate_what);
  /* the token controls only mean something with a model that makes tokens */
  gtk_widget_set_sensitive (GTK_WIDGET (self->inline_controls), no_tokens == NULL && !loading);
  gtk_widget_set_sensitive (GTK_WIDGET (self->controls_button), no_tokens == NULL && !loading);
  explain (GTK_WIDGET (self->controls_button), no_tokens, _ ("How the picture is cut into tokens"));
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->inline_controls), no_tokens);
  gtk_widget_set_sensitive (GTK_WIDGET (self->find_button), no_find == NULL);
  explain (GTK_WIDGET (self->find_button), no_find, find_what);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.select-by-name",
                                 has_map && no_find == NULL && state == SETOK_EDIT_IDLE
                                   && self->find_cancellable == NULL && !loading);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.show-generate", no_generate == NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.export-overlay", has_map);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.close-document", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-in", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-out", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-fit", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.zoom-actual", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.clear-selection",
                                 has_map || has_selection);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.recompute", has_doc && no_tokens == NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.about-model",
                                 setok_engine_get_card (self->engine) != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.save", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.save-as", has_doc);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.export-mask", has_selection);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.undo",
                                 has_doc && setok_document_get_can_undo (document));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.redo",
                                 has_doc && setok_document_get_can_redo (document));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.edit",
                                 has_selection && state == SETOK_EDIT_IDLE && no_edit == NULL
                                   && !loading);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.cancel-edit",
                                 has_doc && state == SETOK_EDIT_RUNNING);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.apply-edit",
                                 has_doc && state == SETOK_EDIT_REVIEW);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.discard-edit",
                                 has_doc && state == SETOK_EDIT_REVIEW);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.try-again",
                                 has_doc && state == SETOK_EDIT_REVIEW);
  {
    /* a stateful action of the window's action map, not of the widget class */
    GAction *original = g_action_map_lookup_action (G_ACTION_MAP (self), "show-original");

    if (original != NULL)
      g_simple_action_set_enabled (G_SIMPLE_ACTION (original),
                                   has_doc && state == SETOK_EDIT_REVIEW);
  }
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
  gboolean selected = document != NULL && setok_document_get_has_selection (document);

  gtk_stack_set_visible_child_name (self->edit_stack, pages[state]);
  gtk_progress_bar_set_fraction (
    self->edit_progress, document != NULL ? setok_document_get_edit_progress (document) : 0);
  /* the first thing to know about editing: it starts from a token */
  gtk_stack_set_visible_child (self->edit_entry_stack,
                               selected ? GTK_WIDGET (self->edit_entry) : self->edit_hint);
  gtk_label_set_text (GTK_LABEL (self->edit_hint),
                      setok_engine_get_segments_clicks (self->engine)
                        ? _ ("Click an object, then describe the change")
                        : _ ("Click a token, then describe the change"));
  if (state == SETOK_EDIT_REVIEW)
    {
      g_autofree char *seed
        = g_strdup_printf ("%" G_GUINT64_FORMAT, setok_document_get_edit_seed (document));
      /* Translators: the seed is the number that makes the edit the same again */
      g_autofree char *text = g_strdup_printf (_ ("Keep this edit? (seed %s)"), seed);
      gtk_label_set_text (self->review_label, text);
    }
  g_action_group_change_action_state (
    G_ACTION_GROUP (self), "show-original",
    g_variant_new_boolean (document != NULL && setok_document_get_show_original (document)));
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

/* Where the model runs, in plain words; the details are in About This Model. */
static char *
device_words (SetokEngine *engine)
{
  const SetokModelCard *card = setok_engine_get_card (engine);

  if (card == NULL)
    return NULL;
  if (card->on_gpu)
    return g_strdup_printf (_ ("Running on the GPU (%s)"), card->device_details);
  return g_strdup (_ ("Running on the CPU"));
}

static void
update_title (SetokWindow *self)
{
  SetokDocument *document = current_document (self);
  const char *name = setok_engine_get_model_name (self->engine);
  g_autofree char *device = device_words (self->engine);
  g_autofree char *subtitle = NULL;
  g_autofree char *title = document != NULL ? marked_title (document) : NULL;
  g_autofree char *window_title = NULL;

  if (setok_engine_get_loading (self->engine))
    subtitle = g_strdup (_ ("Loading model…"));
  else if (name == NULL)
    subtitle = g_strdup (_ ("No model"));
  else if (device != NULL)
    subtitle = g_strdup_printf ("%s · %s", name, device);
  else
    subtitle = g_strdup (name);
  adw_window_title_set_title (self->window_title, title != NULL ? title : _ ("SeTok Studio"));
  adw_window_title_set_subtitle (self->window_title, subtitle);
  /* what window lists and switchers show */
  window_title = title != NULL ? g_strdup_printf (_ ("%s — SeTok Studio"), title)
                               : g_strdup (_ ("SeTok Studio"));
  gtk_window_set_title (GTK_WINDOW (self), window_title);
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

/* A model that says what it was trained on, and a picture that is not of that kind: the
 * banner says so, and what to load instead. Generated pictures are the model's own. */
static void
update_domain_banner (SetokWindow *self)
{
  const SetokModelCard *card = setok_engine_get_card (self->engine);
  SetokDocument *document = current_document (self);
  gboolean show = FALSE;

  if (card != NULL && card->domain_kind != NULL && document != NULL && !self->domain_dismissed
      && !setok_engine_get_loading (self->engine) && !setok_document_get_generated (document))
    show = image_domain_check (card->domain_kind,
                               setok_picture_get_image (setok_document_get_picture (document)))
           == IMAGE_DOMAIN_OUTSIDE;
  if (show)
    {
      const char *trained = card->domain_description != NULL
                              ? card->domain_description
                              : card->domain_kind;
      g_autofree char *text = g_strdup_printf (
        _ ("This picture is unlike what the model learned from, so its tokens and answers will "
           "not mean much. It was trained on: %s%s%s"),
        trained, card->domain_suggest != NULL ? " " : "",
        card->domain_suggest != NULL ? card->domain_suggest : "");
      gtk_label_set_text (self->domain_label, text);
    }
  gtk_revealer_set_reveal_child (self->domain_revealer, show);
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
recompute_all (SetokWindow *self)
{
  if (current_canvas (self) != NULL)
    _setok_window_recompute (self, current_canvas (self));
  for_each_canvas (self, recompute_other_canvas);
}

static void
engine_changed (SetokWindow *self)
{
  gboolean loading = setok_engine_get_loading (self->engine);
  gboolean busy = loading || setok_engine_get_queue_length (self->engine) > 0;

  gtk_spinner_set_spinning (self->busy_spinner, busy);
  gtk_widget_set_visible (GTK_WIDGET (self->busy_spinner), busy);
  if (self->was_loading && !loading)
    {
      /* a new model: new defaults, and every token map is out of date */
      sync_controls (self);
      self->domain_dismissed = FALSE;
      recompute_all (self);
    }
  self->was_loading = loading;
  update_title (self);
  update_banner (self);
  update_domain_banner (self);
  update_actions (self);
}

static void
apply_view_settings (SetokWindow *self, SetokCanvas *canvas)
{
  setok_canvas_set_overlay_opacity (canvas,
                                    g_settings_get_double (self->settings, "overlay-opacity"));
  setok_canvas_set_show_overlay (canvas, g_settings_get_boolean (self->settings, "show-overlay"));
  setok_canvas_set_show_grid (canvas, g_settings_get_boolean (self->settings, "show-grid"));
  setok_canvas_set_outline (canvas, g_settings_get_boolean (self->settings, "overlay-outline"));
}

static setok_image_fit
settings_fit (GSettings *settings)
{
  g_autofree char *fit = g_settings_get_string (settings, "image-fit");
  setok_image_fit f = setok_image_fit_from_name (fit);

  return f < SETOK_IMAGE_FIT_COUNT ? f : SETOK_IMAGE_FIT_PAD;
}

static void
settings_changed (SetokWindow *self, const char *key, GSettings *settings)
{
  if (g_str_equal (key, "overlay-opacity") || g_str_equal (key, "show-overlay")
      || g_str_equal (key, "show-grid") || g_str_equal (key, "overlay-outline"))
    for_each_canvas (self, apply_view_settings);
  else if (g_str_equal (key, "show-chat") && !adw_flap_get_folded (self->flap))
    adw_flap_set_reveal_flap (self->flap, g_settings_get_boolean (settings, "show-chat"));
  else if (g_str_equal (key, "image-fit") && setok_engine_get_image_fit (self->engine)
                                               != settings_fit (settings))
    {
      /* every map was made from the image fitted the other way */
      setok_engine_set_image_fit (self->engine, settings_fit (settings));
      recompute_all (self);
    }
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
document_picture_changed (SetokWindow *self)
{
  update_domain_banner (self);
}

static void
selected_page_changed (SetokWindow *self)
{
  SetokCanvas *canvas = current_canvas (self);
  SetokDocument *document = current_document (self);
  GtkWidget *chat = canvas != NULL ? g_object_get_data (G_OBJECT (canvas), CHAT_VIEW_KEY) : NULL;

  g_signal_group_set_target (self->document_signals, document);
  gtk_stack_set_visible_child (self->chat_stack, chat != NULL ? chat : self->chat_placeholder);
  gtk_stack_set_visible_child_name (self->main_stack, canvas != NULL ? "documents" : "empty");
  request_tokens (self, document);
  update_title (self);
  update_info (self);
  update_actions (self);
  update_domain_banner (self);
  sync_edit_bar (self);
}

// ----------------------------------------------------------------------------
// the layout: the chat beside or over the image, zoom controls while the pointer moves

static void
show_chat_changed (GSimpleAction *action, GVariant *state, gpointer user_data)
{
  SetokWindow *self = user_data;
  gboolean show = g_variant_get_boolean (state);

  g_simple_action_set_state (action, state);
  if (adw_flap_get_reveal_flap (self->flap) != show)
    adw_flap_set_reveal_flap (self->flap, show);
  /* a narrow window opens the chat for a moment; the setting is the wide window's */
  if (!adw_flap_get_folded (self->flap))
    g_settings_set_boolean (self->settings, "show-chat", show);
}

static void
flap_changed (SetokWindow *self)
{
  gboolean folded = adw_flap_get_folded (self->flap);
  GAction *action = g_action_map_lookup_action (G_ACTION_MAP (self), "show-chat");

  gtk_widget_set_visible (self->history_box, !folded);
  if (action != NULL)
    g_simple_action_set_state (G_SIMPLE_ACTION (action),
                               g_variant_new_boolean (adw_flap_get_reveal_flap (self->flap)));
}

static void
flap_folded (SetokWindow *self)
{
  /* folded, the image comes first; unfolded, the chat is where the user left it */
  adw_flap_set_reveal_flap (self->flap,
                            !adw_flap_get_folded (self->flap)
                              && g_settings_get_boolean (self->settings, "show-chat"));
  flap_changed (self);
}

void
_setok_window_set_chat_revealed (SetokWindow *self, gboolean reveal)
{
  g_action_group_change_action_state (G_ACTION_GROUP (self), "show-chat",
                                      g_variant_new_boolean (reveal));
}

static gboolean
hide_zoom_controls (gpointer user_data)
{
  SetokWindow *self = user_data;

  self->zoom_timeout = 0;
  gtk_revealer_set_reveal_child (self->zoom_revealer, FALSE);
  return G_SOURCE_REMOVE;
}

static void
canvas_pointer_moved (SetokWindow *self)
{
  gtk_revealer_set_reveal_child (self->zoom_revealer, TRUE);
  g_clear_handle_id (&self->zoom_timeout, g_source_remove);
  self->zoom_timeout = g_timeout_add_seconds (ZOOM_CONTROLS_SECONDS, hide_zoom_controls, self);
}

static void
canvas_pointer_left (SetokWindow *self)
{
  g_clear_handle_id (&self->zoom_timeout, g_source_remove);
  gtk_revealer_set_reveal_child (self->zoom_revealer, FALSE);
}

void
_setok_window_pointer_motion (SetokWindow *self, gboolean inside)
{
  if (inside)
    canvas_pointer_moved (self);
  else
    canvas_pointer_left (self);
}

/* A popover has its own keyboard focus, so the application's shortcuts are added to it. */
static void
add_app_shortcuts (SetokWindow *self, GtkPopover *popover)
{
  GtkApplication *app = gtk_window_get_application (GTK_WINDOW (self));
  GtkEventController *controller;
  g_auto (GStrv) actions = NULL;

  if (app == NULL)
    return;
  controller = gtk_shortcut_controller_new ();
  gtk_shortcut_controller_set_scope (GTK_SHORTCUT_CONTROLLER (controller),
                                     GTK_SHORTCUT_SCOPE_LOCAL);
  actions = gtk_application_list_action_descriptions (app);
  for (guint i = 0; actions[i] != NULL; i++)
    {
      g_autofree char *name = NULL;
      g_autoptr (GVariant) target = NULL;
      g_auto (GStrv) accels = gtk_application_get_accels_for_action (app, actions[i]);

      if (!g_action_parse_detailed_name (actions[i], &name, &target, NULL))
        continue;
      for (guint a = 0; accels[a] != NULL; a++)
        {
          GtkShortcutAction *action = gtk_named_action_new (name);
          GtkShortcut *shortcut
            = gtk_shortcut_new (gtk_shortcut_trigger_parse_string (accels[a]), action);

          if (target != NULL)
            gtk_shortcut_set_arguments (shortcut, target);
          gtk_shortcut_controller_add_shortcut (GTK_SHORTCUT_CONTROLLER (controller), shortcut);
        }
    }
  gtk_widget_add_controller (GTK_WIDGET (popover), controller);
}

// ----------------------------------------------------------------------------
// documents

static int
open_order (AdwTabPage *page)
{
  return GPOINTER_TO_INT (
    g_object_get_data (G_OBJECT (adw_tab_page_get_child (page)), OPEN_ORDER_KEY));
}

SetokDocument *
_setok_window_add_document_at (SetokWindow *self, SetokPicture *picture, GFile *file,
                               const char *title, guint order)
{
  g_autoptr (SetokDocument) document = setok_document_new (self->engine, picture, file, title);
  GtkWidget *canvas = setok_canvas_new (document);
  GtkWidget *chat = setok_chat_view_new (self->engine, document, self->settings);
  AdwTabPage *page;
  int position = adw_tab_view_get_n_pages (self->tab_view);

  /* files asked for together open in the order they were asked for, however fast each loads */
  if (order > 0)
    while (position > 0
           && open_order (adw_tab_view_get_nth_page (self->tab_view, position - 1)) > (int)order)
      position--;
  apply_view_settings (self, SETOK_CANVAS (canvas));
  g_object_set_data (G_OBJECT (canvas), CHAT_VIEW_KEY, chat);
  g_object_set_data (G_OBJECT (canvas), OPEN_ORDER_KEY, GUINT_TO_POINTER (order));
  gtk_stack_add_child (self->chat_stack, chat);
  g_signal_connect_object (document, "failed", G_CALLBACK (document_failed), self, 0);
  g_signal_connect_object (chat, "failed", G_CALLBACK (chat_failed), self, 0);
  g_signal_connect_object (chat, "toast", G_CALLBACK (chat_toast), self, 0);
  g_signal_connect_object (document, "edit-failed", G_CALLBACK (edit_failed), self, 0);
  page = adw_tab_view_insert (self->tab_view, canvas, position);
  update_page_title (document, NULL, page);
  g_signal_connect_object (document, "notify::title", G_CALLBACK (update_page_title), page, 0);
  g_signal_connect_object (document, "notify::modified", G_CALLBACK (update_page_title), page, 0);
  g_object_bind_property (document, "computing", page, "loading", G_BINDING_SYNC_CREATE);
  adw_tab_view_set_selected_page (self->tab_view, page);
  request_tokens (self, document);
  return document;
}

SetokDocument *
_setok_window_add_document (SetokWindow *self, SetokPicture *picture, GFile *file,
                            const char *title)
{
  return _setok_window_add_document_at (self, picture, file, title, 0);
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
    setok_document_set_generated (document);
    update_domain_banner (self);
  }
}

static void
action_generate (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);
  const char *prompt = gtk_editable_get_text (GTK_EDITABLE (self->generate_entry));
  SetokDiffusionRequest request = setok_diffusion_settings_get_request (self->generate_settings);

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
  SetokDiffusionRequest request = setok_diffusion_settings_get_request (self->edit_settings);

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

/* The same edit of the same region again with the next seed, which the settings then show. */
static void
action_try_again (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);
  SetokDocument *document = current_document (self);
  guint64 seed;

  if (document == NULL || setok_document_get_edit_state (document) != SETOK_EDIT_REVIEW)
    return;
  seed = setok_document_get_edit_seed (document) + 1;
  setok_diffusion_settings_set_seed (self->edit_settings, seed);
  setok_document_try_again (document, seed);
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
show_original_changed (GSimpleAction *action, GVariant *state, gpointer user_data)
{
  SetokDocument *document = current_document (SETOK_WINDOW (user_data));

  g_simple_action_set_state (action, state);
  if (document != NULL)
    setok_document_set_show_original (document, g_variant_get_boolean (state));
}

typedef struct
{
  SetokWindow *self;
  SetokDocument *document;
} FindData;

static void
find_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  FindData *d = user_data;
  SetokWindow *self = d->self;
  g_autoptr (GError) error = NULL;
  g_autoptr (SetokPicture) mask
    = setok_engine_segment_finish (SETOK_ENGINE (source), result, &error);

  if (self->find_cancellable == NULL)
    goto out; /* the window went away */
  g_clear_object (&self->find_cancellable);
  if (mask == NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    setok_window_show_error (self, _ ("Could not select by name"), error);
  else if (mask != NULL && setok_document_select_mask (d->document, mask) == 0)
    _setok_window_add_toast (self, adw_toast_new (_ ("The model found nothing by that name")));
  else if (mask != NULL)
    gtk_popover_popdown (self->find_popover);
  update_actions (self);
out:
  g_object_unref (d->document);
  g_object_unref (d->self);
  g_free (d);
}

/* The model's mask decoder finds what the words name; its tokens become the selection. */
static void
action_select_by_name (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);
  SetokDocument *document = current_document (self);
  g_autofree char *phrase
    = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->find_entry))));
  FindData *d;

  if (document == NULL || self->find_cancellable != NULL)
    return;
  if (phrase[0] == '\0')
    {
      gtk_popover_popup (self->find_popover);
      gtk_widget_grab_focus (GTK_WIDGET (self->find_entry));
      return;
    }
  d = g_new0 (FindData, 1);
  d->self = g_object_ref (self);
  d->document = g_object_ref (document);
  self->find_cancellable = g_cancellable_new ();
  update_actions (self);
  setok_engine_segment_async (self->engine, setok_document_get_picture (document), phrase, NULL, 0,
                              self->find_cancellable, find_done, d);
}

void
_setok_window_select_by_name (SetokWindow *self, const char *phrase)
{
  gtk_editable_set_text (GTK_EDITABLE (self->find_entry), phrase);
  gtk_widget_activate_action (GTK_WIDGET (self), "win.select-by-name", NULL);
}

gboolean
_setok_window_get_selecting_by_name (SetokWindow *self)
{
  return self->find_cancellable != NULL;
}

const char *
_setok_window_get_find_tooltip (SetokWindow *self)
{
  return gtk_widget_get_tooltip_text (GTK_WIDGET (self->find_button));
}

static void
action_dismiss_domain (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);

  self->domain_dismissed = TRUE;
  update_domain_banner (self);
}

static void
edit_entry_activated (SetokWindow *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self), "win.edit", NULL);
}

static void
generate_entry_activated (SetokWindow *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self), "win.generate", NULL);
}

static void
find_entry_activated (SetokWindow *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self), "win.select-by-name", NULL);
}

void
_setok_window_set_edit_controls (SetokWindow *self, const char *instruction,
                                 const SetokDiffusionRequest *request)
{
  gtk_editable_set_text (GTK_EDITABLE (self->edit_entry), instruction);
  setok_diffusion_settings_set_request (self->edit_settings, request);
}

guint64
_setok_window_get_edit_seed (SetokWindow *self)
{
  return setok_diffusion_settings_get_seed (self->edit_settings);
}

void
_setok_window_set_generate_controls (SetokWindow *self, const char *prompt,
                                     const SetokDiffusionRequest *request)
{
  gtk_editable_set_text (GTK_EDITABLE (self->generate_entry), prompt);
  setok_diffusion_settings_set_request (self->generate_settings, request);
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
  guint order;
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
    _setok_window_add_document_at (d->self, picture, d->file, name, d->order);
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
  d->order = ++self->open_requests;
  self->n_loading++;
  setok_picture_load_async (file, NULL, file_loaded, d);
}

// ----------------------------------------------------------------------------
// the object

static void
setok_window_realize (GtkWidget *widget)
{
  SetokWindow *self = SETOK_WINDOW (widget);

  GTK_WIDGET_CLASS (setok_window_parent_class)->realize (widget);
  /* the application's accelerators are known once the window has its application */
  add_app_shortcuts (self, self->generate_popover);
  add_app_shortcuts (self, self->edit_settings_popover);
  add_app_shortcuts (self, self->controls_popover);
  add_app_shortcuts (self, self->find_popover);
}

static void
setok_window_dispose (GObject *object)
{
  SetokWindow *self = SETOK_WINDOW (object);

  if (self->engine != NULL)
    g_signal_handlers_disconnect_by_data (self->engine, self);
  if (self->generate_cancellable != NULL)
    g_cancellable_cancel (self->generate_cancellable);
  g_clear_object (&self->generate_cancellable);
  if (self->find_cancellable != NULL)
    g_cancellable_cancel (self->find_cancellable);
  g_clear_object (&self->find_cancellable);
  g_clear_handle_id (&self->zoom_timeout, g_source_remove);
  gtk_widget_dispose_template (GTK_WIDGET (self), SETOK_TYPE_WINDOW);
  G_OBJECT_CLASS (setok_window_parent_class)->dispose (object);
}

static void
setok_window_finalize (GObject *object)
{
  SetokWindow *self = SETOK_WINDOW (object);

  g_clear_object (&self->document_signals);
  g_clear_object (&self->engine);
  g_clear_object (&self->settings);
  g_free (self->last_error);
  g_free (self->last_toast);
  G_OBJECT_CLASS (setok_window_parent_class)->finalize (object);
}

static void
setok_window_class_init (SetokWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = setok_window_dispose;
  object_class->finalize = setok_window_finalize;
  widget_class->realize = setok_window_realize;
  GTK_WINDOW_CLASS (klass)->close_request = setok_window_close_request;

  g_type_ensure (SETOK_TYPE_DIFFUSION_SETTINGS);
  g_type_ensure (SETOK_TYPE_TOKEN_CONTROLS);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/setokstudio/Studio/setok-window.ui");
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, window_title);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, history_box);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, busy_spinner);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, banner_revealer);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, banner_label);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, domain_revealer);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, domain_label);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, flap);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, main_stack);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, canvas_overlay);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, tab_view);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, zoom_revealer);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, info_label);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, token_bar);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, inline_controls);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, compact_controls);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, controls_squeezer);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, controls_button);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, controls_popover);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, threshold_adjustment);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, count_adjustment);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, opacity_adjustment);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, chat_stack);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, chat_placeholder);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_stack);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_entry_stack);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_hint);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_entry);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_settings);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_settings_popover);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_progress);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, review_label);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_popover);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_stack);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_entry);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_menu_button);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, find_button);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, find_popover);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, find_entry);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, edit_button);
  gtk_widget_class_bind_template_child (widget_class, SetokWindow, generate_settings);
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
  gtk_widget_class_install_action (widget_class, "win.try-again", NULL, action_try_again);
  gtk_widget_class_install_action (widget_class, "win.dismiss-domain", NULL,
                                   action_dismiss_domain);
  gtk_widget_class_install_action (widget_class, "win.select-by-name", NULL,
                                   action_select_by_name);

  _setok_window_class_add_actions (widget_class);
}

static void
setok_window_init (SetokWindow *self)
{
  static const GActionEntry entries[] = {
    { "show-chat", NULL, NULL, "true", show_chat_changed, { 0 } },
    { "show-original", NULL, NULL, "false", show_original_changed, { 0 } },
  };
  GtkEventController *motion = gtk_event_controller_motion_new ();

  gtk_widget_init_template (GTK_WIDGET (self));
  g_action_map_add_action_entries (G_ACTION_MAP (self), entries, G_N_ELEMENTS (entries), self);
  _setok_window_add_drop_target (self);

  self->document_signals = g_signal_group_new (SETOK_TYPE_DOCUMENT);
  {
    static const char *const notifications[]
      = { "notify::token-map",  "notify::computing",  "selection-changed",
          "notify::modified",   "notify::title",      "notify::can-undo",
          "notify::can-redo",   "notify::edit-state", "notify::edit-progress",
          "notify::show-original" };

    for (guint i = 0; i < G_N_ELEMENTS (notifications); i++)
      g_signal_group_connect_swapped (self->document_signals, notifications[i],
                                      G_CALLBACK (document_changed), self);
  }
  g_signal_group_connect_swapped (self->document_signals, "notify::picture",
                                  G_CALLBACK (document_picture_changed), self);
  g_signal_connect_swapped (self->edit_entry, "activate", G_CALLBACK (edit_entry_activated), self);
  g_signal_connect_swapped (self->generate_entry, "activate", G_CALLBACK (generate_entry_activated),
                            self);
  g_signal_connect_swapped (self->find_entry, "activate", G_CALLBACK (find_entry_activated), self);

  g_signal_connect_swapped (self->tab_view, "notify::selected-page",
                            G_CALLBACK (selected_page_changed), self);
  g_signal_connect_swapped (self->tab_view, "close-page", G_CALLBACK (close_page), self);
  g_object_bind_property (self->inline_controls, "mode", self->compact_controls, "mode",
                          G_BINDING_BIDIRECTIONAL | G_BINDING_SYNC_CREATE);
  g_signal_connect_swapped (self->inline_controls, "notify::mode", G_CALLBACK (controls_changed),
                            self);
  g_signal_connect_swapped (self->threshold_adjustment, "value-changed",
                            G_CALLBACK (controls_changed), self);
  g_signal_connect_swapped (self->count_adjustment, "value-changed", G_CALLBACK (controls_changed),
                            self);
  g_signal_connect_swapped (self->flap, "notify::folded", G_CALLBACK (flap_folded), self);
  g_signal_connect_swapped (self->flap, "notify::reveal-flap", G_CALLBACK (flap_changed), self);

  g_signal_connect_swapped (motion, "motion", G_CALLBACK (canvas_pointer_moved), self);
  g_signal_connect_swapped (motion, "leave", G_CALLBACK (canvas_pointer_left), self);
  gtk_widget_add_controller (GTK_WIDGET (self->canvas_overlay), motion);
}

GtkWindow *
setok_window_new (GtkApplication *application, SetokEngine *engine, GSettings *settings)
{
  SetokWindow *self = g_object_new (SETOK_TYPE_WINDOW, "application", application, NULL);
  const char *stateful[] = { "show-grid", "show-overlay", "overlay-outline" };

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
  g_settings_bind (settings, "overlay-opacity", self->opacity_adjustment, "value",
                   G_SETTINGS_BIND_DEFAULT);
  g_signal_connect_object (settings, "changed", G_CALLBACK (settings_changed), self,
                           G_CONNECT_SWAPPED);
  setok_engine_set_image_fit (engine, settings_fit (settings));
  flap_folded (self);
  g_signal_connect_object (engine, "notify", G_CALLBACK (engine_changed), self, G_CONNECT_SWAPPED);
  _setok_window_watch_roles (self);
  self->was_loading = setok_engine_get_loading (engine);
  sync_controls (self);
  engine_changed (self);
  selected_page_changed (self);
  return GTK_WINDOW (self);
}
