/* setok-window-save.c — saving documents and asking before unsaved edits
 * are lost.
 *
 * Save writes the document's own file; Save As, and Save for a picture that
 * has no file it can write, ask for a new one, so the opened file is only
 * overwritten when the user chose Save, and then only by a complete new file
 * renamed over it: a failed save leaves it as it was, the document modified,
 * and says why in a toast. Closing a tab or the window whose
 * documents have unsaved edits asks Cancel / Discard / Save first; the
 * application is held while the question is up. */
#include <glib/gi18n.h>

#include "setok-error.h"
#include "setok-window-private.h"

#define CLOSE_DIALOG_KEY "setok-close-dialog"

// ----------------------------------------------------------------------------
// saving

typedef struct
{
  SetokWindow *self;
  SetokDocument *document;
  SetokSavedFunc done;
  gpointer data;
} SaveOp;

static void
save_op_finish (SaveOp *op, gboolean saved)
{
  if (op->done != NULL)
    op->done (op->self, saved, op->data);
  g_object_unref (op->self);
  g_object_unref (op->document);
  g_free (op);
}

static void
save_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SaveOp *op = user_data;
  SetokDocument *document = SETOK_DOCUMENT (source);
  g_autoptr (GError) error = NULL;
  g_autofree char *title = NULL;

  if (!setok_document_save_finish (document, result, &error))
    {
      title = g_strdup_printf (_ ("Could not save “%s”"), setok_document_get_title (document));
      setok_window_show_error (op->self, title, error);
      save_op_finish (op, FALSE);
      return;
    }
  title = g_strdup_printf (_ ("Saved “%s”"), setok_document_get_title (document));
  _setok_window_add_toast (op->self, adw_toast_new (title));
  save_op_finish (op, TRUE);
}

static void
save_to (SaveOp *op, GFile *file)
{
  const char *path = g_file_peek_path (file);

  if (path == NULL || !setok_picture_can_save_as (path))
    {
      g_autofree char *name = g_file_get_basename (file);
      g_autoptr (GError) error
        = g_error_new (SETOK_ERROR, SETOK_ERR_INPUT,
                       _ ("“%s” is not a local file ending in .png, .jpg or .jpeg"), name);
      setok_window_show_error (op->self, _ ("Choose a PNG or JPEG file name"), error);
      save_op_finish (op, FALSE);
      return;
    }
  setok_document_save_async (op->document, file, NULL, save_done, op);
}

static void
chooser_response (GtkNativeDialog *dialog, int response, SaveOp *op)
{
  g_autoptr (GFile) file = response == GTK_RESPONSE_ACCEPT
                             ? gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog))
                             : NULL;

  g_object_unref (dialog);
  if (file == NULL)
    save_op_finish (op, FALSE);
  else
    save_to (op, file);
}

/* The name Save As suggests: never the opened file's own. */
static char *
suggested_name (SetokDocument *document)
{
  const char *title = setok_document_get_title (document);
  const char *dot = strrchr (title, '.');
  g_autofree char *stem = dot != NULL ? g_strndup (title, (gsize)(dot - title)) : g_strdup (title);

  if (setok_document_get_file (document) == NULL)
    return g_strdup_printf ("%s.png", stem);
  return g_strdup_printf ("%s-edited%s", stem,
                          dot != NULL && setok_picture_can_save_as (title) ? dot : ".png");
}

static void
add_filter (GtkFileChooser *chooser, const char *name, const char *mime_type)
{
  g_autoptr (GtkFileFilter) filter = gtk_file_filter_new ();

  gtk_file_filter_set_name (filter, name);
  gtk_file_filter_add_mime_type (filter, mime_type);
  gtk_file_chooser_add_filter (chooser, filter);
}

