// Peer driver: Annoy (annoylib.h + kissrandom.h from Debian's r-cran-rcppannoy,
// compiled here with -O3 -march=native; its AVX distance kernels switch on
// with __AVX__) on the same .fvecs data and ground truth as `doppel bench`.
// Euclidean trees (the rows are L2-normalised, so they rank as angular
// does), built on N threads (Annoy's multi-threaded build policy), then
// single-threaded batch-1 queries over a search_k sweep (-1 = Annoy's
// default, n_trees * k), then the same queries as one batch over all
// threads. Prints the CSV columns of doppel bench (see hnswlib_driver.cc).
#define ANNOYLIB_MULTITHREADED_BUILD
#include <annoylib.h>
#include <kissrandom.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

typedef AnnoyIndex<int32_t, float, Euclidean, Kiss64Random, AnnoyIndexMultiThreadedBuildPolicy> AnnoyBase;

// the node array's size (protected in annoylib): what a saved index holds
struct Annoy : AnnoyBase {
    explicit Annoy(int f) : AnnoyBase(f) {}
    size_t bytes() const { return (size_t)this->_s * (size_t)this->_n_nodes; }
};

static std::vector<float> read_fvecs(const char *p, size_t &n, size_t &d)
{
    FILE *f = fopen(p, "rb");
    if (!f) { perror(p); exit(2); }
    int32_t w;
    std::vector<float> out;
    n = 0;
    d = 0;
    while (fread(&w, 4, 1, f) == 1) {
        if (w < 1 || w > 65536 || (d && (size_t)w != d)) { fprintf(stderr, "%s: bad row width %d\n", p, w); exit(2); }
        d = (size_t)w;
        size_t o = out.size();
        out.resize(o + d);
        if (fread(out.data() + o, 4, d, f) != d) { fprintf(stderr, "%s: truncated\n", p); exit(2); }
        n++;
    }
    fclose(f);
    return out;
}

static std::vector<int32_t> read_ivecs(const char *p, size_t &n, size_t &d)
{
    std::vector<float> v = read_fvecs(p, n, d);
    std::vector<int32_t> out(v.size());
    memcpy(out.data(), v.data(), v.size() * 4);
    return out;
}

