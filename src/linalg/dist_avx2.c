/* AVX2 + FMA kernels: four rows in flight, 8 floats per step, the tail of
 * each row read with a masked load (never past the row's end, so the last
 * row of an mmapped section cannot fault; prefetches past it never fault
 * either). */
#include "dist.h"

#include "util/util.h"

#include <immintrin.h>
#include <math.h>

enum { OP_L2, OP_DOT, OP_L1, OP_SQ };

static inline __attribute__((always_inline)) __m256 step(int op, __m256 acc, __m256 x, __m256 q)
{
    switch (op) {
    case OP_L2: {
        __m256 d = _mm256_sub_ps(x, q);
        return _mm256_fmadd_ps(d, d, acc);
    }
    case OP_DOT:
        return _mm256_fmadd_ps(x, q, acc);
    case OP_L1: {
        __m256 d = _mm256_sub_ps(x, q);
        return _mm256_add_ps(acc, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), d));
    }
    default:
        return _mm256_fmadd_ps(x, x, acc);
    }
}

static inline __m256i tail_mask(size_t rem)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), lane);
}

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __attribute__((always_inline)) void run(int op, const float *q, const float *x,
                                                      size_t n, size_t dim, float *out)
{
    const size_t full = dim & ~(size_t)7, rem = dim & 7;
    const __m256i m = tail_mask(rem);
    /* Next line to prefetch; the first DP_DIST_PREFETCH bytes were asked for
     * by the previous call over the rows before these. */
    const char *pf = (const char *)x + DP_DIST_PREFETCH;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *x0 = x + i * dim, *x1 = x0 + dim, *x2 = x1 + dim, *x3 = x2 + dim;
        for (const char *end = (const char *)(x3 + dim) + DP_DIST_PREFETCH; pf < end; pf += 64)
            _mm_prefetch(pf, _MM_HINT_T0);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t j = 0; j < full; j += 8) {
            __m256 qv = op == OP_SQ ? a0 : _mm256_loadu_ps(q + j);
            a0 = step(op, a0, _mm256_loadu_ps(x0 + j), qv);
            a1 = step(op, a1, _mm256_loadu_ps(x1 + j), qv);
            a2 = step(op, a2, _mm256_loadu_ps(x2 + j), qv);
            a3 = step(op, a3, _mm256_loadu_ps(x3 + j), qv);
        }
        if (rem) {
            __m256 qv = op == OP_SQ ? _mm256_setzero_ps() : _mm256_maskload_ps(q + full, m);
            a0 = step(op, a0, _mm256_maskload_ps(x0 + full, m), qv);
            a1 = step(op, a1, _mm256_maskload_ps(x1 + full, m), qv);
            a2 = step(op, a2, _mm256_maskload_ps(x2 + full, m), qv);
            a3 = step(op, a3, _mm256_maskload_ps(x3 + full, m), qv);
        }
        /* Reduce the four rows together: three hadds and one add. */
        __m256 t0 = _mm256_hadd_ps(a0, a1), t1 = _mm256_hadd_ps(a2, a3);
        __m256 t2 = _mm256_hadd_ps(t0, t1);
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(t2), _mm256_extractf128_ps(t2, 1));
        _mm_storeu_ps(out + i, s);
    }
    for (; i < n; i++) {
        const float *xr = x + i * dim;
        __m256 a = _mm256_setzero_ps();
        for (size_t j = 0; j < full; j += 8)
            a = step(op, a, _mm256_loadu_ps(xr + j), op == OP_SQ ? a : _mm256_loadu_ps(q + j));
        if (rem)
            a = step(op, a, _mm256_maskload_ps(xr + full, m),
                     op == OP_SQ ? _mm256_setzero_ps() : _mm256_maskload_ps(q + full, m));
        out[i] = hsum(a);
    }
}

static void l2sq_avx2(const float *q, const float *x, size_t n, size_t dim, float *out)
{
    run(OP_L2, q, x, n, dim, out);
}
static void dot_avx2(const float *q, const float *x, size_t n, size_t dim, float *out)
{
    run(OP_DOT, q, x, n, dim, out);
}
static void l1_avx2(const float *q, const float *x, size_t n, size_t dim, float *out)
{
    run(OP_L1, q, x, n, dim, out);
}
static void sqnorm_avx2(const float *x, size_t n, size_t dim, float *out)
{
    run(OP_SQ, NULL, x, n, dim, out);
}

static void affine_avx2(float *v, const float *add, float alpha, float beta, size_t n)
{
    const __m256 a = _mm256_set1_ps(alpha), b = _mm256_set1_ps(beta);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 r = _mm256_fmadd_ps(a, _mm256_loadu_ps(v + i), b);
        if (add) r = _mm256_add_ps(r, _mm256_loadu_ps(add + i));
        _mm256_storeu_ps(v + i, r);
    }
    for (; i < n; i++)
        v[i] = fmaf(alpha, v[i], beta) + (add ? add[i] : 0.0f);
}

static size_t first_below_avx2(const float *v, size_t n, float thr)
{
    const __m256 t = _mm256_set1_ps(thr);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 c0 = _mm256_cmp_ps(_mm256_loadu_ps(v + i), t, _CMP_LT_OQ);
        __m256 c1 = _mm256_cmp_ps(_mm256_loadu_ps(v + i + 8), t, _CMP_LT_OQ);
        __m256 c2 = _mm256_cmp_ps(_mm256_loadu_ps(v + i + 16), t, _CMP_LT_OQ);
        __m256 c3 = _mm256_cmp_ps(_mm256_loadu_ps(v + i + 24), t, _CMP_LT_OQ);
        __m256 any = _mm256_or_ps(_mm256_or_ps(c0, c1), _mm256_or_ps(c2, c3));
        if (_mm256_movemask_ps(any)) break;
    }
    for (; i + 8 <= n; i += 8) {
        int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + i), t, _CMP_LT_OQ));
        if (m) return i + (size_t)__builtin_ctz((unsigned)m);
    }
    for (; i < n; i++)
        if (v[i] < thr) return i;
    return n;
}

