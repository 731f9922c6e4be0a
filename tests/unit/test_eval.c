/* doppel eval on small hand-made point sets whose precision@k, top-1, mAP,
 * instance recall, skipped same-instance neighbours, confusions, samples and
 * metrics were worked out by hand (the comments show the neighbour orders),
 * plus Minkowski p=1/p=2 against the index's own l1/l2 on random clusters,
 * and manifest parsing errors. */
#define _GNU_SOURCE
#include "check.h"
#include "doppel/eval.h"
#include "doppel/index.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NEAR(a, b)                                                                                 \
    CHECK(fabs((a) - (b)) < 1e-9, "%s = %.12f, expected %.12f", #a, (double)(a), (double)(b))

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

/* An uncommitted index of 2-D points (x, y), unnormalised, l2. */
static dp_index *make_index(const char *name, const float *xy, const char *const *paths,
                            const char *const *labels, size_t n)
{
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = 2;
    cp.metric = DP_METRIC_L2;
    cp.normalized = false;
    dp_index *ix = NULL;
    OK(dp_index_create(tpath(name), &cp, &ix));
    if (!ix) return NULL;
    for (size_t i = 0; i < n; i++) {
        dp_index_entry e = {0};
        e.path = paths[i];
        e.label = labels[i];
        e.vector = xy + 2 * i;
        OK(dp_index_add(ix, &e, 1, NULL));
    }
    return ix;
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, len, f);
    fclose(f);
}

static const dp_eval_label *find_label(const dp_eval_report *r, const char *name)
{
    for (size_t i = 0; i < r->n_labels; i++)
        if (!strcmp(r->labels[i].label, name)) return &r->labels[i];
    return NULL;
}

/* Folder labels, points on a line: A at 0, 1, 2.4; B at 4, 10, 11.5; k = 2.
 *   A0: A1 A2 B4 B10 B11.5   p@2 1    top1 1  AP 1
 *   A1: A0 A2 B4 ...          p@2 1    top1 1  AP 1
 *   A2: A1 B4 A0 ...          p@2 1/2  top1 1  AP (1 + 2/3)/2 = 5/6
 *   B4: A2 A1 A0 B10 B11.5    p@2 0    top1 0  AP (1/4 + 2/5)/2 = 0.325
 *   B10: B11.5 B4 ...         p@2 1    top1 1  AP 1
 *   B11.5: B10 B4 ...         p@2 1    top1 1  AP 1 */
static void test_folder_labels(void)
{
    const float xy[] = {0, 0, 1, 0, 2.4f, 0, 4, 0, 10, 0, 11.5f, 0};
    const char *paths[] = {"A/0.png", "A/1.png", "A/2.png", "B/4.png", "B/10.png", "B/11.png"};
    const char *labels[] = {"A", "A", "A", "B", "B", "B"};
    dp_index *ix = make_index("line.dpl", xy, paths, labels, 6);
    dp_eval_params p = dp_eval_default_params();
    p.k = 2;
    dp_eval_report r;
    OK(dp_eval_index(ix, &p, &r));
    CHECK(r.n_queries == 6 && r.n_database == 6 && r.k == 2, "%zu %zu", r.n_queries, r.n_database);
    NEAR(r.precision_at_k, 4.5 / 6);
    NEAR(r.top1, 5.0 / 6);
    NEAR(r.map100, (1 + 1 + 5.0 / 6 + 0.325 + 1 + 1) / 6);
    CHECK(!r.has_instances && !r.instances_skipped, "no instances here");
    CHECK(!strcmp(r.metric, "l2"), "%s", r.metric);
    CHECK(r.n_labels == 2 && !strcmp(r.labels[0].label, "B"), "worst first");
    NEAR(r.labels[0].precision, 2.0 / 3);
    NEAR(r.labels[0].top1, 2.0 / 3);
    NEAR(r.labels[1].precision, 2.5 / 3);
    CHECK(r.n_confusions == 1 && !strcmp(r.confusions[0].from, "B") &&
              !strcmp(r.confusions[0].to, "A") && r.confusions[0].count == 1,
          "one B -> A confusion");
    dp_eval_report_free(&r);

    /* Minkowski p = 2 is l2 (same order) computed by the eval's own scan. */
    OK(dp_eval_parse_metric("minkowski:2", &p));
    OK(dp_eval_index(ix, &p, &r));
    NEAR(r.map100, (1 + 1 + 5.0 / 6 + 0.325 + 1 + 1) / 6);
    CHECK(!strcmp(r.metric, "minkowski:2"), "%s", r.metric);
    dp_eval_report_free(&r);

    /* --queries: a subsample of queries, the whole database. */
    p = dp_eval_default_params();
    p.k = 2;
    p.queries = 3;
    p.seed = 7;
    OK(dp_eval_index(ix, &p, &r));
    CHECK(r.n_queries == 3 && r.n_database == 6, "%zu %zu", r.n_queries, r.n_database);
    dp_eval_report_free(&r);
    dp_index_free(ix);
}

