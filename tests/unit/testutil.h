/* What every unit test needs: CHECK/OK that count failures and go on, a
 * private temporary folder removed on success and kept (named) on failure,
 * a seeded xorshift generator, the clustered synthetic set the ANN tests
 * share, an index built from rows, and the ANN tests' recall against the
 * exact search and damaged-section sweep. Header-only (static functions):
 * each test is one translation unit. */
#ifndef DP_TESTUTIL_H
#define DP_TESTUTIL_H

#define _GNU_SOURCE
#include "check.h"
#include "doppel/ann.h"
#include "doppel/index.h"
#include "util/util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmpdir[256];

/* mkdtemp under /tmp; exits with status 2 if that fails. */
static inline void tu_begin(const char *name)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_%s.XXXXXX", name);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(2);
    }
}

/* Remove the folder if all passed; report; the exit status for main. */
static inline int tu_end(const char *name)
{
    if (failures == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
        printf("%s: all passed\n", name);
        return 0;
    }
    fprintf(stderr, "%d check(s) failed (files kept in %s)\n", failures, tmpdir);
    return 1;
}

/* tmpdir/name; eight results stay valid at once. */
static inline const char *tpath(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static uint64_t rng = 0x243f6a8885a308d3ull;

/* Uniform in (0, 1): never 0, so log() is safe. */
static inline double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

static inline float nrand(void)
{
    return (float)(sqrt(-2 * log(urand())) * cos(2 * M_PI * urand()));
}

/* n rows of Gaussian clusters around nclus centres with a decaying spectrum
 * (noise * N(0,1) / sqrt(1 + decay j) along dimension j), L2-normalised:
 * like real embeddings, unlike i.i.d. noise. The centres are drawn from
 * generator state cent_state, the rows from row_state (so two row states
 * over one centre state give queries from the same clusters). */
static inline float *tu_clustered(size_t n, uint32_t d, size_t nclus, float noise, float decay,
                                  uint64_t cent_state, uint64_t row_state)
{
    rng = cent_state;
    float *cent = malloc(nclus * d * sizeof *cent), *x = malloc(n * d * sizeof *x);
    if (!cent || !x) exit(2);
    for (size_t i = 0; i < nclus * d; i++)
        cent[i] = nrand();
    rng = row_state;
    for (size_t i = 0; i < n; i++) {
        size_t c = (size_t)(urand() * (double)nclus) % nclus;
        double s = 0;
        for (uint32_t j = 0; j < d; j++) {
            float v = cent[c * d + j] + noise * nrand() / sqrtf(1.0f + decay * (float)j);
            x[i * d + j] = v;
            s += (double)v * v;
        }
        for (uint32_t j = 0; j < d; j++)
            x[i * d + j] = (float)(x[i * d + j] / sqrt(s));
    }
    free(cent);
    return x;
}

/* tu_clustered with decay 0.2, the centres depending on seed only and the
 * rows on seed and stream. */
static inline float *clustered_rows(size_t n, uint32_t d, size_t nclus, float noise, uint64_t seed,
                                    uint64_t stream)
{
    return tu_clustered(n, d, nclus, noise, 0.2f, seed * 0x9e3779b97f4a7c15ull + 7,
                        seed * 0x9e3779b97f4a7c15ull + stream * 0xd1b54a32d192ed03ull + 11);
}

/* Adds the n rows of x (d columns) to ix, uncommitted. */
static inline void tu_add_rows(dp_index *ix, const float *x, size_t n, uint32_t d)
{
    dp_index_entry *es = calloc(n ? n : 1, sizeof *es);
    if (!es) exit(2);
    for (size_t i = 0; i < n; i++)
        es[i].vector = x + i * d;
    OK(dp_index_add(ix, es, n, NULL));
    free(es);
}

/* A committed index at path holding the n rows of x; exits if it cannot
 * be created. */
static inline dp_index *tu_make_index(const char *path, const float *x, size_t n, uint32_t d,
                                      int metric)
{
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = d;
    cp.metric = metric;
    dp_index *ix = NULL;
    OK(dp_index_create(path, &cp, &ix));
    if (!ix) exit(2);
    tu_add_rows(ix, x, n, d);
    OK(dp_index_commit(ix));
    return ix;
}

/* The index at path opened for writing; exits if it cannot be. */
static inline dp_index *tu_open_rw(const char *path)
{
    dp_index_open_params op = dp_index_default_open_params();
    op.writable = true;
    dp_index *ix = NULL;
    OK(dp_index_open(path, &op, &ix));
    if (!ix) exit(2);
    return ix;
}

/* Mean recall@k of the ANN ids ai against the exact ids ei (nq rows of k).
 * Exact slots of -1 (fewer than k live rows) do not count; nothing to find
 * gives 0, so a floor cannot pass on an empty answer. */
static inline double tu_recall_ids(const int64_t *ei, const int64_t *ai, size_t nq, size_t k)
{
    size_t hit = 0, total = 0;
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < k; j++) {
            if (ei[i * k + j] < 0) continue;
            total++;
            for (size_t m = 0; m < k; m++)
                if (ai[i * k + m] == ei[i * k + j]) {
                    hit++;
                    break;
                }
        }
    return total ? (double)hit / (double)total : 0;
}

