/* doppel search INDEX QUERY...: nearest stored images. Queries are
 * gathered into one matrix and answered as one batch (the library picks the
 * GEMM path for many). A query is a row of a vector file (--vectors), a
 * stored entry (@ID or its stored path; it is left out of its own results),
 * or an image file, embedded with the index's model (embed_images below). */
#include "cli.h"

#include <getopt.h>
#include <glib.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: doppel search INDEX [QUERY...] [--vectors FILE] [options]\n\n"
               "Find the k nearest stored entries of each query. A QUERY is @ID or a stored\n"
               "path (the entry's own vector; the entry itself is left out of the results),\n"
               "or an image file. --vectors adds every row of a .npy/.fvecs file as a query.\n\n"
               "  -k N                neighbours per query (default 5)\n"
               "  --vectors FILE      query vectors (float32/float64 .npy or .fvecs)\n"
               "  --metric M          l2 (squared Euclidean), ip (negated inner product),\n"
               "                      cosine (1 - cos), l1; default: the index's own\n"
               "  --max-distance T    leave out results farther than T\n"
               "  --threads N         search threads (default: all cores)\n"
               "  --ef N              candidate list of the index's HNSW structure, when it\n"
               "                      has one (default 64; more = better recall, slower)\n"
               "  --nprobe N          cells an IVF-PQ structure visits per query (default 16)\n"
               "  --rerank R          IVF-PQ: rank its best R again with the stored vectors\n"
               "                      (exact distances; default 0: code distances)\n"
               "  --search-k N        leaf entries an rpforest gathers per query before the\n"
               "                      exact ranking (default trees * k; more = better recall)\n"
               "  --exact             ignore the ANN structure: exact search\n"
               "  --json              print the results as JSON\n"
               "  --grid FILE.png     draw each query and its neighbours as a labelled grid\n"
               "  -h, --help          this help\n");
}

typedef struct query {
    char *name;        /* as shown: "@12", "a/b.jpg", "q.npy[3]" */
    uint64_t exclude;  /* UINT64_MAX: none */
    const char *image; /* set for image-file queries until embedded */
} query;

/* Embed image-file queries with the index's model into rows of out. */
static int embed_images(const dp_index *ix, query *qs, size_t nq, float *out)
{
    const char **paths = calloc(nq, sizeof *paths);
    if (!paths) return -1;
    for (size_t i = 0; i < nq; i++)
        paths[i] = qs[i].image;
    int rc = dp_cli_embed_queries(ix, paths, nq, out);
    free(paths);
    return rc;
}

/* --search-k (rpforest), 0 = the structure's default */
static size_t rpf_search_k;

/* The index's ANN structure answers when it has one and the query asks
 * nothing it cannot do (another metric); otherwise the exact search. */
static int ann_or_exact(const dp_index *ix, const float *Q, size_t nq, const dp_search_params *sp,
                        size_t ef, size_t nprobe, size_t rerank, bool exact, int64_t *ids,
                        float *dist)
{
    dp_ann *ann = NULL;
    int rc = DP_ERR_NOT_FOUND;
    if (!exact && (!sp->metric || sp->metric == dp_index_metric(ix)))
        rc = dp_ann_open(ix, NULL, &ann);
    if (rc == DP_ERR_NOT_FOUND) return dp_index_search(ix, Q, nq, sp, ids, dist);
    if (rc) return rc;
    dp_ann_search_params ap = dp_ann_default_search_params();
    ap.k = sp->k;
    if (ef) ap.ef = ef;
    if (nprobe) ap.nprobe = nprobe;
    ap.rerank = rerank;
    ap.search_k = rpf_search_k;
    ap.exclude_ids = sp->exclude_ids;
    ap.threads = sp->threads;
    rc = dp_ann_search(ann, Q, nq, &ap, ids, dist);
    dp_ann_free(ann);
    for (size_t i = 0; !rc && i < nq * sp->k; i++)
        if (dist[i] > sp->max_distance) { /* rows are sorted: the rest is farther */
            ids[i] = -1;
            dist[i] = INFINITY;
        }
    return rc;
}

