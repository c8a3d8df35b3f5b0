/* setok-picture.c — an immutable, reference-counted image shared between the
 * main loop and the engine thread. The pixels never change after creation, so
 * both threads may read them; only the texture is main-thread state. */
#include "setok-picture.h"

#include <errno.h>
#include <glib/gi18n.h>

#include "setok-error.h"
#include "setok/file.h"

struct _SetokPicture
{
  setok_image image;
  gboolean has_alpha;
  GdkTexture *texture;
};

G_DEFINE_BOXED_TYPE (SetokPicture, setok_picture, setok_picture_ref, setok_picture_unref)

static void
setok_picture_clear (gpointer data)
{
  SetokPicture *self = data;

  setok_image_free (&self->image);
  g_clear_object (&self->texture);
}

SetokPicture *
setok_picture_new_take (setok_image *image)
{
  SetokPicture *self = g_rc_box_new0 (SetokPicture);

  self->image = *image;
  memset (image, 0, sizeof *image);
  self->has_alpha = self->image.channels == 4 || self->image.channels == 2;
  return self;
}

char *
setok_picture_content_key (SetokPicture *self)
{
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  guint32 shape[3] = { (guint32)self->image.width, (guint32)self->image.height,
                       (guint32)self->image.channels };

  g_checksum_update (sum, (const guchar *)shape, sizeof shape);
  g_checksum_update (sum, self->image.pixels,
                     (gssize)self->image.width * self->image.height * self->image.channels);
  return g_strdup (g_checksum_get_string (sum));
}

SetokPicture *
setok_picture_new_from_texture (GdkTexture *texture, GError **error)
{
  int w = gdk_texture_get_width (texture), h = gdk_texture_get_height (texture);
  gsize stride = (gsize)w * 4;
  g_autofree guint8 *argb = g_try_malloc ((gsize)h * stride);
  setok_image image = { 0 };
  setok_error err = { 0 };
  gboolean alpha = FALSE;

  if (argb == NULL)
    {
      g_set_error (error, SETOK_ERROR, SETOK_ERR_NOMEM, "a %d × %d image does not fit in memory", w,
                   h);
      return NULL;
    }
  /* GDK's default download format is cairo's: premultiplied, native-endian ARGB */
  gdk_texture_download (texture, argb, stride);
  for (gsize i = 0; i < (gsize)w * h && !alpha; i++)
    alpha = (((guint32 *)argb)[i] >> 24) != 0xff;
  if (setok_image_alloc (&image, w, h, alpha ? 4 : 3, &err) != SETOK_OK)
    {
      g_propagate_error (error, setok_error_to_gerror (&err));
      return NULL;
    }
  for (gsize i = 0; i < (gsize)w * h; i++)
    {
      guint32 px = ((guint32 *)argb)[i];
      guint a = px >> 24, c[3] = { px >> 16 & 0xff, px >> 8 & 0xff, px & 0xff };
      guint8 *out = image.pixels + i * image.channels;

      for (int k = 0; k < 3; k++)
        out[k] = a == 0 ? 0 : (guint8)MIN (255u, (c[k] * 255u + a / 2) / a);
      if (alpha)
        out[3] = (guint8)a;
    }
  return setok_picture_new_take (&image);
}

SetokPicture *
setok_picture_ref (SetokPicture *self)
{
  return g_rc_box_acquire (self);
}

void
setok_picture_unref (SetokPicture *self)
{
  g_rc_box_release_full (self, setok_picture_clear);
}

const setok_image *
setok_picture_get_image (SetokPicture *self)
{
  return &self->image;
}

gboolean
setok_picture_has_alpha (SetokPicture *self)
{
  return self->has_alpha;
}

GdkTexture *
setok_picture_get_texture (SetokPicture *self)
{
  const setok_image *img = &self->image;
  g_autoptr (GBytes) bytes = NULL;
  GdkMemoryFormat format;
  gsize stride;

  if (self->texture != NULL)
    return self->texture;
  if (img->channels == 3 || img->channels == 4)
    {
      stride = (gsize)img->width * img->channels;
      bytes = g_bytes_new (img->pixels, stride * img->height);
      format = img->channels == 4 ? GDK_MEMORY_R8G8B8A8 : GDK_MEMORY_R8G8B8;
    }
  else
    {
      /* gray or gray + alpha: expand to RGBA */
      gsize n = (gsize)img->width * img->height;
      guint8 *rgba = g_malloc (n * 4);

      for (gsize i = 0; i < n; i++)
        {
          guint8 v = img->pixels[i * img->channels];
          rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = v;
          rgba[4 * i + 3] = img->channels == 2 ? img->pixels[i * 2 + 1] : 255;
        }
      stride = (gsize)img->width * 4;
      bytes = g_bytes_new_take (rgba, n * 4);
      format = GDK_MEMORY_R8G8B8A8;
    }
  self->texture = gdk_memory_texture_new (img->width, img->height, format, bytes, stride);
  return self->texture;
}

