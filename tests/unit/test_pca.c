/* PCA: a fit on samples drawn with a known covariance recovers its variance
 * ratios and axes; project/unproject round trips; the stored form round
 * trips and corrupt forms are refused; an index reduced by PCA holds the
 * projections, maps later vectors the same way, searches like the
 * projected vectors searched by hand, re-fits from and undoes to the kept
 * originals, and refuses a corrupt "pca" section; weighted-l2 reduces to l2
 * with equal weights and drops the axes whose weight is 0; the PCA sweep's
 * full-dimension row on raw vectors equals the unreduced row. */
#include "doppel/embed.h"
#include "doppel/eval.h"
#include "doppel/ingest.h"
#include "doppel/pca.h"
#include "index/index_internal.h"
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

#define NEAR(a, b, tol)                                                                            \
    CHECK(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, expected %.9g (tol %g)", #a,       \
          (double)(a), (double)(b), (double)(tol))

/* A random orthogonal d x d matrix (rows), by Gram-Schmidt on Gaussians. */
static void random_rotation(double *Q, size_t d)
{
    for (size_t i = 0; i < d; i++) {
        for (;;) {
            for (size_t j = 0; j < d; j++)
                Q[i * d + j] = nrand();
            for (size_t k = 0; k < i; k++) {
                double dot = 0;
                for (size_t j = 0; j < d; j++)
                    dot += Q[i * d + j] * Q[k * d + j];
                for (size_t j = 0; j < d; j++)
                    Q[i * d + j] -= dot * Q[k * d + j];
            }
            double s = 0;
            for (size_t j = 0; j < d; j++)
                s += Q[i * d + j] * Q[i * d + j];
            if (s < 1e-6) continue;
            for (size_t j = 0; j < d; j++)
                Q[i * d + j] /= sqrt(s);
            break;
        }
    }
}

/* x = mean + sum_i sigma_i z_i Q_i, z ~ N(0, 1): covariance Q^T diag(s^2) Q. */
static void test_known_covariance(void)
{
    enum { D = 6, N = 40000 };
    const double sigma[D] = {3.0, 2.0, 1.5, 1.0, 0.5, 0.1};
    double Q[D * D], total = 0;
    random_rotation(Q, D);
    for (int i = 0; i < D; i++)
        total += sigma[i] * sigma[i];
    float *X = malloc((size_t)N * D * sizeof *X);
    for (size_t r = 0; r < N; r++)
        for (int j = 0; j < D; j++)
            X[r * D + j] = (float)(10.0 + j); /* a mean far from 0 */
    for (size_t r = 0; r < N; r++)
        for (int i = 0; i < D; i++) {
            double z = nrand() * sigma[i];
            for (int j = 0; j < D; j++)
                X[r * D + j] += (float)(z * Q[i * D + j]);
        }
    dp_pca_params pp = dp_pca_default_params();
    pp.dims = 3;
    dp_pca *pca = NULL;
    OK(dp_pca_fit(X, N, D, &pp, &pca));
    if (!pca) return;
    dp_pca_info pi;
    OK(dp_pca_describe(pca, &pi));
    CHECK(pi.in_dim == D && pi.out_dim == 3 && pi.n_fit == N, "info");
    for (int i = 0; i < D; i++) {
        /* Sample variance of a Gaussian: relative standard error sqrt(2/N)
         * = 0.7 %; allow 4 %. */
        double want = sigma[i] * sigma[i] / total;
        NEAR(pi.variance[i] / pi.total_variance, want, 0.04 * want + 1e-4);
    }
    for (int j = 0; j < D; j++)
        NEAR(pi.mean[j], 10.0 + j, 0.05);
    for (int c = 0; c < 3; c++) { /* axes match up to sign */
        double dot = 0;
        for (int j = 0; j < D; j++)
            dot += pi.basis[c * D + j] * Q[c * D + j];
        CHECK(fabs(dot) > 0.995, "axis %d: |cos| with the true axis %.4f", c, fabs(dot));
    }
    /* The projection of a sample has the variances of the axes. */
    float *Y = malloc((size_t)N * 3 * sizeof *Y);
    OK(dp_pca_project(pca, X, N, Y));
    for (int c = 0; c < 3; c++) {
        double s = 0, s2 = 0;
        for (size_t r = 0; r < N; r++) {
            s += Y[r * 3 + c];
            s2 += (double)Y[r * 3 + c] * Y[r * 3 + c];
        }
        NEAR(s / N, 0, 0.02);
        NEAR(s2 / (N - 1), pi.variance[c], 1e-3 * pi.variance[c]);
    }
    free(Y);
    dp_pca_free(pca);

    /* Refusals. */
    pp.dims = D + 1;
    CHECK(dp_pca_fit(X, N, D, &pp, &pca) == DP_ERR_INVALID, "dims > dim accepted");
    pp.dims = 2;
    pp.whiten = true;
    CHECK(dp_pca_fit(X, 2, D, &pp, &pca) == DP_ERR_INVALID, "whitening beyond the rank accepted");
    CHECK(dp_pca_fit(X, 1, D, NULL, &pca) == DP_ERR_INVALID, "one row accepted");
    X[7] = NAN;
    CHECK(dp_pca_fit(X, N, D, NULL, &pca) == DP_ERR_INVALID, "NaN accepted");
    free(X);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void test_round_trip(void)
{
    enum { D = 12, N = 300, K = 4 };
    float *X = malloc(N * D * sizeof *X), *Y = malloc(N * D * sizeof *Y);
    float *Z = malloc(N * D * sizeof *Z);
    for (size_t i = 0; i < N * D; i++)
        X[i] = nrand() + 0.5f;
    for (int whiten = 0; whiten < 2; whiten++) {
        /* All axes: a rotation (and a scaling when whitened), exactly undone. */
        dp_pca_params pp = dp_pca_default_params();
        pp.whiten = whiten;
        dp_pca *pca = NULL;
        OK(dp_pca_fit(X, N, D, &pp, &pca));
        OK(dp_pca_project(pca, X, N, Y));
        OK(dp_pca_unproject(pca, Y, N, Z));
        double e = max_abs_diff(X, Z, N * D);
        CHECK(e < 1e-4, "whiten %d: full round trip error %g", whiten, e);
        if (whiten) { /* whitened axes have unit variance */
            double s2 = 0;
            for (size_t r = 0; r < N; r++)
                s2 += (double)Y[r * D + 5] * Y[r * D + 5];
            NEAR(s2 / (N - 1), 1.0, 1e-3);
        }
        /* Stored form: the loaded copy projects identically. */
        void *b = NULL;
        size_t nb = 0;
        OK(dp_pca_save(pca, &b, &nb));
        dp_pca *back = NULL;
        OK(dp_pca_load(b, nb, "mem", &back));
        if (back) {
            OK(dp_pca_project(back, X, N, Z));
            CHECK(max_abs_diff(Y, Z, N * D) == 0, "loaded PCA projects differently");
        }
        dp_pca_free(back);
        /* Corrupt forms: each refused with its reason. */
        uint8_t *c = malloc(nb);
        memcpy(c, b, nb);
        c[0] ^= 1;
        CHECK(dp_pca_load(c, nb, "mem", &back) == DP_ERR_FORMAT, "bad magic accepted");
        CHECK(dp_pca_load(b, nb - 4, "mem", &back) == DP_ERR_FORMAT, "truncated accepted");
        CHECK(strstr(dp_last_error(), "mem: PCA section is"), "message: %s", dp_last_error());
        memcpy(c, b, nb);
        double nan = NAN;
        memcpy(c + 64 + 8, &nan, 8); /* variance[1] */
        CHECK(dp_pca_load(c, nb, "mem", &back) == DP_ERR_FORMAT, "NaN variance accepted");
        memcpy(c, b, nb);
        uint32_t big = D + 1;
        memcpy(c + 16, &big, 4); /* out_dim > in_dim */
        CHECK(dp_pca_load(c, nb, "mem", &back) == DP_ERR_FORMAT, "out_dim > in_dim accepted");
        memcpy(c, b, nb);
        double up = 1e9;
        memcpy(c + 64 + 8 * 3, &up, 8); /* variances no longer descending */
        CHECK(dp_pca_load(c, nb, "mem", &back) == DP_ERR_FORMAT, "unsorted variances accepted");
        free(c);
        free(b);
        dp_pca_free(pca);
    }
    /* K axes of data that lies in a K-dim affine subspace: still exact. */
    double Q[D * D];
    random_rotation(Q, D);
    for (size_t r = 0; r < N; r++)
        for (int j = 0; j < D; j++) {
            double v = 1.0;
            for (int i = 0; i < K; i++)
                v += (r * 7919 % 13 + i) % 5 * 0.3 * (i + 1) * Q[i * D + j] * ((r + i) % 3 - 1.0);
            X[r * D + j] = (float)v;
        }
    dp_pca_params pp = dp_pca_default_params();
    pp.dims = K;
    dp_pca *pca = NULL;
    OK(dp_pca_fit(X, N, D, &pp, &pca));
    OK(dp_pca_project(pca, X, N, Y));
    OK(dp_pca_unproject(pca, Y, N, Z));
    double e = max_abs_diff(X, Z, N * D);
    CHECK(e < 1e-4, "subspace round trip error %g", e);
    dp_pca_info pi;
    dp_pca_describe(pca, &pi);
    double kept = 0;
    for (int i = 0; i < K; i++)
        kept += pi.variance[i];
    NEAR(kept / pi.total_variance, 1.0, 1e-6);
    dp_pca_free(pca);
    free(X);
    free(Y);
    free(Z);
}

static void normalise(float *v, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; j++)
        s += (double)v[j] * v[j];
    for (size_t j = 0; j < d; j++)
        v[j] = (float)(v[j] / sqrt(s));
}

/* y = W (x - mean), normalised: by hand, in double, from the stored fit. */
static void project_by_hand(const dp_pca_info *pi, const float *x, float *y)
{
    for (size_t c = 0; c < pi->out_dim; c++) {
        double s = 0;
        for (size_t j = 0; j < pi->in_dim; j++)
            s += (double)pi->basis[c * pi->in_dim + j] * (x[j] - pi->mean[j]);
        y[c] = (float)s;
    }
    normalise(y, pi->out_dim);
}

static void test_index(void)
{
    enum { D = 32, N = 600, K = 8 };
    float *X = clustered_rows(N, D, 12, 0.6f, 3, 1);
    const char *path = tpath("pca.dpl");
    dp_index *ix = tu_make_index(path, X, N, D, DP_METRIC_L2);
    dp_index_free(ix);
    dp_index_open_params op = dp_index_default_open_params();
    op.writable = true;
    OK(dp_index_open(path, &op, &ix));
    dp_pca *none = NULL;
    CHECK(dp_index_pca(ix, &none) == DP_ERR_NOT_FOUND, "PCA before any");
    dp_index_pca_params pp = dp_index_pca_default_params();
    pp.dims = K;
    dp_index_pca_report rep;
    dp_pca *fitted = NULL;
    OK(dp_index_pca_apply(ix, &pp, &rep, &fitted));
    CHECK(dp_index_dim(ix) == K && rep.rows == N && rep.in_dim == D && !rep.refit, "apply report");
    dp_index_free(ix);
    ix = NULL;
    OK(dp_index_open(path, NULL, &ix)); /* what is on disk */
    OK(dp_index_verify(ix));
    dp_pca *pca = NULL;
    OK(dp_index_pca(ix, &pca));
    if (!pca || !fitted) return;
    dp_pca_info pi;
    dp_pca_describe(pca, &pi);
    CHECK(pi.in_dim == D && pi.out_dim == K && pi.normalize, "stored PCA %zu -> %zu", pi.in_dim,
          pi.out_dim);
    /* Stored vectors = projections by hand, ids unchanged. */
    float y[K], q[K], q2[K];
    double worst = 0;
    for (size_t i = 0; i < N; i++) {
        dp_index_entry e;
        OK(dp_index_get(ix, i, &e));
        project_by_hand(&pi, X + i * D, y);
        worst = fmax(worst, max_abs_diff(y, e.vector, K));
    }
    CHECK(worst < 1e-4, "stored projection differs from the hand projection by %g", worst);
    /* A query of the original dimension: mapped automatically = by hand,
     * and both searches give the same neighbours. */
    float *Qs = clustered_rows(20, D, 12, 0.6f, 3, 2);
    dp_search_params sp = dp_search_default_params();
    sp.k = 10;
    int64_t ida[10], idb[10];
    for (size_t t = 0; t < 20; t++) {
        OK(dp_index_map_vectors(ix, pca, Qs + t * D, 1, D, q));
        project_by_hand(&pi, Qs + t * D, q2);
        CHECK(max_abs_diff(q, q2, K) < 1e-4, "query %zu mapped differently", t);
        OK(dp_index_search(ix, q, 1, &sp, ida, NULL));
        OK(dp_index_search(ix, q2, 1, &sp, idb, NULL));
        CHECK(!memcmp(ida, idb, sizeof ida), "query %zu: neighbours differ", t);
    }
    CHECK(dp_index_map_vectors(ix, pca, Qs, 1, D - 1, q) == DP_ERR_MISMATCH, "wrong dim mapped");
    CHECK(strstr(dp_last_error(), "31-d"), "message: %s", dp_last_error());
    OK(dp_index_map_vectors(ix, pca, q2, 1, K, q)); /* already projected: copied */
    CHECK(!memcmp(q, q2, sizeof q), "copy");
    dp_index_free(ix);

    /* Add a vector of the model's dimension the way doppel index does, then
     * re-fit with more axes (from the originals) and undo. */
    OK(dp_index_open(path, &op, &ix));
    float *extra = clustered_rows(1, D, 12, 0.6f, 3, 3);
    OK(dp_index_map_vectors(ix, pca, extra, 1, D, q));
    dp_index_entry ne = {.path = "extra", .vector = q};
    uint64_t nid;
    OK(dp_index_add(ix, &ne, 1, &nid));
    OK(dp_index_commit(ix));
    pp.dims = 16;
    OK(dp_index_pca_apply(ix, &pp, &rep, NULL));
    CHECK(rep.refit && rep.reconstructed == 1 && rep.rows == N + 1 && dp_index_dim(ix) == 16,
          "refit: refit %d reconstructed %zu rows %zu", rep.refit, rep.reconstructed, rep.rows);
    /* The re-fit kept the reconstruction as the row's original (it said
     * so above), so the undo has nothing left to reconstruct. */
    OK(dp_index_pca_undo(ix, &rep));
    CHECK(dp_index_dim(ix) == D && rep.reconstructed == 0, "undo: dim %u reconstructed %zu",
          dp_index_dim(ix), rep.reconstructed);
    dp_index_free(ix);
    OK(dp_index_open(path, NULL, &ix));
    OK(dp_index_verify(ix));
    CHECK(dp_index_count_sections(ix, "pca") == 0, "sections left after undo");
    worst = 0;
    for (size_t i = 0; i < N; i++) {
        dp_index_entry e;
        OK(dp_index_get(ix, i, &e));
        worst = fmax(worst, max_abs_diff(X + i * D, e.vector, D));
    }
    CHECK(worst == 0, "undo is not exact: %g", worst);
    /* The added row comes back from 8 axes: close in direction, not equal. */
    dp_index_entry e;
    OK(dp_index_get(ix, nid, &e));
    double cosv = 0;
    for (size_t j = 0; j < D; j++)
        cosv += (double)e.vector[j] * extra[j];
    CHECK(cosv > 0.5 && cosv < 0.99999, "reconstructed row cos %g", cosv);
    dp_index_free(ix);
    free(extra);

    /* Without originals: smaller, and undo is refused. */
    OK(dp_index_open(path, &op, &ix));
    pp.dims = K;
    pp.keep_originals = false;
    OK(dp_index_pca_apply(ix, &pp, &rep, NULL));
    CHECK(dp_index_pca_undo(ix, &rep) == DP_ERR_UNSUPPORTED, "undo without originals");
    CHECK(strstr(dp_last_error(), "without keeping its original vectors"), "message: %s",
          dp_last_error());
    dp_index_free(ix);

    /* A corrupt "pca" section: a flipped byte fails its checksum... */
    struct stat st;
    stat(path, &st);
    OK(dp_index_open(path, NULL, &ix));
    const void *data = NULL;
    size_t bytes = 0;
    OK(dp_index_get_section(ix, "pca", &data, &bytes));
    size_t off = (size_t)((const uint8_t *)data - ix->map) + 100;
    dp_index_free(ix);
    FILE *f = fopen(path, "r+b");
    fseek(f, (long)off, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, (long)off, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
    OK(dp_index_open(path, &op, &ix));
    dp_pca *bad = NULL;
    CHECK(dp_index_pca(ix, &bad) == DP_ERR_FORMAT, "corrupt section read");
    CHECK(strstr(dp_last_error(), "checksum") && strstr(dp_last_error(), "pca"), "message: %s",
          dp_last_error());
    pp.keep_originals = true;
    CHECK(dp_index_pca_apply(ix, &pp, &rep, NULL) == DP_ERR_FORMAT, "apply over a corrupt PCA");
    /* ... and a section with a valid checksum but nonsense inside. */
    uint8_t junk[200] = "DPPCA\0\0\0\1"; /* version 1, sizes that do not add up */
    OK(dp_index_put_section(ix, "pca", junk, sizeof junk));
    OK(dp_index_commit(ix));
    CHECK(dp_index_pca(ix, &bad) == DP_ERR_FORMAT, "junk section read");
    CHECK(strstr(dp_last_error(), "section 'pca'"), "message: %s", dp_last_error());
    dp_index_free(ix);
    free(Qs);
    free(X);
    dp_pca_free(pca);
    dp_pca_free(fitted);
}

/* A PCA section with the given variances on an index of dim d (the
 * basis and mean do not matter to weighted-l2). */
static void put_variances(dp_index *ix, const double *var, size_t d)
{
    size_t nb = 64 + d * 8 + d * 4 + d * d * 4;
    uint8_t *b = calloc(1, nb);
    uint32_t u[4] = {1, (uint32_t)d, (uint32_t)d, 0};
    memcpy(b, "DPPCA\0\0\0", 8);
    memcpy(b + 8, u, sizeof u);
    uint64_t n = 100;
    double tot = 0;
    for (size_t i = 0; i < d; i++)
        tot += var[i];
    memcpy(b + 24, &n, 8);
    memcpy(b + 32, &tot, 8);
    memcpy(b + 64, var, d * 8);
    float *basis = (float *)(void *)(b + 64 + d * 12);
    for (size_t i = 0; i < d; i++)
        basis[i * d + i] = 1;
    OK(dp_index_put_section(ix, "pca", b, nb));
    free(b);
}

static void same_report(const dp_eval_report *a, const dp_eval_report *b, const char *what)
{
    CHECK(a->n_queries == b->n_queries && a->precision_at_k == b->precision_at_k &&
              a->top1 == b->top1 && a->map100 == b->map100 && a->n_labels == b->n_labels,
          "%s: p@k %.6f vs %.6f, top-1 %.6f vs %.6f, mAP %.6f vs %.6f", what, a->precision_at_k,
          b->precision_at_k, a->top1, b->top1, a->map100, b->map100);
    for (size_t i = 0; i < a->n_labels && i < b->n_labels; i++)
        CHECK(!strcmp(a->labels[i].label, b->labels[i].label) &&
                  a->labels[i].precision == b->labels[i].precision,
              "%s: label %zu", what, i);
}

static void test_weighted_l2(void)
{
    enum { D = 8, N = 400 };
    float *X = clustered_rows(N, D, 6, 1.2f, 9, 1);
    static char labs[N][16], paths[N][16];
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = D;
    cp.normalized = false;
    dp_index *ix = NULL, *half = NULL;
    OK(dp_index_create(tpath("w.dpl"), &cp, &ix));
    cp.dim = D / 2;
    OK(dp_index_create(tpath("half.dpl"), &cp, &half));
    /* Labels from the nearest of 6 fixed directions in the first 4 axes,
     * so class structure lives there and the last 4 axes are noise. */
    for (size_t i = 0; i < N; i++) {
        float *x = X + i * D;
        int best = 0;
        for (int c = 1; c < 4; c++)
            if (fabsf(x[c]) > fabsf(x[best])) best = c;
        snprintf(labs[i], sizeof labs[i], "c%d%c", best, x[best] > 0 ? '+' : '-');
        snprintf(paths[i], sizeof paths[i], "p%03zu", i);
        dp_index_entry e = {.path = paths[i], .label = labs[i], .vector = x};
        OK(dp_index_add(ix, &e, 1, NULL));
        OK(dp_index_add(half, &e, 1, NULL)); /* the first D/2 floats */
    }
    dp_eval_params ep = dp_eval_default_params();
    dp_eval_report r_l2, r_w;
    OK(dp_eval_parse_metric("weighted-l2", &ep));
    CHECK(ep.weighted_l2, "parse");
    CHECK(dp_eval_index(ix, &ep, &r_w) == DP_ERR_NOT_FOUND, "weighted-l2 without a PCA");
    CHECK(strstr(dp_last_error(), "doppel pca"), "message: %s", dp_last_error());
    double ones[D] = {1, 1, 1, 1, 1, 1, 1, 1};
    put_variances(ix, ones, D);
    OK(dp_eval_index(ix, &ep, &r_w));
    dp_eval_params el = dp_eval_default_params();
    el.metric = DP_METRIC_L2;
    OK(dp_eval_index(ix, &el, &r_l2));
    same_report(&r_w, &r_l2, "unit weights");
    CHECK(!strcmp(r_w.metric, "weighted-l2"), "metric name %s", r_w.metric);
    dp_eval_report_free(&r_w);
    dp_eval_report_free(&r_l2);
    /* Weights 1,1,1,1,0,0,0,0 = l2 on the first 4 axes, which here is
     * better than l2 on all 8 (the rest is noise). */
    double halfw[D] = {1, 1, 1, 1, 0, 0, 0, 0};
    put_variances(ix, halfw, D);
    OK(dp_eval_index(ix, &ep, &r_w));
    OK(dp_eval_index(half, &el, &r_l2));
    same_report(&r_w, &r_l2, "zero weights");
    dp_eval_report all;
    OK(dp_eval_index(ix, &el, &all));
    CHECK(r_w.top1 > all.top1, "the noise axes should hurt: %.3f vs %.3f", r_w.top1, all.top1);
    dp_eval_report_free(&r_w);
    dp_eval_report_free(&r_l2);
    dp_eval_report_free(&all);

    /* PCA sweep on raw vectors: all axes = a rotation and a shift, so the
     * accuracy equals the unreduced row; fewer axes hold less variance. */
    size_t dims[3] = {0, D, 2};
    dp_eval_sweep_row rows[3];
    ep = dp_eval_default_params();
    OK(dp_eval_pca_sweep(ix, &ep, dims, 3, 1, rows));
    NEAR(rows[1].top1, rows[0].top1, 1e-12);
    NEAR(rows[1].precision_at_k, rows[0].precision_at_k, 1e-12);
    NEAR(rows[1].variance, 1.0, 1e-9);
    CHECK(rows[2].variance < 0.9 && rows[2].variance > 0.1, "2 axes hold %.3f", rows[2].variance);
    CHECK(rows[2].vector_bytes == N * 2 * 4 && rows[0].vector_bytes == N * D * 4, "bytes");
    CHECK(rows[0].n_queries_timed == N && rows[2].search_seconds > 0, "timing");
    size_t toobig = D + 1;
    OK(dp_eval_pca_sweep(ix, &ep, &toobig, 1, 1, rows));
    CHECK(rows[0].skipped, "dims above the dimension not skipped");
    dp_index_free(ix);
    dp_index_free(half);
    free(X);
}

int main(void)
{
    tu_begin("pca");
    test_known_covariance();
    test_round_trip();
    test_index();
    test_weighted_l2();
    return tu_end("test_pca");
}
