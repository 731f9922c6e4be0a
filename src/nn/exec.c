/* Executor: turns the inferred graph into a plan of oneDNN primitives and
 * host steps for one set of input shapes, plans memory, and runs it.
 *
 * Layouts: every runtime tensor carries the oneDNN memory descriptor it is
 * stored in. Convolutions ask for format "any" and get blocked layouts
 * (nChw16c on AVX-512); pooling, eltwise, binary, concat and batchnorm accept
 * whatever they are given, so blocked tensors flow between them untouched. A
 * tensor is reordered to plain C order only when a consumer needs plain data
 * (reshape, softmax, host steps, the caller), and at most once: the plain
 * twin is cached on the value.
 *
 * Memory: each step writes new buffers and reads old ones; a buffer lives
 * from its first write to its last read. After building, buffers are packed
 * into one arena, largest first, at the lowest offset that does not overlap
 * a buffer alive at the same time. Outputs the caller reads are pinned to
 * the end of the plan so nothing overwrites them. */
#define _GNU_SOURCE
#include "nn.h"

#include <limits.h>
#include <math.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <stdlib.h>
#include <string.h>

#define NN_MAX_ARENA ((size_t)16 << 30)
#define NN_MAX_ARGS 16

typedef struct nn_buf {
    size_t size;
    int first, last;
    int last_node; /* last node reading any value stored here */
    size_t off;
    int alias;   /* root buffer id, or -1 */
    size_t aoff; /* alias: byte offset into the root */
    bool pin, ext;
    void *ptr; /* ext: caller's input data for this run */
} nn_buf;

typedef struct nn_step {
    dnnl_primitive_t prim;
    int nargs;
    dnnl_exec_arg_t args[NN_MAX_ARGS];
    int node; /* host step: node id, else -1 */
    int n_in, n_out;
    int in_buf[16], out_buf[4]; /* host: buffer ids (-1 = fixed pointer) */
    void *in_ptr[16];
} nn_step;

typedef struct nn_rt {
    bool has;
    dnnl_memory_desc_t md;
    int buf;
    dnnl_memory_t mem;
    /* plain twin when md is blocked */
    bool has_plain;
    int pbuf;
    dnnl_memory_t pmem;
    /* another layout a consumer asked for (e.g. conv src) */
    bool has_alt;
    dnnl_memory_desc_t amd;
    int abuf;
    dnnl_memory_t amem;
    void *kdata; /* known data copy owned by the plan */
} nn_rt;

typedef struct nn_bind {
    dnnl_memory_t mem;
    int buf; /* -1: scratchpad */
} nn_bind;

struct nn_plan {
    nn_plan *next;
    int n_key;
    int64_t *key;
    nn_rt *rt;
    int n_values;
    nn_step *steps;
    int n_steps, cap_steps;
    nn_buf *bufs;
    int n_bufs, cap_bufs;
    nn_bind *binds;
    int n_binds, cap_binds;
    dnnl_memory_t *owned;
    int n_owned, cap_owned;
    void **owned_ptr;
    int n_owned_ptr, cap_owned_ptr;
    int *last_node; /* per value */
    void *arena;
    size_t arena_size;
    void *scratch;
    size_t scratch_size;
    void **out_ptr; /* per selected output */
    int *pending;   /* buffers read by the node being built */
    int n_pending, cap_pending;
    /* Concat in place (see plan_concat_slices): per value, the Concat node
     * whose output it is a slice of (-1 none) and its channel offset; per
     * node, the Concat output's root buffer once a slice is placed (-1) and
     * its channel block. */
    int *slot_node;
    int64_t *slot_coff;
    bool *slot_in;
    int *cat_root, *cat_blk;
    /* AveragePool divisors (see avgpool_as_dwconv), owned via owned_ptr */
    struct {
        int blk;
        int64_t key[10];
        float *data;
    } scales[16];
    int n_scales;
};

#define GROW(arr, n, cap, errlabel)                                                                \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            int nc_ = (cap) ? (cap)*2 : 32;                                                        \
            void *p_ = realloc((arr), (size_t)nc_ * sizeof *(arr));                                \
            if (!p_) goto errlabel;                                                                \
            (arr) = p_;                                                                            \
            (cap) = nc_;                                                                           \
        }                                                                                          \
    } while (0)

#define DNNL(n, call)                                                                              \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success)                                                                   \
            return nn_node_error((n), DP_ERR_BACKEND, "oneDNN: %s (%s)", dnnl_status2str(st_),     \
                                 #call);                                                           \
    } while (0)

static int root(const nn_plan *p, int b)
{
    while (b >= 0 && p->bufs[b].alias >= 0)
        b = p->bufs[b].alias;
    return b;
}

static int new_buf(nn_plan *p, size_t size)
{
    GROW(p->bufs, p->n_bufs, p->cap_bufs, oom);
    nn_buf *b = &p->bufs[p->n_bufs];
    memset(b, 0, sizeof *b);
    b->size = size;
    b->first = p->n_steps;
    b->last = p->n_steps;
    b->alias = -1;
    return p->n_bufs++;
oom:
    return dp_set_error(DP_ERR_NOMEM, "out of memory planning buffers");
}

/* An alias of buffer of, extra bytes further in. Aliases always point at a
 * root, so their offset is the whole offset. */
static int alias_buf_off(nn_plan *p, int of, size_t extra)
{
    int b = new_buf(p, 0);
    if (b < 0) return b;
    p->bufs[b].alias = root(p, of);
    p->bufs[b].aoff = (p->bufs[of].alias >= 0 ? p->bufs[of].aoff : 0) + extra;
    return b;
}

static int alias_buf(nn_plan *p, int of)
{
    return alias_buf_off(p, of, 0);
}

/* Marks a read by the node being built; the read happens at the node's last
 * step, which is only known once the node is built (see end_node). */
static void use_buf(nn_plan *p, int b)
{
    b = root(p, b);
    if (b < 0) return;
    if (p->bufs[b].last < p->n_steps) p->bufs[b].last = p->n_steps;
    if (p->n_pending == p->cap_pending) {
        int nc = p->cap_pending ? p->cap_pending * 2 : 32;
        int *np = realloc(p->pending, (size_t)nc * sizeof *np);
        if (!np) { /* cannot track: keep the buffer alive to the end */
            p->bufs[b].pin = true;
            return;
        }
        p->pending = np;
        p->cap_pending = nc;
    }
    p->pending[p->n_pending++] = b;
}

static void end_node(nn_plan *p)
{
    for (int i = 0; i < p->n_pending; i++) {
        nn_buf *b = &p->bufs[p->pending[i]];
        if (b->last < p->n_steps - 1) b->last = p->n_steps - 1;
    }
    p->n_pending = 0;
}

static void note_value(nn_plan *p, int b, int vid)
{
    b = root(p, b);
    if (b >= 0 && p->last_node[vid] > p->bufs[b].last_node)
        p->bufs[b].last_node = p->last_node[vid];
}

static int bind(nn_plan *p, dnnl_memory_t mem, int buf)
{
    GROW(p->binds, p->n_binds, p->cap_binds, oom);
    p->binds[p->n_binds].mem = mem;
    p->binds[p->n_binds].buf = buf;
    p->n_binds++;
    return 0;
oom:
    return dp_set_error(DP_ERR_NOMEM, "out of memory");
}

static int own(nn_plan *p, dnnl_memory_t mem)
{
    GROW(p->owned, p->n_owned, p->cap_owned, oom);
    p->owned[p->n_owned++] = mem;
    return 0;
oom:
    dnnl_memory_destroy(mem);
    return dp_set_error(DP_ERR_NOMEM, "out of memory");
}

static int own_ptr(nn_plan *p, void *ptr)
{
    GROW(p->owned_ptr, p->n_owned_ptr, p->cap_owned_ptr, oom);
    p->owned_ptr[p->n_owned_ptr++] = ptr;
    return 0;
oom:
    free(ptr);
    return dp_set_error(DP_ERR_NOMEM, "out of memory");
}

/* A memory object over a buffer, bound to the arena after planning. */
static int mem_on_buf(dp_model *m, nn_plan *p, const dnnl_memory_desc_t *md, int buf,
                      dnnl_memory_t *out)
{
    dnnl_memory_t mem;
    if (dnnl_memory_create(&mem, md, m->engine, DNNL_MEMORY_NONE) != dnnl_success)
        return dp_set_error(DP_ERR_BACKEND, "oneDNN: cannot create a memory object");
    int rc = own(p, mem);
    if (rc) return rc;
    if ((rc = bind(p, mem, buf))) return rc;
    *out = mem;
    return 0;
}

static int mem_on_ptr(dp_model *m, nn_plan *p, const dnnl_memory_desc_t *md, void *ptr,
                      dnnl_memory_t *out)
{
    dnnl_memory_t mem;
    if (dnnl_memory_create(&mem, md, m->engine, ptr) != dnnl_success)
        return dp_set_error(DP_ERR_BACKEND, "oneDNN: cannot create a memory object");
    *out = mem;
    return own(p, mem);
}

static dnnl_data_type_t dnnl_dt(int dtype)
{
    switch (dtype) {
    case DP_F32:
        return dnnl_f32;
    case DP_I32:
        return dnnl_s32;
    default:
        return dnnl_u8; /* i64/bool never reach oneDNN ops; used for byte copies */
    }
}

/* Plain C-order descriptor of dims (rank 0 becomes {1}); rank may be padded
 * on the left with ones. */
static void plain_md_dims(dnnl_memory_desc_t *md, int ndim, const int64_t *dims, int dtype,
                          int pad_to)
{
    dnnl_dims_t d, s;
    int r = ndim;
    int64_t mult = 1;
    if (dtype == DP_I64) mult = 8; /* i64 as u8 bytes in the last dim */
    int64_t tmp[DNNL_MAX_NDIMS];
    int nd = 0;
    if (pad_to > r)
        for (int i = 0; i < pad_to - r; i++)
            tmp[nd++] = 1;
    for (int i = 0; i < r; i++)
        tmp[nd++] = dims[i];
    if (nd == 0) tmp[nd++] = 1;
    if (mult != 1) tmp[nd - 1] *= mult;
    int64_t st = 1;
    for (int i = nd - 1; i >= 0; i--) {
        d[i] = tmp[i];
        s[i] = st;
        st *= tmp[i] ? tmp[i] : 1;
    }
    dnnl_memory_desc_init_by_strides(md, nd, d, dnnl_dt(dtype), s);
}

static void plain_md(dnnl_memory_desc_t *md, const nn_value *v)
{
    plain_md_dims(md, v->ndim, v->dims, v->dtype, 0);
}

static bool md_is_plain(const nn_value *v, const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t p;
    plain_md(&p, v);
    return dnnl_memory_desc_equal(&p, md);
}

static int add_step(nn_plan *p, nn_step **out)
{
    GROW(p->steps, p->n_steps, p->cap_steps, oom);
    nn_step *s = &p->steps[p->n_steps];
    memset(s, 0, sizeof *s);
    s->node = -1;
    *out = s;
    p->n_steps++;
    return 0;
oom:
    return dp_set_error(DP_ERR_NOMEM, "out of memory");
}

static void arg(nn_step *s, int a, dnnl_memory_t mem)
{
    if (s->nargs < NN_MAX_ARGS) {
        s->args[s->nargs].arg = a;
        s->args[s->nargs].memory = mem;
        s->nargs++;
    }
}

/* Creates the primitive for pd, with a scratchpad bound to the shared
 * scratch buffer. Takes ownership of pd. */
