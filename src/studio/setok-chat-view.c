/* setok-chat-view.c — the chat side panel of one document.
 *
 * Each question is one engine job; the answer label grows as text streams
 * in, and a caption under it gives the time to the first token, the decode
 * speed and how many vision tokens stood for the image. Before the first
 * question the panel offers example questions: a SETOKIM bundle's card lists
 * the kinds it was trained on, other chat models get general ones. The turns
 * are kept in the user's data folder under the picture's content key, and
 * come back when the same picture is opened again; Clear Conversation
 * forgets them, with a toast to undo it. */
#include "setok-chat-view.h"

#include <glib/gi18n.h>

#include "setok-conversation-store.h"

struct _SetokChatView
{
  GtkWidget parent_instance;

  SetokEngine *engine;
  SetokDocument *document;
  GSettings *settings;
  guint conversation;
  GPtrArray *turns; /* of GVariant (sss): question, answer, caption */
  GVariant *cleared; /* the turns Clear Conversation took, until undone or replaced */
  const SetokModelCard *examples_card; /* the card the examples were made for */
  gulong engine_handler;
  char *question; /* the one being answered */
  double first_token_ms; /* of the last answer */

  GCancellable *cancellable;
  GString *answer;
  GtkLabel *answer_label;
  GtkLabel *info_label;
  GtkWidget *copy_button;

  /* template */
  GtkScrolledWindow *scroller;
  GtkBox *messages;
  GtkWidget *placeholder;
  GtkBox *examples_box;
  GtkLabel *status_label;
  GtkEntry *entry;
  GtkStack *send_stack;
  GtkWidget *send_button;
  GtkWidget *stop_button;
};

G_DEFINE_FINAL_TYPE (SetokChatView, setok_chat_view, GTK_TYPE_WIDGET)

enum
{
  PROP_0,
  PROP_BUSY,
  PROP_ANSWER,
  N_PROPS
};

enum
{
  FAILED,
  TOAST,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

gboolean
setok_chat_view_get_busy (SetokChatView *self)
{
  return self->cancellable != NULL;
}

const char *
setok_chat_view_get_last_answer (SetokChatView *self)
{
  return self->answer != NULL ? self->answer->str : NULL;
}

const char *
setok_chat_view_get_shown_answer (SetokChatView *self)
{
  GtkWidget *last = gtk_widget_get_last_child (GTK_WIDGET (self->messages));

  if (last == NULL || last == self->placeholder || !gtk_widget_has_css_class (last, "assistant"))
    return NULL;
  return gtk_label_get_text (GTK_LABEL (gtk_widget_get_first_child (last)));
}

double
setok_chat_view_get_first_token_ms (SetokChatView *self)
{
  return self->first_token_ms;
}

guint
setok_chat_view_get_n_turns (SetokChatView *self)
{
  return self->turns->len;
}

static void
show_toast (SetokChatView *self, AdwToast *toast)
{
  g_signal_emit (self, signals[TOAST], 0, toast);
  g_object_unref (toast);
}

// ----------------------------------------------------------------------------
// examples

static void
example_clicked (GtkButton *button, SetokChatView *self)
{
  setok_chat_view_ask (self, g_object_get_data (G_OBJECT (button), "question"));
}

static void
add_example (SetokChatView *self, const char *question)
{
  GtkWidget *button = gtk_button_new ();
  GtkWidget *label = gtk_label_new (question);

  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_wrap_mode (GTK_LABEL (label), PANGO_WRAP_WORD_CHAR);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_button_set_child (GTK_BUTTON (button), label);
  gtk_widget_add_css_class (button, "example");
  g_object_set_data_full (G_OBJECT (button), "question", g_strdup (question), g_free);
  g_signal_connect (button, "clicked", G_CALLBACK (example_clicked), self);
  gtk_box_append (self->examples_box, button);
}

/* A bundle's own examples, worded as it was trained; general ones for other chat models. */
static void
update_examples (SetokChatView *self)
{
  const SetokModelCard *card = setok_engine_get_card (self->engine);
  GtkWidget *child;

  if (card == self->examples_card && gtk_widget_get_first_child (GTK_WIDGET (self->examples_box)))
    return;
  self->examples_card = card;
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->examples_box))) != NULL)
    gtk_box_remove (self->examples_box, child);
  if (card == NULL || !setok_engine_get_has_chat (self->engine))
    return;
  if (card->questions->len > 0)
    for (guint i = 0; i < card->questions->len; i++)
      add_example (self, g_ptr_array_index (card->questions, i));
  else
    {
      add_example (self, _ ("Describe the image."));
      add_example (self, _ ("What is in the picture?"));
      add_example (self, _ ("What colours do you see?"));
    }
}

