/* The dp_ann handle: binds a structure (HNSW or IVF-PQ) to the index it
 * describes (node -> row through the stable ids, the unindexed tail,
 * tombstones) and answers batches of queries, merging the exact scan of the
 * tail. A node is a graph node for HNSW and a position in the inverted
 * lists for IVF-PQ. */
#include "ann_internal.h"

#include "util/util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

const char *dp_ann_kind_name(int kind)
{
    if (kind == DP_ANN_RPFOREST) return "rpforest";
    return kind == DP_ANN_HNSW ? "hnsw" : kind == DP_ANN_IVFPQ ? "ivfpq" : NULL;
}

int dp_ann_kind_parse(const char *name, int *kind)
{
    if (name && !strcmp(name, "hnsw")) {
        *kind = DP_ANN_HNSW;
        return 0;
    }
    if (name && !strcmp(name, "ivfpq")) {
        *kind = DP_ANN_IVFPQ;
        return 0;
    }
    if (name && !strcmp(name, "rpforest")) {
        *kind = DP_ANN_RPFOREST;
        return 0;
    }
    return dp_set_error(DP_ERR_INVALID, "unknown ANN kind '%s' (expected hnsw, ivfpq or rpforest)",
                        name ? name : "(null)");
}

const char *dp_ann_storage_name(int storage)
{
    static const char *const names[] = {"f32", "f16", "int8"};
    return storage >= 0 && storage <= DP_ANN_STORAGE_INT8 ? names[storage] : NULL;
}

int dp_ann_storage_parse(const char *name, int *storage)
{
    for (int i = 0; i <= DP_ANN_STORAGE_INT8; i++)
        if (name && !strcmp(name, dp_ann_storage_name(i))) {
            *storage = i;
            return 0;
        }
    return dp_set_error(DP_ERR_INVALID, "unknown storage '%s' (expected f32, f16 or int8)",
                        name ? name : "(null)");
}

dp_ann_build_params dp_ann_default_build_params(void)
{
    return (dp_ann_build_params){
        .kind = DP_ANN_HNSW, .M = 16, .ef_construction = 200, .seed = 42, .n_trees = 40};
}

dp_ann_open_params dp_ann_default_open_params(void)
{
    return (dp_ann_open_params){0};
}

dp_ann_search_params dp_ann_default_search_params(void)
{
    return (dp_ann_search_params){.k = 10, .ef = 64, .nprobe = 16};
}

static dp_ann *ann_alloc(void)
{
    dp_ann *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    if (pthread_mutex_init(&a->mu, NULL)) {
        free(a);
        return NULL;
    }
    return a;
}

void dp_ann_free(dp_ann *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n_pool; i++) {
        hnsw_scratch_free(a->pool[i]);
        free(a->pool[i]);
    }
    free(a->pool);
    for (size_t i = 0; i < a->n_rpool; i++) {
        rpf_scratch_free(a->rpool[i]);
        free(a->rpool[i]);
    }
    free(a->rpool);
    free(a->item_vec);
    rpf_free(&a->rf);
    free(a->node_row);
    free(a->tail);
    hnsw_free(&a->g);
    ivfpq_free(&a->pq);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static size_t ann_nodes(const dp_ann *a)
{
    if (a->kind == DP_ANN_IVFPQ) return a->pq.n;
    if (a->kind == DP_ANN_RPFOREST) return a->rf.n;
    return a->g.n;
}

static uint64_t node_id(const dp_ann *a, uint32_t node)
{
    if (a->kind == DP_ANN_RPFOREST) return a->rf.ids[node];
    return a->kind == DP_ANN_IVFPQ ? ivfpq_id(&a->pq, node) : hnsw_id(&a->g, node);
}

/* The index row of a node: node_row is dropped when every node's id is its
 * row (a fresh index), which saves 8 bytes a node. */
static inline uint64_t node_row(const dp_ann *a, uint32_t node)
{
    return a->node_row ? a->node_row[node] : node_id(a, node);
}

/* Map every node to its row (ids are stable across appends and
 * compactions), count tombstones, list the live rows the graph lacks. */
