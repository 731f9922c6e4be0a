/* Every ISA variant of the distance kernels against the scalar one, over
 * dimensions that exercise full vectors, masked tails and both (1..300),
 * row counts that hit the 4-row main loop and its remainder, and rows placed
 * at the very end of a page followed by an unmapped page (a tail read past
 * the row would fault; the kernels' prefetches run into it and must not).
 * Also the GEMM-tile key filter against dp_key bit for bit, and the GEMM
 * wrapper against a plain loop. */
#include "testutil.h" /* first: it defines _GNU_SOURCE */

#include "linalg/dist.h"
#include "util/util.h"

#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

/* Uniform in (-1, 1) from testutil.h's generator (seeded in main). */
static float frand(void)
{
    return (float)(urand() * 2.0 - 1.0);
}

/* Exact reference in double, to bound each float variant's error. */
static double ref(int op, const float *q, const float *x, size_t d)
{
    double a = 0;
    for (size_t j = 0; j < d; j++) {
        double u = x[j], v = q ? q[j] : 0;
        a += op == 0 ? (u - v) * (u - v) : op == 1 ? u * v : op == 2 ? fabs(u - v) : u * u;
    }
    return a;
}

static double bound(int op, const float *q, const float *x, size_t d)
{
    /* |error| of a float sum of d terms <= ~d * eps * sum |terms| */
    double m = 0;
    for (size_t j = 0; j < d; j++) {
        double u = x[j], v = q ? q[j] : 0;
        m += op == 1 ? fabs(u * v) : op == 2 ? fabs(u - v) : op == 0 ? (u - v) * (u - v) : u * u;
    }
    return 1e-6 + m * (double)d * 1.2e-7;
}

static void run_op(const dp_dist_ops_t *o, int op, const float *q, const float *x, size_t n,
                   size_t d, float *out)
{
    switch (op) {
    case 0:
        o->l2sq(q, x, n, d, out);
        break;
    case 1:
        o->dot(q, x, n, d, out);
        break;
    case 2:
        o->l1(q, x, n, d, out);
        break;
    default:
        o->sqnorm(x, n, d, out);
        break;
    }
}

static void check_variant(const dp_dist_ops_t *o)
{
    const char *names[] = {"l2sq", "dot", "l1", "sqnorm"};
    const dp_dist_ops_t *sc = dp_dist_ops_scalar();
    long page = sysconf(_SC_PAGESIZE);
    int checked = 0;
    for (size_t d = 1; d <= 300; d += (d < 40 ? 1 : 13)) {
        for (size_t n = 1; n <= 11; n++) {
            /* Rows end exactly at a page boundary followed by PROT_NONE. */
            size_t bytes = n * d * sizeof(float);
            size_t pages = (bytes + (size_t)page - 1) / (size_t)page + 1;
            uint8_t *m = mmap(NULL, pages * (size_t)page, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) {
                perror("mmap");
                exit(2);
            }
            mprotect(m + (pages - 1) * (size_t)page, (size_t)page, PROT_NONE);
            float *x = (float *)(m + (pages - 1) * (size_t)page - bytes);
            float *q = malloc(d * sizeof(float));
            for (size_t i = 0; i < n * d; i++)
                x[i] = frand();
            for (size_t j = 0; j < d; j++)
                q[j] = frand();
            float out[16], want[16];
            for (int op = 0; op < 4; op++) {
                run_op(o, op, q, x, n, d, out);
                run_op(sc, op, q, x, n, d, want);
                for (size_t i = 0; i < n; i++) {
                    double r = ref(op, op == 3 ? NULL : q, x + i * d, d);
                    double b = bound(op, op == 3 ? NULL : q, x + i * d, d);
                    CHECK(fabs(out[i] - r) <= b && fabs(want[i] - r) <= b,
                          "%s %s d=%zu n=%zu row %zu: %.9g scalar %.9g exact %.9g", o->isa,
                          names[op], d, n, i, out[i], want[i], r);
                    checked++;
                }
            }
            free(q);
            munmap(m, pages * (size_t)page);
        }
    }
    printf("%-6s %d distances match scalar and exact\n", o->isa, checked);
}

