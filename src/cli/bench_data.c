/* doppel bench's data: TEXMEX vector files, the rows of an index, query
 * samples, ann-benchmarks distances and recall, peak RSS (see bench.h). */
#include "bench.h"
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define MAX_DIM 65536
#define MAX_FLOATS ((size_t)8 << 30) /* 32 GiB of floats */

void dp_bench_set_free(dp_bench_set *s)
{
    if (!s) return;
    free(s->base);
    free(s->queries);
    free(s->gt);
    memset(s, 0, sizeof *s);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* TEXMEX: per row an int32 width, then width elements of esize bytes. Read
 * row by row so a .bvecs never costs more than its float output. */
static int read_texmex(const char *path, size_t esize, bool as_int, float **out, size_t *n,
                       size_t *dim)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "doppel bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int32_t w = 0;
    float *x = NULL;
    unsigned char *row = NULL;
    if (fstat(fileno(f), &st) || fread(&w, 4, 1, f) != 1) {
        fprintf(stderr, "doppel bench: %s: empty or unreadable vector file\n", path);
        goto fail;
    }
    if (w < 1 || w > MAX_DIM) {
        fprintf(stderr, "doppel bench: %s: row width %d is not in 1..%d (not a TEXMEX file?)\n",
                path, (int)w, MAX_DIM);
        goto fail;
    }
    size_t rec = 4 + (size_t)w * esize, len = (size_t)st.st_size;
    if (len % rec) {
        fprintf(stderr, "doppel bench: %s: %zu bytes is not a whole number of %zu-byte rows\n",
                path, len, rec);
        goto fail;
    }
    size_t rows = len / rec;
    if (rows > MAX_FLOATS / (size_t)w) {
        fprintf(stderr, "doppel bench: %s: %zu x %d is too large\n", path, rows, (int)w);
        goto fail;
    }
    x = malloc(rows * (size_t)w * sizeof *x + 1);
    row = malloc((size_t)w * esize);
    if (!x || !row) {
        fprintf(stderr, "doppel bench: %s: out of memory for %zu x %d\n", path, rows, (int)w);
        goto fail;
    }
    rewind(f);
    for (size_t i = 0; i < rows; i++) {
        int32_t wi;
        if (fread(&wi, 4, 1, f) != 1 || fread(row, esize, (size_t)w, f) != (size_t)w) {
            fprintf(stderr, "doppel bench: %s: short read at row %zu\n", path, i);
            goto fail;
        }
        if (wi != w) {
            fprintf(stderr, "doppel bench: %s: row %zu has width %d, row 0 has %d\n", path, i,
                    (int)wi, (int)w);
            goto fail;
        }
        float *o = x + i * (size_t)w;
        if (esize == 1) {
            for (int32_t j = 0; j < w; j++)
                o[j] = (float)row[j];
        } else if (as_int) {
            for (int32_t j = 0; j < w; j++) {
                int32_t v;
                memcpy(&v, row + 4 * (size_t)j, 4);
                o[j] = (float)v;
            }
        } else {
            memcpy(o, row, (size_t)w * 4);
        }
    }
    fclose(f);
    free(row);
    *out = x;
    *n = rows;
    *dim = (size_t)w;
    return 0;
fail:
    fclose(f);
    free(row);
    free(x);
    return -1;
}

int dp_bench_load_vectors(const char *path, float **out, size_t *n, size_t *dim)
{
    *out = NULL;
    *n = *dim = 0;
    if (ends_with(path, ".bvecs")) return read_texmex(path, 1, false, out, n, dim);
    if (ends_with(path, ".ivecs")) return read_texmex(path, 4, true, out, n, dim);
    if (ends_with(path, ".fvecs")) return read_texmex(path, 4, false, out, n, dim);
    if (dp_vectors_load(path, 0, out, n, dim)) {
        dp_cli_fail("bench", "cannot load vectors from %s", path);
        return -1;
    }
    return 0;
}

int dp_bench_read_ivecs(const char *path, int32_t **out, size_t *n, size_t *width)
{
    float *x;
    /* ints pass through a float buffer bit for bit (same width, memcpy) */
    if (read_texmex(path, 4, false, &x, n, width)) return -1;
    *out = (int32_t *)(void *)x;
    return 0;
}

int dp_bench_write_vecs(const char *path, const void *data, size_t n, size_t d)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "doppel bench: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    int32_t dd = (int32_t)d;
    for (size_t i = 0; i < n; i++)
        if (fwrite(&dd, 4, 1, f) != 1 || fwrite((const char *)data + i * d * 4, 4, d, f) != d) {
            fclose(f);
            fprintf(stderr, "doppel bench: cannot write %s\n", path);
            return -1;
        }
    if (fclose(f)) {
        fprintf(stderr, "doppel bench: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static void normalise_rows(float *x, size_t n, size_t d)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < d; j++)
            s += (double)x[i * d + j] * x[i * d + j];
        if (s > 0)
            for (size_t j = 0; j < d; j++)
                x[i * d + j] = (float)(x[i * d + j] / sqrt(s));
    }
}

