/* ONNX loader: protobuf-c ModelProto -> nn IR. Checks structure (unique
 * producers, known inputs, no cycles), sizes of initializers against the
 * bytes actually present, and refuses ops, attributes and attribute values
 * the engine does not implement, naming the node. */
#include "nn.h"
#include "onnx/onnx.pb-c.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Known data (initializers, Constant) above this many bytes must come from
 * the file itself, so a tiny file cannot make us allocate gigabytes. */
#define NN_MAX_TENSOR_BYTES ((size_t)1 << 31)

int nn_add_value(dp_model *m, const char *name)
{
    if (m->n_values == m->cap_values) {
        int cap = m->cap_values ? m->cap_values * 2 : 64;
        nn_value *nv = realloc(m->values, (size_t)cap * sizeof *nv);
        if (!nv) return dp_set_error(DP_ERR_NOMEM, "out of memory for values");
        m->values = nv;
        m->cap_values = cap;
    }
    nn_value *v = &m->values[m->n_values];
    memset(v, 0, sizeof *v);
    v->name = strdup(name ? name : "");
    if (!v->name) return dp_set_error(DP_ERR_NOMEM, "out of memory for values");
    v->producer = -1;
    v->dtype = DP_F32;
    return m->n_values++;
}

int nn_find_value(const dp_model *m, const char *name)
{
    for (int i = 0; i < m->n_values; i++)
        if (strcmp(m->values[i].name, name) == 0) return i;
    return -1;
}

static int map_dtype(int onnx_type)
{
    switch (onnx_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        return DP_F32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        return DP_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
        return DP_I32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        return DP_BOOL;
    default:
        return 0;
    }
}

static const char *onnx_type_name(int t)
{
    static const char *names[] = {"undefined",  "float",   "uint8",  "int8",   "uint16",
                                  "int16",      "int32",   "int64",  "string", "bool",
                                  "float16",    "double",  "uint32", "uint64", "complex64",
                                  "complex128", "bfloat16"};
    return (t >= 0 && t < (int)(sizeof names / sizeof *names)) ? names[t] : "unknown";
}

int nn_tensor_from_proto(const void *proto, int *dtype, int *ndim, int64_t *dims, void **data,
                         size_t max_bytes)
{
    const Onnx__TensorProto *t = proto;
    const char *nm = t->name ? t->name : "";
    *data = NULL;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return dp_set_error(DP_ERR_UNSUPPORTED,
                            "tensor '%s': external data is not supported (save the model with "
                            "the weights inside the .onnx file)",
                            nm);
    if (t->n_external_data)
        return dp_set_error(DP_ERR_UNSUPPORTED, "tensor '%s': external data is not supported", nm);
    if (t->segment)
        return dp_set_error(DP_ERR_UNSUPPORTED, "tensor '%s': segments unsupported", nm);
    int dt = map_dtype(t->data_type);
    if (!dt)
        return dp_set_error(DP_ERR_UNSUPPORTED, "tensor '%s': data type %s is not supported", nm,
                            onnx_type_name(t->data_type));
    if (t->n_dims > DP_MAX_DIMS)
        return dp_set_error(DP_ERR_UNSUPPORTED, "tensor '%s': %zu dims, at most %d supported", nm,
                            t->n_dims, DP_MAX_DIMS);
    size_t n = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0)
            return dp_set_error(DP_ERR_FORMAT, "tensor '%s': negative dim %lld", nm,
                                (long long)t->dims[i]);
        if (!dp_mul_ok(n, (size_t)t->dims[i], &n) || n > ((size_t)1 << 40))
            return dp_set_error(DP_ERR_FORMAT, "tensor '%s': element count overflows", nm);
        dims[i] = t->dims[i];
    }
    *ndim = (int)t->n_dims;
    *dtype = dt;
    size_t es = nn_dtype_size(dt), bytes;
    if (!dp_mul_ok(n, es, &bytes) || bytes > max_bytes)
        return dp_set_error(DP_ERR_FORMAT, "tensor '%s': %zu elements is too large", nm, n);
    /* Every element must be present in the file, so the allocation is bounded
     * by the file size. */
    size_t have = 0;
    if (t->has_raw_data)
        have = t->raw_data.len / es;
    else if (dt == DP_F32)
        have = t->n_float_data;
    else if (dt == DP_I64)
        have = t->n_int64_data;
    else
        have = t->n_int32_data;
    if (t->has_raw_data && t->raw_data.len != bytes)
        return dp_set_error(DP_ERR_FORMAT, "tensor '%s': raw_data has %zu bytes, dims say %zu", nm,
                            t->raw_data.len, bytes);
    if (have != n)
        return dp_set_error(DP_ERR_FORMAT, "tensor '%s': has %zu values, dims say %zu", nm, have,
                            n);
    void *buf = malloc(bytes ? bytes : 1);
    if (!buf)
        return dp_set_error(DP_ERR_NOMEM, "tensor '%s': cannot allocate %zu bytes", nm, bytes);
    if (bytes == 0) {
        /* empty tensor: nothing to copy (the source may be NULL) */
    } else if (t->has_raw_data) {
        memcpy(buf, t->raw_data.data, bytes);
    } else if (dt == DP_F32) {
        memcpy(buf, t->float_data, bytes);
    } else if (dt == DP_I64) {
        memcpy(buf, t->int64_data, bytes);
    } else if (dt == DP_I32) {
        memcpy(buf, t->int32_data, bytes);
    } else {
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)buf)[i] = t->int32_data[i] != 0;
    }
    *data = buf;
    return 0;
}

