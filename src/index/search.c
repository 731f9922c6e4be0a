/* Exact k-NN and range search over every stored row.
 *
 * Few queries: the rows are cut into blocks that threads take in turn; each
 * block is scanned 256 rows at a time with the ISA kernel (dist.h) into a
 * small buffer, so every query of the batch reuses the rows while they are
 * in L2, and a candidate only costs a compare against its query's current
 * k-th distance (a max-heap root) unless it improves on it. Per-thread heaps
 * are merged at the end. The single-query case is bound by memory bandwidth.
 *
 * Many queries (L2, IP, cosine): distances come from a GEMM per tile of rows,
 * |x - q|^2 = |x|^2 - 2 x.q + |q|^2, ranking by |x|^2 - 2 x.q (the |q|^2 term
 * is the same for every row and is added at the end). A tile holds all the
 * queries of a pass (up to 1,024) against a few hundred rows, about L2-sized;
 * threads take tiles in turn, each runs a single-threaded GEMM on its tile
 * and filters it while it is still in cache: a vector compare of each key
 * against its query's current k-th (first_key_below) skips all but a few
 * hundred of the million keys per query, so selection costs a few percent
 * of the GEMM. */
#include "index_internal.h"

#include "linalg/dist.h"
#include "util/util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_SUB 256                  /* rows per kernel call */
#define SCAN_BLOCK 16384              /* rows per thread task */
#define GEMM_TILE_FLOATS (128 * 1024) /* dot products per GEMM tile (512 KiB) */
#define GEMM_QUERIES 1024             /* queries per pass over the rows */
#define MAX_HEAP_ITEMS (1u << 26)     /* per pass: queries x k x threads */

dp_search_params dp_search_default_params(void)
{
    return (dp_search_params){.k = 10, .max_distance = INFINITY, .gemm_min_queries = 16};
}

/* A bounded max-heap on (dist, row): the root is the worst kept result. */
typedef struct heap {
    float *d;
    uint64_t *r;
    size_t n;
} heap;

static inline bool worse(float da, uint64_t ra, float db, uint64_t rb)
{
    return da > db || (da == db && ra > rb);
}

static void heap_sift_down(heap *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < h->n && worse(h->d[l], h->r[l], h->d[m], h->r[m])) m = l;
        if (l + 1 < h->n && worse(h->d[l + 1], h->r[l + 1], h->d[m], h->r[m])) m = l + 1;
        if (m == i) return;
        float td = h->d[i];
        uint64_t tr = h->r[i];
        h->d[i] = h->d[m];
        h->r[i] = h->r[m];
        h->d[m] = td;
        h->r[m] = tr;
        i = m;
    }
}

static void heap_push(heap *h, size_t k, float d, uint64_t r)
{
    if (h->n < k) {
        size_t i = h->n++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!worse(d, r, h->d[p], h->r[p])) break;
            h->d[i] = h->d[p];
            h->r[i] = h->r[p];
            i = p;
        }
        h->d[i] = d;
        h->r[i] = r;
    } else {
        h->d[0] = d;
        h->r[0] = r;
        heap_sift_down(h, 0);
    }
}

/* Would (d, row) enter a heap of capacity k? */
static inline bool heap_wants(const heap *h, size_t k, float d, uint64_t row)
{
    return h->n < k || worse(h->d[0], h->r[0], d, row);
}

typedef struct search_ctx {
    const dp_index *ix;
    const dp_search_params *p;
    const dp_dist_ops_t *ops;
    int metric;
    size_t k;      /* heap capacity: min(k, live) */
    float max_key; /* max_distance in the ranking key's units, per query below */
} search_ctx;

/* Everything but the distance: liveness, the excluded id, the filter. */
static inline bool admit(const search_ctx *c, const dpx_seg *s, size_t local, size_t q)
{
    const dp_index *ix = c->ix;
    if (dpx_dead(ix, s->row0 + local)) return false;
    uint64_t id = s->ids[local];
    if (c->p->exclude_ids && c->p->exclude_ids[q] == id) return false;
    if (c->p->filter && !c->p->filter(id, c->p->filter_user_data)) return false;
    return true;
}

