/* What half-float storage would buy the exact scan, before the index file
 * has a section for it: the vectors converted to binary16 in memory, each
 * query scanned over the halves (dp_dist_ops l2sq_f16) for its best kc
 * candidates, which are re-ranked with the float vectors. Reports latency
 * beside doppel's float search and beside read passes of the half-size
 * buffer (same threads, one pass per query, alternating), and recall@k of
 * the re-ranked results against the float search. One thread.
 *
 * usage: bench_f16 INDEX QUERIES.npy [queries=100] [kc=40 ...]
 * Prints one JSON object per kc. Uses internal headers (linalg/dist.h):
 * built against doppel_static. */
#include <doppel/doppel.h>

#include "linalg/dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { K = 10, SUB = 256 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Bounded max-heap of (key, row). */
typedef struct heap {
    float *d;
    size_t *r, n, cap;
} heap;

static void push(heap *h, float d, size_t r)
{
    size_t i;
    if (h->n < h->cap) {
        i = h->n++;
        while (i > 0 && h->d[(i - 1) / 2] < d) {
            h->d[i] = h->d[(i - 1) / 2];
            h->r[i] = h->r[(i - 1) / 2];
            i = (i - 1) / 2;
        }
    } else {
        i = 0;
        for (;;) {
            size_t l = 2 * i + 1, m = i;
            float dm = d;
            if (l < h->n && h->d[l] > dm) m = l, dm = h->d[l];
            if (l + 1 < h->n && h->d[l + 1] > dm) m = l + 1;
            if (m == i) break;
            h->d[i] = h->d[m];
            h->r[i] = h->r[m];
            i = m;
        }
    }
    h->d[i] = d;
    h->r[i] = r;
}

/* A plain summing read of the halves as 64-bit words (integer adds, so
 * the loop costs nothing beside the loads whatever the compiler flags). */
static float read_pass(const uint16_t *p, size_t n, double *dt)
{
    double t0 = now();
    const uint64_t *w = (const uint64_t *)p; /* malloc'd: 16-byte aligned */
    size_t nw = n / 4;
    uint64_t acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= nw; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += w[i + j];
    for (; i < nw; i++)
        acc[0] += w[i];
    uint64_t s = 0;
    for (int j = 0; j < 8; j++)
        s += acc[j];
    *dt = now() - t0;
    return (float)s;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s INDEX QUERIES.npy [queries=100] [kc=40 ...]\n", argv[0]);
        return 2;
    }
    dp_index *ix;
    if (dp_index_open(argv[1], NULL, &ix)) {
        fprintf(stderr, "%s\n", dp_last_error());
        return 1;
    }
    float *q;
    size_t nq, dim;
    if (dp_vectors_load(argv[2], 0, &q, &nq, &dim) || dim != dp_index_dim(ix)) {
        fprintf(stderr, "queries: %s\n", dp_last_error());
        return 1;
    }
    size_t nuse = argc > 3 ? (size_t)atol(argv[3]) : 100;
    if (nuse > nq) nuse = nq;
    size_t n = dp_index_count(ix);
    /* The halves, and each row's float vector and id (row order). */
    uint16_t *h16 = malloc(n * dim * sizeof *h16);
    const float **rowv = malloc(n * sizeof *rowv);
    int64_t *rowid = malloc(n * sizeof *rowid);
    size_t cur = 0, r = 0;
    dp_index_entry e;
    while (r < n && dp_index_next(ix, &cur, &e) == 1) {
        dp_f32_to_f16(e.vector, dim, h16 + r * dim);
        rowv[r] = e.vector;
        rowid[r] = (int64_t)e.id;
        r++;
    }
    if (r != n) {
        fprintf(stderr, "iterated %zu of %zu rows\n", r, n);
        return 1;
    }
    const dp_dist_ops_t *o = dp_dist_ops();
    dp_search_params sp = dp_search_default_params();
    sp.k = K;
    sp.threads = 1;
    int64_t want[K];
    float wd[K], buf[SUB];
    for (int ai = argc > 4 ? 4 : 3; ai < (argc > 4 ? argc : 4); ai++) {
        size_t kc = argc > 4 ? (size_t)atol(argv[ai]) : 40;
        heap h = {malloc(kc * sizeof(float)), malloc(kc * sizeof(size_t)), 0, kc};
        double *tf = malloc(nuse * sizeof(double)), *th = malloc(nuse * sizeof(double)),
               *tr = malloc(nuse * sizeof(double));
        size_t hits = 0;
        float sink = 0;
        for (size_t i = 0; i < nuse; i++) {
            const float *qv = q + i * dim;
            double t0 = now();
            dp_index_search(ix, qv, 1, &sp, want, wd);
            tf[i] = now() - t0;
            t0 = now();
            h.n = 0;
            for (size_t b = 0; b < n; b += SUB) {
                size_t m = n - b < SUB ? n - b : SUB;
                o->l2sq_f16(qv, h16 + b * dim, m, dim, buf);
                float thr = h.n < kc ? INFINITY : h.d[0];
                for (size_t j = o->first_below(buf, m, thr); j < m;
                     j = j + 1 + o->first_below(buf + j + 1, m - j - 1, thr)) {
                    push(&h, buf[j], b + j);
                    if (h.n == kc) thr = h.d[0];
                }
            }
            /* re-rank the candidates with the float vectors */
            heap top = {(float[K]){0}, (size_t[K]){0}, 0, K};
            for (size_t c = 0; c < h.n; c++) {
                float d;
                o->l2sq(qv, rowv[h.r[c]], 1, dim, &d);
                if (top.n < K || d < top.d[0]) push(&top, d, h.r[c]);
            }
            th[i] = now() - t0;
            for (size_t a = 0; a < top.n; a++)
                for (size_t w = 0; w < K; w++)
                    hits += rowid[top.r[a]] == want[w];
            sink += read_pass(h16, n * dim, &tr[i]);
        }
        if (sink == 1.5f) fprintf(stderr, "#");
        qsort(tf, nuse, sizeof(double), cmp_d);
        qsort(th, nuse, sizeof(double), cmp_d);
        qsort(tr, nuse, sizeof(double), cmp_d);
        printf("{\"system\": \"doppel-f16\", \"threads\": 1, \"kc\": %zu, \"queries\": %zu, "
               "\"f32_ms\": %.3f, \"f16_ms\": %.3f, \"f16_bound_ms\": %.3f, "
               "\"f16_best_ms\": %.3f, \"f16_bound_best_ms\": %.3f, \"recall_at_10\": %.4f}\n",
               kc, nuse, tf[nuse / 2] * 1e3, th[nuse / 2] * 1e3, tr[nuse / 2] * 1e3, th[0] * 1e3,
               tr[0] * 1e3, (double)hits / (double)(nuse * K));
        free(h.d);
        free(h.r);
        free(tf);
        free(th);
        free(tr);
    }
    free(h16);
    free(rowv);
    free(rowid);
    free(q);
    dp_index_free(ix);
    return 0;
}
