/* PCA fit, projection and its stored form (see include/doppel/pca.h). The
 * index glue is src/index/index_pca.c. */
#include "doppel/pca.h"
#include "util/util.h"

#include <cblas.h>
#include <lapack.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIT_BLOCK 2048 /* rows centred and accumulated at a time */
#define PROJ_BLOCK 1024

struct dp_pca {
    size_t in_dim, out_dim, n_fit;
    bool whiten, normalize;
    double total;
    double *var;  /* in_dim, descending */
    float *mean;  /* in_dim */
    float *basis; /* out_dim x in_dim */
    float *scale; /* out_dim: 1 / sqrt(var) when whitening, else 1 */
};

/* The stored form. Variances come first so the doubles stay 8-aligned. */
typedef struct pca_head {
    char magic[8]; /* "DPPCA\0\0\0" */
    uint32_t version;
    uint32_t in_dim;
    uint32_t out_dim;
    uint32_t flags;
    uint64_t n_fit;
    double total_variance;
    uint8_t reserved[24];
} pca_head;
_Static_assert(sizeof(pca_head) == 64, "pca head layout");

#define PCA_MAGIC "DPPCA\0\0\0"
#define PCA_VERSION 1u
#define PCA_WHITEN 1u
#define PCA_NORMALIZE 2u

dp_pca_params dp_pca_default_params(void)
{
    dp_pca_params p = {0};
    return p;
}

void dp_pca_free(dp_pca *pca)
{
    if (!pca) return;
    free(pca->var);
    free(pca->mean);
    free(pca->basis);
    free(pca->scale);
    free(pca);
}

static dp_pca *pca_alloc(size_t in_dim, size_t out_dim)
{
    dp_pca *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->in_dim = in_dim;
    p->out_dim = out_dim;
    p->var = calloc(in_dim, sizeof *p->var);
    p->mean = calloc(in_dim, sizeof *p->mean);
    p->basis = malloc(out_dim * in_dim * sizeof *p->basis);
    p->scale = malloc(out_dim * sizeof *p->scale);
    if (!p->var || !p->mean || !p->basis || !p->scale) {
        dp_pca_free(p);
        return NULL;
    }
    return p;
}

static void set_scales(dp_pca *p)
{
    for (size_t c = 0; c < p->out_dim; c++)
        p->scale[c] = p->whiten && p->var[c] > 0 ? (float)(1.0 / sqrt(p->var[c])) : 1.0f;
}