/* Manifest classes and instances, 1-D: x1a 0, x1b 0.5 (class X, instance
 * x1), x2 3 (X, x2), y1a 1.2, y1b 6.5 (Y, y1); "extra" at 100 is not in the
 * manifest. k = 1. Raw neighbour orders:
 *   x1a: x1b y1a x2 y1b      x1b: x1a y1a x2 y1b     x2: y1a x1b x1a y1b
 *   y1a: x1b x1a x2 y1b      y1b: x2 y1a x1b x1a
 * Instance recall (queries x1a x1b y1a y1b): @1 2/4, @5 4/4.
 * Class metrics skip same-instance neighbours:
 *   x1a: y1a x2 y1b -> top1 0, AP 1/2 (relevant 1)   x1b: the same
 *   x2:  y1a x1b x1a y1b -> top1 0, AP (1/2 + 2/3)/2 (relevant 2)
 *   y1a, y1b: no relevant neighbour left -> 0
 * Without instance ids x1a and x1b find each other:
 *   p@1 = top1 = 2/5, mAP = (5/6 + 5/6 + 7/12 + 1/4 + 1/2)/5 = 3/5. */
static void test_instances(void)
{
    const float xy[] = {0, 0, 0.5f, 0, 3, 0, 1.2f, 0, 6.5f, 0, 100, 0};
    const char *paths[] = {"a/x1a.png", "a/x1b.png", "a/x2.png",
                           "b/y1a.png", "b/y1b.png", "c/extra.png"};
    const char *labels[] = {"wrong", "wrong", "wrong", "wrong", "wrong", "wrong"};
    dp_index *ix = make_index("inst.dpl", xy, paths, labels, 6);
    const char *m = "path\tclass\tinstance\tsource\n"
                    "a/x1a.png\tX\tx1\tvendor1\n"
                    "a/x1b.png\tX\tx1\tvendor2\r\n"
                    "a/x2.png\tX\tx2\tvendor1\n"
                    "b/y1a.png\tY\ty1\tvendor1\n"
                    "b/y1b.png\tY\ty1\n"
                    "not/indexed.png\tZ\tz\n";
    write_file(tpath("m.tsv"), m, strlen(m));
    dp_eval_labels *l = NULL;
    OK(dp_eval_labels_load(tpath("m.tsv"), &l));
    CHECK(dp_eval_labels_count(l) == 6, "%zu rows", dp_eval_labels_count(l));
    const char *c = NULL, *in = NULL;
    OK(dp_eval_labels_find(l, "a/x1b.png", &c, &in));
    CHECK(c && in && !strcmp(c, "X") && !strcmp(in, "x1"), "CRLF line parsed");

    dp_eval_params p = dp_eval_default_params();
    p.k = 1;
    p.labels = l;
    dp_eval_report r;
    OK(dp_eval_index(ix, &p, &r));
    CHECK(r.n_queries == 5 && r.n_database == 5 && r.n_unlabelled == 1, "%zu %zu %zu", r.n_queries,
          r.n_database, r.n_unlabelled);
    CHECK(r.has_instances && r.instances_skipped, "instances");
    CHECK(r.n_instance_queries == 4, "%zu", r.n_instance_queries);
    CHECK(r.n_no_relevant == 2, "y1a, y1b have no other Y instance: %zu", r.n_no_relevant);
    NEAR(r.instance_recall1, 0.5);
    NEAR(r.instance_recall5, 1.0);
    NEAR(r.precision_at_k, 0);
    NEAR(r.top1, 0);
    NEAR(r.map100, (0.5 + 0.5 + (0.5 + 2.0 / 3) / 2) / 5);
    const dp_eval_label *lx = find_label(&r, "X");
    CHECK(lx && lx->n == 3, "X has 3 queries");
    CHECK(!find_label(&r, "wrong"), "folder labels overridden");
    CHECK(r.n_confusions == 2 && !strcmp(r.confusions[0].from, "X") && r.confusions[0].count == 3 &&
              !strcmp(r.confusions[1].from, "Y") && r.confusions[1].count == 2,
          "X->Y 3, Y->X 2");
    dp_eval_report_free(&r);
    dp_eval_labels_free(l);

    /* The same classes without instance ids: nothing is skipped. */
    const char *m2 = "a/x1a.png\tX\na/x1b.png\tX\na/x2.png\tX\nb/y1a.png\tY\nb/y1b.png\tY\n";
    write_file(tpath("m2.tsv"), m2, strlen(m2));
    OK(dp_eval_labels_load(tpath("m2.tsv"), &l));
    p.labels = l;
    OK(dp_eval_index(ix, &p, &r));
    CHECK(!r.has_instances && r.n_instance_queries == 0, "no instances");
    NEAR(r.precision_at_k, 0.4);
    NEAR(r.top1, 0.4);
    NEAR(r.map100, 0.6);
    dp_eval_report_free(&r);
    dp_eval_labels_free(l);

    /* A manifest that matches no stored path says what paths look like. */
    const char *m3 = "elsewhere/x.png\tX\n";
    write_file(tpath("m3.tsv"), m3, strlen(m3));
    OK(dp_eval_labels_load(tpath("m3.tsv"), &l));
    p.labels = l;
    CHECK(dp_eval_index(ix, &p, &r) == DP_ERR_NOT_FOUND, "no match");
    CHECK(strstr(dp_last_error(), "a/x1a.png") != NULL, "%s", dp_last_error());
    dp_eval_labels_free(l);
    dp_index_free(ix);
}

