/* IVF-PQ: k-means training (GEMM assignment), encoding into inverted lists,
 * the ADC search and the ivfpq.* sections. Layout in ann_internal.h.
 *
 * Every assignment (k-means steps, coarse cells, sub-quantiser codes) runs
 * over fixed tiles of 256 rows, one GEMM per tile on one thread, and every
 * sum that forms a centroid is taken serially in row order: the trained
 * quantisers and the codes do not depend on the thread count. */
#include "ann_internal.h"

#include "util/util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define TILE 256
#define COARSE_ITERS 10
#define PQ_ITERS 16
#define COARSE_PER_LIST 40 /* training rows per cell */
#define COARSE_MIN_SAMPLE 65536
#define PQ_SAMPLE 65536

static const char IVFPQ_MAGIC[8] = {'D', 'P', 'I', 'V', 'F', 'P', 'Q', 0};

/* ---- scalar kernels -------------------------------------------------------- */

static void table_l2_scalar(const float *x, const float *cbt, uint32_t m, uint32_t dsub, float *tab)
{
    for (uint32_t s = 0; s < m; s++) {
        float *t = tab + (size_t)s * IVFPQ_KSUB;
        for (int j = 0; j < IVFPQ_KSUB; j++)
            t[j] = 0;
        for (uint32_t u = 0; u < dsub; u++) {
            float xv = x[s * dsub + u];
            const float *c = cbt + ((size_t)s * dsub + u) * IVFPQ_KSUB;
            for (int j = 0; j < IVFPQ_KSUB; j++) {
                float df = xv - c[j];
                t[j] += df * df;
            }
        }
    }
}

static void table_ip_scalar(const float *x, const float *cbt, uint32_t m, uint32_t dsub, float *tab)
{
    for (uint32_t s = 0; s < m; s++) {
        float *t = tab + (size_t)s * IVFPQ_KSUB;
        for (int j = 0; j < IVFPQ_KSUB; j++)
            t[j] = 0;
        for (uint32_t u = 0; u < dsub; u++) {
            float xv = x[s * dsub + u];
            const float *c = cbt + ((size_t)s * dsub + u) * IVFPQ_KSUB;
            for (int j = 0; j < IVFPQ_KSUB; j++)
                t[j] -= xv * c[j];
        }
    }
}

static void scan_scalar(const float *tab, const uint8_t *codes, size_t n, uint32_t m, float bias,
                        float *out)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = codes + i * m;
        float a0 = 0, a1 = 0;
        uint32_t s = 0;
        for (; s + 2 <= m; s += 2) {
            a0 += tab[(size_t)s * IVFPQ_KSUB + c[s]];
            a1 += tab[(size_t)(s + 1) * IVFPQ_KSUB + c[s + 1]];
        }
        if (s < m) a0 += tab[(size_t)s * IVFPQ_KSUB + c[s]];
        out[i] = bias + (a0 + a1);
    }
}

const ivfpq_kern *ivfpq_kern_scalar(void)
{
    static const ivfpq_kern k = {table_l2_scalar, table_ip_scalar, scan_scalar};
    return &k;
}

const ivfpq_kern *ivfpq_kern_best(void)
{
    /* DP_ISA=scalar caps the choice, as for the distance kernels */
    const char *cap = getenv("DP_ISA");
    const ivfpq_kern *k = NULL;
    if (!cap || strcmp(cap, "scalar")) k = ivfpq_kern_avx2();
    return k ? k : ivfpq_kern_scalar();
}

/* ---- k-means ----------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Nearest of k centres (C, |C|^2 in cn) for nr <= TILE contiguous rows:
 * argmin |c|^2 - 2 x.c from one GEMM; G holds TILE x k floats. */