int dp_pca_fit(const float *X, size_t n, size_t dim, const dp_pca_params *params, dp_pca **out)
{
    *out = NULL;
    dp_pca_params defaults = dp_pca_default_params();
    if (!params) params = &defaults;
    size_t k = params->dims ? params->dims : dim;
    if (!X || n < 2 || dim < 1)
        return dp_set_error(DP_ERR_INVALID, "dp_pca_fit: needs 2 or more rows (%zu given)", n);
    if (dim > DP_PCA_MAX_DIM)
        return dp_set_error(DP_ERR_UNSUPPORTED,
                            "dp_pca_fit: %zu dimensions is above the %d this PCA handles "
                            "(a dense eigen-decomposition of the covariance)",
                            dim, DP_PCA_MAX_DIM);
    if (k > dim)
        return dp_set_error(DP_ERR_INVALID, "dp_pca_fit: %zu dims asked of %zu-d vectors", k, dim);
    if (params->whiten && k > n - 1)
        return dp_set_error(DP_ERR_INVALID,
                            "dp_pca_fit: cannot whiten %zu axes from %zu rows (at most %zu have "
                            "variance)",
                            k, n, n - 1);
    size_t dd = dim * dim;
    dp_pca *p = pca_alloc(dim, k);
    double *mean = calloc(dim, sizeof *mean), *C = calloc(dd, sizeof *C);
    double *B = malloc(FIT_BLOCK * dim * sizeof *B), *W = malloc(dim * sizeof *W);
    double *Z = malloc(dd * sizeof *Z), *work = NULL;
    lapack_int *isuppz = malloc(2 * dim * sizeof *isuppz), *iwork = NULL;
    int rc = 0;
    if (!p || !mean || !C || !B || !W || !Z || !isuppz) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_pca_fit: out of memory for %zu dimensions", dim);
        goto done;
    }
    p->n_fit = n;
    p->whiten = params->whiten;
    p->normalize = params->normalize;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            mean[j] += X[i * dim + j];
    for (size_t j = 0; j < dim; j++)
        mean[j] /= (double)n;
    /* Centred rows in double, a block at a time: the covariance of unit
     * vectors sums many small terms, where float accumulation loses the
     * small eigenvalues. Upper triangle of C (row-major) = B^T B. */
    for (size_t b = 0; b < n; b += FIT_BLOCK) {
        size_t m = n - b < FIT_BLOCK ? n - b : FIT_BLOCK;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < dim; j++) {
                float v = X[(b + i) * dim + j];
                if (!isfinite(v)) {
                    rc = dp_set_error(DP_ERR_INVALID,
                                      "dp_pca_fit: row %zu: value %zu is not finite", b + i, j);
                    goto done;
                }
                B[i * dim + j] = v - mean[j];
            }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (blasint)dim, (blasint)m, 1.0, B,
                    (blasint)dim, 1.0, C, (blasint)dim);
    }
    for (size_t i = 0; i < dd; i++)
        C[i] /= (double)(n - 1);
    double total = 0;
    for (size_t j = 0; j < dim; j++)
        total += C[j * dim + j];
    /* Row-major upper = column-major lower: LAPACK sees "L". All pairs: the
     * spectrum is the report, the vectors cost little more. */
    lapack_int N = (lapack_int)dim, m = 0, info = 0, lwork = -1, liwork = -1, iwq = 0, il = 1,
               iu = (lapack_int)dim;
    double vl = 0, vu = 0, abstol = 0, wq = 0;
    LAPACK_dsyevr("V", "A", "L", &N, C, &N, &vl, &vu, &il, &iu, &abstol, &m, W, Z, &N, isuppz, &wq,
                  &lwork, &iwq, &liwork, &info);
    lwork = (lapack_int)wq;
    liwork = iwq;
    work = malloc((size_t)lwork * sizeof *work);
    iwork = malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_pca_fit: out of memory for LAPACK's workspace");
        goto done;
    }
    LAPACK_dsyevr("V", "A", "L", &N, C, &N, &vl, &vu, &il, &iu, &abstol, &m, W, Z, &N, isuppz, work,
                  &lwork, iwork, &liwork, &info);
    if (info != 0 || (size_t)m != dim) {
        rc = dp_set_error(DP_ERR_BACKEND, "dp_pca_fit: dsyevr failed (info %d, %d of %zu axes)",
                          (int)info, (int)m, dim);
        goto done;
    }
    /* Eigenvalues come ascending; rounding can make the null ones a hair
     * negative. */
    for (size_t c = 0; c < dim; c++) {
        double v = W[dim - 1 - c];
        p->var[c] = v > 0 ? v : 0;
    }
    p->total = total > 0 ? total : 0;
    /* Whitening divides by sqrt(variance): an axis without variance (all
     * rows agree along it) has nothing to scale. */
    for (size_t c = 0; params->whiten && c < k; c++)
        if (!(p->var[c] > 1e-12 * p->total) || !(p->var[c] > 0)) {
            rc = dp_set_error(DP_ERR_INVALID,
                              "dp_pca_fit: cannot whiten axis %zu: the vectors have no variance "
                              "along it (keep fewer axes)",
                              c + 1);
            goto done;
        }
    for (size_t c = 0; c < k; c++) {
        const double *z = Z + (dim - 1 - c) * dim; /* column-major: vector c is contiguous */
        size_t amax = 0;
        for (size_t i = 1; i < dim; i++)
            if (fabs(z[i]) > fabs(z[amax])) amax = i;
        double sgn = z[amax] < 0 ? -1 : 1;
        for (size_t i = 0; i < dim; i++)
            p->basis[c * dim + i] = (float)(sgn * z[i]);
    }
    for (size_t j = 0; j < dim; j++)
        p->mean[j] = (float)mean[j];
    set_scales(p);
    *out = p;
    p = NULL;
done:
    dp_pca_free(p);
    free(mean);
    free(C);
    free(B);
    free(W);
    free(Z);
    free(work);
    free(isuppz);
    free(iwork);
    return rc;
}

int dp_pca_describe(const dp_pca *pca, dp_pca_info *out)
{
    if (!pca || !out) return dp_set_error(DP_ERR_INVALID, "dp_pca_describe: NULL argument");
    out->in_dim = pca->in_dim;
    out->out_dim = pca->out_dim;
    out->n_fit = pca->n_fit;
    out->whiten = pca->whiten;
    out->normalize = pca->normalize;
    out->total_variance = pca->total;
    out->variance = pca->var;
    out->mean = pca->mean;
    out->basis = pca->basis;
    return 0;
}

