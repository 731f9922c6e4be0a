/* Embedding quality from an index's labels (see include/doppel/eval.h).
 *
 * The labelled entries become an array of items (id, path, class number,
 * instance number), so scoring a neighbour is an int compare. The database is
 * that array or a class-proportional sample of it; queries go through
 * dp_index_search in blocks (a filter keeps results inside the database) so
 * the GEMM path does the distance work and memory stays bounded whatever the
 * index size. Neighbours are fetched deep enough (100 + the largest instance
 * - 1) that skipping same-instance neighbours still leaves 100 to score. */
#include "doppel/eval.h"
#include "doppel/pca.h"
#include "util/util.h"

#include <glib.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAP_DEPTH 100
#define BLOCK 256
#define MANIFEST_MAX_BYTES ((size_t)1 << 30)
#define MANIFEST_MAX_LINE 65536

/* ---- Manifest ------------------------------------------------------------ */

typedef struct lrow {
    const char *path, *cls, *inst;
} lrow;

struct dp_eval_labels {
    char *buf; /* the file, split in place */
    lrow *rows;
    size_t n;
    GHashTable *by_path; /* path -> lrow* */
};

void dp_eval_labels_free(dp_eval_labels *l)
{
    if (!l) return;
    if (l->by_path) g_hash_table_destroy(l->by_path);
    free(l->rows);
    free(l->buf);
    free(l);
}

size_t dp_eval_labels_count(const dp_eval_labels *l)
{
    return l ? l->n : 0;
}

int dp_eval_labels_find(const dp_eval_labels *l, const char *path, const char **cls,
                        const char **instance)
{
    const lrow *r = l && path ? g_hash_table_lookup(l->by_path, path) : NULL;
    if (!r) return DP_ERR_NOT_FOUND;
    if (cls) *cls = r->cls;
    if (instance) *instance = r->inst;
    return 0;
}

int dp_eval_labels_load(const char *tsv_path, dp_eval_labels **out)
{
    *out = NULL;
    void *data = NULL;
    size_t size = 0;
    int rc = dp_read_file(tsv_path, MANIFEST_MAX_BYTES, &data, &size);
    if (rc) return rc;
    dp_eval_labels *l = calloc(1, sizeof *l);
    char *buf = realloc(data, size + 1);
    if (!l || !buf) {
        free(l);
        free(buf ? buf : data);
        return dp_set_error(DP_ERR_NOMEM, "%s: out of memory", tsv_path);
    }
    buf[size] = '\0';
    l->buf = buf;
    if (memchr(buf, '\0', size)) {
        rc =
            dp_set_error(DP_ERR_FORMAT, "%s: binary data (a NUL byte) in a TSV manifest", tsv_path);
        goto fail;
    }
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += buf[i] == '\n';
    l->rows = calloc(lines, sizeof *l->rows);
    l->by_path = g_hash_table_new(g_str_hash, g_str_equal);
    if (!l->rows) {
        rc = dp_set_error(DP_ERR_NOMEM, "%s: out of memory", tsv_path);
        goto fail;
    }
    char *p = buf, *end = buf + size;
    for (size_t lineno = 1; p < end; lineno++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        if ((size_t)(le - p) > MANIFEST_MAX_LINE) {
            rc = dp_set_error(DP_ERR_FORMAT, "%s:%zu: line longer than %d bytes", tsv_path, lineno,
                              MANIFEST_MAX_LINE);
            goto fail;
        }
        *le = '\0';
        if (le > p && le[-1] == '\r') le[-1] = '\0';
        char *line = p;
        p = le + 1;
        if (!*line) continue;
        if (lineno == 1 && !strncmp(line, "path\t", 5)) continue;
        char *f[3] = {line, NULL, NULL};
        for (int i = 1; i < 3; i++) {
            char *tab = f[i - 1] ? strchr(f[i - 1], '\t') : NULL;
            if (tab) {
                *tab = '\0';
                f[i] = tab + 1;
            }
        }
        if (f[2]) {
            char *tab = strchr(f[2], '\t');
            if (tab) *tab = '\0';
        }
        if (!*f[0] || !f[1] || !*f[1]) {
            rc = dp_set_error(DP_ERR_FORMAT, "%s:%zu: expected 'path<TAB>class[<TAB>instance]'",
                              tsv_path, lineno);
            goto fail;
        }
        if (g_hash_table_contains(l->by_path, f[0])) {
            rc = dp_set_error(DP_ERR_FORMAT, "%s:%zu: path '%s' listed twice", tsv_path, lineno,
                              f[0]);
            goto fail;
        }
        lrow *r = &l->rows[l->n++];
        r->path = f[0];
        r->cls = f[1];
        r->inst = f[2] ? f[2] : "";
        g_hash_table_insert(l->by_path, (gpointer)r->path, r);
    }
    if (!l->n) {
        rc = dp_set_error(DP_ERR_FORMAT, "%s: no rows", tsv_path);
        goto fail;
    }
    *out = l;
    return 0;
fail:
    dp_eval_labels_free(l);
    return rc;
}