static void kernel(const search_ctx *c, const float *q, float qinv, const float *x, size_t n,
                   size_t dim, float *out)
{
    switch (c->metric) {
    case DP_METRIC_L2:
        c->ops->l2sq(q, x, n, dim, out);
        break;
    case DP_METRIC_L1:
        c->ops->l1(q, x, n, dim, out);
        break;
    case DP_METRIC_IP:
        c->ops->dot(q, x, n, dim, out);
        c->ops->affine(out, NULL, -1.0f, 0.0f, n);
        break;
    default:
        c->ops->dot(q, x, n, dim, out);
        c->ops->affine(out, NULL, -qinv, 1.0f, n);
        break;
    }
}

/* Offer keys[0..m) of rows row0.. to one query's heap. Rows arrive in
 * ascending order for each heap, so an equal key never beats the root and a
 * strict compare against the current k-th key is exact. Almost every key is
 * above it: the ISA kernel's first_below skips those 8 or 16 at a time. */
static inline void select_block(const search_ctx *c, heap *h, const float *keys, size_t m,
                                const dpx_seg *s, size_t local0, size_t q, float lim)
{
    const size_t k = c->k;
    /* Candidates must be < thr and <= lim: fold lim into one threshold. */
    const float cap = lim < INFINITY ? nextafterf(lim, INFINITY) : INFINITY;
    float thr = h->n < k ? cap : fminf(h->d[0], cap);
    for (size_t i = c->ops->first_below(keys, m, thr); i < m;
         i = i + 1 + c->ops->first_below(keys + i + 1, m - i - 1, thr)) {
        if (!admit(c, s, local0 + i, q)) continue;
        heap_push(h, k, keys[i], s->row0 + local0 + i);
        if (h->n == k) thr = fminf(h->d[0], cap);
    }
}

typedef struct task {
    const dpx_seg *s;
    size_t start, n;
} task;

static int make_tasks(const dp_index *ix, size_t block, task **out, size_t *nt)
{
    size_t n = 0;
    for (size_t g = 0; g < ix->n_seg; g++)
        n += (ix->segs[g].n + block - 1) / block;
    task *t = malloc((n ? n : 1) * sizeof *t);
    if (!t) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    n = 0;
    for (size_t g = 0; g < ix->n_seg; g++)
        for (size_t i = 0; i < ix->segs[g].n; i += block)
            t[n++] = (task){&ix->segs[g], i, ix->segs[g].n - i < block ? ix->segs[g].n - i : block};
    *out = t;
    *nt = n;
    return 0;
}

static int threads_for(const dp_search_params *p, size_t work_rows)
{
    int t = p->threads > 0 ? p->threads : omp_get_max_threads();
    if (t < 1) t = 1;
    if (work_rows < 2 * SCAN_BLOCK) t = 1; /* not worth waking a team */
    return t;
}

/* Sorted results of one query from a set of heaps into ids/dist rows. */
static int emit(const dp_index *ix, heap *hs, size_t nh, size_t k_out, float add, bool clamp,
                int64_t *ids, float *dist)
{
    size_t total = 0;
    for (size_t i = 0; i < nh; i++)
        total += hs[i].n;
    heap all = {malloc((total ? total : 1) * sizeof(float)),
                malloc((total ? total : 1) * sizeof(uint64_t)), 0};
    if (!all.d || !all.r) {
        free(all.d);
        free(all.r);
        return dp_set_error(DP_ERR_NOMEM, "out of memory");
    }
    size_t keep = k_out < total ? k_out : total;
    for (size_t i = 0; i < nh; i++)
        for (size_t j = 0; j < hs[i].n; j++)
            if (heap_wants(&all, keep, hs[i].d[j], hs[i].r[j]))
                heap_push(&all, keep, hs[i].d[j], hs[i].r[j]);
    /* Pop the worst to the back: ascending order in place. */
    size_t n = all.n;
    for (size_t i = n; i-- > 0;) {
        float d = all.d[0];
        uint64_t r = all.r[0];
        all.d[0] = all.d[all.n - 1];
        all.r[0] = all.r[all.n - 1];
        all.n--;
        heap_sift_down(&all, 0);
        float v = d + add;
        if (clamp && v < 0) v = 0;
        ids[i] = (int64_t)dpx_row_id(ix, (size_t)r);
        if (dist) dist[i] = v;
    }
    for (size_t i = n; i < k_out; i++) {
        ids[i] = -1;
        if (dist) dist[i] = INFINITY;
    }
    free(all.d);
    free(all.r);
    return 0;
}

