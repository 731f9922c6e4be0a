/* The pieces of `doppel bench` that are not the sweep itself: the dataset
 * loaders (TEXMEX .fvecs/.bvecs/.ivecs, .npy, ann-benchmarks HDF5, the rows
 * of a doppel index), ann-benchmarks' tie-tolerant recall, peak RSS, and
 * the recall/QPS plot drawn from a results CSV.
 *
 * Recall follows ann-benchmarks' `knn` metric: the distance of every
 * returned neighbour to its query is computed again exactly (whatever the
 * structure reported), and it counts when it is no larger than the k-th
 * true distance plus 1e-3, so an answer that swaps a neighbour for an
 * equally near one is not penalised. Distances are those of ann-benchmarks
 * (Euclidean: the square root of the sum of squares; angular: 1 - cos), so
 * the epsilon means the same here as there. The strict id overlap is
 * reported beside it.
 *
 * Helpers print their errors to stderr, naming the file and the problem,
 * and return -1. */
#ifndef DP_CLI_BENCH_H
#define DP_CLI_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ann-benchmarks' tie tolerance for the knn metric. */
#define DP_BENCH_TIE_EPS 1e-3

typedef enum dp_bench_metric {
    DP_BENCH_EUCLIDEAN = 0, /* searched as L2 */
    DP_BENCH_ANGULAR = 1,   /* rows L2-normalised, searched as L2 (same ranking as cosine) */
} dp_bench_metric;

/* A benchmark set: base rows, queries and, when the source carries it, the
 * true neighbours (nq x gt_k row indices, nearest first). */
typedef struct dp_bench_set {
    float *base, *queries;
    size_t n, nq, dim;
    int32_t *gt;
    size_t gt_k;
    int metric; /* dp_bench_metric */
} dp_bench_set;

void dp_bench_set_free(dp_bench_set *s);

/* Vectors from .fvecs, .bvecs (bytes, as SIFT1B), .ivecs (int32) or .npy,
 * chosen by the extension (.npy and unknown extensions go to
 * dp_vectors_load). *out is malloc'd, n x dim floats. */
int dp_bench_load_vectors(const char *path, float **out, size_t *n, size_t *dim);

/* An .ivecs file of equal-width rows (ground truth). */
int dp_bench_read_ivecs(const char *path, int32_t **out, size_t *n, size_t *width);
/* Write n rows of d 4-byte values (floats or int32) as .fvecs/.ivecs. */
int dp_bench_write_vecs(const char *path, const void *data, size_t n, size_t d);

/* An ann-benchmarks file: datasets train, test, neighbors (and distances,
 * checked for shape), attribute distance = euclidean | angular. Angular
 * rows are normalised. Returns -1 with a message when the file is not one,
 * or when doppel was built without HDF5. */
int dp_bench_load_hdf5(const char *path, dp_bench_set *out);
/* Whether HDF5 support was compiled in. */
bool dp_bench_have_hdf5(void);

/* The live rows of a doppel index as base rows (in storage order), with its
 * metric (cosine indexes count as angular). */
int dp_bench_load_index(const char *path, dp_bench_set *out);

/* Pick nq distinct rows of base as queries (seeded). */
int dp_bench_sample_queries(dp_bench_set *s, size_t nq, uint64_t seed);

/* ann-benchmarks' distance of two rows. */
double dp_bench_distance(int metric, const float *a, const float *b, size_t dim);

/* Per query, the tie threshold: distance to the k-th true neighbour plus
 * DP_BENCH_TIE_EPS. gt is nq x gt_k. thr is nq doubles. */
void dp_bench_thresholds(const dp_bench_set *s, const int32_t *gt, size_t gt_k, size_t k,
                         double *thr);

/* Score one answer (k ids, -1 padded) of query i: *strict gets the ids
 * found among the first k true neighbours, *tie the ids within the
 * threshold. */
void dp_bench_score(const dp_bench_set *s, size_t i, const int64_t *ids, size_t k,
                    const int32_t *gt, size_t gt_k, double thr, size_t *strict, size_t *tie);

/* Peak resident set of this process in MiB (VmHWM, else getrusage). */
double dp_bench_peak_rss_mb(void);

/* Draw recall (x) against queries/s (y, log scale) from a results CSV, one
 * curve per implementation (its Pareto frontier over all rows: rounds and
 * sweeps), optionally only the rows of one dataset. */
int dp_bench_plot_csv(const char *csv, const char *png, const char *dataset, const char *qps_col);

#endif
