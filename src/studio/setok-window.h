/* setok-window.h — the main window: documents in tabs, the token controls,
 * the chat panel and the model banner. */
#pragma once

#include <adwaita.h>

#include "setok-engine.h"

G_BEGIN_DECLS

#define SETOK_TYPE_WINDOW (setok_window_get_type ())

G_DECLARE_FINAL_TYPE (SetokWindow, setok_window, SETOK, WINDOW, AdwApplicationWindow)

GtkWindow *setok_window_new (GtkApplication *application, SetokEngine *engine, GSettings *settings);

/* Opens file in a new tab (in the background; errors become toasts). */
void setok_window_open_file (SetokWindow *self, GFile *file);
/* Opens the clipboard's image or image files. */
void setok_window_paste (SetokWindow *self);
/* A toast with title, and with error's message behind a Details button. */
void setok_window_show_error (SetokWindow *self, const char *title, const GError *error);

G_END_DECLS