static size_t first_key_below_avx2(const float *v, const float *add, float alpha, float beta,
                                   size_t n, float thr)
{
    const __m256 a = _mm256_set1_ps(alpha), b = _mm256_set1_ps(beta), t = _mm256_set1_ps(thr);
    size_t i = 0;
    if (add) {
        for (; i + 16 <= n; i += 16) {
            __m256 k0 = _mm256_add_ps(_mm256_fmadd_ps(a, _mm256_loadu_ps(v + i), b),
                                      _mm256_loadu_ps(add + i));
            __m256 k1 = _mm256_add_ps(_mm256_fmadd_ps(a, _mm256_loadu_ps(v + i + 8), b),
                                      _mm256_loadu_ps(add + i + 8));
            __m256 c =
                _mm256_or_ps(_mm256_cmp_ps(k0, t, _CMP_LT_OQ), _mm256_cmp_ps(k1, t, _CMP_LT_OQ));
            if (_mm256_movemask_ps(c)) break;
        }
    } else {
        for (; i + 16 <= n; i += 16) {
            __m256 k0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(v + i), b);
            __m256 k1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(v + i + 8), b);
            __m256 c =
                _mm256_or_ps(_mm256_cmp_ps(k0, t, _CMP_LT_OQ), _mm256_cmp_ps(k1, t, _CMP_LT_OQ));
            if (_mm256_movemask_ps(c)) break;
        }
    }
    /* The block that matched (or the tail), one key at a time: same rounding
     * as the vector path (fmaf is one FMA, then one add). */
    for (; i < n; i++)
        if (dp_key(v[i], add ? add[i] : 0.0f, alpha, beta) < thr) return i;
    return n;
}

/* Half-float rows: 8 halves (16 bytes) per step through F16C. The tail of a
 * row is copied into a zeroed block first, so nothing past the row is read. */
static inline __m256 load_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 load_f16_tail(const uint16_t *p, size_t rem)
{
    uint16_t t[8] = {0};
    for (size_t j = 0; j < rem; j++)
        t[j] = p[j];
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)t));
}

static inline __attribute__((always_inline)) void run_f16(int op, const float *q, const uint16_t *x,
                                                          size_t n, size_t dim, float *out)
{
    const size_t full = dim & ~(size_t)7, rem = dim & 7;
    const __m256i m = tail_mask(rem);
    const char *pf = (const char *)x + DP_DIST_PREFETCH;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint16_t *x0 = x + i * dim, *x1 = x0 + dim, *x2 = x1 + dim, *x3 = x2 + dim;
        for (const char *end = (const char *)(x3 + dim) + DP_DIST_PREFETCH; pf < end; pf += 64)
            _mm_prefetch(pf, _MM_HINT_T0);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t j = 0; j < full; j += 8) {
            __m256 qv = _mm256_loadu_ps(q + j);
            a0 = step(op, a0, load_f16(x0 + j), qv);
            a1 = step(op, a1, load_f16(x1 + j), qv);
            a2 = step(op, a2, load_f16(x2 + j), qv);
            a3 = step(op, a3, load_f16(x3 + j), qv);
        }
        if (rem) {
            __m256 qv = _mm256_maskload_ps(q + full, m);
            a0 = step(op, a0, load_f16_tail(x0 + full, rem), qv);
            a1 = step(op, a1, load_f16_tail(x1 + full, rem), qv);
            a2 = step(op, a2, load_f16_tail(x2 + full, rem), qv);
            a3 = step(op, a3, load_f16_tail(x3 + full, rem), qv);
        }
        __m256 t0 = _mm256_hadd_ps(a0, a1), t1 = _mm256_hadd_ps(a2, a3);
        __m256 t2 = _mm256_hadd_ps(t0, t1);
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(t2), _mm256_extractf128_ps(t2, 1));
        _mm_storeu_ps(out + i, s);
    }
    for (; i < n; i++) {
        const uint16_t *xr = x + i * dim;
        __m256 a = _mm256_setzero_ps();
        for (size_t j = 0; j < full; j += 8)
            a = step(op, a, load_f16(xr + j), _mm256_loadu_ps(q + j));
        if (rem) a = step(op, a, load_f16_tail(xr + full, rem), _mm256_maskload_ps(q + full, m));
        out[i] = hsum(a);
    }
}

static void l2sq_f16_avx2(const float *q, const uint16_t *x, size_t n, size_t dim, float *out)
{
    run_f16(OP_L2, q, x, n, dim, out);
}
static void dot_f16_avx2(const float *q, const uint16_t *x, size_t n, size_t dim, float *out)
{
    run_f16(OP_DOT, q, x, n, dim, out);
}

static const dp_dist_ops_t ops_avx2 = {
    "avx2",        l2sq_avx2,   dot_avx2,         l1_avx2,
    sqnorm_avx2,   affine_avx2, first_below_avx2, first_key_below_avx2,
    l2sq_f16_avx2, dot_f16_avx2};

const dp_dist_ops_t *dp_dist_ops_avx2(void)
{
    const dp_cpu *c = dp_cpu_features();
    /* F16C (the half-float kernels) came before AVX2 on both Intel (Ivy
     * Bridge) and AMD (Piledriver): every AVX2 CPU has it. */
    return c->avx2 && c->fma ? &ops_avx2 : NULL;
}
