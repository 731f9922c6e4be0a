/* IVF-PQ against the exact search: recall@10 on a small clustered set with
 * and without exact rerank (floors below measured runs, printed each time),
 * SIMD kernels against scalar, a build that does not depend on the thread
 * count, reopen by mmap giving identical answers, add after build then
 * update, removed ids never returned, the exact fallback below
 * DP_IVFPQ_MIN_ROWS, damaged or inconsistent ivfpq.* sections refused, the
 * blocked ids round-tripping (raw blocks included), and version 1/2 files
 * with u64 ids opening, searching alike and taking adds. */
#include "testutil.h" /* first: it defines _GNU_SOURCE */

#include "ann/ann_internal.h"
#include "doppel/ann.h"
#include "doppel/index.h"
#include "index/index_internal.h"
#include "util/util.h"

/* testutil.h's clusters at noise 0.8 (the floors below were measured on them). */
static float *clustered(size_t n, uint32_t d, size_t nclus, uint64_t seed, uint64_t stream)
{
    return clustered_rows(n, d, nclus, 0.8f, seed, stream);
}

/* Recall@10 against the exact search at nprobe, reranking rerank. */
static double recall(const dp_index *ix, const dp_ann *a, const float *q, size_t nq, size_t nprobe,
                     size_t rerank)
{
    dp_ann_search_params ap = dp_ann_default_search_params();
    ap.nprobe = nprobe;
    ap.rerank = rerank;
    return tu_recall(ix, a, q, nq, 10, ap);
}

/* Every byte ivfpq_save writes, blocked ids included. */
static int cmp_pq(const ivfpq *a, const ivfpq *b)
{
    if (a->n != b->n || a->nlist != b->nlist || a->m != b->m || a->dim != b->dim ||
        a->dr != b->dr || !a->rot != !b->rot || !a->ids != !b->ids || a->nblk != b->nblk ||
        a->nraw != b->nraw)
        return 1;
    if (a->rot && memcmp(a->rot, b->rot, (size_t)a->dr * a->dim * 4)) return 1;
    if (a->ids ? memcmp(a->ids, b->ids, a->n * 8)
               : memcmp(a->idhead, b->idhead, a->nblk * 8) ||
                     memcmp(a->iddelta, b->iddelta, a->nblk * IVFPQ_BLK * 2) ||
                     (a->nraw && memcmp(a->idraw, b->idraw, a->nraw * 8)))
        return 1;
    return memcmp(a->centroids, b->centroids, (size_t)a->nlist * a->dr * 4) ||
           memcmp(a->codebooks, b->codebooks, (size_t)a->m * IVFPQ_KSUB * a->dsub * 4) ||
           memcmp(a->offsets, b->offsets, ((size_t)a->nlist + 1) * 8) ||
           memcmp(a->codes, b->codes, a->n * a->m);
}

/* Rewrites the committed IVF-PQ sections of ix the way versions 1 and 2
 * stored them: u64 ids in list order, no id blocks. */
static void write_legacy(dp_index *ix, const ivfpq *p)
{
    const void *mp;
    size_t mb;
    OK(dp_index_get_section(ix, "ivfpq.meta", &mp, &mb));
    ivfpq_meta m;
    memcpy(&m, mp, sizeof m);
    CHECK(m.version == 3 && (m.flags & IVFPQ_IDBLK), "saved as version %u flags %#x", m.version,
          m.flags);
    bool opq = m.flags & IVFPQ_OPQ;
    m.version = opq ? 2 : 1;
    m.flags = opq ? IVFPQ_OPQ : 0;
    if (!opq) m.dr = 0;
    uint64_t *ids = malloc(p->n * 8 + 8);
    ivfpq_ids(p, ids);
    OK(dp_index_put_section(ix, "ivfpq.meta", &m, sizeof m));
    OK(dp_index_put_section(ix, "ivfpq.ids", ids, p->n * 8));
    OK(dp_index_drop_section(ix, "ivfpq.idhead"));
    OK(dp_index_drop_section(ix, "ivfpq.iddelta"));
    OK(dp_index_drop_section(ix, "ivfpq.idraw"));
    OK(dp_index_commit(ix));
    free(ids);
}

/* ---- kernels ------------------------------------------------------------- */

