/* model.c — a model folder opened once (model.h): the one place that decides
 * what kind of folder it is, which components it has and which capabilities
 * they allow; the backends; the component table and its accessors. */
#include "model-impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "setok/config.h"
#include "setok/weights.h"

static const char *const kind_names[] = {"setokim", "llava", "vision", "diffusion", "sam"};
_Static_assert(sizeof kind_names / sizeof *kind_names == SETOK_MODEL_KIND_COUNT,
               "one name per setok_model_kind");

static const char *const capability_names[] = {"tokens", "chat", "segment by points",
                                               "segment by phrase", "generate", "edit"};
_Static_assert(sizeof capability_names / sizeof *capability_names == SETOK_CAP_COUNT,
               "one name per setok_capability");

static const char *const component_names[] = {
    "vision", "setok", "tokenizer", "llm", "projector_in", "projector_out", "projector_seg",
    "mapper", "text_encoder", "unet", "vae", "mask_decoder", "image_encoder"};
_Static_assert(sizeof component_names / sizeof *component_names == SETOK_COMPONENT_COUNT,
               "one name per setok_component");

const char *setok_model_kind_name(setok_model_kind kind)
{
    return (unsigned)kind < SETOK_MODEL_KIND_COUNT ? kind_names[kind] : "?";
}

const char *setok_capability_name(setok_capability cap)
{
    return (unsigned)cap < SETOK_CAP_COUNT ? capability_names[cap] : "?";
}

const char *setok_component_name(setok_component c)
{
    return (unsigned)c < SETOK_COMPONENT_COUNT ? component_names[c] : "?";
}

void setok_model_options_default(setok_model_options *o)
{
    memset(o, 0, sizeof *o);
    o->device = "auto";
}

#define BIT(c) (1u << (c))

/* ---------------------------------------------------------------------------
 * what a folder is */

static setok_status set_path(setok_model *m, setok_component c, const char *path,
                             setok_error *err)
{
    free(m->comp[c].path);
    m->comp[c].path = NULL;
    if (path && !(m->comp[c].path = strdup(path)))
        return setok_fail(err, SETOK_ERR_NOMEM, "model: out of memory");
    return SETOK_OK;
}

/* dir/name when it is a folder, else NULL (malloc'd). */
static char *subfolder(const char *dir, const char *name)
{
    char *p = setok_path_join_alloc(dir, name);
    if (p && !setok_is_dir(p)) {
        free(p);
        p = NULL;
    }
    return p;
}

static setok_status open_bundle(setok_model *m, setok_error *err)
{
    static const struct {
        setok_component c;
        setok_bundle_component b;
    } map[] = {
        {SETOK_COMPONENT_VISION, SETOK_BUNDLE_VISION},
        {SETOK_COMPONENT_MERGER, SETOK_BUNDLE_SETOK},
        {SETOK_COMPONENT_TEXT_TOKENIZER, SETOK_BUNDLE_LLM},
        {SETOK_COMPONENT_LLM, SETOK_BUNDLE_LLM},
        {SETOK_COMPONENT_PROJECTOR_IN, SETOK_BUNDLE_PROJECTOR_IN},
        {SETOK_COMPONENT_PROJECTOR_OUT, SETOK_BUNDLE_PROJECTOR_OUT},
        {SETOK_COMPONENT_PROJECTOR_SEG, SETOK_BUNDLE_PROJECTOR_SEG},
        {SETOK_COMPONENT_MAPPER, SETOK_BUNDLE_MAPPER},
        {SETOK_COMPONENT_UNET, SETOK_BUNDLE_UNET},
        {SETOK_COMPONENT_VAE, SETOK_BUNDLE_VAE},
        {SETOK_COMPONENT_MASK_DECODER, SETOK_BUNDLE_MASK_DECODER},
    };
    m->kind = SETOK_MODEL_SETOKIM;
    setok_status st = setok_bundle_load(&m->bundle, m->dir, err);
    for (size_t i = 0; st == SETOK_OK && i < sizeof map / sizeof *map; i++)
        st = set_path(m, map[i].c, m->bundle.components[map[i].b], err);
    const char *sched = m->bundle.components[SETOK_BUNDLE_SCHEDULER];
    if (st == SETOK_OK && sched && !(m->scheduler_dir = strdup(sched)))
        st = setok_fail(err, SETOK_ERR_NOMEM, "model: out of memory");
    return st;
}

