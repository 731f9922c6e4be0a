/* The index file and exact search: roundtrip of every field, add / remove /
 * commit / reopen through appended segments and compactions, metadata and
 * failure lists, search against a double-precision brute force for every
 * metric (scan and GEMM paths, k > n, exclusions, filters, thresholds, range
 * search, concurrent searches), crash safety (torn commit slot, garbage tail,
 * kill -9 of a committing child at random moments) and a corrupted-file suite
 * where each damage gets its own error and none crashes. */
#include "testutil.h"
#include "doppel/index.h"
#include "index/index_internal.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void rand_unit(float *v, size_t d)
{
    double s = 0;
    for (size_t i = 0; i < d; i++) {
        v[i] = nrand();
        s += (double)v[i] * v[i];
    }
    for (size_t i = 0; i < d; i++)
        v[i] = (float)(v[i] / sqrt(s));
}

/* Vector that depends only on (seed, d): lets a reader check any row. */
static void seeded_vec(uint64_t seed, float *v, size_t d)
{
    uint64_t save = rng;
    rng = seed * 0x2545f4914f6cdd1dull + 1;
    rand_unit(v, d);
    rng = save;
}

static double ref_dist(int metric, const float *x, const float *q, size_t d)
{
    double s = 0, qq = 0;
    for (size_t j = 0; j < d; j++) {
        double a = x[j], b = q[j];
        switch (metric) {
        case DP_METRIC_L2:
            s += (a - b) * (a - b);
            break;
        case DP_METRIC_L1:
            s += fabs(a - b);
            break;
        default:
            s += a * b;
            qq += b * b;
        }
    }
    if (metric == DP_METRIC_IP) return -s;
    if (metric == DP_METRIC_COSINE) return 1 - s / sqrt(qq);
    return s;
}

static size_t file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (size_t)st.st_size : 0;
}

static void *slurp(const char *p, size_t *n)
{
    void *b;
    if (dp_read_file(p, (size_t)1 << 30, &b, n)) return NULL;
    return b;
}

static void spit(const char *p, const void *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(b, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(2);
    }
    fclose(f);
}

/* Build an index of n rows, dim d, paths "cls<i%7>/img<i>.jpg". */
static float *build(const char *path, size_t n, uint32_t d, int metric, bool commit)
{
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = d;
    cp.metric = metric;
    cp.model_name = "test-model";
    cp.model_fingerprint = "fp-1";
    dp_index *ix = NULL;
    OK(dp_index_create(path, &cp, &ix));
    if (!ix) exit(2);
    float *vecs = malloc(n * d * sizeof(float));
    dp_index_entry *es = calloc(n, sizeof *es);
    char(*paths)[64] = malloc(n * 64), (*labels)[16] = malloc(n * 16);
    for (size_t i = 0; i < n; i++) {
        rand_unit(vecs + i * d, d);
        snprintf(paths[i], 64, "cls%zu/img%zu.jpg", i % 7, i);
        snprintf(labels[i], 16, "cls%zu", i % 7);
        es[i] = (dp_index_entry){.path = paths[i],
                                 .label = labels[i],
                                 .width = (uint32_t)(100 + i),
                                 .height = (uint32_t)(50 + i),
                                 .vector = vecs + i * d};
        for (int b = 0; b < 32; b++)
            es[i].hash[b] = (uint8_t)(i * 31 + b);
    }
    uint64_t *ids = malloc(n * sizeof *ids);
    OK(dp_index_add(ix, es, n, ids));
    for (size_t i = 0; i < n; i++)
        CHECK(ids[i] == i, "id %llu for row %zu", (unsigned long long)ids[i], i);
    if (commit) OK(dp_index_commit(ix));
    dp_index_free(ix);
    free(es);
    free(paths);
    free(labels);
    free(ids);
    return vecs;
}

static dp_index *open_ro(const char *path)
{
    dp_index *ix = NULL;
    OK(dp_index_open(path, NULL, &ix));
    return ix;
}

/* ---- roundtrip ---------------------------------------------------------- */

