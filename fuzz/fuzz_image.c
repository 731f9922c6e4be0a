/* libFuzzer target: arbitrary bytes through the full decode path (header
 * check, thumbnail, colour conversion, normalisation). A small max_pixels
 * keeps each input cheap and exercises the bomb check. */
#include "doppel/image.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float out[3 * 32 * 32];
    static unsigned char dummy;
    dp_preprocess p = dp_preprocess_default();
    p.width = 32;
    p.height = 32;
    p.max_pixels = 1 << 20;
    /* The first byte picks the options, so both resize modes and channel
     * orders get coverage. */
    if (size > 0) {
        p.resize = data[0] & 1 ? DP_RESIZE_CROP : DP_RESIZE_SQUASH;
        p.bgr = (data[0] >> 1) & 1;
    }
    (void)dp_image_load_tensor_memory(size ? data : &dummy, size, "fuzz", &p, out, NULL);

    unsigned char *rgb = NULL;
    int w, h;
    if (dp_image_load_rgb_memory(size ? data : &dummy, size, "fuzz", 48, 1 << 20, &rgb, &w, &h,
                                 NULL) == 0)
        free(rgb);
    return 0;
}
