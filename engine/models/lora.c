/* lora.c — PEFT LoRA adapters: the config, the A/B pairs, and the f32 merge
 * W += scale * B @ A into base weights as they load (lora.h).
 *
 * Rules: everything in the folder is untrusted; a key or tensor the engine
 * cannot honour is an error naming it, never a silent skip. */
#include "setok/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "setok/config.h"
#include "setok/weights.h"

typedef struct lora_module {
    char *name;                 /* "model.layers.0.self_attn.q_proj" */
    const setok_st_tensor *a;   /* [r, in] */
    const setok_st_tensor *b;   /* [out, r] */
    bool used;
} lora_module;

struct setok_lora {
    setok_weights *w;
    char config_path[4096];
    int64_t r;
    double scale;
    char **targets;             /* NULL: a regex string, not checked */
    size_t target_count;
    lora_module *modules;
    size_t module_count;
};

static const char PREFIX[] = "base_model.model.";

void setok_lora_free(setok_lora *lora)
{
    if (!lora)
        return;
    for (size_t i = 0; i < lora->module_count; i++)
        free(lora->modules[i].name);
    for (size_t i = 0; i < lora->target_count; i++)
        free(lora->targets[i]);
    free(lora->modules);
    free(lora->targets);
    setok_weights_close(lora->w);
    free(lora);
}

double setok_lora_scale(const setok_lora *lora)
{
    return lora->scale;
}

size_t setok_lora_module_count(const setok_lora *lora)
{
    return lora->module_count;
}

/* ---------------------------------------------------------------------------
 * adapter_config.json */

static setok_status refuse(const setok_lora *l, const char *key, const char *why, setok_error *err)
{
    return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s: %s", l->config_path, key, why);
}

/* A JSON value that is absent, null, false, or an empty array or object. */
static bool is_empty(const cJSON *v)
{
    return !v || cJSON_IsNull(v) || cJSON_IsFalse(v) ||
           ((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child);
}

static setok_status read_targets(setok_lora *l, const cJSON *root, setok_error *err)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "target_modules");
    if (cJSON_IsString(t))
        return SETOK_OK; /* a regex: the adapter tensors say which modules it matched */
    if (!cJSON_IsArray(t))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: target_modules must be a list of names or "
                          "a regex string", l->config_path);
    size_t n = (size_t)cJSON_GetArraySize(t);
    l->targets = calloc(n ? n : 1, sizeof *l->targets);
    if (!l->targets)
        return setok_fail(err, SETOK_ERR_NOMEM, "lora: out of memory");
    const cJSON *item;
    cJSON_ArrayForEach(item, t) {
        if (!cJSON_IsString(item) || !item->valuestring[0])
            return setok_fail(err, SETOK_ERR_INPUT, "%s: target_modules[%zu] is not a name",
                              l->config_path, l->target_count);
        l->targets[l->target_count] = malloc(strlen(item->valuestring) + 1);
        if (!l->targets[l->target_count])
            return setok_fail(err, SETOK_ERR_NOMEM, "lora: out of memory");
        strcpy(l->targets[l->target_count++], item->valuestring);
    }
    return SETOK_OK;
}

