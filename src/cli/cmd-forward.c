/* cmd-forward.c — `setok forward`: run one op (or, as models land, one
 * component) on named tensors from a safetensors file and write its named
 * outputs. This is the hook the reference tests use to compare the engine
 * with PyTorch, transformers and diffusers (DESIGN §10). */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "forward.h"
#include "setok/config.h"
#include "setok/models/llama.h"
#include "setok/models/vit.h"
#include "setok/ops.h"
#include "setok/safetensors.h"
#include "setok/weights.h"

static void
usage (FILE *out)
{
  fprintf (out, "Usage: setok forward --op NAME --inputs IN.safetensors --outputs OUT.safetensors\n"
                "                     [--device cpu|cuda|cpu-reference] [--dtype f32|f16|bf16]\n"
                "                     [--set KEY=VALUE]...\n"
                "       setok forward COMPONENT_DIR --inputs IN --outputs OUT [--device D]\n\n"
                "Runs one op on the tensors of IN and writes its outputs to OUT (as f32, or i32\n"
                "for indices). Input names per op:\n"
                "  matmul a b [bias]      add|mul a b          scale x\n"
                "  layernorm x [weight] [bias]   rmsnorm x [weight]   groupnorm x [weight] [bias]\n"
                "  softmax x [mask]       gelu|gelu_tanh|quick_gelu|silu|relu x\n"
                "  swiglu|geglu gate value | x (split form)     rope x positions [inv_freq]\n"
                "  attention q k v [mask] conv2d|conv_transpose2d x weight [bias]\n"
                "  upsample_nearest x     get_rows weight ids  resize_bicubic x\n"
                "  argmax x               topk x (outputs values, indices)   copy x\n"
                "Outputs are named y, except topk. Index inputs may be I32 or I64.\n"
                "Parameters (--set): alpha trans_a trans_b scale bias eps groups causal theta\n"
                "  freq_scale rot_dims stride pad factor align_corners size=HxW k\n"
                "  perm=0,2,1,3 (copy) dtype=f32|f16|bf16 (copy output)\n\n"
                "Component folders are run by the model that their config.json names:\n"
                "  vision (CLIP, SigLIP, LLaVA's tower)  pixel_values [B, 3, H, W] ->\n"
                "    hidden_states (HF hidden_states[feature_layer]), last_hidden_state;\n"
                "    --set feature_layer=N|last (default -1, LLaVA: vision_feature_layer),\n"
                "    --set drop_cls=0|1 (default 0, LLaVA: strategy 'default').\n"
                "  vae (AutoencoderKL)  sample [B, 3, H, W] -> latent_mean, latent_logvar, sample\n"
                "    (the mean decoded); latent_sample [B, 4, h, w] -> sample (decoded);\n"
                "    --set tile=N decodes in N-pixel tiles (default 0: whole).\n"
                "  unet (UNet2DConditionModel)  sample [B, C, h, w], timestep [B], encoder_hidden_states\n"
                "    [B, S, D] -> sample (the noise prediction).\n"
                "  llm (LlamaForCausalLM)  input_ids [1, T] or inputs_embeds [1, T, hidden],\n"
                "    decode_ids [1, S]? (fed one at a time through the KV cache) ->\n"
                "    logits [1, T, vocab], decode_logits [1, S, vocab].\n"
                "  sam (SamModel)  pixel_values [B, 3, S, S] -> image_embeddings [B, C, S/16, S/16]\n"
                "    (the image encoder); image_embeddings [B, C, h, w] (or pixel_values with a\n"
                "    prompt), input_points [B, P, 2]?, input_labels [B, P]?, input_boxes [B, 4]?,\n"
                "    input_masks [B, 1, 4h, 4w]?, sparse_embeddings [B, E, C]? -> pred_masks\n"
                "    [B, M, 4h, 4w], iou_scores [B, M]; --set multimask=0|1 (default 1).\n"
                "  mapper (Blip2QFormerModel)  encoder_hidden_states [B, S, E], query_embeds\n"
                "    [B, Q, hidden]? (default: the folder's query_tokens), encoder_attention_mask\n"
                "    [B, S]? (float, 1 keep / 0 hide) -> last_hidden_state [B, Q, hidden].\n"
                "  clip_text (CLIPTextModel; a CLIPModel folder with input_ids)  input_ids [B, T] ->\n"
                "    last_hidden_state [B, T, hidden], pooler_output [B, hidden].\n");
}

static int
parse_dtype (const char *s, setok_dtype *out)
{
  for (int d = 0; d < SETOK_I32; d++)
    if (!strcmp (s, setok_dtype_name ((setok_dtype)d)))
      {
        *out = (setok_dtype)d;
        return 0;
      }
  return -1;
}

