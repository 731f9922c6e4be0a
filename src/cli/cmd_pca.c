/* doppel pca INDEX: reduce an index's vectors with PCA (stored with the
 * index, applied to later queries and additions), undo it, or just look at
 * the variance spectrum. */
#include "cli.h"

#include <doppel/chart.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SHOW 20

static void help(FILE *f)
{
    fprintf(f,
            "usage: doppel pca INDEX --dims N [--whiten] [--no-keep-originals] [--plot FILE.png]\n"
            "       doppel pca INDEX --undo\n"
            "       doppel pca INDEX [--plot FILE.png]\n\n"
            "Fit PCA on the index's vectors and replace them by their projection on the first\n"
            "N principal axes: the mean, the axes and the variance of every axis are stored in\n"
            "the index, later queries (doppel search with images or --vectors of the model's\n"
            "dimension) and later additions (doppel index) are projected the same way, and\n"
            "vectors stay L2-normalised when the index's were. The original vectors are kept\n"
            "in the index so that --undo restores them and a second --dims re-fits from them.\n"
            "An ANN structure built on the old vectors is dropped (rebuild it). Without --dims\n"
            "or --undo nothing changes: the variance spectrum of the stored PCA, or of a fit\n"
            "of the current vectors, is printed.\n\n"
            "  --dims N             keep N axes (1..dim)\n"
            "  --whiten             divide each axis by its standard deviation\n"
            "  --no-keep-originals  do not keep the original vectors (smaller file; no undo,\n"
            "                       no re-fit)\n"
            "  --undo               put the original vectors back and drop the PCA\n"
            "  --plot FILE.png      explained variance ratio per axis and its cumulative sum\n"
            "  --json               machine-readable output\n"
            "  -q, --quiet          print nothing on success\n"
            "  -h, --help           this help\n");
}

static int plot_spectrum(const char *png, const dp_pca_info *pi, size_t kept)
{
    size_t n = pi->in_dim, n1 = n < 200 ? n : 200; /* the per-axis curve is flat past 200 */
    double *x = malloc(n * sizeof *x), *r = malloc(n * sizeof *r), *c = malloc(n * sizeof *c);
    int rc = -1;
    if (x && r && c && pi->total_variance > 0) {
        double cum = 0;
        for (size_t i = 0; i < n; i++) {
            x[i] = (double)(i + 1);
            r[i] = pi->variance[i] / pi->total_variance;
            cum += r[i];
            c[i] = cum;
        }
        char t1[96], t2[128];
        snprintf(t1, sizeof t1, "Explained variance ratio per axis (first %zu of %zu)", n1,
                 pi->in_dim);
        double kx[2] = {(double)kept, (double)kept}, ky[2] = {0, 1};
        char kn[48];
        snprintf(kn, sizeof kn, "kept: %zu axes", kept);
        if (kept)
            snprintf(t2, sizeof t2, "Cumulative explained variance (%zu axes: %.1f %%)", kept,
                     100 * c[kept - 1]);
        else
            snprintf(t2, sizeof t2, "Cumulative explained variance");
        dp_chart_series s1 = {.x = x, .y = r, .n = n1, .style = DP_CHART_LINE};
        dp_chart_series s2[2] = {
            {.name = "cumulative", .x = x, .y = c, .n = n, .style = DP_CHART_LINE},
            {.name = kept ? kn : NULL,
             .x = kx,
             .y = ky,
             .n = kept ? 2 : 0,
             .style = DP_CHART_LINE}};
        dp_chart_panel p[2] = {dp_chart_default_panel(), dp_chart_default_panel()};
        p[0].title = t1;
        p[0].x_label = "principal axis";
        p[0].y_label = "share of the total variance";
        p[0].series = &s1;
        p[0].n_series = 1;
        p[0].y_min = 0;
        p[1].title = t2;
        p[1].x_label = "number of axes";
        p[1].y_label = "cumulative share";
        p[1].series = s2;
        p[1].n_series = 2;
        p[1].y_min = 0;
        p[1].y_max = 1.02;
        rc = dp_chart_png(png, p, 2, 1400, 520);
        if (rc) dp_cli_fail("pca", "plot");
    }
    free(x);
    free(r);
    free(c);
    return rc;
}

