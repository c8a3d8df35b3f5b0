/* setok-application.h — the application: settings, the engine, the model
 * choice, windows and application-wide actions. */
#pragma once

#include <adwaita.h>

#include "setok-engine.h"

G_BEGIN_DECLS

#define SETOK_APPLICATION_ID "org.setokstudio.Studio"

#define SETOK_TYPE_APPLICATION (setok_application_get_type ())

G_DECLARE_FINAL_TYPE (SetokApplication, setok_application, SETOK, APPLICATION, AdwApplication)

SetokApplication *setok_application_new (void);
/* Where the translations are: run from a build tree, the ones built there, else the
 * installed ones. */
const char *setok_application_locale_dir (void);
SetokEngine *setok_application_get_engine (SetokApplication *self);
GSettings *setok_application_get_settings (SetokApplication *self);
/* A model folder that wins over the settings (the --model option). */
void setok_application_set_model_override (SetokApplication *self, const char *path);
/* The folder the next load uses: --model, else the model-path setting, else
 * the shipped default (the source tree's when running from the build tree). */
char *setok_application_resolve_model (SetokApplication *self);
/* The setting that names role's own folder ("": the main model serves it). */
const char *setok_application_role_key (SetokRole role);

G_END_DECLS
