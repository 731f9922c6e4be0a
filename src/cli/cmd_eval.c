/* doppel eval INDEX: accuracy of the embeddings against the stored labels or
 * a manifest's classes and instances, for one metric or a table of them. */
#include "cli.h"

#include <doppel/chart.h>
#include <doppel/eval.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_METRICS 16

static void help(FILE *f)
{
    fprintf(
        f,
        "usage: doppel eval INDEX [-k K] [--labels MANIFEST.tsv] [--sample N] [--queries N]\n"
        "                         [--seed S] [--metric LIST] [--json]\n"
        "       doppel eval INDEX --pca-sweep 1,2,5,10,20,50,100 [--plot sweep.png] [options]\n\n"
        "Use every labelled image (label = parent folder, or the manifest's class) as a\n"
        "query against the rest and report precision@k (the share of the k nearest with\n"
        "the query's label), top-1 accuracy, mAP@100, the worst labels and the most\n"
        "confused label pairs. With instance ids in the manifest (the same object in\n"
        "several renderings) also instance recall@1 and @5, and the class metrics skip\n"
        "neighbours of the query's own instance (another rendering is a free hit).\n\n"
        "  -k K             neighbours for precision@k (default 4, as in the chapter)\n"
        "  --labels FILE    TSV 'path<TAB>class[<TAB>instance]' (tools/datasets' manifest.tsv),\n"
        "                   paths relative to the indexed folder; overrides folder labels\n"
        "  --sample N       class-proportional sample of N images used as queries AND\n"
        "                   database (a fixed-size calibration run)\n"
        "  --queries N      evaluate a random subsample of N queries (default: all)\n"
        "  --seed S         seed for the samples (default 1)\n"
        "  --metric LIST    comma-separated: l2, cosine, ip, l1, minkowski:P, weighted-l2\n"
        "                   (default: the index's); two or more print a table.\n"
        "                   weighted-l2 weighs PCA axis i by its variance (needs doppel pca)\n"
        "  --pca-sweep LIST for each number of axes in LIST: project the vectors on that\n"
        "                   many principal axes (one PCA fit on all vectors, in memory; the\n"
        "                   index is not changed), evaluate, and time the exact search of\n"
        "                   every vector as a query; the first row is the vectors as stored\n"
        "  --plot FILE.png  with --pca-sweep: search time against accuracy, each point\n"
        "                   labelled with its number of axes\n"
        "  --repeats N      with --pca-sweep: time the search N times, keep the best (3)\n"
        "  --pca-raw        with --pca-sweep: do not renormalise the projections (doppel pca\n"
        "                   does, for a normalised index; with 1-2 axes that leaves a sign\n"
        "                   or an angle)\n"
        "  --threads N      search threads (default: all cores)\n"
        "  --json           machine-readable output\n"
        "  -h, --help       this help\n");
}

static json_t *report_json(const dp_eval_report *r)
{
    json_t *labels = json_array(), *conf = json_array();
    for (size_t i = 0; i < r->n_labels; i++)
        json_array_append_new(labels, json_pack("{s:s, s:I, s:f, s:f}", "label", r->labels[i].label,
                                                "n", (json_int_t)r->labels[i].n, "precision",
                                                r->labels[i].precision, "top1", r->labels[i].top1));
    for (size_t i = 0; i < r->n_confusions; i++)
        json_array_append_new(conf, json_pack("{s:s, s:s, s:I}", "from", r->confusions[i].from,
                                              "to", r->confusions[i].to, "count",
                                              (json_int_t)r->confusions[i].count));
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:o, s:o, s:f}", "metric",
                          r->metric, "queries", (json_int_t)r->n_queries, "database",
                          (json_int_t)r->n_database, "unlabelled", (json_int_t)r->n_unlabelled,
                          "no_relevant", (json_int_t)r->n_no_relevant, "k", (json_int_t)r->k,
                          "precision_at_k", r->precision_at_k, "top1", r->top1, "map100", r->map100,
                          "labels", labels, "confusions", conf, "seconds", r->seconds);
    if (r->has_instances) {
        json_object_set_new(o, "instance_queries", json_integer((json_int_t)r->n_instance_queries));
        json_object_set_new(o, "instance_recall1", json_real(r->instance_recall1));
        json_object_set_new(o, "instance_recall5", json_real(r->instance_recall5));
        json_object_set_new(o, "same_instance_neighbours_skipped",
                            json_boolean(r->instances_skipped));
    }
    return o;
}

