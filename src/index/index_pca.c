/* An index's PCA: the "pca" and "pca.original" named sections and the
 * rewrite of the vectors (see include/doppel/pca.h, docs/index-format.md). */
#include "doppel/pca.h"
#include "index/index_internal.h"
#include "util/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC_PCA "pca"
#define SEC_ORIG "pca.original"
#define ORIG_MAGIC "DPPCAORG"

/* "pca.original": head, then n ids (ascending) and n x dim floats. */
typedef struct orig_head {
    char magic[8];
    uint32_t version;
    uint32_t dim;
    uint64_t n;
    uint8_t reserved[40];
} orig_head;
_Static_assert(sizeof(orig_head) == 64, "original head layout");

typedef struct originals {
    uint32_t dim;
    size_t n;
    const uint64_t *ids;
    const float *vecs;
} originals;

dp_index_pca_params dp_index_pca_default_params(void)
{
    dp_index_pca_params p = {0};
    p.keep_originals = true;
    return p;
}

int dp_index_pca(const dp_index *ix, dp_pca **out)
{
    *out = NULL;
    const void *data;
    size_t bytes;
    int rc = dp_index_get_section(ix, SEC_PCA, &data, &bytes);
    if (rc) return rc; /* DP_ERR_NOT_FOUND, message set */
    if ((rc = dp_index_check_section(ix, SEC_PCA))) return rc;
    char name[4200];
    snprintf(name, sizeof name, "%s: section 'pca'", ix->path);
    dp_pca *p = NULL;
    if ((rc = dp_pca_load(data, bytes, name, &p))) return rc;
    dp_pca_info pi;
    dp_pca_describe(p, &pi);
    if (pi.out_dim != ix->dim) {
        dp_pca_free(p);
        return dp_set_error(DP_ERR_FORMAT,
                            "%s: section 'pca' projects to %zu dims but the index holds %u-d "
                            "vectors",
                            ix->path, pi.out_dim, ix->dim);
    }
    *out = p;
    return 0;
}

static int load_originals(const dp_index *ix, originals *o)
{
    memset(o, 0, sizeof *o);
    const void *data;
    size_t bytes;
    int rc = dp_index_get_section(ix, SEC_ORIG, &data, &bytes);
    if (rc) return rc;
    if ((rc = dp_index_check_section(ix, SEC_ORIG))) return rc;
    orig_head h;
    if (bytes < sizeof h)
        return dp_set_error(DP_ERR_FORMAT, "%s: section 'pca.original' is too short", ix->path);
    memcpy(&h, data, sizeof h);
    size_t want, a;
    if (memcmp(h.magic, ORIG_MAGIC, 8) || h.version != 1 || h.dim < 1 || h.dim > DPX_MAX_DIM ||
        !dp_mul_ok((size_t)h.n, (size_t)h.dim * sizeof(float) + sizeof(uint64_t), &a) ||
        !dp_add_ok(a, sizeof h, &want) || want != bytes)
        return dp_set_error(DP_ERR_FORMAT,
                            "%s: section 'pca.original' is corrupt (head or size: %zu bytes)",
                            ix->path, bytes);
    o->dim = h.dim;
    o->n = (size_t)h.n;
    o->ids = (const uint64_t *)(const void *)((const uint8_t *)data + sizeof h);
    o->vecs = (const float *)(const void *)(o->ids + o->n);
    for (size_t i = 1; i < o->n; i++)
        if (o->ids[i] <= o->ids[i - 1])
            return dp_set_error(DP_ERR_FORMAT,
                                "%s: section 'pca.original': ids are not strictly ascending",
                                ix->path);
    return 0;
}

static const float *original_of(const originals *o, uint64_t id)
{
    size_t lo = 0, hi = o->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < o->n && o->ids[lo] == id ? o->vecs + lo * o->dim : NULL;
}

static void normalise(float *v, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; j++)
        s += (double)v[j] * v[j];
    if (s <= 0) return;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t j = 0; j < d; j++)
        v[j] *= inv;
}

/* The vectors in the space before the PCA, live rows in storage order, with
 * their ids: the kept originals, or reconstructions for rows added since. */
