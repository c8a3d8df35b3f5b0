/* fuzz-spm.c — a SentencePiece tokenizer.model (the ModelProto protobuf: pieces, trainer and
 * normalizer specs), then encoding and decoding with it. */
#include "fuzz-common.h"
#include "fuzz-text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_load_tokenizer(fuzz_write("tokenizer.model", data, size));
    return 0;
}