static int make_prim(dp_model *m, nn_plan *p, const nn_node *n, dnnl_primitive_desc_t pd,
                     nn_step *s)
{
    /* oneDNN 2.6 divides by dimensions while creating some primitives: a
     * matmul with an empty side raised SIGFPE inside libdnnl (found by
     * fuzz_onnx). Empty tensors never reach a primitive. */
    static const dnnl_query_t qs[] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md};
    for (size_t q = 0; q < sizeof qs / sizeof *qs; q++)
        for (int idx = 0; idx < 4; idx++) {
            const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, qs[q], idx);
            if (!md || md->ndims <= 0) continue;
            for (int d = 0; d < md->ndims; d++)
                if (md->dims[d] == 0) {
                    dnnl_primitive_desc_destroy(pd);
                    s->prim = NULL;
                    return nn_node_error(n, DP_ERR_UNSUPPORTED,
                                         "an empty tensor (a dimension of 0) cannot run here");
                }
        }
    dnnl_status_t st = dnnl_primitive_create(&s->prim, pd);
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    int rc = 0;
    if (st != dnnl_success) {
        rc = nn_node_error(n, DP_ERR_BACKEND, "oneDNN: cannot create primitive: %s",
                           dnnl_status2str(st));
        s->prim = NULL;
        goto done;
    }
    if (smd && dnnl_memory_desc_get_size(smd) > 0) {
        size_t sz = dnnl_memory_desc_get_size(smd);
        if (sz > p->scratch_size) p->scratch_size = sz;
        dnnl_memory_t mem;
        if ((rc = mem_on_buf(m, p, smd, -1, &mem))) goto done;
        arg(s, DNNL_ARG_SCRATCHPAD, mem);
    }
done:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

static dnnl_primitive_attr_t new_attr(void)
{
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    return attr;
}

/* Memory of a value as it is stored: runtime buffer or known data. */
static int value_mem(dp_model *m, nn_plan *p, int vid)
{
    nn_rt *r = &p->rt[vid];
    if (r->has) return 0;
    nn_value *v = &m->values[vid];
    if (!v->known)
        return dp_set_error(DP_ERR_FORMAT, "tensor '%s' is used before it is computed", v->name);
    void *ptr = v->data;
    if (!v->is_const) { /* re-computed per shape: keep the plan's own copy */
        size_t bytes = 0;
        int rc = nn_value_bytes(v, &bytes);
        if (rc) return rc;
        r->kdata = malloc(bytes ? bytes : 1);
        if (!r->kdata) return dp_set_error(DP_ERR_NOMEM, "out of memory");
        memcpy(r->kdata, v->data, bytes);
        if ((rc = own_ptr(p, r->kdata))) return rc;
        ptr = r->kdata;
    }
    plain_md(&r->md, v);
    r->buf = -1;
    r->has = true;
    return mem_on_ptr(m, p, &r->md, ptr, &r->mem);
}

static void *value_ptr(dp_model *m, nn_plan *p, int vid)
{
    nn_rt *r = &p->rt[vid];
    if (r->buf < 0) return r->kdata ? r->kdata : m->values[vid].data;
    return NULL;
}

