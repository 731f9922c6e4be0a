/* Barnes-Hut t-SNE (see include/doppel/viz.h).
 *
 * The steps are van der Maaten's (JMLR 2014) with scikit-learn's defaults,
 * so the two can be compared on the same input:
 *   1. PCA of the input (dp_pca_fit: covariance in double, LAPACK dsyevr)
 *      to pca_dims, whose first two components, scaled to a
 *      standard deviation of 1e-4, are also the initial layout;
 *   2. the exact 3·perplexity nearest neighbours of every point (GEMM blocks
 *      of squared distances, a bounded heap per row);
 *   3. per-point Gaussian bandwidths by binary search on the entropy, then
 *      the symmetric sparse P = (P_j|i + P_i|j) / 2n;
 *   4. gradient descent with momentum 0.5 -> 0.8 and per-coordinate gains,
 *      P exaggerated ×12 for the first 250 iterations; the attractive force
 *      is exact over sparse P, the repulsive one is summed over a quadtree
 *      whose cells stand for all their points when width / distance < θ.
 * The quadtree is rebuilt every iteration (O(n log n), serial); the forces,
 * the neighbour search and the bandwidths run on OpenMP threads. */
#include "doppel/pca.h"
#include "doppel/viz.h"
#include "util/util.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define TSNE_MAX_N 200000
#define TSNE_MAX_DIM 8192
#define QT_MAX_DEPTH 48

dp_tsne_params dp_tsne_default_params(void)
{
    dp_tsne_params p = {0};
    p.perplexity = 30;
    p.iters = 1000;
    p.pca_dims = 50;
    p.theta = 0.5;
    p.early_exaggeration = 12;
    p.exaggeration_iters = 250;
    return p;
}

/* ---- PCA ------------------------------------------------------------------ */

/* X (n x d) projected on its top k principal axes: out (n x k), components
 * in decreasing variance, each axis's sign fixed so its largest coordinate
 * is positive (a deterministic layout). The same PCA as doppel pca. */
static int pca_project(const float *X, size_t n, size_t d, size_t k, float *out)
{
    dp_pca_params pp = dp_pca_default_params();
    pp.dims = k;
    pp.whiten = false;
    pp.normalize = false;
    dp_pca *pca = NULL;
    int rc = dp_pca_fit(X, n, d, &pp, &pca);
    if (!rc) rc = dp_pca_project(pca, X, n, out);
    dp_pca_free(pca);
    return rc;
}

/* ---- Exact kNN -------------------------------------------------------------- */

typedef struct nb {
    float d;
    int j;
} nb;

static int nb_worse(const nb *a, const nb *b)
{
    return a->d > b->d || (a->d == b->d && a->j > b->j);
}

static void nb_down(nb *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && nb_worse(&h[l], &h[w])) w = l;
        if (r < n && nb_worse(&h[r], &h[w])) w = r;
        if (w == i) return;
        nb t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static int cmp_nb(const void *a, const void *b)
{
    return nb_worse(a, b) ? 1 : nb_worse(b, a) ? -1 : 0;
}

#define KNN_BLOCK 512

/* K nearest (squared euclidean) of every row of Z (n x m), self excluded,
 * nearest first, into idx / d2 (n x K). */
static int knn(const float *Z, size_t n, size_t m, size_t K, int nt, int *idx, float *d2)
{
    float *norm = malloc(n * sizeof *norm), *G = malloc((size_t)KNN_BLOCK * n * sizeof *G);
    nb *heaps = malloc((size_t)nt * K * sizeof *heaps);
    if (!norm || !G || !heaps) {
        free(norm);
        free(G);
        free(heaps);
        return dp_set_error(DP_ERR_NOMEM, "t-SNE: out of memory for the neighbour search");
    }
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t t = 0; t < m; t++)
            s += (double)Z[i * m + t] * Z[i * m + t];
        norm[i] = (float)s;
    }
    for (size_t b = 0; b < n; b += KNN_BLOCK) {
        size_t rows = n - b < KNN_BLOCK ? n - b : KNN_BLOCK;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows, (blasint)n, (blasint)m,
                    1.0f, Z + b * m, (blasint)m, Z, (blasint)m, 0.0f, G, (blasint)n);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t r = 0; r < rows; r++) {
            nb *h = heaps + (size_t)omp_get_thread_num() * K;
            size_t i = b + r, nh = 0;
            const float *g = G + r * n;
            for (size_t j = 0; j < n; j++) {
                if (j == i) continue;
                float dd = norm[i] + norm[j] - 2 * g[j];
                nb c = {dd > 0 ? dd : 0, (int)j};
                if (nh < K) {
                    h[nh++] = c;
                    if (nh == K)
                        for (size_t z = K / 2 + 1; z-- > 0;)
                            nb_down(h, K, z);
                } else if (nb_worse(&h[0], &c)) {
                    h[0] = c;
                    nb_down(h, K, 0);
                }
            }
            qsort(h, nh, sizeof *h, cmp_nb);
            for (size_t t = 0; t < K; t++) {
                idx[i * K + t] = h[t].j;
                d2[i * K + t] = h[t].d;
            }
        }
    }
    free(norm);
    free(G);
    free(heaps);
    return 0;
}