/* ---- attributes ---- */

static bool in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0) return true;
    return false;
}

static const char *const *allowed_attrs(nn_op op)
{
    static const char *const none[] = {NULL};
    static const char *const conv[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                       "pads",     "strides",   NULL};
    static const char *const convt[] = {"auto_pad",       "dilations",    "group",
                                        "kernel_shape",   "pads",         "strides",
                                        "output_padding", "output_shape", NULL};
    static const char *const bn[] = {"epsilon",       "momentum", "spatial",
                                     "training_mode", "is_test",  NULL};
    static const char *const alpha[] = {"alpha", NULL};
    static const char *const clip[] = {"min", "max", NULL};
    static const char *const ab[] = {"alpha", "beta", NULL};
    static const char *const maxpool[] = {"auto_pad", "ceil_mode",     "dilations", "kernel_shape",
                                          "pads",     "storage_order", "strides",   NULL};
    static const char *const avgpool[] = {
        "auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides", NULL};
    static const char *const axis[] = {"axis", NULL};
    static const char *const gemm[] = {"alpha", "beta", "transA", "transB", "broadcast", NULL};
    static const char *const reshape[] = {"allowzero", NULL};
    static const char *const perm[] = {"perm", NULL};
    static const char *const axes[] = {"axes", NULL};
    static const char *const pad[] = {"mode", "pads", "value", NULL};
    static const char *const reduce[] = {"axes", "keepdims", "noop_with_empty_axes", NULL};
    static const char *const dropout[] = {"ratio", "seed", "is_test", NULL};
    static const char *const constant[] = {"value",     "value_float", "value_floats",
                                           "value_int", "value_ints",  NULL};
    static const char *const shape[] = {"start", "end", NULL};
    static const char *const cast[] = {"to", NULL};
    static const char *const slice[] = {"starts", "ends", "axes", NULL};
    switch (op) {
    case OP_CONV:
        return conv;
    case OP_CONVT:
        return convt;
    case OP_BN:
        return bn;
    case OP_LEAKY:
    case OP_ELU:
        return alpha;
    case OP_CLIP:
        return clip;
    case OP_HSIGMOID:
        return ab;
    case OP_MAXPOOL:
        return maxpool;
    case OP_AVGPOOL:
        return avgpool;
    case OP_CONCAT:
    case OP_FLATTEN:
    case OP_SOFTMAX:
    case OP_LOGSOFTMAX:
    case OP_GATHER:
        return axis;
    case OP_GEMM:
        return gemm;
    case OP_RESHAPE:
        return reshape;
    case OP_TRANSPOSE:
        return perm;
    case OP_SQUEEZE:
    case OP_UNSQUEEZE:
        return axes;
    case OP_PAD:
        return pad;
    case OP_REDUCEMEAN:
    case OP_REDUCEMAX:
    case OP_REDUCESUM:
        return reduce;
    case OP_DROPOUT:
        return dropout;
    case OP_CONSTANT:
        return constant;
    case OP_SHAPE:
        return shape;
    case OP_CAST:
        return cast;
    case OP_SLICE:
        return slice;
    default:
        return none;
    }
}