static float inv_norm(const float *q, size_t dim)
{
    double s = 0;
    for (size_t j = 0; j < dim; j++)
        s += (double)q[j] * q[j];
    return s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
}

/* Scan path for queries [q0, q0 + nq). */
static int search_scan(const search_ctx *c, const float *queries, size_t q0, size_t nq,
                       int64_t *ids_out, float *dist_out)
{
    const dp_index *ix = c->ix;
    const size_t dim = ix->dim, k = c->k;
    int nt = threads_for(c->p, ix->rows);
    task *tasks = NULL;
    size_t ntasks;
    int rc = make_tasks(ix, SCAN_BLOCK, &tasks, &ntasks);
    if (rc) return rc;
    size_t nheap = (size_t)nt * nq;
    heap *heaps = calloc(nheap, sizeof *heaps);
    float *hd = malloc((nheap * k > 0 ? nheap * k : 1) * sizeof(float));
    uint64_t *hr = malloc((nheap * k > 0 ? nheap * k : 1) * sizeof(uint64_t));
    float *qinv = malloc(nq * sizeof(float));
    if (!heaps || !hd || !hr || !qinv) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory for %zu result heaps", nheap);
        goto done;
    }
    for (size_t i = 0; i < nheap; i++)
        heaps[i] = (heap){hd + i * k, hr + i * k, 0};
    for (size_t q = 0; q < nq; q++)
        qinv[q] = inv_norm(queries + (q0 + q) * dim, dim);
    const float maxd = c->p->max_distance;

#pragma omp parallel num_threads(nt)
    {
        float buf[SCAN_SUB];
        heap *mine = heaps + (size_t)omp_get_thread_num() * nq;
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < ntasks; t++) {
            const dpx_seg *s = tasks[t].s;
            for (size_t b = tasks[t].start; b < tasks[t].start + tasks[t].n; b += SCAN_SUB) {
                size_t end = tasks[t].start + tasks[t].n;
                size_t m = end - b < SCAN_SUB ? end - b : SCAN_SUB;
                const float *x = s->vec + b * dim;
                for (size_t q = 0; q < nq; q++) {
                    kernel(c, queries + (q0 + q) * dim, qinv[q], x, m, dim, buf);
                    select_block(c, &mine[q], buf, m, s, b, q0 + q, maxd);
                }
            }
        }
    }
    size_t kout = c->p->k;
    heap *tmp = malloc((size_t)nt * sizeof *tmp);
    if (!tmp) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t q = 0; q < nq && !rc; q++) {
        for (int t = 0; t < nt; t++)
            tmp[t] = heaps[(size_t)t * nq + q];
        rc = emit(ix, tmp, (size_t)nt, kout, 0, false, ids_out + (q0 + q) * kout,
                  dist_out ? dist_out + (q0 + q) * kout : NULL);
    }
    free(tmp);
done:
    free(tasks);
    free(heaps);
    free(hd);
    free(hr);
    free(qinv);
    return rc;
}

/* Offer one query's row of a GEMM tile: dot products v[0..m) of rows
 * row0.., keys dp_key(v, add, alpha, beta) filtered without being written
 * (first_key_below), as in select_block. */
static inline void select_tile(const search_ctx *c, heap *h, const float *v, const float *add,
                               float alpha, float beta, size_t m, const dpx_seg *s, size_t local0,
                               size_t q, float lim)
{
    const size_t k = c->k;
    const float cap = lim < INFINITY ? nextafterf(lim, INFINITY) : INFINITY;
    float thr = h->n < k ? cap : fminf(h->d[0], cap);
    size_t i = c->ops->first_key_below(v, add, alpha, beta, m, thr);
    while (i < m) {
        if (admit(c, s, local0 + i, q)) {
            heap_push(h, k, dp_key(v[i], add ? add[i] : 0.0f, alpha, beta), s->row0 + local0 + i);
            if (h->n == k) thr = fminf(h->d[0], cap);
        }
        i++;
        i += c->ops->first_key_below(v + i, add ? add + i : NULL, alpha, beta, m - i, thr);
    }
}

