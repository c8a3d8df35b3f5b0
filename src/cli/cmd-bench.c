/* cmd-bench.c — `setok bench ops`: speed of the engine's core ops on one
 * backend, next to the BLAS / cuBLAS call it wraps. Prints a table, or JSON
 * with --json. Timings are batches of calls with one synchronize per batch,
 * doubled until a batch lasts --min-time seconds. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench-direct.h"
#include "bench.h"
#include "cli.h"
#include "setok/models/llama.h"
#include "setok/models/setok.h"
#include "setok/models/vit.h"
#include "setok/ops.h"
#include "setok/quant.h"

static void
usage (FILE *out)
{
  fprintf (out, "Usage: setok bench ops [--device cpu|cuda] [--dtype f32|f16|bf16 | --weights Q]\n"
                "                       [--threads N] [--min-time SECONDS] [--quick] [--json]\n\n"
                "Measures matmul at LLM-like shapes (next to a direct cblas_sgemm or cuBLAS\n"
                "call), attention (prefill and decode), and layernorm / rmsnorm bandwidth.\n"
                "--quick uses smaller shapes. Default dtype: f32 on cpu, f16 on cuda. On the\n"
                "CPU --dtype or --weights (q8, q4) is the weight matrix's format, and each\n"
                "matmul also reports its relative error against the f32 product.\n\n"
                "       setok bench vision [--device D] [--dtype T] [--quick] [--json]\n\n"
                "Times one forward of a CLIP ViT-L/14-336 vision tower (--quick: ViT-B/16-224)\n"
                "with random weights at batch 1, in ms and effective TFLOP/s.\n\n"
                "       setok bench cluster [--threads N] [--quick] [--json]\n\n"
                "Times SeTok clustering (dpc, fixed, soft) of 576 x 1024 patch features\n"
                "(--quick: 256 x 768) on the host, where clustering runs.\n\n"
                "       setok bench llm [--device D] [--dtype T | --weights Q] [--quick] [--json]\n\n"
                "Prefill (64 and 616 tokens) and decode (32 steps after a 616-token prefill)\n"
                "speed of a LLaMA-7B-shaped decoder with random weights made in memory\n"
                "(--quick: hidden 512, 4 layers), its memory (weights + a 2048-position cache\n"
                "+ arena, and the process's peak resident size) and, on the CPU, decode as a\n"
                "share of the memory-bandwidth limit (all weights are read for each token).\n"
                "On the CPU, activations are f32 and --dtype (or --weights q8 / q4) is the\n"
                "weight matrices' format.\n\n"
                "       setok bench membw [--threads N] [--quick]\n\n"
                "Memory read bandwidth: threads summing a 2 GiB buffer (--quick: 1 GiB).\n\n"
                "       setok bench unet [--device D] [--dtype T] [--quick] [--json]\n\n"
                "Iterations per second of a Stable-Diffusion-1.5-shaped U-Net with random\n"
                "weights made on the device, at 64 x 64 latents (512 x 512 pixels) and batch 2\n"
                "(classifier-free guidance), the SD-1.5 VAE decode of one 64 x 64 latent, and\n"
                "their memory (--quick: a small U-Net and VAE at 16 x 16 latents).\n\n"
                "       setok bench sam [--device D] [--dtype T | --weights Q] [--quick] [--json]\n\n"
                "SAM's ViT-B image encoder at 1024 x 1024 with random weights made in memory,\n"
                "the prompt encoder + mask decoder per click on its image embedding (1 point;\n"
                "3 masks; 2 points and a box), a mask drawn at 1920 x 1080, and their memory\n"
                "(--quick: a small encoder at 512 x 512).\n");
}

/* Seconds per call, or a negative number with err set. */
double
bench_time_calls (bench *b, bench_fn fn, void *ctx, setok_error *err)
{
  if (fn (b, ctx, err) != SETOK_OK || setok_backend_synchronize (b->be, err) != SETOK_OK)
    return -1.0;
  for (int reps = 1;; reps *= 2)
    {
      double t0 = bench_now ();
      for (int i = 0; i < reps; i++)
        if (fn (b, ctx, err) != SETOK_OK)
          return -1.0;
      if (setok_backend_synchronize (b->be, err) != SETOK_OK)
        return -1.0;
      double t = bench_now () - t0;
      if (t >= b->min_time || reps >= (1 << 20))
        return t / reps;
    }
}

