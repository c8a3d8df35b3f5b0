/* setok-window-actions.c — what the window's actions do: open, paste, drop
 * and make images, save them, export overlays and selection masks, undo and
 * redo, choose the model and tell about it, zoom, select. */
#include <glib/gi18n.h>

#include "setok-error.h"
#include "setok-model-window.h"
#include "setok-preferences-window.h"
#include "setok-window-private.h"
#include "setok/world.h"
#include "token-overlay.h"

static void
show_error_details (GtkWidget *widget, const char *action_name, GVariant *param)
{
  GtkWidget *dialog = adw_message_dialog_new (GTK_WINDOW (widget), _ ("What Went Wrong"),
                                              g_variant_get_string (param, NULL));

  adw_message_dialog_add_response (ADW_MESSAGE_DIALOG (dialog), "close", _ ("_Close"));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
add_texture (SetokWindow *self, GdkTexture *texture)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SetokPicture) picture = setok_picture_new_from_texture (texture, &error);

  if (picture == NULL)
    setok_window_show_error (self, _ ("Could not use the pasted image"), error);
  else
    _setok_window_add_document (self, picture, NULL, _ ("Pasted Image"));
}

static void
open_file_list (SetokWindow *self, GSList *files)
{
  for (GSList *l = files; l != NULL; l = l->next)
    setok_window_open_file (self, l->data);
}

static void
paste_texture_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (SetokWindow) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GdkTexture) texture
    = gdk_clipboard_read_texture_finish (GDK_CLIPBOARD (source), result, &error);

  if (texture == NULL)
    setok_window_show_error (self, _ ("The clipboard holds no image"), error);
  else
    add_texture (self, texture);
}

static void
paste_files_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (SetokWindow) self = user_data;
  g_autoptr (GError) error = NULL;
  const GValue *value = gdk_clipboard_read_value_finish (GDK_CLIPBOARD (source), result, &error);

  if (value == NULL)
    setok_window_show_error (self, _ ("Could not paste the files"), error);
  else
    open_file_list (self, g_value_get_boxed (value));
}

void
setok_window_paste (SetokWindow *self)
{
  GdkClipboard *clipboard = gtk_widget_get_clipboard (GTK_WIDGET (self));
  GdkContentFormats *formats = gdk_clipboard_get_formats (clipboard);

  if (gdk_content_formats_contain_gtype (formats, GDK_TYPE_FILE_LIST))
    gdk_clipboard_read_value_async (clipboard, GDK_TYPE_FILE_LIST, G_PRIORITY_DEFAULT, NULL,
                                    paste_files_done, g_object_ref (self));
  else
    gdk_clipboard_read_texture_async (clipboard, NULL, paste_texture_done, g_object_ref (self));
}

static gboolean
drop (GtkDropTarget *target, const GValue *value, double x, double y, SetokWindow *self)
{
  if (G_VALUE_HOLDS (value, GDK_TYPE_FILE_LIST))
    {
      open_file_list (self, g_value_get_boxed (value));
      return TRUE;
    }
  if (G_VALUE_HOLDS (value, GDK_TYPE_TEXTURE))
    {
      add_texture (self, g_value_get_object (value));
      return TRUE;
    }
  return FALSE;
}

static void
open_response (GtkNativeDialog *dialog, int response, SetokWindow *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GListModel) files = gtk_file_chooser_get_files (GTK_FILE_CHOOSER (dialog));

      for (guint i = 0; i < g_list_model_get_n_items (files); i++)
        {
          g_autoptr (GFile) file = g_list_model_get_item (files, i);
          setok_window_open_file (self, file);
        }
    }
  g_object_unref (dialog);
}

static void
action_open (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);
  GtkFileChooserNative *dialog = gtk_file_chooser_native_new (
    _ ("Open Image"), GTK_WINDOW (self), GTK_FILE_CHOOSER_ACTION_OPEN, _ ("_Open"), _ ("_Cancel"));
  g_autoptr (GtkFileFilter) filter = gtk_file_filter_new ();

  gtk_file_filter_set_name (filter, _ ("PNG and JPEG images"));
  gtk_file_filter_add_mime_type (filter, "image/png");
  gtk_file_filter_add_mime_type (filter, "image/jpeg");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (dialog), filter);
  gtk_file_chooser_set_select_multiple (GTK_FILE_CHOOSER (dialog), TRUE);
  g_signal_connect (dialog, "response", G_CALLBACK (open_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (dialog));
}