/* ---- Affinities --------------------------------------------------------------- */

/* Conditional P_j|i over the K neighbours: the Gaussian precision beta found
 * by bisection so the row's entropy is log(perplexity) (scikit-learn's
 * _binary_search_perplexity, with distances shifted by the row minimum so
 * exp never underflows to an all-zero row). */
static void bandwidths(const float *d2, size_t n, size_t K, double perplexity, int nt, float *P)
{
    const double target = log(perplexity);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float *d = d2 + i * K;
        float *p = P + i * K;
        double dmin = d[0], beta = 1, lo = -INFINITY, hi = INFINITY;
        for (int step = 0; step < 200; step++) {
            double sum = 0, sdp = 0;
            for (size_t t = 0; t < K; t++) {
                double e = exp(-(d[t] - dmin) * beta);
                p[t] = (float)e;
                sum += e;
                sdp += (d[t] - dmin) * e;
            }
            double H = log(sum) + beta * sdp / sum;
            for (size_t t = 0; t < K; t++)
                p[t] = (float)(p[t] / sum);
            double diff = H - target;
            if (fabs(diff) <= 1e-5) break;
            if (diff > 0) {
                lo = beta;
                beta = isinf(hi) ? beta * 2 : (beta + hi) / 2;
            } else {
                hi = beta;
                beta = isinf(lo) ? beta / 2 : (beta + lo) / 2;
            }
        }
    }
}

typedef struct coo {
    int i, j;
    float p;
} coo;

static int cmp_coo(const void *a, const void *b)
{
    const coo *x = a, *y = b;
    if (x->i != y->i) return x->i < y->i ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

/* Symmetric P in CSR: (P_j|i + P_i|j) / 2n, duplicates merged. */
static int symmetrize(const int *idx, const float *P, size_t n, size_t K, size_t **rowp, int **col,
                      float **val)
{
    size_t ne = 2 * n * K;
    coo *e = malloc(ne * sizeof *e);
    *rowp = calloc(n + 1, sizeof **rowp);
    *col = malloc(ne * sizeof **col);
    *val = malloc(ne * sizeof **val);
    if (!e || !*rowp || !*col || !*val) {
        free(e);
        return dp_set_error(DP_ERR_NOMEM, "t-SNE: out of memory for P");
    }
    for (size_t i = 0; i < n; i++)
        for (size_t t = 0; t < K; t++) {
            int j = idx[i * K + t];
            float p = P[i * K + t];
            e[2 * (i * K + t)] = (coo){(int)i, j, p};
            e[2 * (i * K + t) + 1] = (coo){j, (int)i, p};
        }
    qsort(e, ne, sizeof *e, cmp_coo);
    size_t o = 0;
    const float scale = 1.0f / (2.0f * (float)n);
    for (size_t a = 0; a < ne;) {
        size_t b = a;
        float s = 0;
        while (b < ne && e[b].i == e[a].i && e[b].j == e[a].j)
            s += e[b++].p;
        (*col)[o] = e[a].j;
        (*val)[o] = s * scale;
        (*rowp)[e[a].i + 1]++;
        o++;
        a = b;
    }
    for (size_t i = 0; i < n; i++)
        (*rowp)[i + 1] += (*rowp)[i];
    free(e);
    return 0;
}

/* ---- Quadtree -------------------------------------------------------------------- */

typedef struct qnode {
    double cx, cy, hw; /* cell centre and half width */
    double sx, sy;     /* sum of the positions below (centre of mass = s / count) */
    int count;
    int child; /* index of the first of 4 consecutive children; -1 for a leaf */
    int point; /* a leaf's point (-1 when empty) */
} qnode;

typedef struct qtree {
    qnode *nodes;
    size_t n, cap;
} qtree;

static int qt_new(qtree *t, double cx, double cy, double hw)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 1024;
        qnode *nn = realloc(t->nodes, cap * sizeof *nn);
        if (!nn) return -1;
        t->nodes = nn;
        t->cap = cap;
    }
    t->nodes[t->n] = (qnode){cx, cy, hw, 0, 0, 0, -1, -1};
    return (int)t->n++;
}

