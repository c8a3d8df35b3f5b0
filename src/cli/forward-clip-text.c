/* forward-clip-text.c — `setok forward` on a CLIPTextModel folder:
 * input_ids [B, T] -> last_hidden_state [B, T, hidden], pooler_output [B, hidden]. */
#include "cli.h"
#include "forward.h"
#include "setok/arena.h"
#include "setok/models/clip_text.h"

int
forward_run_clip_text (const component_args *a)
{
  setok_error err = { 0 };
  setok_backend *be = NULL;
  setok_clip_text *m = NULL;
  setok_safetensors *in = NULL;
  setok_tensor ids = { 0 }, last = { 0 }, pooled = { 0 };
  setok_arena arena = { 0 };
  const setok_st_tensor *t = NULL;
  setok_status st = setok_backend_create_by_name (&be, a->device, 0, &err);
  if (st == SETOK_OK)
    st = setok_clip_text_load (&m, a->dir, be, a->dtype, a->dtype, &err);
  if (st == SETOK_OK)
    st = setok_safetensors_open (&in, a->in, &err);
  if (st == SETOK_OK && !(t = setok_safetensors_find (in, "input_ids")))
    st = setok_fail (&err, SETOK_ERR_INPUT, "%s: the text encoder needs an input named 'input_ids'",
                     a->in);
  if (st == SETOK_OK && t->ndim != 2)
    st = setok_fail (&err, SETOK_ERR_INPUT, "%s: input_ids must be [B, T], has %d dims", a->in,
                     t->ndim);
  if (st == SETOK_OK)
    st = forward_load_input (&ids, t, true, a->dtype, be, &err);
  if (st == SETOK_OK)
    st = setok_arena_init (&arena, be, setok_clip_text_arena_bytes (m, ids.shape[0], ids.shape[1]),
                           &err);
  if (st == SETOK_OK)
    st = setok_clip_text_forward (m, &arena, &last, &pooled, &ids, 0, NULL, &err);
  if (st == SETOK_OK)
    st = setok_backend_synchronize (be, &err);
  if (st == SETOK_OK)
    {
      setok_tensor *outs[2] = { &last, &pooled };
      const char *names[2] = { "last_hidden_state", "pooler_output" };
      st = forward_write_outputs (a->out, outs, names, 2, &err);
    }
  setok_arena_destroy (&arena);
  setok_tensor_free (&ids);
  setok_safetensors_close (in);
  setok_clip_text_free (m);
  setok_backend_free (be);
  return st == SETOK_OK ? CLI_EXIT_OK : cli_report (&err);
}
