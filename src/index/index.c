/* The index file: loading (every bound checked before use), the writer
 * (append-only commits and full compactions) and the entry/metadata API.
 * The layout is in index_internal.h and docs/index-format.md. */
#include "index_internal.h"

#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_STRING 65535u /* a path or label */
#define MAX_SEGMENTS 64   /* compact beyond this many appended segments */
#define MAX_FAILURES 10000000u

static const char *const sec_names[] = {"?",       "vectors", "ids",      "entries",
                                        "strings", "deleted", "failures", "named"};

static const char *sec_name(uint32_t kind)
{
    return kind < sizeof sec_names / sizeof sec_names[0] ? sec_names[kind] : "unknown";
}

/* The stored name of a named section whose head was validated at load. */
static const char *sec_label(const uint8_t *base, const dpx_sec *s)
{
    if (s->kind == DPX_SEC_NAMED && base) return (const char *)(base + s->offset);
    return sec_name(s->kind);
}

static uint64_t align_up(uint64_t x)
{
    return (x + DPX_ALIGN - 1) & ~(uint64_t)(DPX_ALIGN - 1);
}

/* ---- metrics, defaults ---------------------------------------------------- */

const char *dp_metric_name(int metric)
{
    switch (metric) {
    case DP_METRIC_L2:
        return "l2";
    case DP_METRIC_IP:
        return "ip";
    case DP_METRIC_COSINE:
        return "cosine";
    case DP_METRIC_L1:
        return "l1";
    default:
        return NULL;
    }
}

int dp_metric_parse(const char *name, int *metric)
{
    for (int m = DP_METRIC_L2; m <= DP_METRIC_L1; m++)
        if (name && !strcmp(name, dp_metric_name(m))) {
            *metric = m;
            return 0;
        }
    return dp_set_error(DP_ERR_INVALID, "unknown metric '%s' (expected l2, ip, cosine or l1)",
                        name ? name : "(null)");
}

dp_index_create_params dp_index_default_create_params(void)
{
    return (dp_index_create_params){.metric = DP_METRIC_L2, .normalized = true};
}

dp_index_open_params dp_index_default_open_params(void)
{
    return (dp_index_open_params){0};
}

/* ---- metadata ------------------------------------------------------------- */

static dpx_meta *meta_find(const dp_index *ix, const char *key)
{
    for (size_t i = 0; i < ix->n_meta; i++)
        if (!strcmp(ix->meta[i].key, key)) return &ix->meta[i];
    return NULL;
}

static int meta_put(dp_index *ix, const char *key, int type, const char *s, int64_t i, double f)
{
    size_t kl = strlen(key);
    if (kl == 0 || kl > DPX_MAX_KEY)
        return dp_set_error(DP_ERR_INVALID, "metadata key must be 1..%u bytes", DPX_MAX_KEY);
    if (type == DP_META_STR && strlen(s) > (1u << 24))
        return dp_set_error(DP_ERR_INVALID, "metadata value for '%s' is above 16 MiB", key);
    char *sv = NULL;
    if (type == DP_META_STR && !(sv = strdup(s)))
        return dp_set_error(DP_ERR_NOMEM, "out of memory");
    dpx_meta *m = meta_find(ix, key);
    if (!m) {
        dpx_meta *nm = realloc(ix->meta, (ix->n_meta + 1) * sizeof *nm);
        char *k = strdup(key);
        if (!nm || !k) {
            if (nm) ix->meta = nm;
            free(k);
            free(sv);
            return dp_set_error(DP_ERR_NOMEM, "out of memory");
        }
        ix->meta = nm;
        m = &ix->meta[ix->n_meta++];
        memset(m, 0, sizeof *m);
        m->key = k;
    }
    free(m->s);
    m->type = type;
    m->s = sv;
    m->i = i;
    m->f = f;
    ix->dirty = true;
    return 0;
}

static int user_key_ok(const char *key)
{
    if (!key) return dp_set_error(DP_ERR_INVALID, "metadata key is NULL");
    if (!strncmp(key, "doppel.", 7))
        return dp_set_error(DP_ERR_INVALID, "metadata key '%s' is reserved", key);
    return 0;
}

int dp_index_set_meta_str(dp_index *ix, const char *key, const char *value)
{
    if (!value) return dp_set_error(DP_ERR_INVALID, "metadata value is NULL");
    int rc = user_key_ok(key);
    return rc ? rc : meta_put(ix, key, DP_META_STR, value, 0, 0);
}

int dp_index_set_meta_i64(dp_index *ix, const char *key, int64_t value)
{
    int rc = user_key_ok(key);
    return rc ? rc : meta_put(ix, key, DP_META_I64, NULL, value, 0);
}

int dp_index_set_meta_f64(dp_index *ix, const char *key, double value)
{
    int rc = user_key_ok(key);
    return rc ? rc : meta_put(ix, key, DP_META_F64, NULL, 0, value);
}

static int meta_get(const dp_index *ix, const char *key, int type, const dpx_meta **out)
{
    const dpx_meta *m = key ? meta_find(ix, key) : NULL;
    if (!m) return dp_set_error(DP_ERR_NOT_FOUND, "no metadata key '%s'", key ? key : "(null)");
    if (m->type != type)
        return dp_set_error(DP_ERR_MISMATCH, "metadata '%s' has another type", key);
    *out = m;
    return 0;
}

int dp_index_get_meta_str(const dp_index *ix, const char *key, const char **value)
{
    const dpx_meta *m = NULL;
    int rc = meta_get(ix, key, DP_META_STR, &m);
    if (!rc) *value = m->s;
    return rc;
}

int dp_index_get_meta_i64(const dp_index *ix, const char *key, int64_t *value)
{
    const dpx_meta *m = NULL;
    int rc = meta_get(ix, key, DP_META_I64, &m);
    if (!rc) *value = m->i;
    return rc;
}

int dp_index_get_meta_f64(const dp_index *ix, const char *key, double *value)
{
    const dpx_meta *m = NULL;
    int rc = meta_get(ix, key, DP_META_F64, &m);
    if (!rc) *value = m->f;
    return rc;
}

size_t dp_index_meta_count(const dp_index *ix)
{
    return ix->n_meta;
}

int dp_index_meta_at(const dp_index *ix, size_t i, const char **key, int *type)
{
    if (i >= ix->n_meta) return dp_set_error(DP_ERR_NOT_FOUND, "metadata index %zu", i);
    *key = ix->meta[i].key;
    *type = ix->meta[i].type;
    return 0;
}

static const char *meta_str_or_empty(const dp_index *ix, const char *key)
{
    const dpx_meta *m = meta_find(ix, key);
    return m && m->type == DP_META_STR ? m->s : "";
}

const char *dp_index_model_name(const dp_index *ix)
{
    return meta_str_or_empty(ix, "doppel.model.name");
}

const char *dp_index_model_fingerprint(const dp_index *ix)
{
    return meta_str_or_empty(ix, "doppel.model.fingerprint");
}

int dp_index_set_model(dp_index *ix, const char *name, const char *fingerprint)
{
    if (ix->live)
        return dp_set_error(DP_ERR_INVALID,
                            "%s: cannot change the model of an index that holds entries", ix->path);
    int rc = meta_put(ix, "doppel.model.name", DP_META_STR, name ? name : "", 0, 0);
    if (!rc)
        rc = meta_put(ix, "doppel.model.fingerprint", DP_META_STR, fingerprint ? fingerprint : "",
                      0, 0);
    return rc;
}

/* ---- failures ------------------------------------------------------------- */

static void failures_clear(dp_index *ix)
{
    for (size_t i = 0; i < ix->n_fail; i++) {
        free(ix->fail_path[i]);
        free(ix->fail_reason[i]);
    }
    DP_FREE(ix->fail_path);
    DP_FREE(ix->fail_reason);
    ix->n_fail = 0;
}

int dp_index_set_failures(dp_index *ix, const char *const *paths, const char *const *reasons,
                          size_t n)
{
    if (n > MAX_FAILURES) return dp_set_error(DP_ERR_INVALID, "too many failures (%zu)", n);
    char **p = calloc(n ? n : 1, sizeof *p), **r = calloc(n ? n : 1, sizeof *r);
    if (!p || !r) goto nomem;
    for (size_t i = 0; i < n; i++) {
        const char *a = paths[i] ? paths[i] : "", *b = reasons[i] ? reasons[i] : "";
        if (strlen(a) > MAX_STRING || strlen(b) > MAX_STRING) {
            for (size_t j = 0; j < i; j++) {
                free(p[j]);
                free(r[j]);
            }
            free(p);
            free(r);
            return dp_set_error(DP_ERR_INVALID, "failure %zu: path or reason above %u bytes", i,
                                MAX_STRING);
        }
        p[i] = strdup(a);
        r[i] = strdup(b);
        if (!p[i] || !r[i]) {
            for (size_t j = 0; j <= i; j++) {
                free(p[j]);
                free(r[j]);
            }
            goto nomem;
        }
    }
    failures_clear(ix);
    ix->fail_path = p;
    ix->fail_reason = r;
    ix->n_fail = n;
    ix->fail_dirty = true;
    ix->dirty = true;
    return 0;
nomem:
    free(p);
    free(r);
    return dp_set_error(DP_ERR_NOMEM, "out of memory");
}

size_t dp_index_failure_count(const dp_index *ix)
{
    return ix->n_fail;
}

int dp_index_failure_at(const dp_index *ix, size_t i, const char **path, const char **reason)
{
    if (i >= ix->n_fail) return dp_set_error(DP_ERR_NOT_FOUND, "failure index %zu", i);
    *path = ix->fail_path[i];
    *reason = ix->fail_reason[i];
    return 0;
}