static gboolean
has_extension (const char *path, const char *const *extensions)
{
  g_autofree char *lower = g_utf8_strdown (path, -1);

  for (; *extensions != NULL; extensions++)
    if (g_str_has_suffix (lower, *extensions))
      return TRUE;
  return FALSE;
}

static const char *const png_extensions[] = { ".png", NULL };
static const char *const jpeg_extensions[] = { ".jpg", ".jpeg", NULL };

gboolean
setok_picture_can_save_as (const char *path)
{
  return has_extension (path, png_extensions) || has_extension (path, jpeg_extensions);
}

static gboolean
write_chunk (const gchar *buf, gsize count, GError **error, gpointer file)
{
  if (fwrite (buf, 1, count, file) == count)
    return TRUE;
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, g_strerror (errno));
  return FALSE;
}

/* The setok_file_writer of save_jpeg: the pixbuf as JPEG. */
static setok_status
write_jpeg (FILE *f, void *pixbuf, setok_error *err)
{
  g_autoptr (GError) error = NULL;

  if (gdk_pixbuf_save_to_callback (pixbuf, write_chunk, f, "jpeg", &error, "quality", "95", NULL)
      || ferror (f))
    return SETOK_OK; /* a failed write is the stream's error, which the caller names */
  return setok_fail (err, SETOK_ERR_RUNTIME, "%s", error->message);
}

/* JPEG through GdkPixbuf's writer: RGB only, so alpha and gray are expanded or dropped.
 * Written beside the file and renamed over it, as PNG is: a failed save loses nothing. */
static gboolean
save_jpeg (SetokPicture *self, const char *path, GError **error)
{
  const setok_image *img = &self->image;
  gsize n = (gsize)img->width * img->height;
  g_autofree guint8 *rgb = g_try_malloc (n * 3);
  g_autoptr (GdkPixbuf) pixbuf = NULL;
  setok_error err = { 0 };

  if (rgb == NULL)
    {
      g_set_error (error, SETOK_ERROR, SETOK_ERR_NOMEM, "%s",
                   _ ("The image does not fit in memory"));
      return FALSE;
    }
  for (gsize i = 0; i < n; i++)
    {
      const guint8 *in = img->pixels + i * img->channels;

      for (int k = 0; k < 3; k++)
        rgb[3 * i + k] = img->channels >= 3 ? in[k] : in[0];
    }
  pixbuf = gdk_pixbuf_new_from_data (rgb, GDK_COLORSPACE_RGB, FALSE, 8, img->width, img->height,
                                     img->width * 3, NULL, NULL);
  if (setok_file_replace (path, write_jpeg, pixbuf, &err) != SETOK_OK)
    {
      g_propagate_error (error, setok_error_to_gerror (&err));
      return FALSE;
    }
  return TRUE;
}

gboolean
setok_picture_save (SetokPicture *self, const char *path, GError **error)
{
  setok_error err = { 0 };

  if (has_extension (path, jpeg_extensions))
    return save_jpeg (self, path, error);
  if (!has_extension (path, png_extensions))
    {
      g_autofree char *name = g_path_get_basename (path);
      g_set_error (error, SETOK_ERROR, SETOK_ERR_INPUT,
                   _ ("“%s” does not end in .png, .jpg or .jpeg"), name);
      return FALSE;
    }
  if (setok_image_save_png (&self->image, path, &err) != SETOK_OK)
    {
      g_propagate_error (error, setok_error_to_gerror (&err));
      return FALSE;
    }
  return TRUE;
}

static void
load_in_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  GFile *file = task_data;
  g_autofree char *contents = NULL;
  g_autofree char *name = g_file_get_parse_name (file);
  gsize size = 0;
  GError *error = NULL;
  setok_image image = { 0 };
  setok_error err = { 0 };

  if (!g_file_load_contents (file, cancellable, &contents, &size, NULL, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  if (setok_image_decode (&image, contents, size, name, 0, &err) != SETOK_OK)
    {
      g_task_return_error (task, setok_error_to_gerror (&err));
      return;
    }
  g_task_return_pointer (task, setok_picture_new_take (&image),
                         (GDestroyNotify)setok_picture_unref);
}

void
setok_picture_load_async (GFile *file, GCancellable *cancellable, GAsyncReadyCallback callback,
                          gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);

  g_task_set_source_tag (task, setok_picture_load_async);
  g_task_set_task_data (task, g_object_ref (file), g_object_unref);
  g_task_run_in_thread (task, load_in_thread);
}

SetokPicture *
setok_picture_load_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}
