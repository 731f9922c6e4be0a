/* doppel index: build an index. From a folder of images, the work of
 * dp_cli_index_dir (index_dir.c); from vectors computed elsewhere
 * (--vectors FILE), here: .npy or .fvecs rows, optionally named. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* index_dir.c: `doppel index DIR ...` */
int dp_cli_index_dir(int argc, char **argv);

#define MAX_NAME_LINE 65536
#define ADD_BATCH 4096

static void help(FILE *f)
{
    fprintf(f,
            "usage: doppel index --vectors FILE [--names FILE] -o INDEX.dpl [options]\n"
            "       doppel index DIR [-o INDEX.dpl] [options]   (see doppel index DIR --help)\n\n"
            "Build an index from vectors computed elsewhere: a 2-D float32/float64 .npy or\n"
            "a TEXMEX .fvecs file. Row i gets id i. The vectors are L2-normalised unless\n"
            "--raw is given.\n\n"
            "  --vectors FILE      the vectors\n"
            "  --names FILE        one line per row: PATH, or PATH<TAB>LABEL\n"
            "  -o, --out FILE      index file to write (replaced atomically)\n"
            "  --metric M          l2 (squared Euclidean, default), ip, cosine, l1\n"
            "  --raw               store the vectors as given (no normalisation)\n"
            "  --model-name NAME   record where the vectors came from\n"
            "  --ann KIND          also build an ANN structure (hnsw, default parameters;\n"
            "                      'doppel ann build' takes others)\n"
            "  -q, --quiet         no summary line\n"
            "  --json              print the summary as JSON\n"
            "  -h, --help          this help\n");
}

typedef struct names {
    char **path, **label; /* label points into the path allocation */
    size_t n;
} names;

static void names_free(names *nm)
{
    for (size_t i = 0; i < nm->n; i++)
        free(nm->path[i]);
    free(nm->path);
    free(nm->label);
}

/* One line per row; exactly `rows` lines. */
static int read_names(const char *file, size_t rows, names *nm)
{
    memset(nm, 0, sizeof *nm);
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "doppel index: %s: %s\n", file, strerror(errno));
        return -1;
    }
    nm->path = calloc(rows ? rows : 1, sizeof *nm->path);
    nm->label = calloc(rows ? rows : 1, sizeof *nm->label);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    if (!nm->path || !nm->label) {
        fprintf(stderr, "doppel index: out of memory\n");
        rc = -1;
    }
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        if (len > MAX_NAME_LINE) {
            fprintf(stderr, "doppel index: %s: line %zu is longer than %d bytes\n", file, nm->n + 1,
                    MAX_NAME_LINE);
            rc = -1;
            break;
        }
        if (len && line[len - 1] == '\n') line[--len] = '\0';
        if (len && line[len - 1] == '\r') line[--len] = '\0';
        if (nm->n == rows) {
            fprintf(stderr, "doppel index: %s has more lines than the %zu vectors\n", file, rows);
            rc = -1;
            break;
        }
        char *p = strdup(line);
        if (!p) {
            rc = -1;
            break;
        }
        char *tab = strchr(p, '\t');
        if (tab) *tab++ = '\0';
        nm->path[nm->n] = p;
        nm->label[nm->n] = tab ? tab : p + strlen(p);
        nm->n++;
    }
    free(line);
    if (!rc && ferror(f)) {
        fprintf(stderr, "doppel index: %s: read error\n", file);
        rc = -1;
    }
    fclose(f);
    if (!rc && nm->n != rows) {
        fprintf(stderr, "doppel index: %s has %zu lines for %zu vectors\n", file, nm->n, rows);
        rc = -1;
    }
    if (rc) names_free(nm);
    return rc;
}

