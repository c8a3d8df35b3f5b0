/* eval-plots.c — the charts of `setok eval`, drawn with cairo: tokens per
 * image against objects per image, question-answering accuracy by type, the
 * clustering ablation, and generation and editing (rates per attribute and
 * per edit kind). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "eval.h"
#include "setok-config.h"

#if SETOK_HAVE_CAIRO
#include <cairo.h>

enum
{
  W = 640,
  H = 420,
  LEFT = 70,
  RIGHT = 20,
  TOP = 50,
  BOTTOM = 60
};

static void
frame (cairo_t *cr, const char *title, const char *xlabel, const char *ylabel, double ymax,
       int yticks)
{
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);
  cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size (cr, 16);
  cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
  cairo_move_to (cr, LEFT, 30);
  cairo_show_text (cr, title);
  cairo_select_font_face (cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size (cr, 12);
  cairo_set_line_width (cr, 1);
  for (int i = 0; i <= yticks; i++)
    {
      double v = ymax * i / yticks, y = H - BOTTOM - (H - TOP - BOTTOM) * (double)i / yticks;
      cairo_set_source_rgb (cr, 0.88, 0.88, 0.88);
      cairo_move_to (cr, LEFT, y);
      cairo_line_to (cr, W - RIGHT, y);
      cairo_stroke (cr);
      char buf[32];
      snprintf (buf, sizeof buf, ymax <= 1.0 ? "%.1f" : "%.0f", v);
      cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
      cairo_move_to (cr, LEFT - 36, y + 4);
      cairo_show_text (cr, buf);
    }
  cairo_set_source_rgb (cr, 0.2, 0.2, 0.2);
  cairo_move_to (cr, LEFT, H - BOTTOM);
  cairo_line_to (cr, W - RIGHT, H - BOTTOM);
  cairo_move_to (cr, LEFT, TOP);
  cairo_line_to (cr, LEFT, H - BOTTOM);
  cairo_stroke (cr);
  cairo_move_to (cr, (W + LEFT) / 2.0 - 40, H - 15);
  cairo_show_text (cr, xlabel);
  cairo_save (cr);
  cairo_move_to (cr, 18, (H + TOP) / 2.0 + 40);
  cairo_rotate (cr, -M_PI / 2);
  cairo_show_text (cr, ylabel);
  cairo_restore (cr);
}

/* Bars of values in [0, 1] with their labels under them. */
static void
bars (cairo_t *cr, const char *const *labels, const double *values, int n)
{
  double slot = (double)(W - LEFT - RIGHT) / n, plot_h = H - TOP - BOTTOM;
  for (int i = 0; i < n; i++)
    {
      double v = isfinite (values[i]) ? values[i] : 0.0, x = LEFT + slot * i + slot * 0.2;
      cairo_set_source_rgb (cr, 0.21, 0.52, 0.89);
      cairo_rectangle (cr, x, H - BOTTOM - plot_h * v, slot * 0.6, plot_h * v);
      cairo_fill (cr);
      char buf[32];
      snprintf (buf, sizeof buf, "%.2f", v);
      cairo_set_source_rgb (cr, 0.1, 0.1, 0.1);
      cairo_move_to (cr, x + slot * 0.1, H - BOTTOM - plot_h * v - 6);
      cairo_show_text (cr, buf);
      cairo_move_to (cr, x, H - BOTTOM + 18);
      cairo_show_text (cr, labels[i]);
    }
}

static setok_status
save (cairo_surface_t *s, const char *dir, const char *name, setok_error *err)
{
  char path[4096];
  snprintf (path, sizeof path, "%s/%s", dir, name);
  cairo_status_t cs = cairo_surface_write_to_png (s, path);
  return cs == CAIRO_STATUS_SUCCESS ? SETOK_OK
                                    : setok_fail (err, SETOK_ERR_RUNTIME, "%s: cannot write (%s)",
                                                  path, cairo_status_to_string (cs));
}