/* model_index.json, when present, must name a Stable Diffusion pipeline. */
static setok_status open_diffusion(setok_model *m, setok_error *err)
{
    static const struct {
        setok_component c;
        const char *name;
    } map[] = {
        {SETOK_COMPONENT_TEXT_TOKENIZER, "tokenizer"},
        {SETOK_COMPONENT_TEXT_ENCODER, "text_encoder"},
        {SETOK_COMPONENT_UNET, "unet"},
        {SETOK_COMPONENT_VAE, "vae"},
    };
    m->kind = SETOK_MODEL_DIFFUSION;
    setok_status st = SETOK_OK;
    char *index = setok_path_join_alloc(m->dir, "model_index.json");
    if (!index)
        return setok_fail(err, SETOK_ERR_NOMEM, "model: out of memory");
    if (setok_is_file(index)) {
        setok_config *cfg = NULL;
        const char *cls = NULL;
        st = setok_config_load(&cfg, index, err);
        if (st == SETOK_OK)
            st = setok_config_string_or(cfg, "_class_name", "", &cls, err);
        if (st == SETOK_OK && strncmp(cls, "StableDiffusion", 15) != 0)
            st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: _class_name '%s' is not a Stable "
                            "Diffusion pipeline", index, cls);
        setok_config_free(cfg);
    }
    free(index);
    for (size_t i = 0; st == SETOK_OK && i < sizeof map / sizeof *map; i++) {
        char *p = subfolder(m->dir, map[i].name);
        st = set_path(m, map[i].c, p, err);
        free(p);
    }
    m->scheduler_dir = subfolder(m->dir, "scheduler");
    m->tokenizer_dir = subfolder(m->dir, "tokenizer");
    return st;
}

static bool is_any(const char *s, const char *const *names)
{
    for (; s && *names; names++)
        if (!strcmp(s, *names))
            return true;
    return false;
}

/* image_token_index (or image_token_id) and projector_hidden_act of a LLaVA config. */
static setok_status llava_facts(setok_model *m, const setok_config *cfg, setok_error *err)
{
    const char *path = setok_config_path(cfg), *act = NULL;
    int64_t id = -1;
    setok_status st;
    if (setok_config_has(cfg, "image_token_index"))
        st = setok_config_int(cfg, "image_token_index", &id, err);
    else
        st = setok_config_int_or(cfg, "image_token_id", 32000, &id, err);
    if (st == SETOK_OK && (id < 0 || id > INT32_MAX))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: image_token_index %lld is out of range", path,
                        (long long)id);
    if (st == SETOK_OK)
        st = setok_config_string_or(cfg, "projector_hidden_act", "gelu", &act, err);
    if (st == SETOK_OK)
        st = setok_projector_act_from_name(act, &m->llava_projector_act, path, err);
    m->image_token_index = (int32_t)id;
    return st;
}

