/* doppel image: decode any common image format with libvips and turn it into
 * a model's input tensor.
 *
 * The trick is shrink-on-load: JPEG (and WebP/HEIC) decoders can produce a
 * 1/2, 1/4 or 1/8 scale image directly from the DCT coefficients, so a 12 MP
 * photo becomes a 224 px thumbnail in a few ms instead of decoding 36 MB of
 * pixels first. After that: EXIF orientation applied, colour converted to
 * sRGB (CMYK, grey, 16-bit and ICC-tagged images included), alpha flattened
 * onto white, resize (squash or centre crop), per-model normalisation, and
 * planar CHW floats.
 *
 * Bad input never crashes: a corrupt, truncated, empty or non-image file, or
 * one whose header declares more than max_pixels pixels (decompression bombs
 * are refused before any pixel is decoded), returns an error naming the file
 * and libvips' reason. Only the first page/frame of multi-page files is read.
 * All functions are thread-safe. libvips' operation cache is turned off and
 * its warnings are not printed (the library never prints); libvips' error
 * text is global, so when two threads fail at the same instant the quoted
 * reason may mix both (the file name in the message is always right). */
#ifndef DOPPEL_IMAGE_H
#define DOPPEL_IMAGE_H

#include "doppel/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dp_resize_mode {
    DP_RESIZE_SQUASH = 0, /* whole image to width x height, aspect not kept */
    DP_RESIZE_CROP = 1,   /* short side to size, then centre crop */
} dp_resize_mode;

typedef struct dp_preprocess {
    int width, height; /* model input size */
    int resize;        /* dp_resize_mode */
    int bgr;           /* 1: channel order B,G,R instead of R,G,B */
    float scale;       /* x' = (x * scale - mean[c]) / std[c], x in 0..255 */
    float mean[3];     /* indexed by output channel: B,G,R order when bgr */
    float std[3];
    uint64_t max_pixels; /* refuse images whose header declares more; 0 = 100 MP */
} dp_preprocess;

/* 224x224 squash, RGB, x/255, mean 0, std 1. */
DP_API dp_preprocess dp_preprocess_default(void);

typedef struct dp_image_info {
    int width, height; /* of the file, after EXIF orientation */
    int bands;         /* in the file, before conversion */
    char format[16];   /* loader name: "jpeg", "png", "webp", ... */
} dp_image_info;

/* Start libvips (once per process; thread-safe, idempotent). Loading calls
 * it too. */
DP_API int dp_image_init(void);

/* Read only the header: size after EXIF orientation, bands, format. No
 * pixels are decoded (a fraction of a millisecond), so no pixel limit
 * applies; corrupt headers and non-images still fail with the file named. */
DP_API int dp_image_probe(const char *path, dp_image_info *info);
DP_API int dp_image_probe_memory(const void *data, size_t size, const char *name,
                                 dp_image_info *info);

/* Decode `path` and write 3 x height x width floats (CHW) to out.
 * info may be NULL. */
DP_API int dp_image_load_tensor(const char *path, const dp_preprocess *p, float *out,
                                dp_image_info *info);
/* Same from bytes in memory (uploads, the fuzz target). name is used in
 * messages only. */
DP_API int dp_image_load_tensor_memory(const void *data, size_t size, const char *name,
                                       const dp_preprocess *p, float *out, dp_image_info *info);

/* Decode to 8-bit interleaved RGB (alpha flattened onto white, EXIF applied),
 * fitted inside max_side x max_side keeping the aspect ratio (never upscaled;
 * max_side <= 0 keeps the full size, still bounded by max_pixels).
 * *rgb is malloc'd; the caller frees it. Used by thumbnails, grids and the
 * classic featurisers. */
DP_API int dp_image_load_rgb(const char *path, int max_side, uint64_t max_pixels,
                             unsigned char **rgb, int *width, int *height, dp_image_info *info);
/* Same from bytes in memory; name is used in messages only. */
DP_API int dp_image_load_rgb_memory(const void *data, size_t size, const char *name, int max_side,
                                    uint64_t max_pixels, unsigned char **rgb, int *width,
                                    int *height, dp_image_info *info);

/* A JPEG thumbnail (sRGB, EXIF applied, alpha on white) fitted inside
 * max_side x max_side, for the web UI. *jpeg is malloc'd; the caller frees
 * it. quality 1..100, 0 = 80. */
DP_API int dp_image_thumbnail_jpeg(const char *path, int max_side, int quality, uint64_t max_pixels,
                                   void **jpeg, size_t *size);

#ifdef __cplusplus
}
#endif
#endif
