/* token-overlay.h — drawing SeTok tokens over an image with cairo: a colour
 * per token, boundaries, and index labels. Shared by `setok tokens --overlay`
 * and the application's token view. */
#pragma once

#include <stdint.h>

#include <cairo.h>

#include "setok/error.h"
#include "setok/image.h"

/* The fill colour of token i (distinct hues by the golden angle). */
void token_overlay_colour (int index, double rgb[3]);

/* Where to put token labels: for each token, the pixel deepest inside its
 * region (farthest from any other label), so labels sit inside non-convex
 * regions. at[2 * i] = x, at[2 * i + 1] = y; -1 for tokens with no pixel. */
void token_overlay_label_points (const int32_t *labels, int width, int height, int n_tokens,
                                 int *at);

/* The translucent fill per token and the boundaries of token_overlay_draw,
 * without the labels. */
void token_overlay_draw_regions (cairo_t *cr, const int32_t *labels, int width, int height,
                                 double fill_alpha, int highlight);

/* Each token's index, white with a dark outline, centred on its label point
 * (token_overlay_label_points) in user space; size is the font size in user
 * units. */
void token_overlay_draw_index_labels (cairo_t *cr, const int *at, int n_tokens, double size);

/* Draws onto cr (user space = image pixels): a translucent fill per token
 * (fill_alpha 0..1), 1-pixel boundaries where labels change, and each token's
 * index at its label point. highlight >= 0 draws that token stronger. */
void token_overlay_draw (cairo_t *cr, const int32_t *labels, int width, int height, int n_tokens,
                         double fill_alpha, int highlight);

/* The image with the overlay drawn on it, written as PNG. */
setok_status token_overlay_write_png (const char *path, const setok_image *image,
                                      const int32_t *labels, int n_tokens, double fill_alpha,
                                      setok_error *err);
