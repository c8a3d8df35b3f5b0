/* token-overlay.c — SeTok token overlays drawn with cairo (token-overlay.h). */
#include "token-overlay.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "setok/file.h"

void
token_overlay_colour (int c, double rgb[3])
{
  /* golden-angle hue steps keep neighbouring entries far apart; two
   * saturation/value rings double the number of clearly distinct colours */
  double h = fmod (fabs ((double)c) * 137.50776405, 360.0) / 60.0;
  double s = c % 2 ? 0.55 : 0.85, v = c % 4 >= 2 ? 0.80 : 0.98;
  double chroma = v * s, x = chroma * (1.0 - fabs (fmod (h, 2.0) - 1.0)), m = v - chroma;
  double r = 0, g = 0, b = 0;
  switch ((int)h)
    {
      case 0:
        r = chroma, g = x;
        break;
      case 1:
        r = x, g = chroma;
        break;
      case 2:
        g = chroma, b = x;
        break;
      case 3:
        g = x, b = chroma;
        break;
      case 4:
        r = x, b = chroma;
        break;
      default:
        r = chroma, b = x;
        break;
    }
  rgb[0] = r + m;
  rgb[1] = g + m;
  rgb[2] = b + m;
}

// ----------------------------------------------------------------------------
// colours that stay with a token

typedef struct
{
  int64_t overlap;
  int old_token, new_token;
} pair;

static int
by_overlap (const void *a, const void *b)
{
  const pair *p = a, *q = b;
  if (p->overlap != q->overlap)
    return p->overlap < q->overlap ? 1 : -1;
  if (p->new_token != q->new_token)
    return p->new_token - q->new_token;
  return p->old_token - q->old_token;
}

bool
token_overlay_match_colours (const int32_t *old_labels, const int *old_colours, int old_n,
                             const int32_t *new_labels, int new_n, int64_t n_pixels,
                             int *new_colours)
{
  for (int t = 0; t < new_n; t++)
    new_colours[t] = t;
  if (!old_labels || !old_colours || old_n <= 0 || new_n <= 0)
    return true;
  int64_t *count = calloc ((size_t)old_n * (size_t)new_n, sizeof *count);
  pair *pairs = malloc ((size_t)old_n * (size_t)new_n * sizeof *pairs);
  /* colours are palette entries: the largest taken bounds the table of used ones */
  int max_colour = new_n;
  for (int t = 0; t < old_n; t++)
    max_colour = old_colours[t] > max_colour ? old_colours[t] : max_colour;
  bool *used = calloc ((size_t)max_colour + 1 + (size_t)new_n, sizeof *used);
  bool *done = calloc ((size_t)new_n, sizeof *done);
  if (!count || !pairs || !used || !done)
    {
      free (count);
      free (pairs);
      free (used);
      free (done);
      return false;
    }
  for (int64_t p = 0; p < n_pixels; p++)
    {
      int32_t a = old_labels[p], b = new_labels[p];
      if (a >= 0 && a < old_n && b >= 0 && b < new_n)
        count[(size_t)a * new_n + b]++;
    }
  int n_pairs = 0;
  for (int a = 0; a < old_n; a++)
    for (int b = 0; b < new_n; b++)
      if (count[(size_t)a * new_n + b] > 0)
        pairs[n_pairs++] = (pair){ count[(size_t)a * new_n + b], a, b };
  qsort (pairs, (size_t)n_pairs, sizeof *pairs, by_overlap);
  for (int i = 0; i < n_pairs; i++)
    {
      int c = old_colours[pairs[i].old_token];
      if (done[pairs[i].new_token] || c < 0 || used[c])
        continue;
      new_colours[pairs[i].new_token] = c;
      done[pairs[i].new_token] = used[c] = true;
    }
  int next = 0;
  for (int t = 0; t < new_n; t++)
    if (!done[t])
      {
        while (used[next])
          next++;
        new_colours[t] = next;
        used[next] = true;
      }
  free (count);
  free (pairs);
  free (used);
  free (done);
  return true;
}

// ----------------------------------------------------------------------------
// connected pieces and where their numbers go