/* Class-proportional sample: A 60 points near 0, B 30 near 500, C 10 near
 * 1000 (each class a tight cluster). A sample of 7 gets quotas 4.2, 2.1, 0.7
 * -> 4, 2, 0 + the largest remainder to C -> 4, 2, 1. The lone C has no other
 * C in the database, so if the search strayed outside the sample its top-1
 * would be a C; inside it is 0. A and B find their own: top-1 = 6/7. */
static void test_sample(void)
{
    enum { N = 100 };
    float xy[2 * N];
    char pbuf[N][32];
    const char *paths[N], *labels[N];
    for (int i = 0; i < N; i++) {
        const char *cl = i < 60 ? "A" : i < 90 ? "B" : "C";
        float base = i < 60 ? 0 : i < 90 ? 500 : 1000;
        xy[2 * i] = base + 0.01f * (float)i;
        xy[2 * i + 1] = 0;
        snprintf(pbuf[i], sizeof pbuf[i], "%s/%03d.png", cl, i);
        paths[i] = pbuf[i];
        labels[i] = cl;
    }
    dp_index *ix = make_index("sample.dpl", xy, paths, labels, N);
    /* The same points stored in reverse order get other ids; the sample
     * depends on paths only, so every number must agree. */
    float rxy[2 * N];
    const char *rpaths[N], *rlabels[N];
    for (int i = 0; i < N; i++) {
        rxy[2 * i] = xy[2 * (N - 1 - i)];
        rxy[2 * i + 1] = 0;
        rpaths[i] = paths[N - 1 - i];
        rlabels[i] = labels[N - 1 - i];
    }
    dp_index *rix = make_index("sample_rev.dpl", rxy, rpaths, rlabels, N);
    dp_eval_params p = dp_eval_default_params();
    p.k = 1;
    p.sample = 7;
    p.seed = 3;
    p.list_database = true;
    dp_eval_report r, r2;
    OK(dp_eval_index(ix, &p, &r));
    int nc = 0, sorted = 1;
    for (size_t i = 0; r.database_paths && i < r.n_database; i++) {
        nc += r.database_paths[i][0] == 'C';
        if (i) sorted &= strcmp(r.database_paths[i - 1], r.database_paths[i]) < 0;
    }
    CHECK(r.database_paths && nc == 1 && sorted, "the sample's 7 paths, sorted, one C");
    p.list_database = false;
    CHECK(r.n_database == 7 && r.n_queries == 7, "%zu %zu", r.n_database, r.n_queries);
    const dp_eval_label *a = find_label(&r, "A"), *b = find_label(&r, "B"),
                        *c = find_label(&r, "C");
    CHECK(a && b && c && a->n == 4 && b->n == 2 && c->n == 1, "quotas 4/2/1");
    NEAR(r.top1, 6.0 / 7);
    CHECK(c && c->top1 == 0, "C stays alone in the sample");
    CHECK(r.n_no_relevant == 1, "%zu", r.n_no_relevant);
    OK(dp_eval_index(rix, &p, &r2));
    NEAR(r2.map100, r.map100);
    NEAR(r2.top1, r.top1);
    dp_eval_report_free(&r2);

    /* Larger sample, proportional: 20 -> 12 / 6 / 2; mAP depends on which
     * points were drawn, so the same seed must give the same number and
     * the reverse-ordered index too. */
    p.sample = 20;
    p.k = 4;
    OK(dp_eval_index(ix, &p, &r2));
    a = find_label(&r2, "A"), b = find_label(&r2, "B"), c = find_label(&r2, "C");
    CHECK(a && b && c && a->n == 12 && b->n == 6 && c->n == 2, "quotas 12/6/2");
    dp_eval_report r3;
    OK(dp_eval_index(rix, &p, &r3));
    NEAR(r3.map100, r2.map100);
    NEAR(r3.precision_at_k, r2.precision_at_k);
    dp_eval_report_free(&r3);
    dp_eval_report_free(&r2);
    dp_eval_report_free(&r);
    dp_index_free(ix);
    dp_index_free(rix);
}

