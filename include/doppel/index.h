/* doppel index: embeddings, ids and per-image metadata in one file, and
 * exact k-nearest-neighbour search over them.
 *
 * The file (docs/index-format.md) is a 4 KiB header holding two commit slots,
 * followed by immutable, 64-byte-aligned, CRC-32C-checksummed sections. The
 * main trick is that it is append-only between compactions: a commit appends
 * the new rows as a segment (vectors, ids, entries, strings), then a
 * directory listing every live section plus the key/value metadata, fsyncs,
 * and only then flips the older of the two slots to point at the new
 * directory (LMDB's double meta page). A crash at any moment leaves the
 * previous slot valid, so the file always holds the last committed state, and
 * a commit costs what it adds, not the size of the index. Readers mmap the
 * file and never see bytes change under them: data is never rewritten in
 * place, and a compaction writes a whole new file and renames it over the old.
 *
 * Sections open by mmap without being read through: dp_index_open() checks
 * the header, the directory and every bound (offsets and counts against the
 * file length, with overflow checks) and the checksums of the small sections
 * it reads anyway (ids, deleted ids, failure list); the vectors, entries and
 * strings are checksummed by dp_index_verify() (`doppel check`) and whenever
 * a section is written.
 *
 * Thread safety: a `const dp_index *` may be searched and read (get, find,
 * next, meta) from many threads at once. Modifying calls (add, remove,
 * set_*, commit, compact) need exclusive access. One process at a time may
 * open an index for writing (an flock on the file); any number may read.
 *
 * Distances are "smaller is nearer" for every metric:
 *   DP_METRIC_L2      squared Euclidean distance, sum_i (x_i - q_i)^2.
 *                     No square root is taken (it does not change the ranking).
 *   DP_METRIC_IP      negated inner product, -sum_i x_i q_i.
 *   DP_METRIC_COSINE  1 - cos(x, q) = 1 - <x, q> / |q|, in [0, 2]; needs an
 *                     index of L2-normalised vectors (the default).
 *   DP_METRIC_L1      sum_i |x_i - q_i|.
 * Ties are broken by the smaller id. */
#ifndef DOPPEL_INDEX_H
#define DOPPEL_INDEX_H

#include "doppel/common.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_index dp_index;

typedef enum dp_metric {
    DP_METRIC_DEFAULT = 0, /* in search params: the index's own metric */
    DP_METRIC_L2 = 1,
    DP_METRIC_IP = 2,
    DP_METRIC_COSINE = 3,
    DP_METRIC_L1 = 4,
} dp_metric;

/* "l2", "ip", "cosine", "l1"; NULL for an unknown value. */
DP_API const char *dp_metric_name(int metric);
/* Parse a metric name; DP_ERR_INVALID for an unknown one. */
DP_API int dp_metric_parse(const char *name, int *metric);

#define DP_INDEX_HASH_BYTES 32 /* SHA-256 of the image file's contents */

/* One stored image. As input to dp_index_add, id is ignored (the index
 * assigns ids) and the strings and vector are copied. As output, the strings
 * and vector point into the index and stay valid until the next modifying
 * call or dp_index_free(). */
typedef struct dp_index_entry {
    uint64_t id;
    const char *path;  /* relative to the indexed folder; "" if none */
    const char *label; /* e.g. the parent folder's name; "" if none */
    uint32_t width, height;
    uint8_t hash[DP_INDEX_HASH_BYTES]; /* all zero when unknown */
    const float *vector;               /* dim floats */
} dp_index_entry;

/* What a new index is. Strings are copied. */
typedef struct dp_index_create_params {
    uint32_t dim;                  /* required, 1..65536 */
    int metric;                    /* dp_metric; default DP_METRIC_L2 */
    bool normalized;               /* vectors are L2-normalised (default true) */
    const char *model_name;        /* e.g. "mobilenet_v3"; may be NULL */
    const char *model_fingerprint; /* hash of model + preprocessing; may be NULL */
} dp_index_create_params;

DP_API dp_index_create_params dp_index_default_create_params(void);

typedef struct dp_index_open_params {
    /* Open for add/remove/commit: takes an exclusive flock on the file and
     * drops an uncommitted tail left by a crashed writer. */
    bool writable;
    /* If set, refuse an index built with another model: DP_ERR_MISMATCH. */
    const char *expect_fingerprint;
    /* Check every section's checksum now (reads the whole file). */
    bool verify;
} dp_index_open_params;

DP_API dp_index_open_params dp_index_default_open_params(void);

/* A new, empty index that will be written to path by the first commit
 * (replacing any file there atomically). Nothing touches the disk before. */
