// Peer driver: hnswlib (Debian's libhnswlib-dev headers, compiled here with
// -O3 -march=native) on the same .fvecs data and ground truth as
// `doppel bench`. Build on N threads, then single-threaded batch-1 queries
// over an ef sweep, then the same queries as one batch over all threads.
// Prints the CSV columns of doppel bench: recall is ann-benchmarks' (a
// returned id counts if its exact distance is within the k-th true distance
// + 1e-3; Euclidean distance, or 1 - cos for "angular" rows), recall_ids the
// strict overlap, peak_rss_mb this process's VmHWM.
#include <hnswlib/hnswlib.h>

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
        fprintf(stderr, "usage: %s BASE.fvecs QUERY.fvecs GT.ivecs NAME [M efc threads ef,ef,... "
                        "[euclidean|angular [batch_threads]]]\n", argv[0]);
        return 2;
    }
    size_t n, d, nq, dq, gn, gk;
    std::vector<float> X = read_fvecs(argv[1], n, d), Q = read_fvecs(argv[2], nq, dq);
    std::vector<int32_t> G = read_ivecs(argv[3], gn, gk);
    const char *name = argv[4];
    int M = argc > 5 ? atoi(argv[5]) : 16, efc = argc > 6 ? atoi(argv[6]) : 200;
    int threads = argc > 7 ? atoi(argv[7]) : 2;
    std::string efs = argc > 8 ? argv[8] : "10,16,24,32,48,64,96,128,192,256,512";
    bool angular = argc > 9 && !strcmp(argv[9], "angular");
    int bthreads = argc > 10 ? atoi(argv[10]) : (int)std::thread::hardware_concurrency();
    const size_t k = 10;
    if (dq != d || gn != nq || gk < k) {
        fprintf(stderr, "hnswlib_driver: base %zu-d, queries %zu x %zu, ground truth %zu x %zu do not fit\n",
                d, nq, dq, gn, gk);
        return 2;
    }
    for (int32_t g : G)
        if (g < 0 || (size_t)g >= n) { fprintf(stderr, "hnswlib_driver: ground truth names row %d of %zu\n", g, n); return 2; }
    std::vector<double> thr(nq);
    for (size_t i = 0; i < nq; i++)
        thr[i] = dist(angular, Q.data() + i * d, X.data() + (size_t)G[i * gk + k - 1] * d, d) + 1e-3;

    // normalised rows: L2 ranks as cosine does
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
        if (!ef) continue;
        idx.setEf(ef);
        for (size_t i = 0; i < nq && i < 50; i++) idx.searchKnn(Q.data() + i * d, k);
        size_t hit = 0, tie = 0;
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
                if (dist(angular, Q.data() + i * d, X.data() + id * d, d) <= thr[i]) tie++;
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
                    for (size_t i; (i = qn++) < nq;) idx.searchKnn(Q.data() + i * d, k);
                });
            for (auto &t : bt) t.join();
            qb = nq / (wall() - bs);
        }
        printf("hnswlib,%s,M=%d efc=%d,ef=%zu,%.4f,%.0f,%.0f,%.1f,%.1f,%.1f,%.1f,%zu,%.4f,%.0f,%d,%.1f\n", name, M,
               efc, ef, (double)tie / (nq * k), nq / ct, nq / wt, lat[nq / 2] * 1e6,
               lat[(size_t)(0.99 * (nq - 1))] * 1e6, bw, bc, bytes, (double)hit / (nq * k), qb, bthreads,
               peak_rss_mb());
        fflush(stdout);
    }
    return 0;
}