guint
setok_chat_view_get_n_examples (SetokChatView *self)
{
  guint n = 0;

  for (GtkWidget *c = gtk_widget_get_first_child (GTK_WIDGET (self->examples_box)); c != NULL;
       c = gtk_widget_get_next_sibling (c))
    n++;
  return n;
}

gboolean
setok_chat_view_ask_example (SetokChatView *self, guint index)
{
  GtkWidget *c = gtk_widget_get_first_child (GTK_WIDGET (self->examples_box));

  for (; c != NULL && index > 0; index--)
    c = gtk_widget_get_next_sibling (c);
  if (c == NULL || !gtk_widget_get_mapped (GTK_WIDGET (self->placeholder)))
    return FALSE;
  g_signal_emit_by_name (c, "clicked");
  return TRUE;
}

// ----------------------------------------------------------------------------
// state

static void
update_actions (SetokChatView *self)
{
  gboolean busy = setok_chat_view_get_busy (self);
  gboolean can_chat = setok_engine_get_has_chat (self->engine);
  const char *why = setok_engine_get_unavailable_reason (self->engine, SETOK_CAP_CHAT);

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.send", !busy && can_chat);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.stop", busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.clear", busy || self->turns->len > 0);
  gtk_stack_set_visible_child (self->send_stack, busy ? self->stop_button : self->send_button);
  /* the send button says why there is no chat */
  gtk_widget_set_tooltip_text (self->send_button, can_chat || why == NULL ? _ ("Send") : why);
  gtk_widget_set_sensitive (GTK_WIDGET (self->entry), can_chat || busy);
  if (!can_chat && !setok_engine_get_loading (self->engine))
    {
      const char *error = setok_engine_get_model_error (self->engine);
      g_autofree char *text = NULL;

      /* with token overlays loaded, the engine's message already says "Chat is unavailable" */
      if (setok_engine_get_has_tokens (self->engine) && error != NULL)
        text = g_strdup (error);
      else
        text = g_strdup_printf (_ ("No chat model: %s"),
                                error != NULL ? error : _ ("none is loaded"));
      gtk_label_set_text (self->status_label, text);
      gtk_widget_set_visible (GTK_WIDGET (self->status_label), TRUE);
    }
  else
    gtk_widget_set_visible (GTK_WIDGET (self->status_label), FALSE);
  update_examples (self);
}

static void
scroll_to_end (SetokChatView *self)
{
  GtkAdjustment *adj = gtk_scrolled_window_get_vadjustment (self->scroller);

  gtk_adjustment_set_value (adj, gtk_adjustment_get_upper (adj));
}

// ----------------------------------------------------------------------------
// messages

static void
copy_clicked (GtkButton *button, SetokChatView *self)
{
  const char *text = g_object_get_data (G_OBJECT (button), "text");

  if (text == NULL)
    return;
  gdk_clipboard_set_text (gtk_widget_get_clipboard (GTK_WIDGET (self)), text);
  show_toast (self, adw_toast_new (_ ("Answer copied")));
}