/* The top-k helpers: affine (keys from dot products) and first_below. */
static void check_helpers(const dp_dist_ops_t *o)
{
    const dp_dist_ops_t *sc = dp_dist_ops_scalar();
    for (size_t n = 0; n <= 70; n++) {
        float v[70], a[70], w1[70], w2[70];
        for (size_t i = 0; i < n; i++) {
            v[i] = frand();
            a[i] = frand();
        }
        for (int with_add = 0; with_add < 2; with_add++) {
            memcpy(w1, v, n * sizeof(float));
            memcpy(w2, v, n * sizeof(float));
            o->affine(w1, with_add ? a : NULL, -2.0f, 0.5f, n);
            sc->affine(w2, with_add ? a : NULL, -2.0f, 0.5f, n);
            for (size_t i = 0; i < n; i++)
                CHECK(fabsf(w1[i] - w2[i]) <= 1e-6f, "%s affine n=%zu i=%zu: %g vs %g", o->isa, n,
                      i, w1[i], w2[i]);
        }
        /* Every position of the first qualifying value, and none. */
        for (size_t at = 0; at <= n; at++) {
            for (size_t i = 0; i < n; i++)
                w1[i] = 1.0f + (float)i;
            if (at < n) w1[at] = 0.25f;
            if (at + 3 < n) w1[at + 3] = 0.125f; /* a later one must not win */
            size_t got = o->first_below(w1, n, 0.5f), want = sc->first_below(w1, n, 0.5f);
            CHECK(got == want && want == (at < n ? at : n), "%s first_below n=%zu at=%zu: %zu",
                  o->isa, n, at, got);
        }
        for (size_t i = 0; i < n; i++)
            w1[i] = NAN;
        CHECK(o->first_below(w1, n, INFINITY) == n, "%s: NaN never qualifies", o->isa);
    }
}

/* first_key_below computes each key exactly as dp_key does: a threshold
 * equal to a key must not let it through, the next float up must. */
static void check_key_filter(const dp_dist_ops_t *o)
{
    const dp_dist_ops_t *sc = dp_dist_ops_scalar();
    int checked = 0;
    for (size_t n = 0; n <= 70; n++) {
        float v[70], a[70];
        for (size_t i = 0; i < n; i++) {
            v[i] = frand() * 3.0f;
            a[i] = 1.0f + frand() * 0.01f;
        }
        const float alphas[] = {-2.0f, -1.0f, -0.7310586f}, betas[] = {0.0f, 0.0f, 1.0f};
        for (int ab = 0; ab < 3; ab++)
            for (int with_add = 0; with_add < 2; with_add++) {
                const float *add = with_add ? a : NULL;
                float al = alphas[ab], be = betas[ab];
                for (size_t at = 0; at < n; at++) {
                    float key = dp_key(v[at], add ? add[at] : 0.0f, al, be);
                    /* The smallest key before `at` decides what may pass. */
                    size_t want_eq = n, want_up = n;
                    float up = nextafterf(key, INFINITY);
                    for (size_t i = 0; i < n; i++) {
                        float ki = dp_key(v[i], add ? add[i] : 0.0f, al, be);
                        if (want_eq == n && ki < key) want_eq = i;
                        if (want_up == n && ki < up) want_up = i;
                    }
                    size_t g_eq = o->first_key_below(v, add, al, be, n, key);
                    size_t g_up = o->first_key_below(v, add, al, be, n, up);
                    size_t s_up = sc->first_key_below(v, add, al, be, n, up);
                    CHECK(g_eq == want_eq && g_up == want_up && s_up == want_up,
                          "%s first_key_below n=%zu at=%zu alpha=%g add=%d: %zu/%zu want %zu/%zu",
                          o->isa, n, at, al, with_add, g_eq, g_up, want_eq, want_up);
                    CHECK(want_up <= at, "first_key_below: the key itself passes at next float");
                    checked++;
                }
            }
        for (size_t i = 0; i < n; i++)
            v[i] = NAN;
        CHECK(o->first_key_below(v, NULL, -2.0f, 0.0f, n, INFINITY) == n,
              "%s: a NaN key never qualifies", o->isa);
    }
    printf("%-6s %d key filters match dp_key\n", o->isa, checked);
}

/* Half floats: every binary16 value survives f16 -> f32 -> f16; every
 * float converts to the nearest half, ties to even (checked in double);
 * the half-row kernels of each variant match a double-precision sum over
 * the converted rows, with rows that end right before an unmapped page. */
