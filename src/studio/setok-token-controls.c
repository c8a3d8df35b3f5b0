/* setok-token-controls.c — the token controls: one template, laid out in a
 * row or a column (GtkOrientable). The values live in adjustments the window
 * gives both instances; the mode is a property the window binds between them. */
#include "setok-token-controls.h"

#include <glib/gi18n.h>

struct _SetokTokenControls
{
  GtkWidget parent_instance;

  /* template */
  GtkDropDown *mode_dropdown;
  GtkWidget *threshold_box;
  GtkSpinButton *threshold_spin;
  GtkLabel *count_label;
  GtkSpinButton *count_spin;
  GtkScale *opacity_scale;
};

G_DEFINE_FINAL_TYPE_WITH_CODE (SetokTokenControls, setok_token_controls, GTK_TYPE_WIDGET,
                               G_IMPLEMENT_INTERFACE (GTK_TYPE_ORIENTABLE, NULL))

enum
{
  PROP_0,
  PROP_MODE,
  PROP_THRESHOLD_ADJUSTMENT,
  PROP_COUNT_ADJUSTMENT,
  PROP_OPACITY_ADJUSTMENT,
  PROP_ORIENTATION,
  N_PROPS = PROP_ORIENTATION
};

static GParamSpec *properties[N_PROPS];

setok_cluster_mode
setok_token_controls_get_mode (SetokTokenControls *self)
{
  guint mode = gtk_drop_down_get_selected (self->mode_dropdown);

  return mode < SETOK_CLUSTER_MODE_COUNT ? (setok_cluster_mode)mode : SETOK_CLUSTER_DPC;
}

void
setok_token_controls_set_mode (SetokTokenControls *self, setok_cluster_mode mode)
{
  g_return_if_fail (SETOK_IS_TOKEN_CONTROLS (self));

  gtk_drop_down_set_selected (self->mode_dropdown, (guint)mode);
}

const char *
setok_token_controls_get_count_label (SetokTokenControls *self)
{
  return gtk_label_get_text (self->count_label);
}

/* The count is exact in fixed mode and a cap otherwise, and only density
 * peaks and soft clustering have a threshold: the controls say so. */
static void
mode_changed (SetokTokenControls *self)
{
  gboolean fixed = setok_token_controls_get_mode (self) == SETOK_CLUSTER_FIXED;

  gtk_widget_set_sensitive (self->threshold_box, !fixed);
  gtk_label_set_text (self->count_label, fixed ? _ ("Tokens") : _ ("At most"));
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->count_spin),
                               fixed ? _ ("Exactly this many tokens")
                                     : _ ("At most this many tokens (0: no limit)"));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MODE]);
}

static void
set_orientation (SetokTokenControls *self, GtkOrientation orientation)
{
  GtkLayoutManager *layout = gtk_widget_get_layout_manager (GTK_WIDGET (self));

  if (gtk_orientable_get_orientation (GTK_ORIENTABLE (layout)) == orientation)
    return;
  gtk_orientable_set_orientation (GTK_ORIENTABLE (layout), orientation);
  gtk_box_layout_set_spacing (GTK_BOX_LAYOUT (layout),
                              orientation == GTK_ORIENTATION_VERTICAL ? 12 : 6);
  /* in a column, each label sits at the left and its control at the right */
  for (GtkWidget *child = gtk_widget_get_first_child (GTK_WIDGET (self)); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkWidget *label = gtk_widget_get_first_child (child);

      if (GTK_IS_BOX (child) && GTK_IS_LABEL (label))
        gtk_widget_set_hexpand (label, orientation == GTK_ORIENTATION_VERTICAL);
    }
  g_object_notify (G_OBJECT (self), "orientation");
}