void
setok_chat_view_copy_last_answer (SetokChatView *self)
{
  for (GtkWidget *m = gtk_widget_get_last_child (GTK_WIDGET (self->messages)); m != NULL;
       m = gtk_widget_get_prev_sibling (m))
    {
      GtkWidget *button = g_object_get_data (G_OBJECT (m), "copy-button");

      if (button != NULL && gtk_widget_get_sensitive (button))
        {
          copy_clicked (GTK_BUTTON (button), self);
          return;
        }
    }
}

static GtkLabel *
add_message (SetokChatView *self, const char *text, const char *style)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  GtkWidget *label = gtk_label_new (text);

  gtk_widget_set_visible (self->placeholder, FALSE);
  gtk_widget_add_css_class (box, "message");
  gtk_widget_add_css_class (box, style);
  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_wrap_mode (GTK_LABEL (label), PANGO_WRAP_WORD_CHAR);
  gtk_label_set_selectable (GTK_LABEL (label), TRUE);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_box_append (GTK_BOX (box), label);
  gtk_box_append (self->messages, box);
  return GTK_LABEL (label);
}

/* An assistant message: its text, then a caption and a copy button. */
static void
add_answer (SetokChatView *self, const char *text, const char *caption)
{
  GtkLabel *label = add_message (self, text, "assistant");
  GtkWidget *box = gtk_widget_get_parent (GTK_WIDGET (label));
  GtkWidget *row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  GtkWidget *info = gtk_label_new (caption);
  GtkWidget *copy = gtk_button_new_from_icon_name ("edit-copy-symbolic");

  gtk_widget_add_css_class (info, "caption");
  gtk_widget_add_css_class (info, "dim-label");
  gtk_label_set_xalign (GTK_LABEL (info), 0);
  gtk_label_set_wrap (GTK_LABEL (info), TRUE);
  gtk_widget_set_hexpand (info, TRUE);
  gtk_widget_add_css_class (copy, "flat");
  gtk_widget_set_valign (copy, GTK_ALIGN_START);
  gtk_widget_set_tooltip_text (copy, _ ("Copy Answer"));
  gtk_accessible_update_property (GTK_ACCESSIBLE (copy), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  _ ("Copy Answer"), -1);
  g_object_set_data_full (G_OBJECT (copy), "text", g_strdup (text), g_free);
  gtk_widget_set_sensitive (copy, text[0] != '\0');
  g_signal_connect (copy, "clicked", G_CALLBACK (copy_clicked), self);
  gtk_box_append (GTK_BOX (row), info);
  gtk_box_append (GTK_BOX (row), copy);
  gtk_box_append (GTK_BOX (box), row);
  g_object_set_data (G_OBJECT (box), "copy-button", copy);

  self->answer_label = label;
  self->info_label = GTK_LABEL (info);
  self->copy_button = copy;
}

/* An answer with no words says so, and what might work instead. */
static void
show_no_answer (SetokChatView *self)
{
  gtk_label_set_text (self->answer_label, _ ("No answer"));
  gtk_widget_add_css_class (GTK_WIDGET (self->answer_label), "dim-label");
}

static void
remove_messages (SetokChatView *self)
{
  GtkWidget *child;

  while ((child = gtk_widget_get_last_child (GTK_WIDGET (self->messages))) != self->placeholder)
    gtk_box_remove (self->messages, child);
  gtk_widget_set_visible (self->placeholder, TRUE);
}

/* The turns' messages, as they were answered. */
static void
show_turns (SetokChatView *self)
{
  remove_messages (self);
  for (guint i = 0; i < self->turns->len; i++)
    {
      const char *question, *answer, *caption;

      g_variant_get (g_ptr_array_index (self->turns, i), "(&s&s&s)", &question, &answer,
                     &caption);
      add_message (self, question, "user");
      add_answer (self, answer, caption);
      if (answer[0] == '\0')
        show_no_answer (self);
    }
  self->answer_label = NULL;
  self->info_label = NULL;
  self->copy_button = NULL;
}

// ----------------------------------------------------------------------------
// keeping the conversation

