/* Embedding quality from an index's own labels (see include/doppel/eval.h).
 *
 * Labels are interned to small integers once, so scoring a neighbour is an
 * int compare; queries go through dp_index_search in blocks so the GEMM path
 * does the distance work and memory stays bounded whatever the index size. */
#include "doppel/eval.h"
#include "util/util.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAP_DEPTH 100
#define BLOCK 256

dp_eval_params dp_eval_default_params(void)
{
    dp_eval_params p = {0};
    return p;
}

void dp_eval_report_free(dp_eval_report *r)
{
    if (!r) return;
    free(r->labels);
    free(r->confusions);
    r->labels = NULL;
    r->confusions = NULL;
}

typedef struct lab_stat {
    size_t n, members;
    double prec, top1;
} lab_stat;

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

int dp_eval_index(const dp_index *ix, const dp_eval_params *p, dp_eval_report *out)
{
    dp_eval_params defaults = dp_eval_default_params();
    if (!p) p = &defaults;
    memset(out, 0, sizeof *out);
    double t0 = dp_now();
    size_t k = p->k ? p->k : 4;
    size_t n = dp_index_count(ix), dim = dp_index_dim(ix);
    if (n < 2) return dp_set_error(DP_ERR_INVALID, "%s: needs at least 2 images", dp_index_path(ix));

    /* Intern labels; map ids to label numbers. */
    GHashTable *lab_ids = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTable *id_lab = g_hash_table_new(g_int64_hash, g_int64_equal);
    GPtrArray *lab_names = g_ptr_array_new();
    uint64_t *qids = malloc(n * sizeof *qids);
    int64_t *keys = malloc(n * sizeof *keys);
    int *qlab = malloc(n * sizeof *qlab);
    float *Q = NULL, *dist = NULL;
    int64_t *res = NULL;
    lab_stat *ls = NULL;
    GHashTable *conf = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    int rc = 0;
    size_t nq = 0, cur = 0;
    dp_index_entry e;
    if (!qids || !keys || !qlab) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
        goto done;
    }
    size_t ni = 0;
    while ((rc = dp_index_next(ix, &cur, &e)) == 1) {
        if (!e.label || !*e.label) continue;
        gpointer v;
        int li;
        if (g_hash_table_lookup_extended(lab_ids, e.label, NULL, &v)) {
            li = GPOINTER_TO_INT(v);
        } else {
            li = (int)lab_names->len;
            g_ptr_array_add(lab_names, (gpointer)e.label);
            g_hash_table_insert(lab_ids, (gpointer)e.label, GINT_TO_POINTER(li));
        }
        keys[ni] = (int64_t)e.id;
        g_hash_table_insert(id_lab, &keys[ni], GINT_TO_POINTER(li + 1));
        qids[ni] = e.id;
        qlab[ni] = li;
        ni++;
    }
    if (rc < 0) goto done;
    rc = 0;
    if (ni < 2) {
        rc = dp_set_error(DP_ERR_INVALID, "%s: fewer than 2 labelled images", dp_index_path(ix));
        goto done;
    }
    size_t nl = lab_names->len;
    ls = calloc(nl, sizeof *ls);
    if (!ls) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
        goto done;
    }
    for (size_t i = 0; i < ni; i++) ls[qlab[i]].members++;

    /* Optional deterministic sample of the queries (partial Fisher-Yates). */
    nq = ni;
    if (p->queries && p->queries < ni) {
        GRand *r = g_rand_new_with_seed((guint32)(p->seed ^ (p->seed >> 32)));
        for (size_t i = 0; i < p->queries; i++) {
            size_t j = i + (size_t)g_rand_int_range(r, 0, (gint32)(ni - i));
            uint64_t t = qids[i];
            qids[i] = qids[j];
            qids[j] = t;
            int tl = qlab[i];
            qlab[i] = qlab[j];
            qlab[j] = tl;
        }
        g_rand_free(r);
        nq = p->queries;
    }

    size_t depth = MAP_DEPTH > k ? MAP_DEPTH : k;
    if (depth > ni - 1) depth = ni - 1;
    size_t kk = depth;
    Q = malloc(BLOCK * dim * sizeof *Q);
    res = malloc(BLOCK * kk * sizeof *res);
    dist = malloc(BLOCK * kk * sizeof *dist);
    uint64_t excl[BLOCK];
    if (!Q || !res || !dist) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
        goto done;
    }
    dp_search_params sp = dp_search_default_params();
    sp.k = kk;
    sp.threads = p->threads;
    sp.exclude_ids = excl;
    double sum_prec = 0, sum_top1 = 0, sum_ap = 0;
    for (size_t b = 0; b < nq; b += BLOCK) {
        size_t m = nq - b < BLOCK ? nq - b : BLOCK;
        for (size_t i = 0; i < m; i++) {
            if ((rc = dp_index_get(ix, qids[b + i], &e))) goto done;
            memcpy(Q + i * dim, e.vector, dim * sizeof *Q);
            excl[i] = qids[b + i];
        }
        if ((rc = dp_index_search(ix, Q, m, &sp, res, dist))) goto done;
        for (size_t i = 0; i < m; i++) {
            int ql = qlab[b + i];
            const int64_t *r = res + i * kk;
            size_t hits_k = 0, hits = 0;
            double ap = 0;
            int first_lab = -1;
            for (size_t j = 0; j < kk && r[j] >= 0; j++) {
                int64_t id = r[j];
                int lab = GPOINTER_TO_INT(g_hash_table_lookup(id_lab, &id)) - 1;
                if (j == 0) first_lab = lab;
                if (lab == ql) {
                    hits++;
                    if (j < k) hits_k++;
                    ap += (double)hits / (double)(j + 1);
                }
            }
            size_t relevant = ls[ql].members - 1;
            size_t denom = relevant < kk ? relevant : kk;
            double prec = (double)hits_k / (double)k;
            double top1 = first_lab == ql;
            sum_prec += prec;
            sum_top1 += top1;
            sum_ap += denom ? ap / (double)denom : 0;
            ls[ql].n++;
            ls[ql].prec += prec;
            ls[ql].top1 += top1;
            if (!top1 && first_lab >= 0) {
                char *key = g_strdup_printf("%d\t%d", ql, first_lab);
                gpointer old = g_hash_table_lookup(conf, key);
                g_hash_table_replace(conf, key, GSIZE_TO_POINTER(GPOINTER_TO_SIZE(old) + 1));
            }
        }
    }
    out->n_queries = nq;
    out->k = k;
    out->precision_at_k = sum_prec / (double)nq;
    out->top1 = sum_top1 / (double)nq;
    out->map100 = sum_ap / (double)nq;

    /* Per label, worst first; label strings point into the index. */
    out->labels = calloc(nl, sizeof *out->labels);
    if (!out->labels) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_eval_index: out of memory");
        goto done;
    }
    for (size_t l = 0; l < nl; l++) {
        if (!ls[l].n) continue;
        dp_eval_label *o = &out->labels[out->n_labels++];
        o->label = g_ptr_array_index(lab_names, l);
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
        all[ci].from = g_ptr_array_index(lab_names, a);
        all[ci].to = g_ptr_array_index(lab_names, b2);
        all[ci++].count = GPOINTER_TO_SIZE(val);
    }
    qsort(all, nc, sizeof *all, cmp_conf);
    out->confusions = all;
    out->n_confusions = nc < 20 ? nc : 20;
    out->seconds = dp_now() - t0;

done:
    if (rc) dp_eval_report_free(out);
    g_hash_table_destroy(lab_ids);
    g_hash_table_destroy(id_lab);
    g_hash_table_destroy(conf);
    g_ptr_array_free(lab_names, TRUE);
    free(qids);
    free(keys);
    free(qlab);
    free(Q);
    free(res);
    free(dist);
    free(ls);
    return rc;
}