static void print_report(const char *path, const char *model, const dp_eval_report *r,
                         const dp_eval_params *ep)
{
    printf("%s (%s, %s): %zu queries over %zu labels", path, model, r->metric, r->n_queries,
           r->n_labels);
    if (ep->sample && r->n_database == ep->sample)
        printf("; database = class-proportional sample of %zu (seed %llu)", r->n_database,
               (unsigned long long)ep->seed);
    else
        printf("; database %zu", r->n_database);
    if (r->n_unlabelled) printf("; %zu unlabelled left out", r->n_unlabelled);
    if (r->n_no_relevant)
        printf("; %zu queries have no relevant neighbour in the database (count as 0)",
               r->n_no_relevant);
    char pk[32];
    snprintf(pk, sizeof pk, "precision@%zu", r->k);
    printf("\n  %-19s %.4f\n  top-1               %.4f\n  mAP@100             %.4f\n", pk,
           r->precision_at_k, r->top1, r->map100);
    if (r->has_instances) {
        printf("  instance recall@1   %.4f\n  instance recall@5   %.4f   (%zu queries with "
               "another rendering in the database)\n",
               r->instance_recall1, r->instance_recall5, r->n_instance_queries);
        printf("  class metrics skip neighbours sharing the query's instance (another rendering "
               "of the same object is a free hit)\n");
    }
    size_t worst = r->n_labels < 6 ? r->n_labels : 6;
    printf("worst labels (precision@%zu, top-1, queries):\n", r->k);
    for (size_t i = 0; i < worst; i++)
        printf("  %-32s %.3f  %.3f  %zu\n", r->labels[i].label, r->labels[i].precision,
               r->labels[i].top1, r->labels[i].n);
    if (r->n_confusions) printf("most confused (query label -> nearest neighbour's label):\n");
    for (size_t i = 0; i < r->n_confusions && i < 6; i++)
        printf("  %-32s -> %-32s %zu\n", r->confusions[i].from, r->confusions[i].to,
               r->confusions[i].count);
}

#define MAX_SWEEP 64

static int sweep_plot(const char *png, const char *path, const char *model,
                      const dp_eval_sweep_row *rows, size_t n, size_t k, unsigned dim)
{
    double x[MAX_SWEEP], y1[MAX_SWEEP], yk[MAX_SWEEP];
    char lab[MAX_SWEEP][24];
    const char *labels[MAX_SWEEP];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].skipped) continue;
        x[m] = rows[i].search_seconds * 1e3;
        y1[m] = rows[i].top1;
        yk[m] = rows[i].precision_at_k;
        if (rows[i].dims)
            snprintf(lab[m], sizeof lab[m], "%zu", rows[i].dims);
        else
            snprintf(lab[m], sizeof lab[m], "%u (no PCA)", dim);
        labels[m] = lab[m];
        m++;
    }
    char pk[32], title[512];
    snprintf(pk, sizeof pk, "precision@%zu", k);
    const char *base = strrchr(path, '/');
    snprintf(title, sizeof title, "PCA sweep: %s (%s)", base ? base + 1 : path, model);
    dp_chart_series s[2] = {
        {.name = "top-1", .x = x, .y = y1, .n = m, .labels = labels, .style = DP_CHART_MARKERS},
        {.name = pk, .x = x, .y = yk, .n = m, .style = DP_CHART_MARKERS}};
    dp_chart_panel p = dp_chart_default_panel();
    p.title = title;
    p.x_label = "exact search of every vector as a query (ms, best run)";
    p.y_label = "accuracy";
    p.series = s;
    p.n_series = 2;
    p.log_x = true;
    if (dp_chart_png(png, &p, 1, 900, 600)) return dp_cli_fail("eval", "plot");
    return 0;
}

