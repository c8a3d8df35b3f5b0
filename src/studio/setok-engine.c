/* setok-engine.c — the engine thread and its job queue.
 *
 * libsetok is not thread-safe per model, so exactly one thread touches the
 * loaded models: jobs are popped from one queue and run in order. A job's
 * GCancellable sets the atomic flag the engine polls; GTask brings each
 * result back to the main loop, and streamed text and diffusion progress
 * travel there through idle callbacks queued ahead of the result. Each model
 * folder is one setok_model, held for one or more roles: tokens and chat run
 * over the main model (made at load), segmentation and diffusion over their
 * roles' models (made on first use). A role without a folder of its own, or
 * whose folder serves another role already, shares that setok_model, so each
 * component is loaded once. */
#include "setok-engine.h"

#include <glib/gi18n.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "setok-error.h"

typedef struct _Job Job;

/* The roles as a job left them, for the main loop. */
typedef struct
{
  char *path[SETOK_ROLE_COUNT]; /* the folder serving each role; NULL: none */
  gboolean own[SETOK_ROLE_COUNT];
  gboolean segments_clicks;
  char *refused[SETOK_ROLE_COUNT]; /* why a role's folder was refused; NULL: it was not */
} RoleState;

/* How models open, kept on the engine thread for the roles' folders. */
typedef struct
{
  char *device, *dtype, *weights;
  int threads;
} Placement;

struct _Job
{
  GTask *task;
  void (*run) (SetokEngine *self, Job *job);       /* engine thread; NULL ends it */
  void (*main_done) (SetokEngine *self, Job *job); /* main loop, before the callback */
  GAsyncReadyCallback callback;
  gpointer user_data;
  gpointer data;
  GDestroyNotify data_free;
  GCancellable *cancellable;
  gulong cancel_handler;
  gboolean soft_cancel;  /* chat: after the first text, cancelling ends the answer early */
  atomic_bool cancel;    /* what the engine polls */
  atomic_bool stop;      /* soft_cancel jobs: stop at the next piece of text */
  atomic_bool streaming; /* soft_cancel jobs: text has started */
  /* jobs that may find a component broken: the capabilities as the job left them */
  gboolean refresh_capabilities;
  char *unavailable[SETOK_CAP_COUNT];
  RoleState *roles; /* jobs that change the roles' models: what they left; else NULL */
};

struct _SetokEngine
{
  GObject parent_instance;

  GThread *thread;
  GAsyncQueue *jobs;

  /* main loop state */
  char *model_path;
  char *model_name;
  char *device_name;
  char *model_error;
  SetokModelCard *card;
  gboolean loading;
  guint pending_loads;
  gboolean has_tokens;
  gboolean has_chat;
  char *unavailable[SETOK_CAP_COUNT]; /* why each capability is unavailable; NULL: it is */
  guint capability_serial;            /* changes whenever unavailable[] or the roles do */
  char *role_path[SETOK_ROLE_COUNT];
  gboolean role_own[SETOK_ROLE_COUNT];
  gboolean segments_clicks;
  guint queue_length;
  guint next_conversation;
  setok_cluster_params default_params;
  setok_image_fit image_fit; /* how the jobs submitted from now on fit images */

  /* engine thread state */
  setok_model *model;                   /* the main model */
  setok_model *roles[SETOK_ROLE_COUNT]; /* [SETOK_ROLE_MAIN] is model; others may share */
  char *role_dir[SETOK_ROLE_COUNT];     /* a role's own folder as asked for; NULL: model's */
  Placement placement;
  setok_tokenizer *tokenizer;
  setok_chat *chat;
  guint conversation; /* the one in the chat's context; 0: none */
  setok_image_fit conversation_fit;
  int conversation_image_tokens;
  setok_diffusion *diffusion; /* over roles[EDIT], made on the first generation or edit */
  setok_segmenter *segmenter; /* over roles[SEGMENT], made on the first segmentation */
};

G_DEFINE_FINAL_TYPE (SetokEngine, setok_engine, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_MODEL_PATH,
  PROP_MODEL_NAME,
  PROP_DEVICE_NAME,
  PROP_MODEL_ERROR,
  PROP_LOADING,
  PROP_HAS_TOKENS,
  PROP_HAS_CHAT,
  PROP_QUEUE_LENGTH,
  PROP_CAPABILITY_SERIAL,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum
{
  ROLE_REFUSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

SetokRole
setok_role_of_capability (setok_capability cap)
{
  switch (cap)
    {
      case SETOK_CAP_SEGMENT_POINTS:
      case SETOK_CAP_SEGMENT_PHRASE:
        return SETOK_ROLE_SEGMENT;
      case SETOK_CAP_GENERATE:
      case SETOK_CAP_EDIT:
        return SETOK_ROLE_EDIT;
      default:
        return SETOK_ROLE_MAIN;
    }
}

// ----------------------------------------------------------------------------
// shared results

SetokTokenMap *
setok_token_map_ref (SetokTokenMap *map)
{
  return g_rc_box_acquire (map);
}

static void
token_map_clear (gpointer data)
{
  SetokTokenMap *map = data;

  setok_tokens_result_free (&map->result);
}

void
setok_token_map_unref (SetokTokenMap *map)
{
  g_rc_box_release_full (map, token_map_clear);
}

int
setok_token_map_count_shown (const SetokTokenMap *map)
{
  int n = 0;

  for (int t = 0; t < map->result.clusters.n_tokens; t++)
    n += map->result.regions[t].area > 0;
  return n;
}

int
setok_token_map_token_at (const SetokTokenMap *map, double x, double y)
{
  const setok_tokens_result *r = &map->result;

  if (x < 0 || y < 0 || x >= r->width || y >= r->height || r->pixel_labels == NULL)
    return -1;
  return r->pixel_labels[(gsize)y * r->width + (gsize)x];
}

void
setok_chat_reply_free (SetokChatReply *reply)
{
  if (reply == NULL)
    return;
  g_free (reply->text);
  g_free (reply);
}

static void
metric_free (gpointer data)
{
  SetokModelMetric *m = data;

  g_free (m->label);
  g_free (m->unit);
  g_free (m);
}

void
setok_model_card_free (SetokModelCard *card)
{
  if (card == NULL)
    return;
  g_free (card->kind);
  g_free (card->device_details);
  g_free (card->domain_kind);
  g_free (card->domain_description);
  g_free (card->domain_suggest);
  g_free (card->summary);
  g_ptr_array_unref (card->metrics);
  g_ptr_array_unref (card->questions);
  g_free (card);
}

/* engine thread: the card of the model just opened */
static SetokModelCard *
card_new (const setok_model *model)
{
  SetokModelCard *card = g_new0 (SetokModelCard, 1);
  const setok_bundle *b = setok_model_bundle (model);

  card->kind = g_strdup (setok_model_kind_name (setok_model_kind_of (model)));
  card->device_details = g_strdup (setok_model_device (model));
  card->on_gpu = !setok_backend_is_host (setok_model_backend (model));
  card->metrics = g_ptr_array_new_with_free_func (metric_free);
  card->questions = g_ptr_array_new_with_free_func (g_free);
  if (b == NULL)
    return card;
  card->domain_kind = g_strdup (b->domain_kind);
  card->domain_description = g_strdup (b->domain_description);
  card->domain_suggest = g_strdup (b->domain_suggest);
  card->summary = g_strdup (b->card_summary);
  for (int i = 0; i < b->n_metrics; i++)
    {
      SetokModelMetric *m = g_new0 (SetokModelMetric, 1);

      m->label = g_strdup (b->metrics[i].label);
      m->value = b->metrics[i].value;
      m->unit = g_strdup (b->metrics[i].unit);
      g_ptr_array_add (card->metrics, m);
    }
  for (int i = 0; i < b->n_questions; i++)
    g_ptr_array_add (card->questions, g_strdup (b->questions[i].example));
  return card;
}

// ----------------------------------------------------------------------------
// the queue

/* main loop: takes the reasons (each freed or kept) and tells when they changed */
static void
set_unavailable (SetokEngine *self, char **reasons)
{
  gboolean changed = FALSE;

  for (int c = 0; c < SETOK_CAP_COUNT; c++)
    {
      changed |= g_strcmp0 (self->unavailable[c], reasons[c]) != 0;
      g_free (self->unavailable[c]);
      self->unavailable[c] = g_steal_pointer (&reasons[c]);
    }
  if (changed)
    {
      self->capability_serial++;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAPABILITY_SERIAL]);
    }
}

