/* setok-diffusion-settings.h — the seed, steps and guidance of a generation
 * or an edit, as three labelled spin buttons. */
#pragma once

#include <gtk/gtk.h>

#include "setok-engine.h"

G_BEGIN_DECLS

#define SETOK_TYPE_DIFFUSION_SETTINGS (setok_diffusion_settings_get_type ())

G_DECLARE_FINAL_TYPE (SetokDiffusionSettings, setok_diffusion_settings, SETOK,
                      DIFFUSION_SETTINGS, GtkWidget)

SetokDiffusionRequest setok_diffusion_settings_get_request (SetokDiffusionSettings *self);
void setok_diffusion_settings_set_request (SetokDiffusionSettings *self,
                                           const SetokDiffusionRequest *request);
guint64 setok_diffusion_settings_get_seed (SetokDiffusionSettings *self);
void setok_diffusion_settings_set_seed (SetokDiffusionSettings *self, guint64 seed);

G_END_DECLS