/* ---- id map, liveness ----------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static bool idmap_find(const dp_index *ix, uint64_t id, size_t *row)
{
    if (!ix->id_cap) return false;
    size_t mask = ix->id_cap - 1;
    for (size_t h = mix64(id) & mask;; h = (h + 1) & mask) {
        if (!ix->id_rows[h]) return false;
        if (ix->id_keys[h] == id) {
            *row = (size_t)(ix->id_rows[h] - 1);
            return true;
        }
    }
}

bool dpx_find_row(const dp_index *ix, uint64_t id, size_t *row)
{
    return idmap_find(ix, id, row);
}

/* Insert; returns 1 if id was already there. Needs a free slot. */
static int idmap_put(dp_index *ix, uint64_t id, size_t row)
{
    size_t mask = ix->id_cap - 1;
    for (size_t h = mix64(id) & mask;; h = (h + 1) & mask) {
        if (!ix->id_rows[h]) {
            ix->id_keys[h] = id;
            ix->id_rows[h] = (uint64_t)row + 1;
            return 0;
        }
        if (ix->id_keys[h] == id) return 1;
    }
}

/* Make room for `want` ids at a load factor of at most 1/2. */
static int idmap_reserve(dp_index *ix, size_t want)
{
    size_t need;
    if (!dp_mul_ok(want, 2, &need)) return dp_set_error(DP_ERR_NOMEM, "too many ids");
    if (need <= ix->id_cap) return 0;
    size_t cap = ix->id_cap ? ix->id_cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 4) return dp_set_error(DP_ERR_NOMEM, "too many ids");
        cap *= 2;
    }
    uint64_t *k = calloc(cap, sizeof *k), *r = calloc(cap, sizeof *r);
    if (!k || !r) {
        free(k);
        free(r);
        return dp_set_error(DP_ERR_NOMEM, "out of memory for an id map of %zu slots", cap);
    }
    uint64_t *ok = ix->id_keys, *orow = ix->id_rows;
    size_t ocap = ix->id_cap;
    ix->id_keys = k;
    ix->id_rows = r;
    ix->id_cap = cap;
    for (size_t i = 0; i < ocap; i++)
        if (orow[i]) idmap_put(ix, ok[i], (size_t)(orow[i] - 1));
    free(ok);
    free(orow);
    return 0;
}

static int dead_reserve(dp_index *ix, size_t rows)
{
    size_t bytes = rows / 8 + 1;
    if (bytes <= ix->dead_cap) return 0;
    size_t cap = ix->dead_cap ? ix->dead_cap : 64;
    while (cap < bytes)
        cap *= 2;
    uint8_t *d = realloc(ix->dead, cap);
    if (!d) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    memset(d + ix->dead_cap, 0, cap - ix->dead_cap);
    ix->dead = d;
    ix->dead_cap = cap;
    return 0;
}

const dpx_seg *dpx_seg_of(const dp_index *ix, size_t row, size_t *local)
{
    size_t lo = 0, hi = ix->n_seg;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (ix->segs[mid].row0 <= row)
            lo = mid;
        else
            hi = mid;
    }
    *local = row - ix->segs[lo].row0;
    return &ix->segs[lo];
}

/* ---- entries -------------------------------------------------------------- */

static int str_at(const dp_index *ix, const dpx_seg *s, uint64_t off, uint32_t len,
                  const char **out, const char *what, size_t row)
{
    uint64_t end;
    if (__builtin_add_overflow(off, (uint64_t)len, &end) || end >= s->str_bytes || s->str[end])
        return dp_set_error(DP_ERR_FORMAT, "%s: row %zu: %s string out of bounds", ix->path, row,
                            what);
    *out = s->str + off;
    return 0;
}

static int fill_entry(const dp_index *ix, size_t row, dp_index_entry *out)
{
    size_t l;
    const dpx_seg *s = dpx_seg_of(ix, row, &l);
    const dpx_entry *e = &s->ent[l];
    int rc = str_at(ix, s, e->path_off, e->path_len, &out->path, "path", row);
    if (!rc) rc = str_at(ix, s, e->label_off, e->label_len, &out->label, "label", row);
    if (rc) return rc;
    out->id = s->ids[l];
    out->width = e->width;
    out->height = e->height;
    memcpy(out->hash, e->hash, sizeof out->hash);
    out->vector = s->vec + l * (size_t)ix->dim;
    return 0;
}

int dp_index_get(const dp_index *ix, uint64_t id, dp_index_entry *out)
{
    size_t row;
    if (!idmap_find(ix, id, &row) || dpx_dead(ix, row))
        return dp_set_error(DP_ERR_NOT_FOUND, "%s: no entry with id %llu", ix->path,
                            (unsigned long long)id);
    return fill_entry(ix, row, out);
}

int dp_index_next(const dp_index *ix, size_t *cursor, dp_index_entry *out)
{
    size_t r = *cursor;
    while (r < ix->rows && dpx_dead(ix, r))
        r++;
    if (r >= ix->rows) {
        *cursor = r;
        return 0;
    }
    *cursor = r + 1;
    int rc = fill_entry(ix, r, out);
    return rc ? rc : 1;
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return mix64(h);
}

static void pathmap_put(dpx_strmap *m, const char *path, size_t row)
{
    size_t mask = m->cap - 1;
    size_t h = str_hash(path) & mask;
    while (m->slots[h])
        h = (h + 1) & mask;
    m->slots[h] = (uint64_t)row + 1;
}

static int pathmap_build(dp_index *ix)
{
    size_t cap = 64;
    while (cap < ix->rows * 2 + 2)
        cap *= 2;
    dpx_strmap m = {calloc(cap, sizeof(uint64_t)), cap};
    if (!m.slots) return dp_set_error(DP_ERR_NOMEM, "out of memory for the path table");
    for (size_t r = 0; r < ix->rows; r++) {
        if (dpx_dead(ix, r)) continue;
        dp_index_entry e;
        if (fill_entry(ix, r, &e)) continue; /* a corrupt entry is simply not findable */
        pathmap_put(&m, e.path, r);
    }
    free(ix->path_map.slots);
    ix->path_map = m;
    ix->path_map_ready = true;
    return 0;
}

int dp_index_find_path(const dp_index *cix, const char *path, dp_index_entry *out)
{
    dp_index *ix = (dp_index *)cix; /* the lazily built table is a cache */
    if (!path) return dp_set_error(DP_ERR_INVALID, "path is NULL");
    pthread_mutex_lock(&ix->path_mu);
    int rc = ix->path_map_ready ? 0 : pathmap_build(ix);
    pthread_mutex_unlock(&ix->path_mu);
    if (rc) return rc;
    size_t mask = ix->path_map.cap - 1;
    for (size_t h = str_hash(path) & mask; ix->path_map.slots[h]; h = (h + 1) & mask) {
        size_t row = (size_t)(ix->path_map.slots[h] - 1);
        if (row >= ix->rows || dpx_dead(ix, row)) continue;
        if (fill_entry(ix, row, out) == 0 && !strcmp(out->path, path)) return 0;
    }
    return dp_set_error(DP_ERR_NOT_FOUND, "%s: no entry with path '%s'", ix->path, path);
}

/* ---- lifecycle ------------------------------------------------------------ */

static dp_index *ix_alloc(const char *path)
{
    dp_index *ix = calloc(1, sizeof *ix);
    if (!ix) return NULL;
    ix->fd = -1;
    ix->path = strdup(path ? path : "(memory)");
    if (!ix->path || pthread_mutex_init(&ix->path_mu, NULL)) {
        free(ix->path);
        free(ix);
        return NULL;
    }
    return ix;
}

static void ix_release(dp_index *ix)
{
    if (ix->map) {
        if (ix->mapped)
            munmap((void *)ix->map, ix->map_len);
        else
            free((void *)ix->map);
    }
    if (ix->fd >= 0) close(ix->fd); /* also drops the writer's flock */
    for (size_t i = 0; i < ix->n_meta; i++) {
        free(ix->meta[i].key);
        free(ix->meta[i].s);
    }
    free(ix->meta);
    free(ix->segs);
    free(ix->p_vec);
    free(ix->p_ids);
    free(ix->p_ent);
    free(ix->p_str);
    free(ix->dead);
    free(ix->id_keys);
    free(ix->id_rows);
    free(ix->deleted);
    failures_clear(ix);
    for (size_t i = 0; i < ix->n_named; i++)
        free(ix->named[i].pend);
    free(ix->named);
    free(ix->all_secs);
    free(ix->path_map.slots);
}

void dp_index_free(dp_index *ix)
{
    if (!ix) return;
    ix_release(ix);
    pthread_mutex_destroy(&ix->path_mu);
    free(ix->path);
    free(ix);
}

/* Replace dst's state by src's (keeping dst's mutex and path), free the old. */
static void ix_take(dp_index *dst, dp_index *src)
{
    ix_release(dst);
    pthread_mutex_t mu = dst->path_mu;
    char *path = dst->path;
    char *spath = src->path;
    pthread_mutex_t smu = src->path_mu;
    *dst = *src;
    dst->path_mu = mu;
    dst->path = path;
    memset(src, 0, sizeof *src);
    src->fd = -1;
    src->path = spath;
    src->path_mu = smu;
}

static int schema_init(dp_index *ix, uint32_t dim, int metric, bool normalized)
{
    ix->dim = dim;
    ix->metric = metric;
    ix->normalized = normalized;
    int rc = meta_put(ix, "doppel.dim", DP_META_I64, NULL, dim, 0);
    if (!rc) rc = meta_put(ix, "doppel.metric", DP_META_STR, dp_metric_name(metric), 0, 0);
    if (!rc) rc = meta_put(ix, "doppel.normalized", DP_META_I64, NULL, normalized, 0);
    return rc;
}

