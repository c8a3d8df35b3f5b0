/* fuzz-tokenizer-json.c — a Hugging Face tokenizer.json: loading (model, vocabulary, merges,
 * added tokens, normalizers, pre-tokenizers, post-processor, decoders), then encoding and
 * decoding with it. */
#include "fuzz-common.h"
#include "fuzz-text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_load_tokenizer(fuzz_write("tokenizer.json", data, size));
    return 0;
}
