/* model-load.c — loading each component of a setok_model once (with its load
 * time and the backend memory it took), after checking that its weights fit in the
 * memory the machine has free; and checking that the components a capability uses fit
 * each other. */
#include "model-impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "setok/clock.h"
#include "setok/models/scheduler.h"
#include "setok/weights.h"

/* LLaVA's multi_modal_projector sits in the folder's weights beside the tower and the LLM;
 * its sizes come from the two configs. */
static setok_status load_llava_projector(setok_model *m, setok_projector *p, setok_error *err)
{
    setok_vit_config vc;
    setok_llama_config lc;
    setok_weights *w = NULL;
    setok_status st = setok_vit_config_load(&vc, m->dir, err);
    if (st == SETOK_OK)
        st = setok_llama_config_load(&lc, m->dir, err);
    if (st == SETOK_OK)
        st = setok_weights_open(&w, m->dir, err);
    if (st == SETOK_OK)
        st = setok_projector_load_llava(p, w, vc.hidden_size, lc.hidden_size,
                                        m->llava_projector_act, m->backend, m->dtype, err);
    setok_weights_close(w);
    return st;
}

static setok_status load_projector(setok_model *m, setok_component c, void **obj,
                                   setok_error *err)
{
    setok_projector *p = calloc(1, sizeof *p);
    if (!p)
        return setok_fail(err, SETOK_ERR_NOMEM, "model: out of memory");
    setok_status st = m->kind == SETOK_MODEL_LLAVA && c == SETOK_COMPONENT_PROJECTOR_IN
                          ? load_llava_projector(m, p, err)
                          : setok_projector_load(p, m->comp[c].path, m->backend, m->dtype, err);
    if (st != SETOK_OK) {
        setok_projector_free(p);
        free(p);
        return st;
    }
    *obj = p;
    return SETOK_OK;
}

static setok_status load(setok_model *m, setok_component c, void **obj, setok_error *err)
{
    const char *path = m->comp[c].path;
    setok_backend *be = m->backend;
    setok_dtype dt = m->dtype;
    switch (c) {
    case SETOK_COMPONENT_VISION:
        return setok_vit_load((setok_vit **)obj, path, be, dt, m->matrix, err);
    case SETOK_COMPONENT_MERGER:
        return setok_merger_load((setok_merger **)obj, path, be, dt, err);
    case SETOK_COMPONENT_TEXT_TOKENIZER:
        return setok_text_tokenizer_load((setok_text_tokenizer **)obj, path, err);
    case SETOK_COMPONENT_LLM:
        return setok_llama_load((setok_llama **)obj, path, m->adapter, be, dt, m->matrix, err);
    case SETOK_COMPONENT_PROJECTOR_IN:
    case SETOK_COMPONENT_PROJECTOR_OUT:
    case SETOK_COMPONENT_PROJECTOR_SEG:
        return load_projector(m, c, obj, err);
    case SETOK_COMPONENT_MAPPER:
        return setok_qformer_load((setok_qformer **)obj, path, be, dt, m->matrix, err);
    case SETOK_COMPONENT_TEXT_ENCODER:
        return setok_clip_text_load((setok_clip_text **)obj, path, be, dt, m->matrix, err);
    case SETOK_COMPONENT_UNET:
        return setok_unet_load((setok_unet **)obj, path, be, dt, m->matrix, err);
    case SETOK_COMPONENT_VAE:
        return setok_vae_load((setok_vae **)obj, path, be, dt, err);
    case SETOK_COMPONENT_MASK_DECODER:
        return setok_mask_decoder_load((setok_mask_decoder **)obj, path, be, dt, err);
    case SETOK_COMPONENT_SAM_VISION:
        return setok_sam_vision_load((setok_sam_vision **)obj, path, be, dt, m->matrix, err);
    case SETOK_COMPONENT_COUNT:
        break;
    }
    return setok_fail(err, SETOK_ERR_INPUT, "model: no such component");
}

