/* setok-model-window.h — About This Model: what the loaded model is, what it
 * can do and why not, what it was trained on, and its card's summary and
 * headline numbers. */
#pragma once

#include <adwaita.h>

#include "setok-engine.h"

G_BEGIN_DECLS

#define SETOK_TYPE_MODEL_WINDOW (setok_model_window_get_type ())

G_DECLARE_FINAL_TYPE (SetokModelWindow, setok_model_window, SETOK, MODEL_WINDOW, AdwWindow)

GtkWindow *setok_model_window_new (SetokEngine *engine, GtkWindow *parent);

/* A metric's value as shown: a share as a percentage, milliseconds, or the number. */
char *setok_model_window_format_metric (const SetokModelMetric *metric);

G_END_DECLS