static void
add_row (bench *b, const char *op, const char *shape, double seconds, double flops, double bytes,
         double direct_seconds, const char *direct_name)
{
  double gflops = flops > 0 ? flops / seconds * 1e-9 : 0.0;
  double gbs = bytes > 0 ? bytes / seconds * 1e-9 : 0.0;
  if (b->json)
    {
      cJSON *r = cJSON_CreateObject ();
      cJSON_AddStringToObject (r, "op", op);
      cJSON_AddStringToObject (r, "shape", shape);
      cJSON_AddNumberToObject (r, "ms", seconds * 1e3);
      if (flops > 0)
        cJSON_AddNumberToObject (r, "gflops", gflops);
      if (bytes > 0)
        cJSON_AddNumberToObject (r, "gb_per_s", gbs);
      if (direct_seconds > 0)
        {
          cJSON_AddStringToObject (r, "direct", direct_name);
          cJSON_AddNumberToObject (r, "direct_ms", direct_seconds * 1e3);
          cJSON_AddNumberToObject (r, "direct_gflops", flops / direct_seconds * 1e-9);
        }
      cJSON_AddItemToArray (b->rows, r);
      return;
    }
  char rate[32] = "", direct[64] = "";
  if (flops > 0)
    snprintf (rate, sizeof rate, "%9.1f GFLOP/s", gflops);
  else if (bytes > 0)
    snprintf (rate, sizeof rate, "%9.1f GB/s", gbs);
  if (direct_seconds > 0)
    snprintf (direct, sizeof direct, "%s %9.1f GFLOP/s (%5.1f%%)", direct_name,
              flops / direct_seconds * 1e-9, 100.0 * direct_seconds / seconds);
  printf ("%-10s %-28s %10.3f ms %s  %s\n", op, shape, seconds * 1e3, rate, direct);
  fflush (stdout);
}

/* A device tensor filled with a deterministic pattern in [-1, 1). */
static setok_status
make_tensor (bench *b, setok_tensor *t, int ndim, const int64_t *shape, setok_error *err)
{
  uint32_t s = 12345u;
  return setok_tensor_alloc_random (t, b->be, b->dtype, ndim, shape, 0.0f, 1.0f, &s, err);
}

typedef struct op_ctx
{
  setok_tensor *y, *a, *b, *c;
  float eps;
  bool causal;
  setok_op op;
} op_ctx;

static setok_status
run_linear (bench *b, void *ctx, setok_error *err)
{
  op_ctx *c = ctx;
  return setok_linear (b->be, c->y, c->a, c->b, NULL, err);
}

static setok_status
run_attention (bench *b, void *ctx, setok_error *err)
{
  op_ctx *c = ctx;
  return setok_attention (b->be, c->y, c->a, c->b, c->c, NULL, 0.0f, c->causal, err);
}

static setok_status
run_norm (bench *b, void *ctx, setok_error *err)
{
  op_ctx *c = ctx;
  if (c->op == SETOK_OP_LAYERNORM)
    return setok_layernorm (b->be, c->y, c->a, c->b, c->c, c->eps, err);
  return setok_rmsnorm (b->be, c->y, c->a, c->b, c->eps, err);
}

/* w32 [n, k] f32 on the host -> w [n, k] in the matrix dtype (f16, bf16, q8 or q4). */
static setok_status
weight_as (bench *b, setok_tensor *w, const setok_tensor *w32, setok_error *err)
{
  int64_t n = w32->shape[0], k = w32->shape[1];
  setok_status st = setok_tensor_alloc (w, b->be, b->matrix, 2, w32->shape, err);
  const float *src = w32->data;
  for (int64_t r = 0; st == SETOK_OK && r < n; r++)
    {
      char *row = (char *)w->data + setok_dtype_bytes (b->matrix, r * k);
      if (setok_dtype_is_quantized (b->matrix))
        setok_quantize (row, b->matrix, src + r * k, k);
      else
        for (int64_t i = 0; i < k; i++)
          setok_store_f32 (row, b->matrix, i, src[r * k + i]);
    }
  return st;
}

/* ||y - ref|| / ||ref|| of two host f32 tensors. */
static double
relative_error (const setok_tensor *y, const setok_tensor *ref)
{
  const float *a = y->data, *r = ref->data;
  double num = 0, den = 0;
  for (int64_t i = 0; i < setok_tensor_numel (ref); i++)
    {
      num += ((double)a[i] - r[i]) * ((double)a[i] - r[i]);
      den += (double)r[i] * r[i];
    }
  return den > 0 ? sqrt (num / den) : 0.0;
}

/* y = x @ W^T timed with W in the matrix dtype; on the CPU with W not in f32, also the
 * error against the f32 product, and next to it the direct sgemm or cuBLAS call. */
