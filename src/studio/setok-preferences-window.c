/* setok-preferences-window.c — the Preferences window. Every control is
 * bound to its GSettings key; the application reloads the models when the
 * model keys change. */
#include "setok-preferences-window.h"

#include <glib/gi18n.h>
#include <math.h>

struct _SetokPreferencesWindow
{
  AdwPreferencesWindow parent_instance;

  GSettings *settings;

  /* template */
  AdwActionRow *model_row;
  AdwActionRow *segment_row;
  AdwActionRow *edit_row;
  AdwComboRow *device_row;
  AdwComboRow *dtype_row;
  AdwComboRow *weights_row;
  GtkSpinButton *threads_spin;
  AdwComboRow *image_tokens_row;
  GtkSwitch *whole_switch;
  GtkSpinButton *max_tokens_spin;
  GtkSpinButton *temperature_spin;
  GtkSpinButton *top_p_spin;
  GtkSpinButton *top_k_spin;
  GtkSpinButton *repetition_spin;
  GtkSpinButton *seed_spin;
};

G_DEFINE_FINAL_TYPE (SetokPreferencesWindow, setok_preferences_window, ADW_TYPE_PREFERENCES_WINDOW)

static const char *const device_values[] = { "auto", "cpu", "cuda", NULL };
static const char *const dtype_values[] = { "auto", "f32", "f16", "bf16", NULL };
static const char *const weights_values[] = { "none", "q8", "q4", NULL };
static const char *const image_token_values[] = { "auto", "patches", "setok", NULL };

/* integer keys ("i" or "x") shown by spin buttons, whose values are doubles */
static gboolean
int_to_double (GValue *value, GVariant *variant, gpointer user_data)
{
  if (g_variant_is_of_type (variant, G_VARIANT_TYPE_INT64))
    g_value_set_double (value, (double)g_variant_get_int64 (variant));
  else
    g_value_set_double (value, g_variant_get_int32 (variant));
  return TRUE;
}

static GVariant *
double_to_int (const GValue *value, const GVariantType *type, gpointer user_data)
{
  double v = round (g_value_get_double (value));

  if (g_variant_type_equal (type, G_VARIANT_TYPE_INT64))
    return g_variant_new_int64 ((gint64)v);
  return g_variant_new_int32 ((gint32)v);
}

/* string keys shown by combo rows: user_data is the NULL-terminated values */
static gboolean
string_to_index (GValue *value, GVariant *variant, gpointer user_data)
{
  const char *const *values = user_data;
  const char *s = g_variant_get_string (variant, NULL);

  for (guint i = 0; values[i] != NULL; i++)
    if (g_str_equal (values[i], s))
      {
        g_value_set_uint (value, i);
        return TRUE;
      }
  g_value_set_uint (value, 0);
  return TRUE;
}

static GVariant *
index_to_string (const GValue *value, const GVariantType *type, gpointer user_data)
{
  const char *const *values = user_data;
  guint index = g_value_get_uint (value);

  if (index >= g_strv_length ((char **)values))
    return NULL;
  return g_variant_new_string (values[index]);
}

static void
bind_int (SetokPreferencesWindow *self, const char *key, GtkSpinButton *spin)
{
  g_settings_bind_with_mapping (self->settings, key, gtk_spin_button_get_adjustment (spin), "value",
                                G_SETTINGS_BIND_DEFAULT, int_to_double, double_to_int, NULL, NULL);
}

static void
bind_double (SetokPreferencesWindow *self, const char *key, GtkSpinButton *spin)
{
  g_settings_bind (self->settings, key, gtk_spin_button_get_adjustment (spin), "value",
                   G_SETTINGS_BIND_DEFAULT);
}

static void
bind_choice (SetokPreferencesWindow *self, const char *key, AdwComboRow *row,
             const char *const *values)
{
  g_settings_bind_with_mapping (self->settings, key, row, "selected", G_SETTINGS_BIND_DEFAULT,
                                string_to_index, index_to_string, (gpointer)values, NULL);
}

/* image-fit "pad" is the switch on */
static gboolean
fit_to_active (GValue *value, GVariant *variant, gpointer data)
{
  g_value_set_boolean (value, g_strcmp0 (g_variant_get_string (variant, NULL), "pad") == 0);
  return TRUE;
}

static GVariant *
active_to_fit (const GValue *value, const GVariantType *type, gpointer data)
{
  return g_variant_new_string (g_value_get_boolean (value) ? "pad" : "crop");
}

/* The folder rows: each shows its key's folder, or what serves when it is empty. */
static const struct
{
  const char *key;
  const char *unset;
  gsize row_offset;
} folder_rows[] = {
  { "model-path", N_ ("The model that comes with the app"),
    G_STRUCT_OFFSET (SetokPreferencesWindow, model_row) },
  { "segment-model-path", N_ ("Same as the main model"),
    G_STRUCT_OFFSET (SetokPreferencesWindow, segment_row) },
  { "edit-model-path", N_ ("Same as the main model"),
    G_STRUCT_OFFSET (SetokPreferencesWindow, edit_row) },
};

static AdwActionRow *
folder_row (SetokPreferencesWindow *self, guint i)
{
  return G_STRUCT_MEMBER (AdwActionRow *, self, folder_rows[i].row_offset);
}

static void
update_folder_rows (SetokPreferencesWindow *self)
{
  for (guint i = 0; i < G_N_ELEMENTS (folder_rows); i++)
    {
      g_autofree char *path = g_settings_get_string (self->settings, folder_rows[i].key);

      adw_action_row_set_subtitle (folder_row (self, i),
                                   path[0] != '\0' ? path : _ (folder_rows[i].unset));
    }
}