static int run_sweep(const char *path, const char *list, const char *plot, const char *metric,
                     const char *labels_path, dp_eval_params *ep, int repeats, bool as_json)
{
    size_t dims[MAX_SWEEP], n = 0;
    dims[n++] = 0; /* the stored vectors: the reference row */
    char *end;
    for (const char *s = list; *s;) {
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || v < 1 || v > 65536 || (*end && *end != ','))
            return dp_cli_usage("eval",
                                "--pca-sweep: '%s' is not a comma-separated list of "
                                "numbers in 1..65536",
                                list);
        if (n == MAX_SWEEP)
            return dp_cli_usage("eval", "--pca-sweep: at most %d values", MAX_SWEEP - 1);
        dims[n++] = (size_t)v;
        s = *end ? end + 1 : end;
    }
    if (metric) {
        if (strchr(metric, ',')) return dp_cli_usage("eval", "--pca-sweep takes one --metric");
        if (dp_eval_parse_metric(metric, ep)) return dp_cli_usage("eval", "%s", dp_last_error());
        if (ep->weighted_l2)
            return dp_cli_usage("eval", "--pca-sweep and weighted-l2 exclude each other (the "
                                        "sweep's projections have no stored PCA)");
    }
    dp_index *ix = NULL;
    dp_eval_labels *labels = NULL;
    dp_eval_sweep_row rows[MAX_SWEEP];
    int status = DP_EXIT_OK;
    if (dp_index_open(path, NULL, &ix)) {
        status = dp_cli_fail("eval", "cannot open %s", path);
        goto out;
    }
    if (labels_path && dp_eval_labels_load(labels_path, &labels)) {
        status = dp_cli_fail("eval", "cannot read labels");
        goto out;
    }
    ep->labels = labels;
    if (dp_eval_pca_sweep(ix, ep, dims, n, repeats, rows)) {
        status = dp_cli_fail("eval", "%s: PCA sweep", path);
        goto out;
    }
    const char *model = dp_index_model_name(ix);
    model = model && *model ? model : "?";
    size_t k = ep->k ? ep->k : 4;
    double ref = rows[0].search_seconds;
    if (as_json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++) {
            const dp_eval_sweep_row *r = &rows[i];
            json_t *o =
                json_pack("{s:I, s:b}", "dims", (json_int_t)(r->dims ? r->dims : dp_index_dim(ix)),
                          "pca", r->dims != 0);
            if (r->skipped) {
                json_object_set_new(o, "skipped", json_true());
            } else {
                json_object_set_new(o, "variance", json_real(r->variance));
                json_object_set_new(o, "precision_at_k", json_real(r->precision_at_k));
                json_object_set_new(o, "top1", json_real(r->top1));
                json_object_set_new(o, "map100", json_real(r->map100));
                if (r->has_instances)
                    json_object_set_new(o, "instance_recall1", json_real(r->instance_recall1));
                json_object_set_new(o, "search_seconds", json_real(r->search_seconds));
                json_object_set_new(o, "queries_timed",
                                    json_integer((json_int_t)r->n_queries_timed));
                json_object_set_new(o, "vector_bytes", json_integer((json_int_t)r->vector_bytes));
            }
            json_array_append_new(a, o);
        }
        json_t *root =
            json_pack("{s:s, s:s, s:s?, s:I, s:i, s:b, s:o}", "index", path, "model", model,
                      "labels", labels_path, "k", (json_int_t)k, "repeats", repeats, "renormalised",
                      !ep->sweep_raw && dp_index_normalized(ix), "sweep", a);
        if (ep->sample) {
            json_object_set_new(root, "sample", json_integer((json_int_t)ep->sample));
            json_object_set_new(root, "seed", json_integer((json_int_t)ep->seed));
        }
        json_dumpf(root, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(root);
    } else {
        printf("%s (%s): PCA sweep, one fit on all %zu vectors, projections %s%s; search = "
               "exact k=%zu of every vector as a query, best of %d\n",
               path, model, dp_index_count(ix),
               ep->sweep_raw || !dp_index_normalized(ix) ? "as they come" : "renormalised",
               ep->sample ? "; accuracy on the class-proportional sample" : "", k + 1, repeats);
        printf("%6s %9s %11s@%-2zu %7s %8s %9s %10s %8s %10s\n", "dims", "variance", "precision", k,
               "top-1", "mAP@100", "inst-R@1", "search s", "speedup", "vector MB");
        for (size_t i = 0; i < n; i++) {
            const dp_eval_sweep_row *r = &rows[i];
            char d[24];
            if (r->dims)
                snprintf(d, sizeof d, "%zu", r->dims);
            else
                snprintf(d, sizeof d, "%u*", dp_index_dim(ix));
            if (r->skipped) {
                printf("%6s skipped: more axes than the vectors' %u dimensions\n", d,
                       dp_index_dim(ix));
                continue;
            }
            printf("%6s %9.4f %14.4f %7.4f %8.4f", d, r->variance, r->precision_at_k, r->top1,
                   r->map100);
            if (r->has_instances)
                printf(" %9.4f", r->instance_recall1);
            else
                printf(" %9s", "-");
            printf(" %10.4f %7.2fx %10.2f\n", r->search_seconds,
                   r->search_seconds > 0 ? ref / r->search_seconds : 0, r->vector_bytes / 1e6);
        }
        printf("(* the vectors as stored, no PCA)\n");
    }
    if (plot && !status) {
        if (sweep_plot(plot, path, model, rows, n, k, dp_index_dim(ix)))
            status = DP_EXIT_ERROR;
        else if (!as_json)
            printf("plot: %s\n", plot);
    }