void
_setok_window_save_document (SetokWindow *self, SetokDocument *document, gboolean choose_file,
                             SetokSavedFunc done, gpointer data)
{
  SaveOp *op = g_new0 (SaveOp, 1);
  GFile *file = setok_document_get_file (document);
  GtkFileChooserNative *dialog;
  g_autofree char *name = NULL;
  g_autoptr (GFile) folder = NULL;

  op->self = g_object_ref (self);
  op->document = g_object_ref (document);
  op->done = done;
  op->data = data;
  if (!choose_file && file != NULL && g_file_peek_path (file) != NULL
      && setok_picture_can_save_as (g_file_peek_path (file)))
    {
      save_to (op, file);
      return;
    }
  dialog = gtk_file_chooser_native_new (_ ("Save Image"), GTK_WINDOW (self),
                                        GTK_FILE_CHOOSER_ACTION_SAVE, _ ("_Save"), _ ("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (dialog), TRUE);
  add_filter (GTK_FILE_CHOOSER (dialog), _ ("PNG image"), "image/png");
  add_filter (GTK_FILE_CHOOSER (dialog), _ ("JPEG image"), "image/jpeg");
  /* beside the file, or in Pictures for a pasted or generated picture */
  folder = _setok_window_default_folder (document);
  gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (dialog), folder, NULL);
  name = suggested_name (document);
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (dialog), name);
  g_signal_connect (dialog, "response", G_CALLBACK (chooser_response), op);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (dialog));
}

// ----------------------------------------------------------------------------
// the question

/* Cancel / Discard / Save; the application stays alive until it is answered. */
static AdwMessageDialog *
unsaved_dialog (SetokWindow *self, const char *body)
{
  AdwMessageDialog *dialog
    = ADW_MESSAGE_DIALOG (adw_message_dialog_new (GTK_WINDOW (self), _ ("Save Changes?"), body));

  adw_message_dialog_add_responses (dialog, "cancel", _ ("_Cancel"), "discard", _ ("_Discard"),
                                    "save", _ ("_Save"), NULL);
  adw_message_dialog_set_response_appearance (dialog, "discard", ADW_RESPONSE_DESTRUCTIVE);
  adw_message_dialog_set_response_appearance (dialog, "save", ADW_RESPONSE_SUGGESTED);
  adw_message_dialog_set_default_response (dialog, "save");
  adw_message_dialog_set_close_response (dialog, "cancel");
  g_application_hold (g_application_get_default ());
  return dialog;
}

static void
release_application (void)
{
  g_application_release (g_application_get_default ());
}

AdwMessageDialog *
_setok_window_get_close_dialog (SetokWindow *self)
{
  return g_object_get_data (G_OBJECT (self), CLOSE_DIALOG_KEY);
}

static void
set_close_dialog (SetokWindow *self, AdwMessageDialog *dialog)
{
  g_object_set_data (G_OBJECT (self), CLOSE_DIALOG_KEY, dialog);
}

// ----------------------------------------------------------------------------
// closing a tab

typedef struct
{
  SetokWindow *self;
  AdwTabPage *page;
} PageClose;

static void
page_close_free (PageClose *pc)
{
  g_object_unref (pc->self);
  g_object_unref (pc->page);
  g_free (pc);
}

static void
page_saved (SetokWindow *self, gboolean saved, gpointer data)
{
  PageClose *pc = data;

  _setok_window_close_page_finish (self, pc->page, saved);
  page_close_free (pc);
}

static void
page_response (AdwMessageDialog *dialog, const char *response, PageClose *pc)
{
  SetokDocument *document
    = setok_canvas_get_document (SETOK_CANVAS (adw_tab_page_get_child (pc->page)));

  set_close_dialog (pc->self, NULL);
  release_application ();
  if (g_str_equal (response, "save"))
    {
      _setok_window_save_document (pc->self, document, FALSE, page_saved, pc);
      return;
    }
  _setok_window_close_page_finish (pc->self, pc->page, g_str_equal (response, "discard"));
  page_close_free (pc);
}

void
_setok_window_confirm_close_page (SetokWindow *self, AdwTabPage *page)
{
  SetokDocument *document
    = setok_canvas_get_document (SETOK_CANVAS (adw_tab_page_get_child (page)));
  g_autofree char *body = NULL;
  AdwMessageDialog *dialog;
  PageClose *pc;

  if (!setok_document_get_modified (document) || _setok_window_get_close_dialog (self) != NULL)
    {
      /* a second question at once would leave the first one's tab dangling */
      _setok_window_close_page_finish (self, page, !setok_document_get_modified (document));
      return;
    }
  body = g_strdup_printf (_ ("“%s” has unsaved edits. Discarded edits are lost."),
                          setok_document_get_title (document));
  dialog = unsaved_dialog (self, body);
  pc = g_new0 (PageClose, 1);
  pc->self = g_object_ref (self);
  pc->page = g_object_ref (page);
  g_signal_connect (dialog, "response", G_CALLBACK (page_response), pc);
  set_close_dialog (self, dialog);
  gtk_window_present (GTK_WINDOW (dialog));
}

