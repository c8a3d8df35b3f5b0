/* setok-document.c — one open image and what the engine made of it.
 *
 * The document keeps its pictures as a list of revisions with a current
 * index: applied edits add revisions and undo steps back through them. The
 * pictures are immutable, so undo gives back the very pixels it had. The
 * token map and the selection belong to the current revision. The selection
 * is either tokens or, with a SAM folder in the segmentation role, the mask
 * the segmentation model found under the clicked points. "Modified"
 * means the current revision is not the one last saved (or loaded). */
#include "setok-document.h"

#include <glib/gi18n.h>

#include "setok-error.h"
#include "token-overlay.h"

#define RECOMPUTE_DELAY_MS 250

struct _SetokDocument
{
  GObject parent_instance;

  SetokEngine *engine;
  GFile *file;
  char *title;
  GPtrArray *revisions; /* of SetokPicture */
  guint revision;
  SetokPicture *saved; /* the revision in file, or NULL */

  SetokTokenMap *token_map;
  int *token_colours;            /* [n_tokens] palette entries of token_map's tokens */
  SetokTokenMap *colour_map;     /* the last map coloured, kept so the next follows it */
  int *colour_map_colours;
  GtkBitset *selection;
  GArray *points;                /* of setok_segment_point: the clicks point_mask is of */
  SetokPicture *point_mask;      /* the segmentation model's mask of them; NULL: none */
  GCancellable *segment_cancellable;
  char *content_key;
  gboolean generated;

  setok_cluster_params wanted;
  gboolean have_wanted;
  guint recompute_source;
  GCancellable *tokens_cancellable;
  gboolean computing;

  SetokEditState edit_state;
  GCancellable *edit_cancellable;
  double edit_progress;
  SetokPicture *edit_preview; /* RUNNING: the latest preview */
  SetokPicture *edit_result;  /* REVIEW */
  gboolean show_original;
  /* the edit under way or in review, to try again */
  char *edit_instruction;
  SetokDiffusionRequest edit_request;
  SetokPicture *edit_mask;
};

G_DEFINE_FINAL_TYPE (SetokDocument, setok_document, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_TITLE,
  PROP_FILE,
  PROP_PICTURE,
  PROP_DISPLAY_PICTURE,
  PROP_MODIFIED,
  PROP_CAN_UNDO,
  PROP_CAN_REDO,
  PROP_TOKEN_MAP,
  PROP_COMPUTING,
  PROP_EDIT_STATE,
  PROP_EDIT_PROGRESS,
  PROP_SHOW_ORIGINAL,
  N_PROPS
};

enum
{
  SELECTION_CHANGED,
  FAILED,
  EDIT_FAILED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

static void
set_computing (SetokDocument *self, gboolean computing)
{
  if (self->computing == computing)
    return;
  self->computing = computing;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_COMPUTING]);
}

/* The new map's colours follow the last one's wherever their tokens overlap, so a token
 * keeps its colour across recomputes and edits; then the new map is the one to follow. */
static void
colour_tokens (SetokDocument *self)
{
  const setok_tokens_result *r = &self->token_map->result;
  const setok_tokens_result *old = self->colour_map != NULL ? &self->colour_map->result : NULL;
  int n = r->clusters.n_tokens;
  gboolean same_size = old != NULL && old->width == r->width && old->height == r->height;

  g_free (self->token_colours);
  self->token_colours = g_new (int, MAX (n, 1));
  token_overlay_match_colours (same_size ? old->pixel_labels : NULL, self->colour_map_colours,
                               same_size ? old->clusters.n_tokens : 0, r->pixel_labels, n,
                               (gint64)r->width * r->height, self->token_colours);
  g_clear_pointer (&self->colour_map, setok_token_map_unref);
  self->colour_map = setok_token_map_ref (self->token_map);
  g_free (self->colour_map_colours);
  self->colour_map_colours = g_memdup2 (self->token_colours, sizeof (int) * MAX (n, 1));
}

