/* doppel bench: ann-benchmarks-style measurement of the ANN structures.
 * Builds on a synthetic set or vector files, takes the exact search as
 * ground truth (cached beside the data so peers score against the same
 * answers), and sweeps the search parameter (HNSW ef; IVF-PQ nprobe, with
 * and without an exact rerank), printing recall@k, queries/s
 * of single-threaded batch-1 queries (by CPU time and by wall time), p50/p99
 * latency, build time and the structure's bytes as CSV. */
#include "bench.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void help(FILE *f)
{
    fprintf(f,
            "usage: doppel bench (--synthetic SPEC | --base FILE --queries FILE | --hdf5 FILE |\n"
            "                     --index FILE [--queries FILE]) [options]\n"
            "       doppel bench --plot-csv RESULTS.csv --plot OUT.png [--plot-dataset NAME]\n\n"
            "Measure an ANN structure against the exact search on the same data.\n"
            "SPEC is clustered:N:D (Gaussian clusters, decaying variance spectrum) or\n"
            "book-random:N:D (i.i.d. normal rows, the book's 1,000,000 x 100 set); rows are\n"
            "L2-normalised and seeded. Vector files are .fvecs, .bvecs, .ivecs or .npy.\n"
            "--hdf5 reads an ann-benchmarks file (train, test, neighbors, distances and the\n"
            "metric in its 'distance' attribute: euclidean, or angular, searched as L2 over\n"
            "normalised rows). --index takes the live rows of a doppel index, queries a\n"
            "seeded sample of --nq of them unless --queries is given.\n\n"
            "Columns: recall is ann-benchmarks' (a neighbour counts if its exact distance is\n"
            "at most the k-th true distance + 1e-3), recall_ids the strict id overlap;\n"
            "qps_cpu/qps_wall and p50/p99 are single-threaded batch-1 queries, qps_batch one\n"
            "batch over batch_threads threads; peak_rss_mb is this process's VmHWM.\n\n"
            "  --nq N               queries for a synthetic set or --index (default 1000)\n"
            "  --data-dir DIR       keep SPEC.base.fvecs, SPEC.query.fvecs, SPEC.gt.ivecs\n"
            "                       (exact top 100) there and reuse them on the next run\n"
            "  --gt FILE.ivecs      ground truth for --base/--queries (computed if absent)\n"
            "  --kind K             hnsw (default), ivfpq or rpforest\n"
            "  --M N                HNSW links per node (default 16)\n"
            "  --ef-construction N  HNSW build candidate list (default 200)\n"
            "  --ef LIST            search sweep (default 10,16,24,32,48,64,96,128,192,256,512)\n"
            "  --nlist N            IVF-PQ cells (default about 4 sqrt(N))\n"
            "  --m N                IVF-PQ sub-quantisers, dividing D (default about D/4)\n"
            "  --opq                IVF-PQ: learn an OPQ rotation (then any --m up to D)\n"
            "  --nprobe LIST        IVF-PQ search sweep (default 1,2,4,8,16,32,64,128)\n"
            "  --rerank LIST        IVF-PQ exact rerank depths, 0 = none; each is swept over\n"
            "                       --nprobe (default 0,100)\n"
            "  --trees N            rpforest trees (default 40, the chapter's Annoy)\n"
            "  --leaf N             rpforest most items per leaf (default 128)\n"
            "  --search-k LIST      rpforest search sweep: leaf entries gathered per query\n"
            "                       (default 100,200,400,1000,2000,4000,10000,20000)\n"
            "  --storage S          HNSW walk records: f32 (default), f16 or int8 (reranked\n"
            "                       exactly from the stored vectors, which count in bytes)\n"
            "  --build-threads N    (default 2)\n"
            "  -k N                 neighbours (default 10)\n"
            "  --seed N             data and build seed (default 42)\n"
            "  --csv FILE           also write the rows to FILE\n"
            "  --save FILE          keep the index with its ANN structure\n"
            "  --load FILE          search FILE's stored structure instead of building (an\n"
            "                       HNSW graph as a private huge-page copy, as a built one is)\n"
            "                       (an index of the same base rows, e.g. from --save)\n"
            "  --batch-threads N    threads of the batch run (default: all cores; 0 = skip)\n"
            "  --plot OUT.png       draw recall against queries/s (log) from the CSV (--csv,\n"
            "                       else OUT.png.csv is written), or from --plot-csv alone\n"
            "  --plot-csv FILE      plot a results CSV (bench/ann/run.sh's) without benchmarking\n"
            "  --plot-dataset NAME  only that dataset's rows (default: all, labelled by set)\n"
            "  --plot-qps COLUMN    qps_cpu (default), qps_wall or qps_batch\n"
            "  -h, --help           this help\n");
}

