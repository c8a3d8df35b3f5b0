/* forward-diffusion.c — `setok forward` on diffusers folders:
 * AutoencoderKL: sample [B, 3, H, W] -> latent_mean, latent_logvar and sample (the decoded
 * mean, a round trip), and/or latent_sample [B, 4, h, w] -> sample (decoded; it wins the
 * name when both are given); --set tile=N decodes in N-pixel tiles (0: whole).
 * UNet2DConditionModel: sample [B, C, h, w], timestep [B] or scalar, encoder_hidden_states
 * [B, S, D] -> sample (the noise prediction). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "forward.h"
#include "setok/arena.h"
#include "setok/models/unet.h"
#include "setok/models/vae.h"

/* An optional float input of 4 dims. */
static setok_status
find_4d (const setok_safetensors *in, const char *path, const char *name,
         const setok_st_tensor **out, setok_error *err)
{
  *out = setok_safetensors_find (in, name);
  if (*out && (*out)->ndim != 4)
    return setok_fail (err, SETOK_ERR_INPUT, "%s: %s must be [B, C, H, W], has %d dims", path, name,
                       (*out)->ndim);
  return SETOK_OK;
}

int
forward_run_vae (const component_args *a)
{
  setok_error err = { 0 };
  setok_backend *be = NULL;
  setok_vae *vae = NULL;
  setok_safetensors *in = NULL;
  setok_tensor px = { 0 }, lat = { 0 }, mean = { 0 }, logvar = { 0 }, dec = { 0 };
  setok_arena arena = { 0 };
  const setok_st_tensor *ts = NULL, *tl = NULL;
  int tile = a->p->tile;
  setok_status st = setok_backend_create_by_name (&be, a->device, 0, &err);
  if (st == SETOK_OK)
    st = setok_vae_load (&vae, a->dir, be, a->dtype, &err);
  if (st == SETOK_OK)
    st = setok_safetensors_open (&in, a->in, &err);
  if (st == SETOK_OK)
    st = find_4d (in, a->in, "sample", &ts, &err);
  if (st == SETOK_OK)
    st = find_4d (in, a->in, "latent_sample", &tl, &err);
  if (st == SETOK_OK && !ts && !tl)
    st = setok_fail (&err, SETOK_ERR_INPUT,
                     "%s: the autoencoder needs 'sample' [B, 3, H, W] (encode) and/or "
                     "'latent_sample' [B, 4, h, w] (decode)",
                     a->in);
  if (st == SETOK_OK && tile < 0)
    st = setok_fail (&err, SETOK_ERR_INPUT, "tile must be 0 (whole) or a tile size in pixels");
  if (st == SETOK_OK && ts)
    st = forward_load_input (&px, ts, false, a->dtype, be, &err);
  if (st == SETOK_OK && tl)
    st = forward_load_input (&lat, tl, false, a->dtype, be, &err);
  if (st == SETOK_OK)
    {
      /* encode, then decode the mean (or latent_sample) above the latents */
      size_t bytes = 0;
      int s = setok_vae_downscale (vae);
      if (ts)
        {
          int64_t b = px.shape[0], h = px.shape[2], w = px.shape[3];
          bytes += setok_vae_encode_arena_bytes (vae, b, h, w);
          if (!tl)
            bytes += setok_vae_decode_arena_bytes (vae, b, h / s, w / s, tile);
        }
      if (tl)
        bytes += setok_vae_decode_arena_bytes (vae, lat.shape[0], lat.shape[2], lat.shape[3], tile);
      st = setok_arena_init (&arena, be, bytes, &err);
    }
  if (st == SETOK_OK && ts)
    st = setok_vae_encode (vae, &arena, &mean, &logvar, &px, NULL, &err);
  if (st == SETOK_OK)
    st = setok_vae_decode (vae, &arena, &dec, tl ? &lat : &mean, tile, NULL, NULL, NULL, &err);
  if (st == SETOK_OK)
    st = setok_backend_synchronize (be, &err);
  if (st == SETOK_OK)
    {
      setok_tensor *outs[3] = { &mean, &logvar, &dec };
      const char *names[3] = { "latent_mean", "latent_logvar", "sample" };
      st = ts ? forward_write_outputs (a->out, outs, names, 3, &err)
              : forward_write_outputs (a->out, outs + 2, names + 2, 1, &err);
    }
  setok_arena_destroy (&arena);
  setok_tensor_free (&px);
  setok_tensor_free (&lat);
  setok_safetensors_close (in);
  setok_vae_free (vae);
  setok_backend_free (be);
  return st == SETOK_OK ? CLI_EXIT_OK : cli_report (&err);
}

