/* setok-canvas.c — the image view.
 *
 * The picture, the token overlay, the hovered token and the dimming around a
 * selection are textures at image resolution drawn into the same rectangle,
 * so GTK scales them for the display (HiDPI included); the patch grid and
 * the selection's outline are vectors at a constant width. The overlay comes
 * from token-overlay.c, the drawing `setok tokens --overlay` uses, in the
 * document's token colours (which stay with a token across recomputes); the
 * numbers are placed anew at every zoom, one on each piece of a token where
 * it does not overlap another. During an edit the picture is shown plain, the
 * region outlined, so before and after compare like with like. The hovered
 * token is described in a tooltip at the pointer. */
#include "setok-canvas.h"

#include <glib/gi18n.h>
#include <math.h>

#include "token-overlay.h"

#define ZOOM_MIN 0.02
#define ZOOM_MAX 64.0
#define ZOOM_STEP 1.25
#define DRAG_THRESHOLD 4.0
#define CHECKER_SIZE 8
#define LABEL_SIZE 15.0 /* widget pixels */

struct _SetokCanvas
{
  GtkWidget parent_instance;

  SetokDocument *document;
  gulong map_handler;
  gulong selection_handler;
  gulong display_handler;
  gulong edit_handler;
  gulong picture_handler;

  double zoom;
  double off_x, off_y; /* widget position of the image's top-left corner */
  gboolean fit;
  double opacity;
  gboolean show_overlay;
  gboolean show_grid;
  gboolean outline;
  int hovered;

  GdkTexture *overlay;    /* the token map's fills, or its outlines; NULL: to draw */
  GdkTexture *boundaries; /* the fills' boundaries */
  GdkTexture *hover;      /* the hovered token's box; NULL: none or to draw */
  token_overlay_piece *pieces; /* every piece of every token; NULL: to find */
  int n_pieces;
  GdkTexture *selection;  /* the dimming outside the selection; NULL: to draw (or none) */
  double *outline_edges;  /* [4 * n] the selection's boundary, image coordinates */
  int n_outline_edges;
  gboolean selection_valid;

  double pointer_x, pointer_y;
  double drag_off_x, drag_off_y;
  gboolean panning;
};

G_DEFINE_FINAL_TYPE (SetokCanvas, setok_canvas, GTK_TYPE_WIDGET)

enum
{
  PROP_0,
  PROP_DOCUMENT,
  PROP_ZOOM,
  PROP_HOVERED_TOKEN,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
image_size (SetokCanvas *self, int *w, int *h)
{
  const setok_image *img = setok_picture_get_image (setok_document_get_picture (self->document));

  *w = img->width;
  *h = img->height;
}

static GdkTexture *
texture_from_surface (cairo_surface_t *surface)
{
  int w = cairo_image_surface_get_width (surface), h = cairo_image_surface_get_height (surface);
  int stride = cairo_image_surface_get_stride (surface);
  g_autoptr (GBytes) bytes = NULL;

  cairo_surface_flush (surface);
  bytes = g_bytes_new (cairo_image_surface_get_data (surface), (gsize)stride * h);
  /* GDK_MEMORY_DEFAULT is cairo's ARGB32 layout */
  return gdk_memory_texture_new (w, h, GDK_MEMORY_DEFAULT, bytes, stride);
}

/* The token map's regions in style with fill_alpha: 1 gives the fills (the
 * opacity is applied when drawing, so the slider costs nothing), 0 the
 * boundaries alone. */
static GdkTexture *
draw_regions (const SetokTokenMap *map, const int *colours, token_overlay_style style,
              double fill_alpha)
{
  const setok_tokens_result *r = &map->result;
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, r->width, r->height);
  GdkTexture *texture = NULL;

  if (cairo_surface_status (surface) == CAIRO_STATUS_SUCCESS)
    {
      cairo_t *cr = cairo_create (surface);
      token_overlay_draw_regions (cr, r->pixel_labels, r->width, r->height, colours, style,
                                  fill_alpha);
      cairo_destroy (cr);
      texture = texture_from_surface (surface);
    }
  cairo_surface_destroy (surface);
  return texture;
}

/* The tokens chosen[] within [x0, x1) x [y0, y1) of the image: their pixels
 * fill, their outline edge (premultiplied ARGB); a texture of that box. */