/* ---- Parameters ---------------------------------------------------------- */

dp_eval_params dp_eval_default_params(void)
{
    dp_eval_params p = {0};
    return p;
}

int dp_eval_parse_metric(const char *name, dp_eval_params *params)
{
    if (!name) return dp_set_error(DP_ERR_INVALID, "metric: missing name");
    if (!strncmp(name, "minkowski:", 10)) {
        char *e;
        double pv = strtod(name + 10, &e);
        if (e == name + 10 || *e || !(pv > 0) || pv > 64)
            return dp_set_error(DP_ERR_INVALID, "metric '%s': p must be a number in (0, 64]", name);
        params->minkowski_p = pv;
        params->metric = DP_METRIC_DEFAULT;
        params->weighted_l2 = false;
        return 0;
    }
    if (!strcmp(name, "weighted-l2")) {
        params->weighted_l2 = true;
        params->metric = DP_METRIC_DEFAULT;
        params->minkowski_p = 0;
        return 0;
    }
    int m;
    if (dp_metric_parse(name, &m))
        return dp_set_error(DP_ERR_INVALID,
                            "unknown metric '%s' (l2, cosine, ip, l1, minkowski:P, weighted-l2)",
                            name);
    params->metric = m;
    params->minkowski_p = 0;
    params->weighted_l2 = false;
    return 0;
}

void dp_eval_report_free(dp_eval_report *r)
{
    if (!r) return;
    free(r->labels);
    free(r->confusions);
    free(r->database_paths);
    r->labels = NULL;
    r->confusions = NULL;
    r->database_paths = NULL;
}

/* ---- Evaluation ---------------------------------------------------------- */

typedef struct item {
    uint64_t id;
    const char *path;
    int cls, inst; /* inst -1: none */
} item;

typedef struct lab_stat {
    size_t n, members;
    double prec, top1;
} lab_stat;

/* splitmix64: a seeded stream that is the same on every platform and glib. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t rng_below(uint64_t *s, size_t n)
{
    return (size_t)(rng_next(s) % n); /* bias < n / 2^64: irrelevant here */
}

static void shuffle(item *a, size_t n, uint64_t *s)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below(s, i);
        item t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static int cmp_item_path(const void *a, const void *b)
{
    return strcmp(((const item *)a)->path, ((const item *)b)->path);
}

