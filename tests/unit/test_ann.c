/* ANN structures against the exact search: recall@10 of HNSW on small
 * synthetic sets (floors set below measured runs, printed each time), named
 * sections of the index file (append, compact, drop, bad names), add after
 * build (exact tail first, then inserted), deletes (tombstones never
 * returned, k live results still come back), reopen by mmap giving
 * identical answers, a build that does not depend on the thread count, a
 * search from many threads at once, and damaged sections refused. */
#include "testutil.h" /* first: it defines _GNU_SOURCE */

#include "ann/ann_internal.h"
#include "index/index_internal.h"

#include <pthread.h>
#include <sys/stat.h>

/* testutil.h's clusters, noise 0.6, rows drawn from the generator's state
 * at the call (the floors below were measured on these). */
static float *clustered(size_t n, uint32_t d, size_t nclus, uint64_t seed)
{
    return tu_clustered(n, d, nclus, 0.6f, 0.2f, seed * 0x9e3779b97f4a7c15ull + 7, rng ^ seed);
}

/* Recall@k against the exact search at search depth ef. */
static double recall(const dp_index *ix, const dp_ann *a, const float *q, size_t nq, size_t k,
                     size_t ef)
{
    dp_ann_search_params ap = dp_ann_default_search_params();
    ap.ef = ef;
    return tu_recall(ix, a, q, nq, k, ap);
}

/* ---- named sections --------------------------------------------------------- */

static void test_sections(void)
{
    const uint32_t d = 8;
    float *x = clustered(100, d, 4, 1);
    dp_index *ix = tu_make_index(tpath("sec.dpl"), x, 100, d, DP_METRIC_L2);
    uint8_t blob[1000];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t)(i * 7 + 3);
    CHECK(dp_index_put_section(ix, "bad name", blob, 1) == DP_ERR_INVALID, "space in name");
    CHECK(dp_index_put_section(ix, "", blob, 1) == DP_ERR_INVALID, "empty name");
    CHECK(dp_index_put_section(ix, "a23456789012345678901234567890123456789012345678901234567",
                               blob, 1) == DP_ERR_INVALID,
          "long name");
    OK(dp_index_put_section(ix, "test.a", blob, sizeof blob));
    OK(dp_index_put_section(ix, "test.empty", NULL, 0));
    OK(dp_index_commit(ix)); /* appending commit */
    dp_index_free(ix);

    ix = tu_open_rw(tpath("sec.dpl"));
    const void *p = NULL;
    size_t n = 0;
    OK(dp_index_get_section(ix, "test.a", &p, &n));
    CHECK(n == sizeof blob && p && !memcmp(p, blob, n), "section bytes after reopen");
    CHECK(((uintptr_t)p & 63) == 0, "section data is 64-byte aligned");
    OK(dp_index_get_section(ix, "test.empty", &p, &n));
    CHECK(n == 0, "empty section");
    CHECK(dp_index_get_section(ix, "test.b", &p, &n) == DP_ERR_NOT_FOUND, "absent section");
    bool listed = false;
    dp_index_info info;
    dp_index_describe(ix, &info);
    for (size_t i = 0; i < info.sections; i++) {
        dp_index_section s;
        OK(dp_index_section_at(ix, i, &s));
        if (!strcmp(s.name, "test.a")) listed = s.bytes == 64 + sizeof blob;
    }
    CHECK(listed, "named section listed with its name");
    /* replace one, compact (whole rewrite keeps them), drop one */
    blob[0] ^= 0xff;
    OK(dp_index_put_section(ix, "test.a", blob, 500));
    OK(dp_index_compact(ix));
    OK(dp_index_get_section(ix, "test.a", &p, &n));
    CHECK(n == 500 && !memcmp(p, blob, 500), "replaced section after compaction");
    OK(dp_index_drop_section(ix, "test.empty"));
    OK(dp_index_commit(ix));
    CHECK(dp_index_get_section(ix, "test.empty", &p, &n) == DP_ERR_NOT_FOUND, "dropped");
    OK(dp_index_verify(ix));
    dp_index_free(ix);

    /* a flipped byte in the section: open still works (not read at open),
     * verify names the section */
    size_t fl;
    uint8_t *f;
    OK(dp_read_file(tpath("sec.dpl"), 1 << 24, (void **)&f, &fl));
    OK(dp_index_open(tpath("sec.dpl"), NULL, &ix));
    dp_index_section s = {0};
    dp_index_describe(ix, &info);
    for (size_t i = 0; i < info.sections; i++)
        if (!dp_index_section_at(ix, i, &s) && !strcmp(s.name, "test.a")) break;
    dp_index_free(ix);
    f[s.offset + 64 + 10] ^= 1;
    OK(dp_write_file_atomic(tpath("sec_bad.dpl"), f, fl));
    OK(dp_index_open(tpath("sec_bad.dpl"), NULL, &ix));
    int rc = dp_index_verify(ix);
    CHECK(rc == DP_ERR_FORMAT && strstr(dp_last_error(), "'test.a'"), "verify: %s",
          dp_last_error());
    CHECK(dp_index_check_section(ix, "test.a") == DP_ERR_FORMAT, "check_section");
    dp_index_free(ix);
    /* a name that is not NUL-terminated is refused at open */
    f[s.offset + 64 + 10] ^= 1;
    memset(f + s.offset, 'x', 56);
    OK(dp_write_file_atomic(tpath("sec_bad.dpl"), f, fl));
    CHECK(dp_index_open(tpath("sec_bad.dpl"), NULL, &ix) == DP_ERR_FORMAT, "bad name accepted");
    CHECK(strstr(dp_last_error(), "invalid name"), "%s", dp_last_error());
    free(f);
    free(x);
}