/* Rows per GEMM tile for nq queries: the tile of dot products (nq x rows)
 * stays around L2 size, so the selection that reads it right after the
 * GEMM finds it in cache. */
static size_t tile_rows(size_t nq)
{
    size_t r = GEMM_TILE_FLOATS / nq;
    r = r < 64 ? 64 : r > 4096 ? 4096 : r;
    return r & ~(size_t)7;
}

/* GEMM path for queries [q0, q0 + nq): L2, IP, cosine. Threads take tiles
 * of rows in turn; each runs its own single-threaded GEMM on the tile and
 * selects from it while it is in cache, into per-thread heaps merged at the
 * end (the scan path's scheme, with a GEMM for the kernel). */
static int search_gemm(const search_ctx *c, const float *queries, size_t q0, size_t nq,
                       int64_t *ids_out, float *dist_out)
{
    const dp_index *ix = c->ix;
    const size_t dim = ix->dim, k = c->k, rows = tile_rows(nq);
    task *tasks = NULL;
    size_t ntasks;
    int rc = make_tasks(ix, rows, &tasks, &ntasks);
    if (rc) return rc;
    int nt = threads_for(c->p, ntasks * SCAN_BLOCK / 2); /* one thread below 4 tiles */
    size_t nheap = (size_t)nt * nq;
    heap *heaps = calloc(nheap, sizeof *heaps);
    float *hd = malloc(nheap * k * sizeof(float));
    uint64_t *hr = malloc(nheap * k * sizeof(uint64_t));
    float *qn = malloc(nq * sizeof(float)), *qinv = malloc(nq * sizeof(float));
    /* Per thread: the tile, then the rows' squared norms. */
    const size_t per_thread = nq * rows + rows + 16;
    float *work = malloc((size_t)nt * per_thread * sizeof(float));
    heap *tmp = malloc((size_t)nt * sizeof *tmp);
    if (!heaps || !hd || !hr || !qn || !qinv || !work || !tmp) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory for a GEMM batch of %zu queries", nq);
        goto done;
    }
    const float *Q = queries + q0 * dim;
    for (size_t i = 0; i < nheap; i++)
        heaps[i] = (heap){hd + i * k, hr + i * k, 0};
    for (size_t i = 0; i < nq; i++) {
        qinv[i] = inv_norm(Q + i * dim, dim);
        qn[i] = qinv[i] > 0 ? 1.0f / (qinv[i] * qinv[i]) : 0;
    }
    const float maxd = c->p->max_distance;
    const int metric = c->metric;
    int failed = 0;
#pragma omp parallel num_threads(nt)
    {
        /* This thread's GEMMs run on it alone (the setting is per thread
         * and ends with the region). */
        omp_set_num_threads(1);
        const int me = omp_get_thread_num();
        float *dots = work + (size_t)me * per_thread, *xn = dots + nq * rows;
        heap *mine = heaps + (size_t)me * nq;
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < ntasks; t++) {
            const dpx_seg *s = tasks[t].s;
            const size_t b = tasks[t].start, m = tasks[t].n;
            const float *x = s->vec + b * dim;
            if (__atomic_load_n(&failed, __ATOMIC_RELAXED) ||
                dp_sgemm_nt(nq, m, dim, Q, dim, x, dim, dots, m)) {
                __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
                continue;
            }
            if (metric == DP_METRIC_L2) c->ops->sqnorm(x, m, dim, xn);
            for (size_t q = 0; q < nq; q++) {
                const float *dq = dots + q * m;
                /* Key |x|^2 - 2 x.q (L2), -x.q (IP), 1 - x.q/|q| (cosine). */
                if (metric == DP_METRIC_L2)
                    select_tile(c, &mine[q], dq, xn, -2.0f, 0.0f, m, s, b, q0 + q, maxd - qn[q]);
                else if (metric == DP_METRIC_IP)
                    select_tile(c, &mine[q], dq, NULL, -1.0f, 0.0f, m, s, b, q0 + q, maxd);
                else
                    select_tile(c, &mine[q], dq, NULL, -qinv[q], 1.0f, m, s, b, q0 + q, maxd);
            }
        }
    }
    if (failed) {
        rc = dp_set_error(DP_ERR_BACKEND, "oneDNN sgemm failed on a %zu x %zu x %zu tile", nq, rows,
                          dim);
        goto done;
    }
    size_t kout = c->p->k;
    for (size_t q = 0; q < nq && !rc; q++) {
        for (int t = 0; t < nt; t++)
            tmp[t] = heaps[(size_t)t * nq + q];
        rc = emit(ix, tmp, (size_t)nt, kout, metric == DP_METRIC_L2 ? qn[q] : 0,
                  metric == DP_METRIC_L2, ids_out + (q0 + q) * kout,
                  dist_out ? dist_out + (q0 + q) * kout : NULL);
    }