/* Recall@k of a searched with ap (its k set to k) against the exact search
 * of ix, on nq queries q. */
static inline double tu_recall(const dp_index *ix, const dp_ann *a, const float *q, size_t nq,
                               size_t k, dp_ann_search_params ap)
{
    int64_t *ei = malloc(nq * k * sizeof *ei), *ai = malloc(nq * k * sizeof *ai);
    if (!ei || !ai) exit(2);
    dp_search_params sp = dp_search_default_params();
    sp.k = k;
    OK(dp_index_search(ix, q, nq, &sp, ei, NULL));
    ap.k = k;
    OK(dp_ann_search(a, q, nq, &ap, ai, NULL));
    double r = tu_recall_ids(ei, ai, nq, k);
    free(ei);
    free(ai);
    return r;
}

/* One flipped bit in the middle of each named ANN section of the committed
 * index at path, one section at a time (the damaged copy at bad): opening
 * with verify must fail naming the section and dp_index_verify must fail.
 * Without verify, only names[lazy..] (the bulk records checked only by
 * verify) may open, and searching them for q must stay safe. */
static inline void tu_damage_sections(const char *path, const char *bad, const char *const *names,
                                      int ns, int lazy, const float *q)
{
    dp_index_section sec[16] = {{0}};
    if (ns > 16) exit(2);
    dp_index *ix = NULL;
    OK(dp_index_open(path, NULL, &ix));
    if (!ix) exit(2);
    dp_index_info info;
    OK(dp_index_describe(ix, &info));
    for (size_t i = 0; i < info.sections; i++) {
        dp_index_section s;
        OK(dp_index_section_at(ix, i, &s));
        for (int k = 0; k < ns; k++)
            if (!strcmp(s.name, names[k])) sec[k] = s;
    }
    dp_index_free(ix);
    size_t fl;
    uint8_t *f = NULL;
    OK(dp_read_file(path, 1 << 26, (void **)&f, &fl));
    if (!f) exit(2);
    for (int k = 0; k < ns; k++) {
        CHECK(sec[k].bytes > 64, "%s not found", names[k]);
        if (sec[k].bytes <= 64) continue;
        size_t at = sec[k].offset + 64 + (sec[k].bytes - 64) / 2;
        f[at] ^= 0x40;
        OK(dp_write_file_atomic(bad, f, fl));
        f[at] ^= 0x40;
        OK(dp_index_open(bad, NULL, &ix));
        if (!ix) continue;
        dp_ann *a = NULL;
        dp_ann_open_params aop = dp_ann_default_open_params();
        aop.verify = true;
        int rc = dp_ann_open(ix, &aop, &a);
        CHECK(rc == DP_ERR_FORMAT && strstr(dp_last_error(), names[k]), "damaged %s: rc %d: %s",
              names[k], rc, dp_last_error());
        dp_ann_free(a);
        a = NULL;
        CHECK(dp_index_verify(ix) == DP_ERR_FORMAT, "doppel check misses damaged %s", names[k]);
        aop.verify = false;
        if (!dp_ann_open(ix, &aop, &a)) {
            CHECK(k >= lazy, "damaged %s opened without verify", names[k]);
            int64_t ids[10];
            OK(dp_ann_search(a, q, 1, NULL, ids, NULL));
            dp_ann_free(a);
        }
        dp_index_free(ix);
    }
    free(f);
}

/* Removes every third id below n (0, 3, 6, ...) from ix. */
static inline void tu_remove_thirds(dp_index *ix, uint64_t n)
{
    for (uint64_t id = 0; id < n; id += 3)
        OK(dp_index_remove(ix, id));
}

/* After tu_remove_thirds: none of the count ids is a removed one and none
 * is -1 padding (live rows to spare remain). */
static inline void tu_check_live(const int64_t *ids, size_t count, const char *what)
{
    size_t bad = 0, shortrows = 0;
    for (size_t i = 0; i < count; i++) {
        shortrows += ids[i] < 0;
        bad += ids[i] >= 0 && ids[i] % 3 == 0;
    }
    CHECK(bad == 0 && shortrows == 0, "%s: %zu removed ids returned, %zu padded results", what, bad,
          shortrows);
}

#endif
