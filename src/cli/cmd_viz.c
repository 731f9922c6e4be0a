/* doppel viz: pictures of an index's embedding space.
 *   doppel viz tsne INDEX --out DIR       t-SNE scatter, image map, tile grid, coordinates
 *   doppel viz projector INDEX --out DIR  files for the TensorFlow Embedding Projector */
#include "cli.h"

#include <doppel/eval.h>
#include <doppel/viz.h>
#include <getopt.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f,
            "usage: doppel viz tsne INDEX --out DIR [--pca 50] [--perplexity 30] [--iters 1000]\n"
            "                  [--sample 4000] [--seed S] [--theta 0.5] [--labels MANIFEST.tsv]\n"
            "                  [--thumb 48] [--no-images]\n"
            "       doppel viz projector INDEX --out DIR [--sample 10000] [--seed S]\n\n"
            "tsne: lay a seeded sample of the stored vectors out in 2-D with Barnes-Hut t-SNE\n"
            "(PCA-initialised) and write DIR/tsne.tsv (id, path, label, x, y),\n"
            "DIR/tsne_scatter.png (coloured by label, with a legend), DIR/tsne_images.png (the\n"
            "images at their positions), DIR/tsne_grid.png (each image in the free grid cell\n"
            "nearest its position) and DIR/tsne.json (parameters, KL divergence, time).\n"
            "Images are read from the folder the index was built from.\n\n"
            "projector: write DIR/vectors.tsv, metadata.tsv, sprite.png and\n"
            "projector_config.json; load them at https://projector.tensorflow.org\n"
            "(\"Load\", then the two TSVs and the sprite, or serve DIR and pass the config).\n\n"
            "  --out DIR          output folder (created)\n"
            "  --pca N            reduce to N dims before t-SNE (default 50; 0 = no)\n"
            "  --perplexity P     default 30\n"
            "  --iters N          default 1000\n"
            "  --theta T          Barnes-Hut accuracy, 0 = exact (default 0.5)\n"
            "  --sample N         at most N images (default 4000 for tsne, 10000 for projector;\n"
            "                     0 = all)\n"
            "  --seed S           seed for the sample (default 1)\n"
            "  --labels FILE      colour by the manifest's class instead of the folder label\n"
            "  --thumb PX         image size on the map and grid (default 48)\n"
            "  --no-images        only the scatter and the coordinates\n"
            "  --threads N        default: all cores\n"
            "  -q, --quiet        no progress\n"
            "  -h, --help         this help\n");
}

typedef struct ent {
    uint64_t id;
    const char *path, *label;
} ent;

static int cmp_ent(const void *a, const void *b)
{
    return strcmp(((const ent *)a)->path, ((const ent *)b)->path);
}

static int progress_cb(int it, int iters, void *user)
{
    dp_progress_update(user, (uint64_t)it);
    (void)iters;
    return 0;
}

