// What the C++ peer drivers (hnswlib_driver.cc, annoy_driver.cc) share so
// their CSV rows mean exactly what `doppel bench`'s do: .fvecs/.ivecs input
// checked against each other, ann-benchmarks' recall (a returned id counts
// if its exact distance, in double, is within the k-th true distance +
// 1e-3: Euclidean, or 1 - cos for "angular" rows) beside the strict id
// overlap, single-threaded batch-1 timing (CPU and wall QPS, p50/p99
// latency), then the same queries as one batch over all threads, and the
// process's peak RSS (VmHWM). Header-only: each driver is one g++ command.
#ifndef DP_BENCH_DRIVER_COMMON_H
#define DP_BENCH_DRIVER_COMMON_H

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
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

// .ivecs has .fvecs' layout with int32 cells
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

// The base rows X (n x d), queries Q (nq x d), ground truth G (nq x gk) and
// each query's tie threshold: the k-th true distance + 1e-3.
struct BenchData {
    size_t n, d, nq, gk, k;
    bool angular;
    std::vector<float> X, Q;
    std::vector<int32_t> G;
    std::vector<double> thr;
};

// Reads and cross-checks the three files; exits 2 naming prog on a mismatch.
static BenchData load_bench(const char *prog, const char *base, const char *query, const char *gt, size_t k,
                            bool angular)
{
    BenchData b;
    size_t dq, gn;
    b.k = k;
    b.angular = angular;
    b.X = read_fvecs(base, b.n, b.d);
    b.Q = read_fvecs(query, b.nq, dq);
    b.G = read_ivecs(gt, gn, b.gk);
    if (dq != b.d || gn != b.nq || b.gk < k) {
        fprintf(stderr, "%s: base %zu-d, queries %zu x %zu, ground truth %zu x %zu do not fit\n", prog, b.d, b.nq,
                dq, gn, b.gk);
        exit(2);
    }
    for (int32_t g : b.G)
        if (g < 0 || (size_t)g >= b.n) { fprintf(stderr, "%s: ground truth names row %d of %zu\n", prog, g, b.n); exit(2); }
    b.thr.resize(b.nq);
    for (size_t i = 0; i < b.nq; i++)
        b.thr[i] = dist(angular, b.Q.data() + i * b.d, b.X.data() + (size_t)b.G[i * b.gk + k - 1] * b.d, b.d) + 1e-3;
    return b;
}

// The comma-separated sweep values of s ("10,16,-1"), zeros dropped.
static std::vector<long> parse_sweep(const std::string &s)
{
    std::vector<long> out;
    size_t pos = 0;
    while (pos < s.size()) {
        size_t e = s.find(',', pos);
        if (e == std::string::npos) e = s.size();
        long v = strtol(s.substr(pos, e - pos).c_str(), nullptr, 10);
        pos = e + 1;
        if (v) out.push_back(v);
    }
    return out;
}

struct SweepPoint {
    double recall, qps_cpu, qps_wall, p50_us, p99_us, recall_ids, qps_batch;
};

// One sweep point: search(i, ids) answers query i into ids (at most k, and
// must be safe from several threads at once). 50 warm-up queries, then
// every query one at a time on this thread (the recall check counts in the
// CPU and wall QPS, as in doppel bench), then all of them as one batch over
// bthreads threads (0: skipped).
template <class Search> static SweepPoint measure(const BenchData &b, int bthreads, Search search)
{
    const size_t nq = b.nq, k = b.k, d = b.d;
    std::vector<int64_t> ids;
    ids.reserve(k);
    for (size_t i = 0; i < nq && i < 50; i++) search(i, ids);
    std::vector<double> lat(nq);
    size_t hit = 0, tie = 0;
    double cs = tcpu(), ws = wall();
    for (size_t i = 0; i < nq; i++) {
        double t = wall();
        search(i, ids);
        lat[i] = wall() - t;
        for (int64_t id : ids) {
            for (size_t j = 0; j < k; j++)
                if (b.G[i * b.gk + j] == id) { hit++; break; }
            if (dist(b.angular, b.Q.data() + i * d, b.X.data() + (size_t)id * d, d) <= b.thr[i]) tie++;
        }
    }
    double ct = tcpu() - cs, wt = wall() - ws;
    std::sort(lat.begin(), lat.end());
    SweepPoint p;
    p.recall = (double)tie / (nq * k);
    p.recall_ids = (double)hit / (nq * k);
    p.qps_cpu = nq / ct;
    p.qps_wall = nq / wt;
    p.p50_us = lat[nq / 2] * 1e6;
    p.p99_us = lat[(size_t)(0.99 * (nq - 1))] * 1e6;
    p.qps_batch = 0;
    if (bthreads > 0) {
        std::atomic<size_t> qn(0);
        std::vector<std::thread> bt;
        double bs = wall();
        for (int t = 0; t < bthreads; t++)
            bt.emplace_back([&] {
                std::vector<int64_t> r;
                r.reserve(k);
                for (size_t i; (i = qn++) < nq;) search(i, r);
            });
        for (auto &t : bt) t.join();
        p.qps_batch = nq / (wall() - bs);
    }
    return p;
}

// One CSV row in doppel bench's columns: peer, set, build parameters, search
// parameter, recall, QPS (CPU, wall), p50/p99 us, build wall/CPU s, bytes,
// recall_ids, batch QPS, batch threads, peak RSS MB.
static void print_row(const char *peer, const char *name, const char *build, const char *search,
                      const SweepPoint &p, double bw, double bc, size_t bytes, int bthreads)
{
    printf("%s,%s,%s,%s,%.4f,%.0f,%.0f,%.1f,%.1f,%.1f,%.1f,%zu,%.4f,%.0f,%d,%.1f\n", peer, name, build, search,
           p.recall, p.qps_cpu, p.qps_wall, p.p50_us, p.p99_us, bw, bc, bytes, p.recall_ids, p.qps_batch, bthreads,
           peak_rss_mb());
    fflush(stdout);
}

#endif
