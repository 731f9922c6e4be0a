/* Random-projection forest (the chapter's Annoy): the build of each tree with
 * an explicit stack, the search of all trees from one priority queue with an
 * exact ranking of the gathered items, and the rpforest.* sections. Layout
 * in ann_internal.h.
 *
 * Split: a short 2-means on the node's items (Annoy's: two random items as
 * seeds, then single-item updates weighted by the cluster sizes) gives two
 * centres; the hyperplane is their perpendicular bisector. When it leaves
 * fewer than MIN_SIDE of the items on one side (outliers, duplicates) the
 * threshold moves to the median projection, ties broken by item number, so
 * every split shrinks both sides: a tree has at most log_{1/(1-MIN_SIDE)}(n)
 * levels even for identical vectors, and the stack is a heap array anyway.
 *
 * Everything a tree does depends on the data, the seed and the tree's
 * number only (its own random stream, sequential float sums), and trees are
 * concatenated in order: the sections are byte-identical whatever the
 * thread count. */
#include "ann_internal.h"

#include "util/util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const char RPF_MAGIC[8] = {'D', 'P', 'R', 'P', 'F', 'O', 'R', 0};

#define TWO_MEANS_ITERS 200
#define MIN_SIDE 0.05 /* smallest side the bisector may leave, as a fraction */
#define TILE 16       /* candidate rows per distance-kernel call */

/* ---- random streams -------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct prng {
    uint64_t s;
} prng;

static uint64_t prng_next(prng *r)
{
    r->s += 0x9e3779b97f4a7c15ull;
    return mix64(r->s);
}

static size_t prng_below(prng *r, size_t n)
{
    return (size_t)((prng_next(r) >> 11) % n);
}

static float prng_normal(prng *r)
{
    double u = ((double)(prng_next(r) >> 11) + 0.5) / 9007199254740992.0;
    double v = ((double)(prng_next(r) >> 11) + 0.5) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* ---- build ------------------------------------------------------------------ */

typedef struct tree_out {
    rpf_node *nodes;
    size_t n_nodes, cap_nodes;
    float *normals;
    size_t n_normals, cap_normals;
    uint32_t *perm; /* the items, cut into the leaves' runs */
} tree_out;

typedef struct span {
    uint32_t node, start, count;
} span;

typedef struct proj {
    float p;
    uint32_t item;
} proj;