static int run_tsne(const char *path, const char *out, dp_tsne_params tp, size_t sample,
                    uint64_t seed, const char *labels_path, int thumb, bool images, bool quiet)
{
    dp_index *ix = NULL;
    dp_eval_labels *labels = NULL;
    ent *e = NULL;
    float *X = NULL, *Y = NULL;
    int *cls = NULL;
    char **img = NULL;
    dp_thumb *thumbs = NULL;
    GHashTable *cls_ids = g_hash_table_new(g_str_hash, g_str_equal);
    GPtrArray *cls_names = g_ptr_array_new();
    GString *tsv = g_string_new("id\tpath\tlabel\tx\ty\n");
    int status = DP_EXIT_ERROR;
    size_t m = 0;
    if (dp_index_open(path, NULL, &ix)) {
        dp_cli_fail("viz", "cannot open %s", path);
        goto done;
    }
    if (labels_path && dp_eval_labels_load(labels_path, &labels)) {
        dp_cli_fail("viz", "cannot read labels");
        goto done;
    }
    size_t n = dp_index_count(ix), dim = dp_index_dim(ix), cur = 0;
    dp_index_entry en;
    e = malloc((n ? n : 1) * sizeof *e);
    if (!e) {
        dp_cli_fail("viz", "out of memory");
        goto done;
    }
    int r;
    while ((r = dp_index_next(ix, &cur, &en)) == 1) {
        const char *lab = en.label ? en.label : "", *inst;
        if (labels && dp_eval_labels_find(labels, en.path, &lab, &inst)) lab = "";
        e[m++] = (ent){en.id, en.path ? en.path : "", lab};
    }
    if (r < 0) {
        dp_cli_fail("viz", "%s", path);
        goto done;
    }
    if (m < 4) {
        fprintf(stderr, "doppel viz: %s: t-SNE needs at least 4 images, the index has %zu\n", path,
                m);
        goto done;
    }
    /* A seeded sample, the same whatever order the ids were given in. */
    qsort(e, m, sizeof *e, cmp_ent);
    if (sample && m > sample) {
        GRand *rng = g_rand_new_with_seed((guint32)(seed ^ (seed >> 32)));
        for (size_t i = 0; i < sample; i++) {
            size_t j = i + (size_t)g_rand_int_range(rng, 0, (gint32)(m - i));
            ent t = e[i];
            e[i] = e[j];
            e[j] = t;
        }
        g_rand_free(rng);
        m = sample;
    }
    X = malloc(m * dim * sizeof *X);
    Y = malloc(2 * m * sizeof *Y);
    cls = malloc(m * sizeof *cls);
    if (!X || !Y || !cls) {
        dp_cli_fail("viz", "out of memory for %zu x %zu vectors", m, dim);
        goto done;
    }
    for (size_t i = 0; i < m; i++) {
        if (dp_index_get(ix, e[i].id, &en)) {
            dp_cli_fail("viz", "%s", path);
            goto done;
        }
        memcpy(X + i * dim, en.vector, dim * sizeof *X);
        gpointer v;
        if (!*e[i].label) {
            cls[i] = -1;
        } else if (g_hash_table_lookup_extended(cls_ids, e[i].label, NULL, &v)) {
            cls[i] = GPOINTER_TO_INT(v);
        } else {
            cls[i] = (int)cls_names->len;
            g_ptr_array_add(cls_names, (gpointer)e[i].label);
            g_hash_table_insert(cls_ids, (gpointer)e[i].label, GINT_TO_POINTER(cls[i]));
        }
    }
    if (g_mkdir_with_parents(out, 0777) != 0) {
        fprintf(stderr, "doppel viz: %s: cannot create the folder\n", out);
        goto done;
    }
    dp_progress prog;
    dp_progress_begin(&prog, "t-SNE", (uint64_t)tp.iters, quiet);
    tp.progress = progress_cb;
    tp.user_data = &prog;
    dp_tsne_info info;
    if (dp_tsne(X, m, dim, &tp, Y, &info)) {
        dp_progress_end(&prog, 0);
        dp_cli_fail("viz", "t-SNE of %s", path);
        goto done;
    }
    dp_progress_end(&prog, (uint64_t)tp.iters);
    if (!quiet)
        fprintf(stderr,
                "t-SNE: %zu points, %zu dims -> %d (PCA) -> 2, perplexity %g, %d iters, "
                "KL %.4f, %.2f s\n",
                m, dim, info.input_dims, info.perplexity, tp.iters, info.kl_divergence,
                info.seconds);
    for (size_t i = 0; i < m; i++)
        g_string_append_printf(tsv, "%llu\t%s\t%s\t%.6f\t%.6f\n", (unsigned long long)e[i].id,
                               e[i].path, e[i].label, (double)Y[2 * i], (double)Y[2 * i + 1]);
    char *f_tsv = g_build_filename(out, "tsne.tsv", NULL);
    bool ok = g_file_set_contents(f_tsv, tsv->str, (gssize)tsv->len, NULL);
    g_free(f_tsv);
    if (!ok) {
        fprintf(stderr, "doppel viz: %s/tsne.tsv: cannot write\n", out);
        goto done;
    }
    const char *model = dp_index_model_name(ix);
    char title[512];
    snprintf(title, sizeof title, "t-SNE of %zu images, %s (perplexity %g)", m,
             model && *model ? model : "?", info.perplexity);
    dp_layout_params lp = dp_layout_default_params();
    lp.title = title;
    lp.thumb = thumb;
    char *f_sc = g_build_filename(out, "tsne_scatter.png", NULL);
    int rc =
        dp_viz_scatter(f_sc, Y, cls, m, (const char *const *)cls_names->pdata, cls_names->len, &lp);
    g_free(f_sc);
    if (rc) {
        dp_cli_fail("viz", "scatter");
        goto done;
    }
    const char *root = NULL;
    if (images && (dp_index_get_meta_str(ix, "source.root", &root) || !root || !*root)) {
        fprintf(stderr,
                "doppel viz: %s records no image folder (source.root); drawing the "
                "scatter only\n",
                path);
        images = false;
    }
    if (images) {
        img = calloc(m, sizeof *img);
        if (!img) goto done;
        for (size_t i = 0; i < m; i++)
            img[i] = g_build_filename(root, e[i].path, NULL);
        if (dp_viz_load_thumbs((const char *const *)img, m, thumb, tp.threads, &thumbs)) {
            dp_cli_fail("viz", "thumbnails");
            goto done;
        }
        size_t bad = 0;
        for (size_t i = 0; i < m; i++)
            bad += !thumbs[i].rgb;
        if (bad)
            fprintf(stderr,
                    "doppel viz: %zu of %zu images could not be read (grey tiles); "
                    "first missing under %s\n",
                    bad, m, root);
        lp.size = m > 2000 ? 2400 : 1600;
        char *f_map = g_build_filename(out, "tsne_images.png", NULL);
        rc = dp_viz_image_map(f_map, Y, thumbs, m, &lp);
        g_free(f_map);
        if (rc) {
            dp_cli_fail("viz", "image map");
            goto done;
        }
        char *f_grid = g_build_filename(out, "tsne_grid.png", NULL);
        rc = dp_viz_tile_grid(f_grid, Y, thumbs, m, &lp, NULL);
        g_free(f_grid);
        if (rc) {
            dp_cli_fail("viz", "grid");
            goto done;
        }
    }
    json_t *j = json_pack(
        "{s:s, s:s, s:I, s:I, s:i, s:f, s:i, s:f, s:f, s:I, s:f, s:f, s:I}", "index", path, "model",
        model ? model : "", "points", (json_int_t)m, "dim", (json_int_t)dim, "pca_dims",
        info.input_dims, "perplexity", info.perplexity, "iters", tp.iters, "theta", tp.theta,
        "learning_rate", info.learning_rate, "neighbours", (json_int_t)info.neighbours,
        "kl_divergence", info.kl_divergence, "seconds", info.seconds, "seed", (json_int_t)seed);
    char *f_js = g_build_filename(out, "tsne.json", NULL);
    json_dump_file(j, f_js, JSON_INDENT(2));
    g_free(f_js);
    json_decref(j);
    if (!quiet)
        printf("wrote %s/tsne.tsv, tsne_scatter.png%s, tsne.json\n", out,
               images ? ", tsne_images.png, tsne_grid.png" : "");
    status = DP_EXIT_OK;
done:
    if (img)
        for (size_t i = 0; i < m; i++)
            g_free(img[i]);
    free(img);
    dp_viz_thumbs_free(thumbs, m);
    g_hash_table_destroy(cls_ids);
    g_ptr_array_free(cls_names, TRUE);
    g_string_free(tsv, TRUE);
    free(X);
    free(Y);
    free(cls);
    free(e);
    dp_eval_labels_free(labels);
    dp_index_free(ix);
    return status;
}

