/* setok-error.c — libsetok status values as GErrors. */
#include "setok-error.h"

#include <gio/gio.h>

G_DEFINE_QUARK (setok - error - quark, setok_error)

GError *
setok_error_to_gerror (const setok_error *err)
{
  const char *message = err->message[0] ? err->message : setok_status_name (err->status);
  if (err->status == SETOK_ERR_CANCELLED)
    return g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, message);
  return g_error_new_literal (SETOK_ERROR,
                              err->status == SETOK_OK ? SETOK_ERR_RUNTIME : err->status, message);
}
