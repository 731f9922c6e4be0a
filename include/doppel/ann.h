/* doppel ann: approximate nearest-neighbour structures stored as named
 * sections of the index file (docs/index-format.md), opened by mmap.
 *
 * Two kinds: HNSW (a graph over the full vectors, fast and accurate, as
 * large as the vectors) and IVF-PQ (compressed codes, a few bytes per
 * vector, optionally reranked exactly from the index's stored vectors).
 *
 * IVF-PQ: a k-means coarse quantiser splits the set into nlist cells; each
 * vector's residual to its cell centre is cut into m sub-vectors, each
 * replaced by the byte naming the nearest of 256 sub-centroids. A query
 * visits the nprobe nearest cells; per cell it fills an m x 256 table of
 * partial distances once, after which each stored vector costs m table
 * lookups (asymmetric distance: the query is never quantised). Training
 * runs on a seeded sample and the tiles of the assignment GEMM are fixed,
 * so the sections are byte-identical for a given seed whatever the thread
 * count. Below DP_IVFPQ_MIN_ROWS entries there is too little to train on
 * and the structure holds nothing: every search is the exact scan.
 *
 * HNSW is a layered proximity graph. Level 0 keeps,
 * per node, the vector and its 2*M neighbour ids in one record, so a hop costs
 * one cache-missing region (prefetched while the previous neighbour's
 * distance is computed). The build is deterministic for a given seed whatever
 * the thread count: nodes are inserted in a seeded random order, in batches
 * whose members search the graph as it was before the batch (in parallel,
 * read-only) and whose reverse links are then applied grouped by target node
 * in a fixed order. Same data, same seed, same parameters: byte-identical
 * sections.
 *
 * The structure refers to entries by id, so it survives appends and
 * compactions of the index. Live entries the graph does not hold yet (added
 * after the build) are scanned exactly and merged into every answer until
 * dp_ann_update() inserts them; removed entries are tombstones: the graph
 * still walks through them, results never contain them, and a search still
 * returns k live results when k exist.
 *
 * Lifetime: a dp_ann reads the dp_index it was opened or built from and must
 * be freed before it. After a modifying call on the index (add, commit,
 * compact) searches fail with DP_ERR_INVALID until dp_ann_update() rebinds
 * it; removals are seen at once.
 *
 * rpforest is the chapter's Annoy: n_trees trees, each splitting its node's
 * items by the hyperplane halfway between two means found by a short
 * 2-means on the node (moved to the median when that leaves one side nearly
 * empty, so identical vectors still split), down to leaf_size items. A query
 * walks all trees at once from one priority queue ordered by the distance
 * to the nearest hyperplane not yet crossed, gathers search_k leaf entries,
 * drops duplicates with generation stamps and ranks them with exact
 * distances from the index's vectors (the forest stores no vector). Trees
 * are built in parallel, each from its own seeded stream with an explicit
 * stack; nodes are flat 16-byte records, mapped as they are, so processes
 * opening one file share one copy in the page cache. An update rebuilds the
 * forest (Annoy cannot add at all).
 *
 * Thread safety: a `const dp_ann *` may be searched from many threads at
 * once; build, update and save need exclusive access. */
#ifndef DOPPEL_ANN_H
#define DOPPEL_ANN_H

#include "doppel/common.h"
#include "doppel/index.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_ann dp_ann;

typedef enum dp_ann_kind {
    DP_ANN_NONE = 0,
    DP_ANN_HNSW = 1,
    DP_ANN_IVFPQ = 2,
    DP_ANN_RPFOREST = 3,
} dp_ann_kind;

/* What HNSW's graph walk reads per node. F32 is the vector itself; F16
 * (IEEE half) and INT8 (scalar-quantised: per-dimension min and step set at
 * the first build, values outside clamped) are 2x and 4x smaller copies, so
 * a hop moves fewer bytes; the candidates the walk ends with (ef of them)
 * are then ranked again with the index's f32 vectors, so the distances
 * returned are exact. */
typedef enum dp_ann_storage {
    DP_ANN_STORAGE_F32 = 0,
    DP_ANN_STORAGE_F16 = 1,
    DP_ANN_STORAGE_INT8 = 2,
} dp_ann_storage;

/* "f32", "f16", "int8"; NULL for an unknown value. */
DP_API const char *dp_ann_storage_name(int storage);
/* DP_ERR_INVALID for an unknown name. */
DP_API int dp_ann_storage_parse(const char *name, int *storage);

/* IVF-PQ below this many live entries searches exactly (nothing to train). */
#define DP_IVFPQ_MIN_ROWS 4096

/* "hnsw", "ivfpq", "rpforest"; NULL for an unknown kind. */
DP_API const char *dp_ann_kind_name(int kind);
/* DP_ERR_INVALID for an unknown name. */
DP_API int dp_ann_kind_parse(const char *name, int *kind);

