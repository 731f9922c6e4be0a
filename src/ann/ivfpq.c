/* IVF-PQ: k-means training (GEMM assignment), encoding into inverted lists,
 * the ADC search and the ivfpq.* sections. Layout in ann_internal.h.
 *
 * Every assignment (k-means steps, coarse cells, sub-quantiser codes) runs
 * over fixed tiles of 256 rows, one GEMM per tile on one thread, and every
 * sum that forms a centroid is taken serially in row order: the trained
 * quantisers and the codes do not depend on the thread count. */
#include "ann_internal.h"

#include "util/util.h"

#include <lapack.h>
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
/* Rotation updates after the eigenvalue-allocation start. Measured on
 * clustered:100000:100, m = 25, recall@10 at nprobe 8 (id overlap): 1 update
 * 0.741, 2: 0.743, 4: 0.743, 8: 0.739, at 15, 17, 20, 45 CPU-s of build:
 * the start does most of the work on spectra like this one. */
#define OPQ_ITERS 2
#define OPQ_PQ_ITERS 4 /* k-means steps between two of them */

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

/* Inside a worker: the GEMM library would take every core for a call made
 * from a team of one (not an active parallel region) and split the sum
 * over k differently, so a 1-thread build would differ in the last bits. */
static void gemm_one_thread(void)
{
    omp_set_num_threads(1);
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
        gemm_one_thread();
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
 * rows as the start unless warm (C holds the start). An emptied cell takes
 * half of the largest one (its centre nudged both ways), so all k centres
 * stay in use. */
static int kmeans(const float *X, size_t n, uint32_t d, uint32_t k, int iters, uint64_t seed,
                  int nthr, bool warm, float *C)
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
    for (uint32_t c = 0; c < k && !warm; c++) {
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

/* Sub-quantisers on n rows of Y (n x dr), one per thread: their GEMMs are
 * too small to share. */
static int train_pq(const float *Y, size_t n, uint32_t dr, uint32_t m, uint32_t dsub, int iters,
                    uint64_t seed, int nthr, bool warm, float *CB)
{
    volatile int err = 0;
#pragma omp parallel for num_threads(nthr) schedule(dynamic, 1)
    for (uint32_t s = 0; s < m; s++) {
        float *xs = malloc(n * dsub * sizeof *xs);
        int e = xs ? 0 : DP_ERR_NOMEM;
        if (!e && !err) {
            for (size_t i = 0; i < n; i++)
                memcpy(xs + i * dsub, Y + i * dr + (size_t)s * dsub, dsub * sizeof *xs);
            e = kmeans(xs, n, dsub, IVFPQ_KSUB, iters, seed + 1 + s, 1, warm,
                       CB + (size_t)s * IVFPQ_KSUB * dsub);
        }
        free(xs);
        if (e) err = e;
    }
    if (err)
        return dp_set_error(err, "training the sub-quantisers failed (%s)",
                            err == DP_ERR_NOMEM ? "out of memory" : "sgemm");
    return 0;
}

/* Codes of nr <= TILE residual rows R (nr x m*dsub) into codes (m per row).
 * cbn: squared norms of the codebooks; Xs (TILE x dsub), G (TILE x 256), o
 * (TILE) are the caller's scratch. */
static int pq_codes_tile(const float *R, size_t nr, uint32_t m, uint32_t dsub, const float *CB,
                         const float *cbn, float *Xs, float *G, int32_t *o, uint8_t *codes)
{
    size_t dr = (size_t)m * dsub;
    for (uint32_t s = 0; s < m; s++) {
        for (size_t i = 0; i < nr; i++)
            memcpy(Xs + i * dsub, R + i * dr + (size_t)s * dsub, dsub * sizeof *Xs);
        if (nearest_tile(Xs, nr, dsub, CB + (size_t)s * IVFPQ_KSUB * dsub,
                         cbn + (size_t)s * IVFPQ_KSUB, IVFPQ_KSUB, G, o))
            return DP_ERR_BACKEND;
        for (size_t i = 0; i < nr; i++)
            codes[i * m + s] = (uint8_t)o[i];
    }
    return 0;
}

static float *codebook_norms(const float *CB, uint32_t m, uint32_t dsub)
{
    float *cbn = malloc((size_t)m * IVFPQ_KSUB * sizeof *cbn);
    if (cbn)
        for (uint32_t s = 0; s < m; s++)
            sqnorms(CB + (size_t)s * IVFPQ_KSUB * dsub, IVFPQ_KSUB, dsub,
                    cbn + (size_t)s * IVFPQ_KSUB);
    return cbn;
}

/* Y = X R^T (n x dr) for X n x dim, R dr x dim, over fixed tiles. */
static int rotate_rows(const float *X, size_t n, uint32_t dim, const float *R, uint32_t dr,
                       int nthr, float *Y)
{
    size_t nt = (n + TILE - 1) / TILE;
    volatile int err = 0;
#pragma omp parallel num_threads(nthr)
    {
        gemm_one_thread();
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < nt; t++) {
            size_t r0 = t * TILE, nr = n - r0 < TILE ? n - r0 : TILE;
            if (!err && dp_sgemm_nt(nr, dr, dim, X + r0 * dim, dim, R, dim, Y + r0 * dr, dr))
                err = 1;
        }
    }
    return err ? dp_set_error(DP_ERR_BACKEND, "sgemm failed in the OPQ rotation") : 0;
}

/* out = A^T B (da x db, double) over n rows of A (n x da) and B (n x db):
 * fixed chunks of rows, one GEMM each, summed in chunk order. */
#define CHUNK 1024
static int cross(const float *A, uint32_t da, const float *B, uint32_t db, size_t n, int nthr,
                 double *out)
{
    size_t nch = (n + CHUNK - 1) / CHUNK, blk = (size_t)da * db;
    float *P = malloc(nch * blk * sizeof *P);
    if (!P) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    volatile int err = 0;
#pragma omp parallel num_threads(nthr)
    {
        gemm_one_thread();
        float *At = malloc((size_t)da * CHUNK * sizeof *At);
        float *Bt = malloc((size_t)db * CHUNK * sizeof *Bt);
        if (!At || !Bt) err = DP_ERR_NOMEM;
#pragma omp for schedule(dynamic, 1)
        for (size_t c = 0; c < nch; c++) {
            if (err) continue;
            size_t r0 = c * CHUNK, nr = n - r0 < CHUNK ? n - r0 : CHUNK;
            for (size_t i = 0; i < nr; i++) {
                for (uint32_t j = 0; j < da; j++)
                    At[j * nr + i] = A[(r0 + i) * da + j];
                for (uint32_t j = 0; j < db; j++)
                    Bt[j * nr + i] = B[(r0 + i) * db + j];
            }
            if (dp_sgemm_nt(da, db, nr, At, nr, Bt, nr, P + c * blk, db)) err = DP_ERR_BACKEND;
        }
        free(At);
        free(Bt);
    }
    if (!err) {
        memset(out, 0, blk * sizeof *out);
        for (size_t c = 0; c < nch; c++)
            for (size_t j = 0; j < blk; j++)
                out[j] += P[c * blk + j];
    }
    free(P);
    if (err == DP_ERR_NOMEM) return dp_set_error(err, "out of memory");
    return err ? dp_set_error(err, "sgemm failed in the OPQ training") : 0;
}

/* Parametric OPQ start (Ge et al., eigenvalue allocation): the principal
 * axes of the residuals, dealt round by round to the m sub-spaces so that
 * each round's largest variance joins the sub-space whose product of
 * variances is smallest: every sub-quantiser gets a similar share of the
 * variance instead of the first ones getting all of it. Slots beyond dim
 * (padding up to m * dsub) stay zero rows. */
static int opq_init(const float *X, size_t n, uint32_t dim, uint32_t m, uint32_t dsub, int nthr,
                    float *R)
{
    uint32_t dr = m * dsub;
    int rc = 0;
    double *cov = malloc((size_t)dim * dim * sizeof *cov), *w = malloc(dim * sizeof *w);
    double *lp = calloc(m, sizeof *lp), *work = NULL;
    uint32_t *ord = malloc(m * sizeof *ord);
    if (!cov || !w || !lp || !ord) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = cross(X, dim, X, dim, n, nthr, cov))) goto done;
    lapack_int N = (lapack_int)dim, lwork = -1, info = 0;
    double wq = 0;
    LAPACK_dsyev("V", "U", &N, cov, &N, w, &wq, &lwork, &info);
    lwork = (lapack_int)wq;
    if (info || !(work = malloc((size_t)(lwork > 1 ? lwork : 1) * sizeof *work))) {
        rc = dp_set_error(info ? DP_ERR_BACKEND : DP_ERR_NOMEM, "OPQ: dsyev workspace query");
        goto done;
    }
    LAPACK_dsyev("V", "U", &N, cov, &N, w, work, &lwork, &info);
    if (info) {
        rc = dp_set_error(DP_ERR_BACKEND, "OPQ: dsyev failed (info %d)", (int)info);
        goto done;
    }
    /* column i of the column-major result (ascending) is axis i */
    double floor = (w[dim - 1] > 0 ? w[dim - 1] : 1) * 1e-12;
    memset(R, 0, (size_t)dr * dim * sizeof *R);
    for (uint32_t r = 0; r < dsub; r++) {
        for (uint32_t b = 0; b < m; b++)
            ord[b] = b;
        for (uint32_t i = 1; i < m; i++) /* stable insertion sort by log product */
            for (uint32_t j = i; j > 0 && lp[ord[j]] < lp[ord[j - 1]]; j--) {
                uint32_t t = ord[j];
                ord[j] = ord[j - 1];
                ord[j - 1] = t;
            }
        for (uint32_t i = 0; i < m; i++) {
            uint32_t t = r * m + i;
            if (t >= dim) break;
            uint32_t ax = dim - 1 - t, b = ord[i];
            float *row = R + ((size_t)b * dsub + r) * dim;
            for (uint32_t j = 0; j < dim; j++)
                row[j] = (float)cov[(size_t)ax * dim + j];
            lp[b] += log(w[ax] > floor ? w[ax] : floor);
        }
    }
