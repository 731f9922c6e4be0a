/* doppel viz: pictures people would rather look at than read.
 *
 * dp_viz_grid() draws images as a labelled grid PNG (the chapter's
 * plot_images): a query and its neighbours, a near-duplicate group, a class.
 * Thumbnails come from the image module (shrink-on-load, so a grid of 12 MP
 * photos costs milliseconds per cell); an image that cannot be read is drawn
 * as a grey cell saying so, never an error for the whole grid.
 *
 * dp_tsne() lays high-dimensional vectors out in 2-D with Barnes-Hut t-SNE
 * (PCA-initialised, exact sparse neighbour affinities, a quadtree for the
 * repulsion: O(n log n) per iteration, OpenMP-parallel). The layouts are
 * drawn as a scatter coloured by class with a legend, as the images
 * themselves at their positions, or as a grid of tiles where each image
 * takes the nearest free cell (the chapter's Figures 4-8 to 4-10).
 * dp_viz_projector() writes an index in the TensorFlow Embedding
 * Projector's format (vectors.tsv, metadata.tsv, a sprite, a config). */
#ifndef DOPPEL_VIZ_H
#define DOPPEL_VIZ_H

#include "doppel/common.h"
#include "doppel/index.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_grid_cell {
    const char *image_path; /* file to draw; NULL draws an empty cell */
    const char *caption;    /* first line under the image (may be NULL) */
    const char *caption2;   /* second line, smaller (may be NULL) */
    int highlight;          /* 1: frame the cell (e.g. the query) */
} dp_grid_cell;

typedef struct dp_grid_params {
    int columns;       /* 0 = n up to 6 per row */
    int thumb;         /* cell image size in px; 0 = 192 */
    const char *title; /* drawn across the top; may be NULL */
} dp_grid_params;

DP_API dp_grid_params dp_grid_default_params(void);
/* Write the grid to out_png (atomically). */
DP_API int dp_viz_grid(const char *out_png, const dp_grid_cell *cells, size_t n,
                       const dp_grid_params *p);

/* ---- t-SNE --------------------------------------------------------------- */

/* Called every 50 iterations and at the end; return nonzero to cancel
 * (DP_ERR_CANCELLED). */
typedef int (*dp_tsne_progress_fn)(int iter, int iters, void *user_data);

typedef struct dp_tsne_params {
    double perplexity;         /* 30; clipped to (n - 1) / 3 for tiny sets */
    int iters;                 /* 1000 */
    int pca_dims;              /* reduce the input to this many dims first (50); 0 = no */
    double theta;              /* Barnes-Hut accuracy (0.5); 0 = exact repulsion */
    double early_exaggeration; /* 12 */
    int exaggeration_iters;    /* 250 */
    double learning_rate;      /* 0 = max(n / early_exaggeration / 4, 50), as scikit-learn */
    int threads;               /* 0 = all cores */
    dp_tsne_progress_fn progress;
    void *user_data;
} dp_tsne_params;

typedef struct dp_tsne_info {
    double kl_divergence; /* KL(P || Q) at the end */
    double perplexity, learning_rate, seconds;
    size_t neighbours; /* per point in P: 3 x perplexity */
    int input_dims;    /* after PCA */
} dp_tsne_info;

DP_API dp_tsne_params dp_tsne_default_params(void);
/* Embed n rows of X (n x dim, row-major) into out (n x 2). Deterministic
 * for a given input and thread count. info may be NULL. */
DP_API int dp_tsne(const float *X, size_t n, size_t dim, const dp_tsne_params *p, float *out,
                   dp_tsne_info *info);

/* ---- Pictures of a 2-D layout ----------------------------------------------- */

/* Decoded thumbnails (8-bit RGB, alpha on white, fitted in size x size),
 * loaded once and drawn by the map, the grid and the projector's sprite. An
 * image that cannot be read has rgb == NULL and is drawn as a grey tile. */
typedef struct dp_thumb {
    unsigned char *rgb;
    int w, h;
} dp_thumb;

/* Load n thumbnails on `threads` threads (0 = all cores); *out is an array
 * of n to release with dp_viz_thumbs_free. Fails only for want of memory. */
DP_API int dp_viz_load_thumbs(const char *const *paths, size_t n, int size, int threads,
                              dp_thumb **out);
DP_API void dp_viz_thumbs_free(dp_thumb *t, size_t n);

typedef struct dp_layout_params {
    int size;          /* output width = height of the plot area in px; 0 = 1600 */
    int thumb;         /* image size on the map / grid cell size in px; 0 = 48 */
    const char *title; /* may be NULL */
} dp_layout_params;

DP_API dp_layout_params dp_layout_default_params(void);
/* Points xy (n x 2) coloured by class cls[i] in 0..ncls-1 (-1: grey, no
 * class), with a legend naming the classes (the largest 40 when there are
 * more). */
DP_API int dp_viz_scatter(const char *out_png, const float *xy, const int *cls, size_t n,
                          const char *const *cls_names, size_t ncls, const dp_layout_params *p);
/* The images themselves drawn at their positions (later ones on top). */
DP_API int dp_viz_image_map(const char *out_png, const float *xy, const dp_thumb *thumbs, size_t n,
                            const dp_layout_params *p);
/* A square grid of ceil(sqrt(n))^2 cells; each image, in order of distance
 * from the layout's centre, takes the free cell nearest its position, so
 * neighbours stay neighbours and nothing overlaps. cell_out (optional, n
 * ints) receives each image's cell (row * columns + column). */
DP_API int dp_viz_tile_grid(const char *out_png, const float *xy, const dp_thumb *thumbs, size_t n,
                            const dp_layout_params *p, int *cell_out);

/* ---- TensorFlow Embedding Projector ---------------------------------------- */

typedef struct dp_projector_params {
    size_t sample; /* at most this many entries, a seeded random sample; 0 = 10000 */
    uint64_t seed;
    int thumb;   /* sprite tile size in px; 0 = as large as fits in 8192 x 8192, max 64 */
    int threads; /* for decoding the sprite's images; 0 = all cores */
} dp_projector_params;

DP_API dp_projector_params dp_projector_default_params(void);
/* Write out_dir/vectors.tsv, metadata.tsv (path, label), sprite.png and
 * projector_config.json. Images are read from the index's "source.root"
 * metadata + each entry's path; without it there is no sprite. */
DP_API int dp_viz_projector(const dp_index *ix, const char *out_dir, const dp_projector_params *p);

#ifdef __cplusplus
}
#endif
#endif
