/* setok-document.c — one open image and what the engine made of it.
 *
 * The document keeps its pictures as a list of revisions with a current
 * index, so that region edits can add revisions and undo can step back
 * through them; the token map and the selection belong to the current one. */
#include "setok-document.h"

#include "setok-error.h"

#define RECOMPUTE_DELAY_MS 250

struct _SetokDocument
{
  GObject parent_instance;

  SetokEngine *engine;
  GFile *file;
  char *title;
  GPtrArray *revisions; /* of SetokPicture */
  guint revision;

  SetokTokenMap *token_map;
  GtkBitset *selection;

  setok_cluster_params wanted;
  gboolean have_wanted;
  guint recompute_source;
  GCancellable *tokens_cancellable;
  gboolean computing;
};

G_DEFINE_FINAL_TYPE (SetokDocument, setok_document, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_TITLE,
  PROP_TOKEN_MAP,
  PROP_COMPUTING,
  N_PROPS
};

enum
{
  SELECTION_CHANGED,
  FAILED,
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

SetokDocument *
setok_document_new (SetokEngine *engine, SetokPicture *picture, GFile *file, const char *title)
{
  SetokDocument *self = g_object_new (SETOK_TYPE_DOCUMENT, NULL);

  self->engine = g_object_ref (engine);
  g_ptr_array_add (self->revisions, setok_picture_ref (picture));
  self->file = file != NULL ? g_object_ref (file) : NULL;
  self->title = g_strdup (title);
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

static void
setok_document_dispose (GObject *object)
{
  SetokDocument *self = SETOK_DOCUMENT (object);

  g_clear_handle_id (&self->recompute_source, g_source_remove);
  if (self->tokens_cancellable != NULL)
    g_cancellable_cancel (self->tokens_cancellable);
  g_clear_object (&self->tokens_cancellable);
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
  g_clear_pointer (&self->token_map, setok_token_map_unref);
  gtk_bitset_unref (self->selection);
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
      case PROP_TOKEN_MAP:
        g_value_set_pointer (value, self->token_map);
        break;
      case PROP_COMPUTING:
        g_value_set_boolean (value, self->computing);
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

  properties[PROP_TITLE] = g_param_spec_string ("title", NULL, NULL, NULL, flags);
  properties[PROP_TOKEN_MAP] = g_param_spec_pointer ("token-map", NULL, NULL, flags);
  properties[PROP_COMPUTING] = g_param_spec_boolean ("computing", NULL, NULL, FALSE, flags);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  signals[SELECTION_CHANGED]
    = g_signal_new ("selection-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                    NULL, NULL, G_TYPE_NONE, 0);
  /* a token map could not be computed */
  signals[FAILED] = g_signal_new ("failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                                  NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
setok_document_init (SetokDocument *self)
{
  self->revisions = g_ptr_array_new_with_free_func ((GDestroyNotify)setok_picture_unref);
  self->selection = gtk_bitset_new_empty ();
}