int dp_index_create(const char *path, const dp_index_create_params *p, dp_index **out)
{
    *out = NULL;
    dp_index_create_params d = dp_index_default_create_params();
    if (!p) p = &d;
    if (!path || !*path) return dp_set_error(DP_ERR_INVALID, "dp_index_create: no path");
    if (p->dim < 1 || p->dim > DPX_MAX_DIM)
        return dp_set_error(DP_ERR_INVALID, "dp_index_create: %s: dim %u is not in 1..%u", path,
                            p->dim, DPX_MAX_DIM);
    int metric = p->metric ? p->metric : DP_METRIC_L2;
    if (!dp_metric_name(metric))
        return dp_set_error(DP_ERR_INVALID, "dp_index_create: %s: unknown metric %d", path,
                            p->metric);
    if (metric == DP_METRIC_COSINE && !p->normalized)
        return dp_set_error(DP_ERR_INVALID,
                            "dp_index_create: %s: the cosine metric needs normalised vectors",
                            path);
    dp_index *ix = ix_alloc(path);
    if (!ix) return dp_set_error(DP_ERR_NOMEM, "dp_index_create: out of memory");
    int rc = schema_init(ix, p->dim, metric, p->normalized);
    if (!rc)
        rc = meta_put(ix, "doppel.model.name", DP_META_STR, p->model_name ? p->model_name : "", 0,
                      0);
    if (!rc)
        rc = meta_put(ix, "doppel.model.fingerprint", DP_META_STR,
                      p->model_fingerprint ? p->model_fingerprint : "", 0, 0);
    if (!rc) rc = meta_put(ix, "doppel.created", DP_META_I64, NULL, (int64_t)time(NULL), 0);
    if (!rc) rc = meta_put(ix, "doppel.created_by", DP_META_STR, "doppel " DP_VERSION_STRING, 0, 0);
    if (!rc) rc = dead_reserve(ix, 0);
    if (rc) {
        dp_index_free(ix);
        return dp_prefix_error(rc, "dp_index_create");
    }
    ix->writable = true;
    ix->dirty = true;
    *out = ix;
    return 0;
}

/* ---- loading -------------------------------------------------------------- */

typedef struct reader {
    const dp_index *ix;
    const uint8_t *base;
    size_t len;
} reader;

#define FERR(...) dp_set_error(DP_ERR_FORMAT, __VA_ARGS__)

/* Check a section's bounds against the file; the caller checked kind. */
static int sec_bounds(const dp_index *ix, const dpx_sec *s, size_t file_len, uint64_t committed)
{
    uint64_t end;
    if (__builtin_add_overflow(s->offset, s->bytes, &end))
        return FERR("%s: section '%s' has an impossible size (offset %llu + %llu bytes)", ix->path,
                    sec_name(s->kind), (unsigned long long)s->offset, (unsigned long long)s->bytes);
    if (end > file_len)
        return FERR("%s: file is truncated (section '%s' ends at %llu, file is %zu bytes)",
                    ix->path, sec_name(s->kind), (unsigned long long)end, file_len);
    if (end > committed || s->offset < DPX_HEADER_BYTES || s->offset % DPX_ALIGN)
        return FERR("%s: section '%s' at %llu..%llu lies outside the committed data", ix->path,
                    sec_name(s->kind), (unsigned long long)s->offset, (unsigned long long)end);
    return 0;
}

static int sec_check_crc(const dp_index *ix, const uint8_t *base, const dpx_sec *s)
{
    uint32_t c = dpx_crc32c(0, base + s->offset, (size_t)s->bytes);
    if (c != s->crc) {
        if (s->kind <= DPX_SEC_STRINGS)
            return FERR("%s: checksum mismatch in section '%s' (segment %u)", ix->path,
                        sec_name(s->kind), s->segment);
        return FERR("%s: checksum mismatch in section '%s'", ix->path, sec_label(base, s));
    }
    return 0;
}

static int parse_kv(dp_index *ix, const uint8_t *p, size_t avail, size_t *used)
{
    dpx_kv kv;
    if (avail < sizeof kv) return FERR("%s: directory ends inside a metadata record", ix->path);
    memcpy(&kv, p, sizeof kv);
    /* Records are padded to 8 bytes; the last one's padding must be there too. */
    size_t need = (sizeof kv + kv.key_len + (size_t)kv.value_len + 7) & ~(size_t)7;
    if (kv.key_len == 0 || need > avail)
        return FERR("%s: metadata record overruns the directory", ix->path);
    char key[DPX_MAX_KEY + 1];
    memcpy(key, p + sizeof kv, kv.key_len);
    key[kv.key_len] = '\0';
    if (strlen(key) != kv.key_len) return FERR("%s: metadata key contains a NUL byte", ix->path);
    const uint8_t *v = p + sizeof kv + kv.key_len;
    int rc;
    switch (kv.type) {
    case DP_META_STR: {
        if (memchr(v, 0, kv.value_len))
            return FERR("%s: metadata '%s' contains a NUL byte", ix->path, key);
        char *s = malloc((size_t)kv.value_len + 1);
        if (!s) return dp_set_error(DP_ERR_NOMEM, "out of memory");
        memcpy(s, v, kv.value_len);
        s[kv.value_len] = '\0';
        rc = meta_put(ix, key, DP_META_STR, s, 0, 0);
        free(s);
        break;
    }
    case DP_META_I64:
    case DP_META_F64: {
        if (kv.value_len != 8)
            return FERR("%s: metadata '%s' has a %u-byte number", ix->path, key, kv.value_len);
        int64_t i;
        double f;
        memcpy(&i, v, 8);
        memcpy(&f, v, 8);
        rc = meta_put(ix, key, kv.type, NULL, i, f);
        break;
    }
    default:
        return FERR("%s: metadata '%s' has unknown type %u", ix->path, key, kv.type);
    }
    *used = need;
    return rc;
}

static int parse_failures(dp_index *ix, const uint8_t *p, const dpx_sec *s)
{
    if (s->count > MAX_FAILURES || s->count > s->bytes / 10)
        return FERR("%s: section 'failures' claims %llu records in %llu bytes", ix->path,
                    (unsigned long long)s->count, (unsigned long long)s->bytes);
    size_t n = (size_t)s->count, off = 0, len = (size_t)s->bytes;
    ix->fail_path = calloc(n ? n : 1, sizeof(char *));
    ix->fail_reason = calloc(n ? n : 1, sizeof(char *));
    if (!ix->fail_path || !ix->fail_reason) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        uint32_t pl, rl;
        if (len - off < 8) goto bad;
        memcpy(&pl, p + off, 4);
        memcpy(&rl, p + off + 4, 4);
        off += 8;
        if (pl > MAX_STRING || rl > MAX_STRING || len - off < (size_t)pl + rl + 2) goto bad;
        if (p[off + pl] || p[off + pl + 1 + rl]) goto bad;
        ix->fail_path[i] = strndup((const char *)p + off, pl);
        ix->fail_reason[i] = strndup((const char *)p + off + pl + 1, rl);
        ix->n_fail = i + 1;
        if (!ix->fail_path[i] || !ix->fail_reason[i])
            return dp_set_error(DP_ERR_NOMEM, "out of memory");
        off += (size_t)pl + rl + 2;
    }
    return 0;
bad:
    return FERR("%s: section 'failures' has a record out of bounds", ix->path);
}

