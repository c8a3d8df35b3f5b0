/* setok-conversation-store.c — each picture's conversation in
 * $XDG_DATA_HOME/setok-studio/conversations/KEY.conversation, as GVariant
 * text, written by one background thread in the order asked (the disk's sync
 * never holds the window up). A file that cannot be read is an error naming
 * it; the caller starts afresh. */
#include "setok-conversation-store.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>

char *
setok_conversation_path (const char *key)
{
  g_autofree char *name = g_strconcat (key, ".conversation", NULL);

  return g_build_filename (g_get_user_data_dir (), "setok-studio", "conversations", name, NULL);
}

/* Keys are hex digests: anything else would make a path outside the folder. */
static gboolean
check_key (const char *key, GError **error)
{
  gboolean ok = key != NULL && key[0] != '\0';

  for (const char *c = key; ok && *c != '\0'; c++)
    ok = g_ascii_isxdigit (*c);
  if (!ok)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "“%s” is not a conversation key", key != NULL ? key : "");
  return ok;
}

GVariant *
setok_conversation_load (const char *key, GError **error)
{
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  g_autoptr (GError) parse_error = NULL;
  GVariant *turns;

  if (!check_key (key, error))
    return NULL;
  path = setok_conversation_path (key);
  if (!g_file_get_contents (path, &text, NULL, error))
    {
      if (error != NULL && *error != NULL && (*error)->domain == G_FILE_ERROR
          && (*error)->code == G_FILE_ERROR_NOENT)
        {
          g_clear_error (error);
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s: no conversation", path);
        }
      return NULL;
    }
  turns = g_variant_parse (G_VARIANT_TYPE (SETOK_CONVERSATION_TYPE), text, NULL, NULL,
                           &parse_error);
  if (turns == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _ ("%s: not a saved conversation: %s"), path, parse_error->message);
      return NULL;
    }
  return turns;
}

/* pool thread: writes one conversation; the pool has one thread, so saves land in order */
static void
save_in_thread (gpointer data, gpointer pool_data)
{
  g_autoptr (GTask) task = data;
  const char *path = g_object_get_data (G_OBJECT (task), "path");
  g_autofree char *dir = g_path_get_dirname (path);
  GError *error = NULL;

  /* no text: forget it */
  if (g_task_get_task_data (task) == NULL)
    {
      int saved = g_unlink (path) != 0 ? errno : 0;

      if (saved != 0 && saved != ENOENT)
        g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved), "%s: %s",
                                 path, g_strerror (saved));
      else
        g_task_return_boolean (task, TRUE);
      return;
    }
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved = errno;
      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved), "%s: %s", dir,
                               g_strerror (saved));
      return;
    }
  if (!g_file_set_contents_full (path, g_task_get_task_data (task), -1,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

/* Writes text (NULL: removes the file) for key in the writer thread. */
static void
write_async (const char *key, char *text, GCancellable *cancellable, GAsyncReadyCallback callback,
             gpointer user_data)
{
  static GThreadPool *writer;
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  GError *error = NULL;

  g_task_set_source_tag (task, write_async);
  if (!check_key (key, &error))
    {
      g_free (text);
      g_task_return_error (task, error);
      return;
    }
  g_object_set_data_full (G_OBJECT (task), "path", setok_conversation_path (key), g_free);
  g_task_set_task_data (task, text, g_free);
  if (g_once_init_enter (&writer))
    g_once_init_leave (&writer, g_thread_pool_new (save_in_thread, NULL, 1, FALSE, NULL));
  g_thread_pool_push (writer, g_steal_pointer (&task), NULL);
}

void
setok_conversation_save_async (const char *key, GVariant *turns, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (g_variant_is_of_type (turns, G_VARIANT_TYPE (SETOK_CONVERSATION_TYPE)));
  write_async (key, g_variant_print (turns, FALSE), cancellable, callback, user_data);
}

void
setok_conversation_forget_async (const char *key, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data)
{
  write_async (key, NULL, cancellable, callback, user_data);
}

gboolean
setok_conversation_save_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}