static int
parse_param (params *p, const char *kv)
{
  const char *eq = strchr (kv, '=');
  if (!eq)
    return cli_usage_error ("forward", "--set expects KEY=VALUE, got '%s'", kv);
  size_t klen = (size_t)(eq - kv);
  const char *v = eq + 1;
  char *end = NULL;
  double num = strtod (v, &end);
  bool is_num = end && end != v && *end == '\0';
#define KEY(name) (klen == strlen (name) && !strncmp (kv, name, klen))
  struct
  {
    const char *name;
    float *f;
    int *i;
  } table[] = {
    { "alpha", &p->alpha, NULL },
    { "scale", &p->scale, NULL },
    { "bias", &p->bias, NULL },
    { "eps", &p->eps, NULL },
    { "theta", &p->theta, NULL },
    { "freq_scale", &p->freq_scale, NULL },
    { "trans_a", NULL, &p->trans_a },
    { "trans_b", NULL, &p->trans_b },
    { "groups", NULL, &p->groups },
    { "causal", NULL, &p->causal },
    { "rot_dims", NULL, &p->rot_dims },
    { "stride", NULL, &p->stride },
    { "pad", NULL, &p->pad },
    { "factor", NULL, &p->factor },
    { "align_corners", NULL, &p->align_corners },
    { "k", NULL, &p->k },
    { "feature_layer", NULL, &p->feature_layer },
    { "drop_cls", NULL, &p->drop_cls },
    { "tile", NULL, &p->tile },
    { "multimask", NULL, &p->multimask },
  };
  if (KEY ("feature_layer") && !strcmp (v, "last"))
    {
      p->feature_layer = SETOK_VIT_LAST_HIDDEN_STATE;
      return 0;
    }
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    {
      if (!KEY (table[i].name))
        continue;
      if (!is_num)
        return cli_usage_error ("forward", "parameter %s needs a number, got '%s'", table[i].name,
                                v);
      if (table[i].f)
        *table[i].f = (float)num;
      else if (num != (double)(int)num)
        return cli_usage_error ("forward", "parameter %s needs an integer, got '%s'", table[i].name,
                                v);
      else
        *table[i].i = (int)num;
      return 0;
    }
  if (KEY ("size"))
    {
      long long h, w;
      char extra;
      if (sscanf (v, "%lldx%lld%c", &h, &w, &extra) != 2 || h <= 0 || w <= 0 || h > 1 << 20
          || w > 1 << 20)
        return cli_usage_error ("forward", "size expects HxW, got '%s'", v);
      p->size_h = h;
      p->size_w = w;
      return 0;
    }
  if (KEY ("perm"))
    {
      int n = 0;
      for (const char *s = v; *s && n < SETOK_MAX_DIMS; n++)
        {
          char *e;
          long a = strtol (s, &e, 10);
          if (e == s || a < 0 || a >= SETOK_MAX_DIMS)
            return cli_usage_error ("forward", "perm expects axes like 0,2,1,3, got '%s'", v);
          p->perm[n] = (int)a;
          s = *e == ',' ? e + 1 : e;
          if (*e && *e != ',')
            return cli_usage_error ("forward", "perm expects axes like 0,2,1,3, got '%s'", v);
        }
      p->has_perm = n;
      return 0;
    }
  if (KEY ("dtype"))
    {
      if (parse_dtype (v, &p->out_dtype))
        return cli_usage_error ("forward", "dtype must be f32, f16 or bf16, got '%s'", v);
      p->has_out_dtype = 1;
      return 0;
    }
#undef KEY
  return cli_usage_error ("forward", "unknown parameter '%.*s'", (int)klen, kv);
}

/* Input names of each op, in src order; "a|b" accepts either name. */
static const char *const op_inputs[SETOK_OP_COUNT][4] = {
  [SETOK_OP_MATMUL] = { "a", "b", "bias" },
  [SETOK_OP_ADD] = { "a", "b" },
  [SETOK_OP_MUL] = { "a", "b" },
  [SETOK_OP_SCALE] = { "x" },
  [SETOK_OP_LAYERNORM] = { "x", "weight", "bias" },
  [SETOK_OP_RMSNORM] = { "x", "weight" },
  [SETOK_OP_GROUPNORM] = { "x", "weight", "bias" },
  [SETOK_OP_SOFTMAX] = { "x", "mask" },
  [SETOK_OP_GELU] = { "x" },
  [SETOK_OP_GELU_TANH] = { "x" },
  [SETOK_OP_QUICK_GELU] = { "x" },
  [SETOK_OP_SILU] = { "x" },
  [SETOK_OP_RELU] = { "x" },
  [SETOK_OP_SWIGLU] = { "gate|x", "value" },
  [SETOK_OP_GEGLU] = { "gate|x", "value" },
  [SETOK_OP_ROPE] = { "x", "positions", "inv_freq" },
  [SETOK_OP_ATTENTION] = { "q", "k", "v", "mask" },
  [SETOK_OP_CONV2D] = { "x", "weight", "bias" },
  [SETOK_OP_CONV_TRANSPOSE2D] = { "x", "weight", "bias" },
  [SETOK_OP_UPSAMPLE_NEAREST] = { "x" },
  [SETOK_OP_GET_ROWS] = { "weight", "ids" },
  [SETOK_OP_RESIZE_BICUBIC] = { "x" },
  [SETOK_OP_ARGMAX] = { "x" },
  [SETOK_OP_TOPK] = { "x" },
  [SETOK_OP_COPY] = { "x" },
};