static void
role_state_free (RoleState *state)
{
  if (state == NULL)
    return;
  for (int r = 0; r < SETOK_ROLE_COUNT; r++)
    {
      g_free (state->path[r]);
      g_free (state->refused[r]);
    }
  g_free (state);
}

/* main loop: takes what a job left of the roles, and tells of the folders it refused */
static void
set_roles (SetokEngine *self, RoleState *state)
{
  gboolean changed = self->segments_clicks != state->segments_clicks;

  self->segments_clicks = state->segments_clicks;
  for (int r = 0; r < SETOK_ROLE_COUNT; r++)
    {
      changed |= g_strcmp0 (self->role_path[r], state->path[r]) != 0
                 || self->role_own[r] != state->own[r];
      g_free (self->role_path[r]);
      self->role_path[r] = g_steal_pointer (&state->path[r]);
      self->role_own[r] = state->own[r];
    }
  if (changed)
    {
      self->capability_serial++;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAPABILITY_SERIAL]);
    }
  for (int r = 0; r < SETOK_ROLE_COUNT; r++)
    if (state->refused[r] != NULL)
      g_signal_emit (self, signals[ROLE_REFUSED], 0, (guint)r, state->refused[r]);
}

static void
job_free (Job *job)
{
  role_state_free (job->roles);
  for (int c = 0; c < SETOK_CAP_COUNT; c++)
    g_free (job->unavailable[c]);
  if (job->cancel_handler != 0)
    g_cancellable_disconnect (job->cancellable, job->cancel_handler);
  g_clear_object (&job->cancellable);
  if (job->data_free != NULL)
    job->data_free (job->data);
  g_clear_object (&job->task);
  g_free (job);
}

static void
job_cancelled (GCancellable *cancellable, gpointer user_data)
{
  Job *job = user_data;

  atomic_store (&job->stop, true);
  if (!job->soft_cancel || !atomic_load (&job->streaming))
    atomic_store (&job->cancel, true);
}

static void
job_complete (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SetokEngine *self = SETOK_ENGINE (source);
  Job *job = user_data;

  self->queue_length--;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_QUEUE_LENGTH]);
  if (job->refresh_capabilities)
    set_unavailable (self, job->unavailable);
  if (job->roles != NULL)
    set_roles (self, job->roles);
  if (job->main_done != NULL)
    job->main_done (self, job);
  if (job->callback != NULL)
    job->callback (source, result, job->user_data);
  job_free (job);
}

static Job *
job_new (SetokEngine *self, gpointer source_tag, GCancellable *cancellable,
         GAsyncReadyCallback callback, gpointer user_data)
{
  Job *job = g_new0 (Job, 1);

  job->task = g_task_new (self, cancellable, job_complete, job);
  g_task_set_source_tag (job->task, source_tag);
  job->callback = callback;
  job->user_data = user_data;
  atomic_init (&job->cancel, false);
  atomic_init (&job->stop, false);
  atomic_init (&job->streaming, false);
  if (cancellable != NULL)
    job->cancellable = g_object_ref (cancellable);
  return job;
}

static void
job_submit (SetokEngine *self, Job *job)
{
  if (job->cancellable != NULL)
    job->cancel_handler
      = g_cancellable_connect (job->cancellable, G_CALLBACK (job_cancelled), job, NULL);
  self->queue_length++;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_QUEUE_LENGTH]);
  g_async_queue_push (self->jobs, job);
}

static gpointer
engine_thread_main (gpointer data)
{
  SetokEngine *self = data;

  for (;;)
    {
      Job *job = g_async_queue_pop (self->jobs);

      if (job->run == NULL)
        {
          job_free (job);
          return NULL;
        }
      /* a job cancelled while it waited is answered without running */
      if (!g_task_return_error_if_cancelled (job->task))
        job->run (self, job);
    }
}

// ----------------------------------------------------------------------------
// loading a model

typedef struct
{
  char *path;
  Placement placement;
  /* results */
  char *name;
  char *device_name;
  char *error; /* what is unavailable and why, or NULL */
  gboolean has_tokens, has_chat;
  char *unavailable[SETOK_CAP_COUNT];
  setok_cluster_params defaults;
  SetokModelCard *card;
} LoadData;

static void
placement_clear (Placement *p)
{
  g_clear_pointer (&p->device, g_free);
  g_clear_pointer (&p->dtype, g_free);
  g_clear_pointer (&p->weights, g_free);
}

static void
load_data_free (gpointer data)
{
  LoadData *d = data;

  g_free (d->path);
  placement_clear (&d->placement);
  g_free (d->name);
  g_free (d->device_name);
  g_free (d->error);
  for (int c = 0; c < SETOK_CAP_COUNT; c++)
    g_free (d->unavailable[c]);
  setok_model_card_free (d->card);
  g_free (d);
}

/* engine thread: whether a role holds m */
static gboolean
model_held (SetokEngine *self, const setok_model *m)
{
  for (int r = 0; r < SETOK_ROLE_COUNT; r++)
    if (self->roles[r] == m)
      return TRUE;
  return FALSE;
}

