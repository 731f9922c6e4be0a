/* Near-duplicate groups by thresholded k-NN + union-find (see dedup.h). */
#include "doppel/dedup.h"
#include "util/util.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 512

dp_dedup_params dp_dedup_default_params(void)
{
    dp_dedup_params p = {0};
    return p;
}

static int cmp_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return a < b ? -1 : a > b;
}

/* pHash distances mean bits, so its threshold is absolute. For learned
 * embeddings the scale differs from model to model (pooled ReLU features
 * crowd into a narrow cone), so the default is relative: a quarter of the
 * median distance from an image to its nearest neighbour, measured on up to
 * 1,000 stored images. Copies that were resized or re-encoded sit far below
 * that; different images of the same kind sit around it. */
float dp_dedup_default_threshold(const dp_index *ix)
{
    const char *m = dp_index_model_name(ix);
    if (m && !strcmp(m, "phash")) return 0.375f;
    size_t n = dp_index_count(ix), dim = dp_index_dim(ix);
    const float fallback = 0.01f;
    if (n < 3) return fallback;
    size_t step = n > 1000 ? n / 1000 : 1, nq = 0;
    size_t cap = n / step + 1;
    float *Q = malloc(cap * dim * sizeof *Q), *d = malloc(cap * 2 * sizeof *d);
    int64_t *ids = malloc(cap * 2 * sizeof *ids);
    uint64_t *excl = malloc(cap * sizeof *excl);
    float t = fallback;
    if (!Q || !d || !ids || !excl) goto out;
    size_t cur = 0, i = 0;
    dp_index_entry e;
    while (nq < cap && dp_index_next(ix, &cur, &e) == 1) {
        if (i++ % step) continue;
        memcpy(Q + nq * dim, e.vector, dim * sizeof *Q);
        excl[nq++] = e.id;
    }
    dp_search_params sp = dp_search_default_params();
    sp.k = 1;
    sp.exclude_ids = excl;
    if (nq < 2 || dp_index_search(ix, Q, nq, &sp, ids, d)) goto out;
    qsort(d, nq, sizeof *d, cmp_float);
    if (d[nq / 2] > 0) t = 0.25f * d[nq / 2];
out:
    free(Q);
    free(d);
    free(ids);
    free(excl);
    return t;
}

void dp_dedup_result_free(dp_dedup_result *r)
{
    if (!r) return;
    free(r->lims);
    free(r->ids);
    free(r->a);
    free(r->b);
    free(r->dist);
    memset(r, 0, sizeof *r);
}