DP_API int dp_index_create(const char *path, const dp_index_create_params *p, dp_index **out);
/* Open an index file. Errors: DP_ERR_IO (cannot open, locked by a writer),
 * DP_ERR_FORMAT (not an index, corrupt, truncated), DP_ERR_UNSUPPORTED
 * (newer format version), DP_ERR_MISMATCH (expect_fingerprint differs). */
DP_API int dp_index_open(const char *path, const dp_index_open_params *p, dp_index **out);
/* Same, from bytes in memory (read-only; the fuzz target's entry point).
 * The bytes are copied (sections need their alignment). name is used in
 * messages. */
DP_API int dp_index_open_memory(const void *data, size_t size, const char *name,
                                const dp_index_open_params *p, dp_index **out);
DP_API void dp_index_free(dp_index *ix);

/* ---- Contents ---------------------------------------------------------- */

/* Add n entries (vectors are copied as given; normalise them first for a
 * normalised index). ids_out (optional, n slots) receives the assigned ids:
 * increasing, never reused after a removal. Visible to searches at once,
 * durable after dp_index_commit(). */
DP_API int dp_index_add(dp_index *ix, const dp_index_entry *entries, size_t n, uint64_t *ids_out);
/* Remove by id; DP_ERR_NOT_FOUND if it is not there. */
DP_API int dp_index_remove(dp_index *ix, uint64_t id);

/* Make every change so far durable, atomically: after a crash at any
 * moment, a reopen sees either the previous commit or this one. Appends a
 * segment (cost proportional to what changed); compacts into a fresh file
 * instead when dead space or the segment count gets large. */
DP_API int dp_index_commit(dp_index *ix);
/* Commit as one freshly written file (temp + fsync + rename): no segments,
 * no dead rows. */
DP_API int dp_index_compact(dp_index *ix);
/* Write the current state (committed or not) to another path as a compact
 * file; ix is unchanged and keeps its own path. */
DP_API int dp_index_save_as(const dp_index *ix, const char *path);

/* Live entries. */
DP_API size_t dp_index_count(const dp_index *ix);
DP_API uint32_t dp_index_dim(const dp_index *ix);
DP_API int dp_index_metric(const dp_index *ix);
DP_API bool dp_index_normalized(const dp_index *ix);
/* The path given at create/open. */
DP_API const char *dp_index_path(const dp_index *ix);

DP_API int dp_index_get(const dp_index *ix, uint64_t id, dp_index_entry *out);
/* Look up an entry by its stored path; DP_ERR_NOT_FOUND if none. The first
 * call builds a hash table (thread-safe). */
DP_API int dp_index_find_path(const dp_index *ix, const char *path, dp_index_entry *out);
/* Iterate over live entries in storage order: start with *cursor = 0;
 * returns 1 and fills out while there is an entry, 0 at the end, negative on
 * a corrupt entry. */
DP_API int dp_index_next(const dp_index *ix, size_t *cursor, dp_index_entry *out);

/* ---- Metadata ----------------------------------------------------------- */

/* Typed key/value metadata, stored with the next commit. Keys are 1..255
 * bytes; keys starting with "doppel." are reserved for the index itself
 * (dim, metric, model, ...) and read-only here. Setting a key replaces it
 * whatever its old type. */
typedef enum dp_meta_type {
    DP_META_STR = 1,
    DP_META_I64 = 2,
    DP_META_F64 = 3,
} dp_meta_type;

DP_API int dp_index_set_meta_str(dp_index *ix, const char *key, const char *value);
DP_API int dp_index_set_meta_i64(dp_index *ix, const char *key, int64_t value);
DP_API int dp_index_set_meta_f64(dp_index *ix, const char *key, double value);
/* DP_ERR_NOT_FOUND if absent, DP_ERR_MISMATCH if of another type. The
 * string lives until the next modifying call. */
DP_API int dp_index_get_meta_str(const dp_index *ix, const char *key, const char **value);
DP_API int dp_index_get_meta_i64(const dp_index *ix, const char *key, int64_t *value);
DP_API int dp_index_get_meta_f64(const dp_index *ix, const char *key, double *value);
/* i-th key (including the reserved ones), for listing: i < dp_index_meta_count. */
DP_API size_t dp_index_meta_count(const dp_index *ix);
DP_API int dp_index_meta_at(const dp_index *ix, size_t i, const char **key, int *type);

/* The model the vectors came from (may be "" when unknown). */
DP_API const char *dp_index_model_name(const dp_index *ix);
DP_API const char *dp_index_model_fingerprint(const dp_index *ix);
/* Change the model: only allowed while the index holds no entries (a
 * re-embed starts from a fresh index). */