static int nearest_tile(const float *X, size_t nr, uint32_t d, const float *C, const float *cn,
                        uint32_t k, float *G, int32_t *out)
{
    if (dp_sgemm_nt(nr, k, d, X, d, C, d, G, k)) return -1;
    for (size_t i = 0; i < nr; i++) {
        const float *g = G + i * k;
        float best = INFINITY;
        int32_t bi = 0;
        for (uint32_t c = 0; c < k; c++) {
            float v = cn[c] - 2 * g[c];
            if (v < best) {
                best = v;
                bi = (int32_t)c;
            }
        }
        out[i] = bi;
    }
    return 0;
}

static void sqnorms(const float *C, uint32_t k, uint32_t d, float *cn)
{
    for (uint32_t c = 0; c < k; c++) {
        double s = 0;
        for (uint32_t j = 0; j < d; j++)
            s += (double)C[(size_t)c * d + j] * C[(size_t)c * d + j];
        cn[c] = (float)s;
    }
}

/* out[i] = nearest centre of rows[i], in parallel over fixed tiles. */
static int assign(const float *const *rows, size_t n, uint32_t d, const float *C, uint32_t k,
                  int nthr, int32_t *out)
{
    float *cn = malloc((size_t)k * sizeof *cn);
    if (!cn) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    sqnorms(C, k, d, cn);
    size_t nt = (n + TILE - 1) / TILE;
    volatile int err = 0;
#pragma omp parallel num_threads(nthr)
    {
        float *buf = malloc((size_t)TILE * d * sizeof *buf);
        float *G = malloc((size_t)TILE * k * sizeof *G);
        if (!buf || !G) err = DP_ERR_NOMEM;
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < nt; t++) {
            if (err) continue;
            size_t r0 = t * TILE, nr = n - r0 < TILE ? n - r0 : TILE;
            for (size_t i = 0; i < nr; i++)
                memcpy(buf + i * d, rows[r0 + i], (size_t)d * sizeof *buf);
            if (nearest_tile(buf, nr, d, C, cn, k, G, out + r0)) err = DP_ERR_BACKEND;
        }
        free(buf);
        free(G);
    }
    free(cn);
    if (err == DP_ERR_NOMEM) return dp_set_error(err, "out of memory");
    if (err) return dp_set_error(err, "sgemm failed in the k-means assignment");
    return 0;
}

/* Lloyd's k-means on n contiguous rows (n >= k), seeded random distinct
 * rows as the start. An emptied cell takes half of the largest one (its
 * centre nudged both ways), so all k centres stay in use. */
static int kmeans(const float *X, size_t n, uint32_t d, uint32_t k, int iters, uint64_t seed,
                  int nthr, float *C)
{
    int rc = 0;
    const float **rows = malloc(n * sizeof *rows);
    size_t *perm = malloc(n * sizeof *perm);
    int32_t *a = malloc(n * sizeof *a);
    double *sum = malloc((size_t)k * d * sizeof *sum);
    size_t *cnt = malloc((size_t)k * sizeof *cnt);
    if (!rows || !perm || !a || !sum || !cnt) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory for k-means on %zu rows", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        rows[i] = X + i * d;
        perm[i] = i;
    }
    uint64_t st = seed;
    for (uint32_t c = 0; c < k; c++) {
        size_t j = c + (size_t)(splitmix(&st) % (n - c));
        size_t t = perm[c];
        perm[c] = perm[j];
        perm[j] = t;
        memcpy(C + (size_t)c * d, X + perm[c] * d, (size_t)d * sizeof *C);
    }
    for (int it = 0; it < iters; it++) {
        if ((rc = assign(rows, n, d, C, k, nthr, a))) goto done;
        memset(sum, 0, (size_t)k * d * sizeof *sum);
        memset(cnt, 0, (size_t)k * sizeof *cnt);
        for (size_t i = 0; i < n; i++) {
            double *s = sum + (size_t)a[i] * d;
            cnt[a[i]]++;
            for (uint32_t j = 0; j < d; j++)
                s[j] += X[i * d + j];
        }
        for (uint32_t c = 0; c < k; c++)
            if (cnt[c])
                for (uint32_t j = 0; j < d; j++)
                    C[(size_t)c * d + j] = (float)(sum[(size_t)c * d + j] / (double)cnt[c]);
        for (uint32_t c = 0; c < k; c++) {
            if (cnt[c]) continue;
            uint32_t big = 0;
            for (uint32_t b = 1; b < k; b++)
                if (cnt[b] > cnt[big]) big = b;
            float *ce = C + (size_t)c * d, *cb = C + (size_t)big * d;
            for (uint32_t j = 0; j < d; j++) {
                float e = (j & 1 ? 1.0f : -1.0f) / 1024.0f;
                ce[j] = cb[j] * (1 + e) + e * 1e-3f;
                cb[j] = cb[j] * (1 - e) - e * 1e-3f;
            }
            cnt[c] = cnt[big] / 2;
            cnt[big] -= cnt[c];
        }
    }