static int bind(dp_ann *a, const dp_index *ix)
{
    size_t nn = ann_nodes(a);
    uint64_t *nr = realloc(a->node_row, (nn ? nn : 1) * sizeof *nr);
    if (!nr) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    a->node_row = nr;
    uint8_t *covered = calloc(ix->rows / 8 + 1, 1);
    if (!covered) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    size_t dead = 0;
    bool row_is_id = true;
    for (size_t i = 0; i < nn; i++) {
        size_t row;
        uint64_t id = node_id(a, (uint32_t)i);
        if (!dpx_find_row(ix, id, &row)) {
            nr[i] = ANN_NO_ROW;
            dead++;
            continue;
        }
        if ((covered[row >> 3] >> (row & 7)) & 1) {
            free(covered);
            return dp_set_error(DP_ERR_FORMAT, "%s: id %llu appears twice in the ANN structure",
                                ix->path, (unsigned long long)id);
        }
        covered[row >> 3] |= (uint8_t)(1u << (row & 7));
        nr[i] = row;
        row_is_id &= row == id;
        if (dpx_dead(ix, row)) dead++;
    }
    if (row_is_id && dead == 0) {
        free(a->node_row);
        a->node_row = NULL;
        nr = NULL;
    }
    size_t nt = 0;
    for (size_t r = 0; r < ix->rows; r++)
        if (!((covered[r >> 3] >> (r & 7)) & 1) && !dpx_dead(ix, r)) nt++;
    uint64_t *tail = realloc(a->tail, (nt ? nt : 1) * sizeof *tail);
    if (!tail) {
        free(covered);
        return dp_set_error(DP_ERR_NOMEM, "out of memory");
    }
    a->tail = tail;
    a->n_tail = 0;
    for (size_t r = 0; r < ix->rows; r++)
        if (!((covered[r >> 3] >> (r & 7)) & 1) && !dpx_dead(ix, r)) tail[a->n_tail++] = r;
    free(covered);
    a->n_dead = dead;
    if (a->kind == DP_ANN_RPFOREST) {
        /* the forest keeps no vectors: its items read the index's rows */
        const float **iv = realloc(a->item_vec, (nn ? nn : 1) * sizeof *iv);
        if (!iv) return dp_set_error(DP_ERR_NOMEM, "out of memory");
        a->item_vec = iv;
        for (size_t i = 0; i < nn; i++) {
            size_t l;
            uint64_t row = node_row(a, (uint32_t)i);
            const dpx_seg *s = row == ANN_NO_ROW ? NULL : dpx_seg_of(ix, row, &l);
            iv[i] = s ? s->vec + l * (size_t)ix->dim : NULL;
        }
        a->rf.base = nn ? iv[0] : NULL;
        for (size_t i = 0; a->rf.base && i < nn; i++)
            if (iv[i] != a->rf.base + i * (size_t)ix->dim) a->rf.base = NULL;
    }
    a->ix = ix;
    a->ix_seq = ix->seq;
    a->ix_rows = ix->rows;
    a->ix_ndel = ix->n_deleted;
    return 0;
}

static const float *row_vec(const dp_index *ix, size_t row)
{
    size_t l;
    const dpx_seg *s = dpx_seg_of(ix, row, &l);
    return s->vec + l * (size_t)ix->dim;
}

static uint64_t row_id(const dp_index *ix, size_t row)
{
    size_t l;
    const dpx_seg *s = dpx_seg_of(ix, row, &l);
    return s->ids[l];
}

/* rpforest: a new forest over every live row (trees cannot take items
 * without unbalancing, and Annoy cannot add at all); rows it dropped as
 * removed are forgotten. */
static int rpf_rebuild(dp_ann *a, const dp_index *ix, const dp_ann_build_params *p)
{
    size_t nl = 0;
    for (size_t r = 0; r < ix->rows; r++)
        nl += !dpx_dead(ix, r);
    const float **vecs = malloc((nl ? nl : 1) * sizeof *vecs);
    uint64_t *ids = malloc((nl ? nl : 1) * sizeof *ids);
    int rc = 0;
    if (!vecs || !ids) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory for %zu rows", nl);
    } else {
        size_t j = 0;
        for (size_t r = 0; r < ix->rows; r++)
            if (!dpx_dead(ix, r)) {
                vecs[j] = row_vec(ix, r);
                ids[j++] = row_id(ix, r);
            }
        rc = rpf_build(&a->rf, ix->dim, ix->metric, vecs, ids, nl, a->want_trees, a->want_leaf,
                       a->seed, p->threads, p->progress, p->user_data);
        if (!rc) dist_fn_init(&a->rf.df, ix->metric, ix->dim);
    }
    free(vecs);
    free(ids);
    return rc;
}