/* A reorder step from (src md, mem) into a new buffer in layout dst. */
static int reorder_to(dp_model *m, nn_plan *p, const nn_node *n, int vid, int src_buf,
                      dnnl_memory_t src, const dnnl_memory_desc_t *smd,
                      const dnnl_memory_desc_t *dmd, int *dbuf, dnnl_memory_t *dmem)
{
    dnnl_primitive_desc_t pd;
    DNNL(n, dnnl_reorder_primitive_desc_create(&pd, smd, m->engine, dmd, m->engine, NULL));
    int b = new_buf(p, dnnl_memory_desc_get_size(dmd));
    if (b < 0) {
        dnnl_primitive_desc_destroy(pd);
        return b;
    }
    note_value(p, b, vid);
    int rc = mem_on_buf(m, p, dmd, b, dmem);
    nn_step *s;
    if (rc || (rc = add_step(p, &s))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    p->bufs[b].first = p->n_steps - 1;
    if (src_buf >= 0) use_buf(p, src_buf);
    arg(s, DNNL_ARG_FROM, src);
    arg(s, DNNL_ARG_TO, *dmem);
    if ((rc = make_prim(m, p, n, pd, s))) return rc;
    *dbuf = b;
    return 0;
}

/* The value in plain C order (reordering once if it is blocked). */
static int get_plain(dp_model *m, nn_plan *p, const nn_node *n, int vid, dnnl_memory_t *mem,
                     int *buf)
{
    int rc = value_mem(m, p, vid);
    if (rc) return rc;
    nn_rt *r = &p->rt[vid];
    nn_value *v = &m->values[vid];
    if (md_is_plain(v, &r->md)) {
        *mem = r->mem;
        *buf = r->buf;
        if (r->buf >= 0) use_buf(p, r->buf);
        return 0;
    }
    if (!r->has_plain) {
        dnnl_memory_desc_t pmd;
        plain_md(&pmd, v);
        if ((rc = reorder_to(m, p, n, vid, r->buf, r->mem, &r->md, &pmd, &r->pbuf, &r->pmem)))
            return rc;
        r->has_plain = true;
    }
    use_buf(p, r->pbuf);
    *mem = r->pmem;
    *buf = r->pbuf;
    return 0;
}

/* The value in layout md (for a consumer that chose it). */
static int get_as(dp_model *m, nn_plan *p, const nn_node *n, int vid, const dnnl_memory_desc_t *md,
                  dnnl_memory_t *mem)
{
    int rc = value_mem(m, p, vid);
    if (rc) return rc;
    nn_rt *r = &p->rt[vid];
    if (dnnl_memory_desc_equal(&r->md, md)) {
        if (r->buf >= 0) use_buf(p, r->buf);
        *mem = r->mem;
        return 0;
    }
    if (r->has_plain) {
        dnnl_memory_desc_t pmd;
        plain_md(&pmd, &m->values[vid]);
        if (dnnl_memory_desc_equal(&pmd, md)) {
            use_buf(p, r->pbuf);
            *mem = r->pmem;
            return 0;
        }
    }
    if (r->has_alt && dnnl_memory_desc_equal(&r->amd, md)) {
        use_buf(p, r->abuf);
        *mem = r->amem;
        return 0;
    }
    if (r->has_alt) { /* replace the cached alternative */
        use_buf(p, r->abuf);
    }
    if ((rc = reorder_to(m, p, n, vid, r->buf, r->mem, &r->md, md, &r->abuf, &r->amem))) return rc;
    r->amd = *md;
    r->has_alt = true;
    use_buf(p, r->abuf);
    *mem = r->amem;
    return 0;
}

/* md is a dense 4-D nChw8c or nChw16c layout without channel padding. */
static bool dense_cblocked(const dnnl_memory_desc_t *md, int *blk)
{
    if (md->ndims != 4 || md->format_kind != dnnl_blocked || md->data_type != dnnl_f32)
        return false;
    const dnnl_blocking_desc_t *bd = &md->format_desc.blocking;
    if (bd->inner_nblks != 1 || bd->inner_idxs[0] != 1) return false;
    int b = (int)bd->inner_blks[0];
    if ((b != 8 && b != 16) || md->dims[1] % b) return false;
    dnnl_memory_desc_t ref;
    if (dnnl_memory_desc_init_by_tag(&ref, 4, md->dims, dnnl_f32,
                                     b == 8 ? dnnl_aBcd8b : dnnl_aBcd16b) != dnnl_success ||
        !dnnl_memory_desc_equal(&ref, md))
        return false;
    *blk = b;
    return true;
}

/* A buffer for value vid in layout md: its slice of a Concat output when
 * plan_concat_slices chose it and the producer picked a layout that keeps
 * the slice contiguous, else a fresh buffer. */
static int value_buf(dp_model *m, nn_plan *p, int vid, const dnnl_memory_desc_t *md)
{
    int c = p->slot_node[vid], blk;
    if (c < 0 || !dense_cblocked(md, &blk)) return new_buf(p, dnnl_memory_desc_get_size(md));
    if (p->cat_root[c] < 0) {
        const nn_value *y = &m->values[m->nodes[c].out[0]];
        dnnl_memory_desc_t ymd;
        dnnl_dims_t yd = {y->dims[0], y->dims[1], y->dims[2], y->dims[3]};
        if (dnnl_memory_desc_init_by_tag(&ymd, 4, yd, dnnl_f32,
                                         blk == 8 ? dnnl_aBcd8b : dnnl_aBcd16b) != dnnl_success)
            return new_buf(p, dnnl_memory_desc_get_size(md));
        int r = new_buf(p, dnnl_memory_desc_get_size(&ymd));
        if (r < 0) return r;
        p->cat_root[c] = r;
        p->cat_blk[c] = blk;
    }
    if (p->cat_blk[c] != blk) return new_buf(p, dnnl_memory_desc_get_size(md));
    const nn_value *v = &m->values[vid];
    int b = alias_buf_off(p, p->cat_root[c],
                          (size_t)(p->slot_coff[vid] * v->dims[2] * v->dims[3]) * sizeof(float));
    if (b >= 0) p->slot_in[vid] = true;
    return b;
}

/* Defines value vid as stored in md in a fresh buffer (or alias_of). */
static int def_value(dp_model *m, nn_plan *p, int vid, const dnnl_memory_desc_t *md, int alias_of)
{
    nn_rt *r = &p->rt[vid];
    int b = alias_of >= 0 ? alias_buf(p, alias_of) : value_buf(m, p, vid, md);
    if (b < 0) return b;
    r->md = *md;
    r->buf = b;
    r->has = true;
    note_value(p, b, vid);
    if (m->values[vid].keep) p->bufs[root(p, b)].pin = true;
    return mem_on_buf(m, p, md, b, &r->mem);
}

/* ---- post-ops ---- */

static int build_post_ops(dp_model *m, nn_plan *p, const nn_node *n, dnnl_primitive_attr_t attr,
                          int *sum_value, int first_post)
{
    (void)m;
    (void)p;
    dnnl_post_ops_t po;
    *sum_value = -1;
    if (n->n_post <= first_post) return 0;
    DNNL(n, dnnl_post_ops_create(&po));
    for (int i = first_post; i < n->n_post; i++) {
        const nn_post *q = &n->post[i];
        dnnl_status_t st;
        if (q->is_sum) {
            st = dnnl_post_ops_append_sum(po, 1.0f);
            *sum_value = q->value;
        } else {
            st = dnnl_post_ops_append_eltwise(po, 1.0f, q->alg, q->alpha, q->beta);
        }
        if (st != dnnl_success) {
            dnnl_post_ops_destroy(po);
            return nn_node_error(n, DP_ERR_BACKEND, "oneDNN post-op: %s", dnnl_status2str(st));
        }
    }
    dnnl_status_t st = dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    if (st != dnnl_success)
        return nn_node_error(n, DP_ERR_BACKEND, "oneDNN post-ops: %s", dnnl_status2str(st));
    return 0;
}

/* Output of a node with a sum post-op: the summed tensor's buffer is taken
 * over when nobody reads it later, else copied first. */
static int def_sum_output(dp_model *m, nn_plan *p, const nn_node *n, int vid, int node_id,
                          int sum_vid, const dnnl_memory_desc_t *dst_md)
{
    dnnl_memory_t smem;
    int rc = get_as(m, p, n, sum_vid, dst_md, &smem);
    if (rc) return rc;
    nn_rt *sr = &p->rt[sum_vid];
    int sbuf = -1;
    if (dnnl_memory_desc_equal(&sr->md, dst_md))
        sbuf = sr->buf;
    else if (sr->has_alt && dnnl_memory_desc_equal(&sr->amd, dst_md))
        sbuf = sr->abuf;
    else if (sr->has_plain)
        sbuf = sr->pbuf;
    int rb = root(p, sbuf);
    bool steal = rb >= 0 && !p->bufs[rb].ext && !p->bufs[rb].pin &&
                 p->bufs[rb].last_node <= node_id && !m->values[sum_vid].keep;
    /* never write over a tensor this same node reads (e.g. a residual that
     * is also the conv's input) */
    for (int k = 0; k < n->n_in && steal; k++) {
        if (n->in[k] < 0 || !p->rt[n->in[k]].has) continue;
        const nn_rt *ir = &p->rt[n->in[k]];
        if (root(p, ir->buf) == rb || (ir->has_plain && root(p, ir->pbuf) == rb) ||
            (ir->has_alt && root(p, ir->abuf) == rb))
            steal = false;
    }
    if (steal) {
        /* later readers of sum_vid's other layouts are gone too */
        return def_value(m, p, vid, dst_md, sbuf);
    }
    if ((rc = def_value(m, p, vid, dst_md, -1))) return rc;
    dnnl_primitive_desc_t pd;
    DNNL(n, dnnl_reorder_primitive_desc_create(&pd, dst_md, m->engine, dst_md, m->engine, NULL));
    nn_step *s;
    if ((rc = add_step(p, &s))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    p->bufs[root(p, p->rt[vid].buf)].first = p->n_steps - 1;
    if (sbuf >= 0) use_buf(p, sbuf);
    arg(s, DNNL_ARG_FROM, smem);
    arg(s, DNNL_ARG_TO, p->rt[vid].mem);
    return make_prim(m, p, n, pd, s);
}

/* ---- op builders ---- */

int nn_window(const nn_node *n, int64_t in, int64_t k, int64_t s, int64_t d, int64_t *pl,
              int64_t *pr, bool ceil_mode, int64_t *out);

static int build_conv(dp_model *m, nn_plan *p, nn_node *n, int node_id)
{
    nn_value *x = &m->values[n->in[0]], *w = &m->values[n->in[1]], *y = &m->values[n->out[0]];
    bool has_b = n->n_in > 2 && n->in[2] >= 0;
    int sp = x->ndim - 2, rc;
    int64_t g = n->a.group;
    bool deconv = n->op == OP_CONVT;
    dnnl_dims_t strides, dil, pl, pr;
    for (int i = 0; i < sp; i++) {
        nn_attrs *a = &n->a;
        int64_t k = w->dims[2 + i], s = a->ns ? a->strides[i] : 1, d = a->nd ? a->dil[i] : 1;
        int64_t l = a->np ? a->pads[i] : 0, r = a->np ? a->pads[i + sp] : 0, o;
        if (!deconv) {
            if ((rc = nn_window(n, x->dims[2 + i], k, s, d, &l, &r, false, &o))) return rc;
        } else {
            int64_t op = a->nop ? a->out_pad[i] : 0;
            int64_t full = s * (x->dims[2 + i] - 1) + op + (k - 1) * d + 1;
            if (a->nos || a->auto_pad == 1 || a->auto_pad == 2) {
                int64_t total = full - y->dims[2 + i];
                if (total < 0) { /* output_shape beyond the full size: extend at the end */
                    l = 0;
                    r = total;
                } else if (a->auto_pad == 1) {
                    l = total / 2;
                    r = total - l;
                } else {
                    r = total / 2;
                    l = total - r;
                }
            } else if (a->auto_pad == 3) {
                l = r = 0;
            }
            /* oneDNN's output size has no output_padding term: a negative
             * right pad extends the output instead */
            r -= op;
        }
        strides[i] = s;
        dil[i] = d - 1;
        pl[i] = l;
        pr[i] = r;
    }
    /* weights: plain OIHW (GOIHW with groups); ConvTranspose stores IOHW */
    dnnl_memory_desc_t wplain, wany, bmd, xany, yany, *xmd_actual;
    {
        dnnl_dims_t d, s;
        int nd = 0;
        int64_t K = 1;
        for (int i = 0; i < sp; i++)
            K *= w->dims[2 + i];
        int64_t st = K;
        if (!deconv) {
            int64_t og = w->dims[0] / g, ig = w->dims[1];
            if (g > 1) {
                d[nd] = g;
                s[nd++] = og * ig * K;
            }
            d[nd] = og;
            s[nd++] = ig * K;
            d[nd] = ig;
            s[nd++] = K;
        } else {
            int64_t ig = w->dims[0] / g, og = w->dims[1];
            if (g > 1) {
                d[nd] = g;
                s[nd++] = ig * og * K;
            }
            d[nd] = og;
            s[nd++] = K;
            d[nd] = ig;
            s[nd++] = og * K;
        }
        for (int i = sp - 1; i >= 0; i--) {
            st /= w->dims[2 + i];
            (void)st;
        }
        int64_t acc = 1;
        for (int i = sp - 1; i >= 0; i--) {
            d[nd + i] = w->dims[2 + i];
            s[nd + i] = acc;
            acc *= w->dims[2 + i];
        }
        nd += sp;
        DNNL(n, dnnl_memory_desc_init_by_strides(&wplain, nd, d, dnnl_f32, s));
        DNNL(n, dnnl_memory_desc_init_by_tag(&wany, nd, d, dnnl_f32, dnnl_format_tag_any));
    }
    if (has_b) {
        dnnl_dims_t bd = {y->dims[1]};
        DNNL(n, dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_a));
    }
    dnnl_dims_t xd, yd;
    for (int i = 0; i < x->ndim; i++) {
        xd[i] = x->dims[i];
        yd[i] = y->dims[i];
    }
    DNNL(n, dnnl_memory_desc_init_by_tag(&xany, x->ndim, xd, dnnl_f32, dnnl_format_tag_any));
    DNNL(n, dnnl_memory_desc_init_by_tag(&yany, y->ndim, yd, dnnl_f32, dnnl_format_tag_any));
    if ((rc = value_mem(m, p, n->in[0]))) return rc;
    xmd_actual = &p->rt[n->in[0]].md;
    (void)xmd_actual;
    bool w_const = w->is_const;
    dnnl_primitive_attr_t attr = new_attr();
    if (!attr) return nn_node_error(n, DP_ERR_NOMEM, "oneDNN attr");
    int sum_vid = -1;
    if ((rc = build_post_ops(m, p, n, attr, &sum_vid, 0))) {
        dnnl_primitive_attr_destroy(attr);
        return rc;
    }
    /* With a sum post-op the destination layout must match the summed
     * tensor, so ask for its layout when it is already blocked. */
    dnnl_memory_desc_t dst_req = yany;
    if (sum_vid >= 0) {
        if ((rc = value_mem(m, p, sum_vid))) {
            dnnl_primitive_attr_destroy(attr);
            return rc;
        }
        dst_req = p->rt[sum_vid].md;
    }
    union {
        dnnl_convolution_desc_t c;
        dnnl_deconvolution_desc_t d;
    } desc;
    dnnl_status_t st;
    const dnnl_memory_desc_t *wreq = w_const ? &wany : &wplain;
    if (!deconv)
        st = dnnl_dilated_convolution_forward_desc_init(
            &desc.c, dnnl_forward_inference, dnnl_convolution_direct, &xany, wreq,
            has_b ? &bmd : NULL, &dst_req, strides, dil, pl, pr);
    else
        st = dnnl_dilated_deconvolution_forward_desc_init(
            &desc.d, dnnl_forward_inference, dnnl_deconvolution_direct, &xany, wreq,
            has_b ? &bmd : NULL, &dst_req, strides, dil, pl, pr);
    dnnl_primitive_desc_t pd = NULL;
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, m->engine, NULL);
    if (st != dnnl_success && sum_vid >= 0) {
        /* the summed tensor's layout did not suit; let the conv choose */
        dst_req = yany;
        if (!deconv)
            st = dnnl_dilated_convolution_forward_desc_init(
                &desc.c, dnnl_forward_inference, dnnl_convolution_direct, &xany, wreq,
                has_b ? &bmd : NULL, &dst_req, strides, dil, pl, pr);
        else
            st = dnnl_dilated_deconvolution_forward_desc_init(
                &desc.d, dnnl_forward_inference, dnnl_deconvolution_direct, &xany, wreq,
                has_b ? &bmd : NULL, &dst_req, strides, dil, pl, pr);
        if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, m->engine, NULL);
    }
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return nn_node_error(n, DP_ERR_BACKEND, "oneDNN cannot run this convolution: %s",
                             dnnl_status2str(st));
    const dnnl_memory_desc_t *src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_memory_desc_t dmd = *dst_md;
    dnnl_memory_t xmem, wmem, bmem = NULL;
    if ((rc = get_as(m, p, n, n->in[0], src_md, &xmem))) goto fail;
    if (w_const) {
        /* reorder the weights once, at plan time */
        dnnl_memory_t wsrc = NULL;
        if ((rc = mem_on_ptr(m, p, &wplain, w->data, &wsrc))) goto fail;
        if ((rc = mem_on_ptr(m, p, w_md, DNNL_MEMORY_ALLOCATE, &wmem))) goto fail;
        dnnl_primitive_desc_t rpd;
        dnnl_primitive_t rp;
        if (dnnl_reorder_primitive_desc_create(&rpd, &wplain, m->engine, w_md, m->engine, NULL) !=
            dnnl_success) {
            rc = nn_node_error(n, DP_ERR_BACKEND, "oneDNN: weights reorder");
            goto fail;
        }
        st = dnnl_primitive_create(&rp, rpd);
        dnnl_primitive_desc_destroy(rpd);
        if (st != dnnl_success) {
            rc = nn_node_error(n, DP_ERR_BACKEND, "oneDNN: weights reorder");
            goto fail;
        }
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, wsrc}, {DNNL_ARG_TO, wmem}};
        st = dnnl_primitive_execute(rp, m->stream, 2, ra);
        dnnl_stream_wait(m->stream);
        dnnl_primitive_destroy(rp);
        if (st != dnnl_success) {
            rc = nn_node_error(n, DP_ERR_BACKEND, "oneDNN: weights reorder");
            goto fail;
        }
    } else {
        /* runtime weights: view the plain tensor with the grouped dims */
        int wb;
        dnnl_memory_t wm0;
        if ((rc = get_plain(m, p, n, n->in[1], &wm0, &wb))) goto fail;
        if (wb >= 0)
            rc = mem_on_buf(m, p, &wplain, wb, &wmem);
        else
            rc = mem_on_ptr(m, p, &wplain, value_ptr(m, p, n->in[1]), &wmem);
        if (rc) goto fail;
    }
    if (has_b) {
        if ((rc = get_as(m, p, n, n->in[2], &bmd, &bmem))) goto fail;
    }
    if (sum_vid >= 0)
        rc = def_sum_output(m, p, n, n->out[0], node_id, sum_vid, &dmd);
    else
        rc = def_value(m, p, n->out[0], &dmd, -1);
    if (rc) goto fail;
    nn_step *s;
    if ((rc = add_step(p, &s))) goto fail;
    p->bufs[root(p, p->rt[n->out[0]].buf)].first =
        p->bufs[root(p, p->rt[n->out[0]].buf)].first < p->n_steps - 1
            ? p->bufs[root(p, p->rt[n->out[0]].buf)].first
            : p->n_steps - 1;
    arg(s, DNNL_ARG_SRC, xmem);
    arg(s, DNNL_ARG_WEIGHTS, wmem);
    if (bmem) arg(s, DNNL_ARG_BIAS, bmem);
    arg(s, DNNL_ARG_DST, p->rt[n->out[0]].mem);
    return make_prim(m, p, n, pd, s);
fail:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* Adds a step for pd reading srcs and writing the node's output in the
 * layout the primitive chose. */
static int finish_simple(dp_model *m, nn_plan *p, const nn_node *n, dnnl_primitive_desc_t pd,
                         const int *arg_ids, dnnl_memory_t *mems, int nm, int out_vid,
                         int alias_buf)
{
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_memory_desc_t dmd = *dst_md;
    int rc = def_value(m, p, out_vid, &dmd, alias_buf);
    nn_step *s;
    if (rc || (rc = add_step(p, &s))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    for (int i = 0; i < nm; i++)
        arg(s, arg_ids[i], mems[i]);
    arg(s, DNNL_ARG_DST, p->rt[out_vid].mem);
    return make_prim(m, p, n, pd, s);
}

static int eltwise_alg(const dp_model *m, const nn_node *n, dnnl_alg_kind_t *alg, float *alpha,
                       float *beta)
{
    *alpha = 0;
    *beta = 0;
    switch (n->op) {
    case OP_RELU:
        *alg = dnnl_eltwise_relu;
        break;
    case OP_LEAKY:
        *alg = dnnl_eltwise_relu;
        *alpha = n->a.alpha;
        break;
    case OP_CLIP: {
        *alg = dnnl_eltwise_clip_v2;
        float lo = -INFINITY, hi = INFINITY;
        if (m->opset < 11) {
            if (n->a.has_min) lo = n->a.min;
            if (n->a.has_max) hi = n->a.max;
        } else {
            if (n->n_in > 1 && n->in[1] >= 0) lo = *(const float *)m->values[n->in[1]].data;
            if (n->n_in > 2 && n->in[2] >= 0) hi = *(const float *)m->values[n->in[2]].data;
        }
        *alpha = lo;
        *beta = hi;
        break;
    }
    case OP_SIGMOID:
        *alg = dnnl_eltwise_logistic;
        break;
    case OP_HSWISH:
        *alg = dnnl_eltwise_hardswish;
        break;
    case OP_TANH:
        *alg = dnnl_eltwise_tanh;
        break;
    case OP_ELU:
        *alg = dnnl_eltwise_elu;
        *alpha = n->a.alpha;
        break;
    case OP_EXP:
        *alg = dnnl_eltwise_exp;
        break;
    case OP_LOG:
        *alg = dnnl_eltwise_log;
        break;
    case OP_ABS:
        *alg = dnnl_eltwise_abs;
        break;
    case OP_SQRT:
        *alg = dnnl_eltwise_sqrt;
        break;
    case OP_SOFTPLUS:
        *alg = dnnl_eltwise_soft_relu;
        break;
    case OP_NEG:
        *alg = dnnl_eltwise_linear;
        *alpha = -1;
        break;
    case OP_HSIGMOID: /* linear here, clip(0,1) as a second op */
        *alg = dnnl_eltwise_linear;
        *alpha = n->a.alpha;
        *beta = n->a.beta;
        break;
    default:
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "not an eltwise op");
    }
    return 0;
}

