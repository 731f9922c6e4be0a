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
 * sets). */
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
} dp_eval_params;

DP_API dp_eval_params dp_eval_default_params(void);

/* Parse "l2", "cosine", "ip", "l1" or "minkowski:P" (P > 0, e.g. 3 or 0.5)
 * into params->metric / params->minkowski_p. "weighted-l2" gives
 * DP_ERR_UNSUPPORTED (it needs PCA's explained variance stored in the index,
 * which does not exist yet); anything else DP_ERR_INVALID. */
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

#ifdef __cplusplus
}
#endif
#endif