static GVariant *
turns_variant (SetokChatView *self)
{
  GVariantBuilder b;

  g_variant_builder_init (&b, G_VARIANT_TYPE (SETOK_CONVERSATION_TYPE));
  for (guint i = 0; i < self->turns->len; i++)
    g_variant_builder_add_value (&b, g_ptr_array_index (self->turns, i));
  return g_variant_ref_sink (g_variant_builder_end (&b));
}

static void
turns_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;

  if (!setok_conversation_save_finish (result, &error))
    g_debug ("the kept conversation was not updated: %s", error->message);
}

static void
save_turns (SetokChatView *self)
{
  const char *key = setok_document_get_content_key (self->document);
  g_autoptr (GVariant) turns = NULL;

  if (key == NULL)
    return;
  turns = turns_variant (self);
  setok_conversation_save_async (key, turns, NULL, turns_written, NULL);
}

static void
set_turns (SetokChatView *self, GVariant *turns)
{
  GVariantIter iter;
  GVariant *turn;

  g_ptr_array_set_size (self->turns, 0);
  g_variant_iter_init (&iter, turns);
  while ((turn = g_variant_iter_next_value (&iter)) != NULL)
    g_ptr_array_add (self->turns, turn);
  show_turns (self);
}

static void
restore_turns (SetokChatView *self)
{
  const char *key = setok_document_get_content_key (self->document);
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) turns = key != NULL ? setok_conversation_load (key, &error) : NULL;

  if (turns != NULL)
    set_turns (self, turns);
  else if (error != NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
    g_debug ("no earlier conversation: %s", error->message);
}

// ----------------------------------------------------------------------------
// asking

/* One question in flight; stale once the view moved on (stop + clear). */
typedef struct
{
  SetokChatView *self;
  GCancellable *cancellable;
} Ask;

static void
ask_free (Ask *ask)
{
  g_object_unref (ask->self);
  g_object_unref (ask->cancellable);
  g_free (ask);
}

static gboolean
ask_is_current (Ask *ask)
{
  return ask->self->cancellable == ask->cancellable && ask->self->answer_label != NULL;
}

static void
on_text (const char *text, gpointer user_data)
{
  Ask *ask = user_data;
  SetokChatView *self = ask->self;

  if (!ask_is_current (ask))
    return;
  g_string_append (self->answer, text);
  gtk_label_set_text (self->answer_label, self->answer->str);
  gtk_label_set_text (self->info_label, _ ("Writing…"));
  scroll_to_end (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ANSWER]);
}

/* The answer is done: it becomes a turn, kept with the others. */
static void
finish_answer (SetokChatView *self, gboolean keep)
{
  g_object_set_data_full (G_OBJECT (self->copy_button), "text", g_strdup (self->answer->str),
                          g_free);
  gtk_widget_set_sensitive (self->copy_button, self->answer->len > 0);
  if (keep && self->question != NULL)
    {
      g_ptr_array_add (self->turns,
                       g_variant_ref_sink (g_variant_new (
                         "(sss)", self->question, self->answer->str,
                         gtk_label_get_text (self->info_label))));
      save_turns (self);
    }
  g_clear_pointer (&self->question, g_free);
  self->answer_label = NULL;
  self->info_label = NULL;
  self->copy_button = NULL;
  g_clear_object (&self->cancellable);
  update_actions (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUSY]);
}

static void chat_reply (SetokChatView *self, SetokChatReply *reply, GError *error);

static void
chat_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Ask *ask = user_data;
  SetokChatView *self = ask->self;
  g_autoptr (GError) error = NULL;
  g_autoptr (SetokChatReply) reply
    = setok_engine_chat_finish (SETOK_ENGINE (source), result, &error);

  if (!ask_is_current (ask))
    {
      ask_free (ask); /* the conversation was cleared meanwhile */
      return;
    }
  g_object_ref (self);
  ask_free (ask);
  chat_reply (self, reply, error);
  g_object_unref (self);
}

