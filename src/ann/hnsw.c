/* HNSW: the graph search, the deterministic batch build and the hnsw.*
 * sections. Layout and invariants are in ann_internal.h.
 *
 * Building in batches: a batch of new nodes searches the graph as it stood
 * before the batch (threads share nothing but read-only memory), each node
 * writing only its own link lists, which nobody can reach yet. The reverse
 * links are then grouped by (level, target) and sorted, and each group is
 * applied by one thread in batch order, so the result is the same whatever
 * the thread count. Batches grow with the graph (1/64 of it, at most 1024
 * nodes), so a node misses at most ~1.5% of the graph as a direct neighbour
 * candidate, and later nodes' reverse links make up for it. */
#include "ann_internal.h"

#include "util/util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define WALK_ISA 0
#include "hnsw_walk.h"

#define BATCH_DIV 64
#define BATCH_MAX 1024

static const char HNSW_MAGIC[8] = {'D', 'P', 'H', 'N', 'S', 'W', 0, 0};

const hnsw_kern *hnsw_kern_base(void)
{
    static const hnsw_kern k = {"portable", w_any_dist, w_any_greedy, w_any_layer};
    return &k;
}

/* The walk follows the distance kernels' choice (DP_ISA=scalar caps both). */
static const hnsw_kern *kern_best(void)
{
    const hnsw_kern *k = strcmp(dp_dist_ops()->isa, "scalar") ? hnsw_kern_avx2() : NULL;
    return k ? k : hnsw_kern_base();
}

void dist_fn_init(dist_fn *f, int metric, uint32_t dim)
{
    f->ops = dp_dist_ops();
    f->dim = dim;
    f->bias = 0;
    switch (metric) {
    case DP_METRIC_IP:
        f->op = 1;
        break;
    case DP_METRIC_COSINE:
        f->op = 1;
        f->bias = 1;
        break;
    case DP_METRIC_L1:
        f->op = 2;
        break;
    default:
        f->op = 0;
        break;
    }
}

static size_t code_bytes_of(int storage, uint32_t dim)
{
    size_t b = storage == DP_ANN_STORAGE_F16    ? 2 * (size_t)dim
               : storage == DP_ANN_STORAGE_INT8 ? (size_t)dim
                                                : 4 * (size_t)dim;
    return (b + 3) & ~(size_t)3;
}

void hnsw_init(hnsw *h, uint32_t dim, int metric, uint32_t M, uint32_t efc, uint64_t seed,
               int storage)
{
    memset(h, 0, sizeof *h);
    h->dim = dim;
    h->metric = metric;
    h->storage = storage;
    h->M = M;
    h->M0 = 2 * M;
    h->efc = efc;
    h->seed = seed;
    h->code_bytes = code_bytes_of(storage, dim);
    h->rec_bytes = h->code_bytes + (size_t)4 * (1 + h->M0);
    h->max_level = -1;
    h->owned = true;
    dist_fn_init(&h->df, metric, dim);
    h->kern = kern_best();
}

/* Node records live in an anonymous mapping with huge pages asked for
 * (2 MiB aligned, MADV_HUGEPAGE) once they reach 2 MiB: a walk touches
 * records all over the graph and 4 KiB pages cost it a TLB miss on nearly
 * every hop. *map gets the mapping's length, 0 for a plain malloc. */
#define HUGE_PAGE ((size_t)2 << 20)
static uint8_t *nodes_alloc(size_t bytes, size_t *map, bool always_map)
{
    *map = 0;
    if (bytes >= HUGE_PAGE || (always_map && bytes)) {
        size_t len = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
#ifdef MADV_HUGEPAGE
            (void)madvise(m, len, MADV_HUGEPAGE); /* advice only: 4 KiB pages still work */
#endif
            *map = len;
            return m;
        }
    }
    return malloc(bytes ? bytes : 1);
}

static void nodes_drop(uint8_t *nodes, size_t map)
{
    if (map)
        munmap(nodes, map);
    else
        free(nodes);
}

/* Release h->nodes if h owns it (heap or private mapping). */
static void nodes_release(hnsw *h)
{
    if (h->nodes_map)
        munmap(h->nodes, h->nodes_map);
    else if (h->owned)
        free(h->nodes);
    h->nodes = NULL;
    h->nodes_map = 0;
}

