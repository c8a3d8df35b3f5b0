/* fuzz-bundle.c — a SETOKIM manifest, setokim.json, in a folder whose component folders
 * exist (empty): the manifest's validation, then what setok_model_open decides from it
 * (its kind and which capabilities the listed components allow). */
#include "fuzz-common.h"

#include "setok/bundle.h"
#include "setok/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const folders[] = {"vision", "setok", "llm", "projector_in", "unet",
                                          "vae", "scheduler", "mask_decoder", "a"};
    static int ready;
    if (!ready) {
        for (size_t i = 0; i < sizeof folders / sizeof *folders; i++)
            fuzz_mkdir(folders[i]);
        ready = 1;
    }
    fuzz_write("setokim.json", data, size);
    setok_error err;
    setok_bundle b;
    setok_status st = setok_bundle_load(&b, fuzz_dir(), &err);
    setok_bundle_free(&b);
    if (st != SETOK_OK)
        return 0;
    setok_model_options o;
    setok_model_options_default(&o);
    o.device = "cpu";
    o.threads = 1;
    setok_model *m = NULL;
    if (setok_model_open(&m, fuzz_dir(), &o, &err) == SETOK_OK) {
        for (int c = 0; c < SETOK_CAP_COUNT; c++)
            setok_model_can(m, (setok_capability)c);
        setok_model_free(m);
    }
    return 0;
}
