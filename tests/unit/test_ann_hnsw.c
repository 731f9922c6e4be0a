/* HNSW with quantised walk records (f16, int8) and the per-ISA walks:
 * every (storage, metric) distance of the AVX2 walk against the portable
 * one (and, for f32, bit for bit against the exact search's kernel);
 * recall@10 of each storage against the exact search on a small clustered
 * set (floors below measured runs, printed each time); distances returned
 * equal to the exact ones (rerank); a build independent of the thread
 * count; reopen by mmap with identical answers; add after build; the new
 * hnsw.sq section and storage field refused when damaged. */
#include "testutil.h" /* first: it defines _GNU_SOURCE */

#include "ann/ann_internal.h"
#include "index/index_internal.h"

/* testutil.h's clusters at noise 1.2, decay 0.1, with this file's own
 * streams (the floors below were measured on these). */
static float *clustered(size_t n, uint32_t d, size_t nclus, uint64_t seed, uint64_t stream)
{
    return tu_clustered(n, d, nclus, 1.2f, 0.1f, seed * 0x9e3779b97f4a7c15ull + 7,
                        seed * 0xd1b54a32d192ed03ull + stream * 0x2545f4914f6cdd1dull + 1);
}

/* ---- kernels ---------------------------------------------------------------- */

/* The AVX2 walk's distances against the portable walk's on the same graph
 * records, for every storage and metric and dimensions with every tail. */
static void test_kernels(void)
{
    const hnsw_kern *kb = hnsw_kern_base(), *kv = hnsw_kern_avx2();
    if (!kv) {
        printf("kernels: no AVX2 on this CPU, portable walk only\n");
        return;
    }
    const int metrics[] = {DP_METRIC_L2, DP_METRIC_IP, DP_METRIC_COSINE, DP_METRIC_L1};
    const uint32_t dims[] = {1, 7, 8, 15, 16, 17, 24, 33, 100, 128};
    int checked = 0;
    for (int st = 0; st <= DP_ANN_STORAGE_INT8; st++)
        for (int mi = 0; mi < 4; mi++)
            for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
                uint32_t d = dims[di];
                const size_t n = 20;
                float *x = malloc(n * d * sizeof *x), *q = malloc(d * sizeof *q);
                const float **vp = malloc(n * sizeof *vp);
                uint64_t *ids = malloc(n * sizeof *ids);
                for (size_t i = 0; i < n * d; i++)
                    x[i] = nrand();
                for (uint32_t j = 0; j < d; j++)
                    q[j] = nrand() * 1.2f; /* partly outside the int8 range */
                for (size_t i = 0; i < n; i++) {
                    vp[i] = x + i * d;
                    ids[i] = i;
                }
                hnsw h;
                hnsw_init(&h, d, metrics[mi], 4, 8, 1, st);
                OK(hnsw_insert(&h, vp, ids, n, 1, NULL, NULL));
                hnsw_scratch s;
                OK(hnsw_scratch_init(&s, n, 32));
                hnsw_q pq;
                OK(hnsw_prepare(&h, q, &s, &pq));
                float dec[128];
                for (size_t i = 0; i < n; i++) {
                    float a = kb->dist(&h, &pq, (uint32_t)i), b = kv->dist(&h, &pq, (uint32_t)i);
                    /* the reference: the decoded vector through the exact kernel */
                    float r = dist_eval(&h.df, q, hnsw_decode(&h, i, dec));
                    float tol = 1e-4f * (1.0f + fabsf(r));
                    CHECK(fabsf(a - r) <= tol && fabsf(b - r) <= tol,
                          "storage %d metric %d dim %u row %zu: portable %g avx2 %g ref %g", st,
                          metrics[mi], d, i, a, b, r);
                    if (st == DP_ANN_STORAGE_F32 && !strcmp(dp_dist_ops()->isa, "avx2"))
                        CHECK(b == dist_eval(&h.df, q, x + i * d),
                              "f32 avx2 walk %g differs from the exact kernel", b);
                    checked++;
                }
                hnsw_scratch_free(&s);
                hnsw_free(&h);
                free(x);
                free(q);
                free(vp);
                free(ids);
            }
    printf("kernels: %d distances, portable and avx2 agree\n", checked);
}

/* ---- recall per storage ---------------------------------------------------- */