done:
    free(cov);
    free(w);
    free(lp);
    free(work);
    free(ord);
    return rc;
}

/* The orthogonal Procrustes step: the R (dr x dim, orthonormal columns)
 * nearest to mapping X onto its reconstruction Yh maximises tr(R X^T Yh);
 * with M = Yh^T X = U S V^T that is R = U V^T. M row-major is M^T
 * column-major, whose SVD gives V as left and U as right vectors. */
static int procrustes(const double *M, uint32_t dr, uint32_t dim, float *R)
{
    lapack_int mm = (lapack_int)dim, nn = (lapack_int)dr, lwork = -1, info = 0;
    double *A = malloc((size_t)dr * dim * sizeof *A), *s = malloc(dim * sizeof *s);
    double *u = malloc((size_t)dim * dim * sizeof *u), *vt = malloc((size_t)dim * dr * sizeof *vt);
    double *work = NULL, wq = 0;
    int rc = 0;
    if (!A || !s || !u || !vt) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(A, M, (size_t)dr * dim * sizeof *A);
    LAPACK_dgesvd("S", "S", &mm, &nn, A, &mm, s, u, &mm, vt, &mm, &wq, &lwork, &info);
    lwork = (lapack_int)wq;
    if (info || !(work = malloc((size_t)(lwork > 1 ? lwork : 1) * sizeof *work))) {
        rc = dp_set_error(info ? DP_ERR_BACKEND : DP_ERR_NOMEM, "OPQ: dgesvd workspace query");
        goto done;
    }
    LAPACK_dgesvd("S", "S", &mm, &nn, A, &mm, s, u, &mm, vt, &mm, work, &lwork, &info);
    if (info) {
        rc = dp_set_error(DP_ERR_BACKEND, "OPQ: dgesvd failed (info %d)", (int)info);
        goto done;
    }
    for (uint32_t i = 0; i < dr; i++)
        for (uint32_t j = 0; j < dim; j++) {
            double v = 0;
            for (uint32_t k = 0; k < dim; k++)
                v += vt[k + (size_t)i * dim] * u[j + (size_t)k * dim];
            R[(size_t)i * dim + j] = (float)v;
        }
done:
    free(A);
    free(s);
    free(u);
    free(vt);
    free(work);
    return rc;
}

