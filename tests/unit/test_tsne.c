/* Barnes-Hut t-SNE on clustered data with a known answer: well separated
 * Gaussian clusters in 30-D must come out as separated 2-D clusters (the
 * nearest 2-D neighbour of nearly every point is in its cluster), with high
 * trustworthiness (computed here from its definition), the same output on a
 * second run, Barnes-Hut close to the exact repulsion (theta = 0), and
 * clear errors for bad input. */
#define _GNU_SOURCE
#include "check.h"
#include "doppel/viz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rs = 12345;
static double urand(void)
{
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rs >> 11) / 9007199254740992.0;
}
static double nrand(void)
{
    double u = urand() + 1e-12, v = urand();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static double d2(const float *a, const float *b, size_t d)
{
    double s = 0;
    for (size_t i = 0; i < d; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

/* Ranks of all points by distance from i (0 = nearest other point). */
static void ranks_from(const float *X, size_t n, size_t d, size_t i, int *rank, double *dist,
                       int *order)
{
    for (size_t j = 0; j < n; j++) {
        dist[j] = j == i ? -1 : d2(X + i * d, X + j * d, d);
        order[j] = (int)j;
    }
    /* insertion sort is plenty for a test of a few hundred points */
    for (size_t a = 1; a < n; a++) {
        int v = order[a];
        size_t b = a;
        while (b > 0 && dist[order[b - 1]] > dist[v]) {
            order[b] = order[b - 1];
            b--;
        }
        order[b] = v;
    }
    for (size_t r = 0; r < n; r++)
        rank[order[r]] = (int)r; /* self is rank 0 */
}

/* Trustworthiness (Venna & Kaski) as scikit-learn defines it. */
static double trustworthiness(const float *X, size_t d, const float *Y, size_t n, size_t k)
{
    int *rx = malloc(n * sizeof *rx), *ry = malloc(n * sizeof *ry), *ord = malloc(n * sizeof *ord);
    double *dist = malloc(n * sizeof *dist), t = 0;
    for (size_t i = 0; i < n; i++) {
        ranks_from(X, n, d, i, rx, dist, ord);
        ranks_from(Y, n, 2, i, ry, dist, ord);
        for (size_t j = 0; j < n; j++)
            if (j != i && ry[j] <= (int)k && rx[j] > (int)k) t += rx[j] - (double)k;
    }
    free(rx);
    free(ry);
    free(ord);
    free(dist);
    return 1 - t * 2.0 / ((double)n * k * (2.0 * n - 3.0 * k - 1.0));
}

static double nn_purity(const float *Y, const int *lab, size_t n)
{
    size_t good = 0;
    for (size_t i = 0; i < n; i++) {
        size_t best = i ? 0 : 1;
        for (size_t j = 0; j < n; j++)
            if (j != i && d2(Y + 2 * i, Y + 2 * j, 2) < d2(Y + 2 * i, Y + 2 * best, 2)) best = j;
        good += lab[best] == lab[i];
    }
    return (double)good / (double)n;
}

/* Pictures of a layout. Points already on a 4 x 4 lattice must each get
 * their own lattice cell (row * 4 + column, y down); 5 points piled on one
 * spot must spread over distinct cells next to it. */
static void test_pictures(void)
{
    char dir[] = "/tmp/dp_test_tsne.XXXXXX";
    if (!mkdtemp(dir)) return;
    char png[300];
    float xy[32];
    int cls[16], cell[16];
    dp_thumb thumbs[16];
    memset(thumbs, 0, sizeof thumbs); /* unreadable images: grey tiles */
    for (int i = 0; i < 16; i++) {
        xy[2 * i] = (float)(i % 4) * 10;
        xy[2 * i + 1] = (float)(i / 4) * 10;
        cls[i] = i % 3;
    }
    snprintf(png, sizeof png, "%s/grid.png", dir);
    OK(dp_viz_tile_grid(png, xy, thumbs, 16, NULL, cell));
    int ident = 1;
    for (int i = 0; i < 16; i++)
        ident &= cell[i] == i;
    CHECK(ident, "lattice points keep their cells");
    for (int i = 0; i < 5; i++)
        xy[2 * i] = xy[2 * i + 1] = 0;
    OK(dp_viz_tile_grid(png, xy, thumbs, 16, NULL, cell));
    int used[16] = {0}, dup = 0;
    for (int i = 0; i < 16; i++)
        dup |= used[cell[i]]++;
    CHECK(!dup, "no two images share a cell");
    const char *names[] = {"a", "b", "c"};
    snprintf(png, sizeof png, "%s/scatter.png", dir);
    OK(dp_viz_scatter(png, xy, cls, 16, names, 3, NULL));
    FILE *f = fopen(png, "rb");
    unsigned char sig[8] = {0};
    CHECK(f && fread(sig, 1, 8, f) == 8 && sig[1] == 'P' && sig[2] == 'N' && sig[3] == 'G',
          "scatter is a PNG");
    if (f) fclose(f);
    snprintf(png, sizeof png, "%s/map.png", dir);
    OK(dp_viz_image_map(png, xy, thumbs, 16, NULL));
    xy[3] = NAN;
    CHECK(dp_viz_scatter(png, xy, cls, 16, names, 3, NULL) == DP_ERR_INVALID, "NaN point");
    snprintf(png, sizeof png, "%s/no/such/dir/x.png", dir);
    xy[3] = 0;
    CHECK(dp_viz_scatter(png, xy, cls, 16, names, 3, NULL) == DP_ERR_IO, "unwritable");
    CHECK(strstr(dp_last_error(), "no/such/dir") != NULL, "%s", dp_last_error());
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    test_pictures();
    enum { C = 5, PER = 80, N = C * PER, D = 30 };
    float *X = malloc((size_t)N * D * sizeof *X), *Y = malloc(2 * N * sizeof *Y),
          *Y2 = malloc(2 * N * sizeof *Y2), *Ye = malloc(2 * N * sizeof *Ye);
    int lab[N];
    double centre[C][D];
    for (int c = 0; c < C; c++)
        for (int j = 0; j < D; j++)
            centre[c][j] = 8 * nrand();
    for (int i = 0; i < N; i++) {
        lab[i] = i % C;
        for (int j = 0; j < D; j++)
            X[i * D + j] = (float)(centre[lab[i]][j] + nrand());
    }
    dp_tsne_params p = dp_tsne_default_params();
    p.perplexity = 20;
    p.iters = 600;
    p.pca_dims = 10;
    p.threads = 2;
    dp_tsne_info info;
    OK(dp_tsne(X, N, D, &p, Y, &info));
    double pur = nn_purity(Y, lab, N), tw = trustworthiness(X, D, Y, N, 10);
    printf("t-SNE %d points: nn purity %.3f, trustworthiness %.4f, KL %.3f, %.2f s\n", N, pur, tw,
           info.kl_divergence, info.seconds);
    CHECK(pur >= 0.98, "clusters separated: %.3f", pur);
    CHECK(tw > 0.9, "trustworthiness %.4f", tw);
    CHECK(info.neighbours == 60 && info.input_dims == 10, "%zu %d", info.neighbours,
          info.input_dims);
    CHECK(info.kl_divergence > 0 && info.kl_divergence < 3, "KL %.3f", info.kl_divergence);
    /* The spread is that of a converged layout, not the 1e-4 start. */
    double sx = 0;
    for (int i = 0; i < N; i++)
        sx += fabs(Y[2 * i]);
    CHECK(sx / N > 1, "layout spread %.3g", sx / N);

    OK(dp_tsne(X, N, D, &p, Y2, NULL));
    CHECK(!memcmp(Y, Y2, 2 * N * sizeof *Y), "same input, same threads, same layout");

    /* Exact repulsion: the Barnes-Hut layout should be as good. */
    p.theta = 0;
    dp_tsne_info ie;
    OK(dp_tsne(X, N, D, &p, Ye, &ie));
    double twe = trustworthiness(X, D, Ye, N, 10);
    printf("exact: trustworthiness %.4f, KL %.3f, %.2f s\n", twe, ie.kl_divergence, ie.seconds);
    CHECK(fabs(twe - tw) < 0.02, "BH %.4f vs exact %.4f", tw, twe);
    CHECK(fabs(ie.kl_divergence - info.kl_divergence) < 0.1 * ie.kl_divergence + 0.02,
          "KL BH %.3f vs exact %.3f", info.kl_divergence, ie.kl_divergence);

    /* Without PCA reduction, and a tiny set where the perplexity is clipped. */
    p = dp_tsne_default_params();
    p.pca_dims = 0;
    p.iters = 300;
    OK(dp_tsne(X, N, D, &p, Y2, &info));
    CHECK(info.input_dims == D, "%d", info.input_dims);
    CHECK(nn_purity(Y2, lab, N) >= 0.98, "no-PCA purity %.3f", nn_purity(Y2, lab, N));
    OK(dp_tsne(X, 10, D, &p, Y2, &info));
    CHECK(info.neighbours == 9 && info.perplexity <= 3, "%zu %.2f", info.neighbours,
          info.perplexity);
    for (int i = 0; i < 20; i++)
        CHECK(isfinite(Y2[i]), "finite output");

    /* Duplicated points (identical rows) must not hang or give NaN. */
    for (int i = 0; i < 50; i++)
        memcpy(X + (size_t)i * D, X, D * sizeof *X);
    p.iters = 200;
    OK(dp_tsne(X, N, D, &p, Y2, NULL));
    int finite = 1;
    for (int i = 0; i < 2 * N; i++)
        finite &= isfinite(Y2[i]);
    CHECK(finite, "duplicates give finite output");

    /* Bad input. */
    CHECK(dp_tsne(X, 3, D, &p, Y2, NULL) == DP_ERR_INVALID, "too few points");
    CHECK(strstr(dp_last_error(), "4..") != NULL, "%s", dp_last_error());
    X[7 * D + 3] = NAN;
    CHECK(dp_tsne(X, N, D, &p, Y2, NULL) == DP_ERR_INVALID, "NaN");
    CHECK(strstr(dp_last_error(), "row 7") != NULL, "%s", dp_last_error());
    X[7 * D + 3] = 0;
    p.perplexity = 0;
    CHECK(dp_tsne(X, N, D, &p, Y2, NULL) == DP_ERR_INVALID, "perplexity 0");

    free(X);
    free(Y);
    free(Y2);
    free(Ye);
    if (failures) {
        fprintf(stderr, "test_tsne: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_tsne: all passed\n");
    return 0;
}
