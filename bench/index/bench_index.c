/* Indexing throughput end to end against the model's pure inference
 * throughput, on the same images, in the same process, same threads.
 *
 *   pure inference: every image decoded and preprocessed beforehand (not
 *                   timed), then dp_embedder_run over batches;
 *   end to end:     dp_ingest_dir on a fresh index: walk, hash, decode on
 *                   worker threads while inference runs, commits.
 * The goal: end to end >= 90 % of pure inference.
 *
 * usage: bench_index DIR [--model M] [--threads N] [--batch B] [--limit N] */
#include <doppel/doppel.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char **files;
static size_t nfiles, capfiles;

static void walk(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st)) continue;
        if (S_ISDIR(st.st_mode)) {
            walk(p);
        } else if (S_ISREG(st.st_mode) && dp_ingest_is_image_name(de->d_name)) {
            if (nfiles == capfiles) {
                capfiles = capfiles ? 2 * capfiles : 1024;
                files = realloc(files, capfiles * sizeof *files);
            }
            files[nfiles++] = strdup(p);
        }
    }
    closedir(d);
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [--model M] [--threads N] [--batch B]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1], *model = NULL;
    int threads = 2, batch = 16;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model"))
            model = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[i + 1]);
    }
    walk(dir);
    qsort(files, nfiles, sizeof *files, cmp);
    if (!nfiles) {
        fprintf(stderr, "%s: no images\n", dir);
        return 1;
    }

    dp_embedder_params ep = dp_embedder_default_params();
    ep.model = model;
    ep.threads = threads;
    dp_embedder *e;
    if (dp_embedder_open(&ep, &e)) {
        fprintf(stderr, "%s\n", dp_last_error());
        return 1;
    }
    dp_embedder_info ei;
    dp_embedder_describe(e, &ei);

    /* Pure inference on pre-decoded inputs. */
    float *slots = malloc(nfiles * ei.slot_floats * sizeof(float));
    float *out = malloc((size_t)batch * (size_t)ei.dim * sizeof(float));
    size_t ok = 0;
    for (size_t i = 0; i < nfiles; i++)
        if (!dp_embedder_prepare(e, files[i], slots + ok * ei.slot_floats, NULL)) ok++;
    dp_embedder_run(e, slots, (size_t)batch < ok ? (size_t)batch : ok, out); /* warm-up */
    double best_inf = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        double t = now();
        for (size_t b = 0; b < ok; b += (size_t)batch) {
            size_t m = ok - b < (size_t)batch ? ok - b : (size_t)batch;
            if (dp_embedder_run(e, slots + b * ei.slot_floats, m, out)) {
                fprintf(stderr, "%s\n", dp_last_error());
                return 1;
            }
        }
        t = now() - t;
        if (t < best_inf) best_inf = t;
    }
    free(slots);
    double inf_rate = (double)ok / best_inf;

    /* End to end, best of two fresh runs. */
    char ix[] = "/tmp/dp_bench_index_XXXXXX";
    int fd = mkstemp(ix);
    close(fd);
    double best_e2e = 1e30, best_pipe = 1e30;
    size_t added = 0;
    for (int rep = 0; rep < 2; rep++) {
        unlink(ix);
        dp_ingest_params ip = dp_ingest_default_params();
        ip.decode_threads = threads;
        ip.batch = batch;
        dp_ingest_report r;
        double t = now();
        if (dp_ingest_dir(e, dir, ix, &ip, &r)) {
            fprintf(stderr, "%s\n", dp_last_error());
            return 1;
        }
        t = now() - t;
        added = r.added;
        if (r.embed_seconds < best_pipe) best_pipe = r.embed_seconds;
        dp_ingest_report_free(&r);
        if (t < best_e2e) best_e2e = t;
    }
    unlink(ix);
    double e2e_rate = (double)added / best_e2e;
    /* The pipeline column is decode + inference + commits only: the end-to-end
     * time also walks the folder and hashes every file. */
    printf("| %s | %zu | %d | %d | %.1f | %.1f | %.1f | %.2f |\n", ei.name, ok, threads, batch,
           inf_rate, (double)added / best_pipe, e2e_rate, e2e_rate / inf_rate);
    dp_embedder_free(e);
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    free(out);
    return 0;
}