static int build_rpforest(const dp_index *ix, const dp_ann_build_params *p, dp_ann **out)
{
    uint32_t nt = p->n_trees ? p->n_trees : 40, leaf = p->leaf_size ? p->leaf_size : 128;
    if (nt > RPF_MAX_TREES || leaf > RPF_MAX_LEAF)
        return dp_set_error(DP_ERR_INVALID,
                            "dp_ann_build: rpforest with %u trees, leaf size %u (at most %u, %u)",
                            nt, leaf, RPF_MAX_TREES, RPF_MAX_LEAF);
    if (ix->rows > UINT32_MAX - 1)
        return dp_set_error(DP_ERR_UNSUPPORTED, "dp_ann_build: %s: more than 4G rows", ix->path);
    dp_ann *a = ann_alloc();
    if (!a) return dp_set_error(DP_ERR_NOMEM, "dp_ann_build: out of memory");
    a->kind = DP_ANN_RPFOREST;
    a->want_trees = nt;
    a->want_leaf = leaf;
    a->seed = p->seed;
    int rc = rpf_rebuild(a, ix, p);
    if (!rc) rc = bind(a, ix);
    if (rc) {
        dp_ann_free(a);
        return dp_prefix_error(rc, "dp_ann_build: %s", ix->path);
    }
    *out = a;
    return 0;
}

/* Insert the rows of a->tail into the graph. */
static int insert_tail(dp_ann *a, const dp_index *ix, const dp_ann_build_params *p)
{
    if (!a->n_tail) return 0;
    const float **vecs = malloc(a->n_tail * sizeof *vecs);
    uint64_t *ids = malloc(a->n_tail * sizeof *ids);
    int rc;
    if (!vecs || !ids) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory for %zu rows", a->n_tail);
        goto done;
    }
    for (size_t i = 0; i < a->n_tail; i++) {
        vecs[i] = row_vec(ix, a->tail[i]);
        ids[i] = row_id(ix, a->tail[i]);
    }
    if (a->kind == DP_ANN_RPFOREST) {
        rc = rpf_rebuild(a, ix, p);
        goto done;
    }
    if (a->kind == DP_ANN_IVFPQ) {
        if (!a->pq.nlist && a->n_tail + a->pq.n >= DP_IVFPQ_MIN_ROWS) {
            /* grown past the exact-search size: train now */
            ivfpq_free(&a->pq);
            rc = ivfpq_build(&a->pq, ix->dim, ix->metric, vecs, ids, a->n_tail, a->want_nlist,
                             a->want_m, a->want_flags, a->seed, p->threads);
        } else {
            rc = ivfpq_add(&a->pq, vecs, ids, a->n_tail, p->threads);
        }
        if (!rc && p->progress) p->progress(a->n_tail, a->n_tail, p->user_data);
    } else {
        rc = hnsw_insert(&a->g, vecs, ids, a->n_tail, p->threads, p->progress, p->user_data);
    }
done:
    free(vecs);
    free(ids);
    return rc;
}