static void free_component(setok_component c, void *obj)
{
    switch (c) {
    case SETOK_COMPONENT_VISION: setok_vit_free(obj); break;
    case SETOK_COMPONENT_MERGER: setok_merger_free(obj); break;
    case SETOK_COMPONENT_TEXT_TOKENIZER: setok_text_tokenizer_free(obj); break;
    case SETOK_COMPONENT_LLM: setok_llama_free(obj); break;
    case SETOK_COMPONENT_PROJECTOR_IN:
    case SETOK_COMPONENT_PROJECTOR_OUT:
    case SETOK_COMPONENT_PROJECTOR_SEG:
        setok_projector_free(obj);
        free(obj);
        break;
    case SETOK_COMPONENT_MAPPER: setok_qformer_free(obj); break;
    case SETOK_COMPONENT_TEXT_ENCODER: setok_clip_text_free(obj); break;
    case SETOK_COMPONENT_UNET: setok_unet_free(obj); break;
    case SETOK_COMPONENT_VAE: setok_vae_free(obj); break;
    case SETOK_COMPONENT_MASK_DECODER: setok_mask_decoder_free(obj); break;
    case SETOK_COMPONENT_SAM_VISION: setok_sam_vision_free(obj); break;
    case SETOK_COMPONENT_COUNT: break;
    }
}

void model_unload(setok_model *m)
{
    for (int c = 0; c < SETOK_COMPONENT_COUNT; c++) {
        if (m->comp[c].obj)
            free_component((setok_component)c, m->comp[c].obj);
        m->comp[c].obj = NULL;
    }
}

/* ---------------------------------------------------------------------------
 * will it fit: a component too large for the machine is refused with its estimate
 * rather than loaded until the kernel kills the process */

/* The weights of a component whose folder others share (a LLaVA folder holds the tower,
 * the projector and the LLM) are the tensors under its prefixes; NULL: every tensor. */
static const char *const *shared_prefixes(setok_component c)
{
    static const char *const vision[] = {"vision_tower.", "model.vision_tower.", NULL};
    static const char *const llm[] = {"language_model.", "model.language_model.", "lm_head.",
                                      NULL};
    static const char *const projector[] = {"multi_modal_projector.",
                                            "model.multi_modal_projector.", NULL};
    static const char *const sam[] = {"mask_decoder.", "prompt_encoder.",
                                      "shared_image_embedding.", NULL};
    static const char *const sam_vision[] = {"vision_encoder.", NULL};
    switch (c) {
    case SETOK_COMPONENT_VISION: return vision;
    case SETOK_COMPONENT_LLM: return llm;
    case SETOK_COMPONENT_PROJECTOR_IN: return projector;
    case SETOK_COMPONENT_MASK_DECODER: return sam;
    case SETOK_COMPONENT_SAM_VISION: return sam_vision;
    default: return NULL;
    }
}

static bool has_prefix(const char *name, const char *const *prefixes)
{
    for (; *prefixes; prefixes++)
        if (strncmp(name, *prefixes, strlen(*prefixes)) == 0)
            return true;
    return false;
}

/* Bytes component c's weights take once loaded: float matrices at the model's matrix dtype,
 * other float tensors at its dtype (what the loaders make of them), the others as stored. 0 when they do not open: the
 * load then says why, after what it checks first (the config). */
static uint64_t weight_bytes(const setok_model *m, setok_component c)
{
    uint64_t bytes = 0;
    bool shared = false;
    for (int o = 0; o < SETOK_COMPONENT_COUNT; o++)
        shared |= o != (int)c && m->comp[o].path && !strcmp(m->comp[o].path, m->comp[c].path);
    const char *const *prefixes = shared ? shared_prefixes(c) : NULL;
    setok_weights *w = NULL;
    if (setok_weights_open(&w, m->comp[c].path, NULL) != SETOK_OK)
        return 0;
    for (size_t i = 0; i < setok_weights_count(w); i++) {
        const setok_st_tensor *t = setok_weights_at(w, i);
        if (prefixes && !has_prefix(t->name, prefixes))
            continue;
        uint64_t n = t->nbytes;
        uint64_t count = n / setok_st_dtype_size(t->dtype);
        if (setok_dtype_is_float(setok_st_dtype_to_engine(t->dtype)) ||
            t->dtype == SETOK_ST_F64) {
            /* matrices at the matrix dtype (rows padded to whole blocks when quantized) */
            bool matrix = t->ndim == 2 && m->matrix != m->dtype;
            int block = setok_dtype_block(m->matrix);
            int64_t cols = t->ndim == 2 ? t->shape[1] : 0;
            n = matrix ? setok_dtype_bytes(m->matrix, (cols + block - 1) / block * block) *
                             (uint64_t)t->shape[0]
                       : count * setok_dtype_size(m->dtype);
        }
        bytes += n;
    }
    setok_weights_close(w);
    return bytes;
}