static void test_roundtrip(void)
{
    const size_t n = 500;
    const uint32_t d = 37;
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("rt.dpl"));
    float *v = build(p, n, d, DP_METRIC_L2, true);
    dp_index *ix = open_ro(p);
    if (!ix) return;
    CHECK(dp_index_count(ix) == n, "count %zu", dp_index_count(ix));
    CHECK(dp_index_dim(ix) == d, "dim");
    CHECK(dp_index_metric(ix) == DP_METRIC_L2, "metric");
    CHECK(dp_index_normalized(ix), "normalized");
    CHECK(!strcmp(dp_index_model_name(ix), "test-model"), "model %s", dp_index_model_name(ix));
    CHECK(!strcmp(dp_index_model_fingerprint(ix), "fp-1"), "fp");
    OK(dp_index_verify(ix));
    size_t cur = 0, seen = 0;
    dp_index_entry e;
    int rc;
    while ((rc = dp_index_next(ix, &cur, &e)) == 1) {
        size_t i = (size_t)e.id;
        char want[64];
        snprintf(want, sizeof want, "cls%zu/img%zu.jpg", i % 7, i);
        CHECK(!strcmp(e.path, want), "path %s vs %s", e.path, want);
        snprintf(want, sizeof want, "cls%zu", i % 7);
        CHECK(!strcmp(e.label, want), "label %s", e.label);
        CHECK(e.width == 100 + i && e.height == 50 + i, "size %ux%u", e.width, e.height);
        CHECK(e.hash[5] == (uint8_t)(i * 31 + 5), "hash");
        CHECK(!memcmp(e.vector, v + i * d, d * sizeof(float)), "vector of %zu", i);
        CHECK(((uintptr_t)e.vector & 3) == 0, "alignment");
        seen++;
    }
    CHECK(rc == 0 && seen == n, "iterated %zu rc %d", seen, rc);
    OK(dp_index_find_path(ix, "cls3/img10.jpg", &e));
    CHECK(e.id == 10, "find_path id %llu", (unsigned long long)e.id);
    CHECK(dp_index_find_path(ix, "nope.jpg", &e) == DP_ERR_NOT_FOUND, "missing path");
    OK(dp_index_get(ix, 499, &e));
    CHECK(dp_index_get(ix, 500, &e) == DP_ERR_NOT_FOUND, "id past the end");
    CHECK(dp_index_add(ix, &e, 1, NULL) == DP_ERR_INVALID, "read-only add refused");
    dp_index_info info;
    OK(dp_index_describe(ix, &info));
    CHECK(info.file_bytes == file_size(p), "file bytes %llu vs %zu",
          (unsigned long long)info.file_bytes, file_size(p));
    CHECK(info.segments == 1 && info.sections == 4, "segments %zu sections %zu", info.segments,
          info.sections);
    dp_index_free(ix);

    /* Empty index: commit, reopen, search returns padding. */
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = 4;
    OK(dp_index_create(tpath("empty.dpl"), &cp, &ix));
    OK(dp_index_commit(ix));
    dp_index_free(ix);
    ix = open_ro(tpath("empty.dpl"));
    if (ix) {
        CHECK(dp_index_count(ix) == 0, "empty count");
        float q[4] = {1, 0, 0, 0};
        int64_t ids[3];
        float dist[3];
        dp_search_params sp = dp_search_default_params();
        sp.k = 3;
        OK(dp_index_search(ix, q, 1, &sp, ids, dist));
        CHECK(ids[0] == -1 && ids[2] == -1 && isinf(dist[1]), "padding");
        dp_index_free(ix);
    }
    dp_index_free(NULL);
    free(v);
}

/* ---- add / remove / commit / reopen -------------------------------------- */

static void check_live(dp_index *ix, const bool *alive, size_t nid, const char *when)
{
    size_t cnt = 0;
    for (size_t i = 0; i < nid; i++) {
        dp_index_entry e;
        int rc = dp_index_get(ix, i, &e);
        if (alive[i]) {
            CHECK(rc == 0, "%s: id %zu missing: %s", when, i, dp_last_error());
            if (!rc) {
                float want[16];
                seeded_vec(i, want, 16);
                CHECK(!memcmp(e.vector, want, sizeof want), "%s: vector of id %zu", when, i);
                char path[32];
                snprintf(path, sizeof path, "f%zu.png", i);
                CHECK(!strcmp(e.path, path), "%s: path %s", when, e.path);
            }
            cnt++;
        } else {
            CHECK(rc == DP_ERR_NOT_FOUND, "%s: removed id %zu still there", when, i);
        }
    }
    CHECK(dp_index_count(ix) == cnt, "%s: count %zu vs %zu", when, dp_index_count(ix), cnt);
    size_t cur = 0, it = 0;
    dp_index_entry e;
    while (dp_index_next(ix, &cur, &e) == 1) {
        CHECK(e.id < nid && alive[e.id], "%s: iterated dead id %llu", when,
              (unsigned long long)e.id);
        it++;
    }
    CHECK(it == cnt, "%s: iterated %zu of %zu", when, it, cnt);
}

static void add_seeded(dp_index *ix, size_t first, size_t n)
{
    for (size_t i = first; i < first + n; i++) {
        float v[16];
        seeded_vec(i, v, 16);
        char path[32];
        snprintf(path, sizeof path, "f%zu.png", i);
        dp_index_entry e = {.path = path, .label = "x", .vector = v};
        uint64_t id;
        OK(dp_index_add(ix, &e, 1, &id));
        CHECK(id == i, "assigned id %llu, expected %zu", (unsigned long long)id, i);
    }
}

