/* doppel pca: principal component analysis of embeddings, stored with the
 * index so that stored and future vectors live in the same reduced space.
 *
 * Fit: the mean and the covariance of the rows (accumulated in double, in
 * blocks of rows, so memory is dim^2 doubles whatever the row count), then
 * every eigenpair of the covariance from LAPACK's dsyevr (MRRR): O(dim^3),
 * a second for 1,000 dimensions, refused above 8,192. The whole spectrum is
 * kept (it is what the explained-variance curves plot); only the first
 * `dims` eigenvectors become the basis. Each axis's sign is fixed so its
 * largest coordinate is positive, so a fit is reproducible bit for bit.
 *
 * Project: y = W (x - mean), optionally divided per axis by sqrt(variance)
 * (whitening), then optionally L2-normalised again. An index of
 * L2-normalised vectors (the default, and what cosine needs) stays
 * normalised after `doppel pca`: the projection of a unit vector is shorter
 * than 1 by the variance the dropped axes held, and renormalising keeps the
 * l2 and cosine rankings identical, as they were before.
 *
 * With an index: the fit is stored as the named section "pca" and the
 * index's vectors are replaced by their projections (its dimension becomes
 * `dims`), so search costs what the smaller vectors cost. The original
 * vectors are kept, by id, in a section "pca.original" unless asked not to:
 * they make dp_index_pca_undo exact and let a re-fit start from the real
 * vectors. Rows added after the fit (already projected by whoever added them,
 * through dp_index_map_vectors) have no original; undo and re-fit
 * reconstruct them from their projection (x = mean + W^T y), which loses what
 * the dropped axes held, and say how many they reconstructed. The ANN
 * structures of the index are built on the old vectors and are dropped. */
#ifndef DOPPEL_PCA_H
#define DOPPEL_PCA_H

#include "doppel/common.h"
#include "doppel/index.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_pca dp_pca;

#define DP_PCA_MAX_DIM 8192

typedef struct dp_pca_params {
    size_t dims;    /* axes kept, 1..dim; 0 = all */
    bool whiten;    /* divide each axis by the square root of its variance */
    bool normalize; /* L2-normalise the projected vectors */
} dp_pca_params;

DP_API dp_pca_params dp_pca_default_params(void);

/* Fit on n rows of dim floats (row-major). Needs n >= 2; with whiten, dims
 * must not exceed n - 1 (the rank: further axes have no variance to divide
 * by). DP_ERR_UNSUPPORTED above DP_PCA_MAX_DIM dimensions. */
DP_API int dp_pca_fit(const float *X, size_t n, size_t dim, const dp_pca_params *p, dp_pca **out);
DP_API void dp_pca_free(dp_pca *pca);

typedef struct dp_pca_info {
    size_t in_dim, out_dim;
    size_t n_fit; /* rows the fit saw */
    bool whiten, normalize;
    double total_variance; /* sum of all eigenvalues = trace of the covariance */
    /* All in_dim eigenvalues of the covariance, largest first (the variance
     * along each axis); variance[i] / total_variance is axis i's explained
     * variance ratio. Lives as long as the dp_pca. */
    const double *variance;
    const float *mean;  /* in_dim */
    const float *basis; /* out_dim x in_dim, one axis per row */
} dp_pca_info;

DP_API int dp_pca_describe(const dp_pca *pca, dp_pca_info *out);

/* n rows of in_dim floats -> n rows of out_dim floats. */
DP_API int dp_pca_project(const dp_pca *pca, const float *in, size_t n, float *out);
/* Back to the input space: x = mean + W^T y (with the whitening undone).
 * Exact for vectors in the span of the kept axes; for normalised
 * projections only the direction of the centred part is recovered. */
DP_API int dp_pca_unproject(const dp_pca *pca, const float *in, size_t n, float *out);

/* The stored form (the "pca" section of docs/index-format.md). *data is
 * malloc'd. dp_pca_load checks every size and value and names `name` in its
 * errors (DP_ERR_FORMAT). */
DP_API int dp_pca_save(const dp_pca *pca, void **data, size_t *bytes);
DP_API int dp_pca_load(const void *data, size_t bytes, const char *name, dp_pca **out);

/* ---- With an index ------------------------------------------------------- */

/* The index's PCA: DP_ERR_NOT_FOUND if it has none, DP_ERR_FORMAT if the
 * section is corrupt (checksum, sizes, values) or disagrees with the index's
 * dimension. */
DP_API int dp_index_pca(const dp_index *ix, dp_pca **out);

typedef struct dp_index_pca_params {
    size_t dims; /* required */
    bool whiten;
    /* Keep the original vectors in the index (default true); without them
     * undo and re-fit are refused. */
    bool keep_originals;
} dp_index_pca_params;

DP_API dp_index_pca_params dp_index_pca_default_params(void);

typedef struct dp_index_pca_report {
    size_t rows;          /* vectors projected */
    size_t reconstructed; /* rows without an original, rebuilt from their projection */
    size_t in_dim, out_dim;
    bool refit;       /* the index had a PCA before */
    bool dropped_ann; /* an ANN structure was dropped (rebuild it) */
} dp_index_pca_report;

/* Fit on every live vector of a writable index (or, if it already has a
 * PCA, on the original vectors it kept), store the fit, replace the vectors
 * by their projections and commit, as one compacted file (temp + fsync +
 * rename). The projections are renormalised when the index is normalised.
 * fitted (optional) receives a copy of the new PCA. */
DP_API int dp_index_pca_apply(dp_index *ix, const dp_index_pca_params *p,
                              dp_index_pca_report *report, dp_pca **fitted);
/* Put the original vectors back, drop the PCA, commit. */
DP_API int dp_index_pca_undo(dp_index *ix, dp_index_pca_report *report);

/* Bring n vectors of in_dim floats into the index's space, into out (n x
 * dp_index_dim(ix) floats): copied when in_dim is the index's dimension,
 * projected with pca (the index's, from dp_index_pca; NULL if it has none)
 * when in_dim is the PCA's input dimension. DP_ERR_MISMATCH otherwise, with
 * both dimensions in the message. */
DP_API int dp_index_map_vectors(const dp_index *ix, const dp_pca *pca, const float *in, size_t n,
                                size_t in_dim, float *out);

#ifdef __cplusplus
}
#endif
#endif