/* ---- HNSW ---------------------------------------------------------------- */

typedef struct thr_arg {
    const dp_ann *a;
    const float *q;
    size_t nq;
    const int64_t *want;
    int bad;
} thr_arg;

static void *thr_main(void *p)
{
    thr_arg *t = p;
    int64_t *ids = malloc(t->nq * 10 * sizeof *ids);
    dp_ann_search_params sp = dp_ann_default_search_params();
    sp.threads = 1;
    for (int rep = 0; rep < 3; rep++) {
        for (size_t i = 0; i < t->nq; i++)
            if (dp_ann_search(t->a, t->q + i * 32, 1, &sp, ids + i * 10, NULL)) t->bad++;
        if (memcmp(ids, t->want, t->nq * 10 * sizeof *ids)) t->bad++;
    }
    free(ids);
    return NULL;
}

static int cmp_graph(const hnsw *a, const hnsw *b)
{
    if (a->n != b->n || a->entry != b->entry || a->max_level != b->max_level ||
        a->upper_words != b->upper_words)
        return 1;
    if (!a->ids != !b->ids || (a->ids && memcmp(a->ids, b->ids, a->n * 8)) ||
        memcmp(a->nodes, b->nodes, a->n * a->rec_bytes) || memcmp(a->levels, b->levels, a->n) ||
        memcmp(a->upper, b->upper, a->upper_words * 4))
        return 1;
    return 0;
}

