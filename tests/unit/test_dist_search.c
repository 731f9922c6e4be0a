/* Exact search at the sizes where its parallel, tiled paths take over: an
 * index of 40,000 rows in three segments (two committed, one pending) with
 * removed rows, dim 37 (masked tails), searched through the scan path and
 * the GEMM path with 1, 2 and 3 threads. Checks every query against a
 * brute force in double precision, checks that the thread count never
 * changes a result (ids and distances bit for bit, the per-thread heaps
 * merge to the same top k), and runs a batch of 1,100 queries, which the
 * GEMM path splits into two passes. */
#include "testutil.h" /* first: it defines _GNU_SOURCE */

#include <doppel/doppel.h>

enum { N = 40000, D = 37, NQ = 40 };

static void rand_unit(float *v, size_t d)
{
    double n = 0;
    for (size_t j = 0; j < d; j++) {
        v[j] = nrand(); /* i.i.d. normal, as the benchmark's data */
        n += (double)v[j] * v[j];
    }
    for (size_t j = 0; j < d; j++)
        v[j] = (float)(v[j] / sqrt(n));
}

static double ref_dist(int metric, const float *x, const float *q)
{
    double a = 0, qq = 0;
    for (size_t j = 0; j < D; j++) {
        double u = x[j], v = q[j];
        a += metric == DP_METRIC_L2   ? (u - v) * (u - v)
             : metric == DP_METRIC_L1 ? fabs(u - v)
                                      : u * v;
        qq += v * v;
    }
    if (metric == DP_METRIC_IP) return -a;
    if (metric == DP_METRIC_COSINE) return 1 - a / sqrt(qq);
    return a;
}

typedef struct pair {
    double d;
    size_t i;
} pair;

static int cmp_pair(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    return x->d < y->d ? -1 : x->d > y->d ? 1 : (x->i > y->i) - (x->i < y->i);
}

static int keep_not_5(uint64_t id, void *u)
{
    (void)u;
    return id % 5 != 0;
}

static const float *base;
static const bool *alive;

/* The true order of the live rows for one query (filtered and cut at maxd
 * as asked); *m receives how many there are. The plain case is kept per
 * metric and query, since most checks ask for it again. */
static pair *cache[8][NQ];
static size_t cache_m[8][NQ];

static pair *truth(int metric, const float *q, size_t qi, uint64_t exclude, bool filtered,
                   float maxd, size_t *m)
{
    bool plain = exclude == UINT64_MAX && !filtered && isinf(maxd) && qi < NQ;
    if (plain && cache[metric][qi]) {
        *m = cache_m[metric][qi];
        return cache[metric][qi];
    }
    pair *all = malloc(N * sizeof *all);
    size_t n = 0;
    for (size_t i = 0; i < N; i++) {
        if (!alive[i] || i == exclude || (filtered && i % 5 == 0)) continue;
        double d = ref_dist(metric, base + i * D, q);
        if (d <= maxd) all[n++] = (pair){d, i};
    }
    qsort(all, n, sizeof *all, cmp_pair);
    *m = n;
    if (plain) {
        cache[metric][qi] = all;
        cache_m[metric][qi] = n;
    }
    return all;
}

/* Results of one query against the brute force: the i-th distance equals
 * the true i-th distance (so the set is right up to ties), each id's own
 * distance matches, no id is dead, excluded, filtered or repeated. */
static void check_query(const char *what, int metric, const float *q, size_t qi, size_t k,
                        const int64_t *ids, const float *dist, uint64_t exclude, bool filtered,
                        float maxd)
{
    size_t m;
    pair *all = truth(metric, q, qi, exclude, filtered, maxd, &m);
    for (size_t r = 0; r < k; r++) {
        if (r >= m) {
            CHECK(ids[r] == -1 && isinf(dist[r]), "%s: rank %zu should be padding", what, r);
            continue;
        }
        double tol = 2e-5 * (1 + fabs(all[r].d));
        CHECK(fabs(dist[r] - all[r].d) <= tol, "%s: rank %zu distance %.7f, want %.7f", what, r,
              dist[r], all[r].d);
        CHECK(ids[r] >= 0 && ids[r] < N, "%s: rank %zu id %lld", what, r, (long long)ids[r]);
        if (ids[r] < 0 || ids[r] >= N) continue;
        size_t i = (size_t)ids[r];
        CHECK(fabs(ref_dist(metric, base + i * D, q) - dist[r]) <= tol,
              "%s: rank %zu id %zu is not at distance %.7f", what, r, i, dist[r]);
        CHECK(alive[i] && i != exclude && !(filtered && i % 5 == 0),
              "%s: id %zu should have been left out", what, i);
        for (size_t t = 0; t < r; t++)
            CHECK(ids[t] != ids[r], "%s: id %lld twice", what, (long long)ids[r]);
    }
    if (!(exclude == UINT64_MAX && !filtered && isinf(maxd) && qi < NQ)) free(all); /* not kept */
}