static void test_incremental(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("inc.dpl"));
    enum { NID = 400 };
    bool alive[NID] = {0};
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = 16;
    cp.model_fingerprint = "fp";
    dp_index *ix;
    OK(dp_index_create(p, &cp, &ix));
    add_seeded(ix, 0, 100);
    for (int i = 0; i < 100; i++)
        alive[i] = true;
    OK(dp_index_commit(ix));
    size_t sz1 = file_size(p);
    /* Appending commits: removal, re-add, many small batches. */
    size_t next = 100;
    for (int round = 0; round < 10; round++) {
        for (int j = 0; j < 3; j++) {
            size_t victim = (size_t)(round * 7 + j * 13) % next;
            if (alive[victim]) {
                OK(dp_index_remove(ix, victim));
                alive[victim] = false;
            } else {
                CHECK(dp_index_remove(ix, victim) == DP_ERR_NOT_FOUND, "double remove");
            }
        }
        add_seeded(ix, next, 20);
        for (int j = 0; j < 20; j++)
            alive[next + j] = true;
        next += 20;
        check_live(ix, alive, NID, "before commit");
        OK(dp_index_commit(ix));
        check_live(ix, alive, NID, "after commit");
    }
    dp_index_info info;
    OK(dp_index_describe(ix, &info));
    CHECK(info.segments == 11, "segments after 10 appends: %zu", info.segments);
    CHECK(file_size(p) > sz1, "file grew");
    /* find_path sees adds made after the table was built. */
    dp_index_entry e;
    OK(dp_index_find_path(ix, "f120.png", &e));
    add_seeded(ix, next, 1);
    alive[next++] = true;
    OK(dp_index_find_path(ix, "f300.png", &e));
    CHECK(e.id == 300, "fresh path found");
    dp_index_free(ix); /* the uncommitted add of id 300 is lost */
    alive[300] = false;
    next = 300;

    ix = open_ro(p);
    if (ix) {
        check_live(ix, alive, NID, "reopened");
        OK(dp_index_verify(ix));
        dp_index_free(ix);
    }
    /* Writer lock: a second writer is refused while one is open. */
    dp_index_open_params op = dp_index_default_open_params();
    op.writable = true;
    OK(dp_index_open(p, &op, &ix));
    dp_index *ix2 = NULL;
    int rc = dp_index_open(p, &op, &ix2);
    CHECK(rc == DP_ERR_IO && strstr(dp_last_error(), "another process is writing"), "lock: %d %s",
          rc, dp_last_error());
    dp_index_free(ix2);
    /* ids continue after the highest ever assigned, even the lost one. */
    add_seeded(ix, 300, 1);
    alive[300] = true;
    OK(dp_index_compact(ix));
    OK(dp_index_describe(ix, &info));
    CHECK(info.segments == 1 && info.rows == info.count, "compacted: %zu segments %zu rows",
          info.segments, info.rows);
    check_live(ix, alive, NID, "compacted");
    dp_index_free(ix);
    ix = open_ro(p);
    if (ix) {
        check_live(ix, alive, NID, "reopened after compaction");
        dp_index_free(ix);
    }
    /* Fingerprint check. */
    op.writable = false;
    op.expect_fingerprint = "other";
    rc = dp_index_open(p, &op, &ix);
    CHECK(rc == DP_ERR_MISMATCH && strstr(dp_last_error(), "another model"), "mismatch: %s",
          dp_last_error());
    op.expect_fingerprint = "fp";
    OK(dp_index_open(p, &op, &ix));
    dp_index_free(ix);
    /* Many commits trigger compaction on their own. */
    op.expect_fingerprint = NULL;
    op.writable = true;
    OK(dp_index_open(p, &op, &ix));
    for (int i = 0; i < 70; i++) {
        add_seeded(ix, 301 + (size_t)i, 1);
        alive[301 + i] = true;
        OK(dp_index_commit(ix));
    }
    OK(dp_index_describe(ix, &info));
    CHECK(info.segments <= 64, "auto-compaction kept segments at %zu", info.segments);
    check_live(ix, alive, NID, "after auto-compaction");
    /* save_as leaves ix alone. */
    OK(dp_index_save_as(ix, tpath("copy.dpl")));
    dp_index_free(ix);
    ix = open_ro(tpath("copy.dpl"));
    if (ix) {
        check_live(ix, alive, NID, "copy");
        dp_index_free(ix);
    }
}

/* ---- metadata ------------------------------------------------------------ */

static void test_metadata(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("meta.dpl"));
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = 3;
    dp_index *ix;
    OK(dp_index_create(p, &cp, &ix));
    OK(dp_index_set_meta_str(ix, "build.params", "{\"k\": 3}"));
    OK(dp_index_set_meta_i64(ix, "seed", -42));
    OK(dp_index_set_meta_f64(ix, "scale", 0.125));
    CHECK(dp_index_set_meta_str(ix, "doppel.dim", "9") == DP_ERR_INVALID, "reserved key");
    const char *fp[2] = {"a/bad.jpg", "zero.png"}, *fr[2] = {"truncated JPEG", "empty file"};
    OK(dp_index_set_failures(ix, fp, fr, 2));
    OK(dp_index_set_model(ix, "m2", "fp2"));
    OK(dp_index_commit(ix));
    dp_index_free(ix);
    dp_index_open_params op = dp_index_default_open_params();
    op.writable = true;
    OK(dp_index_open(p, &op, &ix));
    const char *s;
    int64_t i;
    double f;
    OK(dp_index_get_meta_str(ix, "build.params", &s));
    CHECK(!strcmp(s, "{\"k\": 3}"), "str %s", s);
    OK(dp_index_get_meta_i64(ix, "seed", &i));
    CHECK(i == -42, "i64");
    OK(dp_index_get_meta_f64(ix, "scale", &f));
    CHECK(f == 0.125, "f64");
    CHECK(dp_index_get_meta_i64(ix, "build.params", &i) == DP_ERR_MISMATCH, "type mismatch");
    CHECK(dp_index_get_meta_str(ix, "nope", &s) == DP_ERR_NOT_FOUND, "absent");
    OK(dp_index_get_meta_i64(ix, "doppel.dim", &i));
    CHECK(i == 3, "reserved dim readable");
    CHECK(!strcmp(dp_index_model_fingerprint(ix), "fp2"), "model set");
    CHECK(dp_index_failure_count(ix) == 2, "failures %zu", dp_index_failure_count(ix));
    const char *a, *b;
    OK(dp_index_failure_at(ix, 1, &a, &b));
    CHECK(!strcmp(a, "zero.png") && !strcmp(b, "empty file"), "failure %s %s", a, b);
    /* Replace by an appending commit; the key listing covers everything. */
    OK(dp_index_set_failures(ix, NULL, NULL, 0));
    OK(dp_index_set_meta_i64(ix, "seed", 7));
    float v[3] = {1, 0, 0};
    dp_index_entry e = {.vector = v};
    OK(dp_index_add(ix, &e, 1, NULL));
    CHECK(dp_index_set_model(ix, "m3", "fp3") == DP_ERR_INVALID, "model change with entries");
    OK(dp_index_commit(ix));
    dp_index_free(ix);
    ix = open_ro(p);
    if (!ix) return;
    CHECK(dp_index_failure_count(ix) == 0, "failures cleared");
    OK(dp_index_get_meta_i64(ix, "seed", &i));
    CHECK(i == 7, "updated");
    size_t n = dp_index_meta_count(ix);
    int found = 0;
    for (size_t k = 0; k < n; k++) {
        const char *key;
        int t;
        OK(dp_index_meta_at(ix, k, &key, &t));
        found += !strcmp(key, "doppel.metric") && t == DP_META_STR;
    }
    CHECK(found == 1, "listing has doppel.metric");
    dp_index_free(ix);
}

