/* setok-picture.h — an immutable, reference-counted image shared between the
 * main loop (display) and the engine thread (model input). */
#pragma once

#include <gtk/gtk.h>

#include "setok/image.h"

G_BEGIN_DECLS

typedef struct _SetokPicture SetokPicture;

#define SETOK_TYPE_PICTURE (setok_picture_get_type ())

GType setok_picture_get_type (void) G_GNUC_CONST;

/* Takes the pixels of image (image is zeroed). */
SetokPicture *setok_picture_new_take (setok_image *image);
/* A copy of texture's pixels: RGB, or RGBA when any pixel is translucent. */
SetokPicture *setok_picture_new_from_texture (GdkTexture *texture, GError **error);
SetokPicture *setok_picture_ref (SetokPicture *self);
void setok_picture_unref (SetokPicture *self);

const setok_image *setok_picture_get_image (SetokPicture *self);
gboolean setok_picture_has_alpha (SetokPicture *self);
/* A name for the pixels: the SHA-256 of the size, channels and pixels, in hex. */
char *setok_picture_content_key (SetokPicture *self);
/* The pixels as a texture; created on first use, main thread only. */
GdkTexture *setok_picture_get_texture (SetokPicture *self);

/* Writes the pixels to path as PNG (exact) or JPEG (quality 95, without
 * alpha), by the name's extension; any thread. */
gboolean setok_picture_save (SetokPicture *self, const char *path, GError **error);
/* Whether path's extension names a format setok_picture_save writes. */
gboolean setok_picture_can_save_as (const char *path);

/* Reads and decodes file (PNG or JPEG) in a worker thread. */
void setok_picture_load_async (GFile *file, GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data);
SetokPicture *setok_picture_load_finish (GAsyncResult *result, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SetokPicture, setok_picture_unref)

G_END_DECLS