static int get_ints(const nn_node *n, const Onnx__AttributeProto *at, int64_t *dst, int cap,
                    int *count)
{
    if (at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
        return nn_node_error(n, DP_ERR_FORMAT, "attribute '%s' must be a list of ints", at->name);
    if (at->n_ints > (size_t)cap)
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "attribute '%s' has %zu values, at most %d",
                             at->name, at->n_ints, cap);
    for (size_t i = 0; i < at->n_ints; i++)
        dst[i] = at->ints[i];
    *count = (int)at->n_ints;
    return 0;
}

static int get_int(const nn_node *n, const Onnx__AttributeProto *at, int64_t *dst)
{
    if (at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
        return nn_node_error(n, DP_ERR_FORMAT, "attribute '%s' must be an int", at->name);
    *dst = at->i;
    return 0;
}

static int get_float(const nn_node *n, const Onnx__AttributeProto *at, float *dst)
{
    if (at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT)
        return nn_node_error(n, DP_ERR_FORMAT, "attribute '%s' must be a float", at->name);
    *dst = at->f;
    return 0;
}

static int parse_attr(dp_model *m, nn_node *n, const Onnx__AttributeProto *at)
{
    nn_attrs *a = &n->a;
    const char *nm = at->name ? at->name : "";
    int rc = 0;
    int64_t iv = 0;
    if (!in_list(nm, allowed_attrs(n->op)))
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "unsupported attribute '%s'", nm);
    if (at->ref_attr_name && at->ref_attr_name[0])
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "attribute references are not supported");
    if (!strcmp(nm, "kernel_shape")) return get_ints(n, at, a->kernel, 3, &a->nk);
    if (!strcmp(nm, "strides")) return get_ints(n, at, a->strides, 3, &a->ns);
    if (!strcmp(nm, "dilations")) return get_ints(n, at, a->dil, 3, &a->nd);
    if (!strcmp(nm, "output_padding")) return get_ints(n, at, a->out_pad, 3, &a->nop);
    if (!strcmp(nm, "output_shape")) return get_ints(n, at, a->out_shape, 3, &a->nos);
    if (!strcmp(nm, "pads")) {
        if (n->op == OP_PAD) return get_ints(n, at, a->pads_attr, 2 * DP_MAX_DIMS, &a->npads_attr);
        return get_ints(n, at, a->pads, 6, &a->np);
    }
    if (!strcmp(nm, "group")) return get_int(n, at, &a->group);
    if (!strcmp(nm, "auto_pad")) {
        if (at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING)
            return nn_node_error(n, DP_ERR_FORMAT, "auto_pad must be a string");
        const char *s = (const char *)at->s.data;
        size_t len = at->s.len;
        if (len == 6 && !memcmp(s, "NOTSET", 6))
            a->auto_pad = 0;
        else if (len == 10 && !memcmp(s, "SAME_UPPER", 10))
            a->auto_pad = 1;
        else if (len == 10 && !memcmp(s, "SAME_LOWER", 10))
            a->auto_pad = 2;
        else if (len == 5 && !memcmp(s, "VALID", 5))
            a->auto_pad = 3;
        else
            return nn_node_error(n, DP_ERR_UNSUPPORTED, "unsupported auto_pad value");
        return 0;
    }
    if (!strcmp(nm, "mode")) {
        if (at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING)
            return nn_node_error(n, DP_ERR_FORMAT, "mode must be a string");
        const char *s = (const char *)at->s.data;
        size_t len = at->s.len;
        if (len == 8 && !memcmp(s, "constant", 8))
            a->pad_mode = 0;
        else if (len == 7 && !memcmp(s, "reflect", 7))
            a->pad_mode = 1;
        else if (len == 4 && !memcmp(s, "edge", 4))
            a->pad_mode = 2;
        else
            return nn_node_error(n, DP_ERR_UNSUPPORTED, "unsupported attribute value mode");
        return 0;
    }
    if (!strcmp(nm, "alpha")) return get_float(n, at, &a->alpha);
    if (!strcmp(nm, "beta")) return get_float(n, at, &a->beta);
    if (!strcmp(nm, "epsilon")) return get_float(n, at, &a->epsilon);
    if (!strcmp(nm, "momentum") || !strcmp(nm, "ratio")) return 0; /* inference: unused */
    if (!strcmp(nm, "seed")) return 0;
    if (!strcmp(nm, "value") && n->op == OP_PAD) return get_float(n, at, &a->pad_value);
    if (!strcmp(nm, "min")) {
        a->has_min = true;
        return get_float(n, at, &a->min);
    }
    if (!strcmp(nm, "max")) {
        a->has_max = true;
        return get_float(n, at, &a->max);
    }
    if (!strcmp(nm, "transA")) return get_int(n, at, &a->trans_a);
    if (!strcmp(nm, "transB")) return get_int(n, at, &a->trans_b);
    if (!strcmp(nm, "axis")) return get_int(n, at, &a->axis);
    if (!strcmp(nm, "axes")) {
        a->has_axes = true;
        return get_ints(n, at, a->axes, DP_MAX_DIMS, &a->naxes);
    }
    if (!strcmp(nm, "perm")) return get_ints(n, at, a->perm, DP_MAX_DIMS, &a->nperm);
    if (!strcmp(nm, "keepdims")) return get_int(n, at, &a->keepdims);
    if (!strcmp(nm, "noop_with_empty_axes")) return get_int(n, at, &a->noop_with_empty_axes);
    if (!strcmp(nm, "ceil_mode")) return get_int(n, at, &a->ceil_mode);
    if (!strcmp(nm, "count_include_pad")) return get_int(n, at, &a->count_include_pad);
    if (!strcmp(nm, "allowzero")) return get_int(n, at, &a->allowzero);
    if (!strcmp(nm, "to")) {
        if ((rc = get_int(n, at, &a->to))) return rc;
        if (!map_dtype((int)a->to))
            return nn_node_error(n, DP_ERR_UNSUPPORTED, "unsupported attribute value to=%s",
                                 onnx_type_name((int)a->to));
        a->to = map_dtype((int)a->to);
        return 0;
    }
    if (!strcmp(nm, "storage_order")) {
        if ((rc = get_int(n, at, &iv))) return rc;
        return 0; /* only affects the Indices output, which we refuse */
    }
    if (!strcmp(nm, "spatial")) {
        if ((rc = get_int(n, at, &iv))) return rc;
        if (iv != 1)
            return nn_node_error(n, DP_ERR_UNSUPPORTED, "unsupported attribute value spatial=0");
        return 0;
    }
    if (!strcmp(nm, "training_mode")) {
        if ((rc = get_int(n, at, &iv))) return rc;
        if (iv != 0)
            return nn_node_error(n, DP_ERR_UNSUPPORTED,
                                 "unsupported attribute value training_mode=1");
        return 0;
    }
    if (!strcmp(nm, "is_test")) return 0;
    if (!strcmp(nm, "broadcast")) return 0; /* Gemm-6: C always broadcasts here */
    if (!strcmp(nm, "start")) {
        if ((rc = get_int(n, at, &iv))) return rc;
        a->starts[0] = iv;
        a->nstarts = 1;
        return 0;
    }
    if (!strcmp(nm, "end")) {
        if ((rc = get_int(n, at, &iv))) return rc;
        a->ends[0] = iv;
        a->nends = 1;
        return 0;
    }
    if (!strcmp(nm, "starts")) return get_ints(n, at, a->starts, DP_MAX_DIMS, &a->nstarts);
    if (!strcmp(nm, "ends")) return get_ints(n, at, a->ends, DP_MAX_DIMS, &a->nends);
    if (n->op == OP_CONSTANT) {
        /* value* attributes become the node's constant output; handled by
         * the caller. */
        (void)m;
        return 0;
    }
    return nn_node_error(n, DP_ERR_UNSUPPORTED, "unsupported attribute '%s'", nm);
}