static void print_spectrum(const dp_pca_info *pi, size_t kept)
{
    size_t n = pi->in_dim < SHOW ? pi->in_dim : SHOW;
    double cum = 0;
    printf("axis  variance ratio  cumulative\n");
    for (size_t i = 0; i < n; i++) {
        double r = pi->total_variance > 0 ? pi->variance[i] / pi->total_variance : 0;
        cum += r;
        printf("%4zu  %14.4f  %10.4f\n", i + 1, r, cum);
    }
    if (kept) {
        double k = 0;
        for (size_t i = 0; i < kept && i < pi->in_dim; i++)
            k += pi->variance[i];
        printf("the first %zu of %zu axes hold %.2f %% of the variance\n", kept, pi->in_dim,
               pi->total_variance > 0 ? 100 * k / pi->total_variance : 0);
    }
}

static json_t *spectrum_json(const dp_pca_info *pi, size_t kept)
{
    json_t *ratios = json_array();
    double cum = 0, k = 0;
    for (size_t i = 0; i < pi->in_dim; i++) {
        double r = pi->total_variance > 0 ? pi->variance[i] / pi->total_variance : 0;
        if (i < SHOW) json_array_append_new(ratios, json_real(r));
        cum += r;
        if (i < kept) k = cum;
    }
    return json_pack("{s:I, s:I, s:b, s:I, s:o, s:f}", "in_dim", (json_int_t)pi->in_dim, "out_dim",
                     (json_int_t)kept, "whiten", pi->whiten, "fit_rows", (json_int_t)pi->n_fit,
                     "variance_ratio_first20", ratios, "kept_variance", k);
}

