/* bench-diffusion.c — `setok bench unet`: a Stable-Diffusion-1.5-shaped U-Net
 * step at batch 2 (classifier-free guidance) and a VAE decode, with random
 * weights made on the device, and the memory they take. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "cli.h"
#include "setok/arena.h"
#include "setok/models/unet.h"
#include "setok/models/vae.h"

typedef struct unet_ctx
{
  setok_unet *unet;
  setok_vae *vae;
  setok_arena *arena;
  setok_tensor *sample, *context, *latents;
  float timesteps[2];
} unet_ctx;

static setok_status
run_unet_step (bench *b, void *ctx, setok_error *err)
{
  (void)b;
  unet_ctx *c = ctx;
  setok_tensor noise;
  setok_arena_reset (c->arena, 0);
  return setok_unet_forward (c->unet, c->arena, &noise, c->sample, c->timesteps, c->context, NULL,
                             err);
}

static setok_status
run_vae_decode (bench *b, void *ctx, setok_error *err)
{
  (void)b;
  unet_ctx *c = ctx;
  setok_tensor pixels;
  setok_arena_reset (c->arena, 0);
  return setok_vae_decode (c->vae, c->arena, &pixels, c->latents, 0, NULL, NULL, NULL, err);
}

static void
row (bench *b, const char *what, const char *shape, double seconds, double per_s,
     const char *per_unit)
{
  if (b->json)
    {
      cJSON *r = cJSON_CreateObject ();
      cJSON_AddStringToObject (r, "phase", what);
      cJSON_AddStringToObject (r, "shape", shape);
      cJSON_AddNumberToObject (r, "ms", seconds * 1e3);
      if (per_unit)
        cJSON_AddNumberToObject (r, per_unit, per_s);
      cJSON_AddItemToArray (b->rows, r);
      return;
    }
  printf ("%-12s %-34s %10.2f ms", what, shape, seconds * 1e3);
  if (per_unit)
    printf ("  %8.2f %s", per_s, per_unit);
  printf ("\n");
  fflush (stdout);
}

/* A host float buffer of n pseudo-random values in [-1, 1] uploaded into t. */
static setok_status
fill_random (setok_tensor *t, uint32_t seed, setok_error *err)
{
  int64_t n = setok_tensor_numel (t);
  size_t e = setok_dtype_size (t->dtype);
  unsigned char *host = malloc ((size_t)n * e);
  if (!host)
    return setok_fail (err, SETOK_ERR_NOMEM, "bench: out of memory");
  uint32_t s = seed;
  for (int64_t i = 0; i < n; i++)
    {
      s = s * 1664525u + 1013904223u;
      setok_store_f32 (host, t->dtype, i, (float)((s >> 8) / 8388608.0 - 1.0));
    }
  setok_status st = setok_tensor_upload (t, host, err);
  free (host);
  return st;
}

setok_status
bench_unet (bench *b, bool quick, setok_error *err)
{
  if (setok_backend_is_host (b->be) && b->dtype != SETOK_F32)
    return setok_fail (err, SETOK_ERR_UNSUPPORTED,
                       "bench unet: the CPU runs f16 and bf16 through its reference loops, "
                       "far too slowly to time; use --dtype f32 or --device cuda");
  setok_unet_config uc;
  setok_vae_config vc;
  setok_unet_config_sd15 (&uc);
  setok_vae_config_sd15 (&vc);
  int64_t h = 64, w = 64, batch = 2, ctx_len = 77;
  if (quick)
    {
      /* a small U-Net of the same block set */
      int boc[4] = { 32, 64, 64, 64 };
      for (int i = 0; i < 4; i++)
        {
          uc.block_out_channels[i] = boc[i];
          uc.layers_per_block[i] = 1;
          uc.cross_attention_dim[i] = 64;
        }
      uc.norm_num_groups = 16;
      uc.time_embed_dim = 128;
      int vboc[4] = { 32, 32, 64, 64 };
      for (int i = 0; i < 4; i++)
        vc.block_out_channels[i] = vboc[i];
      vc.layers_per_block = 1;
      vc.norm_num_groups = 16;
      h = w = 16;
      ctx_len = 16;
    }
  const char *name = quick ? "small U-Net" : "SD-1.5-shaped U-Net";
  double mem0 = bench_memory_now (b);
  unet_ctx c = { .timesteps = { 981.0f, 981.0f } };
  setok_tensor sample = { 0 }, context = { 0 }, latents = { 0 };
  setok_arena arena = { 0 };
  setok_status st
    = setok_unet_create_random (&c.unet, &uc, b->be, b->dtype, b->matrix, 1u, err);
  if (st == SETOK_OK)
    st = setok_vae_create_random (&c.vae, &vc, b->be, b->dtype, 2u, err);
  double mem_weights = bench_memory_now (b) - mem0;
  if (st == SETOK_OK)
    st = setok_tensor_alloc (&sample, b->be, b->dtype, 4, (int64_t[]){ batch, 4, h, w }, err);
  if (st == SETOK_OK)
    st = setok_tensor_alloc (&context, b->be, b->dtype, 3,
                             (int64_t[]){ batch, ctx_len, uc.cross_attention_dim[0] }, err);
  if (st == SETOK_OK)
    st = setok_tensor_alloc (&latents, b->be, b->dtype, 4, (int64_t[]){ 1, 4, h, w }, err);
  if (st == SETOK_OK)
    st = fill_random (&sample, 11u, err);
  if (st == SETOK_OK)
    st = fill_random (&context, 12u, err);
  if (st == SETOK_OK)
    st = fill_random (&latents, 13u, err);
  size_t unet_bytes = st == SETOK_OK ? setok_unet_arena_bytes (c.unet, batch, h, w, ctx_len) : 0;
  size_t vae_bytes = st == SETOK_OK ? setok_vae_decode_arena_bytes (c.vae, 1, h, w, 0) : 0;
  if (st == SETOK_OK)
    st = setok_arena_init (&arena, b->be, unet_bytes > vae_bytes ? unet_bytes : vae_bytes, err);
  c.arena = &arena;
  c.sample = &sample;
  c.context = &context;
  c.latents = &latents;
  char shape[64];
  if (st == SETOK_OK)
    {
      snprintf (shape, sizeof shape, "%s, %lldx%lld latents, batch %lld", name, (long long)h,
                (long long)w, (long long)batch);
      double t = bench_time_calls (b, run_unet_step, &c, err);
      if (t < 0)
        st = err->status;
      else
        row (b, "unet step", shape, t, 1.0 / t, "it/s");
    }
  if (st == SETOK_OK)
    {
      int s = setok_vae_downscale (c.vae);
      snprintf (shape, sizeof shape, "VAE decode %lldx%lld -> %lldx%lld", (long long)h,
                (long long)w, (long long)(h * s), (long long)(w * s));
      double t = bench_time_calls (b, run_vae_decode, &c, err);
      if (t < 0)
        st = err->status;
      else
        row (b, "vae decode", shape, t, 0.0, NULL);
    }
  if (st == SETOK_OK)
    bench_memory_row (b, mem_weights, (double)arena.capacity, bench_memory_now (b) - mem0);
  setok_arena_destroy (&arena);
  setok_tensor_free (&sample);
  setok_tensor_free (&context);
  setok_tensor_free (&latents);
  setok_vae_free (c.vae);
  setok_unet_free (c.unet);
  return st;
}
