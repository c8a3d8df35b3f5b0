/* setok-window-roles.c — which model folder serves each of the window's
 * actions: the tooltips name it, and a folder refused for a role is told in
 * a toast (the role keeps the folder it had). */
#include <glib/gi18n.h>

#include "setok-window-private.h"

char *
_setok_window_role_tooltip (SetokWindow *self, SetokRole role, const char *what)
{
  const char *path = setok_engine_get_role_path (_setok_window_get_engine (self), role);

  if (path == NULL)
    return g_strdup (what);
  /* TRANSLATORS: an action's tooltip, then the model folder that does it */
  return g_strdup_printf (_ ("%s\nBy the model in %s"), what, path);
}

/* reason names the folder and the role */
static void
role_refused (SetokWindow *self, guint role, const char *reason)
{
  AdwToast *toast = adw_toast_new (reason);

  adw_toast_set_timeout (toast, 8);
  _setok_window_add_toast (self, toast);
}

void
_setok_window_watch_roles (SetokWindow *self)
{
  g_signal_connect_object (_setok_window_get_engine (self), "role-refused",
                           G_CALLBACK (role_refused), self, G_CONNECT_SWAPPED);
}
