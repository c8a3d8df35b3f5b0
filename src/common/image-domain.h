/* image-domain.h — whether an image looks like what a model was trained on,
 * for the training domains this program knows (setokim.json "domain.kind"). */
#pragma once

#include "setok/image.h"

typedef enum
{
  IMAGE_DOMAIN_UNKNOWN = -1, /* a kind this program cannot check */
  IMAGE_DOMAIN_OUTSIDE = 0,
  IMAGE_DOMAIN_INSIDE = 1,
} image_domain_fit;

/* "synthetic-shapes" (the world generator's scenes, setok/world.h): a muted
 * background, within a small amplitude of one tone, and flat shapes in the
 * world's palette. Cheap: a pass over a subsample of the pixels. */
image_domain_fit image_domain_check (const char *kind, const setok_image *image);