static int cmp_item_id(const void *a, const void *b)
{
    uint64_t x = ((const item *)a)->id, y = ((const item *)b)->id;
    return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_label_prec(const void *a, const void *b)
{
    const dp_eval_label *x = a, *y = b;
    if (x->precision != y->precision) return x->precision < y->precision ? -1 : 1;
    return strcmp(x->label, y->label);
}

static int cmp_conf(const void *a, const void *b)
{
    const dp_eval_confusion *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    int c = strcmp(x->from, y->from);
    return c ? c : strcmp(x->to, y->to);
}

typedef struct sample_class {
    const char *name;
    size_t start, n, quota;
    double rem;
} sample_class;

static int cmp_sc_name(const void *a, const void *b)
{
    return strcmp(((const sample_class *)a)->name, ((const sample_class *)b)->name);
}

static int cmp_sc_rem(const void *a, const void *b)
{
    const sample_class *x = a, *y = b;
    if (x->rem != y->rem) return x->rem > y->rem ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Keep a class-proportional sample of s items in a[0..s): quotas by the
 * largest-remainder method, members of each class by path, then shuffled. */
static int proportional_sample(item *a, size_t n, size_t s, const char *const *cls_names,
                               size_t ncls, uint64_t seed)
{
    sample_class *sc = calloc(ncls ? ncls : 1, sizeof *sc);
    item *tmp = malloc(n * sizeof *tmp);
    if (!sc || !tmp) {
        free(sc);
        free(tmp);
        return dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
    }
    /* Group by class (counting sort by class number). */
    for (size_t i = 0; i < n; i++)
        sc[a[i].cls].n++;
    size_t off = 0;
    for (size_t c = 0; c < ncls; c++) {
        sc[c].name = cls_names[c];
        sc[c].start = off;
        off += sc[c].n;
        sc[c].n = 0;
    }
    for (size_t i = 0; i < n; i++)
        tmp[sc[a[i].cls].start + sc[a[i].cls].n++] = a[i];
    size_t given = 0;
    for (size_t c = 0; c < ncls; c++) {
        double exact = (double)s * (double)sc[c].n / (double)n;
        sc[c].quota = (size_t)exact;
        sc[c].rem = exact - (double)sc[c].quota;
        given += sc[c].quota;
    }
    qsort(sc, ncls, sizeof *sc, cmp_sc_rem);
    for (size_t c = 0; given < s && c < ncls; c++, given++)
        sc[c].quota++;
    qsort(sc, ncls, sizeof *sc, cmp_sc_name);
    uint64_t st = seed ^ 0x5A17E5EEDull;
    size_t o = 0;
    for (size_t c = 0; c < ncls; c++) {
        item *m = tmp + sc[c].start;
        qsort(m, sc[c].n, sizeof *m, cmp_item_path);
        shuffle(m, sc[c].n, &st);
        memcpy(a + o, m, sc[c].quota * sizeof *a);
        o += sc[c].quota;
    }
    free(sc);
    free(tmp);
    return 0;
}

/* Database membership for the search filter: sorted ids, bsearch (called
 * from the search threads, so nothing mutable). */
typedef struct idset {
    const uint64_t *ids;
    size_t n;
} idset;

static int in_idset(uint64_t id, void *user)
{
    const idset *s = user;
    return bsearch(&id, s->ids, s->n, sizeof id, cmp_u64) != NULL;
}

typedef struct hit {
    float d;
    size_t i;
} hit;

static int hit_worse(const hit *a, const hit *b)
{
    return a->d > b->d || (a->d == b->d && a->i > b->i);
}

/* Max-heap on (distance, index): the root is the worst of the kept best. */
static void heap_down(hit *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && hit_worse(&h[l], &h[w])) w = l;
        if (r < n && hit_worse(&h[r], &h[w])) w = r;
        if (w == i) return;
        hit t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static int cmp_hit(const void *a, const void *b)
{
    return hit_worse(a, b) ? 1 : hit_worse(b, a) ? -1 : 0;
}

/* Brute-force Minkowski kNN of queries qi[0..m) among the database rows X
 * (ndb x dim), self excluded; results as database row numbers, -1 padded.
 * Distances are sum |x - q|^p: the p-th root does not change the order.
 * heaps holds kk hits per thread. */
static void minkowski_knn(const float *X, size_t ndb, size_t dim, const size_t *qi, size_t m,
                          double p, size_t kk, int nt, hit *heaps, int64_t *res)
{
    float pf = (float)p;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
    for (size_t a = 0; a < m; a++) {
        hit *h = heaps + (size_t)omp_get_thread_num() * kk;
        const float *q = X + qi[a] * dim;
        size_t nh = 0;
        for (size_t j = 0; j < ndb; j++) {
            if (j == qi[a]) continue;
            const float *x = X + j * dim;
            float s = 0;
            if (pf == 1.0f)
                for (size_t t = 0; t < dim; t++)
                    s += fabsf(x[t] - q[t]);
            else if (pf == 2.0f)
                for (size_t t = 0; t < dim; t++)
                    s += (x[t] - q[t]) * (x[t] - q[t]);
            else
                for (size_t t = 0; t < dim; t++)
                    s += powf(fabsf(x[t] - q[t]), pf);
            hit c = {s, j};
            if (nh < kk) {
                h[nh++] = c;
                if (nh == kk)
                    for (size_t z = kk / 2 + 1; z-- > 0;)
                        heap_down(h, kk, z);
            } else if (hit_worse(&h[0], &c)) {
                h[0] = c;
                heap_down(h, kk, 0);
            }
        }
        qsort(h, nh, sizeof *h, cmp_hit);
        for (size_t j = 0; j < kk; j++)
            res[a * kk + j] = j < nh ? (int64_t)h[j].i : -1;
    }
}

typedef struct path_idx {
    const char *path;
    size_t i;
} path_idx;

static int cmp_path_idx(const void *a, const void *b)
{
    return strcmp(((const path_idx *)a)->path, ((const path_idx *)b)->path);
}

static int cmp_item_key(const void *key, const void *it)
{
    uint64_t x = *(const uint64_t *)key, y = ((const item *)it)->id;
    return x < y ? -1 : x > y;
}

static int intern(GHashTable *h, GPtrArray *names, const char *s)
{
    gpointer v;
    if (g_hash_table_lookup_extended(h, s, NULL, &v)) return GPOINTER_TO_INT(v) - 1;
    int i = (int)names->len;
    g_ptr_array_add(names, (gpointer)s);
    g_hash_table_insert(h, (gpointer)s, GINT_TO_POINTER(i + 1));
    return i;
}

static int eval_weighted_l2(const dp_index *ix, const dp_eval_params *p, dp_eval_report *out);

int dp_eval_index(const dp_index *ix, const dp_eval_params *p, dp_eval_report *out)
{
    dp_eval_params defaults = dp_eval_default_params();
    if (!p) p = &defaults;
    memset(out, 0, sizeof *out);
    if (p->weighted_l2) return eval_weighted_l2(ix, p, out);
    double t0 = dp_now();
    size_t k = p->k ? p->k : 4;
    size_t n = dp_index_count(ix), dim = dp_index_dim(ix);
    const char *ipath = dp_index_path(ix);
    if (n < 2) return dp_set_error(DP_ERR_INVALID, "%s: needs at least 2 images", ipath);
    if (p->sample == 1) return dp_set_error(DP_ERR_INVALID, "%s: a sample needs 2 or more", ipath);

    GHashTable *cls_ids = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTable *inst_ids = g_hash_table_new(g_str_hash, g_str_equal);
    GPtrArray *cls_names = g_ptr_array_new(), *inst_names = g_ptr_array_new();
    GHashTable *conf = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    item *items = malloc(n * sizeof *items);
    size_t *qidx = NULL, *cls_db = NULL, *inst_db = NULL, *inst_start = NULL, *inst_mem = NULL;
    int64_t *res = NULL;
    uint64_t *dbids = NULL;
    float *Q = NULL, *X = NULL;
    hit *heaps = NULL;
    lab_stat *ls = NULL;
    int rc = 0;
    size_t cur = 0, ni = 0;
    dp_index_entry e;
    const char *first_path = NULL;
    if (!items) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
        goto done;
    }
    while ((rc = dp_index_next(ix, &cur, &e)) == 1) {
        const char *lab = e.label, *inst = "";
        if (!first_path) first_path = e.path;
        if (p->labels && dp_eval_labels_find(p->labels, e.path, &lab, &inst)) lab = NULL;
        if (!lab || !*lab) {
            out->n_unlabelled++;
            continue;
        }
        items[ni].id = e.id;
        items[ni].path = e.path ? e.path : "";
        items[ni].cls = intern(cls_ids, cls_names, lab);
        items[ni].inst = inst && *inst ? intern(inst_ids, inst_names, inst) : -1;
        ni++;
    }
    if (rc < 0) goto done;
    rc = 0;
    if (p->labels && ni == 0) {
        rc = dp_set_error(DP_ERR_NOT_FOUND,
                          "%s: no stored path is in the manifest (stored paths look like '%s'; "
                          "the manifest's must be relative to the same folder)",
                          ipath, first_path ? first_path : "");
        goto done;
    }
    if (ni < 2) {
        rc = dp_set_error(DP_ERR_INVALID, "%s: fewer than 2 labelled images", ipath);
        goto done;
    }
    size_t ncls = cls_names->len, ninst = inst_names->len;

    /* The database: everything labelled, or a class-proportional sample. */
    size_t ndb = ni;
    if (p->sample && p->sample < ni) {
        if ((rc = proportional_sample(items, ni, p->sample, (const char *const *)cls_names->pdata,
                                      ncls, p->seed)))
            goto done;
        ndb = p->sample;
    }
    /* Sorted by id: a result id maps back by bsearch, and the brute force's
     * tie-break on the row number is the index's tie-break on the id. */
    qsort(items, ndb, sizeof *items, cmp_item_id);

    cls_db = calloc(ncls, sizeof *cls_db);
    inst_db = calloc(ninst + 1, sizeof *inst_db);
    inst_start = calloc(ninst + 1, sizeof *inst_start);
    inst_mem = malloc(ndb * sizeof *inst_mem);
    ls = calloc(ncls, sizeof *ls);
    qidx = malloc(ndb * sizeof *qidx);
    if (!cls_db || !inst_db || !inst_start || !inst_mem || !ls || !qidx) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
        goto done;
    }
    size_t maxinst = 1;
    bool has_inst = false;
    for (size_t i = 0; i < ndb; i++) {
        cls_db[items[i].cls]++;
        if (items[i].inst >= 0) inst_db[items[i].inst]++;
    }
    /* Members of each instance (CSR), to count a query's same-instance,
     * same-class neighbours exactly. */
    for (size_t t = 0, o = 0; t < ninst; t++) {
        inst_start[t] = o;
        o += inst_db[t];
        if (inst_db[t] > maxinst) maxinst = inst_db[t];
        if (inst_db[t]) has_inst = true;
    }
    inst_start[ninst] = ndb;
    {
        size_t *fill = calloc(ninst + 1, sizeof *fill);
        if (!fill) {
            rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
            goto done;
        }
        for (size_t i = 0; i < ndb; i++)
            if (items[i].inst >= 0) inst_mem[inst_start[items[i].inst] + fill[items[i].inst]++] = i;
        free(fill);
    }

    /* Queries: the whole database or a seeded subsample of it. */
    size_t nq = ndb;
    for (size_t i = 0; i < ndb; i++)
        qidx[i] = i;
    if (p->queries && p->queries < ndb) {
        path_idx *pi = malloc(ndb * sizeof *pi);
        if (!pi) {
            rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
            goto done;
        }
        for (size_t i = 0; i < ndb; i++)
            pi[i] = (path_idx){items[i].path, i};
        qsort(pi, ndb, sizeof *pi, cmp_path_idx);
        for (size_t i = 0; i < ndb; i++)
            qidx[i] = pi[i].i;
        free(pi);
        uint64_t st = p->seed ^ 0xC0FFEE5EEDull;
        for (size_t i = 0; i < p->queries; i++) {
            size_t j = i + rng_below(&st, ndb - i);
            size_t t = qidx[i];
            qidx[i] = qidx[j];
            qidx[j] = t;
        }
        nq = p->queries;
    }

    size_t depth = MAP_DEPTH > k ? MAP_DEPTH : k;
    if (depth > ndb - 1) depth = ndb - 1;
    size_t kk = depth + (has_inst ? maxinst - 1 : 0);
    if (kk > ndb - 1) kk = ndb - 1;
    size_t nt = p->threads > 0 ? (size_t)p->threads : (size_t)omp_get_max_threads();
    res = malloc(BLOCK * kk * sizeof *res);
    if (!res) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
        goto done;
    }
    if (p->minkowski_p > 0) {
        size_t bytes;
        if (!dp_mul_ok(ndb, dim, &bytes) || !dp_mul_ok(bytes, sizeof(float), &bytes) ||
            !(X = malloc(bytes)) || !(heaps = malloc(nt * kk * sizeof *heaps))) {
            rc = dp_set_error(DP_ERR_NOMEM, "%s: cannot hold %zu x %zu vectors for Minkowski",
                              ipath, ndb, dim);
            goto done;
        }
        for (size_t i = 0; i < ndb; i++) {
            if ((rc = dp_index_get(ix, items[i].id, &e))) goto done;
            memcpy(X + i * dim, e.vector, dim * sizeof *X);
        }
        snprintf(out->metric, sizeof out->metric, "minkowski:%g", p->minkowski_p);
    } else {
        if (!(Q = malloc(BLOCK * dim * sizeof *Q))) {
            rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
            goto done;
        }
        const char *mn = dp_metric_name(p->metric ? p->metric : dp_index_metric(ix));
        snprintf(out->metric, sizeof out->metric, "%s", mn ? mn : "?");
    }
    dbids = malloc(ndb * sizeof *dbids);
    if (!dbids) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
        goto done;
    }
    for (size_t i = 0; i < ndb; i++)
        dbids[i] = items[i].id;
    idset db = {dbids, ndb};
    uint64_t excl[BLOCK];
    dp_search_params sp = dp_search_default_params();
    sp.k = kk;
    sp.threads = p->threads;
    sp.exclude_ids = excl;
    sp.metric = p->metric;
    if (ndb < n) { /* unlabelled entries or a sample: keep results inside */
        sp.filter = in_idset;
        sp.filter_user_data = &db;
    }

    double sum_prec = 0, sum_top1 = 0, sum_ap = 0;
    size_t r1 = 0, r5 = 0, niq = 0, no_rel = 0;
    for (size_t b = 0; b < nq; b += BLOCK) {
        size_t m = nq - b < BLOCK ? nq - b : BLOCK;
        if (X) {
            minkowski_knn(X, ndb, dim, qidx + b, m, p->minkowski_p, kk, (int)nt, heaps, res);
        } else {
            for (size_t i = 0; i < m; i++) {
                if ((rc = dp_index_get(ix, items[qidx[b + i]].id, &e))) break;
                memcpy(Q + i * dim, e.vector, dim * sizeof *Q);
                excl[i] = items[qidx[b + i]].id;
            }
            if (rc || (rc = dp_index_search(ix, Q, m, &sp, res, NULL))) goto done;
            for (size_t i = 0; i < m * kk; i++) {
                if (res[i] < 0) continue;
                uint64_t id = (uint64_t)res[i];
                const item *it = bsearch(&id, items, ndb, sizeof *items, cmp_item_key);
                res[i] = it ? (int64_t)(it - items) : -1;
            }
        }
        for (size_t i = 0; i < m; i++) {
            const item *q = &items[qidx[b + i]];
            int qc = q->cls, qi = q->inst;
            const int64_t *r = res + i * kk;
            if (qi >= 0 && inst_db[qi] >= 2) {
                niq++;
                for (size_t j = 0; j < kk && j < 5 && r[j] >= 0; j++)
                    if (items[r[j]].inst == qi) {
                        r1 += j == 0;
                        r5++;
                        break;
                    }
            }
            size_t rank = 0, hits_k = 0, hits = 0;
            double ap = 0;
            int first_lab = -1;
            for (size_t j = 0; j < kk && r[j] >= 0 && rank < depth; j++) {
                const item *it = &items[r[j]];
                if (qi >= 0 && it->inst == qi) continue; /* a free hit */
                if (rank == 0) first_lab = it->cls;
                if (it->cls == qc) {
                    hits++;
                    if (rank < k) hits_k++;
                    ap += (double)hits / (double)(rank + 1);
                }
                rank++;
            }
            size_t relevant = cls_db[qc] - 1;
            if (qi >= 0)
                for (size_t t = inst_start[qi]; t < inst_start[qi + 1]; t++)
                    if (&items[inst_mem[t]] != q && items[inst_mem[t]].cls == qc) relevant--;
            if (!relevant) no_rel++;
            size_t denom = relevant < depth ? relevant : depth;
            double prec = (double)hits_k / (double)k;
            double top1 = first_lab == qc;
            sum_prec += prec;
            sum_top1 += top1;
            sum_ap += denom ? ap / (double)denom : 0;
            ls[qc].n++;
            ls[qc].prec += prec;
            ls[qc].top1 += top1;
            if (!top1 && first_lab >= 0) {
                char *key = g_strdup_printf("%d\t%d", qc, first_lab);
                gpointer old = g_hash_table_lookup(conf, key);
                g_hash_table_replace(conf, key, GSIZE_TO_POINTER(GPOINTER_TO_SIZE(old) + 1));
            }
        }
    }
    out->n_queries = nq;
    out->n_database = ndb;
    if (p->list_database) {
        path_idx *pi = malloc(ndb * sizeof *pi);
        out->database_paths = malloc(ndb * sizeof *out->database_paths);
        if (!pi || !out->database_paths) {
            free(pi);
            rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
            goto done;
        }
        for (size_t i = 0; i < ndb; i++)
            pi[i] = (path_idx){items[i].path, i};
        qsort(pi, ndb, sizeof *pi, cmp_path_idx);
        for (size_t i = 0; i < ndb; i++)
            out->database_paths[i] = pi[i].path;
        free(pi);
    }
    out->k = k;
    out->precision_at_k = sum_prec / (double)nq;
    out->top1 = sum_top1 / (double)nq;
    out->map100 = sum_ap / (double)nq;
    out->n_no_relevant = no_rel;
    out->has_instances = has_inst;
    out->instances_skipped = has_inst;
    out->n_instance_queries = niq;
    out->instance_recall1 = niq ? (double)r1 / (double)niq : 0;
    out->instance_recall5 = niq ? (double)r5 / (double)niq : 0;

    /* Per label, worst first; label strings point into the index/labels. */
    out->labels = calloc(ncls, sizeof *out->labels);
    if (!out->labels) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
        goto done;
    }
    for (size_t l = 0; l < ncls; l++) {
        if (!ls[l].n) continue;
        dp_eval_label *o = &out->labels[out->n_labels++];
        o->label = g_ptr_array_index(cls_names, l);
        o->n = ls[l].n;
        o->precision = ls[l].prec / (double)ls[l].n;
        o->top1 = ls[l].top1 / (double)ls[l].n;
    }
    qsort(out->labels, out->n_labels, sizeof *out->labels, cmp_label_prec);

    size_t nc = g_hash_table_size(conf);
    dp_eval_confusion *all = calloc(nc ? nc : 1, sizeof *all);
    if (!all) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
        goto done;
    }
    GHashTableIter it;
    gpointer key, val;
    size_t ci = 0;
    g_hash_table_iter_init(&it, conf);
    while (g_hash_table_iter_next(&it, &key, &val)) {
        int a, b2;
        sscanf(key, "%d\t%d", &a, &b2);
        all[ci].from = g_ptr_array_index(cls_names, a);
        all[ci].to = g_ptr_array_index(cls_names, b2);
        all[ci++].count = GPOINTER_TO_SIZE(val);
    }
    qsort(all, nc, sizeof *all, cmp_conf);
    out->confusions = all;
    out->n_confusions = nc < 20 ? nc : 20;
    out->seconds = dp_now() - t0;

