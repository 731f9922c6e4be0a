/* Distance kernels: one query against a run of consecutive rows.
 *
 * Each ISA variant (dist_scalar.c, dist_avx2.c, dist_avx512.c) fills the same
 * table of function pointers; dp_dist_ops() picks the best one the CPU
 * supports once, at first use. Row-at-a-time kernels keep several rows in
 * flight so the loads of one row overlap the reductions of another: exact
 * search over a large index is bound by memory bandwidth, and the kernels
 * only have to keep up with it. The *_ops_<isa>() getters exist so tests can
 * compare every variant against the scalar one. */
#ifndef DP_LINALG_DIST_H
#define DP_LINALG_DIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct dp_dist_ops_t {
    const char *isa; /* "scalar", "avx2", "avx512" */
    /* out[i] = sum_j (x[i*dim + j] - q[j])^2 for i < n */
    void (*l2sq)(const float *q, const float *x, size_t n, size_t dim, float *out);
    /* out[i] = sum_j x[i*dim + j] * q[j] */
    void (*dot)(const float *q, const float *x, size_t n, size_t dim, float *out);
    /* out[i] = sum_j |x[i*dim + j] - q[j]| */
    void (*l1)(const float *q, const float *x, size_t n, size_t dim, float *out);
    /* out[i] = sum_j x[i*dim + j]^2 */
    void (*sqnorm)(const float *x, size_t n, size_t dim, float *out);
    /* v[i] = alpha * v[i] + beta (+ add[i] when add is not NULL): turns
     * GEMM dot products into ranking keys in place. */
    void (*affine)(float *v, const float *add, float alpha, float beta, size_t n);
    /* Index of the first v[i] < thr, or n: the top-k filter's fast path
     * (almost every key is above the current k-th). NaN never qualifies. */
    size_t (*first_below)(const float *v, size_t n, float thr);
} dp_dist_ops_t;

/* The best variant for this CPU, chosen once. */
const dp_dist_ops_t *dp_dist_ops(void);
/* A specific variant; NULL when the CPU (or the compiler) lacks the ISA. */
const dp_dist_ops_t *dp_dist_ops_scalar(void);
const dp_dist_ops_t *dp_dist_ops_avx2(void);
const dp_dist_ops_t *dp_dist_ops_avx512(void);

/* C[m x n] = A[m x k] * B[n x k]^T, row-major, through BLAS (cblas_sgemm). */
void dp_sgemm_nt(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                 size_t ldb, float *c, size_t ldc);

#endif