static setok_status
bench_matmul (bench *b, int64_t m, int64_t k, int64_t n, setok_error *err)
{
  setok_tensor x = { 0 }, w32 = { 0 }, w = { 0 }, y = { 0 }, ref = { 0 };
  bool converted = b->matrix != b->dtype && setok_backend_is_host (b->be);
  setok_status st = make_tensor (b, &x, 2, (int64_t[]){ m, k }, err);
  if (st == SETOK_OK)
    st = make_tensor (b, &w32, 2, (int64_t[]){ n, k }, err);
  if (st == SETOK_OK && converted)
    st = weight_as (b, &w, &w32, err);
  if (st == SETOK_OK)
    st = make_tensor (b, &y, 2, (int64_t[]){ m, n }, err);
  double t = -1.0, rel = -1.0;
  if (st == SETOK_OK)
    {
      op_ctx c = { .y = &y, .a = &x, .b = converted ? &w : &w32 };
      t = bench_time_calls (b, run_linear, &c, err);
      if (t < 0)
        st = err->status;
    }
  if (st == SETOK_OK && converted)
    {
      st = make_tensor (b, &ref, 2, (int64_t[]){ m, n }, err);
      if (st == SETOK_OK)
        st = setok_linear (b->be, &ref, &x, &w32, NULL, err);
      if (st == SETOK_OK)
        st = setok_backend_synchronize (b->be, err);
      if (st == SETOK_OK)
        rel = relative_error (&y, &ref);
    }
  setok_tensor_free (&x);
  setok_tensor_free (&w32);
  setok_tensor_free (&w);
  setok_tensor_free (&y);
  setok_tensor_free (&ref);
  if (st != SETOK_OK)
    return st;
  double direct = -1.0;
  const char *direct_name = "";
  if (!strcmp (setok_backend_name (b->be), "cuda"))
    {
      direct = bench_direct_cublas_gemm (m, k, n, b->dtype, 1, b->min_time);
      direct_name = "cuBLAS";
    }
  else
    {
      direct = bench_direct_cblas_sgemm (m, k, n, 1, b->min_time);
      direct_name = "cblas_sgemm";
    }
  char shape[64];
  snprintf (shape, sizeof shape, "%lldx%lldx%lld (MxKxN)", (long long)m, (long long)k,
            (long long)n);
  add_row (b, "matmul", shape, t, 2.0 * m * k * n, 0, direct, direct_name);
  if (rel >= 0 && b->json)
    cJSON_AddNumberToObject (cJSON_GetArrayItem (b->rows, cJSON_GetArraySize (b->rows) - 1),
                             "relative_error", rel);
  else if (rel >= 0)
    printf ("%-10s %-28s %s weights: relative error %.2e against f32\n", "", "",
            setok_dtype_name (b->matrix), rel);
  return SETOK_OK;
}

static setok_status
bench_attention (bench *b, int64_t heads, int64_t tq, int64_t tk, int64_t d, bool causal,
                 setok_error *err)
{
  setok_tensor q = { 0 }, k = { 0 }, v = { 0 }, y = { 0 };
  setok_status st = make_tensor (b, &q, 4, (int64_t[]){ 1, heads, tq, d }, err);
  if (st == SETOK_OK)
    st = make_tensor (b, &k, 4, (int64_t[]){ 1, heads, tk, d }, err);
  if (st == SETOK_OK)
    st = make_tensor (b, &v, 4, (int64_t[]){ 1, heads, tk, d }, err);
  if (st == SETOK_OK)
    st = make_tensor (b, &y, 4, (int64_t[]){ 1, heads, tq, d }, err);
  double t = -1.0;
  if (st == SETOK_OK)
    {
      op_ctx c = { .y = &y, .a = &q, .b = &k, .c = &v, .causal = causal };
      t = bench_time_calls (b, run_attention, &c, err);
      if (t < 0)
        st = err->status;
    }
  setok_tensor_free (&q);
  setok_tensor_free (&k);
  setok_tensor_free (&v);
  setok_tensor_free (&y);
  if (st != SETOK_OK)
    return st;
  /* QK^T and PV: 4 * Tq * Tk * D per head; causal prefill does about half */
  double flops = 4.0 * heads * tq * tk * d * (causal && tq == tk ? 0.5 : 1.0);
  char shape[64];
  snprintf (shape, sizeof shape, "H%lld Tq%lld Tk%lld D%lld%s", (long long)heads, (long long)tq,
            (long long)tk, (long long)d, causal ? " causal" : "");
  add_row (b, "attention", shape, t, flops, 0, -1.0, NULL);
  return SETOK_OK;
}

static setok_status
bench_norm (bench *b, setok_op op, int64_t rows, int64_t cols, setok_error *err)
{
  setok_tensor x = { 0 }, w = { 0 }, bias = { 0 }, y = { 0 };
  setok_status st = make_tensor (b, &x, 2, (int64_t[]){ rows, cols }, err);
  if (st == SETOK_OK)
    st = make_tensor (b, &w, 1, (int64_t[]){ cols }, err);
  if (st == SETOK_OK)
    st = make_tensor (b, &bias, 1, (int64_t[]){ cols }, err);
  if (st == SETOK_OK)
    st = make_tensor (b, &y, 2, (int64_t[]){ rows, cols }, err);
  double t = -1.0;
  if (st == SETOK_OK)
    {
      op_ctx c = { .y = &y, .a = &x, .b = &w, .c = &bias, .eps = 1e-5f, .op = op };
      t = bench_time_calls (b, run_norm, &c, err);
      if (t < 0)
        st = err->status;
    }
  setok_tensor_free (&x);
  setok_tensor_free (&w);
  setok_tensor_free (&bias);
  setok_tensor_free (&y);
  if (st != SETOK_OK)
    return st;
  char shape[64];
  snprintf (shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)cols);
  /* effective bandwidth: read x once, write y once */
  add_row (b, setok_op_name (op), shape, t, 0,
           2.0 * (double)(rows * cols) * (double)setok_dtype_size (b->dtype), -1.0, NULL);
  return SETOK_OK;
}

