/* fuzz-config.c — one config.json through every component's reader: the public
 * setok_*_config_load of the LLM, the vision tower, the U-Net, the VAE, the Q-Former and the
 * mask decoder, and the loaders of the CLIP text encoder, the SeTok merger and the projector,
 * which read their config.json (setok_config_read) before finding no weights here. */
#include "fuzz-common.h"

#include "setok/models/clip_text.h"
#include "setok/models/llama.h"
#include "setok/models/mask_decoder.h"
#include "setok/models/projector.h"
#include "setok/models/qformer.h"
#include "setok/models/setok.h"
#include "setok/models/unet.h"
#include "setok/models/vae.h"
#include "setok/models/vit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("config.json", data, size);
    const char *dir = fuzz_dir();
    setok_error err;

    setok_llama_config llama;
    setok_llama_config_load(&llama, dir, &err);
    setok_vit_config vit;
    setok_vit_config_load(&vit, dir, &err);
    setok_unet_config unet;
    setok_unet_config_load(&unet, dir, &err);
    setok_vae_config vae;
    setok_vae_config_load(&vae, dir, &err);
    setok_qformer_config qformer;
    setok_qformer_config_load(&qformer, dir, &err);
    setok_mask_decoder_config decoder;
    setok_mask_decoder_config_load(&decoder, dir, &err);

    setok_clip_text *text = NULL;
    if (setok_clip_text_load(&text, dir, fuzz_cpu(), SETOK_F32, SETOK_F32, &err) == SETOK_OK)
        __builtin_trap(); /* there are no weights to load */
    setok_merger *merger = NULL;
    if (setok_merger_load(&merger, dir, fuzz_cpu(), SETOK_F32, &err) == SETOK_OK)
        __builtin_trap();
    setok_projector projector;
    if (setok_projector_load(&projector, dir, fuzz_cpu(), SETOK_F32, &err) == SETOK_OK)
        __builtin_trap();
    setok_projector_free(&projector);
    return 0;
}