done:
    if (rc) dp_eval_report_free(out);
    g_hash_table_destroy(cls_ids);
    g_hash_table_destroy(inst_ids);
    g_hash_table_destroy(conf);
    g_ptr_array_free(cls_names, TRUE);
    g_ptr_array_free(inst_names, TRUE);
    free(items);
    free(qidx);
    free(cls_db);
    free(inst_db);
    free(inst_start);
    free(inst_mem);
    free(res);
    free(dbids);
    free(Q);
    free(X);
    free(heaps);
    free(ls);
    return rc;
}

/* ---- Derived vectors: weighted l2 and the PCA sweep ------------------------ */

/* Every live vector in storage order (n x dim), malloc'd. */
static int live_vectors(const dp_index *ix, float **out)
{
    size_t n = dp_index_count(ix), dim = dp_index_dim(ix), bytes;
    float *X = NULL;
    if (!dp_mul_ok(n ? n : 1, dim * sizeof(float), &bytes) || !(X = malloc(bytes)))
        return dp_set_error(DP_ERR_NOMEM, "%s: out of memory for %zu x %zu vectors",
                            dp_index_path(ix), n, dim);
    size_t cur = 0, i = 0;
    dp_index_entry e;
    int rc;
    while ((rc = dp_index_next(ix, &cur, &e)) == 1 && i < n)
        memcpy(X + i++ * dim, e.vector, dim * sizeof *X);
    if (rc < 0) {
        free(X);
        return rc;
    }
    *out = X;
    return 0;
}