static setok_status
bench_ops (bench *b, bool quick, setok_error *err)
{
  static const int64_t full[][3] = {
    { 1, 4096, 4096 },    { 64, 4096, 4096 },   { 616, 4096, 4096 },
    { 616, 4096, 11008 }, { 616, 11008, 4096 },
  };
  static const int64_t small[][3] = { { 1, 1024, 1024 }, { 64, 1024, 1024 }, { 256, 1024, 2816 } };
  const int64_t (*mm)[3] = quick ? small : full;
  size_t n_mm = quick ? sizeof small / sizeof small[0] : sizeof full / sizeof full[0];
  setok_status st = SETOK_OK;
  for (size_t i = 0; i < n_mm && st == SETOK_OK; i++)
    st = bench_matmul (b, mm[i][0], mm[i][1], mm[i][2], err);
  int64_t heads = quick ? 8 : 32, t = quick ? 256 : 616, ctx = quick ? 512 : 2048;
  if (st == SETOK_OK)
    st = bench_attention (b, heads, t, t, 128, true, err);
  if (st == SETOK_OK)
    st = bench_attention (b, heads, 1, ctx, 128, false, err);
  int64_t rows = quick ? 256 : 4096, cols = quick ? 1024 : 4096;
  if (st == SETOK_OK)
    st = bench_norm (b, SETOK_OP_LAYERNORM, rows, cols, err);
  if (st == SETOK_OK)
    st = bench_norm (b, SETOK_OP_RMSNORM, rows, cols, err);
  return st;
}

/* --- vision: one forward of a CLIP vision tower with random weights --- */

typedef struct vision_ctx
{
  setok_vit *vit;
  setok_arena *arena;
  const setok_tensor *pixels;
} vision_ctx;

static setok_status
run_vision_forward (bench *b, void *ctx, setok_error *err)
{
  vision_ctx *v = ctx;
  setok_tensor last;
  size_t mark = setok_arena_mark (v->arena);
  /* last_hidden_state: every layer runs */
  setok_status st
    = setok_vit_forward (v->vit, v->arena, NULL, &last, v->pixels, -1, false, NULL, err);
  setok_arena_reset (v->arena, mark);
  return st;
}

/* Multiply-adds x 2 of one forward over t tokens (patch conv, projections, attention, MLP). */
static double
vision_flops (const setok_vit_config *c, int64_t t)
{
  double C = c->hidden_size, I = c->intermediate_size, p = c->patch_size;
  double grid = c->image_size / c->patch_size;
  double patch = 2.0 * grid * grid * C * c->num_channels * p * p;
  double layer = 2.0 * t * C * (3 * C) + 4.0 * t * t * C + 2.0 * t * C * C + 4.0 * t * C * I;
  return patch + c->num_layers * layer;
}

static setok_status
bench_vision (bench *b, bool quick, setok_error *err)
{
  setok_vit_config cfg;
  setok_vit_config_defaults (&cfg, SETOK_VIT_CLIP);
  cfg.hidden_size = quick ? 768 : 1024;
  cfg.intermediate_size = quick ? 3072 : 4096;
  cfg.num_layers = quick ? 12 : 24;
  cfg.num_heads = quick ? 12 : 16;
  cfg.patch_size = quick ? 16 : 14;
  cfg.image_size = quick ? 224 : 336;
  const char *name = quick ? "CLIP ViT-B/16-224" : "CLIP ViT-L/14-336";
  setok_vit *vit = NULL;
  setok_arena arena = { 0 };
  setok_tensor px = { 0 };
  int64_t size = cfg.image_size, tokens = 0;
  setok_status st = setok_vit_create_random (&vit, &cfg, b->be, b->dtype, b->matrix, 1, err);
  if (st == SETOK_OK)
    st = make_tensor (b, &px, 4, (int64_t[]){ 1, cfg.num_channels, size, size }, err);
  if (st == SETOK_OK)
    st = setok_arena_init (&arena, b->be, setok_vit_arena_bytes (vit, 1, size, size), err);
  double t = -1.0;
  if (st == SETOK_OK)
    {
      tokens = setok_vit_num_tokens (vit, size, size, false, NULL, NULL);
      vision_ctx c = { vit, &arena, &px };
      t = bench_time_calls (b, run_vision_forward, &c, err);
      if (t < 0)
        st = err->status;
    }
  setok_arena_destroy (&arena);
  setok_tensor_free (&px);
  setok_vit_free (vit);
  if (st != SETOK_OK)
    return st;
  double flops = vision_flops (&cfg, tokens);
  if (b->json)
    {
      cJSON *r = cJSON_CreateObject ();
      cJSON_AddStringToObject (r, "model", name);
      cJSON_AddNumberToObject (r, "batch", 1);
      cJSON_AddNumberToObject (r, "tokens", (double)tokens);
      cJSON_AddNumberToObject (r, "ms", t * 1e3);
      cJSON_AddNumberToObject (r, "gflop", flops * 1e-9);
      cJSON_AddNumberToObject (r, "tflops", flops / t * 1e-12);
      cJSON_AddItemToArray (b->rows, r);
      return SETOK_OK;
    }
  printf ("%-18s batch 1, %lld tokens, %.1f GFLOP  %10.2f ms  %7.3f TFLOP/s\n", name,
          (long long)tokens, flops * 1e-9, t * 1e3, flops / t * 1e-12);
  return SETOK_OK;
}

