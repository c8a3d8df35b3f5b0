/* projector.h — the multimodal projectors (DESIGN §6 "projectors").
 *
 * Mirrors transformers' LlavaMultiModalProjector (LLaVA-1.5's
 * multi_modal_projector) and tools/setokim/bundle.py SetokimProjector, the
 * SETOKIM bundle's projector_in / projector_out components:
 *   y = linear_2(act(linear_1(x)))   (num_layers 2, LLaVA's mlp2x_gelu)
 *   y = linear_1(x)                  (num_layers 1)
 * linear_1.weight [out_features, in_features], linear_2.weight
 * [out_features, out_features], biases optional.
 * A SetokimProjector folder holds config.json
 *   {"architectures": ["SetokimProjector"], "in_features", "out_features",
 *    "projector_hidden_act" (default "gelu"), "num_layers" (1 or 2, default 2)}
 * and weights named linear_1.weight / .bias, linear_2.weight / .bias. */
#ifndef SETOK_MODELS_PROJECTOR_H
#define SETOK_MODELS_PROJECTOR_H

#include "../export.h"

#include "../arena.h"
#include "../backend.h"
#include "../error.h"
#include "../ops.h"
#include "../tensor.h"
#include "../weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_projector {
    int in_features, out_features, num_layers;
    setok_op act;                 /* between the two linears */
    setok_tensor w1, b1, w2, b2;  /* data NULL: absent (a bias, or linear_2 of one layer) */
    setok_backend *backend;
    setok_dtype dtype;
} setok_projector;

/* "gelu", "gelu_pytorch_tanh" (and "gelu_new", "gelu_fast"), "quick_gelu",
 * "silu", "relu"; anything else is SETOK_ERR_UNSUPPORTED naming path. */
SETOK_API setok_status setok_projector_act_from_name(const char *name, setok_op *op, const char *path,
                                           setok_error *err);

/* LLaVA's multi_modal_projector from a LLaVA checkpoint's weights
 * ("multi_modal_projector.*" or "model.multi_modal_projector.*"); two layers
 * when linear_2 is there. p is zeroed first; free with setok_projector_free. */
SETOK_API setok_status setok_projector_load_llava(setok_projector *p, const setok_weights *w,
                                        int in_features, int out_features, setok_op act,
                                        setok_backend *backend, setok_dtype dtype,
                                        setok_error *err);
/* A SetokimProjector folder (see above). */
SETOK_API setok_status setok_projector_load(setok_projector *p, const char *dir, setok_backend *backend,
                                  setok_dtype dtype, setok_error *err);
SETOK_API void setok_projector_free(setok_projector *p);

/* Arena bytes one forward over n rows needs. */
SETOK_API size_t setok_projector_arena_bytes(const setok_projector *p, int64_t n);
/* x [n, in_features] (p's dtype, on its backend) -> y [n, out_features],
 * carved from arena (the intermediate stays below it). */
SETOK_API setok_status setok_projector_forward(const setok_projector *p, setok_arena *arena,
                                     setok_tensor *y, const setok_tensor *x, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
