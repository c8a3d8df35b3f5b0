/* setok-engine.h — the one object that talks to libsetok. It owns a single
 * engine thread; every model call is a job (a GTask) queued in order on that
 * thread, cancelled through its GCancellable, and completed on the main loop.
 * It holds a model for each role (SetokRole); a role without a folder of its
 * own is served by the main model. */
#pragma once

#include <gio/gio.h>

#include "setok-picture.h"
#include "setok/chat.h"
#include "setok/diffusion.h"
#include "setok/segment.h"
#include "setok/tokens.h"

G_BEGIN_DECLS

#define SETOK_TYPE_ENGINE (setok_engine_get_type ())

G_DECLARE_FINAL_TYPE (SetokEngine, setok_engine, SETOK, ENGINE, GObject)

/* A tokens result with the clustering parameters that produced it; shared,
 * read-only once returned. */
typedef struct _SetokTokenMap
{
  setok_tokens_result result;
  setok_cluster_params params;
} SetokTokenMap;

SetokTokenMap *setok_token_map_ref (SetokTokenMap *map);
void setok_token_map_unref (SetokTokenMap *map);
/* The tokens with pixels on the picture: those only on the padding of a
 * picture that is not square are not drawn or counted. */
int setok_token_map_count_shown (const SetokTokenMap *map);
/* The token under image pixel (x, y), or -1. */
int setok_token_map_token_at (const SetokTokenMap *map, double x, double y);

/* One answer's text and numbers. */
typedef struct _SetokChatReply
{
  char *text;
  const char *stop_reason; /* static: "eos", "stop", "length", "callback", "context" */
  int n_tokens;
  int n_image_tokens; /* of the conversation's image */
  double first_token_ms;
  double tokens_per_s;
  gboolean restarted; /* earlier turns had to be dropped from the model's context */
} SetokChatReply;

void setok_chat_reply_free (SetokChatReply *reply);

/* A headline number from the model's card. */
typedef struct _SetokModelMetric
{
  char *label;
  double value;
  char *unit; /* "fraction" (a share, shown as a percentage), "ms" or "" */
} SetokModelMetric;

/* What the loaded model is and says about itself, for people: its kind, where
 * it runs, and a SETOKIM bundle's training domain and card (setok/bundle.h). */
typedef struct _SetokModelCard
{
  char *kind;           /* "setokim", "llava", ... */
  char *device_details; /* "CPU, 2 threads, BLAS: …" or the GPU's name */
  gboolean on_gpu;
  char *domain_kind;    /* NULL when the model does not say */
  char *domain_description;
  char *domain_suggest;
  char *summary;        /* NULL when none */
  GPtrArray *metrics;   /* of SetokModelMetric */
  GPtrArray *questions; /* of char *: example questions, one per kind trained on */
} SetokModelCard;

void setok_model_card_free (SetokModelCard *card);

/* The engine's own errors, beside SETOK_ERROR's. */
#define SETOK_ENGINE_ERROR (setok_engine_error_quark ())

typedef enum
{
  SETOK_ENGINE_ERROR_CANNOT_GENERATE, /* the model folder has no generation components */
} SetokEngineError;

GQuark setok_engine_error_quark (void);

/* What a generation or an edit is asked to do. */
typedef struct _SetokDiffusionRequest
{
  int steps;       /* denoising steps */
  double guidance; /* classifier-free guidance scale; <= 1: off */
  guint64 seed;
} SetokDiffusionRequest;

/* Called on the main loop after each denoising step; preview (a cheap
 * picture of the result so far, at latent size) is NULL between previews. */
typedef void (*SetokProgressFunc) (int step, int total, SetokPicture *preview, gpointer user_data);

/* Called on the main loop with each piece of streamed answer text. */
typedef void (*SetokTextFunc) (const char *text, gpointer user_data);

/* What a model folder is used for. */
typedef enum
{
  SETOK_ROLE_MAIN,    /* tokens and chat */
  SETOK_ROLE_SEGMENT, /* the object under a click, or named */
  SETOK_ROLE_EDIT,    /* editing and generation */
  SETOK_ROLE_COUNT
} SetokRole;

/* The role whose model does cap. */
SetokRole setok_role_of_capability (setok_capability cap);

SetokEngine *setok_engine_new (void);

const char *setok_engine_get_model_path (SetokEngine *self);
const char *setok_engine_get_model_name (SetokEngine *self);
const char *setok_engine_get_device_name (SetokEngine *self);
/* Why there is no model (or no chat), for the banner; NULL when all is loaded. */
const char *setok_engine_get_model_error (SetokEngine *self);
gboolean setok_engine_get_loading (SetokEngine *self);
gboolean setok_engine_get_has_tokens (SetokEngine *self);
gboolean setok_engine_get_has_chat (SetokEngine *self);
guint setok_engine_get_queue_length (SetokEngine *self);
/* The model's clustering defaults (setok_cluster_params_default without a model). */
setok_cluster_params setok_engine_get_default_params (SetokEngine *self);
/* The loaded model's card; NULL without a model. */
const SetokModelCard *setok_engine_get_card (SetokEngine *self);
/* How the jobs submitted from now on make an image of any shape the model's
 * input: padded to a square (the default) or centre-cropped (models/vit.h). */
void setok_engine_set_image_fit (SetokEngine *self, setok_image_fit fit);
setok_image_fit setok_engine_get_image_fit (SetokEngine *self);
/* Why the model serving cap's role cannot do cap (a sentence for a tooltip),
 * or NULL when it can. A job that finds a component broken updates it, and
 * the "capability-serial" property changes whenever any reason, or the folder
 * serving any role, does. */