// ----------------------------------------------------------------------------
// closing the window

typedef struct
{
  SetokWindow *self;
  GPtrArray *documents; /* still to save */
} WindowClose;

static void
window_close_free (WindowClose *wc)
{
  g_object_unref (wc->self);
  g_ptr_array_unref (wc->documents);
  g_free (wc);
}

static gboolean
close_idle (gpointer data)
{
  SetokWindow *self = data;

  _setok_window_set_close_confirmed (self);
  gtk_window_close (GTK_WINDOW (self));
  return G_SOURCE_REMOVE;
}

/* After the question has gone: it is transient for the window. */
static void
close_window_later (SetokWindow *self)
{
  g_idle_add_full (G_PRIORITY_DEFAULT, close_idle, g_object_ref (self), g_object_unref);
}

static void save_next (WindowClose *wc);

static void
window_saved (SetokWindow *self, gboolean saved, gpointer data)
{
  WindowClose *wc = data;

  if (!saved)
    {
      window_close_free (wc); /* the window stays, with what is left unsaved */
      return;
    }
  save_next (wc);
}

static void
save_next (WindowClose *wc)
{
  g_autoptr (SetokDocument) document = NULL;

  if (wc->documents->len == 0)
    {
      close_window_later (wc->self);
      window_close_free (wc);
      return;
    }
  document = g_ptr_array_steal_index (wc->documents, 0);
  _setok_window_save_document (wc->self, document, FALSE, window_saved, wc);
}

static void
window_response (AdwMessageDialog *dialog, const char *response, WindowClose *wc)
{
  set_close_dialog (wc->self, NULL);
  release_application ();
  if (g_str_equal (response, "save"))
    {
      save_next (wc);
      return;
    }
  if (g_str_equal (response, "discard"))
    close_window_later (wc->self);
  window_close_free (wc);
}

gboolean
_setok_window_confirm_close (SetokWindow *self)
{
  AdwTabView *view = _setok_window_get_tab_view (self);
  AdwMessageDialog *dialog = _setok_window_get_close_dialog (self);
  GPtrArray *documents;
  g_autofree char *body = NULL;
  WindowClose *wc;

  if (dialog != NULL)
    {
      gtk_window_present (GTK_WINDOW (dialog));
      return TRUE;
    }
  documents = g_ptr_array_new_with_free_func (g_object_unref);
  for (int i = 0; i < adw_tab_view_get_n_pages (view); i++)
    {
      SetokDocument *document = setok_canvas_get_document (
        SETOK_CANVAS (adw_tab_page_get_child (adw_tab_view_get_nth_page (view, i))));

      if (setok_document_get_modified (document))
        g_ptr_array_add (documents, g_object_ref (document));
    }
  if (documents->len == 0)
    {
      g_ptr_array_unref (documents);
      return FALSE;
    }
  if (documents->len == 1)
    body = g_strdup_printf (_ ("“%s” has unsaved edits. Discarded edits are lost."),
                            setok_document_get_title (g_ptr_array_index (documents, 0)));
  else
    body = g_strdup_printf (ngettext ("%u image has unsaved edits. Discarded edits are lost.",
                                      "%u images have unsaved edits. Discarded edits are lost.",
                                      documents->len),
                            documents->len);
  dialog = unsaved_dialog (self, body);
  wc = g_new0 (WindowClose, 1);
  wc->self = g_object_ref (self);
  wc->documents = documents;
  g_signal_connect (dialog, "response", G_CALLBACK (window_response), wc);
  set_close_dialog (self, dialog);
  gtk_window_present (GTK_WINDOW (dialog));
  return TRUE;
}