static int build_ivfpq(const dp_index *ix, const dp_ann_build_params *p, dp_ann **out)
{
    if (ix->metric == DP_METRIC_L1)
        return dp_set_error(DP_ERR_UNSUPPORTED,
                            "dp_ann_build: %s: IVF-PQ supports l2, ip and cosine, not l1",
                            ix->path);
    if (p->pq_m && (p->pq_m > ix->dim || (!p->opq && ix->dim % p->pq_m)))
        return dp_set_error(DP_ERR_INVALID,
                            "dp_ann_build: IVF-PQ m = %u does not divide the dimension %u "
                            "(with OPQ any m up to it will do)",
                            p->pq_m, ix->dim);
    if (p->nlist > IVFPQ_MAX_NLIST ||
        (p->nlist && p->nlist > ix->live && ix->live >= DP_IVFPQ_MIN_ROWS))
        return dp_set_error(DP_ERR_INVALID,
                            "dp_ann_build: IVF-PQ nlist = %u for %zu entries (at most one "
                            "cell per entry, %u)",
                            p->nlist, ix->live, IVFPQ_MAX_NLIST);
    if (ix->rows > UINT32_MAX - 1)
        return dp_set_error(DP_ERR_UNSUPPORTED, "dp_ann_build: %s: more than 4G rows", ix->path);
    dp_ann *a = ann_alloc();
    if (!a) return dp_set_error(DP_ERR_NOMEM, "dp_ann_build: out of memory");
    a->kind = DP_ANN_IVFPQ;
    a->want_nlist = p->nlist;
    a->want_m = p->pq_m;
    a->want_flags = p->opq ? IVFPQ_OPQ : 0;
    a->seed = p->seed;
    /* an untrained structure: every live row is tail, and insert_tail trains */
    ivfpq_free(&a->pq);
    a->pq.dim = ix->dim;
    a->pq.metric = ix->metric;
    a->pq.seed = p->seed;
    int rc = bind(a, ix);
    if (!rc) {
        const float **vecs = malloc((a->n_tail ? a->n_tail : 1) * sizeof *vecs);
        uint64_t *ids = malloc((a->n_tail ? a->n_tail : 1) * sizeof *ids);
        if (!vecs || !ids) {
            rc = dp_set_error(DP_ERR_NOMEM, "out of memory for %zu rows", a->n_tail);
        } else {
            for (size_t i = 0; i < a->n_tail; i++) {
                vecs[i] = row_vec(ix, a->tail[i]);
                ids[i] = row_id(ix, a->tail[i]);
            }
            rc = ivfpq_build(&a->pq, ix->dim, ix->metric, vecs, ids, a->n_tail, p->nlist, p->pq_m,
                             a->want_flags, p->seed, p->threads);
            if (!rc && p->progress) p->progress(a->n_tail, a->n_tail, p->user_data);
        }
        free(vecs);
        free(ids);
    }
    if (!rc) rc = bind(a, ix);
    if (rc) {
        dp_ann_free(a);
        return dp_prefix_error(rc, "dp_ann_build: %s", ix->path);
    }
    *out = a;
    return 0;
}

int dp_ann_build(const dp_index *ix, const dp_ann_build_params *p, dp_ann **out)
{
    *out = NULL;
    dp_ann_build_params d = dp_ann_default_build_params();
    if (!p) p = &d;
    int kind = p->kind ? p->kind : DP_ANN_HNSW;
    if (kind == DP_ANN_IVFPQ) return build_ivfpq(ix, p, out);
    if (kind == DP_ANN_RPFOREST) return build_rpforest(ix, p, out);
    if (kind != DP_ANN_HNSW)
        return dp_set_error(DP_ERR_UNSUPPORTED, "dp_ann_build: ANN kind %d is not supported", kind);
    if (p->M < 2 || p->M > HNSW_MAX_M)
        return dp_set_error(DP_ERR_INVALID, "dp_ann_build: M = %u is not in 2..%u", p->M,
                            HNSW_MAX_M);
    if (p->ef_construction < 1 || p->ef_construction > 100000)
        return dp_set_error(DP_ERR_INVALID,
                            "dp_ann_build: ef_construction = %u is not in 1..100000",
                            p->ef_construction);
    if (p->storage < DP_ANN_STORAGE_F32 || p->storage > DP_ANN_STORAGE_INT8)
        return dp_set_error(DP_ERR_INVALID, "dp_ann_build: storage %d is not f32, f16 or int8",
                            p->storage);
    if (ix->rows > UINT32_MAX - 1)
        return dp_set_error(DP_ERR_UNSUPPORTED, "dp_ann_build: %s: more than 4G rows", ix->path);
    dp_ann *a = ann_alloc();
    if (!a) return dp_set_error(DP_ERR_NOMEM, "dp_ann_build: out of memory");
    a->kind = kind;
    uint32_t efc = p->ef_construction < p->M ? p->M : p->ef_construction;
    hnsw_init(&a->g, ix->dim, ix->metric, p->M, efc, p->seed, p->storage);
    /* every live row is "tail" of an empty graph */
    int rc = bind(a, ix);
    if (!rc) rc = insert_tail(a, ix, p);
    if (!rc) rc = bind(a, ix);
    if (rc) {
        dp_ann_free(a);
        return dp_prefix_error(rc, "dp_ann_build: %s", ix->path);
    }
    *out = a;
    return 0;
}