/* How many of an op's leading inputs are required. */
static const int op_required[SETOK_OP_COUNT] = {
  [SETOK_OP_MATMUL] = 2,
  [SETOK_OP_ADD] = 2,
  [SETOK_OP_MUL] = 2,
  [SETOK_OP_SCALE] = 1,
  [SETOK_OP_LAYERNORM] = 1,
  [SETOK_OP_RMSNORM] = 1,
  [SETOK_OP_GROUPNORM] = 1,
  [SETOK_OP_SOFTMAX] = 1,
  [SETOK_OP_GELU] = 1,
  [SETOK_OP_GELU_TANH] = 1,
  [SETOK_OP_QUICK_GELU] = 1,
  [SETOK_OP_SILU] = 1,
  [SETOK_OP_RELU] = 1,
  [SETOK_OP_SWIGLU] = 1,
  [SETOK_OP_GEGLU] = 1,
  [SETOK_OP_ROPE] = 2,
  [SETOK_OP_ATTENTION] = 3,
  [SETOK_OP_CONV2D] = 2,
  [SETOK_OP_CONV_TRANSPOSE2D] = 2,
  [SETOK_OP_UPSAMPLE_NEAREST] = 1,
  [SETOK_OP_GET_ROWS] = 2,
  [SETOK_OP_RESIZE_BICUBIC] = 1,
  [SETOK_OP_ARGMAX] = 1,
  [SETOK_OP_TOPK] = 1,
  [SETOK_OP_COPY] = 1,
};

static bool
is_index_input (setok_op op, int i)
{
  return (op == SETOK_OP_ROPE && i == 1) || (op == SETOK_OP_GET_ROWS && i == 1);
}

static const setok_st_tensor *
find_input (const setok_safetensors *st, const char *names)
{
  char buf[64];
  snprintf (buf, sizeof buf, "%s", names);
  for (char *save = NULL, *n = strtok_r (buf, "|", &save); n; n = strtok_r (NULL, "|", &save))
    {
      const setok_st_tensor *t = setok_safetensors_find (st, n);
      if (t)
        return t;
    }
  return NULL;
}

setok_status
forward_load_input (setok_tensor *out, const setok_st_tensor *t, bool index, setok_dtype dtype,
                    setok_backend *be, setok_error *err)
{
  if (t->ndim > SETOK_MAX_DIMS)
    return setok_fail (err, SETOK_ERR_INPUT, "%s: tensor '%s' has %d dims, at most %d", t->file,
                       t->name, t->ndim, SETOK_MAX_DIMS);
  return setok_weights_load (out, t, be, index ? SETOK_I32 : dtype, err);
}

/* The output shape of op on validated-looking inputs; the op itself checks
 * the details. Returns ndim, or -1 with err set. */
