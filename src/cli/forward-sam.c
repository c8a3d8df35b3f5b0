/* forward-sam.c — `setok forward` on a SamModel folder:
 * pixel_values [B, 3, S, S] -> image_embeddings [B, C, S / 16, S / 16] (the image encoder);
 * image_embeddings [B, C, h, w] (or those of pixel_values), input_points [B, 1, P, 2] or
 * [B, P, 2]?,
 * input_labels [B, 1, P] or [B, P]? (default all 1, as SamModel), input_boxes [B, 1, 4] or
 * [B, 4]?, input_masks [B, 1, 4h, 4w]?,
 * sparse_embeddings [B, 1, E, C] or [B, E, C]? (extra sparse prompt tokens after the points)
 * -> pred_masks [B, M, 4h, 4w], iou_scores [B, M]: SamModel's outputs for point batch 1
 * without that axis. --set multimask=0|1 (default 1) is multimask_output. With
 * pixel_values the decoder runs when a prompt is given, as SamModel(pixel_values, ...). */
#include <stdlib.h>

#include "cli.h"
#include "forward.h"
#include "setok/arena.h"
#include "setok/models/mask_decoder.h"
#include "setok/models/sam_vision.h"

/* A file tensor of ndim dims, or ndim + 1 with a point-batch axis of 1 at
 * index 1, onto the backend as ndim dims. */
static setok_status
load_prompt_input (setok_tensor *out, const setok_st_tensor *t, int ndim, bool index,
                   setok_dtype dtype, setok_backend *be, const char *path, setok_error *err)
{
  if (t->ndim != ndim && !(t->ndim == ndim + 1 && t->shape[1] == 1))
    return setok_fail (err, SETOK_ERR_INPUT,
                       "%s: %s has %d dims; expected %d, or %d with a point batch of 1", path,
                       t->name, t->ndim, ndim, ndim + 1);
  setok_status st = forward_load_input (out, t, index, dtype, be, err);
  if (st == SETOK_OK && t->ndim == ndim + 1)
    {
      int64_t shape[SETOK_MAX_DIMS];
      shape[0] = t->shape[0];
      for (int i = 1; i < ndim; i++)
        shape[i] = t->shape[i + 1];
      st = setok_view_reshape (out, out, ndim, shape, err);
    }
  return st;
}

/* points [B, P, 2] and labels [B, P] (or all 1 when absent) from the input file, into host
 * arrays. */
static setok_status
read_points (float **points, int32_t **labels, int64_t *num_points, const setok_safetensors *in,
             int64_t batch, setok_backend *be, const char *path, setok_error *err)
{
  const setok_st_tensor *tp = setok_safetensors_find (in, "input_points");
  const setok_st_tensor *tl = setok_safetensors_find (in, "input_labels");
  setok_tensor pts = { 0 }, lab = { 0 };
  *num_points = 0;
  if (!tp)
    return tl ? setok_fail (err, SETOK_ERR_INPUT, "%s: input_labels without input_points", path)
              : SETOK_OK;
  setok_status st = load_prompt_input (&pts, tp, 3, false, SETOK_F32, be, path, err);
  if (st == SETOK_OK && (pts.shape[0] != batch || pts.shape[2] != 2))
    st = setok_fail (err, SETOK_ERR_INPUT, "%s: input_points must be [%lld, P, 2]", path,
                     (long long)batch);
  int64_t P = st == SETOK_OK ? pts.shape[1] : 0;
  if (st == SETOK_OK && tl)
    st = load_prompt_input (&lab, tl, 2, true, SETOK_I32, be, path, err);
  if (st == SETOK_OK && tl && (lab.shape[0] != batch || lab.shape[1] != P))
    st = setok_fail (err, SETOK_ERR_INPUT, "%s: input_labels must be [%lld, %lld]", path,
                     (long long)batch, (long long)P);
  if (st == SETOK_OK)
    {
      *points = malloc ((size_t)(batch * P * 2 + 1) * sizeof **points);
      *labels = malloc ((size_t)(batch * P + 1) * sizeof **labels);
      if (!*points || !*labels)
        st = setok_fail (err, SETOK_ERR_NOMEM, "out of memory reading the points");
    }
  if (st == SETOK_OK)
    st = setok_tensor_download (*points, &pts, err);
  if (st == SETOK_OK && tl)
    st = setok_tensor_download (*labels, &lab, err);
  else if (st == SETOK_OK)
    for (int64_t i = 0; i < batch * P; i++)
      (*labels)[i] = SETOK_SAM_LABEL_FOREGROUND;
  if (st == SETOK_OK)
    *num_points = P;
  setok_tensor_free (&pts);
  setok_tensor_free (&lab);
  return st;
}

/* input_boxes [B, 4] (or [B, 1, 4]) from the input file into a host array, NULL when absent. */
static setok_status
read_boxes (float **boxes, const setok_safetensors *in, int64_t batch, setok_backend *be,
            const char *path, setok_error *err)
{
  const setok_st_tensor *t = setok_safetensors_find (in, "input_boxes");
  setok_tensor bx = { 0 };
  if (!t)
    return SETOK_OK;
  setok_status st = load_prompt_input (&bx, t, 2, false, SETOK_F32, be, path, err);
  if (st == SETOK_OK && (bx.shape[0] != batch || bx.shape[1] != 4))
    st = setok_fail (err, SETOK_ERR_INPUT, "%s: input_boxes must be [%lld, 4] (one box per image)",
                     path, (long long)batch);
  if (st == SETOK_OK && !(*boxes = malloc ((size_t)batch * 4 * sizeof **boxes)))
    st = setok_fail (err, SETOK_ERR_NOMEM, "out of memory reading the boxes");
  if (st == SETOK_OK)
    st = setok_tensor_download (*boxes, &bx, err);
  setok_tensor_free (&bx);
  return st;
}