/* --- cluster: SeTok clustering of random patch features on the host --- */

typedef struct cluster_ctx
{
  setok_backend *cpu;
  setok_clusters *out;
  const float *features;
  int grid, d;
  setok_cluster_params params;
} cluster_ctx;

static setok_status
run_cluster (bench *b, void *ctx, setok_error *err)
{
  cluster_ctx *c = ctx;
  return setok_cluster (c->out, c->cpu, c->features, c->grid, c->grid, c->d, &c->params, true, err);
}

static setok_status
bench_cluster (bench *b, bool quick, setok_error *err)
{
  int grid = quick ? 16 : 24, d = quick ? 768 : 1024, n = grid * grid;
  setok_backend *cpu = b->be;
  setok_status st = SETOK_OK;
  if (!setok_backend_is_host (b->be))
    st = setok_backend_cpu_create (&cpu, 0, err);
  float *features = st == SETOK_OK ? malloc ((size_t)n * d * sizeof *features) : NULL;
  if (st == SETOK_OK && !features)
    st = setok_fail (err, SETOK_ERR_NOMEM, "bench: out of memory");
  /* a few hundred blobs' worth of structure: each patch near one of 12 centres */
  uint32_t s = 7u;
  for (int i = 0; st == SETOK_OK && i < n; i++)
    for (int j = 0; j < d; j++)
      {
        s = s * 1664525u + 1013904223u;
        float noise = (float)(s >> 8) / 8388608.0f - 1.0f;
        features[(size_t)i * d + j] = (float)((i % 12) * 7 % 13 == j % 13) * 2.0f + 0.3f * noise;
      }
  setok_clusters out = { 0 };
  static const setok_cluster_mode modes[]
    = { SETOK_CLUSTER_DPC, SETOK_CLUSTER_FIXED, SETOK_CLUSTER_SOFT };
  for (int m = 0; st == SETOK_OK && m < 3; m++)
    {
      cluster_ctx c = { cpu, &out, features, grid, d, setok_cluster_params_default () };
      c.params.mode = modes[m];
      c.params.max_clusters = modes[m] == SETOK_CLUSTER_SOFT ? 64 : 0;
      double t = bench_time_calls (b, run_cluster, &c, err);
      if (t < 0)
        {
          st = err->status;
          break;
        }
      char shape[64];
      snprintf (shape, sizeof shape, "%dx%d %s -> %d tokens", n, d,
                setok_cluster_mode_name (modes[m]), out.n_tokens);
      add_row (b, "cluster", shape, t, 0, 0, -1.0, NULL);
    }
  setok_clusters_free (&out);
  free (features);
  if (cpu != b->be)
    setok_backend_free (cpu);
  return st;
}

/* --- llm: prefill and decode of a LLaMA-shaped decoder with random weights --- */

enum
{
  LLM_SHORT = 64,
  LLM_LONG = 616,
  LLM_DECODE_STEPS = 32,
  LLM_CONTEXT = 2048 /* the cache a chat keeps */
};

static void
llm_config (setok_llama_config *c, bool quick)
{
  memset (c, 0, sizeof *c);
  c->hidden_size = quick ? 512 : 4096;
  c->intermediate_size = quick ? 1376 : 11008;
  c->num_layers = quick ? 4 : 32;
  c->num_heads = quick ? 8 : 32;
  c->num_kv_heads = c->num_heads;
  c->head_dim = c->hidden_size / c->num_heads;
  c->vocab_size = 32000;
  c->max_position_embeddings = 4096;
  c->rms_norm_eps = 1e-6f;
  c->rope_theta = 10000.0;
  c->rope_type = SETOK_LLAMA_ROPE_DEFAULT;
  c->rope_factor = 1.0;
}

/* Bytes of the weights and of a max_ctx cache (exact), and an upper bound on
 * the arena for T tokens (the model's own figure is used once it exists). */
static void
llm_estimate (const setok_llama_config *c, const bench *b, int64_t max_ctx, int64_t T,
              double *weights, double *cache, double *arena)
{
  double e = (double)setok_dtype_size (b->dtype);
  double C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
  double KD = (double)c->num_kv_heads * c->head_dim;
  *weights = (double)setok_llama_weight_bytes (c, b->dtype, b->matrix);
  *cache = (double)setok_dtype_size (setok_llama_kv_dtype (b->be, b->dtype, b->matrix)) * 2.0
           * c->num_layers * KD * (double)max_ctx;
  *arena = e * (double)T * (8 * C + 3 * I + V + (double)c->num_heads * (double)T);
}

