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
 * relevant. */
#ifndef DOPPEL_EVAL_H
#define DOPPEL_EVAL_H

#include "doppel/common.h"
#include "doppel/index.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_eval_params {
    size_t k;        /* for precision@k; 0 = 4 */
    size_t queries;  /* evaluate a random sample of this many queries; 0 = all */
    uint64_t seed;   /* for the sample */
    int threads;     /* search threads; 0 = all cores */
} dp_eval_params;

DP_API dp_eval_params dp_eval_default_params(void);

typedef struct dp_eval_label {
    const char *label;
    size_t n;          /* queries with this label */
    double precision;  /* precision@k over them */
    double top1;
} dp_eval_label;

typedef struct dp_eval_confusion {
    const char *from, *to; /* query label, nearest neighbour's label */
    size_t count;
} dp_eval_confusion;

typedef struct dp_eval_report {
    size_t n_queries, k;
    double precision_at_k, top1, map100;
    size_t n_labels;
    dp_eval_label *labels;   /* sorted by precision, worst first */
    size_t n_confusions;
    dp_eval_confusion *confusions; /* most frequent first, at most 20 */
    double seconds;
} dp_eval_report;

DP_API int dp_eval_index(const dp_index *ix, const dp_eval_params *p, dp_eval_report *out);
DP_API void dp_eval_report_free(dp_eval_report *r);

#ifdef __cplusplus
}
#endif
#endif
