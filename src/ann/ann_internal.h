/* Internals of the ANN module: the HNSW graph (hnsw.c, its walk in
 * hnsw_walk.h compiled per ISA by hnsw.c and hnsw_avx2.c), IVF-PQ (ivfpq.c,
 * its SIMD kernels in ivfpq_avx2.c) and the handle that binds either to an
 * index (ann.c).
 *
 * HNSW node record, level 0 (one per node, contiguous, rec_bytes each):
 *
 *     code[code_bytes] | u32 count | u32 links[M0]
 *
 * code is the vector as the walk reads it: dim f32 (storage f32), dim IEEE
 * halves (f16) or dim bytes (int8: x[j] ~ sq_min[j] + sq_step[j] * code[j]),
 * padded to 4 bytes. The code comes first so a distance and the following
 * walk of the node's links read one region; the next neighbours' codes are
 * prefetched while the current one is compared. The kernels may read up to
 * 15 bytes past the code (never past the record: the links follow). Levels
 * >= 1 are rare (1/M of the nodes per level) and live in a separate pool:
 * node i with level L owns L blocks of (1 + M) u32 from block upper_off[i]
 * (derived from the levels at open), block l - 1 holding level l as count +
 * links. A graph whose node i has id i (any build over a fresh index) keeps
 * no ids (meta version 3, flag HNSW_DENSE_IDS, no hnsw.ids section). */
#ifndef DP_ANN_INTERNAL_H
#define DP_ANN_INTERNAL_H

#include "doppel/ann.h"
#include "index/index_internal.h"
#include "linalg/dist.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define HNSW_MAX_LEVEL 30
#define HNSW_MAX_M 256
#define ANN_NO_ROW UINT64_MAX

/* "hnsw.meta": what the other hnsw.* sections hold. */
typedef struct hnsw_meta {
    char magic[8]; /* "DPHNSW\0\0" */
    uint32_t version;
    uint32_t dim;
    uint32_t metric;
    uint32_t M, M0, ef_construction;
    uint64_t n;
    uint64_t seed;
    uint64_t upper_words;
    uint32_t entry;
    int32_t max_level; /* -1 when empty */
    uint32_t rec_bytes;
    uint32_t storage; /* dp_ann_storage; version 1 files are f32 and hold 0 */
    uint32_t flags;   /* HNSW_DENSE_IDS (version 3) */
    uint32_t reserved;
} hnsw_meta;
#define HNSW_DENSE_IDS 1u
_Static_assert(sizeof(hnsw_meta) == 80, "hnsw_meta layout");

/* How distances are formed from the kernels: smaller is nearer. */
typedef struct dist_fn {
    const dp_dist_ops_t *ops;
    int op;     /* 0 l2sq, 1 dot (bias - dot), 2 l1 */
    float bias; /* 0 for ip (-dot), 1 for cosine (1 - dot) */
    uint32_t dim;
} dist_fn;

static inline float dist_eval(const dist_fn *f, const float *q, const float *x)
{
    float o;
    switch (f->op) {
    case 0:
        f->ops->l2sq(q, x, 1, f->dim, &o);
        return o;
    case 1:
        f->ops->dot(q, x, 1, f->dim, &o);
        return f->bias - o;
    default:
        f->ops->l1(q, x, 1, f->dim, &o);
        return o;
    }
}

struct hnsw_kern;

typedef struct hnsw {
    uint32_t dim, M, M0, efc;
    int metric;
    int storage; /* dp_ann_storage */
    uint64_t seed;
    size_t n, cap; /* nodes, allocated nodes (heap) */
    size_t rec_bytes, code_bytes;
    /* int8: per-dimension min and step (dim each), into the map or sq_own */
    const float *sq_min, *sq_step;
    float *sq_own;
    uint8_t *nodes;  /* n records; points into the map unless owned */
    uint64_t *ids;   /* id of each node; NULL when node i has id i */
    uint8_t *levels; /* level of each node */
    uint32_t *upper; /* level >= 1 blocks */
    size_t upper_words, upper_cap;
    uint32_t *upper_off; /* heap, derived from levels: first upper block */
    uint32_t entry;
    int max_level;
    bool owned;       /* nodes/ids/levels/upper are heap copies */
    size_t nodes_map; /* bytes of an anonymous huge-page mapping nodes owns, or 0 */
    dist_fn df;
    const struct hnsw_kern *kern;
} hnsw;

