/* forward-qformer.c — `setok forward` on a Blip2QFormerModel folder (the mapper):
 * query_embeds [B, Q, hidden]? (default: the checkpoint's query_tokens),
 * encoder_hidden_states [B, S, encoder_hidden_size], encoder_attention_mask [B, S]?
 * (float, 1 keeps a token, 0 hides it) -> last_hidden_state [B, Q, hidden]. */
#include "cli.h"
#include "forward.h"
#include "setok/arena.h"
#include "setok/models/qformer.h"

/* Loads the optional input `name` of ndim dims (a float tensor) into *out; *has tells
 * whether it was there. */
static setok_status
load_optional (setok_tensor *out, bool *has, const setok_safetensors *in, const char *path,
               const char *name, int ndim, setok_dtype dtype, setok_backend *be, setok_error *err)
{
  const setok_st_tensor *t = setok_safetensors_find (in, name);
  *has = t != NULL;
  if (!t)
    return SETOK_OK;
  if (t->ndim != ndim)
    return setok_fail (err, SETOK_ERR_INPUT, "%s: %s must have %d dims, has %d", path, name, ndim,
                       t->ndim);
  return forward_load_input (out, t, false, dtype, be, err);
}

int
forward_run_qformer (const component_args *a)
{
  setok_error err = { 0 };
  setok_backend *be = NULL;
  setok_qformer *m = NULL;
  setok_safetensors *in = NULL;
  setok_tensor query = { 0 }, enc = { 0 }, mask = { 0 }, last = { 0 };
  setok_arena arena = { 0 };
  bool has_query = false, has_enc = false, has_mask = false;
  setok_status st = setok_backend_create_by_name (&be, a->device, 0, &err);
  if (st == SETOK_OK)
    st = setok_qformer_load (&m, a->dir, be, a->dtype, a->dtype, &err);
  if (st == SETOK_OK)
    st = setok_safetensors_open (&in, a->in, &err);
  if (st == SETOK_OK)
    st = load_optional (&enc, &has_enc, in, a->in, "encoder_hidden_states", 3, a->dtype, be, &err);
  if (st == SETOK_OK && !has_enc)
    st = setok_fail (&err, SETOK_ERR_INPUT,
                     "%s: the Q-Former needs an input named 'encoder_hidden_states' [B, S, E]",
                     a->in);
  if (st == SETOK_OK)
    st = load_optional (&query, &has_query, in, a->in, "query_embeds", 3, a->dtype, be, &err);
  if (st == SETOK_OK)
    st = load_optional (&mask, &has_mask, in, a->in, "encoder_attention_mask", 2, a->dtype, be,
                        &err);
  if (st == SETOK_OK)
    {
      int64_t queries = has_query ? query.shape[1] : setok_qformer_num_query_tokens (m);
      st = setok_arena_init (
        &arena, be, setok_qformer_arena_bytes (m, enc.shape[0], queries, enc.shape[1]), &err);
    }
  if (st == SETOK_OK)
    st = setok_qformer_forward (m, &arena, &last, has_query ? &query : NULL, &enc,
                                has_mask ? &mask : NULL, NULL, &err);
  if (st == SETOK_OK)
    st = setok_backend_synchronize (be, &err);
  if (st == SETOK_OK)
    {
      setok_tensor *outs[1] = { &last };
      const char *names[1] = { "last_hidden_state" };
      st = forward_write_outputs (a->out, outs, names, 1, &err);
    }
  setok_arena_destroy (&arena);
  setok_tensor_free (&query);
  setok_tensor_free (&enc);
  setok_tensor_free (&mask);
  setok_safetensors_close (in);
  setok_qformer_free (m);
  setok_backend_free (be);
  return st == SETOK_OK ? CLI_EXIT_OK : cli_report (&err);
}
