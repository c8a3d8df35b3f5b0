/* studio-test.c — what the SeTok Studio gui tests share: checks, running the
 * main loop until something holds (timing each iteration), and rendering
 * widgets to pixels to look at them. */
#include "studio-test.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int failures;

void
check (gboolean ok, const char *what, const char *detail)
{
  printf ("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, detail != NULL ? ": " : "",
          detail != NULL ? detail : "");
  if (!ok)
    failures++;
}


/* Main-loop responsiveness: the longest single iteration of the main context (what the
 * app's handlers took in one go) while each phase runs. Reported, not asserted. */
const char *phase = "startup";
gint64 longest_us[N_PHASES];
const char *const phases[N_PHASES]
  = { "startup", "overlay recompute", "streaming chat", "other", "edit job", "generation job" };

gint64 test_overhead_us;

void
iterate (void)
{
  gint64 t0 = g_get_monotonic_time (), overhead = test_overhead_us;
  g_main_context_iteration (NULL, FALSE);
  /* what the test's own handlers took (saving snapshots) is not the app's */
  gint64 dt = g_get_monotonic_time () - t0 - (test_overhead_us - overhead);
  for (int i = 0; i < N_PHASES; i++)
    if (phase == phases[i] && dt > longest_us[i])
      longest_us[i] = dt;
}

/* Runs the main loop until pred holds or the time is up. */
gboolean
wait_for (Predicate pred, gpointer data, double seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64)(seconds * G_USEC_PER_SEC);

  while (!pred (data))
    {
      if (g_get_monotonic_time () > end)
        return FALSE;
      iterate ();
      g_usleep (1000);
    }
  return TRUE;
}

void
spin (double seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64)(seconds * G_USEC_PER_SEC);

  while (g_get_monotonic_time () < end)
    {
      iterate ();
      g_usleep (1000);
    }
}

gboolean
same_pixels (SetokPicture *a, SetokPicture *b)
{
  const setok_image *x = setok_picture_get_image (a), *y = setok_picture_get_image (b);

  return x->width == y->width && x->height == y->height && x->channels == y->channels
         && memcmp (x->pixels, y->pixels, (gsize)x->width * x->height * x->channels) == 0;
}

char *
region_changes (SetokPicture *before, SetokPicture *after, SetokPicture *mask, gint64 *inside,
                gint64 *outside)
{
  const setok_image *src = setok_picture_get_image (before);
  const setok_image *dst = setok_picture_get_image (after);
  const setok_image *m = setok_picture_get_image (mask);
  gint64 area = 0;

  *inside = *outside = 0;
  for (gsize i = 0; i < (gsize)src->width * src->height; i++)
    {
      gboolean differs
        = memcmp (src->pixels + i * src->channels, dst->pixels + i * src->channels, src->channels)
          != 0;

      area += m->pixels[i * m->channels] > 127;
      if (m->pixels[i * m->channels] > 127)
        *inside += differs;
      else
        *outside += differs;
    }
  return g_strdup_printf ("%" G_GINT64_FORMAT " of %" G_GINT64_FORMAT
                          " region pixels changed, %" G_GINT64_FORMAT " outside",
                          *inside, area, *outside);
}

gboolean
edit_settled (gpointer data)
{
  return setok_document_get_edit_state (data) != SETOK_EDIT_RUNNING;
}

gboolean
model_settled (gpointer data)
{
  return !setok_engine_get_loading (data);
}

gboolean
has_token_map (gpointer data)
{
  SetokWindow *window = data;
  SetokCanvas *canvas = _setok_window_get_canvas (window);

  return canvas != NULL && setok_document_get_token_map (setok_canvas_get_document (canvas)) != NULL
         && !setok_document_get_computing (setok_canvas_get_document (canvas));
}

gboolean
nothing_loading (gpointer data)
{
  return _setok_window_get_n_loading (data) == 0;
}

gboolean
canvas_allocated (gpointer data)
{
  SetokCanvas *canvas = _setok_window_get_canvas (data);

  return canvas != NULL && gtk_widget_get_width (GTK_WIDGET (canvas)) > 0
         && gtk_widget_get_mapped (GTK_WIDGET (canvas));
}

gboolean
chat_idle (gpointer data)
{
  return !setok_chat_view_get_busy (data);
}

/* What snapshot recorded, drawn over white into a w x h surface. */
static cairo_surface_t *
draw_snapshot (GtkSnapshot *snapshot, int w, int h)
{
  GskRenderNode *node = gtk_snapshot_free_to_node (snapshot);
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, w, h);
  cairo_t *cr = cairo_create (surface);

  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);
  if (node != NULL)
    {
      gsk_render_node_draw (node, cr);
      gsk_render_node_unref (node);
    }
  cairo_destroy (cr);
  cairo_surface_flush (surface);
  return surface;
}

/* The widget as drawn, through its paintable and the cairo renderer's node drawing. */
cairo_surface_t *
render_widget (GtkWidget *widget)
{
  int w = gtk_widget_get_width (widget), h = gtk_widget_get_height (widget);
  g_autoptr (GdkPaintable) paintable = gtk_widget_paintable_new (widget);
  GtkSnapshot *snapshot = gtk_snapshot_new ();

  gdk_paintable_snapshot (paintable, snapshot, w, h);
  return draw_snapshot (snapshot, w, h);
}