static int index_vectors(int argc, char **argv)
{
    static const struct option opts[] = {{"vectors", required_argument, 0, 'V'},
                                         {"names", required_argument, 0, 'N'},
                                         {"out", required_argument, 0, 'o'},
                                         {"metric", required_argument, 0, 'M'},
                                         {"raw", no_argument, 0, 'r'},
                                         {"model-name", required_argument, 0, 'm'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {"ann", required_argument, 0, 'A'},
                                         {0, 0, 0, 0}};
    int ann_kind = DP_ANN_NONE;
    const char *vec_file = NULL, *names_file = NULL, *out = NULL, *model = "external";
    int metric = DP_METRIC_L2;
    bool raw = false, quiet = false, as_json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'V':
            vec_file = optarg;
            break;
        case 'N':
            names_file = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'M':
            if (dp_metric_parse(optarg, &metric))
                return dp_cli_usage("index", "%s", dp_last_error());
            break;
        case 'r':
            raw = true;
            break;
        case 'm':
            model = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'j':
            as_json = true;
            break;
        case 'A':
            if (dp_ann_kind_parse(optarg, &ann_kind))
                return dp_cli_usage("index", "%s", dp_last_error());
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("index", "bad option");
        }
    }
    if (!vec_file) return dp_cli_usage("index", "--vectors needs a FILE");
    if (!out) return dp_cli_usage("index", "-o INDEX.dpl is required with --vectors");
    if (optind != argc) return dp_cli_usage("index", "unexpected argument '%s'", argv[optind]);
    if (raw && metric == DP_METRIC_COSINE)
        return dp_cli_usage("index", "--metric cosine needs normalised vectors (drop --raw)");

    float *v = NULL;
    size_t n, dim;
    if (dp_vectors_load(vec_file, 0, &v, &n, &dim))
        return dp_cli_fail("index", "cannot load vectors");
    names nm = {0};
    dp_index *ix = NULL;
    dp_index_entry *es = NULL;
    int rc = DP_EXIT_ERROR;
    if (names_file && read_names(names_file, n, &nm)) goto done;
    if (!raw) {
        for (size_t i = 0; i < n; i++) {
            float *r = v + i * dim;
            double s = 0;
            for (size_t j = 0; j < dim; j++)
                s += (double)r[j] * r[j];
            if (!(s > 0) || !isfinite(s)) {
                fprintf(stderr,
                        "doppel index: %s: row %zu has norm %g and cannot be normalised "
                        "(use --raw to store it as is)\n",
                        vec_file, i, sqrt(s));
                goto done;
            }
            float inv = (float)(1.0 / sqrt(s));
            for (size_t j = 0; j < dim; j++)
                r[j] *= inv;
        }
    }
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = (uint32_t)dim;
    cp.metric = metric;
    cp.normalized = !raw;
    cp.model_name = model;
    if (dp_index_create(out, &cp, &ix)) {
        dp_cli_fail("index", "cannot create %s", out);
        goto done;
    }
    dp_index_set_meta_str(ix, "source.vectors", vec_file);
    if (names_file) dp_index_set_meta_str(ix, "source.names", names_file);
    es = calloc(ADD_BATCH, sizeof *es);
    if (!es) goto done;
    for (size_t i0 = 0; i0 < n; i0 += ADD_BATCH) {
        size_t m = n - i0 < ADD_BATCH ? n - i0 : ADD_BATCH;
        for (size_t i = 0; i < m; i++)
            es[i] = (dp_index_entry){.path = names_file ? nm.path[i0 + i] : "",
                                     .label = names_file ? nm.label[i0 + i] : "",
                                     .vector = v + (i0 + i) * dim};
        if (dp_index_add(ix, es, m, NULL)) {
            dp_cli_fail("index", "%s: row %zu", vec_file, i0);
            goto done;
        }
    }
    if (dp_index_commit(ix)) {
        dp_cli_fail("index", "cannot write %s", out);
        goto done;
    }
    if (ann_kind) {
        dp_ann_build_params bp = dp_ann_default_build_params();
        bp.kind = ann_kind;
        dp_ann *ann = NULL;
        int e = dp_ann_build(ix, &bp, &ann);
        if (!e) e = dp_ann_save(ann, ix);
        dp_ann_free(ann);
        if (e || dp_index_commit(ix)) {
            dp_cli_fail("index", "ANN structure of %s", out);
            goto done;
        }
    }
    if (as_json) {
        json_t *o =
            json_pack("{s:s,s:I,s:I,s:s,s:b}", "index", out, "count", (json_int_t)n, "dim",
                      (json_int_t)dim, "metric", dp_metric_name(metric), "normalized", !raw);
        char *s = json_dumps(o, 0);
        puts(s);
        free(s);
        json_decref(o);
    } else if (!quiet) {
        printf("indexed %zu vectors of dimension %zu into %s (%s%s)\n", n, dim, out,
               dp_metric_name(metric), raw ? "" : ", normalised");
    }
    rc = DP_EXIT_OK;
done:
    free(es);
    dp_index_free(ix);
    names_free(&nm);
    free(v);
    return rc;
}

int dp_cmd_index(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--vectors") || !strncmp(argv[i], "--vectors=", 10))
            return index_vectors(argc, argv);
    }
    return dp_cli_index_dir(argc, argv);
}