/* A folder with config.json: its architectures entry (or model_type) says what it is. */
static setok_status open_config(setok_model *m, const char *path, setok_error *err)
{
    static const char *const llava[] = {"LlavaForConditionalGeneration", "llava", NULL};
    static const char *const vision[] = {
        "CLIPVisionModel", "CLIPVisionModelWithProjection", "clip_vision_model", "CLIPModel",
        "clip", "SiglipVisionModel", "siglip_vision_model", "SiglipModel", "siglip", NULL};
    static const char *const sam[] = {"SamModel", "sam", NULL};
    setok_config *cfg = NULL;
    setok_status st = setok_config_load(&cfg, path, err);
    if (st != SETOK_OK)
        return st;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(setok_config_root(cfg), "architectures");
    const char *arch = NULL, *type = NULL;
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        arch = cJSON_GetArrayItem(archs, 0)->valuestring;
    st = setok_config_string_or(cfg, "model_type", "", &type, err);
    const char *names[2] = {arch, type};
    bool known = false;
    for (int i = 0; st == SETOK_OK && i < 2 && !known; i++) {
        known = true;
        if (is_any(names[i], llava)) {
            m->kind = SETOK_MODEL_LLAVA;
            st = llava_facts(m, cfg, err);
            for (int c = SETOK_COMPONENT_VISION; st == SETOK_OK && c <= SETOK_COMPONENT_PROJECTOR_IN;
                 c++)
                if (c != SETOK_COMPONENT_MERGER)
                    st = set_path(m, (setok_component)c, m->dir, err);
        } else if (is_any(names[i], vision)) {
            m->kind = SETOK_MODEL_VISION;
            st = set_path(m, SETOK_COMPONENT_VISION, m->dir, err);
        } else if (is_any(names[i], sam)) {
            m->kind = SETOK_MODEL_SAM;
            st = set_path(m, SETOK_COMPONENT_MASK_DECODER, m->dir, err);
            if (st == SETOK_OK)
                st = set_path(m, SETOK_COMPONENT_SAM_VISION, m->dir, err);
        } else {
            known = false;
        }
    }
    if (st == SETOK_OK && !known)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: '%s' (model_type '%s') is not a kind of model "
                        "this engine runs (a SETOKIM bundle, LLaVA-1.5, a CLIP or SigLIP vision "
                        "tower, Stable Diffusion, SAM)", path,
                        arch ? arch : "no architectures entry", type);
    setok_config_free(cfg);
    return st;
}

/* vision/ (and setok/) subfolders without a manifest. */
static setok_status open_parts(setok_model *m, const char *vision, setok_error *err)
{
    m->kind = SETOK_MODEL_VISION;
    setok_status st = set_path(m, SETOK_COMPONENT_VISION, vision, err);
    char *setok = subfolder(m->dir, "setok");
    if (st == SETOK_OK && setok && setok_has_file(setok, "config.json"))
        st = set_path(m, SETOK_COMPONENT_MERGER, setok, err);
    free(setok);
    return st;
}

static setok_status detect(setok_model *m, setok_error *err)
{
    if (!setok_is_dir(m->dir))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: not a folder", m->dir);
    if (setok_bundle_is_bundle(m->dir))
        return open_bundle(m, err);
    bool unet = setok_has_file(m->dir, "unet/config.json");
    if (setok_has_file(m->dir, "model_index.json") || unet)
        return open_diffusion(m, err);
    char *config = setok_path_join_alloc(m->dir, "config.json");
    char *vision = setok_path_join_alloc(m->dir, "vision");
    setok_status st = config && vision ? SETOK_OK
                                       : setok_fail(err, SETOK_ERR_NOMEM, "model: out of memory");
    if (st == SETOK_OK && setok_is_file(config))
        st = open_config(m, config, err);
    else if (st == SETOK_OK && setok_has_file(vision, "config.json"))
        st = open_parts(m, vision, err);
    else if (st == SETOK_OK)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: not a model folder (looked for %s, "
                        "model_index.json, config.json and vision/config.json)", m->dir,
                        SETOK_BUNDLE_MANIFEST);
    free(config);
    free(vision);
    return st;
}

/* ---------------------------------------------------------------------------
 * capabilities */

static setok_status set_reason(setok_model *m, setok_capability cap, const char *fmt, ...)
    SETOK_PRINTF(3, 4);

