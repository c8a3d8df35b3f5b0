/* fuzz-png.c — PNG decoding (libpng under the engine's limits and error handling). */
#include "fuzz-common.h"
#include "fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decode_image(data, size, "fuzz.png");
    return 0;
}