/* l1 and l2 disagree: q = (0,0) and a = (3,0) are class A, b = (2.1,2) is B.
 *   l2:  q: b 8.41 < a 9 (miss)    a: b 4.81 < q 9 (miss)   b: a 4.81 (miss)
 *   l1:  q: a 3 < b 4.1 (hit)      a: b 2.9 < q 3 (miss)    b: a 2.9 (miss)
 *   p=0.5: q: a 1.732 < b 2.863 (hit)  a: q 1.732 < b 2.363 (hit)  b: miss
 *   p=3: q: b 17.26 < a 27 (miss) ... */
static void test_metrics(void)
{
    const float xy[] = {0, 0, 3, 0, 2.1f, 2};
    const char *paths[] = {"q", "a", "b"};
    const char *labels[] = {"A", "A", "B"};
    dp_index *ix = make_index("metrics.dpl", xy, paths, labels, 3);
    struct {
        const char *m;
        double top1;
    } want[] = {
        {"l2", 0},          {"l1", 1.0 / 3},   {"minkowski:1", 1.0 / 3}, {"minkowski:0.5", 2.0 / 3},
        {"minkowski:3", 0}, {"minkowski:2", 0}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        dp_eval_params p = dp_eval_default_params();
        p.k = 1;
        OK(dp_eval_parse_metric(want[i].m, &p));
        dp_eval_report r;
        OK(dp_eval_index(ix, &p, &r));
        CHECK(fabs(r.top1 - want[i].top1) < 1e-9, "%s: top1 %.4f, expected %.4f", want[i].m, r.top1,
              want[i].top1);
        dp_eval_report_free(&r);
    }
    dp_eval_params p = dp_eval_default_params();
    OK(dp_eval_parse_metric("weighted-l2", &p));
    CHECK(p.weighted_l2, "weighted-l2 parsed");
    dp_eval_report wr;
    CHECK(dp_eval_index(ix, &p, &wr) == DP_ERR_NOT_FOUND, "weighted-l2 without a PCA");
    CHECK(strstr(dp_last_error(), "doppel pca") != NULL, "%s", dp_last_error());
    CHECK(dp_eval_parse_metric("minkowski:0", &p) == DP_ERR_INVALID, "p > 0");
    CHECK(dp_eval_parse_metric("minkowski:x", &p) == DP_ERR_INVALID, "p a number");
    CHECK(dp_eval_parse_metric("hamming", &p) == DP_ERR_INVALID, "unknown");
    dp_index_free(ix);

    /* Random clusters in 16-D: the eval's Minkowski scan with p = 1 and 2
     * must score as the index's own l1 and l2 searches. Both sum floats, in
     * different orders, so near-ties deep in the 100-long mAP list may swap:
     * mAP agrees to 1e-4, top-1 and precision@4 exactly. */
    enum { N = 300, D = 16, C = 6 };
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = D;
    cp.normalized = false;
    OK(dp_index_create(tpath("clusters.dpl"), &cp, &ix));
    uint64_t s = 42;
    float centre[C][D], v[D];
    for (int c = 0; c < C; c++)
        for (int d = 0; d < D; d++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            centre[c][d] = (float)((s >> 40) % 1000) / 250.0f;
        }
    char lab[8], path[32];
    for (int i = 0; i < N; i++) {
        int c = i % C;
        for (int d = 0; d < D; d++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            v[d] = centre[c][d] + (float)((s >> 40) % 1000) / 400.0f;
        }
        snprintf(lab, sizeof lab, "c%d", c);
        snprintf(path, sizeof path, "c%d/%d.png", c, i);
        dp_index_entry e = {.path = path, .label = lab, .vector = v};
        OK(dp_index_add(ix, &e, 1, NULL));
    }
    const char *pairs[2][2] = {{"l1", "minkowski:1"}, {"l2", "minkowski:2"}};
    for (int i = 0; i < 2; i++) {
        dp_eval_report r1, r2;
        p = dp_eval_default_params();
        OK(dp_eval_parse_metric(pairs[i][0], &p));
        OK(dp_eval_index(ix, &p, &r1));
        OK(dp_eval_parse_metric(pairs[i][1], &p));
        OK(dp_eval_index(ix, &p, &r2));
        CHECK(r1.top1 > 0.3 && r1.top1 < 1, "%s: clusters overlap a little (%.3f)", pairs[i][0],
              r1.top1);
        CHECK(fabs(r1.map100 - r2.map100) < 1e-4 && r1.top1 == r2.top1 &&
                  r1.precision_at_k == r2.precision_at_k,
              "%s %.6f/%.6f vs %s %.6f/%.6f", pairs[i][0], r1.top1, r1.map100, pairs[i][1], r2.top1,
              r2.map100);
        dp_eval_report_free(&r1);
        dp_eval_report_free(&r2);
    }
    dp_index_free(ix);
}

