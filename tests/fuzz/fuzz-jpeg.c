/* fuzz-jpeg.c — JPEG decoding (libjpeg under the engine's limits and error handling). */
#include "fuzz-common.h"
#include "fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_decode_image(data, size, "fuzz.jpg");
    return 0;
}
