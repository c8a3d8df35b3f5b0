/* image-domain.c — does an image belong to a model's training domain (image-domain.h). */
#include "image-domain.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "setok/world.h"

/* the world's backgrounds vary by at most 10 levels around one tone (stripes: twice that
 * between them); its shapes are flat palette colours, which JPEG and resizing blur a little */
#define BACKGROUND_SLACK 24
#define PALETTE_SLACK 20
/* the share of pixels a world scene explains; photographs explain far fewer */
#define INSIDE_SHARE 0.85
#define MAX_SAMPLES 65536

static int
channel_distance (const uint8_t *a, const uint8_t *b)
{
  int d = 0;
  for (int c = 0; c < 3; c++)
    {
      int e = abs ((int)a[c] - (int)b[c]);
      d = e > d ? e : d;
    }
  return d;
}

static void
pixel_rgb (const setok_image *img, int64_t p, uint8_t rgb[3])
{
  const uint8_t *px = img->pixels + p * img->channels;
  for (int c = 0; c < 3; c++)
    rgb[c] = img->channels >= 3 ? px[c] : px[0];
}

/* The most common colour of the border, in 16 levels a channel, as the mean of its pixels. */
static void
border_tone (const setok_image *img, uint8_t out[3])
{
  int w = img->width, h = img->height;
  int *counts = calloc (4096, sizeof *counts);
  long *sums = calloc (4096 * 3, sizeof *sums);
  int best = 0;

  memset (out, 128, 3);
  if (!counts || !sums)
    {
      free (counts);
      free (sums);
      return;
    }
  for (int i = 0; i < 2 * (w + h); i++)
    {
      int x = i < w ? i : i < 2 * w ? i - w : i < 2 * w + h ? 0 : w - 1;
      int y = i < w ? 0 : i < 2 * w ? h - 1 : i < 2 * w + h ? i - 2 * w : i - 2 * w - h;
      uint8_t rgb[3];
      pixel_rgb (img, (int64_t)y * w + x, rgb);
      int bin = (rgb[0] >> 4) << 8 | (rgb[1] >> 4) << 4 | rgb[2] >> 4;
      counts[bin]++;
      for (int c = 0; c < 3; c++)
        sums[3 * bin + c] += rgb[c];
    }
  for (int b = 1; b < 4096; b++)
    if (counts[b] > counts[best])
      best = b;
  for (int c = 0; c < 3 && counts[best] > 0; c++)
    out[c] = (uint8_t)(sums[3 * best + c] / counts[best]);
  free (counts);
  free (sums);
}

static image_domain_fit
check_shapes (const setok_image *img)
{
  int64_t n = (int64_t)img->width * img->height;
  int64_t step = n > MAX_SAMPLES ? n / MAX_SAMPLES : 1, seen = 0, explained = 0;
  uint8_t background[3];

  border_tone (img, background);
  for (int64_t p = 0; p < n; p += step)
    {
      uint8_t rgb[3];
      int ok;

      pixel_rgb (img, p, rgb);
      ok = channel_distance (rgb, background) <= BACKGROUND_SLACK;
      for (int c = 0; c < SETOK_WORLD_N_COLOURS && !ok; c++)
        ok = channel_distance (rgb, setok_world_colour_rgb (c)) <= PALETTE_SLACK;
      explained += ok;
      seen++;
    }
  return seen > 0 && (double)explained / (double)seen >= INSIDE_SHARE ? IMAGE_DOMAIN_INSIDE
                                                                       : IMAGE_DOMAIN_OUTSIDE;
}

image_domain_fit
image_domain_check (const char *kind, const setok_image *image)
{
  if (kind == NULL || image == NULL || image->pixels == NULL || image->width <= 0
      || image->height <= 0)
    return IMAGE_DOMAIN_UNKNOWN;
  if (strcmp (kind, "synthetic-shapes") == 0)
    return check_shapes (image);
  return IMAGE_DOMAIN_UNKNOWN;
}
