/* Classic featurisers: image descriptors that need no model, for colour
 * search and near-duplicate detection (internal API, used by the embedder).
 *
 * Colour histogram: 8 x 8 x 8 bins over HSV (hue is what people mean by
 * "colour", so it gets its own axis instead of being smeared across R, G and
 * B), counted on an image fitted inside 256 px. The counts are L1-normalised
 * to a distribution p, then stored as sqrt(p): that vector already has unit
 * L2 norm, and the dot product of two of them is the Bhattacharyya
 * coefficient, so the index's cosine / L2 search compares histograms with
 * the Hellinger distance, which is far less dominated by the few big bins
 * (a white background) than L2 on raw counts.
 *
 * Perceptual hash (pHash): the image squashed to 32 x 32 grey, a 2-D DCT-II,
 * then the 8 x 8 lowest frequencies excluding row 0 and column 0 (so the DC
 * term and pure horizontal/vertical ramps, which brightness and contrast
 * changes move, are out), one bit per coefficient: above the median of the
 * 64 or not. Resizing, recompression, small colour shifts and mild blur keep
 * the low frequencies, so the hashes of near-duplicates are a few bits apart
 * while unrelated images differ in about half of the 64.
 *
 * Thumbnail ("thumb8"): the whole image squashed to 8 x 8 (libvips'
 * antialiased thumbnail, alpha on white), RGB / 255, planar (192 values),
 * L2-normalised, so l2 between two thumbnails ranks like the cosine of
 * their pixels: the chapter's "tiny image" baseline, which knows layout and
 * colour and nothing else. */
#ifndef DP_EMBED_CLASSIC_H
#define DP_EMBED_CLASSIC_H

#include "doppel/common.h"

#include <stdint.h>

#define DP_HIST_BINS 8
#define DP_HIST_DIM (DP_HIST_BINS * DP_HIST_BINS * DP_HIST_BINS)
#define DP_HIST_SIDE 256 /* the image is fitted inside this before counting */
#define DP_PHASH_SIDE 32
#define DP_THUMB_SIDE 8
#define DP_THUMB_DIM (3 * DP_THUMB_SIDE * DP_THUMB_SIDE)

/* Histogram of 8-bit interleaved RGB pixels into out[DP_HIST_DIM]. */
int dp_classic_hist_rgb(const unsigned char *rgb, int width, int height, float *out);
/* Decode (dp_image_load_rgb, EXIF applied, alpha on white) and histogram.
 * max_pixels as in dp_preprocess (0 = 100 MP). */
int dp_classic_hist(const char *path, uint64_t max_pixels, float *out);
int dp_classic_hist_memory(const void *data, size_t size, const char *name, uint64_t max_pixels,
                           float *out);

/* pHash of a 32 x 32 grey image (row-major, any consistent scale). */
uint64_t dp_classic_phash_grey32(const float *grey);
/* Decode, squash to 32 x 32 (dp_image_load_tensor), grey, hash. */
int dp_classic_phash(const char *path, uint64_t max_pixels, uint64_t *out);
int dp_classic_phash_memory(const void *data, size_t size, const char *name, uint64_t max_pixels,
                            uint64_t *out);

/* 8 x 8 thumbnail into out[DP_THUMB_DIM]. */
int dp_classic_thumb(const char *path, uint64_t max_pixels, float *out);
int dp_classic_thumb_memory(const void *data, size_t size, const char *name, uint64_t max_pixels,
                            float *out);

/* Number of differing bits. */
static inline int dp_classic_hamming(uint64_t a, uint64_t b)
{
    return __builtin_popcountll(a ^ b);
}

/* The hash as 64 values of +-1/8 (bit 0 first): unit L2 norm, and the
 * squared L2 distance between two such vectors is Hamming / 16, so a float
 * index finds the same neighbours as Hamming distance would. */
void dp_classic_phash_to_vec(uint64_t hash, float *out64);

#endif