done:
    free(tasks);
    free(heaps);
    free(hd);
    free(hr);
    free(qn);
    free(qinv);
    free(work);
    free(tmp);
    return rc;
}

static int check_queries(const dp_index *ix, const float *queries, size_t nq, int metric)
{
    for (size_t q = 0; q < nq; q++)
        for (size_t j = 0; j < ix->dim; j++)
            if (!isfinite(queries[q * ix->dim + j]))
                return dp_set_error(DP_ERR_INVALID, "query %zu: value %zu is not finite", q, j);
    if (metric == DP_METRIC_COSINE && !ix->normalized)
        return dp_set_error(DP_ERR_INVALID,
                            "%s: the cosine metric needs an index of normalised vectors", ix->path);
    return 0;
}

static int resolve(const dp_index *ix, const dp_search_params *p, int *metric)
{
    int m = p->metric ? p->metric : ix->metric;
    if (!dp_metric_name(m)) return dp_set_error(DP_ERR_INVALID, "unknown metric %d", p->metric);
    *metric = m;
    return 0;
}

int dp_index_search(const dp_index *ix, const float *queries, size_t nq, const dp_search_params *p,
                    int64_t *ids_out, float *dist_out)
{
    dp_search_params d = dp_search_default_params();
    if (!p) p = &d;
    if (nq == 0 || p->k == 0) return 0;
    if (!queries || !ids_out) return dp_set_error(DP_ERR_INVALID, "dp_index_search: NULL buffer");
    int metric = 0, rc = resolve(ix, p, &metric);
    if (!rc) rc = check_queries(ix, queries, nq, metric);
    if (rc) return dp_prefix_error(rc, "dp_index_search");
    search_ctx c = {.ix = ix, .p = p, .ops = dp_dist_ops(), .metric = metric};
    c.k = p->k < ix->live ? p->k : ix->live;
    if (c.k == 0) {
        for (size_t i = 0; i < nq * p->k; i++) {
            ids_out[i] = -1;
            if (dist_out) dist_out[i] = INFINITY;
        }
        return 0;
    }
    bool gemm = p->gemm_min_queries && nq >= p->gemm_min_queries && metric != DP_METRIC_L1;
    int nt = p->threads > 0 ? p->threads : omp_get_max_threads();
    size_t per_q = c.k * (size_t)(nt > 0 ? nt : 1);
    size_t chunk = gemm ? GEMM_QUERIES : 64;
    if (chunk * per_q > MAX_HEAP_ITEMS) chunk = MAX_HEAP_ITEMS / per_q ? MAX_HEAP_ITEMS / per_q : 1;
    /* Even chunks: 1,100 queries run as 2 x 550, not 1,024 + 76. */
    size_t passes = (nq + chunk - 1) / chunk;
    chunk = (nq + passes - 1) / passes;
    for (size_t q0 = 0; q0 < nq && !rc; q0 += chunk) {
        size_t n = nq - q0 < chunk ? nq - q0 : chunk;
        rc = gemm ? search_gemm(&c, queries, q0, n, ids_out, dist_out)
                  : search_scan(&c, queries, q0, n, ids_out, dist_out);
    }
    return rc ? dp_prefix_error(rc, "dp_index_search") : 0;
}

/* ---- range search --------------------------------------------------------- */

typedef struct hit {
    float d;
    uint64_t r;
} hit;