/* A scene from the synthetic world the default model learned from; the seed
 * names it, so the same scene can be made again. */
static void
action_new_scene (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);
  guint32 seed = g_random_int ();
  setok_world_options options;
  setok_world_scene *scene = NULL;
  setok_image image = { 0 };
  setok_error err = { 0 };

  setok_world_options_default (&options);
  if (setok_world_generate (&scene, seed, &options, &err) == SETOK_OK
      && setok_image_alloc (&image, setok_world_width (scene), setok_world_height (scene), 3, &err)
           == SETOK_OK)
    {
      g_autoptr (SetokPicture) picture = NULL;
      g_autofree char *title = g_strdup_printf (_ ("Sample Scene %u"), seed);

      memcpy (image.pixels, setok_world_rgb (scene), (gsize)image.width * image.height * 3);
      picture = setok_picture_new_take (&image);
      _setok_window_add_document (self, picture, NULL, title);
    }
  else
    {
      g_autoptr (GError) error = setok_error_to_gerror (&err);
      setok_window_show_error (self, _ ("Could not make a sample scene"), error);
    }
  setok_world_free (scene);
}

static void
action_paste (GtkWidget *widget, const char *action_name, GVariant *param)
{
  setok_window_paste (SETOK_WINDOW (widget));
}

/* The file name for an export: the document's name without its extension, and what. */
static char *
export_name (SetokDocument *document, const char *suffix)
{
  const char *title = setok_document_get_title (document);
  const char *dot = strrchr (title, '.');
  g_autofree char *stem = dot != NULL ? g_strndup (title, (gsize)(dot - title)) : g_strdup (title);

  return g_strdup_printf ("%s-%s.png", stem, suffix);
}

static void
export_response (GtkNativeDialog *dialog, int response, SetokWindow *self)
{
  SetokDocument *document = _setok_window_get_document (self);
  SetokTokenMap *map = document != NULL ? setok_document_get_token_map (document) : NULL;

  if (response == GTK_RESPONSE_ACCEPT && map != NULL)
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = g_file_get_path (file);
      setok_error err = { 0 };

      if (path == NULL)
        {
          g_autoptr (GError) error = g_error_new (
            SETOK_ERROR, SETOK_ERR_INPUT, _ ("%s is not a local file"), g_file_peek_path (file));
          setok_window_show_error (self, _ ("Could not export the overlay"), error);
        }
      else if (token_overlay_write_png (
                 path, setok_picture_get_image (setok_document_get_picture (document)),
                 map->result.pixel_labels, map->result.clusters.n_tokens,
                 setok_document_get_token_colours (document),
                 g_settings_get_boolean (_setok_window_get_settings (self), "overlay-outline")
                   ? TOKEN_OVERLAY_OUTLINE
                   : TOKEN_OVERLAY_FILL,
                 g_settings_get_double (_setok_window_get_settings (self), "overlay-opacity"), &err)
               != SETOK_OK)
        {
          g_autoptr (GError) error = setok_error_to_gerror (&err);
          setok_window_show_error (self, _ ("Could not export the overlay"), error);
        }
      else
        {
          g_autofree char *name = g_file_get_basename (file);
          g_autofree char *title = g_strdup_printf (_ ("Saved “%s”"), name);
          _setok_window_add_toast (self, adw_toast_new (title));
        }
    }
  g_object_unref (dialog);
}

GFile *
_setok_window_default_folder (SetokDocument *document)
{
  GFile *file = document != NULL ? setok_document_get_file (document) : NULL;
  const char *pictures = g_get_user_special_dir (G_USER_DIRECTORY_PICTURES);

  if (file != NULL && g_file_peek_path (file) != NULL)
    return g_file_get_parent (file);
  if (pictures != NULL && g_file_test (pictures, G_FILE_TEST_IS_DIR))
    return g_file_new_for_path (pictures);
  return g_file_new_for_path (g_get_home_dir ());
}

/* A save dialog for an export of the current document, named after it plus suffix, in its
 * folder (or Pictures). */