static int proj_cmp(const void *a, const void *b)
{
    const proj *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static uint32_t new_node(tree_out *t)
{
    if (grow((void **)&t->nodes, &t->cap_nodes, t->n_nodes + 1, sizeof *t->nodes)) return RPF_LEAF;
    t->nodes[t->n_nodes] = (rpf_node){{0, 0}, 0, RPF_LEAF};
    return (uint32_t)t->n_nodes++;
}

/* Two centres of the items it[0..c) (c >= 2) into p and q. */
static void two_means(const float *const *vecs, const uint32_t *it, size_t c, uint32_t dim,
                      const dp_dist_ops_t *ops, prng *r, float *p, float *q)
{
    size_t i = prng_below(r, c), j = prng_below(r, c - 1);
    if (j >= i) j++;
    memcpy(p, vecs[it[i]], (size_t)dim * sizeof *p);
    memcpy(q, vecs[it[j]], (size_t)dim * sizeof *q);
    float ic = 1, jc = 1;
    size_t iters = c < TWO_MEANS_ITERS ? c : TWO_MEANS_ITERS;
    for (size_t s = 0; s < iters; s++) {
        const float *x = vecs[it[prng_below(r, c)]];
        float dp, dq;
        ops->l2sq(p, x, 1, dim, &dp);
        ops->l2sq(q, x, 1, dim, &dq);
        dp *= ic;
        dq *= jc;
        if (dp < dq) {
            for (uint32_t z = 0; z < dim; z++)
                p[z] = (p[z] * ic + x[z]) / (ic + 1);
            ic++;
        } else if (dq < dp) {
            for (uint32_t z = 0; z < dim; z++)
                q[z] = (q[z] * jc + x[z]) / (jc + 1);
            jc++;
        }
    }
}

static int build_tree(const float *const *vecs, size_t n, uint32_t dim, uint32_t leaf,
                      uint64_t seed, uint32_t tree, tree_out *t)
{
    const dp_dist_ops_t *ops = dp_dist_ops();
    prng r = {mix64(seed ^ mix64((uint64_t)tree + 1))};
    memset(t, 0, sizeof *t);
    span *stack = NULL;
    size_t sp = 0, cap_stack = 0;
    proj *pr = malloc((n ? n : 1) * sizeof *pr);
    float *p = malloc((size_t)dim * 3 * sizeof *p), *q = p + dim, *nv = q + dim;
    t->perm = malloc((n ? n : 1) * sizeof *t->perm);
    if (!pr || !p || !t->perm) goto fail;
    for (size_t i = 0; i < n; i++)
        t->perm[i] = (uint32_t)i;
    if (new_node(t) == RPF_LEAF) goto fail;
    if (grow((void **)&stack, &cap_stack, 1, sizeof *stack)) goto fail;
    stack[sp++] = (span){0, 0, (uint32_t)n};
    while (sp) {
        span w = stack[--sp];
        if (w.count <= leaf) {
            t->nodes[w.node] = (rpf_node){{w.start, w.count}, 0, RPF_LEAF};
            continue;
        }
        uint32_t *it = t->perm + w.start;
        size_t c = w.count;
        two_means(vecs, it, c, dim, ops, &r, p, q);
        double nn = 0;
        for (uint32_t z = 0; z < dim; z++) {
            nv[z] = p[z] - q[z];
            nn += (double)nv[z] * nv[z];
        }
        if (!(nn > 1e-30) || !isfinite(nn)) { /* the centres coincide: any direction */
            nn = 0;
            for (uint32_t z = 0; z < dim; z++) {
                nv[z] = prng_normal(&r);
                nn += (double)nv[z] * nv[z];
            }
        }
        float inv = (float)(1.0 / sqrt(nn));
        for (uint32_t z = 0; z < dim; z++) {
            nv[z] *= inv;
            p[z] = 0.5f * (p[z] + q[z]); /* the midpoint */
        }
        float thr;
        ops->dot(nv, p, 1, dim, &thr);
        if (!isfinite(thr)) thr = 0;
        size_t nr = 0;
        for (size_t i = 0; i < c; i++) {
            float v;
            ops->dot(nv, vecs[it[i]], 1, dim, &v);
            pr[i] = (proj){isfinite(v) ? v : 0, it[i]};
            nr += pr[i].p > thr;
        }
        size_t lo = (size_t)(MIN_SIDE * (double)c);
        if (lo < 1) lo = 1;
        size_t nl;
        if (nr >= lo && c - nr >= lo) {
            nl = 0;
            for (size_t i = 0; i < c; i++) /* stable: left in order, then right */
                if (!(pr[i].p > thr)) it[nl++] = pr[i].item;
            for (size_t i = 0, k = nl; i < c; i++)
                if (pr[i].p > thr) it[k++] = pr[i].item;
        } else {
            /* median by (projection, item): both halves non-empty even when
             * every projection is equal */
            qsort(pr, c, sizeof *pr, proj_cmp);
            nl = c / 2;
            float a = pr[nl - 1].p, b = pr[nl].p;
            thr = a < b ? a + 0.5f * (b - a) : a;
            for (size_t i = 0; i < c; i++)
                it[i] = pr[i].item;
        }
        if (grow((void **)&t->normals, &t->cap_normals, (t->n_normals + 1) * dim,
                 sizeof *t->normals))
            goto fail;
        memcpy(t->normals + t->n_normals * dim, nv, (size_t)dim * sizeof *nv);
        uint32_t l = new_node(t), rr = new_node(t);
        if (l == RPF_LEAF || rr == RPF_LEAF) goto fail;
        t->nodes[w.node] = (rpf_node){{l, rr}, thr, (uint32_t)t->n_normals++};
        if (grow((void **)&stack, &cap_stack, sp + 2, sizeof *stack)) goto fail;
        stack[sp++] = (span){rr, w.start + (uint32_t)nl, (uint32_t)(c - nl)};
        stack[sp++] = (span){l, w.start, (uint32_t)nl};
    }
    free(stack);
    free(pr);
    free(p);
    return 0;
fail:
    free(stack);
    free(pr);
    free(p);
    free(t->nodes);
    free(t->normals);
    free(t->perm);
    memset(t, 0, sizeof *t);
    return DP_ERR_NOMEM;
}

void rpf_free(rpforest *f)
{
    for (int i = 0; i < 5; i++)
        free(f->own[i]);
    memset(f, 0, sizeof *f);
}

int rpf_build(rpforest *f, uint32_t dim, int metric, const float *const *vecs, const uint64_t *ids,
              size_t n, uint32_t n_trees, uint32_t leaf_size, uint64_t seed, int threads,
              dp_progress_fn progress, void *user_data)
{
    rpf_free(f);
    f->dim = dim;
    f->metric = metric;
    f->n_trees = n_trees;
    f->leaf_size = leaf_size;
    f->seed = seed;
    if (n > UINT32_MAX - 1 || n_trees < 1 || n_trees > RPF_MAX_TREES || leaf_size < 1 ||
        leaf_size > RPF_MAX_LEAF)
        return dp_set_error(DP_ERR_INVALID, "rpforest: %zu items, %u trees, leaf size %u", n,
                            n_trees, leaf_size);
    tree_out *outs = calloc(n_trees, sizeof *outs);
    if (!outs) return dp_set_error(DP_ERR_NOMEM, "rpforest: out of memory");
    int nthr = threads > 0 ? threads : omp_get_max_threads();
    if (nthr > (int)n_trees) nthr = (int)n_trees;
    volatile int err = 0;
    size_t done = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthr) if (nthr > 1)
    for (uint32_t t = 0; t < n_trees; t++) {
        if (err) continue;
        if (build_tree(vecs, n, dim, leaf_size, seed, t, &outs[t])) {
            err = DP_ERR_NOMEM;
            continue;
        }
#pragma omp critical(rpf_progress)
        {
            done++;
            if (progress && !err && progress((uint64_t)(done * n / n_trees), n, user_data))
                err = DP_ERR_CANCELLED;
        }
    }
    int rc = err;
    size_t nn = 0, nm = 0;
    for (uint32_t t = 0; !rc && t < n_trees; t++) {
        nn += outs[t].n_nodes;
        nm += outs[t].n_normals;
    }
    if (!rc && (nn > UINT32_MAX - 1 || nm > UINT32_MAX - 1))
        rc = dp_set_error(DP_ERR_UNSUPPORTED, "rpforest: %zu nodes do not fit 32-bit numbers", nn);
    uint32_t *roots = NULL, *refs = NULL;
    rpf_node *nodes = NULL;
    float *normals = NULL;
    uint64_t *idc = NULL;
    if (!rc) {
        roots = malloc(n_trees * sizeof *roots);
        nodes = malloc((nn ? nn : 1) * sizeof *nodes);
        normals = malloc((nm ? nm * dim : 1) * sizeof *normals);
        refs = malloc((n ? n * n_trees : 1) * sizeof *refs);
        idc = malloc((n ? n : 1) * sizeof *idc);
        if (!roots || !nodes || !normals || !refs || !idc) rc = DP_ERR_NOMEM;
    }
    if (!rc) {
        size_t no = 0, mo = 0;
        for (uint32_t t = 0; t < n_trees; t++) {
            const tree_out *o = &outs[t];
            roots[t] = (uint32_t)no;
            for (size_t i = 0; i < o->n_nodes; i++) {
                rpf_node x = o->nodes[i];
                if (x.normal == RPF_LEAF) {
                    x.child[0] += (uint32_t)(t * n);
                } else {
                    x.child[0] += (uint32_t)no;
                    x.child[1] += (uint32_t)no;
                    x.normal += (uint32_t)mo;
                }
                nodes[no + i] = x;
            }
            if (o->n_normals)
                memcpy(normals + mo * dim, o->normals, o->n_normals * dim * sizeof *normals);
            if (n) memcpy(refs + (size_t)t * n, o->perm, n * sizeof *refs);
            no += o->n_nodes;
            mo += o->n_normals;
        }
        if (n) memcpy(idc, ids, n * sizeof *idc);
        f->n = n;
        f->n_nodes = nn;
        f->n_normals = nm;
        f->n_refs = n * n_trees;
        f->roots = f->own[0] = roots;
        f->nodes = f->own[1] = nodes;
        f->normals = f->own[2] = normals;
        f->refs = f->own[3] = refs;
        f->ids = f->own[4] = idc;
    } else {
        free(roots);
        free(nodes);
        free(normals);
        free(refs);
        free(idc);
    }
    for (uint32_t t = 0; t < n_trees; t++) {
        free(outs[t].nodes);
        free(outs[t].normals);
        free(outs[t].perm);
    }
    free(outs);
    if (rc == DP_ERR_CANCELLED) return dp_set_error(rc, "rpforest: cancelled");
    if (rc == DP_ERR_NOMEM)
        return dp_set_error(rc, "rpforest: out of memory for %u trees over %zu items", n_trees, n);
    return rc;
}

