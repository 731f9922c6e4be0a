/* doppel index DIR: bring an index file in step with a folder of images. */
#include "cli.h"

#include <doppel/ann.h>
#include <doppel/ingest.h>
#include <getopt.h>
#include <glib.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f,
            "usage: doppel index DIR [-o INDEX.dpl] [options]\n"
            "       doppel index --vectors FILE [--names FILE] -o INDEX.dpl\n\n"
            "Embed every image under DIR (recursively) and store the vectors with their\n"
            "paths, labels (parent folder names), sizes and content hashes in INDEX.\n"
            "Run it again to pick up changes: new files are added, changed ones re-embedded,\n"
            "deleted ones removed; an unchanged folder costs no inference. Work is committed\n"
            "in batches, so an interrupted run loses at most the last batch and the next\n"
            "run resumes. Files that cannot be read are skipped and listed; the exit\n"
            "status is then 3.\n\n"
            "  -o, --out FILE          index file (default: doppel.dpl)\n"
            "  -m, --model NAME|PATH   model (default: %s; also hist, phash, thumb8)\n"
            "      --embedding-node N  take the embedding from node N\n"
            "      --models-dir DIR    where named models live\n"
            "  -t, --threads N         threads for decoding and inference (default: all cores)\n"
            "  -b, --batch N           images per inference call (default: 16)\n"
            "      --commit-every N    images between commits (default: 256)\n"
            "      --ann KIND          also build an approximate-search structure (hnsw);\n"
            "                          once built, later runs keep it up to date\n"
            "      --failed-list FILE  write the skipped files, one \"path<TAB>reason\" a line\n"
            "  -q, --quiet             no progress bar or summary\n"
            "      --json              print the summary as JSON\n"
            "  -h, --help              this help\n",
            DP_DEFAULT_MODEL);
}

/* File names need not be UTF-8; JSON must be. */
int dp_cli_index_dir(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"model", required_argument, 0, 'm'},
                                         {"embedding-node", required_argument, 0, 'N'},
                                         {"models-dir", required_argument, 0, 'D'},
                                         {"threads", required_argument, 0, 't'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"commit-every", required_argument, 0, 'C'},
                                         {"failed-list", required_argument, 0, 'F'},
                                         {"ann", required_argument, 0, 'A'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    dp_embedder_params ep = dp_embedder_default_params();
    dp_ingest_params ip = dp_ingest_default_params();
    const char *out = "doppel.dpl", *failed_list = NULL;
    bool quiet = false, as_json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:m:t:b:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'm':
            ep.model = optarg;
            break;
        case 'N':
            ep.embedding_node = optarg;
            break;
        case 'D':
            ep.models_dir = optarg;
            break;
        case 't':
            ep.threads = atoi(optarg);
            ip.decode_threads = ep.threads;
            if (ep.threads < 1) return dp_cli_usage("index", "--threads must be >= 1");
            break;
        case 'b':
            ip.batch = atoi(optarg);
            if (ip.batch < 1 || ip.batch > 1024)
                return dp_cli_usage("index", "--batch must be in 1..1024");
            break;
        case 'C':
            ip.commit_every = (size_t)atol(optarg);
            if (ip.commit_every < 1) return dp_cli_usage("index", "--commit-every must be >= 1");
            break;
        case 'F':
            failed_list = optarg;
            break;
        case 'A':
            if (dp_ann_kind_parse(optarg, &ip.ann_kind))
                return dp_cli_usage("index", "%s", dp_last_error());
            break;
        case 'q':
            quiet = true;
            break;
        case 'j':
            as_json = true;
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("index", "bad option");
        }
    }
    if (optind != argc - 1) return dp_cli_usage("index", "expects one folder (DIR)");
    const char *dir = argv[optind];

    dp_embedder *e = NULL;
    if (dp_embedder_open(&ep, &e)) return dp_cli_fail("index", "cannot load the model");

    dp_progress bar;
    dp_progress_begin(&bar, "index", 0, quiet || as_json);
    ip.progress = dp_cli_progress_cb;
    ip.user_data = &bar;
    dp_ingest_report rep;
    int rc = dp_ingest_dir(e, dir, out, &ip, &rep);
    if (bar.total) dp_progress_end(&bar, bar.total);
    if (rc) {
        dp_cli_fail("index", "%s", out);
        if (rc == DP_ERR_CANCELLED || rep.added + rep.updated == 0) goto finish;
    }

    if (failed_list) {
        FILE *f = fopen(failed_list, "w");
        if (!f) {
            fprintf(stderr, "doppel index: cannot write %s\n", failed_list);
        } else {
            for (size_t i = 0; i < rep.failed; i++)
                fprintf(f, "%s\t%s\n", rep.failures[i].path, rep.failures[i].reason);
            fclose(f);
        }
    }
    dp_embedder_info ei;
    dp_embedder_describe(e, &ei);
    double rate = rep.embed_seconds > 0 ? (double)(rep.added + rep.updated) / rep.embed_seconds : 0;
    if (as_json) {
        json_t *fails = json_array();
        for (size_t i = 0; i < rep.failed; i++)
            json_array_append_new(fails, json_pack("{s:o, s:s}", "path",
                                                   dp_cli_json_str(rep.failures[i].path), "reason",
                                                   rep.failures[i].reason));
        json_t *root = json_pack(
            "{s:s, s:o, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:f, s:f, s:o}", "index", out,
            "folder", dp_cli_json_str(dir), "model", ei.name, "dim", ei.dim, "found",
            (json_int_t)rep.found, "added", (json_int_t)rep.added, "updated",
            (json_int_t)rep.updated, "removed", (json_int_t)rep.removed, "unchanged",
            (json_int_t)rep.unchanged, "failed", (json_int_t)rep.failed, "rebuilt", rep.rebuilt,
            "seconds", rep.seconds, "images_per_second", rate, "failures", fails);
        json_dumpf(root, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(root);
    } else if (!quiet) {
        for (size_t i = 0; i < rep.failed; i++)
            fprintf(stderr, "  skipped %s: %s\n", rep.failures[i].path, rep.failures[i].reason);
        if (rep.rebuilt)
            fprintf(stderr, "the model changed since the index was built: re-embedded all\n");
        printf("%s: %zu images found; %zu added, %zu updated, %zu removed, %zu unchanged, "
               "%zu skipped; %s %d-d; %.1f s (%.1f images/s)\n",
               out, rep.found, rep.added, rep.updated, rep.removed, rep.unchanged, rep.failed,
               ei.name, ei.dim, rep.seconds, rate);
    }
finish:;
    size_t failed = rep.failed;
    dp_ingest_report_free(&rep);
    dp_embedder_free(e);
    if (rc) return DP_EXIT_ERROR;
    return failed ? DP_EXIT_PARTIAL : DP_EXIT_OK;
}