int dp_cmd_pca(int argc, char **argv)
{
    static const struct option opts[] = {{"dims", required_argument, 0, 'd'},
                                         {"whiten", no_argument, 0, 'w'},
                                         {"no-keep-originals", no_argument, 0, 'K'},
                                         {"undo", no_argument, 0, 'u'},
                                         {"plot", required_argument, 0, 'P'},
                                         {"json", no_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    dp_index_pca_params pp = dp_index_pca_default_params();
    bool undo = false, as_json = false, quiet = false, whiten_set = false;
    const char *plot = NULL;
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            pp.dims = (size_t)strtoull(optarg, &end, 10);
            if (*end || pp.dims < 1 || pp.dims > 65536)
                return dp_cli_usage("pca", "--dims must be in 1..65536");
            break;
        case 'w':
            pp.whiten = whiten_set = true;
            break;
        case 'K':
            pp.keep_originals = false;
            break;
        case 'u':
            undo = true;
            break;
        case 'P':
            plot = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("pca", "bad option");
        }
    }
    if (optind != argc - 1) return dp_cli_usage("pca", "expects one INDEX");
    if (undo && pp.dims) return dp_cli_usage("pca", "--undo and --dims exclude each other");
    if (!pp.dims && (whiten_set || !pp.keep_originals))
        return dp_cli_usage("pca", "--whiten and --no-keep-originals need --dims");
    const char *path = argv[optind];
    bool modify = undo || pp.dims;
    dp_index_open_params op = dp_index_default_open_params();
    op.writable = modify;
    dp_index *ix = NULL;
    dp_pca *pca = NULL;
    int status = DP_EXIT_OK;
    if (dp_index_open(path, &op, &ix)) {
        status = dp_cli_fail("pca", "cannot open %s", path);
        goto out;
    }
    dp_index_pca_report rep = {0};
    size_t kept = 0;
    if (undo) {
        if (dp_index_pca_undo(ix, &rep)) {
            status = dp_cli_fail("pca", "undo");
            goto out;
        }
        if (as_json) {
            json_t *o =
                json_pack("{s:s, s:s, s:I, s:I, s:I, s:b}", "index", path, "action", "undo", "rows",
                          (json_int_t)rep.rows, "dim", (json_int_t)rep.in_dim, "reconstructed",
                          (json_int_t)rep.reconstructed, "dropped_ann", rep.dropped_ann);
            json_dumpf(o, stdout, JSON_INDENT(2));
            fputc('\n', stdout);
            json_decref(o);
        } else if (!quiet) {
            printf("%s: PCA undone; %zu vectors of dimension %zu restored", path, rep.rows,
                   rep.in_dim);
            if (rep.reconstructed)
                printf(" (%zu added after the fit were rebuilt from their projection)",
                       rep.reconstructed);
            printf("\n");
            if (rep.dropped_ann) printf("the ANN structure was dropped: run doppel ann build\n");
        }
        goto out;
    }
    if (pp.dims) {
        if (dp_index_pca_apply(ix, &pp, &rep, &pca)) {
            status = dp_cli_fail("pca", "--dims %zu", pp.dims);
            goto out;
        }
        kept = pp.dims;
    } else {
        int rc = dp_index_pca(ix, &pca);
        if (rc == DP_ERR_NOT_FOUND) {
            /* A look at the spectrum before choosing: fit in memory. */
            size_t n = dp_index_count(ix), dim = dp_index_dim(ix), cur = 0, i = 0;
            float *X = malloc((n ? n : 1) * dim * sizeof *X);
            dp_index_entry e;
            if (!X) {
                status = dp_cli_fail("pca", "out of memory for %zu x %zu vectors", n, dim);
                goto out;
            }
            while (i < n && dp_index_next(ix, &cur, &e) == 1)
                memcpy(X + i++ * dim, e.vector, dim * sizeof *X);
            dp_pca_params fp = dp_pca_default_params();
            fp.dims = 1; /* the spectrum is what is wanted; one axis is cheapest to keep */
            rc = dp_pca_fit(X, i, dim, &fp, &pca);
            free(X);
        } else if (!rc) {
            dp_pca_info pi;
            dp_pca_describe(pca, &pi);
            kept = pi.out_dim;
        }
        if (rc) {
            status = dp_cli_fail("pca", "spectrum");
            goto out;
        }
    }
    dp_pca_info pi;
    dp_pca_describe(pca, &pi);
    if (as_json) {
        json_t *o = spectrum_json(&pi, kept);
        json_object_set_new(o, "index", json_string(path));
        json_object_set_new(o, "action",
                            json_string(pp.dims ? (rep.refit ? "refit" : "fit")
                                        : kept  ? "show"
                                                : "spectrum"));
        if (pp.dims) {
            json_object_set_new(o, "rows", json_integer((json_int_t)rep.rows));
            json_object_set_new(o, "reconstructed", json_integer((json_int_t)rep.reconstructed));
            json_object_set_new(o, "originals_kept", json_boolean(pp.keep_originals));
            json_object_set_new(o, "dropped_ann", json_boolean(rep.dropped_ann));
        }
        json_dumpf(o, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(o);
    } else if (!quiet) {
        if (pp.dims) {
            printf("%s: %zu vectors projected from %zu to %zu dimensions%s%s%s\n", path, rep.rows,
                   rep.in_dim, rep.out_dim, pp.whiten ? ", whitened" : "",
                   dp_index_normalized(ix) ? ", renormalised" : "",
                   rep.refit ? " (re-fitted from the original vectors)" : "");
            if (rep.reconstructed)
                printf("%zu vectors added after the previous fit had no original and were "
                       "rebuilt from their projection\n",
                       rep.reconstructed);
            printf("%s\n",
                   pp.keep_originals
                       ? "original vectors kept in the index (doppel pca --undo restores them)"
                       : "original vectors not kept: no undo or re-fit");
            if (rep.dropped_ann) printf("the ANN structure was dropped: run doppel ann build\n");
        } else if (kept) {
            printf("%s: PCA %zu -> %zu dims%s, fitted on %zu vectors\n", path, pi.in_dim,
                   pi.out_dim, pi.whiten ? ", whitened" : "", pi.n_fit);
        } else {
            printf("%s: no PCA stored; spectrum of its %zu vectors (%zu-d):\n", path, pi.n_fit,
                   pi.in_dim);
        }
        print_spectrum(&pi, kept);
    }
    if (plot && plot_spectrum(plot, &pi, kept))
        status = DP_EXIT_ERROR;
    else if (plot && !quiet && !as_json)
        printf("plot: %s\n", plot);
out:
    dp_pca_free(pca);
    dp_index_free(ix);
    return status;
}