/* An eltwise step applied in place on a value's memory (oneDNN allows
 * src == dst for eltwise). */
static int inplace_eltwise(dp_model *m, nn_plan *p, const nn_node *n, int vid, dnnl_alg_kind_t alg,
                           float alpha, float beta)
{
    nn_rt *r = &p->rt[vid];
    dnnl_eltwise_desc_t d;
    int rc;
    DNNL(n, dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, alg, &r->md, alpha, beta));
    dnnl_primitive_attr_t attr = new_attr();
    if (!attr) return nn_node_error(n, DP_ERR_NOMEM, "oneDNN attr");
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &d, attr, m->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return nn_node_error(n, DP_ERR_BACKEND, "oneDNN eltwise: %s", dnnl_status2str(st));
    nn_step *s;
    if ((rc = add_step(p, &s))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    use_buf(p, r->buf);
    arg(s, DNNL_ARG_SRC, r->mem);
    arg(s, DNNL_ARG_DST, r->mem);
    return make_prim(m, p, n, pd, s);
}

static int build_eltwise(dp_model *m, nn_plan *p, nn_node *n)
{
    int rc = value_mem(m, p, n->in[0]);
    if (rc) return rc;
    nn_rt *xr = &p->rt[n->in[0]];
    dnnl_alg_kind_t alg = dnnl_eltwise_relu;
    float alpha, beta;
    if ((rc = eltwise_alg(m, n, &alg, &alpha, &beta))) return rc;
    dnnl_eltwise_desc_t d;
    DNNL(n, dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, alg, &xr->md, alpha, beta));
    dnnl_primitive_attr_t attr = new_attr();
    if (!attr) return nn_node_error(n, DP_ERR_NOMEM, "oneDNN attr");
    int sum_vid = -1;
    if ((rc = build_post_ops(m, p, n, attr, &sum_vid, 0))) {
        dnnl_primitive_attr_destroy(attr);
        return rc;
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &d, attr, m->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return nn_node_error(n, DP_ERR_BACKEND, "oneDNN eltwise: %s", dnnl_status2str(st));
    if (xr->buf >= 0) use_buf(p, xr->buf);
    int ids[1] = {DNNL_ARG_SRC};
    dnnl_memory_t mems[1] = {xr->mem};
    if ((rc = finish_simple(m, p, n, pd, ids, mems, 1, n->out[0], -1))) return rc;
    if (n->op == OP_HSIGMOID) /* max(0, min(1, alpha x + beta)) */
        return inplace_eltwise(m, p, n, n->out[0], dnnl_eltwise_clip_v2, 0.0f, 1.0f);
    return 0;
}

/* AveragePool as a depthwise convolution. oneDNN 2.6's AVX2 average pooling
 * divides every output vector (12 vdivps per row of outputs) and runs 3-5x
 * slower than its depthwise convolution over the same window (InceptionV3's
 * branch pools: 0.63 ms vs 0.13 ms for 768x17x17). Weights 1/(kh*kw) give
 * count_include_pad=1; for the default exclude-padding average the weights
 * are 1 and a binary-multiply post-op by 1/(taps inside the image) per output
 * pixel does the division. That tensor repeats every channel block, so one
 * buffer serves every pool with the same window geometry at any batch and
 * channel count up to the largest in the graph. Returns 1 (nothing built)
 * when the case or the implementation oneDNN offers does not suit. */
static int avgpool_as_dwconv(dp_model *m, nn_plan *p, nn_node *n, const dnnl_dims_t strides,
                             const dnnl_dims_t kernel, const dnnl_dims_t pl, const dnnl_dims_t pr)
{
    nn_value *x = &m->values[n->in[0]], *y = &m->values[n->out[0]];
    nn_rt *xr = &p->rt[n->in[0]];
    int blk, rc;
    if (x->ndim != 4 || x->dtype != DP_F32 || !dense_cblocked(&xr->md, &blk)) return 1;
    for (int i = 0; i < 2; i++)
        if (n->a.nd && n->a.dil[i] != 1) return 1;
    for (int k = 0; k < n->n_post; k++)
        if (n->post[k].is_sum) return 1;
    bool incl = n->a.count_include_pad != 0;
    int64_t C = x->dims[1], OH = y->dims[2], OW = y->dims[3];
    dnnl_dims_t wd = {C, 1, 1, kernel[0], kernel[1]}, yd = {y->dims[0], C, OH, OW};
    dnnl_dims_t dil = {0, 0};
    dnnl_memory_desc_t wplain, wany, ymd;
    DNNL(n, dnnl_memory_desc_init_by_tag(&wplain, 5, wd, dnnl_f32, dnnl_goihw));
    DNNL(n, dnnl_memory_desc_init_by_tag(&wany, 5, wd, dnnl_f32, dnnl_format_tag_any));
    DNNL(n, dnnl_memory_desc_init_by_tag(&ymd, 4, yd, dnnl_f32,
                                         blk == 8 ? dnnl_aBcd8b : dnnl_aBcd16b));
    dnnl_convolution_desc_t cd;
    DNNL(n, dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                       dnnl_convolution_direct, &xr->md, &wany,
                                                       NULL, &ymd, strides, dil, pl, pr));
    dnnl_primitive_attr_t attr = new_attr();
    if (!attr) return nn_node_error(n, DP_ERR_NOMEM, "oneDNN attr");
    dnnl_post_ops_t po;
    if (dnnl_post_ops_create(&po) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return nn_node_error(n, DP_ERR_NOMEM, "oneDNN post-ops");
    }
    if (!incl) dnnl_post_ops_append_binary(po, dnnl_binary_mul, &ymd);
    for (int k = 0; k < n->n_post; k++)
        dnnl_post_ops_append_eltwise(po, 1.0f, n->post[k].alg, n->post[k].alpha, n->post[k].beta);
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, m->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    const char *impl = NULL;
    if (st == dnnl_success) dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (st != dnnl_success || !impl || strncmp(impl, "jit", 3)) {
        if (pd) dnnl_primitive_desc_destroy(pd);
        return 1; /* a reference kernel would be slower than pooling */
    }
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_t wsrc = NULL, wmem = NULL, smem = NULL;
    size_t nw = (size_t)(C * kernel[0] * kernel[1]);
    float *w = malloc(nw * sizeof *w);
    if (!w || (rc = own_ptr(p, w))) {
        dnnl_primitive_desc_destroy(pd);
        return w ? rc : dp_set_error(DP_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < nw; i++)
        w[i] = incl ? 1.0f / (float)(kernel[0] * kernel[1]) : 1.0f;
    if ((rc = mem_on_ptr(m, p, &wplain, w, &wsrc)) ||
        (rc = mem_on_ptr(m, p, w_md, DNNL_MEMORY_ALLOCATE, &wmem)))
        goto fail;
    {
        dnnl_primitive_desc_t rpd;
        dnnl_primitive_t rp;
        if (dnnl_reorder_primitive_desc_create(&rpd, &wplain, m->engine, w_md, m->engine, NULL) !=
            dnnl_success) {
            rc = nn_node_error(n, DP_ERR_BACKEND, "oneDNN: weights reorder");
            goto fail;
        }
        st = dnnl_primitive_create(&rp, rpd);
        dnnl_primitive_desc_destroy(rpd);
        if (st != dnnl_success) {
            rc = nn_node_error(n, DP_ERR_BACKEND, "oneDNN: weights reorder");
            goto fail;
        }
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, wsrc}, {DNNL_ARG_TO, wmem}};
        st = dnnl_primitive_execute(rp, m->stream, 2, ra);
        dnnl_stream_wait(m->stream);
        dnnl_primitive_destroy(rp);
        if (st != dnnl_success) {
            rc = nn_node_error(n, DP_ERR_BACKEND, "oneDNN: weights reorder");
            goto fail;
        }
    }
    if (!incl) {
        /* 1/count per output pixel, repeated for every channel block: shared
         * by the pools with this geometry, sized for the largest of them */
        int64_t H = x->dims[2], W = x->dims[3];
        int64_t key[10] = {H,         W,          OH,         OW,    kernel[0],
                           kernel[1], strides[0], strides[1], pl[0], pl[1]};
        float *sc = NULL;
        for (int i = 0; i < p->n_scales && !sc; i++)
            if (p->scales[i].blk == blk && !memcmp(p->scales[i].key, key, sizeof key))
                sc = p->scales[i].data;
        if (!sc) {
            int64_t cmax = 0;
            for (int i = 0; i < m->n_nodes; i++) {
                const nn_node *o = &m->nodes[i];
                if (o->dead || o->op != OP_AVGPOOL) continue;
                const nn_value *ov = &m->values[o->out[0]];
                if (ov->ndim == 4 && ov->dims[2] == OH && ov->dims[3] == OW && ov->dims[1] > cmax)
                    cmax = ov->dims[1];
            }
            if (cmax < C) cmax = C;
            size_t plane = (size_t)(OH * OW), cnt = (size_t)y->dims[0] * (size_t)cmax * plane;
            sc = malloc(cnt * sizeof *sc + 64);
            if (!sc || (rc = own_ptr(p, sc))) {
                rc = sc ? rc : dp_set_error(DP_ERR_NOMEM, "out of memory");
                goto fail;
            }
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    int64_t h0 = oh * strides[0] - pl[0], w0 = ow * strides[1] - pl[1];
                    int64_t h1 = h0 + kernel[0], w1 = w0 + kernel[1];
                    h0 = h0 < 0 ? 0 : h0;
                    w0 = w0 < 0 ? 0 : w0;
                    h1 = h1 > H ? H : h1;
                    w1 = w1 > W ? W : w1;
                    int64_t taps = (h1 - h0) * (w1 - w0);
                    float v = taps > 0 ? 1.0f / (float)taps : 0.0f;
                    for (size_t c = 0; c < (size_t)blk; c++)
                        sc[(size_t)(oh * OW + ow) * (size_t)blk + c] = v;
                }
            size_t chunk = plane * (size_t)blk;
            for (size_t off = chunk; off < cnt; off += chunk)
                memcpy(sc + off, sc, chunk * sizeof *sc);
            if (p->n_scales < (int)(sizeof p->scales / sizeof p->scales[0])) {
                p->scales[p->n_scales].blk = blk;
                memcpy(p->scales[p->n_scales].key, key, sizeof key);
                p->scales[p->n_scales].data = sc;
                p->n_scales++;
            }
        }
        if ((rc = mem_on_ptr(m, p, &ymd, sc, &smem))) goto fail;
    }
    if (xr->buf >= 0) use_buf(p, xr->buf);
    if ((rc = def_value(m, p, n->out[0], &ymd, -1))) goto fail;
    nn_step *s;
    if ((rc = add_step(p, &s))) goto fail;
    arg(s, DNNL_ARG_SRC, xr->mem);
    arg(s, DNNL_ARG_WEIGHTS, wmem);
    arg(s, DNNL_ARG_DST, p->rt[n->out[0]].mem);
    if (smem) arg(s, DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, smem);
    return make_prim(m, p, n, pd, s);
fail:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

