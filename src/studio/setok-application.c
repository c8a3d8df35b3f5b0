/* setok-application.c — the application object.
 *
 * It owns the one SetokEngine all windows share, loads the model the user
 * chose (reloading when the model settings change), and installs the
 * application actions and their accelerators. */
#include "setok-application.h"

#include <stdlib.h>
#include <glib/gi18n.h>

#include "setok-config.h"
#include "setok-preferences-window.h"
#include "setok-window.h"
#include "shipped-model.h"

struct _SetokApplication
{
  AdwApplication parent_instance;

  GSettings *settings;
  SetokEngine *engine;
  char *model_override;
};

G_DEFINE_FINAL_TYPE (SetokApplication, setok_application, ADW_TYPE_APPLICATION)

const char *
setok_application_locale_dir (void)
{
  /* the build tree's catalogues are what this program was built with */
  if (g_file_test (SETOK_BUILD_LOCALEDIR, G_FILE_TEST_IS_DIR))
    return SETOK_BUILD_LOCALEDIR;
  return SETOK_LOCALEDIR;
}

SetokEngine *
setok_application_get_engine (SetokApplication *self)
{
  return self->engine;
}

GSettings *
setok_application_get_settings (SetokApplication *self)
{
  return self->settings;
}

void
setok_application_set_model_override (SetokApplication *self, const char *path)
{
  g_free (self->model_override);
  self->model_override = g_strdup (path);
}

char *
setok_application_resolve_model (SetokApplication *self)
{
  g_autofree char *setting = NULL;

  if (self->model_override != NULL && self->model_override[0] != '\0')
    return g_strdup (self->model_override);
  setting = g_settings_get_string (self->settings, "model-path");
  if (setting[0] != '\0')
    return g_steal_pointer (&setting);
  return g_strdup (shipped_model_path ());
}

static void
load_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;

  /* the engine's properties carry the outcome (the window's banner shows it) */
  if (!setok_engine_load_model_finish (SETOK_ENGINE (source), result, &error))
    g_debug ("model not loaded: %s", error->message);
}

static void
load_model (SetokApplication *self)
{
  g_autofree char *path = setok_application_resolve_model (self);
  g_autofree char *device = g_settings_get_string (self->settings, "device");
  g_autofree char *dtype = g_settings_get_string (self->settings, "dtype");
  g_autofree char *weights = g_settings_get_string (self->settings, "weights");
  SetokPlacement placement = {
    .device = device,
    .threads = g_settings_get_int (self->settings, "threads"),
    .dtype = dtype,
    .weights = g_str_equal (weights, "none") ? NULL : weights,
  };

  setok_engine_load_model_async (self->engine, path, &placement, NULL, load_done, NULL);
}

static const char *const role_keys[SETOK_ROLE_COUNT] = {
  [SETOK_ROLE_SEGMENT] = "segment-model-path",
  [SETOK_ROLE_EDIT] = "edit-model-path",
};

const char *
setok_application_role_key (SetokRole role)
{
  g_return_val_if_fail (role > SETOK_ROLE_MAIN && role < SETOK_ROLE_COUNT, NULL);
  return role_keys[role];
}

static void
role_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;

  /* a refusal is told by the engine's role-refused signal */
  if (!setok_engine_set_role_finish (SETOK_ENGINE (source), result, &error))
    g_debug ("role folder refused: %s", error->message);
}

static void
load_role (SetokApplication *self, SetokRole role)
{
  g_autofree char *path = g_settings_get_string (self->settings, role_keys[role]);

  setok_engine_set_role_async (self->engine, role, path, NULL, role_done, NULL);
}

static void
role_settings_changed (SetokApplication *self, const char *key)
{
  for (int r = SETOK_ROLE_MAIN + 1; r < SETOK_ROLE_COUNT; r++)
    if (g_str_equal (key, role_keys[r]))
      load_role (self, r);
}

/* A refused folder leaves the setting at the folder the role keeps. */
static void
role_refused (SetokApplication *self, guint role, const char *reason)
{
  const char *kept = setok_engine_get_role_own (self->engine, role)
                       ? setok_engine_get_role_path (self->engine, role)
                       : "";
  g_autofree char *now = g_settings_get_string (self->settings, role_keys[role]);

  if (!g_str_equal (now, kept))
    g_settings_set_string (self->settings, role_keys[role], kept);
}

static void
model_settings_changed (SetokApplication *self, const char *key)
{
  /* a folder chosen in the app replaces the one from the command line */
  if (g_str_equal (key, "model-path"))
    g_clear_pointer (&self->model_override, g_free);
  load_model (self);
}

static GtkWindow *
get_window (SetokApplication *self)
{
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (self));

  if (window == NULL)
    window = setok_window_new (GTK_APPLICATION (self), self->engine, self->settings);
  return window;
}