/* Union-find over row numbers with path halving and union by size. */
static size_t uf_find(size_t *parent, size_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

static void uf_union(size_t *parent, size_t *size, size_t a, size_t b)
{
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a == b) return;
    if (size[a] < size[b]) {
        size_t t = a;
        a = b;
        b = t;
    }
    parent[b] = a;
    size[a] += size[b];
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

typedef struct grp {
    size_t root, n;
} grp;

static int cmp_grp(const void *x, const void *y)
{
    const grp *a = x, *b = y;
    if (a->n != b->n) return a->n > b->n ? -1 : 1;
    return a->root < b->root ? -1 : a->root > b->root;
}

int dp_dedup(const dp_index *ix, const dp_index *against, const dp_dedup_params *p,
             dp_dedup_result *out)
{
    dp_dedup_params defaults = dp_dedup_default_params();
    if (!p) p = &defaults;
    memset(out, 0, sizeof *out);
    const dp_index *db = against ? against : ix;
    size_t dim = dp_index_dim(ix);
    if (dp_index_dim(db) != dim)
        return dp_set_error(DP_ERR_MISMATCH, "%s has %u-d vectors, %s %u-d", dp_index_path(ix),
                            dp_index_dim(ix), dp_index_path(db), dp_index_dim(db));
    const char *fa = dp_index_model_fingerprint(ix), *fb = dp_index_model_fingerprint(db);
    if (fa && fb && *fa && *fb && strcmp(fa, fb))
        return dp_set_error(DP_ERR_MISMATCH, "%s and %s were built with different models",
                            dp_index_path(ix), dp_index_path(db));
    float thr = p->threshold > 0 ? p->threshold : dp_dedup_default_threshold(ix);
    out->threshold = thr;
    size_t k = p->max_neighbors ? p->max_neighbors : 16;
    size_t n = dp_index_count(ix);
    if (k > dp_index_count(db)) k = dp_index_count(db);
    if (n == 0 || k == 0) return 0;

    /* Row numbers: the ids in ascending order, so an id's row is a binary search. */
    uint64_t *rows = malloc(n * sizeof *rows);
    size_t *parent = NULL, *size = NULL;
    float *Q = malloc(BLOCK * dim * sizeof *Q), *dist = malloc(BLOCK * k * sizeof *dist);
    int64_t *res = malloc(BLOCK * k * sizeof *res);
    uint64_t excl[BLOCK];
    GArray *pa = NULL, *pb = NULL, *pd = NULL;
    int rc = 0;
    if (!rows || !Q || !dist || !res) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_dedup: out of memory");
        goto done;
    }
    size_t cur = 0, i = 0;
    dp_index_entry e;
    int r;
    while (i < n && (r = dp_index_next(ix, &cur, &e)) == 1)
        rows[i++] = e.id;
    if (i != n) {
        rc = r < 0 ? r : dp_set_error(DP_ERR_FORMAT, "dp_dedup: entry count changed");
        goto done;
    }
    qsort(rows, n, sizeof *rows, cmp_u64);
    if (!against) {
        parent = malloc(n * sizeof *parent);
        size = malloc(n * sizeof *size);
        if (!parent || !size) {
            rc = dp_set_error(DP_ERR_NOMEM, "dp_dedup: out of memory");
            goto done;
        }
        for (i = 0; i < n; i++) {
            parent[i] = i;
            size[i] = 1;
        }
    } else {
        pa = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        pb = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        pd = g_array_new(FALSE, FALSE, sizeof(float));
    }
    dp_search_params sp = dp_search_default_params();
    sp.k = k;
    sp.max_distance = thr;
    sp.threads = p->threads;
    sp.exclude_ids = against ? NULL : excl;
    for (size_t b = 0; b < n; b += BLOCK) {
        size_t m = n - b < BLOCK ? n - b : BLOCK;
        for (size_t j = 0; j < m; j++) {
            if ((rc = dp_index_get(ix, rows[b + j], &e))) goto done;
            memcpy(Q + j * dim, e.vector, dim * sizeof *Q);
            excl[j] = rows[b + j];
        }
        if ((rc = dp_index_search(db, Q, m, &sp, res, dist))) goto done;
        for (size_t j = 0; j < m; j++)
            for (size_t t = 0; t < k && res[j * k + t] >= 0; t++) {
                uint64_t id = (uint64_t)res[j * k + t];
                if (against) {
                    g_array_append_val(pa, rows[b + j]);
                    g_array_append_val(pb, id);
                    g_array_append_val(pd, dist[j * k + t]);
                    continue;
                }
                /* ids ascend with rows: binary search the neighbour's row */
                size_t lo = 0, hi = n;
                while (lo < hi) {
                    size_t mid = (lo + hi) / 2;
                    if (rows[mid] < id)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                if (lo < n && rows[lo] == id) uf_union(parent, size, b + j, lo);
            }
        if (p->progress && p->progress(b + m, n, p->user_data)) {
            rc = dp_set_error(DP_ERR_CANCELLED, "dp_dedup: cancelled");
            goto done;
        }
    }
    if (against) {
        out->n_pairs = pa->len;
        out->a = (uint64_t *)(void *)g_array_free(pa, FALSE);
        out->b = (uint64_t *)(void *)g_array_free(pb, FALSE);
        out->dist = (float *)(void *)g_array_free(pd, FALSE);
        pa = pb = pd = NULL;
        goto done;
    }
    /* Components of size >= 2, largest first; members in id order. */
    size_t ng = 0, total = 0;
    for (i = 0; i < n; i++)
        if (uf_find(parent, i) == i && size[i] > 1) {
            ng++;
            total += size[i];
        }
    grp *gs = malloc((ng ? ng : 1) * sizeof *gs);
    size_t *slot = malloc(n * sizeof *slot);
    out->lims = malloc((ng + 1) * sizeof *out->lims);
    out->ids = malloc((total ? total : 1) * sizeof *out->ids);
    if (!gs || !slot || !out->lims || !out->ids) {
        free(gs);
        free(slot);
        rc = dp_set_error(DP_ERR_NOMEM, "dp_dedup: out of memory");
        goto done;
    }
    size_t g = 0;
    for (i = 0; i < n; i++)
        if (uf_find(parent, i) == i && size[i] > 1) gs[g++] = (grp){i, size[i]};
    qsort(gs, ng, sizeof *gs, cmp_grp);
    out->lims[0] = 0;
    for (g = 0; g < ng; g++) {
        out->lims[g + 1] = out->lims[g] + gs[g].n;
        slot[gs[g].root] = out->lims[g]; /* next free position of this group */
    }
    for (i = 0; i < n; i++) {
        size_t root = uf_find(parent, i);
        if (size[root] > 1) out->ids[slot[root]++] = rows[i];
    }
    out->n_groups = ng;
    free(gs);
    free(slot);
done:
    if (rc) dp_dedup_result_free(out);
    if (pa) g_array_free(pa, TRUE);
    if (pb) g_array_free(pb, TRUE);
    if (pd) g_array_free(pd, TRUE);
    free(rows);
    free(parent);
    free(size);
    free(Q);
    free(dist);
    free(res);
    return rc;
}