static void normalise_rows(float *Y, size_t n, size_t d)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        float *y = Y + i * d;
        for (size_t j = 0; j < d; j++)
            s += (double)y[j] * y[j];
        if (s <= 0) continue; /* a vector at the mean stays zero rather than NaN */
        float inv = (float)(1.0 / sqrt(s));
        for (size_t j = 0; j < d; j++)
            y[j] *= inv;
    }
}

int dp_pca_project(const dp_pca *pca, const float *in, size_t n, float *out)
{
    if (!pca || (n && (!in || !out)))
        return dp_set_error(DP_ERR_INVALID, "dp_pca_project: NULL argument");
    size_t d = pca->in_dim, k = pca->out_dim;
    float *B = malloc((n < PROJ_BLOCK ? (n ? n : 1) : PROJ_BLOCK) * d * sizeof *B);
    if (!B) return dp_set_error(DP_ERR_NOMEM, "dp_pca_project: out of memory");
    for (size_t b = 0; b < n; b += PROJ_BLOCK) {
        size_t m = n - b < PROJ_BLOCK ? n - b : PROJ_BLOCK;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < d; j++)
                B[i * d + j] = in[(b + i) * d + j] - pca->mean[j];
        float *Y = out + b * k;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)k, (blasint)d,
                    1.0f, B, (blasint)d, pca->basis, (blasint)d, 0.0f, Y, (blasint)k);
        if (pca->whiten)
            for (size_t i = 0; i < m; i++)
                for (size_t c = 0; c < k; c++)
                    Y[i * k + c] *= pca->scale[c];
        if (pca->normalize) normalise_rows(Y, m, k);
    }
    free(B);
    return 0;
}

int dp_pca_unproject(const dp_pca *pca, const float *in, size_t n, float *out)
{
    if (!pca || (n && (!in || !out)))
        return dp_set_error(DP_ERR_INVALID, "dp_pca_unproject: NULL argument");
    size_t d = pca->in_dim, k = pca->out_dim;
    float *Y = malloc((n < PROJ_BLOCK ? (n ? n : 1) : PROJ_BLOCK) * k * sizeof *Y);
    if (!Y) return dp_set_error(DP_ERR_NOMEM, "dp_pca_unproject: out of memory");
    for (size_t b = 0; b < n; b += PROJ_BLOCK) {
        size_t m = n - b < PROJ_BLOCK ? n - b : PROJ_BLOCK;
        for (size_t i = 0; i < m; i++)
            for (size_t c = 0; c < k; c++)
                Y[i * k + c] = in[(b + i) * k + c] / pca->scale[c];
        float *X = out + b * d;
        for (size_t i = 0; i < m; i++)
            memcpy(X + i * d, pca->mean, d * sizeof *X);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)d, (blasint)k,
                    1.0f, Y, (blasint)k, pca->basis, (blasint)d, 1.0f, X, (blasint)d);
    }
    free(Y);
    return 0;
}

/* ---- Stored form ------------------------------------------------------------ */

static bool stored_bytes(size_t in, size_t out, size_t *bytes)
{
    size_t a, b;
    return dp_mul_ok(in, out, &a) && dp_mul_ok(a, sizeof(float), &a) &&
           dp_mul_ok(in, sizeof(double) + sizeof(float), &b) && dp_add_ok(a, b, &a) &&
           dp_add_ok(a, sizeof(pca_head), bytes);
}

int dp_pca_save(const dp_pca *pca, void **data, size_t *bytes)
{
    size_t n;
    if (!stored_bytes(pca->in_dim, pca->out_dim, &n))
        return dp_set_error(DP_ERR_NOMEM, "dp_pca_save: too large");
    uint8_t *b = calloc(1, n);
    if (!b) return dp_set_error(DP_ERR_NOMEM, "dp_pca_save: out of memory for %zu bytes", n);
    pca_head h = {.version = PCA_VERSION,
                  .in_dim = (uint32_t)pca->in_dim,
                  .out_dim = (uint32_t)pca->out_dim,
                  .flags = (pca->whiten ? PCA_WHITEN : 0) | (pca->normalize ? PCA_NORMALIZE : 0),
                  .n_fit = pca->n_fit,
                  .total_variance = pca->total};
    memcpy(h.magic, PCA_MAGIC, 8);
    uint8_t *o = b;
    memcpy(o, &h, sizeof h);
    o += sizeof h;
    memcpy(o, pca->var, pca->in_dim * sizeof(double));
    o += pca->in_dim * sizeof(double);
    memcpy(o, pca->mean, pca->in_dim * sizeof(float));
    o += pca->in_dim * sizeof(float);
    memcpy(o, pca->basis, pca->out_dim * pca->in_dim * sizeof(float));
    *data = b;
    *bytes = n;
    return 0;
}

