/* Image-file queries and result grids for doppel search. */
#include "cli.h"

#include <doppel/index.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>

/* The model that built the index: the spec the ingest stored (a name or an
 * .onnx path), else the index's model name. */
static const char *index_model(const dp_index *ix)
{
    const char *spec = NULL;
    if (dp_index_get_meta_str(ix, "source.model", &spec) == 0 && spec && *spec) return spec;
    const char *name = dp_index_model_name(ix);
    return name && *name ? name : NULL;
}

int dp_cli_embed_queries(const dp_index *ix, const char *const *paths, size_t n, float *out)
{
    const char *model = index_model(ix);
    if (!model) {
        fprintf(stderr,
                "doppel search: %s records no model, so image queries cannot be "
                "embedded; query with @ID, a stored path or --vectors\n",
                dp_index_path(ix));
        return -1;
    }
    dp_embedder_params ep = dp_embedder_default_params();
    ep.model = model;
    dp_embedder *e = NULL;
    if (dp_embedder_open(&ep, &e)) {
        dp_cli_fail("search", "cannot load the index's model %s", model);
        return -1;
    }
    dp_embedder_info ei;
    dp_embedder_describe(e, &ei);
    const char *fp = dp_index_model_fingerprint(ix);
    int rc = 0;
    /* An index reduced by doppel pca: embed in the model's space, project. */
    dp_pca *pca = NULL;
    int prc = dp_index_pca(ix, &pca);
    float *v = malloc((size_t)ei.dim * sizeof *v);
    if ((prc && prc != DP_ERR_NOT_FOUND) || !v) {
        dp_cli_fail("search", "%s", dp_index_path(ix));
        rc = -1;
    }
    if (!rc && fp && *fp && strcmp(fp, ei.fingerprint) != 0) {
        fprintf(stderr,
                "doppel search: %s was built with another version of model '%s' (fingerprint "
                "%.12s..., now %.12s...); re-run doppel index to re-embed\n",
                dp_index_path(ix), model, fp, ei.fingerprint);
        rc = -1;
    } else if (!rc && (uint32_t)ei.dim != dp_index_dim(ix) && !pca) {
        fprintf(stderr, "doppel search: model '%s' gives %d-d vectors, the index holds %u-d\n",
                model, ei.dim, dp_index_dim(ix));
        rc = -1;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        if (!paths[i]) continue;
        if (dp_embed_file(e, paths[i], v) ||
            dp_index_map_vectors(ix, pca, v, 1, (size_t)ei.dim, out + i * dp_index_dim(ix))) {
            dp_cli_fail("search", "query image");
            rc = -1;
        }
    }
    free(v);
    dp_pca_free(pca);
    dp_embedder_free(e);
    return rc;
}

int dp_cli_search_grid(const dp_index *ix, const char *out_png, const char *const *query_names,
                       const char *const *query_images, size_t nq, const int64_t *ids,
                       const float *dist, size_t k)
{
    const char *root = NULL;
    if (dp_index_get_meta_str(ix, "source.root", &root)) root = NULL;
    size_t cols = k + 1, n = nq * cols;
    dp_grid_cell *cells = calloc(n, sizeof *cells);
    char **owned = calloc(n * 3, sizeof *owned);
    int rc = 0;
    if (!cells || !owned) {
        free(cells);
        free(owned);
        fprintf(stderr, "doppel search: out of memory for the grid\n");
        return -1;
    }
    for (size_t q = 0; q < nq; q++) {
        dp_grid_cell *c = &cells[q * cols];
        c->image_path = query_images[q];
        c->caption = "query";
        c->caption2 = query_names[q];
        c->highlight = 1;
        for (size_t r = 0; r < k; r++) {
            int64_t id = ids[q * k + r];
            dp_index_entry e;
            if (id < 0 || dp_index_get(ix, (uint64_t)id, &e)) continue;
            size_t o = (q * cols + r + 1) * 3;
            owned[o] = root ? g_build_filename(root, e.path, NULL) : g_strdup(e.path);
            owned[o + 1] = g_strdup_printf("#%zu  d=%.4f", r + 1, (double)dist[q * k + r]);
            owned[o + 2] = *e.label ? g_strdup_printf("%s: %s", e.label, e.path) : g_strdup(e.path);
            c[r + 1].image_path = owned[o];
            c[r + 1].caption = owned[o + 1];
            c[r + 1].caption2 = owned[o + 2];
        }
    }
    dp_grid_params gp = dp_grid_default_params();
    gp.columns = (int)cols;
    gp.thumb = 160;
    if (dp_viz_grid(out_png, cells, n, &gp)) {
        dp_cli_fail("search", "cannot draw the grid");
        rc = -1;
    }
    for (size_t i = 0; i < n * 3; i++)
        g_free(owned[i]);
    free(owned);
    free(cells);
    return rc;
}
