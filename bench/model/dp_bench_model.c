/* dp_bench_model: time doppel's engine on one ONNX model, one configuration.
 *
 *   dp_bench_model MODEL.onnx --size WxH [--output NAME] [--threads T]
 *                  [--batch B] [--warmup W] [--reps R]
 *
 * Opens the model asking for NAME (the graph outputs if omitted), runs W
 * untimed dp_model_run calls on a [B,3,H,W] input, then R timed ones, and
 * prints one JSON line: the per-run times in ms, their median, the open time
 * and the process's peak RSS (the hook bench/model/run.sh uses for memory).
 * The input is a fixed pseudo-random image in [0,1): CNN run time does not
 * depend on pixel values, and bench/model/ort_bench.cjs feeds the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "doppel/model.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: dp_bench_model MODEL.onnx --size WxH [--output NAME] [--threads T] "
                        "[--batch B] [--warmup W] [--reps R]\n");
        return 2;
    }
    const char *path = argv[1], *output = NULL;
    int w = 0, h = 0, threads = 1, batch = 1, warmup = 3, reps = 10;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--size")) {
            if (sscanf(v, "%dx%d", &w, &h) != 2) w = 0;
        } else if (!strcmp(k, "--output")) {
            output = v;
        } else if (!strcmp(k, "--threads")) {
            threads = atoi(v);
        } else if (!strcmp(k, "--batch")) {
            batch = atoi(v);
        } else if (!strcmp(k, "--warmup")) {
            warmup = atoi(v);
        } else if (!strcmp(k, "--reps")) {
            reps = atoi(v);
        } else {
            fprintf(stderr, "dp_bench_model: unknown option %s\n", k);
            return 2;
        }
    }
    if (w < 1 || h < 1 || w > 4096 || h > 4096 || batch < 1 || batch > 1024 || reps < 1 ||
        warmup < 0 || threads < 0) {
        fprintf(stderr, "dp_bench_model: bad --size/--batch/--reps/--warmup/--threads\n");
        return 2;
    }

    size_t n = (size_t)batch * 3 * (size_t)w * (size_t)h;
    float *x = malloc(n * sizeof(float));
    double *times = malloc((size_t)reps * sizeof(double));
    dp_model *m = NULL;
    int rc = 1;
    if (!x || !times) {
        fprintf(stderr, "dp_bench_model: out of memory\n");
        goto done;
    }
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f;
    }

    dp_model_params p = dp_model_default_params();
    p.threads = threads;
    const char *outs[1] = {output};
    if (output) {
        p.outputs = outs;
        p.n_outputs = 1;
    }
    double t0 = now_ms();
    if (dp_model_open(path, &p, &m)) {
        fprintf(stderr, "dp_bench_model: %s\n", dp_last_error());
        goto done;
    }
    double open_ms = now_ms() - t0;
    dp_tensor in = {.name = NULL, .dtype = DP_F32, .ndim = 4, .dims = {batch, 3, h, w}, .data = x};
    for (int i = 0; i < warmup + reps; i++) {
        double t = now_ms();
        if (dp_model_run(m, &in, 1)) {
            fprintf(stderr, "dp_bench_model: %s\n", dp_last_error());
            goto done;
        }
        if (i >= warmup) times[i - warmup] = now_ms() - t;
    }
    dp_tensor o;
    if (dp_model_output(m, output, &o)) {
        fprintf(stderr, "dp_bench_model: %s\n", dp_last_error());
        goto done;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"engine\":\"doppel\",\"model\":\"%s\",\"threads\":%d,\"batch\":%d,\"open_ms\":%.1f,"
           "\"times_ms\":[",
           path, threads, batch, open_ms);
    for (int i = 0; i < reps; i++)
        printf("%s%.3f", i ? "," : "", times[i]);
    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    double med = reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    printf("],\"median_ms\":%.3f,\"peak_rss_kb\":%ld}\n", med, ru.ru_maxrss);
    rc = 0;
done:
    dp_model_free(m);
    free(times);
    free(x);
    return rc;
}