static setok_status read_config(setok_lora *l, const setok_config *cfg, setok_error *err)
{
    const cJSON *root = setok_config_root(cfg);
    const char *peft_type = NULL, *bias = NULL;
    double alpha = 0.0;
    bool rslora = false, dora = false;
    setok_status st = setok_config_string_or(cfg, "peft_type", "LORA", &peft_type, err);
    if (st == SETOK_OK && strcmp(peft_type, "LORA"))
        return refuse(l, "peft_type", "only LORA adapters are supported", err);
    if (st == SETOK_OK)
        st = setok_config_int(cfg, "r", &l->r, err);
    if (st == SETOK_OK && (l->r < 1 || l->r > (1 << 20)))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: r is %lld, must be in [1, %d]",
                          l->config_path, (long long)l->r, 1 << 20);
    if (st == SETOK_OK)
        st = setok_config_double(cfg, "lora_alpha", &alpha, err);
    if (st == SETOK_OK && !isfinite(alpha))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: lora_alpha is not finite", l->config_path);
    if (st == SETOK_OK)
        st = setok_config_bool_or(cfg, "use_rslora", false, &rslora, err);
    if (st == SETOK_OK)
        st = setok_config_bool_or(cfg, "use_dora", false, &dora, err);
    if (st == SETOK_OK)
        st = setok_config_string_or(cfg, "bias", "none", &bias, err);
    if (st != SETOK_OK)
        return st;
    if (strcmp(bias, "none"))
        return refuse(l, "bias", "only \"none\" is supported", err);
    if (dora)
        return refuse(l, "use_dora", "DoRA adapters are not supported", err);
    /* features that change the merge: each must be absent, null, false or empty */
    static const struct {
        const char *key, *why;
    } unsupported[] = {
        {"modules_to_save", "fully trained modules are not supported; merge them into the base "
                            "model first"},
        {"rank_pattern", "per-module ranks are not supported"},
        {"alpha_pattern", "per-module alphas are not supported"},
        {"lora_bias", "LoRA biases are not supported"},
        {"layer_replication", "layer replication is not supported"},
        {"target_parameters", "parameter targets are not supported"},
        {"trainable_token_indices", "trainable tokens are not supported"},
        {"alora_invocation_tokens", "activated LoRA is not supported"},
    };
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (!is_empty(cJSON_GetObjectItemCaseSensitive(root, unsupported[i].key)))
            return refuse(l, unsupported[i].key, unsupported[i].why, err);
    /* fan_in_fan_out only concerns GPT-2's Conv1D; PEFT turns it off for nn.Linear */
    l->scale = rslora ? alpha / sqrt((double)l->r) : alpha / (double)l->r;
    return read_targets(l, root, err);
}

/* ---------------------------------------------------------------------------
 * adapter tensors */

/* PEFT matches a list entry against the whole module name or its last dotted parts. */
static bool is_target(const setok_lora *l, const char *module)
{
    if (!l->targets)
        return true;
    size_t n = strlen(module);
    for (size_t i = 0; i < l->target_count; i++) {
        size_t k = strlen(l->targets[i]);
        if (!strcmp(module, l->targets[i]) ||
            (n > k && module[n - k - 1] == '.' && !strcmp(module + n - k, l->targets[i])))
            return true;
    }
    return false;
}

/* "base_model.model.M.lora_A[.ADAPTER].weight" -> module M (length *len) and which ('A'/'B');
 * false for any other name. */
static bool parse_name(const char *name, const char **module, size_t *len, char *which)
{
    size_t p = sizeof PREFIX - 1;
    if (strncmp(name, PREFIX, p))
        return false;
    const char *m = name + p, *hit = NULL;
    for (const char *s = strstr(m, ".lora_"); s; s = strstr(s + 1, ".lora_"))
        hit = s;
    if (!hit || hit == m || (hit[6] != 'A' && hit[6] != 'B') || hit[7] != '.')
        return false;
    const char *rest = hit + 8;
    const char *dot = strchr(rest, '.');
    /* "weight", or "ADAPTER.weight" with a single-part adapter name */
    if (strcmp(rest, "weight") && !(dot && dot > rest && !strcmp(dot, ".weight")))
        return false;
    *module = m;
    *len = (size_t)(hit - m);
    *which = hit[6];
    return true;
}

static setok_status add_tensor(setok_lora *l, const setok_st_tensor *t, setok_error *err)
{
    const char *module;
    size_t len;
    char which;
    if (!parse_name(t->name, &module, &len, &which))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' is not a LoRA weight "
                          "(base_model.model.MODULE.lora_A.weight or .lora_B.weight)",
                          t->file, t->name);
    lora_module *mod = NULL;
    for (size_t i = 0; i < l->module_count && !mod; i++)
        if (strlen(l->modules[i].name) == len && !strncmp(l->modules[i].name, module, len))
            mod = &l->modules[i];
    if (!mod) {
        mod = &l->modules[l->module_count];
        mod->name = malloc(len + 1);
        if (!mod->name)
            return setok_fail(err, SETOK_ERR_NOMEM, "lora: out of memory");
        memcpy(mod->name, module, len);
        mod->name[len] = '\0';
        l->module_count++;
        if (!is_target(l, mod->name))
            return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s': module '%s' is not in "
                              "target_modules of %s", t->file, t->name, mod->name,
                              l->config_path);
    }
    const setok_st_tensor **slot = which == 'A' ? &mod->a : &mod->b;
    if (*slot)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensors '%s' and '%s' are both lora_%c of "
                          "module '%s'", t->file, (*slot)->name, t->name, which, mod->name);
    if (t->dtype != SETOK_ST_F32 && t->dtype != SETOK_ST_F16 && t->dtype != SETOK_ST_BF16 &&
        t->dtype != SETOK_ST_F64)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' is %s, expected a float dtype",
                          t->file, t->name, setok_st_dtype_name(t->dtype));
    int64_t rank = t->ndim == 2 ? t->shape[which == 'A' ? 0 : 1] : -1;
    if (rank != l->r)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' must be 2-D with rank r = %lld "
                          "as its %s dimension", t->file, t->name, (long long)l->r,
                          which == 'A' ? "first" : "second");
    *slot = t;
    return SETOK_OK;
}