/* "1.5 GiB" */
static const char *format_bytes(char *buf, size_t size, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (bytes >= 1024 && u < 5)
        bytes /= 1024, u++;
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

/* A "Key: N kB" line of /proc/meminfo, in bytes; 0 when absent. */
static uint64_t meminfo(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    uint64_t kb = 0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':' && sscanf(line + n + 1, "%" SCNu64, &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

/* Memory this process can still take on the host: what the kernel calls available, within
 * a cgroup's limit when it has one (containers); 0 when unknown. */
static uint64_t host_memory_free(void)
{
    uint64_t free_bytes = meminfo("MemAvailable");
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
    uint64_t limit = 0, used = 0;
    if (f && fscanf(f, "%" SCNu64, &limit) == 1) {
        FILE *g = fopen("/sys/fs/cgroup/memory.current", "r");
        if (g && fscanf(g, "%" SCNu64, &used) == 1 && limit > used &&
            (free_bytes == 0 || limit - used < free_bytes))
            free_bytes = limit - used;
        if (g)
            fclose(g);
    }
    if (f)
        fclose(f);
    return free_bytes;
}

static setok_status check_fits(setok_model *m, setok_component c, setok_error *err)
{
    if (c == SETOK_COMPONENT_TEXT_TOKENIZER)
        return SETOK_OK;
    uint64_t need = weight_bytes(m, c), have;
    bool host = setok_backend_is_host(m->backend);
    if (host) {
        have = host_memory_free();
    } else {
        setok_cuda_info info;
        setok_cuda_query(&info);
        have = info.free_memory;
    }
    if (have == 0 || need <= have)
        return SETOK_OK;
    char nb[32], hb[32];
    return setok_fail(err, SETOK_ERR_INPUT, "%s: the weights of component '%s' need about %s as "
                      "%s, more than the %s of %s memory free on this machine", m->comp[c].path,
                      setok_component_name(c), format_bytes(nb, sizeof nb, (double)need),
                      setok_dtype_name(m->matrix), format_bytes(hb, sizeof hb, (double)have),
                      host ? "host" : "GPU");
}

setok_status model_load_component(setok_model *m, setok_component c, setok_error *err)
{
    if ((unsigned)c >= SETOK_COMPONENT_COUNT)
        return setok_fail(err, SETOK_ERR_INPUT, "model: no such component");
    model_component *mc = &m->comp[c];
    if (mc->obj)
        return SETOK_OK;
    if (!mc->path)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: this %s model has no '%s' component",
                          m->dir, setok_model_kind_name(m->kind), setok_component_name(c));
    if (mc->error)
        return setok_fail(err, SETOK_ERR_INPUT, "%s", mc->error);
    size_t before = setok_backend_memory_in_use(m->backend);
    double t0 = setok_clock_ms();
    setok_error e = {0};
    setok_status st = check_fits(m, c, &e);
    if (st == SETOK_OK)
        st = load(m, c, &mc->obj, &e);
    if (st != SETOK_OK) {
        mc->obj = NULL;
        mc->error = strdup(e.message);
        if (err)
            *err = e;
        return st;
    }
    mc->load_ms = setok_clock_ms() - t0;
    size_t after = setok_backend_memory_in_use(m->backend);
    mc->bytes = after > before ? after - before : 0;
    mc->loads++;
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * do the components fit each other */

#define OBJ(m, c) ((m)->comp[c].obj)

static setok_status fit_tokens(setok_model *m, setok_error *err)
{
    const setok_merger *mg = OBJ(m, SETOK_COMPONENT_MERGER);
    const setok_vit_config *vc = setok_vit_get_config(OBJ(m, SETOK_COMPONENT_VISION));
    if (mg && setok_merger_get_config(mg)->hidden_size != vc->hidden_size)
        return setok_fail(err, SETOK_ERR_INPUT, "%s/config.json: hidden_size %d does not match "
                          "the vision tower's %d", m->comp[SETOK_COMPONENT_MERGER].path,
                          setok_merger_get_config(mg)->hidden_size, vc->hidden_size);
    if (m->kind != SETOK_MODEL_SETOKIM || m->bundle.image_size <= 0)
        return SETOK_OK;
    const setok_vit *vit = OBJ(m, SETOK_COMPONENT_VISION);
    int w = 0, h = 0, size = m->bundle.image_size;
    setok_vit_preprocess_size(setok_vit_get_preprocessor(vit), size, size, &w, &h);
    if (vc->image_size != size || w != size || h != size)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: image_size is %d, but the vision tower "
                          "takes %d px and its processor makes %d x %d inputs",
                          m->bundle.manifest, size, vc->image_size, w, h);
    return SETOK_OK;
}

/* A projector must read in_features and write out_features. */
static setok_status fit_projector(const setok_model *m, setok_component c, int in, int out,
                                  const char *in_what, const char *out_what, setok_error *err)
{
    const setok_projector *p = OBJ(m, c);
    if ((in < 0 || p->in_features == in) && (out < 0 || p->out_features == out))
        return SETOK_OK;
    return setok_fail(err, SETOK_ERR_INPUT, "%s/config.json: in_features %d, out_features %d; "
                      "%s is %d and %s %d", m->comp[c].path, p->in_features, p->out_features,
                      in_what, in, out_what, out);
}

static setok_status fit_chat(setok_model *m, setok_error *err)
{
    setok_status st = fit_tokens(m, err);
    const setok_merger *mg = OBJ(m, SETOK_COMPONENT_MERGER);
    const setok_vit_config *vc = setok_vit_get_config(OBJ(m, SETOK_COMPONENT_VISION));
    int hidden = setok_llama_get_config(OBJ(m, SETOK_COMPONENT_LLM))->hidden_size;
    int width = mg ? setok_merger_get_config(mg)->output_size : vc->hidden_size;
    if (st == SETOK_OK)
        st = fit_projector(m, SETOK_COMPONENT_PROJECTOR_IN, width, hidden,
                           mg ? "the merger's output_size" : "the vision tower's hidden_size",
                           "the LLM's hidden_size", err);
    const setok_text_tokenizer *tok = OBJ(m, SETOK_COMPONENT_TEXT_TOKENIZER);
    int32_t id = m->image_token_index;
    if (st == SETOK_OK && m->kind == SETOK_MODEL_LLAVA &&
        (id >= setok_text_tokenizer_vocab_size(tok) || !setok_text_tokenizer_id_to_token(tok, id)))
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: image_token_index %d is not a token of the "
                        "tokenizer", m->dir, id);
    return st;
}

static setok_status fit_phrase(setok_model *m, setok_error *err)
{
    setok_status st = fit_chat(m, err);
    const setok_mask_decoder_config *dc =
        setok_mask_decoder_get_config(OBJ(m, SETOK_COMPONENT_MASK_DECODER));
    int vision = setok_vit_get_config(OBJ(m, SETOK_COMPONENT_VISION))->hidden_size;
    int hidden = setok_llama_get_config(OBJ(m, SETOK_COMPONENT_LLM))->hidden_size;
    if (st == SETOK_OK && dc->hidden_size != vision)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s/config.json: hidden_size %d is not the vision "
                        "tower's %d", m->comp[SETOK_COMPONENT_MASK_DECODER].path, dc->hidden_size,
                        vision);
    if (st == SETOK_OK)
        st = fit_projector(m, SETOK_COMPONENT_PROJECTOR_SEG, hidden, dc->hidden_size,
                           "the LLM's hidden_size", "the mask decoder's hidden_size", err);
    return st;
}