static void
setok_application_activate (GApplication *app)
{
  gtk_window_present (get_window (SETOK_APPLICATION (app)));
}

static void
setok_application_open (GApplication *app, GFile **files, int n_files, const char *hint)
{
  GtkWindow *window = get_window (SETOK_APPLICATION (app));

  for (int i = 0; i < n_files; i++)
    setok_window_open_file (SETOK_WINDOW (window), files[i]);
  gtk_window_present (window);
}

static int
setok_application_handle_local_options (GApplication *app, GVariantDict *options)
{
  const char *model = NULL;

  if (g_variant_dict_lookup (options, "model", "^&ay", &model))
    {
      g_autofree char *absolute = g_canonicalize_filename (model, NULL);
      setok_application_set_model_override (SETOK_APPLICATION (app), absolute);
    }
  if (g_variant_dict_contains (options, "version"))
    {
      g_print ("setok-studio %s\n", SETOK_VERSION);
      return 0;
    }
  return -1;
}

static void
action_quit (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  GList *windows = gtk_application_get_windows (GTK_APPLICATION (user_data));

  /* closing the windows saves their state through their settings bindings; a
   * window with unsaved edits asks first, and the application lives on while it does */
  while (windows != NULL)
    {
      GList *next = windows->next;
      gtk_window_close (windows->data);
      windows = next;
    }
}

static void
action_about (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  SetokApplication *self = user_data;
  const char *developers[] = { _ ("The SeTok Studio team"), NULL };
  const char *model = setok_engine_get_model_name (self->engine);
  const char *device = setok_engine_get_device_name (self->engine);
  g_autofree char *debug = g_strdup_printf (
    "Model: %s\nModel folder: %s\nDevice: %s\n", model != NULL ? model : "none",
    setok_engine_get_model_path (self->engine) != NULL ? setok_engine_get_model_path (self->engine)
                                                       : "none",
    device != NULL ? device : "none");
  GtkWidget *about = adw_about_window_new ();

  g_object_set (about, "application-name", _ ("SeTok Studio"), "application-icon",
                SETOK_APPLICATION_ID, "developer-name", _ ("The SeTok Studio team"), "version",
                SETOK_VERSION, "comments",
                _ ("Semantic image tokens you can see, and questions about images answered on "
                   "your own machine."),
                "license-type", GTK_LICENSE_MIT_X11, "developers", developers, "debug-info", debug,
                "translator-credits", _ ("translator-credits"), "transient-for",
                gtk_application_get_active_window (GTK_APPLICATION (self)), NULL);
  gtk_window_present (GTK_WINDOW (about));
}

static void
action_preferences (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  SetokApplication *self = user_data;
  GtkWindow *prefs = setok_preferences_window_new (
    self->settings, gtk_application_get_active_window (GTK_APPLICATION (self)));

  gtk_window_present (prefs);
}

static const GActionEntry app_actions[] = {
  { "quit", action_quit, NULL, NULL, NULL, { 0 } },
  { "about", action_about, NULL, NULL, NULL, { 0 } },
  { "preferences", action_preferences, NULL, NULL, NULL, { 0 } },
};

/* The settings: the installed schema, or, run from the build tree, the one compiled there.
 * Without either the installation is broken: say so and stop. */
static GSettings *
open_settings (void)
{
  GSettingsSchemaSource *installed = g_settings_schema_source_get_default ();
  GSettingsSchema *schema
    = installed ? g_settings_schema_source_lookup (installed, SETOK_APPLICATION_ID, TRUE) : NULL;
  if (!schema && g_file_test (SETOK_BUILD_SCHEMA_DIR "/gschemas.compiled", G_FILE_TEST_EXISTS))
    {
      g_autoptr (GError) error = NULL;
      GSettingsSchemaSource *built = g_settings_schema_source_new_from_directory (
        SETOK_BUILD_SCHEMA_DIR, installed, FALSE, &error);
      if (built)
        {
          schema = g_settings_schema_source_lookup (built, SETOK_APPLICATION_ID, FALSE);
          g_settings_schema_source_unref (built);
        }
      else
        g_warning ("%s: %s", SETOK_BUILD_SCHEMA_DIR, error->message);
    }
  if (!schema)
    {
      g_printerr ("setok-studio: the settings schema %s is neither installed nor in the build "
                  "tree (%s); reinstall, or run tools/build\n",
                  SETOK_APPLICATION_ID, SETOK_BUILD_SCHEMA_DIR);
      exit (1);
    }
  GSettings *settings = g_settings_new_full (schema, NULL, NULL);
  g_settings_schema_unref (schema);
  return settings;
}

