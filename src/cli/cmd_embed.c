/* doppel embed: images in, L2-normalised embeddings out (.npy and/or JSON). */
#include "cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f,
            "usage: doppel embed [options] IMAGE...\n\n"
            "Compute the embedding of each image with a CNN (or a classic featuriser) and\n"
            "write them as rows of a float32 .npy file and/or JSON. Images that cannot be\n"
            "decoded are reported and skipped; the exit status is then 3.\n\n"
            "  -m, --model NAME|PATH    model name or .onnx file (default: %s)\n"
            "      --embedding-node N   take the embedding from node N instead\n"
            "      --models-dir DIR     where named models live\n"
            "  -o, --out FILE.npy       write an N x dim float32 array (rows in input order,\n"
            "                           skipped images left out) and FILE.txt with the paths\n"
            "      --json               print [{\"path\", \"embedding\"}...] on stdout\n"
            "  -t, --threads N          inference threads (default: all cores)\n"
            "  -b, --batch N            images per inference call (default: 16)\n"
            "  -q, --quiet              no progress bar\n"
            "  -h, --help               this help\n",
            DP_DEFAULT_MODEL);
}

typedef struct sink_state {
    int dim;
    float *rows;
    size_t n_ok;
    const char **ok_paths;
    size_t n_failed;
    json_t *json;
} sink_state;

static int sink(const dp_embed_result *r, void *user)
{
    sink_state *s = user;
    if (r->status) {
        fprintf(stderr, "doppel embed: skipped %s\n", r->error);
        s->n_failed++;
        if (s->json)
            json_array_append_new(s->json,
                                  json_pack("{s:s, s:s}", "path", r->path, "error", r->error));
        return 0;
    }
    memcpy(s->rows + s->n_ok * (size_t)s->dim, r->vec, (size_t)s->dim * sizeof(float));
    s->ok_paths[s->n_ok++] = r->path;
    if (s->json) {
        json_t *v = json_array();
        for (int i = 0; i < s->dim; i++)
            json_array_append_new(v, json_real(r->vec[i]));
        json_array_append_new(s->json,
                              json_pack("{s:s, s:i, s:i, s:o}", "path", r->path, "width",
                                        r->info.width, "height", r->info.height, "embedding", v));
    }
    return 0;
}

int dp_cmd_embed(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"embedding-node", required_argument, 0, 'N'},
                                         {"models-dir", required_argument, 0, 'D'},
                                         {"out", required_argument, 0, 'o'},
                                         {"json", no_argument, 0, 'j'},
                                         {"threads", required_argument, 0, 't'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    dp_embedder_params ep = dp_embedder_default_params();
    dp_pipeline_params pp = dp_pipeline_default_params();
    const char *out = NULL;
    bool as_json = false, quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:t:b:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            ep.model = optarg;
            break;
        case 'N':
            ep.embedding_node = optarg;
            break;
        case 'D':
            ep.models_dir = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 't':
            ep.threads = atoi(optarg);
            break;
        case 'b':
            pp.batch = atoi(optarg);
            if (pp.batch < 1 || pp.batch > 1024)
                return dp_cli_usage("embed", "--batch must be in 1..1024");
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("embed", "bad option");
        }
    }
    size_t n = (size_t)(argc - optind);
    if (n == 0) return dp_cli_usage("embed", "no images given");
    const char *const *paths = (const char *const *)argv + optind;

    dp_embedder *e = NULL;
    if (dp_embedder_open(&ep, &e)) return dp_cli_fail("embed", "cannot load the model");
    dp_embedder_info ei;
    dp_embedder_describe(e, &ei);

    sink_state s = {.dim = ei.dim};
    s.rows = malloc(n * (size_t)ei.dim * sizeof(float));
    s.ok_paths = calloc(n, sizeof *s.ok_paths);
    if (as_json) s.json = json_array();
    int rc = DP_EXIT_ERROR;
    if (!s.rows || !s.ok_paths) {
        fprintf(stderr, "doppel embed: out of memory for %zu embeddings\n", n);
        goto done;
    }
    dp_progress bar;
    dp_progress_begin(&bar, "embed", n, quiet || n < 2);
    pp.progress = dp_cli_progress_cb;
    pp.user_data = &bar;
    if (dp_embed_files(e, paths, n, &pp, sink, &s)) {
        dp_progress_end(&bar, 0);
        dp_cli_fail("embed", "inference failed");
        goto done;
    }
    dp_progress_end(&bar, n);

    if (out) {
        int64_t dims[2] = {(int64_t)s.n_ok, ei.dim};
        if (dp_npy_write_f32(out, s.rows, 2, dims)) {
            dp_cli_fail("embed", "cannot write %s", out);
            goto done;
        }
        size_t ol = strlen(out);
        char *txt = malloc(ol + 8);
        snprintf(txt, ol + 8, "%.*s.txt",
                 (int)(ol > 4 && !strcmp(out + ol - 4, ".npy") ? ol - 4 : ol), out);
        FILE *f = fopen(txt, "w");
        if (f) {
            for (size_t i = 0; i < s.n_ok; i++)
                fprintf(f, "%s\n", s.ok_paths[i]);
            fclose(f);
        }
        free(txt);
    }
    if (s.json) {
        json_t *root = json_pack("{s:s, s:s, s:i, s:o}", "model", ei.name, "fingerprint",
                                 ei.fingerprint, "dim", ei.dim, "images", s.json);
        s.json = NULL;
        json_dumpf(root, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(root);
    } else if (!out) {
        for (size_t i = 0; i < s.n_ok; i++) {
            const float *v = s.rows + i * (size_t)ei.dim;
            printf("%s\t%d-d [%.4f, %.4f, %.4f, %.4f, ...]\n", s.ok_paths[i], ei.dim, (double)v[0],
                   (double)v[1], (double)v[2], (double)v[3]);
        }
    }
    if (!quiet)
        fprintf(stderr, "doppel embed: %zu embedded with %s (%d-d), %zu skipped%s%s\n", s.n_ok,
                ei.name, ei.dim, s.n_failed, out ? "; written to " : "", out ? out : "");
    rc = s.n_failed ? DP_EXIT_PARTIAL : DP_EXIT_OK;
done:
    json_decref(s.json);
    free(s.rows);
    free(s.ok_paths);
    dp_embedder_free(e);
    return rc;
}