/* ---- data ---------------------------------------------------------------- */

static uint64_t rs;
static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return ((double)(rs >> 11) + 0.5) / 9007199254740992.0;
}
static float nrand(void)
{
    return (float)(sqrt(-2 * log(urand())) * cos(2 * M_PI * urand()));
}

static void normalise(float *x, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; j++)
        s += (double)x[j] * x[j];
    if (s > 0)
        for (size_t j = 0; j < d; j++)
            x[j] = (float)(x[j] / sqrt(s));
}

/* Rows [0, n) of the set; queries use another stream of the same law. */
static float *synth(const char *kind, size_t n, size_t d, uint64_t seed, uint64_t stream)
{
    float *x = malloc(n * d * sizeof *x);
    if (!x) return NULL;
    if (!strcmp(kind, "book-random")) {
        rs = seed * 0x9e3779b97f4a7c15ull + stream * 0xd1b54a32d192ed03ull + 1;
        for (size_t i = 0; i < n * d; i++)
            x[i] = nrand();
    } else {
        /* sqrt(N) clusters (at least 16): centres N(0, 1); a point is its
         * centre plus noise whose spread falls as 1.5/sqrt(1 + j/8) along
         * dimension j, like the spectrum of CNN embeddings. */
        size_t nc = (size_t)sqrt((double)n);
        if (nc < 16) nc = 16;
        float *c = malloc(nc * d * sizeof *c);
        if (!c) {
            free(x);
            return NULL;
        }
        rs = seed * 0x9e3779b97f4a7c15ull + 12345;
        for (size_t i = 0; i < nc * d; i++)
            c[i] = nrand();
        rs = seed * 0x9e3779b97f4a7c15ull + stream * 0xd1b54a32d192ed03ull + 1;
        for (size_t i = 0; i < n; i++) {
            size_t k = (size_t)(urand() * (double)nc) % nc;
            for (size_t j = 0; j < d; j++)
                x[i * d + j] = c[k * d + j] + 1.5f * nrand() / sqrtf(1.0f + (float)j / 8.0f);
        }
        free(c);
    }
    for (size_t i = 0; i < n; i++)
        normalise(x + i * d, d);
    return x;
}

static int write_vecs(const char *path, const void *data, size_t n, size_t d)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int32_t dd = (int32_t)d;
    for (size_t i = 0; i < n; i++)
        if (fwrite(&dd, 4, 1, f) != 1 || fwrite((const char *)data + i * d * 4, 4, d, f) != d) {
            fclose(f);
            return -1;
        }
    return fclose(f);
}

/* .ivecs: every row must have the same width. */
static int32_t *read_ivecs(const char *path, size_t *n, size_t *d)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    int32_t w = 0;
    if (len < 4 || fread(&w, 4, 1, f) != 1 || w < 1 || w > 100000 || len % (4 * ((long)w + 1))) {
        fclose(f);
        return NULL;
    }
    size_t rows = (size_t)len / (4 * ((size_t)w + 1));
    int32_t *out = malloc(rows * (size_t)w * 4);
    fseek(f, 0, SEEK_SET);
    for (size_t i = 0; out && i < rows; i++) {
        int32_t ww;
        if (fread(&ww, 4, 1, f) != 1 || ww != w || fread(out + i * w, 4, w, f) != (size_t)w) {
            free(out);
            out = NULL;
        }
    }
    fclose(f);
    if (out) {
        *n = rows;
        *d = (size_t)w;
    }
    return out;
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double proc_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
/* The base rows as the index holds them, row i at i * d: the index's own
 * block when its live rows are one (every fresh index), else a copy in
 * *copy. The bench reads them there rather than keeping its own 4 N D bytes,
 * so peak RSS counts the rows once, as the peers' drivers do. */