static int
output_shape (setok_op op, const params *p, const setok_tensor *const *s, int64_t *shape,
              setok_error *err)
{
  const setok_tensor *x = s[0];
  int nd = x->ndim;
  memcpy (shape, x->shape, sizeof x->shape);
  switch (op)
    {
      case SETOK_OP_MATMUL:
        {
          const setok_tensor *b = s[1];
          if (nd < 2 || !b || b->ndim < 2)
            break;
          shape[nd - 2] = p->trans_a ? x->shape[nd - 1] : x->shape[nd - 2];
          shape[nd - 1] = p->trans_b ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
          return nd;
        }
      case SETOK_OP_SWIGLU:
      case SETOK_OP_GEGLU:
        if (!s[1] && nd >= 1)
          shape[nd - 1] /= 2;
        return nd;
      case SETOK_OP_ATTENTION:
        if (nd == 4 && s[2] && s[2]->ndim == 4)
          shape[3] = s[2]->shape[3];
        return nd;
      case SETOK_OP_CONV2D:
      case SETOK_OP_CONV_TRANSPOSE2D:
        {
          const setok_tensor *w = s[1];
          if (nd != 4 || !w || w->ndim != 4)
            break;
          int st = p->stride;
          bool tr = op == SETOK_OP_CONV_TRANSPOSE2D;
          shape[1] = tr ? w->shape[1] : w->shape[0];
          for (int i = 2; i < 4; i++)
            shape[i] = tr ? (x->shape[i] - 1) * st + w->shape[i]
                          : (x->shape[i] + 2 * p->pad - w->shape[i]) / st + 1;
          return 4;
        }
      case SETOK_OP_UPSAMPLE_NEAREST:
        if (nd != 4)
          break;
        shape[2] *= p->factor;
        shape[3] *= p->factor;
        return 4;
      case SETOK_OP_GET_ROWS:
        {
          const setok_tensor *ids = s[1];
          if (!ids || x->ndim != 2 || ids->ndim > 3)
            break;
          memcpy (shape, ids->shape, sizeof ids->shape);
          shape[ids->ndim] = x->shape[1];
          return ids->ndim + 1;
        }
      case SETOK_OP_RESIZE_BICUBIC:
        if (nd != 4 || !p->size_h)
          break;
        shape[2] = p->size_h;
        shape[3] = p->size_w;
        return 4;
      case SETOK_OP_ARGMAX:
        return nd - 1;
      case SETOK_OP_TOPK:
        if (nd >= 1)
          shape[nd - 1] = p->k;
        return nd;
      case SETOK_OP_COPY:
        if (p->has_perm)
          {
            if (p->has_perm != nd)
              break;
            for (int i = 0; i < nd; i++)
              shape[i] = x->shape[p->perm[i]];
          }
        return nd;
      default:
        return nd;
    }
  setok_fail (err, SETOK_ERR_INPUT, "%s: inputs have the wrong number of dims%s",
              setok_op_name (op),
              op == SETOK_OP_RESIZE_BICUBIC ? " or --set size=HxW is missing" : "");
  return -1;
}

setok_status
forward_write_outputs (const char *path, setok_tensor *const *outs, const char *const *names,
                       int count, setok_error *err)
{
  setok_st_entry entries[FORWARD_MAX_OUTPUTS];
  void *host[FORWARD_MAX_OUTPUTS] = { NULL };
  setok_status st = SETOK_OK;
  if (count > FORWARD_MAX_OUTPUTS)
    return setok_fail (err, SETOK_ERR_RUNTIME, "%d outputs, at most %d", count,
                       FORWARD_MAX_OUTPUTS);
  for (int i = 0; i < count && st == SETOK_OK; i++)
    {
      const setok_tensor *t = outs[i];
      int64_t n = setok_tensor_numel (t);
      void *raw = malloc ((size_t)(n ? n : 1) * setok_dtype_size (t->dtype));
      host[i] = malloc ((size_t)(n ? n : 1) * 4);
      if (!raw || !host[i])
        {
          free (raw);
          st = setok_fail (err, SETOK_ERR_NOMEM, "out of memory writing outputs");
          break;
        }
      st = setok_tensor_download (raw, t, err);
      for (int64_t j = 0; j < n && st == SETOK_OK; j++)
        {
          if (t->dtype == SETOK_I32)
            ((int32_t *)host[i])[j] = ((int32_t *)raw)[j];
          else
            ((float *)host[i])[j] = setok_load_f32 (raw, t->dtype, j);
        }
      free (raw);
      entries[i] = (setok_st_entry){ names[i], t->dtype == SETOK_I32 ? SETOK_ST_I32 : SETOK_ST_F32,
                                     t->ndim, t->shape, host[i] };
    }
  if (st == SETOK_OK)
    {
      const char *meta[] = { "format", "pt", NULL };
      st = setok_safetensors_write (path, entries, (size_t)count, meta, err);
    }
  for (int i = 0; i < count; i++)
    free (host[i]);
  return st;
}

