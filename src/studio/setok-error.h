/* setok-error.h — libsetok status values as GErrors. */
#pragma once

#include <glib.h>

#include "setok/error.h"

G_BEGIN_DECLS

#define SETOK_ERROR (setok_error_quark ())

/* Codes are the setok_status values (SETOK_ERR_INPUT, ...). */
GQuark setok_error_quark (void);

/* err as a GError; SETOK_ERR_CANCELLED becomes G_IO_ERROR_CANCELLED so
 * g_error_matches (e, G_IO_ERROR, G_IO_ERROR_CANCELLED) finds every cancel. */
GError *setok_error_to_gerror (const setok_error *err);

G_END_DECLS