done:
    free(rows);
    free(perm);
    free(a);
    free(sum);
    free(cnt);
    return rc;
}

/* ---- build, add ---------------------------------------------------------------- */

static void own_free(ivfpq *p)
{
    for (int i = 0; i < 5; i++) {
        free(p->own[i]);
        p->own[i] = NULL;
    }
}

void ivfpq_free(ivfpq *p)
{
    own_free(p);
    free(p->cbt);
    memset(p, 0, sizeof *p);
}

size_t ivfpq_bytes(const ivfpq *p)
{
    return sizeof(ivfpq_meta) + (size_t)p->nlist * p->dim * 4 +
           (size_t)p->m * IVFPQ_KSUB * p->dsub * 4 + ((size_t)p->nlist + 1) * 8 +
           p->n * (8 + (size_t)p->m);
}

/* Derived arrays: transposed codebooks, longest list. */
static int derive(ivfpq *p)
{
    free(p->cbt);
    p->cbt = NULL;
    p->max_list = 0;
    for (uint32_t l = 0; l < p->nlist; l++) {
        size_t len = p->offsets[l + 1] - p->offsets[l];
        if (len > p->max_list) p->max_list = len;
    }
    size_t nc = (size_t)p->m * IVFPQ_KSUB * p->dsub;
    p->cbt = malloc((nc ? nc : 1) * sizeof *p->cbt);
    if (!p->cbt) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    for (uint32_t s = 0; s < p->m; s++)
        for (int j = 0; j < IVFPQ_KSUB; j++)
            for (uint32_t u = 0; u < p->dsub; u++)
                p->cbt[((size_t)s * p->dsub + u) * IVFPQ_KSUB + j] =
                    p->codebooks[((size_t)s * IVFPQ_KSUB + j) * p->dsub + u];
    return 0;
}

/* The divisor of dim nearest dim/4 (4 dimensions per byte), the larger on a tie. */
static uint32_t default_m(uint32_t dim)
{
    uint32_t best = 1;
    double want = dim / 4.0, bd = INFINITY;
    for (uint32_t m = 1; m <= dim; m++)
        if (dim % m == 0 && fabs(m - want) <= bd) {
            bd = fabs(m - want);
            best = m;
        }
    return best;
}

static void init_shape(ivfpq *p, uint32_t dim, int metric, uint32_t nlist, uint32_t m,
                       uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->dim = dim;
    p->metric = metric;
    p->nlist = nlist;
    p->m = m;
    p->dsub = m ? dim / m : 0;
    p->seed = seed;
    dist_fn_init(&p->df, metric, dim);
}