const char *setok_engine_get_unavailable_reason (SetokEngine *self, setok_capability cap);
/* The folder serving role (its own, else the main model's), or NULL when no
 * model serves it. */
const char *setok_engine_get_role_path (SetokEngine *self, SetokRole role);
/* Whether role has a folder of its own (else the main model serves it). */
gboolean setok_engine_get_role_own (SetokEngine *self, SetokRole role);
/* Whether a click on a picture asks the segmentation role for the object under
 * it (a SAM folder there), rather than picking a token. */
gboolean setok_engine_get_segments_clicks (SetokEngine *self);
/* How many times the model's component was loaded (0 or 1), for tests: call it
 * while no job runs. */
int setok_engine_get_component_loads (SetokEngine *self, setok_component component);

/* Where and how a model runs (setok_model_options): device "auto", "cpu" or
 * "cuda"; threads <= 0: all cores; dtype "auto", "f32", "f16" or "bf16";
 * weights "q8", "q4" or NULL. NULL strings: the defaults. */
typedef struct
{
  const char *device;
  int threads;
  const char *dtype;
  const char *weights;
} SetokPlacement;

/* Replaces the loaded model by the one in path ("" or NULL: none), placed as
 * placement says (NULL: the defaults; copied). */
void setok_engine_load_model_async (SetokEngine *self, const char *path,
                                    const SetokPlacement *placement, GCancellable *cancellable,
                                    GAsyncReadyCallback callback, gpointer user_data);
gboolean setok_engine_load_model_finish (SetokEngine *self, GAsyncResult *result, GError **error);

/* Gives role (not SETOK_ROLE_MAIN) the folder at path ("" or NULL: the main
 * model serves it); a folder that already serves another role is shared, not
 * opened again. A folder that does not open, or cannot do what role needs, is
 * refused: role keeps its model, the task fails with the reason and the
 * engine emits "role-refused" (role, reason). The models open with the
 * placement of the last setok_engine_load_model_async; reloading the main
 * model reopens the roles' own folders. */
void setok_engine_set_role_async (SetokEngine *self, SetokRole role, const char *path,
                                  GCancellable *cancellable, GAsyncReadyCallback callback,
                                  gpointer user_data);
gboolean setok_engine_set_role_finish (SetokEngine *self, GAsyncResult *result, GError **error);

void setok_engine_tokens_async (SetokEngine *self, SetokPicture *picture,
                                const setok_cluster_params *params, GCancellable *cancellable,
                                GAsyncReadyCallback callback, gpointer user_data);
SetokTokenMap *setok_engine_tokens_finish (SetokEngine *self, GAsyncResult *result, GError **error);

/* Asks question in the conversation numbered conversation (from
 * setok_engine_new_conversation) about picture. The model keeps one
 * conversation in its context: asking in another one starts that one afresh
 * with its image. on_text gets the answer as it streams. Cancelling after
 * the first piece stops the answer early and still completes with a reply. */
void setok_engine_chat_async (SetokEngine *self, guint conversation, SetokPicture *picture,
                              const char *question, const setok_chat_options *options,
                              SetokTextFunc on_text, gpointer text_data, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data);
SetokChatReply *setok_engine_chat_finish (SetokEngine *self, GAsyncResult *result, GError **error);
guint setok_engine_new_conversation (SetokEngine *self);

/* Draws a new picture from prompt with the loaded model's generation
 * components (opened on first use). on_progress, when not NULL, gets every
 * step before the callback runs. A model without them fails with
 * SETOK_ENGINE_ERROR_CANNOT_GENERATE. */
void setok_engine_generate_async (SetokEngine *self, const char *prompt,
                                  const SetokDiffusionRequest *request,
                                  SetokProgressFunc on_progress, gpointer progress_data,
                                  GCancellable *cancellable, GAsyncReadyCallback callback,
                                  gpointer user_data);
SetokPicture *setok_engine_generate_finish (SetokEngine *self, GAsyncResult *result,
                                            GError **error);

/* Changes the region of picture where mask (one channel, picture's size) is
 * over 127 as instruction says; every pixel outside it stays as it was. */
void setok_engine_edit_async (SetokEngine *self, SetokPicture *picture, SetokPicture *mask,
                              const char *instruction, const SetokDiffusionRequest *request,
                              SetokProgressFunc on_progress, gpointer progress_data,
                              GCancellable *cancellable, GAsyncReadyCallback callback,
                              gpointer user_data);
SetokPicture *setok_engine_edit_finish (SetokEngine *self, GAsyncResult *result, GError **error);

/* The object picture shows under the points (n of them) and/or that phrase
 * names, by the model's mask decoder: a one-channel picture of picture's
 * size, 255 on the object. A model without a mask decoder (or, for a phrase,
 * without a segment token) fails with SETOK_ERROR / SETOK_ERR_INPUT. */
void setok_engine_segment_async (SetokEngine *self, SetokPicture *picture, const char *phrase,
                                 const setok_segment_point *points, int n,
                                 GCancellable *cancellable, GAsyncReadyCallback callback,
                                 gpointer user_data);
SetokPicture *setok_engine_segment_finish (SetokEngine *self, GAsyncResult *result,
                                           GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SetokTokenMap, setok_token_map_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SetokChatReply, setok_chat_reply_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SetokModelCard, setok_model_card_free)

G_END_DECLS