static inline const uint8_t *hnsw_code(const hnsw *h, size_t i)
{
    return h->nodes + i * h->rec_bytes;
}
static inline uint32_t *hnsw_links(const hnsw *h, size_t i, int level)
{
    if (level == 0) return (uint32_t *)(h->nodes + i * h->rec_bytes + h->code_bytes);
    return h->upper + ((size_t)h->upper_off[i] + (size_t)(level - 1)) * (h->M + 1);
}
static inline uint64_t hnsw_id(const hnsw *h, size_t i)
{
    return h->ids ? h->ids[i] : i;
}

/* Generation-stamped visited marks: clearing is one increment. */
typedef struct visited {
    uint16_t *mark;
    size_t n;
    uint16_t gen;
} visited;

/* (distance, node) pairs for the candidate and result heaps. */
typedef struct cand {
    float d;
    uint32_t id;
} cand;

/* Scratch of one searching thread. */
typedef struct hnsw_scratch {
    visited vis;
    cand *top, *cq, *tmp;
    size_t cap;
    float *qbuf, *dec; /* dim each: the prepared query, a decoded node */
    uint32_t qdim;
} hnsw_scratch;

/* A query prepared for one storage, so the walk's distance is one pass:
 * f32/f16: p = q. int8: p = q - min (l2, l1) with s = step, or p = q * step
 * and c = sum q * min (dot). */
typedef struct hnsw_q {
    const float *p, *s;
    float c;
} hnsw_q;

/* The walk, one copy per ISA, each specialised inside per storage and
 * metric (one indirect call per walk, none per distance). */
typedef struct hnsw_kern {
    const char *isa;
    float (*dist)(const struct hnsw *h, const hnsw_q *q, uint32_t node);
    cand (*greedy)(const struct hnsw *h, const hnsw_q *q, cand cur, int from, int to);
    /* Best-first search of one level from ep; results (accepted nodes
     * only) are left as a max-heap of up to ef in s->top; returns their
     * number. */
    size_t (*layer)(const struct hnsw *h, const hnsw_q *q, cand ep, int level, size_t ef,
                    hnsw_scratch *s, bool (*accept)(uint32_t, void *), void *ctx);
} hnsw_kern;

const hnsw_kern *hnsw_kern_base(void);
const hnsw_kern *hnsw_kern_avx2(void); /* NULL without AVX2+FMA+F16C */

int hnsw_scratch_init(hnsw_scratch *s, size_t n, size_t ef_cap);
void hnsw_scratch_free(hnsw_scratch *s);

/* Which nodes may be results (live, pass the filter); NULL = all. */
typedef bool (*hnsw_accept_fn)(uint32_t node, void *ctx);

/* Level-0 search from the top: up to ef accepted results in out (sorted,
 * nearest first, by the code distance: exact for f32 storage, to be
 * reranked for the others); returns how many. */
size_t hnsw_search(const hnsw *h, const float *q, size_t ef, hnsw_scratch *s, hnsw_accept_fn accept,
                   void *ctx, cand *out);

void hnsw_init(hnsw *h, uint32_t dim, int metric, uint32_t M, uint32_t efc, uint64_t seed,
               int storage);
/* Make the prepared query for q (dim floats) in s->qbuf. */
int hnsw_prepare(const hnsw *h, const float *q, hnsw_scratch *s, hnsw_q *out);
/* The f32 vector node i's code stands for (a pointer into the record for
 * f32, else decoded into buf). */
const float *hnsw_decode(const hnsw *h, size_t i, float *buf);
/* Insert the vectors vecs[i] (ids[i]) as new nodes; heap-copies a mapped
 * graph first. Deterministic whatever threads is. */
int hnsw_insert(hnsw *h, const float *const *vecs, const uint64_t *ids, size_t count, int threads,
                dp_progress_fn progress, void *user_data);
void hnsw_free(hnsw *h);
/* Load from the index's hnsw.* sections (pointers into the map). */
int hnsw_load(hnsw *h, const dp_index *ix, bool verify, bool private_nodes);
/* Put hnsw.* sections into ix. */
int hnsw_save(const hnsw *h, dp_index *ix);
size_t hnsw_bytes(const hnsw *h);
void dist_fn_init(dist_fn *f, int metric, uint32_t dim);

