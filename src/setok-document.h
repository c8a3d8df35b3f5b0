/* setok-document.h — one open image: its pictures, its SeTok token map and
 * the user's token selection. Recomputes the token map in the background
 * (debounced) when the clustering parameters change. */
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

SetokDocument *setok_document_new (SetokEngine *engine, SetokPicture *picture, GFile *file,
                                   const char *title);

const char *setok_document_get_title (SetokDocument *self);
GFile *setok_document_get_file (SetokDocument *self);
SetokPicture *setok_document_get_picture (SetokDocument *self);
/* NULL until the first token map arrives. */
SetokTokenMap *setok_document_get_token_map (SetokDocument *self);
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

G_END_DECLS