/* Query vectors of the model's dimension for an index reduced by doppel pca:
 * normalised like the model's output, then projected with the index's PCA. */
static int pca_queries(const dp_index *ix, float **fv, size_t n, size_t fdim)
{
    dp_pca *pca = NULL;
    int rc = dp_index_pca(ix, &pca);
    float *pv = rc ? NULL : malloc((n ? n : 1) * dp_index_dim(ix) * sizeof *pv);
    if (!rc && !pv) rc = DP_ERR_NOMEM;
    for (size_t i = 0; !rc && dp_index_normalized(ix) && i < n; i++) {
        float *v = *fv + i * fdim;
        double s = 0;
        for (size_t j = 0; j < fdim; j++)
            s += (double)v[j] * v[j];
        for (size_t j = 0; s > 0 && j < fdim; j++)
            v[j] = (float)(v[j] / sqrt(s));
    }
    if (!rc) rc = dp_index_map_vectors(ix, pca, *fv, n, fdim, pv);
    dp_pca_free(pca);
    if (rc) {
        free(pv);
        return rc;
    }
    free(*fv);
    *fv = pv;
    return 0;
}

int dp_cmd_search(int argc, char **argv)
{
    static const struct option opts[] = {{"vectors", required_argument, 0, 'V'},
                                         {"metric", required_argument, 0, 'M'},
                                         {"max-distance", required_argument, 0, 'D'},
                                         {"threads", required_argument, 0, 't'},
                                         {"ef", required_argument, 0, 'E'},
                                         {"nprobe", required_argument, 0, 'N'},
                                         {"rerank", required_argument, 0, 'R'},
                                         {"search-k", required_argument, 0, 1300},
                                         {"exact", no_argument, 0, 'X'},
                                         {"json", no_argument, 0, 'j'},
                                         {"grid", required_argument, 0, 'G'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *vec_file = NULL, *grid = NULL;
    dp_search_params sp = dp_search_default_params();
    sp.k = 5;
    bool as_json = false, exact = false;
    size_t ef = 0, nprobe = 0, rerank = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': {
            char *end;
            long long k = strtoll(optarg, &end, 10);
            if (*end || k < 1 || k > 1000000)
                return dp_cli_usage("search", "-k must be in 1..1000000");
            sp.k = (size_t)k;
            break;
        }
        case 'V':
            vec_file = optarg;
            break;
        case 'M':
            if (dp_metric_parse(optarg, &sp.metric))
                return dp_cli_usage("search", "%s", dp_last_error());
            break;
        case 'D': {
            char *end;
            sp.max_distance = strtof(optarg, &end);
            if (*end || isnan(sp.max_distance)) return dp_cli_usage("search", "bad --max-distance");
            break;
        }
        case 't':
            sp.threads = atoi(optarg);
            if (sp.threads < 1) return dp_cli_usage("search", "--threads must be >= 1");
            break;
        case 'j':
            as_json = true;
            break;
        case 'E': {
            char *end;
            long long v = strtoll(optarg, &end, 10);
            if (*end || v < 1 || v > 1000000) return dp_cli_usage("search", "--ef: 1..1000000");
            ef = (size_t)v;
            break;
        }
        case 'N':
        case 'R': {
            char *end;
            long long v = strtoll(optarg, &end, 10);
            if (*end || v < (c == 'N') || v > 1000000)
                return dp_cli_usage("search", "--%s: %d..1000000", c == 'N' ? "nprobe" : "rerank",
                                    c == 'N');
            *(c == 'N' ? &nprobe : &rerank) = (size_t)v;
            break;
        }
        case 1300: {
            char *end;
            long long v = strtoll(optarg, &end, 10);
            if (*end || v < 1 || v > 1000000000)
                return dp_cli_usage("search", "--search-k: 1..1000000000");
            rpf_search_k = (size_t)v;
            break;
        }
        case 'X':
            exact = true;
            break;
        case 'G':
            grid = optarg;
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("search", "bad option");
        }
    }
    if (optind >= argc) return dp_cli_usage("search", "expects an INDEX");
    const char *path = argv[optind++];
    int nargs = argc - optind;
    if (nargs == 0 && !vec_file)
        return dp_cli_usage("search", "no queries (QUERY... or --vectors)");

    dp_index *ix = NULL;
    float *fv = NULL, *Q = NULL;
    query *qs = NULL;
    int64_t *ids = NULL;
    float *dist = NULL;
    uint64_t *excl = NULL;
    size_t nfv = 0, fdim = 0, nq = 0;
    int rc = DP_EXIT_ERROR;
    if (dp_index_open(path, NULL, &ix)) return dp_cli_fail("search", "cannot open %s", path);
    const size_t dim = dp_index_dim(ix);
    if (vec_file) {
        if (dp_vectors_load(vec_file, 0, &fv, &nfv, &fdim)) {
            dp_cli_fail("search", "cannot load queries");
            goto done;
        }
        int prc = fdim != dim ? pca_queries(ix, &fv, nfv, fdim) : 0;
        if (prc) {
            fprintf(stderr, "doppel search: %s has dimension %zu, the index %zu%s%s\n", vec_file,
                    fdim, dim, prc == DP_ERR_NOT_FOUND ? "" : ": ",
                    prc == DP_ERR_NOT_FOUND ? "" : dp_last_error());
            goto done;
        }
        if (dp_index_normalized(ix)) /* the index holds unit vectors: make queries match */
            for (size_t i = 0; i < nfv; i++) {
                double s = 0;
                for (size_t j = 0; j < dim; j++)
                    s += (double)fv[i * dim + j] * fv[i * dim + j];
                if (s > 0)
                    for (size_t j = 0; j < dim; j++)
                        fv[i * dim + j] = (float)(fv[i * dim + j] / sqrt(s));
            }
    }
    nq = (size_t)nargs + nfv;
    qs = calloc(nq, sizeof *qs);
    Q = malloc(nq * dim * sizeof(float));
    excl = malloc(nq * sizeof *excl);
    ids = malloc(nq * sp.k * sizeof *ids);
    dist = malloc(nq * sp.k * sizeof *dist);
    if (!qs || !Q || !excl || !ids || !dist) {
        fprintf(stderr, "doppel search: out of memory for %zu queries\n", nq);
        goto done;
    }
    bool any_image = false;
    for (int a = 0; a < nargs; a++) {
        const char *arg = argv[optind + a];
        query *q = &qs[a];
        q->name = g_strdup(arg);
        q->exclude = UINT64_MAX;
        dp_index_entry e;
        int found = -1;
        if (arg[0] == '@') {
            char *end;
            unsigned long long id = strtoull(arg + 1, &end, 10);
            if (!arg[1] || *end) {
                dp_cli_usage("search", "'%s' is not @ID", arg);
                rc = DP_EXIT_USAGE;
                goto done;
            }
            found = dp_index_get(ix, id, &e);
            if (found) {
                dp_cli_fail("search", "query %s", arg);
                goto done;
            }
        } else {
            found = dp_index_find_path(ix, arg, &e);
        }
        if (found == 0) {
            memcpy(Q + (size_t)a * dim, e.vector, dim * sizeof(float));
            q->exclude = e.id;
        } else {
            q->image = arg;
            any_image = true;
        }
    }
    for (size_t i = 0; i < nfv; i++) {
        query *q = &qs[(size_t)nargs + i];
        q->name = g_strdup_printf("%s[%zu]", vec_file, i);
        q->exclude = UINT64_MAX;
        memcpy(Q + ((size_t)nargs + i) * dim, fv + i * dim, dim * sizeof(float));
    }
    if (any_image && embed_images(ix, qs, (size_t)nargs, Q)) goto done;
    for (size_t i = 0; i < nq; i++)
        excl[i] = qs[i].exclude;
    sp.exclude_ids = excl;
    if (ann_or_exact(ix, Q, nq, &sp, ef, nprobe, rerank, exact, ids, dist)) {
        dp_cli_fail("search", "%s", path);
        goto done;
    }

    json_t *root = as_json ? json_object() : NULL, *jq = as_json ? json_array() : NULL;
    int metric = sp.metric ? sp.metric : dp_index_metric(ix);
    for (size_t i = 0; i < nq; i++) {
        json_t *res = as_json ? json_array() : NULL;
        if (!as_json) printf("%s%s\n", i ? "\n" : "", qs[i].name);
        for (size_t r = 0; r < sp.k; r++) {
            int64_t id = ids[i * sp.k + r];
            if (id < 0) break;
            dp_index_entry e;
            if (dp_index_get(ix, (uint64_t)id, &e)) {
                dp_cli_fail("search", "result %lld", (long long)id);
                json_decref(res);
                json_decref(jq);
                json_decref(root);
                goto done;
            }
            float d = dist[i * sp.k + r];
            if (as_json) {
                json_t *o = json_object();
                json_object_set_new(o, "rank", json_integer((json_int_t)r + 1));
                json_object_set_new(o, "id", json_integer(id));
                json_object_set_new(o, "distance", json_real(d));
                json_object_set_new(o, "path", dp_cli_json_str(e.path));
                json_object_set_new(o, "label", dp_cli_json_str(e.label));
                json_array_append_new(res, o);
            } else {
                printf("%4zu  %10.6f  %8lld  %s%s%s\n", r + 1, d, (long long)id,
                       *e.path ? e.path : "-", *e.label ? "  " : "", e.label);
            }
        }
        if (as_json) {
            json_t *o = json_object();
            json_object_set_new(o, "query", dp_cli_json_str(qs[i].name));
            json_object_set_new(o, "results", res);
            json_array_append_new(jq, o);
        }
    }
    if (as_json) {
        json_object_set_new(root, "index", dp_cli_json_str(path));
        json_object_set_new(root, "metric", json_string(dp_metric_name(metric)));
        json_object_set_new(root, "k", json_integer((json_int_t)sp.k));
        json_object_set_new(root, "queries", jq);
        char *s = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(9));
        puts(s);
        free(s);
        json_decref(root);
    }
    rc = DP_EXIT_OK;
    if (grid) {
        /* Stored queries are drawn from the indexed folder, image queries as given. */
        const char **names = calloc(nq, sizeof *names), **imgs = calloc(nq, sizeof *imgs);
        char **own = calloc(nq, sizeof *own);
        const char *root = NULL;
        if (dp_index_get_meta_str(ix, "source.root", &root)) root = NULL;
        for (size_t i = 0; names && imgs && own && i < nq; i++) {
            names[i] = qs[i].name;
            dp_index_entry e;
            if (qs[i].image)
                imgs[i] = qs[i].image;
            else if (qs[i].exclude != UINT64_MAX && !dp_index_get(ix, qs[i].exclude, &e))
                imgs[i] = own[i] = root ? g_build_filename(root, e.path, NULL) : g_strdup(e.path);
        }
        if (!names || !imgs || !own ||
            dp_cli_search_grid(ix, grid, names, imgs, nq, ids, dist, sp.k))
            rc = DP_EXIT_ERROR;
        else if (!as_json)
            fprintf(stderr, "grid written to %s\n", grid);
        for (size_t i = 0; own && i < nq; i++)
            g_free(own[i]);
        free(own);
        free(names);
        free(imgs);
    }
done:
    if (qs)
        for (size_t i = 0; i < nq; i++)
            g_free(qs[i].name);
    free(qs);
    free(Q);
    free(excl);
    free(ids);
    free(dist);
    free(fv);
    dp_index_free(ix);
    return rc;
}