/* Reconstruction of n rows of Y from their codes, over fixed tiles. */
static int pq_reconstruct(const float *Y, size_t n, uint32_t m, uint32_t dsub, const float *CB,
                          int nthr, float *Yh)
{
    float *cbn = codebook_norms(CB, m, dsub);
    if (!cbn) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    size_t nt = (n + TILE - 1) / TILE, dr = (size_t)m * dsub;
    volatile int err = 0;
#pragma omp parallel num_threads(nthr)
    {
        gemm_one_thread();
        float *Xs = malloc((size_t)TILE * dsub * sizeof *Xs);
        float *G = malloc((size_t)TILE * IVFPQ_KSUB * sizeof *G);
        int32_t *o = malloc(TILE * sizeof *o);
        uint8_t *c = malloc((size_t)TILE * m);
        if (!Xs || !G || !o || !c) err = DP_ERR_NOMEM;
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < nt; t++) {
            if (err) continue;
            size_t r0 = t * TILE, nr = n - r0 < TILE ? n - r0 : TILE;
            if (pq_codes_tile(Y + r0 * dr, nr, m, dsub, CB, cbn, Xs, G, o, c)) {
                err = DP_ERR_BACKEND;
                continue;
            }
            for (size_t i = 0; i < nr; i++)
                for (uint32_t s = 0; s < m; s++)
                    memcpy(Yh + (r0 + i) * dr + (size_t)s * dsub,
                           CB + ((size_t)s * IVFPQ_KSUB + c[i * m + s]) * dsub, dsub * sizeof *Yh);
        }
        free(Xs);
        free(G);
        free(o);
        free(c);
    }
    free(cbn);
    if (err == DP_ERR_NOMEM) return dp_set_error(err, "out of memory");
    return err ? dp_set_error(err, "sgemm failed while encoding") : 0;
}

/* OPQ (Ge et al. 2013, non-parametric): from the eigenvalue-allocation
 * start, alternate training the sub-quantisers on the rotated residuals and
 * the Procrustes rotation that best maps the residuals onto their
 * reconstructions; then train the sub-quantisers in full on the last
 * rotation. X: n residual rows (n x dim). */
static int opq_train(const float *X, size_t n, uint32_t dim, uint32_t m, uint32_t dsub,
                     uint64_t seed, int nthr, float *R, float *CB)
{
    uint32_t dr = m * dsub;
    float *Y = malloc(n * dr * sizeof *Y), *Yh = malloc(n * dr * sizeof *Yh);
    double *M = malloc((size_t)dr * dim * sizeof *M);
    int rc = 0;
    if (!Y || !Yh || !M) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory for OPQ training on %zu rows", n);
        goto done;
    }
    if ((rc = opq_init(X, n, dim, m, dsub, nthr, R))) goto done;
    for (int it = 0; it < OPQ_ITERS; it++) {
        if ((rc = rotate_rows(X, n, dim, R, dr, nthr, Y))) goto done;
        if ((rc = train_pq(Y, n, dr, m, dsub, it ? OPQ_PQ_ITERS : 2 * OPQ_PQ_ITERS, seed, nthr,
                           it > 0, CB)))
            goto done;
        if ((rc = pq_reconstruct(Y, n, m, dsub, CB, nthr, Yh))) goto done;
        if ((rc = cross(Yh, dr, X, dim, n, nthr, M))) goto done;
        if ((rc = procrustes(M, dr, dim, R))) goto done;
    }
    if ((rc = rotate_rows(X, n, dim, R, dr, nthr, Y))) goto done;
    rc = train_pq(Y, n, dr, m, dsub, PQ_ITERS, seed, nthr, true, CB);
done:
    free(Y);
    free(Yh);
    free(M);
    return rc;
}

/* ---- build, add ---------------------------------------------------------------- */

static void own_free(ivfpq *p)
{
    for (int i = 0; i < 8; i++) {
        free(p->own[i]);
        p->own[i] = NULL;
    }
}

void ivfpq_free(ivfpq *p)
{
    own_free(p);
    free(p->cbt);
    free(p->blk0);
    free(p->chunk_list);
    memset(p, 0, sizeof *p);
}

size_t ivfpq_bytes(const ivfpq *p)
{
    size_t idb = p->ids ? p->n * 8 : p->nblk * (8 + IVFPQ_BLK * 2) + p->nraw * 8;
    return sizeof(ivfpq_meta) + (size_t)p->nlist * p->dr * 4 +
           (size_t)p->m * IVFPQ_KSUB * p->dsub * 4 + ((size_t)p->nlist + 1) * 8 +
           p->n * (size_t)p->m + idb + (p->rot ? (size_t)p->dr * p->dim * 4 : 0);
}

/* Id blocks of the lists off describes: each list's last one may be short. */
static size_t count_blocks(const uint64_t *off, uint32_t nlist)
{
    size_t nb = 0;
    for (uint32_t l = 0; l < nlist; l++)
        nb += (off[l + 1] - off[l] + IVFPQ_BLK - 1) / IVFPQ_BLK;
    return nb;
}

/* Id of entry j of block b (j below the block's length). */
static inline uint64_t block_id(const ivfpq *p, size_t b, size_t j)
{
    uint64_t h = p->idhead[b];
    if (h & IVFPQ_RAW) return p->idraw[(h & ~IVFPQ_RAW) + j];
    const uint16_t *dl = p->iddelta + b * IVFPQ_BLK;
    for (size_t i = 1; i <= j; i++)
        h += dl[i];
    return h;
}

uint64_t ivfpq_id(const ivfpq *p, size_t node)
{
    if (p->ids) return p->ids[node];
    /* the list holding node: the last l with off[l] <= node (empty lists
     * share their start with the next one), between the lists of the
     * chunk's first entry and of the next chunk's: usually one or two */
    size_t c = node / IVFPQ_CHUNK;
    size_t lo = p->chunk_list[c], hi = (size_t)p->chunk_list[c + 1] + 1;
    if (hi > p->nlist) hi = p->nlist;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->offsets[mid] <= node)
            lo = mid;
        else
            hi = mid;
    }
    size_t pos = node - p->offsets[lo];
    return block_id(p, p->blk0[lo] + pos / IVFPQ_BLK, pos % IVFPQ_BLK);
}