/* The U-Net against its conditioning (width cond) and the VAE; the scheduler's config. */
static setok_status fit_unet(setok_model *m, int cond, const char *cond_what, setok_error *err)
{
    const setok_unet_config *uc = setok_unet_get_config(OBJ(m, SETOK_COMPONENT_UNET));
    const setok_vae_config *vc = setok_vae_get_config(OBJ(m, SETOK_COMPONENT_VAE));
    const char *unet = m->comp[SETOK_COMPONENT_UNET].path;
    if (uc->cross_attention_dim[0] != cond)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: the U-Net's cross_attention_dim %d is not "
                          "the %s's hidden_size %d", unet, uc->cross_attention_dim[0], cond_what,
                          cond);
    /* in: the latents; with the source's latents (InstructPix2Pix); or with a mask channel and
     * the masked image's latents (inpainting) */
    int lc = vc->latent_channels;
    if (lc != uc->out_channels ||
        (uc->in_channels != lc && uc->in_channels != 2 * lc && uc->in_channels != 2 * lc + 1))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: the U-Net's in/out channels %d/%d do not "
                          "fit the VAE's %d latent channels (in: %d, %d for InstructPix2Pix or "
                          "%d for inpainting)", m->dir, uc->in_channels, uc->out_channels, lc,
                          lc, 2 * lc, 2 * lc + 1);
    setok_scheduler_config sc;
    return setok_scheduler_config_load(&sc, m->scheduler_dir, SETOK_SCHEDULER_FROM_CONFIG, err);
}