/* An in-memory index (never committed) with ix's live entries and the
 * vectors V (live rows in storage order, dim each). Ids are assigned in
 * storage order, so they keep the order of ix's ids and with it the
 * tie-breaks and the samples (which depend on paths only). */
static int make_view(const dp_index *ix, const float *V, size_t dim, int metric, bool normalized,
                     dp_index **out)
{
    dp_index_create_params cp = dp_index_default_create_params();
    cp.dim = (uint32_t)dim;
    cp.metric = metric;
    cp.normalized = normalized;
    cp.model_name = dp_index_model_name(ix);
    dp_index *v = NULL;
    int rc = dp_index_create(dp_index_path(ix), &cp, &v);
    if (rc) return rc;
    size_t cur = 0, i = 0;
    dp_index_entry e;
    while ((rc = dp_index_next(ix, &cur, &e)) == 1) {
        e.vector = V + i++ * dim;
        if ((rc = dp_index_add(v, &e, 1, NULL))) break;
    }
    if (rc < 0) {
        dp_index_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* A report computed on a view points into the view's strings: point it
 * into ix's (or the manifest's, which need no change) before the view goes. */
static int remap_report(const dp_index *ix, const dp_eval_params *p, dp_eval_report *r)
{
    if (r->database_paths)
        for (size_t i = 0; i < r->n_database; i++) {
            dp_index_entry e;
            if (dp_index_find_path(ix, r->database_paths[i], &e))
                return dp_set_error(DP_ERR_NOT_FOUND, "%s: path vanished", dp_index_path(ix));
            r->database_paths[i] = e.path;
        }
    if (p->labels) return 0;
    GHashTable *h = g_hash_table_new(g_str_hash, g_str_equal);
    size_t cur = 0;
    dp_index_entry e;
    while (dp_index_next(ix, &cur, &e) == 1)
        if (e.label && *e.label) g_hash_table_insert(h, (gpointer)e.label, (gpointer)e.label);
    int rc = 0;
    for (size_t i = 0; i < r->n_labels && !rc; i++)
        if (!(r->labels[i].label = g_hash_table_lookup(h, r->labels[i].label))) rc = -1;
    /* All confusions, not only the first n_confusions: they are one array. */
    for (size_t i = 0; i < r->n_confusions && !rc; i++) {
        r->confusions[i].from = g_hash_table_lookup(h, r->confusions[i].from);
        r->confusions[i].to = g_hash_table_lookup(h, r->confusions[i].to);
        if (!r->confusions[i].from || !r->confusions[i].to) rc = -1;
    }
    g_hash_table_destroy(h);
    return rc ? dp_set_error(DP_ERR_NOT_FOUND, "%s: a label vanished", dp_index_path(ix)) : 0;
}

static int eval_weighted_l2(const dp_index *ix, const dp_eval_params *p, dp_eval_report *out)
{
    const char *ipath = dp_index_path(ix);
    dp_pca *pca = NULL;
    int rc = dp_index_pca(ix, &pca);
    if (rc == DP_ERR_NOT_FOUND)
        return dp_set_error(DP_ERR_NOT_FOUND,
                            "weighted-l2 weighs each axis by PCA's explained variance, and %s has "
                            "no PCA: run doppel pca %s --dims N first",
                            ipath, ipath);
    if (rc) return rc;
    dp_pca_info pi;
    dp_pca_describe(pca, &pi);
    size_t n = dp_index_count(ix), dim = dp_index_dim(ix);
    /* Relative to the first (largest) axis: a scale does not change the
     * ranking, and equal variances then give weights of exactly 1. */
    double wsum = pi.variance[0];
    float *X = NULL, *sw = malloc(dim * sizeof *sw);
    dp_index *view = NULL;
    if (!sw) rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
    if (!rc && !(wsum > 0))
        rc = dp_set_error(DP_ERR_INVALID, "%s: the PCA's axes hold no variance", ipath);
    if (!rc) rc = live_vectors(ix, &X);
    if (rc) goto done;
    for (size_t c = 0; c < dim; c++)
        sw[c] = (float)sqrt(pi.variance[c] / wsum);
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < dim; c++)
            X[i * dim + c] *= sw[c];
    if ((rc = make_view(ix, X, dim, DP_METRIC_L2, false, &view))) goto done;
    dp_eval_params q = *p;
    q.weighted_l2 = false;
    q.metric = DP_METRIC_L2;
    q.minkowski_p = 0;
    if ((rc = dp_eval_index(view, &q, out))) goto done;
    if ((rc = remap_report(ix, p, out))) {
        dp_eval_report_free(out);
        goto done;
    }
    snprintf(out->metric, sizeof out->metric, "weighted-l2");
done:
    dp_index_free(view);
    dp_pca_free(pca);
    free(X);
    free(sw);
    return rc;
}

