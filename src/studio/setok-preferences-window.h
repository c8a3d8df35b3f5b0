/* setok-preferences-window.h — the Preferences window: the model, the
 * device, the overlay and the chat's sampling defaults, all GSettings. */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define SETOK_TYPE_PREFERENCES_WINDOW (setok_preferences_window_get_type ())

G_DECLARE_FINAL_TYPE (SetokPreferencesWindow, setok_preferences_window, SETOK, PREFERENCES_WINDOW,
                      AdwPreferencesWindow)

GtkWindow *setok_preferences_window_new (GSettings *settings, GtkWindow *parent);

/* Asks for a model folder and stores it in the setting key (model-path, or a role's). */
void setok_preferences_choose_model (GtkWindow *parent, GSettings *settings, const char *key);

G_END_DECLS