static int sections_equal(const dp_index *a, const dp_index *b, const char *name)
{
    const void *pa, *pb;
    size_t na, nb;
    if (dp_index_get_section(a, name, &pa, &na) || dp_index_get_section(b, name, &pb, &nb))
        return 0;
    return na == nb && !memcmp(pa, pb, na);
}

typedef struct floors {
    double ef10, ef32;
} floors;

static void test_storage(int storage, int metric, floors fl)
{
    const uint32_t d = 48;
    const size_t n = 5000, nq = 200, extra = 800, k = 10;
    const char *sn = dp_ann_storage_name(storage);
    float *x = clustered(n + extra, d, 30, 3, 1);
    float *q = clustered(nq, d, 30, 3, 2);
    /* rows added later reach outside the trained int8 range */
    for (size_t i = n; i < n + extra; i++)
        for (uint32_t j = 0; j < d; j++)
            x[i * d + j] *= (j % 5 == 0) ? 1.5f : 1.0f;
    char fn[64];
    snprintf(fn, sizeof fn, "s_%s_%d.dpl", sn, metric);
    dp_index *ix = tu_make_index(tpath(fn), x, n, d, metric);
    dp_ann_build_params bp = dp_ann_default_build_params();
    bp.M = 8;
    bp.ef_construction = 64;
    bp.storage = storage;
    bp.threads = 2;
    dp_ann *a = NULL;
    OK(dp_ann_build(ix, &bp, &a));
    if (!a) exit(2);
    dp_ann_info in;
    OK(dp_ann_describe(a, &in));
    CHECK(in.storage == storage, "info storage %d", in.storage);

    int64_t *ei = malloc(nq * k * sizeof *ei), *ai = malloc(nq * k * sizeof *ai);
    int64_t *bi = malloc(nq * k * sizeof *bi);
    float *ed = malloc(nq * k * sizeof *ed), *ad = malloc(nq * k * sizeof *ad);
    float *bd = malloc(nq * k * sizeof *bd);
    dp_search_params es = dp_search_default_params();
    es.k = k;
    OK(dp_index_search(ix, q, nq, &es, ei, ed));
    dp_ann_search_params sp = dp_ann_default_search_params();
    sp.k = k;
    sp.ef = 10;
    OK(dp_ann_search(a, q, nq, &sp, ai, ad));
    double r10 = tu_recall_ids(ei, ai, nq, k);
    sp.ef = 32;
    OK(dp_ann_search(a, q, nq, &sp, ai, ad));
    double r32 = tu_recall_ids(ei, ai, nq, k);
    printf("storage %s metric %d n=%zu d=%u M=8 efc=64: recall@10 ef=10 %.4f ef=32 %.4f, "
           "%.1f bytes/node\n",
           sn, metric, n, d, r10, r32, (double)in.bytes / (double)n);
    CHECK(r10 >= fl.ef10, "%s recall@10 ef=10 %.4f < %.3f", sn, r10, fl.ef10);
    CHECK(r32 >= fl.ef32, "%s recall@10 ef=32 %.4f < %.3f", sn, r32, fl.ef32);
    if (storage != DP_ANN_STORAGE_F32) {
        /* the default rerank depth (max(4k, 32)) against all of ef = 96 */
        dp_ann_search_params s2 = sp;
        s2.ef = 96;
        OK(dp_ann_search(a, q, nq, &s2, bi, bd));
        double rd = tu_recall_ids(ei, bi, nq, k);
        s2.rerank = 96;
        OK(dp_ann_search(a, q, nq, &s2, bi, bd));
        double ra = tu_recall_ids(ei, bi, nq, k);
        printf("storage %s ef=96: recall@10 rerank 40 %.4f, all 96 %.4f\n", sn, rd, ra);
        CHECK(rd >= ra - 0.002, "%s: the default rerank depth loses recall", sn);
    }

    /* distances are the exact ones: every id both lists share has the
     * exact search's distance (the GEMM path rounds differently: 1e-5) */
    size_t shared = 0, off = 0;
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < k; j++)
            for (size_t m = 0; m < k; m++)
                if (ai[i * k + j] == ei[i * k + m]) {
                    shared++;
                    if (fabsf(ad[i * k + j] - ed[i * k + m]) > 1e-5f * (1 + fabsf(ed[i * k + m])))
                        off++;
                }
    CHECK(shared > 0 && off == 0, "%zu of %zu shared results have inexact distances", off, shared);
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 1; j < k; j++)
            if (ad[i * k + j] < ad[i * k + j - 1]) off++;
    CHECK(off == 0, "results not sorted by exact distance");

    /* one thread builds the same bytes */
    dp_ann *a1 = NULL;
    bp.threads = 1;
    OK(dp_ann_build(ix, &bp, &a1));
    CHECK(a1 && a1->g.rec_bytes == a->g.rec_bytes &&
              !memcmp(a1->g.nodes, a->g.nodes, n * a->g.rec_bytes),
          "%s graph depends on the thread count", sn);
    if (storage == DP_ANN_STORAGE_INT8)
        CHECK(a1 && !memcmp(a1->g.sq_min, a->g.sq_min, 8 * d), "int8 ranges differ");
    dp_ann_free(a1);

    /* saved, reopened by mmap (checksums verified): identical answers */
    OK(dp_ann_save(a, ix));
    OK(dp_index_commit(ix));
    dp_ann_free(a);
    dp_index_free(ix);
    ix = tu_open_rw(tpath(fn));
    OK(dp_index_verify(ix));
    dp_ann_open_params aop = dp_ann_default_open_params();
    aop.verify = true;
    OK(dp_ann_open(ix, &aop, &a));
    if (!a) exit(2);
    OK(dp_ann_describe(a, &in));
    CHECK(in.storage == storage, "storage after reopen %d", in.storage);
    OK(dp_ann_search(a, q, nq, &sp, bi, bd));
    CHECK(!memcmp(ai, bi, nq * k * sizeof *ai) && !memcmp(ad, bd, nq * k * sizeof *ad),
          "%s: reopened graph answers differently", sn);
    {
        /* the same file built again gives the same sections */
        dp_ann *a2 = NULL;
        bp.threads = 2;
        OK(dp_ann_build(ix, &bp, &a2));
        char f2[80];
        snprintf(f2, sizeof f2, "s2_%s_%d.dpl", sn, metric);
        dp_index *ix2 = tu_make_index(tpath(f2), x, n, d, metric);
        OK(dp_ann_save(a2, ix2));
        OK(dp_index_commit(ix2));
        CHECK(sections_equal(ix, ix2, "hnsw.nodes") && sections_equal(ix, ix2, "hnsw.meta"),
              "%s: rebuilt sections differ", sn);
        if (storage == DP_ANN_STORAGE_INT8)
            CHECK(sections_equal(ix, ix2, "hnsw.sq"), "hnsw.sq differs");
        else
            CHECK(dp_index_count_sections(ix2, "hnsw.sq") == 0, "hnsw.sq for %s", sn);
        dp_ann_free(a2);
        dp_index_free(ix2);
    }

    /* add after build: the new rows (partly outside the int8 range) are
     * inserted with the stored quantiser and found */
    dp_index_entry *ne = calloc(extra, sizeof *ne);
    for (size_t i = 0; i < extra; i++)
        ne[i].vector = x + (n + i) * d;
    OK(dp_index_add(ix, ne, extra, NULL));
    OK(dp_index_commit(ix));
    free(ne);
    /* the commit may move the mapping the graph reads: reopen */
    dp_ann_free(a);
    OK(dp_ann_open(ix, NULL, &a));
    if (!a) exit(2);
    OK(dp_ann_update(a, ix, &bp));
    OK(dp_ann_describe(a, &in));
    CHECK(in.nodes == n + extra && in.unindexed == 0, "update: %zu nodes", in.nodes);
    /* query with the added rows themselves: each must find itself first */
    size_t self = 0;
    int64_t ids[10];
    float dd[10];
    for (size_t i = 0; i < 100; i++) {
        OK(dp_ann_search(a, x + (n + i) * d, 1, &sp, ids, dd));
        size_t row;
        if (!dpx_find_row(ix, (uint64_t)ids[0], &row)) continue;
        if (row == n + i) self++;
    }
    CHECK(self >= 97, "%s: %zu of 100 added rows find themselves", sn, self);
    OK(dp_index_search(ix, q, nq, &es, ei, ed));
    OK(dp_ann_search(a, q, nq, &sp, ai, ad));
    double ru = tu_recall_ids(ei, ai, nq, k);
    printf("storage %s metric %d +%zu rows: recall@10 ef=32 %.4f, self-hits %zu/100\n", sn, metric,
           extra, ru, self);
    CHECK(ru >= fl.ef32 - 0.02, "%s recall after update %.4f", sn, ru);
    dp_ann_free(a);
    dp_index_free(ix);
    free(x);
    free(q);
    free(ei);
    free(ai);
    free(bi);
    free(ed);
    free(ad);
    free(bd);
}

