/* token-overlay.c — SeTok token overlays drawn with cairo. */
#include "token-overlay.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "setok/file.h"

void
token_overlay_colour (int index, double rgb[3])
{
  /* golden-angle hue steps keep neighbouring indices far apart; two
   * saturation/value rings double the number of clearly distinct colours */
  double h = fmod (index * 137.50776405, 360.0) / 60.0;
  double s = index % 2 ? 0.55 : 0.85, v = index % 4 >= 2 ? 0.80 : 0.98;
  double c = v * s, x = c * (1.0 - fabs (fmod (h, 2.0) - 1.0)), m = v - c;
  double r = 0, g = 0, b = 0;
  switch ((int)h)
    {
      case 0:
        r = c, g = x;
        break;
      case 1:
        r = x, g = c;
        break;
      case 2:
        g = c, b = x;
        break;
      case 3:
        g = x, b = c;
        break;
      case 4:
        r = x, b = c;
        break;
      default:
        r = c, b = x;
        break;
    }
  rgb[0] = r + m;
  rgb[1] = g + m;
  rgb[2] = b + m;
}

void
token_overlay_label_points (const int32_t *labels, int width, int height, int n_tokens, int *at)
{
  /* chamfer distance to the nearest pixel of another label (or the border) */
  int64_t n = (int64_t)width * height;
  uint16_t *dist = malloc ((size_t)n * sizeof *dist);
  int *best = calloc ((size_t)(n_tokens > 0 ? n_tokens : 1), sizeof *best);
  for (int t = 0; t < n_tokens; t++)
    at[2 * t] = at[2 * t + 1] = -1;
  if (!dist || !best)
    {
      free (dist);
      free (best);
      return;
    }
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      {
        int64_t p = (int64_t)y * width + x;
        int32_t l = labels[p];
        uint16_t d = 0;
        if (l >= 0 && x > 0 && y > 0 && labels[p - 1] == l && labels[p - width] == l)
          {
            int a = dist[p - 1], b = dist[p - width];
            d = (uint16_t)((a < b ? a : b) + 1 < 65535 ? (a < b ? a : b) + 1 : 65535);
          }
        dist[p] = d;
      }
  for (int y = height - 1; y >= 0; y--)
    for (int x = width - 1; x >= 0; x--)
      {
        int64_t p = (int64_t)y * width + x;
        int32_t l = labels[p];
        if (l < 0)
          continue;
        int right = x + 1 < width && labels[p + 1] == l ? dist[p + 1] + 1 : 0;
        int down = y + 1 < height && labels[p + width] == l ? dist[p + width] + 1 : 0;
        int d = dist[p];
        if (right < d)
          d = right;
        if (down < d)
          d = down;
        dist[p] = (uint16_t)d;
        if (l < n_tokens && (at[2 * l] < 0 || d >= best[l]))
          {
            best[l] = d;
            at[2 * l] = x;
            at[2 * l + 1] = y;
          }
      }
  free (dist);
  free (best);
}

void
token_overlay_draw_regions (cairo_t *cr, const int32_t *labels, int width, int height,
                            double fill_alpha, int highlight)
{
  cairo_surface_t *layer = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
  if (cairo_surface_status (layer) != CAIRO_STATUS_SUCCESS)
    return;
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
          if (l < 0)
            {
              row[x] = 0;
              continue;
            }
          bool edge
            = (x + 1 < width && labels[p + 1] != l) || (y + 1 < height && labels[p + width] != l);
          double rgb[3], a = fill_alpha;
          token_overlay_colour (l, rgb);
          if (highlight >= 0)
            a = l == highlight ? fmin (1.0, fill_alpha * 1.8) : fill_alpha * 0.35;
          if (edge)
            {
              rgb[0] = rgb[1] = rgb[2] = 1.0;
              a = 0.9;
            }
          /* premultiplied ARGB */
          uint32_t A = (uint32_t)lround (a * 255.0);
          uint32_t R = (uint32_t)lround (rgb[0] * a * 255.0);
          uint32_t G = (uint32_t)lround (rgb[1] * a * 255.0);
          uint32_t B = (uint32_t)lround (rgb[2] * a * 255.0);
          row[x] = A << 24 | R << 16 | G << 8 | B;
        }
    }
  cairo_surface_mark_dirty (layer);
  cairo_save (cr);
  cairo_set_source_surface (cr, layer, 0, 0);
  cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
  cairo_paint (cr);
  cairo_restore (cr);
  cairo_surface_destroy (layer);
}

void
token_overlay_draw_index_labels (cairo_t *cr, const int *at, int n_tokens, double size)
{
  cairo_save (cr);
  cairo_select_font_face (cr, "Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size (cr, size);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_ROUND);
  for (int t = 0; t < n_tokens; t++)
    {
      if (at[2 * t] < 0)
        continue;
      char text[16];
      snprintf (text, sizeof text, "%d", t);
      cairo_text_extents_t ext;
      cairo_text_extents (cr, text, &ext);
      cairo_move_to (cr, at[2 * t] + 0.5 - ext.width / 2 - ext.x_bearing,
                     at[2 * t + 1] + 0.5 - ext.height / 2 - ext.y_bearing);
      cairo_text_path (cr, text);
      cairo_set_source_rgb (cr, 0, 0, 0);
      cairo_set_line_width (cr, size / 5.0);
      cairo_stroke_preserve (cr);
      cairo_set_source_rgb (cr, 1, 1, 1);
      cairo_fill (cr);
    }
  cairo_restore (cr);
}

void
token_overlay_draw (cairo_t *cr, const int32_t *labels, int width, int height, int n_tokens,
                    double fill_alpha, int highlight)
{
  token_overlay_draw_regions (cr, labels, width, height, fill_alpha, highlight);
  int *at = malloc ((size_t)(n_tokens > 0 ? n_tokens : 1) * 2 * sizeof *at);
  if (!at)
    return;
  token_overlay_label_points (labels, width, height, n_tokens, at);
  token_overlay_draw_index_labels (cr, at, n_tokens, fmax (10.0, fmin (width, height) / 40.0));
  free (at);
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
                         int n_tokens, double fill_alpha, setok_error *err)
{
  int w = image->width, h = image->height;
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, w, h);
  if (cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS)
    {
      cairo_surface_destroy (surface);
      return setok_fail (err, SETOK_ERR_NOMEM, "%s: cannot create a %d x %d surface", path, w, h);
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
  token_overlay_draw (cr, labels, w, h, n_tokens, fill_alpha, -1);
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