static void test_kernels(void)
{
    const ivfpq_kern *s = ivfpq_kern_scalar(), *v = ivfpq_kern_avx2();
    if (!v) {
        printf("no AVX2: kernel comparison skipped\n");
        return;
    }
    const uint32_t cases[][2] = {{8, 4}, {25, 4}, {13, 3}, {3, 2}, {50, 2}, {1, 7}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint32_t m = cases[c][0], dsub = cases[c][1], dim = m * dsub;
        float *x = malloc(dim * 4), *cbt = malloc((size_t)dim * 256 * 4);
        float *t0 = malloc((size_t)m * 256 * 4), *t1 = malloc((size_t)m * 256 * 4);
        for (uint32_t j = 0; j < dim; j++)
            x[j] = nrand();
        for (size_t j = 0; j < (size_t)dim * 256; j++)
            cbt[j] = nrand();
        double worst = 0;
        for (int ip = 0; ip < 2; ip++) {
            (ip ? s->table_ip : s->table_l2)(x, cbt, m, dsub, t0);
            (ip ? v->table_ip : v->table_l2)(x, cbt, m, dsub, t1);
            for (size_t j = 0; j < (size_t)m * 256; j++)
                worst = fmax(worst, fabs(t0[j] - t1[j]) / (1 + fabs(t0[j])));
        }
        CHECK(worst < 1e-5, "table m=%u dsub=%u: relative error %g", m, dsub, worst);
        size_t n = 37;
        uint8_t *codes = malloc(n * m);
        for (size_t j = 0; j < n * m; j++)
            codes[j] = (uint8_t)(urand() * 256);
        float o0[37], o1[37];
        s->scan(t0, codes, n, m, 0.5f, o0);
        v->scan(t0, codes, n, m, 0.5f, o1);
        worst = 0;
        for (size_t i = 0; i < n; i++) {
            /* the reference sum in double */
            double r = 0.5;
            for (uint32_t q = 0; q < m; q++)
                r += t0[(size_t)q * 256 + codes[i * m + q]];
            worst = fmax(worst, fabs(o0[i] - r) + fabs(o1[i] - r));
        }
        CHECK(worst < 1e-3 * m, "scan m=%u: error %g", m, worst);
        free(x);
        free(cbt);
        free(t0);
        free(t1);
        free(codes);
    }
}

/* ---- recall, determinism, reopen, add, remove -------------------------------- */

/* m 0: the default; opq with m = 6 (not dividing 32) also pads the rotated
 * space to 36 dimensions. */