static bool name_ok(const char *name, size_t n)
{
    if (n == 0 || n > DPX_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static dpx_named *named_find(const dp_index *ix, const char *name)
{
    for (size_t i = 0; i < ix->n_named; i++)
        if (!strcmp(ix->named[i].name, name)) return &ix->named[i];
    return NULL;
}

static dpx_named *named_new(dp_index *ix, const char *name)
{
    if (ix->n_named == ix->cap_named) {
        size_t cap = ix->cap_named ? ix->cap_named * 2 : 8;
        dpx_named *n = realloc(ix->named, cap * sizeof *n);
        if (!n) return NULL;
        ix->named = n;
        ix->cap_named = cap;
    }
    dpx_named *n = &ix->named[ix->n_named++];
    memset(n, 0, sizeof *n);
    memcpy(n->name, name, strlen(name) + 1);
    return n;
}

/* A named section's head: the name (its only content read at open). */
static int named_load(dp_index *ix, const uint8_t *data, const dpx_sec *s)
{
    dpx_named_head h;
    memcpy(&h, data, sizeof h);
    size_t n = strnlen(h.name, sizeof h.name);
    if (n == sizeof h.name || !name_ok(h.name, n))
        return FERR("%s: a named section at offset %llu has an invalid name", ix->path,
                    (unsigned long long)s->offset);
    for (size_t i = n; i < sizeof h.name; i++)
        if (h.name[i]) return FERR("%s: section '%s' has a badly padded name", ix->path, h.name);
    if (h.data_bytes != s->count)
        return FERR("%s: section '%s' says %llu bytes, its record %llu", ix->path, h.name,
                    (unsigned long long)h.data_bytes, (unsigned long long)s->count);
    if (named_find(ix, h.name)) return FERR("%s: two sections named '%s'", ix->path, h.name);
    dpx_named *nd = named_new(ix, h.name);
    if (!nd) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    nd->sec = *s;
    nd->data = data + sizeof h;
    return 0;
}

/* Parse the committed state of base[0..len) into a fresh ix. */
static int ix_load(dp_index *ix, const uint8_t *base, size_t len)
{
    if (len < 8 || memcmp(base, DPX_MAGIC, 8))
        return FERR("%s: not a doppel index (bad magic)", ix->path);
    if (len < DPX_HEADER_BYTES)
        return FERR("%s: file is truncated (the header needs %u bytes, file is %zu bytes)",
                    ix->path, DPX_HEADER_BYTES, len);
    dpx_header h;
    memcpy(&h, base, sizeof h);
    if (dpx_crc32c(0, &h, offsetof(dpx_header, crc)) != h.crc)
        return FERR("%s: header checksum mismatch", ix->path);
    if (h.version > DPX_VERSION)
        return dp_set_error(DP_ERR_UNSUPPORTED,
                            "%s: format version %u is newer than this doppel (%u)", ix->path,
                            h.version, DPX_VERSION);
    if (h.version == 0) return FERR("%s: format version 0 is not valid", ix->path);
    if (h.header_bytes != DPX_HEADER_BYTES || h.endian != 0x01020304u)
        return FERR("%s: unexpected header size or byte order", ix->path);

    int best = -1;
    dpx_slot slots[2];
    for (int i = 0; i < 2; i++) {
        memcpy(&slots[i], base + DPX_SLOT0 + (size_t)i * DPX_SLOT_BYTES, sizeof slots[i]);
        if (slots[i].seq == 0 || dpx_crc32c(0, &slots[i], offsetof(dpx_slot, crc)) != slots[i].crc)
            continue;
        if (best < 0 || slots[i].seq > slots[best].seq) best = i;
    }
    if (best < 0)
        return FERR("%s: no valid commit (both commit slots fail their checksum)", ix->path);
    const dpx_slot *sl = &slots[best];
    ix->seq = sl->seq;
    ix->slot = best;
    ix->file_bytes = sl->file_bytes;
    ix->ever_written = true;

    uint64_t dir_end;
    if (__builtin_add_overflow(sl->dir_offset, sl->dir_bytes, &dir_end) ||
        sl->dir_offset < DPX_HEADER_BYTES || sl->dir_offset % DPX_ALIGN ||
        sl->dir_bytes < sizeof(dpx_dir) || dir_end > sl->file_bytes)
        return FERR("%s: commit slot points at an impossible directory", ix->path);
    if (dir_end > len)
        return FERR("%s: file is truncated (directory ends at %llu, file is %zu bytes)", ix->path,
                    (unsigned long long)dir_end, len);
    const uint8_t *dp = base + sl->dir_offset;
    size_t dlen = (size_t)sl->dir_bytes;
    if (dpx_crc32c(0, dp, dlen) != sl->dir_crc)
        return FERR("%s: checksum mismatch in the directory", ix->path);
    dpx_dir dir;
    memcpy(&dir, dp, sizeof dir);
    if (memcmp(dir.magic, DPX_DIR_MAGIC, 8)) return FERR("%s: bad directory magic", ix->path);
    ix->next_id = dir.next_id;

    size_t off = sizeof dir;
    if (dir.n_kv > dlen / sizeof(dpx_kv))
        return FERR("%s: directory claims %u metadata records", ix->path, dir.n_kv);
    for (uint32_t i = 0; i < dir.n_kv; i++) {
        size_t used = 0;
        int rc = parse_kv(ix, dp + off, dlen - off, &used);
        if (rc) return rc;
        off += used;
    }
    if (dir.n_sections > (dlen - off) / sizeof(dpx_sec) ||
        (dlen - off) != (size_t)dir.n_sections * sizeof(dpx_sec))
        return FERR("%s: directory claims %u sections in %zu bytes", ix->path, dir.n_sections,
                    dlen - off);

    /* The schema comes from reserved keys. */
    const dpx_meta *md = meta_find(ix, "doppel.dim"), *mm = meta_find(ix, "doppel.metric"),
                   *mn = meta_find(ix, "doppel.normalized");
    if (!md || md->type != DP_META_I64 || md->i < 1 || md->i > DPX_MAX_DIM)
        return FERR("%s: missing or invalid 'doppel.dim'", ix->path);
    int metric;
    if (!mm || mm->type != DP_META_STR || dp_metric_parse(mm->s, &metric))
        return FERR("%s: missing or invalid 'doppel.metric'", ix->path);
    if (!mn || mn->type != DP_META_I64 || (mn->i != 0 && mn->i != 1))
        return FERR("%s: missing or invalid 'doppel.normalized'", ix->path);
    ix->dim = (uint32_t)md->i;
    ix->metric = metric;
    ix->normalized = mn->i;

    size_t nsec = dir.n_sections;
    ix->all_secs = calloc(nsec ? nsec : 1, sizeof(dpx_sec));
    if (!ix->all_secs) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    /* Segment numbers are dense from 0, so there are at most nsec/4. */
    size_t max_seg = nsec / 4;
    ix->segs = calloc(max_seg + 1, sizeof(dpx_seg));
    ix->cap_seg = max_seg + 1;
    if (!ix->segs) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    bool have_del = false, have_fail = false;
    for (size_t i = 0; i < nsec; i++) {
        dpx_sec s;
        memcpy(&s, dp + off + i * sizeof s, sizeof s);
        if (s.kind == 0 || s.kind > DPX_SEC_NAMED) {
            if (s.kind & DPX_KIND_REQUIRED)
                return dp_set_error(DP_ERR_UNSUPPORTED,
                                    "%s: section kind 0x%x needs a newer doppel", ix->path, s.kind);
            /* An optional section from a newer doppel: bounds-checked, kept
             * in the directory listing, not used. */
        }
        int rc = sec_bounds(ix, &s, len, sl->file_bytes);
        if (rc) return rc;
        ix->all_secs[ix->n_all_secs++] = s;
        uint64_t want = 0;
        bool sized = true;
        switch (s.kind) {
        case DPX_SEC_VECTORS:
            sized = !__builtin_mul_overflow(s.count, (uint64_t)ix->dim * 4, &want);
            break;
        case DPX_SEC_IDS:
        case DPX_SEC_DELETED:
            sized = !__builtin_mul_overflow(s.count, 8, &want);
            break;
        case DPX_SEC_ENTRIES:
            sized = !__builtin_mul_overflow(s.count, sizeof(dpx_entry), &want);
            break;
        case DPX_SEC_STRINGS:
            want = s.count;
            break;
        case DPX_SEC_NAMED:
            sized = !__builtin_add_overflow(s.count, sizeof(dpx_named_head), &want);
            break;
        default:
            want = s.bytes;
            break;
        }
        if (!sized || want != s.bytes)
            return FERR("%s: section '%s' holds %llu bytes, not what %llu items need", ix->path,
                        sec_name(s.kind), (unsigned long long)s.bytes, (unsigned long long)s.count);
        const uint8_t *data = base + s.offset;
        if (s.kind >= DPX_SEC_VECTORS && s.kind <= DPX_SEC_STRINGS) {
            if (s.segment >= max_seg)
                return FERR("%s: section '%s' names segment %u of %zu", ix->path, sec_name(s.kind),
                            s.segment, max_seg);
            dpx_seg *g = &ix->segs[s.segment];
            if (g->sec[s.kind - 1].kind)
                return FERR("%s: segment %u has two '%s' sections", ix->path, s.segment,
                            sec_name(s.kind));
            g->sec[s.kind - 1] = s;
            if (s.kind == DPX_SEC_VECTORS) g->vec = (const float *)data;
            if (s.kind == DPX_SEC_IDS) g->ids = (const uint64_t *)data;
            if (s.kind == DPX_SEC_ENTRIES) g->ent = (const dpx_entry *)data;
            if (s.kind == DPX_SEC_STRINGS) {
                g->str = (const char *)data;
                g->str_bytes = (size_t)s.bytes;
            }
        } else if (s.kind == DPX_SEC_NAMED) {
            if ((rc = named_load(ix, data, &s))) return rc;
        } else if (s.kind == DPX_SEC_DELETED || s.kind == DPX_SEC_FAILURES) {
            if ((s.kind == DPX_SEC_DELETED ? have_del : have_fail))
                return FERR("%s: two '%s' sections", ix->path, sec_name(s.kind));
            if ((rc = sec_check_crc(ix, base, &s))) return rc;
            if (s.kind == DPX_SEC_DELETED) {
                have_del = true;
                ix->deleted_sec = s;
            } else {
                have_fail = true;
                ix->fail_sec = s;
                if ((rc = parse_failures(ix, data, &s))) return rc;
            }
        }
    }
    /* Segments: dense, complete, consistent counts. */
    size_t rows = 0;
    for (size_t g = 0; g < max_seg; g++) {
        dpx_seg *sg = &ix->segs[g];
        int have = 0;
        for (int k = 0; k < 4; k++)
            have += sg->sec[k].kind != 0;
        if (have == 0) break;
        if (have != 4)
            return FERR("%s: segment %zu lacks a section (has %d of 4)", ix->path, g, have);
        uint64_t n = sg->sec[0].count;
        if (sg->sec[1].count != n || sg->sec[2].count != n)
            return FERR("%s: segment %zu: vectors, ids and entries disagree on the row count",
                        ix->path, g);
        sg->n = (size_t)n;
        sg->row0 = rows;
        rows += sg->n; /* bounded by the file length: no overflow */
        ix->n_seg = g + 1;
    }
    for (size_t g = ix->n_seg; g < max_seg; g++)
        for (int k = 0; k < 4; k++)
            if (ix->segs[g].sec[k].kind)
                return FERR("%s: segment numbers are not dense (segment %zu)", ix->path, g);
    ix->n_committed_seg = ix->n_seg;
    ix->rows = rows;

    int rc = dead_reserve(ix, rows);
    if (!rc) rc = idmap_reserve(ix, rows);
    if (rc) return rc;
    for (size_t g = 0; g < ix->n_seg; g++) {
        const dpx_seg *sg = &ix->segs[g];
        if ((rc = sec_check_crc(ix, base, &sg->sec[1]))) return rc;
        for (size_t i = 0; i < sg->n; i++) {
            uint64_t id = sg->ids[i];
            if (id >= ix->next_id)
                return FERR("%s: id %llu is not below the next id %llu", ix->path,
                            (unsigned long long)id, (unsigned long long)ix->next_id);
            if (idmap_put(ix, id, sg->row0 + i))
                return FERR("%s: id %llu appears twice", ix->path, (unsigned long long)id);
        }
    }
    ix->live = rows;
    if (have_del) {
        size_t n = (size_t)ix->deleted_sec.count;
        ix->deleted = malloc((n ? n : 1) * sizeof(uint64_t));
        if (!ix->deleted) return dp_set_error(DP_ERR_NOMEM, "out of memory");
        memcpy(ix->deleted, base + ix->deleted_sec.offset, n * sizeof(uint64_t));
        ix->n_deleted = ix->cap_deleted = n;
        for (size_t i = 0; i < n; i++) {
            size_t row;
            if (!idmap_find(ix, ix->deleted[i], &row))
                return FERR("%s: deleted id %llu is not stored", ix->path,
                            (unsigned long long)ix->deleted[i]);
            if (dpx_dead(ix, row))
                return FERR("%s: id %llu is deleted twice", ix->path,
                            (unsigned long long)ix->deleted[i]);
            ix->dead[row >> 3] |= (uint8_t)(1u << (row & 7));
            ix->live--;
        }
    }
    return 0;
}

static int check_fingerprint(dp_index *ix, const dp_index_open_params *p)
{
    if (p->expect_fingerprint && strcmp(p->expect_fingerprint, dp_index_model_fingerprint(ix)))
        return dp_set_error(DP_ERR_MISMATCH,
                            "%s: index was built with another model (fingerprint '%s', expected "
                            "'%s')",
                            ix->path, dp_index_model_fingerprint(ix), p->expect_fingerprint);
    return 0;
}

/* Map fd and load it into ix (which owns fd from here on). */
static int ix_map_load(dp_index *ix)
{
    struct stat st;
    if (fstat(ix->fd, &st) != 0)
        return dp_set_error(DP_ERR_IO, "%s: %s", ix->path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return dp_set_error(DP_ERR_IO, "%s: not a regular file", ix->path);
    size_t len = (size_t)st.st_size;
    if (len < DPX_HEADER_BYTES) {
        /* Too short to map usefully; read what there is for the message. */
        uint8_t buf[DPX_HEADER_BYTES];
        ssize_t r = pread(ix->fd, buf, len, 0);
        if (r < 0) return dp_set_error(DP_ERR_IO, "%s: %s", ix->path, strerror(errno));
        return ix_load(ix, buf, (size_t)r);
    }
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, ix->fd, 0);
    if (m == MAP_FAILED) return dp_set_error(DP_ERR_IO, "%s: mmap: %s", ix->path, strerror(errno));
    ix->map = m;
    ix->map_len = len;
    ix->mapped = true;
    return ix_load(ix, ix->map, len);
}

void dpx_release_pages(const dp_index *ix, const void *p, size_t n)
{
    const uint8_t *base = ix->map, *q = p;
    if (!ix->mapped || !n || q < base || q + n > base + ix->map_len) return;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)q + pg - 1) & ~(uintptr_t)(pg - 1);
    uintptr_t hi = ((uintptr_t)q + n) & ~(uintptr_t)(pg - 1);
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

int dp_index_open(const char *path, const dp_index_open_params *p, dp_index **out)
{
    *out = NULL;
    dp_index_open_params d = dp_index_default_open_params();
    if (!p) p = &d;
    if (!path) return dp_set_error(DP_ERR_INVALID, "dp_index_open: no path");
    dp_index *ix = ix_alloc(path);
    if (!ix) return dp_set_error(DP_ERR_NOMEM, "dp_index_open: out of memory");
    int rc = 0;
    ix->writable = p->writable;
    ix->fd = open(path, (p->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (ix->fd < 0) {
        rc = dp_set_error(DP_ERR_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (p->writable && flock(ix->fd, LOCK_EX | LOCK_NB) != 0) {
        rc = dp_set_error(DP_ERR_IO, "%s: %s", path,
                          errno == EWOULDBLOCK ? "another process is writing this index"
                                               : strerror(errno));
        goto fail;
    }
    if ((rc = ix_map_load(ix))) goto fail;
    if ((rc = check_fingerprint(ix, p))) goto fail;
    if (p->verify && (rc = dp_index_verify(ix))) goto fail;
    /* Drop a tail a crashed writer left past the last commit; readers never
     * map beyond a committed length, so nobody can be reading it. */
    if (p->writable && ix->map_len > ix->file_bytes) {
        if (ftruncate(ix->fd, (off_t)ix->file_bytes) != 0) {
            rc = dp_set_error(DP_ERR_IO, "%s: ftruncate: %s", path, strerror(errno));
            goto fail;
        }
    }
    ix->dirty = false;
    ix->deleted_dirty = ix->fail_dirty = false;
    *out = ix;
    return 0;
fail:
    dp_index_free(ix);
    return dp_prefix_error(rc, "dp_index_open");
}

int dp_index_open_memory(const void *data, size_t size, const char *name,
                         const dp_index_open_params *p, dp_index **out)
{
    *out = NULL;
    dp_index_open_params d = dp_index_default_open_params();
    if (!p) p = &d;
    if (p->writable)
        return dp_set_error(DP_ERR_INVALID, "dp_index_open_memory: memory indexes are read-only");
    dp_index *ix = ix_alloc(name ? name : "(memory)");
    if (!ix) return dp_set_error(DP_ERR_NOMEM, "dp_index_open_memory: out of memory");
    /* A private aligned copy: sections are typed arrays and need their
     * 64-byte alignment, which a caller's buffer need not have. */
    int rc;
    void *copy = NULL;
    if (posix_memalign(&copy, 4096, size ? size : 1)) {
        rc = dp_set_error(DP_ERR_NOMEM, "%s: cannot copy %zu bytes", ix->path, size);
        goto fail;
    }
    if (size) memcpy(copy, data, size);
    ix->map = copy;
    ix->map_len = size;
    if ((rc = ix_load(ix, ix->map, size))) goto fail;
    if ((rc = check_fingerprint(ix, p))) goto fail;
    if (p->verify && (rc = dp_index_verify(ix))) goto fail;
    ix->dirty = false;
    *out = ix;
    return 0;
fail:
    dp_index_free(ix);
    return dp_prefix_error(rc, "dp_index_open");
}

/* ---- adding and removing -------------------------------------------------- */

static int pending_reserve(dp_index *ix, size_t more_rows, size_t more_str)
{
    size_t need;
    if (!dp_add_ok(ix->p_n, more_rows, &need)) return dp_set_error(DP_ERR_NOMEM, "too many rows");
    if (need > ix->p_cap) {
        size_t cap = ix->p_cap ? ix->p_cap : 256, vb;
        while (cap < need) {
            if (cap > SIZE_MAX / 4) return dp_set_error(DP_ERR_NOMEM, "too many rows");
            cap *= 2;
        }
        if (!dp_mul_ok(cap, (size_t)ix->dim * sizeof(float), &vb))
            return dp_set_error(DP_ERR_NOMEM, "too many rows");
        float *v = realloc(ix->p_vec, vb);
        if (v) ix->p_vec = v;
        uint64_t *id = realloc(ix->p_ids, cap * sizeof *id);
        if (id) ix->p_ids = id;
        dpx_entry *e = realloc(ix->p_ent, cap * sizeof *e);
        if (e) ix->p_ent = e;
        if (!v || !id || !e)
            return dp_set_error(DP_ERR_NOMEM, "out of memory for %zu pending rows", cap);
        ix->p_cap = cap;
    }
    if (!dp_add_ok(ix->p_str_len, more_str, &need))
        return dp_set_error(DP_ERR_NOMEM, "strings too large");
    if (need > ix->p_str_cap) {
        size_t cap = ix->p_str_cap ? ix->p_str_cap : 4096;
        while (cap < need) {
            if (cap > SIZE_MAX / 4) return dp_set_error(DP_ERR_NOMEM, "strings too large");
            cap *= 2;
        }
        char *s = realloc(ix->p_str, cap);
        if (!s) return dp_set_error(DP_ERR_NOMEM, "out of memory for strings");
        ix->p_str = s;
        ix->p_str_cap = cap;
    }
    return 0;
}

/* Point the pending segment at the (possibly moved) heap arrays. */
static int pending_seg(dp_index *ix)
{
    if (!ix->pending) {
        if (ix->n_seg == ix->cap_seg) {
            size_t cap = ix->cap_seg ? ix->cap_seg * 2 : 4;
            dpx_seg *s = realloc(ix->segs, cap * sizeof *s);
            if (!s) return dp_set_error(DP_ERR_NOMEM, "out of memory");
            ix->segs = s;
            ix->cap_seg = cap;
        }
        memset(&ix->segs[ix->n_seg], 0, sizeof(dpx_seg));
        ix->segs[ix->n_seg].row0 = ix->rows;
        ix->n_seg++;
        ix->pending = true;
    }
    dpx_seg *s = &ix->segs[ix->n_seg - 1];
    s->vec = ix->p_vec;
    s->ids = ix->p_ids;
    s->ent = ix->p_ent;
    s->str = ix->p_str;
    s->str_bytes = ix->p_str_len;
    s->n = ix->p_n;
    return 0;
}

int dp_index_add(dp_index *ix, const dp_index_entry *entries, size_t n, uint64_t *ids_out)
{
    if (!ix->writable)
        return dp_set_error(DP_ERR_INVALID, "dp_index_add: %s is open read-only", ix->path);
    if (n && !entries) return dp_set_error(DP_ERR_INVALID, "dp_index_add: entries is NULL");
    size_t more_str = 0;
    for (size_t i = 0; i < n; i++) {
        const dp_index_entry *e = &entries[i];
        size_t pl = e->path ? strlen(e->path) : 0, ll = e->label ? strlen(e->label) : 0;
        if (pl > MAX_STRING || ll > MAX_STRING)
            return dp_set_error(DP_ERR_INVALID,
                                "dp_index_add: entry %zu: path or label above %u bytes", i,
                                MAX_STRING);
        if (!e->vector)
            return dp_set_error(DP_ERR_INVALID, "dp_index_add: entry %zu has no vector", i);
        for (uint32_t j = 0; j < ix->dim; j++)
            if (!isfinite(e->vector[j]))
                return dp_set_error(DP_ERR_INVALID,
                                    "dp_index_add: entry %zu: vector[%u] is not finite", i, j);
        more_str += pl + ll + 2;
    }
    if (ix->next_id > UINT64_MAX - 1 - n)
        return dp_set_error(DP_ERR_INVALID, "dp_index_add: ids exhausted");
    int rc = pending_reserve(ix, n, more_str);
    if (!rc) rc = idmap_reserve(ix, ix->rows + n);
    if (!rc) rc = dead_reserve(ix, ix->rows + n);
    if (!rc && n) rc = pending_seg(ix);
    if (rc) return dp_prefix_error(rc, "dp_index_add: %s", ix->path);
    for (size_t i = 0; i < n; i++) {
        const dp_index_entry *e = &entries[i];
        const char *path = e->path ? e->path : "", *label = e->label ? e->label : "";
        size_t pl = strlen(path), ll = strlen(label), r = ix->p_n;
        dpx_entry de = {0};
        de.path_off = ix->p_str_len;
        de.path_len = (uint32_t)pl;
        memcpy(ix->p_str + ix->p_str_len, path, pl + 1);
        ix->p_str_len += pl + 1;
        de.label_off = ix->p_str_len;
        de.label_len = (uint32_t)ll;
        memcpy(ix->p_str + ix->p_str_len, label, ll + 1);
        ix->p_str_len += ll + 1;
        de.width = e->width;
        de.height = e->height;
        memcpy(de.hash, e->hash, sizeof de.hash);
        ix->p_ent[r] = de;
        memcpy(ix->p_vec + r * ix->dim, e->vector, ix->dim * sizeof(float));
        uint64_t id = ix->next_id++;
        ix->p_ids[r] = id;
        ix->p_n++;
        idmap_put(ix, id, ix->rows);
        ix->rows++;
        ix->live++;
        if (ids_out) ids_out[i] = id;
    }
    pending_seg(ix);
    if (ix->path_map_ready) {
        /* Keep the path table usable: grow it if it got dense, else insert. */
        if (ix->rows * 2 + 2 > ix->path_map.cap) {
            ix->path_map_ready = false;
        } else {
            for (size_t r = ix->rows - n; r < ix->rows; r++) {
                dp_index_entry e;
                if (!fill_entry(ix, r, &e)) pathmap_put(&ix->path_map, e.path, r);
            }
        }
    }
    if (n) ix->dirty = true;
    return 0;
}

int dp_index_remove(dp_index *ix, uint64_t id)
{
    if (!ix->writable)
        return dp_set_error(DP_ERR_INVALID, "dp_index_remove: %s is open read-only", ix->path);
    size_t row;
    if (!idmap_find(ix, id, &row) || dpx_dead(ix, row))
        return dp_set_error(DP_ERR_NOT_FOUND, "dp_index_remove: %s: no entry with id %llu",
                            ix->path, (unsigned long long)id);
    if (ix->n_deleted == ix->cap_deleted) {
        size_t cap = ix->cap_deleted ? ix->cap_deleted * 2 : 64;
        uint64_t *d = realloc(ix->deleted, cap * sizeof *d);
        if (!d) return dp_set_error(DP_ERR_NOMEM, "dp_index_remove: out of memory");
        ix->deleted = d;
        ix->cap_deleted = cap;
    }
    ix->deleted[ix->n_deleted++] = id;
    ix->dead[row >> 3] |= (uint8_t)(1u << (row & 7));
    ix->live--;
    ix->deleted_dirty = true;
    ix->dirty = true;
    return 0;
}

/* ---- writing -------------------------------------------------------------- */

/* Buffered positional writer that checksums each section as it goes. */
typedef struct wr {
    int fd;
    uint64_t off; /* file offset of buf[0] */
    uint8_t *buf;
    size_t len, cap;
    uint32_t crc;
    uint64_t sec_start;
    int err;
} wr;

static void wr_flush(wr *w)
{
    size_t done = 0;
    while (!w->err && done < w->len) {
        ssize_t r = pwrite(w->fd, w->buf + done, w->len - done, (off_t)(w->off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            w->err = r < 0 ? errno : EIO;
        else
            done += (size_t)r;
    }
    w->off += w->len;
    w->len = 0;
}

static void wr_raw(wr *w, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n) {
        size_t k = w->cap - w->len < n ? w->cap - w->len : n;
        memcpy(w->buf + w->len, p, k);
        w->len += k;
        p += k;
        n -= k;
        if (w->len == w->cap) wr_flush(w);
    }
}

static void wr_data(wr *w, const void *data, size_t n)
{
    w->crc = dpx_crc32c(w->crc, data, n);
    wr_raw(w, data, n);
}

static uint64_t wr_pos(const wr *w)
{
    return w->off + w->len;
}

static void wr_pad(wr *w)
{
    static const uint8_t zero[DPX_ALIGN];
    uint64_t p = wr_pos(w);
    wr_raw(w, zero, (size_t)(align_up(p) - p));
}

static void sec_begin(wr *w)
{
    wr_pad(w);
    w->crc = 0;
    w->sec_start = wr_pos(w);
}

static dpx_sec sec_end(wr *w, uint32_t kind, uint32_t segment, uint64_t count)
{
    dpx_sec s = {.kind = kind,
                 .segment = segment,
                 .offset = w->sec_start,
                 .bytes = wr_pos(w) - w->sec_start,
                 .count = count,
                 .crc = w->crc};
    return s;
}

/* A growable byte buffer for the directory. */
typedef struct bbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} bbuf;

static void bb_put(bbuf *b, const void *d, size_t n)
{
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void bb_pad8(bbuf *b)
{
    static const uint8_t z[8];
    if (b->len % 8) bb_put(b, z, 8 - b->len % 8);
}

static int build_dir(const dp_index *ix, const dpx_sec *secs, size_t nsec, bbuf *b)
{
    dpx_dir d = {
        .n_kv = (uint32_t)ix->n_meta, .n_sections = (uint32_t)nsec, .next_id = ix->next_id};
    memcpy(d.magic, DPX_DIR_MAGIC, 8);
    bb_put(b, &d, sizeof d);
    for (size_t i = 0; i < ix->n_meta; i++) {
        const dpx_meta *m = &ix->meta[i];
        dpx_kv kv = {.type = (uint8_t)m->type, .key_len = (uint8_t)strlen(m->key)};
        kv.value_len = m->type == DP_META_STR ? (uint32_t)strlen(m->s) : 8;
        bb_put(b, &kv, sizeof kv);
        bb_put(b, m->key, kv.key_len);
        if (m->type == DP_META_STR)
            bb_put(b, m->s, kv.value_len);
        else if (m->type == DP_META_I64)
            bb_put(b, &m->i, 8);
        else
            bb_put(b, &m->f, 8);
        bb_pad8(b);
    }
    bb_put(b, secs, nsec * sizeof *secs);
    return b->oom ? dp_set_error(DP_ERR_NOMEM, "out of memory for the directory") : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void write_failures(const dp_index *ix, wr *w)
{
    for (size_t i = 0; i < ix->n_fail; i++) {
        uint32_t l[2] = {(uint32_t)strlen(ix->fail_path[i]), (uint32_t)strlen(ix->fail_reason[i])};
        wr_data(w, l, sizeof l);
        wr_data(w, ix->fail_path[i], l[0] + 1);
        wr_data(w, ix->fail_reason[i], l[1] + 1);
    }
}

/* Write the directory and point the given slot at it. */
static int finish_commit(const dp_index *ix, wr *w, const dpx_sec *secs, size_t nsec, int slot,
                         uint64_t seq, bool header)
{
    bbuf b = {0};
    int rc = build_dir(ix, secs, nsec, &b);
    if (rc) return rc;
    sec_begin(w);
    uint64_t dir_off = wr_pos(w);
    wr_data(w, b.p, b.len);
    uint64_t end = wr_pos(w);
    wr_flush(w);
    dpx_slot sl = {.seq = seq,
                   .dir_offset = dir_off,
                   .dir_bytes = b.len,
                   .file_bytes = end,
                   .dir_crc = dpx_crc32c(0, b.p, b.len)};
    free(b.p);
    sl.crc = dpx_crc32c(0, &sl, offsetof(dpx_slot, crc));
    if (w->err) return dp_set_error(DP_ERR_IO, "%s: write: %s", ix->path, strerror(w->err));
    /* Everything the slot points at must be on disk before the slot is. */
    if (fdatasync(w->fd) != 0)
        return dp_set_error(DP_ERR_IO, "%s: fsync: %s", ix->path, strerror(errno));
    uint8_t page[DPX_HEADER_BYTES];
    size_t hlen = 0;
    off_t hoff = 0;
    if (header) {
        memset(page, 0, sizeof page);
        dpx_header h = {
            .version = DPX_VERSION, .header_bytes = DPX_HEADER_BYTES, .endian = 0x01020304u};
        memcpy(h.magic, DPX_MAGIC, 8);
        h.crc = dpx_crc32c(0, &h, offsetof(dpx_header, crc));
        memcpy(page, &h, sizeof h);
        memcpy(page + DPX_SLOT0 + (size_t)slot * DPX_SLOT_BYTES, &sl, sizeof sl);
        hlen = sizeof page;
    } else {
        memcpy(page, &sl, sizeof sl);
        hlen = sizeof sl;
        hoff = DPX_SLOT0 + (off_t)slot * DPX_SLOT_BYTES;
    }
    if (pwrite(w->fd, page, hlen, hoff) != (ssize_t)hlen || fdatasync(w->fd) != 0)
        return dp_set_error(DP_ERR_IO, "%s: writing the commit slot: %s", ix->path,
                            strerror(errno));
    return 0;
}

/* A named section: its head, then the pending or the committed bytes. */
static dpx_sec write_named(wr *w, const dpx_named *n)
{
    const uint8_t *d = n->has_pend ? n->pend : n->data;
    size_t len = n->has_pend ? n->pend_bytes : (size_t)n->sec.count;
    dpx_named_head h;
    memset(&h, 0, sizeof h);
    memcpy(h.name, n->name, strlen(n->name));
    h.data_bytes = len;
    sec_begin(w);
    wr_data(w, &h, sizeof h);
    if (len) wr_data(w, d, len);
    return sec_end(w, DPX_SEC_NAMED, 0, len);
}

/* Vectors to write instead of the stored ones (dpx_replace_vectors): live
 * rows in storage order, dim floats each. */
typedef struct vec_override {
    uint32_t dim;
    const float *vecs;
} vec_override;

/* Write ix's whole current state (live rows only) into fd as a fresh file. */
static int write_compact(const dp_index *ix, int fd, const vec_override *ov)
{
    wr w = {.fd = fd, .off = DPX_HEADER_BYTES, .cap = 1 << 20};
    size_t nsec = 0;
    int rc = 0;
    dpx_sec *secs = calloc(6 + ix->n_named, sizeof *secs);
    if (!secs || !(w.buf = malloc(w.cap))) {
        free(secs);
        return dp_set_error(DP_ERR_NOMEM, "out of memory");
    }
    size_t live = ix->live;
    /* vectors */
    sec_begin(&w);
    if (ov && live) wr_data(&w, ov->vecs, live * ov->dim * sizeof(float));
    for (size_t g = 0; !ov && g < ix->n_seg; g++) {
        const dpx_seg *s = &ix->segs[g];
        size_t i = 0;
        while (i < s->n) { /* runs of live rows go out in one call */
            while (i < s->n && dpx_dead(ix, s->row0 + i))
                i++;
            size_t j = i;
            while (j < s->n && !dpx_dead(ix, s->row0 + j))
                j++;
            if (j > i) wr_data(&w, s->vec + i * ix->dim, (j - i) * ix->dim * sizeof(float));
            i = j;
        }
    }
    secs[nsec++] = sec_end(&w, DPX_SEC_VECTORS, 0, live);
    sec_begin(&w);
    for (size_t g = 0; g < ix->n_seg; g++)
        for (size_t i = 0; i < ix->segs[g].n; i++)
            if (!dpx_dead(ix, ix->segs[g].row0 + i)) wr_data(&w, &ix->segs[g].ids[i], 8);
    secs[nsec++] = sec_end(&w, DPX_SEC_IDS, 0, live);
    /* entries with offsets into the repacked string table */
    sec_begin(&w);
    uint64_t so = 0;
    for (size_t r = 0; r < ix->rows; r++) {
        if (dpx_dead(ix, r)) continue;
        size_t l;
        const dpx_seg *s = dpx_seg_of(ix, r, &l);
        dp_index_entry e;
        if ((rc = fill_entry(ix, r, &e))) goto done;
        dpx_entry de = s->ent[l];
        de.path_off = so;
        so += de.path_len + 1;
        de.label_off = so;
        so += de.label_len + 1;
        wr_data(&w, &de, sizeof de);
    }
    secs[nsec++] = sec_end(&w, DPX_SEC_ENTRIES, 0, live);
    sec_begin(&w);
    for (size_t r = 0; r < ix->rows; r++) {
        if (dpx_dead(ix, r)) continue;
        size_t l;
        const dpx_seg *s = dpx_seg_of(ix, r, &l);
        const dpx_entry *de = &s->ent[l];
        wr_data(&w, s->str + de->path_off, de->path_len + 1);
        wr_data(&w, s->str + de->label_off, de->label_len + 1);
    }
    secs[nsec++] = sec_end(&w, DPX_SEC_STRINGS, 0, so);
    if (ix->n_fail) {
        sec_begin(&w);
        write_failures(ix, &w);
        secs[nsec++] = sec_end(&w, DPX_SEC_FAILURES, 0, ix->n_fail);
    }
    for (size_t i = 0; i < ix->n_named; i++)
        if (!ix->named[i].dropped) secs[nsec++] = write_named(&w, &ix->named[i]);
    rc = finish_commit(ix, &w, secs, nsec, 0, ix->seq + 1, true);
done:
    free(secs);
    free(w.buf);
    return rc;
}

static int fsync_dir_of(const char *path)
{
    char *d = strdup(path);
    if (!d) return -1;
    int fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(d);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Write a compact copy of ix to path via temp + fsync + rename. If fd_out,
 * the new file is returned open read-write and locked. */
static int save_compact(const dp_index *ix, const char *path, int *fd_out, const vec_override *ov)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!tmp) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc =
            dp_set_error(DP_ERR_IO, "%s: cannot create a temp file: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    int rc = 0;
    if (fd_out && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        rc = dp_set_error(DP_ERR_IO, "%s: flock: %s", tmp, strerror(errno));
        goto fail;
    }
    if ((rc = write_compact(ix, fd, ov))) goto fail;
    if (fchmod(fd, 0644) != 0 || rename(tmp, path) != 0) {
        rc = dp_set_error(DP_ERR_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    fsync_dir_of(path);
    free(tmp);
    if (fd_out)
        *fd_out = fd;
    else
        close(fd);
    return 0;
fail:
    close(fd);
    unlink(tmp);
    free(tmp);
    return rc;
}

/* Replace ix's state by a fresh load of fd (taking it over). */
static int ix_reload(dp_index *ix, int fd)
{
    dp_index *n = ix_alloc(ix->path);
    if (!n) {
        close(fd);
        return dp_set_error(DP_ERR_NOMEM, "out of memory");
    }
    n->fd = fd;
    n->writable = true;
    int rc = ix_map_load(n);
    if (rc) {
        dp_index_free(n);
        return rc;
    }
    ix_take(ix, n);
    dp_index_free(n);
    ix->dirty = false;
    return 0;
}

static int do_compact(dp_index *ix)
{
    int fd = -1;
    int rc = save_compact(ix, ix->path, &fd, NULL);
    if (rc) return rc;
    if (ix->fd >= 0) close(ix->fd); /* the old file's lock goes with it */
    ix->fd = -1;
    return ix_reload(ix, fd);
}

/* Append the pending rows, deletions and failures plus a new directory. */
static int do_append(dp_index *ix)
{
    wr w = {.fd = ix->fd, .off = align_up(ix->file_bytes), .cap = 1 << 20};
    size_t nsec = 0, cap = ix->n_all_secs + 6 + ix->n_named;
    dpx_sec *secs = calloc(cap, sizeof *secs);
    int rc = 0;
    if (!secs || !(w.buf = malloc(w.cap))) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < ix->n_all_secs; i++) {
        uint32_t k = ix->all_secs[i].kind;
        if ((k == DPX_SEC_DELETED && ix->deleted_dirty) ||
            (k == DPX_SEC_FAILURES && ix->fail_dirty))
            continue;
        if (k == DPX_SEC_NAMED) {
            const dpx_named *n = named_find(ix, sec_label(ix->map, &ix->all_secs[i]));
            if (!n || n->dropped || n->has_pend) continue; /* replaced or gone */
        }
        secs[nsec++] = ix->all_secs[i];
    }
    if (ix->pending && ix->p_n) {
        uint32_t g = (uint32_t)ix->n_committed_seg;
        sec_begin(&w);
        wr_data(&w, ix->p_vec, ix->p_n * ix->dim * sizeof(float));
        secs[nsec++] = sec_end(&w, DPX_SEC_VECTORS, g, ix->p_n);
        sec_begin(&w);
        wr_data(&w, ix->p_ids, ix->p_n * sizeof(uint64_t));
        secs[nsec++] = sec_end(&w, DPX_SEC_IDS, g, ix->p_n);
        sec_begin(&w);
        wr_data(&w, ix->p_ent, ix->p_n * sizeof(dpx_entry));
        secs[nsec++] = sec_end(&w, DPX_SEC_ENTRIES, g, ix->p_n);
        sec_begin(&w);
        wr_data(&w, ix->p_str, ix->p_str_len);
        secs[nsec++] = sec_end(&w, DPX_SEC_STRINGS, g, ix->p_str_len);
    }
    if (ix->deleted_dirty && ix->n_deleted) {
        qsort(ix->deleted, ix->n_deleted, sizeof(uint64_t), cmp_u64);
        sec_begin(&w);
        wr_data(&w, ix->deleted, ix->n_deleted * sizeof(uint64_t));
        secs[nsec++] = sec_end(&w, DPX_SEC_DELETED, 0, ix->n_deleted);
    }
    if (ix->fail_dirty && ix->n_fail) {
        sec_begin(&w);
        write_failures(ix, &w);
        secs[nsec++] = sec_end(&w, DPX_SEC_FAILURES, 0, ix->n_fail);
    }
    for (size_t i = 0; i < ix->n_named; i++)
        if (ix->named[i].has_pend && !ix->named[i].dropped)
            secs[nsec++] = write_named(&w, &ix->named[i]);
    rc = finish_commit(ix, &w, secs, nsec, 1 - ix->slot, ix->seq + 1, false);
    if (!rc) {
        int fd = ix->fd;
        ix->fd = -1; /* the reload takes it over, lock and all */
        rc = ix_reload(ix, fd);
    }
done:
    free(secs);
    free(w.buf);
    return rc;
}

int dp_index_commit(dp_index *ix)
{
    if (!ix->writable)
        return dp_set_error(DP_ERR_INVALID, "dp_index_commit: %s is open read-only", ix->path);
    if (!ix->dirty && ix->ever_written) return 0;
    int rc;
    size_t dead_rows = ix->rows - ix->live;
    if (!ix->ever_written || ix->n_committed_seg + 1 > MAX_SEGMENTS ||
        (dead_rows > 1024 && dead_rows * 2 > ix->rows))
        rc = do_compact(ix);
    else
        rc = do_append(ix);
    return rc ? dp_prefix_error(rc, "dp_index_commit") : 0;
}

int dp_index_compact(dp_index *ix)
{
    if (!ix->writable)
        return dp_set_error(DP_ERR_INVALID, "dp_index_compact: %s is open read-only", ix->path);
    int rc = do_compact(ix);
    return rc ? dp_prefix_error(rc, "dp_index_compact") : 0;
}

int dp_index_save_as(const dp_index *ix, const char *path)
{
    if (!path) return dp_set_error(DP_ERR_INVALID, "dp_index_save_as: no path");
    int rc = save_compact(ix, path, NULL, NULL);
    return rc ? dp_prefix_error(rc, "dp_index_save_as") : 0;
}

/* ---- inspection ----------------------------------------------------------- */

size_t dp_index_count(const dp_index *ix)
{
    return ix->live;
}
uint32_t dp_index_dim(const dp_index *ix)
{
    return ix->dim;
}
int dp_index_metric(const dp_index *ix)
{
    return ix->metric;
}
bool dp_index_normalized(const dp_index *ix)
{
    return ix->normalized;
}
const char *dp_index_path(const dp_index *ix)
{
    return ix->path;
}

int dp_index_describe(const dp_index *ix, dp_index_info *out)
{
    memset(out, 0, sizeof *out);
    out->format_version = DPX_VERSION;
    out->file_bytes = ix->ever_written ? ix->file_bytes : 0;
    out->commit_seq = ix->seq;
    out->count = ix->live;
    out->rows = ix->rows;
    out->segments = ix->n_committed_seg;
    out->sections = ix->n_all_secs;
    out->dirty = ix->dirty;
    return 0;
}

int dp_index_section_at(const dp_index *ix, size_t i, dp_index_section *out)
{
    if (i >= ix->n_all_secs) return dp_set_error(DP_ERR_NOT_FOUND, "section index %zu", i);
    const dpx_sec *s = &ix->all_secs[i];
    out->name = sec_label(ix->map, s);
    out->segment = s->segment;
    out->offset = s->offset;
    out->bytes = s->bytes;
    out->count = s->count;
    out->crc32c = s->crc;
    return 0;
}

int dp_index_verify(const dp_index *ix)
{
    int rc;
    for (size_t i = 0; i < ix->n_all_secs; i++)
        if ((rc = sec_check_crc(ix, ix->map, &ix->all_secs[i]))) return rc;
    for (size_t g = 0; g < ix->n_committed_seg; g++) {
        const dpx_seg *s = &ix->segs[g];
        for (size_t i = 0; i < s->n; i++) {
            dp_index_entry e;
            if ((rc = fill_entry(ix, s->row0 + i, &e))) return rc;
            for (uint32_t j = 0; j < ix->dim; j++)
                if (!isfinite(e.vector[j]))
                    return FERR("%s: row %zu (id %llu): vector[%u] is not finite", ix->path,
                                s->row0 + i, (unsigned long long)e.id, j);
        }
    }
    return 0;
}

/* ---- named sections ------------------------------------------------------- */

int dp_index_put_section(dp_index *ix, const char *name, const void *data, size_t bytes)
{
    if (!ix->writable)
        return dp_set_error(DP_ERR_INVALID, "dp_index_put_section: %s is open read-only", ix->path);
    if (!name || !name_ok(name, strlen(name)))
        return dp_set_error(DP_ERR_INVALID,
                            "dp_index_put_section: section name '%s' is not 1..%u bytes of "
                            "[A-Za-z0-9._-]",
                            name ? name : "(null)", DPX_NAME_MAX);
    if (bytes && !data) return dp_set_error(DP_ERR_INVALID, "dp_index_put_section: data is NULL");
    void *copy = NULL;
    if (posix_memalign(&copy, DPX_ALIGN, bytes ? bytes : 1))
        return dp_set_error(DP_ERR_NOMEM, "dp_index_put_section: %s: out of memory for %zu bytes",
                            name, bytes);
    if (bytes) memcpy(copy, data, bytes);
    dpx_named *n = named_find(ix, name);
    if (!n && !(n = named_new(ix, name))) {
        free(copy);
        return dp_set_error(DP_ERR_NOMEM, "dp_index_put_section: out of memory");
    }
    free(n->pend);
    n->pend = copy;
    n->pend_bytes = bytes;
    n->has_pend = true;
    n->dropped = false;
    ix->dirty = true;
    return 0;
}

int dp_index_drop_section(dp_index *ix, const char *name)
{
    if (!ix->writable)
        return dp_set_error(DP_ERR_INVALID, "dp_index_drop_section: %s is open read-only",
                            ix->path);
    dpx_named *n = name ? named_find(ix, name) : NULL;
    if (!n || n->dropped)
        return dp_set_error(DP_ERR_NOT_FOUND, "%s: no section named '%s'", ix->path,
                            name ? name : "(null)");
    DP_FREE(n->pend);
    n->has_pend = false;
    n->dropped = true;
    ix->dirty = true;
    return 0;
}

int dp_index_get_section(const dp_index *ix, const char *name, const void **data, size_t *bytes)
{
    const dpx_named *n = name ? named_find(ix, name) : NULL;
    if (!n || n->dropped)
        return dp_set_error(DP_ERR_NOT_FOUND, "%s: no section named '%s'", ix->path,
                            name ? name : "(null)");
    *data = n->has_pend ? n->pend : n->data;
    *bytes = n->has_pend ? n->pend_bytes : (size_t)n->sec.count;
    return 0;
}

int dp_index_check_section(const dp_index *ix, const char *name)
{
    const dpx_named *n = name ? named_find(ix, name) : NULL;
    if (!n || n->dropped)
        return dp_set_error(DP_ERR_NOT_FOUND, "%s: no section named '%s'", ix->path,
                            name ? name : "(null)");
    if (n->has_pend) return 0;
    return sec_check_crc(ix, ix->map, &n->sec);
}

size_t dp_index_count_sections(const dp_index *ix, const char *prefix)
{
    size_t c = 0, pl = strlen(prefix);
    for (size_t i = 0; i < ix->n_named; i++)
        if (!ix->named[i].dropped && !strncmp(ix->named[i].name, prefix, pl)) c++;
    return c;
}

int dp_index_drop_sections(dp_index *ix, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < ix->n_named; i++)
        if (!ix->named[i].dropped && !strncmp(ix->named[i].name, prefix, pl)) {
            int rc = dp_index_drop_section(ix, ix->named[i].name);
            if (rc) return rc;
        }
    return 0;
}

/* ---- replacing every vector (PCA) ----------------------------------------- */

int dpx_replace_vectors(dp_index *ix, uint32_t dim, const float *vecs)
{
    if (!ix->writable) return dp_set_error(DP_ERR_INVALID, "%s is open read-only", ix->path);
    if (dim < 1 || dim > DPX_MAX_DIM)
        return dp_set_error(DP_ERR_INVALID, "%s: dim %u is not in 1..%u", ix->path, dim,
                            DPX_MAX_DIM);
    size_t nv;
    if (!dp_mul_ok(ix->live, dim, &nv)) return dp_set_error(DP_ERR_NOMEM, "too many rows");
    for (size_t i = 0; i < nv; i++)
        if (!isfinite(vecs[i]))
            return dp_set_error(DP_ERR_INVALID, "%s: new vector %zu: value %zu is not finite",
                                ix->path, i / dim, i % dim);
    /* The directory's doppel.dim must say the new dimension; put the old
     * one back if the write fails, so ix stays consistent with its rows. */
    uint32_t old = ix->dim;
    int rc = meta_put(ix, "doppel.dim", DP_META_I64, NULL, dim, 0);
    int fd = -1;
    vec_override ov = {dim, vecs};
    if (!rc) rc = save_compact(ix, ix->path, &fd, &ov);
    if (rc) {
        meta_put(ix, "doppel.dim", DP_META_I64, NULL, old, 0);
        return rc;
    }
    if (ix->fd >= 0) close(ix->fd);
    ix->fd = -1;
    return ix_reload(ix, fd);
}
