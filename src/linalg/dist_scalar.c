/* Portable kernels: the reference every SIMD variant is tested against and
 * the fallback on CPUs without AVX2. Four accumulators per row so the
 * compiler can pipeline without reassociating on its own. */
#include "dist.h"

#include <math.h>

/* The lines of the row DP_DIST_PREFETCH bytes ahead. */
static inline void prefetch_row(const float *x, size_t dim)
{
    const char *p = (const char *)x + DP_DIST_PREFETCH;
    for (size_t b = 0; b < dim * sizeof(float); b += 64)
        __builtin_prefetch(p + b);
}

static void l2sq_scalar(const float *q, const float *x, size_t n, size_t dim, float *out)
{
    for (size_t i = 0; i < n; i++, x += dim) {
        prefetch_row(x, dim);
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        size_t j = 0;
        for (; j + 4 <= dim; j += 4) {
            float d0 = x[j] - q[j], d1 = x[j + 1] - q[j + 1];
            float d2 = x[j + 2] - q[j + 2], d3 = x[j + 3] - q[j + 3];
            a0 += d0 * d0;
            a1 += d1 * d1;
            a2 += d2 * d2;
            a3 += d3 * d3;
        }
        for (; j < dim; j++) {
            float d = x[j] - q[j];
            a0 += d * d;
        }
        out[i] = (a0 + a1) + (a2 + a3);
    }
}

static void dot_scalar(const float *q, const float *x, size_t n, size_t dim, float *out)
{
    for (size_t i = 0; i < n; i++, x += dim) {
        prefetch_row(x, dim);
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        size_t j = 0;
        for (; j + 4 <= dim; j += 4) {
            a0 += x[j] * q[j];
            a1 += x[j + 1] * q[j + 1];
            a2 += x[j + 2] * q[j + 2];
            a3 += x[j + 3] * q[j + 3];
        }
        for (; j < dim; j++)
            a0 += x[j] * q[j];
        out[i] = (a0 + a1) + (a2 + a3);
    }
}

static void l1_scalar(const float *q, const float *x, size_t n, size_t dim, float *out)
{
    for (size_t i = 0; i < n; i++, x += dim) {
        prefetch_row(x, dim);
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        size_t j = 0;
        for (; j + 4 <= dim; j += 4) {
            a0 += fabsf(x[j] - q[j]);
            a1 += fabsf(x[j + 1] - q[j + 1]);
            a2 += fabsf(x[j + 2] - q[j + 2]);
            a3 += fabsf(x[j + 3] - q[j + 3]);
        }
        for (; j < dim; j++)
            a0 += fabsf(x[j] - q[j]);
        out[i] = (a0 + a1) + (a2 + a3);
    }
}

static void sqnorm_scalar(const float *x, size_t n, size_t dim, float *out)
{
    for (size_t i = 0; i < n; i++)
        dot_scalar(x + i * dim, x + i * dim, 1, dim, out + i);
}

static void affine_scalar(float *v, const float *add, float alpha, float beta, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = alpha * v[i] + beta + (add ? add[i] : 0.0f);
}

static size_t first_below_scalar(const float *v, size_t n, float thr)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] < thr) return i;
    return n;
}

static size_t first_key_below_scalar(const float *v, const float *add, float alpha, float beta,
                                     size_t n, float thr)
{
    for (size_t i = 0; i < n; i++)
        if (dp_key(v[i], add ? add[i] : 0.0f, alpha, beta) < thr) return i;
    return n;
}

static void l2sq_f16_scalar(const float *q, const uint16_t *x, size_t n, size_t dim, float *out)
{
    for (size_t i = 0; i < n; i++, x += dim) {
        float a0 = 0, a1 = 0;
        size_t j = 0;
        for (; j + 2 <= dim; j += 2) {
            float d0 = dp_f16_to_f32(x[j]) - q[j], d1 = dp_f16_to_f32(x[j + 1]) - q[j + 1];
            a0 += d0 * d0;
            a1 += d1 * d1;
        }
        for (; j < dim; j++) {
            float d = dp_f16_to_f32(x[j]) - q[j];
            a0 += d * d;
        }
        out[i] = a0 + a1;
    }
}

static void dot_f16_scalar(const float *q, const uint16_t *x, size_t n, size_t dim, float *out)
{
    for (size_t i = 0; i < n; i++, x += dim) {
        float a0 = 0, a1 = 0;
        size_t j = 0;
        for (; j + 2 <= dim; j += 2) {
            a0 += dp_f16_to_f32(x[j]) * q[j];
            a1 += dp_f16_to_f32(x[j + 1]) * q[j + 1];
        }
        for (; j < dim; j++)
            a0 += dp_f16_to_f32(x[j]) * q[j];
        out[i] = a0 + a1;
    }
}

static const dp_dist_ops_t ops_scalar = {
    "scalar",        l2sq_scalar,   dot_scalar,         l1_scalar,
    sqnorm_scalar,   affine_scalar, first_below_scalar, first_key_below_scalar,
    l2sq_f16_scalar, dot_f16_scalar};

const dp_dist_ops_t *dp_dist_ops_scalar(void)
{
    return &ops_scalar;
}