/* pixel_values -> image_embeddings on the backend (the encoder's arena stays alive in arena). */
static setok_status
encode_pixels (setok_tensor *emb, setok_arena *arena, const setok_st_tensor *t,
               const component_args *a, setok_backend *be, setok_error *err)
{
  setok_sam_vision *enc = NULL;
  setok_tensor px = { 0 };
  setok_status st = setok_sam_vision_load (&enc, a->dir, be, a->dtype, a->dtype, err);
  if (st == SETOK_OK)
    st = forward_load_input (&px, t, false, a->dtype, be, err);
  if (st == SETOK_OK)
    st = setok_arena_init (arena, be, setok_sam_vision_arena_bytes (enc, px.shape[0]), err);
  if (st == SETOK_OK)
    st = setok_sam_vision_forward (enc, arena, emb, &px, NULL, err);
  if (st == SETOK_OK)
    st = setok_backend_synchronize (be, err);
  setok_tensor_free (&px);
  setok_sam_vision_free (enc);
  return st;
}

int
forward_run_sam (const component_args *a)
{
  setok_error err = { 0 };
  setok_backend *be = NULL;
  setok_mask_decoder *m = NULL;
  setok_safetensors *in = NULL;
  setok_tensor img = { 0 }, extra = { 0 }, mask_in = { 0 }, masks = { 0 }, iou = { 0 };
  setok_tensor *emb = &img;
  setok_arena arena = { 0 }, enc_arena = { 0 };
  float *points = NULL, *boxes = NULL;
  int32_t *labels = NULL;
  setok_sam_prompt prompt = { 0 };
  const setok_st_tensor *t = NULL, *te = NULL, *tm = NULL, *tp = NULL;
  bool decode = true;
  setok_status st = setok_backend_create_by_name (&be, a->device, 0, &err);
  if (st == SETOK_OK)
    st = setok_safetensors_open (&in, a->in, &err);
  if (st == SETOK_OK && (tp = setok_safetensors_find (in, "pixel_values")))
    {
      static const char *const prompts[]
        = { "input_points", "input_labels", "input_boxes", "input_masks", "sparse_embeddings" };
      decode = false;
      for (size_t i = 0; i < sizeof prompts / sizeof *prompts; i++)
        decode |= setok_safetensors_find (in, prompts[i]) != NULL;
      if (tp->ndim != 4)
        st = setok_fail (&err, SETOK_ERR_INPUT,
                         "%s: pixel_values must be [B, 3, H, W], has %d dims", a->in, tp->ndim);
      if (st == SETOK_OK)
        st = encode_pixels (&img, &enc_arena, tp, a, be, &err);
    }
  else if (st == SETOK_OK && !(t = setok_safetensors_find (in, "image_embeddings")))
    st = setok_fail (&err, SETOK_ERR_INPUT,
                     "%s: SamModel needs an input named 'pixel_values' or 'image_embeddings'",
                     a->in);
  else if (st == SETOK_OK && t->ndim != 4)
    st = setok_fail (&err, SETOK_ERR_INPUT,
                     "%s: image_embeddings must be [B, C, h, w], has %d dims", a->in, t->ndim);
  else if (st == SETOK_OK)
    st = forward_load_input (&img, t, false, a->dtype, be, &err);
  if (st == SETOK_OK && decode)
    st = setok_mask_decoder_load (&m, a->dir, be, a->dtype, &err);
  if (st == SETOK_OK && decode)
    st = read_points (&points, &labels, &prompt.num_points, in, img.shape[0], be, a->in, &err);
  if (st == SETOK_OK && decode)
    st = read_boxes (&boxes, in, img.shape[0], be, a->in, &err);
  if (st == SETOK_OK && decode && (tm = setok_safetensors_find (in, "input_masks")))
    st = forward_load_input (&mask_in, tm, false, a->dtype, be, &err);
  if (st == SETOK_OK && decode && (te = setok_safetensors_find (in, "sparse_embeddings")))
    st = load_prompt_input (&extra, te, 3, false, a->dtype, be, a->in, &err);
  prompt.points = points;
  prompt.labels = labels;
  prompt.boxes = boxes;
  prompt.masks = tm ? &mask_in : NULL;
  prompt.extra = te ? &extra : NULL;
  if (st == SETOK_OK && decode)
    st = setok_arena_init (
      &arena, be,
      setok_mask_decoder_arena_bytes (m, img.shape[0], img.shape[2], img.shape[3], &prompt), &err);
  if (st == SETOK_OK && decode)
    st = setok_mask_decoder_forward (m, &arena, &masks, &iou, emb, &prompt, a->p->multimask != 0,
                                     NULL, &err);
  if (st == SETOK_OK)
    st = setok_backend_synchronize (be, &err);
  if (st == SETOK_OK)
    {
      setok_tensor *outs[3] = { &masks, &iou, emb };
      const char *names[3] = { "pred_masks", "iou_scores", "image_embeddings" };
      int first = decode ? 0 : 2, count = (decode ? 2 : 0) + (tp ? 1 : 0);
      st = forward_write_outputs (a->out, outs + first, names + first, count, &err);
    }
  setok_arena_destroy (&arena);
  setok_arena_destroy (&enc_arena);
  if (!tp)
    setok_tensor_free (&img);
  setok_tensor_free (&extra);
  setok_tensor_free (&mask_in);
  free (points);
  free (labels);
  free (boxes);
  setok_safetensors_close (in);
  setok_mask_decoder_free (m);
  setok_backend_free (be);
  return st == SETOK_OK ? CLI_EXIT_OK : cli_report (&err);
}