static void test_hnsw(int metric, const char *name, double floor_ef64, double floor_ef16)
{
    const uint32_t d = 32;
    const size_t n = 6000, nq = 300, extra = 1500;
    float *x = clustered(n + extra, d, 40, 11);
    float *q = clustered(nq, d, 40, 11 + 1000); /* same centres, fresh points */
    char fn[64];
    snprintf(fn, sizeof fn, "hnsw_%s.dpl", name);
    dp_index *ix = tu_make_index(tpath(fn), x, n, d, metric);

    dp_ann_build_params bp = dp_ann_default_build_params();
    bp.M = 12;
    bp.ef_construction = 100;
    bp.threads = 2;
    dp_ann *a = NULL;
    double t0 = dp_now();
    OK(dp_ann_build(ix, &bp, &a));
    if (!a) exit(2);
    double tb = dp_now() - t0;
    double r64 = recall(ix, a, q, nq, 10, 64), r16 = recall(ix, a, q, nq, 10, 16);
    printf("hnsw %s n=%zu d=%u M=12 efc=100: build %.2fs, recall@10 ef=16 %.4f, ef=64 %.4f\n", name,
           n, d, tb, r16, r64);
    CHECK(r64 >= floor_ef64, "%s recall@10 ef=64 %.4f < %.3f", name, r64, floor_ef64);
    CHECK(r16 >= floor_ef16, "%s recall@10 ef=16 %.4f < %.3f", name, r16, floor_ef16);
    CHECK(r64 >= r16, "a larger ef lowered recall");

    /* same seed, one thread: the same graph, byte for byte */
    dp_ann *a1 = NULL;
    bp.threads = 1;
    OK(dp_ann_build(ix, &bp, &a1));
    CHECK(a1 && !cmp_graph(&a->g, &a1->g), "the graph depends on the thread count");
    dp_ann_free(a1);
    bp.seed = 7;
    OK(dp_ann_build(ix, &bp, &a1));
    CHECK(a1 && cmp_graph(&a->g, &a1->g), "another seed gave the same graph");
    dp_ann_free(a1);
    bp.seed = 42;

    /* persisted, reopened by mmap: identical answers */
    int64_t *id0 = malloc(nq * 10 * sizeof *id0), *id1 = malloc(nq * 10 * sizeof *id1);
    float *d0 = malloc(nq * 10 * sizeof *d0), *d1 = malloc(nq * 10 * sizeof *d1);
    dp_ann_search_params sp = dp_ann_default_search_params();
    OK(dp_ann_search(a, q, nq, &sp, id0, d0));
    OK(dp_ann_save(a, ix));
    OK(dp_index_commit(ix));
    CHECK(dp_ann_search(a, q, nq, &sp, id1, d1) == DP_ERR_INVALID, "stale handle searched");
    dp_ann_free(a);
    dp_index_free(ix);
    ix = tu_open_rw(tpath(fn));
    OK(dp_index_verify(ix));
    dp_ann_open_params aop = dp_ann_default_open_params();
    aop.verify = true;
    OK(dp_ann_open(ix, &aop, &a));
    if (!a) exit(2);
    CHECK(!a->g.owned, "reopened graph is not mapped");
    OK(dp_ann_search(a, q, nq, &sp, id1, d1));
    CHECK(!memcmp(id0, id1, nq * 10 * sizeof *id0) && !memcmp(d0, d1, nq * 10 * sizeof *d0),
          "reopened graph answers differently");
    /* one batch over threads = one query at a time */
    sp.threads = 2;
    OK(dp_ann_search(a, q, nq, &sp, id1, d1));
    CHECK(!memcmp(id0, id1, nq * 10 * sizeof *id0), "threaded batch differs");
    sp.threads = 0;

    /* many threads on one const handle */
    pthread_t th[4];
    thr_arg ta[4];
    for (int t = 0; t < 4; t++) {
        ta[t] = (thr_arg){a, q, 50, id0, 0};
        pthread_create(&th[t], NULL, thr_main, &ta[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK(ta[t].bad == 0, "thread %d got other answers", t);
    }

    /* add after build: the new rows are searched exactly until inserted */
    tu_add_rows(ix, x + n * d, extra, d);
    CHECK(dp_ann_search(a, q, nq, &sp, id1, NULL) == DP_ERR_INVALID, "search after add");
    OK(dp_index_commit(ix));
    dp_ann_free(a);
    OK(dp_ann_open(ix, NULL, &a));
    dp_ann_info in;
    dp_ann_describe(a, &in);
    CHECK(in.unindexed == extra && in.nodes == n, "tail %zu nodes %zu", in.unindexed, in.nodes);
    double rt = recall(ix, a, q, nq, 10, 64);
    bp.threads = 2;
    OK(dp_ann_update(a, ix, &bp));
    dp_ann_describe(a, &in);
    CHECK(in.unindexed == 0 && in.nodes == n + extra, "after update: tail %zu nodes %zu",
          in.unindexed, in.nodes);
    double ru = recall(ix, a, q, nq, 10, 64);
    printf("hnsw %s +%zu rows: recall@10 ef=64 with exact tail %.4f, inserted %.4f\n", name, extra,
           rt, ru);
    /* measured l2 0.938 / 0.897, cosine 0.914 / 0.870 */
    CHECK(rt >= floor_ef64 && ru >= floor_ef64 - 0.03, "recall after adds %.4f %.4f", rt, ru);
    OK(dp_ann_save(a, ix));
    OK(dp_index_commit(ix));
    dp_ann_free(a);
    OK(dp_ann_open(ix, NULL, &a));
    dp_ann_describe(a, &in);
    CHECK(in.nodes == n + extra && in.unindexed == 0, "saved update");
    {
        /* a private (huge-page) copy of the records searches exactly as the
         * shared mapping does, and takes inserts */
        dp_ann_open_params op = dp_ann_default_open_params();
        op.private_nodes = true;
        dp_ann *pa = NULL;
        OK(dp_ann_open(ix, &op, &pa));
        OK(dp_ann_search(a, q, nq, &sp, id0, d0));
        OK(dp_ann_search(pa, q, nq, &sp, id1, d1));
        CHECK(!memcmp(id0, id1, nq * 10 * sizeof *id0) && !memcmp(d0, d1, nq * 10 * sizeof *d0),
              "private node copy searches differently");
        CHECK(pa->g.nodes_map > 0 && pa->g.nodes != a->g.nodes, "no private copy was made");
        dp_ann_free(pa);
    }

    /* delete a third: never returned, still k live results */
    tu_remove_thirds(ix, n + extra);
    OK(dp_ann_search(a, q, nq, &sp, id1, d1));
    tu_check_live(id1, nq * 10, "hnsw after removing 1/3");
    double rd = recall(ix, a, q, nq, 10, 64);
    printf("hnsw %s after removing 1/3: recall@10 ef=64 %.4f\n", name, rd);
    CHECK(rd >= floor_ef64 - 0.03, "recall after deletes %.4f", rd);
    /* tombstones survive a compaction (ids gone from the index) */
    OK(dp_index_compact(ix));
    dp_ann_free(a);
    OK(dp_ann_open(ix, NULL, &a));
    dp_ann_describe(a, &in);
    CHECK(in.dead == (n + extra + 2) / 3, "dead %zu", in.dead);
    double rc2 = recall(ix, a, q, nq, 10, 64);
    CHECK(rc2 >= floor_ef64 - 0.03, "recall after compaction %.4f", rc2);
    /* exclusion and filters */
    uint64_t *ex = malloc(nq * sizeof *ex);
    for (size_t i = 0; i < nq; i++)
        ex[i] = (uint64_t)id1[i * 10];
    sp.exclude_ids = ex;
    OK(dp_ann_search(a, q, nq, &sp, id0, NULL));
    size_t bad = 0;
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < 10; j++)
            if ((uint64_t)id0[i * 10 + j] == ex[i]) bad++;
    CHECK(bad == 0, "excluded id returned");
    free(ex);
    sp.exclude_ids = NULL;
    dp_ann_free(a);
    /* a new graph over the compacted index: node i is no longer id i, so the
     * ids are stored (version 1/2 with hnsw.ids) and survive a reopen */
    OK(dp_ann_build(ix, &bp, &a));
    OK(dp_ann_search(a, q, nq, &sp, id0, d0));
    OK(dp_ann_save(a, ix));
    OK(dp_index_commit(ix));
    dp_ann_free(a);
    OK(dp_ann_open(ix, NULL, &a));
    OK(dp_ann_search(a, q, nq, &sp, id1, d1));
    CHECK(!memcmp(id0, id1, nq * 10 * sizeof *id0) && !memcmp(d0, d1, nq * 10 * sizeof *d0),
          "sparse-id graph differs after reopen");
    tu_check_live(id1, nq * 10, "hnsw rebuilt after compaction");
    const void *mp;
    size_t mb;
    hnsw_meta m;
    OK(dp_index_get_section(ix, "hnsw.meta", &mp, &mb));
    memcpy(&m, mp, sizeof m);
    CHECK(m.flags == 0 && m.version < 3, "sparse ids saved as version %u flags %u", m.version,
          m.flags);
    OK(dp_index_get_section(ix, "hnsw.ids", &mp, &mb));
    CHECK(mb == m.n * 8, "hnsw.ids holds %zu bytes for %llu nodes", mb, (unsigned long long)m.n);
    double rs = recall(ix, a, q, nq, 10, 64);
    printf("hnsw %s rebuilt over the compacted index: recall@10 ef=64 %.4f\n", name, rs);
    CHECK(rs >= floor_ef64 - 0.03, "recall of the rebuilt graph %.4f", rs);
    dp_ann_free(a);
    a = NULL;
    /* a stored id list one node short is refused */
    uint64_t *short_ids = malloc(mb);
    memcpy(short_ids, mp, mb);
    OK(dp_index_put_section(ix, "hnsw.ids", short_ids, mb - 8));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "short hnsw.ids accepted");
    dp_ann_free(a);
    free(short_ids);
    dp_index_free(ix);
    free(id0);
    free(id1);
    free(d0);
    free(d1);
    free(x);
    free(q);
}