/* engine thread: role is served by m from now on; the pipeline over its old
 * model goes, and the old model too when no role holds it any more */
static void
set_role_model (SetokEngine *self, SetokRole role, setok_model *m)
{
  setok_model *old = self->roles[role];

  if (old == m)
    return;
  if (role == SETOK_ROLE_SEGMENT)
    g_clear_pointer (&self->segmenter, setok_segmenter_free);
  else if (role == SETOK_ROLE_EDIT)
    g_clear_pointer (&self->diffusion, setok_diffusion_free);
  self->roles[role] = m;
  if (old != NULL && !model_held (self, old))
    setok_model_free (old);
}

/* engine thread: drops every model and every pipeline over them */
static void
unload (SetokEngine *self)
{
  g_clear_pointer (&self->tokenizer, setok_tokenizer_free);
  g_clear_pointer (&self->chat, setok_chat_free);
  self->conversation = 0;
  for (int r = 0; r < SETOK_ROLE_COUNT; r++)
    set_role_model (self, r, NULL);
  self->model = NULL;
}

/* engine thread: why each capability of its role's model is unavailable, for the main loop */
static void
snapshot_unavailable (SetokEngine *self, char **out)
{
  for (int c = 0; c < SETOK_CAP_COUNT; c++)
    {
      const setok_model *m = self->roles[setok_role_of_capability (c)];

      g_free (out[c]);
      out[c] = m == NULL ? g_strdup (_ ("No model is loaded"))
                         : g_strdup (setok_model_why_not (m, c));
    }
}

/* engine thread: the roles as they are now, with refusals to tell */
static RoleState *
snapshot_roles (SetokEngine *self, char **refused)
{
  RoleState *state = g_new0 (RoleState, 1);
  const setok_model *seg = self->roles[SETOK_ROLE_SEGMENT];

  for (int r = 0; r < SETOK_ROLE_COUNT; r++)
    {
      state->path[r] = self->roles[r] != NULL ? g_strdup (setok_model_dir (self->roles[r])) : NULL;
      state->own[r] = r != SETOK_ROLE_MAIN && self->role_dir[r] != NULL;
      state->refused[r] = g_steal_pointer (&refused[r]);
    }
  state->segments_clicks = seg != NULL && setok_model_kind_of (seg) == SETOK_MODEL_SAM
                           && setok_model_can (seg, SETOK_CAP_SEGMENT_POINTS);
  return state;
}

/* Whether the folders are one: the same folder reached by any path. */
static gboolean
same_folder (const char *a, const char *b)
{
  g_autofree char *ra = realpath (a, NULL);
  g_autofree char *rb = realpath (b, NULL);

  return ra != NULL && rb != NULL && g_str_equal (ra, rb);
}

/* What role needs of its model; the first is the one its refusal names. */
static gboolean
role_capable (const setok_model *m, SetokRole role, setok_capability *cap)
{
  static const setok_capability needs[SETOK_ROLE_COUNT][2] = {
    [SETOK_ROLE_MAIN] = { SETOK_CAP_TOKENS, SETOK_CAP_CHAT },
    [SETOK_ROLE_SEGMENT] = { SETOK_CAP_SEGMENT_POINTS, SETOK_CAP_SEGMENT_PHRASE },
    [SETOK_ROLE_EDIT] = { SETOK_CAP_EDIT, SETOK_CAP_GENERATE },
  };

  *cap = needs[role][0];
  return setok_model_can (m, needs[role][0]) || setok_model_can (m, needs[role][1]);
}

static const char *
role_title (SetokRole role)
{
  static const char *const titles[SETOK_ROLE_COUNT] = {
    [SETOK_ROLE_MAIN] = N_ ("tokens and chat"),
    [SETOK_ROLE_SEGMENT] = N_ ("segmentation"),
    [SETOK_ROLE_EDIT] = N_ ("editing and generation"),
  };

  return _ (titles[role]);
}

/* engine thread: gives role the folder dir (NULL: the main model), opening it
 * unless a role holds it already; NULL when done, else why it was refused
 * (role keeps its model) */
static char *
open_role (SetokEngine *self, SetokRole role, const char *dir)
{
  setok_model *m = NULL;
  setok_model_options mo;
  setok_error err = { 0 };
  setok_capability cap;

  if (dir == NULL)
    {
      g_clear_pointer (&self->role_dir[role], g_free);
      set_role_model (self, role, self->model);
      return NULL;
    }
  for (int r = 0; r < SETOK_ROLE_COUNT && m == NULL; r++)
    if (self->roles[r] != NULL && same_folder (setok_model_dir (self->roles[r]), dir))
      m = self->roles[r];
  if (m == NULL)
    {
      if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
        /* TRANSLATORS: a folder, a role ("segmentation"), and why */
        return g_strdup_printf (_ ("%s is not used for %s: %s"), dir, role_title (role),
                                _ ("the folder does not exist"));
      setok_model_options_default (&mo);
      mo.device = self->placement.device;
      mo.threads = self->placement.threads;
      mo.dtype = self->placement.dtype;
      mo.weights = self->placement.weights;
      if (setok_model_open (&m, dir, &mo, &err) != SETOK_OK)
        return g_strdup_printf (_ ("%s is not used for %s: %s"), dir, role_title (role),
                                err.message);
    }
  if (!role_capable (m, role, &cap))
    {
      char *why = g_strdup_printf (_ ("%s is not used for %s: %s"), dir, role_title (role),
                                   setok_model_why_not (m, cap));

      if (!model_held (self, m))
        setok_model_free (m);
      return why;
    }
  g_free (self->role_dir[role]);
  self->role_dir[role] = g_strdup (dir);
  set_role_model (self, role, m);
  return NULL;
}

/* engine thread: opens the main model, its tokenizer and chat; FALSE (and
 * *error) when neither tokens nor chat work */