static setok_status set_reason(setok_model *m, setok_capability cap, const char *fmt, ...)
{
    char buf[SETOK_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(m->why_not[cap]);
    m->why_not[cap] = strdup(buf);
    return m->why_not[cap] ? SETOK_OK : SETOK_ERR_NOMEM;
}

/* The first component of mask the model lacks, or -1. */
static int first_missing(const setok_model *m, unsigned mask)
{
    for (int c = 0; c < SETOK_COMPONENT_COUNT; c++)
        if ((mask & BIT(c)) && !m->comp[c].path)
            return c;
    return -1;
}

static void decide_bundle(setok_model *m)
{
    const setok_bundle *b = &m->bundle;
    unsigned tokens = BIT(SETOK_COMPONENT_VISION) | BIT(SETOK_COMPONENT_MERGER);
    unsigned chat = tokens | BIT(SETOK_COMPONENT_TEXT_TOKENIZER) | BIT(SETOK_COMPONENT_LLM) |
                    BIT(SETOK_COMPONENT_PROJECTOR_IN);
    unsigned draw = chat | BIT(SETOK_COMPONENT_PROJECTOR_OUT) | BIT(SETOK_COMPONENT_MAPPER) |
                    BIT(SETOK_COMPONENT_UNET) | BIT(SETOK_COMPONENT_VAE);
    m->needs[SETOK_CAP_TOKENS] = m->comp[SETOK_COMPONENT_MERGER].path
                                     ? tokens : BIT(SETOK_COMPONENT_VISION);
    m->needs[SETOK_CAP_SEGMENT_POINTS] = m->needs[SETOK_CAP_TOKENS];
    m->needs[SETOK_CAP_CHAT] = chat;
    m->needs[SETOK_CAP_SEGMENT_PHRASE] =
        chat | BIT(SETOK_COMPONENT_PROJECTOR_SEG) | BIT(SETOK_COMPONENT_MASK_DECODER);
    m->needs[SETOK_CAP_GENERATE] = m->needs[SETOK_CAP_EDIT] = draw;
    for (int cap = 0; cap < SETOK_CAP_COUNT; cap++) {
        int c = first_missing(m, m->needs[cap]);
        if (c >= 0)
            set_reason(m, cap, "%s lists no '%s' component", b->manifest,
                       c == SETOK_COMPONENT_TEXT_TOKENIZER ? "llm" : component_names[c]);
    }
    if (!m->why_not[SETOK_CAP_SEGMENT_PHRASE] && !b->segment_token)
        set_reason(m, SETOK_CAP_SEGMENT_PHRASE, "%s has no segment_token", b->manifest);
    for (int cap = SETOK_CAP_GENERATE; cap <= SETOK_CAP_EDIT; cap++) {
        if (!m->why_not[cap] && !m->scheduler_dir)
            set_reason(m, cap, "%s lists no 'scheduler' component", b->manifest);
        else if (!m->why_not[cap] && b->n_visual_tokens == 0)
            set_reason(m, cap, "%s has no visual_tokens", b->manifest);
    }
}

static void decide(setok_model *m)
{
    unsigned vision = BIT(SETOK_COMPONENT_VISION);
    unsigned sd = BIT(SETOK_COMPONENT_TEXT_TOKENIZER) | BIT(SETOK_COMPONENT_TEXT_ENCODER) |
                  BIT(SETOK_COMPONENT_UNET) | BIT(SETOK_COMPONENT_VAE);
    switch (m->kind) {
    case SETOK_MODEL_SETOKIM:
        decide_bundle(m);
        return;
    case SETOK_MODEL_LLAVA:
        m->needs[SETOK_CAP_TOKENS] = m->needs[SETOK_CAP_SEGMENT_POINTS] = vision;
        m->needs[SETOK_CAP_CHAT] = vision | BIT(SETOK_COMPONENT_TEXT_TOKENIZER) |
                                   BIT(SETOK_COMPONENT_LLM) | BIT(SETOK_COMPONENT_PROJECTOR_IN);
        for (int cap = SETOK_CAP_SEGMENT_PHRASE; cap < SETOK_CAP_COUNT; cap++)
            set_reason(m, cap, "%s is a LLaVA folder: it has no mask decoder, U-Net or VAE",
                       m->dir);
        return;
    case SETOK_MODEL_VISION:
        m->needs[SETOK_CAP_TOKENS] = m->needs[SETOK_CAP_SEGMENT_POINTS] =
            vision | (m->comp[SETOK_COMPONENT_MERGER].path ? BIT(SETOK_COMPONENT_MERGER) : 0);
        set_reason(m, SETOK_CAP_CHAT, "%s is a vision tower: it has no language model", m->dir);
        for (int cap = SETOK_CAP_SEGMENT_PHRASE; cap < SETOK_CAP_COUNT; cap++)
            set_reason(m, cap, "%s is a vision tower: it has no language model or decoders",
                       m->dir);
        return;
    case SETOK_MODEL_DIFFUSION:
        for (int cap = 0; cap < SETOK_CAP_GENERATE; cap++)
            set_reason(m, cap, "%s is a Stable Diffusion folder: it has no vision tower or "
                       "language model", m->dir);
        for (int cap = SETOK_CAP_GENERATE; cap <= SETOK_CAP_EDIT; cap++) {
            m->needs[cap] = sd;
            int c = first_missing(m, sd);
            if (c >= 0)
                set_reason(m, cap, "%s: no %s/ folder", m->dir,
                           c == SETOK_COMPONENT_TEXT_TOKENIZER ? "tokenizer" : component_names[c]);
            else if (!m->scheduler_dir)
                set_reason(m, cap, "%s: no scheduler/ folder", m->dir);
        }
        return;
    case SETOK_MODEL_SAM:
    default:
        m->needs[SETOK_CAP_SEGMENT_POINTS] =
            BIT(SETOK_COMPONENT_SAM_VISION) | BIT(SETOK_COMPONENT_MASK_DECODER);
        for (int cap = 0; cap < SETOK_CAP_COUNT; cap++)
            if (cap != SETOK_CAP_SEGMENT_POINTS)
                set_reason(m, cap, "%s is a SAM folder: it segments by points and boxes only",
                           m->dir);
        return;
    }
}

bool setok_model_can(const setok_model *m, setok_capability cap)
{
    return (unsigned)cap < SETOK_CAP_COUNT && !m->why_not[cap];
}

const char *setok_model_why_not(const setok_model *m, setok_capability cap)
{
    if ((unsigned)cap >= SETOK_CAP_COUNT)
        return "no such capability";
    return m->why_not[cap];
}

setok_status setok_model_require(setok_model *m, setok_capability cap, setok_error *err)
{
    if ((unsigned)cap >= SETOK_CAP_COUNT)
        return setok_fail(err, SETOK_ERR_INPUT, "model: no such capability");
    if (m->why_not[cap])
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s", capability_names[cap], m->why_not[cap]);
    if (m->checked[cap])
        return SETOK_OK;
    setok_status st = SETOK_OK;
    for (int c = 0; c < SETOK_COMPONENT_COUNT && st == SETOK_OK; c++)
        if (m->needs[cap] & BIT(c))
            st = model_load_component(m, (setok_component)c, err);
    if (st == SETOK_OK)
        st = model_check_fit(m, cap, err);
    if (st == SETOK_OK) {
        m->checked[cap] = true;
        return SETOK_OK;
    }
    if (st != SETOK_ERR_CANCELLED && set_reason(m, cap, "%s", err ? err->message : "") != SETOK_OK)
        return setok_fail(err, SETOK_ERR_NOMEM, "model: out of memory");
    return err ? setok_error_prefix(err, "%s", capability_names[cap]) : st;
}

setok_status setok_model_load_all(setok_model *m, setok_error *err)
{
    setok_status first = SETOK_OK;
    setok_error e = {0};
    for (int c = 0; c < SETOK_COMPONENT_COUNT; c++) {
        if (!m->comp[c].path)
            continue;
        setok_status st = model_load_component(m, (setok_component)c, &e);
        if (st != SETOK_OK && first == SETOK_OK) {
            first = st;
            if (err)
                *err = e;
        }
    }
    return first;
}

/* ---------------------------------------------------------------------------
 * dtypes */

/* The parameters of every component's files, and the 16-bit dtype most of them are
 * stored in (SETOK_F32 when none is). */
/* The parameters of the model's weights, the 16-bit dtype most of them are stored in
 * (else f32), and the block format of a folder written by setok_model_quantize (else
 * SETOK_DTYPE_COUNT). */
static setok_status scan_weights(const setok_model *m, double *params, setok_dtype *stored,
                                 setok_dtype *quantized, setok_error *err)
{
    double by16[2] = {0, 0};
    *params = 0;
    *quantized = SETOK_DTYPE_COUNT;
    for (int c = 0; c < SETOK_COMPONENT_COUNT; c++) {
        const char *path = m->comp[c].path;
        bool seen = false; /* a folder serving two components (LLaVA) counts once */
        for (int e = 0; path && e < c; e++)
            seen |= m->comp[e].path && !strcmp(m->comp[e].path, path);
        setok_weights *w = NULL;
        if (!path || seen || c == SETOK_COMPONENT_TEXT_TOKENIZER)
            continue;
        setok_status st = setok_weights_open(&w, path, err);
        if (st != SETOK_OK)
            return st;
        for (size_t f = 0; f < setok_weights_file_count(w); f++) {
            const char *q = setok_safetensors_metadata(setok_weights_file(w, f),
                                                       "setok_quantized");
            setok_dtype d;
            if (q && setok_dtype_from_name(q, &d) && setok_dtype_is_quantized(d))
                *quantized = d;
        }
        for (size_t i = 0; i < setok_weights_count(w); i++) {
            const setok_st_tensor *t = setok_weights_at(w, i);
            double n = 1;
            for (int d = 0; d < t->ndim; d++)
                n *= (double)t->shape[d];
            *params += n;
            setok_dtype e = setok_st_dtype_to_engine(t->dtype);
            if (e == SETOK_F16 || e == SETOK_BF16)
                by16[e == SETOK_BF16] += n;
        }
        setok_weights_close(w);
    }
    *stored = by16[0] + by16[1] == 0 ? SETOK_F32 : by16[1] > by16[0] ? SETOK_BF16 : SETOK_F16;
    return SETOK_OK;
}

/* The dtypes the options ask for, on the model's backend. */
static setok_status choose_dtypes(setok_model *m, const setok_model_options *o, setok_error *err)
{
    setok_dtype want = SETOK_DTYPE_COUNT, quant = SETOK_DTYPE_COUNT;
    if (o->dtype && strcmp(o->dtype, "auto") &&
        (!setok_dtype_from_name(o->dtype, &want) || !setok_dtype_is_float(want)))
        return setok_fail(err, SETOK_ERR_INPUT, "dtype '%s' is not auto, f32, f16 or bf16",
                          o->dtype);
    if (o->weights && o->weights[0] && strcmp(o->weights, "none") &&
        (!setok_dtype_from_name(o->weights, &quant) || !setok_dtype_is_quantized(quant)))
        return setok_fail(err, SETOK_ERR_INPUT, "weights '%s' is not q8 or q4", o->weights);
    if (!setok_backend_is_host(m->backend)) {
        if (quant != SETOK_DTYPE_COUNT)
            return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s weights run on the CPU only; on "
                              "%s use a 16-bit dtype", setok_dtype_name(quant),
                              setok_backend_description(m->backend));
        m->dtype = m->matrix = want != SETOK_DTYPE_COUNT ? want : SETOK_F16;
        return SETOK_OK;
    }
    m->dtype = SETOK_F32;
    if (quant != SETOK_DTYPE_COUNT || want != SETOK_DTYPE_COUNT) {
        m->matrix = quant != SETOK_DTYPE_COUNT ? quant : want;
        return SETOK_OK;
    }
    double params = 0;
    setok_dtype stored = SETOK_F32, quantized;
    setok_status st = scan_weights(m, &params, &stored, &quantized, err);
    m->matrix = quantized != SETOK_DTYPE_COUNT ? quantized
                : params * 4.0 <= 2.0 * (1u << 30) ? SETOK_F32 : stored;
    return st;
}