static void
show_export_dialog (SetokWindow *self, const char *title, const char *suffix, GCallback response)
{
  SetokDocument *document = _setok_window_get_document (self);
  GtkFileChooserNative *dialog;
  g_autofree char *name = NULL;
  g_autoptr (GFile) folder = NULL;

  if (document == NULL)
    return;
  name = export_name (document, suffix);
  folder = _setok_window_default_folder (document);
  dialog = gtk_file_chooser_native_new (title, GTK_WINDOW (self), GTK_FILE_CHOOSER_ACTION_SAVE,
                                        _ ("_Export"), _ ("_Cancel"));
  gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (dialog), folder, NULL);
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (dialog), name);
  g_signal_connect (dialog, "response", response, self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (dialog));
}

static void
action_export (GtkWidget *widget, const char *action_name, GVariant *param)
{
  show_export_dialog (SETOK_WINDOW (widget), _ ("Export Overlay"), "tokens",
                      G_CALLBACK (export_response));
}

static void
mask_response (GtkNativeDialog *dialog, int response, SetokWindow *self)
{
  SetokDocument *document = _setok_window_get_document (self);
  g_autoptr (GFile) file = response == GTK_RESPONSE_ACCEPT
                             ? gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog))
                             : NULL;
  g_autoptr (SetokPicture) mask = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *path = NULL;

  g_object_unref (dialog);
  if (file == NULL || document == NULL)
    return;
  path = g_file_get_path (file);
  mask = setok_document_get_selection_mask (document);
  if (mask == NULL)
    error = g_error_new (SETOK_ERROR, SETOK_ERR_INPUT, "%s", _ ("No tokens are selected"));
  else if (path == NULL)
    error = g_error_new (SETOK_ERROR, SETOK_ERR_INPUT, _ ("%s is not a local file"),
                         g_file_peek_path (file));
  else if (!g_str_has_suffix (path, ".png") && !g_str_has_suffix (path, ".PNG"))
    error = g_error_new (SETOK_ERROR, SETOK_ERR_INPUT, "%s", _ ("A mask is saved as PNG (.png)"));
  if (error == NULL && setok_picture_save (mask, path, &error))
    {
      g_autofree char *name = g_file_get_basename (file);
      g_autofree char *title = g_strdup_printf (_ ("Saved “%s”"), name);
      _setok_window_add_toast (self, adw_toast_new (title));
    }
  else
    setok_window_show_error (self, _ ("Could not export the mask"), error);
}

static void
action_export_mask (GtkWidget *widget, const char *action_name, GVariant *param)
{
  show_export_dialog (SETOK_WINDOW (widget), _ ("Export Selection Mask"), "mask",
                      G_CALLBACK (mask_response));
}

static void
action_save (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);
  SetokDocument *document = _setok_window_get_document (self);

  if (document != NULL)
    _setok_window_save_document (self, document, g_str_equal (action_name, "win.save-as"), NULL,
                                 NULL);
}

static void
action_history (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokDocument *document = _setok_window_get_document (SETOK_WINDOW (widget));

  if (document == NULL)
    return;
  if (g_str_equal (action_name, "win.undo"))
    setok_document_undo (document);
  else
    setok_document_redo (document);
}

/* param: the settings key of the role's folder (model-path, segment-model-path, ...) */
static void
action_choose_model (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);

  setok_preferences_choose_model (GTK_WINDOW (self), _setok_window_get_settings (self),
                                  g_variant_get_string (param, NULL));
}

/* every role back on the main model */
static void
action_reset_roles (GtkWidget *widget, const char *action_name, GVariant *param)
{
  GSettings *settings = _setok_window_get_settings (SETOK_WINDOW (widget));

  g_settings_reset (settings, "segment-model-path");
  g_settings_reset (settings, "edit-model-path");
}

static void
action_about_model (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);

  gtk_window_present (setok_model_window_new (_setok_window_get_engine (self), GTK_WINDOW (self)));
}

static void
action_close_document (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);
  AdwTabPage *page = adw_tab_view_get_selected_page (_setok_window_get_tab_view (self));

  if (page != NULL)
    adw_tab_view_close_page (_setok_window_get_tab_view (self), page);
}

