/* setok-document.h — one open image: its pictures (an undo history), its
 * SeTok token map, the user's token selection, the region edit under way and
 * where it is saved. Recomputes the token map in the background (debounced)
 * when the clustering parameters or the picture change. */
#pragma once

#include <gtk/gtk.h>

#include "setok-engine.h"
#include "setok-picture.h"

G_BEGIN_DECLS

#define SETOK_TYPE_DOCUMENT (setok_document_get_type ())

G_DECLARE_FINAL_TYPE (SetokDocument, setok_document, SETOK, DOCUMENT, GObject)

typedef enum
{
  SETOK_SELECT_REPLACE,
  SETOK_SELECT_ADD,
  SETOK_SELECT_REMOVE,
} SetokSelectMode;

typedef enum
{
  SETOK_EDIT_IDLE,    /* no edit */
  SETOK_EDIT_RUNNING, /* the engine is repainting the region */
  SETOK_EDIT_REVIEW,  /* a result waits to be applied or discarded */
} SetokEditState;

SetokDocument *setok_document_new (SetokEngine *engine, SetokPicture *picture, GFile *file,
                                   const char *title);

const char *setok_document_get_title (SetokDocument *self);
/* NULL until saved, for pictures that came from no file. */
GFile *setok_document_get_file (SetokDocument *self);
/* The current revision. */
SetokPicture *setok_document_get_picture (SetokDocument *self);
/* What the view shows: the edit's preview or result, else the picture. */
SetokPicture *setok_document_get_display_picture (SetokDocument *self);

/* Whether the picture differs from the saved one. */
gboolean setok_document_get_modified (SetokDocument *self);
/* The picture is in no file yet (a generated one): modified until saved. */
void setok_document_set_unsaved (SetokDocument *self);

/* History: picture becomes the current revision, dropping what undo left
 * to redo. Undo and redo step through the revisions (not during an edit). */
void setok_document_push_picture (SetokDocument *self, SetokPicture *picture);
gboolean setok_document_get_can_undo (SetokDocument *self);
gboolean setok_document_get_can_redo (SetokDocument *self);
void setok_document_undo (SetokDocument *self);
void setok_document_redo (SetokDocument *self);

/* Writes the picture to file (PNG or JPEG by its extension) in a thread;
 * on success file becomes the document's file and it is no longer modified. */
void setok_document_save_async (SetokDocument *self, GFile *file, GCancellable *cancellable,
                                GAsyncReadyCallback callback, gpointer user_data);
gboolean setok_document_save_finish (SetokDocument *self, GAsyncResult *result, GError **error);
/* NULL until the first token map arrives. */
SetokTokenMap *setok_document_get_token_map (SetokDocument *self);
/* The token map's colours: token t is drawn in palette entry [t] (token-overlay.h); a token
 * keeps the colour of the one it overlaps most in the map before. NULL without a map. */
const int *setok_document_get_token_colours (SetokDocument *self);
/* A name for the picture the document was opened with, from its pixels (the same picture
 * gives the same key). */
const char *setok_document_get_content_key (SetokDocument *self);
/* The picture came from the model (Generate Image), not from outside. */
gboolean setok_document_get_generated (SetokDocument *self);
void setok_document_set_generated (SetokDocument *self);
gboolean setok_document_get_computing (SetokDocument *self);

/* Asks for a token map with these parameters (after a short pause, so that
 * dragging a slider computes once); a pending request is replaced. */
void setok_document_request_tokens (SetokDocument *self, const setok_cluster_params *params);
/* The same, now, even with the parameters of the current map. */
void setok_document_recompute (SetokDocument *self);

/* Selected tokens of the current map (empty after each new map). */
GtkBitset *setok_document_get_selection (SetokDocument *self);
void setok_document_select (SetokDocument *self, int token, SetokSelectMode mode);
void setok_document_clear_selection (SetokDocument *self);
/* Selects the tokens mostly inside mask (one channel, > 127: inside; the picture's size),
 * else the one it covers most; returns how many. */
int setok_document_select_mask (SetokDocument *self, SetokPicture *mask);
/* Whether clicks select by the segmentation model (a SAM folder in that role,
 * setok_engine_get_segments_clicks) rather than tokens. */
gboolean setok_document_get_clicks_segment (SetokDocument *self);
/* A click at image pixel (x, y) for the segmentation model: REPLACE starts a
 * new object there, ADD adds a foreground point, REMOVE a background point
 * (only to an object already there). The mask of all the points replaces the
 * selection when the model answers ("selection-changed"; a failure is emitted
 * as "failed" and the point dropped). Selecting tokens drops the points. */
void setok_document_select_point (SetokDocument *self, int x, int y, SetokSelectMode mode);
/* The segmentation model's mask of the points (one channel, the picture's
 * size), or NULL; the points it answers, and whether an answer is awaited. */
SetokPicture *setok_document_get_point_mask (SetokDocument *self);
guint setok_document_get_n_points (SetokDocument *self);
gboolean setok_document_get_segmenting (SetokDocument *self);
/* Tokens or a point mask are selected. */
gboolean setok_document_get_has_selection (SetokDocument *self);
/* The selection's pixels as a one-channel mask (255 = selected) at the
 * picture's size: the point mask, else the selected tokens'; NULL without a
 * selection. */
SetokPicture *setok_document_get_selection_mask (SetokDocument *self);

/* Point-and-instruct editing: repaints the selected tokens' region as
 * instruction says (RUNNING, with progress and previews), then holds the
 * result for review (REVIEW) until it is applied (a new revision) or
 * discarded. Failures are emitted as "edit-failed". */
gboolean setok_document_edit (SetokDocument *self, const char *instruction,
                              const SetokDiffusionRequest *request);
/* In review: drops the result and repaints the same region as the same instruction says,
 * with seed. */
gboolean setok_document_try_again (SetokDocument *self, guint64 seed);
/* The seed of the edit under way or in review. */
guint64 setok_document_get_edit_seed (SetokDocument *self);
void setok_document_cancel_edit (SetokDocument *self);
void setok_document_apply_edit (SetokDocument *self);
void setok_document_discard_edit (SetokDocument *self);
SetokEditState setok_document_get_edit_state (SetokDocument *self);
/* 0 … 1 while RUNNING. */
double setok_document_get_edit_progress (SetokDocument *self);
SetokPicture *setok_document_get_edit_result (SetokDocument *self);
/* In review: show the picture before the edit instead of the result. */
void setok_document_set_show_original (SetokDocument *self, gboolean show);
gboolean setok_document_get_show_original (SetokDocument *self);

G_END_DECLS
