/* `doppel bench --plot-csv results.csv --plot out.png`: recall against
 * queries/s from the CSV of bench/ann/run.sh (doppel's kinds and the peers'
 * drivers print the same columns). Like ann-benchmarks, each curve is one
 * implementation's Pareto frontier: of all its rows (every round and every
 * point of every sweep), those no other row beats in both recall and speed.
 * So a noisy round cannot hide a good one, and several rounds need no
 * averaging. */
#include "bench.h"
#include "cli.h"

#include <doppel/chart.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CSV_BYTES ((size_t)256 << 20)
#define MAX_FIELDS 64
#define MAX_CURVES 64

typedef struct pt {
    double r, q;
} pt;

typedef struct curve {
    char name[160];
    pt *p;
    size_t n, cap;
    double *x, *y;
} curve;

/* Split a CSV line in place (quotes allowed around a field, no embedded
 * newlines: the benchmark drivers never write them). */
static int split(char *line, char **f, int cap)
{
    int n = 0;
    char *s = line;
    while (n < cap) {
        if (*s == '"') {
            char *o = ++s;
            f[n++] = o;
            while (*s && !(*s == '"' && s[1] != '"')) {
                if (*s == '"') s++;
                *o++ = *s++;
            }
            if (*s == '"') s++;
            *o = '\0';
            if (*s == ',') {
                s++;
                continue;
            }
            break;
        }
        f[n++] = s;
        char *c = strchr(s, ',');
        if (!c) break;
        *c = '\0';
        s = c + 1;
    }
    return n;
}

static int col(char **h, int nh, const char *name)
{
    for (int i = 0; i < nh; i++)
        if (!strcmp(h[i], name)) return i;
    return -1;
}

static int by_recall_desc(const void *a, const void *b)
{
    const pt *x = a, *y = b;
    if (x->r != y->r) return x->r > y->r ? -1 : 1;
    return x->q > y->q ? -1 : x->q < y->q;
}

/* ann-benchmarks' dataset names carry the cache key of the synthetic set;
 * the plot shows the set itself. */
static void short_name(const char *ds, char *out, size_t cap)
{
    snprintf(out, cap, "%s", ds);
    char *k = strstr(out, "-s");
    if (k && strstr(k, "-q") && strstr(k, "-g")) *k = '\0';
}