int main(void)
{
    tu_begin("test_dist_search");
    rng = 0x9E3779B97F4A7C15ull;
    const char *path = tpath("ix.dpl");
    float *vecs = malloc((size_t)N * D * sizeof(float));
    bool *live = malloc(N);
    for (size_t i = 0; i < N; i++) {
        rand_unit(vecs + i * D, D);
        live[i] = true;
    }
    base = vecs;
    alive = live;

    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = D;
    dp_index *ix = NULL;
    OK(dp_index_create(path, &cp, &ix));
    if (!ix) return 1;
    dp_index_entry *e = calloc(N, sizeof *e);
    for (size_t i = 0; i < N; i++)
        e[i] = (dp_index_entry){.path = "", .label = "", .vector = vecs + i * D};
    /* Three segments: 0..17000 and 17000..31000 committed, the rest pending
     * (heap storage), so tiles start and stop at segment ends. */
    OK(dp_index_add(ix, e, 17000, NULL));
    OK(dp_index_commit(ix));
    OK(dp_index_add(ix, e + 17000, 14000, NULL));
    OK(dp_index_commit(ix));
    OK(dp_index_add(ix, e + 31000, N - 31000, NULL));
    for (size_t i = 3; i < N; i += 11) {
        OK(dp_index_remove(ix, i));
        live[i] = false;
    }
    CHECK(dp_index_count(ix) < N, "rows removed");

    float *qs = malloc(1100 * D * sizeof(float));
    for (size_t i = 0; i < 1100; i++)
        rand_unit(qs + i * D, D);
    for (size_t q = 0; q < NQ; q += 4) /* exact hits, some of them removed */
        memcpy(qs + q * D, vecs + (q * 997 + 3) * D, D * sizeof(float));
    for (size_t j = 0; j < D; j++)
        qs[D + j] *= 2.5f; /* a query that is not unit length */

    const int metrics[] = {DP_METRIC_L2, DP_METRIC_IP, DP_METRIC_COSINE, DP_METRIC_L1};
    const size_t ks[] = {1, 10, 300};
    int64_t *ids = malloc(1100 * 300 * sizeof *ids), *ids1 = malloc(1100 * 300 * sizeof *ids);
    float *dist = malloc(1100 * 300 * sizeof *dist), *dist1 = malloc(1100 * 300 * sizeof *dist);
    int checked = 0;
    for (int mi = 0; mi < 4; mi++)
        for (int ki = 0; ki < 3; ki++)
            for (int gemm = 0; gemm < 2; gemm++)
                for (int threads = 1; threads <= 3; threads++) {
                    if (gemm && metrics[mi] == DP_METRIC_L1) continue; /* scan only */
                    size_t k = ks[ki];
                    dp_search_params sp = dp_search_default_params();
                    sp.k = k;
                    sp.metric = metrics[mi];
                    sp.threads = threads;
                    sp.gemm_min_queries = gemm ? 1 : 0;
                    char what[96];
                    snprintf(what, sizeof what, "%s k=%zu %s threads=%d",
                             dp_metric_name(metrics[mi]), k, gemm ? "gemm" : "scan", threads);
                    OK(dp_index_search(ix, qs, NQ, &sp, threads == 1 ? ids1 : ids,
                                       threads == 1 ? dist1 : dist));
                    if (threads == 1) {
                        for (size_t q = 0; q < NQ; q++)
                            check_query(what, metrics[mi], qs + q * D, q, k, ids1 + q * k,
                                        dist1 + q * k, UINT64_MAX, false, INFINITY);
                        checked += NQ;
                    } else {
                        CHECK(!memcmp(ids, ids1, NQ * k * sizeof *ids) &&
                                  !memcmp(dist, dist1, NQ * k * sizeof *dist),
                              "%s: differs from 1 thread", what);
                    }
                }

    /* Exclusion, filter and max_distance together, both paths, 2 threads. */
    uint64_t excl[NQ];
    for (size_t q = 0; q < NQ; q++)
        excl[q] = q % 4 == 0 ? q * 997 + 3 : UINT64_MAX;
    for (int gemm = 0; gemm < 2; gemm++) {
        dp_search_params sp = dp_search_default_params();
        sp.k = 25;
        sp.threads = 2;
        sp.gemm_min_queries = gemm ? 1 : 0;
        sp.exclude_ids = excl;
        sp.filter = keep_not_5;
        sp.max_distance = 1.1f;
        OK(dp_index_search(ix, qs, NQ, &sp, ids, dist));
        for (size_t q = 0; q < NQ; q++) {
            /* a result within rounding of max_distance may be in or out */
            for (size_t r = 0; r < 25; r++)
                if (ids[q * 25 + r] >= 0 && fabs(dist[q * 25 + r] - 1.1) < 1e-5)
                    ids[q * 25 + r] = -2;
            bool edge = false;
            for (size_t r = 0; r < 25; r++)
                edge |= ids[q * 25 + r] == -2;
            if (!edge)
                check_query(gemm ? "gemm exclude+filter+max" : "scan exclude+filter+max",
                            DP_METRIC_L2, qs + q * D, q, 25, ids + q * 25, dist + q * 25, excl[q],
                            true, 1.1f);
        }
        checked += NQ;
    }

    /* 1,100 queries: two GEMM passes of 550. Same answers with 1 and 2
     * threads; every 25th query against the brute force. */
    {
        dp_search_params sp = dp_search_default_params();
        sp.k = 10;
        sp.threads = 1;
        OK(dp_index_search(ix, qs, 1100, &sp, ids1, dist1));
        sp.threads = 2;
        OK(dp_index_search(ix, qs, 1100, &sp, ids, dist));
        CHECK(!memcmp(ids, ids1, 1100 * 10 * sizeof *ids) &&
                  !memcmp(dist, dist1, 1100 * 10 * sizeof *dist),
              "1,100 queries: 2 threads differ from 1");
        for (size_t q = 0; q < 1100; q += 25, checked++)
            check_query("1100 queries", DP_METRIC_L2, qs + q * D, q, 10, ids1 + q * 10,
                        dist1 + q * 10, UINT64_MAX, false, INFINITY);
    }

    printf("%d queries checked against the brute force\n", checked);
    for (int m = 0; m < 8; m++)
        for (size_t q = 0; q < NQ; q++)
            free(cache[m][q]);
    dp_index_free(ix);
    free(vecs);
    free(live);
    free(e);
    free(qs);
    free(ids);
    free(ids1);
    free(dist);
    free(dist1);
    return tu_end("test_dist_search");
}