int dp_ann_open(const dp_index *ix, const dp_ann_open_params *p, dp_ann **out)
{
    *out = NULL;
    dp_ann_open_params d = dp_ann_default_open_params();
    if (!p) p = &d;
    if (p->kind && p->kind != DP_ANN_HNSW && p->kind != DP_ANN_IVFPQ && p->kind != DP_ANN_RPFOREST)
        return dp_set_error(DP_ERR_UNSUPPORTED, "dp_ann_open: ANN kind %d is not supported",
                            p->kind);
    int kind = DP_ANN_NONE;
    if ((!p->kind || p->kind == DP_ANN_HNSW) && dp_index_count_sections(ix, "hnsw."))
        kind = DP_ANN_HNSW;
    else if ((!p->kind || p->kind == DP_ANN_IVFPQ) && dp_index_count_sections(ix, "ivfpq."))
        kind = DP_ANN_IVFPQ;
    else if ((!p->kind || p->kind == DP_ANN_RPFOREST) && dp_index_count_sections(ix, "rpforest."))
        kind = DP_ANN_RPFOREST;
    if (!kind)
        return dp_set_error(DP_ERR_NOT_FOUND,
                            "dp_ann_open: %s holds no %s structure (build "
                            "one with 'doppel ann build')",
                            ix->path, p->kind ? dp_ann_kind_name(p->kind) : "ANN");
    dp_ann *a = ann_alloc();
    if (!a) return dp_set_error(DP_ERR_NOMEM, "dp_ann_open: out of memory");
    a->kind = kind;
    int rc;
    if (kind == DP_ANN_RPFOREST) {
        rc = rpf_load(&a->rf, ix, p->verify);
        dist_fn_init(&a->rf.df, a->rf.metric, a->rf.dim);
        a->want_trees = a->rf.n_trees;
        a->want_leaf = a->rf.leaf_size;
        a->seed = a->rf.seed;
    } else if (kind == DP_ANN_IVFPQ) {
        rc = ivfpq_load(&a->pq, ix, p->verify);
        a->want_nlist = 0;
        a->want_m = 0;
        a->seed = a->pq.seed;
    } else {
        rc = hnsw_load(&a->g, ix, p->verify, p->private_nodes);
    }
    if (!rc) rc = bind(a, ix);
    if (rc) {
        dp_ann_free(a);
        return dp_prefix_error(rc, "dp_ann_open");
    }
    *out = a;
    return 0;
}

int dp_ann_update(dp_ann *a, const dp_index *ix, const dp_ann_build_params *p)
{
    dp_ann_build_params d = dp_ann_default_build_params();
    if (!p) p = &d;
    uint32_t dim = a->kind == DP_ANN_IVFPQ ? a->pq.dim : a->g.dim;
    int metric = a->kind == DP_ANN_IVFPQ ? a->pq.metric : a->g.metric;
    if (a->kind == DP_ANN_RPFOREST) {
        dim = a->rf.dim;
        metric = a->rf.metric;
    }
    if (ix->dim != dim || ix->metric != metric)
        return dp_set_error(DP_ERR_MISMATCH, "dp_ann_update: %s has another dimension or metric",
                            ix->path);
    /* scratch buffers are sized by the node count */
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n_pool; i++) {
        hnsw_scratch_free(a->pool[i]);
        free(a->pool[i]);
    }
    a->n_pool = 0;
    pthread_mutex_unlock(&a->mu);
    int rc = bind(a, ix);
    if (!rc) rc = insert_tail(a, ix, p);
    if (!rc) rc = bind(a, ix);
    return rc ? dp_prefix_error(rc, "dp_ann_update: %s", ix->path) : 0;
}

int dp_ann_save(const dp_ann *a, dp_index *ix)
{
    /* one structure per index: the other kind's sections go */
    int rc = dp_index_drop_sections(ix, a->kind == DP_ANN_IVFPQ ? "hnsw." : "ivfpq.");
    if (!rc && a->kind != DP_ANN_RPFOREST) rc = dp_index_drop_sections(ix, "rpforest.");
    if (!rc && a->kind == DP_ANN_RPFOREST) rc = dp_index_drop_sections(ix, "hnsw.");
    if (!rc && a->kind == DP_ANN_RPFOREST)
        rc = rpf_save(&a->rf, ix);
    else if (!rc)
        rc = a->kind == DP_ANN_IVFPQ ? ivfpq_save(&a->pq, ix) : hnsw_save(&a->g, ix);
    return rc ? dp_prefix_error(rc, "dp_ann_save") : 0;
}