/* ---------------------------------------------------------------------------
 * open and free */

setok_status setok_model_open(setok_model **out, const char *dir, const setok_model_options *o,
                              setok_error *err)
{
    *out = NULL;
    setok_model_options defaults;
    if (!o) {
        setok_model_options_default(&defaults);
        o = &defaults;
    }
    setok_model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(dir)) || (o->adapter && !(m->adapter = strdup(o->adapter)))) {
        setok_model_free(m);
        return setok_fail(err, SETOK_ERR_NOMEM, "model: out of memory");
    }
    m->image_token_index = -1;
    setok_status st = detect(m, err);
    if (st == SETOK_OK)
        st = setok_backend_create_by_name(&m->backend, o->device ? o->device : "auto",
                                          o->threads, err);
    if (st == SETOK_OK && !setok_backend_is_host(m->backend))
        st = setok_backend_cpu_create(&m->host, o->threads, err);
    if (st != SETOK_OK) {
        setok_model_free(m);
        return st;
    }
    if (!m->host)
        m->host = m->backend;
    st = choose_dtypes(m, o, err);
    if (st != SETOK_OK) {
        setok_model_free(m);
        return st;
    }
    decide(m);
    for (int cap = 0; cap < SETOK_CAP_COUNT; cap++)
        if (!m->needs[cap] && !m->why_not[cap] &&
            set_reason(m, (setok_capability)cap, "not available") != SETOK_OK) {
            setok_model_free(m);
            return setok_fail(err, SETOK_ERR_NOMEM, "model: out of memory");
        }
    /* a malformed chat template costs the folder its chat, not its other capabilities */
    setok_error e = {0};
    st = m->why_not[SETOK_CAP_CHAT] ? SETOK_OK : model_prompt_init(m, &e);
    if (st == SETOK_ERR_INPUT)
        st = set_reason(m, SETOK_CAP_CHAT, "%s", e.message);
    if (st == SETOK_OK)
        st = model_processor_notes(m, &e);
    if (st != SETOK_OK) {
        setok_model_free(m);
        return setok_fail(err, SETOK_ERR_NOMEM, "model: out of memory");
    }
    *out = m;
    return SETOK_OK;
}

