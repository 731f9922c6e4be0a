/* Exact-search benchmark driver (public API only): single-query latency
 * beside a STREAM-like read of the same bytes measured query by query in the
 * same process, and batched throughput. Prints one JSON object.
 *
 * usage: bench_search INDEX QUERIES.npy THREADS [single=100] [batch=1000]
 * (THREADS is dp_search_params.threads for both paths and the read pass's
 * OpenMP team). */
#include <doppel/doppel.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* STREAM-like read of the index file itself, through its own read-only
 * mapping: the same page-cache pages doppel scans, the same bytes, the same
 * number of OpenMP threads taking the same 16384-row (6.5 MB at dim 100)
 * chunks in turn as doppel's scan does. A plain summing loop (the compiler
 * vectorises its 16 independent accumulators); no software prefetch. */
static double read_pass(const float *p, size_t n_floats, size_t chunk, int threads, float *sink)
{
    size_t nchunks = (n_floats + chunk - 1) / chunk;
    float total = 0;
    double t0 = now();
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) reduction(+ : total)
    for (size_t c = 0; c < nchunks; c++) {
        const float *a = p + c * chunk;
        size_t n = c + 1 < nchunks ? chunk : n_floats - c * chunk;
        float acc[16] = {0};
        size_t i = 0;
        for (; i + 16 <= n; i += 16)
            for (int j = 0; j < 16; j++)
                acc[j] += a[i + j];
        for (; i < n; i++)
            acc[0] += a[i];
        for (int j = 0; j < 16; j++)
            total += acc[j];
    }
    double dt = now() - t0;
    *sink += total;
    return dt;
}

typedef struct stats {
    double best, median, mean, p90;
} stats;

static stats summarise(double *t, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += t[i];
    qsort(t, n, sizeof *t, cmp_d);
    return (stats){t[0], t[n / 2], sum / (double)n, t[n * 9 / 10]};
}

/* Single queries, each paired with one read pass of the same bytes; the
 * order inside a pair alternates, so load from other jobs falls on both
 * sides alike and the two distributions can be compared directly. */
static void single(const dp_index *ix, const float *q, size_t nq, size_t dim, int threads, int k,
                   const float *file, size_t n_floats, stats *lat, stats *rd)
{
    double *t = malloc(nq * sizeof *t), *r = malloc(nq * sizeof *r);
    int64_t ids[100];
    float d[100], sink = 0;
    dp_search_params sp = dp_search_default_params();
    sp.k = (size_t)k;
    sp.threads = threads;
    const size_t chunk = 16384 * dim; /* doppel's scan task */
    for (size_t i = 0; i < 3; i++) {  /* warm: page tables of both mappings, thread pools */
        dp_index_search(ix, q + i * dim, 1, &sp, ids, d);
        read_pass(file, n_floats, chunk, threads, &sink);
    }
    for (size_t i = 0; i < nq; i++) {
        if (i & 1) r[i] = read_pass(file, n_floats, chunk, threads, &sink);
        double t0 = now();
        if (dp_index_search(ix, q + i * dim, 1, &sp, ids, d)) {
            fprintf(stderr, "search: %s\n", dp_last_error());
            exit(1);
        }
        t[i] = now() - t0;
        if (!(i & 1)) r[i] = read_pass(file, n_floats, chunk, threads, &sink);
    }
    if (sink == 12345.678f) fprintf(stderr, "#");
    *lat = summarise(t, nq);
    *rd = summarise(r, nq);
    free(t);
    free(r);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Best of reps, in queries per second of wall time and of process CPU
 * time (the latter is less disturbed by other jobs taking the cores). */
static void batch(const dp_index *ix, const float *q, size_t nq, int threads, int k, int reps,
                  double *qps, double *cpu_qps)
{
    int64_t *ids = malloc(nq * (size_t)k * sizeof *ids);
    float *d = malloc(nq * (size_t)k * sizeof *d);
    dp_search_params sp = dp_search_default_params();
    sp.k = (size_t)k;
    sp.threads = threads;
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now(), c0 = cpu_now();
        if (dp_index_search(ix, q, nq, &sp, ids, d)) {
            fprintf(stderr, "search: %s\n", dp_last_error());
            exit(1);
        }
        double dt = now() - t0, dc = cpu_now() - c0;
        if (dt < best) best = dt;
        if (dc < best_cpu) best_cpu = dc;
    }
    free(ids);
    free(d);
    *qps = (double)nq / best;
    *cpu_qps = (double)nq / best_cpu;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s INDEX QUERIES.npy THREADS [single=100] [batch=1000]\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[3]);
    size_t n_single = argc > 4 ? (size_t)atol(argv[4]) : 100;
    size_t n_batch = argc > 5 ? (size_t)atol(argv[5]) : 1000;
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
    if (n_single > nq) n_single = nq;
    if (n_batch > nq) n_batch = nq;
    size_t n = dp_index_count(ix);
    size_t n_floats = n * dim;
    double bytes = (double)n_floats * sizeof(float);
    /* The index file's own bytes, mapped separately from doppel's mapping:
     * as many bytes as the vectors (the file holds them plus ids and
     * metadata, so it is long enough). */
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || (double)st.st_size < bytes) {
        fprintf(stderr, "%s: cannot map for the read pass\n", argv[1]);
        return 1;
    }
    const float *file = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (file == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    stats s, r;
    single(ix, q, n_single, dim, threads, 10, file, n_floats, &s, &r);
    munmap((void *)file, (size_t)st.st_size);
    close(fd);
    double qps, cpu_qps;
    batch(ix, q, n_batch, threads, 10, 3, &qps, &cpu_qps);
    printf("{\"system\": \"doppel\", \"threads\": %d, \"n\": %zu, \"dim\": %zu, "
           "\"bytes\": %.0f, \"read_gbs\": %.3f, \"read_best_gbs\": %.3f, "
           "\"bound_ms\": %.3f, \"bound_best_ms\": %.3f, \"single_ms\": %.3f, "
           "\"single_best_ms\": %.3f, \"single_mean_ms\": %.3f, \"single_p90_ms\": %.3f, "
           "\"batch_qps\": %.1f, \"batch_cpu_qps\": %.1f, \"batch_n\": %zu, "
           "\"single_n\": %zu}\n",
           threads, n, dim, bytes, bytes / r.median / 1e9, bytes / r.best / 1e9, r.median * 1e3,
           r.best * 1e3, s.median * 1e3, s.best * 1e3, s.mean * 1e3, s.p90 * 1e3, qps, cpu_qps,
           n_batch, n_single);
    free(q);
    dp_index_free(ix);
    return 0;
}