int dp_ann_drop(dp_index *ix)
{
    int rc = dp_index_drop_sections(ix, "hnsw.");
    if (!rc) rc = dp_index_drop_sections(ix, "ivfpq.");
    if (!rc) rc = dp_index_drop_sections(ix, "rpforest.");
    return rc ? dp_prefix_error(rc, "dp_ann_drop") : 0;
}

int dp_ann_describe(const dp_ann *a, dp_ann_info *out)
{
    memset(out, 0, sizeof *out);
    out->kind = a->kind;
    out->dead = a->n_dead;
    out->unindexed = a->n_tail;
    if (a->kind == DP_ANN_RPFOREST) {
        out->nodes = a->rf.n;
        out->bytes = rpf_bytes(&a->rf);
        out->n_trees = a->rf.n_trees;
        out->leaf_size = a->rf.leaf_size;
        out->seed = a->rf.seed;
        out->max_level = -1;
        return 0;
    }
    if (a->kind == DP_ANN_IVFPQ) {
        out->nodes = a->pq.n;
        out->bytes = ivfpq_bytes(&a->pq);
        out->nlist = a->pq.nlist;
        out->pq_m = a->pq.m;
        out->opq = a->pq.rot != NULL;
        out->seed = a->pq.seed;
        out->max_level = -1;
        return 0;
    }
    out->nodes = a->g.n;
    out->bytes = hnsw_bytes(&a->g);
    out->M = a->g.M;
    out->ef_construction = a->g.efc;
    out->max_level = a->g.max_level;
    out->seed = a->g.seed;
    out->storage = a->g.storage;
    return 0;
}

/* ---- search --------------------------------------------------------------- */

static hnsw_scratch *scratch_get(dp_ann *a, size_t ef)
{
    hnsw_scratch *s = NULL;
    pthread_mutex_lock(&a->mu);
    if (a->n_pool) s = a->pool[--a->n_pool];
    pthread_mutex_unlock(&a->mu);
    if (s && s->vis.n >= a->g.n) return s;
    if (s) {
        hnsw_scratch_free(s);
    } else if (!(s = malloc(sizeof *s))) {
        return NULL;
    }
    if (hnsw_scratch_init(s, a->g.n, ef + a->g.M0 + 1)) {
        free(s);
        return NULL;
    }
    return s;
}

static void scratch_put(dp_ann *a, hnsw_scratch *s)
{
    pthread_mutex_lock(&a->mu);
    if (a->n_pool == a->cap_pool) {
        size_t cap = a->cap_pool ? a->cap_pool * 2 : 8;
        hnsw_scratch **p = realloc(a->pool, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&a->mu);
            hnsw_scratch_free(s);
            free(s);
            return;
        }
        a->pool = p;
        a->cap_pool = cap;
    }
    a->pool[a->n_pool++] = s;
    pthread_mutex_unlock(&a->mu);
}

typedef struct qctx {
    const dp_ann *a;
    uint64_t exclude;
    dp_id_filter_fn filter;
    void *ud;
} qctx;

static bool accept_node(uint32_t node, void *ctx)
{
    const qctx *c = ctx;
    uint64_t row = node_row(c->a, node);
    if (row == ANN_NO_ROW || dpx_dead(c->a->ix, row)) return false;
    uint64_t id = node_id(c->a, node);
    return id != c->exclude && (!c->filter || c->filter(id, c->ud));
}

typedef struct res {
    float d;
    uint64_t id;
} res;