int dp_bench_load_index(const char *path, dp_bench_set *out)
{
    memset(out, 0, sizeof *out);
    dp_index *ix = NULL;
    if (dp_index_open(path, NULL, &ix)) {
        dp_cli_fail("bench", "--index");
        return -1;
    }
    size_t n = dp_index_count(ix), d = dp_index_dim(ix);
    int m = dp_index_metric(ix);
    if (m != DP_METRIC_L2 && m != DP_METRIC_COSINE) {
        fprintf(stderr, "doppel bench: %s: metric %s is not benchmarked (l2 or cosine)\n", path,
                dp_metric_name(m));
        dp_index_free(ix);
        return -1;
    }
    if (n < 2) {
        fprintf(stderr, "doppel bench: %s holds %zu entries; a benchmark needs at least 2\n", path,
                n);
        dp_index_free(ix);
        return -1;
    }
    out->base = malloc(n * d * sizeof(float));
    if (!out->base) {
        fprintf(stderr, "doppel bench: %s: out of memory for %zu x %zu\n", path, n, d);
        dp_index_free(ix);
        return -1;
    }
    size_t cur = 0, i = 0;
    dp_index_entry e;
    int r;
    while (i < n && (r = dp_index_next(ix, &cur, &e)) == 1)
        memcpy(out->base + d * i++, e.vector, d * sizeof(float));
    dp_index_free(ix);
    if (i != n) {
        fprintf(stderr, "doppel bench: %s: could read only %zu of %zu entries\n", path, i, n);
        dp_bench_set_free(out);
        return -1;
    }
    out->n = n;
    out->dim = d;
    out->metric = m == DP_METRIC_COSINE ? DP_BENCH_ANGULAR : DP_BENCH_EUCLIDEAN;
    if (out->metric == DP_BENCH_ANGULAR) normalise_rows(out->base, n, d);
    return 0;
}

int dp_bench_sample_queries(dp_bench_set *s, size_t nq, uint64_t seed)
{
    if (nq > s->n) nq = s->n;
    size_t *perm = malloc(s->n * sizeof *perm);
    float *q = malloc(nq * s->dim * sizeof *q + 1);
    if (!perm || !q) {
        free(perm);
        free(q);
        fprintf(stderr, "doppel bench: out of memory sampling %zu queries\n", nq);
        return -1;
    }
    for (size_t i = 0; i < s->n; i++)
        perm[i] = i;
    uint64_t r = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    /* partial Fisher-Yates: the first nq slots are a uniform sample */
    for (size_t i = 0; i < nq; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        size_t j = i + (size_t)(r % (uint64_t)(s->n - i));
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        memcpy(q + i * s->dim, s->base + perm[i] * s->dim, s->dim * sizeof *q);
    }
    free(perm);
    free(s->queries);
    s->queries = q;
    s->nq = nq;
    return 0;
}

double dp_bench_distance(int metric, const float *a, const float *b, size_t dim)
{
    if (metric == DP_BENCH_ANGULAR) {
        double ab = 0, aa = 0, bb = 0;
        for (size_t j = 0; j < dim; j++) {
            ab += (double)a[j] * b[j];
            aa += (double)a[j] * a[j];
            bb += (double)b[j] * b[j];
        }
        return aa > 0 && bb > 0 ? 1.0 - ab / sqrt(aa * bb) : 1.0;
    }
    double s = 0;
    for (size_t j = 0; j < dim; j++) {
        double t = (double)a[j] - b[j];
        s += t * t;
    }
    return sqrt(s);
}

void dp_bench_thresholds(const dp_bench_set *s, const int32_t *gt, size_t gt_k, size_t k,
                         double *thr)
{
    for (size_t i = 0; i < s->nq; i++) {
        int32_t id = gt[i * gt_k + (k <= gt_k ? k : gt_k) - 1];
        thr[i] = id >= 0 && (size_t)id < s->n
                     ? dp_bench_distance(s->metric, s->queries + i * s->dim,
                                         s->base + (size_t)id * s->dim, s->dim) +
                           DP_BENCH_TIE_EPS
                     : INFINITY;
    }
}

void dp_bench_score(const dp_bench_set *s, size_t i, const int64_t *ids, size_t k,
                    const int32_t *gt, size_t gt_k, double thr, size_t *strict, size_t *tie)
{
    size_t hs = 0, ht = 0;
    const float *q = s->queries + i * s->dim;
    for (size_t m = 0; m < k; m++) {
        if (ids[m] < 0 || (uint64_t)ids[m] >= s->n) continue;
        for (size_t j = 0; j < k && j < gt_k; j++)
            if (ids[m] == gt[i * gt_k + j]) {
                hs++;
                break;
            }
        if (dp_bench_distance(s->metric, q, s->base + (size_t)ids[m] * s->dim, s->dim) <= thr) ht++;
    }
    *strict = hs;
    *tie = ht;
}

double dp_bench_peak_rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long kb = -1;
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "VmHWM:", 6)) {
                kb = strtol(line + 6, NULL, 10);
                break;
            }
        fclose(f);
        if (kb >= 0) return (double)kb / 1024.0;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return 0;
    return (double)ru.ru_maxrss / 1024.0;
}
