/* setok-diffusion-settings.c — seed, steps and guidance for the diffusion
 * jobs; the edit bar and the Generate popover each hold one. */
#include "setok-diffusion-settings.h"

struct _SetokDiffusionSettings
{
  GtkWidget parent_instance;

  /* template */
  GtkSpinButton *seed_spin;
  GtkSpinButton *steps_spin;
  GtkSpinButton *guidance_spin;
};

G_DEFINE_FINAL_TYPE (SetokDiffusionSettings, setok_diffusion_settings, GTK_TYPE_WIDGET)

SetokDiffusionRequest
setok_diffusion_settings_get_request (SetokDiffusionSettings *self)
{
  SetokDiffusionRequest r;

  r.seed = setok_diffusion_settings_get_seed (self);
  r.steps = gtk_spin_button_get_value_as_int (self->steps_spin);
  r.guidance = gtk_spin_button_get_value (self->guidance_spin);
  return r;
}

void
setok_diffusion_settings_set_request (SetokDiffusionSettings *self,
                                      const SetokDiffusionRequest *request)
{
  g_return_if_fail (SETOK_IS_DIFFUSION_SETTINGS (self));

  setok_diffusion_settings_set_seed (self, request->seed);
  gtk_spin_button_set_value (self->steps_spin, request->steps);
  gtk_spin_button_set_value (self->guidance_spin, request->guidance);
}

guint64
setok_diffusion_settings_get_seed (SetokDiffusionSettings *self)
{
  return (guint64)gtk_spin_button_get_value (self->seed_spin);
}

void
setok_diffusion_settings_set_seed (SetokDiffusionSettings *self, guint64 seed)
{
  g_return_if_fail (SETOK_IS_DIFFUSION_SETTINGS (self));

  gtk_spin_button_set_value (self->seed_spin, (double)seed);
}

static void
setok_diffusion_settings_dispose (GObject *object)
{
  GtkWidget *child;

  gtk_widget_dispose_template (GTK_WIDGET (object), SETOK_TYPE_DIFFUSION_SETTINGS);
  /* the template's unnamed grid */
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (object))) != NULL)
    gtk_widget_unparent (child);
  G_OBJECT_CLASS (setok_diffusion_settings_parent_class)->dispose (object);
}

static void
setok_diffusion_settings_class_init (SetokDiffusionSettingsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = setok_diffusion_settings_dispose;
  gtk_widget_class_set_template_from_resource (
    widget_class, "/org/setokstudio/Studio/setok-diffusion-settings.ui");
  gtk_widget_class_bind_template_child (widget_class, SetokDiffusionSettings, seed_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokDiffusionSettings, steps_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokDiffusionSettings, guidance_spin);
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
}

static void
setok_diffusion_settings_init (SetokDiffusionSettings *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}
