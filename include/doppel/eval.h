/* doppel eval: how good are the embeddings in an index?
 *
 * Every stored image with a label is a query against all the others (itself
 * left out), as the chapter measures it:
 *   precision@k  share of the k nearest neighbours with the query's label
 *                (the chapter's notebooks report precision@4);
 *   top-1        share of queries whose nearest neighbour has its label;
 *   mAP@100      mean average precision over the 100 nearest, normalised by
 *                min(relevant, 100);
 * plus per-label precision, the labels that fare worst and the label pairs
 * confused most (query label -> label of a wrong nearest neighbour).
 * Exact search is the reference, so the numbers measure the embedding, not
 * the index. Entries without a label are neither queries nor counted as
 * relevant.
 *
 * Labels come from the entries (the parent folder) or from a manifest
 * (dp_eval_labels) that also gives an instance id: the same object in another
 * rendering (one emoji drawn by several vendors). With instances:
 *   instance recall@1/@5  share of queries, among those whose instance has
 *                another member in the database, with such a member among
 *                their 1 / 5 nearest neighbours;
 *   class metrics skip the neighbours that share the query's instance, since
 *                another vendor's drawing of the same emoji is a free hit; the
 *                report's instances_skipped says so.
 *
 * A class-proportional sample (params.sample) is used as both the queries and
 * the database, which is what a fixed-size calibration run measures; the
 * params.queries subsample only thins the queries. Both are deterministic in
 * the seed and independent of the order ids were assigned in: members of a
 * class are ordered by path before the seeded shuffle.
 *
 * Metrics the index searches (l2, cosine, ip, l1) go through
 * dp_index_search; Minkowski p, which the index lacks, is a brute force here
 * over the same candidates (cost n^2 * dim pow calls: use a sample on large
 * sets); weighted l2 (weights = PCA's per-axis variance, from the index's
 * PCA) is plain l2 on a copy of the vectors scaled by sqrt(w), searched by
 * an in-memory index. */
#ifndef DOPPEL_EVAL_H
#define DOPPEL_EVAL_H

#include "doppel/common.h"
#include "doppel/index.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Labels from a manifest --------------------------------------------- */

/* A manifest: TSV lines "path<TAB>class[<TAB>instance[<TAB>anything]]", path
 * relative to the indexed folder (as the index stores it). A first line
 * starting "path<TAB>" is a header. Empty instance = none. */
typedef struct dp_eval_labels dp_eval_labels;

/* Errors name the file and line: DP_ERR_IO, DP_ERR_FORMAT (missing class,
 * duplicate path, over-long line, no rows), DP_ERR_NOMEM above 1 GiB. */
DP_API int dp_eval_labels_load(const char *tsv_path, dp_eval_labels **out);
DP_API void dp_eval_labels_free(dp_eval_labels *l);
DP_API size_t dp_eval_labels_count(const dp_eval_labels *l);
/* Class and instance ("" when none) of a path; DP_ERR_NOT_FOUND if absent.
 * The strings live as long as l. */
DP_API int dp_eval_labels_find(const dp_eval_labels *l, const char *path, const char **cls,
                               const char **instance);

/* ---- Evaluation ---------------------------------------------------------- */

typedef struct dp_eval_params {
    size_t k;       /* for precision@k; 0 = 4 */
    size_t queries; /* evaluate a random sample of this many queries; 0 = all */
    size_t sample;  /* class-proportional sample of this many labelled entries
                       used as queries AND database; 0 = everything */
    uint64_t seed;  /* for the samples */
    int threads;    /* search threads; 0 = all cores */
    /* Labels and instances by path, overriding the entries' own labels;
     * entries the manifest does not list are unlabelled. NULL = entries. */
    const dp_eval_labels *labels;
    int metric;         /* dp_metric; DP_METRIC_DEFAULT = the index's */
    double minkowski_p; /* > 0: Minkowski distance with this p (metric ignored) */
    /* Return the database's paths in the report (e.g. to hand the very same
     * sample to another tool). */
    bool list_database;
    /* Weighted squared l2, sum_i w_i (x_i - q_i)^2, with w_i the variance
     * of PCA axis i (the index's "pca" section; DP_ERR_NOT_FOUND with a
     * message saying to run doppel pca when there is none), divided by the
     * first axis's. Searched exactly on a copy of the vectors scaled by sqrt(w),
     * which turns it into plain l2. metric and minkowski_p are ignored. */
    bool weighted_l2;
    /* dp_eval_pca_sweep only: keep the projections as they come (no
     * renormalisation; searched with l2) even when the index is normalised.
     * With one or two axes renormalising leaves only a sign or an angle. */
    bool sweep_raw;
} dp_eval_params;

