/* Variant selection, done once, and the GEMM wrapper for batched search. */
#include "dist.h"

#include "doppel/common.h"

#include <math.h>
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

/* Bit-level conversions, so the scalar kernels and the tests need no F16C. */
float dp_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
    if (e == 31) {
        bits = sign | 0x7f800000u | (m << 13); /* inf, NaN */
    } else if (e) {
        bits = sign | ((e + 112) << 23) | (m << 13);
    } else if (!m) {
        bits = sign;
    } else { /* subnormal: m * 2^-24, exact in float */
        float f = (float)m * 0x1p-24f;
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf, NaN (kept quiet) */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504 */
    if (ax < 0x38800000u) {                                   /* below 2^-14: subnormal or 0 */
        /* ax as a float times 2^24, rounded to nearest even, is the
         * subnormal's mantissa (0..1024; 1024 carries into the exponent). */
        float a;
        memcpy(&a, &ax, sizeof a);
        return (uint16_t)(sign | (uint32_t)nearbyintf(a * 0x1p24f));
    }
    /* Normal: drop 13 mantissa bits, round to nearest even; a carry moves
     * into the exponent, as it should. */
    uint32_t r = ax - 0x38000000u; /* rebias 127 -> 15 */
    uint32_t h = (r + 0x0fffu + ((r >> 13) & 1u)) >> 13;
    return (uint16_t)(sign | h);
}

void dp_f32_to_f16(const float *x, size_t n, uint16_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = f32_to_f16(x[i]);
}