static void test_manifest_errors(void)
{
    dp_eval_labels *l = NULL;
    CHECK(dp_eval_labels_load(tpath("missing.tsv"), &l) == DP_ERR_IO && !l, "missing file");
    CHECK(strstr(dp_last_error(), "missing.tsv") != NULL, "%s", dp_last_error());
    const char *noclass = "a.png\tA\nb.png\n";
    write_file(tpath("bad1.tsv"), noclass, strlen(noclass));
    CHECK(dp_eval_labels_load(tpath("bad1.tsv"), &l) == DP_ERR_FORMAT, "no class");
    CHECK(strstr(dp_last_error(), "bad1.tsv:2") != NULL, "%s", dp_last_error());
    const char *dup = "a.png\tA\na.png\tB\n";
    write_file(tpath("bad2.tsv"), dup, strlen(dup));
    CHECK(dp_eval_labels_load(tpath("bad2.tsv"), &l) == DP_ERR_FORMAT, "duplicate");
    CHECK(strstr(dp_last_error(), "twice") != NULL, "%s", dp_last_error());
    write_file(tpath("bad3.tsv"), "a.png\tA\0\n", 9);
    CHECK(dp_eval_labels_load(tpath("bad3.tsv"), &l) == DP_ERR_FORMAT, "NUL");
    write_file(tpath("bad4.tsv"), "path\tclass\n\n", 12);
    CHECK(dp_eval_labels_load(tpath("bad4.tsv"), &l) == DP_ERR_FORMAT, "header only");
    size_t big = 70000;
    char *longline = malloc(big + 8);
    memset(longline, 'x', big);
    memcpy(longline + big, "\tA\n", 3);
    write_file(tpath("bad5.tsv"), longline, big + 3);
    free(longline);
    CHECK(dp_eval_labels_load(tpath("bad5.tsv"), &l) == DP_ERR_FORMAT, "long line");
    CHECK(!l, "nothing returned on error");
    dp_eval_labels_free(NULL);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_test_eval.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_folder_labels();
    test_instances();
    test_sample();
    test_metrics();
    test_manifest_errors();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    if (failures) {
        fprintf(stderr, "test_eval: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_eval: all passed\n");
    return 0;
}