#define LERR(...) dp_set_error(DP_ERR_FORMAT, __VA_ARGS__)

int dp_pca_load(const void *data, size_t bytes, const char *name, dp_pca **out)
{
    *out = NULL;
    if (!name) name = "PCA";
    pca_head h;
    if (!data || bytes < sizeof h)
        return LERR("%s: PCA section too short (%zu bytes)", name, bytes);
    memcpy(&h, data, sizeof h);
    if (memcmp(h.magic, PCA_MAGIC, 8)) return LERR("%s: PCA section has a bad magic", name);
    if (h.version != PCA_VERSION)
        return dp_set_error(DP_ERR_UNSUPPORTED, "%s: PCA section version %u (this doppel reads %u)",
                            name, h.version, PCA_VERSION);
    if (h.in_dim < 1 || h.in_dim > DP_PCA_MAX_DIM || h.out_dim < 1 || h.out_dim > h.in_dim)
        return LERR("%s: PCA section has impossible dimensions (%u -> %u)", name, h.in_dim,
                    h.out_dim);
    if (h.flags & ~(PCA_WHITEN | PCA_NORMALIZE))
        return LERR("%s: PCA section has unknown flags 0x%x", name, h.flags);
    size_t want;
    if (!stored_bytes(h.in_dim, h.out_dim, &want) || want != bytes)
        return LERR("%s: PCA section is %zu bytes, %u -> %u dims need %zu", name, bytes, h.in_dim,
                    h.out_dim, want);
    if (!isfinite(h.total_variance) || h.total_variance < 0 || h.n_fit < 2)
        return LERR("%s: PCA section has a bad total variance or row count", name);
    dp_pca *p = pca_alloc(h.in_dim, h.out_dim);
    if (!p) return dp_set_error(DP_ERR_NOMEM, "%s: out of memory for the PCA", name);
    const uint8_t *s = (const uint8_t *)data + sizeof h;
    memcpy(p->var, s, h.in_dim * sizeof(double));
    s += h.in_dim * sizeof(double);
    memcpy(p->mean, s, h.in_dim * sizeof(float));
    s += h.in_dim * sizeof(float);
    memcpy(p->basis, s, (size_t)h.out_dim * h.in_dim * sizeof(float));
    p->n_fit = h.n_fit;
    p->whiten = h.flags & PCA_WHITEN;
    p->normalize = h.flags & PCA_NORMALIZE;
    p->total = h.total_variance;
    int rc = 0;
    /* Values: variances finite, non-negative and descending (a corrupted
     * section must not whiten by NaN or reorder the report). */
    for (size_t c = 0; c < h.in_dim && !rc; c++)
        if (!isfinite(p->var[c]) || p->var[c] < 0 ||
            (c && p->var[c] > p->var[c - 1] * (1 + 1e-9) + 1e-300))
            rc = LERR("%s: PCA variance %zu is %g (must be finite, >= 0, descending)", name, c,
                      p->var[c]);
    for (size_t j = 0; j < h.in_dim && !rc; j++)
        if (!isfinite(p->mean[j])) rc = LERR("%s: PCA mean[%zu] is not finite", name, j);
    for (size_t j = 0; j < (size_t)h.out_dim * h.in_dim && !rc; j++)
        if (!isfinite(p->basis[j])) rc = LERR("%s: PCA basis value %zu is not finite", name, j);
    if (!rc && p->whiten)
        for (size_t c = 0; c < h.out_dim && !rc; c++)
            if (!(p->var[c] > 0)) rc = LERR("%s: whitened PCA axis %zu has no variance", name, c);
    if (rc) {
        dp_pca_free(p);
        return rc;
    }
    set_scales(p);
    *out = p;
    return 0;
}