const int *
setok_document_get_token_colours (SetokDocument *self)
{
  return self->token_map != NULL ? self->token_colours : NULL;
}

static void
tokens_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (SetokDocument) self = user_data;
  g_autoptr (GError) error = NULL;
  SetokTokenMap *map = setok_engine_tokens_finish (SETOK_ENGINE (source), result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return; /* a newer request replaced this one */
  g_clear_object (&self->tokens_cancellable);
  set_computing (self, FALSE);
  if (map == NULL)
    {
      g_signal_emit (self, signals[FAILED], 0, error);
      return;
    }
  g_clear_pointer (&self->token_map, setok_token_map_unref);
  self->token_map = map;
  colour_tokens (self);
  gtk_bitset_remove_all (self->selection);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TOKEN_MAP]);
  g_signal_emit (self, signals[SELECTION_CHANGED], 0);
}

static void
start_tokens (SetokDocument *self)
{
  if (self->tokens_cancellable != NULL)
    g_cancellable_cancel (self->tokens_cancellable);
  g_clear_object (&self->tokens_cancellable);
  self->tokens_cancellable = g_cancellable_new ();
  set_computing (self, TRUE);
  setok_engine_tokens_async (self->engine, setok_document_get_picture (self), &self->wanted,
                             self->tokens_cancellable, tokens_done, g_object_ref (self));
}

static gboolean
recompute_timeout (gpointer user_data)
{
  SetokDocument *self = user_data;

  self->recompute_source = 0;
  start_tokens (self);
  return G_SOURCE_REMOVE;
}

void
setok_document_request_tokens (SetokDocument *self, const setok_cluster_params *params)
{
  g_return_if_fail (SETOK_IS_DOCUMENT (self));

  if (self->have_wanted && memcmp (&self->wanted, params, sizeof *params) == 0
      && (self->token_map != NULL || self->computing))
    return;
  self->wanted = *params;
  self->have_wanted = TRUE;
  g_clear_handle_id (&self->recompute_source, g_source_remove);
  self->recompute_source = g_timeout_add (RECOMPUTE_DELAY_MS, recompute_timeout, self);
}

void
setok_document_recompute (SetokDocument *self)
{
  g_return_if_fail (SETOK_IS_DOCUMENT (self));

  if (!self->have_wanted)
    return;
  g_clear_handle_id (&self->recompute_source, g_source_remove);
  start_tokens (self);
}

