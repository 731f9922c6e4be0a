/* The dp_ann handle: binds a structure to the index it describes (node ->
 * row through the stable ids, the unindexed tail, tombstones) and answers
 * batches of queries, merging the exact scan of the tail. */
#include "ann_internal.h"

#include "util/util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

const char *dp_ann_kind_name(int kind)
{
    return kind == DP_ANN_HNSW ? "hnsw" : NULL;
}

int dp_ann_kind_parse(const char *name, int *kind)
{
    if (name && !strcmp(name, "hnsw")) {
        *kind = DP_ANN_HNSW;
        return 0;
    }
    return dp_set_error(DP_ERR_INVALID, "unknown ANN kind '%s' (expected hnsw)",
                        name ? name : "(null)");
}

dp_ann_build_params dp_ann_default_build_params(void)
{
    return (dp_ann_build_params){.kind = DP_ANN_HNSW, .M = 16, .ef_construction = 200, .seed = 42};
}

dp_ann_open_params dp_ann_default_open_params(void)
{
    return (dp_ann_open_params){0};
}

dp_ann_search_params dp_ann_default_search_params(void)
{
    return (dp_ann_search_params){.k = 10, .ef = 64};
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
    free(a->node_row);
    free(a->tail);
    hnsw_free(&a->g);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* Map every node to its row (ids are stable across appends and
 * compactions), count tombstones, list the live rows the graph lacks. */
static int bind(dp_ann *a, const dp_index *ix)
{
    const hnsw *h = &a->g;
    uint64_t *nr = realloc(a->node_row, (h->n ? h->n : 1) * sizeof *nr);
    if (!nr) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    a->node_row = nr;
    uint8_t *covered = calloc(ix->rows / 8 + 1, 1);
    if (!covered) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    size_t dead = 0;
    for (size_t i = 0; i < h->n; i++) {
        size_t row;
        if (!dpx_find_row(ix, h->ids[i], &row)) {
            nr[i] = ANN_NO_ROW;
            dead++;
            continue;
        }
        if ((covered[row >> 3] >> (row & 7)) & 1) {
            free(covered);
            return dp_set_error(DP_ERR_FORMAT, "%s: id %llu appears twice in the ANN graph",
                                ix->path, (unsigned long long)h->ids[i]);
        }
        covered[row >> 3] |= (uint8_t)(1u << (row & 7));
        nr[i] = row;
        if (dpx_dead(ix, row)) dead++;
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
    rc = hnsw_insert(&a->g, vecs, ids, a->n_tail, p->threads, p->progress, p->user_data);
done:
    free(vecs);
    free(ids);
    return rc;
}

int dp_ann_build(const dp_index *ix, const dp_ann_build_params *p, dp_ann **out)
{
    *out = NULL;
    dp_ann_build_params d = dp_ann_default_build_params();
    if (!p) p = &d;
    int kind = p->kind ? p->kind : DP_ANN_HNSW;
    if (kind != DP_ANN_HNSW)
        return dp_set_error(DP_ERR_UNSUPPORTED, "dp_ann_build: ANN kind %d is not supported", kind);
    if (p->M < 2 || p->M > HNSW_MAX_M)
        return dp_set_error(DP_ERR_INVALID, "dp_ann_build: M = %u is not in 2..%u", p->M,
                            HNSW_MAX_M);
    if (p->ef_construction < 1 || p->ef_construction > 100000)
        return dp_set_error(DP_ERR_INVALID,
                            "dp_ann_build: ef_construction = %u is not in 1..100000",
                            p->ef_construction);
    if (ix->rows > UINT32_MAX - 1)
        return dp_set_error(DP_ERR_UNSUPPORTED, "dp_ann_build: %s: more than 4G rows", ix->path);
    dp_ann *a = ann_alloc();
    if (!a) return dp_set_error(DP_ERR_NOMEM, "dp_ann_build: out of memory");
    a->kind = kind;
    uint32_t efc = p->ef_construction < p->M ? p->M : p->ef_construction;
    hnsw_init(&a->g, ix->dim, ix->metric, p->M, efc, p->seed);
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
    if (p->kind && p->kind != DP_ANN_HNSW)
        return dp_set_error(DP_ERR_UNSUPPORTED, "dp_ann_open: ANN kind %d is not supported",
                            p->kind);
    if (!dp_index_count_sections(ix, "hnsw."))
        return dp_set_error(DP_ERR_NOT_FOUND,
                            "dp_ann_open: %s holds no ANN structure (build "
                            "one with 'doppel ann build')",
                            ix->path);
    dp_ann *a = ann_alloc();
    if (!a) return dp_set_error(DP_ERR_NOMEM, "dp_ann_open: out of memory");
    a->kind = DP_ANN_HNSW;
    int rc = hnsw_load(&a->g, ix, p->verify);
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
    if (ix->dim != a->g.dim || ix->metric != a->g.metric)
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
    int rc = hnsw_save(&a->g, ix);
    return rc ? dp_prefix_error(rc, "dp_ann_save") : 0;
}

int dp_ann_drop(dp_index *ix)
{
    int rc = dp_index_drop_sections(ix, "hnsw.");
    return rc ? dp_prefix_error(rc, "dp_ann_drop") : 0;
}

int dp_ann_describe(const dp_ann *a, dp_ann_info *out)
{
    memset(out, 0, sizeof *out);
    out->kind = a->kind;
    out->nodes = a->g.n;
    out->dead = a->n_dead;
    out->unindexed = a->n_tail;
    out->bytes = hnsw_bytes(&a->g);
    out->M = a->g.M;
    out->ef_construction = a->g.efc;
    out->max_level = a->g.max_level;
    out->seed = a->g.seed;
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
    uint64_t row = c->a->node_row[node];
    if (row == ANN_NO_ROW || dpx_dead(c->a->ix, row)) return false;
    uint64_t id = c->a->g.ids[node];
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

static int search_one(const dp_ann *a, const float *q0, size_t qi, const dp_ann_search_params *p,
                      size_t ef, float *qbuf, cand *cbuf, res *rbuf, int64_t *ids, float *dist)
{
    const dp_index *ix = a->ix;
    uint32_t dim = a->g.dim;
    const float *q = q0;
    if (a->g.metric == DP_METRIC_COSINE) {
        double s = 0;
        for (uint32_t j = 0; j < dim; j++)
            s += (double)q0[j] * q0[j];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (uint32_t j = 0; j < dim; j++)
            qbuf[j] = q0[j] * inv;
        q = qbuf;
    }
    qctx c = {a, p->exclude_ids ? p->exclude_ids[qi] : UINT64_MAX, p->filter, p->filter_user_data};
    bool plain = !a->n_dead && ix->n_deleted == a->ix_ndel && c.exclude == UINT64_MAX && !c.filter;
    hnsw_scratch *s = scratch_get((dp_ann *)a, ef);
    if (!s) return dp_set_error(DP_ERR_NOMEM, "dp_ann_search: out of memory");
    size_t nr = hnsw_search(&a->g, q, ef, s, plain ? NULL : accept_node, &c, cbuf);
    scratch_put((dp_ann *)a, s);
    size_t n = 0;
    for (size_t i = 0; i < nr; i++)
        rbuf[n++] = (res){cbuf[i].d, a->g.ids[cbuf[i].id]};
    /* the unindexed tail, exactly */
    for (size_t t = 0; t < a->n_tail; t++) {
        size_t row = a->tail[t];
        if (dpx_dead(ix, row)) continue;
        uint64_t id = row_id(ix, row);
        if (id == c.exclude || (c.filter && !c.filter(id, c.ud))) continue;
        rbuf[n++] = (res){dist_eval(&a->g.df, q, row_vec(ix, row)), id};
    }
    qsort(rbuf, n, sizeof *rbuf, res_cmp);
    for (size_t i = 0; i < p->k; i++) {
        ids[i] = i < n ? (int64_t)rbuf[i].id : -1;
        if (dist) dist[i] = i < n ? rbuf[i].d : INFINITY;
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
    size_t ef = p->ef < p->k ? p->k : p->ef;
    if (ef > 1000000) ef = 1000000;
    size_t rcap = ef + a->n_tail;
    int nthr = p->threads > 0 ? p->threads : omp_get_max_threads();
    if (nq < 2) nthr = 1;
    volatile int err = 0;
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    {
        float *qbuf = malloc((size_t)a->g.dim * sizeof *qbuf);
        cand *cbuf = malloc((ef + 1) * sizeof *cbuf);
        res *rbuf = malloc((rcap + 1) * sizeof *rbuf);
        if (!qbuf || !cbuf || !rbuf)
            err = dp_set_error(DP_ERR_NOMEM, "dp_ann_search: out of memory");
#pragma omp for schedule(dynamic, 4)
        for (size_t i = 0; i < nq; i++) {
            if (err) continue;
            int rc = search_one(a, queries + i * a->g.dim, i, p, ef, qbuf, cbuf, rbuf,
                                ids_out + i * p->k, dist_out ? dist_out + i * p->k : NULL);
            if (rc) err = rc;
        }
        free(qbuf);
        free(cbuf);
        free(rbuf);
    }
    /* a worker's message stays on its own thread */
    if (err) return dp_set_error(err, "dp_ann_search: %s: out of memory", ix->path);
    return 0;
}