void ivfpq_ids(const ivfpq *p, uint64_t *out)
{
    if (p->ids) {
        if (p->n) memcpy(out, p->ids, p->n * sizeof *out);
        return;
    }
    size_t b = 0;
    for (uint32_t l = 0; l < p->nlist; l++)
        for (uint64_t s = p->offsets[l]; s < p->offsets[l + 1]; s += IVFPQ_BLK, b++) {
            size_t len = p->offsets[l + 1] - s < IVFPQ_BLK ? p->offsets[l + 1] - s : IVFPQ_BLK;
            uint64_t h = p->idhead[b];
            if (h & IVFPQ_RAW) {
                memcpy(out + s, p->idraw + (h & ~IVFPQ_RAW), len * sizeof *out);
                continue;
            }
            const uint16_t *dl = p->iddelta + b * IVFPQ_BLK;
            out[s] = h;
            for (size_t j = 1; j < len; j++)
                out[s + j] = out[s + j - 1] + dl[j];
        }
}

/* Blocks of ids (n entries in list order, ascending within each list) into
 * heap arrays; a block whose ids do not ascend by gaps below 2^16 from a
 * first id below 2^63 is kept raw. */
static int pack_ids(const uint64_t *off, uint32_t nlist, const uint64_t *ids, uint64_t **head_out,
                    uint16_t **delta_out, uint64_t **raw_out, size_t *nblk_out, size_t *nraw_out)
{
    size_t nblk = count_blocks(off, nlist), nraw = 0, b = 0;
    uint64_t *head = malloc((nblk ? nblk : 1) * sizeof *head), *raw = NULL;
    uint16_t *delta = calloc(nblk ? nblk * IVFPQ_BLK : 1, sizeof *delta);
    if (!head || !delta) goto nomem;
    for (uint32_t l = 0; l < nlist; l++)
        for (uint64_t s = off[l]; s < off[l + 1]; s += IVFPQ_BLK, b++) {
            size_t len = off[l + 1] - s < IVFPQ_BLK ? off[l + 1] - s : IVFPQ_BLK;
            bool israw = ids[s] >= IVFPQ_RAW;
            for (size_t j = 1; j < len && !israw; j++)
                israw = ids[s + j] < ids[s + j - 1] || ids[s + j] - ids[s + j - 1] > UINT16_MAX;
            if (israw) {
                head[b] = IVFPQ_RAW | nraw;
                nraw += len;
                continue;
            }
            head[b] = ids[s];
            for (size_t j = 1; j < len; j++)
                delta[b * IVFPQ_BLK + j] = (uint16_t)(ids[s + j] - ids[s + j - 1]);
        }
    if (!(raw = malloc((nraw ? nraw : 1) * sizeof *raw))) goto nomem;
    b = 0;
    for (uint32_t l = 0; l < nlist; l++)
        for (uint64_t s = off[l]; s < off[l + 1]; s += IVFPQ_BLK, b++)
            if (head[b] & IVFPQ_RAW) {
                size_t len = off[l + 1] - s < IVFPQ_BLK ? off[l + 1] - s : IVFPQ_BLK;
                memcpy(raw + (head[b] & ~IVFPQ_RAW), ids + s, len * sizeof *raw);
            }
    *head_out = head;
    *delta_out = delta;
    *raw_out = raw;
    *nblk_out = nblk;
    *nraw_out = nraw;
    return 0;
nomem:
    free(head);
    free(delta);
    free(raw);
    return dp_set_error(DP_ERR_NOMEM, "out of memory for the ids of %llu IVF-PQ entries",
                        (unsigned long long)off[nlist]);
}

/* Derived arrays: transposed codebooks, longest list, first id block of
 * each list. */
