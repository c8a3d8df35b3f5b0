/* setok-window-private.h — the window's internals: what its action file and
 * the GUI tests use. */
#pragma once

#include "setok-canvas.h"
#include "setok-chat-view.h"
#include "setok-token-controls.h"
#include "setok-window.h"

G_BEGIN_DECLS

/* Shared by setok-window.c and setok-window-actions.c. */
void _setok_window_class_add_actions (GtkWidgetClass *widget_class);
void _setok_window_add_drop_target (SetokWindow *self);
/* The new document (the window's tab holds it). */
SetokDocument *_setok_window_add_document (SetokWindow *self, SetokPicture *picture, GFile *file,
                                           const char *title);
/* The same, for the order-th file asked for: its tab goes before those of later ones. */
SetokDocument *_setok_window_add_document_at (SetokWindow *self, SetokPicture *picture,
                                              GFile *file, const char *title, guint order);
/* A new token map for canvas's document with the current controls. */
void _setok_window_recompute (SetokWindow *self, SetokCanvas *canvas);
SetokDocument *_setok_window_get_document (SetokWindow *self);
GSettings *_setok_window_get_settings (SetokWindow *self);
SetokEngine *_setok_window_get_engine (SetokWindow *self);
AdwTabView *_setok_window_get_tab_view (SetokWindow *self);
void _setok_window_add_toast (SetokWindow *self, AdwToast *toast);
/* Toasts shown so far and the last one's title. */
guint _setok_window_get_n_toasts (SetokWindow *self);
const char *_setok_window_get_last_toast (SetokWindow *self);
/* Where a save or export dialog starts for document: its folder, else Pictures, else home. */
GFile *_setok_window_default_folder (SetokDocument *document);

/* The current tab's widgets, or NULL without documents. */
SetokCanvas *_setok_window_get_canvas (SetokWindow *self);
SetokChatView *_setok_window_get_chat_view (SetokWindow *self);
guint _setok_window_get_n_documents (SetokWindow *self);
/* Errors shown so far and the last one's full message. */
guint _setok_window_get_n_errors (SetokWindow *self);
const char *_setok_window_get_last_error (SetokWindow *self);
/* Sets the token controls as a user would (the map follows after a pause). */
void _setok_window_set_token_controls (SetokWindow *self, setok_cluster_mode mode, double threshold,
                                       int count);
/* The banners' texts while they are shown, else NULL: the model's, and the one that
 * says the picture is unlike the model's training domain. */
const char *_setok_window_get_banner_text (SetokWindow *self);
const char *_setok_window_get_domain_text (SetokWindow *self);
/* The token controls in a row (compact FALSE) or in the popover. */
SetokTokenControls *_setok_window_get_token_controls (SetokWindow *self, gboolean compact);
GtkWidget *_setok_window_get_token_bar (SetokWindow *self);
/* The chat beside the image (unfolded) or over it (folded), and whether it shows. */
gboolean _setok_window_get_folded (SetokWindow *self);
gboolean _setok_window_get_chat_revealed (SetokWindow *self);
void _setok_window_set_chat_revealed (SetokWindow *self, gboolean reveal);
/* The pointer moved over the image (inside) or left it: the zoom controls follow. */
void _setok_window_pointer_motion (SetokWindow *self, gboolean inside);
gboolean _setok_window_get_zoom_controls_shown (SetokWindow *self);
/* The edit bar's hint while no token is selected (else NULL), and the review's question. */
const char *_setok_window_get_edit_hint (SetokWindow *self);
const char *_setok_window_get_review_text (SetokWindow *self);
guint64 _setok_window_get_edit_seed (SetokWindow *self);
GtkPopover *_setok_window_get_generate_popover (SetokWindow *self);
/* Select by Name as a user would: the phrase typed and Select clicked; whether it runs; the
 * button's tooltip (what it does, or why the model cannot). */
void _setok_window_select_by_name (SetokWindow *self, const char *phrase);
gboolean _setok_window_get_selecting_by_name (SetokWindow *self);
const char *_setok_window_get_find_tooltip (SetokWindow *self);
const char *_setok_window_get_generate_tooltip (SetokWindow *self);
/* Files still being read. */
guint _setok_window_get_n_loading (SetokWindow *self);

/* Fills in the edit bar and the Generate popover as a user would. */
void _setok_window_set_edit_controls (SetokWindow *self, const char *instruction,
                                      const SetokDiffusionRequest *request);
void _setok_window_set_generate_controls (SetokWindow *self, const char *prompt,
                                          const SetokDiffusionRequest *request);
gboolean _setok_window_get_generating (SetokWindow *self);

/* Closing: page's tab goes (close TRUE; its chat stops) or stays. */
void _setok_window_close_page_finish (SetokWindow *self, AdwTabPage *page, gboolean close);
/* The next close-request closes without asking. */
void _setok_window_set_close_confirmed (SetokWindow *self);

/* setok-window-save.c: saving and the questions about unsaved edits. */
typedef void (*SetokSavedFunc) (SetokWindow *self, gboolean saved, gpointer data);
/* Saves document to its file, or (choose_file, or no file it can write)
 * to one the user chooses; done learns whether it was saved. */
void _setok_window_save_document (SetokWindow *self, SetokDocument *document, gboolean choose_file,
                                  SetokSavedFunc done, gpointer data);
/* Closes page, asking first when its document has unsaved edits. */
void _setok_window_confirm_close_page (SetokWindow *self, AdwTabPage *page);
/* TRUE when unsaved edits make the window ask before it closes. */
gboolean _setok_window_confirm_close (SetokWindow *self);
/* The question on screen, or NULL. */
AdwMessageDialog *_setok_window_get_close_dialog (SetokWindow *self);

/* setok-window-roles.c: which folder serves each action. */
/* what, and the folder that serves role (a tooltip). */
char *_setok_window_role_tooltip (SetokWindow *self, SetokRole role, const char *what);
/* Folders refused for a role are told in toasts from now on. */
void _setok_window_watch_roles (SetokWindow *self);

G_END_DECLS
