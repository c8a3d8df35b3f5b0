/* setok-conversation-store.h — conversations kept between sessions: one file
 * per picture in the user's data folder, named by the picture's content key
 * (setok_picture_content_key), holding its turns. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The turns of a conversation: questions, answers and the caption under each answer. */
#define SETOK_CONVERSATION_TYPE "a(sss)"

/* The saved turns of key's conversation (SETOK_CONVERSATION_TYPE), or NULL with
 * G_IO_ERROR_NOT_FOUND when there are none, or another error naming the file when it
 * cannot be read. */
GVariant *setok_conversation_load (const char *key, GError **error);
/* Replaces the saved turns of key's conversation, written atomically in a worker thread
 * (the disk may take its time); callback may be NULL. */
void setok_conversation_save_async (const char *key, GVariant *turns, GCancellable *cancellable,
                                    GAsyncReadyCallback callback, gpointer user_data);
/* The outcome of a save or a forget. */
gboolean setok_conversation_save_finish (GAsyncResult *result, GError **error);
/* Forgets key's conversation (no error when there was none), in the same thread and order
 * as the saves. */
void setok_conversation_forget_async (const char *key, GCancellable *cancellable,
                                      GAsyncReadyCallback callback, gpointer user_data);
/* The file that holds key's conversation. */
char *setok_conversation_path (const char *key);

G_END_DECLS