static void
setok_token_controls_get_property (GObject *object, guint prop_id, GValue *value,
                                   GParamSpec *pspec)
{
  SetokTokenControls *self = SETOK_TOKEN_CONTROLS (object);

  switch (prop_id)
    {
      case PROP_MODE:
        g_value_set_uint (value, setok_token_controls_get_mode (self));
        break;
      case PROP_THRESHOLD_ADJUSTMENT:
        g_value_set_object (value, gtk_spin_button_get_adjustment (self->threshold_spin));
        break;
      case PROP_COUNT_ADJUSTMENT:
        g_value_set_object (value, gtk_spin_button_get_adjustment (self->count_spin));
        break;
      case PROP_OPACITY_ADJUSTMENT:
        g_value_set_object (value, gtk_range_get_adjustment (GTK_RANGE (self->opacity_scale)));
        break;
      case PROP_ORIENTATION:
        g_value_set_enum (value, gtk_orientable_get_orientation (
                                   GTK_ORIENTABLE (gtk_widget_get_layout_manager (
                                     GTK_WIDGET (self)))));
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
setok_token_controls_set_property (GObject *object, guint prop_id, const GValue *value,
                                   GParamSpec *pspec)
{
  SetokTokenControls *self = SETOK_TOKEN_CONTROLS (object);

  switch (prop_id)
    {
      case PROP_MODE:
        setok_token_controls_set_mode (self, g_value_get_uint (value));
        break;
      case PROP_THRESHOLD_ADJUSTMENT:
        gtk_spin_button_set_adjustment (self->threshold_spin, g_value_get_object (value));
        break;
      case PROP_COUNT_ADJUSTMENT:
        gtk_spin_button_set_adjustment (self->count_spin, g_value_get_object (value));
        break;
      case PROP_OPACITY_ADJUSTMENT:
        gtk_range_set_adjustment (GTK_RANGE (self->opacity_scale), g_value_get_object (value));
        break;
      case PROP_ORIENTATION:
        set_orientation (self, g_value_get_enum (value));
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
setok_token_controls_dispose (GObject *object)
{
  GtkWidget *child;

  gtk_widget_dispose_template (GTK_WIDGET (object), SETOK_TYPE_TOKEN_CONTROLS);
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (object))) != NULL)
    gtk_widget_unparent (child);
  G_OBJECT_CLASS (setok_token_controls_parent_class)->dispose (object);
}

static void
setok_token_controls_class_init (SetokTokenControlsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GParamFlags flags = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->dispose = setok_token_controls_dispose;
  object_class->get_property = setok_token_controls_get_property;
  object_class->set_property = setok_token_controls_set_property;

  properties[PROP_MODE]
    = g_param_spec_uint ("mode", NULL, NULL, 0, SETOK_CLUSTER_MODE_COUNT - 1, 0, flags);
  properties[PROP_THRESHOLD_ADJUSTMENT]
    = g_param_spec_object ("threshold-adjustment", NULL, NULL, GTK_TYPE_ADJUSTMENT, flags);
  properties[PROP_COUNT_ADJUSTMENT]
    = g_param_spec_object ("count-adjustment", NULL, NULL, GTK_TYPE_ADJUSTMENT, flags);
  properties[PROP_OPACITY_ADJUSTMENT]
    = g_param_spec_object ("opacity-adjustment", NULL, NULL, GTK_TYPE_ADJUSTMENT, flags);
  g_object_class_install_properties (object_class, N_PROPS, properties);
  g_object_class_override_property (object_class, PROP_ORIENTATION, "orientation");

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/setokstudio/Studio/setok-token-controls.ui");
  gtk_widget_class_bind_template_child (widget_class, SetokTokenControls, mode_dropdown);
  gtk_widget_class_bind_template_child (widget_class, SetokTokenControls, threshold_box);
  gtk_widget_class_bind_template_child (widget_class, SetokTokenControls, threshold_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokTokenControls, count_label);
  gtk_widget_class_bind_template_child (widget_class, SetokTokenControls, count_spin);
  gtk_widget_class_bind_template_child (widget_class, SetokTokenControls, opacity_scale);
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BOX_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "setok-token-controls");
}

static void
setok_token_controls_init (SetokTokenControls *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  gtk_box_layout_set_spacing (GTK_BOX_LAYOUT (gtk_widget_get_layout_manager (GTK_WIDGET (self))),
                              6);
  g_signal_connect_swapped (self->mode_dropdown, "notify::selected", G_CALLBACK (mode_changed),
                            self);
  mode_changed (self);
}