static void
chat_reply (SetokChatView *self, SetokChatReply *reply, GError *error)
{
  g_autofree char *info = NULL;
  g_autofree char *words = NULL;

  if (reply == NULL)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        gtk_label_set_text (self->info_label, _ ("Stopped"));
      else
        {
          gtk_label_set_text (self->info_label, error->message);
          gtk_widget_add_css_class (GTK_WIDGET (self->info_label), "error");
          g_signal_emit (self, signals[FAILED], 0, error);
        }
      finish_answer (self, FALSE);
      return;
    }
  /* the streamed text is what the user read; the reply's is the same, final */
  self->first_token_ms = reply->first_token_ms;
  g_string_assign (self->answer, reply->text);
  gtk_label_set_text (self->answer_label, reply->text);
  words = g_strstrip (g_strdup (reply->text));
  if (words[0] == '\0')
    {
      show_no_answer (self);
      info = g_strdup (
        _ ("The model wrote nothing. Try one of the example questions, or ask it differently."));
    }
  else
    info = g_strdup_printf (
      /* Translators: time to first token, decode speed, vision tokens */
      _ ("First token %.0f ms · %.1f tokens/s · %d vision tokens"), reply->first_token_ms,
      reply->tokens_per_s, reply->n_image_tokens);
  if (g_strcmp0 (reply->stop_reason, "callback") == 0)
    {
      g_autofree char *stopped = g_strdup_printf (_ ("%s · stopped"), info);
      g_free (g_steal_pointer (&info));
      info = g_steal_pointer (&stopped);
    }
  gtk_label_set_text (self->info_label, info);
  if (reply->restarted && self->turns->len > 0)
    {
      GtkLabel *note = add_message (
        self,
        _ ("The earlier turns were no longer in the model’s memory, so it answered without them."),
        "note");
      gtk_widget_add_css_class (GTK_WIDGET (note), "dim-label");
    }
  finish_answer (self, TRUE);
  scroll_to_end (self);
}

static void
fill_options (SetokChatView *self, setok_chat_options *o)
{
  SetokTokenMap *map = setok_document_get_token_map (self->document);
  g_autofree char *image_tokens = g_settings_get_string (self->settings, "chat-image-tokens");

  setok_chat_options_default (o);
  o->sampling.max_new_tokens = g_settings_get_int (self->settings, "max-new-tokens");
  o->sampling.temperature = (float)g_settings_get_double (self->settings, "temperature");
  o->sampling.top_k = g_settings_get_int (self->settings, "top-k");
  o->sampling.top_p = (float)g_settings_get_double (self->settings, "top-p");
  o->sampling.repetition_penalty
    = (float)g_settings_get_double (self->settings, "repetition-penalty");
  o->sampling.seed = (guint64)g_settings_get_int64 (self->settings, "seed");
  /* auto: the engine gives each model what it was trained on (a bundle its
   * SeTok tokens, LLaVA every patch) */
  if (g_strcmp0 (image_tokens, "patches") == 0)
    o->image_mode = SETOK_CHAT_IMAGE_PATCHES;
  else if (g_strcmp0 (image_tokens, "setok") == 0)
    o->image_mode = SETOK_CHAT_IMAGE_SETOK;
  else
    o->image_mode = SETOK_CHAT_IMAGE_DEFAULT;
  /* when the image is clustered, the tokens the user sees are the tokens the model reads */
  o->cluster_override = map != NULL;
  if (map != NULL)
    o->cluster = map->params;
}