/* ---- search vs brute force ------------------------------------------------ */

typedef struct {
    double d;
    uint64_t id;
} pair;
static int cmp_pair(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int keep_even(uint64_t id, void *ud)
{
    (void)ud;
    return (id & 1) == 0;
}

/* Compare one query's results with a brute force over the live rows. */
static void check_query(const char *what, int metric, const float *base, const bool *alive,
                        size_t n, size_t d, const float *q, size_t k, const int64_t *ids,
                        const float *dist, uint64_t exclude, int even_only, float maxd)
{
    pair *all = malloc(n * sizeof *all);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!alive[i] || i == exclude || (even_only && (i & 1))) continue;
        double dd = ref_dist(metric, base + i * d, q, d);
        if (dd > maxd + 1e-4) continue;
        all[m++] = (pair){dd, i};
    }
    qsort(all, m, sizeof *all, cmp_pair);
    size_t want = m < k ? m : k;
    for (size_t r = 0; r < k; r++) {
        if (r >= want) {
            /* A result within rounding of the threshold may legitimately
             * be in or out; anything else must be padding. */
            if (ids[r] != -1) {
                double dd = ref_dist(metric, base + (size_t)ids[r] * d, q, d);
                CHECK(fabs(dd - maxd) < 1e-4, "%s: rank %zu should be padding, got %lld", what, r,
                      (long long)ids[r]);
            } else {
                CHECK(isinf(dist[r]), "%s: padding distance", what);
            }
            continue;
        }
        CHECK(ids[r] >= 0 && (size_t)ids[r] < n, "%s: rank %zu id %lld", what, r,
              (long long)ids[r]);
        if (ids[r] < 0 || (size_t)ids[r] >= n) continue;
        double tol = 2e-5 * (1 + fabs(all[r].d));
        CHECK(fabs(dist[r] - all[r].d) <= tol, "%s: rank %zu distance %.7f vs %.7f", what, r,
              dist[r], all[r].d);
        double own = ref_dist(metric, base + (size_t)ids[r] * d, q, d);
        CHECK(fabs(own - dist[r]) <= tol, "%s: rank %zu id %lld has distance %.7f not %.7f", what,
              r, (long long)ids[r], own, dist[r]);
        CHECK(alive[ids[r]] && (uint64_t)ids[r] != exclude && (!even_only || !(ids[r] & 1)),
              "%s: id %lld should be excluded", what, (long long)ids[r]);
        for (size_t s = 0; s < r; s++)
            CHECK(ids[s] != ids[r], "%s: duplicate id", what);
    }
    free(all);
}

