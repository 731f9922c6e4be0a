/* Test helper: build small ONNX models in memory with protobuf-c, so the nn
 * tests can feed dp_model_open_memory() graphs shaped exactly as needed.
 * nb_pack() serialises the model and frees the builder, so the tests run
 * clean under LeakSanitizer. */
#ifndef NN_BUILD_H
#define NN_BUILD_H

#include "onnx/onnx.pb-c.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct nb_model {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto os;
    Onnx__OperatorSetIdProto *osp[1];
} nb_model;

static inline nb_model *nb_new(int opset)
{
    nb_model *b = calloc(1, sizeof *b);
    onnx__model_proto__init(&b->m);
    onnx__graph_proto__init(&b->g);
    onnx__operator_set_id_proto__init(&b->os);
    b->os.domain = "";
    b->os.has_version = 1;
    b->os.version = opset;
    b->osp[0] = &b->os;
    b->m.n_opset_import = 1;
    b->m.opset_import = b->osp;
    b->m.has_ir_version = 1;
    b->m.ir_version = 8;
    b->m.producer_name = "nn_build";
    b->m.graph = &b->g;
    b->g.name = "g";
    return b;
}

#define NB_PUSH(arr, n, item)                                                                      \
    do {                                                                                           \
        (arr) = realloc((arr), ((n) + 1) * sizeof *(arr));                                         \
        (arr)[(n)++] = (item);                                                                     \
    } while (0)

static inline Onnx__ValueInfoProto *nb_vi(const char *name, int elem, int ndim, const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = calloc(1, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = strdup(name);
    Onnx__TypeProto *tp = calloc(1, sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = calloc(1, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    Onnx__TensorShapeProto *sh = calloc(1, sizeof *sh);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = calloc(1, sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] >= 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = "N";
        }
        NB_PUSH(sh->dim, sh->n_dim, d);
    }
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->type = tp;
    return vi;
}

static inline void nb_input(nb_model *b, const char *name, int ndim, const int64_t *dims)
{
    NB_PUSH(b->g.input, b->g.n_input, nb_vi(name, 1, ndim, dims));
}

static inline void nb_output(nb_model *b, const char *name)
{
    Onnx__ValueInfoProto *vi = calloc(1, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = strdup(name);
    NB_PUSH(b->g.output, b->g.n_output, vi);
}

/* Float initializer with values from data (copied). */
static inline Onnx__TensorProto *nb_init(nb_model *b, const char *name, int ndim,
                                         const int64_t *dims, const float *data)
{
    Onnx__TensorProto *t = calloc(1, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = strdup(name);
    t->has_data_type = 1;
    t->data_type = 1;
    size_t n = 1;
    t->dims = calloc((size_t)ndim + 1, sizeof *t->dims);
    for (int i = 0; i < ndim; i++) {
        t->dims[i] = dims[i];
        n *= (size_t)dims[i];
    }
    t->n_dims = (size_t)ndim;
    t->float_data = malloc(n * sizeof(float) + 1);
    memcpy(t->float_data, data, n * sizeof(float));
    t->n_float_data = n;
    NB_PUSH(b->g.initializer, b->g.n_initializer, t);
    return t;
}

static inline Onnx__TensorProto *nb_init_i64(nb_model *b, const char *name, int64_t n,
                                             const int64_t *data)
{
    Onnx__TensorProto *t = calloc(1, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = strdup(name);
    t->has_data_type = 1;
    t->data_type = 7;
    t->dims = calloc(1, sizeof *t->dims);
    t->dims[0] = n;
    t->n_dims = 1;
    t->int64_data = malloc((size_t)n * 8 + 1);
    memcpy(t->int64_data, data, (size_t)n * 8);
    t->n_int64_data = (size_t)n;
    NB_PUSH(b->g.initializer, b->g.n_initializer, t);
    return t;
}

/* Node: inputs/outputs as comma-separated names ("x,w,b"). */
static inline Onnx__NodeProto *nb_node(nb_model *b, const char *op, const char *name,
                                       const char *ins, const char *outs)
{
    Onnx__NodeProto *n = calloc(1, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = strdup(op);
    n->name = strdup(name);
    char *s = strdup(ins), *tok, *save;
    for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        NB_PUSH(n->input, n->n_input, strdup(tok));
    free(s);
    s = strdup(outs);
    for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        NB_PUSH(n->output, n->n_output, strdup(tok));
    free(s);
    NB_PUSH(b->g.node, b->g.n_node, n);
    return n;
}

static inline void nb_attr_ints(Onnx__NodeProto *n, const char *name, int cnt, const int64_t *v)
{
    Onnx__AttributeProto *a = calloc(1, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = strdup(name);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->ints = malloc((size_t)cnt * 8 + 1);
    memcpy(a->ints, v, (size_t)cnt * 8);
    a->n_ints = (size_t)cnt;
    NB_PUSH(n->attribute, n->n_attribute, a);
}

static inline void nb_attr_int(Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = calloc(1, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = strdup(name);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
    NB_PUSH(n->attribute, n->n_attribute, a);
}

static inline void nb_attr_float(Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = calloc(1, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = strdup(name);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1;
    a->f = v;
    NB_PUSH(n->attribute, n->n_attribute, a);
}

static inline void nb_free_vi(Onnx__ValueInfoProto *vi)
{
    if (vi->type && vi->type->tensor_type) {
        Onnx__TensorShapeProto *sh = vi->type->tensor_type->shape;
        if (sh) {
            for (size_t i = 0; i < sh->n_dim; i++)
                free(sh->dim[i]); /* dim_param is a literal */
            free(sh->dim);
            free(sh);
        }
        free(vi->type->tensor_type);
    }
    free(vi->type);
    free(vi->name);
    free(vi);
}

/* Free everything the nb_* calls allocated (the literals in nb_new stay). */
static inline void nb_free(nb_model *b)
{
    Onnx__GraphProto *g = &b->g;
    for (size_t i = 0; i < g->n_node; i++) {
        Onnx__NodeProto *n = g->node[i];
        for (size_t j = 0; j < n->n_input; j++)
            free(n->input[j]);
        for (size_t j = 0; j < n->n_output; j++)
            free(n->output[j]);
        for (size_t j = 0; j < n->n_attribute; j++) {
            free(n->attribute[j]->name);
            free(n->attribute[j]->ints);
            free(n->attribute[j]);
        }
        free(n->input);
        free(n->output);
        free(n->attribute);
        free(n->op_type);
        free(n->name);
        free(n);
    }
    free(g->node);
    for (size_t i = 0; i < g->n_input; i++)
        nb_free_vi(g->input[i]);
    for (size_t i = 0; i < g->n_output; i++)
        nb_free_vi(g->output[i]);
    free(g->input);
    free(g->output);
    for (size_t i = 0; i < g->n_initializer; i++) {
        Onnx__TensorProto *t = g->initializer[i];
        free(t->name);
        free(t->dims);
        free(t->float_data);
        free(t->int64_data);
        free(t);
    }
    free(g->initializer);
    free(b);
}

/* Serialise and free the builder. */
static inline void *nb_pack(nb_model *b, size_t *size)
{
    *size = onnx__model_proto__get_packed_size(&b->m);
    void *buf = malloc(*size + 1);
    onnx__model_proto__pack(&b->m, buf);
    nb_free(b);
    return buf;
}

/* Deterministic pseudo-random floats in [-1, 1). */
static inline void nb_fill(float *x, size_t n, unsigned seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

#endif