/* Constant node -> a constant value. */
static int constant_value(dp_model *m, nn_node *n, const Onnx__NodeProto *np, nn_value *v,
                          size_t max_bytes)
{
    (void)m;
    if (np->n_attribute != 1)
        return nn_node_error(n, DP_ERR_FORMAT, "Constant needs exactly one value attribute");
    const Onnx__AttributeProto *at = np->attribute[0];
    const char *nm = at->name ? at->name : "";
    int rc;
    if (!strcmp(nm, "value")) {
        if (at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR || !at->t)
            return nn_node_error(n, DP_ERR_FORMAT, "attribute 'value' must be a tensor");
        rc = nn_tensor_from_proto(at->t, &v->dtype, &v->ndim, v->dims, &v->data, max_bytes);
        if (rc) return dp_prefix_error(rc, "node '%s' (op Constant)", n->name);
    } else if (!strcmp(nm, "value_float") || !strcmp(nm, "value_int")) {
        bool f = nm[6] == 'f';
        v->ndim = 0;
        v->dtype = f ? DP_F32 : DP_I64;
        v->data = malloc(8);
        if (!v->data) return dp_set_error(DP_ERR_NOMEM, "out of memory");
        if (f) {
            if ((rc = get_float(n, at, v->data))) return rc;
        } else if ((rc = get_int(n, at, v->data))) {
            return rc;
        }
    } else if (!strcmp(nm, "value_floats") || !strcmp(nm, "value_ints")) {
        bool f = nm[6] == 'f';
        size_t cnt = f ? at->n_floats : at->n_ints;
        if ((f && at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS) ||
            (!f && at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS))
            return nn_node_error(n, DP_ERR_FORMAT, "attribute '%s' has the wrong type", nm);
        v->ndim = 1;
        v->dims[0] = (int64_t)cnt;
        v->dtype = f ? DP_F32 : DP_I64;
        v->data = malloc(cnt * 8 + 1);
        if (!v->data) return dp_set_error(DP_ERR_NOMEM, "out of memory");
        if (f)
            memcpy(v->data, at->floats, cnt * 4);
        else
            memcpy(v->data, at->ints, cnt * 8);
    } else {
        return nn_node_error(n, DP_ERR_UNSUPPORTED, "unsupported attribute '%s'", nm);
    }
    v->is_const = v->known = true;
    return 0;
}