DP_API int dp_index_set_model(dp_index *ix, const char *name, const char *fingerprint);

/* The files the last indexing run skipped, with the reason; replaced as a
 * whole and stored with the next commit. */
DP_API int dp_index_set_failures(dp_index *ix, const char *const *paths, const char *const *reasons,
                                 size_t n);
DP_API size_t dp_index_failure_count(const dp_index *ix);
DP_API int dp_index_failure_at(const dp_index *ix, size_t i, const char **path,
                               const char **reason);

/* ---- Inspection --------------------------------------------------------- */

typedef struct dp_index_info {
    uint32_t format_version;
    uint64_t file_bytes; /* committed length of the file; 0 if never written */
    uint64_t commit_seq; /* increases by one per commit */
    size_t count;        /* live entries */
    size_t rows;         /* stored rows, including removed ones not yet compacted */
    size_t segments;     /* appended segments since the last compaction */
    size_t sections;     /* sections in the directory */
    bool dirty;          /* uncommitted changes */
} dp_index_info;

DP_API int dp_index_describe(const dp_index *ix, dp_index_info *out);

typedef struct dp_index_section {
    const char *name; /* "vectors", "ids", "entries", "strings", "deleted", "failures" */
    uint32_t segment; /* which segment for per-segment sections */
    uint64_t offset, bytes, count;
    uint32_t crc32c;
} dp_index_section;

DP_API int dp_index_section_at(const dp_index *ix, size_t i, dp_index_section *out);

/* Check every section's checksum and the consistency of the entries (string
 * bounds, unique ids). The first problem is the error message. */
DP_API int dp_index_verify(const dp_index *ix);

/* ---- Search ------------------------------------------------------------- */

/* Return nonzero to keep id as a result. */
typedef int (*dp_id_filter_fn)(uint64_t id, void *user_data);

typedef struct dp_search_params {
    size_t k;   /* neighbours per query (default 10) */
    int metric; /* dp_metric; DP_METRIC_DEFAULT = the index's */
    /* Drop results farther than this (kept: distance <= max_distance);
     * +INFINITY (the default) keeps all. With a large k this is a range
     * search. */
    float max_distance;
    /* Per-query id to leave out (the query's own id for "@ID" queries), or
     * NULL. An id of UINT64_MAX excludes nothing for that query. */
    const uint64_t *exclude_ids;
    /* Keep only ids for which filter returns nonzero (NULL = all). Called
     * from several threads at once. */
    dp_id_filter_fn filter;
    void *filter_user_data;
    /* Worker threads; 0 = all cores (OpenMP's default).
     * Both the scan and the GEMM path (oneDNN sgemm tiles, one thread per
     * tile) use this many threads. */
    int threads;
    /* Queries at or above which the BLAS GEMM path is used (default 16);
     * 0 disables it. Only for L2, IP and cosine. Its distances come from
     * |x|^2 - 2 x.q + |q|^2 and can differ from the scan's in the last bits. */
    size_t gemm_min_queries;
} dp_search_params;

DP_API dp_search_params dp_search_default_params(void);

/* k nearest neighbours of nq queries (row-major, nq x dim floats). Writes
 * nq * k ids and distances, each query's results nearest first; when fewer
 * than k qualify, the rest of the row is padded with id -1 and distance
 * +INFINITY. dist_out may be NULL. */
DP_API int dp_index_search(const dp_index *ix, const float *queries, size_t nq,
                           const dp_search_params *p, int64_t *ids_out, float *dist_out);

/* Every neighbour within radius (distance <= radius) of each query. Results
 * of query i are ids[lims[i] .. lims[i+1]), nearest first; lims has nq + 1
 * entries. The arrays are malloc'd: release with dp_range_result_free. At
 * most max_results in total (0 = no cap); DP_ERR_NOMEM beyond. */
typedef struct dp_range_result {
    size_t nq;
    size_t *lims;
    int64_t *ids;
    float *dist;
} dp_range_result;

DP_API int dp_index_range_search(const dp_index *ix, const float *queries, size_t nq, float radius,
                                 const dp_search_params *p, size_t max_results,
                                 dp_range_result *out);
DP_API void dp_range_result_free(dp_range_result *r);

/* ---- Vector files ------------------------------------------------------- */

/* Load float vectors from a .npy (2-D '<f4' or '<f8', C order) or a TEXMEX
 * .fvecs file (chosen by content). *data is malloc'd (n x dim floats).
 * Files above max_bytes (0 = 16 GiB) are refused. */
DP_API int dp_vectors_load(const char *path, size_t max_bytes, float **data, size_t *n,
                           size_t *dim);

#ifdef __cplusplus
}
#endif
#endif