int dp_bench_plot_csv(const char *csv, const char *png, const char *dataset, const char *qps_col)
{
    FILE *f = fopen(csv, "rb");
    if (!f) {
        fprintf(stderr, "doppel bench: %s: %s\n", csv, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t len = 0;
    curve *cv = calloc(MAX_CURVES, sizeof *cv);
    dp_chart_series *ser = calloc(MAX_CURVES, sizeof *ser);
    int rc = -1, ncv = 0;
    char first_ds[128] = "", line_err[64] = "";
    bool many_ds = false;
    if (!cv || !ser) goto done;
    fseek(f, 0, SEEK_END);
    long fl = ftell(f);
    rewind(f);
    if (fl <= 0 || (size_t)fl > MAX_CSV_BYTES) {
        fprintf(stderr, "doppel bench: %s: empty or above %zu MiB\n", csv, MAX_CSV_BYTES >> 20);
        goto done;
    }
    len = (size_t)fl;
    buf = malloc(len + 1);
    if (!buf || fread(buf, 1, len, f) != len) {
        fprintf(stderr, "doppel bench: cannot read %s\n", csv);
        goto done;
    }
    buf[len] = '\0';
    char *save = NULL, *line = strtok_r(buf, "\r\n", &save);
    char *h[MAX_FIELDS];
    int nh = line ? split(line, h, MAX_FIELDS) : 0;
    int ci = col(h, nh, "impl"), cd = col(h, nh, "dataset"), cr = col(h, nh, "recall"),
        cq = col(h, nh, qps_col);
    if (ci < 0 || cd < 0 || cr < 0 || cq < 0) {
        fprintf(stderr, "doppel bench: %s: the header needs columns impl, dataset, recall and %s\n",
                csv, qps_col);
        goto done;
    }
    /* first pass over the rows decides whether the dataset goes in the labels */
    size_t lineno = 1, used = 0;
    for (char *l = strtok_r(NULL, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save)) {
        lineno++;
        if (!*l || !strncmp(l, "impl,", 5)) continue; /* repeated headers from appends */
        char *fld[MAX_FIELDS];
        int nf = split(l, fld, MAX_FIELDS);
        if (nf <= ci || nf <= cd || nf <= cr || nf <= cq) {
            snprintf(line_err, sizeof line_err, "line %zu", lineno);
            fprintf(stderr, "doppel bench: %s: %s has %d fields, too few\n", csv, line_err, nf);
            goto done;
        }
        char ds[128];
        short_name(fld[cd], ds, sizeof ds);
        if (dataset && strcmp(ds, dataset) && strcmp(fld[cd], dataset)) continue;
        char *e1, *e2;
        double r = strtod(fld[cr], &e1), q = strtod(fld[cq], &e2);
        if (e1 == fld[cr] || e2 == fld[cq] || !isfinite(r) || !isfinite(q)) {
            fprintf(stderr, "doppel bench: %s: line %zu: recall '%s' or %s '%s' is not a number\n",
                    csv, lineno, fld[cr], qps_col, fld[cq]);
            goto done;
        }
        if (!*first_ds)
            snprintf(first_ds, sizeof first_ds, "%s", ds);
        else if (strcmp(first_ds, ds))
            many_ds = true;
        char name[160];
        snprintf(name, sizeof name, "%s\t%s", fld[ci], ds);
        int k = 0;
        while (k < ncv && strcmp(cv[k].name, name))
            k++;
        if (k == ncv) {
            if (ncv == MAX_CURVES) {
                fprintf(stderr, "doppel bench: %s: more than %d curves\n", csv, MAX_CURVES);
                goto done;
            }
            snprintf(cv[ncv++].name, sizeof cv[0].name, "%s", name);
        }
        curve *c = &cv[k];
        if (c->n == c->cap) {
            size_t nc = c->cap ? 2 * c->cap : 16;
            pt *np = realloc(c->p, nc * sizeof *np);
            if (!np) goto done;
            c->p = np;
            c->cap = nc;
        }
        c->p[c->n++] = (pt){r, q};
        used++;
    }
    if (!used) {
        fprintf(stderr, "doppel bench: %s: no rows%s%s\n", csv, dataset ? " for dataset " : "",
                dataset ? dataset : "");
        goto done;
    }
    for (int k = 0; k < ncv; k++) {
        curve *c = &cv[k];
        qsort(c->p, c->n, sizeof *c->p, by_recall_desc);
        c->x = malloc(c->n * sizeof *c->x);
        c->y = malloc(c->n * sizeof *c->y);
        if (!c->x || !c->y) goto done;
        size_t m = 0;
        double best = -INFINITY;
        for (size_t i = 0; i < c->n; i++)
            if (c->p[i].q > best) {
                best = c->p[i].q;
                c->x[m] = c->p[i].r;
                c->y[m++] = c->p[i].q;
            }
        for (size_t i = 0; i < m / 2; i++) { /* left to right */
            double t = c->x[i];
            c->x[i] = c->x[m - 1 - i];
            c->x[m - 1 - i] = t;
            t = c->y[i];
            c->y[i] = c->y[m - 1 - i];
            c->y[m - 1 - i] = t;
        }
        char *tab = strchr(c->name, '\t');
        if (many_ds)
            *tab = ' ';
        else
            *tab = '\0';
        ser[k] = (dp_chart_series){.name = c->name, .x = c->x, .y = c->y, .n = m};
    }
    char title[256], sub[256];
    snprintf(title, sizeof title, "Recall@k against queries/s%s%s", many_ds ? "" : ": ",
             many_ds ? "" : first_ds);
    snprintf(sub, sizeof sub, "%s; each curve is the Pareto frontier of its rows in %s",
             !strcmp(qps_col, "qps_cpu")    ? "single-thread batch-1 queries, q/s from CPU time"
             : !strcmp(qps_col, "qps_wall") ? "single-thread batch-1 queries, q/s from wall time"
                                            : qps_col,
             strrchr(csv, '/') ? strrchr(csv, '/') + 1 : csv);
    dp_chart_panel pp = dp_chart_default_panel();
    pp.title = title;
    pp.subtitle = sub;
    pp.x_label = "recall (ann-benchmarks, tie-tolerant)";
    pp.y_label = "queries per second (log scale)";
    pp.series = ser;
    pp.n_series = (size_t)ncv;
    pp.log_y = true;
    pp.x_max = 1.005;
    pp.legend = DP_CHART_LEGEND_RIGHT; /* up to 64 curves: never over the data */
    if (dp_chart_png(png, &pp, 1, 0, 0)) {
        dp_cli_fail("bench", "--plot %s", png);
        goto done;
    }
    fprintf(stderr, "wrote %s: %d curves from %zu rows\n", png, ncv, used);
    rc = 0;
done:
    fclose(f);
    free(buf);
    if (cv)
        for (int k = 0; k < MAX_CURVES; k++) {
            free(cv[k].p);
            free(cv[k].x);
            free(cv[k].y);
        }
    free(cv);
    free(ser);
    return rc;
}