static int
run_op (setok_op op, const params *p, const char *in_path, const char *out_path, const char *device,
        setok_dtype dtype)
{
  setok_error err = { 0 };
  setok_safetensors *in = NULL;
  setok_backend *be = NULL;
  setok_tensor srcs[4], dst = { 0 }, dst2 = { 0 };
  const setok_tensor *sp[4] = { NULL };
  int loaded = 0;
  setok_status st = setok_safetensors_open (&in, in_path, &err);
  if (st == SETOK_OK)
    st = setok_backend_create_by_name (&be, device, 0, &err);
  for (int i = 0; i < 4 && st == SETOK_OK && op_inputs[op][i]; i++)
    {
      const setok_st_tensor *t = find_input (in, op_inputs[op][i]);
      if (!t)
        {
          if (i < op_required[op])
            st = setok_fail (&err, SETOK_ERR_INPUT, "%s: %s needs an input named '%s'", in_path,
                             setok_op_name (op), op_inputs[op][i]);
          continue;
        }
      /* rope's inv_freq is f32 whatever the compute dtype (ops.h) */
      setok_dtype want = op == SETOK_OP_ROPE && i == 2 ? SETOK_F32 : dtype;
      st = forward_load_input (&srcs[i], t, is_index_input (op, i), want, be, &err);
      if (st == SETOK_OK)
        {
          sp[i] = &srcs[i];
          loaded |= 1 << i;
        }
    }
  int64_t shape[SETOK_MAX_DIMS];
  int nd = st == SETOK_OK ? output_shape (op, p, sp, shape, &err) : -1;
  if (st == SETOK_OK && nd < 0)
    st = err.status;
  setok_dtype out_dtype = dtype;
  if (op == SETOK_OP_ARGMAX || (op == SETOK_OP_COPY && sp[0] && sp[0]->dtype == SETOK_I32))
    out_dtype = SETOK_I32;
  else if (op == SETOK_OP_COPY && p->has_out_dtype)
    out_dtype = p->out_dtype;
  if (st == SETOK_OK)
    st = setok_tensor_alloc (&dst, be, out_dtype, nd, shape, &err);
  if (st == SETOK_OK && op == SETOK_OP_TOPK)
    st = setok_tensor_alloc (&dst2, be, SETOK_I32, nd, shape, &err);
  if (st == SETOK_OK)
    {
      setok_op_desc d;
      memset (&d, 0, sizeof d);
      d.op = op;
      d.dst = &dst;
      d.dst2 = op == SETOK_OP_TOPK ? &dst2 : NULL;
      memcpy (d.src, sp, sizeof sp);
      setok_tensor view;
      if (op == SETOK_OP_COPY && p->has_perm)
        {
          st = setok_view_permute (&view, sp[0], p->perm, &err);
          d.src[0] = &view;
        }
      switch (op)
        {
          case SETOK_OP_MATMUL:
            d.p.matmul.trans_a = p->trans_a;
            d.p.matmul.trans_b = p->trans_b;
            d.p.matmul.alpha = p->alpha;
            break;
          case SETOK_OP_SCALE:
            d.p.scale.scale = isnan (p->scale) ? 1.0f : p->scale;
            d.p.scale.bias = p->bias;
            break;
          case SETOK_OP_LAYERNORM:
          case SETOK_OP_RMSNORM:
            d.p.norm.eps = p->eps;
            break;
          case SETOK_OP_GROUPNORM:
            d.p.groupnorm.groups = p->groups;
            d.p.groupnorm.eps = p->eps;
            break;
          case SETOK_OP_SOFTMAX:
            d.p.softmax.scale = isnan (p->scale) ? 1.0f : p->scale;
            d.p.softmax.causal = p->causal;
            break;
          case SETOK_OP_ROPE:
            d.p.rope.theta = p->theta;
            d.p.rope.freq_scale = p->freq_scale;
            d.p.rope.rot_dims = p->rot_dims;
            break;
          case SETOK_OP_ATTENTION:
            d.p.attention.scale = isnan (p->scale) ? 0.0f : p->scale; /* 0: 1/sqrt(D) */
            d.p.attention.causal = p->causal;
            break;
          case SETOK_OP_CONV2D:
          case SETOK_OP_CONV_TRANSPOSE2D:
            d.p.conv.stride_h = d.p.conv.stride_w = p->stride;
            d.p.conv.pad_h = d.p.conv.pad_w = p->pad;
            break;
          case SETOK_OP_UPSAMPLE_NEAREST:
            d.p.upsample.factor = p->factor;
            break;
          case SETOK_OP_RESIZE_BICUBIC:
            d.p.resize.align_corners = p->align_corners;
            break;
          case SETOK_OP_TOPK:
            d.p.topk.k = p->k;
            break;
          default:
            break;
        }
      if (st == SETOK_OK)
        st = setok_backend_compute (be, &d, &err);
    }
  if (st == SETOK_OK)
    st = setok_backend_synchronize (be, &err);
  if (st == SETOK_OK)
    {
      setok_tensor *outs[2] = { &dst, &dst2 };
      const char *names_y[] = { "y" }, *names_topk[] = { "values", "indices" };
      st = forward_write_outputs (out_path, outs, op == SETOK_OP_TOPK ? names_topk : names_y,
                                  op == SETOK_OP_TOPK ? 2 : 1, &err);
    }
  for (int i = 0; i < 4; i++)
    if (loaded & (1 << i))
      setok_tensor_free (&srcs[i]);
  setok_tensor_free (&dst);
  setok_tensor_free (&dst2);
  setok_backend_free (be);
  setok_safetensors_close (in);
  return st == SETOK_OK ? CLI_EXIT_OK : cli_report (&err);
}