static void test_search(void)
{
    const size_t n = 3000, d = 45;
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("search.dpl"));
    float *base = build(p, n, (uint32_t)d, DP_METRIC_L2, true);
    bool *alive = malloc(n);
    memset(alive, 1, n);
    /* Remove some rows and add an appended segment, so search crosses
     * segments and skips dead rows. */
    dp_index_open_params op = dp_index_default_open_params();
    op.writable = true;
    dp_index *ix;
    OK(dp_index_open(p, &op, &ix));
    if (!ix) return;
    for (size_t i = 0; i < n; i += 17) {
        OK(dp_index_remove(ix, i));
        alive[i] = false;
    }
    OK(dp_index_commit(ix));
    dp_index_free(ix);
    ix = open_ro(p);
    if (!ix) return;

    const size_t nq = 40;
    float *qs = malloc(nq * d * sizeof(float));
    for (size_t i = 0; i < nq; i++) {
        rand_unit(qs + i * d, d);
        if (i % 5 == 0)
            memcpy(qs + i * d, base + (i * 3 + 1) * d, d * sizeof(float)); /* exact hits */
        if (i == 1)
            for (size_t j = 0; j < d; j++)
                qs[i * d + j] *= 3.0f; /* not unit */
    }
    const int metrics[] = {DP_METRIC_L2, DP_METRIC_IP, DP_METRIC_COSINE, DP_METRIC_L1};
    const size_t ks[] = {1, 10, 100};
    for (int mi = 0; mi < 4; mi++)
        for (int ki = 0; ki < 3; ki++)
            for (int path = 0; path < 2; path++) {
                size_t k = ks[ki];
                dp_search_params sp = dp_search_default_params();
                sp.k = k;
                sp.metric = metrics[mi];
                sp.gemm_min_queries = path ? 1 : 0; /* GEMM vs scan */
                int64_t *ids = malloc(nq * k * sizeof *ids);
                float *dist = malloc(nq * k * sizeof *dist);
                OK(dp_index_search(ix, qs, nq, &sp, ids, dist));
                char what[64];
                snprintf(what, sizeof what, "%s k=%zu %s", dp_metric_name(metrics[mi]), k,
                         path ? "gemm" : "scan");
                for (size_t q = 0; q < nq; q++)
                    check_query(what, metrics[mi], base, alive, n, d, qs + q * d, k, ids + q * k,
                                dist + q * k, UINT64_MAX, 0, INFINITY);
                /* single-query calls agree with the batch */
                int64_t one[100];
                float od[100];
                OK(dp_index_search(ix, qs + 7 * d, 1, &sp, one, od));
                for (size_t r = 0; r < k; r++)
                    CHECK(fabsf(od[r] - dist[7 * k + r]) < 2e-5f, "%s: single vs batch rank %zu",
                          what, r);
                free(ids);
                free(dist);
            }
    /* k larger than the index: everything once, then padding. */
    {
        dp_search_params sp = dp_search_default_params();
        sp.k = n + 50;
        int64_t *ids = malloc(sp.k * sizeof *ids);
        float *dist = malloc(sp.k * sizeof *dist);
        OK(dp_index_search(ix, qs, 1, &sp, ids, dist));
        check_query("k>n", DP_METRIC_L2, base, alive, n, d, qs, sp.k, ids, dist, UINT64_MAX, 0,
                    INFINITY);
        CHECK(ids[dp_index_count(ix)] == -1 && ids[dp_index_count(ix) - 1] >= 0, "k>n padding");
        free(ids);
        free(dist);
    }
    /* Exclusion (the @ID case), filter and threshold, both paths. */
    for (int path = 0; path < 2; path++) {
        uint64_t excl[40];
        for (size_t q = 0; q < nq; q++)
            excl[q] = q % 5 == 0 ? q * 3 + 1 : UINT64_MAX;
        dp_search_params sp = dp_search_default_params();
        sp.k = 8;
        sp.exclude_ids = excl;
        sp.gemm_min_queries = path ? 1 : 0;
        int64_t ids[40 * 8];
        float dist[40 * 8];
        OK(dp_index_search(ix, qs, nq, &sp, ids, dist));
        for (size_t q = 0; q < nq; q++)
            check_query("exclude", DP_METRIC_L2, base, alive, n, d, qs + q * d, 8, ids + q * 8,
                        dist + q * 8, excl[q], 0, INFINITY);
        sp.exclude_ids = NULL;
        sp.filter = keep_even;
        sp.max_distance = 1.2f;
        OK(dp_index_search(ix, qs, nq, &sp, ids, dist));
        for (size_t q = 0; q < nq; q++)
            check_query("filter+threshold", DP_METRIC_L2, base, alive, n, d, qs + q * d, 8,
                        ids + q * 8, dist + q * 8, UINT64_MAX, 1, 1.2f);
    }
    /* Range search equals the brute-force set within the radius. */
    {
        dp_range_result rr;
        float radius = 1.3f;
        OK(dp_index_range_search(ix, qs, 5, radius, NULL, 0, &rr));
        for (size_t q = 0; q < 5 && rr.lims; q++) {
            size_t cnt = 0;
            for (size_t i = 0; i < n; i++)
                cnt += alive[i] && ref_dist(DP_METRIC_L2, base + i * d, qs + q * d, d) <= radius;
            size_t got = rr.lims[q + 1] - rr.lims[q];
            CHECK(got + 1 >= cnt && got <= cnt + 1, "range q%zu: %zu vs %zu", q, got, cnt);
            for (size_t j = rr.lims[q]; j < rr.lims[q + 1]; j++) {
                CHECK(rr.dist[j] <= radius, "range distance");
                if (j > rr.lims[q]) CHECK(rr.dist[j] >= rr.dist[j - 1], "range order");
            }
        }
        dp_range_result_free(&rr);
        CHECK(dp_index_range_search(ix, qs, 5, 10.0f, NULL, 100, &rr) == DP_ERR_NOMEM, "range cap");
        dp_range_result_free(&rr);
    }
    /* Bad queries. */
    {
        float bad[45];
        memcpy(bad, qs, sizeof bad);
        bad[3] = NAN;
        int64_t ids[10];
        CHECK(dp_index_search(ix, bad, 1, NULL, ids, NULL) == DP_ERR_INVALID, "NaN query");
    }
    dp_index_free(ix);
    free(qs);
    free(alive);
    free(base);
}

/* Many threads search one const index at once and agree with one thread. */
typedef struct th_arg {
    const dp_index *ix;
    const float *qs;
    size_t nq;
    const int64_t *want;
    int bad;
} th_arg;

static void *th_main(void *p)
{
    th_arg *a = p;
    dp_search_params sp = dp_search_default_params();
    sp.k = 5;
    sp.threads = 1;
    int64_t ids[5];
    for (int rep = 0; rep < 20; rep++)
        for (size_t q = 0; q < a->nq; q++) {
            if (dp_index_search(a->ix, a->qs + q * 45, 1, &sp, ids, NULL)) a->bad++;
            if (memcmp(ids, a->want + q * 5, sizeof ids)) a->bad++;
        }
    dp_index_entry e;
    if (dp_index_find_path(a->ix, "cls1/img8.jpg", &e) || e.id != 8) a->bad++;
    return NULL;
}

static void test_threads(void)
{
    dp_index *ix = open_ro(tpath("search.dpl"));
    if (!ix) return;
    float qs[8 * 45];
    for (int i = 0; i < 8; i++)
        rand_unit(qs + i * 45, 45);
    int64_t want[8 * 5];
    dp_search_params sp = dp_search_default_params();
    sp.k = 5;
    OK(dp_index_search(ix, qs, 8, &sp, want, NULL));
    pthread_t th[4];
    th_arg args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (th_arg){ix, qs, 8, want, 0};
        pthread_create(&th[t], NULL, th_main, &args[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK(args[t].bad == 0, "thread %d saw %d differences", t, args[t].bad);
    }
    dp_index_free(ix);
}

/* ---- crash safety --------------------------------------------------------- */

static void test_torn_commit(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("torn.dpl"));
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = 16;
    dp_index *ix;
    OK(dp_index_create(p, &cp, &ix));
    add_seeded(ix, 0, 10);
    OK(dp_index_commit(ix)); /* slot 0 */
    add_seeded(ix, 10, 5);
    OK(dp_index_commit(ix)); /* slot 1 */
    dp_index_free(ix);
    size_t n;
    uint8_t *b = slurp(p, &n);
    if (!b) return;
    /* A crash while writing slot 1: its checksum fails, slot 0 is used. */
    b[DPX_SLOT0 + DPX_SLOT_BYTES + 3] ^= 0x40;
    spit(tpath("torn2.dpl"), b, n);
    ix = open_ro(tpath("torn2.dpl"));
    if (ix) {
        CHECK(dp_index_count(ix) == 10, "previous commit after a torn slot: %zu",
              dp_index_count(ix));
        dp_index_free(ix);
    }
    /* A crash after appending data but before the slot: garbage tail. */
    free(b);
    b = slurp(p, &n);
    uint8_t *g = malloc(n + 5000);
    memcpy(g, b, n);
    for (size_t i = n; i < n + 5000; i++)
        g[i] = (uint8_t)(i * 7);
    spit(tpath("tail.dpl"), g, n + 5000);
    ix = open_ro(tpath("tail.dpl"));
    if (ix) {
        CHECK(dp_index_count(ix) == 15, "garbage tail ignored");
        dp_index_free(ix);
    }
    dp_index_open_params op = dp_index_default_open_params();
    op.writable = true;
    OK(dp_index_open(tpath("tail.dpl"), &op, &ix));
    CHECK(file_size(tpath("tail.dpl")) == n, "writer drops the tail: %zu vs %zu",
          file_size(tpath("tail.dpl")), n);
    if (ix) {
        add_seeded(ix, 15, 3);
        OK(dp_index_commit(ix));
        dp_index_free(ix);
    }
    ix = open_ro(tpath("tail.dpl"));
    if (ix) {
        CHECK(dp_index_count(ix) == 18, "commit after recovery");
        OK(dp_index_verify(ix));
        dp_index_free(ix);
    }
    free(b);
    free(g);
}