void setok_model_free(setok_model *m)
{
    if (!m)
        return;
    model_unload(m);
    model_features_free(m);
    model_prompt_free(m);
    model_sam_free(m);
    for (int c = 0; c < SETOK_COMPONENT_COUNT; c++) {
        free(m->comp[c].path);
        free(m->comp[c].error);
    }
    for (int cap = 0; cap < SETOK_CAP_COUNT; cap++)
        free(m->why_not[cap]);
    if (m->kind == SETOK_MODEL_SETOKIM)
        setok_bundle_free(&m->bundle);
    if (m->host && m->host != m->backend)
        setok_backend_free(m->host);
    setok_backend_free(m->backend);
    free(m->scheduler_dir);
    free(m->tokenizer_dir);
    free(m->adapter);
    free(m->dir);
    free(m);
}

/* ---------------------------------------------------------------------------
 * accessors */

const char *setok_model_dir(const setok_model *m) { return m->dir; }
setok_model_kind setok_model_kind_of(const setok_model *m) { return m->kind; }
setok_backend *setok_model_backend(const setok_model *m) { return m->backend; }
setok_backend *setok_model_host_backend(const setok_model *m) { return m->host; }
setok_dtype setok_model_dtype(const setok_model *m) { return m->dtype; }
setok_dtype setok_model_matrix_dtype(const setok_model *m) { return m->matrix; }
const char *setok_model_device(const setok_model *m) { return setok_backend_description(m->backend); }
int setok_model_encode_count(const setok_model *m) { return m->encodes; }