static int res_cmp(const void *a, const void *b)
{
    const res *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Per-thread search buffers. */
typedef struct sbuf {
    float *q;
    cand *c;
    res *r;
    ivfpq_scratch pq;
    bool has_pq;
} sbuf;

/* rpforest scratch: the stamps are as long as the forest, so they are kept
 * between calls rather than allocated per query. */
static rpf_scratch *rpf_scratch_get(dp_ann *a)
{
    rpf_scratch *s = NULL;
    pthread_mutex_lock(&a->mu);
    if (a->n_rpool) s = a->rpool[--a->n_rpool];
    pthread_mutex_unlock(&a->mu);
    return s ? s : calloc(1, sizeof *s);
}

static void rpf_scratch_put(dp_ann *a, rpf_scratch *s)
{
    pthread_mutex_lock(&a->mu);
    if (a->n_rpool == a->cap_rpool) {
        size_t cap = a->cap_rpool ? a->cap_rpool * 2 : 8;
        rpf_scratch **p = realloc(a->rpool, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&a->mu);
            rpf_scratch_free(s);
            free(s);
            return;
        }
        a->rpool = p;
        a->cap_rpool = cap;
    }
    a->rpool[a->n_rpool++] = s;
    pthread_mutex_unlock(&a->mu);
}

static int search_one(const dp_ann *a, const float *q0, size_t qi, const dp_ann_search_params *p,
                      size_t ef, sbuf *b, int64_t *ids, float *dist)
{
    const dp_index *ix = a->ix;
    bool pq = a->kind == DP_ANN_IVFPQ;
    uint32_t dim = pq ? a->pq.dim : a->g.dim;
    int metric = pq ? a->pq.metric : a->g.metric;
    const dist_fn *df = pq ? &a->pq.df : &a->g.df;
    bool rp = a->kind == DP_ANN_RPFOREST;
    if (rp) {
        dim = a->rf.dim;
        metric = a->rf.metric;
        df = &a->rf.df;
    }
    const float *q = q0;
    if (metric == DP_METRIC_COSINE) {
        double s = 0;
        for (uint32_t j = 0; j < dim; j++)
            s += (double)q0[j] * q0[j];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (uint32_t j = 0; j < dim; j++)
            b->q[j] = q0[j] * inv;
        q = b->q;
    }
    qctx c = {a, p->exclude_ids ? p->exclude_ids[qi] : UINT64_MAX, p->filter, p->filter_user_data};
    bool plain = !a->n_dead && ix->n_deleted == a->ix_ndel && c.exclude == UINT64_MAX && !c.filter;
    size_t nr, done = 0; /* b->r[0, done) already hold (distance, id) */
    if (rp) {
        rpf_scratch *s = rpf_scratch_get((dp_ann *)a);
        size_t sk = p->search_k ? p->search_k : (size_t)a->rf.n_trees * p->k;
        nr = s ? rpf_search(&a->rf, a->item_vec, df, q, p->k, sk, s, plain ? NULL : accept_node, &c,
                            b->c)
               : (size_t)-1;
        if (s) rpf_scratch_put((dp_ann *)a, s);
        if (nr == (size_t)-1) return dp_set_error(DP_ERR_NOMEM, "dp_ann_search: out of memory");
    } else if (pq) {
        nr = ivfpq_search(&a->pq, q, p->nprobe ? p->nprobe : 16, ef, &b->pq,
                          plain ? NULL : accept_node, &c, b->c);
        if (p->rerank) { /* exact distances from the index's vectors; ids decoded once */
            for (size_t i = 0; i < nr; i++) {
                uint64_t id = node_id(a, b->c[i].id);
                uint64_t row = a->node_row ? a->node_row[b->c[i].id] : id;
                b->r[i] = (res){dist_eval(df, q, row_vec(ix, row)), id};
            }
            done = nr;
        }
    } else {
        hnsw_scratch *s = scratch_get((dp_ann *)a, ef);
        if (!s) return dp_set_error(DP_ERR_NOMEM, "dp_ann_search: out of memory");
        nr = hnsw_search(&a->g, q, ef, s, plain ? NULL : accept_node, &c, b->c);
        scratch_put((dp_ann *)a, s);
        if (a->g.storage != DP_ANN_STORAGE_F32) {
            /* the best by code distance again, exactly; the rest are
             * dropped (their distances are not exact). max(4k, 32) lost no
             * recall at any ef on clustered and book-random 100k x 100
             * (int8 and f16) and saves a row read per dropped candidate. */
            size_t keep =
                p->rerank ? (p->rerank > p->k ? p->rerank : p->k) : (4 * p->k > 32 ? 4 * p->k : 32);
            if (nr > keep) nr = keep;
            /* ask for every row first: the misses overlap instead of queueing */
            for (size_t i = 0; i < nr; i++) {
                uint64_t row = node_row(a, b->c[i].id);
                if (row == ANN_NO_ROW) continue;
                const char *v = (const char *)row_vec(ix, row);
                for (size_t o = 0; o < (size_t)dim * 4; o += 64)
                    __builtin_prefetch(v + o);
            }
            for (size_t i = 0; i < nr; i++) {
                uint64_t row = node_row(a, b->c[i].id);
                if (row != ANN_NO_ROW) b->c[i].d = dist_eval(df, q, row_vec(ix, row));
            }
        }
    }
    size_t n = done;
    for (size_t i = done; i < nr; i++)
        b->r[n++] = (res){b->c[i].d, node_id(a, b->c[i].id)};
    /* the unindexed tail, exactly */
    for (size_t t = 0; t < a->n_tail; t++) {
        size_t row = a->tail[t];
        if (dpx_dead(ix, row)) continue;
        uint64_t id = row_id(ix, row);
        if (id == c.exclude || (c.filter && !c.filter(id, c.ud))) continue;
        b->r[n++] = (res){dist_eval(df, q, row_vec(ix, row)), id};
    }
    qsort(b->r, n, sizeof *b->r, res_cmp);
    for (size_t i = 0; i < p->k; i++) {
        ids[i] = i < n ? (int64_t)b->r[i].id : -1;
        if (dist) dist[i] = i < n ? b->r[i].d : INFINITY;
    }
    return 0;
}

