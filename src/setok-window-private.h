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
void _setok_window_add_document (SetokWindow *self, SetokPicture *picture, GFile *file,
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
/* Files still being read. */
guint _setok_window_get_n_loading (SetokWindow *self);

G_END_DECLS
