/* doppel ann build|update|info|drop INDEX: the approximate-search structure
 * stored in an index file. `doppel search` uses it when present. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void help(FILE *f)
{
    fprintf(f,
            "usage: doppel ann build INDEX [--kind hnsw] [--M 16] [--ef-construction 200]\n"
            "                   [--storage f32|f16|int8] [--seed 42] [--threads N] [-q]\n"
            "       doppel ann build INDEX --kind ivfpq [--nlist N] [--m M] [--opq] [--seed 42]\n"
            "       doppel ann build INDEX --kind rpforest [--trees 40] [--leaf 128] [--seed 42]\n"
            "       doppel ann update INDEX [--threads N]   insert entries added since\n"
            "       doppel ann info INDEX [--verify]\n"
            "       doppel ann drop INDEX\n\n"
            "build replaces the index's ANN structure with a new one over every live\n"
            "entry and commits it. Same data, seed and parameters give the same bytes\n"
            "whatever the thread count. Entries added later are searched exactly until\n"
            "'update' inserts them; removed entries are never returned.\n\n"
            "  --kind K             hnsw (graph) or ivfpq (compressed codes; below %d\n"
            "                       entries it holds nothing and search stays exact) or\n"
            "                       rpforest (random-projection trees, the chapter's Annoy;\n"
            "                       an update rebuilds it)\n"
            "  --M N                links per node (level 0 keeps 2*M), 2..256\n"
            "  --ef-construction N  candidate list while linking\n"
            "  --storage S          HNSW: what the graph walk reads per node: f32 (default),\n"
            "                       f16 or int8 (2x / 4x smaller, results reranked exactly)\n"
            "  --nlist N            IVF-PQ cells (default about 4 sqrt(entries))\n"
            "  --m N                IVF-PQ bytes per vector; must divide the dimension\n"
            "                       (default: the divisor nearest dimension/4)\n"
            "  --opq                IVF-PQ: learn a rotation first (OPQ: each byte gets an\n"
            "                       equal share of the variance); any --m up to the dimension\n"
            "  --trees N            rpforest trees, 1..4096 (default 40)\n"
            "  --leaf N             rpforest most items per leaf, 1..65536 (default 128)\n"
            "  --seed N             HNSW levels and order; IVF-PQ training sample; rpforest\n"
            "                       splits\n"
            "  --threads N          build threads (default: all cores)\n"
            "  --verify             (info) check every section's checksum\n"
            "  -q, --quiet          no progress bar or summary\n"
            "  -h, --help           this help\n",
            DP_IVFPQ_MIN_ROWS);
}

static int progress_cb(uint64_t done, uint64_t total, void *ud)
{
    dp_progress *p = ud;
    p->total = total;
    dp_progress_update(p, done);
    return 0;
}

static int show_info(const char *path, bool verify)
{
    dp_index *ix = NULL;
    dp_ann *a = NULL;
    if (dp_index_open(path, NULL, &ix)) return dp_cli_fail("ann", "cannot open %s", path);
    dp_ann_open_params op = dp_ann_default_open_params();
    op.verify = verify;
    if (dp_ann_open(ix, &op, &a)) {
        int rc = dp_cli_fail("ann", "%s", path);
        dp_index_free(ix);
        return rc;
    }
    dp_ann_info in;
    dp_ann_describe(a, &in);
    printf("%s: %s, %zu nodes (%zu removed), %zu entries not yet inserted\n", path,
           dp_ann_kind_name(in.kind), in.nodes, in.dead, in.unindexed);
    if (in.kind == DP_ANN_RPFOREST)
        printf("  trees=%u leaf=%u seed=%llu, %.1f MB (+ the index's vectors)\n", in.n_trees,
               in.leaf_size, (unsigned long long)in.seed, (double)in.bytes / 1e6);
    else if (in.kind == DP_ANN_IVFPQ && !in.nlist)
        printf("  untrained: fewer than %d entries, searched exactly; %.1f MB\n", DP_IVFPQ_MIN_ROWS,
               (double)in.bytes / 1e6);
    else if (in.kind == DP_ANN_IVFPQ)
        printf("  nlist=%u m=%u%s seed=%llu, %.1f MB (%.1f bytes per entry)\n", in.nlist, in.pq_m,
               in.opq ? " opq" : "", (unsigned long long)in.seed, (double)in.bytes / 1e6,
               in.nodes ? (double)in.bytes / (double)in.nodes : 0.0);
    else
        printf("  M=%u ef_construction=%u storage=%s seed=%llu top level %d, %.1f MB\n", in.M,
               in.ef_construction, dp_ann_storage_name(in.storage), (unsigned long long)in.seed,
               in.max_level, (double)in.bytes / 1e6);
    dp_ann_free(a);
    dp_index_free(ix);
    return DP_EXIT_OK;
}

int dp_cmd_ann(int argc, char **argv)
{
    static const struct option opts[] = {{"kind", required_argument, 0, 'K'},
                                         {"M", required_argument, 0, 'm'},
                                         {"ef-construction", required_argument, 0, 'c'},
                                         {"seed", required_argument, 0, 's'},
                                         {"nlist", required_argument, 0, 'N'},
                                         {"m", required_argument, 0, 'P'},
                                         {"threads", required_argument, 0, 't'},
                                         {"storage", required_argument, 0, 'S'},
                                         {"verify", no_argument, 0, 'v'},
                                         {"trees", required_argument, 0, 1200},
                                         {"leaf", required_argument, 0, 1201},
                                         {"opq", no_argument, 0, 'O'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    dp_ann_build_params bp = dp_ann_default_build_params();
    bool quiet = false, verify = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'K':
            if (dp_ann_kind_parse(optarg, &bp.kind))
                return dp_cli_usage("ann", "%s", dp_last_error());
            break;
        case 'm': {
            long v = strtol(optarg, NULL, 10);
            if (v < 2 || v > 256) return dp_cli_usage("ann", "--M must be in 2..256");
            bp.M = (uint32_t)v;
            break;
        }
        case 'c': {
            long v = strtol(optarg, NULL, 10);
            if (v < 1 || v > 100000)
                return dp_cli_usage("ann", "--ef-construction must be in 1..100000");
            bp.ef_construction = (uint32_t)v;
            break;
        }
        case 's':
            bp.seed = strtoull(optarg, NULL, 10);
            break;
        case 'N': {
            long v = strtol(optarg, NULL, 10);
            if (v < 1 || v > (1l << 20))
                return dp_cli_usage("ann", "--nlist must be in 1..1048576");
            bp.nlist = (uint32_t)v;
            break;
        }
        case 'P': {
            long v = strtol(optarg, NULL, 10);
            if (v < 1 || v > 65536) return dp_cli_usage("ann", "--m must be in 1..65536");
            bp.pq_m = (uint32_t)v;
            break;
        }
        case 't':
            bp.threads = atoi(optarg);
            if (bp.threads < 1) return dp_cli_usage("ann", "--threads must be >= 1");
            break;
        case 'S':
            if (dp_ann_storage_parse(optarg, &bp.storage))
                return dp_cli_usage("ann", "--storage: %s", dp_last_error());
            break;
        case 'v':
            verify = true;
            break;
        case 1200:
        case 1201: {
            long v = strtol(optarg, NULL, 10);
            if (v < 1 || v > (c == 1200 ? 4096 : 65536))
                return dp_cli_usage("ann", "--%s must be in 1..%d", c == 1200 ? "trees" : "leaf",
                                    c == 1200 ? 4096 : 65536);
            *(c == 1200 ? &bp.n_trees : &bp.leaf_size) = (uint32_t)v;
            break;
        }
        case 'O':
            bp.opq = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("ann", "bad option");
        }
    }
    if (argc - optind != 2) return dp_cli_usage("ann", "expects an action and an INDEX");
    const char *act = argv[optind], *path = argv[optind + 1];
    if (!strcmp(act, "info")) return show_info(path, verify);
    if (strcmp(act, "build") && strcmp(act, "update") && strcmp(act, "drop"))
        return dp_cli_usage("ann", "unknown action '%s' (build, update, info, drop)", act);

    dp_index_open_params op = dp_index_default_open_params();
    op.writable = true;
    dp_index *ix = NULL;
    dp_ann *a = NULL;
    int rc = DP_EXIT_ERROR;
    if (dp_index_open(path, &op, &ix)) return dp_cli_fail("ann", "cannot open %s", path);
    dp_progress pr;
    dp_progress_begin(&pr, act, dp_index_count(ix), quiet);
    bp.progress = progress_cb;
    bp.user_data = &pr;
    double t0 = wall_now();
    if (!strcmp(act, "drop")) {
        if (dp_ann_drop(ix) || dp_index_commit(ix)) {
            dp_cli_fail("ann", "drop %s", path);
            goto done;
        }
        rc = DP_EXIT_OK;
        goto done;
    }
    if (!strcmp(act, "build")) {
        if (dp_ann_build(ix, &bp, &a)) {
            dp_cli_fail("ann", "build %s", path);
            goto done;
        }
    } else {
        if (dp_ann_open(ix, NULL, &a) || dp_ann_update(a, ix, &bp)) {
            dp_cli_fail("ann", "update %s", path);
            goto done;
        }
    }
    dp_progress_end(&pr, dp_index_count(ix));
    if (dp_ann_save(a, ix) || dp_index_commit(ix)) {
        dp_cli_fail("ann", "saving into %s", path);
        goto done;
    }
    if (!quiet) {
        dp_ann_info in;
        dp_ann_describe(a, &in);
        if (in.kind == DP_ANN_RPFOREST)
            printf("%s: rpforest over %zu entries in %.1f s (trees=%u leaf=%u), %.1f MB\n", path,
                   in.nodes - in.dead, wall_now() - t0, in.n_trees, in.leaf_size,
                   (double)in.bytes / 1e6);
        else if (in.kind == DP_ANN_IVFPQ && !in.nlist)
            printf("%s: ivfpq: %zu entries are fewer than %d, too few to train on: searches "
                   "stay exact until 'doppel ann update' finds enough\n",
                   path, in.unindexed, DP_IVFPQ_MIN_ROWS);
        else if (in.kind == DP_ANN_IVFPQ)
            printf("%s: ivfpq over %zu entries in %.1f s (nlist=%u m=%u%s), %.1f MB\n", path,
                   in.nodes - in.dead, wall_now() - t0, in.nlist, in.pq_m, in.opq ? " opq" : "",
                   (double)in.bytes / 1e6);
        else
            printf("%s: %s over %zu entries in %.1f s (M=%u ef_construction=%u), %.1f MB\n", path,
                   dp_ann_kind_name(in.kind), in.nodes - in.dead, wall_now() - t0, in.M,
                   in.ef_construction, (double)in.bytes / 1e6);
    }
    rc = DP_EXIT_OK;
done:
    dp_ann_free(a);
    dp_index_free(ix);
    return rc;
}
