/* bench-sam.c — `setok bench sam`: SAM's image encoder (ViT-B at 1024 x 1024; --quick: a
 * small one at 512 px) with random weights made in memory, then the prompt encoder and mask
 * decoder per click on its image embedding, the click's mask drawn at a photo's size, and
 * the memory they take. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench-direct.h"
#include "bench.h"
#include "cli.h"
#include "setok/arena.h"
#include "setok/models/mask_decoder.h"
#include "setok/models/sam_vision.h"

typedef struct sam_ctx
{
  setok_sam_vision *enc;
  setok_mask_decoder *dec;
  setok_arena *arena;
  setok_tensor *pixels, *emb;
  const setok_sam_prompt *prompt;
  bool multimask;
  setok_sam_preprocessor pre;
  float *logits;
  uint8_t *mask;
  int lh, lw, width, height;
} sam_ctx;

static setok_status
run_encoder (bench *b, void *ctx, setok_error *err)
{
  (void)b;
  sam_ctx *c = ctx;
  setok_tensor emb;
  setok_arena_reset (c->arena, 0);
  return setok_sam_vision_forward (c->enc, c->arena, &emb, c->pixels, NULL, err);
}

static setok_status
run_decoder (bench *b, void *ctx, setok_error *err)
{
  (void)b;
  sam_ctx *c = ctx;
  setok_tensor masks, iou;
  setok_arena_reset (c->arena, 0);
  return setok_mask_decoder_forward (c->dec, c->arena, &masks, &iou, c->emb, c->prompt,
                                     c->multimask, NULL, err);
}

static setok_status
run_postprocess (bench *b, void *ctx, setok_error *err)
{
  (void)b;
  sam_ctx *c = ctx;
  int64_t area;
  return setok_sam_postprocess_mask (&c->pre, c->logits, c->lh, c->lw, c->mask, c->width,
                                     c->height, &area, err);
}

/* Multiply-adds x 2 of one encoder forward: patches, every block (windows padded), the neck. */
static double
encoder_flops (const setok_sam_vision_config *c)
{
  double C = c->hidden_size, O = c->output_channels, g = c->image_size / c->patch_size;
  double T = g * g, p = c->patch_size;
  double flops = 2.0 * T * C * c->num_channels * p * p + 2.0 * T * C * O + 18.0 * T * O * O;
  for (int i = 0; i < c->num_layers; i++)
    {
      bool global = c->global_attn[i] || c->window_size == 0;
      double s = global ? g : c->window_size, nw = global ? 1 : (int)((g + s - 1) / s);
      double seq = nw * nw * s * s; /* positions, padding included */
      double attn = 4.0 * seq * s * s * C + (c->use_rel_pos ? 4.0 * seq * s * C : 0.0);
      flops += 2.0 * T * C * 4.0 * C + 4.0 * T * C * c->mlp_dim + attn;
    }
  return flops;
}