setok_status
eval_plots (const eval_results *r, const char *dir, setok_error *err)
{
  if (mkdir (dir, 0755) != 0 && errno != EEXIST)
    return setok_fail (err, SETOK_ERR_RUNTIME, "%s: cannot create the folder (%s)", dir,
                       strerror (errno));
  cairo_surface_t *s = cairo_image_surface_create (CAIRO_FORMAT_RGB24, W, H);
  cairo_t *cr = cairo_create (s);
  /* tokens vs objects: a dot per image, a little jitter so equal counts stay visible */
  double tmax = 1, omax = 1;
  for (int i = 0; i < r->n_scenes; i++)
    {
      tmax = fmax (tmax, r->tokens[i]);
      omax = fmax (omax, r->objects[i]);
    }
  /* whole-number ticks: a step of 1, 2, ... so that at most 10 intervals fit */
  double step = ceil ((tmax + 1) / 10.0);
  tmax = step * ceil ((tmax + 1) / step);
  omax = ceil (omax + 1);
  char title[96];
  snprintf (title, sizeof title, "Tokens per image vs objects (Spearman rho %.2f)", r->spearman);
  frame (cr, title, "objects in the scene", "SeTok tokens", tmax, (int)(tmax / step));
  cairo_set_source_rgba (cr, 0.21, 0.52, 0.89, 0.5);
  uint32_t jit = 12345u;
  for (int i = 0; i < r->n_scenes; i++)
    {
      jit = jit * 1664525u + 1013904223u;
      double jx = ((jit >> 8) / 16777216.0 - 0.5) * 0.4;
      double x = LEFT + (W - LEFT - RIGHT) * (r->objects[i] + jx) / omax;
      double y = H - BOTTOM - (H - TOP - BOTTOM) * r->tokens[i] / tmax;
      cairo_arc (cr, x, y, 3.5, 0, 2 * M_PI);
      cairo_fill (cr);
    }
  cairo_set_source_rgb (cr, 0.3, 0.3, 0.3);
  for (int o = 0; o <= (int)omax; o++)
    {
      char buf[8];
      snprintf (buf, sizeof buf, "%d", o);
      cairo_move_to (cr, LEFT + (W - LEFT - RIGHT) * o / omax - 3, H - BOTTOM + 16);
      cairo_show_text (cr, buf);
    }
  setok_status st = save (s, dir, "tokens-vs-objects.png", err);
  /* accuracy by question type */
  if (st == SETOK_OK && r->n_types > 0)
    {
      const char *labels[EVAL_MAX_TYPES + 1];
      double values[EVAL_MAX_TYPES + 1];
      labels[0] = "all";
      values[0] = (double)r->qa_correct / r->qa_total;
      for (int i = 0; i < r->n_types; i++)
        {
          labels[i + 1] = r->types[i].name;
          values[i + 1] = (double)r->types[i].correct / r->types[i].total;
        }
      frame (cr, "Question answering accuracy by type", "question type", "accuracy", 1.0, 5);
      bars (cr, labels, values, r->n_types + 1);
      st = save (s, dir, "qa-by-type.png", err);
    }
  if (st == SETOK_OK)
    {
      char fixed[32];
      snprintf (fixed, sizeof fixed, "fixed k=%d", r->fixed_k);
      const char *labels[EVAL_PASSES] = { "density peaks", fixed, "soft", "dpc, refined masks" };
      frame (cr, "Clustering ablation: token-object alignment", "clustering", "mean best IoU", 1.0,
             5);
      bars (cr, labels, r->alignment, EVAL_PASSES);
      st = save (s, dir, "ablation.png", err);
    }
  if (st == SETOK_OK && r->gen.available)
    {
      const eval_gen_results *g = &r->gen;
      const char *labels[5 + EVAL_EDIT_KINDS];
      double values[5 + EVAL_EDIT_KINDS];
      int n = 0;
      const char *gen_labels[5] = { "both", "colour", "shape", "prompt", "edit" };
      const int num[5]
        = { g->found, g->colour_found, g->shape_found, g->satisfied, g->edit_success };
      const int den[5] = { g->named, g->named, g->named, g->prompts, g->edits };
      for (int i = 0; i < 5; i++, n++)
        {
          labels[n] = gen_labels[i];
          values[n] = den[i] > 0 ? (double)num[i] / den[i] : NAN;
        }
      for (int k = 0; k < EVAL_EDIT_KINDS; k++)
        if (g->kinds[k].total > 0)
          {
            labels[n] = eval_edit_kind_names[k];
            values[n++] = (double)g->kinds[k].success / g->kinds[k].total;
          }
      frame (cr, "Generation (objects found) and editing (success)", "attribute / edit kind",
             "rate", 1.0, 5);
      bars (cr, labels, values, n);
      st = save (s, dir, "generation.png", err);
    }
  cairo_destroy (cr);
  cairo_surface_destroy (s);
  return st;
}

#else

setok_status
eval_plots (const eval_results *r, const char *dir, setok_error *err)
{
  (void)r;
  return setok_fail (err, SETOK_ERR_UNSUPPORTED, "%s: this build has no cairo to draw plots", dir);
}

#endif