/* timestep: a scalar (every batch item) or [B], of any float or integer dtype, into
 * B host floats. */
static setok_status
read_timesteps (float *out, const setok_st_tensor *t, int64_t B, const char *path, setok_error *err)
{
  int64_t n = t->ndim == 0 ? 1 : t->shape[0];
  if (t->ndim > 1 || (n != 1 && n != B))
    return setok_fail (err, SETOK_ERR_INPUT, "%s: timestep must be a scalar or [%lld]", path,
                       (long long)B);
  for (int64_t b = 0; b < B; b++)
    {
      uint64_t i = n == 1 ? 0 : (uint64_t)b;
      if (t->dtype == SETOK_ST_I64 || t->dtype == SETOK_ST_I32)
        {
          int64_t v64 = 0;
          int32_t v32 = 0;
          if (t->dtype == SETOK_ST_I64)
            memcpy (&v64, (const char *)t->data + i * 8, 8);
          else
            memcpy (&v32, (const char *)t->data + i * 4, 4);
          out[b] = t->dtype == SETOK_ST_I64 ? (float)v64 : (float)v32;
        }
      else if (t->dtype == SETOK_ST_F16 || t->dtype == SETOK_ST_BF16 || t->dtype == SETOK_ST_F32
               || t->dtype == SETOK_ST_F64)
        out[b] = (float)setok_st_tensor_float_at (t, i);
      else
        return setok_fail (err, SETOK_ERR_INPUT,
                           "%s: timestep has dtype %s; use a float or "
                           "integer type",
                           path, setok_st_dtype_name (t->dtype));
    }
  return SETOK_OK;
}

int
forward_run_unet (const component_args *a)
{
  setok_error err = { 0 };
  setok_backend *be = NULL;
  setok_unet *unet = NULL;
  setok_safetensors *in = NULL;
  setok_tensor x = { 0 }, ctx = { 0 }, noise = { 0 };
  setok_arena arena = { 0 };
  const setok_st_tensor *tx = NULL, *tt = NULL, *tc = NULL;
  float *timesteps = NULL;
  setok_status st = setok_backend_create_by_name (&be, a->device, 0, &err);
  if (st == SETOK_OK)
    st = setok_unet_load (&unet, a->dir, be, a->dtype, a->dtype, &err);
  if (st == SETOK_OK)
    st = setok_safetensors_open (&in, a->in, &err);
  if (st == SETOK_OK)
    {
      tx = setok_safetensors_find (in, "sample");
      tt = setok_safetensors_find (in, "timestep");
      tc = setok_safetensors_find (in, "encoder_hidden_states");
      if (!tx || !tt || !tc)
        st = setok_fail (&err, SETOK_ERR_INPUT,
                         "%s: the U-Net needs 'sample' [B, C, h, w], 'timestep' [B] and "
                         "'encoder_hidden_states' [B, S, D]",
                         a->in);
      else if (tx->ndim != 4 || tc->ndim != 3)
        st = setok_fail (&err, SETOK_ERR_INPUT,
                         "%s: sample must be [B, C, h, w] and encoder_hidden_states [B, S, D]",
                         a->in);
    }
  if (st == SETOK_OK && !(timesteps = malloc ((size_t)tx->shape[0] * sizeof *timesteps + 1)))
    st = setok_fail (&err, SETOK_ERR_NOMEM, "out of memory");
  if (st == SETOK_OK)
    st = read_timesteps (timesteps, tt, tx->shape[0], a->in, &err);
  if (st == SETOK_OK)
    st = forward_load_input (&x, tx, false, a->dtype, be, &err);
  if (st == SETOK_OK)
    st = forward_load_input (&ctx, tc, false, a->dtype, be, &err);
  if (st == SETOK_OK)
    st = setok_arena_init (
      &arena, be, setok_unet_arena_bytes (unet, x.shape[0], x.shape[2], x.shape[3], ctx.shape[1]),
      &err);
  if (st == SETOK_OK)
    st = setok_unet_forward (unet, &arena, &noise, &x, timesteps, &ctx, NULL, &err);
  if (st == SETOK_OK)
    st = setok_backend_synchronize (be, &err);
  if (st == SETOK_OK)
    {
      setok_tensor *outs[1] = { &noise };
      const char *names[1] = { "sample" };
      st = forward_write_outputs (a->out, outs, names, 1, &err);
    }
  free (timesteps);
  setok_arena_destroy (&arena);
  setok_tensor_free (&x);
  setok_tensor_free (&ctx);
  setok_safetensors_close (in);
  setok_unet_free (unet);
  setok_backend_free (be);
  return st == SETOK_OK ? CLI_EXIT_OK : cli_report (&err);
}