static const float *index_rows(const dp_index *ix, size_t n, size_t d, float **copy)
{
    dp_index_entry e;
    size_t cur = 0, i = 0;
    const float *first = NULL;
    bool one = true;
    while (one && i < n && dp_index_next(ix, &cur, &e) == 1) {
        if (!i) first = e.vector;
        one = e.vector == first + i * d;
        i++;
    }
    if (one && i == n) return first;
    if (!(*copy = malloc(n * d * sizeof **copy))) return NULL;
    cur = 0;
    for (i = 0; i < n && dp_index_next(ix, &cur, &e) == 1; i++)
        memcpy(*copy + i * d, e.vector, d * sizeof **copy);
    return i == n ? *copy : NULL;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int dp_cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {{"synthetic", required_argument, 0, 'S'},
                                         {"base", required_argument, 0, 'B'},
                                         {"queries", required_argument, 0, 'Q'},
                                         {"gt", required_argument, 0, 'g'},
                                         {"nq", required_argument, 0, 'n'},
                                         {"data-dir", required_argument, 0, 'd'},
                                         {"kind", required_argument, 0, 'K'},
                                         {"M", required_argument, 0, 'm'},
                                         {"ef-construction", required_argument, 0, 'c'},
                                         {"ef", required_argument, 0, 'e'},
                                         {"build-threads", required_argument, 0, 't'},
                                         {"seed", required_argument, 0, 's'},
                                         {"csv", required_argument, 0, 'C'},
                                         {"save", required_argument, 0, 'W'},
                                         {"load", required_argument, 0, 'L'},
                                         {"nlist", required_argument, 0, 'N'},
                                         {"m", required_argument, 0, 'P'},
                                         {"nprobe", required_argument, 0, 'p'},
                                         {"rerank", required_argument, 0, 'R'},
                                         {"trees", required_argument, 0, 1200},
                                         {"leaf", required_argument, 0, 1201},
                                         {"search-k", required_argument, 0, 1202},
                                         {"storage", required_argument, 0, 1100},
                                         {"opq", no_argument, 0, 'O'},
                                         {"hdf5", required_argument, 0, 1000},
                                         {"index", required_argument, 0, 1001},
                                         {"batch-threads", required_argument, 0, 1002},
                                         {"plot", required_argument, 0, 1003},
                                         {"plot-csv", required_argument, 0, 1004},
                                         {"plot-dataset", required_argument, 0, 1005},
                                         {"plot-qps", required_argument, 0, 1006},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *spec = NULL, *base_f = NULL, *query_f = NULL, *gt_f = NULL, *dir = NULL,
               *csv = NULL, *save = NULL, *load = NULL,
               *ef_list = "10,16,24,32,48,64,96,128,192,256,512", *np_list = "1,2,4,8,16,32,64,128",
               *rr_list = "0,100", *hdf5_f = NULL, *index_f = NULL, *plot_png = NULL,
               *plot_csv = NULL, *plot_ds = NULL, *plot_qps = "qps_cpu";
    long bt = sysconf(_SC_NPROCESSORS_ONLN);
    int batch_threads = bt > 0 ? (int)bt : 1;
    size_t nq_syn = 1000, k = 10;
    dp_ann_build_params bp = dp_ann_default_build_params();
    bp.threads = 2;
    const char *sk_list = "100,200,400,1000,2000,4000,10000,20000";
    uint64_t seed = 42;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'S':
            spec = optarg;
            break;
        case 'B':
            base_f = optarg;
            break;
        case 'Q':
            query_f = optarg;
            break;
        case 'g':
            gt_f = optarg;
            break;
        case 'n':
            nq_syn = strtoull(optarg, NULL, 10);
            if (nq_syn < 1 || nq_syn > 1000000) return dp_cli_usage("bench", "--nq: 1..1000000");
            break;
        case 'd':
            dir = optarg;
            break;
        case 'K':
            if (dp_ann_kind_parse(optarg, &bp.kind))
                return dp_cli_usage("bench", "%s", dp_last_error());
            break;
        case 'm':
            bp.M = (uint32_t)atoi(optarg);
            break;
        case 'c':
            bp.ef_construction = (uint32_t)atoi(optarg);
            break;
        case 'e':
            ef_list = optarg;
            break;
        case 't':
            bp.threads = atoi(optarg);
            if (bp.threads < 1) return dp_cli_usage("bench", "--build-threads must be >= 1");
            break;
        case 'k':
            k = strtoull(optarg, NULL, 10);
            if (k < 1 || k > 100) return dp_cli_usage("bench", "-k must be in 1..100");
            break;
        case 's':
            seed = strtoull(optarg, NULL, 10);
            break;
        case 'C':
            csv = optarg;
            break;
        case 'W':
            save = optarg;
            break;
        case 'L':
            load = optarg;
            break;
        case 'N':
            bp.nlist = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'P':
            bp.pq_m = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'p':
            np_list = optarg;
            break;
        case 1100:
            if (dp_ann_storage_parse(optarg, &bp.storage))
                return dp_cli_usage("bench", "--storage: %s", dp_last_error());
            break;
        case 'R':
            rr_list = optarg;
            break;
        case 1200:
            bp.n_trees = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 1201:
            bp.leaf_size = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 1202:
            sk_list = optarg;
            break;
        case 'O':
            bp.opq = true;
            break;
        case 1000:
            hdf5_f = optarg;
            break;
        case 1001:
            index_f = optarg;
            break;
        case 1002:
            batch_threads = atoi(optarg);
            if (batch_threads < 0) return dp_cli_usage("bench", "--batch-threads must be >= 0");
            break;
        case 1003:
            plot_png = optarg;
            break;
        case 1004:
            plot_csv = optarg;
            break;
        case 1005:
            plot_ds = optarg;
            break;
        case 1006:
            plot_qps = optarg;
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("bench", "bad option");
        }
    }
    if (optind != argc) return dp_cli_usage("bench", "unexpected argument '%s'", argv[optind]);
    int sources = !!spec + !!base_f + !!hdf5_f + !!index_f;
    if (plot_csv && !sources) {
        if (!plot_png) return dp_cli_usage("bench", "--plot-csv needs --plot OUT.png");
        return dp_bench_plot_csv(plot_csv, plot_png, plot_ds, plot_qps) ? DP_EXIT_ERROR
                                                                        : DP_EXIT_OK;
    }
    if (sources != 1)
        return dp_cli_usage("bench",
                            "give one of --synthetic SPEC, --base FILE, --hdf5 FILE, --index FILE");
    if (base_f && !query_f) return dp_cli_usage("bench", "--base needs --queries");
    if (query_f && !base_f && !index_f)
        return dp_cli_usage("bench", "--queries goes with --base or --index");
    if (hdf5_f && !dp_bench_have_hdf5()) {
        dp_bench_set none;
        dp_bench_load_hdf5(hdf5_f, &none); /* says how to get HDF5 support */
        return DP_EXIT_ERROR;
    }
    char csv_auto[1100];
    if (plot_png && !csv) {
        snprintf(csv_auto, sizeof csv_auto, "%s.csv", plot_png);
        csv = csv_auto;
    }
    bp.seed = seed;

    float *X = NULL, *Q = NULL, *base_copy = NULL;
    size_t n = 0, d = 0, nq = 0, gn = 0, gk = 0;
    int metric = DP_BENCH_EUCLIDEAN;
    double *thr = NULL;
    int32_t *gt = NULL;
    char name[256], pb[1024], pq[1024], pg[1024];
    int rc = DP_EXIT_ERROR;
    dp_index *ix = NULL;
    dp_ann *a = NULL;
    int64_t *ids = NULL;
    FILE *cf = NULL;
    if (spec) {
        char kind[32];
        unsigned long long sn = 0, sd = 0;
        if (sscanf(spec, "%31[^:]:%llu:%llu", kind, &sn, &sd) != 3 ||
            (strcmp(kind, "clustered") && strcmp(kind, "book-random")) || sn < 1 ||
            sn > 100000000ull || sd < 1 || sd > 4096)
            return dp_cli_usage("bench", "--synthetic clustered:N:D or book-random:N:D");
        snprintf(name, sizeof name, "%s-%llu-%llu-s%llu-q%zu-g2", kind, sn, sd,
                 (unsigned long long)seed, nq_syn);
        n = (size_t)sn;
        d = (size_t)sd;
        nq = nq_syn;
        if (dir) {
            snprintf(pb, sizeof pb, "%s/%s.base.fvecs", dir, name);
            snprintf(pq, sizeof pq, "%s/%s.query.fvecs", dir, name);
            snprintf(pg, sizeof pg, "%s/%s.gt.ivecs", dir, name);
            if (mkdir(dir, 0755) && errno != EEXIST) {
                fprintf(stderr, "doppel bench: cannot create %s\n", dir);
                return DP_EXIT_ERROR;
            }
        }
        if (dir && exists(pb) && exists(pq)) {
            size_t d2, n2;
            if (dp_vectors_load(pb, 0, &X, &n, &d) || dp_vectors_load(pq, 0, &Q, &nq, &d2) ||
                d2 != d) {
                dp_cli_fail("bench", "cannot reload the cached data");
                goto done;
            }
            (void)n2;
        } else {
            X = synth(kind, n, d, seed, 0);
            Q = synth(kind, nq, d, seed, 1);
            if (!X || !Q) {
                fprintf(stderr, "doppel bench: out of memory for %zu x %zu\n", n, d);
                goto done;
            }
            if (dir && (write_vecs(pb, X, n, d) || write_vecs(pq, Q, nq, d))) {
                fprintf(stderr, "doppel bench: cannot write the data to %s\n", dir);
                goto done;
            }
        }
        if (dir) gt_f = pg;
    } else {
        /* files: named after the file, cached for the peers under --data-dir */
        const char *src = base_f ? base_f : hdf5_f ? hdf5_f : index_f;
        const char *bn = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
        snprintf(name, sizeof name, "%s", bn);
        char *dot = strrchr(name, '.');
        if (dot && dot != name) *dot = '\0';
        dp_bench_set fs = {0};
        size_t d2 = 0;
        if (hdf5_f    ? dp_bench_load_hdf5(hdf5_f, &fs)
            : index_f ? dp_bench_load_index(index_f, &fs)
                      : dp_bench_load_vectors(base_f, &fs.base, &fs.n, &fs.dim))
            goto done;
        metric = fs.metric;
        X = fs.base;
        n = fs.n;
        d = fs.dim;
        Q = fs.queries;
        nq = fs.nq;
        gt = fs.gt;
        gn = fs.gt ? fs.nq : 0;
        gk = fs.gt_k;
        if (query_f) {
            free(Q);
            Q = NULL;
            if (dp_bench_load_vectors(query_f, &Q, &nq, &d2)) goto done;
            if (metric == DP_BENCH_ANGULAR)
                for (size_t i = 0; i < nq; i++)
                    normalise(Q + i * d2, d2);
        } else if (index_f) {
            fs.queries = NULL;
            if (dp_bench_sample_queries(&fs, nq_syn, seed)) goto done;
            Q = fs.queries;
            nq = fs.nq;
            d2 = d;
            snprintf(name + strlen(name), sizeof name - strlen(name), "-q%zu-s%llu", nq,
                     (unsigned long long)seed);
        } else {
            d2 = d;
        }
        if (d2 != d) {
            fprintf(stderr, "doppel bench: base has dimension %zu, queries %zu\n", d, d2);
            goto done;
        }
        if (gt && gk < k) {
            fprintf(stderr, "doppel bench: %s holds %zu true neighbours per query, -k is %zu\n",
                    src, gk, k);
            goto done;
        }
        if (dir) {
            if (mkdir(dir, 0755) && errno != EEXIST) {
                fprintf(stderr, "doppel bench: cannot create %s\n", dir);
                goto done;
            }
            snprintf(pb, sizeof pb, "%s/%s.base.fvecs", dir, name);
            snprintf(pq, sizeof pq, "%s/%s.query.fvecs", dir, name);
            snprintf(pg, sizeof pg, "%s/%s.gt.ivecs", dir, name);
            char pm[1100];
            snprintf(pm, sizeof pm, "%s/%s.metric", dir, name);
            FILE *mf = fopen(pm, "w");
            if (!mf || fputs(metric == DP_BENCH_ANGULAR ? "angular\n" : "euclidean\n", mf) < 0 ||
                fclose(mf) || (!exists(pb) && dp_bench_write_vecs(pb, X, n, d)) ||
                (!exists(pq) && dp_bench_write_vecs(pq, Q, nq, d)) ||
                (gt && !exists(pg) && dp_bench_write_vecs(pg, gt, nq, gk))) {
                fprintf(stderr, "doppel bench: cannot write the data to %s\n", dir);
                goto done;
            }
            if (!gt_f) gt_f = pg;
        }
    }

    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = (uint32_t)d;
    cp.metric = DP_METRIC_L2;
    cp.normalized = false;
    if (load) {
        dp_ann_open_params op = dp_ann_default_open_params();
        op.private_nodes = true; /* as hnswlib's loadIndex reads its graph into the heap */
        if (dp_index_open(load, NULL, &ix) || dp_ann_open(ix, &op, &a)) {
            dp_cli_fail("bench", "--load %s", load);
            goto done;
        }
        if (dp_index_count(ix) != n || dp_index_dim(ix) != d) {
            fprintf(stderr, "doppel bench: %s does not hold the %zu x %zu base rows\n", load, n, d);
            goto done;
        }
    } else if (dp_index_create(save ? save : "/nonexistent/bench.dpl", &cp, &ix)) {
        dp_cli_fail("bench", "create");
        goto done;
    }
    if (!load) {
        dp_index_entry *es = calloc(n, sizeof *es);
        if (!es) goto done;
        for (size_t i = 0; i < n; i++)
            es[i].vector = X + i * d;
        int e = dp_index_add(ix, es, n, NULL);
        free(es);
        if (e) {
            dp_cli_fail("bench", "add");
            goto done;
        }
    }
    if (gt) {
        /* the source's own (ann-benchmarks neighbors) */
    } else if (gt_f && exists(gt_f)) {
        gt = read_ivecs(gt_f, &gn, &gk);
        if (!gt || gn != nq || gk < k) {
            fprintf(stderr, "doppel bench: %s does not fit the queries\n", gt_f);
            goto done;
        }
    } else {
        gk = k > 100 ? k : 100;
        if (gk > n) gk = n;
        gn = nq;
        int64_t *gi = malloc(nq * gk * sizeof *gi);
        gt = malloc(nq * gk * sizeof *gt);
        if (!gi || !gt) {
            free(gi);
            goto done;
        }
        dp_search_params sp = dp_search_default_params();
        sp.k = gk;
        double t0 = wall_now();
        if (dp_index_search(ix, Q, nq, &sp, gi, NULL)) {
            free(gi);
            dp_cli_fail("bench", "exact search");
            goto done;
        }
        fprintf(stderr, "ground truth: %zu queries, exact top %zu in %.1f s\n", nq, gk,
                wall_now() - t0);
        for (size_t i = 0; i < nq * gk; i++)
            gt[i] = (int32_t)gi[i];
        free(gi);
        if (gt_f && write_vecs(gt_f, gt, nq, gk))
            fprintf(stderr, "doppel bench: warning: cannot write %s\n", gt_f);
    }

    free(X); /* the index has the rows now (index_rows below) */
    X = NULL;
    double w0 = wall_now(), c0 = proc_cpu_now();
    if (!load && dp_ann_build(ix, &bp, &a)) {
        dp_cli_fail("bench", "build");
        goto done;
    }
    double build_wall = load ? 0 : wall_now() - w0, build_cpu = load ? 0 : proc_cpu_now() - c0;
    if (save && !load && (dp_ann_save(a, ix) || dp_index_commit(ix) || dp_ann_update(a, ix, &bp))) {
        dp_cli_fail("bench", "--save %s", save);
        goto done;
    }
    dp_ann_info info;
    dp_ann_describe(a, &info);
    fprintf(stderr, "built %s over %zu x %zu in %.1f s (%.1f CPU-s), %zu bytes\n",
            dp_ann_kind_name(info.kind), n, d, build_wall, build_cpu, info.bytes);

    if (csv && !(cf = fopen(csv, "w"))) {
        fprintf(stderr, "doppel bench: cannot write %s\n", csv);
        goto done;
    }
    /* bench/ann's peer drivers print these columns too */
    const char *hdr = "impl,dataset,params,search,recall,qps_cpu,qps_wall,p50_us,p99_us,"
                      "build_s,build_cpu_s,bytes,recall_ids,qps_batch,batch_threads,peak_rss_mb\n";
    printf("%s", hdr);
    if (cf) fputs(hdr, cf);
    const float *base = index_rows(ix, n, d, &base_copy);
    if (!base) {
        fprintf(stderr, "doppel bench: cannot read the base rows back from the index\n");
        goto done;
    }
    /* read only from here on */
    dp_bench_set view = {
        .base = (float *)base, .queries = Q, .n = n, .nq = nq, .dim = d, .metric = metric};
    ids = malloc(nq * k * sizeof *ids);
    thr = malloc(nq * sizeof *thr);
    double *lat = malloc(nq * sizeof *lat);
    if (!ids || !lat || !thr) {
        free(lat);
        goto done;
    }
    dp_bench_thresholds(&view, gt, gk, k, thr);
    bool is_pq = info.kind == DP_ANN_IVFPQ, is_rp = info.kind == DP_ANN_RPFOREST;
    if (is_pq && !info.nlist)
        fprintf(stderr, "note: %zu rows are fewer than %d: IVF-PQ searches exactly\n", n,
                DP_IVFPQ_MIN_ROWS);
    char *rlist = strdup(is_pq ? rr_list : "0");
    size_t nrr = 0, rrs[16];
    for (char *tok = strtok(rlist, ","); tok && nrr < 16; tok = strtok(NULL, ","))
        rrs[nrr++] = strtoull(tok, NULL, 10);
    free(rlist);
    for (size_t ri = 0; ri < nrr; ri++) {
        char *list = strdup(is_pq ? np_list : is_rp ? sk_list : ef_list);
        for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
            size_t ef = strtoull(tok, NULL, 10);
            if (ef < 1) continue;
            dp_ann_search_params sp = dp_ann_default_search_params();
            sp.k = k;
            sp.ef = ef;
            sp.nprobe = ef;
            sp.rerank = rrs[ri];
            sp.search_k = ef;
            sp.threads = 1;
            size_t hit = 0, hit_tie = 0;
            /* one warm-up pass over a few queries so page faults are not timed */
            for (size_t i = 0; i < nq && i < 50; i++)
                dp_ann_search(a, Q + i * d, 1, &sp, ids, NULL);
            double cs = cpu_now(), ws = wall_now();
            for (size_t i = 0; i < nq; i++) {
                double t = wall_now();
                if (dp_ann_search(a, Q + i * d, 1, &sp, ids, NULL)) {
                    dp_cli_fail("bench", "search");
                    free(list);
                    free(lat);
                    goto done;
                }
                lat[i] = wall_now() - t;
                size_t hs, ht;
                dp_bench_score(&view, i, ids, k, gt, gk, thr[i], &hs, &ht);
                hit += hs;
                hit_tie += ht;
            }
            double ct = cpu_now() - cs, wt = wall_now() - ws;
            /* the same queries as one batch over all threads (throughput) */
            double qps_batch = 0;
            if (batch_threads > 0) {
                dp_ann_search_params bsp = sp;
                bsp.threads = batch_threads;
                double bs = wall_now();
                if (dp_ann_search(a, Q, nq, &bsp, ids, NULL)) {
                    dp_cli_fail("bench", "batch search");
                    free(list);
                    free(lat);
                    goto done;
                }
                qps_batch = (double)nq / (wall_now() - bs);
            }
            qsort(lat, nq, sizeof *lat, cmp_double);
            char row[640], params[96], impl[48], search[48];
            if (is_rp) {
                snprintf(impl, sizeof impl, "doppel-rpforest");
                snprintf(params, sizeof params, "trees=%u leaf=%u +raw", info.n_trees,
                         info.leaf_size);
                snprintf(search, sizeof search, "search_k=%zu", ef);
            } else if (is_pq) {
                /* the rerank reads the raw vectors: counted with them */
                snprintf(impl, sizeof impl, "doppel-ivfpq%s", sp.rerank ? "-rerank" : "");
                snprintf(params, sizeof params, "nlist=%u m=%u%s%s", info.nlist, info.pq_m,
                         info.opq ? " opq" : "", sp.rerank ? " +raw" : "");
                snprintf(search, sizeof search, sp.rerank ? "nprobe=%zu R=%zu" : "nprobe=%zu", ef,
                         sp.rerank);
            } else {
                bool q8 = info.storage != DP_ANN_STORAGE_F32;
                snprintf(impl, sizeof impl, "doppel-hnsw%s%s", q8 ? "-" : "",
                         q8 ? dp_ann_storage_name(info.storage) : "");
                snprintf(params, sizeof params, "M=%u efc=%u%s", info.M, info.ef_construction,
                         q8 ? " +raw" : "");
                snprintf(search, sizeof search, "ef=%zu", ef);
            }
            /* a rerank reads the raw vectors: counted with them */
            size_t bytes = info.bytes +
                           ((is_pq && sp.rerank) ||
                                    (info.kind == DP_ANN_HNSW && info.storage != DP_ANN_STORAGE_F32)
                                ? n * d * sizeof(float)
                                : 0);
            if (is_rp) bytes += n * d * sizeof(float); /* the exact ranking reads the rows */
            snprintf(row, sizeof row,
                     "%s,%s,%s,%s,%.4f,%.0f,%.0f,%.1f,%.1f,%.1f,%.1f,%zu,%.4f,%.0f,%d,%.1f\n", impl,
                     name, params, search, (double)hit_tie / (double)(nq * k), (double)nq / ct,
                     (double)nq / wt, lat[nq / 2] * 1e6,
                     lat[(size_t)(0.99 * (double)(nq - 1))] * 1e6, build_wall, build_cpu, bytes,
                     (double)hit / (double)(nq * k), qps_batch, batch_threads,
                     dp_bench_peak_rss_mb());
            printf("%s", row);
            fflush(stdout);
            if (cf) fputs(row, cf);
        }
        free(list);
    }
    free(lat);
    if (cf) {
        int e = fclose(cf);
        cf = NULL;
        if (e) {
            fprintf(stderr, "doppel bench: cannot write %s\n", csv);
            goto done;
        }
    }
    if (plot_png && dp_bench_plot_csv(plot_csv ? plot_csv : csv, plot_png, plot_ds, plot_qps))
        goto done;
    rc = DP_EXIT_OK;
done:
    if (cf) fclose(cf);
    free(thr);
    dp_ann_free(a);
    dp_index_free(ix);
    free(X);
    free(base_copy);
    free(Q);
    free(gt);
    free(ids);
    return rc;
}