static GdkTexture *
draw_token_mask (const SetokTokenMap *map, const gboolean *chosen, int x0, int y0, int x1, int y1,
                 guint32 fill, guint32 edge)
{
  const setok_tokens_result *r = &map->result;
  int n = r->clusters.n_tokens, w = r->width, h = r->height;
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, x1 - x0, y1 - y0);
  GdkTexture *texture = NULL;

  if (cairo_surface_status (surface) == CAIRO_STATUS_SUCCESS)
    {
      guint8 *data = cairo_image_surface_get_data (surface);
      int stride = cairo_image_surface_get_stride (surface);

      cairo_surface_flush (surface);
      for (int y = y0; y < y1; y++)
        {
          guint32 *row = (guint32 *)(data + (gsize)(y - y0) * stride);
          const int32_t *labels = r->pixel_labels + (gsize)y * w;

          for (int x = x0; x < x1; x++)
            {
              int32_t l = labels[x];
              gboolean in = l >= 0 && l < n && chosen[l];
              gboolean border = FALSE;

              for (int dy = -1; dy <= 1 && in && !border; dy++)
                for (int dx = -1; dx <= 1 && !border; dx++)
                  {
                    int xx = x + dx, yy = y + dy;
                    int32_t m = xx >= 0 && yy >= 0 && xx < w && yy < h
                                  ? r->pixel_labels[(gsize)yy * w + xx]
                                  : -1;
                    border = m < 0 || m >= n || !chosen[m];
                  }
              row[x - x0] = !in ? 0 : border ? edge : fill;
            }
        }
      cairo_surface_mark_dirty (surface);
      texture = texture_from_surface (surface);
    }
  cairo_surface_destroy (surface);
  return texture;
}

static guint32
premultiplied (double r, double g, double b, double a)
{
  return (guint32)lround (a * 255) << 24 | (guint32)lround (r * a * 255) << 16
         | (guint32)lround (g * a * 255) << 8 | (guint32)lround (b * a * 255);
}

/* Outside the selection (inside[w * h] nonzero: selected) the picture is dimmed, so the
 * selection stands out on any picture. */
static GdkTexture *
draw_selection (const guint8 *inside, int w, int h)
{
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, w, h);
  GdkTexture *texture = NULL;
  guint32 dim = premultiplied (0, 0, 0, 0.5);

  if (cairo_surface_status (surface) == CAIRO_STATUS_SUCCESS)
    {
      guint8 *data = cairo_image_surface_get_data (surface);
      int stride = cairo_image_surface_get_stride (surface);

      cairo_surface_flush (surface);
      for (int y = 0; y < h; y++)
        {
          guint32 *row = (guint32 *)(data + (gsize)y * stride);

          for (int x = 0; x < w; x++)
            row[x] = inside[(gsize)y * w + x] ? 0 : dim;
        }
      cairo_surface_mark_dirty (surface);
      texture = texture_from_surface (surface);
    }
  cairo_surface_destroy (surface);
  return texture;
}

/* The boundary of the selection (inside[w * h]) as pixel edges [x0, y0, x1, y1], runs along a
 * row or a column merged into one edge. */
static double *
selection_edges (const guint8 *inside, int w, int h, int *n_edges)
{
  GArray *edges = g_array_new (FALSE, FALSE, sizeof (double));

#define CHOSEN(x, y) ((x) >= 0 && (y) >= 0 && (x) < w && (y) < h && inside[(gsize)(y) * w + (x)])
  /* horizontal edges: between rows y - 1 and y */
  for (int y = 0; y <= h; y++)
    for (int x = 0; x < w;)
      {
        int start = x;
        while (x < w && CHOSEN (x, y) != CHOSEN (x, y - 1))
          x++;
        if (x > start)
          g_array_append_vals (edges, (double[]){ start, y, x, y }, 4);
        else
          x++;
      }
  /* vertical edges: between columns x - 1 and x */
  for (int x = 0; x <= w; x++)
    for (int y = 0; y < h;)
      {
        int start = y;
        while (y < h && CHOSEN (x, y) != CHOSEN (x - 1, y))
          y++;
        if (y > start)
          g_array_append_vals (edges, (double[]){ x, start, x, y }, 4);
        else
          y++;
      }
#undef CHOSEN
  *n_edges = (int)(edges->len / 4);
  return (double *)g_array_free (edges, FALSE);
}

/* The hovered token in its own colour, stronger, outlined in white; only its
 * box is drawn, so hovering stays cheap on large images. */
