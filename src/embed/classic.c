/* Colour histogram, DCT perceptual hash and 8 x 8 thumbnail; see classic.h
 * for the choices. */
#include "embed/classic.h"

#include "doppel/image.h"
#include "util/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int dp_classic_hist_rgb(const unsigned char *rgb, int width, int height, float *out)
{
    if (!rgb || !out || width <= 0 || height <= 0)
        return dp_set_error(DP_ERR_INVALID, "dp_classic_hist_rgb: bad arguments (%dx%d)", width,
                            height);
    /* Counts in double: exact for any image we would load, and the sqrt
     * below wants the distribution, not integers. */
    double counts[DP_HIST_DIM] = {0};
    size_t n = (size_t)width * (size_t)height;
    for (size_t i = 0; i < n; i++) {
        int r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
        int mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
        int mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
        int d = mx - mn;
        /* Hue in integers (h6 = hue / 60 deg * d, in 0..6d) so identical
         * pixels always share a bin; bins are shifted by half a bin so pure
         * red sits in the middle of bin 0 instead of on the wrap-around. */
        int hb = 0;
        if (d > 0) {
            int h6;
            if (mx == r)
                h6 = (g - b) >= 0 ? (g - b) : 6 * d + (g - b);
            else if (mx == g)
                h6 = 2 * d + (b - r);
            else
                h6 = 4 * d + (r - g);
            hb = ((h6 * 2 * DP_HIST_BINS + 6 * d) / (12 * d)) % DP_HIST_BINS;
        }
        int sb = mx ? (d * DP_HIST_BINS) / (mx + 1) : 0;
        int vb = (mx * DP_HIST_BINS) / 256;
        counts[(hb * DP_HIST_BINS + sb) * DP_HIST_BINS + vb] += 1.0;
    }
    double norm2 = 0.0;
    for (int k = 0; k < DP_HIST_DIM; k++) {
        double v = sqrt(counts[k] / (double)n);
        counts[k] = v;
        norm2 += v * v;
    }
    /* sum(p) = 1 makes the norm 1 already; divide anyway so rounding never
     * leaves a vector a hair off the unit sphere. */
    double inv = norm2 > 0 ? 1.0 / sqrt(norm2) : 0.0;
    for (int k = 0; k < DP_HIST_DIM; k++)
        out[k] = (float)(counts[k] * inv);
    return 0;
}

static int hist_finish(int rc, unsigned char *rgb, int w, int h, float *out)
{
    if (rc == 0) rc = dp_classic_hist_rgb(rgb, w, h, out);
    free(rgb);
    return rc;
}

int dp_classic_hist(const char *path, uint64_t max_pixels, float *out)
{
    unsigned char *rgb = NULL;
    int w = 0, h = 0;
    int rc = dp_image_load_rgb(path, DP_HIST_SIDE, max_pixels, &rgb, &w, &h, NULL);
    return hist_finish(rc, rgb, w, h, out);
}