/* ---- corruption ------------------------------------------------------------ */

/* Store a well-checksummed but inconsistent hnsw.meta: the open must refuse it. */
static void meta_refused(dp_index *ix, const hnsw_meta *bad, const char *what)
{
    dp_ann *a = NULL;
    OK(dp_index_put_section(ix, "hnsw.meta", bad, sizeof *bad));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "%s accepted", what);
    dp_ann_free(a);
}

static void test_corrupt(void)
{
    const uint32_t d = 16;
    float *x = clustered(2000, d, 10, 5);
    dp_index *ix = tu_make_index(tpath("c.dpl"), x, 2000, d, DP_METRIC_L2);
    dp_ann *a = NULL;
    OK(dp_ann_build(ix, NULL, &a));
    OK(dp_ann_save(a, ix));
    OK(dp_index_commit(ix));
    dp_ann_free(a);
    a = NULL;
    dp_index_free(ix);
    /* the node records (unchecked without verify) come last; searching a
     * damaged graph must still be safe */
    const char *const names[] = {"hnsw.meta", "hnsw.levels", "hnsw.upper", "hnsw.nodes"};
    tu_damage_sections(tpath("c.dpl"), tpath("c_bad.dpl"), names, 4, 3, x);

    /* well-checksummed but inconsistent metadata */
    ix = tu_open_rw(tpath("c.dpl"));
    const void *mp;
    size_t mb;
    OK(dp_index_get_section(ix, "hnsw.meta", &mp, &mb));
    hnsw_meta m;
    memcpy(&m, mp, sizeof m);
    hnsw_meta bad = m;
    bad.entry = 5000000;
    meta_refused(ix, &bad, "entry out of range");
    bad = m;
    bad.n = m.n + 1;
    meta_refused(ix, &bad, "node count mismatch");
    /* a fresh index's graph keeps no ids (node i is id i) */
    CHECK(m.version == 3 && m.flags == HNSW_DENSE_IDS, "dense graph saved as version %u flags %u",
          m.version, m.flags);
    CHECK(dp_index_get_section(ix, "hnsw.ids", &mp, &mb) == DP_ERR_NOT_FOUND,
          "dense graph wrote hnsw.ids");
    bad = m;
    bad.flags = 0; /* ids claimed but absent */
    meta_refused(ix, &bad, "version 3 without the dense flag");
    bad.version = 1;
    meta_refused(ix, &bad, "missing hnsw.ids");
    bad = m;
    bad.flags = 7;
    meta_refused(ix, &bad, "unknown flags");
    bad = m;
    bad.dim = d + 1;
    meta_refused(ix, &bad, "dimension mismatch");
    OK(dp_ann_drop(ix));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_NOT_FOUND, "dropped ANN still opens");
    dp_index_free(ix);
    free(x);
}

int main(void)
{
    tu_begin("test_ann");
    test_sections();
    /* Floors: measured recall (printed by each run; the build is
     * deterministic, so a run on the same ISA reproduces it exactly) less a
     * margin for the other ISA's rounding. Measured with AVX2 kernels:
     * l2 ef=64 0.921, ef=16 0.731; cosine ef=64 0.885, ef=16 0.659. */
    test_hnsw(DP_METRIC_L2, "l2", 0.88, 0.69);
    test_hnsw(DP_METRIC_COSINE, "cosine", 0.84, 0.62);
    test_corrupt();
    return tu_end("test_ann");
}