out:
    dp_eval_labels_free(labels);
    dp_index_free(ix);
    return status;
}

int dp_cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {{"queries", required_argument, 0, 'Q'},
                                         {"sample", required_argument, 0, 'N'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"labels", required_argument, 0, 'L'},
                                         {"metric", required_argument, 0, 'M'},
                                         {"sample-list", required_argument, 0, 'W'},
                                         {"threads", required_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"pca-sweep", required_argument, 0, 'P'},
                                         {"plot", required_argument, 0, 'G'},
                                         {"repeats", required_argument, 0, 'R'},
                                         {"pca-raw", no_argument, 0, 'r'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *sweep = NULL, *plot = NULL;
    int repeats = 3;
    dp_eval_params ep = dp_eval_default_params();
    ep.seed = 1;
    bool as_json = false;
    const char *labels_path = NULL, *metric_list = NULL, *list_path = NULL;
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            ep.k = (size_t)strtoul(optarg, &end, 10);
            if (*end || ep.k < 1 || ep.k > 1000)
                return dp_cli_usage("eval", "-k must be in 1..1000");
            break;
        case 'Q':
            ep.queries = (size_t)strtoull(optarg, &end, 10);
            if (*end || !ep.queries)
                return dp_cli_usage("eval", "--queries must be a positive number");
            break;
        case 'N':
            ep.sample = (size_t)strtoull(optarg, &end, 10);
            if (*end || ep.sample < 2) return dp_cli_usage("eval", "--sample must be 2 or more");
            break;
        case 'S':
            ep.seed = (uint64_t)strtoull(optarg, &end, 10);
            if (*end) return dp_cli_usage("eval", "--seed must be a number");
            break;
        case 'L':
            labels_path = optarg;
            break;
        case 'M':
            metric_list = optarg;
            break;
        case 'W':
            list_path = optarg;
            ep.list_database = true;
            break;
        case 't':
            ep.threads = atoi(optarg);
            break;
        case 'j':
            as_json = true;
            break;
        case 'P':
            sweep = optarg;
            break;
        case 'r':
            ep.sweep_raw = true;
            break;
        case 'G':
            plot = optarg;
            break;
        case 'R':
            repeats = atoi(optarg);
            if (repeats < 1 || repeats > 100) return dp_cli_usage("eval", "--repeats: 1..100");
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("eval", "bad option");
        }
    }
    if (optind != argc - 1) return dp_cli_usage("eval", "expects one INDEX");
    const char *path = argv[optind];
    if ((plot || ep.sweep_raw) && !sweep)
        return dp_cli_usage("eval", "--plot and --pca-raw go with --pca-sweep");
    if (sweep) {
        if (list_path)
            return dp_cli_usage("eval", "--sample-list and --pca-sweep exclude each other");
        return run_sweep(path, sweep, plot, metric_list, labels_path, &ep, repeats, as_json);
    }

    /* Metrics: check every name before any work. */
    char *mbuf = strdup(metric_list ? metric_list : "");
    char *names[MAX_METRICS];
    int nm = 0;
    for (char *save = NULL, *t = strtok_r(mbuf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (nm == MAX_METRICS) {
            free(mbuf);
            return dp_cli_usage("eval", "at most %d metrics", MAX_METRICS);
        }
        dp_eval_params tmp = ep;
        int rc = dp_eval_parse_metric(t, &tmp);
        if (rc && rc != DP_ERR_UNSUPPORTED) {
            int u = dp_cli_usage("eval", "%s", dp_last_error());
            free(mbuf);
            return u;
        }
        names[nm++] = t;
    }
    if (nm == 0) names[nm++] = NULL; /* the index's own metric */

    dp_index *ix = NULL;
    dp_eval_labels *labels = NULL;
    int status = DP_EXIT_OK;
    if (dp_index_open(path, NULL, &ix)) {
        status = dp_cli_fail("eval", "cannot open %s", path);
        goto out;
    }
    if (labels_path && dp_eval_labels_load(labels_path, &labels)) {
        status = dp_cli_fail("eval", "cannot read labels");
        goto out;
    }
    ep.labels = labels;
    const char *model = dp_index_model_name(ix);
    model = model && *model ? model : "?";
    json_t *jm = json_array();
    char footer[160] = "";
    if (nm > 1 && !as_json)
        printf("%s (%s): metrics table%s\n%-16s %10s@%-2zu %8s %8s %10s %10s %8s\n", path, model,
               ep.sample ? " on a class-proportional sample" : "", "metric", "precision",
               ep.k ? ep.k : 4, "top-1", "mAP@100", "inst-R@1", "inst-R@5", "seconds");
    for (int i = 0; i < nm; i++) {
        dp_eval_params mp = ep;
        if (names[i] && dp_eval_parse_metric(names[i], &mp)) { /* only weighted-l2 gets here */
            if (as_json)
                json_array_append_new(
                    jm, json_pack("{s:s, s:s}", "metric", names[i], "skipped", dp_last_error()));
            else
                printf("%-16s skipped: %s\n", names[i], dp_last_error());
            continue;
        }
        dp_eval_report r;
        int erc = dp_eval_index(ix, &mp, &r);
        if (erc == DP_ERR_NOT_FOUND && mp.weighted_l2 &&
            nm > 1) { /* the rest of the table stands */
            if (as_json)
                json_array_append_new(
                    jm, json_pack("{s:s, s:s}", "metric", names[i], "skipped", dp_last_error()));
            else
                printf("%-16s skipped: %s\n", names[i], dp_last_error());
            continue;
        }
        if (erc) {
            status = dp_cli_fail("eval", "%s", path);
            break;
        }
        if (list_path && i == 0) {
            FILE *lf = fopen(list_path, "w");
            for (size_t t = 0; lf && t < r.n_database; t++)
                fprintf(lf, "%s\n", r.database_paths[t]);
            if (!lf || fclose(lf) != 0) {
                fprintf(stderr, "doppel eval: %s: cannot write\n", list_path);
                status = DP_EXIT_ERROR;
                dp_eval_report_free(&r);
                break;
            }
        }
        if (as_json) {
            json_array_append_new(jm, report_json(&r));
        } else if (nm > 1) {
            printf("%-16s %12.4f %8.4f %8.4f", r.metric, r.precision_at_k, r.top1, r.map100);
            if (r.has_instances)
                printf(" %10.4f %10.4f", r.instance_recall1, r.instance_recall5);
            else
                printf(" %10s %10s", "-", "-");
            printf(" %8.2f\n", r.seconds);
            snprintf(footer, sizeof footer, "(%zu queries, database %zu, k = %zu%s)\n", r.n_queries,
                     r.n_database, r.k,
                     r.has_instances ? "; class metrics skip same-instance neighbours" : "");
        } else {
            print_report(path, model, &r, &mp);
        }
        dp_eval_report_free(&r);
    }
    if (!as_json && status == DP_EXIT_OK) fputs(footer, stdout);
    if (as_json && status == DP_EXIT_OK) {
        json_t *root =
            json_pack("{s:s, s:s, s:s?}", "index", path, "model", model, "labels", labels_path);
        if (ep.sample) {
            json_object_set_new(root, "sample", json_integer((json_int_t)ep.sample));
            json_object_set_new(root, "seed", json_integer((json_int_t)ep.seed));
        }
        if (nm == 1 && json_array_size(jm) == 1) {
            json_object_update(root, json_array_get(jm, 0));
        } else {
            json_object_set(root, "metrics", jm);
        }
        json_dumpf(root, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(root);
    }
    json_decref(jm);
out:
    dp_eval_labels_free(labels);
    dp_index_free(ix);
    free(mbuf);
    return status;
}
