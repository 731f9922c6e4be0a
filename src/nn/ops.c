/* The op table: ONNX names of the ops the engine claims. */
#include "nn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const op_names[OP_COUNT] = {
    [OP_NONE] = "",
    [OP_CONV] = "Conv",
    [OP_CONVT] = "ConvTranspose",
    [OP_BN] = "BatchNormalization",
    [OP_RELU] = "Relu",
    [OP_LEAKY] = "LeakyRelu",
    [OP_CLIP] = "Clip",
    [OP_SIGMOID] = "Sigmoid",
    [OP_HSIGMOID] = "HardSigmoid",
    [OP_HSWISH] = "HardSwish",
    [OP_TANH] = "Tanh",
    [OP_ELU] = "Elu",
    [OP_EXP] = "Exp",
    [OP_LOG] = "Log",
    [OP_ABS] = "Abs",
    [OP_SQRT] = "Sqrt",
    [OP_NEG] = "Neg",
    [OP_SOFTPLUS] = "Softplus",
    [OP_ADD] = "Add",
    [OP_SUB] = "Sub",
    [OP_MUL] = "Mul",
    [OP_DIV] = "Div",
    [OP_MAX] = "Max",
    [OP_MIN] = "Min",
    [OP_MAXPOOL] = "MaxPool",
    [OP_AVGPOOL] = "AveragePool",
    [OP_GAP] = "GlobalAveragePool",
    [OP_GMP] = "GlobalMaxPool",
    [OP_CONCAT] = "Concat",
    [OP_GEMM] = "Gemm",
    [OP_MATMUL] = "MatMul",
    [OP_FLATTEN] = "Flatten",
    [OP_RESHAPE] = "Reshape",
    [OP_TRANSPOSE] = "Transpose",
    [OP_SQUEEZE] = "Squeeze",
    [OP_UNSQUEEZE] = "Unsqueeze",
    [OP_SOFTMAX] = "Softmax",
    [OP_LOGSOFTMAX] = "LogSoftmax",
    [OP_PAD] = "Pad",
    [OP_REDUCEMEAN] = "ReduceMean",
    [OP_REDUCEMAX] = "ReduceMax",
    [OP_REDUCESUM] = "ReduceSum",
    [OP_IDENTITY] = "Identity",
    [OP_DROPOUT] = "Dropout",
    [OP_CONSTANT] = "Constant",
    [OP_SHAPE] = "Shape",
    [OP_GATHER] = "Gather",
    [OP_CAST] = "Cast",
    [OP_SLICE] = "Slice",
};

nn_op nn_op_from_name(const char *op_type)
{
    if (!op_type) return OP_NONE;
    for (int i = 1; i < OP_COUNT; i++)
        if (op_names[i] && strcmp(op_names[i], op_type) == 0) return (nn_op)i;
    return OP_NONE;
}

const char *nn_op_name(nn_op op)
{
    return (op > 0 && op < OP_COUNT) ? op_names[op] : "?";
}

size_t nn_dtype_size(int dtype)
{
    switch (dtype) {
    case DP_F32:
        return 4;
    case DP_I64:
        return 8;
    case DP_I32:
        return 4;
    case DP_BOOL:
        return 1;
    default:
        return 0;
    }
}

bool nn_op_is_eltwise(nn_op op)
{
    switch (op) {
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
        return true;
    default:
        return false;
    }
}

int nn_node_error(const nn_node *n, int status, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!n) return dp_set_error(status, "%s", msg);
    return dp_set_error(status, "node '%s' (op %s): %s", n->name ? n->name : "",
                        n->op_type ? n->op_type : "?", msg);
}