DP_API dp_eval_params dp_eval_default_params(void);

/* Parse "l2", "cosine", "ip", "l1", "minkowski:P" (P > 0, e.g. 3 or 0.5) or
 * "weighted-l2" into params->metric / minkowski_p / weighted_l2; anything
 * else DP_ERR_INVALID. */
DP_API int dp_eval_parse_metric(const char *name, dp_eval_params *params);

typedef struct dp_eval_label {
    const char *label;
    size_t n;         /* queries with this label */
    double precision; /* precision@k over them */
    double top1;
} dp_eval_label;

typedef struct dp_eval_confusion {
    const char *from, *to; /* query label, nearest neighbour's label */
    size_t count;
} dp_eval_confusion;

typedef struct dp_eval_report {
    size_t n_queries, k;
    size_t n_database;           /* entries searched over (the sample, or all labelled) */
    const char **database_paths; /* with params.list_database: n_database paths, sorted */
    size_t n_unlabelled;         /* live entries left out for want of a label */
    double precision_at_k, top1, map100;
    /* Queries with no relevant neighbour in the database (a class of one,
     * or of one instance): they count, as zeros, and cap the scores. */
    size_t n_no_relevant;
    /* Instances (when any labelled entry has one). */
    bool has_instances;
    bool instances_skipped;    /* class metrics skipped same-instance neighbours */
    size_t n_instance_queries; /* queries with another member of their instance */
    double instance_recall1, instance_recall5;
    char metric[32]; /* "l2", "minkowski:3", ... */
    size_t n_labels;
    dp_eval_label *labels; /* sorted by precision, worst first */
    size_t n_confusions;
    dp_eval_confusion *confusions; /* most frequent first, at most 20 */
    double seconds;
} dp_eval_report;

/* Label strings in the report point into the index or the labels and live as
 * long as both. */
DP_API int dp_eval_index(const dp_index *ix, const dp_eval_params *p, dp_eval_report *out);
DP_API void dp_eval_report_free(dp_eval_report *r);

/* ---- PCA sweep ------------------------------------------------------------ *
 * How much can PCA shrink the vectors before accuracy drops (the chapter's
 * Figure 4-14)? One PCA is fitted on every live vector of the index, with as
 * many axes as the largest dims asked for; each row then keeps the first
 * `dims` axes (the same as fitting with that many), renormalised when the
 * index is normalised (as doppel pca does; not with params.sweep_raw), in an
 * in-memory index with the same entries, and
 * evaluates it with dp_eval_index (same params: sample, labels, metric).
 * Search time is the exact search (dp_index_search, params.threads) of every
 * live vector as a query for its k + 1 nearest, the best of `repeats` runs.
 * A dims of 0 is the index's own vectors (no PCA), the reference row. */

typedef struct dp_eval_sweep_row {
    size_t dims;     /* 0: the original vectors */
    bool skipped;    /* dims above the vectors' dimension or the row count */
    double variance; /* share of the total variance the kept axes hold (1 for dims 0) */
    double precision_at_k, top1, map100;
    bool has_instances;
    double instance_recall1;
    double search_seconds; /* exact search of every vector as a query */
    size_t n_queries_timed;
    uint64_t vector_bytes; /* n x dims x 4 */
} dp_eval_sweep_row;

DP_API int dp_eval_pca_sweep(const dp_index *ix, const dp_eval_params *p, const size_t *dims,
                             size_t n_dims, int repeats, dp_eval_sweep_row *rows);

#ifdef __cplusplus
}
#endif
#endif
