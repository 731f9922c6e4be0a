/* doppel export INDEX: the stored vectors and their metadata, for tools
 * outside doppel (numpy, the tests' independent checks). */
#include "cli.h"

#include <doppel/index.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: doppel export INDEX -o VECTORS.npy\n\n"
               "Write the live entries' vectors as an N x dim float32 .npy file and, beside\n"
               "it, VECTORS.tsv with one \"id<TAB>path<TAB>label<TAB>width<TAB>height\" line per\n"
               "row, in storage order.\n\n"
               "  -o, --out FILE  the .npy file to write\n"
               "  -h, --help      this help\n");
}

int dp_cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *out = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("export", "bad option");
        }
    }
    if (optind != argc - 1 || !out) return dp_cli_usage("export", "expects INDEX and -o FILE");
    dp_index *ix = NULL;
    if (dp_index_open(argv[optind], NULL, &ix))
        return dp_cli_fail("export", "cannot open %s", argv[optind]);
    size_t n = dp_index_count(ix), dim = dp_index_dim(ix);
    float *v = malloc((n ? n : 1) * dim * sizeof *v);
    size_t ol = strlen(out);
    char *tsv = malloc(ol + 8);
    FILE *f = NULL;
    int rc = DP_EXIT_ERROR;
    if (!v || !tsv) {
        fprintf(stderr, "doppel export: out of memory\n");
        goto done;
    }
    snprintf(tsv, ol + 8, "%.*s.tsv", (int)(ol > 4 && !strcmp(out + ol - 4, ".npy") ? ol - 4 : ol),
             out);
    f = fopen(tsv, "w");
    if (!f) {
        fprintf(stderr, "doppel export: cannot write %s\n", tsv);
        goto done;
    }
    size_t cur = 0, i = 0;
    dp_index_entry e;
    int r;
    while (i < n && (r = dp_index_next(ix, &cur, &e)) == 1) {
        memcpy(v + i * dim, e.vector, dim * sizeof *v);
        fprintf(f, "%llu\t%s\t%s\t%u\t%u\n", (unsigned long long)e.id, e.path, e.label, e.width,
                e.height);
        i++;
    }
    if (i != n) {
        dp_cli_fail("export", "%s: reading entry %zu", argv[optind], i);
        goto done;
    }
    int64_t dims[2] = {(int64_t)n, (int64_t)dim};
    if (dp_npy_write_f32(out, v, 2, dims)) {
        dp_cli_fail("export", "cannot write %s", out);
        goto done;
    }
    rc = DP_EXIT_OK;
done:
    if (f) fclose(f);
    free(v);
    free(tsv);
    dp_index_free(ix);
    return rc;
}
