/* doppel model: run ONNX image models on the CPU with oneDNN.
 *
 * dp_model_open() parses an ONNX file, checks it (types, shapes, topological
 * order, every op supported: an unsupported op is refused at open time with
 * the node's name and op type), prunes it to what the requested outputs need,
 * folds constants and BatchNormalization into Conv, fuses activations into
 * their producers, and plans memory so buffers are reused. The graph then runs
 * on oneDNN primitives that pick their own blocked layouts; reorders happen
 * only where a layout-agnostic op or the caller needs plain NCHW data.
 *
 * Thread safety: a dp_model owns its activation buffers, so one dp_model must
 * not run on two threads at once. Open one per thread (weights are small next
 * to activations for the models doppel ships) or serialise the calls. */
#ifndef DOPPEL_MODEL_H
#define DOPPEL_MODEL_H

#include "doppel/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DP_MAX_DIMS 8

typedef struct dp_model dp_model;

typedef enum dp_dtype {
    DP_F32 = 1, /* ONNX TensorProto.FLOAT */
    DP_I64 = 7, /* ONNX TensorProto.INT64 (shapes, indices) */
    DP_I32 = 6,
    DP_BOOL = 9,
} dp_dtype;

/* A tensor passed in or read out. Dims are C order (NCHW for images).
 * In dp_model_info lists, a dim of -1 is dynamic (e.g. the batch). */
typedef struct dp_tensor {
    const char *name;
    int dtype; /* dp_dtype */
    int ndim;
    int64_t dims[DP_MAX_DIMS];
    void *data; /* dense, C order */
} dp_tensor;

typedef struct dp_model_params {
    /* Intra-op threads for oneDNN; 0 = all cores. */
    int threads;
    /* Names of tensors (node outputs) to make readable with
     * dp_model_output(). NULL/0 = the graph outputs. The graph is pruned to
     * what these need, so asking for an intermediate node skips the rest. */
    const char *const *outputs;
    size_t n_outputs;
    /* Refuse files bigger than this (bytes); 0 = 2 GiB (protobuf's limit). */
    size_t max_file_bytes;
    /* Nonzero: skip BatchNorm folding and post-op fusion (run the graph as
     * written); for tests and debugging, results should not change. */
    int no_fusion;
} dp_model_params;

DP_API dp_model_params dp_model_default_params(void);

DP_API int dp_model_open(const char *path, const dp_model_params *params, dp_model **out);
/* Same, from bytes in memory (the fuzz target's entry point). */
DP_API int dp_model_open_memory(const void *data, size_t size, const dp_model_params *params,
                                dp_model **out);
DP_API void dp_model_free(dp_model *m);

/* What a model is. Strings point into the model and live as long as it. */
typedef struct dp_model_info {
    const char *producer;   /* producer_name + version, e.g. "tfjs2onnx 1.0" */
    int64_t opset;          /* default-domain opset */
    size_t n_nodes;         /* after graph passes */
    size_t n_nodes_in_file; /* as loaded */
    int64_t n_params;       /* float parameters in initializers used */
    double flops;           /* multiply-adds x2 for one sample (batch 1) */
    size_t n_inputs, n_outputs;
} dp_model_info;

DP_API int dp_model_describe(const dp_model *m, dp_model_info *info);
/* Graph inputs (excluding initializers) and the selected outputs; shapes as
 * declared, -1 for dynamic dims. */
DP_API int dp_model_input(const dp_model *m, size_t i, dp_tensor *out);
DP_API int dp_model_output_info(const dp_model *m, size_t i, dp_tensor *out);
/* Op types in the file with their counts, i < number of distinct ops;
 * returns DP_ERR_NOT_FOUND past the end. */
DP_API int dp_model_op(const dp_model *m, size_t i, const char **op_type, size_t *count);

/* Run the graph. inputs[i] gives the data for graph input named
 * inputs[i].name (or the i-th input when name is NULL), with concrete dims;
 * the batch may change from call to call (primitives are re-created on the
 * first run at a new shape and cached). */
DP_API int dp_model_run(dp_model *m, const dp_tensor *inputs, size_t n_inputs);

/* Read an output of the last run by name (NULL = first selected output).
 * out->data points into the model, dense C order, valid until the next run or
 * free. */
DP_API int dp_model_output(const dp_model *m, const char *name, dp_tensor *out);

#ifdef __cplusplus
}
#endif
#endif