static int32_t
find_root (int32_t *parent, int32_t i)
{
  while (parent[i] != i)
    {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
  return i;
}

static int
piece_order (const void *a, const void *b)
{
  const token_overlay_piece *p = a, *q = b;
  if (p->primary != q->primary)
    return p->primary ? -1 : 1;
  if (p->area != q->area)
    return p->area < q->area ? 1 : -1;
  return p->token - q->token;
}

/* dist[p]: city-block distance from p to the nearest pixel of another label
 * or the image border (1 on the boundary), two passes. */
static void
distance_inside (uint16_t *dist, const int32_t *labels, int width, int height)
{
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      {
        int64_t p = (int64_t)y * width + x;
        int32_t l = labels[p];
        int d = 1;
        if (x > 0 && y > 0 && labels[p - 1] == l && labels[p - width] == l)
          d = (dist[p - 1] < dist[p - width] ? dist[p - 1] : dist[p - width]) + 1;
        dist[p] = (uint16_t)(d < 65535 ? d : 65535);
      }
  for (int y = height - 1; y >= 0; y--)
    for (int x = width - 1; x >= 0; x--)
      {
        int64_t p = (int64_t)y * width + x;
        int32_t l = labels[p];
        int right = x + 1 < width && labels[p + 1] == l ? dist[p + 1] + 1 : 1;
        int down = y + 1 < height && labels[p + width] == l ? dist[p + width] + 1 : 1;
        int d = dist[p];
        d = right < d ? right : d;
        d = down < d ? down : d;
        dist[p] = (uint16_t)d;
      }
}

int
token_overlay_find_pieces (const int32_t *labels, int width, int height, int n_tokens,
                           token_overlay_piece **out)
{
  int64_t n = (int64_t)width * height;
  int32_t *parent = malloc ((size_t)(n > 0 ? n : 1) * sizeof *parent);
  uint16_t *dist = malloc ((size_t)(n > 0 ? n : 1) * sizeof *dist);
  int32_t *piece_of = NULL;
  uint16_t *best = NULL;
  token_overlay_piece *pieces = NULL;
  int64_t *largest = NULL;
  int n_pieces = 0, capacity = 0;

  *out = NULL;
  if (!parent || !dist)
    goto fail;
  /* union-find over 4-neighbours with the same valid label */
  for (int64_t p = 0; p < n; p++)
    {
      int32_t l = labels[p];
      parent[p] = (int32_t)p;
      if (l < 0 || l >= n_tokens)
        continue;
      int x = (int)(p % width);
      if (x > 0 && labels[p - 1] == l)
        parent[p] = find_root (parent, (int32_t)(p - 1));
      if (p >= width && labels[p - width] == l)
        {
          int32_t a = find_root (parent, (int32_t)p), b = find_root (parent, (int32_t)(p - width));
          if (a != b)
            parent[a > b ? a : b] = a < b ? a : b;
        }
    }
  /* every pixel to its root, which is its piece's first pixel (unions keep the smaller
   * index); then, in one forward pass, roots get piece numbers (as -2 - number) that their
   * later pixels copy; parent[] ends up holding each pixel's piece, -1 for none */
  for (int64_t p = 0; p < n; p++)
    parent[p] = find_root (parent, (int32_t)p);
  piece_of = parent;
  for (int64_t p = 0; p < n; p++)
    {
      int32_t l = labels[p];
      if (l < 0 || l >= n_tokens)
        piece_of[p] = -1;
      else if (piece_of[p] == p)
        {
          if (n_pieces == capacity)
            {
              capacity = capacity ? 2 * capacity : 64;
              token_overlay_piece *grown = realloc (pieces, (size_t)capacity * sizeof *pieces);
              if (!grown)
                goto fail;
              pieces = grown;
            }
          pieces[n_pieces] = (token_overlay_piece){ l, (int)(p % width), (int)(p / width), 0,
                                                    false };
          piece_of[p] = -2 - n_pieces++;
        }
      else
        piece_of[p] = piece_of[piece_of[p]];
    }
  for (int64_t p = 0; p < n; p++)
    if (piece_of[p] <= -2)
      piece_of[p] = -2 - piece_of[p];
  distance_inside (dist, labels, width, height);
  best = calloc ((size_t)(n_pieces > 0 ? n_pieces : 1), sizeof *best);
  largest = calloc ((size_t)(n_tokens > 0 ? n_tokens : 1), sizeof *largest);
  if (!best || !largest)
    goto fail;
  for (int64_t p = 0; p < n; p++)
    {
      int32_t i = piece_of[p];
      if (i < 0)
        continue;
      pieces[i].area++;
      if (dist[p] > best[i])
        {
          best[i] = dist[p];
          pieces[i].x = (int)(p % width);
          pieces[i].y = (int)(p / width);
        }
    }
  for (int i = 0; i < n_pieces; i++)
    if (pieces[i].area > largest[pieces[i].token])
      largest[pieces[i].token] = pieces[i].area;
  for (int i = 0; i < n_pieces; i++)
    if (pieces[i].area == largest[pieces[i].token])
      {
        pieces[i].primary = true;
        largest[pieces[i].token] = -1; /* one primary piece per token, even on ties */
      }
  qsort (pieces, (size_t)n_pieces, sizeof *pieces, piece_order);
  free (parent);
  free (dist);
  free (best);
  free (largest);
  *out = pieces;
  return n_pieces;

fail:
  free (parent);
  free (dist);
  free (best);
  free (largest);
  free (pieces);
  return -1;
}

// ----------------------------------------------------------------------------
// drawing

static uint32_t
premultiplied (const double rgb[3], double a)
{
  return (uint32_t)lround (a * 255.0) << 24 | (uint32_t)lround (rgb[0] * a * 255.0) << 16
         | (uint32_t)lround (rgb[1] * a * 255.0) << 8 | (uint32_t)lround (rgb[2] * a * 255.0);
}

/* Whether pixel (x, y) of label l touches another label or the border (4-neighbours). */
static bool
on_boundary (const int32_t *labels, int width, int height, int x, int y, int32_t l)
{
  int64_t p = (int64_t)y * width + x;
  return x == 0 || y == 0 || x + 1 == width || y + 1 == height || labels[p - 1] != l
         || labels[p + 1] != l || labels[p - width] != l || labels[p + width] != l;
}

void
token_overlay_draw_regions (cairo_t *cr, const int32_t *labels, int width, int height,
                            const int *colours, token_overlay_style style, double fill_alpha)
{
  static const double white[3] = { 1, 1, 1 }, black[3] = { 0, 0, 0 };
  const uint32_t edge = premultiplied (white, 0.9), inner = premultiplied (black, 0.45);
  cairo_surface_t *layer = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
  /* each token's two pixel values, worked out once: its fill and its outline */
  int n_labels = 0;
  for (int64_t p = 0; p < (int64_t)width * height; p++)
    n_labels = labels[p] >= n_labels ? labels[p] + 1 : n_labels;
  uint32_t *fill = malloc ((size_t)(n_labels > 0 ? n_labels : 1) * 2 * sizeof *fill);
  if (cairo_surface_status (layer) != CAIRO_STATUS_SUCCESS || !fill)
    {
      cairo_surface_destroy (layer);
      free (fill);
      return;
    }
  for (int l = 0; l < n_labels; l++)
    {
      double rgb[3];
      token_overlay_colour (colours ? colours[l] : l, rgb);
      fill[2 * l] = premultiplied (rgb, fill_alpha);
      fill[2 * l + 1] = premultiplied (rgb, 1.0);
    }
  unsigned char *data = cairo_image_surface_get_data (layer);
  int stride = cairo_image_surface_get_stride (layer);
  cairo_surface_flush (layer);
  for (int y = 0; y < height; y++)
    {
      uint32_t *row = (uint32_t *)(data + (size_t)y * stride);
      for (int x = 0; x < width; x++)
        {
          int64_t p = (int64_t)y * width + x;
          int32_t l = labels[p];
          row[x] = 0;
          if (l < 0)
            continue;
          if (style == TOKEN_OVERLAY_OUTLINE)
            {
              /* the boundary in the token's colour, a dark line inside it for contrast */
              if (on_boundary (labels, width, height, x, y, l))
                row[x] = fill[2 * l + 1];
              else if ((x > 0 && on_boundary (labels, width, height, x - 1, y, l))
                       || (x + 1 < width && on_boundary (labels, width, height, x + 1, y, l))
                       || (y > 0 && on_boundary (labels, width, height, x, y - 1, l))
                       || (y + 1 < height && on_boundary (labels, width, height, x, y + 1, l)))
                row[x] = inner;
              continue;
            }
          bool is_edge = (x + 1 < width && labels[p + 1] != l)
                         || (y + 1 < height && labels[p + width] != l);
          row[x] = is_edge ? edge : fill[2 * l];
        }
    }
  cairo_surface_mark_dirty (layer);
  cairo_save (cr);
  cairo_set_source_surface (cr, layer, 0, 0);
  cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
  cairo_paint (cr);
  cairo_restore (cr);
  cairo_surface_destroy (layer);
  free (fill);
}

typedef struct
{
  double x0, y0, x1, y1;
} box;

static bool
boxes_overlap (const box *a, const box *b)
{
  return a->x0 < b->x1 && b->x0 < a->x1 && a->y0 < b->y1 && b->y0 < a->y1;
}

int
token_overlay_draw_labels (cairo_t *cr, const token_overlay_piece *pieces, int n_pieces,
                           double scale, double off_x, double off_y, double font_px, double *boxes)
{
  box *placed = malloc ((size_t)(n_pieces > 0 ? n_pieces : 1) * sizeof *placed);
  int n_placed = 0;
  const double pad = font_px * 0.15;

  if (!placed)
    return 0;
  cairo_save (cr);
  cairo_select_font_face (cr, "Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size (cr, font_px);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_width (cr, font_px / 5.0);
  for (int i = 0; i < n_pieces; i++)
    {
      const token_overlay_piece *pc = &pieces[i];
      char text[16];
      cairo_text_extents_t ext;
      bool ok = true;

      if (boxes)
        memset (boxes + 4 * i, 0, 4 * sizeof *boxes);
      snprintf (text, sizeof text, "%d", pc->token);
      cairo_text_extents (cr, text, &ext);
      double cx = off_x + scale * (pc->x + 0.5), cy = off_y + scale * (pc->y + 0.5);
      box b = { cx - ext.width / 2 - pad, cy - ext.height / 2 - pad, cx + ext.width / 2 + pad,
                cy + ext.height / 2 + pad };
      /* a second piece is numbered only where the number fits inside it */
      if (!pc->primary && (b.x1 - b.x0) * (b.y1 - b.y0) > scale * scale * (double)pc->area)
        continue;
      for (int j = 0; j < n_placed && ok; j++)
        ok = !boxes_overlap (&b, &placed[j]);
      if (!ok)
        continue;
      placed[n_placed++] = b;
      if (boxes)
        memcpy (boxes + 4 * i, &b, sizeof b);
      cairo_move_to (cr, cx - ext.width / 2 - ext.x_bearing, cy - ext.height / 2 - ext.y_bearing);
      cairo_text_path (cr, text);
      cairo_set_source_rgb (cr, 0, 0, 0);
      cairo_stroke_preserve (cr);
      cairo_set_source_rgb (cr, 1, 1, 1);
      cairo_fill (cr);
    }
  cairo_restore (cr);
  free (placed);
  return n_placed;
}

static cairo_status_t
write_to_file (void *closure, const unsigned char *data, unsigned int length)
{
  return fwrite (data, 1, length, closure) == length ? CAIRO_STATUS_SUCCESS
                                                     : CAIRO_STATUS_WRITE_ERROR;
}

typedef struct
{
  cairo_surface_t *surface;
  const char *path;
} overlay_file;

/* The setok_file_writer of token_overlay_write_png: the surface as PNG. */
static setok_status
write_surface (FILE *f, void *user, setok_error *err)
{
  const overlay_file *o = user;
  cairo_status_t cs = cairo_surface_write_to_png_stream (o->surface, write_to_file, f);
  if (cs != CAIRO_STATUS_SUCCESS && !ferror (f))
    return setok_fail (err, SETOK_ERR_RUNTIME, "%s: cannot write the overlay: %s", o->path,
                       cairo_status_to_string (cs));
  return SETOK_OK; /* a failed write is the stream's error, which the caller names */
}

setok_status
token_overlay_write_png (const char *path, const setok_image *image, const int32_t *labels,
                         int n_tokens, const int *colours, token_overlay_style style,
                         double fill_alpha, setok_error *err)
{
  int w = image->width, h = image->height;
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, w, h);
  if (cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS)
    {
      cairo_surface_destroy (surface);
      return setok_fail (err, SETOK_ERR_NOMEM, "%s: cannot create a %d x %d surface", path, w, h);
    }
  token_overlay_piece *pieces = NULL;
  int n_pieces = token_overlay_find_pieces (labels, w, h, n_tokens, &pieces);
  if (n_pieces < 0)
    {
      cairo_surface_destroy (surface);
      return setok_fail (err, SETOK_ERR_NOMEM, "%s: out of memory for the token pieces", path);
    }
  unsigned char *data = cairo_image_surface_get_data (surface);
  int stride = cairo_image_surface_get_stride (surface);
  cairo_surface_flush (surface);
  for (int y = 0; y < h; y++)
    {
      uint32_t *row = (uint32_t *)(data + (size_t)y * stride);
      for (int x = 0; x < w; x++)
        {
          const uint8_t *px = image->pixels + ((int64_t)y * w + x) * image->channels;
          uint32_t r = px[0], g = image->channels >= 3 ? px[1] : px[0];
          uint32_t b = image->channels >= 3 ? px[2] : px[0];
          row[x] = 0xff000000u | r << 16 | g << 8 | b;
        }
    }
  cairo_surface_mark_dirty (surface);
  cairo_t *cr = cairo_create (surface);
  token_overlay_draw_regions (cr, labels, w, h, colours, style, fill_alpha);
  token_overlay_draw_labels (cr, pieces, n_pieces, 1.0, 0.0, 0.0,
                             fmax (10.0, fmin (w, h) / 40.0), NULL);
  free (pieces);
  cairo_status_t cs = cairo_status (cr);
  cairo_destroy (cr);
  /* written beside the file and renamed over it: a failed export leaves it as it was */
  overlay_file o = { surface, path };
  setok_status st = cs == CAIRO_STATUS_SUCCESS
                      ? setok_file_replace (path, write_surface, &o, err)
                      : setok_fail (err, SETOK_ERR_RUNTIME, "%s: cannot draw the overlay: %s",
                                    path, cairo_status_to_string (cs));
  cairo_surface_destroy (surface);
  return st;
}