/* ---- IVF-PQ ---------------------------------------------------------------
 * Sections: ivfpq.meta, ivfpq.centroids (nlist x dim f32), ivfpq.codebooks
 * (m x 256 x dsub f32, sub-quantiser s's centroid j at (s*256 + j)*dsub),
 * ivfpq.offsets (nlist + 1 u64: list l is entries [off[l], off[l+1])),
 * ivfpq.codes (n x m bytes) in list order, so a probe reads one contiguous
 * run of codes, and the entries' ids in the same order.
 *
 * Ids (meta version 3, flag IVFPQ_IDBLK): the entries of a list are sorted
 * by id, so consecutive ids differ by about n / nlist and fit in 16 bits.
 * Each list is cut into blocks of IVFPQ_BLK entries (its last one short);
 * block b has a u64 head in ivfpq.idhead and IVFPQ_BLK u16 in
 * ivfpq.iddelta: entry j's id is head + delta[1] + ... + delta[j] (delta[0]
 * and the slots past a short block are 0). A block with a gap of 2^16 or
 * more, or a first id >= 2^63, is raw instead: head = IVFPQ_RAW | r and its
 * ids are ivfpq.idraw[r ..], raw blocks following each other there in block
 * order. About 2.3 bytes an entry instead of 8; the scan keeps entry
 * positions and only the results' ids are decoded. Versions 1 and 2 hold
 * ivfpq.ids (n u64 in list order, lists unsorted); they still open, are
 * searched as they are and are saved as they were until an add re-packs them.
 *
 * With OPQ (flag IVFPQ_OPQ: version 2, or 3) ivfpq.opq holds a dr x dim f32
 * matrix R with orthonormal columns, dr = m * dsub >= dim (dsub =
 * ceil(dim/m), so m need not divide dim): every vector and query is coded as
 * R x, which keeps distances and inner products, and the centroids and
 * codebooks live in that rotated space (centroids are nlist x dr). */
#define IVFPQ_KSUB 256
#define IVFPQ_MAX_NLIST (1u << 20)

typedef struct ivfpq_meta {
    char magic[8]; /* "DPIVFPQ\0" */
    uint32_t version;
    uint32_t dim;
    uint32_t metric;
    uint32_t nlist; /* 0: too few entries at build, everything is searched exactly */
    uint32_t m;
    uint32_t ksub;
    uint64_t n;
    uint64_t seed;
    uint32_t dr;    /* versions 2, 3: coded dimension m * dsub; version 1: 0 (= dim) */
    uint32_t flags; /* version 2: IVFPQ_OPQ; version 3: IVFPQ_IDBLK, maybe IVFPQ_OPQ */
    uint32_t reserved[6];
} ivfpq_meta;
#define IVFPQ_OPQ 1u
#define IVFPQ_IDBLK 2u
#define IVFPQ_BLK 32
#define IVFPQ_RAW (1ull << 63)
#define IVFPQ_CHUNK 64
_Static_assert(sizeof(ivfpq_meta) == 80, "ivfpq_meta layout");

typedef struct ivfpq {
    uint32_t dim, nlist, m, dsub;
    uint32_t dr; /* coded dimension, m * dsub: dim without OPQ */
    uint32_t flags;
    int metric;
    uint64_t seed;
    size_t n;
    const float *centroids; /* nlist x dr */
    const float *codebooks; /* m x 256 x dsub */
    const uint64_t *offsets;
    const uint64_t *ids; /* versions 1, 2: n u64; NULL when the ids are in blocks */
    const uint64_t *idhead;
    const uint16_t *iddelta;
    const uint64_t *idraw;
    size_t nblk, nraw;
    const uint8_t *codes;
    const float *rot; /* OPQ: dr x dim; NULL without */
    /* heap copies (built or updated) behind the pointers above: centroids,
     * codebooks, offsets, idhead, codes, rot, iddelta, idraw */
    void *own[8];
    float *cbt;           /* heap: codebooks transposed to [s][t][j], for the table kernels */
    uint64_t *blk0;       /* heap: list l's first block (nlist + 1), with blocked ids */
    uint32_t *chunk_list; /* heap: the list of entry c * IVFPQ_CHUNK (n / IVFPQ_CHUNK + 2) */
    size_t max_list;
    dist_fn df;
} ivfpq;

