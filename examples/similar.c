/* similar: index a folder, then print the 5 stored images nearest to a query
 * image. Build: cc similar.c $(pkg-config --cflags --libs doppel) -o similar
 * Run:   ./similar photos/ query.jpg */
#include <doppel/doppel.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, dp_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s FOLDER QUERY_IMAGE\n", argv[0]);
        return 2;
    }
    /* The embedder: the default CNN, its preprocessing and embedding node. */
    dp_embedder *emb;
    dp_embedder_params ep = dp_embedder_default_params();
    if (dp_embedder_open(&ep, &emb)) return fail("open model");
    dp_embedder_info info;
    dp_embedder_describe(emb, &info);

    /* Bring similar.dpl in step with the folder (only new/changed files are embedded). */
    dp_ingest_report rep;
    if (dp_ingest_dir(emb, argv[1], "similar.dpl", NULL, &rep)) return fail("index");
    printf("%zu images (%zu added, %zu skipped)\n", rep.found, rep.added, rep.failed);
    dp_ingest_report_free(&rep);

    /* Embed the query and search. */
    float *q = malloc((size_t)info.dim * sizeof *q);
    if (!q || dp_embed_file(emb, argv[2], q)) return fail("embed query");
    dp_index *ix;
    if (dp_index_open("similar.dpl", NULL, &ix)) return fail("open index");
    dp_search_params sp = dp_search_default_params();
    sp.k = 5;
    int64_t ids[5];
    float dist[5];
    if (dp_index_search(ix, q, 1, &sp, ids, dist)) return fail("search");
    for (int i = 0; i < 5 && ids[i] >= 0; i++) {
        dp_index_entry e;
        if (dp_index_get(ix, (uint64_t)ids[i], &e) == 0)
            printf("%d  %.4f  %s  (%s)\n", i + 1, dist[i], e.path, e.label);
    }
    dp_index_free(ix);
    dp_embedder_free(emb);
    free(q);
    return 0;
}