setok_status setok_lora_open(setok_lora **out, const char *dir, setok_error *err)
{
    *out = NULL;
    setok_lora *l = calloc(1, sizeof *l);
    if (!l)
        return setok_fail(err, SETOK_ERR_NOMEM, "lora: out of memory");
    int n = snprintf(l->config_path, sizeof l->config_path, "%s/adapter_config.json", dir);
    setok_status st = SETOK_OK;
    if (n < 0 || (size_t)n >= sizeof l->config_path)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: path too long", dir);
    setok_config *cfg = NULL;
    if (st == SETOK_OK)
        st = setok_config_load(&cfg, l->config_path, err);
    if (st == SETOK_OK)
        st = read_config(l, cfg, err);
    setok_config_free(cfg);
    if (st == SETOK_OK)
        st = setok_weights_open(&l->w, dir, err);
    size_t count = st == SETOK_OK ? setok_weights_count(l->w) : 0;
    if (st == SETOK_OK) {
        l->modules = calloc(count ? count : 1, sizeof *l->modules);
        if (!l->modules)
            st = setok_fail(err, SETOK_ERR_NOMEM, "lora: out of memory");
    }
    for (size_t i = 0; i < count && st == SETOK_OK; i++)
        st = add_tensor(l, setok_weights_at(l->w, i), err);
    for (size_t i = 0; i < l->module_count && st == SETOK_OK; i++)
        if (!l->modules[i].a || !l->modules[i].b)
            st = setok_fail(err, SETOK_ERR_INPUT, "%s: module '%s' has lora_%c but no lora_%c",
                            dir, l->modules[i].name, l->modules[i].a ? 'A' : 'B',
                            l->modules[i].a ? 'B' : 'A');
    if (st == SETOK_OK && l->module_count == 0)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: the adapter has no LoRA tensors", dir);
    if (st != SETOK_OK) {
        setok_lora_free(l);
        return st;
    }
    *out = l;
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * merging */

static lora_module *find_module(setok_lora *l, const char *weight_name)
{
    size_t n = strlen(weight_name), k = sizeof ".weight" - 1;
    if (n <= k || strcmp(weight_name + n - k, ".weight"))
        return NULL;
    for (size_t i = 0; i < l->module_count; i++)
        if (strlen(l->modules[i].name) == n - k && !strncmp(l->modules[i].name, weight_name, n - k))
            return &l->modules[i];
    return NULL;
}

bool setok_lora_targets(setok_lora *lora, const char *weight_name)
{
    return lora && find_module(lora, weight_name) != NULL;
}

// w: [out, in] += scale * B @ A, B: [out, r], A: [r, in], accumulated in double, rounded once
static void merge(float *w, const setok_st_tensor *b, const setok_st_tensor *a, double scale,
                  int64_t out, int64_t in, int64_t r, float *arow, double *acc)
{
    for (int64_t o = 0; o < out; o++) {
        for (int64_t i = 0; i < in; i++)
            acc[i] = 0.0;
        for (int64_t k = 0; k < r; k++) {
            double bk = (float)setok_st_tensor_float_at(b, o * r + k);
            for (int64_t i = 0; i < in; i++)
                arow[i] = (float)setok_st_tensor_float_at(a, k * in + i);
            for (int64_t i = 0; i < in; i++)
                acc[i] += bk * arow[i];
        }
        for (int64_t i = 0; i < in; i++)
            w[o * in + i] = (float)(w[o * in + i] + scale * acc[i]);
    }
}

setok_status setok_lora_merge_f32(setok_lora *lora, const char *weight_name, float *w,
                                  int64_t out, int64_t in, bool *merged, setok_error *err)
{
    *merged = false;
    lora_module *mod = find_module(lora, weight_name);
    if (!mod)
        return SETOK_OK;
    if (mod->a->shape[1] != in)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' has shape [%lld, %lld], but the "
                          "base weight '%s' has %lld inputs", mod->a->file, mod->a->name,
                          (long long)mod->a->shape[0], (long long)mod->a->shape[1], weight_name,
                          (long long)in);
    if (mod->b->shape[0] != out)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' has shape [%lld, %lld], but the "
                          "base weight '%s' has %lld outputs", mod->b->file, mod->b->name,
                          (long long)mod->b->shape[0], (long long)mod->b->shape[1], weight_name,
                          (long long)out);
    float *arow = malloc((size_t)(in ? in : 1) * sizeof *arow);
    double *acc = malloc((size_t)(in ? in : 1) * sizeof *acc);
    if (!arow || !acc) {
        free(arow);
        free(acc);
        return setok_fail(err, SETOK_ERR_NOMEM, "lora: out of memory merging '%s'", weight_name);
    }
    merge(w, mod->b, mod->a, lora->scale, out, in, lora->r, arow, acc);
    free(arow);
    free(acc);
    mod->used = true;
    *merged = true;
    return SETOK_OK;
}