static void test_ivfpq(int metric, const char *name, bool opq, double floor16, double floor_rr)
{
    const uint32_t d = 32;
    const size_t n = 20000, nq = 300, extra = 1500;
    float *x = clustered(n + extra, d, 60, 3, 0), *q = clustered(nq, d, 60, 3, 1);
    char fn[64];
    snprintf(fn, sizeof fn, "pq_%s.dpl", name);
    dp_index *ix = tu_make_index(tpath(fn), x, n, d, metric);
    dp_ann_build_params bp = dp_ann_default_build_params();
    bp.kind = DP_ANN_IVFPQ;
    bp.threads = 2;
    bp.opq = opq;
    bp.pq_m = opq ? 6 : 0;
    dp_ann *a = NULL, *a1 = NULL;
    OK(dp_ann_build(ix, &bp, &a));
    if (!a) exit(2);
    dp_ann_info in;
    OK(dp_ann_describe(a, &in));
    /* derived: round(4 sqrt(20000)) = 566 cells, m = 32/4 */
    CHECK(in.kind == DP_ANN_IVFPQ && in.nlist == 566 && in.pq_m == (opq ? 6u : 8u) &&
              in.opq == opq && in.nodes == n,
          "kind %d nlist %u m %u opq %d nodes %zu", in.kind, in.nlist, in.pq_m, in.opq, in.nodes);
    CHECK(a->pq.dr == (opq ? 36u : 32u) && !a->pq.rot == !opq, "coded dimension %u", a->pq.dr);
    CHECK(in.bytes < (size_t)n * d * 4 / 5, "%zu bytes for %zu raw", in.bytes, (size_t)n * d * 4);
    double r1 = recall(ix, a, q, nq, 1, 0), r16 = recall(ix, a, q, nq, 16, 0);
    double rr = recall(ix, a, q, nq, 16, 100);
    printf("%s: recall@10 nprobe=1 %.4f, nprobe=16 %.4f, nprobe=16 rerank 100 %.4f\n", name, r1,
           r16, rr);
    CHECK(r16 >= floor16, "%s recall nprobe=16 %.4f < %.3f", name, r16, floor16);
    CHECK(rr >= floor_rr, "%s recall with rerank %.4f < %.3f", name, rr, floor_rr);
    CHECK(r16 > r1 && rr > r16, "more probes or a rerank did not help");

    /* same seed, another thread count: the same bytes; another seed: not */
    bp.threads = 1;
    OK(dp_ann_build(ix, &bp, &a1));
    CHECK(a1 && !cmp_pq(&a->pq, &a1->pq), "the structure depends on the thread count");
    dp_ann_free(a1);
    bp.seed = 7;
    OK(dp_ann_build(ix, &bp, &a1));
    CHECK(a1 && cmp_pq(&a->pq, &a1->pq), "another seed gave the same structure");
    dp_ann_free(a1);
    a1 = NULL;
    bp.seed = 42;

    /* reopen by mmap: identical answers, with and without rerank */
    int64_t *id0 = malloc(nq * 10 * 8), *id1 = malloc(nq * 10 * 8);
    float *d0 = malloc(nq * 10 * 4), *d1 = malloc(nq * 10 * 4);
    dp_ann_search_params sp = dp_ann_default_search_params();
    for (int rrk = 0; rrk < 2; rrk++) {
        sp.rerank = rrk ? 50 : 0;
        OK(dp_ann_search(a, q, nq, &sp, id0, d0));
        OK(dp_ann_save(a, ix));
        OK(dp_index_commit(ix));
        dp_ann_free(a);
        dp_index_free(ix);
        OK(dp_index_open(tpath(fn), NULL, &ix));
        OK(dp_ann_open(ix, NULL, &a));
        if (!a) exit(2);
        CHECK(a->kind == DP_ANN_IVFPQ && !a->pq.own[4] && !a->pq.own[5] && !a->pq.rot == !opq,
              "reopened codes or rotation are not mapped");
        OK(dp_ann_search(a, q, nq, &sp, id1, d1));
        CHECK(!memcmp(id0, id1, nq * 10 * 8) && !memcmp(d0, d1, nq * 10 * 4),
              "reopened structure answers differently (rerank %zu)", sp.rerank);
        dp_ann_free(a);
        dp_index_free(ix);
        ix = tu_open_rw(tpath(fn));
        OK(dp_ann_open(ix, NULL, &a));
    }
    /* rerank distances are the exact ones */
    {
        dp_search_params es = dp_search_default_params();
        es.k = 10;
        OK(dp_index_search(ix, q, 1, &es, id0, d0));
        sp.rerank = 200;
        sp.nprobe = 566;
        OK(dp_ann_search(a, q, 1, &sp, id1, d1));
        for (int j = 0; j < 10; j++)
            CHECK(id0[j] == id1[j] && fabsf(d0[j] - d1[j]) < 1e-4f, "rank %d: %lld %g vs %lld %g",
                  j, (long long)id0[j], d0[j], (long long)id1[j], d1[j]);
        sp = dp_ann_default_search_params();
    }

    /* the same structure as a version 1/2 file (u64 ids): opens on those,
     * answers exactly alike, costs 8 bytes an id where blocks cost < 3 */
    {
        size_t blocked = in.bytes;
        CHECK(a->pq.nraw == 0 && a->pq.nblk * 32 >= n && a->pq.nblk * 32 < n + 32 * 566,
              "%zu id blocks, %zu raw ids for %zu entries", a->pq.nblk, a->pq.nraw, n);
        /* 35 entries a list here, so the short last blocks weigh: 3.3 bytes an id */
        size_t idb =
            blocked - (sizeof(ivfpq_meta) + (size_t)in.nlist * a->pq.dr * 4 +
                       (size_t)in.pq_m * 256 * a->pq.dsub * 4 + ((size_t)in.nlist + 1) * 8 +
                       n * in.pq_m + (opq ? (size_t)a->pq.dr * d * 4 : 0));
        CHECK(idb == a->pq.nblk * 72 && idb < n * 4, "blocked ids take %zu bytes (%zu blocks)", idb,
              a->pq.nblk);
        size_t nblk = a->pq.nblk;
        int64_t *e0 = malloc(2 * nq * 10 * 8);
        float *f0 = malloc(2 * nq * 10 * 4);
        for (int rrk = 0; rrk < 2; rrk++) {
            sp.rerank = rrk ? 50 : 0;
            OK(dp_ann_search(a, q, nq, &sp, e0 + rrk * nq * 10, f0 + rrk * nq * 10));
        }
        write_legacy(ix, &a->pq);
        dp_ann_free(a);
        OK(dp_ann_open(ix, NULL, &a));
        if (!a) exit(2);
        CHECK(a->pq.ids && !a->pq.idhead, "a version %d file did not open on its u64 ids",
              opq ? 2 : 1);
        for (int rrk = 0; rrk < 2; rrk++) {
            sp.rerank = rrk ? 50 : 0;
            OK(dp_ann_search(a, q, nq, &sp, id1, d1));
            CHECK(!memcmp(e0 + rrk * nq * 10, id1, nq * 10 * 8) &&
                      !memcmp(f0 + rrk * nq * 10, d1, nq * 10 * 4),
                  "u64 ids answer differently (rerank %zu)", sp.rerank);
        }
        free(e0);
        free(f0);
        OK(dp_ann_describe(a, &in));
        CHECK(in.bytes == blocked - nblk * 72 + n * 8, "u64 ids: %zu bytes, blocked %zu", in.bytes,
              blocked);
        sp = dp_ann_default_search_params();
    }

    /* add after build (to the u64-id structure: the update blocks its ids):
     * searched exactly until update encodes them */
    tu_add_rows(ix, x + n * d, extra, d);
    CHECK(dp_ann_search(a, q, nq, &sp, id1, NULL) == DP_ERR_INVALID, "stale handle searched");
    OK(dp_ann_update(a, ix, &bp));
    OK(dp_ann_describe(a, &in));
    CHECK(in.nodes == n + extra && in.unindexed == 0, "after update: nodes %zu tail %zu", in.nodes,
          in.unindexed);
    CHECK(!a->pq.ids && a->pq.idhead, "the update kept u64 ids");
    double ru = recall(ix, a, q, nq, 16, 0);
    CHECK(ru >= floor16 - 0.03, "recall after update %.4f", ru);
    /* each added row is found under its new id (its own cell, distance 0
     * after the rerank): the codes moved with the sorted ids */
    {
        dp_ann_search_params ap = dp_ann_default_search_params();
        ap.k = 1;
        ap.rerank = 50;
        size_t hit = 0;
        OK(dp_ann_search(a, x + n * d, extra, &ap, id1, d1));
        for (size_t i = 0; i < extra; i++)
            hit += id1[i] == (int64_t)(n + i);
        printf("%s: %zu of %zu added rows are their own nearest\n", name, hit, extra);
        CHECK(hit >= extra * 98 / 100, "%zu of %zu added rows found under their ids", hit, extra);
    }
    /* the updated structure saves (version 3) and reopens by mmap alike */
    OK(dp_ann_search(a, q, nq, &sp, id0, d0));
    OK(dp_ann_save(a, ix));
    OK(dp_index_commit(ix));
    dp_ann_free(a);
    OK(dp_ann_open(ix, NULL, &a));
    if (!a) exit(2);
    CHECK(!a->pq.ids && !a->pq.own[3] && a->pq.n == n + extra, "reopened after the update");
    OK(dp_ann_search(a, q, nq, &sp, id1, d1));
    CHECK(!memcmp(id0, id1, nq * 10 * 8) && !memcmp(d0, d1, nq * 10 * 4),
          "the updated structure answers differently after reopening");

    /* removed ids never come back; k live results still do */
    tu_remove_thirds(ix, n + extra);
    sp.nprobe = 32;
    OK(dp_ann_search(a, q, nq, &sp, id1, NULL));
    tu_check_live(id1, nq * 10, name);
    dp_ann_free(a);
    dp_index_free(ix);
    free(id0);
    free(id1);
    free(d0);
    free(d1);
    free(x);
    free(q);
}