static int run_vision (const component_args *a);
static int run_llm (const component_args *a);

/* A full CLIPModel folder holds both towers: input_ids run the text encoder. */
static int
run_clip (const component_args *a)
{
  setok_error err = { 0 };
  setok_safetensors *in = NULL;
  if (setok_safetensors_open (&in, a->in, &err) != SETOK_OK)
    return cli_report (&err);
  bool text = setok_safetensors_find (in, "input_ids") != NULL;
  setok_safetensors_close (in);
  return text ? forward_run_clip_text (a) : run_vision (a);
}

/* Component models by the architecture name in config.json (architectures[0]
 * or _class_name), else by its model_type. */
static const struct
{
  const char *name;
  component_fn run;
} components[] = {
  { "CLIPVisionModel", run_vision },
  { "CLIPVisionModelWithProjection", run_vision },
  { "SiglipVisionModel", run_vision },
  { "CLIPModel", run_clip },
  { "SiglipModel", run_vision },
  { "LlavaForConditionalGeneration", run_vision },
  { "clip_vision_model", run_vision },
  { "siglip_vision_model", run_vision },
  { "clip", run_clip },
  { "siglip", run_vision },
  { "llava", run_vision },
  { "LlamaForCausalLM", run_llm },
  { "llama", run_llm },
  { "CLIPTextModel", forward_run_clip_text },
  { "CLIPTextModelWithProjection", forward_run_clip_text },
  { "clip_text_model", forward_run_clip_text },
  { "SamModel", forward_run_sam },
  { "sam", forward_run_sam },
  { "Blip2QFormerModel", forward_run_qformer },
  { "blip_2_qformer", forward_run_qformer },
  { "AutoencoderKL", forward_run_vae },
  { "UNet2DConditionModel", forward_run_unet },
};

static component_fn
find_component (const char *name)
{
  for (size_t i = 0; name && i < sizeof components / sizeof components[0]; i++)
    if (!strcmp (name, components[i].name))
      return components[i].run;
  return NULL;
}

static int
run_component (const char *dir, const params *p, const char *in, const char *out,
               const char *device, setok_dtype dtype)
{
  char path[4096];
  snprintf (path, sizeof path, "%s/config.json", dir);
  setok_error err = { 0 };
  setok_config *cfg = NULL;
  if (setok_config_load (&cfg, path, &err) != SETOK_OK)
    return cli_report (&err);
  const char *arch = NULL;
  const void *root = setok_config_root (cfg);
  const cJSON *archs = cJSON_GetObjectItemCaseSensitive (root, "architectures");
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive (root, "_class_name");
  const cJSON *type = cJSON_GetObjectItemCaseSensitive (root, "model_type");
  if (cJSON_IsArray (archs) && cJSON_IsString (cJSON_GetArrayItem (archs, 0)))
    arch = cJSON_GetArrayItem (archs, 0)->valuestring;
  else if (cJSON_IsString (cls))
    arch = cls->valuestring;
  component_fn run = find_component (arch);
  if (!run && cJSON_IsString (type))
    run = find_component (type->valuestring);
  if (!run)
    setok_fail (&err, SETOK_ERR_INPUT, "%s: %s%s%s is not an architecture this build can run", path,
                arch ? "'" : "no 'architectures' or '_class_name' entry", arch ? arch : "",
                arch ? "'" : "");
  setok_config_free (cfg);
  if (!run)
    return cli_report (&err);
  component_args a = { p, dir, in, out, device, dtype };
  return run (&a);
}

