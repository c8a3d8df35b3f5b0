/* fuzz-clip-files.c — CLIP's slow-tokenizer files, as Stable Diffusion folders ship them: the
 * input up to its first NUL byte is vocab.json, the rest merges.txt (no NUL: no merges). The
 * folder (without tokenizer.json) is loaded, then used to encode and decode. */
#include "fuzz-common.h"
#include "fuzz-text.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t vocab = nul ? (size_t)(nul - data) : size;
    fuzz_write("vocab.json", data, vocab);
    fuzz_write("merges.txt", nul ? nul + 1 : data, nul ? size - vocab - 1 : 0);
    fuzz_load_tokenizer(fuzz_dir());
    return 0;
}