setok_status setok_lora_load_weight(setok_lora *lora, setok_tensor *out, const setok_st_tensor *t,
                                    setok_backend *backend, setok_dtype dtype, setok_error *err)
{
    if (!lora || t->ndim != 2 || !find_module(lora, t->name))
        return setok_weights_load(out, t, backend, dtype, err);
    memset(out, 0, sizeof *out);
    if (!setok_dtype_is_float(dtype))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s': a LoRA target must load as a "
                          "float dtype, not %s", t->file, t->name, setok_dtype_name(dtype));
    if (t->dtype != SETOK_ST_F32 && t->dtype != SETOK_ST_F16 && t->dtype != SETOK_ST_BF16 &&
        t->dtype != SETOK_ST_F64)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' is %s, which cannot take a LoRA "
                          "delta", t->file, t->name, setok_st_dtype_name(t->dtype));
    int64_t rows = t->shape[0], cols = t->shape[1], numel = rows * cols;
    float *host = malloc((size_t)(numel ? numel : 1) * sizeof *host);
    void *staging = dtype == SETOK_F32 ? host : malloc((size_t)(numel ? numel : 1) *
                                                       setok_dtype_size(dtype));
    setok_status st = SETOK_OK;
    if (!host || !staging)
        st = setok_fail(err, SETOK_ERR_NOMEM, "%s: tensor '%s': out of memory for the LoRA merge",
                        t->file, t->name);
    for (int64_t i = 0; st == SETOK_OK && i < numel; i++)
        host[i] = (float)setok_st_tensor_float_at(t, i);
    bool merged = false;
    if (st == SETOK_OK)
        st = setok_lora_merge_f32(lora, t->name, host, rows, cols, &merged, err);
    for (int64_t i = 0; st == SETOK_OK && staging != host && i < numel; i++)
        setok_store_f32(staging, dtype, i, host[i]);
    if (st == SETOK_OK)
        st = setok_tensor_alloc(out, backend, dtype, 2, t->shape, err);
    if (st == SETOK_OK && numel > 0)
        st = setok_tensor_upload(out, staging, err);
    if (st != SETOK_OK)
        setok_tensor_free(out);
    if (staging != host)
        free(staging);
    free(host);
    return st;
}

setok_status setok_lora_check_used(const setok_lora *lora, setok_error *err)
{
    for (size_t i = 0; lora && i < lora->module_count; i++)
        if (!lora->modules[i].used)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: tensor '%s' matches no linear weight of "
                              "the base model ('%s.weight')", lora->modules[i].a->file,
                              lora->modules[i].a->name, lora->modules[i].name);
    return SETOK_OK;
}
