/* studio-layout.c — the window at the widths people use, from a phone's 360
 * pixels to a desktop's 1200: the window really takes each width (its
 * minimum is no wider), no widget lies outside its parent, no label is cut
 * short with an ellipsis unless it is one meant to be (titles, the token
 * status), the chat folds over the image below the breakpoint, and the
 * header and token controls make room. A screenshot of each width lands in
 * the output folder (and, for 360 and 1200 pixels, where --screenshots asks). */
#include "studio-test.h"

#include <stdio.h>

typedef struct
{
  GString *problems;
  int checked;
  GtkWidget *allowed[8]; /* labels that may end in an ellipsis, and their descendants */
} Walk;

static gboolean
is_allowed (Walk *walk, GtkWidget *widget)
{
  for (GtkWidget *w = widget; w != NULL; w = gtk_widget_get_parent (w))
    for (guint i = 0; i < G_N_ELEMENTS (walk->allowed); i++)
      if (walk->allowed[i] != NULL && walk->allowed[i] == w)
        return TRUE;
  return FALSE;
}

static const char *
describe (GtkWidget *widget)
{
  static char text[160];

  if (GTK_IS_LABEL (widget))
    g_snprintf (text, sizeof text, "%s “%s”", G_OBJECT_TYPE_NAME (widget),
                gtk_label_get_text (GTK_LABEL (widget)));
  else
    g_snprintf (text, sizeof text, "%s%s%s", G_OBJECT_TYPE_NAME (widget),
                gtk_widget_get_tooltip_text (widget) ? " " : "",
                gtk_widget_get_tooltip_text (widget) ? gtk_widget_get_tooltip_text (widget) : "");
  return text;
}

/* Whether a widget's children may lie outside it by design (scrolling, sliding, a
 * slider's knob over its trough). */
static gboolean
clips_children (GtkWidget *widget)
{
  for (GtkWidget *w = widget; w != NULL; w = gtk_widget_get_parent (w))
    if (GTK_IS_RANGE (w))
      return TRUE;
  return GTK_IS_VIEWPORT (widget) || GTK_IS_SCROLLED_WINDOW (widget) || ADW_IS_TAB_BAR (widget)
         || ADW_IS_FLAP (widget) || GTK_IS_REVEALER (widget);
}

static void
walk_widget (Walk *walk, GtkWidget *parent)
{
  int pw = gtk_widget_get_width (parent), ph = gtk_widget_get_height (parent);

  for (GtkWidget *child = gtk_widget_get_first_child (parent); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      graphene_rect_t b;

      if (!gtk_widget_get_mapped (child) || GTK_IS_NATIVE (child))
        continue;
      walk->checked++;
      if (!clips_children (parent) && gtk_widget_compute_bounds (child, parent, &b)
          && (b.origin.x < -1 || b.origin.y < -1 || b.origin.x + b.size.width > pw + 1
              || b.origin.y + b.size.height > ph + 1))
        g_string_append_printf (walk->problems,
                                "%s outside its %s (%.0f,%.0f %.0f×%.0f in %d×%d); ",
                                describe (child), G_OBJECT_TYPE_NAME (parent), b.origin.x,
                                b.origin.y, b.size.width, b.size.height, pw, ph);
      if (GTK_IS_LABEL (child)
          && pango_layout_is_ellipsized (gtk_label_get_layout (GTK_LABEL (child)))
          && !is_allowed (walk, child))
        g_string_append_printf (walk->problems, "%s cut short; ", describe (child));
      walk_widget (walk, child);
    }
}

/* What is wrong with how root's widgets are laid out now; "" when nothing. */
char *
layout_problems (GtkWidget *root, GtkWidget *const *allowed, int n_allowed, int *checked)
{
  Walk walk = { g_string_new (NULL), 0, { NULL } };

  for (int i = 0; i < n_allowed && i < (int)G_N_ELEMENTS (walk.allowed); i++)
    walk.allowed[i] = allowed[i];
  walk_widget (&walk, root);
  *checked = walk.checked;
  return g_string_free (walk.problems, FALSE);
}

/* Where a minimum width comes from: the chain of widgets down the widest minimum. */
static char *
widest_minimum (GtkWidget *root)
{
  GString *chain = g_string_new (NULL);

  for (GtkWidget *w = root; w != NULL;)
    {
      GtkWidget *widest = NULL;
      int widest_min = -1;

      for (GtkWidget *c = gtk_widget_get_first_child (w); c != NULL;
           c = gtk_widget_get_next_sibling (c))
        {
          int min = 0;

          if (!gtk_widget_get_visible (c) || GTK_IS_NATIVE (c))
            continue;
          gtk_widget_measure (c, GTK_ORIENTATION_HORIZONTAL, -1, &min, NULL, NULL, NULL);
          if (min > widest_min)
            widest = c, widest_min = min;
        }
      if (widest != NULL)
        g_string_append_printf (chain, "%s%s %d", chain->len ? " > " : "", describe (widest),
                                widest_min);
      w = widest;
    }
  return g_string_free (chain, FALSE);
}

typedef struct
{
  GtkWidget *widget;
  int width, height;
} Width;

/* The window's width on screen, its frame included. */
static int
window_width (GtkWidget *window)
{
  GdkSurface *surface = gtk_native_get_surface (GTK_NATIVE (window));

  return surface != NULL ? gdk_surface_get_width (surface) : 0;
}