void hnsw_free(hnsw *h)
{
    nodes_release(h);
    if (h->owned) {
        free(h->ids);
        free(h->levels);
        free(h->upper);
    }
    free(h->sq_own);
    free(h->upper_off);
    memset(h, 0, sizeof *h);
}

size_t hnsw_bytes(const hnsw *h)
{
    /* everything a search holds: records, ids, levels, upper_off, upper */
    return sizeof(hnsw_meta) + h->n * (h->rec_bytes + (h->ids ? 8 : 0) + 1 + 4) +
           h->upper_words * 4 + (h->storage == DP_ANN_STORAGE_INT8 ? (size_t)h->dim * 8 : 0);
}

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return w_lt(*x, *y) ? -1 : w_lt(*y, *x);
}

/* ---- scratch --------------------------------------------------------------- */

int hnsw_scratch_init(hnsw_scratch *s, size_t n, size_t ef_cap)
{
    memset(s, 0, sizeof *s);
    s->vis.mark = calloc(n ? n : 1, sizeof *s->vis.mark);
    s->vis.n = n;
    s->vis.gen = 1;
    /* the candidate queue can hold every pushed neighbour of every expanded node */
    s->cap = ef_cap;
    s->top = malloc((ef_cap + 1) * sizeof(cand));
    s->cq = malloc((ef_cap + 1) * sizeof(cand));
    s->tmp = malloc((ef_cap + 1) * sizeof(cand));
    if (!s->vis.mark || !s->top || !s->cq || !s->tmp) {
        hnsw_scratch_free(s);
        return dp_set_error(DP_ERR_NOMEM, "out of memory for search scratch (%zu nodes)", n);
    }
    return 0;
}

void hnsw_scratch_free(hnsw_scratch *s)
{
    free(s->vis.mark);
    free(s->top);
    free(s->cq);
    free(s->tmp);
    free(s->qbuf);
    memset(s, 0, sizeof *s);
}

static int scratch_grow(hnsw_scratch *s, size_t need)
{
    if (need <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < need)
        cap *= 2;
    cand *a = realloc(s->top, (cap + 1) * sizeof(cand));
    if (a) s->top = a;
    cand *b = realloc(s->cq, (cap + 1) * sizeof(cand));
    if (b) s->cq = b;
    cand *c = realloc(s->tmp, (cap + 1) * sizeof(cand));
    if (c) s->tmp = c;
    if (!a || !b || !c) return dp_set_error(DP_ERR_NOMEM, "out of memory for search scratch");
    s->cap = cap;
    return 0;
}

/* qbuf holds three dim-float areas: the query's prepared form, a decoded
 * node, and that node's prepared form (the build compares stored nodes). */
static int scratch_vec(hnsw_scratch *s, uint32_t dim)
{
    if (s->qbuf && s->qdim >= dim) return 0;
    float *b = realloc(s->qbuf, (size_t)3 * (dim ? dim : 1) * sizeof *b);
    if (!b) return dp_set_error(DP_ERR_NOMEM, "out of memory for search scratch");
    s->qbuf = b;
    s->dec = b + dim;
    s->qdim = dim;
    return 0;
}

static void prepare_into(const hnsw *h, const float *q, float *buf, hnsw_q *out)
{
    out->p = q;
    out->s = NULL;
    out->c = 0;
    if (h->storage != DP_ANN_STORAGE_INT8) return;
    const float *mn = h->sq_min, *st = h->sq_step;
    out->s = st;
    out->p = buf;
    if (h->df.op == 1) {
        double c = 0;
        for (uint32_t j = 0; j < h->dim; j++) {
            buf[j] = q[j] * st[j];
            c += (double)q[j] * mn[j];
        }
        out->c = (float)c;
    } else {
        for (uint32_t j = 0; j < h->dim; j++)
            buf[j] = q[j] - mn[j];
    }
}

int hnsw_prepare(const hnsw *h, const float *q, hnsw_scratch *s, hnsw_q *out)
{
    if (scratch_vec(s, h->dim)) return DP_ERR_NOMEM;
    prepare_into(h, q, s->qbuf, out);
    return 0;
}