/* A child adds batches of 50 and commits in a loop (appends, removals,
 * compactions); the parent kills it with SIGKILL at a random moment and
 * checks that the file holds exactly some committed state. */
static void test_kill9(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("kill.dpl"));
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    srand((unsigned)ts.tv_nsec);
    size_t last_count = 0;
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            dp_index *ix = NULL;
            dp_index_open_params op = dp_index_default_open_params();
            op.writable = true;
            if (dp_index_open(p, &op, &ix)) {
                dp_index_create_params cp = dp_index_default_create_params();
                cp.dim = 16;
                if (dp_index_create(p, &cp, &ix)) _exit(3);
            }
            for (;;) {
                dp_index_info info;
                dp_index_describe(ix, &info);
                size_t first = (size_t)info.commit_seq * 50;
                /* ids are seq*50.., so a reader can check each vector */
                for (size_t i = 0; i < 50; i++) {
                    float v[16];
                    seeded_vec(first + i, v, 16);
                    dp_index_entry e = {.path = "p", .vector = v};
                    if (dp_index_add(ix, &e, 1, NULL)) _exit(4);
                }
                if (info.commit_seq % 4 == 3) {
                    size_t cur = 0;
                    dp_index_entry e;
                    if (dp_index_next(ix, &cur, &e) == 1 && dp_index_remove(ix, e.id)) _exit(5);
                }
                if (dp_index_commit(ix)) _exit(6);
            }
        }
        usleep((useconds_t)(2000 + rand() % 60000));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFSIGNALED(st), "child exited on its own: %d", WEXITSTATUS(st));
        dp_index_open_params op = dp_index_default_open_params();
        op.verify = true;
        dp_index *ix = NULL;
        int rc = dp_index_open(p, &op, &ix);
        if (rc == DP_ERR_IO && access(p, F_OK) != 0) continue; /* killed before the first commit */
        CHECK(rc == 0, "round %d: %s", round, dp_last_error());
        if (!ix) continue;
        size_t cur = 0, cnt = 0;
        dp_index_entry e;
        while (dp_index_next(ix, &cur, &e) == 1) {
            float v[16];
            seeded_vec(e.id, v, 16);
            CHECK(!memcmp(v, e.vector, sizeof v), "round %d: vector of id %llu", round,
                  (unsigned long long)e.id);
            cnt++;
        }
        CHECK(cnt >= last_count, "round %d: count went back from %zu to %zu", round, last_count,
              cnt);
        last_count = cnt;
        dp_index_free(ix);
    }
    CHECK(last_count > 0, "the child never committed");
    printf("kill -9: 20 rounds, final count %zu\n", last_count);
}

/* ---- corrupted files ------------------------------------------------------ */

/* Open (with full verification) and return the status, copying the message. */
static int try_open(const void *b, size_t n, char *msg, size_t msz)
{
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("bad.dpl"));
    spit(p, b, n);
    dp_index_open_params op = dp_index_default_open_params();
    op.verify = true;
    dp_index *ix = NULL;
    int rc = dp_index_open(p, &op, &ix);
    snprintf(msg, msz, "%s", rc ? dp_last_error() : "");
    if (!rc) {
        /* Opened: reading and searching must still be safe. */
        float q[16] = {1};
        int64_t ids[3];
        dp_search_params sp = dp_search_default_params();
        sp.k = 3;
        dp_index_search(ix, q, 1, &sp, ids, NULL);
        dp_index_free(ix);
    }
    /* And the same bytes from memory. */
    dp_index *m = NULL;
    int rc2 = dp_index_open_memory(b, n, "mem", &op, &m);
    CHECK((rc == 0) == (rc2 == 0), "file vs memory disagree: %d %d", rc, rc2);
    dp_index_free(m);
    return rc;
}

static void fix_dir_crc(uint8_t *b, int slot)
{
    dpx_slot s;
    memcpy(&s, b + DPX_SLOT0 + slot * DPX_SLOT_BYTES, sizeof s);
    s.dir_crc = dpx_crc32c(0, b + s.dir_offset, s.dir_bytes);
    s.crc = dpx_crc32c(0, &s, offsetof(dpx_slot, crc));
    memcpy(b + DPX_SLOT0 + slot * DPX_SLOT_BYTES, &s, sizeof s);
}