gboolean
setok_chat_view_ask (SetokChatView *self, const char *question)
{
  setok_chat_options o;
  g_autofree char *text = g_strstrip (g_strdup (question));
  Ask *ask;

  g_return_val_if_fail (SETOK_IS_CHAT_VIEW (self), FALSE);

  if (text[0] == '\0' || setok_chat_view_get_busy (self)
      || !setok_engine_get_has_chat (self->engine))
    return FALSE;
  fill_options (self, &o);
  add_message (self, text, "user");
  add_answer (self, "", _ ("Thinking…"));
  gtk_widget_set_sensitive (self->copy_button, FALSE);
  if (self->answer != NULL)
    g_string_free (self->answer, TRUE);
  self->answer = g_string_new (NULL);
  g_free (self->question);
  self->question = g_steal_pointer (&text);
  self->cancellable = g_cancellable_new ();
  ask = g_new0 (Ask, 1);
  ask->self = g_object_ref (self);
  ask->cancellable = g_object_ref (self->cancellable);
  setok_engine_chat_async (self->engine, self->conversation,
                           setok_document_get_picture (self->document), self->question, &o,
                           on_text, ask, self->cancellable, chat_done, ask);
  update_actions (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUSY]);
  scroll_to_end (self);
  return TRUE;
}

void
setok_chat_view_stop (SetokChatView *self)
{
  if (self->cancellable != NULL)
    g_cancellable_cancel (self->cancellable);
}

// ----------------------------------------------------------------------------
// clearing, and undoing it

static void
undo_clear (AdwToast *toast, SetokChatView *self)
{
  g_autoptr (GVariant) turns = g_steal_pointer (&self->cleared);

  if (turns == NULL || setok_chat_view_get_busy (self) || self->turns->len > 0)
    return; /* a new conversation has begun meanwhile */
  set_turns (self, turns);
  save_turns (self);
  update_actions (self);
}

void
setok_chat_view_undo_clear (SetokChatView *self)
{
  undo_clear (NULL, self);
}

void
setok_chat_view_clear (SetokChatView *self)
{
  const char *key = setok_document_get_content_key (self->document);
  AdwToast *toast;
  guint n = self->turns->len;

  setok_chat_view_stop (self);
  if (self->info_label != NULL)
    finish_answer (self, FALSE);
  g_clear_pointer (&self->cleared, g_variant_unref);
  if (n > 0)
    self->cleared = turns_variant (self);
  g_ptr_array_set_size (self->turns, 0);
  remove_messages (self);
  if (self->answer != NULL)
    g_string_free (g_steal_pointer (&self->answer), TRUE);
  self->conversation = setok_engine_new_conversation (self->engine);
  if (key != NULL)
    setok_conversation_forget_async (key, NULL, turns_written, NULL);
  update_actions (self);
  if (n == 0)
    return;
  toast = adw_toast_new (_ ("Conversation cleared"));
  adw_toast_set_button_label (toast, _ ("_Undo"));
  g_signal_connect_object (toast, "button-clicked", G_CALLBACK (undo_clear), self, 0);
  show_toast (self, toast);
}

void
setok_chat_view_focus_entry (SetokChatView *self)
{
  gtk_widget_grab_focus (GTK_WIDGET (self->entry));
}

static void
send_question (SetokChatView *self)
{
  if (setok_chat_view_ask (self, gtk_editable_get_text (GTK_EDITABLE (self->entry))))
    gtk_editable_set_text (GTK_EDITABLE (self->entry), "");
}

static void
entry_activated (SetokChatView *self)
{
  send_question (self);
}

static void
action_send (GtkWidget *widget, const char *name, GVariant *param)
{
  send_question (SETOK_CHAT_VIEW (widget));
}

static void
action_stop (GtkWidget *widget, const char *name, GVariant *param)
{
  setok_chat_view_stop (SETOK_CHAT_VIEW (widget));
}

static void
action_clear (GtkWidget *widget, const char *name, GVariant *param)
{
  setok_chat_view_clear (SETOK_CHAT_VIEW (widget));
}

// ----------------------------------------------------------------------------
// the object

static void
setok_chat_view_dispose (GObject *object)
{
  SetokChatView *self = SETOK_CHAT_VIEW (object);
  GtkWidget *child;

  setok_chat_view_stop (self);
  g_clear_signal_handler (&self->engine_handler, self->engine);
  gtk_widget_dispose_template (GTK_WIDGET (self), SETOK_TYPE_CHAT_VIEW);
  /* the template's unnamed root box */
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  G_OBJECT_CLASS (setok_chat_view_parent_class)->dispose (object);
}