/* OPQ at equal bytes (m = 8 on 32 dimensions): the rotation gives each
 * sub-quantiser a fair share of the decaying spectrum, so the codes rank
 * better, for l2 and for inner products. */
static void test_opq_gain(void)
{
    const uint32_t d = 32;
    const size_t n = 20000, nq = 300;
    float *x = clustered(n, d, 60, 3, 0), *q = clustered(nq, d, 60, 3, 1);
    for (int mi = 0; mi < 2; mi++) {
        int metric = mi ? DP_METRIC_IP : DP_METRIC_L2;
        dp_index *ix = tu_make_index(tpath(mi ? "gain_ip.dpl" : "gain.dpl"), x, n, d, metric);
        dp_ann_build_params bp = dp_ann_default_build_params();
        bp.kind = DP_ANN_IVFPQ;
        bp.pq_m = 8;
        dp_ann *a = NULL, *b = NULL;
        OK(dp_ann_build(ix, &bp, &a));
        bp.opq = true;
        OK(dp_ann_build(ix, &bp, &b));
        if (!a || !b) exit(2);
        double rp = recall(ix, a, q, nq, 16, 0), ro = recall(ix, b, q, nq, 16, 0);
        printf("%s m=8 nprobe=16: recall@10 %.4f plain, %.4f with OPQ\n", mi ? "ip" : "l2", rp, ro);
        /* measured +0.023 (l2) and +0.020 (ip) with AVX2 kernels */
        CHECK(ro >= rp + 0.01, "OPQ %.4f vs plain %.4f at equal bytes", ro, rp);
        dp_ann_free(a);
        dp_ann_free(b);
        dp_index_free(ix);
    }
    free(x);
    free(q);
}