static void
setok_application_startup (GApplication *app)
{
  SetokApplication *self = SETOK_APPLICATION (app);
  static const struct
  {
    const char *action;
    const char *accels[3];
  } accels[] = {
    { "app.quit", { "<Control>q", NULL } },
    { "app.preferences", { "<Control>comma", NULL } },
    { "win.open", { "<Control>o", NULL } },
    { "win.new-scene", { "<Control>n", NULL } },
    { "win.export-overlay", { "<Control>e", NULL } },
    { "win.save", { "<Control>s", NULL } },
    { "win.save-as", { "<Shift><Control>s", NULL } },
    { "win.show-generate", { "<Shift><Control>n", NULL } },
    { "win.close-document", { "<Control>w", NULL } },
    { "win.zoom-in", { "<Control>plus", "<Control>equal", NULL } },
    { "win.zoom-out", { "<Control>minus", NULL } },
    { "win.zoom-fit", { "<Control>0", NULL } },
    { "win.zoom-actual", { "<Control>1", NULL } },
    { "win.show-chat", { "F9", NULL } },
    { "win.show-grid", { "<Control>g", NULL } },
    { "win.show-overlay", { "<Control>t", NULL } },
    { "win.recompute", { "F5", NULL } },
    { "win.focus-chat", { "<Control>l", NULL } },
  };

  G_APPLICATION_CLASS (setok_application_parent_class)->startup (app);

  /* run from the build tree, the app icon is only in the source tree */
  if (g_file_test (SETOK_SOURCE_DATADIR "/icons", G_FILE_TEST_IS_DIR))
    gtk_icon_theme_add_search_path (gtk_icon_theme_get_for_display (gdk_display_get_default ()),
                                    SETOK_SOURCE_DATADIR "/icons");

  self->settings = open_settings ();
  self->engine = setok_engine_new ();
  g_action_map_add_action_entries (G_ACTION_MAP (self), app_actions, G_N_ELEMENTS (app_actions),
                                   self);
  for (guint i = 0; i < G_N_ELEMENTS (accels); i++)
    gtk_application_set_accels_for_action (GTK_APPLICATION (self), accels[i].action,
                                           accels[i].accels);
  /* any of these reopens the model */
  static const char *const model_keys[] = { "model-path", "device", "threads", "dtype", "weights" };
  for (guint i = 0; i < G_N_ELEMENTS (model_keys); i++)
    {
      g_autofree char *signal = g_strconcat ("changed::", model_keys[i], NULL);
      g_signal_connect_object (self->settings, signal, G_CALLBACK (model_settings_changed), self,
                               G_CONNECT_SWAPPED);
    }
  load_model (self);
  g_signal_connect_object (self->engine, "role-refused", G_CALLBACK (role_refused), self,
                           G_CONNECT_SWAPPED);
  for (int r = SETOK_ROLE_MAIN + 1; r < SETOK_ROLE_COUNT; r++)
    {
      g_autofree char *signal = g_strconcat ("changed::", role_keys[r], NULL);

      g_signal_connect_object (self->settings, signal, G_CALLBACK (role_settings_changed), self,
                               G_CONNECT_SWAPPED);
      load_role (self, r);
    }
}

static void
setok_application_shutdown (GApplication *app)
{
  SetokApplication *self = SETOK_APPLICATION (app);

  G_APPLICATION_CLASS (setok_application_parent_class)->shutdown (app);
  g_clear_object (&self->engine);
}

static void
setok_application_finalize (GObject *object)
{
  SetokApplication *self = SETOK_APPLICATION (object);

  g_clear_object (&self->engine);
  g_clear_object (&self->settings);
  g_free (self->model_override);
  G_OBJECT_CLASS (setok_application_parent_class)->finalize (object);
}

static void
setok_application_class_init (SetokApplicationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  object_class->finalize = setok_application_finalize;
  app_class->activate = setok_application_activate;
  app_class->open = setok_application_open;
  app_class->startup = setok_application_startup;
  app_class->shutdown = setok_application_shutdown;
  app_class->handle_local_options = setok_application_handle_local_options;
}

static void
setok_application_init (SetokApplication *self)
{
  static const GOptionEntry options[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, NULL,
      N_ ("The model folder (a SETOKIM bundle, a LLaVA folder or a vision tower)"), N_ ("DIR") },
    { "version", 0, 0, G_OPTION_ARG_NONE, NULL, N_ ("Print the version and exit"), NULL },
    { NULL },
  };

  g_application_add_main_option_entries (G_APPLICATION (self), options);
  g_application_set_option_context_parameter_string (G_APPLICATION (self), _ ("[IMAGE…]"));
  g_application_set_option_context_summary (
    G_APPLICATION (self),
    _ ("Opens PNG and JPEG images, shows their SeTok tokens and answers questions about them."));
}

SetokApplication *
setok_application_new (void)
{
  return g_object_new (SETOK_TYPE_APPLICATION, "application-id", SETOK_APPLICATION_ID, "flags",
                       G_APPLICATION_HANDLES_OPEN, "resource-base-path", "/org/setokstudio/Studio",
                       NULL);
}
