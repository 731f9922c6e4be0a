/* doppel dedup: groups of near-duplicate images.
 *
 * Every stored vector is a query for its k nearest neighbours within a
 * distance threshold; an edge joins each such pair and the groups are the
 * connected components (union-find). Queries stream through in blocks, so
 * memory is O(N * k) for the edges and O(N) for the components: never an
 * N x N matrix. Against a second index, each entry of the first lists the
 * entries of the second within the threshold instead. */
#ifndef DOPPEL_DEDUP_H
#define DOPPEL_DEDUP_H

#include "doppel/common.h"
#include "doppel/index.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_dedup_params {
    /* Largest distance (the index's metric) still counted as a duplicate;
     * <= 0 picks the default for the index's model (dp_dedup_default_threshold). */
    float threshold;
    size_t max_neighbors; /* per image; 0 = 16 */
    int threads;          /* 0 = all cores */
    dp_progress_fn progress;
    void *user_data;
} dp_dedup_params;

DP_API dp_dedup_params dp_dedup_default_params(void);

/* phash: 0.375 (squared L2 of +-1/8 vectors = 6 differing bits of 64).
 * Other models: a quarter of the median nearest-neighbour distance over up
 * to 1,000 stored images, since their distance scales differ. */
DP_API float dp_dedup_default_threshold(const dp_index *ix);

typedef struct dp_dedup_result {
    /* Within one index: groups of >= 2 ids; group g is ids[lims[g] .. lims[g+1]),
     * largest groups first, ids ascending inside a group. */
    size_t n_groups;
    size_t *lims;
    uint64_t *ids;
    /* Against another index: a[i] (in the first) is within dist[i] of b[i]. */
    size_t n_pairs;
    uint64_t *a, *b;
    float *dist;
    float threshold; /* the one used */
} dp_dedup_result;

/* against may be NULL. Both indexes must hold vectors of the same model. */
DP_API int dp_dedup(const dp_index *ix, const dp_index *against, const dp_dedup_params *p,
                    dp_dedup_result *out);
DP_API void dp_dedup_result_free(dp_dedup_result *r);

#ifdef __cplusplus
}
#endif
#endif