static gboolean
load_main (SetokEngine *self, Job *job, LoadData *d, GError **error)
{
  setok_error err = { 0 }, tokens_err = { 0 }, chat_err = { 0 };
  setok_model_options mo;

  d->defaults = setok_cluster_params_default ();
  if (d->path == NULL || d->path[0] == '\0')
    {
      d->error = g_strdup (_ ("No model folder is set"));
      g_set_error (error, SETOK_ERROR, SETOK_ERR_INPUT, "%s", d->error);
      return FALSE;
    }
  if (!g_file_test (d->path, G_FILE_TEST_IS_DIR))
    {
      d->error = g_strdup_printf (_ ("The model folder %s does not exist"), d->path);
      g_set_error (error, SETOK_ERROR, SETOK_ERR_INPUT, "%s", d->error);
      return FALSE;
    }
  d->name = g_path_get_basename (d->path);
  setok_model_options_default (&mo);
  mo.device = d->placement.device;
  mo.threads = d->placement.threads;
  mo.dtype = d->placement.dtype;
  mo.weights = d->placement.weights;
  if (setok_model_open (&self->model, d->path, &mo, &err) != SETOK_OK)
    {
      d->error = g_strdup (err.message);
      *error = setok_error_to_gerror (&err);
      return FALSE;
    }
  self->roles[SETOK_ROLE_MAIN] = self->model;
  d->device_name = g_strdup (setok_model_device (self->model));
  d->card = card_new (self->model);
  if (setok_tokenizer_new (&self->tokenizer, self->model, &tokens_err) == SETOK_OK)
    {
      d->has_tokens = TRUE;
      d->defaults = setok_tokenizer_default_params (self->tokenizer);
    }
  if (g_cancellable_is_cancelled (job->cancellable))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, _ ("Cancelled"));
      return FALSE;
    }
  if (setok_model_can (self->model, SETOK_CAP_CHAT)
      && setok_chat_new (&self->chat, self->model, 0, &chat_err) == SETOK_OK)
    d->has_chat = TRUE;
  else if (chat_err.message[0] == '\0')
    g_strlcpy (chat_err.message, setok_model_why_not (self->model, SETOK_CAP_CHAT),
               sizeof chat_err.message);

  if (!d->has_tokens && !d->has_chat)
    {
      d->error = g_strdup (tokens_err.message);
      *error = setok_error_to_gerror (&tokens_err);
      return FALSE;
    }
  if (!d->has_chat)
    d->error = g_strdup_printf (_ ("Chat is unavailable: %s"), chat_err.message);
  else if (!d->has_tokens)
    d->error = g_strdup_printf (_ ("Token overlays are unavailable: %s"), tokens_err.message);
  return TRUE;
}

/* The main model, then the roles' own folders again (with the new placement);
 * a role whose folder fails now falls back to the main model. */
static void
load_run (SetokEngine *self, Job *job)
{
  LoadData *d = job->data;
  g_autoptr (GError) error = NULL;
  char *refused[SETOK_ROLE_COUNT] = { NULL };
  gboolean loaded;

  unload (self);
  placement_clear (&self->placement);
  self->placement.device = g_strdup (d->placement.device);
  self->placement.dtype = g_strdup (d->placement.dtype);
  self->placement.weights = g_strdup (d->placement.weights);
  self->placement.threads = d->placement.threads;
  loaded = load_main (self, job, d, &error);
  for (int r = SETOK_ROLE_MAIN + 1; r < SETOK_ROLE_COUNT; r++)
    {
      g_autofree char *dir = g_strdup (self->role_dir[r]);

      self->roles[r] = self->model;
      if (dir != NULL && (refused[r] = open_role (self, r, dir)) != NULL)
        g_clear_pointer (&self->role_dir[r], g_free);
    }
  snapshot_unavailable (self, d->unavailable);
  job->roles = snapshot_roles (self, refused);
  if (!loaded)
    g_task_return_error (job->task, g_steal_pointer (&error));
  else
    g_task_return_boolean (job->task, TRUE);
}