static int derive(ivfpq *p)
{
    free(p->cbt);
    p->cbt = NULL;
    free(p->blk0);
    p->blk0 = NULL;
    free(p->chunk_list);
    p->chunk_list = NULL;
    p->max_list = 0;
    for (uint32_t l = 0; l < p->nlist; l++) {
        size_t len = p->offsets[l + 1] - p->offsets[l];
        if (len > p->max_list) p->max_list = len;
    }
    if (!p->ids) {
        p->blk0 = malloc(((size_t)p->nlist + 1) * sizeof *p->blk0);
        if (!p->blk0) return dp_set_error(DP_ERR_NOMEM, "out of memory");
        p->blk0[0] = 0;
        for (uint32_t l = 0; l < p->nlist; l++)
            p->blk0[l + 1] =
                p->blk0[l] + (p->offsets[l + 1] - p->offsets[l] + IVFPQ_BLK - 1) / IVFPQ_BLK;
        /* entry c * IVFPQ_CHUNK's list, for every chunk and one past the
         * last (clamped to the last entry) */
        size_t nch = p->n / IVFPQ_CHUNK + 2;
        p->chunk_list = malloc(nch * sizeof *p->chunk_list);
        if (!p->chunk_list) return dp_set_error(DP_ERR_NOMEM, "out of memory");
        uint32_t l = 0;
        for (size_t c = 0; c < nch; c++) {
            size_t e = c * IVFPQ_CHUNK < p->n ? c * IVFPQ_CHUNK : (p->n ? p->n - 1 : 0);
            while (l + 1 < p->nlist && p->offsets[l + 1] <= e)
                l++;
            p->chunk_list[c] = l;
        }
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
                       uint32_t flags, uint64_t seed);

/* With OPQ any m works, so the default fills a tenth of the raw f32 size
 * (codes, ids, centroids, codebooks and rotation together): the most bytes
 * per vector, hence the best recall, at a 10x saving. Capped at dim/2 (two
 * dimensions per byte); below dim/8 (tiny sets, where the quantisers alone
 * outweigh a tenth) it stays at dim/8. The id blocks are counted at their
 * most (every list ending in a block of one entry) and none raw: the index
 * numbers its rows densely, so a gap of 2^16 within a list needs a cell
 * that holds almost nothing over 65536 consecutive ids. */
static uint32_t default_m_opq(uint32_t dim, uint32_t nlist, size_t count)
{
    uint32_t lo = dim / 8 ? dim / 8 : 1, best = lo;
    double budget = (double)count * dim * 4 / 10;
    for (uint32_t m = lo; m <= (dim / 2 ? dim / 2 : 1); m++) {
        ivfpq t;
        init_shape(&t, dim, DP_METRIC_L2, nlist, m, IVFPQ_OPQ, 0);
        t.n = count;
        t.nblk = (count + (size_t)(IVFPQ_BLK - 1) * nlist) / IVFPQ_BLK;
        t.rot = (const float *)&t; /* counted, never read */
        if ((double)ivfpq_bytes(&t) <= budget) best = m;
    }
    return best;
}

static void init_shape(ivfpq *p, uint32_t dim, int metric, uint32_t nlist, uint32_t m,
                       uint32_t flags, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->dim = dim;
    p->metric = metric;
    p->nlist = nlist;
    p->m = m;
    p->flags = flags;
    /* OPQ pads the rotated space up to a multiple of m */
    p->dsub = m ? (flags & IVFPQ_OPQ ? (dim + m - 1) / m : dim / m) : 0;
    p->dr = m ? m * p->dsub : dim;
    p->seed = seed;
    dist_fn_init(&p->df, metric, dim);
}

int ivfpq_build(ivfpq *p, uint32_t dim, int metric, const float *const *vecs, const uint64_t *ids,
                size_t count, uint32_t nlist, uint32_t m, uint32_t flags, uint64_t seed,
                int threads)
{
    int nthr = threads > 0 ? threads : omp_get_max_threads();
    if (count < DP_IVFPQ_MIN_ROWS) {
        /* too little to train on: an empty structure, searched exactly */
        init_shape(p, dim, metric, 0, 0, 0, seed);
        p->offsets = p->own[2] = calloc(1, sizeof(uint64_t));
        return p->offsets ? derive(p) : dp_set_error(DP_ERR_NOMEM, "out of memory");
    }
    if (!nlist) {
        double v = round(4 * sqrt((double)count));
        nlist = (uint32_t)(v > (double)count / 32 ? (double)count / 32 : v);
        if (nlist < 1) nlist = 1;
    }
    if (!m) m = flags & IVFPQ_OPQ ? default_m_opq(dim, nlist, count) : default_m(dim);
    init_shape(p, dim, metric, nlist, m, flags, seed);
    int rc = 0;
    size_t ns = (size_t)nlist * COARSE_PER_LIST;
    if (ns < COARSE_MIN_SAMPLE) ns = COARSE_MIN_SAMPLE;
    if (ns > count) ns = count;
    size_t np = ns < PQ_SAMPLE ? ns : PQ_SAMPLE;
    uint32_t dsub = p->dsub, dr = p->dr;
    size_t *perm = malloc(count * sizeof *perm);
    float *S = malloc(ns * dim * sizeof *S);
    float *C = malloc((size_t)nlist * dim * sizeof *C);
    float *CB = malloc((size_t)m * IVFPQ_KSUB * dsub * sizeof *CB);
    float *R = flags & IVFPQ_OPQ ? malloc((size_t)dr * dim * sizeof *R) : NULL;
    float *Cr = flags & IVFPQ_OPQ ? malloc((size_t)nlist * dr * sizeof *Cr) : NULL;
    int32_t *a = malloc(np * sizeof *a);
    const float **rows = malloc(np * sizeof *rows);
    if (!perm || !S || !C || !CB || !a || !rows || ((flags & IVFPQ_OPQ) && (!R || !Cr))) {
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
    if ((rc = kmeans(S, ns, dim, nlist, COARSE_ITERS, seed, nthr, false, C))) goto fail;
    /* sub-quantisers on the residuals of the sample's first np rows */
    for (size_t i = 0; i < np; i++)
        rows[i] = S + i * dim;
    if ((rc = assign(rows, np, dim, C, nlist, nthr, a))) goto fail;
    for (size_t i = 0; i < np; i++)
        for (uint32_t j = 0; j < dim; j++)
            S[i * dim + j] -= C[(size_t)a[i] * dim + j];
    if (flags & IVFPQ_OPQ) {
        /* the rotation is learnt on residuals (what the codes hold); the
         * centroids move into the rotated space with it */
        if ((rc = opq_train(S, np, dim, m, dsub, seed, nthr, R, CB))) goto fail;
        if ((rc = rotate_rows(C, nlist, dim, R, dr, nthr, Cr))) goto fail;
        free(C);
        C = Cr;
        Cr = NULL;
        p->rot = p->own[5] = R;
        R = NULL;
    } else if ((rc = train_pq(S, np, dim, m, dsub, PQ_ITERS, seed, nthr, false, CB))) {
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
    free(R);
    free(Cr);
    free(a);
    free(rows);
    ivfpq_free(p);
    return rc;
}

/* Cell and code of every row, tile by tile on the worker threads: rotate
 * (OPQ), nearest centroid, residual, nearest sub-centroids. */
static int encode(const ivfpq *p, const float *const *vecs, size_t count, int nthr, int32_t *cell,
                  uint8_t *codes)
{
    uint32_t dim = p->dim, dr = p->dr, m = p->m, dsub = p->dsub;
    float *cbn = codebook_norms(p->codebooks, m, dsub);
    float *cn = malloc((size_t)p->nlist * sizeof *cn);
    if (!cbn || !cn) {
        free(cbn);
        free(cn);
        return dp_set_error(DP_ERR_NOMEM, "out of memory");
    }
    sqnorms(p->centroids, p->nlist, dr, cn);
    size_t nt = (count + TILE - 1) / TILE;
    volatile int err = 0;
#pragma omp parallel num_threads(nthr)
    {
        gemm_one_thread();
        float *X = malloc((size_t)TILE * dim * sizeof *X);
        float *Y = p->rot ? malloc((size_t)TILE * dr * sizeof *Y) : X;
        float *Xs = malloc((size_t)TILE * dsub * sizeof *Xs);
        float *G =
            malloc((size_t)TILE * (p->nlist > IVFPQ_KSUB ? p->nlist : IVFPQ_KSUB) * sizeof *G);
        int32_t *o = malloc(TILE * sizeof *o);
        if (!X || !Y || !Xs || !G || !o) err = DP_ERR_NOMEM;
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < nt; t++) {
            if (err) continue;
            size_t r0 = t * TILE, nr = count - r0 < TILE ? count - r0 : TILE;
            for (size_t i = 0; i < nr; i++)
                memcpy(X + i * dim, vecs[r0 + i], (size_t)dim * sizeof *X);
            if ((p->rot && dp_sgemm_nt(nr, dr, dim, X, dim, p->rot, dim, Y, dr)) ||
                nearest_tile(Y, nr, dr, p->centroids, cn, p->nlist, G, cell + r0)) {
                err = DP_ERR_BACKEND;
                continue;
            }
            for (size_t i = 0; i < nr; i++) {
                const float *c = p->centroids + (size_t)cell[r0 + i] * dr;
                for (uint32_t j = 0; j < dr; j++)
                    Y[i * dr + j] -= c[j];
            }
            if (pq_codes_tile(Y, nr, m, dsub, p->codebooks, cbn, Xs, G, o, codes + r0 * m))
                err = DP_ERR_BACKEND;
        }
        free(X);
        if (p->rot) free(Y);
        free(Xs);
        free(G);
        free(o);
    }
    free(cbn);
    free(cn);
    if (err == DP_ERR_NOMEM) return dp_set_error(err, "out of memory");
    if (err) return dp_set_error(err, "sgemm failed while encoding");
    return 0;
}

/* An entry of the new lists: its id and where its code is (old entry
 * src, or new row src - n). */
typedef struct idsrc {
    uint64_t id, src;
} idsrc;

static int idsrc_cmp(const void *a, const void *b)
{
    const idsrc *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->src < y->src ? -1 : x->src > y->src;
}

int ivfpq_add(ivfpq *p, const float *const *vecs, const uint64_t *ids, size_t count, int threads)
{
    if (!count || !p->nlist) return 0;
    int nthr = threads > 0 ? threads : omp_get_max_threads();
    size_t m = p->m, n0 = p->n, n2 = n0 + count;
    int32_t *cell = malloc(count * sizeof *cell);
    uint8_t *nc = malloc(count * m);
    uint64_t *off = calloc((size_t)p->nlist + 1, sizeof *off);
    uint64_t *ids2 = malloc(n2 * sizeof *ids2);
    idsrc *e = malloc(n2 * sizeof *e);
    uint8_t *codes2 = malloc(n2 * m);
    uint64_t *fill = malloc((size_t)p->nlist * sizeof *fill);
    uint64_t *head = NULL, *raw = NULL;
    uint16_t *delta = NULL;
    size_t nblk = 0, nraw = 0;
    int rc = 0;
    if (!cell || !nc || !off || !ids2 || !e || !codes2 || !fill) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory for %zu IVF-PQ entries", n2);
        goto done;
    }
    if ((rc = encode(p, vecs, count, nthr, cell, nc))) goto done;
    /* new lists: the old entries of each list and the new ones, sorted by
     * id so that the ids pack into 16-bit gaps (the codes move with them) */
    for (uint32_t l = 0; l < p->nlist; l++)
        off[l + 1] = p->offsets[l + 1] - p->offsets[l];
    for (size_t i = 0; i < count; i++)
        off[cell[i] + 1]++;
    for (uint32_t l = 0; l < p->nlist; l++)
        off[l + 1] += off[l];
    ivfpq_ids(p, ids2); /* the old ids, read before ids2 is rewritten below */
    for (uint32_t l = 0; l < p->nlist; l++) {
        size_t o = p->offsets[l], len = p->offsets[l + 1] - o;
        for (size_t i = 0; i < len; i++)
            e[off[l] + i] = (idsrc){ids2[o + i], o + i};
        fill[l] = off[l] + len;
    }
    for (size_t i = 0; i < count; i++)
        e[fill[cell[i]]++] = (idsrc){ids[i], n0 + i};
    for (uint32_t l = 0; l < p->nlist; l++)
        qsort(e + off[l], off[l + 1] - off[l], sizeof *e, idsrc_cmp);
    for (size_t i = 0; i < n2; i++) {
        ids2[i] = e[i].id;
        memcpy(codes2 + i * m, e[i].src < n0 ? p->codes + e[i].src * m : nc + (e[i].src - n0) * m,
               m);
    }
    if ((rc = pack_ids(off, p->nlist, ids2, &head, &delta, &raw, &nblk, &nraw))) goto done;
    /* the quantisers of a mapped structure are copied so it can outlive the map */
    if (!p->own[0]) {
        size_t nrot = p->rot ? (size_t)p->dr * p->dim : 1;
        float *C = malloc((size_t)p->nlist * p->dr * sizeof *C);
        float *CB = malloc((size_t)p->m * IVFPQ_KSUB * p->dsub * sizeof *CB);
        float *R = malloc(nrot * sizeof *R);
        if (!C || !CB || !R) {
            free(C);
            free(CB);
            free(R);
            rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(C, p->centroids, (size_t)p->nlist * p->dr * sizeof *C);
        memcpy(CB, p->codebooks, (size_t)p->m * IVFPQ_KSUB * p->dsub * sizeof *CB);
        p->centroids = p->own[0] = C;
        p->codebooks = p->own[1] = CB;
        if (p->rot) {
            memcpy(R, p->rot, nrot * sizeof *R);
            p->rot = p->own[5] = R;
        } else {
            free(R);
        }
    }
    free(p->own[2]);
    free(p->own[3]);
    free(p->own[4]);
    free(p->own[6]);
    free(p->own[7]);
    p->offsets = p->own[2] = off;
    p->idhead = p->own[3] = head;
    p->codes = p->own[4] = codes2;
    p->iddelta = p->own[6] = delta;
    p->idraw = p->own[7] = raw;
    p->ids = NULL; /* a version 1 or 2 file's u64 ids are blocked from now on */
    p->nblk = nblk;
    p->nraw = nraw;
    off = NULL;
    codes2 = NULL;
    head = raw = NULL;
    delta = NULL;
    p->n = n2;
    rc = derive(p);
done:
    free(cell);
    free(nc);
    free(off);
    free(ids2);
    free(e);
    free(codes2);
    free(fill);
    free(head);
    free(delta);
    free(raw);
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
    s->resid = malloc(((size_t)p->dr + 1) * sizeof *s->resid);
    s->qr = malloc(((size_t)p->dr + 1) * sizeof *s->qr);
    s->dl = malloc((p->max_list ? p->max_list : 1) * sizeof *s->dl);
    if (s->coarse && s->probe && s->tab && s->resid && s->qr && s->dl) return 0;
    ivfpq_scratch_free(s);
    return DP_ERR_NOMEM;
}

void ivfpq_scratch_free(ivfpq_scratch *s)
{
    free(s->coarse);
    free(s->probe);
    free(s->tab);
    free(s->resid);
    free(s->qr);
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
    uint32_t dim = p->dr, m = p->m;
    if (p->rot) { /* one product per query: everything else is in the rotated space */
        p->df.ops->dot(q, p->rot, p->dr, p->dim, s->qr);
        q = s->qr;
    }
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

/* Drops a section left by another layout, if there is one. */
static int drop_stale(dp_index *ix, const char *name)
{
    return dp_index_count_sections(ix, name) ? dp_index_drop_section(ix, name) : 0;
}

int ivfpq_save(const ivfpq *p, dp_index *ix)
{
    ivfpq_meta mt;
    memset(&mt, 0, sizeof mt);
    memcpy(mt.magic, IVFPQ_MAGIC, 8);
    /* u64 ids (a version 1 or 2 file opened and not added to) are written
     * back as they were, byte for byte; everything else is version 3 */
    bool blk = !p->ids;
    mt.version = blk ? 3 : p->rot ? 2 : 1;
    mt.dim = p->dim;
    mt.metric = (uint32_t)p->metric;
    mt.nlist = p->nlist;
    mt.m = p->m;
    mt.ksub = IVFPQ_KSUB;
    mt.n = p->n;
    mt.seed = p->seed;
    if (p->rot || blk) mt.dr = p->dr;
    mt.flags = (p->rot ? IVFPQ_OPQ : 0) | (blk ? IVFPQ_IDBLK : 0);
    int rc = dp_index_put_section(ix, "ivfpq.meta", &mt, sizeof mt);
    if (!rc)
        rc =
            dp_index_put_section(ix, "ivfpq.centroids", p->centroids, (size_t)p->nlist * p->dr * 4);
    if (!rc)
        rc = dp_index_put_section(ix, "ivfpq.codebooks", p->codebooks,
                                  (size_t)p->m * IVFPQ_KSUB * p->dsub * 4);
    if (!rc) rc = dp_index_put_section(ix, "ivfpq.offsets", p->offsets, ((size_t)p->nlist + 1) * 8);
    if (blk) {
        if (!rc) rc = dp_index_put_section(ix, "ivfpq.idhead", p->idhead, p->nblk * 8);
        if (!rc)
            rc = dp_index_put_section(ix, "ivfpq.iddelta", p->iddelta, p->nblk * IVFPQ_BLK * 2);
        if (!rc) rc = dp_index_put_section(ix, "ivfpq.idraw", p->idraw, p->nraw * 8);
        if (!rc) rc = drop_stale(ix, "ivfpq.ids");
    } else {
        if (!rc) rc = dp_index_put_section(ix, "ivfpq.ids", p->ids, p->n * 8);
        if (!rc) rc = drop_stale(ix, "ivfpq.idhead");
        if (!rc) rc = drop_stale(ix, "ivfpq.iddelta");
        if (!rc) rc = drop_stale(ix, "ivfpq.idraw");
    }
    if (!rc) rc = dp_index_put_section(ix, "ivfpq.codes", p->codes, p->n * p->m);
    if (!rc && p->rot)
        rc = dp_index_put_section(ix, "ivfpq.opq", p->rot, (size_t)p->dr * p->dim * 4);
    else if (!rc) /* a previous build's */
        rc = drop_stale(ix, "ivfpq.opq");
    return rc;
}

#define LERR(...) dp_set_error(DP_ERR_FORMAT, __VA_ARGS__)

/* R^T R = I within float rounding: a damaged rotation would silently bend
 * every distance, and the check costs dim^2 * dr flops once per open. */
static bool orthonormal(const float *R, uint32_t dr, uint32_t dim)
{
    for (uint32_t a = 0; a < dim; a++)
        for (uint32_t b = a; b < dim; b++) {
            double v = 0;
            for (uint32_t i = 0; i < dr; i++)
                v += (double)R[(size_t)i * dim + a] * R[(size_t)i * dim + b];
            if (!(fabs(v - (a == b)) < 1e-3)) return false;
        }
    return true;
}

int ivfpq_load(ivfpq *p, const dp_index *ix, bool verify)
{
    enum { META, CENT, CB, OFF, CODES, OPQ, IDS, HEAD, DELTA, RAW, NSEC };
    static const char *const names[NSEC] = {
        "ivfpq.meta", "ivfpq.centroids", "ivfpq.codebooks", "ivfpq.offsets", "ivfpq.codes",
        "ivfpq.opq",  "ivfpq.ids",       "ivfpq.idhead",    "ivfpq.iddelta", "ivfpq.idraw"};
    const char *path = dp_index_path(ix);
    const void *d[NSEC] = {0};
    size_t b[NSEC] = {0};
    int rc = dp_index_get_section(ix, names[META], &d[META], &b[META]);
    if (rc || (rc = dp_index_check_section(ix, names[META]))) return rc;
    ivfpq_meta mt;
    if (b[META] != sizeof mt) return LERR("%s: ivfpq.meta has %zu bytes", path, b[META]);
    memcpy(&mt, d[META], sizeof mt);
    if (memcmp(mt.magic, IVFPQ_MAGIC, 8)) return LERR("%s: ivfpq.meta: bad magic", path);
    if (mt.version < 1 || mt.version > 3)
        return dp_set_error(DP_ERR_UNSUPPORTED, "%s: IVF-PQ version %u is not supported", path,
                            mt.version);
    bool blk = mt.version == 3;
    bool opq = mt.version == 2 || (blk && (mt.flags & IVFPQ_OPQ));
    if (mt.version == 1   ? mt.flags || mt.dr
        : mt.version == 2 ? mt.flags != IVFPQ_OPQ
                          : (mt.flags & ~(IVFPQ_OPQ | IVFPQ_IDBLK)) || !(mt.flags & IVFPQ_IDBLK))
        return LERR("%s: ivfpq.meta: flags %#x, coded dimension %u for version %u", path, mt.flags,
                    mt.dr, mt.version);
    /* the ids of the other layout may be left over from an older writer: ignored */
    bool need[NSEC] = {true, true, true, true, true, opq, !blk, blk, blk, blk};
    for (int i = 1; i < NSEC; i++)
        if (need[i] && i != OPQ && dp_index_get_section(ix, names[i], &d[i], &b[i]))
            return LERR("%s: IVF-PQ sections are incomplete (no %s)", path, names[i]);
    bool has_opq = !dp_index_get_section(ix, names[OPQ], &d[OPQ], &b[OPQ]);
    if (opq != has_opq)
        return LERR("%s: ivfpq.meta %s an OPQ rotation but ivfpq.opq is %s", path,
                    opq ? "names" : "names no", has_opq ? "present" : "missing");
    /* All but the codes are checked always (a bad offset or id misdirects
     * every search); a damaged code only misranks its own entry. */
    for (int i = 1; i < NSEC; i++)
        if (need[i] && (i != CODES || verify) && (rc = dp_index_check_section(ix, names[i])))
            return rc;
    if (mt.dim != dp_index_dim(ix) || (int)mt.metric != dp_index_metric(ix))
        return LERR("%s: the IVF-PQ structure was built for another dimension or metric", path);
    if (mt.ksub != IVFPQ_KSUB)
        return LERR("%s: ivfpq.meta: %u centroids per sub-quantiser", path, mt.ksub);
    if (mt.nlist > IVFPQ_MAX_NLIST || (!mt.nlist && (mt.m || mt.n || opq)) ||
        (mt.nlist && (!mt.m || mt.m > mt.dim || (!opq && mt.dim % mt.m))))
        return LERR("%s: ivfpq.meta: nlist = %u, m = %u for dimension %u", path, mt.nlist, mt.m,
                    mt.dim);
    init_shape(p, mt.dim, (int)mt.metric, mt.nlist, mt.m, opq ? IVFPQ_OPQ : 0, mt.seed);
    if ((opq || blk) && mt.dr != p->dr)
        return LERR("%s: ivfpq.meta: coded dimension %u, expected %u (m = %u, dim = %u)", path,
                    mt.dr, p->dr, mt.m, mt.dim);
    size_t ncodes;
    if (mt.n > UINT32_MAX - 1 || __builtin_mul_overflow((size_t)mt.n, (size_t)mt.m, &ncodes) ||
        b[CENT] != (size_t)mt.nlist * p->dr * 4 ||
        b[CB] != (size_t)mt.m * IVFPQ_KSUB * p->dsub * 4 || b[OFF] != ((size_t)mt.nlist + 1) * 8 ||
        (!blk && (b[IDS] / 8 != mt.n || b[IDS] % 8)) || b[CODES] != ncodes ||
        (opq && b[OPQ] != (size_t)p->dr * mt.dim * 4))
        return LERR("%s: IVF-PQ sections disagree with ivfpq.meta on their sizes", path);
    if (opq && !orthonormal(d[OPQ], p->dr, mt.dim))
        return LERR("%s: ivfpq.opq is not a rotation (its columns are not orthonormal)", path);
    const uint64_t *off = d[OFF];
    if (off[0] != 0 || off[mt.nlist] != mt.n)
        return LERR("%s: ivfpq.offsets do not span the %llu entries", path,
                    (unsigned long long)mt.n);
    for (uint32_t l = 0; l < mt.nlist; l++)
        if (off[l + 1] < off[l])
            return LERR("%s: ivfpq.offsets: list %u ends before it starts", path, l);
    if (blk) {
        /* the offsets fix the block count (n < 2^32: no overflow below);
         * the raw blocks must tile ivfpq.idraw in order, so every id read
         * stays inside it */
        size_t nblk = count_blocks(off, mt.nlist), nraw = b[RAW] / 8, r = 0, bi = 0;
        if (b[HEAD] != nblk * 8 || b[DELTA] != nblk * IVFPQ_BLK * 2 || b[RAW] % 8)
            return LERR("%s: ivfpq.idhead, ivfpq.iddelta, ivfpq.idraw have %zu, %zu, %zu bytes "
                        "for %zu id blocks",
                        path, b[HEAD], b[DELTA], b[RAW], nblk);
        const uint64_t *head = d[HEAD];
        for (uint32_t l = 0; l < mt.nlist; l++)
            for (uint64_t s = off[l]; s < off[l + 1]; s += IVFPQ_BLK, bi++) {
                if (!(head[bi] & IVFPQ_RAW)) continue;
                size_t len = off[l + 1] - s < IVFPQ_BLK ? off[l + 1] - s : IVFPQ_BLK;
                if ((head[bi] & ~IVFPQ_RAW) != r || len > nraw - r)
                    return LERR("%s: ivfpq.idhead: raw id block %zu starts at %llu, expected %zu "
                                "(ivfpq.idraw holds %zu ids)",
                                path, bi, (unsigned long long)(head[bi] & ~IVFPQ_RAW), r, nraw);
                r += len;
            }
        if (r != nraw)
            return LERR("%s: ivfpq.idraw holds %zu ids, its raw blocks %zu", path, nraw, r);
        p->idhead = head;
        p->iddelta = d[DELTA];
        p->idraw = d[RAW];
        p->nblk = nblk;
        p->nraw = nraw;
    } else {
        p->ids = d[IDS];
    }
    p->n = (size_t)mt.n;
    p->centroids = d[CENT];
    p->codebooks = d[CB];
    p->offsets = off;
    p->codes = d[CODES];
    p->rot = opq ? d[OPQ] : NULL;
    return derive(p);
}