static int quadrant(const qnode *q, double x, double y)
{
    return (x >= q->cx) + 2 * (y >= q->cy);
}

static int qt_split(qtree *t, int node)
{
    qnode q = t->nodes[node];
    double h = q.hw / 2;
    int first = -1;
    for (int c = 0; c < 4; c++) {
        int id = qt_new(t, q.cx + (c & 1 ? h : -h), q.cy + (c & 2 ? h : -h), h);
        if (id < 0) return -1;
        if (c == 0) first = id;
    }
    t->nodes[node].child = first;
    return 0;
}

/* Insert point i at (x, y). A leaf holds one point, or several that share a
 * position (or that the depth cap could not separate). */
static int qt_insert(qtree *t, const double *Y, int i)
{
    double x = Y[2 * i], y = Y[2 * i + 1];
    int node = 0;
    for (int depth = 0;; depth++) {
        qnode *q = &t->nodes[node];
        if (q->child < 0) {
            if (q->count == 0) {
                q->point = i;
                q->count = 1;
                q->sx = x;
                q->sy = y;
                return 0;
            }
            double px = Y[2 * q->point], py = Y[2 * q->point + 1];
            if ((px == x && py == y) || depth >= QT_MAX_DEPTH) {
                q->count++;
                q->sx += x;
                q->sy += y;
                return 0;
            }
            /* Push the resident point one level down, then go on with i. */
            int p = q->point, cnt = q->count;
            double sx = q->sx, sy = q->sy;
            if (qt_split(t, node)) return -1;
            q = &t->nodes[node];
            qnode *c = &t->nodes[q->child + quadrant(q, px, py)];
            c->point = p;
            c->count = cnt;
            c->sx = sx;
            c->sy = sy;
            q->point = -1;
        }
        q->count++;
        q->sx += x;
        q->sy += y;
        node = q->child + quadrant(q, x, y);
    }
}

/* Repulsive force on point i: sum over cells of q^2 (y_i - y_cell) and the
 * normalisation sum of q, q = 1 / (1 + |y_i - y_cell|^2). */
static double qt_repulse(const qtree *t, const double *Y, int i, double theta2, double *fx,
                         double *fy)
{
    int stack[4 * QT_MAX_DEPTH + 8];
    int sp = 0;
    double x = Y[2 * i], y = Y[2 * i + 1], z = 0, ax = 0, ay = 0;
    stack[sp++] = 0;
    while (sp) {
        const qnode *q = &t->nodes[stack[--sp]];
        if (!q->count) continue;
        double mx = q->sx / q->count, my = q->sy / q->count;
        double dx = x - mx, dy = y - my, d2 = dx * dx + dy * dy;
        if (q->child < 0) {
            if (d2 == 0) { /* i itself, and any point sharing its position */
                z += q->count - 1;
                continue;
            }
        } else if (d2 == 0 || 4 * q->hw * q->hw >= theta2 * d2) {
            for (int c = 0; c < 4; c++)
                stack[sp++] = q->child + c;
            continue;
        }
        double qq = 1 / (1 + d2), w = q->count * qq;
        z += w;
        ax += w * qq * dx;
        ay += w * qq * dy;
    }
    *fx = ax;
    *fy = ay;
    return z;
}

