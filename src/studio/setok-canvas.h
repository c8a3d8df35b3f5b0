/* setok-canvas.h — the image view: the document's picture with its SeTok
 * token overlay, zoom, pan, hover and click selection. */
#pragma once

#include <gtk/gtk.h>

#include "setok-document.h"

G_BEGIN_DECLS

#define SETOK_TYPE_CANVAS (setok_canvas_get_type ())

G_DECLARE_FINAL_TYPE (SetokCanvas, setok_canvas, SETOK, CANVAS, GtkWidget)

GtkWidget *setok_canvas_new (SetokDocument *document);
SetokDocument *setok_canvas_get_document (SetokCanvas *self);

/* Widget pixels per image pixel. */
double setok_canvas_get_zoom (SetokCanvas *self);
void setok_canvas_zoom_in (SetokCanvas *self);
void setok_canvas_zoom_out (SetokCanvas *self);
/* One image pixel per device pixel (HiDPI aware). */
void setok_canvas_zoom_actual (SetokCanvas *self);
/* The whole image in view, recomputed as the widget resizes. */
void setok_canvas_zoom_fit (SetokCanvas *self);

void setok_canvas_set_overlay_opacity (SetokCanvas *self, double opacity);
void setok_canvas_set_show_overlay (SetokCanvas *self, gboolean show);
void setok_canvas_set_show_grid (SetokCanvas *self, gboolean show);
/* Only each token's outline instead of a fill. */
void setok_canvas_set_outline (SetokCanvas *self, gboolean outline);

/* The token under the pointer, or -1. */
int setok_canvas_get_hovered_token (SetokCanvas *self);
/* What the tooltip says of token (Pango markup), or NULL when there is no such token. */
char *setok_canvas_describe_token (SetokCanvas *self, int token);
/* What a click at widget point (x, y) does, with modifier state (shift adds,
 * alt removes, otherwise the token replaces the selection). */
void setok_canvas_click (SetokCanvas *self, double x, double y, GdkModifierType state);
/* Hovering at widget point (x, y); x < 0 leaves. */
void setok_canvas_hover (SetokCanvas *self, double x, double y);
/* Widget point of image pixel (ix, iy). */
void setok_canvas_image_to_widget (SetokCanvas *self, double ix, double iy, double *x, double *y);

G_END_DECLS