int dp_classic_hist_memory(const void *data, size_t size, const char *name, uint64_t max_pixels,
                           float *out)
{
    unsigned char *rgb = NULL;
    int w = 0, h = 0;
    int rc =
        dp_image_load_rgb_memory(data, size, name, DP_HIST_SIDE, max_pixels, &rgb, &w, &h, NULL);
    return hist_finish(rc, rgb, w, h, out);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

uint64_t dp_classic_phash_grey32(const float *g)
{
    enum { N = DP_PHASH_SIDE, K = 8 };
    /* Only frequencies 1..8 are kept, so only those rows of the DCT basis
     * are needed; their common scale factor does not change the ranking. */
    double c[K][N];
    for (int u = 0; u < K; u++)
        for (int x = 0; x < N; x++)
            c[u][x] = cos((2 * x + 1) * (u + 1) * M_PI / (2.0 * N));
    double t[K][N]; /* vertical transform: t[v][x] = sum_y c[v][y] g[y][x] */
    for (int v = 0; v < K; v++)
        for (int x = 0; x < N; x++) {
            double s = 0;
            for (int y = 0; y < N; y++)
                s += c[v][y] * g[y * N + x];
            t[v][x] = s;
        }
    float coef[K * K], sorted[K * K];
    for (int v = 0; v < K; v++)
        for (int u = 0; u < K; u++) {
            double s = 0;
            for (int x = 0; x < N; x++)
                s += t[v][x] * c[u][x];
            coef[v * K + u] = (float)s;
        }
    memcpy(sorted, coef, sizeof coef);
    qsort(sorted, K * K, sizeof sorted[0], cmp_float);
    float median = 0.5f * (sorted[K * K / 2 - 1] + sorted[K * K / 2]);
    uint64_t hash = 0;
    for (int i = 0; i < K * K; i++)
        if (coef[i] > median) hash |= (uint64_t)1 << i;
    return hash;
}

/* 32 x 32 squash in RGB 0..255, then Rec. 601 luma. */
static dp_preprocess phash_preprocess(uint64_t max_pixels)
{
    dp_preprocess p = dp_preprocess_default();
    p.width = p.height = DP_PHASH_SIDE;
    p.resize = DP_RESIZE_SQUASH;
    p.scale = 1.0f;
    p.max_pixels = max_pixels;
    return p;
}

static uint64_t phash_from_tensor(const float *t)
{
    enum { P = DP_PHASH_SIDE * DP_PHASH_SIDE };
    float grey[P];
    for (int i = 0; i < P; i++)
        grey[i] = 0.299f * t[i] + 0.587f * t[P + i] + 0.114f * t[2 * P + i];
    return dp_classic_phash_grey32(grey);
}

int dp_classic_phash(const char *path, uint64_t max_pixels, uint64_t *out)
{
    float t[3 * DP_PHASH_SIDE * DP_PHASH_SIDE];
    dp_preprocess p = phash_preprocess(max_pixels);
    if (!out) return dp_set_error(DP_ERR_INVALID, "dp_classic_phash: NULL output");
    int rc = dp_image_load_tensor(path, &p, t, NULL);
    if (rc) return rc;
    *out = phash_from_tensor(t);
    return 0;
}

int dp_classic_phash_memory(const void *data, size_t size, const char *name, uint64_t max_pixels,
                            uint64_t *out)
{
    float t[3 * DP_PHASH_SIDE * DP_PHASH_SIDE];
    dp_preprocess p = phash_preprocess(max_pixels);
    if (!out) return dp_set_error(DP_ERR_INVALID, "dp_classic_phash: NULL output");
    int rc = dp_image_load_tensor_memory(data, size, name, &p, t, NULL);
    if (rc) return rc;
    *out = phash_from_tensor(t);
    return 0;
}

void dp_classic_phash_to_vec(uint64_t hash, float *out64)
{
    for (int i = 0; i < 64; i++)
        out64[i] = (hash >> i) & 1 ? 0.125f : -0.125f;
}

static dp_preprocess thumb_preprocess(uint64_t max_pixels)
{
    dp_preprocess p = dp_preprocess_default();
    p.width = p.height = DP_THUMB_SIDE;
    p.resize = DP_RESIZE_SQUASH;
    p.scale = 1.0f / 255.0f;
    p.max_pixels = max_pixels;
    return p;
}

static void thumb_normalise(float *v)
{
    double s = 0;
    for (int i = 0; i < DP_THUMB_DIM; i++)
        s += (double)v[i] * v[i];
    if (s <= 0) return; /* an all-black thumbnail stays zero */
    float inv = (float)(1.0 / sqrt(s));
    for (int i = 0; i < DP_THUMB_DIM; i++)
        v[i] *= inv;
}

int dp_classic_thumb(const char *path, uint64_t max_pixels, float *out)
{
    dp_preprocess p = thumb_preprocess(max_pixels);
    if (!out) return dp_set_error(DP_ERR_INVALID, "dp_classic_thumb: NULL output");
    int rc = dp_image_load_tensor(path, &p, out, NULL);
    if (!rc) thumb_normalise(out);
    return rc;
}

int dp_classic_thumb_memory(const void *data, size_t size, const char *name, uint64_t max_pixels,
                            float *out)
{
    dp_preprocess p = thumb_preprocess(max_pixels);
    if (!out) return dp_set_error(DP_ERR_INVALID, "dp_classic_thumb: NULL output");
    int rc = dp_image_load_tensor_memory(data, size, name, &p, out, NULL);
    if (!rc) thumb_normalise(out);
    return rc;
}
