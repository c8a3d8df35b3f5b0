/* main.c — SeTok Studio: sets up translations and runs the application. */
#include <glib/gi18n.h>
#include <locale.h>

#include "setok-application.h"
#include "setok-config.h"

int
main (int argc, char *argv[])
{
  g_autoptr (SetokApplication) app = NULL;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, setok_application_locale_dir ());
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  app = setok_application_new ();
  return g_application_run (G_APPLICATION (app), argc, argv);
}