/* ---- damaged int8 sections -------------------------------------------------- */

static void test_corrupt(void)
{
    const uint32_t d = 16;
    float *x = clustered(1500, d, 10, 9, 1);
    dp_index *ix = tu_make_index(tpath("c8.dpl"), x, 1500, d, DP_METRIC_L2);
    dp_ann_build_params bp = dp_ann_default_build_params();
    bp.storage = DP_ANN_STORAGE_INT8;
    dp_ann *a = NULL;
    OK(dp_ann_build(ix, &bp, &a));
    OK(dp_ann_save(a, ix));
    OK(dp_index_commit(ix));
    dp_ann_free(a);
    a = NULL;
    dp_index_section sq = {0};
    dp_index_info info;
    dp_index_describe(ix, &info);
    for (size_t i = 0; i < info.sections; i++) {
        dp_index_section s;
        OK(dp_index_section_at(ix, i, &s));
        if (!strcmp(s.name, "hnsw.sq")) sq = s;
    }
    dp_index_free(ix);
    CHECK(sq.bytes == 64 + 8 * d, "hnsw.sq: %llu bytes", (unsigned long long)sq.bytes);

    /* a flipped bit in hnsw.sq: refused even without verify (it is small
     * and every distance depends on it) */
    size_t fl;
    uint8_t *f;
    OK(dp_read_file(tpath("c8.dpl"), 1 << 26, (void **)&f, &fl));
    f[sq.offset + 64 + 13] ^= 0x10;
    OK(dp_write_file_atomic(tpath("c8_bad.dpl"), f, fl));
    free(f);
    OK(dp_index_open(tpath("c8_bad.dpl"), NULL, &ix));
    int rc = dp_ann_open(ix, NULL, &a);
    CHECK(rc == DP_ERR_FORMAT && strstr(dp_last_error(), "hnsw.sq"), "damaged hnsw.sq: %d %s", rc,
          dp_last_error());
    dp_ann_free(a);
    a = NULL;
    dp_index_free(ix);

    /* well-checksummed but wrong: a zero step, a NaN, a short section, an
     * unknown storage, a quantised graph without its section */
    ix = tu_open_rw(tpath("c8.dpl"));
    const void *p;
    size_t nb;
    OK(dp_index_get_section(ix, "hnsw.sq", &p, &nb));
    float *good = malloc(nb);
    memcpy(good, p, nb);
    float *bad = malloc(nb);
    memcpy(bad, good, nb);
    bad[d + 3] = 0;
    OK(dp_index_put_section(ix, "hnsw.sq", bad, nb));
    rc = dp_ann_open(ix, NULL, &a);
    CHECK(rc == DP_ERR_FORMAT && strstr(dp_last_error(), "hnsw.sq"), "zero step: %s",
          dp_last_error());
    memcpy(bad, good, nb);
    bad[2] = NAN;
    OK(dp_index_put_section(ix, "hnsw.sq", bad, nb));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "NaN min accepted");
    OK(dp_index_put_section(ix, "hnsw.sq", good, nb - 4));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "short hnsw.sq accepted");
    OK(dp_index_drop_section(ix, "hnsw.sq"));
    rc = dp_ann_open(ix, NULL, &a);
    CHECK(rc == DP_ERR_FORMAT && strstr(dp_last_error(), "hnsw.sq"), "missing hnsw.sq: %s",
          dp_last_error());
    OK(dp_index_put_section(ix, "hnsw.sq", good, nb));
    OK(dp_ann_open(ix, NULL, &a));
    dp_ann_free(a);
    a = NULL;
    OK(dp_index_get_section(ix, "hnsw.meta", &p, &nb));
    hnsw_meta m;
    memcpy(&m, p, sizeof m);
    CHECK(m.version == 3 && m.storage == DP_ANN_STORAGE_INT8, "meta v%u storage %u", m.version,
          m.storage);
    hnsw_meta mb = m;
    mb.storage = 7;
    OK(dp_index_put_section(ix, "hnsw.meta", &mb, sizeof mb));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "unknown storage accepted");
    mb = m;
    mb.storage = DP_ANN_STORAGE_F16; /* record size no longer matches */
    OK(dp_index_put_section(ix, "hnsw.meta", &mb, sizeof mb));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "f16 meta over int8 records accepted");
    mb = m;
    mb.version = 1; /* version 1 has no storage */
    OK(dp_index_put_section(ix, "hnsw.meta", &mb, sizeof mb));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "v1 meta with int8 storage accepted");
    OK(dp_index_put_section(ix, "hnsw.meta", &m, sizeof m));
    OK(dp_ann_open(ix, NULL, &a));
    int64_t ids[10];
    OK(dp_ann_search(a, x, 1, NULL, ids, NULL));
    CHECK(ids[0] >= 0, "restored graph answers nothing");
    dp_ann_free(a);
    free(good);
    free(bad);

    /* an unknown storage in the build parameters */
    bp.storage = 3;
    a = NULL;
    CHECK(dp_ann_build(ix, &bp, &a) == DP_ERR_INVALID && !a, "storage 3 accepted");
    int s;
    CHECK(dp_ann_storage_parse("int4", &s) == DP_ERR_INVALID, "int4 parsed");
    OK(dp_ann_storage_parse("f16", &s));
    CHECK(s == DP_ANN_STORAGE_F16, "f16 parsed as %d", s);
    dp_index_free(ix);
    free(x);
}