int ivfpq_build(ivfpq *p, uint32_t dim, int metric, const float *const *vecs, const uint64_t *ids,
                size_t count, uint32_t nlist, uint32_t m, uint64_t seed, int threads)
{
    int nthr = threads > 0 ? threads : omp_get_max_threads();
    if (count < DP_IVFPQ_MIN_ROWS) {
        /* too little to train on: an empty structure, searched exactly */
        init_shape(p, dim, metric, 0, 0, seed);
        p->offsets = p->own[3] = calloc(1, sizeof(uint64_t));
        return p->offsets ? derive(p) : dp_set_error(DP_ERR_NOMEM, "out of memory");
    }
    if (!nlist) {
        double v = round(4 * sqrt((double)count));
        nlist = (uint32_t)(v > (double)count / 32 ? (double)count / 32 : v);
        if (nlist < 1) nlist = 1;
    }
    if (!m) m = default_m(dim);
    init_shape(p, dim, metric, nlist, m, seed);
    int rc = 0;
    size_t ns = (size_t)nlist * COARSE_PER_LIST;
    if (ns < COARSE_MIN_SAMPLE) ns = COARSE_MIN_SAMPLE;
    if (ns > count) ns = count;
    size_t np = ns < PQ_SAMPLE ? ns : PQ_SAMPLE;
    uint32_t dsub = p->dsub;
    size_t *perm = malloc(count * sizeof *perm);
    float *S = malloc(ns * dim * sizeof *S);
    float *C = malloc((size_t)nlist * dim * sizeof *C);
    float *CB = malloc((size_t)m * IVFPQ_KSUB * dsub * sizeof *CB);
    int32_t *a = malloc(np * sizeof *a);
    const float **rows = malloc(np * sizeof *rows);
    if (!perm || !S || !C || !CB || !a || !rows) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory for IVF-PQ training on %zu rows", ns);
        goto fail;
    }
    /* seeded sample, in row order so the rows are read forwards */
    for (size_t i = 0; i < count; i++)
        perm[i] = i;
    uint64_t st = seed ^ 0x5851f42d4c957f2dull;
    for (size_t i = 0; i < ns; i++) {
        size_t j = i + (size_t)(splitmix(&st) % (count - i));
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < ns; i++)
        memcpy(S + i * dim, vecs[perm[i]], (size_t)dim * sizeof *S);
    if ((rc = kmeans(S, ns, dim, nlist, COARSE_ITERS, seed, nthr, C))) goto fail;
    /* sub-quantisers on the residuals of the sample's first np rows */
    for (size_t i = 0; i < np; i++)
        rows[i] = S + i * dim;
    if ((rc = assign(rows, np, dim, C, nlist, nthr, a))) goto fail;
    for (size_t i = 0; i < np; i++)
        for (uint32_t j = 0; j < dim; j++)
            S[i * dim + j] -= C[(size_t)a[i] * dim + j];
    /* one sub-quantiser per thread: their GEMMs are too small to share */
    volatile int err = 0;
#pragma omp parallel for num_threads(nthr) schedule(dynamic, 1)
    for (uint32_t s = 0; s < m; s++) {
        float *xs = malloc(np * dsub * sizeof *xs);
        int e = xs ? 0 : DP_ERR_NOMEM;
        if (!e && !err) {
            for (size_t i = 0; i < np; i++)
                memcpy(xs + i * dsub, S + i * dim + (size_t)s * dsub, dsub * sizeof *xs);
            e = kmeans(xs, np, dsub, IVFPQ_KSUB, PQ_ITERS, seed + 1 + s, 1,
                       CB + (size_t)s * IVFPQ_KSUB * dsub);
        }
        free(xs);
        if (e) err = e;
    }
    if (err) {
        rc = dp_set_error(err, "training the sub-quantisers failed (%s)",
                          err == DP_ERR_NOMEM ? "out of memory" : "sgemm");
        goto fail;
    }
    p->centroids = p->own[0] = C;
    p->codebooks = p->own[1] = CB;
    C = CB = NULL;
    uint64_t *off = calloc((size_t)nlist + 1, sizeof *off);
    if (!off) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    p->offsets = p->own[2] = off;
    if ((rc = derive(p))) goto fail;
    rc = ivfpq_add(p, vecs, ids, count, threads);
    if (rc) goto fail;
    free(perm);
    free(S);
    free(a);
    free(rows);
    return 0;
fail:
    free(perm);
    free(S);
    free(C);
    free(CB);
    free(a);
    free(rows);
    ivfpq_free(p);
    return rc;
}

