/* nn internals: the graph IR between the ONNX loader, the passes and the
 * oneDNN executor.
 *
 * A model is a flat list of values (tensors) and nodes (ops) in topological
 * order. Shape inference is also partial evaluation: a value whose data can be
 * computed before the run (initializers, Constant, Shape of a tensor with a
 * known shape, and any shape-only op fed by those) is "known" and is computed
 * on the host at plan time, so Shape->Gather->Concat->Reshape chains cost
 * nothing at run time and still follow the batch size. Everything else runs
 * as a plan of steps (oneDNN primitives or small host loops for data movement)
 * built once per input shape and cached. */
#ifndef DP_NN_H
#define DP_NN_H

#include "doppel/model.h"
#include "util/util.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdbool.h>

/* Ops the engine claims. The table in ops.c gives names and allowed
 * attributes. */
typedef enum nn_op {
    OP_NONE = 0,
    OP_CONV,
    OP_CONVT,
    OP_BN,
    OP_RELU,
    OP_LEAKY,
    OP_CLIP,
    OP_SIGMOID,
    OP_HSIGMOID,
    OP_HSWISH,
    OP_TANH,
    OP_ELU,
    OP_EXP,
    OP_LOG,
    OP_ABS,
    OP_SQRT,
    OP_NEG,
    OP_SOFTPLUS,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_MAX,
    OP_MIN,
    OP_MAXPOOL,
    OP_AVGPOOL,
    OP_GAP,
    OP_GMP,
    OP_CONCAT,
    OP_GEMM,
    OP_MATMUL,
    OP_FLATTEN,
    OP_RESHAPE,
    OP_TRANSPOSE,
    OP_SQUEEZE,
    OP_UNSQUEEZE,
    OP_SOFTMAX,
    OP_LOGSOFTMAX,
    OP_PAD,
    OP_REDUCEMEAN,
    OP_REDUCEMAX,
    OP_REDUCESUM,
    OP_IDENTITY,
    OP_DROPOUT,
    OP_CONSTANT,
    OP_SHAPE,
    OP_GATHER,
    OP_CAST,
    OP_SLICE,
    OP_COUNT
} nn_op;

typedef struct nn_attrs {
    int nk, ns, np, nd, nop, nos;
    int64_t kernel[3], strides[3], pads[6], dil[3], out_pad[3], out_shape[3];
    int64_t group;
    int auto_pad; /* 0 NOTSET, 1 SAME_UPPER, 2 SAME_LOWER, 3 VALID */
    float alpha, beta, epsilon;
    int64_t trans_a, trans_b;
    int64_t axis;
    bool has_axes;
    int naxes;
    int64_t axes[DP_MAX_DIMS];
    int nperm;
    int64_t perm[DP_MAX_DIMS];
    int64_t keepdims, ceil_mode, count_include_pad, allowzero, noop_with_empty_axes;
    int64_t to;
    int pad_mode; /* 0 constant, 1 reflect, 2 edge */
    float pad_value;
    bool has_min, has_max;
    float min, max;
    int nstarts, nends;
    int64_t starts[DP_MAX_DIMS], ends[DP_MAX_DIMS];      /* Slice-1 / Pad-2 attributes */
    int64_t sl_start[DP_MAX_DIMS], sl_step[DP_MAX_DIMS]; /* normalised by nn_infer */
    int npads_attr;
    int64_t pads_attr[2 * DP_MAX_DIMS];
} nn_attrs;

/* A fused post-op: an eltwise op or a sum with another tensor. */
typedef struct nn_post {
    bool is_sum;
    dnnl_alg_kind_t alg;
    float alpha, beta;
    int value; /* sum: the value added in */
} nn_post;

#define NN_MAX_POST 6

typedef struct nn_node {
    char *name;
    char *op_type;
    nn_op op;
    int n_in, n_out;
    int *in;  /* value ids, -1 for an omitted optional input */
    int *out; /* value ids */
    nn_attrs a;
    int n_post;
    nn_post post[NN_MAX_POST];
    bool dead;
} nn_node;

typedef struct nn_value {
    char *name;
    int dtype;
    int ndim;
    int64_t dims[DP_MAX_DIMS];
    /* Declared shape of a graph input/output (-1 dynamic). */
    bool has_decl;
    int decl_ndim;
    int64_t decl_dims[DP_MAX_DIMS];
    void *data;    /* known data, plain C order, owned */
    bool is_const; /* initializer or folded constant: data never changes */
    bool known;    /* data computed at plan time */
    bool is_input, keep;
    /* A small or integer graph input (axes, shape, clip bounds): its data is
     * read at plan time like a constant. Until a run provides it, nodes that
     * depend on it are deferred (not checked). */
    bool param, deferred;
    int producer; /* node id or -1 */
    int n_uses;   /* live consumers */
} nn_value;

typedef struct nn_plan nn_plan;

struct dp_model {
    char *producer;
    int64_t opset;
    int n_values, cap_values;
    nn_value *values;
    int n_nodes, cap_nodes;
    nn_node *nodes;
    int n_inputs;
    int *inputs; /* value ids of runtime graph inputs */
    int n_outputs;
    int *outputs; /* value ids of the selected outputs */
    size_t n_nodes_in_file;
    int64_t n_params;
    double flops;
    /* op histogram of the file */
    int n_hist;
    const char *hist_name[OP_COUNT + 1];
    size_t hist_count[OP_COUNT + 1];
    int threads;
    bool no_fusion;
    /* plans per input shape, most recent first */
    nn_plan *plans;
    nn_plan *cur;
    int n_plans;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
};

/* ops.c */
nn_op nn_op_from_name(const char *op_type);
const char *nn_op_name(nn_op op);
size_t nn_dtype_size(int dtype);
bool nn_op_is_eltwise(nn_op op);

/* onnx.c: parse + build the IR (values, nodes, attributes), validates
 * structure and refuses unsupported ops/attributes. */
int nn_load_onnx(dp_model *m, const void *data, size_t size, const dp_model_params *p);
int nn_tensor_from_proto(const void *tensor_proto, int *dtype, int *ndim, int64_t *dims,
                         void **data, size_t max_bytes);

/* infer.c: shapes and known data for the current input shapes. */
int nn_infer(dp_model *m);
/* Evaluates a host-computable node on known inputs (plan time) or on plain
 * buffers (run time). ptr arrays index like node in/out. */
int nn_host_eval(dp_model *m, const nn_node *n, void *const *in, void *const *out);
bool nn_host_capable(const dp_model *m, const nn_node *n);
int64_t nn_numel(const nn_value *v);
int nn_value_bytes(const nn_value *v, size_t *bytes);

/* passes.c */
int nn_passes(dp_model *m);

/* exec.c */
int nn_plan_get(dp_model *m);
int nn_plan_run(dp_model *m);
void nn_plans_free(dp_model *m);
const void *nn_plan_output(const dp_model *m, int value);

int nn_add_value(dp_model *m, const char *name);
int nn_find_value(const dp_model *m, const char *name);

#define NN_ERR(m, n, st, ...) nn_node_error((n), (st), __VA_ARGS__)
int nn_node_error(const nn_node *n, int status, const char *fmt, ...) DP_PRINTF(3, 4);

#endif
