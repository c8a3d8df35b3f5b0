/* token-overlay.h — drawing SeTok tokens over an image with cairo: a colour
 * per token (kept by a token across recomputes when the caller matches them),
 * filled or outlined regions, and a number on every connected piece of a
 * token, placed so that no two numbers overlap at the scale they are drawn.
 * Shared by `setok tokens --overlay` and the application's token view. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <cairo.h>

#include "setok/error.h"
#include "setok/image.h"

typedef enum
{
  TOKEN_OVERLAY_FILL,    /* a translucent fill per token and light boundaries */
  TOKEN_OVERLAY_OUTLINE, /* each token's boundary in its colour, no fill: the image stays true */
} token_overlay_style;

/* The default fill opacity: light enough that the objects keep their colours. */
#define TOKEN_OVERLAY_DEFAULT_ALPHA 0.2

/* Palette entry c (distinct hues by the golden angle). */
void token_overlay_colour (int c, double rgb[3]);

/* Colours for a new token map (new_labels, new_n tokens) that follow the old
 * one's (old_labels with old_colours, old_n tokens; both n_pixels long): new
 * tokens take the colour of the old token they overlap most, largest
 * overlaps first, each colour once; the rest take the lowest free entries.
 * old_labels NULL: new_colours[t] = t. FALSE when out of memory (new_colours
 * are then t). */
bool token_overlay_match_colours (const int32_t *old_labels, const int *old_colours, int old_n,
                                  const int32_t *new_labels, int new_n, int64_t n_pixels,
                                  int *new_colours);

/* One 4-connected piece of a token's pixels and where its number goes: the
 * pixel deepest inside it (farthest from other labels and the border). */
typedef struct
{
  int token;
  int x, y;
  int64_t area;
  bool primary; /* the token's largest piece */
} token_overlay_piece;

/* Every piece of every token of labels ([height * width], -1: none), the
 * tokens' largest pieces first (by area), then the others by area. The
 * number of pieces, or -1 when out of memory; free *out with free(). */
int token_overlay_find_pieces (const int32_t *labels, int width, int height, int n_tokens,
                               token_overlay_piece **out);

/* Draws the regions onto cr (user space = image pixels). colours[t] is token
 * t's palette entry (NULL: t). FILL: fill_alpha 0..1 per token (0: the
 * boundaries alone); OUTLINE: boundaries two pixels wide in the token's
 * colour. */
void token_overlay_draw_regions (cairo_t *cr, const int32_t *labels, int width, int height,
                                 const int *colours, token_overlay_style style, double fill_alpha);

/* Draws the pieces' numbers in device space, image pixel (x, y) at
 * (off_x + scale * x, off_y + scale * y), font_px pixels high, white with a
 * dark outline: in the pieces' order, each where it does not overlap a
 * number already drawn; a piece other than its token's largest gets one only
 * when its number fits inside its area. Returns how many were drawn; boxes
 * (may be NULL) gets, per piece, the box its number took [x0, y0, x1, y1],
 * or zeros when it got none. */
int token_overlay_draw_labels (cairo_t *cr, const token_overlay_piece *pieces, int n_pieces,
                               double scale, double off_x, double off_y, double font_px,
                               double *boxes);

/* The image with the overlay drawn on it (regions and numbers), written as PNG. */
setok_status token_overlay_write_png (const char *path, const setok_image *image,
                                      const int32_t *labels, int n_tokens, const int *colours,
                                      token_overlay_style style, double fill_alpha,
                                      setok_error *err);
