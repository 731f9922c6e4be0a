/* doppel dedup INDEX: groups of near-duplicate images. */
#include "cli.h"

#include <doppel/dedup.h>
#include <getopt.h>
#include <glib.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: doppel dedup INDEX [--threshold T] [--against OTHER.dpl] [--json]\n\n"
               "Find groups of near-duplicate images (resized, recompressed, lightly edited\n"
               "copies): every image's neighbours within distance T are joined into groups.\n"
               "Memory grows with the number of images, never with its square.\n\n"
               "  --threshold T    largest squared-L2 distance that counts as a duplicate;\n"
               "                   default: phash 0.375 (6 of 64 bits differ); other models\n"
               "                   a quarter of the median nearest-neighbour distance\n"
               "  --against FILE   instead list, for each image of INDEX, the images of FILE\n"
               "                   within T (both built with the same model)\n"
               "  -k N             neighbours examined per image (default 16)\n"
               "  --threads N      search threads (default: all cores)\n"
               "  --json           machine-readable output\n"
               "  -q, --quiet      no progress bar\n"
               "  -h, --help       this help\n");
}

int dp_cmd_dedup(int argc, char **argv)
{
    static const struct option opts[] = {{"threshold", required_argument, 0, 'T'},
                                         {"against", required_argument, 0, 'A'},
                                         {"threads", required_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    dp_dedup_params dp = dp_dedup_default_params();
    const char *against = NULL;
    bool as_json = false, quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'T': {
            char *end;
            dp.threshold = strtof(optarg, &end);
            if (*end || !(dp.threshold > 0))
                return dp_cli_usage("dedup", "--threshold must be > 0");
            break;
        }
        case 'A':
            against = optarg;
            break;
        case 'k':
            dp.max_neighbors = (size_t)atol(optarg);
            if (dp.max_neighbors < 1 || dp.max_neighbors > 10000)
                return dp_cli_usage("dedup", "-k must be in 1..10000");
            break;
        case 't':
            dp.threads = atoi(optarg);
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
            return dp_cli_usage("dedup", "bad option");
        }
    }
    if (optind != argc - 1) return dp_cli_usage("dedup", "expects one INDEX");
    const char *path = argv[optind];
    dp_index *ix = NULL, *other = NULL;
    if (dp_index_open(path, NULL, &ix)) return dp_cli_fail("dedup", "cannot open %s", path);
    if (against && dp_index_open(against, NULL, &other)) {
        dp_index_free(ix);
        return dp_cli_fail("dedup", "cannot open %s", against);
    }
    dp_progress bar;
    dp_progress_begin(&bar, "dedup", dp_index_count(ix), quiet || as_json);
    dp.progress = dp_cli_progress_cb;
    dp.user_data = &bar;
    dp_dedup_result r;
    int rc = dp_dedup(ix, other, &dp, &r);
    dp_progress_end(&bar, dp_index_count(ix));
    if (rc) {
        dp_index_free(ix);
        dp_index_free(other);
        return dp_cli_fail("dedup", "%s", path);
    }
    json_t *root = as_json ? json_object() : NULL;
    dp_index_entry e, e2;
    if (!other) {
        json_t *groups = as_json ? json_array() : NULL;
        for (size_t g = 0; g < r.n_groups; g++) {
            json_t *members = as_json ? json_array() : NULL;
            if (!as_json) printf("group %zu (%zu images)\n", g + 1, r.lims[g + 1] - r.lims[g]);
            for (size_t i = r.lims[g]; i < r.lims[g + 1]; i++) {
                if (dp_index_get(ix, r.ids[i], &e)) continue;
                if (as_json)
                    json_array_append_new(members, json_pack("{s:I, s:o}", "id", (json_int_t)e.id,
                                                             "path", dp_cli_json_str(e.path)));
                else
                    printf("  %8llu  %s\n", (unsigned long long)e.id, e.path);
            }
            if (as_json) json_array_append_new(groups, members);
        }
        if (as_json)
            json_object_set_new(root, "groups", groups);
        else
            printf("%zu group(s) of near-duplicates among %zu images (threshold %g)\n", r.n_groups,
                   dp_index_count(ix), (double)r.threshold);
    } else {
        json_t *pairs = as_json ? json_array() : NULL;
        for (size_t i = 0; i < r.n_pairs; i++) {
            if (dp_index_get(ix, r.a[i], &e) || dp_index_get(other, r.b[i], &e2)) continue;
            if (as_json)
                json_array_append_new(
                    pairs, json_pack("{s:o, s:o, s:f}", "path", dp_cli_json_str(e.path), "match",
                                     dp_cli_json_str(e2.path), "distance", (double)r.dist[i]));
            else
                printf("%.6f  %s  ~  %s\n", (double)r.dist[i], e.path, e2.path);
        }
        if (as_json)
            json_object_set_new(root, "pairs", pairs);
        else
            printf("%zu match(es) within %g\n", r.n_pairs, (double)r.threshold);
    }
    if (as_json) {
        json_object_set_new(root, "threshold", json_real(r.threshold));
        json_dumpf(root, stdout, JSON_INDENT(1));
        fputc('\n', stdout);
        json_decref(root);
    }
    dp_dedup_result_free(&r);
    dp_index_free(ix);
    dp_index_free(other);
    return DP_EXIT_OK;
}
