/* Distance kernels: one query against a run of consecutive rows.
 *
 * Each ISA variant (dist_scalar.c, dist_avx2.c, dist_avx512.c) fills the same
 * table of function pointers; dp_dist_ops() picks the best one the CPU
 * supports once, at first use. Row-at-a-time kernels keep several rows in
 * flight so the loads of one row overlap the reductions of another: exact
 * search over a large index is bound by memory bandwidth, and the kernels
 * only have to keep up with it: they also prefetch DP_DIST_PREFETCH bytes
 * ahead of the row they read, because the hardware prefetcher stops at each
 * 4 KiB page of an mmapped index (measured on Zen 3: 15 % less time per scan,
 * the same as a plain summing read of the same bytes). The *_ops_<isa>()
 * getters exist so tests can compare every variant against the scalar one.
 *
 * Batched search turns dot products from a GEMM into ranking keys; the key
 * of a dot product v is dp_key(v, add, alpha, beta), computed bit for bit
 * the same by every variant, so a SIMD filter and the scalar code that
 * pushes the survivors into a heap agree on every comparison. */
#ifndef DP_LINALG_DIST_H
#define DP_LINALG_DIST_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes read ahead by the row kernels (a few rows at dim 100-512). */
#define DP_DIST_PREFETCH 1024

/* Ranking key of a GEMM dot product: fmaf(alpha, v, beta) + add. */
static inline float dp_key(float v, float add, float alpha, float beta)
{
    return fmaf(alpha, v, beta) + add;
}

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
    /* Index of the first i whose key dp_key(v[i], add ? add[i] : 0, alpha,
     * beta) is < thr, or n: first_below fused with the affine step, so a
     * GEMM tile is filtered in one read without being rewritten. */
    size_t (*first_key_below)(const float *v, const float *add, float alpha, float beta, size_t n,
                              float thr);
    /* l2sq and dot over rows stored as IEEE binary16 (dp_f32_to_f16), the
     * query in float, sums in float: half the bytes of a float scan. */
    void (*l2sq_f16)(const float *q, const uint16_t *x, size_t n, size_t dim, float *out);
    void (*dot_f16)(const float *q, const uint16_t *x, size_t n, size_t dim, float *out);
} dp_dist_ops_t;

/* IEEE binary16 conversions, round to nearest even (overflow to infinity),
 * the same on every CPU. */
void dp_f32_to_f16(const float *x, size_t n, uint16_t *out);
float dp_f16_to_f32(uint16_t h);

/* The best variant for this CPU, chosen once. */
const dp_dist_ops_t *dp_dist_ops(void);
/* A specific variant; NULL when the CPU (or the compiler) lacks the ISA. */
const dp_dist_ops_t *dp_dist_ops_scalar(void);
const dp_dist_ops_t *dp_dist_ops_avx2(void);
const dp_dist_ops_t *dp_dist_ops_avx512(void);

/* C[m x n] = A[m x k] * B[n x k]^T, row-major, through oneDNN's sgemm. It
 * runs on the calling thread alone inside an OpenMP parallel region (or
 * after omp_set_num_threads(1)), so callers can run one GEMM tile per
 * thread; OpenBLAS's pthreads build cannot be told that per call. Returns 0,
 * or DP_ERR_BACKEND without setting a message (it runs on worker threads:
 * the caller reports). */
int dp_sgemm_nt(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                size_t ldb, float *c, size_t ldc);

#endif