const setok_bundle *setok_model_bundle(const setok_model *m)
{
    return m->kind == SETOK_MODEL_SETOKIM ? &m->bundle : NULL;
}

int32_t setok_model_image_token_index(const setok_model *m) { return m->image_token_index; }
const char *setok_model_scheduler_dir(const setok_model *m) { return m->scheduler_dir; }
const char *setok_model_tokenizer_dir(const setok_model *m) { return m->tokenizer_dir; }

void setok_model_component_info(const setok_model *m, setok_component c,
                                setok_component_info *info)
{
    memset(info, 0, sizeof *info);
    if ((unsigned)c >= SETOK_COMPONENT_COUNT)
        return;
    const model_component *mc = &m->comp[c];
    info->path = mc->path;
    info->loaded = mc->obj != NULL;
    info->loads = mc->loads;
    info->load_ms = mc->load_ms;
    info->bytes = mc->bytes;
    info->error = mc->error;
}

/* The loaded object of c (loading it first). */
static setok_status component(setok_model *m, setok_component c, void **obj, setok_error *err)
{
    *obj = NULL;
    setok_status st = model_load_component(m, c, err);
    if (st == SETOK_OK)
        *obj = m->comp[c].obj;
    return st;
}

setok_status setok_model_vit(setok_model *m, setok_vit **out, setok_error *err)
{
    return component(m, SETOK_COMPONENT_VISION, (void **)out, err);
}