static double
physical_memory (void)
{
  long pages = sysconf (_SC_PHYS_PAGES), page = sysconf (_SC_PAGESIZE);
  return pages > 0 && page > 0 ? (double)pages * (double)page : 0.0;
}

typedef struct llm_ctx
{
  setok_llama *m;
  setok_llama_cache *cache;
  setok_arena *arena;
  const setok_tensor *ids;
} llm_ctx;

/* One prefill of ctx->ids from an empty cache. */
static setok_status
run_llm_prefill (bench *b, void *ctx, setok_error *err)
{
  (void)b;
  llm_ctx *l = ctx;
  setok_tensor logits;
  size_t mark = setok_arena_mark (l->arena);
  setok_llama_cache_reset (l->cache);
  setok_status st
    = setok_llama_forward_ids (l->m, l->cache, l->arena, &logits, l->ids, true, NULL, err);
  setok_arena_reset (l->arena, mark);
  return st;
}

static setok_status
upload_ids (bench *b, setok_tensor *t, int64_t n, int vocab, setok_error *err)
{
  int32_t *host = malloc ((size_t)n * sizeof *host);
  if (!host)
    return setok_fail (err, SETOK_ERR_NOMEM, "bench: out of memory");
  uint32_t s = 99u;
  for (int64_t i = 0; i < n; i++)
    {
      s = s * 1664525u + 1013904223u;
      host[i] = (int32_t)((s >> 8) % (uint32_t)vocab);
    }
  setok_status st = setok_tensor_alloc (t, b->be, SETOK_I32, 1, (int64_t[]){ n }, err);
  if (st == SETOK_OK)
    st = setok_tensor_upload (t, host, err);
  free (host);
  return st;
}

static void
llm_row (bench *b, const char *phase, int64_t tokens, int64_t context, double seconds)
{
  double tps = (double)tokens / seconds;
  if (b->json)
    {
      cJSON *r = cJSON_CreateObject ();
      cJSON_AddStringToObject (r, "phase", phase);
      cJSON_AddNumberToObject (r, "tokens", (double)tokens);
      cJSON_AddNumberToObject (r, "context", (double)context);
      cJSON_AddNumberToObject (r, "ms", seconds * 1e3);
      cJSON_AddNumberToObject (r, "tokens_per_s", tps);
      cJSON_AddItemToArray (b->rows, r);
      return;
    }
  char what[64];
  snprintf (what, sizeof what, "%lld tokens, context %lld", (long long)tokens, (long long)context);
  printf ("%-10s %-28s %10.2f ms %10.1f tokens/s\n", phase, what, seconds * 1e3, tps);
  fflush (stdout);
}

