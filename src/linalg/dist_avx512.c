/* AVX-512F kernels: four rows in flight, 16 floats per step, the row tail
 * read with a zero-masked load (masked lanes never fault). */
#include "dist.h"

#include "util/util.h"

#include <immintrin.h>

enum { OP_L2, OP_DOT, OP_L1, OP_SQ };

static inline __attribute__((always_inline)) __m512 step(int op, __m512 acc, __m512 x, __m512 q)
{
    switch (op) {
    case OP_L2: {
        __m512 d = _mm512_sub_ps(x, q);
        return _mm512_fmadd_ps(d, d, acc);
    }
    case OP_DOT:
        return _mm512_fmadd_ps(x, q, acc);
    case OP_L1:
        return _mm512_add_ps(acc, _mm512_abs_ps(_mm512_sub_ps(x, q)));
    default:
        return _mm512_fmadd_ps(x, x, acc);
    }
}

static inline __attribute__((always_inline)) void run(int op, const float *q, const float *x,
                                                      size_t n, size_t dim, float *out)
{
    const size_t full = dim & ~(size_t)15, rem = dim & 15;
    const __mmask16 m = (__mmask16)((1u << rem) - 1u);
    const __m512 zero = _mm512_setzero_ps();
    const char *pf = (const char *)x + DP_DIST_PREFETCH; /* as in dist_avx2.c */
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *x0 = x + i * dim, *x1 = x0 + dim, *x2 = x1 + dim, *x3 = x2 + dim;
        for (const char *end = (const char *)(x3 + dim) + DP_DIST_PREFETCH; pf < end; pf += 64)
            _mm_prefetch(pf, _MM_HINT_T0);
        __m512 a0 = zero, a1 = zero, a2 = zero, a3 = zero;
        for (size_t j = 0; j < full; j += 16) {
            __m512 qv = op == OP_SQ ? zero : _mm512_loadu_ps(q + j);
            a0 = step(op, a0, _mm512_loadu_ps(x0 + j), qv);
            a1 = step(op, a1, _mm512_loadu_ps(x1 + j), qv);
            a2 = step(op, a2, _mm512_loadu_ps(x2 + j), qv);
            a3 = step(op, a3, _mm512_loadu_ps(x3 + j), qv);
        }
        if (rem) {
            __m512 qv = op == OP_SQ ? zero : _mm512_maskz_loadu_ps(m, q + full);
            a0 = step(op, a0, _mm512_maskz_loadu_ps(m, x0 + full), qv);
            a1 = step(op, a1, _mm512_maskz_loadu_ps(m, x1 + full), qv);
            a2 = step(op, a2, _mm512_maskz_loadu_ps(m, x2 + full), qv);
            a3 = step(op, a3, _mm512_maskz_loadu_ps(m, x3 + full), qv);
        }
        out[i] = _mm512_reduce_add_ps(a0);
        out[i + 1] = _mm512_reduce_add_ps(a1);
        out[i + 2] = _mm512_reduce_add_ps(a2);
        out[i + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; i < n; i++) {
        const float *xr = x + i * dim;
        __m512 a = zero;
        for (size_t j = 0; j < full; j += 16)
            a = step(op, a, _mm512_loadu_ps(xr + j), op == OP_SQ ? zero : _mm512_loadu_ps(q + j));
        if (rem)
            a = step(op, a, _mm512_maskz_loadu_ps(m, xr + full),
                     op == OP_SQ ? zero : _mm512_maskz_loadu_ps(m, q + full));
        out[i] = _mm512_reduce_add_ps(a);
    }
}

static void l2sq_avx512(const float *q, const float *x, size_t n, size_t dim, float *out)
{
    run(OP_L2, q, x, n, dim, out);
}
static void dot_avx512(const float *q, const float *x, size_t n, size_t dim, float *out)
{
    run(OP_DOT, q, x, n, dim, out);
}
static void l1_avx512(const float *q, const float *x, size_t n, size_t dim, float *out)
{
    run(OP_L1, q, x, n, dim, out);
}
static void sqnorm_avx512(const float *x, size_t n, size_t dim, float *out)
{
    run(OP_SQ, NULL, x, n, dim, out);
}

static void affine_avx512(float *v, const float *add, float alpha, float beta, size_t n)
{
    const __m512 a = _mm512_set1_ps(alpha), b = _mm512_set1_ps(beta);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512 r = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m, v + i), b);
        if (add) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, add + i));
        _mm512_mask_storeu_ps(v + i, m, r);
    }
}

static size_t first_below_avx512(const float *v, size_t n, float thr)
{
    const __m512 t = _mm512_set1_ps(thr);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __mmask16 lt = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, v + i), t, _CMP_LT_OQ);
        if (lt) return i + (size_t)__builtin_ctz((unsigned)lt);
    }
    return n;
}

static size_t first_key_below_avx512(const float *v, const float *add, float alpha, float beta,
                                     size_t n, float thr)
{
    const __m512 a = _mm512_set1_ps(alpha), b = _mm512_set1_ps(beta), t = _mm512_set1_ps(thr);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512 k = _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m, v + i), b);
        if (add) k = _mm512_add_ps(k, _mm512_maskz_loadu_ps(m, add + i));
        __mmask16 lt = _mm512_mask_cmp_ps_mask(m, k, t, _CMP_LT_OQ);
        if (lt) return i + (size_t)__builtin_ctz((unsigned)lt);
    }
    return n;
}

/* Half-float rows: 16 halves per step (AVX512F's vcvtph2ps), the tail with
 * a zero-masked 16-bit load (AVX512BW). */
static inline __attribute__((always_inline)) void run_f16(int op, const float *q, const uint16_t *x,
                                                          size_t n, size_t dim, float *out)
{
    const size_t full = dim & ~(size_t)15, rem = dim & 15;
    const __mmask16 m = (__mmask16)((1u << rem) - 1u);
    const __m512 zero = _mm512_setzero_ps();
    const char *pf = (const char *)x + DP_DIST_PREFETCH;
    for (size_t i = 0; i < n; i++) {
        const uint16_t *xr = x + i * dim;
        for (const char *end = (const char *)(xr + dim) + DP_DIST_PREFETCH; pf < end; pf += 64)
            _mm_prefetch(pf, _MM_HINT_T0);
        __m512 a = zero;
        for (size_t j = 0; j < full; j += 16)
            a = step(op, a, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(xr + j))),
                     _mm512_loadu_ps(q + j));
        if (rem)
            a = step(op, a, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, xr + full)),
                     _mm512_maskz_loadu_ps(m, q + full));
        out[i] = _mm512_reduce_add_ps(a);
    }
}

static void l2sq_f16_avx512(const float *q, const uint16_t *x, size_t n, size_t dim, float *out)
{
    run_f16(OP_L2, q, x, n, dim, out);
}
static void dot_f16_avx512(const float *q, const uint16_t *x, size_t n, size_t dim, float *out)
{
    run_f16(OP_DOT, q, x, n, dim, out);
}

static const dp_dist_ops_t ops_avx512 = {
    "avx512",        l2sq_avx512,   dot_avx512,         l1_avx512,
    sqnorm_avx512,   affine_avx512, first_below_avx512, first_key_below_avx512,
    l2sq_f16_avx512, dot_f16_avx512};

const dp_dist_ops_t *dp_dist_ops_avx512(void)
{
    const dp_cpu *c = dp_cpu_features();
    return c->avx512f && c->avx512bw && c->avx512vl ? &ops_avx512 : NULL;
}
