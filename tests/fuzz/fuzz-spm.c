/* fuzz-spm.c — a SentencePiece tokenizer.model (the ModelProto protobuf: pieces, trainer and
 * normalizer specs), then encoding and decoding with it. */
#include "fuzz-common.h"
#include "fuzz-text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("tokenizer.model", data, size);
    setok_error err;
    setok_text_tokenizer *tok = NULL;
    if (setok_text_tokenizer_load(&tok, path, &err) != SETOK_OK)
        return 0;
    fuzz_exercise_tokenizer(tok);
    setok_text_tokenizer_free(tok);
    return 0;
}
