/* doppel eval INDEX: accuracy of the embeddings against the stored labels. */
#include "cli.h"

#include <doppel/eval.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: doppel eval INDEX [-k K] [--queries N --seed S] [--json]\n\n"
               "Use every labelled image (label = parent folder) as a query against the rest\n"
               "and report precision@k (the share of the k nearest with the query's label),\n"
               "top-1 accuracy, mAP@100, the worst labels and the most confused label pairs.\n\n"
               "  -k K           neighbours for precision@k (default 4, as in the chapter)\n"
               "  --queries N    evaluate a random sample of N queries (default: all)\n"
               "  --seed S       seed for the sample (default 1)\n"
               "  --threads N    search threads (default: all cores)\n"
               "  --json         machine-readable output\n"
               "  -h, --help     this help\n");
}

int dp_cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {{"queries", required_argument, 0, 'Q'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"threads", required_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    dp_eval_params ep = dp_eval_default_params();
    ep.seed = 1;
    bool as_json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            ep.k = (size_t)atol(optarg);
            if (ep.k < 1 || ep.k > 1000) return dp_cli_usage("eval", "-k must be in 1..1000");
            break;
        case 'Q': ep.queries = (size_t)atol(optarg); break;
        case 'S': ep.seed = (uint64_t)strtoull(optarg, NULL, 10); break;
        case 't': ep.threads = atoi(optarg); break;
        case 'j': as_json = true; break;
        case 'h': help(stdout); return DP_EXIT_OK;
        default: return dp_cli_usage("eval", "bad option");
        }
    }
    if (optind != argc - 1) return dp_cli_usage("eval", "expects one INDEX");
    const char *path = argv[optind];
    dp_index *ix = NULL;
    if (dp_index_open(path, NULL, &ix)) return dp_cli_fail("eval", "cannot open %s", path);
    dp_eval_report r;
    if (dp_eval_index(ix, &ep, &r)) {
        dp_index_free(ix);
        return dp_cli_fail("eval", "%s", path);
    }
    const char *model = dp_index_model_name(ix);
    if (as_json) {
        json_t *labels = json_array(), *conf = json_array();
        for (size_t i = 0; i < r.n_labels; i++)
            json_array_append_new(labels, json_pack("{s:s, s:I, s:f, s:f}", "label",
                                                    r.labels[i].label, "n",
                                                    (json_int_t)r.labels[i].n, "precision",
                                                    r.labels[i].precision, "top1",
                                                    r.labels[i].top1));
        for (size_t i = 0; i < r.n_confusions; i++)
            json_array_append_new(conf, json_pack("{s:s, s:s, s:I}", "from", r.confusions[i].from,
                                                  "to", r.confusions[i].to, "count",
                                                  (json_int_t)r.confusions[i].count));
        json_t *root = json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:o, s:o, s:f}", "index",
                                 path, "model", model ? model : "", "queries",
                                 (json_int_t)r.n_queries, "k", (json_int_t)r.k, "precision_at_k",
                                 r.precision_at_k, "top1", r.top1, "map100", r.map100, "labels",
                                 labels, "confusions", conf, "seconds", r.seconds);
        json_dumpf(root, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(root);
    } else {
        printf("%s (%s): %zu queries over %zu labels\n", path, model ? model : "?", r.n_queries,
               r.n_labels);
        printf("  precision@%zu  %.4f\n  top-1        %.4f\n  mAP@100      %.4f\n", r.k,
               r.precision_at_k, r.top1, r.map100);
        size_t worst = r.n_labels < 6 ? r.n_labels : 6;
        printf("worst labels (precision@%zu, top-1, queries):\n", r.k);
        for (size_t i = 0; i < worst; i++)
            printf("  %-28s %.3f  %.3f  %zu\n", r.labels[i].label, r.labels[i].precision,
                   r.labels[i].top1, r.labels[i].n);
        if (r.n_confusions) printf("most confused (query label -> nearest neighbour's label):\n");
        for (size_t i = 0; i < r.n_confusions && i < 6; i++)
            printf("  %-28s -> %-28s %zu\n", r.confusions[i].from, r.confusions[i].to,
                   r.confusions[i].count);
    }
    dp_eval_report_free(&r);
    dp_index_free(ix);
    return DP_EXIT_OK;
}
