/* setok-chat-view.h — the chat side panel of one document: questions about
 * its image, answers streamed in as the model writes them. */
#pragma once

#include <adwaita.h>

#include "setok-document.h"
#include "setok-engine.h"

G_BEGIN_DECLS

#define SETOK_TYPE_CHAT_VIEW (setok_chat_view_get_type ())

G_DECLARE_FINAL_TYPE (SetokChatView, setok_chat_view, SETOK, CHAT_VIEW, GtkWidget)

/* settings: the application's (sampling defaults). */
GtkWidget *setok_chat_view_new (SetokEngine *engine, SetokDocument *document, GSettings *settings);

/* Sends question as if typed; FALSE when busy or there is no chat model. */
gboolean setok_chat_view_ask (SetokChatView *self, const char *question);
void setok_chat_view_stop (SetokChatView *self);
/* Clear Conversation: stops, empties the panel and forgets the kept turns; a toast offers
 * to undo it. */
void setok_chat_view_clear (SetokChatView *self);
void setok_chat_view_undo_clear (SetokChatView *self);
/* The time to the first token of the last answer. */
double setok_chat_view_get_first_token_ms (SetokChatView *self);
/* Answered questions, the restored ones included. */
guint setok_chat_view_get_n_turns (SetokChatView *self);
/* The example questions offered before the first one, and asking one as if clicked (FALSE
 * when there is no such example or they are not shown). */
guint setok_chat_view_get_n_examples (SetokChatView *self);
gboolean setok_chat_view_ask_example (SetokChatView *self, guint index);
/* The copy button of the last answer with words, as if clicked. */
void setok_chat_view_copy_last_answer (SetokChatView *self);
gboolean setok_chat_view_get_busy (SetokChatView *self);
/* The latest answer's text so far, or NULL before the first. */
const char *setok_chat_view_get_last_answer (SetokChatView *self);
/* What the last answer's bubble shows ("No answer" for one without words); NULL before one. */
const char *setok_chat_view_get_shown_answer (SetokChatView *self);
void setok_chat_view_focus_entry (SetokChatView *self);

G_END_DECLS