static int decl_shape(nn_value *v, const Onnx__ValueInfoProto *vi, bool need_type)
{
    const Onnx__TypeProto *tp = vi->type;
    if (!tp) {
        if (need_type) return dp_set_error(DP_ERR_FORMAT, "graph input '%s' has no type", v->name);
        return 0;
    }
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return dp_set_error(DP_ERR_UNSUPPORTED,
                            "'%s' is not a tensor (sequences and maps are "
                            "not supported)",
                            v->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int dt = map_dtype(tt->elem_type);
    if (!dt)
        return dp_set_error(DP_ERR_UNSUPPORTED, "'%s': element type %s is not supported", v->name,
                            onnx_type_name(tt->elem_type));
    v->dtype = dt;
    if (!tt->shape) return 0;
    if (tt->shape->n_dim > DP_MAX_DIMS)
        return dp_set_error(DP_ERR_UNSUPPORTED, "'%s' has %zu dims, at most %d", v->name,
                            tt->shape->n_dim, DP_MAX_DIMS);
    v->has_decl = true;
    v->decl_ndim = (int)tt->shape->n_dim;
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return dp_set_error(DP_ERR_FORMAT, "'%s': negative dim %lld", v->name,
                                    (long long)d->dim_value);
            v->decl_dims[i] = d->dim_value;
        } else {
            v->decl_dims[i] = -1;
        }
    }
    return 0;
}