static int source_vectors(const dp_index *ix, const dp_pca *old, float **X_out, uint64_t **ids_out,
                          size_t *dim_out, size_t *reconstructed)
{
    size_t n = ix->live, d = ix->dim, bytes;
    originals o = {0};
    dp_pca_info pi = {0};
    int rc = 0;
    *reconstructed = 0;
    if (old) {
        dp_pca_describe(old, &pi);
        rc = load_originals(ix, &o);
        if (rc == DP_ERR_NOT_FOUND)
            return dp_set_error(DP_ERR_UNSUPPORTED,
                                "%s: the index was reduced by PCA without keeping its original "
                                "vectors, so it cannot be re-fitted or undone; index the images "
                                "again",
                                ix->path);
        if (rc) return rc;
        if (o.dim != pi.in_dim)
            return dp_set_error(DP_ERR_FORMAT,
                                "%s: section 'pca.original' holds %u-d vectors, the PCA takes %zu",
                                ix->path, o.dim, pi.in_dim);
        d = pi.in_dim;
    }
    float *X = NULL;
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids || !dp_mul_ok(n ? n : 1, d * sizeof(float), &bytes) || !(X = malloc(bytes))) {
        free(ids);
        return dp_set_error(DP_ERR_NOMEM, "%s: out of memory for %zu x %zu vectors", ix->path, n,
                            d);
    }
    size_t cur = 0, i = 0;
    dp_index_entry e;
    while ((rc = dp_index_next(ix, &cur, &e)) == 1 && i < n) {
        ids[i] = e.id;
        const float *src = old ? original_of(&o, e.id) : e.vector;
        if (src) {
            memcpy(X + i * d, src, d * sizeof *X);
        } else {
            if ((rc = dp_pca_unproject(old, e.vector, 1, X + i * d))) break;
            if (ix->normalized) normalise(X + i * d, d);
            (*reconstructed)++;
        }
        i++;
    }
    if (rc < 0 || i != n) {
        free(X);
        free(ids);
        return rc < 0 ? rc : dp_set_error(DP_ERR_FORMAT, "%s: live row count changed", ix->path);
    }
    *X_out = X;
    *ids_out = ids;
    *dim_out = d;
    return 0;
}

typedef struct id_row {
    uint64_t id;
    size_t row;
} id_row;

static int cmp_id_row(const void *a, const void *b)
{
    uint64_t x = ((const id_row *)a)->id, y = ((const id_row *)b)->id;
    return x < y ? -1 : x > y;
}

static int put_originals(dp_index *ix, const float *X, const uint64_t *ids, size_t n, size_t d)
{
    size_t bytes, a;
    if (!dp_mul_ok(n, d * sizeof(float) + sizeof(uint64_t), &a) ||
        !dp_add_ok(a, sizeof(orig_head), &bytes))
        return dp_set_error(DP_ERR_NOMEM, "too many vectors");
    uint8_t *b = calloc(1, bytes);
    id_row *ord = malloc((n ? n : 1) * sizeof *ord);
    if (!b || !ord) {
        free(b);
        free(ord);
        return dp_set_error(DP_ERR_NOMEM, "%s: out of memory for the original vectors (%zu bytes)",
                            ix->path, bytes);
    }
    orig_head h = {.version = 1, .dim = (uint32_t)d, .n = n};
    memcpy(h.magic, ORIG_MAGIC, 8);
    memcpy(b, &h, sizeof h);
    for (size_t i = 0; i < n; i++)
        ord[i] = (id_row){ids[i], i};
    qsort(ord, n, sizeof *ord, cmp_id_row); /* storage order is id order, but do not rely on it */
    uint64_t *oid = (uint64_t *)(void *)(b + sizeof h);
    float *ov = (float *)(void *)(oid + n);
    for (size_t i = 0; i < n; i++) {
        oid[i] = ord[i].id;
        memcpy(ov + i * d, X + ord[i].row * d, d * sizeof *ov);
    }
    int rc = dp_index_put_section(ix, SEC_ORIG, b, bytes);
    free(b);
    free(ord);
    return rc;
}

/* Structures built on the old vectors cannot answer for the new ones. */
static int drop_ann(dp_index *ix, bool *dropped)
{
    static const char *const prefixes[] = {"hnsw.", "ivfpq."};
    *dropped = false;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (dp_index_count_sections(ix, prefixes[i])) {
            int rc = dp_index_drop_sections(ix, prefixes[i]);
            if (rc) return rc;
            *dropped = true;
        }
    return 0;
}