/* The widget drawn at once by its own snapshot function (a frame may not come first). */
cairo_surface_t *
draw_widget_now (GtkWidget *widget)
{
  GtkSnapshot *snapshot = gtk_snapshot_new ();

  GTK_WIDGET_GET_CLASS (widget)->snapshot (widget, snapshot);
  return draw_snapshot (snapshot, gtk_widget_get_width (widget), gtk_widget_get_height (widget));
}

void
save_png (cairo_surface_t *surface, const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  cairo_status_t st = cairo_surface_write_to_png (surface, path);

  check (st == CAIRO_STATUS_SUCCESS, "snapshot written", path);
}

guint32
pixel_at (cairo_surface_t *s, int x, int y)
{
  const guint8 *data = cairo_image_surface_get_data (s);
  int stride = cairo_image_surface_get_stride (s);

  return ((const guint32 *)(data + (gsize)y * stride))[x];
}

int
channel_diff (guint32 a, guint32 b)
{
  int d = 0;

  for (int shift = 0; shift < 24; shift += 8)
    d = MAX (d, abs ((int)(a >> shift & 0xff) - (int)(b >> shift & 0xff)));
  return d;
}

/* Counts, over the image's rectangle on the canvas, pixels where a and b
 * differ by more than tolerance; *total gets the pixels looked at. */
gint64
count_changed (SetokCanvas *canvas, cairo_surface_t *a, cairo_surface_t *b, int iw, int ih,
               int tolerance, gint64 *total)
{
  double x0, y0, x1, y1;
  int w = cairo_image_surface_get_width (a), h = cairo_image_surface_get_height (a);
  gint64 changed = 0;

  setok_canvas_image_to_widget (canvas, 0, 0, &x0, &y0);
  setok_canvas_image_to_widget (canvas, iw, ih, &x1, &y1);
  *total = 0;
  for (int y = MAX (0, (int)ceil (y0)); y < MIN (h, (int)floor (y1)); y++)
    for (int x = MAX (0, (int)ceil (x0)); x < MIN (w, (int)floor (x1)); x++)
      {
        (*total)++;
        changed += channel_diff (pixel_at (a, x, y), pixel_at (b, x, y)) > tolerance;
      }
  return changed;
}

/* An image pixel deep inside token t (all 8 neighbours carry t), or the
 * first pixel of t; FALSE when t has none. */
gboolean
pixel_of_token (const SetokTokenMap *map, int t, int *px, int *py)
{
  const setok_tokens_result *r = &map->result;
  gboolean found = FALSE;

  for (int y = 0; y < r->height; y++)
    for (int x = 0; x < r->width; x++)
      {
        gboolean inside = TRUE;

        if (r->pixel_labels[(gsize)y * r->width + x] != t)
          continue;
        if (!found)
          {
            *px = x, *py = y;
            found = TRUE;
          }
        for (int dy = -2; dy <= 2 && inside; dy++)
          for (int dx = -2; dx <= 2 && inside; dx++)
            {
              int xx = x + dx, yy = y + dy;
              inside = xx >= 0 && yy >= 0 && xx < r->width && yy < r->height
                       && r->pixel_labels[(gsize)yy * r->width + xx] == t;
            }
        if (inside)
          {
            *px = x, *py = y;
            return TRUE;
          }
      }
  return found;
}

void
widget_point_of_token (SetokCanvas *canvas, const SetokTokenMap *map, int t, double *x, double *y)
{
  int px = 0, py = 0;

  pixel_of_token (map, t, &px, &py);
  setok_canvas_image_to_widget (canvas, px + 0.5, py + 0.5, x, y);
}

/* The whole window as it looks now, for the README and the metainfo. */
void
save_window (SetokWindow *window, const char *path)
{
  cairo_surface_t *shot;

  spin (0.5);
  shot = render_widget (GTK_WIDGET (window));
  check (cairo_surface_write_to_png (shot, path) == CAIRO_STATUS_SUCCESS, "screenshot", path);
  cairo_surface_destroy (shot);
}

GtkWidget *
find_type (GtkWidget *root, GType type)
{
  if (g_type_is_a (G_OBJECT_TYPE (root), type))
    return root;
  for (GtkWidget *c = gtk_widget_get_first_child (root); c != NULL;
       c = gtk_widget_get_next_sibling (c))
    {
      GtkWidget *found = find_type (c, type);
      if (found != NULL)
        return found;
    }
  return NULL;
}

const char *
window_subtitle (SetokWindow *window)
{
  GtkWidget *title = find_type (GTK_WIDGET (window), ADW_TYPE_WINDOW_TITLE);

  return title != NULL ? adw_window_title_get_subtitle (ADW_WINDOW_TITLE (title)) : NULL;
}

/* A popover keeps the application's shortcuts (Ctrl+Q among them). */
GtkShortcut *
popover_shortcut (GtkPopover *popover, const char *accel)
{
  g_autoptr (GtkShortcutTrigger) want = gtk_shortcut_trigger_parse_string (accel);
  g_autoptr (GListModel) controllers = gtk_widget_observe_controllers (GTK_WIDGET (popover));

  for (guint i = 0; i < g_list_model_get_n_items (controllers); i++)
    {
      g_autoptr (GObject) c = g_list_model_get_item (controllers, i);

      if (!GTK_IS_SHORTCUT_CONTROLLER (c))
        continue;
      for (guint j = 0; j < g_list_model_get_n_items (G_LIST_MODEL (c)); j++)
        {
          g_autoptr (GtkShortcut) s = g_list_model_get_item (G_LIST_MODEL (c), j);

          if (gtk_shortcut_trigger_equal (gtk_shortcut_get_trigger (s), want))
            return s; /* the controller keeps it */
        }
    }
  return NULL;
}