static void test_corruption(void)
{
    /* A file with every section kind: two segments, deletions, failures. */
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("corrupt-src.dpl"));
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = 16;
    dp_index *ix;
    OK(dp_index_create(p, &cp, &ix));
    add_seeded(ix, 0, 40);
    OK(dp_index_commit(ix));
    add_seeded(ix, 40, 10);
    OK(dp_index_remove(ix, 3));
    const char *fp[1] = {"bad.jpg"}, *fr[1] = {"not an image"};
    OK(dp_index_set_failures(ix, fp, fr, 1));
    OK(dp_index_commit(ix));
    dp_index_free(ix);
    size_t n;
    uint8_t *orig = slurp(p, &n), *b = malloc(n);
    if (!orig || !b) return;
    char msg[1024];
    CHECK(try_open(orig, n, msg, sizeof msg) == 0, "pristine: %s", msg);

    /* Flip one byte in each section: its own checksum error. */
    ix = open_ro(p);
    dp_index_info info;
    dp_index_describe(ix, &info);
    for (size_t i = 0; i < info.sections; i++) {
        dp_index_section s;
        OK(dp_index_section_at(ix, i, &s));
        if (!s.bytes) continue;
        memcpy(b, orig, n);
        b[s.offset + s.bytes / 2] ^= 0x10;
        int rc = try_open(b, n, msg, sizeof msg);
        char want[128];
        snprintf(want, sizeof want, "checksum mismatch in section '%s'", s.name);
        CHECK(rc == DP_ERR_FORMAT && strstr(msg, want), "flip in %s: %d %s", s.name, rc, msg);
    }
    dp_index_free(ix);
    dpx_slot sl;
    memcpy(&sl, orig + DPX_SLOT0 + DPX_SLOT_BYTES, sizeof sl); /* slot 1 is the newest */
    CHECK(sl.seq == 2, "slot 1 seq %llu", (unsigned long long)sl.seq);
    memcpy(b, orig, n);
    b[sl.dir_offset + 40] ^= 1;
    CHECK(try_open(b, n, msg, sizeof msg) == DP_ERR_FORMAT &&
              strstr(msg, "checksum mismatch in the directory"),
          "dir flip: %s", msg);
    memcpy(b, orig, n);
    b[13] ^= 1;
    CHECK(try_open(b, n, msg, sizeof msg) == DP_ERR_FORMAT && strstr(msg, "header checksum"),
          "header flip: %s", msg);
    memcpy(b, orig, n);
    b[0] = 'X';
    CHECK(try_open(b, n, msg, sizeof msg) == DP_ERR_FORMAT && strstr(msg, "bad magic"), "magic: %s",
          msg);
    /* Both slots torn. */
    memcpy(b, orig, n);
    b[DPX_SLOT0 + 1] ^= 1;
    b[DPX_SLOT0 + DPX_SLOT_BYTES + 1] ^= 1;
    CHECK(try_open(b, n, msg, sizeof msg) == DP_ERR_FORMAT && strstr(msg, "no valid commit"),
          "slots: %s", msg);
    /* Too new. */
    memcpy(b, orig, n);
    dpx_header h;
    memcpy(&h, b, sizeof h);
    h.version = 9;
    h.crc = dpx_crc32c(0, &h, offsetof(dpx_header, crc));
    memcpy(b, &h, sizeof h);
    CHECK(try_open(b, n, msg, sizeof msg) == DP_ERR_UNSUPPORTED &&
              strstr(msg, "format version 9 is newer than this doppel (1)"),
          "version: %s", msg);

    /* Section records edited with valid checksums: huge counts, offsets
     * past the end, overflowing sizes, a required unknown kind. */
    uint32_t nkv;
    memcpy(&nkv, orig + sl.dir_offset + 8, 4);
    size_t off = sl.dir_offset + sizeof(dpx_dir);
    for (uint32_t i = 0; i < nkv; i++) {
        dpx_kv kv;
        memcpy(&kv, orig + off, sizeof kv);
        off += (sizeof kv + kv.key_len + kv.value_len + 7) & ~(size_t)7;
    }
    size_t sec0 = off; /* first section record */
    struct {
        const char *what, *want;
        int field; /* 0 count, 1 offset, 2 bytes, 3 kind */
        uint64_t value;
        int status;
    } edits[] = {
        {"huge count", "not what", 0, (uint64_t)1 << 62, DP_ERR_FORMAT},
        {"count overflow", "not what", 0, UINT64_MAX / 3, DP_ERR_FORMAT},
        {"offset past end", "file is truncated (section 'vectors' ends at", 1, (uint64_t)n + 4096,
         DP_ERR_FORMAT},
        {"offset overflow", "impossible size", 1, UINT64_MAX - 64, DP_ERR_FORMAT},
        {"offset in header", "outside the committed data", 1, 64, DP_ERR_FORMAT},
        {"bytes huge", "ends at", 2, (uint64_t)1 << 40, DP_ERR_FORMAT},
        {"required kind", "needs a newer doppel", 3, 0x80000077u, DP_ERR_UNSUPPORTED},
    };
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        memcpy(b, orig, n);
        dpx_sec s;
        memcpy(&s, b + sec0, sizeof s);
        if (edits[e].field == 0) s.count = edits[e].value;
        if (edits[e].field == 1) s.offset = edits[e].value;
        if (edits[e].field == 2) s.bytes = edits[e].value;
        if (edits[e].field == 3) s.kind = (uint32_t)edits[e].value;
        memcpy(b + sec0, &s, sizeof s);
        fix_dir_crc(b, 1);
        int rc = try_open(b, n, msg, sizeof msg);
        CHECK(rc == edits[e].status && strstr(msg, edits[e].want), "%s: %d %s", edits[e].what, rc,
              msg);
    }
    /* n_sections and n_kv far beyond the directory. */
    uint32_t big = 0x7fffffff;
    memcpy(b, orig, n);
    memcpy(b + sl.dir_offset + 12, &big, 4);
    fix_dir_crc(b, 1);
    CHECK(try_open(b, n, msg, sizeof msg) == DP_ERR_FORMAT && strstr(msg, "sections in"),
          "n_sections: %s", msg);
    memcpy(b, orig, n);
    memcpy(b + sl.dir_offset + 8, &big, 4);
    fix_dir_crc(b, 1);
    CHECK(try_open(b, n, msg, sizeof msg) == DP_ERR_FORMAT && strstr(msg, "metadata records"),
          "n_kv: %s", msg);
    /* An entry whose path points outside the string table: open is fine
     * (entries are not read through), verify and get report it. */
    {
        ix = open_ro(p);
        dp_index_section s;
        size_t ent_off = 0;
        for (size_t i = 0; dp_index_section_at(ix, i, &s) == 0; i++)
            if (!strcmp(s.name, "entries") && s.segment == 0) ent_off = s.offset;
        dp_index_free(ix);
        memcpy(b, orig, n);
        dpx_entry de;
        memcpy(&de, b + ent_off + 5 * sizeof de, sizeof de);
        de.path_off = (uint64_t)1 << 50;
        memcpy(b + ent_off + 5 * sizeof de, &de, sizeof de);
        int rc = try_open(b, n, msg, sizeof msg); /* verify: checksum first */
        CHECK(rc == DP_ERR_FORMAT && strstr(msg, "checksum mismatch in section 'entries'"), "%s",
              msg);
        dp_index *m = NULL;
        OK(dp_index_open_memory(b, n, "mem", NULL, &m));
        if (m) {
            dp_index_entry e;
            rc = dp_index_get(m, 5, &e);
            CHECK(rc == DP_ERR_FORMAT && strstr(dp_last_error(), "path string out of bounds"),
                  "bad entry: %s", dp_last_error());
            size_t cur = 0, k = 0;
            while ((rc = dp_index_next(m, &cur, &e)) != 0 && k++ < 100)
                if (rc < 0) break;
            CHECK(rc == DP_ERR_FORMAT, "iteration reports the bad entry");
            dp_index_free(m);
        }
    }
    /* Truncation at many offsets: never a crash, always an error that
     * says so (the directory is written last, so any cut loses it). */
    int trunc_bad = 0;
    for (size_t cut = 0; cut < n; cut += (cut < 8192 ? 61 : 509)) {
        int rc = try_open(orig, cut, msg, sizeof msg);
        if (rc != DP_ERR_FORMAT ||
            !(strstr(msg, "truncated") || (cut < 8 && strstr(msg, "bad magic")))) {
            if (trunc_bad++ < 5) CHECK(0, "cut at %zu: %d %s", cut, rc, msg);
        }
    }
    CHECK(trunc_bad == 0, "%d truncations gave the wrong error", trunc_bad);
    /* Random byte flips anywhere: never a crash. */
    for (int i = 0; i < 300; i++) {
        memcpy(b, orig, n);
        for (int j = 0; j < 1 + i % 4; j++)
            b[(size_t)(urand() * n)] ^= (uint8_t)(1 + urand() * 255);
        try_open(b, n, msg, sizeof msg);
    }
    free(orig);
    free(b);
}