/* An int8 graph built over an empty index has no ranges yet: saved,
 * reopened and then updated, the first rows inserted set them. */
static void test_empty_int8(void)
{
    const uint32_t d = 24;
    const size_t n = 2000;
    float *x = clustered(n, d, 12, 21, 1);
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = d;
    cp.metric = DP_METRIC_L2;
    dp_index *ix = NULL;
    OK(dp_index_create(tpath("e8.dpl"), &cp, &ix));
    if (!ix) exit(2);
    dp_ann_build_params bp = dp_ann_default_build_params();
    bp.storage = DP_ANN_STORAGE_INT8;
    dp_ann *a = NULL;
    OK(dp_ann_build(ix, &bp, &a));
    OK(dp_ann_save(a, ix));
    OK(dp_index_commit(ix));
    dp_ann_free(a);
    a = NULL;
    tu_add_rows(ix, x, n, d);
    OK(dp_index_commit(ix));
    OK(dp_ann_open(ix, NULL, &a));
    if (!a) exit(2);
    OK(dp_ann_update(a, ix, &bp));
    CHECK(a->g.sq_min && a->g.sq_step[0] < 0.1f, "ranges not trained on the first rows");
    size_t self = 0;
    int64_t ids[10];
    dp_ann_search_params sp = dp_ann_default_search_params();
    for (size_t i = 0; i < 100; i++) {
        OK(dp_ann_search(a, x + i * 7 * d, 1, &sp, ids, NULL));
        size_t row;
        if (dpx_find_row(ix, (uint64_t)ids[0], &row) && row == i * 7) self++;
    }
    CHECK(self >= 98, "empty-built int8 graph: %zu of 100 rows find themselves", self);
    dp_ann_free(a);
    dp_index_free(ix);
    free(x);
}