static void
set_string (char **field, const char *value, SetokEngine *self, int prop)
{
  if (g_strcmp0 (*field, value) == 0)
    return;
  g_free (*field);
  *field = g_strdup (value);
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

static void
set_boolean (gboolean *field, gboolean value, SetokEngine *self, int prop)
{
  if (*field == value)
    return;
  *field = value;
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

static void
load_main_done (SetokEngine *self, Job *job)
{
  LoadData *d = job->data;

  g_object_freeze_notify (G_OBJECT (self));
  self->default_params = d->defaults;
  set_string (&self->model_path, d->has_tokens || d->has_chat ? d->path : NULL, self,
              PROP_MODEL_PATH);
  set_string (&self->model_name, d->has_tokens || d->has_chat ? d->name : NULL, self,
              PROP_MODEL_NAME);
  set_string (&self->device_name, d->device_name, self, PROP_DEVICE_NAME);
  set_string (&self->model_error, d->error, self, PROP_MODEL_ERROR);
  set_boolean (&self->has_tokens, d->has_tokens, self, PROP_HAS_TOKENS);
  set_boolean (&self->has_chat, d->has_chat, self, PROP_HAS_CHAT);
  set_unavailable (self, d->unavailable);
  g_clear_pointer (&self->card, setok_model_card_free);
  if (d->has_tokens || d->has_chat)
    self->card = g_steal_pointer (&d->card);
  self->pending_loads--;
  set_boolean (&self->loading, self->pending_loads > 0, self, PROP_LOADING);
  g_object_thaw_notify (G_OBJECT (self));
}

void
setok_engine_load_model_async (SetokEngine *self, const char *path,
                               const SetokPlacement *placement, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  Job *job = job_new (self, setok_engine_load_model_async, cancellable, callback, user_data);
  LoadData *d = g_new0 (LoadData, 1);

  g_return_if_fail (SETOK_IS_ENGINE (self));
  d->path = g_strdup (path);
  SetokPlacement defaults = { 0 };
  if (placement == NULL)
    placement = &defaults;
  d->placement.device = g_strdup (placement->device != NULL && placement->device[0]
                                    ? placement->device
                                    : "auto");
  d->placement.dtype = g_strdup (placement->dtype != NULL && placement->dtype[0] ? placement->dtype
                                                                                 : "auto");
  d->placement.weights = g_strdup (placement->weights);
  d->placement.threads = placement->threads;
  job->data = d;
  job->data_free = load_data_free;
  job->run = load_run;
  job->main_done = load_main_done;
  /* the old model is gone as soon as the job runs */
  self->pending_loads++;
  set_boolean (&self->loading, TRUE, self, PROP_LOADING);
  job_submit (self, job);
}

gboolean
setok_engine_load_model_finish (SetokEngine *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

// ----------------------------------------------------------------------------
// a role's own folder

static void
set_role_run (SetokEngine *self, Job *job)
{
  SetokRole role = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (job->task), "role"));
  const char *dir = job->data;
  char *refused[SETOK_ROLE_COUNT] = { NULL };
  char *why = open_role (self, role, dir != NULL && dir[0] != '\0' ? dir : NULL);

  job->refresh_capabilities = TRUE;
  snapshot_unavailable (self, job->unavailable);
  refused[role] = g_strdup (why);
  job->roles = snapshot_roles (self, refused);
  if (why != NULL)
    g_task_return_new_error (job->task, SETOK_ERROR, SETOK_ERR_INPUT, "%s", why);
  else
    g_task_return_boolean (job->task, TRUE);
  g_free (why);
}

void
setok_engine_set_role_async (SetokEngine *self, SetokRole role, const char *path,
                             GCancellable *cancellable, GAsyncReadyCallback callback,
                             gpointer user_data)
{
  g_return_if_fail (SETOK_IS_ENGINE (self));
  g_return_if_fail (role > SETOK_ROLE_MAIN && role < SETOK_ROLE_COUNT);

  Job *job = job_new (self, setok_engine_set_role_async, cancellable, callback, user_data);

  g_object_set_data (G_OBJECT (job->task), "role", GINT_TO_POINTER (role));
  job->data = g_strdup (path);
  job->data_free = g_free;
  job->run = set_role_run;
  job_submit (self, job);
}

gboolean
setok_engine_set_role_finish (SetokEngine *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

// ----------------------------------------------------------------------------
// tokens

typedef struct
{
  SetokPicture *picture;
  setok_cluster_params params;
  setok_image_fit fit;
} TokensData;

static void
tokens_data_free (gpointer data)
{
  TokensData *d = data;

  g_clear_pointer (&d->picture, setok_picture_unref);
  g_free (d);
}

/* Fits the user's parameters to the image's patch count N, which the user
 * cannot know: neighbours, token counts and caps at most N. */
static void
fit_params (setok_tokenizer *tokenizer, const setok_image *image, setok_image_fit fit,
            setok_cluster_params *p)
{
  const setok_vit *vit = setok_tokenizer_vit (tokenizer);
  int w = 0, h = 0;
  int64_t gh = 0, gw = 0;

  setok_vit_preprocess_fit_size (setok_vit_get_preprocessor (vit), fit, image->width, image->height,
                                 &w, &h);
  if (setok_vit_num_tokens (vit, h, w, setok_vit_has_cls (vit), &gh, &gw) <= 0)
    return; /* the pipeline reports the image as too small */
  int n = (int)(gh * gw);
  p->k = CLAMP (p->k, 1, n);
  p->fixed_k = CLAMP (p->fixed_k, 1, n);
  p->min_clusters = CLAMP (p->min_clusters, 1, n);
  if (p->max_clusters > n)
    p->max_clusters = n;
  if (p->max_clusters > 0 && p->min_clusters > p->max_clusters)
    p->min_clusters = p->max_clusters;
}

static void
tokens_run (SetokEngine *self, Job *job)
{
  TokensData *d = job->data;
  const setok_image *image = setok_picture_get_image (d->picture);
  setok_tokens_options o;
  setok_error err = { 0 };

  if (self->tokenizer == NULL)
    {
      g_task_return_new_error (job->task, SETOK_ERROR, SETOK_ERR_UNSUPPORTED, "%s",
                               _ ("No model for token overlays is loaded"));
      return;
    }
  SetokTokenMap *map = g_rc_box_new0 (SetokTokenMap);
  setok_tokens_options_default (&o, self->tokenizer);
  o.cluster = d->params;
  o.fit = d->fit;
  fit_params (self->tokenizer, image, o.fit, &o.cluster);
  o.cancel = &job->cancel;
  map->params = o.cluster;
  if (setok_tokens_run (self->tokenizer, image, &o, &map->result, &err) != SETOK_OK)
    {
      setok_token_map_unref (map);
      g_task_return_error (job->task, setok_error_to_gerror (&err));
      return;
    }
  g_task_return_pointer (job->task, map, (GDestroyNotify)setok_token_map_unref);
}

void
setok_engine_tokens_async (SetokEngine *self, SetokPicture *picture,
                           const setok_cluster_params *params, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  Job *job = job_new (self, setok_engine_tokens_async, cancellable, callback, user_data);
  TokensData *d = g_new0 (TokensData, 1);

  d->picture = setok_picture_ref (picture);
  d->params = *params;
  d->fit = self->image_fit;
  job->data = d;
  job->data_free = tokens_data_free;
  job->run = tokens_run;
  job_submit (self, job);
}

SetokTokenMap *
setok_engine_tokens_finish (SetokEngine *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

// ----------------------------------------------------------------------------
// chat

typedef struct
{
  guint conversation;
  SetokPicture *picture;
  char *question;
  setok_chat_options options;
  SetokTextFunc on_text;
  gpointer text_data;
  GMainContext *context;
  Job *job;
} ChatData;

typedef struct
{
  SetokTextFunc on_text;
  gpointer text_data;
  char *text;
} TextPiece;

static void
chat_data_free (gpointer data)
{
  ChatData *d = data;

  g_clear_pointer (&d->picture, setok_picture_unref);
  g_clear_pointer (&d->context, g_main_context_unref);
  g_free (d->question);
  g_free (d);
}

static gboolean
deliver_text (gpointer data)
{
  TextPiece *piece = data;

  piece->on_text (piece->text, piece->text_data);
  return G_SOURCE_REMOVE;
}

static void
text_piece_free (gpointer data)
{
  TextPiece *piece = data;

  g_free (piece->text);
  g_free (piece);
}

/* engine thread: forwards a piece to the main loop, where it arrives before
 * the job's result (same priority, queued earlier) */
static bool
chat_on_text (const char *text, void *user)
{
  ChatData *d = user;

  atomic_store (&d->job->streaming, true);
  if (atomic_load (&d->job->stop))
    return false;
  if (d->on_text != NULL && text[0] != '\0')
    {
      TextPiece *piece = g_new0 (TextPiece, 1);

      piece->on_text = d->on_text;
      piece->text_data = d->text_data;
      piece->text = g_strdup (text);
      g_main_context_invoke_full (d->context, G_PRIORITY_DEFAULT, deliver_text, piece,
                                  text_piece_free);
    }
  return true;
}

static void
chat_run (SetokEngine *self, Job *job)
{
  ChatData *d = job->data;
  setok_chat_options o = d->options;
  setok_chat_result r = { 0 };
  setok_error err = { 0 };
  setok_status st = SETOK_OK;
  gboolean restarted = FALSE;

  if (self->chat == NULL)
    {
      g_task_return_new_error (job->task, SETOK_ERROR, SETOK_ERR_UNSUPPORTED, "%s",
                               _ ("No chat model is loaded"));
      return;
    }
  o.cancel = &job->cancel;
  o.on_text = chat_on_text;
  o.user = d;
  /* the context holds the image as it was fitted then */
  if (self->conversation != d->conversation || self->conversation_fit != o.fit)
    {
      self->conversation = 0;
      st = setok_chat_start (
        self->chat, d->picture != NULL ? setok_picture_get_image (d->picture) : NULL, &o, &err);
      if (st == SETOK_OK)
        {
          self->conversation = d->conversation;
          self->conversation_fit = o.fit;
        }
      restarted = TRUE;
    }
  if (st == SETOK_OK)
    st = setok_chat_ask (self->chat, d->question, &o, &r, &err);
  if (st != SETOK_OK)
    {
      /* whatever the context holds now is not a conversation anyone asked for */
      self->conversation = 0;
      setok_chat_result_free (&r);
      g_task_return_error (job->task, setok_error_to_gerror (&err));
      return;
    }
  if (restarted)
    self->conversation_image_tokens = r.n_image_tokens;

  SetokChatReply *reply = g_new0 (SetokChatReply, 1);
  reply->text = g_strdup (r.text != NULL ? r.text : "");
  reply->stop_reason = r.stop_reason;
  reply->n_tokens = r.n_ids;
  reply->n_image_tokens = self->conversation_image_tokens;
  reply->first_token_ms = r.timings.first_token_ms;
  reply->tokens_per_s = r.timings.decode_tokens_per_s;
  reply->restarted = restarted;
  setok_chat_result_free (&r);
  g_task_return_pointer (job->task, reply, (GDestroyNotify)setok_chat_reply_free);
}

void
setok_engine_chat_async (SetokEngine *self, guint conversation, SetokPicture *picture,
                         const char *question, const setok_chat_options *options,
                         SetokTextFunc on_text, gpointer text_data, GCancellable *cancellable,
                         GAsyncReadyCallback callback, gpointer user_data)
{
  Job *job = job_new (self, setok_engine_chat_async, cancellable, callback, user_data);
  ChatData *d = g_new0 (ChatData, 1);

  d->conversation = conversation;
  d->picture = picture != NULL ? setok_picture_ref (picture) : NULL;
  d->question = g_strdup (question);
  d->options = *options;
  d->options.fit = self->image_fit;
  memset (d->options.sampling.stop, 0, sizeof d->options.sampling.stop);
  d->on_text = on_text;
  d->text_data = text_data;
  d->context = g_main_context_ref_thread_default ();
  d->job = job;
  job->data = d;
  job->data_free = chat_data_free;
  job->run = chat_run;
  job->soft_cancel = TRUE;
  /* an answer stopped early is still an answer */
  g_task_set_check_cancellable (job->task, FALSE);
  job_submit (self, job);
}

SetokChatReply *
setok_engine_chat_finish (SetokEngine *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

guint
setok_engine_new_conversation (SetokEngine *self)
{
  return ++self->next_conversation;
}

// ----------------------------------------------------------------------------
// generate and edit

G_DEFINE_QUARK (setok - engine - error - quark, setok_engine_error)

typedef struct
{
  char *prompt;
  SetokDiffusionRequest request;
  SetokPicture *picture; /* edit */
  SetokPicture *mask;    /* edit */
  SetokProgressFunc on_progress;
  gpointer progress_data;
  GMainContext *context;
} DiffusionData;

typedef struct
{
  SetokProgressFunc on_progress;
  gpointer progress_data;
  int step, total;
  SetokPicture *preview;
} Progress;

static void
diffusion_data_free (gpointer data)
{
  DiffusionData *d = data;

  g_free (d->prompt);
  g_clear_pointer (&d->picture, setok_picture_unref);
  g_clear_pointer (&d->mask, setok_picture_unref);
  g_clear_pointer (&d->context, g_main_context_unref);
  g_free (d);
}

static void
progress_free (gpointer data)
{
  Progress *p = data;

  g_clear_pointer (&p->preview, setok_picture_unref);
  g_free (p);
}

static gboolean
deliver_progress (gpointer data)
{
  Progress *p = data;

  p->on_progress (p->step, p->total, p->preview, p->progress_data);
  return G_SOURCE_REMOVE;
}

/* An edit's preview as the user will see the result: the preview scaled to
 * the picture inside the region, the picture's own pixels outside. */
static gboolean
edit_preview (setok_image *out, const setok_image *preview, const setok_image *picture,
              const setok_image *mask, setok_error *err)
{
  setok_image scaled = { 0 };
  int c = picture->channels;

  if (preview->channels < 3
      || setok_image_resize (&scaled, preview, picture->width, picture->height,
                             SETOK_RESAMPLE_BILINEAR, err)
           != SETOK_OK)
    return FALSE;
  if (setok_image_alloc (out, picture->width, picture->height, c, err) != SETOK_OK)
    {
      setok_image_free (&scaled);
      return FALSE;
    }
  memcpy (out->pixels, picture->pixels, (gsize)picture->width * picture->height * c);
  for (gsize i = 0; i < (gsize)picture->width * picture->height; i++)
    if (mask->pixels[i] > 127 && c >= 3)
      memcpy (out->pixels + i * c, scaled.pixels + i * scaled.channels, 3);
  setok_image_free (&scaled);
  return TRUE;
}

/* engine thread: forwards to the main loop, where it arrives before the result */
static void
send_progress (DiffusionData *d, int step, int total, const setok_image *preview)
{
  Progress *p;
  setok_image copy = { 0 };
  setok_error err = { 0 };

  if (d->on_progress == NULL)
    return;
  p = g_new0 (Progress, 1);
  p->on_progress = d->on_progress;
  p->progress_data = d->progress_data;
  p->step = step;
  p->total = total;
  if (preview != NULL && d->picture != NULL)
    {
      if (edit_preview (&copy, preview, setok_picture_get_image (d->picture),
                        setok_picture_get_image (d->mask), &err))
        p->preview = setok_picture_new_take (&copy);
    }
  else if (preview != NULL
           && setok_image_alloc (&copy, preview->width, preview->height, preview->channels, &err)
                == SETOK_OK)
    {
      memcpy (copy.pixels, preview->pixels,
              (gsize)preview->width * preview->height * preview->channels);
      p->preview = setok_picture_new_take (&copy);
    }
  g_main_context_invoke_full (d->context, G_PRIORITY_DEFAULT, deliver_progress, p, progress_free);
}

static void
diffusion_on_step (int step, int total, void *user)
{
  send_progress (user, step, total, NULL);
}

static void
diffusion_on_preview (const setok_image *preview, int step, void *user)
{
  DiffusionData *d = user;

  send_progress (d, step, d->request.steps, preview);
}

/* Makes the pipeline over the editing role's model once; FALSE (job answered) when the
 * model cannot do cap. */
static gboolean
ensure_diffusion (SetokEngine *self, Job *job, setok_capability cap)
{
  setok_error err = { 0 };

  setok_model *model = self->roles[SETOK_ROLE_EDIT];

  job->refresh_capabilities = TRUE;
  if (model == NULL)
    setok_fail (&err, SETOK_ERR_INPUT, "%s", _ ("No model is loaded"));
  else if (setok_model_require (model, cap, &err) == SETOK_OK && self->diffusion == NULL)
    setok_diffusion_new (&self->diffusion, model, &err);
  snapshot_unavailable (self, job->unavailable);
  if (self->diffusion != NULL && err.status == SETOK_OK)
    return TRUE;
  g_task_return_new_error (job->task, SETOK_ENGINE_ERROR, SETOK_ENGINE_ERROR_CANNOT_GENERATE,
                           _ ("This model cannot generate images: %s"), err.message);
  return FALSE;
}

static void
diffusion_run (SetokEngine *self, Job *job)
{
  DiffusionData *d = job->data;
  setok_diffusion_options o;
  setok_image out = { 0 };
  setok_error err = { 0 };
  setok_status st;

  if (!ensure_diffusion (self, job,
                         d->picture != NULL ? SETOK_CAP_EDIT : SETOK_CAP_GENERATE))
    return;
  setok_diffusion_options_default (&o);
  o.prompt = d->prompt;
  o.steps = MAX (1, d->request.steps);
  o.guidance = (float)d->request.guidance;
  o.seed = d->request.seed;
  o.on_step = diffusion_on_step;
  o.on_preview = diffusion_on_preview;
  o.preview_every = MAX (1, o.steps / 8);
  o.user = d;
  o.cancel = &job->cancel;
  d->request.steps = o.steps;
  if (d->picture != NULL)
    st = setok_diffusion_edit (self->diffusion, setok_picture_get_image (d->picture),
                               setok_picture_get_image (d->mask), &o, &out, &err);
  else
    st = setok_diffusion_generate (self->diffusion, &o, &out, &err);
  if (st != SETOK_OK)
    {
      setok_image_free (&out);
      g_task_return_error (job->task, setok_error_to_gerror (&err));
      return;
    }
  g_task_return_pointer (job->task, setok_picture_new_take (&out),
                         (GDestroyNotify)setok_picture_unref);
}

static void
submit_diffusion (SetokEngine *self, Job *job, const char *prompt,
                  const SetokDiffusionRequest *request, SetokProgressFunc on_progress,
                  gpointer progress_data, SetokPicture *picture, SetokPicture *mask)
{
  DiffusionData *d = g_new0 (DiffusionData, 1);

  d->prompt = g_strdup (prompt != NULL ? prompt : "");
  d->request = *request;
  d->picture = picture != NULL ? setok_picture_ref (picture) : NULL;
  d->mask = mask != NULL ? setok_picture_ref (mask) : NULL;
  d->on_progress = on_progress;
  d->progress_data = progress_data;
  d->context = g_main_context_ref_thread_default ();
  job->data = d;
  job->data_free = diffusion_data_free;
  job->run = diffusion_run;
  job_submit (self, job);
}

void
setok_engine_generate_async (SetokEngine *self, const char *prompt,
                             const SetokDiffusionRequest *request, SetokProgressFunc on_progress,
                             gpointer progress_data, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (SETOK_IS_ENGINE (self));

  submit_diffusion (self,
                    job_new (self, setok_engine_generate_async, cancellable, callback, user_data),
                    prompt, request, on_progress, progress_data, NULL, NULL);
}

SetokPicture *
setok_engine_generate_finish (SetokEngine *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

void
setok_engine_edit_async (SetokEngine *self, SetokPicture *picture, SetokPicture *mask,
                         const char *instruction, const SetokDiffusionRequest *request,
                         SetokProgressFunc on_progress, gpointer progress_data,
                         GCancellable *cancellable, GAsyncReadyCallback callback,
                         gpointer user_data)
{
  g_return_if_fail (SETOK_IS_ENGINE (self));
  g_return_if_fail (picture != NULL && mask != NULL);

  submit_diffusion (self, job_new (self, setok_engine_edit_async, cancellable, callback, user_data),
                    instruction, request, on_progress, progress_data, picture, mask);
}

SetokPicture *
setok_engine_edit_finish (SetokEngine *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

// ----------------------------------------------------------------------------
// segmentation by the mask decoder

typedef struct
{
  SetokPicture *picture;
  char *phrase;
  setok_segment_point *points;
  int n_points;
  setok_image_fit fit;
} SegmentData;

static void
segment_data_free (gpointer data)
{
  SegmentData *d = data;

  g_clear_pointer (&d->picture, setok_picture_unref);
  g_free (d->phrase);
  g_free (d->points);
  g_free (d);
}

static void
segment_run (SetokEngine *self, Job *job)
{
  SegmentData *d = job->data;
  setok_segment_result r = { 0 };
  setok_error err = { 0 };
  setok_status st = SETOK_OK;

  setok_model *model = self->roles[SETOK_ROLE_SEGMENT];

  job->refresh_capabilities = TRUE;
  if (model == NULL)
    st = setok_fail (&err, SETOK_ERR_INPUT, "%s", _ ("No model is loaded"));
  else if (d->phrase != NULL)
    st = setok_model_require (model, SETOK_CAP_SEGMENT_PHRASE, &err);
  if (st == SETOK_OK && self->segmenter == NULL)
    st = setok_segmenter_new (&self->segmenter, model, &err);
  if (st == SETOK_OK)
    setok_segmenter_set_image_fit (self->segmenter, d->fit);
  if (st == SETOK_OK)
    st = setok_segmenter_run (self->segmenter, setok_picture_get_image (d->picture), d->phrase,
                              d->points, d->n_points, &job->cancel, &r, &err);
  snapshot_unavailable (self, job->unavailable);
  if (st != SETOK_OK)
    {
      setok_segment_result_free (&r);
      g_task_return_error (job->task, setok_error_to_gerror (&err));
      return;
    }
  SetokPicture *mask = setok_picture_new_take (&r.mask);
  setok_segment_result_free (&r);
  g_task_return_pointer (job->task, mask, (GDestroyNotify)setok_picture_unref);
}

void
setok_engine_segment_async (SetokEngine *self, SetokPicture *picture, const char *phrase,
                            const setok_segment_point *points, int n, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (SETOK_IS_ENGINE (self));
  g_return_if_fail (picture != NULL && n >= 0);

  Job *job = job_new (self, setok_engine_segment_async, cancellable, callback, user_data);
  SegmentData *d = g_new0 (SegmentData, 1);

  d->picture = setok_picture_ref (picture);
  d->fit = self->image_fit;
  d->phrase = g_strdup (phrase);
  d->points = n > 0 ? g_memdup2 (points, sizeof *points * (gsize)n) : NULL;
  d->n_points = n;
  job->data = d;
  job->data_free = segment_data_free;
  job->run = segment_run;
  job_submit (self, job);
}

SetokPicture *
setok_engine_segment_finish (SetokEngine *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

// ----------------------------------------------------------------------------
// the object

const char *
setok_engine_get_model_path (SetokEngine *self)
{
  return self->model_path;
}

const char *
setok_engine_get_model_name (SetokEngine *self)
{
  return self->model_name;
}

const char *
setok_engine_get_device_name (SetokEngine *self)
{
  return self->device_name;
}

const char *
setok_engine_get_model_error (SetokEngine *self)
{
  return self->model_error;
}

gboolean
setok_engine_get_loading (SetokEngine *self)
{
  return self->loading;
}

gboolean
setok_engine_get_has_tokens (SetokEngine *self)
{
  return self->has_tokens;
}

gboolean
setok_engine_get_has_chat (SetokEngine *self)
{
  return self->has_chat;
}

guint
setok_engine_get_queue_length (SetokEngine *self)
{
  return self->queue_length;
}

setok_cluster_params
setok_engine_get_default_params (SetokEngine *self)
{
  return self->default_params;
}

void
setok_engine_set_image_fit (SetokEngine *self, setok_image_fit fit)
{
  g_return_if_fail (SETOK_IS_ENGINE (self));
  g_return_if_fail ((unsigned)fit < SETOK_IMAGE_FIT_COUNT);
  self->image_fit = fit;
}

setok_image_fit
setok_engine_get_image_fit (SetokEngine *self)
{
  return self->image_fit;
}

const SetokModelCard *
setok_engine_get_card (SetokEngine *self)
{
  g_return_val_if_fail (SETOK_IS_ENGINE (self), NULL);
  return self->card;
}

const char *
setok_engine_get_role_path (SetokEngine *self, SetokRole role)
{
  g_return_val_if_fail (SETOK_IS_ENGINE (self), NULL);
  g_return_val_if_fail ((unsigned)role < SETOK_ROLE_COUNT, NULL);
  return self->role_path[role];
}

gboolean
setok_engine_get_role_own (SetokEngine *self, SetokRole role)
{
  g_return_val_if_fail (SETOK_IS_ENGINE (self), FALSE);
  g_return_val_if_fail ((unsigned)role < SETOK_ROLE_COUNT, FALSE);
  return self->role_own[role];
}

gboolean
setok_engine_get_segments_clicks (SetokEngine *self)
{
  g_return_val_if_fail (SETOK_IS_ENGINE (self), FALSE);
  return self->segments_clicks;
}

const char *
setok_engine_get_unavailable_reason (SetokEngine *self, setok_capability cap)
{
  g_return_val_if_fail (SETOK_IS_ENGINE (self), NULL);
  g_return_val_if_fail ((unsigned)cap < SETOK_CAP_COUNT, NULL);
  return self->unavailable[cap];
}

int
setok_engine_get_component_loads (SetokEngine *self, setok_component component)
{
  setok_component_info info = { 0 };

  g_return_val_if_fail (SETOK_IS_ENGINE (self), 0);
  if (self->model != NULL)
    setok_model_component_info (self->model, component, &info);
  return info.loads;
}

static void
setok_engine_finalize (GObject *object)
{
  SetokEngine *self = SETOK_ENGINE (object);
  Job *quit = g_new0 (Job, 1);

  /* every job holds a reference through its task, so the queue is empty */
  g_async_queue_push (self->jobs, quit);
  g_thread_join (self->thread);
  g_async_queue_unref (self->jobs);
  unload (self);
  placement_clear (&self->placement);
  for (int r = 0; r < SETOK_ROLE_COUNT; r++)
    {
      g_free (self->role_dir[r]);
      g_free (self->role_path[r]);
    }
  for (int c = 0; c < SETOK_CAP_COUNT; c++)
    g_free (self->unavailable[c]);
  g_free (self->model_path);
  g_free (self->model_name);
  g_free (self->device_name);
  g_free (self->model_error);
  setok_model_card_free (self->card);
  G_OBJECT_CLASS (setok_engine_parent_class)->finalize (object);
}

static void
setok_engine_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  SetokEngine *self = SETOK_ENGINE (object);

  switch (prop_id)
    {
      case PROP_MODEL_PATH:
        g_value_set_string (value, self->model_path);
        break;
      case PROP_MODEL_NAME:
        g_value_set_string (value, self->model_name);
        break;
      case PROP_DEVICE_NAME:
        g_value_set_string (value, self->device_name);
        break;
      case PROP_MODEL_ERROR:
        g_value_set_string (value, self->model_error);
        break;
      case PROP_LOADING:
        g_value_set_boolean (value, self->loading);
        break;
      case PROP_HAS_TOKENS:
        g_value_set_boolean (value, self->has_tokens);
        break;
      case PROP_HAS_CHAT:
        g_value_set_boolean (value, self->has_chat);
        break;
      case PROP_QUEUE_LENGTH:
        g_value_set_uint (value, self->queue_length);
        break;
      case PROP_CAPABILITY_SERIAL:
        g_value_set_uint (value, self->capability_serial);
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
setok_engine_class_init (SetokEngineClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags flags = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->finalize = setok_engine_finalize;
  object_class->get_property = setok_engine_get_property;

  properties[PROP_MODEL_PATH] = g_param_spec_string ("model-path", NULL, NULL, NULL, flags);
  properties[PROP_MODEL_NAME] = g_param_spec_string ("model-name", NULL, NULL, NULL, flags);
  properties[PROP_DEVICE_NAME] = g_param_spec_string ("device-name", NULL, NULL, NULL, flags);
  properties[PROP_MODEL_ERROR] = g_param_spec_string ("model-error", NULL, NULL, NULL, flags);
  properties[PROP_LOADING] = g_param_spec_boolean ("loading", NULL, NULL, FALSE, flags);
  properties[PROP_HAS_TOKENS] = g_param_spec_boolean ("has-tokens", NULL, NULL, FALSE, flags);
  properties[PROP_HAS_CHAT] = g_param_spec_boolean ("has-chat", NULL, NULL, FALSE, flags);
  properties[PROP_QUEUE_LENGTH]
    = g_param_spec_uint ("queue-length", NULL, NULL, 0, G_MAXUINT, 0, flags);
  properties[PROP_CAPABILITY_SERIAL]
    = g_param_spec_uint ("capability-serial", NULL, NULL, 0, G_MAXUINT, 0, flags);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* a folder was refused for a role (guint SetokRole), with the reason */
  signals[ROLE_REFUSED]
    = g_signal_new ("role-refused", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                    NULL, G_TYPE_NONE, 2, G_TYPE_UINT, G_TYPE_STRING);
}

static void
setok_engine_init (SetokEngine *self)
{
  for (int c = 0; c < SETOK_CAP_COUNT; c++)
    self->unavailable[c] = g_strdup (_ ("No model is loaded"));
  self->jobs = g_async_queue_new ();
  self->default_params = setok_cluster_params_default ();
  self->thread = g_thread_new ("setok-engine", engine_thread_main, self);
}

SetokEngine *
setok_engine_new (void)
{
  return g_object_new (SETOK_TYPE_ENGINE, NULL);
}