/* Below DP_IVFPQ_MIN_ROWS: nothing to train on, the exact answers. */
static void test_small(void)
{
    const uint32_t d = 16;
    const size_t n = 3000, nq = 20;
    float *x = clustered(n, d, 10, 9, 0), *q = clustered(nq, d, 10, 9, 1);
    dp_index *ix = tu_make_index(tpath("small.dpl"), x, n, d, DP_METRIC_L2);
    dp_ann_build_params bp = dp_ann_default_build_params();
    bp.kind = DP_ANN_IVFPQ;
    dp_ann *a = NULL;
    OK(dp_ann_build(ix, &bp, &a));
    dp_ann_info in;
    OK(dp_ann_describe(a, &in));
    CHECK(in.nlist == 0 && in.nodes == 0 && in.unindexed == n, "nlist %u nodes %zu tail %zu",
          in.nlist, in.nodes, in.unindexed);
    CHECK(recall(ix, a, q, nq, 1, 0) == 1.0, "small set not exact");
    OK(dp_ann_save(a, ix));
    OK(dp_index_commit(ix));
    dp_ann_free(a);
    OK(dp_ann_open(ix, NULL, &a));
    CHECK(a && recall(ix, a, q, nq, 1, 0) == 1.0, "reopened small set not exact");
    /* growing past the threshold trains at the next update */
    float *more = clustered(3000, d, 10, 9, 2);
    tu_add_rows(ix, more, 3000, d);
    OK(dp_ann_update(a, ix, &bp));
    OK(dp_ann_describe(a, &in));
    CHECK(in.nlist > 0 && in.nodes == 6000 && in.unindexed == 0, "after growth: nlist %u nodes %zu",
          in.nlist, in.nodes);
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = d;
    cp.metric = DP_METRIC_L1;
    dp_index *l1 = NULL;
    OK(dp_index_create(tpath("l1.dpl"), &cp, &l1));
    dp_ann *b = NULL;
    CHECK(dp_ann_build(l1, &bp, &b) == DP_ERR_UNSUPPORTED, "l1 accepted");
    bp.pq_m = 5;
    CHECK(dp_ann_build(ix, &bp, &b) == DP_ERR_INVALID && strstr(dp_last_error(), "divide"),
          "m not dividing the dimension accepted: %s", dp_last_error());
    dp_index_free(l1);
    dp_ann_free(a);
    dp_index_free(ix);
    free(more);
    free(x);
    free(q);
}

/* ---- blocked ids ------------------------------------------------------------ */

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Entry j's distance to the vector of the row its id names, rebuilt from
 * its cell's centroid and its code (no OPQ): small only if the codes
 * moved with the ids when the lists were sorted. */
static double recon_err(const ivfpq *p, const float *x, const uint64_t *ids, const uint64_t *want,
                        size_t nw, size_t shift)
{
    double e = 0;
    for (uint32_t l = 0; l < p->nlist; l++)
        for (size_t j = p->offsets[l]; j < p->offsets[l + 1]; j++) {
            size_t jj =
                p->offsets[l] + (j - p->offsets[l] + shift) % (p->offsets[l + 1] - p->offsets[l]);
            const uint64_t *r = bsearch(&ids[jj], want, nw, 8, u64_cmp);
            if (!r) return INFINITY;
            const float *v = x + (size_t)(r - want) * p->dim;
            for (uint32_t s = 0; s < p->m; s++)
                for (uint32_t t = 0; t < p->dsub; t++) {
                    size_t c = s * p->dsub + t;
                    float y =
                        p->centroids[(size_t)l * p->dr + c] +
                        p->codebooks[((size_t)s * IVFPQ_KSUB + p->codes[j * p->m + s]) * p->dsub +
                                     t];
                    e += (double)(v[c] - y) * (v[c] - y);
                }
        }
    return e / (double)p->n;
}

/* Ids with gaps past 16 bits and past 2^63 force raw blocks beside delta
 * ones; every id comes back from the heap structure, from the file, and
 * after an add to the mapped structure. */