static GdkTexture *
draw_hover (const SetokTokenMap *map, const int *colours, int token)
{
  const setok_token_region *g = &map->result.regions[token];
  int n = map->result.clusters.n_tokens;
  g_autofree gboolean *chosen = g_new0 (gboolean, MAX (n, 1));
  double rgb[3];

  if (g->area <= 0 || g->x1 <= g->x0 || g->y1 <= g->y0)
    return NULL;
  chosen[token] = TRUE;
  token_overlay_colour (colours != NULL ? colours[token] : token, rgb);
  return draw_token_mask (map, chosen, g->x0, g->y0, g->x1, g->y1,
                          premultiplied (rgb[0], rgb[1], rgb[2], 0.5), 0xffffffffu);
}

static void
invalidate_overlay (SetokCanvas *self)
{
  g_clear_object (&self->overlay);
  g_clear_object (&self->boundaries);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
invalidate_selection (SetokCanvas *self)
{
  g_clear_object (&self->selection);
  g_clear_pointer (&self->outline_edges, g_free);
  self->n_outline_edges = 0;
  self->selection_valid = FALSE;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
set_hovered (SetokCanvas *self, int token)
{
  if (self->hovered == token)
    return;
  self->hovered = token;
  g_clear_object (&self->hover);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  /* the tooltip follows the token under the pointer, and goes when there is none; not
   * while the window goes away (its surface may be gone) */
  if (gtk_widget_get_mapped (GTK_WIDGET (self)) && gtk_widget_get_native (GTK_WIDGET (self))
      && !gtk_widget_in_destruction (GTK_WIDGET (gtk_widget_get_root (GTK_WIDGET (self))))
      && gtk_native_get_surface (gtk_widget_get_native (GTK_WIDGET (self))) != NULL)
    gtk_widget_trigger_tooltip_query (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_HOVERED_TOKEN]);
}

char *
setok_canvas_describe_token (SetokCanvas *self, int token)
{
  SetokTokenMap *map = setok_document_get_token_map (self->document);
  const setok_token_region *g;
  double total;

  if (map == NULL || token < 0 || token >= map->result.clusters.n_tokens)
    return NULL;
  g = &map->result.regions[token];
  total = (double)map->result.width * map->result.height;
  return g_markup_printf_escaped (
    /* Translators: the score is SeTok's density-peak score of the token's centre */
    _ ("<b>Token %d</b> · %.1f %% of the picture\n"
       "<small>How strongly its centre stands out from its neighbours: %.2f</small>"),
    token, 100.0 * (double)g->area / total, map->result.clusters.tokens[token].score);
}

static gboolean
query_tooltip (GtkWidget *widget, int x, int y, gboolean keyboard, GtkTooltip *tooltip)
{
  SetokCanvas *self = SETOK_CANVAS (widget);
  g_autofree char *text = NULL;

  if (keyboard || setok_document_get_edit_state (self->document) != SETOK_EDIT_IDLE)
    return FALSE;
  text = setok_canvas_describe_token (self, self->hovered);
  if (text == NULL)
    return FALSE;
  gtk_tooltip_set_markup (tooltip, text);
  return TRUE;
}

static void
widget_to_image (SetokCanvas *self, double x, double y, double *ix, double *iy)
{
  *ix = (x - self->off_x) / self->zoom;
  *iy = (y - self->off_y) / self->zoom;
}

void
setok_canvas_image_to_widget (SetokCanvas *self, double ix, double iy, double *x, double *y)
{
  *x = self->off_x + ix * self->zoom;
  *y = self->off_y + iy * self->zoom;
}

static int
token_at (SetokCanvas *self, double x, double y)
{
  SetokTokenMap *map = setok_document_get_token_map (self->document);
  double ix, iy;

  if (map == NULL)
    return -1;
  widget_to_image (self, x, y, &ix, &iy);
  return setok_token_map_token_at (map, floor (ix), floor (iy));
}

void
setok_canvas_hover (SetokCanvas *self, double x, double y)
{
  self->pointer_x = x;
  self->pointer_y = y;
  set_hovered (self, x < 0 ? -1 : token_at (self, x, y));
}

void
setok_canvas_click (SetokCanvas *self, double x, double y, GdkModifierType state)
{
  SetokSelectMode mode = SETOK_SELECT_REPLACE;

  /* the region of an edit under way or in review stays what it was */
  if (setok_document_get_edit_state (self->document) != SETOK_EDIT_IDLE)
    return;
  if (state & GDK_SHIFT_MASK)
    mode = SETOK_SELECT_ADD;
  else if (state & GDK_ALT_MASK)
    mode = SETOK_SELECT_REMOVE;
  if (setok_document_get_clicks_segment (self->document))
    {
      double ix, iy;

      widget_to_image (self, x, y, &ix, &iy);
      setok_document_select_point (self->document, (int)floor (ix), (int)floor (iy), mode);
    }
  else
    setok_document_select (self->document, token_at (self, x, y), mode);
}

// ----------------------------------------------------------------------------
// zoom and pan

static void
apply_fit (SetokCanvas *self)
{
  int iw, ih;
  double w = gtk_widget_get_width (GTK_WIDGET (self));
  double h = gtk_widget_get_height (GTK_WIDGET (self));

  image_size (self, &iw, &ih);
  if (w <= 0 || h <= 0 || iw <= 0 || ih <= 0)
    return;
  self->zoom = CLAMP (MIN (w / iw, h / ih), ZOOM_MIN, ZOOM_MAX);
  self->off_x = (w - iw * self->zoom) / 2;
  self->off_y = (h - ih * self->zoom) / 2;
}

/* Zooms to zoom keeping widget point (x, y) over the same image point. */
static void
zoom_at (SetokCanvas *self, double zoom, double x, double y)
{
  zoom = CLAMP (zoom, ZOOM_MIN, ZOOM_MAX);
  self->off_x = x - (x - self->off_x) * zoom / self->zoom;
  self->off_y = y - (y - self->off_y) * zoom / self->zoom;
  self->zoom = zoom;
  self->fit = FALSE;
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
}

static void
zoom_centre (SetokCanvas *self, double zoom)
{
  zoom_at (self, zoom, gtk_widget_get_width (GTK_WIDGET (self)) / 2.0,
           gtk_widget_get_height (GTK_WIDGET (self)) / 2.0);
}

double
setok_canvas_get_zoom (SetokCanvas *self)
{
  return self->zoom;
}

void
setok_canvas_zoom_in (SetokCanvas *self)
{
  zoom_centre (self, self->zoom * ZOOM_STEP);
}

void
setok_canvas_zoom_out (SetokCanvas *self)
{
  zoom_centre (self, self->zoom / ZOOM_STEP);
}

void
setok_canvas_zoom_actual (SetokCanvas *self)
{
  zoom_centre (self, 1.0 / gtk_widget_get_scale_factor (GTK_WIDGET (self)));
}

void
setok_canvas_zoom_fit (SetokCanvas *self)
{
  self->fit = TRUE;
  apply_fit (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
}

static void
drag_begin (GtkGestureDrag *gesture, double x, double y, SetokCanvas *self)
{
  guint button = gtk_gesture_single_get_current_button (GTK_GESTURE_SINGLE (gesture));

  self->drag_off_x = self->off_x;
  self->drag_off_y = self->off_y;
  /* the primary button selects unless it moves; the others always pan */
  self->panning = button != GDK_BUTTON_PRIMARY;
}

static void
drag_update (GtkGestureDrag *gesture, double dx, double dy, SetokCanvas *self)
{
  if (!self->panning && hypot (dx, dy) < DRAG_THRESHOLD)
    return;
  if (!self->panning)
    gtk_widget_set_cursor_from_name (GTK_WIDGET (self), "grabbing");
  self->panning = TRUE;
  self->fit = FALSE;
  self->off_x = self->drag_off_x + dx;
  self->off_y = self->drag_off_y + dy;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
drag_end (GtkGestureDrag *gesture, double dx, double dy, SetokCanvas *self)
{
  guint button = gtk_gesture_single_get_current_button (GTK_GESTURE_SINGLE (gesture));
  double x = 0, y = 0;

  gtk_widget_set_cursor_from_name (GTK_WIDGET (self), "crosshair");
  if (self->panning || button != GDK_BUTTON_PRIMARY)
    return;
  gtk_gesture_drag_get_start_point (gesture, &x, &y);
  setok_canvas_click (
    self, x + dx, y + dy,
    gtk_event_controller_get_current_event_state (GTK_EVENT_CONTROLLER (gesture)));
}

static gboolean
scroll (GtkEventControllerScroll *controller, double dx, double dy, SetokCanvas *self)
{
  GdkModifierType state
    = gtk_event_controller_get_current_event_state (GTK_EVENT_CONTROLLER (controller));

  if (state & GDK_CONTROL_MASK)
    {
      zoom_at (self, self->zoom * pow (ZOOM_STEP, -dy), self->pointer_x, self->pointer_y);
      return TRUE;
    }
  self->fit = FALSE;
  self->off_x -= dx * 32;
  self->off_y -= dy * 32;
  gtk_widget_queue_draw (GTK_WIDGET (self));
  return TRUE;
}

static void
motion (GtkEventControllerMotion *controller, double x, double y, SetokCanvas *self)
{
  setok_canvas_hover (self, x, y);
}

static void
leave (GtkEventControllerMotion *controller, SetokCanvas *self)
{
  setok_canvas_hover (self, -1, -1);
}

// ----------------------------------------------------------------------------
// drawing

static void
append_checkerboard (GtkSnapshot *snapshot, const graphene_rect_t *bounds)
{
  GdkRGBA light = { 0.85, 0.85, 0.85, 1 }, dark = { 0.65, 0.65, 0.65, 1 };

  gtk_snapshot_push_repeat (
    snapshot, bounds,
    &GRAPHENE_RECT_INIT (bounds->origin.x, bounds->origin.y, 2 * CHECKER_SIZE, 2 * CHECKER_SIZE));
  gtk_snapshot_append_color (
    snapshot, &light,
    &GRAPHENE_RECT_INIT (bounds->origin.x, bounds->origin.y, 2 * CHECKER_SIZE, 2 * CHECKER_SIZE));
  gtk_snapshot_append_color (
    snapshot, &dark,
    &GRAPHENE_RECT_INIT (bounds->origin.x, bounds->origin.y, CHECKER_SIZE, CHECKER_SIZE));
  gtk_snapshot_append_color (snapshot, &dark,
                             &GRAPHENE_RECT_INIT (bounds->origin.x + CHECKER_SIZE,
                                                  bounds->origin.y + CHECKER_SIZE, CHECKER_SIZE,
                                                  CHECKER_SIZE));
  gtk_snapshot_pop (snapshot);
}

static void
append_image_texture (SetokCanvas *self, GtkSnapshot *snapshot, GdkTexture *texture,
                      const graphene_rect_t *bounds)
{
#if GTK_CHECK_VERSION(4, 10, 0)
  /* magnified pixels stay crisp squares */
  gtk_snapshot_append_scaled_texture (
    snapshot, texture, self->zoom >= 2.0 ? GSK_SCALING_FILTER_NEAREST : GSK_SCALING_FILTER_LINEAR,
    bounds);
#else
  gtk_snapshot_append_texture (snapshot, texture, bounds);
#endif
}

static void
append_grid (SetokCanvas *self, GtkSnapshot *snapshot, const SetokTokenMap *map,
             const graphene_rect_t *bounds)
{
  const setok_grid_map *g = &map->result.map;
  cairo_t *cr = gtk_snapshot_append_cairo (snapshot, bounds);
  double x0 = self->off_x + self->zoom * g->crop_x / g->scale_x;
  double y0 = self->off_y + self->zoom * g->crop_y / g->scale_y;
  double sx = self->zoom * g->patch / g->scale_x, sy = self->zoom * g->patch / g->scale_y;

  for (int c = 0; c <= g->grid_w; c++)
    {
      cairo_move_to (cr, round (x0 + c * sx) + 0.5, y0);
      cairo_line_to (cr, round (x0 + c * sx) + 0.5, y0 + g->grid_h * sy);
    }
  for (int r = 0; r <= g->grid_h; r++)
    {
      cairo_move_to (cr, x0, round (y0 + r * sy) + 0.5);
      cairo_line_to (cr, x0 + g->grid_w * sx, round (y0 + r * sy) + 0.5);
    }
  cairo_set_line_width (cr, 1.0);
  cairo_set_source_rgba (cr, 0, 0, 0, 0.5);
  cairo_stroke_preserve (cr);
  cairo_set_dash (cr, (double[]){ 3.0 }, 1, 0);
  cairo_set_source_rgba (cr, 1, 1, 1, 0.8);
  cairo_stroke (cr);
  cairo_destroy (cr);
}

/* Token numbers as vectors at a constant screen size, placed for this zoom. */
static void
append_labels (SetokCanvas *self, GtkSnapshot *snapshot, const SetokTokenMap *map,
               const graphene_rect_t *view)
{
  const setok_tokens_result *r = &map->result;
  cairo_t *cr;

  if (self->pieces == NULL)
    {
      self->n_pieces = token_overlay_find_pieces (r->pixel_labels, r->width, r->height,
                                                  r->clusters.n_tokens, &self->pieces);
      if (self->n_pieces < 0)
        return;
    }
  cr = gtk_snapshot_append_cairo (snapshot, view);
  token_overlay_draw_labels (cr, self->pieces, self->n_pieces, self->zoom, self->off_x,
                             self->off_y, LABEL_SIZE, NULL);
  cairo_destroy (cr);
}

/* The selection's outline, dark under light, the same width at every zoom. */
static void
append_outline (SetokCanvas *self, GtkSnapshot *snapshot, const graphene_rect_t *view)
{
  cairo_t *cr;

  if (self->n_outline_edges == 0)
    return;
  cr = gtk_snapshot_append_cairo (snapshot, view);
  for (int i = 0; i < self->n_outline_edges; i++)
    {
      const double *e = self->outline_edges + 4 * i;
      cairo_move_to (cr, self->off_x + e[0] * self->zoom, self->off_y + e[1] * self->zoom);
      cairo_line_to (cr, self->off_x + e[2] * self->zoom, self->off_y + e[3] * self->zoom);
    }
  cairo_set_line_cap (cr, CAIRO_LINE_CAP_SQUARE);
  cairo_set_source_rgba (cr, 0, 0, 0, 0.85);
  cairo_set_line_width (cr, 4.0);
  cairo_stroke_preserve (cr);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_set_line_width (cr, 2.0);
  cairo_stroke (cr);
  cairo_destroy (cr);
}

/* The selection drawn: the segmentation model's mask, else the selected tokens (map may be
 * NULL). */
static void
update_selection (SetokCanvas *self, const SetokTokenMap *map)
{
  SetokPicture *point_mask = setok_document_get_point_mask (self->document);
  GtkBitset *selection = setok_document_get_selection (self->document);
  g_autofree guint8 *inside = NULL;
  int w, h;

  self->selection_valid = TRUE;
  if (point_mask != NULL)
    {
      const setok_image *m = setok_picture_get_image (point_mask);

      w = m->width;
      h = m->height;
      inside = g_new (guint8, (gsize)w * h);
      for (gsize i = 0; i < (gsize)w * h; i++)
        inside[i] = m->pixels[i * m->channels] > 127;
    }
  else if (map != NULL && !gtk_bitset_is_empty (selection))
    {
      const setok_tokens_result *r = &map->result;

      w = r->width;
      h = r->height;
      inside = g_new (guint8, (gsize)w * h);
      for (gsize i = 0; i < (gsize)w * h; i++)
        inside[i] = r->pixel_labels[i] >= 0 && r->pixel_labels[i] < r->clusters.n_tokens
                    && gtk_bitset_contains (selection, (guint)r->pixel_labels[i]);
    }
  else
    return;
  self->selection = draw_selection (inside, w, h);
  self->outline_edges = selection_edges (inside, w, h, &self->n_outline_edges);
}

static void
append_overlay (SetokCanvas *self, GtkSnapshot *snapshot, const SetokTokenMap *map,
                const graphene_rect_t *bounds)
{
  const int *colours = setok_document_get_token_colours (self->document);

  if (self->overlay == NULL)
    self->overlay = draw_regions (map, colours,
                                  self->outline ? TOKEN_OVERLAY_OUTLINE : TOKEN_OVERLAY_FILL,
                                  1.0);
  if (self->boundaries == NULL && !self->outline)
    self->boundaries = draw_regions (map, colours, TOKEN_OVERLAY_FILL, 0.0);
  if (self->overlay != NULL && self->outline)
    append_image_texture (self, snapshot, self->overlay, bounds);
  else if (self->overlay != NULL)
    {
      gtk_snapshot_push_opacity (snapshot, self->opacity);
      append_image_texture (self, snapshot, self->overlay, bounds);
      gtk_snapshot_pop (snapshot);
    }
  if (self->boundaries != NULL && !self->outline)
    append_image_texture (self, snapshot, self->boundaries, bounds);
  if (self->hover == NULL && self->hovered >= 0 && self->hovered < map->result.clusters.n_tokens)
    self->hover = draw_hover (map, colours, self->hovered);
  if (self->hover != NULL)
    {
      const setok_token_region *g = &map->result.regions[self->hovered];
      graphene_rect_t box
        = GRAPHENE_RECT_INIT (self->off_x + g->x0 * self->zoom, self->off_y + g->y0 * self->zoom,
                              (g->x1 - g->x0) * self->zoom, (g->y1 - g->y0) * self->zoom);

      append_image_texture (self, snapshot, self->hover, &box);
    }
}

static void
setok_canvas_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  SetokCanvas *self = SETOK_CANVAS (widget);
  SetokPicture *picture = setok_document_get_display_picture (self->document);
  SetokTokenMap *map = setok_document_get_token_map (self->document);
  /* an edit's preview, result and original are all shown plain, the region outlined */
  gboolean editing = setok_document_get_edit_state (self->document) != SETOK_EDIT_IDLE;
  gboolean overlay = map != NULL && !editing && self->show_overlay
                     && (self->outline || self->opacity > 0);
  int iw, ih;
  graphene_rect_t bounds, view;

  image_size (self, &iw, &ih);
  bounds = GRAPHENE_RECT_INIT (self->off_x, self->off_y, iw * self->zoom, ih * self->zoom);
  view = GRAPHENE_RECT_INIT (0, 0, gtk_widget_get_width (widget), gtk_widget_get_height (widget));
  gtk_snapshot_push_clip (snapshot, &view);
  if (setok_picture_has_alpha (picture))
    append_checkerboard (snapshot, &bounds);
  append_image_texture (self, snapshot, setok_picture_get_texture (picture), &bounds);
  if (overlay)
    append_overlay (self, snapshot, map, &bounds);
  if (!self->selection_valid)
    update_selection (self, map);
  if (self->selection != NULL && !editing)
    append_image_texture (self, snapshot, self->selection, &bounds);
  if (map != NULL && self->show_grid && !editing)
    append_grid (self, snapshot, map, &view);
  if (overlay)
    append_labels (self, snapshot, map, &view);
  append_outline (self, snapshot, &view);
  gtk_snapshot_pop (snapshot);
}

static void
setok_canvas_size_allocate (GtkWidget *widget, int width, int height, int baseline)
{
  SetokCanvas *self = SETOK_CANVAS (widget);

  if (self->fit)
    apply_fit (self);
}

static void
setok_canvas_measure (GtkWidget *widget, GtkOrientation orientation, int for_size, int *minimum,
                      int *natural, int *minimum_baseline, int *natural_baseline)
{
  SetokCanvas *self = SETOK_CANVAS (widget);
  int iw, ih;

  image_size (self, &iw, &ih);
  *minimum = 64;
  *natural = MAX (64, MIN (orientation == GTK_ORIENTATION_HORIZONTAL ? iw : ih, 1024));
}

// ----------------------------------------------------------------------------
// the object

static void
token_map_changed (SetokCanvas *self)
{
  self->hovered = -1;
  g_clear_object (&self->hover);
  g_clear_pointer (&self->pieces, g_free);
  self->n_pieces = 0;
  invalidate_overlay (self);
  invalidate_selection (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_HOVERED_TOKEN]);
}

void
setok_canvas_set_overlay_opacity (SetokCanvas *self, double opacity)
{
  opacity = CLAMP (opacity, 0.0, 1.0);
  if (self->opacity == opacity)
    return;
  self->opacity = opacity;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
setok_canvas_set_show_overlay (SetokCanvas *self, gboolean show)
{
  self->show_overlay = show;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
setok_canvas_set_outline (SetokCanvas *self, gboolean outline)
{
  if (self->outline == !!outline)
    return;
  self->outline = !!outline;
  invalidate_overlay (self);
}

void
setok_canvas_set_show_grid (SetokCanvas *self, gboolean show)
{
  self->show_grid = show;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

int
setok_canvas_get_hovered_token (SetokCanvas *self)
{
  return self->hovered;
}

SetokDocument *
setok_canvas_get_document (SetokCanvas *self)
{
  return self->document;
}

static void
setok_canvas_set_document (SetokCanvas *self, SetokDocument *document)
{
  self->document = g_object_ref (document);
  self->map_handler = g_signal_connect_swapped (document, "notify::token-map",
                                                G_CALLBACK (token_map_changed), self);
  self->selection_handler = g_signal_connect_swapped (document, "selection-changed",
                                                      G_CALLBACK (invalidate_selection), self);
  self->display_handler = g_signal_connect_swapped (document, "notify::display-picture",
                                                    G_CALLBACK (gtk_widget_queue_draw), self);
  self->edit_handler = g_signal_connect_swapped (document, "notify::edit-state",
                                                 G_CALLBACK (gtk_widget_queue_draw), self);
  self->picture_handler = g_signal_connect_swapped (document, "notify::picture",
                                                    G_CALLBACK (gtk_widget_queue_resize), self);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  setok_document_get_title (document), -1);
}

static void
setok_canvas_dispose (GObject *object)
{
  SetokCanvas *self = SETOK_CANVAS (object);

  if (self->document != NULL)
    {
      g_clear_signal_handler (&self->map_handler, self->document);
      g_clear_signal_handler (&self->selection_handler, self->document);
      g_clear_signal_handler (&self->display_handler, self->document);
      g_clear_signal_handler (&self->edit_handler, self->document);
      g_clear_signal_handler (&self->picture_handler, self->document);
    }
  g_clear_object (&self->document);
  g_clear_object (&self->overlay);
  g_clear_object (&self->boundaries);
  g_clear_object (&self->hover);
  g_clear_object (&self->selection);
  g_clear_pointer (&self->outline_edges, g_free);
  g_clear_pointer (&self->pieces, g_free);
  G_OBJECT_CLASS (setok_canvas_parent_class)->dispose (object);
}

static void
setok_canvas_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  SetokCanvas *self = SETOK_CANVAS (object);

  switch (prop_id)
    {
      case PROP_DOCUMENT:
        g_value_set_object (value, self->document);
        break;
      case PROP_ZOOM:
        g_value_set_double (value, self->zoom);
        break;
      case PROP_HOVERED_TOKEN:
        g_value_set_int (value, self->hovered);
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
setok_canvas_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  SetokCanvas *self = SETOK_CANVAS (object);

  switch (prop_id)
    {
      case PROP_DOCUMENT:
        setok_canvas_set_document (self, g_value_get_object (value));
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
setok_canvas_class_init (SetokCanvasClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = setok_canvas_dispose;
  object_class->get_property = setok_canvas_get_property;
  object_class->set_property = setok_canvas_set_property;
  widget_class->snapshot = setok_canvas_snapshot;
  widget_class->size_allocate = setok_canvas_size_allocate;
  widget_class->measure = setok_canvas_measure;
  widget_class->query_tooltip = query_tooltip;

  properties[PROP_DOCUMENT]
    = g_param_spec_object ("document", NULL, NULL, SETOK_TYPE_DOCUMENT,
                           G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_ZOOM]
    = g_param_spec_double ("zoom", NULL, NULL, ZOOM_MIN, ZOOM_MAX, 1.0,
                           G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_HOVERED_TOKEN]
    = g_param_spec_int ("hovered-token", NULL, NULL, -1, G_MAXINT, -1,
                        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_css_name (widget_class, "setok-canvas");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
setok_canvas_init (SetokCanvas *self)
{
  GtkGesture *drag = gtk_gesture_drag_new ();
  GtkEventController *scroll_controller
    = gtk_event_controller_scroll_new (GTK_EVENT_CONTROLLER_SCROLL_BOTH_AXES);
  GtkEventController *motion_controller = gtk_event_controller_motion_new ();

  self->zoom = 1.0;
  self->fit = TRUE;
  self->opacity = TOKEN_OVERLAY_DEFAULT_ALPHA;
  self->show_overlay = TRUE;
  self->hovered = -1;
  self->pointer_x = self->pointer_y = -1;

  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (drag), 0);
  g_signal_connect (drag, "drag-begin", G_CALLBACK (drag_begin), self);
  g_signal_connect (drag, "drag-update", G_CALLBACK (drag_update), self);
  g_signal_connect (drag, "drag-end", G_CALLBACK (drag_end), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drag));
  g_signal_connect (scroll_controller, "scroll", G_CALLBACK (scroll), self);
  gtk_widget_add_controller (GTK_WIDGET (self), scroll_controller);
  g_signal_connect (motion_controller, "motion", G_CALLBACK (motion), self);
  g_signal_connect (motion_controller, "leave", G_CALLBACK (leave), self);
  gtk_widget_add_controller (GTK_WIDGET (self), motion_controller);
  gtk_widget_set_cursor_from_name (GTK_WIDGET (self), "crosshair");
  gtk_widget_set_focusable (GTK_WIDGET (self), TRUE);
  gtk_widget_set_has_tooltip (GTK_WIDGET (self), TRUE);
  gtk_widget_set_hexpand (GTK_WIDGET (self), TRUE);
  gtk_widget_set_vexpand (GTK_WIDGET (self), TRUE);
}

GtkWidget *
setok_canvas_new (SetokDocument *document)
{
  return g_object_new (SETOK_TYPE_CANVAS, "document", document, NULL);
}