static setok_status
bench_llm (bench *b, bool quick, setok_error *err)
{
  setok_llama_config cfg;
  llm_config (&cfg, quick);
  const char *name = quick ? "LLaMA-shaped (--quick)" : "LLaMA-7B-shaped";
  int64_t max_ctx = LLM_CONTEXT;
  double wbytes, cbytes, abytes;
  llm_estimate (&cfg, b, max_ctx, LLM_LONG, &wbytes, &cbytes, &abytes);
  double phys = physical_memory ();
  if (setok_backend_is_host (b->be) && phys > 0 && wbytes + cbytes + abytes > 0.8 * phys)
    {
      char need[32], have[32];
      return setok_fail (err, SETOK_ERR_UNSUPPORTED,
                         "bench llm: the %s model needs about %s in %s (weights + cache + "
                         "arena), more than 80%% of this machine's %s of memory; try --quick "
                         "or --device cuda",
                         name, cli_format_bytes (wbytes + cbytes + abytes, need, sizeof need),
                         setok_dtype_name (b->matrix), cli_format_bytes (phys, have, sizeof have));
    }
  setok_llama *m = NULL;
  setok_llama_cache *cache = NULL;
  setok_arena arena = { 0 };
  setok_tensor ids_short = { 0 }, ids_long = { 0 }, ids_one = { 0 };
  double t0 = bench_now ();
  setok_status st
    = setok_llama_create_random (&m, &cfg, b->be, b->dtype, b->matrix, 1, err);
  double create_s = bench_now () - t0;
  if (st == SETOK_OK)
    st = setok_llama_cache_new (&cache, m, max_ctx, err);
  if (st == SETOK_OK)
    {
      abytes = (double)setok_llama_arena_bytes (m, LLM_LONG);
      st = setok_arena_init (&arena, b->be, setok_llama_arena_bytes (m, LLM_LONG), err);
    }
  if (st == SETOK_OK)
    st = upload_ids (b, &ids_short, LLM_SHORT, cfg.vocab_size, err);
  if (st == SETOK_OK)
    st = upload_ids (b, &ids_long, LLM_LONG, cfg.vocab_size, err);
  if (st == SETOK_OK)
    st = upload_ids (b, &ids_one, 1, cfg.vocab_size, err);
  if (st == SETOK_OK && !b->json)
    printf ("%s: hidden %d, %d layers, %d heads, intermediate %d, vocab %d "
            "(random weights made in %.1f s)\n",
            name, cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size,
            cfg.vocab_size, create_s);

  /* prefill: each call empties the cache first */
  const setok_tensor *prefills[] = { &ids_short, &ids_long };
  for (int i = 0; i < 2 && st == SETOK_OK; i++)
    {
      llm_ctx c = { m, cache, &arena, prefills[i] };
      double t = bench_time_calls (b, run_llm_prefill, &c, err);
      if (t < 0)
        st = err->status;
      else
        llm_row (b, "prefill", setok_tensor_numel (prefills[i]), 0, t);
    }

  /* decode: LLM_DECODE_STEPS single tokens after a LLM_LONG prefill */
  if (st == SETOK_OK)
    {
      llm_ctx c = { m, cache, &arena, &ids_long };
      st = run_llm_prefill (b, &c, err);
    }
  if (st == SETOK_OK)
    st = setok_backend_synchronize (b->be, err);
  double t = bench_now ();
  for (int i = 0; i < LLM_DECODE_STEPS && st == SETOK_OK; i++)
    {
      setok_tensor logits;
      size_t mark = setok_arena_mark (&arena);
      st = setok_llama_forward_ids (m, cache, &arena, &logits, &ids_one, true, NULL, err);
      setok_arena_reset (&arena, mark);
    }
  if (st == SETOK_OK)
    st = setok_backend_synchronize (b->be, err);
  double decode_s = bench_now () - t;
  if (st == SETOK_OK)
    llm_row (b, "decode", LLM_DECODE_STEPS, LLM_LONG, decode_s);
  /* before the bandwidth measurement's buffer adds to it */
  double resident = st == SETOK_OK ? bench_memory_now (b) : 0;
  /* what a decoded token must read: every weight, and the cache up to its position */
  double kv_read = cbytes / (double)max_ctx * (LLM_LONG + LLM_DECODE_STEPS / 2.0);
  double bw = st == SETOK_OK && setok_backend_is_host (b->be)
                ? bench_read_bandwidth (b->threads, (size_t)1 << 30) : -1.0;
  if (bw > 0)
    {
      double limit = bw * 1e9 / (wbytes + kv_read), got = LLM_DECODE_STEPS / decode_s;
      if (b->json)
        {
          cJSON *r = cJSON_CreateObject ();
          cJSON_AddStringToObject (r, "phase", "decode-bound");
          cJSON_AddNumberToObject (r, "read_gb_per_s", bw);
          cJSON_AddNumberToObject (r, "bytes_per_token", wbytes + kv_read);
          cJSON_AddNumberToObject (r, "limit_tokens_per_s", limit);
          cJSON_AddNumberToObject (r, "share_of_limit", got / limit);
          cJSON_AddItemToArray (b->rows, r);
        }
      else
        printf ("bound      %.1f GB/s read, %.2f GB a token: at most %.2f tokens/s; decode "
                "reached %.0f%%\n",
                bw, (wbytes + kv_read) / 1e9, limit, 100.0 * got / limit);
    }

  if (st == SETOK_OK)
    {
      double peak = wbytes + cbytes + abytes;
      if (b->json)
        {
          cJSON *r = cJSON_CreateObject ();
          cJSON_AddStringToObject (r, "phase", "memory");
          cJSON_AddStringToObject (r, "model", name);
          cJSON_AddNumberToObject (r, "weights_bytes", wbytes);
          cJSON_AddNumberToObject (r, "cache_bytes", cbytes);
          cJSON_AddNumberToObject (r, "arena_bytes", abytes);
          cJSON_AddNumberToObject (r, "peak_bytes", peak);
          cJSON_AddNumberToObject (r, "resident_peak_bytes", resident);
          cJSON_AddItemToArray (b->rows, r);
        }
      else
        {
          char w[32], c[32], a[32], p[32], r[32];
          printf ("memory     weights %s + cache %s (%lld positions) + arena %s = %s; "
                  "%s %s\n",
                  cli_format_bytes (wbytes, w, sizeof w), cli_format_bytes (cbytes, c, sizeof c),
                  (long long)max_ctx, cli_format_bytes (abytes, a, sizeof a),
                  cli_format_bytes (peak, p, sizeof p),
                  setok_backend_is_host (b->be) ? "process peak resident" : "device in use",
                  cli_format_bytes (resident, r, sizeof r));
        }
    }
  setok_tensor_free (&ids_short);
  setok_tensor_free (&ids_long);
  setok_tensor_free (&ids_one);
  setok_arena_destroy (&arena);
  setok_llama_cache_free (cache);
  setok_llama_free (m);
  return st;
}