static void check_ids(const ivfpq *p, const uint64_t *want, size_t nw, const float *x,
                      const char *what)
{
    uint64_t *got = malloc(p->n * 8 + 8), *srt = malloc(p->n * 8 + 8);
    ivfpq_ids(p, got);
    size_t bad = 0, desc = 0;
    for (size_t j = 0; j < p->n; j++)
        bad += ivfpq_id(p, j) != got[j];
    for (uint32_t l = 0; l < p->nlist; l++)
        for (size_t j = p->offsets[l] + 1; j < p->offsets[l + 1]; j++)
            desc += got[j] <= got[j - 1];
    memcpy(srt, got, p->n * 8);
    qsort(srt, p->n, 8, u64_cmp);
    CHECK(p->n == nw && !memcmp(srt, want, nw * 8), "%s: the ids do not come back", what);
    CHECK(!bad && !desc, "%s: %zu ids differ one by one, %zu out of order", what, bad, desc);
    size_t delta = 0;
    for (size_t b = 0; b < p->nblk; b++)
        delta += !(p->idhead[b] & IVFPQ_RAW);
    CHECK(p->nraw > 0 && delta > 0, "%s: %zu raw ids, %zu delta blocks", what, p->nraw, delta);
    double e = recon_err(p, x, got, want, nw, 0), e1 = recon_err(p, x, got, want, nw, 1);
    printf("%s: %zu entries, %zu id blocks (%zu delta), %zu raw ids; reconstruction error %.4f "
           "(entries shifted by one: %.4f)\n",
           what, p->n, p->nblk, delta, p->nraw, e, e1);
    CHECK(e < 0.5 * e1, "%s: codes do not follow their ids (%g vs %g)", what, e, e1);
    free(got);
    free(srt);
}

static void test_id_blocks(void)
{
    const uint32_t d = 16;
    const size_t n = 8000, extra = 2000, nt = n + extra;
    float *x = clustered(nt, d, 20, 11, 0);
    /* x is sorted by id below (want), so rows and ids stay paired */
    uint64_t *ids = malloc(nt * 8);
    for (size_t i = 0; i < nt; i++)
        ids[i] = i % 53 == 3 ? (1ull << 63) + i * 977 : i % 37 == 1 ? i * 100003ull : i;
    const float **rows = malloc(nt * sizeof *rows);
    for (size_t i = 0; i < nt; i++)
        rows[i] = x + i * d;
    /* sorted ids and their rows, for the checks */
    uint64_t *want = malloc(nt * 8);
    float *xs = malloc(nt * d * 4);
    size_t *ord = malloc(nt * sizeof *ord);
    memcpy(want, ids, nt * 8);
    qsort(want, nt, 8, u64_cmp);
    for (size_t i = 0; i < nt; i++) {
        uint64_t *r = bsearch(&ids[i], want, nt, 8, u64_cmp);
        memcpy(xs + (size_t)(r - want) * d, x + i * d, d * 4);
    }
    uint64_t *want_n = malloc(n * 8);
    float *xs_n = malloc(n * d * 4);
    memcpy(want_n, ids, n * 8);
    qsort(want_n, n, 8, u64_cmp);
    for (size_t i = 0; i < n; i++) {
        uint64_t *r = bsearch(&ids[i], want_n, n, 8, u64_cmp);
        memcpy(xs_n + (size_t)(r - want_n) * d, x + i * d, d * 4);
    }
    /* 40 cells of about 200: mostly delta blocks, the sparse ids (sorted
     * last in each list) in raw ones */
    ivfpq p = {0}, p2 = {0};
    OK(ivfpq_build(&p, d, DP_METRIC_L2, rows, ids, n, 40, 0, 0, 42, 2));
    check_ids(&p, want_n, n, xs_n, "built");
    /* thread count: the same bytes, raw blocks included */
    OK(ivfpq_build(&p2, d, DP_METRIC_L2, rows, ids, n, 40, 0, 0, 42, 1));
    CHECK(!cmp_pq(&p, &p2), "blocked ids depend on the thread count");
    ivfpq_free(&p2);
    /* through the file, mapped */
    dp_index *ix = tu_make_index(tpath("idblk.dpl"), x, n, d, DP_METRIC_L2);
    OK(ivfpq_save(&p, ix));
    OK(dp_index_commit(ix));
    dp_index_free(ix);
    OK(dp_index_open(tpath("idblk.dpl"), NULL, &ix));
    OK(ivfpq_load(&p2, ix, true));
    CHECK(!p2.own[3] && !p2.own[6] && !p2.own[7] && !cmp_pq(&p, &p2),
          "the reopened id blocks differ or are not mapped");
    check_ids(&p2, want_n, n, xs_n, "reopened");
    /* an add re-packs the mapped lists: old and new ids together */
    OK(ivfpq_add(&p2, rows + n, ids + n, extra, 2));
    check_ids(&p2, want, nt, xs, "after an add");
    ivfpq_free(&p2);
    dp_index_free(ix);
    ivfpq_free(&p);
    free(ids);
    free(rows);
    free(want);
    free(xs);
    free(ord);
    free(want_n);
    free(xs_n);
    free(x);
}