static int qt_build(qtree *t, const double *Y, size_t n)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        x0 = fmin(x0, Y[2 * i]);
        x1 = fmax(x1, Y[2 * i]);
        y0 = fmin(y0, Y[2 * i + 1]);
        y1 = fmax(y1, Y[2 * i + 1]);
    }
    double hw = fmax(x1 - x0, y1 - y0) / 2 * (1 + 1e-6) + 1e-12;
    t->n = 0;
    if (qt_new(t, (x0 + x1) / 2, (y0 + y1) / 2, hw) < 0) return -1;
    for (size_t i = 0; i < n; i++)
        if (qt_insert(t, Y, (int)i)) return -1;
    return 0;
}

/* ---- Driver ---------------------------------------------------------------------- */

int dp_tsne(const float *X, size_t n, size_t dim, const dp_tsne_params *params, float *out,
            dp_tsne_info *info)
{
    dp_tsne_params defaults = dp_tsne_default_params();
    const dp_tsne_params *p = params ? params : &defaults;
    double t0 = dp_now();
    if (info) memset(info, 0, sizeof *info);
    if (n < 4 || n > TSNE_MAX_N)
        return dp_set_error(DP_ERR_INVALID, "t-SNE: needs 4..%d points, got %zu", TSNE_MAX_N, n);
    if (dim < 2 || dim > TSNE_MAX_DIM)
        return dp_set_error(DP_ERR_INVALID, "t-SNE: dimension %zu outside 2..%d", dim,
                            TSNE_MAX_DIM);
    if (!(p->perplexity >= 1) || p->iters < 1 || p->iters > 100000 || !(p->theta >= 0) ||
        p->pca_dims < 0 || !(p->early_exaggeration >= 1) || p->exaggeration_iters < 0)
        return dp_set_error(DP_ERR_INVALID,
                            "t-SNE: bad parameters (perplexity %g, iters %d, "
                            "theta %g, pca %d)",
                            p->perplexity, p->iters, p->theta, p->pca_dims);
    for (size_t i = 0; i < n * dim; i++)
        if (!isfinite(X[i]))
            return dp_set_error(DP_ERR_INVALID, "t-SNE: row %zu has a non-finite value", i / dim);
    size_t K = (size_t)(3 * p->perplexity);
    if (K > n - 1) K = n - 1;
    /* scikit-learn's rule: perplexity must stay below the neighbour count. */
    double perp = p->perplexity < (double)K ? p->perplexity : (double)K / 3;
    if (perp < 1) perp = 1;
    int nt = p->threads > 0 ? p->threads : omp_get_max_threads();

    size_t m = p->pca_dims > 0 && (size_t)p->pca_dims < dim ? (size_t)p->pca_dims : dim;
    size_t kp = m > 2 ? m : 2; /* components computed: at least the two for the start */
    float *Z = malloc(n * kp * sizeof *Z), *d2 = malloc(n * K * sizeof *d2),
          *P = malloc(n * K * sizeof *P), *val = NULL;
    int *idx = malloc(n * K * sizeof *idx), *col = NULL;
    size_t *rowp = NULL;
    double *Y = malloc(2 * n * sizeof *Y), *upd = calloc(2 * n, sizeof *upd),
           *gain = malloc(2 * n * sizeof *gain), *grad = malloc(2 * n * sizeof *grad),
           *zpart = malloc(n * sizeof *zpart);
    qtree qt = {0};
    int rc = 0;
    if (!Z || !d2 || !P || !idx || !Y || !upd || !gain || !grad || !zpart) {
        rc = dp_set_error(DP_ERR_NOMEM, "t-SNE: out of memory for %zu points", n);
        goto done;
    }
    if ((rc = pca_project(X, n, dim, kp, Z))) goto done;
    /* With no reduction asked for, the neighbours are searched in the input
     * itself (the projection on all axes is only a rotation of it, but that
     * costs a full eigendecomposition when kp == dim). */
    const float *S = Z;
    size_t sm = kp;
    if (m == dim && kp != dim) {
        S = X;
        sm = dim;
    }
    if ((rc = knn(S, n, sm, K, nt, idx, d2))) goto done;
    bandwidths(d2, n, K, perp, nt, P);
    if ((rc = symmetrize(idx, P, n, K, &rowp, &col, &val))) goto done;

    /* Start: the first two principal components, std of the first = 1e-4. */
    double mean0 = 0, var0 = 0;
    for (size_t i = 0; i < n; i++)
        mean0 += Z[i * kp];
    mean0 /= (double)n;
    for (size_t i = 0; i < n; i++)
        var0 += (Z[i * kp] - mean0) * (Z[i * kp] - mean0);
    double sd = sqrt(var0 / (double)n);
    double sc = sd > 0 ? 1e-4 / sd : 1;
    for (size_t i = 0; i < n; i++) {
        Y[2 * i] = Z[i * kp] * sc;
        Y[2 * i + 1] = Z[i * kp + 1] * sc;
        gain[2 * i] = gain[2 * i + 1] = 1;
    }
    double lr =
        p->learning_rate > 0 ? p->learning_rate : fmax((double)n / p->early_exaggeration / 4, 50);
    double theta2 = p->theta * p->theta, zsum = 1;
    for (int it = 0; it < p->iters; it++) {
        double exag = it < p->exaggeration_iters ? p->early_exaggeration : 1;
        double mom = it < p->exaggeration_iters ? 0.5 : 0.8;
        if (qt_build(&qt, Y, n)) {
            rc = dp_set_error(DP_ERR_NOMEM, "t-SNE: out of memory for the quadtree");
            goto done;
        }
#pragma omp parallel for num_threads(nt) schedule(dynamic, 64)
        for (size_t i = 0; i < n; i++) {
            double fx, fy;
            zpart[i] = qt_repulse(&qt, Y, (int)i, theta2, &fx, &fy);
            grad[2 * i] = fx;
            grad[2 * i + 1] = fy;
        }
        /* Summed in order, not by an OpenMP reduction: the same layout
         * whatever the thread schedule. */
        zsum = 0;
        for (size_t i = 0; i < n; i++)
            zsum += zpart[i];
        double invz = zsum > 0 ? 1 / zsum : 0;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < n; i++) {
            double ax = 0, ay = 0, xi = Y[2 * i], yi = Y[2 * i + 1];
            for (size_t e = rowp[i]; e < rowp[i + 1]; e++) {
                size_t j = (size_t)col[e];
                double dx = xi - Y[2 * j], dy = yi - Y[2 * j + 1];
                double w = exag * val[e] / (1 + dx * dx + dy * dy);
                ax += w * dx;
                ay += w * dy;
            }
            for (int c = 0; c < 2; c++) {
                size_t s = 2 * i + (size_t)c;
                double g = 4 * ((c ? ay : ax) - grad[s] * invz);
                gain[s] = (upd[s] * g < 0) ? gain[s] + 0.2 : gain[s] * 0.8;
                if (gain[s] < 0.01) gain[s] = 0.01;
                upd[s] = mom * upd[s] - lr * gain[s] * g;
            }
        }
        double cx = 0, cy = 0;
        for (size_t i = 0; i < n; i++) {
            Y[2 * i] += upd[2 * i];
            Y[2 * i + 1] += upd[2 * i + 1];
            cx += Y[2 * i];
            cy += Y[2 * i + 1];
        }
        cx /= (double)n;
        cy /= (double)n;
        for (size_t i = 0; i < n; i++) {
            Y[2 * i] -= cx;
            Y[2 * i + 1] -= cy;
        }
        if (p->progress && (it % 50 == 49 || it == p->iters - 1) &&
            p->progress(it + 1, p->iters, p->user_data)) {
            rc = dp_set_error(DP_ERR_CANCELLED, "t-SNE: cancelled at iteration %d", it + 1);
            goto done;
        }
    }
    /* KL(P || Q) with the last iteration's normalisation (exact over P's
     * support, Barnes-Hut for Z). */
    if (info) {
        double kl = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t e = rowp[i]; e < rowp[i + 1]; e++) {
                size_t j = (size_t)col[e];
                double dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1];
                double q = 1 / (1 + dx * dx + dy * dy) / zsum;
                if (val[e] > 0) kl += val[e] * log(val[e] / fmax(q, 1e-300));
            }
        info->kl_divergence = kl;
        info->neighbours = K;
        info->input_dims = (int)sm;
        info->perplexity = perp;
        info->learning_rate = lr;
    }
    for (size_t i = 0; i < 2 * n; i++)
        out[i] = (float)Y[i];
    if (info) info->seconds = dp_now() - t0;
done:
    free(Z);
    free(d2);
    free(P);
    free(idx);
    free(rowp);
    free(col);
    free(val);
    free(Y);
    free(upd);
    free(gain);
    free(grad);
    free(zpart);
    free(qt.nodes);
    return rc;
}
