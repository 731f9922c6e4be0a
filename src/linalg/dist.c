/* Variant selection, done once, and the BLAS wrapper for batched search. */
#include "dist.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

static const dp_dist_ops_t *g_ops;

const dp_dist_ops_t *dp_dist_ops(void)
{
    const dp_dist_ops_t *o = __atomic_load_n(&g_ops, __ATOMIC_ACQUIRE);
    if (o) return o;
    /* DP_ISA=scalar|avx2 caps the choice, so benchmarks and tests can
     * measure a lower tier on the same machine. */
    const char *cap = getenv("DP_ISA");
    if (!cap || (strcmp(cap, "avx2") && strcmp(cap, "scalar"))) o = dp_dist_ops_avx512();
    if (!o && (!cap || strcmp(cap, "scalar"))) o = dp_dist_ops_avx2();
    if (!o) o = dp_dist_ops_scalar();
    __atomic_store_n(&g_ops, o, __ATOMIC_RELEASE);
    return o;
}

void dp_sgemm_nt(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                 size_t ldb, float *c, size_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)n, (blasint)k, 1.0f,
                a, (blasint)lda, b, (blasint)ldb, 0.0f, c, (blasint)ldc);
}