static void
setok_chat_view_finalize (GObject *object)
{
  SetokChatView *self = SETOK_CHAT_VIEW (object);

  g_clear_object (&self->cancellable);
  g_clear_object (&self->engine);
  g_clear_object (&self->document);
  g_clear_object (&self->settings);
  g_ptr_array_unref (self->turns);
  g_clear_pointer (&self->cleared, g_variant_unref);
  g_free (self->question);
  if (self->answer != NULL)
    g_string_free (self->answer, TRUE);
  G_OBJECT_CLASS (setok_chat_view_parent_class)->finalize (object);
}

static void
setok_chat_view_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  SetokChatView *self = SETOK_CHAT_VIEW (object);

  switch (prop_id)
    {
      case PROP_BUSY:
        g_value_set_boolean (value, setok_chat_view_get_busy (self));
        break;
      case PROP_ANSWER:
        g_value_set_string (value, setok_chat_view_get_last_answer (self));
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
setok_chat_view_class_init (SetokChatViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = setok_chat_view_dispose;
  object_class->finalize = setok_chat_view_finalize;
  object_class->get_property = setok_chat_view_get_property;

  properties[PROP_BUSY] = g_param_spec_boolean (
    "busy", NULL, NULL, FALSE, G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  /* the latest answer, notified as each piece streams in */
  properties[PROP_ANSWER]
    = g_param_spec_string ("answer", NULL, NULL, NULL,
                           G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
  /* an answer failed (not stopped) */
  signals[FAILED] = g_signal_new ("failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                                  NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
  /* something to tell the user in a toast (the window shows it) */
  signals[TOAST] = g_signal_new ("toast", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                                 NULL, NULL, G_TYPE_NONE, 1, ADW_TYPE_TOAST);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/setokstudio/Studio/setok-chat-view.ui");
  gtk_widget_class_bind_template_child (widget_class, SetokChatView, scroller);
  gtk_widget_class_bind_template_child (widget_class, SetokChatView, messages);
  gtk_widget_class_bind_template_child (widget_class, SetokChatView, placeholder);
  gtk_widget_class_bind_template_child (widget_class, SetokChatView, examples_box);
  gtk_widget_class_bind_template_child (widget_class, SetokChatView, status_label);
  gtk_widget_class_bind_template_child (widget_class, SetokChatView, entry);
  gtk_widget_class_bind_template_child (widget_class, SetokChatView, send_stack);
  gtk_widget_class_bind_template_child (widget_class, SetokChatView, send_button);
  gtk_widget_class_bind_template_child (widget_class, SetokChatView, stop_button);
  gtk_widget_class_bind_template_callback (widget_class, entry_activated);

  gtk_widget_class_install_action (widget_class, "chat.send", NULL, action_send);
  gtk_widget_class_install_action (widget_class, "chat.stop", NULL, action_stop);
  gtk_widget_class_install_action (widget_class, "chat.clear", NULL, action_clear);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "chat.stop", NULL);
  gtk_widget_class_set_css_name (widget_class, "setok-chat-view");
}

static void
setok_chat_view_init (SetokChatView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->turns = g_ptr_array_new_with_free_func ((GDestroyNotify)g_variant_unref);
}

GtkWidget *
setok_chat_view_new (SetokEngine *engine, SetokDocument *document, GSettings *settings)
{
  SetokChatView *self = g_object_new (SETOK_TYPE_CHAT_VIEW, NULL);

  self->engine = g_object_ref (engine);
  self->document = g_object_ref (document);
  self->settings = g_object_ref (settings);
  self->conversation = setok_engine_new_conversation (engine);
  self->engine_handler
    = g_signal_connect_swapped (engine, "notify", G_CALLBACK (update_actions), self);
  restore_turns (self);
  update_actions (self);
  return GTK_WIDGET (self);
}