static setok_status fit_draw(setok_model *m, setok_error *err)
{
    if (m->kind == SETOK_MODEL_DIFFUSION)
        return fit_unet(m, setok_clip_text_get_config(OBJ(m, SETOK_COMPONENT_TEXT_ENCODER))
                               ->hidden_size, "text encoder", err);
    setok_status st = fit_chat(m, err);
    const setok_qformer *q = OBJ(m, SETOK_COMPONENT_MAPPER);
    const setok_qformer_config *qc = setok_qformer_get_config(q);
    int hidden = setok_llama_get_config(OBJ(m, SETOK_COMPONENT_LLM))->hidden_size;
    if (st == SETOK_OK)
        st = fit_projector(m, SETOK_COMPONENT_PROJECTOR_OUT, hidden, qc->encoder_hidden_size,
                           "the LLM's hidden_size", "the mapper's encoder_hidden_size", err);
    if (st == SETOK_OK && setok_qformer_num_query_tokens(q) == 0)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: the mapper has no query_tokens",
                        m->comp[SETOK_COMPONENT_MAPPER].path);
    if (st == SETOK_OK)
        st = fit_unet(m, qc->hidden_size, "mapper", err);
    return st;
}

/* SAM: the image encoder's embedding is what the mask decoder reads, at the size the
 * processor makes. */
static setok_status fit_sam(setok_model *m, setok_error *err)
{
    const setok_sam_vision *enc = OBJ(m, SETOK_COMPONENT_SAM_VISION);
    const setok_sam_vision_config *vc = setok_sam_vision_get_config(enc);
    const setok_sam_preprocessor *pp = setok_sam_vision_get_preprocessor(enc);
    const setok_mask_decoder_config *dc =
        setok_mask_decoder_get_config(OBJ(m, SETOK_COMPONENT_MASK_DECODER));
    const char *dir = m->dir;
    if (vc->output_channels != dc->hidden_size)
        return setok_fail(err, SETOK_ERR_INPUT, "%s/config.json: vision_config.output_channels "
                          "%d is not mask_decoder_config.hidden_size %d", dir,
                          vc->output_channels, dc->hidden_size);
    if (setok_sam_vision_grid(enc) != dc->image_embedding_size || vc->image_size != dc->image_size)
        return setok_fail(err, SETOK_ERR_INPUT, "%s/config.json: the image encoder makes a %d x %d "
                          "embedding of %d px, the prompt encoder expects %d x %d of %d px", dir,
                          setok_sam_vision_grid(enc), setok_sam_vision_grid(enc), vc->image_size,
                          dc->image_embedding_size, dc->image_embedding_size, dc->image_size);
    if (!pp->do_pad || pp->pad_width != vc->image_size || pp->pad_height != vc->image_size ||
        (pp->do_resize && pp->longest_edge > vc->image_size))
        return setok_fail(err, SETOK_ERR_INPUT, "%s/%s: the processor must pad to the image "
                          "encoder's %d x %d input (do_pad, pad_size) and resize within it",
                          dir, pp->source[0] ? pp->source : "preprocessor_config.json",
                          vc->image_size, vc->image_size);
    return SETOK_OK;
}

setok_status model_check_fit(setok_model *m, setok_capability cap, setok_error *err)
{
    switch (cap) {
    case SETOK_CAP_TOKENS:
    case SETOK_CAP_SEGMENT_POINTS:
        return m->kind == SETOK_MODEL_SAM ? fit_sam(m, err) : fit_tokens(m, err);
    case SETOK_CAP_CHAT:
        return fit_chat(m, err);
    case SETOK_CAP_SEGMENT_PHRASE:
        return fit_phrase(m, err);
    case SETOK_CAP_GENERATE:
    case SETOK_CAP_EDIT:
        return fit_draw(m, err);
    case SETOK_CAP_COUNT:
        break;
    }
    return SETOK_OK;
}