/* ADC kernels (scalar in ivfpq.c, AVX2 in ivfpq_avx2.c), chosen once. */
typedef struct ivfpq_kern {
    /* tab[s*256 + j] = sum_t (x[s*dsub + t] - cbt[(s*dsub + t)*256 + j])^2 */
    void (*table_l2)(const float *x, const float *cbt, uint32_t m, uint32_t dsub, float *tab);
    /* tab[s*256 + j] = -sum_t x[s*dsub + t] * cbt[(s*dsub + t)*256 + j] */
    void (*table_ip)(const float *x, const float *cbt, uint32_t m, uint32_t dsub, float *tab);
    /* out[i] = bias + sum_s tab[s*256 + codes[i*m + s]] */
    void (*scan)(const float *tab, const uint8_t *codes, size_t n, uint32_t m, float bias,
                 float *out);
} ivfpq_kern;

const ivfpq_kern *ivfpq_kern_scalar(void);
const ivfpq_kern *ivfpq_kern_avx2(void); /* NULL without AVX2+FMA */
const ivfpq_kern *ivfpq_kern_best(void);

void ivfpq_free(ivfpq *p);
/* Train on the given rows (nlist 0 / m 0: derived; flags IVFPQ_OPQ: learn a
 * rotation) and encode them. */
int ivfpq_build(ivfpq *p, uint32_t dim, int metric, const float *const *vecs, const uint64_t *ids,
                size_t count, uint32_t nlist, uint32_t m, uint32_t flags, uint64_t seed,
                int threads);
/* Encode more rows into the lists (heap-copies a mapped structure first). */
int ivfpq_add(ivfpq *p, const float *const *vecs, const uint64_t *ids, size_t count, int threads);
int ivfpq_load(ivfpq *p, const dp_index *ix, bool verify);
int ivfpq_save(const ivfpq *p, dp_index *ix);
size_t ivfpq_bytes(const ivfpq *p);
/* The id of entry node (< n); every entry's into out (n), in entry order. */
uint64_t ivfpq_id(const ivfpq *p, size_t node);
void ivfpq_ids(const ivfpq *p, uint64_t *out);

/* Per-thread search buffers. */
typedef struct ivfpq_scratch {
    float *coarse; /* nlist */
    cand *probe;   /* nlist */
    float *tab;    /* m x 256 */
    float *resid;  /* dr */
    float *qr;     /* dr: the rotated query */
    float *dl;     /* max_list */
} ivfpq_scratch;

int ivfpq_scratch_init(ivfpq_scratch *s, const ivfpq *p);
void ivfpq_scratch_free(ivfpq_scratch *s);
/* Up to cap best nodes by code distance over the nprobe nearest cells, into
 * out sorted nearest first; returns how many. q is already normalised for
 * cosine. */
size_t ivfpq_search(const ivfpq *p, const float *q, size_t nprobe, size_t cap, ivfpq_scratch *s,
                    hnsw_accept_fn accept, void *ctx, cand *out);

/* ---- random-projection forest (rpforest.c) -----------------------------------
 * Sections: rpforest.meta, rpforest.roots (n_trees u32 node numbers),
 * rpforest.nodes (rpf_node records of every tree), rpforest.normals
 * (n_normals x dim f32, one per inner node, unit length), rpforest.refs
 * (n_trees x n u32 items: tree t's leaves cut its own permutation of the
 * items into runs) and rpforest.ids (n u64). The vectors are the index's. */
#define RPF_LEAF UINT32_MAX
#define RPF_MAX_TREES 4096
#define RPF_MAX_LEAF 65536

typedef struct rpf_meta {
    char magic[8]; /* "DPRPFOR\0" */
    uint32_t version;
    uint32_t dim;
    uint32_t metric;
    uint32_t n_trees;
    uint32_t leaf_size;
    uint32_t reserved0;
    uint64_t n;
    uint64_t seed;
    uint64_t n_nodes;
    uint64_t n_normals;
    uint64_t n_refs; /* n_trees * n */
    uint32_t reserved[2];
} rpf_meta;
_Static_assert(sizeof(rpf_meta) == 80, "rpf_meta layout");