size_t rpf_bytes(const rpforest *f)
{
    return sizeof(rpf_meta) + (size_t)f->n_trees * 4 + f->n_nodes * sizeof(rpf_node) +
           f->n_normals * f->dim * 4 + f->n_refs * 4 + f->n * 8;
}

/* ---- search ----------------------------------------------------------------- */

void rpf_scratch_free(rpf_scratch *s)
{
    free(s->seen);
    free(s->rejected);
    free(s->heap);
    free(s->cand);
    free(s->tile);
    free(s->dist);
    memset(s, 0, sizeof *s);
}

/* Min-heap on d (the queue) and max-heap on d (the top k). */
static void heap_up(cand *h, size_t i, int sign)
{
    cand x = h[i];
    while (i) {
        size_t p = (i - 1) / 2;
        if (!(sign * h[p].d > sign * x.d)) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static void heap_down(cand *h, size_t n, int sign)
{
    if (!n) return;
    cand x = h[0];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && sign * h[c + 1].d < sign * h[c].d) c++;
        if (!(sign * h[c].d < sign * x.d)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static int cand_asc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

size_t rpf_search(const rpforest *f, const float *const *vec, const dist_fn *df, const float *q,
                  size_t k, size_t search_k, rpf_scratch *s, hnsw_accept_fn accept, void *ctx,
                  cand *out)
{
    const uint32_t dim = f->dim;
    const dp_dist_ops_t *ops = df->ops;
    if (!f->n || !k) return 0;
    if (s->n_seen < f->n) {
        free(s->seen);
        s->seen = calloc(f->n / 64 + 1, sizeof *s->seen);
        s->n_seen = s->seen ? f->n : 0;
        if (!s->seen) return (size_t)-1;
    }
    if (!s->tile && !(s->tile = malloc((size_t)TILE * dim * sizeof *s->tile))) return (size_t)-1;
    if (grow((void **)&s->heap, &s->heap_cap, f->n_trees + 64, sizeof *s->heap)) return (size_t)-1;
    size_t hn = 0;
    for (uint32_t t = 0; t < f->n_trees; t++)
        s->heap[hn++] = (cand){-INFINITY, f->roots[t]};
    uint64_t *seen = s->seen;
    size_t got = 0, nc = 0, nrej = 0, steps = 0;
    while (hn && (got < search_k || nc < k)) {
        cand top = s->heap[0];
        s->heap[0] = s->heap[--hn];
        heap_down(s->heap, hn, 1);
        uint32_t node = top.id;
        float key = top.d;
        const rpf_node *nd;
        /* Annoy's order: a node's key is the largest signed distance to
         * the hyperplanes on its path (negative on the query's side), so
         * the queue hands out first the leaves whose paths are clearest
         * across all trees. The near child is followed at once when it
         * would come out of the queue next anyway. */
        for (;;) {
            if (node >= f->n_nodes || ++steps > f->n_nodes) goto next; /* damaged */
            nd = &f->nodes[node];
            if (nd->normal == RPF_LEAF) break;
            if (nd->normal >= f->n_normals || nd->child[0] <= node || nd->child[1] <= node)
                goto next;
            float m;
            ops->dot(q, f->normals + (size_t)nd->normal * dim, 1, dim, &m);
            m -= nd->thr;
            int side = m > 0;
            float am = fabsf(m), kn = fmaxf(key, -am), kf = fmaxf(key, am);
            if (grow((void **)&s->heap, &s->heap_cap, hn + 2, sizeof *s->heap)) goto oom;
            s->heap[hn] = (cand){kf, nd->child[!side]};
            heap_up(s->heap, hn++, 1);
            if (kn > s->heap[0].d) {
                s->heap[hn] = (cand){kn, nd->child[side]};
                heap_up(s->heap, hn++, 1);
                goto next;
            }
            key = kn;
            node = nd->child[side];
        }
        {
            size_t st = nd->child[0], cnt = nd->child[1];
            if (st > f->n_refs || cnt > f->n_refs - st) continue;
            got += cnt;
            if (grow((void **)&s->cand, &s->cand_cap, nc + cnt, sizeof *s->cand)) goto oom;
            const uint32_t *r = f->refs + st;
            for (size_t i = 0; i < cnt; i++) {
                uint32_t it = r[i];
                if (it >= f->n || (seen[it >> 6] >> (it & 63) & 1)) continue;
                seen[it >> 6] |= 1ull << (it & 63);
                if (!vec[it] || (accept && !accept(it, ctx))) {
                    if (grow((void **)&s->rejected, &s->rej_cap, nrej + 1, sizeof *s->rejected))
                        goto oom;
                    s->rejected[nrej++] = it;
                    continue;
                }
                s->cand[nc++] = it;
            }
        }
    next:;
    }
    if (grow((void **)&s->dist, &s->dist_cap, nc + TILE, sizeof *s->dist)) goto oom;
    /* exact distances, TILE gathered rows per kernel call; the rows of the
     * next tile are prefetched while this one is computed */
    /* the bits go back to zero for the next query */
    for (size_t i = 0; i < nc; i++)
        seen[s->cand[i] >> 6] = 0;
    for (size_t i = 0; i < nrej; i++)
        seen[s->rejected[i] >> 6] = 0;
    const size_t rb = (size_t)dim * sizeof(float);
    const float *base = f->base;
#define ROW(it) (base ? base + (size_t)(it)*dim : vec[it])
    for (size_t i = 0; i < nc && i < TILE; i++)
        for (size_t o = 0; o < rb; o += 64)
            __builtin_prefetch((const char *)ROW(s->cand[i]) + o);
    for (size_t i = 0; i < nc; i += TILE) {
        size_t b = nc - i < TILE ? nc - i : TILE;
        for (size_t j = i + TILE; j < nc && j < i + 2 * TILE; j++)
            for (size_t o = 0; o < rb; o += 64)
                __builtin_prefetch((const char *)ROW(s->cand[j]) + o);
        for (size_t j = 0; j < b; j++)
            memcpy(s->tile + j * dim, ROW(s->cand[i + j]), rb);
        float *o = s->dist + i;
        switch (df->op) {
        case 0:
            ops->l2sq(q, s->tile, b, dim, o);
            break;
        case 1:
            ops->dot(q, s->tile, b, dim, o);
            for (size_t j = 0; j < b; j++)
                o[j] = df->bias - o[j];
            break;
        default:
            ops->l1(q, s->tile, b, dim, o);
            break;
        }
    }
    /* the best k in a max-heap on distance */
    size_t m = 0;
    for (size_t i = 0; i < nc; i++) {
        cand c = {s->dist[i], s->cand[i]};
        if (m < k) {
            out[m] = c;
            heap_up(out, m++, -1);
        } else if (c.d < out[0].d || (c.d == out[0].d && c.id < out[0].id)) {
            out[0] = c;
            heap_down(out, m, -1);
        }
    }
#undef ROW
    qsort(out, m, sizeof *out, cand_asc);
    return m;
oom:
    for (size_t i = 0; i < nc; i++)
        seen[s->cand[i] >> 6] = 0;
    for (size_t i = 0; i < nrej; i++)
        seen[s->rejected[i] >> 6] = 0;
    return (size_t)-1;
}

/* ---- sections ---------------------------------------------------------------- */

int rpf_save(const rpforest *f, dp_index *ix)
{
    rpf_meta mt;
    memset(&mt, 0, sizeof mt);
    memcpy(mt.magic, RPF_MAGIC, 8);
    mt.version = 1;
    mt.dim = f->dim;
    mt.metric = (uint32_t)f->metric;
    mt.n_trees = f->n_trees;
    mt.leaf_size = f->leaf_size;
    mt.n = f->n;
    mt.seed = f->seed;
    mt.n_nodes = f->n_nodes;
    mt.n_normals = f->n_normals;
    mt.n_refs = f->n_refs;
    int rc = dp_index_put_section(ix, "rpforest.meta", &mt, sizeof mt);
    if (!rc) rc = dp_index_put_section(ix, "rpforest.roots", f->roots, (size_t)f->n_trees * 4);
    if (!rc)
        rc = dp_index_put_section(ix, "rpforest.nodes", f->nodes, f->n_nodes * sizeof(rpf_node));
    if (!rc)
        rc = dp_index_put_section(ix, "rpforest.normals", f->normals,
                                  f->n_normals * f->dim * sizeof(float));
    if (!rc) rc = dp_index_put_section(ix, "rpforest.refs", f->refs, f->n_refs * 4);
    if (!rc) rc = dp_index_put_section(ix, "rpforest.ids", f->ids, f->n * 8);
    return rc;
}

#define LERR(...) dp_set_error(DP_ERR_FORMAT, __VA_ARGS__)

int rpf_load(rpforest *f, const dp_index *ix, bool verify)
{
    static const char *const names[] = {"rpforest.meta",  "rpforest.roots", "rpforest.ids",
                                        "rpforest.nodes", "rpforest.refs",  "rpforest.normals"};
    const char *path = dp_index_path(ix);
    const void *d[6];
    size_t b[6];
    memset(f, 0, sizeof *f);
    int rc = dp_index_get_section(ix, names[0], &d[0], &b[0]);
    if (rc) return rc;
    for (int i = 1; i < 6; i++)
        if (dp_index_get_section(ix, names[i], &d[i], &b[i]))
            return LERR("%s: rpforest sections are incomplete (no %s)", path, names[i]);
    /* The small sections are checked always; a damaged node, item or normal
     * is bounded by the search (it misroutes, never reads out of range), so
     * the large ones only with verify. */
    for (int i = 0; i < 6; i++)
        if ((i < 3 || verify) && (rc = dp_index_check_section(ix, names[i]))) return rc;
    rpf_meta mt;
    if (b[0] != sizeof mt) return LERR("%s: rpforest.meta has %zu bytes", path, b[0]);
    memcpy(&mt, d[0], sizeof mt);
    if (memcmp(mt.magic, RPF_MAGIC, 8)) return LERR("%s: rpforest.meta: bad magic", path);
    if (mt.version != 1)
        return dp_set_error(DP_ERR_UNSUPPORTED, "%s: rpforest version %u is not supported", path,
                            mt.version);
    if (mt.dim != dp_index_dim(ix) || (int)mt.metric != dp_index_metric(ix))
        return LERR("%s: the rpforest was built for another dimension or metric", path);
    if (mt.n_trees < 1 || mt.n_trees > RPF_MAX_TREES || mt.leaf_size < 1 ||
        mt.leaf_size > RPF_MAX_LEAF)
        return LERR("%s: rpforest.meta: %u trees, leaf size %u", path, mt.n_trees, mt.leaf_size);
    size_t nb;
    if (mt.n > UINT32_MAX - 1 || mt.n_nodes > UINT32_MAX - 1 || mt.n_normals > UINT32_MAX - 1 ||
        mt.n_refs != mt.n * mt.n_trees || mt.n_nodes < mt.n_trees ||
        __builtin_mul_overflow((size_t)mt.n_normals, (size_t)mt.dim * 4, &nb) || b[5] != nb ||
        b[1] != (size_t)mt.n_trees * 4 || b[2] != mt.n * 8 || b[3] != mt.n_nodes * 16 ||
        b[4] != mt.n_refs * 4)
        return LERR("%s: rpforest sections disagree with rpforest.meta on their sizes", path);
    const uint32_t *roots = d[1];
    for (uint32_t t = 0; t < mt.n_trees; t++)
        if (roots[t] >= mt.n_nodes)
            return LERR("%s: rpforest.roots: tree %u starts at node %u of %llu", path, t, roots[t],
                        (unsigned long long)mt.n_nodes);
    f->dim = mt.dim;
    f->metric = (int)mt.metric;
    f->n_trees = mt.n_trees;
    f->leaf_size = mt.leaf_size;
    f->seed = mt.seed;
    f->n = (size_t)mt.n;
    f->n_nodes = (size_t)mt.n_nodes;
    f->n_normals = (size_t)mt.n_normals;
    f->n_refs = (size_t)mt.n_refs;
    f->roots = roots;
    f->ids = d[2];
    f->nodes = d[3];
    f->refs = d[4];
    f->normals = d[5];
    return 0;
}
