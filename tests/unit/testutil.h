/* What every unit test needs: CHECK/OK that count failures and go on, a
 * private temporary folder removed on success and kept (named) on failure,
 * a seeded xorshift generator, the clustered synthetic set the ANN tests
 * share, and an index built from rows. Header-only (static functions): each
 * test is one translation unit. */
#ifndef DP_TESTUTIL_H
#define DP_TESTUTIL_H

#define _GNU_SOURCE
#include "check.h"
#include "doppel/index.h"

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
 * (noise * N(0,1) / sqrt(1 + j/5) along dimension j), L2-normalised: like
 * real embeddings, unlike i.i.d. noise. The centres depend on seed only, so
 * another stream gives queries from the same clusters. */
static inline float *clustered_rows(size_t n, uint32_t d, size_t nclus, float noise, uint64_t seed,
                                    uint64_t stream)
{
    rng = seed * 0x9e3779b97f4a7c15ull + 7;
    float *cent = malloc(nclus * d * sizeof *cent), *x = malloc(n * d * sizeof *x);
    if (!cent || !x) exit(2);
    for (size_t i = 0; i < nclus * d; i++)
        cent[i] = nrand();
    rng = seed * 0x9e3779b97f4a7c15ull + stream * 0xd1b54a32d192ed03ull + 11;
    for (size_t i = 0; i < n; i++) {
        size_t c = (size_t)(urand() * (double)nclus) % nclus;
        double s = 0;
        for (uint32_t j = 0; j < d; j++) {
            float v = cent[c * d + j] + noise * nrand() / sqrtf(1.0f + 0.2f * (float)j);
            x[i * d + j] = v;
            s += (double)v * v;
        }
        for (uint32_t j = 0; j < d; j++)
            x[i * d + j] = (float)(x[i * d + j] / sqrt(s));
    }
    free(cent);
    return x;
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
    dp_index_entry *es = calloc(n ? n : 1, sizeof *es);
    if (!es) exit(2);
    for (size_t i = 0; i < n; i++)
        es[i].vector = x + i * d;
    OK(dp_index_add(ix, es, n, NULL));
    OK(dp_index_commit(ix));
    free(es);
    return ix;
}

#endif