int dp_ann_search(const dp_ann *a, const float *queries, size_t nq, const dp_ann_search_params *p,
                  int64_t *ids_out, float *dist_out)
{
    dp_ann_search_params d = dp_ann_default_search_params();
    if (!p) p = &d;
    const dp_index *ix = a->ix;
    if (ix->seq != a->ix_seq || ix->rows != a->ix_rows)
        return dp_set_error(DP_ERR_INVALID,
                            "dp_ann_search: %s changed since the ANN structure was opened (call "
                            "dp_ann_update)",
                            ix->path);
    if (p->k < 1 || p->k > 100000)
        return dp_set_error(DP_ERR_INVALID, "dp_ann_search: k = %zu is not in 1..100000", p->k);
    if (nq && (!queries || !ids_out))
        return dp_set_error(DP_ERR_INVALID, "dp_ann_search: NULL queries or output");
    bool pq = a->kind == DP_ANN_IVFPQ;
    /* HNSW: the candidate list; IVF-PQ: the candidates kept by code distance */
    size_t ef = pq ? (p->rerank > p->k ? p->rerank : p->k) : (p->ef < p->k ? p->k : p->ef);
    if (ef > 1000000) ef = 1000000;
    if (a->kind == DP_ANN_RPFOREST) ef = p->k; /* its own buffers hold the candidates */
    size_t rcap = ef + a->n_tail;
    uint32_t dim = pq ? a->pq.dim : a->kind == DP_ANN_RPFOREST ? a->rf.dim : a->g.dim;
    int nthr = p->threads > 0 ? p->threads : omp_get_max_threads();
    if (nq < 2) nthr = 1;
    volatile int err = 0;
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    {
        sbuf b = {0};
        b.q = malloc((size_t)dim * sizeof *b.q);
        b.c = malloc((ef + 1) * sizeof *b.c);
        b.r = malloc((rcap + 1) * sizeof *b.r);
        if (pq) b.has_pq = !ivfpq_scratch_init(&b.pq, &a->pq);
        if (!b.q || !b.c || !b.r || (pq && !b.has_pq))
            err = dp_set_error(DP_ERR_NOMEM, "dp_ann_search: out of memory");
#pragma omp for schedule(dynamic, 4)
        for (size_t i = 0; i < nq; i++) {
            if (err) continue;
            int rc = search_one(a, queries + i * dim, i, p, ef, &b, ids_out + i * p->k,
                                dist_out ? dist_out + i * p->k : NULL);
            if (rc) err = rc;
        }
        free(b.q);
        free(b.c);
        free(b.r);
        if (b.has_pq) ivfpq_scratch_free(&b.pq);
    }
    /* a worker's message stays on its own thread */
    if (err) return dp_set_error(err, "dp_ann_search: %s: out of memory", ix->path);
    return 0;
}