static void check_f16_convert(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dp_f16_to_f32((uint16_t)h);
        uint16_t back;
        dp_f32_to_f16(&f, 1, &back);
        bool nan = ((h >> 10) & 31) == 31 && (h & 1023);
        if (nan ? !isnan(f) || ((back >> 10) & 31) != 31 || !(back & 1023) : back != h) bad++;
    }
    CHECK(bad == 0, "%d halves do not round-trip", bad);
    for (int i = 0; i < 200000; i++) {
        float x = frand() * (i % 3 == 0 ? 70000.0f : i % 3 == 1 ? 1.0f : 1e-5f);
        if (i < 8)
            x = (float[]){65504.0f, 65519.0f, 65520.0f, -0.0f,
                          1e-8f,    2.98e-8f, 6.1e-5f,  0.5f + 0x1p-12f}[i];
        uint16_t h;
        dp_f32_to_f16(&x, 1, &h);
        double got = dp_f16_to_f32(h), err = fabs(got - x);
        /* no other half is closer (the neighbours one step either way);
         * past 65520 the IEEE answer is infinity, checked below */
        for (int dlt = -1; dlt <= 1 && fabsf(x) < 65520.0f; dlt += 2) {
            uint16_t o = (uint16_t)(h + dlt);
            if ((h & 0x7fff) == 0 && dlt < 0) continue;
            if (((o >> 10) & 31) == 31 || (o ^ h) & 0x8000) continue;
            double e2 = fabs((double)dp_f16_to_f32(o) - x);
            CHECK(err < e2 || (err == e2 && !(h & 1)), "f32 %.9g -> half %#x (%.9g), %#x is closer",
                  x, h, got, o);
        }
        if (fabs(x) >= 65520.0f) CHECK((h & 0x7fff) == 0x7c00, "%.9g overflows to inf", x);
    }
}

static void check_f16_variant(const dp_dist_ops_t *o)
{
    long page = sysconf(_SC_PAGESIZE);
    int checked = 0;
    for (size_t d = 1; d <= 200; d += (d < 40 ? 1 : 17)) {
        for (size_t n = 1; n <= 9; n++) {
            size_t bytes = n * d * sizeof(uint16_t);
            size_t pages = (bytes + (size_t)page - 1) / (size_t)page + 1;
            uint8_t *m = mmap(NULL, pages * (size_t)page, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) {
                perror("mmap");
                exit(2);
            }
            mprotect(m + (pages - 1) * (size_t)page, (size_t)page, PROT_NONE);
            uint16_t *x = (uint16_t *)(m + (pages - 1) * (size_t)page - bytes);
            float *xf = malloc(n * d * sizeof(float)), *q = malloc(d * sizeof(float));
            for (size_t i = 0; i < n * d; i++)
                xf[i] = frand();
            dp_f32_to_f16(xf, n * d, x);
            for (size_t i = 0; i < n * d; i++)
                xf[i] = dp_f16_to_f32(x[i]); /* the values the kernel sees */
            for (size_t j = 0; j < d; j++)
                q[j] = frand();
            float out[16];
            for (int op = 0; op < 2; op++) {
                (op ? o->dot_f16 : o->l2sq_f16)(q, x, n, d, out);
                for (size_t i = 0; i < n; i++) {
                    double r = ref(op, q, xf + i * d, d), b = bound(op, q, xf + i * d, d);
                    CHECK(fabs(out[i] - r) <= b, "%s %s_f16 d=%zu n=%zu row %zu: %.9g exact %.9g",
                          o->isa, op ? "dot" : "l2sq", d, n, i, out[i], r);
                    checked++;
                }
            }
            free(xf);
            free(q);
            munmap(m, pages * (size_t)page);
        }
    }
    printf("%-6s %d half-float distances match exact\n", o->isa, checked);
}

static void check_gemm(void)
{
    size_t m = 7, n = 33, k = 19;
    float a[7 * 19], b[33 * 19], c[7 * 33];
    for (size_t i = 0; i < m * k; i++)
        a[i] = frand();
    for (size_t i = 0; i < n * k; i++)
        b[i] = frand();
    CHECK(dp_sgemm_nt(m, n, k, a, k, b, k, c, n) == 0, "gemm status");
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double r = ref(1, a + i * k, b + j * k, k);
            CHECK(fabs(c[i * n + j] - r) < 1e-5, "gemm (%zu,%zu) %g vs %g", i, j, c[i * n + j], r);
        }
}

int main(void)
{
    rng = 88172645463325252ull;
    const dp_dist_ops_t *variants[] = {dp_dist_ops_scalar(), dp_dist_ops_avx2(),
                                       dp_dist_ops_avx512()};
    const char *isa[] = {"scalar", "avx2", "avx512"};
    for (int i = 0; i < 3; i++) {
        if (!variants[i]) {
            printf("%-6s not supported by this CPU: skipped\n", isa[i]);
            continue;
        }
        check_variant(variants[i]);
        check_helpers(variants[i]);
        check_key_filter(variants[i]);
        check_f16_variant(variants[i]);
    }
    printf("chosen: %s\n", dp_dist_ops()->isa);
    CHECK(getenv("DP_ISA") || dp_dist_ops() == (variants[2]   ? variants[2]
                                                : variants[1] ? variants[1]
                                                              : variants[0]),
          "dispatch picks the best variant");
    check_gemm();
    check_f16_convert();
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
