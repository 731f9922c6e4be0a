// Peer driver: hnswlib (Debian's libhnswlib-dev headers, compiled here with
// -O3 -march=native) on the same .fvecs data and ground truth as
// `doppel bench`. Build on N threads, then single-threaded batch-1 queries
// over an ef sweep, then the same queries as one batch over all threads.
// Prints the CSV columns of doppel bench (measured as driver_common.h says).
#include <hnswlib/hnswlib.h>

#include "driver_common.h"

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s BASE.fvecs QUERY.fvecs GT.ivecs NAME [M efc threads ef,ef,... "
                        "[euclidean|angular [batch_threads]]]\n", argv[0]);
        return 2;
    }
    const char *name = argv[4];
    int M = argc > 5 ? atoi(argv[5]) : 16, efc = argc > 6 ? atoi(argv[6]) : 200;
    int threads = argc > 7 ? atoi(argv[7]) : 2;
    std::string efs = argc > 8 ? argv[8] : "10,16,24,32,48,64,96,128,192,256,512";
    bool angular = argc > 9 && !strcmp(argv[9], "angular");
    int bthreads = argc > 10 ? atoi(argv[10]) : (int)std::thread::hardware_concurrency();
    const size_t k = 10;
    BenchData b = load_bench("hnswlib_driver", argv[1], argv[2], argv[3], k, angular);
    const size_t n = b.n, d = b.d;
    const float *X = b.X.data(), *Q = b.Q.data();

    // normalised rows: L2 ranks as cosine does
    hnswlib::L2Space space(d);
    hnswlib::HierarchicalNSW<float> idx(&space, n, M, efc, 42);
    double w0 = wall(), c0 = pcpu();
    idx.addPoint(X, 0);
    std::atomic<size_t> next(1);
    std::vector<std::thread> th;
    for (int t = 0; t < threads; t++)
        th.emplace_back([&] {
            for (size_t i; (i = next++) < n;) idx.addPoint(X + i * d, i);
        });
    for (auto &t : th) t.join();
    double bw = wall() - w0, bc = pcpu() - c0;
    /* The graph as hnswlib holds it: level-0 records (vector, links, label),
     * upper-level link blocks, and per element the pointer to its upper
     * blocks and its int level (both needed to search). Left out: the
     * per-element mutexes and the label hash map (build / update only). */
    size_t bytes = n * (idx.size_data_per_element_ + sizeof(void *) + sizeof(int));
    for (size_t i = 0; i < n; i++)
        bytes += idx.element_levels_[i] * idx.size_links_per_element_;
    fprintf(stderr, "hnswlib built %zu x %zu in %.1f s (%.1f CPU-s), %zu bytes\n", n, d, bw, bc, bytes);
    char build[48];
    snprintf(build, sizeof build, "M=%d efc=%d", M, efc);
    for (long ef : parse_sweep(efs)) {
        if (ef < 1) continue;
        idx.setEf((size_t)ef);
        SweepPoint p = measure(b, bthreads, [&](size_t i, std::vector<int64_t> &ids) {
            auto r = idx.searchKnn(Q + i * d, k);
            ids.clear();
            for (; !r.empty(); r.pop()) ids.push_back((int64_t)r.top().second);
        });
        char search[48];
        snprintf(search, sizeof search, "ef=%ld", ef);
        print_row("hnswlib", name, build, search, p, bw, bc, bytes, bthreads);
    }
    return 0;
}
