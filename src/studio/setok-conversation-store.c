/* setok-conversation-store.c — each picture's conversation in
 * $XDG_DATA_HOME/setok-studio/conversations/KEY.conversation, as GVariant
 * text. A file that cannot be read is an error naming it; the caller starts
 * afresh. */
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

gboolean
setok_conversation_save (const char *key, GVariant *turns, GError **error)
{
  g_autofree char *path = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *text = NULL;

  g_return_val_if_fail (g_variant_is_of_type (turns, G_VARIANT_TYPE (SETOK_CONVERSATION_TYPE)),
                        FALSE);
  if (!check_key (key, error))
    return FALSE;
  path = setok_conversation_path (key);
  dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "%s: %s", dir,
                   g_strerror (saved));
      return FALSE;
    }
  text = g_variant_print (turns, FALSE);
  return g_file_set_contents_full (path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}

gboolean
setok_conversation_forget (const char *key, GError **error)
{
  g_autofree char *path = NULL;

  if (!check_key (key, error))
    return FALSE;
  path = setok_conversation_path (key);
  if (g_unlink (path) != 0 && errno != ENOENT)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "%s: %s", path,
                   g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}