static int add_node(dp_model *m)
{
    if (m->n_nodes == m->cap_nodes) {
        int cap = m->cap_nodes ? m->cap_nodes * 2 : 64;
        nn_node *nn = realloc(m->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return dp_set_error(DP_ERR_NOMEM, "out of memory for nodes");
        m->nodes = nn;
        m->cap_nodes = cap;
    }
    memset(&m->nodes[m->n_nodes], 0, sizeof(nn_node));
    return m->n_nodes++;
}

static void hist_add(dp_model *m, const char *op_type)
{
    for (int i = 0; i < m->n_hist; i++)
        if (!strcmp(m->hist_name[i], op_type)) {
            m->hist_count[i]++;
            return;
        }
    if (m->n_hist < OP_COUNT) {
        m->hist_name[m->n_hist] = nn_op_name(nn_op_from_name(op_type));
        m->hist_count[m->n_hist++] = 1;
    }
}

/* Kahn's algorithm; files are usually sorted already but the spec allows any
 * order only in theory, and a cycle must be an error, not a hang. */
static int topo_sort(dp_model *m)
{
    int nn = m->n_nodes;
    int *indeg = calloc((size_t)nn + 1, sizeof *indeg);
    int *order = malloc(((size_t)nn + 1) * sizeof *order);
    int *queue = malloc(((size_t)nn + 1) * sizeof *queue);
    nn_node *sorted = malloc(((size_t)nn + 1) * sizeof *sorted);
    int rc = 0, head = 0, tail = 0, cnt = 0;
    if (!indeg || !order || !queue || !sorted) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory sorting nodes");
        goto done;
    }
    for (int i = 0; i < nn; i++) {
        for (int k = 0; k < m->nodes[i].n_in; k++) {
            int v = m->nodes[i].in[k];
            if (v >= 0 && m->values[v].producer >= 0) indeg[i]++;
        }
        if (!indeg[i]) queue[tail++] = i;
    }
    while (head < tail) {
        int i = queue[head++];
        order[cnt++] = i;
        for (int o = 0; o < m->nodes[i].n_out; o++) {
            int v = m->nodes[i].out[o];
            if (v < 0) continue; /* an omitted optional output feeds nothing */
            for (int j = 0; j < nn; j++) {
                /* quadratic only over consumers actually matching */
                for (int k = 0; k < m->nodes[j].n_in; k++)
                    if (m->nodes[j].in[k] == v && --indeg[j] == 0) queue[tail++] = j;
            }
        }
    }
    if (cnt != nn) {
        for (int i = 0; i < nn; i++)
            if (indeg[i] > 0) {
                rc = nn_node_error(&m->nodes[i], DP_ERR_FORMAT,
                                   "graph has a cycle through this node");
                goto done;
            }
    }
    for (int i = 0; i < nn; i++)
        sorted[i] = m->nodes[order[i]];
    memcpy(m->nodes, sorted, (size_t)nn * sizeof *sorted);
    for (int i = 0; i < nn; i++)
        for (int o = 0; o < m->nodes[i].n_out; o++)
            if (m->nodes[i].out[o] >= 0) m->values[m->nodes[i].out[o]].producer = i;
done:
    free(indeg);
    free(order);
    free(queue);
    free(sorted);
    return rc;
}

static bool is_sorted(const dp_model *m)
{
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++) {
            int v = m->nodes[i].in[k];
            if (v >= 0 && m->values[v].producer >= i) return false;
        }
    return true;
}