const float *hnsw_decode(const hnsw *h, size_t i, float *buf)
{
    const uint8_t *c = hnsw_code(h, i);
    switch (h->storage) {
    case DP_ANN_STORAGE_F16:
        for (uint32_t j = 0; j < h->dim; j++) {
            uint16_t v;
            memcpy(&v, c + 2 * j, 2);
            buf[j] = dp_f16_to_f32(v);
        }
        return buf;
    case DP_ANN_STORAGE_INT8:
        for (uint32_t j = 0; j < h->dim; j++)
            buf[j] = h->sq_min[j] + h->sq_step[j] * (float)c[j];
        return buf;
    default:
        return (const float *)c;
    }
}

static void encode(const hnsw *h, const float *x, uint8_t *code)
{
    memset(code, 0, h->code_bytes);
    if (h->storage == DP_ANN_STORAGE_F16) {
        dp_f32_to_f16(x, h->dim, (uint16_t *)code);
    } else if (h->storage == DP_ANN_STORAGE_INT8) {
        for (uint32_t j = 0; j < h->dim; j++) {
            float v = (x[j] - h->sq_min[j]) / h->sq_step[j];
            /* NaN and values outside the trained range clamp */
            code[j] = v >= 255.0f ? 255 : v > 0.0f ? (uint8_t)(v + 0.5f) : 0;
        }
    } else {
        memcpy(code, x, (size_t)h->dim * 4);
    }
}

/* Per-dimension range of the first rows inserted: 255 steps from min to
 * max. Later rows outside it clamp (their rerank is exact all the same). */
static int train_sq(hnsw *h, const float *const *vecs, size_t count)
{
    uint32_t d = h->dim;
    float *q = malloc((size_t)2 * d * sizeof *q);
    if (!q) return dp_set_error(DP_ERR_NOMEM, "HNSW: out of memory");
    float *mn = q, *st = q + d;
    for (uint32_t j = 0; j < d; j++) {
        float lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < count; i++) {
            float v = vecs[i][j];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        if (!(lo <= hi) || !isfinite(lo) || !isfinite(hi)) lo = hi = 0;
        mn[j] = lo;
        st[j] = hi > lo ? (hi - lo) / 255.0f : 1.0f;
        if (!(st[j] > 0) || !isfinite(st[j])) st[j] = 1.0f;
    }
    free(h->sq_own);
    h->sq_own = q;
    h->sq_min = mn;
    h->sq_step = st;
    return 0;
}

/* Pop the max-heap s->top into out, nearest first. */
static void drain_sorted(cand *top, size_t nt, cand *out)
{
    memcpy(out, top, nt * sizeof *out);
    qsort(out, nt, sizeof *out, cand_cmp);
}

size_t hnsw_search(const hnsw *h, const float *q, size_t ef, hnsw_scratch *s, hnsw_accept_fn accept,
                   void *ctx, cand *out)
{
    if (h->max_level < 0 || !h->n) return 0;
    hnsw_q pq;
    if (scratch_grow(s, ef + h->M0 + 1) || hnsw_prepare(h, q, s, &pq)) return 0;
    const hnsw_kern *k = h->kern;
    cand cur = {k->dist(h, &pq, h->entry), h->entry};
    cur = k->greedy(h, &pq, cur, h->max_level, 0);
    size_t nt = k->layer(h, &pq, cur, 0, ef, s, accept, ctx);
    drain_sorted(s->top, nt, out);
    return nt;
}