/* Asks for the width again while the window's minimum shrinks as it folds, as a person
 * dragging its edge would. */
static gboolean
has_width (gpointer data)
{
  Width *w = data;

  if (window_width (w->widget) == w->width)
    return TRUE;
  gtk_window_set_default_size (GTK_WINDOW (w->widget), w->width, w->height);
  return FALSE;
}

/* Hovers the largest token but one (the background is usually the largest). */
static void
hover_largest_object (SetokWindow *window)
{
  SetokCanvas *canvas = _setok_window_get_canvas (window);
  SetokTokenMap *map = setok_document_get_token_map (setok_canvas_get_document (canvas));
  int first = -1, second = -1;
  double x, y;

  for (int t = 0; map != NULL && t < map->result.clusters.n_tokens; t++)
    {
      gint64 area = map->result.regions[t].area;
      if (first < 0 || area > map->result.regions[first].area)
        second = first, first = t;
      else if (second < 0 || area > map->result.regions[second].area)
        second = t;
    }
  if (second < 0)
    return;
  widget_point_of_token (canvas, map, second, &x, &y);
  setok_canvas_hover (canvas, x, y);
}

void
test_layouts (SetokWindow *window, const char *out, const char *screenshots)
{
  static const struct
  {
    int width, height;
    gboolean folded;
  } sizes[] = { { 360, 640, TRUE }, { 600, 600, TRUE }, { 800, 600, FALSE }, { 1200, 800, FALSE } };
  GtkWidget *title = find_type (GTK_WIDGET (window), ADW_TYPE_WINDOW_TITLE);
  SetokTokenControls *inline_controls = _setok_window_get_token_controls (window, FALSE);
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      Width want = { GTK_WIDGET (window), sizes[i].width, sizes[i].height };
      g_autofree char *name = g_strdup_printf ("studio-window-%d.png", sizes[i].width);
      g_autofree char *path = g_build_filename (out, name, NULL);
      g_autofree char *what = NULL;
      g_autofree char *problems = NULL;
      GtkWidget *allowed[] = { title, GTK_WIDGET (_setok_window_get_token_bar (window)), NULL };
      int checked = 0;

      what = g_strdup_printf ("the window takes %d × %d px", sizes[i].width, sizes[i].height);
      wait_for (has_width, &want, 10);
      {
        g_autofree char *chain = widest_minimum (GTK_WIDGET (window));
        g_autofree char *got = g_strdup_printf ("%d px wide; the widest minimum: %s",
                                                window_width (want.widget), chain);
        check (window_width (want.widget) == sizes[i].width, what, got);
      }
      spin (0.5);
      problems = layout_problems (GTK_WIDGET (window), allowed, 2, &checked);
      g_free (what);
      what = g_strdup_printf ("at %d px nothing is clipped or cut short (%d widgets)",
                              sizes[i].width, checked);
      check (problems[0] == '\0', what, problems[0] != '\0' ? problems : NULL);
      g_free (what);
      what = g_strdup_printf ("at %d px the chat is %s the image", sizes[i].width,
                              sizes[i].folded ? "folded over" : "beside");
      check (_setok_window_get_folded (window) == sizes[i].folded, what, NULL);
      if (sizes[i].width == 1200)
        {
          int min = 0, natural = 0;
          g_autofree char *detail = NULL;

          gtk_widget_measure (GTK_WIDGET (inline_controls), GTK_ORIENTATION_HORIZONTAL, -1, &min,
                              &natural, NULL, NULL);
          detail = g_strdup_printf ("they need %d px, the bar is %d px", min,
                                    gtk_widget_get_width (_setok_window_get_token_bar (window)));
          check (gtk_widget_get_mapped (GTK_WIDGET (inline_controls)),
                 "at 1200 px the token controls are in a row", detail);
        }
      if (sizes[i].width == 360)
        check (!gtk_widget_get_mapped (GTK_WIDGET (inline_controls)),
               "at 360 px the token controls are behind a button", NULL);
      /* as a person sees it: a token under the pointer, the zoom controls hidden */
      _setok_window_pointer_motion (window, FALSE);
      hover_largest_object (window);
      save_window (window, path);
      if (screenshots != NULL && (sizes[i].width == 360 || sizes[i].width == 1200))
        {
          g_autofree char *shot_name = g_strdup_printf ("setok-studio-%d.png", sizes[i].width);
          g_autofree char *shot = g_build_filename (screenshots, shot_name, NULL);
          save_window (window, shot);
        }
      setok_canvas_hover (_setok_window_get_canvas (window), -1, -1);
      if (sizes[i].folded)
        {
          /* the chat slides over the image, and goes again */
          g_autofree char *chat_name = g_strdup_printf ("studio-window-%d-chat.png",
                                                        sizes[i].width);
          g_autofree char *chat_path = g_build_filename (out, chat_name, NULL);

          _setok_window_set_chat_revealed (window, TRUE);
          spin (0.6);
          check (_setok_window_get_chat_revealed (window), "the folded chat opens", NULL);
          save_window (window, chat_path);
          g_free (problems);
          problems = layout_problems (GTK_WIDGET (window), allowed, 2, &checked);
          check (problems[0] == '\0', "the open chat is not clipped",
                 problems[0] != '\0' ? problems : NULL);
          _setok_window_set_chat_revealed (window, FALSE);
          spin (0.6);
        }
    }
}