static void
action_zoom (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokCanvas *canvas = _setok_window_get_canvas (SETOK_WINDOW (widget));

  if (canvas == NULL)
    return;
  if (g_str_equal (action_name, "win.zoom-in"))
    setok_canvas_zoom_in (canvas);
  else if (g_str_equal (action_name, "win.zoom-out"))
    setok_canvas_zoom_out (canvas);
  else if (g_str_equal (action_name, "win.zoom-actual"))
    setok_canvas_zoom_actual (canvas);
  else
    setok_canvas_zoom_fit (canvas);
}

static void
action_clear_selection (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokDocument *document = _setok_window_get_document (SETOK_WINDOW (widget));

  if (document != NULL)
    setok_document_clear_selection (document);
}

static void
action_recompute (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);

  if (_setok_window_get_canvas (self) != NULL)
    _setok_window_recompute (self, _setok_window_get_canvas (self));
}

static void
action_focus_chat (GtkWidget *widget, const char *action_name, GVariant *param)
{
  SetokWindow *self = SETOK_WINDOW (widget);
  SetokChatView *chat = _setok_window_get_chat_view (self);

  g_settings_set_boolean (_setok_window_get_settings (self), "show-chat", TRUE);
  if (chat != NULL)
    setok_chat_view_focus_entry (chat);
}

void
_setok_window_add_drop_target (SetokWindow *self)
{
  GtkDropTarget *target = gtk_drop_target_new (G_TYPE_INVALID, GDK_ACTION_COPY);

  gtk_drop_target_set_gtypes (target, (GType[]){ GDK_TYPE_FILE_LIST, GDK_TYPE_TEXTURE }, 2);
  g_signal_connect (target, "drop", G_CALLBACK (drop), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (target));
}

void
_setok_window_class_add_actions (GtkWidgetClass *widget_class)
{
  gtk_widget_class_install_action (widget_class, "win.open", NULL, action_open);
  gtk_widget_class_install_action (widget_class, "win.new-scene", NULL, action_new_scene);
  gtk_widget_class_install_action (widget_class, "win.paste-image", NULL, action_paste);
  gtk_widget_class_install_action (widget_class, "win.export-overlay", NULL, action_export);
  gtk_widget_class_install_action (widget_class, "win.export-mask", NULL, action_export_mask);
  gtk_widget_class_install_action (widget_class, "win.save", NULL, action_save);
  gtk_widget_class_install_action (widget_class, "win.save-as", NULL, action_save);
  gtk_widget_class_install_action (widget_class, "win.undo", NULL, action_history);
  gtk_widget_class_install_action (widget_class, "win.redo", NULL, action_history);
  gtk_widget_class_install_action (widget_class, "win.choose-model", "s", action_choose_model);
  gtk_widget_class_install_action (widget_class, "win.reset-roles", NULL, action_reset_roles);
  gtk_widget_class_install_action (widget_class, "win.about-model", NULL, action_about_model);
  gtk_widget_class_install_action (widget_class, "win.close-document", NULL, action_close_document);
  gtk_widget_class_install_action (widget_class, "win.zoom-in", NULL, action_zoom);
  gtk_widget_class_install_action (widget_class, "win.zoom-out", NULL, action_zoom);
  gtk_widget_class_install_action (widget_class, "win.zoom-fit", NULL, action_zoom);
  gtk_widget_class_install_action (widget_class, "win.zoom-actual", NULL, action_zoom);
  gtk_widget_class_install_action (widget_class, "win.clear-selection", NULL,
                                   action_clear_selection);
  gtk_widget_class_install_action (widget_class, "win.recompute", NULL, action_recompute);
  gtk_widget_class_install_action (widget_class, "win.focus-chat", NULL, action_focus_chat);
  gtk_widget_class_install_action (widget_class, "win.show-error-details", "s", show_error_details);

  /* bubble phase: a focused text entry pastes or cancels text first */
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_v, GDK_CONTROL_MASK, "win.paste-image",
                                       NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "win.clear-selection",
                                       NULL);
  /* likewise: a focused entry undoes its own typing first */
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_z, GDK_CONTROL_MASK, "win.undo", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_z, GDK_CONTROL_MASK | GDK_SHIFT_MASK,
                                       "win.redo", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Z, GDK_CONTROL_MASK | GDK_SHIFT_MASK,
                                       "win.redo", NULL);
}