/* ---- vector files --------------------------------------------------------- */

static void test_vectors_io(void)
{
    float v[6 * 5];
    for (int i = 0; i < 30; i++)
        v[i] = (float)i * 0.5f;
    int64_t dims[2] = {6, 5};
    OK(dp_npy_write_f32(tpath("v.npy"), v, 2, dims));
    float *data;
    size_t n, d;
    OK(dp_vectors_load(tpath("v.npy"), 0, &data, &n, &d));
    CHECK(n == 6 && d == 5 && data && !memcmp(data, v, sizeof v), "npy roundtrip");
    free(data);
    /* fvecs */
    uint8_t fv[6 * 24];
    for (int r = 0; r < 6; r++) {
        int32_t dd = 5;
        memcpy(fv + r * 24, &dd, 4);
        memcpy(fv + r * 24 + 4, v + r * 5, 20);
    }
    spit(tpath("v.fvecs"), fv, sizeof fv);
    OK(dp_vectors_load(tpath("v.fvecs"), 0, &data, &n, &d));
    CHECK(n == 6 && d == 5 && data && !memcmp(data, v, sizeof v), "fvecs roundtrip");
    free(data);
    /* broken ones */
    spit(tpath("bad.fvecs"), fv, sizeof fv - 3);
    CHECK(dp_vectors_load(tpath("bad.fvecs"), 0, &data, &n, &d) == DP_ERR_FORMAT &&
              strstr(dp_last_error(), "multiple"),
          "%s", dp_last_error());
    size_t nb;
    uint8_t *nbuf = slurp(tpath("v.npy"), &nb);
    spit(tpath("short.npy"), nbuf, nb - 4);
    CHECK(dp_vectors_load(tpath("short.npy"), 0, &data, &n, &d) == DP_ERR_FORMAT &&
              strstr(dp_last_error(), "needs 120 data bytes"),
          "%s", dp_last_error());
    char *hs = memmem(nbuf, nb, "(6, 5)", 6);
    if (hs) {
        memcpy(hs, "(9, 5)", 6);
        spit(tpath("lie.npy"), nbuf, nb);
        CHECK(dp_vectors_load(tpath("lie.npy"), 0, &data, &n, &d) == DP_ERR_FORMAT, "shape lie");
    }
    free(nbuf);
}

int main(void)
{
    tu_begin("test_index");
    test_roundtrip();
    test_incremental();
    test_metadata();
    test_search();
    test_threads();
    test_torn_commit();
    test_corruption();
    test_vectors_io();
    test_kill9();
    return tu_end("test_index");
}
