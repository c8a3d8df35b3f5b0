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
void setok_chat_view_reset (SetokChatView *self);
gboolean setok_chat_view_get_busy (SetokChatView *self);
/* The latest answer's text so far, or NULL before the first. */
const char *setok_chat_view_get_last_answer (SetokChatView *self);
void setok_chat_view_focus_entry (SetokChatView *self);

G_END_DECLS