int dp_eval_pca_sweep(const dp_index *ix, const dp_eval_params *p, const size_t *dims,
                      size_t n_dims, int repeats, dp_eval_sweep_row *rows)
{
    dp_eval_params defaults = dp_eval_default_params();
    if (!p) p = &defaults;
    const char *ipath = dp_index_path(ix);
    size_t n = dp_index_count(ix), D = dp_index_dim(ix), maxd = 0;
    if (n < 2) return dp_set_error(DP_ERR_INVALID, "%s: needs at least 2 images", ipath);
    if (repeats < 1) repeats = 1;
    memset(rows, 0, n_dims * sizeof *rows);
    for (size_t i = 0; i < n_dims; i++) {
        rows[i].dims = dims[i];
        rows[i].skipped = dims[i] > D || (dims[i] && D > DP_PCA_MAX_DIM);
        if (!rows[i].skipped && dims[i] > maxd) maxd = dims[i];
    }
    float *X = NULL, *Y = NULL, *V = NULL;
    int64_t *ids = NULL;
    dp_pca *pca = NULL;
    dp_pca_info pi = {0};
    size_t k = (p->k ? p->k : 4) + 1;
    if (k > n) k = n;
    int rc = live_vectors(ix, &X);
    if (rc) goto done;
    if (maxd) {
        dp_pca_params pp = dp_pca_default_params();
        pp.dims = maxd;
        if ((rc = dp_pca_fit(X, n, D, &pp, &pca))) goto done;
        dp_pca_describe(pca, &pi);
        if (!(Y = malloc(n * maxd * sizeof *Y)) || !(V = malloc(n * maxd * sizeof *V))) {
            rc = dp_set_error(DP_ERR_NOMEM, "%s: out of memory for the projections", ipath);
            goto done;
        }
        if ((rc = dp_pca_project(pca, X, n, Y))) goto done;
    }
    if (!(ids = malloc(n * k * sizeof *ids))) {
        rc = dp_set_error(DP_ERR_NOMEM, "%s: out of memory", ipath);
        goto done;
    }
    for (size_t r = 0; r < n_dims; r++) {
        dp_eval_sweep_row *row = &rows[r];
        if (row->skipped) continue;
        size_t d = row->dims ? row->dims : D;
        const float *src = X;
        if (row->dims) {
            for (size_t i = 0; i < n; i++) {
                float *v = V + i * d;
                memcpy(v, Y + i * maxd, d * sizeof *v);
                if (dp_index_normalized(ix) && !p->sweep_raw) {
                    double s = 0;
                    for (size_t j = 0; j < d; j++)
                        s += (double)v[j] * v[j];
                    if (s > 0)
                        for (size_t j = 0; j < d; j++)
                            v[j] = (float)(v[j] / sqrt(s));
                }
            }
            src = V;
            double kept = 0;
            for (size_t c = 0; c < d; c++)
                kept += pi.variance[c];
            row->variance = pi.total_variance > 0 ? kept / pi.total_variance : 0;
        } else {
            row->variance = 1;
        }
        dp_index *view = NULL;
        bool raw = p->sweep_raw && row->dims;
        if ((rc = make_view(ix, src, d, raw ? DP_METRIC_L2 : dp_index_metric(ix),
                            !raw && dp_index_normalized(ix), &view)))
            goto done;
        dp_eval_report rep;
        dp_eval_params q = *p;
        q.list_database = false;
        if (raw && (q.metric == DP_METRIC_COSINE || q.metric == DP_METRIC_IP))
            q.metric = DP_METRIC_L2;
        rc = dp_eval_index(view, &q, &rep);
        if (!rc) {
            row->precision_at_k = rep.precision_at_k;
            row->top1 = rep.top1;
            row->map100 = rep.map100;
            row->has_instances = rep.has_instances;
            row->instance_recall1 = rep.instance_recall1;
            dp_eval_report_free(&rep);
            dp_search_params sp = dp_search_default_params();
            sp.k = k;
            sp.threads = p->threads;
            sp.metric = q.metric;
            double best = INFINITY;
            for (int t = 0; t < repeats && !rc; t++) {
                double t0 = dp_now();
                rc = dp_index_search(view, src, n, &sp, ids, NULL);
                double el = dp_now() - t0;
                if (el < best) best = el;
            }
            row->search_seconds = best;
            row->n_queries_timed = n;
            row->vector_bytes = (uint64_t)n * d * sizeof(float);
        }
        dp_index_free(view);
        if (rc) goto done;
    }
done:
    dp_pca_free(pca);
    free(X);
    free(Y);
    free(V);
    free(ids);
    return rc;
}