static int build_pool(dp_model *m, nn_plan *p, nn_node *n)
{
    nn_value *x = &m->values[n->in[0]], *y = &m->values[n->out[0]];
    int rc = value_mem(m, p, n->in[0]);
    if (rc) return rc;
    nn_rt *xr = &p->rt[n->in[0]];
    int sp = x->ndim - 2;
    dnnl_dims_t strides, kernel, dil, pl, pr, yd;
    dnnl_alg_kind_t alg = dnnl_pooling_max;
    for (int i = 0; i < sp; i++) {
        if (n->op == OP_GAP || n->op == OP_GMP) {
            strides[i] = 1;
            kernel[i] = x->dims[2 + i];
            dil[i] = 0;
            pl[i] = pr[i] = 0;
            continue;
        }
        nn_attrs *a = &n->a;
        int64_t s = a->ns ? a->strides[i] : 1, d = a->nd ? a->dil[i] : 1, k = a->kernel[i];
        int64_t l = a->np ? a->pads[i] : 0, r = a->np ? a->pads[i + sp] : 0, o;
        if ((rc = nn_window(n, x->dims[2 + i], k, s, d, &l, &r, a->ceil_mode != 0, &o))) return rc;
        /* oneDNN derives the output size from the pads: stretch or shrink the
         * right pad so that it gives the ceil_mode size */
        r = (o - 1) * s + (k - 1) * d + 1 - x->dims[2 + i] - l;
        strides[i] = s;
        kernel[i] = k;
        dil[i] = d - 1;
        pl[i] = l;
        pr[i] = r;
    }
    if (n->op == OP_AVGPOOL)
        alg = n->a.count_include_pad ? dnnl_pooling_avg_include_padding
                                     : dnnl_pooling_avg_exclude_padding;
    if (n->op == OP_GAP) alg = dnnl_pooling_avg_exclude_padding;
    if (n->op == OP_AVGPOOL && sp == 2) {
        rc = avgpool_as_dwconv(m, p, n, strides, kernel, pl, pr);
        if (rc <= 0) return rc;
    }
    for (int i = 0; i < y->ndim; i++)
        yd[i] = y->dims[i];
    dnnl_memory_desc_t yany;
    DNNL(n, dnnl_memory_desc_init_by_tag(&yany, y->ndim, yd, dnnl_f32, dnnl_format_tag_any));
    dnnl_pooling_v2_desc_t d;
    DNNL(n, dnnl_pooling_v2_forward_desc_init(&d, dnnl_forward_inference, alg, &xr->md, &yany,
                                              strides, kernel, dil, pl, pr));
    dnnl_primitive_attr_t attr = new_attr();
    if (!attr) return nn_node_error(n, DP_ERR_NOMEM, "oneDNN attr");
    int sum_vid;
    if ((rc = build_post_ops(m, p, n, attr, &sum_vid, 0))) {
        dnnl_primitive_attr_destroy(attr);
        return rc;
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &d, attr, m->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return nn_node_error(n, DP_ERR_BACKEND, "oneDNN pooling: %s", dnnl_status2str(st));
    if (xr->buf >= 0) use_buf(p, xr->buf);
    int ids[1] = {DNNL_ARG_SRC};
    dnnl_memory_t mems[1] = {xr->mem};
    return finish_simple(m, p, n, pd, ids, mems, 1, n->out[0], -1);
}

static bool same_dims_padded(const nn_value *v, const nn_value *y)
{
    if (v->ndim > y->ndim) return false;
    for (int i = 0; i < y->ndim; i++) {
        int j = i - (y->ndim - v->ndim);
        int64_t d = j >= 0 ? v->dims[j] : 1;
        if (d != y->dims[i]) return false;
    }
    return true;
}

static int build_host(dp_model *m, nn_plan *p, nn_node *n, int node_id);

static int build_binary(dp_model *m, nn_plan *p, nn_node *n, int node_id)
{
    nn_value *y = &m->values[n->out[0]];
    if (n->n_in == 1 || y->dtype != DP_F32) return build_host(m, p, n, node_id);
    int a = n->in[0], b = n->in[1];
    bool comm = n->op == OP_ADD || n->op == OP_MUL || n->op == OP_MAX || n->op == OP_MIN;
    if (!same_dims_padded(&m->values[a], y)) {
        if (comm && same_dims_padded(&m->values[b], y)) {
            int t = a;
            a = b;
            b = t;
        } else {
            return build_host(m, p, n, node_id);
        }
    }
    int rc;
    if ((rc = value_mem(m, p, a)) || (rc = value_mem(m, p, b))) return rc;
    dnnl_memory_t amem, bmem;
    dnnl_memory_desc_t amd = p->rt[a].md, bmd;
    amem = p->rt[a].mem;
    if (m->values[a].ndim != y->ndim || y->ndim == 0) {
        /* rank-padded view of a plain tensor */
        int ab;
        if ((rc = get_plain(m, p, n, a, &amem, &ab))) return rc;
        plain_md_dims(&amd, y->ndim, y->dims, DP_F32, 0);
        dnnl_memory_t v = NULL;
        if (ab >= 0) {
            if ((rc = mem_on_buf(m, p, &amd, ab, &v))) return rc;
        } else if ((rc = mem_on_ptr(m, p, &amd, value_ptr(m, p, a), &v))) {
            return rc;
        }
        amem = v;
    } else if (p->rt[a].buf >= 0) {
        use_buf(p, p->rt[a].buf);
    }
    if (same_dims_padded(&m->values[b], y) && m->values[b].ndim == y->ndim && y->ndim > 0) {
        /* full-size second operand: same layout as the first */
        if ((rc = get_as(m, p, n, b, &amd, &bmem))) return rc;
        bmd = amd;
    } else {
        int bb;
        if ((rc = get_plain(m, p, n, b, &bmem, &bb))) return rc;
        nn_value *bv = &m->values[b];
        plain_md_dims(&bmd, bv->ndim, bv->dims, DP_F32, amd.ndims);
        dnnl_memory_t v = NULL;
        if (bb >= 0) {
            if ((rc = mem_on_buf(m, p, &bmd, bb, &v))) return rc;
        } else if ((rc = mem_on_ptr(m, p, &bmd, value_ptr(m, p, b), &v))) {
            return rc;
        }
        bmem = v;
    }
    dnnl_alg_kind_t alg = n->op == OP_ADD   ? dnnl_binary_add
                          : n->op == OP_SUB ? dnnl_binary_sub
                          : n->op == OP_MUL ? dnnl_binary_mul
                          : n->op == OP_DIV ? dnnl_binary_div
                          : n->op == OP_MAX ? dnnl_binary_max
                                            : dnnl_binary_min;
    dnnl_memory_desc_t dany;
    DNNL(n,
         dnnl_memory_desc_init_by_tag(&dany, amd.ndims, amd.dims, dnnl_f32, dnnl_format_tag_any));
    dnnl_binary_desc_t d;
    DNNL(n, dnnl_binary_desc_init(&d, alg, &amd, &bmd, &dany));
    dnnl_primitive_attr_t attr = new_attr();
    if (!attr) return nn_node_error(n, DP_ERR_NOMEM, "oneDNN attr");
    int sum_vid;
    if ((rc = build_post_ops(m, p, n, attr, &sum_vid, 0))) {
        dnnl_primitive_attr_destroy(attr);
        return rc;
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &d, attr, m->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return nn_node_error(n, DP_ERR_BACKEND, "oneDNN binary: %s", dnnl_status2str(st));
    /* output keeps the rank of y: if amd was padded for a 0-d y, fine */
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_memory_desc_t dmd = *dst_md;
    if ((rc = def_value(m, p, n->out[0], &dmd, -1))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    if (y->ndim == 0) plain_md(&p->rt[n->out[0]].md, y);
    nn_step *s;
    if ((rc = add_step(p, &s))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    arg(s, DNNL_ARG_SRC_0, amem);
    arg(s, DNNL_ARG_SRC_1, bmem);
    arg(s, DNNL_ARG_DST, p->rt[n->out[0]].mem);
    return make_prim(m, p, n, pd, s);
}

/* A Concat whose producers wrote (some of) their outputs in place: the
 * output is the root buffer; inputs that are not already there are copied
 * into their slice by a reorder to a sub-memory. */
static int build_concat_inplace(dp_model *m, nn_plan *p, nn_node *n, int node_id)
{
    nn_value *y = &m->values[n->out[0]];
    dnnl_memory_desc_t ymd;
    dnnl_dims_t yd = {y->dims[0], y->dims[1], y->dims[2], y->dims[3]};
    DNNL(n, dnnl_memory_desc_init_by_tag(&ymd, 4, yd, dnnl_f32,
                                         p->cat_blk[node_id] == 8 ? dnnl_aBcd8b : dnnl_aBcd16b));
    int rc = def_value(m, p, n->out[0], &ymd, p->cat_root[node_id]);
    if (rc) return rc;
    int64_t coff = 0;
    for (int k = 0; k < n->n_in; k++) {
        int vid = n->in[k];
        nn_value *v = &m->values[vid];
        if (!p->slot_in[vid]) {
            if ((rc = value_mem(m, p, vid))) return rc;
            nn_rt *r = &p->rt[vid];
            dnnl_memory_desc_t sub;
            dnnl_dims_t sd = {v->dims[0], v->dims[1], v->dims[2], v->dims[3]};
            dnnl_dims_t so = {0, coff, 0, 0};
            DNNL(n, dnnl_memory_desc_init_submemory(&sub, &ymd, sd, so));
            dnnl_memory_t dmem;
            if ((rc = mem_on_buf(m, p, &sub, p->rt[n->out[0]].buf, &dmem))) return rc;
            dnnl_primitive_desc_t pd;
            DNNL(n,
                 dnnl_reorder_primitive_desc_create(&pd, &r->md, m->engine, &sub, m->engine, NULL));
            nn_step *s;
            if ((rc = add_step(p, &s))) {
                dnnl_primitive_desc_destroy(pd);
                return rc;
            }
            if (r->buf >= 0) use_buf(p, r->buf);
            arg(s, DNNL_ARG_FROM, r->mem);
            arg(s, DNNL_ARG_TO, dmem);
            if ((rc = make_prim(m, p, n, pd, s))) return rc;
        }
        coff += v->dims[1];
    }
    return 0;
}

static int build_concat(dp_model *m, nn_plan *p, nn_node *n, int node_id)
{
    nn_value *y = &m->values[n->out[0]];
    if (y->dtype != DP_F32 || n->n_in > 64) return build_host(m, p, n, node_id);
    if (p->cat_root[node_id] >= 0) return build_concat_inplace(m, p, n, node_id);
    if (n->n_in == 1) {
        int rc, b;
        dnnl_memory_t mem;
        if ((rc = get_plain(m, p, n, n->in[0], &mem, &b))) return rc;
        if (b < 0) return build_host(m, p, n, node_id);
        dnnl_memory_desc_t md;
        plain_md(&md, y);
        return def_value(m, p, n->out[0], &md, b);
    }
    int ax = (int)(n->a.axis < 0 ? n->a.axis + y->ndim : n->a.axis);
    dnnl_memory_desc_t mds[64];
    dnnl_memory_t mems[64];
    /* Blocked inputs stay blocked unless layouts differ from the first. */
    int rc;
    for (int k = 0; k < n->n_in; k++)
        if ((rc = value_mem(m, p, n->in[k]))) return rc;
    bool mixed = false;
    for (int k = 1; k < n->n_in; k++) {
        dnnl_memory_desc_t a = p->rt[n->in[0]].md, b = p->rt[n->in[k]].md;
        if (a.format_kind != b.format_kind ||
            (a.format_kind == dnnl_blocked &&
             (a.format_desc.blocking.inner_nblks != b.format_desc.blocking.inner_nblks ||
              memcmp(a.format_desc.blocking.inner_blks, b.format_desc.blocking.inner_blks,
                     sizeof a.format_desc.blocking.inner_blks))))
            mixed = true;
    }
    if (y->ndim == 0) return build_host(m, p, n, node_id);
    for (int k = 0; k < n->n_in; k++) {
        if (mixed) {
            int b;
            if ((rc = get_plain(m, p, n, n->in[k], &mems[k], &b))) return rc;
            plain_md(&mds[k], &m->values[n->in[k]]);
        } else {
            mds[k] = p->rt[n->in[k]].md;
            mems[k] = p->rt[n->in[k]].mem;
            if (p->rt[n->in[k]].buf >= 0) use_buf(p, p->rt[n->in[k]].buf);
        }
    }
    dnnl_primitive_desc_t pd;
    dnnl_primitive_attr_t attr = new_attr();
    if (!attr) return nn_node_error(n, DP_ERR_NOMEM, "oneDNN attr");
    dnnl_status_t st =
        dnnl_concat_primitive_desc_create(&pd, NULL, n->n_in, ax, mds, attr, m->engine);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return nn_node_error(n, DP_ERR_BACKEND, "oneDNN concat: %s", dnnl_status2str(st));
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_memory_desc_t dmd = *dst_md;
    if ((rc = def_value(m, p, n->out[0], &dmd, -1))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    nn_step *s;
    if ((rc = add_step(p, &s))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    for (int k = 0; k < n->n_in && k < NN_MAX_ARGS - 2; k++)
        arg(s, DNNL_ARG_MULTIPLE_SRC + k, mems[k]);
    if (n->n_in > NN_MAX_ARGS - 2) {
        dnnl_primitive_desc_destroy(pd);
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "too many inputs");
    }
    arg(s, DNNL_ARG_DST, p->rt[n->out[0]].mem);
    return make_prim(m, p, n, pd, s);
}

/* MatMul and Gemm on oneDNN matmul. */
static int build_matmul(dp_model *m, nn_plan *p, nn_node *n)
{
    nn_value *a = &m->values[n->in[0]], *b = &m->values[n->in[1]], *y = &m->values[n->out[0]];
    int rc;
    dnnl_memory_t amem, bmem, cmem = NULL;
    int abuf, bbuf, cbuf = -1;
    if ((rc = get_plain(m, p, n, n->in[0], &amem, &abuf)) ||
        (rc = get_plain(m, p, n, n->in[1], &bmem, &bbuf)))
        return rc;
    dnnl_memory_desc_t amd, bmd, ymd, cmd;
    int R;
    float scale = 1, post_scale = 1;
    bool has_c = false;
    if (n->op == OP_GEMM) {
        R = 2;
        int64_t M = y->dims[0], N = y->dims[1], K = n->a.trans_a ? a->dims[0] : a->dims[1];
        dnnl_dims_t ad = {M, K}, as = {n->a.trans_a ? 1 : K, n->a.trans_a ? M : 1};
        dnnl_dims_t bd = {K, N}, bs = {n->a.trans_b ? 1 : N, n->a.trans_b ? K : 1};
        DNNL(n, dnnl_memory_desc_init_by_strides(&amd, 2, ad, dnnl_f32, as));
        DNNL(n, dnnl_memory_desc_init_by_strides(&bmd, 2, bd, dnnl_f32, bs));
        plain_md(&ymd, y);
        scale = n->a.alpha;
        if (n->n_in > 2 && n->in[2] >= 0 && n->a.beta != 0) {
            nn_value *c = &m->values[n->in[2]];
            has_c = true;
            if ((rc = get_plain(m, p, n, n->in[2], &cmem, &cbuf))) return rc;
            plain_md_dims(&cmd, c->ndim, c->dims, DP_F32, 2);
            if (n->a.beta != 1) {
                if (c->known && cbuf < 0) { /* pre-scale a constant C */
                    size_t cnt = (size_t)nn_numel(c);
                    float *cs = malloc(cnt * sizeof *cs + 4);
                    if (!cs || (rc = own_ptr(p, cs))) return rc ? rc : DP_ERR_NOMEM;
                    const float *src = value_ptr(m, p, n->in[2]);
                    for (size_t i = 0; i < cnt; i++)
                        cs[i] = src[i] * n->a.beta;
                    if ((rc = mem_on_ptr(m, p, &cmd, cs, &cmem))) return rc;
                } else { /* beta * (alpha/beta * AB + C) */
                    scale = n->a.alpha / n->a.beta;
                    post_scale = n->a.beta;
                }
            }
            if (cbuf >= 0) {
                dnnl_memory_t v = NULL;
                if ((rc = mem_on_buf(m, p, &cmd, cbuf, &v))) return rc;
                cmem = v;
            } else if (n->a.beta == 1 || post_scale != 1) {
                dnnl_memory_t v = NULL;
                if ((rc = mem_on_ptr(m, p, &cmd, value_ptr(m, p, n->in[2]), &v))) return rc;
                cmem = v;
            }
        }
    } else {
        int ra = a->ndim, rb = b->ndim;
        R = ra > rb ? ra : rb;
        if (R < 2) R = 2;
        int64_t ad[DP_MAX_DIMS + 2], bd[DP_MAX_DIMS + 2], yd[DP_MAX_DIMS + 2];
        int na = 0, nb = 0;
        if (ra == 1) {
            ad[0] = 1;
            ad[1] = a->dims[0];
            na = 2;
        } else {
            memcpy(ad, a->dims, (size_t)ra * 8);
            na = ra;
        }
        if (rb == 1) {
            bd[0] = b->dims[0];
            bd[1] = 1;
            nb = 2;
        } else {
            memcpy(bd, b->dims, (size_t)rb * 8);
            nb = rb;
        }
        plain_md_dims(&amd, na, ad, DP_F32, R);
        plain_md_dims(&bmd, nb, bd, DP_F32, R);
        for (int i = 0; i < R - 2; i++)
            yd[i] = amd.dims[i] > bmd.dims[i] ? amd.dims[i] : bmd.dims[i];
        yd[R - 2] = amd.dims[R - 2];
        yd[R - 1] = bmd.dims[R - 1];
        plain_md_dims(&ymd, R, yd, DP_F32, R);
    }
    dnnl_memory_t av, bv;
    if (abuf >= 0)
        rc = mem_on_buf(m, p, &amd, abuf, &av);
    else
        rc = mem_on_ptr(m, p, &amd, value_ptr(m, p, n->in[0]), &av);
    if (rc) return rc;
    if (bbuf >= 0)
        rc = mem_on_buf(m, p, &bmd, bbuf, &bv);
    else
        rc = mem_on_ptr(m, p, &bmd, value_ptr(m, p, n->in[1]), &bv);
    if (rc) return rc;
    (void)amem;
    (void)bmem;
    dnnl_matmul_desc_t d;
    DNNL(n, dnnl_matmul_desc_init(&d, &amd, &bmd, NULL, &ymd));
    dnnl_primitive_attr_t attr = new_attr();
    if (!attr) return nn_node_error(n, DP_ERR_NOMEM, "oneDNN attr");
    if (scale != 1) dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale);
    dnnl_post_ops_t po;
    dnnl_post_ops_create(&po);
    if (has_c) dnnl_post_ops_append_binary(po, dnnl_binary_add, &cmd);
    if (post_scale != 1) dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_linear, post_scale, 0);
    for (int i = 0; i < n->n_post; i++)
        if (!n->post[i].is_sum)
            dnnl_post_ops_append_eltwise(po, 1.0f, n->post[i].alg, n->post[i].alpha,
                                         n->post[i].beta);
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &d, attr, m->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return nn_node_error(n, DP_ERR_BACKEND, "oneDNN matmul: %s", dnnl_status2str(st));
    if ((rc = def_value(m, p, n->out[0], &ymd, -1))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    plain_md(&p->rt[n->out[0]].md, y); /* same bytes, the value's own rank */
    nn_step *s;
    if ((rc = add_step(p, &s))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    dnnl_memory_t ym;
    if ((rc = mem_on_buf(m, p, &ymd, p->rt[n->out[0]].buf, &ym))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    /* the value's memory object must describe y's own rank */
    {
        dnnl_memory_t yv;
        if ((rc = mem_on_buf(m, p, &p->rt[n->out[0]].md, p->rt[n->out[0]].buf, &yv))) {
            dnnl_primitive_desc_destroy(pd);
            return rc;
        }
        p->rt[n->out[0]].mem = yv;
    }
    arg(s, DNNL_ARG_SRC, av);
    arg(s, DNNL_ARG_WEIGHTS, bv);
    arg(s, DNNL_ARG_DST, ym);
    if (has_c) arg(s, DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, cmem);
    return make_prim(m, p, n, pd, s);
}

static int build_softmax(dp_model *m, nn_plan *p, nn_node *n)
{
    nn_value *x = &m->values[n->in[0]];
    int rc, xb;
    dnnl_memory_t xm;
    if ((rc = get_plain(m, p, n, n->in[0], &xm, &xb))) return rc;
    int ax = (int)(n->a.axis < 0 ? n->a.axis + x->ndim : n->a.axis);
    dnnl_memory_desc_t md;
    int axis;
    if (m->opset < 13) {
        int64_t d2[2] = {1, 1};
        for (int i = 0; i < x->ndim; i++)
            d2[i < ax ? 0 : 1] *= x->dims[i];
        plain_md_dims(&md, 2, d2, DP_F32, 0);
        axis = 1;
    } else {
        plain_md(&md, x);
        axis = x->ndim == 0 ? 0 : ax;
    }
    dnnl_memory_t xv;
    if (xb >= 0)
        rc = mem_on_buf(m, p, &md, xb, &xv);
    else
        rc = mem_on_ptr(m, p, &md, value_ptr(m, p, n->in[0]), &xv);
    if (rc) return rc;
    dnnl_softmax_v2_desc_t d;
    DNNL(n, dnnl_softmax_v2_forward_desc_init(
                &d, dnnl_forward_inference,
                n->op == OP_LOGSOFTMAX ? dnnl_softmax_log : dnnl_softmax_accurate, &md, &md, axis));
    dnnl_primitive_attr_t attr = new_attr();
    if (!attr) return nn_node_error(n, DP_ERR_NOMEM, "oneDNN attr");
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &d, attr, m->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return nn_node_error(n, DP_ERR_BACKEND, "oneDNN softmax: %s", dnnl_status2str(st));
    dnnl_memory_desc_t ymd;
    plain_md(&ymd, &m->values[n->out[0]]);
    if ((rc = def_value(m, p, n->out[0], &ymd, -1))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    dnnl_memory_t yv;
    if ((rc = mem_on_buf(m, p, &md, p->rt[n->out[0]].buf, &yv))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    nn_step *s;
    if ((rc = add_step(p, &s))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    arg(s, DNNL_ARG_SRC, xv);
    arg(s, DNNL_ARG_DST, yv);
    return make_prim(m, p, n, pd, s);
}

static int build_bn(dp_model *m, nn_plan *p, nn_node *n)
{
    int rc = value_mem(m, p, n->in[0]);
    if (rc) return rc;
    nn_rt *xr = &p->rt[n->in[0]];
    dnnl_batch_normalization_desc_t d;
    DNNL(n, dnnl_batch_normalization_forward_desc_init(
                &d, dnnl_forward_inference, &xr->md, n->a.epsilon,
                dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift));
    dnnl_primitive_attr_t attr = new_attr();
    if (!attr) return nn_node_error(n, DP_ERR_NOMEM, "oneDNN attr");
    int sum_vid;
    if ((rc = build_post_ops(m, p, n, attr, &sum_vid, 0))) {
        dnnl_primitive_attr_destroy(attr);
        return rc;
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &d, attr, m->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return nn_node_error(n, DP_ERR_BACKEND, "oneDNN batchnorm: %s", dnnl_status2str(st));
    dnnl_memory_t mems[5];
    int ids[5] = {DNNL_ARG_SRC, DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE};
    mems[0] = xr->mem;
    if (xr->buf >= 0) use_buf(p, xr->buf);
    for (int k = 1; k < 5; k++) {
        int b;
        if ((rc = get_plain(m, p, n, n->in[k], &mems[k], &b))) {
            dnnl_primitive_desc_destroy(pd);
            return rc;
        }
    }
    return finish_simple(m, p, n, pd, ids, mems, 5, n->out[0], -1);
}

static int build_reduce(dp_model *m, nn_plan *p, nn_node *n, int node_id)
{
    nn_value *x = &m->values[n->in[0]], *y = &m->values[n->out[0]];
    int rc, xb;
    dnnl_memory_t xm;
    if ((rc = get_plain(m, p, n, n->in[0], &xm, &xb))) return rc;
    /* y with the reduced dims kept as 1 */
    int64_t kd[DP_MAX_DIMS];
    int64_t total_y = nn_numel(y), total_x = nn_numel(x);
    dnnl_memory_desc_t ymd;
    if (total_y == total_x) { /* nothing reduced: a copy with y's shape */
        plain_md(&ymd, y);
        if (xb >= 0) return def_value(m, p, n->out[0], &ymd, xb);
        return build_host(m, p, n, node_id);
    }
    /* recover which dims were reduced from the node's axes */
    bool red[DP_MAX_DIMS] = {0};
    int64_t axes[DP_MAX_DIMS];
    int na = 0;
    if (n->a.has_axes) {
        na = n->a.naxes;
        memcpy(axes, n->a.axes, sizeof axes);
    } else if (n->n_in > 1 && n->in[1] >= 0) {
        /* Axes given as a run-time input were not seen by the load-time
         * checks: bound them here. */
        nn_value *av = &m->values[n->in[1]];
        int64_t cnt = nn_numel(av);
        if (av->dtype != DP_I64 || !av->data || cnt < 0 || cnt > x->ndim)
            return nn_node_error(n, DP_ERR_FORMAT,
                                 "axes input must be at most %d int64 values for a %d-d input",
                                 x->ndim, x->ndim);
        na = (int)cnt;
        for (int i = 0; i < na; i++)
            axes[i] = ((int64_t *)av->data)[i];
    }
    if (na > x->ndim)
        return nn_node_error(n, DP_ERR_FORMAT, "%d axes for a %d-d input", na, x->ndim);
    if (na == 0)
        for (int i = 0; i < x->ndim; i++)
            red[i] = true;
    for (int i = 0; i < na; i++) {
        if (axes[i] < -x->ndim || axes[i] >= x->ndim)
            return nn_node_error(n, DP_ERR_FORMAT, "axis %lld out of range for a %d-d input",
                                 (long long)axes[i], x->ndim);
        red[axes[i] < 0 ? axes[i] + x->ndim : axes[i]] = true;
    }
    for (int i = 0; i < x->ndim; i++)
        kd[i] = red[i] ? 1 : x->dims[i];
    dnnl_memory_desc_t xmd, kmd;
    plain_md(&xmd, x);
    plain_md_dims(&kmd, x->ndim, kd, DP_F32, 0);
    dnnl_reduction_desc_t d;
    dnnl_alg_kind_t alg = n->op == OP_REDUCEMEAN  ? dnnl_reduction_mean
                          : n->op == OP_REDUCEMAX ? dnnl_reduction_max
                                                  : dnnl_reduction_sum;
    DNNL(n, dnnl_reduction_desc_init(&d, alg, &xmd, &kmd, 0, 0));
    dnnl_primitive_attr_t attr = new_attr();
    if (!attr) return nn_node_error(n, DP_ERR_NOMEM, "oneDNN attr");
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &d, attr, m->engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return nn_node_error(n, DP_ERR_BACKEND, "oneDNN reduction: %s", dnnl_status2str(st));
    plain_md(&ymd, y);
    if ((rc = def_value(m, p, n->out[0], &ymd, -1))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    dnnl_memory_t yv;
    if ((rc = mem_on_buf(m, p, &kmd, p->rt[n->out[0]].buf, &yv))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    nn_step *s;
    if ((rc = add_step(p, &s))) {
        dnnl_primitive_desc_destroy(pd);
        return rc;
    }
    arg(s, DNNL_ARG_SRC, xm);
    arg(s, DNNL_ARG_DST, yv);
    return make_prim(m, p, n, pd, s);
}

/* Reshape-like ops: the output is the input's plain buffer. */
static int build_view(dp_model *m, nn_plan *p, nn_node *n, int node_id)
{
    int rc, xb;
    dnnl_memory_t xm;
    if ((rc = get_plain(m, p, n, n->in[0], &xm, &xb))) return rc;
    if (xb < 0) return build_host(m, p, n, node_id);
    dnnl_memory_desc_t md;
    plain_md(&md, &m->values[n->out[0]]);
    return def_value(m, p, n->out[0], &md, xb);
}

static int build_transpose(dp_model *m, nn_plan *p, nn_node *n, int node_id)
{
    nn_value *x = &m->values[n->in[0]], *y = &m->values[n->out[0]];
    if (x->dtype != DP_F32 || x->ndim == 0) return build_host(m, p, n, node_id);
    int rc, xb;
    dnnl_memory_t xm;
    if ((rc = get_plain(m, p, n, n->in[0], &xm, &xb))) return rc;
    dnnl_dims_t d, s;
    int64_t xs[DP_MAX_DIMS], st = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        xs[i] = st;
        st *= x->dims[i];
    }
    for (int i = 0; i < y->ndim; i++) {
        int pi = (int)(n->a.nperm ? n->a.perm[i] : y->ndim - 1 - i);
        d[i] = y->dims[i];
        s[i] = xs[pi];
    }
    dnnl_memory_desc_t smd, dmd;
    DNNL(n, dnnl_memory_desc_init_by_strides(&smd, y->ndim, d, dnnl_f32, s));
    plain_md(&dmd, y);
    dnnl_memory_t sv;
    if (xb >= 0)
        rc = mem_on_buf(m, p, &smd, xb, &sv);
    else
        rc = mem_on_ptr(m, p, &smd, value_ptr(m, p, n->in[0]), &sv);
    if (rc) return rc;
    dnnl_primitive_desc_t pd;
    DNNL(n, dnnl_reorder_primitive_desc_create(&pd, &smd, m->engine, &dmd, m->engine, NULL));
    int ids[1] = {DNNL_ARG_FROM};
    dnnl_memory_t mems[1] = {sv};
    /* reorder's dst arg is DNNL_ARG_TO == DNNL_ARG_DST */
    return finish_simple(m, p, n, pd, ids, mems, 1, n->out[0], -1);
}

/* A host loop over plain buffers. */
static int build_host(dp_model *m, nn_plan *p, nn_node *n, int node_id)
{
    (void)node_id;
    if (n->n_in > 16 || n->n_out > 4)
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "too many inputs");
    int rc;
    int in_buf[16];
    void *in_ptr[16];
    for (int k = 0; k < n->n_in; k++) {
        in_buf[k] = -1;
        in_ptr[k] = NULL;
        if (n->in[k] < 0) continue;
        dnnl_memory_t mem;
        if ((rc = get_plain(m, p, n, n->in[k], &mem, &in_buf[k]))) return rc;
        if (in_buf[k] < 0) in_ptr[k] = value_ptr(m, p, n->in[k]);
    }
    nn_step *s;
    if ((rc = add_step(p, &s))) return rc;
    s->node = node_id;
    s->n_in = n->n_in;
    s->n_out = n->n_out;
    memcpy(s->in_buf, in_buf, sizeof in_buf);
    memcpy(s->in_ptr, in_ptr, sizeof in_ptr);
    for (int o = 0; o < n->n_out; o++) {
        s->out_buf[o] = -1;
        if (n->out[o] < 0) continue;
        nn_value *v = &m->values[n->out[o]];
        dnnl_memory_desc_t md;
        plain_md(&md, v);
        if ((rc = def_value(m, p, n->out[o], &md, -1))) return rc;
        p->bufs[p->rt[n->out[o]].buf].first = p->n_steps - 1;
        s = &p->steps[p->n_steps - 1];
        s->out_buf[o] = p->rt[n->out[o]].buf;
    }
    /* fused activations of a node that fell back to the host: in place */
    for (int k = 0; k < n->n_post; k++) {
        const nn_post *q = &n->post[k];
        if (q->is_sum) return nn_node_error(n, DP_ERR_BACKEND, "sum post-op on a host step");
        if ((rc = inplace_eltwise(m, p, n, n->out[0], q->alg, q->alpha, q->beta))) return rc;
    }
    return 0;
}

static int build_node(dp_model *m, nn_plan *p, int i)
{
    nn_node *n = &m->nodes[i];
    switch (n->op) {
    case OP_CONV:
    case OP_CONVT:
        return build_conv(m, p, n, i);
    case OP_BN:
        return build_bn(m, p, n);
    case OP_RELU:
    case OP_LEAKY:
    case OP_CLIP:
    case OP_SIGMOID:
    case OP_HSIGMOID:
    case OP_HSWISH:
    case OP_TANH:
    case OP_ELU:
    case OP_EXP:
    case OP_LOG:
    case OP_ABS:
    case OP_SQRT:
    case OP_NEG:
    case OP_SOFTPLUS:
        /* oneDNN's log is an approximation (log(1) = -1.4e-6); exact on host */
        if (m->values[n->in[0]].dtype != DP_F32 || n->op == OP_LOG) return build_host(m, p, n, i);
        return build_eltwise(m, p, n);
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_MAX:
    case OP_MIN:
        return build_binary(m, p, n, i);
    case OP_MAXPOOL:
    case OP_AVGPOOL:
    case OP_GAP:
    case OP_GMP:
        return build_pool(m, p, n);
    case OP_CONCAT:
        return build_concat(m, p, n, i);
    case OP_GEMM:
    case OP_MATMUL:
        return build_matmul(m, p, n);
    case OP_FLATTEN:
    case OP_RESHAPE:
    case OP_SQUEEZE:
    case OP_UNSQUEEZE:
    case OP_IDENTITY:
        return build_view(m, p, n, i);
    case OP_DROPOUT:
        if (n->n_out > 1 && n->out[1] >= 0) return build_host(m, p, n, i);
        return build_view(m, p, n, i);
    case OP_TRANSPOSE:
        return build_transpose(m, p, n, i);
    case OP_SOFTMAX:
    case OP_LOGSOFTMAX:
        return build_softmax(m, p, n);
    case OP_REDUCEMEAN:
    case OP_REDUCEMAX:
    case OP_REDUCESUM:
        return build_reduce(m, p, n, i);
    case OP_PAD:
    case OP_SHAPE:
    case OP_GATHER:
    case OP_CAST:
    case OP_SLICE:
        return build_host(m, p, n, i);
    default:
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "no executor");
    }
}

static void plan_free(nn_plan *p)
{
    if (!p) return;
    for (int i = 0; i < p->n_steps; i++)
        if (p->steps[i].prim) dnnl_primitive_destroy(p->steps[i].prim);
    for (int i = 0; i < p->n_owned; i++)
        dnnl_memory_destroy(p->owned[i]);
    for (int i = 0; i < p->n_owned_ptr; i++)
        free(p->owned_ptr[i]);
    free(p->owned);
    free(p->owned_ptr);
    free(p->steps);
    free(p->bufs);
    free(p->binds);
    free(p->rt);
    free(p->last_node);
    free(p->arena);
    free(p->scratch);
    free(p->out_ptr);
    free(p->pending);
    free(p->key);
    free(p->slot_node);
    free(p->slot_coff);
    free(p->slot_in);
    free(p->cat_root);
    free(p->cat_blk);
    free(p);
}

void nn_plans_free(dp_model *m)
{
    nn_plan *p = m->plans;
    while (p) {
        nn_plan *nx = p->next;
        plan_free(p);
        p = nx;
    }
    m->plans = m->cur = NULL;
    m->n_plans = 0;
}

static int cmp_size_desc(const void *a, const void *b, void *ctx)
{
    const nn_buf *bufs = ctx;
    size_t sa = bufs[*(const int *)a].size, sb = bufs[*(const int *)b].size;
    return sa < sb ? 1 : sa > sb ? -1 : 0;
}

static int pack(nn_plan *p)
{
    int *ord = malloc(((size_t)p->n_bufs + 1) * sizeof *ord);
    int *placed = malloc(((size_t)p->n_bufs + 1) * sizeof *placed);
    int n = 0, np = 0, rc = 0;
    if (!ord || !placed) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory planning");
        goto done;
    }
    for (int i = 0; i < p->n_bufs; i++) {
        nn_buf *b = &p->bufs[i];
        if (b->alias >= 0 || b->ext) continue;
        if (b->pin) b->last = INT_MAX;
        b->size = (b->size + 63) & ~(size_t)63;
        ord[n++] = i;
    }
    qsort_r(ord, (size_t)n, sizeof *ord, cmp_size_desc, p->bufs);
    size_t total = 0;
    for (int k = 0; k < n; k++) {
        nn_buf *b = &p->bufs[ord[k]];
        size_t off = 0;
        /* lowest offset clear of every live placed buffer */
        bool moved = true;
        while (moved) {
            moved = false;
            for (int j = 0; j < np; j++) {
                nn_buf *o = &p->bufs[placed[j]];
                if (o->last < b->first || b->last < o->first) continue;
                if (off < o->off + o->size && o->off < off + b->size) {
                    off = o->off + o->size;
                    moved = true;
                }
            }
        }
        b->off = off;
        placed[np++] = ord[k];
        if (off + b->size > total) total = off + b->size;
        if (total > NN_MAX_ARENA) {
            rc = dp_set_error(DP_ERR_NOMEM, "activations need more than %zu GiB",
                              NN_MAX_ARENA >> 30);
            goto done;
        }
    }
    p->arena_size = total;
    p->arena = total ? aligned_alloc(64, total) : NULL;
    if (total && !p->arena) {
        rc = dp_set_error(DP_ERR_NOMEM, "cannot allocate %zu bytes of activations", total);
        goto done;
    }
    if (p->scratch_size) {
        p->scratch = aligned_alloc(64, (p->scratch_size + 63) & ~(size_t)63);
        if (!p->scratch) {
            rc = dp_set_error(DP_ERR_NOMEM, "cannot allocate scratchpad");
            goto done;
        }
    }
done:
    free(ord);
    free(placed);
    return rc;
}

static void *buf_ptr(const nn_plan *p, int b)
{
    int r = root(p, b);
    if (r < 0) return NULL;
    size_t aoff = p->bufs[b].alias >= 0 ? p->bufs[b].aoff : 0;
    if (p->bufs[r].ext) return (char *)p->bufs[r].ptr + aoff;
    if (!p->arena) return NULL; /* every buffer was empty */
    return (char *)p->arena + p->bufs[r].off + aoff;
}

/* Concat in place. At batch 1 a channel slice of a blocked nChw8c (or
 * nChw16c) tensor is one contiguous run of memory laid out exactly like a
 * dense tensor of the slice's channels, as long as the slice starts and ends
 * on a channel block. So the producers of a channel Concat's inputs can write
 * straight into the output and the copy disappears (InceptionV3 is mostly
 * such blocks). Chooses the candidates: 4-D f32 inputs read only by the
 * Concat, made by a node without a sum post-op (whose output buffer is
 * decided by the sum). Channel counts must be multiples of 16 so that any
 * slice left out can still be copied into a block-aligned sub-memory. Whether
 * a slice really goes in place is decided when its producer's layout is
 * known (value_buf). At batch > 1 images interleave, so nothing applies. */
static int plan_concat_slices(dp_model *m, nn_plan *p)
{
    p->slot_node = malloc(((size_t)m->n_values + 1) * sizeof *p->slot_node);
    p->slot_coff = calloc((size_t)m->n_values + 1, sizeof *p->slot_coff);
    p->slot_in = calloc((size_t)m->n_values + 1, sizeof *p->slot_in);
    p->cat_root = malloc(((size_t)m->n_nodes + 1) * sizeof *p->cat_root);
    p->cat_blk = calloc((size_t)m->n_nodes + 1, sizeof *p->cat_blk);
    int *uses = calloc((size_t)m->n_values + 1, sizeof *uses);
    int rc = 0;
    if (!p->slot_node || !p->slot_coff || !p->slot_in || !p->cat_root || !p->cat_blk || !uses) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < m->n_values; i++)
        p->slot_node[i] = -1;
    for (int i = 0; i < m->n_nodes; i++) {
        const nn_node *n = &m->nodes[i];
        p->cat_root[i] = -1;
        if (n->dead) continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) uses[n->in[k]]++;
        for (int k = 0; k < n->n_post; k++)
            if (n->post[k].is_sum) uses[n->post[k].value]++;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const nn_node *n = &m->nodes[i];
        if (n->dead || n->op != OP_CONCAT || n->n_in < 2 || n->n_in > 64) continue;
        const nn_value *y = &m->values[n->out[0]];
        int64_t ax = n->a.axis < 0 ? n->a.axis + y->ndim : n->a.axis;
        if (y->known || y->dtype != DP_F32 || y->ndim != 4 || y->dims[0] != 1 || ax != 1) continue;
        bool ok = true;
        for (int k = 0; k < n->n_in && ok; k++)
            ok = n->in[k] >= 0 && m->values[n->in[k]].ndim == 4 &&
                 m->values[n->in[k]].dims[1] % 16 == 0;
        if (!ok) continue;
        int64_t coff = 0;
        for (int k = 0; k < n->n_in; k++) {
            int vid = n->in[k];
            const nn_value *v = &m->values[vid];
            int pr = v->producer;
            bool cand = !v->known && !v->keep && !v->is_input && uses[vid] == 1 && pr >= 0 &&
                        !m->nodes[pr].dead && m->nodes[pr].out[0] == vid;
            for (int q = 0; cand && q < m->nodes[pr].n_post; q++)
                if (m->nodes[pr].post[q].is_sum) cand = false;
            if (cand) {
                p->slot_node[vid] = i;
                p->slot_coff[vid] = coff;
            }
            coff += v->dims[1];
        }
    }
done:
    free(uses);
    return rc;
}

static int plan_build(dp_model *m, nn_plan *p)
{
    int rc;
    p->n_values = m->n_values;
    p->rt = calloc((size_t)m->n_values + 1, sizeof *p->rt);
    p->last_node = calloc((size_t)m->n_values + 1, sizeof *p->last_node);
    p->out_ptr = calloc((size_t)m->n_outputs + 1, sizeof *p->out_ptr);
    if (!p->rt || !p->last_node || !p->out_ptr) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_values; i++)
        p->last_node[i] = -1;
    for (int i = 0; i < m->n_nodes; i++) {
        if (m->nodes[i].dead) continue;
        for (int k = 0; k < m->nodes[i].n_in; k++)
            if (m->nodes[i].in[k] >= 0) p->last_node[m->nodes[i].in[k]] = i;
        for (int k = 0; k < m->nodes[i].n_post; k++)
            if (m->nodes[i].post[k].is_sum) p->last_node[m->nodes[i].post[k].value] = i;
    }
    for (int i = 0; i < m->n_values; i++)
        if (m->values[i].keep) p->last_node[i] = INT_MAX;
    if ((rc = plan_concat_slices(m, p))) return rc;
    for (int k = 0; k < m->n_inputs; k++) {
        int vid = m->inputs[k];
        nn_value *v = &m->values[vid];
        if (v->known) continue; /* parameter input: handled like a constant */
        int b = new_buf(p, 0);
        if (b < 0) return b;
        p->bufs[b].ext = true;
        p->bufs[b].first = -1;
        nn_rt *r = &p->rt[vid];
        plain_md(&r->md, v);
        r->buf = b;
        r->has = true;
        if ((rc = mem_on_buf(m, p, &r->md, b, &r->mem))) return rc;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        nn_node *n = &m->nodes[i];
        if (n->dead) continue;
        bool known = true;
        for (int o = 0; o < n->n_out; o++)
            if (n->out[o] >= 0 && !m->values[n->out[o]].known) known = false;
        if (known) continue;
        if ((rc = build_node(m, p, i))) return rc;
        end_node(p);
    }
    /* outputs in plain layout, pinned */
    for (int k = 0; k < m->n_outputs; k++) {
        int vid = m->outputs[k];
        nn_value *v = &m->values[vid];
        if (v->known && !p->rt[vid].has) continue;
        dnnl_memory_t mem;
        int b;
        if ((rc = get_plain(m, p, NULL, vid, &mem, &b))) return rc;
        if (b >= 0) p->bufs[root(p, b)].pin = true;
    }
    if ((rc = pack(p))) return rc;
    for (int i = 0; i < p->n_binds; i++) {
        if (p->binds[i].buf < 0)
            dnnl_memory_set_data_handle(p->binds[i].mem, p->scratch);
        else if (!p->bufs[root(p, p->binds[i].buf)].ext)
            dnnl_memory_set_data_handle(p->binds[i].mem, buf_ptr(p, p->binds[i].buf));
    }
    return 0;
}

int nn_plan_get(dp_model *m)
{
    /* key: every input's shape, and the data of parameter inputs */
    size_t cap = 1;
    for (int k = 0; k < m->n_inputs; k++) {
        nn_value *v = &m->values[m->inputs[k]];
        cap += 1 + (size_t)v->ndim + (v->known ? (size_t)nn_numel(v) : 0);
    }
    int64_t *key = malloc(cap * sizeof *key);
    if (!key) return dp_set_error(DP_ERR_NOMEM, "out of memory");
    int nk = 0;
    for (int k = 0; k < m->n_inputs; k++) {
        nn_value *v = &m->values[m->inputs[k]];
        key[nk++] = v->ndim;
        for (int i = 0; i < v->ndim; i++)
            key[nk++] = v->dims[i];
        if (v->known) {
            int64_t cnt = nn_numel(v);
            size_t es = nn_dtype_size(v->dtype);
            for (int64_t i = 0; i < cnt; i++) {
                int64_t e = 0;
                memcpy(&e, (char *)v->data + i * es, es);
                key[nk++] = e;
            }
        }
    }
    nn_plan **pp = &m->plans;
    for (nn_plan *p = m->plans; p; pp = &p->next, p = p->next) {
        if (p->n_key == nk && !memcmp(p->key, key, (size_t)nk * sizeof *key)) {
            *pp = p->next; /* move to front */
            p->next = m->plans;
            m->plans = p;
            m->cur = p;
            free(key);
            return 0;
        }
    }
    /* keep a few shapes; drop the least recent */
    if (m->n_plans >= 4) {
        nn_plan **q = &m->plans;
        while ((*q)->next)
            q = &(*q)->next;
        plan_free(*q);
        *q = NULL;
        m->n_plans--;
    }
    nn_plan *p = calloc(1, sizeof *p);
    if (!p) {
        free(key);
        return dp_set_error(DP_ERR_NOMEM, "out of memory");
    }
    p->n_key = nk;
    p->key = key;
    int rc = plan_build(m, p);
    if (rc) {
        plan_free(p);
        m->cur = NULL;
        return rc;
    }
    p->next = m->plans;
    m->plans = p;
    m->cur = p;
    m->n_plans++;
    return 0;
}

int nn_plan_bind_input(dp_model *m, int k, const void *data);
int nn_plan_bind_input(dp_model *m, int k, const void *data)
{
    nn_plan *p = m->cur;
    nn_rt *r = &p->rt[m->inputs[k]];
    if (m->values[m->inputs[k]].known) return 0;
    p->bufs[r->buf].ptr = (void *)data;
    return 0;
}

int nn_plan_run(dp_model *m)
{
    nn_plan *p = m->cur;
    if (!p) return dp_set_error(DP_ERR_INVALID, "no plan");
    for (int i = 0; i < p->n_binds; i++) {
        int b = p->binds[i].buf;
        if (b >= 0 && p->bufs[root(p, b)].ext)
            dnnl_memory_set_data_handle(p->binds[i].mem, buf_ptr(p, b));
    }
    for (int i = 0; i < p->n_steps; i++) {
        nn_step *s = &p->steps[i];
        if (s->prim) {
            dnnl_status_t st = dnnl_primitive_execute(s->prim, m->stream, s->nargs, s->args);
            if (st != dnnl_success)
                return dp_set_error(DP_ERR_BACKEND, "oneDNN execute failed: %s",
                                    dnnl_status2str(st));
            continue;
        }
        if (s->node < 0) continue;
        void *ins[16], *outs[4];
        for (int k = 0; k < s->n_in; k++)
            ins[k] = s->in_buf[k] >= 0 ? buf_ptr(p, s->in_buf[k]) : s->in_ptr[k];
        for (int o = 0; o < s->n_out; o++)
            outs[o] = s->out_buf[o] >= 0 ? buf_ptr(p, s->out_buf[o]) : NULL;
        int rc = nn_host_eval(m, &m->nodes[s->node], ins, outs);
        if (rc) return rc;
    }
    dnnl_stream_wait(m->stream);
    return 0;
}

const void *nn_plan_output(const dp_model *m, int vid)
{
    const nn_plan *p = m->cur;
    const nn_value *v = &m->values[vid];
    if (!p) return NULL;
    const nn_rt *r = &p->rt[vid];
    if (!r->has) return v->known ? v->data : NULL;
    if (r->has_plain) return buf_ptr(p, r->pbuf);
    if (r->buf < 0) return r->kdata ? r->kdata : v->data;
    return buf_ptr(p, r->buf);
}
