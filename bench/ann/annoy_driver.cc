// Peer driver: Annoy (annoylib.h + kissrandom.h from Debian's r-cran-rcppannoy,
// compiled here with -O3 -march=native; its AVX distance kernels switch on
// with __AVX__) on the same .fvecs data and ground truth as `doppel bench`.
// Euclidean trees (the rows are L2-normalised, so they rank as angular
// does), built on N threads (Annoy's multi-threaded build policy), then
// single-threaded batch-1 queries over a search_k sweep (-1 = Annoy's
// default, n_trees * k), then the same queries as one batch over all
// threads. Prints the CSV columns of doppel bench (see driver_common.h).
#define ANNOYLIB_MULTITHREADED_BUILD
#include <annoylib.h>
#include <kissrandom.h>

#include "driver_common.h"

typedef AnnoyIndex<int32_t, float, Euclidean, Kiss64Random, AnnoyIndexMultiThreadedBuildPolicy> AnnoyBase;

// the node array's size (protected in annoylib): what a saved index holds
struct Annoy : AnnoyBase {
    explicit Annoy(int f) : AnnoyBase(f) {}
    size_t bytes() const { return (size_t)this->_s * (size_t)this->_n_nodes; }
};

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s BASE.fvecs QUERY.fvecs GT.ivecs NAME [trees threads search_k,... "
                        "[euclidean|angular [batch_threads]]]\n", argv[0]);
        return 2;
    }
    const char *name = argv[4];
    int trees = argc > 5 ? atoi(argv[5]) : 40;
    int threads = argc > 6 ? atoi(argv[6]) : 2;
    std::string sks = argc > 7 ? argv[7] : "-1,100,200,400,1000,2000,4000,10000,20000";
    bool angular = argc > 8 && !strcmp(argv[8], "angular");
    int bthreads = argc > 9 ? atoi(argv[9]) : (int)std::thread::hardware_concurrency();
    const size_t k = 10;
    if (trees < 1) {
        fprintf(stderr, "annoy_driver: %d trees\n", trees);
        return 2;
    }
    BenchData b = load_bench("annoy_driver", argv[1], argv[2], argv[3], k, angular);
    const size_t n = b.n, d = b.d;
    const float *Q = b.Q.data();

    Annoy idx((int)d);
    idx.set_seed(42);
    double w0 = wall(), c0 = pcpu();
    for (size_t i = 0; i < n; i++) idx.add_item((int32_t)i, b.X.data() + i * d);
    char *err = nullptr;
    if (!idx.build(trees, threads, &err)) {
        fprintf(stderr, "annoy_driver: build failed: %s\n", err ? err : "?");
        return 1;
    }
    double bw = wall() - w0, bc = pcpu() - c0;
    size_t bytes = idx.bytes();
    fprintf(stderr, "annoy built %zu x %zu, %d trees in %.1f s (%.1f CPU-s), %zu bytes\n", n, d, trees, bw, bc,
            bytes);
    char build[32];
    snprintf(build, sizeof build, "trees=%d", trees);
    for (long sk : parse_sweep(sks)) {
        if (sk < -1) continue;
        SweepPoint p = measure(b, bthreads, [&](size_t i, std::vector<int64_t> &ids) {
            thread_local std::vector<int32_t> res;
            res.clear();
            idx.get_nns_by_vector(Q + i * d, k, (int)sk, &res, nullptr);
            ids.assign(res.begin(), res.end());
        });
        char search[48];
        if (sk == -1)
            snprintf(search, sizeof search, "search_k=%zu (default)", (size_t)trees * k);
        else
            snprintf(search, sizeof search, "search_k=%ld", sk);
        print_row("annoy", name, build, search, p, bw, bc, bytes, bthreads);
    }
    return 0;
}