setok_status setok_model_merger(setok_model *m, setok_merger **out, setok_error *err)
{
    *out = NULL;
    if (!m->comp[SETOK_COMPONENT_MERGER].path)
        return SETOK_OK;
    return component(m, SETOK_COMPONENT_MERGER, (void **)out, err);
}

setok_status setok_model_text_tokenizer(setok_model *m, setok_text_tokenizer **out,
                                        setok_error *err)
{
    return component(m, SETOK_COMPONENT_TEXT_TOKENIZER, (void **)out, err);
}

setok_status setok_model_llm(setok_model *m, setok_llama **out, setok_error *err)
{
    return component(m, SETOK_COMPONENT_LLM, (void **)out, err);
}

setok_status setok_model_projector(setok_model *m, setok_component which,
                                   const setok_projector **out, setok_error *err)
{
    *out = NULL;
    if (which != SETOK_COMPONENT_PROJECTOR_IN && which != SETOK_COMPONENT_PROJECTOR_OUT &&
        which != SETOK_COMPONENT_PROJECTOR_SEG)
        return setok_fail(err, SETOK_ERR_INPUT, "model: '%s' is not a projector",
                          setok_component_name(which));
    return component(m, which, (void **)out, err);
}

setok_status setok_model_mapper(setok_model *m, setok_qformer **out, setok_error *err)
{
    return component(m, SETOK_COMPONENT_MAPPER, (void **)out, err);
}

setok_status setok_model_text_encoder(setok_model *m, setok_clip_text **out, setok_error *err)
{
    return component(m, SETOK_COMPONENT_TEXT_ENCODER, (void **)out, err);
}

setok_status setok_model_unet(setok_model *m, setok_unet **out, setok_error *err)
{
    return component(m, SETOK_COMPONENT_UNET, (void **)out, err);
}

setok_status setok_model_vae(setok_model *m, setok_vae **out, setok_error *err)
{
    return component(m, SETOK_COMPONENT_VAE, (void **)out, err);
}

setok_status setok_model_mask_decoder(setok_model *m, setok_mask_decoder **out, setok_error *err)
{
    return component(m, SETOK_COMPONENT_MASK_DECODER, (void **)out, err);
}

setok_status setok_model_sam_vision(setok_model *m, setok_sam_vision **out, setok_error *err)
{
    return component(m, SETOK_COMPONENT_SAM_VISION, (void **)out, err);
}

setok_status setok_model_feature_layer(setok_model *m, int *layer, setok_error *err)
{
    setok_vit *vit = NULL;
    setok_status st = setok_model_vit(m, &vit, err);
    if (st != SETOK_OK)
        return st;
    *layer = m->kind == SETOK_MODEL_SETOKIM ? m->bundle.vision_feature_layer
                                            : setok_vit_get_config(vit)->feature_layer;
    return SETOK_OK;
}