/* Cell and code of every row, tile by tile on the worker threads. */
static int encode(const ivfpq *p, const float *const *vecs, size_t count, int nthr, int32_t *cell,
                  uint8_t *codes)
{
    int rc = assign(vecs, count, p->dim, p->centroids, p->nlist, nthr, cell);
    if (rc) return rc;
    uint32_t dim = p->dim, m = p->m, dsub = p->dsub;
    float *cbn = malloc((size_t)m * IVFPQ_KSUB * sizeof *cbn);
    if (!cbn) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    for (uint32_t s = 0; s < m; s++)
        sqnorms(p->codebooks + (size_t)s * IVFPQ_KSUB * dsub, IVFPQ_KSUB, dsub,
                cbn + (size_t)s * IVFPQ_KSUB);
    size_t nt = (count + TILE - 1) / TILE;
    volatile int err = 0;
#pragma omp parallel num_threads(nthr)
    {
        float *R = malloc((size_t)TILE * dim * sizeof *R);
        float *Xs = malloc((size_t)TILE * dsub * sizeof *Xs);
        float *G = malloc((size_t)TILE * IVFPQ_KSUB * sizeof *G);
        int32_t *o = malloc(TILE * sizeof *o);
        if (!R || !Xs || !G || !o) err = DP_ERR_NOMEM;
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < nt; t++) {
            if (err) continue;
            size_t r0 = t * TILE, nr = count - r0 < TILE ? count - r0 : TILE;
            for (size_t i = 0; i < nr; i++) {
                const float *x = vecs[r0 + i], *c = p->centroids + (size_t)cell[r0 + i] * dim;
                for (uint32_t j = 0; j < dim; j++)
                    R[i * dim + j] = x[j] - c[j];
            }
            for (uint32_t s = 0; s < m && !err; s++) {
                for (size_t i = 0; i < nr; i++)
                    memcpy(Xs + i * dsub, R + i * dim + (size_t)s * dsub, dsub * sizeof *Xs);
                if (nearest_tile(Xs, nr, dsub, p->codebooks + (size_t)s * IVFPQ_KSUB * dsub,
                                 cbn + (size_t)s * IVFPQ_KSUB, IVFPQ_KSUB, G, o)) {
                    err = DP_ERR_BACKEND;
                    break;
                }
                for (size_t i = 0; i < nr; i++)
                    codes[(r0 + i) * m + s] = (uint8_t)o[i];
            }
        }
        free(R);
        free(Xs);
        free(G);
        free(o);
    }
    free(cbn);
    if (err == DP_ERR_NOMEM) return dp_set_error(err, "out of memory");
    if (err) return dp_set_error(err, "sgemm failed while encoding");
    return 0;
}