int dp_index_pca_apply(dp_index *ix, const dp_index_pca_params *p, dp_index_pca_report *report,
                       dp_pca **fitted)
{
    dp_index_pca_report rep = {0};
    if (fitted) *fitted = NULL;
    if (!p) return dp_set_error(DP_ERR_INVALID, "dp_index_pca_apply: no parameters");
    if (!ix->writable)
        return dp_set_error(DP_ERR_INVALID, "dp_index_pca_apply: %s is open read-only", ix->path);
    dp_pca *old = NULL, *pca = NULL;
    float *X = NULL, *Y = NULL;
    uint64_t *ids = NULL;
    size_t d = 0, n = ix->live;
    int rc = dp_index_pca(ix, &old);
    if (rc == DP_ERR_NOT_FOUND)
        rc = 0;
    else if (rc)
        goto done;
    rep.refit = old != NULL;
    if (n < 2) {
        rc = dp_set_error(DP_ERR_INVALID, "%s: PCA needs 2 or more vectors (the index has %zu)",
                          ix->path, n);
        goto done;
    }
    if ((rc = source_vectors(ix, old, &X, &ids, &d, &rep.reconstructed))) goto done;
    if (p->dims < 1 || p->dims > d) {
        rc =
            dp_set_error(DP_ERR_INVALID, "%s: --dims %zu is not in 1..%zu (the vectors' dimension)",
                         ix->path, p->dims, d);
        goto done;
    }
    dp_pca_params pp = dp_pca_default_params();
    pp.dims = p->dims;
    pp.whiten = p->whiten;
    pp.normalize = ix->normalized;
    if ((rc = dp_pca_fit(X, n, d, &pp, &pca))) {
        rc = dp_prefix_error(rc, "%s", ix->path);
        goto done;
    }
    size_t yb;
    if (!dp_mul_ok(n, p->dims * sizeof(float), &yb) || !(Y = malloc(yb))) {
        rc = dp_set_error(DP_ERR_NOMEM, "%s: out of memory for the projections", ix->path);
        goto done;
    }
    if ((rc = dp_pca_project(pca, X, n, Y))) goto done;
    void *sec = NULL;
    size_t sec_bytes = 0;
    if ((rc = dp_pca_save(pca, &sec, &sec_bytes))) goto done;
    rc = dp_index_put_section(ix, SEC_PCA, sec, sec_bytes);
    free(sec);
    if (rc) goto done;
    if (p->keep_originals)
        rc = put_originals(ix, X, ids, n, d);
    else if (dp_index_count_sections(ix, SEC_ORIG))
        rc = dp_index_drop_section(ix, SEC_ORIG);
    if (!rc) rc = drop_ann(ix, &rep.dropped_ann);
    if (!rc) rc = dpx_replace_vectors(ix, (uint32_t)p->dims, Y);
    if (rc) goto done;
    rep.rows = n;
    rep.in_dim = d;
    rep.out_dim = p->dims;
    if (fitted) {
        *fitted = pca;
        pca = NULL;
    }
done:
    if (report) *report = rep;
    dp_pca_free(old);
    dp_pca_free(pca);
    free(X);
    free(Y);
    free(ids);
    return rc ? dp_prefix_error(rc, "dp_index_pca_apply") : 0;
}

int dp_index_pca_undo(dp_index *ix, dp_index_pca_report *report)
{
    dp_index_pca_report rep = {0};
    if (!ix->writable)
        return dp_set_error(DP_ERR_INVALID, "dp_index_pca_undo: %s is open read-only", ix->path);
    dp_pca *old = NULL;
    float *X = NULL;
    uint64_t *ids = NULL;
    size_t d = 0;
    int rc = dp_index_pca(ix, &old);
    if (rc == DP_ERR_NOT_FOUND) {
        rc = dp_set_error(DP_ERR_NOT_FOUND, "%s has no PCA to undo", ix->path);
        goto done;
    }
    if (rc) goto done;
    if ((rc = source_vectors(ix, old, &X, &ids, &d, &rep.reconstructed))) goto done;
    rc = dp_index_drop_section(ix, SEC_PCA);
    if (!rc && dp_index_count_sections(ix, SEC_ORIG)) rc = dp_index_drop_section(ix, SEC_ORIG);
    if (!rc) rc = drop_ann(ix, &rep.dropped_ann);
    if (!rc) rc = dpx_replace_vectors(ix, (uint32_t)d, X);
    if (rc) goto done;
    rep.rows = ix->live;
    rep.in_dim = d;
    rep.out_dim = d;
done:
    if (report) *report = rep;
    dp_pca_free(old);
    free(X);
    free(ids);
    return rc ? dp_prefix_error(rc, "dp_index_pca_undo") : 0;
}

int dp_index_map_vectors(const dp_index *ix, const dp_pca *pca, const float *in, size_t n,
                         size_t in_dim, float *out)
{
    if (in_dim == ix->dim) {
        if (n) memmove(out, in, n * in_dim * sizeof *out);
        return 0;
    }
    dp_pca_info pi = {0};
    if (pca) dp_pca_describe(pca, &pi);
    if (pca && in_dim == pi.in_dim && pi.out_dim == ix->dim) return dp_pca_project(pca, in, n, out);
    if (pca)
        return dp_set_error(
            DP_ERR_MISMATCH,
            "%s holds %u-d vectors (PCA of %zu-d ones); a %zu-d vector fits neither", ix->path,
            ix->dim, pi.in_dim, in_dim);
    return dp_set_error(DP_ERR_MISMATCH, "%s holds %u-d vectors, not %zu-d", ix->path, ix->dim,
                        in_dim);
}
