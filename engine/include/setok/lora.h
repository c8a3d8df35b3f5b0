/* lora.h — PEFT LoRA adapters, merged into a model's linear weights at load.
 *
 * An adapter folder holds adapter_config.json and adapter_model.safetensors,
 * as PEFT's save_pretrained writes them. The config is read as PEFT's
 * LoraConfig: r, lora_alpha, use_rslora (scale alpha / sqrt(r), else
 * alpha / r), target_modules (a list of module names, matched as the whole
 * module name or its last dotted parts, or a regex string, not checked
 * here), bias "none" only; modules_to_save, use_dora, rank_pattern and
 * alpha_pattern are refused (SETOK_ERR_UNSUPPORTED, naming the key).
 * fan_in_fan_out is ignored, as PEFT ignores it for torch.nn.Linear.
 *
 * Tensors are "base_model.model.<module>.lora_A[.<adapter>].weight" [r, in]
 * and "...lora_B[.<adapter>].weight" [out, r]; <module>.weight names the
 * base weight [out, in]. Merging adds scale * B @ A to it in f32 on the host,
 * before conversion to the model's dtype and upload. Every adapter tensor
 * must end up merged into a base weight (setok_lora_check_used). */
#ifndef SETOK_LORA_H
#define SETOK_LORA_H

#include "export.h"

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "error.h"
#include "safetensors.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct setok_lora setok_lora;

/* Reads and validates DIR/adapter_config.json and DIR's adapter tensors:
 * names, pairs of A and B, ranks and dtypes. */
SETOK_API setok_status setok_lora_open(setok_lora **out, const char *dir, setok_error *err);
SETOK_API void setok_lora_free(setok_lora *lora);

/* The merge scale: alpha / r, or alpha / sqrt(r) with use_rslora. */
SETOK_API double setok_lora_scale(const setok_lora *lora);
/* How many modules (pairs of A and B) the adapter holds. */
SETOK_API size_t setok_lora_module_count(const setok_lora *lora);

/* w: host f32 [out, in], the base weight named weight_name
 * ("model.layers.0.self_attn.q_proj.weight"). When the adapter targets it,
 * w += scale * B @ A and *merged is set; shapes that disagree are an
 * SETOK_ERR_INPUT naming the adapter tensor. */
SETOK_API setok_status setok_lora_merge_f32(setok_lora *lora, const char *weight_name, float *w,
                                  int64_t out, int64_t in, bool *merged, setok_error *err);

/* setok_weights_load for a base weight that the adapter may target: a 2-D
 * tensor it targets is read into f32, merged, then converted to dtype and
 * uploaded to backend; any other tensor loads unchanged. lora may be NULL. */
SETOK_API setok_status setok_lora_load_weight(setok_lora *lora, setok_tensor *out, const setok_st_tensor *t,
                                    setok_backend *backend, setok_dtype dtype, setok_error *err);

/* Whether the adapter changes the base weight of that name (lora may be NULL). */
SETOK_API bool setok_lora_targets(setok_lora *lora, const char *weight_name);

/* SETOK_ERR_INPUT naming the first adapter tensor no base weight took. */
SETOK_API setok_status setok_lora_check_used(const setok_lora *lora, setok_error *err);

#ifdef __cplusplus
}
#endif
#endif
