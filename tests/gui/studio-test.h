/* studio-test.h — helpers shared by the gui test's files (studio-test.c). */
#pragma once

#include <adwaita.h>

#include "setok-application.h"
#include "setok-window-private.h"

#define WAIT_SECONDS 180

/* Prints "ok" or "FAIL" with what and detail; failures counts the latter. */
extern int failures;
void check (gboolean ok, const char *what, const char *detail);

/* Main-loop responsiveness: the longest single iteration of the main context (what the
 * app's handlers took in one go) while each phase runs. Reported, not asserted. */
#define N_PHASES 6
extern const char *phase;
extern gint64 longest_us[N_PHASES];
extern const char *const phases[N_PHASES];

/* Time the test's own handlers spent inside an iteration, left out of its length. */
extern gint64 test_overhead_us;

typedef gboolean (*Predicate) (gpointer data);
void iterate (void);
/* Runs the main loop until pred holds (TRUE) or seconds pass (FALSE). */
gboolean wait_for (Predicate pred, gpointer data, double seconds);
void spin (double seconds);

gboolean model_settled (gpointer data);
/* The pictures hold the same pixels. */
gboolean same_pixels (SetokPicture *a, SetokPicture *b);
/* Pixels an edit changed inside mask (> 127) and outside it, before -> after (the same
 * size); a sentence saying so (free it). */
char *region_changes (SetokPicture *before, SetokPicture *after, SetokPicture *mask,
                      gint64 *inside, gint64 *outside);
/* The document's edit is not running (data: the document). */
gboolean edit_settled (gpointer data);
gboolean has_token_map (gpointer data);
gboolean nothing_loading (gpointer data);
gboolean canvas_allocated (gpointer data);
gboolean chat_idle (gpointer data);

/* The widget as drawn, through its paintable and the cairo renderer's node drawing. */
cairo_surface_t *render_widget (GtkWidget *widget);
/* The widget drawn at once by its own snapshot function (a frame may not come first). */
cairo_surface_t *draw_widget_now (GtkWidget *widget);
void save_png (cairo_surface_t *surface, const char *dir, const char *name);
guint32 pixel_at (cairo_surface_t *s, int x, int y);
int channel_diff (guint32 a, guint32 b);
/* Over the image's rectangle on the canvas, pixels where a and b differ by more than
 * tolerance; *total gets the pixels looked at. */
gint64 count_changed (SetokCanvas *canvas, cairo_surface_t *a, cairo_surface_t *b, int iw, int ih,
                      int tolerance, gint64 *total);
/* An image pixel deep inside token t, or its first pixel; FALSE when t has none. */
gboolean pixel_of_token (const SetokTokenMap *map, int t, int *px, int *py);
void widget_point_of_token (SetokCanvas *canvas, const SetokTokenMap *map, int t, double *x,
                            double *y);
/* The first widget of type in root's tree (root included), or NULL. */
GtkWidget *find_type (GtkWidget *root, GType type);
/* The shortcut for accel among popover's own (the application's, copied into it). */
GtkShortcut *popover_shortcut (GtkPopover *popover, const char *accel);
/* The header's subtitle. */
const char *window_subtitle (SetokWindow *window);
/* The whole window as it looks now, written to path. */
void save_window (SetokWindow *window, const char *path);

/* studio-layout.c: what is wrong with how root's widgets are laid out (a widget outside
 * its parent, a label cut short that is not in allowed[]), "" when nothing; checked gets
 * how many widgets were looked at. */
char *layout_problems (GtkWidget *root, GtkWidget *const *allowed, int n_allowed, int *checked);
/* The window at 360, 600, 800 and 1200 px: screenshots in out (and, for 360 and 1200, in
 * screenshots when it is not NULL). */
void test_layouts (SetokWindow *window, const char *out, const char *screenshots);

/* studio-guidance.c: the dialogs open and cut nothing short; then everything that
 * guides a person (examples, copy, clear and undo, kept conversations, the domain banner,
 * titles, controls, tab order, popover shortcuts, translations, whole pictures, colours). */
void test_dialogs (SetokWindow *window);
void test_guidance (SetokWindow *window, SetokEngine *engine, const char *image, const char *out);

/* studio-roles.c: a SAM folder (sam) segments and a Stable Diffusion folder (sd) edits beside
 * the main model: preferences, tooltips, refusals, clicks and an edit of SAM's mask. */
void test_roles (SetokWindow *window, SetokEngine *engine, const char *sam, const char *sd);
