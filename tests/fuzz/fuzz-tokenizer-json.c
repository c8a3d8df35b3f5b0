/* fuzz-tokenizer-json.c — a Hugging Face tokenizer.json: loading (model, vocabulary, merges,
 * added tokens, normalizers, pre-tokenizers, post-processor, decoders), then encoding and
 * decoding with it. */
#include "fuzz-common.h"
#include "fuzz-text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("tokenizer.json", data, size);
    setok_error err;
    setok_text_tokenizer *tok = NULL;
    if (setok_text_tokenizer_load(&tok, path, &err) != SETOK_OK)
        return 0;
    fuzz_exercise_tokenizer(tok);
    setok_text_tokenizer_free(tok);
    return 0;
}