/* Inner node: x goes to child[1] when dot(normal, x) > thr, else child[0];
 * children always come after their parent, so a walk cannot loop. Leaf
 * (normal == RPF_LEAF): items refs[child[0] .. child[0] + child[1]). */
typedef struct rpf_node {
    uint32_t child[2];
    float thr;
    uint32_t normal;
} rpf_node;
_Static_assert(sizeof(rpf_node) == 16, "rpf_node layout");

typedef struct rpforest {
    uint32_t dim, n_trees, leaf_size;
    int metric;
    uint64_t seed;
    size_t n, n_nodes, n_normals, n_refs;
    const uint32_t *roots;
    const rpf_node *nodes;
    const float *normals;
    const uint32_t *refs;
    const uint64_t *ids;
    void *own[5]; /* heap copies (built) behind the pointers above */
    dist_fn df;
    /* set by the binder when item i's vector is at base + i * dim (one
     * segment, nothing removed before the build): saves a lookup per
     * candidate; else vec[] is used */
    const float *base;
} rpforest;

/* Per-thread search buffers, kept in the handle's pool between calls. */
typedef struct rpf_scratch {
    uint64_t *seen; /* a bit per item (dedupe across trees), cleared after a query */
    size_t n_seen;
    uint32_t *rejected; /* seen but refused by the filter: their bits to clear */
    size_t rej_cap;
    cand *heap; /* (distance to the nearest unexplored hyperplane, node) */
    size_t heap_cap;
    uint32_t *cand; /* unique accepted items */
    size_t cand_cap;
    float *tile; /* gathered candidate rows for one kernel call */
    float *dist;
    size_t dist_cap;
} rpf_scratch;

void rpf_free(rpforest *f);
/* Build n_trees trees over the items vecs[i] (ids[i]); tree t depends on
 * (seed, t) only, so threads do not change the bytes. */
int rpf_build(rpforest *f, uint32_t dim, int metric, const float *const *vecs, const uint64_t *ids,
              size_t n, uint32_t n_trees, uint32_t leaf_size, uint64_t seed, int threads,
              dp_progress_fn progress, void *user_data);
int rpf_load(rpforest *f, const dp_index *ix, bool verify);
int rpf_save(const rpforest *f, dp_index *ix);
size_t rpf_bytes(const rpforest *f);
void rpf_scratch_free(rpf_scratch *s);
/* The best k (at most) items by exact distance among those found in the
 * leaves nearest q over all trees, gathering at least search_k leaf entries
 * (duplicates counted, as Annoy does) and k accepted ones when the forest
 * holds them; vec[i] is item i's vector. Sorted nearest first into out;
 * returns how many, or (size_t)-1 when out of memory. */
size_t rpf_search(const rpforest *f, const float *const *vec, const dist_fn *df, const float *q,
                  size_t k, size_t search_k, rpf_scratch *s, hnsw_accept_fn accept, void *ctx,
                  cand *out);

struct dp_ann {
    int kind;
    hnsw g;
    ivfpq pq;
    uint32_t want_nlist, want_m; /* IVF-PQ build parameters, for a deferred training */
    uint32_t want_flags;         /* IVF-PQ: IVFPQ_OPQ */
    uint64_t seed;
    const dp_index *ix;
    uint64_t ix_seq;
    size_t ix_rows;
    size_t ix_ndel;     /* removals the index had at bind time */
    uint64_t *node_row; /* node -> index row, ANN_NO_ROW when the id is gone */
    uint64_t *tail;     /* live rows the graph does not hold */
    size_t n_tail;
    size_t n_dead;
    pthread_mutex_t mu; /* guards the scratch pool */
    hnsw_scratch **pool;
    size_t n_pool, cap_pool;
    rpforest rf;                    /* random-projection forest */
    uint32_t want_trees, want_leaf; /* its build parameters, for the rebuild in update */
    const float **item_vec;         /* rpforest item -> the index's row vector (NULL: gone) */
    rpf_scratch **rpool;            /* guarded by mu */
    size_t n_rpool, cap_rpool;
};

#endif