typedef struct dp_ann_build_params {
    int kind;                 /* dp_ann_kind (default DP_ANN_HNSW) */
    uint32_t M;               /* HNSW: links per node above level 0 (default 16), 2*M at 0 */
    uint32_t ef_construction; /* HNSW: candidate list while linking (default 200) */
    uint32_t nlist;           /* IVF-PQ: cells, 0 = about 4 sqrt(N) (default 0) */
    uint32_t pq_m;            /* IVF-PQ: sub-quantisers, must divide dim; 0 = about dim/4 */
    /* IVF-PQ: learn an OPQ rotation (balanced variance per sub-quantiser,
     * then Procrustes refinement); m then need not divide dim */
    bool opq;
    uint64_t seed;           /* HNSW levels and order; IVF-PQ training sample (default 42) */
    int threads;             /* 0 = all cores; the result does not depend on it */
    uint32_t n_trees;        /* rpforest: trees (default 40, the chapter's Annoy setting) */
    uint32_t leaf_size;      /* rpforest: most items per leaf, 0 = default (128) */
    int storage;             /* HNSW: dp_ann_storage of the walked records (default F32) */
    dp_progress_fn progress; /* called with inserted nodes; nonzero cancels */
    void *user_data;
} dp_ann_build_params;

DP_API dp_ann_build_params dp_ann_default_build_params(void);

/* Build over every live entry of ix. Nothing is written: dp_ann_save() puts
 * the sections into a writable index, dp_index_commit() makes them durable. */
DP_API int dp_ann_build(const dp_index *ix, const dp_ann_build_params *p, dp_ann **out);

typedef struct dp_ann_open_params {
    int kind;    /* DP_ANN_NONE: whichever the index holds */
    bool verify; /* also check the CRC of the large sections (reads them all) */
    /* HNSW: copy the node records out of the file mapping into private
     * memory backed by huge pages where the kernel grants them (Linux THP):
     * a walk's random accesses then miss the TLB far less (1.1-1.7x q/s
     * measured on a 541 MB graph), at the cost of one private copy per
     * process instead of one shared mapping. Graphs built or updated in
     * memory always use such memory. */
    bool private_nodes;
} dp_ann_open_params;

DP_API dp_ann_open_params dp_ann_default_open_params(void);

/* Open the structure stored in ix's sections: DP_ERR_NOT_FOUND if there is
 * none, DP_ERR_FORMAT if it is corrupt or does not fit the index. */
DP_API int dp_ann_open(const dp_index *ix, const dp_ann_open_params *p, dp_ann **out);
DP_API void dp_ann_free(dp_ann *a);

/* Rebind to ix's current state and insert the live entries the structure
 * does not hold (p gives threads, progress; the shape parameters stay those
 * of the build). */
DP_API int dp_ann_update(dp_ann *a, const dp_index *ix, const dp_ann_build_params *p);
/* Replace the index's sections of this kind by a's (durable after the next
 * dp_index_commit). Afterwards a must be rebound with dp_ann_update(ix) or
 * reopened before it searches again. */
DP_API int dp_ann_save(const dp_ann *a, dp_index *ix);
/* Remove every ANN section (of every kind) from a writable index (at the
 * next commit). */
DP_API int dp_ann_drop(dp_index *ix);

typedef struct dp_ann_search_params {
    size_t k;      /* neighbours per query (default 10) */
    size_t ef;     /* HNSW: candidate list size, raised to k if smaller (default 64) */
    size_t nprobe; /* IVF-PQ: cells visited per query, 0 = 16 (capped at nlist) */
    /* IVF-PQ: rank the best max(rerank, k) by code distance again with the
     * index's stored vectors (exact distances); 0 = no rerank: distances are
     * the code approximations. HNSW with f16/int8 storage: how many of the
     * walk's ef candidates (best by code distance) are ranked again with
     * the stored vectors, the others dropped; 0 = max(4k, 32). */
    size_t rerank;
    /* rpforest: leaf entries gathered over all trees before the exact
     * ranking (duplicates counted, as in Annoy); 0 = n_trees * k. */
    size_t search_k;
    /* Per-query id to leave out, or NULL (as in dp_search_params). */
    const uint64_t *exclude_ids;
    dp_id_filter_fn filter; /* keep only ids for which it returns nonzero */
    void *filter_user_data;
    int threads; /* over the queries of a batch; 0 = all cores, 1 = this thread */
} dp_ann_search_params;

DP_API dp_ann_search_params dp_ann_default_search_params(void);

/* k approximate nearest neighbours of nq queries (nq x dim floats), nearest
 * first, in the index's metric and with the same distances as
 * dp_index_search; rows short of k are padded with id -1 and +INFINITY.
 * dist_out may be NULL. */
DP_API int dp_ann_search(const dp_ann *a, const float *queries, size_t nq,
                         const dp_ann_search_params *p, int64_t *ids_out, float *dist_out);

typedef struct dp_ann_info {
    int kind;
    size_t nodes;                /* entries the structure holds, tombstones included */
    size_t dead;                 /* of which no longer live in the index */
    size_t unindexed;            /* live entries scanned exactly (added since the build) */
    size_t bytes;                /* size of the structure's sections */
    uint32_t M, ef_construction; /* HNSW */
    int max_level;               /* HNSW */
    int storage;                 /* HNSW: dp_ann_storage */
    uint32_t nlist, pq_m;        /* IVF-PQ; nlist 0: too small, searched exactly */
    bool opq;                    /* IVF-PQ: codes of OPQ-rotated vectors */
    uint32_t n_trees, leaf_size; /* rpforest */
    uint64_t seed;
} dp_ann_info;

DP_API int dp_ann_describe(const dp_ann *a, dp_ann_info *out);

#ifdef __cplusplus
}
#endif
#endif
