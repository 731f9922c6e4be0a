// Peer driver: hnswlib (Debian's libhnswlib-dev headers, compiled here with
// -O3 -march=native) on the same .fvecs data and ground truth as
// `doppel bench`. Build on N threads, then single-threaded batch-1 queries
// over an ef sweep. Prints the same CSV columns as doppel bench.
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

static std::vector<float> read_fvecs(const char *p, size_t &n, size_t &d)
{
    FILE *f = fopen(p, "rb");
    if (!f) { perror(p); exit(2); }
    int32_t w;
    std::vector<float> out;
    n = 0;
    while (fread(&w, 4, 1, f) == 1) {
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

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s BASE.fvecs QUERY.fvecs GT.ivecs NAME [M efc threads ef,ef,...]\n", argv[0]);
        return 2;
    }
    size_t n, d, nq, dq, gn, gk;
    std::vector<float> X = read_fvecs(argv[1], n, d), Q = read_fvecs(argv[2], nq, dq);
    std::vector<int32_t> G = read_ivecs(argv[3], gn, gk);
    const char *name = argv[4];
    int M = argc > 5 ? atoi(argv[5]) : 16, efc = argc > 6 ? atoi(argv[6]) : 200;
    int threads = argc > 7 ? atoi(argv[7]) : 2;
    std::string efs = argc > 8 ? argv[8] : "10,16,24,32,48,64,96,128,192,256,512";
    const size_t k = 10;
    hnswlib::L2Space space(d);
    hnswlib::HierarchicalNSW<float> idx(&space, n, M, efc, 42);
    double w0 = wall(), c0 = pcpu();
    idx.addPoint(X.data(), 0);
    std::atomic<size_t> next(1);
    std::vector<std::thread> th;
    for (int t = 0; t < threads; t++)
        th.emplace_back([&] {
            for (size_t i; (i = next++) < n;) idx.addPoint(X.data() + i * d, i);
        });
    for (auto &t : th) t.join();
    double bw = wall() - w0, bc = pcpu() - c0;
    size_t bytes = n * idx.size_data_per_element_;
    for (size_t i = 0; i < n; i++)
        bytes += idx.element_levels_[i] * idx.size_links_per_element_;
    fprintf(stderr, "hnswlib built %zu x %zu in %.1f s (%.1f CPU-s), %zu bytes\n", n, d, bw, bc, bytes);
    std::vector<double> lat(nq);
    size_t pos = 0;
    while (pos < efs.size()) {
        size_t e = efs.find(',', pos);
        if (e == std::string::npos) e = efs.size();
        size_t ef = strtoul(efs.substr(pos, e - pos).c_str(), nullptr, 10);
        pos = e + 1;
        idx.setEf(ef);
        for (size_t i = 0; i < nq && i < 50; i++) idx.searchKnn(Q.data() + i * d, k);
        size_t hit = 0;
        double cs = tcpu(), ws = wall();
        for (size_t i = 0; i < nq; i++) {
            double t = wall();
            auto r = idx.searchKnn(Q.data() + i * d, k);
            lat[i] = wall() - t;
            while (!r.empty()) {
                size_t id = r.top().second;
                r.pop();
                for (size_t j = 0; j < k; j++)
                    if ((size_t)G[i * gk + j] == id) { hit++; break; }
            }
        }
        double ct = tcpu() - cs, wt = wall() - ws;
        std::sort(lat.begin(), lat.end());
        printf("hnswlib,%s,M=%d efc=%d,ef=%zu,%.4f,%.0f,%.0f,%.1f,%.1f,%.1f,%.1f,%zu\n", name, M, efc, ef,
               (double)hit / (nq * k), nq / ct, nq / wt, lat[nq / 2] * 1e6, lat[(size_t)(0.99 * (nq - 1))] * 1e6,
               bw, bc, bytes);
        fflush(stdout);
    }
    return 0;
}