int main(void)
{
    tu_begin("test_ann_hnsw");
    rng = 0x9e3779b97f4a7c15ull; /* the kernel test's vectors, as measured */
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_kernels();
    /* Floors: the measured recall (printed above each check; the build is
     * deterministic, so the same ISA reproduces it) less 0.02 for the
     * portable walk's rounding. Measured with the AVX2 walk, recall@10 at
     * ef=10 / ef=32: f32 l2 0.8830 / 0.9930, f16 l2 0.8835 / 0.9930, int8
     * l2 0.8860 / 0.9935, int8 cosine 0.8815 / 0.9935, f16 ip 0.8810 /
     * 0.9930: the quantised walks lose nothing here once reranked. */
    test_storage(DP_ANN_STORAGE_F32, DP_METRIC_L2, (floors){0.86, 0.97});
    test_storage(DP_ANN_STORAGE_F16, DP_METRIC_L2, (floors){0.86, 0.97});
    test_storage(DP_ANN_STORAGE_INT8, DP_METRIC_L2, (floors){0.86, 0.97});
    test_storage(DP_ANN_STORAGE_INT8, DP_METRIC_COSINE, (floors){0.86, 0.97});
    test_storage(DP_ANN_STORAGE_F16, DP_METRIC_IP, (floors){0.86, 0.97});
    test_corrupt();
    test_empty_int8();
    return tu_end("test_ann_hnsw");
}
