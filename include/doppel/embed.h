/* doppel embed: turn images into L2-normalised embedding vectors.
 *
 * An embedder bundles a featuriser with everything needed to use it the same
 * way every time: for a CNN, the ONNX model, its preprocessing (input size,
 * colour order, scale/mean/std, resize mode), the node whose output is the
 * embedding and how that feature map is pooled; for the classic featurisers,
 * their parameters. Its fingerprint hashes all of that, so an index built
 * with one embedder is never silently searched with another.
 *
 * Work is split in two so decoding can run on many threads while inference
 * runs batched on others:
 *   dp_embedder_prepare(): file -> input slot (decode + preprocess),
 *                          thread-safe on a const embedder;
 *   dp_embedder_run():     n slots -> n vectors (batched inference + pooling
 *                          + L2 normalisation); one thread at a time.
 *
 * Named models live in a models directory as <name>.onnx + <name>.json
 * (written by tools/fetch_models.sh); see docs/models.md. Besides CNNs:
 *   "hist"  - 8x8x8 colour histogram (512-d), the chapter's RGB-histogram
 *             baseline;
 *   "phash" - 64-bit DCT perceptual hash stored as 64 values of +-1/8, so the
 *             squared L2 distance between two hashes is Hamming / 16;
 *   "thumb8" - the whole image squashed to 8x8 RGB (192-d), L2-normalised:
 *             the chapter's tiny-thumbnail baseline. */
#ifndef DOPPEL_EMBED_H
#define DOPPEL_EMBED_H

#include "doppel/common.h"
#include "doppel/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model used when none is named. */
#define DP_DEFAULT_MODEL "mobilenet-v2-mid"

typedef struct dp_embedder dp_embedder;

typedef struct dp_embedder_params {
    /* A model name ("inception-v3", "mobilenet-v2-mid", "hist", "phash",
     * "thumb8"), a
     * path to an .onnx file (its preprocessing read from the .json beside it
     * if there is one), or NULL for DP_DEFAULT_MODEL. */
    const char *model;
    /* Where named models live; NULL = $DOPPEL_MODELS, then the source tree's
     * models/, then <prefix>/share/doppel/models. */
    const char *models_dir;
    /* Override the embedding node (any tensor name in the graph); NULL = from
     * the model's JSON, else the first graph output. */
    const char *embedding_node;
    /* oneDNN threads; 0 = all cores. */
    int threads;
    /* Refuse images whose header declares more pixels; 0 = 100 MP. */
    uint64_t max_pixels;
} dp_embedder_params;

DP_API dp_embedder_params dp_embedder_default_params(void);
DP_API int dp_embedder_open(const dp_embedder_params *p, dp_embedder **out);
DP_API void dp_embedder_free(dp_embedder *e);

typedef struct dp_embedder_info {
    const char *name;        /* "inception-v3", a file name, "hist" */
    const char *spec;        /* what was asked for: a name or an .onnx path */
    const char *model_path;  /* the .onnx file, or "" */
    const char *node;        /* embedding node, or "" */
    const char *fingerprint; /* 64 hex chars */
    int dim;                 /* output vector length */
    size_t slot_floats;      /* floats in one prepared input slot */
    dp_preprocess preprocess;
} dp_embedder_info;

DP_API int dp_embedder_describe(const dp_embedder *e, dp_embedder_info *info);

/* Decode and preprocess one file into slot (slot_floats floats).
 * Thread-safe; info may be NULL. */
DP_API int dp_embedder_prepare(const dp_embedder *e, const char *path, float *slot,
                               dp_image_info *info);
/* Same for an in-memory image (uploads). */
DP_API int dp_embedder_prepare_memory(const dp_embedder *e, const void *data, size_t size,
                                      const char *name, float *slot, dp_image_info *info);
/* Embed n prepared slots (contiguous, n * slot_floats) into out (n * dim),
 * L2-normalised. Not thread-safe on one embedder. */
DP_API int dp_embedder_run(dp_embedder *e, const float *slots, size_t n, float *out);

/* Convenience: prepare + run for one file. */
DP_API int dp_embed_file(dp_embedder *e, const char *path, float *out);

/* ---- Batch pipeline: decode on worker threads while inference runs. ----
 *
 * Files are taken in chunks of `batch`. While the calling thread runs
 * inference on chunk k, decode_threads workers decode chunk k+1 into a second
 * buffer, so decoding hides behind inference whenever it is the cheaper of
 * the two. Results reach the sink in input order, on the calling thread. */

typedef struct dp_embed_result {
    size_t index;       /* position in the paths array */
    const char *path;   /* as given */
    int status;         /* 0, or the dp_status of the failure */
    const char *error;  /* message naming the file when status != 0 */
    const float *vec;   /* dim floats (valid during the call) when status == 0 */
    dp_image_info info; /* size and format of the decoded file */
} dp_embed_result;

/* Return nonzero to stop the run (dp_embed_files then returns DP_ERR_CANCELLED). */
typedef int (*dp_embed_sink)(const dp_embed_result *r, void *user_data);

typedef struct dp_pipeline_params {
    int decode_threads;      /* 0 = number of cores */
    int batch;               /* images per inference call; 0 = 16 */
    dp_progress_fn progress; /* called after each chunk; may be NULL */
    void *user_data;         /* passed to progress */
} dp_pipeline_params;

DP_API dp_pipeline_params dp_pipeline_default_params(void);

/* Embed n files, calling sink once per file. A file that fails to decode is
 * reported through the sink with its error and the run goes on; only a model
 * failure or a cancel stops it. */
DP_API int dp_embed_files(dp_embedder *e, const char *const *paths, size_t n,
                          const dp_pipeline_params *p, dp_embed_sink sink, void *sink_data);

#ifdef __cplusplus
}
#endif
#endif
