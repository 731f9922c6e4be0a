/* IVF-PQ kernels for AVX2 + FMA: the distance tables 8 centroids at a time
 * (codebooks transposed so a sub-dimension's 256 values are contiguous), and
 * the code scan with gathers, 8 sub-quantisers of one entry per gather. */
#include "ann_internal.h"

#include "util/util.h"

#include <immintrin.h>

static void table_l2_avx2(const float *x, const float *cbt, uint32_t m, uint32_t dsub, float *tab)
{
    for (uint32_t s = 0; s < m; s++) {
        const float *c0 = cbt + (size_t)s * dsub * IVFPQ_KSUB;
        for (int j = 0; j < IVFPQ_KSUB; j += 16) {
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            for (uint32_t u = 0; u < dsub; u++) {
                __m256 xv = _mm256_set1_ps(x[s * dsub + u]);
                const float *c = c0 + (size_t)u * IVFPQ_KSUB + j;
                __m256 d0 = _mm256_sub_ps(xv, _mm256_loadu_ps(c));
                __m256 d1 = _mm256_sub_ps(xv, _mm256_loadu_ps(c + 8));
                a0 = _mm256_fmadd_ps(d0, d0, a0);
                a1 = _mm256_fmadd_ps(d1, d1, a1);
            }
            _mm256_storeu_ps(tab + (size_t)s * IVFPQ_KSUB + j, a0);
            _mm256_storeu_ps(tab + (size_t)s * IVFPQ_KSUB + j + 8, a1);
        }
    }
}

static void table_ip_avx2(const float *x, const float *cbt, uint32_t m, uint32_t dsub, float *tab)
{
    for (uint32_t s = 0; s < m; s++) {
        const float *c0 = cbt + (size_t)s * dsub * IVFPQ_KSUB;
        for (int j = 0; j < IVFPQ_KSUB; j += 16) {
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            for (uint32_t u = 0; u < dsub; u++) {
                __m256 xv = _mm256_set1_ps(x[s * dsub + u]);
                const float *c = c0 + (size_t)u * IVFPQ_KSUB + j;
                a0 = _mm256_fnmadd_ps(xv, _mm256_loadu_ps(c), a0);
                a1 = _mm256_fnmadd_ps(xv, _mm256_loadu_ps(c + 8), a1);
            }
            _mm256_storeu_ps(tab + (size_t)s * IVFPQ_KSUB + j, a0);
            _mm256_storeu_ps(tab + (size_t)s * IVFPQ_KSUB + j + 8, a1);
        }
    }
}

static inline float hsum(__m256 v)
{
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

/* Two entries per step so their gathers overlap. */
static void scan_avx2(const float *tab, const uint8_t *codes, size_t n, uint32_t m, float bias,
                      float *out)
{
    const __m256i lane = _mm256_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792);
    const uint32_t m8 = m & ~7u;
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const uint8_t *c0 = codes + i * m, *c1 = c0 + m;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (uint32_t s = 0; s < m8; s += 8) {
            __m256i base = _mm256_add_epi32(lane, _mm256_set1_epi32((int)(s * IVFPQ_KSUB)));
            __m256i i0 = _mm256_add_epi32(
                base, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(c0 + s))));
            __m256i i1 = _mm256_add_epi32(
                base, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(c1 + s))));
            a0 = _mm256_add_ps(a0, _mm256_i32gather_ps(tab, i0, 4));
            a1 = _mm256_add_ps(a1, _mm256_i32gather_ps(tab, i1, 4));
        }
        float r0 = hsum(a0), r1 = hsum(a1);
        for (uint32_t s = m8; s < m; s++) {
            r0 += tab[(size_t)s * IVFPQ_KSUB + c0[s]];
            r1 += tab[(size_t)s * IVFPQ_KSUB + c1[s]];
        }
        out[i] = bias + r0;
        out[i + 1] = bias + r1;
    }
    for (; i < n; i++) {
        const uint8_t *c0 = codes + i * m;
        __m256 a0 = _mm256_setzero_ps();
        for (uint32_t s = 0; s < m8; s += 8) {
            __m256i base = _mm256_add_epi32(lane, _mm256_set1_epi32((int)(s * IVFPQ_KSUB)));
            __m256i i0 = _mm256_add_epi32(
                base, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(c0 + s))));
            a0 = _mm256_add_ps(a0, _mm256_i32gather_ps(tab, i0, 4));
        }
        float r0 = hsum(a0);
        for (uint32_t s = m8; s < m; s++)
            r0 += tab[(size_t)s * IVFPQ_KSUB + c0[s]];
        out[i] = bias + r0;
    }
}

const ivfpq_kern *ivfpq_kern_avx2(void)
{
    static const ivfpq_kern k = {table_l2_avx2, table_ip_avx2, scan_avx2};
    const dp_cpu *c = dp_cpu_features();
    return c->avx2 && c->fma ? &k : NULL;
}
