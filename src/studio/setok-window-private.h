/* setok-window-private.h — the window's internals: what its action file and
 * the GUI tests use. */
#pragma once

#include "setok-canvas.h"
#include "setok-chat-view.h"
#include "setok-window.h"

G_BEGIN_DECLS

/* Shared by setok-window.c and setok-window-actions.c. */
void _setok_window_class_add_actions (GtkWidgetClass *widget_class);
void _setok_window_add_drop_target (SetokWindow *self);
/* The new document (the window's tab holds it). */
SetokDocument *_setok_window_add_document (SetokWindow *self, SetokPicture *picture, GFile *file,
                                           const char *title);
/* A new token map for canvas's document with the current controls. */
void _setok_window_recompute (SetokWindow *self, SetokCanvas *canvas);
SetokDocument *_setok_window_get_document (SetokWindow *self);
GSettings *_setok_window_get_settings (SetokWindow *self);
AdwTabView *_setok_window_get_tab_view (SetokWindow *self);
void _setok_window_add_toast (SetokWindow *self, AdwToast *toast);

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
/* The banner's text while it is shown, else NULL. */
const char *_setok_window_get_banner_text (SetokWindow *self);
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

G_END_DECLS