/* ---- build ---------------------------------------------------------------- */

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int draw_level(const hnsw *h, uint64_t node)
{
    uint64_t r = splitmix(h->seed ^ splitmix(node + 1));
    double u = ((double)(r >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double l = -log(u) / log((double)h->M);
    return l >= HNSW_MAX_LEVEL ? HNSW_MAX_LEVEL : (int)l;
}

/* Keep a candidate only if it is nearer to the new node than to every
 * neighbour already kept: links spread over directions instead of piling
 * into the nearest cluster (the HNSW paper's heuristic). c is sorted. */
static uint32_t select_links(const hnsw *h, const cand *c, size_t nc, uint32_t mcap, uint32_t *out,
                             hnsw_scratch *s)
{
    uint32_t r = 0;
    float *dec = s->dec, *pbuf = s->dec + h->dim;
    for (size_t i = 0; i < nc && r < mcap; i++) {
        bool good = true;
        if (r) {
            hnsw_q pv;
            prepare_into(h, hnsw_decode(h, c[i].id, dec), pbuf, &pv);
            for (uint32_t j = 0; j < r && good; j++)
                if (h->kern->dist(h, &pv, out[j]) < c[i].d) good = false;
        }
        if (good) out[r++] = c[i].id;
    }
    return r;
}

/* Phase 1 for node u: find and write its own links on every level it shares
 * with the graph as of the batch start (entry ep, top level ml). */
static int link_new(const hnsw *h, uint32_t u, const float *x, uint32_t ep, int ml, hnsw_scratch *s)
{
    hnsw_q q;
    if (scratch_grow(s, h->efc + h->M0 + 1) || hnsw_prepare(h, x, s, &q)) return DP_ERR_NOMEM;
    const hnsw_kern *k = h->kern;
    int lu = h->levels[u];
    cand cur = {k->dist(h, &q, ep), ep};
    cur = k->greedy(h, &q, cur, ml, lu);
    for (int l = lu < ml ? lu : ml; l >= 0; l--) {
        size_t nt = k->layer(h, &q, cur, l, h->efc, s, NULL, NULL);
        drain_sorted(s->top, nt, s->tmp);
        uint32_t *lk = hnsw_links(h, u, l);
        lk[0] = select_links(h, s->tmp, nt, h->M, lk + 1, s);
        if (nt) cur = s->tmp[0];
    }
    return 0;
}

typedef struct rlink {
    uint32_t level, target, pos; /* pos: the new node's place in the batch */
    uint32_t node;
} rlink;

static int rlink_cmp(const void *a, const void *b)
{
    const rlink *x = a, *y = b;
    if (x->level != y->level) return x->level < y->level ? -1 : 1;
    if (x->target != y->target) return x->target < y->target ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Phase 2 for one (level, target) group: add the new nodes to the target's
 * list, re-selecting with the heuristic when it overflows. */
static int add_reverse(const hnsw *h, const rlink *g, size_t ng, hnsw_scratch *s)
{
    uint32_t v = g[0].target;
    int l = (int)g[0].level;
    uint32_t cap = l ? h->M : h->M0;
    uint32_t *lk = hnsw_links(h, v, l);
    uint32_t cnt = lk[0] <= cap ? lk[0] : cap;
    if (cnt + ng <= cap) {
        for (size_t i = 0; i < ng; i++)
            lk[1 + cnt + i] = g[i].node;
        lk[0] = cnt + (uint32_t)ng;
        return 0;
    }
    if (scratch_grow(s, cnt + ng + 1) || scratch_vec(s, h->dim)) return DP_ERR_NOMEM;
    /* v's own prepared form lives in qbuf (no query is running here) */
    hnsw_q pv;
    prepare_into(h, hnsw_decode(h, v, s->dec), s->qbuf, &pv);
    size_t nc = 0;
    for (uint32_t i = 0; i < cnt; i++)
        s->tmp[nc++] = (cand){h->kern->dist(h, &pv, lk[1 + i]), lk[1 + i]};
    for (size_t i = 0; i < ng; i++)
        s->tmp[nc++] = (cand){h->kern->dist(h, &pv, g[i].node), g[i].node};
    qsort(s->tmp, nc, sizeof(cand), cand_cmp);
    uint32_t out[HNSW_MAX_M * 2];
    uint32_t r = select_links(h, s->tmp, nc, cap, out, s);
    memcpy(lk + 1, out, r * sizeof *out);
    lk[0] = r;
    return 0;
}

/* Make every array a private heap copy with room for `more` nodes. */
static int make_room(hnsw *h, size_t more)
{
    size_t need;
    if (!dp_add_ok(h->n, more, &need) || need > UINT32_MAX - 1)
        return dp_set_error(DP_ERR_NOMEM, "HNSW: too many nodes");
    if (h->owned && need <= h->cap) return 0;
    size_t cap = h->owned && h->cap ? h->cap : 0;
    if (cap < need) cap = need > 2 * cap ? need : 2 * cap;
    size_t nb;
    if (!dp_mul_ok(cap, h->rec_bytes, &nb)) return dp_set_error(DP_ERR_NOMEM, "HNSW: too large");
    size_t map;
    uint8_t *nodes = nodes_alloc(nb, &map, false);
    uint64_t *ids = h->ids ? malloc(cap * sizeof *ids + 1) : NULL;
    uint32_t *off = malloc(cap * sizeof *off + 1);
    uint8_t *lev = malloc(cap + 1);
    if (!nodes || (h->ids && !ids) || !off || !lev) {
        nodes_drop(nodes, map);
        free(ids);
        free(off);
        free(lev);
        return dp_set_error(DP_ERR_NOMEM, "HNSW: out of memory for %zu nodes", cap);
    }
    if (h->n) {
        memcpy(nodes, h->nodes, h->n * h->rec_bytes);
        if (ids) memcpy(ids, h->ids, h->n * sizeof *ids);
        memcpy(off, h->upper_off, h->n * sizeof *off);
        memcpy(lev, h->levels, h->n);
    }
    uint32_t *up = NULL;
    if (!h->owned) {
        up = malloc(h->upper_words * 4 + 4);
        if (!up) {
            nodes_drop(nodes, map);
            free(ids);
            free(off);
            free(lev);
            return dp_set_error(DP_ERR_NOMEM, "HNSW: out of memory");
        }
        if (h->upper_words) memcpy(up, h->upper, h->upper_words * 4);
        h->upper_cap = h->upper_words;
    }
    nodes_release(h);
    if (h->owned) {
        free(h->ids);
        free(h->levels);
    } else {
        h->upper = up;
    }
    free(h->upper_off);
    h->nodes = nodes;
    h->nodes_map = map;
    h->ids = ids;
    h->upper_off = off;
    h->levels = lev;
    h->cap = cap;
    h->owned = true;
    return 0;
}

int hnsw_insert(hnsw *h, const float *const *vecs, const uint64_t *ids, size_t count, int threads,
                dp_progress_fn progress, void *user_data)
{
    if (!count) return 0;
    int rc = make_room(h, count);
    if (rc) return rc;
    size_t n0 = h->n, words = h->upper_words;
    bool dense = !h->ids;
    for (size_t i = 0; dense && i < count; i++)
        dense = ids[i] == n0 + i;
    if (!h->ids && !dense) { /* the first id that is not its node's: keep them all */
        if (!(h->ids = malloc(h->cap * sizeof *h->ids + 1)))
            return dp_set_error(DP_ERR_NOMEM, "HNSW: out of memory for %zu ids", h->cap);
        for (size_t i = 0; i < n0; i++)
            h->ids[i] = i;
    }
    if (h->storage == DP_ANN_STORAGE_INT8 && !h->sq_min && (rc = train_sq(h, vecs, count)))
        return rc;
    for (size_t i = 0; i < count; i++) {
        size_t u = n0 + i;
        uint8_t *rec = h->nodes + u * h->rec_bytes;
        encode(h, vecs[i], rec);
        memset(rec + h->code_bytes, 0, h->rec_bytes - h->code_bytes);
        if (h->ids) h->ids[u] = ids[i];
        h->levels[u] = (uint8_t)draw_level(h, u);
        if (words / (h->M + 1) + h->levels[u] > UINT32_MAX)
            return dp_set_error(DP_ERR_NOMEM, "HNSW: too many upper-level links");
        h->upper_off[u] = (uint32_t)(words / (h->M + 1));
        words += (size_t)h->levels[u] * (h->M + 1);
    }
    if (words > h->upper_cap) {
        size_t cap = words > 2 * h->upper_cap ? words : 2 * h->upper_cap;
        uint32_t *up = realloc(h->upper, cap * 4 + 4);
        if (!up) return dp_set_error(DP_ERR_NOMEM, "HNSW: out of memory for upper levels");
        h->upper = up;
        h->upper_cap = cap;
    }
    memset(h->upper + h->upper_words, 0, (words - h->upper_words) * 4);
    h->upper_words = words;
    h->n = n0 + count;

    /* insertion order: a seeded shuffle, so sorted input does not put one
     * cluster in one batch */
    uint32_t *order = malloc(count * sizeof *order);
    int nthr = threads > 0 ? threads : omp_get_max_threads();
    if (nthr < 1) nthr = 1;
    hnsw_scratch *scr = calloc((size_t)nthr, sizeof *scr);
    size_t pcap = (size_t)BATCH_MAX * 2 * h->M;
    rlink *pairs = malloc(pcap * sizeof *pairs);
    size_t *gstart = malloc((pcap + 1) * sizeof *gstart);
    if (!order || !scr || !pairs || !gstart) {
        rc = dp_set_error(DP_ERR_NOMEM, "HNSW: out of memory");
        goto done;
    }
    for (int t = 0; t < nthr; t++)
        if ((rc = hnsw_scratch_init(&scr[t], h->n, h->efc + h->M0 + 1))) goto done;
    for (size_t i = 0; i < count; i++)
        order[i] = (uint32_t)(n0 + i);
    for (size_t i = count - 1; i > 0; i--) {
        size_t j = splitmix(h->seed ^ (n0 * 0x100000001b3ull) ^ splitmix(i)) % (i + 1);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    size_t pos = 0;
    if (h->max_level < 0) {
        h->entry = order[0];
        h->max_level = h->levels[order[0]];
        pos = 1;
    }
    size_t total = n0 + pos;
    volatile int err = 0;
    while (pos < count) {
        size_t b = total / BATCH_DIV;
        if (b < 1) b = 1;
        if (b > BATCH_MAX) b = BATCH_MAX;
        if (b > count - pos) b = count - pos;
        const uint32_t *batch = order + pos;
        uint32_t ep = h->entry;
        int ml = h->max_level;
        int nt_use = b >= 4 ? nthr : 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt_use)
        for (size_t i = 0; i < b; i++) {
            if (err) continue;
            if (link_new(h, batch[i], vecs[batch[i] - n0], ep, ml, &scr[omp_get_thread_num()]))
                err = 1;
        }
        if (err) {
            rc = dp_set_error(DP_ERR_NOMEM, "HNSW: out of memory while linking");
            goto done;
        }
        size_t np = 0, want = 0;
        for (size_t i = 0; i < b; i++)
            want += (size_t)((h->levels[batch[i]] < ml ? h->levels[batch[i]] : ml) + 1) * h->M;
        if (want > pcap) {
            rlink *np_ = realloc(pairs, want * sizeof *pairs);
            if (np_) pairs = np_;
            size_t *ng_ = realloc(gstart, (want + 1) * sizeof *gstart);
            if (ng_) gstart = ng_;
            if (!np_ || !ng_) {
                rc = dp_set_error(DP_ERR_NOMEM, "HNSW: out of memory");
                goto done;
            }
            pcap = want;
        }
        for (size_t i = 0; i < b; i++) {
            uint32_t u = batch[i];
            int top = h->levels[u] < ml ? h->levels[u] : ml;
            for (int l = 0; l <= top; l++) {
                const uint32_t *lk = hnsw_links(h, u, l);
                for (uint32_t j = 0; j < lk[0]; j++)
                    pairs[np++] = (rlink){(uint32_t)l, lk[1 + j], (uint32_t)i, u};
            }
        }
        qsort(pairs, np, sizeof *pairs, rlink_cmp);
        size_t ng = 0;
        for (size_t i = 0; i < np; i++)
            if (i == 0 || pairs[i].level != pairs[i - 1].level ||
                pairs[i].target != pairs[i - 1].target)
                gstart[ng++] = i;
        gstart[ng] = np;
#pragma omp parallel for schedule(dynamic, 16) num_threads(nt_use)
        for (size_t g = 0; g < ng; g++) {
            if (err) continue;
            if (add_reverse(h, pairs + gstart[g], gstart[g + 1] - gstart[g],
                            &scr[omp_get_thread_num()]))
                err = 1;
        }
        if (err) {
            rc = dp_set_error(DP_ERR_NOMEM, "HNSW: out of memory while linking");
            goto done;
        }
        for (size_t i = 0; i < b; i++)
            if (h->levels[batch[i]] > h->max_level) {
                h->max_level = h->levels[batch[i]];
                h->entry = batch[i];
            }
        pos += b;
        total += b;
        if (progress && progress(pos, count, user_data)) {
            rc = dp_set_error(DP_ERR_CANCELLED, "HNSW build cancelled");
            goto done;
        }
    }
done:
    if (scr)
        for (int t = 0; t < nthr; t++)
            hnsw_scratch_free(&scr[t]);
    free(scr);
    free(order);
    free(pairs);
    free(gstart);
    return rc;
}

/* ---- sections ------------------------------------------------------------- */

int hnsw_save(const hnsw *h, dp_index *ix)
{
    hnsw_meta m;
    memset(&m, 0, sizeof m);
    memcpy(m.magic, HNSW_MAGIC, 8);
    /* f32 graphs with ids stay version 1, readable by older builds */
    m.version = !h->ids ? 3 : h->storage == DP_ANN_STORAGE_F32 ? 1 : 2;
    m.flags = h->ids ? 0 : HNSW_DENSE_IDS;
    m.storage = (uint32_t)h->storage;
    m.dim = h->dim;
    m.metric = (uint32_t)h->metric;
    m.M = h->M;
    m.M0 = h->M0;
    m.ef_construction = h->efc;
    m.n = h->n;
    m.seed = h->seed;
    m.upper_words = h->upper_words;
    m.entry = h->entry;
    m.max_level = h->max_level;
    m.rec_bytes = (uint32_t)h->rec_bytes;
    int rc = dp_index_put_section(ix, "hnsw.meta", &m, sizeof m);
    if (!rc) rc = dp_index_put_section(ix, "hnsw.nodes", h->nodes, h->n * h->rec_bytes);
    if (!rc && h->ids) rc = dp_index_put_section(ix, "hnsw.ids", h->ids, h->n * 8);
    if (!rc && !h->ids) rc = dp_index_drop_sections(ix, "hnsw.ids");
    if (!rc) rc = dp_index_put_section(ix, "hnsw.levels", h->levels, h->n);
    if (!rc) rc = dp_index_put_section(ix, "hnsw.upper", h->upper, h->upper_words * 4);
    if (!rc) rc = dp_index_drop_sections(ix, "hnsw.sq");
    if (!rc && h->storage == DP_ANN_STORAGE_INT8) {
        float *q = malloc((size_t)8 * h->dim);
        if (!q) return dp_set_error(DP_ERR_NOMEM, "out of memory");
        for (uint32_t j = 0; j < h->dim; j++) { /* untrained (empty graph): a valid placeholder */
            q[j] = h->sq_min ? h->sq_min[j] : 0.0f;
            q[h->dim + j] = h->sq_step ? h->sq_step[j] : 1.0f;
        }
        rc = dp_index_put_section(ix, "hnsw.sq", q, (size_t)8 * h->dim);
        free(q);
    }
    return rc;
}

#define LERR(...) dp_set_error(DP_ERR_FORMAT, __VA_ARGS__)

int hnsw_load(hnsw *h, const dp_index *ix, bool verify, bool private_nodes)
{
    const char *path = dp_index_path(ix);
    const void *pm, *pn, *pi, *pl, *pu;
    size_t bm, bn, bi, bl, bu;
    int rc = dp_index_get_section(ix, "hnsw.meta", &pm, &bm);
    if (rc) return rc;
    static const char *const names[] = {"hnsw.meta", "hnsw.nodes", "hnsw.ids", "hnsw.levels",
                                        "hnsw.upper"};
    hnsw_meta m;
    if (bm != sizeof m) return LERR("%s: hnsw.meta has %zu bytes", path, bm);
    if ((rc = dp_index_check_section(ix, "hnsw.meta"))) return rc;
    memcpy(&m, pm, sizeof m);
    if (memcmp(m.magic, HNSW_MAGIC, 8)) return LERR("%s: hnsw.meta: bad magic", path);
    if (m.version < 1 || m.version > 3)
        return dp_set_error(DP_ERR_UNSUPPORTED, "%s: HNSW version %u is not supported", path,
                            m.version);
    if (m.flags & ~HNSW_DENSE_IDS || (m.version == 3) != (m.flags == HNSW_DENSE_IDS))
        return LERR("%s: hnsw.meta: flags %#x in version %u", path, m.flags, m.version);
    bool dense = m.flags & HNSW_DENSE_IDS;
    pi = NULL;
    bi = 0;
    if (dp_index_get_section(ix, "hnsw.nodes", &pn, &bn) ||
        (!dense && dp_index_get_section(ix, "hnsw.ids", &pi, &bi)) ||
        dp_index_get_section(ix, "hnsw.levels", &pl, &bl) ||
        dp_index_get_section(ix, "hnsw.upper", &pu, &bu))
        return LERR("%s: HNSW sections are incomplete", path);
    /* The small sections are checked always (a bad level or entry would
     * misdirect every search); the node records only with verify, since a
     * link out of range is skipped by the search anyway. */
    for (int i = 1; i < 5; i++)
        if ((i != 1 || verify) && (i != 2 || !dense) && (rc = dp_index_check_section(ix, names[i])))
            return rc;
    if ((m.version == 1 && m.storage) || m.storage > DP_ANN_STORAGE_INT8)
        return LERR("%s: hnsw.meta: unknown storage %u", path, m.storage);
    if (m.dim != dp_index_dim(ix) || (int)m.metric != dp_index_metric(ix))
        return LERR("%s: the HNSW graph was built for another dimension or metric", path);
    if (m.M < 2 || m.M > HNSW_MAX_M || m.M0 != 2 * m.M)
        return LERR("%s: hnsw.meta: M = %u, M0 = %u", path, m.M, m.M0);
    hnsw_init(h, m.dim, (int)m.metric, m.M, m.ef_construction, m.seed, (int)m.storage);
    h->owned = false;
    if (m.storage == DP_ANN_STORAGE_INT8) {
        const void *pq;
        size_t bq;
        if (dp_index_get_section(ix, "hnsw.sq", &pq, &bq))
            return LERR("%s: int8 HNSW without its hnsw.sq section", path);
        if ((rc = dp_index_check_section(ix, "hnsw.sq"))) return rc;
        if (bq != (size_t)8 * m.dim) return LERR("%s: hnsw.sq has %zu bytes", path, bq);
        /* a copy: a graph updated in memory outlives the mapping it came from */
        if (!(h->sq_own = malloc(bq ? bq : 1))) return dp_set_error(DP_ERR_NOMEM, "out of memory");
        memcpy(h->sq_own, pq, bq);
        h->sq_min = h->sq_own;
        h->sq_step = h->sq_own + m.dim;
        for (uint32_t j = 0; j < m.dim; j++)
            if (!isfinite(h->sq_min[j]) || !isfinite(h->sq_step[j]) || !(h->sq_step[j] > 0))
                return LERR("%s: hnsw.sq: bad range for dimension %u", path, j);
        if (!m.n) { /* nothing was trained: the first insert sets the ranges */
            free(h->sq_own);
            h->sq_own = NULL;
            h->sq_min = h->sq_step = NULL;
        }
    }
    if (m.rec_bytes != h->rec_bytes) return LERR("%s: hnsw.meta: record size", path);
    if (m.n > UINT32_MAX - 1 || (!dense && (m.n != bi / 8 || bi % 8)) || m.n != bl ||
        bn / h->rec_bytes != m.n || bn % h->rec_bytes || m.upper_words * 4 != bu || bu % 4)
        return LERR("%s: HNSW sections disagree on the node count", path);
    if (m.n && (m.entry >= m.n || m.max_level < 0 || m.max_level > HNSW_MAX_LEVEL))
        return LERR("%s: hnsw.meta: bad entry point", path);
    if (!m.n && m.max_level != -1) return LERR("%s: hnsw.meta: empty graph with levels", path);
    h->n = (size_t)m.n;
    h->nodes = (uint8_t *)pn;
    if (private_nodes && bn) {
        size_t map;
        uint8_t *copy = nodes_alloc(bn, &map, true);
        if (!copy || !map) {
            free(copy);
            return dp_set_error(DP_ERR_NOMEM, "%s: out of memory for the HNSW nodes", path);
        }
        /* in slices, each dropped from the mapping once copied, so the
         * records are never resident twice */
        for (size_t o = 0, sl = (size_t)64 << 20; o < bn; o += sl) {
            size_t len = bn - o < sl ? bn - o : sl;
            memcpy(copy + o, (const uint8_t *)pn + o, len);
            dpx_release_pages(ix, (const uint8_t *)pn + o, len);
        }
        h->nodes = copy;
        h->nodes_map = map;
    }
    h->ids = dense ? NULL : (uint64_t *)pi;
    h->levels = (uint8_t *)pl;
    h->upper = (uint32_t *)pu;
    h->upper_words = (size_t)m.upper_words;
    h->entry = m.entry;
    h->max_level = m.max_level;
    h->upper_off = malloc((h->n ? h->n : 1) * sizeof *h->upper_off);
    if (!h->upper_off) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    uint64_t off = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (h->levels[i] > m.max_level) return LERR("%s: HNSW node %zu is above the top", path, i);
        if (off / (h->M + 1) + h->levels[i] > UINT32_MAX)
            return LERR("%s: too many HNSW upper-level links", path);
        h->upper_off[i] = (uint32_t)(off / (h->M + 1));
        off += (uint64_t)h->levels[i] * (h->M + 1);
    }
    if (off != m.upper_words) return LERR("%s: hnsw.upper does not match the levels", path);
    if (h->n && h->levels[h->entry] != m.max_level)
        return LERR("%s: the HNSW entry point is not on the top level", path);
    return 0;
}