int nn_load_onnx(dp_model *m, const void *data, size_t size, const dp_model_params *p)
{
    (void)p;
    int rc = 0;
    GHashTable *names = NULL;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, data);
    if (!mp) return dp_set_error(DP_ERR_FORMAT, "not an ONNX model (protobuf parse failed)");
    const Onnx__GraphProto *g = mp->graph;
    if (!g) {
        rc = dp_set_error(DP_ERR_FORMAT, "model has no graph");
        goto done;
    }
    m->opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *os = mp->opset_import[i];
        if (!os->domain || !os->domain[0] || !strcmp(os->domain, "ai.onnx")) m->opset = os->version;
    }
    if (m->opset < 0) m->opset = 1; /* IR v2 files without opset_import */
    if (m->opset < 6 || m->opset > 18) {
        rc = dp_set_error(DP_ERR_UNSUPPORTED, "opset %lld is not supported (6 to 18)",
                          (long long)m->opset);
        goto done;
    }
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s%s%s", mp->producer_name ? mp->producer_name : "",
                 mp->producer_version && mp->producer_version[0] ? " " : "",
                 mp->producer_version ? mp->producer_version : "");
        m->producer = strdup(buf);
        if (!m->producer) {
            rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    names = g_hash_table_new(g_str_hash, g_str_equal);
#define LOOKUP(nm) GPOINTER_TO_INT(g_hash_table_lookup(names, (nm))) - 1
#define REMEMBER(nm, id) g_hash_table_insert(names, m->values[id].name, GINT_TO_POINTER((id) + 1))
    size_t max_bytes = size < NN_MAX_TENSOR_BYTES ? size : NN_MAX_TENSOR_BYTES;
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        const char *nm = t->name ? t->name : "";
        if (LOOKUP(nm) >= 0) {
            rc = dp_set_error(DP_ERR_FORMAT, "initializer '%s' defined twice", nm);
            goto done;
        }
        int id = nn_add_value(m, nm);
        if (id < 0) {
            rc = id;
            goto done;
        }
        REMEMBER(nm, id);
        nn_value *v = &m->values[id];
        rc = nn_tensor_from_proto(t, &v->dtype, &v->ndim, v->dims, &v->data, max_bytes);
        if (rc) goto done;
        v->is_const = v->known = true;
    }
    if (g->n_sparse_initializer) {
        rc = dp_set_error(DP_ERR_UNSUPPORTED, "sparse initializers are not supported");
        goto done;
    }
    int *inputs = calloc(g->n_input + 1, sizeof *inputs);
    if (!inputs) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
        goto done;
    }
    m->inputs = inputs;
    for (size_t i = 0; i < g->n_input; i++) {
        const char *nm = g->input[i]->name ? g->input[i]->name : "";
        int id = LOOKUP(nm);
        if (id >= 0) {
            if (!m->values[id].is_const) {
                rc = dp_set_error(DP_ERR_FORMAT, "graph input '%s' listed twice", nm);
                goto done;
            }
            continue; /* initializer listed as input (IR < 4): a constant */
        }
        id = nn_add_value(m, nm);
        if (id < 0) {
            rc = id;
            goto done;
        }
        REMEMBER(nm, id);
        nn_value *v = &m->values[id];
        v->is_input = true;
        if ((rc = decl_shape(v, g->input[i], true))) goto done;
        if (!v->has_decl) {
            rc = dp_set_error(DP_ERR_UNSUPPORTED, "graph input '%s' has no declared shape", nm);
            goto done;
        }
        m->inputs[m->n_inputs++] = id;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *np = g->node[i];
        int ni = add_node(m);
        if (ni < 0) {
            rc = ni;
            goto done;
        }
        nn_node *n = &m->nodes[ni];
        char autoname[32];
        snprintf(autoname, sizeof autoname, "#%zu", i);
        n->name = strdup(np->name && np->name[0] ? np->name : autoname);
        n->op_type = strdup(np->op_type ? np->op_type : "");
        if (!n->name || !n->op_type) {
            rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
            goto done;
        }
        m->n_nodes_in_file++;
        if (np->domain && np->domain[0] && strcmp(np->domain, "ai.onnx") != 0) {
            rc = nn_node_error(n, DP_ERR_UNSUPPORTED, "unsupported op (domain '%s')", np->domain);
            goto done;
        }
        n->op = nn_op_from_name(n->op_type);
        if (n->op == OP_NONE) {
            rc = nn_node_error(n, DP_ERR_UNSUPPORTED, "unsupported op");
            goto done;
        }
        hist_add(m, n->op_type);
        n->a.group = 1;
        n->a.alpha = n->op == OP_LEAKY ? 0.01f : n->op == OP_HSIGMOID ? 0.2f : 1.0f;
        n->a.beta = n->op == OP_HSIGMOID ? 0.5f : 1.0f;
        n->a.epsilon = 1e-5f;
        n->a.axis = (n->op == OP_SOFTMAX || n->op == OP_LOGSOFTMAX) ? (m->opset >= 13 ? -1 : 1)
                    : n->op == OP_GATHER || n->op == OP_CONCAT      ? 0
                                                                    : 1;
        n->a.keepdims = 1;
        n->a.nstarts = n->a.nends = 0;
        n->n_in = (int)np->n_input;
        n->n_out = (int)np->n_output;
        n->in = calloc(np->n_input + 1, sizeof(int));
        n->out = calloc(np->n_output + 1, sizeof(int));
        if (!n->in || !n->out) {
            rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (n->op != OP_CONSTANT)
            for (size_t k = 0; k < np->n_attribute; k++)
                if ((rc = parse_attr(m, n, np->attribute[k]))) goto done;
        for (size_t k = 0; k < np->n_input; k++) {
            const char *nm = np->input[k];
            if (!nm || !nm[0]) {
                n->in[k] = -1;
                continue;
            }
            int id = LOOKUP(nm);
            if (id < 0) { /* produced by a later node in an unsorted file */
                id = nn_add_value(m, nm);
                if (id < 0) {
                    rc = id;
                    goto done;
                }
                REMEMBER(nm, id);
                n = &m->nodes[ni];
            }
            n->in[k] = id;
        }
        for (size_t k = 0; k < np->n_output; k++) {
            const char *nm = np->output[k];
            if (!nm || !nm[0]) {
                n->out[k] = -1;
                continue;
            }
            int id = LOOKUP(nm);
            if (id >= 0 &&
                (m->values[id].producer >= 0 || m->values[id].is_input || m->values[id].is_const)) {
                rc = nn_node_error(n, DP_ERR_FORMAT, "output '%s' is already defined", nm);
                goto done;
            }
            if (id < 0) {
                id = nn_add_value(m, nm);
                if (id < 0) {
                    rc = id;
                    goto done;
                }
                REMEMBER(nm, id);
            }
            m->values[id].producer = ni;
            n->out[k] = id;
        }
        if (n->op == OP_CONSTANT) {
            if (n->n_out != 1 || n->out[0] < 0) {
                rc = nn_node_error(n, DP_ERR_FORMAT, "Constant needs one output");
                goto done;
            }
            nn_value *v = &m->values[n->out[0]];
            if ((rc = constant_value(m, n, np, v, max_bytes))) goto done;
            v->producer = -1;
            n->dead = true;
        }
    }
    /* Every consumed value must come from somewhere. */
    for (int i = 0; i < m->n_nodes; i++) {
        nn_node *n = &m->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            int id = n->in[k];
            if (id < 0) continue;
            nn_value *v = &m->values[id];
            if (v->producer < 0 && !v->is_input && !v->is_const) {
                rc = nn_node_error(n, DP_ERR_FORMAT,
                                   "input '%s' is not produced by any node, "
                                   "initializer or graph input",
                                   v->name);
                goto done;
            }
        }
    }
    /* Drop Constant nodes (their values are constants now) then sort. */
    {
        int w = 0;
        for (int i = 0; i < m->n_nodes; i++) {
            if (m->nodes[i].dead) {
                free(m->nodes[i].name);
                free(m->nodes[i].op_type);
                free(m->nodes[i].in);
                free(m->nodes[i].out);
                continue;
            }
            m->nodes[w++] = m->nodes[i];
        }
        m->n_nodes = w;
        for (int i = 0; i < m->n_values; i++)
            if (m->values[i].producer >= 0) m->values[i].producer = -1;
        for (int i = 0; i < m->n_nodes; i++)
            for (int o = 0; o < m->nodes[i].n_out; o++)
                if (m->nodes[i].out[o] >= 0) m->values[m->nodes[i].out[o]].producer = i;
    }
    if (!is_sorted(m) && (rc = topo_sort(m))) goto done;
    /* Graph outputs. */
    m->outputs = calloc(g->n_output + 1, sizeof(int));
    if (!m->outputs) {
        rc = dp_set_error(DP_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < g->n_output; i++) {
        const char *nm = g->output[i]->name ? g->output[i]->name : "";
        int id = LOOKUP(nm);
        if (id < 0) {
            rc = dp_set_error(DP_ERR_FORMAT, "graph output '%s' is not produced by any node", nm);
            goto done;
        }
        nn_value *v = &m->values[id];
        if (!v->is_input && !v->has_decl) {
            /* declared output shape is informational; keep the dtype check */
            nn_value tmp = *v;
            if (decl_shape(&tmp, g->output[i], false) == 0) {
                v->decl_ndim = tmp.decl_ndim;
                memcpy(v->decl_dims, tmp.decl_dims, sizeof v->decl_dims);
                v->has_decl = tmp.has_decl;
            }
        }
        m->outputs[m->n_outputs++] = id;
    }
    if (m->n_outputs == 0) rc = dp_set_error(DP_ERR_FORMAT, "graph has no outputs");
#undef LOOKUP
#undef REMEMBER
done:
    if (names) g_hash_table_destroy(names);
    onnx__model_proto__free_unpacked(mp, NULL);
    return rc;
}