int dp_cmd_viz(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"pca", required_argument, 0, 'P'},
                                         {"perplexity", required_argument, 0, 'p'},
                                         {"iters", required_argument, 0, 'i'},
                                         {"theta", required_argument, 0, 'T'},
                                         {"sample", required_argument, 0, 'n'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"labels", required_argument, 0, 'L'},
                                         {"thumb", required_argument, 0, 'b'},
                                         {"no-images", no_argument, 0, 'I'},
                                         {"threads", required_argument, 0, 't'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        help(stdout);
        return DP_EXIT_OK;
    }
    if (argc < 2) return dp_cli_usage("viz", "expects tsne or projector");
    const char *what = argv[1];
    bool is_tsne = !strcmp(what, "tsne"), is_proj = !strcmp(what, "projector");
    if (!is_tsne && !is_proj)
        return dp_cli_usage("viz", "unknown picture '%s' (tsne, projector)", what);
    dp_tsne_params tp = dp_tsne_default_params();
    const char *out = NULL, *labels = NULL;
    long sample = -1;
    uint64_t seed = 1;
    int thumb = 48, threads = 0;
    bool images = true, quiet = false;
    char *end;
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'P':
            tp.pca_dims = (int)strtol(optarg, &end, 10);
            if (*end || tp.pca_dims < 0) return dp_cli_usage("viz", "--pca must be 0 or more");
            break;
        case 'p':
            tp.perplexity = strtod(optarg, &end);
            if (*end || !(tp.perplexity >= 1 && tp.perplexity <= 1000))
                return dp_cli_usage("viz", "--perplexity must be in 1..1000");
            break;
        case 'i':
            tp.iters = (int)strtol(optarg, &end, 10);
            if (*end || tp.iters < 1 || tp.iters > 100000)
                return dp_cli_usage("viz", "--iters must be in 1..100000");
            break;
        case 'T':
            tp.theta = strtod(optarg, &end);
            if (*end || !(tp.theta >= 0 && tp.theta <= 2))
                return dp_cli_usage("viz", "--theta must be in 0..2");
            break;
        case 'n':
            sample = strtol(optarg, &end, 10);
            if (*end || sample < 0) return dp_cli_usage("viz", "--sample must be 0 or more");
            break;
        case 'S':
            seed = strtoull(optarg, &end, 10);
            if (*end) return dp_cli_usage("viz", "--seed must be a number");
            break;
        case 'L':
            labels = optarg;
            break;
        case 'b':
            thumb = (int)strtol(optarg, &end, 10);
            if (*end || thumb < 8 || thumb > 256)
                return dp_cli_usage("viz", "--thumb must be in 8..256");
            break;
        case 'I':
            images = false;
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("viz", "bad option");
        }
    }
    if (optind != argc - 2) return dp_cli_usage("viz", "expects one INDEX");
    if (!out) return dp_cli_usage("viz", "--out DIR is required");
    const char *path = argv[optind + 1];
    tp.threads = threads;
    if (is_tsne)
        return run_tsne(path, out, tp, sample < 0 ? 4000 : (size_t)sample, seed, labels, thumb,
                        images, quiet);

    dp_index *ix = NULL;
    if (dp_index_open(path, NULL, &ix)) return dp_cli_fail("viz", "cannot open %s", path);
    dp_projector_params pp = dp_projector_default_params();
    pp.sample = sample < 0 ? 10000 : sample == 0 ? SIZE_MAX : (size_t)sample;
    pp.seed = seed;
    pp.threads = threads;
    int rc = dp_viz_projector(ix, out, &pp);
    dp_index_free(ix);
    if (rc) return dp_cli_fail("viz", "projector");
    if (!quiet)
        printf("wrote %s/vectors.tsv, metadata.tsv, sprite.png, projector_config.json\n", out);
    return DP_EXIT_OK;
}