static void
model_response (GtkNativeDialog *dialog, int response, GSettings *settings)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) folder = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = g_file_get_path (folder);

      if (path != NULL)
        g_settings_set_string (settings, g_object_get_data (G_OBJECT (dialog), "key"), path);
    }
  g_object_unref (settings);
  g_object_unref (dialog);
}

void
setok_preferences_choose_model (GtkWindow *parent, GSettings *settings, const char *key)
{
  GtkFileChooserNative *dialog = gtk_file_chooser_native_new (_ ("Choose a Model Folder"), parent,
                                                              GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER,
                                                              _ ("_Choose"), _ ("_Cancel"));

  g_object_set_data_full (G_OBJECT (dialog), "key", g_strdup (key), g_free);
  g_signal_connect (dialog, "response", G_CALLBACK (model_response), g_object_ref (settings));
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (dialog));
}

static void
choose_clicked (GtkButton *button, SetokPreferencesWindow *self)
{
  setok_preferences_choose_model (GTK_WINDOW (self), self->settings,
                                  g_object_get_data (G_OBJECT (button), "key"));
}

static void
reset_clicked (GtkButton *button, SetokPreferencesWindow *self)
{
  g_settings_reset (self->settings, g_object_get_data (G_OBJECT (button), "key"));
}

/* A row's reset and Choose buttons, for its key. */
static void
add_folder_buttons (SetokPreferencesWindow *self, AdwActionRow *row, const char *key,
                    const char *reset_text)
{
  GtkWidget *reset = gtk_button_new_from_icon_name ("edit-undo-symbolic");
  GtkWidget *choose = gtk_button_new_with_mnemonic (_ ("_Choose…"));

  gtk_widget_set_valign (reset, GTK_ALIGN_CENTER);
  gtk_widget_add_css_class (reset, "flat");
  gtk_widget_set_tooltip_text (reset, reset_text);
  gtk_accessible_update_property (GTK_ACCESSIBLE (reset), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  reset_text, -1);
  gtk_widget_set_valign (choose, GTK_ALIGN_CENTER);
  g_object_set_data (G_OBJECT (reset), "key", (gpointer)key);
  g_object_set_data (G_OBJECT (choose), "key", (gpointer)key);
  g_signal_connect_object (reset, "clicked", G_CALLBACK (reset_clicked), self, 0);
  g_signal_connect_object (choose, "clicked", G_CALLBACK (choose_clicked), self, 0);
  adw_action_row_add_suffix (row, reset);
  adw_action_row_add_suffix (row, choose);
}

static void
setok_preferences_window_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), SETOK_TYPE_PREFERENCES_WINDOW);
  G_OBJECT_CLASS (setok_preferences_window_parent_class)->dispose (object);
}

static void
setok_preferences_window_finalize (GObject *object)
{
  SetokPreferencesWindow *self = SETOK_PREFERENCES_WINDOW (object);

  g_clear_object (&self->settings);
  G_OBJECT_CLASS (setok_preferences_window_parent_class)->finalize (object);
}

static void
setok_preferences_window_class_init (SetokPreferencesWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = setok_preferences_window_dispose;
  object_class->finalize = setok_preferences_window_finalize;

  gtk_widget_class_set_template_from_resource (
    widget_class, "/org/setokstudio/Studio/setok-preferences-window.ui");
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, model_row);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, segment_row);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, edit_row);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, device_row);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, dtype_row);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, weights_row);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, threads_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, image_tokens_row);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, whole_switch);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, max_tokens_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, temperature_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, top_p_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, top_k_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, repetition_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokPreferencesWindow, seed_spin);
}

static void
setok_preferences_window_init (SetokPreferencesWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWindow *
setok_preferences_window_new (GSettings *settings, GtkWindow *parent)
{
  SetokPreferencesWindow *self
    = g_object_new (SETOK_TYPE_PREFERENCES_WINDOW, "transient-for", parent, NULL);

  self->settings = g_object_ref (settings);
  bind_choice (self, "device", self->device_row, device_values);
  bind_choice (self, "dtype", self->dtype_row, dtype_values);
  bind_choice (self, "weights", self->weights_row, weights_values);
  bind_int (self, "threads", self->threads_spin);
  bind_choice (self, "chat-image-tokens", self->image_tokens_row, image_token_values);
  g_settings_bind_with_mapping (self->settings, "image-fit", self->whole_switch, "active",
                                G_SETTINGS_BIND_DEFAULT, fit_to_active, active_to_fit, NULL, NULL);
  bind_int (self, "max-new-tokens", self->max_tokens_spin);
  bind_double (self, "temperature", self->temperature_spin);
  bind_double (self, "top-p", self->top_p_spin);
  bind_int (self, "top-k", self->top_k_spin);
  bind_double (self, "repetition-penalty", self->repetition_spin);
  bind_int (self, "seed", self->seed_spin);
  for (guint i = 0; i < G_N_ELEMENTS (folder_rows); i++)
    {
      g_autofree char *signal = g_strconcat ("changed::", folder_rows[i].key, NULL);

      add_folder_buttons (self, folder_row (self, i), folder_rows[i].key,
                          i == 0 ? _ ("Use the Default Model") : _ ("Use the Main Model"));
      g_signal_connect_object (settings, signal, G_CALLBACK (update_folder_rows), self,
                               G_CONNECT_SWAPPED);
    }
  update_folder_rows (self);
  return GTK_WINDOW (self);
}
