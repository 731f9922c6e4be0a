/* Variant selection, done once, and the GEMM wrapper for batched search. */
#include "dist.h"

#include "doppel/common.h"

#include <oneapi/dnnl/dnnl.h>
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

int dp_sgemm_nt(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                size_t ldb, float *c, size_t ldc)
{
    /* oneDNN rather than OpenBLAS: 10-20 % faster on these shapes (k ~ 100,
     * measured on Zen 3, one thread) and it never nests threads. */
    dnnl_status_t st = dnnl_sgemm('N', 'T', (dnnl_dim_t)m, (dnnl_dim_t)n, (dnnl_dim_t)k, 1.0f, a,
                                  (dnnl_dim_t)lda, b, (dnnl_dim_t)ldb, 0.0f, c, (dnnl_dim_t)ldc);
    return st == dnnl_success ? 0 : DP_ERR_BACKEND;
}