int ivfpq_add(ivfpq *p, const float *const *vecs, const uint64_t *ids, size_t count, int threads)
{
    if (!count || !p->nlist) return 0;
    int nthr = threads > 0 ? threads : omp_get_max_threads();
    size_t m = p->m, n2 = p->n + count;
    int32_t *cell = malloc(count * sizeof *cell);
    uint8_t *nc = malloc(count * m);
    uint64_t *off = calloc((size_t)p->nlist + 1, sizeof *off);
    uint64_t *ids2 = malloc(n2 * sizeof *ids2);
    uint8_t *codes2 = malloc(n2 * m);
    uint64_t *fill = malloc((size_t)p->nlist * sizeof *fill);
    int rc = 0;
    if (!cell || !nc || !off || !ids2 || !codes2 || !fill) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory for %zu IVF-PQ entries", n2);
        goto done;
    }
    if ((rc = encode(p, vecs, count, nthr, cell, nc))) goto done;
    /* new lists: the old entries of each list, then the new ones in order */
    for (uint32_t l = 0; l < p->nlist; l++)
        off[l + 1] = p->offsets[l + 1] - p->offsets[l];
    for (size_t i = 0; i < count; i++)
        off[cell[i] + 1]++;
    for (uint32_t l = 0; l < p->nlist; l++)
        off[l + 1] += off[l];
    for (uint32_t l = 0; l < p->nlist; l++) {
        size_t o = p->offsets[l], len = p->offsets[l + 1] - o;
        if (len) { /* a first build has no old lists (ids, codes are NULL) */
            memcpy(ids2 + off[l], p->ids + o, len * sizeof *ids2);
            memcpy(codes2 + off[l] * m, p->codes + o * m, len * m);
        }
        fill[l] = off[l] + len;
    }
    for (size_t i = 0; i < count; i++) {
        uint64_t at = fill[cell[i]]++;
        ids2[at] = ids[i];
        memcpy(codes2 + at * m, nc + i * m, m);
    }
    /* the quantisers of a mapped structure are copied so it can outlive the map */
    if (!p->own[0]) {
        float *C = malloc((size_t)p->nlist * p->dim * sizeof *C);
        float *CB = malloc((size_t)p->m * IVFPQ_KSUB * p->dsub * sizeof *CB);
        if (!C || !CB) {
            free(C);
            free(CB);
            rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(C, p->centroids, (size_t)p->nlist * p->dim * sizeof *C);
        memcpy(CB, p->codebooks, (size_t)p->m * IVFPQ_KSUB * p->dsub * sizeof *CB);
        p->centroids = p->own[0] = C;
        p->codebooks = p->own[1] = CB;
    }
    free(p->own[2]);
    free(p->own[3]);
    free(p->own[4]);
    p->offsets = p->own[2] = off;
    p->ids = p->own[3] = ids2;
    p->codes = p->own[4] = codes2;
    off = NULL;
    ids2 = NULL;
    codes2 = NULL;
    p->n = n2;
    rc = derive(p);
done:
    free(cell);
    free(nc);
    free(off);
    free(ids2);
    free(codes2);
    free(fill);
    return rc;
}

/* ---- search ------------------------------------------------------------------ */

int ivfpq_scratch_init(ivfpq_scratch *s, const ivfpq *p)
{
    memset(s, 0, sizeof *s);
    size_t nl = p->nlist ? p->nlist : 1;
    s->coarse = malloc(nl * sizeof *s->coarse);
    s->probe = malloc(nl * sizeof *s->probe);
    s->tab = malloc(((size_t)p->m * IVFPQ_KSUB + 1) * sizeof *s->tab);
    s->resid = malloc((size_t)p->dim * sizeof *s->resid);
    s->dl = malloc((p->max_list ? p->max_list : 1) * sizeof *s->dl);
    if (s->coarse && s->probe && s->tab && s->resid && s->dl) return 0;
    ivfpq_scratch_free(s);
    return DP_ERR_NOMEM;
}

void ivfpq_scratch_free(ivfpq_scratch *s)
{
    free(s->coarse);
    free(s->probe);
    free(s->tab);
    free(s->resid);
    free(s->dl);
    memset(s, 0, sizeof *s);
}

/* Max-heap of (d, id): the worst kept candidate on top; ties by id so the
 * result does not depend on the scan order. */
static inline bool worse(cand a, cand b)
{
    return a.d > b.d || (a.d == b.d && a.id > b.id);
}

static void heap_push(cand *h, size_t *n, size_t cap, cand c)
{
    size_t i;
    if (*n < cap) {
        i = (*n)++;
        while (i && worse(c, h[(i - 1) / 2])) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = c;
        return;
    }
    if (!worse(h[0], c)) return;
    i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, b = i;
        cand bc = c;
        if (l < *n && worse(h[l], bc)) b = l, bc = h[l];
        if (r < *n && worse(h[r], bc)) b = r, bc = h[r];
        if (b == i) break;
        h[i] = h[b];
        i = b;
    }
    h[i] = c;
}

static int cand_cmp(const void *a, const void *b)
{
    cand x = *(const cand *)a, y = *(const cand *)b;
    return worse(x, y) - worse(y, x);
}

