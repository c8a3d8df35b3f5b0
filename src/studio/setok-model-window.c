/* setok-model-window.c — About This Model. The window is filled once, from
 * the engine's card of the model loaded when it opens. */
#include "setok-model-window.h"

#include <glib/gi18n.h>

struct _SetokModelWindow
{
  AdwWindow parent_instance;

  /* template */
  GtkBox *groups;
};

G_DEFINE_FINAL_TYPE (SetokModelWindow, setok_model_window, ADW_TYPE_WINDOW)

char *
setok_model_window_format_metric (const SetokModelMetric *metric)
{
  if (g_strcmp0 (metric->unit, "fraction") == 0)
    return g_strdup_printf ("%.1f %%", 100.0 * metric->value);
  if (g_strcmp0 (metric->unit, "ms") == 0)
    return g_strdup_printf (_ ("%.0f ms"), metric->value);
  return g_strdup_printf ("%.3g", metric->value);
}

static AdwPreferencesGroup *
add_group (SetokModelWindow *self, const char *title)
{
  GtkWidget *group = adw_preferences_group_new ();

  adw_preferences_group_set_title (ADW_PREFERENCES_GROUP (group), title);
  gtk_box_append (self->groups, group);
  return ADW_PREFERENCES_GROUP (group);
}

/* A row: title, and the value as its subtitle. */
static void
add_row (AdwPreferencesGroup *group, const char *title, const char *value)
{
  GtkWidget *row = adw_action_row_new ();

  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), title);
  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (row), value);
  adw_preferences_group_add (group, row);
}

/* A row with the value at its end, for short values. */
static void
add_value_row (AdwPreferencesGroup *group, const char *title, const char *value)
{
  GtkWidget *row = adw_action_row_new ();
  GtkWidget *label = gtk_label_new (value);

  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), title);
  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_action_row_set_title_lines (ADW_ACTION_ROW (row), 0);
  gtk_widget_add_css_class (label, "numeric");
  adw_action_row_add_suffix (ADW_ACTION_ROW (row), label);
  adw_preferences_group_add (group, row);
}

static void
add_text (AdwPreferencesGroup *group, const char *text)
{
  GtkWidget *label = gtk_label_new (text);

  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_label_set_selectable (GTK_LABEL (label), TRUE);
  adw_preferences_group_add (group, label);
}

static void
fill (SetokModelWindow *self, SetokEngine *engine)
{
  static const struct
  {
    setok_capability cap;
    const char *name;
  } caps[] = {
    { SETOK_CAP_TOKENS, N_ ("Semantic tokens") },
    { SETOK_CAP_CHAT, N_ ("Questions about the picture") },
    { SETOK_CAP_SEGMENT_POINTS, N_ ("Selecting an object by pointing") },
    { SETOK_CAP_SEGMENT_PHRASE, N_ ("Selecting an object by name") },
    { SETOK_CAP_GENERATE, N_ ("Generating pictures") },
    { SETOK_CAP_EDIT, N_ ("Editing a region") },
  };
  const SetokModelCard *card = setok_engine_get_card (engine);
  AdwPreferencesGroup *group;

  if (card == NULL)
    {
      group = add_group (self, _ ("No Model"));
      add_text (group, setok_engine_get_model_error (engine) != NULL
                         ? setok_engine_get_model_error (engine)
                         : _ ("No model is loaded."));
      return;
    }
  group = add_group (self, setok_engine_get_model_name (engine));
  if (card->summary != NULL)
    add_text (group, card->summary);
  add_row (group, _ ("Folder"), setok_engine_get_model_path (engine));
  add_row (group, _ ("Kind"), card->kind);
  add_row (group, _ ("Runs on"), card->device_details);
  if (card->domain_kind != NULL)
    {
      group = add_group (self, _ ("Trained On"));
      add_text (group, card->domain_description != NULL ? card->domain_description
                                                        : card->domain_kind);
      if (card->domain_suggest != NULL)
        add_text (group, card->domain_suggest);
    }
  if (card->metrics->len > 0)
    {
      group = add_group (self, _ ("How Well It Does"));
      adw_preferences_group_set_description (
        group, _ ("Measured on pictures it was not trained on."));
      for (guint i = 0; i < card->metrics->len; i++)
        {
          const SetokModelMetric *m = g_ptr_array_index (card->metrics, i);
          g_autofree char *value = setok_model_window_format_metric (m);
          add_value_row (group, m->label, value);
        }
    }
  group = add_group (self, _ ("What It Can Do"));
  for (guint i = 0; i < G_N_ELEMENTS (caps); i++)
    {
      const char *why = setok_engine_get_unavailable_reason (engine, caps[i].cap);
      add_row (group, _ (caps[i].name), why != NULL ? why : _ ("Yes"));
    }
}

static void
setok_model_window_class_init (SetokModelWindowClass *klass)
{
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/setokstudio/Studio/setok-model-window.ui");
  gtk_widget_class_bind_template_child (widget_class, SetokModelWindow, groups);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
setok_model_window_init (SetokModelWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWindow *
setok_model_window_new (SetokEngine *engine, GtkWindow *parent)
{
  SetokModelWindow *self = g_object_new (SETOK_TYPE_MODEL_WINDOW, "transient-for", parent, NULL);

  fill (self, engine);
  return GTK_WINDOW (self);
}
