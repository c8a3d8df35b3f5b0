/* setok-token-controls.h — how the image is cut into tokens (the clustering
 * mode, threshold and token count) and how strongly they are drawn. The
 * window holds two, in a row under the image and in a popover for narrow
 * windows; they share their adjustments and their mode. */
#pragma once

#include <gtk/gtk.h>

#include "setok/models/setok.h"

G_BEGIN_DECLS

#define SETOK_TYPE_TOKEN_CONTROLS (setok_token_controls_get_type ())

G_DECLARE_FINAL_TYPE (SetokTokenControls, setok_token_controls, SETOK, TOKEN_CONTROLS, GtkWidget)

setok_cluster_mode setok_token_controls_get_mode (SetokTokenControls *self);
void setok_token_controls_set_mode (SetokTokenControls *self, setok_cluster_mode mode);
/* What the count spin button is labelled with now ("At most" or "Tokens"). */
const char *setok_token_controls_get_count_label (SetokTokenControls *self);

G_END_DECLS