/* ---- corruption ------------------------------------------------------------ */

static void test_corrupt(bool opq)
{
    const uint32_t d = 16;
    float *x = clustered(6000, d, 20, 5, 0);
    dp_index *ix = tu_make_index(tpath("c.dpl"), x, 6000, d, DP_METRIC_L2);
    dp_ann_build_params bp = dp_ann_default_build_params();
    bp.kind = DP_ANN_IVFPQ;
    bp.opq = opq;
    dp_ann *a = NULL;
    OK(dp_ann_build(ix, &bp, &a));
    OK(dp_ann_save(a, ix));
    OK(dp_index_commit(ix));
    dp_ann_free(a);
    a = NULL;
    /* the codes (unchecked without verify) come last */
    const char *names[] = {"ivfpq.meta",   "ivfpq.centroids", "ivfpq.codebooks", "ivfpq.offsets",
                           "ivfpq.idhead", "ivfpq.iddelta",   "ivfpq.opq",       "ivfpq.codes"};
    if (!opq) names[6] = names[7];
    const int NS = opq ? 8 : 7;
    dp_index_free(ix);
    /* without verify only the codes go unchecked; searching them is safe */
    tu_damage_sections(tpath("c.dpl"), tpath("c_bad.dpl"), names, NS, NS - 1, x);

    /* well-checksummed but inconsistent sections */
    ix = tu_open_rw(tpath("c.dpl"));
    const void *mp, *op0;
    size_t mb, ob;
    OK(dp_index_get_section(ix, "ivfpq.meta", &mp, &mb));
    OK(dp_index_get_section(ix, "ivfpq.offsets", &op0, &ob));
    ivfpq_meta m;
    memcpy(&m, mp, sizeof m);
    uint64_t *off = malloc(ob);
    memcpy(off, op0, ob);
    ivfpq_meta bad = m;
    bad.n = m.n + 1;
    OK(dp_index_put_section(ix, "ivfpq.meta", &bad, sizeof bad));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "entry count mismatch accepted");
    bad = m;
    bad.m = 3;
    OK(dp_index_put_section(ix, "ivfpq.meta", &bad, sizeof bad));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "m = 3 accepted for sections of m = %u", m.m);
    bad = m;
    bad.dim = d * 2;
    OK(dp_index_put_section(ix, "ivfpq.meta", &bad, sizeof bad));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "dimension mismatch accepted");
    OK(dp_index_put_section(ix, "ivfpq.meta", &m, sizeof m));
    uint64_t t = off[1];
    off[1] = off[2] + 1; /* list 1 ends before it starts */
    OK(dp_index_put_section(ix, "ivfpq.offsets", off, ob));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT && strstr(dp_last_error(), "offsets"),
          "decreasing offsets accepted: %s", dp_last_error());
    off[1] = t;
    off[m.nlist] = m.n + 5;
    OK(dp_index_put_section(ix, "ivfpq.offsets", off, ob));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "offsets past the entries accepted");
    off[m.nlist] = m.n;
    OK(dp_index_put_section(ix, "ivfpq.offsets", off, ob));
    OK(dp_ann_open(ix, NULL, &a));
    dp_ann_free(a);
    a = NULL;
    /* id blocks: a raw block pointing past ivfpq.idraw, ids there that no
     * block claims, a short delta section, a version 3 meta without blocks */
    {
        const void *hp, *dp;
        size_t hb, db;
        OK(dp_index_get_section(ix, "ivfpq.idhead", &hp, &hb));
        OK(dp_index_get_section(ix, "ivfpq.iddelta", &dp, &db));
        uint64_t *head = malloc(hb), *dl = malloc(db), extra[1] = {7};
        memcpy(head, hp, hb);
        memcpy(dl, dp, db);
        CHECK(m.version == 3 && hb >= 16 && !(head[1] & IVFPQ_RAW), "version %u, %zu head bytes",
              m.version, hb);
        uint64_t h1 = head[1];
        head[1] = IVFPQ_RAW | 5;
        OK(dp_index_put_section(ix, "ivfpq.idhead", head, hb));
        CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT && strstr(dp_last_error(), "idhead"),
              "a raw block past ivfpq.idraw accepted: %s", dp_last_error());
        head[1] = h1;
        OK(dp_index_put_section(ix, "ivfpq.idhead", head, hb));
        OK(dp_index_put_section(ix, "ivfpq.idraw", extra, 8));
        CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT && strstr(dp_last_error(), "idraw"),
              "unclaimed raw ids accepted: %s", dp_last_error());
        OK(dp_index_put_section(ix, "ivfpq.idraw", extra, 0));
        OK(dp_index_put_section(ix, "ivfpq.iddelta", dl, db - 64));
        CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT && strstr(dp_last_error(), "iddelta"),
              "a short ivfpq.iddelta accepted: %s", dp_last_error());
        OK(dp_index_put_section(ix, "ivfpq.iddelta", dl, db));
        bad = m;
        bad.flags &= ~IVFPQ_IDBLK;
        OK(dp_index_put_section(ix, "ivfpq.meta", &bad, sizeof bad));
        CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "version 3 without id blocks accepted");
        bad.version = 4;
        OK(dp_index_put_section(ix, "ivfpq.meta", &bad, sizeof bad));
        CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_UNSUPPORTED && strstr(dp_last_error(), "version"),
              "version 4 accepted: %s", dp_last_error());
        OK(dp_index_put_section(ix, "ivfpq.meta", &m, sizeof m));
        OK(dp_ann_open(ix, NULL, &a));
        dp_ann_free(a);
        a = NULL;
        OK(dp_index_drop_section(ix, "ivfpq.idhead"));
        CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT && strstr(dp_last_error(), "idhead"),
              "missing ivfpq.idhead accepted: %s", dp_last_error());
        OK(dp_index_put_section(ix, "ivfpq.idhead", head, hb));
        free(head);
        free(dl);
    }
    if (opq) {
        /* a rotation that is not one, with a good checksum */
        const void *rp;
        size_t rb;
        OK(dp_index_get_section(ix, "ivfpq.opq", &rp, &rb));
        float *rot = malloc(rb);
        memcpy(rot, rp, rb);
        rot[3] *= 1.5f;
        OK(dp_index_put_section(ix, "ivfpq.opq", rot, rb));
        CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT && strstr(dp_last_error(), "rotation"),
              "a skewed rotation accepted: %s", dp_last_error());
        rot[3] /= 1.5f;
        OK(dp_index_put_section(ix, "ivfpq.opq", rot, rb));
        OK(dp_ann_open(ix, NULL, &a));
        dp_ann_free(a);
        a = NULL;
        bad = m;
        bad.dr = m.dr + 4;
        OK(dp_index_put_section(ix, "ivfpq.meta", &bad, sizeof bad));
        CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "coded dimension mismatch accepted");
        bad = m; /* a version-1 meta beside a rotation */
        bad.version = 1;
        bad.dr = bad.flags = 0;
        OK(dp_index_put_section(ix, "ivfpq.meta", &bad, sizeof bad));
        CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT, "meta without OPQ over a rotation");
        OK(dp_index_put_section(ix, "ivfpq.meta", &m, sizeof m));
        OK(dp_index_drop_section(ix, "ivfpq.opq"));
        CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT && strstr(dp_last_error(), "ivfpq.opq"),
              "missing rotation accepted: %s", dp_last_error());
        free(rot);
    }
    OK(dp_index_drop_section(ix, "ivfpq.codes"));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_FORMAT && strstr(dp_last_error(), "incomplete"),
          "missing codes accepted: %s", dp_last_error());
    OK(dp_ann_drop(ix));
    CHECK(dp_ann_open(ix, NULL, &a) == DP_ERR_NOT_FOUND, "dropped IVF-PQ still opens");
    free(off);
    dp_index_free(ix);
    free(x);
}

int main(void)
{
    tu_begin("test_ivfpq");
    test_kernels();
    /* Floors: measured recall (printed by each run; deterministic for a
     * given ISA) less a margin for the other ISA's rounding. Measured with
     * AVX2 kernels, 20000 x 32, nlist 566, m 8: nprobe=1 0.3707, nprobe=16
     * 0.7060, nprobe=16 + rerank 100 1.0000, for both metrics (cosine ranks
     * unit vectors by the same L2 tables). OPQ with m = 6 (padded to 36
     * dimensions, 6 bytes instead of 8): nprobe=1 0.3593, nprobe=16 0.6430,
     * rerank 1.0000. */
    test_ivfpq(DP_METRIC_L2, "l2", false, 0.68, 0.98);
    test_ivfpq(DP_METRIC_COSINE, "cosine", false, 0.68, 0.98);
    test_ivfpq(DP_METRIC_L2, "l2-opq", true, 0.62, 0.98);
    test_opq_gain();
    test_small();
    test_id_blocks();
    test_corrupt(false);
    test_corrupt(true);
    return tu_end("test_ann_ivfpq");
}