size_t ivfpq_search(const ivfpq *p, const float *q, size_t nprobe, size_t cap, ivfpq_scratch *s,
                    hnsw_accept_fn accept, void *ctx, cand *out)
{
    if (!p->nlist || !cap) return 0;
    static const ivfpq_kern *kern;
    const ivfpq_kern *K = __atomic_load_n(&kern, __ATOMIC_ACQUIRE);
    if (!K) {
        K = ivfpq_kern_best();
        __atomic_store_n(&kern, K, __ATOMIC_RELEASE);
    }
    uint32_t dim = p->dim, m = p->m;
    /* cosine on unit vectors is half the squared L2 distance, and the L2
     * tables count each entry's quantisation error where dot tables do not */
    bool l2 = p->metric == DP_METRIC_L2 || p->metric == DP_METRIC_COSINE;
    if (l2) {
        p->df.ops->l2sq(q, p->centroids, p->nlist, dim, s->coarse);
    } else {
        p->df.ops->dot(q, p->centroids, p->nlist, dim, s->coarse);
        for (uint32_t l = 0; l < p->nlist; l++)
            s->coarse[l] = -s->coarse[l];
        /* for inner products the table does not depend on the cell */
        K->table_ip(q, p->cbt, m, p->dsub, s->tab);
    }
    if (nprobe > p->nlist) nprobe = p->nlist;
    size_t np = 0;
    for (uint32_t l = 0; l < p->nlist; l++)
        heap_push(s->probe, &np, nprobe, (cand){s->coarse[l], l});
    qsort(s->probe, np, sizeof *s->probe, cand_cmp);
    size_t nh = 0;
    for (size_t pi = 0; pi < np; pi++) {
        uint32_t l = s->probe[pi].id;
        size_t o = p->offsets[l], len = p->offsets[l + 1] - o;
        if (!len) continue;
        float bias;
        if (l2) {
            const float *c = p->centroids + (size_t)l * dim;
            for (uint32_t j = 0; j < dim; j++)
                s->resid[j] = q[j] - c[j];
            K->table_l2(s->resid, p->cbt, m, p->dsub, s->tab);
            bias = 0;
        } else {
            bias = p->df.bias + s->coarse[l];
        }
        K->scan(s->tab, p->codes + o * m, len, m, bias, s->dl);
        for (size_t i = 0; i < len; i++) {
            if (nh == cap && !(s->dl[i] < out[0].d)) continue;
            uint32_t node = (uint32_t)(o + i);
            if (accept && !accept(node, ctx)) continue;
            heap_push(out, &nh, cap, (cand){s->dl[i], node});
        }
    }
    qsort(out, nh, sizeof *out, cand_cmp);
    if (p->metric == DP_METRIC_COSINE)
        for (size_t i = 0; i < nh; i++)
            out[i].d *= 0.5f;
    return nh;
}

/* ---- sections -------------------------------------------------------------------- */

int ivfpq_save(const ivfpq *p, dp_index *ix)
{
    ivfpq_meta mt;
    memset(&mt, 0, sizeof mt);
    memcpy(mt.magic, IVFPQ_MAGIC, 8);
    mt.version = 1;
    mt.dim = p->dim;
    mt.metric = (uint32_t)p->metric;
    mt.nlist = p->nlist;
    mt.m = p->m;
    mt.ksub = IVFPQ_KSUB;
    mt.n = p->n;
    mt.seed = p->seed;
    int rc = dp_index_put_section(ix, "ivfpq.meta", &mt, sizeof mt);
    if (!rc)
        rc = dp_index_put_section(ix, "ivfpq.centroids", p->centroids,
                                  (size_t)p->nlist * p->dim * 4);
    if (!rc)
        rc = dp_index_put_section(ix, "ivfpq.codebooks", p->codebooks,
                                  (size_t)p->m * IVFPQ_KSUB * p->dsub * 4);
    if (!rc) rc = dp_index_put_section(ix, "ivfpq.offsets", p->offsets, ((size_t)p->nlist + 1) * 8);
    if (!rc) rc = dp_index_put_section(ix, "ivfpq.ids", p->ids, p->n * 8);
    if (!rc) rc = dp_index_put_section(ix, "ivfpq.codes", p->codes, p->n * p->m);
    return rc;
}