static double wall() { timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static double tcpu() { timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static double pcpu() { timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static double peak_rss_mb()
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, nullptr, 10);
    if (f) fclose(f);
    return kb / 1024.0;
}

// ann-benchmarks' distances, in double
static double dist(bool angular, const float *a, const float *b, size_t d)
{
    double s = 0, aa = 0, bb = 0;
    for (size_t j = 0; j < d; j++) {
        if (angular) {
            s += (double)a[j] * b[j];
            aa += (double)a[j] * a[j];
            bb += (double)b[j] * b[j];
        } else {
            double t = (double)a[j] - b[j];
            s += t * t;
        }
    }
    return angular ? (aa > 0 && bb > 0 ? 1 - s / std::sqrt(aa * bb) : 1) : std::sqrt(s);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s BASE.fvecs QUERY.fvecs GT.ivecs NAME [trees threads search_k,... "
                        "[euclidean|angular [batch_threads]]]\n", argv[0]);
        return 2;
    }
    size_t n, d, nq, dq, gn, gk;
    std::vector<float> X = read_fvecs(argv[1], n, d), Q = read_fvecs(argv[2], nq, dq);
    std::vector<int32_t> G = read_ivecs(argv[3], gn, gk);
    const char *name = argv[4];
    int trees = argc > 5 ? atoi(argv[5]) : 40;
    int threads = argc > 6 ? atoi(argv[6]) : 2;
    std::string sks = argc > 7 ? argv[7] : "-1,100,200,400,1000,2000,4000,10000,20000";
    bool angular = argc > 8 && !strcmp(argv[8], "angular");
    int bthreads = argc > 9 ? atoi(argv[9]) : (int)std::thread::hardware_concurrency();
    const size_t k = 10;
    if (dq != d || gn != nq || gk < k || trees < 1) {
        fprintf(stderr, "annoy_driver: base %zu-d, queries %zu x %zu, ground truth %zu x %zu, %d trees do not fit\n",
                d, nq, dq, gn, gk, trees);
        return 2;
    }
    for (int32_t g : G)
        if (g < 0 || (size_t)g >= n) { fprintf(stderr, "annoy_driver: ground truth names row %d of %zu\n", g, n); return 2; }
    std::vector<double> thr(nq);
    for (size_t i = 0; i < nq; i++)
        thr[i] = dist(angular, Q.data() + i * d, X.data() + (size_t)G[i * gk + k - 1] * d, d) + 1e-3;

    Annoy idx((int)d);
    idx.set_seed(42);
    double w0 = wall(), c0 = pcpu();
    for (size_t i = 0; i < n; i++) idx.add_item((int32_t)i, X.data() + i * d);
    char *err = nullptr;
    if (!idx.build(trees, threads, &err)) {
        fprintf(stderr, "annoy_driver: build failed: %s\n", err ? err : "?");
        return 1;
    }
    double bw = wall() - w0, bc = pcpu() - c0;
    size_t bytes = idx.bytes();
    fprintf(stderr, "annoy built %zu x %zu, %d trees in %.1f s (%.1f CPU-s), %zu bytes\n", n, d, trees, bw, bc,
            bytes);
    std::vector<double> lat(nq);
    size_t pos = 0;
    std::vector<int32_t> res;
    res.reserve(k);
    while (pos < sks.size()) {
        size_t e = sks.find(',', pos);
        if (e == std::string::npos) e = sks.size();
        long sk = strtol(sks.substr(pos, e - pos).c_str(), nullptr, 10);
        pos = e + 1;
        if (!sk || sk < -1) continue;
        for (size_t i = 0; i < nq && i < 50; i++) {
            res.clear();
            idx.get_nns_by_vector(Q.data() + i * d, k, (int)sk, &res, nullptr);
        }
        size_t hit = 0, tie = 0;
        double cs = tcpu(), ws = wall();
        for (size_t i = 0; i < nq; i++) {
            double t = wall();
            res.clear();
            idx.get_nns_by_vector(Q.data() + i * d, k, (int)sk, &res, nullptr);
            lat[i] = wall() - t;
            for (int32_t id : res) {
                for (size_t j = 0; j < k; j++)
                    if (G[i * gk + j] == id) { hit++; break; }
                if (dist(angular, Q.data() + i * d, X.data() + (size_t)id * d, d) <= thr[i]) tie++;
            }
        }
        double ct = tcpu() - cs, wt = wall() - ws;
        std::sort(lat.begin(), lat.end());
        double qb = 0;
        if (bthreads > 0) {
            std::atomic<size_t> qn(0);
            std::vector<std::thread> bt;
            double bs = wall();
            for (int t = 0; t < bthreads; t++)
                bt.emplace_back([&] {
                    std::vector<int32_t> r;
                    for (size_t i; (i = qn++) < nq;) {
                        r.clear();
                        idx.get_nns_by_vector(Q.data() + i * d, k, (int)sk, &r, nullptr);
                    }
                });
            for (auto &t : bt) t.join();
            qb = nq / (wall() - bs);
        }
        char search[48];
        if (sk == -1)
            snprintf(search, sizeof search, "search_k=%zu (default)", (size_t)trees * k);
        else
            snprintf(search, sizeof search, "search_k=%ld", sk);
        printf("annoy,%s,trees=%d,%s,%.4f,%.0f,%.0f,%.1f,%.1f,%.1f,%.1f,%zu,%.4f,%.0f,%d,%.1f\n", name, trees,
               search, (double)tie / (nq * k), nq / ct, nq / wt, lat[nq / 2] * 1e6,
               lat[(size_t)(0.99 * (nq - 1))] * 1e6, bw, bc, bytes, (double)hit / (nq * k), qb, bthreads,
               peak_rss_mb());
        fflush(stdout);
    }
    return 0;
}