static void
notify (SetokDocument *self, int prop)
{
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

/* Forgets the clicked points and their mask (without telling). */
static void
clear_points (SetokDocument *self)
{
  if (self->segment_cancellable != NULL)
    g_cancellable_cancel (self->segment_cancellable);
  g_clear_object (&self->segment_cancellable);
  g_array_set_size (self->points, 0);
  g_clear_pointer (&self->point_mask, setok_picture_unref);
}

/* After the revision changed: the old token map describes other pixels. */
static void
picture_changed (SetokDocument *self)
{
  g_object_freeze_notify (G_OBJECT (self));
  notify (self, PROP_PICTURE);
  notify (self, PROP_DISPLAY_PICTURE);
  notify (self, PROP_MODIFIED);
  notify (self, PROP_CAN_UNDO);
  notify (self, PROP_CAN_REDO);
  if (self->token_map != NULL)
    {
      g_clear_pointer (&self->token_map, setok_token_map_unref);
      gtk_bitset_remove_all (self->selection);
      notify (self, PROP_TOKEN_MAP);
    }
  clear_points (self);
  g_object_thaw_notify (G_OBJECT (self));
  g_signal_emit (self, signals[SELECTION_CHANGED], 0);
  if (self->have_wanted)
    setok_document_recompute (self);
}

gboolean
setok_document_get_modified (SetokDocument *self)
{
  return self->saved != setok_document_get_picture (self);
}

void
setok_document_set_unsaved (SetokDocument *self)
{
  g_return_if_fail (SETOK_IS_DOCUMENT (self));

  g_clear_pointer (&self->saved, setok_picture_unref);
  notify (self, PROP_MODIFIED);
}

void
setok_document_push_picture (SetokDocument *self, SetokPicture *picture)
{
  g_return_if_fail (SETOK_IS_DOCUMENT (self));

  g_ptr_array_set_size (self->revisions, self->revision + 1);
  g_ptr_array_add (self->revisions, setok_picture_ref (picture));
  self->revision++;
  picture_changed (self);
}

gboolean
setok_document_get_can_undo (SetokDocument *self)
{
  return self->revision > 0 && self->edit_state == SETOK_EDIT_IDLE;
}

gboolean
setok_document_get_can_redo (SetokDocument *self)
{
  return self->revision + 1 < self->revisions->len && self->edit_state == SETOK_EDIT_IDLE;
}

void
setok_document_undo (SetokDocument *self)
{
  g_return_if_fail (SETOK_IS_DOCUMENT (self));

  if (!setok_document_get_can_undo (self))
    return;
  self->revision--;
  picture_changed (self);
}

void
setok_document_redo (SetokDocument *self)
{
  g_return_if_fail (SETOK_IS_DOCUMENT (self));

  if (!setok_document_get_can_redo (self))
    return;
  self->revision++;
  picture_changed (self);
}

// ----------------------------------------------------------------------------
// saving: the picture goes to a temporary file beside the target, renamed over it once
// complete (setok_file_replace), so a failed save leaves the file as it was and the
// document modified

static void
save_in_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SetokPicture *picture = task_data;
  GFile *file = g_object_get_data (G_OBJECT (task), "file");
  g_autofree char *path = g_file_get_path (file);
  GError *error = NULL;

  if (path == NULL)
    g_task_return_new_error (task, SETOK_ERROR, SETOK_ERR_INPUT, _ ("%s is not a local file"),
                             g_file_peek_path (file));
  else if (!setok_picture_save (picture, path, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

void
setok_document_save_async (SetokDocument *self, GFile *file, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_return_if_fail (SETOK_IS_DOCUMENT (self));
  g_task_set_source_tag (task, setok_document_save_async);
  /* the revision being written, which is what "saved" will mean */
  g_task_set_task_data (task, setok_picture_ref (setok_document_get_picture (self)),
                        (GDestroyNotify)setok_picture_unref);
  g_object_set_data_full (G_OBJECT (task), "file", g_object_ref (file), g_object_unref);
  g_task_run_in_thread (task, save_in_thread);
}

gboolean
setok_document_save_finish (SetokDocument *self, GAsyncResult *result, GError **error)
{
  GTask *task = G_TASK (result);
  GFile *file = g_object_get_data (G_OBJECT (task), "file");

  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  if (!g_task_propagate_boolean (task, error))
    return FALSE;
  g_object_freeze_notify (G_OBJECT (self));
  if (self->file == NULL || !g_file_equal (self->file, file))
    {
      g_set_object (&self->file, file);
      g_free (self->title);
      self->title = g_file_get_basename (file);
      notify (self, PROP_FILE);
      notify (self, PROP_TITLE);
    }
  g_clear_pointer (&self->saved, setok_picture_unref);
  self->saved = setok_picture_ref (g_task_get_task_data (task));
  notify (self, PROP_MODIFIED);
  g_object_thaw_notify (G_OBJECT (self));
  return TRUE;
}

// ----------------------------------------------------------------------------
// region edits

static void
set_edit_state (SetokDocument *self, SetokEditState state)
{
  if (self->edit_state == state)
    return;
  self->edit_state = state;
  g_object_freeze_notify (G_OBJECT (self));
  notify (self, PROP_EDIT_STATE);
  notify (self, PROP_DISPLAY_PICTURE);
  notify (self, PROP_CAN_UNDO);
  notify (self, PROP_CAN_REDO);
  g_object_thaw_notify (G_OBJECT (self));
}

SetokPicture *
setok_document_get_selection_mask (SetokDocument *self)
{
  const SetokTokenMap *map = self->token_map;
  const setok_image *img = setok_picture_get_image (setok_document_get_picture (self));
  setok_image mask = { 0 };
  setok_error err = { 0 };
  gboolean any = FALSE;

  if (self->point_mask != NULL)
    return setok_picture_ref (self->point_mask);
  if (map == NULL || gtk_bitset_is_empty (self->selection) || map->result.pixel_labels == NULL
      || map->result.width != img->width || map->result.height != img->height)
    return NULL;
  if (setok_image_alloc (&mask, img->width, img->height, 1, &err) != SETOK_OK)
    return NULL;
  for (gsize i = 0; i < (gsize)img->width * img->height; i++)
    {
      int32_t t = map->result.pixel_labels[i];

      mask.pixels[i] = t >= 0 && gtk_bitset_contains (self->selection, (guint)t) ? 255 : 0;
      any |= mask.pixels[i] != 0;
    }
  if (!any)
    {
      setok_image_free (&mask);
      return NULL;
    }
  return setok_picture_new_take (&mask);
}

static void
edit_progress (int step, int total, SetokPicture *preview, gpointer user_data)
{
  SetokDocument *self = user_data;

  if (self->edit_state != SETOK_EDIT_RUNNING)
    return;
  self->edit_progress = total > 0 ? CLAMP ((double)step / total, 0.0, 1.0) : 0.0;
  notify (self, PROP_EDIT_PROGRESS);
  if (preview != NULL)
    {
      g_clear_pointer (&self->edit_preview, setok_picture_unref);
      self->edit_preview = setok_picture_ref (preview);
      notify (self, PROP_DISPLAY_PICTURE);
    }
}

static void
edit_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (SetokDocument) self = user_data;
  g_autoptr (GError) error = NULL;
  SetokPicture *picture = setok_engine_edit_finish (SETOK_ENGINE (source), result, &error);

  g_clear_object (&self->edit_cancellable);
  g_clear_pointer (&self->edit_preview, setok_picture_unref);
  if (picture == NULL)
    {
      set_edit_state (self, SETOK_EDIT_IDLE);
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_signal_emit (self, signals[EDIT_FAILED], 0, error);
      return;
    }
  g_clear_pointer (&self->edit_result, setok_picture_unref);
  self->edit_result = picture;
  self->show_original = FALSE;
  notify (self, PROP_SHOW_ORIGINAL);
  set_edit_state (self, SETOK_EDIT_REVIEW);
}

static void
start_edit (SetokDocument *self)
{
  self->edit_cancellable = g_cancellable_new ();
  self->edit_progress = 0;
  notify (self, PROP_EDIT_PROGRESS);
  set_edit_state (self, SETOK_EDIT_RUNNING);
  /* the document outlives the job (the callback holds it), so progress may point at it */
  setok_engine_edit_async (self->engine, setok_document_get_picture (self), self->edit_mask,
                           self->edit_instruction, &self->edit_request, edit_progress, self,
                           self->edit_cancellable, edit_done, g_object_ref (self));
}

gboolean
setok_document_edit (SetokDocument *self, const char *instruction,
                     const SetokDiffusionRequest *request)
{
  g_autoptr (SetokPicture) mask = NULL;

  g_return_val_if_fail (SETOK_IS_DOCUMENT (self), FALSE);

  if (self->edit_state != SETOK_EDIT_IDLE)
    return FALSE;
  mask = setok_document_get_selection_mask (self);
  if (mask == NULL)
    return FALSE;
  g_clear_pointer (&self->edit_mask, setok_picture_unref);
  self->edit_mask = g_steal_pointer (&mask);
  g_free (self->edit_instruction);
  self->edit_instruction = g_strdup (instruction);
  self->edit_request = *request;
  start_edit (self);
  return TRUE;
}

gboolean
setok_document_try_again (SetokDocument *self, guint64 seed)
{
  g_return_val_if_fail (SETOK_IS_DOCUMENT (self), FALSE);

  if (self->edit_state != SETOK_EDIT_REVIEW || self->edit_mask == NULL)
    return FALSE;
  g_clear_pointer (&self->edit_result, setok_picture_unref);
  self->edit_request.seed = seed;
  start_edit (self);
  return TRUE;
}

guint64
setok_document_get_edit_seed (SetokDocument *self)
{
  return self->edit_request.seed;
}

const char *
setok_document_get_content_key (SetokDocument *self)
{
  return self->content_key;
}

gboolean
setok_document_get_generated (SetokDocument *self)
{
  return self->generated;
}

void
setok_document_set_generated (SetokDocument *self)
{
  self->generated = TRUE;
}

void
setok_document_cancel_edit (SetokDocument *self)
{
  if (self->edit_cancellable != NULL)
    g_cancellable_cancel (self->edit_cancellable);
}

void
setok_document_apply_edit (SetokDocument *self)
{
  g_autoptr (SetokPicture) result = NULL;

  if (self->edit_state != SETOK_EDIT_REVIEW)
    return;
  result = g_steal_pointer (&self->edit_result);
  /* idle first, so that the new revision can be undone */
  set_edit_state (self, SETOK_EDIT_IDLE);
  setok_document_push_picture (self, result);
}

void
setok_document_discard_edit (SetokDocument *self)
{
  if (self->edit_state != SETOK_EDIT_REVIEW)
    return;
  g_clear_pointer (&self->edit_result, setok_picture_unref);
  set_edit_state (self, SETOK_EDIT_IDLE);
}

SetokEditState
setok_document_get_edit_state (SetokDocument *self)
{
  return self->edit_state;
}

double
setok_document_get_edit_progress (SetokDocument *self)
{
  return self->edit_progress;
}

SetokPicture *
setok_document_get_edit_result (SetokDocument *self)
{
  return self->edit_result;
}

void
setok_document_set_show_original (SetokDocument *self, gboolean show)
{
  show = !!show;
  if (self->show_original == show)
    return;
  self->show_original = show;
  notify (self, PROP_SHOW_ORIGINAL);
  notify (self, PROP_DISPLAY_PICTURE);
}

gboolean
setok_document_get_show_original (SetokDocument *self)
{
  return self->show_original;
}

SetokPicture *
setok_document_get_display_picture (SetokDocument *self)
{
  if (self->edit_state == SETOK_EDIT_REVIEW && !self->show_original && self->edit_result != NULL)
    return self->edit_result;
  if (self->edit_state == SETOK_EDIT_RUNNING && self->edit_preview != NULL)
    return self->edit_preview;
  return setok_document_get_picture (self);
}

// ----------------------------------------------------------------------------
// the object

SetokDocument *
setok_document_new (SetokEngine *engine, SetokPicture *picture, GFile *file, const char *title)
{
  SetokDocument *self = g_object_new (SETOK_TYPE_DOCUMENT, NULL);

  self->engine = g_object_ref (engine);
  g_ptr_array_add (self->revisions, setok_picture_ref (picture));
  self->saved = setok_picture_ref (picture);
  self->file = file != NULL ? g_object_ref (file) : NULL;
  self->title = g_strdup (title);
  self->content_key = setok_picture_content_key (picture);
  return self;
}

const char *
setok_document_get_title (SetokDocument *self)
{
  return self->title;
}

GFile *
setok_document_get_file (SetokDocument *self)
{
  return self->file;
}

SetokPicture *
setok_document_get_picture (SetokDocument *self)
{
  return g_ptr_array_index (self->revisions, self->revision);
}

SetokTokenMap *
setok_document_get_token_map (SetokDocument *self)
{
  return self->token_map;
}

gboolean
setok_document_get_computing (SetokDocument *self)
{
  return self->computing;
}

GtkBitset *
setok_document_get_selection (SetokDocument *self)
{
  return self->selection;
}

void
setok_document_select (SetokDocument *self, int token, SetokSelectMode mode)
{
  g_return_if_fail (SETOK_IS_DOCUMENT (self));

  /* tokens and a point mask are not mixed: picking tokens drops the mask */
  clear_points (self);
  if (mode == SETOK_SELECT_REPLACE)
    gtk_bitset_remove_all (self->selection);
  if (token >= 0 && self->token_map != NULL && token < self->token_map->result.clusters.n_tokens)
    {
      if (mode == SETOK_SELECT_REMOVE)
        gtk_bitset_remove (self->selection, (guint)token);
      else
        gtk_bitset_add (self->selection, (guint)token);
    }
  g_signal_emit (self, signals[SELECTION_CHANGED], 0);
}

void
setok_document_clear_selection (SetokDocument *self)
{
  setok_document_select (self, -1, SETOK_SELECT_REPLACE);
}

gboolean
setok_document_get_has_selection (SetokDocument *self)
{
  g_return_val_if_fail (SETOK_IS_DOCUMENT (self), FALSE);
  return self->point_mask != NULL
         || (self->token_map != NULL && !gtk_bitset_is_empty (self->selection));
}

gboolean
setok_document_get_clicks_segment (SetokDocument *self)
{
  g_return_val_if_fail (SETOK_IS_DOCUMENT (self), FALSE);
  return setok_engine_get_segments_clicks (self->engine);
}

SetokPicture *
setok_document_get_point_mask (SetokDocument *self)
{
  g_return_val_if_fail (SETOK_IS_DOCUMENT (self), NULL);
  return self->point_mask;
}

guint
setok_document_get_n_points (SetokDocument *self)
{
  g_return_val_if_fail (SETOK_IS_DOCUMENT (self), 0);
  return self->points->len;
}

gboolean
setok_document_get_segmenting (SetokDocument *self)
{
  g_return_val_if_fail (SETOK_IS_DOCUMENT (self), FALSE);
  return self->segment_cancellable != NULL;
}

static gboolean
mask_is_empty (SetokPicture *mask)
{
  const setok_image *m = setok_picture_get_image (mask);

  for (gsize i = 0; i < (gsize)m->width * m->height; i++)
    if (m->pixels[i * m->channels] > 127)
      return FALSE;
  return TRUE;
}

static void
point_mask_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (SetokDocument) self = user_data;
  g_autoptr (GError) error = NULL;
  SetokPicture *mask = setok_engine_segment_finish (SETOK_ENGINE (source), result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return; /* newer points, or another picture, replaced these */
  g_clear_object (&self->segment_cancellable);
  g_clear_pointer (&self->point_mask, setok_picture_unref);
  if (mask == NULL)
    {
      /* the point that failed is not kept */
      g_array_set_size (self->points, self->points->len - 1);
      g_signal_emit (self, signals[FAILED], 0, error);
    }
  else if (mask_is_empty (mask))
    setok_picture_unref (mask);
  else
    self->point_mask = mask;
  g_signal_emit (self, signals[SELECTION_CHANGED], 0);
}

void
setok_document_select_point (SetokDocument *self, int x, int y, SetokSelectMode mode)
{
  const setok_image *img;
  setok_segment_point point = { x, y, mode != SETOK_SELECT_REMOVE };

  g_return_if_fail (SETOK_IS_DOCUMENT (self));

  img = setok_picture_get_image (setok_document_get_picture (self));
  if (x < 0 || y < 0 || x >= img->width || y >= img->height)
    return;
  /* a background point only takes away from an object already there */
  if (mode == SETOK_SELECT_REMOVE && self->points->len == 0)
    return;
  if (mode == SETOK_SELECT_REPLACE)
    g_array_set_size (self->points, 0);
  gtk_bitset_remove_all (self->selection);
  g_array_append_val (self->points, point);
  if (self->segment_cancellable != NULL)
    g_cancellable_cancel (self->segment_cancellable);
  g_clear_object (&self->segment_cancellable);
  self->segment_cancellable = g_cancellable_new ();
  setok_engine_segment_async (self->engine, setok_document_get_picture (self), NULL,
                              (const setok_segment_point *)self->points->data,
                              (int)self->points->len, self->segment_cancellable, point_mask_done,
                              g_object_ref (self));
}

int
setok_document_select_mask (SetokDocument *self, SetokPicture *mask)
{
  const setok_image *m = setok_picture_get_image (mask);
  const SetokTokenMap *map = self->token_map;
  g_autofree gint64 *inside = NULL;
  int n, best = -1, selected = 0;

  g_return_val_if_fail (SETOK_IS_DOCUMENT (self), 0);

  clear_points (self);
  gtk_bitset_remove_all (self->selection);
  if (map == NULL || m->width != map->result.width || m->height != map->result.height)
    {
      g_signal_emit (self, signals[SELECTION_CHANGED], 0);
      return 0;
    }
  n = map->result.clusters.n_tokens;
  inside = g_new0 (gint64, MAX (n, 1));
  for (gsize p = 0; p < (gsize)m->width * m->height; p++)
    {
      int32_t t = map->result.pixel_labels[p];
      if (t >= 0 && t < n && m->pixels[p * m->channels] > 127)
        inside[t]++;
    }
  /* the tokens mostly inside the mask; else the one it covers most */
  for (int t = 0; t < n; t++)
    {
      if (map->result.regions[t].area > 0 && 2 * inside[t] > map->result.regions[t].area)
        {
          gtk_bitset_add (self->selection, (guint)t);
          selected++;
        }
      if (inside[t] > 0 && (best < 0 || inside[t] > inside[best]))
        best = t;
    }
  if (selected == 0 && best >= 0)
    {
      gtk_bitset_add (self->selection, (guint)best);
      selected = 1;
    }
  g_signal_emit (self, signals[SELECTION_CHANGED], 0);
  return selected;
}

static void
setok_document_dispose (GObject *object)
{
  SetokDocument *self = SETOK_DOCUMENT (object);

  g_clear_handle_id (&self->recompute_source, g_source_remove);
  if (self->tokens_cancellable != NULL)
    g_cancellable_cancel (self->tokens_cancellable);
  g_clear_object (&self->tokens_cancellable);
  clear_points (self);
  setok_document_cancel_edit (self);
  G_OBJECT_CLASS (setok_document_parent_class)->dispose (object);
}

static void
setok_document_finalize (GObject *object)
{
  SetokDocument *self = SETOK_DOCUMENT (object);

  g_clear_object (&self->engine);
  g_clear_object (&self->file);
  g_free (self->title);
  g_ptr_array_unref (self->revisions);
  g_clear_pointer (&self->saved, setok_picture_unref);
  g_clear_object (&self->edit_cancellable);
  g_clear_pointer (&self->edit_preview, setok_picture_unref);
  g_clear_pointer (&self->edit_result, setok_picture_unref);
  g_clear_pointer (&self->token_map, setok_token_map_unref);
  g_clear_pointer (&self->colour_map, setok_token_map_unref);
  g_free (self->token_colours);
  g_free (self->colour_map_colours);
  g_free (self->content_key);
  g_free (self->edit_instruction);
  g_clear_pointer (&self->edit_mask, setok_picture_unref);
  gtk_bitset_unref (self->selection);
  g_array_unref (self->points);
  G_OBJECT_CLASS (setok_document_parent_class)->finalize (object);
}

static void
setok_document_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  SetokDocument *self = SETOK_DOCUMENT (object);

  switch (prop_id)
    {
      case PROP_TITLE:
        g_value_set_string (value, self->title);
        break;
      case PROP_FILE:
        g_value_set_object (value, self->file);
        break;
      case PROP_PICTURE:
        g_value_set_boxed (value, setok_document_get_picture (self));
        break;
      case PROP_DISPLAY_PICTURE:
        g_value_set_boxed (value, setok_document_get_display_picture (self));
        break;
      case PROP_MODIFIED:
        g_value_set_boolean (value, setok_document_get_modified (self));
        break;
      case PROP_CAN_UNDO:
        g_value_set_boolean (value, setok_document_get_can_undo (self));
        break;
      case PROP_CAN_REDO:
        g_value_set_boolean (value, setok_document_get_can_redo (self));
        break;
      case PROP_TOKEN_MAP:
        g_value_set_pointer (value, self->token_map);
        break;
      case PROP_COMPUTING:
        g_value_set_boolean (value, self->computing);
        break;
      case PROP_EDIT_STATE:
        g_value_set_int (value, self->edit_state);
        break;
      case PROP_EDIT_PROGRESS:
        g_value_set_double (value, self->edit_progress);
        break;
      case PROP_SHOW_ORIGINAL:
        g_value_set_boolean (value, self->show_original);
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
setok_document_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  SetokDocument *self = SETOK_DOCUMENT (object);

  switch (prop_id)
    {
      case PROP_SHOW_ORIGINAL:
        setok_document_set_show_original (self, g_value_get_boolean (value));
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
setok_document_class_init (SetokDocumentClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags flags = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->dispose = setok_document_dispose;
  object_class->finalize = setok_document_finalize;
  object_class->get_property = setok_document_get_property;
  object_class->set_property = setok_document_set_property;

  properties[PROP_TITLE] = g_param_spec_string ("title", NULL, NULL, NULL, flags);
  properties[PROP_FILE] = g_param_spec_object ("file", NULL, NULL, G_TYPE_FILE, flags);
  properties[PROP_PICTURE] = g_param_spec_boxed ("picture", NULL, NULL, SETOK_TYPE_PICTURE, flags);
  properties[PROP_DISPLAY_PICTURE]
    = g_param_spec_boxed ("display-picture", NULL, NULL, SETOK_TYPE_PICTURE, flags);
  properties[PROP_MODIFIED] = g_param_spec_boolean ("modified", NULL, NULL, FALSE, flags);
  properties[PROP_CAN_UNDO] = g_param_spec_boolean ("can-undo", NULL, NULL, FALSE, flags);
  properties[PROP_CAN_REDO] = g_param_spec_boolean ("can-redo", NULL, NULL, FALSE, flags);
  properties[PROP_EDIT_STATE] = g_param_spec_int ("edit-state", NULL, NULL, SETOK_EDIT_IDLE,
                                                  SETOK_EDIT_REVIEW, SETOK_EDIT_IDLE, flags);
  properties[PROP_EDIT_PROGRESS]
    = g_param_spec_double ("edit-progress", NULL, NULL, 0, 1, 0, flags);
  properties[PROP_SHOW_ORIGINAL]
    = g_param_spec_boolean ("show-original", NULL, NULL, FALSE,
                            G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_TOKEN_MAP] = g_param_spec_pointer ("token-map", NULL, NULL, flags);
  properties[PROP_COMPUTING] = g_param_spec_boolean ("computing", NULL, NULL, FALSE, flags);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  signals[SELECTION_CHANGED]
    = g_signal_new ("selection-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                    NULL, NULL, G_TYPE_NONE, 0);
  /* a token map could not be computed */
  signals[FAILED] = g_signal_new ("failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                                  NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
  /* a region edit failed (not: was cancelled) */
  signals[EDIT_FAILED] = g_signal_new ("edit-failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                       0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
setok_document_init (SetokDocument *self)
{
  self->revisions = g_ptr_array_new_with_free_func ((GDestroyNotify)setok_picture_unref);
  self->selection = gtk_bitset_new_empty ();
  self->points = g_array_new (FALSE, FALSE, sizeof (setok_segment_point));
}