typedef struct hits {
    hit *h;
    size_t n, cap;
} hits;

static int cmp_hit(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

void dp_range_result_free(dp_range_result *r)
{
    if (!r) return;
    DP_FREE(r->lims);
    DP_FREE(r->ids);
    DP_FREE(r->dist);
    r->nq = 0;
}

int dp_index_range_search(const dp_index *ix, const float *queries, size_t nq, float radius,
                          const dp_search_params *p, size_t max_results, dp_range_result *out)
{
    memset(out, 0, sizeof *out);
    dp_search_params d = dp_search_default_params();
    if (!p) p = &d;
    int metric = 0, rc = resolve(ix, p, &metric);
    if (!rc) rc = check_queries(ix, queries, nq, metric);
    if (rc) return dp_prefix_error(rc, "dp_index_range_search");
    search_ctx c = {.ix = ix, .p = p, .ops = dp_dist_ops(), .metric = metric};
    const size_t dim = ix->dim;
    hits *hs = calloc(nq ? nq : 1, sizeof *hs);
    out->lims = calloc(nq + 1, sizeof(size_t));
    if (!hs || !out->lims) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_index_range_search: out of memory");
        goto done;
    }
    size_t total = 0;
    int failed = 0;
    int nt = threads_for(p, ix->rows * (nq ? nq : 1));
    float lim = radius < p->max_distance ? radius : p->max_distance;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (size_t q = 0; q < nq; q++) {
        float buf[SCAN_SUB];
        const float *qv = queries + q * dim;
        float qinv = inv_norm(qv, dim);
        hits *h = &hs[q];
        for (size_t g = 0; g < ix->n_seg && !__atomic_load_n(&failed, __ATOMIC_RELAXED); g++) {
            const dpx_seg *s = &ix->segs[g];
            for (size_t b = 0; b < s->n; b += SCAN_SUB) {
                size_t m = s->n - b < SCAN_SUB ? s->n - b : SCAN_SUB;
                kernel(&c, qv, qinv, s->vec + b * dim, m, dim, buf);
                for (size_t i = 0; i < m; i++) {
                    if (!(buf[i] <= lim) || !admit(&c, s, b + i, q)) continue;
                    size_t t = __atomic_add_fetch(&total, 1, __ATOMIC_RELAXED);
                    if ((max_results && t > max_results) || h->n == SIZE_MAX / 16) {
                        __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
                        break;
                    }
                    if (h->n == h->cap) {
                        size_t cap = h->cap ? h->cap * 2 : 64;
                        hit *nh = realloc(h->h, cap * sizeof *nh);
                        if (!nh) {
                            __atomic_store_n(&failed, 2, __ATOMIC_RELAXED);
                            break;
                        }
                        h->h = nh;
                        h->cap = cap;
                    }
                    h->h[h->n++] = (hit){buf[i], s->row0 + b + i};
                }
            }
        }
    }
    if (failed) {
        rc = failed == 1 ? dp_set_error(DP_ERR_NOMEM,
                                        "dp_index_range_search: more than %zu results", max_results)
                         : dp_set_error(DP_ERR_NOMEM, "dp_index_range_search: out of memory");
        goto done;
    }
    total = 0;
    for (size_t q = 0; q < nq; q++)
        total += hs[q].n;
    out->ids = malloc((total ? total : 1) * sizeof(int64_t));
    out->dist = malloc((total ? total : 1) * sizeof(float));
    if (!out->ids || !out->dist) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_index_range_search: out of memory");
        goto done;
    }
    size_t pos = 0;
    for (size_t q = 0; q < nq; q++) {
        out->lims[q] = pos;
        if (hs[q].n) qsort(hs[q].h, hs[q].n, sizeof(hit), cmp_hit);
        for (size_t i = 0; i < hs[q].n; i++, pos++) {
            out->ids[pos] = (int64_t)dpx_row_id(ix, (size_t)hs[q].h[i].r);
            out->dist[pos] = hs[q].h[i].d;
        }
    }
    out->lims[nq] = pos;
    out->nq = nq;
done:
    if (hs)
        for (size_t q = 0; q < nq; q++)
            free(hs[q].h);
    free(hs);
    if (rc) dp_range_result_free(out);
    return rc;
}