/* vision: pixel_values -> hidden_states (the selected layer), last_hidden_state. */
static int
run_vision (const component_args *a)
{
  setok_error err = { 0 };
  setok_backend *be = NULL;
  setok_vit *vit = NULL;
  setok_safetensors *in = NULL;
  setok_tensor px = { 0 }, features = { 0 }, last = { 0 };
  setok_arena arena = { 0 };
  const setok_st_tensor *t = NULL;
  setok_status st = setok_backend_create_by_name (&be, a->device, 0, &err);
  if (st == SETOK_OK)
    st = setok_vit_load (&vit, a->dir, be, a->dtype, a->dtype, &err);
  if (st == SETOK_OK)
    st = setok_safetensors_open (&in, a->in, &err);
  if (st == SETOK_OK && !(t = setok_safetensors_find (in, "pixel_values")))
    st = setok_fail (&err, SETOK_ERR_INPUT,
                     "%s: the vision model needs an input named "
                     "'pixel_values'",
                     a->in);
  if (st == SETOK_OK && t->ndim != 4)
    st = setok_fail (&err, SETOK_ERR_INPUT, "%s: pixel_values must be [B, C, H, W], has %d dims",
                     a->in, t->ndim);
  if (st == SETOK_OK)
    st = forward_load_input (&px, t, false, a->dtype, be, &err);
  if (st == SETOK_OK)
    st = setok_arena_init (
      &arena, be, setok_vit_arena_bytes (vit, px.shape[0], px.shape[2], px.shape[3]), &err);
  if (st == SETOK_OK)
    {
      const setok_vit_config *cfg = setok_vit_get_config (vit);
      int layer = a->p->feature_layer == FROM_CONFIG ? cfg->feature_layer : a->p->feature_layer;
      bool drop = a->p->drop_cls < 0 ? cfg->drop_cls : a->p->drop_cls != 0;
      st = setok_vit_forward (vit, &arena, &features, &last, &px, layer, drop, NULL, &err);
    }
  if (st == SETOK_OK)
    st = setok_backend_synchronize (be, &err);
  if (st == SETOK_OK)
    {
      setok_tensor *outs[2] = { &features, &last };
      const char *names[2] = { "hidden_states", "last_hidden_state" };
      st = forward_write_outputs (a->out, outs, names, 2, &err);
    }
  setok_arena_destroy (&arena);
  setok_tensor_free (&px);
  setok_safetensors_close (in);
  setok_vit_free (vit);
  setok_backend_free (be);
  return st == SETOK_OK ? CLI_EXIT_OK : cli_report (&err);
}

/* input_ids [1, T] or inputs_embeds [1, T, C] (transformers' names) as one prefill, then each
 * decode_ids [1, S] token as a cached decode step. */
static setok_status
llm_run (setok_llama *m, setok_backend *be, setok_arena *arena, setok_tensor *logits,
         setok_tensor *decode_logits, const setok_tensor *prompt, bool is_ids,
         const setok_tensor *decode, setok_error *err)
{
  int64_t T = prompt->shape[1], S = decode ? decode->shape[1] : 0;
  int64_t V = setok_llama_get_config (m)->vocab_size;
  setok_tensor x, step;
  setok_llama_cache *cache = NULL;
  setok_status st = setok_llama_cache_new (&cache, m, T + S, err);
  if (st == SETOK_OK)
    st = setok_arena_init (arena, be,
                           setok_llama_arena_bytes (m, T) + setok_llama_arena_bytes (m, 1), err);
  if (st == SETOK_OK && is_ids)
    st = setok_view_reshape (&x, prompt, 1, (int64_t[]){ T }, err);
  else if (st == SETOK_OK)
    st = setok_view_reshape (&x, prompt, 2, (int64_t[]){ T, prompt->shape[2] }, err);
  if (st == SETOK_OK && is_ids)
    st = setok_llama_forward_ids (m, cache, arena, &step, &x, false, NULL, err);
  else if (st == SETOK_OK)
    st = setok_llama_forward_embeds (m, cache, arena, &step, &x, false, NULL, err);
  if (st == SETOK_OK)
    st = setok_view_reshape (logits, &step, 3, (int64_t[]){ 1, T, V }, err);
  if (st == SETOK_OK && S > 0)
    st = setok_tensor_alloc (decode_logits, be, setok_llama_dtype (m), 3, (int64_t[]){ 1, S, V },
                             err);
  for (int64_t s = 0; s < S && st == SETOK_OK; s++)
    {
      size_t mark = setok_arena_mark (arena);
      setok_tensor id, dst;
      st = setok_view_slice (&id, decode, 1, s, 1, err);
      if (st == SETOK_OK)
        st = setok_view_reshape (&id, &id, 1, (int64_t[]){ 1 }, err);
      if (st == SETOK_OK)
        st = setok_llama_forward_ids (m, cache, arena, &step, &id, true, NULL, err);
      if (st == SETOK_OK)
        st = setok_view_slice (&dst, decode_logits, 1, s, 1, err);
      if (st == SETOK_OK)
        st = setok_view_reshape (&dst, &dst, 2, (int64_t[]){ 1, V }, err);
      if (st == SETOK_OK)
        st = setok_copy (be, &dst, &step, err);
      if (st == SETOK_OK)
        st = setok_backend_synchronize (be, err);
      setok_arena_reset (arena, mark);
    }
  if (st == SETOK_OK)
    st = setok_backend_synchronize (be, err);
  setok_llama_cache_free (cache);
  return st;
}