#define LERR(...) dp_set_error(DP_ERR_FORMAT, __VA_ARGS__)

int ivfpq_load(ivfpq *p, const dp_index *ix, bool verify)
{
    static const char *const names[] = {"ivfpq.meta",    "ivfpq.centroids", "ivfpq.codebooks",
                                        "ivfpq.offsets", "ivfpq.ids",       "ivfpq.codes"};
    const char *path = dp_index_path(ix);
    const void *d[6];
    size_t b[6];
    int rc = dp_index_get_section(ix, names[0], &d[0], &b[0]);
    if (rc) return rc;
    for (int i = 1; i < 6; i++)
        if (dp_index_get_section(ix, names[i], &d[i], &b[i]))
            return LERR("%s: IVF-PQ sections are incomplete (no %s)", path, names[i]);
    /* All but the codes are checked always (a bad offset or id misdirects
     * every search); a damaged code only misranks its own entry. */
    for (int i = 0; i < 6; i++)
        if ((i != 5 || verify) && (rc = dp_index_check_section(ix, names[i]))) return rc;
    ivfpq_meta mt;
    if (b[0] != sizeof mt) return LERR("%s: ivfpq.meta has %zu bytes", path, b[0]);
    memcpy(&mt, d[0], sizeof mt);
    if (memcmp(mt.magic, IVFPQ_MAGIC, 8)) return LERR("%s: ivfpq.meta: bad magic", path);
    if (mt.version != 1)
        return dp_set_error(DP_ERR_UNSUPPORTED, "%s: IVF-PQ version %u is not supported", path,
                            mt.version);
    if (mt.dim != dp_index_dim(ix) || (int)mt.metric != dp_index_metric(ix))
        return LERR("%s: the IVF-PQ structure was built for another dimension or metric", path);
    if (mt.ksub != IVFPQ_KSUB)
        return LERR("%s: ivfpq.meta: %u centroids per sub-quantiser", path, mt.ksub);
    if (mt.nlist > IVFPQ_MAX_NLIST || (mt.nlist && (!mt.m || mt.m > mt.dim || mt.dim % mt.m)) ||
        (!mt.nlist && (mt.m || mt.n)))
        return LERR("%s: ivfpq.meta: nlist = %u, m = %u for dimension %u", path, mt.nlist, mt.m,
                    mt.dim);
    init_shape(p, mt.dim, (int)mt.metric, mt.nlist, mt.m, mt.seed);
    size_t ncodes;
    if (mt.n > UINT32_MAX - 1 || __builtin_mul_overflow((size_t)mt.n, (size_t)mt.m, &ncodes) ||
        b[1] != (size_t)mt.nlist * mt.dim * 4 || b[2] != (size_t)mt.m * IVFPQ_KSUB * p->dsub * 4 ||
        b[3] != ((size_t)mt.nlist + 1) * 8 || b[4] / 8 != mt.n || b[4] % 8 || b[5] != ncodes)
        return LERR("%s: IVF-PQ sections disagree with ivfpq.meta on their sizes", path);
    const uint64_t *off = d[3];
    if (off[0] != 0 || off[mt.nlist] != mt.n)
        return LERR("%s: ivfpq.offsets do not span the %llu entries", path,
                    (unsigned long long)mt.n);
    for (uint32_t l = 0; l < mt.nlist; l++)
        if (off[l + 1] < off[l])
            return LERR("%s: ivfpq.offsets: list %u ends before it starts", path, l);
    p->n = (size_t)mt.n;
    p->centroids = d[1];
    p->codebooks = d[2];
    p->offsets = off;
    p->ids = d[4];
    p->codes = d[5];
    return derive(p);
}