/* CPU seconds the process has used, all threads. */
static double
cpu_seconds (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One row; cpu_seconds > 0: the CPU time a call took too (on a busy machine the two differ). */
static void
row (bench *b, const char *what, const char *shape, double seconds, double cpu, double gflop)
{
  if (b->json)
    {
      cJSON *r = cJSON_CreateObject ();
      cJSON_AddStringToObject (r, "phase", what);
      cJSON_AddStringToObject (r, "shape", shape);
      cJSON_AddNumberToObject (r, "ms", seconds * 1e3);
      if (cpu > 0)
        cJSON_AddNumberToObject (r, "cpu_ms", cpu * 1e3);
      if (gflop > 0)
        {
          cJSON_AddNumberToObject (r, "gflop", gflop);
          cJSON_AddNumberToObject (r, "tflops", gflop / seconds * 1e-3);
        }
      cJSON_AddItemToArray (b->rows, r);
      return;
    }
  printf ("%-10s %-44s %10.2f ms", what, shape, seconds * 1e3);
  if (cpu > 0)
    printf (" (CPU %.1f ms)", cpu * 1e3);
  if (gflop > 0)
    printf ("  %.1f GFLOP, %.3f TFLOP/s", gflop, gflop / seconds * 1e-3);
  printf ("\n");
  fflush (stdout);
}

/* Seconds (wall and CPU) per call of fn: one to warm up, then calls until min_time. */
static setok_status
time_calls (bench *b, bench_fn fn, sam_ctx *c, double *wall, double *cpu, setok_error *err)
{
  setok_status st = fn (b, c, err);
  if (st == SETOK_OK)
    st = setok_backend_synchronize (b->be, err);
  double t0 = bench_now (), c0 = cpu_seconds ();
  int calls = 0;
  while (st == SETOK_OK && (calls == 0 || bench_now () - t0 < b->min_time))
    {
      st = fn (b, c, err);
      if (st == SETOK_OK)
        st = setok_backend_synchronize (b->be, err);
      calls++;
    }
  *wall = (bench_now () - t0) / calls;
  *cpu = setok_backend_is_host (b->be) ? (cpu_seconds () - c0) / calls : 0;
  return st;
}

/* A tensor of pseudo-random values in [-1, 1). */
static setok_status
random_tensor (bench *b, setok_tensor *t, int ndim, const int64_t *shape, uint32_t seed,
               setok_error *err)
{
  return setok_tensor_alloc_random (t, b->be, b->dtype, ndim, shape, 0.0f, 1.0f, &seed, err);
}

/* The decoder on one prompt, timed. */
static setok_status
time_click (bench *b, sam_ctx *c, const char *what, const setok_sam_prompt *prompt,
            bool multimask, setok_error *err)
{
  c->prompt = prompt;
  c->multimask = multimask;
  double t = 0, cpu = 0;
  setok_status st = time_calls (b, run_decoder, c, &t, &cpu, err);
  if (st == SETOK_OK)
    row (b, "decoder", what, t, cpu, 0);
  return st;
}

setok_status
bench_sam (bench *b, bool quick, setok_error *err)
{
  if (setok_backend_is_host (b->be) && b->dtype != SETOK_F32)
    return setok_fail (err, SETOK_ERR_UNSUPPORTED,
                       "bench sam: the CPU runs f16 and bf16 activations through its reference "
                       "loops; use --dtype f32 (or --weights q8 / q4) or --device cuda");
  setok_sam_vision_config vc;
  setok_mask_decoder_config dc;
  setok_sam_vision_config_defaults (&vc);
  setok_mask_decoder_config_defaults (&dc);
  if (quick)
    {
      vc.hidden_size = 384;
      vc.num_layers = 4;
      vc.num_heads = 6;
      vc.mlp_dim = 1536;
      vc.image_size = 512;
      for (int i = 0; i < SETOK_SAM_VISION_MAX_LAYERS; i++)
        vc.global_attn[i] = i == 1 || i == 3;
      dc.image_size = 512;
      dc.image_embedding_size = 32;
    }
  const char *name = quick ? "small SAM encoder (384 wide, 4 blocks)" : "SAM ViT-B encoder";
  int64_t size = vc.image_size, g = size / vc.patch_size;
  double mem0 = bench_memory_now (b);
  sam_ctx c = { .width = 1920, .height = 1080 };
  setok_tensor pixels = { 0 }, emb = { 0 };
  setok_arena arena = { 0 };
  setok_status st
    = setok_sam_vision_create_random (&c.enc, &vc, b->be, b->dtype, b->matrix, 1u, err);
  if (st == SETOK_OK)
    st = setok_mask_decoder_create_random (&c.dec, &dc, b->be, b->dtype, 2u, err);
  double mem_weights = bench_memory_now (b) - mem0;
  if (st == SETOK_OK)
    st = random_tensor (b, &pixels, 4, (int64_t[]){ 1, 3, size, size }, 11u, err);
  if (st == SETOK_OK)
    st = random_tensor (b, &emb, 4, (int64_t[]){ 1, vc.output_channels, g, g }, 12u, err);
  float points[4] = { 0.31f * size, 0.42f * size, 0.7f * size, 0.66f * size };
  float box[4] = { 0.1f * size, 0.2f * size, 0.8f * size, 0.9f * size };
  int32_t one[1] = { SETOK_SAM_LABEL_FOREGROUND };
  int32_t two[2] = { SETOK_SAM_LABEL_FOREGROUND, SETOK_SAM_LABEL_BACKGROUND };
  setok_sam_prompt click = { .points = points, .labels = one, .num_points = 1 };
  setok_sam_prompt boxed = { .points = points, .labels = two, .num_points = 2, .boxes = box };
  size_t enc_bytes = st == SETOK_OK ? setok_sam_vision_arena_bytes (c.enc, 1) : 0;
  size_t dec_bytes = st == SETOK_OK ? setok_mask_decoder_arena_bytes (c.dec, 1, g, g, &boxed) : 0;
  if (st == SETOK_OK)
    st = setok_arena_init (&arena, b->be, enc_bytes > dec_bytes ? enc_bytes : dec_bytes, err);
  c.arena = &arena;
  c.pixels = &pixels;
  c.emb = &emb;
  char shape[96];
  if (st == SETOK_OK)
    {
      snprintf (shape, sizeof shape, "%s, %lldx%lld, batch 1", name, (long long)size,
                (long long)size);
      double t = 0, cpu = 0;
      st = time_calls (b, run_encoder, &c, &t, &cpu, err);
      if (st == SETOK_OK)
        row (b, "encoder", shape, t, cpu, encoder_flops (&vc) * 1e-9);
    }
  if (st == SETOK_OK)
    st = time_click (b, &c, "1 point, 1 mask", &click, false, err);
  if (st == SETOK_OK)
    st = time_click (b, &c, "1 point, 3 masks", &click, true, err);
  if (st == SETOK_OK)
    st = time_click (b, &c, "2 points + a box, 3 masks", &boxed, true, err);
  /* the chosen mask at a photo's size (SamImageProcessor.post_process_masks) */
  c.lh = c.lw = (int)(4 * g);
  c.logits = st == SETOK_OK ? malloc ((size_t)c.lh * (size_t)c.lw * sizeof *c.logits) : NULL;
  c.mask = st == SETOK_OK ? malloc ((size_t)c.width * (size_t)c.height) : NULL;
  if (st == SETOK_OK && (!c.logits || !c.mask))
    st = setok_fail (err, SETOK_ERR_NOMEM, "bench: out of memory");
  if (st == SETOK_OK)
    {
      for (int i = 0; i < c.lh * c.lw; i++)
        c.logits[i] = (float)((i * 7919) % 201 - 100) / 25.0f;
      setok_sam_preprocessor_defaults (&c.pre, (int)size);
      snprintf (shape, sizeof shape, "%dx%d logits -> a %dx%d mask", c.lw, c.lh, c.width,
                c.height);
      double t = bench_time_calls (b, run_postprocess, &c, err);
      if (t < 0)
        st = err->status;
      else
        row (b, "mask", shape, t, 0, 0);
    }
  if (st == SETOK_OK)
    bench_memory_row (b, mem_weights, (double)arena.capacity, bench_memory_now (b) - mem0);
  free (c.logits);
  free (c.mask);
  setok_arena_destroy (&arena);
  setok_tensor_free (&pixels);
  setok_tensor_free (&emb);
  setok_mask_decoder_free (c.dec);
  setok_sam_vision_free (c.enc);
  return st;
}
