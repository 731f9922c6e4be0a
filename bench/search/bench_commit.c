/* Commit cost: what `doppel index` pays every 256 images on a 100,000 x 768
 * index, for the append-only commit doppel uses versus rewriting the whole
 * file (dp_index_compact, temp + fsync + rename). Prints one JSON object.
 *
 * usage: bench_commit DIR [rows=100000] [dim=768] [batch=256] */
#include <doppel/doppel.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

static void add_rows(dp_index *ix, size_t n, size_t dim, unsigned *seed)
{
    float *v = malloc(dim * sizeof *v);
    char path[64];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < dim; j++)
            v[j] = (float)rand_r(seed) / (float)RAND_MAX - 0.5f;
        snprintf(path, sizeof path, "class%zu/image%u.jpg", i % 100, rand_r(seed));
        dp_index_entry e = {
            .path = path, .label = "class", .width = 640, .height = 480, .vector = v};
        if (dp_index_add(ix, &e, 1, NULL)) {
            fprintf(stderr, "%s\n", dp_last_error());
            exit(1);
        }
    }
    free(v);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [rows] [dim] [batch]\n", argv[0]);
        return 2;
    }
    size_t rows = argc > 2 ? (size_t)atol(argv[2]) : 100000;
    size_t dim = argc > 3 ? (size_t)atol(argv[3]) : 768;
    size_t batch = argc > 4 ? (size_t)atol(argv[4]) : 256;
    char path[4096];
    snprintf(path, sizeof path, "%s/commit-bench.dpl", argv[1]);
    unsigned seed = 1;
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = (uint32_t)dim;
    cp.normalized = false;
    dp_index *ix;
    if (dp_index_create(path, &cp, &ix)) return 1;
    add_rows(ix, rows, dim, &seed);
    double t0 = now();
    if (dp_index_commit(ix)) return 1;
    double first = now() - t0;
    enum { REPS = 9 };
    double app[REPS], full[3];
    for (int r = 0; r < REPS; r++) {
        add_rows(ix, batch, dim, &seed);
        t0 = now();
        if (dp_index_commit(ix)) return 1;
        app[r] = now() - t0;
    }
    for (int r = 0; r < 3; r++) {
        add_rows(ix, batch, dim, &seed);
        t0 = now();
        if (dp_index_compact(ix)) return 1;
        full[r] = now() - t0;
    }
    qsort(app, REPS, sizeof *app, cmp_d);
    qsort(full, 3, sizeof *full, cmp_d);
    dp_index_info in;
    dp_index_describe(ix, &in);
    printf("{\"rows\": %zu, \"dim\": %zu, \"batch\": %zu, \"file_bytes\": %llu, "
           "\"first_write_s\": %.3f, \"append_commit_ms\": %.2f, \"full_rewrite_ms\": %.1f}\n",
           rows, dim, batch, (unsigned long long)in.file_bytes, first, app[REPS / 2] * 1e3,
           full[1] * 1e3);
    dp_index_free(ix);
    remove(path);
    return 0;
}
