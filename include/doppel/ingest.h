/* doppel ingest: keep an index in step with a folder of images.
 *
 * dp_ingest_dir() walks a folder, embeds what is new or changed and removes
 * what is gone, so running it twice on an unchanged folder does no inference.
 * A file is "changed" when the SHA-256 of its bytes differs from the stored
 * one; if the embedder's fingerprint differs from the index's (another model,
 * other preprocessing), every image is embedded again into a fresh index.
 *
 * Crash safety comes from the index's atomic commits: work is committed every
 * commit_every images (and at the end), so a kill -9 loses at most the
 * uncommitted batch, and the next run picks up exactly what is missing.
 *
 * Bad files never stop a run: each unreadable, corrupt, truncated, empty,
 * non-image or oversized file is skipped and reported with its reason, and
 * the list is stored in the index (see dp_index_failure_at). */
#ifndef DOPPEL_INGEST_H
#define DOPPEL_INGEST_H

#include "doppel/common.h"
#include "doppel/embed.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_ingest_params {
    int decode_threads;      /* 0 = all cores */
    int batch;               /* images per inference call; 0 = 16 */
    size_t commit_every;     /* images between commits; 0 = 256 */
    double commit_seconds;   /* also commit when this much time passed; 0 = 30 */
    int ann_kind;            /* dp_ann_kind to build if the index has none; an
                              * existing ANN structure is always kept in step */
    dp_progress_fn progress; /* (done, total) over the images to embed */
    void *user_data;
} dp_ingest_params;

DP_API dp_ingest_params dp_ingest_default_params(void);

typedef struct dp_ingest_failure {
    char *path;   /* relative to the folder */
    char *reason; /* names the problem */
} dp_ingest_failure;

typedef struct dp_ingest_report {
    size_t found;         /* image files found in the folder */
    size_t added;         /* new files embedded */
    size_t updated;       /* changed files re-embedded */
    size_t removed;       /* entries whose file is gone */
    size_t unchanged;     /* kept as they were */
    size_t failed;        /* skipped, see failures */
    int rebuilt;          /* 1 if the model changed and everything was redone */
    double seconds;       /* wall time */
    double embed_seconds; /* time spent in the decode + inference pipeline */
    dp_ingest_failure *failures;
} dp_ingest_report;

DP_API void dp_ingest_report_free(dp_ingest_report *r);

/* Bring the index at index_path (created if missing) in step with dir using
 * embedder e. The report is filled even when the run fails part way. */
DP_API int dp_ingest_dir(dp_embedder *e, const char *dir, const char *index_path,
                         const dp_ingest_params *p, dp_ingest_report *report);

/* Is this file name one doppel takes as an image (by extension,
 * case-insensitive)? */
DP_API int dp_ingest_is_image_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