static setok_status
bench_membw (bench *b, bool quick, setok_error *err)
{
  size_t bytes = (size_t)(quick ? 1 : 2) << 30;
  double gbps = bench_read_bandwidth (b->threads, bytes);
  if (gbps < 0)
    return setok_fail (err, SETOK_ERR_NOMEM, "bench membw: cannot allocate %zu bytes", bytes);
  if (b->json)
    {
      cJSON *r = cJSON_CreateObject ();
      cJSON_AddNumberToObject (r, "buffer_bytes", (double)bytes);
      cJSON_AddNumberToObject (r, "read_gb_per_s", gbps);
      cJSON_AddItemToArray (b->rows, r);
    }
  else
    printf ("membw      read %.1f GB/s (%zu MiB buffer, best of 5)\n", gbps, bytes >> 20);
  return SETOK_OK;
}

int
cmd_bench (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "device", required_argument, NULL, 'd' },  { "dtype", required_argument, NULL, 't' },
    { "weights", required_argument, NULL, 'w' },
    { "threads", required_argument, NULL, 'j' }, { "min-time", required_argument, NULL, 'm' },
    { "quick", no_argument, NULL, 'q' },         { "json", no_argument, NULL, 'J' },
    { "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
  };
  const char *device = "cpu", *dtype_name = NULL, *weights_name = NULL;
  int threads = 0;
  double min_time = 0.3;
  bool quick = false, json = false;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    {
      switch (c)
        {
          case 'd':
            device = optarg;
            break;
          case 't':
            dtype_name = optarg;
            break;
          case 'w':
            weights_name = optarg;
            break;
          case 'j':
            threads = atoi (optarg);
            break;
          case 'm':
            min_time = atof (optarg);
            if (!(min_time > 0.0 && min_time < 60.0))
              return cli_usage_error ("bench", "--min-time must be between 0 and 60 seconds");
            break;
          case 'q':
            quick = true;
            break;
          case 'J':
            json = true;
            break;
          case 'h':
            usage (stdout);
            return CLI_EXIT_OK;
          default:
            return cli_usage_error ("bench", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
  static const struct
  {
    const char *name;
    setok_status (*run) (bench *b, bool quick, setok_error *err);
  } suites[] = { { "ops", bench_ops },
                 { "vision", bench_vision },
                 { "cluster", bench_cluster },
                 { "llm", bench_llm },
                 { "unet", bench_unet },
                 { "sam", bench_sam },
                 { "membw", bench_membw } };
  int which = -1;
  for (int i = 0; optind == argc - 1 && i < (int)(sizeof suites / sizeof suites[0]); i++)
    if (!strcmp (argv[optind], suites[i].name))
      which = i;
  if (which < 0)
    return cli_usage_error ("bench", "expected a suite name: ops, vision, cluster, llm, unet, "
                                     "sam, membw");
  const char *suite = argv[optind];

  setok_error err = { 0 };
  bench b = { .min_time = min_time, .json = json, .threads = threads };
  if (setok_backend_create_by_name (&b.be, device, threads, &err) != SETOK_OK)
    return cli_report (&err);
  bool gpu = !setok_backend_is_host (b.be);
  setok_dtype dt = gpu ? SETOK_F16 : SETOK_F32, wq = SETOK_DTYPE_COUNT;
  if (dtype_name && (!setok_dtype_from_name (dtype_name, &dt) || !setok_dtype_is_float (dt)))
    {
      setok_backend_free (b.be);
      return cli_usage_error ("bench", "--dtype must be f32, f16 or bf16");
    }
  if (weights_name
      && (!setok_dtype_from_name (weights_name, &wq) || !setok_dtype_is_quantized (wq) || gpu))
    {
      setok_backend_free (b.be);
      return cli_usage_error ("bench", "--weights must be q8 or q4, on the cpu");
    }
  /* the CPU keeps activations in f32 and the weight matrices in the dtype asked for */
  b.dtype = gpu ? dt : SETOK_F32;
  b.matrix = wq != SETOK_DTYPE_COUNT ? wq : dt;
  cJSON *root = NULL;
  if (json)
    {
      root = cJSON_CreateObject ();
      cJSON_AddStringToObject (root, "suite", suite);
      cJSON_AddStringToObject (root, "device", setok_backend_description (b.be));
      cJSON_AddStringToObject (root, "dtype", setok_dtype_name (b.dtype));
      cJSON_AddStringToObject (root, "weights", setok_dtype_name (b.matrix));
      b.rows = cJSON_AddArrayToObject (root, "results");
    }
  else
    {
      printf ("setok bench %s — %s, %s activations, %s weights\n", suite,
              setok_backend_description (b.be), setok_dtype_name (b.dtype),
              setok_dtype_name (b.matrix));
    }
  setok_status st = suites[which].run (&b, quick, &err);
  setok_backend_free (b.be);
  if (st != SETOK_OK)
    {
      cJSON_Delete (root);
      return cli_report (&err);
    }
  return json ? cli_print_json (root) : CLI_EXIT_OK;
}