/* llm: LlamaForCausalLM prefill and cached decode -> logits, decode_logits. */
static int
run_llm (const component_args *a)
{
  setok_error err = { 0 };
  setok_backend *be = NULL;
  setok_llama *m = NULL;
  setok_safetensors *in = NULL;
  setok_tensor prompt = { 0 }, decode = { 0 }, logits = { 0 }, decode_logits = { 0 };
  setok_arena arena = { 0 };
  const setok_st_tensor *ids = NULL, *embeds = NULL, *dec = NULL;
  setok_status st = setok_backend_create_by_name (&be, a->device, 0, &err);
  if (st == SETOK_OK)
    st = setok_llama_load (&m, a->dir, NULL, be, a->dtype, a->dtype, &err);
  if (st == SETOK_OK)
    st = setok_safetensors_open (&in, a->in, &err);
  if (st == SETOK_OK)
    {
      ids = setok_safetensors_find (in, "input_ids");
      embeds = setok_safetensors_find (in, "inputs_embeds");
      dec = setok_safetensors_find (in, "decode_ids");
      if (!ids == !embeds)
        st = setok_fail (&err, SETOK_ERR_INPUT,
                         "%s: the language model needs one of 'input_ids' [1, T] or "
                         "'inputs_embeds' [1, T, hidden]",
                         a->in);
      else if (ids ? ids->ndim != 2 || ids->shape[0] != 1
                   : embeds->ndim != 3 || embeds->shape[0] != 1)
        st = setok_fail (&err, SETOK_ERR_INPUT, "%s: %s must be [1, T%s]", a->in,
                         ids ? "input_ids" : "inputs_embeds", ids ? "" : ", hidden");
      else if (dec && (dec->ndim != 2 || dec->shape[0] != 1))
        st = setok_fail (&err, SETOK_ERR_INPUT, "%s: decode_ids must be [1, S]", a->in);
    }
  if (st == SETOK_OK)
    st = forward_load_input (&prompt, ids ? ids : embeds, ids != NULL, a->dtype, be, &err);
  if (st == SETOK_OK && dec)
    st = forward_load_input (&decode, dec, true, a->dtype, be, &err);
  if (st == SETOK_OK)
    st = llm_run (m, be, &arena, &logits, &decode_logits, &prompt, ids != NULL,
                  dec ? &decode : NULL, &err);
  if (st == SETOK_OK)
    {
      setok_tensor *outs[2] = { &logits, &decode_logits };
      const char *names[2] = { "logits", "decode_logits" };
      st = forward_write_outputs (a->out, outs, names, dec ? 2 : 1, &err);
    }
  setok_arena_destroy (&arena);
  setok_tensor_free (&prompt);
  setok_tensor_free (&decode);
  setok_tensor_free (&decode_logits);
  setok_safetensors_close (in);
  setok_llama_free (m);
  setok_backend_free (be);
  return st == SETOK_OK ? CLI_EXIT_OK : cli_report (&err);
}

int
cmd_forward (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "op", required_argument, NULL, 'o' },      { "inputs", required_argument, NULL, 'i' },
    { "outputs", required_argument, NULL, 'O' }, { "device", required_argument, NULL, 'd' },
    { "dtype", required_argument, NULL, 't' },   { "set", required_argument, NULL, 's' },
    { "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
  };
  params p = { .alpha = 1.0f,
               .scale = NAN,
               .eps = 1e-5f,
               .theta = 10000.0f,
               .freq_scale = 1.0f,
               .groups = 32,
               .stride = 1,
               .factor = 2,
               .k = 1,
               .feature_layer = FROM_CONFIG,
               .multimask = 1,
               .drop_cls = -1 };
  const char *op_name = NULL, *in = NULL, *out = NULL, *device = "cpu";
  setok_dtype dtype = SETOK_F32;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    {
      switch (c)
        {
          case 'o':
            op_name = optarg;
            break;
          case 'i':
            in = optarg;
            break;
          case 'O':
            out = optarg;
            break;
          case 'd':
            device = optarg;
            break;
          case 't':
            if (parse_dtype (optarg, &dtype))
              return cli_usage_error ("forward", "--dtype must be f32, f16 or bf16");
            break;
          case 's':
            if (parse_param (&p, optarg))
              return CLI_EXIT_USAGE;
            break;
          case 'h':
            usage (stdout);
            return CLI_EXIT_OK;
          default:
            return cli_usage_error ("forward", "unknown or incomplete option '%s'",
                                    argv[optind - 1]);
        }
    }
  if (!in || !out)
    return cli_usage_error ("forward", "--inputs and --outputs are required");
  if (op_name)
    {
      if (optind != argc)
        return cli_usage_error ("forward", "unexpected argument '%s'", argv[optind]);
      setok_op op = setok_op_from_name (op_name);
      if (op == SETOK_OP_COUNT)
        return cli_usage_error ("forward", "unknown op '%s'", op_name);
      return run_op (op, &p, in, out, device, dtype);
    }
  if (optind != argc - 1)
    return cli_usage_error ("forward", "give --op NAME or one COMPONENT_DIR");
  return run_component (argv[optind], &p, in, out, device, dtype);
}
